"""A call's language: heard on the first utterances, then fixed; and the voice that goes with it.

The practice chooses which languages are offered (``speech.languages``). With
only one, none of this runs: the shared recognizer and voice serve the call as
they always did. With more, three per-call objects work together:

* ``CallRecognizer`` asks Whisper which language the first utterances are in
  and ``judge``s the answer. Whisper base is a weak judge on phone audio (it
  calls synthetic French "Thai" or "Romanian", and French read with English
  sounds "English" at p = 0.91), so the rules are conservative: only offered
  languages count, the main language wins as soon as Whisper gives it an even
  chance, and another language needs either near-certainty on one utterance or
  a majority on two in a row. A wrong switch (a French caller answered in
  English) is worse than a missed one (an English caller hears French once more
  and is switched on their next sentence).
* ``CallVoice`` speaks with the voice of the call's current language.
* ``LanguageSwitch`` is what the dialogue holds: ``offered``, ``current`` and
  ``switch(language)``, which moves recognition and voice together.

A decision is reported on the ``Transcript`` (``detected_language``) and from
there on the ``Heard`` turn; the dialogue decides whether to ``switch``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Final

import numpy as np

from appliance.audio import MODEL_RATE_HZ
from appliance.audio.resample import resample
from appliance.errors import ConfigError
from appliance.speech.asr import MultilingualRecognizer, Transcript
from appliance.speech.tts import Synthesizer

_LOGGER = logging.getLogger(__name__)

LANGUAGE_NAMES: Final = {"fr": "French", "de": "German", "en": "English"}
_HEAD_SAMPLES: Final = MODEL_RATE_HZ // 10  # an utterance's first 0.1 s tell a re-hearing of it
_PENDING_REPORTS: Final = 2  # transcripts that carry a decision for another language


@dataclass(frozen=True, kw_only=True)
class DetectionSettings:
    min_audio_s: float = 1.0
    """Shorter utterances ("oui", "allô") carry too little to judge and are not checked."""
    keep_prob: float = 0.5
    """Whisper gives the current language at least this: the call stays in it, detection ends."""
    sure_prob: float = 0.95
    """Another offered language this likely on one utterance switches at once ... French
    words read with English sounds reached 0.91 on the test callers; real English 0.95."""
    sure_current_max: float = 0.02
    """... provided the current language is given no more than this."""
    lean_prob: float = 0.5
    """Another offered language this likely on two detected utterances in a row switches."""
    max_turns: int = 2
    """Utterances detection runs on; after them the call keeps its language (and the cost ends)."""

    def __post_init__(self) -> None:
        for name in ("keep_prob", "sure_prob", "sure_current_max", "lean_prob"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise ConfigError(f"language detection {name} must be in (0, 1], got {value}")
        if self.lean_prob > self.sure_prob:
            raise ConfigError("language detection lean_prob must not exceed sure_prob")
        if not 0.0 <= self.min_audio_s <= 10.0:
            raise ConfigError(f"language detection min_audio_s must be 0-10 s, got {self.min_audio_s}")
        if not 1 <= self.max_turns <= 5:
            raise ConfigError(f"language detection max_turns must be 1-5, got {self.max_turns}")


@dataclass(frozen=True, slots=True)
class Verdict:
    language: str
    """The language to transcribe this utterance in."""
    decided: bool
    """The call's language is settled: detection stops."""
    leaning: str | None = None
    """Undecided, but this utterance favoured that offered language: remembered for the next."""


