"""Scenario files for ``appliance simulate``: a public contract (README, "Scenarios").

Every mistake is reported as ``file:line: problem`` so whoever wrote the file can
fix it without reading code; nothing here raises anything but ``ScenarioError``.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, Final

from appliance.dialogue.reply import ASKS
from appliance.errors import ScenarioError
from appliance.simulate.devices import device_of

OUTCOMES: Final = ("booked", "cancelled", "rescheduled", "message", "emergency", "transferred", "abandoned", "answered")
CATEGORIES: Final = ("prescription", "certificate", "sick_note", "results", "admin", "callback", "emergency", "other")
CHANNELS: Final = ("g711-ulaw", "g711-alaw", "linear")
WEEKDAYS: Final = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_WEEKDAYS_FR: Final = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")
_TOP: Final = {"title", "now", "caller_id", "practice", "line", "caller", "turn", "expect"}
_CALLER: Final = {"voice", "channel", "noise_db"}
_TURN: Final = {"say", "dtmf", "silence_s", "hangup", "when"}
_EXPECT: Final = {
    "outcome",
    "practitioner",
    "reason",
    "weekday",
    "date",
    "time_from",
    "time_to",
    "patient_last_name",
    "patient_first_name",
    "birth_date",
    "phone",
    "message_category",
}


@dataclass(frozen=True, slots=True)
class CallerVoice:
    voice: str = "jf_gongitsune"
    channel: str = "g711-ulaw"
    noise_db: float | None = None


@dataclass(frozen=True, slots=True)
class ScenarioTurn:
    say: str | None = None
    dtmf: str | None = None
    silence_s: float | None = None
    hangup: bool = False
    when: str | None = None
    line: int = 0


@dataclass(frozen=True, slots=True)
class Expect:
    outcome: str | None = None
    practitioner: str | None = None
    reason: str | None = None
    weekday: int | None = None
    date: date | None = None
    time_from: time | None = None
    time_to: time | None = None
    patient_last_name: str | None = None
    patient_first_name: str | None = None
    birth_date: date | None = None
    phone: str | None = None
    message_category: str | None = None


@dataclass(frozen=True, slots=True)
class Scenario:
    path: Path
    title: str
    now: datetime
    caller_id: str | None
    practice: str
    line: str
    """``sim`` (the in-process line) or a simulated device: ``sim:usr5637``, ``sim:cx93001``, ``sim:sim7600``."""
    caller: CallerVoice
    turns: tuple[ScenarioTurn, ...]
    expect: Expect


class _Lines:
    """Finds the line of a key in the source, so messages can point at it."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()

    def of_key(self, key: str, after: int = 0) -> int:
        pattern = re.compile(rf"^\s*{re.escape(key)}\s*=")
        for number, line in enumerate(self.lines[after:], start=after + 1):
            if pattern.match(line):
                return number
        return after or 1

    def of_table(self, header: str, nth: int = 0) -> int:
        seen = -1
        for number, line in enumerate(self.lines, start=1):
            if line.strip().replace(" ", "") == header:
                seen += 1
                if seen == nth:
                    return number
        return 1

    def error(self, line: int, problem: str) -> ScenarioError:
        return ScenarioError(f"{self.path}:{line}: {problem}")


def load_scenario(path: Path) -> Scenario:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ScenarioError(f"{path}: cannot read the scenario ({err.strerror})") from err
    except UnicodeDecodeError as err:
        raise ScenarioError(f"{path}: not UTF-8 text") from err
    src = _Lines(path, text)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        line = getattr(err, "lineno", None) or _line_from_message(str(err))
        raise src.error(line, f"not valid TOML: {str(err).split(' (at line')[0]}") from err
    return _parse(raw, src)


def _line_from_message(message: str) -> int:
    found = re.search(r"line (\d+)", message)
    return int(found.group(1)) if found else 1


def _parse(raw: dict[str, Any], src: _Lines) -> Scenario:
    for key in raw:
        if key not in _TOP:
            raise src.error(src.of_key(key), f"unknown key '{key}' (known: {', '.join(sorted(_TOP))})")
    for key in ("now", "practice"):
        if key not in raw:
            raise src.error(1, f"missing key '{key}'")

    now = raw["now"]
    if isinstance(now, str):
        try:
            now = datetime.fromisoformat(now)
        except ValueError:
            raise src.error(src.of_key("now"), f"'now' is not an ISO 8601 date-time: {raw['now']!r}") from None
    if not isinstance(now, datetime) or now.tzinfo is None:
        raise src.error(src.of_key("now"), "'now' must be a date-time with its UTC offset, e.g. 2026-11-24T09:00:00+01:00")

    caller_id = raw.get("caller_id", "")
    if not isinstance(caller_id, str) or (caller_id and not re.fullmatch(r"\+?[0-9 ]{3,20}", caller_id)):
        raise src.error(src.of_key("caller_id"), "'caller_id' must be a phone number, or \"\" for a withheld number")

    practice = raw["practice"]
    if not isinstance(practice, str) or not practice:
        raise src.error(src.of_key("practice"), "'practice' must be a built-in name such as \"demo\" or a file path")

    line = raw.get("line", "sim")
    try:
        device_of(line if isinstance(line, str) else repr(line))
    except ScenarioError as err:
        raise src.error(src.of_key("line"), err.detail) from None
    caller = _parse_caller(raw.get("caller", {}), src)
    turns = _parse_turns(raw.get("turn", []), src)
    expect = _parse_expect(raw.get("expect", {}), src)
    return Scenario(
        path=src.path,
        title=str(raw.get("title", src.path.stem)),
        now=now,
        caller_id=caller_id.replace(" ", "") or None,
        practice=practice,
        line=line,
        caller=caller,
        turns=turns,
        expect=expect,
    )


