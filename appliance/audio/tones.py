"""Hearing a hang-up in the received audio: dial tone, busy or reorder tone, a dead line.

Many lines never say that the caller hung up (telephony.md 1.10): a voice modem
may miss it, a line behind an ATA or an ONT keeps its loop current and only
plays a tone, a GSM module may keep streaming. What is left is the audio: the
exchange's dial tone or busy/reorder cadence, or the dead digital silence of a
line nobody is on. These detectors listen for that, layers 2 and 3 of 1.10.

Pure and sans-I/O: fed frames one at a time, driven only by the duration of
the audio fed in (never the wall clock), so a test pushes minutes of audio
through in milliseconds and a call's verdict does not depend on machine load.

Speech must never look like a tone. A frame counts as "tone" only when nearly
all its energy sits in the plan's tone bins (``min_purity``): a voiced vowel
spreads over a dozen harmonics and its formants, so no single bin or pair holds
more than a fraction of it. On top of that a tone must last (a dial tone 1 s
without a break, a busy tone two full on/off cycles), which no word does.

Levels are dBFS relative to int16 full scale (rms / 32768): a full-scale sine is
-3 dBFS, a connected but silent caller's line noise sits around -55 to -60 dBFS,
and a line nobody is on is digital silence or a few LSB (-70 dBFS and below).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

from appliance.audio import LINE_RATE_HZ

DIAL_TONE: Final = "dial_tone"
BUSY_TONE: Final = "busy_tone"  # busy and reorder/congestion alike: both mean nobody is there
DEAD_LINE: Final = "dead_line"

_FULL_SCALE: Final = 32768.0
_MIN_TONE_DBFS: Final = -45.0  # exchange tones are sent near -10 dBm0; weaker is noise or crosstalk
_MIN_PURITY: Final = 0.8  # share of the frame's energy in the tone bins; speech stays far below
_MIN_COMPONENT: Final = 0.15  # each part of a two-tone chord (350+440 Hz): about 8 dB of twist allowed
_DEBOUNCE_FRAMES: Final = 2  # one odd frame (a click, a µ-law glitch, a tone edge) does not split a run
_CADENCE_SLACK_RATIO: Final = 0.2  # exchanges differ: Germany 0.48/0.48, CEPT 0.5/0.5, some 0.24/0.24
_CADENCE_SLACK_S: Final = 0.06  # plus a tone edge inside a 20 ms frame and the debounce


def frame_dbfs(frame: np.ndarray) -> float:
    """Level of ``frame`` in dBFS (rms over int16 full scale), DC removed; -inf for digital silence.

    The DC offset is removed because some sound cards and 8-bit modem paths add
    one; it is not signal and would keep a dead line "loud".
    """
    x = np.asarray(frame, dtype=np.float64)
    if x.size == 0:
        return -math.inf
    power = float(np.mean((x - x.mean()) ** 2))
    return 10.0 * math.log10(power) - 20.0 * math.log10(_FULL_SCALE) if power > 0 else -math.inf


class Goertzel:
    """Share of a frame's energy at each of a few fixed frequencies.

    Goertzel's algorithm computes one DFT term at an arbitrary frequency; here
    that same term is evaluated as a dot product with a precomputed complex
    exponential, which numpy does in one call instead of a Python loop over the
    samples (the recurrence gives the same number; ``tests/test_tones.py`` checks).
    A share of 1.0 means all the (DC-free) energy is a sine at that frequency.
    Frames are not windowed: a 160-sample rectangular window keeps 425 Hz and
    440 Hz in one main lobe and pushes DTMF's 697 Hz and up 24 dB down.
    """

    def __init__(self, freqs_hz: Sequence[float], rate_hz: int = LINE_RATE_HZ) -> None:
        if not freqs_hz or any(not 0 < f < rate_hz / 2 for f in freqs_hz):
            raise ValueError(f"frequencies must lie between 0 and {rate_hz / 2} Hz, got {freqs_hz}")
        self.freqs_hz = tuple(float(f) for f in freqs_hz)
        self.rate_hz = rate_hz

    def shares(self, frame: np.ndarray) -> np.ndarray:
        """Per frequency, |X(f)|^2 normalised so that a pure sine at f gives about 1.0."""
        x = np.asarray(frame, dtype=np.float64)
        n = x.size
        x = x - x.mean()
        energy = float(np.dot(x, x))
        if n == 0 or energy <= 0.0:
            return np.zeros(len(self.freqs_hz))
        basis = _basis(self.freqs_hz, self.rate_hz, n)
        bins = basis @ x
        return (2.0 / n) * (np.abs(bins) ** 2) / energy


@functools.lru_cache(maxsize=16)
def _basis(freqs_hz: tuple[float, ...], rate_hz: int, n: int) -> np.ndarray:
    t = np.arange(n) / rate_hz
    return np.exp(-2j * np.pi * np.outer(freqs_hz, t))


@dataclass(frozen=True, slots=True)
class Cadence:
    """One on/off rhythm of a cadenced tone, in seconds."""

    on_s: float
    off_s: float

    def fits_on(self, on_s: float) -> bool:
        return _near(on_s, self.on_s)

    def fits(self, on_s: float, off_s: float) -> bool:
        return _near(on_s, self.on_s) and _near(off_s, self.off_s)


def _near(measured_s: float, nominal_s: float) -> bool:
    return abs(measured_s - nominal_s) <= nominal_s * _CADENCE_SLACK_RATIO + _CADENCE_SLACK_S


Chord = tuple[float, ...]
"""Frequencies sounding together: (425.0,) or (350.0, 440.0)."""


@dataclass(frozen=True, slots=True)
class TonePlan:
    """A country's call-progress tones. Each tone lists alternatives (any one matches)."""

    name: str
    dial: tuple[Chord, ...]
    busy: tuple[Chord, ...]
    busy_cadences: tuple[Cadence, ...]
    """Busy and reorder/congestion rhythms; both mean the far end is gone."""

    @property
    def freqs_hz(self) -> tuple[float, ...]:
        return tuple(sorted({f for chord in self.dial + self.busy for f in chord}))


