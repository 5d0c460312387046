"""Whole calls through the box in text mode: the dialogue, the store and the event log."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from appliance.config import Config
from appliance.events import AssistantReplied
from appliance.simulate.runner import simulate
from appliance.simulate.scenario import load_scenario
from appliance.store import Store, appointments, outbox, queries

from appliance.app import Appliance
from appliance.clock import FixedClock
from appliance.dialogue.reply import Patient
from appliance.line.sim.line import SimLine
from appliance.simulate.caller import ScriptedCaller

from .conftest import REPO, SCENARIOS

SNAPSHOTS = Path(__file__).resolve().parent / "snapshots"
HEAD = 'now = "2026-11-24T09:00:00+01:00"\ncaller_id = "0612345678"\npractice = "demo"\n'


def _run(path: Path, tmp_path: Path) -> dict[str, Any]:
    config = replace(Config(), data_dir=tmp_path / "data")
    return asyncio.run(simulate(load_scenario(path), mode="text", config=config))


def _scenario(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "call.toml"
    path.write_text(HEAD + body, encoding="utf-8")
    return path


def _shape(report: dict[str, Any]) -> list[list[Any]]:
    """The event log without timings: what a reviewer reads in a snapshot."""
    keep = ("text", "ask", "outcome", "by", "practitioner_id", "start", "category", "digit")
    return [[e["kind"], {k: e[k] for k in keep if k in e}] for e in report["events"]
            if e["kind"] not in ("turn_timing", "audio_out_start", "audio_out_end")]


@pytest.mark.parametrize("name", ["book_basic", "book_earliest_withheld", "emergency_chest_pain", "silent_caller"])
def test_public_scenarios_meet_their_expectations_and_match_their_event_snapshot(name: str, tmp_path: Path) -> None:
    report = _run(SCENARIOS / f"{name}.toml", tmp_path)
    assert report["expect"] == {"passed": True, "failures": []}
    snapshot = SNAPSHOTS / f"{name}.events.json"
    shape = _shape(report)
    if os.environ.get("UPDATE_SNAPSHOTS") or not snapshot.exists():
        lines = ",\n ".join(json.dumps(event, ensure_ascii=False) for event in shape)
        snapshot.write_text(f"[{lines}]\n", encoding="utf-8")  # one event a line: readable diffs
    assert shape == json.loads(snapshot.read_text(encoding="utf-8"))


def test_a_booking_is_in_the_store_with_its_outbox_row_and_the_call_log(tmp_path: Path) -> None:
    report = _run(SCENARIOS / "book_basic.toml", tmp_path)
    booking = report["booking"]
    assert booking["patient"] == {"last_name": "Dupont", "first_name": "Marie",
                                  "birth_date": "1980-03-12", "phone": "0612345678"}
    assert booking["sync_state"] == "pending"
    store = Store.open(tmp_path / "data" / "appliance.db")
    try:
        [entry] = [e for e in outbox.outbox_entries(store) if e.aggregate_key == f"appt-{booking['id']}"]
        assert entry.kind == "appointment.created"
        [call] = queries.recent_calls(store, load_scenario(SCENARIOS / "book_basic.toml").now.replace(year=2000))
        assert call.outcome == "booked"
        kinds = [e.kind for e in queries.call_events(store, call.id)]
        assert kinds[0] == "call_answered" and kinds[-1] == "hangup" and "booking" in kinds
    finally:
        store.close()


def test_every_reply_turn_reports_its_latency(tmp_path: Path) -> None:
    report = _run(SCENARIOS / "book_basic.toml", tmp_path)
    replies = [t for t in report["turns"] if t["speaker"] == "assistant"]
    assert replies[0]["latency_ms"] is None  # the greeting answers no one
    assert all(isinstance(t["latency_ms"], int) and t["latency_ms"] >= 0 for t in replies[1:])
    assert report["metrics"]["latency_p50_ms"] is not None


def test_an_emergency_sends_the_caller_to_the_15_at_once_and_books_nothing(tmp_path: Path) -> None:
    report = _run(SCENARIOS / "emergency_chest_pain.toml", tmp_path)
    assert report["booking"] is None
    kinds = [e["kind"] for e in report["events"]]
    assert kinds.index("emergency") == kinds.index("transcript") + 1
    answer = report["events"][kinds.index("emergency") + 1]
    assert answer["kind"] == "reply" and "15" in answer["text"] and "112" in answer["text"]


def test_a_stroke_two_years_ago_is_history_not_an_emergency_and_the_booking_goes_on(tmp_path: Path) -> None:
    path = _scenario(tmp_path, '[[turn]]\nsay = "Il a fait un AVC il y a deux ans, je voudrais un rendez-vous de suivi."\n')
    report = _run(path, tmp_path)
    asks = [t["ask"] for t in report["turns"] if t["speaker"] == "assistant"]
    assert not [e for e in report["events"] if e["kind"] == "emergency"]
    assert "practitioner" in asks or "when" in asks


def test_after_an_emergency_cue_the_booking_does_not_go_on(tmp_path: Path) -> None:
    path = _scenario(tmp_path, '[[turn]]\nsay = "Mon père a fait un AVC ce matin, il ne parle plus, je voudrais un rendez-vous."\n'
                               '[[turn]]\nsay = "Non, ce n\'est pas urgent, un rendez-vous de suivi."\n')
    report = _run(path, tmp_path)
    replies = [t for t in report["turns"] if t["speaker"] == "assistant"][1:]
    assert report["outcome"] == "emergency"
    assert replies and all("appelez immédiatement le 15" in t["text"] for t in replies)
    assert all(t["ask"] in ("emergency", None) for t in replies)


def test_an_emergency_in_the_middle_of_a_booking_still_comes_first(tmp_path: Path) -> None:
    path = _scenario(tmp_path, '[[turn]]\nsay = "Je voudrais un rendez-vous."\n'
                               '[[turn]]\nsay = "Attendez, ma fille ne respire plus !"\n')
    report = _run(path, tmp_path)
    assert report["outcome"] == "emergency"


def test_the_assistant_refuses_medical_advice_and_carries_on(tmp_path: Path) -> None:
    path = _scenario(tmp_path, '[[turn]]\nsay = "Combien de doliprane je peux prendre par jour ?"\n'
                               '[[turn]]\nhangup = true\n')
    report = _run(path, tmp_path)
    reply = [t for t in report["turns"] if t["speaker"] == "assistant"][1]
    assert "avis médical" in reply["text"]
    assert report["outcome"] == "abandoned"


def test_garbled_transcripts_never_crash_the_call(tmp_path: Path) -> None:
    turns = "".join(f'[[turn]]\nsay = "{t}"\n' for t in ("zzz krr ###", "🙂🙂🙂", "le le le le le le", "%s {0} \\\\n"))
    report = _run(_scenario(tmp_path, turns), tmp_path)
    # Not understood three times: the staff get a message to call back, and the
    # caller is told so before the call ends.
    assert report["outcome"] == "message"
    assert [e["category"] for e in report["events"] if e["kind"] == "message"] == ["callback"]
    said = [e["text"] for e in report["events"] if e["kind"] == "reply"]
    assert any("secrétariat de vous rappeler" in text for text in said)
    assert said[-1].endswith("le secrétariat vous rappellera dès que possible. Merci de votre appel, au revoir.")
    assert not [e for e in report["events"] if e["kind"] == "error"]


def test_a_slot_taken_by_another_line_meanwhile_is_replaced_by_new_offers(tmp_path: Path) -> None:
    text = (SCENARIOS / "book_basic.toml").read_text(encoding="utf-8")
    # A second choice and a second confirmation, for the new offers.
    text = text.replace("[expect]", '[[turn]]\nwhen = "choice"\nsay = "Le premier."\n\n'
                                    '[[turn]]\nwhen = "confirm"\nsay = "Oui."\n\n[expect]')
    path = tmp_path / "race.toml"
    path.write_text(text, encoding="utf-8")
    scenario = load_scenario(path)
    config = replace(Config(), data_dir=tmp_path / "data")
    stolen: list[Any] = []

    async def run() -> Any:
        box = Appliance(config, clock=FixedClock(scenario.now))
        line = SimLine()
        call = line.place_call(scenario.caller_id)
        caller = ScriptedCaller(scenario, call, audio=None, silence_s=6.0)

        def observe(event: Any) -> None:
            caller.observe(event)
            if isinstance(event, AssistantReplied) and event.ask == "confirm" and not stolen:
                # Another line takes the very slot before this caller confirms.
                slot = session_secretary[0].draft.slot
                queries.insert_call(box.store, "other-line", scenario.now, None, "sim")
                box.agenda.book(slot, Patient("Autre", "Appel", date(1990, 1, 1), "0600000000"), "other-line")
                stolen.append(slot)

        session_secretary: list[Any] = []
        original = box_secretary_factory(box, session_secretary)
        try:
            return await box.answer(await anext(line.incoming()), line_name="sim", text_mode=True, on_event=observe)
        finally:
            original()
            box.close()

    result = asyncio.run(run())
    texts = [t.text for t in result.turns if t.speaker == "assistant"]
    assert any("vient d'être pris" in t for t in texts)
    assert result.outcome == "booked"
    store = Store.open(config.db_path)
    try:
        booked = appointments.get_appointment(store, result.appointment_id)
    finally:
        store.close()
    assert booked.start != stolen[0].start or booked.practitioner_id != stolen[0].practitioner_id
    assert booked.patient_last_name == "Dupont"


def box_secretary_factory(box: Any, sink: list[Any]) -> Any:
    """Let the test see the call's Secretary (to know which slot to steal)."""
    import appliance.app as app_module

    real = app_module.Secretary

    def spy(*args: Any, **kwargs: Any) -> Any:
        secretary = real(*args, **kwargs)
        sink.append(secretary)
        return secretary

    app_module.Secretary = spy  # type: ignore[misc]
    return lambda: setattr(app_module, "Secretary", real)


