"""Speech recognition: one VAD-trimmed utterance in, one ``Transcript`` out.

The only French-capable weights a package registry ships are Whisper base
(CTranslate2, run by faster-whisper). It is weak on French and has two habits
this module works around (see models.md §2):

* on hard audio it loops ("est bon, est bon, est bon"): decoding is greedy on
  temperature 0 with anti-repetition settings, and a loop that still gets
  through is collapsed to one occurrence;
* on near-silence it invents text ("Sous-titres réalisés par la communauté
  d'Amara.org"): a result the model itself rates as probably not speech is
  returned empty.

``transcribe`` is synchronous CPU-bound native code: callers run it in a worker
thread, never on the event loop. The language is fixed per utterance (the
recognizer's own by default); ``detect_language`` gives Whisper's belief about
which language an utterance is in, for ``appliance.speech.language`` to decide
on a call's language.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol

import numpy as np

from appliance.audio import MODEL_RATE_HZ
from appliance.clock import Clock, SystemClock
from appliance.speech.threads import default_threads
from appliance.errors import ConfigError, ModelError, SpeechError

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

_LOGGER = logging.getLogger(__name__)

WHISPER_FILES: Final = ("model.bin", "config.json", "tokenizer.json", "vocabulary.txt")
_COMPUTE_TYPES: Final = ("int8", "int8_float32", "int16", "float32")  # what CTranslate2 runs on a CPU
# A whole turn is cut at 20 s by the end-pointer; Whisper's window is 30 s and
# longer input would be decoded as several windows with no shared context.
_MAX_AUDIO_S: Final = 30.0
# A loop is the same words three times in a row or more; twice is how people
# talk ("oui oui", "merci merci").
_LOOP_MIN_REPEATS: Final = 3
_LOOP_MAX_WORDS: Final = 8
# Phrases Whisper produces from silence or hum, learnt from subtitled video.
_SILENCE_PHRASES: Final = (
    "sous-titres réalisés",
    "sous-titrage",
    "amara.org",
    "merci d'avoir regardé",
    "abonnez-vous",
)
_WORD_CORE = re.compile(r"[^\w']+")


@dataclass(frozen=True, slots=True)
class Transcript:
    text: str  # empty when nothing trustworthy was heard
    language: str
    audio_s: float  # length of the utterance
    decode_s: float  # processing time, for latency figures
    no_speech_prob: float | None  # Whisper's own belief that this was not speech
    avg_logprob: float | None  # mean token log-probability (closer to 0 = surer)
    detected_language: str | None = None
    """The call's language, when detection settled it on this utterance (``speech.language``)."""


class Recognizer(Protocol):
    def transcribe(self, pcm16k: np.ndarray, *, hotwords: Sequence[str] = ()) -> Transcript:
        """Transcribe one utterance of float32 audio at 16 kHz (blocking)."""

    def warm_up(self) -> None:
        """Run once on silence so the first caller does not pay for lazy initialisation."""


class MultilingualRecognizer(Recognizer, Protocol):
    """A recognizer that can be told the language per utterance and can tell which it hears."""

    @property
    def language(self) -> str:
        """The language ``transcribe`` assumes when it is given none."""

    def transcribe(
        self, pcm16k: np.ndarray, *, hotwords: Sequence[str] = (), language: str | None = None
    ) -> Transcript:
        """As ``Recognizer.transcribe``, in ``language`` (None: the recognizer's own)."""

    def detect_language(self, pcm16k: np.ndarray) -> dict[str, float]:
        """Probability of each language the model knows for this utterance (blocking)."""


