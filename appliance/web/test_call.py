"""The Test call page: staff type or say what a caller would say and read the assistant's answers.

A test call is a real call of the core (``test_call.*`` on the control socket):
the same call session, dialogue and store as a phone call, only typed, or
spoken into the browser's microphone. The core sends each turn's new replies;
the conversation so far is kept here, in this process's memory, so the page can
be drawn again whole (without htmx, or after a reload). It is only what was
shown on screen: the call itself, with its events and any message it left, is in
the store like every call.

A spoken turn (``app.js``) arrives as one WAV clip: 16 kHz, mono, 16-bit PCM, at
most 20 s. It is checked here (type, size, format, length) and its samples go to
the core, which hears them with the phone calls' recognizer; the recognised
words come back as the caller's turn. Neither the audio nor the words are logged.

htmx posts (and the page's script) get the conversation panel alone; plain
posts get the whole page. When the core does not answer, the page says so
instead of failing.
"""

from __future__ import annotations

import base64
import io
import logging
import wave
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Final

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from appliance.audio import MODEL_RATE_HZ
from appliance.control import ask
from appliance.speech.hearing import MAX_CLIP_S
from appliance.web.context import ctx_of, is_htmx
from appliance.web.pages import core_answers

_LOGGER = logging.getLogger(__name__)
_KEPT: Final = 16  # conversations remembered for redrawing; the core holds at most 4 calls open
_MAX_TEXT: Final = 500  # the core refuses longer sentences; the text box says so first
_MAX_CLIP_SAMPLES: Final = int(MAX_CLIP_S * MODEL_RATE_HZ)
# 20 s of samples, and room for a WAV header with a few extra chunks; the page's own has 44 bytes.
_MAX_WAV_BYTES: Final = _MAX_CLIP_SAMPLES * 2 + 16 * 1024
_WAV_TYPES: Final = ("audio/wav", "audio/wave", "audio/x-wav", "audio/vnd.wave")
# The first spoken turn on a core without models waits for the recognizer to load
# (seconds on a laptop, longer from an SD card), then for recognition.
_HEAR_TIMEOUT_S: Final = 120.0
# What the core's refusal codes are called in the staff's language.
_CORE_REFUSALS: Final = {
    "audio-invalid": "test_call_voice.bad_audio",
    "audio-empty": "test_call_voice.empty",
    "audio-too-long": "test_call_voice.too_long",
    "no-speech": "test_call_voice.no_speech",
    "not-understood": "test_call_voice.not_understood",
    "hearing-failed": "test_call_voice.load_failed",
    "hearing-unavailable": "test_call_voice.unavailable",
}


class AudioRefused(Exception):
    """An upload that is not a spoken turn; ``key`` names the sentence, ``status`` the HTTP answer."""

    def __init__(self, key: str, status: int) -> None:
        super().__init__(key)
        self.key = key
        self.status = status


@dataclass
class Turn:
    who: str  # "caller" or "assistant"
    text: str
    latency_ms: int | None = None
    asr_ms: int | None = None
    """A spoken caller turn: how long the recognizer took (None: typed)."""


@dataclass
class Conversation:
    call_id: str
    owner: int
    """The staff member who started it: only they may type into it."""
    turns: list[Turn] = field(default_factory=list)
    ended: bool = False

    def add_replies(self, answer: dict[str, Any]) -> None:
        for reply in answer.get("replies") or []:
            latency = reply.get("latency_ms")
            self.turns.append(Turn("assistant", str(reply.get("text", "")), latency if isinstance(latency, int) else None))
        self.ended = self.ended or bool(answer.get("ended"))


class Conversations:
    """The last few test calls' conversations, by staff member."""

    def __init__(self) -> None:
        self._by_call: OrderedDict[str, Conversation] = OrderedDict()

    def add(self, conversation: Conversation) -> None:
        self._by_call[conversation.call_id] = conversation
        while len(self._by_call) > _KEPT:
            self._by_call.popitem(last=False)

    def get(self, call_id: str, owner: int) -> Conversation | None:
        found = self._by_call.get(call_id)
        return found if found is not None and found.owner == owner else None

    def latest(self, owner: int) -> Conversation | None:
        mine = [c for c in self._by_call.values() if c.owner == owner]
        return mine[-1] if mine else None


def _conversations(request: Request) -> Conversations:
    state = request.app.state
    if not hasattr(state, "test_calls"):
        state.test_calls = Conversations()
    return state.test_calls  # type: ignore[no-any-return]


async def test_call_page(request: Request) -> Response:
    ctx = ctx_of(request)
    online = await core_answers(ctx.control_socket)
    conversation = _conversations(request).latest(request.state.user.id)
    problem = None if online else request.state.t("test_call.core_offline")
    return _answer(request, conversation, problem, whole=True)


async def start(request: Request) -> Response:
    answer, problem = await _ask(request, {"cmd": "test_call.start"})
    conversation = None
    if answer is not None:
        conversation = Conversation(call_id=str(answer.get("call_id", "")), owner=request.state.user.id)
        conversation.add_replies(answer)
        _conversations(request).add(conversation)
        _LOGGER.info("test call started by staff member %d", request.state.user.id)
    return _answer(request, conversation, problem)


