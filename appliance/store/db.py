"""The SQLite file: connection, migrations, transactions.

The only module of the box that imports ``sqlite3``. Everything else reaches the
database through a ``Store`` and the ``Tx`` handles it lends, and the SQL itself
lives in ``queries.py``.

The core and the web page are two processes sharing one file, so the journal is
WAL (readers never block the writer) and every write transaction starts with
``BEGIN IMMEDIATE``: it takes the write lock before reading, so "is this slot
still free?" and "insert the appointment" cannot be split by the other process.
A busy lock is waited for (``busy_timeout``) rather than failed at once.

Inside one process the connection is shared by asyncio worker threads, hence
``check_same_thread=False`` and a lock held for the whole of each transaction.

Migrations are ``migrations/NNNN_name.sql`` or ``NNNN_name.py``, applied in
order at open, each in its own transaction and recorded in ``schema_migrations``.
A Python migration's ``migrate(db)`` gets a ``sqlite_utils.Database`` on the
same connection: sqlite-utils does the schema work (tables, columns, indexes)
and, finding a transaction open, nests its own steps as savepoints inside it,
so a failing migration still leaves nothing behind. A database written by
a newer version of the box (a version this code does not know) is refused
rather than used with a schema it does not understand.
"""

from __future__ import annotations

import importlib
import logging
import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any, Final

from appliance.clock import Clock, SystemClock
from appliance.errors import StoreError

_LOGGER = logging.getLogger(__name__)

_BUSY_TIMEOUT_MS: Final = 5000  # the web page's longest write is far shorter than this
_MIGRATION_RE: Final = re.compile(r"^(\d{4})_([a-z0-9_]+)\.(sql|py)$")

Row = sqlite3.Row
"""A result row: read columns by name, ``row["start_utc"]``."""

Params = Sequence[Any] | dict[str, Any]


def utc_text(moment: datetime) -> str:
    """The one way a moment is written to the database: UTC, to the second, ``...Z``.

    A single fixed-width format means text comparison is time comparison, which
    the range queries on appointments rely on.
    """
    if moment.tzinfo is None:
        raise ValueError(f"refusing to store a naive datetime: {moment!r}")
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def from_utc_text(text: str) -> datetime:
    """Inverse of ``utc_text``: an aware datetime in UTC."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str
    """The script of a ``.sql`` migration; empty for a Python one."""
    module: str | None = None
    """``appliance.store.migrations.NNNN_name`` for a ``.py`` migration."""


def bundled_migrations() -> list[Migration]:
    """The migrations shipped in ``appliance/store/migrations``, in version order."""
    folder = resources.files("appliance.store") / "migrations"
    found: dict[int, Migration] = {}
    for entry in folder.iterdir():
        match = _MIGRATION_RE.match(entry.name)
        if not match:
            continue
        version = int(match[1])
        if version in found:
            raise StoreError("migration-duplicate", f"two migrations numbered {version:04d}")
        if match[3] == "sql":
            found[version] = Migration(version, match[2], entry.read_text(encoding="utf-8"))
        else:
            found[version] = Migration(version, match[2], "", f"appliance.store.migrations.{entry.name[:-3]}")
    return [found[v] for v in sorted(found)]


class Tx:
    """A handle on one open transaction (or snapshot), valid only inside its ``with``."""

    def __init__(self, conn: sqlite3.Connection, clock: Clock) -> None:
        self._conn: sqlite3.Connection | None = conn
        self.clock = clock

    def execute(self, sql: str, params: Params = ()) -> list[Row]:
        return self._run(lambda conn: conn.execute(sql, params).fetchall())

    def one(self, sql: str, params: Params = ()) -> Row | None:
        return self._run(lambda conn: conn.execute(sql, params).fetchone())

    def insert(self, sql: str, params: Params = ()) -> int:
        """Run an INSERT and return the new row's id."""
        cursor = self._run(lambda conn: conn.execute(sql, params))
        return int(cursor.lastrowid)

    def changes(self, sql: str, params: Params = ()) -> int:
        """Run an UPDATE/DELETE/INSERT and return how many rows it touched."""
        cursor = self._run(lambda conn: conn.execute(sql, params))
        return int(cursor.rowcount)

    def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        self._run(lambda conn: conn.executemany(sql, rows))

    def _run(self, work: Any) -> Any:
        if self._conn is None:
            raise StoreError("transaction-closed", "this transaction has already ended")
        try:
            return work(self._conn)
        except sqlite3.Error as err:
            raise _wrap(err) from err

    def _close(self) -> None:
        self._conn = None


