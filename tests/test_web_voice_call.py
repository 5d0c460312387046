"""A test call spoken into the browser's microphone, from the page to the box's recognizer.

Chromium (Debian's, headless, through Playwright) gets a fake microphone that
plays an espeak-ng recording (``--use-fake-device-for-media-stream
--use-file-for-fake-audio-capture``): the page records it, resamples it to 16 kHz
and posts it; the web process checks the WAV and forwards it; the core, on the
plain simulated line, loads the recognizer on this first spoken turn and hears
it; the recognised words and the assistant's replies come back into the page.

Also: what the page says when the microphone is refused or the page is not a
secure context, typing without JavaScript, and the upload checks of the web
process (type, size, format, length), through the real app.
"""

from __future__ import annotations

import io
import re
import tempfile
import wave
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from starlette.testclient import TestClient

from appliance.config import Config
from appliance.store import Store
from appliance.store.staff import staff_members
from appliance.web.app import create_app
from appliance.web.render import LANGUAGES, load_locales
from appliance.web.test_call import Conversation, Conversations

from .conftest import REPO
from .test_control import SPOKEN, espeak_wav
from .test_web_browser import ADMIN, ADMIN_PASSWORD, CHROMIUM, CHROMIUM_FLAGS, DESKTOP, PHONE, _running_box, _watch
from .test_web_security import csrf_of, set_up_admin


@pytest.fixture(scope="module")
def box() -> Iterator[tuple[str, Path, str]]:
    """The box's core on the plain simulated line (no models loaded) and its web page."""
    with tempfile.TemporaryDirectory(prefix="v") as folder:  # short: the control socket lives in it
        yield from _running_box(Path(folder))


@pytest.fixture(scope="module")
def microphone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What Chromium's fake microphone plays: the sentence, then silence for the page to stop on."""
    return espeak_wav(SPOKEN, tmp_path_factory.mktemp("mic") / "caller.wav", lead_s=0.5, tail_s=3.0)


@pytest.fixture(scope="module")
def browser(microphone: Path) -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (the browser tests drive Debian's Chromium)")
    fake_microphone = [
        "--use-fake-ui-for-media-stream",  # allow the microphone without asking
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={microphone}",
    ]
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                      args=[*CHROMIUM_FLAGS, *fake_microphone])
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def site(box: tuple[str, Path, str], browser: Browser) -> str:
    """The page's address, its administrator made through first-boot setup."""
    base, data_dir, _ = box
    context = browser.new_context(viewport=DESKTOP, locale="fr-FR")
    try:
        page = context.new_page()
        page.goto(f"{base}/setup")
        page.get_by_label("Code de mise en service").fill((data_dir / "setup-code").read_text().strip())
        page.get_by_label("Identifiant de l'administrateur").fill(ADMIN)
        page.get_by_label("Mot de passe", exact=True).fill(ADMIN_PASSWORD)
        page.get_by_label("Confirmez le mot de passe").fill(ADMIN_PASSWORD)
        page.get_by_role("button", name="Créer le compte administrateur").click()
        expect(page).to_have_url(f"{base}/")
    finally:
        context.close()
    return base


def _log_in(page: Page, base: str) -> None:
    page.goto(f"{base}/login")
    page.get_by_label("Identifiant").fill(ADMIN)
    page.get_by_label("Mot de passe").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Se connecter").click()
    expect(page).to_have_url(f"{base}/")


def _start_test_call(page: Page, base: str) -> None:
    """A new test call; the page shows this staff member's last one, which another test may have left on."""
    page.goto(f"{base}/test-call")
    if page.get_by_role("button", name="Raccrocher").count():
        page.get_by_role("button", name="Raccrocher").click()
        expect(page.get_by_text("L'appel est terminé.")).to_be_visible()
    page.get_by_role("button", name=re.compile(r"^Commencer un (nouvel )?appel d'essai$")).click()
    expect(page.locator(".turn.assistant").first).to_contain_text("Cabinet médical des Tilleuls")


