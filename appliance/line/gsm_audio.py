"""Where a GSM call's sound goes in and out: a PCM serial port or a sound card.

Three paths in the profiles (telephony.md 2.2-2.4), two kinds of device:

    serial_pcm   SIM7600 audio port (ttyUSB4, after AT+CPCMREG=1), or the EC25's
                 NMEA port (ttyUSB1, after AT+QPCMV=1,0): S16LE mono 8 kHz bytes
                 both ways                                    -> SerialPcmAudio
    uac          the EC25's USB Audio Class card (hw:Android) after AT+QPCMV=1,2
    sound_card   a SIM800's analog SPK/MIC wired to a USB sound card -> CardAudio

A call uses its path in two steps: ``prepare`` (before the module's enable
command: a PCM port starts streaming the moment the command is accepted, and a
byte missed there would shift every later sample by half) and ``start`` (after
it: a card is opened only once the module routes the call to it, with retries,
because the EC25's playback device may not be ready right after QPCMV, 2.3).

``Uplink`` carries the box's voice towards the caller. ``GsmCall.play`` paces the
frames on the clock and hands them over without waiting; one task writes them.
So a module that stops reading its audio port (2.2, "uplink not consumed on some
firmware": host writes stall after a few KB) can block that task, never the
event loop. When one write has not finished for ``stall_s`` of clock time the
uplink is declared stalled: from then on the call's frames are dropped, and the
call goes on listen-only as long as the caller is still heard (the downlink and
the AT port are unaffected; callpilot shipped "downlink only" for this firmware):
a caller who speaks still leaves a message, and the hang-up is still seen.
Ending the call instead would gain nothing, since the same firmware stalls
again on the next call. ``health()`` says so, so the practice can update it.
A silent probe frame every few seconds notices a module that reads again; the
uplink then carries the rest of the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Final, Protocol

import numpy as np

from appliance.audio.resample import StreamResampler
from appliance.clock import Clock
from appliance.errors import LineError
from appliance.line.audio_device import AudioDevice, AudioDeviceError, AudioStream
from appliance.line.gsm_at import clock_sleep
from appliance.line.serial_port import SerialPort

_LOGGER = logging.getLogger(__name__)

LINE_RATE_HZ: Final = 8000
SAMPLES_PER_FRAME: Final = 160  # 20 ms at 8 kHz
FRAME_BYTES: Final = SAMPLES_PER_FRAME * 2  # S16LE: 320 B, as the SIM7600 sends (2.2)
REOPEN_EVERY_S: Final = 1.0  # clock seconds between two looks for a vanished port
_CARD_RETRY_S: Final = 0.2  # between two attempts to open a card that is not ready yet
CARD_OPEN_WINDOW_S: Final = 3.0  # EC25: "may not be ready right after QPCMV=1,2" (2.3)
_UPLINK_QUEUE_FRAMES: Final = 10  # 200 ms: more is a writer that cannot keep up
_STALL_CONFIRM_S: Final = 0.2  # a second look before declaring a stall: not a loop hiccup
_PROBE_EVERY_S: Final = 2.0  # clock s between two test frames on a stalled uplink

Deliver = Callable[[np.ndarray], None]
"""Hands one received 160-sample int16 frame to the call."""
OnLost = Callable[[str], None]
"""The path's device vanished mid-call; the argument says which, in plain words."""


class AudioPath(Protocol):
    kind: str
    problem: str
    """"" while the path works; otherwise what is wrong, in words for ``health()``."""

    async def open(self) -> None: ...

    def prepare(self, deliver: Deliver, on_lost: OnLost) -> None: ...

    async def start(self) -> None: ...

    async def write(self, frame: np.ndarray) -> None: ...

    async def stop(self) -> None: ...

    async def close(self) -> None: ...


