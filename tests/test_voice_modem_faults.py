"""The voice-modem driver against the simulated modem when the line or the modem misbehaves.

Every test runs the real driver over the simulator's pty, with random write sizes
(DLE pairs and result lines cut anywhere), and checks what the call session would
see: no exception, the call closed with the right ``end_reason``, the modem back
on-hook in data class, and the next call answered on the same driver.

Times are measured on the clock the simulator and the driver share (a
``ScaledClock`` at 10x), so "within 3 s of the caller hanging up" is line time,
not the load of the machine running the tests.
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
from appliance.line import voice_modem_recovery
from appliance.line.base import Dtmf
from appliance.line.sim.voice_modem import VoiceModemSim

from appliance.line.voice_modem import VoiceModemDriver
from appliance.line.guard import GuardedCall, HangupSettings
from appliance.line.voice_modem_call import VoiceModemCall

from .modem_harness import run_within, simulated_modem, until

RATE = 10.0
DEADLINE_S = 30.0  # real seconds for a whole test; each normally takes 1-3
START = datetime(2025, 1, 17, 14, 52, 5, tzinfo=PARIS)
HANG_UP_DETECTED_S = 3.0  # clock seconds from the caller's hang-up to the call's end
BOTH = ["usr5637", "cx930xx"]


@contextmanager
def simulated(profile: str, **options: object) -> Iterator[VoiceModemSim]:
    with simulated_modem(profile, rate=RATE, start=START, seed=7, chunking=True, **options) as sim:
        yield sim


def run(main: Callable[[], Awaitable[None]]) -> None:
    run_within(DEADLINE_S, main)


async def clock_sleep(sim: VoiceModemSim, seconds: float) -> None:
    deadline = sim.clock.monotonic() + seconds
    await until(lambda: sim.clock.monotonic() >= deadline)


def tone(seconds: float, hz: float = 700.0, amplitude: int = 8000) -> np.ndarray:
    t = np.arange(int(seconds * 8000)) / 8000
    return (amplitude * np.cos(2 * np.pi * hz * t)).astype(np.int16)


def dbfs(pcm: np.ndarray) -> float:
    rms = float(np.sqrt(np.mean(np.asarray(pcm, dtype=np.float64) ** 2))) if pcm.size else 0.0
    return 20 * np.log10(max(rms, 1e-3) / 32768)


def dominant_hz(pcm: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64) * np.hanning(pcm.size)))
    return float(np.fft.rfftfreq(pcm.size, 1 / 8000)[np.argmax(spectrum)])


async def offered(driver: VoiceModemDriver, sim: VoiceModemSim, number: str = "5035551234"):  # type: ignore[no-untyped-def]
    sim.ring(number)
    calls = driver.incoming()
    try:
        return await anext(calls)
    finally:
        await calls.aclose()


async def answered(driver: VoiceModemDriver, sim: VoiceModemSim) -> VoiceModemCall:
    incoming = await offered(driver, sim)
    return await incoming.answer()


async def listen(call: VoiceModemCall, seconds: float) -> tuple[np.ndarray, list[str]]:
    """``seconds`` of the caller's audio (fewer if the call ends), and the keys pressed meanwhile."""
    frames: list[np.ndarray] = []
    digits: list[str] = []
    async for item in call.inbound():
        if isinstance(item, Dtmf):
            digits.append(item.digit)
            continue
        frames.append(item)
        if len(frames) >= seconds * 50:
            break
    return (np.concatenate(frames) if frames else np.zeros(0, dtype=np.int16)), digits


async def to_the_end(call: VoiceModemCall) -> None:
    async for _ in call.inbound():
        pass


def on_hook_in_data_class(sim: VoiceModemSim) -> bool:
    stats = sim.stats()
    return not stats.off_hook and stats.fclass == 0 and stats.mode == "command"


async def serves_another_call(driver: VoiceModemDriver, sim: VoiceModemSim) -> None:
    """The line works again: a new call is offered, answered, heard, and hung up."""
    started = sim.clock.monotonic()
    incoming = await offered(driver, sim, "0611223344")
    assert incoming.caller_id == "0611223344"
    call = await incoming.answer()
    assert sim.clock.monotonic() - started < 5.0  # rang, caller ID, answered: a few seconds of line time
    sim.say(ulaw_encode(tone(0.3)).tobytes())
    while True:
        pcm, _ = await listen(call, 0.1)
        assert not call.ended
        if dbfs(pcm) > -30:
            break  # the caller's words came through
    await call.hang_up()
    assert call.end_reason == "box_hung_up"
    await until(lambda: on_hook_in_data_class(sim))
    assert driver.health().ok


