"""The local web page: its own process, serving the practice's staff.

It shares the SQLite store with the core (WAL: the core keeps writing while we
read) and will ask the core for a few things over the control socket. A slow
page, a 0.3 s password hash or a crash here never touches a call's audio.

Every route is built by ``_route`` with the access it needs, and the guard it
wraps around the handler is the only door: it finds the session, refuses what
the person may not see (401/redirect to the login page, 403 for another role's
pages), and refuses any change without the session's CSRF token. The handlers
(``pages``, ``account``, ``admin``) only translate HTTP into calls of the store
and of ``auth``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Final, Literal
from urllib.parse import quote

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from appliance.clock import Clock, SystemClock
from appliance.config import Config
from appliance.store import Store, queries
from appliance.store.settings import get_setting
from appliance.store.staff import admin_exists
from appliance.web import account, admin, auth, pages, settings_page, test_call
from appliance.web.context import WebContext, ctx_of, refusal, set_cookie, wants_html
from appliance.web.render import LANGUAGE_COOKIE, LANGUAGE_SETTING, Renderer, choose_language
from appliance.web.tls import ensure_certificate

_LOGGER = logging.getLogger(__name__)

STATIC_DIR: Final = Path(__file__).parent / "static"
HTMX_FILE: Final = STATIC_DIR / "vendor" / "htmx.min.js"
_SAFE_METHODS: Final = frozenset({"GET", "HEAD"})

Access = Literal["public", "staff", "admin"]
"""``public``: anyone (login, setup, health); ``staff``: any signed-in account; ``admin``: administrators."""
Handler = Callable[[Request], Awaitable[Response]]


def create_app(
    config: Config, *, clock: Clock | None = None, fingerprint: str | None = None, config_path: Path | None = None
) -> Starlette:
    clock = clock or SystemClock()
    ctx = WebContext(
        config=config,
        clock=clock,
        passwords=auth.Passwords(),
        renderer=Renderer(htmx=HTMX_FILE.exists()),
        fingerprint=fingerprint,
        config_path=config_path,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # One connection for the process, opened with the app rather than per
        # request, so migrations (0004 adds the staff tables) run once.
        store = Store.open(config.db_path, clock=clock)
        try:
            # Hashing the code takes ~0.3 s: in a thread, like every hash here.
            await asyncio.to_thread(auth.ensure_setup_code, store, config.data_dir, ctx.passwords, clock)
            ctx.store = store
            yield
        finally:
            ctx.store = None
            store.close()

    app = Starlette(routes=routes(), lifespan=lifespan, middleware=[Middleware(SecurityHeaders)])
    app.state.ctx = ctx
    # The installer's file: the Settings page validates a change against it, as the core will load it.
    app.state.config_path = config_path
    return app


def routes() -> list[BaseRoute]:
    """Every page and endpoint, with the access it needs (the security test walks this list)."""
    return [
        _route("/healthz", health, access="public"),
        _route("/login", account.login_page, access="public"),
        _route("/login", account.login_submit, methods=["POST"], access="public"),
        _route("/setup", account.setup_page, access="public"),
        _route("/setup", account.setup_submit, methods=["POST"], access="public"),
        _route("/logout", account.logout, methods=["POST"]),
        _route("/language", account.set_language, methods=["POST"], access="public"),
        _route("/", pages.today),
        _route("/inbox", pages.inbox_page),
        _route("/inbox/{message_id:int}/handled", pages.mark_handled, methods=["POST"]),
        _route("/calls", pages.calls),
        _route("/calls/{call_id}", pages.call_detail),
        _route("/appointments", pages.appointments),
        _route("/test-call", test_call.test_call_page),
        _route("/test-call/start", test_call.start, methods=["POST"]),
        _route("/test-call/say", test_call.say, methods=["POST"]),
        _route("/test-call/hearing", test_call.hearing, methods=["POST"]),
        _route("/test-call/hear", test_call.hear, methods=["POST"]),
        _route("/test-call/end", test_call.end, methods=["POST"]),
        _route("/admin/settings", settings_page.settings_page, access="admin"),
        _route("/admin/settings/cloud/check", settings_page.cloud_check, methods=["POST"], access="admin"),
        _route("/admin/settings/{section}", settings_page.settings_save, methods=["POST"], access="admin"),
        _route("/admin/staff", admin.staff_page, access="admin"),
        _route("/admin/staff", admin.staff_create, methods=["POST"], access="admin"),
        _route("/admin/staff/{staff_id:int}/disable", admin.staff_disable, methods=["POST"], access="admin"),
        _route("/admin/staff/{staff_id:int}/enable", admin.staff_enable, methods=["POST"], access="admin"),
        _route("/admin/staff/{staff_id:int}/password", admin.staff_password, methods=["POST"], access="admin"),
        _route("/admin/data", admin.data_page, access="admin"),
        _route("/admin/data/export", admin.data_export, methods=["POST"], access="admin"),
        _route("/admin/data/erase", admin.data_erase, methods=["POST"], access="admin"),
        _route("/admin/data/backup", admin.data_backup, methods=["POST"], access="admin"),
        _route("/admin/sync/retry", admin.sync_retry, methods=["POST"], access="admin"),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]


def _route(path: str, handler: Handler, *, methods: list[str] | None = None, access: Access = "staff") -> Route:
    # One convention, checked here, so a glance at a URL tells who may use it.
    if (access == "admin") != path.startswith("/admin/"):
        raise ValueError(f"{path}: administrator pages live under /admin/, and only they do")
    endpoint = _guarded(handler, access)
    endpoint.access = access  # type: ignore[attr-defined]
    return Route(path, endpoint, methods=methods or ["GET"], name=f"{handler.__name__}")


def _guarded(handler: Handler, access: Access) -> Handler:
    async def endpoint(request: Request) -> Response:
        ctx = ctx_of(request)
        store = ctx.db
        now = ctx.clock.now()
        session = auth.resolve_session(store, request.cookies.get(auth.SESSION_COOKIE), now)
        state = request.state
        state.session = session
        state.user = session.member if session else None
        # Shown with the sensitive forms, so the password is typed with the action, not after a refusal.
        state.reauth_due = session is not None and auth.needs_reauth(session, now)
        lang = choose_language(get_setting(store, LANGUAGE_SETTING), request.headers.get("accept-language"),
                               chosen=request.cookies.get(LANGUAGE_COOKIE))
        state.t = ctx.renderer.translator(lang)
        state.zone = queries.practice_tz(store)
        new_form_token: str | None = None
        if session is not None:
            state.csrf = session.csrf_token
        else:
            token = request.cookies.get(auth.FORM_COOKIE)
            if not token or len(token) > 128:
                token = new_form_token = auth.new_form_token()
            state.csrf = token

        if access != "public" and session is None:
            return _unauthenticated(request)
        if access == "admin" and not (session and session.member.is_admin):
            _LOGGER.warning("refused %s %s to a non-administrator", request.method, request.url.path)
            return refusal(request, 403, "errors.admin_only")
        if request.method not in _SAFE_METHODS:
            given = request.headers.get(auth.CSRF_HEADER)
            if given is None:
                form = await request.form()
                value = form.get(auth.CSRF_FIELD)
                given = value if isinstance(value, str) else None
            # A freshly made form token cannot match anything the browser sent.
            expected = None if new_form_token else state.csrf
            if not auth.tokens_match(expected, given):
                _LOGGER.warning("refused %s %s: missing or wrong CSRF token", request.method, request.url.path)
                return refusal(request, 403, "errors.csrf")

        response = await handler(request)
        if new_form_token:
            set_cookie(response, auth.FORM_COOKIE, new_form_token, max_age=None)
        if access != "public" or session is not None:
            response.headers.setdefault("cache-control", "no-store")  # patient data stays off disk caches
        return response

    endpoint.__name__ = handler.__name__
    return endpoint


def _unauthenticated(request: Request) -> Response:
    if wants_html(request):
        target = "/login"
        if request.method == "GET" and request.url.path != "/":
            target += "?next=" + quote(request.url.path)
        return RedirectResponse(target, status_code=303)
    # htmx follows HX-Redirect even on an error status; scripts get a plain 401.
    return JSONResponse({"ok": False, "error": "login required"}, status_code=401, headers={"HX-Redirect": "/login"})


async def health(request: Request) -> Response:
    ctx = ctx_of(request)
    return JSONResponse({"ok": True, "time": ctx.clock.now().isoformat(timespec="seconds")})


class SecurityHeaders:
    """Headers every answer carries: no framing, no sniffing, no foreign scripts."""

    _HEADERS: Final = [
        (b"x-frame-options", b"DENY"),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
        (
            b"content-security-policy",
            b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
            b" form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    ]

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + self._HEADERS
            await send(message)

        await self.app(scope, receive, with_headers)


def setup_code_notice(code: str | None, needs_setup: bool, code_file: Path, *, to_journal: bool) -> str | None:
    """What the console says about the setup code. Under systemd the console is the
    journal, which more people read and keep longer: there the code itself is not
    written, only where root finds it (the device's label carries it too)."""
    if code and not to_journal:
        return f"\nFirst start: setup code for the first administrator: {code}\n  (also in {code_file})\n"
    if code or needs_setup:
        return f"\nNo administrator yet: the setup code is in {code_file}\n"
    return None


def serve(config: Config, config_path: Path | None = None, *, echo: Callable[[str], None]) -> int:
    """``appliance web``: the setup code and certificate on the console (``echo``, the
    CLI's print), then the page."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    clock = SystemClock()
    with Store.open(config.db_path, clock=clock) as store:
        code = auth.ensure_setup_code(store, config.data_dir, auth.Passwords(), clock)
        needs_setup = not admin_exists(store)
    notice = setup_code_notice(code, needs_setup, config.data_dir / auth.SETUP_CODE_FILE,
                               to_journal=bool(os.environ.get("JOURNAL_STREAM")))
    if notice:
        echo(notice)
    tls: dict[str, str] = {}
    fingerprint = None
    if config.web.https:
        cert = ensure_certificate(config.web.cert_dir or config.data_dir / "tls")
        fingerprint = cert.fingerprint
        made = "new certificate" if cert.created else "certificate"
        echo(f"HTTPS {made}, SHA-256 fingerprint:\n  {cert.fingerprint}\n")
        tls = {"ssl_certfile": str(cert.cert_path), "ssl_keyfile": str(cert.key_path)}
    elif not auth.is_loopback(config.web.host):
        _LOGGER.warning(
            "the web page listens on %s over plain http: browsers will not keep its session cookie;"
            " set [web] https = true",
            config.web.host,
        )
    uvicorn.run(
        create_app(config, clock=clock, fingerprint=fingerprint, config_path=config_path),
        host=config.web.host,
        port=config.web.port,
        log_level="warning",
        proxy_headers=False,  # the client's own address is what login attempts are counted by
        server_header=False,
        **tls,  # type: ignore[arg-type]
    )
    return 0
