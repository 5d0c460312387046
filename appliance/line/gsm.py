"""The GSM/LTE line: a module with 27.007 call control and PCM audio on a second port.

SIMCom SIM7600 first (telephony.md 2.1, 2.2, 2.5, 7): the AT port carries
commands and URCs, the audio port carries 20 ms frames of 160 x int16 LE at 8 kHz
(320 bytes) once ``AT+CPCMREG=1`` has been accepted.

    RING, +CLIP ──▶ GsmIncomingCall(caller_id)       (None when withheld/unavailable)
    answer():  ATA ─▶ OK, then AT+CPCMREG=1 until accepted (ERROR until the call is
               active: retried within the profile's window, 2.6 "total silence")
    GsmCall:   inbound() = audio-port frames + Dtmf from +RXDTMF, play() paced by
               the clock, hang_up() = AT+CHUP then AT+CPCMREG=0
    ends:      NO CARRIER | VOICE CALL: END | +CLCC stat 6 | CLCC watchdog

The watchdog (2.1, 2.6 "zombie call"): a USB hiccup can lose NO CARRIER, so
during a call ``AT+CLCC`` is polled every ``clcc_poll_s``; two valid answers
without a live call, or a port that no longer answers, end the call.

One reader task per port owns it (telephony.md 7.1) and demultiplexes command
results, URCs and the SMS ``"> "`` prompt (which has no line terminator, so it is
seen in the raw bytes, not by the line parser). Commands go one at a time under a
lock, each with a timeout measured on the injected clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import re
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field
from typing import Final

import numpy as np

from appliance.clock import Clock
from appliance.errors import LineError
from appliance.line.at import AtParser, Echo, FinalResult, Garbage, InformationLine, Urc, format_command
from appliance.line.base import Dtmf, Inbound, LineHealth, drop_queued_audio
from appliance.line.callerid import CallerIdCollector
from appliance.line.profile import GsmAudio, ModemProfile, builtin_profiles
from appliance.line.serial_port import SerialPort

_LOGGER = logging.getLogger(__name__)

_COMMAND_TIMEOUT_S: Final = 5.0  # clock seconds; a module that says nothing for this long is gone
_ANSWER_TIMEOUT_S: Final = 10.0
_SMS_PROMPT_TIMEOUT_S: Final = 5.0
_SMS_RESULT_TIMEOUT_S: Final = 60.0  # +CMGS comes seconds later, after the network acknowledges
_PCM_RETRY_S: Final = 0.2  # between AT+CPCMREG=1 attempts while the call is not yet active
_PLAY_LEAD_BYTES: Final = 640  # 40 ms written ahead of the line rate (telephony.md 7.4: 200-1000 B)
_BYTES_PER_S: Final = 16_000  # S16LE mono at 8 kHz
_SAMPLES_PER_FRAME: Final = 160
_CLCC_MISSES_TO_END: Final = 2  # two valid +CLCC answers without the call (2.1, callpilot)
_CLCC_LIVE: Final = frozenset({0, 1, 2, 3, 4, 5})  # 6 = released (SIMCom)
_CLCC_STAT: Final = re.compile(r"^\+CLCC:\s*\d+\s*,\s*\d+\s*,\s*(\d+)")
_CMGS_REF: Final = re.compile(r"^\+CMGS:\s*(\d+)")
_SMS_NUMBER: Final = re.compile(r"^\+?[0-9]{3,20}$")
# Characters whose GSM 03.38 code is their ASCII code: safe to type in CSCS="GSM".
# Anything else (accents, @, $, _, brackets) goes as UCS2 (telephony.md 2.5).
_GSM_PLAIN: Final = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 !\"#%&'()*+,-./:;<=>?\n\r"
)
_GSM_MAX_CHARS: Final = 160
_UCS2_MAX_CHARS: Final = 70  # one part; longer needs concatenation (PDU mode), not done here


@dataclass
class _Pending:
    command: str
    done: asyncio.Future[FinalResult]
    info: list[str] = field(default_factory=list)
    prompt: asyncio.Future[None] | None = None


class GsmIncomingCall:
    """A ringing call; ``caller_id`` is the +CLIP number, None when withheld."""

    def __init__(self, driver: GsmDriver) -> None:
        self._driver = driver
        self.caller_id: str | None = None
        self.gone = False
        self.offered = False
        self.collector = CallerIdCollector()

    async def answer(self) -> GsmCall:
        return await self._driver._answer(self)


class GsmCall:
    """An answered call: frames and key presses in, frames out, hang-up either side."""

    def __init__(self, driver: GsmDriver, call_id: str, caller_id: str | None) -> None:
        self._driver = driver
        self.call_id = call_id
        self.caller_id = caller_id
        self.end_reason = ""
        self.audio_on = False
        self._queue: asyncio.Queue[Inbound | None] = asyncio.Queue()
        self._ended = False

    @property
    def ended(self) -> bool:
        return self._ended

    def discard_received(self) -> int:
        return drop_queued_audio(self._queue)

    async def inbound(self) -> AsyncIterator[Inbound]:
        while True:
            item = await self._queue.get()
            if item is None:
                self._queue.put_nowait(None)  # a later reader also sees the end
                return
            yield item

    async def play(self, frames: AsyncIterable[np.ndarray]) -> int:
        port = self._driver._audio_port
        if port is None:
            raise LineError("no-audio-port", "this GSM line has no audio port configured")
        clock = self._driver.clock
        sent = 0
        sent_bytes = 0
        start: float | None = None
        async for frame in frames:
            if self._ended:
                break
            data = np.asarray(frame, dtype=np.int16).astype("<i2", copy=False).tobytes()
            if start is None:
                start = clock.monotonic()
            due = start + (sent_bytes - _PLAY_LEAD_BYTES) / _BYTES_PER_S
            await self._driver._sleep_until(due)
            if self._ended:
                break
            try:
                await port.write(data)
            except LineError as err:  # the port died: the watchdog ends the call
                _LOGGER.warning("audio port write failed: %s", err)
                break
            sent += 1
            sent_bytes += len(data)
        return sent

    async def hang_up(self) -> None:
        if self._ended:
            return
        self._end("local")
        await self._driver._hang_up_module()

    def _push(self, item: Inbound) -> None:
        if not self._ended:
            self._queue.put_nowait(item)

    def _end(self, reason: str) -> None:
        if self._ended:
            return
        self._ended = True
        self.end_reason = reason
        self.audio_on = False
        _LOGGER.info("call %s ended: %s", self.call_id, reason)
        self._queue.put_nowait(None)
        self._driver._call_ended(self)


class GsmDriver:
    """A ``LineDriver`` for a GSM/LTE module; ``await start()`` before use."""

    def __init__(
        self,
        control_url: str,
        *,
        audio_url: str | None = None,
        clock: Clock,
        profile_name: str = "sim7600",
    ) -> None:
        profile = builtin_profiles().get(profile_name)
        if profile is None or profile.kind != "gsm" or profile.gsm is None:
            raise LineError("profile-unknown", f"no GSM profile named {profile_name!r}")
        self.profile: ModemProfile = profile
        self._gsm = profile.gsm
        self._pcm: GsmAudio | None = next((a for a in self._gsm.audio if a.path == "serial_pcm"), None)
        if audio_url is not None and (self._pcm is None or self._pcm.sample_rate_hz != 8000):
            raise LineError("audio-unsupported", f"{profile_name}: only 8 kHz serial PCM is supported")
        self.name = f"gsm:{profile_name}"
        self.clock = clock
        self._control_url = control_url
        self._audio_url = audio_url
        self._port: SerialPort | None = None
        self._audio_port: SerialPort | None = None
        self._parser = AtParser(echo=True)
        self._lock = asyncio.Lock()
        self._pending: _Pending | None = None
        self._tail = bytearray()  # bytes after the last CR/LF: where the "> " prompt shows
        self._rings: asyncio.Queue[GsmIncomingCall | None] = asyncio.Queue()
        self._ringing: GsmIncomingCall | None = None
        self._call: GsmCall | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._lost: LineError | None = None
        self._closed = False
        self._call_ids = itertools.count(1)

    # --- LineDriver ------------------------------------------------------------------

    async def start(self) -> GsmDriver:
        """Open the ports and initialise the module (profile init, +CLIP, SMS text mode)."""
        self._port = await SerialPort.open(self._control_url, baud=self.profile.init.baud)
        if self._audio_url is not None:
            self._audio_port = await SerialPort.open(self._audio_url)
            self._spawn(self._read_audio(self._audio_port))
        self._spawn(self._read_control(self._port))
        for cmd in (*self.profile.init.commands, *self.profile.caller_id.enable, self._gsm.sms.text_mode):
            final, _ = await self._command(cmd)
            if cmd.upper() == "ATE0" and final.code == "OK":
                self._parser.echo = False
            if final.code != "OK":
                if cmd.upper() in ("AT", "ATE0"):
                    raise LineError("modem-init-failed", f"{cmd} answered {final.text}")
                _LOGGER.warning("init command %s answered %s", cmd, final.text)
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
                if self._lost is not None and not self._closed:
                    raise self._lost
                return
            if not ringing.gone:
                yield ringing

    def health(self) -> LineHealth:
        if self._lost is not None:
            return LineHealth(ok=False, device=self._control_url, detail=str(self._lost))
        return LineHealth(ok=self._port is not None, device=self._control_url)

    async def close(self) -> None:
        if self._closed:
            return
        if self._call is not None and not self._call.ended and self._lost is None:
            with contextlib.suppress(LineError):
                await self._call.hang_up()
        self._closed = True
        self._rings.put_nowait(None)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for port in (self._port, self._audio_port):
            if port is not None:
                await port.close()

    # --- SMS -------------------------------------------------------------------------

    async def send_sms(self, number: str, text: str) -> int:
        """Send one SMS in text mode; the message reference. UCS2 when the text needs it."""
        if not _SMS_NUMBER.match(number):
            raise LineError("sms-number-invalid", "not a phone number")
        sms = self._gsm.sms
        ucs2 = not set(text) <= _GSM_PLAIN
        limit = _UCS2_MAX_CHARS if ucs2 else _GSM_MAX_CHARS
        if not text or len(text) > limit:
            raise LineError("sms-too-long", f"{len(text)} characters; one part holds 1-{limit}")
        await self._expect_ok(sms.text_mode)
        await self._expect_ok(sms.ucs2_charset if ucs2 else sms.gsm_charset)
        try:
            await self._expect_ok(sms.ucs2_parameters if ucs2 else sms.gsm_parameters)
            if ucs2:
                final, info = await self._submit_sms(_ucs2_hex(number), _ucs2_hex(text))
            else:
                final, info = await self._submit_sms(number, text)
        finally:
            if ucs2:  # URC numbers (+CLIP) are printed in the current charset (2.5)
                with contextlib.suppress(LineError):
                    await self._command(sms.gsm_charset)
        if final.code != "OK":
            raise LineError("sms-refused", final.text)
        for line in info:
            if match := _CMGS_REF.match(line):
                return int(match.group(1))
        return -1

    async def _expect_ok(self, cmd: str) -> None:
        final, _ = await self._command(cmd)
        if final.code != "OK":
            raise LineError("sms-refused", f"{cmd} answered {final.text}")

    async def _submit_sms(self, number: str, body: str) -> tuple[FinalResult, list[str]]:
        port = self._require_port()
        cmd = f'AT+CMGS="{number}"'
        async with self._lock:
            loop = asyncio.get_running_loop()
            pending = _Pending(cmd, loop.create_future(), prompt=loop.create_future())
            self._pending = pending
            self._parser.expect_echo(cmd)
            try:
                await port.write(format_command(cmd))
                assert pending.prompt is not None
                await self._wait_first(pending.prompt, pending.done, _SMS_PROMPT_TIMEOUT_S, cmd)
                if pending.done.done():  # ERROR instead of the prompt
                    return pending.done.result(), pending.info
                await port.write(body.encode("ascii") + b"\x1a")
                final = await self._wait_first(pending.done, None, _SMS_RESULT_TIMEOUT_S, cmd)
            except LineError:
                with contextlib.suppress(LineError):
                    await port.write(b"\x1b")  # ESC: abandon the message, leave text entry
                raise
            finally:
                self._pending = None
            assert final is not None
            return final, pending.info

    # --- commands --------------------------------------------------------------------

    def _require_port(self) -> SerialPort:
        if self._lost is not None:
            raise self._lost
        if self._port is None:
            raise LineError("line-not-started", "GsmDriver.start() was not called")
        return self._port

    async def _command(self, cmd: str, *, timeout_s: float = _COMMAND_TIMEOUT_S) -> tuple[FinalResult, list[str]]:
        """Send one command line; its final result and information lines."""
        async with self._lock:
            port = self._require_port()
            pending = _Pending(cmd, asyncio.get_running_loop().create_future())
            self._pending = pending
            self._parser.expect_echo(cmd)
            try:
                _LOGGER.debug("DTE> %r", cmd)
                await port.write(format_command(cmd))
                final = await self._wait_first(pending.done, None, timeout_s, cmd)
            finally:
                self._pending = None
            assert final is not None
            return final, pending.info

    async def _wait_first(
        self, first: asyncio.Future[FinalResult] | asyncio.Future[None], other: asyncio.Future[FinalResult] | None,
        timeout_s: float, what: str,
    ) -> FinalResult | None:
        """Wait until ``first`` (or ``other``) is done, ``timeout_s`` on the clock."""
        deadline = self.clock.monotonic() + timeout_s
        futures = {first} if other is None else {first, other}
        while not any(f.done() for f in futures):
            remaining = deadline - self.clock.monotonic()
            if remaining <= 0:
                raise LineError("at-timeout", f"no answer to {what} in {timeout_s} s")
            await asyncio.wait(futures, timeout=self._real_s(remaining), return_when=asyncio.FIRST_COMPLETED)
        return first.result() if first.done() else None  # type: ignore[return-value]

    def _real_s(self, clock_s: float) -> float:
        return max(clock_s / getattr(self.clock, "rate", 1.0), 0.0005)

    async def _sleep_until(self, t: float) -> None:
        while (remaining := t - self.clock.monotonic()) > 0:
            await asyncio.sleep(self._real_s(remaining))

    async def _sleep(self, clock_s: float) -> None:
        await self._sleep_until(self.clock.monotonic() + clock_s)

    def _spawn(self, coro: object) -> None:
        task = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- reading ---------------------------------------------------------------------

    async def _read_control(self, port: SerialPort) -> None:
        try:
            while True:
                chunk = await port.read()
                _LOGGER.debug("DCE< %r", chunk)
                self._watch_prompt(chunk)
                for item in self._parser.feed(chunk):
                    self._dispatch(item)
        except LineError as err:
            self._on_port_lost(err)

    def _on_port_lost(self, err: LineError) -> None:
        _LOGGER.warning("GSM control port lost: %s", err)
        self._lost = err
        if self._pending is not None and not self._pending.done.done():
            self._pending.done.set_exception(err)
        self._rings.put_nowait(None)
        # A call in progress is ended by its CLCC watchdog, which also catches the
        # quieter failure (a live port whose module lost the NO CARRIER).

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
            case FinalResult(code="NO CARRIER") if pending is None or pending.command != self._gsm.answer:
                # Not the answer to ATA: the caller left (NO CARRIER is not a result of
                # AT+CLCC or AT+CPCMREG); the command in flight keeps waiting for its own.
                self._on_hangup_signal("NO CARRIER")
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
                self._on_urc(item, pending)

    def _on_urc(self, urc: Urc, pending: _Pending | None) -> None:
        line = urc.line or f"{urc.name}: {urc.value}"
        if urc.name == "+CLCC" and pending is not None and pending.command.upper() == "AT+CLCC":
            pending.info.append(line)
        if urc.name in ("RING", "+CRING", "+CLIP"):
            self._on_ring_line(line)
        elif urc.name == "+CLCC":
            match = _CLCC_STAT.match(line)
            if match and int(match.group(1)) not in _CLCC_LIVE:
                self._on_hangup_signal("CLCC released")
        elif urc.name == "MISSED_CALL":
            self._on_hangup_signal("MISSED_CALL")
        elif line.startswith(self._gsm.dtmf_urc):
            self._on_dtmf(line[len(self._gsm.dtmf_urc) :].strip())
        elif any(line.startswith(end) for end in self._gsm.hangup_urcs):
            self._on_hangup_signal(urc.name)

    def _on_ring_line(self, line: str) -> None:
        if self._call is not None and not self._call.ended:
            return  # call waiting: not answered (one call per line)
        ringing = self._ringing
        if ringing is None or ringing.gone:
            ringing = self._ringing = GsmIncomingCall(self)
        ringing.collector.feed(line)
        result = ringing.collector.result
        if not ringing.offered and (ringing.collector.complete or ringing.collector.rings >= 2):
            ringing.caller_id = result.number if result else None
            ringing.offered = True
            self._rings.put_nowait(ringing)

    def _on_hangup_signal(self, reason: str) -> None:
        if self._ringing is not None:
            self._ringing.gone = True
            self._ringing = None
        if self._call is not None and not self._call.ended:
            self._call._end(f"remote: {reason}")

    def _on_dtmf(self, value: str) -> None:
        call = self._call
        if call is None or call.ended or not value:
            return
        match self._gsm.dtmf_value:
            case "ascii_code":
                digit = chr(int(value)) if value.isdigit() else ""
            case _:  # "digit" ("5") and "digit_ms" ("5,40")
                digit = value.split(",")[0].strip()
        if len(digit) == 1 and digit in "0123456789*#ABCD":
            call._push(Dtmf(digit))

    async def _read_audio(self, port: SerialPort) -> None:
        frame_bytes = _SAMPLES_PER_FRAME * 2
        buffer = bytearray()
        try:
            while True:
                chunk = await port.read()
                call = self._call
                if call is None or not call.audio_on:
                    buffer.clear()  # bytes of no call, or from before CPCMREG=1
                    continue
                buffer += chunk
                while len(buffer) >= frame_bytes:
                    frame = np.frombuffer(bytes(buffer[:frame_bytes]), dtype="<i2").astype(np.int16)
                    del buffer[:frame_bytes]
                    call._push(frame)
        except LineError as err:
            _LOGGER.warning("GSM audio port lost: %s", err)

    # --- calls -----------------------------------------------------------------------

    async def _answer(self, ringing: GsmIncomingCall) -> GsmCall:
        if ringing.gone:
            raise LineError("call-gone", "the caller hung up before the answer")
        final, _ = await self._command(self._gsm.answer, timeout_s=_ANSWER_TIMEOUT_S)
        if final.code != "OK":
            ringing.gone = True
            raise LineError("call-gone", f"{self._gsm.answer} answered {final.text}")
        call = GsmCall(self, f"gsm-{next(self._call_ids)}", ringing.caller_id)
        self._call = call
        if self._ringing is ringing:
            self._ringing = None
        self._spawn(self._watchdog(call))
        try:
            await self._enable_audio(call)
        except LineError:
            await call.hang_up()
            raise
        return call

    async def _enable_audio(self, call: GsmCall) -> None:
        pcm = self._pcm
        if pcm is None or self._audio_port is None:
            _LOGGER.warning("no audio port: the call has no sound")
            return
        deadline = self.clock.monotonic() + pcm.enable_retry_window_s
        attempts = 0
        while True:
            attempts += 1
            refused = ""
            for cmd in pcm.enable:
                final, _ = await self._command(cmd)
                if final.code != "OK":
                    refused = f"{cmd} answered {final.text}"
                    break
            if not refused:
                call.audio_on = not call.ended
                _LOGGER.info("call audio on after %d attempt(s)", attempts)
                return
            if call.ended:
                raise LineError("call-gone", "the call ended before its audio was on")
            if self.clock.monotonic() >= deadline:
                raise LineError("audio-enable-failed", f"{refused} for {pcm.enable_retry_window_s} s")
            await self._sleep(_PCM_RETRY_S)

    async def _watchdog(self, call: GsmCall) -> None:
        """Poll AT+CLCC during the call: the port can die without NO CARRIER (2.1)."""
        misses = 0
        while not call.ended:
            await self._sleep(self._gsm.clcc_poll_s)
            if call.ended:
                return
            try:
                final, lines = await self._command("AT+CLCC")
            except LineError as err:
                call._end(f"watchdog: {err.code}")
                return
            if final.code != "OK":
                continue  # not a valid answer: says nothing about the call
            live = any((m := _CLCC_STAT.match(line)) and int(m.group(1)) in _CLCC_LIVE for line in lines)
            misses = 0 if live else misses + 1
            if misses >= _CLCC_MISSES_TO_END:
                call._end("watchdog: no call in +CLCC")
                return

    def _call_ended(self, call: GsmCall) -> None:
        if call.end_reason != "local" and self._lost is None and self._pcm is not None:
            self._spawn(self._disable_audio())

    async def _disable_audio(self) -> None:
        if self._pcm is None or self._lost is not None:
            return
        for cmd in self._pcm.disable:
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


def _ucs2_hex(text: str) -> str:
    """Text as AT+CSCS="UCS2" wants it: UTF-16BE in upper-case hex (callpilot send_sms)."""
    return text.encode("utf-16-be").hex().upper()
