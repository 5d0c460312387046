"""How query modules reach the database: inside a caller's transaction, or their own.

Every query function takes a ``Db``: a ``Store`` (the function opens and commits
its own transaction) or a ``Tx`` (it joins the caller's, so several writes commit
together, e.g. an appointment and its outbox row).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from appliance.errors import StoreError
from appliance.store.db import Store, Tx

Db = Store | Tx


@contextmanager
def writing(db: Db) -> Iterator[Tx]:
    if isinstance(db, Tx):
        yield db
    else:
        with db.transaction() as tx:
            yield tx


@contextmanager
def reading(db: Db) -> Iterator[Tx]:
    if isinstance(db, Tx):
        yield db
    else:
        with db.snapshot() as tx:
            yield tx


def as_json(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError) as err:
        raise StoreError("json-invalid", f"cannot store as JSON: {err}") from err


def require_aware(name: str, moment: datetime) -> None:
    if moment.tzinfo is None:
        raise ValueError(f"{name} must be an aware datetime, got {moment!r}")
