"""0003: the practice copy keeps each practitioner's own hours (JSON list of
``[weekday, "HH:MM", "HH:MM"]``, empty: the practice's hours)."""

from __future__ import annotations

import sqlite_utils


def migrate(db: sqlite_utils.Database) -> None:
    db["practitioners"].add_column("hours", str, not_null_default="[]")
