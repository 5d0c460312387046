"""The box's own hang-up detection, around any line driver's call (telephony.md 1.10).

Drivers report the hang-ups their protocol announces (a modem's ``<DLE>d``, a
GSM module's ``NO CARRIER``). Many hang-ups are announced by nothing: a line
behind an ATA or an ONT keeps its loop current and plays a dial or busy tone,
a modem misses its own tone events, a digital line goes dead silent. Without a
check of their own, boxes recorded two minutes of dial tone after every such
call (emxsys/callattendant#141). ``GuardedCall`` adds layers 2 to 4 of 1.10 to
any ``Call``:

    received frames ──▶ GuardedCall ──▶ the session (unchanged, at once)
                          │  HangupDetector: dial tone ≥ 1 s, busy/reorder ≥ 2 cycles,
                          │  dead line ≥ 2.5 s (audio seconds);  max length (clock seconds)
                          └─▶ inner.hang_up(), inbound() ends, ``end_reason`` says why

A pump task reads the inner call's frames as they arrive, not when the session
asks, so the frames a full-duplex line (GSM) delivers while the box speaks are
checked too, even those ``discard_received`` drops afterwards. Each frame is
queued for the session before it is examined: the guard adds no latency.

Build it right after answering, inside the running loop::

    call = GuardedCall(await incoming.answer(), clock, settings)

or let ``GuardedLine`` do it for every call of a line (``open_line`` does).

Not for the simulated line: it makes digital silence on demand (endless and
instantaneous without ``realtime``), which is exactly what a dead line sounds like.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Final

import numpy as np

from appliance.audio.tones import BUSY_TONE, DEAD_LINE, DIAL_TONE, PLANS, HangupDetector
from appliance.clock import Clock
from appliance.errors import ConfigError
from appliance.line.base import (
    BOX_HUNG_UP,
    MAX_CALL_LENGTH,
    Call,
    Dtmf,
    Inbound,
    IncomingCall,
    LineDriver,
    LineHealth,
    drop_queued_audio,
    read_until_end,
)

_LOGGER = logging.getLogger(__name__)

MAX_LENGTH: Final = MAX_CALL_LENGTH
LINE_ENDED: Final = "line_ended"  # the driver ended the call and gave no reason of its own
LINE_FAILED: Final = "line_failed"  # the driver's inbound() raised
END_REASONS: Final = (DIAL_TONE, BUSY_TONE, DEAD_LINE, MAX_LENGTH, BOX_HUNG_UP, LINE_ENDED, LINE_FAILED)

_POLL_S: Final = 0.05  # real seconds between looks at the clock when no frame comes
_QUEUE_MAX_ITEMS: Final = 500  # 10 s of frames; a session that stops reading loses the oldest
_END: Final = object()


@dataclass(frozen=True, kw_only=True)
class HangupSettings:
    """When the box decides on its own that the caller is gone.

    The defaults hear every kind of hang-up within 3 s of audio: a dial tone
    after 1 s, a 0.5/0.5 busy tone after two cycles (2 s), a dead line after 2.5 s.
    """

    tone_plan: str = "europe"
    """Call-progress tones of the exchange: "europe" (425/440 Hz) or "north_america"."""
    dial_tone_s: float = 1.0
    """A dial tone this long without a break ends the call."""
    busy_cycles: int = 2
    """Whole busy/reorder on-off cycles heard in a row that end the call (0.5 to 1 s each)."""
    dead_line_s: float = 2.5
    """Dead silence this long ends the call; a silent caller's line noise is not dead."""
    detect_dead_line: bool = True
    """Off for lines that go digitally silent while the caller is still there: a laptop
    microphone behind noise suppression, a GSM module that sends zeros in pauses.
    Tones and the maximum length still end such calls.
    """
    dead_line_below_dbfs: float = -70.0
    """Level under which a frame is dead; 6 dB more ends a dead stretch (hysteresis).

    A connected line carries -55 to -60 dBFS of noise even when the caller says nothing.
    """
    max_call_s: float = 900.0
    """Hard cap on the call's length (clock seconds): a line that never drops still ends."""

    def __post_init__(self) -> None:
        if self.tone_plan not in PLANS:
            raise ConfigError(f"hangup.tone_plan must be one of {', '.join(PLANS)}, got {self.tone_plan!r}")
        if not 0.5 <= self.dial_tone_s <= 3.0:
            raise ConfigError(f"hangup.dial_tone_s must be 0.5-3.0 s, got {self.dial_tone_s}")
        if not 1 <= self.busy_cycles <= 3:
            raise ConfigError(f"hangup.busy_cycles must be 1-3, got {self.busy_cycles}")
        if not 1.0 <= self.dead_line_s <= 5.0:
            raise ConfigError(f"hangup.dead_line_s must be 1.0-5.0 s, got {self.dead_line_s}")
        # The end of a dead stretch (6 dB higher) must stay under a live line's noise.
        if not -90.0 <= self.dead_line_below_dbfs <= -64.0:
            raise ConfigError(f"hangup.dead_line_below_dbfs must be -90 to -64 dBFS, got {self.dead_line_below_dbfs}")
        if not 30.0 <= self.max_call_s <= 4 * 3600.0:
            raise ConfigError(f"hangup.max_call_s must be 30-14400 s, got {self.max_call_s}")

    def detector(self) -> HangupDetector:
        return HangupDetector(
            PLANS[self.tone_plan],
            dial_tone_s=self.dial_tone_s,
            busy_cycles=self.busy_cycles,
            dead_line_s=self.dead_line_s if self.detect_dead_line else None,
            dead_below_dbfs=self.dead_line_below_dbfs,
        )


