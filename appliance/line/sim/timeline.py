"""Things that happen at a clock time, for one simulator thread.

The line (a ring, a tone starting) and the modem (an ``OK`` after ``+VTS``, a
``<DLE>b`` every 4 s) schedule their actions here; the simulator pops them in
time order and, before each, brings the voice stream up to that instant, so an
event lands at its sample in the audio, not at the next poll.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable


class Timeline:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()  # equal times keep the order they were scheduled in

    def at(self, t: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._heap, (t, next(self._seq), action))

    def pop_due(self, now: float) -> tuple[float, Callable[[], None]] | None:
        """The earliest action due at or before ``now``, removed; None when nothing is due."""
        if not self._heap or self._heap[0][0] > now:
            return None
        t, _, action = heapq.heappop(self._heap)
        return t, action
