"""Slot parsers: the caller's answers turned into values the agenda understands.

Pure functions of (text, now): no clock, no model, no I/O. Each one returns None
when it is unsure or the text is garbage and never raises, because a garbled
transcript must cost one "pardon ?", never the call. All of them work on the
normalized transcript (``normalize``): no accents, no punctuation, numbers as
digits, so "Neuf heures trente", "9h30" and "9:30" are the same answer.

Choices made where French is ambiguous, so that they can be argued with:

- yes/no: the *last* clear answer wins ("oui... enfin non" is no), because a
  correction follows what it corrects.
- a weekday means the next such day *after* today ("mardi" said on a Tuesday is
  next week's); today is "aujourd'hui". "mardi prochain" is the same day as
  "mardi" ("mardi en huit" is a week later).
- "le 25" is the next 25th from today, this month (today included) or the next.
- an hour of 1 to 7 without "du matin" is the afternoon ("à 3 heures" is 15 h):
  nobody is seen at 3 a.m.
- a choice among offered slots also follows the last pick ("le premier, non, le
  deuxième" is the second).
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Final

from appliance.dialogue.normalize import fold_accents, normalize
from appliance.dialogue.speakable import MONTH_NAMES, WEEKDAY_NAMES, say_date, say_time

ANY: Final = "any"
"""What ``match_practitioner`` returns when any practitioner will do."""

PARTS_OF_DAY: Final[dict[str, tuple[time, time]]] = {
    "early_morning": (time(8, 0), time(10, 0)),
    "morning": (time(8, 0), time(12, 30)),
    "late_morning": (time(10, 30), time(12, 30)),
    "lunch": (time(12, 0), time(14, 0)),
    "early_afternoon": (time(14, 0), time(16, 0)),
    "afternoon": (time(14, 0), time(19, 0)),
    "late_afternoon": (time(16, 30), time(19, 0)),
}
_HORIZON_DAYS: Final = 30  # "le matin" with no day: look this far ahead
_EXACT_MARGIN: Final = timedelta(hours=1)  # "à 10 h": offer what is free within an hour of it

_FOLDED_MONTHS: Final = tuple(fold_accents(m) for m in MONTH_NAMES)
_MONTH: Final = "(?:" + "|".join(_FOLDED_MONTHS) + ")"
_WEEKDAY: Final = "(?:" + "|".join(WEEKDAY_NAMES) + ")"

# -- yes / no ------------------------------------------------------------------
# Negatives come first: at one position the first alternative wins, so "ça me va
# pas" is read as a refusal before "ça me va" can be read as a yes.
_NO: Final = (
    r"non (?:merci )?(?:c est bon|ca ira|ca va|c est tout|rien)", r"non merci", r"non", r"nan", r"pas du tout",
    r"surtout pas", r"absolument pas", r"pas vraiment", r"certainement pas", r"pas possible", r"impossible",
    r"pas d accord", r"(?:ce n est|c est) pas (?:ca|bon|possible|la peine|correct|juste)",
    r"(?:ca|cela) (?:ne )?(?:me |m )?(?:va|convient|arrange|ira) pas", r"je (?:ne )?(?:peux|pourrai|pourrais) pas",
    r"(?:je ne |je n )?(?:pense|crois) pas", r"jamais", r"c est tout", r"ce sera tout", r"rien d autre",
)  # fmt: skip
_YES: Final = (
    r"oui", r"ouais", r"ouai", r"ouaip", r"ouep", r"yes", r"ok", r"okay", r"oke", r"d accord", r"daccord", r"dac",
    r"c est (?:bien )?ca", r"c est (?:parfait|bon|ok|correct|exact|juste|tres bien|super)", r"parfait",
    r"exactement", r"exact", r"tout a fait", r"absolument", r"bien sur", r"bien entendu",
    r"(?:ca|cela) (?:me |m )?(?:va|convient|arrange|ira|marche|colle)", r"volontiers", r"entendu", r"tres bien",
    r"super", r"impeccable", r"nickel", r"va pour", r"allez y", r"je confirme", r"confirme", r"affirmatif",
    r"correct", r"voila", r"certainement", r"evidemment", r"avec plaisir", r"pourquoi pas", r"ca roule", r"carrement",
)  # fmt: skip
_YES_NO_RE: Final = re.compile(rf"\b(?:(?P<no>{'|'.join(_NO)})|(?P<yes>{'|'.join(_YES)}))\b")
_SI_RE: Final = re.compile(r"^(?:(?:mais|ah|eh|oh) )?si(?: si)*(?: (?:bien sur|c est ca))?$")


def parse_yes_no(text: str) -> bool | None:
    """True for a yes, False for a no, None when neither is clear; the last clear answer wins."""
    folded = _normalized(text)
    if _SI_RE.match(folded):  # "si" answers a negative question; elsewhere it means "if"
        return True
    answer = None
    for m in _YES_NO_RE.finditer(folded):
        answer = m.group("yes") is not None
    return answer


# -- when ------------------------------------------------------------------------
_TIME_RE: Final = re.compile(
    r"\b(?P<mode>vers |aux alentours de |autour de |environ |a partir de |apres |avant |pas avant |pas apres )?"
    r"(?P<a>a )?(?:"
    r"(?P<h>\d{1,2}) ?(?:heures?\b|h)(?: ?(?P<m>\d{1,2})\b(?! " + _MONTH + r"))?"  # 9h30, 9 heures 30, 9h
    r"|(?<!apres )(?<!entre )(?<!le )(?<!de )(?<!ce )(?P<noon>midi)"  # "le midi" is lunch time, not 12:00
    r"|(?P<bare>\d{1,2})\b(?! ?(?:" + _MONTH + r"|jours?|semaines?|mois|ans?|h|heures?|\d)\b)"  # "vers 11"
    r")(?: (?P<frac>et demie?|et quart|moins le quart|moins quart))?"
    r"(?: (?P<ampm>du matin|de l apres midi|de l aprem|du soir))?"
)
_PART_RULES: Final = (
    ("early_morning", r"debut de (?:la )?matinee|tot le matin|de bonne heure|(?:a la )?premiere heure|des l ouverture"),
    ("late_morning", r"fin de (?:la )?matinee|fin de (?:la )?matin"),
    ("lunch", r"entre midi et (?:2|14)|pause (?:du )?dejeuner|heure du (?:dejeuner|repas)|(?:le|ce) midi|temps de midi"),
    ("early_afternoon", r"debut (?:d |de l )?(?:apres midi|aprem)"),
    ("late_afternoon", r"fin (?:d |de l )?(?:apres midi|aprem)|fin de (?:la )?journee|soir\w*|apres (?:le|mon) (?:travail|boulot)"),
    ("afternoon", r"apres midi|aprem|apres (?:le )?(?:dejeuner|manger)"),
    ("morning", r"matin\w*"),
)
_PART_RES: Final = tuple((key, re.compile(rf"\b(?:{p})\b")) for key, p in _PART_RULES)
_PART_WITH_DAY: Final = {
    "early_morning": "en début de matinée", "morning": "matin", "late_morning": "en fin de matinée",
    "lunch": "entre midi et deux", "early_afternoon": "en début d'après-midi", "afternoon": "après-midi",
    "late_afternoon": "en fin d'après-midi",
}  # fmt: skip
_PART_ALONE: Final = {**_PART_WITH_DAY, "morning": "le matin", "afternoon": "l'après-midi"}
_THIS_PART_RE: Final = re.compile(r"\b(?:ce|cet|cette) (?:matin|matinee|midi|apres midi|aprem|soir|soiree)\b")
_EARLIEST_RE: Final = re.compile(
    r"\b(?:le plus tot|plus tot possible|des que possible|au plus vite|au plus tot|(?:le plus )?rapidement|en urgence|"
    r"(?<!pas )(?<!tout )urgent|asap|n importe quand|quand vous (?:voulez|pouvez)|des que vous pouvez|"
    r"n importe quel jour|peu importe (?:le jour|quand|la date|l heure|le moment)|premiere disponibilite|"
    # Not "le premier disponible": that answers "which doctor?" (ask_practitioner offers it).
    r"(?:le|la) premiere? (?:date|place|rendez vous|creneau) (?:disponible|dispo|libre))\b"
)
# Whisper hears "mardi matin" as "mardi Martin": after a day word, it is the morning.
_MATIN_REPAIR_RE: Final = re.compile(rf"\b({_WEEKDAY}|demain|aujourd hui) martin\b")


@dataclass(frozen=True, slots=True)
class WhenPreference:
    """When the caller would like to come: a search window plus what was said."""

    window_start: datetime
    """Aware, never before ``now``."""
    window_end: datetime
    """Aware, exclusive, never before ``window_start``."""
    earliest: bool = False
    """ "le plus tôt possible": the first free slot is the answer."""
    exact: datetime | None = None
    """A precise time asked for ("mardi à 10 heures"); the window then surrounds it."""
    part_of_day: str | None = None
    """A key of ``PARTS_OF_DAY``; for a window of several days it applies to each day."""
    description: str = ""
    """French, to say back: "mardi matin", "le 25 novembre à 9 heures 30"."""

    def accepts(self, moment: datetime) -> bool:
        """Whether a slot starting at ``moment`` fits: inside the window and the part of day."""
        if not self.window_start <= moment < self.window_end:
            return False
        if self.part_of_day is None:
            return True
        start, end = PARTS_OF_DAY[self.part_of_day]
        return start <= moment.astimezone(self.window_start.tzinfo).time() < end


@dataclass(frozen=True, slots=True)
class _Clock:
    at: time
    mode: str  # "at", "around", "after", "before"


@dataclass(frozen=True, slots=True)
class _Days:
    first: date
    last: date
    description: str
    attached: bool = False  # "mardi" / "demain" take "matin", not "le matin"


def parse_when(text: str, now: datetime) -> WhenPreference | None:
    """The caller's wish of a day and time, relative to ``now`` (aware); None if none was said."""
    folded = _MATIN_REPAIR_RE.sub(r"\1 matin", _normalized(text))
    if not folded or now.tzinfo is None:
        return None
    try:
        return _parse_when(folded, now)
    except (ValueError, OverflowError):  # a date beyond year 9999 and the like
        return None


