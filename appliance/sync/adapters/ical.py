"""The little iCalendar (RFC 5545) the CalDAV adapter writes and reads.

Writing: one VEVENT per calendar object, times in UTC (``...Z``) so no VTIMEZONE
is needed, text escaped and lines folded at 75 octets as the RFC asks.

Reading: whatever the staff's calendar clients put in the practice's calendar,
which is more varied than what we write (TZID times, all-day dates, DURATION
instead of DTEND, alarms nested in events, LF instead of CRLF). What we cannot
understand becomes ``SyncError("ical-malformed", retry=False)`` naming the
problem: guessing the time of an event the box must not book over would be
worse than stopping and telling the staff.

Recurring events are read as their first occurrence only (``recurring`` says
so); the adapter leaves the expansion to the server where it matters, in the
overlap check before a booking.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from appliance.errors import SyncError

_FOLD_OCTETS: Final = 75  # RFC 5545 3.1: lines SHOULD NOT be longer, CRLF excluded
_PRODID: Final = "-//Appliance//Phone secretary//FR"
_UTC_FORMAT: Final = "%Y%m%dT%H%M%SZ"
_DATE_TIME = re.compile(r"(\d{8})T(\d{6})(Z?)", re.ASCII)
_DATE = re.compile(r"\d{8}", re.ASCII)
_DURATION = re.compile(r"([+-])?P(?:(\d+)W|(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?)", re.ASCII)
_NAME = re.compile(r"[A-Za-z0-9-]+")


@dataclass(frozen=True, kw_only=True)
class Event:
    """One VEVENT, as the adapter writes it or as much of one as it reads."""

    uid: str
    start: datetime
    """Aware."""
    end: datetime
    summary: str = ""
    description: str = ""
    status: str | None = None
    """``CONFIRMED``, ``TENTATIVE``, ``CANCELLED`` (upper case) or None."""
    transparent: bool = False
    """``TRANSP:TRANSPARENT``: shown in the calendar but does not take the time."""
    all_day: bool = False
    recurring: bool = False
    """Has RRULE or RDATE: ``start``/``end`` are the first occurrence only."""
    recurrence_id: str | None = None
    """Set on an overridden occurrence of a recurring event."""

    @property
    def cancelled(self) -> bool:
        return self.status == "CANCELLED"


def malformed(detail: str) -> SyncError:
    return SyncError("ical-malformed", detail, retry=False)


# --- Writing ---------------------------------------------------------------------


def escape_text(text: str) -> str:
    """A TEXT value (RFC 5545 3.3.11): backslash first, then ``;`` ``,`` and newlines.

    Other control characters are not allowed in TEXT at all; they are dropped
    rather than sent to a server that might refuse the whole event for them.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = "".join(c for c in text if c in "\n\t" or unicodedata.category(c) != "Cc")
    return (
        text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")
    )


def fold(line: str) -> str:
    """Split a content line into 75-octet pieces joined by CRLF + space.

    Octets, not characters: a French name with accents is longer in UTF-8 than
    it looks. A multi-byte character is never cut in two.
    """
    pieces: list[str] = []
    current, size, limit = [], 0, _FOLD_OCTETS
    for char in line:
        width = len(char.encode())
        if size + width > limit:
            pieces.append("".join(current))
            current, size, limit = [], 0, _FOLD_OCTETS - 1  # the leading space counts
        current.append(char)
        size += width
    pieces.append("".join(current))
    return "\r\n ".join(pieces)


def format_utc(moment: datetime) -> str:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment.isoformat()}: iCalendar times must be aware")
    return moment.astimezone(UTC).strftime(_UTC_FORMAT)


