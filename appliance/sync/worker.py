"""The outbox worker: sends the local agenda's changes to the cloud, exactly once.

One pass (``run_once``) claims the due rows under a lease and settles each:

- sent (or found already there: a reply lost on the way back) → done, and the
  appointment is ``synced`` once nothing newer is queued for it;
- the cloud has someone else at that time → ``conflict``: the appointment is
  marked, the staff get a "call this patient back" message, and the patient an
  SMS where the box has a GSM line and the practice turned it on;
- the cloud could not be reached or said "later" → pending again after a
  backoff with full jitter (``uniform(0, min(cap, base·2^attempts))``), until
  ``max_attempts``;
- the cloud refused for good, or ``max_attempts`` ran out → dead letter,
  counted on the staff's page, the appointment marked ``dead``.

A crash at any point loses nothing: the lease runs out and the row is claimed
again, and the adapters make a second send of the same change a no-op (FHIR
conditional create on the booking key, CalDAV create-only PUT).

``run`` is the core's task: a pass whenever something is due, a pull of the
cloud's changes every ``pull_interval_s``, blocking network I/O in a thread.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Final

from appliance.agenda.practice import Practice
from appliance.clock import Clock
from appliance.errors import ConfigError, SyncError
from appliance.store import Store
from appliance.store import appointments, outbox
from appliance.store.cloud import apply_pull, pull_cursor
from appliance.store.inbox import insert_message
from appliance.store.outbox import OutboxEntry
from appliance.sync.adapter import AgendaAdapter, Booking, RemoteRef, SyncConflict

_LOGGER = logging.getLogger(__name__)
_IDLE_POLL_S: Final = 1.0  # how soon a booking made during a call starts its way to the cloud


@dataclass(frozen=True, kw_only=True)
class OutboxSettings:
    max_attempts: int = 12
    """Transient failures before a change becomes a dead letter (about 40 min with the defaults)."""
    backoff_base_s: float = 2.0
    backoff_cap_s: float = 300.0
    lease_s: float = 60.0
    """Longer than any single request (adapter timeouts are 10 s), shorter than a
    staff member's patience when the box restarts mid-send."""
    batch: int = 20
    pull_interval_s: float = 120.0
    pull_days: int = 60
    """How far ahead the pull looks: the practice's booking horizon is enough."""
    sms_on_conflict: bool = False
    """Text the patient when a booking made offline lost its slot (GSM line only)."""

    def __post_init__(self) -> None:
        if not 1 <= self.max_attempts <= 100:
            raise ConfigError(f"sync.max_attempts must be 1-100, got {self.max_attempts}")
        if not 0.1 <= self.backoff_base_s <= self.backoff_cap_s <= 86400:
            raise ConfigError("sync.backoff_base_s must be at least 0.1 s and at most backoff_cap_s (≤ 1 day)")
        if not 5 <= self.lease_s <= 3600:
            raise ConfigError(f"sync.lease_s must be 5-3600 s, got {self.lease_s}")
        if not 1 <= self.batch <= 500:
            raise ConfigError(f"sync.batch must be 1-500, got {self.batch}")
        if not 5 <= self.pull_interval_s <= 86400:
            raise ConfigError(f"sync.pull_interval_s must be 5-86400 s, got {self.pull_interval_s}")
        if not 1 <= self.pull_days <= 366:
            raise ConfigError(f"sync.pull_days must be 1-366, got {self.pull_days}")


@dataclass(frozen=True, kw_only=True)
class PassResult:
    sent: int = 0
    already_there: int = 0
    conflicts: int = 0
    retried: int = 0
    dead: int = 0
    lost_leases: int = 0

    @property
    def claimed(self) -> int:
        return self.sent + self.already_there + self.conflicts + self.retried + self.dead + self.lost_leases


ConflictSms = Callable[[str, str], None]
"""``(phone, text)``: sends one SMS, raising on failure (the GSM line's ``send_sms``)."""


