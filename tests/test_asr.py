"""Recognition: what the caller said, without Whisper's loops and inventions.

The model tests run the whole listening path on synthetic speech: Kokoro says
a sentence, the simulated French phone line (A-law) carries it, silero VAD and
the end-pointer find the turn, and Whisper transcribes the trimmed utterance.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from appliance.audio import LINE_RATE_HZ, MODEL_RATE_HZ
from appliance.audio.channel import telephone
from appliance.audio.endpoint import Endpointer, TurnEnded
from appliance.audio.framing import int16_to_float32
from appliance.audio.resample import resample
from appliance.audio.vad import SileroVad
from appliance.errors import ConfigError, ModelError, SpeechError
from appliance.speech.asr import (
    Transcript,
    WhisperRecognizer,
    WhisperSettings,
    clean_text,
    collapse_repetitions,
)
from appliance.speech.tts import KokoroSettings, KokoroSynthesizer





@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("est bon, est bon, est bon", "est bon"),
        ("C'est bon, c'est bon, c'est bon, c'est bon.", "C'est bon."),
        ("j'avoue que j'avoue que j'avoue que j'avoue que", "j'avoue que"),
        ("Je voudrais un rendez-vous, rendez-vous, rendez-vous, rendez-vous", "Je voudrais un rendez-vous"),
        ("oui oui", "oui oui"),  # twice is how people talk
        ("non non non, pas mardi", "non, pas mardi"),
        ("06 12 12 12 34", "06 12 12 12 34"),  # a phone number, not a loop
        ("Bonjour, je voudrais prendre rendez-vous.", "Bonjour, je voudrais prendre rendez-vous."),
        ("", ""),
    ],
)
def test_repetition_loops_collapse_to_one_occurrence(raw: str, expected: str) -> None:
    assert collapse_repetitions(raw) == expected


@pytest.mark.parametrize(
    ("raw", "no_speech_prob", "avg_logprob", "expected"),
    [
        ("Bonjour, je voudrais un rendez-vous.", 0.05, -0.3, "Bonjour, je voudrais un rendez-vous."),
        ("Merci.", 0.8, -1.4, ""),  # the model thinks it was not speech and is unsure
        ("Merci.", 0.8, -0.4, "Merci."),  # ... but sure of these words: a quiet caller
        ("Oui.", 0.3, -1.5, "Oui."),  # unsure, but it was speech
        ("Sous-titres réalisés par la communauté d'Amara.org", 0.2, -0.5, ""),
        ("  est bon, est bon, est bon  ", None, None, "est bon"),
    ],
)
def test_likely_inventions_are_dropped(
    raw: str, no_speech_prob: float | None, avg_logprob: float | None, expected: str
) -> None:
    settings = WhisperSettings()
    assert clean_text(raw, no_speech_prob=no_speech_prob, avg_logprob=avg_logprob, settings=settings) == expected


@pytest.mark.parametrize(
    "overrides",
    [
        {"language": "French"},
        {"compute_type": "float16"},  # no efficient float16 on these CPUs
        {"beam_size": 0},
        {"cpu_threads": 0},
        {"max_new_tokens": 500},
        {"repetition_penalty": 0.9},
    ],
)
def test_settings_are_validated(overrides: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        WhisperSettings(**overrides)  # type: ignore[arg-type]


def test_an_incomplete_model_directory_is_a_model_error(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelError) as caught:
        WhisperRecognizer(tmp_path)
    assert caught.value.code == "model-missing"
    assert "model.bin" in caught.value.detail


@pytest.fixture(scope="module")
def recognizer(whisper_dir: Path) -> WhisperRecognizer:
    return WhisperRecognizer(whisper_dir)


@pytest.fixture(scope="module")
def caller_turn(kokoro_dir: Path, silero_dir: Path) -> tuple[np.ndarray, TurnEnded]:
    """A caller's sentence on a noisy French line, at 16 kHz, and the turn the end-pointer found."""
    kokoro = KokoroSynthesizer(kokoro_dir, KokoroSettings(voice="jm_kumo"))
    sentence = kokoro.synthesize("Bonjour, je voudrais prendre rendez-vous.")
    pause = np.zeros(kokoro.sample_rate // 2, dtype=np.float32)
    call = np.concatenate([pause, sentence, pause, pause, pause])
    line = telephone(call, kokoro.sample_rate, codec="g711-alaw", noise_db=-50, seed=1)
    audio = int16_to_float32(resample(line, LINE_RATE_HZ, MODEL_RATE_HZ))

    vad = SileroVad(silero_dir)
    endpointer = Endpointer()
    turns = [event for flag in vad.accept(audio) if isinstance(event := endpointer.push(flag, vad.window_s), TurnEnded)]
    assert len(turns) == 1, "the VAD and end-pointer should find exactly one turn"
    return audio, turns[0]


@pytest.mark.models
def test_the_caller_asks_for_an_appointment_over_the_phone(
    recognizer: WhisperRecognizer, caller_turn: tuple[np.ndarray, TurnEnded]
) -> None:
    audio, turn = caller_turn
    assert 0.3 <= turn.speech_start_s <= 0.8  # the sentence starts after 0.5 s of line noise
    utterance = audio[int((turn.speech_start_s - 0.2) * MODEL_RATE_HZ) : int((turn.speech_end_s + 0.3) * MODEL_RATE_HZ)]

    transcript = recognizer.transcribe(utterance)

    assert "rendez-vous" in transcript.text.lower().replace("rendez vous", "rendez-vous")
    assert transcript.language == "fr"
    assert transcript.audio_s == pytest.approx(utterance.size / MODEL_RATE_HZ)
    assert transcript.decode_s > 0
    assert transcript.no_speech_prob is not None and transcript.no_speech_prob < 0.5


@pytest.mark.models
def test_hotwords_are_accepted(recognizer: WhisperRecognizer, caller_turn: tuple[np.ndarray, TurnEnded]) -> None:
    audio, turn = caller_turn
    utterance = audio[int(turn.speech_start_s * MODEL_RATE_HZ) : int(turn.speech_end_s * MODEL_RATE_HZ)]
    transcript = recognizer.transcribe(utterance, hotwords=["rendez-vous", "docteur Martin"])
    assert "rendez" in transcript.text.lower()


@pytest.mark.models
def test_line_hiss_alone_gives_no_text(recognizer: WhisperRecognizer) -> None:
    hiss = (np.random.default_rng(0).standard_normal(2 * MODEL_RATE_HZ) * 0.01).astype(np.float32)
    transcript = recognizer.transcribe(hiss)
    assert transcript.text == ""
    assert transcript.no_speech_prob is not None  # the figures are still reported


@pytest.mark.models
def test_no_audio_is_no_text_without_decoding(recognizer: WhisperRecognizer) -> None:
    assert recognizer.transcribe(np.zeros(0, dtype=np.float32)) == Transcript(
        text="", language="fr", audio_s=0.0, decode_s=0.0, no_speech_prob=None, avg_logprob=None
    )


@pytest.mark.models
def test_audio_beyond_one_whisper_window_is_refused(recognizer: WhisperRecognizer) -> None:
    with pytest.raises(SpeechError) as caught:
        recognizer.transcribe(np.zeros(31 * MODEL_RATE_HZ, dtype=np.float32))
    assert caught.value.code == "asr-too-long"


@pytest.mark.models
def test_a_decoder_failure_becomes_a_speech_error(
    recognizer: WhisperRecognizer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("CTranslate2 ran out of memory")

    monkeypatch.setattr(recognizer._model, "transcribe", broken)
    with pytest.raises(SpeechError) as caught:
        recognizer.transcribe(np.zeros(MODEL_RATE_HZ, dtype=np.float32))
    assert caught.value.code == "asr-failed"
    assert isinstance(caught.value.__cause__, RuntimeError)


@pytest.mark.models
def test_the_language_can_be_chosen_per_utterance(recognizer: WhisperRecognizer) -> None:
    from appliance.speech.tts import EspeakSynthesizer

    espeak = EspeakSynthesizer("en-us")
    english = resample(espeak.synthesize("Thank you very much."), espeak.sample_rate, MODEL_RATE_HZ)

    transcript = recognizer.transcribe(english, language="en")

    assert transcript.language == "en"
    assert "thank you" in transcript.text.lower()
    assert recognizer.language == "fr"  # the recognizer's own language is untouched


@pytest.mark.models
def test_language_detection_gives_whisper_probabilities_and_shares_the_encoder_pass(
    recognizer: WhisperRecognizer, caller_turn: tuple[np.ndarray, TurnEnded]
) -> None:
    audio, turn = caller_turn
    utterance = audio[int(turn.speech_start_s * MODEL_RATE_HZ) : int(turn.speech_end_s * MODEL_RATE_HZ)].copy()
    utterance[100] += 1e-3  # not a clip an earlier test already encoded
    hits = recognizer._model.encode.hits

    probabilities = recognizer.detect_language(utterance)
    recognizer.transcribe(utterance)

    assert {"fr", "de", "en"} <= set(probabilities)
    assert 0.99 < sum(probabilities.values()) <= 1.01
    assert recognizer._model.encode.hits == hits + 1  # the transcription reused the detection's encoder output
    assert recognizer.detect_language(np.zeros(0, dtype=np.float32)) == {}
