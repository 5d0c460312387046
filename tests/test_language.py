"""A call's language: offered by the practice, heard on the first utterances, switched as one.

The rules are pinned with Whisper's probabilities written out; the model tests
then put real synthetic callers (espeak-ng German and English, Kokoro and
espeak-ng French, French read with English and German spelling rules) through
the simulated phone line and the real Whisper base.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from appliance.audio import LINE_RATE_HZ, MODEL_RATE_HZ
from appliance.audio.channel import telephone
from appliance.audio.framing import int16_to_float32
from appliance.audio.resample import resample
from appliance.config import SpeechSettings
from appliance.errors import ConfigError
from appliance.speech.asr import Transcript, WhisperRecognizer
from appliance.speech.language import (
    CallRecognizer,
    CallVoice,
    DetectionSettings,
    LanguageSwitch,
    Verdict,
    judge,
)
from appliance.speech.tts import EspeakSynthesizer, KokoroSettings, KokoroSynthesizer

OFFERED = ("fr", "de", "en")


# -- settings ---------------------------------------------------------------------


def test_by_default_only_the_main_language_is_offered() -> None:
    assert SpeechSettings().languages == ("fr",)
    assert SpeechSettings(languages=["fr", "en"]).languages == ("fr", "en")  # a TOML list


@pytest.mark.parametrize(
    ("languages", "message"),
    [
        ("fr", "must be a list"),
        (["fr", "it"], "'it' not available; choose among fr, de, en"),
        (["en", "de"], "must include the main language 'fr'"),
        (["fr", "en", "fr"], "lists a language twice"),
    ],
)
def test_nonsense_in_the_offered_languages_is_explained(languages: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SpeechSettings(languages=languages)  # type: ignore[arg-type]


def test_the_main_language_stays_french_while_the_dialogue_is_french_only() -> None:
    with pytest.raises(ConfigError, match="main language must be 'fr'"):
        SpeechSettings(language="en", languages=["en"])


def test_detection_settings_are_validated() -> None:
    with pytest.raises(ConfigError):
        DetectionSettings(lean_prob=0.95, sure_prob=0.9)
    with pytest.raises(ConfigError):
        DetectionSettings(max_turns=0)


# -- the rule ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("probabilities", "leaning", "turn", "verdict"),
    [
        # Whisper gives French an even chance: French, and detection is over.
        ({"fr": 0.64, "en": 0.07}, None, 1, Verdict("fr", decided=True)),
        # Near-certain English, French ruled out: switch on the first utterance.
        ({"en": 0.95, "fr": 0.0}, None, 1, Verdict("en", decided=True)),
        # Likely German: not enough alone; remembered for the next utterance ...
        ({"de": 0.80, "en": 0.12, "fr": 0.0}, None, 1, Verdict("fr", decided=False, leaning="de")),
        # ... and a second German-leaning utterance in a row switches.
        ({"de": 0.77, "en": 0.11}, "de", 2, Verdict("de", decided=True)),
        # Leaning two ways is no evidence: after the last detected turn the call stays French.
        ({"en": 0.76, "de": 0.01}, "de", 2, Verdict("fr", decided=True)),
        # A Japanese-sounding French voice: Whisper hears Romanian; English 0.09 is nothing.
        ({"ro": 0.58, "en": 0.09, "fr": 0.02}, None, 1, Verdict("fr", decided=False)),
        # French read with English spelling rules sounds English, but not surely so.
        ({"en": 0.91, "fr": 0.001}, None, 1, Verdict("fr", decided=False, leaning="en")),
        # Sure of English but French not ruled out: only a lean.
        ({"en": 0.97, "fr": 0.05}, None, 1, Verdict("fr", decided=False, leaning="en")),
        # Whisper is sure of a language the practice does not offer: stay.
        ({"nl": 0.97, "de": 0.02}, None, 2, Verdict("fr", decided=True)),
    ],
)
def test_the_call_switches_only_on_strong_evidence(
    probabilities: dict[str, float], leaning: str | None, turn: int, verdict: Verdict
) -> None:
    assert judge(probabilities, offered=OFFERED, current="fr", leaning=leaning, turn=turn) == verdict


def test_only_offered_languages_are_candidates() -> None:
    english = {"en": 0.97, "fr": 0.0}
    assert judge(english, offered=("fr", "de"), current="fr", turn=1) == Verdict("fr", decided=False)
    assert judge(english, offered=("fr",), current="fr") == Verdict("fr", decided=True)


# -- one call's recognizer ------------------------------------------------------------


@dataclass
class ScriptedWhisper:
    """A multilingual recognizer whose language beliefs are given per utterance."""

    beliefs: list[dict[str, float]]
    text: str = "some words"
    language: str = "fr"
    detected: int = 0
    calls: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)

    def detect_language(self, pcm16k: np.ndarray) -> dict[str, float]:
        self.detected += 1
        return self.beliefs.pop(0)

    def transcribe(
        self, pcm16k: np.ndarray, *, hotwords: Sequence[str] = (), language: str | None = None
    ) -> Transcript:
        language = language or self.language
        self.calls.append((language, tuple(hotwords)))
        return Transcript(text=self.text, language=language, audio_s=pcm16k.size / MODEL_RATE_HZ,
                          decode_s=0.5, no_speech_prob=0.1, avg_logprob=-0.3)

    def warm_up(self) -> None: ...


def _utterance(seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(int(seconds * MODEL_RATE_HZ)) * 0.1).astype(np.float32)


def test_an_english_caller_is_heard_in_english_once_two_utterances_agree() -> None:
    whisper = ScriptedWhisper([{"en": 0.74, "fr": 0.003}, {"en": 0.78, "fr": 0.002}])
    call = CallRecognizer(whisper, offered=OFFERED, current="fr")

    first = call.transcribe(_utterance(seed=1), hotwords=["mardi"])
    second = call.transcribe(_utterance(seed=2), hotwords=["mardi"])
    third = call.transcribe(_utterance(seed=3))

    assert first.detected_language is None and first.language == "fr"
    assert second.detected_language == "en" and second.language == "en"
    assert whisper.calls[:2] == [("fr", ("mardi",)), ("en", ())]  # French hotwords never bias English
    assert whisper.detected == 2 and not call.detecting
    # Not switched by the dialogue yet: the decision is repeated once more, then dropped.
    assert third.detected_language == "en"
    assert call.transcribe(_utterance(seed=4)).detected_language is None
    assert whisper.calls[-1][0] == "fr"


def test_a_french_caller_costs_one_detection_and_no_more() -> None:
    whisper = ScriptedWhisper([{"fr": 0.92, "en": 0.03}])
    call = CallRecognizer(whisper, offered=OFFERED, current="fr")

    assert call.transcribe(_utterance()).detected_language == "fr"
    for seed in range(3):
        assert call.transcribe(_utterance(seed=seed + 5)).detected_language is None
    assert whisper.detected == 1
    assert [language for language, _ in whisper.calls] == ["fr"] * 4


def test_short_or_empty_utterances_are_no_evidence() -> None:
    whisper = ScriptedWhisper([{"en": 0.6}, {"en": 0.6}, {"en": 0.7}])
    call = CallRecognizer(whisper, offered=OFFERED, current="fr")

    call.transcribe(_utterance(0.6))  # "allô": too short to judge, not even checked
    assert whisper.detected == 0
    whisper.text = ""  # line noise Whisper gave no words for: the verdict does not count
    call.transcribe(_utterance(seed=1))
    whisper.text = "hello there"
    assert call.transcribe(_utterance(seed=2)).detected_language is None  # the first lean that counts
    assert call.transcribe(_utterance(seed=3)).detected_language == "en"


def test_an_utterance_heard_again_after_an_early_recognition_is_judged_once() -> None:
    whisper = ScriptedWhisper([{"en": 0.74}, {"en": 0.78}, {"fr": 0.8}])
    call = CallRecognizer(whisper, offered=OFFERED, current="fr")
    turn = _utterance(3.0, seed=7)

    call.transcribe(turn[: 2 * MODEL_RATE_HZ])  # at a pause, then thrown away: the caller went on
    again = call.transcribe(turn)  # the whole turn: same first samples
    assert again.detected_language is None, "one utterance heard twice is not two utterances in a row"
    assert call.transcribe(_utterance(seed=8)).detected_language == "fr"


def test_the_dialogue_switch_fixes_the_language_and_ends_detection() -> None:
    whisper = ScriptedWhisper([{"de": 0.99, "fr": 0.0}])
    call = CallRecognizer(whisper, offered=OFFERED, current="fr")
    assert call.transcribe(_utterance()).detected_language == "de"

    call.use("de")
    later = call.transcribe(_utterance(seed=1))
    assert later.language == "de" and later.detected_language is None
    with pytest.raises(ValueError, match="not offered"):
        call.use("it")


# -- voice and switch -------------------------------------------------------------------


class Tone:
    def __init__(self, rate: int, hz: float) -> None:
        self.sample_rate = rate
        self.hz = hz
        self.said: list[str] = []

    def synthesize(self, text: str) -> np.ndarray:
        self.said.append(text)
        t = np.arange(self.sample_rate) / self.sample_rate
        return (0.5 * np.sin(2 * np.pi * self.hz * t)).astype(np.float32)

    def warm_up(self) -> None: ...


def test_the_voice_follows_the_language_at_one_unchanging_rate() -> None:
    french, english = Tone(24000, 440.0), Tone(22050, 440.0)
    voice = CallVoice({"fr": french, "en": english}, "fr")

    voice.use("en")
    pcm = voice.synthesize("Hello.")

    assert english.said == ["Hello."] and french.said == []
    assert voice.sample_rate == 24000
    assert pcm.size == pytest.approx(24000, abs=2)  # one second, resampled to the call's rate
    spectrum = np.abs(np.fft.rfft(pcm))
    assert np.argmax(spectrum) == pytest.approx(440, abs=2)  # the same pitch: resampled, not sped up


def test_switch_moves_recognition_and_voice_together() -> None:
    whisper = ScriptedWhisper([])
    recognizer = CallRecognizer(whisper, offered=OFFERED, current="fr")
    voice = CallVoice({"fr": Tone(24000, 300), "de": Tone(24000, 400), "en": Tone(22050, 500)}, "fr")
    switch = LanguageSwitch(OFFERED, "fr", recognizer=recognizer, voice=voice)

    switch.switch("en")

    assert (switch.offered, switch.current) == (OFFERED, "en")
    assert recognizer.language == "en" and not recognizer.detecting
    assert voice.language == "en"


def test_a_language_not_offered_is_refused_without_ending_the_call(caplog: pytest.LogCaptureFixture) -> None:
    switch = LanguageSwitch(("fr", "en"), "fr")
    switch.switch("de")
    assert switch.current == "fr"
    assert "not switching to 'de'" in caplog.text
    switch.switch("en")  # text mode: no recognizer or voice, only the language moves
    assert switch.current == "en"


# -- real callers on the phone line, real Whisper ---------------------------------------

SENTENCES = {
    "de": [
        "Guten Tag, ich möchte einen Termin bei Doktor Schmidt.", "Mein Sohn hat seit gestern Fieber.",
        "Können Sie mich bitte zurückrufen?", "Ja, Dienstag passt mir gut.",
        "Ich spreche kein Französisch.", "Hallo, hier ist Frau Becker.",
    ],
    "en": [
        "Hello, I would like to book an appointment with the doctor.", "My daughter has had a fever since yesterday.",
        "Could you please call me back?", "Yes, Tuesday morning is fine.",
        "Sorry, I don't speak French.", "Hi, this is John Miller.",
    ],
    "fr": [
        "Bonjour, je voudrais prendre rendez-vous avec le docteur Martin.", "Mon fils a de la fièvre depuis hier.",
        "Pouvez-vous me rappeler, s'il vous plaît ?", "Oui, mardi matin ça me va.",
        "Je voudrais annuler mon rendez-vous.", "Allô, c'est madame Dupont.",
    ],
}


def _on_the_line(voice, text: str) -> np.ndarray:  # type: ignore[no-untyped-def]
    pcm = voice.synthesize(text)
    line = telephone(pcm, voice.sample_rate, codec="g711-alaw", noise_db=-50, seed=1)
    return int16_to_float32(resample(line, LINE_RATE_HZ, MODEL_RATE_HZ))


@pytest.fixture(scope="module")
def whisper(whisper_dir: Path) -> WhisperRecognizer:
    recognizer = WhisperRecognizer(whisper_dir)
    recognizer.warm_up()
    return recognizer


def _calls(whisper: WhisperRecognizer, voice, language: str) -> list[str]:  # type: ignore[no-untyped-def]
    """Three calls of two utterances each; what each call settled on ("fr" if never)."""
    clips = [_on_the_line(voice, text) for text in SENTENCES[language]]
    outcomes = []
    for first, second in zip(clips[0::2], clips[1::2]):
        call = CallRecognizer(whisper, offered=OFFERED, current="fr")
        heard = [call.transcribe(first).detected_language, call.transcribe(second).detected_language]
        outcomes.append(next((lang for lang in heard if lang is not None), "fr"))
    return outcomes


@pytest.mark.models
@pytest.mark.parametrize(("language", "espeak_voice"), [("de", "de"), ("en", "en-us")])
def test_german_and_english_callers_are_switched_by_their_second_utterance(
    whisper: WhisperRecognizer, language: str, espeak_voice: str
) -> None:
    assert _calls(whisper, EspeakSynthesizer(espeak_voice), language) == [language] * 3


@pytest.mark.models
@pytest.mark.parametrize(
    "caller",
    [
        "kokoro:jm_kumo",  # French with a Japanese accent: Whisper hears Romanian, Arabic, Polish
        "kokoro:jf_gongitsune",
        "espeak:fr-fr",  # robotic French: Whisper hears Thai
        "espeak:en-us",  # French words read with English rules: sounds English to Whisper
        "espeak:de",  # ... and with German rules
    ],
)
def test_french_callers_stay_in_french_whatever_their_accent(
    whisper: WhisperRecognizer, kokoro_dir: Path, caller: str
) -> None:
    engine, name = caller.split(":")
    voice = KokoroSynthesizer(kokoro_dir, KokoroSettings(voice=name)) if engine == "kokoro" else EspeakSynthesizer(name)
    assert _calls(whisper, voice, "fr") == ["fr"] * 3


@pytest.mark.models
def test_detection_costs_little_more_than_the_transcription_it_precedes(whisper: WhisperRecognizer) -> None:
    clip = _on_the_line(EspeakSynthesizer("en-us"), SENTENCES["en"][1])
    plain, detected = [], []
    for i in range(3):
        varied = clip.copy()
        varied[varied.size // 2] += 1e-3 * (i + 1)  # new audio each time: nothing remembered
        started = time.perf_counter()
        whisper.transcribe(varied, language="en")
        plain.append(time.perf_counter() - started)
        varied[varied.size // 3] += 1e-3
        started = time.perf_counter()
        whisper.detect_language(varied)
        whisper.transcribe(varied, language="en")
        detected.append(time.perf_counter() - started)
    extra = min(detected) - min(plain)
    print(f"\ntranscribe {min(plain):.2f} s; detect + transcribe {min(detected):.2f} s; extra {extra:+.2f} s")
    # The encoder pass is shared: detection adds one decoder step, not a second encoder pass.
    assert min(detected) < 1.5 * min(plain)


@pytest.mark.models
def test_a_french_call_on_a_box_offering_three_languages_books_in_french(tmp_path: Path) -> None:
    """The whole wiring (per-call recognizer, voice and switch) on a real simulated call."""
    import asyncio
    from dataclasses import replace

    from appliance.config import Config, ModelChoice
    from appliance.events import LanguageChanged
    from appliance.simulate.runner import simulate
    from appliance.simulate.scenario import load_scenario
    from appliance.speech.loading import load_speech

    from .conftest import SCENARIOS

    settings = SpeechSettings(languages=["fr", "de", "en"])
    speech = load_speech(ModelChoice(), settings)
    assert list(speech.voices) == ["fr", "de", "en"]
    assert isinstance(speech.for_call()[0], CallRecognizer)  # every call detects on its first utterances
    config = replace(Config(), data_dir=tmp_path, speech=settings)

    report = asyncio.run(simulate(load_scenario(SCENARIOS / "book_basic.toml"), mode="audio", config=config,
                                  speech=speech))

    assert report["expect"] == {"passed": True, "failures": []}, report["turns"]
    kinds = {e["kind"] for e in report["events"]}
    assert "transcript" in kinds and LanguageChanged.kind not in kinds  # heard, and never switched
