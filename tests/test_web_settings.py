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
import tomllib
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
    return html.unescape(match[1])


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
    assert error_next_to(refused.text, "retention-messages_days") == "Écrivez un nombre entier de 1 à 3650."
    assert 'value="400"' in refused.text, "what was typed is shown again"

    assert error_next_to(save(client, "answering", preset="custom", rings="beaucoup").text,
                         "answering-rings") == "Écrivez un nombre entier, en chiffres."
    assert error_next_to(save(client, "hours", monday="12:30-08:30").text, "hours-monday") == (
        "« 12:30-08:30 » finit avant de commencer.")
    assert error_next_to(save(client, "reasons", r1_duration_min="0").text, "r1_duration_min") == (
        "Écrivez un nombre entier de 5 à 240.")
    assert "Ligne 2" in error_next_to(save(client, "closures", closures="01/05/2026\nbientôt").text, "closures-closures")
    bad_url = save(client, "cloud", adapter="fhir", fhir_base_url="ftp://x", fhir_p_martin="Practitioner/1",
                   fhir_p_bernard="Practitioner/2", fhir_token="tok-Secret-42")
    assert error_next_to(bad_url.text, "cloud-fhir_base_url").startswith("Écrivez l'adresse complète du serveur")
    assert "tok-Secret-42" not in bad_url.text, "a secret is never sent back, even with a mistake"

    assert {name: (data_dir / name).read_bytes() for name in files} == files
    assert sorted(p.name for p in data_dir.iterdir() if p.name.startswith(".")) == [], "no temporary file left"


# --- Nonsense in every field, in every language --------------------------------------------

FHIR = {"adapter": "fhir", "fhir_base_url": "https://fhir.example/r4",
        "fhir_p_martin": "Practitioner/1", "fhir_p_bernard": "Practitioner/2"}
CALDAV = {"adapter": "caldav", "caldav_base_url": "https://dav.example/dav/", "caldav_username": "cabinet",
          "caldav_password": "s3cret-Pa55", "caldav_c_martin": "martin/", "caldav_c_bernard": "bernard/"}
