"""A slow reply is preceded by "D'accord…"; a quick one is not, and nothing is cut off."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Callable

import numpy as np

from appliance.acknowledgement import Acknowledgement, AcknowledgingSpeaker

ACK = [np.full(160, 7, dtype=np.int16)] * 3  # three frames of "D'accord…"


class Clock:
    def monotonic(self) -> float:
        return asyncio.get_running_loop().time()


class Line:
    """What the caller hears, frame by frame, in order."""

    def __init__(self) -> None:
        self.heard: list[str] = []
        self.ended = False
        self.discarded = 0

    async def play(self, frames: AsyncIterable[np.ndarray]) -> int:
        count = 0
        async for frame in frames:
            await asyncio.sleep(0.01)  # a frame takes time to go out
            self.heard.append("ack" if frame[0] == 7 else "reply")
            count += 1
        return count

    def discard_received(self) -> int:
        self.discarded += 1
        return 0


class ReplySpeaker:
    def __init__(self, line: Line) -> None:
        self.line = line

    async def say(self, text: str, on_first_audio: Callable[[], None], **options: object) -> int:
        async def frames():
            on_first_audio()
            for _ in range(2):
                yield np.zeros(160, dtype=np.int16)

        return await self.line.play(frames())


def turn(think_s: float, *, after_s: float = 0.05, line: Line | None = None) -> tuple[Line, list[float]]:
    """The caller's turn ends; the reply is ready ``think_s`` later."""
    line = line or Line()
    waited: list[float] = []

    async def scenario() -> None:
        ack = Acknowledgement(line, ACK, Clock(), after_s=after_s, on_played=waited.append)  # type: ignore[arg-type]
        speaker = AcknowledgingSpeaker(ReplySpeaker(line), ack)
        ended_at = Clock().monotonic()
        ack.turn_ended(ended_at)
        await asyncio.sleep(think_s)
        await speaker.say("Le docteur Martin peut vous recevoir jeudi.", lambda: None)
        ack.close()

    asyncio.run(scenario())
    return line, waited


def test_a_reply_ready_in_time_comes_without_acknowledgement() -> None:
    line, waited = turn(think_s=0.0)
    assert line.heard == ["reply", "reply"]
    assert waited == []


def test_a_slow_reply_is_preceded_by_the_whole_acknowledgement() -> None:
    line, waited = turn(think_s=0.07)  # the acknowledgement starts at 0.05 and lasts 0.03
    assert line.heard == ["ack", "ack", "ack", "reply", "reply"], "never cut, never mixed"
    assert len(waited) == 1 and 0.05 <= waited[0] < 0.5
    assert line.discarded == 1  # what the caller said over it is not the next turn


def test_one_acknowledgement_per_turn_however_slow() -> None:
    line, _ = turn(think_s=0.4)
    assert line.heard.count("ack") == 3


def test_nothing_is_said_on_a_call_already_over() -> None:
    line = Line()
    line.ended = True

    async def scenario() -> None:
        ack = Acknowledgement(line, ACK, Clock(), after_s=0.01)  # type: ignore[arg-type]
        ack.turn_ended(Clock().monotonic())
        await asyncio.sleep(0.05)
        await ack.settle()

    asyncio.run(scenario())
    assert line.heard == []


def test_without_a_phrase_the_box_simply_waits() -> None:
    line = Line()

    async def scenario() -> None:
        ack = Acknowledgement(line, [], Clock(), after_s=0.01)  # type: ignore[arg-type]
        ack.turn_ended(Clock().monotonic())
        await asyncio.sleep(0.05)
        await AcknowledgingSpeaker(ReplySpeaker(line), ack).say("Bonjour.", lambda: None)

    asyncio.run(scenario())
    assert line.heard == ["reply", "reply"]
