"""Who may use the web page: passwords, the setup code, sessions, rate limits, CSRF.

- Passwords and the setup code are hashed with argon2id (argon2-cffi's defaults:
  t=3, 64 MiB, p=4, about 0.1-0.3 s). Hashing runs in a worker thread, two at a
  time at most: a burst of logins must neither block the page's event loop nor
  take 64 MiB each without limit on a 4 GB box.
- A session is a random 32-byte token in a cookie (HttpOnly, Secure,
  SameSite=Strict); the store keeps only its SHA-256, the account, and the
  session's CSRF token. Sessions end after 12 h without use, at logout, and when
  the account is disabled or its password reset.
- Five wrong passwords for one name, or from one address, within 15 minutes and
  the next attempts are refused without even checking the password, until the
  oldest of those five is 15 minutes old. A success clears that name's count.
  Failures are recorded *before* the (slow) check, so parallel guesses count too.
- The setup code (first administrator) is rate-limited the same way, under one
  shared name: at most five guesses per quarter hour from the whole network.
- Sensitive actions (erasing a patient's data, a full backup, managing accounts,
  the cloud agenda's credentials) want the password typed within the last
  ``REAUTH_AFTER``: a browser left open at the front desk is not a free pass to
  them. Typing it again is counted like a login attempt, so a stolen session
  cannot be used to guess the password either.

Secure cookies over plain http: Chromium and Firefox treat http://127.0.0.1 and
http://localhost as secure origins and keep Secure cookies there, so the
default (http on 127.0.0.1, as in ``make run`` and the tests) works. Anywhere
else the page must be served with ``[web] https = true``; the login page says so
when it is reached over plain http from another address.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import logging
import math
import os
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from appliance.clock import Clock
from appliance.errors import StoreError
from appliance.store import Store
from appliance.store import staff
from appliance.store.staff import StaffMember, WebSession

_LOGGER = logging.getLogger(__name__)

SESSION_COOKIE: Final = "box_session"
FORM_COOKIE: Final = "box_form"
"""Before login there is no session: the login and setup forms carry a token that
must match this cookie instead (double submit)."""
CSRF_FIELD: Final = "csrf"
CSRF_HEADER: Final = "x-csrf-token"

SESSION_IDLE: Final = timedelta(hours=12)  # a working day plus margin: one login per day
REAUTH_AFTER: Final = timedelta(minutes=10)  # long enough for one task, short enough for a desk left unattended
_TOUCH_EVERY: Final = timedelta(minutes=1)  # push the idle expiry back at most this often (one write)
MIN_PASSWORD: Final = 10
MAX_PASSWORD: Final = 256  # argon2 takes any length; a megabyte "password" is only a way to burn CPU
FAILURE_LIMIT: Final = 5
FAILURE_WINDOW: Final = timedelta(minutes=15)
_VERIFY_SLOTS: Final = 2  # 64 MiB each: two at once keeps the page under its 150 MB memory cap

SETUP_CODE_FILE: Final = "setup-code"
# No 0/O, 1/I/L: the code is read off a label or a console and typed by hand.
_SETUP_ALPHABET: Final = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
_SETUP_GROUPS: Final = 3
_SETUP_GROUP_LEN: Final = 4  # 12 symbols of 31: about 59 bits, behind a 5-per-15-minutes limit

USERNAME_RE: Final = re.compile(r"^[a-z0-9][a-z0-9._-]{1,31}$")


class Passwords:
    """argon2id hashing off the event loop, a bounded number at a time."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()  # argon2id with the library's defaults
        self._slots: asyncio.Semaphore | None = None
        self._dummy: str | None = None

    def _semaphore(self) -> asyncio.Semaphore:
        if self._slots is None:  # made on the loop that serves the page
            self._slots = asyncio.Semaphore(_VERIFY_SLOTS)
        return self._slots

    async def hash(self, secret: str) -> str:
        async with self._semaphore():
            # ~0.3 s of native code: on the loop it would freeze every other page.
            return await asyncio.to_thread(self._hasher.hash, secret)

    async def verify(self, hashed: str | None, secret: str) -> bool:
        """True if ``secret`` matches; with no hash (unknown name) it still takes as long."""
        async with self._semaphore():
            if hashed is None:
                # Same cost for a name that does not exist, so timing does not tell
                # which staff names are real.
                if self._dummy is None:
                    self._dummy = await asyncio.to_thread(self._hasher.hash, secrets.token_hex(16))
                hashed = self._dummy
                secret = secret + "\0"  # never matches the dummy
            try:
                return await asyncio.to_thread(self._hasher.verify, hashed, secret)
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False

    def hash_at_start(self, secret: str) -> str:
        """Hash on the calling thread: only for start-up, before the page serves anyone."""
        return self._hasher.hash(secret)

    def needs_rehash(self, hashed: str) -> bool:
        return self._hasher.check_needs_rehash(hashed)


