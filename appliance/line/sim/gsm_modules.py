"""What each simulated GSM module does differently, as data (telephony.md 2.1-2.4).

The simulator's behaviour comes from the reference, not from the driver's
profile files: a module fact that the driver got wrong in a profile must show up
as a failing test, not be copied into the simulator too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal


@dataclass(frozen=True, slots=True)
class GsmModule:
    vendor: Literal["simcom", "quectel"]
    """Which vendor command set is understood (``AT+CPCMREG``/``AT+DDET`` or ``AT+Q...``)."""
    manufacturer: str
    model: str
    revision: str
    answer_urc: str
    """Printed before ``OK`` on ``ATA`` ("" for none): SIMCom ``VOICE CALL: BEGIN`` (2.2)."""
    end_urc: str
    """The vendor's own end-of-call line ("" for none); ``{duration}`` is HHMMSS (2.2)."""
    missed_call: Literal["missed_call", "no_carrier"]
    """How the module says the caller gave up while ringing: ``MISSED_CALL: ...`` (SIM7600, 2.2)
    or ``NO CARRIER`` [unverified for EC25 and SIM800]."""
    clcc_urcs: bool
    """Accepts ``AT+CLCC=1`` and then prints ``+CLCC`` on every change (SIMCom, 2.1)."""
    ccinfo: bool
    """Accepts ``AT+QINDCFG="ccinfo",1`` and then prints ``+QIND: "ccinfo",...`` (Quectel, 2.3)."""
    dtmf: Literal["rxdtmf", "qtonedet", "ddet_ms"]
    """``+RXDTMF: 5`` at the key press (2.2), ``+QTONEDET: 53`` at the key press (2.3), or
    ``+DTMF: 5,<ms>`` at the key release (2.4: "digit, ms")."""
    audio: Literal["cpcmreg", "qpcmv", "sound_card"]
    """SIM7600 PCM port after ``AT+CPCMREG=1`` (active call only); EC25 ``AT+QPCMV=1,0``
    (NMEA port) or ``=1,2`` (UAC card); SIM800 analog audio into a USB sound card."""
    downlink_chunk_bytes: int
    """Bytes written at once on a PCM port: SIM7600 one 20 ms frame (2.2); EC25 640 B, the
    chunk callpilot reads (2.3)."""


MODULES: Final = {
    "sim7600": GsmModule(
        vendor="simcom",
        manufacturer="SIMCOM INCORPORATED",
        model="SIMCOM_SIM7600G-H",  # matches the profile's AT+GMM pattern 'SIM7600'
        revision="LE20B05SIM7600G22",  # the firmware telephony.md 2.2 says takes uplink audio
        answer_urc="VOICE CALL: BEGIN",
        end_urc="VOICE CALL: END: {duration}",
        missed_call="missed_call",
        clcc_urcs=True,
        ccinfo=False,
        dtmf="rxdtmf",
        audio="cpcmreg",
        downlink_chunk_bytes=320,
    ),
    "ec25": GsmModule(
        vendor="quectel",
        manufacturer="Quectel",
        model="EC25",
        revision="EC25EFAR06A06M4G",  # [unverified] a typical revision string
        answer_urc="",
        end_urc="",
        missed_call="no_carrier",
        clcc_urcs=False,
        ccinfo=True,
        dtmf="qtonedet",
        audio="qpcmv",
        downlink_chunk_bytes=640,
    ),
    "sim800": GsmModule(
        vendor="simcom",
        manufacturer="SIMCOM_Ltd",
        model="SIMCOM_SIM800L",
        revision="1418B05SIM800L24",  # [unverified] a typical revision string
        answer_urc="",
        end_urc="",
        missed_call="no_carrier",
        clcc_urcs=True,  # SIMCom's AT+CLCC=1 [unverified on SIM800]
        ccinfo=False,
        dtmf="ddet_ms",
        audio="sound_card",
        downlink_chunk_bytes=320,
    ),
}
