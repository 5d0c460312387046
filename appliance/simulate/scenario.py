"""Scenario files for ``appliance simulate``: a public contract (README, "Scenarios").

Every mistake is reported as ``file:line: problem`` so whoever wrote the file can
fix it without reading code; nothing here raises anything but ``ScenarioError``.

Besides the call itself (``now``, ``caller_id``, ``[[turn]]``, ``[expect]``), a
scenario carries what the evaluation of the secretary needs:

- ``category``: which figure of ``appliance scenarios`` / ``make bench`` it counts
  in (``CATEGORIES``); derived from the expected outcome when left out.
- ``pending = "<reason>"``: a known failure of the dialogue, reported as an
  expected failure until fixed (a pending scenario that passes is an error, so
  the mark cannot outlive the bug).
- ``audio = true``: also run in audio mode by ``make bench`` (a small subset,
  since audio runs take real model time).
- ``[[appointment]]``: appointments that exist before the call (last_name,
  first_name, birth_date, practitioner, start, reason; phone optional), booked
  through the store like any other, for calls that cancel or move one.
- a ``[[turn]]`` may carry ``emergency_cue = true``: the caller's first words
  that call for the 15. From that turn on the assistant may say nothing but the
  emergency instruction (``emergency_rule``).
- ``[expect]`` adds ``message_urgency``, ``said`` / ``not_said`` (words some
  reply must contain / no reply may contain) and ``max_caller_turns``.
- ``languages = ["fr", "en"]``: the languages the practice offers callers in
  this call (the practice's own language first); a ``say`` turn may carry the
  ``language`` the recogniser detected in it (``Heard.language``). ``[expect]``
  then checks ``language`` (the one the call ended in), and of the message for
  the staff ``message_phone`` and ``message_summary`` (words its summary holds).
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
from appliance.errors import ConfigError
from appliance.line.sim.devices import GSM_PROFILES, device_profile
from appliance.store.inbox import URGENCIES

NOT_ANSWERED: Final = "not_answered"  # the box never had the call: the caller gave up while it rang
OUTCOMES: Final = (
    "booked", "cancelled", "rescheduled", "message", "emergency", "transferred", "abandoned", "answered", NOT_ANSWERED
)
CATEGORIES: Final = ("prescription", "certificate", "sick_note", "results", "admin", "callback", "emergency", "other")
CHANNELS: Final = ("g711-ulaw", "g711-alaw", "linear")
WEEKDAYS: Final = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_WEEKDAYS_FR: Final = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")
_TOP: Final = {
    "title", "now", "caller_id", "practice", "line", "line_faults", "caller", "turn", "expect",
    "category", "pending", "audio", "appointment", "languages",
}  # fmt: skip
LANGUAGES: Final = ("fr", "de", "en")
"""Languages a scenario may offer or mark a turn with: those the dialogue has templates for."""
# What a scenario counts towards in the evaluation figures (``appliance.simulate.evaluation``).
# "not_emergency" is the false-alarm set: alarming words that are no emergency.
SCENARIO_CATEGORIES: Final = (
    "booking", "cancel", "move", "message", "question", "emergency", "not_emergency", "advice",
    "privacy", "failure", "misuse", "line", "other",
)  # fmt: skip
_CATEGORY_OF_OUTCOME: Final = {
    "booked": "booking", "cancelled": "cancel", "rescheduled": "move", "message": "message",
    "answered": "question", "emergency": "emergency",
}  # fmt: skip
_APPOINTMENT: Final = {"last_name", "first_name", "birth_date", "phone", "practitioner", "start", "reason"}
_APPOINTMENT_REQUIRED: Final = ("last_name", "first_name", "birth_date", "practitioner", "start", "reason")
_CALLER: Final = {"voice", "channel", "noise_db"}
_TURN: Final = {
    "say", "dtmf", "silence_s", "hangup", "fault", "when", "while_box_speaks", "hold_s", "fault_s", "emergency_cue",
    "language",
}  # fmt: skip
_ACTS: Final = ("say", "dtmf", "silence_s", "hangup", "fault")
_LINE_FAULTS: Final = {"hangup_signal", "random_chunks", "abandon_at_ring", "cpcmreg_refusals"}
# How the caller's hang-up shows on an analog line (telephony.md 1.10): the
# modem's own event and the tone, the tone alone, loop drop, dead silence, or nothing.
HANGUP_SIGNALS: Final = ("dial_tone", "dial_tone_only", "busy", "loop_drop", "silence", "never")
# Mid-call faults a [[turn]] can inject, per kind of simulated device.
DEVICE_FAULTS: Final = {
    "modem": ("extension_pickup", "call_waiting", "stops_answering", "unplug_replug", "garbage"),
    "gsm": ("port_vanishes", "uplink_stall", "call_waiting", "garbage"),
}
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
    "end_reason",
    "hangup_within_s",
    "line_ready_within_s",
    "message_urgency",
    "said",
    "not_said",
    "max_caller_turns",
    "language",
    "message_phone",
    "message_summary",
}


@dataclass(frozen=True, slots=True)
class CallerVoice:
    voice: str = "jf_gongitsune"
    channel: str = "g711-ulaw"
    noise_db: float | None = None


@dataclass(frozen=True, slots=True)
class LineFaults:
    """How the line misbehaves for the whole call (device lines; README, "Line faults")."""

    hangup_signal: str | None = None
    """How the caller's hang-up shows on an analog line; None = the device's usual way."""
    random_chunks: int | None = None
    """Seed: the device writes in random 1-700 byte pieces (split DLE pairs, URCs)."""
    abandon_at_ring: int | None = None
    """The caller hangs up at this ring, before the box answered."""
    cpcmreg_refusals: int = 0
    """GSM: the module refuses AT+CPCMREG=1 this many times after the call is up."""


@dataclass(frozen=True, slots=True)
class ScenarioTurn:
    say: str | None = None
    dtmf: str | None = None
    silence_s: float | None = None
    hangup: bool = False
    fault: str | None = None
    """A mid-call line fault, one of ``DEVICE_FAULTS`` for the scenario's device."""
    fault_s: float = 3.0
    """How long ``stops_answering`` / ``unplug_replug`` last before the device is back."""
    when: str | None = None
    while_box_speaks: bool = False
    """Act one second into the assistant's next reply instead of after it."""
    hold_s: float = 0.1
    """How long each key of ``dtmf`` is held down."""
    emergency_cue: bool = False
    """The caller's first words that call for the 15: only the emergency instruction may follow."""
    language: str | None = None
    """The language the recogniser detected in these words (``Heard.language``); None: none detected."""
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
    end_reason: str | None = None
    hangup_within_s: float | None = None
    line_ready_within_s: float | None = None
    message_urgency: str | None = None
    """Of the call's most urgent message for the staff: one of the inbox's ``URGENCIES``."""
    said: tuple[str, ...] = ()
    """Words some assistant reply must contain (whole words; case, accents, punctuation ignored)."""
    not_said: tuple[str, ...] = ()
    """Words no assistant reply may contain (same matching as ``said``)."""
    max_caller_turns: int | None = None
    """At most this many caller turns up to the booking, or in the whole call without one."""
    language: str | None = None
    """The language the call ended in (its last ``language`` event, else the practice's)."""
    message_phone: str | None = None
    """The number the message for the staff says to call back."""
    message_summary: tuple[str, ...] = ()
    """Words the summary of the message for the staff must contain (matched as ``said``)."""


