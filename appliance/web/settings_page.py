"""The Settings page (administrators): the practice, when the box answers, what it keeps,
the cloud agenda, and what it says about languages and the LLM helper.

One page, one form per section, so a mistake in one section never loses what
was typed in another. Each field is checked by ``settings_forms`` first, with
its refusal next to it in the staff's language. Then the section is saved
through ``settings_file``: the whole configuration (and practice) is validated
before anything is written, and nothing is half-saved. When that validation
still refuses (a rule tying settings together), the page names the field in the
staff's language and keeps the box's English sentence as a technical detail.
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
from dataclasses import dataclass
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
from appliance.llm.qualify import helper_status
from appliance.settings_file import (
    dumps, merge, overlay_path, read_overlay, save_practice, save_settings, write_atomically,
)
from appliance.sync.factory import open_adapter
from appliance.sync.settings import SyncSettings
from appliance.web.account import REAUTH_FIELD, confirm_password
from appliance.web.context import ctx_of
from appliance.web.settings_forms import (
    ADAPTERS, CONFIG_SECTIONS, MODES, PRACTICE_SECTIONS, PRESETS, RETENTION_FIELDS, RULE_NUMBERS, SECTIONS,
    Submitted, Translate, current_values, field_label, field_of, read_form,
)

_LOGGER = logging.getLogger(__name__)
_RELOAD_TIMEOUT_S: Final = 5.0  # the core answers in milliseconds; the page must not hang on a stuck one
# What a failed connection test says, by the end of the adapter's error code.
_CLOUD_REASONS: Final = {
    "unreachable": "unreachable", "timeout": "timeout", "auth": "auth", "forbidden": "forbidden",
    "not-found": "not_found", "no-calendar": "not_found", "not-fhir": "not_fhir", "version": "version",
    "busy": "busy", "unavailable": "busy", "redirect": "redirect",
}


@dataclass(frozen=True, slots=True)
class Refusal:
    """A sentence for the staff, with the box's own (English) words for whoever helps them.

    Shown like any message (``str``); the templates add ``detail`` on a small line below."""

    text: str
    detail: str

    def __str__(self) -> str:
        return self.text


Notice = tuple[str, str, "str | Refusal"]
"""(section, ``ok``/``warn``/``bad``, text) shown at the top of that section."""


def config_path_of(request: Request) -> Path | None:
    """The installer's configuration file the web process was started with (``--config``)."""
    return getattr(request.app.state, "config_path", None)


def _installer_config(request: Request) -> Config:
    """The configuration without what the page saved: what an emptied field falls back to."""
    ctx = ctx_of(request)
    try:
        return load_config(config_path_of(request), data_dir=ctx.config.data_dir, overlay={})
    except ConfigError:
        return ctx.config


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
    form = await request.form()
    submitted = read_form(section, form, config, table, t, installer=_installer_config(request))
    if submitted.sensitive and (problem := await confirm_password(request, form)):
        submitted.errors[REAUTH_FIELD] = problem
    if not submitted.errors:
        try:
            await asyncio.to_thread(_save, submitted, config, config_path_of(request), ctx.config.data_dir)
        except ConfigError as err:
            _refused(request, section, submitted, err, table)
        except OSError as err:
            _LOGGER.error("settings (%s) could not be written: %s", section, err)
            submitted.errors["_form"] = Refusal(t("settings.not_written"), t("settings.technical", detail=str(err)))
    if submitted.errors:
        return _view(request, status_code=_status(submitted), submitted={section: submitted})
    _LOGGER.info("settings (%s) saved by staff member %d", section, request.state.user.id)
    return _view(request, notice=(section, *await _apply(request, t)))


async def cloud_check(request: Request) -> Response:
    """Try the cloud agenda with the values in the form, without saving them."""
    t = request.state.t
    config = _fresh_config(request)
    table = _table_or_none(config)
    form = await request.form()
    submitted = read_form("cloud", form, config, table, t, installer=_installer_config(request))
    if submitted.values["adapter"] not in ("fhir", "caldav"):
        return _view(request, submitted={"cloud": submitted}, notice=("cloud", "warn", t("settings.cloud_nothing")))
    # A new address would receive the stored password or token: the same care as a save.
    if submitted.sensitive and (problem := await confirm_password(request, form)):
        submitted.errors[REAUTH_FIELD] = problem
    if submitted.errors:
        return _view(request, status_code=_status(submitted), submitted={"cloud": submitted})
    data_dir = ctx_of(request).config.data_dir
    try:
        # Empty secret fields keep the stored ones: merged exactly as a save would.
        overlay = _overlay_after(data_dir, submitted)
        candidate = await asyncio.to_thread(load_config, config_path_of(request), data_dir=data_dir, overlay=overlay)
    except ConfigError as err:
        _refused(request, "cloud", submitted, err, table)
        return _view(request, status_code=400, submitted={"cloud": submitted})
    # The adapter speaks HTTP synchronously, up to its timeout: off the loop.
    kind, text = await asyncio.to_thread(_check, candidate.sync, t)
    return _view(request, submitted={"cloud": submitted}, notice=("cloud", kind, text))


