"""Every SQL statement of the box, and the records they read and write.

Functions take either the ``Store`` (they open their own transaction) or a
``Tx`` from ``store.transaction()`` (they join it, so several changes commit or
roll back together). Writes that must be atomic with something else, such as an
appointment and the outbox row announcing it, happen in one function, in one
``BEGIN IMMEDIATE`` transaction.

Moments are stored as UTC text (``db.utc_text``) and come back as aware
datetimes: appointments in the practice's zone, call and outbox times in UTC.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timezone, tzinfo
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

from appliance.agenda.demo import demo_appointments
from appliance.agenda.practice import Practice
from appliance.agenda.slots import BusyInterval
from appliance.errors import SlotTaken, StoreError
from appliance.store.access import Db, as_json, reading, require_aware, writing
from appliance.store.db import Row, Tx, from_utc_text, utc_text

AppointmentStatus = Literal["booked", "cancelled"]
AppointmentOrigin = Literal["phone", "seed", "cloud", "staff"]
SyncState = Literal["pending", "synced", "failed", "local_only"]
OutboxState = Literal["pending", "leased", "done", "dead"]

APPOINTMENT_CREATED: Final = "appointment.created"
_PRACTICE_SETTING: Final = "practice"

# --- The practice copy -----------------------------------------------------------


def save_practice(db: Db, practice: Practice) -> None:
    """Replace the stored copy of the practice (practitioners, reasons, hours, closures)."""
    with writing(db) as tx:
        for table in ("practitioners", "visit_reasons", "opening_hours", "closures"):
            tx.execute(f"DELETE FROM {table}")  # fixed names, never user input
        tx.executemany(
            "INSERT INTO practitioners (id, position, display_name, last_name, aliases)"
            " VALUES (?, ?, ?, ?, ?)",
            [
                (p.id, position, p.display_name, p.last_name, as_json(list(p.aliases)))
                for position, p in enumerate(practice.practitioners)
            ],
        )
        tx.executemany(
            "INSERT INTO visit_reasons"
            " (id, position, label, duration_min, practitioner_ids, new_patients, keywords)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    r.id, position, r.label, r.duration_min,
                    as_json(list(r.practitioner_ids)), int(r.new_patients), as_json(list(r.keywords)),
                )
                for position, r in enumerate(practice.reasons)
            ],
        )
        tx.executemany(
            "INSERT INTO opening_hours (weekday, start_time, end_time) VALUES (?, ?, ?)",
            [(h.weekday, f"{h.start:%H:%M}", f"{h.end:%H:%M}") for h in practice.hours],
        )
        tx.executemany(
            "INSERT INTO closures (start_date, end_date, reason) VALUES (?, ?, ?)",
            [(c.start.isoformat(), c.end.isoformat(), c.reason) for c in practice.closures],
        )
        put_setting(
            tx,
            _PRACTICE_SETTING,
            {
                "id": practice.id,
                "name": practice.name,
                "address": practice.address,
                "phone": practice.phone,
                "timezone": practice.timezone,
                "emergency_number": practice.emergency_number,
                "data_notice": practice.data_notice,
                "rules": {
                    "min_notice_min": practice.rules.min_notice_min,
                    "horizon_days": practice.rules.horizon_days,
                    "slot_step_min": practice.rules.slot_step_min,
                },
            },
        )


def practice_name(db: Db) -> str | None:
    """The saved practice's name, None before any practice was saved."""
    saved = get_setting(db, _PRACTICE_SETTING)
    return saved.get("name") if isinstance(saved, dict) else None


def _practice_tz(tx: Tx) -> tzinfo:
    """The zone of the saved practice, UTC before any practice was saved."""
    saved = get_setting(tx, _PRACTICE_SETTING)
    if isinstance(saved, dict) and isinstance(saved.get("timezone"), str):
        return ZoneInfo(saved["timezone"])
    return timezone.utc


# --- Settings ------------------------------------------------------------------


def get_setting(db: Db, key: str, default: Any = None) -> Any:
    with reading(db) as tx:
        row = tx.one("SELECT value FROM settings WHERE key = ?", (key,))
    return default if row is None else json.loads(row["value"])


def put_setting(db: Db, key: str, value: Any) -> None:
    with writing(db) as tx:
        tx.execute(
            "INSERT INTO settings (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, as_json(value)),
        )


