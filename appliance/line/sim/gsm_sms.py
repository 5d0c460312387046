"""The simulated module's SMS text mode (telephony.md 2.5): prompt, body, Ctrl-Z, result.

``AT+CMGS="<number>"`` answers the ``"> "`` prompt with no line terminator; the
body follows until Ctrl-Z (send) or ESC (abandon). In ``AT+CSCS="UCS2"`` the
number and the body are UTF-16BE hex (odd length: ``+CMS ERROR: 304``). The
``+CMGS: <mr>`` result comes ``delay_s`` later, after the "network" took it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from appliance.line.sim.atcommand import CommandError

_MAX_BODY: Final = 1024  # SMS body bytes before the module gives up
_CTRL_Z: Final = 0x1A
_ESC: Final = 0x1B


@dataclass(frozen=True, slots=True)
class SentSms:
    number: str
    text: str
    charset: str  # the AT+CSCS in force: "GSM" or "UCS2"
    dcs: int  # the 4th AT+CSMP parameter (8 = UCS2)


class SmsEngine:
    """One SMS being typed at a time; results through ``reply`` (a line) and ``later``."""

    def __init__(
        self, *, delay_s: float, reply: Callable[[str], None], later: Callable[[float, Callable[[], None]], None]
    ) -> None:
        self._delay_s = delay_s
        self._reply = reply
        self._later = later
        self._body: bytearray | None = None
        self._number = ""
        self._charset = "GSM"
        self._dcs = 0
        self._ref = 0
        self.sent: list[SentSms] = []

    @property
    def typing(self) -> bool:
        return self._body is not None

    def reset(self) -> None:
        self._body = None

    def start(self, args: str, *, text_mode: bool, charset: str, dcs: int) -> str | None:
        """``AT+CMGS=<args>``: None once the prompt is out, else the result line."""
        if not text_mode:
            raise CommandError  # PDU mode is not simulated
        try:
            self._number = _decode(args.split(",")[0].strip('"'), charset)
        except ValueError:
            return "+CMS ERROR: 304"
        self._charset, self._dcs = charset, dcs
        self._body = bytearray()
        return None

    def on_byte(self, byte: int) -> None:
        assert self._body is not None
        if byte == _ESC:
            self._body = None
            self._reply("OK")
        elif byte == _CTRL_Z:
            raw, self._body = bytes(self._body), None
            try:
                text = _decode(raw.decode("latin-1").replace("\r", "").replace("\n", ""), self._charset)
            except ValueError:
                self._reply("+CMS ERROR: 304")  # invalid PDU mode parameter / text
                return
            self.sent.append(SentSms(number=self._number, text=text, charset=self._charset, dcs=self._dcs))
            self._ref = (self._ref + 1) % 256
            ref = self._ref
            self._later(self._delay_s, lambda: self._reply(f"+CMGS: {ref}\r\n\r\nOK"))
        elif len(self._body) >= _MAX_BODY:
            self._body = None
            self._reply("+CMS ERROR: 305")
        else:
            self._body.append(byte)


def _decode(text: str, charset: str) -> str:
    """Text as the DTE typed it in ``charset``; ValueError when malformed."""
    if charset == "UCS2":
        if len(text) % 4:
            raise ValueError("UCS2 hex needs 4 digits per character")
        return bytes.fromhex(text).decode("utf-16-be")
    if not text.isascii():
        raise ValueError("GSM text mode takes 7-bit characters")
    return text
