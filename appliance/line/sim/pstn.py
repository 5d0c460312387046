"""The telephone line behind a simulated analog modem: the exchange and the people on it.

Physics, not chipset. This module decides when the bell rings, when the
caller-ID burst comes, what the caller says, which tone the exchange plays after
the caller hung up, that a person in the practice lifted an extension phone, that
a second caller is waiting. It tells the modem what a modem's detectors would
notice (``LineObserver``) and renders the audio the modem hears (``audio_until``).
How a chipset *reports* each fact (``RING`` or ``<DLE>R``, which DLE code, spaces
around ``=`` in caller ID) is the modem's business (``voice_modem``), from its
profile.

Time. Every state change is an action on the shared ``Timeline``; the modem
brings the audio up to an action's time before running it, so a hang-up lands at
its sample. The line's audio cursor (``audio_until``/``skip_until``) moves only
forward: what the caller says while nobody records is gone, as on a real line.

Tones are real frequencies (telephony.md 1.10, 6.4), so the box's own Goertzel
detectors are exercised even where the chipset reports nothing. Values per
country are the usual national ones; those the reference does not give are
marked [unverified].
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal, Protocol

import numpy as np

from appliance.clock import Clock
from appliance.line.sim.timeline import Timeline

HangUpStyle = Literal["dial_tone", "dial_tone_only", "busy", "loop_drop", "silence", "never"]
HANG_UP_STYLES: Final = ("dial_tone", "dial_tone_only", "busy", "loop_drop", "silence", "never")
ToneKind = Literal["dial_tone", "busy", "call_waiting"]
CidStyle = Literal["bellcore", "before_ring", "none"]
CallState = Literal["ringing", "connected", "gone", "taken"]
"""``taken``: a person in the practice answered (or stayed on) an extension phone."""

_TONE_LEVEL: Final = 3300.0  # peak of a tone, about -20 dBFS: a loud but unclipped exchange tone
_VOICE_LEVEL: Final = 2600.0  # the extension person's voice, about -25 dBFS RMS
_CIDCW_DELAY_S: Final = 0.5  # call-waiting caller ID follows the tone burst [unverified]


@dataclass(frozen=True, slots=True)
class Tone:
    freqs_hz: tuple[float, ...]
    cadence_s: tuple[float, ...] = ()
    """on, off, on, off... seconds; empty = continuous."""
    repeat: bool = True
    """Cycle the cadence; False = play it once, then silence."""

    def render(self, start: int, n: int, rate: int) -> np.ndarray:
        """Samples ``start`` .. ``start + n`` since the tone began, as float."""
        t = (start + np.arange(n)) / rate
        wave = sum(np.sin(2 * np.pi * f * t) for f in self.freqs_hz) * (_TONE_LEVEL / len(self.freqs_hz))
        if not self.cadence_s:
            return np.asarray(wave, dtype=np.float64)
        period = sum(self.cadence_s)
        edges = np.cumsum(self.cadence_s)
        pos = np.mod(t, period) if self.repeat else t
        segment = np.searchsorted(edges, pos, side="right")
        on = (segment % 2 == 0) & (segment < len(self.cadence_s))
        return np.where(on, wave, 0.0)


@dataclass(frozen=True, slots=True)
class Country:
    ring_on_s: float
    ring_off_s: float
    dial_tone: Tone
    busy: Tone
    call_waiting: Tone


COUNTRIES: Final = {
    # France: 440 Hz "la" tones; ringing 1.5 s on / 3.5 s off (ringing.py). Busy
    # 0.5/0.5 and the call-waiting beep are the usual values [unverified].
    "fr": Country(1.5, 3.5, Tone((440.0,)), Tone((440.0,), (0.5, 0.5)), Tone((440.0,), (0.3, 9.7, 0.3), repeat=False)),
    # Most of Europe: 425 Hz (telephony.md 1.10) [cadences unverified].
    "eu": Country(1.0, 4.0, Tone((425.0,)), Tone((425.0,), (0.5, 0.5)), Tone((425.0,), (0.2, 0.2, 0.2), repeat=False)),
    # North America: dial 350+440, busy 480+620 (1.10 [unverified]), ring 2/4 (1.5).
    "us": Country(
        2.0, 4.0, Tone((350.0, 440.0)), Tone((480.0, 620.0), (0.5, 0.5)), Tone((440.0,), (0.3, 9.7, 0.3), repeat=False)
    ),
}


@dataclass(frozen=True, slots=True)
class CallerIdData:
    number: str
    name: str | None


class LineObserver(Protocol):
    """What a modem's ring, caller-ID, tone and hook detectors notice on the line."""

    def on_ring(self, rings: int) -> None: ...

    def on_caller_id(self, cid: CallerIdData, *, waiting: bool) -> None: ...

    def on_tone(self, kind: ToneKind) -> None: ...

    def on_loop_drop(self) -> None: ...

    def on_extension(self, off_hook: bool) -> None: ...

    def on_key(self, digit: str, down: bool) -> None: ...


