"""The simulated line: silence on demand, a held line while the caller composes, hang-up."""

from __future__ import annotations

import asyncio

import numpy as np

from appliance.audio import FRAME_SAMPLES
from appliance.line.base import Dtmf
from appliance.line.sim import KeptSilent, Said, SimLine


def test_a_placed_call_rings_and_is_answered_with_its_caller_id() -> None:
    async def scenario() -> None:
        line = SimLine()
        line.place_call("0612345678")
        incoming = await anext(line.incoming())
        call = await incoming.answer()
        assert call.caller_id == "0612345678"
        assert line.health().ok

    asyncio.run(scenario())


def test_the_line_carries_silence_while_the_caller_has_nothing_to_say() -> None:
    async def scenario() -> list[np.ndarray]:
        call = SimLine().place_call(None)
        frames = []
        async for item in call.inbound():
            frames.append(item)
            if len(frames) == 5:
                break
        return frames

    frames = asyncio.run(scenario())
    assert all(f.shape == (FRAME_SAMPLES,) and not f.any() for f in frames)


def test_queued_speech_and_keys_arrive_in_order_then_the_hang_up_ends_the_stream() -> None:
    async def scenario() -> list[object]:
        call = SimLine().place_call(None)
        call.hold()
        tone = np.full(FRAME_SAMPLES, 1000, dtype=np.int16)
        call.send_audio([tone, tone])
        call.send_dtmf("5")
        call.caller_hangs_up()
        return [item async for item in call.inbound()]

    items = asyncio.run(scenario())
    assert [type(i).__name__ for i in items] == ["ndarray", "ndarray", "Dtmf"]
    assert items[2] == Dtmf("5")


def test_a_held_line_waits_for_the_caller_instead_of_sending_silence() -> None:
    async def scenario() -> bool:
        call = SimLine().place_call(None)
        call.hold()
        reader = asyncio.create_task(anext(call.inbound()))
        await asyncio.sleep(0.05)
        waiting = not reader.done()
        call.send_audio([np.ones(FRAME_SAMPLES, dtype=np.int16)])
        frame = await reader
        return waiting and bool(frame.any())

    assert asyncio.run(scenario())


def test_text_mode_delivers_words_silences_and_the_end() -> None:
    async def scenario() -> list[object]:
        call = SimLine().place_call(None)
        call.send_text("bonjour")
        call.send_silence(2.0)
        call.caller_hangs_up()
        return [await call.scripted(), await call.scripted(), await call.scripted()]

    assert asyncio.run(scenario()) == [Said("bonjour"), KeptSilent(2.0), None]


def test_playback_is_recorded_and_stops_once_the_call_has_ended() -> None:
    async def scenario() -> tuple[int, int]:
        call = SimLine().place_call(None)

        async def frames():
            for i in range(10):
                if i == 4:
                    await call.hang_up()
                yield np.zeros(FRAME_SAMPLES, dtype=np.int16)

        sent = await call.play(frames())
        return sent, len(call.received)

    assert asyncio.run(scenario()) == (4, 4)


def test_audio_received_while_the_box_spoke_is_dropped_but_keys_and_the_end_are_kept() -> None:
    async def scenario() -> tuple[int, list[object]]:
        call = SimLine().place_call(None)
        call.hold()
        call.send_audio([np.ones(FRAME_SAMPLES, dtype=np.int16)] * 3)
        call.send_dtmf("4")
        call.caller_hangs_up()
        dropped = call.discard_received()
        return dropped, [item async for item in call.inbound()]

    dropped, items = asyncio.run(scenario())
    assert dropped == 3
    assert items == [Dtmf("4")]
