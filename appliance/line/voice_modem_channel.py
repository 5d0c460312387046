"""The port of an analog voice modem: one command at a time, and the reader that sorts what comes back.

One reader task owns the port (telephony.md 7.1) and sends every byte to the
parser of the state the modem is in:

    command   ``AtParser``: results complete the one pending command; RING and
              caller-ID lines go to ``on_ring_line``
    vrx       ``DleDecoder``: audio to ``on_audio``, every other ``<DLE>`` code
              (key presses, hang-up, extension, call waiting) to ``on_event``;
              after ``<DLE><ETX>`` the rest is command text again
    vtx       ``DleDecoder`` too (key presses and hang-up arrive while we
              play); its "audio" is the modem's result text after our end

The switch happens inside a read: ``CONNECT`` and the first audio bytes often
arrive together, so command text is parsed line by line and the bytes after the
``CONNECT`` line go to the stream decoder.

Commands go through ``command`` one at a time, each with a timeout in clock
seconds. What the channel cannot handle it reports and leaves to the driver: a
read or write failing on the port (USB unplugged: EIO) calls ``on_lost`` once
per opened port; a command the modem never answers calls ``on_timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from appliance.clock import Clock
from appliance.errors import LineError
from appliance.line.at import AtItem, AtParser, Echo, FinalResult, Garbage, InformationLine, Urc, format_command
from appliance.line.dle import ABORT_RX, END, END_TX_CONEXANT_SAFE, Audio, DleDecoder, DleEvent
from appliance.line.serial_port import SerialPort

_LOGGER = logging.getLogger(__name__)

_WAIT_POLL_S: Final = 0.005  # real seconds between looks at the clock while waiting
COMMAND_TIMEOUT_S: Final = 3.0  # clock seconds; every command here answers in well under 1 s
ABORT_RX_TRIPLE: Final = b"\x10\x10" + ABORT_RX  # Zoom 3095 needed <DLE><DLE><DLE>! (1.8)
CLEAR_TX_TRIPLE: Final = b"\x10\x18" + END_TX_CONEXANT_SAFE


@dataclass
class _Pending:
    command: str
    finals: frozenset[str]
    enters: str | None  # the stream a CONNECT opens ("vrx" / "vtx")
    future: asyncio.Future[FinalResult]
    lines: list[str] = field(default_factory=list)


class ModemChannel:
    """Commands, stream control and the reader on the port at ``url`` (reopened in place after an unplug)."""

    def __init__(
        self,
        url: str,
        clock: Clock,
        *,
        on_audio: Callable[[bytes], None],
        on_event: Callable[[DleEvent], None],
        on_ring_line: Callable[[str, bool], None],
        on_lost: Callable[[LineError], None],
        on_timeout: Callable[[str], None],
    ) -> None:
        self.url = url
        self.clock = clock
        self._on_audio = on_audio
        self._on_event = on_event
        self._on_ring_line = on_ring_line
        self._on_lost = on_lost
        self._on_timeout = on_timeout
        self._port: SerialPort | None = None
        self._port_dead = False
        self._reader: asyncio.Task[None] | None = None
        self._at = AtParser(echo=True)  # echo is on after power-up and ATZ (1.4)
        self._decoder = DleDecoder()
        self._mode = "command"
        self._pending: _Pending | None = None
        self._command_lock = asyncio.Lock()
        self._write_chain: asyncio.Future[None] | None = None
        self._last_rx_at = 0.0
        self._last_command_at = 0.0

    @property
    def mode(self) -> str:
        """``"command"``, or the stream a CONNECT opened: ``"vrx"`` / ``"vtx"``."""
        return self._mode

    @property
    def last_rx_at(self) -> float:
        """Clock time of the last byte read (or of the CONNECT that opened a stream)."""
        return self._last_rx_at

    @property
    def last_command_at(self) -> float:
        """Clock time the last command line was sent."""
        return self._last_command_at

    @property
    def alive(self) -> bool:
        """A port is open and has not failed."""
        return self._port is not None and not self._port_dead

    # --- the port -----------------------------------------------------------------------------

    async def open(self, baud: int) -> None:
        """Open the port and start reading; LineError("port-open-failed") while the device is absent."""
        port = await SerialPort.open(self.url, baud=baud)
        self._port, self._port_dead = port, False
        self.reset()
        self._reader = asyncio.create_task(self._read_forever(port), name=f"modem reader {self.url}")

    async def reopen(self, baud: int) -> None:
        """Drop the port (gone or not) and open the same path again."""
        old, self._port = self._port, None
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        if old is not None:
            await old.close()
        await self.open(baud)

    def reset(self) -> None:
        """Parse what comes next as command text from a modem that echoes, whatever came before."""
        self._mode = "command"
        self._at = AtParser(echo=True)
        self._decoder = DleDecoder()

    def echo_off(self) -> None:
        """The modem no longer echoes command lines (after ATE0)."""
        self._at.echo = False

    def stop_reading(self) -> None:
        """Cancel the reader; ``close`` waits for it."""
        if self._reader is not None:
            self._reader.cancel()

    async def close(self) -> None:
        self.stop_reading()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        if self._port is not None:
            await self._port.close()

    def _lose(self, port: SerialPort, err: LineError) -> None:
        if port is not self._port or self._port_dead:
            return
        self._port_dead = True
        self._on_lost(err)

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
            self._lose(port, err)
            raise

    async def command(
        self,
        cmd: str,
        *,
        finals: tuple[str, ...] = ("OK",),
        enters: str | None = None,
        timeout_s: float = COMMAND_TIMEOUT_S,
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

    async def end_stream(self, data: bytes, timeout_s: float, what: str) -> FinalResult:
        """Write a stream control sequence and wait for the modem's closing OK."""
        async with self._command_lock:
            future: asyncio.Future[FinalResult] = asyncio.get_running_loop().create_future()
            self._pending = _Pending(what, frozenset(("OK", "VCON")), None, future)
            try:
                await self.write(data)
                return await self._wait(future, timeout_s, what)
            finally:
                self._pending = None

    def abort(self, err: LineError) -> None:
        """Fail the command in flight, if any, with ``err``."""
        pending = self._pending
        if pending is not None and not pending.future.done():
            pending.future.set_exception(err)

    async def _wait(self, future: asyncio.Future[FinalResult], timeout_s: float, what: str) -> FinalResult:
        deadline = self.clock.monotonic() + timeout_s
        while not future.done():
            if self.clock.monotonic() >= deadline:
                self._on_timeout(f"no answer to {what}")
                if future.done():
                    future.exception()  # set by on_timeout; this timeout is the error to report
                raise LineError("modem-timeout", f"{self.url}: no answer to {what}")
            await asyncio.wait([future], timeout=_WAIT_POLL_S)
        return future.result()

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
            self._lose(port, err)

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
        for item in self._decoder.feed(chunk):
            if isinstance(item, Audio):
                self._on_audio(item.data)
            elif item.code == END:
                self._mode = "command"
                return self._decoder.take_rest()
            else:
                self._on_event(item)
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
                self._on_event(item)
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
                self._on_ring_line(line, name == "RING")
            case DleEvent(code="R"):
                self._on_ring_line("RING", True)  # Conexant in +FCLASS=8 (1.7)
            case DleEvent():
                self._on_event(item)
            case Garbage(data=data):
                _LOGGER.debug("modem sent %d bytes of garbage: skipped", len(data))
            case Echo():
                pass
            case _:
                _LOGGER.debug("line from the modem not for us: %r", item)
