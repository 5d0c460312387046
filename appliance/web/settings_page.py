"""The Settings page (administrators): the practice, when the box answers, what it keeps,
the cloud agenda, and what it says about languages and the LLM helper.

One page, one form per section, so a mistake in one section never loses what
was typed in another. A section is saved through ``settings_file``: the whole
configuration (and practice) is validated before anything is written, a refusal
names the setting and is shown next to its field, and nothing is half-saved.
After a save the core is asked to ``reload``: the change applies to the next
call, never to one in progress; a core that does not answer takes it at its next
start (it reads the same files).

These handlers translate HTTP into calls of ``settings_forms`` (fields ↔ tables),
``settings_file`` (validate and write), the control socket and the sync adapters.
"""

from __future__ import annotations

import asyncio
import logging
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Final

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from appliance.agenda.practice import WEEKDAYS, resolve_practice
from appliance.config import Config, load_config
from appliance.control import ask
from appliance.errors import ConfigError, SyncError
from appliance.settings_file import merge, overlay_path, read_overlay, save_practice, save_settings
from appliance.sync.factory import open_adapter
from appliance.sync.settings import SyncSettings
from appliance.web.context import ctx_of
from appliance.web.settings_forms import (
    ADAPTERS, CONFIG_SECTIONS, MODES, PRACTICE_SECTIONS, PRESETS, RETENTION_FIELDS, RULE_NUMBERS, SECTIONS,
    Submitted, Translate, current_values, field_of, read_form,
)

_LOGGER = logging.getLogger(__name__)
_RELOAD_TIMEOUT_S: Final = 5.0  # the core answers in milliseconds; the page must not hang on a stuck one
Notice = tuple[str, str, str]
"""(section, ``ok``/``warn``/``bad``, text) shown at the top of that section."""


def config_path_of(request: Request) -> Path | None:
    """The installer's configuration file the web process was started with (``--config``)."""
    return getattr(request.app.state, "config_path", None)


def _fresh_config(request: Request) -> Config:
    """The configuration as the core would load it now (the page may have changed it since start)."""
    ctx = ctx_of(request)
    try:
        return load_config(config_path_of(request), data_dir=ctx.config.data_dir)
    except ConfigError:
        return ctx.config  # the installer's file was broken after start: show what the page runs on


