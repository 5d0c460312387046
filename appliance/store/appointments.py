"""Appointments in the local agenda: book, move, cancel, find; and their sync state.

Every change of an appointment writes its outbox row in the same ``BEGIN
IMMEDIATE`` transaction (``outbox.enqueue``), so the cloud hears of exactly the
changes that were committed, in the order they were made. The write lock is
taken before any "is this time still free?" check, so two lines (or the web
page and a line) can never both get the same slot.

Moments are stored as UTC text and come back as aware datetimes in the
practice's zone.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from typing import Any, Literal

from appliance.agenda.demo import demo_appointments
from appliance.agenda.practice import Practice
from appliance.agenda.slots import BusyInterval
from appliance.errors import SlotTaken, StoreError
from appliance.store.access import Db, reading, require_aware, writing
from appliance.store.db import Row, Tx, from_utc_text, utc_text
from appliance.store.outbox import APPOINTMENT_CANCELLED, APPOINTMENT_CREATED, APPOINTMENT_MOVED, enqueue
from appliance.store.queries import practice_tz
from appliance.store.settings import box_id

AppointmentStatus = Literal["booked", "cancelled"]
AppointmentOrigin = Literal["phone", "seed", "cloud", "staff"]
SyncState = Literal["pending", "synced", "conflict", "dead", "local_only"]


@dataclass(frozen=True, kw_only=True)
class BookingRequest:
    practitioner_id: str
    reason_id: str
    start: datetime
    end: datetime
    patient_last_name: str
    patient_first_name: str
    patient_birth_date: date
    patient_phone: str
    call_id: str | None = None
    origin: AppointmentOrigin = "phone"

    def __post_init__(self) -> None:
        require_aware("start", self.start)
        require_aware("end", self.end)
        if self.end <= self.start:
            raise ValueError(f"the visit ends ({self.end}) before it starts ({self.start})")
        # Stored to the second: anything finer would be lost and break the unique index.
        if self.start.second or self.start.microsecond or self.end.second or self.end.microsecond:
            raise ValueError("appointment times must be whole minutes")
        if not self.patient_last_name.strip():
            raise ValueError("patient_last_name must not be empty")
        if self.origin == "seed":
            raise ValueError("seed appointments are written by seed_appointments only")


@dataclass(frozen=True, kw_only=True)
class Appointment:
    id: int
    practitioner_id: str
    reason_id: str
    start: datetime
    """Aware, in the practice's zone."""
    end: datetime
    status: AppointmentStatus
    origin: AppointmentOrigin
    patient_last_name: str
    patient_first_name: str
    patient_birth_date: date | None
    patient_phone: str | None
    call_id: str | None
    created_at: datetime
    sync_state: SyncState
    revision: int = 0
    """How many times it was moved: part of each move's idempotency key."""
    remote_id: str | None = None
    remote_version: str | None = None

    def toas_json(self) -> dict[str, Any]:
        """The outbox payload: plain JSON types, times with their offset.

        A snapshot of the appointment as the change left it: the worker sends
        what was decided then, even if a later change is already queued behind.
        """
        return {
            "id": self.id,
            "revision": self.revision,
            "practitioner_id": self.practitioner_id,
            "reason_id": self.reason_id,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "status": self.status,
            "origin": self.origin,
            "patient_last_name": self.patient_last_name,
            "patient_first_name": self.patient_first_name,
            "patient_birth_date": (
                self.patient_birth_date.isoformat() if self.patient_birth_date else None
            ),
            "patient_phone": self.patient_phone,
            "call_id": self.call_id,
            "created_at": self.created_at.isoformat(),
        }


def _appointment_from(row: Row, tz: tzinfo) -> Appointment:
    birth = row["patient_birth_date"]
    return Appointment(
        id=row["id"],
        practitioner_id=row["practitioner_id"],
        reason_id=row["reason_id"],
        start=from_utc_text(row["start_utc"]).astimezone(tz),
        end=from_utc_text(row["end_utc"]).astimezone(tz),
        status=row["status"],
        origin=row["origin"],
        patient_last_name=row["patient_last_name"],
        patient_first_name=row["patient_first_name"],
        patient_birth_date=date.fromisoformat(birth) if birth else None,
        patient_phone=row["patient_phone"],
        call_id=row["call_id"],
        created_at=from_utc_text(row["created_at"]),
        sync_state=row["sync_state"],
        revision=row["revision"],
        remote_id=row["remote_id"],
        remote_version=row["remote_version"],
    )


