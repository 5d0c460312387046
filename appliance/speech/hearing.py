"""Hearing a spoken clip the way a call hears a turn: VAD trimming, then the call's recognizer.

A phone call listens through the line: VAD flags feed the end-pointer, the turn
is cut out with a little audio either side, and ``Recognizer.transcribe`` runs
on it in a worker thread (``appliance.turns.AudioListener``). The Test call
page's microphone sends a finished clip instead: the browser has already decided
when the staff member stopped talking (their button, or a pause). What is left
is done here with the same models and the same margins: find the speech with
the VAD, drop blips too short to be a turn (the click of the button that ended
the recording), keep the call's pre- and post-roll, and transcribe.

``Ears.hear`` is blocking CPU-bound native code, like ``transcribe``: callers
run it in a worker thread. ``EarsLoader`` gives the running core's models when
it has them, and loads VAD and recognizer once, on first use, when it has none
(the plain simulated line starts without models: typed test calls need none).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np

from appliance.audio import MODEL_RATE_HZ
from appliance.audio.vad import SileroVad, VoiceActivity
from appliance.config import ModelChoice, SpeechSettings
from appliance.errors import ApplianceError, SpeechError
from appliance.models import ModelCatalog
from appliance.speech.asr import Recognizer
from appliance.speech.loading import ASR_RUNTIMES, SpeechModels, _expect_runtime, load_recognizer
from appliance.turns import _POST_ROLL_S, _PRE_ROLL_S

_LOGGER = logging.getLogger(__name__)

MAX_CLIP_S: Final = 20.0  # a phone turn is cut at 20 s by the end-pointer (max_turn_s); so is a spoken one
_INT16_SCALE: Final = 32768.0  # as appliance.audio.framing: int16 -> float32 -> int16 is exact

EarsState = Literal["idle", "loading", "ready", "failed"]


@dataclass(frozen=True, slots=True)
class HeardClip:
    text: str
    """What the recognizer understood; empty when no speech was found or nothing trustworthy heard."""
    clip_s: float
    """Length of the clip as recorded."""
    speech_s: float
    """Length of the audio kept around the speech and transcribed (0: the VAD found no speech)."""
    asr_ms: int
    """Time the recognizer took, as a call's turn reports it."""


def pcm16_to_clip(data: bytes) -> np.ndarray:
    """Little-endian signed 16-bit mono samples -> float32 in [-1, 1) at the same rate."""
    if len(data) % 2:
        raise ValueError("16-bit PCM has an even number of bytes")
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / np.float32(_INT16_SCALE)


class Ears:
    """A call's VAD and recognizer, applied to one finished clip at 16 kHz."""

    def __init__(
        self, new_vad: Callable[[], VoiceActivity], recognizer: Recognizer, *, min_speech_s: float = 0.25
    ) -> None:
        self._new_vad = new_vad
        self._recognizer = recognizer
        self._min_speech_s = min_speech_s
        """The end-pointer's own threshold: shorter bursts (coughs, clicks) are not a turn."""

    def hear(self, clip: np.ndarray, *, hotwords: Sequence[str] = ()) -> HeardClip:
        """Trim ``clip`` (1-D float32 at 16 kHz) to its speech and transcribe it (blocking)."""
        if clip.ndim != 1 or clip.dtype != np.float32:
            raise TypeError(f"hear expects 1-D float32 audio at 16 kHz, got {clip.dtype} {clip.shape}")
        clip_s = clip.size / MODEL_RATE_HZ
        if clip_s > MAX_CLIP_S + 0.01:
            raise SpeechError("clip-too-long", f"{clip_s:.1f} s of audio; at most {MAX_CLIP_S:.0f} s")
        span = self.speech_span(clip)
        if span is None:
            return HeardClip(text="", clip_s=clip_s, speech_s=0.0, asr_ms=0)
        lo = max(0, int((span[0] - _PRE_ROLL_S) * MODEL_RATE_HZ))
        hi = min(clip.size, int((span[1] + _POST_ROLL_S) * MODEL_RATE_HZ))
        speech = clip[lo:hi]
        transcript = self._recognizer.transcribe(speech, hotwords=tuple(hotwords))
        return HeardClip(
            text=transcript.text,
            clip_s=clip_s,
            speech_s=speech.size / MODEL_RATE_HZ,
            asr_ms=round(transcript.decode_s * 1000),
        )

    def speech_span(self, clip: np.ndarray) -> tuple[float, float] | None:
        """Start and end (seconds) from the first to the last run of speech long enough
        to be a turn; None when there is none.

        A fresh detector per clip: VAD state is per call, and two staff members may
        speak to two test calls at once.
        """
        vad = self._new_vad()
        window_s = vad.window_s
        flags = vad.accept(clip)
        runs: list[tuple[int, int]] = []  # [first, last + 1) window indices of each run of speech
        start: int | None = None
        for i, is_speech in enumerate([*flags, False]):
            if is_speech and start is None:
                start = i
            elif not is_speech and start is not None:
                runs.append((start, i))
                start = None
        kept = [(a, b) for a, b in runs if (b - a) * window_s >= self._min_speech_s]
        if not kept:
            return None
        return kept[0][0] * window_s, kept[-1][1] * window_s


