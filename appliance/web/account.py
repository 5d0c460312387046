"""Signing in and out, the first-boot setup of the first administrator, the
password typed again before a sensitive action, and the page's language."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Match, Route

from appliance.store import staff
from appliance.web import auth
from appliance.web.context import ctx_of, refusal, set_cookie
from appliance.web.render import LANGUAGE_COOKIE, LANGUAGES

_LOGGER = logging.getLogger(__name__)

REAUTH_FIELD: Final = "current_password"
"""The field of a sensitive form where the signed-in person types their password again."""
_LANGUAGE_KEPT_S: Final = 365 * 24 * 3600  # a preference: kept a year, unlike the session


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _safe_next(target: object) -> str:
    """Only a path of this site: never ``//elsewhere`` or a full URL (open redirect)."""
    if isinstance(target, str) and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def _insecure(request: Request) -> bool:
    """Plain http from another machine: the Secure cookie would be dropped."""
    return request.url.scheme != "https" and not auth.is_loopback(_address(request))


def _signed_in(request: Request, member_id: int, target: str) -> Response:
    ctx = ctx_of(request)
    token = auth.start_session(ctx.db, member_id, ctx.clock.now())
    response = RedirectResponse(target, status_code=303)
    # No max-age: the cookie ends with the browser; the server ends it after 12 idle hours.
    set_cookie(response, auth.SESSION_COOKIE, token, max_age=None)
    return response


async def login_page(request: Request) -> Response:
    ctx = ctx_of(request)
    if not staff.admin_exists(ctx.db):
        return RedirectResponse("/setup", status_code=303)
    if request.state.user is not None:
        return RedirectResponse("/", status_code=303)
    return ctx.renderer.page(
        request,
        "login.html",
        username="",
        next=_safe_next(request.query_params.get("next")),
        error=None,
        insecure=_insecure(request),
    )


async def login_submit(request: Request) -> Response:
    ctx = ctx_of(request)
    form = await request.form()
    username = str(form.get("username", ""))
    password = str(form.get("password", ""))
    target = _safe_next(form.get("next"))
    outcome = await auth.login(
        ctx.db, ctx.passwords, username=username, password=password, address=_address(request), now=ctx.clock.now()
    )
    if outcome.member is not None:
        return _signed_in(request, outcome.member.id, target)
    t = request.state.t
    if outcome.locked_minutes is not None:
        error, status = t("errors.too_many", minutes=outcome.locked_minutes), 429
    else:
        error, status = t("errors.login_wrong"), 401
    return ctx.renderer.page(
        request,
        "login.html",
        status_code=status,
        username=username,
        next=target,
        error=error,
        insecure=_insecure(request),
    )


async def logout(request: Request) -> Response:
    ctx = ctx_of(request)
    auth.end_session(ctx.db, request.cookies.get(auth.SESSION_COOKIE))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(auth.SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="strict")
    return response


async def confirm_password(request: Request, form: Mapping[str, Any]) -> str | None:
    """None when the signed-in person may take a sensitive action now; else what to
    say next to the form's password field.

    A password checked less than ``auth.REAUTH_AFTER`` ago (at login, or here)
    is enough; past that the form must carry it again in ``REAUTH_FIELD``."""
    ctx = ctx_of(request)
    session = request.state.session
    now = ctx.clock.now()
    if session is None or not auth.needs_reauth(session, now):
        return None
    t = request.state.t
    password = form.get(REAUTH_FIELD)
    if not isinstance(password, str) or not password:
        return t("reauth.needed")
    outcome = await auth.confirm_password(
        ctx.db, ctx.passwords, session, password=password, address=_address(request), now=now
    )
    if outcome.locked_minutes is not None:
        return t("errors.too_many", minutes=outcome.locked_minutes)
    if outcome.member is None:
        return t("reauth.wrong")
    _LOGGER.info("staff member %d typed their password again for a sensitive action", session.member.id)
    request.state.reauth_due = False
    return None


async def set_language(request: Request) -> Response:
    """The language chooser: a cookie that wins over the browser's languages, then back to the page."""
    form = await request.form()
    lang = form.get("lang")
    if not isinstance(lang, str) or lang not in LANGUAGES:
        return refusal(request, 400, "errors.language_unknown")
    response = RedirectResponse(_page_at(request, _safe_next(form.get("next"))), status_code=303)
    # Not HttpOnly: a preference, not a secret; Secure and SameSite=Strict like the session's.
    set_cookie(response, LANGUAGE_COOKIE, lang, max_age=_LANGUAGE_KEPT_S, httponly=False)
    return response


def _page_at(request: Request, target: str) -> str:
    """``target`` if it is a page (the chooser can sit on the answer to a form), else its
    nearest parent that is one: ``/admin/settings/retention`` → ``/admin/settings``."""
    path, _, query = target.partition("?")
    while path:
        scope = {"type": "http", "path": path, "method": "GET"}
        if any(isinstance(r, Route) and r.matches(scope)[0] == Match.FULL for r in request.app.routes):
            return path + (f"?{query}" if query and path == target.partition("?")[0] else "")
        path = path.rpartition("/")[0]
    return "/"


async def setup_page(request: Request) -> Response:
    ctx = ctx_of(request)
    done = staff.setup_done(ctx.db)
    return ctx.renderer.page(request, "setup.html", done=done, values={}, errors={})


async def setup_submit(request: Request) -> Response:
    ctx = ctx_of(request)
    store = ctx.db
    if staff.setup_done(store):
        return refusal(request, 403, "setup.done")
    form = await request.form()
    values = {key: str(form.get(key, "")) for key in ("code", "username")}
    values["username"] = auth.normalize_username(values["username"])
    password, confirm = str(form.get("password", "")), str(form.get("confirm", ""))
    errors: dict[str, str] = {}
    if not auth.normalize_setup_code(values["code"]):
        errors["code"] = "errors.required"
    if problem := auth.username_problem(values["username"]):
        errors["username"] = problem
    if problem := auth.password_problem(password, confirm):
        errors["password"] = problem
    t = request.state.t
    if errors:
        messages = {field: t(key) for field, key in errors.items()}
        return ctx.renderer.page(request, "setup.html", status_code=400, done=False, values=values, errors=messages)
    outcome = await auth.first_admin(
        store,
        ctx.passwords,
        code=values["code"],
        username=values["username"],
        password=password,
        address=_address(request),
        now=ctx.clock.now(),
        data_dir=ctx.config.data_dir,
    )
    if outcome.member_id is not None:
        return _signed_in(request, outcome.member_id, "/")
    if outcome.problem == "setup.done":
        return refusal(request, 403, "setup.done")
    status = 429 if outcome.locked_minutes is not None else 400
    message = t(outcome.problem or "errors.setup_code_wrong", minutes=outcome.locked_minutes)
    return ctx.renderer.page(
        request, "setup.html", status_code=status, done=False, values=values, errors={"code": message}
    )
