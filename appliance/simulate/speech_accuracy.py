"""Recognition accuracy: how well the box hears French callers, in figures.

``make bench`` runs this over ``tests/speech/utterances.toml``: French caller
utterances typical of a practice, each with its reference text and the
critical values it carries, typed as the box's own parsers should extract them
(``date``, ``time``, ``name``, ``phone``, ``birth_date``). Every utterance is
spoken by the simulated caller's voice (Kokoro, the voice ``simulate --audio``
uses) and heard twice:

- clean: the voice at 16 kHz, trimmed by the VAD with a call's margins and
  transcribed (``Ears.hear``, the path of the Test call page's microphone);
- telephone: the simulated caller's own rendering (``CallerAudio``: 8 kHz,
  300-3400 Hz, G.711) played into a call's ``AudioListener``: resampler, VAD,
  end-pointer and recognizer with the hotwords a call gives for that question.
  When the end-pointer cuts an utterance in two turns, the texts are joined.

Figures: word error rate (word-level Levenshtein over both texts normalized the
same way, ``wer_words``), the critical-value error rate (the box's parsers run
on the transcript; a value is wrong when they find another value or none), the
same after the box's confirmation step (``after_confirmation``, whose model is
explained there and in the README), and the recognizer's real-time factor.

Synthesized speech is cached as WAV under ``<data_dir>/bench/speech`` (keyed by
voice, model files, synthesizer code and text), and the cached file is what is
used even on the first run, so a rerun plays exactly the same voice. (The call
path's resampler dithers its 16-bit output, so a telephone transcript can still
differ by a word between runs: that is how calls behave too.)
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
import tomllib
import wave
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Final

import numpy as np

from appliance.audio import FRAME_MS, FRAME_SAMPLES, MODEL_RATE_HZ
from appliance.audio.framing import float32_to_int16, int16_to_float32
from appliance.audio.resample import resample
from appliance.clock import SystemClock
from appliance.config import Config
from appliance.dialogue.identity import parse_birth_date, parse_person_name, parse_phone
from appliance.dialogue.normalize import fold_accents, normalize
from appliance.dialogue.speakable import say_date
from appliance.dialogue.understand import parse_when
from appliance.errors import ConfigError
from appliance.simulate.caller import CallerAudio
from appliance.simulate.report import percentile
from appliance.simulate.scenario import CallerVoice
from appliance.speech import tts
from appliance.speech.hearing import Ears
from appliance.speech.loading import SpeechModels
from appliance.speech.tts import Synthesizer
from appliance.turns import AudioListener, Heard

_LOGGER = logging.getLogger(__name__)

UTTERANCES: Final = Path(__file__).resolve().parents[2] / "tests" / "speech" / "utterances.toml"
VALUE_KINDS: Final = ("date", "time", "name", "phone", "birth_date")
# What the box may just have asked (``Conversation.ask``): it chooses the hotwords
# and the end-pointer's patience, as on a call.
ASKS: Final = frozenset({
    "request", "when", "choice", "reason", "practitioner", "last_name", "first_name", "birth_date", "phone",
    "confirm", "anything_else", "message", "appointment",
})  # fmt: skip
TARGET_WER_TELEPHONE: Final = 0.15  # the issue's targets, printed beside what is reached
TARGET_CRITICAL_AFTER: Final = 0.05
_TRAILING_SILENCE_S: Final = 3.0  # longer than the longest end-of-turn silence (1.2 s), so every turn ends
_CLEAN_LEAD_S: Final = 0.3  # as the simulated caller's breath before speaking
# Written and spoken forms of one word, made one for the word error rate:
# "9h30" and "neuf heures trente" are the same three words, "1er" is "premier".
_SAME_WORD: Final = {
    "heures": "h", "heure": "h", "1er": "premier", "1ere": "premiere", "dr": "docteur", "mme": "madame",
    "mlle": "mademoiselle", "rdv": "rendez vous",
}  # fmt: skip
_CLOCK_TOKEN: Final = re.compile(r"(\d{1,2})h(\d{2})?")
# How a caller spells a name when asked "en l'épelant si possible".
_SPELLING: Final = {"-": "tiret", "'": "apostrophe", " ": "espace"}


# -- the data ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Utterance:
    id: str
    ask: str
    """What the box had just asked; "request" for the opening one."""
    text: str
    """What the caller says: the reference, and what the voice is given."""
    values: dict[str, Any]
    """Kind -> value: ``date`` and ``birth_date`` a date, ``time`` a time, ``name`` and ``phone`` text."""


@dataclass(frozen=True, slots=True)
class UtteranceSet:
    now: datetime
    """When the calls take place: relative dates ("demain", "jeudi") resolve from it."""
    utterances: tuple[Utterance, ...]


def load_utterances(path: Path = UTTERANCES) -> UtteranceSet:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        now = datetime.fromisoformat(raw["now"])
    except (OSError, tomllib.TOMLDecodeError, KeyError, ValueError) as err:
        raise ConfigError(f"{path}: {err}") from err
    if now.tzinfo is None:
        raise ConfigError(f"{path}: now must carry its UTC offset, got {raw['now']!r}")
    seen: set[str] = set()
    utterances = []
    for i, item in enumerate(raw.get("utterance", [])):
        where = f"{path}: utterance {i + 1}"
        uid, ask, text = item.get("id"), item.get("ask"), item.get("text")
        if not (isinstance(uid, str) and uid and isinstance(text, str) and text.strip()):
            raise ConfigError(f"{where}: needs an id and a text")
        if uid in seen:
            raise ConfigError(f"{where}: id {uid!r} used twice")
        seen.add(uid)
        if ask not in ASKS:
            raise ConfigError(f"{where} ({uid}): ask must be one of {', '.join(sorted(ASKS))}, got {ask!r}")
        unknown = set(item) - {"id", "ask", "text", *VALUE_KINDS}
        if unknown:
            raise ConfigError(f"{where} ({uid}): unknown keys {', '.join(sorted(unknown))}")
        try:
            values = {kind: _typed(kind, item[kind]) for kind in VALUE_KINDS if kind in item}
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{where} ({uid}): {err}") from err
        utterances.append(Utterance(uid, ask, text, values))
    return UtteranceSet(now, tuple(utterances))


def _typed(kind: str, value: object) -> Any:
    if not isinstance(value, str):
        raise TypeError(f"{kind} is written as a string, got {value!r}")
    if kind in ("date", "birth_date"):
        return date.fromisoformat(value)
    if kind == "time":
        return clock_time.fromisoformat(value)
    if kind == "phone" and not re.fullmatch(r"0\d{9}", value):
        raise ValueError(f"phone is 10 digits starting with 0, got {value!r}")
    return value


# -- what the box's parsers make of a text ------------------------------------------------


def extract(kind: str, text: str, now: datetime) -> Any:
    """The value of ``kind`` the box's own parser finds in ``text``; None when it finds none.

    ``date`` is the single day of the caller's wish (``parse_when``: a range of
    days such as "la semaine prochaine" is no date), ``time`` the precise time
    asked for ("à 10 heures", "vers 9 heures 30"; not "après 17 heures").
    """
    if kind in ("date", "time"):
        when = parse_when(text, now)
        if when is None:
            return None
        if kind == "time":
            return when.exact.time() if when.exact is not None else None
        if when.exact is not None:
            return when.exact.date()
        last = (when.window_end - timedelta(microseconds=1)).date()
        return when.window_start.date() if last == when.window_start.date() else None
    if kind == "name":
        return parse_person_name(text)
    if kind == "phone":
        return parse_phone(text)
    if kind == "birth_date":
        return parse_birth_date(text, now)
    raise ValueError(f"unknown value kind {kind!r}")


def same_value(kind: str, expected: Any, found: Any) -> bool:
    """Names compare without case or accents ("Lefevre" is the patient Lefèvre); the rest exactly."""
    if found is None:
        return False
    if kind == "name":
        return fold_accents(str(found)).lower() == fold_accents(str(expected)).lower()
    return bool(found == expected)


def wrong_values(utterance: Utterance, heard: str, now: datetime) -> list[str]:
    """The kinds of the utterance's typed values the parsers get wrong (or miss) in ``heard``."""
    return [kind for kind, value in utterance.values.items() if not same_value(kind, value, extract(kind, heard, now))]