@dataclass(frozen=True, kw_only=True)
class WhisperSettings:
    language: str = "fr"
    """Whisper language code, used unless a call asks for another: Whisper's own detection
    on 2 s of phone audio guesses wrong, so detection is a separate, guarded step
    (``detect_language``, ``appliance.speech.language``)."""
    compute_type: str = "int8"
    """int8 is faster and no less accurate than float32 for this model (models.md §2)."""
    beam_size: int = 5
    cpu_threads: int = field(default_factory=default_threads)  # the cores this process may use, up to 4
    max_new_tokens: int = 96
    """Caps a runaway loop; a 20 s turn is rarely over 80 tokens."""
    no_repeat_ngram_size: int = 3
    repetition_penalty: float = 1.1
    no_speech_prob_min: float = 0.6
    """Together with ``avg_logprob_max``: above this, and unsure, the text is dropped."""
    avg_logprob_max: float = -1.0

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z]{2,3}", self.language):
            raise ConfigError(f"asr.language must be a Whisper language code like 'fr', got {self.language!r}")
        if self.compute_type not in _COMPUTE_TYPES:
            raise ConfigError(f"asr.compute_type must be one of {', '.join(_COMPUTE_TYPES)}, got {self.compute_type!r}")
        for name, low, high in (
            ("beam_size", 1, 10),
            ("cpu_threads", 1, 16),
            ("max_new_tokens", 8, 440),  # Whisper's decoder holds 448 tokens, prompt included
            ("no_repeat_ngram_size", 0, 10),
        ):
            value = getattr(self, name)
            if not low <= value <= high:
                raise ConfigError(f"asr.{name} must be {low}-{high}, got {value}")
        if not 1.0 <= self.repetition_penalty <= 2.0:
            raise ConfigError(f"asr.repetition_penalty must be 1.0-2.0, got {self.repetition_penalty}")
        if not 0.0 < self.no_speech_prob_min <= 1.0:
            raise ConfigError(f"asr.no_speech_prob_min must be in (0, 1], got {self.no_speech_prob_min}")
        if not -10.0 <= self.avg_logprob_max <= 0.0:
            raise ConfigError(f"asr.avg_logprob_max must be -10-0, got {self.avg_logprob_max}")


class WhisperRecognizer:
    """Whisper (CTranslate2 format) through faster-whisper, on the CPU."""

    def __init__(self, model_dir: Path, settings: WhisperSettings | None = None, *, clock: Clock | None = None) -> None:
        self._settings = settings or WhisperSettings()
        self._clock = clock or SystemClock()
        model_dir = Path(model_dir)
        missing = [name for name in WHISPER_FILES if not (model_dir / name).is_file()]
        if missing:
            raise ModelError("model-missing", f"whisper model in {model_dir} lacks {', '.join(missing)}")
        from faster_whisper import WhisperModel  # deferred: pulls in CTranslate2 and PyAV

        try:
            self._model: WhisperModel = WhisperModel(
                str(model_dir),
                device="cpu",
                compute_type=self._settings.compute_type,
                cpu_threads=self._settings.cpu_threads,
                local_files_only=True,  # never reach for a model hub from a medical practice
            )
        except (RuntimeError, ValueError, OSError) as err:
            raise ModelError("model-load-failed", f"whisper in {model_dir}: {err}") from err
        self._model.encode = _EncoderMemo(self._model.encode)  # type: ignore[method-assign]

    @property
    def language(self) -> str:
        return self._settings.language

    def warm_up(self) -> None:
        self.transcribe(np.zeros(MODEL_RATE_HZ, dtype=np.float32))

    def detect_language(self, pcm16k: np.ndarray) -> dict[str, float]:
        """Whisper's language probabilities for the utterance: one more encoder pass
        (the 30 s window, whatever the utterance's length) and one decoder step."""
        audio = checked_audio(pcm16k)
        if audio.size == 0:
            return {}
        try:
            # Without the last frame, as ``transcribe`` cuts its window: the encoder then
            # sees the same input twice and ``_EncoderMemo`` spares the second pass.
            features = self._model.feature_extractor(audio)[..., :-1]
            _, _, probabilities = self._model.detect_language(features=features)
        except (RuntimeError, ValueError) as err:
            raise SpeechError("asr-failed", f"whisper language detection: {err}") from err
        return {language: float(p) for language, p in probabilities}

    def transcribe(
        self, pcm16k: np.ndarray, *, hotwords: Sequence[str] = (), language: str | None = None
    ) -> Transcript:
        audio = checked_audio(pcm16k)
        language = language or self._settings.language
        audio_s = audio.size / MODEL_RATE_HZ
        if audio.size == 0:
            return Transcript(
                text="", language=language, audio_s=0.0, decode_s=0.0,
                no_speech_prob=None, avg_logprob=None,
            )
        started = self._clock.monotonic()
        try:
            segments, info = self._model.transcribe(
                audio,
                language=language,
                beam_size=self._settings.beam_size,
                temperature=0.0,  # no sampling fallback: retries at higher temperature hallucinate
                condition_on_previous_text=False,
                without_timestamps=True,
                vad_filter=False,  # our VAD has already trimmed the utterance
                no_repeat_ngram_size=self._settings.no_repeat_ngram_size,
                repetition_penalty=self._settings.repetition_penalty,
                max_new_tokens=self._settings.max_new_tokens,
                # Judged here instead, so the Transcript still reports the figures.
                no_speech_threshold=None,
                hotwords=" ".join(hotwords) if hotwords else None,
            )
            decoded = list(segments)  # the generator does the actual decoding
        except (RuntimeError, ValueError) as err:
            raise SpeechError("asr-failed", f"whisper: {err}") from err
        decode_s = self._clock.monotonic() - started

        if decoded:
            no_speech_prob: float | None = max(seg.no_speech_prob for seg in decoded)
            avg_logprob: float | None = float(np.mean([seg.avg_logprob for seg in decoded]))
        else:
            no_speech_prob = avg_logprob = None
        text = clean_text(
            " ".join(seg.text.strip() for seg in decoded),
            no_speech_prob=no_speech_prob,
            avg_logprob=avg_logprob,
            settings=self._settings,
        )
        return Transcript(
            text=text,
            language=info.language,
            audio_s=audio_s,
            decode_s=decode_s,
            no_speech_prob=no_speech_prob,
            avg_logprob=avg_logprob,
        )


