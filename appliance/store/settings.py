"""Key-value settings kept in the store (JSON values): the practice copy, the
box id, sync cursors and status. The configuration file stays the source of
the box's settings; these are what the box itself remembers."""

from __future__ import annotations

import json
from typing import Any

from appliance.store.access import Db, as_json, reading, writing


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


def box_id(db: Db) -> str:
    """This box's id, made once by migration 0002: the prefix of its booking keys."""
    value = get_setting(db, "box_id")
    if not isinstance(value, str) or not value:
        raise ValueError("the store has no box id (migration 0002 makes one)")
    return value
