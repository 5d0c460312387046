"""The core's control socket: a few commands from the web page.

The web page is another process (a slow page must never delay a call). It asks
the core, over a unix socket in the data directory, one JSON line per request
and one JSON line per answer:

    {"cmd": "ping"}                                  → {"ok": true, "line": "...", "calls": n}
    {"cmd": "reload"}                                → {"ok": true, "detail": "..."}   (applies to the next call)
    {"cmd": "test_call.start"}                       → {"ok": true, "call_id": "...", "replies": [...], "ended": false}
    {"cmd": "test_call.say", "call_id": "...", "text": "..."}
                                                     → {"ok": true, "replies": [{"text": "...", "latency_ms": 812}], "ended": false}
    {"cmd": "test_call.hearing"}                     → {"ok": true, "state": "ready" | "loading"}
                                                       (starts loading the recognizer if the core has none)
    {"cmd": "test_call.hear", "call_id": "...", "pcm16k": "<base64>"}
                                                     → {"ok": true, "heard": "...", "speech_s": 2.1, "asr_ms": 640,
                                                        "replies": [...], "ended": false}
    {"cmd": "test_call.end", "call_id": "..."}       → {"ok": true}

Anything else, or a request that cannot be served, gets ``{"ok": false,
"error": "..."}`` with a sentence for people, and for the spoken turn's refusals
a ``"code"`` the page words in its own language (``audio-invalid``,
``audio-empty``, ``audio-too-long``, ``no-speech``, ``not-understood``,
``hearing-failed`` with a ``"detail"``, ``hearing-unavailable``).

A test call is a real call of the box on a simulated line in text mode: the
same ``CallSession``, the same dialogue, the same store (it is listed with the
calls, its messages reach the inbox). Its words are typed, or spoken: ``pcm16k``
is at most 20 s of 16 kHz mono signed 16-bit little-endian PCM, heard by the
recognizer the phone calls use (VAD-trimmed as a call's turn, in a worker
thread), and its transcript goes into the call as a typed sentence would, with
the recognition time in the turn's latency. Audio is never kept nor logged.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np

from appliance.audio import MODEL_RATE_HZ
from appliance.errors import SpeechError
from appliance.events import AssistantReplied, CallEvent, TurnTimed
from appliance.line.sim.line import SimCall, SimLine
from appliance.speech.hearing import MAX_CLIP_S, EarsLoader, EarsUnavailable, pcm16_to_clip

_LOGGER = logging.getLogger(__name__)
# A spoken turn: 20 s of 16 kHz 16-bit PCM is 640,000 bytes, 853,336 in base64.
# Anything longer is not a request.
_MAX_LINE: Final = 1024 * 1024
_MAX_PCM_BYTES: Final = int(MAX_CLIP_S * MODEL_RATE_HZ) * 2
_REPLY_WAIT_S: Final = 30.0  # the dialogue answers in milliseconds in text mode; this is a safety net
_MAX_TEST_CALLS: Final = 4  # a few staff trying at once; more is a stuck browser tab
_MAX_SOCKET_PATH: Final = 107  # sun_path holds 108 bytes with its terminating NUL
_TEST_CALL_IDLE_S: Final = 600.0  # a test call nobody types into for 10 minutes is hung up


def control_socket(config: Any) -> Path:
    """Where the core listens and the web page asks: in the data directory."""
    return Path(config.data_dir) / "control.sock"


class ControlError(Exception):
    """A request the core refuses; the message is for people.

    ``code`` lets the page say it in the staff's language; ``detail`` is what a
    sentence of the page's cannot know (why a model failed to load).
    """

    def __init__(self, message: str, *, code: str | None = None, detail: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.detail = detail


@dataclass
class _TypedCall:
    call: SimCall
    task: asyncio.Task[Any]
    events: list[CallEvent] = field(default_factory=list)
    seen: int = 0
    last_used: float = 0.0
    turn: asyncio.Lock = field(default_factory=asyncio.Lock)
    """One caller turn at a time: a second click must wait for the first's replies,
    or both turns' replies would be counted as the first's."""

    @property
    def ask(self) -> str | None:
        """What the assistant last asked for: the words a call would bias recognition towards."""
        for event in reversed(self.events):
            if isinstance(event, AssistantReplied):
                return event.ask
        return None

    def new_replies(self) -> list[dict[str, Any]]:
        fresh, self.seen = self.events[self.seen:], len(self.events)
        replies: list[dict[str, Any]] = []
        for event in fresh:
            if isinstance(event, AssistantReplied):
                replies.append({"text": event.text, "latency_ms": None})
            elif isinstance(event, TurnTimed) and replies:
                replies[-1]["latency_ms"] = event.latency_ms
        return replies


class TypedCalls:
    """Typed (or spoken) test calls through the box's own call path.

    ``ears`` hears spoken turns with the phone calls' recognizer (None: this core
    cannot, and says so); ``vocabulary`` gives the words a call would bias it
    towards for what the assistant just asked.
    """

    def __init__(
        self,
        answer: Callable[..., Awaitable[Any]],
        monotonic: Callable[[], float],
        *,
        ears: EarsLoader | None = None,
        vocabulary: Callable[[str | None], tuple[str, ...]] = lambda ask: (),
    ) -> None:
        self._answer = answer
        self._monotonic = monotonic
        self._ears = ears
        self._vocabulary = vocabulary
        self._line = SimLine()
        self._calls: dict[str, _TypedCall] = {}

    async def start(self) -> dict[str, Any]:
        self._hang_up_idle()
        if len(self._calls) >= _MAX_TEST_CALLS:
            raise ControlError("trop d'appels de test en cours ; terminez-en un d'abord")
        call = self._line.place_call(None)
        incoming = await anext(self._line.incoming())
        events: list[CallEvent] = []
        task = asyncio.create_task(self._answer(incoming, line_name="test", text_mode=True, on_event=events.append))
        test = _TypedCall(call=call, task=task, events=events, last_used=self._monotonic())
        self._calls[call.call_id] = test
        ended = await self._settle(test)
        return {"ok": True, "call_id": call.call_id, "replies": test.new_replies(), "ended": ended}

    async def say(self, call_id: str, text: str) -> dict[str, Any]:
        test = self._get(call_id)
        text = " ".join(str(text).split())
        if not text:
            raise ControlError("écrivez ce que dirait l'appelant")
        if len(text) > 500:
            raise ControlError("une phrase de 500 caractères au plus")
        async with test.turn:
            self._still_on(test)
            test.last_used = self._monotonic()
            test.call.awaiting_caller.clear()
            test.call.send_text(text)
            ended = await self._settle(test)
            return {"ok": True, "replies": test.new_replies(), "ended": ended}

    async def hearing(self) -> dict[str, Any]:
        """Get the recognizer ready (loading it if this core has none); say how far it is."""
        ears = self._hearing()
        if ears.begin() == "failed":
            detail = ears.forget_failure() or "unknown"
            raise ControlError(f"la reconnaissance vocale n'a pas pu se charger : {detail}",
                               code="hearing-failed", detail=detail)
        return {"ok": True, "state": ears.state}

    async def hear(self, call_id: str, pcm16k: object) -> dict[str, Any]:
        """A spoken caller turn: recognised as a call's turn is, then said into the call."""
        test = self._get(call_id)
        clip = _clip_of(pcm16k)
        try:
            ears = await self._hearing().ears()
        except EarsUnavailable as err:
            raise ControlError(f"la reconnaissance vocale n'a pas pu se charger : {err}",
                               code="hearing-failed", detail=str(err)) from None
        async with test.turn:
            self._still_on(test)
            test.last_used = heard_at = self._monotonic()
            try:
                # Recognition is CPU-bound native code: on the loop it would stall the
                # audio of every call on the line, not only this test call.
                heard = await asyncio.to_thread(ears.hear, clip, hotwords=self._vocabulary(test.ask))
            except SpeechError as err:
                _LOGGER.warning("a spoken test turn was not recognised: %s", err.code)
                raise ControlError("la reconnaissance vocale a échoué sur cet enregistrement ; réessayez",
                                   code="not-understood") from None
            _LOGGER.info("spoken test turn: %.1f s of audio, %.1f s of speech, recognised in %d ms",
                         heard.clip_s, heard.speech_s, heard.asr_ms)  # never the words (journal privacy)
            if not heard.speech_s:
                raise ControlError("aucune parole entendue ; vérifiez le micro et parlez plus près",
                                   code="no-speech")
            if not heard.text:
                raise ControlError("la parole n'a pas été comprise ; réessayez plus distinctement",
                                   code="not-understood")
            self._still_on(test)  # hung up while the recognizer worked
            test.call.awaiting_caller.clear()
            test.call.send_text(heard.text, audio_s=heard.speech_s, asr_ms=heard.asr_ms, heard_at=heard_at)
            ended = await self._settle(test)
            return {"ok": True, "heard": heard.text, "speech_s": round(heard.speech_s, 2), "asr_ms": heard.asr_ms,
                    "replies": test.new_replies(), "ended": ended}

    async def end(self, call_id: str) -> dict[str, Any]:
        test = self._get(call_id)
        await self._finish(call_id, test)
        return {"ok": True}

    async def close(self) -> None:
        for call_id, test in list(self._calls.items()):
            await self._finish(call_id, test)
        await self._line.close()

    async def _settle(self, test: _TypedCall) -> bool:
        """Wait until the assistant waits for the caller again, or the call is over."""
        waiting = asyncio.create_task(test.call.awaiting_caller.wait())
        try:
            done, _ = await asyncio.wait({waiting, test.task}, timeout=_REPLY_WAIT_S, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiting.cancel()
        if not done:
            raise ControlError("l'assistant ne répond pas ; l'appel de test continue")
        if test.task.done():
            self._calls.pop(test.call.call_id, None)
            if test.task.exception() is not None:
                _LOGGER.error("a test call failed: %s", type(test.task.exception()).__name__)
                raise ControlError("l'appel de test s'est interrompu sur une erreur ; voir le journal")
            return True
        return False

    async def _finish(self, call_id: str, test: _TypedCall) -> None:
        self._calls.pop(call_id, None)
        test.call.caller_hangs_up()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(test.task, timeout=10)

    def _get(self, call_id: str) -> _TypedCall:
        test = self._calls.get(str(call_id))
        if test is None:
            raise ControlError("cet appel de test est terminé ; commencez-en un autre")
        return test

    def _still_on(self, test: _TypedCall) -> None:
        """The call may have ended while this turn waited for the previous one or the recognizer."""
        if self._calls.get(test.call.call_id) is not test or test.task.done():
            raise ControlError("cet appel de test est terminé ; commencez-en un autre")

    def _hearing(self) -> EarsLoader:
        if self._ears is None:
            raise ControlError("ce cœur ne sait pas reconnaître la parole ; écrivez la phrase",
                               code="hearing-unavailable")
        return self._ears

    def _hang_up_idle(self) -> None:
        now = self._monotonic()
        for call_id, test in list(self._calls.items()):
            if now - test.last_used > _TEST_CALL_IDLE_S:
                self._calls.pop(call_id, None)
                test.call.caller_hangs_up()


def _clip_of(pcm16k: object) -> np.ndarray:
    """The spoken turn's samples, or a refusal saying what is wrong with them."""
    if not isinstance(pcm16k, str):
        raise ControlError("l'enregistrement manque (pcm16k en base64)", code="audio-invalid")
    # 4 base64 characters carry 3 bytes: refuse an oversized turn before decoding it.
    if len(pcm16k) > (_MAX_PCM_BYTES + 2) // 3 * 4:
        raise ControlError(f"{MAX_CLIP_S:.0f} secondes de parole au plus", code="audio-too-long")
    try:
        data = base64.b64decode(pcm16k, validate=True)
    except (binascii.Error, ValueError):
        raise ControlError("l'enregistrement n'est pas du base64", code="audio-invalid") from None
    if not data:
        raise ControlError("l'enregistrement est vide", code="audio-empty")
    if len(data) > _MAX_PCM_BYTES:
        raise ControlError(f"{MAX_CLIP_S:.0f} secondes de parole au plus", code="audio-too-long")
    if len(data) % 2:
        raise ControlError("l'enregistrement n'est pas du PCM 16 bits", code="audio-invalid")
    return pcm16_to_clip(data)


Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class ControlServer:
    """Serves the control socket until ``close``; one handler per command."""

    def __init__(self, path: Path, handlers: dict[str, Handler]) -> None:
        self.path = path
        self._handlers = handlers
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> bool:
        """Listen; False (logged) when the socket cannot be made: the calls go on,
        the web page says the core does not answer."""
        if len(os.fsencode(self.path)) > _MAX_SOCKET_PATH:
            _LOGGER.warning("control socket path too long for a unix socket (%s); no control socket", self.path)
            return False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # a socket left by a core that was killed
        # Only this user (the box's account, shared with the web service) may connect.
        old_mask = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(self._serve, path=str(self.path), limit=_MAX_LINE)
        except OSError as err:
            _LOGGER.warning("no control socket at %s: %s", self.path, err.strerror)
            return False
        finally:
            os.umask(old_mask)
        return True

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                answer = await self._answer(line)
                writer.write(json.dumps(answer, ensure_ascii=False).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass  # the page went away, or sent a line too long to be a request
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
        except ValueError:
            return {"ok": False, "error": "not a JSON request"}
        if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
            return {"ok": False, "error": "a request is a JSON object with a \"cmd\""}
        handler = self._handlers.get(request["cmd"])
        if handler is None:
            return {"ok": False, "error": f"unknown command {request['cmd']!r}"}
        try:
            return await handler(request)
        except ControlError as err:
            refused: dict[str, Any] = {"ok": False, "error": str(err)}
            if err.code:
                refused["code"] = err.code
            if err.detail:
                refused["detail"] = err.detail
            return refused
        except Exception:  # a bug in one command must not take the socket (or the core) down
            _LOGGER.exception("control command %s failed", request["cmd"])
            return {"ok": False, "error": "internal error in the box; see its log"}


async def ask(path: Path, request: dict[str, Any], *, timeout_s: float = 35.0) -> dict[str, Any]:
    """Send one request to the core and return its answer.

    Raises ``ConnectionError`` when no core listens (stopped, restarting) or it
    does not answer within ``timeout_s``.
    """
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path), limit=_MAX_LINE), timeout_s)
    except (OSError, TimeoutError) as err:
        raise ConnectionError(f"the box's core does not answer on {path}: {err}") from err
    try:
        writer.write(json.dumps(request, ensure_ascii=False).encode() + b"\n")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout_s)
    except (OSError, TimeoutError) as err:
        raise ConnectionError(f"the box's core stopped answering: {err}") from err
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    if not line:
        raise ConnectionError("the box's core closed the connection")
    answer = json.loads(line)
    if not isinstance(answer, dict):
        raise ConnectionError("the box's core sent something that is not an answer")
    return answer
