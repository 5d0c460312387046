"""Caller ID from the text lines a modem prints while the line rings.

Two text forms reach the box:

    formatted CID (``AT+VCID=1``, analogue modems), one tag per line:
        DATE=0117  TIME=1452  NMBR=5035551234  NAME=WIRELESS CALLER  (MESG=<hex>)
        Conexant/Zoom and the Hayes text put spaces around ``=``: ``DATE = 0117``.
        NMBR is digits, ``P`` (private: withheld) or ``O`` (out of area: unavailable);
        NAME may be absent, ``P``, ``O`` or carrier text such as ``WIRELESS CALLER``.
    3GPP ``+CLIP`` (GSM modules, ``AT+CLIP=1``), one line after each RING:
        +CLIP: "+15035551234",145,"",0,"",0    (last field 1 = withheld, 2 = not available)

``style`` says which network convention the record looks like, for logs and
diagnosis only (nothing should branch on it):

    "north-american"  Bellcore FSK: RING, then the tags (with NAME), then RING
    "etsi"            UK (BT SIN227) and France/ETSI: the tags arrive *before*
                      the first RING and carry no NAME
    "3gpp-clip"       a GSM module's +CLIP line

A record is complete once its number is known (NMBR or +CLIP), as in
callattendant: DATE, TIME and NAME are optional extras. Values stay strings
(a number keeps its leading 0 or +). Lines are matched whole, by tag, never by
substring: ``"DATE" in line`` would misroute a NAME containing "DATE".
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

_TAG_LINE: Final = re.compile(r"^\s*(DATE|TIME|NMBR|NAME|MESG)\s*=\s*(.*?)\s*$")
_CLIP_LINE: Final = re.compile(r"^\s*\+CLIP:\s*(.*?)\s*$")
_RING_LINE: Final = re.compile(r"^\s*(RING\b.*|\+CRING:.*)$")
_CLI_WITHHELD: Final = "1"  # +CLIP <CLI validity>, TS 27.007
_CLI_NOT_AVAILABLE: Final = "2"
_WITHHELD: Final = "P"  # formatted CID: private
_UNAVAILABLE: Final = "O"  # formatted CID: out of area


@dataclass(frozen=True, slots=True)
class CallerId:
    number: str | None  # as sent ("+33612345678", "0612345678"); None if withheld/unavailable
    name: str | None
    withheld: bool  # the caller chose to hide the number
    unavailable: bool  # the network could not deliver it (out of area, international, ...)
    date: str | None  # "MMDD" as the network sent it, if it did
    time: str | None  # "HHMM", 24 h
    style: str  # "north-american", "etsi" or "3gpp-clip"; see the module docstring


def _fields(text: str) -> list[str]:
    """Split a +CLIP parameter list on commas outside quotes, quotes removed."""
    fields: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            fields.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    fields.append("".join(current).strip())
    return fields


def _from_clip(text: str) -> CallerId:
    fields = _fields(text) + [""] * 6
    number, alpha, validity = fields[0], fields[4], fields[5]
    withheld = validity == _CLI_WITHHELD
    unavailable = validity == _CLI_NOT_AVAILABLE or (not number and not withheld)
    return CallerId(
        number=None if withheld or unavailable else number,
        name=alpha or None,
        withheld=withheld,
        unavailable=unavailable,
        date=None,
        time=None,
        style="3gpp-clip",
    )


class CallerIdCollector:
    """Accumulate caller ID one line at a time, as the modem prints it.

    Lines that are neither a CID tag nor a ring are ignored, so every line the
    modem prints while ringing can be fed. A ring after the tags closes the
    record; a tag arriving after that, or a tag the record already holds, starts
    a new record (call-waiting CID, or the next call), so ``result`` is always
    the latest caller. Closing on a quiet period is the driver's job (it owns the
    clock): it simply stops feeding and reads ``result``.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._tags: dict[str, str] = {}
        self._clip: CallerId | None = None
        self._ring_before_tags = False
        self._rings = 0
        self._closed = False

    @property
    def complete(self) -> bool:
        """The number (or why there is none) has arrived."""
        return self._clip is not None or "NMBR" in self._tags

    @property
    def closed(self) -> bool:
        """A ring came after the record: nothing more will be added to it."""
        return self._closed

    @property
    def rings(self) -> int:
        """Rings seen since the collector was made or reset."""
        return self._rings

    @property
    def result(self) -> CallerId | None:
        if self._clip is not None:
            return self._clip
        if "NMBR" not in self._tags:
            return None
        return self._from_tags()

    def feed(self, line: str) -> None:
        if _RING_LINE.match(line):
            self._rings += 1
            if self._tags or self._clip is not None:
                self._closed = True
            else:
                self._ring_before_tags = True
            return
        if match := _CLIP_LINE.match(line):
            self._start_record_if(self._closed or self._clip is not None)
            self._clip = _from_clip(match.group(1))
            return
        if match := _TAG_LINE.match(line):
            tag, value = match.groups()
            self._start_record_if(self._closed or tag in self._tags)
            self._tags[tag] = value

    def _start_record_if(self, needed: bool) -> None:
        if needed:
            rings = self._rings
            self.reset()
            self._rings = rings
            # The ring that closed the previous record belonged to that call.

    def _from_tags(self) -> CallerId:
        nmbr = self._tags["NMBR"]
        withheld = nmbr.upper() == _WITHHELD
        unavailable = nmbr.upper() == _UNAVAILABLE or not nmbr
        name = self._tags.get("NAME") or None
        if name is not None and name.upper() in (_WITHHELD, _UNAVAILABLE):
            name = None
        # ETSI networks (UK, France) send the data before the first ring and no name.
        north_american = self._ring_before_tags or "NAME" in self._tags
        return CallerId(
            number=None if withheld or unavailable else nmbr,
            name=name,
            withheld=withheld,
            unavailable=unavailable,
            date=self._tags.get("DATE") or None,
            time=self._tags.get("TIME") or None,
            style="north-american" if north_american else "etsi",
        )


def parse_caller_id(lines: Sequence[str]) -> CallerId | None:
    """The caller ID in a modem's lines (the latest record), or None if no number came."""
    collector = CallerIdCollector()
    for line in lines:
        collector.feed(line)
    return collector.result