async def frames_of(pcm: np.ndarray) -> AsyncIterator[np.ndarray]:
    for start in range(0, pcm.size, 160):
        yield pcm[start : start + 160]


# --- the caller hangs up, and the modem says so ----------------------------------------------


@pytest.mark.parametrize(
    ("profile", "style", "while_playing"),
    [
        ("usr5637", "dial_tone", False),
        ("usr5637", "busy", False),
        ("usr5637", "dial_tone", True),
        ("cx930xx", "dial_tone", False),
        ("cx930xx", "busy", False),
        ("cx930xx", "loop_drop", False),
        ("cx930xx", "loop_drop", True),
    ],
)
def test_hang_up_reported_by_the_modem_ends_the_call_within_3_s(profile: str, style: str, while_playing: bool) -> None:
    with simulated(profile) as sim:

        async def main() -> None:
            async with VoiceModemDriver(sim.path, clock=sim.clock) as driver:
                call = await answered(driver, sim)
                playing = None
                if while_playing:  # the box is talking (+VTX): the event arrives in that stream
                    playing = asyncio.create_task(call.play(frames_of(tone(10.0))))
                    await until(lambda: len(sim.heard()) >= 4000)
                else:
                    await listen(call, 0.5)
                hung_up_at = sim.clock.monotonic()
                sim.hang_up(style)  # type: ignore[arg-type]
                await to_the_end(call)
                assert call.end_reason == "caller_hung_up"
                assert call.ended_at is not None and call.ended_at - hung_up_at <= HANG_UP_DETECTED_S
                if playing is not None:
                    assert 0 < await playing < 500  # stopped early, returned instead of raising
                await until(lambda: on_hook_in_data_class(sim))
                await serves_another_call(driver, sim)

        run(main)


@pytest.mark.parametrize("profile", BOTH)
def test_silence_timer_of_the_modem_ends_the_call_when_the_box_asks_for_one(profile: str) -> None:
    # +VSD: after the caller's last word, 2 s of silence make the modem send <DLE>q.
    with simulated(profile) as sim:

        async def main() -> None:
            async with VoiceModemDriver(sim.path, clock=sim.clock, silence_hangup_s=2.0) as driver:
                call = await answered(driver, sim)
                sim.say(ulaw_encode(tone(0.5)).tobytes())
                await listen(call, 0.6)
                hung_up_at = sim.clock.monotonic()
                sim.hang_up("silence")
                await to_the_end(call)
                assert call.end_reason == "caller_hung_up"
                assert call.ended_at is not None and call.ended_at - hung_up_at <= HANG_UP_DETECTED_S
                await until(lambda: on_hook_in_data_class(sim))
                await serves_another_call(driver, sim)

        run(main)


def test_usr_dle_h_after_going_off_hook_is_not_a_hang_up() -> None:
    # The USR confirms its own AT+VLS=1 with <DLE>H (telephony.md 1.7): not the caller leaving.
    with simulated("usr5637") as sim:

        async def main() -> None:
            async with VoiceModemDriver(sim.path, clock=sim.clock) as driver:
                call = await answered(driver, sim)
                pcm, _ = await listen(call, 1.0)
                assert pcm.size == 8000 and not call.ended
                assert b"\x10H" in b"".join(e.data for e in sim.transcript() if e.direction == "DCE<")
                await call.hang_up()

        run(main)


# --- hang-ups only the audio shows: the box's own detector's job, the cap's last ------------


