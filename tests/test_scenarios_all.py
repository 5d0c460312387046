"""Every public scenario in text mode: the secretary's evaluation suite, run in CI.

One test per file of ``tests/scenarios/``, named after it, failing with the
scenario's own list of broken expectations. A scenario marked ``pending =
"<reason>"`` is a known failure: it is an expected failure here, strictly, so
the day it passes the test fails and the mark must go.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from appliance.config import Config
from appliance.simulate.evaluation import figures, run_scenario, scenario_files
from appliance.simulate.scenario import load_scenario

from .conftest import SCENARIOS

FILES = scenario_files([SCENARIOS])


def _param(path: Path) -> object:
    pending = load_scenario(path).pending
    marks = [pytest.mark.xfail(strict=True, reason=f"pending: {pending}")] if pending else []
    return pytest.param(path, id=path.stem, marks=marks)


@pytest.mark.parametrize("path", [_param(p) for p in FILES])
def test_scenario_meets_its_expectations(path: Path, tmp_path: Path) -> None:
    run = run_scenario(path, mode="text", config=replace(Config(), data_dir=tmp_path))
    assert run.passed, f"{path.name} failed:\n  - " + "\n  - ".join(run.failures)


def test_the_suite_covers_every_point_of_the_secretary() -> None:
    scenarios = [load_scenario(p) for p in FILES]
    by_category: dict[str, int] = {}
    for scenario in scenarios:
        by_category[scenario.category] = by_category.get(scenario.category, 0) + 1
    assert len(scenarios) >= 150
    for category in ("booking", "cancel", "move", "message", "question", "emergency", "not_emergency", "advice",
                     "privacy", "failure", "misuse"):
        assert by_category.get(category, 0) >= 3, f"only {by_category.get(category, 0)} {category} scenarios"
    # Each emergency scenario names the caller's first cue, so a late detection fails.
    late = [s.path.name for s in scenarios if s.category == "emergency" and not any(t.emergency_cue for t in s.turns)]
    assert not late, f"emergency scenarios without an emergency_cue turn: {late}"
    audio = [s for s in scenarios if s.audio]
    assert 8 <= len(audio) <= 16, f"{len(audio)} scenarios in the audio subset"


def test_figures_count_recall_false_alarms_and_turns_from_the_runs() -> None:
    from appliance.simulate.evaluation import ScenarioRun

    def run(category: str, outcome: str, raised: bool, turns: int | None = None, *, passed: bool = True,
            pending: str | None = None) -> ScenarioRun:
        return ScenarioRun(path=f"{category}.toml", category=category, expected_outcome=outcome, pending=pending,
                           passed=passed, failures=(), outcome=outcome, emergency_raised=raised,
                           caller_turns_to_booking=turns, seconds=0.0)

    runs = [run("emergency", "emergency", True), run("emergency", "emergency", False, passed=False),
            run("not_emergency", "booked", True, 9, passed=False), run("booking", "booked", False, 7),
            run("booking", "booked", False, 6), run("cancel", "cancelled", False, passed=False, pending="later")]
    f = figures(runs, "text")
    assert (f.passed, f.total, f.pending) == (3, 6, 1)
    assert f.pass_rate == 0.5 and f.pass_rate_without_pending == 0.6
    assert (f.recall, f.false_alarms, f.others, f.alarming_words_false_alarms) == (0.5, 1, 4, 1)
    assert f.false_alarm_rate == 0.25
    assert (f.median_turns, f.mean_turns) == (7, 22 / 3)


HEAD = 'now = "2026-11-24T09:00:00+01:00"\ncaller_id = "0612345678"\npractice = "demo"\n'
HANGS_UP = '\n[[turn]]\nsay = "Il ne respire plus !"\nemergency_cue = true\n\n[[turn]]\nhangup = true\n'


def _command(tmp_path: Path, files: dict[str, str]) -> tuple[int, list[str]]:
    from appliance.simulate.evaluation import run_scenarios_command

    folder = tmp_path / "scenarios"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(HEAD + text, encoding="utf-8")
    lines: list[str] = []
    status = run_scenarios_command([folder], config=replace(Config(), data_dir=tmp_path / "d"), json_out=None,
                                   echo=lines.append, complain=lines.append)
    return status, lines


def test_the_scenarios_command_passes_when_every_scenario_is_as_expected(tmp_path: Path) -> None:
    status, lines = _command(tmp_path, {
        "emergency.toml": HANGS_UP + '\n[expect]\noutcome = "emergency"\n',
        # A known bug that also raised an alarm: counted as failed, and as a false alarm.
        "known_bug.toml": 'pending = "books nothing yet"\n[[turn]]\nsay = "Il ne respire plus !"\n'
                          '\n[expect]\noutcome = "booked"\n',
    })
    assert status == 0
    assert "text pass rate                50.0 %  (1/2; target 98 %)" in lines
    assert "emergency recall             100.0 %  (1/1; target 100 %)" in lines
    assert "false-alarm rate             100.0 %  (1/1; target ≤ 2 %)" in lines


def test_the_scenarios_command_names_a_failing_scenario_and_a_pending_one_that_passes(tmp_path: Path) -> None:
    status, lines = _command(tmp_path, {
        "fails.toml": HANGS_UP + '\n[expect]\noutcome = "emergency"\nsaid = ["posologie"]\n',
        "fixed.toml": 'pending = "was broken"\n' + HANGS_UP + '\n[expect]\noutcome = "emergency"\n',
    })
    assert status == 1
    assert lines[:4] == ["fails.toml: FAILED", "  - said: no reply contains 'posologie'",
                         "fixed.toml: PASSED but marked pending", "  - pending: was broken"]