# --- Passwords and names: what a form must satisfy ------------------------------


def password_problem(password: str, confirm: str | None = None) -> str | None:
    """A locale key saying what is wrong with a new password, or None."""
    if len(password) < MIN_PASSWORD:
        return "errors.password_short"
    if len(password) > MAX_PASSWORD:
        return "errors.password_long"
    if confirm is not None and password != confirm:
        return "errors.password_mismatch"
    return None


def normalize_username(text: str) -> str:
    return text.strip().lower()


def username_problem(username: str) -> str | None:
    return None if USERNAME_RE.match(username) else "errors.username_invalid"


# --- Rate limiting ----------------------------------------------------------------


def lockout_remaining(failure_lists: Sequence[Sequence[datetime]], now: datetime) -> timedelta | None:
    """How long attempts stay refused, given recent failures (oldest first) per key.

    A key with ``FAILURE_LIMIT`` failures inside the window is locked until the
    oldest of its last ``FAILURE_LIMIT`` failures leaves the window.
    """
    remaining = timedelta(0)
    for failures in failure_lists:
        recent = [f for f in failures if f > now - FAILURE_WINDOW]
        if len(recent) >= FAILURE_LIMIT:
            remaining = max(remaining, recent[-FAILURE_LIMIT] + FAILURE_WINDOW - now)
    return remaining if remaining > timedelta(0) else None


def minutes_of(delay: timedelta) -> int:
    """Whole minutes to tell a person, rounded up (never "0 minutes")."""
    return max(1, math.ceil(delay.total_seconds() / 60))


def _locked(store: Store, username: str, address: str, now: datetime) -> timedelta | None:
    by_name, by_address = staff.failures_since(store, username=username, address=address, since=now - FAILURE_WINDOW)
    return lockout_remaining([by_name, by_address], now)


@dataclass(frozen=True, kw_only=True)
class LoginOutcome:
    member: StaffMember | None = None
    locked_minutes: int | None = None
    """Set when the attempt was refused without checking the password."""


async def login(
    store: Store, passwords: Passwords, *, username: str, password: str, address: str, now: datetime
) -> LoginOutcome:
    name = normalize_username(username)[:64]
    # No await between the check and the record: on one event loop no other
    # attempt can slip in between, so parallel guesses are all counted.
    locked = _locked(store, name, address, now)
    if locked is not None:
        _LOGGER.warning("login refused: too many failures (from %s)", address)
        return LoginOutcome(locked_minutes=minutes_of(locked))
    staff.record_failure(store, username=name, address=address, at=now)
    found = staff.credentials(store, name) if len(password) <= MAX_PASSWORD else None
    if not await passwords.verify(found[1] if found else None, password[:MAX_PASSWORD]):
        # Not the name: people type their password into the name field.
        _LOGGER.info("login failed (from %s)", address)
        return LoginOutcome()
    assert found is not None
    member, hashed = found
    staff.clear_failures(store, username=name)
    if passwords.needs_rehash(hashed):
        staff.set_password(store, member.id, await passwords.hash(password), end_sessions=False)
    _LOGGER.info("staff member %d (%s) logged in", member.id, member.role)
    return LoginOutcome(member=member)


def needs_reauth(session: WebSession, now: datetime) -> bool:
    """Whether a sensitive action must ask for the password again."""
    return now - session.password_checked_at >= REAUTH_AFTER


async def confirm_password(
    store: Store, passwords: Passwords, session: WebSession, *, password: str, address: str, now: datetime
) -> LoginOutcome:
    """Check the signed-in person's password again; on success the session counts as freshly checked."""
    name = session.member.username
    locked = _locked(store, name, address, now)
    if locked is not None:
        _LOGGER.warning("password check refused: too many failures (from %s)", address)
        return LoginOutcome(locked_minutes=minutes_of(locked))
    staff.record_failure(store, username=name, address=address, at=now)
    found = staff.credentials(store, name) if len(password) <= MAX_PASSWORD else None
    if not await passwords.verify(found[1] if found else None, password[:MAX_PASSWORD]) or found is None:
        _LOGGER.info("password check failed for staff member %d (from %s)", session.member.id, address)
        return LoginOutcome()
    staff.clear_failures(store, username=name)
    staff.mark_password_checked(store, session.token_hash, at=now)
    return LoginOutcome(member=found[0])


