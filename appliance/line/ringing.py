"""How a ringing call is going: rings counted, and whether it stopped unanswered.

The answering policy ("after N rings when nobody in the practice has picked up")
needs two facts no driver protocol states directly: how many times the call has
rung, and whether it has stopped ringing. An analog line stops ringing when a
person in the practice lifts a handset or the caller gives up; neither is
announced, the rings just stop coming. So every driver feeds one ``Ringing`` per
ringing call with each ring it sees, and says ``stop()`` where its protocol does
announce the end (GSM ``NO CARRIER`` / ``MISSED_CALL``, an extension off-hook
event). Silence longer than ``gap_s`` after the last ring counts as stopped.

Time is the injected clock's, so tests drive it with a fake clock.
"""

from __future__ import annotations

import asyncio
from typing import Final

from appliance.clock import Clock

# Cadences: France 1.5 s on / 3.5 s off, North America 2/4, UK 0.4-0.2-0.4/2.
# The longest silence between two rings is 4 s; 8 s without one is a stopped call.
RING_GAP_S: Final = 8.0
_POLL_S: Final = 0.05


class Ringing:
    def __init__(self, clock: Clock, *, gap_s: float = RING_GAP_S) -> None:
        if gap_s <= 0:
            raise ValueError(f"gap_s must be positive, got {gap_s}")
        self._clock = clock
        self._gap_s = gap_s
        self._rings = 0
        self._last: float | None = None
        self._stopped = False
        self._changed = asyncio.Event()

    @property
    def rings(self) -> int:
        """Rings seen so far."""
        return self._rings

    @property
    def stopped(self) -> bool:
        """True once the call stopped ringing unanswered (said, or no ring for ``gap_s``)."""
        if self._stopped:
            return True
        return self._last is not None and self._clock.monotonic() - self._last > self._gap_s

    def ring(self) -> None:
        """One more ring (a ``RING`` line, ``<DLE>R``, ``+CRING``)."""
        if self._stopped:
            return
        self._rings += 1
        self._last = self._clock.monotonic()
        self._changed.set()

    def stop(self) -> None:
        """The protocol said the ringing ended: taken elsewhere, or the caller gave up."""
        self._stopped = True
        self._changed.set()

    async def wait_rings(self, count: int) -> bool:
        """Wait until the call has rung ``count`` times.

        True when it has; False when it stopped ringing first, which on an analog
        line means a person in the practice took the call or the caller hung up:
        either way the box must not pick up.
        """
        while True:
            if self._rings >= count:
                return not self._stopped
            if self.stopped:
                return False
            self._changed.clear()
            try:
                # Polled as well as woken: the gap is measured on the injected clock.
                await asyncio.wait_for(self._changed.wait(), _POLL_S)
            except TimeoutError:
                pass