def _parse_when(folded: str, now: datetime) -> WhenPreference | None:
    today, tz = now.date(), now.tzinfo
    earliest = bool(_EARLIEST_RE.search(folded))
    clock, folded = _take_clock(folded)
    this_part = _THIS_PART_RE.search(folded)
    part = next((key for key, pattern in _PART_RES if pattern.search(folded)), None)
    days = _days(folded, today)
    if days is None and this_part is not None:
        days = _Days(today, today, "aujourd'hui", attached=True)
    if not (earliest or clock or part or days):
        return None
    if days is None and clock is not None:  # "à 9 h 30": the next 9:30, today or tomorrow
        day = today if datetime.combine(today, clock.at, tz) > now else today + timedelta(days=1)
        days = _Days(day, day, "")
    if days is None:
        days = _Days(today, today + timedelta(days=_HORIZON_DAYS), "")
    exact = None
    if clock is not None and clock.mode in ("at", "around"):
        day = days.first  # the first day of the range on which that time is still ahead
        while day < days.last and datetime.combine(day, clock.at, tz) <= now:
            day += timedelta(days=1)
        exact = datetime.combine(day, clock.at, tz)
        start, end = exact - _EXACT_MARGIN, exact + _EXACT_MARGIN
    elif clock is not None:
        start = datetime.combine(days.first, clock.at if clock.mode == "after" else time(0), tz)
        last_end = clock.at if clock.mode == "before" else time(0)
        end = datetime.combine(days.last + timedelta(days=0 if clock.mode == "before" else 1), last_end, tz)
    elif part is not None:
        start = datetime.combine(days.first, PARTS_OF_DAY[part][0], tz)
        end = datetime.combine(days.last, PARTS_OF_DAY[part][1], tz)
    else:
        start = datetime.combine(days.first, time(0), tz)
        end = datetime.combine(days.last + timedelta(days=1), time(0), tz)
    start = max(start, now)
    precise = clock is not None and clock.mode in ("at", "around")  # the hour says more than "le matin"
    words = [_describe_day(days, None if precise else part, today)]
    if clock is not None:
        prefix = {"at": "à", "around": "vers", "after": "à partir de", "before": "avant"}[clock.mode]
        words.append(f"{prefix} {say_time(clock.at)}")
    if earliest and not any(words):
        words = ["le plus tôt possible"]
    return WhenPreference(
        window_start=start,
        window_end=max(end, start),
        earliest=earliest,
        exact=exact,
        part_of_day=None if precise else part,
        description=" ".join(w for w in words if w),
    )