def write_event(event: Event, *, stamp: datetime) -> str:
    """A complete VCALENDAR object (CRLF line ends) holding ``event``."""
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        f"PRODID:{_PRODID}",
        "CALSCALE:GREGORIAN",
        "BEGIN:VEVENT",
        f"UID:{escape_text(event.uid)}",
        f"DTSTAMP:{format_utc(stamp)}",
        f"DTSTART:{format_utc(event.start)}",
        f"DTEND:{format_utc(event.end)}",
    ]
    if event.summary:
        lines.append(f"SUMMARY:{escape_text(event.summary)}")
    if event.description:
        lines.append(f"DESCRIPTION:{escape_text(event.description)}")
    if event.status:
        lines.append(f"STATUS:{event.status}")
    lines.append("TRANSP:TRANSPARENT" if event.transparent else "TRANSP:OPAQUE")
    lines += ["END:VEVENT", "END:VCALENDAR"]
    return "".join(fold(line) + "\r\n" for line in lines)


# --- Reading ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Property:
    name: str
    params: dict[str, str]
    value: str


def unescape_text(value: str) -> str:
    out: list[str] = []
    chars = iter(value)
    for char in chars:
        if char != "\\":
            out.append(char)
            continue
        following = next(chars, "\\")  # a lone trailing backslash stays itself
        # \n and \N are newlines; \\ \; \, the characters; anything else some
        # client invented: keep the character, it is only text.
        out.append("\n" if following in ("n", "N") else following)
    return "".join(out)


def unfold(text: str) -> list[str]:
    """Content lines, with folding undone; CRLF, LF and CR line ends accepted."""
    lines: list[str] = []
    for raw in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if raw[:1] in (" ", "\t"):
            if not lines:
                raise malformed("the calendar data starts with a continuation line")
            lines[-1] += raw[1:]
        elif raw:
            lines.append(raw)
    return lines


def _parse_line(line: str) -> _Property:
    """``NAME;PARAM=value;PARAM="quoted:value":VALUE`` → its three parts."""
    match = _NAME.match(line)
    if match is None:
        raise malformed(f"content line without a property name: {line[:40]!r}")
    name, pos = match.group().upper(), match.end()
    params: dict[str, str] = {}
    while pos < len(line) and line[pos] == ";":
        eq = line.find("=", pos)
        if eq == -1:
            raise malformed(f"parameter without '=' in {name}")
        key, pos = line[pos + 1 : eq].upper(), eq + 1
        if line[pos : pos + 1] == '"':
            close = line.find('"', pos + 1)
            if close == -1:
                raise malformed(f"unclosed quote in a parameter of {name}")
            params[key], pos = line[pos + 1 : close], close + 1
        else:
            stop = pos
            while stop < len(line) and line[stop] not in ";:":
                stop += 1
            params[key], pos = line[pos:stop], stop
    if pos >= len(line) or line[pos] != ":":
        raise malformed(f"content line {name} has no ':' before its value")
    return _Property(name, params, line[pos + 1 :])


def _zone(prop: _Property, default_tz: tzinfo) -> tzinfo:
    tzid = prop.params.get("TZID")
    if not tzid:
        return default_tz  # a floating time: the practice's own local time
    try:
        return ZoneInfo(tzid.lstrip("/"))
    except (ZoneInfoNotFoundError, ValueError):
        # Outlook-style names ("Romance Standard Time") carry their rules in a
        # VTIMEZONE we do not interpret; the practice's zone is the likeliest.
        return default_tz


def _parse_moment(prop: _Property, default_tz: tzinfo) -> tuple[datetime, bool]:
    """A DATE-TIME or DATE value → (aware datetime, is a whole date)."""
    value = prop.value.strip()
    try:
        if prop.params.get("VALUE", "").upper() == "DATE" or _DATE.fullmatch(value):
            if not _DATE.fullmatch(value):
                raise ValueError(value)
            day = date(int(value[:4]), int(value[4:6]), int(value[6:]))
            return datetime.combine(day, time(), tzinfo=default_tz), True
        match = _DATE_TIME.fullmatch(value)
        if match is None:
            raise ValueError(value)
        naive = datetime.strptime(match[1] + match[2], "%Y%m%d%H%M%S")
    except ValueError:
        raise malformed(f"{prop.name} is not a date or date-time: {value[:40]!r}") from None
    if match[3]:
        return naive.replace(tzinfo=UTC), False
    return naive.replace(tzinfo=_zone(prop, default_tz)), False


