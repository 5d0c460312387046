"""Voice activity: one speech / not-speech flag per 32 ms window of 16 kHz audio.

The detector only labels windows; deciding when a turn starts and ends is the
end-pointer's job (``appliance.audio.endpoint``), so the VAD is configured with
the smallest hang-over it allows and its own segmenting is ignored.

``SileroVad`` runs silero VAD v5/v6 through sherpa-onnx. sherpa-onnx 2.0.1 gives
no probability to Python, only decisions. With threshold ``t`` and min speech /
min silence of one window each (the smallest it accepts): speech is flagged
from the second window in a row with p > t, stays flagged while p > t - 0.15
(silero's hysteresis), and one window of hang-over follows its end. Single
windows above ``t`` are never flagged. ``EnergyVad`` is an RMS threshold: a fallback
for when the model cannot load, and a fast stand-in in unit tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final, Protocol

import numpy as np

from appliance.audio import MODEL_RATE_HZ
from appliance.errors import ConfigError, ModelError

WINDOW_SAMPLES: Final = 512  # the only window silero accepts at 16 kHz (32 ms)
SILERO_FILE: Final = "silero_vad.onnx"  # NOT silero_vad_half.onnx: sherpa-onnx aborts the process on it
# Silero v5 reads 64 samples of left context before each window; sherpa-onnx
# waits for 512 + 64 samples before its first decision. Priming it with 64 zeros
# makes flag i describe window i instead of window i - 1.
_SILERO_CONTEXT_SAMPLES: Final = 64
# Shortest durations sherpa-onnx validates: one window each.
_ONE_WINDOW_S: Final = WINDOW_SAMPLES / MODEL_RATE_HZ
# Once its buffer exceeds max_speech_duration, sherpa-onnx silently switches to
# a stricter threshold and a 0.1 s min silence; the end-pointer already cuts
# turns at max_turn_s, so keep that rule out of the way.
_SHERPA_MAX_SPEECH_S: Final = 3600.0
# Segments are popped after every window, so the buffer never holds more than
# one turn; it grows on its own if needed.
_SHERPA_BUFFER_S: Final = 30.0


class VoiceActivity(Protocol):
    @property
    def window_s(self) -> float:
        """Duration of the audio each flag describes."""

    def accept(self, pcm16k: np.ndarray) -> list[bool]:
        """Feed float32 audio at 16 kHz; one flag per window completed by it."""

    def reset(self) -> None:
        """Forget all audio (a new call or a new turn)."""


class _Windower:
    """Cuts arbitrary chunks (20 ms line frames are 320 samples at 16 kHz) into windows."""

    def __init__(self) -> None:
        self._pending = np.zeros(0, dtype=np.float32)

    def windows(self, pcm16k: np.ndarray) -> list[np.ndarray]:
        if pcm16k.ndim != 1 or pcm16k.dtype != np.float32:
            raise TypeError(f"VAD expects 1-D float32 audio at 16 kHz, got {pcm16k.dtype} {pcm16k.shape}")
        audio = np.concatenate([self._pending, pcm16k]) if self._pending.size else pcm16k
        count = audio.size // WINDOW_SAMPLES
        self._pending = audio[count * WINDOW_SAMPLES :].copy()
        return [audio[i * WINDOW_SAMPLES : (i + 1) * WINDOW_SAMPLES] for i in range(count)]

    def reset(self) -> None:
        self._pending = np.zeros(0, dtype=np.float32)


class SileroVad:
    """Silero VAD through sherpa-onnx's VoiceActivityDetector.

    sherpa-onnx ends the whole process (no exception) on some model files it
    does not understand, such as ``silero_vad_half.onnx``: only a file whose
    hash the model catalogue has verified may be handed to it.
    """

    window_s: Final = _ONE_WINDOW_S

    def __init__(self, model_dir: Path, *, threshold: float = 0.5, num_threads: int = 1) -> None:
        if not 0.05 <= threshold <= 0.95:
            raise ConfigError(f"vad.threshold must be 0.05-0.95, got {threshold}")
        if not 1 <= num_threads <= 8:
            raise ConfigError(f"vad.num_threads must be 1-8, got {num_threads}")
        model = Path(model_dir) / SILERO_FILE
        if not model.is_file():
            raise ModelError("model-missing", f"no {SILERO_FILE} in {model_dir}")
        import sherpa_onnx  # deferred: loads its own onnxruntime (27 MB)

        config = sherpa_onnx.VadModelConfig()
        config.silero_vad.model = str(model)
        config.silero_vad.threshold = threshold
        config.silero_vad.min_silence_duration = _ONE_WINDOW_S
        config.silero_vad.min_speech_duration = _ONE_WINDOW_S
        config.silero_vad.max_speech_duration = _SHERPA_MAX_SPEECH_S
        config.silero_vad.window_size = WINDOW_SAMPLES
        config.sample_rate = MODEL_RATE_HZ
        config.num_threads = num_threads
        if not config.validate():
            raise ModelError("model-load-failed", f"sherpa-onnx refused the VAD configuration for {model}")
        try:
            self._detector = sherpa_onnx.VoiceActivityDetector(config, buffer_size_in_seconds=_SHERPA_BUFFER_S)
        except (RuntimeError, ValueError) as err:
            raise ModelError("model-load-failed", f"silero VAD: {err}") from err
        self._windower = _Windower()
        self._prime()

    def _prime(self) -> None:
        self._detector.accept_waveform(np.zeros(_SILERO_CONTEXT_SAMPLES, dtype=np.float32))

    def accept(self, pcm16k: np.ndarray) -> list[bool]:
        flags = []
        for window in self._windower.windows(pcm16k):
            self._detector.accept_waveform(window)
            flags.append(self._detector.is_speech_detected())
            # Drop finished segments: we only want the flags, and they would
            # otherwise pile up for the whole call.
            while not self._detector.empty():
                self._detector.pop()
        return flags

    def reset(self) -> None:
        self._detector.reset()
        self._windower.reset()
        self._prime()


class EnergyVad:
    """Speech wherever a window's RMS level exceeds ``threshold_dbfs``.

    No model and no state beyond the pending samples: crude on a noisy line,
    but it never fails to load and it makes unit tests deterministic.
    """

    window_s: Final = _ONE_WINDOW_S

    def __init__(self, *, threshold_dbfs: float = -40.0) -> None:
        if not -90.0 <= threshold_dbfs <= 0.0:
            raise ConfigError(f"vad.threshold_dbfs must be -90-0 dBFS, got {threshold_dbfs}")
        self._threshold_power = 10.0 ** (threshold_dbfs / 10.0)
        self._windower = _Windower()

    def accept(self, pcm16k: np.ndarray) -> list[bool]:
        return [
            float(np.mean(np.square(window, dtype=np.float64))) > self._threshold_power
            for window in self._windower.windows(pcm16k)
        ]

    def reset(self) -> None:
        self._windower.reset()
