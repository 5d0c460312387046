"""The booking flow through the store, the outbox and a real cloud agenda: what
``appliance simulate`` reports, what the caller hears, what the console says."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from appliance.app import Appliance
from appliance.cli import main
from appliance.config import Config
from appliance.errors import ConfigError
from appliance.simulate.runner import simulate
from appliance.simulate.scenario import load_scenario
from appliance.store import Store, outbox, settings
from appliance.sync.adapters.fhir import FhirSettings
from appliance.sync.settings import SyncSettings
from tests.cloud.fhir_server import FhirServer
from tests.ports import free_port

from .conftest import SCENARIOS

SYSTEM = "urn:appliance:booking"


def fhir_config(tmp_path: Path, base_url: str, martin: str, bernard: str) -> Config:
    fhir = FhirSettings(base_url=base_url, practitioners={"martin": martin, "bernard": bernard}, timeout_s=2)
    return replace(Config(), data_dir=tmp_path / "data", sync=SyncSettings(adapter="fhir", fhir=fhir))


def booked(config: Config) -> dict[str, Any]:
    return asyncio.run(simulate(load_scenario(SCENARIOS / "book_basic.toml"), mode="text", config=config))


def test_a_phone_booking_reaches_the_fhir_agenda_and_the_report_says_synced(
    fhir_server: FhirServer, tmp_path: Path
) -> None:
    config = fhir_config(tmp_path, fhir_server.base_url, fhir_server.practitioner("Martin"),
                         fhir_server.practitioner("Bernard"))

    report = booked(config)

    booking = report["booking"]
    assert booking["sync_state"] == "synced"
    with Store.open(config.db_path) as store:
        key = f"{settings.box_id(store)}/appt-{booking['id']}"
    [appointment] = fhir_server.search("Appointment", identifier=f"{SYSTEM}|{key}")
    assert appointment["status"] == "booked"
    assert appointment["start"].startswith(booking["start"][:16])
    said = " ".join(t["text"] for t in report["turns"] if t["speaker"] == "assistant")
    assert "C'est enregistré" in said and "sera confirmé dans l'agenda du cabinet" in said


def test_with_the_cloud_unreachable_the_booking_is_kept_and_waits(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}/fhir"
    config = fhir_config(tmp_path, dead, "Practitioner/1", "Practitioner/2")

    report = booked(config)

    assert report["expect"]["passed"] and report["booking"]["sync_state"] == "pending"
    with Store.open(config.db_path) as store:
        [entry] = [e for e in outbox.outbox_entries(store) if e.aggregate_key == f"appt-{report['booking']['id']}"]
        assert (entry.state, entry.attempts) == ("pending", 1) and "connect" in entry.last_error.lower()
        status = outbox.sync_status(store)
    assert status.backlog >= 1 and not status.online


def test_a_practitioner_without_a_place_in_the_cloud_is_a_configuration_error(tmp_path: Path) -> None:
    fhir = FhirSettings(base_url="http://127.0.0.1:9/fhir", practitioners={"martin": "Practitioner/1"})
    config = replace(Config(), data_dir=tmp_path, sync=SyncSettings(adapter="fhir", fhir=fhir))
    with pytest.raises(ConfigError, match="sync.fhir.practitioners has no entry for 'bernard'"):
        Appliance(config)


def test_the_console_shows_the_backlog_and_pushes_it_when_the_cloud_is_back(
    fhir_server: FhirServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    martin, bernard = fhir_server.practitioner("Martin"), fhir_server.practitioner("Bernard")
    dead = f"http://127.0.0.1:{free_port()}/fhir"
    booked(fhir_config(tmp_path, dead, martin, bernard))
    config_file = tmp_path / "box.toml"
    config_file.write_text(
        f'[sync]\nadapter = "fhir"\n[sync.fhir]\nbase_url = "{fhir_server.base_url}"\n'
        f'practitioners = {{ martin = "{martin}", bernard = "{bernard}" }}\n'
    )
    data = ["--config", str(config_file), "--data-dir", str(tmp_path / "data")]

    assert main([*data, "sync", "status"]) == 0
    assert "waiting:        1 change(s)" in capsys.readouterr().out
    assert main([*data, "sync", "check"]) == 0
    assert "FHIR" in capsys.readouterr().out
    assert main([*data, "sync", "push"]) == 0
    assert "sent 1" in capsys.readouterr().out
    assert main([*data, "sync", "pull"]) == 0
    main([*data, "sync", "status"])
    assert "waiting:        0 change(s)" in capsys.readouterr().out


def test_dead_letters_show_on_the_console_and_retry_sends_them_again(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = fhir_config(tmp_path, f"http://127.0.0.1:{free_port()}/fhir", "Practitioner/1", "Practitioner/2")
    booked(config)
    with Store.open(config.db_path) as store, store.transaction() as tx:
        tx.execute("UPDATE outbox SET state = 'dead', last_error = 'fhir-auth: 401'")
    data = ["--data-dir", str(config.data_dir)]

    assert main([*data, "sync", "status"]) == 3
    out = capsys.readouterr().out
    assert "dead letters:   1" in out and "fhir-auth: 401" in out
    assert main([*data, "sync", "retry"]) == 0
    assert "1 dead letter(s) will be tried again" in capsys.readouterr().out
    with Store.open(config.db_path) as store:
        assert [e.state for e in outbox.outbox_entries(store)] == ["pending"]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ('[sync]\nadapter = "google"\n', "sync.adapter must be one of none, fhir, caldav"),
        ('[sync]\nadapter = "caldav"\n', "needs a [sync.caldav] table"),
        ('[sync]\nadapter = "caldav"\n[sync.caldav]\nbase_url = "http://h/"\nusername = "b"\n'
         'password_file = 42\ncalendars = { martin = "/m/" }\n', "sync.caldav.password_file must be a path"),
        ('[sync.outbox]\nmax_attempts = 0\n', "sync.max_attempts must be 1-100"),
        ('[retention]\nmessages_days = -3\n', "retention.messages_days must be a whole number"),
    ],
)
def test_a_wrong_sync_or_retention_setting_names_the_key(tmp_path: Path, body: str, problem: str) -> None:
    from appliance.config import load_config

    path = tmp_path / "box.toml"
    path.write_text(body)
    with pytest.raises(ConfigError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        load_config(path)


def test_the_gsm_line_texts_through_its_own_loop_from_the_workers_thread() -> None:
    from appliance.runtime import _sms_through

    sent: list[tuple[str, str]] = []

    class Gsm:
        async def send_sms(self, number: str, text: str) -> int:
            sent.append((number, text))
            return 1

    class Guarded:
        inner = Gsm()

    async def scenario() -> None:
        sms = _sms_through(Guarded(), asyncio.get_running_loop())
        assert sms is not None
        await asyncio.to_thread(sms, "0639981234", "Votre rendez-vous…")
        assert _sms_through(object(), asyncio.get_running_loop()) is None  # a modem line cannot text

    asyncio.run(scenario())
    assert sent == [("0639981234", "Votre rendez-vous…")]
