"""The FHIR adapter against a real FHIR R4 server (sekmet-fhir on 127.0.0.1).

Every test makes its own Practitioner (and Schedule, Slots) so that they share one
server and stay apart. ``fhir_server`` also plays the practice's staff, working
directly in the cloud agenda. Failures the real server cannot be made to show
(500, garbage, a hang-up) come from a tiny ``http.server`` on 127.0.0.1.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from uuid import uuid4
from zoneinfo import ZoneInfo

import httpx
import pytest

from appliance.errors import ConfigError, SyncError
from appliance.sync.adapters import fhir
from appliance.sync.adapter import Booking, RemoteRef, SyncConflict
from appliance.sync.adapters.fhir import FhirAdapter, FhirSettings
from tests.cloud.fhir_server import FhirServer
from tests.ports import free_port


PARIS = ZoneInfo("Europe/Paris")
MONDAY = datetime(2027, 3, 1, tzinfo=PARIS)
NINE = MONDAY.replace(hour=9)
SYSTEM = "urn:appliance:booking"


@dataclass
class Practice:
    """One practitioner, mapped as ``martin``, and the adapter the box would use."""

    server: FhirServer
    practitioner: str
    settings: FhirSettings
    adapter: FhirAdapter
    schedule: str | None = None

    def booking(self, start: datetime = NINE, minutes: int = 15, slot: dict[str, Any] | None = None) -> Booking:
        return booking_at(start, minutes, slot)

    def appointments(self, booking: Booking) -> list[dict[str, Any]]:
        return self.server.search("Appointment", identifier=f"{SYSTEM}|{booking.key}")

    def pull(self, cursor: str | None = None):  # type: ignore[no-untyped-def]
        return self.adapter.changes(cursor, MONDAY, MONDAY + timedelta(days=1))


def booking_at(start: datetime = NINE, minutes: int = 15, slot: dict[str, Any] | None = None) -> Booking:
    """A fresh booking of ``martin`` (a new key each time), in ``slot`` if given."""
    return Booking(
        key=f"box-test/appt-{uuid4().hex[:10]}",
        practitioner_id="martin",
        reason_id="consultation",
        reason_label="Consultation",
        start=start,
        end=start + timedelta(minutes=minutes),
        patient_last_name="Dupont",
        patient_first_name="Jeanne",
        patient_birth_date=date(1958, 4, 12),
        patient_phone="+33612345678",
        remote_slot=RemoteRef(remote_id=f"Slot/{slot['id']}", version=f'W/"{slot["meta"]["versionId"]}"')
        if slot else None,
    )


@contextmanager
def practice_on(server: FhirServer, *, with_schedule: bool = False, client: httpx.Client | None = None) -> Iterator[Practice]:
    practitioner = server.practitioner()
    schedule = server.schedule(practitioner) if with_schedule else None
    settings = FhirSettings(
        base_url=server.base_url,
        practitioners={"martin": practitioner},
        schedules={"martin": schedule} if schedule else {},
    )
    with FhirAdapter(settings, client) as adapter:
        yield Practice(server, practitioner, settings, adapter, schedule)


@pytest.fixture
def practice(fhir_server: FhirServer) -> Iterator[Practice]:
    with practice_on(fhir_server) as made:
        yield made


@pytest.fixture
def slotted(fhir_server: FhirServer) -> Iterator[Practice]:
    with practice_on(fhir_server, with_schedule=True) as made:
        yield made


# -- create ------------------------------------------------------------------------


def test_a_booking_becomes_a_booked_appointment_with_the_patient_inside(practice: Practice) -> None:
    booking = practice.booking()
    ref = practice.adapter.create(booking, "msg-1")
    stored = practice.server.read(f"Appointment/{ref.remote_id}")
    assert stored["status"] == "booked"
    assert stored["identifier"] == [{"system": SYSTEM, "value": booking.key}]
    assert (stored["start"], stored["end"]) == ("2027-03-01T09:00:00+01:00", "2027-03-01T09:15:00+01:00")
    assert stored["serviceType"][0]["text"] == stored["description"] == "Consultation"
    patient = stored["contained"][0]
    assert patient["name"] == [{"family": "Dupont", "given": ["Jeanne"]}]
    assert (patient["birthDate"], patient["telecom"][0]["value"]) == ("1958-04-12", "+33612345678")
    actors = [p["actor"]["reference"] for p in stored["participant"]]
    assert actors == ["#patient", practice.practitioner]
    assert ref.version == 'W/"1"'
    assert practice.server.search("Patient", family="Dupont", birthdate="1958-04-12") == []  # no Patient litter


def test_a_booking_with_little_known_about_the_caller_is_still_valid_fhir(practice: Practice) -> None:
    # The server refuses empty strings: what the box does not know is left out.
    booking = replace(practice.booking(), patient_first_name="", patient_birth_date=None, patient_phone=None,
                      reason_id="", reason_label=" ")
    ref = practice.adapter.create(booking, "msg-1")
    stored = practice.server.read(f"Appointment/{ref.remote_id}")
    assert stored["contained"] == [{"resourceType": "Patient", "id": "patient", "name": [{"family": "Dupont"}]}]
    assert "serviceType" not in stored and "description" not in stored


def test_creating_twice_with_the_same_key_makes_one_appointment(practice: Practice) -> None:
    booking = practice.booking()
    first = practice.adapter.create(booking, "msg-1")
    again = practice.adapter.create(booking, "msg-1")  # the first reply was lost; the worker sends it again
    assert again.remote_id == first.remote_id
    assert len(practice.appointments(booking)) == 1


def test_an_appointment_the_staff_made_at_that_time_is_a_conflict(practice: Practice) -> None:
    practice.server.appointment(practice.practitioner, NINE, NINE + timedelta(minutes=30))
    booking = practice.booking(start=NINE + timedelta(minutes=15))
    with pytest.raises(SyncConflict) as caught:
        practice.adapter.create(booking, "msg-1")
    assert caught.value.code == "fhir-overlap" and caught.value.retry is False
    assert practice.appointments(booking) == []


def test_the_time_right_after_or_a_cancelled_appointment_is_free(practice: Practice) -> None:
    practice.server.appointment(practice.practitioner, NINE, NINE + timedelta(minutes=30))
    practice.server.appointment(practice.practitioner, NINE.replace(hour=10), NINE.replace(hour=11), status="cancelled")
    right_after = practice.booking(start=NINE + timedelta(minutes=30))
    where_cancelled = practice.booking(start=NINE.replace(hour=10))
    practice.adapter.create(right_after, "msg-1")
    practice.adapter.create(where_cancelled, "msg-2")
    assert len(practice.appointments(right_after)) == len(practice.appointments(where_cancelled)) == 1


def test_another_practitioners_appointment_is_no_conflict(fhir_server: FhirServer, practice: Practice) -> None:
    fhir_server.appointment(fhir_server.practitioner("Other"), NINE, NINE + timedelta(minutes=30))
    booking = practice.booking()
    practice.adapter.create(booking, "msg-1")
    assert len(practice.appointments(booking)) == 1


def test_a_free_slot_is_taken_in_the_same_transaction(slotted: Practice) -> None:
    [slot] = slotted.server.free_slots(slotted.schedule or "", NINE, 1)
    booking = slotted.booking(slot=slot)
    ref = slotted.adapter.create(booking, "msg-1")
    assert slotted.server.read(f"Slot/{slot['id']}")["status"] == "busy"
    stored = slotted.server.read(f"Appointment/{ref.remote_id}")
    assert stored["slot"] == [{"reference": f"Slot/{slot['id']}"}]


def test_a_slot_someone_took_is_a_conflict_and_nothing_is_written(slotted: Practice) -> None:
    [slot] = slotted.server.free_slots(slotted.schedule or "", NINE, 1)
    booking = slotted.booking(slot=slot)  # the box saw it free, version 1
    slotted.server.update({**slot, "status": "busy"})  # the reception gave it away meanwhile: version 2
    with pytest.raises(SyncConflict) as caught:
        slotted.adapter.create(booking, "msg-1")
    assert caught.value.code == "fhir-slot-taken"
    assert slotted.appointments(booking) == []
    assert slotted.server.read(f"Slot/{slot['id']}")["meta"]["versionId"] == "2"


def test_a_slot_edited_but_still_free_is_booked(slotted: Practice) -> None:
    [slot] = slotted.server.free_slots(slotted.schedule or "", NINE, 1)
    booking = slotted.booking(slot=slot)
    slotted.server.update({**slot, "comment": "Room 2"})  # a new version, still free
    slotted.adapter.create(booking, "msg-1")
    assert slotted.server.read(f"Slot/{slot['id']}")["status"] == "busy"


def test_a_slot_given_away_while_the_box_books_it_is_a_conflict(fhir_server: FhirServer) -> None:
    def reception_takes_it_just_before(request: httpx.Request) -> None:
        if request.method == "POST" and request.url.path.endswith("/fhir"):  # the transaction
            fhir_server.update({**fhir_server.read(f"Slot/{slot['id']}"), "status": "busy"})

    with httpx.Client(event_hooks={"request": [reception_takes_it_just_before]}) as client:
        with practice_on(fhir_server, with_schedule=True, client=client) as slotted:
            [slot] = slotted.server.free_slots(slotted.schedule or "", NINE, 1)
            booking = slotted.booking(slot=slot)
            with pytest.raises(SyncConflict):
                slotted.adapter.create(booking, "msg-1")
    assert fhir_server.search("Appointment", identifier=f"{SYSTEM}|{booking.key}") == []


def test_replaying_a_slot_booking_whose_reply_was_lost_returns_the_same_appointment(slotted: Practice) -> None:
    [slot] = slotted.server.free_slots(slotted.schedule or "", NINE, 1)
    booking = slotted.booking(slot=slot)
    first = slotted.adapter.create(booking, "msg-1")
    again = slotted.adapter.create(booking, "msg-1")  # the slot is busy now, by this very booking
    assert again.remote_id == first.remote_id
    assert len(slotted.appointments(booking)) == 1


def test_a_slot_deleted_in_the_cloud_is_a_conflict(slotted: Practice) -> None:
    [slot] = slotted.server.free_slots(slotted.schedule or "", NINE, 1)
    slotted.server.delete(f"Slot/{slot['id']}")
    with pytest.raises(SyncConflict, match="no longer exists"):
        slotted.adapter.create(slotted.booking(slot=slot), "msg-1")


# -- find ----------------------------------------------------------------------------


def test_find_recovers_a_booking_whose_reply_was_lost(practice: Practice) -> None:
    booking = practice.booking()
    made = practice.adapter.create(booking, "msg-1")
    assert practice.adapter.find(booking.key) == made
    assert practice.adapter.find("box-test/appt-never-sent") is None


def test_find_ignores_a_cancelled_booking(practice: Practice) -> None:
    booking = practice.booking()
    ref = practice.adapter.create(booking, "msg-1")
    practice.adapter.cancel(booking, ref, "msg-2")
    assert practice.adapter.find(booking.key) is None


# -- move -----------------------------------------------------------------------------


def test_a_move_gives_new_times_and_a_new_version(practice: Practice) -> None:
    booking = practice.booking()
    ref = practice.adapter.create(booking, "msg-1")
    later = replace(booking, start=NINE.replace(hour=11), end=NINE.replace(hour=11, minute=30))
    moved = practice.adapter.move(later, ref, "msg-2")
    stored = practice.server.read(f"Appointment/{ref.remote_id}")
    assert (stored["start"], stored["end"]) == ("2027-03-01T11:00:00+01:00", "2027-03-01T11:30:00+01:00")
    assert moved == RemoteRef(remote_id=ref.remote_id, version='W/"2"')
    assert practice.adapter.move(later, ref, "msg-2") == moved  # replayed: nothing more written


def test_a_move_without_a_ref_finds_the_booking_by_key(practice: Practice) -> None:
    booking = practice.booking()
    ref = practice.adapter.create(booking, "msg-1")
    moved = practice.adapter.move(replace(booking, start=NINE.replace(hour=14), end=NINE.replace(hour=14, minute=15)), None, "msg-2")
    assert moved.remote_id == ref.remote_id
    assert practice.server.read(f"Appointment/{ref.remote_id}")["start"] == "2027-03-01T14:00:00+01:00"


def test_a_move_of_a_booking_the_cloud_never_had_creates_it(practice: Practice) -> None:
    booking = practice.booking()
    moved = practice.adapter.move(booking, None, "msg-2")
    assert [a["id"] for a in practice.appointments(booking)] == [moved.remote_id]


def test_a_move_racing_a_staff_edit_reads_again_and_keeps_the_edit(fhir_server: FhirServer) -> None:
    edited: list[dict[str, Any]] = []

    def staff_edits_just_before(request: httpx.Request) -> None:
        if request.method == "PUT" and not edited:
            [appt] = fhir_server.search("Appointment", identifier=f"{SYSTEM}|{booking.key}")
            edited.append(fhir_server.update({**appt, "comment": "Prefers the morning"}))

    with httpx.Client(event_hooks={"request": [staff_edits_just_before]}) as client:
        with practice_on(fhir_server, client=client) as practice:
            booking = practice.booking()
            ref = practice.adapter.create(booking, "msg-1")
            moved = practice.adapter.move(replace(booking, start=NINE.replace(hour=10), end=NINE.replace(hour=10, minute=15)), ref, "msg-2")
    stored = fhir_server.read(f"Appointment/{ref.remote_id}")
    assert edited and moved.version == 'W/"3"'  # created, edited by the staff, moved
    assert (stored["start"], stored["comment"]) == ("2027-03-01T10:00:00+01:00", "Prefers the morning")


def test_a_move_that_keeps_losing_the_race_is_retried_later(fhir_server: FhirServer) -> None:
    def staff_edits_every_time(request: httpx.Request) -> None:
        if request.method == "PUT":
            [appt] = fhir_server.search("Appointment", identifier=f"{SYSTEM}|{booking.key}")
            fhir_server.update({**appt, "comment": f"edit {time.monotonic()}"})

    with httpx.Client(event_hooks={"request": [staff_edits_every_time]}) as client:
        with practice_on(fhir_server, client=client) as practice:
            booking = practice.booking()
            ref = practice.adapter.create(booking, "msg-1")
            with pytest.raises(SyncError) as caught:
                practice.adapter.move(replace(booking, start=NINE.replace(hour=10), end=NINE.replace(hour=10, minute=15)), ref, "msg-2")
    assert (caught.value.code, caught.value.retry) == ("fhir-busy", True)


def test_a_move_onto_a_taken_time_is_a_conflict_and_changes_nothing(practice: Practice) -> None:
    booking = practice.booking()
    ref = practice.adapter.create(booking, "msg-1")
    practice.server.appointment(practice.practitioner, NINE.replace(hour=15), NINE.replace(hour=16))
    with pytest.raises(SyncConflict):
        practice.adapter.move(replace(booking, start=NINE.replace(hour=15, minute=30), end=NINE.replace(hour=15, minute=45)), ref, "msg-2")
    assert practice.server.read(f"Appointment/{ref.remote_id}")["start"] == "2027-03-01T09:00:00+01:00"


def test_a_move_can_overlap_its_own_old_time(practice: Practice) -> None:
    booking = practice.booking(minutes=30)
    ref = practice.adapter.create(booking, "msg-1")
    practice.adapter.move(replace(booking, start=NINE + timedelta(minutes=15), end=NINE + timedelta(minutes=45)), ref, "msg-2")
    assert practice.server.read(f"Appointment/{ref.remote_id}")["start"] == "2027-03-01T09:15:00+01:00"


def test_a_move_from_a_stale_version_lands_and_keeps_the_staffs_edit(practice: Practice) -> None:
    booking = practice.booking()
    ref = practice.adapter.create(booking, "msg-1")  # the box knows version 1
    practice.server.update({**practice.server.read(f"Appointment/{ref.remote_id}"), "comment": "Bring the X-rays"})
    moved = practice.adapter.move(replace(booking, start=NINE.replace(hour=17), end=NINE.replace(hour=17, minute=15)), ref, "msg-2")
    stored = practice.server.read(f"Appointment/{ref.remote_id}")
    assert (stored["start"], stored["comment"], moved.version) == ("2027-03-01T17:00:00+01:00", "Bring the X-rays", 'W/"3"')


def test_a_move_to_a_colleague_changes_the_practitioner(fhir_server: FhirServer, practice: Practice) -> None:
    colleague = fhir_server.practitioner("Durand")
    settings = replace(practice.settings, practitioners={"martin": practice.practitioner, "durand": colleague})
    booking = practice.booking()
    with FhirAdapter(settings) as adapter:
        ref = adapter.create(booking, "msg-1")
        adapter.move(replace(booking, practitioner_id="durand"), ref, "msg-2")
    actors = [p["actor"]["reference"] for p in fhir_server.read(f"Appointment/{ref.remote_id}")["participant"]]
    assert actors == ["#patient", colleague]


def test_a_move_between_slots_frees_the_old_one_and_takes_the_new(slotted: Practice) -> None:
    old, new = slotted.server.free_slots(slotted.schedule or "", NINE, 2)
    booking = slotted.booking(slot=old)
    ref = slotted.adapter.create(booking, "msg-1")
    moved = replace(slotted.booking(start=NINE + timedelta(minutes=15), slot=new), key=booking.key)
    slotted.adapter.move(moved, ref, "msg-2")
    assert slotted.server.read(f"Slot/{old['id']}")["status"] == "free"
    assert slotted.server.read(f"Slot/{new['id']}")["status"] == "busy"
    assert slotted.server.read(f"Appointment/{ref.remote_id}")["slot"] == [{"reference": f"Slot/{new['id']}"}]


def test_a_booking_cancelled_in_the_cloud_is_not_moved(practice: Practice) -> None:
    booking = practice.booking()
    ref = practice.adapter.create(booking, "msg-1")
    practice.server.update({**practice.server.read(f"Appointment/{ref.remote_id}"), "status": "cancelled"})
    with pytest.raises(SyncError) as caught:
        practice.adapter.move(replace(booking, start=NINE.replace(hour=10), end=NINE.replace(hour=10, minute=15)), ref, "msg-2")
    assert (caught.value.code, caught.value.retry) == ("fhir-cancelled-in-cloud", False)


# -- cancel --------------------------------------------------------------------------


def test_cancel_marks_the_appointment_cancelled_and_twice_is_fine(practice: Practice) -> None:
    booking = practice.booking()
    ref = practice.adapter.create(booking, "msg-1")
    practice.adapter.cancel(booking, ref, "msg-2")
    practice.adapter.cancel(booking, ref, "msg-2")
    practice.adapter.cancel(booking, None, "msg-3")
    stored = practice.server.read(f"Appointment/{ref.remote_id}")
    assert (stored["status"], stored["meta"]["versionId"]) == ("cancelled", "2")


def test_cancelling_a_booking_never_created_is_fine(practice: Practice) -> None:
    practice.adapter.cancel(practice.booking(), None, "msg-1")
    practice.adapter.cancel(practice.booking(), RemoteRef(remote_id="gone-long-ago"), "msg-1")


def test_cancel_frees_the_slot(slotted: Practice) -> None:
    [slot] = slotted.server.free_slots(slotted.schedule or "", NINE, 1)
    booking = slotted.booking(slot=slot)
    ref = slotted.adapter.create(booking, "msg-1")
    slotted.adapter.cancel(booking, ref, "msg-2")
    assert slotted.server.read(f"Slot/{slot['id']}")["status"] == "free"


# -- changes -------------------------------------------------------------------------


def test_the_first_pull_is_full_then_only_what_changed(fhir_server: FhirServer, practice: Practice) -> None:
    # Outside the window, and older than what is in it (an incremental pull reports
    # whatever changed since the cursor, outside the window too).
    fhir_server.appointment(practice.practitioner, NINE + timedelta(days=3), NINE + timedelta(days=3, minutes=15))
    fhir_server.appointment(fhir_server.practitioner("Other"), NINE, NINE + timedelta(minutes=15))
    mine = practice.booking()
    ref = practice.adapter.create(mine, "msg-1")
    staff = fhir_server.appointment(practice.practitioner, NINE.replace(hour=10), NINE.replace(hour=10, minute=20))

    first = practice.pull()
    assert first.full
    by_id = {item.remote_id: item for item in first.items}
    assert set(by_id) == {f"Appointment/{ref.remote_id}", f"Appointment/{staff['id']}"}  # the window, martin only
    assert by_id[f"Appointment/{ref.remote_id}"].booking_key == mine.key
    assert by_id[f"Appointment/{staff['id']}"].booking_key is None
    assert {item.practitioner_id for item in first.items} == {"martin"}
    assert by_id[f"Appointment/{staff['id']}"].start == NINE.replace(hour=10)

    quiet = practice.pull(first.cursor)
    assert (quiet.items, quiet.removed, quiet.full) == ((), (), False)
    assert quiet.cursor == first.cursor

    walk_in = fhir_server.appointment(practice.practitioner, NINE.replace(hour=16), NINE.replace(hour=16, minute=15))
    practice.adapter.cancel(mine, ref, "msg-2")
    later = practice.pull(quiet.cursor)
    assert {(i.remote_id, i.status) for i in later.items} == {
        (f"Appointment/{walk_in['id']}", "busy"),
        (f"Appointment/{ref.remote_id}", "cancelled"),
    }
    assert practice.pull(later.cursor).items == ()


def test_a_staff_cancellation_and_a_deletion_show_up(fhir_server: FhirServer, practice: Practice) -> None:
    kept = fhir_server.appointment(practice.practitioner, NINE, NINE + timedelta(minutes=15))
    dropped = fhir_server.appointment(practice.practitioner, NINE.replace(hour=11), NINE.replace(hour=11, minute=15))
    cursor = practice.pull().cursor
    fhir_server.update({**kept, "status": "cancelled"})
    fhir_server.delete(f"Appointment/{dropped['id']}")
    changed = practice.pull(cursor)
    assert [(i.remote_id, i.status) for i in changed.items] == [(f"Appointment/{kept['id']}", "cancelled")]
    assert f"Appointment/{dropped['id']}" in changed.removed


def test_an_appointment_moved_out_of_the_window_is_still_reported(fhir_server: FhirServer, practice: Practice) -> None:
    appt = fhir_server.appointment(practice.practitioner, NINE, NINE + timedelta(minutes=15))
    cursor = practice.pull().cursor
    next_week = NINE + timedelta(days=7)
    fhir_server.update({**appt, "start": next_week.isoformat(), "end": (next_week + timedelta(minutes=15)).isoformat()})
    [item] = practice.pull(cursor).items
    assert (item.remote_id, item.start) == (f"Appointment/{appt['id']}", next_week)


def test_slots_of_the_mapped_schedule_come_as_free_or_busy(slotted: Practice) -> None:
    first, second = slotted.server.free_slots(slotted.schedule or "", NINE, 2)
    slotted.adapter.create(slotted.booking(slot=first), "msg-1")
    pulled = slotted.pull()
    slots = {i.remote_id: i.status for i in pulled.items if i.remote_id.startswith("Slot/")}
    assert slots == {f"Slot/{first['id']}": "busy", f"Slot/{second['id']}": "free"}


def test_a_pull_follows_the_next_pages(monkeypatch: pytest.MonkeyPatch, practice: Practice) -> None:
    monkeypatch.setattr(fhir, "_PAGE_SIZE", 2)
    made = {
        practice.server.appointment(practice.practitioner, NINE + timedelta(minutes=15 * n), NINE + timedelta(minutes=15 * (n + 1)))["id"]
        for n in range(5)
    }
    pulled = practice.pull()
    assert {i.remote_id for i in pulled.items} == {f"Appointment/{i}" for i in made}
    assert practice.pull(pulled.cursor).items == ()


def test_deletions_are_found_across_history_pages(monkeypatch: pytest.MonkeyPatch, practice: Practice) -> None:
    made = [
        practice.server.appointment(practice.practitioner, NINE + timedelta(hours=n), NINE + timedelta(hours=n, minutes=15))
        for n in range(3)
    ]
    cursor = practice.pull().cursor
    for appt in made:
        practice.server.delete(f"Appointment/{appt['id']}")
    monkeypatch.setattr(fhir, "_PAGE_SIZE", 2)
    assert set(practice.pull(cursor).removed) == {f"Appointment/{appt['id']}" for appt in made}


def test_two_changes_in_the_same_millisecond_are_neither_lost_nor_repeated() -> None:
    def appointment(appt_id: str) -> dict[str, Any]:
        return {"resource": {
            "resourceType": "Appointment", "id": appt_id, "status": "booked",
            "meta": {"versionId": "1", "lastUpdated": "2027-01-04T10:00:00.123Z"},
            "start": "2027-03-01T09:00:00+01:00", "end": "2027-03-01T09:15:00+01:00",
            "participant": [{"actor": {"reference": "Practitioner/1"}, "status": "accepted"}],
        }}

    # "a" was delivered by the last pull; "b" was written in the same millisecond, just after it.
    bundle = {"resourceType": "Bundle", "type": "searchset", "entry": [appointment("a"), appointment("b")]}
    with stub_server(_Reply(body=bundle)) as (base_url, seen):
        with FhirAdapter(FhirSettings(base_url=base_url, practitioners={"martin": "Practitioner/1"})) as adapter:
            pulled = adapter.changes("2027-01-04T10:00:00.123Z Appointment/a@1", MONDAY, MONDAY + timedelta(days=1))
    assert [item.remote_id for item in pulled.items] == ["Appointment/b"]
    assert pulled.cursor == "2027-01-04T10:00:00.123Z Appointment/a@1 Appointment/b@1"
    assert "_lastUpdated=ge2027-01-04T10%3A00%3A00.123Z" in str(seen[0].get("path"))


def test_a_change_while_paging_does_not_hide_an_appointment(monkeypatch: pytest.MonkeyPatch, fhir_server: FhirServer) -> None:
    # sekmet pages by offset: an appointment updated between two pages moves to the
    # end (sorted by _lastUpdated), and the one after its old place is skipped.
    monkeypatch.setattr(fhir, "_PAGE_SIZE", 2)
    edited: list[str] = []

    def staff_edits_during_paging(request: httpx.Request) -> None:
        if "_offset=2" in str(request.url) and not edited:
            edited.append(fhir_server.update({**made[0], "comment": "Late"})["id"])

    with httpx.Client(event_hooks={"request": [staff_edits_during_paging]}) as client:
        with practice_on(fhir_server, client=client) as practice:
            made = [
                fhir_server.appointment(practice.practitioner, NINE + timedelta(hours=n), NINE + timedelta(hours=n, minutes=15))
                for n in range(5)
            ]
            pulled = practice.pull()
    assert edited
    assert sorted(i.remote_id for i in pulled.items) == sorted(f"Appointment/{a['id']}" for a in made)


def test_an_unreadable_cursor_means_a_full_pull(practice: Practice) -> None:
    practice.adapter.create(practice.booking(), "msg-1")
    pulled = practice.pull("sync-token-of-another-adapter")
    assert pulled.full and len(pulled.items) == 1


# -- check and errors ------------------------------------------------------------------


def test_check_describes_a_live_server(practice: Practice) -> None:
    assert practice.adapter.check().startswith(f"FHIR 4.0.1 server at {practice.server.base_url}")


def test_a_closed_port_is_worth_retrying() -> None:
    base_url = f"http://127.0.0.1:{free_port()}/fhir"
    with FhirAdapter(FhirSettings(base_url=base_url, practitioners={"martin": "Practitioner/1"})) as adapter:
        with pytest.raises(SyncError) as checked:
            adapter.check()
        with pytest.raises(SyncError) as created:
            adapter.create(booking_at(), "msg-1")
    assert (checked.value.code, checked.value.retry) == ("fhir-unreachable", True)
    assert base_url in checked.value.detail
    assert created.value.retry is True


def test_a_wrong_address_on_a_live_server_is_refused_for_good(fhir_server: FhirServer) -> None:
    settings = FhirSettings(base_url=f"{fhir_server.base_url}/nowhere", practitioners={"martin": "Practitioner/1"})
    with FhirAdapter(settings) as adapter:
        with pytest.raises(SyncError) as checked:
            adapter.check()
        with pytest.raises(SyncError) as found:
            adapter.find("box-test/appt-1")
    assert checked.value.retry is False and "404" in checked.value.detail
    assert found.value.retry is False


class _Reply:
    """What the stub server answers: a status and a body, or a hang-up."""

    def __init__(self, status: int = 200, body: Any = None, raw: bytes | None = None, hang_up: bool = False,
                 delay_s: float = 0.0) -> None:
        self.status, self.hang_up, self.delay_s = status, hang_up, delay_s
        self.raw = raw if raw is not None else json.dumps(body if body is not None else {}).encode()


@contextmanager
def stub_server(reply: _Reply) -> Iterator[tuple[str, list[dict[str, str]]]]:
    seen: list[dict[str, str]] = []
    stopping = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen.append({**dict(self.headers), "path": self.path})
            if stopping.wait(reply.delay_s) or reply.hang_up:
                self.close_connection = True
                return
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/fhir+json")
                self.send_header("Content-Length", str(len(reply.raw)))
                self.end_headers()
                self.wfile.write(reply.raw)
            except OSError:  # the client gave up first (the timeout test)
                pass

        do_GET = do_POST = do_PUT = _answer

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = False  # server_close() then waits for every handler
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/fhir", seen
    finally:
        stopping.set()
        server.shutdown()
        server.server_close()
        thread.join()


_APPOINTMENT_WITH_A_NUMBER_FOR_START = {
    "resourceType": "Bundle", "type": "searchset",
    "entry": [{"resource": {"resourceType": "Appointment", "id": "1", "status": "booked", "start": 5,
                            "meta": {"versionId": "1", "lastUpdated": "2027-01-01T00:00:00.000Z"}}}],
}


@pytest.mark.parametrize(
    ("reply", "code", "retry"),
    [
        (_Reply(500, {"resourceType": "OperationOutcome"}), "fhir-unavailable", True),
        (_Reply(503), "fhir-unavailable", True),
        (_Reply(429), "fhir-unavailable", True),
        (_Reply(hang_up=True), "fhir-unreachable", True),
        (_Reply(delay_s=0.8), "fhir-timeout", True),
        (_Reply(400, {"resourceType": "OperationOutcome", "issue": [{"diagnostics": "bad request"}]}), "fhir-refused", False),
        (_Reply(401), "fhir-auth", False),
        (_Reply(404), "fhir-refused", False),
        (_Reply(raw=b"<html>Service window</html>"), "fhir-malformed", False),
        (_Reply(body=[1, 2]), "fhir-malformed", False),
        (_Reply(body={"resourceType": "Bundle", "entry": "lots"}), "fhir-malformed", False),
        (_Reply(body=_APPOINTMENT_WITH_A_NUMBER_FOR_START), "fhir-malformed", False),
    ],
    ids=["500", "503", "429", "hang-up", "timeout", "400", "401", "404", "html", "json-list", "entry-not-a-list",
         "start-a-number"],
)
def test_failures_are_sorted_into_retry_or_give_up(reply: _Reply, code: str, retry: bool) -> None:
    with stub_server(reply) as (base_url, _seen):
        settings = FhirSettings(base_url=base_url, practitioners={"martin": "Practitioner/1"}, timeout_s=0.5)
        with FhirAdapter(settings) as adapter:
            with pytest.raises(SyncError) as caught:
                adapter.changes(None, MONDAY, MONDAY + timedelta(days=1))
    assert (caught.value.code, caught.value.retry) == (code, retry)
    assert not isinstance(caught.value, SyncConflict)


def test_the_bearer_token_goes_with_every_request() -> None:
    with stub_server(_Reply(body={"resourceType": "CapabilityStatement", "fhirVersion": "4.0.1"})) as (base_url, seen):
        settings = FhirSettings(base_url=base_url, practitioners={"martin": "Practitioner/1"}, bearer_token="s3cret")
        with FhirAdapter(settings) as adapter:
            assert adapter.check() == f"FHIR 4.0.1 server at {base_url}"
    assert seen[0]["Authorization"] == "Bearer s3cret"


def test_a_server_of_another_fhir_version_is_refused() -> None:
    with stub_server(_Reply(body={"resourceType": "CapabilityStatement", "fhirVersion": "5.0.0"})) as (base_url, _):
        with FhirAdapter(FhirSettings(base_url=base_url, practitioners={"martin": "Practitioner/1"})) as adapter:
            with pytest.raises(SyncError, match="speaks FHIR 5.0.0"):
                adapter.check()


def test_an_unmapped_practitioner_is_refused_before_any_request(practice: Practice) -> None:
    with pytest.raises(SyncError) as caught:
        practice.adapter.create(replace(practice.booking(), practitioner_id="durand"), "msg-1")
    assert (caught.value.code, caught.value.retry) == ("fhir-unmapped-practitioner", False)


def test_patient_details_never_reach_the_log_at_info(caplog: pytest.LogCaptureFixture, slotted: Practice) -> None:
    [slot] = slotted.server.free_slots(slotted.schedule or "", NINE, 1)
    booking = slotted.booking(slot=slot)
    with caplog.at_level(logging.INFO, logger="appliance.sync"):
        ref = slotted.adapter.create(booking, "msg-1")
        slotted.adapter.move(replace(booking, start=NINE.replace(hour=12), end=NINE.replace(hour=12, minute=15), remote_slot=None), ref, "msg-2")
        slotted.adapter.cancel(booking, ref, "msg-3")
        slotted.pull()
    assert booking.key in caplog.text
    for secret in ("Dupont", "Jeanne", "1958", "+33612345678"):
        assert secret not in caplog.text


# -- settings ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"base_url": "ftp://agenda.example/fhir"}, "fhir.base_url must be an http:// or https:// URL"),
        ({"base_url": "agenda.example/fhir"}, "fhir.base_url must be an http:// or https:// URL"),
        ({"practitioners": {}}, "fhir.practitioners must map at least one"),
        ({"practitioners": {"martin": "Patient/1"}}, "fhir.practitioners.martin must look like Practitioner/<id>"),
        ({"practitioners": {"martin": "Practitioner/1", "durand": "Practitioner/1"}}, "two practitioners"),
        ({"schedules": {"durand": "Schedule/1"}}, "fhir.schedules: durand not in fhir.practitioners"),
        ({"schedules": {"martin": "Slot/1"}}, "fhir.schedules.martin must look like Schedule/<id>"),
        ({"identifier_system": "booking"}, "fhir.identifier_system must be an absolute URI"),
        ({"timeout_s": 0}, "fhir.timeout_s must be 0.5-120 s"),
        ({"bearer_token": "two words"}, "fhir.bearer_token must be a non-empty token"),
    ],
)
def test_settings_name_what_is_wrong(changes: dict[str, Any], problem: str) -> None:
    values: dict[str, Any] = {"base_url": "https://agenda.example/fhir", "practitioners": {"martin": "Practitioner/1"}}
    with pytest.raises(ConfigError, match=problem.replace("(", r"\(")):
        FhirSettings(**{**values, **changes})


def test_settings_keep_a_clean_base_url() -> None:
    settings = FhirSettings(base_url="https://agenda.example/fhir/", practitioners={"martin": "Practitioner/1"})
    assert settings.base_url == "https://agenda.example/fhir"
    assert (settings.identifier_system, settings.timeout_s) == ("urn:appliance:booking", 10.0)
