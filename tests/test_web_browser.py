"""The web page in a real browser: Debian's Chromium, headless, driven by Playwright.

First boot with the setup code from the box's data dir, login, Today, the inbox
showing the emergency left by a simulated call, marking it handled (an htmx
swap), changing the opening hours in Settings, a test call typed in against the
running core and its emergency message read in the inbox, adding an account with
a mistake shown next to its field, logging out, and being sent back to the
login page. Every page is photographed at desktop
(1280×800) and phone (390×844) width into ``$SCREENSHOTS_DIR`` when it is set
(``make screenshots``), else into the test's temporary folder.

No browser is downloaded (``playwright install`` is never run): Playwright's
own driver steers the Chromium that apt installs.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from appliance.agenda.practice import resolve_practice
from appliance.config import Config, load_config
from appliance.control import ask
from appliance.simulate.runner import simulate
from appliance.simulate.scenario import load_scenario
from appliance.store import Store
from appliance.store import appointments as agenda

from tests.ports import free_port
from .conftest import REPO, SCENARIOS

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
ADMIN, ADMIN_PASSWORD = "dr.martin", "tilleuls-2026-admin"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def box() -> Iterator[tuple[str, Path, str]]:
    """A box's data dir with an emergency call and a booking, its core and its web page running."""
    # Short: the core's control socket lives in it, and a unix socket path must fit in 108 bytes.
    with tempfile.TemporaryDirectory(prefix="w") as folder:
        yield from _running_box(Path(folder))