# --- The setup code ---------------------------------------------------------------


def new_setup_code() -> str:
    groups = ("".join(secrets.choice(_SETUP_ALPHABET) for _ in range(_SETUP_GROUP_LEN)) for _ in range(_SETUP_GROUPS))
    return "-".join(groups)


def normalize_setup_code(text: str) -> str:
    """What people type, as the code was hashed: case and spaces/dashes do not matter."""
    return re.sub(r"[\s\-]", "", text).upper()


def ensure_setup_code(store: Store, data_dir: Path, passwords: Passwords, clock: Clock) -> str | None:
    """Make a setup code if the box has no administrator yet and no usable code.

    Returns the new code (to print once on the console), or None when nothing was
    made: setup is done, or a code is pending and its file is still there.
    Synchronous (it hashes): call it at start, before or beside the event loop.
    """
    path = data_dir / SETUP_CODE_FILE
    if staff.setup_done(store):
        return None
    if staff.pending_setup_code(store) is not None and path.exists():
        return None
    code = new_setup_code()
    # Hashed like a password: the store (and its backups) never hold the code itself.
    staff.store_setup_code(store, passwords.hash_at_start(normalize_setup_code(code)), at=clock.now())
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(code + "\n")
    return code


@dataclass(frozen=True, kw_only=True)
class SetupOutcome:
    member_id: int | None = None
    problem: str | None = None
    """A locale key: ``setup.done``, ``errors.setup_code_wrong`` or ``errors.too_many``."""
    locked_minutes: int | None = None


async def first_admin(
    store: Store,
    passwords: Passwords,
    *,
    code: str,
    username: str,
    password: str,
    address: str,
    now: datetime,
    data_dir: Path,
) -> SetupOutcome:
    """Create the first administrator if ``code`` is the pending setup code."""
    code_hash = staff.pending_setup_code(store)
    if code_hash is None or staff.setup_done(store):
        return SetupOutcome(problem="setup.done")
    locked = _locked(store, staff.SETUP_USERNAME, address, now)
    if locked is not None:
        return SetupOutcome(problem="errors.too_many", locked_minutes=minutes_of(locked))
    staff.record_failure(store, username=staff.SETUP_USERNAME, address=address, at=now)
    if not await passwords.verify(code_hash, normalize_setup_code(code)[:64]):
        _LOGGER.warning("wrong setup code (from %s)", address)
        return SetupOutcome(problem="errors.setup_code_wrong")
    password_hash = await passwords.hash(password)
    try:
        member_id = staff.create_first_admin(
            store, username=username, password_hash=password_hash, code_hash=code_hash, at=now
        )
    except StoreError as err:
        if err.code == "setup-done":
            return SetupOutcome(problem="setup.done")
        raise
    staff.clear_failures(store, username=staff.SETUP_USERNAME)
    # The code is void now; its copy on disk would only mislead (the label keeps the original).
    (data_dir / SETUP_CODE_FILE).unlink(missing_ok=True)
    _LOGGER.info("first administrator created; the setup code is void")
    return SetupOutcome(member_id=member_id)


# --- Sessions -----------------------------------------------------------------------


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(store: Store, member_id: int, now: datetime) -> str:
    """Open a session for an account; returns the token for the cookie (never stored)."""
    token = secrets.token_urlsafe(32)
    staff.prune(store, now=now, failures_before=now - timedelta(days=1))
    staff.open_session(
        store,
        token_hash=token_hash(token),
        staff_id=member_id,
        csrf_token=secrets.token_urlsafe(32),
        at=now,
        expires_at=now + SESSION_IDLE,
    )
    return token


def resolve_session(store: Store, token: str | None, now: datetime) -> WebSession | None:
    """The live session a cookie's token belongs to, its idle expiry pushed back."""
    if not token or len(token) > 128:
        return None
    session = staff.session_for(store, token_hash(token), now=now)
    if session is not None and now - session.last_seen_at >= _TOUCH_EVERY:
        staff.touch_session(store, session.token_hash, at=now, expires_at=now + SESSION_IDLE)
    return session


def end_session(store: Store, token: str | None) -> None:
    if token:
        staff.close_session(store, token_hash(token))


def tokens_match(expected: str | None, given: str | None) -> bool:
    """Constant-time comparison; nothing matches a missing token."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


def new_form_token() -> str:
    return secrets.token_urlsafe(32)


def is_loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False
