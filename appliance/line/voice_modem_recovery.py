"""Keeping an analog voice modem answering: the line's condition, and the way back to ready.

A phone line must keep answering without anyone restarting the box:

    unplugged      the port fails (USB pulled: EIO). The call ends ("line_lost"),
                   the supervisor looks for the device path every second and, once
                   it is back, opens and re-initialises it.
    not answering  a command times out, or ``+VRX`` brings no byte for 2 s: the
                   call ends ("modem_not_responding") and the supervisor rescues the
                   modem (telephony.md 7.7: ``<DLE>!``, ``+++`` with guard time,
                   ``ATH0``, ``ATZ``), re-probes and re-initialises it, and
                   tries again every few seconds until it answers.
    idle           a modem with nothing to do is asked ``AT`` every minute, so a
                   hang shows before a call does.

``ModemRecovery`` holds the driver's ``state`` (the driver sets "ready" once
started and "closed" once closed; the trouble in between is declared here) and
runs the supervisor task the driver starts. It reaches the rest of the driver
only through what it is given: the channel, the lock on the modem's mode, and
four callables (is the line idle, end the call, re-initialise, the baud rate).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Final, Literal

from appliance.clock import Clock
from appliance.errors import LineError
from appliance.line.base import LINE_LOST
from appliance.line.profile import ModemProfile
from appliance.line.voice_modem_call import MODEM_NOT_RESPONDING
from appliance.line.voice_modem_channel import ABORT_RX_TRIPLE, CLEAR_TX_TRIPLE, ModemChannel

_LOGGER = logging.getLogger(__name__)

_SLEEP_POLL_S: Final = 0.01  # real seconds between looks at the clock in _sleep
_SUPERVISE_POLL_S: Final = 0.05  # real seconds between looks of the supervisor
_GUARD_S: Final = 1.1  # +++ needs 1 s of silence each side (CallAttendantNext uses 1.1 s, 1.4)
_REPLUG_POLL_S: Final = 1.0  # clock seconds between looks for an unplugged modem's device
_RECOVER_RETRY_S: Final = 2.0  # clock seconds between rescue attempts on a silent modem
_IDLE_PROBE_S: Final = 60.0  # an idle modem is asked "AT" this often: a hang shows before a call does
_HEALTH: Final = {
    "unplugged": "modem unplugged, waiting for it",
    "unresponsive": "modem not answering, re-initialising",
    "starting": "starting",
    "closed": "line closed",
}

State = Literal["starting", "ready", "unplugged", "unresponsive", "closed"]


class ModemRecovery:
    """Declares trouble with the modem on ``channel`` and brings it back (see the module docstring)."""

    def __init__(
        self,
        channel: ModemChannel,
        clock: Clock,
        *,
        mode_lock: asyncio.Lock,
        line_idle: Callable[[], bool],
        end_call: Callable[[str], None],
        initialise: Callable[[], Awaitable[ModemProfile]],
        baud: Callable[[], int],
    ) -> None:
        self._channel = channel
        self._clock = clock
        self._mode_lock = mode_lock
        self._line_idle = line_idle
        """No call answered, being answered or ringing."""
        self._end_call = end_call
        """End the call in progress, if any, with this reason."""
        self._initialise = initialise
        self._baud = baud
        self.state: State = "starting"
        self._trouble = asyncio.Event()

    @property
    def ready(self) -> bool:
        return self.state == "ready"

    def describe(self) -> str:
        """The state in plain words, for ``health()`` when not ready."""
        return _HEALTH.get(self.state, "no modem detected")

    # --- trouble ------------------------------------------------------------------------------

    def port_lost(self, err: LineError) -> None:
        self._declare("unplugged", LINE_LOST, err)

    def stalled(self, what: str) -> None:
        self._declare("unresponsive", MODEM_NOT_RESPONDING, LineError("modem-not-responding", what))

    def _declare(self, state: Literal["unplugged", "unresponsive"], reason: str, err: LineError) -> None:
        """Something is wrong with the modem: end what depends on it and wake the supervisor."""
        if self.state == "closed" or self.state == state:
            return
        if state == "unresponsive" and self.state != "ready":
            return  # the supervisor is already at work; its own timeouts are its business
        self.state = state
        _LOGGER.warning("voice modem on %s: %s (%s)", self._channel.url, _HEALTH[state], err.detail or err.code)
        self._channel.abort(err)
        self._end_call(reason)
        self._trouble.set()

    # --- the supervisor -----------------------------------------------------------------------

    async def supervise(self) -> None:
        """Bring the modem back after trouble; probe it now and then while idle."""
        started_at = self._clock.monotonic()
        while True:
            if self._trouble.is_set():
                self._trouble.clear()
                await self._restore()
            elif self._idle() and self._since_last_command(started_at) >= _IDLE_PROBE_S:
                async with self._mode_lock:
                    if self._idle():
                        with contextlib.suppress(LineError):  # a timeout declares the modem stalled
                            await self._channel.command("AT")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._trouble.wait(), _SUPERVISE_POLL_S)

    def _idle(self) -> bool:
        return self.state == "ready" and self._line_idle()

    def _since_last_command(self, started_at: float) -> float:
        """Clock seconds since the last command (or since the supervisor started)."""
        return self._clock.monotonic() - max(started_at, self._channel.last_command_at)

    async def _restore(self) -> None:
        """Until the modem answers again: reopen its port if it went away, rescue, re-initialise."""
        attempts = 0
        while self.state != "closed":
            attempts += 1
            try:
                if not self._channel.alive:
                    await self._channel.reopen(self._baud())  # "port-open-failed" while the device is absent
                async with self._mode_lock:
                    await self._rescue()
                    profile = await self._initialise()
            except LineError as err:
                # A port that failed is reopened on the next attempt (the channel knows it is gone).
                self.state = "unplugged" if err.code in ("port-lost", "port-open-failed") else "unresponsive"
                log = _LOGGER.info if attempts == 1 else _LOGGER.debug
                log("voice modem on %s: %s (%s)", self._channel.url, self.describe(), err.detail or err.code)
                await self._sleep(_REPLUG_POLL_S if self.state == "unplugged" else _RECOVER_RETRY_S)
                continue
            if not self._channel.alive:
                continue  # unplugged again during the last step
            self.state = "ready"
            self._trouble.clear()  # trouble seen while recovering is over too
            _LOGGER.info("voice modem on %s is back: %s", self._channel.url, profile.model)
            return

    async def _rescue(self) -> None:
        """Get a modem of unknown state back to command state, on-hook (telephony.md 7.7)."""
        self._channel.reset()
        # Ends a +VRX (<DLE>!) or a +VTX (<DLE><CAN> ... <ETX>), in the triple form a
        # Zoom 3095 needs and a conforming modem takes as data 0x10 + code (1.8).
        await self._channel.write(ABORT_RX_TRIPLE + CLEAR_TX_TRIPLE)
        await self._sleep(_GUARD_S)  # whatever the modem answers to that is read and dropped
        await self._channel.write(b"+++")  # data mode, if a stray ATA left it there
        await self._sleep(_GUARD_S)
        await self._channel.command("ATH0", check=False)

    async def _sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of clock time."""
        deadline = self._clock.monotonic() + seconds
        while self._clock.monotonic() < deadline:
            await asyncio.sleep(_SLEEP_POLL_S)
