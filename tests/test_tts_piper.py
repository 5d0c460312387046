"""The English voice: Piper "joe" run by onnxruntime from espeak-ng's English IPA."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from appliance.audio import FRAME_SAMPLES, MODEL_RATE_HZ
from appliance.audio.resample import resample
from appliance.errors import ConfigError, ModelError
from appliance.models import ModelCatalog
from appliance.speech.asr import WhisperRecognizer
from appliance.speech.tts import to_line_frames
from appliance.speech.tts_piper import PIPER_FILES, PiperSettings, PiperSynthesizer, phoneme_ids

IDS = {"_": 0, "^": 1, "$": 2, " ": 3, "h": 20, "ə": 59, "l": 24, "ˈ": 120, "o": 27, "ʊ": 100, ".": 10}


def test_phonemes_become_ids_with_pads_between_and_marks_around() -> None:
    assert phoneme_ids("həlˈoʊ.", IDS) == [1, 0, 20, 0, 59, 0, 24, 0, 120, 0, 27, 0, 100, 0, 10, 0, 2]


def test_symbols_the_voice_never_learnt_are_skipped() -> None:
    assert phoneme_ids("hʔo", IDS) == [1, 0, 20, 0, 27, 0, 2]


@pytest.mark.parametrize(
    "make",
    [
        lambda: PiperSettings(speed=0.2),
        lambda: PiperSettings(threads=0),
        lambda: PiperSettings(model="../voice.onnx"),
        lambda: PiperSettings(model="voice.bin"),
    ],
)
def test_settings_are_validated(make) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError):
        make()


def test_a_missing_voice_names_the_files_it_lacks(tmp_path: Path) -> None:
    (tmp_path / PIPER_FILES[0]).write_bytes(b"onnx")
    with pytest.raises(ModelError) as caught:
        PiperSynthesizer(tmp_path)
    assert caught.value.code == "model-missing"
    assert PIPER_FILES[1] in caught.value.detail


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ({"phoneme_type": "text"}, "only espeak voices"),
        ({"num_speakers": 4}, "multi-speaker"),
        ({"phoneme_id_map": {"a": [5]}}, "lacks '_'"),
    ],
)
def test_a_voice_config_it_cannot_drive_is_refused_clearly(tmp_path: Path, config: dict, problem: str) -> None:
    base = {"audio": {"sample_rate": 22050}, "espeak": {"voice": "en-us"}, "phoneme_type": "espeak",
            "num_speakers": 1, "phoneme_id_map": {"_": [0], "^": [1], "$": [2]}}
    (tmp_path / PIPER_FILES[0]).write_bytes(b"not read: the config is checked first")
    (tmp_path / PIPER_FILES[1]).write_text(json.dumps({**base, **config}))
    with pytest.raises(ModelError, match=problem):
        PiperSynthesizer(tmp_path)


@pytest.fixture(scope="module")
def joe() -> PiperSynthesizer:
    voice = PiperSynthesizer(ModelCatalog().ensure("piper-joe"))
    voice.warm_up()
    return voice


@pytest.fixture(scope="module")
def english_ears(whisper_dir: Path) -> WhisperRecognizer:
    return WhisperRecognizer(whisper_dir)


@pytest.mark.models
def test_joe_speaks_english_whisper_understands(joe: PiperSynthesizer, english_ears: WhisperRecognizer) -> None:
    sentences = {
        "Hello, you have reached the practice of Doctor Martin.": ("hello", "practice", "martin"),
        "Please leave your name and phone number after the tone.": ("name", "phone", "number"),
        "We will call you back as soon as possible.": ("call", "back", "soon"),
    }
    synth_s = audio_s = 0.0
    for sentence, key_words in sentences.items():
        started = time.perf_counter()
        pcm = joe.synthesize(sentence)
        synth_s += time.perf_counter() - started
        audio_s += pcm.size / joe.sample_rate
        heard = english_ears.transcribe(resample(pcm, joe.sample_rate, MODEL_RATE_HZ), language="en")
        assert heard.language == "en"
        assert all(word in heard.text.lower() for word in key_words), heard.text
    print(f"\npiper joe: RTF {synth_s / audio_s:.3f} over {audio_s:.1f} s of speech")


@pytest.mark.models
def test_joe_is_fast_enough_to_speak_sentence_by_sentence(joe: PiperSynthesizer) -> None:
    started = time.perf_counter()
    pcm = joe.synthesize("Your message has been recorded.")
    first_audio_s = time.perf_counter() - started
    print(f"\npiper joe: first audio after {first_audio_s:.2f} s for {pcm.size / joe.sample_rate:.1f} s of speech")
    assert joe.sample_rate == 22050
    assert 1.0 < pcm.size / joe.sample_rate < 4.0
    assert first_audio_s < pcm.size / joe.sample_rate  # faster than real time, even on a busy machine
    first_loud = np.flatnonzero(np.abs(pcm) > 0.01)[0] / joe.sample_rate
    assert first_loud < 0.1  # no dead air before the words


@pytest.mark.models
def test_joe_reaches_the_line_as_20_ms_frames(joe: PiperSynthesizer) -> None:
    frames = to_line_frames(joe.synthesize("Goodbye."), joe.sample_rate)
    assert frames and all(frame.dtype == np.int16 and frame.size == FRAME_SAMPLES for frame in frames)


@pytest.mark.models
def test_a_long_reply_is_spoken_in_pieces_without_losing_words(joe: PiperSynthesizer) -> None:
    reply = " ".join(["We will call you back tomorrow morning, between nine and eleven o'clock."] * 5)
    pcm = joe.synthesize(reply)
    single = joe.synthesize("We will call you back tomorrow morning, between nine and eleven o'clock.")
    assert pcm.size > 4 * single.size  # all five sentences are there


@pytest.mark.models
def test_nothing_to_say_is_no_audio(joe: PiperSynthesizer) -> None:
    assert joe.synthesize("").size == 0
    assert joe.synthesize("...").size == 0
