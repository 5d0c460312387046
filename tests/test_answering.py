"""The answering policy: which calls the box takes, at what time, after how many rings."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest

from appliance.agenda.practice import builtin_practice
from appliance.answering import AnsweringPolicy, AnsweringSettings, parse_ranges
from appliance.clock import PARIS
from appliance.errors import ConfigError, LineError
from appliance.line.sim.line import SimLine

# The demo practice is open Monday to Friday, mornings and afternoons.
TUESDAY_10H = datetime(2026, 11, 24, 10, 0, tzinfo=PARIS)
TUESDAY_22H = datetime(2026, 11, 24, 22, 0, tzinfo=PARIS)
SUNDAY_10H = datetime(2026, 11, 29, 10, 0, tzinfo=PARIS)


def policy(**settings: object) -> AnsweringPolicy:
    return AnsweringPolicy(AnsweringSettings(**settings), builtin_practice("demo"))


def test_by_default_the_box_answers_every_call_at_once() -> None:
    for when in (TUESDAY_10H, TUESDAY_22H, SUNDAY_10H):
        assert policy().decide(when).mode == "now"


def test_office_hours_are_the_practice_opening_hours_unless_given() -> None:
    only_outside = policy(during_hours="never", outside_hours="now")
    assert only_outside.decide(TUESDAY_10H).mode == "never"
    assert only_outside.decide(TUESDAY_22H).mode == "now"
    assert only_outside.decide(SUNDAY_10H).mode == "now"


def test_explicit_ranges_replace_opening_hours_for_answering() -> None:
    extended = policy(hours=["mon-fri 07:00-23:00", "sun 09:00-12:00"], outside_hours="never")
    assert extended.decide(TUESDAY_22H).mode == "now"
    assert extended.decide(SUNDAY_10H).mode == "now"
    assert extended.decide(datetime(2026, 11, 24, 23, 30, tzinfo=PARIS)).mode == "never"


def test_round_the_clock_range_and_wrapping_weekdays() -> None:
    assert len(parse_ranges(["mon-sun 00:00-24:00"])) == 7
    assert [r.weekday for r in parse_ranges(["sat-mon 09:00-12:00"])] == [5, 6, 0]
    always = policy(hours=["mon-sun 00:00-24:00"], outside_hours="never")
    assert always.decide(datetime(2026, 11, 24, 23, 59, 59, tzinfo=PARIS)).in_hours


@pytest.mark.parametrize(
    ("settings", "complaint"),
    [
        ({"during_hours": "sometimes"}, "answering.during_hours must be one of now, after_rings, never"),
        ({"rings": 0}, "answering.rings must be a whole number from 1 to 15"),
        ({"rings": "4"}, "answering.rings must be a whole number"),
        ({"hours": ["weekdays 8-19"]}, 'must look like "mon-fri 08:00-19:00"'),
        ({"hours": ["mon-fri 19:00-08:00"]}, "ends before it starts"),
        ({"hours": ["lun-ven 08:00-19:00"]}, "'lun' in 'lun-ven 08:00-19:00' is not one of mon"),
        ({"hours": ["mon 25:00-26:00"]}, "is not a time of day"),
        ({"hours": "mon-fri 08:00-19:00"}, "answering.hours must be a list"),
    ],
)
def test_a_mistake_in_the_settings_is_named(settings: dict[str, object], complaint: str) -> None:
    with pytest.raises(ConfigError) as caught:
        AnsweringSettings(**settings)
    assert complaint in str(caught.value.detail)


def test_after_rings_the_box_picks_up_only_once_the_practice_let_it_ring() -> None:
    async def scenario() -> None:
        line = SimLine()
        line.place_call("0612345678")
        incoming = await anext(line.incoming())
        taken = await policy(during_hours="after_rings", rings=4).take(incoming, TUESDAY_10H)
        assert taken and incoming.ringing.rings >= 4
        assert (await incoming.answer()).caller_id == "0612345678"
        await line.close()

    asyncio.run(scenario())


def test_a_call_that_stops_ringing_is_never_answered() -> None:
    async def scenario() -> None:
        # On an analog line the rings stop when someone in the practice lifts a handset.
        line = SimLine()
        line.place_call("0612345678", gives_up_after_rings=2)
        incoming = await anext(line.incoming())
        assert not await policy(during_hours="after_rings", rings=4).take(incoming, TUESDAY_10H)
        with pytest.raises(LineError, match="stopped ringing"):
            await incoming.answer()
        await line.close()

    asyncio.run(scenario())


def test_never_leaves_the_call_ringing_for_the_practice() -> None:
    async def scenario() -> None:
        line = SimLine()
        line.place_call(None)
        incoming = await anext(line.incoming())
        assert not await policy(during_hours="never").take(incoming, TUESDAY_10H)
        assert not await asyncio.wait_for(policy(outside_hours="never").take(incoming, SUNDAY_10H), 1)
        await line.close()

    asyncio.run(scenario())


def test_a_closure_day_counts_as_outside_hours() -> None:
    easter_monday_10h = datetime(2026, 4, 6, 10, 0, tzinfo=PARIS)  # a closure in the demo practice
    ordinary_monday_10h = datetime(2026, 4, 13, 10, 0, tzinfo=PARIS)
    assert not policy().in_hours(easter_monday_10h)
    assert policy().in_hours(ordinary_monday_10h)


def test_the_box_consults_the_policy_before_picking_up_and_records_no_call_it_left(tmp_path) -> None:
    from dataclasses import replace

    from appliance.app import Appliance
    from appliance.clock import FixedClock
    from appliance.config import Config
    from appliance.store import queries

    config = replace(Config(), data_dir=tmp_path, answering=AnsweringSettings(during_hours="after_rings", rings=3))

    async def scenario() -> int:
        box = Appliance(config, clock=FixedClock(TUESDAY_10H))  # no speech models: no call may be answered
        try:
            line = SimLine()
            serving = asyncio.create_task(box.serve(line))
            line.place_call("0612345678", gives_up_after_rings=2)  # the secretary picked up after 2 rings
            await asyncio.sleep(0.3)
            await line.close()
            await asyncio.wait_for(serving, 5)
            return len(queries.recent_calls(box.store, TUESDAY_10H.replace(year=2000)))
        finally:
            box.close()

    assert asyncio.run(scenario()) == 0


def test_on_a_voice_modem_the_box_picks_up_at_the_ring_the_practice_chose() -> None:
    from appliance.clock import ScaledClock
    from appliance.line.sim.voice_modem import VoiceModemSim
    from appliance.line.voice_modem import VoiceModemDriver

    async def scenario(sim: VoiceModemSim) -> tuple[bool, int]:
        async with VoiceModemDriver(sim.path, clock=sim.clock) as driver:
            sim.ring("0612345678")
            incoming = await anext(driver.incoming())
            taken = await policy(during_hours="after_rings", rings=3).take(incoming, TUESDAY_10H)
            call = await incoming.answer()
            await call.hang_up()
            return taken, incoming.ringing.rings

    with VoiceModemSim("usr5637", clock=ScaledClock(10.0)) as sim:
        taken, rings = asyncio.run(asyncio.wait_for(scenario(sim), 30))
    assert taken and rings == 3


def test_on_a_voice_modem_a_call_that_stops_ringing_is_left_alone() -> None:
    from appliance.clock import ScaledClock
    from appliance.line.sim.voice_modem import VoiceModemSim
    from appliance.line.voice_modem import VoiceModemDriver

    async def scenario(sim: VoiceModemSim) -> bool:
        async with VoiceModemDriver(sim.path, clock=sim.clock) as driver:
            sim.ring("0612345678")
            incoming = await anext(driver.incoming())
            sim.abandon()  # or a handset lifted in the practice: the rings just stop
            return await policy(during_hours="after_rings", rings=4).take(incoming, TUESDAY_10H)

    with VoiceModemSim("usr5637", clock=ScaledClock(10.0)) as sim:
        assert asyncio.run(asyncio.wait_for(scenario(sim), 30)) is False
