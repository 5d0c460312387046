"""Free slots: notice, horizon, closures, period ends, who sees what, and DST."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, time, timedelta, timezone
from importlib import resources
from pathlib import Path

import pytest

from appliance.agenda.demo import demo_appointments
from appliance.agenda.practice import (
    BookingRules,
    Closure,
    OpeningPeriod,
    Practice,
    Practitioner,
    VisitReason,
    builtin_practice,
    load_practice,
)
from appliance.agenda.slots import Slot, free_slots
from appliance.agenda.weekly import parse_ranges
from appliance.errors import ConfigError
from appliance.clock import PARIS

MARTIN = Practitioner(id="martin", display_name="docteur Claire Martin", last_name="Martin")
BERNARD = Practitioner(id="bernard", display_name="docteur Julien Bernard", last_name="Bernard")

PRACTICE = Practice(
    id="test",
    name="Cabinet de test",
    address="1 place de la Mairie",
    phone="04 65 71 00 01",
    data_notice="Vos données restent au cabinet.",
    practitioners=(MARTIN, BERNARD),
    reasons=(
        VisitReason(id="consultation", label="une consultation", duration_min=20),
        VisitReason(id="premiere", label="une première consultation", duration_min=30,
                    practitioner_ids=("bernard",)),
    ),
    hours=tuple(
        OpeningPeriod(weekday=weekday, start=start, end=end)
        for weekday in range(5)
        for start, end in ((time(8, 30), time(12, 30)), (time(14, 0), time(19, 0)))
    ),
    rules=BookingRules(min_notice_min=60, horizon_days=60, slot_step_min=10),
)


def at(day: int, hour: int, minute: int = 0, month: int = 3) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=PARIS)


TUESDAY = 3  # 2026-03-03


def starts(slots: list[Slot]) -> list[tuple[str, str]]:
    return [(f"{s.start:%a %H:%M}", s.practitioner_id) for s in slots]


def test_the_first_slots_respect_the_minimum_notice_and_the_slot_grid() -> None:
    slots = free_slots(PRACTICE, "consultation", [], now=at(TUESDAY, 10, 5),
                       practitioner_id="martin")

    # 10:05 + 60 min = 11:05; the grid from 8:30 gives 11:10.
    assert starts(slots) == [("Tue 11:10", "martin"), ("Tue 11:20", "martin"), ("Tue 11:30", "martin")]


def test_equal_starts_follow_the_practice_order_of_practitioners() -> None:
    slots = free_slots(PRACTICE, "consultation", [], now=at(TUESDAY, 10, 5), limit=4)

    assert starts(slots) == [
        ("Tue 11:10", "martin"), ("Tue 11:10", "bernard"),
        ("Tue 11:20", "martin"), ("Tue 11:20", "bernard"),
    ]


def test_a_busy_interval_blocks_every_slot_it_overlaps_for_that_practitioner_only() -> None:
    busy = [("martin", at(TUESDAY, 11, 15), at(TUESDAY, 11, 45))]

    slots = free_slots(PRACTICE, "consultation", busy, now=at(TUESDAY, 10, 5), limit=5)

    assert starts(slots) == [
        ("Tue 11:10", "bernard"), ("Tue 11:20", "bernard"), ("Tue 11:30", "bernard"),
        ("Tue 11:40", "bernard"), ("Tue 11:50", "martin"),
    ]


def test_the_whole_visit_fits_inside_the_opening_period() -> None:
    slots = free_slots(PRACTICE, "premiere", [], now=at(TUESDAY, 7, 0), limit=None,
                       window_end=at(TUESDAY, 13, 0))

    # A 30-minute visit: 12:00-12:30 is the last one before the lunch break.
    assert starts(slots)[-1] == ("Tue 12:00", "bernard")
    assert all(s.end <= at(TUESDAY, 12, 30) for s in slots)


def test_a_reason_seen_by_one_practitioner_offers_nothing_with_the_other() -> None:
    assert free_slots(PRACTICE, "premiere", [], now=at(TUESDAY, 7), practitioner_id="martin") == []
    assert {s.practitioner_id for s in free_slots(PRACTICE, "premiere", [], now=at(TUESDAY, 7))} == {
        "bernard"
    }


def test_unknown_ids_are_errors_not_empty_agendas() -> None:
    with pytest.raises(KeyError):
        free_slots(PRACTICE, "massage", [], now=at(TUESDAY, 7))
    with pytest.raises(KeyError):
        free_slots(PRACTICE, "consultation", [], now=at(TUESDAY, 7), practitioner_id="durand")


def test_evenings_weekends_and_closures_are_skipped() -> None:
    closed = replace(PRACTICE, closures=(Closure(start=date(2026, 3, 9), end=date(2026, 3, 10)),))

    # Friday 18:30: the day is over, the weekend is closed, Monday and Tuesday are a closure.
    slots = free_slots(closed, "consultation", [], now=at(6, 18, 30), practitioner_id="martin")

    assert slots[0].start == at(11, 8, 30)


def test_no_slot_lies_beyond_the_horizon() -> None:
    short = replace(PRACTICE, rules=BookingRules(horizon_days=2))
    now = at(TUESDAY, 10, 5)

    slots = free_slots(short, "consultation", [], now=now, limit=None)

    assert slots and max(s.start for s in slots) < now + timedelta(days=2)
    assert max(s.start for s in slots) == at(5, 10, 0)  # Thursday, the last start before 10:05


def test_a_window_keeps_only_slots_starting_inside_it() -> None:
    slots = free_slots(PRACTICE, "consultation", [], now=at(TUESDAY, 10),
                       window_start=at(4, 14), window_end=at(4, 19), limit=None,
                       practitioner_id="martin")

    assert slots[0].start == at(4, 14) and slots[-1].start == at(4, 18, 40)


def test_a_spread_offer_is_at_least_that_far_apart() -> None:
    slots = free_slots(PRACTICE, "consultation", [], now=at(TUESDAY, 10, 5), spread_min=30)

    assert starts(slots) == [("Tue 11:10", "martin"), ("Tue 11:40", "martin"), ("Tue 12:10", "martin")]


def test_a_spread_that_cannot_be_honoured_still_offers_what_is_free() -> None:
    # Only 11:10 and 11:20 start inside the window: less than the 60 minutes asked for.
    slots = free_slots(PRACTICE, "consultation", [], now=at(TUESDAY, 10, 5),
                       practitioner_id="martin", window_end=at(TUESDAY, 11, 30), spread_min=60)

    assert starts(slots) == [("Tue 11:10", "martin"), ("Tue 11:20", "martin")]


# 2026-03-29 is the night Paris moves from UTC+1 to UTC+2.
def test_opening_hours_stay_at_wall_clock_time_across_the_spring_change() -> None:
    friday_evening = at(27, 18, 30)

    slots = free_slots(PRACTICE, "consultation", [], now=friday_evening, practitioner_id="martin")

    monday = slots[0]
    assert monday.start == at(30, 8, 30)
    assert monday.start.utcoffset() == timedelta(hours=2)
    assert monday.start.astimezone(timezone.utc).hour == 6  # a day earlier it would be 7


def test_busy_intervals_given_in_utc_block_the_right_local_slot_after_the_change() -> None:
    busy = [("martin", datetime(2026, 3, 30, 6, 30, tzinfo=timezone.utc),
             datetime(2026, 3, 30, 6, 50, tzinfo=timezone.utc))]

    slots = free_slots(PRACTICE, "consultation", busy, now=at(27, 18, 30), practitioner_id="martin")

    assert slots[0].start == at(30, 8, 50)


def test_the_autumn_change_moves_utc_not_the_opening_hours() -> None:
    # 2026-10-25: Paris goes back from UTC+2 to UTC+1.
    slots = free_slots(PRACTICE, "consultation", [], now=at(23, 18, 30, month=10),
                       practitioner_id="martin")

    assert slots[0].start == at(26, 8, 30, month=10)
    assert slots[0].start.utcoffset() == timedelta(hours=1)


def test_the_demo_agenda_leaves_something_free_every_half_day() -> None:
    demo = builtin_practice("demo")
    now = at(TUESDAY, 15, 0)
    busy = [(a.practitioner_id, a.start, a.end) for a in demo_appointments(demo, now, weeks=2)]

    for offset in range(14):
        day = now.date() + timedelta(days=offset)
        for period in demo.periods_on(day):
            opens = datetime.combine(day, period.start, tzinfo=PARIS)
            closes = datetime.combine(day, period.end, tzinfo=PARIS)
            if opens < now:
                continue  # this morning: already past
            slots = free_slots(demo, "premiere", busy, now=now, window_start=opens, window_end=closes)
            assert slots, f"nothing free on {day} {period.start}"


# --- Practitioner schedules and time kept for the staff -----------------------------


def test_a_practitioner_with_own_hours_is_offered_only_within_them() -> None:
    part_time = replace(
        BERNARD, hours=(OpeningPeriod(weekday=2, start=time(14, 0), end=time(16, 0)),)  # Wednesday afternoons
    )
    practice = replace(PRACTICE, practitioners=(MARTIN, part_time))
    monday_8h = datetime(2026, 3, 2, 8, 0, tzinfo=PARIS)

    slots = free_slots(practice, "consultation", [], monday_8h, practitioner_id="bernard", limit=3)

    assert [s.start for s in slots] == [
        datetime(2026, 3, 4, 14, 0, tzinfo=PARIS),
        datetime(2026, 3, 4, 14, 10, tzinfo=PARIS),
        datetime(2026, 3, 4, 14, 20, tzinfo=PARIS),
    ]
    # The others keep the practice's hours.
    assert free_slots(practice, "consultation", [], monday_8h, practitioner_id="martin", limit=1)[0].start.date() == date(2026, 3, 2)


def test_time_kept_for_the_staff_is_never_offered() -> None:
    rules = replace(PRACTICE.rules, min_notice_min=0, kept_for_staff=parse_ranges(["mon-fri 08:30-09:00"], "rules.kept_for_staff"))
    practice = replace(PRACTICE, rules=rules)
    monday_7h = datetime(2026, 3, 2, 7, 0, tzinfo=PARIS)

    slots = free_slots(practice, "consultation", [], monday_7h, practitioner_id="martin", limit=2)

    # 08:30-08:50 and 08:40-09:00 touch the kept half hour; 08:50 would end at 09:10.
    assert [s.start.time() for s in slots] == [time(9, 0), time(9, 10)]


def test_kept_for_staff_in_a_practice_file_is_checked(tmp_path: Path) -> None:
    demo = (resources.files("appliance.agenda") / "practices" / "demo.toml").read_text(encoding="utf-8")
    source = tmp_path / "practice.toml"
    source.write_text(demo.replace("slot_step_min = 10", 'slot_step_min = 10\nkept_for_staff = ["lun 08:30-09:00"]'))

    with pytest.raises(ConfigError, match=r"rules.kept_for_staff: 'lun' .* is not one of mon"):
        load_practice(source)
