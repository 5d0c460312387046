"""Barge-in: the caller speaks (or presses a key) while the box talks, and the box stops.

Two ways a caller interrupts, by what the line carries while the box plays:

    full duplex (GSM, sound card)  the caller's voice, mixed with the box's own echo:
        inbound frame ─▶ EchoGate (not the box's echo?) ┐
                      └▶ resample 16 kHz ─▶ VAD (speech?) ┴▶ 6 of the last 8 frames ─▶ stop
    half duplex (analog modem in +VTX)  nothing but key presses (``<DLE>digit``):
        Dtmf ─▶ stop

A key press stops playback on every line. What the caller said or pressed is
not lost: the frames from the speech onset (with a pre-roll, onsets are soft),
or the key, are put back at the front of the ``SharedInbound`` that the
listener reads next, so the next turn starts with them.

Why this module sits beside ``turns.py`` and not in ``audio/``: it knows the
line (``Call``, ``Dtmf``, cancelling a playback task); ``audio/echo.py`` is the
pure signal part and knows nothing of calls.

Decisions are made in audio time (inbound frames counted), never the wall
clock: a test pushes a call's audio through instantly and reads the same
reaction time a real line would give (``BargeIn.reaction_ms``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Final, Literal

import numpy as np

from appliance.audio import FRAME_MS, LINE_RATE_HZ, MODEL_RATE_HZ
from appliance.audio.echo import EchoGate, EchoSettings
from appliance.audio.framing import int16_to_float32
from appliance.audio.resample import StreamResampler
from appliance.audio.vad import VoiceActivity
from appliance.errors import ConfigError
from appliance.line.base import Call, Dtmf, Inbound

_LOGGER = logging.getLogger(__name__)

# soxr's low-quality setting: 25-60 ms of delay instead of HQ's ~100 ms bursts,
# still clean across the telephone band; every ms here is reaction time.
_VAD_RESAMPLE_QUALITY: Final = "LQ"
# A key press lasts 40-200 ms, often more on a handset; the stop and the modem's
# switch back to +VRX take well under that, so the key can still be down after.
_KEY_STILL_HELD_FRAMES: Final = 25


@dataclass(frozen=True, kw_only=True)
class BargeInSettings:
    enabled: bool = True
    """Off: the box always finishes what it says (today's behaviour on every line)."""
    confirm_frames: int = 6
    """20 ms frames of caller speech, among the last ``window_frames``, that stop the box (120 ms)."""
    window_frames: int = 8
    """Frames the confirmation looks back over: a caller's speech has short dips."""
    vad_hold_ms: int = 160
    """A VAD speech flag this recent still counts: the VAD decides on 32 ms windows, a little late."""
    pre_roll_ms: int = 300
    """Audio before the detected onset handed to the listener: speech starts softly."""
    vad_threshold: float = 0.3
    """For the barge-in's own silero VAD (the listener's stays at its 0.5). The echo gate
    already says the sound is not the box; the VAD only has to say it is a voice, and at
    0.5 silero needs 200-300 ms to trust a soft onset after quiet (measured: max 340 ms
    against 140 ms at 0.3 on the same lines, no false stop at either)."""
    echo: EchoSettings = field(default_factory=EchoSettings)

    def __post_init__(self) -> None:
        if not 2 <= self.window_frames <= 25:
            raise ConfigError(f"barge_in.window_frames must be 2-25, got {self.window_frames}")
        if not 1 <= self.confirm_frames <= self.window_frames:
            raise ConfigError(
                f"barge_in.confirm_frames must be 1-{self.window_frames} (window_frames), got {self.confirm_frames}"
            )
        if not 0 <= self.vad_hold_ms <= 500:
            raise ConfigError(f"barge_in.vad_hold_ms must be 0-500 ms, got {self.vad_hold_ms}")
        if not 0.05 <= self.vad_threshold <= 0.95:
            raise ConfigError(f"barge_in.vad_threshold must be 0.05-0.95, got {self.vad_threshold}")
        if not 0 <= self.pre_roll_ms <= 1000:
            raise ConfigError(f"barge_in.pre_roll_ms must be 0-1000 ms, got {self.pre_roll_ms}")


@dataclass(frozen=True, slots=True)
class BargeIn:
    """The caller interrupted the box."""

    by: Literal["speech", "key"]
    heard_ms: int
    """Audio heard since playback began when the box decided (inbound frames x 20 ms)."""
    onset_ms: int
    """Where the caller's speech (or key) began, on the same scale."""
    items: tuple[Inbound, ...] = ()
    """What goes to the listener as the start of the next turn: pre-roll + speech, or the key."""

    @property
    def reaction_ms(self) -> int:
        """From the caller's onset to the decision, in audio time (the box stops right after)."""
        return self.heard_ms - self.onset_ms


@dataclass(frozen=True, slots=True)
class Playback:
    frames: int
    """Frames handed to the line before it ended or was stopped."""
    barge_in: BargeIn | None = None

    @property
    def spoken_ms(self) -> int:
        return self.frames * FRAME_MS


class BargeInDetector:
    """Pure: played frames and inbound items in, a ``BargeIn`` out once the caller is sure.

    ``full_duplex=False`` (an analog modem in +VTX): only a key press counts, the
    audio (if any) is not the caller's.
    """

    def __init__(
        self, settings: BargeInSettings, vad: VoiceActivity | None, *, full_duplex: bool, gate: EchoGate | None = None
    ) -> None:
        self.settings = settings
        self.full_duplex = full_duplex
        self.gate = gate or EchoGate(settings.echo)
        self.gate.next_playback()
        self._vad = vad
        if vad is not None:
            vad.reset()
        self._upsample = StreamResampler(LINE_RATE_HZ, MODEL_RATE_HZ, quality=_VAD_RESAMPLE_QUALITY)
        self._heard = 0
        self._last_speech: int | None = None  # inbound frame of the last VAD speech flag
        self._flags: collections.deque[tuple[int, bool]] = collections.deque(maxlen=settings.window_frames)
        keep = (settings.pre_roll_ms // FRAME_MS) + settings.window_frames
        self._recent: collections.deque[tuple[int, np.ndarray]] = collections.deque(maxlen=keep)

    def played(self, frame: np.ndarray) -> None:
        if self.full_duplex:
            self.gate.played(frame)

    def heard(self, item: Inbound) -> BargeIn | None:
        if isinstance(item, Dtmf):
            at = self._heard * FRAME_MS
            return BargeIn("key", at, at, (item,))
        position = self._heard
        self._heard += 1
        if not self.full_duplex:
            return None
        self._recent.append((position, item))
        voice = self._speech_near(item, position)  # fed every frame: the VAD needs the whole stream
        self._flags.append((position, self.gate.heard(item).caller))
        hits = [p for p, flagged in self._flags if flagged]
        # The VAD confirms, it does not count: after a quiet moment silero needs 100-200 ms
        # to trust an onset, and the frames the gate flagged meanwhile are the caller's.
        if len(hits) < self.settings.confirm_frames or not voice:
            return None
        onset = hits[0]
        first_kept = onset - self.settings.pre_roll_ms // FRAME_MS
        items = tuple(frame for p, frame in self._recent if p >= first_kept)
        return BargeIn("speech", self._heard * FRAME_MS, onset * FRAME_MS, items)

    def _speech_near(self, frame: np.ndarray, position: int) -> bool:
        """The VAD heard speech at or shortly before this frame (always True without a VAD)."""
        if self._vad is None:
            return True
        chunk = self._upsample.process(frame)
        if chunk.size and any(self._vad.accept(int16_to_float32(chunk))):
            self._last_speech = position
        return self._last_speech is not None and (position - self._last_speech) * FRAME_MS <= self.settings.vad_hold_ms


class SharedInbound:
    """The one reader of a call's ``inbound()``, shared by the speaker and the listener.

    The speaker reads it while the box plays (to hear a barge-in) and the
    listener after; what the speaker heard of the caller's next turn is put back
    in front (``unread``). A read cancelled half-way (the playback ended) is not
    lost nor does it close the line's stream: the next reader takes it over.
    """

    def __init__(self, source: AsyncIterable[Inbound]) -> None:
        self._source: AsyncIterator[Inbound] = aiter(source)
        self._ahead: collections.deque[Inbound] = collections.deque()
        self._pending: asyncio.Future[Inbound] | None = None
        self._repeat: tuple[str, int] | None = None

    def __aiter__(self) -> SharedInbound:
        return self

    async def __anext__(self) -> Inbound:
        while True:
            if self._ahead:  # put back: already heard, never a repeat
                return self._ahead.popleft()
            item = await self._next()
            if self._repeat is not None:
                digit, frames_left = self._repeat
                if isinstance(item, Dtmf) and item.digit == digit:
                    self._repeat = None
                    continue  # the same press, reported again by a new stream
                self._repeat = (digit, frames_left - 1) if frames_left > 1 and not isinstance(item, Dtmf) else None
            return item

    def ignore_repeat(self, key: Dtmf, *, within_frames: int = _KEY_STILL_HELD_FRAMES) -> None:
        """Drop ``key`` once if the line reports it again within ``within_frames`` audio frames.

        A modem stopped by a key goes back to +VRX while the key is still down, and
        the new stream's detector reports it as a new press: one press, two digits.
        """
        self._repeat = (key.digit, within_frames)

    async def _next(self) -> Inbound:
        if self._pending is None:
            self._pending = asyncio.ensure_future(anext(self._source))
            self._pending.add_done_callback(_retrieve)
        pending = self._pending
        try:
            # Shielded: cancelling this reader must not cancel the line's read,
            # which would end the driver's inbound generator for good.
            return await asyncio.shield(pending)
        finally:
            if pending.done() and self._pending is pending:
                self._pending = None

    def unread(self, items: Iterable[Inbound]) -> None:
        """Put ``items`` back, in order, before anything not read yet."""
        self._ahead.extendleft(reversed(tuple(items)))

    def drop_audio(self) -> int:
        """Forget audio put back but not read; keep key presses (``Call.discard_received``'s rule)."""
        kept = [item for item in self._ahead if isinstance(item, Dtmf)]
        dropped = len(self._ahead) - len(kept)
        self._ahead = collections.deque(kept)
        return dropped

    def close(self) -> None:
        if self._pending is not None and not self._pending.done():
            self._pending.cancel()


def _retrieve(future: asyncio.Future[Inbound]) -> None:
    # The end of the stream (StopAsyncIteration) may come when nobody reads any more.
    if not future.cancelled():
        future.exception()


class BargeInWatch:
    """Plays frames on a call while listening for the caller; stops the playback on a barge-in."""

    def __init__(self, inbound: SharedInbound, vad: VoiceActivity | None, settings: BargeInSettings | None = None) -> None:
        self.inbound = inbound
        self.settings = settings or BargeInSettings()
        self._vad = vad
        self._gate = EchoGate(self.settings.echo)  # one per call: its echo path is learnt once

    async def play(self, call: Call, frames: AsyncIterable[np.ndarray], *, interruptible: bool = True) -> Playback:
        """Play ``frames``; stop them if the caller barges in and ``interruptible``.

        Not interruptible, the box still listens: the echo path is learnt (the
        greeting teaches it for every later reply) and key presses are kept.
        """
        full_duplex = bool(getattr(call, "full_duplex", False))
        vad = self._vad if full_duplex and interruptible else None
        detector = BargeInDetector(self.settings, vad, full_duplex=full_duplex, gate=self._gate)
        keys: list[Inbound] = []
        # What came in before the box started talking is not the next turn (as before
        # barge-in existed); dropping it also lines the echo gate up with the playback.
        call.discard_received()
        self.inbound.drop_audio()
        sent = 0

        async def handed() -> AsyncIterator[np.ndarray]:
            nonlocal sent
            async for frame in frames:
                detector.played(frame)
                sent += 1
                yield frame

        playing = asyncio.ensure_future(call.play(handed()))
        watching = asyncio.ensure_future(self._watch(detector, keys if not interruptible else None))
        try:
            await asyncio.wait((playing, watching), return_when=asyncio.FIRST_COMPLETED)
            barge_in = watching.result() if watching.done() else None
            if barge_in is None:
                if not watching.done():
                    watching.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watching
                await playing  # raises what the line raised
                call.discard_received()
                self.inbound.drop_audio()
                self.inbound.unread(keys)  # as discard_received does: a key press is never dropped
                return Playback(sent)
            playing.cancel()  # the line-level barge-in: the driver drops what it still holds
            try:
                await playing
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # we are cancelled ourselves (hang-up), not only the playback
            self.inbound.unread(barge_in.items)
            if barge_in.by == "key" and not full_duplex:  # only a modem switching streams repeats it
                self.inbound.ignore_repeat(barge_in.items[0])  # type: ignore[arg-type]
            _LOGGER.info(
                "barge-in by %s after %d ms of playback, decided %d ms after its onset",
                barge_in.by, sent * FRAME_MS, barge_in.reaction_ms,
            )
            return Playback(sent, barge_in)
        finally:
            for task in (playing, watching):
                if not task.done():
                    task.cancel()

    async def _watch(self, detector: BargeInDetector, keys: list[Inbound] | None) -> BargeIn | None:
        """Until the caller barges in (the decision) or the call ends (None).

        With ``keys`` (not interruptible) it never decides: key presses are kept there.
        """
        async for item in self.inbound:
            decision = detector.heard(item)
            if decision is None:
                continue
            if keys is None:
                return decision
            if isinstance(item, Dtmf):
                keys.append(item)
        return None


# -- measuring: the reaction time and the false stops, on audio made for it -------------------------

_REFLECTIONS: Final = ((0.0, 1.0), (3.0, 0.4), (12.0, -0.2))  # (ms after the main echo, amplitude)
_LINE_NOISE_DBFS: Final = -55.0


@dataclass(frozen=True, slots=True)
class EchoCase:
    """One line for ``reaction_figures``: an echo path, and a caller (or none)."""

    delay_ms: int
    return_loss_db: float
    caller_dbfs: float | None = None
    """The caller's speech level; None: the box's echo alone, which must never stop it."""
    caller_at_s: float = 2.0
    """When the caller starts, from the start of the playback."""
    first_reply: bool = False
    """Nothing learnt of the echo path yet (the worst case assumed); otherwise the
    gate first hears an earlier reply on the same path, as the greeting teaches it."""


@dataclass(frozen=True, slots=True)
class ReactionFigures:
    reactions_ms: tuple[int, ...]
    """Caller onset (first 20 ms of their speech on the line) to the decision, per caller case."""
    missed: int
    """Caller cases where the box never stopped."""
    false_stops: int
    """Echo-alone cases where the box stopped: must be 0."""
    echo_cases: int

    @property
    def p50_ms(self) -> int:
        ordered = sorted(self.reactions_ms)
        return ordered[len(ordered) // 2] if ordered else 0

    @property
    def max_ms(self) -> int:
        return max(self.reactions_ms, default=0)


def line_with_echo(box: np.ndarray, caller: np.ndarray | None, case: EchoCase, *, seed: int = 0) -> tuple[np.ndarray, int | None]:
    """What the box hears while it plays ``box``: its echo (delayed, attenuated, with two
    reflections), the caller from ``caller_at_s``, line noise, through G.711 µ-law.

    Returns the int16 audio and the frame where the caller's speech begins (None without one).
    """
    from appliance.audio.g711 import ulaw_decode, ulaw_encode

    rng = np.random.default_rng(seed)
    n = len(box) + int(0.5 * LINE_RATE_HZ)
    mixed = rng.standard_normal(n) * 32768.0 * 10 ** (_LINE_NOISE_DBFS / 20)
    gain = 10 ** (-case.return_loss_db / 20)
    for after_ms, amplitude in _REFLECTIONS:
        start = int((case.delay_ms + after_ms) * LINE_RATE_HZ / 1000)
        part = box[: max(0, n - start)].astype(np.float64)
        mixed[start : start + len(part)] += amplitude * gain * part
    onset: int | None = None
    if caller is not None and case.caller_dbfs is not None:
        voice = caller.astype(np.float64)
        frames = voice[: len(voice) // 160 * 160].reshape(-1, 160)
        levels = 10 * np.log10(np.mean(frames**2, axis=1) / 32768.0**2 + 1e-12)
        active = float(np.mean(10 ** (levels[levels > levels.max() - 30] / 10)))
        voice *= 10 ** ((case.caller_dbfs - 10 * np.log10(active)) / 20)
        start = int(case.caller_at_s * LINE_RATE_HZ) // 160 * 160
        part = voice[: max(0, n - start)]
        mixed[start : start + len(part)] += part
        # The onset: the first frame within 25 dB of the caller's loudest.
        onset = start // 160 + int(np.argmax(levels > levels.max() - 25))
    return ulaw_decode(ulaw_encode(np.clip(np.rint(mixed), -32768, 32767).astype(np.int16))), onset


def reaction_figures(
    box: np.ndarray,
    caller: np.ndarray,
    cases: Iterable[EchoCase],
    vad: VoiceActivity | None,
    settings: BargeInSettings | None = None,
) -> ReactionFigures:
    """Push each case through a ``BargeInDetector`` frame by frame (played and heard in
    step, as on a line) and collect the reaction times in audio time."""
    from appliance.audio.framing import to_frames

    settings = settings or BargeInSettings()
    played = to_frames(np.asarray(box, dtype=np.int16))
    reactions: list[int] = []
    missed = false_stops = echo_cases = 0
    for i, case in enumerate(cases):
        inbound, onset = line_with_echo(box, caller if case.caller_dbfs is not None else None, case, seed=i)
        gate = EchoGate(settings.echo)
        if not case.first_reply:
            earlier, _ = line_with_echo(box, None, case, seed=i + 1000)
            learning = BargeInDetector(settings, None, full_duplex=True, gate=gate)
            for k, frame in enumerate(to_frames(earlier)):
                if k < len(played):
                    learning.played(played[k])
                learning.heard(frame)
        detector = BargeInDetector(settings, vad, full_duplex=True, gate=gate)
        decision: BargeIn | None = None
        for k, frame in enumerate(to_frames(inbound)):
            if k < len(played):
                detector.played(played[k])
            if (decision := detector.heard(frame)) is not None:
                break
        if onset is None:
            echo_cases += 1
            false_stops += decision is not None
        elif decision is None:
            missed += 1
        else:
            reactions.append(decision.heard_ms - onset * FRAME_MS)
    return ReactionFigures(tuple(reactions), missed, false_stops, echo_cases)
