"""The practice file: the demo loads, every mistake is named, the demo agenda is believable."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from pathlib import Path

import pytest

from appliance.agenda.demo import demo_appointments
from appliance.agenda.practice import (
    Practice,
    builtin_practice,
    load_practice,
    resolve_practice,
)
from appliance.clock import PARIS
from appliance.errors import ConfigError

VALID = """\
id = "test"
name = "Cabinet de test"
address = "1 place de la Mairie, 38000 Grenoble"
phone = "04 65 71 00 01"
data_notice = "Vos données restent au cabinet."

[hours]
monday = ["08:30-12:30", "14:00-19:00"]

[[practitioners]]
id = "martin"
display_name = "docteur Claire Martin"
last_name = "Martin"

[[reasons]]
id = "consultation"
label = "une consultation"
duration_min = 20
practitioner_ids = ["martin"]
keywords = ["consultation"]
"""

SECOND_PRACTITIONER = """
[[practitioners]]
id = "martin"
display_name = "docteur Paul Martin"
last_name = "Martin"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cabinet.toml"
    path.write_text(text, encoding="utf-8")
    return path


def changed(old: str, new: str) -> str:
    assert old in VALID, f"test bug: {old!r} is not in the valid file"
    return VALID.replace(old, new)


# --- Loading ---------------------------------------------------------------------


def test_a_valid_file_loads_with_defaults_for_what_it_leaves_out(tmp_path: Path) -> None:
    practice = load_practice(write(tmp_path, VALID))

    assert practice.name == "Cabinet de test"
    assert practice.timezone == "Europe/Paris" and practice.emergency_number == "15"
    assert practice.rules.slot_step_min == 10
    assert [(p.start, p.end) for p in practice.periods_on(date(2026, 3, 2))] == [
        (time(8, 30), time(12, 30)),
        (time(14, 0), time(19, 0)),
    ]
    assert practice.periods_on(date(2026, 3, 3)) == ()  # a Tuesday: closed
    assert practice.reason("consultation").duration_min == 20


def test_the_demo_practice_has_two_doctors_and_only_one_takes_new_patients() -> None:
    demo = builtin_practice("demo")

    assert [p.display_name for p in demo.practitioners] == [
        "docteur Claire Martin",
        "docteur Julien Bernard",
    ]
    assert {r.id for r in demo.reasons} >= {"consultation", "suivi", "vaccination", "certificat"}
    assert [p.id for p in demo.practitioners_for("premiere")] == ["bernard"]
    assert demo.periods_on(date(2026, 3, 7))[0].start == time(9, 0)  # Saturday morning
    assert demo.periods_on(date(2026, 3, 8)) == ()  # Sunday
    assert demo.is_closed(date(2026, 5, 1))


def test_resolve_practice_takes_a_builtin_name_or_a_path_relative_to_the_config(
    tmp_path: Path,
) -> None:
    write(tmp_path, VALID)

    assert resolve_practice("demo").id == "demo"
    assert resolve_practice("cabinet.toml", tmp_path).id == "test"
    assert resolve_practice(str(tmp_path / "cabinet.toml")).id == "test"


def test_an_unknown_builtin_name_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="no built-in practice 'dmeo' .*demo"):
        resolve_practice("dmeo")


def test_a_missing_file_is_named() -> None:
    with pytest.raises(ConfigError, match="nowhere.toml: practice file not found"):
        load_practice(Path("/nowhere.toml"))


