"""The two half-duplex voice streams of a simulated V.253 modem: ``+VRX`` and ``+VTX``.

Both speak the simulator's own DLE codec (``dlecodec``), never the driver's.

``+VRX`` (telephony.md 1.8, 6.3): the line's audio, coded per ``+VSM``, every
0x10 doubled, at the line rate; events (key presses, tones, the ``+VSD`` silence
timer) are written between audio bytes at the instant they happen. Any DTE byte
but XON/XOFF aborts the stream (recorded as a protocol violation unless it is
``<DLE>!``).

``+VTX``: the box's audio goes through the DLE codec into a bounded buffer
(1-2 KB, like the real modems' ``+VBQ``) drained at the line rate into what the
caller hears. A writer that gets ahead loses bytes (``<DLE>o``, counted); one
that falls behind leaves a gap (``<DLE>u``, once per underrun, counted).
``<DLE><ETX>`` ends the stream once the buffer has played out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy as np

from appliance.line.sim.dlecodec import DteStream, shield
from appliance.line.sim.pstn import PstnLine

_ETX: Final = 0x03
_CAN: Final = 0x18
_XON_XOFF: Final = frozenset((0x11, 0x13))  # the only DTE bytes that do not abort +VRX (1.7)
_TX_NO_EFFECT: Final = frozenset(b"udpr^!\x00\x1c\x12")  # volume, pause, refresh, concatenate (1.7)


@dataclass
class StreamCounters:
    """What the streams count for ``VoiceModemSim.stats`` (telephony.md 6.7)."""

    tx_overruns: int = 0
    tx_overrun_bytes: int = 0
    tx_underruns: int = 0
    rx_dropped_bytes: int = 0


class VrxStream:
    """``+VRX``: line audio out to the DTE."""

    def __init__(
        self,
        *,
        t0: float,
        rate: int,
        line: PstnLine,
        encode: Callable[[np.ndarray, np.ndarray], bytes],
        silence_byte: int,
        emit_audio: Callable[[bytes], None],
        emit_event: Callable[[bytes], None],
        silence_timeout_s: float,
        records_line: bool,
        triple_dle_exit: bool,
        violations: list[str],
    ) -> None:
        self._rate = rate
        self._triple_exit = triple_dle_exit
        self._line = line
        self._encode = encode
        self._silence_byte = silence_byte
        self._emit_audio = emit_audio
        self._emit_event = emit_event
        self._sdi_s = silence_timeout_s
        self._records_line = records_line  # False: the USR "VLS=1 then +VRX records nothing" quirk
        self._violations = violations
        self._dte = DteStream()
        self._t = t0
        self._voice_seen = False
        self._silence_since = t0
        self._silence_reported = False

    def advance(self, t: float) -> None:
        """Send the line's audio up to ``t``, with a ``+VSD`` silence event where it falls due."""
        while self._sdi_s > 0 and not self._silence_reported:
            due = self._silence_since + self._sdi_s
            if due > t:
                break
            self._pull(due)
            if self._silence_since + self._sdi_s <= due:  # nobody spoke up in the meantime
                # 1.7: q = quiet after voice, s = no voice at all since the stream began.
                self._emit_event(b"\x10q" if self._voice_seen else b"\x10s")
                self._silence_reported = True
        self._pull(t)

    def _pull(self, t: float) -> None:
        if t <= self._t:
            return
        audio = self._line.audio_until(t, self._rate)
        self._t = t
        if not audio.pcm.size:
            return
        if not self._records_line:
            self._emit_audio(bytes((self._silence_byte,)) * audio.pcm.size)
            return
        if audio.voiced:
            self._voice_seen = True
            self._silence_since = t
            self._silence_reported = False
        self._emit_audio(shield(self._encode(audio.pcm, audio.noisy)))

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """DTE bytes during ``+VRX``: (the bytes after an abort, whether the stream was aborted)."""
        while data:
            items, data = self._dte.feed(data)
            for item in items:
                if isinstance(item, bytes):
                    if item == b"\x10":
                        continue  # <DLE><DLE> of a triple-DLE abort: harmless
                    stray = bytes(b for b in item if b not in _XON_XOFF)
                    if stray:
                        self._violations.append(f"byte {stray[0]:#04x} sent during +VRX aborted it")
                        return data, True
                    continue
                code, after_pair = item
                if code == ord("!") and not (self._triple_exit and not after_pair):
                    return data, True
                self._violations.append(f"<DLE>{code:#04x} during +VRX")
        return b"", False


class VtxStream:
    """``+VTX``: the box's audio in, through a bounded buffer, to what the caller hears."""

    def __init__(
        self,
        *,
        t0: float,
        bytes_per_s: int,
        capacity: int,
        triple_dle_exit: bool,
        heard: bytearray,
        emit_event: Callable[[bytes], None],
        counters: StreamCounters,
        violations: list[str],
    ) -> None:
        self._bytes_per_s = bytes_per_s
        self._cap = capacity
        self._triple_exit = triple_dle_exit
        self._heard = heard
        self._emit_event = emit_event
        self._counters = counters
        self._violations = violations
        self._dte = DteStream()
        self._buf = bytearray()
        self._t = t0
        self._frac = 0.0
        self.ending = False
        """``<DLE><ETX>`` came: the stream ends once the buffer is empty."""
        self._had_data = False
        self._underrun = False
        self._overflowing = False

    @property
    def drained(self) -> bool:
        return self.ending and not self._buf

    def advance(self, t: float) -> None:
        """Play the buffer out at the line rate up to ``t``."""
        if t <= self._t:
            return
        if not self._buf:
            if self._had_data and not self._underrun and not self.ending:
                self._counters.tx_underruns += 1
                self._underrun = True
                self._emit_event(b"\x10u")
            self._t, self._frac = t, 0.0
            return
        wanted = (t - self._t) * self._bytes_per_s + self._frac
        count = int(wanted)
        self._frac = wanted - count
        self._t = t
        self._heard += self._buf[:count]
        del self._buf[:count]

    def feed(self, data: bytes) -> bytes:
        """DTE bytes during ``+VTX``; once the end is asked for, the rest is returned (commands)."""
        while data and not self.ending:
            items, data = self._dte.feed(data)
            for item in items:
                if isinstance(item, bytes):
                    self._accept(item)
                    continue
                code, after_pair = item
                if code == _ETX:
                    # A Zoom 3095 took only <DLE><DLE><DLE><ETX> (1.8): with that flag a lone one is ignored.
                    if not (self._triple_exit and not after_pair):
                        self.ending = True
                elif code == _CAN:
                    self._buf.clear()
                elif code not in _TX_NO_EFFECT:
                    self._violations.append(f"<DLE>{code:#04x} during +VTX")
        return data

    def _accept(self, audio: bytes) -> None:
        room = self._cap - len(self._buf)
        self._buf += audio[: max(room, 0)]
        self._had_data = True
        self._underrun = False
        dropped = len(audio) - max(room, 0)
        if dropped > 0:
            self._counters.tx_overrun_bytes += dropped
            if not self._overflowing:
                self._counters.tx_overruns += 1
                self._emit_event(b"\x10o")  # telephony.md 5: the sim reports its overflow
            self._overflowing = True
        else:
            self._overflowing = False
