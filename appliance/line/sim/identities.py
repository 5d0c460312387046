"""What each simulated chipset answers that its profile file does not hold.

Identification texts, the ``AT+VSM=?`` listing and the ``+VSD`` range, from
telephony.md 1.1, 1.6 and 6.2. Chipset *behaviour* comes from the profile files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal


SampleKind = Literal["u8", "s8", "s16", "ulaw", "alaw", "adpcm"]
"""How samples are coded on the wire (``sample_codec`` encodes and decodes them)."""


@dataclass(frozen=True, slots=True)
class Format:
    cml: int
    listing: str  # one line of the AT+VSM=? answer
    bits: int
    rates: tuple[int, ...]
    silence: int  # the byte a silent line carries in this format
    kind: SampleKind

    def bytes_per_s(self, rate: int) -> int:
        return rate * (16 if self.bits > 8 else self.bits) // 8


@dataclass(frozen=True, slots=True)
class Identity:
    info: dict[str, str]  # "I0", "I3", "+GMI9" -> information text
    formats: tuple[Format, ...]
    default_vsm: int
    vsd_range: str
    vendor_commands: frozenset[str]  # accepted and ignored (caller-ID snooping etc.)
    by_id: str
    """The name udev gives the port under /dev/serial/by-id/ [unverified: standard udev naming, 1.2]."""


def _usr(cml: int, name: str, bits: int, rates: tuple[int, ...], silence: int, kind: SampleKind) -> Format:
    listing = f'{cml},"{name}",({",".join(map(str, rates))})'
    return Format(cml, listing, bits, rates, silence, kind)


def _cx(cml: int, name: str, bits: int, silence: int, kind: SampleKind) -> Format:
    return Format(cml, f'{cml},"{name}",{bits},0,8000,0,0', bits, (8000,), silence, kind)


IDENTITIES: Final = {
    "usr5637": Identity(
        info={"I0": "5601", "I3": "U.S. Robotics 56K FAX USB V1.2.23"},
        formats=(
            _usr(128, "8-BIT LINEAR", 8, (7200, 8000, 11025), 0x80, "u8"),
            _usr(129, "16-BIT LINEAR", 16, (7200, 8000, 11025), 0x00, "s16"),
            _usr(130, "8-BIT ALAW", 8, (8000,), 0xD5, "alaw"),
            _usr(131, "8-BIT ULAW", 8, (8000,), 0xFF, "ulaw"),
            _usr(132, "IMA ADPCM", 4, (7200, 8000, 11025), 0x00, "adpcm"),
        ),
        default_vsm=128,
        vsd_range="(0,127,128,129),(0-255)",
        vendor_commands=frozenset(),
        by_id="usb-U.S._Robotics_USB_Modem_0000001-if00",
    ),
    "cx930xx": Identity(
        info={"I0": "56000", "I3": "CX93001-EIS_V0.2013-V92", "+GMI9": "CONEXANT ACF"},
        formats=(
            _cx(0, "SIGNED PCM", 8, 0x00, "s8"),
            _cx(1, "UNSIGNED PCM", 8, 0x80, "u8"),
            _cx(129, "IMA ADPCM", 4, 0x00, "adpcm"),
            _cx(130, "UNSIGNED PCM", 8, 0x80, "u8"),
            _cx(131, "Mu-Law", 8, 0xFF, "ulaw"),
            _cx(132, "A-Law", 8, 0xD5, "alaw"),
            _cx(133, "14 bit PCM", 14, 0x00, "s16"),
        ),
        default_vsm=1,
        vsd_range="(0-255),(0-255)",  # [unverified]
        vendor_commands=frozenset({"-SCID", "-STE", "!4886", "!4892", "+GCI"}),
        by_id="usb-Conexant_USB_Modem_24680246-if00",
    ),
}