@dataclass(frozen=True, slots=True)
class SeededAppointment:
    """An appointment that exists before the call (``[[appointment]]``)."""

    last_name: str
    first_name: str
    birth_date: date
    practitioner: str
    """A practitioner id of the scenario's practice."""
    start: datetime
    """Aware; the visit lasts as long as the practice says for its reason."""
    reason: str
    """A visit reason id of the scenario's practice."""
    phone: str = ""
    line: int = 0
    """Where the table starts in the file, for messages about it."""


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
    line_faults: LineFaults = LineFaults()
    category: str = "other"
    """One of ``SCENARIO_CATEGORIES``: what the scenario counts towards in the evaluation."""
    pending: str | None = None
    """Why the scenario is known to fail today; None when it must pass."""
    audio: bool = False
    """Part of the audio-mode subset ``make bench`` runs with the real models."""
    appointments: tuple[SeededAppointment, ...] = ()
    languages: tuple[str, ...] | None = None
    """The languages offered to the caller, the practice's own first; None: the configuration's."""

    @property
    def device_kind(self) -> str | None:
        """"modem", "gsm", or None for the in-process ``sim`` line."""
        profile = device_of(self.line)
        if profile is None:
            return None
        return "gsm" if profile in GSM_PROFILES else "modem"


def device_of(line: str) -> str | None:
    """The simulator profile a scenario's ``line`` names; None for the plain ``sim`` line."""
    if line == "sim":
        return None
    kind, _, name = line.partition(":")
    if kind != "sim":
        raise ScenarioError(f"a scenario's line is 'sim' or a simulated device such as 'sim:usr5637', got {line!r}")
    try:
        return device_profile(name)
    except ConfigError as err:
        raise ScenarioError(err.detail) from None


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
        profile = device_of(line if isinstance(line, str) else repr(line))
    except ScenarioError as err:
        raise src.error(src.of_key("line"), err.detail) from None
    kind = None if profile is None else "gsm" if profile in GSM_PROFILES else "modem"
    caller = _parse_caller(raw.get("caller", {}), src)
    turns = _parse_turns(raw.get("turn", []), src, kind)
    expect = _parse_expect(raw.get("expect", {}), src)
    faults = _parse_line_faults(raw.get("line_faults", {}), src, kind)
    category = _parse_category(raw, expect, src)
    cue = next((t for t in turns if t.emergency_cue), None)
    if cue is not None and expect.outcome != "emergency":
        raise src.error(cue.line, "'emergency_cue' marks the cue of a scenario whose outcome is 'emergency'")
    pending = raw.get("pending")
    if pending is not None and (not isinstance(pending, str) or not pending.strip()):
        raise src.error(src.of_key("pending"), "'pending' is the reason the scenario fails today, as text")
    audio = raw.get("audio", False)
    if not isinstance(audio, bool):
        raise src.error(src.of_key("audio"), "'audio' is true or false")
    seeded = _parse_appointments(raw.get("appointment", []), src)
    languages = _parse_languages(raw.get("languages"), src)
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
        line_faults=faults,
        category=category,
        pending=pending.strip() if pending else None,
        audio=audio,
        appointments=seeded,
        languages=languages,
    )


