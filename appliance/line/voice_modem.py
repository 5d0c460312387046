"""Analog USB voice modem (V.253: USR5637, Conexant CX930xx) behind the line boundary.

One reader task owns the port (telephony.md 7.1) and sends every byte to the
parser of the state the modem is in:

    command   ``AtParser``: results complete the one pending command; RING and
              caller-ID lines go to the ringing call while idle
    vrx       ``DleDecoder``: audio -> int16 frames, DTMF -> ``Dtmf`` once per
              press, the profile's codes -> hang-up, extension picked up, call
              waiting; after ``<DLE><ETX>`` the rest is command text again
    vtx       ``DleDecoder`` too (key presses and hang-up arrive while we
              play); its "audio" is the modem's result text after our end

The switch happens inside a read: ``CONNECT`` and the first audio bytes often
arrive together, so command text is parsed line by line and the bytes after the
``CONNECT`` line go to the stream decoder.

Commands go through ``_command`` one at a time, each with a timeout in clock
seconds. Half duplex only (``+VRX`` / ``+VTX``); ``+VTR`` is left out (no echo
cancellation on Conexant, unverified on USR: telephony.md 1.8).

Staying up. A phone line must keep answering without anyone restarting the box:

    unplugged      the port fails (USB pulled: EIO). The call ends ("line_lost"),
                   the driver looks for the device path every second and, once
                   it is back, opens and re-initialises it.
    not answering  a command times out, or ``+VRX`` brings no byte for 2 s: the
                   call ends ("modem_not_responding") and the driver rescues the
                   modem (telephony.md 7.7: ``<DLE>!``, ``+++`` with guard time,
                   ``ATH0``, ``ATZ``), re-probes and re-initialises it, and
                   tries again every few seconds until it answers.

Meanwhile ``health()`` says so in plain words and ``incoming()`` simply yields
nothing; it never raises. Errors reach the call session only as the end of the
call (``VoiceModemCall.end_reason``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from appliance.clock import Clock
from appliance.errors import LineError
from appliance.line.at import AtItem, AtParser, Echo, FinalResult, Garbage, InformationLine, Urc, format_command
from appliance.line.base import LineHealth
from appliance.line.dle import (
    ABORT_RX,
    CLEAR_TX,
    END,
    END_TX,
    END_TX_CONEXANT_SAFE,
    Audio,
    DleDecoder,
    DleEvent,
)
from appliance.line.profile import ModemProfile, builtin_profiles, detect_chipset, identification_commands
from appliance.line.serial_port import SerialPort
from appliance.line.base import BOX_HUNG_UP, CALLER_HUNG_UP, LINE_CLOSED, LINE_LOST, MAX_CALL_LENGTH
from appliance.line.voice_modem_call import (
    EXTENSION_PICKED_UP,
    MODEM_NOT_RESPONDING,
    IncomingModemCall,
    RingTracker,
    VoiceModemCall,
)
from appliance.line.vsm import pick_voice_format, vsm_commands

_LOGGER = logging.getLogger(__name__)

_WAIT_POLL_S: Final = 0.005  # real seconds between looks at the clock while waiting
_SLEEP_POLL_S: Final = 0.01  # real seconds between looks at the clock in _sleep
_WATCH_POLL_S: Final = 0.05  # real seconds between looks of a call's watchdog
_COMMAND_TIMEOUT_S: Final = 3.0  # clock seconds; every command here answers in well under 1 s
_RESET_TIMEOUT_S: Final = 5.0  # ATZ re-initialises the modem
_DRAIN_MARGIN_S: Final = 3.0  # after <DLE><ETX> the OK comes once the buffer has played out
_STREAM_STALL_S: Final = 2.0  # +VRX sends 8000 B/s; 2 s without one byte is a hung modem
# ...and the watchdog must also have looked this many times in a row: a busy
# machine that stalled our event loop for a moment is not a hung modem.
_STALL_POLLS: Final = 10
_GUARD_S: Final = 1.1  # +++ needs 1 s of silence each side (CallAttendantNext uses 1.1 s, 1.4)
_REPLUG_POLL_S: Final = 1.0  # clock seconds between looks for an unplugged modem's device
_RECOVER_RETRY_S: Final = 2.0  # clock seconds between rescue attempts on a silent modem
_IDLE_PROBE_S: Final = 60.0  # an idle modem is asked "AT" this often: a hang shows before a call does
_ABORT_RX_TRIPLE: Final = b"\x10\x10" + ABORT_RX  # Zoom 3095 needed <DLE><DLE><DLE>! (1.8)
_CLEAR_TX_TRIPLE: Final = b"\x10\x18" + END_TX_CONEXANT_SAFE
_BOOT_BAUD: Final = 115200  # before identification: what every supported profile uses (1.2)
_HEALTH: Final = {
    "unplugged": "modem unplugged, waiting for it",
    "unresponsive": "modem not answering, re-initialising",
    "starting": "starting",
    "closed": "line closed",
}
_call_ids = itertools.count(1)

State = Literal["starting", "ready", "unplugged", "unresponsive", "closed"]


@dataclass
class _Pending:
    command: str
    finals: frozenset[str]
    enters: str | None  # the stream a CONNECT opens ("vrx" / "vtx")
    future: asyncio.Future[FinalResult]
    lines: list[str] = field(default_factory=list)


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
        self._state: State = "starting"
        self._port: SerialPort | None = None
        self._port_dead = False
        self._reader: asyncio.Task[None] | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._trouble = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._at = AtParser(echo=True)  # echo is on after power-up and ATZ (1.4)
        self._decoder = DleDecoder()
        self._mode = "command"
        self._pending: _Pending | None = None
        self._command_lock = asyncio.Lock()
        self.mode_lock = asyncio.Lock()
        """Held by any sequence that moves the modem between command, +VRX and +VTX."""
        self._write_chain: asyncio.Future[None] | None = None
        self._incoming: asyncio.Queue[IncomingModemCall | None] = asyncio.Queue()
        self._rings = RingTracker(
            clock, new_call=lambda: IncomingModemCall(clock, self.answer), offer=self._incoming.put_nowait
        )
        self._last_rx_at = 0.0
        self._last_command_at = 0.0
        self._call: VoiceModemCall | None = None
        self._answering = False
        self._closed = False

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
        await self._open_port()
        # A crashed run may have left the modem in +VRX: any byte ends it, <DLE>! cleanly (7.7).
        await self.write(ABORT_RX + b"\r")
        await self._initialise()
        self._state = "ready"
        self._supervisor = asyncio.create_task(self._supervise(), name=f"modem supervisor {self.url}")

    async def close(self) -> None:
        if self._closed:
            return
        call = self._call
        if call is not None and self._state == "ready":
            with contextlib.suppress(LineError):
                await self.finish_call(call, LINE_CLOSED)
        self._closed = True
        self._state = "closed"
        for task in [self._supervisor, self._reader, *self._tasks]:
            if task is not None:
                task.cancel()
        for task in [self._supervisor, self._reader, *self._tasks]:
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self._port is not None:
            await self._port.close()
        self._incoming.put_nowait(None)

    def health(self) -> LineHealth:
        if self._state == "ready" and self.profile is not None:
            return LineHealth(ok=True, device=self.url, detail=self.profile.name)
        return LineHealth(ok=False, device=self.url, detail=_HEALTH.get(self._state, "no modem detected"))

    async def incoming(self) -> AsyncIterator[IncomingModemCall]:
        """Ringing calls, for as long as the driver is open (through unplugs and recoveries)."""
        while True:
            item = await self._incoming.get()
            if item is None:
                self._incoming.put_nowait(None)
                return
            yield item

    async def _open_port(self) -> None:
        baud = self.profile.init.baud if self.profile is not None else _BOOT_BAUD
        port = await SerialPort.open(self.url, baud=baud)
        self._port, self._port_dead = port, False
        self._mode = "command"
        self._at = AtParser(echo=True)
        self._decoder = DleDecoder()
        self._reader = asyncio.create_task(self._read_forever(port), name=f"modem reader {self.url}")

    async def _initialise(self) -> None:
        """Reset, identify, apply the profile's set-up, enable caller ID (telephony.md 1.4)."""
        await self._command("ATZ", timeout_s=_RESET_TIMEOUT_S)
        for cmd in ("ATE0", "ATV1"):
            await self._command(cmd)
        self._at.echo = False
        profiles = builtin_profiles()
        answers: dict[str, str] = {}
        for cmd in identification_commands(profiles):
            result, lines = await self._command(cmd, check=False)
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
            await self._command(cmd, timeout_s=_RESET_TIMEOUT_S if cmd.startswith("ATZ") else _COMMAND_TIMEOUT_S)
        self._at.echo = False
        for cmd in profile.caller_id.enable:
            # Calls can still be taken without caller ID (cheap modems lack it, 1.1).
            result, _ = await self._command(cmd, check=False)
            if result.code != "OK":
                _LOGGER.warning("modem refused %s: calls will come without caller ID", cmd)

    # --- staying up: unplugged, not answering ---------------------------------------------------

    def _declare(self, state: Literal["unplugged", "unresponsive"], reason: str, err: LineError) -> None:
        """Something is wrong with the modem: end what depends on it and wake the supervisor."""
        if self._closed or self._state == state:
            return
        if state == "unresponsive" and self._state != "ready":
            return  # the supervisor is already at work; its own timeouts are its business
        self._state = state
        _LOGGER.warning("voice modem on %s: %s (%s)", self.url, _HEALTH[state], err.detail or err.code)
        pending = self._pending
        if pending is not None and not pending.future.done():
            pending.future.set_exception(err)
        call = self._call
        if call is not None and not call.ended:
            call.mark_ended(reason)
            self._spawn(self.finish_call(call, reason))
        self._trouble.set()

    def _port_lost(self, err: LineError) -> None:
        if self._closed or self._port_dead:
            return
        self._port_dead = True
        self._declare("unplugged", LINE_LOST, err)

    def _stalled(self, what: str) -> None:
        self._declare("unresponsive", MODEM_NOT_RESPONDING, LineError("modem-not-responding", what))

    async def _supervise(self) -> None:
        """Bring the modem back after trouble; probe it now and then while idle."""
        self._last_command_at = self.clock.monotonic()
        while True:
            if self._trouble.is_set():
                self._trouble.clear()
                await self._restore()
            elif self._idle() and self.clock.monotonic() - self._last_command_at >= _IDLE_PROBE_S:
                async with self.mode_lock:
                    if self._idle():
                        with contextlib.suppress(LineError):  # a timeout declares the modem stalled
                            await self._command("AT")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._trouble.wait(), _WATCH_POLL_S)

    def _idle(self) -> bool:
        ringing = self._rings.current is not None and not self._rings.current.ringing.stopped
        return self._state == "ready" and self._call is None and not self._answering and not ringing

    async def _restore(self) -> None:
        """Until the modem answers again: reopen its port if it went away, rescue, re-initialise."""
        attempts = 0
        while not self._closed:
            attempts += 1
            try:
                if self._port is None or self._port_dead:
                    await self._reopen()
                async with self.mode_lock:
                    await self._rescue()
                    await self._initialise()
            except LineError as err:
                if err.code in ("port-lost", "port-open-failed"):
                    self._port_dead = True  # reopen it on the next attempt
                    self._state = "unplugged"
                else:
                    self._state = "unresponsive"
                log = _LOGGER.info if attempts == 1 else _LOGGER.debug
                log("voice modem on %s: %s (%s)", self.url, self.health().detail, err.detail or err.code)
                await self._sleep(_REPLUG_POLL_S if self._state == "unplugged" else _RECOVER_RETRY_S)
                continue
            if self._port_dead:
                continue  # unplugged again during the last step
            self._state = "ready"
            self._trouble.clear()  # trouble seen while recovering is over too
            _LOGGER.info("voice modem on %s is back: %s", self.url, self.profile.model if self.profile else "?")
            return

    async def _reopen(self) -> None:
        old, self._port = self._port, None
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        if old is not None:
            await old.close()
        await self._open_port()  # LineError("port-open-failed") while the device is absent

    async def _rescue(self) -> None:
        """Get a modem of unknown state back to command state, on-hook (telephony.md 7.7)."""
        self._mode = "command"
        self._at = AtParser(echo=True)
        self._decoder = DleDecoder()
        # Ends a +VRX (<DLE>!) or a +VTX (<DLE><CAN> ... <ETX>), in the triple form a
        # Zoom 3095 needs and a conforming modem takes as data 0x10 + code (1.8).
        await self.write(_ABORT_RX_TRIPLE + _CLEAR_TX_TRIPLE)
        await self._sleep(_GUARD_S)  # whatever the modem answers to that is read and dropped
        await self.write(b"+++")  # data mode, if a stray ATA left it there
        await self._sleep(_GUARD_S)
        await self._command("ATH0", check=False)

    async def _sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of clock time."""
        deadline = self.clock.monotonic() + seconds
        while self.clock.monotonic() < deadline:
            await asyncio.sleep(_SLEEP_POLL_S)

    # --- commands and writes ------------------------------------------------------------------

    async def write(self, data: bytes) -> None:
        """Write in order: a write whose caller was cancelled still completes before the next."""
        port = self._port
        if port is None or self._port_dead:
            raise LineError("port-lost", f"{self.url}: the modem is unplugged")
        if _LOGGER.isEnabledFor(logging.DEBUG):
            _LOGGER.debug("DTE> %r", data[:64])
        previous = self._write_chain

        async def after_previous() -> None:
            if previous is not None:
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await previous
            await port.write(data)

        task = asyncio.ensure_future(after_previous())
        self._write_chain = task
        try:
            await asyncio.shield(task)
        except LineError as err:
            if port is self._port:
                self._port_lost(err)
            raise

    async def _command(
        self,
        cmd: str,
        *,
        finals: tuple[str, ...] = ("OK",),
        enters: str | None = None,
        timeout_s: float = _COMMAND_TIMEOUT_S,
        check: bool = True,
    ) -> tuple[FinalResult, list[str]]:
        """Send one command line and wait for its final result (and information lines)."""
        async with self._command_lock:
            if self._mode != "command":
                raise LineError("modem-state", f"{cmd}: the modem is in {self._mode}, not command state")
            future: asyncio.Future[FinalResult] = asyncio.get_running_loop().create_future()
            pending = _Pending(cmd, frozenset(finals), enters, future)
            self._pending = pending
            self._at.expect_echo(cmd)
            self._last_command_at = self.clock.monotonic()
            try:
                await self.write(format_command(cmd))
                result = await self._wait(future, timeout_s, cmd)
            finally:
                self._pending = None
        if check and result.code not in finals:
            raise LineError("modem-command-failed", f"{cmd}: {result.text or result.code}")
        return result, pending.lines

    async def _wait_result(self, data: bytes, timeout_s: float, what: str) -> FinalResult:
        """Write a stream control sequence and wait for the modem's closing OK."""
        async with self._command_lock:
            future: asyncio.Future[FinalResult] = asyncio.get_running_loop().create_future()
            self._pending = _Pending(what, frozenset(("OK", "VCON")), None, future)
            try:
                await self.write(data)
                return await self._wait(future, timeout_s, what)
            finally:
                self._pending = None

    async def _wait(self, future: asyncio.Future[FinalResult], timeout_s: float, what: str) -> FinalResult:
        deadline = self.clock.monotonic() + timeout_s
        while not future.done():
            if self.clock.monotonic() >= deadline:
                self._stalled(f"no answer to {what}")
                if future.done():
                    future.exception()  # set by _stalled; this timeout is the error to report
                raise LineError("modem-timeout", f"{self.url}: no answer to {what}")
            await asyncio.wait([future], timeout=_WAIT_POLL_S)
        return future.result()

    def _require_ready(self, what: str) -> None:
        if self._state != "ready":
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
                await self._command(voice.enter)
                _, listing = await self._command(voice.query_formats)
                chosen = pick_voice_format(profile, "\n".join(listing))
                if chosen is None:
                    raise LineError("voice-format-unsupported", f"none of µ-law, A-law, 8-bit in {listing}")
                for cmd in vsm_commands(profile, chosen):
                    result, _ = await self._command(cmd, check=False)
                    if result.code == "OK":
                        break
                else:
                    raise LineError("voice-format-refused", f"{profile.name} refused +VSM {chosen.vsm_id}")
                if self.silence_hangup_s is not None:
                    vsd = f"AT+VSD={voice.vsd_sensitivity},{round(self.silence_hangup_s * 10)}"
                    if (await self._command(vsd, check=False))[0].code != "OK":
                        _LOGGER.warning("modem refused %s: no silence hang-up from the modem", vsd)
                call = VoiceModemCall(
                    self, call_id=f"modem-{next(_call_ids)}", caller_id=caller_id, encoding=chosen.encoding
                )
                await self._command(voice.answer, finals=("OK", "VCON"))
                self._call = call
                self._rings.reset()
                if profile.quirks.vrx_requires_vls5:
                    # New USR firmware records nothing after VLS=1 alone (1.8 field report).
                    await self._command("AT+VLS=5", finals=("OK", "VCON"))
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
        await self._command("AT+VRX", finals=("CONNECT",), enters="vrx")

    async def stop_rx(self) -> None:
        if self._mode != "vrx" or self._state != "ready":
            return
        triple = self.profile is not None and self.profile.dle is not None and self.profile.dle.triple_dle_exit
        await self._wait_result(_ABORT_RX_TRIPLE if triple else ABORT_RX, _COMMAND_TIMEOUT_S, "<DLE>!")

    async def start_tx(self) -> None:
        self._require_ready("play")
        await self._command("AT+VTX", finals=("CONNECT",), enters="vtx")

    async def end_tx(self, *, clear: bool, buffered_bytes: int) -> None:
        if self._mode != "vtx" or self._state != "ready":
            return
        triple = self.profile is not None and self.profile.dle is not None and self.profile.dle.triple_dle_exit
        if clear:
            data = _CLEAR_TX_TRIPLE if triple else CLEAR_TX
        else:
            data = END_TX_CONEXANT_SAFE if triple else END_TX
        timeout_s = buffered_bytes / 8000 + _DRAIN_MARGIN_S
        await self._wait_result(data, timeout_s, "<DLE><ETX>")

    async def finish_call(self, call: VoiceModemCall, reason: str = BOX_HUNG_UP) -> None:
        """End ``call`` from either side: leave the voice stream, go on-hook, back to data class."""
        if call._finishing is None:
            call._finishing = asyncio.ensure_future(self._finish(call, reason))
        await asyncio.shield(call._finishing)

    async def _finish(self, call: VoiceModemCall, reason: str) -> None:
        call.mark_ended(reason)
        call.stop_playing()  # the box falls silent at once: play() clears the modem's buffer
        try:
            if self._state == "ready":
                async with self.mode_lock:
                    if self._state == "ready":  # the modem may have gone while we waited
                        if self._mode == "vrx":
                            await self.stop_rx()
                        elif self._mode == "vtx":
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
        if self._state != "ready":
            return  # the rescue after the trouble goes on-hook (ATH0)
        assert self.profile is not None and self.profile.voice is not None
        await self._command(self.profile.voice.hang_up, finals=("OK", "VCON"))
        await self._command(self.profile.voice.leave)

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
            if self._mode == "vrx" and now - self._last_rx_at >= _STREAM_STALL_S:
                quiet_polls += 1
                if quiet_polls >= _STALL_POLLS:
                    self._stalled(f"no audio from the modem for {now - self._last_rx_at:.1f} s")
                    return
            else:
                quiet_polls = 0
            await asyncio.sleep(_WATCH_POLL_S)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- the reader ---------------------------------------------------------------------------

    async def _read_forever(self, port: SerialPort) -> None:
        try:
            while True:
                chunk = await port.read()
                self._last_rx_at = self.clock.monotonic()
                if _LOGGER.isEnabledFor(logging.DEBUG):
                    _LOGGER.debug("DCE< %s", chunk.hex(" "))
                while chunk:
                    if self._mode == "command":
                        chunk = self._feed_command(chunk)
                    elif self._mode == "vrx":
                        chunk = self._feed_vrx(chunk)
                    else:
                        chunk = self._feed_vtx(chunk)
        except LineError as err:
            if port is self._port:
                self._port_lost(err)

    def _feed_command(self, chunk: bytes) -> bytes:
        """Parse line by line; return the bytes after a CONNECT that opened a stream."""
        start = 0
        while start < len(chunk):
            end = chunk.find(b"\n", start)
            end = len(chunk) if end < 0 else end + 1
            for item in self._at.feed(chunk[start:end]):
                self._on_at_item(item)
            start = end
            if self._mode != "command":
                return chunk[start:]
        return b""

    def _feed_vrx(self, chunk: bytes) -> bytes:
        call = self._call
        for item in self._decoder.feed(chunk):
            if isinstance(item, Audio):
                if call is not None:
                    call.deliver_audio(item.data)
            elif item.code == END:
                self._mode = "command"
                return self._decoder.take_rest()
            else:
                self._on_stream_event(item)
        return b""

    def _feed_vtx(self, chunk: bytes) -> bytes:
        for item in self._decoder.feed(chunk):
            if isinstance(item, Audio):
                # The modem sends no audio in +VTX: this is its result text after our end.
                for at_item in self._at.feed(item.data):
                    if isinstance(at_item, FinalResult):
                        self._mode = "command"
                    self._on_at_item(at_item)
            elif item.code == END:
                self._mode = "command"
                return self._decoder.take_rest()
            else:
                self._on_stream_event(item)
        return b""

    def _on_at_item(self, item: AtItem) -> None:
        pending = self._pending
        match item:
            case FinalResult():
                if pending is None or pending.future.done():
                    _LOGGER.debug("result %s with no command waiting: skipped", item.code)
                    return
                if item.code == "CONNECT" and pending.enters is not None:
                    self._decoder = DleDecoder()
                    self._mode = pending.enters
                    self._last_rx_at = self.clock.monotonic()
                pending.future.set_result(item)
            case InformationLine(text=text):
                if pending is not None:
                    pending.lines.append(text)
                else:
                    _LOGGER.debug("unexpected line from the modem skipped: %r", text[:80])
            case Urc(name=name, line=line) if name == "RING" or name in ("DATE", "TIME", "NMBR", "NAME", "MESG"):
                self._on_ring_line(line, is_ring=name == "RING")
            case DleEvent(code="R"):
                self._on_ring_line("RING", is_ring=True)  # Conexant in +FCLASS=8 (1.7)
            case DleEvent():
                self._on_stream_event(item)
            case Garbage(data=data):
                _LOGGER.debug("modem sent %d bytes of garbage: skipped", len(data))
            case Echo():
                pass
            case _:
                _LOGGER.debug("line from the modem not for us: %r", item)

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

    def _on_ring_line(self, line: str, *, is_ring: bool) -> None:
        if self._call is not None or self._answering:
            # Call-waiting caller ID during a call is not a new call (1.11).
            _LOGGER.debug("ring or caller ID during a call (call waiting): not a new call")
            return
        if self._rings.feed(line, is_ring=is_ring):
            self._spawn(self._rings.offer_after_quiet(lambda: self._call is None and not self._answering))
