"""One turn of the caller, and the two ways the box hears and speaks.

``Listener.listen`` returns what the caller did this turn; ``Speaker.say`` speaks
one reply. The audio pair runs the real chain (line → resampler → VAD →
end-pointer → ASR; TTS → resampler → line); the text pair (simulate ``--text``)
injects and collects words. ``CallSession`` is the same for both.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, replace
from typing import Any, Final, Protocol

import numpy as np

from appliance.audio import FRAME_MS, LINE_RATE_HZ, MODEL_RATE_HZ
from appliance.audio.framing import int16_to_float32
from appliance.audio.endpoint import (
    EndpointSettings,
    Endpointer,
    NoInput,
    Paused,
    SpeechStarted,
    TurnEnded,
)
from appliance.audio.resample import StreamResampler
from appliance.audio.vad import VoiceActivity
from appliance.bargein import BargeIn, BargeInWatch
from appliance.clock import Clock
from appliance.line.base import Call, Dtmf, Inbound
from appliance.line.sim.line import KeptSilent, Said, SimCall
from appliance.speech.asr import Recognizer
from appliance.speech.tts import Synthesizer, split_for_speech, to_line_frames

_LOGGER = logging.getLogger(__name__)
_PRE_ROLL_S: Final = 0.3  # audio kept before the VAD's speech start: onsets are soft
_POST_ROLL_S: Final = 0.15
# Recognition starts this far into a pause, on what was said so far, while the
# end-pointer waits out the rest of the silence (0.4-1.2 s): most turns are over
# by then and their transcript is ready sooner. Past the post-roll, so the
# early audio is the same as the final one would be.
_EARLY_ASR_S: Final = 0.2


@dataclass(frozen=True, slots=True)
class Heard:
    text: str
    audio_s: float = 0.0
    endpoint_s: float = 0.0
    """Trailing silence the end-pointer waited for before deciding the turn was over."""
    asr_ms: int = 0
    decided_at: float = 0.0
    """Monotonic time of the end-of-turn decision (``Clock.monotonic``)."""
    speech_started_at: float | None = None
    """Monotonic time the VAD first heard this turn's speech (audio mode only)."""
    language: str | None = None
    """The caller's language, when the recognizer settled it on this turn (only on calls
    offering several languages; ``appliance.speech.language``). None: nothing new."""


@dataclass(frozen=True, slots=True)
class Pressed:
    digits: str
    """Keys pressed in one go ("12031980"), ended by '#', a pause, or a bound on length."""
    decided_at: float = 0.0


@dataclass(frozen=True, slots=True)
class Silent:
    after_s: float
    decided_at: float = 0.0


@dataclass(frozen=True, slots=True)
class HungUp:
    pass


Turn = Heard | Pressed | Silent | HungUp

# How long a pause ends the turn, by what the assistant just asked for: a yes/no
# answer is short, a date of birth or a phone number is dictated with pauses.
_DIGIT_PAUSE_S: Final = 3.0  # a pause this long between keys ends the entry
_MAX_DIGITS: Final = 16


_EXPECT_BY_ASK: Final = {
    # The opening request is the longest answer and has pauses ("Bonjour, ... euh ...");
    # cutting it at the first comma makes a half-duplex line talk over the caller.
    "request": "long",
    "confirm": "short",
    "anything_else": "short",
    "choice": "normal",
    "birth_date": "long",
    "phone": "long",
    "message": "long",
}


def expectation_for(ask: str | None) -> str:
    return _EXPECT_BY_ASK.get(ask or "", "normal")


class Listener(Protocol):
    async def listen(self, ask: str | None) -> Turn: ...


class Speaker(Protocol):
    async def say(self, text: str, on_first_audio: Callable[[], None], *, interruptible: bool = True) -> int:
        """Speak ``text``; call ``on_first_audio`` as the first sample goes out; return ms spoken.

        ``interruptible=False``: the caller cannot cut it (the automated-assistant
        disclosure, an emergency instruction); it is said to the end.
        """


