"""Load the speech models once, verified, warmed up, and timed.

Model loading happens at start-up, never during a call: a caller must not wait
for 500 MB to come off the SD card. Each model's directory comes from its
manifest (``appliance.models``), so swapping a model is a configuration change:
the manifest's runtime picks the back-end (faster-whisper or sherpa-onnx for
recognition). A voice is loaded for every language the practice offers
(``speech.languages``): Kokoro for French and German, Piper "joe" for English.
"""

from __future__ import annotations

import hashlib
import logging
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import numpy as np

from appliance.audio.resample import resample
from appliance.audio.vad import SileroVad, VoiceActivity
from appliance.config import ModelChoice, SpeechSettings
from appliance.errors import ConfigError, ModelError, SpeechError
from appliance.models import ModelCatalog, ModelManifest
from appliance.speech import tts as tts_module
from appliance.speech.asr import MultilingualRecognizer, WhisperRecognizer, WhisperSettings
from appliance.speech.asr_sherpa import SherpaRecognizer, SherpaSettings
from appliance.speech.language import CallRecognizer, CallVoice, LanguageSwitch
from appliance.speech.prompt_cache import CachedSynthesizer, PromptCache
from appliance.speech.tts import EspeakSynthesizer, KokoroSettings, KokoroSynthesizer, Synthesizer
from appliance.speech.tts_piper import PiperSettings, PiperSynthesizer

_LOGGER = logging.getLogger(__name__)

ASR_RUNTIMES: Final = ("faster-whisper", "sherpa-onnx-asr")
ENGLISH_VOICE: Final = "piper-joe"
"""The manifest of the English voice (``models/piper-joe.toml``)."""
# espeak-ng's voice for each language: the instant fallback when a neural voice fails.
_ESPEAK_VOICES: Final = {"fr": "fr-fr", "de": "de", "en": "en-us"}


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
    recognizer: MultilingualRecognizer
    synthesizer: Synthesizer
    """The main language's voice (French), as every call of a French-only practice uses it."""
    tts_dir: Path
    """The verified TTS model directory, for other voices of the same model."""
    load_s: dict[str, float] = field(default_factory=dict)
    prompts: CachedSynthesizer | None = None
    """The box's voice behind its prompt cache, for the warmer; None with the cache off."""
    _voices: dict[str, Synthesizer] = field(default_factory=dict, repr=False)
    _phrases: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    language: str = "fr"
    """The practice's main language: the one every call starts in."""
    voices: dict[str, Synthesizer] = field(default_factory=dict)
    """Every offered language's voice, the main one included (``synthesizer``)."""

    @property
    def offered(self) -> tuple[str, ...]:
        return tuple(self.voices) or (self.language,)

    def for_call(self) -> tuple[MultilingualRecognizer | CallRecognizer, Synthesizer, LanguageSwitch]:
        """One call's recognizer, voice and language switch.

        With one language offered these are the shared recognizer and voice: no
        detection runs and nothing is resampled, exactly as before languages existed.
        """
        offered = self.offered
        if len(offered) == 1:
            return self.recognizer, self.synthesizer, LanguageSwitch(offered, self.language)
        recognizer = CallRecognizer(self.recognizer, offered=offered, current=self.language)
        voice = CallVoice(self.voices, self.language)
        return recognizer, voice, LanguageSwitch(offered, self.language, recognizer=recognizer, voice=voice)

    def new_vad(self, threshold: float | None = None) -> VoiceActivity:
        """VAD state is per call; the model file is tiny and loads in milliseconds.
        ``threshold``: another than the listener's (barge-in's own VAD)."""
        return SileroVad(self.vad_dir, threshold=self.vad_threshold if threshold is None else threshold)

    def phrase(self, text: str) -> np.ndarray:
        """A fixed phrase in the main voice, synthesized once per process (every
        ``Appliance`` built on these models shares it)."""
        if text not in self._phrases:
            self._phrases[text] = self.synthesizer.synthesize(text)
        return self._phrases[text]

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
    asr_manifest = _expect_runtime(catalog, choice.asr, "asr", ASR_RUNTIMES)
    tts_manifest = _expect_runtime(catalog, choice.tts, "tts", ("kokoro-onnx",))
    offered = tuple(settings.languages or (settings.language,))
    _expect_languages(asr_manifest, offered)
    if asr_manifest.runtime == "sherpa-onnx-asr":  # a mistake in its [params] stops us before anything loads
        SherpaSettings.from_params(asr_manifest.params, language=settings.language)
    english_manifest = _expect_runtime(catalog, ENGLISH_VOICE, "tts", ("piper-onnx",)) if "en" in offered else None
    vad_dir = catalog.ensure(choice.vad)
    threshold = float(vad_manifest.params.get("threshold", 0.5))
    # One detector is built here to time it and to fail at start-up, not on the first call.
    timed(choice.vad, lambda: SileroVad(vad_dir, threshold=threshold))
    asr_dir = catalog.ensure(choice.asr)
    recognizer = timed(choice.asr, lambda: load_recognizer(asr_manifest, asr_dir, settings.language))
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
    voices: dict[str, Synthesizer] = {settings.language: synthesizer}
    for language in offered:
        if language == settings.language:
            continue
        if language == "en":
            assert english_manifest is not None
            english_dir = catalog.ensure(ENGLISH_VOICE)
            piper = PiperSettings(speed=float(english_manifest.params.get("speed", 1.0)))
            voice: Synthesizer = timed(ENGLISH_VOICE, lambda: PiperSynthesizer(english_dir, piper))
        else:
            # German: Kokoro fed espeak-ng's German IPA (Whisper round trip on the phone
            # band: WER 0.30-0.40, against 0.98 for espeak-ng's own German voice).
            voice = tts.speaking(language)
        # Not behind the prompt cache: the warmer prepares the French phrases only.
        voices[language] = (
            FallbackSynthesizer(voice, EspeakSynthesizer(_ESPEAK_VOICES[language]))
            if settings.fallback_to_espeak else voice
        )
    started = time.perf_counter()
    recognizer.warm_up()
    for voice in voices.values():
        voice.warm_up()
    timings["warm_up"] = time.perf_counter() - started
    models = SpeechModels(
        vad_dir=vad_dir,
        vad_threshold=threshold,
        recognizer=recognizer,
        synthesizer=synthesizer,
        tts_dir=tts_dir,
        load_s=timings,
        prompts=prompts,
        language=settings.language,
        voices=voices,
    )
    _LOGGER.info("speech models ready in %.1f s", sum(timings.values()))
    return models


def load_recognizer(manifest: ModelManifest, directory: Path, language: str) -> MultilingualRecognizer:
    """The recognizer the manifest's runtime names, with the manifest's parameters."""
    if manifest.runtime == "sherpa-onnx-asr":
        return SherpaRecognizer(directory, SherpaSettings.from_params(manifest.params, language=language))
    settings = WhisperSettings(
        language=language,
        **{k: v for k, v in manifest.params.items() if k in WhisperSettings.__dataclass_fields__},
    )
    return WhisperRecognizer(directory, settings)


def _expect_languages(asr: ModelManifest, offered: tuple[str, ...]) -> None:
    """Refuse at start-up a language the recognizer does not know, rather than mishear every caller."""
    if not asr.languages:
        return  # the manifest does not say: trust the practice's choice
    unknown = [language for language in offered if language not in asr.languages]
    if unknown:
        raise ModelError(
            "model-language-unsupported",
            f"speech.languages offers {', '.join(unknown)}, which the recognizer {asr.name!r} does not know "
            f"(it knows {', '.join(asr.languages)}); offer fewer languages or provision another model",
        )


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
