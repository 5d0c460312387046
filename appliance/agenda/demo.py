"""The demo practice's agenda: a believable share of slots already taken.

A demo where every slot is free rings false (and never exercises "that slot is
gone, here are others"); one where the agenda is full cannot book. So each
practitioner's days are filled to roughly 60 %, with invented patients, and
every half-day keeps at least one free window long enough for the longest visit.

Generation is deterministic: each (practitioner, day) draws from its own
``random.Random`` seeded with the practitioner id and the calendar date, never
from the global generator or the time of the call. The same ``now`` gives the
same agenda, and a day looks the same whichever ``now`` it is generated from,
so seeding again a week later extends the agenda without reshuffling it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Final

from appliance.agenda.practice import OpeningPeriod, Practice, Practitioner, VisitReason

_TAKEN_SHARE: Final = 0.8
"""Chance that a stretch of the agenda is booked; with the kept-free window and the
gaps left by rounding to the slot step, about 60 % of opening time ends up taken."""

_KEPT_FREE_MIN: Final = 40
"""Per half-day and practitioner, a window left free: the longest demo visit (30 min)
fits in it whatever the slot step, so booking always finds something."""

# How often each demo reason turns up in a real general practice's agenda;
# a reason of another practice not named here weighs 1.
_REASON_WEIGHTS: Final = {
    "consultation": 12,
    "suivi": 6,
    "vaccination": 2,
    "certificat": 2,
    "premiere": 1,
}

# Invented patients. Phone numbers use 06 39 98, a range ARCEP sets aside for fiction.
_LAST_NAMES: Final = (
    "Dubois", "Lefebvre", "Moreau", "Laurent", "Simon", "Michel", "Garcia", "David",
    "Bertrand", "Roux", "Vincent", "Fournier", "Morel", "Girard", "André", "Mercier",
    "Blanc", "Guérin", "Boyer", "Garnier", "Chevalier", "François", "Legrand", "Gauthier",
    "Perrin", "Robin", "Clément", "Morin", "Nicolas", "Henry", "Roussel", "Mathieu",
)
_FIRST_NAMES: Final = (
    "Camille", "Léa", "Manon", "Chloé", "Inès", "Jeanne", "Louise", "Alice", "Sophie",
    "Nathalie", "Isabelle", "Monique", "Hugo", "Lucas", "Louis", "Gabriel", "Arthur",
    "Thomas", "Nicolas", "Pierre", "Jean", "Michel", "Bernard", "Karim", "Yanis",
)


@dataclass(frozen=True, slots=True)
class DemoAppointment:
    practitioner_id: str
    reason_id: str
    start: datetime
    """Aware, in the practice's zone."""
    end: datetime
    patient_last_name: str
    patient_first_name: str
    patient_birth_date: date
    patient_phone: str


def demo_appointments(practice: Practice, now: datetime, weeks: int = 4) -> list[DemoAppointment]:
    """Taken appointments from the start of ``now``'s day for ``weeks`` weeks, sorted by start.

    The whole of today is included, mornings already past too: the agenda of a
    real practice has them.
    """
    if now.tzinfo is None:
        raise ValueError("demo_appointments needs an aware 'now'")
    if weeks < 0:
        raise ValueError(f"weeks must not be negative, got {weeks}")
    first_day = now.astimezone(practice.tz).date()
    out: list[DemoAppointment] = []
    for offset in range(weeks * 7):
        day = first_day + timedelta(days=offset)
        for practitioner in practice.practitioners:
            out.extend(_day_of(practice, practitioner, day))
    out.sort(key=lambda a: (a.start, a.practitioner_id))
    return out


def _day_of(practice: Practice, practitioner: Practitioner, day: date) -> list[DemoAppointment]:
    rng = random.Random(f"{practitioner.id}-{day.isoformat()}")
    reasons = [r for r in practice.reasons if r.seen_by(practitioner.id)]
    if not reasons:
        return []  # a practitioner who sees nothing bookable has an empty agenda
    weights = [_REASON_WEIGHTS.get(r.id, 1) for r in reasons]
    out: list[DemoAppointment] = []
    for period in practice.periods_on(day):
        out.extend(_period_of(practice, practitioner, day, period, rng, reasons, weights))
    return out


def _period_of(
    practice: Practice,
    practitioner: Practitioner,
    day: date,
    period: OpeningPeriod,
    rng: random.Random,
    reasons: list[VisitReason],
    weights: list[int],
) -> list[DemoAppointment]:
    tz = practice.tz
    step = timedelta(minutes=practice.rules.slot_step_min)
    opens = datetime.combine(day, period.start, tzinfo=tz)
    closes = datetime.combine(day, period.end, tzinfo=tz)

    kept = timedelta(minutes=_KEPT_FREE_MIN)
    positions = max(0, int((closes - opens - kept) / step))
    kept_start = opens + step * rng.randint(0, positions)
    kept_end = kept_start + kept

    def next_step(t: datetime) -> datetime:
        # Round up to the slot grid, so the gaps left stay bookable.
        steps = -(-(t - opens) // step)
        return opens + step * steps

    out: list[DemoAppointment] = []
    cursor = opens
    while cursor < closes:
        if kept_start <= cursor < kept_end:
            cursor = next_step(kept_end)
            continue
        reason = rng.choices(reasons, weights)[0]
        end = cursor + timedelta(minutes=reason.duration_min)
        taken = rng.random() < _TAKEN_SHARE
        if end > closes:
            break
        if end > kept_start and cursor < kept_end:
            cursor = next_step(kept_end)
            continue
        if taken:
            out.append(_appointment(rng, practitioner, reason, cursor, end))
        cursor = next_step(end)
    return out


def _appointment(
    rng: random.Random, practitioner: Practitioner, reason: VisitReason, start: datetime, end: datetime
) -> DemoAppointment:
    return DemoAppointment(
        practitioner_id=practitioner.id,
        reason_id=reason.id,
        start=start,
        end=end,
        patient_last_name=rng.choice(_LAST_NAMES),
        patient_first_name=rng.choice(_FIRST_NAMES),
        patient_birth_date=date(1940, 1, 1) + timedelta(days=rng.randrange(80 * 365)),
        patient_phone=f"063998{rng.randrange(10_000):04d}",
    )
