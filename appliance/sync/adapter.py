"""The boundary between the outbox and a cloud agenda: ``AgendaAdapter``.

The outbox worker knows nothing of FHIR or CalDAV. It hands an adapter one
change at a time (create, move, cancel a booking) and asks it for what changed
in the cloud since a cursor. Every adapter call is blocking network I/O; the
worker runs it in a thread.

Errors an adapter raises, and what the worker does with them:

- ``SyncError(code, detail, retry=True)``: the cloud could not be reached or
  said "later" (connection refused or dropped, timeout, 429, 5xx). Retried with
  backoff.
- ``SyncError(code, detail, retry=False)``: the cloud refused for good (400,
  401, 403, 404 on a resource that must exist, a body that is not what the
  protocol promises). Dead letter at once, shown to the staff.
- ``SyncConflict``: the time was taken in the cloud by someone else (409/412,
  an overlapping appointment). The worker first asks ``find(key)`` whether the
  booking is in fact ours already there (a reply lost on the way back) before
  calling it a conflict.

A vendor's REST API is a third class with the same five methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal, Protocol

from appliance.errors import SyncError


class SyncConflict(SyncError):
    """The cloud agenda has something else at that time (HTTP 409/412 or an overlap)."""

    default_code = "sync-conflict"

    def __init__(self, code: str | None = None, detail: str = "") -> None:
        super().__init__(code, detail, retry=False)


@dataclass(frozen=True, kw_only=True)
class RemoteRef:
    """Where a booking lives in the cloud, and the version the box last saw."""

    remote_id: str
    """FHIR ``Appointment/<id>``'s id; a CalDAV event's href."""
    version: str | None = None
    """FHIR version ETag (``W/"3"``) or CalDAV ETag; None when the server gave none."""


@dataclass(frozen=True, kw_only=True)
class Booking:
    """One appointment of the box as the cloud should hold it."""

    key: str
    """Stable identifier of the booking, unique across boxes and never reused
    (``<box id>/appt-<n>``). FHIR ``Appointment.identifier``, CalDAV UID; the
    lost-reply check searches for it."""
    practitioner_id: str
    """The practice's own id (``martin``); adapters map it to the cloud's."""
    reason_id: str
    reason_label: str
    start: datetime
    """Aware. Whole minutes."""
    end: datetime
    patient_last_name: str
    patient_first_name: str
    patient_birth_date: date | None
    patient_phone: str | None
    remote_slot: RemoteRef | None = None
    """The cloud Slot this booking fills, as the box last saw it (FHIR only)."""


@dataclass(frozen=True, kw_only=True)
class RemoteBusy:
    """A stretch of a practitioner's time that the cloud says is taken, or freed."""

    remote_id: str
    """Unique within the adapter: ``Appointment/12``, ``Slot/7``, an event href."""
    practitioner_id: str
    """Mapped back to the practice's own id."""
    start: datetime
    end: datetime
    status: Literal["busy", "free", "cancelled"]
    """``free``: a cloud Slot open for booking (FHIR); ``cancelled``: no longer taken."""
    booking_key: str | None = None
    """Set when the item is one of the box's own bookings (its identifier/UID)."""
    version: str | None = None


@dataclass(frozen=True, kw_only=True)
class Changes:
    items: tuple[RemoteBusy, ...]
    removed: tuple[str, ...]
    """Remote ids that no longer exist in the cloud (deleted events, deleted resources)."""
    cursor: str
    """Pass back to ``changes`` next time: sync token, or the server's last update time."""
    full: bool = False
    """True when this is a complete picture (first pull, or the old cursor expired):
    every remote item not in ``items`` is gone."""


class AgendaAdapter(Protocol):
    name: str
    """``fhir``, ``caldav``: shown on the web page and in logs."""

    def create(self, booking: Booking, idempotency_key: str) -> RemoteRef:
        """Put the booking in the cloud; sending it twice creates it once.

        Returns where it lives. Raises ``SyncConflict`` if the time is taken.
        """
        ...

    def move(self, booking: Booking, ref: RemoteRef | None, idempotency_key: str) -> RemoteRef:
        """Give an existing booking its new times (``booking.start/end``).

        ``ref`` is None if the box never learnt where the booking lives; the
        adapter then finds it by key, and creates it if it is not there.
        """
        ...

    def cancel(self, booking: Booking, ref: RemoteRef | None, idempotency_key: str) -> None:
        """Cancel the booking in the cloud; cancelling one already cancelled or
        never created is a success."""
        ...

    def find(self, key: str) -> RemoteRef | None:
        """The booking with that key if the cloud has it (and it is not cancelled)."""
        ...

    def changes(self, cursor: str | None, start: datetime, end: datetime) -> Changes:
        """What changed in the cloud between ``start`` and ``end`` since ``cursor``.

        ``cursor=None`` asks for everything in the window (``full=True``).
        """
        ...

    def check(self) -> str:
        """Reach the server and return a one-line description ("FHIR 4.0.1 at ...").

        Raises ``SyncError`` with a message for the staff when it cannot.
        """
        ...
