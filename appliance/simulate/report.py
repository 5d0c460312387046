"""The simulate JSON report and the check of a scenario's ``[expect]`` (a public contract)."""

from __future__ import annotations

import re
import statistics
import unicodedata
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

from appliance.call import CallResult
from appliance.dialogue.normalize import fold
from appliance.events import Acknowledged, TurnTimed, event_to_dict
from appliance.simulate.emergency_rule import EmergencyInstruction, emergency_failures
from appliance.simulate.scenario import Expect, Scenario


def build_report(
    scenario: Scenario,
    mode: str,
    result: CallResult,
    booking: dict[str, Any] | None,
    message: dict[str, Any] | None,
    load_s: dict[str, float],
    line: dict[str, Any] | None = None,
    *,
    emergency_instruction: EmergencyInstruction | None = None,
    cue_transcript: int | None = None,
    appointments: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """The report; ``emergency_instruction`` recognises the instruction for the
    emergency rule (required for a scenario whose outcome is ``emergency``), and
    ``cue_transcript`` is which transcript carried its ``emergency_cue`` turn."""
    timings = [e for e in result.events if isinstance(e, TurnTimed)]
    latencies = [t.latency_ms for t in timings]
    events = [event_to_dict(e) for e in result.events]
    caller_turns = caller_turn_count(events)
    report: dict[str, Any] = {
        "scenario": str(scenario.path),
        "title": scenario.title,
        "mode": mode,
        "outcome": result.outcome,
        "booking": booking,
        "message": message,
        "appointments": list(appointments),
        "turns": [asdict(t) for t in result.turns],
        "line": line or {"name": scenario.line, "end_reason": _end_reason(result), "answered": True,
                         "hangup_to_end_s": None, "ready_after_s": None},
        "events": events,
        "metrics": {
            "turns": len(result.turns),
            "caller_turns": caller_turns,
            "caller_turns_to_booking": caller_turn_count(events, until="booking"),
            "latency_ms": latencies,
            "latency_p50_ms": _percentile(latencies, 50),
            "latency_p95_ms": _percentile(latencies, 95),
            "first_sound_ms": first_sounds(result.events),
            "asr_ms": [t.asr_ms for t in timings],
            "tts_first_ms": [t.tts_first_ms for t in timings],
            "call_ms": result.events[-1].at_ms if result.events else 0,
            "model_load_s": load_s,
        },
    }
    failures = check(scenario.expect, report)
    if scenario.expect.outcome == "emergency":
        if emergency_instruction is None:
            raise ValueError("an emergency scenario's report needs the emergency instruction to check its rule")
        failures += emergency_failures(events, cue_transcript=cue_transcript, is_instruction=emergency_instruction)
    report["expect"] = {"passed": not failures, "failures": failures}
    return report


def first_sounds(events: Sequence[Any]) -> list[int]:
    """Per answered turn, end of the caller's speech to the first thing they hear:
    the acknowledgement when the reply was slow, else the reply itself."""
    sounds: list[int] = []
    acknowledged: int | None = None
    for event in events:
        if isinstance(event, Acknowledged):
            acknowledged = event.latency_ms
        elif isinstance(event, TurnTimed):
            sounds.append(event.latency_ms if acknowledged is None else min(acknowledged, event.latency_ms))
            acknowledged = None
    return sounds


def caller_turn_count(events: Sequence[dict[str, Any]], *, until: str | None = None) -> int | None:
    """Caller turns (words, keys, silences) in the call, or before the first ``until`` event.

    None when ``until`` never happened. The keys of one turn arrive as one
    ``dtmf`` event each, back to back: they count once.
    """
    count = 0
    previous = ""
    for event in events:
        kind = event["kind"]
        if kind == until:
            return count
        if kind in ("transcript", "no_input") or (kind == "dtmf" and previous != "dtmf"):
            count += 1
        previous = kind
    return None if until else count


def _end_reason(result: CallResult) -> str | None:
    ends = [e for e in result.events if e.kind == "hangup"]
    return getattr(ends[-1], "reason", None) if ends else None


def percentile(values: list[float] | list[int], pct: int) -> float | None:
    """The ``pct``-th percentile (inclusive method), None without values."""
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]


def _percentile(values: list[int], pct: int) -> int | None:
    value = percentile(values, pct)
    return None if value is None else round(value)


