"""The GSM driver against the simulated SIM7600, both on a scaled clock.

Every test runs one ``asyncio.run`` with a real-time deadline; the clock runs 10x
so the 2 s +CLCC poll takes 0.2 s. The simulator is the independent check: what
it records (commands, uplink bytes, decoded SMS) is asserted, not the driver's view.

The harness here (``run``, ``answered``, ``full_call``...) is shared by the other
GSM test files (EC25, SIM800, faults).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Literal

import numpy as np
import pytest

from appliance.clock import ScaledClock
from appliance.errors import LineError
from appliance.line.base import Dtmf
from appliance.line.gsm import GsmCall, GsmDriver, GsmIncomingCall
from appliance.line.sim.gsm_modem import GsmModemSim

RATE = 10.0
DEADLINE_S = 5.0  # real seconds per test; each normally takes well under 1 s
NUMBER = "+33612345678"
# A write may wait this long (clock) before the uplink counts as stalled. Longer
# than the driver's default: at 10x, 0.3 s of a busy machine must not look like
# a stalled module.
STALL_S = 3.0

Scenario = Callable[[GsmModemSim, GsmDriver], Awaitable[None]]
AudioPath = Literal["serial", "card"]


def run(
    scenario: Scenario,
    *,
    profile: str = "sim7600",
    audio: AudioPath = "serial",
    deadline_s: float = DEADLINE_S,
    **sim_options: Any,
) -> GsmModemSim:
    """Start the simulated module and the driver on it, run ``scenario``, close both."""
    clock = ScaledClock(RATE)
    with GsmModemSim(profile, clock=clock, **sim_options) as sim:

        async def main() -> None:
            async with asyncio.timeout(deadline_s):
                driver = GsmDriver(sim.path, clock=clock, profile_name=profile, uplink_stall_s=STALL_S,
                                   **audio_of(sim, audio))
                await driver.start()
                try:
                    await scenario(sim, driver)
                finally:
                    await driver.close()

        asyncio.run(main())
    return sim


def audio_of(sim: GsmModemSim, audio: AudioPath) -> dict[str, Any]:
    """What the driver is given for the module's audio: its PCM port, or its sound card."""
    return {"audio_url": sim.audio_path} if audio == "serial" else {"audio_device": sim.card}


async def frames_of(samples: np.ndarray) -> AsyncIterator[np.ndarray]:
    for start in range(0, len(samples), 160):
        yield samples[start : start + 160]


async def received(call: GsmCall, count: int) -> list[np.ndarray]:
    """The next ``count`` audio frames of the call (key presses skipped)."""
    frames: list[np.ndarray] = []
    inbound = call.inbound()
    while len(frames) < count:
        item = await anext(inbound)
        if isinstance(item, np.ndarray):
            assert item.dtype == np.int16 and item.shape == (160,)
            frames.append(item)
    return frames


async def ended(call: GsmCall) -> None:
    async for _ in call.inbound():
        pass


def dbfs(samples: np.ndarray) -> float:
    rms = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))
    return 20 * np.log10(max(rms, 1e-9) / 32768)


async def next_ringing(driver: GsmDriver) -> GsmIncomingCall:
    calls: AsyncIterator[GsmIncomingCall] = driver.incoming()  # type: ignore[assignment]
    return await anext(calls)


async def answered(sim: GsmModemSim, driver: GsmDriver, number: str | None = NUMBER) -> GsmCall:
    """Ring, answer, and wait until the module has the call active (an EC25 accepts its
    audio command before that, a SIM7600 only after)."""
    sim.ring(number)
    call = await (await next_ringing(driver)).answer()
    await until(lambda: sim.stats().call_state == "active")
    return call


async def until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.005)


def find(haystack: np.ndarray, needle: np.ndarray) -> int:
    """Where ``needle`` starts in ``haystack``, sample for sample; -1 if nowhere."""
    for start in np.flatnonzero(haystack == needle[0]):
        if np.array_equal(haystack[start : start + len(needle)], needle):
            return int(start)
    return -1


