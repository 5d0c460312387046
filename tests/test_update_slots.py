"""The box's side of an A/B update: tryboot state, trial check, and the database.

The Pi firmware's files are real files in temporary directories (autoboot.txt and
the device-tree properties it writes); time is a fake timer, so a five-minute
trial runs in microseconds; the store is the real one with its real migrations.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from appliance.clock import PARIS, FixedClock
from appliance.control import ControlServer
from appliance.errors import StoreError
from appliance.store import Store
from appliance.store import db as store_db
from appliance.store import outbox
from appliance.system import update
from appliance.system.update import (
    Autoboot,
    PiTryboot,
    TrialSettings,
    UpdateError,
    check_trial,
    core_healthy,
    parse_autoboot,
    rauc_backend,
    recover_store,
    snapshot_store,
)

NOW = datetime(2026, 11, 3, 9, 30, tzinfo=PARIS)
SHIPPED = store_db.bundled_migrations  # the migrations of this version of the box
PI_DOC_EXAMPLE = "[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n"


# -- autoboot.txt ---------------------------------------------------------------------------


def test_autoboot_of_the_pi_documentation_reads_as_committed_2_trial_3() -> None:
    assert parse_autoboot(PI_DOC_EXAMPLE) == Autoboot(committed=2, tryboot=3)


def test_autoboot_round_trips_and_fits_in_what_the_firmware_reads() -> None:
    boot = Autoboot(committed=3, tryboot=2)
    assert parse_autoboot(boot.render()) == boot
    assert len(boot.render().encode()) <= 512


def test_autoboot_comments_and_other_sections_are_ignored() -> None:
    text = "# A/B\n[all]\ntryboot_a_b=1  # partition level\nboot_partition=3\n[none]\nboot_partition=9\n"
    assert parse_autoboot(text) == Autoboot(committed=3, tryboot=3)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("[all]\nboot_partition=2\n[tryboot]\nboot_partition=3\n", "tryboot_a_b=1"),
        ("[all]\ntryboot_a_b=1\n", "no boot_partition"),
        ("[all]\ntryboot_a_b=1\nboot_partition=two\n", "must be a number"),
    ],
)
def test_autoboot_that_would_not_do_a_b_is_refused_with_a_reason(text: str, says: str) -> None:
    with pytest.raises(UpdateError) as refused:
        parse_autoboot(text)
    assert says in str(refused.value)


# -- the Pi tryboot bootloader ---------------------------------------------------------------


class Pi:
    """The boot partition and the firmware's device-tree properties, as files."""

    def __init__(self, root: Path) -> None:
        self.autoboot_dir = root / "autoboot"
        self.chosen_dir = root / "chosen"
        self.autoboot_dir.mkdir()
        self.chosen_dir.mkdir()
        self.bootloader = PiTryboot(self.autoboot_dir, self.chosen_dir)

    def set(self, autoboot: str, *, booted_partition: int, tryboot: bool) -> Pi:
        (self.autoboot_dir / "autoboot.txt").write_text(autoboot)
        (self.chosen_dir / "partition").write_bytes(booted_partition.to_bytes(4, "big"))
        (self.chosen_dir / "tryboot").write_bytes(int(tryboot).to_bytes(4, "big"))
        return self

    @property
    def autoboot(self) -> Autoboot:
        return parse_autoboot((self.autoboot_dir / "autoboot.txt").read_text())


def autoboot(committed: int, tryboot: int) -> str:
    return Autoboot(committed=committed, tryboot=tryboot).render()


@pytest.fixture
def pi(tmp_path: Path) -> Pi:
    return Pi(tmp_path)


def test_state_of_a_trial_boot_of_b(pi: Pi) -> None:
    state = pi.set(PI_DOC_EXAMPLE, booted_partition=3, tryboot=True).bootloader.state()
    assert (state.committed, state.trial, state.booted, state.tryboot, state.on_trial) == ("A", "B", "B", True, True)


