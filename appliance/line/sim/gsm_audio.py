"""The module's side of a GSM call's audio: what the caller says, and where it goes.

``CallerVoice`` is the caller: queued speech, and between words the low noise of
a real line (about -57 dBFS, seeded), never digital zero: a box that takes a
silent line for a dead one must see the difference (dead-line detection).

Two far ends carry it, as the modules do (telephony.md 2.2-2.4, 6.5):

* ``PcmPortEnd``: a pty standing for a PCM serial port (SIM7600 ``ttyUSB4``, EC25
  NMEA ``ttyUSB1``), S16LE mono 8 kHz both ways, downlink paced by the clock.
  Faults: ``stalled`` (the module stops reading its port: the box's writes fill
  the kernel buffer and block, LilyGo#542) and ``busy`` (EC25 ``+QPCMV: 0,0``:
  uplink bytes are thrown away and counted).
* ``CardEnd``: a ``FakeAudioDevice`` standing for the EC25's UAC card or the USB
  sound card a SIM800's SPK/MIC is wired to. A pty cannot stand in for an ALSA
  card (6.5); the box opens the fake through the same ``AudioDevice`` protocol.

Both run on the simulator's thread, under its lock.
"""

from __future__ import annotations

import random
from typing import Final

import numpy as np

from appliance.clock import Clock
from appliance.line.audio_device import AudioDeviceSpec
from appliance.line.sim.audio_device import FakeAudioDevice
from appliance.line.sim.pty_endpoint import PtyEndpoint

_RATE_HZ: Final = 8000
_FRAME_S: Final = 0.02
_FRAME_BYTES: Final = 320
_FULL_SCALE: Final = 32768.0  # 0 dBFS = RMS of full scale, as appliance.audio.channel measures
_BACKLOG_BYTES: Final = 16_384  # downlink kept for a box that does not read; more is dropped
_UPLINK_SLACK_BYTES: Final = 2048  # the module's own buffer ahead of the line rate
_CATCH_UP_S: Final = 0.2  # a simulator thread late by more drops frames, as a module does
_CARD_LEAD_S: Final = 0.06  # fed ahead of the card's capture: never starved, speech not delayed


class CallerVoice:
    """The caller's side of the audio: speech when there is some, line noise otherwise."""

    def __init__(self, *, noise_dbfs: float, seed: int) -> None:
        if not -90.0 <= noise_dbfs <= -20.0:
            raise ValueError(f"line noise must be -90 to -20 dBFS, got {noise_dbfs}")
        self._rms = _FULL_SCALE * 10.0 ** (noise_dbfs / 20.0)
        self._rng = np.random.default_rng(seed)
        self._speech = np.zeros(0, np.int16)

    def say(self, samples: np.ndarray) -> None:
        self._speech = np.concatenate((self._speech, np.asarray(samples, dtype=np.int16)))

    def clear(self) -> None:
        self._speech = np.zeros(0, np.int16)

    def noise(self, count: int) -> np.ndarray:
        """``count`` samples of the line's own noise, no speech."""
        return np.clip(np.round(self._rng.normal(0.0, self._rms, count)), -32768, 32767).astype(np.int16)

    def take(self, count: int) -> np.ndarray:
        """The next ``count`` samples the caller's phone sends."""
        out = self.noise(count)
        n = min(count, len(self._speech))
        out[:n] = self._speech[:n]
        self._speech = self._speech[n:]
        return out


