"""Simulated devices as lines: ``line = "sim:usr5637"`` answers through the real driver.

The simulator speaks the device's protocol on a pty; the box opens that pty with
the same driver it would use on ``/dev/ttyACM0``. So ``appliance run`` and
``appliance simulate`` can exercise the V.253 or GSM code path on a laptop, and a
scenario can name the device its call goes through.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Final

from appliance.clock import Clock
from appliance.errors import ConfigError
from appliance.line.base import LineDriver
from appliance.line.sim.gsm_modem import GsmModemSim
from appliance.line.sim.voice_modem import VoiceModemSim

# Names a configuration may use → simulator profiles (the reference calls the Conexant chip CX93001).
DEVICES: Final = {
    "usr5637": "usr5637",
    "cx93001": "cx930xx",
    "cx930xx": "cx930xx",
    "sim7600": "sim7600",
    "ec25": "ec25",
    "sim800": "sim800",
}
GSM_PROFILES: Final = ("sim7600", "ec25", "sim800")


def device_profile(name: str) -> str:
    """The simulator profile for ``sim:<name>``; a ``ConfigError`` listing the known ones."""
    if name not in DEVICES:
        known = ", ".join(f"sim:{d}" for d in DEVICES)
        raise ConfigError(f"no simulated device {name!r} (known: sim, {known})")
    return DEVICES[name]


@contextlib.asynccontextmanager
async def simulated_device(
    name: str, clock: Clock, *, max_call_s: float = 900.0, options: Mapping[str, object] | None = None
) -> AsyncIterator[tuple[VoiceModemSim | GsmModemSim, LineDriver]]:
    """A started simulator (``options``: its constructor's fault settings) and the real driver on its pty."""
    profile = device_profile(name)
    extra = dict(options or {})
    if profile in GSM_PROFILES:
        from appliance.line.gsm import GsmDriver

        with GsmModemSim(profile, clock=clock, **extra) as gsm:
            # The EC25 here uses PCM on its NMEA port; the SIM800 has only its (sound) card.
            driver = GsmDriver(gsm.path, audio_url=gsm.audio_path, audio_device=None if gsm.audio_path else gsm.card,
                               clock=clock, profile_name=profile)
            await driver.start()
            try:
                yield gsm, driver
            finally:
                await driver.close()
    else:
        from appliance.line.voice_modem import VoiceModemDriver

        with VoiceModemSim(profile, clock=clock, **extra) as modem:
            async with VoiceModemDriver(modem.path, clock=clock, max_call_s=max_call_s) as driver:
                yield modem, driver