@pytest.mark.parametrize(
    ("profile", "style", "heard_after"),
    [
        ("usr5637", "dial_tone_only", "dial_tone"),
        ("cx930xx", "dial_tone_only", "dial_tone"),
        ("usr5637", "silence", "dead_line"),
        ("cx930xx", "silence", "dead_line"),
        ("usr5637", "loop_drop", "dead_line"),  # the USR does not report a loop drop (1.7)
        ("usr5637", "never", "line_noise"),
        ("cx930xx", "never", "line_noise"),
    ],
)
def test_hang_up_without_a_modem_event_is_ended_by_the_maximum_call_length(
    profile: str, style: str, heard_after: str
) -> None:
    cap_s = 10.0
    with simulated(profile) as sim:

        async def main() -> None:
            async with VoiceModemDriver(sim.path, clock=sim.clock, max_call_s=cap_s) as driver:
                call = await answered(driver, sim)
                answered_at = sim.clock.monotonic()
                sim.hang_up(style)  # type: ignore[arg-type]
                await listen(call, 1.0)  # past the exchange's reaction time
                pcm, _ = await listen(call, 1.0)
                # What the box's own energy and tone detectors get to work with:
                match heard_after:
                    case "dial_tone":
                        assert dominant_hz(pcm) == pytest.approx(440, abs=10)  # France: 440 Hz
                    case "dead_line":
                        assert dbfs(pcm) < -70
                    case "line_noise":
                        assert -62 < dbfs(pcm) < -52
                await to_the_end(call)
                assert call.end_reason == "max_call_length"
                # The cap ended it (the reason says so), not earlier; how much later
                # depends on how busy the machine is, so that is not pinned here.
                assert call.ended_at is not None and call.ended_at - answered_at >= cap_s
                await until(lambda: on_hook_in_data_class(sim))
                await serves_another_call(driver, sim)

        run(main)


@pytest.mark.parametrize(("country", "hz"), [("eu", (425.0,)), ("us", (350.0, 440.0))])
def test_dial_tone_after_the_hang_up_is_the_countrys(country: str, hz: tuple[float, ...]) -> None:
    with simulated("usr5637", country=country) as sim:

        async def main() -> None:
            async with VoiceModemDriver(sim.path, clock=sim.clock) as driver:
                call = await answered(driver, sim)
                sim.hang_up("dial_tone_only")
                await listen(call, 1.0)
                pcm, _ = await listen(call, 1.0)
                spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64)))
                freqs = np.fft.rfftfreq(pcm.size, 1 / 8000)
                peaks = sorted(freqs[np.argsort(spectrum)[-len(hz) :]])
                assert peaks == pytest.approx(hz, abs=3)
                await call.hang_up()

        run(main)


# --- a person in the practice lifts an extension phone -----------------------------------------


def test_extension_picked_up_during_the_call_silences_the_box_and_releases_the_line() -> None:
    # Conexant reports <DLE>P with -STE (telephony.md 1.7): the person talks with the caller now.
    with simulated("cx930xx") as sim:

        async def main() -> None:
            async with VoiceModemDriver(sim.path, clock=sim.clock) as driver:
                call = await answered(driver, sim)
                playing = asyncio.create_task(call.play(frames_of(tone(10.0))))
                await until(lambda: len(sim.heard()) >= 8000)
                heard_before = len(sim.heard())
                sim.pick_up_extension()
                sent = await playing  # returns, no exception
                assert call.ended and call.end_reason == "extension_picked_up"
                assert sent < 500
                # Silent at once: the modem's buffer was cleared, not played out (<1 s of it).
                assert len(sim.heard()) - heard_before < 8000
                await until(lambda: on_hook_in_data_class(sim))
                assert sim.stats().call_state == "taken"  # the caller stays, with the person
                sim.put_down_extension()
                await serves_another_call(driver, sim)

        run(main)


def test_extension_picked_up_on_a_usr_is_not_reported_so_the_call_goes_on() -> None:
    # The USR5637 reports no extension phone (its profile lists no code): the box
    # cannot know, the person's voice is simply in the audio. Documented limit.
    with simulated("usr5637") as sim:

        async def main() -> None:
            async with VoiceModemDriver(sim.path, clock=sim.clock) as driver:
                call = await answered(driver, sim)
                quiet, _ = await listen(call, 0.5)
                sim.pick_up_extension()
                await listen(call, 0.2)
                voice, _ = await listen(call, 1.0)
                assert dbfs(voice) > dbfs(quiet) + 20 and not call.ended
                await call.hang_up()
                await until(lambda: on_hook_in_data_class(sim))

        run(main)


@pytest.mark.parametrize("profile", BOTH)
def test_extension_picked_up_while_ringing_stops_the_ringing(profile: str) -> None:
    with simulated(profile) as sim:

        async def main() -> None:
            async with VoiceModemDriver(sim.path, clock=sim.clock) as driver:
                incoming = await offered(driver, sim)
                sim.pick_up_extension()
                assert await incoming.ringing.wait_rings(incoming.ringing.rings + 3) is False
                assert incoming.ringing.stopped
                with pytest.raises(LineError, match="stopped ringing"):
                    await incoming.answer()
                assert not sim.stats().off_hook and sim.stats().call_state == "taken"
                sim.put_down_extension()
                await serves_another_call(driver, sim)

        run(main)


