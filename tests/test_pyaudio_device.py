"""PyAudioDevice: choosing the card, rate fallback, and PortAudio failures in plain words.

This machine has no sound card, so a fake PortAudio (the ``pyaudio.PyAudio``
surface the device uses) stands in for cards; the fake raises the errors real
pyaudio raises (``OSError(code, text)``, ``ValueError`` from
``is_format_supported``). The real PortAudio is used where no card is needed:
with none present, opening must fail in plain words and keep ALSA's noise off
the terminal.
"""

from __future__ import annotations

import os
import re
from typing import Any

import numpy as np
import pyaudio
import pytest

from appliance.audio.tones import Goertzel
from appliance.line.audio_device import AudioDeviceError, AudioDeviceSpec
from appliance.line.pyaudio_device import DeviceInfo, PyAudioDevice, list_devices

LAPTOP = [
    # index, name, inputs, outputs, default rate
    (0, "HDA Intel PCH: ALC257 Analog (hw:0,0)", 2, 2, 48000),
    (1, "HDA Intel PCH: HDMI 0 (hw:0,3)", 0, 8, 44100),
    (2, "USB Audio Device: - (hw:1,0)", 1, 2, 48000),
    (3, "Android: USB Audio (hw:2,0)", 1, 1, 8000),
    (4, "pulse", 32, 32, 44100),
    (5, "default", 32, 32, 44100),
]


class FakeStream:
    def __init__(self, owner: FakePortAudio, kwargs: dict[str, Any]) -> None:
        self.kwargs = kwargs
        self.rate = kwargs["rate"]
        self.written = bytearray()
        self.closed = False
        self._owner = owner
        self._t = 0

    def read(self, frames: int, exception_on_overflow: bool = True) -> bytes:
        assert exception_on_overflow is False  # a late reader loses samples; that is no error
        if self._owner.read_error is not None:
            raise self._owner.read_error
        t = (self._t + np.arange(frames)) / self.rate
        self._t += frames
        return (8000 * np.sin(2 * np.pi * 440 * t)).astype("<i2").tobytes()

    def write(self, data: bytes, exception_on_underflow: bool = False) -> None:
        if self._owner.write_error is not None:
            raise self._owner.write_error
        self.written += data

    def close(self) -> None:
        self.closed = True


class FakePortAudio:
    """What ``pyaudio.PyAudio()`` returns, for a machine with ``devices``."""

    def __init__(
        self,
        devices: list[tuple[int, str, int, int, int]] = LAPTOP,
        *,
        rates: dict[int, set[int]] | None = None,
        open_error: OSError | None = None,
        default: int | None = 5,
    ) -> None:
        self.devices = devices
        self.rates = rates or {}  # device index -> the only rates it accepts (all when absent)
        self.open_error = open_error
        self.read_error: OSError | None = None
        self.write_error: OSError | None = None
        self.default = default
        self.streams: list[FakeStream] = []
        self.terminated = False

    def __call__(self) -> FakePortAudio:  # the factory PyAudioDevice calls
        return self

    def get_device_count(self) -> int:
        return len(self.devices)

    def get_device_info_by_index(self, index: int) -> dict[str, Any]:
        i, name, inputs, outputs, rate = self.devices[index]
        return {"index": i, "name": name, "maxInputChannels": inputs, "maxOutputChannels": outputs,
                "defaultSampleRate": float(rate), "hostApi": 0}

    def get_default_input_device_info(self) -> dict[str, Any]:
        if self.default is None:
            raise OSError("No Default Input Device Available")
        return self.get_device_info_by_index(self.default)

    def get_default_output_device_info(self) -> dict[str, Any]:
        if self.default is None:
            raise OSError("No Default Output Device Available")
        return self.get_device_info_by_index(self.default)

    def is_format_supported(self, rate: int, **kwargs: Any) -> bool:
        index = kwargs.get("input_device", kwargs.get("output_device"))
        if index in self.rates and rate not in self.rates[index]:
            raise ValueError("Invalid sample rate", pyaudio.paInvalidSampleRate)
        return True

    def open(self, **kwargs: Any) -> FakeStream:
        if self.open_error is not None:
            raise self.open_error
        stream = FakeStream(self, kwargs)
        self.streams.append(stream)
        return stream

    def terminate(self) -> None:
        self.terminated = True