class SerialPcmAudio:
    """A PCM port open for the life of the driver; frames flow only while a call is prepared."""

    kind = "serial_pcm"

    def __init__(self, url: str, clock: Clock) -> None:
        self.url = url
        self.clock = clock
        self.problem = ""
        self._port: SerialPort | None = None
        self._deliver: Deliver | None = None
        self._on_lost: OnLost | None = None
        self._buffer = bytearray()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    async def open(self) -> None:
        port = await SerialPort.open(self.url)
        self._port = port
        self.problem = ""
        self._spawn(self._read(port))

    def prepare(self, deliver: Deliver, on_lost: OnLost) -> None:
        if self._port is None:
            raise LineError("audio-port-lost", self.problem or f"the audio port {self.url} is not open")
        self._buffer.clear()  # bytes of no call, or of the previous one
        self._deliver = deliver
        self._on_lost = on_lost

    async def start(self) -> None:
        """Nothing to do: the module streams once its enable command is accepted."""

    async def write(self, frame: np.ndarray) -> None:
        port = self._port
        if port is None:
            raise LineError("audio-port-lost", self.problem)
        await port.write(np.asarray(frame, dtype=np.int16).astype("<i2", copy=False).tobytes())

    async def stop(self) -> None:
        self._deliver = None
        self._on_lost = None

    async def close(self) -> None:
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._port is not None:
            await self._port.close()
            self._port = None

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _read(self, port: SerialPort) -> None:
        try:
            while True:
                chunk = await port.read()
                deliver = self._deliver
                if deliver is None:
                    continue  # bytes of no call
                self._buffer += chunk
                while len(self._buffer) >= FRAME_BYTES:
                    frame = np.frombuffer(bytes(self._buffer[:FRAME_BYTES]), dtype="<i2").astype(np.int16)
                    del self._buffer[:FRAME_BYTES]
                    deliver(frame)
        except LineError as err:
            _LOGGER.warning("GSM audio port lost: %s", err)
            self._port = None
            self.problem = f"the audio port {self.url} vanished; waiting for it to come back"
            if self._on_lost is not None:
                self._on_lost(f"the audio port {self.url} vanished")
            self._spawn(self._reopen(port))

    async def _reopen(self, old: SerialPort) -> None:
        await old.close()
        while not self._closed:
            await clock_sleep(self.clock, REOPEN_EVERY_S)
            try:
                await self.open()
            except LineError:
                continue
            _LOGGER.info("GSM audio port is back")
            return


class CardAudio:
    """A sound card opened per call; capture on its own thread, playback off the loop."""

    def __init__(self, device: AudioDevice, clock: Clock, *, kind: str, open_window_s: float) -> None:
        self.kind = kind
        self.device = device
        self.clock = clock
        self.problem = ""
        self._open_window_s = open_window_s
        self._deliver: Deliver | None = None
        self._on_lost: OnLost | None = None
        self._stream: AudioStream | None = None
        self._capture: threading.Thread | None = None
        self._stopping = threading.Event()
        self._rate = device.spec.rate_hz
        self._down: StreamResampler | None = None
        self._up: StreamResampler | None = None
        self._pending = np.zeros(0, np.int16)

    @property
    def name(self) -> str:
        return self.device.spec.name or "default"

    async def open(self) -> None:
        """Nothing to open yet: the card carries a call only once the module routes it there."""

    def prepare(self, deliver: Deliver, on_lost: OnLost) -> None:
        self._deliver = deliver
        self._on_lost = on_lost

    async def start(self) -> None:
        deadline = self.clock.monotonic() + self._open_window_s
        attempts = 0
        while True:
            attempts += 1
            try:
                # Opening a real card takes tens of milliseconds in the sound library.
                stream = await asyncio.to_thread(self.device.open)
                break
            except AudioDeviceError as err:
                if self.clock.monotonic() >= deadline:
                    self.problem = f"sound card {self.name!r} cannot be opened: {err}"
                    raise LineError("audio-device-failed", self.problem) from err
                await clock_sleep(self.clock, _CARD_RETRY_S)
        if attempts > 1:
            _LOGGER.info("sound card %r opened after %d attempts", self.name, attempts)
        self.problem = ""
        self._stream = stream
        self._pending = np.zeros(0, np.int16)
        if self._rate != LINE_RATE_HZ:
            self._down = StreamResampler(self._rate, LINE_RATE_HZ)
            self._up = StreamResampler(LINE_RATE_HZ, self._rate)
        self._stopping = threading.Event()
        self._capture = threading.Thread(
            target=self._capture_forever,
            args=(stream, asyncio.get_running_loop(), self._stopping, self._down),
            name=f"sound card {self.name}",
            daemon=True,
        )
        self._capture.start()

    async def write(self, frame: np.ndarray) -> None:
        stream = self._stream
        if stream is None:
            raise LineError("audio-device-lost", f"sound card {self.name!r} is not open")
        samples = np.asarray(frame, dtype=np.int16)
        if self._up is not None:
            samples = self._up.process(samples)
        if not len(samples):
            return
        try:
            # A card's write blocks while its output buffer is full: never on the loop.
            await asyncio.to_thread(stream.write, samples)
        except AudioDeviceError as err:
            raise LineError("audio-device-lost", f"sound card {self.name!r}: {err}") from err

    async def stop(self) -> None:
        self._deliver = None
        self._on_lost = None
        self._stopping.set()
        if self._capture is not None:
            # The capture thread notices within one buffer; the stream is closed after,
            # never under a read in progress (a native library may not survive that).
            await asyncio.to_thread(self._capture.join, 1.0)
            self._capture = None
        if self._stream is not None:
            with contextlib.suppress(AudioDeviceError):
                self._stream.close()
            self._stream = None
        self._down = self._up = None

    async def close(self) -> None:
        await self.stop()

    def _capture_forever(
        self,
        stream: AudioStream,
        loop: asyncio.AbstractEventLoop,
        stopping: threading.Event,
        down: StreamResampler | None,
    ) -> None:
        frames = self.device.spec.frames_per_buffer
        while not stopping.is_set():
            try:
                samples = stream.read(frames)
                if down is not None:
                    samples = down.process(np.asarray(samples, dtype=np.int16))
            except AudioDeviceError as err:
                if not stopping.is_set():
                    with contextlib.suppress(RuntimeError):  # the loop is gone: nobody listens
                        loop.call_soon_threadsafe(self._card_lost, str(err))
                return
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._captured, np.asarray(samples, dtype=np.int16))

    def _captured(self, samples: np.ndarray) -> None:
        deliver = self._deliver
        if deliver is None:
            return
        pending = np.concatenate((self._pending, samples)) if len(self._pending) else samples
        whole = len(pending) // SAMPLES_PER_FRAME * SAMPLES_PER_FRAME
        for start in range(0, whole, SAMPLES_PER_FRAME):
            deliver(pending[start : start + SAMPLES_PER_FRAME].copy())
        self._pending = pending[whole:]

    def _card_lost(self, reason: str) -> None:
        _LOGGER.warning("sound card %r lost: %s", self.name, reason)
        self.problem = f"sound card {self.name!r} vanished: {reason}"
        if self._on_lost is not None:
            self._on_lost(f"sound card {self.name!r} vanished")


