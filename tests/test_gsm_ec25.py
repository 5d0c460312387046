"""The GSM driver on a simulated Quectel EC25: both audio paths, ccinfo, QTONEDET, QPCMV.

telephony.md 2.3: PCM on the NMEA port after ``AT+QPCMV=1,0`` (with busy/ready
URCs that pause the uplink), or the USB Audio Class card after ``AT+QPCMV=1,2``
(not ready at once: the driver retries opening it); call state from
``+QIND: "ccinfo"`` (state -1 = released); DTMF as ``+QTONEDET: <ascii code>``.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from appliance.line.base import Dtmf
from appliance.line.gsm import GsmDriver
from appliance.line.sim.gsm_modem import GsmModemSim

from .test_gsm import (
    NUMBER,
    AudioPath,
    answered,
    ended,
    find,
    frames_of,
    full_call,
    next_ringing,
    received,
    run,
    until,
)

CALLER_SAYS = (np.arange(1, 1601, dtype=np.int16) * 5).astype(np.int16)  # 10 frames, no zero sample
BOX_SAYS = (np.arange(4000, dtype=np.int16) * 7 - 9000).astype(np.int16)  # 25 frames


@pytest.mark.parametrize("audio", ["serial", "card"])
def test_a_call_carries_audio_both_ways_then_the_caller_hangs_up(audio: AudioPath) -> None:
    async def scenario(sim: GsmModemSim, driver: GsmDriver) -> None:
        call = await answered(sim, driver)
        assert call.caller_id == NUMBER
        await until(lambda: sim.stats().pcm_enabled)  # QPCMV is accepted at once, audio flows once active
        sim.say(CALLER_SAYS.astype("<i2").tobytes())
        heard_by_box = np.concatenate(await received(call, 40))
        assert find(heard_by_box, CALLER_SAYS) >= 0

        assert await call.play(frames_of(BOX_SAYS)) == 25
        expected = BOX_SAYS.astype("<i2").tobytes()
        await until(lambda: expected in sim.heard())
        assert sim.stats().uplink_overruns == 0

        sim.hang_up()
        await ended(call)
        assert call.end_reason == "caller_hung_up"
        await until(lambda: sim.stats().pcm_disables == 1)

    sim = run(scenario, profile="ec25", audio=audio)
    commands = sim.stats().commands
    assert 'AT+QINDCFG="ccinfo",1,0' in commands and "AT+QTONEDET=1" in commands
    assert ("AT+QPCMV=1,0" if audio == "serial" else "AT+QPCMV=1,2") in commands
    assert "AT+QPCMV=0" in commands  # audio off after the call
    assert "AT+CPCMREG=1" not in commands


def test_the_uac_card_is_opened_again_until_it_is_ready() -> None:
    async def scenario(sim: GsmModemSim, driver: GsmDriver) -> None:
        await full_call(sim, driver)
        assert sim.stats().card_opens == 1  # one successful open per call, after the failures

    # The card answers "not connected" for 1.5 s after AT+QPCMV=1,2 (telephony.md 2.3).
    run(scenario, profile="ec25", audio="card", card_ready_delay_s=1.5)


def test_the_ccinfo_release_alone_ends_the_call() -> None:
    async def scenario(sim: GsmModemSim, driver: GsmDriver) -> None:
        call = await answered(sim, driver)
        assert call.index == 1  # named by +QIND: "ccinfo",1,... before the first RING
        sim.hang_up()
        await ended(call)
        assert (call.end_reason, call.end_detail) == ("caller_hung_up", '+QIND: "ccinfo" released')

    run(scenario, profile="ec25", end_order="state_only")


def test_key_presses_arrive_as_digits_from_their_ascii_codes() -> None:
    async def scenario(sim: GsmModemSim, driver: GsmDriver) -> None:
        call = await answered(sim, driver)
        for key in "8*#":
            sim.press(key)
        digits: list[str] = []
        async for item in call.inbound():
            if isinstance(item, Dtmf):
                digits.append(item.digit)
                if len(digits) == 3:
                    break
        assert digits == ["8", "*", "#"]

    sim = run(scenario, profile="ec25")
    assert "+QTONEDET: 56" in b"".join(e.data for e in sim.transcript()).decode("latin-1")


def test_busy_pauses_the_uplink_until_the_module_is_ready() -> None:
    tone = (np.sin(np.arange(8000 * 3) * 2 * np.pi * 440 / 8000) * 8000).astype(np.int16)  # 3 s

    async def scenario(sim: GsmModemSim, driver: GsmDriver) -> None:
        call = await answered(sim, driver)
        assert call.uplink is not None
        playing = asyncio.create_task(call.play(frames_of(tone)))
        await until(lambda: len(sim.heard()) >= 3200)  # 0.1 s of the tone arrived
        sim.audio_busy()
        await until(lambda: call.uplink is not None and call.uplink.paused)
        await asyncio.sleep(0.02)  # what was already in the pty arrives
        during_busy = len(sim.heard())
        await asyncio.sleep(0.1)  # 1 s of clock time: 50 frames the box did not send
        assert len(sim.heard()) == during_busy
        assert sim.stats().uplink_while_busy <= 4096  # at most what was in flight at the URC

        sim.audio_ready()
        await until(lambda: len(sim.heard()) > during_busy + 3200)  # flowing again
        assert await playing == 150  # play() kept its pace through the pause
        await call.hang_up()

    run(scenario, profile="ec25")


def test_a_box_hang_up_sends_chup_and_turns_the_audio_off() -> None:
    async def scenario(sim: GsmModemSim, driver: GsmDriver) -> None:
        call = await answered(sim, driver)
        await call.hang_up()
        assert call.end_reason == "box_hung_up"
        await until(lambda: sim.stats().call_state == "released")
        await until(lambda: "AT+QPCMV=0" in sim.stats().commands)

    sim = run(scenario, profile="ec25", audio="card")
    commands = sim.stats().commands
    assert commands.index("AT+CHUP") < commands.index("AT+QPCMV=0", commands.index("AT+CHUP"))


def test_a_withheld_number_rings_as_none() -> None:
    async def scenario(sim: GsmModemSim, driver: GsmDriver) -> None:
        sim.ring(None)
        assert (await next_ringing(driver)).caller_id is None

    run(scenario, profile="ec25")
