"""Staff accounts of the web page, their sessions, failed logins and the setup code.

The SQL only: hashing, tokens and the rules of who may do what live in
``appliance.web.auth``. The store never sees a password, a setup code or a
session token in clear, only their hashes.

Two rules are kept here because they must hold whatever the caller does, inside
the transaction that could break them: the first administrator can be created
only once (with an unused setup code, while no administrator exists), and the
last active administrator cannot be disabled (nobody could manage the box then).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

from appliance.errors import StoreError
from appliance.store.access import Db, reading, require_aware, writing
from appliance.store.db import Row, from_utc_text, utc_text

Role = Literal["admin", "secretary"]
ROLES: Final = ("admin", "secretary")
SETUP_USERNAME: Final = "(setup)"
"""The name failed setup-code attempts are recorded under (no account can have parentheses)."""


@dataclass(frozen=True, kw_only=True)
class StaffMember:
    id: int
    username: str
    role: Role
    created_at: datetime
    disabled_at: datetime | None

    @property
    def active(self) -> bool:
        return self.disabled_at is None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True, kw_only=True)
class WebSession:
    token_hash: str
    member: StaffMember
    csrf_token: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    password_checked_at: datetime
    """The last time this session's person typed their password (login, or again for a sensitive action)."""


def _member_from(row: Row) -> StaffMember:
    return StaffMember(
        id=row["id"],
        username=row["username"],
        role=row["role"],
        created_at=from_utc_text(row["created_at"]),
        disabled_at=from_utc_text(row["disabled_at"]) if row["disabled_at"] else None,
    )


# --- Accounts -------------------------------------------------------------------


def create_staff(db: Db, *, username: str, role: Role, password_hash: str, at: datetime) -> int:
    """Add an account; ``StoreError("username-taken")`` if the name exists (even disabled)."""
    require_aware("at", at)
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    with writing(db) as tx:
        if tx.one("SELECT 1 FROM staff WHERE username = ?", (username,)) is not None:
            raise StoreError("username-taken", f"an account named {username!r} exists")
        return tx.insert(
            "INSERT INTO staff (username, role, password_hash, created_at) VALUES (?, ?, ?, ?)",
            (username, role, password_hash, utc_text(at)),
        )


def staff_members(db: Db) -> list[StaffMember]:
    """Every account, active ones first, then by name."""
    with reading(db) as tx:
        rows = tx.execute("SELECT * FROM staff ORDER BY disabled_at IS NOT NULL, username")
    return [_member_from(row) for row in rows]


def get_staff(db: Db, staff_id: int) -> StaffMember | None:
    with reading(db) as tx:
        row = tx.one("SELECT * FROM staff WHERE id = ?", (staff_id,))
    return None if row is None else _member_from(row)


def credentials(db: Db, username: str) -> tuple[StaffMember, str] | None:
    """The active account of that name and its password hash, or None."""
    with reading(db) as tx:
        row = tx.one("SELECT * FROM staff WHERE username = ? AND disabled_at IS NULL", (username,))
    return None if row is None else (_member_from(row), row["password_hash"])


def set_password(db: Db, staff_id: int, password_hash: str, *, end_sessions: bool = True) -> None:
    """Replace an account's password hash; by default its open sessions end too.

    ``end_sessions=False`` is for re-hashing at login with newer parameters: the
    password did not change, so nobody needs to be signed out.
    """
    with writing(db) as tx:
        if tx.changes("UPDATE staff SET password_hash = ? WHERE id = ?", (password_hash, staff_id)) != 1:
            raise StoreError("staff-unknown", f"no account {staff_id}")
        if end_sessions:
            tx.execute("DELETE FROM web_sessions WHERE staff_id = ?", (staff_id,))


def disable_staff(db: Db, staff_id: int, *, at: datetime) -> None:
    """Disable an account and end its sessions.

    ``StoreError("last-admin")`` if it is the last active administrator: the box
    would be left with nobody able to manage accounts.
    """
    require_aware("at", at)
    with writing(db) as tx:
        row = tx.one("SELECT role, disabled_at FROM staff WHERE id = ?", (staff_id,))
        if row is None:
            raise StoreError("staff-unknown", f"no account {staff_id}")
        if row["disabled_at"] is not None:
            return
        if row["role"] == "admin" and _active_admins(tx) <= 1:
            raise StoreError("last-admin", "the last active administrator cannot be disabled")
        tx.execute("UPDATE staff SET disabled_at = ? WHERE id = ?", (utc_text(at), staff_id))
        tx.execute("DELETE FROM web_sessions WHERE staff_id = ?", (staff_id,))


def enable_staff(db: Db, staff_id: int) -> None:
    with writing(db) as tx:
        if tx.changes("UPDATE staff SET disabled_at = NULL WHERE id = ?", (staff_id,)) != 1:
            raise StoreError("staff-unknown", f"no account {staff_id}")


def admin_exists(db: Db) -> bool:
    with reading(db) as tx:
        return _active_admins(tx) > 0


def _active_admins(tx: Db) -> int:
    with reading(tx) as inner:
        row = inner.one("SELECT count(*) AS n FROM staff WHERE role = 'admin' AND disabled_at IS NULL")
    return int(row["n"]) if row else 0


# --- The setup code -------------------------------------------------------------


def pending_setup_code(db: Db) -> str | None:
    """The hash of the setup code still waiting to be used, or None."""
    with reading(db) as tx:
        row = tx.one("SELECT code_hash FROM setup_code WHERE id = 1 AND used_at IS NULL")
    return None if row is None else row["code_hash"]


