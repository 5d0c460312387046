"""The AT port of a GSM module: one command at a time, everything else to the driver.

One reader task owns the port (telephony.md 7.1) and sorts what the module says:
the final result and information lines of the command in flight, the SMS
``"> "`` prompt (no line terminator, so it is seen in the raw bytes, not by the
line parser), and everything unsolicited (RING, +CLIP, +CLCC, NO CARRIER...),
which goes to the driver's ``on_urc``. Commands go one at a time under a lock,
each with a timeout measured on the injected clock.

``NO CARRIER`` is a final result only of the answer command; at any other time
it is the caller leaving, even while ``AT+CLCC`` or ``AT+CPCMREG`` is in flight
(neither answers NO CARRIER), so it reaches ``on_urc`` as a ``Urc``.

A read or write failure (USB unplugged: EIO) fails the command in flight and
calls ``on_lost`` once; the channel is then dead and the driver opens a new one.
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
from appliance.line.at import AtParser, Echo, FinalResult, Garbage, InformationLine, Urc, format_command
from appliance.line.serial_port import SerialPort

_LOGGER = logging.getLogger(__name__)

COMMAND_TIMEOUT_S: Final = 5.0  # clock seconds; a module that says nothing for this long is gone
_MIN_WAIT_S: Final = 0.0005  # real seconds: asyncio cannot wait less usefully


def real_seconds(clock: Clock, clock_s: float) -> float:
    """Real seconds for ``clock_s`` of the clock (a ``ScaledClock`` runs ``rate`` times faster)."""
    return max(clock_s / getattr(clock, "rate", 1.0), _MIN_WAIT_S)


async def sleep_until(clock: Clock, t: float) -> None:
    """Sleep until ``clock.monotonic()`` reaches ``t``."""
    while (remaining := t - clock.monotonic()) > 0:
        await asyncio.sleep(real_seconds(clock, remaining))


async def clock_sleep(clock: Clock, clock_s: float) -> None:
    await sleep_until(clock, clock.monotonic() + clock_s)


@dataclass
class _Pending:
    command: str
    done: asyncio.Future[FinalResult]
    info: list[str] = field(default_factory=list)
    prompt: asyncio.Future[None] | None = None

    @property
    def listing(self) -> str:
        """``+CLCC`` for ``AT+CLCC``: the name its information lines carry (they parse as URCs)."""
        body = self.command[2:].upper()
        return body if body.startswith("+") and body[1:].isalnum() else ""


class AtChannel:
    """Commands and their answers on one opened AT port; URCs to ``on_urc``."""

    def __init__(
        self,
        port: SerialPort,
        clock: Clock,
        *,
        answer_command: str,
        on_urc: Callable[[Urc], None],
        on_lost: Callable[[AtChannel, LineError], None],
    ) -> None:
        self.port = port
        self.clock = clock
        self._answer = answer_command.upper()
        self._on_urc = on_urc
        self._on_lost = on_lost
        self._parser = AtParser(echo=True)  # echo is on until ATE0 is accepted (power-on default)
        self._lock = asyncio.Lock()
        self._pending: _Pending | None = None
        self._tail = bytearray()  # bytes after the last CR/LF: where the "> " prompt shows
        self.lost: LineError | None = None
        self._reader = asyncio.get_running_loop().create_task(self._read_forever())

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        await self.port.close()

    # --- commands ------------------------------------------------------------------------

    async def command(self, cmd: str, *, timeout_s: float = COMMAND_TIMEOUT_S) -> tuple[FinalResult, list[str]]:
        """Send one command line; its final result and information lines."""
        async with self._lock:
            pending = self._begin(cmd)
            try:
                await self._write(format_command(cmd))
                final = await self._wait_first(pending.done, None, timeout_s, cmd)
            finally:
                self._pending = None
            assert final is not None
            if cmd.upper() == "ATE0" and final.code == "OK":
                self._parser.echo = False
            return final, pending.info

    async def submit_sms(
        self, number: str, body: str, *, prompt_timeout_s: float, result_timeout_s: float
    ) -> tuple[FinalResult, list[str]]:
        """``AT+CMGS="<number>"``, wait for ``"> "``, type ``body`` and Ctrl-Z; the result."""
        cmd = f'AT+CMGS="{number}"'
        async with self._lock:
            pending = self._begin(cmd, prompt=True)
            try:
                await self._write(format_command(cmd))
                assert pending.prompt is not None
                await self._wait_first(pending.prompt, pending.done, prompt_timeout_s, cmd)
                if pending.done.done():  # ERROR instead of the prompt
                    return pending.done.result(), pending.info
                await self._write(body.encode("ascii") + b"\x1a")
                final = await self._wait_first(pending.done, None, result_timeout_s, cmd)
            except LineError:
                with contextlib.suppress(LineError):
                    await self._write(b"\x1b")  # ESC: abandon the message, leave text entry
                raise
            finally:
                self._pending = None
            assert final is not None
            return final, pending.info

    def _begin(self, cmd: str, *, prompt: bool = False) -> _Pending:
        if self.lost is not None:
            raise self.lost
        loop = asyncio.get_running_loop()
        pending = _Pending(cmd, loop.create_future(), prompt=loop.create_future() if prompt else None)
        self._pending = pending
        self._parser.expect_echo(cmd)
        _LOGGER.debug("DTE> %r", cmd)
        return pending

    async def _write(self, data: bytes) -> None:
        try:
            await self.port.write(data)
        except LineError as err:
            self._lose(err)
            raise

    async def _wait_first(
        self,
        first: asyncio.Future[FinalResult] | asyncio.Future[None],
        other: asyncio.Future[FinalResult] | None,
        timeout_s: float,
        what: str,
    ) -> FinalResult | None:
        """Wait until ``first`` (or ``other``) is done, ``timeout_s`` on the clock."""
        deadline = self.clock.monotonic() + timeout_s
        futures = {first} if other is None else {first, other}
        while not any(f.done() for f in futures):
            remaining = deadline - self.clock.monotonic()
            if remaining <= 0:
                raise LineError("at-timeout", f"no answer to {what} in {timeout_s:g} s")
            await asyncio.wait(
                futures, timeout=real_seconds(self.clock, remaining), return_when=asyncio.FIRST_COMPLETED
            )
        for future in futures:
            if future.done() and future.exception() is not None:
                raise future.exception()  # type: ignore[misc]
        return first.result() if first.done() else None  # type: ignore[return-value]

    # --- reading -------------------------------------------------------------------------

    async def _read_forever(self) -> None:
        try:
            while True:
                chunk = await self.port.read()
                _LOGGER.debug("DCE< %r", chunk)
                self._watch_prompt(chunk)
                for item in self._parser.feed(chunk):
                    self._dispatch(item)
        except LineError as err:
            self._lose(err)

    def _lose(self, err: LineError) -> None:
        if self.lost is not None:
            return
        self.lost = err
        pending = self._pending
        if pending is not None and not pending.done.done():
            pending.done.set_exception(err)
            pending.done.exception()  # retrieved here: the waiter may already be gone
        self._on_lost(self, err)

    def _watch_prompt(self, chunk: bytes) -> None:
        last = max(chunk.rfind(b"\r"), chunk.rfind(b"\n"))
        if last >= 0:
            self._tail = bytearray(chunk[last + 1 :])
        else:
            self._tail += chunk
        del self._tail[:-16]
        pending = self._pending
        if pending is not None and pending.prompt is not None and not pending.prompt.done():
            if self._tail.startswith(b">"):
                pending.prompt.set_result(None)

    def _dispatch(self, item: object) -> None:
        pending = self._pending
        match item:
            case Echo() | Garbage():
                return
            case FinalResult(code="NO CARRIER") if pending is None or pending.command.upper() != self._answer:
                self._on_urc(Urc("NO CARRIER", "", "NO CARRIER"))
            case FinalResult():
                if pending is not None and not pending.done.done():
                    pending.done.set_result(item)
                else:
                    _LOGGER.debug("stray result %s", item.text)
            case InformationLine(text=text):
                if text.startswith(">"):
                    return  # what is left of the SMS prompt once the next CR arrives
                if pending is not None:
                    pending.info.append(text)
            case Urc():
                if pending is not None and pending.listing and item.name == pending.listing:
                    pending.info.append(item.line)  # "+CLCC: ..." answering AT+CLCC
                self._on_urc(item)
            case _:
                return  # a DLE pair in the noise: nothing a GSM module sends on purpose
