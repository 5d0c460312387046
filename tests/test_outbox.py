"""The outbox and its worker: every change reaches the cloud once, in order, or
is shown to the staff. Against an in-memory cloud (tests/fake_cloud.py); the
real FHIR and CalDAV servers are in test_sync_reliability.py."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from collections import deque
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from appliance.agenda.practice import builtin_practice
from appliance.clock import PARIS, FixedClock
from appliance.errors import SlotTaken, StoreError
from appliance.store import Store, appointments, outbox, settings
from appliance.store import db as store_db
from appliance.store.appointments import BookingRequest
from appliance.store.cloud import apply_pull
from appliance.store.inbox import unhandled_messages
from appliance.sync.adapter import RemoteBusy
from appliance.sync.worker import OutboxSettings, OutboxWorker
from tests.fake_cloud import FakeCloud

NOW = datetime(2026, 3, 3, 10, 0, tzinfo=PARIS)  # a Tuesday
WED_9H = datetime(2026, 3, 4, 9, 0, tzinfo=PARIS)
DEMO = builtin_practice("demo")


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def store(tmp_path: Path, clock: FixedClock) -> Iterator[Store]:
    with Store.open(tmp_path / "box.sqlite3", clock=clock) as opened:
        yield opened


def book(store: Store, start: datetime = WED_9H, **changes: Any) -> appointments.Appointment:
    fields: dict[str, Any] = dict(
        practitioner_id="martin", reason_id="consultation", start=start, end=start + timedelta(minutes=20),
        patient_last_name="Durand", patient_first_name="Anne", patient_birth_date=date(1980, 5, 17),
        patient_phone="0639981234",
    )
    fields.update(changes)
    return appointments.book(store, DEMO, BookingRequest(**fields))


def worker(store: Store, cloud: FakeCloud, clock: FixedClock, **settings_: Any) -> OutboxWorker:
    return OutboxWorker(store, cloud, DEMO, clock, OutboxSettings(**settings_), rng=random.Random(7))


def test_a_booking_reaches_the_cloud_once_and_is_then_synced(store: Store, clock: FixedClock) -> None:
    cloud = FakeCloud()
    booked = book(store)

    result = worker(store, cloud, clock).run_once()

    assert result.sent == 1 and cloud.creates == 1
    [sent] = cloud.bookings.values()
    assert sent.key == f"{settings.box_id(store)}/appt-{booked.id}"
    assert (sent.start, sent.patient_last_name, sent.reason_label) == (WED_9H, "Durand", "une consultation")
    assert appointments.get_appointment(store, booked.id).sync_state == "synced"
    assert [e.state for e in outbox.outbox_entries(store)] == ["done"]
    assert worker(store, cloud, clock).run_once().claimed == 0


def test_an_unreachable_cloud_is_retried_with_growing_jittered_waits_then_buried(
    store: Store, clock: FixedClock
) -> None:
    cloud = FakeCloud(failures=deque(["down"] * 50))
    booked = book(store)
    w = worker(store, cloud, clock, max_attempts=4, backoff_base_s=2, backoff_cap_s=60)
    waits = []
    for _ in range(3):
        assert w.run_once().retried == 1
        [entry] = outbox.outbox_entries(store)
        assert w.run_once().claimed == 0, "not due again before its time"
        waits.append((entry.next_attempt_at - clock.now()).total_seconds())
        clock.advance(timedelta(seconds=61))
    assert all(1 <= wait <= cap for wait, cap in zip(waits, (2, 4, 8)))

    assert w.run_once().dead == 1
    [entry] = outbox.outbox_entries(store)
    assert (entry.state, entry.attempts) == ("dead", 4) and "connection refused" in entry.last_error
    assert appointments.get_appointment(store, booked.id).sync_state == "dead"
    assert outbox.sync_status(store).dead == 1


def test_a_refusal_for_good_is_a_dead_letter_at_once_and_revive_gives_it_another_round(
    store: Store, clock: FixedClock
) -> None:
    cloud = FakeCloud(failures=deque(["refuse"]))
    book(store)
    w = worker(store, cloud, clock)

    assert w.run_once().dead == 1
    [entry] = outbox.outbox_entries(store, state="dead")
    assert outbox.revive(store, entry.id)
    assert w.run_once().sent == 1 and cloud.creates == 1


def test_a_lost_reply_is_found_in_the_cloud_not_sent_twice_nor_called_a_conflict(
    store: Store, clock: FixedClock
) -> None:
    cloud = FakeCloud(failures=deque(["lose_reply"]))
    booked = book(store)
    w = worker(store, cloud, clock)

    assert w.run_once().retried == 1
    clock.advance(timedelta(minutes=5))
    assert w.run_once().already_there == 1

    assert cloud.creates == 1 and ("find", cloud.calls[-1][1]) == cloud.calls[-1]
    assert appointments.get_appointment(store, booked.id).sync_state == "synced"
    assert unhandled_messages(store) == []


def test_a_slot_taken_in_the_cloud_meanwhile_is_a_conflict_the_staff_see(store: Store, clock: FixedClock) -> None:
    cloud = FakeCloud(others=[RemoteBusy(remote_id="Appointment/staff-1", practitioner_id="martin",
                                         start=WED_9H, end=WED_9H + timedelta(minutes=30), status="busy")])
    booked = book(store)  # offline: the box did not know

    assert worker(store, cloud, clock).run_once().conflicts == 1

    assert cloud.creates == 0
    assert appointments.get_appointment(store, booked.id).sync_state == "conflict"
    [message] = unhandled_messages(store)
    assert (message.category, message.urgency) == ("sync_conflict", "urgent")
    assert "Rappeler le patient" in message.summary and message.patient["phone"] == "0639981234"
    assert outbox.sync_status(store).conflicts == 1


def test_a_conflict_texts_the_patient_when_the_practice_wants_it(store: Store, clock: FixedClock) -> None:
    texts: list[tuple[str, str]] = []
    cloud = FakeCloud(others=[RemoteBusy(remote_id="x", practitioner_id="martin", start=WED_9H,
                                         end=WED_9H + timedelta(minutes=20), status="busy")])
    book(store)
    w = OutboxWorker(store, cloud, DEMO, clock, OutboxSettings(sms_on_conflict=True),
                     sms=lambda phone, text: texts.append((phone, text)))
    w.run_once()
    [(phone, text)] = texts
    assert phone == "0639981234" and "04/03/2026 à 09:00" in text and "rappeler" in text


def test_changes_of_one_appointment_go_in_order_and_others_are_not_held_up(store: Store, clock: FixedClock) -> None:
    cloud = FakeCloud(failures=deque(["down"]))
    first = book(store)
    appointments.move(store, first.id, WED_9H + timedelta(hours=1), WED_9H + timedelta(hours=1, minutes=20))
    appointments.cancel(store, first.id)
    second = book(store, WED_9H + timedelta(hours=3))
    w = worker(store, cloud, clock)

    result = w.run_once()  # the first's "created" fails: its move and cancel wait; the second goes
    assert (result.retried, result.sent) == (1, 1)
    assert [what for what, _ in cloud.calls] == ["create", "create"]
    clock.advance(timedelta(minutes=10))
    w.drain()

    mine = [what for what, key in cloud.calls if key.endswith(f"appt-{first.id}")]
    assert mine == ["create", "create", "move", "cancel"]
    assert appointments.get_appointment(store, first.id).status == "cancelled"
    assert appointments.get_appointment(store, second.id).sync_state == "synced"


def test_a_lease_of_a_crashed_worker_expires_and_the_row_is_sent_by_the_next(store: Store, clock: FixedClock) -> None:
    book(store)
    [entry] = outbox.claim_due(store, now=clock.now(), owner="dead-worker", lease_s=60, horizon_s=600, limit=5)
    cloud = FakeCloud()
    w = worker(store, cloud, clock)
    assert w.run_once().claimed == 0, "still leased"
    clock.advance(timedelta(seconds=61))
    assert w.run_once().sent == 1
    # The dead worker's late answer changes nothing.
    with store.transaction() as tx:
        assert outbox.settle(tx, entry, "sent") is False


def test_a_clock_that_jumps_back_decades_does_not_freeze_the_outbox(store: Store, clock: FixedClock) -> None:
    cloud = FakeCloud(failures=deque(["down"]))
    book(store)
    w = worker(store, cloud, clock, backoff_base_s=100, backoff_cap_s=300)
    w.run_once()  # retry scheduled for 2026 + up to 100 s
    clock.advance(datetime(1970, 1, 1, tzinfo=timezone.utc) - clock.now())  # reboot without a real-time clock

    assert w.run_once().sent == 1


def test_cancel_and_move_write_the_agenda_and_the_outbox_together(store: Store) -> None:
    booked = book(store)
    other = book(store, WED_9H + timedelta(hours=2))
    with pytest.raises(SlotTaken):
        appointments.move(store, booked.id, other.start, other.end)
    moved = appointments.move(store, booked.id, WED_9H + timedelta(minutes=30), WED_9H + timedelta(minutes=50))
    assert (moved.start, moved.revision) == (WED_9H + timedelta(minutes=30), 1)
    cancelled = appointments.cancel(store, booked.id)
    assert appointments.cancel(store, booked.id) == cancelled  # twice: nothing more queued
    with pytest.raises(StoreError, match="appointment-cancelled"):
        appointments.move(store, booked.id, WED_9H, WED_9H + timedelta(minutes=20))

    kinds = [(e.kind, e.idempotency_key.split("/")[1]) for e in outbox.outbox_entries(store)]
    assert kinds == [
        ("appointment.created", f"appt-{booked.id}-created"),
        ("appointment.created", f"appt-{other.id}-created"),
        ("appointment.moved", f"appt-{booked.id}-moved-1"),
        ("appointment.cancelled", f"appt-{booked.id}-cancelled"),
    ]
    # The freed time can be booked again.
    assert book(store, WED_9H).id > other.id


def test_an_appointment_is_found_by_name_and_birth_date_never_by_name_alone(store: Store, clock: FixedClock) -> None:
    booked = book(store)
    book(store, WED_9H + timedelta(hours=1), patient_birth_date=date(1990, 1, 1))  # another Durand

    found = appointments.find_for_patient(store, "DURAND", date(1980, 5, 17), after=clock.now())
    assert [a.id for a in found] == [booked.id]
    assert appointments.find_for_patient(store, "Durand", date(1980, 5, 18), after=clock.now()) == []


def test_time_taken_in_the_cloud_is_not_offered_nor_bookable(store: Store) -> None:
    staff = RemoteBusy(remote_id="Appointment/9", practitioner_id="martin", start=WED_9H,
                       end=WED_9H + timedelta(minutes=30), status="busy")
    apply_pull(store, "fake", [staff], [], full=True, cursor="c1")

    busy = appointments.busy_intervals(store, WED_9H - timedelta(hours=1), WED_9H + timedelta(hours=1))
    assert busy == [("martin", WED_9H, WED_9H + timedelta(minutes=30))]
    with pytest.raises(SlotTaken):
        book(store)
    # Cancelled in the cloud: free again.
    apply_pull(store, "fake", [RemoteBusy(**{**vars(staff), "status": "cancelled"})], [], full=False, cursor="c2")
    assert book(store).start == WED_9H


def test_a_booking_another_box_made_is_busy_time_here(store: Store) -> None:
    theirs = RemoteBusy(remote_id="Appointment/77", practitioner_id="martin", start=WED_9H,
                        end=WED_9H + timedelta(minutes=20), status="busy", booking_key="0123456789ab/appt-3")
    apply_pull(store, "fake", [theirs], [], full=True, cursor="c")

    with pytest.raises(SlotTaken):
        book(store)


def test_the_staff_moving_a_box_booking_in_the_cloud_moves_it_here(store: Store, clock: FixedClock) -> None:
    booked = book(store)
    worker(store, FakeCloud(), clock).run_once()
    key = f"{settings.box_id(store)}/appt-{booked.id}"
    later = WED_9H + timedelta(hours=4)

    apply_pull(store, "fake", [RemoteBusy(remote_id="A/1", practitioner_id="martin", start=later,
                                          end=later + timedelta(minutes=20), status="busy", booking_key=key)],
               [], full=False, cursor="c")

    assert appointments.get_appointment(store, booked.id).start == later
    assert appointments.busy_intervals(store, later, later + timedelta(hours=1)) == [
        ("martin", later, later + timedelta(minutes=20))
    ], "the box's own booking is counted once"


def test_migration_0002_keeps_appointment_ids_never_reused(tmp_path: Path) -> None:
    # A database as the first version of the box left it: migration 0001 only,
    # the highest appointment deleted (its id must still never be given again).
    path = tmp_path / "old.sqlite3"
    [first] = [m for m in store_db.bundled_migrations() if m.version == 1]
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)")
    conn.execute("BEGIN")
    for statement in store_db._statements(first.sql):
        conn.execute(statement)
    conn.execute("INSERT INTO schema_migrations VALUES (1, 'init', 'x')")
    conn.execute("INSERT INTO calls (id, started_at, line) VALUES ('c', 'x', 'sim')")
    for n in range(3):
        conn.execute(
            "INSERT INTO appointments (practitioner_id, reason_id, start_utc, end_utc, origin,"
            " patient_last_name, created_at, sync_state) VALUES ('martin', 'consultation', ?, ?, 'phone', 'X', '2026-03-01T00:00:00Z', 'failed')",
            (f"2026-03-0{n + 1}T08:00:00Z", f"2026-03-0{n + 1}T08:20:00Z"),
        )
    conn.execute("DELETE FROM appointments WHERE id = 3")
    conn.execute("COMMIT")
    conn.close()

    with Store.open(path, clock=FixedClock(NOW)) as upgraded:
        assert appointments.get_appointment(upgraded, 1, tz=PARIS).sync_state == "dead"
        assert book(upgraded).id == 4


def test_the_cores_worker_task_sends_a_booking_made_while_it_runs_and_stops_when_told(
    store: Store, clock: FixedClock
) -> None:
    cloud = FakeCloud()
    w = worker(store, cloud, clock, pull_interval_s=3600)

    async def core() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(w.run(stop))
        await asyncio.sleep(0.1)
        booked = await asyncio.to_thread(book, store)
        for _ in range(100):  # the worker polls every second
            if appointments.get_appointment(store, booked.id).sync_state == "synced":
                break
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(task, timeout=5)

    asyncio.run(core())
    assert cloud.creates == 1 and [what for what, _ in cloud.calls] == ["changes", "create"]
