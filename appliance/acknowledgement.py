"""A short "D'accord…" when the box needs more than a moment to answer.

A caller who hears nothing for a second after speaking says "allô ?" and talks
over the answer. Recognition of a long sentence and the first sentence of a
reply nobody could synthesize in advance (a name, a date) can take longer than
that on the box's CPU. So when the turn has ended and no reply audio has started
``after_s`` later, the box says its acknowledgement (a cached prompt: it plays at
once), then the reply follows as soon as it is ready.

The acknowledgement is never cut off by the reply (a clipped "D'acc—" sounds
broken); the reply waits for its end, at most ~0.6 s. It never replaces an
answer: it only fills the wait for one.

    listener ──turn_ended()──▶ Acknowledgement ──after_s, if no reply yet──▶ call.play("D'accord…")
    speaker.say(reply) ──settle()──▶ cancel the pending acknowledgement, or wait for it to finish
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Final

import numpy as np

from appliance.clock import Clock
from appliance.line.base import Call
from appliance.turns import Speaker

_LOGGER = logging.getLogger(__name__)

# After the end-pointer's own silence (0.4-1.2 s): the caller has already waited
# that long since their last word, so a little more and they start to wonder.
ACK_AFTER_S: Final = 0.3


class Acknowledgement:
    """One call's acknowledgement: armed at each turn end, settled by each reply."""

    def __init__(
        self,
        call: Call,
        frames: Sequence[np.ndarray],
        clock: Clock,
        *,
        after_s: float = ACK_AFTER_S,
        on_played: Callable[[float], None] = lambda seconds: None,
        active: Callable[[], bool] = lambda: True,
    ) -> None:
        """``frames``: the acknowledgement as line frames; ``on_played`` gets, as it
        starts, the seconds since the caller's speech ended; while ``active()`` is
        false (the call left the language it was made in) nothing is said."""
        self._call = call
        self._frames = list(frames)
        self._clock = clock
        self._after_s = after_s
        self._on_played = on_played
        self._active = active
        self._pending: asyncio.Task[None] | None = None
        self._playing = False
        self._speech_ended_at = 0.0

    def turn_ended(self, speech_ended_at: float) -> None:
        """The caller's turn is over (their speech ended at ``speech_ended_at``, monotonic)."""
        if not self._frames or self._pending is not None or not self._active():
            return
        self._speech_ended_at = speech_ended_at
        self._pending = asyncio.ensure_future(self._say_later())

    async def settle(self) -> None:
        """A reply is ready: drop an acknowledgement not yet begun, finish one begun."""
        pending, self._pending = self._pending, None
        if pending is None:
            return
        if not self._playing:
            pending.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await pending  # a line failure here is the reply's to meet, not ours

    async def _say_later(self) -> None:
        await asyncio.sleep(self._after_s)
        if self._call.ended:
            return
        self._playing = True
        try:
            await self._call.play(self._played())
            self._call.discard_received()  # as after any of the box's sentences
        finally:
            self._playing = False

    async def _played(self) -> AsyncIterator[np.ndarray]:
        for index, frame in enumerate(self._frames):
            if index == 0:
                self._on_played(self._clock.monotonic() - self._speech_ended_at)
            yield frame

    def close(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None


class AcknowledgingSpeaker:
    """A ``Speaker`` whose replies settle the call's acknowledgement first."""

    def __init__(self, inner: Speaker, acknowledgement: Acknowledgement) -> None:
        self._inner = inner
        self._ack = acknowledgement

    @property
    def barged_in(self) -> Any:
        """How the caller interrupted the last reply (``AudioSpeaker.barged_in``), if at all."""
        return getattr(self._inner, "barged_in", None)

    async def say(self, text: str, on_first_audio: Callable[[], None], **options: Any) -> int:
        await self._ack.settle()
        return await self._inner.say(text, on_first_audio, **options)