def _describe_day(days: _Days, part: str | None, today: date) -> str:
    if part is None:
        return days.description
    if days.first == days.last == today and days.attached and part in ("morning", "afternoon"):
        return "ce matin" if part == "morning" else "cet après-midi"
    if days.attached:
        return f"{days.description} {_PART_WITH_DAY[part]}"
    return f"{days.description} {_PART_ALONE[part]}".strip()


def _take_clock(folded: str) -> tuple[_Clock | None, str]:
    """The first valid time of day said, and the text without it (so "9h30" is no day)."""
    for m in _TIME_RE.finditer(folded):
        if m.group("noon"):
            hour, minute = 12, 0
        else:
            hour, minute = int(m.group("h") or m.group("bare")), int(m.group("m") or 0)
            if m.group("bare") and not (7 <= hour <= 20 and (m.group("a") or m.group("mode"))):
                continue  # "le 2", "à 2": too unsure to be an hour without "heures"
        frac = m.group("frac") or ""
        minute += 30 if "demi" in frac else 15 if "quart" in frac and "moins" not in frac else 0
        if "moins" in frac:
            hour, minute = hour - 1, 45
        ampm = m.group("ampm") or ""
        if hour < 12 and ("apres" in ampm or "aprem" in ampm or "soir" in ampm or (1 <= hour <= 7 and not ampm)):
            hour += 12
        if not (0 <= hour <= 23 and 0 <= minute <= 59):
            continue
        mode_words = (m.group("mode") or "").strip()
        mode = {"a partir de": "after", "apres": "after", "pas avant": "after", "avant": "before"}.get(
            mode_words, "around" if mode_words else "at"
        )
        if mode_words == "pas apres":
            mode = "before"
        return _Clock(time(hour, minute), mode), f"{folded[: m.start()]} | {folded[m.end() :]}"
    return None, folded


_DATE_RE: Final = re.compile(
    rf"\b(?:(?P<wd>{_WEEKDAY}) )?(?P<d>\d{{1,2}}|1er|premier)(?:er)? (?P<mon>{_MONTH})(?: (?P<y>\d{{4}}))?\b"
    rf"|\b(?:le|du|ce|{_WEEKDAY}) (?P<d2>\d{{1,2}}|1er)\b"  # "le 25", "mardi 25"; not "le 2 janvier" (above)
    rf"(?! ?(?:h|heures?|jours?|semaines?|mois|ans?|min\w*|{_MONTH})\b)"
)
_IN_RE: Final = re.compile(r"\bdans (?P<n>\d{1,2}|un|une) (?P<unit>jours?|semaines?|mois)\b")
_WEEKDAY_RE: Final = re.compile(rf"\b(?P<wd>{_WEEKDAY})(?: (?P<next>prochain|suivant|d apres|en 8))?\b")
_MONTH_RANGE_RE: Final = re.compile(
    rf"\b(?P<when>en|courant|debut|fin|mi|au mois de|d ici) (?:de |d )?(?P<mon>{_MONTH})\b"
)


