"""A sound card in software: the caller's side of a USB audio line.

``FakeAudioDevice`` implements ``appliance.line.audio_device.AudioDevice`` the way
a card behaves, not the way a test would like it to: capture runs at the card's
rate whether or not anyone reads (samples not read in time are lost, as on a
card whose ring buffer wraps), and playback drains at the same rate into what
the far end hears. The test (or a GSM simulator) is the far end: it ``feed``s
what the caller says and reads ``heard``. ``unplug()`` makes the next read or
write fail as a card that vanished from USB does.

Time comes from the injected clock, so pacing is real when the clock is.
"""

from __future__ import annotations

import threading
import time
from typing import Final

import numpy as np

from appliance.clock import Clock
from appliance.line.audio_device import AudioDeviceError, AudioDeviceSpec

_CAPTURE_RING_S: Final = 0.5  # what a card keeps before it overwrites unread capture


class FakeAudioDevice:
    def __init__(self, spec: AudioDeviceSpec, clock: Clock, *, refuse: str | None = None) -> None:
        self.spec = spec
        self._clock = clock
        self._refuse = refuse  # open() fails with this reason (wrong rate, card absent)
        self._lock = threading.Lock()
        self._to_box: list[np.ndarray] = []  # what the far end says, not yet captured
        self._heard: list[np.ndarray] = []
        self._unplugged = False
        self.overruns = 0  # capture samples lost because nobody read them in time
        self.opened = 0

    # -- far end -----------------------------------------------------------------
    def feed(self, samples: np.ndarray) -> None:
        """The far end speaks: these samples reach the microphone input in order."""
        with self._lock:
            self._to_box.append(np.asarray(samples, dtype=np.int16).copy())

    def heard(self) -> np.ndarray:
        """Everything the box played so far, at the card's rate."""
        with self._lock:
            return np.concatenate(self._heard) if self._heard else np.zeros(0, np.int16)

    def unplug(self) -> None:
        with self._lock:
            self._unplugged = True

    def replug(self) -> None:
        with self._lock:
            self._unplugged = False

    # -- AudioDevice ------------------------------------------------------------
    def open(self) -> _FakeStream:
        with self._lock:
            if self._unplugged:
                raise AudioDeviceError(f"sound card {self.spec.name or 'default'!r} is not connected")
            if self._refuse:
                raise AudioDeviceError(self._refuse)
            self.opened += 1
        return _FakeStream(self)

    def _take(self, frames: int) -> np.ndarray:
        with self._lock:
            if self._unplugged:
                raise AudioDeviceError(f"sound card {self.spec.name or 'default'!r} vanished")
            out = np.zeros(frames, np.int16)  # a card captures silence when nobody speaks
            filled = 0
            while filled < frames and self._to_box:
                head = self._to_box[0]
                n = min(frames - filled, len(head))
                out[filled : filled + n] = head[:n]
                filled += n
                if n == len(head):
                    self._to_box.pop(0)
                else:
                    self._to_box[0] = head[n:]
            return out

    def _lose(self, frames: int) -> None:
        if frames > 0:
            self._take(frames)
            self.overruns += frames

    def _play(self, samples: np.ndarray) -> None:
        with self._lock:
            if self._unplugged:
                raise AudioDeviceError(f"sound card {self.spec.name or 'default'!r} vanished")
            self._heard.append(np.asarray(samples, dtype=np.int16).copy())


class _FakeStream:
    """One open full-duplex stream; capture and playback both paced at the card rate."""

    def __init__(self, device: FakeAudioDevice) -> None:
        self._device = device
        self._rate = device.spec.rate_hz
        self._started = device._clock.monotonic()
        self._captured = 0  # samples handed to the reader
        self._played = 0
        self._closed = False

    def read(self, frames: int) -> np.ndarray:
        self._check()
        due = self._captured + frames
        # Block until the card has captured that far, as a real blocking read does.
        self._sleep_until(self._started + due / self._rate)
        behind = int((self._device._clock.monotonic() - self._started) * self._rate) - due
        ring = int(_CAPTURE_RING_S * self._rate)
        if behind > ring:  # the reader was late: the card overwrote what it did not read
            self._device._lose(behind - ring)
            self._captured += behind - ring
        self._captured += frames
        return self._device._take(frames)

    def write(self, samples: np.ndarray) -> None:
        self._check()
        self._device._play(samples)
        self._played += len(samples)
        # A card's output buffer holds a few periods; the writer blocks beyond that.
        self._sleep_until(self._started + self._played / self._rate - 0.1)

    def close(self) -> None:
        self._closed = True

    def _check(self) -> None:
        if self._closed:
            raise AudioDeviceError("the sound-card stream is closed")

    def _sleep_until(self, when: float) -> None:
        delay = when - self._device._clock.monotonic()
        if delay > 0:
            time.sleep(delay)
