"""The Settings page's forms: what each section shows, and what a submitted one asks for.

Pure translation between text fields and the shapes ``settings_file`` takes (a
practice table shaped like ``practices/demo.toml``; overlay tables for
``[answering]``, ``[retention]``, ``[sync]``). No rule of the box is checked
here: whether a value is acceptable is decided by ``save_practice`` and
``save_settings``, the same validation the box runs at start. Only text that
cannot even be put into that shape (a number that is not one, a date nobody can
read) is sent back from here, next to its field.

Field names are the page's; ``field_of`` maps a validation message, which names
a setting (``retention.messages_days``, ``[[reasons]] #2 ... duration_min``),
back to the field that holds it.
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
from appliance.config import Config
from appliance.errors import ConfigError

Translate = Callable[..., str]
Form = Mapping[str, Any]  # a Starlette FormData, or a dict in tests

PRACTICE_SECTIONS: Final = ("practice", "hours", "closures", "practitioners", "reasons", "rules")
CONFIG_SECTIONS: Final = ("answering", "retention", "cloud")
SECTIONS: Final = PRACTICE_SECTIONS + CONFIG_SECTIONS
PRACTICE_FIELDS: Final = ("name", "address", "phone", "emergency_number", "data_notice")
RULE_NUMBERS: Final = ("min_notice_min", "horizon_days", "slot_step_min")
RETENTION_FIELDS: Final = ("transcripts_days", "messages_days", "calls_days", "outbox_days", "appointments_days")
MODES: Final = ("now", "after_rings", "never")
PRESETS: Final = ("office", "extended", "always", "rings", "custom")
ADAPTERS: Final = ("none", "fhir", "caldav")
# What "extended hours" means when the practice has not written its own ranges yet.
EXTENDED_DEFAULT: Final = ("mon-fri 08:00-20:00", "sat 08:00-13:00")
_DAY_ABBR: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DATE: Final = r"\d{4}-\d{2}-\d{2}|\d{1,2}/\d{1,2}/\d{4}"
_CLOSURE: Final = re.compile(rf"^({_DATE})(?:\s*(?:-|–|—|au|à)\s*({_DATE}))?\s*[:,–-]?\s*(.*)$")
_ROW: Final = re.compile(r"\[\[(practitioners|reasons)\]\] #(\d+)")


@dataclass
class Submitted:
    """One section's form, read back: what to show again, what is wrong, what to save."""

    values: dict[str, Any]
    errors: dict[str, str] = field(default_factory=dict)
    table: dict[str, Any] | None = None
    """The whole practice table with this section changed (practice sections)."""
    changes: dict[str, Any] | None = None
    """What to lay over the settings (configuration sections)."""
    rows: list[int] = field(default_factory=list)
    """For practitioners and reasons: the form row of each table entry, for error messages."""


# --- What the page shows ---------------------------------------------------------------


def current_values(section: str, config: Config, table: Mapping[str, Any] | None) -> dict[str, Any]:
    """The section's fields as they are configured now (secrets never included)."""
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
        values: dict[str, Any] = {
            "adapter": sync.adapter,
            "fhir_base_url": fhir.base_url if fhir else "",
            "fhir_practitioners": dict(fhir.practitioners) if fhir else {},
            "fhir_token_set": bool(fhir and fhir.bearer_token),
            "caldav_base_url": caldav.base_url if caldav else "",
            "caldav_username": caldav.username if caldav else "",
            "caldav_calendars": dict(caldav.calendars) if caldav else {},
            "caldav_password_set": bool(caldav and (caldav.password or caldav.password_file)),
        }
        return values
    raise KeyError(section)


def _practice_values(section: str, table: Mapping[str, Any]) -> dict[str, Any]:
    if section == "practice":
        return {key: str(table.get(key, "")) for key in PRACTICE_FIELDS}
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
    defaults = {"min_notice_min": 60, "horizon_days": 60, "slot_step_min": 10}
    values = {name: str(rules.get(name, defaults[name])) for name in RULE_NUMBERS}
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


def read_form(section: str, form: Form, config: Config, table: Mapping[str, Any] | None, t: Translate) -> Submitted:
    """The section's form as values to show again, plus the table or changes to save."""
    if section in PRACTICE_SECTIONS:
        reader = _PRACTICE_READERS[section]
        return reader(form, copy.deepcopy(dict(table or {})), t)
    if section == "answering":
        return _answering(form, t)
    if section == "retention":
        return _retention(form, t)
    return _cloud(form, config, t)


def _text(form: Form, name: str) -> str:
    value = form.get(name, "")
    return value.strip() if isinstance(value, str) else ""


def _list(text: str, separators: str = ",;\n") -> list[str]:
    return [part.strip() for part in re.split(f"[{re.escape(separators)}]", text) if part.strip()]


