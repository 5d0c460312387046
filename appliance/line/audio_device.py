"""The boundary to a sound card: the laptop's microphone and speaker, or the USB
audio of a modem (Quectel EC25 in UAC mode, a SIM800 wired to a USB sound card).

A pty cannot stand in for an ALSA card (telephony.md 6.5), so the real device
(``PyAudioDevice``, through pyaudio) and the test double (``FakeAudioDevice``,
beside the simulators) meet at this protocol. Audio crosses it as 16-bit mono
PCM at the device's own rate; the line drivers resample to the 8 kHz of a call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True, slots=True)
class AudioDeviceSpec:
    """Which card and how: ``name`` is a substring of the device name ("" = default)."""

    name: str = ""
    rate_hz: int = 8000
    frames_per_buffer: int = 160  # 20 ms at 8 kHz


class AudioStream(Protocol):
    def read(self, frames: int) -> np.ndarray:
        """Block until ``frames`` int16 samples were captured; raises ``AudioDeviceError`` if the card is gone."""

    def write(self, samples: np.ndarray) -> None:
        """Queue int16 samples for playback; blocks while the card's buffer is full."""

    def close(self) -> None: ...


class AudioDevice(Protocol):
    spec: AudioDeviceSpec

    def open(self) -> AudioStream:
        """Open the card full duplex at ``spec.rate_hz``; raises ``AudioDeviceError`` with the reason."""


class AudioDeviceError(Exception):
    """A sound card is missing, refuses the format, or vanished; the message says which."""
