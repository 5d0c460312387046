"""Serial transcripts: every byte that crossed a port, as text a person can read and a test can replay.

``appliance diagnose-line`` saves one per probe so that a modem nobody here has
seen becomes a test fixture: the file goes into ``tests/fixtures/diagnose/``, and
``ReplayLink`` plays the modem's side back to the same probe.

The format (version 1), one item per line, UTF-8, ``#`` lines are comments::

    meta <key> <value>                   facts about the probe: port, date, usb id
    <seconds> DTE> <escaped bytes>       what the box wrote (one write per line)
    <seconds> DCE< <escaped bytes>       what the modem sent (one read per line)
    <seconds> note <text>                what the probe did that is not bytes:
                                         a command given up on, a guard pause
    report <text>                        one line of the report the probe printed

``<seconds>`` counts from the opening of the port (three decimals). Bytes are
escaped so that any byte sequence survives an editor and a mail client:
printable ASCII stands for itself except the backslash (``\\\\``); ``\\r``,
``\\n``, ``\\t``; every other byte is ``\\xNN``; a space at the end of a line is
``\\x20`` so trailing-whitespace trimming cannot change it. The split of the
bytes into lines records read and write boundaries, which are not a protocol fact
but help when reading a capture (telephony.md 7.9 asks for exactly this log).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from appliance.errors import LineError

FORMAT: Final = "appliance-transcript/1"
_NAMED_ESCAPES: Final = {0x5C: "\\\\", 0x0D: "\\r", 0x0A: "\\n", 0x09: "\\t"}
_UNESCAPES: Final = {"\\": 0x5C, "r": 0x0D, "n": 0x0A, "t": 0x09}
_TIMED_LINE: Final = re.compile(r"^(\d+\.\d+) (DTE>|DCE<|note) (.*)$")
_META_LINE: Final = re.compile(r"^meta ([a-z][a-z0-9_-]*) ?(.*)$")

Direction = Literal["DTE>", "DCE<"]

HEADER: Final = f"""\
# {FORMAT}: a serial transcript written by `appliance diagnose-line`.
# Lines: "meta <key> <value>", "<seconds> DTE> <bytes>" (the box wrote),
# "<seconds> DCE< <bytes>" (the modem sent), "<seconds> note <text>", "report <text>".
# Bytes: printable ASCII as is; \\\\ \\r \\n \\t; any other byte \\xNN; a final space \\x20.
# Replay: appliance.line.transcript.ReplayLink (see appliance/line/transcript.py).
"""


def escape(data: bytes) -> str:
    """Bytes as one line of text (see the module docstring); ``unescape`` reverses it."""
    text = "".join(
        _NAMED_ESCAPES.get(b) or (chr(b) if 0x20 <= b <= 0x7E else f"\\x{b:02x}") for b in data
    )
    stripped = text.rstrip(" ")
    return stripped + "\\x20" * (len(text) - len(stripped))


def unescape(text: str) -> bytes:
    out = bytearray()
    i = 0
    while i < len(text):
        char = text[i]
        if char != "\\":
            if not 0x20 <= ord(char) <= 0x7E:
                raise ValueError(f"character {char!r} at {i} must be written as \\xNN")
            out.append(ord(char))
            i += 1
            continue
        code = text[i + 1 : i + 2]
        if code in _UNESCAPES:
            out.append(_UNESCAPES[code])
            i += 2
        elif code == "x" and re.fullmatch(r"[0-9a-fA-F]{2}", text[i + 2 : i + 4]):
            out.append(int(text[i + 2 : i + 4], 16))
            i += 4
        else:
            raise ValueError(f"unknown escape {text[i : i + 4]!r} at {i}")
    return bytes(out)


@dataclass(frozen=True, slots=True)
class Crossing:
    """Bytes that crossed the port in one write or one read."""

    at_s: float
    direction: Direction
    data: bytes


@dataclass(frozen=True, slots=True)
class Note:
    at_s: float
    text: str


Entry = Crossing | Note


@dataclass(frozen=True, slots=True)
class Transcript:
    meta: Mapping[str, str]
    entries: tuple[Entry, ...]
    report: tuple[str, ...] = ()

    def sent(self, direction: Direction) -> bytes:
        """All bytes of one direction, concatenated."""
        return b"".join(e.data for e in self.entries if isinstance(e, Crossing) and e.direction == direction)

    def render(self) -> str:
        lines = [HEADER.rstrip("\n")]
        lines += [f"meta {key} {value}" for key, value in self.meta.items()]
        for entry in self.entries:
            if isinstance(entry, Crossing):
                lines.append(f"{entry.at_s:.3f} {entry.direction} {escape(entry.data)}")
            else:
                lines.append(f"{entry.at_s:.3f} note {entry.text}")
        lines += [f"report {line}".rstrip() for line in self.report]
        return "\n".join(lines) + "\n"

    def with_report(self, report: Iterable[str]) -> Transcript:
        return Transcript(meta=self.meta, entries=self.entries, report=tuple(report))


def parse_transcript(text: str, *, source: str = "transcript") -> Transcript:
    """Read the format above; a malformed line is a ``LineError`` naming it."""
    meta: dict[str, str] = {}
    entries: list[Entry] = []
    report: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip("\r")
        if not line.strip() or line.startswith("#"):
            continue
        if line == "report" or line.startswith("report "):
            report.append(line[len("report ") :])
            continue
        if match := _META_LINE.match(line):
            meta[match.group(1)] = match.group(2)
            continue
        match = _TIMED_LINE.match(line)
        if match is None:
            raise LineError("transcript-invalid", f"{source}:{number}: not a transcript line: {line[:60]!r}")
        at_s, tag, payload = float(match.group(1)), match.group(2), match.group(3)
        if tag == "note":
            entries.append(Note(at_s, payload))
            continue
        try:
            data = unescape(payload)
        except ValueError as err:
            raise LineError("transcript-invalid", f"{source}:{number}: {err}") from None
        entries.append(Crossing(at_s, tag, data))  # type: ignore[arg-type]
    if meta.get("format") not in (None, FORMAT):
        raise LineError("transcript-invalid", f"{source}: format {meta['format']!r}, this reader knows {FORMAT}")
    return Transcript(meta=meta, entries=tuple(entries), report=tuple(report))


def load_transcript(path: Path | str) -> Transcript:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise LineError("transcript-invalid", f"{path}: cannot read ({err.strerror})") from err
    return parse_transcript(text, source=str(path))


class Recorder:
    """Collects crossings and notes as they happen, stamped by the caller's clock."""

    def __init__(self, start_s: float) -> None:
        self._start_s = start_s
        self._entries: list[Entry] = []

    def crossing(self, now_s: float, direction: Direction, data: bytes) -> None:
        if data:
            self._entries.append(Crossing(round(now_s - self._start_s, 3), direction, data))

    def note(self, now_s: float, text: str) -> None:
        self._entries.append(Note(round(now_s - self._start_s, 3), text))

    def transcript(self, meta: Mapping[str, str]) -> Transcript:
        return Transcript(meta={"format": FORMAT, **meta}, entries=tuple(self._entries))


