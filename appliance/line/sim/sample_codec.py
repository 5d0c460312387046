"""Samples on the simulated wire: int16 PCM to and from each ``+VSM`` coding.

The line model works in int16 PCM; the modem codes it per its current ``+VSM``
(telephony.md 1.6). µ-law and A-law use the box's G.711 tables (a codec, not one
of the driver's parsers); the linear codings are written out here.

Line noise. A live line is never digital zero: the other end's microphone, the
exchange and the copper add a floor around -55 to -60 dBFS. Energy detectors
(the box's "is anybody there?") depend on telling that floor from a dead line
(digital silence, below -70 dBFS), so the noise must survive the coding at the
level asked for. In µ-law, A-law and 16-bit linear small Gaussian noise does.
In 8-bit linear one step is 256 (-42 dBFS): Gaussian noise of RMS 46 would
round to all zeros or, truncated, to a -45 dBFS hiss. There the floor is coded
as sparse ±1-step samples whose density gives the same RMS.
"""

from __future__ import annotations

import numpy as np

from appliance.audio.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from appliance.line.sim.identities import SampleKind

_STEP_8BIT = 256  # one step of 8-bit linear in int16 units


def encode(kind: SampleKind, pcm: np.ndarray) -> bytes:
    """int16 PCM → bytes in ``kind``. IMA ADPCM is not simulated: its silence, 2 samples a byte."""
    pcm = np.asarray(pcm, dtype=np.int16)
    match kind:
        case "ulaw":
            return ulaw_encode(pcm).tobytes()
        case "alaw":
            return alaw_encode(pcm).tobytes()
        case "u8":
            # The modems' 8-bit linear is unsigned, silence 0x80 (1.6); truncating
            # like the box's encoder keeps decode(encode(x)) == x for 8-bit data.
            return ((pcm >> 8) + 128).astype(np.uint8).tobytes()
        case "s8":
            return (pcm >> 8).astype(np.int8).tobytes()
        case "s16":
            return pcm.astype("<i2").tobytes()
        case "adpcm":
            return bytes((pcm.size + 1) // 2)
    raise ValueError(f"no sample coding {kind!r}")


def decode(kind: SampleKind, data: bytes) -> np.ndarray:
    """Bytes in ``kind`` → int16 PCM (what the caller's ``say`` bytes mean)."""
    match kind:
        case "ulaw":
            return ulaw_decode(data)
        case "alaw":
            return alaw_decode(data)
        case "u8":
            return ((np.frombuffer(data, dtype=np.uint8).astype(np.int16) - 128) << 8).astype(np.int16)
        case "s8":
            return (np.frombuffer(data, dtype=np.int8).astype(np.int16) << 8).astype(np.int16)
        case "s16":
            return np.frombuffer(data[: len(data) // 2 * 2], dtype="<i2").astype(np.int16)
    raise ValueError(f"the simulator cannot decode {kind!r} audio; say() in another +VSM format")


def encode_line(
    kind: SampleKind, pcm: np.ndarray, noisy: np.ndarray, noise_rms: float, rng: np.random.Generator
) -> bytes:
    """What the line carries: ``pcm`` coded, with the noise floor added where ``noisy``."""
    if noise_rms <= 0 or not noisy.any():
        return encode(kind, np.clip(pcm, -32768, 32767).astype(np.int16))
    if kind in ("u8", "s8"):
        coded = np.clip(pcm, -32768, 32767).astype(np.int16) >> 8
        density = min(1.0, (noise_rms / _STEP_8BIT) ** 2)
        flips = noisy & (rng.random(pcm.size) < density)
        coded = coded + np.where(flips, rng.choice(np.array([-1, 1]), pcm.size), 0)
        coded = np.clip(coded, -128, 127)
        if kind == "u8":
            return (coded + 128).astype(np.uint8).tobytes()
        return coded.astype(np.int8).tobytes()
    noise = np.where(noisy, rng.normal(0.0, noise_rms, pcm.size), 0.0)
    return encode(kind, np.clip(np.rint(pcm + noise), -32768, 32767).astype(np.int16))
