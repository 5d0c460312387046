"""The practice: who works there, what callers come for, when it is open.

A practice is described once in a TOML file that the staff (or the set-up page)
edits, loaded and validated here, then passed around as frozen dataclasses. A
typo in that file must stop the box with a message naming the file and the key,
never be ignored: an ignored ``duraton_min`` would silently book 20-minute
visits into 30-minute needs for months.

File format (see ``practices/demo.toml`` for a complete example)::

    id = "demo"
    name = "Cabinet médical des Tilleuls"
    address = "..."
    phone = "..."
    data_notice = "..."            # French sentence read to callers
    timezone = "Europe/Paris"      # optional
    emergency_number = "15"        # optional

    [rules]                        # optional, defaults below
    min_notice_min = 60
    horizon_days = 60
    slot_step_min = 10
    kept_for_staff = ["mon-fri 08:30-09:00"]   # never offered by the assistant

    [hours]                        # English weekday names, "HH:MM-HH:MM" periods
    monday = ["08:30-12:30", "14:00-19:00"]

    [[practitioners]]
    id = "martin"
    display_name = "docteur Claire Martin"
    last_name = "Martin"
    aliases = ["docteur Martin"]   # optional

    [[reasons]]
    id = "consultation"
    label = "une consultation"
    duration_min = 20
    practitioner_ids = []          # optional, empty = every practitioner
    new_patients = true            # optional
    keywords = ["consultation", "consulter"]

    [[closures]]                   # optional, inclusive dates
    start = 2026-05-01
    end = 2026-05-01
    reason = "Fête du travail"
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from importlib import resources
from pathlib import Path
from typing import Any, Final, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from appliance.agenda.weekly import WeeklyRange, parse_ranges
from appliance.errors import ConfigError

WEEKDAYS: Final = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

# Ids end up in URLs, in the store and in the cloud agenda's identifiers: keep them plain.
_ID_RE: Final = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
_TIME_RE: Final = re.compile(r"^(\d{1,2}):(\d{2})$")
_BUILTIN_PACKAGE: Final = "appliance.agenda"
_BUILTIN_DIR: Final = "practices"


def _check_id(kind: str, value: str) -> None:
    if not _ID_RE.match(value):
        raise ConfigError(
            f"{kind} id {value!r} must be 1-40 lowercase letters, digits, '-' or '_'"
        )


def _check_text(name: str, value: str) -> None:
    if not value.strip():
        raise ConfigError(f"{name} must not be empty")


@dataclass(frozen=True, kw_only=True)
class Practitioner:
    id: str
    display_name: str
    """As the assistant says it: "docteur Claire Martin"."""
    last_name: str
    """What callers usually say: "Martin"."""
    aliases: tuple[str, ...] = ()
    """Other ways callers name them ("docteur Claire", "la doctoresse")."""
    hours: tuple[OpeningPeriod, ...] = ()
    """When this practitioner sees patients; empty: whenever the practice is open."""

    def __post_init__(self) -> None:
        _check_id("practitioner", self.id)
        _check_text("display_name", self.display_name)
        _check_text("last_name", self.last_name)
        for alias in self.aliases:
            _check_text("an alias", alias)


@dataclass(frozen=True, kw_only=True)
class VisitReason:
    id: str
    label: str
    """French, as spoken after "pour": "une consultation"."""
    duration_min: int
    practitioner_ids: tuple[str, ...] = ()
    """Who sees this reason; empty means every practitioner."""
    new_patients: bool = True
    """Whether someone not yet followed at the practice may book it."""
    keywords: tuple[str, ...] = ()
    """Words and phrases a caller uses for it ("vaccin", "rappel")."""

    def __post_init__(self) -> None:
        _check_id("reason", self.id)
        _check_text("label", self.label)
        # Below 5 min nobody is seen; above 4 h it is not a visit but a closure.
        if not 5 <= self.duration_min <= 240:
            raise ConfigError(f"duration_min must be 5-240 minutes, got {self.duration_min}")
        if len(set(self.practitioner_ids)) != len(self.practitioner_ids):
            raise ConfigError("practitioner_ids lists the same practitioner twice")
        for keyword in self.keywords:
            _check_text("a keyword", keyword)

    def seen_by(self, practitioner_id: str) -> bool:
        return not self.practitioner_ids or practitioner_id in self.practitioner_ids


@dataclass(frozen=True, kw_only=True)
class OpeningPeriod:
    weekday: int
    """0 = Monday ... 6 = Sunday, as ``date.weekday()``."""
    start: time
    end: time

    def __post_init__(self) -> None:
        if not 0 <= self.weekday <= 6:
            raise ConfigError(f"weekday must be 0 (Monday) to 6 (Sunday), got {self.weekday}")
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ConfigError("opening times are wall-clock times of the practice, without zone")
        if self.end <= self.start:
            raise ConfigError(
                f"the period {self.start:%H:%M}-{self.end:%H:%M} ends before it starts"
            )

    @property
    def weekday_name(self) -> str:
        return WEEKDAYS[self.weekday]


@dataclass(frozen=True, kw_only=True)
class Closure:
    start: date
    end: date
    """Inclusive: a one-day closure has ``start == end``."""
    reason: str = ""

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ConfigError(f"the closure ends ({self.end}) before it starts ({self.start})")

    def covers(self, day: date) -> bool:
        return self.start <= day <= self.end


@dataclass(frozen=True, kw_only=True)
class BookingRules:
    min_notice_min: int = 60
    """No slot is offered that starts sooner than this after the call."""
    horizon_days: int = 60
    """No slot is offered further ahead than this."""
    slot_step_min: int = 10
    """Candidate start times are this far apart, from each opening period's start."""
    kept_for_staff: tuple[WeeklyRange, ...] = ()
    """Time the assistant never books: the staff keep it for same-day needs
    (``["mon-fri 08:30-09:00", "sat 11:00-12:00"]``)."""

    def __post_init__(self) -> None:
        if not 0 <= self.min_notice_min <= 7 * 24 * 60:
            raise ConfigError(f"min_notice_min must be 0-10080 minutes, got {self.min_notice_min}")
        if not 1 <= self.horizon_days <= 366:
            raise ConfigError(f"horizon_days must be 1-366 days, got {self.horizon_days}")
        if not 5 <= self.slot_step_min <= 60:
            raise ConfigError(f"slot_step_min must be 5-60 minutes, got {self.slot_step_min}")