def test_extension_event_while_ringing_stops_the_ringing_at_once() -> None:
    # The simulated Conexant reports <DLE>P only in voice mode and the driver idles
    # in data class (1.4), so the event is put on the wire by hand: a chipset that
    # does report it while ringing must not leave the box waiting for the gap.
    with simulated("cx930xx") as sim:

        async def main() -> None:
            async with VoiceModemDriver(sim.path, clock=sim.clock) as driver:
                incoming = await offered(driver, sim)
                sim.garbage(b"\x10P")
                await until(lambda: incoming.ringing.stopped)
                assert incoming.ringing.rings <= 2  # stopped by the event, not by rings failing to come
                with pytest.raises(LineError, match="stopped ringing"):
                    await incoming.answer()
                sim.pick_up_extension()
                sim.put_down_extension()  # the person's call is over; the line is free again
                await serves_another_call(driver, sim)

        run(main)


@pytest.mark.parametrize("profile", BOTH)
def test_caller_who_gives_up_before_the_answer_stops_ringing(profile: str) -> None:
    with simulated(profile) as sim:

        async def main() -> None:
            async with VoiceModemDriver(sim.path, clock=sim.clock) as driver:
                incoming = await offered(driver, sim)
                rings = incoming.ringing.rings
                assert rings >= 1
                sim.abandon()
                assert await incoming.ringing.wait_rings(rings + 2) is False
                with pytest.raises(LineError, match="stopped ringing"):
                    await incoming.answer()
                assert not sim.stats().off_hook
                await serves_another_call(driver, sim)

        run(main)


# --- a second caller during the call --------------------------------------------------------------


@pytest.mark.parametrize("profile", BOTH)
def test_call_waiting_is_neither_a_new_call_nor_a_hang_up(profile: str) -> None:
    with simulated(profile) as sim:

        async def main() -> None:
            async with VoiceModemDriver(sim.path, clock=sim.clock) as driver:
                offers: list[object] = []

                async def watch_offers() -> None:
                    async for incoming in driver.incoming():
                        offers.append(incoming)

                call = await answered(driver, sim)
                watching = asyncio.create_task(watch_offers())
                await listen(call, 0.3)
                sim.call_waiting("0699887766")
                pcm, _ = await listen(call, 2.0)
                assert not call.ended and offers == []
                loudest = max(range(0, pcm.size - 2000, 400), key=lambda i: dbfs(pcm[i : i + 2000]))
                assert dominant_hz(pcm[loudest : loudest + 2000]) == pytest.approx(440, abs=10)  # the beep
                sent = b"".join(e.data for e in sim.transcript() if e.direction == "DCE<")
                assert b"\x10X" in sent  # the waiting caller's ID came, and was not taken for a call
                assert (b"\x10w" in sent) == (profile == "cx930xx")  # only Conexant reports w
                sim.hang_up("dial_tone")
                await to_the_end(call)
                assert call.end_reason == "caller_hung_up"
                watching.cancel()
                await until(lambda: on_hook_in_data_class(sim))

        run(main)


# --- key presses ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("profile", "style"), [("usr5637", "shielded"), ("cx930xx", "shielded"), ("cx930xx", "simple")]
)
def test_a_key_held_for_one_and_a_half_seconds_is_one_digit(profile: str, style: str) -> None:
    # Shielded style: "/ 5 5 5 ... ~", the digit repeated every 70 ms (telephony.md 1.7).
    with simulated(profile, dtmf_style=style) as sim:

        async def main() -> None:
            async with VoiceModemDriver(sim.path, clock=sim.clock) as driver:
                call = await answered(driver, sim)
                sim.press("5", duration_s=1.5)
                _, digits = await listen(call, 2.5)
                assert digits == ["5"]
                await call.hang_up()

        run(main)


