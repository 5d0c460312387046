"""Recognition with sherpa-onnx, for ONNX models a device image provisions.

No registry ships a sherpa-onnx ASR model (models.md §2), so nothing here runs
on the default install: a device image that carries a stronger model (a French
zipformer transducer, Whisper small exported to ONNX) adds a manifest with
``runtime = "sherpa-onnx-asr"`` and a ``[params]`` table naming the model's
``kind`` and its files. Three kinds:

* ``whisper``: Whisper exported to ONNX (encoder, decoder, tokens), through
  ``OfflineRecognizer.from_whisper``. Its language is fixed when the model is
  loaded, so another language loads it once more (on first use);
* ``transducer``: an offline zipformer/conformer transducer (encoder, decoder,
  joiner, tokens). With ``decoding_method = "modified_beam_search"`` the turn's
  hotwords bias it through sherpa's own context graph;
* ``streaming-transducer``: the same for a streaming model, through
  ``OnlineRecognizer``. The box still feeds it one whole turn (the end-pointer
  decides turns); streaming only changes which models can be used.

Like ``WhisperRecognizer``, ``transcribe`` is blocking native code for a worker
thread, and what a model invents on silence is cleaned by ``clean_text``'s rules
where they apply (loops are collapsed; there are no Whisper scores to judge by).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from appliance.audio import MODEL_RATE_HZ
from appliance.clock import Clock, SystemClock
from appliance.errors import ConfigError, ModelError, SpeechError
from appliance.speech.asr import Transcript, checked_audio, collapse_repetitions

_LOGGER = logging.getLogger(__name__)

SHERPA_KINDS: Final = ("whisper", "transducer", "streaming-transducer")
# The files each kind needs, as [params] keys, with the names sherpa-onnx's
# published models use when the manifest does not say otherwise.
_FILES_BY_KIND: Final = {
    "whisper": {"encoder": "encoder.onnx", "decoder": "decoder.onnx", "tokens": "tokens.txt"},
    "transducer": {
        "encoder": "encoder.onnx", "decoder": "decoder.onnx", "joiner": "joiner.onnx", "tokens": "tokens.txt",
    },
    "streaming-transducer": {
        "encoder": "encoder.onnx", "decoder": "decoder.onnx", "joiner": "joiner.onnx", "tokens": "tokens.txt",
    },
}
_DECODING_METHODS: Final = ("greedy_search", "modified_beam_search")
_MODELING_UNITS: Final = ("bpe", "cjkchar", "cjkchar+bpe")
_TAIL_PADDING_S: Final = 0.5  # a streaming model emits its last words only once more audio follows
_PARAM_KEYS: Final = {
    "kind", "language", "threads", "decoding_method", "max_active_paths", "hotwords_score",
    "modeling_unit", "bpe_vocab", *{name for files in _FILES_BY_KIND.values() for name in files},
}


@dataclass(frozen=True, kw_only=True)
class SherpaSettings:
    kind: str
    """One of ``SHERPA_KINDS``."""
    language: str = "fr"
    """Whisper: the language it transcribes in; a transducer: the language it was trained on."""
    files: Mapping[str, str]
    """Role ("encoder", "decoder", "joiner", "tokens", "bpe_vocab") -> file name in the model directory."""
    threads: int = 2
    decoding_method: str = "greedy_search"
    """A transducer's search; "modified_beam_search" also enables hotwords."""
    max_active_paths: int = 4
    hotwords_score: float = 1.5
    modeling_unit: str = "bpe"
    """How hotwords are cut into the model's tokens (with ``bpe_vocab`` for bpe models)."""

    def __post_init__(self) -> None:
        if self.kind not in SHERPA_KINDS:
            raise ConfigError(f"sherpa-onnx model kind must be one of {', '.join(SHERPA_KINDS)}, got {self.kind!r}")
        if not re.fullmatch(r"[a-z]{2,3}", self.language):
            raise ConfigError(f"sherpa-onnx model language must be a code like 'fr', got {self.language!r}")
        if not 1 <= self.threads <= 16:
            raise ConfigError(f"sherpa-onnx threads must be 1-16, got {self.threads}")
        if self.decoding_method not in _DECODING_METHODS:
            raise ConfigError(
                f"sherpa-onnx decoding_method must be one of {', '.join(_DECODING_METHODS)}, "
                f"got {self.decoding_method!r}"
            )
        if self.kind == "whisper" and self.decoding_method != "greedy_search":
            raise ConfigError("sherpa-onnx runs Whisper with greedy_search only")
        if not 1 <= self.max_active_paths <= 32:
            raise ConfigError(f"sherpa-onnx max_active_paths must be 1-32, got {self.max_active_paths}")
        if not 0.0 <= self.hotwords_score <= 10.0:
            raise ConfigError(f"sherpa-onnx hotwords_score must be 0-10, got {self.hotwords_score}")
        if self.modeling_unit not in _MODELING_UNITS:
            raise ConfigError(f"sherpa-onnx modeling_unit must be one of {', '.join(_MODELING_UNITS)}")
        for role, name in self.files.items():
            if not name or "/" in name or name.startswith("."):
                raise ConfigError(f"sherpa-onnx {role} must be a plain file name, got {name!r}")

    @property
    def hotwords(self) -> bool:
        """Whether this model can be biased towards the turn's words."""
        return self.kind != "whisper" and self.decoding_method == "modified_beam_search"

    @classmethod
    def from_params(cls, params: Mapping[str, Any], *, language: str | None = None) -> SherpaSettings:
        """From a manifest's ``[params]``: ``kind``, file names, decoding options."""
        unknown = set(params) - _PARAM_KEYS
        if unknown:
            raise ConfigError(f"sherpa-onnx model params: unknown key(s) {', '.join(sorted(unknown))}")
        kind = params.get("kind")
        if kind is None:
            raise ConfigError(f"sherpa-onnx model params need 'kind' ({' | '.join(SHERPA_KINDS)})")
        if kind not in _FILES_BY_KIND:
            raise ConfigError(f"sherpa-onnx model kind must be one of {', '.join(SHERPA_KINDS)}, got {kind!r}")
        files = {role: str(params.get(role, default)) for role, default in _FILES_BY_KIND[kind].items()}
        if "bpe_vocab" in params:
            files["bpe_vocab"] = str(params["bpe_vocab"])
        options = {k: params[k] for k in ("threads", "decoding_method", "max_active_paths", "hotwords_score",
                                          "modeling_unit") if k in params}
        return cls(kind=kind, language=str(params.get("language", language or "fr")), files=files, **options)