def test_a_test_call_spoken_into_the_microphone_is_heard_and_answered(
    site: str, browser: Browser, tmp_path: Path
) -> None:
    context = browser.new_context(viewport=DESKTOP, locale="fr-FR")
    try:
        page = context.new_page()
        problems = _watch(page)
        _log_in(page, site)
        _start_test_call(page, site)

        speak = page.get_by_role("button", name="Parler")
        expect(speak).to_be_visible()
        with page.expect_request(re.compile(r"/test-call/hear\?call_id=")) as sent:
            speak.click()
            status = page.locator(".speak-status")
            expect(status).to_contain_text("Écoute…")
            # The core on the plain simulated line has no models yet: this first spoken turn loads them.
            expect(status).to_contain_text("Chargement de la reconnaissance vocale")
            expect(page.get_by_role("button", name="Arrêter")).to_have_attribute("aria-pressed", "true")
            page.screenshot(path=tmp_path / "test-call-listening.png", caret="initial")
        upload = sent.value
        assert upload.headers["content-type"] == "audio/wav" and upload.headers.get("x-csrf-token")
        clip = upload.post_data_buffer
        assert clip is not None
        with wave.open(io.BytesIO(clip)) as audio:
            assert (audio.getnchannels(), audio.getsampwidth(), audio.getframerate()) == (1, 2, 16000)
            # It stopped on its own after the sentence (~3.9 s of it after 0.5 s of silence): a pause ends it.
            assert 4.0 < audio.getnframes() / 16000 < 8.0

        caller = page.locator(".turn.caller")
        expect(caller).to_have_count(1, timeout=90_000)
        expect(caller).to_contain_text(re.compile("rendez", re.IGNORECASE))
        expect(caller.locator(".heard")).to_have_text(re.compile(r"^dit au micro · reconnu en \d+ ms$"))
        replies = page.locator(".turn.assistant")
        expect(replies).to_have_count(2)
        expect(replies.nth(1).locator(".latency")).to_have_text(re.compile(r"^\d+ ms$"))
        expect(page.locator(".speak-status")).to_be_hidden()
        # caret="initial": hiding the caret leaves style="" on every input, which htmx's next
        # swap would copy onto the new ones, against the page's CSP.
        page.screenshot(path=tmp_path / "test-call-spoken.png", full_page=True, caret="initial")

        # The conversation goes on by typing, in the same call.
        page.get_by_label("Ce que dit l'appelant").fill("c'est pour une consultation")
        page.get_by_role("button", name="Envoyer").click()
        expect(page.locator(".turn.caller")).to_have_count(2)
        expect(page.get_by_role("button", name="Parler")).to_be_enabled()
        assert not problems, problems
    finally:
        context.close()


def test_a_refused_microphone_or_an_insecure_page_is_said_and_typing_still_works(site: str, browser: Browser) -> None:
    refused = """
        navigator.mediaDevices.getUserMedia = function () {
          return Promise.reject(new DOMException("Permission denied", "NotAllowedError"));
        };
    """
    # Plain http on an address other than localhost: browsers offer no getUserMedia there.
    insecure = "Object.defineProperty(window, 'isSecureContext', {value: false});"
    for script, sentence in [(refused, "Le navigateur a refusé l'accès au micro"),
                             (insecure, "le navigateur ne l'autorise que sur une page en https")]:
        context = browser.new_context(viewport=PHONE, locale="fr-FR", is_mobile=True, has_touch=True)
        context.add_init_script(script)
        try:
            page = context.new_page()
            problems = _watch(page)
            _log_in(page, site)
            _start_test_call(page, site)
            speak = page.get_by_role("button", name="Parler")
            if script is refused:
                speak.click()
                expect(speak).to_have_attribute("aria-pressed", "false")
            else:
                expect(speak).to_be_disabled()
            expect(page.locator(".speak-status")).to_contain_text(sentence)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= PHONE["width"], f"the test call is {width} px wide on a {PHONE['width']} px phone"
            page.get_by_label("Ce que dit l'appelant").fill("je voudrais un rendez-vous")
            page.get_by_role("button", name="Envoyer").click()
            expect(page.locator(".turn.caller")).to_contain_text("je voudrais un rendez-vous")
            expect(page.locator(".turn.assistant")).to_have_count(2)
            assert not problems, problems
        finally:
            context.close()


def test_without_javascript_there_is_no_speak_button_and_typing_works(site: str, browser: Browser) -> None:
    context = browser.new_context(viewport=DESKTOP, locale="fr-FR", java_script_enabled=False)
    try:
        page = context.new_page()
        _log_in(page, site)
        _start_test_call(page, site)
        expect(page.get_by_role("button", name="Parler")).to_have_count(0)  # hidden: not offered
        page.get_by_label("Ce que dit l'appelant").fill("je voudrais un rendez-vous")
        page.get_by_role("button", name="Envoyer").click()
        expect(page.locator(".turn.caller")).to_contain_text("je voudrais un rendez-vous")
    finally:
        context.close()


