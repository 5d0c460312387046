"""A simulated analog USB voice modem (V.250 / V.253) speaking its real bytes on a pty.

The driver opens ``VoiceModemSim.path`` with ``serial.serial_for_url`` exactly as it
opens /dev/serial/by-id/usb-...-if00; everything it sees is what a USR5637 or a
Conexant CX930xx sends (telephony.md 1, 6.2, 6.3): echo, verbose or numeric
results, RING and caller-ID lines, ``CONNECT`` then DLE-shielded audio with
in-band events.

Who owns what:

    at_engine.py      command state: V.250 front end, V.253 voice commands, settings
    voice_streams.py  +VRX / +VTX: DLE codec, bounded playback buffer, line rate
    pstn.py           the line: rings, caller ID timing, the caller's words, tones,
                      key presses, hang-up styles, extension phones, call waiting
    chipset_reports   what the line does, as this chipset reports it (its profile)
    voice_modem.py    this file: the device. It routes bytes between the pty, the
                      command engine and the streams, runs the thread, and holds
                      the faults (a firmware hang, USB unplug, garbage on the wire).

Independence. The simulator has its own DLE codec and command parser: it shares
no parsing code with ``appliance.line.dle``/``at``/``callerid``, so a bug in one
is caught by the other. From the box it reads only chipset facts
(``appliance.line.profile``) and the G.711 tables.

Time. Everything is paced by the injected clock's ``monotonic()``; with
``ScaledClock(10)`` a 5 s ring period takes 0.5 s of real time, and the driver,
given the same clock, paces its writes the same way (telephony.md 6.1). The
thread polls every 2 ms (a 2-core CI machine, 6.1).

Caller audio (``say``) is in the modem's current ``+VSM`` format; it starts on the
line when the call is answered and flows at the line rate whether or not the box
records (a half-duplex modem in ``+VTX`` loses what the caller says meanwhile). A
caller who says nothing leaves line noise (about -57 dBFS, seeded), not digital
zero; a dead line is digital silence.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import select
import shutil
import tempfile
import time
import weakref
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np

from appliance.clock import Clock
from appliance.line.profile import ModemProfile, builtin_profiles
from appliance.line.sim import sample_codec
from appliance.line.sim.at_engine import AtEngine
from appliance.line.sim.atcommand import CommandError
from appliance.line.sim.chipset_reports import ChipsetReports
from appliance.line.sim.device import DeviceSim
from appliance.line.sim.identities import IDENTITIES
from appliance.line.sim.pstn import HANG_UP_STYLES, HangUpStyle, PstnLine, Tone
from appliance.line.sim.pty_endpoint import PtyEndpoint, TranscriptEntry
from appliance.line.sim.timeline import Timeline
from appliance.line.sim.voice_streams import StreamCounters, VrxStream, VtxStream

_LOGGER = logging.getLogger(__name__)

_POLL_S: Final = 0.002  # real seconds; 16 bytes of audio at 1x, well under the driver's 20 ms
_OUT_LIMIT: Final = 16_384  # pending DCE→DTE bytes before +VRX audio is dropped (DTE not reading)
_DTMF_KEYS: Final = frozenset("0123456789*#ABCD")
_WRITE_MAX: Final = 4096  # bytes offered to the pty per poll

Mode = Literal["command", "busy", "vrx", "vtx", "data_answer", "unplugged"]


@dataclass(frozen=True, slots=True)
class SimStats:
    """A snapshot of the simulator, for assertions (telephony.md 6.7)."""

    mode: str
    fclass: int
    off_hook: bool
    vsm: tuple[int, int]
    call_state: str | None
    rings: int
    tx_overruns: int
    tx_overrun_bytes: int
    tx_underruns: int
    rx_dropped_bytes: int
    data_answers: int
    protocol_violations: tuple[str, ...]
    answering: bool = True
    """False between ``stop_answering()`` and ``resume_answering()``."""
    plugged: bool = True
    extension_off_hook: bool = False


class VoiceModemSim(DeviceSim):
    """One simulated voice modem on its own pty, run by its own thread.

    ``country``: ``fr`` (440 Hz tones, 1.5/3.5 s rings), ``eu`` (425 Hz) or ``us``
    (350+440 Hz dial tone). ``seed`` makes the line noise (and ``chunking``)
    reproducible; ``chunking=True`` splits every write to the box into a random
    1-700 bytes, so DLE pairs, CRLFs and result lines are cut where a USB modem's
    reads would cut them.
    """

    kind = "modem"

    def __init__(
        self,
        profile_name: str = "usr5637",
        *,
        clock: Clock,
        dtmf_style: Literal["shielded", "simple"] | None = None,
        tx_buffer_bytes: int = 1536,
        ring_period_s: float | None = None,
        cid_delay_s: float = 0.9,
        rings_until_abandon: int = 8,
        hangup_event_delay_s: float = 0.5,
        vrx_requires_vls5: bool = False,
        tx_end_requires_triple_dle: bool = False,
        country: Literal["fr", "eu", "us"] = "fr",
        line_noise_dbfs: float = -57.0,
        seed: int = 0,
        chunking: bool = False,
    ) -> None:
        profile = builtin_profiles().get(profile_name)
        if profile is None or profile.kind != "analog" or profile_name not in IDENTITIES:
            raise ValueError(f"no analog modem simulation for profile {profile_name!r}")
        assert profile.dle is not None  # guaranteed for kind == "analog" by ModemProfile
        if not 256 <= tx_buffer_bytes <= 65536:
            raise ValueError(f"tx_buffer_bytes must be 256-65536, got {tx_buffer_bytes}")
        if dtmf_style not in (None, "shielded", "simple"):
            raise ValueError(f"dtmf_style must be shielded or simple, got {dtmf_style!r}")
        super().__init__(profile_name)
        self.profile: ModemProfile = profile
        self._dle = profile.dle
        self._id = IDENTITIES[profile_name]
        self._clock = clock
        self._tx_cap = tx_buffer_bytes
        self._vrx_requires_vls5 = vrx_requires_vls5
        self._triple_exit = tx_end_requires_triple_dle
        self._noise_rng = np.random.default_rng(seed)
        self._chunking = random.Random(seed) if chunking else None
        self._timeline = Timeline()
        self._engine = AtEngine(profile, self._id, self, self._emit)
        self._reports = ChipsetReports(
            profile=profile,
            dtmf_style=dtmf_style or profile.dle.dtmf_styles[0],
            engine=self._engine,
            device=self,
            timeline=self._timeline,
            clock=clock,
            emit=self._emit,
        )
        self.line = PstnLine(
            clock=clock,
            timeline=self._timeline,
            observer=self._reports,
            country=country,
            ring_period_s=ring_period_s,
            cid_delay_s=cid_delay_s,
            rings_until_abandon=rings_until_abandon,
            hangup_delay_s=hangup_event_delay_s,
            noise_dbfs=line_noise_dbfs,
        )
        self._out = bytearray()
        self._heard = bytearray()
        self._violations: list[str] = []
        self._counters = StreamCounters()
        self._data_answers = 0
        self._mode: Mode = "command"
        self._now = clock.monotonic()
        self._vrx: VrxStream | None = None
        self._vtx: VtxStream | None = None
        self._deferred = bytearray()  # DTE bytes that wait for a delayed OK
        self._busy_reply = b""
        self._busy_token = 0
        self._data_token = 0
        self._answering = True
        self._closed = False
        self._old_transcripts: list[TranscriptEntry] = []
        # A stable name like udev's /dev/serial/by-id/..., pointing at the current pty.
        self._by_id_dir = tempfile.mkdtemp(prefix="modem-sim-")
        self._by_id = os.path.join(self._by_id_dir, self._id.by_id)
        # Removed on close(), or when a simulator that never ran is collected.
        self._remove_by_id_dir = weakref.finalize(self, shutil.rmtree, self._by_id_dir, True)
        self.endpoint: PtyEndpoint | None = None
        self._plug_in()

    # --- public API (any thread) -----------------------------------------------------

    @property
    def path(self) -> str:
        """A stable path (a symlink, like udev's by-id name) to the modem's current pty."""
        return self._by_id

    @property
    def clock(self) -> Clock:
        """The clock pacing the simulator; give the same one to the driver under test."""
        return self._clock

    def ring(self, number: str | None, name: str | None = None, *, cid: str = "bellcore") -> None:
        """A call arrives: the bell rings at the country's cadence, caller ID per ``cid``.

        ``number`` is digits, ``"P"`` (withheld) or ``"O"`` (unavailable), or None
        for a line without caller ID. ``cid``: ``"bellcore"`` (between the first
        and second RING, 1.5), ``"before_ring"`` (ETSI/UK) or ``"none"``.
        """
        if cid not in ("bellcore", "before_ring", "none"):
            raise ValueError(f"cid must be bellcore, before_ring or none, got {cid!r}")
        self._submit(lambda: self.line.ring(number, name, cid))  # type: ignore[arg-type]

    def say(self, audio: bytes) -> None:
        """Queue what the caller says, as bytes in the current ``+VSM`` format."""
        self._submit(lambda: self.line.say(sample_codec.decode(self._engine.current_format().kind, bytes(audio))))

    def press(self, digit: str, duration_s: float = 0.1) -> None:
        """The caller holds a key for ``duration_s``; the modem reports it while streaming.

        However long the key is held, it is one press: ``/ 5 5 5 ... ~`` in the
        shielded style, a single ``5`` in the simple style (telephony.md 1.7).
        """
        if digit not in _DTMF_KEYS:
            raise ValueError(f"not a DTMF key: {digit!r}")
        if not 0 < duration_s <= 10:
            raise ValueError(f"duration_s must be 0-10 s, got {duration_s}")
        self._submit(lambda: self.line.press(digit, duration_s))

    def hang_up(self, style: HangUpStyle | None = None) -> None:
        """The caller hangs up; the line then gives what ``style`` says.

        * ``dial_tone``: the exchange's dial tone (440 Hz in France, 425 Hz in
          Europe, 350+440 Hz in the US) after ``hangup_event_delay_s``, and
          ``<DLE>d`` where the chipset reports dial tone;
        * ``dial_tone_only``: the same tone, but the chipset's detector misses it:
          no DLE event (only the box's own tone detector can tell);
        * ``busy``: the busy tone, with ``<DLE>b`` every ~4 s where reported;
        * ``loop_drop``: the loop current breaks: ``<DLE>l`` where the chipset
          reports it (Conexant), nothing otherwise; the line is dead silent;
        * ``silence``: nothing but digital silence;
        * ``never``: the caller stops talking but the line stays up, with line
          noise, forever; only the box's maximum call length ends it.

        Default: a loop drop where the chipset reports one, otherwise dial tone.
        A caller still ringing simply gives up (``abandon``).
        """
        if style is not None and style not in HANG_UP_STYLES:
            raise ValueError(f"style must be one of {', '.join(HANG_UP_STYLES)}, got {style!r}")
        chosen: HangUpStyle = style or ("loop_drop" if "l" in self._dle.hangup_codes else "dial_tone")
        self._submit(lambda: self.line.hang_up(chosen))

    def abandon(self) -> None:
        """The caller gives up before the box answered: the rings stop, nothing announces it."""
        self._submit(self.line.abandon)

    def pick_up_extension(self) -> None:
        """A person in the practice lifts an extension phone on the same line.

        While it rings: the ringing stops (the person took the call). During a
        call: the chipset reports it where its profile lists an extension
        off-hook code (Conexant ``<DLE>P`` with ``-STE``, telephony.md 1.7), and
        the caller's audio now carries the person's voice.
        """
        self._submit(self.line.pick_up_extension)

    def put_down_extension(self) -> None:
        """The person on the extension hangs up again (a call they had taken ends)."""
        self._submit(self.line.put_down_extension)

    def call_waiting(self, number: str, name: str | None = None) -> None:
        """A second caller during the call: the call-waiting beep in the audio, ``<DLE>w``
        where the chipset reports it, and the waiting caller's ID (``+VCID=1``): as a
        complex event packet ``<DLE>X ... <DLE>.`` inside a stream, as tag lines in
        command state (the "several simultaneous calls" fault, telephony.md 1.11)."""
        self._submit(lambda: self.line.call_waiting(number, name))

    def stop_answering(self) -> None:
        """Fault: the modem firmware hangs. Every byte from the box is ignored, nothing
        is sent (streams stall too) until ``resume_answering()``. The line goes on."""
        self._submit(lambda: self._set_answering(False))

    def resume_answering(self) -> None:
        """The firmware comes back where it hung (a stream it was in goes on from now)."""
        self._submit(lambda: self._set_answering(True))

    def unplug(self) -> None:
        """Fault: the USB modem vanishes; the box's port fails (EIO) and ``path`` disappears."""
        self._submit(self._unplug)

    def replug(self) -> None:
        """The USB modem comes back, freshly powered up, on a new pty behind the same ``path``."""
        self._submit(self._replug)

    def garbage(self, data: bytes, *, before_reply_to: str | None = None) -> None:
        """Fault: ``data`` goes to the box at the current point of the byte stream
        (idle, in command state, or in the middle of a voice stream).

        ``before_reply_to``: wait for the next command line starting with this
        (``"AT+VLS"``) and put ``data`` between the command and its answer.
        """
        if before_reply_to is None:
            self._submit(lambda: self._out.extend(data))
        else:
            prefix = before_reply_to
            self._submit(lambda: self._engine.inject_before_reply(prefix, bytes(data)))

    def stats(self) -> SimStats:
        with self._lock:
            caller = self.line.caller
            return SimStats(
                mode=self._mode,
                fclass=self._engine.fclass,
                off_hook=self.line.off_hook,
                vsm=(self._engine.vsm, self._engine.vsm_rate),
                call_state=caller.state if caller else None,
                rings=caller.rings if caller else 0,
                tx_overruns=self._counters.tx_overruns,
                tx_overrun_bytes=self._counters.tx_overrun_bytes,
                tx_underruns=self._counters.tx_underruns,
                rx_dropped_bytes=self._counters.rx_dropped_bytes,
                data_answers=self._data_answers,
                protocol_violations=tuple(self._violations),
                answering=self._answering,
                plugged=self.endpoint is not None,
                extension_off_hook=self.line.extension_off_hook,
            )

    def heard(self) -> bytes:
        """Audio the caller heard (``+VTX`` bytes after unshielding, ``+VTS`` tones), in the +VSM format."""
        with self._lock:
            return bytes(self._heard)

    def transcript(self) -> tuple[TranscriptEntry, ...]:
        """Every byte across the port, both ways, over every plug-in."""
        with self._lock:
            current = self.endpoint.transcript() if self.endpoint is not None else ()
            return (*self._old_transcripts, *current)

    # --- thread ------------------------------------------------------------------------

    def _ports_open(self) -> bool:
        return not self._closed  # unplugged is not closed: the device comes back on replug

    def _close_ports(self) -> None:
        self._closed = True
        if self.endpoint is not None:
            self.endpoint.close()
        self._remove_by_id_dir()

    def _poll(self) -> object:
        endpoint = self.endpoint
        if endpoint is None:
            time.sleep(_POLL_S)
            return False
        fd = endpoint.fileno()
        readable, _, _ = select.select([fd], [fd] if self._out else [], [], _POLL_S)
        return bool(readable)

    def _serve(self, ready: object) -> None:
        # Drain to "now" before taking new input: after a stall of this thread
        # the buffer must not look fuller than the modem's would be.
        self._tick(self._clock.monotonic())
        endpoint = self.endpoint
        if endpoint is None:
            self._out.clear()
            return
        if ready:
            data = endpoint.read()
            if data and self._answering:
                self._on_dte_bytes(data)
        if not self._answering:
            self._out.clear()  # a hung firmware sends nothing
        elif self._out:
            written = endpoint.write(bytes(self._out[:_WRITE_MAX]))
            del self._out[:written]

    def _tick(self, now: float) -> None:
        while (due := self._timeline.pop_due(now)) is not None:
            t, action = due
            self._advance(t)
            action()
        self._advance(now)

    def _advance(self, t: float) -> None:
        """Audio up to ``t``: streamed in +VRX, played out in +VTX, otherwise gone by."""
        t = max(t, self._now)
        self._now = t
        rate = self._engine.vsm_rate
        if self._mode == "vrx" and self._vrx is not None:
            self._vrx.advance(t)
            return
        self.line.skip_until(t, rate)
        if self._mode == "vtx" and self._vtx is not None:
            self._vtx.advance(t)
            if self._vtx.drained:
                self._close_stream(b"")

    def _run_actions(self) -> None:
        # Actions from tests (a hang-up, a key) happen "now": first bring the audio
        # there, so they land at their sample rather than at the last poll.
        if not self._actions.empty():
            self._tick(self._clock.monotonic())
        super()._run_actions()

    def _emit(self, data: bytes) -> None:
        self._out += data

    def _emit_audio(self, data: bytes) -> None:
        if len(self._out) > _OUT_LIMIT:  # the DTE is not reading: a real modem drops too
            self._counters.rx_dropped_bytes += len(data)
            return
        self._out += data

    def streaming(self) -> bool:
        return self._mode in ("vrx", "vtx")

    # --- plugged in or not -------------------------------------------------------------------

    def _plug_in(self) -> None:
        self.endpoint = PtyEndpoint(clock=self._clock, chunking=self._chunking)
        link = self._by_id + ".new"
        os.symlink(self.endpoint.path, link)
        os.replace(link, self._by_id)  # atomic, as udev swaps the link

    def _unplug(self) -> None:
        if self.endpoint is None:
            return
        self._power_off()
        self._mode = "unplugged"
        self._old_transcripts.extend(self.endpoint.transcript())
        self.endpoint.unplug()
        self.endpoint = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._by_id)

    def _replug(self) -> None:
        if self.endpoint is not None:
            raise RuntimeError("the modem is plugged in already")
        self._plug_in()
        self._mode = "command"

    def _power_off(self) -> None:
        """Power gone (unplugged): on-hook, streams and settings lost."""
        self._out.clear()
        self._deferred.clear()
        self._vrx = self._vtx = None
        self._engine.reset()
        self.line.set_hook(False)

    def _set_answering(self, answering: bool) -> None:
        if answering and not self._answering:
            self._deferred.clear()  # bytes that came meanwhile were never read
        self._answering = answering
        _LOGGER.info("modem simulator %s", "answers again" if answering else "hangs: ignores everything")

    # --- the device side of the command engine (VoiceDevice) ------------------------------------

    def now(self) -> float:
        return self._now

    def in_command_state(self) -> bool:
        return self._mode == "command"

    def hook(self, off_hook: bool) -> None:
        self.line.set_hook(off_hook)
        if not off_hook:
            self._engine.vls = 0

    def select_line(self, device: int) -> None:
        if device % 2 == 1:  # odd +VLS values include the telephone line (1.8)
            was_on_hook = not self.line.off_hook
            self.line.set_hook(True)
            if was_on_hook and self.profile.quirks.dle_h_after_answer:
                # 1.7: the USR confirms its own off-hook, right after the OK.
                self._timeline.at(self._now, lambda: self._emit(b"\x10H"))
        else:
            self.line.set_hook(False)

    def data_answer(self) -> None:
        # Data class: answer tone into the line (the caller hears fax tones, 1.8),
        # no carrier ever comes, NO CARRIER after S7 seconds.
        self.line.set_hook(True)
        self._data_answers += 1
        self._mode = "data_answer"
        self._data_token += 1
        token = self._data_token
        self._timeline.at(self._now + self._engine.s[7], lambda: self._end_data_answer(token))

    def _end_data_answer(self, token: int) -> None:
        if self._mode != "data_answer" or token != self._data_token:
            return
        self.hook(False)
        self._mode = "command"
        self._emit(self._engine.result("NO CARRIER"))

    def reply_later(self, at: float, reply: bytes) -> None:
        self._mode = "busy"
        self._busy_reply = reply
        self._busy_token += 1
        token = self._busy_token
        self._timeline.at(at, lambda: self._end_busy(token))

    def _end_busy(self, token: int) -> None:
        if self._mode != "busy" or token != self._busy_token:
            return
        self._emit(self._busy_reply)
        self._mode = "command"
        self._take_deferred()

    def play_tone(self, freqs_hz: tuple[float, ...], duration_s: float) -> None:
        if not freqs_hz or not self.line.off_hook:
            return
        rate = self._engine.vsm_rate
        pcm = Tone(freqs_hz).render(0, int(duration_s * rate), rate)
        self._heard += sample_codec.encode(self._engine.current_format().kind, np.rint(pcm).astype(np.int16))

    def open_stream(self, kind: Literal["vrx", "vtx"]) -> None:
        if not self.line.off_hook:
            raise CommandError
        self.line.skip_until(self._now, self._engine.vsm_rate)  # what was said before is gone
        fmt = self._engine.current_format()
        if kind == "vrx":
            noise = self.line.noise_rms
            rng = self._noise_rng
            self._vrx = VrxStream(
                t0=self._now,
                rate=self._engine.vsm_rate,
                line=self.line,
                encode=lambda pcm, noisy: sample_codec.encode_line(fmt.kind, pcm, noisy, noise, rng),
                silence_byte=fmt.silence,
                emit_audio=self._emit_audio,
                emit_event=self._emit,
                silence_timeout_s=self._engine.vsd[1] / 10,
                records_line=not (self._vrx_requires_vls5 and self._engine.vls != 5),
                triple_dle_exit=self._triple_exit,
                violations=self._violations,
            )
        else:
            self._vtx = VtxStream(
                t0=self._now,
                bytes_per_s=self._engine.bytes_per_s(),
                capacity=self._tx_cap,
                triple_dle_exit=self._triple_exit,
                heard=self._heard,
                emit_event=self._emit,
                counters=self._counters,
                violations=self._violations,
            )
        self._mode = kind
        # Right after the CONNECT: a tone on the line, a key held down are news to the new stream.
        self._timeline.at(self._now, self._reports.stream_opened)

    def _close_stream(self, tail: bytes) -> None:
        self._emit(tail + self._engine.result("OK"))
        self._mode = "command"
        self._vrx = self._vtx = None
        self._reports.stream_closed()
        self._take_deferred()

    def _take_deferred(self) -> None:
        pending = bytes(self._deferred)
        self._deferred.clear()
        if pending:
            self._on_dte_bytes(pending)

    def _on_dte_bytes(self, data: bytes) -> None:
        while data:
            if self._mode == "command":
                data = self._engine.feed(data)
            elif self._mode == "vtx" and self._vtx is not None:
                data = self._vtx.feed(data)
                if self._vtx.ending:
                    self._deferred += data  # commands sent before our OK wait for it
                    if self._vtx.drained:
                        self._close_stream(b"")
                    return
            elif self._mode == "vrx" and self._vrx is not None:
                data, aborted = self._vrx.feed(data)
                if aborted:
                    self._vrx.advance(self._now)
                    self._close_stream(b"\x10\x03")
            elif self._mode == "data_answer":  # any character aborts the answer (V.250 A)
                self._end_data_answer(self._data_token)
                data = data[1:]
            elif self._mode == "busy":
                self._deferred += data
                return
            else:
                return
