"""How a simulated modem chipset reports what happens on the line.

The line (``pstn``) says what a modem's detectors notice: a ring, a caller-ID
burst, a tone, a loop drop, an extension phone, a key. This module turns each
into the bytes *this* chipset sends, from its profile (telephony.md 1.5, 1.7,
6.2): ``RING`` or ``<DLE>R``; ``DATE=0117`` or ``DATE = 0117``; which DLE code,
if any, a dial tone, busy tone, loop drop, extension or call waiting gets;
key presses as ``/ 5 5 ... ~`` groups or single digits. What a profile lists no
code for is not reported at all: the audio is then the only witness.

Most events exist only inside a voice stream (``+VRX``/``+VTX``); ring and
caller ID only in command state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Protocol

from appliance.clock import Clock
from appliance.line.profile import ModemProfile
from appliance.line.sim.at_engine import AtEngine
from appliance.line.sim.dlecodec import shield
from appliance.line.sim.pstn import CallerIdData, PstnLine, ToneKind
from appliance.line.sim.timeline import Timeline

_DTMF_REPEAT_S: Final = 0.07  # shielded style repeats the digit every 70 ms while held (1.7)
_BUSY_REPEAT_S: Final = 4.0  # <DLE>b repeated every ~4 s (1.7)


class ReportingDevice(Protocol):
    line: PstnLine

    def now(self) -> float: ...

    def in_command_state(self) -> bool: ...

    def streaming(self) -> bool: ...

    def data_answer(self) -> None: ...


class ChipsetReports:
    """The modem's side of ``pstn.LineObserver``, per its profile."""

    def __init__(
        self,
        *,
        profile: ModemProfile,
        dtmf_style: str,
        engine: AtEngine,
        device: ReportingDevice,
        timeline: Timeline,
        clock: Clock,
        emit: Callable[[bytes], None],
    ) -> None:
        assert profile.dle is not None  # an analog profile
        self._profile = profile
        self._dle = profile.dle
        self._dtmf_style = dtmf_style
        self._engine = engine
        self._device = device
        self._timeline = timeline
        self._clock = clock
        self._emit = emit
        self._key: str | None = None  # the key the caller holds down now
        self._key_press = 0  # numbers presses: a repeat timer of an old press stops
        self._key_group_open = False  # shielded style: "/" sent in this stream, "~" not yet
        self._busy_repeating = False

    # --- streams opening and closing ---------------------------------------------------------

    def stream_opened(self) -> None:
        """The detectors start afresh: a tone still on the line and a key still held are news."""
        self._key_group_open = False
        if not self._device.streaming():
            return
        tone = self._device.line.current_tone()
        if tone is not None:
            self._report_tone(tone)
        if self._key is not None and self._dtmf_style == "shielded":
            self._open_key_group(self._key)

    def stream_closed(self) -> None:
        self._key_group_open = False

    # --- LineObserver ----------------------------------------------------------------------------

    def on_ring(self, rings: int) -> None:
        self._engine.s[1] = rings
        if not self._device.in_command_state():
            return
        if self._engine.fclass == 8 and self._dle.ring_in_voice_idle == "DLE_R":
            self._emit(b"\x10R")  # 1.7: Conexant in +FCLASS=8
        else:
            self._emit(self._engine.result("RING"))
        auto_answer = self._engine.s[0]
        if self._engine.fclass == 0 and auto_answer and rings >= auto_answer:
            self._device.data_answer()  # ATS0>0 in data class: the caller hears modem tones (6.3)

    def on_caller_id(self, cid: CallerIdData, *, waiting: bool) -> None:
        if self._engine.vcid != 1:
            return
        equals = " = " if self._profile.caller_id.equals_spacing == "spaced" else "="
        now = self._clock.now()
        tags = [("DATE", now.strftime("%m%d")), ("TIME", now.strftime("%H%M")), ("NMBR", cid.number)]
        if cid.name is not None:
            tags.append(("NAME", cid.name))
        if self._device.in_command_state():
            self._emit(b"".join(self._engine.info(f"{tag}{equals}{value}") for tag, value in tags))
        elif waiting and self._device.streaming():
            # Inside a stream text cannot go out raw: a complex event packet (1.7 "X ... .").
            text = "".join(f"{tag}{equals}{value}\r\n" for tag, value in tags).encode("latin-1")
            self._emit(b"\x10X" + shield(text) + b"\x10.")

    def on_tone(self, kind: ToneKind) -> None:
        if self._device.line.off_hook and self._device.streaming():
            self._report_tone(kind)

    def on_loop_drop(self) -> None:
        # 1.7/1.10: only some chipsets report a loop current interruption (Conexant yes, USR no).
        if "l" in self._dle.hangup_codes and self._device.line.off_hook and self._device.streaming():
            self._emit(b"\x10l")

    def on_extension(self, off_hook: bool) -> None:
        off_codes = self._dle.extension_off_hook_codes
        if not off_codes:
            return  # the chipset does not report extension phones
        codes = off_codes if off_hook else tuple(c for c in self._dle.extension_codes if c not in off_codes)
        in_voice_command_state = self._device.in_command_state() and self._engine.fclass == 8
        if codes and (self._device.streaming() or in_voice_command_state):
            self._emit(b"\x10" + codes[0].encode())

    def on_key(self, digit: str, down: bool) -> None:
        if not down:
            if self._key == digit:
                self._key = None
            if self._key_group_open and self._device.streaming():
                self._emit(b"\x10~")
            self._key_group_open = False
            return
        self._key = digit
        self._key_press += 1
        self._key_group_open = False
        if self._dtmf_style == "simple":
            if self._device.streaming():
                self._emit(b"\x10" + digit.encode())  # once, however long the key is held
            return
        self._open_key_group(digit)
        press = self._key_press
        self._timeline.at(self._device.now() + _DTMF_REPEAT_S, lambda: self._key_repeat(press, digit))

    # --- helpers -------------------------------------------------------------------------------------

    def _report_tone(self, kind: ToneKind) -> None:
        codes = {
            "dial_tone": self._dle.dial_tone_codes,
            "busy": self._dle.busy_codes,
            "call_waiting": self._dle.call_waiting_codes,
        }[kind]
        if codes:
            self._emit(b"\x10" + codes[0].encode())
        if kind == "busy" and not self._busy_repeating:
            self._busy_repeating = True
            self._timeline.at(self._device.now() + _BUSY_REPEAT_S, self._busy_again)

    def _busy_again(self) -> None:
        self._busy_repeating = False
        if self._device.line.current_tone() == "busy" and self._device.streaming():
            self._report_tone("busy")  # 1.7: repeated every ~4 s while it lasts

    def _open_key_group(self, digit: str) -> None:
        if self._device.streaming():
            self._emit(b"\x10/\x10" + digit.encode())
            self._key_group_open = True

    def _key_repeat(self, press: int, digit: str) -> None:
        if press != self._key_press or self._key is None:
            return  # released, or another key since
        if self._device.streaming() and self._key_group_open:
            self._emit(b"\x10" + digit.encode())
        self._timeline.at(self._device.now() + _DTMF_REPEAT_S, lambda: self._key_repeat(press, digit))
