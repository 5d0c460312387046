"""The command state of a simulated voice modem: V.250 front end and the V.253 voice commands.

V.250 (telephony.md 6.3): echo (``E``), verbose or numeric results (``V``), quiet
(``Q``), S-registers, ``A/`` repeat, case-insensitive ``AT``, chained basic
commands (``ATE0V1``) and ``;``-chained extended ones, characters before ``AT``
discarded, unknown commands and over-long lines ``ERROR``.

V.253 (1.4-1.8): ``+FCLASS``, ``+VCID``, ``+VSM``, ``+VSD``, ``+VLS``, ``+VTS``,
``+VRX``/``+VTX``; voice commands answer ``ERROR`` outside ``+FCLASS=8``. What
differs between chipsets comes from the profile (``+VSM`` long form, ``+VTS``
quirks) and ``identities`` (``ATI`` texts, the ``+VSM=?`` listing).

The engine owns the settings; the hook, the streams and the line belong to the
``VoiceDevice`` it drives. Its parser is its own (``atcommand``), not the
driver's: the two implementations check each other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Literal, Protocol

from appliance.line.profile import ModemProfile
from appliance.line.sim.atcommand import CommandError, extended_end, ints, normalize, split_extended
from appliance.line.sim.identities import Format, Identity

_MAX_LINE: Final = 255  # V.250 command line buffer; longer lines are an ERROR
_DTMF_KEYS: Final = frozenset("0123456789*#ABCD")
_NUMERIC: Final = {"OK": 0, "CONNECT": 1, "RING": 2, "NO CARRIER": 3, "ERROR": 4}  # V.250 V0 codes
_S_DEFAULTS: Final = {0: 0, 1: 0, 3: 13, 4: 10, 5: 8, 7: 50, 12: 50}


class VoiceDevice(Protocol):
    """What the command engine drives: the hook, the streams, the clock."""

    def now(self) -> float: ...

    def in_command_state(self) -> bool: ...

    def hook(self, off_hook: bool) -> None: ...

    def select_line(self, device: int) -> None: ...

    def data_answer(self) -> None: ...

    def open_stream(self, kind: Literal["vrx", "vtx"]) -> None:
        """Raises ``CommandError`` when the modem is on-hook."""

    def reply_later(self, at: float, reply: bytes) -> None: ...

    def play_tone(self, freqs_hz: tuple[float, ...], duration_s: float) -> None: ...


class AtEngine:
    def __init__(
        self, profile: ModemProfile, identity: Identity, device: VoiceDevice, emit: Callable[[bytes], None]
    ) -> None:
        self._profile = profile
        self._id = identity
        self._device = device
        self._emit = emit
        self._buffer = bytearray()
        self._last_line = ""
        self._inject: list[tuple[str, bytes]] = []
        self.reset()

    def reset(self) -> None:
        """Power-on / ``ATZ`` settings: echo on, verbose, data class, default format."""
        self.echo = True
        self.verbose = True
        self.quiet = False
        self.s = dict(_S_DEFAULTS)
        self.fclass = 0
        self.vcid = 0
        self.vsm = self._id.default_vsm
        self.vsm_rate = 8000
        self.vsd = (self._profile.voice.vsd_sensitivity if self._profile.voice else 0, 0)
        self.vls = 0
        self._buffer.clear()

    def inject_before_reply(self, command_prefix: str, data: bytes) -> None:
        """Fault: ``data`` goes out between the next command starting so and its answer."""
        self._inject.append((normalize(command_prefix), data))

    # --- output -------------------------------------------------------------------------

    def crlf(self) -> bytes:
        return bytes((self.s[3], self.s[4]))

    def info(self, text: str) -> bytes:
        line = text.encode("latin-1")
        if self.verbose:
            return self.crlf() + line + self.crlf()
        return line + self.crlf()

    def result(self, name: str) -> bytes:
        if self.quiet:
            return b""
        if self.verbose:
            return self.info(name)
        return str(_NUMERIC[name]).encode() + bytes((self.s[3],))

    def format(self, cml: int | None = None) -> Format | None:
        cml = self.vsm if cml is None else cml
        return next((f for f in self._id.formats if f.cml == cml), None)

    def current_format(self) -> Format:
        fmt = self.format()
        assert fmt is not None  # _set_vsm accepts only listed formats
        return fmt

    def bytes_per_s(self) -> int:
        return self.current_format().bytes_per_s(self.vsm_rate)

    # --- input ----------------------------------------------------------------------------

    def feed(self, data: bytes) -> bytes:
        """Command-state bytes; returns those after a command that left command state."""
        for i, byte in enumerate(data):
            if self.echo:
                self._emit(bytes((byte,)))
            if byte == self.s[3]:
                line = self._buffer.decode("latin-1")
                self._buffer.clear()
                self._execute_line(line)
            elif byte == self.s[5]:
                if self._buffer:
                    self._buffer.pop()
            elif 0x20 <= byte < 0x7F:
                self._buffer.append(byte)
                if self._buffer.upper() == b"A/":
                    self._buffer.clear()
                    self._execute_line(self._last_line)
                elif len(self._buffer) > _MAX_LINE:
                    self._buffer.clear()
                    self._emit(self.result("ERROR"))
            if not self._device.in_command_state():
                return data[i + 1 :]
        return b""

    def _execute_line(self, line: str) -> None:
        start = line.upper().find("AT")
        if start < 0:
            return  # V.250: characters before the "AT" prefix are discarded
        self._last_line = line[start:]
        body = normalize(line[start + 2 :])
        self._emit(self._injected("AT" + body))
        info: list[bytes] = []
        self._reply_at: float | None = None
        try:
            outcome = self._execute_body(body, info)
        except CommandError:
            self._emit(b"".join(info) + self.result("ERROR"))
            return
        reply = b"".join(info) + (self.result(outcome) if outcome else b"")
        if self._reply_at is not None:
            self._device.reply_later(self._reply_at, reply)
        else:
            self._emit(reply)

    def _injected(self, command: str) -> bytes:
        for i, (prefix, data) in enumerate(self._inject):
            if command.startswith(prefix):
                del self._inject[i]
                return data
        return b""

    def _execute_body(self, body: str, info: list[bytes]) -> str | None:
        """Run the commands of one line; the final result name, or None for no answer."""
        pos = 0
        while pos < len(body):
            char = body[pos]
            if char == ";":
                pos += 1
            elif char in "+-!#":
                end = extended_end(body, pos)
                outcome = self._extended(body[pos:end], info)
                pos = end
                if outcome != "OK":
                    return outcome
            else:
                pos, outcome = self._basic(body, pos, info)
                if outcome != "OK":
                    return outcome
        return "OK"

    def _basic(self, body: str, pos: int, info: list[bytes]) -> tuple[int, str | None]:
        letter = body[pos]
        pos += 1
        if letter == "&":
            if pos >= len(body):
                raise CommandError
            letter = "&" + body[pos]
            pos += 1
        if letter == "S":
            return self._s_register(body, pos, info)
        digits_end = pos
        while digits_end < len(body) and body[digits_end].isdigit():
            digits_end += 1
        value = int(body[pos:digits_end]) if digits_end > pos else 0
        pos = digits_end
        match letter:
            case "E" | "V" | "Q" if value > 1:
                raise CommandError
            case "E":
                self.echo = value == 1
            case "V":
                self.verbose = value == 1
            case "Q":
                self.quiet = value == 1
            case "Z" | "&F":
                self._device.hook(False)
                self.reset()
            case "I":
                text = self._id.info.get(f"I{value}")
                if text is None:
                    raise CommandError
                info.append(self.info(text))
            case "H":
                if value > 1:
                    raise CommandError
                self._device.hook(value == 1)
                if value == 0:
                    self.vls = 0
            case "A":
                return len(body), self._answer()
            case "L" | "M" | "X" | "&C" | "&D" | "&K":
                pass  # speaker, result set, modem-control lines: accepted, no effect here
            case _:
                raise CommandError  # includes D (dialling) and O: not simulated
        return pos, "OK"

    def _answer(self) -> str | None:
        if self.fclass == 8:
            self._device.hook(True)
            return "OK"
        # Data class: answer tone into the line (the caller hears fax tones, 1.8),
        # no carrier ever comes, NO CARRIER after S7 seconds.
        self._device.data_answer()
        return None

    def _s_register(self, body: str, pos: int, info: list[bytes]) -> tuple[int, str]:
        end = pos
        while end < len(body) and body[end].isdigit():
            end += 1
        if end == pos:
            raise CommandError
        reg = int(body[pos:end])
        if reg not in self.s:
            raise CommandError
        if body[end : end + 1] == "?":
            info.append(self.info(f"{self.s[reg]:03d}"))
            return end + 1, "OK"
        if body[end : end + 1] == "=":
            vend = end + 1
            while vend < len(body) and body[vend].isdigit():
                vend += 1
            if vend == end + 1 or int(body[end + 1 : vend]) > 255:
                raise CommandError
            self.s[reg] = int(body[end + 1 : vend])
            return vend, "OK"
        return end, "OK"

    def _extended(self, command: str, info: list[bytes]) -> str | None:
        name, op, args = split_extended(command)
        voice = name.startswith("+V") and name != "+VCID"  # caller ID is set up in data class (1.4)
        if voice and self.fclass != 8:
            raise CommandError  # V.253: voice commands answer ERROR outside voice mode
        if name in self._id.vendor_commands:
            return "OK"
        if name in self._id.info and op == "":
            info.append(self.info(self._id.info[name]))
            return "OK"
        match name, op:
            case "+FCLASS", "=?":
                info.append(self.info("0,8"))
            case "+FCLASS", "?":
                info.append(self.info(str(self.fclass)))
            case "+FCLASS", "=" if args in ("0", "8"):
                self.fclass = int(args)
            case "+VCID", "=" if args in ("0", "1"):
                self.vcid = int(args)
            case "+VCID", "?":
                info.append(self.info(str(self.vcid)))
            case "+VCID", "=?":
                info.append(self.info("(0,1)"))
            case "+VSM", "=?":
                info.extend(self.info(f.listing) for f in self._id.formats)
            case "+VSM", "?":
                long_form = ",0,0" if self._profile.voice and self._profile.voice.vsm_long_form else ""
                info.append(self.info(f"{self.vsm},{self.vsm_rate}{long_form}"))
            case "+VSM", "=":
                self._set_vsm(args)
            case "+VSD", "=?":
                info.append(self.info(self._id.vsd_range))
            case "+VSD", "=":
                values = ints(args, 2)
                self.vsd = (values[0], values[1])
            case "+VSD", "?":
                info.append(self.info(f"{self.vsd[0]},{self.vsd[1]}"))
            case ("+VGT" | "+VGR" | "+VIT"), "=":
                ints(args, 1)
            case "+VLS", "=":
                (device,) = ints(args, 1)
                if device > 13:
                    raise CommandError
                self.vls = device
                self._device.select_line(device)
            case "+VLS", "?":
                info.append(self.info(str(self.vls)))
            case "+VTS", "=":
                return self._tone(args)
            case "+VRX", "":
                self._device.open_stream("vrx")
                return "CONNECT"
            case "+VTX", "":
                self._device.open_stream("vtx")
                return "CONNECT"
            case "+IFC", "=":
                pass
            case _:
                raise CommandError  # includes +VTR and +VCID=2: not simulated
        return "OK"

    def _set_vsm(self, args: str) -> None:
        values = ints(args, None)
        long_form = self._profile.voice is not None and self._profile.voice.vsm_long_form
        if not (1 <= len(values) <= 2 or (long_form and len(values) == 4 and values[2:] == [0, 0])):
            raise CommandError  # 6.6: a 4-argument +VSM is an ERROR on the USR
        fmt = self.format(values[0])
        rate = values[1] if len(values) > 1 else 8000
        if fmt is None or rate not in fmt.rates:
            raise CommandError
        self.vsm, self.vsm_rate = values[0], rate

    def _tone(self, args: str) -> str | None:
        quirks = self._profile.quirks
        if args.startswith("["):
            f1, f2, duration = ints(args.strip("[]"), 3)
            if quirks.vts_single_tone_rejected and (f1 == 0 or f2 == 0):
                raise CommandError
            self._device.play_tone(tuple(float(f) for f in (f1, f2) if f), duration / 100)
            self._reply_at = self._device.now() + duration / 100  # OK comes after the tone (1.8)
            return "OK"
        if len(args) == 1 and args in _DTMF_KEYS:
            if quirks.vts_digit_unsupported:
                return None  # 1.8: the USR never answers AT+VTS=<digit>
            self._reply_at = self._device.now() + 0.1
            return "OK"
        raise CommandError
