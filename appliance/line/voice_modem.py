"""Analog USB voice modem (V.253: USR5637, Conexant CX930xx) behind the line boundary.

This module is the ``LineDriver`` and the call lifecycle: ringing calls offered
through ``incoming()``, answering in voice mode, moving the half-duplex modem
between listening (``+VRX``) and playing (``+VTX``) for the call, the call's
watchdog, and hanging up. Half duplex only; ``+VTR`` is left out (no echo
cancellation on Conexant, unverified on USR: telephony.md 1.8). The rest is in
collaborators the driver builds and calls:

    voice_modem_channel   the port: one command at a time, and the reader task
                          that sorts command results, DLE streams and ring lines;
                          audio, stream events and ring lines come back here
    voice_modem_recovery  staying up: a modem unplugged or not answering is
                          rescued and re-initialised, an idle one probed; it
                          holds the line's state ("ready", "unplugged", ...)
    voice_modem_call      the calls themselves, ringing and answered

While the modem is away ``health()`` says so in plain words and ``incoming()``
simply yields nothing; it never raises. Errors reach the call session only as
the end of the call (``VoiceModemCall.end_reason``).
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
from appliance.line.base import BOX_HUNG_UP, CALLER_HUNG_UP, LINE_CLOSED, MAX_CALL_LENGTH, LineHealth
from appliance.line.dle import ABORT_RX, CLEAR_TX, END_TX, END_TX_CONEXANT_SAFE, DleEvent
from appliance.line.profile import ModemProfile, builtin_profiles, detect_chipset, identification_commands
from appliance.line.voice_modem_call import (
    EXTENSION_PICKED_UP,
    IncomingModemCall,
    RingTracker,
    VoiceModemCall,
)
from appliance.line.voice_modem_channel import ABORT_RX_TRIPLE, CLEAR_TX_TRIPLE, COMMAND_TIMEOUT_S, ModemChannel
from appliance.line.voice_modem_recovery import ModemRecovery
from appliance.line.vsm import pick_voice_format, vsm_commands

_LOGGER = logging.getLogger(__name__)

_WATCH_POLL_S: Final = 0.05  # real seconds between looks of a call's watchdog
_RESET_TIMEOUT_S: Final = 5.0  # ATZ re-initialises the modem
_DRAIN_MARGIN_S: Final = 3.0  # after <DLE><ETX> the OK comes once the buffer has played out
_STREAM_STALL_S: Final = 2.0  # +VRX sends 8000 B/s; 2 s without one byte is a hung modem
# ...and the watchdog must also have looked this many times in a row: a busy
# machine that stalled our event loop for a moment is not a hung modem.
_STALL_POLLS: Final = 10
_BOOT_BAUD: Final = 115200  # before identification: what every supported profile uses (1.2)
_call_ids = itertools.count(1)


class VoiceModemDriver:
    """``LineDriver`` for one analog voice modem on ``url`` (a device, or a simulator's pty).

    Use ``async with VoiceModemDriver(url, clock=clock) as line`` (or ``start()`` /
    ``close()``). ``profile_name`` overrides detection; ``max_call_s`` is the hard
    cap on a call, the last layer of hang-up detection (telephony.md 1.10).
    ``silence_hangup_s`` asks the modem for ``<DLE>s``/``<DLE>q`` after that long
    without voice (``+VSD``); off by default, a silent caller may be thinking.
    Give a stable ``url`` (``/dev/serial/by-id/...``): after an unplug the driver
    reopens the same path.
    """

    name = "voice-modem"

    def __init__(
        self,
        url: str,
        *,
        clock: Clock,
        profile_name: str | None = None,
        max_call_s: float = 900.0,
        silence_hangup_s: float | None = None,
    ) -> None:
        if max_call_s <= 0:
            raise ValueError(f"max_call_s must be positive, got {max_call_s}")
        if silence_hangup_s is not None and not 0.1 <= silence_hangup_s <= 25.5:
            raise ValueError(f"silence_hangup_s must be 0.1-25.5 s (+VSD counts tenths), got {silence_hangup_s}")
        self.url = url
        self.clock = clock
        self.max_call_s = max_call_s
        self.silence_hangup_s = silence_hangup_s
        self._profile_name = profile_name
        self.profile: ModemProfile | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.mode_lock = asyncio.Lock()
        """Held by any sequence that moves the modem between command, +VRX and +VTX."""
        self._channel = ModemChannel(
            url,
            clock,
            on_audio=self._on_audio,
            on_event=self._on_stream_event,
            on_ring_line=self._on_ring_line,
            on_lost=lambda err: self._recovery.port_lost(err),
            on_timeout=lambda what: self._recovery.stalled(what),
        )
        self._recovery = ModemRecovery(
            self._channel,
            clock,
            mode_lock=self.mode_lock,
            line_idle=self._line_idle,
            end_call=self._end_call,
            initialise=self._initialise,
            baud=self._baud,
        )
        self._incoming: asyncio.Queue[IncomingModemCall | None] = asyncio.Queue()
        self._rings = RingTracker(
            clock, new_call=lambda: IncomingModemCall(clock, self.answer), offer=self._incoming.put_nowait
        )
        self._call: VoiceModemCall | None = None
        self._answering = False

    # --- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> VoiceModemDriver:
        try:
            await self.start()
        except BaseException:
            await self.close()  # no reader task or open port left behind
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Open the port, reset and identify the modem, enable caller ID.

        A modem that is missing or unknown at start-up is an error (the
        configuration is wrong); once started, the driver rides out unplugs and hangs.
        """
        await self._channel.open(self._baud())
        # A crashed run may have left the modem in +VRX: any byte ends it, <DLE>! cleanly (7.7).
        await self.write(ABORT_RX + b"\r")
        await self._initialise()
        self._recovery.state = "ready"
        self._supervisor = asyncio.create_task(self._recovery.supervise(), name=f"modem supervisor {self.url}")

    async def close(self) -> None:
        if self._recovery.state == "closed":
            return
        call = self._call
        if call is not None and self._recovery.ready:
            with contextlib.suppress(LineError):
                await self.finish_call(call, LINE_CLOSED)
        self._recovery.state = "closed"
        if self._supervisor is not None:
            self._supervisor.cancel()
        self._channel.stop_reading()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in [self._supervisor, *tasks]:
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await self._channel.close()  # waits for its reader, then closes the port
        self._incoming.put_nowait(None)

    def health(self) -> LineHealth:
        if self._recovery.ready and self.profile is not None:
            return LineHealth(ok=True, device=self.url, detail=self.profile.name)
        return LineHealth(ok=False, device=self.url, detail=self._recovery.describe())

    async def incoming(self) -> AsyncIterator[IncomingModemCall]:
        """Ringing calls, for as long as the driver is open (through unplugs and recoveries)."""
        while True:
            item = await self._incoming.get()
            if item is None:
                self._incoming.put_nowait(None)
                return
            yield item

    def _baud(self) -> int:
        return self.profile.init.baud if self.profile is not None else _BOOT_BAUD

    async def _initialise(self) -> ModemProfile:
        """Reset, identify, apply the profile's set-up, enable caller ID (telephony.md 1.4)."""
        command = self._channel.command
        await command("ATZ", timeout_s=_RESET_TIMEOUT_S)
        for cmd in ("ATE0", "ATV1"):
            await command(cmd)
        self._channel.echo_off()
        profiles = builtin_profiles()
        answers: dict[str, str] = {}
        for cmd in identification_commands(profiles):
            result, lines = await command(cmd, check=False)
            if result.code == "OK":
                answers[cmd] = "\n".join(lines)
        detected = detect_chipset(answers, profiles)
        if self._profile_name is not None:
            if self._profile_name not in profiles:
                raise LineError("modem-profile-unknown", f"no modem profile {self._profile_name!r}")
            profile = profiles[self._profile_name]
            if detected is not None and detected.name != profile.name:
                _LOGGER.warning("modem looks like %s; using configured %s", detected.name, profile.name)
        else:
            profile = detected
        if profile is None or profile.kind != "analog":
            raise LineError("modem-unknown", f"{self.url}: no analog voice modem profile matches {answers}")
        self.profile = profile
        _LOGGER.info("voice modem on %s: %s", self.url, profile.model)
        for cmd in profile.init.commands:
            await command(cmd, timeout_s=_RESET_TIMEOUT_S if cmd.startswith("ATZ") else COMMAND_TIMEOUT_S)
        self._channel.echo_off()
        for cmd in profile.caller_id.enable:
            # Calls can still be taken without caller ID (cheap modems lack it, 1.1).
            result, _ = await command(cmd, check=False)
            if result.code != "OK":
                _LOGGER.warning("modem refused %s: calls will come without caller ID", cmd)
        return profile

    async def write(self, data: bytes) -> None:
        """Write in order: a write whose caller was cancelled still completes before the next."""
        await self._channel.write(data)

    def _require_ready(self, what: str) -> None:
        if not self._recovery.ready:
            raise LineError("line-down", f"cannot {what}: {self.health().detail}")

    # --- voice mode (called by answer and by the call) ----------------------------------------

    async def answer(self, caller_id: str | None) -> VoiceModemCall:
        """Off-hook in voice mode (never ATA: 1.8), best format, then listen."""
        self._require_ready("answer")
        profile = self.profile
        if profile is None or profile.voice is None:
            raise LineError("modem-unknown", "no voice modem to answer with")
        voice = profile.voice
        async with self.mode_lock:
            self._require_ready("answer")
            if self._call is not None or self._answering:
                raise LineError("line-busy", "a call is already in progress")
            self._answering = True
            try:
                await self._channel.command(voice.enter)
                _, listing = await self._channel.command(voice.query_formats)
                chosen = pick_voice_format(profile, "\n".join(listing))
                if chosen is None:
                    raise LineError("voice-format-unsupported", f"none of µ-law, A-law, 8-bit in {listing}")
                for cmd in vsm_commands(profile, chosen):
                    result, _ = await self._channel.command(cmd, check=False)
                    if result.code == "OK":
                        break
                else:
                    raise LineError("voice-format-refused", f"{profile.name} refused +VSM {chosen.vsm_id}")
                if self.silence_hangup_s is not None:
                    vsd = f"AT+VSD={voice.vsd_sensitivity},{round(self.silence_hangup_s * 10)}"
                    if (await self._channel.command(vsd, check=False))[0].code != "OK":
                        _LOGGER.warning("modem refused %s: no silence hang-up from the modem", vsd)
                call = VoiceModemCall(
                    self, call_id=f"modem-{next(_call_ids)}", caller_id=caller_id, encoding=chosen.encoding
                )
                await self._channel.command(voice.answer, finals=("OK", "VCON"))
                self._call = call
                self._rings.reset()
                if profile.quirks.vrx_requires_vls5:
                    # New USR firmware records nothing after VLS=1 alone (1.8 field report).
                    await self._channel.command("AT+VLS=5", finals=("OK", "VCON"))
                await self.start_rx()
            except BaseException:
                self._call = None
                with contextlib.suppress(LineError):
                    await self._on_hook()
                raise
            finally:
                self._answering = False
        _LOGGER.info("answered %s (%s)", call.call_id, chosen.encoding)
        self._spawn(self._watchdog(call))
        return call

    async def start_rx(self) -> None:
        self._require_ready("listen")
        await self._channel.command("AT+VRX", finals=("CONNECT",), enters="vrx")

    async def stop_rx(self) -> None:
        if self._channel.mode != "vrx" or not self._recovery.ready:
            return
        triple = self.profile is not None and self.profile.dle is not None and self.profile.dle.triple_dle_exit
        await self._channel.end_stream(ABORT_RX_TRIPLE if triple else ABORT_RX, COMMAND_TIMEOUT_S, "<DLE>!")

    async def start_tx(self) -> None:
        self._require_ready("play")
        await self._channel.command("AT+VTX", finals=("CONNECT",), enters="vtx")

    async def end_tx(self, *, clear: bool, buffered_bytes: int) -> None:
        if self._channel.mode != "vtx" or not self._recovery.ready:
            return
        triple = self.profile is not None and self.profile.dle is not None and self.profile.dle.triple_dle_exit
        if clear:
            data = CLEAR_TX_TRIPLE if triple else CLEAR_TX
        else:
            data = END_TX_CONEXANT_SAFE if triple else END_TX
        timeout_s = buffered_bytes / 8000 + _DRAIN_MARGIN_S
        await self._channel.end_stream(data, timeout_s, "<DLE><ETX>")

    async def finish_call(self, call: VoiceModemCall, reason: str = BOX_HUNG_UP) -> None:
        """End ``call`` from either side: leave the voice stream, go on-hook, back to data class."""
        if call._finishing is None:
            call._finishing = asyncio.ensure_future(self._finish(call, reason))
        await asyncio.shield(call._finishing)

    async def _finish(self, call: VoiceModemCall, reason: str) -> None:
        call.mark_ended(reason)
        call.stop_playing()  # the box falls silent at once: play() clears the modem's buffer
        try:
            if self._recovery.ready:
                async with self.mode_lock:
                    if self._recovery.ready:  # the modem may have gone while we waited
                        if self._channel.mode == "vrx":
                            await self.stop_rx()
                        elif self._channel.mode == "vtx":
                            await self.end_tx(clear=True, buffered_bytes=0)
                        await self._on_hook()
        except LineError as err:
            # A timeout has declared the modem stalled; the supervisor puts it on-hook.
            _LOGGER.warning("call %s: could not hang up cleanly: %s", call.call_id, err.detail or err.code)
        finally:
            if self._call is call:
                self._call = None
            self._rings.reset()
            _LOGGER.info("call %s ended: %s", call.call_id, call.end_reason)

    async def _on_hook(self) -> None:
        if not self._recovery.ready:
            return  # the rescue after the trouble goes on-hook (ATH0)
        assert self.profile is not None and self.profile.voice is not None
        await self._channel.command(self.profile.voice.hang_up, finals=("OK", "VCON"))
        await self._channel.command(self.profile.voice.leave)

    async def _watchdog(self, call: VoiceModemCall) -> None:
        """The hard cap on a call, and the check that +VRX audio keeps coming."""
        deadline = self.clock.monotonic() + self.max_call_s
        quiet_polls = 0
        while not call.ended:
            now = self.clock.monotonic()
            if now >= deadline:
                _LOGGER.warning("call %s reached the %.0f s cap; hanging up", call.call_id, self.max_call_s)
                await self.finish_call(call, MAX_CALL_LENGTH)
                return
            if self._channel.mode == "vrx" and now - self._channel.last_rx_at >= _STREAM_STALL_S:
                quiet_polls += 1
                if quiet_polls >= _STALL_POLLS:
                    self._recovery.stalled(f"no audio from the modem for {now - self._channel.last_rx_at:.1f} s")
                    return
            else:
                quiet_polls = 0
            await asyncio.sleep(_WATCH_POLL_S)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- what the channel reads and the recovery declares -------------------------------------

    def _on_audio(self, data: bytes) -> None:
        call = self._call
        if call is not None:
            call.deliver_audio(data)

    def _on_stream_event(self, event: DleEvent) -> None:
        call = self._call
        dle = self.profile.dle if self.profile is not None else None
        if event.digit is not None:
            if call is not None:
                call.deliver_dtmf(event.digit)
            return
        if dle is None:
            return
        if call is None or call.ended:
            if event.code in dle.extension_off_hook_codes:
                self._rings.extension_lifted()
            else:
                _LOGGER.debug("DLE event %s with no call: ignored", event.code)
        elif event.code in dle.hangup_codes:
            _LOGGER.info("call %s: line says the caller hung up (<DLE>%s)", call.call_id, event.code)
            self._end_from_line(call, CALLER_HUNG_UP)
        elif event.code in dle.extension_off_hook_codes:
            # The person in the practice now talks with the caller: fall silent, let go.
            _LOGGER.info("call %s: an extension was picked up (<DLE>%s); leaving the line", call.call_id, event.code)
            self._end_from_line(call, EXTENSION_PICKED_UP)
        elif event.code in dle.call_waiting_codes:
            _LOGGER.debug("call %s: a second caller is waiting (<DLE>%s); ignored", call.call_id, event.code)
        elif event.code == "X":
            _LOGGER.debug("call %s: complex event packet (caller ID of a waiting call?) ignored", call.call_id)
        elif event.code in ("u", "o"):
            _LOGGER.debug("modem buffer %s", "underrun" if event.code == "u" else "overrun")
        else:
            # Includes the USR's <DLE>H after AT+VLS=1 (1.7) and codes nobody asked for.
            _LOGGER.debug("DLE event %s ignored", event.code)

    def _end_from_line(self, call: VoiceModemCall, reason: str) -> None:
        call.mark_ended(reason)
        self._spawn(self.finish_call(call, reason))

    def _end_call(self, reason: str) -> None:
        """The modem is in trouble: the call in progress, if any, is over."""
        call = self._call
        if call is not None and not call.ended:
            self._end_from_line(call, reason)

    def _line_idle(self) -> bool:
        """No call answered, being answered or ringing: the modem may be probed."""
        ringing = self._rings.current is not None and not self._rings.current.ringing.stopped
        return self._call is None and not self._answering and not ringing

    def _on_ring_line(self, line: str, is_ring: bool) -> None:
        if self._call is not None or self._answering:
            # Call-waiting caller ID during a call is not a new call (1.11).
            _LOGGER.debug("ring or caller ID during a call (call waiting): not a new call")
            return
        if self._rings.feed(line, is_ring=is_ring):
            self._spawn(self._rings.offer_after_quiet(lambda: self._call is None and not self._answering))
