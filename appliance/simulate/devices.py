"""Scenario lines that run through a simulated device and the real driver.

``line = "sim:usr5637"`` in a scenario puts the call on the voice-modem
simulator (or ``sim:cx93001``, ``sim:sim7600`` for the GSM module): the box
answers through the real V.253 / GSM driver over a pty, and the simulated caller
speaks into the device. Devices run in real time: the box's thinking time is line
time too, as on a real call.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Final

import numpy as np

from appliance.audio.g711 import alaw_encode, ulaw_encode
from appliance.clock import ScaledClock
from appliance.errors import ConfigError, ScenarioError
from appliance.line.base import LineDriver
from appliance.line.sim.devices import device_profile, simulated_device
from appliance.line.sim.gsm_modem import GsmModemSim
from appliance.line.sim.identities import IDENTITIES
from appliance.line.sim.voice_modem import VoiceModemSim

_KEY_INTERVAL_S: Final = 0.25  # between two key presses of one entry (a brisk caller)


def device_of(line: str) -> str | None:
    """The simulator profile a scenario's ``line`` names; None for the plain ``sim`` line."""
    if line == "sim":
        return None
    kind, _, name = line.partition(":")
    if kind != "sim":
        raise ScenarioError(f"a scenario's line is 'sim' or a simulated device such as 'sim:usr5637', got {line!r}")
    try:
        return device_profile(name)
    except ConfigError as err:
        raise ScenarioError(err.detail) from None


class DeviceCaller:
    """The caller's side of a call on a simulated device (what ``ScriptedCaller`` drives)."""

    def __init__(self, sim: VoiceModemSim | GsmModemSim, profile: str) -> None:
        self.sim = sim
        self.profile = profile
        self._ended = False
        self._keys: list[str] = []
        self._keying: asyncio.Task[None] | None = None

    @property
    def ended(self) -> bool:
        return self._ended

    def hold(self) -> None:
        """Nothing to hold: a device line carries silence on its own."""

    def release(self) -> None:
        """See ``hold``."""

    def send_silence(self, seconds: float) -> None:
        """The device already sends silence while the caller says nothing."""

    def send_text(self, text: str) -> None:
        raise ScenarioError("a device line carries audio only: run the scenario with --audio")

    def send_audio(self, frames: list[np.ndarray]) -> None:
        pcm = np.concatenate(frames).astype(np.int16)
        if isinstance(self.sim, GsmModemSim):
            self.sim.say(pcm.astype("<i2").tobytes())
        else:
            self.sim.say(self._in_modem_format(pcm))

    def send_dtmf(self, digit: str) -> None:
        # A person presses one key after another; a burst of simultaneous presses
        # is nothing a real line carries.
        self._keys.append(digit)
        if self._keying is None or self._keying.done():
            self._keying = asyncio.get_running_loop().create_task(self._press_keys())

    async def _press_keys(self) -> None:
        while self._keys:
            await asyncio.to_thread(self.sim.press, self._keys.pop(0))
            await asyncio.sleep(_KEY_INTERVAL_S)

    def caller_hangs_up(self) -> None:
        self._ended = True
        self.sim.hang_up()

    def _in_modem_format(self, pcm: np.ndarray) -> bytes:
        """The caller's audio in whatever +VSM format the box chose."""
        assert isinstance(self.sim, VoiceModemSim)
        cml = self.sim.stats().vsm[0]
        formats = {f.cml: f.listing.upper() for f in IDENTITIES[self.profile].formats}
        listing = formats.get(cml, "")
        if "ULAW" in listing or "MU-LAW" in listing:
            return ulaw_encode(pcm).tobytes()
        if "ALAW" in listing or "A-LAW" in listing:
            return alaw_encode(pcm).tobytes()
        return ((pcm.astype(np.int32) >> 8) + 128).astype(np.uint8).tobytes()  # unsigned 8-bit linear


@contextlib.asynccontextmanager
async def device_line(profile: str, caller_id: str | None) -> AsyncIterator[tuple[LineDriver, DeviceCaller]]:
    """A started simulator and the real driver on it; the call is already ringing."""
    async with simulated_device(profile, ScaledClock(1.0)) as (sim, line):
        sim.ring(caller_id if isinstance(sim, GsmModemSim) else caller_id or "P")
        yield line, DeviceCaller(sim, profile)
