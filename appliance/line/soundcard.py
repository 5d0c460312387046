"""A call whose audio is a sound card, and the laptop line built on it.

``SoundCardCall`` turns an open ``AudioStream`` into a ``Call``:

    card ──read (reader thread, blocking)──▶ 160-sample frames ──▶ asyncio queue ──▶ inbound()
    play() ──▶ writer thread, blocking writes: the card's buffer paces the prompt

The card is the clock of the audio: a blocking read returns every 20 ms and a
blocking write returns when the card has room, so nothing here sleeps to pace.
Both blocking calls live in threads of their own (not the shared executor,
where a long transcription could hold up the speaker) and the loop only moves
frames. The same class carries a GSM module's call audio when the module is a
USB sound card (EC25 UAC, SIM800 through a USB card): the GSM driver builds it
with the call's number and an ``on_hang_up`` coroutine that sends ``AT+CHUP``,
and calls ``mark_ended`` when the network reports the end.

The call owns the stream: it is closed when the call ends, by the reader
thread once its last read has returned (closing a PortAudio stream under a
blocked read is undefined behaviour), after the writer has finished.

``SoundCardLine`` is the laptop's line (``line = "soundcard"``): the microphone
and speaker are the caller's handset. There is no ringing: one call is offered
as soon as the box starts (with a ``Ringing`` of one ring), and after each call
the next one is offered when the person presses Enter in the terminal, which is
what someone trying the box expects ("call again" is their decision; a box that
starts talking by itself would talk over them). Without a terminal (stdin not a
tty, e.g. under a service manager) the next call comes after a short pause.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import queue
import sys
import threading
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import Any, Final

import numpy as np

from appliance.audio import FRAME_MS, FRAME_SAMPLES, LINE_RATE_HZ
from appliance.audio.resample import StreamResampler
from appliance.clock import Clock
from appliance.errors import LineError
from appliance.line.audio_device import AudioDevice, AudioDeviceError, AudioStream
from appliance.line.base import BOX_HUNG_UP, Dtmf, Inbound, LineHealth, drop_queued_audio, read_until_end
from appliance.line.ringing import Ringing

_LOGGER = logging.getLogger(__name__)

AUDIO_DEVICE_LOST: Final = "audio_device_lost"

CAPTURE_STALL_S: Final = 5.0  # a blocking read returns every 20 ms; 5 s without one is a hung card
NEXT_CALL_PAUSE_S: Final = 3.0  # without a terminal: time to hear the end of one call before the next
_CLOSE_WAIT_S: Final = 1.0  # real seconds to wait for the card's threads to let go of the stream
_POLL_S: Final = 0.1  # real seconds between looks at the clock (stall watchdog, pauses)
_INBOUND_MAX_FRAMES: Final = 500  # 10 s; a session that stops reading loses the oldest audio
_CARD_QUALITY: Final = "LQ"  # soxr in real time: 25-60 ms of delay, no 100 ms bursts (see StreamResampler)
_END: Final = object()

HangUpHook = Callable[[], Awaitable[None]]


class SoundCardCall:
    """A call on a sound card (implements ``appliance.line.base.Call``).

    Build it inside the running loop: capture starts at once. ``rate_hz`` is
    the stream's rate; anything but 8 kHz is converted both ways. ``on_hang_up``
    runs once when the box ends the call (``hang_up()``, or the card vanished),
    never when the driver reports the far end gone through ``mark_ended``.
    """

    def __init__(
        self,
        stream: AudioStream,
        *,
        call_id: str,
        caller_id: str | None = None,
        clock: Clock,
        rate_hz: int = LINE_RATE_HZ,
        on_hang_up: HangUpHook | None = None,
        stall_s: float = CAPTURE_STALL_S,
    ) -> None:
        self.call_id = call_id
        self.caller_id = caller_id
        self.end_reason = ""
        self.rate_hz = rate_hz
        self.full_duplex = True  # capture runs while the box plays: the caller, and the speaker's echo
        self._stream = stream
        self._clock = clock
        self._on_hang_up = on_hang_up
        self._stall_s = stall_s
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[Inbound | object] = asyncio.Queue()
        self._ended = False
        self._hook: asyncio.Future[None] | None = None
        self._stop = threading.Event()
        self._closed = asyncio.Event()
        self._last_capture = clock.monotonic()  # written by the reader thread
        self._writer = _Writer(stream.write, self._loop, name=f"soundcard-play-{call_id}")
        self._reader = threading.Thread(target=self._capture, name=f"soundcard-rec-{call_id}", daemon=True)
        self._reader.start()
        self._watchdog = self._loop.create_task(self._watch_capture(), name=f"soundcard-watch-{call_id}")

    @property
    def ended(self) -> bool:
        return self._ended

    # -- the Call protocol ----------------------------------------------------------------

    def inbound(self) -> AsyncIterator[Inbound]:
        return read_until_end(self._queue, _END)

    async def play(self, frames: AsyncIterable[np.ndarray]) -> int:
        """Write frames as fast as the card takes them; cancelling stops at once.

        What the card has already buffered (a few 20 ms periods) still sounds.
        """
        if self._ended:
            return 0
        to_card = _resampler(LINE_RATE_HZ, self.rate_hz)
        sent = 0
        async for frame in frames:
            if self._ended:
                return sent
            samples = np.asarray(frame, dtype=np.int16)
            if not await self._write(to_card.process(samples) if to_card else samples):
                return sent
            sent += 1
        if to_card is not None and not self._ended:
            await self._write(to_card.flush())  # the end of the prompt, still inside the filter
        return sent

    async def hang_up(self) -> None:
        if self._end(BOX_HUNG_UP):
            self._hook_task()
        if self._hook is not None:
            # Shielded: a session cancelled while hanging up must not leave the module's call up.
            await asyncio.shield(self._hook)
        await self.wait_closed()

    def discard_received(self) -> int:
        return drop_queued_audio(self._queue)

    # -- for drivers --------------------------------------------------------------------------

    def deliver_dtmf(self, digit: str) -> None:
        """A key press reported out of band (a GSM module's ``+RXDTMF``), in order with the audio."""
        if not self._ended:
            self._queue.put_nowait(Dtmf(digit))

    def mark_ended(self, reason: str) -> None:
        """The driver learnt that the call is over (``NO CARRIER``): end it without ``on_hang_up``."""
        self._end(reason)

    async def wait_closed(self) -> bool:
        """Wait until the stream is closed and the card free; False if a hung card kept it."""
        try:
            await asyncio.wait_for(self._closed.wait(), _CLOSE_WAIT_S)
        except TimeoutError:
            _LOGGER.warning("call %s: the sound card did not let go of its stream", self.call_id)
            return False
        return True

    # -- inside ---------------------------------------------------------------------------------

    def _end(self, reason: str) -> bool:
        if self._ended:
            return False
        self._ended = True
        self.end_reason = reason
        self._queue.put_nowait(_END)
        self._stop.set()  # the reader stops after its current read, then closes the stream
        self._watchdog.cancel()
        _LOGGER.info("call %s ended: %s", self.call_id, reason)
        return True

    def _lose(self, detail: str) -> None:
        """The card vanished: the call is over, and the far end (if any) must be told."""
        if self._end(AUDIO_DEVICE_LOST):
            _LOGGER.warning("call %s: %s", self.call_id, detail)
            self._hook_task()

    def _hook_task(self) -> asyncio.Future[None]:
        if self._hook is None:
            self._hook = asyncio.ensure_future(self._call_hook())
        return self._hook

    async def _call_hook(self) -> None:
        if self._on_hang_up is None:
            return
        try:
            await self._on_hang_up()
        except Exception:  # noqa: BLE001 - the call is over for the box whatever the hook says
            _LOGGER.warning("call %s: hanging up the line failed", self.call_id, exc_info=True)

    async def _write(self, samples: np.ndarray) -> bool:
        """True once the card took ``samples``; False when it is gone."""
        if len(samples) == 0:
            return True
        try:
            await self._writer.write(samples)
        except AudioDeviceError as err:
            self._lose(str(err))
            return False
        return True

    def _put(self, frame: np.ndarray) -> None:
        if self._ended:
            return
        if self._queue.qsize() >= _INBOUND_MAX_FRAMES:
            _LOGGER.warning("call %s: inbound audio not read; dropping the oldest frame", self.call_id)
            self._queue.get_nowait()
        self._queue.put_nowait(frame)

    def _post(self, callback: Callable[..., object], *args: Any) -> None:
        """From a card thread to the loop; a loop already closed has nobody left to tell."""
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(callback, *args)

    def _capture(self) -> None:
        """The reader thread: card reads -> 160-sample frames on the loop; then close the stream."""
        chunk = max(1, self.rate_hz * FRAME_MS // 1000)
        to_line = _resampler(self.rate_hz, LINE_RATE_HZ)
        pending = np.zeros(0, np.int16)
        try:
            while not self._stop.is_set():
                samples = self._stream.read(chunk)
                self._last_capture = self._clock.monotonic()
                if self._stop.is_set():
                    break
                pcm = np.asarray(samples, dtype=np.int16)
                if to_line is not None:
                    pcm = to_line.process(pcm)
                pending = np.concatenate([pending, pcm]) if len(pending) else pcm
                whole = len(pending) - len(pending) % FRAME_SAMPLES
                for start in range(0, whole, FRAME_SAMPLES):
                    self._post(self._put, pending[start : start + FRAME_SAMPLES].copy())
                pending = pending[whole:]
        except AudioDeviceError as err:
            self._post(self._lose, str(err))
        except Exception as err:  # noqa: BLE001 - whatever broke, the call ends cleanly
            _LOGGER.exception("call %s: sound-card capture failed", self.call_id)
            self._post(self._lose, f"capture failed: {type(err).__name__}")
        finally:
            if self._writer.stop(_CLOSE_WAIT_S):
                with contextlib.suppress(Exception):
                    self._stream.close()
                self._post(self._closed.set)
            else:  # closing under a write that never returns could crash PortAudio: leave it open
                _LOGGER.warning("call %s: the sound card hangs in a write; its stream stays open", self.call_id)

    async def _watch_capture(self) -> None:
        """A card that hangs instead of failing (a blocked read, no error) still ends the call."""
        while not self._ended:
            await asyncio.sleep(_POLL_S)
            if self._clock.monotonic() - self._last_capture > self._stall_s:
                self._lose(f"no audio from the sound card for {self._stall_s:.0f} s")
                return


def _resampler(in_rate_hz: int, out_rate_hz: int) -> StreamResampler | None:
    return StreamResampler(in_rate_hz, out_rate_hz, quality=_CARD_QUALITY) if in_rate_hz != out_rate_hz else None


class _Writer:
    """One daemon thread doing the card's blocking writes, in order.

    ``play`` hands over one chunk at a time and waits for it, so the thread
    holds at most one. A daemon, so that a card hung in a write cannot keep
    the process from exiting.
    """

    def __init__(self, write: Callable[[np.ndarray], None], loop: asyncio.AbstractEventLoop, *, name: str) -> None:
        self._write = write
        self._loop = loop
        self._jobs: queue.SimpleQueue[tuple[np.ndarray, asyncio.Future[None]] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def write(self, samples: np.ndarray) -> asyncio.Future[None]:
        done: asyncio.Future[None] = self._loop.create_future()
        with self._lock:  # a chunk handed over after stop() would never be written nor answered
            if self._stopped:
                done.set_exception(AudioDeviceError("the sound-card stream is closed"))
            else:
                self._jobs.put((samples, done))
        return done

    def stop(self, wait_s: float) -> bool:
        """Write what was handed over, then end; True once the thread has ended (waits ``wait_s``)."""
        with self._lock:
            self._stopped = True
            self._jobs.put(None)
        self._thread.join(wait_s)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            samples, done = job
            if done.cancelled():
                continue  # play() was cancelled before this chunk reached the card: drop it
            error: BaseException | None = None
            try:
                self._write(samples)
            except Exception as err:  # noqa: BLE001 - handed to the awaiting play()
                error = err if isinstance(err, AudioDeviceError) else AudioDeviceError(f"playback failed: {err}")
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(_settle, done, error)


def _settle(done: asyncio.Future[None], error: BaseException | None) -> None:
    if done.done():
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)


# -- the laptop line --------------------------------------------------------------------------

_ids = itertools.count(1)
NextCall = Callable[[], Awaitable[None]]


class SoundCardIncomingCall:
    """The one call a laptop line offers at a time: rung once, answered by opening the card."""

    def __init__(self, line: SoundCardLine, ringing: Ringing) -> None:
        self.caller_id: str | None = None  # the person at the laptop has no number
        self.ringing = ringing
        self.call: SoundCardCall | None = None
        self.answering = False
        self.failed = False
        self._line = line

    async def answer(self) -> SoundCardCall:
        self.answering = True
        try:
            self.call = await self._line._answer()
        except BaseException:
            self.failed = True
            raise
        return self.call


class SoundCardLine:
    """The laptop's microphone and speaker as a phone line (implements ``LineDriver``).

    ``next_call`` decides when the next call is offered once one is over; the
    default (``EnterOrPause``) waits for Enter on a terminal, or ``pause_s`` (clock
    seconds) without one.
    """

    name = "soundcard"

    def __init__(
        self,
        device: AudioDevice,
        clock: Clock,
        *,
        next_call: NextCall | None = None,
        pause_s: float = NEXT_CALL_PAUSE_S,
    ) -> None:
        self.device = device
        self._clock = clock
        self._next_call = next_call or EnterOrPause(clock, pause_s=pause_s)
        self._closed = asyncio.Event()
        self._offer: SoundCardIncomingCall | None = None
        self._problem = ""
        self.calls_offered = 0

    async def incoming(self) -> AsyncIterator[SoundCardIncomingCall]:
        while not self._closed.is_set():
            ringing = Ringing(self._clock)
            ringing.ring()  # no bell on a laptop: one ring says "a call is here"
            self._offer = SoundCardIncomingCall(self, ringing)
            self.calls_offered += 1
            yield self._offer
            if not await self._unless_closed(self._over(self._offer)):
                return
            if not await self._unless_closed(self._next_call()):
                return

    def health(self) -> LineHealth:
        device = f"sound card {self.device.spec.name or 'default'}"
        if self._problem:
            return LineHealth(ok=False, device=device, detail=self._problem)
        return LineHealth(ok=True, device=device, detail=f"{self.calls_offered} call(s) offered on the laptop line")

    async def close(self) -> None:
        self._closed.set()
        offer = self._offer
        if offer is not None and offer.call is not None and not offer.call.ended:
            await offer.call.hang_up()

    # -- inside ------------------------------------------------------------------------------

    async def _answer(self) -> SoundCardCall:
        try:
            # Opening probes the sound system (hundreds of ms with ALSA): not on the loop.
            stream = await asyncio.to_thread(self.device.open)
        except AudioDeviceError as err:
            self._problem = str(err)
            raise LineError("audio-device", str(err)) from err
        self._problem = ""
        call_id = f"soundcard-{next(_ids)}"
        return SoundCardCall(stream, call_id=call_id, clock=self._clock, rate_hz=self.device.spec.rate_hz)

    async def _over(self, offer: SoundCardIncomingCall) -> None:
        """Until nothing more will happen to ``offer``: its call ended and the card is free, or it was not taken."""
        while not offer.failed and offer.call is None and (offer.answering or not offer.ringing.stopped):
            await asyncio.sleep(_POLL_S)
        call = offer.call
        if call is None:
            if not offer.failed:
                _LOGGER.info("the box did not answer the laptop call (see the answering settings)")
            return
        while not call.ended:
            await asyncio.sleep(_POLL_S)
        if call.end_reason == AUDIO_DEVICE_LOST:
            self._problem = "the sound card vanished during the last call"
        await call.wait_closed()  # the next call opens the same card

    async def _unless_closed(self, step: Awaitable[None]) -> bool:
        """Run ``step`` unless the line closes first; False when it did."""
        task = asyncio.ensure_future(step)
        closed = asyncio.ensure_future(self._closed.wait())
        try:
            await asyncio.wait((task, closed), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pending in (task, closed):
                pending.cancel()
        return not self._closed.is_set()



class EnterOrPause:
    """The laptop line's default ``next_call``: Enter on a terminal, else a pause.

    ``say`` is the console the prompt goes to: the CLI's own output when ``appliance
    run`` builds the line (``open_line(..., say=echo)``), the log otherwise.
    """

    def __init__(
        self, clock: Clock, *, say: Callable[[str], None] = _LOGGER.info, pause_s: float = NEXT_CALL_PAUSE_S
    ) -> None:
        self._clock = clock
        self._say = say
        self._pause_s = pause_s
        self._console_gone = False

    async def __call__(self) -> None:
        stdin = sys.stdin
        if not self._console_gone and stdin is not None and _is_terminal(stdin):
            self._say("\nCall over. Press Enter to call the box again (Ctrl+C stops it).")
            if await _enter_pressed(stdin):
                return
            self._console_gone = True  # stdin closed: a person can no longer press anything
        _LOGGER.info("next laptop call in %.0f s", self._pause_s)
        until = self._clock.monotonic() + self._pause_s
        while self._clock.monotonic() < until:
            await asyncio.sleep(_POLL_S)


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


async def _enter_pressed(stdin: Any) -> bool:
    """Wait for a line on the terminal without a thread; False at end of input."""
    fd = stdin.fileno()
    with contextlib.suppress(Exception):
        import termios  # Unix only, as the box is; lines typed during the call must not start the next

        termios.tcflush(fd, termios.TCIFLUSH)
    loop = asyncio.get_running_loop()
    pressed: asyncio.Future[bool] = loop.create_future()

    def on_input() -> None:
        try:
            line = stdin.readline()
        except (OSError, ValueError):  # the terminal went away (EIO on a closed pty)
            line = ""
        if not pressed.done():
            pressed.set_result(line != "")

    loop.add_reader(fd, on_input)
    try:
        return await pressed
    finally:
        loop.remove_reader(fd)