async def full_call(sim: GsmModemSim, driver: GsmDriver, *, number: str | None = NUMBER) -> GsmCall:
    """A whole ordinary call: answered, the caller heard word for word, the box heard, the
    caller hangs up and the driver sees it. Proves the line still works after a fault."""
    words = (np.arange(1, 801, dtype=np.int16) * 13).astype(np.int16)  # 5 frames, no zero sample
    reply = (np.arange(1600, dtype=np.int16) * 7 - 5000).astype(np.int16)  # 10 frames
    heard_before = len(sim.heard())
    call = await answered(sim, driver, number)
    sim.say(words.astype("<i2").tobytes())
    audio = np.concatenate(await received(call, 50))
    assert find(audio, words) >= 0
    assert await call.play(frames_of(reply)) == 10
    await until(lambda: reply.astype("<i2").tobytes() in sim.heard()[heard_before:])
    sim.hang_up()
    await ended(call)
    assert call.end_reason == "caller_hung_up"
    return call


def test_incoming_call_carries_the_clip_number() -> None:
    async def scenario(sim: GsmModemSim, driver: GsmDriver) -> None:
        sim.ring(NUMBER)
        ringing = await next_ringing(driver)
        assert ringing.caller_id == NUMBER
        assert sim.stats().rings == 1  # offered on the first +CLIP, not after more rings

    sim = run(scenario)
    commands = sim.stats().commands
    assert "ATE0" in commands and "AT+CLIP=1" in commands and "AT+CLCC=1" in commands


def test_withheld_number_gives_none() -> None:
    async def scenario(sim: GsmModemSim, driver: GsmDriver) -> None:
        sim.ring(None)
        assert (await next_ringing(driver)).caller_id is None

    run(scenario)


def test_answer_retries_pcm_until_active_and_audio_flows_both_ways() -> None:
    caller_says = np.arange(1, 1601, dtype=np.int16)  # 10 frames, no zero sample
    box_says = (np.arange(4000, dtype=np.int16) * 7 - 9000).astype(np.int16)  # 25 frames

    async def frames() -> AsyncIterator[np.ndarray]:
        for start in range(0, len(box_says), 160):
            yield box_says[start : start + 160]

    async def scenario(sim: GsmModemSim, driver: GsmDriver) -> None:
        call = await answered(sim, driver)
        stats = sim.stats()
        assert stats.pcm_enabled and stats.call_state == "active"
        assert stats.pcm_refusals >= 1  # the first AT+CPCMREG=1 came before the call was active
        assert stats.commands.count("AT+CPCMREG=1") == stats.pcm_refusals + 1
        assert call.caller_id == NUMBER

        sim.say(caller_says.astype("<i2").tobytes())
        received: list[np.ndarray] = []
        inbound = call.inbound()
        while len(received) < 40:  # 0.8 s: the words and the line noise around them
            item = await anext(inbound)
            assert isinstance(item, np.ndarray) and item.dtype == np.int16 and item.shape == (160,)
            received.append(item)
        audio = np.concatenate(received)
        assert find(audio, caller_says) >= 0  # word for word, between stretches of line noise

        started = time.monotonic()
        assert await call.play(frames()) == 25
        assert time.monotonic() - started >= 0.5 * 25 * 0.02 / RATE  # paced, not dumped
        expected = box_says.astype("<i2").tobytes()
        await until(lambda: len(sim.heard()) >= len(expected))
        assert sim.heard() == expected
        assert sim.stats().uplink_overruns == 0

        await call.hang_up()
        assert call.ended and call.end_reason == "box_hung_up"

    sim = run(scenario, active_delay_s=0.5)
    commands = sim.stats().commands
    assert commands.index("AT+CHUP") < commands.index("AT+CPCMREG=0", commands.index("AT+CHUP"))
    assert sim.stats().call_state == "released" and not sim.stats().pcm_enabled