def book(store: Db, practice: Practice, request: BookingRequest) -> Appointment:
    """Book a slot and enqueue its announcement to the cloud, atomically.

    Raises ``SlotTaken`` when a booked appointment of that practitioner overlaps
    the request (someone else, or the other process, got there first), and
    ``StoreError("booking-invalid")`` for a practitioner or reason the practice
    does not have. Opening hours are not checked: staff may book outside them.
    """
    try:
        practitioner = practice.practitioner(request.practitioner_id)
        reason = practice.reason(request.reason_id)
    except KeyError as err:
        raise StoreError("booking-invalid", str(err.args[0])) from None
    if not reason.seen_by(practitioner.id):
        raise StoreError(
            "booking-invalid", f"{practitioner.id!r} does not see {reason.id!r} visits"
        )
    start_utc, end_utc = utc_text(request.start), utc_text(request.end)
    # BEGIN IMMEDIATE: the write lock is taken before the overlap check, so no
    # other writer (thread or process) can slip a booking in between.
    with writing(store) as tx:
        _refuse_overlap(tx, request.practitioner_id, start_utc, end_utc)
        try:
            appointment_id = tx.insert(
                "INSERT INTO appointments (practitioner_id, reason_id, start_utc, end_utc,"
                " status, origin, patient_last_name, patient_first_name, patient_birth_date,"
                " patient_phone, call_id, created_at, sync_state)"
                " VALUES (?, ?, ?, ?, 'booked', ?, ?, ?, ?, ?, ?, ?, 'pending')",
                (
                    request.practitioner_id, request.reason_id, start_utc, end_utc,
                    request.origin, request.patient_last_name, request.patient_first_name,
                    request.patient_birth_date.isoformat(), request.patient_phone,
                    request.call_id, utc_text(tx.clock.now()),
                ),
            )
        except StoreError as err:
            if err.code == "unique-violated":
                # The check above makes this unreachable unless a writer bypassed
                # book(); the index still has the last word.
                raise SlotTaken("slot-taken", f"{request.practitioner_id} {start_utc}") from err
            raise
        row = tx.one("SELECT * FROM appointments WHERE id = ?", (appointment_id,))
        assert row is not None  # just inserted, same transaction
        appointment = _appointment_from(row, practice.tz)
        _announce(tx, APPOINTMENT_CREATED, appointment, "created")
    return appointment


def booking_key(tx: Tx, appointment_id: int) -> str:
    """The appointment's identifier in the cloud: ``<box id>/appt-<id>``, never reused."""
    return f"{box_id(tx)}/appt-{appointment_id}"


def _announce(tx: Tx, kind: str, appointment: Appointment, change: str) -> None:
    """The outbox row for a change just written in ``tx``."""
    key = booking_key(tx, appointment.id)
    payload = appointment.toas_json() | {"key": key, "remote_slot": _cloud_slot(tx, appointment)}
    enqueue(
        tx,
        kind,
        idempotency_key=f"{key}-{change}",
        aggregate_key=f"appt-{appointment.id}",
        payload=payload,
    )


def _cloud_slot(tx: Tx, appointment: Appointment) -> dict[str, str | None] | None:
    """The cloud's free Slot this appointment fills exactly, with the version seen
    when it was booked: the push asks the cloud to take it only at that version."""
    row = tx.one(
        "SELECT remote_id, version FROM cloud_agenda WHERE status = 'free'"
        " AND practitioner_id = ? AND start_utc = ? AND end_utc = ? LIMIT 1",
        (appointment.practitioner_id, utc_text(appointment.start), utc_text(appointment.end)),
    )
    return None if row is None else {"remote_id": row["remote_id"], "version": row["version"]}


def _refuse_overlap(
    tx: Tx, practitioner_id: str, start_utc: str, end_utc: str, *, besides: int | None = None
) -> None:
    """SlotTaken if the practitioner has a booked appointment there, here or in the
    cloud as last pulled (an online booking made since the slot was offered)."""
    clash = tx.one(
        "SELECT id FROM appointments"
        " WHERE practitioner_id = ? AND status = 'booked' AND start_utc < ? AND end_utc > ?"
        " AND id IS NOT ? LIMIT 1",
        (practitioner_id, end_utc, start_utc, besides),
    )
    if clash is not None:
        raise SlotTaken(
            "slot-taken", f"{practitioner_id} {start_utc}-{end_utc} overlaps appointment {clash['id']}"
        )
    cloud = tx.one(
        "SELECT remote_id FROM cloud_agenda WHERE practitioner_id = ? AND status = 'busy'"
        " AND start_utc < ? AND end_utc > ? LIMIT 1",
        (practitioner_id, end_utc, start_utc),
    )
    if cloud is not None:
        raise SlotTaken("slot-taken", f"{practitioner_id} {start_utc}-{end_utc} is taken in the cloud agenda")