class Uplink:
    """The box's frames towards the caller: queued without waiting, written by one task."""

    def __init__(
        self,
        write: Callable[[np.ndarray], Awaitable[None]],
        clock: Clock,
        *,
        stall_s: float,
        on_stall: Callable[[str], None],
        on_flowing: Callable[[], None],
    ) -> None:
        self._write = write
        self._clock = clock
        self._stall_s = stall_s
        self._on_stall = on_stall
        self._on_flowing = on_flowing  # after the first frame the module took, and after a stall ends
        self._queue: asyncio.Queue[np.ndarray] = asyncio.Queue(_UPLINK_QUEUE_FRAMES)
        self._writes = 0
        self._in_flight_since: float | None = None
        self._suspect: tuple[int, float] | None = None
        self.paused = False
        self.stalled = ""
        """Why the uplink gave up ("" while it works)."""
        self.dropped = 0
        self.written = 0
        self._task = asyncio.get_running_loop().create_task(self._run())

    def offer(self, frame: np.ndarray) -> bool:
        """Queue one frame; False when it is dropped (paused, stalled, or the writer is behind)."""
        self._check_stall()
        if self.paused or self.stalled:
            self.dropped += 1
            return False
        try:
            self._queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.dropped += 1
            return False
        return True

    def pause(self, paused: bool) -> None:
        """The module says it is busy (EC25 ``+QPCMV: 0,0``) or ready again: hold the uplink."""
        if paused != self.paused:
            _LOGGER.info("uplink %s by the module", "paused" if paused else "resumed")
        self.paused = paused
        if paused:
            self._clear()

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    def _clear(self) -> None:
        while not self._queue.empty():
            self._queue.get_nowait()

    async def _run(self) -> None:
        while True:
            if self.stalled:
                # A probe now and then: a module that reads its port again (a firmware
                # hiccup, not the permanent fault) gets the rest of the call's audio.
                await clock_sleep(self._clock, _PROBE_EVERY_S)
                if self.paused:
                    continue
                frame = np.zeros(SAMPLES_PER_FRAME, np.int16)
            else:
                frame = await self._queue.get()
                if self.paused or self.stalled:
                    continue
            await self._write_one(frame)

    async def _write_one(self, frame: np.ndarray) -> None:
        self._writes += 1
        self._in_flight_since = self._clock.monotonic()
        try:
            await self._write(frame)
        except LineError as err:
            # A write that fails while the port still reads (pyserial's write
            # timeout) is the same firmware fault; a port that really vanished
            # is noticed by its reader, which ends the call.
            self._give_up(f"writing failed: {err.detail or err.code}")
            return
        finally:
            self._in_flight_since = None
        self.written += 1
        if self.stalled:
            _LOGGER.info("the module takes uplink audio again")
            self.stalled = ""
            self._on_flowing()
        elif self.written == 1:
            self._on_flowing()

    def _check_stall(self) -> None:
        since = self._in_flight_since
        if since is None or self.stalled:
            self._suspect = None
            return
        now = self._clock.monotonic()
        if now - since < self._stall_s:
            self._suspect = None
            return
        # One long write may be a stalled event loop catching up, not a stalled
        # module: confirm with the same write still unfinished a little later.
        if self._suspect is None or self._suspect[0] != self._writes:
            self._suspect = (self._writes, now)
        elif now - self._suspect[1] >= _STALL_CONFIRM_S:
            self._give_up(f"the module took no audio for {now - since:.1f} s")

    def _give_up(self, why: str) -> None:
        if self.stalled:
            return
        self.stalled = why
        self._clear()
        self._on_stall(why)
