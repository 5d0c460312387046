"""A simulated GSM/LTE module (SIMCom SIM7600 first) speaking its real bytes on ptys.

Two ports, as the real module has (telephony.md 2.2): the AT port (``ttyUSB2``)
and, for SIM7600 PCM audio, the audio port (``ttyUSB4``) carrying 20 ms frames of
160 x int16 LE at 8 kHz (320 bytes) once ``AT+CPCMREG=1`` has been accepted.

What it models (telephony.md 2.1, 2.2, 2.5, 6.5):

* AT front end: echo on until ``ATE0``, ``ATI``/``AT+CGMM``/``AT+GMM``
  identification, ``+CLIP``, ``+CLCC`` (list, and URCs with ``AT+CLCC=1``),
  ``ATA`` → ``VOICE CALL: BEGIN`` + ``OK``, ``AT+CHUP``, ``ATH`` (ignored while
  ``AT+CVHU=1``, the power-on default), ``AT+DDET``, ``AT+CPCMFRM``/``AT+CPCMREG``,
  SMS text mode (``AT+CMGF``, ``AT+CSCS``, ``AT+CSMP``, ``AT+CMGS`` with the
  ``"> "`` prompt, body until Ctrl-Z, ESC aborts, UCS2 hex decoding).
* A call: ``ring(number)`` gives RING + ``+CLIP`` every ``ring_period_s``; after
  ``ATA`` the call becomes active ``active_delay_s`` later, and ``AT+CPCMREG=1``
  answers ERROR until then (the driver must retry, 2.6 "total silence").
* Audio: downlink frames paced by the injected clock from what the caller
  ``say``s (silence otherwise); uplink bytes kept as ``heard()``, with a count of
  bytes that arrived faster than the line rate allows (``uplink_overruns``).
* Ends: the caller hangs up (``+CLCC`` stat 6, then the profile's hang-up URCs
  in the chosen order), ``hang_up(silent=True)`` loses every URC (only a +CLCC
  poll notices: the zombie call of 2.6), ``unplug()`` closes the ports (EIO).

Independence: the simulator has its own command-line handling (with the pure
helpers of ``sim.atcommand``) and shares no parsing code with ``line.at`` or
``line.callerid``. Like the voice-modem simulator it runs in its own thread so a
driver that stalls its event loop cannot stall the module too.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import select
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

from appliance.clock import Clock
from appliance.line.profile import ModemProfile, builtin_profiles
from appliance.line.sim.atcommand import CommandError, normalize, split_extended
from appliance.line.sim.device import DeviceSim
from appliance.line.sim.pty_endpoint import PtyEndpoint, TranscriptEntry

_LOGGER = logging.getLogger(__name__)

_POLL_S: Final = 0.002  # real seconds; well under one 20 ms frame even at a 10x clock
_FRAME_S: Final = 0.02
_MAX_LINE: Final = 512  # longer command lines answer ERROR
_MAX_BODY: Final = 1024  # SMS body bytes before the module gives up
_AUDIO_BACKLOG: Final = 16_384  # downlink bytes kept for a DTE that does not read; more are dropped
_UPLINK_SLACK_BYTES: Final = 2048  # the module's own buffer ahead of the line rate (2.2: host writes stall)
_CTRL_Z: Final = 0x1A
_ESC: Final = 0x1B
_DTMF_KEYS: Final = frozenset("0123456789*#ABCD")
_IDENTITY: Final = {
    "manufacturer": "SIMCOM INCORPORATED",
    "model": "SIMCOM_SIM7600G-H",  # matches the profile's AT+GMM pattern 'SIM7600'
    "revision": "LE20B05SIM7600G22",  # the firmware telephony.md 2.2 says takes uplink audio
}

EndOrder = Literal["voice_call_end_first", "no_carrier_first", "no_carrier_only", "voice_call_end_only"]


@dataclass
class _Call:
    number: str | None
    index: int
    state: Literal["incoming", "answering", "active", "released"] = "incoming"
    rings: int = 0
    active_at: float = 0.0


@dataclass(frozen=True, slots=True)
class SentSms:
    number: str
    text: str
    charset: str  # the AT+CSCS in force: "GSM" or "UCS2"
    dcs: int  # the 4th AT+CSMP parameter (8 = UCS2)


@dataclass(frozen=True, slots=True)
class GsmSimStats:
    call_state: str | None
    rings: int
    echo: bool
    pcm_enabled: bool
    pcm_refusals: int  # AT+CPCMREG=1 answered ERROR because the call was not active
    pcm_disables: int  # AT+CPCMREG=0 received
    downlink_frames: int
    uplink_overruns: int
    commands: tuple[str, ...]  # every command line the DTE sent, in order


class GsmModemSim(DeviceSim):
    """One simulated GSM module: an AT pty and an audio pty, run by its own thread."""

    kind = "gsm-module"

    def __init__(
        self,
        profile_name: str = "sim7600",
        *,
        clock: Clock,
        ring_period_s: float = 3.0,
        rings_until_abandon: int = 10,
        active_delay_s: float = 0.3,
        end_order: EndOrder = "voice_call_end_first",
        sms_delay_s: float = 1.0,
    ) -> None:
        profile = builtin_profiles().get(profile_name)
        if profile is None or profile.kind != "gsm" or profile.gsm is None:
            raise ValueError(f"no GSM module simulation for profile {profile_name!r}")
        if profile_name != "sim7600":  # EC25 (QPCMV, ccinfo, QTONEDET) and SIM800: not yet
            raise ValueError(f"{profile_name}: only the SIM7600 is simulated so far")
        super().__init__(profile_name)
        self.profile: ModemProfile = profile
        self._clock = clock
        self._ring_period_s = ring_period_s
        self._rings_until_abandon = rings_until_abandon
        self._active_delay_s = active_delay_s
        self._end_order = end_order
        self._sms_delay_s = sms_delay_s
        self.control = PtyEndpoint(clock=clock)
        self.audio = PtyEndpoint(clock=clock)
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._indexes = itertools.count(1)
        self._out = bytearray()
        self._audio_out = bytearray()
        self._line = bytearray()
        self._body: bytearray | None = None  # SMS body being typed after the "> " prompt
        self._sms_number = ""
        self._call: _Call | None = None
        self._caller_audio = bytearray()
        self._heard = bytearray()
        self._sent: list[SentSms] = []
        self._commands: list[str] = []
        self._next_frame_t = 0.0
        self._pcm_started_t = 0.0
        self._heard_at_start = 0
        self._downlink_frames = 0
        self._uplink_overruns = 0
        self._pcm_refusals = 0
        self._pcm_disables = 0
        self._message_ref = 0
        self._echo = True
        self._clip = False
        self._clcc_urcs = False
        self._cvhu = 1
        self._ddet = False
        self._pcm = False
        self._cmgf = 0
        self._cscs = "GSM"
        self._dcs = 0

    # --- public API (any thread) -----------------------------------------------------

    @property
    def path(self) -> str:
        """The AT port, as the driver opens it."""
        return self.control.path

    @property
    def audio_path(self) -> str:
        return self.audio.path

    def _close_ports(self) -> None:
        self.control.close()
        self.audio.close()

    def ring(self, number: str | None) -> None:
        """A call arrives from ``number`` (None: the caller withholds it)."""
        self._submit(lambda: self._do_ring(number))

    def say(self, pcm: bytes) -> None:
        """Queue what the caller says: S16LE mono 8 kHz, sent once the PCM path is up."""
        if len(pcm) % 2:
            raise ValueError("S16LE audio has an even number of bytes")
        self._submit(lambda: self._caller_audio.extend(pcm))

    def press(self, digit: str) -> None:
        """The caller presses a key; reported as a URC only with ``AT+DDET=1`` while active."""
        if digit not in _DTMF_KEYS:
            raise ValueError(f"not a DTMF key: {digit!r}")
        self._submit(lambda: self._do_press(digit))

    def hang_up(self, *, silent: bool = False) -> None:
        """The caller hangs up. ``silent``: every URC is lost (only +CLCC tells)."""
        self._submit(lambda: self._do_hang_up(silent))

    def unplug(self, *, audio: bool = True) -> None:
        """Fault: the USB module vanishes mid-call; the DTE's reads and writes fail."""
        self._submit(lambda: self._do_unplug(audio))

    def heard(self) -> bytes:
        """Uplink bytes the module took from the audio port while PCM was on."""
        with self._lock:
            return bytes(self._heard)

    def sent_sms(self) -> tuple[SentSms, ...]:
        with self._lock:
            return tuple(self._sent)

    def stats(self) -> GsmSimStats:
        with self._lock:
            return GsmSimStats(
                call_state=self._call.state if self._call else None,
                rings=self._call.rings if self._call else 0,
                echo=self._echo,
                pcm_enabled=self._pcm,
                pcm_refusals=self._pcm_refusals,
                pcm_disables=self._pcm_disables,
                downlink_frames=self._downlink_frames,
                uplink_overruns=self._uplink_overruns,
                commands=tuple(self._commands),
            )

    def transcript(self) -> tuple[TranscriptEntry, ...]:
        return self.control.transcript()

    # --- thread ------------------------------------------------------------------------

    def _ports_open(self) -> bool:
        return not self.control.closed

    def _poll(self) -> object:
        ends = [e for e in (self.control, self.audio) if not e.closed]
        writers = [self.control] if self._out else []
        if self._audio_out and not self.audio.closed:
            writers.append(self.audio)
        readable, _, _ = select.select(ends, writers, [], _POLL_S)
        return readable

    def _serve(self, ready: object) -> None:
        assert isinstance(ready, list)
        self._tick(self._clock.monotonic())
        if self.control in ready:
            self._on_control_bytes(self.control.read())
        if self.audio in ready and not self.audio.closed:
            self._on_uplink(self.audio.read())
        self._flush()


    def _flush(self) -> None:
        if self._out and not self.control.closed:
            del self._out[: self.control.write(bytes(self._out[:4096]))]
        if self._audio_out and not self.audio.closed:
            del self._audio_out[: self.audio.write(bytes(self._audio_out[:4096]))]

    def _at(self, t: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._timers, (t, next(self._seq), action))

    def _tick(self, now: float) -> None:
        while self._timers and self._timers[0][0] <= now:
            _, _, action = heapq.heappop(self._timers)
            action()
        if self._pcm and self._call is not None and self._call.state == "active":
            self._downlink_until(now)

    # --- AT front end --------------------------------------------------------------------

    def _urc(self, text: str) -> None:
        self._out += b"\r\n" + text.encode("latin-1") + b"\r\n"

    def _on_control_bytes(self, data: bytes) -> None:
        for byte in data:
            if self._body is not None:
                self._on_body_byte(byte)
                continue
            if self._echo:
                self._out.append(byte)
            if byte == 0x0D:
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

    def _execute_line(self, line: str) -> None:
        start = line.upper().find("AT")
        if start < 0:
            return  # V.250: characters before the "AT" prefix are discarded
        self._commands.append(line[start:])
        body = normalize(line[start + 2 :])
        info: list[str] = []
        try:
            outcome = self._execute(body, info)
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
            info.extend(f"{key.capitalize()}: {value}" for key, value in _IDENTITY.items())
            return "OK"
        if body == "A":
            return self._answer()
        if body in ("H", "H0"):
            if self._cvhu == 0:
                self._end_call_by_dte()
            return "OK"  # with AT+CVHU=1 ATH does not end a voice call (2.1)
        if not body.startswith("+"):
            raise CommandError
        return self._extended(body, info)

    def _extended(self, command: str, info: list[str]) -> str | None:
        name, op, args = split_extended(command)
        match name, op:
            case ("+CGMM" | "+GMM"), "":
                info.append(_IDENTITY["model"])
            case ("+CGMI" | "+GMI"), "":
                info.append(_IDENTITY["manufacturer"])
            case ("+CGMR" | "+GMR"), "":
                info.append(f"+CGMR: {_IDENTITY['revision']}")
            case "+CPIN", "?":
                info.append("+CPIN: READY")
            case "+CREG", "?":
                info.append("+CREG: 0,1")
            case "+CSQ", "":
                info.append("+CSQ: 20,99")
            case "+CLIP", "=":
                self._clip = _flag(args)
            case "+CLCC", "=":
                self._clcc_urcs = _flag(args)
            case "+CLCC", "":
                if self._call is not None and self._call.state != "released":
                    info.append(self._clcc_line())
            case "+CVHU", "=":
                self._cvhu = int(_flag(args))
            case "+DDET", "=":
                self._ddet = _flag(args.split(",")[0])
            case "+CPCMFRM", "=":
                if args != "0":
                    raise CommandError  # 16 kHz frames are not simulated yet
            case "+CPCMREG", "=":
                return self._cpcmreg(args)
            case "+CHUP", "":
                self._end_call_by_dte()
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
            case "+CNMI", "=":
                pass
            case "+CMGS", "=":
                return self._start_sms(args)
            case _:
                raise CommandError
        return "OK"

    # --- calls ---------------------------------------------------------------------------

    def _clcc_line(self) -> str:
        call = self._call
        assert call is not None
        stat = {"incoming": 4, "answering": 4, "active": 0, "released": 6}[call.state]
        number, kind = (call.number, 145 if call.number.startswith("+") else 129) if call.number else ("", 128)
        return f'+CLCC: {call.index},1,{stat},0,0,"{number}",{kind}'

    def _clcc_urc(self) -> None:
        if self._clcc_urcs:
            self._urc(self._clcc_line())

    def _do_ring(self, number: str | None) -> None:
        if self._call is not None and self._call.state != "released":
            raise RuntimeError("a call is already in progress (call waiting is not simulated)")
        self._call = _Call(number=number, index=next(self._indexes))
        self._ring_once(self._call)

    def _ring_once(self, call: _Call) -> None:
        if call is not self._call or call.state != "incoming":
            return
        if call.rings >= self._rings_until_abandon:
            self._caller_left_ringing(call)
            return
        call.rings += 1
        self._urc("RING")
        if self._clip:
            if call.number:
                kind = 145 if call.number.startswith("+") else 129
                self._urc(f'+CLIP: "{call.number}",{kind},"",0,"",0')
            else:
                self._urc('+CLIP: "",128,"",0,"",1')  # CLI validity 1: withheld (2.1)
        if call.rings == 1:
            self._clcc_urc()
        self._at(self._clock.monotonic() + self._ring_period_s, lambda: self._ring_once(call))

    def _caller_left_ringing(self, call: _Call) -> None:
        call.state = "released"
        self._clcc_urc()
        hhmm = self._clock.now().strftime("%I:%M%p")
        self._urc(f"MISSED_CALL: {hhmm} {call.number or ''}".rstrip())

    def _answer(self) -> str | None:
        call = self._call
        if call is None or call.state != "incoming":
            return "NO CARRIER"
        call.state = "answering"
        self._urc("VOICE CALL: BEGIN")
        self._at(self._clock.monotonic() + self._active_delay_s, lambda: self._become_active(call))
        return "OK"

    def _become_active(self, call: _Call) -> None:
        if call is self._call and call.state == "answering":
            call.state = "active"
            call.active_at = self._clock.monotonic()
            self._clcc_urc()

    def _cpcmreg(self, args: str) -> str:
        if args.split(",")[0] == "0":
            self._pcm = False
            self._pcm_disables += 1
            return "OK"
        if args != "1":
            raise CommandError
        if self._call is None or self._call.state != "active":
            self._pcm_refusals += 1
            return "ERROR"
        if not self._pcm:
            self._pcm = True
            self._pcm_started_t = self._next_frame_t = self._clock.monotonic()
            self._heard_at_start = len(self._heard)
        return "OK"

    def _downlink_until(self, now: float) -> None:
        if now - self._next_frame_t > 0.2:  # this thread stalled: the module drops, never bursts
            self._next_frame_t = now - _FRAME_S
        while self._next_frame_t <= now:
            frame = bytes(self._caller_audio[:320]).ljust(320, b"\x00")
            del self._caller_audio[:320]
            self._next_frame_t += _FRAME_S
            self._downlink_frames += 1
            if len(self._audio_out) + len(frame) <= _AUDIO_BACKLOG:
                self._audio_out += frame

    def _on_uplink(self, data: bytes) -> None:
        if not (self._pcm and self._call is not None and self._call.state == "active"):
            return  # the module discards uplink bytes while PCM is off
        self._heard += data
        allowed = (self._clock.monotonic() - self._pcm_started_t) / _FRAME_S * 320 + _UPLINK_SLACK_BYTES
        if len(self._heard) - self._heard_at_start > allowed:
            self._uplink_overruns += 1

    def _do_press(self, digit: str) -> None:
        if self._ddet and self._call is not None and self._call.state == "active":
            dtmf = self.profile.gsm.dtmf_urc if self.profile.gsm else "+RXDTMF:"
            self._urc(f"{dtmf} {digit}")

    def _duration(self, call: _Call) -> str:
        seconds = int(self._clock.monotonic() - call.active_at) if call.state == "active" else 0
        return f"{seconds // 3600:02d}{seconds // 60 % 60:02d}{seconds % 60:02d}"

    def _do_hang_up(self, silent: bool) -> None:
        call = self._call
        if call is None or call.state == "released":
            return
        if call.state == "incoming":
            if silent:
                call.state = "released"
            else:
                self._caller_left_ringing(call)
            return
        duration = self._duration(call)
        call.state = "released"
        self._pcm = False
        if silent:
            return
        self._clcc_urc()
        ends = {
            "voice_call_end_first": ("VOICE CALL: END", "NO CARRIER"),
            "no_carrier_first": ("NO CARRIER", "VOICE CALL: END"),
            "no_carrier_only": ("NO CARRIER",),
            "voice_call_end_only": ("VOICE CALL: END",),
        }[self._end_order]
        for end in ends:
            self._urc(f"VOICE CALL: END: {duration}" if end == "VOICE CALL: END" else end)

    def _end_call_by_dte(self) -> None:
        call = self._call
        if call is None or call.state == "released":
            return
        duration = self._duration(call)
        call.state = "released"
        self._pcm = False
        self._clcc_urc()
        self._urc(f"VOICE CALL: END: {duration}")

    def _do_unplug(self, audio: bool) -> None:
        _LOGGER.info("GSM module unplugged")
        self.control.unplug()
        if audio:
            self.audio.unplug()

    # --- SMS -----------------------------------------------------------------------------

    def _start_sms(self, args: str) -> str | None:
        if self._cmgf != 1:
            raise CommandError  # PDU mode is not simulated
        number = args.split(",")[0].strip('"')
        try:
            self._sms_number = self._decode(number)
        except ValueError:
            return "+CMS ERROR: 304"
        self._body = bytearray()
        self._out += b"\r\n> "  # no line terminator (2.5)
        return None

    def _on_body_byte(self, byte: int) -> None:
        assert self._body is not None
        if byte == _ESC:
            self._body = None
            self._urc("OK")
        elif byte == _CTRL_Z:
            raw, self._body = bytes(self._body), None
            try:
                text = self._decode(raw.decode("latin-1").replace("\r", "").replace("\n", ""))
            except ValueError:
                self._urc("+CMS ERROR: 304")  # invalid PDU mode parameter / text
                return
            self._sent.append(SentSms(number=self._sms_number, text=text, charset=self._cscs, dcs=self._dcs))
            self._message_ref = (self._message_ref + 1) % 256
            ref = self._message_ref
            self._at(self._clock.monotonic() + self._sms_delay_s, lambda: self._urc(f"+CMGS: {ref}\r\n\r\nOK"))
        elif len(self._body) >= _MAX_BODY:
            self._body = None
            self._urc("+CMS ERROR: 305")
        else:
            self._body.append(byte)

    def _decode(self, text: str) -> str:
        """Text as the DTE typed it in the current AT+CSCS; ValueError when malformed."""
        if self._cscs == "UCS2":
            if len(text) % 4:
                raise ValueError("UCS2 hex needs 4 digits per character")
            return bytes.fromhex(text).decode("utf-16-be")
        if not text.isascii():
            raise ValueError("GSM text mode takes 7-bit characters")
        return text


def _flag(args: str) -> bool:
    if args not in ("0", "1"):
        raise CommandError
    return args == "1"
