"""Weekly time ranges written the way staff say them: ``"mon-fri 08:00-19:00"``.

Used for the phone's office hours (``[answering] hours``) and for the slots a
practice keeps for its staff (``[rules] kept_for_staff``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time
from typing import Final

from appliance.errors import ConfigError

_DAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_RANGE_RE: Final = re.compile(
    r"^\s*(?P<first>[a-z]{3})(?:\s*-\s*(?P<last>[a-z]{3}))?\s+"
    r"(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})\s*$"
)


@dataclass(frozen=True, slots=True)
class WeeklyRange:
    """One weekday's span, ``end`` exclusive; ``end`` 24:00 is written as ``time.max``."""

    weekday: int  # 0 = Monday
    start: time
    end: time

    def covers(self, when: datetime) -> bool:
        return when.weekday() == self.weekday and self.start <= when.time().replace(tzinfo=None) < self.end

    def overlaps(self, start: datetime, end: datetime) -> bool:
        """Whether ``[start, end)`` (wall-clock times of one day) touches this range."""
        if start.weekday() != self.weekday:
            return False
        last = end.time().replace(tzinfo=None) if end.date() == start.date() else time.max
        return start.time().replace(tzinfo=None) < self.end and self.start < last


def parse_ranges(texts: tuple[str, ...] | list[str], where: str = "answering.hours") -> tuple[WeeklyRange, ...]:
    """``"mon-fri 08:00-19:00"``, ``"sat 09:00-12:00"``, ``"mon-sun 00:00-24:00"``.

    ``where`` names the setting in error messages."""
    ranges: list[WeeklyRange] = []
    for text in texts:
        if not isinstance(text, str):
            raise ConfigError(f"{where}: {text!r} must be a text like \"mon-fri 08:00-19:00\"")
        match = _RANGE_RE.match(text.lower())
        if match is None:
            raise ConfigError(f"{where}: {text!r} must look like \"mon-fri 08:00-19:00\" or \"sat 09:00-12:00\"")
        first, last = match["first"], match["last"] or match["first"]
        for day in (first, last):
            if day not in _DAYS:
                raise ConfigError(f"{where}: {day!r} in {text!r} is not one of {', '.join(_DAYS)}")
        start, end = _clock_time(match["start"], text, where), _clock_time(match["end"], text, where)
        if end <= start:
            raise ConfigError(f"{where}: {text!r} ends before it starts")
        a, b = _DAYS.index(first), _DAYS.index(last)
        days = range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)]  # "sat-mon" wraps
        ranges.extend(WeeklyRange(day, start, end) for day in days)
    return tuple(ranges)


def _clock_time(text: str, whole: str, where: str) -> time:
    hours, minutes = (int(part) for part in text.split(":"))
    if (hours, minutes) == (24, 0):
        return time.max
    if hours > 23 or minutes > 59:
        raise ConfigError(f"{where}: {text!r} in {whole!r} is not a time of day")
    return time(hours, minutes)
