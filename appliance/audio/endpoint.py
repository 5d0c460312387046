"""End-pointing: decide when a caller has started and finished a turn.

Driven only by the duration of audio fed in, never by the wall clock, so a test
can push an hour of audio through in milliseconds and a slow machine decides
exactly like a fast one. The VAD says "speech" or "not speech" for each piece of
audio; this state machine turns that into three decisions:

    SpeechStarted  enough speech (min_speech_s) to be a turn, not a cough or a click
    Paused         (only when asked for) the caller has paused for ``pause_s``: the
                   turn may be over, so recognition can start on what was said
    TurnEnded      trailing silence long enough for what was asked, or max_turn_s
    NoInput        nothing but silence for no_input_s since listening started

How long a pause ends a turn depends on what the caller was asked
(``expect``): a yes/no answer ends quickly, a date of birth or a phone number
is dictated with pauses between groups of digits.

Times are kept in integer microseconds so that fifty 20 ms frames make exactly
one second and thresholds are met on the frame a reader would expect.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final, Literal

from appliance.errors import ConfigError

ExpectMode = Literal["short", "normal", "long"]

_US_PER_S: Final = 1_000_000
# Silence shorter than this inside a starting word is VAD flicker between
# syllables; longer, and a not-yet-confirmed blip is over.
_CANDIDATE_GAP_S: Final = 0.1
# One VAD window (32 ms) or line frame (20 ms) is the normal unit. A bound keeps
# every push to at most one event, since max_turn_s is far longer than this.
_MAX_PUSH_S: Final = 1.0


@dataclass(frozen=True, kw_only=True)
class EndpointSettings:
    silence_s: float = 0.6
    """Trailing silence that ends a normal turn."""
    short_silence_s: float = 0.4
    """Trailing silence that ends the answer to a yes/no question."""
    long_silence_s: float = 1.2
    """Trailing silence that ends a dictated date of birth or phone number."""
    min_speech_s: float = 0.25
    """Shorter bursts of speech (coughs, line clicks) are not a turn."""
    max_turn_s: float = 20.0
    """A turn is cut here even if the caller keeps talking (or the line hums)."""
    no_input_s: float = 6.0
    """Silence from the start of listening after which the caller is prompted again."""

    def __post_init__(self) -> None:
        for name, low, high in (
            ("silence_s", 0.1, 3.0),
            ("short_silence_s", 0.1, 3.0),
            ("long_silence_s", 0.1, 5.0),
            ("min_speech_s", 0.02, 2.0),
            ("max_turn_s", 2.0, 120.0),
            ("no_input_s", 1.0, 60.0),
        ):
            value = getattr(self, name)
            if not low <= value <= high:
                raise ConfigError(f"endpoint.{name} must be {low}-{high} s, got {value}")
        if not self.short_silence_s <= self.silence_s <= self.long_silence_s:
            raise ConfigError(
                "endpoint silences must satisfy short_silence_s <= silence_s <= long_silence_s, "
                f"got {self.short_silence_s}, {self.silence_s}, {self.long_silence_s}"
            )


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    at_s: float  # where the speech began, in audio seconds since listening started


@dataclass(frozen=True, slots=True)
class TurnEnded:
    speech_start_s: float
    speech_end_s: float  # end of the last speech, before the trailing silence
    decided_at_s: float  # when the silence (or max_turn_s) was reached


@dataclass(frozen=True, slots=True)
class Paused:
    speech_start_s: float
    speech_end_s: float  # a TurnEnded with this same end means nothing was said since
    at_s: float


@dataclass(frozen=True, slots=True)
class NoInput:
    after_s: float


EndpointEvent = SpeechStarted | Paused | TurnEnded | NoInput


class _State(enum.Enum):
    WAITING = "waiting"  # nothing heard yet
    CANDIDATE = "candidate"  # speech heard, not yet long enough to be a turn
    SPEAKING = "speaking"  # turn confirmed: SpeechStarted was emitted
    DONE = "done"  # TurnEnded or NoInput was emitted; reset() for the next turn


def _us(seconds: float) -> int:
    return round(seconds * _US_PER_S)


def _s(microseconds: int) -> float:
    return microseconds / _US_PER_S


class Endpointer:
    """Pure state machine for one turn at a time; feed it VAD decisions with durations."""

    def __init__(self, settings: EndpointSettings | None = None, *, pause_s: float | None = None) -> None:
        """``pause_s``: also report each pause of that length inside a turn (``Paused``),
        when it is shorter than the silence that ends the turn; None: never."""
        self._settings = settings or EndpointSettings()
        self._pause_us = None if pause_s is None else _us(pause_s)
        self._silence_us = {
            "short": _us(self._settings.short_silence_s),
            "normal": _us(self._settings.silence_s),
            "long": _us(self._settings.long_silence_s),
        }
        self._min_speech_us = _us(self._settings.min_speech_s)
        self._max_turn_us = _us(self._settings.max_turn_s)
        self._no_input_us = _us(self._settings.no_input_s)
        self._gap_us = _us(_CANDIDATE_GAP_S)
        self.reset()

    @property
    def mode(self) -> ExpectMode:
        return self._mode

    @property
    def position_s(self) -> float:
        """Audio seconds pushed since listening started (or since reset)."""
        return _s(self._now_us)

    def reset(self) -> None:
        """Start listening for a new turn: position 0, normal pauses."""
        self._mode: ExpectMode = "normal"
        self._state = _State.WAITING
        self._now_us = 0
        self._start_us = 0  # first speech of the candidate / turn
        self._speech_us = 0  # speech heard inside the candidate
        self._last_speech_end_us = 0
        self._silence_run_us = 0  # current run of silence inside the candidate
        self._pause_told = False  # Paused already said for the current pause

    def expect(self, mode: ExpectMode) -> None:
        """Set how long a pause ends this turn: "short", "normal" or "long"."""
        if mode not in self._silence_us:
            raise ValueError(f"expect() takes 'short', 'normal' or 'long', got {mode!r}")
        self._mode = mode

    def push(self, is_speech: bool, duration_s: float) -> EndpointEvent | None:
        """Account for ``duration_s`` more audio; return the decision it triggers, if any."""
        if not 0.0 < duration_s <= _MAX_PUSH_S:
            raise ValueError(f"push() takes 0 < duration_s <= {_MAX_PUSH_S}, got {duration_s}")
        begin_us = self._now_us
        end_us = begin_us + _us(duration_s)
        self._now_us = end_us
        match self._state:
            case _State.DONE:
                return None
            case _State.WAITING:
                return self._waiting(is_speech, begin_us, end_us)
            case _State.CANDIDATE:
                return self._candidate(is_speech, begin_us, end_us)
            case _State.SPEAKING:
                return self._speaking(is_speech, end_us)

    def _waiting(self, is_speech: bool, begin_us: int, end_us: int) -> EndpointEvent | None:
        if is_speech:
            self._state = _State.CANDIDATE
            self._start_us = begin_us
            self._speech_us = 0
            self._silence_run_us = 0
            return self._candidate(True, begin_us, end_us)
        if end_us >= self._no_input_us:
            return self._no_input(max(begin_us, self._no_input_us))
        return None

    def _candidate(self, is_speech: bool, begin_us: int, end_us: int) -> EndpointEvent | None:
        duration_us = end_us - begin_us
        if is_speech:
            self._silence_run_us = 0
            if self._speech_us + duration_us >= self._min_speech_us:
                self._state = _State.SPEAKING
                self._speech_us += duration_us
                self._last_speech_end_us = end_us
                return SpeechStarted(at_s=_s(self._start_us))
            self._speech_us += duration_us
            return None
        self._silence_run_us += duration_us
        if self._silence_run_us < self._gap_us:
            return None
        # A blip: forget it, as if listening had heard nothing at all.
        gap_reached_us = end_us - (self._silence_run_us - self._gap_us)
        self._state = _State.WAITING
        self._silence_run_us = 0
        if end_us >= self._no_input_us:
            return self._no_input(max(gap_reached_us, self._no_input_us))
        return None

    def _speaking(self, is_speech: bool, end_us: int) -> EndpointEvent | None:
        # Trailing silence is measured from the end of the last speech, so the
        # decision falls on the exact microsecond whatever the push sizes.
        max_end_us = self._start_us + self._max_turn_us
        if is_speech:
            self._last_speech_end_us = end_us
            self._pause_told = False
            if end_us >= max_end_us:
                return self._turn_ended(speech_end_us=max_end_us, decided_at_us=max_end_us)
            return None
        silence_end_us = self._last_speech_end_us + self._silence_us[self._mode]
        decided_us = min(silence_end_us, max_end_us)
        if end_us >= decided_us:
            return self._turn_ended(
                speech_end_us=min(self._last_speech_end_us, max_end_us), decided_at_us=decided_us
            )
        if self._pause_us is not None and not self._pause_told:
            paused_us = self._last_speech_end_us + self._pause_us
            if end_us >= paused_us:
                self._pause_told = True
                return Paused(speech_start_s=_s(self._start_us), speech_end_s=_s(self._last_speech_end_us),
                              at_s=_s(paused_us))
        return None

    def _turn_ended(self, *, speech_end_us: int, decided_at_us: int) -> TurnEnded:
        self._state = _State.DONE
        return TurnEnded(
            speech_start_s=_s(self._start_us),
            speech_end_s=_s(speech_end_us),
            decided_at_s=_s(decided_at_us),
        )

    def _no_input(self, at_us: int) -> NoInput:
        self._state = _State.DONE
        return NoInput(after_s=_s(at_us))
