"""What the box keeps about patients, and for how long: purge, export, erasure.

``purge`` deletes what is older than the practice's periods (``RetentionSettings``
in ``appliance.retention``). ``export_patient`` gathers everything the box holds
about one patient (found by last name and birth date, and by phone number);
``erase_patient`` removes it, cancelling their future appointments through the
outbox so the cloud agenda hears of it too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Final

from appliance.store.access import Db, reading, require_aware, writing
from appliance.store.appointments import cancel
from appliance.store.db import Tx, utc_text

ERASED: Final = "(effacé)"


@dataclass(frozen=True, kw_only=True)
class Purged:
    call_events: int = 0
    """Turn-by-turn logs (what the caller said) of calls older than the transcript period."""
    messages: int = 0
    calls: int = 0
    outbox_rows: int = 0
    appointments: int = 0

    @property
    def total(self) -> int:
        return self.call_events + self.messages + self.calls + self.outbox_rows + self.appointments


def purge(
    db: Db,
    *,
    now: datetime,
    transcripts_days: int,
    messages_days: int,
    calls_days: int,
    outbox_days: int,
    appointments_days: int,
) -> Purged:
    """Delete what is older than each period, in one transaction."""
    require_aware("now", now)

    def before(days: int) -> str:
        return utc_text(now - timedelta(days=days))

    with writing(db) as tx:
        call_events = tx.changes(
            "DELETE FROM call_events WHERE call_id IN (SELECT id FROM calls WHERE started_at < ?)",
            (before(transcripts_days),),
        )
        messages = tx.changes("DELETE FROM messages WHERE created_at < ?", (before(messages_days),))
        calls = tx.changes("DELETE FROM calls WHERE started_at < ?", (before(calls_days),))
        # Sent changes carry a copy of the patient's details: once delivered they
        # are only an audit trail.
        outbox_rows = tx.changes(
            "DELETE FROM outbox WHERE state = 'done' AND done_at < ?", (before(outbox_days),)
        )
        # Past visits, once the cloud agenda has them (or never was to): the
        # practice's own records keep the medical history, not the phone box.
        appointments = tx.changes(
            "DELETE FROM appointments WHERE end_utc < ? AND sync_state IN ('synced', 'local_only')"
            " AND NOT EXISTS (SELECT 1 FROM outbox WHERE aggregate_key = 'appt-' || appointments.id"
            "                 AND state IN ('pending', 'leased', 'dead'))",
            (before(appointments_days),),
        )
    return Purged(
        call_events=call_events, messages=messages, calls=calls, outbox_rows=outbox_rows, appointments=appointments
    )


@dataclass(frozen=True, kw_only=True)
class PatientQuery:
    last_name: str
    birth_date: date
    phone: str | None = None
    """Also gathers the calls and messages from that number."""

    def __post_init__(self) -> None:
        if not self.last_name.strip():
            raise ValueError("a last name is needed to find a patient")


def export_patient(db: Db, who: PatientQuery) -> dict[str, Any]:
    """Everything the box holds about one patient, as plain JSON data."""
    with reading(db) as tx:
        appointment_ids = _appointment_ids(tx, who)
        messages = _message_rows(tx, who)
        calls = _call_rows(tx, who)
        return {
            "patient": {"last_name": who.last_name, "birth_date": who.birth_date.isoformat(), "phone": who.phone},
            "appointments": [
                dict(row)
                for row in tx.execute(
                    f"SELECT * FROM appointments WHERE id IN ({_marks(appointment_ids)}) ORDER BY start_utc",
                    appointment_ids,
                )
            ],
            "messages": [dict(row) | {"patient": json.loads(row["patient"])} for row in messages],
            "calls": [
                dict(row)
                | {
                    "summary": json.loads(row["summary"]) if row["summary"] else None,
                    "events": [
                        {"seq": e["seq"], "at_ms": e["at_ms"], "kind": e["kind"], "data": json.loads(e["data"])}
                        for e in tx.execute(
                            "SELECT seq, at_ms, kind, data FROM call_events WHERE call_id = ? ORDER BY seq",
                            (row["id"],),
                        )
                    ],
                }
                for row in calls
            ],
        }


@dataclass(frozen=True, kw_only=True)
class Erased:
    appointments: int
    cancelled: int
    """Future appointments cancelled (and announced to the cloud agenda)."""
    messages: int
    calls: int


def erase_patient(db: Db, who: PatientQuery, *, now: datetime) -> Erased:
    """Remove one patient's data from the box, in one transaction.

    Future appointments are cancelled first (the cancellation goes to the cloud
    through the outbox), then every appointment of theirs keeps only its time and
    practitioner; their messages are deleted; their calls lose the number and
    the turn-by-turn log. Delivered outbox rows about them are emptied.
    """
    require_aware("now", now)
    with writing(db) as tx:
        ids = _appointment_ids(tx, who)
        cancelled = 0
        for appointment_id in ids:
            row = tx.one("SELECT status, end_utc FROM appointments WHERE id = ?", (appointment_id,))
            if row is not None and row["status"] == "booked" and row["end_utc"] > utc_text(now):
                cancel(tx, appointment_id)
                cancelled += 1
        tx.execute(
            f"UPDATE appointments SET patient_last_name = ?, patient_first_name = '',"
            f" patient_birth_date = NULL, patient_phone = NULL WHERE id IN ({_marks(ids)})",
            [ERASED, *ids],
        )
        tx.execute(
            f"UPDATE outbox SET payload = '{{}}' WHERE state IN ('done', 'dead')"
            f" AND aggregate_key IN ({_marks(ids)})",
            [f"appt-{i}" for i in ids],
        )
        message_ids = [row["id"] for row in _message_rows(tx, who)]
        tx.execute(f"DELETE FROM messages WHERE id IN ({_marks(message_ids)})", message_ids)
        call_ids = [row["id"] for row in _call_rows(tx, who)]
        tx.execute(f"DELETE FROM call_events WHERE call_id IN ({_marks(call_ids)})", call_ids)
        tx.execute(f"UPDATE calls SET caller_id = NULL, summary = NULL WHERE id IN ({_marks(call_ids)})", call_ids)
    return Erased(appointments=len(ids), cancelled=cancelled, messages=len(message_ids), calls=len(call_ids))


def _appointment_ids(tx: Tx, who: PatientQuery) -> list[int]:
    rows = tx.execute(
        "SELECT id FROM appointments WHERE patient_birth_date = ? AND lower(patient_last_name) = lower(?)"
        " ORDER BY id",
        (who.birth_date.isoformat(), who.last_name.strip()),
    )
    return [row["id"] for row in rows]


def _message_rows(tx: Tx, who: PatientQuery) -> list[Any]:
    rows = tx.execute(
        "SELECT * FROM messages WHERE (json_extract(patient, '$.birth_date') = ?"
        " AND lower(json_extract(patient, '$.last_name')) = lower(?))"
        " OR (? IS NOT NULL AND json_extract(patient, '$.phone') = ?) ORDER BY id",
        (who.birth_date.isoformat(), who.last_name.strip(), who.phone, who.phone),
    )
    return list(rows)


def _call_rows(tx: Tx, who: PatientQuery) -> list[Any]:
    if not who.phone:
        return []
    return list(tx.execute("SELECT * FROM calls WHERE caller_id = ? ORDER BY started_at", (who.phone,)))


def _marks(values: list[Any]) -> str:
    """``?, ?, ?`` for an IN list (never empty: ``IN ()`` is a syntax error in SQLite)."""
    return ", ".join("?" * len(values)) or "NULL"