def judge(
    probabilities: Mapping[str, float],
    *,
    offered: Sequence[str],
    current: str,
    leaning: str | None = None,
    turn: int = 1,
    settings: DetectionSettings = DetectionSettings(),
) -> Verdict:
    """Decide from Whisper's language probabilities for one utterance (pure).

    ``leaning`` is what the previous detected utterance favoured; ``turn`` counts
    detected utterances from 1. Probabilities are Whisper's own, over its ~100
    languages, never renormalised over the offered ones: a Japanese-sounding
    French voice gets 0.02 French and 0.09 English, and renormalising would make
    that a confident "English".
    """
    p_current = probabilities.get(current, 0.0)
    others = [language for language in offered if language != current]
    if p_current >= settings.keep_prob or not others:
        return Verdict(current, decided=True)
    best = max(others, key=lambda language: probabilities.get(language, 0.0))
    p_best = probabilities.get(best, 0.0)
    if p_best >= settings.sure_prob and p_current <= settings.sure_current_max:
        return Verdict(best, decided=True)
    lean = best if p_best >= settings.lean_prob and p_best > p_current else None
    if lean is not None and lean == leaning:
        return Verdict(best, decided=True)
    if turn >= settings.max_turns:
        return Verdict(current, decided=True)
    return Verdict(current, decided=False, leaning=lean)


@dataclass(frozen=True, slots=True)
class _Detection:
    """Where one call's detection stands (replaced whole, so it can be rolled back)."""

    detecting: bool
    turns: int = 0
    leaning: str | None = None
    pending: str | None = None
    """Decided on another language that the call has not switched to yet."""
    reports_left: int = 0


class CallRecognizer:
    """One call's recognizer: the shared model, in the call's language, detecting it at first.

    Implements ``Recognizer``. Made per call (it holds the call's state); the
    model underneath is shared by every call and is thread-safe.

    Two things the listener does shape the state kept here:
    * it may transcribe a turn early, at a pause, and throw the result away when
      the caller goes on; the whole turn is then transcribed again from the same
      first sample. Such a re-hearing replaces the earlier verdict instead of
      adding to it (two verdicts on one utterance are not "two in a row");
    * a thrown-away result may be the very one that settled the language, so a
      decision for another language is reported on the next transcripts too
      (``_PENDING_REPORTS``), in that language, until the dialogue ``use``s it;
      a dialogue that declines leaves the call in its language after that.
    """

    def __init__(
        self,
        inner: MultilingualRecognizer,
        *,
        offered: Sequence[str],
        current: str,
        settings: DetectionSettings | None = None,
    ) -> None:
        if current not in offered:
            raise ValueError(f"the call's language {current!r} is not among the offered {list(offered)}")
        self._inner = inner
        self._offered = tuple(offered)
        self._settings = settings or DetectionSettings()
        self._language = current
        self._state = _Detection(detecting=len(self._offered) > 1)
        self._last: tuple[np.ndarray, _Detection] | None = None
        """The last utterance's first samples and the state before it, to spot a re-hearing."""
        self.detect_s = 0.0
        """Time spent detecting on this call, for the latency figures."""
        # An early recognition thrown away may still be decoding when the whole turn
        # is: one at a time, so each reads the state the other left.
        self._lock = threading.Lock()

    @property
    def language(self) -> str:
        return self._language

    @property
    def detecting(self) -> bool:
        return self._state.detecting

    def use(self, language: str) -> None:
        """Transcribe in ``language`` from now on; detection is over."""
        if language not in self._offered:
            raise ValueError(f"{language!r} is not offered on this call ({', '.join(self._offered)})")
        with self._lock:
            self._language = language
            self._state = _Detection(detecting=False)
            self._last = None

    def warm_up(self) -> None:
        self._inner.warm_up()

    def transcribe(self, pcm16k: np.ndarray, *, hotwords: Sequence[str] = ()) -> Transcript:
        with self._lock:
            return self._transcribe(pcm16k, tuple(hotwords))

    def _transcribe(self, pcm16k: np.ndarray, hotwords: tuple[str, ...]) -> Transcript:
        head = pcm16k[:_HEAD_SAMPLES]
        if self._last is not None and self._last[0].size == head.size and np.array_equal(self._last[0], head):
            self._state = self._last[1]  # the same utterance again, longer: judge it afresh
        state = self._state
        self._last = (head.copy(), state)
        verdict: Verdict | None = None
        detect_s = 0.0
        if state.detecting and pcm16k.size >= self._settings.min_audio_s * MODEL_RATE_HZ:
            started = time.perf_counter()
            probabilities = self._inner.detect_language(pcm16k)
            detect_s = time.perf_counter() - started
            self.detect_s += detect_s
            verdict = judge(
                probabilities,
                offered=self._offered,
                current=self._language,
                leaning=state.leaning,
                turn=state.turns + 1,
                settings=self._settings,
            )
            _LOGGER.debug(
                "language on this utterance: %s (%s)",
                verdict,
                ", ".join(f"{lang}={probabilities.get(lang, 0.0):.2f}" for lang in self._offered),
            )
        if verdict is not None:
            language = verdict.language
        else:
            language = state.pending or self._language
        # The hotwords are the dialogue's French words (weekdays, "docteur"):
        # biasing another language's decoding towards them only does harm.
        words = hotwords if language == self._inner.language else ()
        transcript = self._inner.transcribe(pcm16k, hotwords=words, language=language)
        transcript = replace(transcript, decode_s=transcript.decode_s + detect_s)
        if not transcript.text:
            return transcript  # nothing heard: no evidence either way, the turn does not count
        if verdict is None:
            if state.pending is None:
                return transcript
            left = state.reports_left - 1
            self._state = replace(state, pending=None if left <= 0 else state.pending, reports_left=left)
            return replace(transcript, detected_language=state.pending)
        if not verdict.decided:
            self._state = replace(state, turns=state.turns + 1, leaning=verdict.leaning)
            return transcript
        pending = verdict.language if verdict.language != self._language else None
        self._state = _Detection(
            detecting=False, turns=state.turns + 1, pending=pending, reports_left=_PENDING_REPORTS - 1
        )
        _LOGGER.info("caller's language settled after %d utterance(s): %s", state.turns + 1, verdict.language)
        return replace(transcript, detected_language=verdict.language)


