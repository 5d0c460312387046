"""Load the speech models once, verified, warmed up, and timed.

Model loading happens at start-up, never during a call: a caller must not wait
for 500 MB to come off the SD card. Each model's directory comes from its
manifest (``appliance.models``), so swapping a model is a configuration change.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from appliance.audio.resample import resample
from appliance.audio.vad import SileroVad, VoiceActivity
from appliance.config import ModelChoice, SpeechSettings
from appliance.errors import ConfigError, ModelError, SpeechError
from appliance.models import ModelCatalog, ModelManifest
from appliance.speech.asr import Recognizer, WhisperRecognizer, WhisperSettings
from appliance.speech.tts import EspeakSynthesizer, KokoroSettings, KokoroSynthesizer, Synthesizer

_LOGGER = logging.getLogger(__name__)


class FallbackSynthesizer:
    """Kokoro first; espeak-ng for a sentence Kokoro fails on, so the caller always hears an answer."""

    def __init__(self, primary: Synthesizer, fallback: Synthesizer) -> None:
        self.primary = primary
        self.fallback = fallback
        self.sample_rate = primary.sample_rate
        self.fallbacks = 0

    def synthesize(self, text: str) -> np.ndarray:
        try:
            return self.primary.synthesize(text)
        except SpeechError as err:
            self.fallbacks += 1
            _LOGGER.warning("primary voice failed (%s); speaking with espeak-ng", err.code)
            pcm = self.fallback.synthesize(text)
            return resample(pcm, self.fallback.sample_rate, self.sample_rate)

    def warm_up(self) -> None:
        self.primary.warm_up()
        self.fallback.warm_up()


@dataclass
class SpeechModels:
    vad_dir: Path
    vad_threshold: float
    recognizer: Recognizer
    synthesizer: Synthesizer
    tts_dir: Path
    """The verified TTS model directory, for other voices of the same model."""
    load_s: dict[str, float] = field(default_factory=dict)
    _voices: dict[str, Synthesizer] = field(default_factory=dict, repr=False)

    def new_vad(self) -> VoiceActivity:
        """VAD state is per call; the model file is tiny and loads in milliseconds."""
        return SileroVad(self.vad_dir, threshold=self.vad_threshold)

    def caller_voice(self, voice: str) -> Synthesizer:
        """The simulated caller's voice: the same TTS model, another speaker (loaded once)."""
        if voice not in self._voices:
            self._voices[voice] = KokoroSynthesizer(self.tts_dir, KokoroSettings(voice=voice))
        return self._voices[voice]


def _expect_runtime(catalog: ModelCatalog, name: str, role: str, runtimes: tuple[str, ...]) -> ModelManifest:
    """The manifest, if this version can run it in that role; a clear refusal otherwise."""
    manifest = catalog.get(name)
    if manifest.role != role:
        raise ModelError("model-role-mismatch", f"model {name!r} is a {manifest.role} model, configured as {role}")
    if manifest.runtime not in runtimes:
        raise ModelError(
            "model-runtime-unsupported",
            f"model {name!r} needs the {manifest.runtime} runtime, which this version cannot run as {role} "
            f"(available: {', '.join(runtimes)})",
        )
    return manifest


def load_speech(choice: ModelChoice, settings: SpeechSettings, catalog: ModelCatalog | None = None) -> SpeechModels:
    catalog = catalog or ModelCatalog(choice.manifest_dir, choice.models_dir)
    timings: dict[str, float] = {}

    def timed(name: str, build):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        try:
            value = build()
        except (ModelError, ConfigError):
            raise
        except Exception as err:  # a runtime refusing the file: name the model and the fix
            raise ModelError("model-load-failed", f"model {name!r} failed to load: {err}") from err
        timings[name] = time.perf_counter() - started
        return value

    vad_manifest = _expect_runtime(catalog, choice.vad, "vad", ("sherpa-onnx",))
    asr_manifest = _expect_runtime(catalog, choice.asr, "asr", ("faster-whisper",))
    _expect_runtime(catalog, choice.tts, "tts", ("kokoro-onnx",))
    vad_dir = catalog.ensure(choice.vad)
    threshold = float(vad_manifest.params.get("threshold", 0.5))
    # One detector is built here to time it and to fail at start-up, not on the first call.
    timed(choice.vad, lambda: SileroVad(vad_dir, threshold=threshold))
    asr_dir = catalog.ensure(choice.asr)
    asr_settings = WhisperSettings(
        language=settings.language,
        **{k: v for k, v in asr_manifest.params.items() if k in WhisperSettings.__dataclass_fields__},
    )
    recognizer = timed(choice.asr, lambda: WhisperRecognizer(asr_dir, asr_settings))
    tts_dir = catalog.ensure(choice.tts)
    tts = timed(choice.tts, lambda: KokoroSynthesizer(tts_dir, KokoroSettings(voice=settings.voice)))
    synthesizer: Synthesizer = tts
    if settings.fallback_to_espeak:
        synthesizer = FallbackSynthesizer(tts, EspeakSynthesizer())
    started = time.perf_counter()
    recognizer.warm_up()
    synthesizer.warm_up()
    timings["warm_up"] = time.perf_counter() - started
    models = SpeechModels(
        vad_dir=vad_dir,
        vad_threshold=threshold,
        recognizer=recognizer,
        synthesizer=synthesizer,
        tts_dir=tts_dir,
        load_s=timings,
    )
    _LOGGER.info("speech models ready in %.1f s", sum(timings.values()))
    return models
