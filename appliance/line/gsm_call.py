"""A GSM call as the call session sees it: ringing, then answered.

``GsmIncomingCall`` is a ringing call: its ``Ringing`` is fed with every RING /
+CRING and stopped when the caller gives up before the answer (NO CARRIER,
MISSED_CALL, +CLCC stat 6, ccinfo -1). ``GsmCall`` is an answered one: frames
and key presses in, frames out, hang-up either side. Everything that talks to
the module stays in the driver; these objects hold the call's state.

Why a call ended, in ``end_reason`` (the short words of ``base.Call``):

    "caller_hung_up" the module said the caller left (NO CARRIER, VOICE CALL: END,
                    +CLCC stat 6, +QIND ccinfo -1); ``end_detail`` names the signal
    "box_hung_up"   the box ended it (``hang_up()``)
    "line_lost"     the AT port, the audio port or the sound card vanished, or the
                    module stopped answering the +CLCC watchdog
    "call_dropped"  the watchdog found no call in two +CLCC lists in a row (the
                    network dropped it and the URCs were lost: a zombie call)
    "audio_failed"  the audio could not be turned on; ``answer()`` raised
    "line_closed"   the driver was closed during the call
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, AsyncIterator
from typing import TYPE_CHECKING, Final

import numpy as np

from appliance.clock import Clock
from appliance.errors import LineError
from appliance.line.base import BOX_HUNG_UP, Inbound, drop_queued_audio
from appliance.line.callerid import CallerIdCollector
from appliance.line.gsm_at import sleep_until
from appliance.line.gsm_audio import LINE_RATE_HZ, Uplink
from appliance.line.ringing import Ringing

if TYPE_CHECKING:
    from appliance.line.gsm import GsmDriver

_LOGGER = logging.getLogger(__name__)

_PLAY_LEAD_S: Final = 0.04  # written ahead of the line rate (telephony.md 7.4: 200-1000 B = 12-60 ms)


class GsmIncomingCall:
    """A ringing call; ``caller_id`` is the +CLIP number, None when withheld."""

    def __init__(self, driver: GsmDriver, clock: Clock) -> None:
        self._driver = driver
        self.caller_id: str | None = None
        self.ringing = Ringing(clock)
        self.index: int | None = None
        """The module's call index (+CLCC / ccinfo), once a call-state URC named it."""
        self.offered = False
        self.collector = CallerIdCollector()
        self._given_up = False

    @property
    def gone(self) -> bool:
        """The caller hung up, or the call stopped ringing: it cannot be answered."""
        return self._given_up or self.ringing.stopped

    @property
    def given_up(self) -> bool:
        """The module said the caller left (not merely: no ring for a while)."""
        return self._given_up

    def give_up(self) -> None:
        self._given_up = True
        self.ringing.stop()

    async def answer(self) -> GsmCall:
        return await self._driver._answer(self)


class GsmCall:
    """An answered call (implements ``appliance.line.base.Call``)."""

    def __init__(self, driver: GsmDriver, call_id: str, caller_id: str | None, index: int | None) -> None:
        self._driver = driver
        self.call_id = call_id
        self.caller_id = caller_id
        self.index = index
        self.end_reason = ""
        self.end_detail = ""
        """The signal behind ``end_reason``: "NO CARRIER", "the AT port /dev/ttyUSB2 vanished"..."""
        self.ended_at: float | None = None
        """Clock time the driver saw the end."""
        self.uplink: Uplink | None = None
        self.full_duplex = True  # the downlink PCM keeps coming while the box plays
        self._queue: asyncio.Queue[Inbound | None] = asyncio.Queue()
        self._ended = False

    @property
    def ended(self) -> bool:
        return self._ended

    @property
    def audio_on(self) -> bool:
        return self.uplink is not None and not self._ended

    def discard_received(self) -> int:
        return drop_queued_audio(self._queue)

    async def inbound(self) -> AsyncIterator[Inbound]:
        while True:
            item = await self._queue.get()
            if item is None:
                self._queue.put_nowait(None)  # a later reader also sees the end
                return
            yield item

    async def play(self, frames: AsyncIterable[np.ndarray]) -> int:
        """Pace frames on the clock into the uplink; never waits on the module itself.

        Frames the module cannot take (busy, stalled uplink) are dropped, and the
        pacing goes on: the call session's timing stays that of the audio.
        """
        uplink = self.uplink
        if uplink is None:
            if self._ended:
                return 0
            raise LineError("no-audio", "this call has no audio path")
        clock = self._driver.clock
        sent = 0
        played_s = 0.0
        start: float | None = None
        async for frame in frames:
            if self._ended:
                break
            samples = np.asarray(frame, dtype=np.int16)
            if start is None:
                start = clock.monotonic()
            await sleep_until(clock, start + played_s - _PLAY_LEAD_S)
            if self._ended:
                break
            uplink.offer(samples)
            sent += 1
            played_s += len(samples) / LINE_RATE_HZ
        return sent

    async def hang_up(self) -> None:
        if self._ended:
            return
        self._end(BOX_HUNG_UP, "")
        await self._driver._hang_up_module()

    def _start_audio(self, uplink: Uplink) -> None:
        self.uplink = uplink

    def _push(self, item: Inbound) -> None:
        if not self._ended:
            self._queue.put_nowait(item)

    def _end(self, reason: str, detail: str) -> None:
        if self._ended:
            return
        self._ended = True
        self.end_reason = reason
        self.end_detail = detail
        self.ended_at = self._driver.clock.monotonic()
        # No caller number here: INFO goes to the journal (DESIGN.md, privacy).
        _LOGGER.info("call %s ended: %s%s", self.call_id, reason, f" ({detail})" if detail else "")
        self._queue.put_nowait(None)
        self._driver._call_ended(self)
