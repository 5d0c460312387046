"""The GSM driver against the simulated SIM7600, both on a scaled clock.

Every test runs one ``asyncio.run`` with a real-time deadline; the clock runs 10x
so the 2 s +CLCC poll takes 0.2 s. The simulator is the independent check: what
it records (commands, uplink bytes, decoded SMS) is asserted, not the driver's view.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

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

Scenario = Callable[[GsmModemSim, GsmDriver], Awaitable[None]]


def run(scenario: Scenario, **sim_options: Any) -> GsmModemSim:
    clock = ScaledClock(RATE)
    with GsmModemSim(clock=clock, **sim_options) as sim:

        async def main() -> None:
            async with asyncio.timeout(DEADLINE_S):
                driver = GsmDriver(sim.path, audio_url=sim.audio_path, clock=clock)
                await driver.start()
                try:
                    await scenario(sim, driver)
                finally:
                    await driver.close()

        asyncio.run(main())
    return sim


async def next_ringing(driver: GsmDriver) -> GsmIncomingCall:
    calls: AsyncIterator[GsmIncomingCall] = driver.incoming()  # type: ignore[assignment]
    return await anext(calls)


async def answered(sim: GsmModemSim, driver: GsmDriver, number: str | None = NUMBER) -> GsmCall:
    sim.ring(number)
    return await (await next_ringing(driver)).answer()


async def until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.005)


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
        while sum(int(np.count_nonzero(f)) for f in received) < len(caller_says):
            item = await anext(inbound)
            assert isinstance(item, np.ndarray) and item.dtype == np.int16 and item.shape == (160,)
            received.append(item)
        audio = np.concatenate(received)
        first = int(np.flatnonzero(audio)[0])
        np.testing.assert_array_equal(audio[first : first + len(caller_says)], caller_says)

        started = time.monotonic()
        assert await call.play(frames()) == 25
        assert time.monotonic() - started >= 0.5 * 25 * 0.02 / RATE  # paced, not dumped
        expected = box_says.astype("<i2").tobytes()
        await until(lambda: len(sim.heard()) >= len(expected))
        assert sim.heard() == expected
        assert sim.stats().uplink_overruns == 0

        await call.hang_up()
        assert call.ended and call.end_reason == "local"

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
    "end_order", ["voice_call_end_first", "no_carrier_first", "no_carrier_only", "voice_call_end_only"]
)
def test_caller_hang_up_ends_the_call(end_order: str) -> None:
    async def scenario(sim: GsmModemSim, driver: GsmDriver) -> None:
        call = await answered(sim, driver)
        sim.hang_up()
        async for _ in call.inbound():
            pass
        assert call.ended and call.end_reason.startswith("remote")
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


def test_watchdog_ends_the_call_when_the_control_port_dies() -> None:
    async def scenario(sim: GsmModemSim, driver: GsmDriver) -> None:
        call = await answered(sim, driver)
        sim.unplug()  # no NO CARRIER will ever come
        async for _ in call.inbound():
            pass
        assert call.ended and call.end_reason.startswith("watchdog")
        assert not driver.health().ok

    run(scenario)


def test_watchdog_ends_a_zombie_call_after_two_empty_call_lists() -> None:
    async def scenario(sim: GsmModemSim, driver: GsmDriver) -> None:
        call = await answered(sim, driver)
        sim.hang_up(silent=True)  # the network dropped the call, the URCs were lost
        async for _ in call.inbound():
            pass
        assert call.end_reason == "watchdog: no call in +CLCC"
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