def load_ears(choice: ModelChoice, settings: SpeechSettings, catalog: ModelCatalog | None = None) -> Ears:
    """VAD and recognizer as ``load_speech`` loads them (same manifests, same
    parameters, warmed up), without the voice: a spoken test call needs no TTS."""
    catalog = catalog or ModelCatalog(choice.manifest_dir, choice.models_dir)
    vad_manifest = _expect_runtime(catalog, choice.vad, "vad", ("sherpa-onnx",))
    asr_manifest = _expect_runtime(catalog, choice.asr, "asr", ASR_RUNTIMES)
    vad_dir = catalog.ensure(choice.vad)
    threshold = float(vad_manifest.params.get("threshold", 0.5))
    SileroVad(vad_dir, threshold=threshold)  # fails here, not on the first clip
    recognizer = load_recognizer(asr_manifest, catalog.ensure(choice.asr), settings.language)
    recognizer.warm_up()
    return Ears(lambda: SileroVad(vad_dir, threshold=threshold), recognizer,
                min_speech_s=settings.endpoint.min_speech_s)


def ears_of(speech: SpeechModels, settings: SpeechSettings) -> Ears:
    """The models a core on a real line loaded at start: the very recognizer its calls use."""
    return Ears(speech.new_vad, speech.recognizer, min_speech_s=settings.endpoint.min_speech_s)


class EarsUnavailable(Exception):
    """The recognizer could not be loaded; the message says why, for people."""


class EarsLoader:
    """Ears ready at once, or loaded on first use, once, in a worker thread.

    A failed load is reported once and forgotten: the next request tries again
    (the models may have been installed meanwhile) instead of needing a restart,
    and a page polling the state still sees the failure instead of a new load.
    """

    def __init__(self, load: Callable[[], Ears] | None = None, *, ready: Ears | None = None) -> None:
        if (load is None) == (ready is None):
            raise ValueError("EarsLoader takes either a loader or ready ears")
        self._load = load
        self._ears = ready
        self._loading: asyncio.Future[Ears] | None = None
        self._failure: str | None = None
        self.load_s: float | None = None

    @property
    def state(self) -> EarsState:
        if self._ears is not None:
            return "ready"
        if self._loading is not None and not self._loading.done():
            return "loading"
        return "failed" if self._failure is not None else "idle"

    def forget_failure(self) -> str | None:
        """Why the last load failed (None if it did not); the next ``begin`` tries again."""
        failure, self._failure = self._failure, None
        return failure

    def begin(self) -> EarsState:
        """Start loading if nothing is loaded, loading, or failed unreported; return the state."""
        if self.state == "idle":
            # Loading is seconds of disk and native code; on the loop it would stall
            # every call's audio (and the control socket) meanwhile.
            self._loading = asyncio.ensure_future(asyncio.to_thread(self._load_once))
            self._loading.add_done_callback(self._loaded)
        return self.state

    async def ears(self) -> Ears:
        """The ears, loading them first if needed; ``EarsUnavailable`` with a reason otherwise."""
        if self._ears is not None:
            return self._ears
        if self.state == "failed":
            raise EarsUnavailable(self.forget_failure())
        self.begin()
        assert self._loading is not None
        try:
            # Shielded: a page that gives up waiting must not abandon a load half done.
            return await asyncio.shield(self._loading)
        except Exception as err:  # noqa: BLE001 - logged by _loaded; reported here, once
            self._failure = None
            raise EarsUnavailable(str(err)) from None

    def _load_once(self) -> Ears:
        assert self._load is not None
        started = time.perf_counter()
        try:
            ears = self._load()
        except ApplianceError as err:
            raise EarsUnavailable(err.detail or err.code) from err
        except Exception as err:  # a runtime refusing its file: a sentence, never a traceback on the page
            raise EarsUnavailable(f"{type(err).__name__}: {err}") from err
        self.load_s = time.perf_counter() - started
        return ears

    def _loaded(self, future: asyncio.Future[Ears]) -> None:
        if future.cancelled():
            self._failure = "loading was cancelled"
            return
        err = future.exception()
        if err is not None:
            self._failure = str(err)
            _LOGGER.warning("speech recognition for test calls did not load: %s", err)
            return
        self._ears = future.result()
        _LOGGER.info("speech recognition for test calls loaded in %.1f s", self.load_s or 0.0)