# France sends 440 Hz (dial continuous, busy 0.5/0.5); the CEPT countries
# (Germany, Belgium, Switzerland, ...) and many ATAs set to "Europe" send
# 425 Hz (telephony.md 1.10). Both are listened for: they are one Goertzel bin
# apart at most, and either means the line is back at the exchange.
EUROPE: Final = TonePlan(
    name="europe",
    dial=((425.0,), (440.0,)),
    busy=((425.0,), (440.0,)),
    busy_cadences=(Cadence(0.5, 0.5), Cadence(0.25, 0.25)),
)
# North America (telephony.md 1.10, [unverified: standard NA tones]): dial
# 350+440 Hz continuous; busy 480+620 Hz 0.5/0.5, reorder the same chord 0.25/0.25.
NORTH_AMERICA: Final = TonePlan(
    name="north_america",
    dial=((350.0, 440.0),),
    busy=((480.0, 620.0),),
    busy_cadences=(Cadence(0.5, 0.5), Cadence(0.25, 0.25)),
)
PLANS: Final = {plan.name: plan for plan in (EUROPE, NORTH_AMERICA)}


@dataclass(frozen=True, slots=True)
class FrameTones:
    """What one frame sounds like: the plan's dial chord, its busy chord, or neither."""

    dial: bool
    busy: bool
    level_dbfs: float


class ToneClassifier:
    """Per frame: is this (almost only) the plan's dial or busy chord, loud enough?"""

    def __init__(
        self, plan: TonePlan, *, min_purity: float = _MIN_PURITY, min_level_dbfs: float = _MIN_TONE_DBFS
    ) -> None:
        self.plan = plan
        self._goertzel = Goertzel(plan.freqs_hz)
        self._index = {f: i for i, f in enumerate(self._goertzel.freqs_hz)}
        self._min_purity = min_purity
        self._min_level_dbfs = min_level_dbfs

    def classify(self, frame: np.ndarray) -> FrameTones:
        level = frame_dbfs(frame)
        if level < self._min_level_dbfs:
            return FrameTones(False, False, level)
        shares = self._goertzel.shares(frame)
        return FrameTones(self._any(self.plan.dial, shares), self._any(self.plan.busy, shares), level)

    def _any(self, chords: tuple[Chord, ...], shares: np.ndarray) -> bool:
        for chord in chords:
            parts = [shares[self._index[f]] for f in chord]
            if sum(parts) >= self._min_purity and min(parts) >= _MIN_COMPONENT:
                return True
        return False


class _Runs:
    """On/off runs of a per-frame flag, with their durations in audio seconds.

    Debounced: the state flips only after ``_DEBOUNCE_FRAMES`` frames that
    disagree with it, and those frames then belong to the new run, so run
    lengths stay exact while a lone odd frame is absorbed by the run around it.
    """

    def __init__(self) -> None:
        self.on = False
        self.run_s = 0.0
        self._pending_s = 0.0
        self._pending = 0

    def feed(self, on: bool, duration_s: float) -> tuple[bool, float] | None:
        """Add one frame; returns (state, seconds) of the run it ended, if any."""
        if on == self.on:
            self.run_s += self._pending_s + duration_s
            self._pending_s, self._pending = 0.0, 0
            return None
        self._pending_s += duration_s
        self._pending += 1
        if self._pending < _DEBOUNCE_FRAMES:
            return None
        ended = (self.on, self.run_s)
        self.on, self.run_s = on, self._pending_s
        self._pending_s, self._pending = 0.0, 0
        return ended


class ContinuousToneDetector:
    """True once a tone has sounded without a break for ``min_s`` seconds of audio."""

    def __init__(self, min_s: float) -> None:
        self.min_s = min_s
        self._runs = _Runs()

    def feed(self, on: bool, duration_s: float) -> bool:
        self._runs.feed(on, duration_s)
        return self._runs.on and self._runs.run_s >= self.min_s - 1e-9

    def reset(self) -> None:
        self._runs = _Runs()


