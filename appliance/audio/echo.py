"""Echo gating: is the audio coming back from the line the caller, or the box's own voice?

On a full-duplex line (GSM, a sound card) what the box plays returns on the
inbound side: a GSM module's echo canceller leaves a residue, a laptop's
speaker reaches its microphone, an analog hybrid reflects 6-30 dB down, after
0-300 ms. A voice detector cannot tell that echo from a caller: both are
speech. ``EchoGate`` compares each inbound frame with what the box played
(the reference) and says whether its energy is explained by an echo of it.

How, frame by frame (20 ms), in twelve bands across the telephone band:

    reference frames ──▶ timeline (position = when it sounds, in line frames)
    inbound frame i  ──▶ predicted echo_b = gain_b x max(reference_b[i - d ... ]) + noise_b
                         caller_b       = inbound_b > predicted_b x margin

The echo path is learnt from the call itself, over the last 3 s: its delay is
the lag whose reference envelope correlates best with the inbound one, its gain
per band is the median inbound/reference ratio at that lag (median: a caller
talking over part of that history does not move it). It is kept from one reply
to the next (``next_playback``): the greeting teaches it. Until the box has
spoken for half a second, the gate assumes the worst echo the issue names (6 dB
return loss, any delay up to ``max_delay_ms``): it then hears only a caller
louder than the box itself, and never takes echo for one.

A caller's syllables rarely cover the same bands with the same envelope as the
box's at the same instant, which is why bands: a caller no louder than the echo
overall still stands out in the bands the box is not using.

Limits, plainly (measured with ``appliance.bargein.reaction_figures``, box
speech at -21 dBFS): a caller 9 dB or more above the box's echo stops the box
within 200 ms of their onset (p50 120-140 ms) on every line tried; 3 dB above
it, in about two lines of three; under it (a 6 dB return loss and a caller 9 dB below the box)
only in the box's pauses, up to 1.4 s late. This is a gate, not a canceller: an
NLMS canceller would do better on a linear path, at far more CPU (300 ms at
8 kHz is 2400 taps, ~40 M multiply-adds a second), and a GSM codec's path is
not linear anyway. Cost here: ~0.3 ms of one x86 core per 20 ms frame.

Pure: driven only by the frames given to it, in the order they sounded and
arrived, so a test pushes minutes of audio through in milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from appliance.audio import FRAME_MS, FRAME_SAMPLES, LINE_RATE_HZ
from appliance.errors import ConfigError

# Bands over the telephone channel (300-3400 Hz), narrower low where voices differ most.
_BAND_EDGES_HZ: Final = (300, 450, 600, 800, 1000, 1250, 1500, 1800, 2100, 2450, 2800, 3100, 3400)
_BINS: Final = np.fft.rfftfreq(FRAME_SAMPLES, 1 / LINE_RATE_HZ)
_BAND_BINS: Final = tuple(
    np.flatnonzero((_BINS >= lo) & (_BINS < hi)) for lo, hi in zip(_BAND_EDGES_HZ, _BAND_EDGES_HZ[1:])
)
BANDS: Final = len(_BAND_BINS)
_BAND_MATRIX: Final = np.zeros((len(_BINS), BANDS))  # FFT bin powers -> band energies in one product
for _band, _bins in enumerate(_BAND_BINS):
    _BAND_MATRIX[_bins, _band] = 1.0
_SCALE: Final = 1.0 / (32768.0 * 32768.0 * FRAME_SAMPLES * FRAME_SAMPLES)  # band energy in full-scale units
_EPS: Final = 1e-12
_HISTORY_FRAMES: Final = 150  # 3 s of the echo path to learn from
_TIMELINE_FRAMES: Final = 512  # reference kept; far more than history + the longest delay
_LEARNED_AFTER_FRAMES: Final = 25  # 0.5 s of the box speaking before the path is trusted
_ACTIVE_REF_DB: Final = -50.0  # reference frames quieter than this teach nothing about the path
_MIN_CORRELATION: Final = 0.5  # envelope correlation that makes a delay estimate believable
_EARLY_FRAMES: Final = 2  # inbound may run up to 40 ms ahead of the reference (bursty reads)
_SPREAD_FRAMES: Final = 2  # around a learnt delay: the path's tail and 20 ms of misalignment
_NOISE_QUANTILE: Final = 10  # percentile of inbound energy taken as the line's noise
_LEARN_EVERY_FRAMES: Final = 5  # the path changes slowly; learning every 100 ms keeps the cost at ~0.3 ms/frame


def _dbfs(energy: float) -> float:
    return 10.0 * np.log10(energy + _EPS)


@dataclass(frozen=True, kw_only=True)
class EchoSettings:
    max_delay_ms: int = 400
    """Longest echo delay looked for, from the moment a frame is handed to the line:
    a GSM or acoustic path's 300 ms plus the line's own output buffer."""
    worst_return_loss_db: float = 6.0
    """Echo return loss assumed until the path is learnt: the loudest echo a line gives back."""
    margin_db: float = 10.0
    """How far above the predicted echo a band must be to count as the caller."""
    worst_case_margin_db: float = 3.0
    """The same while the worst echo is assumed: that assumption is the margin already."""
    min_bands: int = 1
    """Bands that must be above the echo in one frame: one band alone is too often a
    codec artefact or a harmonic of the box's own voice."""
    floor_dbfs: float = -55.0
    """A band quieter than this is never the caller (line noise, comfort noise)."""

    def __post_init__(self) -> None:
        if not 100 <= self.max_delay_ms <= 1000:
            raise ConfigError(f"echo.max_delay_ms must be 100-1000 ms, got {self.max_delay_ms}")
        if not 0.0 <= self.worst_return_loss_db <= 30.0:
            raise ConfigError(f"echo.worst_return_loss_db must be 0-30 dB, got {self.worst_return_loss_db}")
        if not 3.0 <= self.margin_db <= 20.0:
            raise ConfigError(f"echo.margin_db must be 3-20 dB, got {self.margin_db}")
        if not 0.0 <= self.worst_case_margin_db <= 20.0:
            raise ConfigError(f"echo.worst_case_margin_db must be 0-20 dB, got {self.worst_case_margin_db}")
        if not 1 <= self.min_bands <= BANDS:
            raise ConfigError(f"echo.min_bands must be 1-{BANDS}, got {self.min_bands}")
        if not -80.0 <= self.floor_dbfs <= -30.0:
            raise ConfigError(f"echo.floor_dbfs must be -80 to -30 dBFS, got {self.floor_dbfs}")