@dataclass(frozen=True, slots=True)
class PracticeInfo:
    """What the practice tells callers who ask (an ``[info]`` table, all optional).

    The assistant reads these sentences as written: the practice approves every
    word said about it. Opening hours, the address, closures and whether new
    patients are taken come from the structured settings, not from here.
    """

    access: str = ""
    """How to get there: floor, lift, parking, public transport."""
    bring: str = ""
    """What to bring to a visit."""
    fees: str = ""
    """Fees, reimbursement, means of payment."""
    new_patients: str = ""
    """Overrides the sentence made from the visit reasons' ``new_patients``."""

    def __post_init__(self) -> None:
        for name in ("access", "bring", "fees", "new_patients"):
            value = getattr(self, name)
            if len(value) > 600:
                raise ConfigError(f"info.{name} is {len(value)} characters; keep it under 600, it is read aloud")


@dataclass(frozen=True, kw_only=True)
class Practice:
    id: str
    name: str
    address: str
    phone: str
    timezone: str = "Europe/Paris"
    emergency_number: str = "15"
    practitioners: tuple[Practitioner, ...]
    """In the order the assistant offers them."""
    reasons: tuple[VisitReason, ...]
    hours: tuple[OpeningPeriod, ...]
    closures: tuple[Closure, ...] = ()
    rules: BookingRules = field(default_factory=BookingRules)
    data_notice: str
    """French sentence telling callers what is done with their data."""
    info: PracticeInfo = field(default_factory=PracticeInfo)

    def __post_init__(self) -> None:
        _check_id("practice", self.id)
        for name in ("name", "address", "phone", "emergency_number", "data_notice"):
            _check_text(name, getattr(self, name))
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as err:
            raise ConfigError(f"timezone {self.timezone!r} is not a known time zone") from err
        if not self.practitioners:
            raise ConfigError("a practice needs at least one practitioner")
        if not self.reasons:
            raise ConfigError("a practice needs at least one visit reason")
        if not self.hours:
            raise ConfigError("a practice needs at least one opening period")
        _reject_duplicates("practitioner", [p.id for p in self.practitioners])
        _reject_duplicates("reason", [r.id for r in self.reasons])
        known = [p.id for p in self.practitioners]
        for reason in self.reasons:
            for pid in reason.practitioner_ids:
                if pid not in known:
                    raise ConfigError(
                        f"reason {reason.id!r} names unknown practitioner {pid!r}"
                        f" (known: {', '.join(known)})"
                    )
        by_day = sorted(self.hours, key=lambda p: (p.weekday, p.start))
        for before, after in zip(by_day, by_day[1:]):
            if before.weekday == after.weekday and after.start < before.end:
                raise ConfigError(
                    f"on {before.weekday_name} the periods {before.start:%H:%M}-{before.end:%H:%M}"
                    f" and {after.start:%H:%M}-{after.end:%H:%M} overlap"
                )

    @property
    def tz(self) -> ZoneInfo:
        # ZoneInfo caches instances per key, so every datetime of the practice
        # shares one tzinfo object (same-zone comparisons stay wall-clock exact).
        return ZoneInfo(self.timezone)

    def practitioner(self, practitioner_id: str) -> Practitioner:
        for practitioner in self.practitioners:
            if practitioner.id == practitioner_id:
                return practitioner
        raise KeyError(f"no practitioner {practitioner_id!r} in practice {self.id!r}")

    def reason(self, reason_id: str) -> VisitReason:
        for reason in self.reasons:
            if reason.id == reason_id:
                return reason
        raise KeyError(f"no visit reason {reason_id!r} in practice {self.id!r}")

    def practitioners_for(self, reason_id: str) -> tuple[Practitioner, ...]:
        """Who sees this reason, in the practice's order."""
        reason = self.reason(reason_id)
        return tuple(p for p in self.practitioners if reason.seen_by(p.id))

    def periods_on(self, day: date, practitioner_id: str | None = None) -> tuple[OpeningPeriod, ...]:
        """Opening periods of that calendar day, in order; none on a closure.

        With a practitioner: their own hours if they have some, else the practice's.
        """
        if self.is_closed(day):
            return ()
        hours = self.hours
        if practitioner_id is not None:
            hours = self.practitioner(practitioner_id).hours or self.hours
        weekday = day.weekday()
        return tuple(sorted((p for p in hours if p.weekday == weekday), key=lambda p: p.start))

    def kept_for_staff(self, start: datetime, end: datetime) -> bool:
        """Whether ``[start, end)`` (practice time) touches time kept for the staff."""
        return any(kept.overlaps(start, end) for kept in self.rules.kept_for_staff)

    def is_closed(self, day: date) -> bool:
        return any(closure.covers(day) for closure in self.closures)