def practice_table(spec: str) -> dict[str, Any]:
    """The practice as a TOML table, the shape ``save_practice`` takes.

    Same reading of ``spec`` as ``resolve_practice``: a bare word is a built-in
    practice, anything with a slash or ``.toml`` is a file."""
    if "/" in spec or "\\" in spec or spec.endswith(".toml"):
        text = Path(spec).expanduser().read_text(encoding="utf-8")
    else:
        resolve_practice(spec)  # a name that is not built in raises ConfigError, naming those that are
        text = (resources.files("appliance.agenda") / "practices" / f"{spec}.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def _plain(detail: str, request: Request) -> str:
    """A validation message without the file it was found in (the staff did not edit a file)."""
    data_dir = ctx_of(request).config.data_dir
    for where in (overlay_path(data_dir), config_path_of(request), "the practice"):
        if where is not None:
            detail = detail.removeprefix(f"{where}: ")
    return detail


# --- Handlers ----------------------------------------------------------------------------


async def settings_page(request: Request) -> Response:
    return _view(request)


async def settings_save(request: Request) -> Response:
    section = request.path_params["section"]
    if section not in SECTIONS:
        raise HTTPException(404)
    ctx = ctx_of(request)
    t = request.state.t
    config = _fresh_config(request)
    table = _table_or_none(config)
    if section in PRACTICE_SECTIONS and table is None:
        return _view(request, status_code=409, notice=(section, "bad", t("settings.practice_unreadable")))
    submitted = read_form(section, await request.form(), config, table, t)
    if not submitted.errors:
        try:
            await asyncio.to_thread(_save, submitted, config, config_path_of(request), ctx.config.data_dir)
        except ConfigError as err:
            _refused(request, section, submitted, err)
    if submitted.errors:
        return _view(request, status_code=400, submitted={section: submitted})
    _LOGGER.info("settings (%s) saved by staff member %d", section, request.state.user.id)
    return _view(request, notice=(section, *await _apply(request, t)))


async def cloud_check(request: Request) -> Response:
    """Try the cloud agenda with the values in the form, without saving them."""
    t = request.state.t
    config = _fresh_config(request)
    submitted = read_form("cloud", await request.form(), config, None, t)
    if submitted.values["adapter"] not in ("fhir", "caldav"):
        return _view(request, submitted={"cloud": submitted}, notice=("cloud", "warn", t("settings.cloud_nothing")))
    data_dir = ctx_of(request).config.data_dir
    try:
        # Empty secret fields keep the stored ones: merged exactly as a save would.
        overlay = merge(read_overlay(data_dir), submitted.changes or {})
        candidate = await asyncio.to_thread(load_config, config_path_of(request), data_dir=data_dir, overlay=overlay)
    except ConfigError as err:
        _refused(request, "cloud", submitted, err)
        return _view(request, status_code=400, submitted={"cloud": submitted})
    # The adapter speaks HTTP synchronously, up to its timeout: off the loop.
    kind, text = await asyncio.to_thread(_check, candidate.sync, t)
    return _view(request, submitted={"cloud": submitted}, notice=("cloud", kind, text))


def _check(sync: SyncSettings, t: Translate) -> tuple[str, str]:
    adapter = open_adapter(sync)
    if adapter is None:
        return "warn", t("settings.cloud_nothing")
    try:
        return "ok", t("settings.cloud_ok", detail=adapter.check())
    except SyncError as err:
        return "bad", t("settings.cloud_failed", detail=err.detail or err.code)
    finally:
        close = getattr(adapter, "close", None)
        if close is not None:
            close()


def _save(submitted: Submitted, config: Config, config_path: Path | None, data_dir: Path) -> None:
    if submitted.table is not None:
        # A practitioner the cloud agenda has no place for would make the core refuse
        # the reload: refuse it here, before anything is written.
        config.sync.check_practice(tuple(str(p.get("id")) for p in submitted.table.get("practitioners", [])))
        save_practice(config_path, data_dir, submitted.table)
        return
    changes = submitted.changes or {}
    if "sync" in changes:
        candidate = load_config(config_path, data_dir=data_dir, overlay=merge(read_overlay(data_dir), changes))
        candidate.sync.check_practice(tuple(p.id for p in resolve_practice(candidate.practice).practitioners))
    save_settings(config_path, data_dir, changes)


def _refused(request: Request, section: str, submitted: Submitted, err: ConfigError) -> None:
    detail = _plain(err.detail, request)
    name = field_of(section, detail, submitted) or "_form"
    submitted.errors[name] = request.state.t("settings.refused", detail=detail)


async def _apply(request: Request, t: Translate) -> tuple[str, str]:
    """Ask the core to take the saved change for its next calls; say what happened."""
    try:
        answer = await ask(ctx_of(request).control_socket, {"cmd": "reload"}, timeout_s=_RELOAD_TIMEOUT_S)
    except (ConnectionError, OSError, ValueError):
        return "ok", t("settings.saved_offline")
    if not answer.get("ok"):
        return "warn", t("settings.core_refused", error=str(answer.get("error", "")))
    restart = [str(name) for name in answer.get("restart") or []]
    if restart:
        return "warn", t("settings.applied") + " " + t("settings.restart", what=", ".join(restart))
    return "ok", t("settings.applied")


def _table_or_none(config: Config) -> dict[str, Any] | None:
    try:
        return practice_table(config.practice)
    except (ConfigError, OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None


def _view(
    request: Request,
    *,
    status_code: int = 200,
    submitted: dict[str, Submitted] | None = None,
    notice: Notice | None = None,
) -> Response:
    ctx = ctx_of(request)
    config = _fresh_config(request)
    table = _table_or_none(config)
    values: dict[str, Any] = {s: current_values(s, config, table) for s in CONFIG_SECTIONS}
    if table is not None:
        values.update({s: current_values(s, config, table) for s in PRACTICE_SECTIONS})
    errors: dict[str, dict[str, str]] = {s: {} for s in SECTIONS}
    for section, form in (submitted or {}).items():
        values[section], errors[section] = form.values, form.errors
    practitioners = [(str(p.get("id")), str(p.get("display_name", p.get("id")))) for p in (table or {}).get("practitioners", [])]
    return ctx.renderer.page(
        request,
        "settings.html",
        status_code=status_code,
        active="settings",
        v=values,
        e=errors,
        notice=notice,
        practice_ok=table is not None,
        practitioners=practitioners,
        weekdays=WEEKDAYS,
        rule_numbers=RULE_NUMBERS,
        retention_fields=RETENTION_FIELDS,
        modes=MODES,
        presets=PRESETS,
        adapters=ADAPTERS,
        models=config.models,
        language=config.speech.language,
    )