class PcmPortEnd:
    """The module's end of a PCM serial port, on a pty."""

    def __init__(self, clock: Clock, *, chunk_bytes: int, chunking: random.Random | None) -> None:
        self._clock = clock
        self._chunk_bytes = chunk_bytes
        self._chunking = chunking
        self.endpoint = PtyEndpoint(clock=clock, chunking=chunking)
        self.on = False
        self.stalled = False
        self.busy = False
        self._out = bytearray()
        self._pending = bytearray()  # frames made but not yet a whole chunk
        self._heard = bytearray()
        self._next_frame_t = 0.0
        self._started_t = 0.0
        self._heard_at_start = 0
        self.downlink_frames = 0
        self.uplink_overruns = 0
        self.uplink_while_busy = 0

    def replace_endpoint(self) -> None:
        """A new pty after the module came back on USB (the old one was unplugged)."""
        self.endpoint = PtyEndpoint(clock=self._clock, chunking=self._chunking)
        self._out.clear()

    @property
    def heard(self) -> bytes:
        return bytes(self._heard)

    def start(self, now: float) -> None:
        if self.on:
            return
        self.on = True
        self._started_t = self._next_frame_t = now
        self._heard_at_start = len(self._heard)
        self._pending.clear()

    def stop(self) -> None:
        """The call's audio is over; a stall was this call's, and ends with it."""
        self.on = False
        self.busy = False
        if self.stalled:
            self.stalled = False
            self._drain()

    def wants_read(self) -> bool:
        return not self.endpoint.closed and not self.stalled

    def wants_write(self) -> bool:
        return bool(self._out) and not self.endpoint.closed

    def tick(self, now: float, voice: CallerVoice) -> None:
        if not self.on:
            return
        if now - self._next_frame_t > _CATCH_UP_S:  # this thread stalled: drop, never burst
            self._next_frame_t = now - _FRAME_S
        while self._next_frame_t <= now:
            self._pending += voice.take(_FRAME_BYTES // 2).astype("<i2").tobytes()
            self._next_frame_t += _FRAME_S
            self.downlink_frames += 1
            if len(self._pending) >= self._chunk_bytes:
                if len(self._out) + len(self._pending) <= _BACKLOG_BYTES:
                    self._out += self._pending
                self._pending.clear()

    def read(self, call_active: bool) -> None:
        data = self.endpoint.read()
        if not (self.on and call_active):
            return  # the module discards uplink bytes while its PCM is off
        if self.busy:
            self.uplink_while_busy += len(data)
            return
        self._heard += data
        allowed = (self._clock.monotonic() - self._started_t) / _FRAME_S * _FRAME_BYTES + _UPLINK_SLACK_BYTES
        if len(self._heard) - self._heard_at_start > allowed:
            self.uplink_overruns += 1

    def flush(self) -> None:
        while self._out and not self.endpoint.closed:
            written = self.endpoint.write(bytes(self._out[:4096]))
            if not written:
                return
            del self._out[:written]

    def _drain(self) -> None:
        """Read and discard what piled up in the kernel while the port was not read."""
        while not self.endpoint.closed and self.endpoint.read():
            pass


class CardEnd:
    """The far side of a sound card: feeds it the caller, keeps what the box played."""

    def __init__(self, clock: Clock, *, name: str, rate_hz: int) -> None:
        if rate_hz != _RATE_HZ and rate_hz % _RATE_HZ:
            raise ValueError(f"the simulated card runs at a multiple of 8000 Hz, got {rate_hz}")
        self._clock = clock
        spec = AudioDeviceSpec(name=name, rate_hz=rate_hz, frames_per_buffer=rate_hz // 50)  # 20 ms reads
        self.device = FakeAudioDevice(spec, clock)
        self._factor = rate_hz // _RATE_HZ
        self.on = False
        self._armed = False
        self._opens_before = 0
        self._fed_from: float | None = None
        self._fed = 0

    def arm(self) -> None:
        """A call is being answered: the box's next ``open()`` is this call's stream."""
        self._armed = True
        self._opens_before = self.device.opened
        self._fed_from = None
        self._fed = 0

    def start(self) -> None:
        """The call is connected: the caller is heard from now on."""
        self.on = True

    def mute(self) -> None:
        """The module no longer routes the call here (EC25 ``AT+QPCMV=0``): noise floor only."""
        self.on = False

    def stop(self) -> None:
        """The call is over: nothing more is fed until the next call is answered."""
        self.on = False
        self._armed = False

    def tick(self, now: float, voice: CallerVoice) -> None:
        # Only once the box opened the card for this call: a card's capture starts
        # with its stream, and anything fed before would wait in front of the caller.
        # Until the call is connected the card hears the line's noise floor alone.
        if not self._armed or self.device.opened <= self._opens_before:
            return
        if self._fed_from is None:
            self._fed_from = now
        due = int((now - self._fed_from + _CARD_LEAD_S) * _RATE_HZ) - self._fed
        if due <= 0:
            return
        samples = voice.take(due) if self.on else voice.noise(due)
        self._fed += due
        if self._factor > 1:  # a sample-and-hold upsampler: a card's input need not be hi-fi
            samples = np.repeat(samples, self._factor)
        self.device.feed(samples)

    def heard(self) -> np.ndarray:
        """What the box played, at 8 kHz."""
        played = self.device.heard()
        return played[:: self._factor] if self._factor > 1 else played