class _EncoderMemo:
    """Whisper's encoder with a memory of its last input and output.

    Detecting the language and then transcribing the same utterance would run
    the encoder (the costly half: always a 30 s window) twice on the same
    features. Equal input gives equal output, so a hit is always right, whichever
    call or thread computed it; one entry is enough (detection is followed at
    once by its transcription) and costs about 3 MB.
    """

    def __init__(self, encode: Callable[[np.ndarray], Any]) -> None:
        self._encode = encode
        self._last: tuple[bytes, Any] | None = None
        self.hits = 0

    def __call__(self, features: np.ndarray) -> Any:
        key = hashlib.blake2b(np.ascontiguousarray(features).tobytes(), digest_size=16).digest()
        last = self._last  # one read: another thread may replace it meanwhile
        if last is not None and last[0] == key:
            self.hits += 1
            return last[1]
        output = self._encode(features)
        self._last = (key, output)
        return output


def checked_audio(pcm16k: np.ndarray) -> np.ndarray:
    """What every recognizer takes: 1-D float at 16 kHz, at most one 30 s window."""
    if pcm16k.ndim != 1 or not np.issubdtype(pcm16k.dtype, np.floating):
        raise TypeError(f"transcribe expects 1-D float audio at 16 kHz, got {pcm16k.dtype} {pcm16k.shape}")
    audio = pcm16k.astype(np.float32, copy=False)
    audio_s = audio.size / MODEL_RATE_HZ
    if audio_s > _MAX_AUDIO_S:
        raise SpeechError("asr-too-long", f"{audio_s:.1f} s of audio; the end-pointer cuts turns well before")
    return audio


def clean_text(
    raw: str,
    *,
    no_speech_prob: float | None,
    avg_logprob: float | None,
    settings: WhisperSettings,
) -> str:
    """What Whisper wrote, minus repetition loops and text it likely invented.

    Text is dropped when it is a phrase Whisper learnt from subtitles, or when
    the model both thinks there was no speech and is unsure of its words.
    """
    text = collapse_repetitions(" ".join(raw.split()))
    if not text:
        return ""
    lowered = text.lower()
    if any(phrase in lowered for phrase in _SILENCE_PHRASES):
        _LOGGER.debug("dropped a subtitle phrase Whisper hallucinates on silence")
        return ""
    if (
        no_speech_prob is not None
        and avg_logprob is not None
        and no_speech_prob > settings.no_speech_prob_min
        and avg_logprob < settings.avg_logprob_max
    ):
        _LOGGER.debug(
            "dropped a likely hallucination (no_speech_prob=%.2f, avg_logprob=%.2f)", no_speech_prob, avg_logprob
        )
        return ""
    return text


def collapse_repetitions(text: str) -> str:
    """Collapse a run of the same 1-8 words repeated 3+ times into one occurrence.

    "c'est bon, c'est bon, c'est bon." -> "c'est bon." Words compare without
    case or punctuation; the last repetition's final punctuation is kept. Runs
    made only of digits are left alone: "06 12 12 12 34" is a phone number.
    """
    words = text.split()
    keys = [_WORD_CORE.sub("", word.lower()) for word in words]
    out: list[str] = []
    i = 0
    while i < len(words):
        collapsed = False
        for size in range(1, _LOOP_MAX_WORDS + 1):
            unit = keys[i : i + size]
            if len(unit) < size or not any(unit) or all(key.isdigit() for key in unit):
                continue
            repeats = 1
            while keys[i + repeats * size : i + (repeats + 1) * size] == unit:
                repeats += 1
            if repeats >= _LOOP_MIN_REPEATS:
                end = i + repeats * size
                out.extend(words[i : i + size - 1])
                out.append(words[end - 1])  # keeps the loop's final punctuation
                i = end
                collapsed = True
                break
        if not collapsed:
            out.append(words[i])
            i += 1
    return " ".join(out)
