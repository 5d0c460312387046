"""The outbox: changes waiting to reach the cloud agenda, and the leases on them.

A row is written in the same transaction as the change it announces
(``enqueue`` takes a ``Tx`` only). The worker then ``claim_due``s rows under a
lease, and settles each one: ``settle`` (done), ``retry_later`` (pending again,
not before a given time) or ``bury`` (dead letter, shown to the staff).

Order is the row id, never a clock: rows of one aggregate (one appointment) are
claimable one at a time, oldest first, so "created" always reaches the cloud
before "moved" and "cancelled". Other appointments go on meanwhile.

Times here (``next_attempt_at``, ``lease_until``) come from the box's clock,
which may be wrong: a box without a real-time clock boots in 1970 and later
jumps to today, or the other way round after a bad NTP answer. A jump forward
only makes waiting rows due early. A jump back would leave them waiting for
decades, so a time further ahead than the worker ever schedules is taken for
what it is, a clock that went back, and the row is due (or its lease expired).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from appliance.store.access import Db, as_json, reading, require_aware, writing
from appliance.store.db import Row, Tx, from_utc_text, utc_text
from appliance.store.settings import get_setting, put_setting

OutboxState = Literal["pending", "leased", "done", "dead"]
Outcome = Literal["sent", "already_there", "conflict", "nothing_to_do"]

APPOINTMENT_CREATED: Final = "appointment.created"
APPOINTMENT_MOVED: Final = "appointment.moved"
APPOINTMENT_CANCELLED: Final = "appointment.cancelled"
KINDS: Final = (APPOINTMENT_CREATED, APPOINTMENT_MOVED, APPOINTMENT_CANCELLED)

_STATUS_SETTING: Final = "sync.status"


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
    lease_owner: str | None = None
    outcome: str | None = None


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
    if kind not in KINDS:
        raise ValueError(f"unknown outbox kind {kind!r}")
    now = utc_text(tx.clock.now())
    return tx.insert(
        "INSERT INTO outbox (kind, idempotency_key, aggregate_key, payload, state,"
        " attempts, created_at, next_attempt_at) VALUES (?, ?, ?, ?, 'pending', 0, ?, ?)",
        (kind, idempotency_key, aggregate_key, as_json(payload), now, now),
    )


def outbox_entries(db: Db, *, state: OutboxState | None = None) -> list[OutboxEntry]:
    """Outbox rows, oldest first; all of them or those in ``state``."""
    with reading(db) as tx:
        if state is None:
            rows = tx.execute("SELECT * FROM outbox ORDER BY id")
        else:
            rows = tx.execute("SELECT * FROM outbox WHERE state = ? ORDER BY id", (state,))
    return [_entry_from(row) for row in rows]


def claim_due(
    db: Db, *, now: datetime, owner: str, lease_s: float, horizon_s: float, limit: int
) -> list[OutboxEntry]:
    """Lease up to ``limit`` due rows to ``owner`` until ``now + lease_s``.

    Due: pending, its time come (or further than ``horizon_s`` ahead: the clock
    went back), and the oldest unfinished row of its aggregate. Expired leases
    (a worker that died mid-send) are taken back first.
    """
    require_aware("now", now)
    now_text = utc_text(now)
    until = utc_text(now + timedelta(seconds=lease_s))
    clock_went_back = utc_text(now + timedelta(seconds=max(horizon_s, lease_s)))
    with writing(db) as tx:
        tx.execute(
            "UPDATE outbox SET state = 'pending', lease_owner = NULL, lease_until = NULL"
            " WHERE state = 'leased' AND (lease_until <= ? OR lease_until > ?)",
            (now_text, clock_went_back),
        )
        rows = tx.execute(
            "SELECT o.* FROM outbox o WHERE o.state = 'pending'"
            " AND (o.next_attempt_at <= ? OR o.next_attempt_at > ?)"
            " AND o.id = (SELECT min(id) FROM outbox h"
            "             WHERE h.aggregate_key = o.aggregate_key AND h.state IN ('pending', 'leased'))"
            " ORDER BY o.id LIMIT ?",
            (now_text, clock_went_back, limit),
        )
        ids = [row["id"] for row in rows]
        tx.executemany(
            "UPDATE outbox SET state = 'leased', lease_owner = ?, lease_until = ? WHERE id = ?",
            [(owner, until, entry_id) for entry_id in ids],
        )
        claimed = tx.execute(
            f"SELECT * FROM outbox WHERE id IN ({','.join('?' * len(ids))}) ORDER BY id", ids
        ) if ids else []
    return [_entry_from(row) for row in claimed]


def release_leases(db: Db, owner: str | None = None) -> int:
    """Give leased rows back (all, or ``owner``'s): a worker starting up after a
    crash need not wait for its dead predecessor's leases to expire."""
    with writing(db) as tx:
        if owner is None:
            return tx.changes(
                "UPDATE outbox SET state = 'pending', lease_owner = NULL, lease_until = NULL"
                " WHERE state = 'leased'"
            )
        return tx.changes(
            "UPDATE outbox SET state = 'pending', lease_owner = NULL, lease_until = NULL"
            " WHERE state = 'leased' AND lease_owner = ?",
            (owner,),
        )


def settle(tx: Tx, entry: OutboxEntry, outcome: Outcome) -> bool:
    """Mark a leased row done. False if the lease was lost meanwhile (taken back
    and given to another worker): that worker settles it, not this one."""
    return _finish(
        tx,
        entry,
        "UPDATE outbox SET state = 'done', outcome = ?, done_at = ?, lease_owner = NULL,"
        " lease_until = NULL, attempts = attempts + 1, last_error = NULL"
        " WHERE id = ? AND state = 'leased' AND lease_owner = ?",
        (outcome, utc_text(tx.clock.now()), entry.id, entry.lease_owner),
    )


def retry_later(tx: Tx, entry: OutboxEntry, error: str, not_before: datetime) -> bool:
    return _finish(
        tx,
        entry,
        "UPDATE outbox SET state = 'pending', attempts = attempts + 1, last_error = ?,"
        " next_attempt_at = ?, lease_owner = NULL, lease_until = NULL"
        " WHERE id = ? AND state = 'leased' AND lease_owner = ?",
        (error[:500], utc_text(not_before), entry.id, entry.lease_owner),
    )


def bury(tx: Tx, entry: OutboxEntry, error: str) -> bool:
    """Dead letter: no more attempts until a person looks (``revive``)."""
    return _finish(
        tx,
        entry,
        "UPDATE outbox SET state = 'dead', attempts = attempts + 1, last_error = ?,"
        " lease_owner = NULL, lease_until = NULL"
        " WHERE id = ? AND state = 'leased' AND lease_owner = ?",
        (error[:500], entry.id, entry.lease_owner),
    )


def revive(db: Db, entry_id: int) -> bool:
    """Give a dead letter another round of attempts (the staff fixed the cause)."""
    with writing(db) as tx:
        return tx.changes(
            "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = ?"
            " WHERE id = ? AND state = 'dead'",
            (utc_text(tx.clock.now()), entry_id),
        ) == 1


def _finish(tx: Tx, entry: OutboxEntry, sql: str, params: tuple[Any, ...]) -> bool:
    if entry.lease_owner is None:
        raise ValueError(f"outbox row {entry.id} was not claimed")
    return tx.changes(sql, params) == 1


def unfinished_for(tx: Tx, aggregate_key: str) -> int:
    """How many rows of ``aggregate_key`` are still to send (pending or leased)."""
    row = tx.one(
        "SELECT count(*) AS n FROM outbox WHERE aggregate_key = ? AND state IN ('pending', 'leased')",
        (aggregate_key,),
    )
    return int(row["n"]) if row else 0



# --- What the staff see: the sync status ---------------------------------------


@dataclass(frozen=True, kw_only=True)
class SyncStatus:
    adapter: str | None
    """None: the box has no cloud agenda configured."""
    backlog: int
    """Rows still to send."""
    dead: int
    conflicts: int
    """Appointments the cloud had someone else for: a patient to call back."""
    last_success_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    last_pull_at: datetime | None
    online: bool
    """The last exchange with the cloud went through."""


def note_exchange(db: Db, adapter: str, *, at: datetime, error: str | None = None, pull: bool = False) -> None:
    """Remember how the last exchange with the cloud went, for the status page."""
    with writing(db) as tx:
        status = get_setting(tx, _STATUS_SETTING, {}) or {}
        status["adapter"] = adapter
        status["online"] = error is None
        if error is None:
            status["last_success_at"] = utc_text(at)
            if pull:
                status["last_pull_at"] = utc_text(at)
        else:
            status["last_error"] = error[:300]
            status["last_error_at"] = utc_text(at)
        put_setting(tx, _STATUS_SETTING, status)


def sync_status(db: Db) -> SyncStatus:
    with reading(db) as tx:
        counts = {
            row["state"]: row["n"]
            for row in tx.execute("SELECT state, count(*) AS n FROM outbox GROUP BY state")
        }
        conflicts = tx.one("SELECT count(*) AS n FROM appointments WHERE sync_state = 'conflict'")
        status = get_setting(tx, _STATUS_SETTING, {}) or {}

    def when(key: str) -> datetime | None:
        value = status.get(key)
        return from_utc_text(value) if isinstance(value, str) else None

    return SyncStatus(
        adapter=status.get("adapter"),
        backlog=counts.get("pending", 0) + counts.get("leased", 0),
        dead=counts.get("dead", 0),
        conflicts=int(conflicts["n"]) if conflicts else 0,
        last_success_at=when("last_success_at"),
        last_error=status.get("last_error"),
        last_error_at=when("last_error_at"),
        last_pull_at=when("last_pull_at"),
        online=bool(status.get("online", False)),
    )


def _entry_from(row: Row) -> OutboxEntry:
    return OutboxEntry(
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
        lease_owner=row["lease_owner"],
        outcome=row["outcome"],
    )
