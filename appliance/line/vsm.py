"""Voice sample formats: read a modem's ``AT+VSM=?`` answer and choose the best one.

µ-law first (≈13-14 effective bits over the 8-bit port), then A-law, then the
modem's unsigned 8-bit linear (≈48 dB, noisy on some chipsets): telephony.md §1.6.
Formats are classified by name, as the reference recommends, with the profile's
id hints breaking ties between entries of the same name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

from appliance.line.profile import ModemProfile, Voice

SAMPLE_RATE_HZ: Final = 8000  # telephony.md 1.6: always 8000 Hz on the modem

# Preference (telephony.md 1.6, and the design): G.711 first, µ-law before A-law,
# 8-bit linear last because it sounds noisy (emxsys#171). 16-bit/14-bit linear are
# left out: 128 kbit/s and more does not fit a 115200 baud port (1.2).
ENCODING_PREFERENCE: Final = ("ulaw", "alaw", "linear8")

_METHOD_LINE = re.compile(r'^\s*(?:\+VSM:\s*)?(\d+)\s*,\s*"([^"]*)"\s*(?:,\s*(.*?))?\s*$', re.IGNORECASE)
_ID_LIST_LINE = re.compile(r"^\s*(?:\+VSM:\s*)?\(?\s*\d+(?:\s*,\s*\d+)*\s*\)?\s*$", re.IGNORECASE)


@dataclass(frozen=True, kw_only=True)
class VsmMethod:
    """One line of an ``AT+VSM=?`` answer."""

    cml: int
    name: str = ""
    """Empty when the modem lists bare ids (older Conexant manuals)."""
    bits: int | None = None
    rate_ranges_hz: tuple[tuple[int, int], ...] = ()
    """Inclusive ranges; empty when the answer does not say."""

    def supports_rate(self, hz: int) -> bool:
        return not self.rate_ranges_hz or any(lo <= hz <= hi for lo, hi in self.rate_ranges_hz)


@dataclass(frozen=True, kw_only=True)
class VoiceFormat:
    encoding: Literal["ulaw", "alaw", "linear8"]
    vsm_id: int
    sample_rate_hz: int = SAMPLE_RATE_HZ
    name: str = ""


def _split_top_level(text: str) -> list[str]:
    """Split on commas outside parentheses: ``(7200,8000),0`` is two fields."""
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    parts.append(current.strip())
    return parts


def _rate_ranges(text: str) -> tuple[tuple[int, int], ...]:
    ranges = []
    for item in text.strip("() ").split(","):
        bounds = item.strip().split("-")
        if not all(b.strip().isdecimal() for b in bounds) or len(bounds) > 2:
            return ()  # a shape we do not know: say "unknown" rather than guess
        ranges.append((int(bounds[0]), int(bounds[-1])))
    return tuple(ranges)


def parse_vsm_methods(answer: str) -> tuple[VsmMethod, ...]:
    """Parse ``AT+VSM=?`` (telephony.md 1.6): USR ``cml,"name",(rates)`` and Conexant
    ``cml,"name",bps,tm,vsr,sds,sel`` lines; bare id lists; echo and ``OK`` skipped."""
    methods: list[VsmMethod] = []
    for line in answer.splitlines():
        if match := _METHOD_LINE.match(line):
            cml, name, rest = int(match[1]), match[2].strip(), match[3] or ""
            fields_ = _split_top_level(rest) if rest else []
            bits: int | None = None
            rates: tuple[tuple[int, int], ...] = ()
            if fields_ and fields_[0].startswith("("):  # USR: rate list only
                rates = _rate_ranges(fields_[0])
            elif fields_:  # Conexant: <bps>,<tm>,<vsr>,<sds>,<sel>
                # isdecimal, not isdigit: "²" is a digit that int() refuses.
                bits = int(fields_[0]) if fields_[0].isdecimal() else None
                if len(fields_) >= 3:
                    rates = _rate_ranges(fields_[2])
            methods.append(VsmMethod(cml=cml, name=name, bits=bits, rate_ranges_hz=rates))
        elif _ID_LIST_LINE.match(line):
            methods.extend(VsmMethod(cml=int(i)) for i in re.findall(r"\d+", line))
    return tuple(methods)


def _encoding_of(method: VsmMethod, voice: Voice | None) -> str | None:
    if method.name:
        # By name, as 1.6 recommends: ids 128-255 mean different things per maker.
        squashed = re.sub(r"[^A-Z0-9]", "", method.name.upper())
        if "ULAW" in squashed or "G711U" in squashed:  # "8-BIT ULAW", "Mu-Law", "G.711U"
            return "ulaw"
        if "ALAW" in squashed or "G711A" in squashed:
            return "alaw"
        if re.search(r"(?<!\d)8BITLINEAR", squashed):
            return "linear8"
        if squashed == "UNSIGNEDPCM" and method.bits in (None, 8):
            return "linear8"
        return None  # signed PCM, ADPCM, 14/16-bit: not formats the box decodes
    if voice is not None:  # a bare id: only the chipset's own table can say
        for encoding in ENCODING_PREFERENCE:
            if voice.vsm_hint(encoding) == method.cml:
                return encoding
    return None


def pick_voice_format(profile: ModemProfile | None, supported_vsm_answer: str) -> VoiceFormat | None:
    """The best format the modem offers at 8000 Hz: µ-law, then A-law, then 8-bit linear.

    Among several methods of the chosen encoding (Conexant lists UNSIGNED PCM as
    both 1 and 130) the profile's hinted id wins, else the first listed. None when
    the modem offers none of the three: the driver cannot take the call in voice mode.
    """
    voice = profile.voice if profile is not None else None
    methods = [m for m in parse_vsm_methods(supported_vsm_answer) if m.supports_rate(SAMPLE_RATE_HZ)]
    for encoding in ENCODING_PREFERENCE:
        candidates = [m for m in methods if _encoding_of(m, voice) == encoding]
        if not candidates:
            continue
        hint = voice.vsm_hint(encoding) if voice is not None else None
        chosen = next((m for m in candidates if m.cml == hint), candidates[0])
        return VoiceFormat(encoding=encoding, vsm_id=chosen.cml, name=chosen.name)  # type: ignore[arg-type]
    return None


def vsm_commands(profile: ModemProfile, voice_format: VoiceFormat) -> tuple[str, ...]:
    """Commands to select ``voice_format``, to try in order until one answers OK.

    mgetty sends ``<cml>,<rate>`` and falls back to the four-argument form on ERROR
    (telephony.md 1.6); only chipsets that accept it get the second form.
    """
    short = f"AT+VSM={voice_format.vsm_id},{voice_format.sample_rate_hz}"
    if profile.voice is not None and profile.voice.vsm_long_form:
        return (short, f"{short},0,0")
    return (short,)
