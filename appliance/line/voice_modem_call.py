"""The calls of an analog voice modem, ringing and answered: the call side of ``voice_modem``.

Ringing. ``RingTracker`` groups the RING and caller-ID lines the driver reads
while idle into one ``IncomingModemCall`` per caller and decides when it is worth
offering: once its number is known, or at the second ring without caller ID
(telephony.md 1.5: CID comes before ring 2 if at all; answering earlier would
cut the FSK burst). Each call's ``Ringing`` counts its rings for the answering
policy; it stops when they stop, or when the chipset says an extension was lifted.

Answered. The driver pushes in here the audio, key presses and end of the call
that its channel's reader decodes (``voice_modem_channel``); ``play`` switches
the half-duplex modem from ``+VRX`` to ``+VTX`` and back (telephony.md 1.8),
pacing the audio by the injected clock so the modem's small transmit buffer
(1-2 KB) neither runs dry nor overflows.

Why a call ended (``VoiceModemCall.end_reason``), one stable code each:

    caller_hung_up        the modem heard it: dial tone, busy, loop drop, +VSD silence
    box_hung_up           the call session hung up
    max_call_length       the hard cap (telephony.md 1.10, last layer)
    extension_picked_up   a person in the practice lifted an extension: they talk now
    modem_not_responding  the modem stopped answering; the driver is rescuing it
    line_lost             the modem vanished (USB unplugged); the driver waits for it
    line_closed           the driver was closed during the call
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from appliance.audio import FRAME_SAMPLES, LINE_RATE_HZ
from appliance.audio.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from appliance.clock import Clock
from appliance.errors import LineError
from appliance.line.base import BOX_HUNG_UP, Dtmf, Inbound, drop_queued_audio, read_until_end
from appliance.line.callerid import CallerIdCollector
from appliance.line.dle import shield
from appliance.line.ringing import Ringing

if TYPE_CHECKING:
    from appliance.line.voice_modem import VoiceModemDriver

_LOGGER = logging.getLogger(__name__)

# Bytes we stay ahead of the modem's playback (telephony.md 1.8: "a few hundred
# bytes ahead", 7.4: 200-1000 B). Less risks underrun gaps when the loop is busy;
# more risks overflowing a 1.5 KB buffer, and a barge-in then still plays it.
TX_LEAD_BYTES: Final = 800
_PACE_POLL_S: Final = 0.002  # real seconds between looks at the clock while pacing
_INBOUND_MAX_FRAMES: Final = 500  # 10 s; a session that stops reading loses the oldest audio
_END: Final = object()
_CID_QUIET_S: Final = 0.5  # caller-ID lines come in one burst; this long without one ends it
_RINGS_WITHOUT_CID: Final = 2  # CID comes before ring 2 if at all (telephony.md 1.5)
_NEW_CALL_GAP_S: Final = 10.0  # rings come every 5-6 s; a longer gap means a new caller
_QUIET_POLL_S: Final = 0.005  # real seconds between looks at the clock

EXTENSION_PICKED_UP: Final = "extension_picked_up"
MODEM_NOT_RESPONDING: Final = "modem_not_responding"


def codec_for(encoding: str) -> tuple[Callable[[bytes], np.ndarray], Callable[[np.ndarray], bytes]]:
    """(decode, encode) between the modem's +VSM bytes and int16 PCM."""
    if encoding == "ulaw":
        return ulaw_decode, lambda pcm: ulaw_encode(pcm).tobytes()
    if encoding == "alaw":
        return alaw_decode, lambda pcm: alaw_encode(pcm).tobytes()
    if encoding == "linear8":
        # The modems' 8-bit linear is unsigned with silence at 0x80 (telephony.md 1.6).
        def decode(data: bytes) -> np.ndarray:
            return ((np.frombuffer(data, dtype=np.uint8).astype(np.int16) - 128) << 8).astype(np.int16)

        def encode(pcm: np.ndarray) -> bytes:
            return ((pcm.astype(np.int16) >> 8) + 128).astype(np.uint8).tobytes()

        return decode, encode
    raise ValueError(f"no codec for {encoding!r}")


async def _safely(step: Coroutine[Any, Any, None]) -> None:
    """Run one modem transition to its end even if the caller is cancelled meanwhile.

    Abandoned half-way (AT+VTX sent, CONNECT not yet read) the reader would parse
    the wrong state and every later command would go astray.
    """
    task = asyncio.ensure_future(step)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await task
        raise


