"""Whole calls with the real models: Kokoro caller → G.711 line → silero VAD → Whisper → Kokoro."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from appliance.config import Config
from appliance.simulate.runner import simulate
from appliance.simulate.scenario import load_scenario

from .conftest import SCENARIOS

pytestmark = pytest.mark.models


def _run(name: str, speech, tmp_path: Path) -> dict:  # type: ignore[no-untyped-def]
    config = replace(Config(), data_dir=tmp_path)
    return asyncio.run(simulate(load_scenario(SCENARIOS / name), mode="audio", config=config, speech=speech))


def test_book_basic_books_through_real_speech_and_reports_every_turn_latency(speech, tmp_path: Path) -> None:
    report = _run("book_basic.toml", speech, tmp_path)
    assert report["expect"] == {"passed": True, "failures": []}, report["turns"]
    assert report["booking"]["practitioner"] == "martin"
    caller_turns = [t for t in report["turns"] if t["speaker"] == "caller" and not t["text"].startswith("[")]
    assert caller_turns and all(t["asr_text"] for t in caller_turns)  # heard through Whisper
    said = {t.say for t in load_scenario(SCENARIOS / "book_basic.toml").turns if t.say}
    assert all(t["text"] in said for t in caller_turns)  # paired with what the scenario said
    replies = [t for t in report["turns"] if t["speaker"] == "assistant"][1:]
    assert all(t["latency_ms"] > 0 for t in replies)
    kinds = {e["kind"] for e in report["events"]}
    assert {"caller_speech_end", "transcript", "audio_out_start", "turn_timing", "booking"} <= kinds


def test_a_spoken_emergency_is_caught_first(speech, tmp_path: Path) -> None:
    report = _run("emergency_chest_pain.toml", speech, tmp_path)
    assert report["outcome"] == "emergency", report["turns"]


@pytest.mark.parametrize(("voice", "problem"), [("jm_kumo", "the assistant's own"), ("zz_nobody", "not in the model")])
def test_the_caller_voice_must_exist_and_differ_from_the_assistants(speech, tmp_path: Path, voice: str,
                                                                    problem: str) -> None:  # type: ignore[no-untyped-def]
    from appliance.errors import ScenarioError

    path = tmp_path / "voice.toml"
    path.write_text(f'now = "2026-11-24T09:00:00+01:00"\npractice = "demo"\n[caller]\nvoice = "{voice}"\n'
                    '[[turn]]\nsay = "Bonjour"\n', encoding="utf-8")
    config = replace(Config(), data_dir=tmp_path / "data")
    with pytest.raises(ScenarioError, match=problem):
        asyncio.run(simulate(load_scenario(path), mode="audio", config=config, speech=speech))
