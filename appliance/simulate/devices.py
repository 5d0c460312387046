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
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

import numpy as np

from appliance.audio.g711 import alaw_encode, ulaw_encode
from appliance.clock import ScaledClock
from appliance.errors import ScenarioError
from appliance.line.base import LineDriver
from appliance.line.guard import GuardedLine, HangupSettings
from appliance.line.sim.devices import GSM_PROFILES, simulated_device
from appliance.line.sim.gsm_modem import GsmModemSim
from appliance.line.sim.identities import IDENTITIES
from appliance.line.sim.voice_modem import VoiceModemSim
from appliance.simulate.scenario import LineFaults

_KEY_INTERVAL_S: Final = 0.25  # between two key presses of one entry (a brisk caller)
_RING_PERIOD_S: Final = 5.0  # France: 1.5 s on, 3.5 s off (set on the simulator when a caller gives up)
_INTO_RING_S: Final = 0.3  # a caller who gives up at ring N hangs up this far into it
# Bytes a flaky USB link or another program (ModemManager probing) puts on the line:
# half a response, a stray AT command echo, binary noise with DLE and NUL.
_GARBAGE: Final = b"\r\nOK\r\n\x00\xff\x10AT+GCAP\r\x10\x10\xfe+CME ERR"


# fault → (the simulator it needs, what starts it, what ends it after fault_s or None)
_FAULTS: Final[dict[str, tuple[type | None, Callable[[Any], None], Callable[[Any], None] | None]]] = {
    "garbage": (None, lambda sim: sim.garbage(_GARBAGE), None),
    "call_waiting": (None, lambda sim: sim.call_waiting("0698765432"), None),
    "extension_pickup": (VoiceModemSim, lambda sim: sim.pick_up_extension(), None),
    "stops_answering": (VoiceModemSim, lambda sim: sim.stop_answering(), lambda sim: sim.resume_answering()),
    "unplug_replug": (VoiceModemSim, lambda sim: sim.unplug(), lambda sim: sim.replug()),
    "port_vanishes": (GsmModemSim, lambda sim: sim.vanish_port(), lambda sim: sim.restore_port()),
    "uplink_stall": (GsmModemSim, lambda sim: sim.stall_uplink(), lambda sim: sim.resume_uplink()),
}


class DeviceCaller:
    """The caller's side of a call on a simulated device (what ``ScriptedCaller`` drives)."""

    def __init__(self, sim: VoiceModemSim | GsmModemSim, profile: str, faults: LineFaults = LineFaults()) -> None:
        self.sim = sim
        self.profile = profile
        self.faults = faults
        self._ended = False
        self._keys: list[tuple[str, float]] = []
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

    def send_dtmf(self, digit: str, hold_s: float = 0.1) -> None:
        # A person presses one key after another; a burst of simultaneous presses
        # is nothing a real line carries.
        self._keys.append((digit, hold_s))
        if self._keying is None or self._keying.done():
            self._keying = asyncio.get_running_loop().create_task(self._press_keys())

    async def _press_keys(self) -> None:
        while self._keys:
            digit, hold_s = self._keys.pop(0)
            await asyncio.to_thread(self.sim.press, digit, hold_s)
            await asyncio.sleep(_KEY_INTERVAL_S + hold_s)

    def caller_hangs_up(self) -> None:
        self._ended = True
        if isinstance(self.sim, VoiceModemSim) and self.faults.hangup_signal:
            self.sim.hang_up(self.faults.hangup_signal)
        else:
            self.sim.hang_up()

    async def inject(self, fault: str, lasting_s: float) -> None:
        """A scenario's mid-call line fault (``scenario.DEVICE_FAULTS``), on the simulator's thread."""
        if fault not in _FAULTS:
            raise ScenarioError(f"no such line fault {fault!r}")
        kind, begin, end = _FAULTS[fault]
        if kind is not None and not isinstance(self.sim, kind):
            raise ScenarioError(f"the line fault {fault!r} needs a {kind.kind} line")
        await asyncio.to_thread(begin, self.sim)
        if end is not None:  # a fault that lasts: the device comes back after lasting_s
            await asyncio.sleep(lasting_s)
            await asyncio.to_thread(end, self.sim)

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
async def device_line(
    profile: str, caller_id: str | None, faults: LineFaults = LineFaults(), hangup: HangupSettings = HangupSettings()
) -> AsyncIterator[tuple[LineDriver, DeviceCaller]]:
    """A started simulator and the real driver on it; the call is already ringing."""
    clock = ScaledClock(1.0)
    gsm = profile in GSM_PROFILES
    async with simulated_device(profile, clock, options=_sim_options(faults, gsm=gsm)) as (sim, driver):
        if isinstance(sim, GsmModemSim) and faults.cpcmreg_refusals:
            await asyncio.to_thread(sim.refuse_cpcmreg, faults.cpcmreg_refusals)
        sim.ring(caller_id if isinstance(sim, GsmModemSim) else caller_id or "P")
        giving_up = None
        if faults.abandon_at_ring is not None:
            # Into ring N, before its caller ID: the box never had a chance to pick up.
            delay = (faults.abandon_at_ring - 1) * _RING_PERIOD_S + _INTO_RING_S
            giving_up = asyncio.get_running_loop().call_later(delay, sim.abandon)
        # Guarded as on a real line: a dial tone or a dead line ends the call too.
        try:
            yield GuardedLine(driver, clock, hangup), DeviceCaller(sim, profile, faults)
        finally:
            if giving_up is not None:
                giving_up.cancel()


def _sim_options(faults: LineFaults, *, gsm: bool) -> dict[str, object]:
    """The simulator's constructor options for a scenario's whole-call faults."""
    options: dict[str, object] = {}
    if faults.random_chunks is not None:
        if gsm:
            options["chunk_seed"] = faults.random_chunks
        else:
            options.update(seed=faults.random_chunks, chunking=True)
    if faults.abandon_at_ring is not None:
        options["ring_period_s"] = _RING_PERIOD_S
    return options
