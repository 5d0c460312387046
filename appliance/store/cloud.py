"""The cloud agenda as last pulled: what others booked, and what the staff changed.

``apply_pull`` writes one pull's result in one transaction:

- time taken in the cloud by others (the staff, the online booking site) goes
  into ``cloud_agenda``, so ``appointments.busy_intervals`` stops offering it;
- the cloud's free Slots (FHIR) are kept with their version, so a booking can
  ask the cloud to take that very Slot at that version;
- the box's own bookings coming back are not copied: they are rows of
  ``appointments`` already. But when the staff moved or cancelled one in the
  cloud, and the box has no change of its own still on the way for it, the
  local row follows the cloud (the staff's decision is the later one).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Protocol

from appliance.errors import StoreError
from appliance.store.access import Db, writing
from appliance.store.db import Tx, utc_text
from appliance.store.outbox import unfinished_for
from appliance.store.settings import box_id, get_setting, put_setting

_LOGGER = logging.getLogger(__name__)
_CURSOR_SETTING: Final = "sync.cursor."


class PulledItem(Protocol):
    """What the store needs of an adapter's ``RemoteBusy``."""

    remote_id: str
    practitioner_id: str
    start: datetime
    end: datetime
    status: str
    booking_key: str | None
    version: str | None


@dataclass(frozen=True, kw_only=True)
class PullApplied:
    busy: int
    """Items of others now known busy (added or updated)."""
    freed: int
    """Items removed: cancelled or deleted in the cloud."""
    followed: int
    """The box's own appointments changed to follow the staff's change in the cloud."""


def apply_pull(
    db: Db,
    adapter: str,
    items: Iterable[PulledItem],
    removed: Iterable[str],
    *,
    full: bool,
    cursor: str,
) -> PullApplied:
    """Write one pull and its new cursor, atomically: a crash leaves the old cursor
    with the old picture, and the next pull asks again."""
    busy = freed = followed = 0
    with writing(db) as tx:
        now = utc_text(tx.clock.now())
        ours = f"{box_id(tx)}/appt-"
        seen: list[str] = []
        for item in items:
            seen.append(item.remote_id)
            if item.booking_key is not None and item.booking_key.startswith(ours):
                # Never stored in cloud_agenda: the box's own bookings are rows of appointments.
                followed += _follow_own(tx, item, item.booking_key[len(ours):])
                continue
            if item.status == "cancelled":
                freed += tx.changes(
                    "DELETE FROM cloud_agenda WHERE adapter = ? AND remote_id = ?", (adapter, item.remote_id)
                )
                continue
            start_utc, end_utc = utc_text(item.start), utc_text(item.end)
            if end_utc <= start_utc:
                _LOGGER.warning("pull: %s %s ends before it starts; ignored", adapter, item.remote_id)
                continue
            tx.execute(
                "INSERT INTO cloud_agenda (adapter, remote_id, practitioner_id, start_utc, end_utc,"
                " status, booking_key, version, pulled_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (adapter, remote_id) DO UPDATE SET practitioner_id = excluded.practitioner_id,"
                " start_utc = excluded.start_utc, end_utc = excluded.end_utc, status = excluded.status,"
                " booking_key = excluded.booking_key, version = excluded.version, pulled_at = excluded.pulled_at",
                (
                    adapter, item.remote_id, item.practitioner_id, start_utc, end_utc,
                    "free" if item.status == "free" else "busy", item.booking_key, item.version, now,
                ),
            )
            busy += item.status != "free"
        for remote_id in removed:
            freed += tx.changes(
                "DELETE FROM cloud_agenda WHERE adapter = ? AND remote_id = ?", (adapter, remote_id)
            )
        if full:
            # A complete picture: whatever the box had that the cloud no longer lists is gone.
            known = {row["remote_id"] for row in tx.execute(
                "SELECT remote_id FROM cloud_agenda WHERE adapter = ?", (adapter,)
            )}
            for remote_id in known - set(seen):
                freed += tx.changes(
                    "DELETE FROM cloud_agenda WHERE adapter = ? AND remote_id = ?", (adapter, remote_id)
                )
        put_setting(tx, _CURSOR_SETTING + adapter, cursor)
    return PullApplied(busy=busy, freed=freed, followed=followed)


def pull_cursor(db: Db, adapter: str) -> str | None:
    value = get_setting(db, _CURSOR_SETTING + adapter)
    return value if isinstance(value, str) else None




def _follow_own(tx: Tx, item: PulledItem, local_id: str) -> int:
    """Make a box appointment follow a change the staff made to it in the cloud."""
    if not local_id.isdigit():
        return 0
    appointment_id = int(local_id)
    row = tx.one("SELECT status, start_utc, end_utc FROM appointments WHERE id = ?", (appointment_id,))
    if row is None or row["status"] != "booked":
        return 0
    if unfinished_for(tx, f"appt-{appointment_id}"):
        # The box's own change is still on its way: it will reach the cloud after
        # this one, and the cloud will then agree with the box.
        return 0
    if item.status == "cancelled":
        tx.execute(
            "UPDATE appointments SET status = 'cancelled', cancelled_at = ?, sync_state = 'synced' WHERE id = ?",
            (utc_text(tx.clock.now()), appointment_id),
        )
        return 1
    start_utc, end_utc = utc_text(item.start), utc_text(item.end)
    if (start_utc, end_utc) == (row["start_utc"], row["end_utc"]) or end_utc <= start_utc:
        return 0
    try:
        tx.execute(
            "UPDATE appointments SET start_utc = ?, end_utc = ?, remote_version = ?, sync_state = 'synced'"
            " WHERE id = ?",
            (start_utc, end_utc, item.version, appointment_id),
        )
    except StoreError as err:
        if err.code != "unique-violated":
            raise
        _LOGGER.warning("pull: appointment %d was moved in the cloud onto another booking; kept as it was", appointment_id)
        return 0
    return 1
