"""Administrator pages: staff accounts, and the patients' data (export, erasure, backup).

Only reached through ``/admin/...`` routes, which the app's guard opens to
administrators alone; these handlers do not check the role again. Creating,
disabling, enabling an account or setting its password, erasing a patient's
data and downloading a backup also want the password typed within the last few
minutes (``account.confirm_password``): the form carries it when it is due.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import tempfile
from datetime import date
from pathlib import Path
from typing import Any, Final

from starlette.background import BackgroundTask
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response

from appliance.errors import StoreError
from appliance.store import outbox, retention, staff
from appliance.web import auth
from appliance.web.account import REAUTH_FIELD, confirm_password
from appliance.web.context import ctx_of

_LOGGER = logging.getLogger(__name__)

# Notices a redirect may ask the page to show (never free text from the URL).
_STAFF_NOTICES: Final = frozenset({"created", "disabled", "enabled", "password"})


# --- Staff accounts ------------------------------------------------------------------


def _staff_view(
    request: Request,
    *,
    status_code: int = 200,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    member_errors: dict[int, dict[str, str]] | None = None,
    notice: str | None = None,
) -> Response:
    ctx = ctx_of(request)
    if notice is None and request.query_params.get("notice") in _STAFF_NOTICES:
        notice = request.state.t(f"staff.notice_{request.query_params['notice']}")
    return ctx.renderer.page(
        request,
        "staff.html",
        status_code=status_code,
        active="staff",
        members=staff.staff_members(ctx.db),
        values=values or {"username": "", "role": "secretary"},
        errors=errors or {},
        member_errors=member_errors or {},
        notice=notice,
    )


async def staff_page(request: Request) -> Response:
    return _staff_view(request)


async def staff_create(request: Request) -> Response:
    ctx = ctx_of(request)
    t = request.state.t
    form = await request.form()
    values = {"username": auth.normalize_username(str(form.get("username", ""))), "role": str(form.get("role", ""))}
    password, confirm = str(form.get("password", "")), str(form.get("confirm", ""))
    errors: dict[str, str] = {}
    if problem := auth.username_problem(values["username"]):
        errors["username"] = t(problem)
    if values["role"] not in staff.ROLES:
        errors["role"] = t("errors.role_invalid")
    if problem := auth.password_problem(password, confirm):
        errors["password"] = t(problem)
    if problem := await confirm_password(request, form):
        errors[REAUTH_FIELD] = problem
    if not errors:
        password_hash = await ctx.passwords.hash(password)
        try:
            staff.create_staff(
                ctx.db,
                username=values["username"],
                role=values["role"],  # type: ignore[arg-type]
                password_hash=password_hash,
                at=ctx.clock.now(),
            )
        except StoreError as err:
            if err.code != "username-taken":
                raise
            errors["username"] = t("errors.username_taken")
    if errors:
        return _staff_view(request, status_code=_status(errors), values=values, errors=errors)
    _LOGGER.info("staff account created (%s) by staff member %d", values["role"], request.state.user.id)
    return RedirectResponse("/admin/staff?notice=created", status_code=303)


def _member(request: Request) -> staff.StaffMember:
    member = staff.get_staff(ctx_of(request).db, request.path_params["staff_id"])
    if member is None:
        raise HTTPException(404)
    return member


def _status(errors: dict[str, str]) -> int:
    """401 when only the password typed again is missing or wrong, else 400 (a field is wrong)."""
    return 401 if set(errors) == {REAUTH_FIELD} else 400


async def _unconfirmed(request: Request, member: staff.StaffMember) -> Response | None:
    """The staff page with the password asked next to ``member``'s buttons, or None when confirmed."""
    if problem := await confirm_password(request, await request.form()):
        # Keyed apart from the password form's own field: the page shows it by the button that asked.
        return _staff_view(request, status_code=401, member_errors={member.id: {"reauth_state": problem}})
    return None


async def staff_disable(request: Request) -> Response:
    ctx = ctx_of(request)
    member = _member(request)
    if member.id == request.state.user.id:
        return _staff_view(request, status_code=400, member_errors={member.id: {"state": request.state.t("errors.disable_self")}})
    if refused := await _unconfirmed(request, member):
        return refused
    try:
        staff.disable_staff(ctx.db, member.id, at=ctx.clock.now())
    except StoreError as err:
        if err.code != "last-admin":
            raise
        return _staff_view(request, status_code=400, member_errors={member.id: {"state": request.state.t("errors.last_admin")}})
    _LOGGER.info("staff account %d disabled by staff member %d", member.id, request.state.user.id)
    return RedirectResponse("/admin/staff?notice=disabled", status_code=303)


async def staff_enable(request: Request) -> Response:
    member = _member(request)
    if refused := await _unconfirmed(request, member):
        return refused
    staff.enable_staff(ctx_of(request).db, member.id)
    return RedirectResponse("/admin/staff?notice=enabled", status_code=303)


async def staff_password(request: Request) -> Response:
    ctx = ctx_of(request)
    member = _member(request)
    form = await request.form()
    errors: dict[str, str] = {}
    if problem := auth.password_problem(str(form.get("password", "")), str(form.get("confirm", ""))):
        errors["password"] = request.state.t(problem)
    if problem := await confirm_password(request, form):
        errors[REAUTH_FIELD] = problem
    if errors:
        return _staff_view(request, status_code=_status(errors), member_errors={member.id: errors})
    # Every session of that account ends: whoever knew the old password is out.
    staff.set_password(ctx.db, member.id, await ctx.passwords.hash(str(form["password"])))
    _LOGGER.info("password of staff account %d reset by staff member %d", member.id, request.state.user.id)
    if member.id == request.state.user.id:
        return RedirectResponse("/login", status_code=303)
    return RedirectResponse("/admin/staff?notice=password", status_code=303)


