"""Speech synthesis: one sentence of French text in, float32 audio out.

No French neural voice ships on a package registry, so the main voice is
Kokoro-82M (int8 ONNX, from the Japanese voice packages) fed French phonemes
from espeak-ng: intelligible French with a Japanese timbre (models.md §3). It
is driven directly with onnxruntime, which ran it about 2.7x faster than
sherpa-onnx's Kokoro wrapper. espeak-ng on its own is the instant, robotic
fallback.

Synthesis is slow (RTF 0.3-0.6 on two x86 cores, near 1 on a Pi 5), so the
caller speaks sentence by sentence: ``split_sentences`` cuts a reply, each
sentence is synthesised in a worker thread while the previous one plays, and
``to_line_frames`` turns the result into 20 ms line frames.
"""

from __future__ import annotations

import copy
import io
import json
import logging
import re
import subprocess
import wave
from dataclasses import dataclass, field, replace
from collections.abc import Callable
from pathlib import Path
from typing import Final, Protocol

import numpy as np

from appliance.audio import LINE_RATE_HZ
from appliance.audio.framing import float32_to_int16, int16_to_float32, to_frames
from appliance.audio.resample import resample
from appliance.speech.threads import default_threads
from appliance.errors import ConfigError, ModelError, SpeechError

_LOGGER = logging.getLogger(__name__)

KOKORO_FILES: Final = ("kokoro-v1.0.int8.onnx", "vocab.json", "voices_ja.npz")
KOKORO_RATE_HZ: Final = 24000
ESPEAK_RATE_HZ: Final = 22050  # what espeak-ng writes; checked on every call
_ESPEAK: Final = "espeak-ng"
_ESPEAK_TIMEOUT_S: Final = 10.0  # a stuck phonemiser must not hold a call forever
# Kokoro's context is 512 tokens including the two 0 pads, and its voice packs
# hold one style vector per phoneme count up to 510.
_MAX_TOKENS: Final = 510
_CHUNK_PAUSE_S: Final = 0.1  # between pieces of a sentence too long for one pass
# Kokoro pads every sentence with ~0.35 s of digital silence before and ~0.5 s
# after. The leading part is pure latency on a phone call; keep a little of
# each so consonants are not clipped and sentences played back to back breathe.
_TRIM_FLOOR_DBFS: Final = -60.0
_TRIM_WINDOW_S: Final = 0.01
_KEEP_LEAD_S: Final = 0.05
_KEEP_TAIL_S: Final = 0.15
# A sentence shorter than this ("Bonjour.", "Très bien.") rides with the next:
# each Kokoro call has a fixed cost, and one-word calls get odd prosody.
_MIN_SENTENCE_CHARS: Final = 20
_LONG_SENTENCE_CHARS: Final = 90  # longer sentences are spoken clause by clause
_MIN_CLAUSE_CHARS: Final = 30
_COMMA: Final = re.compile(r"(?<=,)\s+")

# The Japanese voices render French uvular "ʁ" poorly; the trilled "r" they
# know is understood far better. Whisper round trip over 16 receptionist
# sentences (119 words), WER clean / telephone: jf_gongitsune 0.33 / 0.28 -> 0.21 / 0.22,
# jm_kumo 0.32 / 0.36 -> 0.24 / 0.32.
_KOKORO_SUBSTITUTIONS: Final = (("ʁ", "r"),)