class OutboxWorker:
    def __init__(
        self,
        store: Store,
        adapter: AgendaAdapter,
        practice: Practice,
        clock: Clock,
        settings: OutboxSettings | None = None,
        *,
        rng: random.Random | None = None,
        sms: ConflictSms | None = None,
        owner: str | None = None,
    ) -> None:
        self.store = store
        self.adapter = adapter
        self.practice = practice
        self.clock = clock
        self.settings = settings or OutboxSettings()
        self._rng = rng or random.Random()
        self._sms = sms if self.settings.sms_on_conflict else None
        self.owner = owner or f"worker-{uuid.uuid4().hex[:8]}"

    # --- one pass: claim, send, settle ---------------------------------------

    def run_once(self) -> PassResult:
        """Send every row due now (up to ``batch``); blocking."""
        claimed = outbox.claim_due(
            self.store,
            now=self.clock.now(),
            owner=self.owner,
            lease_s=self.settings.lease_s,
            horizon_s=self.settings.backoff_cap_s * 2,
            limit=self.settings.batch,
        )
        return PassResult(**Counter(self._send(entry) for entry in claimed))

    def drain(self, *, max_passes: int = 10_000) -> PassResult:
        """Passes until nothing is due now (tests, benchmarks, ``appliance sync``)."""
        total: Counter[str] = Counter()
        for _ in range(max_passes):
            result = self.run_once()
            if result.claimed == 0:
                break
            total.update(vars(result))
        return PassResult(**total)

    def _send(self, entry: OutboxEntry) -> str:
        try:
            booking, ref = self._booking_of(entry)
        except (KeyError, TypeError, ValueError) as err:
            # A row this code cannot read is a bug or a hand-edited database: never a retry loop.
            return self._bury(entry, f"unreadable outbox row: {type(err).__name__}: {err}")
        try:
            outcome, new_ref = self._push(entry, booking, ref)
        except SyncConflict as err:
            return self._conflict(entry, booking, err)
        except SyncError as err:
            self._note(error=f"{err.code}: {err.detail}")
            if err.retry and entry.attempts + 1 < self.settings.max_attempts:
                return self._retry(entry, err)
            return self._bury(entry, f"{err.code}: {err.detail}")
        except Exception as err:  # an adapter bug must not kill the worker nor loop forever
            _LOGGER.exception("outbox row %d: unexpected error from the %s adapter", entry.id, self.adapter.name)
            return self._bury(entry, f"internal error: {type(err).__name__}")
        with self.store.transaction() as tx:
            if not outbox.settle(tx, entry, outcome):
                return "lost_leases"
            # A cancellation returns no reference: the one the box knew stays.
            appointments.mark_synced(
                tx, int(entry.payload["id"]), new_ref.remote_id if new_ref else None, new_ref.version if new_ref else None
            )
        self._note()
        _LOGGER.info("outbox row %d (%s) %s", entry.id, entry.kind, outcome.replace("_", " "))
        return outcome

    def _push(self, entry: OutboxEntry, booking: Booking, ref: RemoteRef | None) -> tuple[str, RemoteRef | None]:
        match entry.kind:
            case outbox.APPOINTMENT_CREATED:
                try:
                    return "sent", self.adapter.create(booking, entry.idempotency_key)
                except SyncConflict:
                    # Before calling it a conflict: is it our own booking, written by an
                    # earlier attempt whose reply never came back?
                    found = self.adapter.find(booking.key)
                    if found is None:
                        raise
                    return "already_there", found
            case outbox.APPOINTMENT_MOVED:
                return "sent", self.adapter.move(booking, ref, entry.idempotency_key)
            case outbox.APPOINTMENT_CANCELLED:
                self.adapter.cancel(booking, ref, entry.idempotency_key)
                return "sent", None
        raise ValueError(f"unknown outbox kind {entry.kind!r}")

    def _booking_of(self, entry: OutboxEntry) -> tuple[Booking, RemoteRef | None]:
        p = entry.payload
        tz = self.practice.tz
        slot = p.get("remote_slot")
        birth = p.get("patient_birth_date")
        try:
            label = self.practice.reason(p["reason_id"]).label
        except KeyError:
            label = str(p["reason_id"])  # a reason the practice removed since: still sent
        booking = Booking(
            key=str(p["key"]),
            practitioner_id=str(p["practitioner_id"]),
            reason_id=str(p["reason_id"]),
            reason_label=label,
            start=datetime.fromisoformat(p["start"]).astimezone(tz),
            end=datetime.fromisoformat(p["end"]).astimezone(tz),
            patient_last_name=str(p["patient_last_name"]),
            patient_first_name=str(p.get("patient_first_name") or ""),
            patient_birth_date=date.fromisoformat(birth) if birth else None,
            patient_phone=p.get("patient_phone"),
            remote_slot=RemoteRef(remote_id=slot["remote_id"], version=slot.get("version")) if slot else None,
        )
        current = appointments.get_appointment(self.store, int(p["id"]), tz=tz)
        ref = None
        if current is not None and current.remote_id:
            ref = RemoteRef(remote_id=current.remote_id, version=current.remote_version)
        return booking, ref

    def _retry(self, entry: OutboxEntry, err: SyncError) -> str:
        delay = self._rng.uniform(0, min(self.settings.backoff_cap_s, self.settings.backoff_base_s * 2 ** entry.attempts))
        # Whole seconds, at least one: times are stored to the second, and a wait
        # rounded down to nothing would retry a dead server in a tight loop.
        delay = max(1, math.ceil(delay))
        with self.store.transaction() as tx:
            kept = outbox.retry_later(tx, entry, f"{err.code}: {err.detail}", self.clock.now() + timedelta(seconds=delay))
        _LOGGER.info("outbox row %d: %s, retry in %.0f s", entry.id, err.code, delay)
        return "retried" if kept else "lost_leases"

    def _bury(self, entry: OutboxEntry, error: str) -> str:
        with self.store.transaction() as tx:
            if not outbox.bury(tx, entry, error):
                return "lost_leases"
            if "id" in entry.payload and str(entry.payload["id"]).isdigit():
                appointments.mark_sync_failed(tx, int(entry.payload["id"]), "dead")
        # The code only: a server's own words may quote the patient; the whole
        # error stays in the outbox row, for the staff's page.
        _LOGGER.warning("outbox row %d (%s) is a dead letter: %s", entry.id, entry.kind, error.split(":", 1)[0])
        return "dead"

    def _conflict(self, entry: OutboxEntry, booking: Booking, err: SyncConflict) -> str:
        when = f"{booking.start:%d/%m/%Y à %H:%M}"
        with self.store.transaction() as tx:
            if not outbox.settle(tx, entry, "conflict"):
                return "lost_leases"
            appointment_id = int(entry.payload["id"])
            appointments.mark_sync_failed(tx, appointment_id, "conflict")
            insert_message(
                tx,
                call_id=entry.payload.get("call_id"),
                created_at=self.clock.now(),
                category="sync_conflict",
                urgency="urgent",
                summary=(
                    f"Conflit d'agenda : le rendez-vous du {when} ({booking.reason_label}) pris par"
                    " téléphone était déjà occupé dans l'agenda du cabinet. Rappeler le patient pour"
                    " lui proposer un autre créneau."
                ),
                transcript="",
                patient={
                    "last_name": booking.patient_last_name,
                    "first_name": booking.patient_first_name,
                    "birth_date": booking.patient_birth_date.isoformat() if booking.patient_birth_date else None,
                    "phone": booking.patient_phone,
                    "appointment_id": appointment_id,
                },
            )
        _LOGGER.warning("outbox row %d: conflict in the cloud agenda (%s); the staff are told", entry.id, err.code)
        self._text_patient(booking, when)
        return "conflicts"

    def _text_patient(self, booking: Booking, when: str) -> None:
        if self._sms is None or not booking.patient_phone:
            return
        text = (
            f"{self.practice.name} : votre rendez-vous du {when} n'a pas pu être confirmé."
            " Le secrétariat va vous rappeler pour vous proposer un autre horaire."
        )
        try:
            self._sms(booking.patient_phone, text)
        except Exception as err:  # the staff message is already there; the SMS is a courtesy
            _LOGGER.warning("conflict SMS not sent: %s", type(err).__name__)

    def _note(self, error: str | None = None, *, pull: bool = False) -> None:
        outbox.note_exchange(self.store, self.adapter.name, at=self.clock.now(), error=error, pull=pull)

    # --- pull: the cloud's changes into the local picture ----------------------

    def pull_once(self) -> int | None:
        """Fetch what changed in the cloud and apply it: how many items changed,
        None when the cloud could not be asked (logged, and noted for the status page)."""
        now = self.clock.now()
        cursor = pull_cursor(self.store, self.adapter.name)
        try:
            changes = self.adapter.changes(cursor, now - timedelta(days=1), now + timedelta(days=self.settings.pull_days))
        except SyncError as err:
            self._note(error=f"{err.code}: {err.detail}")
            _LOGGER.warning("pull from the %s agenda failed: %s", self.adapter.name, err.code)
            return None
        applied = apply_pull(
            self.store, self.adapter.name, changes.items, changes.removed, full=changes.full, cursor=changes.cursor
        )
        self._note(pull=True)
        if applied.busy or applied.freed or applied.followed:
            _LOGGER.info(
                "pull: %d taken, %d freed, %d of the box's appointments changed by the staff",
                applied.busy, applied.freed, applied.followed,
            )
        return applied.busy + applied.freed + applied.followed

    # --- the core's task ------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop``: push what is due, pull every ``pull_interval_s``."""
        # Leases of a previous run of this box died with it: take them back now
        # rather than wait for them to expire.
        await asyncio.to_thread(outbox.release_leases, self.store)
        next_pull = 0.0
        while not stop.is_set():
            try:
                if self.clock.monotonic() >= next_pull:
                    await asyncio.to_thread(self.pull_once)
                    next_pull = self.clock.monotonic() + self.settings.pull_interval_s
                result = await asyncio.to_thread(self.run_once)
            except Exception:  # the store is busy or broken: the calls go on, the worker tries again
                _LOGGER.exception("outbox pass failed")
                result = PassResult()
            if result.claimed:
                continue  # more may be due right away
            try:
                await asyncio.wait_for(stop.wait(), timeout=_IDLE_POLL_S)
            except TimeoutError:
                pass