def test_dtmf_is_reported_once() -> None:
    async def scenario(sim: GsmModemSim, driver: GsmDriver) -> None:
        call = await answered(sim, driver)
        sim.press("5")
        digits: list[str] = []
        frames_after = 0
        async for item in call.inbound():
            if isinstance(item, Dtmf):
                digits.append(item.digit)
            elif digits:
                frames_after += 1
                if frames_after == 25:  # half a second of audio after the key
                    break
        assert digits == ["5"]

    run(scenario)


@pytest.mark.parametrize(
    "end_order", ["vendor_first", "no_carrier_first", "no_carrier_only", "vendor_only", "state_only"]
)
def test_caller_hang_up_ends_the_call(end_order: str) -> None:
    async def scenario(sim: GsmModemSim, driver: GsmDriver) -> None:
        call = await answered(sim, driver)
        sim.hang_up()
        async for _ in call.inbound():
            pass
        assert call.ended and call.end_reason == "caller_hung_up"
        await until(lambda: sim.stats().pcm_disables >= 1)  # AT+CPCMREG=0 after the call

    sim = run(scenario, end_order=end_order)
    assert "AT+CHUP" not in sim.stats().commands


def test_caller_leaving_while_ringing_cannot_be_answered() -> None:
    async def scenario(sim: GsmModemSim, driver: GsmDriver) -> None:
        sim.ring(NUMBER)
        ringing = await next_ringing(driver)
        sim.hang_up()
        await until(lambda: ringing.gone)  # MISSED_CALL
        with pytest.raises(LineError) as err:
            await ringing.answer()
        assert err.value.code == "call-gone"

    run(scenario)


def test_a_dead_control_port_ends_the_call_at_once() -> None:
    async def scenario(sim: GsmModemSim, driver: GsmDriver) -> None:
        call = await answered(sim, driver)
        sim.unplug()  # no NO CARRIER will ever come
        async for _ in call.inbound():
            pass
        assert call.ended and call.end_reason == "line_lost"
        assert not driver.health().ok

    run(scenario)


def test_watchdog_ends_a_zombie_call_after_two_empty_call_lists() -> None:
    async def scenario(sim: GsmModemSim, driver: GsmDriver) -> None:
        call = await answered(sim, driver)
        dropped_at = driver.clock.monotonic()
        sim.hang_up(silent=True)  # the network dropped the call, the URCs were lost
        async for _ in call.inbound():
            pass
        assert call.end_reason == "call_dropped"
        # A 2 s poll, a second look 0.5 s after the first empty list, and their round trips.
        assert call.ended_at is not None and call.ended_at - dropped_at <= 4.0
        assert driver.health().ok

    sim = run(scenario)
    assert sim.stats().commands.count("AT+CLCC") >= 2


def test_accented_sms_goes_as_ucs2_and_the_charset_is_restored() -> None:
    text = "Votre rendez-vous est confirmé"

    async def scenario(sim: GsmModemSim, driver: GsmDriver) -> None:
        assert await driver.send_sms(NUMBER, text) == 1
        assert await driver.send_sms(NUMBER, "Rappel: RDV demain 9h30") == 2

    sim = run(scenario)
    accented, plain = sim.sent_sms()
    assert (accented.number, accented.text, accented.charset, accented.dcs) == (NUMBER, text, "UCS2", 8)
    assert (plain.text, plain.charset, plain.dcs) == ("Rappel: RDV demain 9h30", "GSM", 0)
    commands = sim.stats().commands
    ucs2 = commands.index('AT+CSCS="UCS2"')
    number_hex = NUMBER.encode("utf-16-be").hex().upper()  # "002B0033..."
    assert commands[ucs2 + 1 : ucs2 + 4] == ("AT+CSMP=17,167,0,8", f'AT+CMGS="{number_hex}"', 'AT+CSCS="GSM"')


def test_sms_too_long_for_one_part_is_refused_before_the_module() -> None:
    async def scenario(sim: GsmModemSim, driver: GsmDriver) -> None:
        with pytest.raises(LineError) as err:
            await driver.send_sms(NUMBER, "é" * 71)
        assert err.value.code == "sms-too-long"

    assert run(scenario).sent_sms() == ()
