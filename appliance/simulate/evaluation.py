"""The secretary's figures over the public scenarios: pass rate, emergencies, turns.

``appliance scenarios`` (``make scenarios``) prints them in text mode; ``make
bench`` adds the audio-mode pass rate on the scenarios marked ``audio = true``.
The targets they are read against (the secretary issue): 98 % of scenarios pass
in text mode and 90 % in audio mode, every emergency is recognised, at most 2 %
of the other calls raise a false alarm, and a booking takes a median of at most
7 caller turns.

- **pass rate**: scenarios whose expectations all hold, over all scenarios;
  pending ones (known failures) count as failed, and are also shown apart.
- **emergency recall**: scenarios expecting an emergency in which the box raised
  one (an ``emergency`` event), over all of them.
- **false-alarm rate**: scenarios expecting anything else in which the box raised
  an emergency, over all of them; the alarming-words set (``not_emergency``) is
  also shown alone, since that is where false alarms hide.
- **turns to a booking**: caller turns (words, keys, silences) before the booking
  was made, in the scenarios that expect a booking and got one.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Final

from appliance.config import Config
from appliance.errors import ApplianceError, ScenarioError
from appliance.simulate.runner import simulate
from appliance.simulate.scenario import Scenario, load_scenario
from appliance.speech.loading import SpeechModels

TARGETS: Final = {"text_pass": 0.98, "audio_pass": 0.90, "recall": 1.0, "false_alarms": 0.02, "median_turns": 7}


@dataclass(frozen=True, slots=True)
class ScenarioRun:
    """One scenario's call, as the figures need it."""

    path: str
    category: str
    expected_outcome: str | None
    pending: str | None
    passed: bool
    failures: tuple[str, ...]
    outcome: str | None
    emergency_raised: bool
    caller_turns_to_booking: int | None
    seconds: float

    @property
    def as_expected(self) -> bool:
        """Passed, or pending and (still) failing: what the CI test asks of it."""
        return self.passed != (self.pending is not None)


@dataclass(frozen=True, slots=True)
class Figures:
    mode: str
    total: int
    passed: int
    pending: int
    pending_passed: int
    emergencies: int
    emergencies_raised: int
    others: int
    false_alarms: int
    alarming_words: int
    alarming_words_false_alarms: int
    turns_to_booking: tuple[int, ...]

    @property
    def pass_rate(self) -> float | None:
        return _ratio(self.passed, self.total)

    @property
    def pass_rate_without_pending(self) -> float | None:
        return _ratio(self.passed - self.pending_passed, self.total - self.pending)

    @property
    def recall(self) -> float | None:
        return _ratio(self.emergencies_raised, self.emergencies)

    @property
    def false_alarm_rate(self) -> float | None:
        return _ratio(self.false_alarms, self.others)

    @property
    def median_turns(self) -> float | None:
        return statistics.median(self.turns_to_booking) if self.turns_to_booking else None

    @property
    def mean_turns(self) -> float | None:
        return statistics.fmean(self.turns_to_booking) if self.turns_to_booking else None

    def to_json(self) -> dict[str, Any]:
        return {
            **asdict(self), "turns_to_booking": list(self.turns_to_booking),
            "pass_rate": self.pass_rate, "pass_rate_without_pending": self.pass_rate_without_pending,
            "emergency_recall": self.recall, "false_alarm_rate": self.false_alarm_rate,
            "median_turns_to_booking": self.median_turns, "mean_turns_to_booking": self.mean_turns,
        }  # fmt: skip


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def scenario_files(paths: Iterable[Path]) -> list[Path]:
    """The scenarios named: files as given, directories' ``*.toml`` (not their subdirectories)."""
    files: list[Path] = []
    for path in paths:
        files.extend(sorted(path.glob("*.toml")) if path.is_dir() else [path])
    return files


def run_scenario(path: Path, *, mode: str, config: Config, speech: SpeechModels | None = None) -> ScenarioRun:
    """One call in a fresh temporary store. A broken scenario raises ``ScenarioError``;
    a box that fails is a failed run, not an exception."""
    scenario = load_scenario(path)
    started = time.perf_counter()
    report: dict[str, Any] | None = None
    failures: tuple[str, ...] = ()
    with tempfile.TemporaryDirectory(prefix="appliance-eval-") as tmp:
        cfg = replace(config, data_dir=Path(tmp), practice=scenario.practice)
        try:
            report = asyncio.run(simulate(scenario, mode=mode, config=cfg, speech=speech))
        except ScenarioError:
            raise
        except ApplianceError as err:
            failures = (f"the box failed: {err}",)
    return run_of(scenario, report, failures=failures, seconds=time.perf_counter() - started)


