"""Analog USB voice modem (V.253: USR5637, Conexant CX930xx) behind the line boundary.

One reader task owns the port (telephony.md 7.1) and sends every byte to the
parser of the state the modem is in:

    command   ``AtParser``: results complete the one pending command; RING and
              caller-ID lines go to the ``CallerIdCollector`` while idle
    vrx       ``DleDecoder``: audio -> int16 frames, DTMF -> ``Dtmf`` once per
              press, the profile's hang-up codes -> the call ends; after
              ``<DLE><ETX>`` the rest is command text again
    vtx       ``DleDecoder`` too (key presses and hang-up arrive while we
              play); its "audio" is the modem's result text after our end

The switch happens inside a read: ``CONNECT`` and the first audio bytes often
arrive together, so command text is parsed line by line and the bytes after the
``CONNECT`` line go to the stream decoder.

Commands go through ``_command`` one at a time, each with a timeout in clock
seconds: a modem that stops answering is a ``LineError``, never a hang.
Half duplex only (``+VRX`` / ``+VTX``); ``+VTR`` is left out (no echo cancellation
on Conexant, unverified on USR: telephony.md 1.8).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from typing import Any, Final

from appliance.clock import Clock
from appliance.errors import LineError
from appliance.line.at import AtItem, AtParser, FinalResult, InformationLine, Urc, format_command
from appliance.line.base import LineHealth
from appliance.line.callerid import CallerIdCollector
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
from appliance.line.voice_modem_call import VoiceModemCall
from appliance.line.vsm import pick_voice_format, vsm_commands

_LOGGER = logging.getLogger(__name__)

_WAIT_POLL_S: Final = 0.005  # real seconds between looks at the clock while waiting
_COMMAND_TIMEOUT_S: Final = 3.0  # clock seconds; every command here answers in well under 1 s
_RESET_TIMEOUT_S: Final = 5.0  # ATZ re-initialises the modem
_DRAIN_MARGIN_S: Final = 3.0  # after <DLE><ETX> the OK comes once the buffer has played out
_CID_QUIET_S: Final = 0.5  # caller-ID lines come in one burst; this long without one ends it
_RINGS_WITHOUT_CID: Final = 2  # CID comes before ring 2 if at all (telephony.md 1.5)
_NEW_CALL_GAP_S: Final = 10.0  # rings come every 6 s; a longer gap means a new caller
_ABORT_RX_TRIPLE: Final = b"\x10\x10" + ABORT_RX  # Zoom 3095 needed <DLE><DLE><DLE>! (1.8)
_CLEAR_TX_TRIPLE: Final = b"\x10\x18" + END_TX_CONEXANT_SAFE
_BOOT_BAUD: Final = 115200  # before identification: what every supported profile uses (1.2)
_call_ids = itertools.count(1)


@dataclass
class _Pending:
    command: str
    finals: frozenset[str]
    enters: str | None  # the stream a CONNECT opens ("vrx" / "vtx")
    future: asyncio.Future[FinalResult]
    lines: list[str] = field(default_factory=list)


class _IncomingModemCall:
    """A ringing call (implements ``appliance.line.base.IncomingCall``)."""

    def __init__(self, driver: VoiceModemDriver, caller_id: str | None) -> None:
        self.caller_id = caller_id
        self._driver = driver

    async def answer(self) -> VoiceModemCall:
        return await self._driver.answer(self.caller_id)


class VoiceModemDriver:
    """``LineDriver`` for one analog voice modem on ``url`` (a device, or a simulator's pty).

    Use ``async with VoiceModemDriver(url, clock=clock) as line`` (or ``start()`` /
    ``close()``). ``profile_name`` overrides detection; ``max_call_s`` is the hard
    cap on a call, the last layer of hang-up detection (telephony.md 1.10).
    """

    name = "voice-modem"

    def __init__(
        self, url: str, *, clock: Clock, profile_name: str | None = None, max_call_s: float = 900.0
    ) -> None:
        if max_call_s <= 0:
            raise ValueError(f"max_call_s must be positive, got {max_call_s}")
        self.url = url
        self.clock = clock
        self.max_call_s = max_call_s
        self._profile_name = profile_name
        self.profile: ModemProfile | None = None
        self._port: SerialPort | None = None
        self._reader: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._at = AtParser(echo=True)  # echo is on after power-up and ATZ (1.4)
        self._decoder = DleDecoder()
        self._mode = "command"
        self._pending: _Pending | None = None
        self._command_lock = asyncio.Lock()
        self.mode_lock = asyncio.Lock()
        """Held by any sequence that moves the modem between command, +VRX and +VTX."""
        self._write_chain: asyncio.Future[None] | None = None
        self._incoming: asyncio.Queue[_IncomingModemCall | BaseException | None] = asyncio.Queue()
        self._collector = CallerIdCollector()
        self._offered = False
        self._quiet_watch = False  # a task waits for the end of the caller-ID burst
        self._last_ring_line_at: float | None = None
        self._call: VoiceModemCall | None = None
        self._answering = False
        self._lost: LineError | None = None
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
        """Open the port, reset and identify the modem, enable caller ID."""
        self._port = await SerialPort.open(self.url, baud=_BOOT_BAUD)
        self._reader = asyncio.create_task(self._read_forever(), name=f"modem reader {self.url}")
        # A crashed run may have left the modem in +VRX: any byte ends it, <DLE>! cleanly (7.7).
        await self.write(ABORT_RX + b"\r")
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
            self.profile = profiles[self._profile_name]
            if detected is not None and detected.name != self.profile.name:
                _LOGGER.warning("modem looks like %s; using configured %s", detected.name, self.profile.name)
        else:
            self.profile = detected
        if self.profile is None or self.profile.kind != "analog":
            self.profile = None
            raise LineError("modem-unknown", f"{self.url}: no analog voice modem profile matches {answers}")
        _LOGGER.info("voice modem on %s: %s", self.url, self.profile.model)
        for cmd in self.profile.init.commands:
            await self._command(cmd, timeout_s=_RESET_TIMEOUT_S if cmd.startswith("ATZ") else _COMMAND_TIMEOUT_S)
        self._at.echo = False
        for cmd in self.profile.caller_id.enable:
            # Calls can still be taken without caller ID (cheap modems lack it, 1.1).
            result, _ = await self._command(cmd, check=False)
            if result.code != "OK":
                _LOGGER.warning("modem refused %s: calls will come without caller ID", cmd)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        call = self._call
        if call is not None and self._lost is None:
            with contextlib.suppress(LineError):
                await self.finish_call(call, "line closed")
        for task in [self._reader, *self._tasks]:
            if task is not None:
                task.cancel()
        for task in [self._reader, *self._tasks]:
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self._port is not None:
            await self._port.close()
        self._incoming.put_nowait(None)

    def health(self) -> LineHealth:
        if self._lost is not None:
            return LineHealth(ok=False, device=self.url, detail=self._lost.code)
        if self.profile is None:
            return LineHealth(ok=False, device=self.url, detail="no modem detected")
        return LineHealth(ok=True, device=self.url, detail=self.profile.name)

    async def incoming(self) -> AsyncIterator[_IncomingModemCall]:
        while True:
            item = await self._incoming.get()
            if item is None:
                self._incoming.put_nowait(None)
                return
            if isinstance(item, BaseException):
                self._incoming.put_nowait(item)
                raise item
            yield item

    # --- commands and writes ------------------------------------------------------------------

    async def write(self, data: bytes) -> None:
        """Write in order: a write whose caller was cancelled still completes before the next."""
        if self._lost is not None:
            raise self._lost
        if self._port is None:
            raise LineError("line-closed", "the modem port is not open")
        if _LOGGER.isEnabledFor(logging.DEBUG):
            _LOGGER.debug("DTE> %r", data[:64])
        previous, port = self._write_chain, self._port

        async def after_previous() -> None:
            if previous is not None:
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await previous
            await port.write(data)

        task = asyncio.ensure_future(after_previous())
        self._write_chain = task
        await asyncio.shield(task)

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
                raise LineError("modem-timeout", f"{self.url}: no answer to {what}")
            await asyncio.wait([future], timeout=_WAIT_POLL_S)
        return future.result()

    # --- voice mode (called by answer and by the call) ----------------------------------------

    async def answer(self, caller_id: str | None) -> VoiceModemCall:
        """Off-hook in voice mode (never ATA: 1.8), best format, then listen."""
        profile = self.profile
        if profile is None or profile.voice is None:
            raise LineError("modem-unknown", "no voice modem to answer with")
        voice = profile.voice
        async with self.mode_lock:
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
                call = VoiceModemCall(
                    self, call_id=f"modem-{next(_call_ids)}", caller_id=caller_id, encoding=chosen.encoding
                )
                await self._command(voice.answer, finals=("OK", "VCON"))
                self._call = call
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
        await self._command("AT+VRX", finals=("CONNECT",), enters="vrx")

    async def stop_rx(self) -> None:
        if self._mode != "vrx":
            return
        triple = self.profile is not None and self.profile.dle is not None and self.profile.dle.triple_dle_exit
        await self._wait_result(_ABORT_RX_TRIPLE if triple else ABORT_RX, _COMMAND_TIMEOUT_S, "<DLE>!")

    async def start_tx(self) -> None:
        await self._command("AT+VTX", finals=("CONNECT",), enters="vtx")

    async def end_tx(self, *, clear: bool, buffered_bytes: int) -> None:
        if self._mode != "vtx":
            return
        triple = self.profile is not None and self.profile.dle is not None and self.profile.dle.triple_dle_exit
        if clear:
            data = _CLEAR_TX_TRIPLE if triple else CLEAR_TX
        else:
            data = END_TX_CONEXANT_SAFE if triple else END_TX
        timeout_s = buffered_bytes / 8000 + _DRAIN_MARGIN_S
        await self._wait_result(data, timeout_s, "<DLE><ETX>")

    async def finish_call(self, call: VoiceModemCall, reason: str) -> None:
        """End ``call`` from either side: leave the voice stream, go on-hook, back to data class."""
        if call._finishing is None:
            call._finishing = asyncio.ensure_future(self._finish(call, reason))
        await asyncio.shield(call._finishing)

    async def _finish(self, call: VoiceModemCall, reason: str) -> None:
        call.mark_ended(reason)
        call.stop_playing()
        try:
            if self._lost is None:
                async with self.mode_lock:
                    if self._mode == "vrx":
                        await self.stop_rx()
                    elif self._mode == "vtx":
                        await self.end_tx(clear=True, buffered_bytes=0)
                    await self._on_hook()
        finally:
            if self._call is call:
                self._call = None
            self._collector.reset()
            self._offered = False
            self._last_ring_line_at = None
            _LOGGER.info("call %s ended: %s", call.call_id, reason)

    async def _on_hook(self) -> None:
        assert self.profile is not None and self.profile.voice is not None
        await self._command(self.profile.voice.hang_up, finals=("OK", "VCON"))
        await self._command(self.profile.voice.leave)

    async def _watchdog(self, call: VoiceModemCall) -> None:
        deadline = self.clock.monotonic() + self.max_call_s
        while not call.ended:
            if self.clock.monotonic() >= deadline:
                _LOGGER.warning("call %s reached the %.0f s cap; hanging up", call.call_id, self.max_call_s)
                with contextlib.suppress(LineError):
                    await self.finish_call(call, "maximum call length")
                return
            await asyncio.sleep(0.05)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- the reader ---------------------------------------------------------------------------

    async def _read_forever(self) -> None:
        assert self._port is not None
        try:
            while True:
                chunk = await self._port.read()
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
            self._port_lost(err)

    def _port_lost(self, err: LineError) -> None:
        _LOGGER.error("voice modem on %s lost: %s", self.url, err)
        self._lost = err
        if self._pending is not None and not self._pending.future.done():
            self._pending.future.set_exception(err)
        if self._call is not None:
            self._call.mark_ended("modem lost")
            self._call = None
        self._incoming.put_nowait(err)

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
                    _LOGGER.debug("result %s with no command waiting", item.code)
                    return
                if item.code == "CONNECT" and pending.enters is not None:
                    self._decoder = DleDecoder()
                    self._mode = pending.enters
                pending.future.set_result(item)
            case InformationLine(text=text):
                if pending is not None:
                    pending.lines.append(text)
            case Urc(name=name, line=line) if name == "RING" or name in ("DATE", "TIME", "NMBR", "NAME", "MESG"):
                self._on_ring_line(line, is_ring=name == "RING")
            case DleEvent(code="R"):
                self._on_ring_line("RING", is_ring=True)  # Conexant in +FCLASS=8 (1.7)
            case DleEvent():
                self._on_stream_event(item)
            case _:
                pass  # echo, garbage, URCs of other devices

    def _on_stream_event(self, event: DleEvent) -> None:
        call = self._call
        dle = self.profile.dle if self.profile is not None else None
        if event.digit is not None:
            if call is not None:
                call.deliver_dtmf(event.digit)
            return
        if dle is not None and event.code in dle.hangup_codes and call is not None and not call.ended:
            _LOGGER.info("call %s: line says the caller hung up (<DLE>%s)", call.call_id, event.code)
            call.mark_ended(f"caller hung up (<DLE>{event.code})")
            self._spawn(self.finish_call(call, call.end_reason))
        elif event.code in ("u", "o"):
            _LOGGER.debug("modem buffer %s", "underrun" if event.code == "u" else "overrun")
        else:
            # Includes the USR's <DLE>H after AT+VLS=1 and extension events (1.7).
            _LOGGER.debug("DLE event %s ignored", event.code)

    def _on_ring_line(self, line: str, *, is_ring: bool) -> None:
        if self._call is not None or self._answering:
            return  # call-waiting caller ID during a call is not a new call (1.11)
        now = self.clock.monotonic()
        if self._last_ring_line_at is not None and now - self._last_ring_line_at > _NEW_CALL_GAP_S:
            self._collector.reset()
            self._offered = False
        self._last_ring_line_at = now
        self._collector.feed(line)
        if self._offered:
            return
        if is_ring and (self._collector.complete or self._collector.rings >= _RINGS_WITHOUT_CID):
            self._offer()
        elif self._collector.complete and not self._quiet_watch:
            self._quiet_watch = True
            self._spawn(self._offer_after_quiet())

    async def _offer_after_quiet(self) -> None:
        """Offer once the caller-ID lines stop (NAME follows NMBR; ETSI has no RING after)."""
        try:
            while not self._offered and self._call is None and not self._answering:
                last = self._last_ring_line_at
                if last is None:
                    return
                if self.clock.monotonic() - last >= _CID_QUIET_S:
                    self._offer()
                    return
                await asyncio.sleep(_WAIT_POLL_S)
        finally:
            self._quiet_watch = False

    def _offer(self) -> None:
        self._offered = True
        cid = self._collector.result
        self._incoming.put_nowait(_IncomingModemCall(self, cid.number if cid is not None else None))