def test_a_tryboot_that_landed_on_the_committed_slot_is_no_trial(pi: Pi) -> None:
    # B's boot partition unbootable: the firmware started A although the flag was set.
    state = pi.set(PI_DOC_EXAMPLE, booted_partition=2, tryboot=True).bootloader.state()
    assert state.booted == "A" and not state.on_trial


def test_commit_makes_every_boot_start_the_slot_and_arms_no_further_trial(pi: Pi) -> None:
    pi.set(PI_DOC_EXAMPLE, booted_partition=3, tryboot=True).bootloader.commit("B")
    assert pi.autoboot == Autoboot(committed=3, tryboot=3)
    assert not list(pi.autoboot_dir.glob("*.tmp"))


def test_missing_boot_partition_is_reported_as_such(pi: Pi) -> None:
    with pytest.raises(UpdateError) as refused:
        pi.bootloader.state()
    assert refused.value.code == "autoboot-missing"
    assert "mounted" in refused.value.detail


def test_autoboot_naming_a_partition_that_is_no_slot_is_refused(pi: Pi) -> None:
    pi.set(autoboot(2, 5), booted_partition=2, tryboot=False)
    with pytest.raises(UpdateError) as refused:
        pi.bootloader.state()
    assert "partition 5, which is no slot" in refused.value.detail


# -- RAUC's custom backend ----------------------------------------------------------------------

# (autoboot committed/tryboot, booted partition, tryboot flag, request) → (status, output, autoboot after)
BACKEND_CASES = [
    ((2, 2), 2, False, ["get-primary"], 0, "A", (2, 2)),
    ((2, 3), 2, False, ["get-primary"], 0, "B", (2, 3)),
    ((2, 3), 3, True, ["get-current"], 0, "B", (2, 3)),
    ((2, 2), 2, False, ["get-state", "A"], 0, "good", (2, 2)),
    ((2, 2), 2, False, ["get-state", "B"], 0, "bad", (2, 2)),
    ((2, 3), 2, False, ["get-state", "B"], 0, "good", (2, 3)),
    # rauc install: B marked bad before it is written (an old trial is called off) ...
    ((2, 3), 2, False, ["set-state", "B", "bad"], 0, "", (2, 2)),
    # ... then made primary: armed for one tryboot.
    ((2, 2), 2, False, ["set-primary", "B"], 0, "", (2, 3)),
    ((2, 3), 2, False, ["set-primary", "A"], 0, "", (2, 2)),
    # rauc status mark-good on the trial boot commits it ...
    ((2, 3), 3, True, ["set-state", "B", "good"], 0, "", (3, 3)),
    # ... but never a slot that has not been seen running.
    ((2, 3), 2, False, ["set-state", "B", "good"], 1, "only be marked good while it runs on trial", (2, 3)),
    ((2, 2), 2, False, ["set-state", "A", "good"], 0, "", (2, 2)),
    ((2, 2), 2, False, ["set-state", "A", "bad"], 1, "committed slot", (2, 2)),
    ((2, 2), 2, False, ["reboot"], 2, "unknown bootloader request", (2, 2)),
]


@pytest.mark.parametrize(("boot", "booted", "flag", "asked", "status", "output", "after"), BACKEND_CASES)
def test_rauc_backend(
    pi: Pi, boot: tuple[int, int], booted: int, flag: bool, asked: list[str],
    status: int, output: str, after: tuple[int, int],
) -> None:
    pi.set(autoboot(*boot), booted_partition=booted, tryboot=flag)
    got_status, got_output = rauc_backend(pi.bootloader, asked)
    assert got_status == status
    assert output in got_output if status else got_output == output
    assert (pi.autoboot.committed, pi.autoboot.tryboot) == after