class VoiceModemCall:
    """An answered call (implements ``appliance.line.base.Call``)."""

    def __init__(self, driver: VoiceModemDriver, *, call_id: str, caller_id: str | None, encoding: str) -> None:
        self.call_id = call_id
        self.caller_id = caller_id
        self.encoding = encoding
        self.full_duplex = False  # +VTX or +VRX, never both: only <DLE>digit arrives while it plays
        self._driver = driver
        self._clock: Clock = driver.clock
        self._decode, self._encode = codec_for(encoding)
        self._queue: asyncio.Queue[Inbound | object] = asyncio.Queue()
        self._pending_audio = bytearray()
        self._ended = False
        self.end_reason = ""
        """One of the codes in the module docstring, once ``ended``."""
        self.ended_at: float | None = None
        """Clock time (``clock.monotonic()``) the driver knew the call was over."""
        self._play_task: asyncio.Task[int] | None = None
        self._stopped_by_hang_up = False
        self._sent_frames = 0
        self._finishing: asyncio.Task[None] | None = None

    @property
    def ended(self) -> bool:
        return self._ended

    # --- fed by the driver's reader task -----------------------------------------------

    def deliver_audio(self, data: bytes) -> None:
        if self._ended:
            return
        self._pending_audio += data
        usable = len(self._pending_audio) - len(self._pending_audio) % FRAME_SAMPLES
        if usable == 0:
            return
        pcm = self._decode(bytes(self._pending_audio[:usable]))
        del self._pending_audio[:usable]
        for start in range(0, usable, FRAME_SAMPLES):
            self._put(pcm[start : start + FRAME_SAMPLES].copy())

    def deliver_dtmf(self, digit: str) -> None:
        if not self._ended:
            self._put(Dtmf(digit))

    def mark_ended(self, reason: str) -> None:
        """The call is over for the session: inbound() ends, play() stops at the next frame."""
        if self._ended:
            return
        self._ended = True
        self.end_reason = reason
        self.ended_at = self._clock.monotonic()
        self._queue.put_nowait(_END)

    def _put(self, item: Inbound) -> None:
        if self._queue.qsize() >= _INBOUND_MAX_FRAMES:
            _LOGGER.warning("call %s: inbound audio not read; dropping the oldest frame", self.call_id)
            self._queue.get_nowait()
        self._queue.put_nowait(item)

    # --- the Call protocol ----------------------------------------------------------------

    def discard_received(self) -> int:
        return drop_queued_audio(self._queue)

    def inbound(self) -> AsyncIterator[Inbound]:
        return read_until_end(self._queue, _END)

    async def play(self, frames: AsyncIterable[np.ndarray]) -> int:
        if self._ended:
            return 0
        task = asyncio.current_task()
        assert task is not None
        self._play_task = task  # type: ignore[assignment]
        self._sent_frames = 0
        try:
            async with self._driver.mode_lock:
                if self._ended:
                    return 0
                try:
                    await _safely(self._driver.stop_rx())
                    await _safely(self._driver.start_tx())
                    lead = await self._stream(frames)
                    await _safely(self._driver.end_tx(clear=self._ended, buffered_bytes=lead))
                except asyncio.CancelledError:
                    # Barge-in or hang-up: drop what the modem still holds, at once,
                    # and listen again unless the call is over. A modem failing now
                    # is the driver's to handle; the cancellation still goes through.
                    with contextlib.suppress(LineError):
                        await _safely(self._driver.end_tx(clear=True, buffered_bytes=0))
                        if not self._ended:
                            await _safely(self._driver.start_rx())
                    if not (self._stopped_by_hang_up and task.uncancel() == 0):
                        raise
                    return self._sent_frames
                if not self._ended:
                    await _safely(self._driver.start_rx())
        except LineError:
            if not self._ended:
                raise
            # The modem went away under the prompt (unplugged, hung): the call is
            # over, which the session learns from ``ended``, not from an error.
            return self._sent_frames
        finally:
            self._play_task = None
        return self._sent_frames

    async def _stream(self, frames: AsyncIterable[np.ndarray]) -> int:
        """Send shielded audio paced at 8000 B/s; returns the bytes still buffered at the end."""
        started = self._clock.monotonic()
        sent = 0
        async for frame in frames:
            if self._ended:
                break
            data = self._encode(np.asarray(frame, dtype=np.int16))
            while sent + len(data) - (self._clock.monotonic() - started) * LINE_RATE_HZ > TX_LEAD_BYTES:
                await asyncio.sleep(_PACE_POLL_S)
                if self._ended:
                    break
            if self._ended:
                break
            await self._driver.write(shield(data))
            sent += len(data)
            self._sent_frames += 1
        return max(0, int(sent - (self._clock.monotonic() - started) * LINE_RATE_HZ))

    async def hang_up(self) -> None:
        await self._driver.finish_call(self, BOX_HUNG_UP)

    def stop_playing(self) -> None:
        """Stop a running play() as part of a hang-up: it returns instead of raising."""
        task = self._play_task
        if task is not None and task is not asyncio.current_task() and not task.done():
            self._stopped_by_hang_up = True
            task.cancel()


