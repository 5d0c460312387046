"""Calls on a sound card, and the laptop line, against ``FakeAudioDevice``.

The fake card paces capture and playback by the clock it is given; these tests
give it a clock running twice real time, and assert durations on that clock
(a slow machine makes them longer, never shorter). The order test runs at real
speed: the fake card, like a real one, overwrites capture nobody read in time.
Every scenario has a real-time deadline that only a hang reaches.
"""

from __future__ import annotations

import asyncio
import io
import os
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any

import numpy as np
import pytest

from appliance.audio import FRAME_SAMPLES, LINE_RATE_HZ
from appliance.audio.tones import Goertzel
from appliance.clock import PARIS, ScaledClock, SystemClock
from appliance.errors import LineError
from appliance.line.audio_device import AudioDeviceError, AudioDeviceSpec
from appliance.line.base import Dtmf, Inbound
from appliance.line.sim.audio_device import FakeAudioDevice
from appliance.line.soundcard import EnterOrPause, SoundCardCall, SoundCardIncomingCall, SoundCardLine
from tests.sounds import frames, tone

DEADLINE_S = 10.0
SPEC = AudioDeviceSpec(name="USB Audio", rate_hz=8000)


class ManualClock:
    def __init__(self) -> None:
        self.t = 0.0

    def monotonic(self) -> float:
        return self.t

    def now(self) -> datetime:
        return datetime(2025, 3, 4, 9, 0, tzinfo=PARIS)