class GuardedCall:
    """A ``Call`` that also ends when the received audio (or the clock) says the caller is gone.

    ``end_reason`` is one of ``END_REASONS``, or the inner call's own
    ``end_reason`` when the driver ended the call; "" while the call is up.
    """

    def __init__(self, call: Call, clock: Clock, settings: HangupSettings | None = None) -> None:
        self.inner = call
        self.call_id = call.call_id
        self.caller_id = call.caller_id
        self.settings = settings or HangupSettings()
        self._end_reason = ""
        self._clock = clock
        self._deadline = clock.monotonic() + self.settings.max_call_s
        self._detector = self.settings.detector()
        self._queue: asyncio.Queue[Inbound | object] = asyncio.Queue()
        self._ended = False
        self._hanging_up: asyncio.Future[None] | None = None
        self._pump = asyncio.get_running_loop().create_task(self._watch(), name=f"hangup-guard-{call.call_id}")

    @property
    def ended(self) -> bool:
        return self._ended or self.inner.ended

    @property
    def end_reason(self) -> str:
        # The driver may have ended the call a moment before the watcher saw its
        # stream end: its reason is the call's reason then, never "".
        if self._end_reason:
            return self._end_reason
        return (self.inner.end_reason or LINE_ENDED) if self.inner.ended else ""

    @property
    def full_duplex(self) -> bool:
        return bool(getattr(self.inner, "full_duplex", False))

    @property
    def heard_s(self) -> float:
        """Seconds of audio examined since the last key press (or the start)."""
        return self._detector.heard_s

    # -- the Call protocol ------------------------------------------------------------

    def inbound(self) -> AsyncIterator[Inbound]:
        return read_until_end(self._queue, _END)

    async def play(self, frames: AsyncIterable[np.ndarray]) -> int:
        if self.ended:
            return 0
        return await self.inner.play(self._until_ended(frames))

    async def hang_up(self) -> None:
        await asyncio.shield(self._finish(BOX_HUNG_UP))
        if self._pump is not asyncio.current_task():
            self._pump.cancel()  # it only waits for frames now; the hang-up runs on its own

    def discard_received(self) -> int:
        # The pump keeps the inner call's queue empty: what the session has not
        # read waits here, already examined.
        return drop_queued_audio(self._queue)

    # -- watching ---------------------------------------------------------------------

    async def _watch(self) -> None:
        items = aiter(self.inner.inbound())
        pending: asyncio.Future[Inbound] | None = None
        try:
            while not self._ended:
                if pending is None:
                    pending = asyncio.ensure_future(anext(items))
                # Not wait_for: cancelling anext() on a timeout would close the inner generator.
                done, _ = await asyncio.wait((pending,), timeout=_POLL_S)
                if done:
                    try:
                        item = pending.result()
                    except StopAsyncIteration:
                        pending = None
                        await self._end_call(getattr(self.inner, "end_reason", "") or LINE_ENDED)
                        return
                    pending = None
                    self._put(item)
                    if reason := self._examine(item):
                        _LOGGER.info("call %s: %s heard, hanging up", self.call_id, reason.replace("_", " "))
                        await self._end_call(reason)
                        return
                if self._clock.monotonic() >= self._deadline:
                    _LOGGER.warning(
                        "call %s reached the %.0f s cap; hanging up", self.call_id, self.settings.max_call_s
                    )
                    await self._end_call(MAX_LENGTH)
                    return
        except Exception:  # noqa: BLE001 - a broken driver ends the call, never the box
            _LOGGER.exception("call %s: the line failed", self.call_id)
            await self._end_call(LINE_FAILED)
        finally:
            if pending is not None:
                if not pending.done():
                    pending.cancel()
                elif not pending.cancelled():
                    pending.exception()  # read: the stream's end (or failure) is no news once the call is over

    def _examine(self, item: Inbound) -> str | None:
        if isinstance(item, Dtmf):
            self._detector.reset()  # a key press: someone is on the line
            return None
        return self._detector.feed(item)

    def _put(self, item: Inbound) -> None:
        if self._queue.qsize() >= _QUEUE_MAX_ITEMS:
            _LOGGER.warning("call %s: inbound audio not read; dropping the oldest frame", self.call_id)
            self._queue.get_nowait()
        self._queue.put_nowait(item)

    async def _end_call(self, reason: str) -> None:
        await asyncio.shield(self._finish(reason))

    def _finish(self, reason: str) -> asyncio.Future[None]:
        """End the call once, whoever asks first; the returned hang-up is shared by all."""
        if self._hanging_up is None:
            self._ended = True
            self._end_reason = reason
            self._queue.put_nowait(_END)
            # A task of its own: cancelling whoever waits on it must not abandon a
            # modem half-way through going on-hook.
            self._hanging_up = asyncio.ensure_future(self._hang_up_inner())
        return self._hanging_up

    async def _hang_up_inner(self) -> None:
        if self.inner.ended:
            return
        try:
            await self.inner.hang_up()
        except Exception:  # noqa: BLE001 - the call is over for the session whatever the driver says
            _LOGGER.warning("call %s: the line driver failed to hang up", self.call_id, exc_info=True)

    async def _until_ended(self, frames: AsyncIterable[np.ndarray]) -> AsyncIterator[np.ndarray]:
        """The frames to play, cut off as soon as the guard ends the call."""
        async for frame in frames:
            if self._ended:
                return
            yield frame



class _GuardedIncoming:
    """A ringing call whose answered ``Call`` comes wrapped in a ``GuardedCall``."""

    def __init__(self, incoming: IncomingCall, clock: Clock, settings: HangupSettings) -> None:
        self._incoming = incoming
        self._clock = clock
        self._settings = settings
        self.caller_id = incoming.caller_id
        self.ringing = incoming.ringing

    async def answer(self) -> GuardedCall:
        return GuardedCall(await self._incoming.answer(), self._clock, self._settings)


class GuardedLine:
    """A ``LineDriver`` whose every answered call is a ``GuardedCall`` (what ``open_line`` hands out)."""

    def __init__(self, line: LineDriver, clock: Clock, settings: HangupSettings) -> None:
        self.inner = line
        self.name = line.name
        self._clock = clock
        self._settings = settings

    async def incoming(self) -> AsyncIterator[_GuardedIncoming]:
        async for ringing in self.inner.incoming():
            yield _GuardedIncoming(ringing, self._clock, self._settings)

    def health(self) -> LineHealth:
        return self.inner.health()

    async def close(self) -> None:
        await self.inner.close()