# Dots that do not end a sentence.
_ABBREVIATIONS: Final = ("Dr", "Pr", "M", "Mme", "Mlle", "Mmes", "MM", "St", "Ste", "cf", "p", "etc", "av", "bd")
# After the end mark, or after a closing quote or bracket that follows it
# (French typography puts a space before "»").
_SENTENCE_END = re.compile(r"(?<=[.?!;…])\s+(?![»\")\]])|(?<=[.?!;…][»\")\]])\s+|(?<=[.?!;…]\s»)\s+")
_CLAUSE_MARKS: Final = ",;:.!?…—"
_CLAUSE = re.compile(rf"([{_CLAUSE_MARKS}]+)(?=\s|$)")
# Text the templates or Whisper may produce that espeak-ng reads badly.
_SPEAKABLE: Final = (
    (re.compile(r"\bDr\.?(?=\s)"), "docteur"),
    (re.compile(r"\bPr\.?(?=\s)"), "professeur"),
    (re.compile(r"\bMme(?=\s)"), "madame"),
    (re.compile(r"\bMlle(?=\s)"), "mademoiselle"),
    (re.compile(r"\bM\.(?=\s+[A-ZÉÈ])"), "monsieur"),  # espeak says "èm"
    (re.compile(r"\bn°\s?"), "numéro "),
    (re.compile(r"\brdv\b", re.IGNORECASE), "rendez-vous"),
    (re.compile(r"\b(\d{1,2})\s?h\s?(\d{2})\b"), r"\1 heures \2"),  # espeak says "neuf ache trente"
    (re.compile(r"\b(\d{1,2})\s?h\b"), r"\1 heures"),
    (re.compile(r"\b1 heures\b"), "une heure"),
    (re.compile(r"\b21 heures\b"), "vingt-et-une heures"),
    (re.compile(r"\.\.\."), "…"),
    (re.compile(r"[«»\"“”()\[\]]"), " "),  # not in Kokoro's vocabulary, and not spoken
)


class Synthesizer(Protocol):
    @property
    def sample_rate(self) -> int:
        """Rate of the audio ``synthesize`` returns, in Hz."""

    def synthesize(self, text: str) -> np.ndarray:
        """Speak one sentence; float32 mono in [-1, 1] at ``sample_rate`` (blocking)."""

    def warm_up(self) -> None:
        """Synthesise once so the first caller does not pay for lazy initialisation."""


def split_sentences(text: str) -> list[str]:
    """Cut a reply into sentences on . ? ! ; and …, keeping short ones with the next.

    Abbreviations ("Dr.", "M.") and dots inside numbers never cut; the
    punctuation stays with its sentence so the voice can intone it.
    """
    pieces: list[str] = []
    pending = ""
    for part in _SENTENCE_END.split(text.strip()):
        pending = f"{pending} {part}".strip() if pending else part.strip()
        last_word = pending.rsplit(maxsplit=1)[-1] if pending else ""
        if last_word.endswith(".") and last_word[:-1] in _ABBREVIATIONS:
            continue  # "Dr." is not the end of anything
        if pending:
            pieces.append(pending)
            pending = ""
    if pending:
        pieces.append(pending)
    merged: list[str] = []
    carry = ""
    for piece in pieces:
        piece = f"{carry} {piece}" if carry else piece
        if len(piece) < _MIN_SENTENCE_CHARS:
            carry = piece
        else:
            merged.append(piece)
            carry = ""
    if carry:
        if merged:
            merged[-1] = f"{merged[-1]} {carry}"
        else:
            merged.append(carry)
    return merged


def split_for_speech(text: str) -> list[str]:
    """Sentences, with long ones cut at their commas: the pieces a reply is spoken in.

    Time to first audio is the synthesis time of the first piece (RTF 0.3-0.6),
    so a 25-word offer spoken as one piece keeps the caller waiting for seconds.
    Cutting at a comma costs a slightly flatter intonation, not intelligibility.
    """
    pieces: list[str] = []
    for sentence in split_sentences(text):
        if len(sentence) <= _LONG_SENTENCE_CHARS:
            pieces.append(sentence)
            continue
        current = ""
        for clause in _COMMA.split(sentence):
            current = f"{current} {clause}".strip() if current else clause
            if len(current) >= _MIN_CLAUSE_CHARS:
                pieces.append(current)
                current = ""
        if current:
            if pieces and len(current) < _MIN_CLAUSE_CHARS:
                pieces[-1] = f"{pieces[-1]} {current}"
            else:
                pieces.append(current)
    return pieces


def speakable(text: str) -> str:
    """Rewrite abbreviations and clock times the way a French speaker reads them."""
    for pattern, replacement in _SPEAKABLE:
        text = pattern.sub(replacement, text)
    return re.sub(r"\s+", " ", text).strip()