def check(expect: Expect, report: dict[str, Any]) -> list[str]:
    failures: list[str] = []

    def differ(what: str, wanted: Any, got: Any) -> None:
        failures.append(f"{what}: expected {wanted!r}, got {got!r}")

    if expect.outcome and report["outcome"] != expect.outcome:
        differ("outcome", expect.outcome, report["outcome"])
    booking = report["booking"]
    wants_booking = any(
        getattr(expect, k) is not None
        for k in ("practitioner", "reason", "weekday", "date", "time_from", "time_to",
                  "patient_last_name", "patient_first_name", "birth_date", "phone")
    )
    if wants_booking and booking is None:
        failures.append("booking: expected one, none was made")
    elif booking is not None:
        start = datetime.fromisoformat(booking["start"])
        patient = booking["patient"]
        if expect.practitioner and expect.practitioner.lower() not in (
            booking["practitioner"].lower(), booking["practitioner_name"].lower()
        ):
            differ("practitioner", expect.practitioner, booking["practitioner"])
        if expect.reason and expect.reason != booking["reason"]:
            differ("reason", expect.reason, booking["reason"])
        if expect.weekday is not None and start.weekday() != expect.weekday:
            differ("weekday", expect.weekday, start.weekday())
        if expect.date and start.date() != expect.date:
            differ("date", expect.date.isoformat(), start.date().isoformat())
        if expect.time_from and start.time() < expect.time_from:
            differ("time_from", expect.time_from.isoformat("minutes"), start.time().isoformat("minutes"))
        if expect.time_to and start.time() > expect.time_to:
            differ("time_to", expect.time_to.isoformat("minutes"), start.time().isoformat("minutes"))
        for key in ("last_name", "first_name"):
            wanted = getattr(expect, f"patient_{key}")
            if wanted and _fold(wanted) != _fold(patient[key] or ""):
                differ(f"patient_{key}", wanted, patient[key])
        if expect.birth_date and patient["birth_date"] != expect.birth_date.isoformat():
            differ("birth_date", expect.birth_date.isoformat(), patient["birth_date"])
        if expect.phone and patient["phone"] != expect.phone.replace(" ", ""):
            differ("phone", expect.phone, patient["phone"])
    line = report["line"]
    if expect.end_reason and line["end_reason"] != expect.end_reason:
        differ("end_reason", expect.end_reason, line["end_reason"])
    if expect.hangup_within_s is not None:
        took = line["hangup_to_end_s"]
        if took is None or took > expect.hangup_within_s:
            failures.append(f"hangup_within_s: the call ended {_seconds(took)} after the caller hung up "
                            f"(expected within {expect.hangup_within_s:g} s)")
    if expect.line_ready_within_s is not None:
        ready = line["ready_after_s"]
        if ready is None or ready > expect.line_ready_within_s:
            failures.append(f"line_ready_within_s: the line was ready {_seconds(ready)} after the call "
                            f"(expected within {expect.line_ready_within_s:g} s)")
    if expect.message_category:
        message = report["message"]
        got = message["category"] if message else None
        if got != expect.message_category:
            differ("message_category", expect.message_category, got)
    if expect.message_urgency:
        message = report["message"]
        got = message["urgency"] if message else None
        if got != expect.message_urgency:
            differ("message_urgency", expect.message_urgency, got)
    replies = [t["text"] for t in report["turns"] if t["speaker"] == "assistant" and t["text"]]
    for words in expect.said:
        if not any(says(reply, words) for reply in replies):
            failures.append(f"said: no reply contains {words!r}")
    for words in expect.not_said:
        for reply in replies:
            if says(reply, words):
                failures.append(f"not_said: a reply contains {words!r}: {reply!r}")
                break
    if expect.max_caller_turns is not None:
        metrics = report["metrics"]
        to_booking = metrics["caller_turns_to_booking"]
        took = to_booking if to_booking is not None else metrics["caller_turns"]
        if took > expect.max_caller_turns:
            where = "to the booking" if to_booking is not None else "in the call"
            failures.append(f"max_caller_turns: {took} caller turns {where} (expected at most {expect.max_caller_turns})")
    return failures


def says(reply: str, words: str) -> bool:
    """Whether ``reply`` contains ``words`` as whole words, ignoring case, accents and punctuation."""
    wanted = fold(words)
    return bool(wanted) and re.search(rf"(?<!\w){re.escape(wanted)}(?!\w)", fold(reply)) is not None


def _seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f} s"


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c)).strip()
