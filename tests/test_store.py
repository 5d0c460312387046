"""The store: migrations, one transaction per booking, and no slot given twice."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from appliance.agenda.practice import builtin_practice
from appliance.clock import PARIS, FixedClock
from appliance.errors import SlotTaken, StoreError
from appliance.store import Store
from appliance.store import appointments, outbox, queries, settings
from appliance.store import db as store_db
from appliance.store.appointments import BookingRequest

NOW = datetime(2026, 3, 3, 10, 0, tzinfo=PARIS)  # a Tuesday
DEMO = builtin_practice("demo")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "box.sqlite3", clock=FixedClock(NOW)) as opened:
        queries.save_practice(opened, DEMO)
        yield opened


def request(start: datetime, minutes: int = 20, **changes: Any) -> BookingRequest:
    fields: dict[str, Any] = dict(
        practitioner_id="martin",
        reason_id="consultation",
        start=start,
        end=start + timedelta(minutes=minutes),
        patient_last_name="Durand",
        patient_first_name="Anne",
        patient_birth_date=date(1980, 5, 17),
        patient_phone="0639981234",
        call_id=None,
    )
    fields.update(changes)
    return BookingRequest(**fields)


WEDNESDAY_9H = datetime(2026, 3, 4, 9, 0, tzinfo=PARIS)


# --- Opening and migrating -----------------------------------------------------


def test_opening_twice_applies_each_migration_once_and_keeps_the_data(tmp_path: Path) -> None:
    path = tmp_path / "box.sqlite3"
    with Store.open(path) as first:
        settings.put_setting(first, "greeting", "Bonjour")

    with Store.open(path) as again:
        shipped = [(m.version, m.name) for m in store_db.bundled_migrations()]
        assert again.applied_migrations() == shipped and shipped[:3] == [(1, "init"), (2, "sync"), (3, "practitioner_hours")]
        assert settings.get_setting(again, "greeting") == "Bonjour"


def test_the_file_is_in_wal_mode_with_foreign_keys_enforced(store: Store) -> None:
    with store.snapshot() as tx:
        journal = tx.one("PRAGMA journal_mode")
        foreign_keys = tx.one("PRAGMA foreign_keys")
        synchronous = tx.one("PRAGMA synchronous")

    assert (journal[0], foreign_keys[0], synchronous[0]) == ("wal", 1, 2)  # 2 = FULL


def test_a_database_from_a_newer_box_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "box.sqlite3"
    with Store.open(path) as store, store.transaction() as tx:
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'future', 'x')"
        )

    with pytest.raises(StoreError) as caught:
        Store.open(path)

    assert caught.value.code == "schema-too-new"


def test_a_transaction_rolls_back_when_its_block_raises(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction() as tx:
        settings.put_setting(tx, "greeting", "Bonjour")
        raise RuntimeError("power cut")

    assert settings.get_setting(store, "greeting") is None


def test_a_nested_transaction_is_refused_instead_of_deadlocking(store: Store) -> None:
    with store.transaction(), pytest.raises(StoreError, match="nested-transaction"):
        with store.transaction():
            pass


def test_saving_the_practice_again_replaces_the_copy(store: Store) -> None:
    queries.save_practice(store, DEMO)

    with store.snapshot() as tx:
        practitioners = tx.one("SELECT COUNT(*) FROM practitioners")[0]
    assert practitioners == 2
    assert settings.get_setting(store, "practice")["name"] == "Cabinet médical des Tilleuls"


# --- Booking -------------------------------------------------------------------


def test_booking_writes_the_appointment_and_its_outbox_row(store: Store) -> None:
    booked = appointments.book(store, DEMO, request(WEDNESDAY_9H))

    assert appointments.get_appointment(store, booked.id) == booked
    assert booked.start == WEDNESDAY_9H and booked.start.tzinfo == PARIS
    assert (booked.status, booked.origin, booked.sync_state) == ("booked", "phone", "pending")
    assert booked.patient_birth_date == date(1980, 5, 17)
    [entry] = outbox.outbox_entries(store)
    assert entry.kind == "appointment.created"
    key = f"{settings.box_id(store)}/appt-{booked.id}"
    assert entry.idempotency_key == f"{key}-created" and entry.payload["key"] == key
    assert entry.aggregate_key == f"appt-{booked.id}"
    assert entry.state == "pending" and entry.payload["start"] == "2026-03-04T09:00:00+01:00"
    assert entry.payload["patient_last_name"] == "Durand"


def test_a_failure_between_appointment_and_outbox_leaves_nothing_written(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    def enqueue_fails(*args: object, **kwargs: object) -> int:
        raise StoreError("disk-full", "simulated failure after the appointment insert")

    monkeypatch.setattr(appointments, "enqueue", enqueue_fails)

    with pytest.raises(StoreError, match="disk-full"):
        appointments.book(store, DEMO, request(WEDNESDAY_9H))

    assert appointments.busy_intervals(store, WEDNESDAY_9H, WEDNESDAY_9H + timedelta(hours=1)) == []
    assert outbox.outbox_entries(store) == []


def test_the_same_slot_cannot_be_booked_twice(store: Store) -> None:
    appointments.book(store, DEMO, request(WEDNESDAY_9H))

    with pytest.raises(SlotTaken):
        appointments.book(store, DEMO, request(WEDNESDAY_9H, patient_last_name="Petit"))

    assert len(outbox.outbox_entries(store)) == 1


def test_an_overlapping_visit_is_refused_but_back_to_back_ones_are_fine(store: Store) -> None:
    appointments.book(store, DEMO, request(WEDNESDAY_9H))  # 9:00-9:20

    with pytest.raises(SlotTaken):
        appointments.book(store, DEMO, request(WEDNESDAY_9H + timedelta(minutes=10)))
    appointments.book(store, DEMO, request(WEDNESDAY_9H + timedelta(minutes=20)))
    appointments.book(store, DEMO, request(WEDNESDAY_9H, practitioner_id="bernard"))


def test_a_booking_for_a_reason_the_practitioner_does_not_see_is_invalid(store: Store) -> None:
    with pytest.raises(StoreError) as caught:
        appointments.book(store, DEMO, request(WEDNESDAY_9H, minutes=30, reason_id="premiere"))

    assert caught.value.code == "booking-invalid"


def test_two_threads_booking_the_same_slot_through_two_stores_one_wins(tmp_path: Path) -> None:
    path = tmp_path / "box.sqlite3"
    with Store.open(path) as setup:
        queries.save_practice(setup, DEMO)
    stores = [Store.open(path), Store.open(path)]
    both_ready = threading.Barrier(2)
    outcomes: list[str] = []

    def book_with(store: Store, name: str) -> None:
        both_ready.wait()
        try:
            appointments.book(store, DEMO, request(WEDNESDAY_9H, patient_last_name=name))
            outcomes.append("booked")
        except SlotTaken:
            outcomes.append("taken")

    threads = [
        threading.Thread(target=book_with, args=(store, name))
        for store, name in zip(stores, ("Durand", "Petit"))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    for store in stores:
        store.close()

    assert sorted(outcomes) == ["booked", "taken"]
    with Store.open(path) as check:
        assert len(appointments.busy_intervals(check, WEDNESDAY_9H, WEDNESDAY_9H + timedelta(hours=1))) == 1
        assert len(outbox.outbox_entries(check)) == 1


def test_busy_intervals_are_aware_and_in_the_zone_asked(store: Store) -> None:
    appointments.book(store, DEMO, request(WEDNESDAY_9H))

    [(practitioner_id, start, end)] = appointments.busy_intervals(
        store, WEDNESDAY_9H - timedelta(hours=1), WEDNESDAY_9H + timedelta(hours=1)
    )

    assert practitioner_id == "martin"
    assert (start, end) == (WEDNESDAY_9H, WEDNESDAY_9H + timedelta(minutes=20))
    assert start.tzinfo == PARIS


# --- Seeding the demo agenda ----------------------------------------------------


def test_seeding_twice_writes_the_demo_agenda_once(store: Store) -> None:
    first = appointments.seed_appointments(store, DEMO, NOW)
    second = appointments.seed_appointments(store, DEMO, NOW)

    assert first > 500 and second == 0
    assert outbox.outbox_entries(store) == []  # seeds never go to the cloud


def test_seeding_leaves_out_what_overlaps_a_real_booking(store: Store) -> None:
    real = appointments.book(store, DEMO, request(WEDNESDAY_9H, minutes=30, reason_id="premiere",
                                              practitioner_id="bernard"))

    appointments.seed_appointments(store, DEMO, NOW)

    week = appointments.busy_intervals(store, NOW, NOW + timedelta(days=7))
    bernard = sorted((s, e) for pid, s, e in week if pid == "bernard")
    assert (real.start, real.end) in bernard
    for (_, end), (next_start, _) in zip(bernard, bernard[1:]):
        assert end <= next_start


# --- Calls -------------------------------------------------------------------------


def test_a_call_and_its_event_log_round_trip(store: Store) -> None:
    queries.insert_call(store, "call-1", NOW, caller_id="0639981234", line="sim:demo")
    queries.append_call_events(
        store, "call-1", [(0, 0, "answered", {}), (1, 1800, "transcript", {"text": "bonjour"})]
    )
    queries.finish_call(store, "call-1", NOW + timedelta(minutes=2), "booked", {"appointment": 7})

    call = queries.get_call(store, "call-1")
    assert call is not None
    assert (call.outcome, call.summary, call.ended_at) == (
        "booked", {"appointment": 7}, NOW + timedelta(minutes=2)
    )
    assert [(e.seq, e.kind, e.data) for e in queries.call_events(store, "call-1")] == [
        (0, "answered", {}),
        (1, "transcript", {"text": "bonjour"}),
    ]


def test_recent_calls_are_newest_first_in_local_time(store: Store) -> None:
    queries.insert_call(store, "old", NOW - timedelta(days=2), caller_id=None, line="sim")
    queries.insert_call(store, "morning", NOW - timedelta(hours=2), caller_id=None, line="sim")
    queries.insert_call(store, "now", NOW, caller_id=None, line="sim")

    calls = queries.recent_calls(store, since=NOW - timedelta(days=1))

    assert [c.id for c in calls] == ["now", "morning"]
    assert calls[0].started_at == NOW and calls[0].started_at.tzinfo == PARIS


def test_the_practice_name_is_read_from_the_saved_copy(tmp_path: Path, store: Store) -> None:
    assert queries.practice_name(store) == "Cabinet médical des Tilleuls"
    with Store.open(tmp_path / "empty.sqlite3") as empty:
        assert queries.practice_name(empty) is None


def test_finishing_an_unknown_call_is_an_error(store: Store) -> None:
    with pytest.raises(StoreError, match="call-unknown"):
        queries.finish_call(store, "nope", NOW, "hung-up", {})


def test_a_booking_made_during_a_call_points_at_it(store: Store) -> None:
    queries.insert_call(store, "call-1", NOW, caller_id=None, line="sim:demo")

    booked = appointments.book(store, DEMO, request(WEDNESDAY_9H, call_id="call-1"))

    assert booked.call_id == "call-1"
    assert outbox.outbox_entries(store)[0].payload["call_id"] == "call-1"


def test_one_store_shared_by_worker_threads_serialises_their_transactions(store: Store) -> None:
    # The core hands the store to asyncio.to_thread workers: many threads, one connection.
    starts = [WEDNESDAY_9H + timedelta(minutes=20 * i) for i in range(8)]
    errors: list[BaseException] = []

    def book_at(start: datetime) -> None:
        try:
            appointments.book(store, DEMO, request(start))
        except BaseException as err:  # reported below, not lost in the thread
            errors.append(err)

    threads = [threading.Thread(target=book_at, args=(start,)) for start in starts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert errors == []
    assert len(outbox.outbox_entries(store)) == 8


def test_a_python_migration_that_fails_half_way_leaves_the_schema_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys
    import types

    broken = types.ModuleType("broken_migration")

    def migrate(db) -> None:  # type: ignore[no-untyped-def]
        db["practitioners"].add_column("nickname", str)  # sqlite-utils, inside the migration's transaction
        raise RuntimeError("the disk filled up")

    broken.migrate = migrate  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "broken_migration", broken)
    shipped = store_db.bundled_migrations()
    monkeypatch.setattr(
        store_db, "bundled_migrations", lambda: [*shipped, store_db.Migration(99, "broken", "", "broken_migration")]
    )
    path = tmp_path / "box.sqlite3"

    with pytest.raises(RuntimeError, match="disk filled"):
        Store.open(path)

    monkeypatch.setattr(store_db, "bundled_migrations", lambda: shipped)
    with Store.open(path) as store:
        with store.snapshot() as tx:
            columns = [row["name"] for row in tx.execute("SELECT name FROM pragma_table_info('practitioners')")]
        assert "nickname" not in columns and "hours" in columns
        assert store.applied_migrations() == [(m.version, m.name) for m in shipped]
