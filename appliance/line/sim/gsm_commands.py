"""The simulated GSM module's AT command set (telephony.md 2.1-2.5).

A mixin of ``GsmModemSim``: the command-line front end (echo, one command per
line, V.250 "AT" prefix) and what each command does to the module's settings.
Commands of the other vendor (``AT+CPCMREG`` on a Quectel, ``AT+QPCMV`` on a
SIMCom) answer ERROR, as on the real modules. The call and audio consequences
(answer, hang up, audio on) are the simulator's own methods.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Final, Literal

from appliance.line.sim.atcommand import CommandError, normalize, split_extended
from appliance.line.sim.gsm_modules import GsmModule
from appliance.line.sim.gsm_sms import SmsEngine

if TYPE_CHECKING:
    from appliance.line.sim.gsm_audio import CardEnd

_MAX_LINE: Final = 512  # longer command lines answer ERROR
_USBCFG_FIELDS: Final = 10  # "USBCFG",vid,pid + 7 interface flags, the last one UAC (2.3)


class GsmCommands:
    """What the module does with each command line; state lives in ``GsmModemSim``."""

    module: GsmModule
    _name: str
    _line: bytearray
    _commands: list[str]
    _sms: SmsEngine
    _card: CardEnd | None
    _card_ready_delay_s: float
    _vanished: bool
    _echo: bool
    _clip: bool
    _crc: bool
    _clcc_urcs: bool
    _ccinfo: bool
    _cvhu: int
    _dtmf_on: bool
    _dtmf_ms: bool
    _route: Literal["serial", "card"] | None
    _cmgf: int
    _cscs: str
    _dcs: int
    _refusals_left: int
    _pcm_refusals: int
    _pcm_disables: int

    # Provided by GsmModemSim.
    _send: Callable[[bytes], None]
    _urc: Callable[[str], None]
    _after: Callable[[float, Callable[[], None]], None]
    _answer: Callable[[], str | None]
    _end_call_by_dte: Callable[[], None]
    _active: Callable[[], bool]
    _update_audio: Callable[[], None]
    _clcc_lines: Callable[[], list[str]]

    def _on_control_bytes(self, data: bytes) -> None:
        echo = bytearray()
        for byte in data:
            if self._sms.typing:
                self._sms.on_byte(byte)
                continue
            if self._echo:
                echo.append(byte)
            if byte == 0x0D:
                if echo:
                    self._send(bytes(echo))  # the echo comes before the answer
                    echo.clear()
                line = self._line.decode("latin-1")
                self._line.clear()
                self._execute_line(line)
            elif byte == 0x08:
                if self._line:
                    self._line.pop()
            elif 0x20 <= byte < 0x7F:
                self._line.append(byte)
                if len(self._line) > _MAX_LINE:
                    self._line.clear()
                    self._urc("ERROR")
        if echo:
            self._send(bytes(echo))

    def _execute_line(self, line: str) -> None:
        start = line.upper().find("AT")
        if start < 0:
            return  # V.250: characters before the "AT" prefix are discarded
        self._commands.append(line[start:])
        info: list[str] = []
        try:
            outcome = self._execute(normalize(line[start + 2 :]), info)
        except CommandError:
            outcome = "ERROR"
        for text in info:
            self._urc(text)
        if outcome:
            self._urc(outcome)

    def _execute(self, body: str, info: list[str]) -> str | None:
        """One command (no ';' chains: the driver sends one per line); the result, or None."""
        if body in ("", "Z", "V1", "Q0", "&F"):
            return "OK"
        if body in ("E0", "E1", "E"):
            self._echo = body == "E1"
            return "OK"
        if body in ("I", "I0"):
            module = self.module
            if module.vendor == "simcom":
                info.extend((f"Manufacturer: {module.manufacturer}", f"Model: {module.model}"))
            else:  # Quectel prints the bare names
                info.extend((module.manufacturer, module.model))
            info.append(f"Revision: {module.revision}")
            return "OK"
        if body == "A":
            return self._answer()
        if body in ("H", "H0"):
            if self._cvhu == 0:
                self._end_call_by_dte()
            return "OK"  # with AT+CVHU=1 ATH does not end a voice call (2.1)
        if not body.startswith("+"):
            raise CommandError
        return self._extended(*split_extended(body), info)

    def _extended(self, name: str, op: str, args: str, info: list[str]) -> str | None:
        simcom, quectel = self.module.vendor == "simcom", self.module.vendor == "quectel"
        match name, op:
            case ("+CGMM" | "+GMM"), "":
                info.append(self.module.model)
            case ("+CGMI" | "+GMI"), "":
                info.append(self.module.manufacturer)
            case ("+CGMR" | "+GMR"), "":
                info.append(f"+CGMR: {self.module.revision}" if simcom else f"Revision: {self.module.revision}")
            case "+CPIN", "?":
                info.append("+CPIN: READY")
            case "+CREG", "?":
                info.append("+CREG: 0,1")
            case "+CSQ", "":
                info.append("+CSQ: 20,99")
            case ("+CMEE" | "+CNMI" | "+VTS"), "=":
                pass
            case "+QVTS", "=" if quectel:
                pass
            case "+CLIP", "=":
                self._clip = _flag(args)
            case "+CRC", "=":
                self._crc = _flag(args)
            case "+CLCC", "=" if self.module.clcc_urcs:
                self._clcc_urcs = _flag(args)
            case "+CLCC", "":
                info.extend(self._clcc_lines())
            case "+CVHU", "=":
                self._cvhu = int(_flag(args))
            case ("+CHUP", "") | ("+QHUP", ""):
                if name == "+QHUP" and not quectel:
                    raise CommandError
                self._end_call_by_dte()
            case "+DDET", "=" if simcom:
                self._ddet(args)
            case "+QTONEDET", "=" if quectel:
                self._dtmf_on = _flag(args)
            case "+QINDCFG", "=" if quectel:
                kind, _, rest = args.partition(",")
                if kind.strip('"').lower() != "ccinfo":
                    raise CommandError
                self._ccinfo = _flag(rest.split(",")[0])
            case "+CPCMFRM", "=" if self.module.audio == "cpcmreg":
                if args != "0":
                    raise CommandError  # 16 kHz frames are not simulated
            case "+CPCMREG", "=" if self.module.audio == "cpcmreg":
                return self._cpcmreg(args)
            case "+QPCMV", "=" if self.module.audio == "qpcmv":
                return self._qpcmv(args)
            case ("+QAUDMOD" | "+QGPSCFG"), "=" if quectel:
                pass
            case "+QCFG", "=" if quectel:
                fields = args.split(",")
                if fields[0].strip('"').upper() == "USBCFG" and len(fields) != _USBCFG_FIELDS:
                    raise CommandError  # EC20 before A15 lacks the 7th flag: wrong arity is ERROR (2.3)
            case "+CMGF", "=":
                self._cmgf = int(_flag(args))
            case "+CSCS", "=":
                charset = args.strip('"').upper()
                if charset not in ("GSM", "UCS2", "IRA"):
                    raise CommandError
                self._cscs = charset
            case "+CSMP", "=":
                values = args.split(",")
                if len(values) != 4 or not all(v.isdigit() for v in values):
                    raise CommandError
                self._dcs = int(values[3])
            case "+CMGS", "=":
                outcome = self._sms.start(args, text_mode=self._cmgf == 1, charset=self._cscs, dcs=self._dcs)
                if outcome is None:
                    self._send(b"\r\n> ")  # no line terminator (2.5)
                return outcome
            case _:
                raise CommandError
        return "OK"

    def _ddet(self, args: str) -> None:
        """SIM7600 ``AT+DDET=1``; SIM800 ``AT+DDET=<mode>,<interval>,<report>,<ssdet>`` (2.4)."""
        values = args.split(",")
        if not all(v.isdigit() for v in values) or len(values) > 4:
            raise CommandError
        self._dtmf_on = _flag(values[0])
        self._dtmf_ms = len(values) >= 3 and values[2] == "1"


    def _refused(self) -> bool:
        if self._refusals_left:
            self._refusals_left -= 1
            self._pcm_refusals += 1
            return True
        return False

    def _cpcmreg(self, args: str) -> str:
        if args.split(",")[0] == "0":  # "0" or "0,1" (force)
            self._route = None
            self._pcm_disables += 1
            self._update_audio()
            return "OK"
        if args != "1":
            raise CommandError
        if not self._active():
            self._pcm_refusals += 1
            return "ERROR"
        if self._refused():
            return "ERROR"
        self._route = "serial"
        self._update_audio()
        return "OK"

    def _qpcmv(self, args: str) -> str:
        values = args.split(",")
        if values == ["0"]:
            self._route = None
            self._pcm_disables += 1
            self._update_audio()
            return "OK"
        if len(values) != 2 or values[0] != "1" or values[1] not in ("0", "2"):
            raise CommandError
        if self._refused():
            return "ERROR"
        self._route = "serial" if values[1] == "0" else "card"
        if self._route == "card" and self._card is not None and self._card_ready_delay_s > 0:
            # "The playback device may not be ready right after QPCMV=1,2" (2.3).
            card = self._card.device
            card.unplug()
            self._after(self._card_ready_delay_s, lambda: None if self._vanished else card.replug())
        self._update_audio()
        return "OK"

def _flag(args: str) -> bool:
    if args not in ("0", "1"):
        raise CommandError
    return args == "1"