def test_cli_reports_a_bad_scenario_with_exit_2_and_no_traceback(tmp_path: Path) -> None:
    path = _scenario(tmp_path, "\n[expect]\noutcome = \"happy\"\n")
    done = subprocess.run([sys.executable, "-m", "appliance", "simulate", str(path)],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 2
    assert f"{path}:6: outcome must be one of" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_cli_exits_1_when_expectations_fail_and_writes_the_json_report(tmp_path: Path) -> None:
    path = _scenario(tmp_path, '[[turn]]\nhangup = true\n\n[expect]\noutcome = "booked"\n')
    out = tmp_path / "report.json"
    done = subprocess.run([sys.executable, "-m", "appliance", "simulate", str(path), "--text", "--json", str(out)],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 1, done.stderr
    report = json.loads(out.read_text())
    assert report["expect"]["passed"] is False
    assert report["expect"]["failures"] == ["outcome: expected 'booked', got 'abandoned'"]
    assert set(report) >= {"outcome", "booking", "message", "turns", "events", "metrics", "expect"}


def test_cli_names_a_missing_practice_file(tmp_path: Path) -> None:
    path = tmp_path / "call.toml"
    path.write_text(HEAD.replace('"demo"', '"practices/nowhere.toml"'), encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "appliance", "simulate", str(path)],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 2
    assert "nowhere.toml" in done.stdout + done.stderr and "Traceback" not in done.stderr


def test_an_emergency_leaves_an_urgent_message_for_the_staff_at_once(tmp_path: Path) -> None:
    report = _run(SCENARIOS / "emergency_chest_pain.toml", tmp_path)
    message = report["message"]
    assert (message["category"], message["urgency"]) == ("emergency", "urgent")
    assert "douleur thoracique" in message["summary"] and "15" in message["summary"]
    assert "poitrine" in message["transcript"]
    assert message["patient"] == {"phone": "0698765432"}
