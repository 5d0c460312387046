"""V.250 response framing: what a modem says in command state, as typed items.

Bytes from the modem (DCE→DTE) go in, in reads of any size; out come

    FinalResult       the end of a command: OK, ERROR, CONNECT, NO CARRIER, BUSY,
                      NO ANSWER, NO DIALTONE, VCON (verbose ``ATV1`` or numeric ``ATV0``)
    InformationLine   text a command printed before its result (``5601``, a +VSM list)
    Urc               unsolicited lines: RING, caller-ID tags, +CLIP, +CRING, +CMTI,
                      VOICE CALL: END, ... They can arrive between a command and its
                      OK, so they are recognised by content, never by position.
    Echo              the command line echoed back (``ATE1``)
    Garbage           bytes that are not text: NULs after power-up, audio from a
                      modem left in +VRX by a crashed run. A babbling modem gives
                      Garbage items, never an exception.
    DleEvent          a DLE code in command state: Conexant reports rings as
                      ``<DLE>R`` in +FCLASS=8, a USR says ``<DLE>H`` after AT+VLS=1

Framing. Verbose results are ``<CR><LF>OK<CR><LF>``; numeric results are
``0<CR>`` with no LF; an echoed command is ``AT<CR>`` followed by the response.
So CR and LF both end a line and empty lines are dropped: a line is complete as
soon as its CR arrives, without waiting for a LF that a V0 modem never sends.
A digit-only line is a numeric result code only while ``numeric`` is set (the
driver sets it with ``ATV0``): ``ATI0`` answers ``5601`` as information text, and
"0<CR>" cannot be told from information text "0<CR><LF>" until the next byte
comes, which may be seconds later.

Sans-I/O: the parser never reads the port or the clock, and keeps only the
unfinished line (and a DLE seen at the end of a read) between ``feed`` calls.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Final, Literal

from appliance.errors import LineError
from appliance.line.dle import DLE, ETX, DleEvent, event_code

_LOGGER = logging.getLogger(__name__)

_CR: Final = 0x0D
_LF: Final = 0x0A
_NUL: Final = 0x00
# The longest real line is a listed SMS PDU in hex (a few hundred characters);
# a "line" longer than this is a binary stream, reported as Garbage so a modem
# streaming audio cannot make the buffer grow without bound.
_MAX_LINE_BYTES: Final = 2048

FinalCode = Literal[
    "OK", "ERROR", "CONNECT", "NO CARRIER", "BUSY", "NO ANSWER", "NO DIALTONE", "VCON"
]

_VERBOSE_FINALS: Final[dict[str, FinalCode]] = {
    "OK": "OK",
    "ERROR": "ERROR",
    "CONNECT": "CONNECT",
    "NO CARRIER": "NO CARRIER",
    "BUSY": "BUSY",
    "NO ANSWER": "NO ANSWER",
    "NO DIALTONE": "NO DIALTONE",
    "NO DIAL TONE": "NO DIALTONE",  # Hayes/USR spelling of the V.250 code
    "VCON": "VCON",  # IS-101/ZyXEL/Rockwell voice connection (+VLS, end of +VTX)
}
# V.250 Table 1 (numeric form). 2 is RING, an unsolicited code, not a final one.
_NUMERIC_FINALS: Final[dict[str, FinalCode]] = {
    "0": "OK",
    "1": "CONNECT",
    "3": "NO CARRIER",
    "4": "ERROR",
    "6": "NO DIALTONE",
    "7": "BUSY",
    "8": "NO ANSWER",
}
_NUMERIC_RING: Final = "2"
_CONNECT_WITH_TEXT: Final = re.compile(r"^CONNECT\s+\S.*$")  # "CONNECT 33600"
_EXTENDED_ERROR: Final = re.compile(r"^\+CM[ES] ERROR:")  # 3GPP final error with a cause
_CID_TAG: Final = re.compile(r"^(DATE|TIME|NMBR|NAME|MESG)\s*=\s*(.*)$")
_NAMED: Final = re.compile(r"^([^:]+):\s*(.*)$")
_EXTENDED_URCS: Final = frozenset(
    {
        "+CLIP",  # caller ID after RING (TS 27.007)
        "+CRING",  # RING with AT+CRC=1
        "+CCWA",  # call waiting
        "+CLCC",  # call list; a URC with SIMCom AT+CLCC=1, and the answer to AT+CLCC
        "+CMTI",  # SMS stored
        "+CMT",  # SMS delivered directly
        "+CDS",  # SMS status report
        "+CUSD",  # USSD answer
        "+RXDTMF",  # SIMCom DTMF with AT+DDET=1
        "+DTMF",  # SIM800 DTMF
        "+QIND",  # Quectel call progress ("ccinfo")
        "+QTONEDET",  # Quectel DTMF
        "+QPCMV",  # Quectel PCM busy/ready
    }
)
_TEXT_URCS: Final = frozenset({"VOICE CALL", "MISSED_CALL"})  # SIMCom call state
_ECHO_PREFIXES: Final = ("AT", "A/")


@dataclass(frozen=True, slots=True)
class FinalResult:
    code: FinalCode  # +CME/+CMS ERROR are "ERROR", "CONNECT 33600" is "CONNECT"
    numeric: bool  # came as a V0 digit
    text: str = field(default="", compare=False)
    """The line as received: "CONNECT 33600", "+CME ERROR: 10", "0"."""


@dataclass(frozen=True, slots=True)
class InformationLine:
    text: str


@dataclass(frozen=True, slots=True)
class Urc:
    name: str  # "RING", "DATE", "NMBR", "+CLIP", "VOICE CALL", ...
    value: str  # what follows the name: "0117", '"+1503...",145,"",0,"",0', "END: 000008"
    line: str = field(default="", compare=False)
    """The line as received, for the caller-ID collector and the raw call log."""


@dataclass(frozen=True, slots=True)
class Echo:
    text: str  # the command line the modem echoed


@dataclass(frozen=True, slots=True)
class Garbage:
    data: bytes  # raw bytes that are not a text line


AtItem = FinalResult | InformationLine | Urc | Echo | Garbage | DleEvent


def format_command(cmd: str) -> bytes:
    """A command line ready to write: ``"AT+FCLASS=8"`` → ``b"AT+FCLASS=8\\r"``.

    Not for ``+++`` (no CR, guard time on both sides) nor SMS bodies (end with
    Ctrl-Z); those are written raw by the driver.
    """
    if not cmd or not cmd.isascii() or not cmd.isprintable():
        raise LineError("at-command-invalid", f"not a printable ASCII command line: {cmd!r}")
    return cmd.encode("ascii") + b"\r"


class AtParser:
    """Split the modem's command-state output into typed items.

    ``echo``: the modem echoes commands (``ATE1``; on after ``ATZ`` on most
    models): lines starting with ``AT`` are reported as ``Echo``.
    ``numeric``: results are numeric (``ATV0``).
    ``expect_echo(cmd)``: the next line equal to ``cmd`` is its echo, whatever
    ``echo`` says; forgotten at the next final result.
    """

    def __init__(self, *, echo: bool = False, numeric: bool = False) -> None:
        self.echo = echo
        self.numeric = numeric
        self._line = bytearray()
        self._after_dle = False
        self._expected_echo: str | None = None
        self._items: list[AtItem] = []

    def expect_echo(self, cmd: str) -> None:
        self._expected_echo = cmd.strip()

    def feed(self, chunk: bytes) -> list[AtItem]:
        """Items completed by this read; an unfinished line waits for the next."""
        self._items = []
        for byte in chunk:
            if self._after_dle:
                self._after_dle = False
                if byte == ETX or 0x20 <= byte <= 0x7E:
                    self._items.append(DleEvent(event_code(byte), byte))
                    continue
                # Not a DLE code: both bytes are noise, and the byte may be the
                # CR that ends this line, so it is handled as usual below.
                self._line.append(DLE)
            if byte == DLE:
                self._after_dle = True
            elif byte in (_CR, _LF):
                self._end_line()
            else:
                self._line.append(byte)
                if len(self._line) >= _MAX_LINE_BYTES:
                    self._garbage(bytes(self._line))
                    self._line.clear()
        items, self._items = self._items, []
        return items

    def _end_line(self) -> None:
        raw = bytes(self._line)
        self._line.clear()
        if _NUL in raw:
            # NULs arrive after power-up and port opening; they are noise around
            # real text, which is still read.
            self._garbage(bytes([_NUL]) * raw.count(_NUL))
            raw = raw.replace(b"\x00", b"")
        if not raw.strip():
            return
        if not all(0x20 <= byte <= 0x7E or byte == 0x09 for byte in raw):
            self._garbage(raw)
            return
        self._items.append(self._classify(raw.decode("ascii").strip()))

    def _garbage(self, data: bytes) -> None:
        _LOGGER.debug("modem sent %d bytes that are not a text line", len(data))
        if self._items and isinstance(self._items[-1], Garbage):
            self._items[-1] = Garbage(self._items[-1].data + data)
        else:
            self._items.append(Garbage(data))

    def _classify(self, text: str) -> AtItem:
        if self._expected_echo is not None and text == self._expected_echo:
            self._expected_echo = None
            return Echo(text)
        if self.echo and text[:2].upper() in _ECHO_PREFIXES:
            return Echo(text)
        final = self._final(text)
        if final is not None:
            self._expected_echo = None  # the command is over; its echo is not coming
            return final
        return self._unsolicited(text) or InformationLine(text)

    def _final(self, text: str) -> FinalResult | None:
        if text in _VERBOSE_FINALS:
            return FinalResult(_VERBOSE_FINALS[text], False, text)
        if _CONNECT_WITH_TEXT.match(text):
            return FinalResult("CONNECT", False, text)
        if _EXTENDED_ERROR.match(text):
            return FinalResult("ERROR", False, text)
        if self.numeric and text in _NUMERIC_FINALS:
            return FinalResult(_NUMERIC_FINALS[text], True, text)
        return None

    def _unsolicited(self, text: str) -> Urc | None:
        if text == "RING" or text.startswith("RING "):
            return Urc("RING", text[4:].strip(), text)
        if self.numeric and text == _NUMERIC_RING:
            return Urc("RING", "", text)
        if match := _CID_TAG.match(text):
            return Urc(match.group(1), match.group(2).strip(), text)
        if match := _NAMED.match(text):
            name, value = match.group(1).strip(), match.group(2).strip()
            if name in _EXTENDED_URCS or name in _TEXT_URCS:
                return Urc(name, value, text)
        return None
