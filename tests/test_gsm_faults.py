"""GSM faults (telephony.md 2.6, 6.5, 6.6): each one survived, the end seen, the line still up.

For every fault: nothing escapes the driver, the call ends with a plain reason,
a hang-up is seen within 3 s of clock time, and the next call is answered with
audio both ways (``full_call``). SIM7600 and EC25 (PCM on its NMEA port) run the
same tests where the fault means the same thing on both. Every test runs with
the module writing in random pieces (``chunk_seed``): RING, +CLIP and every other
URC reach the driver split across reads.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import numpy as np
import pytest

from appliance.errors import LineError
from appliance.line.base import Dtmf
from appliance.line.gsm import GsmCall, GsmDriver
from appliance.line.sim.gsm_modem import GsmModemSim

from .test_gsm import (
    NUMBER,
    AudioPath,
    Scenario,
    answered,
    dbfs,
    ended,
    frames_of,
    full_call,
    next_ringing,
    received,
    until,
)
from .test_gsm import run as run_unsplit

PROFILES = ["sim7600", "ec25"]
HANG_UP_WITHIN_S = 3.0  # clock seconds from the caller's hang-up to the driver's end of the call
CHUNK_SEED = 5


def run(scenario: Scenario, **options: Any) -> GsmModemSim:
    """Every fault here also comes in random 1-700 byte writes, each URC cut in two."""
    options.setdefault("chunk_seed", CHUNK_SEED)
    return run_unsplit(scenario, **options)


async def caller_hangs_up(sim: GsmModemSim, driver: GsmDriver, call: GsmCall) -> None:
    """The caller hangs up; the driver must see it within ``HANG_UP_WITHIN_S``."""
    hung_up_at = driver.clock.monotonic()
    sim.hang_up()
    await ended(call)
    assert call.end_reason == "caller_hung_up"
    assert call.ended_at is not None and call.ended_at - hung_up_at <= HANG_UP_WITHIN_S


END_ORDERS = [
    ("sim7600", "vendor_first"),
    ("sim7600", "no_carrier_first"),
    ("sim7600", "no_carrier_only"),
    ("sim7600", "vendor_only"),
    ("sim7600", "state_only"),
    ("ec25", "vendor_first"),  # ccinfo -1, then NO CARRIER
    ("ec25", "no_carrier_only"),
    ("ec25", "state_only"),
]


@pytest.mark.parametrize(("profile", "end_order"), END_ORDERS)
def test_hang_up_is_seen_whatever_the_modules_urc_order(profile: str, end_order: str) -> None:
    async def scenario(sim: GsmModemSim, driver: GsmDriver) -> None:
        call = await answered(sim, driver)
        await caller_hangs_up(sim, driver, call)
        await full_call(sim, driver)

    run(scenario, profile=profile, end_order=end_order)


@pytest.mark.parametrize("profile", PROFILES)
def test_a_caller_who_gives_up_before_the_answer_stops_the_ringing(profile: str) -> None:
    async def scenario(sim: GsmModemSim, driver: GsmDriver) -> None:
        sim.ring(NUMBER)
        ringing = await next_ringing(driver)
        assert ringing.ringing.rings == 1
        gave_up_at = driver.clock.monotonic()
        sim.abandon()
        await until(lambda: ringing.ringing.stopped)
        assert driver.clock.monotonic() - gave_up_at <= HANG_UP_WITHIN_S
        with pytest.raises(LineError) as err:
            await ringing.answer()
        assert err.value.code == "call-gone"
        await full_call(sim, driver)

    sim = run(scenario, profile=profile)
    assert "ATA" in sim.stats().commands  # only for the second call: the first was never answered
    assert sim.stats().commands.count("ATA") == 1


def test_ringing_counts_each_ring_for_the_answering_policy() -> None:
    async def scenario(sim: GsmModemSim, driver: GsmDriver) -> None:
        sim.ring(NUMBER)
        ringing = await next_ringing(driver)
        assert await ringing.ringing.wait_rings(3)
        assert sim.stats().rings == 3
        call = await ringing.answer()
        await caller_hangs_up(sim, driver, call)

    run(scenario, ring_period_s=1.0)


def test_a_call_that_stops_ringing_without_a_word_cannot_be_answered() -> None:
    async def scenario(sim: GsmModemSim, driver: GsmDriver) -> None:
        sim.ring(NUMBER)
        ringing = await next_ringing(driver)
        sim.hang_up(silent=True)  # the network dropped it; no MISSED_CALL, no NO CARRIER
        assert not await ringing.ringing.wait_rings(2)  # 8 s without a ring: stopped
        with pytest.raises(LineError) as err:
            await ringing.answer()
        assert err.value.code == "call-gone"
        await full_call(sim, driver)

    run(scenario)


@pytest.mark.parametrize(("profile", "audio"), [("sim7600", "serial"), ("ec25", "serial"), ("ec25", "card")])
def test_a_vanished_port_ends_the_call_and_the_line_comes_back(profile: str, audio: AudioPath) -> None:
    async def scenario(sim: GsmModemSim, driver: GsmDriver) -> None:
        call = await answered(sim, driver)
        vanished_at = driver.clock.monotonic()
        sim.vanish_port()  # EIO on every port, and no NO CARRIER ever
        await ended(call)
        assert call.end_reason == "line_lost"
        assert call.ended_at is not None and call.ended_at - vanished_at <= HANG_UP_WITHIN_S
        health = driver.health()
        assert not health.ok and "vanished" in health.detail

        await asyncio.sleep(0.3)  # 3 s: the driver keeps looking for the port
        assert not driver.health().ok
        sim.restore_port()
        await until(lambda: driver.health().ok)
        await full_call(sim, driver)

    sim = run(scenario, profile=profile, audio=audio)
    assert sim.stats().commands.count("ATE0") == 2  # initialised again after the re-plug


def test_a_module_vanishing_while_idle_is_waited_for() -> None:
    async def scenario(sim: GsmModemSim, driver: GsmDriver) -> None:
        sim.vanish_port()
        await until(lambda: not driver.health().ok)
        sim.restore_port()
        await until(lambda: driver.health().ok)
        await full_call(sim, driver)

    run(scenario)


@pytest.mark.parametrize("profile", PROFILES)
def test_refused_audio_commands_are_retried_until_accepted(profile: str) -> None:
    async def scenario(sim: GsmModemSim, driver: GsmDriver) -> None:
        sim.ring(NUMBER)
        ringing = await next_ringing(driver)
        sim.refuse_cpcmreg(3)
        call = await ringing.answer()
        assert call.audio_on
        await caller_hangs_up(sim, driver, call)
        await full_call(sim, driver)

    sim = run(scenario, profile=profile)
    assert sim.stats().pcm_refusals >= 3


@pytest.mark.parametrize("profile", PROFILES)
def test_audio_refused_for_the_whole_window_fails_the_answer_plainly(profile: str) -> None:
    async def scenario(sim: GsmModemSim, driver: GsmDriver) -> None:
        sim.ring(NUMBER)
        ringing = await next_ringing(driver)
        sim.refuse_cpcmreg(1000)  # for the rest of this call
        with pytest.raises(LineError) as err:
            await ringing.answer()
        assert err.value.code == "audio-enable-failed"
        await until(lambda: sim.stats().call_state == "released")  # the box hung up
        await full_call(sim, driver)

    sim = run(scenario, profile=profile, deadline_s=8.0)
    assert "AT+CHUP" in sim.stats().commands


@pytest.mark.parametrize("profile", PROFILES)
def test_a_stalled_uplink_never_blocks_and_the_call_goes_on_listen_only(profile: str) -> None:
    speech = (np.sin(np.arange(8000 * 8) * 2 * np.pi * 300 / 8000) * 6000).astype(np.int16)  # 8 s
    gaps: list[float] = []

    async def probe_the_loop() -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.005)
            gaps.append(loop.time() - before)

    async def scenario(sim: GsmModemSim, driver: GsmDriver) -> None:
        probe = asyncio.create_task(probe_the_loop())
        call = await answered(sim, driver)
        assert call.uplink is not None
        sim.stall_uplink()
        started = driver.clock.monotonic()
        assert await call.play(frames_of(speech)) == 400  # paced to the end, nothing waited on
        assert driver.clock.monotonic() - started < 8 + 2
        assert call.uplink.stalled and not call.ended
        health = driver.health()
        assert not health.ok and "stopped taking the box's audio" in health.detail

        assert call.discard_received() >= 300  # the downlink went on all along
        words = (np.arange(1, 801, dtype=np.int16) * 11).astype(np.int16)
        sim.say(words.astype("<i2").tobytes())  # the caller is still heard
        assert np.abs(np.concatenate(await received(call, 40))).max() >= 8000

        await caller_hangs_up(sim, driver, call)
        await full_call(sim, driver)
        assert driver.health().ok  # this call's audio went through: the fault is gone
        probe.cancel()

    run(scenario, profile=profile, deadline_s=10.0)
    assert max(gaps) < 1.0  # the event loop never waited on the stalled port (real seconds)


def test_an_uplink_that_comes_back_carries_the_rest_of_the_call() -> None:
    speech = (np.sin(np.arange(8000 * 12) * 2 * np.pi * 300 / 8000) * 6000).astype(np.int16)  # 12 s

    async def scenario(sim: GsmModemSim, driver: GsmDriver) -> None:
        call = await answered(sim, driver)
        assert call.uplink is not None
        sim.stall_uplink()
        playing = asyncio.create_task(call.play(frames_of(speech)))
        await until(lambda: call.uplink is not None and bool(call.uplink.stalled))
        sim.resume_uplink()
        await until(lambda: call.uplink is not None and not call.uplink.stalled)
        assert driver.health().ok
        written = call.uplink.written
        await until(lambda: call.uplink is not None and call.uplink.written > written + 50)  # 1 s more
        assert await playing == 600
        await caller_hangs_up(sim, driver, call)

    run(scenario, deadline_s=8.0)


@pytest.mark.parametrize("profile", PROFILES)
def test_garbage_on_the_at_port_changes_nothing(profile: str) -> None:
    noise = random.Random(3).randbytes(600)
    garbage = bytes(range(256)) + noise + b"\x00" * 40 + b"\xff\xfe\x10\x10\x10"

    async def scenario(sim: GsmModemSim, driver: GsmDriver) -> None:
        sim.garbage(garbage)  # idle
        await full_call(sim, driver)
        call = await answered(sim, driver)
        sim.garbage(garbage)  # mid-call
        await received(call, 25)
        assert not call.ended
        await caller_hangs_up(sim, driver, call)
        await full_call(sim, driver)

    run(scenario, profile=profile)


@pytest.mark.parametrize("profile", PROFILES)
def test_a_waiting_caller_is_not_a_new_call(profile: str) -> None:
    async def scenario(sim: GsmModemSim, driver: GsmDriver) -> None:
        call = await answered(sim, driver)
        sim.call_waiting("+33698765432")
        await asyncio.sleep(0.2)  # 2 s: the waiting caller gives up after 1 s
        assert not call.ended
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await next_ringing(driver)
        await received(call, 10)  # audio still flows
        await caller_hangs_up(sim, driver, call)
        await full_call(sim, driver)

    sim = run(scenario, profile=profile, waiting_gives_up_s=1.0)
    said = b"".join(e.data for e in sim.transcript())
    assert b'+CCWA: "+33698765432",145,1' in said


@pytest.mark.parametrize("profile", PROFILES)
def test_a_held_key_is_one_digit_and_two_presses_are_two(profile: str) -> None:
    async def scenario(sim: GsmModemSim, driver: GsmDriver) -> None:
        call = await answered(sim, driver)
        sim.press("4", duration_s=2.0)
        sim.press("9")
        sim.press("9")
        digits: list[str] = []
        frames = 0
        async for item in call.inbound():
            if isinstance(item, Dtmf):
                digits.append(item.digit)
            elif digits:
                frames += 1
                if frames == 150:  # 3 s: the held key is long released
                    break
        assert digits == ["4", "9", "9"]
        await caller_hangs_up(sim, driver, call)

    run(scenario, profile=profile)


@pytest.mark.parametrize("profile", PROFILES)
def test_urcs_split_across_reads_still_make_whole_calls(profile: str) -> None:
    async def scenario(sim: GsmModemSim, driver: GsmDriver) -> None:
        await full_call(sim, driver)
        call = await answered(sim, driver, None)
        assert call.caller_id is None
        sim.press("1")
        async for item in call.inbound():
            if isinstance(item, Dtmf):
                assert item.digit == "1"
                break
        await caller_hangs_up(sim, driver, call)
        assert await driver.send_sms(NUMBER, "Rendez-vous confirmé") >= 1

    sim = run(scenario, profile=profile, chunk_seed=11)
    writes = [e.data for e in sim.transcript() if e.direction == "DCE<"]
    stream = b"".join(writes)
    cuts = set(np.cumsum([len(w) for w in writes]).tolist())
    split = [
        line for line in (b"RING", b"+CLIP:")
        for start in _starts(stream, line)
        if any(start < cut < stream.index(b"\r\n", start) for cut in cuts)
    ]
    assert split  # the driver really did get RING / +CLIP in pieces


@pytest.mark.parametrize(("profile", "audio"), [("sim7600", "serial"), ("ec25", "serial"), ("ec25", "card")])
def test_a_silent_caller_sounds_like_a_line_not_digital_zero(profile: str, audio: AudioPath) -> None:
    async def scenario(sim: GsmModemSim, driver: GsmDriver) -> None:
        call = await answered(sim, driver)
        silence = np.concatenate(await received(call, 60))[1600:]  # after the first 200 ms
        assert np.count_nonzero(silence) > len(silence) // 2
        assert -60.0 <= dbfs(silence) <= -55.0
        await call.hang_up()

    run(scenario, profile=profile, audio=audio)


def _starts(stream: bytes, needle: bytes) -> list[int]:
    found, start = [], stream.find(needle)
    while start >= 0:
        found.append(start)
        start = stream.find(needle, start + 1)
    return found