class CadenceDetector:
    """True once ``cycles`` whole on/off cycles of one of ``cadences`` were heard in a row.

    A cycle counts when its off period ends, i.e. when the next burst starts, so
    two 0.5/0.5 busy cycles are recognised 2 s after the first burst began.
    Anything out of rhythm (a burst or a gap too long or too short) starts over.
    """

    def __init__(self, cadences: Sequence[Cadence], cycles: int) -> None:
        if not cadences or cycles < 1:
            raise ValueError("a cadence detector needs at least one cadence and one cycle")
        self.cadences = tuple(cadences)
        self.cycles_needed = cycles
        self._longest_on_s = max(c.on_s for c in self.cadences)
        self._longest_off_s = max(c.off_s for c in self.cadences)
        self.reset()

    def reset(self) -> None:
        self._runs = _Runs()
        self._last_on_s: float | None = None
        self.cycles = 0

    def feed(self, on: bool, duration_s: float) -> bool:
        ended = self._runs.feed(on, duration_s)
        if ended is not None:
            was_on, length_s = ended
            if was_on:
                self._last_on_s = length_s if any(c.fits_on(length_s) for c in self.cadences) else None
                if self._last_on_s is None:
                    self.cycles = 0
            elif self._last_on_s is not None and any(c.fits(self._last_on_s, length_s) for c in self.cadences):
                self.cycles += 1
            else:
                self.cycles = 0
        if self._runs.run_s > (self._longest_on_s if self._runs.on else self._longest_off_s) * 2:
            # Far beyond any rhythm: a steady tone or a long silence, not a cadence.
            self.cycles = 0
            self._last_on_s = None
        return self.cycles >= self.cycles_needed


class DeadLineDetector:
    """True once the line has been dead (digital silence) for ``min_s`` seconds of audio.

    Hysteresis: a frame must fall below ``below_dbfs`` to start a dead stretch,
    and rise above ``alive_dbfs`` to end it, so a line hovering near the
    threshold neither flickers nor restarts the count on every other frame.
    """

    def __init__(self, *, min_s: float, below_dbfs: float = -70.0, alive_dbfs: float = -64.0) -> None:
        if alive_dbfs <= below_dbfs:
            raise ValueError(f"alive_dbfs ({alive_dbfs}) must lie above below_dbfs ({below_dbfs})")
        self.min_s = min_s
        self.below_dbfs = below_dbfs
        self.alive_dbfs = alive_dbfs
        self.reset()

    def reset(self) -> None:
        self.dead = False
        self.dead_s = 0.0

    def feed(self, level_dbfs: float, duration_s: float) -> bool:
        if self.dead:
            if level_dbfs > self.alive_dbfs:
                self.dead, self.dead_s = False, 0.0
            else:
                self.dead_s += duration_s
        elif level_dbfs < self.below_dbfs:
            self.dead, self.dead_s = True, duration_s
        return self.dead and self.dead_s >= self.min_s - 1e-9


class HangupDetector:
    """All of the above on one stream of received 8 kHz frames (of any length).

    ``feed`` returns why the far end is gone (``DIAL_TONE``, ``BUSY_TONE``,
    ``DEAD_LINE``) or None while a caller may still be there. ``dead_line_s``
    None leaves the dead-line check out, for lines that are digitally silent
    while someone is there.
    """

    def __init__(
        self,
        plan: TonePlan = EUROPE,
        *,
        dial_tone_s: float = 1.0,
        busy_cycles: int = 2,
        dead_line_s: float | None = 2.5,
        dead_below_dbfs: float = -70.0,
    ) -> None:
        self._classifier = ToneClassifier(plan)
        self._dial = ContinuousToneDetector(dial_tone_s)
        self._busy = CadenceDetector(plan.busy_cadences, busy_cycles)
        # 6 dB of hysteresis, still well under a connected line's -55 to -60 dBFS.
        self._dead = (
            DeadLineDetector(min_s=dead_line_s, below_dbfs=dead_below_dbfs, alive_dbfs=dead_below_dbfs + 6.0)
            if dead_line_s is not None
            else None
        )
        self._heard_samples = 0  # counted in samples: float seconds would drift over a long call

    @property
    def heard_s(self) -> float:
        """Seconds of audio fed since the start or the last reset."""
        return self._heard_samples / LINE_RATE_HZ

    def feed(self, frame: np.ndarray) -> str | None:
        duration_s = len(frame) / LINE_RATE_HZ  # frames of any length: the line rate is fixed
        self._heard_samples += len(frame)
        tones = self._classifier.classify(frame)
        # Every detector sees every frame, so none lags behind when another fires.
        dial = self._dial.feed(tones.dial, duration_s)
        busy = self._busy.feed(tones.busy, duration_s)
        dead = self._dead is not None and self._dead.feed(tones.level_dbfs, duration_s)
        if dial:
            return DIAL_TONE
        if busy:
            return BUSY_TONE
        if dead:
            return DEAD_LINE
        return None

    def reset(self) -> None:
        """Forget what was heard: a key press proves someone is on the line."""
        self._dial.reset()
        self._busy.reset()
        if self._dead is not None:
            self._dead.reset()
        self._heard_samples = 0
