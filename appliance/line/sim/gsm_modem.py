"""A simulated GSM/LTE module (SIMCom SIM7600, Quectel EC25, SIMCom SIM800) on ptys.

The driver opens ``path`` (the AT port, ``ttyUSB2``) and, for PCM audio,
``audio_path`` (SIM7600 ``ttyUSB4``, EC25 NMEA ``ttyUSB1``) exactly as it opens the
real ports; for a sound card (EC25 UAC, SIM800) it opens ``card``, a
``FakeAudioDevice``. Both paths are stable symlinks, as udev's /dev/serial/by-id
names are: they vanish with the module and come back with it, on a new pty.

What it models (telephony.md 2.1-2.5, 6.5; module differences in ``gsm_modules``):

* AT front end: echo on until ``ATE0``, identification, ``+CLIP``, ``+CRC``,
  ``+CLCC`` (list; URCs with ``AT+CLCC=1`` on SIMCom), ``+QINDCFG="ccinfo"``
  (Quectel), ``ATA``, ``AT+CHUP``/``AT+QHUP``, ``ATH`` (ignored while
  ``AT+CVHU=1``, the power-on default), DTMF detection (``AT+DDET``,
  ``AT+QTONEDET``), the audio commands (``AT+CPCMREG``, ``AT+QPCMV``), SMS text
  mode (``gsm_sms``). Unknown or other-vendor commands answer ERROR.
* A call: ``ring(number)`` gives RING (or ``+CRING: VOICE``) + ``+CLIP`` every
  ``ring_period_s``; after ``ATA`` the call becomes active ``active_delay_s``
  later. SIM7600 ``AT+CPCMREG=1`` answers ERROR until then (2.6 "total silence").
* Audio (``gsm_audio``): the caller's speech, line noise between words, paced by
  the injected clock; what the box sent is kept for ``heard()``.
* Ends: ``hang_up()`` prints the module's end URCs in the chosen ``end_order``.

Faults, each a public method (telephony.md 2.6, 6.5, 6.6): ``abandon``,
``hang_up(silent=True)`` (every URC lost: the zombie call), ``vanish_port`` /
``restore_port``, ``refuse_cpcmreg``, ``stall_uplink`` / ``resume_uplink``,
``garbage``, ``call_waiting``, ``press`` (held keys), ``audio_busy`` /
``audio_ready`` (EC25 ``+QPCMV``). ``chunk_seed`` makes every port write in
random 1-700 byte pieces and splits each URC in two writes, so RING, +CLIP and
the other URCs reach the driver in pieces.

Independence: its own command-line handling (``sim.atcommand``); it shares no
parsing code with ``line.at`` or ``line.callerid``, and its module facts come
from the reference, not the driver's profiles. It runs on its own thread
(``DeviceSim`` says why).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import os
import random
import select
import shutil
import tempfile
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np

from appliance.clock import Clock
from appliance.line.sim.audio_device import FakeAudioDevice
from appliance.line.sim.device import DeviceSim
from appliance.line.sim.gsm_commands import GsmCommands
from appliance.line.sim.gsm_audio import CallerVoice, CardEnd, PcmPortEnd
from appliance.line.sim.gsm_modules import MODULES, GsmModule
from appliance.line.sim.gsm_sms import SentSms, SmsEngine
from appliance.line.sim.pty_endpoint import PtyEndpoint, TranscriptEntry

__all__ = ["EndOrder", "GsmModemSim", "GsmSimStats", "SentSms"]

_LOGGER = logging.getLogger(__name__)

_POLL_S: Final = 0.002  # real seconds; well under one 20 ms frame even at a 10x clock
_DTMF_KEYS: Final = frozenset("0123456789*#ABCD")
_CLCC_STAT: Final = {"incoming": 4, "answering": 4, "active": 0, "waiting": 5, "released": 6}
_CCINFO_RELEASED: Final = -1  # Quectel's state for a released call (2.3)

EndOrder = Literal["vendor_first", "no_carrier_first", "no_carrier_only", "vendor_only", "state_only"]
"""What the module prints when the caller hangs up, in order (2.2: "order vs VOICE CALL:
END not guaranteed"): "state" is +CLCC stat 6 / ccinfo -1 (when the box enabled them),
"vendor" the module's own end line (SIM7600 ``VOICE CALL: END: HHMMSS``)."""
_END_PARTS: Final[dict[str, tuple[str, ...]]] = {
    "vendor_first": ("state", "vendor", "no_carrier"),
    "no_carrier_first": ("state", "no_carrier", "vendor"),
    "no_carrier_only": ("no_carrier",),
    "vendor_only": ("vendor",),
    "state_only": ("state",),
}

CallState = Literal["incoming", "answering", "active", "waiting", "released"]


@dataclass
class _Call:
    number: str | None
    index: int
    state: CallState = "incoming"
    rings: int = 0
    active_at: float = 0.0


@dataclass(frozen=True, slots=True)
class GsmSimStats:
    call_state: str | None
    rings: int
    echo: bool
    pcm_enabled: bool  # call audio flowing (PCM port or card)
    pcm_refusals: int  # audio enable commands answered ERROR
    pcm_disables: int  # AT+CPCMREG=0 / AT+QPCMV=0 received
    downlink_frames: int
    uplink_overruns: int
    uplink_stalled: bool
    uplink_while_busy: int  # bytes the box sent while the module said +QPCMV: 0,0
    card_opens: int
    vanished: bool
    commands: tuple[str, ...]  # every command line the DTE sent, in order


class GsmModemSim(GsmCommands, DeviceSim):
    """One simulated GSM module: an AT pty, a PCM pty and/or a sound card, on its own thread."""

    kind = "gsm-module"

    def __init__(
        self,
        profile_name: str = "sim7600",
        *,
        clock: Clock,
        ring_period_s: float = 3.0,
        rings_until_abandon: int = 10,
        active_delay_s: float = 0.3,
        end_order: EndOrder = "vendor_first",
        sms_delay_s: float = 1.0,
        chunk_seed: int | None = None,
        noise_seed: int = 0,
        noise_dbfs: float = -57.0,
        card_rate_hz: int = 8000,
        card_ready_delay_s: float = 0.3,
        waiting_gives_up_s: float = 5.0,
    ) -> None:
        module = MODULES.get(profile_name)
        if module is None:
            raise ValueError(f"no GSM module simulation for {profile_name!r} (known: {', '.join(MODULES)})")
        if end_order not in _END_PARTS:
            raise ValueError(f"end_order must be one of {', '.join(_END_PARTS)}, got {end_order!r}")
        if end_order == "vendor_only" and not module.end_urc:
            raise ValueError(f"{profile_name} has no end-of-call line of its own: 'vendor_only' would say nothing")
        super().__init__(profile_name)
        self.module: GsmModule = module
        self._clock = clock
        self._ring_period_s = ring_period_s
        self._rings_until_abandon = rings_until_abandon
        self._active_delay_s = active_delay_s
        self._end_parts = _END_PARTS[end_order]
        self._card_ready_delay_s = card_ready_delay_s
        self._waiting_gives_up_s = waiting_gives_up_s
        # Seeded: a failing run can be replayed. One generator for write sizes, one for URC cuts.
        self._chunking = random.Random(chunk_seed) if chunk_seed is not None else None
        self._cutting = random.Random(chunk_seed + 1) if chunk_seed is not None else None
        self._voice = CallerVoice(noise_dbfs=noise_dbfs, seed=noise_seed)
        self.control = PtyEndpoint(clock=clock, chunking=self._chunking)
        self._pcm = (
            PcmPortEnd(clock, chunk_bytes=module.downlink_chunk_bytes, chunking=self._chunking)
            if module.audio in ("cpcmreg", "qpcmv")
            else None
        )
        card_name = "Android" if module.vendor == "quectel" else "USB Audio Device"  # ALSA names (2.3)
        self._card = CardEnd(clock, name=card_name, rate_hz=card_rate_hz) if module.audio != "cpcmreg" else None
        self._links = tempfile.mkdtemp(prefix=f"gsm-{profile_name}-")
        self._link()
        self._old_transcripts: list[TranscriptEntry] = []
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._indexes = itertools.count(1)
        self._out: deque[bytearray] = deque()
        self._wrote_piece = False
        self._line = bytearray()
        self._sms = SmsEngine(delay_s=sms_delay_s, reply=self._urc, later=self._after)
        self._commands: list[str] = []
        self._vanished = False
        self._refusals_left = 0
        self._pcm_refusals = 0
        self._pcm_disables = 0
        self._reset_module()

    def _reset_module(self) -> None:
        """Power-on settings: after a USB re-enumeration the module starts afresh."""
        self._call: _Call | None = None
        self._waiting: _Call | None = None
        self._echo = True
        self._clip = False
        self._crc = False
        self._clcc_urcs = False
        self._ccinfo = False
        self._cvhu = 1
        self._dtmf_on = False
        self._dtmf_ms = False
        self._route: Literal["serial", "card"] | None = "card" if self.module.audio == "sound_card" else None
        self._cmgf = 0
        self._cscs = "GSM"
        self._dcs = 0
        self._line.clear()
        self._sms.reset()

    # --- public API (any thread) -------------------------------------------------------

    @property
    def path(self) -> str:
        """The AT port, as the driver opens it (a stable name, like /dev/serial/by-id/...)."""
        return os.path.join(self._links, "at")

    @property
    def audio_path(self) -> str | None:
        """The PCM serial port (SIM7600 audio port, EC25 NMEA port); None for the SIM800."""
        return os.path.join(self._links, "audio") if self._pcm is not None else None

    @property
    def card(self) -> FakeAudioDevice | None:
        """The sound card (EC25 UAC, the SIM800's USB card) to give the driver; None for the SIM7600."""
        return self._card.device if self._card is not None else None

    def ring(self, number: str | None) -> None:
        """A call arrives from ``number`` (None: the caller withholds it)."""
        self._submit(lambda: self._do_ring(number))

    def say(self, pcm: bytes) -> None:
        """Queue what the caller says: S16LE mono 8 kHz, heard once the call's audio is up."""
        if len(pcm) % 2:
            raise ValueError("S16LE audio has an even number of bytes")
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.int16)
        self._submit(lambda: self._voice.say(samples))

    def press(self, digit: str, duration_s: float = 0.1) -> None:
        """The caller presses a key for ``duration_s``; reported per the module's style
        (with detection enabled, during an active call). A held key is one report."""
        if digit not in _DTMF_KEYS:
            raise ValueError(f"not a DTMF key: {digit!r}")
        if not 0.04 <= duration_s <= 10.0:
            raise ValueError(f"a key press lasts 0.04-10 s, got {duration_s}")
        self._submit(lambda: self._do_press(digit, duration_s))

    def hang_up(self, *, silent: bool = False) -> None:
        """The caller hangs up (while ringing: as ``abandon``). ``silent``: every URC is lost."""
        self._submit(lambda: self._do_hang_up(silent))

    def abandon(self) -> None:
        """The caller hangs up before the box answered."""
        self._submit(self._do_abandon)

    def vanish_port(self, *, audio: bool = True) -> None:
        """The module drops off USB mid-call: reads and writes fail (EIO), the port
        names vanish, no NO CARRIER ever comes. ``audio``: its audio port/card too."""
        self._submit(lambda: self._do_vanish(audio))

    unplug = vanish_port

    def restore_port(self) -> None:
        """The module is back on USB, on new ptys behind the same names, freshly reset."""
        self._submit(self._do_restore)

    replug = restore_port

    def refuse_cpcmreg(self, times: int) -> None:
        """The next ``times`` audio enable commands (CPCMREG=1 / QPCMV=1,x) of the current
        or next call answer ERROR; what is left is forgotten when that call ends."""
        if times < 0:
            raise ValueError("times must be 0 or more")
        self._submit(lambda: setattr(self, "_refusals_left", self._refusals_left + times))

    def stall_uplink(self) -> None:
        """The module stops reading its PCM port until ``resume_uplink`` or the call's end."""
        if self._pcm is None:
            raise ValueError(f"{self._name} has no PCM serial port whose uplink could stall")
        self._submit(lambda: setattr(self._pcm, "stalled", True))

    def resume_uplink(self) -> None:
        if self._pcm is not None:
            self._submit(self._do_resume_uplink)

    def garbage(self, data: bytes) -> None:
        """Raw bytes on the AT port, as a confused module or a line glitch gives."""
        self._submit(lambda: self._send(bytes(data)))

    def call_waiting(self, number: str | None) -> None:
        """A second caller during the active call: ``+CCWA`` and its call state, then gives up."""
        self._submit(lambda: self._do_call_waiting(number))

    def audio_busy(self) -> None:
        """EC25: ``+QPCMV: 0,0``, the module cannot take uplink audio now (2.3)."""
        self._submit(lambda: self._set_busy(True))

    def audio_ready(self) -> None:
        """EC25: ``+QPCMV: 1,0``, it can again."""
        self._submit(lambda: self._set_busy(False))

    def heard(self) -> bytes:
        """What the box sent towards the caller while the call's audio was up, S16LE 8 kHz."""
        with self._lock:
            pcm = self._pcm.heard if self._pcm is not None else b""
            card = self._card.heard().astype("<i2").tobytes() if self._card is not None else b""
            return pcm + card

    def sent_sms(self) -> tuple[SentSms, ...]:
        with self._lock:
            return tuple(self._sms.sent)

    def stats(self) -> GsmSimStats:
        with self._lock:
            pcm, card = self._pcm, self._card
            return GsmSimStats(
                call_state=self._call.state if self._call else None,
                rings=self._call.rings if self._call else 0,
                echo=self._echo,
                pcm_enabled=bool((pcm and pcm.on) or (card and card.on)),
                pcm_refusals=self._pcm_refusals,
                pcm_disables=self._pcm_disables,
                downlink_frames=pcm.downlink_frames if pcm else 0,
                uplink_overruns=pcm.uplink_overruns if pcm else 0,
                uplink_stalled=bool(pcm and pcm.stalled),
                uplink_while_busy=pcm.uplink_while_busy if pcm else 0,
                card_opens=card.device.opened if card else 0,
                vanished=self._vanished,
                commands=tuple(self._commands),
            )

    def transcript(self) -> tuple[TranscriptEntry, ...]:
        """Every byte of the AT port(s), across re-plugs."""
        with self._lock:
            return (*self._old_transcripts, *self.control.transcript())

    # --- thread ------------------------------------------------------------------------

    def _ports_open(self) -> bool:
        return self._vanished or not self.control.closed  # a vanished module may come back

    def _close_ports(self) -> None:
        self.control.close()
        if self._pcm is not None:
            self._pcm.endpoint.close()
        shutil.rmtree(self._links, ignore_errors=True)

    def _poll(self) -> object:
        readers: list[PtyEndpoint] = []
        writers: list[PtyEndpoint] = []
        if not self.control.closed:
            readers.append(self.control)
            if self._out and self._chunking is None:
                writers.append(self.control)
        if self._pcm is not None:
            if self._pcm.wants_read():
                readers.append(self._pcm.endpoint)
            if self._pcm.wants_write():
                writers.append(self._pcm.endpoint)
        readable, _, _ = select.select(readers, writers, [], _POLL_S)
        return readable

    def _serve(self, ready: object) -> None:
        assert isinstance(ready, list)
        now = self._clock.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, _, action = heapq.heappop(self._timers)
            action()
        if self._pcm is not None:
            self._pcm.tick(now, self._voice)
        if self._card is not None:
            self._card.tick(now, self._voice)
        if self.control in ready and not self.control.closed:
            self._on_control_bytes(self.control.read())
        if self._pcm is not None and self._pcm.endpoint in ready and not self._pcm.endpoint.closed:
            self._pcm.read(self._active())
        self._flush()

    def _flush(self) -> None:
        if self._pcm is not None:
            self._pcm.flush()
        if self.control.closed:
            return
        if self._chunking is not None:
            # One piece per other poll: the driver's reads see each piece on its own.
            self._wrote_piece = not self._wrote_piece and bool(self._out)
            if self._wrote_piece:
                self._write_head()
            return
        while self._out and self._write_head():
            pass

    def _write_head(self) -> bool:
        head = self._out[0]
        written = self.control.write(bytes(head))
        del head[:written]
        if not head:
            self._out.popleft()
        return written > 0

    def _after(self, delay_s: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._timers, (self._clock.monotonic() + delay_s, next(self._seq), action))

    def _link(self) -> None:
        for name, target in (("at", self.control.path), ("audio", self._pcm.endpoint.path if self._pcm else None)):
            if target is None:
                continue
            link = os.path.join(self._links, name)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(link)
            os.symlink(target, link)

    # --- AT front end ------------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        if self.control.closed:
            return
        if self._cutting is not None and len(data) > 1:
            cut = self._cutting.randint(1, len(data) - 1)
            self._out.extend((bytearray(data[:cut]), bytearray(data[cut:])))
        elif self._out and self._cutting is None:
            self._out[-1] += data
        else:
            self._out.append(bytearray(data))

    def _urc(self, text: str) -> None:
        self._send(b"\r\n" + text.encode("latin-1") + b"\r\n")

    # --- calls -------------------------------------------------------------------------

    def _active(self) -> bool:
        return self._call is not None and self._call.state == "active"

    def _clcc_lines(self) -> list[str]:
        """The answer to ``AT+CLCC``: every call not released, the waiting one too."""
        return [self._clcc_line(c) for c in (self._call, self._waiting) if c is not None and c.state != "released"]

    def _clcc_line(self, call: _Call) -> str:
        return f"+CLCC: {call.index},1,{_CLCC_STAT[call.state]},0,0,{_number_field(call.number)}"

    def _state_urcs(self, call: _Call) -> None:
        if self._clcc_urcs:
            self._urc(self._clcc_line(call))
        if self._ccinfo:
            state = _CCINFO_RELEASED if call.state == "released" else _CLCC_STAT[call.state]
            self._urc(f'+QIND: "ccinfo",{call.index},1,{state},0,0,{_number_field(call.number)}')

    def _do_ring(self, number: str | None) -> None:
        if self._vanished:
            raise RuntimeError("the module is off USB: restore_port() first")
        if self._call is not None and self._call.state != "released":
            raise RuntimeError("a call is already in progress (use call_waiting for a second caller)")
        self._call = _Call(number=number, index=next(self._indexes))
        self._ring_once(self._call)

    def _ring_once(self, call: _Call) -> None:
        if call is not self._call or call.state != "incoming":
            return
        if call.rings >= self._rings_until_abandon:
            self._caller_left_ringing(call)
            return
        call.rings += 1
        if call.rings == 1 and self._ccinfo:
            self._state_urcs(call)  # Quectel names the call before its first RING [unverified]
        self._urc("+CRING: VOICE" if self._crc else "RING")
        if self._clip:
            if call.number:
                self._urc(f'+CLIP: "{call.number}",{_kind(call.number)},"",0,"",0')
            else:
                self._urc('+CLIP: "",128,"",0,"",1')  # CLI validity 1: withheld (2.1)
        if call.rings == 1 and self._clcc_urcs:
            self._urc(self._clcc_line(call))
        self._after(self._ring_period_s, lambda: self._ring_once(call))

    def _do_abandon(self) -> None:
        if self._call is None or self._call.state != "incoming":
            raise RuntimeError("no call is ringing: nothing to abandon")
        self._caller_left_ringing(self._call)

    def _caller_left_ringing(self, call: _Call) -> None:
        call.state = "released"
        self._voice.clear()
        self._state_urcs(call)
        if self.module.missed_call == "missed_call":
            hhmm = self._clock.now().strftime("%I:%M%p")
            self._urc(f"MISSED_CALL: {hhmm} {call.number or ''}".rstrip())
        else:
            self._urc("NO CARRIER")

    def _answer(self) -> str | None:
        call = self._call
        if call is None or call.state != "incoming":
            return "NO CARRIER"
        call.state = "answering"
        if self._card is not None:
            self._card.arm()
        if self.module.answer_urc:
            self._urc(self.module.answer_urc)
        self._after(self._active_delay_s, lambda: self._become_active(call))
        return "OK"

    def _become_active(self, call: _Call) -> None:
        if call is self._call and call.state == "answering":
            call.state = "active"
            call.active_at = self._clock.monotonic()
            self._state_urcs(call)
            self._update_audio()

    def _update_audio(self) -> None:
        """Audio flows while a call is active and routed (CPCMREG / QPCMV / always, SIM800)."""
        active = self._active()
        if self._pcm is not None:
            if active and self._route == "serial":
                self._pcm.start(self._clock.monotonic())
            elif self._pcm.on:
                self._pcm.stop()
        if self._card is not None:
            if active and self._route == "card":
                self._card.start()
            elif self._card.on:
                self._card.mute()

    def _set_busy(self, busy: bool) -> None:
        if self.module.audio != "qpcmv" or self._pcm is None:
            raise ValueError(f"{self._name} has no +QPCMV busy/ready reports")
        self._pcm.busy = busy
        self._urc("+QPCMV: 0,0" if busy else "+QPCMV: 1,0")

    def _do_resume_uplink(self) -> None:
        assert self._pcm is not None
        self._pcm.stalled = False

    def _do_press(self, digit: str, duration_s: float) -> None:
        call = self._call
        if not (self._dtmf_on and call is not None and call.state == "active"):
            return
        match self.module.dtmf:
            case "rxdtmf":
                self._urc(f"+RXDTMF: {digit}")
            case "qtonedet":
                self._urc(f"+QTONEDET: {ord(digit)}")
            case "ddet_ms":  # reported when the key is released, with how long it was held
                report = f"+DTMF: {digit},{round(duration_s * 1000)}" if self._dtmf_ms else f"+DTMF: {digit}"
                self._after(duration_s, lambda: self._urc(report) if call is self._call and self._active() else None)

    def _do_call_waiting(self, number: str | None) -> None:
        if not self._active():
            raise RuntimeError("call waiting needs an active call")
        waiting = self._waiting = _Call(number=number, index=next(self._indexes), state="waiting")
        self._urc(f"+CCWA: {_number_field(number)},1")
        self._state_urcs(waiting)

        def gives_up() -> None:
            if self._waiting is waiting:
                waiting.state = "released"
                self._state_urcs(waiting)
                self._waiting = None

        self._after(self._waiting_gives_up_s, gives_up)

    def _duration(self, call: _Call) -> str:
        seconds = int(self._clock.monotonic() - call.active_at) if call.state == "active" else 0
        return f"{seconds // 3600:02d}{seconds // 60 % 60:02d}{seconds % 60:02d}"

    def _release(self, call: _Call) -> str:
        """The call is over: audio off (CPCMREG is per call), the caller's queue emptied."""
        duration = self._duration(call)
        call.state = "released"
        if self.module.audio == "cpcmreg":
            self._route = None
        self._refusals_left = 0  # refusals are this call's fault
        self._voice.clear()
        self._update_audio()
        if self._card is not None:
            self._card.stop()
        return duration

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
        duration = self._release(call)
        if silent:
            return
        for part in self._end_parts:
            if part == "state":
                self._state_urcs(call)
            elif part == "vendor" and self.module.end_urc:
                self._urc(self.module.end_urc.format(duration=duration))
            elif part == "no_carrier":
                self._urc("NO CARRIER")

    def _end_call_by_dte(self) -> None:
        call = self._call
        if call is None or call.state == "released":
            return
        duration = self._release(call)
        self._state_urcs(call)
        if self.module.end_urc:
            self._urc(self.module.end_urc.format(duration=duration))

    def _do_vanish(self, audio: bool) -> None:
        if self._vanished:
            return
        _LOGGER.info("GSM module %s dropped off USB", self._name)
        self._vanished = True
        if self._call is not None and self._call.state != "released":
            self._release(self._call)
        self._timers.clear()
        self._out.clear()
        for name in ("at", "audio") if audio else ("at",):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self._links, name))
        self._old_transcripts.extend(self.control.transcript())
        self.control.unplug()
        if audio:
            if self._pcm is not None:
                self._pcm.endpoint.unplug()
            if self._card is not None:
                self._card.device.unplug()

    def _do_restore(self) -> None:
        if not self._vanished:
            return
        _LOGGER.info("GSM module %s is back on USB", self._name)
        self.control = PtyEndpoint(clock=self._clock, chunking=self._chunking)
        if self._pcm is not None and self._pcm.endpoint.closed:
            self._pcm.replace_endpoint()
        if self._card is not None:
            self._card.device.replug()
        self._reset_module()
        self._vanished = False
        self._link()


def _kind(number: str) -> int:
    return 145 if number.startswith("+") else 129  # 145: international with '+' (2.1)


def _number_field(number: str | None) -> str:
    """``"<number>",<type>`` as +CLCC, ccinfo and +CCWA print it; ``"",128`` when withheld."""
    return f'"{number}",{_kind(number)}' if number else '"",128'
