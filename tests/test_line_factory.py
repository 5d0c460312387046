"""The ``line`` setting: every kind parses, and a simulated device answers through its real driver."""

from __future__ import annotations

import asyncio

import pytest

from appliance.clock import ScaledClock
from appliance.config import Config
from appliance.errors import LineError
from appliance.line.factory import open_line, parse_line
from appliance.line.guard import GuardedLine
from appliance.line.sim.devices import simulated_device


@pytest.mark.parametrize(
    ("text", "kind", "url"),
    [
        ("sim", "sim", ""),
        ("sim:usr5637", "sim", "usr5637"),
        ("sim:cx93001", "sim", "cx93001"),
        ("sim:sim7600", "sim", "sim7600"),
        ("modem:/dev/ttyACM0", "modem", "/dev/ttyACM0"),
        ("gsm:/dev/ttyUSB2,audio=/dev/ttyUSB4", "gsm", "/dev/ttyUSB2"),
        ("gsm:/dev/ttyUSB2,profile=ec25,audio=/dev/ttyUSB1", "gsm", "/dev/ttyUSB2"),
        ("gsm:/dev/ttyUSB2,profile=ec25,card=Android", "gsm", "/dev/ttyUSB2"),
        ("gsm:/dev/ttyUSB0,profile=sim800,card=USB Audio,card_rate=16000", "gsm", "/dev/ttyUSB0"),
        ("sim:ec25", "sim", "ec25"),
        ("sim:sim800", "sim", "sim800"),
        ("soundcard", "soundcard", ""),
        ("soundcard:USB Audio", "soundcard", "USB Audio"),
    ],
)
def test_every_line_kind_parses(text: str, kind: str, url: str) -> None:
    spec = parse_line(text)
    assert (spec.kind, spec.url) == (kind, url)
    assert Config(line=text).line == text


@pytest.mark.parametrize(("device", "driver"), [
    ("usr5637", "voice-modem"), ("cx93001", "voice-modem"),
    ("sim7600", "gsm:sim7600"), ("ec25", "gsm:ec25"), ("sim800", "gsm:sim800"),
])
def test_a_simulated_device_rings_through_the_real_driver_with_caller_id(device: str, driver: str) -> None:
    async def scenario() -> tuple[str, str | None]:
        clock = ScaledClock(4.0)
        async with simulated_device(device, clock) as (sim, line):
            sim.ring("0612345678")
            async with asyncio.timeout(30):
                incoming = await anext(line.incoming())
            return line.name, incoming.caller_id

    assert asyncio.run(scenario()) == (driver, "0612345678")


def test_open_line_starts_a_simulated_device_behind_the_hang_up_guard() -> None:
    async def scenario() -> tuple[bool, bool]:
        async with open_line("sim:usr5637", ScaledClock(4.0)) as line:
            return line.health().ok, isinstance(line, GuardedLine)

    assert asyncio.run(scenario()) == (True, True)


def test_a_sound_card_line_with_no_card_says_so_plainly_instead_of_crashing() -> None:
    # This machine has no sound card: answering the laptop call fails with the reason.
    async def scenario() -> str:
        async with open_line("soundcard:no-such-card", ScaledClock(1.0)) as line:
            incoming = await anext(line.incoming())
            with pytest.raises(LineError) as err:
                await incoming.answer()
            return err.value.detail

    assert "no-such-card" in asyncio.run(scenario())