def _days(folded: str, today: date) -> _Days | None:
    """The day or days the caller named, most specific phrase first."""
    monday = today - timedelta(days=today.weekday())
    next_week = "semaine prochaine" in folded or "semaine d apres" in folded or "semaine suivante" in folded
    if (m := _DATE_RE.search(folded)) is not None:
        day = _date_from(m, today)
        if day is not None:
            return _Days(day, day, f"le {say_date(day, year=False)}")
    if re.search(r"\bapres demain\b", folded):
        return _Days(today + timedelta(days=2), today + timedelta(days=2), "après-demain", attached=True)
    if re.search(r"\bdemain\b", folded):
        return _Days(today + timedelta(days=1), today + timedelta(days=1), "demain", attached=True)
    if re.search(r"\b(?:aujourd hui|aujourdhui|ce jour)\b", folded):
        return _Days(today, today, "aujourd'hui", attached=True)
    if (m := _WEEKDAY_RE.search(folded)) is not None:
        target = WEEKDAY_NAMES.index(m.group("wd"))
        if next_week:
            day = monday + timedelta(days=7 + target)
            return _Days(day, day, f"{m.group('wd')} de la semaine prochaine", attached=True)
        day = today + timedelta(days=(target - today.weekday()) % 7 or 7)
        later = m.group("next") == "en 8"
        said = f"{m.group('wd')} en huit" if later else f"{m.group('wd')} {m.group('next') or ''}".strip()
        day += timedelta(days=7 if later else 0)
        return _Days(day, day, said, attached=True)
    if (m := _IN_RE.search(folded)) is not None:
        n = 1 if m.group("n") in ("un", "une") else int(m.group("n"))
        unit = m.group("unit")
        if unit.startswith("semaine") or (unit.startswith("jour") and n in (8, 15)):
            weeks = n if unit.startswith("semaine") else n // 7
            start = monday + timedelta(weeks=weeks)
            return _Days(start, start + timedelta(days=6), f"dans {weeks} semaine{'s' if weeks > 1 else ''}")
        if unit.startswith("jour"):
            day = today + timedelta(days=n)
            return _Days(day, day, f"dans {n} jour{'s' if n > 1 else ''}")
        day = _add_months(today, n)
        return _Days(day - timedelta(days=3), day + timedelta(days=3), "dans un mois" if n == 1 else f"dans {n} mois")
    if re.search(r"\bdebut de (?:la )?semaine\b", folded):
        start = monday + timedelta(weeks=1 if next_week or today.weekday() >= 2 else 0)
        return _Days(max(start, today), start + timedelta(days=1), "en début de semaine")
    if re.search(r"\b(?:week end|weekend)\b", folded):
        saturday = monday + timedelta(weeks=1 if next_week else 0, days=5)
        return _Days(max(saturday, today), saturday + timedelta(days=1), "ce week-end")
    if re.search(r"\bfin de (?:la )?semaine\b", folded):
        start = monday + timedelta(weeks=1 if next_week or today.weekday() >= 5 else 0, days=3)
        return _Days(max(start, today), start + timedelta(days=3), "en fin de semaine")
    if next_week:
        return _Days(monday + timedelta(weeks=1), monday + timedelta(days=13), "la semaine prochaine")
    if re.search(r"\bcette semaine\b", folded):
        return _Days(today, monday + timedelta(days=6), "cette semaine")
    if re.search(r"\bmois prochain\b", folded):
        first = _add_months(today.replace(day=1), 1)
        return _Days(first, _add_months(first, 1) - timedelta(days=1), "le mois prochain")
    if (m := _MONTH_RANGE_RE.search(folded)) is not None:
        month = _FOLDED_MONTHS.index(m.group("mon")) + 1
        first = date(today.year + (month < today.month), month, 1)
        last = _add_months(first, 1) - timedelta(days=1)
        spoken = MONTH_NAMES[month - 1]
        if m.group("when") == "debut":
            return _Days(max(first, today), first + timedelta(days=9), f"début {spoken}")
        if m.group("when") == "fin":
            return _Days(max(last - timedelta(days=9), today), last, f"fin {spoken}")
        if m.group("when") == "mi":
            return _Days(max(first + timedelta(days=10), today), first + timedelta(days=19), f"mi-{spoken}")
        return _Days(max(first, today), last, f"en {spoken}")
    return None


