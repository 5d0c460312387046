"""One turn of the caller, and the two ways the box hears and speaks.

``Listener.listen`` returns what the caller did this turn; ``Speaker.say`` speaks
one reply. The audio pair runs the real chain (line → resampler → VAD →
end-pointer → ASR; TTS → resampler → line); the text pair (simulate ``--text``)
injects and collects words. ``CallSession`` is the same for both.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Final, Protocol

import numpy as np

from appliance.audio import FRAME_MS, LINE_RATE_HZ, MODEL_RATE_HZ
from appliance.audio.framing import int16_to_float32
from appliance.audio.endpoint import (
    EndpointSettings,
    Endpointer,
    NoInput,
    SpeechStarted,
    TurnEnded,
)
from appliance.audio.resample import StreamResampler
from appliance.audio.vad import VoiceActivity
from appliance.clock import Clock
from appliance.line.base import Call, Dtmf
from appliance.line.sim.line import KeptSilent, Said, SimCall
from appliance.speech.asr import Recognizer
from appliance.speech.tts import Synthesizer, split_for_speech, to_line_frames

_LOGGER = logging.getLogger(__name__)
_PRE_ROLL_S: Final = 0.3  # audio kept before the VAD's speech start: onsets are soft
_POST_ROLL_S: Final = 0.15


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
    async def say(self, text: str, on_first_audio: Callable[[], None]) -> int:
        """Speak ``text``; call ``on_first_audio`` as the first sample goes out; return ms spoken."""


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
    ) -> None:
        self._inbound: AsyncIterator = call.inbound()
        self._vad = vad
        self._recognizer = recognizer
        self._clock = clock
        self._endpointer = Endpointer(settings)
        self._vocabulary = vocabulary
        self._hotwords: tuple[str, ...] = ()

    async def listen(self, ask: str | None) -> Turn:
        self._endpointer.reset()
        self._endpointer.expect(expectation_for(ask))
        self._vad.reset()
        self._hotwords = self._vocabulary(ask)
        upsample = StreamResampler(LINE_RATE_HZ, MODEL_RATE_HZ)
        # Everything since listening began, 16 kHz, joined only once a turn ends:
        # concatenating on every 20 ms frame would copy the whole turn each time.
        heard: list[np.ndarray] = []
        window_s = self._vad.window_s
        speech_started_at: float | None = None
        async for item in self._inbound:
            if isinstance(item, Dtmf):
                return await self._collect_keys(item.digit)
            chunk = int16_to_float32(upsample.process(item))
            heard.append(chunk)
            for is_speech in self._vad.accept(chunk):
                match self._endpointer.push(is_speech, window_s):
                    case SpeechStarted():
                        speech_started_at = self._clock.monotonic()
                    case TurnEnded(speech_start_s=start, speech_end_s=end, decided_at_s=decided):
                        decided_at = self._clock.monotonic()
                        audio = np.concatenate(heard) if heard else np.zeros(0, dtype=np.float32)
                        heard_turn = await self._transcribe(audio, start, end, decided - end, decided_at)
                        return replace(heard_turn, speech_started_at=speech_started_at)
                    case NoInput(after_s=after):
                        return Silent(after, self._clock.monotonic())
        return HungUp()

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

    async def _transcribe(
        self, heard: np.ndarray, start_s: float, end_s: float, endpoint_s: float, decided_at: float
    ) -> Heard:
        lo = max(0, int((start_s - _PRE_ROLL_S) * MODEL_RATE_HZ))
        hi = min(len(heard), int((end_s + _POST_ROLL_S) * MODEL_RATE_HZ))
        speech = heard[lo:hi]
        # Decoding is CPU-bound native code; on the loop it would stall the line
        # reader and the caller's audio would be lost, not merely late.
        transcript = await asyncio.to_thread(self._recognizer.transcribe, speech, hotwords=self._hotwords)
        return Heard(
            text=transcript.text,
            audio_s=len(speech) / MODEL_RATE_HZ,
            endpoint_s=max(0.0, endpoint_s),
            asr_ms=round(transcript.decode_s * 1000),
            decided_at=decided_at,
        )


class AudioSpeaker:
    """Reply text → sentences → TTS (one sentence ahead) → 8 kHz frames → line."""

    def __init__(self, call: Call, synthesizer: Synthesizer) -> None:
        self._call = call
        self._synth = synthesizer

    async def say(self, text: str, on_first_audio: Callable[[], None]) -> int:
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

        sent = await self._call.play(frames())
        self._call.discard_received()  # what came in while the box spoke is not the next turn
        return sent * FRAME_MS


class TextListener:
    """simulate --text: the caller's words arrive as transcripts."""

    def __init__(self, call: SimCall, clock: Clock) -> None:
        self._call = call
        self._clock = clock

    async def listen(self, ask: str | None) -> Turn:
        item = await self._call.scripted()
        now = self._clock.monotonic()
        match item:
            case Said(text=text, audio_s=audio_s, asr_ms=asr_ms, heard_at=heard_at):
                return Heard(text=text, audio_s=audio_s, asr_ms=asr_ms, decided_at=now if heard_at is None else heard_at)
            case KeptSilent(seconds=seconds):
                return Silent(seconds, now)
            case Dtmf(digit=digit):
                digits = digit + self._call.pending_keys()
                return Pressed(digits.rstrip("#"), now)
            case _:
                return HungUp()


class TextSpeaker:
    """simulate --text: the reply is handed over as text, no audio."""

    async def say(self, text: str, on_first_audio: Callable[[], None]) -> int:
        on_first_audio()
        return 0
