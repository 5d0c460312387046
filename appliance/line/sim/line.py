"""The simulated line: a product feature, not only a test double.

``line = "sim"`` runs the whole box on a laptop. A test call is placed with
``SimLine.place_call``; the box side gets an ordinary ``Call``, the caller side a
``SimCaller`` that sends audio, key presses or (in text mode) words, and receives
the assistant's audio.

Audio is produced on demand: while the box listens and the caller has nothing
queued, the line carries silence, as a real line does. While the simulated caller
is composing its next turn it holds the line (``hold``) so the box does not hear
seconds of silence that a real caller would not have left. With ``realtime`` the
box-side audio is paced at 20 ms a frame; without it calls run as fast as the
models allow, and latency figures are computed from audio time plus wall time
(see ``appliance.call``).
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import logging
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

import numpy as np

from appliance.audio import FRAME_MS, FRAME_SAMPLES
from appliance.clock import SystemClock
from appliance.errors import LineError
from appliance.line.base import BOX_HUNG_UP, CALLER_HUNG_UP, Dtmf, Inbound, LineHealth, drop_queued_audio
from appliance.line.ringing import Ringing

MAX_RINGS = 15

_LOGGER = logging.getLogger(__name__)
_SILENCE = np.zeros(FRAME_SAMPLES, dtype=np.int16)
# Call ids go into the store, which outlives the process: a counter restarting at
# 1 would give a restarted core's first test call the id of an old call. A random
# run prefix keeps them apart; the counter keeps one run's calls in order.
_RUN = secrets.token_hex(3)
_ids = itertools.count(1)
_MONOTONIC = SystemClock()  # rings are counted in real seconds; the line has no scenario clock
_RING_PERIOD_S = 5.0
_FAST_RING_PERIOD_S = 0.01


@dataclass(frozen=True, slots=True)
class Said:
    """Text mode: the caller's words, injected as if ASR had heard them."""

    text: str
    audio_s: float = 0.0
    """Speech the words were recognised from (a spoken test call); 0 when typed."""
    asr_ms: int = 0
    heard_at: float | None = None
    """Monotonic time the spoken words arrived, before recognition: their turn's
    latency counts from there, as a call's counts from the end-pointer's decision."""
    language: str | None = None
    """The language the recogniser would have detected in the words (``Heard.language``)."""


@dataclass(frozen=True, slots=True)
class KeptSilent:
    """Text mode: the caller said nothing for this long."""

    seconds: float


_HANGUP = object()


class SimCall:
    """The box's side of a simulated call (implements ``appliance.line.base.Call``)."""

    def __init__(self, call_id: str, caller_id: str | None, *, realtime: bool) -> None:
        self.call_id = call_id
        self.caller_id = caller_id
        # No echo and no common clock between the two directions (audio time runs
        # as fast as the models allow): speech barge-in means nothing here; keys do.
        self.full_duplex = False
        self._playing = False
        self._realtime = realtime
        self._audio: asyncio.Queue[Inbound | object] = asyncio.Queue()
        self._script: asyncio.Queue[Said | KeptSilent | Dtmf | object] = asyncio.Queue()
        self._held = asyncio.Event()  # set = caller composing: no silence on demand
        self.awaiting_caller = asyncio.Event()
        """Text mode: set while the box waits for the caller's next act (a typed test
        call answers the web page when the assistant has said all it will say)."""
        self._ended = asyncio.Event()
        self.end_reason = ""
        self.received: list[np.ndarray] = []
        """Every frame the box sent, for the caller (and for saving to a WAV)."""

    # -- box side -------------------------------------------------------------
    async def inbound(self) -> AsyncIterator[Inbound]:
        while True:
            # What the caller sent before hanging up still arrives, then the end.
            if not self._audio.empty() or self._held.is_set() or self._ended.is_set():
                item = await self._next(self._audio)
                if item is _HANGUP:
                    return
                yield item  # type: ignore[misc]
            elif self._playing:
                # The box is talking, not listening: no silence on demand, which a reader
                # watching for key presses would spin through. Look again in a frame's time.
                await asyncio.sleep(FRAME_MS / 1000)
            else:
                if self._realtime:
                    await asyncio.sleep(FRAME_MS / 1000)
                else:
                    await asyncio.sleep(0)  # let the caller's task run between frames
                yield _SILENCE

    async def scripted(self) -> Said | KeptSilent | Dtmf | None:
        """Text mode: the caller's next act; None once the caller has hung up."""
        if self._ended.is_set() and self._script.empty():
            return None
        if self._script.empty():
            self.awaiting_caller.set()
        item = await self._next(self._script)
        self.awaiting_caller.clear()
        return None if item is _HANGUP else item  # type: ignore[return-value]

    def pending_keys(self) -> str:
        """Text mode: keys already queued right behind the current one (one entry)."""
        keys = ""
        while not self._script.empty():
            item = self._script._queue[0]  # type: ignore[attr-defined]  # peek: asyncio.Queue has no peek
            if not isinstance(item, Dtmf):
                break
            keys += self._script.get_nowait().digit  # type: ignore[union-attr]
        return keys

    async def play(self, frames: AsyncIterable[np.ndarray]) -> int:
        loop = asyncio.get_running_loop()
        sent = 0
        started = loop.time()
        self._playing = True
        try:
            async for frame in frames:
                if self._ended.is_set():
                    break
                self.received.append(frame)
                sent += 1
                if self._realtime:
                    # Paced by the clock, not by sleep(20 ms) per frame, so jitter does not add up.
                    delay = started + sent * FRAME_MS / 1000 - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
        finally:
            self._playing = False
        return sent

    async def hang_up(self) -> None:
        self._end(BOX_HUNG_UP)

    def discard_received(self) -> int:
        return drop_queued_audio(self._audio)

    @property
    def ended(self) -> bool:
        return self._ended.is_set()

    # -- caller side ----------------------------------------------------------
    def hold(self) -> None:
        self._held.set()

    def release(self) -> None:
        self._held.clear()
        self._audio.put_nowait(_SILENCE)  # wake a listener blocked on an empty queue

    def send_audio(self, frames: list[np.ndarray]) -> None:
        for frame in frames:
            self._audio.put_nowait(frame)

    def send_dtmf(self, digit: str, hold_s: float = 0.1) -> None:
        """A key press; on this line a press is one event however long the key is held."""
        self._audio.put_nowait(Dtmf(digit))
        self._script.put_nowait(Dtmf(digit))

    def send_text(self, text: str, *, audio_s: float = 0.0, asr_ms: int = 0, heard_at: float | None = None,
                  language: str | None = None) -> None:
        self._script.put_nowait(Said(text, audio_s, asr_ms, heard_at, language))

    def send_silence(self, seconds: float) -> None:
        self._script.put_nowait(KeptSilent(seconds))
        self.send_audio([_SILENCE] * int(seconds * 1000 / FRAME_MS))

    def caller_hangs_up(self) -> None:
        self._end(CALLER_HUNG_UP)

    def _end(self, reason: str) -> None:
        if not self._ended.is_set():
            self.end_reason = reason
            self._ended.set()
            self._audio.put_nowait(_HANGUP)
            self._script.put_nowait(_HANGUP)

    async def _next(self, queue: asyncio.Queue) -> object:
        return await queue.get()