def run(scenario: Callable[[], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        async with asyncio.timeout(DEADLINE_S):
            return await scenario()

    return asyncio.run(main())


async def until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.005)


async def prompt(pcm: np.ndarray) -> AsyncIterator[np.ndarray]:
    for frame in frames(pcm):
        yield frame


def numbered(count: int) -> list[np.ndarray]:
    """Frames the far end says, each filled with its own number (x 100) to check order."""
    return [np.full(FRAME_SAMPLES, (k + 1) * 100, np.int16) for k in range(count)]


class HookCounter:
    def __init__(self, fail: bool = False) -> None:
        self.calls = 0
        self._fail = fail

    async def __call__(self) -> None:
        self.calls += 1
        if self._fail:
            raise OSError("AT+CHUP timed out")


# -- SoundCardCall ---------------------------------------------------------------------------


def test_captured_audio_arrives_as_160_sample_frames_in_order() -> None:
    async def scenario() -> tuple[list[int], int]:
        device = FakeAudioDevice(SPEC, SystemClock())
        call = SoundCardCall(device.open(), call_id="sc-1", clock=SystemClock())
        device.feed(np.concatenate(numbered(30)))
        values: list[int] = []
        async for item in call.inbound():
            assert isinstance(item, np.ndarray) and item.shape == (FRAME_SAMPLES,) and item.dtype == np.int16
            assert len(set(item.tolist())) == 1  # frames line up with what was said, never split
            if item[0]:
                values.append(int(item[0]) // 100)
            if values[-1:] == [30]:
                break
        await call.hang_up()
        return values, device.overruns

    values, overruns = run(scenario)
    assert overruns == 0
    assert values == list(range(1, 31))


def test_a_16_khz_card_is_converted_to_and_from_8_khz() -> None:
    spec = AudioDeviceSpec(name="EC25", rate_hz=16000, frames_per_buffer=320)

    async def scenario() -> tuple[list[np.ndarray], np.ndarray, int]:
        clock = ScaledClock(2.0)
        device = FakeAudioDevice(spec, clock)
        call = SoundCardCall(device.open(), call_id="sc-16k", clock=clock, rate_hz=16000)
        t = np.arange(16000) / 16000
        device.feed((8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16))
        got: list[np.ndarray] = []
        async for item in call.inbound():
            got.append(item)  # type: ignore[arg-type]
            if len(got) == 40:
                break
        played = await call.play(prompt(tone((1000.0,), 0.5, -10.0)))
        await call.hang_up()
        return got, device.heard(), played

    got, heard, played = run(scenario)
    assert all(f.shape == (FRAME_SAMPLES,) for f in got)
    middle = np.concatenate(got[15:35])  # past the filter's onset, inside the fed second
    assert Goertzel([440.0], LINE_RATE_HZ).shares(middle[:FRAME_SAMPLES])[0] > 0.9
    assert played == 25
    assert len(heard) == pytest.approx(2 * 0.5 * LINE_RATE_HZ, abs=400)  # the whole prompt, flushed
    assert Goertzel([1000.0], 16000).shares(heard[3200:3520])[0] > 0.9


def test_play_is_paced_by_the_card_and_the_far_end_hears_every_sample() -> None:
    clock = ScaledClock(2.0)
    said = tone((700.0,), 1.0, -10.0)

    async def scenario() -> tuple[int, float, np.ndarray]:
        device = FakeAudioDevice(SPEC, clock)
        call = SoundCardCall(device.open(), call_id="sc-pace", clock=clock)
        started = clock.monotonic()
        sent = await call.play(prompt(said))
        took_s = clock.monotonic() - started
        await call.hang_up()
        return sent, took_s, device.heard()

    sent, took_s, heard = run(scenario)
    assert sent == 50
    assert took_s >= 1.0 - 0.1 - 0.03  # the card buffers 0.1 s ahead; the rest waits for it
    assert np.array_equal(heard, said)


def test_cancelling_play_stops_the_audio_at_once() -> None:
    async def scenario() -> tuple[int, int, int]:
        clock = ScaledClock(2.0)
        device = FakeAudioDevice(SPEC, clock)
        call = SoundCardCall(device.open(), call_id="sc-cancel", clock=clock)
        playing = asyncio.create_task(call.play(prompt(tone((700.0,), 20.0, -10.0))))
        await until(lambda: len(device.heard()) >= 0.3 * LINE_RATE_HZ)
        at_cancel = len(device.heard())
        playing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await playing
        right_after = len(device.heard())
        await asyncio.sleep(0.2)  # had the prompt gone on, 0.4 s more would be heard by now
        later = len(device.heard())
        await call.hang_up()
        return at_cancel, right_after, later

    at_cancel, right_after, later = run(scenario)
    assert right_after <= at_cancel + FRAME_SAMPLES  # at most the chunk already handed to the card
    assert later == right_after


def test_an_unplugged_card_ends_the_call_cleanly_and_tells_the_far_end() -> None:
    hook = HookCounter()

    async def scenario() -> tuple[SoundCardCall, int, bool]:
        clock = ScaledClock(2.0)
        device = FakeAudioDevice(SPEC, clock)
        call = SoundCardCall(device.open(), call_id="sc-unplug", clock=clock, on_hang_up=hook)
        reader = asyncio.create_task(_drain(call))
        await asyncio.sleep(0.05)
        device.unplug()
        received = await reader
        closed = await call.wait_closed()
        await call.hang_up()  # what a session does at the end: harmless now
        played = await call.play(prompt(tone((700.0,), 0.2)))
        assert played == 0
        return call, received, closed

    call, received, closed = run(scenario)
    assert call.ended and call.end_reason == "audio_device_lost"
    assert closed and received > 0
    assert hook.calls == 1  # a GSM call whose audio card vanished must still be hung up on the module


def test_a_card_unplugged_while_the_box_speaks_ends_play_without_an_exception() -> None:
    async def scenario() -> tuple[SoundCardCall, int]:
        clock = ScaledClock(2.0)
        device = FakeAudioDevice(SPEC, clock)
        call = SoundCardCall(device.open(), call_id="sc-unplug-play", clock=clock)
        playing = asyncio.create_task(call.play(prompt(tone((700.0,), 20.0, -10.0))))
        await until(lambda: len(device.heard()) >= 0.2 * LINE_RATE_HZ)
        device.unplug()
        sent = await playing
        await call.wait_closed()
        return call, sent

    call, sent = run(scenario)
    assert call.end_reason == "audio_device_lost"
    assert 10 <= sent < 1000


async def _drain(call: SoundCardCall) -> int:
    return sum([1 async for _ in call.inbound()])


def test_hanging_up_runs_the_hook_once_frees_the_card_and_ends_inbound() -> None:
    hook = HookCounter()

    async def scenario() -> tuple[SoundCardCall, list[Inbound], FakeAudioDevice]:
        clock = ScaledClock(2.0)
        device = FakeAudioDevice(SPEC, clock)
        stream = device.open()
        call = SoundCardCall(stream, call_id="sc-bye", caller_id="+33612345678", clock=clock, on_hang_up=hook)
        await call.hang_up()
        await call.hang_up()
        with pytest.raises(AudioDeviceError):
            stream.read(FRAME_SAMPLES)  # closed by the call
        return call, [item async for item in call.inbound()], device

    call, rest, device = run(scenario)
    assert call.end_reason == "box_hung_up" and hook.calls == 1
    assert call.caller_id == "+33612345678"
    assert all(isinstance(item, np.ndarray) for item in rest)  # what was captured before, then the end


def test_the_driver_ending_the_call_does_not_hang_up_again() -> None:
    hook = HookCounter()

    async def scenario() -> SoundCardCall:
        clock = ScaledClock(2.0)
        call = SoundCardCall(FakeAudioDevice(SPEC, clock).open(), call_id="sc-nc", clock=clock, on_hang_up=hook)
        call.mark_ended("NO CARRIER")
        await call.hang_up()
        return call

    call = run(scenario)
    assert call.end_reason == "NO CARRIER" and hook.calls == 0


def test_a_failing_hang_up_hook_does_not_escape() -> None:
    async def scenario() -> SoundCardCall:
        clock = ScaledClock(2.0)
        call = SoundCardCall(
            FakeAudioDevice(SPEC, clock).open(), call_id="sc-hookfail", clock=clock, on_hang_up=HookCounter(fail=True)
        )
        await call.hang_up()
        return call

    assert run(scenario).ended


def test_discarding_drops_the_audio_and_keeps_key_presses() -> None:
    async def scenario() -> tuple[int, list[Inbound]]:
        clock = ScaledClock(2.0)
        device = FakeAudioDevice(SPEC, clock)
        call = SoundCardCall(device.open(), call_id="sc-discard", clock=clock)
        await asyncio.sleep(0.1)  # some capture queued while nobody reads
        call.deliver_dtmf("7")
        dropped = call.discard_received()
        call.mark_ended("remote")
        rest = [item async for item in call.inbound()]
        return dropped, [item for item in rest if not isinstance(item, np.ndarray) or item.any()]

    dropped, rest = run(scenario)
    assert dropped > 0
    assert rest == [Dtmf("7")]


class HungStream:
    """A card that stops answering: read() blocks with no error (a wedged USB device)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.closed = False

    def read(self, frames: int) -> np.ndarray:
        self.release.wait(5.0)
        raise AudioDeviceError("gone")

    def write(self, samples: np.ndarray) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def test_a_card_that_hangs_without_an_error_still_ends_the_call() -> None:
    clock = ManualClock()
    stream = HungStream()

    async def scenario() -> SoundCardCall:
        call = SoundCardCall(stream, call_id="sc-hung", clock=clock, stall_s=5.0)
        clock.t = 4.0
        await asyncio.sleep(0.3)
        assert not call.ended
        clock.t = 5.5
        await until(lambda: call.ended)
        stream.release.set()  # let the blocked thread go, as a replug would
        assert await call.wait_closed()
        return call

    call = run(scenario)
    assert call.end_reason == "audio_device_lost" and stream.closed


# -- SoundCardLine ---------------------------------------------------------------------------


class Person:
    """The person at the laptop: ``next_call`` returns when they ask for another call."""

    def __init__(self) -> None:
        self.asked = 0
        self._wants = asyncio.Event()

    async def __call__(self) -> None:
        self.asked += 1
        await self._wants.wait()
        self._wants.clear()

    def calls_again(self) -> None:
        self._wants.set()


def test_the_laptop_line_offers_one_call_at_once_rung_once() -> None:
    async def scenario() -> tuple[SoundCardIncomingCall, SoundCardCall, str, bool]:
        clock = ScaledClock(2.0)
        device = FakeAudioDevice(SPEC, clock)
        line = SoundCardLine(device, clock, next_call=Person())
        offers = line.incoming()
        offer = await anext(offers)
        call = await offer.answer()
        device.feed(np.full(FRAME_SAMPLES * 5, 1234, np.int16))
        async for item in call.inbound():
            if isinstance(item, np.ndarray) and item.any():
                break
        health = line.health()
        await line.close()
        return offer, call, health.detail, health.ok

    offer, call, detail, ok = run(scenario)
    assert offer.ringing.rings == 1 and offer.caller_id is None
    assert call.call_id.startswith("soundcard-") and call.ended
    assert ok and "1 call" in detail


def test_the_next_call_is_offered_when_the_person_asks_for_it() -> None:
    async def scenario() -> tuple[int, bool, int]:
        clock = ScaledClock(2.0)
        device = FakeAudioDevice(SPEC, clock)
        person = Person()
        line = SoundCardLine(device, clock, next_call=person)
        offers = line.incoming()
        call = await (await anext(offers)).answer()
        second = asyncio.create_task(anext(offers))
        await asyncio.sleep(0.2)
        offered_during_call = second.done()
        await call.hang_up()
        await until(lambda: person.asked == 1)
        assert not second.done()  # the call is over, but nobody asked for another yet
        person.calls_again()
        await (await second).answer()
        await line.close()
        return person.asked, offered_during_call, device.opened

    asked, offered_during_call, opened = run(scenario)
    assert not offered_during_call
    assert asked == 1 and opened == 2


def test_a_missing_card_is_a_line_error_and_the_line_offers_again() -> None:
    async def scenario() -> tuple[str, bool, str, SoundCardIncomingCall]:
        clock = ScaledClock(2.0)
        device = FakeAudioDevice(SPEC, clock, refuse="no sound card named 'USB Audio' (unplugged?)")
        person = Person()
        line = SoundCardLine(device, clock, next_call=person)
        offers = line.incoming()
        with pytest.raises(LineError) as failed:
            await (await anext(offers)).answer()
        health = line.health()
        person.calls_again()
        again = await anext(offers)
        await line.close()
        return failed.value.detail, health.ok, health.detail, again

    detail, ok, health_detail, again = run(scenario)
    assert "USB Audio" in detail and "unplugged" in detail
    assert not ok and "USB Audio" in health_detail
    assert again.ringing.rings == 1


def test_a_call_the_box_does_not_take_is_offered_again_once_it_stopped_ringing() -> None:
    clock = ManualClock()

    async def scenario() -> tuple[int, int]:
        device = FakeAudioDevice(SPEC, clock)
        person = Person()
        line = SoundCardLine(device, clock, next_call=person)
        offers = line.incoming()
        await anext(offers)  # the answering policy says "not now"
        second = asyncio.create_task(anext(offers))
        clock.t += 9.0  # longer than any gap between rings
        await until(lambda: person.asked == 1)
        person.calls_again()
        await second
        await line.close()
        return line.calls_offered, device.opened

    offered, opened = run(scenario)
    assert offered == 2 and opened == 0


def test_closing_the_line_hangs_up_and_ends_the_offers() -> None:
    async def scenario() -> tuple[SoundCardCall, list[SoundCardIncomingCall]]:
        clock = ScaledClock(2.0)
        line = SoundCardLine(FakeAudioDevice(SPEC, clock), clock, next_call=Person())
        offers = line.incoming()
        call = await (await anext(offers)).answer()
        rest = asyncio.create_task(_collect(offers))
        await line.close()
        return call, await rest

    call, rest = run(scenario)
    assert call.ended and call.end_reason == "box_hung_up"
    assert rest == []


async def _collect(offers: AsyncIterator[SoundCardIncomingCall]) -> list[SoundCardIncomingCall]:
    return [offer async for offer in offers]


def test_without_a_terminal_the_next_call_comes_after_a_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    clock = ScaledClock(10.0)

    async def scenario() -> float:
        line = SoundCardLine(FakeAudioDevice(SPEC, clock), clock, pause_s=3.0)
        offers = line.incoming()
        call = await (await anext(offers)).answer()
        await call.hang_up()
        ended_at = clock.monotonic()
        await anext(offers)
        waited = clock.monotonic() - ended_at
        await line.close()
        return waited

    assert run(scenario) >= 3.0


def test_on_a_terminal_enter_offers_the_next_call(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    master, slave = os.openpty()
    terminal = os.fdopen(slave, "r")
    monkeypatch.setattr(sys, "stdin", terminal)

    async def scenario() -> None:
        clock = ScaledClock(2.0)
        # As ``appliance run`` builds it: the prompt goes to the console.
        line = SoundCardLine(FakeAudioDevice(SPEC, clock), clock, next_call=EnterOrPause(clock, say=print))
        offers = line.incoming()
        call = await (await anext(offers)).answer()
        await call.hang_up()
        second = asyncio.create_task(anext(offers))
        while not second.done():  # until the line listens (typed-ahead input is flushed first)
            os.write(master, b"\n")
            await asyncio.sleep(0.05)
        await second
        await line.close()

    try:
        run(scenario)
    finally:
        terminal.close()
        os.close(master)
    assert "Press Enter" in capsys.readouterr().out
