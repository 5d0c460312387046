"""The Settings and Test call pages, through the real app (routes, guard, store).

A saved section is read back the way the core reads it (``load_config`` on the
same data directory); a refused one leaves the files byte for byte as they were.
The test call and the reload after a save talk to a real core: ``appliance run
--no-web`` on the simulated line, in a short temporary data directory (a unix
socket path must fit in 108 bytes).
"""

from __future__ import annotations

import asyncio
import html
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from appliance.agenda.practice import resolve_practice
from appliance.config import Config, load_config
from appliance.control import ask
from appliance.store import Store, inbox
from appliance.web.app import create_app
from appliance.web.render import LANGUAGES, load_locales

from tests.ports import free_port
from .conftest import REPO
from .test_web_security import SECRETARY_PASSWORD, add_secretary, csrf_of, log_in, set_up_admin


@pytest.fixture
def data_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="w") as folder:
        yield Path(folder)


@pytest.fixture
def client(data_dir: Path) -> Iterator[TestClient]:
    with TestClient(create_app(replace(Config(), data_dir=data_dir)), base_url="https://testserver") as test_client:
        set_up_admin(test_client, data_dir)
        yield test_client


@pytest.fixture
def core(data_dir: Path) -> Iterator[Path]:
    """The box's core answering on its control socket in ``data_dir``."""
    process = subprocess.Popen([sys.executable, "-m", "appliance", "--data-dir", str(data_dir), "run", "--no-web"],
                               cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    sock = data_dir / "control.sock"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if asyncio.run(ask(sock, {"cmd": "ping"}, timeout_s=1))["ok"]:
                    break
            except ConnectionError:
                assert process.poll() is None, process.communicate()[1]
                assert time.monotonic() < deadline, "the core did not come up"
                time.sleep(0.1)
        yield sock
    finally:
        process.terminate()
        process.communicate(timeout=10)


class _Form(HTMLParser):
    """The fields a browser would send for one form of a page (its default button)."""

    def __init__(self, action: str) -> None:
        super().__init__()
        self.action, self.inside, self.fields = action, False, []  # type: ignore[var-annotated]
        self._area: str | None = None
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.inside = a.get("action", "").split("#")[0] == self.action
        elif not self.inside or "name" not in a:
            if tag == "option" and self.inside and self._select and "selected" in a:
                self.fields.append((self._select, a["value"]))
        elif tag == "input" and a.get("type") in ("checkbox", "radio"):
            if "checked" in a:
                self.fields.append((a["name"], a.get("value", "on")))
        elif tag == "input":
            self.fields.append((a["name"], a.get("value", "")))
        elif tag == "textarea":
            self._area = a["name"]
            self.fields.append((a["name"], ""))
        elif tag == "select":
            self._select = a["name"]

    def handle_data(self, data: str) -> None:
        if self._area:
            self.fields[-1] = (self._area, self.fields[-1][1] + data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False
        self._area = None if tag == "textarea" else self._area
        self._select = None if tag == "select" else self._select


def form_of(page: str, action: str, **changes: str | list[str]) -> dict[str, str | list[str]]:
    """The form posting to ``action`` as the page shows it, with some fields changed."""
    parser = _Form(action)
    parser.feed(page)
    assert parser.fields, f"no form for {action}"
    data: dict[str, str | list[str]] = {}
    for name, value in parser.fields:
        if name in data:
            previous = data[name]
            data[name] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            data[name] = value
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def save(client: TestClient, section: str, **changes: str | list[str]):  # type: ignore[no-untyped-def]
    page = client.get("/admin/settings").text
    return client.post(f"/admin/settings/{section}", data=form_of(page, f"/admin/settings/{section}", **changes))


def error_next_to(page: str, field_id: str) -> str:
    match = re.search(rf'<p id="e-{re.escape(field_id)}" class="error">([^<]*)</p>', page)
    assert match, f"no error next to {field_id}"
    return match[1].replace("&#39;", "'")


SAVED = "Enregistré ; le boîtier le prendra à son prochain démarrage"


# --- Saving ------------------------------------------------------------------------------


def test_each_section_saved_is_what_the_core_loads_next(client: TestClient, data_dir: Path) -> None:
    def practice():  # type: ignore[no-untyped-def]
        return resolve_practice(load_config(None, data_dir=data_dir).practice)

    assert SAVED in save(client, "practice", name="Cabinet du Parc", emergency_number="112").text
    assert (practice().name, practice().emergency_number) == ("Cabinet du Parc", "112")

    assert save(client, "hours", saturday="09:00-13:00", sunday="").status_code == 200
    saturday = [(p.start.isoformat("minutes"), p.end.isoformat("minutes")) for p in practice().hours if p.weekday == 5]
    assert saturday == [("09:00", "13:00")]

    save(client, "closures", closures="24/12/2026 – 26/12/2026 Noël\n2026-08-15 Assomption")
    assert [(str(c.start), str(c.end), c.reason) for c in practice().closures] == [
        ("2026-12-24", "2026-12-26", "Noël"), ("2026-08-15", "2026-08-15", "Assomption")]

    save(client, "practitioners", p2_display_name="docteur Anne Le Goff", p2_last_name="Le Goff",
         p2_aliases="docteur Le Goff, Anne", p2_hours="tue-thu 09:00-12:00")
    anne = practice().practitioners[2]
    assert (anne.id, anne.aliases, len(anne.hours)) == ("le-goff", ("docteur Le Goff", "Anne"), 3)

    save(client, "reasons", r0_duration_min="25", r0_who=["le-goff"])
    first = practice().reasons[0]
    assert (first.duration_min, first.practitioner_ids) == (25, ("le-goff",))

    save(client, "rules", min_notice_min="120", kept_for_staff="mon-fri 08:30-09:00")
    assert (practice().rules.min_notice_min, len(practice().rules.kept_for_staff)) == (120, 5)

    save(client, "answering", preset="rings", rings="3")
    answering = load_config(None, data_dir=data_dir).answering
    assert (answering.during_hours, answering.outside_hours, answering.rings) == ("after_rings", "now", 3)

    save(client, "retention", messages_days="60")
    assert load_config(None, data_dir=data_dir).retention.messages_days == 60

    page = save(client, "cloud", adapter="caldav", caldav_base_url="https://dav.example.fr/dav/",
                caldav_username="cabinet", caldav_password="s3cret-Pa55",
                caldav_c_martin="martin/", caldav_c_bernard="bernard/", **{"caldav_c_le-goff": "legoff/"}).text
    caldav = load_config(None, data_dir=data_dir).sync.caldav
    assert caldav is not None and caldav.read_password() == "s3cret-Pa55"
    assert "s3cret-Pa55" not in page and "s3cret-Pa55" not in client.get("/admin/settings").text
    assert "Un secret est enregistré" in page

    # Every section shows again what was saved.
    again = client.get("/admin/settings").text
    for shown in ("Cabinet du Parc", "09:00-13:00", "24/12/2026 – 26/12/2026 Noël", "tue-thu 09:00-12:00",
                  "mon-fri 08:30-09:00", 'value="60"', "https://dav.example.fr/dav/"):
        assert shown in again


def test_the_other_pages_use_the_practice_as_just_saved(client: TestClient, data_dir: Path) -> None:
    from appliance.web.context import WebContext

    ctx: WebContext = client.app.state.ctx  # type: ignore[attr-defined]
    assert ctx.practice().practitioners[0].display_name == "docteur Claire Martin"

    save(client, "practitioners", p0_display_name="docteur Claire Martin-Roux")

    assert ctx.practice().practitioners[0].display_name == "docteur Claire Martin-Roux"


def test_a_wrong_value_is_explained_next_to_its_field_and_nothing_is_written(client: TestClient, data_dir: Path) -> None:
    save(client, "retention", messages_days="30")
    save(client, "hours", saturday="09:00-12:30")
    files = {name: (data_dir / name).read_bytes() for name in ("settings.toml", "practice.toml")}

    refused = save(client, "retention", messages_days="0", calls_days="400")
    assert refused.status_code == 400
    assert "retention.messages_days must be a whole number of days" in error_next_to(refused.text, "retention-messages_days")
    assert 'value="400"' in refused.text, "what was typed is shown again"

    assert error_next_to(save(client, "answering", preset="custom", rings="beaucoup").text,
                         "answering-rings") == "Écrivez un nombre entier."
    assert "ends before it starts" in error_next_to(save(client, "hours", monday="12:30-08:30").text, "hours-monday")
    assert "duration_min must be 5-240" in error_next_to(save(client, "reasons", r1_duration_min="0").text, "r1_duration_min")
    assert "Ligne 2" in error_next_to(save(client, "closures", closures="01/05/2026\nbientôt").text, "closures-closures")
    bad_url = save(client, "cloud", adapter="fhir", fhir_base_url="ftp://x", fhir_p_martin="Practitioner/1",
                   fhir_token="tok-Secret-42")
    assert "fhir.base_url" in error_next_to(bad_url.text, "cloud-fhir_base_url")
    assert "tok-Secret-42" not in bad_url.text, "a secret is never sent back, even with a mistake"

    assert {name: (data_dir / name).read_bytes() for name in files} == files
    assert sorted(p.name for p in data_dir.iterdir() if p.name.startswith(".")) == [], "no temporary file left"


def test_a_secretary_is_refused_the_settings(client: TestClient, data_dir: Path) -> None:
    add_secretary(client)
    assert log_in(client, "sophie", SECRETARY_PASSWORD).status_code == 303
    token = csrf_of(client.get("/").text)
    assert client.get("/admin/settings").status_code == 403
    answer = client.post("/admin/settings/retention", data={"csrf": token, "messages_days": "5"})
    assert answer.status_code == 403
    assert not (data_dir / "settings.toml").exists()


def test_test_connection_tries_the_typed_values_without_saving_them(client: TestClient, data_dir: Path) -> None:
    port = free_port()
    page = client.get("/admin/settings").text
    answer = client.post("/admin/settings/cloud/check", data=form_of(
        page, "/admin/settings/cloud", adapter="fhir", fhir_base_url=f"http://127.0.0.1:{port}/fhir",
        fhir_p_martin="Practitioner/1", fhir_p_bernard="Practitioner/2"))
    assert answer.status_code == 200
    assert re.search(rf"La connexion a échoué : cannot reach the cloud agenda at http://127.0.0.1:{port}/fhir", answer.text)
    assert f"http://127.0.0.1:{port}/fhir" in answer.text, "the typed values stay in the form"
    assert not (data_dir / "settings.toml").exists()
    assert load_config(None, data_dir=data_dir).sync.adapter == "none"


# --- With the core, and without -----------------------------------------------------------


def test_a_typed_test_call_and_a_saved_change_reach_the_running_core(core: Path, client: TestClient, data_dir: Path) -> None:
    assert "Enregistré : appliqué aux prochains appels." in save(client, "answering", preset="always").text

    page = client.get("/test-call").text
    assert "ne répond pas" not in page and "micro du navigateur" in page
    token = csrf_of(page)
    htmx = {"hx-request": "true", "x-csrf-token": token}
    started = client.post("/test-call/start", headers=htmx)
    assert "<html" not in started.text, "htmx gets the conversation panel alone"
    assert "Cabinet médical des Tilleuls" in started.text
    call_id = re.search(r'name="call_id" value="([^"]+)"', started.text)[1]  # type: ignore[index]

    said = client.post("/test-call/say", headers=htmx, data={
        "call_id": call_id, "text": "mon père a une douleur dans la poitrine et du mal à respirer"})
    assert "mon père a une douleur" in said.text and "15" in said.text
    assert re.search(r'<span class="latency">\d+ ms</span>', said.text)

    # Without htmx: the whole page, with the conversation so far.
    ended = html.unescape(client.post("/test-call/end", data={"csrf": token, "call_id": call_id}).text)
    assert "<html" in ended and "L'appel est terminé." in ended and "mon père a une douleur" in ended
    with Store.open(data_dir / "appliance.db") as store:
        assert any(m.call_id == call_id and m.urgency == "urgent" for m in inbox.unhandled_messages(store))


def test_without_a_core_the_test_call_page_says_so(client: TestClient) -> None:
    page = client.get("/test-call")
    assert page.status_code == 200 and "Le cœur du boîtier ne répond pas" in page.text
    started = client.post("/test-call/start", data={"csrf": csrf_of(page.text)})
    assert started.status_code == 200 and "Le cœur du boîtier ne répond pas" in started.text
    typed = client.post("/test-call/say", data={"csrf": csrf_of(page.text), "call_id": "nope", "text": "allô"})
    assert "Cet appel d'essai est terminé" in html.unescape(typed.text)


def test_every_text_the_new_pages_use_exists_in_every_language() -> None:
    locales = load_locales()
    used: set[str] = set()
    for name in ("settings_page.py", "settings_forms.py", "test_call.py"):
        used |= set(re.findall(r"""t\(\s*["']((?:settings|test_call)\.[a-z_]+)["']""", (REPO / "appliance" / "web" / name).read_text()))
    assert len(used) > 10
    for lang in LANGUAGES:
        assert not [key for key in used if key not in locales[lang]], lang
        assert all(key in locales[lang] for key in locales["fr"] if key.startswith(("settings.", "test_call.", "weekday.", "language.", "preset.", "mode.", "adapter.")))