class IncomingModemCall:
    """A ringing call (implements ``appliance.line.base.IncomingCall``)."""

    def __init__(self, clock: Clock, answer: Callable[[str | None], Awaitable[VoiceModemCall]]) -> None:
        self.caller_id: str | None = None
        self.ringing = Ringing(clock)
        """Every RING / ``<DLE>R`` of this call; stopped when they stop or an extension is lifted."""
        self.answered = False
        self._answer = answer

    async def answer(self) -> VoiceModemCall:
        if self.ringing.stopped:
            raise LineError("stopped-ringing", "the call stopped ringing")
        if self.answered:
            raise LineError("already-answered", "this call was answered already")
        self.answered = True
        return await self._answer(self.caller_id)


class RingTracker:
    """RING and caller-ID lines in, ringing calls out (see the module docstring)."""

    def __init__(
        self,
        clock: Clock,
        *,
        new_call: Callable[[], IncomingModemCall],
        offer: Callable[[IncomingModemCall], None],
    ) -> None:
        self._clock = clock
        self._new_call = new_call
        self._offer_to = offer
        self._collector = CallerIdCollector()
        self.current: IncomingModemCall | None = None
        """The call ringing now (or last), until it is answered."""
        self._offered = False
        self._last_line_at: float | None = None
        self._quiet_watch = False

    def feed(self, line: str, *, is_ring: bool) -> bool:
        """One RING or caller-ID line; True when the caller should ``offer_after_quiet``."""
        now = self._clock.monotonic()
        incoming = self.current
        gap = now - self._last_line_at if self._last_line_at is not None else 0.0
        if incoming is None or incoming.answered or incoming.ringing.stopped or gap > _NEW_CALL_GAP_S:
            incoming = self.current = self._new_call()
            self._collector.reset()
            self._offered = False
        self._last_line_at = now
        if is_ring:
            incoming.ringing.ring()
        self._collector.feed(line)
        if self._offered:
            return False
        if is_ring and (self._collector.complete or self._collector.rings >= _RINGS_WITHOUT_CID):
            self._offer()
            return False
        if self._collector.complete and not self._quiet_watch:
            self._quiet_watch = True
            return True
        return False

    async def offer_after_quiet(self, still_idle: Callable[[], bool]) -> None:
        """Offer once the caller-ID lines stop (NAME follows NMBR; ETSI has no RING after)."""
        try:
            while not self._offered and still_idle():
                last = self._last_line_at
                if last is None:
                    return
                if self._clock.monotonic() - last >= _CID_QUIET_S:
                    self._offer()
                    return
                await asyncio.sleep(_QUIET_POLL_S)
        finally:
            self._quiet_watch = False

    def extension_lifted(self) -> None:
        """The chipset says a person lifted an extension: the ringing call is theirs."""
        if self.current is not None and not self.current.answered:
            _LOGGER.info("a person in the practice took the ringing call on an extension")
            self.current.ringing.stop()

    def reset(self) -> None:
        """A call was answered or is over: the next lines belong to a new caller."""
        self.current = None
        self._collector.reset()
        self._offered = False
        self._last_line_at = None

    def _offer(self) -> None:
        incoming = self.current
        if incoming is None:
            return
        self._offered = True
        cid = self._collector.result
        incoming.caller_id = cid.number if cid is not None else None
        self._offer_to(incoming)
