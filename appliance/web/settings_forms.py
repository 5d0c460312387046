"""The Settings page's forms: what each section shows, and what a submitted one asks for.

Translation between text fields and the shapes ``settings_file`` takes (a
practice table shaped like ``practices/demo.toml``; overlay tables for
``[answering]``, ``[retention]``, ``[sync]``), every field checked on the way in
by ``field_checks``: a mistake is explained next to its field, in the staff's
language, before the box's own validation (``save_practice``, ``save_settings``)
sees the section. That validation still runs on the whole and stays the last
line of defence, for rules that tie settings together; ``field_of`` maps its
message, which names a setting (``retention.messages_days``, ``[[reasons]] #2
... duration_min``), back to the field that holds it.

An optional field left empty means "not set": its key leaves the practice table
or the overlay (``Submitted.removed``), and the default or the installer's value
applies again. A secret is never shown: its field left empty keeps it, its
"remove" box takes it out of the overlay.
"""

from __future__ import annotations

import copy
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final

from appliance.agenda.practice import WEEKDAYS
from appliance.agenda.weekly import parse_ranges
from appliance.answering import MAX_RINGS
from appliance.config import Config
from appliance.web import field_checks as checks
from appliance.web.field_checks import Invalid

Translate = Callable[..., str]
Form = Mapping[str, Any]  # a Starlette FormData, or a dict in tests

PRACTICE_SECTIONS: Final = ("practice", "hours", "closures", "practitioners", "reasons", "rules")
CONFIG_SECTIONS: Final = ("answering", "retention", "cloud")
SECTIONS: Final = PRACTICE_SECTIONS + CONFIG_SECTIONS
PRACTICE_FIELDS: Final = ("name", "address", "phone", "emergency_number", "data_notice")
RULE_NUMBERS: Final = ("min_notice_min", "horizon_days", "slot_step_min")
# The practice's own bounds (``BookingRules``), checked here to say them in the staff's language.
RULE_LIMITS: Final = {"min_notice_min": (0, 7 * 24 * 60), "horizon_days": (1, 366), "slot_step_min": (5, 60)}
RULE_DEFAULTS: Final = {"min_notice_min": 60, "horizon_days": 60, "slot_step_min": 10}
RETENTION_FIELDS: Final = ("transcripts_days", "messages_days", "calls_days", "outbox_days", "appointments_days")
RETENTION_DAYS: Final = (1, 3650)  # ``RetentionSettings``' bounds
DEFAULT_EMERGENCY: Final = "15"  # the practice file's default when the field is left empty
MODES: Final = ("now", "after_rings", "never")
PRESETS: Final = ("office", "extended", "always", "rings", "custom")
ADAPTERS: Final = ("none", "fhir", "caldav")
# What "extended hours" means when the practice has not written its own ranges yet.
EXTENDED_DEFAULT: Final = ("mon-fri 08:00-20:00", "sat 08:00-13:00")
_DAY_ABBR: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DATE: Final = r"\d{4}-\d{2}-\d{2}|\d{1,2}/\d{1,2}/\d{4}"
_CLOSURE: Final = re.compile(rf"^({_DATE})(?:\s*(?:-|–|—|au|à)\s*({_DATE}))?\s*[:,–-]?\s*(.*)$")
_ROW: Final = re.compile(r"\[\[(practitioners|reasons)\]\] #(\d+)")
_ID: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")  # the practice's id rule: a hidden field changed by hand fails it
_MAX_ROWS: Final = 100
_MAX_CLOSURES: Final = 200


