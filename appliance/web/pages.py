"""The pages every staff member reads: Today, Inbox, Calls, Appointments.

Handlers translate HTTP into calls of the store and back into templates; what a
page shows is decided by the store's queries, not here.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from statistics import median
from typing import Any, Final

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from appliance.control import ask
from appliance.store import appointments as agenda
from appliance.store import inbox, outbox, queries
from appliance.store.queries import StoredCallEvent
from appliance.web.context import ctx_of, is_htmx

_PAGE_SIZE: Final = 20
_EVER: Final = datetime(2000, 1, 1, tzinfo=timezone.utc)  # before any call the box can have taken
_APPOINTMENTS_BACK: Final = timedelta(days=30)  # recent past: what the box booked that just happened
_APPOINTMENTS_AHEAD: Final = timedelta(days=400)  # beyond any booking horizon
_PING_TIMEOUT_S: Final = 1.0  # the Today page must not hang on a stuck core


async def core_answers(socket_path: Any) -> bool:
    """Does the core answer ``ping`` on its control socket?"""
    return await core_status(socket_path) is not None


async def core_status(socket_path: Any) -> dict[str, Any] | None:
    """The core's answer to ``ping`` (its line and loaded models), None when it does not answer."""
    if not socket_path.exists():
        return None
    try:
        answer = await ask(socket_path, {"cmd": "ping"}, timeout_s=_PING_TIMEOUT_S)
    except (ConnectionError, OSError, TimeoutError, ValueError):
        return None
    return answer if answer.get("ok") else None


async def today(request: Request) -> Response:
    ctx = ctx_of(request)
    store = ctx.db
    zone = request.state.zone
    now = ctx.clock.now().astimezone(zone)
    latest = queries.recent_calls(store, _EVER.astimezone(zone), limit=1)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    waiting = inbox.unhandled_messages(store)
    return ctx.renderer.page(
        request,
        "today.html",
        active="today",
        practice=queries.practice_name(store) or "—",
        now=now,
        core=await core_status(ctx.control_socket),
        last_call=latest[0] if latest else None,
        calls_today=sum(  # recent_calls has no upper bound; a simulated call may be dated later
            1 for call in queries.recent_calls(store, midnight, limit=10_000) if call.started_at < midnight + timedelta(days=1)
        ),
        waiting=len(waiting),
        urgent=sum(1 for m in waiting if m.urgency == "urgent"),
        sync=outbox.sync_status(store),
        fingerprint=ctx.fingerprint,
    )


async def inbox_page(request: Request) -> Response:
    ctx = ctx_of(request)
    store = ctx.db
    entries = [_inbox_entry(store, message) for message in inbox.unhandled_messages(store)]
    return ctx.renderer.page(request, "inbox.html", active="inbox", entries=entries)


def _inbox_entry(store: Any, message: inbox.Message) -> dict[str, Any]:
    number = message.patient.get("phone")
    if not number and message.call_id:
        call = queries.get_call(store, message.call_id)
        number = call.caller_id if call else None
    patient = message.patient
    name = " ".join(str(patient[k]) for k in ("first_name", "last_name") if patient.get(k))
    return {"message": message, "number": number, "name": name, "birth_date": patient.get("birth_date")}


async def mark_handled(request: Request) -> Response:
    ctx = ctx_of(request)
    message_id = request.path_params["message_id"]
    # Idempotent: a second click (or a colleague first) leaves the first time in place.
    inbox.mark_handled(ctx.db, message_id, ctx.clock.now())
    if is_htmx(request):
        return ctx.renderer.page(request, "inbox_handled.html", message_id=message_id)
    return RedirectResponse("/inbox", status_code=303)


async def calls(request: Request) -> Response:
    ctx = ctx_of(request)
    store = ctx.db
    try:
        page = max(1, int(request.query_params.get("page", "1")))
    except ValueError:
        page = 1
    # recent_calls has no offset: read up to this page (retention keeps the log short).
    rows = queries.recent_calls(store, _EVER.astimezone(request.state.zone), limit=page * _PAGE_SIZE + 1)
    shown = rows[(page - 1) * _PAGE_SIZE : page * _PAGE_SIZE]
    entries = []
    for call in shown:
        latencies = _latencies(queries.call_events(store, call.id))
        entries.append(
            {
                "call": call,
                "turns": (call.summary or {}).get("turns"),
                "latency_median": round(median(latencies)) if latencies else None,
                "latency_max": max(latencies) if latencies else None,
            }
        )
    return ctx.renderer.page(
        request, "calls.html", active="calls", entries=entries, page=page, has_next=len(rows) > page * _PAGE_SIZE
    )


def _latencies(events: list[StoredCallEvent]) -> list[int]:
    """The assistant's answer times: end of the caller's turn to its first sound."""
    return [
        int(e.data["latency_ms"])
        for e in events
        if e.kind == "turn_timing" and isinstance(e.data.get("latency_ms"), (int, float))
    ]


async def call_detail(request: Request) -> Response:
    ctx = ctx_of(request)
    store = ctx.db
    call = queries.get_call(store, request.path_params["call_id"])
    if call is None:
        raise HTTPException(404)
    events = queries.call_events(store, call.id)
    latencies = _latencies(events)
    return ctx.renderer.page(
        request,
        "call.html",
        active="calls",
        call=call,
        events=[{"at_ms": e.at_ms, "kind": e.kind, "detail": event_detail(e)} for e in events],
        latencies=latencies,
        messages=inbox.messages_for_call(store, call.id),
    )


_HIDDEN_KEYS: Final = frozenset({"kind", "at_ms"})


def event_detail(event: StoredCallEvent) -> str:
    """One line saying what happened, for the call's event list."""
    data = event.data
    if isinstance(data.get("text"), str):
        return data["text"]
    if event.kind == "turn_timing":
        parts = [f"{key.removesuffix('_ms')} {data[key]} ms" for key in data if key.endswith("_ms") and key != "at_ms"]
        return ", ".join(parts)
    return ", ".join(f"{key}: {_plain(value)}" for key, value in data.items() if key not in _HIDDEN_KEYS)


def _plain(value: Any) -> str:
    if value is None:
        return "—"
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


async def appointments(request: Request) -> Response:
    ctx = ctx_of(request)
    zone = request.state.zone
    now = ctx.clock.now().astimezone(zone)
    made = [
        a
        for a in agenda.appointments_between(
            ctx.db, now - _APPOINTMENTS_BACK, now + _APPOINTMENTS_AHEAD, include_cancelled=True
        )
        if a.origin == "phone"
    ]
    conflicts = [a for a in made if a.sync_state == "conflict"]
    others = [a for a in made if a.sync_state != "conflict"]
    practice = ctx.practice()
    names = {p.id: p.display_name for p in practice.practitioners} if practice else {}
    reasons = {r.id: r.label for r in practice.reasons} if practice else {}
    return ctx.renderer.page(
        request,
        "appointments.html",
        active="appointments",
        conflicts=conflicts,
        others=others,
        names=names,
        reasons=reasons,
    )