def to_line_frames(audio: np.ndarray, rate: int) -> list[np.ndarray]:
    """Synthesised float audio at ``rate`` -> 160-sample int16 frames at 8 kHz."""
    line = resample(audio.astype(np.float32, copy=False), rate, LINE_RATE_HZ)
    return to_frames(float32_to_int16(line))


def _split_tokens(tokens: list[int], *, space: int, breaks: set[int], limit: int = _MAX_TOKENS) -> list[list[int]]:
    """Cut a token list into pieces of at most ``limit``: after punctuation, else between words."""
    chunks: list[list[int]] = []
    rest = _strip(tokens, space)
    while len(rest) > limit:
        # Prefer punctuation, but not so early that a tiny piece is left behind.
        cut = next((i for i in range(limit, limit // 3, -1) if rest[i - 1] in breaks), None)
        if cut is None:
            cut = next((i for i in range(limit, 0, -1) if rest[i - 1] == space), limit)
        if chunk := _strip(rest[:cut], space):
            chunks.append(chunk)
        rest = _strip(rest[cut:], space)
    if rest:
        chunks.append(rest)
    return chunks


def _strip(tokens: list[int], space: int) -> list[int]:
    start, end = 0, len(tokens)
    while start < end and tokens[start] == space:
        start += 1
    while end > start and tokens[end - 1] == space:
        end -= 1
    return tokens[start:end]


def _trim_silence(audio: np.ndarray, rate: int) -> np.ndarray:
    """Cut leading and trailing silence, keeping a short margin on each side."""
    window = int(_TRIM_WINDOW_S * rate)
    usable = audio.size // window * window
    if usable == 0:
        return audio
    power = np.mean(np.square(audio[:usable].reshape(-1, window), dtype=np.float64), axis=1)
    loud = np.flatnonzero(power > 10.0 ** (_TRIM_FLOOR_DBFS / 10.0))
    if loud.size == 0:
        return audio[:0]
    start = max(0, loud[0] * window - int(_KEEP_LEAD_S * rate))
    end = min(audio.size, (loud[-1] + 1) * window + int(_KEEP_TAIL_S * rate))
    return audio[start:end]


def _run_espeak(args: list[str], text: str) -> bytes:
    try:
        done = subprocess.run(
            [_ESPEAK, *args, "--stdin"],  # stdin, so text starting with "-" is never an option
            input=text.encode("utf-8"),
            capture_output=True,
            timeout=_ESPEAK_TIMEOUT_S,
            check=True,
        )
    except FileNotFoundError as err:
        raise SpeechError("tts-failed", f"{_ESPEAK} is not installed") from err
    except subprocess.TimeoutExpired as err:
        raise SpeechError("tts-failed", f"{_ESPEAK} took over {_ESPEAK_TIMEOUT_S} s") from err
    except subprocess.CalledProcessError as err:
        stderr = err.stderr.decode("utf-8", "replace").strip()
        raise SpeechError("tts-failed", f"{_ESPEAK} exited with {err.returncode}: {stderr}") from err
    return done.stdout


def plain_speakable(text: str) -> str:
    """Only the language-neutral rewrites: quotes and brackets out, "..." as one mark.

    For the German and English voices: "Dr." and "9h30" are read by espeak-ng's own
    rules for those languages, and the French spellings ("docteur") would be wrong.
    """
    text = text.replace("...", "…")
    text = re.sub(r"[«»\"“”()\[\]]", " ", text)
    return re.sub(r"\s+", " ", text).strip()


def phonemize(text: str, *, voice: str = "fr-fr", rewrite: Callable[[str], str] = speakable) -> str:
    """IPA for a neural voice (French by default): espeak-ng per clause, punctuation put back after each.

    espeak-ng drops punctuation from its IPA output, but Kokoro and Piper use it
    for pauses and intonation, so clauses go to espeak one by one and their
    punctuation is re-attached. espeak's "-" (clitic joins) is not a phoneme.
    ``rewrite`` spells out what espeak would misread (``speakable``: French).
    """
    parts = _CLAUSE.split(rewrite(text))
    ipa: list[str] = []
    for index in range(0, len(parts), 2):
        clause = parts[index].strip()
        punctuation = parts[index + 1] if index + 1 < len(parts) else ""
        if clause:
            raw = _run_espeak(["-v", voice, "-q", "--ipa"], clause).decode("utf-8")
            ipa.append(" ".join(raw.replace("-", "").split()))
        if punctuation:
            if ipa:
                ipa[-1] += punctuation
            else:
                ipa.append(punctuation)
    return " ".join(ipa)


# The espeak-ng voice that phonemises each language Kokoro is asked to speak.
KOKORO_ESPEAK_VOICES: Final = {"fr": "fr-fr", "de": "de", "en": "en-us"}
_GREETINGS: Final = {"fr": "Bonjour.", "de": "Guten Tag.", "en": "Hello."}  # what warm_up says


@dataclass(frozen=True, kw_only=True)
class KokoroSettings:
    voice: str = "jm_kumo"
    """One of the voices in voices_ja.npz. jm_kumo is the one Whisper still understands on a noisy line."""
    speed: float = 1.0
    threads: int = field(default_factory=default_threads)  # the cores this process may use, up to 4
    language: str = "fr"
    """What the text is in: picks espeak-ng's phonemiser (``KOKORO_ESPEAK_VOICES``)."""

    def __post_init__(self) -> None:
        if self.language not in KOKORO_ESPEAK_VOICES:
            raise ConfigError(
                f"Kokoro speaks {', '.join(KOKORO_ESPEAK_VOICES)} here, not {self.language!r}"
            )
        if not re.fullmatch(r"[a-z]{2}_[a-z]+", self.voice):
            raise ConfigError(f"tts.voice must look like 'jm_kumo', got {self.voice!r}")
        if not 0.5 <= self.speed <= 2.0:
            raise ConfigError(f"tts.speed must be 0.5-2.0, got {self.speed}")
        if not 1 <= self.threads <= 16:
            raise ConfigError(f"tts.threads must be 1-16, got {self.threads}")


class KokoroSynthesizer:
    """Kokoro-82M int8 through onnxruntime, with espeak-ng French phonemes."""

    sample_rate: Final = KOKORO_RATE_HZ

    def __init__(self, model_dir: Path, settings: KokoroSettings | None = None) -> None:
        self._settings = settings or KokoroSettings()
        model_dir = Path(model_dir)
        missing = [name for name in KOKORO_FILES if not (model_dir / name).is_file()]
        if missing:
            raise ModelError("model-missing", f"kokoro model in {model_dir} lacks {', '.join(missing)}")
        try:
            self._vocab: dict[str, int] = json.loads((model_dir / "vocab.json").read_text("utf-8"))["vocab"]
            with np.load(model_dir / "voices_ja.npz") as voices:
                if self._settings.voice not in voices.files:
                    raise ConfigError(
                        f"tts.voice {self._settings.voice!r} is not in the model; "
                        f"available: {', '.join(sorted(voices.files))}"
                    )
                # (510, 1, 256): one style vector per phoneme count.
                self._styles = np.asarray(voices[self._settings.voice], dtype=np.float32).reshape(-1, 256)
        except (OSError, ValueError, KeyError) as err:
            raise ModelError("model-load-failed", f"kokoro vocabulary or voices in {model_dir}: {err}") from err
        import onnxruntime as ort  # deferred: only the box that speaks needs it

        options = ort.SessionOptions()
        options.intra_op_num_threads = self._settings.threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: ORT's warnings would land in the journal per call
        try:
            self._session = ort.InferenceSession(
                str(model_dir / KOKORO_FILES[0]), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as err:  # ORT's errors derive from Exception directly
            raise ModelError("model-load-failed", f"kokoro in {model_dir}: {err}") from err

    def speaking(self, language: str) -> KokoroSynthesizer:
        """The same voice reading another language: shares this one's model session
        (about 300 MB of RAM not loaded twice) and only phonemises differently."""
        other = copy.copy(self)
        other._settings = replace(self._settings, language=language)  # validates the language
        return other

    def warm_up(self) -> None:
        self.synthesize(_GREETINGS[self._settings.language])

    def synthesize(self, text: str) -> np.ndarray:
        tokens = [self._vocab[symbol] for symbol in self._phonemes(text) if symbol in self._vocab]
        audio: list[np.ndarray] = []
        breaks = {self._vocab[p] for p in _CLAUSE_MARKS if p in self._vocab}
        for chunk in _split_tokens(tokens, space=self._vocab[" "], breaks=breaks):
            if audio:
                audio.append(np.zeros(int(_CHUNK_PAUSE_S * KOKORO_RATE_HZ), dtype=np.float32))
            audio.append(self._infer(chunk))
        if not audio:
            return np.zeros(0, dtype=np.float32)
        return _trim_silence(np.clip(np.concatenate(audio), -1.0, 1.0), KOKORO_RATE_HZ)

    def _phonemes(self, text: str) -> str:
        language = self._settings.language
        ipa = phonemize(
            text,
            voice=KOKORO_ESPEAK_VOICES[language],
            rewrite=speakable if language == "fr" else plain_speakable,
        )
        for espeak_symbol, kokoro_symbol in _KOKORO_SUBSTITUTIONS:
            ipa = ipa.replace(espeak_symbol, kokoro_symbol)
        unknown = {symbol for symbol in ipa if symbol not in self._vocab}
        if unknown:
            _LOGGER.debug("Kokoro has no token for %s; skipped", sorted(unknown))
        return ipa

    def _infer(self, tokens: list[int]) -> np.ndarray:
        try:
            (audio,) = self._session.run(
                None,
                {
                    "tokens": np.array([[0, *tokens, 0]], dtype=np.int64),
                    "style": self._styles[len(tokens) - 1].reshape(1, 256),
                    "speed": np.array([self._settings.speed], dtype=np.float32),
                },
            )
        except Exception as err:  # ORT's errors derive from Exception directly
            raise SpeechError("tts-failed", f"kokoro: {err}") from err
        return np.asarray(audio, dtype=np.float32).reshape(-1)


class EspeakSynthesizer:
    """espeak-ng as a subprocess: robotic, but instant and always there."""

    sample_rate: Final = ESPEAK_RATE_HZ

    def __init__(self, voice: str = "fr-fr", rate_wpm: int = 150) -> None:
        if not re.fullmatch(r"[a-z]{2,3}(-[a-z0-9]+)*", voice):
            raise ConfigError(f"tts.espeak_voice must look like 'fr-fr', got {voice!r}")
        if not 80 <= rate_wpm <= 450:
            raise ConfigError(f"tts.espeak_rate_wpm must be 80-450, got {rate_wpm}")
        self._voice = voice
        self._rate_wpm = rate_wpm

    def warm_up(self) -> None:
        self.synthesize(_GREETINGS.get(self._voice[:2], "Bonjour."))

    def synthesize(self, text: str) -> np.ndarray:
        # The French rewrites ("Dr" -> "docteur") only for a French voice.
        rewrite = speakable if self._voice.startswith("fr") else plain_speakable
        wav = _run_espeak(["-v", self._voice, "-s", str(self._rate_wpm), "--stdout"], rewrite(text))
        try:
            with wave.open(io.BytesIO(wav)) as reader:
                if reader.getnchannels() != 1 or reader.getsampwidth() != 2:
                    raise SpeechError("tts-failed", f"{_ESPEAK} wrote an unexpected WAV: {reader.getparams()}")
                rate = reader.getframerate()
                # espeak streams to stdout, so the header's length is a placeholder:
                # read what is there.
                pcm = np.frombuffer(reader.readframes(reader.getnframes()), dtype="<i2").astype(np.int16)
        except (wave.Error, EOFError) as err:
            raise SpeechError("tts-failed", f"{_ESPEAK} wrote no readable WAV: {err}") from err
        audio = int16_to_float32(pcm)
        return resample(audio, rate, ESPEAK_RATE_HZ) if rate != ESPEAK_RATE_HZ else audio
