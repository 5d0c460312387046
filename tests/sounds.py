"""What a phone line carries, synthesised for the hang-up tests: tones, noise, speech.

Everything is int16 at 8 kHz, as the line drivers deliver it; ``on_line`` adds
the line's own noise and the G.711 µ-law round trip a real call goes through.
"""

from __future__ import annotations

import functools

import numpy as np

from appliance.audio import LINE_RATE_HZ
from appliance.audio.framing import float32_to_int16, to_frames
from appliance.audio.g711 import ulaw_decode, ulaw_encode
from appliance.audio.resample import resample
from appliance.speech.tts import EspeakSynthesizer

FULL_SCALE = 32768.0
DTMF_HZ = {
    "1": (697, 1209), "2": (697, 1336), "3": (697, 1477), "A": (697, 1633),
    "4": (770, 1209), "5": (770, 1336), "6": (770, 1477), "B": (770, 1633),
    "7": (852, 1209), "8": (852, 1336), "9": (852, 1477), "C": (852, 1633),
    "*": (941, 1209), "0": (941, 1336), "#": (941, 1477), "D": (941, 1633),
}  # fmt: skip


def samples(seconds: float) -> int:
    return int(round(seconds * LINE_RATE_HZ))


def silence(seconds: float) -> np.ndarray:
    return np.zeros(samples(seconds), np.int16)


def noise(seconds: float, dbfs: float = -55.0, *, seed: int = 0) -> np.ndarray:
    """White line noise at ``dbfs`` (rms over int16 full scale)."""
    rng = np.random.default_rng(seed)
    return _clip(rng.standard_normal(samples(seconds)) * FULL_SCALE * 10 ** (dbfs / 20))


def tone(freqs_hz: tuple[float, ...], seconds: float, dbfs: float = -20.0, *, phase: float = 0.3) -> np.ndarray:
    """The frequencies sounding together, with ``dbfs`` for the whole chord."""
    t = np.arange(samples(seconds)) / LINE_RATE_HZ
    wave = sum(np.sin(2 * np.pi * f * t + phase * (i + 1)) for i, f in enumerate(freqs_hz))
    rms = np.sqrt(len(freqs_hz) / 2)  # of a sum of unit sines
    return _clip(np.asarray(wave) / rms * FULL_SCALE * 10 ** (dbfs / 20))


def cadenced(freqs_hz: tuple[float, ...], on_s: float, off_s: float, cycles: int, dbfs: float = -20.0) -> np.ndarray:
    """A busy or reorder tone: ``cycles`` times (tone, silence)."""
    one = np.concatenate([tone(freqs_hz, on_s, dbfs), silence(off_s)])
    return np.tile(one, cycles)


def dtmf(keys: str, press_s: float = 0.1, gap_s: float = 0.1, dbfs: float = -12.0) -> np.ndarray:
    parts = []
    for key in keys:
        parts += [tone(DTMF_HZ[key], press_s, dbfs), silence(gap_s)]
    return np.concatenate(parts)


def on_line(signal: np.ndarray, noise_dbfs: float | None = -55.0, *, seed: int = 1) -> np.ndarray:
    """``signal`` as the box receives it: plus line noise, through µ-law and back."""
    mixed = signal.astype(np.float64)
    if noise_dbfs is not None:
        mixed += noise(len(signal) / LINE_RATE_HZ, noise_dbfs, seed=seed)[: len(signal)]
    return ulaw_decode(ulaw_encode(_clip(mixed)))


@functools.lru_cache(maxsize=8)
def speech(text: str, voice: str = "fr-fr", rate_wpm: int = 150) -> np.ndarray:
    """``text`` spoken by espeak-ng, at the line rate (read-only: cached)."""
    espeak = EspeakSynthesizer(voice=voice, rate_wpm=rate_wpm)
    pcm = float32_to_int16(resample(espeak.synthesize(text), espeak.sample_rate, LINE_RATE_HZ))
    pcm.setflags(write=False)
    return pcm


def frames(pcm: np.ndarray) -> list[np.ndarray]:
    return to_frames(np.asarray(pcm, dtype=np.int16))


def _clip(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), -32768, 32767).astype(np.int16)