class ReplayLink:
    """A scripted fake device: plays the ``DCE<`` side of a transcript back to a prober.

    It has the byte-link shape of ``SerialPort`` (``read``, ``write``, ``close``).
    Bytes the modem sent before the first write are readable at once; after that,
    each time the writes complete a recorded ``DTE>`` line, the ``DCE<`` lines that
    followed it are released, in their recorded read boundaries. A write that
    differs from the script fails with ``LineError("replay-diverged")`` naming
    both: a prober that changed its questions must not silently get old answers.
    Past the end of the script the device is silent, as a modem that stopped
    answering is, and the prober's own timeouts apply.
    """

    def __init__(self, transcript: Transcript) -> None:
        self._crossings = [e for e in transcript.entries if isinstance(e, Crossing)]
        self._next = 0
        self._matched = 0  # bytes of the current DTE> line already written
        self._reads: asyncio.Queue[bytes] = asyncio.Queue()
        self._release()

    @property
    def finished(self) -> bool:
        """Every recorded write has been made and every recorded read released."""
        return self._next >= len(self._crossings)

    async def read(self) -> bytes:
        return await self._reads.get()

    async def write(self, data: bytes) -> None:
        while data:
            if self.finished:
                return  # a modem that stopped answering: the prober's timeouts decide
            expected = self._crossings[self._next].data[self._matched :]
            count = min(len(data), len(expected))
            if data[:count] != expected[:count]:
                raise LineError(
                    "replay-diverged",
                    f"wrote {data!r} where the transcript has {expected!r} (line {self._next + 1} of its crossings)",
                )
            data = data[count:]
            self._matched += count
            if self._matched == len(self._crossings[self._next].data):
                self._next += 1
                self._matched = 0
                self._release()

    async def close(self) -> None:
        return None

    def _release(self) -> None:
        while not self.finished and self._crossings[self._next].direction == "DCE<":
            self._reads.put_nowait(self._crossings[self._next].data)
            self._next += 1
