"""The Test call page: staff type what a caller would say and read the assistant's answers.

A test call is a real call of the core (``test_call.*`` on the control socket):
the same call session, dialogue and store as a phone call, only typed. The core
sends each turn's new replies; the conversation so far is kept here, in this
process's memory, so the page can be drawn again whole (without htmx, or after
a reload). It is only what was shown on screen: the call itself, with its
events and any message it left, is in the store like every call.

htmx posts get the conversation panel alone; plain posts get the whole page.
When the core does not answer, the page says so instead of failing.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import Response

from appliance.control import ask
from appliance.web.context import ctx_of, is_htmx
from appliance.web.pages import core_answers

_LOGGER = logging.getLogger(__name__)
_KEPT: Final = 16  # conversations remembered for redrawing; the core holds at most 4 calls open
_MAX_TEXT: Final = 500  # the core refuses longer sentences; the text box says so first


@dataclass
class Turn:
    who: str  # "caller" or "assistant"
    text: str
    latency_ms: int | None = None


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


async def end(request: Request) -> Response:
    form = await request.form()
    conversation = _conversations(request).get(str(form.get("call_id", "")), request.state.user.id)
    problem = None
    if conversation is not None and not conversation.ended:
        _, problem = await _ask(request, {"cmd": "test_call.end", "call_id": conversation.call_id})
        conversation.ended = True  # over for the page either way: the core hangs idle test calls up itself
    return _answer(request, conversation, problem)


async def _ask(request: Request, command: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """The core's answer, or None and a sentence for the staff saying why not."""
    try:
        answer = await ask(ctx_of(request).control_socket, command)
    except (ConnectionError, OSError, ValueError):
        return None, request.state.t("test_call.core_offline")
    if not answer.get("ok"):
        return None, str(answer.get("error") or request.state.t("test_call.failed"))
    return answer, None


def _answer(request: Request, conversation: Conversation | None, problem: str | None, *, whole: bool = False) -> Response:
    ctx = ctx_of(request)
    template = "_test_call.html" if is_htmx(request) and not whole else "test_call.html"
    return ctx.renderer.page(request, template, active="test_call", conversation=conversation, problem=problem,
                             max_text=_MAX_TEXT)
