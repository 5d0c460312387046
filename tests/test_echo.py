"""The echo gate: the box's own voice coming back is never the caller; a caller over it is.

Real voices: espeak-ng speaks the box's reply and the caller's words (the same
French voice for both, the hardest case for a gate); the line adds the echo
(delay, return loss, two reflections), noise and G.711 µ-law. Frames go through
the gate in the order a line plays and delivers them, instantly.
"""

from __future__ import annotations

import numpy as np
import pytest

from appliance.audio import FRAME_SAMPLES
from appliance.audio.echo import BANDS, EchoGate, EchoSettings, band_energies
from appliance.audio.framing import to_frames
from appliance.bargein import EchoCase, line_with_echo
from appliance.errors import ConfigError
from tests.sounds import speech, tone

BOX = speech(
    "Je peux prendre, déplacer ou annuler un rendez-vous, ou laisser un message à l'équipe du cabinet. "
    "Que puis-je faire pour vous aujourd'hui ?"
)
CALLER = speech("Oui bonjour, je voudrais un rendez-vous demain matin.", rate_wpm=170)


def verdicts(gate: EchoGate, played: list[np.ndarray], heard: list[np.ndarray]) -> list[bool]:
    """Play and hear in step, as the line does: frame k of each at the same time."""
    flags = []
    for k, frame in enumerate(heard):
        if k < len(played):
            gate.played(frame=played[k])
        flags.append(gate.heard(frame).caller)
    return flags


def longest_run(flags: list[bool], window: int = 8) -> int:
    """Most flagged frames inside any ``window`` consecutive frames (what the barge-in counts)."""
    return max((sum(flags[i : i + window]) for i in range(max(1, len(flags) - window + 1))), default=0)


@pytest.mark.parametrize("delay_ms", [0, 60, 150, 300])
@pytest.mark.parametrize("return_loss_db", [6, 12, 20, 30])
def test_the_box_s_own_echo_is_never_taken_for_a_caller(delay_ms: int, return_loss_db: int) -> None:
    heard, onset = line_with_echo(BOX, None, EchoCase(delay_ms, return_loss_db))
    assert onset is None
    flags = verdicts(EchoGate(), to_frames(BOX), to_frames(heard))
    assert longest_run(flags) < 6  # the barge-in needs 6 of 8: never reached on echo alone


@pytest.mark.parametrize(("delay_ms", "return_loss_db"), [(0, 12), (60, 20), (150, 6), (300, 30)])
def test_the_gate_learns_the_echo_path_from_the_call(delay_ms: int, return_loss_db: int) -> None:
    heard, _ = line_with_echo(BOX, None, EchoCase(delay_ms, return_loss_db))
    gate = EchoGate()
    verdicts(gate, to_frames(BOX), to_frames(heard)[:100])  # 2 s of the reply
    assert gate.path is not None
    assert abs(gate.path.delay_ms - delay_ms) <= 20  # one frame
    # Read against the loudest reference frame around the delay, it comes out a few dB
    # high; the reflections add ~1.5 dB of echo, the line noise hides some of a faint one.
    assert return_loss_db - 6 <= gate.path.return_loss_db <= return_loss_db + 5


@pytest.mark.parametrize(("delay_ms", "return_loss_db", "caller_dbfs"),
                         [(0, 12, -18), (60, 20, -24), (150, 30, -30), (300, 12, -18), (300, 20, -24)])
def test_a_caller_over_the_echo_is_flagged_from_the_first_frames(delay_ms: int, return_loss_db: int,
                                                                 caller_dbfs: float) -> None:
    case = EchoCase(delay_ms, return_loss_db, caller_dbfs, caller_at_s=2.0)
    heard, onset = line_with_echo(BOX, CALLER, case)
    assert onset is not None
    flags = verdicts(EchoGate(), to_frames(BOX), to_frames(heard))
    assert longest_run(flags[:onset]) < 6
    first = flags.index(True, onset)
    assert first - onset <= 2  # within 40 ms of the caller's onset
    assert sum(flags[onset : onset + 10]) >= 6  # and most of the first 200 ms


def test_before_anything_is_learnt_only_a_caller_louder_than_the_worst_echo_counts() -> None:
    gate = EchoGate()
    box = to_frames(tone((500, 1200), 0.2, dbfs=-20))
    for frame in box:
        gate.played(frame)
    assert gate.path is None
    # What comes back 6 dB down (the worst return loss assumed) is the box.
    echo = [(f.astype(np.float64) * 0.5).astype(np.int16) for f in box]
    assert not any(gate.heard(f).caller for f in echo)
    # A voice 12 dB over the box's own is someone else.
    louder = [(f.astype(np.float64) * 4).astype(np.int16) for f in to_frames(tone((700, 1800), 0.1, dbfs=-8))]
    assert all(gate.heard(f).caller for f in louder)


def test_a_reply_played_late_is_lined_up_where_it_actually_sounded() -> None:
    """TTS slower than the line: the line carries silence, then the sentence sounds late."""
    gate = EchoGate()
    frames = to_frames(BOX)
    silence = np.zeros(FRAME_SAMPLES, np.int16)
    line: list[np.ndarray] = []
    flags: list[bool] = []
    first, rest = frames[:120], frames[120:]
    # The first sentence, then 300 ms with nothing handed to the line, then the rest.
    for frame in first:
        gate.played(frame)
        line.append(frame)
        flags.append(gate.heard(frame // 8).caller)  # echo 18 dB down, no delay
    for _ in range(15):
        flags.append(gate.heard(silence).caller)
    for frame in rest:
        gate.played(frame)
        flags.append(gate.heard(frame // 8).caller)
    assert longest_run(flags) < 6


def test_a_second_reply_starts_with_the_path_the_first_taught() -> None:
    heard, _ = line_with_echo(BOX, None, EchoCase(150, 20))
    gate = EchoGate()
    verdicts(gate, to_frames(BOX), to_frames(heard))
    learnt = gate.path
    gate.next_playback()
    assert gate.path == learnt is not None


def test_band_energies_put_a_tone_in_its_band() -> None:
    energies = band_energies(to_frames(tone((1100,), 0.02, dbfs=-10))[0])
    assert energies.shape == (BANDS,)
    assert int(np.argmax(energies)) == 4  # the 1000-1250 Hz band
    assert 10 * np.log10(energies.sum()) == pytest.approx(-10, abs=1.0)


def test_a_frame_of_the_wrong_size_is_refused_plainly() -> None:
    with pytest.raises(ValueError, match="160-sample frame"):
        EchoGate().heard(np.zeros(80, np.int16))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("max_delay_ms", 50, "echo.max_delay_ms must be 100-1000 ms"),
        ("worst_return_loss_db", -3.0, "echo.worst_return_loss_db must be 0-30 dB"),
        ("margin_db", 1.0, "echo.margin_db must be 3-20 dB"),
        ("min_bands", 0, "echo.min_bands must be 1-12"),
        ("floor_dbfs", -10.0, "echo.floor_dbfs must be -80 to -30 dBFS"),
    ],
)
def test_settings_out_of_range_are_refused_with_their_name(field: str, value: float, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        EchoSettings(**{field: value})