def _wrap(err: sqlite3.Error) -> StoreError:
    """Turn a sqlite3 error into a StoreError with a stable code."""
    name = getattr(err, "sqlite_errorname", "")
    if isinstance(err, sqlite3.IntegrityError):
        code = {
            "SQLITE_CONSTRAINT_UNIQUE": "unique-violated",
            "SQLITE_CONSTRAINT_PRIMARYKEY": "unique-violated",
            "SQLITE_CONSTRAINT_FOREIGNKEY": "foreign-key-violated",
            "SQLITE_CONSTRAINT_CHECK": "check-violated",
            "SQLITE_CONSTRAINT_NOTNULL": "not-null-violated",
        }.get(name, "constraint-violated")
    elif name in ("SQLITE_BUSY", "SQLITE_LOCKED") or "locked" in str(err):
        code = "busy"
    else:
        code = "sqlite-error"
    return StoreError(code, str(err))


class Store:
    """One connection to the box's SQLite file. Use ``Store.open``."""

    def __init__(self, conn: sqlite3.Connection, path: Path | str, clock: Clock) -> None:
        self._conn = conn
        self._lock = threading.RLock()
        self._in_transaction = False
        self.path = path
        self.clock = clock

    @classmethod
    def open(cls, path: Path | str, *, clock: Clock | None = None) -> Store:
        """Open (creating if needed) and migrate the database at ``path`` or ``":memory:"``.

        ``clock`` stamps rows (``created_at``, migration dates); the composition
        root passes its own, so that simulations and tests write their dates.
        """
        target = str(path)
        if target != ":memory:":
            Path(target).parent.mkdir(parents=True, exist_ok=True)
        try:
            # isolation_level=None: no implicit BEGIN from the sqlite3 module;
            # transactions are the explicit ones below, so their kind is ours to choose.
            conn = sqlite3.connect(
                target,
                isolation_level=None,
                check_same_thread=False,
                timeout=_BUSY_TIMEOUT_MS / 1000,
            )
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            # FULL: an appointment confirmed to the caller survives a power cut.
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as err:
            raise StoreError("store-open", f"{target}: {err}") from err
        store = cls(conn, path, clock or SystemClock())
        try:
            store._migrate(bundled_migrations())
        except BaseException:
            conn.close()
            raise
        return store

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        """A write transaction: BEGIN IMMEDIATE, COMMIT on success, ROLLBACK on any exception."""
        with self._begin("BEGIN IMMEDIATE") as tx:
            yield tx

    @contextmanager
    def snapshot(self) -> Iterator[Tx]:
        """A read transaction: every query inside sees the same state of the file."""
        with self._begin("BEGIN DEFERRED") as tx:
            yield tx

    @contextmanager
    def _begin(self, begin_sql: str) -> Iterator[Tx]:
        with self._lock:
            if self._in_transaction:
                # The lock is re-entrant, so a nested call lands here instead of
                # deadlocking; SQLite has no nested BEGIN anyway.
                raise StoreError("nested-transaction", "a transaction is already open on this store")
            conn = self._connection()
            try:
                conn.execute(begin_sql)
            except sqlite3.Error as err:
                raise _wrap(err) from err
            self._in_transaction = True
            tx = Tx(conn, self.clock)
            try:
                yield tx
            except BaseException:
                tx._close()
                self._in_transaction = False
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    # SQLite may already have rolled back (e.g. after SQLITE_FULL);
                    # the original exception is the one worth reporting.
                    _LOGGER.warning("rollback failed after an error", exc_info=True)
                raise
            tx._close()
            self._in_transaction = False
            try:
                conn.execute("COMMIT")
            except sqlite3.Error as err:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise _wrap(err) from err

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def backup_to(self, path: Path | str) -> None:
        """Write a consistent copy of the whole database to ``path`` while the box runs.

        SQLite's online backup API copies page by page under a read lock, so the
        copy is one committed state even while the core keeps writing; copying the
        file (and its WAL) by hand could catch half a transaction.
        """
        try:
            target = sqlite3.connect(str(path))
        except sqlite3.Error as err:
            raise StoreError("backup-failed", f"{path}: {err}") from err
        try:
            with self._lock:
                self._connection().backup(target)
        except sqlite3.Error as err:
            raise StoreError("backup-failed", f"{path}: {err}") from err
        finally:
            target.close()

    def applied_migrations(self) -> list[tuple[int, str]]:
        with self.snapshot() as tx:
            rows = tx.execute("SELECT version, name FROM schema_migrations ORDER BY version")
        return [(row["version"], row["name"]) for row in rows]

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError("store-closed", f"{self.path}: the store is closed")
        return self._conn

    def _migrate(self, migrations: list[Migration]) -> None:
        with self.transaction() as tx:
            tx.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version INTEGER PRIMARY KEY,"
                " name TEXT NOT NULL,"
                " applied_at TEXT NOT NULL)"
            )
        known = {m.version: m for m in migrations}
        for migration in migrations:
            # Re-read inside each transaction: the other process may be migrating
            # the same file at the same moment, and BEGIN IMMEDIATE serialises us.
            with self.transaction() as tx:
                applied = {
                    row["version"]: row["name"]
                    for row in tx.execute("SELECT version, name FROM schema_migrations")
                }
                newer = sorted(v for v in applied if v not in known)
                if newer:
                    raise StoreError(
                        "schema-too-new",
                        f"{self.path}: migration {newer[-1]:04d} was applied by a newer"
                        " version of the box; refusing to use this database",
                    )
                if migration.version in applied:
                    if applied[migration.version] != migration.name:
                        raise StoreError(
                            "schema-mismatch",
                            f"{self.path}: migration {migration.version:04d} is recorded as"
                            f" {applied[migration.version]!r}, the box has {migration.name!r}",
                        )
                    continue
                if migration.module is not None:
                    _run_python_migration(self._connection(), migration)
                for statement in _statements(migration.sql):
                    tx.execute(statement)
                tx.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (migration.version, migration.name, utc_text(self.clock.now())),
                )
                _LOGGER.info("applied migration %04d_%s", migration.version, migration.name)


def _run_python_migration(conn: sqlite3.Connection, migration: Migration) -> None:
    import sqlite_utils  # only migrations need it; the call path does not pay for the import

    module = importlib.import_module(migration.module or "")
    try:
        module.migrate(sqlite_utils.Database(conn, execute_plugins=False))
    except sqlite3.Error as err:
        raise _wrap(err) from err


def _statements(script: str) -> Iterator[str]:
    """Split a SQL script into statements.

    ``executescript`` would be simpler but it COMMITs first, which would take the
    migration out of its transaction. ``complete_statement`` knows about strings,
    comments and trigger bodies, so a ``;`` inside them does not split.
    """
    buffer = ""
    for piece in script.split(";"):
        buffer += piece + ";"
        if sqlite3.complete_statement(buffer):
            statement = buffer.strip()
            buffer = ""
            if _has_code(statement):
                yield statement
    if _has_code(buffer.rstrip(";")):
        raise StoreError("migration-invalid", f"unterminated SQL statement: {buffer.strip()[:80]!r}")


def _has_code(sql: str) -> bool:
    lines = [line.split("--", 1)[0].strip() for line in sql.splitlines()]
    return any(line and line != ";" for line in lines)
