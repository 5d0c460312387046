"""Free slots: where a visit of a given reason can still be booked.

Pure: the practice, the busy intervals and "now" come in, slots come out. The
store supplies the busy intervals and re-checks them inside the booking
transaction, so a slot offered here may still be refused as taken.

Candidate starts are laid every ``rules.slot_step_min`` minutes from each
opening period's start (8:30, 8:40, ...), and a candidate is kept when the whole
visit fits in the period, it does not overlap a busy interval of that
practitioner, it starts at least ``rules.min_notice_min`` after now and before
now + ``rules.horizon_days``, and the day is not a closure.

Datetimes are built per calendar day in the practice's zone
(``datetime.combine(day, 8:30, tz)``), never by adding 24 h to yesterday's, so
"8:30" stays 8:30 across daylight-saving changes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone, tzinfo

from appliance.agenda.practice import Practice

BusyInterval = tuple[str, datetime, datetime]
"""(practitioner_id, start, end), aware datetimes, end exclusive."""


@dataclass(frozen=True, slots=True)
class Slot:
    practitioner_id: str
    start: datetime
    """Aware, in the practice's zone."""
    end: datetime
    reason_id: str

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("a slot needs aware datetimes")
        if self.end <= self.start:
            raise ValueError(f"slot ends ({self.end}) before it starts ({self.start})")

    @property
    def duration_min(self) -> int:
        return int((self.end - self.start).total_seconds() // 60)


def free_slots(
    practice: Practice,
    reason_id: str,
    busy: Iterable[BusyInterval],
    now: datetime,
    *,
    practitioner_id: str | None = None,
    window_start: datetime | None = None,
    window_end: datetime | None = None,
    limit: int | None = 3,
    spread_min: int = 0,
    accept: Callable[[datetime], bool] | None = None,
) -> list[Slot]:
    """The earliest free slots for ``reason_id``, sorted by start then practitioner order.

    ``window_start``/``window_end`` keep slots whose start lies in
    ``[window_start, window_end)`` ("tomorrow morning"). ``limit=None`` returns
    every slot up to the horizon.

    ``spread_min`` makes an offer easier to choose from: each slot picked starts
    at least that many minutes after the previous one picked (``30`` turns
    "9:00, 9:00, 9:10" into "9:00, 9:30, 10:00"). If the spread leaves fewer
    than ``limit`` slots, the earliest remaining ones fill the offer, so spreading
    never hides the only free slots there are.

    ``accept`` keeps only the starts it approves ("mornings only" over a week).

    Raises ``KeyError`` for a reason or practitioner the practice does not have.
    """
    for name, moment in (("now", now), ("window_start", window_start), ("window_end", window_end)):
        if moment is not None and moment.tzinfo is None:
            raise ValueError(f"free_slots needs an aware {name!r}, got {moment!r}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    reason = practice.reason(reason_id)
    if practitioner_id is not None:
        practice.practitioner(practitioner_id)  # unknown id: KeyError, not "no slot"
        who = [p.id for p in practice.practitioners_for(reason_id) if p.id == practitioner_id]
    else:
        who = [p.id for p in practice.practitioners_for(reason_id)]
    if not who:
        return []

    tz = practice.tz
    local_now = now.astimezone(tz)
    # Notice is elapsed time (UTC arithmetic: right even across a DST night);
    # the horizon is in calendar days (wall-clock arithmetic in the practice's zone).
    earliest = now.astimezone(timezone.utc) + timedelta(minutes=practice.rules.min_notice_min)
    latest = local_now + timedelta(days=practice.rules.horizon_days)
    if window_start is not None:
        earliest = max(earliest, window_start)
    if window_end is not None:
        latest = min(latest, window_end)
    if earliest >= latest:
        return []

    candidates = _candidates(
        practice,
        who,
        duration=timedelta(minutes=reason.duration_min),
        reason_id=reason_id,
        busy_by_day=_by_day(busy, tz, set(who)),
        earliest=earliest,
        latest=latest,
    )
    if accept is not None:
        candidates = [slot for slot in candidates if accept(slot.start)]
    return _pick(candidates, limit, timedelta(minutes=spread_min))


def _by_day(
    busy: Iterable[BusyInterval], tz: tzinfo, who: set[str]
) -> dict[tuple[str, date], list[tuple[datetime, datetime]]]:
    """Busy intervals filed under every (practitioner, local day) they touch."""
    out: dict[tuple[str, date], list[tuple[datetime, datetime]]] = defaultdict(list)
    for practitioner_id, start, end in busy:
        if practitioner_id not in who:
            continue
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError("busy intervals need aware datetimes")
        day = start.astimezone(tz).date()
        last = (end - timedelta(microseconds=1)).astimezone(tz).date()
        while day <= last:
            out[practitioner_id, day].append((start, end))
            day += timedelta(days=1)
    return out


def _candidates(
    practice: Practice,
    who: list[str],
    *,
    duration: timedelta,
    reason_id: str,
    busy_by_day: dict[tuple[str, date], list[tuple[datetime, datetime]]],
    earliest: datetime,
    latest: datetime,
) -> Iterator[Slot]:
    """Every free slot from ``earliest`` to ``latest``, in (start, practitioner) order.

    Produced day by day, so the caller can stop as soon as it has enough.
    """
    tz = practice.tz
    step = timedelta(minutes=practice.rules.slot_step_min)
    day = earliest.astimezone(tz).date()
    last_day = latest.astimezone(tz).date()
    while day <= last_day:
        todays: list[tuple[datetime, int, Slot]] = []
        for order, practitioner_id in enumerate(who):
            taken = busy_by_day.get((practitioner_id, day), ())
            for period in practice.periods_on(day, practitioner_id):
                period_end = datetime.combine(day, period.end, tzinfo=tz)
                start = datetime.combine(day, period.start, tzinfo=tz)
                while start + duration <= period_end:
                    end = start + duration
                    if (
                        earliest <= start < latest
                        and not practice.kept_for_staff(start, end)
                        and not any(b_start < end and start < b_end for b_start, b_end in taken)
                    ):
                        todays.append((start, order, Slot(practitioner_id, start, end, reason_id)))
                    start += step
        todays.sort(key=lambda item: (item[0], item[1]))
        yield from (slot for _, _, slot in todays)
        day += timedelta(days=1)


def _pick(candidates: Iterator[Slot], limit: int | None, spread: timedelta) -> list[Slot]:
    if limit is None:
        return list(candidates)
    picked: list[Slot] = []
    skipped: list[Slot] = []
    for slot in candidates:
        if not picked or slot.start >= picked[-1].start + spread:
            picked.append(slot)
            if len(picked) == limit:
                return picked
        else:
            skipped.append(slot)
    # The spread could not be honoured: fill with the earliest slots passed over.
    # The sort is stable, so at equal starts a spread pick stays first.
    picked.extend(skipped[: limit - len(picked)])
    picked.sort(key=lambda s: s.start)
    return picked
