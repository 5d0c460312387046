"""The simulator's own DLE codec, deliberately independent of ``appliance.line.dle``.

The driver decodes what this module encodes and the other way round; sharing
code would let one bug hide in both (telephony.md 6.1).
"""

from __future__ import annotations

from typing import Final

DLE: Final = 0x10


def shield(audio: bytes) -> bytes:
    """DCE→DTE audio: every 0x10 sent as <DLE><DLE>."""
    out = bytearray()
    start = 0
    while (hit := audio.find(b"\x10", start)) >= 0:
        out += audio[start : hit + 1]
        out.append(DLE)
        start = hit + 1
    out += audio[start:]
    return bytes(out)


class DteStream:
    """DTE→DCE voice stream: audio runs and ``<DLE>x`` codes, state kept across reads."""

    def __init__(self) -> None:
        self._saw_dle = False
        self._after_pair = False  # the code follows a <DLE><DLE> pair directly (triple-DLE exit)

    def feed(self, data: bytes) -> tuple[list[bytes | tuple[int, bool]], bytes]:
        """Items up to and including the first code; the bytes after it are returned unparsed."""
        items: list[bytes | tuple[int, bool]] = []
        i = 0
        while i < len(data):
            if self._saw_dle:
                self._saw_dle = False
                byte = data[i]
                i += 1
                if byte == DLE:
                    items.append(b"\x10")
                    self._after_pair = True
                    continue
                items.append((byte, self._after_pair))
                self._after_pair = False
                return items, data[i:]
            stop = data.find(b"\x10", i)
            stop = len(data) if stop < 0 else stop
            if stop > i:
                items.append(data[i:stop])
                self._after_pair = False
            if stop < len(data):
                self._saw_dle = True
            i = stop + 1
        return items, b""
