"""systemd's watchdog, petted only while the call loop really moves.

A thread or a task that pets the watchdog on a timer proves only that the timer
runs. What must be caught is a box that looks alive and answers nobody: the
event loop blocked by a stray synchronous call, or a call stuck on an await that
never returns (a modem that stopped sending frames without hanging up, a
decoding thread that never comes back). So:

- the pet is sent from a task on the core's event loop: a blocked loop sends none;
- every call in progress beats as its audio moves (each frame heard, each frame
  played: ``BeatingCall``), and the pet is withheld once a call has been still
  for ``stall_s``. The longest honest silence inside a call is one turn's
  decoding or one long reply, far below a minute.

systemd then kills the core (SIGABRT, ``Restart=always``) and the line is opened
afresh. Outside systemd (no ``WATCHDOG_USEC``) none of this runs.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from appliance.line.base import Call, Inbound
from appliance.system.notify import notify

_LOGGER = logging.getLogger(__name__)

STALL_S: Final = 60.0


class Heartbeat:
    """When each call in progress last showed life, on a monotonic clock."""

    def __init__(self, monotonic: Callable[[], float]) -> None:
        self._monotonic = monotonic
        self._last: dict[str, float] = {}

    def begin(self, call_id: str) -> None:
        self._last[call_id] = self._monotonic()

    def beat(self, call_id: str) -> None:
        if call_id in self._last:  # a late frame of an ended call must not bring it back
            self._last[call_id] = self._monotonic()

    def end(self, call_id: str) -> None:
        self._last.pop(call_id, None)

    def stillest_s(self) -> float:
        """How long the stillest call in progress has been still; 0 with no call."""
        if not self._last:
            return 0.0
        return self._monotonic() - min(self._last.values())


class BeatingCall:
    """A ``Call`` that beats the heartbeat with every frame heard or played.

    Everything else goes to the call it wraps, including what a driver adds beyond
    the protocol (a guard's ``end_reason``): the session sees the same call.
    """

    def __init__(self, call: Call, heartbeat: Heartbeat) -> None:
        self._inner = call
        self._heartbeat = heartbeat
        heartbeat.begin(call.call_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def inbound(self) -> AsyncIterator[Inbound]:
        async for item in self._inner.inbound():
            self._heartbeat.beat(self._inner.call_id)
            yield item

    async def play(self, frames: AsyncIterable[np.ndarray]) -> int:
        async def beating() -> AsyncIterator[np.ndarray]:
            async for frame in frames:
                self._heartbeat.beat(self._inner.call_id)
                yield frame

        return await self._inner.play(beating())

    def finished(self) -> None:
        self._heartbeat.end(self._inner.call_id)


@dataclass(frozen=True, slots=True)
class WatchdogSettings:
    interval_s: float
    """systemd's WatchdogSec: a pet must arrive within it."""
    stall_s: float = STALL_S

    @property
    def pet_every_s(self) -> float:
        return self.interval_s / 2  # sd_watchdog_enabled(3): half the interval

    @classmethod
    def from_environment(cls, environ: dict[str, str] | None = None, pid: int | None = None) -> WatchdogSettings | None:
        """The watchdog systemd asked for, or None (not under systemd, or meant for another process)."""
        env = os.environ if environ is None else environ
        usec = env.get("WATCHDOG_USEC", "")
        owner = env.get("WATCHDOG_PID", "")
        if not usec.isdigit() or int(usec) == 0:
            return None
        if owner and owner != str(os.getpid() if pid is None else pid):
            return None
        return cls(interval_s=int(usec) / 1_000_000)


async def keep_watchdog_fed(
    settings: WatchdogSettings, heartbeat: Heartbeat, *, send: Callable[[str], None] = notify
) -> None:
    """Pet systemd's watchdog from the event loop while no call is stuck; runs until cancelled."""
    withheld = False
    while True:
        still = heartbeat.stillest_s()
        if still < settings.stall_s:
            send("WATCHDOG=1")
            if withheld:
                _LOGGER.warning("a call moves again after %.0f s; the watchdog is fed again", still)
            withheld = False
        elif not withheld:
            # Said once, before systemd ends the process: the journal then explains the restart.
            _LOGGER.error("a call has been still for %.0f s: the watchdog is no longer fed, systemd will "
                          "restart the core", still)
            withheld = True
        await asyncio.sleep(settings.pet_every_s)