# --- Patients' data ------------------------------------------------------------------

_DATE_FR: Final = re.compile(r"^(\d{1,2})[/.](\d{1,2})[/.](\d{4})$")


def parse_birth_date(text: str) -> date | None:
    """``AAAA-MM-JJ`` (a date field) or ``JJ/MM/AAAA`` / ``JJ.MM.AAAA`` (typed by hand)."""
    text = text.strip()
    try:
        if match := _DATE_FR.match(text):
            return date(int(match[3]), int(match[2]), int(match[1]))
        return date.fromisoformat(text)
    except ValueError:
        return None


def _patient_query(request: Request, form: FormData) -> tuple[dict[str, str], dict[str, str], retention.PatientQuery | None]:
    t = request.state.t
    values = {key: str(form.get(key, "")).strip() for key in ("last_name", "birth_date", "phone")}
    errors: dict[str, str] = {}
    if not values["last_name"]:
        errors["last_name"] = t("errors.required")
    birth = parse_birth_date(values["birth_date"])
    if not values["birth_date"]:
        errors["birth_date"] = t("errors.required")
    elif birth is None or birth.year < 1880:
        errors["birth_date"] = t("errors.date_invalid")
    phone = re.sub(r"[\s.\-]", "", values["phone"]) or None
    if phone is not None and not re.fullmatch(r"\+?\d{6,15}", phone):
        errors["phone"] = t("errors.phone_invalid")
    if errors:
        return values, errors, None
    assert birth is not None
    return values, errors, retention.PatientQuery(last_name=values["last_name"], birth_date=birth, phone=phone)


def _counts(found: dict[str, Any]) -> dict[str, int]:
    return {key: len(found[key]) for key in ("appointments", "messages", "calls")}


def _data_view(request: Request, *, status_code: int = 200, form: str = "", values: dict[str, str] | None = None,
               errors: dict[str, str] | None = None, notice: str | None = None) -> Response:
    ctx = ctx_of(request)
    return ctx.renderer.page(
        request,
        "data.html",
        status_code=status_code,
        active="data",
        form=form,
        values=values or {},
        errors=errors or {},
        notice=notice,
    )


async def data_page(request: Request) -> Response:
    return _data_view(request)


async def data_export(request: Request) -> Response:
    ctx = ctx_of(request)
    values, errors, who = _patient_query(request, await request.form())
    if who is None:
        return _data_view(request, status_code=400, form="export", values=values, errors=errors)
    found = retention.export_patient(ctx.db, who)
    if not any(_counts(found).values()):
        return _data_view(request, form="export", values=values, notice=request.state.t("data.nothing_found"))
    _LOGGER.info("patient data exported by staff member %d", request.state.user.id)
    stamp = ctx.clock.now().strftime("%Y%m%d-%H%M%S")
    body = json.dumps(found, ensure_ascii=False, indent=2, default=str)
    return Response(
        body,
        media_type="application/json; charset=utf-8",
        # No name in the file name: downloads folders are seen by more people.
        headers={"content-disposition": f'attachment; filename="patient-export-{stamp}.json"'},
    )


async def data_erase(request: Request) -> Response:
    ctx = ctx_of(request)
    t = request.state.t
    form = await request.form()
    values, errors, who = _patient_query(request, form)
    if who is None:
        return _data_view(request, status_code=400, form="erase", values=values, errors=errors)
    if form.get("confirm") != "yes":
        # First step: say what would go, and ask again.
        counts = _counts(retention.export_patient(ctx.db, who))
        if not any(counts.values()):
            return _data_view(request, form="erase", values=values, notice=t("data.nothing_found"))
        return ctx.renderer.page(request, "data_erase_confirm.html", active="data", values=values, counts=counts,
                                 errors={})
    if problem := await confirm_password(request, form):
        counts = _counts(retention.export_patient(ctx.db, who))
        return ctx.renderer.page(request, "data_erase_confirm.html", status_code=401, active="data", values=values,
                                 counts=counts, errors={REAUTH_FIELD: problem})
    erased = retention.erase_patient(ctx.db, who, now=ctx.clock.now())
    _LOGGER.info(
        "patient data erased by staff member %d: %d appointments (%d cancelled), %d messages, %d calls",
        request.state.user.id, erased.appointments, erased.cancelled, erased.messages, erased.calls,
    )
    notice = t("data.erased", appointments=erased.appointments, cancelled=erased.cancelled,
               messages=erased.messages, calls=erased.calls)
    return _data_view(request, notice=notice)


async def data_backup(request: Request) -> Response:
    ctx = ctx_of(request)
    if problem := await confirm_password(request, await request.form()):
        return _data_view(request, status_code=401, form="backup", errors={REAUTH_FIELD: problem})
    # Next to the database: same disk, and the box's own directory (mode 0600 by mkstemp).
    fd, name = tempfile.mkstemp(dir=ctx.config.data_dir, prefix=".backup-", suffix=".db")
    os.close(fd)
    path = Path(name)
    try:
        await asyncio.to_thread(ctx.db.backup_to, path)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    _LOGGER.info("full backup downloaded by staff member %d", request.state.user.id)
    stamp = ctx.clock.now().strftime("%Y%m%d-%H%M")
    return FileResponse(
        path,
        media_type="application/vnd.sqlite3",
        filename=f"appliance-backup-{stamp}.db",
        background=BackgroundTask(path.unlink, missing_ok=True),
    )


async def sync_retry(request: Request) -> Response:
    """Give every dead letter another round (the staff fixed the cause: a mapping, a password)."""
    ctx = ctx_of(request)
    for entry in outbox.outbox_entries(ctx.db, state="dead"):
        outbox.revive(ctx.db, entry.id)
    return RedirectResponse("/", status_code=303)
