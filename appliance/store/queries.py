"""The practice copy and the call log: their SQL, and the records they read and write.

The store's other query modules: ``appointments`` (the local agenda),
``outbox`` (changes on their way to the cloud), ``cloud`` (the cloud agenda as
last pulled), ``inbox`` (messages for the staff), ``retention`` (purge, export,
erasure), ``settings``.

Functions take either the ``Store`` (they open their own transaction) or a
``Tx`` from ``store.transaction()`` (they join it, so several changes commit or
roll back together).

Moments are stored as UTC text (``db.utc_text``) and come back as aware
datetimes: call times in UTC unless a zone is asked for.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone, tzinfo
from typing import Any, Final
from zoneinfo import ZoneInfo

from appliance.agenda.practice import Practice
from appliance.errors import StoreError
from appliance.store.access import Db, as_json, reading, require_aware, writing
from appliance.store.db import Row, from_utc_text, utc_text
from appliance.store.settings import get_setting, put_setting

_PRACTICE_SETTING: Final = "practice"

# --- The practice copy -----------------------------------------------------------


def save_practice(db: Db, practice: Practice) -> None:
    """Replace the stored copy of the practice (practitioners, reasons, hours, closures)."""
    with writing(db) as tx:
        for table in ("practitioners", "visit_reasons", "opening_hours", "closures"):
            tx.execute(f"DELETE FROM {table}")  # fixed names, never user input
        tx.executemany(
            "INSERT INTO practitioners (id, position, display_name, last_name, aliases, hours)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [
                (
                    p.id, position, p.display_name, p.last_name, as_json(list(p.aliases)),
                    as_json([[h.weekday, f"{h.start:%H:%M}", f"{h.end:%H:%M}"] for h in p.hours]),
                )
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
                    "kept_for_staff": [
                        [k.weekday, f"{k.start:%H:%M}", f"{k.end:%H:%M}"] for k in practice.rules.kept_for_staff
                    ],
                },
            },
        )


def practice_name(db: Db) -> str | None:
    """The saved practice's name, None before any practice was saved."""
    saved = get_setting(db, _PRACTICE_SETTING)
    return saved.get("name") if isinstance(saved, dict) else None


def practice_tz(db: Db) -> tzinfo:
    """The zone of the saved practice, UTC before any practice was saved."""
    saved = get_setting(db, _PRACTICE_SETTING)
    if isinstance(saved, dict) and isinstance(saved.get("timezone"), str):
        return ZoneInfo(saved["timezone"])
    return timezone.utc


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
