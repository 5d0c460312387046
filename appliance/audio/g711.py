"""G.711 companding (µ-law and A-law) between 16-bit linear PCM and line bytes.

Voice modems and the simulated line carry one byte per sample; everything else
in the box works on int16. Both directions go through lookup tables built once
at import from the reference algorithm (the Sun/CCITT ``g711.c`` that sox and
most modems follow): 256 entries to decode, 65536 entries to encode, so a 20 ms
frame costs one numpy ``take`` and no Python loop.

Decoded values follow the 16-bit convention of ``g711.c``: µ-law spans
±32124 and A-law ±32256, not the full int16 range.
"""

from __future__ import annotations

from typing import Final

import numpy as np

_ULAW_BIAS: Final = 0x84  # added before the segment search so segment 0 has a clean step
_ULAW_CLIP: Final = 8159  # largest 14-bit magnitude µ-law can carry once biased
_ULAW_SEG_END: Final = (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF)
_ALAW_SEG_END: Final = (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)
_ALAW_XOR: Final = 0x55  # A-law inverts even bits so idle lines are not all zeros


def _segment(magnitude: np.ndarray, seg_end: tuple[int, ...]) -> np.ndarray:
    """Index of the first segment whose end is >= magnitude (8 when beyond all)."""
    return np.searchsorted(np.asarray(seg_end), magnitude, side="left")


def _build_ulaw_decode() -> np.ndarray:
    code = ~np.arange(256, dtype=np.int32) & 0xFF  # codes are sent inverted
    t = ((code & 0x0F) << 3) + _ULAW_BIAS
    t <<= (code & 0x70) >> 4
    return np.where(code & 0x80, _ULAW_BIAS - t, t - _ULAW_BIAS).astype(np.int16)


def _build_ulaw_encode() -> np.ndarray:
    pcm = np.arange(-32768, 32768, dtype=np.int32) >> 2  # µ-law works on 14 bits
    negative = pcm < 0
    magnitude = np.minimum(np.where(negative, -pcm, pcm), _ULAW_CLIP) + (_ULAW_BIAS >> 2)
    seg = _segment(magnitude, _ULAW_SEG_END)
    mask = np.where(negative, 0x7F, 0xFF)
    code = (seg << 4) | ((magnitude >> (seg + 1)) & 0x0F)
    # seg is never 8 after clipping, but keep the reference's saturation rule.
    code = np.where(seg >= 8, 0x7F, code)
    return (code ^ mask).astype(np.uint8)


def _build_alaw_decode() -> np.ndarray:
    code = np.arange(256, dtype=np.int32) ^ _ALAW_XOR
    t = (code & 0x0F) << 4
    seg = (code & 0x70) >> 4
    t = np.where(seg == 0, t + 8, t + 0x108)
    t = np.where(seg > 1, t << np.maximum(seg - 1, 0), t)
    return np.where(code & 0x80, t, -t).astype(np.int16)


def _build_alaw_encode() -> np.ndarray:
    pcm = np.arange(-32768, 32768, dtype=np.int32) >> 3  # A-law works on 13 bits
    negative = pcm < 0
    magnitude = np.where(negative, -pcm - 1, pcm)
    mask = np.where(negative, 0x55, 0xD5)
    seg = _segment(magnitude, _ALAW_SEG_END)
    shift = np.where(seg < 2, 1, seg)
    code = (seg << 4) | ((magnitude >> shift) & 0x0F)
    code = np.where(seg >= 8, 0x7F, code)
    return (code ^ mask).astype(np.uint8)


_ULAW_TO_PCM: Final = _build_ulaw_decode()
_PCM_TO_ULAW: Final = _build_ulaw_encode()
_ALAW_TO_PCM: Final = _build_alaw_decode()
_PCM_TO_ALAW: Final = _build_alaw_encode()
for _table in (_ULAW_TO_PCM, _PCM_TO_ULAW, _ALAW_TO_PCM, _PCM_TO_ALAW):
    _table.flags.writeable = False  # shared by every call; nobody may patch them


def _as_codes(data: bytes | bytearray | memoryview | np.ndarray) -> np.ndarray:
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8:
            raise TypeError(f"G.711 codes must be uint8, got {data.dtype}")
        return data
    return np.frombuffer(data, dtype=np.uint8)


def _as_pcm_index(pcm: np.ndarray) -> np.ndarray:
    if pcm.dtype != np.int16:
        raise TypeError(f"linear PCM must be int16, got {pcm.dtype}")
    # Offset into the 65536-entry table: -32768 maps to entry 0.
    return pcm.astype(np.int32) + 32768


def ulaw_encode(pcm: np.ndarray) -> np.ndarray:
    """int16 linear PCM -> µ-law codes (uint8, same shape)."""
    return _PCM_TO_ULAW[_as_pcm_index(pcm)]


def ulaw_decode(codes: bytes | bytearray | memoryview | np.ndarray) -> np.ndarray:
    """µ-law codes (bytes or uint8 array) -> int16 linear PCM."""
    return _ULAW_TO_PCM[_as_codes(codes)]


def alaw_encode(pcm: np.ndarray) -> np.ndarray:
    """int16 linear PCM -> A-law codes (uint8, same shape)."""
    return _PCM_TO_ALAW[_as_pcm_index(pcm)]


def alaw_decode(codes: bytes | bytearray | memoryview | np.ndarray) -> np.ndarray:
    """A-law codes (bytes or uint8 array) -> int16 linear PCM."""
    return _ALAW_TO_PCM[_as_codes(codes)]