def parse_duration(value: str) -> timedelta:
    match = _DURATION.fullmatch(value.strip())
    if match is None or not any(match.groups()[1:]):  # "P" and "PT" say nothing
        raise malformed(f"DURATION is not a duration: {value[:40]!r}")
    sign, weeks, days, hours, minutes, seconds = match.groups()
    length = timedelta(
        weeks=int(weeks or 0), days=int(days or 0),
        hours=int(hours or 0), minutes=int(minutes or 0), seconds=int(seconds or 0),
    )  # fmt: skip
    return -length if sign == "-" else length


def _event(props: dict[str, _Property], recurring: bool, default_tz: tzinfo) -> Event:
    uid = props.get("UID")
    if uid is None or not uid.value.strip():
        raise malformed("an event has no UID")
    if "DTSTART" not in props:
        raise malformed(f"event {uid.value[:60]!r} has no DTSTART")
    start, all_day = _parse_moment(props["DTSTART"], default_tz)
    try:
        if "DTEND" in props:
            end, _ = _parse_moment(props["DTEND"], default_tz)
        elif "DURATION" in props:
            end = start + parse_duration(props["DURATION"].value)
        else:
            # RFC 5545 3.6.1: a date lasts the day, a date-time is an instant.
            end = start + timedelta(days=1) if all_day else start
    except OverflowError:
        raise malformed(f"event {uid.value[:60]!r} ends after the year 9999") from None
    if end < start:
        raise malformed(f"event {uid.value[:60]!r} ends before it starts")
    status = props.get("STATUS")
    transp = props.get("TRANSP")
    recurrence_id = props.get("RECURRENCE-ID")
    return Event(
        uid=unescape_text(uid.value),
        start=start,
        end=end,
        summary=unescape_text(props["SUMMARY"].value) if "SUMMARY" in props else "",
        description=unescape_text(props["DESCRIPTION"].value) if "DESCRIPTION" in props else "",
        status=status.value.strip().upper() or None if status else None,
        transparent=bool(transp and transp.value.strip().upper() == "TRANSPARENT"),
        all_day=all_day,
        recurring=recurring,
        recurrence_id=recurrence_id.value.strip() if recurrence_id else None,
    )


def parse_events(text: str, *, default_tz: tzinfo = UTC) -> list[Event]:
    """Every VEVENT of one VCALENDAR object, in order.

    ``default_tz`` gives floating times, all-day dates and unknown TZIDs a zone.
    A calendar object without events (a VTODO) gives an empty list.
    """
    lines = unfold(text)
    if not lines or lines[0].strip().upper() != "BEGIN:VCALENDAR":
        raise malformed("the calendar data does not start with BEGIN:VCALENDAR")
    events: list[Event] = []
    stack: list[str] = []
    props: dict[str, _Property] = {}
    recurring = False
    for number, line in enumerate(lines, start=1):
        prop = _parse_line(line)
        if prop.name == "BEGIN":
            stack.append(prop.value.strip().upper())
            if stack == ["VCALENDAR", "VEVENT"]:
                props, recurring = {}, False
            elif stack[0] != "VCALENDAR":
                raise malformed(f"BEGIN:{prop.value} outside of the VCALENDAR")
        elif prop.name == "END":
            if not stack or stack[-1] != prop.value.strip().upper():
                expected = f"END:{stack[-1]}" if stack else "nothing"
                raise malformed(f"END:{prop.value} where {expected} was expected")
            if stack == ["VCALENDAR", "VEVENT"]:
                events.append(_event(props, recurring, default_tz))
            stack.pop()
            if not stack and number != len(lines):
                raise malformed("content after END:VCALENDAR")
        elif not stack:
            raise malformed(f"{prop.name} outside of the VCALENDAR")
        elif stack == ["VCALENDAR", "VEVENT"]:
            # Only the event's own properties: a nested VALARM has its own
            # DESCRIPTION and SUMMARY, which must not replace the event's.
            if prop.name in ("RRULE", "RDATE"):
                recurring = True
            props.setdefault(prop.name, prop)
    if stack:
        raise malformed(f"the calendar data ends inside {stack[-1]} (no END:{stack[-1]})")
    return events