def _reject_duplicates(kind: str, ids: list[str]) -> None:
    seen: set[str] = set()
    for item in ids:
        if item in seen:
            raise ConfigError(f"two {kind}s have the id {item!r}")
        seen.add(item)


# --- Loading -----------------------------------------------------------------


def load_practice(path: Path | str) -> Practice:
    """Read and validate a practice file; every mistake raises ``ConfigError``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: practice file not found") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the practice file ({err.strerror})") from err
    return load_practice_text(text, where=str(path))


def load_practice_text(text: str, *, where: str) -> Practice:
    """Validate a practice given as TOML text (``where`` names it in every error)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{where}: not valid TOML: {err}") from None
    try:
        return _practice_from(_Table(data, ""))
    except ConfigError as err:
        raise ConfigError(f"{where}: {err.detail}", code=err.code) from None


def builtin_practice_names() -> tuple[str, ...]:
    folder = resources.files(_BUILTIN_PACKAGE) / _BUILTIN_DIR
    return tuple(sorted(p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml")))


def builtin_practice(name: str) -> Practice:
    """A practice shipped with the box (``demo``), for simulations and first start."""
    if name not in builtin_practice_names():
        raise ConfigError(
            f"no built-in practice {name!r} (built-in: {', '.join(builtin_practice_names())})"
        )
    resource = resources.files(_BUILTIN_PACKAGE) / _BUILTIN_DIR / f"{name}.toml"
    with resources.as_file(resource) as path:
        return load_practice(path)


def resolve_practice(spec: str, base_dir: Path | None = None) -> Practice:
    """``spec`` is a built-in name (``"demo"``) or a file path, relative to ``base_dir``.

    A bare word is a built-in name; anything with a slash or a ``.toml`` suffix
    is a path, so a file called ``demo.toml`` next to the configuration is still
    reachable as ``./demo.toml``.
    """
    if not spec.strip():
        raise ConfigError("practice: empty; give a built-in name (e.g. 'demo') or a file path")
    looks_like_path = "/" in spec or "\\" in spec or spec.endswith(".toml")
    if not looks_like_path:
        return builtin_practice(spec)
    path = Path(spec).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    return load_practice(path)


_T = TypeVar("_T")
_MISSING: Final[Any] = object()


class _Table:
    """One TOML table being read, remembering where it is for error messages."""

    def __init__(self, data: Mapping[str, Any], where: str) -> None:
        self.data = data
        self.where = where

    def error(self, problem: str) -> ConfigError:
        return ConfigError(f"{self.where}: {problem}" if self.where else problem)

    def check_keys(self, required: Iterable[str], optional: Iterable[str] = ()) -> None:
        required = tuple(required)
        allowed = required + tuple(optional)
        for key in self.data:
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise self.error(
                    f"unknown key '{key}'{hint}; allowed keys: {', '.join(allowed)}"
                )
        for key in required:
            if key not in self.data:
                raise self.error(f"missing key '{key}'")

    def _get(self, key: str, default: Any, kind: type | tuple[type, ...], kind_name: str) -> Any:
        value = self.data.get(key, default)
        if value is _MISSING:
            raise self.error(f"missing key '{key}'")
        # bool is an int in Python; `duration_min = true` is a mistake, not 1.
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.error(f"'{key}' must be {kind_name}, got {value!r}")
        return value

    def text(self, key: str, default: str = _MISSING) -> str:
        return self._get(key, default, str, "text")

    def integer(self, key: str, default: int = _MISSING) -> int:
        return self._get(key, default, int, "a whole number")

    def boolean(self, key: str, default: bool = _MISSING) -> bool:
        return self._get(key, default, bool, "true or false")

    def texts(self, key: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        values = self._get(key, list(default), list, "a list of texts")
        for value in values:
            if not isinstance(value, str):
                raise self.error(f"'{key}' must be a list of texts, got {value!r} in it")
        return tuple(values)

    def day(self, key: str) -> date:
        value = self.data.get(key, _MISSING)
        if value is _MISSING:
            raise self.error(f"missing key '{key}'")
        if isinstance(value, date) and not hasattr(value, "hour"):
            return value
        if isinstance(value, str):
            try:
                return date.fromisoformat(value)
            except ValueError:
                pass
        raise self.error(f"'{key}' must be a date like 2026-05-01, got {value!r}")

    def table(self, key: str) -> _Table:
        value = self._get(key, {}, dict, "a table")
        return _Table(value, key)

    def tables(self, key: str, required: bool = True) -> list[_Table]:
        value = self._get(key, _MISSING if required else [], list, f"a list of [[{key}]] tables")
        out = []
        for number, item in enumerate(value, start=1):
            where = f"[[{key}]] #{number}"
            if not isinstance(item, dict):
                raise self.error(f"[[{key}]] #{number} must be a table, got {item!r}")
            if isinstance(item.get("id"), str):
                where = f"[[{key}]] #{number} ({item['id']!r})"
            out.append(_Table(item, where))
        return out

    def build(self, cls: type[_T], **fields: Any) -> _T:
        """Construct a dataclass, naming this table in its validation errors."""
        try:
            return cls(**fields)
        except ConfigError as err:
            raise self.error(err.detail) from None


def _practice_from(top: _Table) -> Practice:
    top.check_keys(
        required=("id", "name", "address", "phone", "data_notice", "practitioners", "reasons", "hours"),
        optional=("timezone", "emergency_number", "rules", "closures", "info"),
    )
    practitioners = tuple(_practitioner_from(t) for t in top.tables("practitioners"))
    reasons = tuple(_reason_from(t) for t in top.tables("reasons"))
    closures = tuple(_closure_from(t) for t in top.tables("closures", required=False))
    rules_table = top.table("rules")
    rules_table.check_keys((), ("min_notice_min", "horizon_days", "slot_step_min", "kept_for_staff"))
    defaults = BookingRules()
    rules = rules_table.build(
        BookingRules,
        min_notice_min=rules_table.integer("min_notice_min", defaults.min_notice_min),
        horizon_days=rules_table.integer("horizon_days", defaults.horizon_days),
        slot_step_min=rules_table.integer("slot_step_min", defaults.slot_step_min),
        kept_for_staff=_weekly(rules_table, "kept_for_staff"),
    )
    return top.build(
        Practice,
        id=top.text("id"),
        name=top.text("name"),
        address=top.text("address"),
        phone=top.text("phone"),
        timezone=top.text("timezone", "Europe/Paris"),
        emergency_number=top.text("emergency_number", "15"),
        data_notice=top.text("data_notice"),
        practitioners=practitioners,
        reasons=reasons,
        hours=_hours_from(top.table("hours")),
        closures=closures,
        rules=rules,
        info=_info_from(top.table("info")),
    )


def _info_from(t: _Table) -> PracticeInfo:
    t.check_keys((), ("access", "bring", "fees", "new_patients"))
    return t.build(PracticeInfo, **{key: t.text(key, "").strip() for key in ("access", "bring", "fees", "new_patients")})


def _practitioner_from(t: _Table) -> Practitioner:
    t.check_keys(("id", "display_name", "last_name"), ("aliases", "hours"))
    return t.build(
        Practitioner,
        id=t.text("id"),
        display_name=t.text("display_name"),
        last_name=t.text("last_name"),
        aliases=t.texts("aliases"),
        hours=_hours_from(_Table(t.table("hours").data, f"{t.where} hours")) if "hours" in t.data else (),
    )


def _weekly(t: _Table, key: str) -> tuple[WeeklyRange, ...]:
    try:
        return parse_ranges(t.texts(key), where=f"rules.{key}")
    except ConfigError as err:
        raise t.error(err.detail) from None


def _reason_from(t: _Table) -> VisitReason:
    t.check_keys(("id", "label", "duration_min", "keywords"), ("practitioner_ids", "new_patients"))
    return t.build(
        VisitReason,
        id=t.text("id"),
        label=t.text("label"),
        duration_min=t.integer("duration_min"),
        practitioner_ids=t.texts("practitioner_ids"),
        new_patients=t.boolean("new_patients", True),
        keywords=t.texts("keywords"),
    )


def _closure_from(t: _Table) -> Closure:
    t.check_keys(("start", "end"), ("reason",))
    return t.build(Closure, start=t.day("start"), end=t.day("end"), reason=t.text("reason", ""))


def _hours_from(t: _Table) -> tuple[OpeningPeriod, ...]:
    t.check_keys((), WEEKDAYS)
    periods = []
    for weekday, name in enumerate(WEEKDAYS):
        for number, text in enumerate(t.texts(name), start=1):
            where = _Table(t.data, f"hours.{name} period #{number}")
            start, sep, end = text.partition("-")
            if not sep:
                raise where.error(f"{text!r} must look like \"08:30-12:30\"")
            periods.append(
                where.build(
                    OpeningPeriod,
                    weekday=weekday,
                    start=_time_of_day(where, start.strip()),
                    end=_time_of_day(where, end.strip()),
                )
            )
    return tuple(periods)


def _time_of_day(where: _Table, text: str) -> time:
    match = _TIME_RE.match(text)
    if match:
        hour, minute = int(match[1]), int(match[2])
        if hour <= 23 and minute <= 59:
            return time(hour, minute)
    raise where.error(f"{text!r} is not a time of day (expected HH:MM, 00:00 to 23:59)")
