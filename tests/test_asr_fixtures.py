"""Real Whisper output on checked-in telephone audio: the words that matter get through.

The WAVs in ``tests/fixtures/speech/`` are what a modem delivers (8 kHz µ-law),
made once by ``make_fixtures.py`` from the simulated caller's voice through the
telephone channel. Each is heard as on a call (µ-law decoded, resampled to
16 kHz, the hotwords the call gives for that question) and judged the way the
box judges it: not the exact transcript, but what the secretary would make of
it — the intent, the emergency, the yes, the day.

Two fixtures Whisper base loses are not asserted here (README, "Limits"): it
hears "annuler mon rendez-vous" as "finir, moi, rendez-vous" and "un arrêt de
travail" as "donner de travail". A better model provisioned on the device
should add them.
"""

from __future__ import annotations

import wave
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from appliance.audio import LINE_RATE_HZ, MODEL_RATE_HZ
from appliance.audio.framing import int16_to_float32
from appliance.audio.g711 import ulaw_decode
from appliance.audio.resample import resample
from appliance.clock import PARIS
from appliance.dialogue.answers import question_topic
from appliance.dialogue.emergency_any import detect_any_emergency
from appliance.dialogue.intent import Intent, detect_intent
from appliance.dialogue.understand import parse_when, parse_yes_no
from appliance.models.catalog import ModelCatalog
from appliance.speech.asr import WhisperRecognizer

pytestmark = pytest.mark.models

FIXTURES = Path(__file__).parent / "fixtures" / "speech"
MONDAY = datetime(2026, 11, 23, 9, 0, tzinfo=PARIS)
WEEKDAYS = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "matin", "après-midi", "demain")


def heard_on_the_line(name: str) -> np.ndarray:
    with wave.open(str(FIXTURES / f"{name}.wav"), "rb") as wav:
        assert (wav.getframerate(), wav.getsampwidth(), wav.getnchannels()) == (LINE_RATE_HZ, 1, 1)
        coded = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.uint8)
    return int16_to_float32(resample(ulaw_decode(coded), LINE_RATE_HZ, MODEL_RATE_HZ))


def morning_of(weekday: int) -> Callable[[str], bool]:
    def check(text: str) -> bool:
        when = parse_when(text, MONDAY)
        return when is not None and when.window_start.weekday() == weekday and when.window_start.hour < 12

    return check


def intent(expected: Intent) -> Callable[[str], bool]:
    return lambda text: detect_intent(text) is expected


CASES = [
    pytest.param("appointment", (), intent(Intent.BOOK), id="a booking request is a booking"),
    pytest.param("emergency", (), lambda text: detect_any_emergency(text) is not None,
                 id="'il ne respire plus' raises the emergency"),
    pytest.param("yes", (), lambda text: parse_yes_no(text) is True, id="a yes is a yes"),
    pytest.param("renewal", (), intent(Intent.PRESCRIPTION), id="a renewal is a prescription request"),
    pytest.param("when", WEEKDAYS, morning_of(3), id="'jeudi matin' with the call's weekday hotwords"),
    pytest.param("hours", (), lambda text: question_topic(text) == "hours", id="a question about opening hours"),
]


@pytest.fixture(scope="module")
def recognizer() -> WhisperRecognizer:
    return WhisperRecognizer(ModelCatalog().ensure("whisper-base"))


@pytest.mark.parametrize(("name", "hotwords", "understood"), CASES)
def test_what_the_box_makes_of_real_recognition(recognizer, name, hotwords, understood) -> None:
    transcript = recognizer.transcribe(heard_on_the_line(name), hotwords=hotwords)
    assert transcript.text, f"{name}: nothing heard"
    assert understood(transcript.text), f"{name}: heard {transcript.text!r}"