BAD_FILES = {
    "typo in a key": (
        changed("duration_min = 20", "duraton_min = 20"),
        "[[reasons]] #1 ('consultation'): unknown key 'duraton_min' (did you mean 'duration_min'?)",
    ),
    "missing key": (
        changed('phone = "04 65 71 00 01"\n', ""),
        "missing key 'phone'",
    ),
    "hour out of range": (
        changed('"14:00-19:00"', '"14:00-25:00"'),
        "hours.monday period #2: '25:00' is not a time of day",
    ),
    "period ending before it starts": (
        changed('"14:00-19:00"', '"14:00-12:00"'),
        "hours.monday period #2: the period 14:00-12:00 ends before it starts",
    ),
    "periods overlapping": (
        changed('"14:00-19:00"', '"12:00-19:00"'),
        "on monday the periods 08:30-12:30 and 12:00-19:00 overlap",
    ),
    "French weekday name": (
        changed("monday =", "lundi ="),
        "hours: unknown key 'lundi'",
    ),
    "reason naming an unknown practitioner": (
        changed('practitioner_ids = ["martin"]', 'practitioner_ids = ["durand"]'),
        "reason 'consultation' names unknown practitioner 'durand' (known: martin)",
    ),
    "two practitioners with one id": (
        VALID + SECOND_PRACTITIONER,
        "two practitioners have the id 'martin'",
    ),
    "text where a number belongs": (
        changed("duration_min = 20", 'duration_min = "20"'),
        "'duration_min' must be a whole number, got '20'",
    ),
    "implausible duration": (
        changed("duration_min = 20", "duration_min = 600"),
        "duration_min must be 5-240 minutes, got 600",
    ),
    "unknown time zone": (
        changed('id = "test"\n', 'id = "test"\ntimezone = "Europe/Lyon"\n'),
        "timezone 'Europe/Lyon' is not a known time zone",
    ),
    "not TOML at all": (
        changed('name = "Cabinet de test"', "name = Cabinet de test"),
        "not valid TOML",
    ),
    "closure ending before it starts": (
        VALID + "\n[[closures]]\nstart = 2026-08-10\nend = 2026-08-01\n",
        "[[closures]] #1: the closure ends (2026-08-01) before it starts (2026-08-10)",
    ),
}


@pytest.mark.parametrize("text, problem", BAD_FILES.values(), ids=BAD_FILES.keys())
def test_every_mistake_names_the_file_and_the_problem(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = write(tmp_path, text)

    with pytest.raises(ConfigError) as caught:
        load_practice(path)

    assert caught.value.detail.startswith(f"{path}: ")
    assert problem in caught.value.detail


# --- The demo agenda ---------------------------------------------------------------

TUESDAY_10H = datetime(2026, 3, 3, 10, 0, tzinfo=PARIS)


def opening_minutes(practice: Practice, first_day: date, days: int) -> float:
    total = 0.0
    for offset in range(days):
        day = first_day + timedelta(days=offset)
        for period in practice.periods_on(day):
            opens = datetime.combine(day, period.start)
            closes = datetime.combine(day, period.end)
            total += (closes - opens).total_seconds() / 60 * len(practice.practitioners)
    return total


def test_the_demo_agenda_is_the_same_for_the_same_now() -> None:
    demo = builtin_practice("demo")

    assert demo_appointments(demo, TUESDAY_10H) == demo_appointments(demo, TUESDAY_10H)


def test_a_day_of_the_demo_agenda_does_not_change_with_the_day_it_is_generated_from() -> None:
    demo = builtin_practice("demo")
    thursday = date(2026, 3, 5)

    from_tuesday = [a for a in demo_appointments(demo, TUESDAY_10H) if a.start.date() == thursday]
    from_thursday = [
        a
        for a in demo_appointments(demo, TUESDAY_10H + timedelta(days=2))
        if a.start.date() == thursday
    ]

    assert from_tuesday and from_tuesday == from_thursday


@pytest.mark.parametrize("start", [TUESDAY_10H, TUESDAY_10H + timedelta(days=45)])
def test_the_demo_agenda_is_between_half_and_three_quarters_full(start: datetime) -> None:
    demo = builtin_practice("demo")
    appointments = demo_appointments(demo, start, weeks=4)

    booked = sum((a.end - a.start).total_seconds() / 60 for a in appointments)
    share = booked / opening_minutes(demo, start.date(), 28)

    assert 0.50 <= share <= 0.75


def test_demo_appointments_lie_within_opening_hours_and_never_overlap() -> None:
    demo = builtin_practice("demo")
    appointments = demo_appointments(demo, TUESDAY_10H, weeks=4)

    for a in appointments:
        periods = demo.periods_on(a.start.date())
        assert any(p.start <= a.start.time() and a.end.time() <= p.end for p in periods), a
        assert a.end - a.start == timedelta(minutes=demo.reason(a.reason_id).duration_min)
        assert demo.reason(a.reason_id).seen_by(a.practitioner_id)
    for practitioner in demo.practitioners:
        own = [a for a in appointments if a.practitioner_id == practitioner.id]
        for before, after in zip(own, own[1:]):
            assert before.end <= after.start, (before, after)


def test_the_demo_agenda_starts_today_and_leaves_out_closures() -> None:
    demo = builtin_practice("demo")
    appointments = demo_appointments(demo, datetime(2026, 4, 27, 15, 0, tzinfo=PARIS), weeks=1)

    days = {a.start.date() for a in appointments}

    assert min(days) == date(2026, 4, 27)
    assert date(2026, 5, 1) not in days  # Fête du travail
    assert date(2026, 5, 3) not in days  # Sunday