# -- word error rate -------------------------------------------------------------------


def wer_words(text: str) -> list[str]:
    """The words compared for the word error rate.

    The box's normalizer (lower case, no punctuation or accents, numbers as
    digits), then: a clock written "9h30" is the words "9 h 30" like "neuf
    heures trente"; a few written forms are their spoken word ("1er", "Dr");
    and a run of numbers is one word, so a phone number dictated in pairs
    ("zéro six, douze, ...") and written "06 12 ..." or "0612..." compare equal.
    """
    words: list[str] = []
    for token in normalize(text).split():
        clock = _CLOCK_TOKEN.fullmatch(token)
        if clock is not None:
            words += [clock[1], "h", *([clock[2]] if clock[2] else [])]
        else:
            words += _SAME_WORD.get(token, token).split()
    joined: list[str] = []
    for word in words:
        if word.isdigit() and joined and joined[-1].isdigit():
            joined[-1] += word
        else:
            joined.append(word)
    return joined


@dataclass(frozen=True, slots=True)
class WordErrors:
    substitutions: int
    deletions: int
    insertions: int
    words: int
    """Words in the reference."""

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def rate(self) -> float:
        return self.errors / self.words if self.words else float(self.errors > 0)

    def __add__(self, other: WordErrors) -> WordErrors:
        return WordErrors(
            self.substitutions + other.substitutions, self.deletions + other.deletions,
            self.insertions + other.insertions, self.words + other.words,
        )


