"""DLE shielding of voice data between the box and an analogue voice modem (V.253).

In ``+VTX``, ``+VRX`` and ``+VTR`` the serial stream carries audio bytes with
in-band events: the byte DLE (0x10) is an escape, the byte after it says what it
means. Both directions are shielded:

    DTE→DCE (we send)   every 0x10 in the audio is doubled (``shield``), always:
                        an unshielded 0x10 sample followed by 0x03, 0x18, ``!``,
                        ``u`` … is executed by the modem as a command.
    DCE→DTE (we read)   ``DleDecoder``: ``<DLE><DLE>`` is the data byte 0x10,
                        ``<DLE><SUB>`` the data bytes 0x10 0x10, ``<DLE><ETX>``
                        ends the stream, any other byte after DLE is an event
                        (DTMF digit, busy, dial tone, silence, ...).

The decoder is a sans-I/O state machine: bytes in, typed items out. It keeps the
"previous byte was DLE" state between ``feed`` calls, so an escape split across
two reads decodes exactly as if it came in one read (substring search for
``b"\\x10d"`` would both miss split escapes and false-trigger on the data
``10 10 64``).

Key presses. A modem may frame one press as ``<DLE>/ <DLE>5 <DLE>5 … <DLE>~``
(start marker, the digit repeated about every 70 ms while the tone lasts, stop
marker). The rule implemented here:

  * inside a ``/`` … ``~`` group a digit is reported when it differs from the
    digit last reported in that group, so ``/ 0 0 0 ~`` is one ``0`` (the
    "Caller pressed: 000" bug) and a group whose stop marker was lost and whose
    digit changes still reports the new key;
  * a digit outside any group (``<DLE>5``) is one press;
  * ``/`` and ``~`` themselves are framing and are not reported.

Whether an event means "the caller hung up" depends on the modem model (``l`` is
a loop drop on Conexant but never sent by a USR5637; ``h``/``H`` are the *local*
handset, and a USR sends ``<DLE>H`` right after ``AT+VLS=1``), so this module
only reports codes; the line driver's per-model profile decides what they mean.

End of stream. After ``<DLE><ETX>`` the modem switches back to command state and
sends ``\\r\\nOK\\r\\n`` (or ``VCON``) unshielded. Those bytes are not audio: the
decoder keeps them aside (``take_rest``) for the AT parser. In ``+VTX`` the modem
sends no audio and no ``<DLE><ETX>`` of its own, so after the box sent its
``<DLE><ETX>`` any ``Audio`` the decoder still yields is result-code text; the
driver hands it to the AT parser.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

_LOGGER = logging.getLogger(__name__)

DLE: Final = 0x10
ETX: Final = 0x03
SUB: Final = 0x1A
CAN: Final = 0x18

# DTE→DCE commands, ready to write (V.253; mgetty stop/intr/stop_rec commands).
END_TX: Final = bytes([DLE, ETX])  # end playback once the modem's buffer drains
END_TX_CONEXANT_SAFE: Final = bytes([DLE, DLE, DLE, ETX])
"""Triple form a Zoom 3095 needed; on a conforming modem it is data 0x10 + end."""
CLEAR_TX: Final = bytes([DLE, CAN, DLE, ETX])  # drop buffered audio, then end
ABORT_RX: Final = b"\x10!"  # stop recording: the modem answers <DLE><ETX> then OK
END_DUPLEX: Final = b"\x10^"  # leave +VTR full duplex

END: Final = "end"
"""``DleEvent.code`` of ``<DLE><ETX>``: the end of the voice stream."""

DTMF_DIGITS: Final = frozenset("0123456789*#ABCD")
_GROUP_START: Final = ord("/")
_GROUP_STOP: Final = ord("~")
# Si2493's manual prints the stop marker as 0x7F; a firmware that copied the
# typo must not turn each key press into a stray event.
_GROUP_STOP_TYPO: Final = 0x7F
_PACKET_START: Final = ord("X")  # complex event packet <DLE>X … <DLE>. (CID, DRing)
_PACKET_END: Final = ord(".")
# A packet is a few dozen bytes of CID or ring data; if its end marker never
# comes, give up rather than swallow the rest of the call's audio.
_MAX_PACKET_BYTES: Final = 512

EVENT_MEANINGS: Final[Mapping[str, str]] = {
    END: "end of voice data",
    "R": "ring (voice idle; Conexant in +FCLASS=8 instead of RING)",
    "b": "busy / reorder tone",
    "K": "busy tone (alternate code)",
    "d": "dial tone",
    "i": "dial tone (alternate code)",
    "s": "silence: no voice energy since start, then silence > +VSD time",
    "q": "quiet: voice energy, then silence > +VSD time",
    "l": "loop current interruption (Conexant; never sent by USR5637/MT9234MU)",
    "L": "loop polarity reversal",
    "h": "local handset on-hook",
    "H": "local handset off-hook (USR echoes it after AT+VLS=1)",
    "p": "extension on-hook or off-hook (Conexant with -STE; vendors disagree)",
    "P": "extension off-hook (Conexant with -STE)",
    "u": "transmit buffer underrun",
    "o": "receive buffer overrun",
    "c": "fax calling tone (CNG)",
    "e": "data calling tone",
    "a": "fax or modem answer tone",
    "f": "data answer tone",
    "$": "bong tone",
    "J": "special information tone (SIT)",
    "t": "TDD tone",
    "v": "voice detected",
    "V": "voice detected",
    "w": "call waiting",
    "r": "ringback",
    "E": "invalid voice format",
    "Y": "lost data",
    "T": "timing mark",
    "X": "complex event packet (caller ID, distinctive ring)",
}
"""What the codes mean per the vendor tables, for logs; drivers decide what to do."""


@dataclass(frozen=True, slots=True)
class Audio:
    data: bytes  # unshielded voice bytes in the +VSM format


@dataclass(frozen=True, slots=True)
class DleEvent:
    code: str
    """The byte after DLE as a character ("5", "b", "d"), ``END`` for ETX, or
    ``"0x1b"`` style for other non-printable bytes."""
    byte: int  # the raw byte after DLE
    payload: bytes = b""  # body of a complex event packet (<DLE>X … <DLE>.)

    @property
    def digit(self) -> str | None:
        """The DTMF key this event reports, if it is one."""
        return self.code if self.code in DTMF_DIGITS else None


DleItem = Audio | DleEvent


def shield(data: bytes) -> bytes:
    """Audio ready to send to the modem: every 0x10 doubled."""
    return data.replace(b"\x10", b"\x10\x10")


def event_code(byte: int) -> str:
    """The ``DleEvent.code`` for the byte after a DLE."""
    if byte == ETX:
        return END
    if 0x20 <= byte <= 0x7E:
        return chr(byte)
    return f"0x{byte:02x}"


class DleDecoder:
    """Turn the DCE→DTE byte stream of one voice session into audio and events."""

    def __init__(self) -> None:
        self._after_dle = False
        self._in_group = False
        self._group_digit: str | None = None
        self._packet: bytearray | None = None  # inside <DLE>X … <DLE>.
        self._ended = False
        self._rest = bytearray()
        self._audio = bytearray()  # audio of the current feed, not yet emitted
        self._items: list[DleItem] = []

    @property
    def ended(self) -> bool:
        """True once ``<DLE><ETX>`` has been seen."""
        return self._ended

    def take_rest(self) -> bytes:
        """Bytes received after ``<DLE><ETX>`` (command-state text), handed over once."""
        rest = bytes(self._rest)
        self._rest.clear()
        return rest

    def feed(self, chunk: bytes) -> list[DleItem]:
        """Decode one read; consecutive audio in it comes out as one ``Audio``."""
        self._items = []
        index = 0
        while index < len(chunk):
            if self._ended:
                self._rest += chunk[index:]
                break
            if not self._after_dle and self._packet is None:
                # Fast path: copy the plain audio up to the next DLE in one go;
                # at 8000 B/s almost every byte is here.
                stop = chunk.find(DLE, index)
                stop = len(chunk) if stop < 0 else stop
                self._audio += chunk[index:stop]
                index = stop
                if index == len(chunk):
                    break
            byte = chunk[index]
            index += 1
            if not self._after_dle:
                if byte == DLE:
                    self._after_dle = True
                else:
                    self._data(byte)
                continue
            self._after_dle = False
            if byte == DLE:
                self._data(DLE)
            elif byte == SUB:
                self._data(DLE)
                self._data(DLE)
            elif byte == ETX:
                if self._packet is not None:
                    _LOGGER.debug("voice stream ended inside a complex event packet")
                    self._packet = None
                self._emit(DleEvent(END, ETX))
                self._ended = True
            elif self._packet is not None and byte == _PACKET_END:
                self._close_packet()
            else:
                self._event(byte)
        self._flush_audio()
        items, self._items = self._items, []
        return items

    def _data(self, byte: int) -> None:
        if self._packet is None:
            self._audio.append(byte)
            return
        self._packet.append(byte)
        if len(self._packet) >= _MAX_PACKET_BYTES:
            _LOGGER.warning("complex event packet without end marker; reported as is")
            self._close_packet()

    def _close_packet(self) -> None:
        assert self._packet is not None
        self._emit(DleEvent("X", _PACKET_START, bytes(self._packet)))
        self._packet = None

    def _event(self, byte: int) -> None:
        if byte == _GROUP_START:
            self._in_group, self._group_digit = True, None
            return
        if byte in (_GROUP_STOP, _GROUP_STOP_TYPO):
            self._in_group, self._group_digit = False, None
            return
        if byte == _PACKET_START:
            self._flush_audio()
            self._packet = bytearray()
            return
        code = event_code(byte)
        if code in DTMF_DIGITS and self._in_group:
            if code == self._group_digit:
                return  # the same key still held: repeated every ~70 ms
            self._group_digit = code
        elif code not in EVENT_MEANINGS and code not in DTMF_DIGITS:
            _LOGGER.debug("unknown DLE code %s", code)
        self._emit(DleEvent(code, byte))

    def _emit(self, event: DleEvent) -> None:
        self._flush_audio()  # keep audio and events in stream order
        self._items.append(event)

    def _flush_audio(self) -> None:
        if self._audio:
            self._items.append(Audio(bytes(self._audio)))
            self._audio.clear()