def _running_box(data_dir: Path) -> Iterator[tuple[str, Path, str]]:
    config = replace(Config(), data_dir=data_dir)
    for name in ("emergency_chest_pain", "book_basic"):
        asyncio.run(simulate(load_scenario(SCENARIOS / f"{name}.toml"), mode="text", config=config))
    with Store.open(config.db_path) as store, store.transaction() as tx:
        # The cloud agenda had someone at that time: the page must put it on top.
        [booked] = tx.execute("SELECT id FROM appointments WHERE origin = 'phone'")
        agenda.mark_sync_failed(tx, booked["id"], "conflict")
        [emergency] = tx.execute("SELECT id FROM calls WHERE outcome = 'emergency'")
    port = free_port()
    settings = data_dir / "box.toml"
    settings.write_text(f"[web]\nport = {port}\n")
    core = subprocess.Popen(
        [sys.executable, "-m", "appliance", "--config", str(settings), "--data-dir", str(data_dir), "run", "--no-web"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    web = subprocess.Popen(
        [sys.executable, "-m", "appliance", "--config", str(settings), "--data-dir", str(data_dir), "web"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=2):
                    break
            except OSError:
                assert web.poll() is None, web.communicate()[1]
                assert time.monotonic() < deadline, "the web page did not come up"
                time.sleep(0.2)
        while True:
            try:
                if asyncio.run(ask(data_dir / "control.sock", {"cmd": "ping"}, timeout_s=1))["ok"]:
                    break
            except ConnectionError:
                assert core.poll() is None, core.communicate()[1]
                assert time.monotonic() < deadline, "the core did not come up"
                time.sleep(0.2)
        yield base, data_dir, emergency["id"]
    finally:
        for process in (web, core):
            process.terminate()
            process.communicate(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (the browser tests drive Debian's Chromium)")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(os.environ["SCREENSHOTS_DIR"]) if os.environ.get("SCREENSHOTS_DIR") else tmp_path_factory.mktemp("shots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _watch(page: Page) -> list[str]:
    """Console errors (a CSP violation, a failing script) and missing files, for the end of the test.

    Answers with an error status are not problems by themselves: a form with a
    mistake in it comes back as 400 on purpose.
    """
    problems: list[str] = []

    def console(message: ConsoleMessage) -> None:
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            problems.append(message.text)

    page.on("console", console)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("response", lambda answer: problems.append(f"{answer.status} {answer.url}") if answer.status == 404 else None)
    return problems


def _log_in(page: Page, base: str, username: str, password: str) -> None:
    page.goto(f"{base}/login")
    page.get_by_label("Identifiant").fill(username)
    page.get_by_label("Mot de passe").fill(password)
    page.get_by_role("button", name="Se connecter").click()


def test_first_boot_inbox_and_logout_in_chromium(box: tuple[str, Path, str], browser: Browser, shots: Path) -> None:
    base, data_dir, call_id = box
    context = browser.new_context(viewport=DESKTOP, locale="fr-FR")
    try:
        page = context.new_page()
        problems = _watch(page)

        # A stranger is sent to first-boot setup; the code is the one on the box's label.
        page.goto(f"{base}/inbox")
        expect(page).to_have_url(f"{base}/setup")
        page.screenshot(path=shots / "setup-desktop.png", full_page=True)
        code = (data_dir / "setup-code").read_text().strip()
        page.get_by_label("Code de mise en service").fill(code.lower().replace("-", " "))
        page.get_by_label("Identifiant de l'administrateur").fill(ADMIN)
        page.get_by_label("Mot de passe", exact=True).fill(ADMIN_PASSWORD)
        page.get_by_label("Confirmez le mot de passe").fill(ADMIN_PASSWORD)
        page.get_by_role("button", name="Créer le compte administrateur").click()

        expect(page).to_have_url(f"{base}/")
        expect(page.get_by_role("heading", level=1)).to_have_text("Cabinet médical des Tilleuls")
        expect(page.locator(".tile").first).to_contain_text("en ligne")
        page.screenshot(path=shots / "today-desktop.png", full_page=True)

        # The inbox: the emergency stands out.
        page.get_by_role("link", name="Messages", exact=True).click()
        emergency = page.locator("article.message.alarm")
        expect(emergency).to_have_count(1)
        expect(emergency).to_contain_text("URGENCE")
        expect(emergency).to_contain_text("douleur thoracique")
        expect(emergency).to_contain_text("0698765432")
        emergency.get_by_text("Transcription de l'appel").click()
        expect(emergency.locator("pre.transcript")).to_contain_text("douleur dans la poitrine")
        page.screenshot(path=shots / "inbox-desktop.png", full_page=True)

        # Marking it handled swaps the message in place (htmx), no page load.
        htmx = page.evaluate("typeof window.htmx") == "object"
        with page.expect_request(re.compile(r"/inbox/\d+/handled$")) as sent:
            emergency.get_by_role("button", name="Marquer comme traité").click()
        expect(page.get_by_text("Message traité.")).to_be_visible()
        if htmx:
            assert sent.value.headers.get("hx-request") == "true"
            assert sent.value.headers.get("x-csrf-token")
        page.reload()
        expect(page.get_by_text("Aucun message en attente.")).to_be_visible()

        for name, path in [("calls", "/calls"), ("call", f"/calls/{call_id}"), ("appointments", "/appointments"),
                           ("staff", "/admin/staff"), ("data", "/admin/data")]:
            page.goto(base + path)
            page.screenshot(path=shots / f"{name}-desktop.png", full_page=True)
        page.goto(f"{base}/appointments")
        expect(page.locator("section.conflicts")).to_contain_text("Conflits à résoudre")

        # Settings: Saturday mornings run an hour longer; the running core takes it for the next call.
        page.get_by_role("link", name="Réglages").click()
        page.screenshot(path=shots / "settings-desktop.png", full_page=True)
        hours = page.locator("section#hours")
        hours.get_by_label("Samedi").fill("09:00-13:00")
        hours.get_by_role("button", name="Enregistrer").click()
        expect(page.locator("section#hours .notice")).to_have_text("Enregistré : appliqué aux prochains appels.")
        expect(page.locator("section#hours").get_by_label("Samedi")).to_have_value("09:00-13:00")
        practice = resolve_practice(load_config(data_dir / "box.toml", data_dir=data_dir).practice)
        assert [(p.start.hour, p.end.hour) for p in practice.hours if p.weekday == 5] == [(9, 13)]

        # A test call typed in: an emergency, answered through the core's own call path.
        page.get_by_role("link", name="Appel d'essai").click()
        page.get_by_role("button", name="Commencer un appel d'essai").click()
        expect(page.locator(".turn.assistant").first).to_contain_text("Cabinet médical des Tilleuls")
        page.get_by_label("Ce que dit l'appelant").fill("mon père a une douleur dans la poitrine et du mal à respirer")
        page.get_by_role("button", name="Envoyer").click()
        expect(page.locator(".turn.caller")).to_contain_text("douleur dans la poitrine")
        expect(page.locator(".turn.assistant").nth(1)).to_contain_text("15")
        expect(page.locator(".turn.assistant .latency").first).to_have_text(re.compile(r"^\d+ ms$"))
        page.screenshot(path=shots / "test-call-desktop.png", full_page=True)
        if page.get_by_role("button", name="Raccrocher").count():
            page.get_by_role("button", name="Raccrocher").click()
        expect(page.get_by_text("L'appel est terminé.")).to_be_visible()

        # ...and the message it left, read in the inbox.
        page.get_by_role("link", name="Messages", exact=True).click()
        left = page.locator("article.message.alarm")
        expect(left).to_have_count(1)
        left.get_by_text("Transcription de l'appel").click()
        expect(left.locator("pre.transcript")).to_contain_text("mal à respirer")

        # A mistake in a form is explained next to its field; nothing is created.
        page.goto(f"{base}/admin/staff")
        form = page.locator("#add-staff")
        form.get_by_label("Identifiant").fill("sophie")
        form.get_by_label("Mot de passe", exact=True).fill("assez-long-1")
        form.get_by_label("Confirmez le mot de passe").fill("assez-long-2")  # the browser checks lengths itself
        form.get_by_role("button", name="Créer le compte").click()
        expect(page.locator("#add-staff #e-password")).to_have_text("Les deux mots de passe ne sont pas identiques.")
        expect(page.locator("#add-staff #f-username")).to_have_value("sophie")
        page.screenshot(path=shots / "staff-error-desktop.png", full_page=True)
        expect(page.locator("article.member")).to_have_count(1)

        # Logging out: protected pages send back to the login page.
        page.get_by_role("button", name="Se déconnecter").click()
        expect(page).to_have_url(f"{base}/login")
        page.screenshot(path=shots / "login-desktop.png", full_page=True)
        page.goto(f"{base}/calls")
        expect(page).to_have_url(re.compile(rf"{re.escape(base)}/login\?next=/calls$"))
        assert not problems, problems
    finally:
        context.close()


def test_every_page_fits_a_phone_screen(box: tuple[str, Path, str], browser: Browser, shots: Path) -> None:
    base, _, call_id = box
    context = browser.new_context(viewport=PHONE, locale="fr-FR", is_mobile=True, has_touch=True)
    try:
        page = context.new_page()
        problems = _watch(page)
        page.goto(f"{base}/login")
        page.screenshot(path=shots / "login-phone.png", full_page=True)
        _log_in(page, base, ADMIN, ADMIN_PASSWORD)
        expect(page).to_have_url(f"{base}/")
        for name, path in [("today", "/"), ("inbox", "/inbox"), ("calls", "/calls"), ("call", f"/calls/{call_id}"),
                           ("appointments", "/appointments"), ("staff", "/admin/staff"), ("data", "/admin/data"),
                           ("settings", "/admin/settings"), ("test-call", "/test-call")]:
            page.goto(base + path)
            page.screenshot(path=shots / f"{name}-phone.png", full_page=True)
            # Nothing wider than the screen: the page never scrolls sideways.
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= PHONE["width"], f"{path} is {width} px wide on a {PHONE['width']} px phone"
        assert not problems, problems
    finally:
        context.close()
