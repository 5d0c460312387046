"""The boundary between a phone line and the call session.

A ``LineDriver`` hands out ``IncomingCall``s; answering one gives a ``Call``: 8 kHz
audio frames in (with DTMF digits in order between them), frames out paced at the
line rate, and hang-up from either side. Nothing here knows about AT commands,
DLE escapes or SIM cards: the voice modem, the GSM module and the simulator each
implement these protocols.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Any, Final, Protocol

import numpy as np

from appliance.line.ringing import Ringing


@dataclass(frozen=True, slots=True)
class Dtmf:
    digit: str  # "0"-"9", "*", "#": reported once per key press


Inbound = np.ndarray | Dtmf
"""One item from the line: a 160-sample int16 frame (20 ms at 8 kHz), or a key press."""


@dataclass(frozen=True, slots=True)
class LineHealth:
    ok: bool
    device: str
    detail: str = ""


# Call.end_reason words every driver shares; drivers add their own for what only they see
# ("extension_picked_up", "modem_not_responding", "call_dropped", "dial_tone", "dead_line"...).
CALLER_HUNG_UP: Final = "caller_hung_up"  # the line's protocol said so (NO CARRIER, <DLE>d, loop drop)
BOX_HUNG_UP: Final = "box_hung_up"
LINE_LOST: Final = "line_lost"  # the port or the card vanished
LINE_CLOSED: Final = "line_closed"  # the driver was closed during the call
MAX_CALL_LENGTH: Final = "max_call_length"


class Call(Protocol):
    call_id: str
    caller_id: str | None
    end_reason: str
    """Why the call ended, as the line saw it ("" while it runs): recorded with the call.

    One of the words above, or a driver's own (see the module constants).
    """
    full_duplex: bool
    """The caller's voice arrives while the box plays (GSM, sound card), echo of the box's
    own voice included, so speech can barge in. False on a half-duplex line (an analog
    modem in +VTX hears nothing but key presses): only a key can interrupt the box.
    """

    def inbound(self) -> AsyncIterator[Inbound]:
        """Frames and key presses as they arrive; ends when the call is over."""

    async def play(self, frames: AsyncIterable[np.ndarray]) -> int:
        """Send frames paced at the line rate; returns the number of frames sent.

        Cancelling the task stops the audio at once (barge-in, hang-up).
        """

    async def hang_up(self) -> None: ...

    def discard_received(self) -> int:
        """Drop the audio frames received but not yet read; keep key presses and the end.

        Called when the box stops talking. Until barge-in exists the box does not
        listen while it speaks, and on a full-duplex line (GSM) seconds of that
        audio would otherwise be heard as the caller's next turn.
        """

    @property
    def ended(self) -> bool: ...


def drop_queued_audio(queue: asyncio.Queue[Any]) -> int:
    """``discard_received`` for calls that buffer inbound items in an asyncio queue."""
    kept, dropped = [], 0
    while not queue.empty():
        item = queue.get_nowait()
        if isinstance(item, np.ndarray):
            dropped += 1
        else:
            kept.append(item)
    for item in kept:
        queue.put_nowait(item)
    return dropped


async def read_until_end(queue: asyncio.Queue[Any], end: object) -> AsyncIterator[Inbound]:
    """``inbound`` for calls that queue items and, last, an ``end`` marker.

    The marker is put back, so a second reader (the session after a guard) ends too.
    """
    while True:
        item = await queue.get()
        if item is end:
            queue.put_nowait(end)
            return
        yield item


class IncomingCall(Protocol):
    caller_id: str | None
    ringing: Ringing
    """Fed by the driver with every ring; the answering policy waits on it."""

    async def answer(self) -> Call: ...


class LineDriver(Protocol):
    name: str

    def incoming(self) -> AsyncIterator[IncomingCall]:
        """Ringing calls, one after another, for as long as the line is up."""

    def health(self) -> LineHealth: ...

    async def close(self) -> None: ...