class CallVoice:
    """One call's voice: speaks with the voice of the call's current language.

    Implements ``Synthesizer``. Its ``sample_rate`` never changes during a call
    (the speaker reads it after each sentence, and a switch may land between the
    two): another language's voice is resampled to it.
    """

    def __init__(self, voices: Mapping[str, Synthesizer], current: str) -> None:
        if current not in voices:
            raise ValueError(f"no voice for the call's language {current!r}")
        self._voices = dict(voices)
        self._language = current
        self.sample_rate: int = voices[current].sample_rate

    @property
    def language(self) -> str:
        return self._language

    def use(self, language: str) -> None:
        if language not in self._voices:
            raise ValueError(f"no voice for {language!r} (voices: {', '.join(self._voices)})")
        self._language = language

    def synthesize(self, text: str) -> np.ndarray:
        voice = self._voices[self._language]
        pcm = voice.synthesize(text)
        if voice.sample_rate == self.sample_rate:
            return pcm
        return resample(pcm, voice.sample_rate, self.sample_rate)

    def warm_up(self) -> None:
        for voice in self._voices.values():
            voice.warm_up()


class LanguageSwitch:
    """The language of one call, as the dialogue sees and changes it.

    ``switch`` moves recognition and voice together. The recognizer and the voice
    are absent in text mode (the simulated text call): there only ``current``
    changes, and the dialogue follows it.
    """

    def __init__(
        self,
        offered: Sequence[str],
        current: str,
        *,
        recognizer: CallRecognizer | None = None,
        voice: CallVoice | None = None,
    ) -> None:
        if not offered or current not in offered:
            raise ValueError(f"the call's language {current!r} is not among the offered {list(offered)}")
        self.offered: tuple[str, ...] = tuple(offered)
        self._current = current
        self._recognizer = recognizer
        self._voice = voice

    @property
    def current(self) -> str:
        return self._current

    def switch(self, language: str) -> None:
        """Hear and speak ``language`` from the next turn on.

        A language the practice does not offer is refused with a warning, not an
        exception: a call must never end because of a language.
        """
        if language == self._current:
            return
        if language not in self.offered:
            _LOGGER.warning("not switching to %r: the practice offers %s", language, ", ".join(self.offered))
            return
        if self._recognizer is not None:
            self._recognizer.use(language)
        if self._voice is not None:
            self._voice.use(language)
        self._current = language
        _LOGGER.info("call switched to %s", LANGUAGE_NAMES.get(language, language))
