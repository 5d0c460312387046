"""The end-pointer decides turns from audio durations alone.

Patterns: one character per frame, "S" = speech, "_" = silence; frames are
20 ms unless a case says otherwise. Default settings: a turn needs 0.25 s of
speech, ends after 0.4 / 0.6 / 1.2 s of silence (short / normal / long), is cut
at 20 s, and 6 s of silence from the start is "no input".
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.audio.endpoint import (
    EndpointEvent,
    Endpointer,
    EndpointSettings,
    NoInput,
    Paused,
    SpeechStarted,
    TurnEnded,
)
from appliance.errors import ConfigError


def run(
    pattern: str, *, mode: str = "normal", frame_s: float = 0.02, pause_s: float | None = None
) -> list[tuple[int, EndpointEvent]]:
    """Push the pattern; return (frame index, event) for every decision."""
    endpointer = Endpointer(EndpointSettings(), pause_s=pause_s)
    endpointer.expect(mode)  # type: ignore[arg-type]
    events = []
    for index, char in enumerate(pattern):
        event = endpointer.push(char == "S", frame_s)
        if event is not None:
            events.append((index, event))
    return events


CASES = [
    pytest.param(
        "SSSSSSSSSSSSSSSSSSSS" + "_" * 40,
        "normal",
        [(12, SpeechStarted(at_s=0.0)), (49, TurnEnded(speech_start_s=0.0, speech_end_s=0.4, decided_at_s=1.0))],
        id="a 0.4 s word then 0.6 s of silence ends the turn",
    ),
    pytest.param(
        "SSSSS" + "_" * 400,
        "normal",
        [(299, NoInput(after_s=6.0))],
        id="a 0.1 s blip is not a turn: still no input at 6 s",
    ),
    pytest.param(
        "_" * 50 + "SSSSSS" + "_" * 50 + "S" * 20 + "_" * 40,
        "normal",
        [
            (118, SpeechStarted(at_s=2.12)),
            (155, TurnEnded(speech_start_s=2.12, speech_end_s=2.52, decided_at_s=3.12)),
        ],
        id="a click before the answer does not move its start",
    ),
    pytest.param(
        "SSSSSSS_SSSSSS" + "_" * 40,
        "normal",
        [(13, SpeechStarted(at_s=0.0)), (43, TurnEnded(speech_start_s=0.0, speech_end_s=0.28, decided_at_s=0.88))],
        id="a 20 ms flicker inside the first word still adds up to a turn",
    ),
    pytest.param(
        "S" * 20 + "_" * 25 + "S" * 20 + "_" * 40,
        "short",
        [(12, SpeechStarted(at_s=0.0)), (39, TurnEnded(speech_start_s=0.0, speech_end_s=0.4, decided_at_s=0.8))],
        id="after a yes/no question a 0.5 s pause ends the turn",
    ),
    pytest.param(
        "S" * 20 + "_" * 25 + "S" * 20 + "_" * 40,
        "normal",
        [(12, SpeechStarted(at_s=0.0)), (94, TurnEnded(speech_start_s=0.0, speech_end_s=1.3, decided_at_s=1.9))],
        id="normally a 0.5 s pause is only a breath",
    ),
    pytest.param(
        "S" * 20 + "_" * 50 + "S" * 20 + "_" * 70,
        "normal",
        [(12, SpeechStarted(at_s=0.0)), (49, TurnEnded(speech_start_s=0.0, speech_end_s=0.4, decided_at_s=1.0))],
        id="normally a 1 s pause between digit groups ends the turn",
    ),
    pytest.param(
        "S" * 20 + "_" * 50 + "S" * 20 + "_" * 70,
        "long",
        [(12, SpeechStarted(at_s=0.0)), (149, TurnEnded(speech_start_s=0.0, speech_end_s=1.8, decided_at_s=3.0))],
        id="while dictating, a 1 s pause between digit groups does not",
    ),
    pytest.param(
        "S" * 20 + "_" * 10 + "S" * 20 + "_" * 10 + "S" * 20 + "_" * 40,
        "normal",
        [(12, SpeechStarted(at_s=0.0)), (109, TurnEnded(speech_start_s=0.0, speech_end_s=1.6, decided_at_s=2.2))],
        id="speech started is announced once per turn",
    ),
    pytest.param(
        "S" * 1100,
        "normal",
        [(12, SpeechStarted(at_s=0.0)), (999, TurnEnded(speech_start_s=0.0, speech_end_s=20.0, decided_at_s=20.0))],
        id="a caller who never stops is cut at 20 s",
    ),
    pytest.param(
        "_" * 100 + "S" * 990 + "_" * 30 + "S" * 20,
        "normal",
        [(112, SpeechStarted(at_s=2.0)), (1099, TurnEnded(speech_start_s=2.0, speech_end_s=21.8, decided_at_s=22.0))],
        id="max turn counts from the start of speech, and a pause near it ends at 20 s",
    ),
    pytest.param(
        "_" * 400,
        "normal",
        [(299, NoInput(after_s=6.0))],
        id="silence from the start is no input after 6 s, once",
    ),
    pytest.param(
        "_" * 295 + "S" * 20 + "_" * 40,
        "normal",
        [(307, SpeechStarted(at_s=5.9)), (344, TurnEnded(speech_start_s=5.9, speech_end_s=6.3, decided_at_s=6.9))],
        id="speech beginning just before the no-input limit is heard out",
    ),
    pytest.param(
        "_" * 295 + "SSSSS" + "_" * 20,
        "normal",
        [(304, NoInput(after_s=6.1))],
        id="a blip straddling the no-input limit delays no input until it is over",
    ),
]


@pytest.mark.parametrize(("pattern", "mode", "expected"), CASES)
def test_endpointer_decisions(pattern: str, mode: str, expected: list[tuple[int, EndpointEvent]]) -> None:
    assert run(pattern, mode=mode) == expected


def test_vad_windows_of_32_ms_decide_at_the_exact_silence_time() -> None:
    events = run("S" * 10 + "_" * 25, frame_s=0.032)

    # 8 windows (0.256 s) confirm speech; the silence limit (0.32 + 0.6 s) falls
    # inside the window ending at 0.928 s, and the decision says 0.92.
    assert events == [
        (7, SpeechStarted(at_s=0.0)),
        (28, TurnEnded(speech_start_s=0.0, speech_end_s=0.32, decided_at_s=0.92)),
    ]


@given(st.text(alphabet="S_", max_size=400), st.sampled_from(["short", "normal", "long"]))
def test_decisions_do_not_depend_on_how_audio_is_chunked(pattern: str, mode: str) -> None:
    whole = [event for _, event in run(pattern, mode=mode, frame_s=0.02)]
    halves = [event for _, event in run("".join(c * 2 for c in pattern), mode=mode, frame_s=0.01)]
    assert halves == whole


def test_after_a_decision_nothing_more_until_reset() -> None:
    endpointer = Endpointer()
    events = [endpointer.push(True, 0.02) for _ in range(20)] + [endpointer.push(False, 0.02) for _ in range(30)]
    assert isinstance(events[-1], TurnEnded)

    assert [endpointer.push(flag, 0.02) for flag in (True,) * 20 + (False,) * 400] == [None] * 420

    endpointer.reset()
    assert endpointer.position_s == 0.0
    assert endpointer.mode == "normal"
    assert endpointer.push(True, 0.3) == SpeechStarted(at_s=0.0)


def test_reset_returns_to_normal_pauses() -> None:
    endpointer = Endpointer()
    endpointer.expect("long")
    endpointer.reset()
    assert endpointer.mode == "normal"


def test_unknown_expectation_is_refused() -> None:
    with pytest.raises(ValueError, match="expect"):
        Endpointer().expect("medium")  # type: ignore[arg-type]


@pytest.mark.parametrize("duration_s", [0.0, -0.02, 1.5])
def test_push_durations_are_checked(duration_s: float) -> None:
    with pytest.raises(ValueError, match="duration_s"):
        Endpointer().push(True, duration_s)


@pytest.mark.parametrize(
    "overrides",
    [
        {"silence_s": 0.0},
        {"min_speech_s": 5.0},
        {"max_turn_s": 1.0},
        {"no_input_s": 0.5},
        {"short_silence_s": 0.8},  # longer than the normal pause
        {"long_silence_s": 0.5},  # shorter than the normal pause
    ],
)
def test_settings_are_validated(overrides: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        EndpointSettings(**overrides)


PAUSE_CASES = [
    pytest.param(
        "S" * 20 + "_" * 40,
        "normal",
        [
            (12, SpeechStarted(at_s=0.0)),
            (29, Paused(speech_start_s=0.0, speech_end_s=0.4, at_s=0.6)),
            (49, TurnEnded(speech_start_s=0.0, speech_end_s=0.4, decided_at_s=1.0)),
        ],
        id="recognition may start 0.2 s into the pause; the turn still ends at 0.6 s, same speech end",
    ),
    pytest.param(
        "S" * 20 + "_" * 15 + "S" * 10 + "_" * 40,
        "normal",
        [
            (12, SpeechStarted(at_s=0.0)),
            (29, Paused(speech_start_s=0.0, speech_end_s=0.4, at_s=0.6)),
            (54, Paused(speech_start_s=0.0, speech_end_s=0.9, at_s=1.1)),
            (74, TurnEnded(speech_start_s=0.0, speech_end_s=0.9, decided_at_s=1.5)),
        ],
        id="speech after a pause makes the first early start stale: the turn ends later, elsewhere",
    ),
    pytest.param(
        "S" * 20 + "_" * 40,
        "short",
        [
            (12, SpeechStarted(at_s=0.0)),
            (29, Paused(speech_start_s=0.0, speech_end_s=0.4, at_s=0.6)),
            (39, TurnEnded(speech_start_s=0.0, speech_end_s=0.4, decided_at_s=0.8)),
        ],
        id="a yes/no answer: pause then end",
    ),
    pytest.param(
        "S" * 15 + "_" * 5 + "S" * 10 + "_" * 40,
        "normal",
        [
            (12, SpeechStarted(at_s=0.0)),
            (39, Paused(speech_start_s=0.0, speech_end_s=0.6, at_s=0.8)),
            (59, TurnEnded(speech_start_s=0.0, speech_end_s=0.6, decided_at_s=1.2)),
        ],
        id="a gap shorter than the pause is not a pause",
    ),
]


@pytest.mark.parametrize(("pattern", "mode", "expected"), PAUSE_CASES)
def test_pauses_inside_a_turn_are_reported_when_asked(pattern: str, mode: str, expected) -> None:
    assert run(pattern, mode=mode, pause_s=0.2) == expected


def test_a_pause_as_long_as_the_turn_silence_is_only_the_end() -> None:
    events = run("S" * 20 + "_" * 40, mode="short", pause_s=0.4)
    assert [type(e) for _, e in events] == [SpeechStarted, TurnEnded]


@pytest.mark.parametrize(("pattern", "mode", "expected"), CASES)
def test_without_pause_reports_the_decisions_are_unchanged(pattern: str, mode: str, expected) -> None:
    assert run(pattern, mode=mode, pause_s=10.0) == expected
