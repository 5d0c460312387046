"""Scenario files: every mistake is reported as file:line: problem."""

from __future__ import annotations

from datetime import date, time
from pathlib import Path

import pytest

from appliance.errors import ScenarioError
from appliance.simulate.scenario import load_scenario

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
HEAD = 'now = "2026-11-24T09:00:00+01:00"\ncaller_id = "0612345678"\npractice = "demo"\n'
MODEM = HEAD + 'line = "sim:usr5637"\n'
GSM = HEAD + 'line = "sim:sim7600"\n'


def _scenario(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "call.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.toml")), ids=lambda p: p.name)
def test_every_public_scenario_loads(path: Path) -> None:
    scenario = load_scenario(path)
    assert scenario.now.tzinfo is not None
    assert scenario.expect.outcome is not None


def test_a_scenario_reads_its_turns_and_expectations() -> None:
    scenario = load_scenario(SCENARIOS / "book_basic.toml")
    assert scenario.caller_id == "0612345678"
    assert scenario.turns[0].say and scenario.turns[0].when is None
    assert scenario.turns[1].when == "when"
    assert scenario.expect.weekday == 3
    assert scenario.expect.time_to == time(12, 30)
    assert scenario.expect.birth_date == date(1980, 3, 12)


def test_an_empty_caller_id_means_withheld(tmp_path: Path) -> None:
    path = _scenario(tmp_path, HEAD.replace('"0612345678"', '""'))
    assert load_scenario(path).caller_id is None


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        (HEAD + "colour = 1\n", 4, "unknown key 'colour'"),
        (HEAD.replace("2026-11-24T09:00:00+01:00", "mardi 9h"), 1, "not an ISO 8601 date-time"),
        (HEAD.replace("2026-11-24T09:00:00+01:00", "2026-11-24T09:00:00"), 1, "with its UTC offset"),
        ('now = "2026-11-24T09:00:00+01:00"\n', 1, "missing key 'practice'"),
        (HEAD + "\n[[turn]]\nsay = \"oui\"\n\n[[turn]]\nshout = \"non\"\n", 9, "unknown key 'shout' in [[turn]]"),
        (HEAD + "\n[[turn]]\nsay = \"oui\"\ndtmf = \"1\"\n", 5, "exactly one of"),
        (HEAD + "\n[[turn]]\nsay = \"oui\"\nwhen = \"mood\"\n", 7, "'when' must be an ask"),
        (HEAD + "\n[[turn]]\ndtmf = \"12a\"\n", 6, "keys 0-9"),
        (HEAD + "\n[expect]\noutcome = \"happy\"\n", 6, "outcome must be one of"),
        (HEAD + "\n[expect]\nweekday = \"someday\"\n", 6, "weekday must be a day name"),
        (HEAD + "\n[expect]\nbirth_date = \"12/03/1980\"\n", 6, "YYYY-MM-DD"),
        (HEAD + "\n[caller]\nchannel = \"g729\"\n", 6, "channel must be one of"),
        (HEAD + "title = \n", 4, "not valid TOML"),
        (HEAD + "\n[[turn]]\nfault = \"unplug_replug\"\n", 6, "'fault' needs a simulated device line"),
        (MODEM + "\n[[turn]]\nfault = \"port_vanishes\"\n", 7, "'fault' on a modem line must be one of extension_pickup"),
        (GSM + "\n[[turn]]\nfault = \"extension_pickup\"\n", 7, "'fault' on a gsm line must be one of port_vanishes"),
        (MODEM + "\n[[turn]]\nsay = \"oui\"\nwhile_box_speaks = true\n", 8, "for a hangup or a fault"),
        (MODEM + "\n[[turn]]\nsay = \"oui\"\nhold_s = 2\n", 8, "how long each dtmf key is held"),
        (MODEM + "\n[line_faults]\nhangup_signal = \"smoke\"\n", 7, "hangup_signal must be one of dial_tone"),
        (GSM + "\n[line_faults]\nhangup_signal = \"busy\"\n", 7, "hangup_signal applies to analog modem lines"),
        (MODEM + "\n[line_faults]\ncpcmreg_refusals = 2\n", 7, "cpcmreg_refusals applies to GSM lines"),
        (HEAD + "\n[line_faults]\nrandom_chunks = 3\n", 5, "need a simulated device line"),
        (MODEM + "\n[line_faults]\nabandon_at_ring = 0\n", 7, "abandon_at_ring must be a ring number"),
        (HEAD + "\n[expect]\nhangup_within_s = \"fast\"\n", 6, "hangup_within_s must be a number of seconds"),
    ],
)
def test_mistakes_name_file_line_and_problem(tmp_path: Path, text: str, line: int, problem: str) -> None:
    path = _scenario(tmp_path, text)
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    assert f"{path}:{line}: " in str(err.value)
    assert problem in str(err.value)


def test_a_missing_file_is_a_scenario_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "nope.toml")


def test_line_faults_and_fault_turns_are_read(tmp_path: Path) -> None:
    path = _scenario(tmp_path, MODEM + """
[line_faults]
hangup_signal = "dial_tone_only"
random_chunks = 7

[[turn]]
fault = "unplug_replug"
fault_s = 4
while_box_speaks = true

[[turn]]
dtmf = "5"
hold_s = 1.5

[expect]
end_reason = "line_lost"
hangup_within_s = 3
line_ready_within_s = 10
""")
    scenario = load_scenario(path)
    assert scenario.device_kind == "modem"
    assert (scenario.line_faults.hangup_signal, scenario.line_faults.random_chunks) == ("dial_tone_only", 7)
    assert (scenario.turns[0].fault, scenario.turns[0].fault_s, scenario.turns[0].while_box_speaks) == ("unplug_replug", 4.0, True)
    assert scenario.turns[1].hold_s == 1.5
    assert (scenario.expect.end_reason, scenario.expect.hangup_within_s) == ("line_lost", 3.0)