@dataclass
class Submitted:
    """One section's form, read back: what to show again, what is wrong, what to save."""

    values: dict[str, Any]
    errors: dict[str, Any] = field(default_factory=dict)
    """Field name (``_form``: the section as a whole) → what is wrong, in the page's language."""
    table: dict[str, Any] | None = None
    """The whole practice table with this section changed (practice sections)."""
    changes: dict[str, Any] | None = None
    """What to lay over the settings (configuration sections)."""
    removed: list[tuple[str, ...]] = field(default_factory=list)
    """Overlay keys to take out: an optional field left empty, a secret removed."""
    rows: list[int] = field(default_factory=list)
    """For practitioners and reasons: the form row of each table entry, for error messages."""
    sensitive: bool = False
    """The cloud agenda's credentials change (address, user name, password, token)."""

    def check(self, name: str, t: Translate, check: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``check(*args)``'s value, or None with its refusal noted next to ``name`` (the first one stays)."""
        try:
            return check(*args, **kwargs)
        except Invalid as problem:
            self.errors.setdefault(name, t(problem.key, **problem.values))
            return None


# --- What the page shows ---------------------------------------------------------------


def current_values(
    section: str, config: Config, table: Mapping[str, Any] | None, installer: Config | None = None
) -> dict[str, Any]:
    """The section's fields as they are configured now (secrets never included).

    ``installer``: the configuration without the page's overlay, to tell a secret
    saved from the page (which the page can remove) from the installer's."""
    if section in PRACTICE_SECTIONS:
        return _practice_values(section, table or {})
    if section == "answering":
        a = config.answering
        return {"preset": preset_of(a.during_hours, a.outside_hours, bool(a.hours)), "during_hours": a.during_hours,
                "outside_hours": a.outside_hours, "rings": str(a.rings), "hours": "\n".join(a.hours)}
    if section == "retention":
        return {name: str(getattr(config.retention, name)) for name in RETENTION_FIELDS}
    if section == "cloud":
        sync = config.sync
        fhir, caldav = sync.fhir, sync.caldav
        base = (installer or config).sync
        token = fhir.bearer_token if fhir else None
        password = (caldav.password, caldav.password_file) if caldav else ("", None)
        installer_password = (base.caldav.password, base.caldav.password_file) if base.caldav else ("", None)
        return {
            "adapter": sync.adapter,
            "fhir_base_url": fhir.base_url if fhir else "",
            "fhir_practitioners": dict(fhir.practitioners) if fhir else {},
            "fhir_token_set": bool(token),
            "fhir_token_saved": bool(token) and token != (base.fhir.bearer_token if base.fhir else None),
            "fhir_token_remove": False,
            "caldav_base_url": caldav.base_url if caldav else "",
            "caldav_username": caldav.username if caldav else "",
            "caldav_calendars": dict(caldav.calendars) if caldav else {},
            "caldav_password_set": any(password),
            "caldav_password_saved": any(password) and password != installer_password,
            "caldav_password_remove": False,
            "caldav_password_file": installer_password[1] is not None,
        }
    raise KeyError(section)


def _practice_values(section: str, table: Mapping[str, Any]) -> dict[str, Any]:
    if section == "practice":
        values = {key: str(table.get(key, "")) for key in PRACTICE_FIELDS}
        values["emergency_number"] = str(table.get("emergency_number", DEFAULT_EMERGENCY))
        return values
    if section == "hours":
        hours = table.get("hours", {})
        return {day: ", ".join(hours.get(day, [])) for day in WEEKDAYS}
    if section == "closures":
        return {"closures": "\n".join(_closure_line(c) for c in table.get("closures", []))}
    if section == "practitioners":
        rows = [
            {"id": p["id"], "display_name": p.get("display_name", ""), "last_name": p.get("last_name", ""),
             "aliases": ", ".join(p.get("aliases", [])), "hours": ranges_text(p.get("hours", {}))}
            for p in table.get("practitioners", [])
        ]
        return {"rows": rows + [_blank_practitioner()]}
    if section == "reasons":
        rows = [
            {"id": r["id"], "label": r.get("label", ""), "duration_min": str(r.get("duration_min", "")),
             "who": list(r.get("practitioner_ids", [])), "new_patients": bool(r.get("new_patients", True)),
             "keywords": ", ".join(r.get("keywords", []))}
            for r in table.get("reasons", [])
        ]
        return {"rows": rows + [_blank_reason()]}
    rules = table.get("rules", {})
    values = {name: str(rules.get(name, RULE_DEFAULTS[name])) for name in RULE_NUMBERS}
    values["kept_for_staff"] = "\n".join(rules.get("kept_for_staff", []))
    return values


def _blank_practitioner() -> dict[str, Any]:
    return {"id": "", "display_name": "", "last_name": "", "aliases": "", "hours": ""}


def _blank_reason() -> dict[str, Any]:
    return {"id": "", "label": "", "duration_min": "", "who": [], "new_patients": True, "keywords": ""}


def _closure_line(closure: Mapping[str, Any]) -> str:
    start, end = _as_date(closure.get("start")), _as_date(closure.get("end"))
    if start is None or end is None:
        return f"{closure.get('start')} – {closure.get('end')} {closure.get('reason', '')}".strip()
    text = f"{start:%d/%m/%Y}" + (f" – {end:%d/%m/%Y}" if end != start else "")
    return f"{text} {closure.get('reason', '')}".strip()


def _as_date(value: Any) -> date | None:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        return None


def ranges_text(hours: Mapping[str, list[str]]) -> str:
    """A practitioner's hours table as weekly ranges, runs of equal days joined:
    ``{"monday": ["08:30-12:30"], ..., "friday": [...]}`` → ``mon-fri 08:30-12:30``."""
    lines: list[str] = []
    day = 0
    while day < len(WEEKDAYS):
        periods = list(hours.get(WEEKDAYS[day], []))
        last = day
        while last + 1 < len(WEEKDAYS) and periods and list(hours.get(WEEKDAYS[last + 1], [])) == periods:
            last += 1
        days = _DAY_ABBR[day] if last == day else f"{_DAY_ABBR[day]}-{_DAY_ABBR[last]}"
        lines.extend(f"{days} {period}" for period in periods)
        day = last + 1
    return "\n".join(lines)


def preset_of(during: str, outside: str, own_hours: bool) -> str:
    """Which of the page's presets the answering settings are, or ``custom``."""
    if during == outside == "now":
        return "always"
    if (during, outside) == ("now", "never"):
        return "extended" if own_hours else "office"
    if (during, outside) == ("after_rings", "now"):
        return "rings"
    return "custom"


# --- What a submitted form asks for -----------------------------------------------------


def read_form(
    section: str,
    form: Form,
    config: Config,
    table: Mapping[str, Any] | None,
    t: Translate,
    *,
    installer: Config | None = None,
) -> Submitted:
    """The section's form as values to show again, plus the table or changes to save.

    ``table`` is the practice as it is now (the cloud section needs its
    practitioners too); ``installer`` the configuration without the page's
    overlay: what an emptied field falls back to."""
    if section in PRACTICE_SECTIONS:
        reader = _PRACTICE_READERS[section]
        return reader(form, copy.deepcopy(dict(table or {})), t, config)
    if section == "answering":
        return _answering(form, t)
    if section == "retention":
        return _retention(form, t, installer or config)
    return _cloud(form, config, installer or config, table or {}, t)


def _text(form: Form, name: str) -> str:
    value = form.get(name, "")
    return value.strip() if isinstance(value, str) else ""


def _practice(form: Form, table: dict[str, Any], t: Translate, config: Config) -> Submitted:
    submitted = Submitted(values={key: _text(form, key) for key in PRACTICE_FIELDS})
    v, check = submitted.values, submitted.check
    found = {
        "name": check("name", t, checks.text, v["name"], max_len=120),
        "address": check("address", t, checks.text, v["address"], max_len=300),
        "phone": check("phone", t, checks.phone, v["phone"]),
        "data_notice": check("data_notice", t, checks.text, v["data_notice"], max_len=1000, lines=True),
    }
    emergency = check("emergency_number", t, checks.phone, v["emergency_number"], required=False, min_digits=2)
    if submitted.errors:
        return submitted
    table.update(found)
    if emergency:
        table["emergency_number"] = emergency
    else:
        table.pop("emergency_number", None)  # not set: the practice file's default (15)
    submitted.table = table
    return submitted


def _hours(form: Form, table: dict[str, Any], t: Translate, config: Config) -> Submitted:
    submitted = Submitted(values={day: _text(form, day) for day in WEEKDAYS})
    hours: dict[str, list[str]] = {}
    for day, text in submitted.values.items():
        if periods := submitted.check(day, t, checks.day_periods, text):
            hours[day] = periods
    if not submitted.errors and not hours:
        submitted.errors["_form"] = t("invalid.no_hours")
    table["hours"] = hours
    submitted.table = table
    return submitted


def _closures(form: Form, table: dict[str, Any], t: Translate, config: Config) -> Submitted:
    text = form.get("closures", "")
    text = text if isinstance(text, str) else ""
    submitted = Submitted(values={"closures": text.strip()})
    lines = [(number, line.strip()) for number, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if len(lines) > _MAX_CLOSURES:
        submitted.errors["closures"] = t("invalid.too_many_lines", max=_MAX_CLOSURES)
        return submitted
    closures: list[dict[str, Any]] = []
    for number, line in lines:
        match = _CLOSURE.match(line)
        if match is None:
            submitted.errors["closures"] = t("settings.closure_unreadable", n=number, line=checks.clip(line))
            return submitted
        start, end = _parse_day(match[1]), _parse_day(match[2] or match[1])
        if start is None or end is None:
            bad = match[1] if start is None else match[2]
            submitted.errors["closures"] = t("invalid.closure_date", n=number, date=bad)
            return submitted
        if end < start:
            submitted.errors["closures"] = t("invalid.closure_backwards", n=number)
            return submitted
        try:
            reason = checks.text(match[3], required=False, max_len=120)
        except Invalid as problem:
            submitted.errors["closures"] = t("invalid.line", n=number, problem=t(problem.key, **problem.values))
            return submitted
        closures.append({"start": start, "end": end, "reason": reason})
    table["closures"] = closures
    submitted.table = table
    return submitted


def _parse_day(text: str) -> date | None:
    """A closure's day; years outside 2000-2200 are typing mistakes, not closures."""
    try:
        if "/" in text:
            day, month, year = (int(part) for part in text.split("/"))
            found = date(year, month, day)
        else:
            found = date.fromisoformat(text)
    except ValueError:
        return None
    return found if 2000 <= found.year <= 2200 else None


def _practitioners(form: Form, table: dict[str, Any], t: Translate, config: Config) -> Submitted:
    before = {p["id"]: p for p in table.get("practitioners", [])}
    reasons = table.get("reasons", [])
    rows: list[dict[str, Any]] = []
    entries: list[dict[str, Any]] = []
    submitted = Submitted(values={"rows": rows})
    check = submitted.check
    for i in _row_numbers(form, "p"):
        row: dict[str, Any] = {key: _text(form, f"p{i}_{key}") for key in ("id", "display_name", "last_name", "aliases")}
        hours_text = form.get(f"p{i}_hours", "")
        row["hours"] = hours_text.strip() if isinstance(hours_text, str) else ""
        row["remove"] = bool(form.get(f"p{i}_remove"))
        rows.append(row)
        n, pid = len(rows) - 1, row["id"]
        if pid and not _ID.fullmatch(pid):
            submitted.errors["_form"] = t("invalid.form_changed")
            continue
        if row["remove"]:
            # Removing a practitioner a reason still names would leave that reason pointing at nobody.
            if pid and (named := [r.get("label", r.get("id")) for r in reasons if pid in r.get("practitioner_ids", [])]):
                submitted.errors[f"p{n}_display_name"] = t("invalid.still_in_reason", reason=named[0])
            continue
        if not pid and not any(row[k] for k in ("display_name", "last_name", "aliases", "hours")):
            continue  # the empty row left for a new practitioner
        found = {
            "display_name": check(f"p{n}_display_name", t, checks.text, row["display_name"], max_len=120),
            "last_name": check(f"p{n}_last_name", t, checks.text, row["last_name"], max_len=80),
            "aliases": [check(f"p{n}_aliases", t, checks.text, alias, max_len=120)
                        for alias in checks.split(row["aliases"], ",;")],
        }
        ranges = check(f"p{n}_hours", t, checks.weekly_ranges, row["hours"], overlap_ok=False) or []
        entry = dict(before.get(pid, {}))
        entry.update(id=pid or _new_id(row["last_name"] or row["display_name"], [e["id"] for e in entries] + list(before)),
                     **found)
        if not pid and (missing := _cloud_place_missing(config, entry["id"])):
            submitted.errors.setdefault(f"p{n}_display_name", t("invalid.cloud_first", adapter=t(f"adapter.{missing}")))
        entry.pop("hours", None)
        if ranges:
            entry["hours"] = _hours_table(ranges)
        submitted.rows.append(n)
        entries.append(entry)
    if not submitted.errors and not entries:
        submitted.errors["_form"] = t("invalid.no_practitioner")
    if not any(not r["id"] for r in rows):
        rows.append(_blank_practitioner())
    table["practitioners"] = entries
    submitted.table = table
    return submitted


def _cloud_place_missing(config: Config, practitioner_id: str) -> str | None:
    """The cloud agenda in use, if it has no place yet for this practitioner (the box would refuse)."""
    sync = config.sync
    if sync.adapter == "fhir" and sync.fhir is not None and practitioner_id not in sync.fhir.practitioners:
        return "fhir"
    if sync.adapter == "caldav" and sync.caldav is not None and practitioner_id not in sync.caldav.calendars:
        return "caldav"
    return None


def _hours_table(ranges: list[str]) -> dict[str, list[str]]:
    """``mon-fri 08:30-12:30`` lines (checked already) as a practice ``[hours]`` table."""
    hours: dict[str, list[str]] = {}
    for weekly in parse_ranges(ranges):
        hours.setdefault(WEEKDAYS[weekly.weekday], []).append(f"{weekly.start:%H:%M}-{weekly.end:%H:%M}")
    return hours


def _reasons(form: Form, table: dict[str, Any], t: Translate, config: Config) -> Submitted:
    before = {r["id"]: r for r in table.get("reasons", [])}
    known = [p["id"] for p in table.get("practitioners", [])]
    rows: list[dict[str, Any]] = []
    entries: list[dict[str, Any]] = []
    submitted = Submitted(values={"rows": rows})
    check = submitted.check
    getlist = getattr(form, "getlist", lambda name: form.get(name) or [])
    for i in _row_numbers(form, "r"):
        row: dict[str, Any] = {key: _text(form, f"r{i}_{key}") for key in ("id", "label", "duration_min", "keywords")}
        row["who"] = [str(v) for v in getlist(f"r{i}_who")]
        row["new_patients"] = bool(form.get(f"r{i}_new_patients"))
        row["remove"] = bool(form.get(f"r{i}_remove"))
        rows.append(row)
        n, rid = len(rows) - 1, row["id"]
        if rid and not _ID.fullmatch(rid):
            submitted.errors["_form"] = t("invalid.form_changed")
            continue
        if row["remove"] or (not rid and not any(row[k] for k in ("label", "duration_min", "keywords", "who"))):
            continue  # removed, or the empty row left for a new reason
        found = {
            "label": check(f"r{n}_label", t, checks.text, row["label"], max_len=120),
            "duration_min": check(f"r{n}_duration_min", t, checks.whole, row["duration_min"], 5, 240),
            "keywords": [check(f"r{n}_keywords", t, checks.text, word, max_len=80)
                         for word in checks.split(row["keywords"], ",;")],
        }
        for pid in row["who"]:
            check(f"r{n}_who", t, checks.choice, pid, known)
        entry = dict(before.get(rid, {}))
        entry.update(id=rid or _new_id(row["label"], [e["id"] for e in entries] + list(before)),
                     practitioner_ids=list(dict.fromkeys(row["who"])), new_patients=row["new_patients"], **found)
        submitted.rows.append(n)
        entries.append(entry)
    if not submitted.errors and not entries:
        submitted.errors["_form"] = t("invalid.no_reason")
    if not any(not r["id"] for r in rows):
        rows.append(_blank_reason())
    table["reasons"] = entries
    submitted.table = table
    return submitted


def _row_numbers(form: Form, prefix: str) -> list[int]:
    numbers = []
    while f"{prefix}{len(numbers)}_id" in form and len(numbers) < _MAX_ROWS:
        numbers.append(len(numbers))
    return numbers


def _new_id(name: str, taken: list[str]) -> str:
    """A plain id for a new practitioner or reason ("Le Goff" → ``le-goff``), unique in the practice."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    base = re.sub(r"[^a-z0-9]+", "-", plain).strip("-")[:36] or "x"
    candidate, n = base, 2
    while candidate in taken:
        candidate, n = f"{base}-{n}", n + 1
    return candidate


def _rules(form: Form, table: dict[str, Any], t: Translate, config: Config) -> Submitted:
    submitted = Submitted(values={name: _text(form, name) for name in RULE_NUMBERS})
    kept = form.get("kept_for_staff", "")
    submitted.values["kept_for_staff"] = kept.strip() if isinstance(kept, str) else ""
    rules = dict(table.get("rules", {}))
    for name, (low, high) in RULE_LIMITS.items():
        number = submitted.check(name, t, checks.whole, submitted.values[name], low, high, required=False)
        if number is not None:
            rules[name] = number
        elif name not in submitted.errors:
            rules.pop(name, None)  # not set: the practice's default
    ranges = submitted.check("kept_for_staff", t, checks.weekly_ranges, submitted.values["kept_for_staff"])
    rules["kept_for_staff"] = ranges or []
    table["rules"] = rules
    submitted.table = table
    return submitted


_PRACTICE_READERS: Final = {
    "practice": _practice, "hours": _hours, "closures": _closures,
    "practitioners": _practitioners, "reasons": _reasons, "rules": _rules,
}


def _answering(form: Form, t: Translate) -> Submitted:
    values = {key: _text(form, key) for key in ("preset", "during_hours", "outside_hours", "rings")}
    hours_text = form.get("hours", "")
    values["hours"] = hours_text.strip() if isinstance(hours_text, str) else ""
    submitted = Submitted(values=values)
    check = submitted.check
    preset = check("preset", t, checks.choice, values["preset"], PRESETS)
    hours = check("hours", t, checks.weekly_ranges, values["hours"]) or []
    rings = check("rings", t, checks.whole, values["rings"], 1, MAX_RINGS, required=False)
    during, outside = {"office": ("now", "never"), "extended": ("now", "never"), "always": ("now", "now"),
                       "rings": ("after_rings", "now")}.get(preset or "", (None, None))
    if preset == "custom":
        during = check("during_hours", t, checks.choice, values["during_hours"], MODES)
        outside = check("outside_hours", t, checks.choice, values["outside_hours"], MODES)
    answering: dict[str, Any] = {"during_hours": during, "outside_hours": outside}
    if preset == "office":
        answering["hours"] = []  # the practice's opening hours, whatever the installer wrote
    elif preset == "extended":
        answering["hours"] = hours or list(EXTENDED_DEFAULT)
    elif hours:
        answering["hours"] = hours
    else:
        submitted.removed.append(("answering", "hours"))
    if rings is not None:
        answering["rings"] = rings
    elif "rings" not in submitted.errors:
        submitted.removed.append(("answering", "rings"))
    submitted.changes = {"answering": answering}
    return submitted


def _retention(form: Form, t: Translate, installer: Config) -> Submitted:
    submitted = Submitted(values={name: _text(form, name) for name in RETENTION_FIELDS})
    retention: dict[str, int] = {}
    for name in RETENTION_FIELDS:
        number = submitted.check(name, t, checks.whole, submitted.values[name], *RETENTION_DAYS, required=False)
        if number is not None:
            retention[name] = number
        elif name not in submitted.errors:
            submitted.removed.append(("retention", name))  # not set: the installer's or the default period
    if not submitted.errors:
        # What applies once saved: typed, or else what the installer chose.
        kept = {name: retention.get(name, getattr(installer.retention, name)) for name in RETENTION_FIELDS}
        if kept["transcripts_days"] > kept["calls_days"]:
            submitted.errors["transcripts_days"] = t("invalid.transcripts_longer", days=kept["calls_days"])
    submitted.changes = {"retention": retention}
    return submitted


def _cloud(form: Form, config: Config, installer: Config, table: Mapping[str, Any], t: Translate) -> Submitted:
    """The cloud agenda. A secret field left empty keeps the stored secret (never shown);
    its "remove" box takes it out of the page's settings (the installer's applies again).

    Only the chosen agenda's fields are read; the other's stay as saved, but for a
    secret removed: a secret is removed whatever the agenda."""
    now = current_values("cloud", config, None, installer)
    pids = [str(p.get("id")) for p in table.get("practitioners", [])]
    values: dict[str, Any] = {
        "adapter": _text(form, "adapter"),
        "fhir_base_url": _text(form, "fhir_base_url"),
        "fhir_practitioners": {pid: _text(form, f"fhir_p_{pid}") for pid in pids if f"fhir_p_{pid}" in form},
        "caldav_base_url": _text(form, "caldav_base_url"),
        "caldav_username": _text(form, "caldav_username"),
        "caldav_calendars": {pid: _text(form, f"caldav_c_{pid}") for pid in pids if f"caldav_c_{pid}" in form},
        "fhir_token_remove": bool(form.get("fhir_token_remove")) and now["fhir_token_saved"],
        "caldav_password_remove": bool(form.get("caldav_password_remove")) and now["caldav_password_saved"],
    }
    for key in ("fhir_token_set", "fhir_token_saved", "caldav_password_set", "caldav_password_saved",
                "caldav_password_file"):
        values[key] = now[key]
    submitted = Submitted(values=values)
    check = submitted.check
    adapter = check("adapter", t, checks.choice, values["adapter"], ADAPTERS)
    token_text = form.get("fhir_token", "")
    token_text = token_text.strip() if isinstance(token_text, str) else ""
    password = form.get("caldav_password", "")
    password = password if isinstance(password, str) else ""
    sync: dict[str, Any] = {"adapter": adapter}
    if values["fhir_token_remove"]:
        submitted.removed.append(("sync", "fhir", "bearer_token"))
    if values["caldav_password_remove"]:
        # The box refuses a CalDAV connection without a password, even unused: when
        # CalDAV is not the chosen agenda and the installer gives no password, the
        # page's CalDAV settings go with it.
        forget_all = adapter != "caldav" and not _installer_password(installer)
        submitted.removed.append(("sync", "caldav") if forget_all else ("sync", "caldav", "password"))
    for name, typed, removing, used in (("fhir_token", token_text, values["fhir_token_remove"], adapter == "fhir"),
                                        ("caldav_password", password, values["caldav_password_remove"], adapter == "caldav")):
        if typed and removing:
            submitted.errors[name] = t("invalid.type_or_remove")
        elif typed and not used:
            # Typed for the agenda not chosen: saving nothing silently would lose it.
            submitted.errors[name] = t("invalid.secret_unused")
    if adapter == "fhir":
        fhir: dict[str, Any] = {"base_url": check("fhir_base_url", t, checks.url, values["fhir_base_url"], plain=True)}
        fhir["practitioners"] = _mapping(submitted, "fhir", values["fhir_practitioners"], pids, t,
                                         checks.fhir_reference)
        if token_text:
            fhir["bearer_token"] = check("fhir_token", t, checks.bearer_token, token_text)
        sync["fhir"] = fhir
        moved = values["fhir_base_url"].rstrip("/") != now["fhir_base_url"].rstrip("/")
        submitted.sensitive = bool(token_text) or moved
    elif adapter == "caldav":
        base_url = check("caldav_base_url", t, checks.url, values["caldav_base_url"])
        caldav: dict[str, Any] = {
            "base_url": base_url,
            "username": check("caldav_username", t, checks.text, values["caldav_username"], max_len=200),
            # Without a server address, "on the same server" cannot be said: its own refusal is enough.
            "calendars": _mapping(submitted, "caldav", values["caldav_calendars"], pids, t,
                                  lambda text: checks.calendar(text, base_url) if base_url else text),
        }
        if password:
            if values["caldav_password_file"]:
                submitted.errors.setdefault("caldav_password", t("invalid.password_in_file"))
            caldav["password"] = check("caldav_password", t, checks.secret, password)
        else:
            kept = now["caldav_password_set"] and not values["caldav_password_remove"]
            if not kept and not _installer_password(installer):
                submitted.errors.setdefault("caldav_password", t("invalid.password_needed"))
        sync["caldav"] = caldav
        submitted.sensitive = bool(password) or any(
            values[key] != now[key] for key in ("caldav_base_url", "caldav_username"))
    submitted.sensitive = submitted.sensitive or bool(submitted.removed)
    submitted.changes = {"sync": sync}
    return submitted


def _installer_password(installer: Config) -> bool:
    caldav = installer.sync.caldav
    return caldav is not None and bool(caldav.password or caldav.password_file)


def _mapping(
    submitted: Submitted, kind: str, typed: Mapping[str, str], pids: list[str], t: Translate,
    check: Callable[[str], str],
) -> dict[str, str]:
    """Practitioner → place in the cloud agenda, one for each practitioner of the practice."""
    prefix = "fhir_p_" if kind == "fhir" else "caldav_c_"
    mapping: dict[str, str] = {}
    for pid in pids:
        text = typed.get(pid, "")
        if not text:
            # Every practitioner the assistant books for needs a place, or bookings would bounce.
            submitted.errors[f"{prefix}{pid}"] = t("invalid.cloud_missing")
            continue
        place = submitted.check(f"{prefix}{pid}", t, check, text)
        if place is None:
            continue
        if place in mapping.values():
            submitted.errors[f"{prefix}{pid}"] = t("invalid.cloud_twice")
        mapping[pid] = place
    return mapping


# --- Which field a validation message is about -----------------------------------------


def field_of(section: str, detail: str, submitted: Submitted) -> str | None:
    """The field holding the setting a ``ConfigError`` names first, or None (the whole form)."""
    if section in ("practitioners", "reasons"):
        match = _ROW.search(detail)
        if match is None or match[1] != section or int(match[2]) > len(submitted.rows):
            return None
        row = submitted.rows[int(match[2]) - 1]
        prefix = "p" if section == "practitioners" else "r"
        keys = (("display_name", "last_name", "aliases", "hours") if prefix == "p"
                else ("label", "duration_min", "practitioner_ids", "keywords"))
        names = {key: f"{prefix}{row}_{'who' if key == 'practitioner_ids' else key}" for key in keys}
        return _first_named(detail[match.end():], names) or f"{prefix}{row}_{keys[0]}"
    keys: dict[str, str] = {}
    match section:
        case "practice":
            keys = {key: key for key in PRACTICE_FIELDS}
        case "hours":
            keys = {f"hours.{day}": day for day in WEEKDAYS}
        case "rules":
            keys = {key: key for key in (*RULE_NUMBERS, "kept_for_staff")}
        case "answering":
            keys = {f"answering.{key}": key for key in ("during_hours", "outside_hours", "rings", "hours")}
        case "retention":
            keys = {f"retention.{key}": key for key in RETENTION_FIELDS}
        case "cloud":
            values = submitted.values
            keys = {"sync.adapter": "adapter", "fhir.base_url": "fhir_base_url", "fhir.bearer_token": "fhir_token",
                    "caldav.base_url": "caldav_base_url", "caldav.username": "caldav_username",
                    "caldav: give": "caldav_password", "caldav.password": "caldav_password"}
            # "sync.fhir.practitioners has no entry for 'x'": the practitioner's own field.
            for pid in values["fhir_practitioners"]:
                keys[f"fhir.practitioners.{pid}"] = f"fhir_p_{pid}"
                if values["adapter"] == "fhir":
                    keys[f"'{pid}'"] = f"fhir_p_{pid}"
            first = next(iter(values["fhir_practitioners"]), None)
            if first:
                keys["fhir.practitioners"] = f"fhir_p_{first}"
            for pid in values["caldav_calendars"]:
                keys[f"caldav.calendars.{pid}"] = f"caldav_c_{pid}"
                if values["adapter"] == "caldav":
                    keys[f"'{pid}'"] = f"caldav_c_{pid}"
            first = next(iter(values["caldav_calendars"]), None)
            if first:
                keys["caldav.calendars"] = f"caldav_c_{first}"
    return _first_named(detail, keys)


def _first_named(detail: str, names: Mapping[str, str]) -> str | None:
    """The field of the setting named earliest in ``detail`` (the longest name wins a tie)."""
    best: tuple[int, int, str] | None = None
    for key, name in names.items():
        found = re.search(rf"(?<![A-Za-z0-9_]){re.escape(key)}(?![A-Za-z0-9_])", detail)
        if found and (best is None or (found.start(), -len(key)) < (best[0], best[1])):
            best = (found.start(), -len(key), name)
    return best[2] if best else None


_LABELS: Final = {
    "name": "settings.practice_name", "closures": "settings.closures_field", "preset": "settings.when_answer",
    "fhir_base_url": "settings.base_url", "caldav_base_url": "settings.base_url", "fhir_token": "settings.token",
    "caldav_username": "settings.username", "caldav_password": "settings.password", "who": "settings.who",
}


def field_label(section: str, name: str, t: Translate, practitioners: Mapping[str, str]) -> str:
    """The label the page shows for a field, to name it in a sentence."""
    for prefix, key in (("fhir_p_", "settings.fhir_practitioner"), ("caldav_c_", "settings.calendar")):
        if name.startswith(prefix):
            pid = name.removeprefix(prefix)
            return t(key, name=practitioners.get(pid, pid))
    if section == "hours":
        return t(f"weekday.{name}")
    row = re.fullmatch(r"[pr]\d+_(\w+)", name)
    key = row[1] if row else name
    if key == "hours":
        return t("settings.own_hours" if row else "settings.answer_hours")
    return t(_LABELS.get(key, f"settings.{key}"))