# --- the box's audio ---------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", BOTH)
def test_a_0x10_byte_in_the_box_audio_reaches_the_caller_intact(profile: str) -> None:
    # µ-law 0x10 samples between others: doubled on the wire, one byte in the caller's ear.
    coded = bytes([0x10, 0x03, 0x10, 0x10, 0x18, 0x10, 0x21]) * 320  # 14 whole 20 ms frames
    pcm = ulaw_decode(coded)
    with simulated(profile) as sim:

        async def main() -> None:
            async with VoiceModemDriver(sim.path, clock=sim.clock) as driver:
                call = await answered(driver, sim)
                assert await call.play(frames_of(pcm)) == 14
                assert sim.heard()[: len(coded)] == coded
                assert sim.stats().protocol_violations == ()
                await call.hang_up()

        run(main)


# --- the modem stops answering -----------------------------------------------------------------------


@pytest.mark.parametrize("profile", BOTH)
def test_modem_that_stops_answering_mid_call_is_rescued_and_serves_the_next_call(profile: str) -> None:
    with simulated(profile) as sim:

        async def main() -> None:
            async with VoiceModemDriver(sim.path, clock=sim.clock) as driver:
                call = await answered(driver, sim)
                await listen(call, 0.3)
                sim.stop_answering()  # +VRX audio stops coming
                await to_the_end(call)
                assert call.end_reason == "modem_not_responding"
                health = driver.health()
                assert (health.ok, health.detail) == (False, "modem not answering, re-initialising")
                await clock_sleep(sim, 6.0)  # a rescue attempt or two fail meanwhile
                assert not driver.health().ok
                sim.resume_answering()
                await until(lambda: driver.health().ok)
                await until(lambda: on_hook_in_data_class(sim))
                sent = b"".join(e.data for e in sim.transcript() if e.direction == "DTE>")
                assert b"+++" in sent and b"ATH0\r" in sent  # the rescue of telephony.md 7.7
                await serves_another_call(driver, sim)

        run(main)


def test_modem_that_hangs_while_the_box_speaks_ends_the_call_without_an_error() -> None:
    with simulated("usr5637") as sim:

        async def main() -> None:
            async with VoiceModemDriver(sim.path, clock=sim.clock) as driver:
                call = await answered(driver, sim)
                playing = asyncio.create_task(call.play(frames_of(tone(3.0))))
                await until(lambda: len(sim.heard()) >= 4000)
                sim.stop_answering()  # the end of the prompt gets no OK
                await playing  # returns: the session learns the end from ``ended``
                assert call.ended and call.end_reason == "modem_not_responding"
                sim.resume_answering()
                await until(lambda: driver.health().ok)
                await serves_another_call(driver, sim)

        run(main)


def test_call_offered_just_before_the_modem_hangs_fails_to_answer_cleanly() -> None:
    with simulated("usr5637") as sim:

        async def main() -> None:
            async with VoiceModemDriver(sim.path, clock=sim.clock) as driver:
                incoming = await offered(driver, sim)
                sim.stop_answering()
                with pytest.raises(LineError):  # after the command timeout, not never
                    await incoming.answer()
                assert driver.health().detail == "modem not answering, re-initialising"
                sim.abandon()  # that caller gives up, unanswered
                sim.resume_answering()
                await until(lambda: driver.health().ok)
                await until(lambda: on_hook_in_data_class(sim))
                await serves_another_call(driver, sim)

        run(main)


def test_modem_that_hangs_while_idle_is_found_by_the_idle_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(voice_modem_recovery, "_IDLE_PROBE_S", 5.0)  # 60 s of line time is too long to wait here
    with simulated("cx930xx") as sim:

        async def main() -> None:
            async with VoiceModemDriver(sim.path, clock=sim.clock) as driver:
                sim.stop_answering()
                await until(lambda: not driver.health().ok)
                assert driver.health().detail == "modem not answering, re-initialising"
                sim.resume_answering()
                await until(lambda: driver.health().ok)
                await serves_another_call(driver, sim)

        run(main)


# --- the USB modem is pulled out and put back ------------------------------------------------------------


@pytest.mark.parametrize(("profile", "when"), [("usr5637", "listening"), ("cx930xx", "listening"), ("usr5637", "playing"),
                                               ("cx930xx", "idle")])
