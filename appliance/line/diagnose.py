"""``appliance diagnose-line PORT``: ask a modem what it is, without ever touching the line.

The probe, in order (telephony.md 1.1-1.6, 2.1-2.2):

    wake        AT; if silent, <DLE>! <DLE><ETX> (a modem left in +VRX/+VTX by a
                crashed program), then +++ with a guard second each side, then AT;
                a modem found streaming is put on-hook (ATH0): it was in a call
    framing     ATE1, ATV1 (echo on: the transcript reads like a terminal session)
    identify    ATI0, ATI3, AT+GMI, AT+GMM, AT+GMR, AT+GMI9, AT+CGMI, AT+CGMM and
                whatever else a built-in profile identifies by; matched with the
                driver's own ``profile.detect_chipset`` (plus the USB id from sysfs)
    analog      AT+FCLASS=?; AT+FCLASS=8, AT+VSM=?, AT+VLS=?, AT+VSD=?, AT+VCID=?,
                AT#CID=?; always back to AT+FCLASS=0
    GSM         AT+CPIN?, AT+CREG?, AT+CSQ, AT+CLIP=?, the profile's audio set-up
                commands as test commands (AT+CPCMREG=?, AT+QPCMV=?)

Safety: the modem never goes off-hook and never dials. Every command passes
``is_safe_query`` (test ``=?`` and read ``?`` commands, identification, echo and
result format, on-hook, and the class switch 8/0) or the probe stops with a bug report;
``ATA``, ``ATD``, ``ATH1``, ``AT+VLS=1``, ``AT+VTX``/``+VRX`` can never go out.

Every command has a timeout on the injected clock, so a silent modem is a plain
sentence after a few seconds, never a hang. Every byte is kept in a transcript
(``appliance.line.transcript``), saved next to the report so that a chipset
nobody here has seen becomes a test fixture; caller-ID values that arrive while
probing (a ringing line) are masked before it is written.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Final, Protocol

from appliance.clock import Clock, SystemClock
from appliance.errors import LineError
from appliance.line.at import AtItem, AtParser, FinalResult, Garbage, InformationLine, Urc, format_command
from appliance.line.diagnosis import (
    CALLER_ID_QUERIES,
    Answer,
    Diagnosis,
    audio_queries,
    fax_classes,
    problem_report,
    render_report,
    verdict,
)
from appliance.line.dle import ABORT_RX, END, END_TX, DleEvent
from appliance.line.port_info import (
    HW_README,
    UsbIdentity,
    missing_port_problem,
    modem_manager_running,
    open_failure_problem,
    port_holders,
    usb_identity,
)
from appliance.line.profile import ModemProfile, builtin_profiles, detect_chipset, identification_commands
from appliance.line.serial_port import SerialPort
from appliance.line.transcript import Crossing, Entry, Recorder, ReplayLink, Transcript

_LOGGER = logging.getLogger(__name__)

EXIT_READY: Final = 0
"""The modem answered and the box can use it as it is."""
EXIT_NOT_READY: Final = 4
"""The modem answered, but something is missing (no voice, unknown chipset, no SIM...)."""
EXIT_UNREACHABLE: Final = 3
"""No modem to talk to: the port is missing, not permitted, busy, or nothing answers AT."""

COMMAND_TIMEOUT_S: Final = 2.0  # clock seconds; an idle modem answers any of these in well under 1 s
_GUARD_S: Final = 1.1  # +++ needs ~1 s of silence on each side (S12=50; CallAttendantNext uses 1.1 s)
_SETTLE_QUIET_S: Final = 0.3  # after the recovery bytes: quiet this long means the modem finished talking
_SETTLE_MAX_S: Final = 1.5
_STREAM_EVIDENCE_BYTES: Final = 16  # non-NUL bytes that are not text: audio, not power-up noise
STREAM_RESCUE: Final = "<DLE>! <DLE><ETX>"
_LISTEN_S: Final = 0.3  # before the first byte: a modem streaming +VRX audio shows it at once
_POLL_S: Final = 0.005  # real seconds between looks at the clock while waiting
_BAUD: Final = 115200  # what every profile uses (telephony.md 1.2); USB CDC ignores it anyway
_IDENTIFY: Final = ("ATI0", "ATI3", "AT+GMI", "AT+GMM", "AT+GMR", "AT+GMI9", "AT+CGMI", "AT+CGMM")
_GSM_HINTS: Final = ("AT+CGMI", "AT+CGMM")  # 27.007 commands: answered by GSM modules, not by V.253 modems
_RING_LINE: Final = re.compile(r"^(RING|\+CRING|DATE|TIME|NMBR|NAME|MESG|\+CLIP|\+CLCC|\+CCWA|MISSED_CALL)\b")
_BARE_QUERIES: Final = re.compile(r"\+C?GM[IMR]\d*|\+CSQ")  # identification and signal: no parameters, no effect
_TEST_OR_READ: Final = re.compile(r"[+#$%!-][A-Z0-9]+(?:=\?|\?)")
# Masked in saved transcripts (personal data, DESIGN.md "Privacy"): the value of a
# caller-ID tag, the quoted number and name of a 27.007 call report, a missed caller.
_CID_VALUE: Final = re.compile(rb"((?:NMBR|NAME|MESG)[ \t]*=[ \t]*)([^\r\n]*)")  # never across a line end
_CALL_REPORT: Final = re.compile(rb"(?:\+CLIP|\+CLCC|\+CCWA):[^\r\n]*")  # only quoted fields: "+CLIP: (0,1)" stays
_QUOTED: Final = re.compile(rb'"[^"\r\n]*"')
_MISSED_CALL: Final = re.compile(rb"(MISSED_CALL:\s*\S+\s+)([^\r\n]+)")


class ByteLink(Protocol):
    """What the probe needs of a port: ``SerialPort``, or a ``ReplayLink`` in tests."""

    async def read(self) -> bytes: ...

    async def write(self, data: bytes) -> None: ...

    async def close(self) -> None: ...


def is_safe_query(command: str) -> bool:
    """True for the only commands the probe may send: none goes off-hook, dials or streams."""
    body = command.strip().upper()
    if not body.startswith("AT"):
        return False
    body = body[2:]
    return (
        body in ("", "E1", "V1", "H0", "+FCLASS=8", "+FCLASS=0")  # H0: on-hook, always safe
        or re.fullmatch(r"I\d{0,2}", body) is not None
        or _TEST_OR_READ.fullmatch(body) is not None
        or _BARE_QUERIES.fullmatch(body) is not None
    )


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    """One probe: the diagnosis, or why there is none; the transcript if the port opened."""

    port: str
    diagnosis: Diagnosis | None
    problem: str | None
    transcript: Transcript | None

    @property
    def report(self) -> list[str]:
        if self.diagnosis is not None:
            return render_report(self.diagnosis)
        return problem_report(self.port, self.problem or "no diagnosis")

    @property
    def exit_code(self) -> int:
        if self.diagnosis is None:
            return EXIT_UNREACHABLE
        return EXIT_READY if verdict(self.diagnosis).ready else EXIT_NOT_READY


class _Prober:
    """Sends one command at a time and collects its answer; records every byte."""

    def __init__(self, link: ByteLink, clock: Clock, recorder: Recorder) -> None:
        self._link = link
        self._clock = clock
        self._recorder = recorder
        # Echo is on after power-up on most modems (telephony.md 1.4); numeric
        # until ATV1 so a modem left in ATV0 still says "0" for OK when woken.
        self.parser = AtParser(echo=True, numeric=True)
        self._items: collections.deque[AtItem] = collections.deque()
        self._lost: LineError | None = None
        self.unsolicited: list[str] = []
        self.stream_bytes = 0  # evidence that the modem was streaming voice when we came
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> _Prober:
        self._reader = asyncio.create_task(self._read_forever(), name="diagnose reader")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    async def _read_forever(self) -> None:
        try:
            while True:
                chunk = await self._link.read()
                self._recorder.crossing(self._clock.monotonic(), "DCE<", chunk)
                self._items.extend(self.parser.feed(chunk))
        except LineError as err:
            self._lost = err

    async def write(self, data: bytes) -> None:
        self._recorder.crossing(self._clock.monotonic(), "DTE>", data)
        await self._link.write(data)

    def note(self, text: str) -> None:
        _LOGGER.debug("diagnose: %s", text)
        self._recorder.note(self._clock.monotonic(), text)

    async def command(self, command: str, *, timeout_s: float = COMMAND_TIMEOUT_S) -> Answer:
        if not is_safe_query(command):
            # A bug in this module, never the modem's fault: refuse rather than risk the line.
            raise LineError("diagnose-unsafe-command", f"the probe refused to send {command!r}")
        self._take_stale()
        self.parser.expect_echo(command)
        await self.write(format_command(command))
        own_urc = _extended_name(command)
        lines: list[str] = []
        deadline = self._clock.monotonic() + timeout_s
        while True:
            while self._items:
                item = self._items.popleft()
                if isinstance(item, FinalResult):
                    detail = item.text if item.text != item.code else ""
                    return Answer(command, item.code, tuple(lines), detail)
                if isinstance(item, InformationLine):
                    lines.append(item.text)
                elif isinstance(item, Urc) and item.name == own_urc:
                    lines.append(item.line)  # "+CLIP: (0,1)" answers AT+CLIP=?; not a caller
                else:
                    self._unsolicited(item)
            if self._lost is not None:
                raise self._lost
            if self._clock.monotonic() >= deadline:
                self.note(f"no answer to {command} after {timeout_s:g} s")
                return Answer(command, None, tuple(lines))
            await asyncio.sleep(_POLL_S)

    async def pause(self, seconds: float, why: str) -> None:
        self.note(f"pause {seconds:g} s: {why}")
        deadline = self._clock.monotonic() + seconds
        while self._clock.monotonic() < deadline:
            if self._lost is not None:
                raise self._lost
            await asyncio.sleep(_POLL_S)

    async def listen(self, seconds: float) -> None:
        """Say nothing for a moment; what arrives is looked at, then dropped."""
        await self.pause(seconds, "listen before the first byte: is the modem streaming?")
        self._take_stale()

    async def settle(self) -> None:
        """Wait until the modem has been quiet for a moment, dropping what it said."""
        start = last = self._clock.monotonic()
        seen = 0
        while (now := self._clock.monotonic()) - last < _SETTLE_QUIET_S and now - start < _SETTLE_MAX_S:
            if len(self._items) != seen:
                seen, last = len(self._items), now
            await asyncio.sleep(_POLL_S)
        self._take_stale()

    def _take_stale(self) -> None:
        """Items that arrived between commands: late results are dropped, ring lines kept."""
        while self._items:
            self._unsolicited(self._items.popleft())

    def _unsolicited(self, item: AtItem) -> None:
        if isinstance(item, Garbage):
            self.stream_bytes += len(item.data) - item.data.count(0)
        elif isinstance(item, DleEvent) and item.code == END:
            self.stream_bytes += _STREAM_EVIDENCE_BYTES
        if isinstance(item, Urc) and _RING_LINE.match(item.line):
            self.unsolicited.append(_mask_line(item.line))
        elif isinstance(item, DleEvent) and item.code == "R":
            self.unsolicited.append("RING (as <DLE>R)")  # Conexant in +FCLASS=8 (telephony.md 1.7)


def _extended_name(command: str) -> str | None:
    match = re.match(r"^AT([+#$%!-][A-Z0-9]+)", command.upper())
    return match.group(1) if match else None


def _mask_line(line: str) -> str:
    return _mask(line.encode("latin-1")).decode("latin-1")


def _mask(data: bytes) -> bytes:
    """Caller-ID values and the quoted fields of call reports replaced by X, length kept."""
    data = _CID_VALUE.sub(lambda m: m.group(1) + b"X" * len(m.group(2)), data)
    data = _CALL_REPORT.sub(lambda m: _QUOTED.sub(lambda q: re.sub(rb"[^\"]", b"X", q.group(0)), m.group(0)), data)
    return _MISSED_CALL.sub(lambda m: m.group(1) + b"X" * len(m.group(2)), data)


def mask_transcript(transcript: Transcript) -> Transcript:
    """The transcript with caller-ID values masked in what the modem sent.

    Masking runs over the whole DCE→DTE stream and keeps every length, so a value
    split across two reads is masked too and the read boundaries stay as recorded.
    """
    masked = _mask(transcript.sent("DCE<"))
    entries: list[Entry] = []
    offset = 0
    for entry in transcript.entries:
        if isinstance(entry, Crossing) and entry.direction == "DCE<":
            entry = Crossing(entry.at_s, entry.direction, masked[offset : offset + len(entry.data)])
            offset += len(entry.data)
        entries.append(entry)
    return Transcript(meta=transcript.meta, entries=tuple(entries), report=transcript.report)


# --- the probe ---------------------------------------------------------------------------------


async def probe(
    link: ByteLink,
    *,
    clock: Clock,
    recorder: Recorder,
    port: str,
    date: str,
    usb: UsbIdentity | None = None,
) -> Diagnosis:
    """Run the probe of the module docstring over ``link``; ``LineError`` if the modem never answers."""
    profiles = builtin_profiles()
    async with _Prober(link, clock, recorder) as prober:
        recovery = await _wake(prober, port)
        # A modem stuck in a stream was most likely off-hook in a call that crashed:
        # on-hook frees the practice's line (and never starts anything).
        hung_up = await prober.command("ATH0") if recovery is not None else None
        for command in ("ATE1", "ATV1"):
            await prober.command(command)
        prober.parser.numeric = False  # from here on "0" is information text (ATI0 of some modems)

        identification: list[Answer] = []
        answers: dict[str, str] = {}
        for command in dict.fromkeys((*_IDENTIFY, *identification_commands(profiles))):
            answer = await prober.command(command)
            identification.append(answer)
            if answer.ok:
                answers[command] = answer.text
        if usb is not None:
            answers["usb"] = usb.pair
        # The driver's own detection over the same profile files (VoiceModemDriver.start).
        profile = detect_chipset(answers, profiles)
        if profile is not None:
            kind = profile.kind
        else:
            kind = "gsm" if any(a.ok and a.lines for a in identification if a.command in _GSM_HINTS) else "analog"
        rest = await (_probe_gsm(prober, profile) if kind == "gsm" else _probe_analog(prober))
    return Diagnosis(
        port=port,
        date=date,
        usb=usb,
        recovery=recovery,
        hung_up=hung_up,
        identification=tuple(identification),
        profile_name=profile.name if profile is not None else None,
        kind=kind,
        answers=tuple(rest),
        unsolicited=tuple(prober.unsolicited),
    )


async def _wake(prober: _Prober, port: str) -> str | None:
    """OK from the modem, rescuing it from a voice stream or data mode if needed (telephony.md 7.7).

    Listen first: a modem left streaming +VRX audio must get ``<DLE>!``, not an AT
    command (any other byte aborts the stream too, but V.253 modems are told to
    expect none, telephony.md 1.7). Returns the rescue that worked, or None.
    """
    await prober.listen(_LISTEN_S)
    rescue: str | None = None
    if prober.stream_bytes >= _STREAM_EVIDENCE_BYTES:
        rescue = STREAM_RESCUE
        await _leave_stream(prober)
    if (await prober.command("AT")).ok:
        return rescue
    if rescue is None:
        # Silent, not streaming: perhaps in +VTX, where everything is audio until <DLE><ETX>.
        rescue = STREAM_RESCUE
        await _leave_stream(prober)
        if (await prober.command("AT")).ok:
            return rescue
    await prober.pause(_GUARD_S, "guard time before +++")
    await prober.write(b"+++")
    await prober.pause(_GUARD_S, "guard time after +++")
    await prober.settle()
    if (await prober.command("AT")).ok:
        return "+++"
    raise LineError(
        "modem-no-answer",
        f"no answer to AT on {port} after {COMMAND_TIMEOUT_S:g} s (nor after <DLE>! and +++): is it the "
        f"modem's command port (a GSM module has several; the AT port is usually ttyUSB2)? is ModemManager "
        f"holding it? — see {HW_README}",
    )


async def _leave_stream(prober: _Prober) -> None:
    # <DLE>! ends +VRX, <DLE><ETX> ends +VTX; in command state both are noise
    # before a CR and the modem discards the line (V.250: no "AT" in it).
    await prober.write(ABORT_RX + END_TX + b"\r")
    await prober.settle()


async def _probe_analog(prober: _Prober) -> list[Answer]:
    # The V.253 commands themselves, whatever the profile: the report is about the
    # standard, and every built-in profile uses these very commands.
    answers = [await prober.command("AT+FCLASS=?")]
    in_voice = False
    try:
        if "8" in fax_classes(answers[0]):
            answers.append(entered := await prober.command("AT+FCLASS=8"))
            in_voice = entered.ok
            if in_voice:
                for command in ("AT+VSM=?", "AT+VLS=?", "AT+VSD=?"):
                    answers.append(await prober.command(command))
        for command in CALLER_ID_QUERIES:
            answers.append(await prober.command(command))
    finally:
        if in_voice:
            # Leave the modem as the driver expects it at start: data class, rings as RING (1.4).
            with contextlib.suppress(LineError):
                answers.append(await prober.command("AT+FCLASS=0"))
    return answers


async def _probe_gsm(prober: _Prober, profile: ModemProfile | None) -> list[Answer]:
    answers = []
    for command in ("AT+CPIN?", "AT+CREG?", "AT+CSQ", "AT+CLIP=?", *audio_queries(profile)):
        answers.append(await prober.command(command))
    return answers


# --- a whole run ---------------------------------------------------------------------------------


async def diagnose(port: str, *, clock: Clock, usb: UsbIdentity | None = None) -> Outcome:
    """Open ``port``, probe it, close it; the transcript is masked and ready to save."""
    date = clock.now().isoformat(timespec="seconds")
    try:
        link = await SerialPort.open(port, baud=_BAUD)
    except LineError as err:
        return Outcome(port, None, open_failure_problem(port, err, port_holders(port)), None)
    recorder = Recorder(clock.monotonic())
    try:
        diagnosis, problem = await probe(link, clock=clock, recorder=recorder, port=port, date=date, usb=usb), None
    except LineError as err:
        diagnosis, problem = None, _problem(port, err)
    finally:
        await link.close()
    meta = {"port": port, "date": date, "usb": str(usb) if usb is not None else "none"}
    outcome = Outcome(port, diagnosis, problem, None)
    transcript = mask_transcript(recorder.transcript(meta)).with_report(outcome.report)
    return dataclasses.replace(outcome, transcript=transcript)


async def replay(transcript: Transcript, *, clock: Clock) -> Outcome:
    """Probe a recorded modem: the ``DCE<`` side of ``transcript`` answers through a ``ReplayLink``."""
    port = transcript.meta.get("port", "replay")
    date = transcript.meta.get("date", "")
    usb = UsbIdentity.parse(transcript.meta.get("usb", ""))
    recorder = Recorder(clock.monotonic())
    try:
        diagnosis = await probe(ReplayLink(transcript), clock=clock, recorder=recorder, port=port, date=date, usb=usb)
        return Outcome(port, diagnosis, None, None)
    except LineError as err:
        return Outcome(port, None, _problem(port, err), None)


def _problem(port: str, err: LineError) -> str:
    if err.code == "port-lost":
        return f"{port} went away during the probe (USB unplugged, or the modem reset): plug it in again and retry"
    return err.detail or str(err)


def transcript_name(outcome: Outcome, date: str) -> str:
    """``diagnose-<profile or unknown>-<YYYYmmdd-HHMMSS>.txt``."""
    name = outcome.diagnosis.profile_name if outcome.diagnosis is not None else None
    stamp = re.sub(r"[^0-9T]", "", date.split("+")[0])[:15].replace("T", "-")
    return f"diagnose-{name or 'unknown'}-{stamp or 'undated'}.txt"


def run(
    port: str,
    *,
    out_dir: Path,
    echo: Callable[[str], None],
    complain: Callable[[str], None],
    clock: Clock | None = None,
) -> int:
    """The ``diagnose-line`` command: report on stdout, transcript in ``out_dir``; the exit code."""
    clock = clock or SystemClock()
    problem = missing_port_problem(port)
    if problem is not None:
        complain(problem)
        return EXIT_UNREACHABLE
    for holder in port_holders(port):
        echo(f"warning: {port} is also open in {holder}; its bytes will mix with the probe's")
    if modem_manager_running():
        echo(f"note: ModemManager is running; it probes new modems unless told not to (see {HW_README})")
    outcome = asyncio.run(diagnose(port, clock=clock, usb=usb_identity(port)))
    if outcome.diagnosis is None:
        complain(outcome.problem or f"cannot open {port}")
    else:
        for line in outcome.report:
            echo(line)
    if outcome.transcript is None:  # the port did not open: nothing crossed it
        return outcome.exit_code
    path = out_dir / transcript_name(outcome, outcome.transcript.meta.get("date", ""))
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(outcome.transcript.render(), encoding="utf-8")
    except OSError as err:
        complain(f"could not save the transcript to {path}: {err.strerror}")
    else:
        if outcome.diagnosis is not None:
            echo("")
        echo(f"Transcript saved to {path}")
        echo(f"(send it with any bug report: it replays as a test fixture, see {HW_README})")
    return outcome.exit_code