def word_errors(reference: str, hypothesis: str) -> WordErrors:
    """Minimum substitutions + deletions + insertions turning the reference into the hypothesis."""
    ref, hyp = wer_words(reference), wer_words(hypothesis)
    # cost[j] = (errors, substitutions, deletions, insertions) for ref[:i] -> hyp[:j]
    row = [(j, 0, 0, j) for j in range(len(hyp) + 1)]
    for i in range(1, len(ref) + 1):
        new = [(i, 0, i, 0)]
        for j in range(1, len(hyp) + 1):
            diag = row[j - 1]
            if ref[i - 1] == hyp[j - 1]:
                best = diag
            else:
                best = (diag[0] + 1, diag[1] + 1, diag[2], diag[3])
            up, left = row[j], new[j - 1]
            best = min(best, (up[0] + 1, up[1], up[2] + 1, up[3]), (left[0] + 1, left[1], left[2], left[3] + 1))
            new.append(best)
        row = new
    _, subs, dels, ins = row[-1]
    return WordErrors(subs, dels, ins, len(ref))


# -- the confirmation step ------------------------------------------------------------------


def second_attempt(kind: str, value: Any, ask: str) -> str:
    """What the caller says when the box asks again after a wrong or missing value.

    A day or a time: said again on its own ("jeudi 12 mars", "à 10 heures 30"),
    as the box says it back. A last name: said and spelled, as the box asks
    ("Pouvez-vous me redire le nom de famille, en l'épelant si possible ?"); a
    first name said again on its own. (Birth dates and phone numbers are keyed
    in: ``keyed_in``.)
    """
    if kind == "date":
        return f"{say_date(value, weekday=True, year=False)}."
    if kind == "time":
        # The hour in figures: ``say_time``'s "midi 30" is not read back as 12:30 by ``parse_when``.
        return f"À {value.hour} heures{f' {value.minute}' if value.minute else ''}."
    if kind == "name":
        if ask == "first_name":
            return f"{value}."
        letters = [_SPELLING.get(c, fold_accents(c).upper()) for c in value if c in _SPELLING or c.isalpha()]
        return f"{value}, {', '.join(letters)}."
    raise ValueError(f"a {kind} is keyed in, not said again")


def keyed_in(kind: str, value: Any, now: datetime) -> Any:
    """The value the box takes from the keypad, through the same code as a call
    (``Secretary._on_keys``): eight digits for a birth date, the digits of a number."""
    if kind == "birth_date":
        digits = value.strftime("%d%m%Y")
        return parse_birth_date(f"{digits[:2]}/{digits[2:4]}/{digits[4:]}", now)
    if kind == "phone":
        return parse_phone(value)
    raise ValueError(f"a {kind} is not keyed in")


# -- hearing ----------------------------------------------------------------------------