def _whole(submitted: Submitted, name: str, t: Translate) -> int | None:
    text = str(submitted.values.get(name, "")).strip()
    if re.fullmatch(r"-?\d{1,9}", text):
        return int(text)
    submitted.errors[name] = t("settings.not_a_number")
    return None


def _practice(form: Form, table: dict[str, Any], t: Translate) -> Submitted:
    submitted = Submitted(values={key: _text(form, key) for key in PRACTICE_FIELDS})
    table.update(submitted.values)
    submitted.table = table
    return submitted


def _hours(form: Form, table: dict[str, Any], t: Translate) -> Submitted:
    submitted = Submitted(values={day: _text(form, day) for day in WEEKDAYS})
    table["hours"] = {day: _list(text, ",;") for day, text in submitted.values.items() if _list(text, ",;")}
    submitted.table = table
    return submitted


def _closures(form: Form, table: dict[str, Any], t: Translate) -> Submitted:
    text = str(form.get("closures", ""))
    submitted = Submitted(values={"closures": text.strip()})
    closures: list[dict[str, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        match = _CLOSURE.match(line.strip())
        start = _parse_day(match[1]) if match else None
        end = _parse_day(match[2] or match[1]) if match else None
        if match is None or start is None or end is None:
            submitted.errors["closures"] = t("settings.closure_unreadable", n=number, line=line.strip())
            return submitted
        closures.append({"start": start, "end": end, "reason": match[3].strip()})
    table["closures"] = closures
    submitted.table = table
    return submitted


def _parse_day(text: str) -> date | None:
    try:
        if "/" in text:
            day, month, year = (int(part) for part in text.split("/"))
            return date(year, month, day)
        return date.fromisoformat(text)
    except ValueError:
        return None


def _practitioners(form: Form, table: dict[str, Any], t: Translate) -> Submitted:
    before = {p["id"]: p for p in table.get("practitioners", [])}
    rows: list[dict[str, Any]] = []
    entries: list[dict[str, Any]] = []
    submitted = Submitted(values={"rows": rows})
    for i in _row_numbers(form, "p"):
        row = {key: _text(form, f"p{i}_{key}") for key in ("id", "display_name", "last_name", "aliases")}
        row["hours"] = str(form.get(f"p{i}_hours", "")).strip()
        rows.append(row)
        if form.get(f"p{i}_remove") or (not row["id"] and not any(row[k] for k in ("display_name", "last_name"))):
            continue  # removed, or the empty row left for a new practitioner
        entry = dict(before.get(row["id"], {}))
        entry.update(id=row["id"] or _new_id(row["last_name"] or row["display_name"], [e["id"] for e in entries] + list(before)),
                     display_name=row["display_name"], last_name=row["last_name"], aliases=_list(row["aliases"], ",;"))
        entry.pop("hours", None)
        if row["hours"]:
            try:
                entry["hours"] = _hours_table(row["hours"], where=t("settings.own_hours"))
            except ConfigError as err:
                submitted.errors[f"p{len(rows) - 1}_hours"] = err.detail
        submitted.rows.append(len(rows) - 1)
        entries.append(entry)
    if not any(not r["id"] for r in rows):
        rows.append(_blank_practitioner())
    table["practitioners"] = entries
    submitted.table = table
    return submitted


def _hours_table(text: str, *, where: str) -> dict[str, list[str]]:
    """``mon-fri 08:30-12:30`` lines as a practice ``[hours]`` table."""
    hours: dict[str, list[str]] = {}
    for weekly in parse_ranges(_list(text, ",;\n"), where=where):
        hours.setdefault(WEEKDAYS[weekly.weekday], []).append(f"{weekly.start:%H:%M}-{weekly.end:%H:%M}")
    return hours


def _reasons(form: Form, table: dict[str, Any], t: Translate) -> Submitted:
    before = {r["id"]: r for r in table.get("reasons", [])}
    rows: list[dict[str, Any]] = []
    entries: list[dict[str, Any]] = []
    submitted = Submitted(values={"rows": rows})
    getlist = getattr(form, "getlist", lambda name: form.get(name) or [])
    for i in _row_numbers(form, "r"):
        row: dict[str, Any] = {key: _text(form, f"r{i}_{key}") for key in ("id", "label", "duration_min", "keywords")}
        row["who"] = [str(v) for v in getlist(f"r{i}_who")]
        row["new_patients"] = bool(form.get(f"r{i}_new_patients"))
        rows.append(row)
        if form.get(f"r{i}_remove") or (not row["id"] and not row["label"]):
            continue
        entry = dict(before.get(row["id"], {}))
        entry.update(id=row["id"] or _new_id(row["label"], [e["id"] for e in entries] + list(before)),
                     label=row["label"], practitioner_ids=row["who"], new_patients=row["new_patients"],
                     keywords=_list(row["keywords"], ",;"))
        if re.fullmatch(r"\d{1,4}", row["duration_min"]):
            entry["duration_min"] = int(row["duration_min"])
        else:
            submitted.errors[f"r{len(rows) - 1}_duration_min"] = t("settings.not_a_number")
        submitted.rows.append(len(rows) - 1)
        entries.append(entry)
    if not any(not r["id"] for r in rows):
        rows.append(_blank_reason())
    table["reasons"] = entries
    submitted.table = table
    return submitted


def _row_numbers(form: Form, prefix: str) -> list[int]:
    numbers = []
    while f"{prefix}{len(numbers)}_id" in form and len(numbers) < 100:
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


def _rules(form: Form, table: dict[str, Any], t: Translate) -> Submitted:
    submitted = Submitted(values={name: _text(form, name) for name in RULE_NUMBERS})
    submitted.values["kept_for_staff"] = str(form.get("kept_for_staff", "")).strip()
    rules = dict(table.get("rules", {}))
    for name in RULE_NUMBERS:
        number = _whole(submitted, name, t)
        if number is not None:
            rules[name] = number
    rules["kept_for_staff"] = _list(submitted.values["kept_for_staff"], ",;\n")
    table["rules"] = rules
    submitted.table = table
    return submitted


_PRACTICE_READERS: Final = {
    "practice": _practice, "hours": _hours, "closures": _closures,
    "practitioners": _practitioners, "reasons": _reasons, "rules": _rules,
}


def _answering(form: Form, t: Translate) -> Submitted:
    values = {key: _text(form, key) for key in ("preset", "during_hours", "outside_hours", "rings")}
    values["hours"] = str(form.get("hours", "")).strip()
    submitted = Submitted(values=values)
    hours = _list(values["hours"], ",;\n")
    match values["preset"]:
        case "office":
            during, outside, hours = "now", "never", []
        case "extended":
            during, outside, hours = "now", "never", hours or list(EXTENDED_DEFAULT)
        case "always":
            during, outside = "now", "now"
        case "rings":
            during, outside = "after_rings", "now"
        case _:
            during, outside = values["during_hours"], values["outside_hours"]
    answering: dict[str, Any] = {"during_hours": during, "outside_hours": outside, "hours": hours}
    rings = _whole(submitted, "rings", t)
    if rings is not None:
        answering["rings"] = rings
    submitted.changes = {"answering": answering}
    return submitted


def _retention(form: Form, t: Translate) -> Submitted:
    submitted = Submitted(values={name: _text(form, name) for name in RETENTION_FIELDS})
    retention = {name: number for name in RETENTION_FIELDS if (number := _whole(submitted, name, t)) is not None}
    submitted.changes = {"retention": retention}
    return submitted


def _cloud(form: Form, config: Config, t: Translate) -> Submitted:
    """The cloud agenda; an empty secret field keeps the stored secret (never shown)."""
    now = current_values("cloud", config, None)
    values: dict[str, Any] = {
        "adapter": _text(form, "adapter"),
        "fhir_base_url": _text(form, "fhir_base_url"),
        "fhir_practitioners": {
            key.removeprefix("fhir_p_"): _text(form, key)
            for key in form if isinstance(key, str) and key.startswith("fhir_p_")
        },
        "fhir_token_set": now["fhir_token_set"],
        "caldav_base_url": _text(form, "caldav_base_url"),
        "caldav_username": _text(form, "caldav_username"),
        "caldav_calendars": {
            key.removeprefix("caldav_c_"): _text(form, key)
            for key in form if isinstance(key, str) and key.startswith("caldav_c_")
        },
        "caldav_password_set": now["caldav_password_set"],
    }
    submitted = Submitted(values=values)
    sync: dict[str, Any] = {"adapter": values["adapter"]}
    if values["adapter"] == "fhir":
        fhir: dict[str, Any] = {"base_url": values["fhir_base_url"],
                                "practitioners": {k: v for k, v in values["fhir_practitioners"].items() if v}}
        if token := _text(form, "fhir_token"):
            fhir["bearer_token"] = token
        sync["fhir"] = fhir
    elif values["adapter"] == "caldav":
        caldav: dict[str, Any] = {"base_url": values["caldav_base_url"], "username": values["caldav_username"],
                                  "calendars": {k: v for k, v in values["caldav_calendars"].items() if v}}
        if password := str(form.get("caldav_password", "")):
            caldav["password"] = password
        sync["caldav"] = caldav
    submitted.changes = {"sync": sync}
    return submitted


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
