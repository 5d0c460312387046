"""Hang-up tones and dead lines heard in the received audio, and speech never mistaken for them.

Every signal goes through what a call does to it (line noise at -55 dBFS, the
µ-law round trip) unless a test says otherwise. Times are audio seconds: the
detectors never look at a clock.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from appliance.audio import FRAME_SAMPLES, LINE_RATE_HZ
from appliance.audio.tones import (
    BUSY_TONE,
    DEAD_LINE,
    DIAL_TONE,
    EUROPE,
    NORTH_AMERICA,
    Cadence,
    CadenceDetector,
    ContinuousToneDetector,
    DeadLineDetector,
    Goertzel,
    HangupDetector,
    TonePlan,
    frame_dbfs,
)
from tests.sounds import cadenced, dtmf, frames, noise, on_line, silence, speech, tone

FRAME_S = FRAME_SAMPLES / LINE_RATE_HZ


def verdict(detector: HangupDetector, pcm: np.ndarray) -> tuple[str | None, float]:
    """The first reason the detector gives for ``pcm``, and after how many audio seconds."""
    for frame in frames(pcm):
        if reason := detector.feed(frame):
            return reason, detector.heard_s
    return None, detector.heard_s


def after_caller(hang_up_sound: np.ndarray, *, talk_s: float = 3.0) -> np.ndarray:
    """A caller's line (noise, some speech) then, from ``talk_s`` on, ``hang_up_sound``."""
    return np.concatenate([noise(talk_s, -55.0, seed=7), hang_up_sound])


# -- the building blocks -----------------------------------------------------------


def goertzel_by_recurrence(x: np.ndarray, freq_hz: float) -> float:
    """The textbook Goertzel filter, sample by sample: |X(f)|^2."""
    coeff = 2 * math.cos(2 * math.pi * freq_hz / LINE_RATE_HZ)
    s1 = s2 = 0.0
    for sample in x:
        s1, s2 = sample + coeff * s1 - s2, s1
    return s1 * s1 + s2 * s2 - coeff * s1 * s2


@pytest.mark.parametrize("freq_hz", [350.0, 425.0, 440.0, 480.0, 620.0])
def test_goertzel_shares_are_the_goertzel_filter_output_normalised_by_frame_energy(freq_hz: float) -> None:
    x = on_line(tone((440.0, 620.0), FRAME_S), -40.0)[:FRAME_SAMPLES].astype(np.float64)
    x -= x.mean()
    expected = 2 / FRAME_SAMPLES * goertzel_by_recurrence(x, freq_hz) / float(np.dot(x, x))
    assert Goertzel([freq_hz]).shares(x)[0] == pytest.approx(expected, rel=1e-9)


def test_a_pure_tone_puts_nearly_all_of_a_frame_in_its_bin() -> None:
    shares = Goertzel([425.0, 440.0, 620.0]).shares(tone((440.0,), FRAME_S))
    assert shares[1] > 0.99  # its own bin
    assert shares[0] > 0.6  # 15 Hz away: the same main lobe, hence one plan for France and CEPT
    assert shares[2] < 0.01


def test_levels_are_dbfs_with_digital_silence_at_minus_infinity() -> None:
    assert frame_dbfs(silence(FRAME_S)) == -math.inf
    assert frame_dbfs(tone((1000.0,), 1.0, dbfs=-3.0)) == pytest.approx(-3.0, abs=0.05)
    assert frame_dbfs(noise(1.0, -55.0)) == pytest.approx(-55.0, abs=0.5)
    assert frame_dbfs(np.full(FRAME_SAMPLES, 500, np.int16)) == -math.inf  # a DC offset is not signal


# -- hang-up sounds are heard within 3 s -------------------------------------------

CASES = [
    # plan, what the line plays after the hang-up, reason, earliest, latest (audio s after the hang-up)
    pytest.param(EUROPE, tone((440.0,), 5.0), DIAL_TONE, 1.0, 1.2, id="france-dial-440"),
    pytest.param(EUROPE, tone((425.0,), 5.0), DIAL_TONE, 1.0, 1.2, id="cept-dial-425"),
    pytest.param(EUROPE, cadenced((440.0,), 0.5, 0.5, 5), BUSY_TONE, 2.0, 2.2, id="france-busy-440"),
    pytest.param(EUROPE, cadenced((425.0,), 0.5, 0.5, 5), BUSY_TONE, 2.0, 2.2, id="cept-busy-425"),
    pytest.param(EUROPE, cadenced((425.0,), 0.48, 0.48, 5), BUSY_TONE, 1.9, 2.2, id="germany-busy"),
    pytest.param(EUROPE, cadenced((425.0,), 0.25, 0.25, 8), BUSY_TONE, 1.0, 1.2, id="cept-congestion"),
    pytest.param(NORTH_AMERICA, tone((350.0, 440.0), 5.0), DIAL_TONE, 1.0, 1.2, id="na-dial"),
    pytest.param(NORTH_AMERICA, cadenced((480.0, 620.0), 0.5, 0.5, 5), BUSY_TONE, 2.0, 2.2, id="na-busy"),
    pytest.param(NORTH_AMERICA, cadenced((480.0, 620.0), 0.25, 0.25, 8), BUSY_TONE, 1.0, 1.2, id="na-reorder"),
]


