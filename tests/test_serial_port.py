"""The serial port against the voice-modem simulator's pty: bytes both ways, loss reported."""

from __future__ import annotations

import asyncio

import pytest

from appliance.clock import ScaledClock
from appliance.errors import LineError
from appliance.line.serial_port import SerialPort
from appliance.line.sim.voice_modem import VoiceModemSim


async def _until(port: SerialPort, marker: bytes, timeout_s: float = 3.0) -> bytes:
    seen = b""
    async with asyncio.timeout(timeout_s):
        while marker not in seen:
            seen += await port.read()
    return seen


def test_a_command_goes_out_and_its_answer_comes_back() -> None:
    async def scenario() -> bytes:
        with VoiceModemSim("usr5637", clock=ScaledClock(1.0)) as sim:
            port = await SerialPort.open(sim.path)
            try:
                await port.write(b"ATI0\r")
                return await _until(port, b"OK\r\n")
            finally:
                await port.close()

    assert b"5601" in asyncio.run(scenario())


def test_an_unplugged_modem_ends_the_stream_with_port_lost() -> None:
    async def scenario() -> None:
        with VoiceModemSim("usr5637", clock=ScaledClock(1.0)) as sim:
            port = await SerialPort.open(sim.path)
            try:
                sim.unplug()
                async with asyncio.timeout(3.0):
                    while True:
                        await port.read()
            finally:
                await port.close()

    with pytest.raises(LineError, match="port-lost"):
        asyncio.run(scenario())


def test_a_missing_device_is_named() -> None:
    async def scenario() -> None:
        await SerialPort.open("/dev/does-not-exist")

    with pytest.raises(LineError, match="/dev/does-not-exist"):
        asyncio.run(scenario())