def _check(sync: SyncSettings, t: Translate) -> tuple[str, str | Refusal]:
    try:
        adapter = open_adapter(sync)
    except ConfigError as err:  # e.g. the installer's password file cannot be read
        return "bad", Refusal(t("settings.cloud_failed", detail=t("cloud_why.other")),
                              t("settings.technical", detail=err.detail))
    if adapter is None:
        return "warn", t("settings.cloud_nothing")
    try:
        return "ok", t("settings.cloud_ok", detail=adapter.check())
    except (SyncError, ConfigError) as err:
        code = err.code if isinstance(err, SyncError) else ""
        reason = next((key for end, key in _CLOUD_REASONS.items() if code.endswith(end)), "other")
        return "bad", Refusal(t("settings.cloud_failed", detail=t(f"cloud_why.{reason}")),
                              t("settings.technical", detail=err.detail or err.code))
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
    overlay = _overlay_after(data_dir, submitted)
    if "sync" in changes:
        candidate = load_config(config_path, data_dir=data_dir, overlay=overlay)
        candidate.sync.check_practice(tuple(p.id for p in resolve_practice(candidate.practice).practitioners))
    if not submitted.removed:
        save_settings(config_path, data_dir, changes)
        return
    # Taking keys out is not a merge: validate the whole as save_settings does, then write.
    load_config(config_path, data_dir=data_dir, overlay=overlay)
    write_atomically(overlay_path(data_dir), dumps(overlay))


def _overlay_after(data_dir: Path, submitted: Submitted) -> dict[str, Any]:
    """The page's settings as they would be with this section saved."""
    overlay = merge(read_overlay(data_dir), submitted.changes or {})
    for path in submitted.removed:
        _take_out(overlay, path)
    return overlay


def _take_out(table: dict[str, Any], path: tuple[str, ...]) -> None:
    """Remove ``path`` (``("sync", "fhir", "bearer_token")``), and the tables it leaves empty."""
    inner = table.get(path[0])
    if len(path) == 1:
        table.pop(path[0], None)
    elif isinstance(inner, dict):
        inner = table[path[0]] = dict(inner)  # merge() shares nested tables with the file's copy
        _take_out(inner, path[1:])
        if not inner:
            table.pop(path[0])


def _status(submitted: Submitted) -> int:
    """401 when only the password typed again is missing or wrong, else 400 (a field is wrong)."""
    return 401 if set(submitted.errors) == {REAUTH_FIELD} else 400


def _refused(
    request: Request, section: str, submitted: Submitted, err: ConfigError, table: dict[str, Any] | None
) -> None:
    """The box's own check refused what the field checks let through: name the field, keep its words as detail."""
    t = request.state.t
    detail = _plain(err.detail, request)
    name = field_of(section, detail, submitted) or "_form"
    if name == "_form":
        text = t("settings.refused_form")
    else:
        names = {str(p.get("id")): str(p.get("display_name", p.get("id"))) for p in (table or {}).get("practitioners", [])}
        text = t("settings.refused_field", field=field_label(section, name, t, names))
    # Not the detail: it may quote what was typed, and the page shows it already.
    _LOGGER.info("settings (%s) refused by the configuration check", section)
    submitted.errors[name] = Refusal(text, t("settings.technical", detail=detail))


async def _apply(request: Request, t: Translate) -> tuple[str, str | Refusal]:
    """Ask the core to take the saved change for its next calls; say what happened."""
    try:
        answer = await ask(ctx_of(request).control_socket, {"cmd": "reload"}, timeout_s=_RELOAD_TIMEOUT_S)
    except (ConnectionError, OSError, ValueError):
        return "ok", t("settings.saved_offline")
    if not answer.get("ok"):
        return "warn", Refusal(t("settings.core_refused"), t("settings.technical", detail=str(answer.get("error", ""))))
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
    installer = _installer_config(request)
    values: dict[str, Any] = {s: current_values(s, config, table, installer) for s in CONFIG_SECTIONS}
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
        llm=helper_status(ctx.db),
        language=config.speech.language,
    )
