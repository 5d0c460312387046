"""The simulated phone line keeps the voice band and removes what a real line removes."""

from __future__ import annotations

import numpy as np
import pytest

from appliance.audio import LINE_RATE_HZ
from appliance.audio.channel import telephone
from appliance.audio.g711 import ulaw_decode, ulaw_encode


def tone(freq_hz: float, rate: int, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.3 * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def level_db(pcm: np.ndarray) -> float:
    body = pcm[800:-800].astype(np.float64) / 32768  # skip the filter's start-up
    return float(10 * np.log10(np.mean(body**2) + 1e-20))


@pytest.mark.parametrize("rate", [8000, 16000, 24000])
@pytest.mark.parametrize("codec", ["g711-ulaw", "g711-alaw", "linear"])
def test_out_of_band_tones_are_strongly_attenuated(rate: int, codec: str) -> None:
    reference = level_db(telephone(tone(1000, rate), rate, codec=codec))
    assert level_db(telephone(tone(100, rate), rate, codec=codec)) < reference - 30
    assert level_db(telephone(tone(3900, rate), rate, codec=codec)) < reference - 30


@pytest.mark.parametrize("freq_hz", [400, 1000, 3000])
def test_the_voice_band_passes_nearly_unchanged(freq_hz: float) -> None:
    reference = level_db(telephone(tone(1000, 16000), 16000))
    assert level_db(telephone(tone(freq_hz, 16000), 16000)) == pytest.approx(reference, abs=1.0)


def test_output_is_int16_at_the_line_rate() -> None:
    out = telephone(tone(1000, 24000, seconds=0.5), 24000)
    assert out.dtype == np.int16
    assert out.size == LINE_RATE_HZ // 2


def test_g711_output_is_already_on_the_codec_grid() -> None:
    out = telephone(tone(1000, 16000), 16000, codec="g711-ulaw")
    assert np.array_equal(ulaw_decode(ulaw_encode(out)), out)


def test_int16_and_float_input_sound_the_same() -> None:
    audio = tone(1000, 16000)
    as_int16 = np.rint(audio * 32768).astype(np.int16)
    difference = telephone(audio, 16000, codec="linear").astype(np.int32) - telephone(as_int16, 16000, codec="linear")
    assert np.abs(difference).max() <= 1


@pytest.mark.parametrize("colour", ["white", "pink"])
def test_noise_is_reproducible_from_its_seed(colour: str) -> None:
    silence = np.zeros(16000, dtype=np.float32)
    first = telephone(silence, 16000, noise_db=-40, noise_colour=colour, seed=7)
    assert np.array_equal(first, telephone(silence, 16000, noise_db=-40, noise_colour=colour, seed=7))
    assert not np.array_equal(first, telephone(silence, 16000, noise_db=-40, noise_colour=colour, seed=8))


def test_white_noise_level_is_its_dbfs_minus_what_the_band_removes() -> None:
    silence = np.zeros(16000, dtype=np.float32)
    # The 300-3400 Hz band keeps about 3/4 of white noise's power (-1.2 dB).
    measured = level_db(telephone(silence, 16000, noise_db=-30, codec="linear"))
    assert measured == pytest.approx(-31.2, abs=0.5)
    assert level_db(telephone(silence, 16000)) < -150  # and none unless asked


def test_unknown_codec_is_refused() -> None:
    with pytest.raises(ValueError, match="codec"):
        telephone(tone(1000, 8000), 8000, codec="gsm")  # type: ignore[arg-type]
