"""Load the speech models once, verified, warmed up, and timed.

Model loading happens at start-up, never during a call: a caller must not wait
for 500 MB to come off the SD card. Each model's directory comes from its
manifest (``appliance.models``), so swapping a model is a configuration change.
"""

from __future__ import annotations

import hashlib
import logging
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from appliance.audio.resample import resample
from appliance.audio.vad import SileroVad, VoiceActivity
from appliance.config import ModelChoice, SpeechSettings
from appliance.errors import ConfigError, ModelError, SpeechError
from appliance.models import ModelCatalog, ModelManifest
from appliance.speech import tts as tts_module
from appliance.speech.asr import Recognizer, WhisperRecognizer, WhisperSettings
from appliance.speech.prompt_cache import CachedSynthesizer, PromptCache
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
    prompts: CachedSynthesizer | None = None
    """The box's voice behind its prompt cache, for the warmer; None with the cache off."""
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


def load_speech(
    choice: ModelChoice, settings: SpeechSettings, catalog: ModelCatalog | None = None, *, cache_dir: Path | None = None
) -> SpeechModels:
    """``cache_dir``: where the prompt cache lives (``speech.prompt_cache``); None, no cache."""
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
    tts_manifest = _expect_runtime(catalog, choice.tts, "tts", ("kokoro-onnx",))
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
    kokoro_settings = KokoroSettings(voice=settings.voice)
    tts = timed(choice.tts, lambda: KokoroSynthesizer(tts_dir, kokoro_settings))
    synthesizer: Synthesizer = tts
    prompts = None
    if settings.prompt_cache and cache_dir is not None:
        # Around Kokoro, inside the fallback: a sentence espeak-ng had to say is never cached as Kokoro's.
        prompts = CachedSynthesizer(
            tts, PromptCache(cache_dir, max_bytes=settings.prompt_cache_mb * 2**20),
            voice=settings.voice, model=_voice_identity(tts_manifest, kokoro_settings),
        )
        synthesizer = prompts
    if settings.fallback_to_espeak:
        synthesizer = FallbackSynthesizer(synthesizer, EspeakSynthesizer())
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
        prompts=prompts,
    )
    _LOGGER.info("speech models ready in %.1f s", sum(timings.values()))
    return models


def _voice_identity(manifest: ModelManifest, settings: KokoroSettings) -> str:
    """Everything besides the text and the voice that changes the samples, for the
    prompt cache's keys: the weights (their hashes), the speed, the phonemiser
    (espeak-ng's version) and the synthesis code (a new trimming or substitution
    rule must not leave old recordings playing)."""
    files = ";".join(f"{f.path}={f.sha256}" for f in manifest.files)
    code = hashlib.sha256(Path(tts_module.__file__).read_bytes()).hexdigest()[:16]
    return f"{manifest.name}|{files}|speed={settings.speed}|{_espeak_version()}|tts.py={code}"


def _espeak_version() -> str:
    try:
        done = subprocess.run(["espeak-ng", "--version"], capture_output=True, timeout=5, check=True)
    except (OSError, subprocess.SubprocessError):
        return "espeak-ng unknown"  # Kokoro cannot speak without it anyway: load fails on the warm-up
    return done.stdout.decode("utf-8", "replace").split(" Data at:")[0].strip()