class AudioListener:
    """Line audio → 16 kHz → VAD → end-pointer → ASR."""

    def __init__(
        self,
        call: Call,
        vad: VoiceActivity,
        recognizer: Recognizer,
        clock: Clock,
        settings: EndpointSettings,
        *,
        vocabulary: Callable[[str | None], tuple[str, ...]] = lambda ask: (),
        inbound: AsyncIterator[Inbound] | None = None,
    ) -> None:
        """``inbound``: the call's incoming side when the speaker reads it too (barge-in,
        ``appliance.bargein.SharedInbound``); by default the listener reads the call alone."""
        self._inbound: AsyncIterator = inbound if inbound is not None else call.inbound()
        self._vad = vad
        self._recognizer = recognizer
        self._clock = clock
        self._endpointer = Endpointer(settings, pause_s=_EARLY_ASR_S)
        self._vocabulary = vocabulary
        self._hotwords: tuple[str, ...] = ()
        self._on_turn_end: Callable[[float], None] = lambda speech_ended_at: None

    def when_turn_ends(self, callback: Callable[[float], None]) -> None:
        """Call ``callback(speech_ended_at)`` (monotonic) as each spoken turn is decided,
        before its recognition is awaited (``appliance.acknowledgement``)."""
        self._on_turn_end = callback

    async def listen(self, ask: str | None) -> Turn:
        self._endpointer.reset()
        self._endpointer.expect(expectation_for(ask))
        self._vad.reset()
        self._hotwords = self._vocabulary(ask)
        # In float: an int16 stream is dithered by soxr, so the same call would be
        # heard slightly differently each time (and Whisper flips on marginal words).
        upsample = StreamResampler(LINE_RATE_HZ, MODEL_RATE_HZ, dtype=np.float32)
        # Everything since listening began, 16 kHz, joined only once a turn ends:
        # concatenating on every 20 ms frame would copy the whole turn each time.
        heard: list[np.ndarray] = []
        window_s = self._vad.window_s
        speech_started_at: float | None = None
        early: _EarlyRecognition | None = None
        try:
            async for item in self._inbound:
                if isinstance(item, Dtmf):
                    return await self._collect_keys(item.digit)
                chunk = upsample.process(int16_to_float32(item))
                heard.append(chunk)
                for is_speech in self._vad.accept(chunk):
                    match self._endpointer.push(is_speech, window_s):
                        case SpeechStarted():
                            speech_started_at = self._clock.monotonic()
                        case Paused(speech_start_s=start, speech_end_s=end):
                            # The caller went on after an earlier pause: that recognition is
                            # stale. While it still decodes, a new one would only queue
                            # behind it on the same model, so this pause goes without.
                            if early is not None and early.running():
                                continue
                            audio = np.concatenate(heard)
                            early = _EarlyRecognition(start, end, self._transcribe(audio, start, end))
                        case TurnEnded(speech_start_s=start, speech_end_s=end, decided_at_s=decided):
                            decided_at = self._clock.monotonic()
                            self._on_turn_end(decided_at - max(0.0, decided - end))
                            if early is not None and early.covers(start, end):
                                heard_turn = await early.result()
                                early = None
                            else:
                                audio = np.concatenate(heard) if heard else np.zeros(0, dtype=np.float32)
                                heard_turn = await self._transcribe(audio, start, end)
                            return replace(heard_turn, endpoint_s=max(0.0, decided - end), decided_at=decided_at,
                                           speech_started_at=speech_started_at)
                        case NoInput(after_s=after):
                            return Silent(after, self._clock.monotonic())
            return HungUp()
        finally:
            if early is not None:
                early.forget()

    async def _collect_keys(self, first: str) -> Pressed:
        """A caller keying a date or a number presses several keys: gather them."""
        digits, quiet_s = first, 0.0
        frame_s = FRAME_MS / 1000
        while not digits.endswith("#") and len(digits) < _MAX_DIGITS and quiet_s < _DIGIT_PAUSE_S:
            item = await anext(self._inbound, None)
            if item is None:
                break
            if isinstance(item, Dtmf):
                digits, quiet_s = digits + item.digit, 0.0
            else:
                quiet_s += frame_s  # counted in audio time, like the end-pointer
        return Pressed(digits.rstrip("#"), self._clock.monotonic())

    async def _transcribe(self, heard: np.ndarray, start_s: float, end_s: float) -> Heard:
        """The speech between ``start_s`` and ``end_s``, recognized; the end-of-turn
        figures (``endpoint_s``, ``decided_at``) are the caller's to fill in."""
        lo = max(0, int((start_s - _PRE_ROLL_S) * MODEL_RATE_HZ))
        hi = min(len(heard), int((end_s + _POST_ROLL_S) * MODEL_RATE_HZ))
        speech = heard[lo:hi]
        # Decoding is CPU-bound native code; on the loop it would stall the line
        # reader and the caller's audio would be lost, not merely late.
        transcript = await asyncio.to_thread(self._recognizer.transcribe, speech, hotwords=self._hotwords)
        return Heard(
            text=transcript.text,
            audio_s=len(speech) / MODEL_RATE_HZ,
            asr_ms=round(transcript.decode_s * 1000),
            decided_at=0.0,
            language=transcript.detected_language,
        )


