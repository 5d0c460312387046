"""Which calls the box takes, and when: the practice's answering policy.

A practice chooses, for its office hours and for the rest of the week, one of:

* ``now``: the box answers as soon as it knows who is calling (24/7 = both ``now``);
* ``after_rings``: the practice's own phones ring ``rings`` times first; the box
  picks up only if nobody in the practice did (an analog line stops ringing the
  moment a handset is lifted, and so does a call the caller gives up on);
* ``never``: the box leaves the call to the practice (its phones, its answering
  machine).

"Office hours" are the practice's opening hours by default, or the ranges given
in ``hours`` (e.g. extended hours for the phone: ``["mon-fri 08:00-19:00"]``).
So "only outside opening hours" is ``during_hours = "never"``, "only during given
ranges" is ``hours = [...]`` with ``outside_hours = "never"``.

Pure: ``decide`` takes the practice's local time; ``take`` waits on the ringing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

from appliance.agenda.practice import Practice
from appliance.agenda.weekly import WeeklyRange, parse_ranges
from appliance.errors import ConfigError
from appliance.line.base import IncomingCall

_LOGGER = logging.getLogger(__name__)

Mode = Literal["now", "after_rings", "never"]
_MODES: Final = ("now", "after_rings", "never")
MAX_RINGS: Final = 15  # a minute and more of ringing: past this the caller has hung up


@dataclass(frozen=True, kw_only=True)
class AnsweringSettings:
    during_hours: Mode = "now"
    """Within office hours."""
    outside_hours: Mode = "now"
    """Evenings, nights, weekends, closures."""
    rings: int = 4
    """For ``after_rings``: how many rings the practice's phones get first (about 5 s each)."""
    hours: tuple[str, ...] = ()
    """Office hours for answering; empty = the practice's opening hours."""

    def __post_init__(self) -> None:
        for name in ("during_hours", "outside_hours"):
            if getattr(self, name) not in _MODES:
                raise ConfigError(f"answering.{name} must be one of {', '.join(_MODES)}, got {getattr(self, name)!r}")
        if not isinstance(self.rings, int) or isinstance(self.rings, bool) or not 1 <= self.rings <= MAX_RINGS:
            raise ConfigError(f"answering.rings must be a whole number from 1 to {MAX_RINGS}, got {self.rings!r}")
        if not isinstance(self.hours, (tuple, list)):
            raise ConfigError("answering.hours must be a list like [\"mon-fri 08:00-19:00\"]")
        object.__setattr__(self, "hours", tuple(self.hours))
        parse_ranges(self.hours)  # validated once, here, so a typo stops the box at start


@dataclass(frozen=True, slots=True)
class Decision:
    mode: Mode
    in_hours: bool

    @property
    def why(self) -> str:
        period = "office hours" if self.in_hours else "outside office hours"
        return f"{period}: {self.mode.replace('_', ' ')}"


class AnsweringPolicy:
    def __init__(self, settings: AnsweringSettings, practice: Practice) -> None:
        self.settings = settings
        if settings.hours:
            self._ranges = parse_ranges(settings.hours)
        else:
            self._ranges = tuple(WeeklyRange(p.weekday, p.start, p.end) for p in practice.hours)
        self._practice = practice

    def in_hours(self, when: datetime) -> bool:
        local = when.astimezone(self._practice.tz)
        if not self.settings.hours and self._practice.is_closed(local.date()):
            return False  # a closure day (holiday) is outside the practice's hours
        return any(r.covers(local) for r in self._ranges)

    def decide(self, when: datetime) -> Decision:
        inside = self.in_hours(when)
        return Decision(self.settings.during_hours if inside else self.settings.outside_hours, inside)

    async def take(self, incoming: IncomingCall, when: datetime) -> bool:
        """True if the box should answer ``incoming`` now (after waiting for rings if asked)."""
        decision = self.decide(when)
        if decision.mode == "never":
            _LOGGER.info("call left to the practice (%s)", decision.why)
            return False
        if decision.mode == "after_rings":
            if not await incoming.ringing.wait_rings(self.settings.rings):
                # Never answer a call a person already took: the ringing stopped.
                _LOGGER.info("call taken in the practice or abandoned before ring %d", self.settings.rings)
                return False
        return True
