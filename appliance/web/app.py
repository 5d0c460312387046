"""The local web page (a placeholder until the setup page has its own issue).

A separate process: it reads the shared SQLite store (WAL) and never touches the
line. It shows that the box is alive and what it did today.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import uvicorn
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

from appliance.clock import SystemClock
from appliance.config import Config
from appliance.store import Store, queries

_TEMPLATES = Environment(loader=PackageLoader("appliance.web"), autoescape=select_autoescape())
# How the staff read a call's outcome (the codes are the simulate contract's).
_OUTCOMES = {
    "booked": "rendez-vous pris",
    "cancelled": "rendez-vous annulé",
    "rescheduled": "rendez-vous déplacé",
    "message": "message laissé",
    "emergency": "urgence : orienté vers le 15",
    "transferred": "transféré",
    "abandoned": "sans suite",
    "answered": "renseigné",
}


def create_app(config: Config) -> Starlette:
    clock = SystemClock()
    # One connection for the process (WAL: the core keeps writing while we read),
    # opened with the app rather than per request, so migrations are checked once.
    db = Store.open(config.db_path)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            db.close()

    async def home(request: Request) -> HTMLResponse:
        since = clock.now() - timedelta(days=1)  # recent_calls answers in since's zone
        calls = queries.recent_calls(db, since)
        practice_name = queries.practice_name(db)
        page = _TEMPLATES.get_template("home.html").render(
            practice=practice_name or "—",
            calls=calls,
            outcomes=_OUTCOMES,
            now=clock.now().strftime("%d/%m/%Y %H:%M"),
        )
        return HTMLResponse(page)

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True, "time": datetime.now().isoformat(timespec="seconds")})

    return Starlette(routes=[Route("/", home), Route("/healthz", health)], lifespan=lifespan)


def serve(config: Config) -> int:
    config.data_dir.mkdir(parents=True, exist_ok=True)
    uvicorn.run(create_app(config), host=config.web.host, port=config.web.port, log_level="warning")
    return 0