class _EarlyRecognition:
    """Recognition started at a pause, before the end-pointer decided the turn.

    Its transcript is the turn's only if the turn ends on that same speech; if the
    caller spoke again it is forgotten (the decoding thread runs to its end, the
    result is dropped and any error with it).
    """

    def __init__(self, start_s: float, end_s: float, decoding: Coroutine[Any, Any, Heard]) -> None:
        self._span = (start_s, end_s)
        self._task = asyncio.ensure_future(decoding)

    def covers(self, start_s: float, end_s: float) -> bool:
        return self._span == (start_s, end_s)

    def running(self) -> bool:
        return not self._task.done()

    async def result(self) -> Heard:
        return await self._task

    def forget(self) -> None:
        self._task.cancel()
        self._task.add_done_callback(lambda task: task.cancelled() or task.exception())


class AudioSpeaker:
    """Reply text → sentences → TTS (one sentence ahead) → 8 kHz frames → line.

    With a ``BargeInWatch`` (sharing its ``SharedInbound`` with the listener) the
    caller can interrupt what is ``interruptible``: the playback stops and what
    the caller said or pressed starts the next turn (``appliance.bargein``).
    Without one, or for what must be said whole, the box talks to the end and
    what came in meanwhile is dropped.
    """

    def __init__(self, call: Call, synthesizer: Synthesizer, *, barge_in: BargeInWatch | None = None) -> None:
        self._call = call
        self._synth = synthesizer
        self._barge_in = barge_in
        self.barged_in: BargeIn | None = None
        """How the caller interrupted the last ``say``; None when it was said to the end."""

    async def say(self, text: str, on_first_audio: Callable[[], None], *, interruptible: bool = True) -> int:
        self.barged_in = None
        sentences = split_for_speech(text)
        if not sentences:
            return 0

        async def frames() -> AsyncIterator[np.ndarray]:
            # Speech starts as soon as the first sentence is ready; the next one is
            # synthesized while this one plays.
            next_pcm = asyncio.create_task(asyncio.to_thread(self._synth.synthesize, sentences[0]))
            first = True
            try:
                for i in range(len(sentences)):
                    pcm = await next_pcm
                    if i + 1 < len(sentences):
                        next_pcm = asyncio.create_task(asyncio.to_thread(self._synth.synthesize, sentences[i + 1]))
                    for frame in to_line_frames(pcm, self._synth.sample_rate):
                        if first:
                            on_first_audio()
                            first = False
                        yield frame
            finally:
                if not next_pcm.done():
                    next_pcm.cancel()

        watch = self._barge_in
        if watch is None or not watch.settings.enabled:
            sent = await self._call.play(frames())
            self._call.discard_received()  # what came in while the box spoke is not the next turn
            return sent * FRAME_MS
        playback = await watch.play(self._call, frames(), interruptible=interruptible)
        self.barged_in = playback.barge_in
        return playback.spoken_ms


class TextListener:
    """simulate --text: the caller's words arrive as transcripts."""

    def __init__(self, call: SimCall, clock: Clock) -> None:
        self._call = call
        self._clock = clock

    async def listen(self, ask: str | None) -> Turn:
        item = await self._call.scripted()
        now = self._clock.monotonic()
        match item:
            case Said(text=text, audio_s=audio_s, asr_ms=asr_ms, heard_at=heard_at, language=language):
                return Heard(text=text, audio_s=audio_s, asr_ms=asr_ms, decided_at=now if heard_at is None else heard_at,
                             language=language)
            case KeptSilent(seconds=seconds):
                return Silent(seconds, now)
            case Dtmf(digit=digit):
                digits = digit + self._call.pending_keys()
                return Pressed(digits.rstrip("#"), now)
            case _:
                return HungUp()


class TextSpeaker:
    """simulate --text: the reply is handed over as text, no audio."""

    async def say(self, text: str, on_first_audio: Callable[[], None], *, interruptible: bool = True) -> int:
        on_first_audio()
        return 0