def setup_done(db: Db) -> bool:
    """The first administrator was created (the code is void from then on)."""
    with reading(db) as tx:
        used = tx.one("SELECT 1 FROM setup_code WHERE id = 1 AND used_at IS NOT NULL")
        return used is not None or _active_admins(tx) > 0


def store_setup_code(db: Db, code_hash: str, *, at: datetime) -> None:
    """Keep a new setup code's hash (replacing an unused one); refused once setup is done."""
    require_aware("at", at)
    with writing(db) as tx:
        if setup_done(tx):
            raise StoreError("setup-done", "the first administrator exists already")
        tx.execute(
            "INSERT INTO setup_code (id, code_hash, created_at) VALUES (1, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET code_hash = excluded.code_hash,"
            " created_at = excluded.created_at, used_at = NULL",
            (code_hash, utc_text(at)),
        )


def create_first_admin(db: Db, *, username: str, password_hash: str, code_hash: str, at: datetime) -> int:
    """Create the first administrator and void the setup code, in one transaction.

    ``code_hash`` is the hash the caller verified the code against: if another
    request used or replaced the code meanwhile, this one is refused
    (``StoreError("setup-done")``), so two browsers racing get one account.
    """
    require_aware("at", at)
    with writing(db) as tx:
        if setup_done(tx) or pending_setup_code(tx) != code_hash:
            raise StoreError("setup-done", "the setup code was used already")
        staff_id = create_staff(tx, username=username, role="admin", password_hash=password_hash, at=at)
        tx.execute("UPDATE setup_code SET used_at = ? WHERE id = 1", (utc_text(at),))
        return staff_id


# --- Sessions -------------------------------------------------------------------


def open_session(
    db: Db, *, token_hash: str, staff_id: int, csrf_token: str, at: datetime, expires_at: datetime
) -> None:
    require_aware("at", at)
    with writing(db) as tx:
        tx.execute(
            "INSERT INTO web_sessions (token_hash, staff_id, csrf_token, created_at, last_seen_at, expires_at,"
            " password_checked_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (token_hash, staff_id, csrf_token, utc_text(at), utc_text(at), utc_text(expires_at), utc_text(at)),
        )


def session_for(db: Db, token_hash: str, *, now: datetime) -> WebSession | None:
    """The live session with that token hash: not expired, its account active."""
    require_aware("now", now)
    with reading(db) as tx:
        row = tx.one(
            "SELECT s.token_hash, s.csrf_token, s.created_at AS s_created, s.last_seen_at, s.expires_at,"
            " coalesce(s.password_checked_at, s.created_at) AS password_checked_at,"  # NULL: opened before 0005
            " m.id, m.username, m.role, m.created_at, m.disabled_at"
            " FROM web_sessions s JOIN staff m ON m.id = s.staff_id"
            " WHERE s.token_hash = ? AND s.expires_at > ? AND m.disabled_at IS NULL",
            (token_hash, utc_text(now)),
        )
    if row is None:
        return None
    return WebSession(
        token_hash=row["token_hash"],
        member=_member_from(row),
        csrf_token=row["csrf_token"],
        created_at=from_utc_text(row["s_created"]),
        last_seen_at=from_utc_text(row["last_seen_at"]),
        expires_at=from_utc_text(row["expires_at"]),
        password_checked_at=from_utc_text(row["password_checked_at"]),
    )


def touch_session(db: Db, token_hash: str, *, at: datetime, expires_at: datetime) -> None:
    with writing(db) as tx:
        tx.execute(
            "UPDATE web_sessions SET last_seen_at = ?, expires_at = ? WHERE token_hash = ?",
            (utc_text(at), utc_text(expires_at), token_hash),
        )


def mark_password_checked(db: Db, token_hash: str, *, at: datetime) -> None:
    """The session's person just typed their password again."""
    require_aware("at", at)
    with writing(db) as tx:
        tx.execute("UPDATE web_sessions SET password_checked_at = ? WHERE token_hash = ?", (utc_text(at), token_hash))


def close_session(db: Db, token_hash: str) -> None:
    with writing(db) as tx:
        tx.execute("DELETE FROM web_sessions WHERE token_hash = ?", (token_hash,))


def prune(db: Db, *, now: datetime, failures_before: datetime) -> None:
    """Forget expired sessions and failed logins older than ``failures_before``."""
    with writing(db) as tx:
        tx.execute("DELETE FROM web_sessions WHERE expires_at <= ?", (utc_text(now),))
        tx.execute("DELETE FROM login_failures WHERE at < ?", (utc_text(failures_before),))


# --- Failed logins ----------------------------------------------------------------


def record_failure(db: Db, *, username: str, address: str, at: datetime) -> None:
    require_aware("at", at)
    with writing(db) as tx:
        tx.execute(
            "INSERT INTO login_failures (username, address, at) VALUES (?, ?, ?)", (username, address, utc_text(at))
        )


def failures_since(
    db: Db, *, username: str, address: str, since: datetime
) -> tuple[list[datetime], list[datetime]]:
    """Times of failures since ``since``: (for that name, from that address), oldest first."""
    require_aware("since", since)
    with reading(db) as tx:
        by_name = tx.execute(
            "SELECT at FROM login_failures WHERE username = ? AND at >= ? ORDER BY at", (username, utc_text(since))
        )
        by_address = tx.execute(
            "SELECT at FROM login_failures WHERE address = ? AND at >= ? ORDER BY at", (address, utc_text(since))
        )
    return [from_utc_text(r["at"]) for r in by_name], [from_utc_text(r["at"]) for r in by_address]


def clear_failures(db: Db, *, username: str) -> None:
    """A successful login forgets that name's failures (the address keeps its others)."""
    with writing(db) as tx:
        tx.execute("DELETE FROM login_failures WHERE username = ?", (username,))