def _date_from(m: re.Match[str], today: date) -> date | None:
    """An explicit day of month: the next one from today (today included)."""
    raw = m.group("d") or m.group("d2")
    day = 1 if raw in ("1er", "premier") else int(raw)
    if m.group("mon"):
        month = _FOLDED_MONTHS.index(m.group("mon")) + 1
        years = [int(m.group("y"))] if m.group("y") else [today.year, today.year + 1]
        for year in years:
            found = _valid_date(year, month, day)
            if found is not None and found >= today:
                return found
        return None
    for ahead in range(3):  # "le 31" in November is the 31st of December
        first = _add_months(today.replace(day=1), ahead)
        found = _valid_date(first.year, first.month, day)
        if found is not None and found >= today:
            return found
    return None


def _valid_date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _add_months(d: date, n: int) -> date:
    month0 = d.month - 1 + n
    year, month = d.year + month0 // 12, month0 % 12 + 1
    for day in range(d.day, 27, -1):  # 31 January + 1 month = 28 or 29 February
        if (found := _valid_date(year, month, day)) is not None:
            return found
    return date(year, month, min(d.day, 28))


# -- choice among offered slots ------------------------------------------------------
_ORDINAL_RE: Final = re.compile(
    r"\b(?:(?P<penult>avant dernier|avant derniere)|(?P<first>premier|premiere|1er|1ere)|"
    r"(?P<second>deuxieme|second|seconde|2e|2eme|2nd|2nde)|(?P<third>troisieme|3e|3eme)|(?P<last>dernier|derniere)|"
    r"(?:le|la|numero|option|choix|n) (?P<num>\d|un|une))\b(?! (?:" + _MONTH + r"|h|heures?)\b)"
)
_NOT_THIS_RE: Final = re.compile(r"\bpas (?:le |la |celui |celle |l )?(?:de |du )?$")
_HALF_DAYS: Final = {True: (time(0), time(12, 0)), False: (time(12, 0), time.max)}
_REFUSAL_RE: Final = re.compile(
    r"\b(?:aucun(?!e? (?:probleme|souci))e?|ni l une? ni l autre|rien de tout ca|aucune? des|aucun des)\b"
)


def parse_choice(text: str, options: Sequence[datetime]) -> int | None:
    """Index of the offered slot the caller picks, or None when unclear or refused."""
    folded = _normalized(text)
    if not folded or not options or _REFUSAL_RE.search(folded):
        return None
    n = len(options)
    picks = []
    for m in _ORDINAL_RE.finditer(folded):
        if _NOT_THIS_RE.search(folded[: m.start()]):
            continue  # "pas le premier, le deuxième"
        index = _ordinal_index(m, options)
        if index is not None and 0 <= index < n:
            picks.append(index)
    if picks:
        return picks[-1]
    candidates = set(range(n))
    constrained = False
    clock, rest = _take_clock(folded)
    if clock is not None:
        constrained = True
        same = {i for i in candidates if options[i].time().replace(second=0, microsecond=0) == clock.at}
        candidates = same or {i for i in candidates if options[i].hour == clock.at.hour}
    weekdays = {WEEKDAY_NAMES.index(w) for w in re.findall(rf"\b{_WEEKDAY}\b", rest)}
    if weekdays:
        constrained = True
        candidates = {i for i in candidates if options[i].weekday() in weekdays}
    if (m := _DATE_RE.search(rest)) is not None:
        raw = m.group("d") or m.group("d2")
        constrained = True
        candidates = {i for i in candidates if options[i].day == (1 if raw in ("1er", "premier") else int(raw))}
    part = next((key for key, pattern in _PART_RES if pattern.search(rest)), None)
    if part is not None:  # among offered slots, halves of the day are enough
        constrained = True
        start, end = PARTS_OF_DAY["lunch"] if part == "lunch" else _HALF_DAYS["morning" in part]
        candidates = {i for i in candidates if start <= options[i].time() < end}
    if constrained:
        return candidates.pop() if len(candidates) == 1 else None
    if re.search(r"\b(?:le plus tot|le plus rapide|au plus tot|n importe|peu importe|comme vous voulez)\b", folded):
        return min(range(n), key=lambda i: options[i])
    if re.search(r"\ble plus tard\b", folded):
        return max(range(n), key=lambda i: options[i])
    if n == 1 and parse_yes_no(folded) is True:
        return 0
    return None


def _ordinal_index(m: re.Match[str], options: Sequence[datetime]) -> int | None:
    if m.group("penult"):
        return len(options) - 2
    if m.group("last"):
        return len(options) - 1
    for i, key in enumerate(("first", "second", "third")):
        if m.group(key):
            return i
    number = 1 if m.group("num") in ("un", "une") else int(m.group("num"))
    # "le 2" among slots on the 2nd and the 3rd means the 2nd, not the second slot.
    on_that_day = [i for i, o in enumerate(options) if o.day == number]
    return on_that_day[0] if len(on_that_day) == 1 else number - 1


# -- birth date and phone ---------------------------------------------------------
_BIRTH_RES: Final = (
    re.compile(rf"\b(?P<d>\d{{1,2}}|1er|premier)(?:er)? (?P<mon>{_MONTH}) (?P<y>\d{{4}}|(?:19|20) \d{{2}}|\d{{2}})\b"),
    re.compile(r"\b(?P<d>\d{1,2}) (?P<m>\d{1,2}) (?P<y>\d{4}|(?:19|20) \d{2}|\d{2})\b"),
    re.compile(r"\b(?P<d>\d{2})(?P<m>\d{2})(?P<y>\d{4}|\d{2})\b"),
)
_MAX_AGE_YEARS: Final = 120
_MAX_AGE_TWO_DIGITS: Final = 110  # "premier janvier 15" is 2015, not 1915


