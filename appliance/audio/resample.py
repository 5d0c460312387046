"""Band-limited sample-rate conversion, whole buffers or chunk streams.

Every rate change in the box goes through soxr: the line runs at 8 kHz, the
VAD and Whisper want 16 kHz, Kokoro speaks at 24 kHz and espeak-ng at 22.05 kHz.
Linear interpolation (``np.interp``) would fold everything above the new
Nyquist frequency back into the speech band as audible, ASR-confusing aliasing;
soxr low-passes first.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import soxr

_QUALITY: Final = "HQ"  # transparent for speech; VHQ costs more and changes nothing audible
_DTYPES: Final = (np.dtype(np.int16), np.dtype(np.float32))
_QUALITIES: Final = ("QQ", "LQ", "MQ", "HQ", "VHQ")  # soxr's, quickest first


def _check_rate(name: str, rate: int) -> None:
    if not isinstance(rate, int) or rate <= 0:
        raise ValueError(f"{name} must be a positive integer in Hz, got {rate!r}")


def resample(pcm: np.ndarray, in_rate: int, out_rate: int) -> np.ndarray:
    """Resample mono ``pcm`` from ``in_rate`` to ``out_rate`` Hz, keeping its dtype.

    int16 input is converted by soxr with saturation (no wrap-around on peaks);
    float32/float64 keep their scale. Equal rates return a copy.
    """
    _check_rate("in_rate", in_rate)
    _check_rate("out_rate", out_rate)
    if pcm.ndim != 1:
        raise ValueError(f"resample expects mono 1-D audio, got shape {pcm.shape}")
    if in_rate == out_rate:
        return pcm.copy()
    if pcm.size == 0:
        return pcm.copy()
    return soxr.resample(pcm, in_rate, out_rate, quality=_QUALITY)


class StreamResampler:
    """Resample a continuous stream chunk by chunk, without clicks at chunk edges.

    The filter keeps its state between chunks, so output lags input: soxr works
    in blocks, so output comes in bursts (at 8 -> 16 kHz, nothing for the first
    ~100 ms, then ~100 ms at a time; about 66 ms of filter delay). ``flush()``
    returns the tail once the stream ends.
    After ``flush()`` the resampler starts a fresh stream.

    ``quality="LQ"`` is for a sound card in real time, where nothing says when a
    stream ends and bursts would be heard: output every 20-60 ms and 25-60 ms
    of delay (measured at 8 <-> 16/48 kHz, 20 ms chunks), with a filter
    still clean across the 300-3400 Hz telephone band.
    """

    def __init__(self, in_rate: int, out_rate: int, *, dtype: type = np.int16, quality: str = _QUALITY) -> None:
        _check_rate("in_rate", in_rate)
        _check_rate("out_rate", out_rate)
        self._dtype = np.dtype(dtype)
        if self._dtype not in _DTYPES:
            raise ValueError(f"StreamResampler handles int16 or float32, got {self._dtype}")
        if quality not in _QUALITIES:
            raise ValueError(f"quality must be one of {', '.join(_QUALITIES)}, got {quality!r}")
        self.in_rate = in_rate
        self.out_rate = out_rate
        self.quality = quality
        self._stream = self._new_stream()

    def _new_stream(self) -> soxr.ResampleStream:
        return soxr.ResampleStream(self.in_rate, self.out_rate, 1, dtype=self._dtype.name, quality=self.quality)

    def process(self, chunk: np.ndarray) -> np.ndarray:
        """Feed one chunk; return whatever output is ready (possibly empty)."""
        if chunk.ndim != 1:
            raise ValueError(f"expected mono 1-D audio, got shape {chunk.shape}")
        if chunk.dtype != self._dtype:
            raise TypeError(f"this stream carries {self._dtype}, got {chunk.dtype}")
        return self._stream.resample_chunk(chunk)

    def flush(self) -> np.ndarray:
        """End the stream: return the samples still inside the filter, then reset."""
        tail = self._stream.resample_chunk(np.zeros(0, dtype=self._dtype), last=True)
        # A new stream rather than ``clear()``: clear() leaves rounding state
        # behind, and the same audio must give the same samples every call.
        self._stream = self._new_stream()
        return tail