@pytest.mark.parametrize(("plan", "sound", "reason", "earliest_s", "latest_s"), CASES)
def test_the_exchange_tone_after_a_hang_up_is_heard_within_3_s(
    plan: TonePlan, sound: np.ndarray, reason: str, earliest_s: float, latest_s: float
) -> None:
    talk_s = 3.01  # the tone starts mid-frame, as it does on a real line
    heard, at_s = verdict(HangupDetector(plan), on_line(after_caller(sound, talk_s=talk_s)))
    assert heard == reason
    assert earliest_s - 0.02 <= at_s - talk_s <= latest_s <= 3.0


def test_a_quiet_tone_through_a_noisy_line_is_still_heard() -> None:
    heard, at_s = verdict(HangupDetector(EUROPE), on_line(after_caller(tone((440.0,), 3.0, dbfs=-40.0)), -52.0))
    assert heard == DIAL_TONE and at_s - 3.0 <= 1.2


def test_dead_silence_after_the_caller_is_a_dead_line_after_2_5_s() -> None:
    heard, at_s = verdict(HangupDetector(), on_line(after_caller(silence(5.0)), noise_dbfs=None))
    assert heard == DEAD_LINE
    assert 2.5 <= at_s - 3.0 <= 2.6


def test_a_few_lsb_of_comfort_noise_on_a_dead_line_are_still_dead() -> None:
    # telephony.md 6.6: "non-zero silence (comfort noise ±3 LSB)".
    comfort = np.random.default_rng(3).integers(-3, 4, size=8000 * 5).astype(np.int16)
    heard, at_s = verdict(HangupDetector(), after_caller(comfort))
    assert heard == DEAD_LINE and at_s - 3.0 <= 2.6


def test_the_tone_plan_decides_which_tones_mean_a_hang_up() -> None:
    # A North American dial tone on a European line is not the exchange speaking.
    heard, _ = verdict(HangupDetector(EUROPE), on_line(tone((350.0, 440.0), 3.0)))
    assert heard is None
    heard, _ = verdict(HangupDetector(NORTH_AMERICA), on_line(tone((440.0,), 3.0)))
    assert heard is None


# -- a caller who is there is never hung up on ----------------------------------------


@pytest.mark.parametrize("noise_dbfs", [-50.0, -55.0, -60.0, -63.0])
def test_a_silent_callers_line_noise_never_counts_as_anything(noise_dbfs: float) -> None:
    heard, at_s = verdict(HangupDetector(), on_line(noise(120.0, noise_dbfs, seed=11), None))
    assert heard is None and at_s == pytest.approx(120.0)


SENTENCES = (
    "Bonjour, je voudrais prendre rendez-vous avec le docteur Martin, mardi matin si possible.",
    "C'est pour mon fils, il a de la fièvre depuis hier soir. Aaaah, oui, mmmm, d'accord.",
    "Je m'appelle Élodie Lefèvre, née le douze mars mille neuf cent quatre-vingt-cinq.",
    "Non non non, pas jeudi. Lundiii, luuundi, à quinze heures trente.",
)


@pytest.mark.parametrize("plan", [EUROPE, NORTH_AMERICA], ids=["europe", "north_america"])
def test_speech_is_never_a_tone_nor_a_dead_line(plan: TonePlan) -> None:
    talk = np.concatenate([part for text in SENTENCES for part in (speech(text), silence(0.7))])
    for level_gain in (0.3, 1.0, 3.0):  # a faint, a normal and a loud caller
        loud = np.clip(talk.astype(np.float64) * level_gain, -32768, 32767).astype(np.int16)
        heard, at_s = verdict(HangupDetector(plan), on_line(loud))
        assert heard is None, f"{heard} at {at_s:.2f} s (gain {level_gain})"
    assert len(talk) / LINE_RATE_HZ > 15.0


def test_a_drawn_out_vowel_sung_on_one_pitch_is_not_a_dial_tone() -> None:
    said = speech("Aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaah. Ouiiiiiiiiiiiiiiiiiiiii.", rate_wpm=80)
    heard, _ = verdict(HangupDetector(), on_line(said))
    assert heard is None


@pytest.mark.parametrize("plan", [EUROPE, NORTH_AMERICA], ids=["europe", "north_america"])
def test_dtmf_key_presses_are_not_a_dial_tone_even_held_down(plan: TonePlan) -> None:
    keys = "0123456789*#ABCD"
    typed = dtmf(keys, press_s=0.1, gap_s=0.1)
    held = dtmf(keys, press_s=2.0, gap_s=0.3)  # a caller leaning on each key
    heard, _ = verdict(HangupDetector(plan), on_line(np.concatenate([typed, held])))
    assert heard is None


