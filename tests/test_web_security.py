"""Nobody who is not staff gets in, and staff get only what their role allows.

Driven through the real app (routes, guard, store, argon2) with Starlette's test
client on an https:// base URL, so the browser-like cookie jar keeps the Secure
session cookie. The HTTPS certificate is checked against a real uvicorn.
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
import shutil
import ssl
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn
from cryptography import x509
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from appliance.clock import PARIS, FixedClock
from appliance.config import Config, WebSettings
from appliance.simulate.runner import simulate
from appliance.simulate.scenario import load_scenario
from appliance.store import Store, inbox, staff
from appliance.web.app import create_app
from appliance.web.render import LANGUAGES, load_locales
from appliance.web.tls import ensure_certificate

from tests.ports import free_port
from .conftest import REPO, SCENARIOS

PUBLIC = {"/login", "/setup", "/healthz", "/language"}
ADMIN_PASSWORD = "correct horse battery"
SECRETARY_PASSWORD = "staple of the practice"
CALLER = "0698765432"  # the emergency scenario's caller
TRANSCRIPT_BIT = "douleur dans la poitrine"


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir holding one emergency call and its message, as the core leaves it."""
    data_dir = tmp_path_factory.mktemp("seed")
    config = replace(Config(), data_dir=data_dir)
    asyncio.run(simulate(load_scenario(SCENARIOS / "emergency_chest_pain.toml"), mode="text", config=config))
    return data_dir


@pytest.fixture
def data_dir(seeded: Path, tmp_path: Path) -> Path:
    target = tmp_path / "data"
    shutil.copytree(seeded, target)
    return target


@pytest.fixture
def client(data_dir: Path) -> Iterator[TestClient]:
    app = create_app(replace(Config(), data_dir=data_dir))
    with TestClient(app, base_url="https://testserver") as test_client:
        yield test_client


def emergency_call(data_dir: Path) -> str:
    """The id of the seeded emergency call (simulated ids count up within a test run)."""
    with Store.open(data_dir / "appliance.db") as store:
        [message] = inbox.unhandled_messages(store)
    assert message.call_id is not None
    return message.call_id


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "the page has no CSRF field"
    return match[1]


