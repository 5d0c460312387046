"""A simulated telephone channel, so the test caller sounds like a real phone line.

What a caller's voice goes through before it reaches the modem, in order:
resampling to the 8 kHz line rate, the 300-3400 Hz band of the network (G.712),
background noise on the caller's side, and G.711 companding. Models tested only
on clean wide-band audio look far better than they will on the line; this
module is how the simulated caller and the tests hear what the box will hear.
"""

from __future__ import annotations

from typing import Final, Literal

import numpy as np

from appliance.audio import LINE_RATE_HZ
from appliance.audio.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from appliance.audio.resample import resample

Codec = Literal["g711-ulaw", "g711-alaw", "linear"]
NoiseColour = Literal["white", "pink"]

_LOW_CUT_HZ: Final = 300.0  # G.712 pass band of an analogue/PSTN voice channel
_HIGH_CUT_HZ: Final = 3400.0
# Two RBJ biquads in cascade give a 4th-order Butterworth edge on each side:
# about -38 dB at 100 Hz and -60 dB at 3900 Hz, which is what a real line does.
_BUTTERWORTH_Q4: Final = (0.5411961001461969, 1.3065629648763766)
# The IIR response is applied in the frequency domain over a zero-padded buffer;
# its impulse response has died out (< -100 dB) well within this tail, so the
# circular convolution of the FFT never wraps audible energy to the start.
_FILTER_TAIL_S: Final = 0.25
_INT16_FULL_SCALE: Final = 32768.0


def telephone(
    pcm: np.ndarray,
    rate: int,
    *,
    codec: Codec = "g711-ulaw",
    noise_db: float | None = None,
    noise_colour: NoiseColour = "white",
    seed: int = 0,
) -> np.ndarray:
    """Pass mono audio through a simulated phone line; return int16 at 8 kHz.

    ``pcm`` is int16 or float in [-1, 1] at ``rate`` Hz. ``noise_db`` is the RMS
    level of added noise in dBFS (0 dBFS = RMS of full scale), measured before
    the channel filter, like the noise around the caller; ``seed`` makes it
    reproducible.
    """
    if codec not in ("g711-ulaw", "g711-alaw", "linear"):
        raise ValueError(f"unknown codec {codec!r}")
    if noise_colour not in ("white", "pink"):
        raise ValueError(f"unknown noise colour {noise_colour!r}")
    if pcm.ndim != 1:
        raise ValueError(f"telephone expects mono 1-D audio, got shape {pcm.shape}")
    audio = _to_unit_float(pcm)
    audio = resample(audio, rate, LINE_RATE_HZ)
    if noise_db is not None:
        audio = audio + _noise(audio.size, noise_db, noise_colour, seed)
    audio = band_limit(audio, LINE_RATE_HZ)
    line = np.clip(np.rint(audio * _INT16_FULL_SCALE), -32768, 32767).astype(np.int16)
    if codec == "g711-ulaw":
        return ulaw_decode(ulaw_encode(line))
    if codec == "g711-alaw":
        return alaw_decode(alaw_encode(line))
    return line


def band_limit(audio: np.ndarray, rate: int) -> np.ndarray:
    """Filter float audio to the 300-3400 Hz telephone band (causal IIR response)."""
    if audio.size == 0:
        return audio.astype(np.float64)
    n = audio.size + int(_FILTER_TAIL_S * rate)
    n_fft = 1 << (n - 1).bit_length()
    spectrum = np.fft.rfft(audio.astype(np.float64), n_fft)
    z_inv = np.exp(-2j * np.pi * np.fft.rfftfreq(n_fft, 1.0 / rate) / rate)
    response = np.ones_like(z_inv)
    for q in _BUTTERWORTH_Q4:
        response *= _biquad_response(_highpass(_LOW_CUT_HZ, q, rate), z_inv)
        response *= _biquad_response(_lowpass(_HIGH_CUT_HZ, q, rate), z_inv)
    return np.fft.irfft(spectrum * response, n_fft)[: audio.size]


def _to_unit_float(pcm: np.ndarray) -> np.ndarray:
    if pcm.dtype == np.int16:
        return pcm.astype(np.float64) / _INT16_FULL_SCALE
    if np.issubdtype(pcm.dtype, np.floating):
        return pcm.astype(np.float64)
    raise TypeError(f"expected int16 or float audio, got {pcm.dtype}")


def _noise(size: int, level_db: float, colour: NoiseColour, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(size)
    if colour == "pink" and size > 1:
        # 1/f power: scale each bin's amplitude by 1/sqrt(f); leave DC out.
        spectrum = np.fft.rfft(noise)
        freqs = np.arange(spectrum.size, dtype=np.float64)
        freqs[0] = np.inf
        noise = np.fft.irfft(spectrum / np.sqrt(freqs), size)
    rms = float(np.sqrt(np.mean(noise**2))) if size else 1.0
    return noise * (10.0 ** (level_db / 20.0) / rms)


# Biquad coefficients from R. Bristow-Johnson's "Audio EQ Cookbook".
_Coefficients = tuple[tuple[float, float, float], tuple[float, float, float]]


def _lowpass(cutoff_hz: float, q: float, rate: int) -> _Coefficients:
    w0 = 2 * np.pi * cutoff_hz / rate
    alpha = np.sin(w0) / (2 * q)
    cos_w0 = np.cos(w0)
    b = ((1 - cos_w0) / 2, 1 - cos_w0, (1 - cos_w0) / 2)
    return b, (1 + alpha, -2 * cos_w0, 1 - alpha)


def _highpass(cutoff_hz: float, q: float, rate: int) -> _Coefficients:
    w0 = 2 * np.pi * cutoff_hz / rate
    alpha = np.sin(w0) / (2 * q)
    cos_w0 = np.cos(w0)
    b = ((1 + cos_w0) / 2, -(1 + cos_w0), (1 + cos_w0) / 2)
    return b, (1 + alpha, -2 * cos_w0, 1 - alpha)


def _biquad_response(coefficients: _Coefficients, z_inv: np.ndarray) -> np.ndarray:
    (b0, b1, b2), (a0, a1, a2) = coefficients
    return (b0 + b1 * z_inv + b2 * z_inv**2) / (a0 + a1 * z_inv + a2 * z_inv**2)
