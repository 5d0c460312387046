"""A simulated analog USB voice modem (V.250 / V.253) speaking its real bytes on a pty.

The driver opens ``VoiceModemSim.path`` with ``serial.serial_for_url`` exactly as it
opens /dev/ttyACM0; everything it sees is what a USR5637 or a Conexant CX930xx
sends (telephony.md 1, 6.2, 6.3): echo, verbose or numeric results, RING and
caller-ID lines, ``CONNECT`` then DLE-shielded audio with in-band events.

Independence. The simulator has its own DLE codec (``_shield``, ``DteStream``)
and its own command-line parser: it shares no parsing code with
``appliance.line.dle``/``at``/``callerid``, so a bug in one is caught by the
other. It reads only chipset facts from ``appliance.line.profile`` (ring style,
caller-ID spacing, DLE codes, quirk flags); the answers a profile file does not
hold (``ATI3`` text, the ``+VSM=?`` listing) are in ``IDENTITIES``, from 6.2.

It runs on its own thread (``DeviceSim`` says why) with a 2 ms ``select`` poll,
which fits a 2-core CI machine (6.1).

Time. Everything is paced by the injected clock's ``monotonic()``: 8000 B/s of
audio, ring cadence, caller-ID delay, ``+VTS`` durations. With ``ScaledClock(10)``
a 6 s ring period takes 0.6 s of real time, and the driver, given the same clock,
paces its writes the same way (telephony.md 6.1).

Caller audio (``say``) is in the modem's current ``+VSM`` format; it starts on the
line when the call is answered and flows at the line rate whether or not the box
records (a half-duplex modem in ``+VTX`` loses what the caller says meanwhile).
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import select
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Literal

from appliance.clock import Clock
from appliance.line.profile import ModemProfile, builtin_profiles
from appliance.line.sim.atcommand import CommandError, extended_end, ints, normalize, split_extended
from appliance.line.sim.dlecodec import DteStream, shield
from appliance.line.sim.identities import IDENTITIES, Format
from appliance.line.sim.device import DeviceSim
from appliance.line.sim.pty_endpoint import PtyEndpoint, TranscriptEntry


_DLE: Final = 0x10
_ETX: Final = 0x03
_SUB: Final = 0x1A
_CAN: Final = 0x18
_XON_XOFF: Final = frozenset((0x11, 0x13))  # the only DTE bytes that do not abort +VRX (1.7)
_POLL_S: Final = 0.002  # real seconds; 16 bytes of audio at 1x, well under the driver's 20 ms
_MAX_LINE: Final = 255  # V.250 command line buffer; longer lines are an ERROR
_OUT_LIMIT: Final = 16_384  # pending DCE→DTE bytes before +VRX audio is dropped (DTE not reading)
_DTMF_REPEAT_S: Final = 0.07  # shielded style repeats the digit every 70 ms while held (1.7)
_BUSY_REPEAT_S: Final = 4.0  # <DLE>b repeated every ~4 s (1.7)
_DTMF_KEYS: Final = frozenset("0123456789*#ABCD")
_NUMERIC: Final = {"OK": 0, "CONNECT": 1, "RING": 2, "NO CARRIER": 3, "ERROR": 4}  # V.250 V0 codes


_S_DEFAULTS: Final = {0: 0, 1: 0, 3: 13, 4: 10, 5: 8, 7: 50, 12: 50}


@dataclass
class _Call:
    number: str | None
    name: str | None
    cid: str
    state: Literal["ringing", "connected", "gone"] = "ringing"
    rings: int = 0
    audio: bytearray = field(default_factory=bytearray)
    heard_answer_tone: bool = False


@dataclass(frozen=True, slots=True)
class SimStats:
    """A snapshot of the simulator, for assertions (telephony.md 6.7)."""

    mode: str
    fclass: int
    off_hook: bool
    vsm: tuple[int, int]
    call_state: str | None
    rings: int
    tx_overruns: int
    tx_overrun_bytes: int
    tx_underruns: int
    rx_dropped_bytes: int
    data_answers: int
    protocol_violations: tuple[str, ...]


class VoiceModemSim(DeviceSim):
    """One simulated voice modem on its own pty, run by its own thread."""

    kind = "modem"

    def __init__(
        self,
        profile_name: str = "usr5637",
        *,
        clock: Clock,
        dtmf_style: Literal["shielded", "simple"] | None = None,
        tx_buffer_bytes: int = 1536,
        ring_period_s: float = 6.0,
        cid_delay_s: float = 0.9,
        rings_until_abandon: int = 8,
        hangup_event_delay_s: float = 0.5,
        vrx_requires_vls5: bool = False,
        tx_end_requires_triple_dle: bool = False,
    ) -> None:
        profile = builtin_profiles().get(profile_name)
        if profile is None or profile.kind != "analog" or profile_name not in IDENTITIES:
            raise ValueError(f"no analog modem simulation for profile {profile_name!r}")
        assert profile.dle is not None  # guaranteed for kind == "analog" by ModemProfile
        super().__init__(profile_name)
        self.profile: ModemProfile = profile
        self._dle = profile.dle
        self._id = IDENTITIES[profile_name]
        self._clock = clock
        self._dtmf_style = dtmf_style or profile.dle.dtmf_styles[0]
        if not 256 <= tx_buffer_bytes <= 65536:
            raise ValueError(f"tx_buffer_bytes must be 256-65536, got {tx_buffer_bytes}")
        self._tx_cap = tx_buffer_bytes
        self._ring_period_s = ring_period_s
        self._cid_delay_s = cid_delay_s
        self._rings_until_abandon = rings_until_abandon
        self._hangup_delay_s = hangup_event_delay_s
        self._vrx_requires_vls5 = vrx_requires_vls5
        self._triple_exit = tx_end_requires_triple_dle
        self.endpoint = PtyEndpoint(clock=clock)
        self._out = bytearray()
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._stream_events: list[tuple[float, int, bytes]] = []
        self._heard = bytearray()
        self._violations: list[str] = []
        self._tx_overruns = self._tx_overrun_bytes = self._tx_underruns = 0
        self._rx_dropped = self._data_answers = 0
        self._call: _Call | None = None
        self._line_tone: bytes | None = None  # event a stream reports on start (dial tone/busy)
        self._reset()
        self._mode: Literal["command", "busy", "vrx", "vtx", "data_answer", "unplugged"] = "command"
        self._buffer = bytearray()
        self._last_line = ""
        self._deferred_input = bytearray()
        self._busy_reply = b""
        self._busy_until: float | None = None
        self._line_t = 0.0  # clock time up to which the caller's audio has left the line
        self._dte = DteStream()

    # --- public API (any thread) -----------------------------------------------------

    @property
    def path(self) -> str:
        return self.endpoint.path

    @property
    def clock(self) -> Clock:
        """The clock pacing the simulator; give the same one to the driver under test."""
        return self._clock

    def _close_ports(self) -> None:
        self.endpoint.close()

    def ring(self, number: str | None, name: str | None = None, *, cid: str = "bellcore") -> None:
        """A call arrives: RING every ``ring_period_s``, caller ID per ``cid``.

        ``number`` is digits, ``"P"`` (withheld) or ``"O"`` (unavailable), or None
        for a line without caller ID. ``cid``: ``"bellcore"`` (between the first
        and second RING, 1.5), ``"before_ring"`` (ETSI/UK) or ``"none"``.
        """
        if cid not in ("bellcore", "before_ring", "none"):
            raise ValueError(f"cid must be bellcore, before_ring or none, got {cid!r}")
        self._submit(lambda: self._do_ring(_Call(number=number, name=name, cid=cid)))

    def say(self, audio: bytes) -> None:
        """Queue what the caller says, as bytes in the current ``+VSM`` format."""
        self._submit(lambda: self._queue_audio(bytes(audio)))

    def press(self, digit: str, duration_s: float = 0.1) -> None:
        """The caller presses a key for ``duration_s``; reported only while streaming."""
        if digit not in _DTMF_KEYS:
            raise ValueError(f"not a DTMF key: {digit!r}")
        self._submit(lambda: self._do_press(digit, duration_s))

    def hang_up(self, style: Literal["dial_tone", "busy", "loop_drop", "silence"] | None = None) -> None:
        """The caller hangs up; the line then gives what ``style`` says.

        Default: a loop-current drop where the chipset reports one (``l`` in the
        profile's hang-up codes, Conexant), otherwise dial tone (``<DLE>d``).
        """
        self._submit(lambda: self._do_hang_up(style))

    def unplug(self) -> None:
        """Fault: the USB modem vanishes; the DTE's port fails from now on."""
        self._submit(self._do_unplug)

    def stats(self) -> SimStats:
        with self._lock:
            return SimStats(
                mode=self._mode,
                fclass=self._fclass,
                off_hook=self._off_hook,
                vsm=(self._vsm, self._vsm_rate),
                call_state=self._call.state if self._call else None,
                rings=self._call.rings if self._call else 0,
                tx_overruns=self._tx_overruns,
                tx_overrun_bytes=self._tx_overrun_bytes,
                tx_underruns=self._tx_underruns,
                rx_dropped_bytes=self._rx_dropped,
                data_answers=self._data_answers,
                protocol_violations=tuple(self._violations),
            )

    def heard(self) -> bytes:
        """Audio the caller heard (``+VTX`` bytes after unshielding, in the +VSM format)."""
        with self._lock:
            return bytes(self._heard)

    def transcript(self) -> tuple[TranscriptEntry, ...]:
        return self.endpoint.transcript()

    # --- thread ------------------------------------------------------------------------

    def _ports_open(self) -> bool:
        return not self.endpoint.closed

    def _poll(self) -> object:
        fd = self.endpoint.fileno()
        readable, _, _ = select.select([fd], [fd] if self._out else [], [], _POLL_S)
        return readable

    def _serve(self, ready: object) -> None:
        # Drain to "now" before taking new input: after a stall of this thread
        # the buffer must not look fuller than the modem's would be.
        self._tick(self._clock.monotonic())
        if ready:
            self._on_dte_bytes(self.endpoint.read())
        self._flush()


    def _flush(self) -> None:
        if self._out and not self.endpoint.closed:
            written = self.endpoint.write(bytes(self._out[:4096]))
            del self._out[:written]

    def _at(self, t: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._timers, (t, next(self._seq), action))

    def _tick(self, now: float) -> None:
        while self._timers and self._timers[0][0] <= now:
            _, _, action = heapq.heappop(self._timers)
            action()
        if self._mode == "vrx":
            self._tick_vrx(now)
        elif self._mode == "vtx":
            self._tick_vtx(now)
        elif self._call is not None and self._call.state == "connected":
            self._take_line_audio(now)  # the caller keeps talking; nobody records it

    # --- V.250 front end ------------------------------------------------------------------

    def _reset(self) -> None:
        self._echo = True
        self._verbose = True
        self._quiet = False
        self._s = dict(_S_DEFAULTS)
        self._fclass = 0
        self._vcid = 0
        self._vsm = self._id.default_vsm
        self._vsm_rate = 8000
        self._vsd = (self.profile.voice.vsd_sensitivity if self.profile.voice else 0, 0)
        self._vls = 0
        self._off_hook = False

    def _crlf(self) -> bytes:
        return bytes((self._s[3], self._s[4]))

    def _info(self, text: str) -> bytes:
        line = text.encode("latin-1")
        if self._verbose:
            return self._crlf() + line + self._crlf()
        return line + self._crlf()

    def _result(self, name: str) -> bytes:
        if self._quiet:
            return b""
        if self._verbose:
            return self._info(name)
        return str(_NUMERIC[name]).encode() + bytes((self._s[3],))

    def _on_dte_bytes(self, data: bytes) -> None:
        while data:
            if self._mode == "command":
                data = self._feed_command(data)
            elif self._mode == "vtx":
                data = self._feed_vtx(data)
            elif self._mode == "vrx":
                data = self._feed_vrx(data)
            elif self._mode == "data_answer":  # any character aborts the answer (V.250 A)
                self._end_data_answer()
                data = data[1:]
            elif self._mode == "busy":
                self._deferred_input += data
                return
            else:
                return

    def _feed_command(self, data: bytes) -> bytes:
        for i, byte in enumerate(data):
            if self._echo:
                self._out.append(byte)
            if byte == self._s[3]:
                line = self._buffer.decode("latin-1")
                self._buffer.clear()
                self._execute_line(line)
            elif byte == self._s[5]:
                if self._buffer:
                    self._buffer.pop()
            elif 0x20 <= byte < 0x7F:
                self._buffer.append(byte)
                if self._buffer.upper() == b"A/":
                    self._buffer.clear()
                    self._execute_line(self._last_line)
                elif len(self._buffer) > _MAX_LINE:
                    self._buffer.clear()
                    self._out += self._result("ERROR")
            if self._mode != "command":
                return data[i + 1 :]
        return b""

    def _execute_line(self, line: str) -> None:
        start = line.upper().find("AT")
        if start < 0:
            return  # V.250: characters before the "AT" prefix are discarded
        self._last_line = line[start:]
        body = normalize(line[start + 2 :])
        info: list[bytes] = []
        self._busy_until = None
        try:
            outcome = self._execute_body(body, info)
        except CommandError:
            self._out += b"".join(info) + self._result("ERROR")
            return
        reply = b"".join(info) + (self._result(outcome) if outcome else b"")
        if self._busy_until is not None:
            self._mode = "busy"
            self._busy_reply = reply
            self._at(self._busy_until, self._end_busy)
        else:
            self._out += reply

    def _end_busy(self) -> None:
        self._out += self._busy_reply
        self._mode = "command"
        pending = bytes(self._deferred_input)
        self._deferred_input.clear()
        self._on_dte_bytes(pending)

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
                self._echo = value == 1
            case "V":
                self._verbose = value == 1
            case "Q":
                self._quiet = value == 1
            case "Z" | "&F":
                self._on_hook()
                self._reset()
            case "I":
                text = self._id.info.get(f"I{value}")
                if text is None:
                    raise CommandError
                info.append(self._info(text))
            case "H":
                if value == 0:
                    self._on_hook()
                elif value == 1:
                    self._go_off_hook()
                else:
                    raise CommandError
            case "A":
                return len(body), self._answer_command()
            case "L" | "M" | "X" | "&C" | "&D" | "&K":
                pass  # speaker, result set, modem-control lines: accepted, no effect here
            case _:
                raise CommandError  # includes D (dialling) and O: not simulated
        return pos, "OK"

    def _s_register(self, body: str, pos: int, info: list[bytes]) -> tuple[int, str]:
        end = pos
        while end < len(body) and body[end].isdigit():
            end += 1
        if end == pos:
            raise CommandError
        reg = int(body[pos:end])
        if reg not in self._s:
            raise CommandError
        if body[end : end + 1] == "?":
            info.append(self._info(f"{self._s[reg]:03d}"))
            return end + 1, "OK"
        if body[end : end + 1] == "=":
            vend = end + 1
            while vend < len(body) and body[vend].isdigit():
                vend += 1
            if vend == end + 1 or int(body[end + 1 : vend]) > 255:
                raise CommandError
            self._s[reg] = int(body[end + 1 : vend])
            return vend, "OK"
        return end, "OK"

    def _extended(self, command: str, info: list[bytes]) -> str | None:
        name, op, args = split_extended(command)
        voice = name.startswith("+V") and name != "+VCID"  # caller ID is set up in data class (1.4)
        if voice and self._fclass != 8:
            raise CommandError  # V.253: voice commands answer ERROR outside voice mode
        if name in self._id.vendor_commands:
            return "OK"
        if name in self._id.info and op == "":
            info.append(self._info(self._id.info[name]))
            return "OK"
        match name, op:
            case "+FCLASS", "=?":
                info.append(self._info("0,8"))
            case "+FCLASS", "?":
                info.append(self._info(str(self._fclass)))
            case "+FCLASS", "=" if args in ("0", "8"):
                self._fclass = int(args)
            case "+VCID", "=" if args in ("0", "1"):
                self._vcid = int(args)
            case "+VCID", "?":
                info.append(self._info(str(self._vcid)))
            case "+VCID", "=?":
                info.append(self._info("(0,1)"))
            case "+VSM", "=?":
                info.extend(self._info(f.listing) for f in self._id.formats)
            case "+VSM", "?":
                long_form = ",0,0" if self.profile.voice and self.profile.voice.vsm_long_form else ""
                info.append(self._info(f"{self._vsm},{self._vsm_rate}{long_form}"))
            case "+VSM", "=":
                self._set_vsm(args)
            case "+VSD", "=?":
                info.append(self._info(self._id.vsd_range))
            case "+VSD", "=":
                values = ints(args, 2)
                self._vsd = (values[0], values[1])
            case "+VSD", "?":
                info.append(self._info(f"{self._vsd[0]},{self._vsd[1]}"))
            case ("+VGT" | "+VGR" | "+VIT"), "=":
                ints(args, 1)
            case "+VLS", "=":
                (device,) = ints(args, 1)
                if device > 13:
                    raise CommandError
                self._set_vls(device)
                return "OK"
            case "+VLS", "?":
                info.append(self._info(str(self._vls)))
            case "+VTS", "=":
                return self._tone(args)
            case "+VRX", "":
                return self._start_vrx()
            case "+VTX", "":
                return self._start_vtx()
            case "+IFC", "=":
                pass
            case _:
                raise CommandError  # includes +VTR and +VCID=2: not simulated
        return "OK"

    def _set_vsm(self, args: str) -> None:
        values = ints(args, None)
        long_form = self.profile.voice is not None and self.profile.voice.vsm_long_form
        if not (1 <= len(values) <= 2 or (long_form and len(values) == 4 and values[2:] == [0, 0])):
            raise CommandError  # 6.6: a 4-argument +VSM is an ERROR on the USR
        fmt = self._format(values[0])
        rate = values[1] if len(values) > 1 else 8000
        if fmt is None or rate not in fmt.rates:
            raise CommandError
        self._vsm, self._vsm_rate = values[0], rate

    def _format(self, cml: int | None = None) -> Format | None:
        cml = self._vsm if cml is None else cml
        return next((f for f in self._id.formats if f.cml == cml), None)

    def _bytes_per_s(self) -> int:
        fmt = self._format()
        assert fmt is not None
        return fmt.bytes_per_s(self._vsm_rate)

    def _tone(self, args: str) -> str | None:
        quirks = self.profile.quirks
        if args.startswith("["):
            f1, f2, duration = ints(args.strip("[]"), 3)
            if quirks.vts_single_tone_rejected and (f1 == 0 or f2 == 0):
                raise CommandError
            self._busy_until = self._clock.monotonic() + duration / 100
            return "OK"
        if len(args) == 1 and args in _DTMF_KEYS:
            if quirks.vts_digit_unsupported:
                return None  # 1.8: the USR never answers AT+VTS=<digit>
            self._busy_until = self._clock.monotonic() + 0.1
            return "OK"
        raise CommandError

    # --- hook state, the line and the caller ---------------------------------------------------

    def _set_vls(self, device: int) -> None:
        self._vls = device
        if device % 2 == 1:  # odd +VLS values include the telephone line (1.8)
            self._go_off_hook()
            if self.profile.quirks.dle_h_after_answer:
                self._after_reply(b"\x10H")  # 1.7: USR confirms its own off-hook
        else:
            self._on_hook()

    def _after_reply(self, data: bytes) -> None:
        self._at(self._clock.monotonic(), lambda: self._out.extend(data))

    def _go_off_hook(self) -> None:
        if self._off_hook:
            return
        self._off_hook = True
        call = self._call
        if call is not None and call.state == "ringing":
            call.state = "connected"
            self._line_t = self._clock.monotonic()
        elif call is None or call.state == "gone":
            self._line_tone = b"d" if "d" in self._dle.dial_tone_codes else None

    def _on_hook(self) -> None:
        self._off_hook = False
        self._vls = 0
        self._line_tone = None
        if self._call is not None and self._call.state == "connected":
            self._call.state = "gone"

    def _answer_command(self) -> str | None:
        if self._fclass == 8:
            self._go_off_hook()
            return "OK"
        # Data class: answer tone into the line (the caller hears fax tones, 1.8),
        # no carrier ever comes, NO CARRIER after S7 seconds.
        self._go_off_hook()
        self._data_answers += 1
        if self._call is not None:
            self._call.heard_answer_tone = True
        self._mode = "data_answer"
        self._at(self._clock.monotonic() + self._s[7], self._end_data_answer)
        return None

    def _end_data_answer(self) -> None:
        if self._mode != "data_answer":
            return
        self._on_hook()
        self._mode = "command"
        self._out += self._result("NO CARRIER")

    def _do_ring(self, call: _Call) -> None:
        if self._call is not None and self._call.state != "gone":
            raise RuntimeError("a call is already on the line")
        self._call = call
        now = self._clock.monotonic()
        first_ring = now
        if call.cid == "before_ring":
            self._at(now, lambda: self._send_cid(call))
            first_ring = now + self._cid_delay_s
        self._at(first_ring, lambda: self._ring_once(call))

    def _ring_once(self, call: _Call) -> None:
        if call.state != "ringing" or self._call is not call:
            return
        if self._off_hook:
            call.state = "gone"  # the box is off-hook: the caller gets busy tone
            return
        if call.rings >= self._rings_until_abandon:
            call.state = "gone"
            return
        call.rings += 1
        self._s[1] = call.rings
        now = self._clock.monotonic()
        if self._mode == "command":
            if self._fclass == 8 and self._dle.ring_in_voice_idle == "DLE_R":
                self._out += b"\x10R"
            else:
                self._out += self._result("RING")
        if call.rings == 1 and call.cid == "bellcore":
            self._at(now + self._cid_delay_s, lambda: self._send_cid(call))
        if self._fclass == 0 and self._s[0] and call.rings >= self._s[0] and self._mode == "command":
            self._answer_command()
            return
        self._at(now + self._ring_period_s, lambda: self._ring_once(call))

    def _send_cid(self, call: _Call) -> None:
        if call.state != "ringing" or self._vcid != 1 or call.number is None or self._mode != "command":
            return
        equals = " = " if self.profile.caller_id.equals_spacing == "spaced" else "="
        now = self._clock.now()
        lines = [("DATE", now.strftime("%m%d")), ("TIME", now.strftime("%H%M")), ("NMBR", call.number)]
        if call.name is not None:
            lines.append(("NAME", call.name))
        self._out += b"".join(self._info(f"{tag}{equals}{value}") for tag, value in lines)

    def _queue_audio(self, audio: bytes) -> None:
        if self._call is None or self._call.state == "gone":
            raise RuntimeError("no caller on the line to say anything")
        self._call.audio += audio

    def _take_line_audio(self, now: float, count: int | None = None) -> tuple[bytes, bool]:
        """What the line carries for ``count`` bytes (or up to ``now``): caller audio, then silence."""
        if count is None:
            count = int((now - self._line_t) * self._bytes_per_s())
            if count <= 0:
                return b"", False
        self._line_t = now
        call = self._call
        spoken = b""
        if call is not None and call.state == "connected" and not self._vrx_blocked():
            spoken = bytes(call.audio[:count])
            del call.audio[:count]
        fmt = self._format()
        assert fmt is not None
        return spoken + bytes((fmt.silence,)) * (count - len(spoken)), bool(spoken)

    def _vrx_blocked(self) -> bool:
        return self._mode == "vrx" and self._vrx_requires_vls5 and self._vls != 5

    def _do_press(self, digit: str, duration_s: float) -> None:
        now = self._clock.monotonic()
        code = digit.encode()
        if self._dtmf_style == "simple":
            self._stream_event(now, b"\x10" + code)
            return
        self._stream_event(now, b"\x10/\x10" + code)
        t = now + _DTMF_REPEAT_S
        while t < now + duration_s:
            self._stream_event(t, b"\x10" + code)
            t += _DTMF_REPEAT_S
        self._stream_event(now + duration_s, b"\x10~")

    def _stream_event(self, t: float, data: bytes) -> None:
        """A DCE→DTE event, sent at its time if a voice stream is open then (dropped otherwise)."""
        bisect.insort(self._stream_events, (t, next(self._seq), data))

    def _do_hang_up(self, style: str | None) -> None:
        call = self._call
        if call is None or call.state == "gone":
            raise RuntimeError("no caller on the line to hang up")
        was_connected = call.state == "connected"
        call.state = "gone"
        if not was_connected:
            return  # abandoned while ringing: the rings simply stop
        if style is None:
            style = "loop_drop" if "l" in self._dle.hangup_codes else "dial_tone"
        codes = {
            "dial_tone": self._dle.dial_tone_codes,
            "busy": self._dle.busy_codes,
            "loop_drop": ("l",) if "l" in self._dle.hangup_codes else (),
            "silence": (),
        }[style]
        if codes:
            when = self._clock.monotonic() + self._hangup_delay_s
            self._at(when, lambda: self._line_signal(codes[0].encode(), repeat=style == "busy"))

    def _line_signal(self, code: bytes, *, repeat: bool) -> None:
        if not self._off_hook:
            return
        now = self._clock.monotonic()
        if code != b"l":
            self._line_tone = code  # a tone stays on the line; a new stream reports it again
        if self._mode in ("vrx", "vtx"):
            self._stream_event(now, b"\x10" + code)
        if repeat:
            self._at(now + _BUSY_REPEAT_S, lambda: self._line_signal(code, repeat=True))

    def _do_unplug(self) -> None:
        self._mode = "unplugged"
        self._out.clear()
        self.endpoint.unplug()

    # --- voice streams --------------------------------------------------------------------

    def _open_stream(self, mode: Literal["vrx", "vtx"]) -> None:
        now = self._clock.monotonic()
        self._mode = mode
        self._stream_t0 = now
        self._stream_sent = 0
        self._stream_events = [e for e in self._stream_events if e[0] >= now]
        self._dte = DteStream()
        if self._line_tone is not None:
            self._stream_event(now, b"\x10" + self._line_tone)

    def _start_vrx(self) -> str:
        if not self._off_hook:
            raise CommandError
        if self._call is not None and self._call.state == "connected":
            self._take_line_audio(self._clock.monotonic())  # what was said before is gone
        self._open_stream("vrx")
        self._voice_seen = False
        self._silence_since = self._stream_t0
        self._silence_reported = False
        self._line_t = self._stream_t0
        return "CONNECT"

    def _start_vtx(self) -> str:
        if not self._off_hook:
            raise CommandError
        self._open_stream("vtx")
        self._tx_buf = bytearray()
        self._tx_t = self._stream_t0
        self._tx_frac = 0.0
        self._tx_ending = False
        self._tx_had_data = False
        self._tx_underrun = False
        self._tx_overflowing = False
        return "CONNECT"

    def _close_stream(self, tail: bytes) -> None:
        self._out += tail + self._result("OK")
        self._mode = "command"
        self._stream_events.clear()
        pending = bytes(self._deferred_input)
        self._deferred_input.clear()
        if pending:
            self._on_dte_bytes(pending)

    def _emit_due_events(self, now: float, audio_until: Callable[[float], None] | None) -> None:
        while self._stream_events and self._stream_events[0][0] <= now:
            t, _, data = self._stream_events.pop(0)
            if audio_until is not None:
                audio_until(t)
            self._out += data

    def _tick_vrx(self, now: float) -> None:
        sdi_s = self._vsd[1] / 10
        if sdi_s > 0 and not self._silence_reported and now >= self._silence_since + sdi_s:
            code = b"\x10q" if self._voice_seen else b"\x10s"  # 1.7: q after voice, s without
            self._stream_event(self._silence_since + sdi_s, code)
            self._silence_reported = True
        self._emit_due_events(now, self._vrx_audio_until)
        self._vrx_audio_until(now)

    def _vrx_audio_until(self, t: float) -> None:
        target = int((t - self._stream_t0) * self._bytes_per_s())
        count = target - self._stream_sent
        if count <= 0:
            return
        audio, spoken = self._take_line_audio(t, count)
        self._stream_sent = target
        if spoken:
            self._voice_seen = True
            self._silence_since = t
            self._silence_reported = False
        if len(self._out) > _OUT_LIMIT:  # the DTE is not reading: a real modem drops too
            self._rx_dropped += len(audio)
            return
        self._out += shield(audio)

    def _feed_vrx(self, data: bytes) -> bytes:
        while data:
            items, data = self._dte.feed(data)
            for item in items:
                if isinstance(item, bytes):
                    if item == b"\x10":
                        continue  # <DLE><DLE> of a triple-DLE abort: harmless
                    stray = bytes(b for b in item if b not in _XON_XOFF)
                    if stray:
                        self._violations.append(f"byte {stray[0]:#04x} sent during +VRX aborted it")
                        return self._abort_vrx(data)
                    continue
                code, after_pair = item
                if code == ord("!") and not (self._triple_exit and not after_pair):
                    return self._abort_vrx(data)
                self._violations.append(f"<DLE>{code:#04x} during +VRX")
        return b""

    def _abort_vrx(self, rest: bytes) -> bytes:
        self._vrx_audio_until(self._clock.monotonic())
        self._close_stream(b"\x10\x03")
        return rest

    def _tick_vtx(self, now: float) -> None:
        self._emit_due_events(now, None)
        if not self._tx_buf:
            if self._tx_had_data and not self._tx_underrun and not self._tx_ending:
                self._tx_underruns += 1
                self._tx_underrun = True
                self._out += b"\x10u"
            self._tx_t = now
            self._tx_frac = 0.0
        else:
            wanted = (now - self._tx_t) * self._bytes_per_s() + self._tx_frac
            count = int(wanted)
            self._tx_frac = wanted - count
            self._tx_t = now
            played = self._tx_buf[:count]
            del self._tx_buf[:count]
            self._heard += played
        if self._tx_ending and not self._tx_buf:
            self._close_stream(b"")

    def _feed_vtx(self, data: bytes) -> bytes:
        while data:
            if self._tx_ending:
                self._deferred_input += data  # commands sent before our OK wait for it
                return b""
            items, data = self._dte.feed(data)
            for item in items:
                if isinstance(item, bytes):
                    self._tx_accept(item)
                    continue
                code, after_pair = item
                if code == _ETX:
                    if not (self._triple_exit and not after_pair):
                        self._tx_ending = True
                elif code == _CAN:
                    self._tx_buf.clear()
                elif code in b"udpr^!\x00\x1c\x12":
                    pass  # volume, pause/resume, inactivity refresh, concatenation: no effect here
                else:
                    self._violations.append(f"<DLE>{code:#04x} during +VTX")
        return b""

    def _tx_accept(self, audio: bytes) -> None:
        room = self._tx_cap - len(self._tx_buf)
        self._tx_buf += audio[:room]
        self._tx_had_data = True
        self._tx_underrun = False
        dropped = len(audio) - max(room, 0)
        if dropped > 0:
            self._tx_overrun_bytes += dropped
            if not self._tx_overflowing:
                self._tx_overruns += 1
                self._out += b"\x10o"  # telephony.md 5: the sim reports its overflow
            self._tx_overflowing = True
        else:
            self._tx_overflowing = False


