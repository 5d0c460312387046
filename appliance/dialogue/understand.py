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
- a day or time taken back does not count: "pas mardi, jeudi" and "mardi…
  non, jeudi" are Thursday, "à 10 heures, non pardon, à 11 heures" is 11:00
  (what is named after the last "non" / "pardon" wins).
- an hour of 1 to 7 without "du matin" is the afternoon ("à 3 heures" is 15 h):
  nobody is seen at 3 a.m.
- a choice among offered slots also follows the last pick ("le premier, non, le
  deuxième" is the second).
"""



import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Final

from appliance.dialogue.normalize import normalize_input
from appliance.dialogue.identity import (
    FOLDED_MONTHS,
    MONTH_PATTERN,
    parse_birth_date,
    parse_person_name,
    parse_phone,
    valid_date,
)
from appliance.dialogue.matching import ANY, match_practitioner, match_reason
from appliance.dialogue.speakable import MONTH_NAMES, WEEKDAY_NAMES, say_date, say_time

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
    # Refusing every offer: "aucun ne me va", "ni l'un ni l'autre", "rien ne me convient".
    r"(?:aucune?|rien)(?: des (?:deux|trois|2|3|horaires|creneaux|propositions))? (?:ne |n )?(?:me |m )?(?:va|vont|convien\w*|arrang\w*|plai\w*)",
    r"ni l une? ni l autre",
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
    folded = normalize_input(text)
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
    r"(?P<h>\d{1,2}) ?(?:heures?\b|h)(?: ?(?P<m>\d{1,2})\b(?! " + MONTH_PATTERN + r"))?"  # 9h30, 9 heures 30, 9h
    # "le midi" is lunch time, not 12:00; "midi 30" is how the box itself says 12:30
    r"|(?<!apres )(?<!entre )(?<!le )(?<!de )(?<!ce )(?P<noon>midi)(?: (?P<nm>[1-5]\d|[1-9])\b(?! ?(?:" + MONTH_PATTERN + r"|h|heures?)\b))?"
    r"|(?P<bare>\d{1,2})\b(?! ?(?:" + MONTH_PATTERN + r"|jours?|semaines?|mois|ans?|h|heures?|\d)\b)"  # "vers 11"
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


_PREFERRED_RE: Final = re.compile(r"\b(?:de preference|plutot|idealement|si possible|c est mieux|ca m arrange)\b")
_EXCLUDED_BEFORE_RE: Final = re.compile(r"\b(?:pas|sauf|jamais|surtout pas|ni)(?: \w+)? $")


def _part_of_day(folded: str) -> str | None:
    """The part of the day wished for; None when none is said or the wish is unclear.

    "le matin de préférence, l'après-midi je fais la sieste" is the morning: of
    several parts named, a ruled-out one ("pas l'après-midi") drops out, one
    inside another is the finer wish ("mercredi matin, de bonne heure"), a
    preferred one ("de préférence", "plutôt") wins, and of "X, sinon Y" the first
    is the wish. Several left with none of these is no wish at all, rather than
    a guess.
    """
    taken: list[tuple[int, int, str]] = []
    for key, pattern in _PART_RES:  # most specific first: "tôt le matin" before "matin"
        for m in pattern.finditer(folded):
            if not any(s < m.end() and m.start() < e for s, e, _ in taken):
                taken.append((m.start(), m.end(), key))
    taken = sorted(t for t in taken if not _EXCLUDED_BEFORE_RE.search(folded[max(0, t[0] - 20) : t[0]]))
    keys = {key for _, _, key in taken}
    if len(keys) <= 1:
        return keys.pop() if keys else None
    narrowest = min(keys, key=lambda k: _span_minutes(PARTS_OF_DAY[k]))
    if all(_within(PARTS_OF_DAY[narrowest], PARTS_OF_DAY[k]) for k in keys):
        return narrowest
    preferred = {
        key for start, end, key in taken
        if _PREFERRED_RE.search(folded[max(0, start - 12) : start]) or _PREFERRED_RE.search(folded[end : end + 20])
    }  # fmt: skip
    if len(preferred) == 1:
        return preferred.pop()
    if _FALLBACK_RE.search(folded[taken[0][1] :]):
        return taken[0][2]
    return None


_FALLBACK_RE: Final = re.compile(r"\b(?:sinon|a defaut|a la rigueur|ou alors)\b")


def _span_minutes(span: tuple[time, time]) -> int:
    return (span[1].hour * 60 + span[1].minute) - (span[0].hour * 60 + span[0].minute)


def _within(inner: tuple[time, time], outer: tuple[time, time]) -> bool:
    return outer[0] <= inner[0] and inner[1] <= outer[1]


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
    folded = _MATIN_REPAIR_RE.sub(r"\1 matin", normalize_input(text))
    if not folded or now.tzinfo is None:
        return None
    try:
        return _parse_when(folded, now)
    except (ValueError, OverflowError):  # a date beyond year 9999 and the like
        return None


_DAY_WORD: Final = rf"(?:{_WEEKDAY}(?: prochain)?|apres demain|demain|aujourd hui|le \d{{1,2}}(?: {MONTH_PATTERN})?)"
# "pas mardi", "sauf demain": a day ruled out is no wish for that day.
_RULED_OUT_RE: Final = re.compile(rf"\b(?:pas|sauf|surtout pas|plus) (?:le |la |ce )?{_DAY_WORD}\b")
# What starts a correction: the day named after it replaces the days before.
_CORRECTION_RE: Final = re.compile(r"\b(?:non|pardon|je veux dire|je voulais dire|ou plutot|enfin|attendez)\b")
_ANY_DAY_RE: Final = re.compile(rf"\b{_DAY_WORD}\b")


def _without_retractions(folded: str) -> str:
    """The wish without the days the caller took back ("mardi, non, jeudi" -> "jeudi")."""
    folded = _RULED_OUT_RE.sub(" | ", folded)
    cuts = [m.end() for m in _CORRECTION_RE.finditer(folded)]
    for cut in reversed(cuts):
        if _ANY_DAY_RE.search(folded[cut:]):  # a day after the last correction that names one
            return _ANY_DAY_RE.sub(" | ", folded[:cut]) + folded[cut:]
    return folded


def _parse_when(folded: str, now: datetime) -> WhenPreference | None:
    today, tz = now.date(), now.tzinfo
    folded = _without_retractions(folded)
    earliest = bool(_EARLIEST_RE.search(folded))
    clock, folded = _take_clock(folded)
    this_part = _THIS_PART_RE.search(folded)
    part = _part_of_day(folded)
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
    """The time of day said, and the text without it (so "9h30" is no day).

    The first valid one, unless the caller corrected it: "à 10 heures, non
    pardon, à 11 heures" is 11:00 (the first time after the last correction).
    """
    clocks = [(m, clock) for m in _TIME_RE.finditer(folded) if (clock := _clock_of(m)) is not None]
    if not clocks:
        return None, folded
    m, clock = clocks[0]
    corrections = [c.end() for c in _CORRECTION_RE.finditer(folded)]
    for cut in reversed(corrections):
        later = [(lm, lc) for lm, lc in clocks if lm.start() >= cut]
        if later and later[0][0].start() != m.start():
            m, clock = later[0]
            break
    return clock, f"{folded[: m.start()]} | {folded[m.end() :]}"


def _clock_of(m: re.Match[str]) -> _Clock | None:
    """The time one match of ``_TIME_RE`` says, or None when it is no valid time of day."""
    if m.group("noon"):
        hour, minute = 12, int(m.group("nm") or 0)
    else:
        hour, minute = int(m.group("h") or m.group("bare")), int(m.group("m") or 0)
        if m.group("bare") and not (7 <= hour <= 20 and (m.group("a") or m.group("mode"))):
            return None  # "le 2", "à 2": too unsure to be an hour without "heures"
    frac = m.group("frac") or ""
    minute += 30 if "demi" in frac else 15 if "quart" in frac and "moins" not in frac else 0
    if "moins" in frac:
        hour, minute = hour - 1, 45
    ampm = m.group("ampm") or ""
    if hour < 12 and ("apres" in ampm or "aprem" in ampm or "soir" in ampm or (1 <= hour <= 7 and not ampm)):
        hour += 12
    if not (0 <= hour <= 23 and 0 <= minute <= 59):
        return None
    mode_words = (m.group("mode") or "").strip()
    mode = {"a partir de": "after", "apres": "after", "pas avant": "after", "avant": "before"}.get(
        mode_words, "around" if mode_words else "at"
    )
    if mode_words == "pas apres":
        mode = "before"
    return _Clock(time(hour, minute), mode)


_DATE_RE: Final = re.compile(
    rf"\b(?:(?P<wd>{_WEEKDAY}) )?(?P<d>\d{{1,2}}|1er|premier)(?:er)? (?P<mon>{MONTH_PATTERN})(?: (?P<y>\d{{4}}))?\b"
    rf"|\b(?:le|du|ce|{_WEEKDAY}) (?P<d2>\d{{1,2}}|1er)\b"  # "le 25", "mardi 25"; not "le 2 janvier" (above)
    rf"(?! ?(?:h|heures?|jours?|semaines?|mois|ans?|min\w*|{MONTH_PATTERN})\b)"
)
_IN_RE: Final = re.compile(r"\bdans (?P<n>\d{1,2}|un|une) (?P<unit>jours?|semaines?|mois)\b")
_WEEKDAY_RE: Final = re.compile(rf"\b(?P<wd>{_WEEKDAY})(?: (?P<next>prochain|suivant|d apres|en 8))?\b")
_MONTH_RANGE_RE: Final = re.compile(
    rf"\b(?P<when>en|courant|debut|fin|mi|au mois de|d ici) (?:de |d )?(?P<mon>{MONTH_PATTERN})\b"
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
        weeks_ahead = _IN_RE.search(folded)
        if weeks_ahead is not None and weeks_ahead.group("unit").startswith("semaine"):
            # "dans deux semaines, le mardi": that weekday of that week
            n = 1 if weeks_ahead.group("n") in ("un", "une") else int(weeks_ahead.group("n"))
            day = monday + timedelta(weeks=n, days=target)
            return _Days(day, day, f"{m.group('wd')} dans {n} semaine{'s' if n > 1 else ''}", attached=True)
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
        month = FOLDED_MONTHS.index(m.group("mon")) + 1
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
        month = FOLDED_MONTHS.index(m.group("mon")) + 1
        years = [int(m.group("y"))] if m.group("y") else [today.year, today.year + 1]
        for year in years:
            found = valid_date(year, month, day)
            if found is not None and found >= today:
                return found
        return None
    for ahead in range(3):  # "le 31" in November is the 31st of December
        first = _add_months(today.replace(day=1), ahead)
        found = valid_date(first.year, first.month, day)
        if found is not None and found >= today:
            return found
    return None



def _add_months(d: date, n: int) -> date:
    month0 = d.month - 1 + n
    year, month = d.year + month0 // 12, month0 % 12 + 1
    for day in range(d.day, 27, -1):  # 31 January + 1 month = 28 or 29 February
        if (found := valid_date(year, month, day)) is not None:
            return found
    return date(year, month, min(d.day, 28))


# -- choice among offered slots ------------------------------------------------------
_ORDINAL_RE: Final = re.compile(
    r"\b(?:(?P<penult>avant dernier|avant derniere)|(?P<first>premier|premiere|1er|1ere)|"
    r"(?P<second>deuxieme|second|seconde|2e|2eme|2nd|2nde)|(?P<third>troisieme|3e|3eme)|(?P<last>dernier|derniere)|"
    r"(?:le|la|numero|option|choix|n) (?P<num>\d|un|une))\b(?! (?:" + MONTH_PATTERN + r"|h|heures?)\b)"
)
_NOT_THIS_RE: Final = re.compile(r"\bpas (?:le |la |celui |celle |l )?(?:de |du )?$")
_HALF_DAYS: Final = {True: (time(0), time(12, 0)), False: (time(12, 0), time.max)}
_REFUSAL_RE: Final = re.compile(
    r"\b(?:aucun(?!e? (?:probleme|souci))e?|ni l une? ni l autre|rien de tout ca|aucune? des|aucun des)\b"
)


def parse_choice(text: str, options: Sequence[datetime]) -> int | None:
    """Index of the offered slot the caller picks, or None when unclear or refused."""
    folded = normalize_input(text)
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


# Who the patient is and whom they ask for are parsed beside this module and
# re-exported, so the dialogue imports every answer parser from one place.
__all__ = [
    "ANY", "PARTS_OF_DAY", "WhenPreference", "match_practitioner", "match_reason", "parse_birth_date",
    "parse_choice", "parse_person_name", "parse_phone", "parse_when", "parse_yes_no",
]