# --- The web process's checks of an upload (no core needed: they come first) -------------


@pytest.fixture
def client() -> Iterator[TestClient]:
    with tempfile.TemporaryDirectory(prefix="w") as folder:
        data_dir = Path(folder)
        with TestClient(create_app(replace(Config(), data_dir=data_dir)), base_url="https://testserver") as test_client:
            set_up_admin(test_client, data_dir)
            with Store.open(data_dir / "appliance.db") as store:
                [admin] = staff_members(store)
            # A test call this staff member started (the core is not needed before the checks pass).
            test_client.app.state.test_calls = Conversations()  # type: ignore[attr-defined]
            test_client.app.state.test_calls.add(Conversation(call_id="sim-test-1", owner=admin.id))  # type: ignore[attr-defined]
            yield test_client


def _wav(seconds: float, *, rate: int = 16000, channels: int = 1, width: int = 2) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as audio:
        audio.setnchannels(channels)
        audio.setsampwidth(width)
        audio.setframerate(rate)
        audio.writeframes(bytes(int(seconds * rate) * channels * width))
    return out.getvalue()


@pytest.mark.parametrize(
    ("content_type", "body", "status", "sentence"),
    [
        ("text/plain", _wav(1.0), 415, "L'enregistrement doit être envoyé en WAV (audio/wav)."),
        ("audio/wav", b"RIFF....not a wave file", 415, "il faut un WAV mono, 16 bits, à 16 kHz"),
        ("audio/wav", _wav(1.0, rate=44100), 415, "il faut un WAV mono, 16 bits, à 16 kHz"),
        ("audio/wav", _wav(1.0, channels=2), 415, "il faut un WAV mono, 16 bits, à 16 kHz"),
        ("audio/wav", _wav(1.0, width=1), 415, "il faut un WAV mono, 16 bits, à 16 kHz"),
        ("audio/wav", _wav(0.0), 400, "L'enregistrement est vide"),
        ("audio/wav", _wav(20.5), 413, "L'enregistrement dure plus de 20 secondes"),
        ("audio/wav", _wav(25.0), 413, "L'enregistrement est trop gros : 20 secondes au plus."),
    ],
)
def test_an_upload_that_is_not_a_spoken_turn_is_refused_in_a_sentence(
    client: TestClient, content_type: str, body: bytes, status: int, sentence: str
) -> None:
    token = csrf_of(client.get("/test-call").text)
    answer = client.post("/test-call/hear?call_id=sim-test-1", content=body,
                         headers={"content-type": content_type, "x-csrf-token": token, "hx-request": "true"})
    assert answer.status_code == status
    assert "<html" not in answer.text and 'id="test-call"' in answer.text, "the panel, drawn again"
    assert sentence in answer.text.replace("&#39;", "'")


def test_a_spoken_turn_for_someone_elses_or_an_ended_call_or_without_a_core_is_refused(client: TestClient) -> None:
    token = csrf_of(client.get("/test-call").text)
    headers = {"content-type": "audio/wav", "x-csrf-token": token, "hx-request": "true"}
    other = client.post("/test-call/hear?call_id=sim-other-9", content=_wav(1.0), headers=headers)
    assert "Cet appel d'essai est terminé" in other.text.replace("&#39;", "'")
    offline = client.post("/test-call/hear?call_id=sim-test-1", content=_wav(1.0), headers=headers)
    assert "Le cœur du boîtier ne répond pas" in offline.text
    assert client.post("/test-call/hearing", headers=headers).json() == {
        "state": "failed", "message": load_locales()["fr"]["test_call.core_offline"]}
    # Without the CSRF token nothing is read, let alone forwarded.
    assert client.post("/test-call/hear?call_id=sim-test-1", content=_wav(1.0),
                       headers={"content-type": "audio/wav"}).status_code == 403


def test_every_sentence_of_the_spoken_test_call_exists_in_every_language() -> None:
    locales = load_locales()
    sources = [REPO / "appliance" / "web" / "test_call.py", REPO / "appliance" / "web" / "templates" / "_test_call.html",
               REPO / "appliance" / "web" / "templates" / "test_call.html"]
    used = {key for source in sources for key in re.findall(r"test_call_voice\.[a-z_]+", source.read_text())}
    assert len(used) >= 20
    for lang in LANGUAGES:
        assert not [key for key in used if key not in locales[lang]], lang
        assert all(key in locales[lang] for key in locales["fr"] if key.startswith("test_call_voice.")), lang