def opened(fake: FakePortAudio, name: str = "", rate_hz: int = 8000) -> tuple[Any, FakeStream, FakeStream]:
    stream = PyAudioDevice(AudioDeviceSpec(name=name, rate_hz=rate_hz), portaudio=fake).open()
    mic, speaker = fake.streams
    return stream, mic, speaker


# -- choosing the card -----------------------------------------------------------------------


def test_the_card_is_the_first_whose_name_contains_the_setting_case_ignored() -> None:
    _, mic, speaker = opened(FakePortAudio(), "usb audio device")
    assert mic.kwargs["input"] and mic.kwargs["input_device_index"] == 2
    assert speaker.kwargs["output"] and speaker.kwargs["output_device_index"] == 2


def test_each_direction_skips_devices_without_channels_that_way() -> None:
    # "HDA Intel PCH" matches the analog codec (in+out) and HDMI (out only): HDMI never records.
    _, mic, speaker = opened(FakePortAudio(), "HDA Intel PCH")
    assert mic.kwargs["input_device_index"] == 0 and speaker.kwargs["output_device_index"] == 0
    with pytest.raises(AudioDeviceError, match="'HDMI' has no microphone"):
        opened(FakePortAudio(), "HDMI")


def test_no_name_means_the_system_default() -> None:
    _, mic, speaker = opened(FakePortAudio(), "")
    assert mic.kwargs["input_device_index"] == 5 and speaker.kwargs["output_device_index"] == 5


def test_an_unknown_card_is_refused_with_the_names_there_are() -> None:
    with pytest.raises(AudioDeviceError) as refused:
        opened(FakePortAudio(), "Quectel")
    message = str(refused.value)
    assert "no sound card named 'Quectel'" in message and "'USB Audio Device: - (hw:1,0)'" in message


def test_no_card_at_all_says_so() -> None:
    with pytest.raises(AudioDeviceError, match="sees no sound device at all"):
        opened(FakePortAudio([], default=None))


# -- rates -----------------------------------------------------------------------------------


def test_a_card_that_takes_8_khz_runs_at_8_khz_with_20_ms_buffers() -> None:
    stream, mic, speaker = opened(FakePortAudio(), "Android")
    assert mic.rate == speaker.rate == 8000 and mic.kwargs["frames_per_buffer"] == 160
    assert mic.kwargs["format"] == pyaudio.paInt16 and mic.kwargs["channels"] == 1
    samples = stream.read(160)
    assert samples.dtype == np.int16 and samples.shape == (160,)
    stream.write(samples)
    assert bytes(speaker.written) == samples.astype("<i2").tobytes()


def test_a_card_refusing_8_khz_runs_at_48_khz_and_the_stream_still_speaks_8_khz() -> None:
    fake = FakePortAudio(rates={2: {48000}})
    stream, mic, speaker = opened(fake, "USB Audio Device")
    assert mic.rate == speaker.rate == 48000 and mic.kwargs["frames_per_buffer"] == 960
    captured = np.concatenate([stream.read(160) for _ in range(50)])
    assert captured.dtype == np.int16 and len(captured) == 8000
    assert Goertzel([440.0]).shares(captured[4000:4160])[0] > 0.95  # the card's 440 Hz, now at 8 kHz
    for _ in range(50):
        stream.write(np.full(160, 1000, np.int16))
    written = len(speaker.written) // 2
    assert 6 * 8000 - 2880 <= written <= 6 * 8000  # six times the samples, less what the filter holds (<= 60 ms)


def test_a_card_accepting_no_usable_rate_is_refused_plainly() -> None:
    with pytest.raises(AudioDeviceError, match="accepts none of 8000 Hz, 16000 Hz, 48000 Hz"):
        opened(FakePortAudio(rates={2: {44100}}, devices=[(2, "USB Audio Device", 1, 1, 48000)]), "USB")