@dataclass
class Caller:
    number: str | None
    name: str | None
    cid: CidStyle
    state: CallState = "ringing"
    rings: int = 0
    speech: list[np.ndarray] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class LineAudio:
    pcm: np.ndarray  # int32, to be clipped by the coder
    noisy: np.ndarray  # bool per sample: the line's noise floor belongs here
    voiced: bool  # someone spoke in this stretch (the modem's +VSD timer restarts)


@dataclass(slots=True)
class _Playing:
    tone: Tone
    start: int  # line sample where it began
    kind: ToneKind | None  # None: the chipset's detector misses it ("dial_tone_only")


class PstnLine:
    """One subscriber line with at most one caller on it (plus one waiting)."""

    def __init__(
        self,
        *,
        clock: Clock,
        timeline: Timeline,
        observer: LineObserver,
        country: str = "fr",
        ring_period_s: float | None = None,
        cid_delay_s: float = 0.9,
        rings_until_abandon: int = 8,
        hangup_delay_s: float = 0.5,
        noise_dbfs: float = -57.0,
    ) -> None:
        if country not in COUNTRIES:
            raise ValueError(f"country must be one of {', '.join(COUNTRIES)}, got {country!r}")
        self.country = COUNTRIES[country]
        self.country_code = country
        self._clock = clock
        self._timeline = timeline
        self._observer = observer
        self._ring_period_s = ring_period_s or self.country.ring_on_s + self.country.ring_off_s
        self._cid_delay_s = cid_delay_s
        self._rings_until_abandon = rings_until_abandon
        self._hangup_delay_s = hangup_delay_s
        self.noise_rms = 32768.0 * 10 ** (noise_dbfs / 20) if noise_dbfs > -120 else 0.0
        self.caller: Caller | None = None
        self.off_hook = False  # the modem's hook
        self.extension_off_hook = False
        self._tone: _Playing | None = None  # what the exchange plays once nobody talks
        self._overlay: _Playing | None = None  # the call-waiting beep, over the conversation
        self._t: float | None = None  # audio cursor, clock seconds
        self._frac = 0.0
        self._sample = 0  # samples rendered or skipped so far (tone phase)
        self._press = 0  # numbers key presses, so a late release of an old one is ignored
        self._held: tuple[int, str] | None = None

    # --- the people (called by the simulator's public API) --------------------------------

    def ring(self, number: str | None, name: str | None, cid: CidStyle) -> None:
        if self.caller is not None and self.caller.state in ("ringing", "connected"):
            raise RuntimeError("a call is already on the line")
        self.extension_off_hook = False  # whoever talked on the extension hung up meanwhile
        caller = self.caller = Caller(number, name, cid)
        now = self._clock.monotonic()
        first_ring = now
        if cid == "before_ring":
            self._timeline.at(now, lambda: self._send_cid(caller))
            first_ring = now + self._cid_delay_s
        self._timeline.at(first_ring, lambda: self._ring_once(caller))

    def say(self, pcm: np.ndarray) -> None:
        caller = self.caller
        if caller is None or caller.state in ("gone", "taken"):
            raise RuntimeError("no caller on the line to say anything")
        caller.speech.append(np.asarray(pcm, dtype=np.int16))

    def press(self, digit: str, duration_s: float) -> None:
        """One key, one tone for ``duration_s``; a new key first ends the one still held."""
        if self._held is not None:
            self._release(self._held)
        self._press += 1
        held = self._held = (self._press, digit)
        self._observer.on_key(digit, True)
        self._timeline.at(self._clock.monotonic() + duration_s, lambda: self._release(held))

    def hang_up(self, style: HangUpStyle) -> None:
        caller = self.caller
        if caller is None or caller.state in ("gone", "taken"):
            raise RuntimeError("no caller on the line to hang up")
        if caller.state == "ringing":
            self.abandon()
            return
        caller.speech.clear()
        if style == "never":
            return  # silent from now on, the line stays up: only the box's cap ends this
        caller.state = "gone"
        self._overlay = None
        when = self._clock.monotonic() + self._hangup_delay_s
        self._timeline.at(when, lambda: self._after_hang_up(caller, style))

    def abandon(self) -> None:
        caller = self.caller
        if caller is None or caller.state != "ringing":
            raise RuntimeError("only a ringing caller can give up before the answer")
        caller.state = "gone"  # the rings simply stop; nothing announces it

    def pick_up_extension(self) -> None:
        caller = self.caller
        self.extension_off_hook = True
        if caller is not None and caller.state == "ringing":
            caller.state = "taken"  # the bell stops: a person answered
        self._observer.on_extension(True)

    def put_down_extension(self) -> None:
        self.extension_off_hook = False
        caller = self.caller
        if caller is not None and caller.state == "taken":
            caller.state = "gone"
        self._observer.on_extension(False)

    def call_waiting(self, number: str, name: str | None) -> None:
        caller = self.caller
        if caller is None or caller.state != "connected" or not self.off_hook:
            raise RuntimeError("call waiting needs a call in progress")
        self._overlay = _Playing(self.country.call_waiting, self._sample, "call_waiting")
        self._observer.on_tone("call_waiting")
        cid = CallerIdData(number, name)
        at = self._clock.monotonic() + _CIDCW_DELAY_S
        self._timeline.at(at, lambda: self._observer.on_caller_id(cid, waiting=True) if self.off_hook else None)

    # --- the modem's hook -------------------------------------------------------------------

    def set_hook(self, off_hook: bool) -> None:
        if off_hook == self.off_hook:
            return
        self.off_hook = off_hook
        caller = self.caller
        if off_hook:
            if caller is not None and caller.state == "ringing":
                caller.state = "connected"  # answered
            elif caller is None or caller.state == "gone":
                # Nobody there: the exchange offers a dial tone (telephony.md 6.3).
                self._tone = _Playing(self.country.dial_tone, self._sample, "dial_tone")
            return
        self._tone = self._overlay = None
        if caller is not None and caller.state == "connected":
            # The box let go: the caller goes on with the person on the extension, or is gone.
            caller.state = "taken" if self.extension_off_hook else "gone"

    def current_tone(self) -> ToneKind | None:
        """The tone a chipset's detector hears now (a new stream reports it again)."""
        if not self.off_hook or self._tone is None:
            return None
        return self._tone.kind

    # --- audio ------------------------------------------------------------------------------

    def audio_until(self, t: float, rate: int) -> LineAudio:
        """What the line carries from the cursor to ``t``, at ``rate`` samples per second."""
        n = self._count(t, rate)
        return self._render(n, rate, keep=True)

    def skip_until(self, t: float, rate: int) -> None:
        """Nobody listens until ``t``: the audio (the caller's words too) is gone."""
        n = self._count(t, rate)
        if n:
            self._render(n, rate, keep=False)

    def _count(self, t: float, rate: int) -> int:
        if self._t is None:
            self._t = t
        wanted = max(0.0, (t - self._t) * rate + self._frac)
        n = int(wanted)
        self._frac = wanted - n
        self._t = max(self._t, t)
        return n

    def _render(self, n: int, rate: int, *, keep: bool) -> LineAudio:
        start = self._sample
        self._sample += n
        caller = self.caller
        talking = caller is not None and caller.state == "connected" and self.off_hook
        taken = caller is not None and caller.state == "taken" and self.off_hook
        voiced = False
        spoken = _NO_SAMPLES
        if talking:
            assert caller is not None
            spoken = _take_speech(caller, n)
        if not keep:
            return _EMPTY
        pcm = np.zeros(n, dtype=np.float64)
        noisy = np.zeros(n, dtype=bool)
        if not self.off_hook:
            return LineAudio(pcm.astype(np.int32), noisy, False)
        if talking:
            pcm[: spoken.size] = spoken
            noisy[spoken.size :] = True  # the silent caller's line: noise, not digital zero
            voiced = spoken.size > 0
        elif taken:
            noisy[:] = True
        elif self._tone is not None:
            pcm += self._tone.tone.render(start - self._tone.start, n, rate)
            noisy[:] = True
        # else: the far end is gone and no tone plays (yet): a dead, digitally silent line.
        if self.extension_off_hook and (talking or taken):
            pcm += _voice(start, n, rate)
            voiced = True
        if self._overlay is not None:
            pcm += self._overlay.tone.render(start - self._overlay.start, n, rate)
        return LineAudio(np.rint(pcm).astype(np.int32), noisy, voiced)

    # --- what the exchange does on its own ---------------------------------------------------

    def _ring_once(self, caller: Caller) -> None:
        if caller is not self.caller or caller.state != "ringing":
            return
        if self.off_hook:
            caller.state = "gone"  # the box is off-hook: this caller hears busy
            return
        if caller.rings >= self._rings_until_abandon:
            caller.state = "gone"
            return
        caller.rings += 1
        now = self._clock.monotonic()
        if caller.rings == 1 and caller.cid == "bellcore":
            self._timeline.at(now + self._cid_delay_s, lambda: self._send_cid(caller))
        self._timeline.at(now + self._ring_period_s, lambda: self._ring_once(caller))
        self._observer.on_ring(caller.rings)  # last: a modem auto-answering changes the state

    def _send_cid(self, caller: Caller) -> None:
        if caller is self.caller and caller.state == "ringing" and caller.number is not None:
            self._observer.on_caller_id(CallerIdData(caller.number, caller.name), waiting=False)

    def _after_hang_up(self, caller: Caller, style: HangUpStyle) -> None:
        if caller is not self.caller or not self.off_hook:
            return
        match style:
            case "dial_tone":
                self._tone = _Playing(self.country.dial_tone, self._sample, "dial_tone")
                self._observer.on_tone("dial_tone")
            case "dial_tone_only":
                self._tone = _Playing(self.country.dial_tone, self._sample, None)
            case "busy":
                self._tone = _Playing(self.country.busy, self._sample, "busy")
                self._observer.on_tone("busy")
            case "loop_drop":
                self._observer.on_loop_drop()
            case "silence":
                pass

    def _release(self, held: tuple[int, str]) -> None:
        if self._held != held:
            return  # already released by the next key
        self._held = None
        self._observer.on_key(held[1], False)


