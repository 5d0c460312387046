"""What a value typed into the Settings page must look like, said in the staff's language.

The box's own checks (``config``, ``agenda.practice``, ``sync``, ``retention``,
``answering``) speak English to an installer reading a log, and name settings,
not fields. The staff deserve their own language next to the field they typed
in, so every rule a form can break is checked here first; the box's checks stay
the last line of defence, for rules that tie several settings together.

Each check takes text and returns the value the settings files want (a number,
``"08:30-12:30"``, ``"mon-fri 08:00-19:00"``) or raises ``Invalid`` with a locale
key (``invalid.*``) and the values its sentence needs. Pure: no request, no files.

The rules mirror those of the box, sometimes stricter: a practice name with
``<script>`` in it is accepted by the practice file, but it is read aloud to
callers, and markup is never what a caller should hear.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import time
from typing import Final
from urllib.parse import urljoin, urlsplit

_SIGNS: Final = re.compile(r"[<>{}\\]")
"""Markup and template braces: the first sign of a paste from elsewhere, never spoken."""
_INVISIBLE: Final = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u200b-\u200f\u2028-\u202e\ufeff]")
_NUMBER: Final = re.compile(r"[+-]?\d+")
_MAX_DIGITS: Final = 9  # past a billion nothing here makes sense, and int() of 5000 digits refuses anyway
_PHONE: Final = re.compile(r"\+?[0-9][0-9 .\-/()]*")
_CLOCK: Final = re.compile(r"(\d{1,2})(?:[:hH](\d{2})?)?")
_PERIOD: Final = re.compile(r"(\S+?)\s*[-–—]\s*(\S+)")
_RANGE: Final = re.compile(r"(?P<first>[^\W\d_]+)\.?(?:\s*[-–—]\s*(?P<last>[^\W\d_]+)\.?)?\s+(?P<times>\S.*)")
_FHIR_ID: Final = re.compile(r"[A-Za-z0-9\-.]{1,64}")  # FHIR's own id rule, as the FHIR adapter checks it
_BEARER: Final = re.compile(r"[A-Za-z0-9\-._~+/]+=*")  # RFC 6750 b64token
_URL_UNSAFE: Final = re.compile(r"[\s<>\"{}|\\^`]")

ENGLISH_DAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# Staff write days in their own language: accepted here, written in English for the box.
_DAY_NAMES: Final = {
    name: index
    for index, names in enumerate([
        ("mon", "monday", "lun", "lundi", "mo", "montag"),
        ("tue", "tuesday", "mar", "mardi", "di", "dienstag"),
        ("wed", "wednesday", "mer", "mercredi", "mi", "mittwoch"),
        ("thu", "thursday", "jeu", "jeudi", "do", "donnerstag"),
        ("fri", "friday", "ven", "vendredi", "fr", "freitag"),
        ("sat", "saturday", "sam", "samedi", "sa", "samstag"),
        ("sun", "sunday", "dim", "dimanche", "so", "sonntag"),
    ])
    for name in names
}


class Invalid(ValueError):
    """A typed value the page refuses: ``t(problem.key, **problem.values)`` says why."""

    def __init__(self, key: str, **values: object) -> None:
        super().__init__(key)
        self.key = f"invalid.{key}"
        # What was typed is quoted back, but never a whole pasted page of it.
        self.values = {k: clip(v) if isinstance(v, str) else v for k, v in values.items()}


def clip(text: str, limit: int = 40) -> str:
    """What was typed, short enough to quote in a sentence."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def split(text: str, separators: str = ",;\n") -> list[str]:
    """The non-empty parts of a list typed in one field."""
    return [part.strip() for part in re.split(f"[{re.escape(separators)}]", text) if part.strip()]


# --- Text ------------------------------------------------------------------------------


def text(value: str, *, required: bool = True, max_len: int = 200, lines: bool = False) -> str:
    """Plain text: what the assistant says or the staff read (names, labels, sentences)."""
    value = value.replace("\r\n", "\n").strip()
    if not value:
        if required:
            raise Invalid("required")
        return ""
    if len(value) > max_len:
        raise Invalid("too_long", max=max_len, length=len(value))
    if _INVISIBLE.search(value) or (not lines and "\n" in value):
        raise Invalid("invisible")
    if signs := sorted(set(_SIGNS.findall(value))):
        raise Invalid("signs", signs=" ".join(signs))
    return value


def phone(value: str, *, required: bool = True, min_digits: int = 6) -> str:
    """A phone number as people write it: ``04 65 71 00 00``, ``+33 4 65…``, ``15``."""
    value = value.strip()
    if not value:
        if required:
            raise Invalid("required")
        return ""
    digits = sum(c.isdigit() for c in value)
    if len(value) > 30 or not _PHONE.fullmatch(value) or not min_digits <= digits <= 15:
        raise Invalid("phone", low=min_digits)
    return value


def secret(value: str, *, max_len: int = 256) -> str:
    """A password for another server: anything printable, as typed (not even trimmed)."""
    if len(value) > max_len:
        raise Invalid("too_long", max=max_len, length=len(value))
    if _INVISIBLE.search(value) or "\n" in value:
        raise Invalid("invisible")
    return value


def bearer_token(value: str) -> str:
    """An access token as an HTTP ``Authorization: Bearer`` header carries it."""
    value = value.strip()
    if len(value) > 4096:
        raise Invalid("too_long", max=4096, length=len(value))
    if not _BEARER.fullmatch(value):
        raise Invalid("token")
    return value


def choice(value: str, options: Sequence[str]) -> str:
    if value not in options:
        raise Invalid("choice")
    return value


# --- Numbers ---------------------------------------------------------------------------