def parse_birth_date(text: str, now: datetime) -> date | None:
    """A birth date said or dictated; None if impossible, in the future or over 120 years ago."""
    folded = _normalized(text)
    today = now.date()
    for pattern in _BIRTH_RES:
        for m in pattern.finditer(folded):
            raw_day, raw_year = m.group("d"), m.group("y").replace(" ", "")
            day = 1 if raw_day in ("1er", "premier") else int(raw_day)
            month = _FOLDED_MONTHS.index(m.group("mon")) + 1 if "mon" in m.re.groupindex else int(m.group("m"))
            if len(raw_year) == 4:
                years, max_age = [int(raw_year)], _MAX_AGE_YEARS
            else:
                years, max_age = [2000 + int(raw_year), 1900 + int(raw_year)], _MAX_AGE_TWO_DIGITS
            for year in years:
                born = _valid_date(year, month, day) if 1 <= month <= 12 else None
                if born is not None and born <= today and _age(born, today) <= max_age:
                    return born
    return None


def _age(born: date, today: date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


_PHONE_FILLERS: Final = frozenset({"euh", "heu", "hum", "plus", "tiret", "point", "virgule", "et", "puis"})
_FRENCH_NUMBER_RE: Final = re.compile(r"^0[1-9]\d{8}$")


def parse_phone(text: str) -> str | None:
    """A French phone number as 10 digits starting with 0 ("+33 6 ..." becomes "06 ...")."""
    runs: list[str] = []
    current = ""
    for token in _normalized(text).split():
        if token.isdigit():
            current += token
        elif token not in _PHONE_FILLERS and current:
            runs.append(current)
            current = ""
    runs.append(current)
    for digits in (*runs, "".join(runs)):
        for prefix in ("0033", "330", "33", ""):  # +33, 0033, "+33 (0)6"
            if digits.startswith(prefix):
                local = "0" + digits[len(prefix) :] if prefix else digits
                if _FRENCH_NUMBER_RE.match(local):
                    return local
    return None


# -- names, reasons, practitioners -------------------------------------------------
def match_reason(text: str, reasons: Sequence[Any]) -> str | None:
    """The id of the visit reason whose keywords or label the caller used; None if none or a tie.

    Longest matching phrase wins; an exact phrase beats a fuzzy one ("vacin"). Two
    reasons matching equally well are ambiguous: the dialogue asks.
    """
    words = _stems(_normalized(text))
    if not words:
        return None
    scored = []
    for reason in reasons:
        phrases = (*getattr(reason, "keywords", ()), _ARTICLE_RE.sub("", normalize(str(reason.label))))
        best = max((_phrase_score(_stems(normalize(str(p))), words) for p in phrases), default=(0, 0))
        if best > (0, 0):
            scored.append((best, str(reason.id)))
    scored.sort(reverse=True)
    if not scored or (len(scored) > 1 and scored[0][0] == scored[1][0]):
        return None
    return scored[0][1]


_ARTICLE_RE: Final = re.compile(r"^(?:un|une|le|la|les|des|du|l|d) ")
_FUZZY_PHRASE: Final = 0.88  # "rappeler" vs "rappel" is 0.86: not the vaccine booster


def _stems(folded: str) -> list[str]:
    return [w[:-1] if len(w) > 3 and w[-1] in "sx" else w for w in folded.split()]


def _phrase_score(phrase: list[str], words: list[str]) -> tuple[int, int]:
    """(2 exact / 1 fuzzy / 0 none, phrase length in characters)."""
    k, joined = len(phrase), " ".join(phrase)
    if not k:
        return 0, 0
    windows = [" ".join(words[i : i + k]) for i in range(len(words) - k + 1)]
    if joined in windows:
        return 2, len(joined)
    if len(joined) >= 6 and any(difflib.SequenceMatcher(None, w, joined).ratio() >= _FUZZY_PHRASE for w in windows):
        return 1, len(joined)
    return 0, 0


_TITLE_WORDS: Final = frozenset(
    "docteur docteure doctoresse dr doc madame monsieur mme mlle m mr professeur pr le la les l avec".split()
)
_DOCTOR_TITLES: Final = frozenset("docteur docteure doctoresse dr doc professeur pr".split())
# Words a caller says that sound like surnames: never matched fuzzily ("matin" is
# not Martin, "durant" is not Durand), only a name said exactly is.
_COMMON_WORDS: Final = frozenset(
    (*WEEKDAY_NAMES, *_FOLDED_MONTHS, *"matin matinee midi soir apres aprem demain durant pendant merci bonjour "
     "oui non rendez vous voudrais voir consultation vaccin certificat ordonnance premier premiere dernier "
     "disponible libre importe lequel laquelle celui celle prefere preference medecin semaine prochaine "
     "docteur pour mon fils fille enfant bebe mari femme heure heures moment".split())
)
_FUZZY_NAME: Final = 0.8  # "Bernar" / "Bernard" is 0.92, "Morin" / "Martin" is 0.55
_ANY_RE: Final = re.compile(
    r"\b(?:n importe (?:lequel|laquelle|qui|quel|quelle)|peu (?:m )?importe|"
    r"(?:le|la) premiere? (?:qui est )?(?:disponible|dispo|libre)|"
    r"(?:celui|celle) qui (?:est|sera) (?:libre|disponible|dispo)|(?:pas de|aucune|sans) preference|ca m est egal|"
    r"indifferent|qui vous voulez|comme vous voulez|l une? ou l autre|le plus rapide|n importe)\b"
)


def match_practitioner(text: str, practitioners: Sequence[Any]) -> str | None:
    """The id of the practitioner named, ``ANY`` when any will do, or None.

    Names are matched on folded words, exactly or with a difflib ratio of at
    least 0.8 against the last name, the aliases and the display name, so the
    recogniser's "docteur Bernar" is Bernard. A name said wins over "peu
    importe". Two practitioners matching equally ("docteur Martin" when two
    Martins work there) is ambiguous: None, and the dialogue asks.
    """
    folded = _normalized(text)
    words, titled, after_title = [], [], False
    for w in folded.split():
        if w in _TITLE_WORDS:
            after_title = after_title or w in _DOCTOR_TITLES
            continue
        words.append(w)
        titled.append(after_title)  # "docteur Durant" is a name, "durant la semaine" is not
        after_title = False
    scored = []
    for p in practitioners:
        names = (getattr(p, "last_name", ""), *getattr(p, "aliases", ()), getattr(p, "display_name", ""))
        best = max((_name_score(words, titled, str(name)) for name in names), default=(0.0, 0))
        if best[0] >= _FUZZY_NAME:
            scored.append((best, str(p.id)))
    scored.sort(reverse=True)
    if scored:
        return scored[0][1] if len(scored) == 1 or scored[0][0] != scored[1][0] else None
    return ANY if _ANY_RE.search(folded) else None


def _name_score(words: list[str], titled: list[bool], name: str) -> tuple[float, int]:
    """(best ratio of a window of words against the name, number of words in the name)."""
    target = [w for w in normalize(name).split() if w not in _TITLE_WORDS]
    k = len(target)
    if not k:
        return 0.0, 0
    joined, best = " ".join(target), 0.0
    for i in range(len(words) - k + 1):
        window = words[i : i + k]
        if window == target:
            return 1.0, k
        common = any(w in _COMMON_WORDS or w.isdigit() for w in window)
        if len(joined) >= 4 and (titled[i] or not common):
            best = max(best, difflib.SequenceMatcher(None, " ".join(window), joined).ratio())
    return best, k


# -- person names ---------------------------------------------------------------------
# Lead-ins removed from the front of an answer, as folded lowercase word sequences.
_LEAD_INS: Final = tuple(
    sorted(  # longest first: "mon nom c'est" before "mon nom"
        (tuple(phrase.split()) for phrase in (
        "je m'appelle", "je mappelle", "je m appelle", "m'appelle", "il s'appelle", "elle s'appelle", "il s'agit de",
        "c'est au nom de", "au nom de", "c'est pour", "de la part de", "mon nom de famille c'est", "mon nom de famille est",
        "mon nom de famille", "nom de famille", "mon nom c'est", "mon nom est", "mon nom", "son nom c'est", "son nom est",
        "son nom", "le nom c'est", "le nom", "nom", "mon prenom c'est", "mon prenom est", "mon prenom", "son prenom c'est",
        "son prenom", "le prenom c'est", "le prenom", "prenom", "moi c'est", "c'est", "cest", "c est", "je suis", "ici",
        "oui", "ouais", "alors", "donc", "euh", "heu", "euuh", "hum", "hmm", "ben", "bah", "bon", "ah", "oh", "bonjour",
        "voila", "madame", "monsieur", "mademoiselle", "mme", "mlle", "m", "mr", "dr", "docteur", "et", "ca s'ecrit",
        "ca s'epelle", "j'epelle",
        )),
        key=len,
        reverse=True,
    )
)  # fmt: skip
_END_WORDS: Final = frozenset(
    "et mais je j'ai qui pour comme c'est voila merci s'il sil svp euh heu donc alors oui non avec ne n'est mon ma "
    "sa son ca ça c est".split()
)
# Words that make an answer a sentence rather than a name: "jeudi matin si
# possible" or "mon mari" must be asked again, not booked under that name.
_NOT_A_NAME: Final = frozenset(
    (*WEEKDAY_NAMES, *_FOLDED_MONTHS, *"je j'ai tu il elle on nous vous ils elles pas sais sait suis est sont ai as a "
     "avons avez ont voudrais voulais veux peux pouvez faire fait rendez rdv rendez-vous oui ouais non merci bonjour "
     "quoi comment pardon pourquoi quand excusez repeter repetez compris entendu attendez attends moment instant "
     "seconde que qu' dans sur mais ou un une les mes mon ma ton ta son sa ses notre votre leur ce cette ces ca c'est "
     "cela si possible bien tres trop plus moins tout tous toute rien chose encore deja toujours vraiment accord "
     "d'accord voila alors donc puis enfin matin soir midi apres-midi apres aprem heure heures demain aujourd'hui "
     "semaine prochain prochaine medecin docteur appelle nom prenom famille personne allo madame monsieur mari "
     "femme fils fille enfant bebe consultation vaccin certificat ordonnance urgent urgence".split())
)
_PARTICLES: Final = frozenset("de du des la le van von der den di da del della ter ten".split())
_SPELLING_SEPARATORS: Final = {"tiret": "-", "apostrophe": "'", "espace": " "}
_SPELLING_SKIP: Final = frozenset("accent aigu grave circonflexe trema cedille majuscule minuscule".split())
_WORD_RE: Final = re.compile(r"[^\W\d_]+(?:['-][^\W\d_]+)*|\d+")


def parse_person_name(text: str) -> str | None:
    """A last or first name as the caller said it, capitalised; spelled letters win.

    "je m'appelle dupont" -> "Dupont"; "c'est madame Le Goff" -> "Le Goff";
    "D U P O N T" -> "Dupont". None for fillers ("euh", "oui"), digits, or
    sentences that are not a name.
    """
    if not isinstance(text, str):
        return None
    raw = unicodedata.normalize("NFC", text[:500]).replace("’", "'")
    words = _WORD_RE.findall(raw)
    keys = [fold_accents(w.lower()) for w in words]
    spoken = _spoken_name(words, keys)
    spelled = _spelled_name(words, keys, whole=spoken is None)
    if spelled is not None:
        if spoken is not None and _letters(spoken) == _letters(spelled):
            return spoken  # keeps "Le Goff" when "L E G O F F" was spelled after it
        return spelled
    return spoken


def _spoken_name(words: list[str], keys: list[str]) -> str | None:
    start, changed = 0, True
    while changed:
        changed = False
        for lead in _LEAD_INS:
            if tuple(keys[start : start + len(lead)]) == lead:
                start, changed = start + len(lead), True
                break
    end = start
    # A name ends at a clause word or where spelling starts ("Le Goff, L E G O F F").
    while end < len(words) and (end == start or (keys[end] not in _END_WORDS and len(keys[end]) > 1)):
        end += 1
    name, name_keys = words[start:end], keys[start:end]
    if not 1 <= len(name) <= 4 or any(k in _NOT_A_NAME or k.isdigit() for k in name_keys):
        return None
    if any(all(len(part) == 1 for part in k.split("-")) for k in name_keys):
        return None  # "D-U-P-O-N-T" is spelling, read by _spelled_name
    if all(k in _PARTICLES or len(k) < 2 for k in name_keys) or any(len(k) < 2 for k in name_keys):
        return None
    return _capitalise(name)


def _spelled_name(words: list[str], keys: list[str], *, whole: bool) -> str | None:
    """The longest run of spelled letters ("D U P O N T", "D comme Denis", "tiret")."""
    best: list[str] = []
    run: list[str] = []
    i = 0
    while i <= len(words):
        key = keys[i] if i < len(words) else ""
        parts = words[i].split("-") if i < len(words) else []
        if parts and all(len(p) == 1 and p.isalpha() for p in parts):
            run.extend(parts)
        elif key == "comme" and run and i + 1 < len(words):
            i += 1  # "D comme Denis": the word after "comme" only confirms the letter
        elif key == "double" and i + 1 < len(words) and len(words[i + 1]) == 1:
            run.append(words[i + 1])  # "double L": the letter itself comes next, once more
        elif key in _SPELLING_SEPARATORS and run:
            run.append(_SPELLING_SEPARATORS[key])
        elif key in _SPELLING_SKIP and run:
            pass
        else:
            if sum(c.isalpha() for c in run) > sum(c.isalpha() for c in best):
                best = run
            run = []
        i += 1
    letters = sum(c.isalpha() for c in best)
    if letters < 3 and not (whole and letters == 2):
        return None
    text = "".join(best).strip(" -'")
    return _capitalise(re.sub(r"\s+", " ", text).split()) if text else None


def _letters(name: str) -> str:
    return "".join(c for c in fold_accents(name).lower() if c.isalpha())


def _capitalise(words: list[str]) -> str:
    out = []
    for i, word in enumerate(words):
        if i > 0 and word.lower() in _PARTICLES and i < len(words) - 1:
            out.append(word.lower())
        elif any(c.isupper() for part in re.split(r"['-]", word) for c in part[1:]) and not word.isupper():
            out.append(word)  # "McDonald", "DiCaprio": the recogniser knew better
        else:
            out.append(re.sub(r"[^'-]+", lambda m: m.group(0)[:1].upper() + m.group(0)[1:].lower(), word))
    return " ".join(out)


def _normalized(text: object) -> str:
    """Normalized text, or "" for anything that is not text (a hostile caller ID, None)."""
    if not isinstance(text, str):
        return ""
    return normalize(unicodedata.normalize("NFC", text)[:2000])  # a transcript is never longer