class CachedVoice:
    """A synthesizer whose output is kept as 16-bit WAV, and always read back from it."""

    def __init__(self, voice: Synthesizer, key: str, cache_dir: Path) -> None:
        self._voice = voice
        self._key = key
        self._dir = cache_dir
        self.sample_rate = voice.sample_rate
        self.synthesized = 0
        self.reused = 0
        self.synthesis_s = 0.0

    def synthesize(self, text: str) -> np.ndarray:
        digest = hashlib.sha256(f"{self._key}\n{self.sample_rate}\n{text}".encode()).hexdigest()[:24]
        path = self._dir / f"{digest}.wav"
        if path.is_file():
            self.reused += 1
        else:
            started = time.perf_counter()
            pcm = float32_to_int16(self._voice.synthesize(text))
            self.synthesis_s += time.perf_counter() - started
            self.synthesized += 1
            self._dir.mkdir(parents=True, exist_ok=True)
            part = path.with_suffix(".part")
            with wave.open(str(part), "wb") as out:
                out.setnchannels(1)
                out.setsampwidth(2)
                out.setframerate(self.sample_rate)
                out.writeframes(pcm.astype("<i2").tobytes())
            part.replace(path)  # a run killed mid-write leaves no truncated WAV behind
        with wave.open(str(path), "rb") as wav:
            if wav.getframerate() != self.sample_rate or wav.getnchannels() != 1 or wav.getsampwidth() != 2:
                raise ValueError(f"{path}: not the voice's format; delete the cache")
            return int16_to_float32(np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2"))


def voice_key(voice: str, model_dir: Path) -> str:
    """What the synthesized audio depends on besides the text: the voice, the model
    files and the synthesizer's code (phonemes, substitutions)."""
    parts = [voice, hashlib.sha256(Path(tts.__file__).read_bytes()).hexdigest()]
    parts += [f"{p.name}:{p.stat().st_size}" for p in sorted(model_dir.iterdir()) if p.is_file()]
    return "|".join(parts)


class _OneUtterance:
    """A line carrying one caller utterance, then trailing silence, then the end: what
    ``AudioListener`` reads of a call."""

    def __init__(self, frames: list[np.ndarray]) -> None:
        self._frames = frames

    async def inbound(self) -> AsyncIterator[np.ndarray]:
        for frame in self._frames:
            yield frame


@dataclass(frozen=True, slots=True)
class Hearing:
    text: str
    turns: int
    """Turns the end-pointer made of the utterance (0: no speech found)."""
    rtf: tuple[float, ...]
    """Decoding time / audio length, per recognised turn."""


class Hearer:
    """The box's ears, clean and on the phone, for one voice."""

    def __init__(
        self, speech: SpeechModels, config: Config, voice: CachedVoice, hotwords: Callable[[str], tuple[str, ...]]
    ) -> None:
        self._speech = speech
        self._config = config
        self._voice = voice
        self._caller = CallerAudio(voice, CallerVoice())  # the scenarios' default line: G.711 mu-law, no noise
        self._hotwords = hotwords
        self._ears = Ears(speech.new_vad, speech.recognizer, min_speech_s=config.speech.endpoint.min_speech_s)
        self.second_rtf: list[float] = []
        """Real-time factors of the second attempts (``after_confirmation``): telephone figures too."""

    def clean(self, text: str, ask: str) -> Hearing:
        pcm = resample(self._voice.synthesize(text), self._voice.sample_rate, MODEL_RATE_HZ).astype(np.float32)
        clip = np.concatenate([np.zeros(int(_CLEAN_LEAD_S * MODEL_RATE_HZ), dtype=np.float32), pcm])
        heard = self._ears.hear(clip, hotwords=self._hotwords(ask))
        rtf = (heard.asr_ms / 1000 / heard.speech_s,) if heard.speech_s else ()
        return Hearing(heard.text, int(heard.speech_s > 0), rtf)

    def telephone(self, text: str, ask: str, seed: int) -> Hearing:
        frames = self._caller.render(text, seed)
        frames += [np.zeros(FRAME_SAMPLES, dtype=np.int16)] * round(_TRAILING_SILENCE_S * 1000 / FRAME_MS)
        return asyncio.run(self._listen(frames, ask))

    async def _listen(self, frames: list[np.ndarray], ask: str) -> Hearing:
        listener = AudioListener(
            _OneUtterance(frames),  # type: ignore[arg-type]  # all a listener reads of a call
            self._speech.new_vad(),
            self._speech.recognizer,
            SystemClock(),
            self._config.speech.endpoint,
            vocabulary=lambda asked: self._hotwords(asked or ""),
        )
        texts: list[str] = []
        rtf: list[float] = []
        while True:
            turn = await listener.listen(ask)
            if not isinstance(turn, Heard):
                break  # the line went quiet or ended: the utterance is over
            texts.append(turn.text)
            if turn.audio_s:
                rtf.append(turn.asr_ms / 1000 / turn.audio_s)
        return Hearing(" ".join(t for t in texts if t), len(texts), tuple(rtf))


def caller_voice_name() -> str:
    """The simulated caller's voice (a scenario's default ``[caller]``)."""
    return CallerVoice().voice


def call_hotwords(practice: Any) -> Callable[[str], tuple[str, ...]]:
    """The hotwords a call's listener is given for each question: the very method
    (``Appliance._hotwords``), bound to a stand-in holding only what it reads."""
    from appliance.app import Appliance  # deferred: the composition root imports everything

    holder = SimpleNamespace(practice=practice)
    return lambda ask: Appliance._hotwords(holder, ask)  # type: ignore[arg-type]


# -- the whole measurement -----------------------------------------------------------------


@dataclass
class _Tally:
    wrong: dict[str, int] = field(default_factory=lambda: dict.fromkeys(VALUE_KINDS, 0))
    total: dict[str, int] = field(default_factory=lambda: dict.fromkeys(VALUE_KINDS, 0))

    def count(self, kinds: Iterable[str], wrong: Iterable[str]) -> None:
        for kind in kinds:
            self.total[kind] += 1
        for kind in wrong:
            self.wrong[kind] += 1

    def to_json(self) -> dict[str, Any]:
        wrong, total = sum(self.wrong.values()), sum(self.total.values())
        return {
            "rate": wrong / total if total else None, "wrong": wrong, "total": total,
            "by_kind": {k: {"rate": self.wrong[k] / self.total[k] if self.total[k] else None,
                            "wrong": self.wrong[k], "total": self.total[k]} for k in VALUE_KINDS},
        }  # fmt: skip



def after_confirmation(
    hearer: Hearer, utterance: Utterance, wrong: list[str], now: datetime, seed: int
) -> tuple[list[str], dict[str, str]]:
    """The values still wrong once the box has said them back and the caller has
    corrected them, and what was heard at the second attempt.

    The model, one round of correction:
    - a value heard right stays right;
    - a value heard wrong is said back (the offer and "C'est noté pour ...", the
      read-back of the name, the date of birth and the number) and a value not
      understood is asked again; the caller is assumed to notice every wrong
      read-back (whether a real caller does cannot be measured here);
    - a birth date or a phone number is then keyed in (the box says it accepts
      the keypad), exact by construction, read by the call's own keypad path;
    - a day, a time or a name is said again (``second_attempt``), synthesized
      and heard on the phone like the first time; wrong again, it stays wrong.
    """
    still_wrong: list[str] = []
    second: dict[str, str] = {}
    for kind in wrong:
        value = utterance.values[kind]
        if kind in ("birth_date", "phone"):
            fixed = same_value(kind, value, keyed_in(kind, value, now))
        else:
            ask = "when" if kind in ("date", "time") else utterance.ask  # "Quel jour et à quel moment ?"
            heard = hearer.telephone(second_attempt(kind, value, utterance.ask), ask, seed)
            hearer.second_rtf += heard.rtf
            second[kind] = heard.text
            fixed = same_value(kind, value, extract(kind, heard.text, now))
        if not fixed:
            still_wrong.append(kind)
    return still_wrong, second


def evaluate(
    speech: SpeechModels, config: Config, practice: Any, *, path: Path = UTTERANCES, cache_dir: Path | None = None
) -> dict[str, Any]:
    """Hear every utterance clean and on the phone; return the figures (JSON-ready)."""
    started = time.perf_counter()
    data = load_utterances(path)
    voice_name = caller_voice_name()
    cache = cache_dir or config.data_dir / "bench" / "speech"
    voice = CachedVoice(speech.caller_voice(voice_name), voice_key(voice_name, speech.tts_dir), cache)
    hearer = Hearer(speech, config, voice, call_hotwords(practice))

    wer = {"clean": WordErrors(0, 0, 0, 0), "telephone": WordErrors(0, 0, 0, 0)}
    raw = {"clean": _Tally(), "telephone": _Tally()}
    after = _Tally()
    rtf: dict[str, list[float]] = {"clean": [], "telephone": []}
    split_turns = 0
    results = []
    for seed, utt in enumerate(data.utterances):
        row: dict[str, Any] = {"id": utt.id, "ask": utt.ask, "reference": utt.text}
        for condition in ("clean", "telephone"):
            if condition == "clean":
                heard = hearer.clean(utt.text, utt.ask)
            else:
                heard = hearer.telephone(utt.text, utt.ask, seed)
                split_turns += heard.turns > 1
            errors = word_errors(utt.text, heard.text)
            wer[condition] += errors
            rtf[condition] += heard.rtf
            wrong = wrong_values(utt, heard.text, data.now)
            raw[condition].count(utt.values, wrong)
            row[condition] = {"heard": heard.text, "word_errors": errors.errors, "wrong": wrong}
        still_wrong, second = after_confirmation(hearer, utt, row["telephone"]["wrong"], data.now, seed)
        after.count(utt.values, still_wrong)
        row["wrong_after_confirmation"] = still_wrong
        if second:
            row["second_attempt"] = second
        results.append(row)
    rtf["telephone"] += hearer.second_rtf
    _LOGGER.info("recognition accuracy: %d utterances in %.0f s (%d synthesized)",
                 len(data.utterances), time.perf_counter() - started, voice.synthesized)

    return {
        "utterances": len(data.utterances),
        "voice": voice_name,
        "wer": {c: {"rate": e.rate, "words": e.words, "substitutions": e.substitutions,
                    "deletions": e.deletions, "insertions": e.insertions} for c, e in wer.items()},
        "critical_values": {
            "clean": raw["clean"].to_json(),
            "telephone": raw["telephone"].to_json(),
            "telephone_after_confirmation": after.to_json(),
        },
        "asr_rtf": {c: {"p50": percentile(v, 50), "p95": percentile(v, 95), "n": len(v)} for c, v in rtf.items()},
        "split_by_endpointer": split_turns,
        "targets": {"wer_telephone_max": TARGET_WER_TELEPHONE,
                    "critical_after_confirmation_max": TARGET_CRITICAL_AFTER},
        "synthesis": {"synthesized": voice.synthesized, "from_cache": voice.reused,
                      "seconds": round(voice.synthesis_s, 1), "cache": str(cache)},
        "seconds": round(time.perf_counter() - started, 1),
        "results": results,
    }  # fmt: skip


def summary_rows(figures: dict[str, Any]) -> list[tuple[str, str]]:
    """(figure, value) rows for the bench's table."""

    def pct(rate: float | None) -> str:
        return "—" if rate is None else f"{rate * 100:5.1f} %"

    wer, crit, rtf = figures["wer"], figures["critical_values"], figures["asr_rtf"]
    target_wer = figures["targets"]["wer_telephone_max"]
    target_crit = figures["targets"]["critical_after_confirmation_max"]
    rows = [
        ("WER clean (16 kHz)", f"{pct(wer['clean']['rate'])} of {wer['clean']['words']} words"),
        ("WER telephone (G.711)", f"{pct(wer['telephone']['rate'])}   target ≤ {target_wer * 100:.0f} %"),
    ]
    for label, key in (("critical clean", "clean"), ("critical telephone", "telephone"),
                       ("critical after confirmation", "telephone_after_confirmation")):
        tally = crit[key]
        target = f"   target ≤ {target_crit * 100:.0f} %" if key == "telephone_after_confirmation" else ""
        rows.append((label, f"{pct(tally['rate'])} ({tally['wrong']}/{tally['total']}){target}"))
        for kind in VALUE_KINDS:
            k = tally["by_kind"][kind]
            if k["total"]:
                rows.append((f"  {kind}", f"{pct(k['rate'])} ({k['wrong']}/{k['total']})"))
    for condition in ("clean", "telephone"):
        r = rtf[condition]
        if r["n"]:
            rows.append((f"ASR RTF {condition} p50 / p95", f"{r['p50']:.2f} / {r['p95']:.2f} (n={r['n']})"))
    synth = figures["synthesis"]
    rows.append(("utterances / time", f"{figures['utterances']} in {figures['seconds']:.0f} s "
                 f"({synth['synthesized']} synthesized, {synth['from_cache']} from cache)"))
    return rows