class SherpaRecognizer:
    """A ``Recognizer`` over sherpa-onnx's offline or online recognizer."""

    def __init__(self, model_dir: Path, settings: SherpaSettings, *, clock: Clock | None = None) -> None:
        self._settings = settings
        self._clock = clock or SystemClock()
        self._dir = Path(model_dir)
        missing = [name for name in settings.files.values() if not (self._dir / name).is_file()]
        if missing:
            raise ModelError(
                "model-missing", f"sherpa-onnx {settings.kind} model in {self._dir} lacks {', '.join(missing)}"
            )
        _check_tokens(self._dir / settings.files["tokens"])
        self._lock = threading.Lock()
        self._by_language: dict[str, Any] = {settings.language: self._load(settings.language)}

    @property
    def language(self) -> str:
        return self._settings.language

    @property
    def kind(self) -> str:
        return self._settings.kind

    def warm_up(self) -> None:
        self.transcribe(np.zeros(MODEL_RATE_HZ, dtype=np.float32))

    def detect_language(self, pcm16k: np.ndarray) -> dict[str, float]:
        """No probabilities: sherpa-onnx's language identification names one language
        without saying how sure it is, and the call's rules need that (``language.judge``).
        An empty answer means "no evidence": the call keeps its language."""
        return {}

    def transcribe(
        self, pcm16k: np.ndarray, *, hotwords: Sequence[str] = (), language: str | None = None
    ) -> Transcript:
        audio = checked_audio(pcm16k)
        audio_s = audio.size / MODEL_RATE_HZ
        language = language or self._settings.language
        if audio.size == 0:
            return Transcript(text="", language=language, audio_s=0.0, decode_s=0.0,
                              no_speech_prob=None, avg_logprob=None)
        recognizer = self._recognizer_for(language)
        started = self._clock.monotonic()
        try:
            if self._settings.kind == "streaming-transducer":
                raw = self._decode_online(recognizer, audio, hotwords)
            else:
                raw = self._decode_offline(recognizer, audio, hotwords)
        except (RuntimeError, ValueError) as err:
            raise SpeechError("asr-failed", f"sherpa-onnx: {err}") from err
        decode_s = self._clock.monotonic() - started
        return Transcript(
            text=collapse_repetitions(" ".join(raw.split())),
            language=language,
            audio_s=audio_s,
            decode_s=decode_s,
            no_speech_prob=None,
            avg_logprob=None,
        )

    def _hotword_text(self, hotwords: Sequence[str]) -> str | None:
        if not hotwords or not self._settings.hotwords:
            return None
        # sherpa-onnx's format: hotwords separated by "/"; its own tokenizer cuts
        # each into model tokens (bpe_vocab).
        return "/".join(word.strip() for word in hotwords if word.strip()) or None

    def _decode_offline(self, recognizer: Any, audio: np.ndarray, hotwords: Sequence[str]) -> str:
        words = self._hotword_text(hotwords)
        stream = recognizer.create_stream(words) if words else recognizer.create_stream()
        stream.accept_waveform(MODEL_RATE_HZ, audio)
        recognizer.decode_stream(stream)
        return str(stream.result.text)

    def _decode_online(self, recognizer: Any, audio: np.ndarray, hotwords: Sequence[str]) -> str:
        words = self._hotword_text(hotwords)
        stream = recognizer.create_stream(words) if words else recognizer.create_stream()
        stream.accept_waveform(MODEL_RATE_HZ, audio)
        stream.accept_waveform(MODEL_RATE_HZ, np.zeros(int(_TAIL_PADDING_S * MODEL_RATE_HZ), dtype=np.float32))
        stream.input_finished()
        while recognizer.is_ready(stream):
            recognizer.decode_stream(stream)
        return str(recognizer.get_result(stream))

    def _recognizer_for(self, language: str) -> Any:
        if language == self._settings.language or self._settings.kind != "whisper":
            # A transducer knows its own language(s) and takes no language token.
            return self._by_language[self._settings.language]
        with self._lock:  # two calls may ask for the same new language at once
            if language not in self._by_language:
                _LOGGER.info("loading the sherpa-onnx whisper model once more, for %s", language)
                self._by_language[language] = self._load(language)
            return self._by_language[language]

    def _load(self, language: str) -> Any:
        import sherpa_onnx  # deferred: only a box with a provisioned sherpa model needs it here

        s = self._settings
        path = {role: str(self._dir / name) for role, name in s.files.items()}
        try:
            if s.kind == "whisper":
                return sherpa_onnx.OfflineRecognizer.from_whisper(
                    encoder=path["encoder"], decoder=path["decoder"], tokens=path["tokens"],
                    language=language, task="transcribe", num_threads=s.threads,
                )
            common: dict[str, Any] = dict(
                encoder=path["encoder"], decoder=path["decoder"], joiner=path["joiner"], tokens=path["tokens"],
                num_threads=s.threads, decoding_method=s.decoding_method, max_active_paths=s.max_active_paths,
                hotwords_score=s.hotwords_score, modeling_unit=s.modeling_unit, bpe_vocab=path.get("bpe_vocab", ""),
            )
            if s.kind == "transducer":
                return sherpa_onnx.OfflineRecognizer.from_transducer(**common)
            return sherpa_onnx.OnlineRecognizer.from_transducer(**common)
        except (RuntimeError, ValueError, TypeError) as err:
            raise ModelError("model-load-failed", f"sherpa-onnx {s.kind} model in {self._dir}: {err}") from err


def _check_tokens(path: Path) -> None:
    """Refuse a tokens file sherpa-onnx could not read: it would not raise but end
    the whole process (``ReadTokens`` exits), and every call with it."""
    try:
        lines = path.read_text("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise ModelError("model-invalid", f"{path}: cannot read the tokens ({err})") from err
    for number, line in enumerate(lines, start=1):
        fields = line.split()
        # "symbol id", or just "id" when the symbol is whitespace.
        if fields and (len(fields) > 2 or not fields[-1].lstrip("-").isdigit()):
            raise ModelError("model-invalid", f"{path}: line {number} is not 'symbol id': {line[:40]!r}")
    if not any(line.strip() for line in lines):
        raise ModelError("model-invalid", f"{path}: no tokens")
