"""The only way the box reads time.

Calls, the agenda and scenarios are driven by an injected ``Clock`` so a test can
run a call "on Tuesday at 9:00" faster than real time. ``now()`` is the practice's
wall-clock time (aware, with offset); ``monotonic()`` measures durations.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")


class Clock(Protocol):
    def now(self) -> datetime:
        """Aware wall-clock time in the practice's time zone."""

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin, never going back."""


class SystemClock:
    def __init__(self, tz: ZoneInfo = PARIS) -> None:
        self._tz = tz

    def now(self) -> datetime:
        return datetime.now(self._tz)

    def monotonic(self) -> float:
        return time.monotonic()


class FixedClock:
    """Wall time frozen at a scenario's ``now`` (advanced by hand); real monotonic time.

    Latency figures stay real (they are measured with the monotonic clock) while
    every date the dialogue and the agenda see is the scenario's.
    """

    def __init__(self, now: datetime) -> None:
        if now.tzinfo is None:
            raise ValueError("FixedClock needs an aware datetime")
        self._now = now

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> None:
        self._now += delta

    def monotonic(self) -> float:
        return time.monotonic()


class ScaledClock:
    """Time running ``rate`` times faster than real time, from ``start``.

    Give the same object to a line simulator and the driver under test: both then
    pace audio and timeouts by it, and a 6 s ring period takes 0.6 s at ``rate=10``.
    """

    def __init__(self, rate: float = 1.0, *, start: datetime | None = None) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        self.rate = rate
        self._start = start or datetime.now(PARIS)
        if self._start.tzinfo is None:
            raise ValueError("ScaledClock needs an aware start datetime")
        self._t0 = time.monotonic()

    def monotonic(self) -> float:
        return (time.monotonic() - self._t0) * self.rate

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self.monotonic())