# --- Appointments --------------------------------------------------------------


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

    def toas_json(self) -> dict[str, Any]:
        """The outbox payload: plain JSON types, times with their offset."""
        return {
            "id": self.id,
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
        clash = tx.one(
            "SELECT id FROM appointments"
            " WHERE practitioner_id = ? AND status = 'booked' AND start_utc < ? AND end_utc > ?"
            " LIMIT 1",
            (request.practitioner_id, end_utc, start_utc),
        )
        if clash is not None:
            raise SlotTaken(
                "slot-taken",
                f"{request.practitioner_id} {start_utc}-{end_utc} overlaps appointment {clash['id']}",
            )
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
        enqueue(
            tx,
            APPOINTMENT_CREATED,
            idempotency_key=f"appt-{appointment_id}-created",
            aggregate_key=f"appt-{appointment_id}",
            payload=appointment.toas_json(),
        )
    return appointment


def get_appointment(db: Db, appointment_id: int, *, tz: tzinfo | None = None) -> Appointment | None:
    """The appointment with that id, or None. Times in ``tz``, else the saved practice's zone."""
    with reading(db) as tx:
        row = tx.one("SELECT * FROM appointments WHERE id = ?", (appointment_id,))
        zone = tz or _practice_tz(tx)
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
        rows = tx.execute(
            "SELECT practitioner_id, start_utc, end_utc FROM appointments"
            " WHERE status = 'booked' AND start_utc < ? AND end_utc > ?"
            " ORDER BY start_utc, practitioner_id",
            (utc_text(end), utc_text(start)),
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


# --- Outbox --------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class OutboxEntry:
    id: int
    kind: str
    idempotency_key: str
    aggregate_key: str
    payload: dict[str, Any]
    state: OutboxState
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    lease_until: datetime | None
    last_error: str | None


def enqueue(
    tx: Tx,
    kind: str,
    *,
    idempotency_key: str,
    aggregate_key: str,
    payload: dict[str, Any],
) -> int:
    """Add a pending outbox row, due now; return its id. Only inside a transaction:
    an outbox row exists to announce a change written in the same one."""
    now = utc_text(tx.clock.now())
    return tx.insert(
        "INSERT INTO outbox (kind, idempotency_key, aggregate_key, payload, state,"
        " attempts, created_at, next_attempt_at) VALUES (?, ?, ?, ?, 'pending', 0, ?, ?)",
        (kind, idempotency_key, aggregate_key, as_json(payload), now, now),
    )


def outbox_entries(db: Db) -> list[OutboxEntry]:
    """Every outbox row, oldest first."""
    with reading(db) as tx:
        rows = tx.execute("SELECT * FROM outbox ORDER BY id")
    return [
        OutboxEntry(
            id=row["id"],
            kind=row["kind"],
            idempotency_key=row["idempotency_key"],
            aggregate_key=row["aggregate_key"],
            payload=json.loads(row["payload"]),
            state=row["state"],
            attempts=row["attempts"],
            created_at=from_utc_text(row["created_at"]),
            next_attempt_at=from_utc_text(row["next_attempt_at"]),
            lease_until=from_utc_text(row["lease_until"]) if row["lease_until"] else None,
            last_error=row["last_error"],
        )
        for row in rows
    ]


# --- Calls and their event log -------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class CallRecord:
    id: str
    started_at: datetime
    ended_at: datetime | None
    caller_id: str | None
    line: str
    outcome: str | None
    summary: dict[str, Any] | None


@dataclass(frozen=True, kw_only=True)
class StoredCallEvent:
    call_id: str
    seq: int
    at_ms: int
    kind: str
    data: dict[str, Any]


def insert_call(
    db: Db, call_id: str, started_at: datetime, caller_id: str | None, line: str
) -> None:
    require_aware("started_at", started_at)
    with writing(db) as tx:
        tx.execute(
            "INSERT INTO calls (id, started_at, caller_id, line) VALUES (?, ?, ?, ?)",
            (call_id, utc_text(started_at), caller_id, line),
        )


def finish_call(
    db: Db, call_id: str, ended_at: datetime, outcome: str, summary: dict[str, Any]
) -> None:
    require_aware("ended_at", ended_at)
    with writing(db) as tx:
        changed = tx.changes(
            "UPDATE calls SET ended_at = ?, outcome = ?, summary = ? WHERE id = ?",
            (utc_text(ended_at), outcome, as_json(summary), call_id),
        )
        if changed != 1:
            raise StoreError("call-unknown", f"no call {call_id!r} to finish")


def get_call(db: Db, call_id: str) -> CallRecord | None:
    """The call with that id, or None; times in UTC."""
    with reading(db) as tx:
        row = tx.one("SELECT * FROM calls WHERE id = ?", (call_id,))
    return None if row is None else _call_from(row, timezone.utc)


def recent_calls(db: Db, since: datetime, limit: int = 200) -> list[CallRecord]:
    """Calls started at or after ``since``, newest first; times in ``since``'s zone."""
    require_aware("since", since)
    with reading(db) as tx:
        rows = tx.execute(
            "SELECT * FROM calls WHERE started_at >= ? ORDER BY started_at DESC, id LIMIT ?",
            (utc_text(since), limit),
        )
    assert since.tzinfo is not None
    return [_call_from(row, since.tzinfo) for row in rows]


def _call_from(row: Row, tz: tzinfo) -> CallRecord:
    return CallRecord(
        id=row["id"],
        started_at=from_utc_text(row["started_at"]).astimezone(tz),
        ended_at=from_utc_text(row["ended_at"]).astimezone(tz) if row["ended_at"] else None,
        caller_id=row["caller_id"],
        line=row["line"],
        outcome=row["outcome"],
        summary=json.loads(row["summary"]) if row["summary"] is not None else None,
    )


def append_call_events(
    db: Db, call_id: str, events: Iterable[tuple[int, int, str, dict[str, Any]]]
) -> None:
    """Add ``(seq, at_ms, kind, data)`` events to a call's log, in one transaction.

    A seq already stored raises ``StoreError("unique-violated")``: the log is
    append-only and a replayed batch is a bug to see, not to hide.
    """
    rows = [(call_id, seq, at_ms, kind, as_json(data)) for seq, at_ms, kind, data in events]
    with writing(db) as tx:
        tx.executemany(
            "INSERT INTO call_events (call_id, seq, at_ms, kind, data) VALUES (?, ?, ?, ?, ?)",
            rows,
        )


def call_events(db: Db, call_id: str) -> list[StoredCallEvent]:
    with reading(db) as tx:
        rows = tx.execute(
            "SELECT call_id, seq, at_ms, kind, data FROM call_events WHERE call_id = ? ORDER BY seq",
            (call_id,),
        )
    return [
        StoredCallEvent(
            call_id=row["call_id"],
            seq=row["seq"],
            at_ms=row["at_ms"],
            kind=row["kind"],
            data=json.loads(row["data"]),
        )
        for row in rows
    ]
