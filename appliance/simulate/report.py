"""The simulate JSON report and the check of a scenario's ``[expect]`` (a public contract)."""

from __future__ import annotations

import statistics
import unicodedata
from dataclasses import asdict
from datetime import datetime
from typing import Any

from appliance.call import CallResult
from appliance.events import TurnTimed, event_to_dict
from appliance.simulate.scenario import Expect, Scenario


def build_report(
    scenario: Scenario,
    mode: str,
    result: CallResult,
    booking: dict[str, Any] | None,
    message: dict[str, Any] | None,
    load_s: dict[str, float],
    line: dict[str, Any] | None = None,
) -> dict[str, Any]:
    timings = [e for e in result.events if isinstance(e, TurnTimed)]
    latencies = [t.latency_ms for t in timings]
    report: dict[str, Any] = {
        "scenario": str(scenario.path),
        "title": scenario.title,
        "mode": mode,
        "outcome": result.outcome,
        "booking": booking,
        "message": message,
        "turns": [asdict(t) for t in result.turns],
        "line": line or {"name": scenario.line, "end_reason": _end_reason(result), "answered": True,
                         "hangup_to_end_s": None, "ready_after_s": None},
        "events": [event_to_dict(e) for e in result.events],
        "metrics": {
            "turns": len(result.turns),
            "latency_ms": latencies,
            "latency_p50_ms": _percentile(latencies, 50),
            "latency_p95_ms": _percentile(latencies, 95),
            "asr_ms": [t.asr_ms for t in timings],
            "tts_first_ms": [t.tts_first_ms for t in timings],
            "call_ms": result.events[-1].at_ms if result.events else 0,
            "model_load_s": load_s,
        },
    }
    failures = check(scenario.expect, report)
    report["expect"] = {"passed": not failures, "failures": failures}
    return report


def _end_reason(result: CallResult) -> str | None:
    ends = [e for e in result.events if e.kind == "hangup"]
    return getattr(ends[-1], "reason", None) if ends else None


def _percentile(values: list[int], pct: int) -> int | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return round(statistics.quantiles(values, n=100, method="inclusive")[pct - 1])


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
    return failures


def _seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f} s"


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c)).strip()