def set_up_admin(client: TestClient, data_dir: Path, username: str = "alice") -> None:
    code = (data_dir / "setup-code").read_text().strip()
    token = csrf_of(client.get("/setup").text)
    answer = client.post(
        "/setup",
        data={"csrf": token, "code": code, "username": username, "password": ADMIN_PASSWORD, "confirm": ADMIN_PASSWORD},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text


def log_in(client: TestClient, username: str, password: str) -> httpx.Response:
    client.cookies.delete("box_session")
    token = csrf_of(client.get("/login").text)
    return client.post(
        "/login", data={"csrf": token, "username": username, "password": password}, follow_redirects=False
    )


def use_cookie(client: TestClient, token: str) -> None:
    client.cookies.delete("box_session")
    client.cookies.set("box_session", token)


def add_secretary(client: TestClient, username: str = "sophie") -> None:
    token = csrf_of(client.get("/admin/staff").text)
    answer = client.post(
        "/admin/staff",
        data={"csrf": token, "username": username, "role": "secretary",
              "password": SECRETARY_PASSWORD, "confirm": SECRETARY_PASSWORD},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text


def concrete(path: str) -> str:
    """A route's path with its parameters filled in."""
    return re.sub(r"\{[^}:]+:int\}", "1", re.sub(r"\{[^}:]+\}", "x", path))


# --- Nobody gets in without an account ----------------------------------------


def test_every_route_but_login_setup_health_and_static_refuses_a_stranger(client: TestClient) -> None:
    routes = [r for r in client.app.routes if isinstance(r, Route)]  # type: ignore[attr-defined]
    assert {r.path for r in routes if r.endpoint.access == "public"} == PUBLIC
    assert [m.path for m in client.app.routes if isinstance(m, Mount)] == ["/static"]  # type: ignore[attr-defined]
    checked = 0
    for route in routes:
        if route.path in PUBLIC:
            continue
        for method in sorted(route.methods or ()):
            url = concrete(route.path)
            answer = client.request(method, url, follow_redirects=False)
            assert answer.status_code == 401, f"{method} {url} answered {answer.status_code} to a stranger"
            browser = client.request(method, url, headers={"accept": "text/html"}, follow_redirects=False)
            assert browser.status_code == 303 and browser.headers["location"].startswith("/login"), f"{method} {url}"
            checked += 1
    assert checked >= 20
    assert client.get("/healthz").json()["ok"] is True
    assert client.get("/static/app.css").status_code == 200


def test_a_stranger_is_sent_to_setup_first_then_to_login(client: TestClient, data_dir: Path) -> None:
    first = client.get("/", headers={"accept": "text/html"})
    assert first.url.path == "/setup" and "code de mise en service" in first.text.lower()
    set_up_admin(client, data_dir)
    client.cookies.clear()
    assert client.get("/inbox", headers={"accept": "text/html"}).url.path == "/login"


def test_the_session_cookie_is_httponly_secure_strict(client: TestClient, data_dir: Path) -> None:
    set_up_admin(client, data_dir)
    answer = log_in(client, "alice", ADMIN_PASSWORD)
    [cookie] = [c for c in answer.headers.get_list("set-cookie") if c.startswith("box_session=")]
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "secure", "samesite=strict", "path=/"} <= flags
    assert len(cookie.split(";")[0].split("=", 1)[1]) >= 43  # 32 random bytes, base64


def test_logging_out_ends_the_session_for_good(client: TestClient, data_dir: Path) -> None:
    set_up_admin(client, data_dir)
    token = client.cookies["box_session"]
    assert client.get("/inbox").status_code == 200
    client.post("/logout", data={"csrf": csrf_of(client.get("/").text)}, follow_redirects=False)
    use_cookie(client, token)  # a copy of the old cookie, kept by someone
    assert client.get("/inbox").status_code == 401


# --- The setup code ---------------------------------------------------------------


def test_the_setup_code_is_case_and_space_blind_and_void_once_used(client: TestClient, data_dir: Path) -> None:
    code = (data_dir / "setup-code").read_text().strip()
    assert stat.S_IMODE((data_dir / "setup-code").stat().st_mode) == 0o600
    assert re.fullmatch(r"[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}", code)
    token = csrf_of(client.get("/setup").text)
    form = {"csrf": token, "username": "alice", "password": ADMIN_PASSWORD, "confirm": ADMIN_PASSWORD}

    wrong = client.post("/setup", data=form | {"code": "AAAA-AAAA-AAAA"})
    assert wrong.status_code == 400 and "pas le bon" in wrong.text
    typed = " ".join(code.replace("-", "").lower())  # "a b c d ..." as someone might type it
    assert client.post("/setup", data=form | {"code": typed}, follow_redirects=False).status_code == 303
    assert not (data_dir / "setup-code").exists()

    client.cookies.clear()
    token = csrf_of(client.get("/login").text)  # a valid form token: only the code is at fault
    again = client.post("/setup", data=form | {"csrf": token, "code": code, "username": "mallory"})
    assert again.status_code == 403
    assert "déjà faite" in client.get("/setup").text
    assert log_in(client, "mallory", ADMIN_PASSWORD).status_code == 401


def test_setup_explains_each_wrong_field_and_creates_nothing(client: TestClient, data_dir: Path) -> None:
    token = csrf_of(client.get("/setup").text)
    answer = client.post(
        "/setup", data={"csrf": token, "code": "", "username": "A B", "password": "short", "confirm": "short"}
    )
    assert answer.status_code == 400
    for field, message in [("code", "obligatoire"), ("username", "De 2 à 32"), ("password", "au moins 10")]:
        assert re.search(rf'id="e-{field}" class="error">[^<]*{message}', answer.text), field
    assert (data_dir / "setup-code").exists()  # still usable: nothing was half-saved


# --- CSRF -------------------------------------------------------------------------


def test_a_change_without_the_sessions_csrf_token_is_refused(client: TestClient, data_dir: Path) -> None:
    set_up_admin(client, data_dir)
    page = client.get("/inbox").text
    message_id = int(re.search(r'id="message-(\d+)"', page)[1])  # type: ignore[index]
    url = f"/inbox/{message_id}/handled"

    assert client.post(url).status_code == 403
    assert client.post(url, data={"csrf": "forged"}).status_code == 403
    refused = client.post(url, data={"csrf": "forged"}, headers={"accept": "text/html"})
    assert refused.status_code == 403 and "Rechargez la page" in refused.text
    with Store.open(data_dir / "appliance.db") as store:
        assert [m.id for m in inbox.unhandled_messages(store)] == [message_id]

    token = csrf_of(page)
    swapped = client.post(url, headers={"x-csrf-token": token, "hx-request": "true"})
    assert swapped.status_code == 200 and "Message traité" in swapped.text
    with Store.open(data_dir / "appliance.db") as store:
        assert inbox.unhandled_messages(store) == []


def test_the_login_form_needs_its_own_token_too(client: TestClient, data_dir: Path) -> None:
    set_up_admin(client, data_dir)
    client.cookies.clear()
    answer = client.post("/login", data={"username": "alice", "password": ADMIN_PASSWORD})
    assert answer.status_code == 403


# --- Rate limiting ----------------------------------------------------------------


def test_wrong_passwords_are_slowed_down_then_forgiven(data_dir: Path) -> None:
    clock = FixedClock(datetime(2026, 11, 24, 9, 0, tzinfo=PARIS))
    app = create_app(replace(Config(), data_dir=data_dir), clock=clock)
    with TestClient(app, base_url="https://testserver") as client:
        set_up_admin(client, data_dir)
        for _ in range(5):
            assert log_in(client, "alice", "not the password").status_code == 401
        locked = log_in(client, "alice", ADMIN_PASSWORD)  # even the right one, now
        assert locked.status_code == 429
        assert "Trop d'essais : réessayez dans 15 minute" in html.unescape(locked.text)
        clock.advance(timedelta(minutes=10))
        assert "réessayez dans 5 minute" in log_in(client, "alice", ADMIN_PASSWORD).text
        clock.advance(timedelta(minutes=5, seconds=1))
        assert log_in(client, "alice", ADMIN_PASSWORD).status_code == 303
        # A success clears the count: one more slip is not a lock-out.
        assert log_in(client, "alice", "not the password").status_code == 401
        assert log_in(client, "alice", ADMIN_PASSWORD).status_code == 303


def test_guessing_many_names_from_one_address_is_slowed_down_too(data_dir: Path) -> None:
    clock = FixedClock(datetime(2026, 11, 24, 9, 0, tzinfo=PARIS))
    app = create_app(replace(Config(), data_dir=data_dir), clock=clock)
    with TestClient(app, base_url="https://testserver") as client:
        set_up_admin(client, data_dir)
        for name in ("bob", "carol", "dave", "erin", "frank"):
            assert log_in(client, name, "whatever it is").status_code == 401
        assert log_in(client, "alice", ADMIN_PASSWORD).status_code == 429


def test_password_checks_do_not_block_the_page(data_dir: Path) -> None:
    """While argon2 works (in threads, two at a time), other pages still answer."""
    app = create_app(replace(Config(), data_dir=data_dir))
    with TestClient(app, base_url="https://testserver") as client:
        started = time.monotonic()
        slow = threading.Thread(target=lambda: [log_in(client, "nobody", "x" * 12) for _ in range(3)])
        slow.start()
        health_times = []
        while slow.is_alive():
            before = time.monotonic()
            assert client.get("/healthz").status_code == 200
            health_times.append(time.monotonic() - before)
        slow.join()
        assert time.monotonic() - started > 0.1  # the checks did take time
        assert max(health_times) < 0.5


# --- Roles ------------------------------------------------------------------------


def test_a_secretary_sees_no_admin_controls_and_is_refused_on_them(client: TestClient, data_dir: Path) -> None:
    set_up_admin(client, data_dir)
    add_secretary(client)
    assert log_in(client, "sophie", SECRETARY_PASSWORD).status_code == 303
    for path in ("/", "/inbox", "/calls", f"/calls/{emergency_call(data_dir)}", "/appointments", "/test-call"):
        page = client.get(path)
        assert page.status_code == 200, path
        assert "/admin/" not in page.text, f"{path} shows an admin control to a secretary"
        assert "Équipe" not in page.text and "Données" not in page.text
    token = csrf_of(client.get("/").text)
    admin_routes = [r for r in client.app.routes if isinstance(r, Route) and r.path.startswith("/admin/")]  # type: ignore[attr-defined]
    assert len(admin_routes) >= 8
    for route in admin_routes:
        for method in sorted(route.methods or ()):
            url = concrete(route.path)
            answer = client.request(method, url, data={"csrf": token} if method == "POST" else None)
            assert answer.status_code == 403, f"{method} {url}: {answer.status_code}"
    # ...and nothing happened: no account was made or disabled behind the refusal.
    client.post("/admin/staff", data={"csrf": token, "username": "eve", "role": "admin",
                                      "password": "x" * 12, "confirm": "x" * 12})
    assert log_in(client, "alice", ADMIN_PASSWORD).status_code == 303
    assert "eve" not in client.get("/admin/staff").text


def test_an_admin_sees_admin_controls(client: TestClient, data_dir: Path) -> None:
    set_up_admin(client, data_dir)
    page = client.get("/").text
    for href in ("/admin/staff", "/admin/data", "/admin/settings"):
        assert f'href="{href}"' in page


def test_disabling_an_account_ends_its_sessions_and_the_last_admin_stays(client: TestClient, data_dir: Path) -> None:
    set_up_admin(client, data_dir)
    add_secretary(client)
    admin_cookie = client.cookies["box_session"]
    assert log_in(client, "sophie", SECRETARY_PASSWORD).status_code == 303
    secretary_cookie = client.cookies["box_session"]
    use_cookie(client, admin_cookie)
    page = client.get("/admin/staff").text
    ids = dict((name, int(number)) for number, name in re.findall(r'id="member-(\d+)">\s*<header>\s*<strong>(\w+)<', page))
    sophie, alice = ids["sophie"], ids["alice"]
    token = csrf_of(page)
    assert client.post(f"/admin/staff/{sophie}/disable", data={"csrf": token}, follow_redirects=False).status_code == 303
    own = client.post(f"/admin/staff/{alice}/disable", data={"csrf": token})
    assert own.status_code == 400 and "propre compte" in own.text
    use_cookie(client, secretary_cookie)
    assert client.get("/inbox").status_code == 401
    assert log_in(client, "sophie", SECRETARY_PASSWORD).status_code == 401


def test_adding_an_account_says_what_is_wrong_next_to_each_field(client: TestClient, data_dir: Path) -> None:
    set_up_admin(client, data_dir)
    token = csrf_of(client.get("/admin/staff").text)
    answer = client.post(
        "/admin/staff",
        data={"csrf": token, "username": "alice", "role": "boss", "password": "0123456789", "confirm": "0123456780"},
    )
    assert answer.status_code == 400
    assert "déjà pris" not in answer.text  # not even tried: nothing is saved while a field is wrong
    assert re.search(r'id="e-password" class="error">Les deux mots de passe', answer.text)
    assert "Choisissez un rôle" in answer.text
    taken = client.post(
        "/admin/staff",
        data={"csrf": token, "username": "Alice", "role": "secretary", "password": "0123456789", "confirm": "0123456789"},
    )
    assert taken.status_code == 400 and re.search(r'id="e-username" class="error">Ce nom est déjà pris', taken.text)


# --- Patients' data -----------------------------------------------------------------


def test_export_erase_and_backup(client: TestClient, data_dir: Path) -> None:
    set_up_admin(client, data_dir)
    token = csrf_of(client.get("/admin/data").text)
    bad = client.post("/admin/data/export", data={"csrf": token, "last_name": "", "birth_date": "31/02/1960"})
    assert bad.status_code == 400
    assert re.search(r'id="e-export-last_name" class="error">Ce champ est obligatoire', bad.text)
    assert re.search(r'id="e-export-birth_date" class="error">Date invalide', bad.text)

    who = {"csrf": token, "last_name": "Martin", "birth_date": "12/03/1961", "phone": "06 98 76 54 32"}
    export = client.post("/admin/data/export", data=who)
    assert export.headers["content-disposition"].startswith("attachment; filename=\"patient-export-")
    assert [m["urgency"] for m in export.json()["messages"]] == ["urgent"]
    assert [c["caller_id"] for c in export.json()["calls"]] == [CALLER]

    confirm = client.post("/admin/data/erase", data=who)
    assert "Confirmer l'effacement" in html.unescape(confirm.text) and "1 message(s)" in confirm.text
    with Store.open(data_dir / "appliance.db") as store:
        assert len(inbox.unhandled_messages(store)) == 1  # asking is not erasing
    done = client.post("/admin/data/erase", data=who | {"confirm": "yes"})
    assert "Données effacées" in done.text
    assert "ne garde aucune donnée" in client.post("/admin/data/export", data=who).text

    assert client.get("/admin/data/backup").status_code == 405, "a download of everything is a POST, with its token"
    backup = client.post("/admin/data/backup", data={"csrf": token})
    assert backup.status_code == 200 and backup.content.startswith(b"SQLite format 3\0")
    copy = data_dir.parent / "copy.db"
    copy.write_bytes(backup.content)
    with Store.open(copy) as restored:
        assert [m.username for m in staff.staff_members(restored)] == ["alice"]
    assert not list(data_dir.glob(".backup-*"))  # the temporary copy is gone


# --- Sensitive actions want the password again -------------------------------------

ASK_AGAIN = "Tapez votre mot de passe pour confirmer cette action."
NOT_YOURS = "Ce n'est pas votre mot de passe."


@pytest.fixture
def clocked(data_dir: Path) -> Iterator[tuple[TestClient, FixedClock]]:
    """An administrator signed in at 09:00 on a box whose clock the test moves."""
    clock = FixedClock(datetime(2026, 11, 24, 9, 0, tzinfo=PARIS))
    with TestClient(create_app(replace(Config(), data_dir=data_dir), clock=clock), base_url="https://testserver") as client:
        set_up_admin(client, data_dir)
        yield client, clock


def said_next_to(page: str, field_id: str) -> str:
    match = re.search(rf'<p id="e-{re.escape(field_id)}" class="error">([^<]*)</p>', page)
    assert match, f"nothing said next to {field_id}"
    return html.unescape(match[1])


def test_a_backup_wants_the_password_again_after_ten_minutes(clocked: tuple[TestClient, FixedClock]) -> None:
    client, clock = clocked
    page = client.get("/admin/data").text
    token = csrf_of(page)
    assert 'name="current_password"' not in page, "just signed in: not asked"
    assert client.post("/admin/data/backup", data={"csrf": token}).content.startswith(b"SQLite format 3\0")

    clock.advance(timedelta(minutes=10))
    assert 'id="f-backup-current_password"' in client.get("/admin/data").text, "asked with the button, before a refusal"
    refused = client.post("/admin/data/backup", data={"csrf": token})
    assert refused.status_code == 401 and said_next_to(refused.text, "backup-current_password") == ASK_AGAIN
    wrong = client.post("/admin/data/backup", data={"csrf": token, "current_password": "not it at all"})
    assert wrong.status_code == 401 and said_next_to(wrong.text, "backup-current_password") == NOT_YOURS
    assert not wrong.content.startswith(b"SQLite")

    typed = client.post("/admin/data/backup", data={"csrf": token, "current_password": ADMIN_PASSWORD})
    assert typed.content.startswith(b"SQLite format 3\0")
    clock.advance(timedelta(minutes=9))
    assert client.post("/admin/data/backup", data={"csrf": token}).status_code == 200, "checked again just now"


def test_guessing_the_password_from_a_signed_in_browser_is_slowed_down(clocked: tuple[TestClient, FixedClock]) -> None:
    client, clock = clocked
    clock.advance(timedelta(minutes=11))
    token = csrf_of(client.get("/admin/data").text)
    for _ in range(5):
        assert client.post("/admin/data/backup", data={"csrf": token, "current_password": "guess again!"}).status_code == 401
    locked = client.post("/admin/data/backup", data={"csrf": token, "current_password": ADMIN_PASSWORD})
    assert locked.status_code == 401 and said_next_to(locked.text, "backup-current_password").startswith("Trop d'essais")


def test_erasing_a_patient_wants_the_password_again(clocked: tuple[TestClient, FixedClock], data_dir: Path) -> None:
    client, clock = clocked
    token = csrf_of(client.get("/admin/data").text)
    who = {"csrf": token, "last_name": "Martin", "birth_date": "12/03/1961", "phone": CALLER}
    clock.advance(timedelta(minutes=15))
    asked = client.post("/admin/data/erase", data=who)
    assert "Confirmer l'effacement" in html.unescape(asked.text) and 'id="f-current_password"' in asked.text

    refused = client.post("/admin/data/erase", data=who | {"confirm": "yes"})
    assert refused.status_code == 401 and said_next_to(refused.text, "current_password") == ASK_AGAIN
    assert "1 message(s)" in refused.text, "the confirmation page again, with what would go"
    with Store.open(data_dir / "appliance.db") as store:
        assert len(inbox.unhandled_messages(store)) == 1

    done = client.post("/admin/data/erase", data=who | {"confirm": "yes", "current_password": ADMIN_PASSWORD})
    assert "Données effacées" in done.text
    with Store.open(data_dir / "appliance.db") as store:
        assert inbox.unhandled_messages(store) == []


def test_managing_accounts_wants_the_password_again(clocked: tuple[TestClient, FixedClock]) -> None:
    client, clock = clocked
    clock.advance(timedelta(minutes=30))
    page = client.get("/admin/staff").text
    token = csrf_of(page)
    assert 'id="f-current_password"' in page
    new = {"csrf": token, "username": "sophie", "role": "secretary",
           "password": SECRETARY_PASSWORD, "confirm": SECRETARY_PASSWORD}
    refused = client.post("/admin/staff", data=new)
    assert refused.status_code == 401 and said_next_to(refused.text, "current_password") == ASK_AGAIN
    assert 'value="sophie"' in refused.text, "what was typed stays"
    assert "sophie" not in [m.username for m in _members(client)]
    assert client.post("/admin/staff", data=new | {"current_password": ADMIN_PASSWORD},
                       follow_redirects=False).status_code == 303

    clock.advance(timedelta(minutes=30))
    sophie = next(m.id for m in _members(client) if m.username == "sophie")
    refused = client.post(f"/admin/staff/{sophie}/disable", data={"csrf": token})
    assert refused.status_code == 401 and said_next_to(refused.text, f"d{sophie}-current_password") == ASK_AGAIN
    assert next(m for m in _members(client) if m.id == sophie).active
    reset = client.post(f"/admin/staff/{sophie}/password", data={"csrf": token, "password": "x" * 12, "confirm": "x" * 12})
    assert reset.status_code == 401 and said_next_to(reset.text, f"m{sophie}-current_password") == ASK_AGAIN
    assert client.post(f"/admin/staff/{sophie}/disable", data={"csrf": token, "current_password": ADMIN_PASSWORD},
                       follow_redirects=False).status_code == 303
    assert not next(m for m in _members(client) if m.id == sophie).active


def _members(client: TestClient) -> list[staff.StaffMember]:
    return staff.staff_members(client.app.state.ctx.db)  # type: ignore[attr-defined]


def test_changing_the_cloud_agendas_credentials_wants_the_password_again(
    clocked: tuple[TestClient, FixedClock], data_dir: Path
) -> None:
    from .test_web_settings import CALDAV, form_of

    client, clock = clocked
    clock.advance(timedelta(minutes=11))
    page = client.get("/admin/settings").text
    assert 'id="f-cloud-current_password"' in page
    refused = client.post("/admin/settings/cloud", data=form_of(page, "/admin/settings/cloud", **CALDAV))
    assert refused.status_code == 401 and said_next_to(refused.text, "cloud-current_password") == ASK_AGAIN
    assert "s3cret-Pa55" not in refused.text and not (data_dir / "settings.toml").exists()
    # Trying new credentials sends the stored secrets to the typed address: asked too.
    tried = client.post("/admin/settings/cloud/check", data=form_of(page, "/admin/settings/cloud", **CALDAV))
    assert tried.status_code == 401 and said_next_to(tried.text, "cloud-current_password") == ASK_AGAIN

    # What touches no credential is not asked for.
    assert client.post("/admin/settings/retention", data=form_of(page, "/admin/settings/retention",
                                                                 messages_days="60")).status_code == 200
    saved = client.post("/admin/settings/cloud", data=form_of(page, "/admin/settings/cloud", **CALDAV,
                                                              current_password=ADMIN_PASSWORD))
    assert saved.status_code == 200 and 'id="f-cloud-current_password"' not in saved.text
    assert "caldav" in (data_dir / "settings.toml").read_text()


def test_a_session_remembers_when_its_password_was_last_checked(tmp_path: Path) -> None:
    at = datetime(2026, 11, 24, 9, 0, tzinfo=PARIS)
    with Store.open(tmp_path / "box.db") as store:
        member = staff.create_staff(store, username="alice", role="admin", password_hash="x", at=at)
        staff.open_session(store, token_hash="h", staff_id=member, csrf_token="c", at=at, expires_at=at + timedelta(hours=12))
        assert staff.session_for(store, "h", now=at).password_checked_at == at  # type: ignore[union-attr]
        staff.mark_password_checked(store, "h", at=at + timedelta(minutes=20))
        session = staff.session_for(store, "h", now=at + timedelta(minutes=21))
        assert session is not None and session.password_checked_at == at + timedelta(minutes=20)
        assert session.created_at == at
        assert (5, "reauth") in store.applied_migrations()


def test_sessions_open_before_the_upgrade_count_their_login_as_the_last_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from appliance.store import db as store_db

    at = datetime(2026, 11, 24, 9, 0, tzinfo=PARIS)
    shipped = store_db.bundled_migrations()
    monkeypatch.setattr(store_db, "bundled_migrations", lambda: [m for m in shipped if m.version < 5])
    with Store.open(tmp_path / "box.db") as store, store.transaction() as tx:  # a box of the version before
        tx.execute("INSERT INTO staff (username, role, password_hash, created_at) VALUES ('alice', 'admin', 'x', ?)",
                   ("2026-11-24T08:00:00Z",))
        tx.execute("INSERT INTO web_sessions (token_hash, staff_id, csrf_token, created_at, last_seen_at, expires_at)"
                   " VALUES ('h', 1, 'c', '2026-11-24T08:00:00Z', '2026-11-24T08:30:00Z', '2026-11-24T20:00:00Z')")
    monkeypatch.setattr(store_db, "bundled_migrations", lambda: shipped)
    with Store.open(tmp_path / "box.db") as store:
        session = staff.session_for(store, "h", now=at)
    assert session is not None and session.password_checked_at == at  # 08:00Z is 09:00 in Paris


# --- Privacy of the logs ------------------------------------------------------------


def test_phone_numbers_and_transcripts_stay_out_of_the_logs(
    client: TestClient, data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    set_up_admin(client, data_dir)
    add_secretary(client)
    log_in(client, "sophie", "wrong password!")
    log_in(client, "sophie", SECRETARY_PASSWORD)
    for path in ("/", "/inbox", "/calls", f"/calls/{emergency_call(data_dir)}", "/appointments"):
        assert CALLER in client.get(path).text or path in ("/", "/appointments")
    token = csrf_of(client.get("/inbox").text)
    client.post("/inbox/1/handled", data={"csrf": token})
    log_in(client, "alice", ADMIN_PASSWORD)
    token = csrf_of(client.get("/admin/data").text)
    who = {"csrf": token, "last_name": "Martin", "birth_date": "12/03/1961", "phone": CALLER}
    client.post("/admin/data/export", data=who)
    client.post("/admin/data/erase", data=who | {"confirm": "yes"})
    logged = caplog.text
    assert "logged in" in logged and "erased" in logged  # the session was logged...
    digits = re.sub(r"\D", "", logged)
    assert CALLER not in digits and CALLER[1:] not in digits  # ...without the number, in any format
    for secret in (TRANSCRIPT_BIT, "Martin", "1961", ADMIN_PASSWORD, SECRETARY_PASSWORD, "wrong password!"):
        assert secret not in logged


# --- Interface text -------------------------------------------------------------------


def test_every_text_the_templates_use_exists_in_french_and_the_nav_in_every_language() -> None:
    locales = load_locales()
    used: set[str] = set()
    for source in (REPO / "appliance" / "web").rglob("*.html"):
        used |= set(re.findall(r"""\bt\(\s*["']([a-z_]+\.[a-z_]+)["']""", source.read_text()))
    for source in (REPO / "appliance" / "web").glob("*.py"):
        used |= set(re.findall(r"""["']((?:errors|setup|staff|data)\.[a-z_]+)["']""", source.read_text()))
    missing = sorted(key for key in used if key not in locales["fr"] and not key.endswith(".html"))
    assert not missing
    for lang in LANGUAGES:
        assert all(key in locales[lang] for key in locales["fr"] if key.startswith(("nav.", "login.", "errors.")))


def test_the_language_follows_the_browser(client: TestClient) -> None:
    assert "Erste Inbetriebnahme" in client.get("/setup", headers={"accept-language": "de-DE,de;q=0.9"}).text
    assert "First start" in client.get("/setup", headers={"accept-language": "en-GB,en;q=0.8,fr;q=0.5"}).text
    assert "Première mise en service" in client.get("/setup", headers={"accept-language": "it"}).text


def test_the_language_chosen_on_the_login_page_wins_over_the_browser(client: TestClient, data_dir: Path) -> None:
    set_up_admin(client, data_dir)
    client.cookies.clear()
    german_browser = {"accept-language": "de-DE,de;q=0.9"}
    login = client.get("/login?next=/calls", headers=german_browser).text
    assert '<html lang="de">' in login and 'action="/language"' in login
    assert re.search(r'<button type="submit" name="lang" value="en" lang="en" class="link">English</button>', login)

    chosen = client.post("/language", data={"csrf": csrf_of(login), "lang": "en", "next": "/login?next=/calls"},
                         headers=german_browser, follow_redirects=False)

    assert chosen.status_code == 303 and chosen.headers["location"] == "/login?next=/calls"
    [cookie] = [c for c in chosen.headers.get_list("set-cookie") if c.startswith("box_lang=")]
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert cookie.startswith("box_lang=en;") and {"secure", "samesite=strict", "path=/"} <= flags
    again = client.get("/login", headers=german_browser).text
    assert '<html lang="en">' in again and "Log in" in again
    assert log_in(client, "alice", ADMIN_PASSWORD).status_code == 303
    assert '<html lang="en">' in client.get("/", headers=german_browser).text, "and it stays once signed in"


def test_the_language_chooser_needs_its_token_and_brings_back_to_a_page(client: TestClient, data_dir: Path) -> None:
    set_up_admin(client, data_dir)
    token = csrf_of(client.get("/").text)
    assert client.post("/language", data={"lang": "de"}).status_code == 403
    assert "box_lang" not in client.cookies
    unknown = client.post("/language", data={"csrf": token, "lang": "it"}, headers={"accept": "text/html"})
    assert unknown.status_code == 400 and "Cette langue n'est pas proposée" in html.unescape(unknown.text)
    for after, back in [("/admin/settings/retention", "/admin/settings"), ("/inbox/3/handled", "/inbox"),
                        ("/calls?page=2", "/calls?page=2"), ("//elsewhere.example/", "/"), ("https://evil.example", "/")]:
        answer = client.post("/language", data={"csrf": token, "lang": "de", "next": after}, follow_redirects=False)
        assert (answer.status_code, answer.headers["location"]) == (303, back), after
    assert "Einstellungen" in client.get("/admin/settings").text


# --- HTTPS --------------------------------------------------------------------------------


def test_https_serves_with_the_certificate_made_at_first_start(tmp_path: Path) -> None:
    cert = ensure_certificate(tmp_path / "tls", hostname="praxis-box")
    assert cert.created and not ensure_certificate(tmp_path / "tls").created  # made once
    assert stat.S_IMODE(cert.key_path.stat().st_mode) == 0o600
    assert re.fullmatch(r"([0-9A-F]{2}:){31}[0-9A-F]{2}", cert.fingerprint)
    names = x509.load_pem_x509_certificate(cert.cert_path.read_bytes()).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    ).value
    assert names.get_values_for_type(x509.DNSName) == ["praxis-box.local", "localhost"]
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]

    port = free_port()
    config = replace(Config(), data_dir=tmp_path / "data", web=WebSettings(port=port, https=True))
    server = uvicorn.Server(
        uvicorn.Config(create_app(config), host="127.0.0.1", port=port, log_level="warning",
                       ssl_certfile=str(cert.cert_path), ssl_keyfile=str(cert.key_path))
    )
    thread = threading.Thread(target=server.run)
    thread.start()
    try:
        deadline = time.monotonic() + 15
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
            time.sleep(0.05)
        trusted = ssl.create_default_context(cafile=str(cert.cert_path))
        with httpx.Client(verify=trusted) as https:
            assert https.get(f"https://127.0.0.1:{port}/healthz").json()["ok"] is True
            assert https.get(f"https://localhost:{port}/login", follow_redirects=False).status_code == 303
        with httpx.Client() as untrusting, pytest.raises(httpx.ConnectError):
            untrusting.get(f"https://127.0.0.1:{port}/healthz")
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_without_htmx_the_forms_still_work_as_whole_pages(client: TestClient, data_dir: Path) -> None:
    client.app.state.ctx.renderer.htmx = False  # type: ignore[attr-defined]  # as when the vendored file is absent
    set_up_admin(client, data_dir)
    page = client.get("/inbox").text
    assert "htmx.min.js" not in page and 'method="post" action="/inbox/' in page
    message_id = re.search(r'id="message-(\d+)"', page)[1]  # type: ignore[index]
    answer = client.post(f"/inbox/{message_id}/handled", data={"csrf": csrf_of(page)},
                         headers={"accept": "text/html"}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/inbox"
    assert "Aucun message en attente." in client.get("/inbox").text


def test_an_admin_gives_dead_letters_another_round_from_today(client: TestClient, data_dir: Path) -> None:
    from appliance.store import outbox

    with Store.open(data_dir / "appliance.db") as store:
        with store.transaction() as tx:
            tx.execute(
                "INSERT INTO outbox (kind, idempotency_key, aggregate_key, payload, state, attempts, created_at,"
                " next_attempt_at, last_error) VALUES ('appointment.created', 'k-1', 'appt-1', '{}', 'dead', 12,"
                " '2026-11-22T08:00:00Z', '2026-11-22T08:00:00Z', 'fhir-auth: 401')"
            )
        outbox.note_exchange(store, "fhir", at=datetime(2026, 11, 22, 9, tzinfo=PARIS), error="fhir-auth: 401")
    set_up_admin(client, data_dir)
    today = client.get("/").text
    assert 'action="/admin/sync/retry"' in today

    answer = client.post("/admin/sync/retry", data={"csrf": csrf_of(today)}, follow_redirects=False)

    assert answer.status_code == 303
    with Store.open(data_dir / "appliance.db") as store:
        assert [e.state for e in outbox.outbox_entries(store)] == ["pending"]


def test_the_setup_code_is_not_written_into_the_journal(tmp_path: Path) -> None:
    from appliance.web.app import setup_code_notice

    code_file = tmp_path / "setup-code"
    on_console = setup_code_notice("W5ME-7KQ2", True, code_file, to_journal=False)
    in_journal = setup_code_notice("W5ME-7KQ2", True, code_file, to_journal=True)
    assert on_console is not None and "W5ME-7KQ2" in on_console
    assert in_journal is not None and "W5ME-7KQ2" not in in_journal and str(code_file) in in_journal
    assert setup_code_notice(None, False, code_file, to_journal=False) is None  # an administrator exists
