"""What the synthesiser reads: dates, times and numbers as a French secretary says them."""

from __future__ import annotations

import re
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.dialogue.speakable import (
    say_date,
    say_datetime,
    say_phone,
    say_practitioner,
    say_slot_options,
    say_time,
)

PARIS = ZoneInfo("Europe/Paris")


@pytest.mark.parametrize(
    ("t", "spoken"),
    [
        (time(9, 30), "9 heures 30"),
        (time(14, 0), "14 heures"),
        (time(12, 0), "midi"),
        (time(12, 15), "midi 15"),
        (time(0, 0), "minuit"),
        (time(1, 0), "une heure"),
        (time(8, 5), "8 heures 5"),
        (time(18, 45), "18 heures 45"),
    ],
)
def test_say_time(t: time, spoken: str) -> None:
    assert say_time(t) == spoken


@pytest.mark.parametrize(
    ("dt", "spoken"),
    [
        (datetime(2026, 11, 24, 9, 30, tzinfo=PARIS), "mardi 24 novembre à 9 heures 30"),
        (datetime(2026, 12, 3, 12, 0, tzinfo=PARIS), "jeudi 3 décembre à midi"),
        (datetime(2026, 12, 1, 14, 0, tzinfo=PARIS), "mardi premier décembre à 14 heures"),
        (datetime(2027, 8, 15, 17, 20, tzinfo=PARIS), "dimanche 15 août à 17 heures 20"),
    ],
)
def test_say_datetime_never_writes_9h30(dt: datetime, spoken: str) -> None:
    assert say_datetime(dt) == spoken


@pytest.mark.parametrize(
    ("d", "spoken"),
    [
        (date(1980, 3, 12), "12 mars 1980"),
        (date(1975, 1, 1), "premier janvier 1975"),
        (date(2001, 8, 31), "31 août 2001"),
        (date(1999, 12, 25), "25 décembre 1999"),
    ],
)
def test_say_date(d: date, spoken: str) -> None:
    assert say_date(d) == spoken


def test_say_date_options() -> None:
    assert say_date(date(2026, 11, 24), weekday=True, year=False) == "mardi 24 novembre"
    assert say_datetime(datetime(2027, 1, 4, 9, 0, tzinfo=PARIS), year=True) == "lundi 4 janvier 2027 à 9 heures"


@pytest.mark.parametrize(
    ("digits", "spoken"),
    [
        ("0612345678", "06 12 34 56 78"),
        ("01 42 00 00 00", "01 42 00 00 00"),
        ("+33612345678", "33 61 23 45 67 8"),  # only digits are grouped: normalise first
        ("", ""),
    ],
)
def test_say_phone_in_pairs(digits: str, spoken: str) -> None:
    assert say_phone(digits) == spoken


@pytest.mark.parametrize(
    ("display_name", "spoken"),
    [
        ("docteur Claire Martin", "le docteur Claire Martin"),
        ("Dr Martin", "le docteur Martin"),
        ("Docteure Durand", "la docteure Durand"),
        ("Marie Dubois, sage-femme", "Marie Dubois, sage-femme"),
        ("", ""),
    ],
)
def test_say_practitioner(display_name: str, spoken: str) -> None:
    assert say_practitioner(display_name) == spoken


def test_slot_options_are_listed_with_pauses_and_a_final_ou() -> None:
    options = [
        (datetime(2026, 11, 24, 9, 30, tzinfo=PARIS), "docteur Martin"),
        (datetime(2026, 11, 25, 12, 0, tzinfo=PARIS), "Dr Bernard"),
        (datetime(2026, 11, 26, 14, 0, tzinfo=PARIS), "docteur Martin"),
    ]
    assert say_slot_options(options) == (
        "mardi 24 novembre à 9 heures 30 avec le docteur Martin, "
        "mercredi 25 novembre à midi avec le docteur Bernard, "
        "ou jeudi 26 novembre à 14 heures avec le docteur Martin"
    )
    assert say_slot_options(options[:2]) == (
        "mardi 24 novembre à 9 heures 30 avec le docteur Martin, ou mercredi 25 novembre à midi avec le docteur Bernard"
    )
    assert say_slot_options(options[:1]) == "mardi 24 novembre à 9 heures 30 avec le docteur Martin"
    assert say_slot_options([(options[0][0], "")]) == "mardi 24 novembre à 9 heures 30"
    assert say_slot_options([]) == ""


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)))
def test_say_datetime_has_no_clock_notation(dt: datetime) -> None:
    spoken = say_datetime(dt.replace(tzinfo=PARIS))
    assert not re.search(r"\d\s*(?:h\b|h\d|:)", spoken)  # never "9h30", "9 h", "9:30"