def whole(value: str, low: int, high: int, *, required: bool = True) -> int | None:
    """A whole number from ``low`` to ``high``; None for an empty optional field."""
    value = re.sub(r"\s", "", value)  # "1 000" (spaces, no-break spaces): how people group digits
    if not value:
        if required:
            raise Invalid("required")
        return None
    if not _NUMBER.fullmatch(value):
        raise Invalid("number")
    if len(value.lstrip("+-")) > _MAX_DIGITS or not low <= int(value) <= high:
        raise Invalid("between", low=low, high=high)
    return int(value)


# --- Times of day, opening periods, weekly ranges ----------------------------------------


def clock(value: str, *, midnight_end: bool = False) -> time:
    """``08:30``, ``8h30``, ``14h``; ``24:00`` only as the end of a range (``time.max``)."""
    match = _CLOCK.fullmatch(value.strip())
    if match is None:
        raise Invalid("clock", text=value.strip())
    hours, minutes = int(match[1]), int(match[2] or 0)
    if midnight_end and (hours, minutes) == (24, 0):
        return time.max
    if hours > 23 or minutes > 59:
        raise Invalid("clock", text=value.strip())
    return time(hours, minutes)


def _hhmm(moment: time) -> str:
    return "24:00" if moment == time.max else f"{moment:%H:%M}"


def _span(text: str, *, midnight_end: bool) -> tuple[time, time]:
    match = _PERIOD.fullmatch(text.strip())
    if match is None:
        raise Invalid("period", text=text.strip())
    start, end = clock(match[1]), clock(match[2], midnight_end=midnight_end)
    if end <= start:
        raise Invalid("backwards", text=text.strip())
    return start, end


def day_periods(value: str) -> list[str]:
    """One day's opening periods, ``08:30-12:30, 14:00-19:00``, as the practice file writes them."""
    spans = sorted(_span(part, midnight_end=False) for part in split(value, ",;\n"))
    for (a_start, a_end), (b_start, b_end) in zip(spans, spans[1:]):
        if b_start < a_end:
            raise Invalid("overlap", a=f"{_hhmm(a_start)}-{_hhmm(a_end)}", b=f"{_hhmm(b_start)}-{_hhmm(b_end)}")
    return [f"{_hhmm(start)}-{_hhmm(end)}" for start, end in spans]


def _day(name: str, whole_text: str) -> int:
    index = _DAY_NAMES.get(name.lower())
    if index is None:
        raise Invalid("weekday", day=name, text=whole_text)
    return index


def weekly_ranges(value: str, *, overlap_ok: bool = True) -> list[str]:
    """Lines like ``mon-fri 08:00-19:00`` or ``samedi 09:00-12:00``, written as the box reads them.

    Day names may be French, German or English, abbreviated or not; several
    periods may follow one day range (``lun-ven 08:30-12:30, 14:00-19:00``)."""
    ranges: list[str] = []
    covered: dict[int, list[tuple[time, time, str]]] = {}
    for line in split(value, ";\n"):
        days: str | None = None
        for part in split(line, ","):
            match = _RANGE.fullmatch(part)
            if match is not None:
                first = _day(match["first"], part)
                last = _day(match["last"], part) if match["last"] else first
                days = ENGLISH_DAYS[first] if first == last else f"{ENGLISH_DAYS[first]}-{ENGLISH_DAYS[last]}"
                week = list(range(first, last + 1)) if first <= last else [*range(first, 7), *range(0, last + 1)]
                period = match["times"]
            elif days is not None and part[0].isdigit():
                period = part  # "lun-ven 08:30-12:30, 14:00-19:00": same days, another period
            else:
                raise Invalid("range", text=part)
            start, end = _span(period, midnight_end=True)
            written = f"{days} {_hhmm(start)}-{_hhmm(end)}"
            for day in week:
                for other_start, other_end, other in covered.get(day, []):
                    if not overlap_ok and start < other_end and other_start < end:
                        raise Invalid("range_overlap", a=other, b=written)
                covered.setdefault(day, []).append((start, end, written))
            ranges.append(written)
    return ranges


# --- Addresses of the cloud agenda --------------------------------------------------------


def url(value: str, *, plain: bool = False) -> str:
    """An ``http(s)://`` address of a server; ``plain``: without ``?query`` or ``#fragment``."""
    value = value.strip()
    if not value:
        raise Invalid("required")
    if len(value) > 500:
        raise Invalid("too_long", max=500, length=len(value))
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:
        raise Invalid("url") from None
    if parts.scheme not in ("http", "https") or not host or _URL_UNSAFE.search(value):
        raise Invalid("url")
    if plain and (parts.query or parts.fragment or value.endswith(("?", "#"))):
        raise Invalid("url_plain")
    return value


def fhir_reference(value: str) -> str:
    """``Practitioner/12``; the bare ``12`` is taken to mean the same."""
    value = value.strip()
    reference = value if "/" in value else f"Practitioner/{value}"
    kind, _, remote_id = reference.partition("/")
    if kind != "Practitioner" or not _FHIR_ID.fullmatch(remote_id):
        raise Invalid("fhir_reference")
    return reference


def calendar(value: str, base_url: str) -> str:
    """A calendar collection: a path under the server's address, or a URL on the same server."""
    value = value.strip()
    if len(value) > 500:
        raise Invalid("too_long", max=500, length=len(value))
    if _URL_UNSAFE.search(value):
        raise Invalid("calendar")
    try:
        target = urlsplit(urljoin(base_url.rstrip("/") + "/", value))
        base = urlsplit(base_url)
    except ValueError:
        raise Invalid("calendar") from None
    if (target.scheme, target.netloc) != (base.scheme, base.netloc):
        raise Invalid("calendar_server")
    return value
