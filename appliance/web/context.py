"""What the handlers share: the process's context, refusals, cookies."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from appliance.agenda.practice import Practice, resolve_practice
from appliance.clock import Clock
from appliance.config import Config, load_config
from appliance.errors import ApplianceError
from appliance.settings_file import PRACTICE_NAME, overlay_path
from appliance.store import Store
from appliance.web.auth import Passwords
from appliance.web.render import Renderer


@dataclass(kw_only=True)
class WebContext:
    """What every handler reaches through ``request.app.state.ctx``."""

    config: Config
    clock: Clock
    passwords: Passwords
    renderer: Renderer
    store: Store | None = None
    """Opened by the app's lifespan, closed with it."""
    fingerprint: str | None = None
    """The HTTPS certificate's SHA-256, when the page is served over HTTPS."""
    config_path: Path | None = None
    """The installer's configuration file, under the settings the page saves."""
    _practice: Practice | None = None
    _practice_seen: tuple[float, float] | None = None

    @property
    def db(self) -> Store:
        if self.store is None:
            raise RuntimeError("the web page's store is not open (outside the app's lifespan)")
        return self.store

    @property
    def control_socket(self) -> Path:
        return self.config.data_dir / "control.sock"

    def practice(self) -> Practice | None:
        """The configured practice (names of practitioners and reasons), None if unreadable.

        Read again when the Settings page saved something since: the page must show
        the practitioners the staff just renamed, not those of the web process's start.
        """
        seen = (_mtime(overlay_path(self.config.data_dir)), _mtime(self.config.data_dir / PRACTICE_NAME))
        if self._practice is None or seen != self._practice_seen:
            try:
                current = load_config(self.config_path, data_dir=self.config.data_dir)
                self._practice = resolve_practice(current.practice)
                self._practice_seen = seen
            except (ApplianceError, OSError, ValueError):
                return self._practice
        return self._practice


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def ctx_of(request: Request) -> WebContext:
    return request.app.state.ctx  # type: ignore[no-any-return]


def is_htmx(request: Request) -> bool:
    return "hx-request" in request.headers


def wants_html(request: Request) -> bool:
    """A browser navigating (a whole page), not htmx nor a script."""
    return not is_htmx(request) and "text/html" in request.headers.get("accept", "")


def refusal(request: Request, status: int, reason: str) -> Response:
    """A readable refusal: a page for a browser, a line of text for htmx, JSON for scripts."""
    t = request.state.t
    if is_htmx(request):
        return PlainTextResponse(t(reason), status_code=status)  # shown by app.js in the page's notice area
    if not wants_html(request):
        return JSONResponse({"ok": False, "error": t(reason)}, status_code=status)
    return ctx_of(request).renderer.page(
        request, "refused.html", status_code=status, reason=t(reason), title=t("errors.refused_title")
    )


def set_cookie(response: Response, name: str, value: str, *, max_age: int | None, httponly: bool = True) -> None:
    # Secure even on http://127.0.0.1: browsers accept it there (see auth's docstring).
    response.set_cookie(name, value, max_age=max_age, path="/", secure=True, httponly=httponly, samesite="strict")
