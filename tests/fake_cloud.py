"""An in-memory cloud agenda for the outbox worker's unit tests.

It keeps bookings by key the way a real server does (a second create of the
same key is a no-op) and can be told to fail: unreachable, refuse for good, have
someone else at a time, or do the work and lose the reply. The real servers
(FHIR, CalDAV) are tested in test_sync_fhir.py / test_sync_caldav.py and the
outbox against them in test_sync_reliability.py.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

from appliance.errors import SyncError
from appliance.sync.adapter import Booking, Changes, RemoteBusy, RemoteRef, SyncConflict


@dataclass
class FakeCloud:
    name: str = "fake"
    bookings: dict[str, Booking] = field(default_factory=dict)
    cancelled: set[str] = field(default_factory=set)
    others: list[RemoteBusy] = field(default_factory=list)
    """Time taken by the staff in the cloud."""
    failures: deque[str] = field(default_factory=deque)
    """Next calls' fates: 'down', 'refuse', 'lose_reply' (one per call, then normal)."""
    calls: list[tuple[str, str]] = field(default_factory=list)
    creates: int = 0

    def _fate(self, what: str, key: str) -> str:
        self.calls.append((what, key))
        fate = self.failures.popleft() if self.failures else "ok"
        if fate == "down":
            raise SyncError("fake-down", "connection refused", retry=True)
        if fate == "refuse":
            raise SyncError("fake-refused", "400 bad request", retry=False)
        return fate

    def _taken(self, booking: Booking) -> bool:
        return any(
            o.practitioner_id == booking.practitioner_id and o.start < booking.end and booking.start < o.end
            for o in self.others
        )

    def create(self, booking: Booking, idempotency_key: str) -> RemoteRef:
        fate = self._fate("create", booking.key)
        if booking.key not in self.bookings:
            if self._taken(booking):
                raise SyncConflict("fake-conflict", "someone else is there")
            self.bookings[booking.key] = booking
            self.creates += 1
        elif fate == "ok":
            # A replay of a create whose reply was lost: a real server answers
            # conditional create with the existing resource, or 412 (CalDAV).
            raise SyncConflict("fake-exists", "a resource with that key exists")
        if fate == "lose_reply":
            raise SyncError("fake-reply-lost", "connection reset after the write", retry=True)
        return RemoteRef(remote_id=f"Appointment/{booking.key}", version="1")

    def move(self, booking: Booking, ref: RemoteRef | None, idempotency_key: str) -> RemoteRef:
        self._fate("move", booking.key)
        if self._taken(booking):
            raise SyncConflict("fake-conflict", "someone else is there")
        self.bookings[booking.key] = booking
        return RemoteRef(remote_id=f"Appointment/{booking.key}", version="2")

    def cancel(self, booking: Booking, ref: RemoteRef | None, idempotency_key: str) -> None:
        self._fate("cancel", booking.key)
        self.cancelled.add(booking.key)

    def find(self, key: str) -> RemoteRef | None:
        self.calls.append(("find", key))
        if key in self.bookings and key not in self.cancelled:
            return RemoteRef(remote_id=f"Appointment/{key}", version="1")
        return None

    def changes(self, cursor: str | None, start: datetime, end: datetime) -> Changes:
        self._fate("changes", cursor or "")
        return Changes(items=tuple(self.others), removed=(), cursor=str(len(self.others)), full=True)

    def check(self) -> str:
        self._fate("check", "")
        return "fake cloud"
