"""Resampling keeps tones, removes what the new rate cannot carry, and streams seamlessly."""

from __future__ import annotations

import numpy as np
import pytest

from appliance.audio import FRAME_SAMPLES, LINE_RATE_HZ, MODEL_RATE_HZ
from appliance.audio.framing import float32_to_int16, from_frames, int16_to_float32, to_frames
from appliance.audio.resample import StreamResampler, resample


def tone(freq_hz: float, rate: int, seconds: float = 1.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def rms(x: np.ndarray) -> float:
    x = x.astype(np.float64)
    return float(np.sqrt(np.mean(x**2)))


def dominant_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.fft.rfftfreq(x.size, 1 / rate)[np.argmax(spectrum)])


@pytest.mark.parametrize(("in_rate", "out_rate"), [(8000, 16000), (16000, 8000), (24000, 8000), (22050, 16000)])
def test_a_tone_keeps_its_pitch_level_and_length(in_rate: int, out_rate: int) -> None:
    out = resample(tone(440, in_rate), in_rate, out_rate)
    assert out.dtype == np.float32
    assert abs(out.size - out_rate) <= 1
    assert abs(dominant_hz(out, out_rate) - 440) < 2
    assert rms(out[100:-100]) == pytest.approx(0.5 / np.sqrt(2), rel=0.02)


def test_downsampling_removes_what_would_alias() -> None:
    # 5 kHz cannot exist at 8 kHz; np.interp would fold it to 3 kHz at full level.
    out = resample(tone(5000, 24000), 24000, 8000)
    assert rms(out[100:-100]) < 0.5 / np.sqrt(2) * 10 ** (-60 / 20)


def test_int16_in_int16_out_saturating_on_overshoot() -> None:
    square = np.where(np.arange(800) % 40 < 20, 32767, -32768).astype(np.int16)
    out = resample(square, 8000, 16000)
    assert out.dtype == np.int16
    assert out.max() == 32767 and out.min() == -32768  # ringing clipped, not wrapped


def test_equal_rates_and_empty_input_are_copies() -> None:
    pcm = np.arange(10, dtype=np.int16)
    assert np.array_equal(resample(pcm, 8000, 8000), pcm)
    assert resample(pcm, 8000, 8000) is not pcm
    assert resample(np.zeros(0, dtype=np.int16), 8000, 16000).size == 0


def test_bad_rates_and_shapes_are_refused() -> None:
    with pytest.raises(ValueError):
        resample(np.zeros(10, dtype=np.int16), 0, 8000)
    with pytest.raises(ValueError):
        resample(np.zeros((10, 2), dtype=np.int16), 8000, 16000)


def test_a_stream_of_line_frames_equals_resampling_the_whole() -> None:
    pcm = float32_to_int16(tone(440, 8000, seconds=2.0))
    stream = StreamResampler(8000, 16000)
    pieces = [stream.process(frame) for frame in to_frames(pcm)]
    streamed = np.concatenate([*pieces, stream.flush()])
    whole = resample(pcm, 8000, 16000)

    assert streamed.dtype == np.int16
    assert streamed.size == whole.size == 32000
    assert np.abs(streamed.astype(np.int32) - whole).max() <= 2  # rounding only


def test_after_flush_a_new_stream_starts_clean() -> None:
    stream = StreamResampler(8000, 16000)
    pcm = float32_to_int16(tone(440, 8000))
    first = np.concatenate([stream.process(pcm), stream.flush()])
    second = np.concatenate([stream.process(pcm), stream.flush()])
    assert np.array_equal(first, second)


def test_a_stream_refuses_the_wrong_sample_type() -> None:
    with pytest.raises(TypeError):
        StreamResampler(8000, 16000).process(np.zeros(160, dtype=np.float32))
    with pytest.raises(ValueError):
        StreamResampler(8000, 16000, dtype=np.int32)


def test_frames_are_160_samples_and_the_last_is_padded_with_silence() -> None:
    pcm = np.arange(1, 401, dtype=np.int16)
    frames = to_frames(pcm)
    assert [f.size for f in frames] == [FRAME_SAMPLES] * 3
    assert all(f.dtype == np.int16 for f in frames)
    assert np.array_equal(from_frames(frames)[:400], pcm)
    assert not from_frames(frames)[400:].any()
    assert to_frames(np.zeros(0, dtype=np.int16)) == []


def test_float_int16_conversion_is_exact_one_way_and_clips_the_other() -> None:
    pcm = np.array([-32768, -1, 0, 1, 32767], dtype=np.int16)
    assert np.array_equal(float32_to_int16(int16_to_float32(pcm)), pcm)
    assert float32_to_int16(np.array([1.5, -1.5, 1.0, -1.0], dtype=np.float32)).tolist() == [
        32767, -32768, 32767, -32768,
    ]


def test_a_float_stream_gives_the_same_samples_for_the_same_call() -> None:
    # The call path upsamples the line in float: an int16 stream is dithered, and
    # the same audio would reach the recognizer slightly different each time.
    line = (np.random.default_rng(1).standard_normal(LINE_RATE_HZ) * 3000).astype(np.int16)

    def heard() -> bytes:
        stream = StreamResampler(LINE_RATE_HZ, MODEL_RATE_HZ, dtype=np.float32)
        chunks = [stream.process(int16_to_float32(line[i : i + 160])) for i in range(0, line.size, 160)]
        return np.concatenate(chunks).tobytes()

    assert len({heard() for _ in range(5)}) == 1
