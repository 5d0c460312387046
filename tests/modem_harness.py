"""What the voice-modem tests share: a simulator on a scaled clock, and bounded runs."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

from appliance.clock import ScaledClock
from appliance.line.sim.voice_modem import VoiceModemSim


@contextmanager
def simulated_modem(profile: str, *, rate: float, start: datetime, **options: object) -> Iterator[VoiceModemSim]:
    sim = VoiceModemSim(profile, clock=ScaledClock(rate, start=start), **options)  # type: ignore[arg-type]
    sim.start()
    try:
        yield sim
    finally:
        sim.close()  # re-raises a crash of the simulator thread


def run_within(deadline_s: float, main: Callable[[], Awaitable[None]]) -> None:
    """Run ``main`` on a fresh loop; a hang fails the test after ``deadline_s`` real seconds."""

    async def bounded() -> None:
        async with asyncio.timeout(deadline_s):
            await main()

    asyncio.run(bounded())


async def until(done: Callable[[], bool]) -> None:
    while not done():
        await asyncio.sleep(0.005)