def _parse_languages(raw: Any, src: _Lines) -> tuple[str, ...] | None:
    if raw is None:
        return None
    at = src.of_key("languages")
    if not isinstance(raw, list) or not raw or not all(isinstance(x, str) for x in raw):
        raise src.error(at, 'languages is a list of language codes, the practice\'s own first, e.g. ["fr", "en"]')
    unknown = [x for x in raw if x not in LANGUAGES]
    if unknown:
        raise src.error(at, f"languages: {', '.join(unknown)} unknown (known: {', '.join(LANGUAGES)})")
    if len(set(raw)) != len(raw):
        raise src.error(at, "languages: each language once")
    return tuple(raw)


def _parse_category(raw: dict[str, Any], expect: Expect, src: _Lines) -> str:
    category = raw.get("category")
    if category is None:
        return _CATEGORY_OF_OUTCOME.get(expect.outcome or "", "other")
    if category not in SCENARIO_CATEGORIES:
        raise src.error(src.of_key("category"), f"category must be one of {', '.join(SCENARIO_CATEGORIES)}")
    # The emergency figures count scenarios by category: the two must agree.
    if (category == "emergency") != (expect.outcome == "emergency"):
        raise src.error(src.of_key("category"), "category 'emergency' goes with outcome 'emergency', and only with it")
    return str(category)


