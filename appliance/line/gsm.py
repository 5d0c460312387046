"""The GSM/LTE line: a module with 27.007 call control, and its call audio somewhere.

One driver for the modules of telephony.md 2: SIMCom SIM7600, Quectel EC25/EG25
and SIMCom SIM800. What differs between them is data in their profile
(``profiles/*.toml``): init commands, the call-state URC (+CLCC or +QIND ccinfo),
the DTMF URC, the hang-up commands and URCs, and the audio paths.

    RING, +CLIP ──▶ GsmIncomingCall(caller_id)       (None when withheld/unavailable)
                    .ringing counts the rings, stops when the caller gives up
    answer():  ATA ─▶ OK, then the audio path's enable commands (SIM7600
               AT+CPCMREG=1: ERROR until the call is active, retried within the
               profile's window, 2.6 "total silence"), then the card (if any)
    GsmCall:   inbound() = frames + Dtmf, play() paced by the clock,
               hang_up() = AT+CHUP (then QHUP...) and the audio's disable commands
    ends:      NO CARRIER | VOICE CALL: END | +CLCC stat 6 | ccinfo -1 |
               CLCC watchdog | a port that vanished

Audio (``gsm_audio``): ``audio_url`` for a PCM serial port (SIM7600 ttyUSB4, EC25
NMEA ttyUSB1), or ``audio_device`` for a sound card (EC25 UAC, SIM800 wired to a
USB card). The profile says which commands turn each on.

The watchdog (2.1, 2.6 "zombie call"): a USB hiccup can lose NO CARRIER, so
during a call ``AT+CLCC`` is polled every ``clcc_poll_s``; after a list without
the call a second look follows at once, and two such lists in a row end it.

A port that vanishes (USB unplugged: EIO) ends the call at once; the driver then
looks for the port every second on the clock, reopens it, initialises the module
again and goes on answering, without a restart. ``health()`` says what is wrong
meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator, Coroutine
from typing import Any, Final

from appliance.clock import Clock
from appliance.errors import LineError
from appliance.line.at import FinalResult, Urc
from appliance.line.audio_device import AudioDevice
from appliance.line.base import BOX_HUNG_UP, CALLER_HUNG_UP, LINE_CLOSED, Dtmf, LineHealth
from appliance.line.gsm_at import COMMAND_TIMEOUT_S, AtChannel, clock_sleep, real_seconds
from appliance.line.gsm_audio import CARD_OPEN_WINDOW_S, REOPEN_EVERY_S, AudioPath, CardAudio, SerialPcmAudio, Uplink
from appliance.line.gsm_call import GsmCall, GsmIncomingCall
from appliance.line.gsm_sms import send_sms
from appliance.line.profile import GsmAudio, ModemProfile, builtin_profiles
from appliance.line.serial_port import SerialPort

__all__ = ["GsmCall", "GsmDriver", "GsmIncomingCall"]

_LOGGER = logging.getLogger(__name__)

_ANSWER_TIMEOUT_S: Final = 10.0
_PCM_RETRY_S: Final = 0.2  # between two enable attempts while the call is not yet active
_CLCC_CONFIRM_S: Final = 0.5  # the second look after a +CLCC list without the call
_CLCC_MISSES_TO_END: Final = 2  # two valid +CLCC answers without the call (2.1, callpilot)
_CALL_LIVE: Final = frozenset({0, 1, 2, 3, 4})  # active, held, dialling, alerting, incoming
_CALL_WAITING: Final = 5  # another caller waiting: not this call
_CALL_RELEASED: Final = frozenset({6, -1})  # SIMCom +CLCC stat 6; Quectel ccinfo state -1
_INCOMING: Final = 4
_UPLINK_STALL_S: Final = 1.5  # clock s one write may take; pyserial gives up on its own at 2 s


class GsmDriver:
    """A ``LineDriver`` for a GSM/LTE module; ``await start()`` before use."""

    def __init__(
        self,
        control_url: str,
        *,
        clock: Clock,
        profile_name: str = "sim7600",
        audio_url: str | None = None,
        audio_device: AudioDevice | None = None,
        uplink_stall_s: float = _UPLINK_STALL_S,
    ) -> None:
        profile = builtin_profiles().get(profile_name)
        if profile is None or profile.kind != "gsm" or profile.gsm is None:
            raise LineError("profile-unknown", f"no GSM profile named {profile_name!r}")
        self.profile: ModemProfile = profile
        self._gsm = profile.gsm
        self.name = f"gsm:{profile_name}"
        self.clock = clock
        self._control_url = control_url
        self._audio_settings, self._audio = self._audio_path(profile_name, audio_url, audio_device)
        self._uplink_stall_s = uplink_stall_s
        self._channel: AtChannel | None = None
        self._rings: asyncio.Queue[GsmIncomingCall | None] = asyncio.Queue()
        self._ringing: GsmIncomingCall | None = None
        self._incoming_index: int | None = None  # a call-state URC may name the call before RING
        self._call: GsmCall | None = None
        self._teardown: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._control_problem = ""
        self._uplink_problem = ""
        self._module_busy = False  # EC25 +QPCMV: 0,0 until +QPCMV: 1,0
        self._closed = False
        self._call_ids = itertools.count(1)

    def _audio_path(
        self, profile_name: str, audio_url: str | None, audio_device: AudioDevice | None
    ) -> tuple[GsmAudio | None, AudioPath | None]:
        paths = {a.path: a for a in self._gsm.audio}
        if audio_url is not None and audio_device is not None:
            raise LineError("audio-ambiguous", "give the GSM line an audio port or a sound card, not both")
        if audio_url is not None:
            settings = paths.get("serial_pcm")
            if settings is None:
                raise LineError("audio-unsupported", f"{profile_name} has no PCM serial port: give it a sound card")
            if settings.sample_rate_hz != 8000:
                raise LineError("audio-unsupported", f"{profile_name}: only 8 kHz serial PCM is supported")
            return settings, SerialPcmAudio(audio_url, self.clock)
        if audio_device is not None:
            settings = paths.get("uac") or paths.get("sound_card")
            if settings is None:
                raise LineError("audio-unsupported", f"{profile_name} has no sound-card audio: give its audio port")
            # A card that is late after the module's enable command (EC25 UAC) is
            # retried; any other missing card fails the answer at once.
            window_s = CARD_OPEN_WINDOW_S if self.profile.quirks.audio_device_late else 0.0
            return settings, CardAudio(audio_device, self.clock, kind=settings.path, open_window_s=window_s)
        return None, None

    # --- LineDriver ------------------------------------------------------------------

    async def start(self) -> GsmDriver:
        """Open the ports and initialise the module (profile init, +CLIP, SMS text mode)."""
        channel = await self._open_channel()
        self._channel = channel
        try:
            await self._init_module(channel)
            if self._audio is None:
                _LOGGER.warning("%s has no audio configured: calls will have no sound", self.name)
            else:
                await self._audio.open()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aenter__(self) -> GsmDriver:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def incoming(self) -> AsyncIterator[GsmIncomingCall]:
        while True:
            ringing = await self._rings.get()
            if ringing is None:
                self._rings.put_nowait(None)
                return
            if not ringing.gone:
                yield ringing

    def health(self) -> LineHealth:
        if self._closed:
            return LineHealth(ok=False, device=self._control_url, detail="closed")
        if self._channel is None:
            return LineHealth(ok=False, device=self._control_url, detail="not started")
        audio_problem = self._audio.problem if self._audio is not None else ""
        problems = [p for p in (self._control_problem, audio_problem, self._uplink_problem) if p]
        if problems:
            return LineHealth(ok=False, device=self._control_url, detail="; ".join(problems))
        in_call = self._call is not None and not self._call.ended
        return LineHealth(ok=True, device=self._control_url, detail="in a call" if in_call else "waiting for calls")

    async def close(self) -> None:
        if self._closed:
            return
        call = self._call
        if call is not None and not call.ended:
            if self._channel_alive():
                with contextlib.suppress(LineError):
                    await call.hang_up()
            call._end(LINE_CLOSED, "")
        if self._teardown is not None and not self._teardown.done():
            # The last call's audio-off commands: a module left streaming PCM keeps
            # its audio port busy for whoever opens it next.
            with contextlib.suppress(LineError, TimeoutError):
                async with asyncio.timeout(real_seconds(self.clock, COMMAND_TIMEOUT_S)):
                    await asyncio.shield(self._teardown)
        self._closed = True
        self._rings.put_nowait(None)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if call is not None and call.uplink is not None:
            await call.uplink.close()
        if self._channel is not None:
            await self._channel.close()
        if self._audio is not None:
            await self._audio.close()

    # --- SMS -------------------------------------------------------------------------

    async def send_sms(self, number: str, text: str) -> int:
        """Send one SMS in text mode; the message reference. UCS2 when the text needs it."""
        return await send_sms(self._require_channel(), self._gsm.sms, number, text)

    # --- the AT port -----------------------------------------------------------------

    async def _open_channel(self) -> AtChannel:
        port = await SerialPort.open(self._control_url, baud=self.profile.init.baud)
        return AtChannel(
            port, self.clock, answer_command=self._gsm.answer, on_urc=self._on_urc, on_lost=self._on_control_lost
        )

    async def _init_module(self, channel: AtChannel) -> None:
        for cmd in (*self.profile.init.commands, *self.profile.caller_id.enable, self._gsm.sms.text_mode):
            final, _ = await channel.command(cmd)
            if final.code != "OK":
                if cmd.upper() in ("AT", "ATE0"):
                    raise LineError("modem-init-failed", f"{cmd} answered {final.text}")
                _LOGGER.warning("init command %s answered %s", cmd, final.text)

    def _require_channel(self) -> AtChannel:
        channel = self._channel
        if channel is None:
            raise LineError("line-not-started", "GsmDriver.start() was not called")
        if channel.lost is not None:
            raise LineError("port-lost", self._control_problem or str(channel.lost))
        return channel

    def _channel_alive(self) -> bool:
        return self._channel is not None and self._channel.lost is None

    async def _command(self, cmd: str, *, timeout_s: float | None = None) -> tuple[FinalResult, list[str]]:
        channel = self._require_channel()
        if timeout_s is None:
            return await channel.command(cmd)
        return await channel.command(cmd, timeout_s=timeout_s)

    def _on_control_lost(self, channel: AtChannel, err: LineError) -> None:
        if channel is not self._channel or self._closed:
            return  # a channel being reopened failed: the reconnect loop tries again
        _LOGGER.warning("GSM AT port lost: %s", err)
        self._control_problem = (
            f"the module's AT port {self._control_url} vanished; looking for it every {REOPEN_EVERY_S:g} s"
        )
        if self._ringing is not None:
            self._ringing.give_up()
            self._ringing = None
        call = self._call
        if call is not None and not call.ended:
            call._end("line_lost", f"the AT port {self._control_url} vanished")
        self._spawn(self._reconnect(channel))

    async def _reconnect(self, old: AtChannel) -> None:
        await old.close()
        while not self._closed:
            await clock_sleep(self.clock, REOPEN_EVERY_S)
            try:
                channel = await self._open_channel()
            except LineError:
                continue
            try:
                await self._init_module(channel)
            except LineError as err:
                _LOGGER.info("GSM module reappeared but did not initialise (%s); retrying", err.code)
                await channel.close()
                continue
            self._channel = channel
            self._control_problem = ""
            _LOGGER.info("GSM module is back on %s", self._control_url)
            return

    # --- what the module says --------------------------------------------------------

    def _on_urc(self, urc: Urc) -> None:
        line = urc.line or f"{urc.name}: {urc.value}"
        if urc.name in ("RING", "+CRING", "+CLIP"):
            self._on_ring_line(urc.name, line)
        elif urc.name in ("NO CARRIER", "MISSED_CALL"):
            self._caller_left(urc.name)
        elif prefix := next((p for p in self._gsm.call_state_urcs if _same(line, p, prefix=True)), None):
            self._on_call_state(line.replace(" ", "")[len(prefix.replace(" ", "")) :], prefix.rstrip(":"))
        elif line.startswith(self._gsm.dtmf_urc):
            self._on_dtmf(line[len(self._gsm.dtmf_urc) :].strip())
        elif (settings := self._audio_settings) is not None and settings.busy_urc and _same(line, settings.busy_urc):
            self._set_module_busy(True)
        elif settings is not None and settings.ready_urc and _same(line, settings.ready_urc):
            self._set_module_busy(False)
        elif end := next((e for e in self._gsm.hangup_urcs if line.startswith(e)), None):
            self._caller_left(end)
        # Anything else (+CCWA call waiting, VOICE CALL: BEGIN, +CMTI...) changes nothing here.

    def _on_ring_line(self, name: str, line: str) -> None:
        if self._call is not None and not self._call.ended:
            return  # a second caller: one call per line, it is not offered
        ringing = self._ringing
        if ringing is None or ringing.gone:
            ringing = self._ringing = GsmIncomingCall(self, self.clock)
            ringing.index, self._incoming_index = self._incoming_index, None
        if name != "+CLIP":
            ringing.ringing.ring()
        ringing.collector.feed(line)
        result = ringing.collector.result
        if not ringing.offered and (ringing.collector.complete or ringing.collector.rings >= 2):
            ringing.caller_id = result.number if result else None
            ringing.offered = True
            self._rings.put_nowait(ringing)

    def _on_call_state(self, rest: str, source: str) -> None:
        """``<idx>,<dir>,<stat>,...`` after "+CLCC:" or '+QIND: "ccinfo"' (2.1, 2.3)."""
        fields = rest.lstrip(" ,").split(",")
        try:
            index, direction, state = int(fields[0]), int(fields[1]), int(fields[2])
        except (ValueError, IndexError):
            _LOGGER.debug("call state line not understood: %s", source)
            return
        call, ringing = self._call, self._ringing
        if state in _CALL_RELEASED:
            if self._incoming_index == index:
                self._incoming_index = None
            if ringing is not None and ringing.index in (None, index):
                self._caller_left(f"{source} released")
            elif call is not None and not call.ended and call.index in (None, index):
                call._end(CALLER_HUNG_UP, f"{source} released")
            return
        if direction != 1 or state == _CALL_WAITING:
            return  # a waiting caller is not this call
        if state == _INCOMING:
            if ringing is not None and not ringing.gone:
                ringing.index = ringing.index if ringing.index is not None else index
            elif call is None or call.ended:
                self._incoming_index = index
        elif call is not None and not call.ended and call.index is None:
            call.index = index

    def _caller_left(self, signal: str) -> None:
        if self._ringing is not None:
            self._ringing.give_up()
            self._ringing = None
        call = self._call
        if call is not None and not call.ended:
            call._end(CALLER_HUNG_UP, signal)

    def _on_dtmf(self, value: str) -> None:
        call = self._call
        if call is None or call.ended or not value:
            return
        match self._gsm.dtmf_value:
            case "ascii_code":  # Quectel "+QTONEDET: 56" = '8'
                digit = chr(int(value)) if value.isdigit() and int(value) < 128 else ""
            case _:  # "digit" ("5") and "digit_ms" ("5,40": one report per press, with its length)
                digit = value.split(",")[0].strip()
        if len(digit) == 1 and digit in "0123456789*#ABCD":
            call._push(Dtmf(digit))

    def _set_module_busy(self, busy: bool) -> None:
        self._module_busy = busy
        call = self._call
        if call is not None and call.uplink is not None:
            call.uplink.pause(busy)

    # --- calls -----------------------------------------------------------------------

    async def _answer(self, ringing: GsmIncomingCall) -> GsmCall:
        if ringing.gone:
            why = "the caller hung up" if ringing.given_up else "the call stopped ringing"
            raise LineError("call-gone", f"{why} before the answer")
        if self._call is not None and not self._call.ended:
            raise LineError("line-busy", "a call is already in progress on this line")
        if self._audio is not None and self._audio.problem and self._audio.kind == "serial_pcm":
            # Answering would give the caller a call with no sound at all.
            raise LineError("audio-port-lost", self._audio.problem)
        if self._teardown is not None:
            await self._teardown  # the previous call's audio is released first
        final, _ = await self._command(self._gsm.answer, timeout_s=_ANSWER_TIMEOUT_S)
        if final.code != "OK":
            ringing.give_up()
            raise LineError("call-gone", f"{self._gsm.answer} answered {final.text}")
        call = GsmCall(self, f"gsm-{next(self._call_ids)}", ringing.caller_id, ringing.index)
        self._call = call
        if self._ringing is ringing:
            self._ringing = None
        self._spawn(self._watchdog(call))
        try:
            await self._enable_audio(call)
        except LineError as err:
            if not call.ended:
                call._end("audio_failed", err.detail)
                await self._hang_up_module()
            raise
        return call

    async def _enable_audio(self, call: GsmCall) -> None:
        audio, settings = self._audio, self._audio_settings
        if audio is None or settings is None:
            _LOGGER.warning("no audio path: the call has no sound")
            return
        audio.prepare(call._push, lambda detail: call._end("line_lost", detail))
        deadline = self.clock.monotonic() + settings.enable_retry_window_s
        attempts = 0
        while settings.enable:
            attempts += 1
            refused = ""
            for cmd in settings.enable:
                final, _ = await self._command(cmd)
                if final.code != "OK":
                    refused = f"{cmd} answered {final.text}"
                    break
            if not refused:
                _LOGGER.info("call audio on after %d attempt(s)", attempts)
                break
            if call.ended:
                raise LineError("call-gone", "the call ended before its audio was on")
            if self.clock.monotonic() >= deadline:
                raise LineError("audio-enable-failed", f"{refused} for {settings.enable_retry_window_s:g} s")
            await clock_sleep(self.clock, _PCM_RETRY_S)
        try:
            await audio.start()
        except LineError:
            if call.ended:
                raise LineError("call-gone", "the call ended before its audio was on") from None
            raise
        if call.ended:
            await audio.stop()  # opened after the call's teardown ran: release it here
            raise LineError("call-gone", "the call ended before its audio was on")
        uplink = Uplink(
            audio.write,
            self.clock,
            stall_s=self._uplink_stall_s,
            on_stall=lambda why: self._uplink_stalled(call, why),
            on_flowing=self._uplink_flowing,
        )
        uplink.pause(self._module_busy)
        call._start_audio(uplink)

    def _uplink_stalled(self, call: GsmCall, why: str) -> None:
        _LOGGER.warning("call %s: uplink stalled (%s); the call goes on listen-only", call.call_id, why)
        known = " (a known fault of some firmware: update the module)" if self.profile.quirks.uplink_may_stall else ""
        self._uplink_problem = (
            f"the module stopped taking the box's audio ({why}): callers cannot hear the box, "
            f"calls go on listen-only{known}"
        )

    def _uplink_flowing(self) -> None:
        if self._uplink_problem:
            _LOGGER.info("the module takes the box's audio again")
        self._uplink_problem = ""

    async def _watchdog(self, call: GsmCall) -> None:
        """Poll AT+CLCC during the call: the port can die without NO CARRIER (2.1)."""
        misses = 0
        while not call.ended:
            await clock_sleep(self.clock, _CLCC_CONFIRM_S if misses else self._gsm.clcc_poll_s)
            if call.ended or not self._channel_alive():
                return  # a lost port ends the call itself
            try:
                final, lines = await self._command("AT+CLCC")
            except LineError as err:
                if not call.ended and self._channel_alive():
                    call._end("line_lost", f"the module stopped answering ({err.code})")
                return
            if final.code != "OK":
                continue  # not a valid answer: says nothing about the call
            misses = 0 if self._listed(call, lines) else misses + 1
            if misses >= _CLCC_MISSES_TO_END:
                call._end("call_dropped", "+CLCC listed no call twice")
                return

    def _listed(self, call: GsmCall, lines: list[str]) -> bool:
        for line in lines:
            fields = line.partition(":")[2].split(",")
            try:
                index, state = int(fields[0]), int(fields[2])
            except (ValueError, IndexError):
                continue
            if state in _CALL_LIVE and call.index in (None, index):
                return True
        return False

    def _call_ended(self, call: GsmCall) -> None:
        """Release the call's audio, and tell the module what it does not know yet."""
        if self._closed:
            return
        if call.end_reason in (BOX_HUNG_UP, "audio_failed", LINE_CLOSED):
            then = "nothing"  # whoever ended it sends the hang-up and audio-off commands
        elif call.end_reason == CALLER_HUNG_UP:
            then = "audio_off"  # the module's call is over; its audio setting is not
        else:
            # A sound card or audio port lost, a watchdog verdict: the module may still
            # hold the call, and the caller would stay connected to nothing.
            then = "hang_up"
        self._teardown = self._spawn(self._tear_down(call, then))

    async def _tear_down(self, call: GsmCall, then: str) -> None:
        if call.uplink is not None:
            await call.uplink.close()
        if self._audio is not None:
            await self._audio.stop()
        if not self._channel_alive():
            return
        if then == "hang_up":
            await self._hang_up_module()
        elif then == "audio_off":
            await self._disable_audio()

    async def _disable_audio(self) -> None:
        if self._audio_settings is None or not self._channel_alive():
            return
        for cmd in self._audio_settings.disable:
            with contextlib.suppress(LineError):
                await self._command(cmd)

    async def _hang_up_module(self) -> None:
        for cmd in self._gsm.hang_up:
            try:
                final, _ = await self._command(cmd)
            except LineError as err:
                _LOGGER.warning("hang-up %s failed: %s", cmd, err)
                return
            if final.code == "OK":
                break
        await self._disable_audio()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


def _same(line: str, urc: str, *, prefix: bool = False) -> bool:
    """URCs compared without their spacing ("+QPCMV: 0,0" vs "+QPCMV:0,0")."""
    line, urc = line.replace(" ", ""), urc.replace(" ", "")
    return line.startswith(urc) if prefix else line == urc

