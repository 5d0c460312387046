"""French text for the speech synthesiser: dates, times, phone numbers, slot lists.

Written the way a French secretary says them, never the way they are printed:
"9 heures 30" not "9h30" (a synthesiser reads "9h30" as "neuf h trente"),
"à midi" not "à 12 heures", "premier décembre" not "1er décembre", a phone
number in pairs "06 12 34 56 78" (read "zéro six, douze, ..."). Digits are
left as digits: the synthesiser's own French number reading is good.

Pure functions; no clock, no locale (the machine's locale is not the caller's).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time
from typing import Final

WEEKDAY_NAMES: Final = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")
"""Index = ``date.weekday()``."""
MONTH_NAMES: Final = (
    "janvier", "février", "mars", "avril", "mai", "juin",
    "juillet", "août", "septembre", "octobre", "novembre", "décembre",
)  # fmt: skip
"""Index = month - 1."""

# How a practitioner's display name is introduced after "avec": "avec le docteur
# Martin", "avec Madame Durand", but a name without a title is said as is.
_TITLES: Final = {
    "dr": "le docteur",
    "dr.": "le docteur",
    "docteur": "le docteur",
    "docteure": "la docteure",
    "doctoresse": "la doctoresse",
    "pr": "le professeur",
    "professeur": "le professeur",
}


def say_time(t: time) -> str:
    """ "9 heures 30", "14 heures", "midi", "midi 15", "minuit", "une heure 5"."""
    if t.hour == 12:
        head = "midi"
    elif t.hour == 0:
        head = "minuit"
    elif t.hour == 1:
        head = "une heure"
    else:
        head = f"{t.hour} heures"
    return f"{head} {t.minute}" if t.minute else head


def say_date(d: date, *, weekday: bool = False, year: bool = True) -> str:
    """ "12 mars 1980"; "premier janvier 1975"; with ``weekday``: "mardi 25 novembre 2026"."""
    day = "premier" if d.day == 1 else str(d.day)
    text = f"{day} {MONTH_NAMES[d.month - 1]}"
    if year:
        text = f"{text} {d.year}"
    if weekday:
        text = f"{WEEKDAY_NAMES[d.weekday()]} {text}"
    return text


def say_datetime(dt: datetime, *, year: bool = False) -> str:
    """ "mardi 25 novembre à 9 heures 30", "jeudi 3 décembre à midi".

    The year is left out: offered slots are within weeks, and "2026" read after
    every option makes a list of three unbearable.
    """
    return f"{say_date(dt.date(), weekday=True, year=year)} à {say_time(dt.time())}"


def say_phone(digits: str) -> str:
    """ "0612345678" -> "06 12 34 56 78"; anything but digits is dropped first."""
    only = "".join(c for c in digits if c.isdigit())
    return " ".join(only[i : i + 2] for i in range(0, len(only), 2))


def say_practitioner(display_name: str) -> str:
    """ "docteur Claire Martin" -> "le docteur Claire Martin"; "Dr Martin" -> "le docteur Martin"."""
    words = display_name.split()
    if not words:
        return ""
    title = _TITLES.get(words[0].lower())
    if title is not None:
        return " ".join([title, *words[1:]])
    return display_name


def say_slot_options(options: Sequence[tuple[datetime, str]]) -> str:
    """ "mardi 25 novembre à 9 heures 30 avec le docteur Martin, ou mercredi ..."

    Each option is (start, practitioner display name); an empty name leaves out
    "avec ...". Options are separated by commas, the last by ", ou", so the
    synthesiser pauses between them.
    """
    spoken = []
    for start, name in options:
        who = say_practitioner(name)
        spoken.append(f"{say_datetime(start)} avec {who}" if who else say_datetime(start))
    if len(spoken) <= 1:
        return "".join(spoken)
    return f"{', '.join(spoken[:-1])}, ou {spoken[-1]}"
