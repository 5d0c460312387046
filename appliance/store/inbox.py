"""The practice inbox: messages the box leaves for the staff, sorted by urgency."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Final, Literal

from appliance.store.access import Db, as_json, reading, require_aware, writing
from appliance.store.db import from_utc_text, utc_text

Urgency = Literal["urgent", "days", "routine"]
URGENCIES: Final = ("urgent", "days", "routine")  # urgent today / within days / routine


@dataclass(frozen=True, kw_only=True)
class Message:
    id: int
    call_id: str | None
    created_at: datetime
    category: str
    urgency: Urgency
    summary: str
    transcript: str
    patient: dict[str, Any]
    handled_at: datetime | None


def insert_message(
    db: Db,
    *,
    call_id: str | None,
    created_at: datetime,
    category: str,
    urgency: Urgency,
    summary: str,
    transcript: str,
    patient: dict[str, Any] | None = None,
) -> int:
    require_aware("created_at", created_at)
    if urgency not in URGENCIES:
        raise ValueError(f"urgency must be one of {URGENCIES}, got {urgency!r}")
    with writing(db) as tx:
        return tx.insert(
            "INSERT INTO messages (call_id, created_at, category, urgency, summary, transcript, patient)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (call_id, utc_text(created_at), category, urgency, summary, transcript, as_json(patient or {})),
        )


def messages_for_call(db: Db, call_id: str) -> list[Message]:
    with reading(db) as tx:
        rows = tx.execute("SELECT * FROM messages WHERE call_id = ? ORDER BY id", (call_id,))
    return [_message_from(row) for row in rows]


def unhandled_messages(db: Db) -> list[Message]:
    """What the staff still have to deal with: most urgent first, then oldest first."""
    with reading(db) as tx:
        rows = tx.execute(
            "SELECT * FROM messages WHERE handled_at IS NULL ORDER BY"
            " CASE urgency WHEN 'urgent' THEN 0 WHEN 'days' THEN 1 ELSE 2 END, created_at, id",
            (),
        )
    return [_message_from(row) for row in rows]


def _message_from(row: Any) -> Message:
    return Message(
        id=row["id"],
        call_id=row["call_id"],
        created_at=from_utc_text(row["created_at"]).astimezone(timezone.utc),
        category=row["category"],
        urgency=row["urgency"],
        summary=row["summary"],
        transcript=row["transcript"],
        patient=json.loads(row["patient"]),
        handled_at=from_utc_text(row["handled_at"]) if row["handled_at"] else None,
    )


def mark_handled(db: Db, message_id: int, at: datetime) -> bool:
    """Note that a person dealt with a message; False if it was unknown or handled already.

    Handling twice (two secretaries clicking at once) keeps the first time.
    """
    require_aware("at", at)
    with writing(db) as tx:
        return tx.changes(
            "UPDATE messages SET handled_at = ? WHERE id = ? AND handled_at IS NULL", (utc_text(at), message_id)
        ) == 1


def add_summary_note(db: Db, message_id: int, note: str) -> None:
    """A further line under a message's summary (the LLM helper's sentence)."""
    with writing(db) as tx:
        tx.execute("UPDATE messages SET summary = summary || char(10) || ? WHERE id = ?", (note, message_id))
