"""Ringing: rings counted on the injected clock; a call that stops ringing is not answered."""

from __future__ import annotations

import asyncio

from appliance.line.ringing import RING_GAP_S, Ringing


class ManualClock:
    def __init__(self) -> None:
        self.t = 0.0

    def monotonic(self) -> float:
        return self.t

    def now(self):  # pragma: no cover - Ringing reads only monotonic time
        raise AssertionError


def test_rings_are_counted_and_waiting_for_them_succeeds() -> None:
    async def scenario() -> bool:
        ringing = Ringing(ManualClock())
        waiting = asyncio.create_task(ringing.wait_rings(3))
        for _ in range(3):
            ringing.ring()
            await asyncio.sleep(0)
        return await asyncio.wait_for(waiting, 1)

    assert asyncio.run(scenario()) is True


def test_no_ring_for_longer_than_a_cadence_gap_means_the_call_stopped_ringing() -> None:
    async def scenario() -> tuple[bool, bool]:
        clock = ManualClock()
        ringing = Ringing(clock)
        ringing.ring()
        clock.t += RING_GAP_S - 1
        still = not ringing.stopped
        waiting = asyncio.create_task(ringing.wait_rings(4))
        clock.t += 2  # the handset in the practice was lifted: no more rings
        return still, await asyncio.wait_for(waiting, 1)

    assert asyncio.run(scenario()) == (True, False)


def test_a_stop_announced_by_the_line_ends_the_wait_at_once_and_later_rings_are_ignored() -> None:
    async def scenario() -> tuple[bool, int]:
        ringing = Ringing(ManualClock())
        ringing.ring()
        waiting = asyncio.create_task(ringing.wait_rings(4))
        await asyncio.sleep(0)
        ringing.stop()
        ringing.ring()
        return await asyncio.wait_for(waiting, 1), ringing.rings

    assert asyncio.run(scenario()) == (False, 1)