# -- failures in plain words -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "says"),
    [
        (OSError(pyaudio.paDeviceUnavailable, "Device unavailable"), "is busy: another program is using it"),
        (OSError(pyaudio.paInvalidDevice, "Invalid device"), "is not available (unplugged?)"),
        (OSError(pyaudio.paUnanticipatedHostError, "Unanticipated host error"), "unplugged, or taken"),
        (OSError(-9000, "Something new"), "Something new"),
    ],
)
def test_opening_failures_become_audio_device_errors_that_say_what_to_do(error: OSError, says: str) -> None:
    fake = FakePortAudio(open_error=error)
    with pytest.raises(AudioDeviceError, match=re.escape(says)) as failed:
        opened(fake, "USB")
    assert "opening the microphone" in str(failed.value)
    assert fake.terminated  # PortAudio is not left running after a failed open


def test_a_card_unplugged_mid_call_fails_reads_and_writes_with_audio_device_errors() -> None:
    fake = FakePortAudio()
    stream, _, _ = opened(fake, "USB")
    fake.read_error = OSError(pyaudio.paUnanticipatedHostError, "Unanticipated host error")
    fake.write_error = OSError(pyaudio.paTimedOut, "Wait timed out")
    with pytest.raises(AudioDeviceError, match="unplugged"):
        stream.read(160)
    with pytest.raises(AudioDeviceError, match="stopped answering"):
        stream.write(np.zeros(160, np.int16))


def test_a_sound_system_that_cannot_start_is_an_audio_device_error() -> None:
    def broken() -> Any:
        raise OSError(pyaudio.paNotInitialized, "PortAudio not initialized")

    with pytest.raises(AudioDeviceError, match="sound system could not start"):
        PyAudioDevice(AudioDeviceSpec(), portaudio=broken).open()


def test_closing_releases_both_directions_and_portaudio_once() -> None:
    fake = FakePortAudio()
    stream, mic, speaker = opened(fake, "USB")
    stream.close()
    stream.close()
    assert mic.closed and speaker.closed and fake.terminated
    with pytest.raises(AudioDeviceError, match="closed"):
        stream.read(160)


def test_list_devices_describes_every_device() -> None:
    devices = list_devices(portaudio=FakePortAudio())
    usb = DeviceInfo(index=2, name="USB Audio Device: - (hw:1,0)", inputs=1, outputs=2, default_rate_hz=48000)
    assert devices[2] == usb
    assert str(devices[1]) == "[1] HDA Intel PCH: HDMI 0 (hw:0,3) (out, 44100 Hz)"


# -- stderr ----------------------------------------------------------------------------------


def test_probing_noise_is_kept_off_stderr_and_other_messages_are_not(capfd: pytest.CaptureFixture[str]) -> None:
    def noisy() -> FakePortAudio:
        os.write(2, b"ALSA lib pcm.c:2666:(snd_pcm_open_noupdate) Unknown PCM cards.pcm.rear\n")
        os.write(2, b"jack server is not running or cannot be started\n")
        os.write(2, b"something another thread had to say\n")
        return FakePortAudio()

    PyAudioDevice(AudioDeviceSpec(name="USB"), portaudio=noisy).open()
    err = capfd.readouterr().err
    assert "ALSA lib" not in err and "jack server" not in err
    assert "something another thread had to say" in err


def test_the_real_portaudio_without_a_card_fails_plainly_and_quietly(capfd: pytest.CaptureFixture[str]) -> None:
    if list_devices():
        pytest.skip("this machine has a sound card; the test would open it")
    with pytest.raises(AudioDeviceError) as failed:
        PyAudioDevice(AudioDeviceSpec(name="")).open()
    assert "no sound card with a microphone" in str(failed.value)
    with pytest.raises(AudioDeviceError, match="no sound card named 'USB'"):
        PyAudioDevice(AudioDeviceSpec(name="USB")).open()
    assert "ALSA lib" not in capfd.readouterr().err
