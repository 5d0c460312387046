"""The device side of a simulated serial port: a pty the driver opens like /dev/ttyACM0.

Facts this module is built on (telephony.md 5, measured on Linux with pyserial 3.5):

* a fresh pty slave is in cooked mode (``AT\\r`` comes back as ``AT\\r\\n``), so the
  slave is put in raw mode *before* its path is published;
* with every slave fd closed, reading the master raises ``EIO``: the endpoint keeps
  its own slave fd open so the driver can close and reopen the port, and
  ``unplug()`` closes everything to emulate a USB modem pulled out;
* the kernel buffers ~17-20 KB each way, which would hide pacing bugs: the master is
  non-blocking and ``write`` may accept fewer bytes than given (the simulator keeps
  the rest and decides what to drop).

Every byte crossing the endpoint is kept in a timestamped transcript (``DTE>`` =
bytes the box sent, ``DCE<`` = bytes the simulated modem sent), the raw log that
telephony.md 7.9 asks every driver to keep, here for assertions and debugging.
"""

from __future__ import annotations

import errno
import logging
import os
import random
import threading
import tty
from dataclasses import dataclass
from typing import Final, Literal

from appliance.clock import Clock, SystemClock

_LOGGER = logging.getLogger(__name__)

_READ_CHUNK: Final = 4096  # more than one 20 ms poll of 8 kHz audio even at a 10x scaled clock
MAX_RANDOM_CHUNK: Final = 700  # telephony.md 6.3: "random chunk sizes (e.g. 1-700 B)"

Direction = Literal["DTE>", "DCE<"]


class EndpointClosed(Exception):
    """The endpoint was unplugged or closed; no more bytes can cross it."""


@dataclass(frozen=True, slots=True)
class TranscriptEntry:
    at_s: float
    """Clock time (``clock.monotonic()``) when the bytes crossed the endpoint."""
    direction: Direction
    data: bytes

    def __str__(self) -> str:
        return f"{self.at_s:10.4f} {self.direction} {self.data!r}"


class PtyEndpoint:
    """One pty pair; the simulator owns the master, the driver opens ``path``."""

    def __init__(self, *, clock: Clock | None = None, chunking: random.Random | None = None) -> None:
        self._clock: Clock = clock or SystemClock()
        # With ``chunking`` each write takes a random 1-700 bytes and leaves the rest
        # to the simulator's next poll, so the driver's reads split DLE pairs, CRLFs
        # and URCs where a real USB modem's would. Seeded by the caller: reproducible.
        self._chunking = chunking
        self._lock = threading.Lock()
        self._transcript: list[TranscriptEntry] = []
        master, slave = os.openpty()
        # Raw before anyone can open the path: a cooked slave would echo and map CR.
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master: int | None = master
        self._slave: int | None = slave  # kept open: without it the master reads EIO
        self._path = os.ttyname(slave)
        _LOGGER.debug("pty endpoint at %s", self._path)

    @property
    def path(self) -> str:
        """The slave's ``/dev/pts/N``, for ``serial.serial_for_url``."""
        return self._path

    @property
    def closed(self) -> bool:
        return self._master is None

    def fileno(self) -> int:
        """The master fd, for ``select``."""
        if self._master is None:
            raise EndpointClosed(self._path)
        return self._master

    def read(self) -> bytes:
        """Whatever the DTE wrote (possibly ``b""``); never blocks."""
        if self._master is None:
            raise EndpointClosed(self._path)
        try:
            data = os.read(self._master, _READ_CHUNK)
        except BlockingIOError:
            return b""
        except OSError as err:
            if err.errno == errno.EIO:  # every slave fd closed: only after unplug here
                raise EndpointClosed(self._path) from err
            raise
        if data:
            self._record("DTE>", data)
        return data

    def write(self, data: bytes) -> int:
        """Write what the kernel accepts now; return how many bytes that was."""
        if self._master is None:
            raise EndpointClosed(self._path)
        if not data:
            return 0
        if self._chunking is not None:
            data = data[: self._chunking.randint(1, MAX_RANDOM_CHUNK)]
        # Lock across write and record: once the DTE holds the bytes, a transcript
        # taken by the test must already show them.
        with self._lock:
            try:
                written = os.write(self._master, data)
            except BlockingIOError:
                return 0
            if written:
                self._record_locked("DCE<", bytes(data[:written]))
        return written

    def transcript(self) -> tuple[TranscriptEntry, ...]:
        with self._lock:
            return tuple(self._transcript)

    def bytes_sent(self, direction: Direction) -> bytes:
        """All bytes of one direction, concatenated (read boundaries are not a protocol fact)."""
        with self._lock:
            return b"".join(e.data for e in self._transcript if e.direction == direction)

    def unplug(self) -> None:
        """Fault hook: the USB device vanished. The DTE's reads and writes fail from now on."""
        _LOGGER.info("pty endpoint %s unplugged", self._path)
        self.close()

    def close(self) -> None:
        for name in ("_master", "_slave"):
            fd = getattr(self, name)
            if fd is not None:
                setattr(self, name, None)
                try:
                    os.close(fd)
                except OSError:  # already gone with the other side: nothing left to release
                    pass

    def _record(self, direction: Direction, data: bytes) -> None:
        with self._lock:
            self._record_locked(direction, data)

    def _record_locked(self, direction: Direction, data: bytes) -> None:
        self._transcript.append(TranscriptEntry(at_s=self._clock.monotonic(), direction=direction, data=data))

    def __enter__(self) -> PtyEndpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