class SimIncomingCall:
    def __init__(self, call: SimCall, ringing: Ringing) -> None:
        self._call = call
        self.caller_id = call.caller_id
        self.ringing = ringing
        self.answered = False

    async def answer(self) -> SimCall:
        if self.ringing.stopped:
            raise LineError("stopped-ringing", "the call stopped ringing before the box answered")
        self.answered = True
        return self._call


class SimLine:
    """A line whose calls are placed by software (``line = "sim"``)."""

    name = "sim"

    def __init__(self, *, realtime: bool = False) -> None:
        self._realtime = realtime
        self._ringing: asyncio.Queue[SimIncomingCall | None] = asyncio.Queue()
        self._bells: set[asyncio.Task[None]] = set()
        self.calls_placed = 0

    def place_call(self, caller_id: str | None, *, gives_up_after_rings: int | None = None) -> SimCall:
        """Ring the box; the caller hangs up unanswered after ``gives_up_after_rings`` rings.

        Rings come every 5 s on a real-time line (France: 1.5 s on, 3.5 s off) and
        every 10 ms otherwise, so an answering policy's "after 4 rings" is quick in tests.
        """
        call = SimCall(f"sim-{_RUN}-{next(_ids)}", caller_id or None, realtime=self._realtime)
        incoming = SimIncomingCall(call, Ringing(_MONOTONIC))
        bell = asyncio.get_running_loop().create_task(self._ring(incoming, gives_up_after_rings))
        self._bells.add(bell)
        bell.add_done_callback(self._bells.discard)
        self._ringing.put_nowait(incoming)
        self.calls_placed += 1
        return call

    async def _ring(self, incoming: SimIncomingCall, gives_up_after: int | None) -> None:
        period = _RING_PERIOD_S if self._realtime else _FAST_RING_PERIOD_S
        # A real caller gives up after a minute or so; the bell stops there too.
        while not incoming.answered and incoming.ringing.rings < MAX_RINGS:
            if gives_up_after is not None and incoming.ringing.rings >= gives_up_after:
                incoming.ringing.stop()
                incoming._call.caller_hangs_up()
                return
            incoming.ringing.ring()
            await asyncio.sleep(period)

    async def incoming(self) -> AsyncIterator[SimIncomingCall]:
        while (ringing := await self._ringing.get()) is not None:
            yield ringing

    def health(self) -> LineHealth:
        return LineHealth(ok=True, device="simulated line", detail=f"{self.calls_placed} test call(s) placed")

    async def close(self) -> None:
        for bell in self._bells:
            bell.cancel()
        self._ringing.put_nowait(None)