def test_quick_beeps_are_not_a_busy_tone() -> None:
    beeps = cadenced((440.0,), 0.1, 0.1, 30)
    heard, _ = verdict(HangupDetector(EUROPE), on_line(beeps))
    assert heard is None


def test_one_busy_cycle_then_the_caller_again_is_not_a_hang_up() -> None:
    # Two bursts: one whole cycle only, then noise; the count starts over.
    sound = np.concatenate([cadenced((440.0,), 0.5, 0.5, 1), tone((440.0,), 0.5), noise(3.0)])
    heard, _ = verdict(HangupDetector(EUROPE), on_line(sound))
    assert heard is None


def test_a_key_press_starts_the_dead_line_count_again() -> None:
    detector = HangupDetector()
    for frame in frames(silence(2.0)):
        assert detector.feed(frame) is None
    detector.reset()
    assert verdict(detector, silence(2.4))[0] is None
    assert verdict(detector, silence(0.2))[0] == DEAD_LINE


# -- the state machines, table-driven (one character = one 20 ms frame) ----------------


def flags(pattern: str) -> list[bool]:
    return [c == "T" for c in pattern.replace(" ", "")]


def first_true(detector: ContinuousToneDetector | CadenceDetector, pattern: str) -> int | None:
    for i, on in enumerate(flags(pattern)):
        if detector.feed(on, FRAME_S):
            return i
    return None


@pytest.mark.parametrize(
    ("pattern", "fires_at"),
    [
        ("T" * 60, 49),  # 50 frames = 1.0 s
        ("T" * 49, None),
        ("T" * 30 + "_" + "T" * 30, 49),  # one lost frame does not split the tone: it counts as tone
        ("T" * 30 + "__" + "T" * 40, None),  # two do: 30 + 40 frames, neither 1 s long
        ("_" + "T" * 50, 50),
    ],
)
def test_a_continuous_tone_fires_once_it_lasted_its_time(pattern: str, fires_at: int | None) -> None:
    assert first_true(ContinuousToneDetector(1.0), pattern) == fires_at


ON, OFF = "T" * 25, "_" * 25  # 0.5 s each
ON_SHORT, OFF_SHORT = "T" * 12, "_" * 13  # 0.24 s / 0.26 s


@pytest.mark.parametrize(
    ("pattern", "fires"),
    [
        (ON + OFF + ON + OFF + "TT", True),  # the second cycle ends as the third burst starts
        (ON + OFF + ON + OFF, False),  # not yet: the second gap might still go on
        (ON + OFF + ON + "_" * 60 + ON + OFF + "TT", False),  # a long gap starts over
        (ON + OFF + "T" * 60 + OFF + ON + OFF + "TT", False),  # so does a long burst
        (ON_SHORT + OFF_SHORT + ON_SHORT + OFF_SHORT + "TT", True),  # reorder
        (ON + OFF_SHORT + ON + OFF_SHORT + "TT", False),  # half busy, half reorder: no rhythm
        ("T" * 24 + "_" + OFF + ON + OFF + "TT", True),  # a glitch at the end of a burst
    ],
)
def test_a_cadence_needs_two_whole_cycles_in_rhythm(pattern: str, fires: bool) -> None:
    detector = CadenceDetector((Cadence(0.5, 0.5), Cadence(0.25, 0.25)), cycles=2)
    assert (first_true(detector, pattern) is not None) is fires


@pytest.mark.parametrize(
    ("levels_dbfs", "fires_at"),
    [
        ([-90.0] * 130, 124),  # the 125th frame completes 2.5 s
        ([-66.0] * 200, None),  # quiet but never below -70: a line, not a dead one
        ([-80.0] * 100 + [-66.0] * 30, 124),  # once dead, hovering under -64 stays dead
        ([-80.0] * 100 + [-60.0] + [-80.0] * 130, 225),  # rising above -64 starts the count over
        ([-55.0] * 300, None),
    ],
)
def test_a_dead_line_has_hysteresis(levels_dbfs: list[float], fires_at: int | None) -> None:
    detector = DeadLineDetector(min_s=2.5, below_dbfs=-70.0, alive_dbfs=-64.0)
    fired = next((i for i, level in enumerate(levels_dbfs) if detector.feed(level, FRAME_S)), None)
    assert fired == fires_at


def test_detectors_count_audio_duration_not_frames() -> None:
    # A driver handing over 40 ms frames gets the same verdict at the same audio time.
    detector = HangupDetector()
    pcm = on_line(after_caller(tone((440.0,), 3.0)))
    reason = None
    for start in range(0, len(pcm), 320):
        if reason := detector.feed(pcm[start : start + 320]):
            break
    assert reason == DIAL_TONE and 1.0 <= detector.heard_s - 3.0 <= 1.2
