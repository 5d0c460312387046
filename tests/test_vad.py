"""Voice activity: one flag per 32 ms window, whatever size the audio arrives in."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from appliance.audio import MODEL_RATE_HZ
from appliance.audio.resample import resample
from appliance.audio.vad import WINDOW_SAMPLES, EnergyVad, SileroVad, VoiceActivity
from appliance.errors import ConfigError, ModelError
from appliance.speech.tts import EspeakSynthesizer



def tone(seconds: float, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * MODEL_RATE_HZ)) / MODEL_RATE_HZ
    return (amplitude * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * MODEL_RATE_HZ), dtype=np.float32)


def in_line_frames(vad: VoiceActivity, audio: np.ndarray) -> list[bool]:
    """Feed 20 ms pieces (320 samples at 16 kHz), as the call path does."""
    flags: list[bool] = []
    for start in range(0, audio.size, 320):
        flags += vad.accept(audio[start : start + 320])
    return flags


def test_one_flag_per_complete_window_with_the_rest_kept_for_later() -> None:
    vad = EnergyVad()
    assert vad.window_s == pytest.approx(0.032)
    assert vad.accept(tone(0.02)) == []  # 320 samples: no window yet
    assert vad.accept(tone(0.02)) == [True]  # 640: one window, 128 pending
    assert len(vad.accept(silence(1.0))) == (640 + 16000) // WINDOW_SAMPLES - 1


def test_energy_vad_hears_a_tone_and_not_silence() -> None:
    flags = EnergyVad(threshold_dbfs=-40).accept(np.concatenate([silence(0.5), tone(0.5), silence(0.5)]))
    windows = "".join("S" if f else "_" for f in flags)
    # Windows 15 and 31 straddle the tone's edges; partly loud is loud.
    assert windows == "_" * 15 + "S" * 17 + "_" * 14


def test_reset_drops_pending_audio() -> None:
    vad = EnergyVad()
    vad.accept(tone(0.02))
    vad.reset()
    assert vad.accept(tone(0.02)) == []


def test_audio_must_be_float32() -> None:
    with pytest.raises(TypeError):
        EnergyVad().accept(np.zeros(512, dtype=np.int16))


def test_thresholds_are_validated(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        EnergyVad(threshold_dbfs=10)
    with pytest.raises(ConfigError):
        SileroVad(tmp_path, threshold=1.5)


def test_a_missing_model_file_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError) as caught:
        SileroVad(tmp_path)
    assert caught.value.code == "model-missing"


@pytest.fixture(scope="module")
def silero(silero_dir: Path) -> SileroVad:
    return SileroVad(silero_dir)


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """1 s of silence, a French sentence, 1 s of silence, at 16 kHz."""
    espeak = EspeakSynthesizer(rate_wpm=140)
    said = espeak.synthesize("Bonjour, je voudrais prendre rendez-vous.")
    sentence = resample(said, espeak.sample_rate, MODEL_RATE_HZ)
    return np.concatenate([silence(1.0), sentence, silence(1.0)])


@pytest.mark.models
def test_silero_flags_the_sentence_and_not_the_silence_around_it(silero: SileroVad, speech: np.ndarray) -> None:
    silero.reset()
    flags = in_line_frames(silero, speech)

    assert len(flags) == speech.size // WINDOW_SAMPLES
    speech_windows = np.flatnonzero(flags)
    first_s = speech_windows[0] * silero.window_s
    last_s = (speech_windows[-1] + 1) * silero.window_s
    audible = np.flatnonzero(np.abs(speech) > 0.01)  # espeak adds its own silence after the words
    sentence_start_s, sentence_end_s = audible[0] / MODEL_RATE_HZ, audible[-1] / MODEL_RATE_HZ
    assert sentence_start_s - 0.05 <= first_s <= sentence_start_s + 0.15
    assert sentence_end_s - 0.3 <= last_s <= sentence_end_s + 0.1
    assert np.mean(flags[speech_windows[0] : speech_windows[-1]]) > 0.7


@pytest.mark.models
def test_silero_ignores_a_steady_tone_and_line_hiss(silero: SileroVad) -> None:
    hiss = (np.random.default_rng(0).standard_normal(MODEL_RATE_HZ * 2) * 0.01).astype(np.float32)
    silero.reset()
    assert not any(silero.accept(np.concatenate([tone(2.0), hiss])))


@pytest.mark.models
def test_silero_decisions_do_not_depend_on_chunking_and_reset_forgets(silero: SileroVad, speech: np.ndarray) -> None:
    silero.reset()
    in_frames = in_line_frames(silero, speech)
    silero.reset()
    at_once = silero.accept(speech)
    assert at_once == in_frames
