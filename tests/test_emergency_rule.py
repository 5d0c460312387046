"""The evaluation's emergency rule: after the first cue, the instruction and nothing else."""

from __future__ import annotations

import asyncio
import tomllib
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from appliance.config import Config
from appliance.simulate.emergency_rule import EmergencyInstruction, emergency_failures
from appliance.simulate.runner import simulate
from appliance.simulate.scenario import load_scenario

HEAD = 'now = "2026-11-24T09:00:00+01:00"\ncaller_id = "0612345678"\npractice = "demo"\n'
TEMPLATES = tomllib.loads(resources.files("appliance.dialogue").joinpath("templates/fr.toml").read_text("utf-8"))
INSTRUCTION = TEMPLATES["emergency"].format(number="15")
IS_INSTRUCTION = EmergencyInstruction.from_templates("fr", "15")


@pytest.mark.parametrize(
    "reply",
    [
        INSTRUCTION,
        INSTRUCTION.upper(),
        INSTRUCTION.replace("é", "e").replace(",", "").replace(".", " !"),
        f"{INSTRUCTION} {INSTRUCTION}",  # said twice is still only the instruction
    ],
)
def test_the_emergency_template_is_recognised_however_it_is_written(reply: str) -> None:
    assert IS_INSTRUCTION(reply)


@pytest.mark.parametrize(
    "reply",
    [
        f"{INSTRUCTION} {TEMPLATES['ask_anything_else']}",  # "what else can I do for you?"
        f"{INSTRUCTION} {TEMPLATES['ask_birth_date']}",
        TEMPLATES["ask_request"],
        TEMPLATES["goodbye"],
        "",
        INSTRUCTION.replace("15", "18"),  # another practice's number is not this one's instruction
    ],
)
def test_anything_more_or_else_is_not_the_instruction(reply: str) -> None:
    assert not IS_INSTRUCTION(reply)


def test_other_placeholders_of_an_emergency_template_match_any_words() -> None:
    instruction = EmergencyInstruction.from_texts(["Appelez le {number}. Le {practice} est prévenu."], "15")
    assert instruction("Appelez le 15. Le cabinet des Tilleuls est prévenu.")
    assert not instruction("Appelez le 15. Le cabinet des Tilleuls est prévenu. Quel jour vous arrange ?")


def _events(*items: tuple[str, str]) -> list[dict[str, Any]]:
    return [{"kind": kind, "text": text} if kind in ("reply", "transcript") else {"kind": kind} for kind, text in items]


GREETING = ("reply", TEMPLATES["ask_request"])


def test_the_rule_holds_when_only_the_instruction_follows_the_emergency() -> None:
    events = _events(GREETING, ("transcript", "il ne respire plus"), ("emergency", ""), ("reply", INSTRUCTION),
                     ("transcript", "mais je voulais un rendez-vous"), ("reply", INSTRUCTION), ("hangup", ""))
    assert emergency_failures(events, cue_transcript=0, is_instruction=IS_INSTRUCTION) == []


def test_a_question_after_the_emergency_breaks_the_rule() -> None:
    events = _events(GREETING, ("transcript", "il ne respire plus"), ("emergency", ""), ("reply", INSTRUCTION),
                     ("transcript", "d'accord"), ("reply", TEMPLATES["ask_anything_else"]))
    [failure] = emergency_failures(events, cue_transcript=None, is_instruction=IS_INSTRUCTION)
    assert failure.startswith("emergency rule: after the first emergency cue the assistant said more than the instruction")
    assert TEMPLATES["ask_anything_else"] in failure


def test_an_emergency_detected_one_turn_after_the_cue_breaks_the_rule() -> None:
    events = _events(GREETING, ("transcript", "mon mari est tout gris"), ("reply", TEMPLATES["ask_when"]),
                     ("transcript", "il a mal à la poitrine"), ("emergency", ""), ("reply", INSTRUCTION))
    [failure] = emergency_failures(events, cue_transcript=0, is_instruction=IS_INSTRUCTION)
    assert TEMPLATES["ask_when"] in failure


def test_an_instruction_never_said_breaks_the_rule() -> None:
    events = _events(GREETING, ("transcript", "il ne respire plus"), ("emergency", ""), ("hangup", ""))
    assert emergency_failures(events, cue_transcript=0, is_instruction=IS_INSTRUCTION) == [
        "emergency rule: the emergency instruction was never said after the first cue"
    ]


def test_without_a_cue_heard_or_an_emergency_detected_the_outcome_check_speaks() -> None:
    events = _events(GREETING, ("transcript", "bonjour"), ("reply", TEMPLATES["listening"]))
    assert emergency_failures(events, cue_transcript=None, is_instruction=IS_INSTRUCTION) == []


def test_in_a_real_call_the_reply_to_the_cue_turn_is_judged(tmp_path: Path) -> None:
    # A cue the box cannot see as one: the rule must name the booking question that followed it.
    path = tmp_path / "call.toml"
    path.write_text(HEAD + '[[turn]]\nsay = "Je voudrais un rendez-vous."\nemergency_cue = true\n\n'
                           '[[turn]]\nhangup = true\n\n[expect]\noutcome = "emergency"\n', encoding="utf-8")
    report = asyncio.run(simulate(load_scenario(path), mode="text", config=replace(Config(), data_dir=tmp_path / "d")))
    failures = report["expect"]["failures"]
    assert failures[0] == "outcome: expected 'emergency', got 'abandoned'"
    assert failures[1].startswith("emergency rule: after the first emergency cue the assistant said more")