def _parse_caller(raw: Any, src: _Lines) -> CallerVoice:
    line = src.of_table("[caller]")
    if not isinstance(raw, dict):
        raise src.error(line, "[caller] must be a table")
    for key in raw:
        if key not in _CALLER:
            raise src.error(src.of_key(key, line), f"unknown key '{key}' in [caller] (known: {', '.join(sorted(_CALLER))})")
    channel = raw.get("channel", "g711-ulaw")
    if channel not in CHANNELS:
        raise src.error(src.of_key("channel", line), f"[caller] channel must be one of {', '.join(CHANNELS)}")
    noise = raw.get("noise_db")
    if noise is not None and (not isinstance(noise, int | float) or not -90 <= noise <= 0):
        raise src.error(src.of_key("noise_db", line), "[caller] noise_db must be a level in dBFS between -90 and 0")
    voice = raw.get("voice", "jf_gongitsune")
    if not isinstance(voice, str):
        raise src.error(src.of_key("voice", line), "[caller] voice must be a voice name")
    return CallerVoice(voice=voice, channel=channel, noise_db=None if noise is None else float(noise))


def _parse_turns(raw: Any, src: _Lines) -> tuple[ScenarioTurn, ...]:
    if not isinstance(raw, list):
        raise src.error(src.of_key("turn"), "turns are written as [[turn]] tables")
    turns = []
    for i, entry in enumerate(raw):
        line = src.of_table("[[turn]]", i)
        for key in entry:
            if key not in _TURN:
                raise src.error(src.of_key(key, line), f"unknown key '{key}' in [[turn]] (known: {', '.join(sorted(_TURN))})")
        acts = [k for k in ("say", "dtmf", "silence_s", "hangup") if k in entry]
        if len(acts) != 1:
            raise src.error(line, "each [[turn]] needs exactly one of say, dtmf, silence_s, hangup")
        act = acts[0]
        value = entry[act]
        if act == "say" and (not isinstance(value, str) or not value.strip()):
            raise src.error(src.of_key("say", line), "'say' must be non-empty text")
        if act == "dtmf" and (not isinstance(value, str) or not re.fullmatch(r"[0-9*#]+", value)):
            raise src.error(src.of_key("dtmf", line), "'dtmf' must be keys 0-9, * or #")
        if act == "silence_s" and (not isinstance(value, int | float) or not 0 < value <= 120):
            raise src.error(src.of_key("silence_s", line), "'silence_s' must be a number of seconds, 0-120")
        if act == "hangup" and value is not True:
            raise src.error(src.of_key("hangup", line), "'hangup' must be true")
        when = entry.get("when")
        if when is not None and when not in ASKS:
            raise src.error(src.of_key("when", line), f"'when' must be an ask: {', '.join(ASKS)}")
        turns.append(
            ScenarioTurn(
                say=value if act == "say" else None,
                dtmf=value if act == "dtmf" else None,
                silence_s=float(value) if act == "silence_s" else None,
                hangup=act == "hangup",
                when=when,
                line=line,
            )
        )
    return tuple(turns)


def _parse_expect(raw: Any, src: _Lines) -> Expect:
    line = src.of_table("[expect]")
    if not isinstance(raw, dict):
        raise src.error(line, "[expect] must be a table")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        at = src.of_key(key, line)
        if key not in _EXPECT:
            raise src.error(at, f"unknown key '{key}' in [expect] (known: {', '.join(sorted(_EXPECT))})")
        if key == "outcome" and value not in OUTCOMES:
            raise src.error(at, f"outcome must be one of {', '.join(OUTCOMES)}")
        elif key == "message_category" and value not in CATEGORIES:
            raise src.error(at, f"message_category must be one of {', '.join(CATEGORIES)}")
        elif key == "weekday":
            name = str(value).lower()
            if name in WEEKDAYS:
                value = WEEKDAYS.index(name)
            elif name in _WEEKDAYS_FR:
                value = _WEEKDAYS_FR.index(name)
            else:
                raise src.error(at, f"weekday must be a day name such as 'tuesday' or 'mardi', got {value!r}")
        elif key in ("date", "birth_date"):
            value = _as_date(value, key, at, src)
        elif key in ("time_from", "time_to"):
            value = _as_time(value, key, at, src)
        elif not isinstance(value, str):
            raise src.error(at, f"{key} must be text")
        values[key] = value
    return Expect(**values)


def _as_date(value: Any, key: str, line: int, src: _Lines) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise src.error(line, f"{key} must be a date YYYY-MM-DD, got {value!r}") from None


def _as_time(value: Any, key: str, line: int, src: _Lines) -> time:
    if isinstance(value, time):
        return value
    try:
        return time.fromisoformat(str(value))
    except ValueError:
        raise src.error(line, f"{key} must be a time HH:MM, got {value!r}") from None