def cancel(db: Db, appointment_id: int, *, tz: tzinfo | None = None) -> Appointment:
    """Cancel a booked appointment and enqueue the cancellation, atomically.

    Cancelling one already cancelled changes nothing and enqueues nothing.
    Raises ``StoreError("appointment-unknown")`` for an id that does not exist.
    """
    with writing(db) as tx:
        current = _require(tx, appointment_id, tz)
        if current.status == "cancelled":
            return current
        tx.execute(
            "UPDATE appointments SET status = 'cancelled', cancelled_at = ?,"
            " sync_state = CASE sync_state WHEN 'local_only' THEN 'local_only' ELSE 'pending' END"
            " WHERE id = ?",
            (utc_text(tx.clock.now()), appointment_id),
        )
        cancelled = _require(tx, appointment_id, tz)
        if cancelled.sync_state != "local_only":
            _announce(tx, APPOINTMENT_CANCELLED, cancelled, "cancelled")
    return cancelled


def move(db: Db, appointment_id: int, start: datetime, end: datetime, *, tz: tzinfo | None = None) -> Appointment:
    """Give a booked appointment new times and enqueue the move, atomically.

    Raises ``SlotTaken`` if the practitioner is busy at the new time (another
    appointment, or the cloud as last pulled), ``StoreError("appointment-cancelled")``
    for a cancelled one.
    """
    require_aware("start", start)
    require_aware("end", end)
    if end <= start:
        raise ValueError(f"the visit ends ({end}) before it starts ({start})")
    if start.second or start.microsecond or end.second or end.microsecond:
        raise ValueError("appointment times must be whole minutes")
    with writing(db) as tx:
        current = _require(tx, appointment_id, tz)
        if current.status != "booked":
            raise StoreError("appointment-cancelled", f"appointment {appointment_id} is cancelled")
        start_utc, end_utc = utc_text(start), utc_text(end)
        _refuse_overlap(tx, current.practitioner_id, start_utc, end_utc, besides=appointment_id)
        tx.execute(
            "UPDATE appointments SET start_utc = ?, end_utc = ?, revision = revision + 1,"
            " sync_state = CASE sync_state WHEN 'local_only' THEN 'local_only' ELSE 'pending' END"
            " WHERE id = ?",
            (start_utc, end_utc, appointment_id),
        )
        moved = _require(tx, appointment_id, tz)
        if moved.sync_state != "local_only":
            _announce(tx, APPOINTMENT_MOVED, moved, f"moved-{moved.revision}")
    return moved


def find_for_patient(
    db: Db, last_name: str | None, birth_date: date, *, after: datetime, tz: tzinfo | None = None
) -> list[Appointment]:
    """Booked appointments from ``after`` on of the patient with that last name AND
    birth date (never by name alone: a caller may only reach their own).

    ``last_name=None``: every patient born that day, for a caller whose name the
    recogniser may have misspelt; the caller of this compares the names itself.
    """
    require_aware("after", after)
    name_rule = "" if last_name is None else " AND lower(patient_last_name) = lower(?)"
    values = (birth_date.isoformat(),) + (() if last_name is None else (last_name.strip(),)) + (utc_text(after),)
    with reading(db) as tx:
        rows = tx.execute(
            "SELECT * FROM appointments WHERE status = 'booked' AND patient_birth_date = ?"
            + name_rule + " AND end_utc > ? ORDER BY start_utc, id",
            values,
        )
        zone = tz or practice_tz(tx)
    return [_appointment_from(row, zone) for row in rows]


def mark_synced(tx: Tx, appointment_id: int, remote_id: str | None, version: str | None) -> None:
    """The cloud has the appointment as the box last changed it (if nothing newer is queued)."""
    tx.execute(
        "UPDATE appointments SET remote_id = coalesce(?, remote_id), remote_version = coalesce(?, remote_version),"
        " sync_state = CASE WHEN sync_state IN ('pending', 'dead') AND NOT EXISTS"
        "   (SELECT 1 FROM outbox WHERE aggregate_key = 'appt-' || appointments.id"
        "    AND state IN ('pending', 'leased')) THEN 'synced' ELSE sync_state END"
        " WHERE id = ?",
        (remote_id, version, appointment_id),
    )


def mark_sync_failed(tx: Tx, appointment_id: int, state: Literal["conflict", "dead"]) -> None:
    tx.execute("UPDATE appointments SET sync_state = ? WHERE id = ? AND sync_state != 'local_only'", (state, appointment_id))