@dataclass(frozen=True, slots=True)
class EchoVerdict:
    caller: bool
    """Energy in this frame that an echo of the box's voice does not explain."""
    excess_db: float
    """The largest band's level over its predicted echo (negative: below it)."""
    learnt: bool
    """The echo path was learnt (delay and gain), not assumed the worst."""


@dataclass(frozen=True, slots=True)
class EchoPath:
    delay_ms: int
    return_loss_db: float
    """Average over the bands of 10 log10(reference / echo), the reference being the loudest
    frame around the delay (what the gate predicts from): a few dB above the line's true loss."""


def band_energies(frame: np.ndarray) -> np.ndarray:
    """Energy of a 160-sample int16 frame in each band, in full-scale units (1.0 = 0 dBFS)."""
    if frame.shape != (FRAME_SAMPLES,):
        raise ValueError(f"expected a {FRAME_SAMPLES}-sample frame, got shape {frame.shape}")
    spectrum = np.fft.rfft(frame.astype(np.float64))
    power = (spectrum.real**2 + spectrum.imag**2) * (_SCALE * 2)
    return power @ _BAND_MATRIX


class EchoGate:
    """Reference frames in (``played``), inbound frames in (``heard``), a verdict per inbound frame.

    Positions are counted in line frames. A played frame sounds right after the
    one before it, or, when the line ran dry meanwhile (a sentence synthesized
    late), at the current inbound position: the inbound side is the line's clock.
    """

    def __init__(self, settings: EchoSettings | None = None) -> None:
        self.settings = settings or EchoSettings()
        self._max_lag = -(-self.settings.max_delay_ms // FRAME_MS)
        self._lags = np.arange(-_EARLY_FRAMES, self._max_lag + 1)
        self._timeline = np.zeros((_TIMELINE_FRAMES, BANDS))
        self._next_play = 0  # where the next played frame sounds
        self._heard = 0  # inbound frames so far = the inbound position
        self._hist_in = np.zeros((_HISTORY_FRAMES, BANDS))
        self._hist_pos = np.zeros(_HISTORY_FRAMES, dtype=np.int64)
        self._filled = 0
        self._worst_gain = 10.0 ** (-self.settings.worst_return_loss_db / 10.0)
        self._margin = 10.0 ** (self.settings.margin_db / 10.0)
        self._worst_margin = 10.0 ** (self.settings.worst_case_margin_db / 10.0)
        self._floor = 10.0 ** (self.settings.floor_dbfs / 10.0)
        self._path: tuple[int, np.ndarray] | None = None  # (lag in frames, gain per band)
        self._noise = np.zeros(BANDS)

    @property
    def path(self) -> EchoPath | None:
        """The echo path learnt so far, or None while the worst is assumed."""
        if self._path is None:
            return None
        lag, gain = self._path
        return EchoPath(lag * FRAME_MS, round(-10.0 * float(np.log10(np.mean(gain) + _EPS)), 1))

    def next_playback(self) -> None:
        """A new reply starts: forget the audio, keep what was learnt of the path and the noise.

        The echo path of a call does not change between replies, so only the
        first one (the greeting) is heard with the worst case assumed.
        """
        # Both counters jump past the longest echo: nothing of the last reply is predicted
        # into this one (the box listened in between), while the 3 s of history, which
        # still line up with their own reference, keep teaching the path and the noise.
        start = max(self._next_play, self._heard) + self._max_lag + _EARLY_FRAMES + 1
        for position in range(max(self._next_play, start - _TIMELINE_FRAMES), start):
            self._timeline[position % _TIMELINE_FRAMES] = 0.0
        self._next_play = self._heard = start

    def played(self, frame: np.ndarray) -> None:
        """The box handed this frame to the line."""
        position = max(self._next_play, self._heard)
        for skipped in range(self._next_play, position):  # the line ran dry: silence sounded there
            self._timeline[skipped % _TIMELINE_FRAMES] = 0.0
        self._timeline[position % _TIMELINE_FRAMES] = band_energies(frame)
        self._next_play = position + 1

    def heard(self, frame: np.ndarray) -> EchoVerdict:
        """The next inbound frame; is any of it the caller?"""
        energies = band_energies(frame)
        position = self._heard
        self._heard += 1
        slot = position % _HISTORY_FRAMES
        self._hist_in[slot] = energies
        self._hist_pos[slot] = position
        self._filled = min(self._filled + 1, _HISTORY_FRAMES)
        if self._heard % _LEARN_EVERY_FRAMES == 0:
            self._learn()

        if self._path is None:
            # Worst case: any delay, the loudest echo a line returns.
            reference = self._reference(position, self._lags).max(axis=0)
            predicted = self._worst_gain * reference + self._noise
            margin = self._worst_margin
        else:
            lag, gain = self._path
            window = np.arange(lag - 1, lag + _SPREAD_FRAMES + 1)
            predicted = gain * self._reference(position, window).max(axis=0) + self._noise
            margin = self._margin
        excess = energies / (predicted + _EPS)
        loud = energies > self._floor
        over = (excess > margin) & loud
        excess_db = float(10.0 * np.log10(excess[loud].max())) if loud.any() else -99.0
        return EchoVerdict(bool(over.sum() >= self.settings.min_bands), round(excess_db, 1), self._path is not None)

    # -- inside ---------------------------------------------------------------------

    def _reference(self, positions: np.ndarray | int, lags: np.ndarray) -> np.ndarray:
        """Reference band energies that sounded ``lags`` frames before each position (... x lags x bands)."""
        at = np.asarray(positions)[..., None] - lags
        valid = (at >= 0) & (at < self._next_play) & (at > self._next_play - _TIMELINE_FRAMES)
        out = self._timeline[at % _TIMELINE_FRAMES]
        out[~valid] = 0.0
        return out

    def _learn(self) -> None:
        """Re-estimate the line's noise and the echo path from the last 3 s."""
        n = self._filled
        inbound = self._hist_in[:n]
        positions = self._hist_pos[:n]
        self._noise = np.percentile(inbound, _NOISE_QUANTILE, axis=0)
        # reference[j, k, b]: what sounded lag k before history frame j
        reference = self._reference(positions, self._lags)
        ref_total = reference.sum(axis=2)
        active = ref_total > 10.0 ** (_ACTIVE_REF_DB / 10.0)
        in_db = 10.0 * np.log10(inbound.sum(axis=1) + _EPS)
        # Pearson correlation of the two envelopes (dB), every lag at once, over the
        # frames where the reference at that lag had something to say.
        weight = active.astype(np.float64)
        count = weight.sum(axis=0)
        ref_db = 10.0 * np.log10(ref_total + _EPS)
        with np.errstate(invalid="ignore", divide="ignore"):
            ref_mean = (ref_db * weight).sum(axis=0) / count
            in_mean = (in_db[:, None] * weight).sum(axis=0) / count
            dx = (ref_db - ref_mean) * weight
            dy = (in_db[:, None] - in_mean) * weight
            corr = (dx * dy).sum(axis=0) / np.sqrt((dx**2).sum(axis=0) * (dy**2).sum(axis=0))
        corr[(count < _LEARNED_AFTER_FRAMES) | ~np.isfinite(corr)] = -1.0
        best_lag = int(np.argmax(corr))
        if corr[best_lag] <= _MIN_CORRELATION:
            # Keep a path learnt earlier: a caller talking over the box blurs the
            # correlation, and that is exactly when the gate must stay sharp.
            return
        lag = int(self._lags[best_lag])
        around = [i for i in range(best_lag - 1, best_lag + _SPREAD_FRAMES + 1) if 0 <= i < len(self._lags)]
        ref_window = reference[:, around, :].max(axis=1)  # frames x bands
        mask = active[:, best_lag]
        ratios = (np.maximum(inbound[mask] - self._noise, 0.0)) / (ref_window[mask] + _EPS)
        gain = np.minimum(np.median(ratios, axis=0), self._worst_gain)
        self._path = (lag, gain)