_EMPTY: Final = LineAudio(np.zeros(0, dtype=np.int32), np.zeros(0, dtype=bool), False)
_NO_SAMPLES: Final = np.zeros(0, dtype=np.int16)


def _take_speech(caller: Caller, n: int) -> np.ndarray:
    """Up to ``n`` samples of the caller's queued words, taken off the queue."""
    taken: list[np.ndarray] = []
    count = 0
    while caller.speech and count < n:
        head = caller.speech[0]
        part = head[: n - count]
        taken.append(part)
        count += part.size
        if part.size == head.size:
            caller.speech.pop(0)
        else:
            caller.speech[0] = head[part.size :]
    return np.concatenate(taken) if taken else _NO_SAMPLES


def _voice(start: int, n: int, rate: int) -> np.ndarray:
    """A person talking, well enough for energy and "someone is there" checks.

    A 130 Hz voiced buzz with four harmonics, syllables at 3.5 per second, a
    breath pause every 2.4 s. Not speech, but not a steady tone either.
    """
    t = (start + np.arange(n)) / rate
    buzz = sum(a * np.sin(2 * np.pi * 130.0 * k * t) for k, a in ((1, 1.0), (2, 0.6), (3, 0.4), (4, 0.25)))
    syllables = 0.5 * (1 - np.cos(2 * np.pi * 3.5 * t))
    breathing = np.mod(t, 2.4) < 1.8
    return np.asarray(buzz * syllables * breathing * _VOICE_LEVEL, dtype=np.float64)

