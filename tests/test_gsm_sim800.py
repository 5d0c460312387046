"""The GSM driver on a simulated SIMCom SIM800, its analog audio wired to a USB sound card.

telephony.md 2.4: call control as 27.007, DTMF with ``AT+DDET=1,100,1,1`` as
``+DTMF: <digit>,<ms>`` when the key is released, the call's audio through a
sound card (``AudioDevice``) at 8 or 16 kHz.
"""

from __future__ import annotations

import numpy as np
import pytest

from appliance.errors import LineError
from appliance.line.base import Dtmf
from appliance.line.gsm import GsmDriver
from appliance.line.sim.gsm_modem import GsmModemSim

from .test_gsm import answered, dbfs, ended, frames_of, full_call, next_ringing, received, run, until


def tone(hz: float, seconds: float, rate: int = 8000) -> np.ndarray:
    return (np.sin(np.arange(int(rate * seconds)) * 2 * np.pi * hz / rate) * 8000).astype(np.int16)


def main_frequency(samples: np.ndarray, rate: int = 8000) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


def test_a_call_through_the_sound_card_both_ways() -> None:
    async def scenario(sim: GsmModemSim, driver: GsmDriver) -> None:
        await full_call(sim, driver)

    sim = run(scenario, profile="sim800", audio="card")
    commands = sim.stats().commands
    assert "AT+DDET=1,100,1,1" in commands and "AT+CLIP=1" in commands
    assert sim.stats().card_opens == 1


def test_a_16_khz_card_is_resampled_to_the_line_rate() -> None:
    async def scenario(sim: GsmModemSim, driver: GsmDriver) -> None:
        call = await answered(sim, driver)
        sim.say(tone(440, 1.0).astype("<i2").tobytes())
        audio = np.concatenate(await received(call, 60))
        loud = audio[np.abs(audio) > 2000]
        assert len(loud) > 2000  # the tone came through, not only noise
        assert abs(main_frequency(audio) - 440) < 10

        await call.play(frames_of(tone(1000, 0.6)))
        await until(lambda: len(sim.heard()) >= 2 * 4000)
        heard = np.frombuffer(sim.heard(), dtype="<i2")
        assert abs(main_frequency(heard[-4000:]) - 1000) < 10
        await call.hang_up()

    run(scenario, profile="sim800", audio="card", card_rate_hz=16000)


def test_a_held_key_is_one_digit_reported_at_its_release() -> None:
    async def scenario(sim: GsmModemSim, driver: GsmDriver) -> None:
        call = await answered(sim, driver)
        sim.press("5", duration_s=2.0)
        sim.press("7")  # during the held 5: the module reports each at its own release
        digits: list[str] = []
        frames = 0
        async for item in call.inbound():
            if isinstance(item, Dtmf):
                digits.append(item.digit)
            elif len(digits) == 2:
                frames += 1
                if frames == 50:  # one more second: no repeat of the held key
                    break
        assert digits == ["7", "5"]

    sim = run(scenario, profile="sim800", audio="card")
    said = b"".join(e.data for e in sim.transcript())
    assert b"+DTMF: 5,2000" in said and b"+DTMF: 7,100" in said


def test_a_silent_caller_is_heard_as_line_noise() -> None:
    async def scenario(sim: GsmModemSim, driver: GsmDriver) -> None:
        call = await answered(sim, driver)
        audio = np.concatenate(await received(call, 50))[800:]  # after the card's first buffers
        assert np.count_nonzero(audio) > len(audio) // 2
        assert -60.0 <= dbfs(audio) <= -55.0
        await call.hang_up()

    run(scenario, profile="sim800", audio="card")


def test_a_caller_who_gives_up_while_ringing_cannot_be_answered() -> None:
    async def scenario(sim: GsmModemSim, driver: GsmDriver) -> None:
        sim.ring("0612345678")
        ringing = await next_ringing(driver)
        sim.abandon()
        await until(lambda: ringing.ringing.stopped)  # NO CARRIER
        with pytest.raises(LineError) as err:
            await ringing.answer()
        assert err.value.code == "call-gone"
        await full_call(sim, driver)

    run(scenario, profile="sim800", audio="card")


def test_a_sim800_has_no_pcm_port_to_give() -> None:
    with pytest.raises(LineError) as err:
        GsmDriver("/dev/null", clock=None, profile_name="sim800", audio_url="/dev/ttyUSB1")  # type: ignore[arg-type]
    assert err.value.code == "audio-unsupported"


def test_the_caller_hanging_up_ends_the_call_on_no_carrier() -> None:
    async def scenario(sim: GsmModemSim, driver: GsmDriver) -> None:
        call = await answered(sim, driver)
        sim.hang_up()
        await ended(call)
        assert (call.end_reason, call.end_detail) == ("caller_hung_up", "NO CARRIER")

    run(scenario, profile="sim800", audio="card", end_order="no_carrier_only")


def test_a_missing_sound_card_fails_the_answer_plainly_and_is_found_again() -> None:
    async def scenario(sim: GsmModemSim, driver: GsmDriver) -> None:
        assert sim.card is not None
        sim.card.unplug()
        sim.ring("0612345678")
        with pytest.raises(LineError) as err:
            await (await next_ringing(driver)).answer()
        assert err.value.code == "audio-device-failed"
        health = driver.health()
        assert not health.ok and "sound card 'USB Audio Device' cannot be opened" in health.detail
        await until(lambda: sim.stats().call_state == "released")  # not left ringing or connected
        sim.card.replug()
        await full_call(sim, driver)
        assert driver.health().ok

    sim = run(scenario, profile="sim800", audio="card")
    assert "AT+CHUP" in sim.stats().commands


def test_a_sound_card_pulled_out_mid_call_ends_it() -> None:
    async def scenario(sim: GsmModemSim, driver: GsmDriver) -> None:
        assert sim.card is not None
        call = await answered(sim, driver)
        pulled_at = driver.clock.monotonic()
        sim.card.unplug()
        await ended(call)
        assert call.end_reason == "line_lost" and "vanished" in call.end_detail
        assert call.ended_at is not None and call.ended_at - pulled_at <= 3.0
        await until(lambda: sim.stats().call_state == "released")  # the box hung the module up
        sim.card.replug()
        await full_call(sim, driver)

    run(scenario, profile="sim800", audio="card")
