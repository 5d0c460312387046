"""GuardedCall: the box hangs up on its own when the line says the caller is gone.

The inner call is a held ``SimCall``: it delivers exactly the frames a test
sends, as fast as they are read, so the hang-up delay is measured in audio
frames (what the session received after the caller hung up), never in wall time.
Each scenario runs under a real-time deadline that only a hang would reach.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any

import numpy as np
import pytest

from appliance.audio import FRAME_SAMPLES
from appliance.clock import PARIS
from appliance.errors import ConfigError
from appliance.line.base import Dtmf, Inbound
from appliance.line.guard import GuardedCall, HangupSettings
from appliance.line.sim.line import SimCall
from tests.sounds import cadenced, frames, noise, on_line, silence, speech, tone

DEADLINE_S = 10.0
FRAMES_PER_S = 50


class ManualClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def monotonic(self) -> float:
        return self.t

    def now(self) -> datetime:
        return datetime(2025, 3, 4, 9, 0, tzinfo=PARIS)


def held_call() -> SimCall:
    call = SimCall("sim-guard", "0612345678", realtime=False)
    call.hold()  # no silence on demand: the line carries what the test sends, no more
    return call


def run(scenario: Callable[[], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        async with asyncio.timeout(DEADLINE_S):
            return await scenario()

    return asyncio.run(main())


async def read_all(guard: GuardedCall) -> list[Inbound]:
    return [item async for item in guard.inbound()]


async def until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.005)


def caller_then(hang_up_sound: np.ndarray, *, noise_after: float | None = -55.0) -> tuple[list[np.ndarray], int]:
    """A caller speaking on a noisy line, then the hang-up sound; and the frame where it starts.

    ``noise_after`` None: the line goes digital, as a dead line does.
    """
    talk = np.concatenate([noise(0.5), speech("Bonjour, je voudrais un rendez-vous demain matin."), noise(1.0)])
    talk_frames = frames(on_line(talk))
    return talk_frames + frames(on_line(hang_up_sound, noise_after)), len(talk_frames)


# -- hang-ups heard within 3 s of audio --------------------------------------------------


@pytest.mark.parametrize(
    ("sound", "noise_after", "reason"),
    [
        (tone((440.0,), 10.0), -55.0, "dial_tone"),
        (tone((425.0,), 10.0), -55.0, "dial_tone"),
        (cadenced((440.0,), 0.5, 0.5, 10), -55.0, "busy_tone"),
        (cadenced((425.0,), 0.25, 0.25, 20), -55.0, "busy_tone"),
        (silence(10.0), None, "dead_line"),
    ],
    ids=["dial-440", "dial-425", "busy", "congestion", "dead"],
)
def test_the_guard_hangs_up_within_3_s_of_audio_after_the_caller_did(
    sound: np.ndarray, noise_after: float | None, reason: str
) -> None:
    sent, hang_up_at = caller_then(sound, noise_after=noise_after)

    async def scenario() -> tuple[GuardedCall, SimCall, list[Inbound]]:
        inner = held_call()
        guard = GuardedCall(inner, ManualClock())
        inner.send_audio(sent)
        return guard, inner, await read_all(guard)

    guard, inner, received = run(scenario)
    assert guard.ended and inner.ended  # the line itself was hung up, not only the session's view
    assert guard.end_reason == reason
    after_hang_up = len(received) - hang_up_at
    assert 0 < after_hang_up <= 3 * FRAMES_PER_S
    assert all(a is b for a, b in zip(received, sent))  # passed through untouched, in order


def test_dial_tone_for_north_america_with_its_own_plan() -> None:
    sent, hang_up_at = caller_then(tone((350.0, 440.0), 5.0))

    async def scenario() -> tuple[GuardedCall, list[Inbound]]:
        inner = held_call()
        guard = GuardedCall(inner, ManualClock(), HangupSettings(tone_plan="north_america"))
        inner.send_audio(sent)
        return guard, await read_all(guard)

    guard, received = run(scenario)
    assert guard.end_reason == "dial_tone" and len(received) - hang_up_at <= 3 * FRAMES_PER_S


# -- a caller who is there is left alone ---------------------------------------------------


def test_a_silent_caller_speech_and_key_presses_pass_through_and_the_call_stays_up() -> None:
    said = speech("Euh... attendez, je cherche ma carte vitale.")
    line = on_line(np.concatenate([noise(60.0, -55.0), said, noise(5.0, -60.0)]))
    sent: list[Inbound] = [*frames(line[: 8000 * 30]), Dtmf("1"), *frames(line[8000 * 30 :]), Dtmf("#")]

    async def scenario() -> tuple[GuardedCall, SimCall, list[Inbound]]:
        inner = held_call()
        guard = GuardedCall(inner, ManualClock())
        inner.send_audio(sent)  # type: ignore[arg-type]
        received: list[Inbound] = []
        async for item in guard.inbound():
            received.append(item)
            if len(received) == len(sent):
                break
        still_up = not guard.ended
        inner.caller_hangs_up()  # the driver's own hang-up report
        received += await read_all(guard)
        assert still_up
        return guard, inner, received

    guard, inner, received = run(scenario)
    assert all(a is b for a, b in zip(received, sent, strict=True))
    assert guard.ended and guard.end_reason == (inner.end_reason or "line_ended")  # the driver's own reason


def test_a_key_press_proves_the_caller_is_there() -> None:
    async def scenario() -> GuardedCall:
        inner = held_call()
        guard = GuardedCall(inner, ManualClock())
        inner.send_audio(frames(silence(2.0)))
        inner.send_dtmf("5")
        inner.send_audio(frames(silence(2.0)))
        reader = asyncio.create_task(read_all(guard))
        await until(lambda: guard.heard_s >= 2.0)
        assert not guard.ended  # 4 s of silence, but a key press in the middle
        inner.send_audio(frames(silence(1.0)))
        await reader
        return guard

    assert run(scenario).end_reason == "dead_line"


def test_a_line_silent_by_nature_can_leave_out_the_dead_line_check_and_still_hear_tones() -> None:
    # A laptop microphone behind noise suppression: digital zeros while the person thinks.
    sent = frames(silence(10.0)) + frames(on_line(tone((440.0,), 3.0), None))

    async def scenario() -> tuple[GuardedCall, list[Inbound]]:
        inner = held_call()
        guard = GuardedCall(inner, ManualClock(), HangupSettings(detect_dead_line=False))
        inner.send_audio(sent)
        return guard, await read_all(guard)

    guard, received = run(scenario)
    assert guard.end_reason == "dial_tone"
    assert 10 * FRAMES_PER_S < len(received) <= 12 * FRAMES_PER_S


# -- frames heard while the box speaks ------------------------------------------------------


def test_a_hang_up_while_the_box_speaks_is_heard_and_cuts_the_prompt() -> None:
    async def prompt() -> AsyncIterator[np.ndarray]:
        for frame in frames(tone((1000.0,), 60.0, -15.0)):
            yield frame
            await asyncio.sleep(0)  # a synthesiser handing over frames one by one

    async def scenario() -> tuple[GuardedCall, SimCall, int, int]:
        inner = held_call()
        guard = GuardedCall(inner, ManualClock())
        # Nobody reads inbound() while the box speaks, as in a session without barge-in.
        playing = asyncio.create_task(guard.play(prompt()))
        inner.send_audio(frames(on_line(np.concatenate([noise(1.0), tone((440.0,), 10.0)]))))
        sent = await playing
        dropped = guard.discard_received()
        return guard, inner, sent, dropped

    guard, inner, sent, dropped = run(scenario)
    assert guard.end_reason == "dial_tone" and inner.ended
    assert sent < 60 * FRAMES_PER_S  # the prompt stopped when the guard hung up
    assert FRAMES_PER_S * 2 <= dropped <= FRAMES_PER_S * 2.2  # 1 s noise + 1 s tone, examined then dropped


def test_discarding_keeps_key_presses_and_the_end() -> None:
    async def scenario() -> list[Inbound]:
        inner = held_call()
        guard = GuardedCall(inner, ManualClock())
        inner.send_audio(frames(noise(0.2)))
        inner.send_dtmf("3")
        inner.send_audio(frames(noise(0.2)))
        await until(lambda: guard.heard_s >= 0.2)  # counted since the key press: all 20 frames are in
        assert guard.discard_received() == 20
        inner.caller_hangs_up()
        return await read_all(guard)

    assert run(scenario) == [Dtmf("3")]


# -- the box, the driver, the clock -----------------------------------------------------------


def test_the_hard_maximum_ends_a_call_whose_line_never_drops() -> None:
    clock = ManualClock()

    async def scenario() -> tuple[GuardedCall, SimCall, bool]:
        inner = held_call()  # the line stays up and sends nothing at all
        guard = GuardedCall(inner, clock, HangupSettings(max_call_s=600.0))
        clock.t += 599.0
        await asyncio.sleep(0.2)  # several of the guard's looks at the clock
        up_before = not guard.ended
        clock.t += 1.0
        await read_all(guard)
        return guard, inner, up_before

    guard, inner, up_before = run(scenario)
    assert up_before
    assert guard.end_reason == "max_call_length" and inner.ended


def test_the_default_maximum_is_900_s() -> None:
    clock = ManualClock()

    async def scenario() -> str:
        inner = held_call()
        guard = GuardedCall(inner, clock)
        inner.send_audio(frames(noise(1.0)))
        await until(lambda: guard.heard_s >= 1.0)
        assert not guard.ended
        clock.t += 900.0
        await read_all(guard)
        return guard.end_reason

    assert run(scenario) == "max_call_length"


def test_the_box_hanging_up_ends_the_line_and_the_stream() -> None:
    async def one_frame() -> AsyncIterator[np.ndarray]:
        yield np.zeros(FRAME_SAMPLES, np.int16)

    async def scenario() -> tuple[GuardedCall, SimCall, list[Inbound], int]:
        inner = held_call()
        guard = GuardedCall(inner, ManualClock())
        inner.send_audio(frames(noise(0.1)))
        await until(lambda: guard.heard_s >= 0.1)
        await guard.hang_up()
        await guard.hang_up()  # twice is harmless
        return guard, inner, await read_all(guard), await guard.play(one_frame())

    guard, inner, received, played = run(scenario)
    assert guard.end_reason == "box_hung_up" and inner.ended
    assert len(received) == 5 and all(isinstance(f, np.ndarray) for f in received)
    assert played == 0 and inner.received == []


def test_a_frame_reaches_the_session_as_soon_as_the_line_delivers_it() -> None:
    async def scenario() -> bool:
        inner = held_call()
        guard = GuardedCall(inner, ManualClock())
        frame = frames(noise(0.02))[0]
        reader = guard.inbound()
        inner.send_audio([frame])  # one frame, nothing behind it
        got = await asyncio.wait_for(anext(reader), 1.0)
        await guard.hang_up()
        return got is frame

    assert run(scenario)


class BrokenCall:
    """A driver whose stream and hang-up both fail."""

    call_id = "broken-1"
    caller_id = None
    ended = False

    async def inbound(self) -> AsyncIterator[Inbound]:
        yield np.zeros(FRAME_SAMPLES, np.int16)
        raise OSError("the port vanished")

    async def play(self, frames: Any) -> int:
        return 0

    async def hang_up(self) -> None:
        raise OSError("cannot hang up either")

    def discard_received(self) -> int:
        return 0


def test_a_failing_driver_ends_the_call_without_an_exception_reaching_the_session() -> None:
    async def scenario() -> tuple[GuardedCall, list[Inbound]]:
        guard = GuardedCall(BrokenCall(), ManualClock())  # type: ignore[arg-type]
        received = await read_all(guard)
        await guard.hang_up()
        return guard, received

    guard, received = run(scenario)
    assert len(received) == 1 and guard.ended and guard.end_reason == "line_failed"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("tone_plan", "mars"),
        ("dial_tone_s", 5.0),
        ("busy_cycles", 0),
        ("dead_line_s", 0.1),
        ("dead_line_below_dbfs", -55.0),  # that would hang up on silent callers
        ("max_call_s", 5.0),
    ],
)
def test_settings_that_would_miss_or_invent_hang_ups_are_refused(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=f"hangup.{field}"):
        HangupSettings(**{field: value})  # type: ignore[arg-type]


def test_a_call_the_driver_just_ended_already_gives_the_driver_reason() -> None:
    # The session can see ``ended`` (from the driver) before the guard's watcher has
    # run: the reason it records then must be the driver's, not "".
    async def scenario() -> tuple[bool, str]:
        inner = held_call()
        guard = GuardedCall(inner, ManualClock(), HangupSettings())
        inner.caller_hangs_up()  # no await between: the watcher has not looked yet
        return guard.ended, guard.end_reason

    assert run(scenario) == (True, "caller_hung_up")
