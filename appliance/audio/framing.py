"""Cutting line audio into 20 ms frames, and the int16 <-> float32 convention.

The line driver reads and writes exactly ``FRAME_SAMPLES`` (160) samples at a
time; models speak float32 in [-1, 1]. The scale is 32768 both ways so that
int16 -> float32 -> int16 is exact.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from appliance.audio import FRAME_SAMPLES

_INT16_SCALE: Final = 32768.0


def int16_to_float32(pcm: np.ndarray) -> np.ndarray:
    """int16 PCM -> float32 in [-1, 1)."""
    if pcm.dtype != np.int16:
        raise TypeError(f"expected int16 PCM, got {pcm.dtype}")
    return pcm.astype(np.float32) / np.float32(_INT16_SCALE)


def float32_to_int16(audio: np.ndarray) -> np.ndarray:
    """Float audio in [-1, 1] -> int16, rounded, clipping what lies beyond full scale.

    Clipping instead of wrapping matters: a synthesiser overshooting by 1 %
    would otherwise turn a peak into a full-scale click of the opposite sign.
    """
    if not np.issubdtype(audio.dtype, np.floating):
        raise TypeError(f"expected float audio, got {audio.dtype}")
    scaled = np.rint(np.asarray(audio, dtype=np.float64) * _INT16_SCALE)
    return np.clip(scaled, -32768, 32767).astype(np.int16)


def to_frames(pcm: np.ndarray) -> list[np.ndarray]:
    """Split int16 line audio into 160-sample frames, zero-padding the last one."""
    if pcm.dtype != np.int16 or pcm.ndim != 1:
        raise TypeError(f"expected 1-D int16 PCM, got {pcm.dtype} {pcm.shape}")
    if pcm.size == 0:
        return []
    padded_len = -(-pcm.size // FRAME_SAMPLES) * FRAME_SAMPLES
    padded = np.zeros(padded_len, dtype=np.int16)
    padded[: pcm.size] = pcm
    # Copies, not views: a frame handed to the line must not change under it.
    return [frame.copy() for frame in padded.reshape(-1, FRAME_SAMPLES)]


def from_frames(frames: list[np.ndarray]) -> np.ndarray:
    """Join frames back into one int16 buffer (empty when there are none)."""
    if not frames:
        return np.zeros(0, dtype=np.int16)
    return np.concatenate(frames).astype(np.int16, copy=False)