def _parse_appointments(raw: Any, src: _Lines) -> tuple[SeededAppointment, ...]:
    if not isinstance(raw, list):
        raise src.error(src.of_key("appointment"), "appointments are written as [[appointment]] tables")
    seeded = []
    for i, entry in enumerate(raw):
        line = src.of_table("[[appointment]]", i)
        for key in entry:
            if key not in _APPOINTMENT:
                known = ", ".join(sorted(_APPOINTMENT))
                raise src.error(src.of_key(key, line), f"unknown key '{key}' in [[appointment]] (known: {known})")
        for key in _APPOINTMENT_REQUIRED:
            if key not in entry:
                raise src.error(line, f"[[appointment]] needs '{key}'")
        for key in ("last_name", "first_name", "practitioner", "reason", "phone"):
            if key in entry and (not isinstance(entry[key], str) or not entry[key].strip()):
                raise src.error(src.of_key(key, line), f"[[appointment]] {key} must be non-empty text")
        phone = entry.get("phone", "").replace(" ", "")
        if phone and not re.fullmatch(r"\+?[0-9]{3,20}", phone):
            raise src.error(src.of_key("phone", line), "[[appointment]] phone must be a phone number")
        start = entry["start"]
        if isinstance(start, str):
            try:
                start = datetime.fromisoformat(start)
            except ValueError:
                start = None
        if not isinstance(start, datetime) or start.tzinfo is None or start.second or start.microsecond:
            raise src.error(src.of_key("start", line),
                            "[[appointment]] start must be a date-time in whole minutes with its UTC offset, "
                            "e.g. 2026-11-26T10:00:00+01:00")
        seeded.append(
            SeededAppointment(
                last_name=entry["last_name"].strip(),
                first_name=entry["first_name"].strip(),
                birth_date=_as_date(entry["birth_date"], "birth_date", src.of_key("birth_date", line), src),
                practitioner=entry["practitioner"].strip(),
                start=start,
                reason=entry["reason"].strip(),
                phone=phone,
                line=line,
            )
        )
    return tuple(seeded)


def _parse_line_faults(raw: Any, src: _Lines, kind: str | None) -> LineFaults:
    line = src.of_table("[line_faults]")
    if not isinstance(raw, dict):
        raise src.error(line, "[line_faults] must be a table")
    for key in raw:
        if key not in _LINE_FAULTS:
            known = ", ".join(sorted(_LINE_FAULTS))
            raise src.error(src.of_key(key, line), f"unknown key '{key}' in [line_faults] (known: {known})")
    if raw and kind is None:
        raise src.error(line, "[line_faults] need a simulated device line, e.g. line = \"sim:usr5637\"")
    signal = raw.get("hangup_signal")
    if signal is not None:
        if kind != "modem":
            raise src.error(src.of_key("hangup_signal", line), "hangup_signal applies to analog modem lines (sim:usr5637, sim:cx93001)")
        if signal not in HANGUP_SIGNALS:
            raise src.error(src.of_key("hangup_signal", line), f"hangup_signal must be one of {', '.join(HANGUP_SIGNALS)}")
    seed = raw.get("random_chunks")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
        raise src.error(src.of_key("random_chunks", line), "random_chunks must be a seed: a whole number >= 0")
    ring = raw.get("abandon_at_ring")
    if ring is not None and (not isinstance(ring, int) or isinstance(ring, bool) or not 1 <= ring <= 15):
        raise src.error(src.of_key("abandon_at_ring", line), "abandon_at_ring must be a ring number from 1 to 15")
    refusals = raw.get("cpcmreg_refusals", 0)
    if "cpcmreg_refusals" in raw and kind != "gsm":
        raise src.error(src.of_key("cpcmreg_refusals", line), "cpcmreg_refusals applies to GSM lines (sim:sim7600)")
    if not isinstance(refusals, int) or isinstance(refusals, bool) or not 0 <= refusals <= 10:
        raise src.error(src.of_key("cpcmreg_refusals", line), "cpcmreg_refusals must be a whole number from 0 to 10")
    return LineFaults(hangup_signal=signal, random_chunks=seed, abandon_at_ring=ring, cpcmreg_refusals=refusals)


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


