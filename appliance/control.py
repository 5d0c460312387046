"""The core's control socket: a few commands from the web page, never audio.

The web page is another process (a slow page must never delay a call). It asks
the core, over a unix socket in the data directory, one JSON line per request
and one JSON line per answer:

    {"cmd": "ping"}                                  → {"ok": true, "line": "...", "calls": n}
    {"cmd": "reload"}                                → {"ok": true, "detail": "..."}   (applies to the next call)
    {"cmd": "test_call.start"}                       → {"ok": true, "call_id": "...", "replies": [...], "ended": false}
    {"cmd": "test_call.say", "call_id": "...", "text": "..."}
                                                     → {"ok": true, "replies": [{"text": "...", "latency_ms": 812}], "ended": false}
    {"cmd": "test_call.end", "call_id": "..."}       → {"ok": true}

Anything else, or a request that cannot be served, gets ``{"ok": false,
"error": "..."}`` with a sentence for people. A test call is a real call of the
box on a simulated line in text mode: the same ``CallSession``, the same
dialogue, the same store (it is listed with the calls, its messages reach the
inbox), only the words are typed instead of spoken.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from appliance.events import AssistantReplied, CallEvent, TurnTimed
from appliance.line.sim.line import SimCall, SimLine

_LOGGER = logging.getLogger(__name__)
_MAX_LINE: Final = 64 * 1024  # a typed sentence; anything longer is not a request
_REPLY_WAIT_S: Final = 30.0  # the dialogue answers in milliseconds in text mode; this is a safety net
_MAX_TEST_CALLS: Final = 4  # a few staff trying at once; more is a stuck browser tab
_MAX_SOCKET_PATH: Final = 107  # sun_path holds 108 bytes with its terminating NUL
_TEST_CALL_IDLE_S: Final = 600.0  # a test call nobody types into for 10 minutes is hung up


def control_socket(config: Any) -> Path:
    """Where the core listens and the web page asks: in the data directory."""
    return Path(config.data_dir) / "control.sock"


class ControlError(Exception):
    """A request the core refuses; the message is for people."""


@dataclass
class _TypedCall:
    call: SimCall
    task: asyncio.Task[Any]
    events: list[CallEvent] = field(default_factory=list)
    seen: int = 0
    last_used: float = 0.0

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
    """Typed test calls through the box's own call path."""

    def __init__(self, answer: Callable[..., Awaitable[Any]], monotonic: Callable[[], float]) -> None:
        self._answer = answer
        self._monotonic = monotonic
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
        test.last_used = self._monotonic()
        test.call.awaiting_caller.clear()
        test.call.send_text(text)
        ended = await self._settle(test)
        return {"ok": True, "replies": test.new_replies(), "ended": ended}

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

    def _hang_up_idle(self) -> None:
        now = self._monotonic()
        for call_id, test in list(self._calls.items()):
            if now - test.last_used > _TEST_CALL_IDLE_S:
                self._calls.pop(call_id, None)
                test.call.caller_hangs_up()


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
            return {"ok": False, "error": str(err)}
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
