"""Pages from templates, in the staff's language.

Interface text lives in ``locales/<lang>.toml`` (French complete; German and
English may lag: a missing key falls back to French, never to a blank). The
language is the one the person chose on the page (a cookie, so it holds on the
login page too), else the store's ``web.language`` setting (the box's default)
when set, else the browser's ``Accept-Language``, else French.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from datetime import datetime, tzinfo
from importlib import resources
from typing import Any, Final

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

LANGUAGES: Final = ("fr", "de", "en")
DEFAULT_LANGUAGE: Final = "fr"
LANGUAGE_SETTING: Final = "web.language"
LANGUAGE_COOKIE: Final = "box_lang"
LANGUAGE_NAMES: Final = (("fr", "Français"), ("de", "Deutsch"), ("en", "English"))
"""The chooser's labels, each in its own language: someone lost in a foreign page still finds theirs."""


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in table.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = str(value)
    return flat


def load_locales() -> dict[str, dict[str, str]]:
    folder = resources.files("appliance.web") / "locales"
    return {
        lang: _flatten(tomllib.loads((folder / f"{lang}.toml").read_text(encoding="utf-8"))) for lang in LANGUAGES
    }


def choose_language(preferred: object, accept_language: str | None, *, chosen: object = None) -> str:
    """The person's choice (``chosen``, their cookie) if valid, else the practice's
    (``preferred``), else the best of the browser's, else French."""
    for choice in (chosen, preferred):
        if isinstance(choice, str) and choice in LANGUAGES:
            return choice
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        base = tag.strip().lower().split("-")[0]
        if base in LANGUAGES and quality > 0:
            ranked.append((-quality, position, base))
    return min(ranked)[2] if ranked else DEFAULT_LANGUAGE


class Translator:
    """``t("inbox.title")``, ``t("today.calls", n=3)`` in one language."""

    def __init__(self, locales: Mapping[str, Mapping[str, str]], lang: str) -> None:
        self.lang = lang
        self._own = locales[lang]
        self._fallback = locales[DEFAULT_LANGUAGE]

    def __call__(self, key: str, **values: Any) -> str:
        text = self._own.get(key) or self._fallback.get(key)
        if text is None:
            return key  # visible in the page, and caught by the locale test
        return text.format(**values) if values else text

    def label(self, group: str, value: str | None) -> str:
        """The label of a stored code (``outcome.booked``), or the code itself if none."""
        if value is None:
            return "—"
        key = f"{group}.{value}"
        return self(key) if key in self._own or key in self._fallback else value

    def when(self, moment: datetime | None, zone: tzinfo) -> str:
        if moment is None:
            return "—"
        return moment.astimezone(zone).strftime(self("format.datetime"))


class Renderer:
    def __init__(self, *, htmx: bool) -> None:
        self.locales = load_locales()
        self.htmx = htmx
        """The vendored htmx is there: pages load it; without it forms post whole pages."""
        self._env = Environment(
            loader=PackageLoader("appliance.web"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            undefined=StrictUndefined,  # a misspelt variable fails the test, not the page silently
            trim_blocks=True,
            lstrip_blocks=True,
        )

    def translator(self, lang: str) -> Translator:
        return Translator(self.locales, lang)

    def page(
        self,
        request: Request,
        template: str,
        *,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        **context: Any,
    ) -> HTMLResponse:
        state = request.state
        values: dict[str, Any] = {
            "t": state.t,
            "lang": state.t.lang,
            "user": getattr(state, "user", None),
            "csrf": state.csrf,
            "htmx": self.htmx,
            "active": "",
            "zone": state.zone,
            "when": lambda moment: state.t.when(moment, state.zone),
            "languages": LANGUAGE_NAMES,
            # Where the language chooser brings the person back (a GET page; see account.set_language).
            "here": str(request.url.path) + (f"?{request.url.query}" if request.method == "GET" and request.url.query else ""),
            "reauth_due": getattr(state, "reauth_due", False),
        }
        values.update(context)
        html = self._env.get_template(template).render(values)
        return HTMLResponse(html, status_code=status_code, headers=dict(headers or {}))