EMPTY_WEEK = {day: "" for day in ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")}
SIGNS = ("invalid.signs", {"signs": "< >"})

# (section, id of the field the refusal stands next to, what is typed, locale key, its values).
NONSENSE: list[tuple[str, str, dict, str, dict]] = [
    ("practice", "practice-name", {"name": ""}, "invalid.required", {}),
    ("practice", "practice-name", {"name": "<script>alert(1)</script>"}, *SIGNS),
    ("practice", "practice-name", {"name": "Cabinet\u200bdes Tilleuls"}, "invalid.invisible", {}),
    ("practice", "practice-address", {"address": "x" * 5000}, "invalid.too_long", {"max": 300, "length": 5000}),
    ("practice", "practice-phone", {"phone": "appelez-nous"}, "invalid.phone", {"low": 6}),
    ("practice", "practice-phone", {"phone": "-1"}, "invalid.phone", {"low": 6}),
    ("practice", "practice-emergency_number", {"emergency_number": "quinze"}, "invalid.phone", {"low": 2}),
    ("practice", "practice-data_notice", {"data_notice": ""}, "invalid.required", {}),
    ("practice", "practice-data_notice", {"data_notice": "Vos données {name}"}, "invalid.signs", {"signs": "{ }"}),
    ("hours", "hours-monday", {"monday": "25:00-26:00"}, "invalid.clock", {"text": "25:00"}),
    ("hours", "hours-tuesday", {"tuesday": "08:00-12:00, 11:00-13:00"}, "invalid.overlap",
     {"a": "08:00-12:00", "b": "11:00-13:00"}),
    ("hours", "hours-wednesday", {"wednesday": "12:00-08:00"}, "invalid.backwards", {"text": "12:00-08:00"}),
    ("hours", "hours-thursday", {"thursday": "le matin"}, "invalid.period", {"text": "le matin"}),
    ("hours", "hours-friday", {"friday": "-8:00-12:00"}, "invalid.clock", {"text": "-8:00"}),
    ("hours", "hours-saturday", {"saturday": "<b>09:00-12:00</b>"}, "invalid.clock", {"text": "<b>09:00"}),
    ("hours", "hours-form", EMPTY_WEEK, "invalid.no_hours", {}),
    ("closures", "closures-closures", {"closures": "31/02/2026 Noël"}, "invalid.closure_date", {"n": 1, "date": "31/02/2026"}),
    ("closures", "closures-closures", {"closures": "26/12/2026 – 24/12/2026 Noël"}, "invalid.closure_backwards", {"n": 1}),
    ("closures", "closures-closures", {"closures": "01/05/2026\nbientôt"}, "settings.closure_unreadable",
     {"n": 2, "line": "bientôt"}),
    ("closures", "closures-closures", {"closures": "01/05/2026 <script>x</script>"}, "invalid.line", {"n": 1, "problem": SIGNS}),
    ("closures", "closures-closures", {"closures": "01/05/2026\n" * 201}, "invalid.too_many_lines", {"max": 200}),
    ("practitioners", "p0_display_name", {"p0_display_name": ""}, "invalid.required", {}),
    ("practitioners", "p0_last_name", {"p0_last_name": "<img src=x onerror=alert(1)>"}, *SIGNS),
    ("practitioners", "p0_aliases", {"p0_aliases": "docteur {x}"}, "invalid.signs", {"signs": "{ }"}),
    ("practitioners", "p0_hours", {"p0_hours": "funday 08:00-12:00"}, "invalid.weekday",
     {"day": "funday", "text": "funday 08:00-12:00"}),
    ("practitioners", "p0_hours", {"p0_hours": "mon 25:00-26:00"}, "invalid.clock", {"text": "25:00"}),
    ("practitioners", "p0_hours", {"p0_hours": "mon-fri 08:00-12:00\nmon 11:00-13:00"}, "invalid.range_overlap",
     {"a": "mon-fri 08:00-12:00", "b": "mon 11:00-13:00"}),
    ("practitioners", "p1_display_name", {"p1_remove": "1"}, "invalid.still_in_reason", {"reason": "une première consultation"}),
    ("practitioners", "p2_display_name", {"p2_aliases": "docteur Le Goff"}, "invalid.required", {}),
    ("practitioners", "practitioners-form", {"p0_id": "../../etc"}, "invalid.form_changed", {}),
    ("reasons", "r0_duration_min", {"r0_duration_min": "vingt"}, "invalid.number", {}),
    ("reasons", "r0_duration_min", {"r0_duration_min": "-5"}, "invalid.between", {"low": 5, "high": 240}),
    ("reasons", "r1_duration_min", {"r1_duration_min": "9" * 40}, "invalid.between", {"low": 5, "high": 240}),
    ("reasons", "r0_label", {"r0_label": ""}, "invalid.required", {}),
    ("reasons", "r0_who", {"r0_who": "nobody"}, "invalid.choice", {}),
    ("reasons", "r0_keywords", {"r0_keywords": "grippe, <script>"}, *SIGNS),
    ("reasons", "reasons-form", {f"r{i}_remove": "1" for i in range(5)}, "invalid.no_reason", {}),
    ("rules", "rules-min_notice_min", {"min_notice_min": "-1"}, "invalid.between", {"low": 0, "high": 10080}),
    ("rules", "rules-horizon_days", {"horizon_days": "soixante"}, "invalid.number", {}),
    ("rules", "rules-slot_step_min", {"slot_step_min": "1000"}, "invalid.between", {"low": 5, "high": 60}),
    ("rules", "rules-kept_for_staff", {"kept_for_staff": "xyz 08:00-09:00"}, "invalid.weekday",
     {"day": "xyz", "text": "xyz 08:00-09:00"}),
    ("rules", "rules-kept_for_staff", {"kept_for_staff": "mon 08:00"}, "invalid.period", {"text": "08:00"}),
    ("answering", "answering-rings", {"preset": "custom", "rings": "beaucoup"}, "invalid.number", {}),
    ("answering", "answering-rings", {"rings": "0"}, "invalid.between", {"low": 1, "high": 15}),
    ("answering", "answering-rings", {"rings": "-3"}, "invalid.between", {"low": 1, "high": 15}),
    ("answering", "answering-hours", {"hours": "mon-fri 25:00-26:00"}, "invalid.clock", {"text": "25:00"}),
    ("answering", "answering-hours", {"hours": "someday 08:00-09:00"}, "invalid.weekday",
     {"day": "someday", "text": "someday 08:00-09:00"}),
    ("answering", "answering-preset", {"preset": "nope"}, "invalid.choice", {}),
    ("answering", "answering-during_hours", {"preset": "custom", "during_hours": "sometimes"}, "invalid.choice", {}),
    ("retention", "retention-messages_days", {"messages_days": "0"}, "invalid.between", {"low": 1, "high": 3650}),
    ("retention", "retention-calls_days", {"calls_days": "-1"}, "invalid.between", {"low": 1, "high": 3650}),
    ("retention", "retention-outbox_days", {"outbox_days": "trente"}, "invalid.number", {}),
    ("retention", "retention-appointments_days", {"appointments_days": "999999"}, "invalid.between", {"low": 1, "high": 3650}),
    ("retention", "retention-transcripts_days", {"transcripts_days": "400"}, "invalid.transcripts_longer", {"days": 365}),
    ("cloud", "cloud-adapter", {"adapter": "ftp"}, "invalid.choice", {}),
    ("cloud", "cloud-fhir_base_url", FHIR | {"fhir_base_url": "ftp://x"}, "invalid.url", {}),
    ("cloud", "cloud-fhir_base_url", FHIR | {"fhir_base_url": ""}, "invalid.required", {}),
    ("cloud", "cloud-fhir_base_url", FHIR | {"fhir_base_url": "javascript:alert(1)"}, "invalid.url", {}),
    ("cloud", "cloud-fhir_base_url", FHIR | {"fhir_base_url": "https://fhir.example/r4?x=1"}, "invalid.url_plain", {}),
    ("cloud", "cloud-fhir_p_martin", FHIR | {"fhir_p_martin": "Doctor/1"}, "invalid.fhir_reference", {}),
    ("cloud", "cloud-fhir_p_martin", FHIR | {"fhir_p_martin": ""}, "invalid.cloud_missing", {}),
    ("cloud", "cloud-fhir_p_bernard", FHIR | {"fhir_p_bernard": "Practitioner/1"}, "invalid.cloud_twice", {}),
    ("cloud", "cloud-fhir_token", FHIR | {"fhir_token": "<script>alert(1)</script>"}, "invalid.token", {}),
    ("cloud", "cloud-caldav_base_url", CALDAV | {"caldav_base_url": "dav.example"}, "invalid.url", {}),
    ("cloud", "cloud-caldav_username", CALDAV | {"caldav_username": ""}, "invalid.required", {}),
    ("cloud", "cloud-caldav_c_martin", CALDAV | {"caldav_c_martin": "https://elsewhere.example/cal/"},
     "invalid.calendar_server", {}),
    ("cloud", "cloud-caldav_c_martin", CALDAV | {"caldav_c_martin": "mar tin/"}, "invalid.calendar", {}),
    ("cloud", "cloud-caldav_password", CALDAV | {"caldav_password": ""}, "invalid.password_needed", {}),
    ("cloud", "cloud-fhir_token", CALDAV | {"fhir_token": "tok-for-fhir"}, "invalid.secret_unused", {}),
]


def said(lang: str, key: str, values: dict) -> str:
    """A locale's sentence with its values (a value may itself be a sentence: ``(key, values)``)."""
    text = load_locales()[lang][key]
    return text.format(**{k: said(lang, *v) if isinstance(v, tuple) else v for k, v in values.items()})


@pytest.mark.parametrize("lang", LANGUAGES)
def test_nonsense_in_any_field_is_refused_next_to_it_in_the_pages_language_and_nothing_is_saved(
    client: TestClient, data_dir: Path, lang: str
) -> None:
    save(client, "retention", messages_days="60")
    save(client, "hours", saturday="09:00-12:30")
    files = {name: (data_dir / name).read_bytes() for name in ("settings.toml", "practice.toml")}
    client.cookies.set("box_lang", lang)
    page = client.get("/admin/settings").text
    assert f'<html lang="{lang}">' in page
    technical = {said(lang, "settings.technical", {"detail": ""}).strip()}

    for section, field_id, typed, key, values in NONSENSE:
        answer = client.post(f"/admin/settings/{section}", data=form_of(page, f"/admin/settings/{section}", **typed))
        where = f"{section} {typed!r:.60}"
        assert answer.status_code == 400, where
        assert error_next_to(answer.text, field_id) == said(lang, key, values), where
        assert not any(line in answer.text for line in technical), f"{where}: left to the box's own check"
        assert "<script>" not in answer.text and "<img src=x" not in answer.text, f"{where}: markup sent back as is"

    assert {name: (data_dir / name).read_bytes() for name in files} == files
    assert sorted(p.name for p in data_dir.iterdir() if p.name.startswith(".")) == [], "no temporary file left"


def test_what_the_box_still_refuses_names_the_field_with_the_technical_detail_below(
    client: TestClient, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The box's own checks stay the last line of defence: should the page's checks
    ever let through what the box refuses (here: the page believes in longer
    periods than the box), the field is named in the staff's language and the
    box's sentence comes only as a technical detail."""
    from appliance.web import settings_forms

    monkeypatch.setattr(settings_forms, "RETENTION_DAYS", (1, 99999))
    client.cookies.set("box_lang", "de")

    refused = save(client, "retention", messages_days="5000")

    assert refused.status_code == 400
    assert error_next_to(refused.text, "retention-messages_days") == (
        "Die Box akzeptiert „Nachrichten“ zusammen mit den übrigen Einstellungen nicht:"
        " prüfen Sie dieses Feld und die davon abhängigen.")
    detail = re.search(r'id="e-retention-messages_days" class="error">[^<]*</p>\s*<p class="error-detail">([^<]*)<', refused.text)
    assert detail and html.unescape(detail[1]).startswith("Technisches Detail: retention.messages_days must be")
    assert not (data_dir / "settings.toml").exists()


def test_a_rule_between_settings_the_page_cannot_fix_is_shown_above_the_section(data_dir: Path) -> None:
    """The installer's file maps only one practitioner in the cloud agenda: every change
    of the practice is refused, said in the staff's language, with the box's words below."""
    box = data_dir / "box.toml"
    box.write_text('[sync]\nadapter = "fhir"\n[sync.fhir]\nbase_url = "https://fhir.example/r4"\n'
                   'practitioners = { martin = "Practitioner/1" }\n')
    app = create_app(load_config(box, data_dir=data_dir), config_path=box)
    with TestClient(app, base_url="https://testserver") as client:
        set_up_admin(client, data_dir)
        refused = save(client, "practice", name="Cabinet du Parc")
    assert refused.status_code == 400
    assert error_next_to(refused.text, "practice-form") == "Le boîtier n'accepte pas ces réglages tels quels : vérifiez-les."
    assert "Détail technique : sync.fhir.practitioners has no entry for &#39;bernard&#39;" in refused.text
    assert not (data_dir / "practice.toml").exists()


def test_a_field_refused_twice_keeps_what_was_typed_and_escapes_markup(client: TestClient) -> None:
    answer = save(client, "practice", name="<script>alert(1)</script>", address="12 rue <b>Neuve</b>")
    assert answer.status_code == 400
    assert 'value="&lt;script&gt;alert(1)&lt;/script&gt;"' in answer.text
    assert "&lt;b&gt;Neuve&lt;/b&gt;" in answer.text
    assert "<script>alert" not in answer.text and "<b>Neuve" not in answer.text


def test_staff_may_write_days_and_times_their_own_way(client: TestClient, data_dir: Path) -> None:
    save(client, "answering", preset="custom", during_hours="now", outside_hours="never",
         hours="lun-ven 8h30-12h30, 14h-19h\nsamedi 09:00-12:00")
    assert load_config(None, data_dir=data_dir).answering.hours == (
        "mon-fri 08:30-12:30", "mon-fri 14:00-19:00", "sat 09:00-12:00")
    save(client, "hours", monday="14h-19h, 8h30-12h30")
    practice = resolve_practice(load_config(None, data_dir=data_dir).practice)
    assert [f"{p.start:%H:%M}-{p.end:%H:%M}" for p in practice.hours if p.weekday == 0] == ["08:30-12:30", "14:00-19:00"]


# --- Taking a saved setting out ---------------------------------------------------------------


def test_an_emptied_optional_field_brings_back_the_installers_value(data_dir: Path) -> None:
    box = data_dir / "box.toml"
    box.write_text("[retention]\nmessages_days = 45\n[answering]\nrings = 6\n")
    app = create_app(load_config(box, data_dir=data_dir), config_path=box)
    with TestClient(app, base_url="https://testserver") as client:
        set_up_admin(client, data_dir)
        save(client, "retention", messages_days="60")
        save(client, "answering", preset="rings", rings="3")
        assert (load_config(box, data_dir=data_dir).retention.messages_days,
                load_config(box, data_dir=data_dir).answering.rings) == (60, 3)

        page = save(client, "retention", messages_days="").text
        save(client, "answering", preset="rings", rings="")
        save(client, "practice", emergency_number="")
        save(client, "rules", slot_step_min="")

    overlay = tomllib.loads((data_dir / "settings.toml").read_text())
    assert "messages_days" not in overlay["retention"] and "rings" not in overlay["answering"]
    config = load_config(box, data_dir=data_dir)
    assert (config.retention.messages_days, config.answering.rings) == (45, 6)
    practice = resolve_practice(config.practice)
    assert (practice.emergency_number, practice.rules.slot_step_min) == ("15", 10)
    assert 'id="f-retention-messages_days" name="messages_days" type="text" value="45"' in page, "what applies is shown"


def test_a_saved_token_is_never_shown_and_can_be_removed(client: TestClient, data_dir: Path) -> None:
    token = "tok-Secret-42.abc"
    saved = save(client, "cloud", **FHIR, fhir_token=token)
    assert saved.status_code == 200
    assert load_config(None, data_dir=data_dir).sync.fhir.bearer_token == token  # type: ignore[union-attr]
    page = client.get("/admin/settings").text
    assert "Un secret est enregistré" in page and 'name="fhir_token_remove"' in page
    assert token not in saved.text and token not in page
    assert token not in save(client, "cloud", **FHIR | {"fhir_p_martin": "nope/1"}).text, "nor with a mistake"

    both = save(client, "cloud", **FHIR, fhir_token="another-token", fhir_token_remove="1")
    assert error_next_to(both.text, "cloud-fhir_token") == "Tapez un nouveau secret ou cochez « Supprimer », pas les deux."

    removed = save(client, "cloud", **FHIR, fhir_token_remove="1")
    assert removed.status_code == 200
    assert load_config(None, data_dir=data_dir).sync.fhir.bearer_token is None  # type: ignore[union-attr]
    assert "bearer_token" not in (data_dir / "settings.toml").read_text()
    assert 'name="fhir_token_remove"' not in removed.text and "Facultatif." in removed.text


def test_a_caldav_password_is_removed_only_when_nothing_needs_it(client: TestClient, data_dir: Path) -> None:
    save(client, "cloud", **CALDAV)
    needed = save(client, "cloud", **CALDAV | {"caldav_password": ""}, caldav_password_remove="1")
    assert error_next_to(needed.text, "cloud-caldav_password") == "Un mot de passe est nécessaire pour l'agenda CalDAV."
    assert load_config(None, data_dir=data_dir).sync.caldav.read_password() == "s3cret-Pa55"  # type: ignore[union-attr]

    # No cloud agenda any more: the password can go, and the CalDAV settings with it
    # (the box keeps no CalDAV connection without its password).
    assert save(client, "cloud", adapter="none", caldav_password_remove="1").status_code == 200
    overlay = tomllib.loads((data_dir / "settings.toml").read_text())
    assert overlay["sync"] == {"adapter": "none"}
    assert load_config(None, data_dir=data_dir).sync.caldav is None
    assert "s3cret-Pa55" not in client.get("/admin/settings").text


def test_removing_the_pages_token_brings_back_the_installers(data_dir: Path) -> None:
    box = data_dir / "box.toml"
    box.write_text('[sync]\nadapter = "fhir"\n[sync.fhir]\nbase_url = "https://fhir.example/r4"\n'
                   'practitioners = { martin = "Practitioner/1", bernard = "Practitioner/2" }\n'
                   'bearer_token = "installer-token"\n')
    app = create_app(load_config(box, data_dir=data_dir), config_path=box)
    with TestClient(app, base_url="https://testserver") as client:
        set_up_admin(client, data_dir)
        first = html.unescape(client.get("/admin/settings").text)
        assert "Un secret est fixé à l'installation" in first and 'name="fhir_token_remove"' not in first
        save(client, "cloud", **FHIR, fhir_token="page-token")
        assert load_config(box, data_dir=data_dir).sync.fhir.bearer_token == "page-token"  # type: ignore[union-attr]
        page = html.unescape(save(client, "cloud", **FHIR, fhir_token_remove="1").text)
    assert load_config(box, data_dir=data_dir).sync.fhir.bearer_token == "installer-token"  # type: ignore[union-attr]
    assert "installer-token" not in page and "page-token" not in page and "Un secret est fixé à l'installation" in page


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
    assert "La connexion a échoué : le serveur ne répond pas à cette adresse" in html.unescape(answer.text)
    assert f"Détail technique : cannot reach the cloud agenda at http://127.0.0.1:{port}/fhir" in answer.text
    assert f"http://127.0.0.1:{port}/fhir" in answer.text, "the typed values stay in the form"
    assert not (data_dir / "settings.toml").exists()
    assert load_config(None, data_dir=data_dir).sync.adapter == "none"


def test_a_refused_password_is_said_in_the_pages_language_by_a_real_caldav_server(
    client: TestClient, caldav_server  # type: ignore[no-untyped-def]
) -> None:
    martin, bernard = caldav_server.make_calendar(), caldav_server.make_calendar()
    client.cookies.set("box_lang", "en")
    page = client.get("/admin/settings").text
    typed = CALDAV | {"caldav_base_url": caldav_server.url, "caldav_username": caldav_server.username,
                      "caldav_c_martin": martin, "caldav_c_bernard": bernard}

    wrong = client.post("/admin/settings/cloud/check",
                        data=form_of(page, "/admin/settings/cloud", **typed | {"caldav_password": "not-the-password"}))
    right = client.post("/admin/settings/cloud/check",
                        data=form_of(page, "/admin/settings/cloud", **typed | {"caldav_password": caldav_server.password}))

    assert "The connection failed: the user name, password or token was refused." in html.unescape(wrong.text)
    assert "Technical detail: " in wrong.text and "not-the-password" not in wrong.text
    assert 'class="notice ok"' in right.text and caldav_server.password not in right.text


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
    web = REPO / "appliance" / "web"
    used: set[str] = set()
    for name in ("settings_page.py", "settings_forms.py", "test_call.py", "account.py"):
        used |= set(re.findall(r"""t\(\s*["']((?:settings|test_call|invalid|reauth)\.[a-z_]+)["']""", (web / name).read_text()))
    used |= {f"invalid.{key}" for key in re.findall(r"""Invalid\(\s*["']([a-z_]+)["']""", (web / "field_checks.py").read_text())}
    assert len(used) > 40
    groups = ("settings.", "test_call.", "weekday.", "language.", "preset.", "mode.", "adapter.", "invalid.", "cloud_why.", "reauth.")
    for lang in LANGUAGES:
        assert not [key for key in used if key not in locales[lang]], lang
        assert all(key in locales[lang] for key in locales["fr"] if key.startswith(groups))
    # Translated, not French left in place: every refusal differs from its French sentence.
    for key in (k for k in locales["fr"] if k.startswith(("invalid.", "cloud_why.", "reauth."))):
        assert len({locales[lang][key] for lang in LANGUAGES}) == 3, key


def test_the_llm_section_shows_what_each_model_passed_on_this_box(client: TestClient, data_dir: Path) -> None:
    from appliance.llm.qualify import Backend, Qualification, TaskResult, announce, record
    from appliance.llm.settings import LlmSettings

    settings = LlmSettings(enabled=True, server_url="http://10.0.0.5:8080")
    server = Backend("server", "srv-key", "qwen-7b", "http://10.0.0.5:8080")
    local = Backend("local", "local-key", "gemma-3-270m")
    store = Store.open(data_dir / "appliance.db")
    try:
        announce(store, settings, (server, local))
        record(store, server, settings, state="done", result=Qualification(
            "qwen-7b", TaskResult("intent", 64, 67, 67, 40.0, 0.9), TaskResult("summary", 6, 11, 11, 60.0, 0.9)))
        record(store, local, settings, state="unreachable", detail="llm-unreachable")
    finally:
        store.close()
    page = client.get("/admin/settings").text
    section = page[page.index('id="llm"'):]
    section = section[:section.index("</section>")]
    assert "Aide pour" in section and "comprendre la demande" in section
    assert "résumer les messages" not in section.split("<table")[0]  # the summary task did not pass
    assert "qwen-7b" in section and "64/67 (seuil 90 %)" in section and "non qualifié" in section
    assert "injoignable" in section
