"""The serial port: the only module that imports pyserial.

One reader thread owns the port and hands chunks to the event loop through a
queue (telephony.md 7.1): a blocking read never runs on the loop, and no lock is
held across a read. Ports are opened with ``serial.serial_for_url``, so a device
path, a pty from the simulators, ``socket://`` and ``rfc2217://`` all work.

A port that fails (USB unplugged: EIO, or the device vanishing) ends the stream
with ``LineError("port-lost")``; the driver decides whether to wait and reopen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from typing import Final

import serial

from appliance.errors import LineError

_LOGGER = logging.getLogger(__name__)
_READ_TIMEOUT_S: Final = 0.01  # the reader wakes at least this often to notice close()
_CHUNK: Final = 4096
_WRITE_TIMEOUT_S: Final = 2.0  # a modem that stops draining must not hang a call forever


class SerialPort:
    def __init__(self, port: serial.SerialBase, loop: asyncio.AbstractEventLoop) -> None:
        self._port = port
        self._loop = loop
        self._chunks: asyncio.Queue[bytes | BaseException] = asyncio.Queue()
        self._closing = threading.Event()
        self._reader = threading.Thread(target=self._read_forever, name=f"serial {port.port}", daemon=True)
        self._reader.start()
        self.url = str(port.port)

    @classmethod
    async def open(cls, url: str, *, baud: int = 115200) -> SerialPort:
        """Open ``url``; a missing or busy device is a ``LineError`` naming it."""
        try:
            port = await asyncio.to_thread(
                serial.serial_for_url, url, baudrate=baud, timeout=_READ_TIMEOUT_S, write_timeout=_WRITE_TIMEOUT_S
            )
        except (serial.SerialException, OSError, ValueError) as err:
            raise LineError("port-open-failed", f"cannot open {url}: {err}") from err
        return cls(port, asyncio.get_running_loop())

    async def read(self) -> bytes:
        """The next chunk of bytes from the device (never empty)."""
        item = await self._chunks.get()
        if isinstance(item, BaseException):
            self._chunks.put_nowait(item)  # every later read fails the same way
            raise LineError("port-lost", f"{self.url}: {item}") from item
        return item

    def read_nowait(self) -> bytes:
        """Whatever has already arrived ("" if nothing); never waits."""
        out = bytearray()
        while not self._chunks.empty():
            item = self._chunks.get_nowait()
            if isinstance(item, BaseException):
                self._chunks.put_nowait(item)
                break
            out += item
        return bytes(out)

    async def write(self, data: bytes) -> None:
        # pyserial's write may block while the kernel buffer is full: off the loop.
        try:
            await asyncio.to_thread(self._port.write, data)
        except (serial.SerialException, OSError) as err:
            raise LineError("port-lost", f"{self.url}: write failed: {err}") from err

    async def close(self) -> None:
        self._closing.set()
        await asyncio.to_thread(self._reader.join, 1.0)
        with contextlib.suppress(serial.SerialException, OSError):
            self._port.close()

    def _read_forever(self) -> None:
        while not self._closing.is_set():
            try:
                data = self._port.read(self._port.in_waiting or 1)
                if len(data) < _CHUNK and self._port.in_waiting:
                    data += self._port.read(min(self._port.in_waiting, _CHUNK))
            except (serial.SerialException, OSError, TypeError) as err:
                # TypeError: pyserial's posix read on a closed fd. All mean the device is gone.
                if not self._closing.is_set():
                    _LOGGER.warning("serial port %s lost: %s", self.url, err)
                    self._hand_over(err)
                return
            if data:
                self._hand_over(data)

    def _hand_over(self, item: bytes | BaseException) -> None:
        try:
            self._loop.call_soon_threadsafe(self._chunks.put_nowait, item)
        except RuntimeError:
            self._closing.set()  # the loop is gone: nobody is listening any more