def _require(tx: Tx, appointment_id: int, tz: tzinfo | None) -> Appointment:
    row = tx.one("SELECT * FROM appointments WHERE id = ?", (appointment_id,))
    if row is None:
        raise StoreError("appointment-unknown", f"no appointment {appointment_id}")
    return _appointment_from(row, tz or practice_tz(tx))


def get_appointment(db: Db, appointment_id: int, *, tz: tzinfo | None = None) -> Appointment | None:
    """The appointment with that id, or None. Times in ``tz``, else the saved practice's zone."""
    with reading(db) as tx:
        row = tx.one("SELECT * FROM appointments WHERE id = ?", (appointment_id,))
        zone = tz or practice_tz(tx)
    return None if row is None else _appointment_from(row, zone)


def appointments_between(
    db: Db, start: datetime, end: datetime, *, include_cancelled: bool = False
) -> list[Appointment]:
    """Appointments overlapping ``[start, end)``, by start; times in ``start``'s zone."""
    require_aware("start", start)
    require_aware("end", end)
    with reading(db) as tx:
        rows = tx.execute(
            "SELECT * FROM appointments WHERE start_utc < ? AND end_utc > ?"
            + ("" if include_cancelled else " AND status = 'booked'")
            + " ORDER BY start_utc, id",
            (utc_text(end), utc_text(start)),
        )
    assert start.tzinfo is not None
    return [_appointment_from(row, start.tzinfo) for row in rows]


def busy_intervals(db: Db, start: datetime, end: datetime) -> list[BusyInterval]:
    """(practitioner_id, start, end) of booked appointments overlapping ``[start, end)``.

    Times come back in ``start``'s zone, ready for ``agenda.slots.free_slots``.
    """
    require_aware("start", start)
    require_aware("end", end)
    with reading(db) as tx:
        # The cloud's busy time counts too: the staff, the online booking site, another
        # box (a second line, or this one before a reinstall). The box's own bookings
        # coming back are never stored there (cloud.apply_pull): they are rows here.
        rows = tx.execute(
            "SELECT practitioner_id, start_utc, end_utc FROM appointments"
            " WHERE status = 'booked' AND start_utc < :end AND end_utc > :start"
            " UNION ALL SELECT practitioner_id, start_utc, end_utc FROM cloud_agenda"
            " WHERE status = 'busy' AND start_utc < :end AND end_utc > :start"
            " ORDER BY start_utc, practitioner_id",
            {"start": utc_text(start), "end": utc_text(end)},
        )
    zone = start.tzinfo
    return [
        (
            row["practitioner_id"],
            from_utc_text(row["start_utc"]).astimezone(zone),
            from_utc_text(row["end_utc"]).astimezone(zone),
        )
        for row in rows
    ]


def seed_appointments(store: Db, practice: Practice, now: datetime, weeks: int = 4) -> int:
    """Write the demo agenda (``agenda.demo``) for ``weeks`` from ``now``; return how many rows.

    Idempotent: a seed already written is not written again, even if it was
    cancelled since (a caller's cancellation must not be undone by a restart),
    and a seed overlapping a real booking is left out.
    Seeds are ``local_only``: the cloud agenda never hears of them.
    """
    wanted = demo_appointments(practice, now, weeks)
    if not wanted:
        return 0
    first, last = wanted[0].start, max(a.end for a in wanted)
    with writing(store) as tx:
        already = {
            (row["practitioner_id"], row["start_utc"])
            for row in tx.execute(
                "SELECT practitioner_id, start_utc FROM appointments"
                " WHERE origin = 'seed' AND start_utc >= ? AND start_utc < ?",
                (utc_text(first), utc_text(last)),
            )
        }
        taken: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
        for practitioner_id, b_start, b_end in busy_intervals(tx, first, last):
            taken[practitioner_id].append((b_start, b_end))
        rows = []
        for seed in wanted:
            if (seed.practitioner_id, utc_text(seed.start)) in already:
                continue
            if any(b < seed.end and seed.start < e for b, e in taken[seed.practitioner_id]):
                continue
            rows.append(
                (
                    seed.practitioner_id, seed.reason_id, utc_text(seed.start), utc_text(seed.end),
                    seed.patient_last_name, seed.patient_first_name,
                    seed.patient_birth_date.isoformat(), seed.patient_phone, utc_text(now),
                )
            )
        tx.executemany(
            "INSERT INTO appointments (practitioner_id, reason_id, start_utc, end_utc,"
            " status, origin, patient_last_name, patient_first_name, patient_birth_date,"
            " patient_phone, call_id, created_at, sync_state)"
            " VALUES (?, ?, ?, ?, 'booked', 'seed', ?, ?, ?, ?, NULL, ?, 'local_only')",
            rows,
        )
    return len(rows)


