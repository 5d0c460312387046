"""Retention: nothing kept longer than the practice chose; a patient's data
exported and erased on request."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from appliance.agenda.practice import builtin_practice
from appliance.clock import PARIS, FixedClock
from appliance.errors import ConfigError
from appliance.retention import RetentionSettings, purge_now
from appliance.store import Store, appointments, outbox, queries
from appliance.store.appointments import BookingRequest
from appliance.store.inbox import insert_message, unhandled_messages
from appliance.store.retention import ERASED, PatientQuery, erase_patient, export_patient

NOW = datetime(2026, 6, 1, 10, 0, tzinfo=PARIS)
DEMO = builtin_practice("demo")
ANNE = PatientQuery(last_name="Durand", birth_date=date(1980, 5, 17), phone="0639981234")


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def store(tmp_path: Path, clock: FixedClock) -> Iterator[Store]:
    with Store.open(tmp_path / "box.sqlite3", clock=clock) as opened:
        queries.save_practice(opened, DEMO)
        yield opened


def a_call(store: Store, call_id: str, when: datetime, caller: str = "0639981234") -> None:
    queries.insert_call(store, call_id, when, caller, "sim")
    queries.append_call_events(store, call_id, [(0, 0, "transcript_ready", {"text": "je voudrais un rendez-vous"})])
    queries.finish_call(store, call_id, when + timedelta(minutes=2), "booked", {"turns": 5})
    insert_message(store, call_id=call_id, created_at=when, category="renewal", urgency="days",
                   summary="Renouvellement", transcript="…", patient={"last_name": "Durand",
                   "birth_date": "1980-05-17", "phone": caller})


def book(store: Store, start: datetime, last_name: str = "Durand") -> appointments.Appointment:
    return appointments.book(store, DEMO, BookingRequest(
        practitioner_id="martin", reason_id="consultation", start=start, end=start + timedelta(minutes=20),
        patient_last_name=last_name, patient_first_name="Anne", patient_birth_date=date(1980, 5, 17),
        patient_phone="0639981234"))


def test_purge_removes_what_is_older_than_each_period_and_keeps_the_rest(store: Store, clock: FixedClock) -> None:
    a_call(store, "old", NOW - timedelta(days=40))
    a_call(store, "recent", NOW - timedelta(days=2))

    purged = purge_now(store, RetentionSettings(transcripts_days=30, messages_days=30), clock)

    assert (purged.call_events, purged.messages, purged.calls) == (1, 1, 0)
    assert queries.call_events(store, "old") == [] and queries.call_events(store, "recent") != []
    assert queries.get_call(store, "old").outcome == "booked", "the call stays a year; only what was said goes"
    assert [m.call_id for m in unhandled_messages(store)] == ["recent"]
    assert purge_now(store, RetentionSettings(), clock).total == 0, "a second purge finds nothing more"


def test_past_appointments_go_only_once_the_cloud_has_them(store: Store, clock: FixedClock) -> None:
    past = book(store, datetime(2025, 3, 4, 9, 0, tzinfo=PARIS))  # pending: the cloud never heard of it
    assert purge_now(store, RetentionSettings(appointments_days=30), clock).appointments == 0
    with store.transaction() as tx:  # delivered a year ago
        tx.execute("UPDATE outbox SET state = 'done', done_at = '2025-03-04T09:00:00Z'")
        appointments.mark_synced(tx, past.id, "A/1", "1")
    purged = purge_now(store, RetentionSettings(appointments_days=30), clock)
    assert (purged.appointments, purged.outbox_rows) == (1, 1)
    assert appointments.get_appointment(store, past.id) is None


def test_a_patients_data_is_exported_whole(store: Store) -> None:
    booked = book(store, NOW + timedelta(days=2))
    book(store, NOW + timedelta(days=3), last_name="Martin")  # someone else
    a_call(store, "c1", NOW - timedelta(days=1))

    exported = export_patient(store, ANNE)

    assert [a["id"] for a in exported["appointments"]] == [booked.id]
    assert [m["call_id"] for m in exported["messages"]] == ["c1"]
    [call] = exported["calls"]
    assert call["events"][0]["data"]["text"] == "je voudrais un rendez-vous"


def test_erasure_cancels_future_visits_through_the_outbox_and_removes_the_rest(store: Store) -> None:
    future = book(store, NOW + timedelta(days=2))
    a_call(store, "c1", NOW - timedelta(days=1))

    erased = erase_patient(store, ANNE, now=NOW)

    assert (erased.appointments, erased.cancelled, erased.messages, erased.calls) == (1, 1, 1, 1)
    gone = appointments.get_appointment(store, future.id)
    assert (gone.status, gone.patient_last_name, gone.patient_birth_date, gone.patient_phone) == (
        "cancelled", ERASED, None, None)
    assert outbox.outbox_entries(store)[-1].kind == "appointment.cancelled"
    assert unhandled_messages(store) == [] and queries.call_events(store, "c1") == []
    assert queries.get_call(store, "c1").caller_id is None
    assert export_patient(store, ANNE) == {"patient": export_patient(store, ANNE)["patient"],
                                            "appointments": [], "messages": [], "calls": []}


def test_retention_periods_are_checked() -> None:
    with pytest.raises(ConfigError, match="retention.messages_days"):
        RetentionSettings(messages_days=0)
    with pytest.raises(ConfigError, match="transcripts_days cannot be longer"):
        RetentionSettings(transcripts_days=400, calls_days=365)