def test_unplugged_modem_ends_the_call_and_is_used_again_once_back(profile: str, when: str) -> None:
    with simulated(profile) as sim:

        async def main() -> None:
            async with VoiceModemDriver(sim.path, clock=sim.clock) as driver:
                offers: list[object] = []

                async def watch_offers() -> None:  # incoming() must not raise through all this
                    async for incoming in driver.incoming():
                        offers.append(incoming)

                watching = asyncio.create_task(watch_offers())
                call = None
                playing = None
                if when != "idle":
                    sim.ring("5035551234")
                    await until(lambda: bool(offers))
                    call = await offers.pop().answer()  # type: ignore[attr-defined]
                    if when == "playing":
                        playing = asyncio.create_task(call.play(frames_of(tone(5.0))))
                        await until(lambda: len(sim.heard()) >= 4000)
                    else:
                        await listen(call, 0.3)
                sim.unplug()
                if call is not None:
                    await to_the_end(call)
                    assert call.end_reason == "line_lost"
                if playing is not None:
                    assert 0 < await playing < 250
                await until(lambda: driver.health().detail == "modem unplugged, waiting for it")
                await clock_sleep(sim, 3.0)  # the driver looks for the device meanwhile
                assert not watching.done()
                sim.replug()
                await until(lambda: driver.health().ok)
                assert not watching.done() and offers == []
                watching.cancel()
                await serves_another_call(driver, sim)

        run(main)


# --- garbage on the serial line ----------------------------------------------------------------------------

# Binary junk, a line nobody asked for, DLE pairs that are no event: nothing a
# parser may choke on, nothing that means "hang up".
GARBAGE = b"\x00\xff\xfe\x1b[2J\x80\x81 \xc3\x28 NO SUCH THING\r\n\x10\x1b\x10\xfe\x7f\x7f\r\n"


@pytest.mark.parametrize("where", ["idle", "between_command_and_answer", "mid_stream"])
def test_garbage_on_the_line_is_skipped(where: str) -> None:
    with simulated("usr5637") as sim:

        async def main() -> None:
            async with VoiceModemDriver(sim.path, clock=sim.clock) as driver:
                if where == "idle":
                    sim.garbage(GARBAGE)
                    await clock_sleep(sim, 1.0)
                    assert driver.health().ok
                    await serves_another_call(driver, sim)
                    return
                if where == "between_command_and_answer":
                    sim.garbage(GARBAGE, before_reply_to="AT+VLS=1")
                call = await answered(driver, sim)
                if where == "mid_stream":
                    await listen(call, 0.3)
                    sim.garbage(GARBAGE)
                pcm, _ = await listen(call, 1.0)
                assert pcm.size == 8000 and not call.ended
                sim.hang_up("dial_tone")
                await to_the_end(call)
                assert call.end_reason == "caller_hung_up"
                await until(lambda: on_hook_in_data_class(sim))
                await serves_another_call(driver, sim)

        run(main)


@pytest.mark.parametrize(
    ("profile", "style", "reason"),
    [
        ("usr5637", "dial_tone_only", "dial_tone"),
        ("cx930xx", "dial_tone_only", "dial_tone"),
        ("usr5637", "busy", "caller_hung_up"),  # <DLE>b, or the busy tone if the event is late
        ("usr5637", "silence", "dead_line"),
        ("cx930xx", "silence", "dead_line"),
        ("usr5637", "loop_drop", "dead_line"),  # the USR does not report a loop drop (1.7)
        ("usr5637", "never", "max_call_length"),
    ],
)
def test_with_the_box_own_detectors_every_hang_up_style_is_caught(profile: str, style: str, reason: str) -> None:
    # What the box really runs: the driver behind the hang-up guard (open_line does this).
    settings = HangupSettings(max_call_s=30.0)
    with simulated(profile) as sim:

        async def main() -> None:
            async with VoiceModemDriver(sim.path, clock=sim.clock) as driver:
                call = GuardedCall(await answered(driver, sim), sim.clock, settings)
                answered_at = sim.clock.monotonic()
                await listen(call, 0.5)
                sim.hang_up(style)  # type: ignore[arg-type]
                hung_up_at = sim.clock.monotonic()
                await to_the_end(call)
                took = sim.clock.monotonic() - hung_up_at
                if style == "never":  # nothing tells: only the length cap ends it
                    assert call.end_reason == "max_call_length"
                    assert sim.clock.monotonic() - answered_at <= settings.max_call_s + 1.5
                else:
                    assert call.end_reason == reason or (style == "busy" and call.end_reason == "busy_tone")
                    assert took <= HANG_UP_DETECTED_S
                await until(lambda: on_hook_in_data_class(sim))
                await serves_another_call(driver, sim)

        run(main)