def test_rauc_backend_runs_as_a_command_with_its_paths_from_the_environment(
    pi: Pi, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pi.set(PI_DOC_EXAMPLE, booted_partition=2, tryboot=False)
    monkeypatch.setenv("APPLIANCE_AUTOBOOT_DIR", str(pi.autoboot_dir))
    monkeypatch.setenv("APPLIANCE_CHOSEN_DIR", str(pi.chosen_dir))
    assert update.main(["rauc-backend", "get-primary"]) == 0
    assert capsys.readouterr().out == "B\n"


# -- the trial boot's check ---------------------------------------------------------------------


class FakeTimer:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_trial_is_committed_once_the_core_reports_healthy(pi: Pi) -> None:
    pi.set(PI_DOC_EXAMPLE, booted_partition=3, tryboot=True)
    timer, reboots = FakeTimer(), []
    outcome = check_trial(pi.bootloader, lambda: timer.now >= 42, timer, TrialSettings(timeout_s=300, interval_s=5),
                          reboot=lambda: reboots.append("reboot"))
    assert outcome == "committed"
    assert pi.autoboot == Autoboot(committed=3, tryboot=3)
    assert timer.now == 45  # the first probe after 42 s
    assert reboots == []


def test_trial_that_never_gets_healthy_is_given_up_at_the_timeout_and_the_old_slot_booted(pi: Pi) -> None:
    pi.set(PI_DOC_EXAMPLE, booted_partition=3, tryboot=True)
    timer, reboots = FakeTimer(), []
    outcome = check_trial(pi.bootloader, lambda: False, timer, TrialSettings(timeout_s=120, interval_s=7),
                          reboot=lambda: reboots.append("reboot"))
    assert outcome == "rolled-back"
    assert timer.now == 120 and max(timer.slept) == 7
    assert pi.autoboot == Autoboot(committed=2, tryboot=2)  # A stays, and no tryboot goes to B again
    assert reboots == ["reboot"]


def test_trial_without_reboot_leaves_the_slot_uncommitted(pi: Pi) -> None:
    pi.set(PI_DOC_EXAMPLE, booted_partition=3, tryboot=True)
    assert check_trial(pi.bootloader, lambda: False, FakeTimer(), TrialSettings(timeout_s=10, interval_s=1)) == "rolled-back"
    assert pi.autoboot.committed == 2


@pytest.mark.parametrize(("booted", "flag"), [(2, False), (2, True), (3, False)])
def test_check_on_a_boot_that_is_no_trial_does_nothing(pi: Pi, booted: int, flag: bool) -> None:
    pi.set(PI_DOC_EXAMPLE, booted_partition=booted, tryboot=flag)
    probes: list[int] = []
    outcome = check_trial(pi.bootloader, lambda: probes.append(1) is None, FakeTimer(), reboot=lambda: probes.append(2))
    assert outcome == "not-on-trial"
    assert probes == []
    assert pi.autoboot == Autoboot(committed=2, tryboot=3)


@pytest.mark.parametrize(("timeout_s", "interval_s"), [(5, 1), (300, 0), (60, 61)])
def test_trial_settings_out_of_range_are_refused(timeout_s: float, interval_s: float) -> None:
    with pytest.raises(UpdateError, match="must be"):
        TrialSettings(timeout_s=timeout_s, interval_s=interval_s)


# -- health, over the core's real control socket ----------------------------------------------------


@pytest.fixture
def control_socket(tmp_path: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """A ControlServer answering ``ping`` with whatever the test puts in ``answer``."""
    answer: dict[str, Any] = {"ok": True, "line": "sim", "calls": 0}
    path = tmp_path / "control.sock"
    loop = asyncio.new_event_loop()

    async def ping(_: dict[str, Any]) -> dict[str, Any]:
        return answer

    server = ControlServer(path, {"ping": ping})
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    assert asyncio.run_coroutine_threadsafe(server.start(), loop).result(5)
    try:
        yield path, answer
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def test_core_is_healthy_when_it_answers_ping_and_systemd_shows_it_active(control_socket: tuple[Path, dict[str, Any]]) -> None:
    path, _ = control_socket
    assert core_healthy(path, lambda: True)
    assert not core_healthy(path, lambda: False)


def test_core_answering_not_ok_is_not_healthy(control_socket: tuple[Path, dict[str, Any]]) -> None:
    path, answer = control_socket
    answer.clear()
    answer.update(ok=False, error="starting")
    assert not core_healthy(path, lambda: True)


def test_no_core_listening_is_not_healthy(tmp_path: Path) -> None:
    assert not core_healthy(tmp_path / "control.sock", lambda: True)


# -- the database across an update ----------------------------------------------------------------


def box_store(path: Path) -> Store:
    return Store.open(path, clock=FixedClock(NOW))


def enqueue(store: Store, key: str) -> None:
    with store.transaction() as tx:
        outbox.enqueue(tx, outbox.APPOINTMENT_CREATED, idempotency_key=key, aggregate_key=key, payload={"id": key})


def outbox_keys(path: Path) -> list[str]:
    with box_store(path) as store:
        return [entry.idempotency_key for entry in outbox.outbox_entries(store)]


def newer_migrations() -> list[store_db.Migration]:
    """What the next version of the box would bring: one more migration."""
    current = SHIPPED()
    return current + [store_db.Migration(
        current[-1].version + 1, "trial_notes",
        "CREATE TABLE trial_note (id INTEGER PRIMARY KEY, text TEXT NOT NULL);"
        "INSERT INTO trial_note (text) VALUES ('written by the new version');",
    )]


def test_snapshot_keeps_only_the_latest_copy_and_it_opens(tmp_path: Path) -> None:
    db, update_dir = tmp_path / "appliance.db", tmp_path / "update"
    with box_store(db) as store:
        enqueue(store, "appt-1")
        snapshot_store(db, update_dir, "2026.10.1")
        enqueue(store, "appt-2")
        latest = snapshot_store(db, update_dir, "2026.11.1")
    assert latest == update_dir / "store-before-2026.11.1.db"
    assert sorted(p.name for p in update_dir.iterdir()) == ["store-before-2026.11.1.db"]
    assert outbox_keys(latest) == ["appt-1", "appt-2"]


def test_snapshot_of_a_box_without_a_store_is_nothing(tmp_path: Path) -> None:
    assert snapshot_store(tmp_path / "appliance.db", tmp_path / "update", "1.0") is None
    assert not (tmp_path / "update").exists()


def test_snapshot_refuses_a_version_that_is_not_a_plain_name(tmp_path: Path) -> None:
    box_store(tmp_path / "appliance.db").close()
    with pytest.raises(UpdateError, match="not a plain version"):
        snapshot_store(tmp_path / "appliance.db", tmp_path / "update", "../../etc/passwd")


def test_failed_trial_after_a_newer_migration_gives_the_old_code_its_store_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db, update_dir = tmp_path / "appliance.db", tmp_path / "update"
    with box_store(db) as store:  # the old slot, before the update
        enqueue(store, "appt-1")
        enqueue(store, "appt-2")
    snapshot_store(db, update_dir, "2026.11.1")

    with monkeypatch.context() as new_slot:  # the trial boot: the new code migrates and works
        new_slot.setattr(store_db, "bundled_migrations", newer_migrations)
        with box_store(db) as store:
            enqueue(store, "appt-taken-during-trial")

    with pytest.raises(StoreError) as refused:  # back on the old slot
        box_store(db)
    assert refused.value.code == "schema-too-new"

    assert recover_store(db, update_dir, now=NOW) == "restored"
    assert outbox_keys(db) == ["appt-1", "appt-2"]
    assert "trial_note" not in {row["name"] for row in _tables(db)}
    aside = update_dir / "store-from-trial-20261103T083000Z.db"
    assert aside.exists()
    with monkeypatch.context() as new_slot:  # the newer file is kept whole, for the next attempt or the staff
        new_slot.setattr(store_db, "bundled_migrations", newer_migrations)
        assert outbox_keys(aside) == ["appt-1", "appt-2", "appt-taken-during-trial"]
    assert (update_dir / "store-before-2026.11.1.db").exists()  # the copy stays for a second failure


def _tables(db: Path) -> list[Any]:
    with box_store(db) as store, store.snapshot() as tx:
        return tx.execute("SELECT name FROM sqlite_master WHERE type = 'table'")


def test_recover_leaves_a_store_the_running_code_opens_alone(tmp_path: Path) -> None:
    db = tmp_path / "appliance.db"
    with box_store(db) as store:
        enqueue(store, "appt-1")
    before = db.read_bytes()
    assert recover_store(db, tmp_path / "update") == "store-fine"
    assert db.read_bytes() == before
    assert recover_store(tmp_path / "none.db", tmp_path / "update") == "no-store"


def test_recover_without_a_copy_says_what_to_do_and_keeps_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "appliance.db"
    with monkeypatch.context() as new_slot:
        new_slot.setattr(store_db, "bundled_migrations", newer_migrations)
        box_store(db).close()
    with pytest.raises(UpdateError) as refused:
        recover_store(db, tmp_path / "update")
    assert refused.value.code == "no-snapshot"
    assert "boot the newer slot again or restore a backup" in refused.value.detail
    assert db.exists()


def test_migration_that_fails_on_the_new_slot_leaves_the_store_as_the_old_code_left_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "appliance.db"
    with box_store(db) as store:
        enqueue(store, "appt-1")
        applied = store.applied_migrations()

    def failing_migrations() -> list[store_db.Migration]:
        current = SHIPPED()
        return current + [store_db.Migration(
            current[-1].version + 1, "broken",
            "ALTER TABLE outbox ADD COLUMN trial_flag TEXT;"
            "INSERT INTO no_such_table VALUES (1);",  # fails after the first statement changed the schema
        )]

    with monkeypatch.context() as new_slot:
        new_slot.setattr(store_db, "bundled_migrations", failing_migrations)
        with pytest.raises(StoreError, match="no_such_table"):
            box_store(db)

    with box_store(db) as store:  # the old code, as after a fallback
        assert store.applied_migrations() == applied
        with store.snapshot() as tx:
            columns = {row["name"] for row in tx.execute("PRAGMA table_info(outbox)")}
    assert "trial_flag" not in columns
    assert outbox_keys(db) == ["appt-1"]
    assert recover_store(db, tmp_path / "update") == "store-fine"


# -- the command line ------------------------------------------------------------------------------


def test_command_line_errors_are_sentences_not_tracebacks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("APPLIANCE_AUTOBOOT_DIR", str(tmp_path / "not-mounted"))
    assert update.main(["status"]) == 1
    assert capsys.readouterr().err.startswith("error: autoboot-missing: ")
    assert update.main(["--data-dir", str(tmp_path), "check", "--timeout-s", "2"]) == 1
    assert "the trial timeout must be 10-3600 s" in capsys.readouterr().err
    assert update.main(["--data-dir", str(tmp_path), "install", str(tmp_path / "nope.raucb")]) == 1
    assert "no such bundle file" in capsys.readouterr().err


def test_status_says_which_slot_runs_and_which_is_on_trial(
    pi: Pi, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pi.set(PI_DOC_EXAMPLE, booted_partition=3, tryboot=True)
    monkeypatch.setenv("APPLIANCE_AUTOBOOT_DIR", str(pi.autoboot_dir))
    monkeypatch.setenv("APPLIANCE_CHOSEN_DIR", str(pi.chosen_dir))
    assert update.main(["status"]) == 0
    assert capsys.readouterr().out == "booted: B (trial)\ncommitted: A\nnext trial: B\n"