async def say(request: Request) -> Response:
    form = await request.form()
    text = " ".join(str(form.get("text", "")).split())
    conversation = _conversations(request).get(str(form.get("call_id", "")), request.state.user.id)
    t = request.state.t
    if conversation is None or conversation.ended:
        return _answer(request, conversation, t("test_call.over"))
    if not text:
        return _answer(request, conversation, t("test_call.empty"))
    answer, problem = await _ask(request, {"cmd": "test_call.say", "call_id": conversation.call_id, "text": text[:_MAX_TEXT]})
    if answer is not None:
        conversation.turns.append(Turn("caller", text[:_MAX_TEXT]))
        conversation.add_replies(answer)
    return _answer(request, conversation, problem)


async def hearing(request: Request) -> Response:
    """Get the core's recognizer ready while the staff member speaks (the page's script
    asks when "Speak" is pressed): ``{"state": "ready" | "loading" | "failed", "message"}``."""
    t = request.state.t
    answer, problem = await _ask(request, {"cmd": "test_call.hearing"})
    if answer is None:
        return JSONResponse({"state": "failed", "message": problem})
    state = "loading" if answer.get("state") == "loading" else "ready"
    return JSONResponse({"state": state, "message": t("test_call_voice.loading") if state == "loading" else ""})


async def hear(request: Request) -> Response:
    """A spoken caller turn: one WAV clip in the body, the call's id in the query."""
    t = request.state.t
    conversation = _conversations(request).get(request.query_params.get("call_id", ""), request.state.user.id)
    if conversation is None or conversation.ended:
        return _answer(request, conversation, t("test_call.over"))
    try:
        pcm = wav_samples(request.headers.get("content-type", ""), await _body(request))
    except AudioRefused as refused:
        return _answer(request, conversation, t(refused.key), status_code=refused.status)
    answer, problem = await _ask(
        request,
        {"cmd": "test_call.hear", "call_id": conversation.call_id, "pcm16k": base64.b64encode(pcm).decode("ascii")},
        timeout_s=_HEAR_TIMEOUT_S,
    )
    if answer is not None:
        asr_ms = answer.get("asr_ms")
        conversation.turns.append(Turn("caller", str(answer.get("heard", "")),
                                       asr_ms=asr_ms if isinstance(asr_ms, int) else None))
        conversation.add_replies(answer)
    return _answer(request, conversation, problem)


async def _body(request: Request) -> bytes:
    """The body, refused as soon as it is larger than a 20 s clip can be (never read whole first)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > _MAX_WAV_BYTES:
        raise AudioRefused("test_call_voice.too_big", 413)
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > _MAX_WAV_BYTES:
                raise AudioRefused("test_call_voice.too_big", 413)
    except ClientDisconnect:
        raise AudioRefused("test_call_voice.empty", 400) from None
    return bytes(body)


def wav_samples(content_type: str, body: bytes) -> bytes:
    """The 16-bit little-endian samples of a 16 kHz mono PCM WAV of at most 20 s."""
    if content_type.split(";")[0].strip().lower() not in _WAV_TYPES:
        raise AudioRefused("test_call_voice.wrong_type", 415)
    if len(body) > _MAX_WAV_BYTES:
        raise AudioRefused("test_call_voice.too_big", 413)
    try:
        with wave.open(io.BytesIO(body), "rb") as clip:
            if (clip.getnchannels(), clip.getsampwidth(), clip.getframerate(), clip.getcomptype()) != (
                1, 2, MODEL_RATE_HZ, "NONE"
            ):
                raise AudioRefused("test_call_voice.bad_audio", 415)
            if clip.getnframes() > _MAX_CLIP_SAMPLES:
                raise AudioRefused("test_call_voice.too_long", 413)
            pcm = clip.readframes(clip.getnframes())
    except (wave.Error, EOFError, ValueError):  # not RIFF/WAVE, truncated, or a format wave cannot read
        raise AudioRefused("test_call_voice.bad_audio", 415) from None
    if len(pcm) < 2:
        raise AudioRefused("test_call_voice.empty", 400)
    return pcm[: len(pcm) // 2 * 2]  # a truncated last sample is dropped, not refused


async def end(request: Request) -> Response:
    form = await request.form()
    conversation = _conversations(request).get(str(form.get("call_id", "")), request.state.user.id)
    problem = None
    if conversation is not None and not conversation.ended:
        _, problem = await _ask(request, {"cmd": "test_call.end", "call_id": conversation.call_id})
        conversation.ended = True  # over for the page either way: the core hangs idle test calls up itself
    return _answer(request, conversation, problem)


async def _ask(
    request: Request, command: dict[str, Any], *, timeout_s: float = 35.0
) -> tuple[dict[str, Any] | None, str | None]:
    """The core's answer, or None and a sentence for the staff saying why not."""
    t = request.state.t
    try:
        answer = await ask(ctx_of(request).control_socket, command, timeout_s=timeout_s)
    except (ConnectionError, OSError, ValueError):
        return None, t("test_call.core_offline")
    if not answer.get("ok"):
        key = _CORE_REFUSALS.get(str(answer.get("code")))
        if key is not None:
            return None, t(key, detail=str(answer.get("detail") or "?"))
        return None, str(answer.get("error") or t("test_call.failed"))
    return answer, None


def _answer(request: Request, conversation: Conversation | None, problem: str | None, *, whole: bool = False,
            status_code: int = 200) -> Response:
    ctx = ctx_of(request)
    template = "_test_call.html" if is_htmx(request) and not whole else "test_call.html"
    return ctx.renderer.page(request, template, status_code=status_code, active="test_call",
                             conversation=conversation, problem=problem, max_text=_MAX_TEXT)
