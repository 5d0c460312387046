"""The voice-modem driver against the simulated modem, over the simulator's pty.

Both run on one ``ScaledClock`` (10x): a 6 s ring period takes 0.6 s, and the
driver's playback pacing is checked by the simulator's bounded transmit buffer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

import numpy as np
import pytest

from appliance.audio.g711 import ulaw_decode, ulaw_encode
from appliance.clock import PARIS
from appliance.errors import LineError
from appliance.line.base import Dtmf
from appliance.line.sim.voice_modem import VoiceModemSim

from appliance.line.voice_modem import VoiceModemDriver
from appliance.line.voice_modem_call import VoiceModemCall, codec_for

from .modem_harness import run_within, simulated_modem, until

RATE = 10.0
DEADLINE_S = 5.0  # real seconds; every step normally takes well under one
START = datetime(2025, 1, 17, 14, 52, 5, tzinfo=PARIS)
ULAW = 131  # both simulated chipsets list µ-law as 131 (telephony.md 1.6)


@contextmanager
def simulated(profile: str = "usr5637", **options: object) -> Iterator[VoiceModemSim]:
    with simulated_modem(profile, rate=RATE, start=START, **options) as sim:
        yield sim


def run(main: Callable[[], Awaitable[None]]) -> None:
    run_within(DEADLINE_S, main)


def tone(samples: int, hz: float = 440.0, amplitude: int = 8000) -> np.ndarray:
    t = np.arange(samples) / 8000
    return (amplitude * np.cos(2 * np.pi * hz * t)).astype(np.int16)  # cos: the first sample is loud


async def next_call(driver: VoiceModemDriver, sim: VoiceModemSim, number: str | None, cid: str = "bellcore"):  # type: ignore[no-untyped-def]
    sim.ring(number, cid=cid)
    calls = driver.incoming()
    try:
        return await anext(calls)
    finally:
        await calls.aclose()


async def answered(driver: VoiceModemDriver, sim: VoiceModemSim, number: str = "5035551234") -> VoiceModemCall:
    incoming = await next_call(driver, sim, number)
    call = await incoming.answer()
    assert sim.stats().mode == "vrx"
    return call


# --- start-up and ringing --------------------------------------------------------------------


@pytest.mark.parametrize("profile", ["usr5637", "cx930xx"])
def test_start_up_detects_the_chipset(profile: str) -> None:
    with simulated(profile) as sim:

        async def main() -> None:
            async with VoiceModemDriver(sim.path, clock=sim.clock) as driver:
                assert driver.profile is not None and driver.profile.name == profile
                health = driver.health()
                assert (health.ok, health.detail) == (True, profile)
            assert sim.stats().fclass == 0 and not sim.stats().off_hook

        run(main)


def test_configured_profile_overrides_detection() -> None:
    with simulated("usr5637") as sim:

        async def main() -> None:
            async with VoiceModemDriver(sim.path, clock=sim.clock, profile_name="cx930xx") as driver:
                assert driver.health().detail == "cx930xx"

        run(main)


@pytest.mark.parametrize(
    ("profile", "number", "expected"),
    [("usr5637", "5035551234", "5035551234"), ("cx930xx", "0612345678", "0612345678"), ("usr5637", "P", None)],
)
def test_ringing_call_carries_the_caller_id(profile: str, number: str, expected: str | None) -> None:
    with simulated(profile) as sim:

        async def main() -> None:
            async with VoiceModemDriver(sim.path, clock=sim.clock) as driver:
                incoming = await next_call(driver, sim, number)
                assert incoming.caller_id == expected
                assert sim.stats().rings <= 2  # offered once the caller ID was in, not later

        run(main)


@pytest.mark.parametrize(("cid", "expected"), [("before_ring", "0145678901"), ("none", None)])
def test_caller_id_before_the_ring_or_never(cid: str, expected: str | None) -> None:
    # ETSI/UK: the tags come before the first RING; no CID service: offered at ring 2 (1.5).
    with simulated("usr5637") as sim:

        async def main() -> None:
            async with VoiceModemDriver(sim.path, clock=sim.clock) as driver:
                incoming = await next_call(driver, sim, "0145678901", cid)
                assert incoming.caller_id == expected

        run(main)


def test_linear8_codec_is_unsigned_with_silence_at_0x80() -> None:
    decode, encode = codec_for("linear8")
    assert encode(np.zeros(4, dtype=np.int16)) == b"\x80" * 4
    pcm = tone(800)
    assert np.max(np.abs(decode(encode(pcm)).astype(np.int32) - pcm)) < 256


# --- the call ---------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", ["usr5637", "cx930xx"])
def test_answer_selects_ulaw_and_hears_the_caller(profile: str) -> None:
    spoken = tone(1600)
    expected = ulaw_decode(ulaw_encode(spoken))
    with simulated(profile) as sim:

        async def main() -> None:
            async with VoiceModemDriver(sim.path, clock=sim.clock) as driver:
                call = await answered(driver, sim)
                assert sim.stats().vsm == (ULAW, 8000)
                assert sim.stats().data_answers == 0  # never ATA in data class
                sim.say(ulaw_encode(spoken).tobytes())
                heard: list[np.ndarray] = []
                async for item in call.inbound():
                    assert isinstance(item, np.ndarray)
                    assert item.dtype == np.int16 and item.shape == (160,)
                    heard.append(item)
                    samples = np.concatenate(heard)
                    loud = np.flatnonzero(np.abs(samples) > 1000)
                    if loud.size and samples.size - loud[0] >= expected.size:
                        break
                got = samples[loud[0] : loud[0] + expected.size]
                np.testing.assert_array_equal(got, expected)
                assert np.corrcoef(got, spoken)[0, 1] > 0.999
                await call.hang_up()

        run(main)


def test_key_press_arrives_once() -> None:
    with simulated("usr5637") as sim:

        async def main() -> None:
            async with VoiceModemDriver(sim.path, clock=sim.clock) as driver:
                call = await answered(driver, sim)
                sim.press("5", duration_s=0.3)  # held: "/ 5 5 5 5 ~" on the wire
                keys: list[str] = []
                frames_after = 0
                async for item in call.inbound():
                    if isinstance(item, Dtmf):
                        keys.append(item.digit)
                    elif keys:
                        frames_after += 1
                        if frames_after >= 40:  # 0.8 s of audio after the first report
                            break
                assert keys == ["5"]
                await call.hang_up()

        run(main)


async def frames_of(pcm: np.ndarray) -> AsyncIterator[np.ndarray]:
    for start in range(0, pcm.size, 160):
        yield pcm[start : start + 160]


@pytest.mark.parametrize("profile", ["usr5637", "cx930xx"])
def test_play_reaches_the_caller_paced_and_shielded(profile: str) -> None:
    # µ-law 0x10 in the middle: the driver must double it (telephony.md 1.8).
    pcm = np.concatenate([tone(160 * 20), ulaw_decode(b"\x10" * 160), tone(160 * 9, hz=700)])
    frames = pcm.size // 160
    triple = profile == "cx930xx"  # the profile ends +VTX with <DLE><DLE><DLE><ETX> (1.8)
    with simulated(profile, tx_end_requires_triple_dle=triple) as sim:

        async def main() -> None:
            async with VoiceModemDriver(sim.path, clock=sim.clock) as driver:
                call = await answered(driver, sim)
                assert await call.play(frames_of(pcm)) == frames
                heard = sim.heard()
                # On a modem that takes <DLE><DLE> as data, the triple exit plays one 0x10 byte.
                assert heard[frames * 160 :] == (b"\x10" if triple else b"")
                heard = heard[: frames * 160]
                assert len(heard) == frames * 160
                np.testing.assert_array_equal(ulaw_decode(heard), ulaw_decode(ulaw_encode(pcm)))
                stats = sim.stats()
                assert (stats.tx_overruns, stats.protocol_violations) == (0, ())
                assert stats.mode == "vrx"  # listening again after the prompt
                await call.hang_up()

        run(main)


def test_cancelled_play_stops_at_once_and_listens_again() -> None:
    with simulated("usr5637") as sim:

        async def main() -> None:
            async with VoiceModemDriver(sim.path, clock=sim.clock) as driver:
                call = await answered(driver, sim)
                playing = asyncio.create_task(call.play(frames_of(tone(160 * 250))))  # 5 s
                await until(lambda: len(sim.heard()) >= 1600)
                playing.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await playing
                assert len(sim.heard()) < 160 * 100
                await until(lambda: sim.stats().mode == "vrx")
                stats = sim.stats()
                assert (stats.tx_overruns, stats.protocol_violations) == (0, ())
                sim.press("1")
                async for item in call.inbound():
                    if isinstance(item, Dtmf):
                        assert item.digit == "1"
                        break
                await call.hang_up()

        run(main)


@pytest.mark.parametrize(("profile", "style"), [("usr5637", None), ("usr5637", "busy"), ("cx930xx", None)])
def test_caller_hang_up_ends_the_call(profile: str, style: str | None) -> None:
    # Default style: dial tone on the USR (<DLE>d), loop drop on the Conexant (<DLE>l).
    with simulated(profile) as sim:

        async def main() -> None:
            async with VoiceModemDriver(sim.path, clock=sim.clock) as driver:
                call = await answered(driver, sim)
                sim.hang_up(style)  # type: ignore[arg-type]
                async for _ in call.inbound():
                    pass  # ends by itself
                assert call.ended and call.end_reason == "caller_hung_up"
                await until(lambda: not sim.stats().off_hook and sim.stats().mode == "command")
                assert sim.stats().fclass == 0
                # The line is ready for the next caller.
                sim.ring("0611223344")
                calls = driver.incoming()
                incoming = await anext(calls)
                await calls.aclose()
                assert incoming.caller_id == "0611223344"

        run(main)


def test_caller_hang_up_during_play_ends_play() -> None:
    with simulated("usr5637") as sim:

        async def main() -> None:
            async with VoiceModemDriver(sim.path, clock=sim.clock) as driver:
                call = await answered(driver, sim)
                playing = asyncio.create_task(call.play(frames_of(tone(160 * 500))))  # 10 s
                await until(lambda: len(sim.heard()) >= 1600)
                sim.hang_up()
                sent = await playing
                assert 0 < sent < 500 and call.ended
                await until(lambda: not sim.stats().off_hook)

        run(main)


def test_box_hang_up_puts_the_modem_on_hook() -> None:
    with simulated("cx930xx") as sim:

        async def main() -> None:
            async with VoiceModemDriver(sim.path, clock=sim.clock) as driver:
                call = await answered(driver, sim)
                await call.hang_up()
                assert call.ended and call.end_reason == "box_hung_up"
                stats = sim.stats()
                assert (stats.off_hook, stats.fclass, stats.mode, stats.call_state) == (False, 0, "command", "gone")
                assert stats.protocol_violations == ()
                assert await call.play(frames_of(tone(160))) == 0  # nothing to play to

        run(main)


def test_maximum_call_length_hangs_up() -> None:
    with simulated("usr5637") as sim:

        async def main() -> None:
            async with VoiceModemDriver(sim.path, clock=sim.clock, max_call_s=2.0) as driver:
                call = await answered(driver, sim)
                async for _ in call.inbound():
                    pass
                assert call.ended and call.end_reason == "max_call_length"
                await until(lambda: not sim.stats().off_hook)

        run(main)


# Unplugging, a hung modem, extension phones, call waiting and garbage on the
# wire: tests/test_voice_modem_faults.py.


@pytest.mark.parametrize("profile", ["usr5637", "cx930xx"])
def test_a_whole_call_with_random_write_sizes(profile: str) -> None:
    # The modem's writes are cut at random (1-700 B, seeded): DLE pairs, CRLFs,
    # CONNECT and the first audio bytes split across reads, as on USB.
    spoken = tone(1600, hz=600)
    prompt = np.concatenate([tone(160 * 20), ulaw_decode(b"\x10" * 160)])  # µ-law 0x10 must be doubled
    with simulated(profile, chunking=True, seed=3) as sim:

        async def main() -> None:
            async with VoiceModemDriver(sim.path, clock=sim.clock) as driver:
                call = await answered(driver, sim)
                sim.say(ulaw_encode(spoken).tobytes())
                sim.press("8", duration_s=0.3)
                heard: list[np.ndarray] = []
                keys: list[str] = []
                async for item in call.inbound():
                    if isinstance(item, Dtmf):
                        keys.append(item.digit)
                    else:
                        heard.append(item)
                    if len(heard) >= 40:  # 0.8 s: the words and the key are in
                        break
                samples = np.concatenate(heard)
                loud = np.flatnonzero(np.abs(samples) > 1000)
                got = samples[loud[0] : loud[0] + spoken.size]
                np.testing.assert_array_equal(got, ulaw_decode(ulaw_encode(spoken)))
                assert keys == ["8"]
                assert await call.play(frames_of(prompt)) == 21
                assert sim.heard()[: prompt.size] == ulaw_encode(prompt).tobytes()
                sim.hang_up()
                async for _ in call.inbound():
                    pass
                assert call.end_reason == "caller_hung_up"
                await until(lambda: not sim.stats().off_hook and sim.stats().fclass == 0)
                assert sim.stats().protocol_violations == ()

        run(main)


def test_ringing_counts_the_rings_for_the_answering_policy() -> None:
    with simulated("usr5637") as sim:

        async def main() -> None:
            async with VoiceModemDriver(sim.path, clock=sim.clock) as driver:
                incoming = await next_call(driver, sim, "0145678901")
                assert 1 <= incoming.ringing.rings <= 2  # offered once the caller ID was in
                assert await incoming.ringing.wait_rings(3) is True  # "answer at the third ring"
                assert incoming.ringing.rings == 3 == sim.stats().rings
                call = await incoming.answer()
                assert not incoming.ringing.stopped and sim.stats().off_hook
                with pytest.raises(LineError, match="answered already"):
                    await incoming.answer()
                await call.hang_up()

        run(main)