def run_of(scenario: Scenario, report: dict[str, Any] | None, *, failures: Sequence[str] = (),
           seconds: float = 0.0) -> ScenarioRun:
    """What the figures need of one call's report (None: the box failed, ``failures`` say how)."""
    if report is not None:
        failures = report["expect"]["failures"]
    booked = report is not None and report["outcome"] == "booked" and scenario.expect.outcome == "booked"
    return ScenarioRun(
        path=str(scenario.path),
        category=scenario.category,
        expected_outcome=scenario.expect.outcome,
        pending=scenario.pending,
        passed=report is not None and report["expect"]["passed"],
        failures=tuple(failures),
        outcome=None if report is None else report["outcome"],
        emergency_raised=report is not None and any(e["kind"] == "emergency" for e in report["events"]),
        caller_turns_to_booking=report["metrics"]["caller_turns_to_booking"] if report is not None and booked else None,
        seconds=round(seconds, 3),
    )


def audio_subset(paths: Iterable[Path]) -> list[Path]:
    """The scenarios to run in audio mode: files named on the command line as given,
    and of directories those marked ``audio = true`` (audio runs take model time)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(p for p in sorted(path.glob("*.toml")) if load_scenario(p).audio)
        else:
            files.append(path)
    return files


def figures(runs: Sequence[ScenarioRun], mode: str) -> Figures:
    emergencies = [r for r in runs if r.expected_outcome == "emergency"]
    others = [r for r in runs if r.expected_outcome != "emergency"]
    alarming = [r for r in runs if r.category == "not_emergency"]
    return Figures(
        mode=mode,
        total=len(runs),
        passed=sum(r.passed for r in runs),
        pending=sum(r.pending is not None for r in runs),
        pending_passed=sum(r.passed and r.pending is not None for r in runs),
        emergencies=len(emergencies),
        emergencies_raised=sum(r.emergency_raised for r in emergencies),
        others=len(others),
        false_alarms=sum(r.emergency_raised for r in others),
        alarming_words=len(alarming),
        alarming_words_false_alarms=sum(r.emergency_raised for r in alarming),
        turns_to_booking=tuple(r.caller_turns_to_booking for r in runs if r.caller_turns_to_booking is not None),
    )


def summary_lines(f: Figures) -> list[str]:
    """The figures as a table, each against its target."""

    def pct(value: float | None) -> str:
        return "—" if value is None else f"{100 * value:5.1f} %"

    target = TARGETS["audio_pass" if f.mode == "audio" else "text_pass"]
    rows = [
        (f"{f.mode} pass rate", f"{pct(f.pass_rate)}  ({f.passed}/{f.total}; target {100 * target:.0f} %)"),
    ]
    if f.pending:
        rows.append(("  without pending", f"{pct(f.pass_rate_without_pending)}  ({f.pending} pending scenarios)"))
    if f.emergencies:
        rows.append(("emergency recall", f"{pct(f.recall)}  ({f.emergencies_raised}/{f.emergencies}; target 100 %)"))
    if f.others:
        rows.append(("false-alarm rate", f"{pct(f.false_alarm_rate)}  ({f.false_alarms}/{f.others}; target ≤ 2 %)"))
    if f.alarming_words:
        rows.append(("  on alarming words", f"{pct(_ratio(f.alarming_words_false_alarms, f.alarming_words))}  "
                                            f"({f.alarming_words_false_alarms}/{f.alarming_words})"))
    if f.turns_to_booking:
        rows.append(("caller turns to a booking", f"median {f.median_turns:g}, mean {f.mean_turns:.1f} "
                                                   f"over {len(f.turns_to_booking)} bookings (target median ≤ 7)"))
    return [f"{name:28} {value}" for name, value in rows]


def run_scenarios_command(paths: Sequence[Path], *, config: Config, json_out: Path | None,
                          echo: Callable[[str], None], complain: Callable[[str], None]) -> int:
    """``appliance scenarios``: every scenario in text mode, its failures, then the figures.

    Exit status 0 when every scenario is as expected (passing, or pending and
    failing), 1 otherwise, 2 when a scenario file is wrong.
    """
    runs: list[ScenarioRun] = []
    for path in scenario_files(paths):
        try:
            run = run_scenario(path, mode="text", config=config)
        except ScenarioError as err:
            complain(err.detail)
            return 2
        runs.append(run)
        if not run.as_expected:
            state = "PASSED but marked pending" if run.passed else "FAILED"
            echo(f"{Path(run.path).name}: {state}")
            for failure in run.failures if not run.passed else (f"pending: {run.pending}",):
                echo(f"  - {failure}")
    result = figures(runs, "text")
    echo("")
    for line in summary_lines(result):
        echo(line)
    if json_out is not None:
        json_out.write_text(json.dumps({"figures": result.to_json(), "runs": [asdict(r) for r in runs]},
                                       ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return 0 if all(r.as_expected for r in runs) else 1