def _parse_turns(raw: Any, src: _Lines, kind: str | None) -> tuple[ScenarioTurn, ...]:
    if not isinstance(raw, list):
        raise src.error(src.of_key("turn"), "turns are written as [[turn]] tables")
    turns = []
    for i, entry in enumerate(raw):
        line = src.of_table("[[turn]]", i)
        for key in entry:
            if key not in _TURN:
                raise src.error(src.of_key(key, line), f"unknown key '{key}' in [[turn]] (known: {', '.join(sorted(_TURN))})")
        acts = [k for k in _ACTS if k in entry]
        if len(acts) != 1:
            raise src.error(line, f"each [[turn]] needs exactly one of {', '.join(_ACTS)}")
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
        if act == "fault":
            allowed = DEVICE_FAULTS.get(kind or "", ())
            if not allowed:
                raise src.error(src.of_key("fault", line), "'fault' needs a simulated device line, e.g. line = \"sim:usr5637\"")
            if value not in allowed:
                raise src.error(src.of_key("fault", line), f"'fault' on a {kind} line must be one of {', '.join(allowed)}")
        when = entry.get("when")
        if when is not None and when not in ASKS:
            raise src.error(src.of_key("when", line), f"'when' must be an ask: {', '.join(ASKS)}")
        speaking = entry.get("while_box_speaks", False)
        if not isinstance(speaking, bool) or (speaking and act not in ("hangup", "fault")):
            raise src.error(src.of_key("while_box_speaks", line), "'while_box_speaks' is true or false, for a hangup or a fault")
        hold = entry.get("hold_s", 0.1)
        if not isinstance(hold, int | float) or not 0.05 <= hold <= 5 or ("hold_s" in entry and act != "dtmf"):
            raise src.error(src.of_key("hold_s", line), "'hold_s' is how long each dtmf key is held: 0.05-5 seconds")
        cue = entry.get("emergency_cue", False)
        if not isinstance(cue, bool) or (cue and act != "say"):
            raise src.error(src.of_key("emergency_cue", line), "'emergency_cue' is true or false, on a 'say' turn")
        language = entry.get("language")
        if language is not None and (act != "say" or language not in LANGUAGES):
            raise src.error(src.of_key("language", line),
                            f"'language' is what the recogniser detected in a 'say' turn: one of {', '.join(LANGUAGES)}")
        lasting = entry.get("fault_s", 3.0)
        if not isinstance(lasting, int | float) or not 0 < lasting <= 60 or ("fault_s" in entry and act != "fault"):
            raise src.error(src.of_key("fault_s", line), "'fault_s' is how long a fault lasts: 0-60 seconds")
        turns.append(
            ScenarioTurn(
                say=value if act == "say" else None,
                dtmf=value if act == "dtmf" else None,
                silence_s=float(value) if act == "silence_s" else None,
                hangup=act == "hangup",
                fault=value if act == "fault" else None,
                fault_s=float(lasting),
                when=when,
                while_box_speaks=speaking,
                hold_s=float(hold),
                emergency_cue=cue,
                language=language,
                line=line,
            )
        )
    if sum(t.emergency_cue for t in turns) > 1:
        second = [t for t in turns if t.emergency_cue][1]
        raise src.error(second.line, "only the first emergency cue is marked 'emergency_cue'")
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
        elif key == "message_urgency" and value not in URGENCIES:
            raise src.error(at, f"message_urgency must be one of {', '.join(URGENCIES)}")
        elif key == "language" and value not in LANGUAGES:
            raise src.error(at, f"language must be one of {', '.join(LANGUAGES)}")
        elif key == "message_phone" and (not isinstance(value, str) or not re.fullmatch(r"[0-9 ]{6,20}", value)):
            raise src.error(at, "message_phone is the number to call back, digits, e.g. \"06 12 34 56 78\"")
        elif key in ("said", "not_said", "message_summary"):
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
                raise src.error(at, f"{key} must be a list of non-empty texts, e.g. {key} = [\"rendez-vous\"]")
            value = tuple(v.strip() for v in value)
        elif key == "max_caller_turns":
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 100:
                raise src.error(at, "max_caller_turns must be a whole number from 1 to 100")
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
        elif key in ("hangup_within_s", "line_ready_within_s"):
            if not isinstance(value, int | float) or isinstance(value, bool) or not 0 < value <= 120:
                raise src.error(at, f"{key} must be a number of seconds, 0-120")
            value = float(value)
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
