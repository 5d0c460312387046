"""Scenario files: every mistake is reported as file:line: problem."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import pytest

from appliance.config import Config
from appliance.errors import ScenarioError
from appliance.simulate.runner import simulate
from appliance.simulate.scenario import load_scenario
from appliance.store import Store, appointments

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
HEAD = 'now = "2026-11-24T09:00:00+01:00"\ncaller_id = "0612345678"\npractice = "demo"\n'
MODEM = HEAD + 'line = "sim:usr5637"\n'
GSM = HEAD + 'line = "sim:sim7600"\n'


def _scenario(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "call.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.toml")), ids=lambda p: p.name)
def test_every_public_scenario_loads(path: Path) -> None:
    scenario = load_scenario(path)
    assert scenario.now.tzinfo is not None
    assert scenario.expect.outcome is not None


def test_a_scenario_reads_its_turns_and_expectations() -> None:
    scenario = load_scenario(SCENARIOS / "book_basic.toml")
    assert scenario.caller_id == "0612345678"
    assert scenario.turns[0].say and scenario.turns[0].when is None
    assert scenario.turns[1].when == "when"
    assert scenario.expect.weekday == 3
    assert scenario.expect.time_to == time(12, 30)
    assert scenario.expect.birth_date == date(1980, 3, 12)


def test_an_empty_caller_id_means_withheld(tmp_path: Path) -> None:
    path = _scenario(tmp_path, HEAD.replace('"0612345678"', '""'))
    assert load_scenario(path).caller_id is None


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        (HEAD + "colour = 1\n", 4, "unknown key 'colour'"),
        (HEAD.replace("2026-11-24T09:00:00+01:00", "mardi 9h"), 1, "not an ISO 8601 date-time"),
        (HEAD.replace("2026-11-24T09:00:00+01:00", "2026-11-24T09:00:00"), 1, "with its UTC offset"),
        ('now = "2026-11-24T09:00:00+01:00"\n', 1, "missing key 'practice'"),
        (HEAD + "\n[[turn]]\nsay = \"oui\"\n\n[[turn]]\nshout = \"non\"\n", 9, "unknown key 'shout' in [[turn]]"),
        (HEAD + "\n[[turn]]\nsay = \"oui\"\ndtmf = \"1\"\n", 5, "exactly one of"),
        (HEAD + "\n[[turn]]\nsay = \"oui\"\nwhen = \"mood\"\n", 7, "'when' must be an ask"),
        (HEAD + "\n[[turn]]\ndtmf = \"12a\"\n", 6, "keys 0-9"),
        (HEAD + "\n[expect]\noutcome = \"happy\"\n", 6, "outcome must be one of"),
        (HEAD + "\n[expect]\nweekday = \"someday\"\n", 6, "weekday must be a day name"),
        (HEAD + "\n[expect]\nbirth_date = \"12/03/1980\"\n", 6, "YYYY-MM-DD"),
        (HEAD + "\n[caller]\nchannel = \"g729\"\n", 6, "channel must be one of"),
        (HEAD + "title = \n", 4, "not valid TOML"),
        (HEAD + "\n[[turn]]\nfault = \"unplug_replug\"\n", 6, "'fault' needs a simulated device line"),
        (MODEM + "\n[[turn]]\nfault = \"port_vanishes\"\n", 7, "'fault' on a modem line must be one of extension_pickup"),
        (GSM + "\n[[turn]]\nfault = \"extension_pickup\"\n", 7, "'fault' on a gsm line must be one of port_vanishes"),
        (MODEM + "\n[[turn]]\nsay = \"oui\"\nwhile_box_speaks = true\n", 8, "for a hangup or a fault"),
        (MODEM + "\n[[turn]]\nsay = \"oui\"\nhold_s = 2\n", 8, "how long each dtmf key is held"),
        (MODEM + "\n[line_faults]\nhangup_signal = \"smoke\"\n", 7, "hangup_signal must be one of dial_tone"),
        (GSM + "\n[line_faults]\nhangup_signal = \"busy\"\n", 7, "hangup_signal applies to analog modem lines"),
        (MODEM + "\n[line_faults]\ncpcmreg_refusals = 2\n", 7, "cpcmreg_refusals applies to GSM lines"),
        (HEAD + "\n[line_faults]\nrandom_chunks = 3\n", 5, "need a simulated device line"),
        (MODEM + "\n[line_faults]\nabandon_at_ring = 0\n", 7, "abandon_at_ring must be a ring number"),
        (HEAD + "\n[expect]\nhangup_within_s = \"fast\"\n", 6, "hangup_within_s must be a number of seconds"),
        (HEAD + "\n[[turn]]\ndtmf = \"1\"\nlanguage = \"en\"\n", 7, "'language' is what the recogniser detected"),
        (HEAD + "\n[[turn]]\nsay = \"Hola\"\nlanguage = \"es\"\n", 7, "one of fr, de, en"),
        (HEAD + "languages = \"en\"\n", 4, "languages is a list of language codes"),
        (HEAD + "languages = [\"fr\", \"klingon\"]\n", 4, "klingon unknown"),
        (HEAD + "\n[expect]\nmessage_phone = \"call me\"\n", 6, "message_phone is the number to call back"),
        (HEAD + "\n[expect]\nlanguage = \"it\"\n", 6, "language must be one of fr, de, en"),
    ],
)
def test_mistakes_name_file_line_and_problem(tmp_path: Path, text: str, line: int, problem: str) -> None:
    path = _scenario(tmp_path, text)
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    assert f"{path}:{line}: " in str(err.value)
    assert problem in str(err.value)


def test_a_missing_file_is_a_scenario_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "nope.toml")


def test_line_faults_and_fault_turns_are_read(tmp_path: Path) -> None:
    path = _scenario(tmp_path, MODEM + """
[line_faults]
hangup_signal = "dial_tone_only"
random_chunks = 7

[[turn]]
fault = "unplug_replug"
fault_s = 4
while_box_speaks = true

[[turn]]
dtmf = "5"
hold_s = 1.5

[expect]
end_reason = "line_lost"
hangup_within_s = 3
line_ready_within_s = 10
""")
    scenario = load_scenario(path)
    assert scenario.device_kind == "modem"
    assert (scenario.line_faults.hangup_signal, scenario.line_faults.random_chunks) == ("dial_tone_only", 7)
    assert (scenario.turns[0].fault, scenario.turns[0].fault_s, scenario.turns[0].while_box_speaks) == ("unplug_replug", 4.0, True)
    assert scenario.turns[1].hold_s == 1.5
    assert (scenario.expect.end_reason, scenario.expect.hangup_within_s) == ("line_lost", 3.0)


# -- what the evaluation adds: categories, pending, audio subset, seeded appointments ----------


def test_evaluation_keys_are_read(tmp_path: Path) -> None:
    path = _scenario(tmp_path, HEAD + """category = "not_emergency"
pending = "the secretary books the wrong day"
audio = true

[[appointment]]
last_name = "Durand"
first_name = "Luc"
birth_date = 1975-02-14
practitioner = "martin"
start = "2026-11-26T10:00:00+01:00"
reason = "consultation"

[[turn]]
say = "Mon mari est tout gris et il transpire."

[expect]
outcome = "message"
message_urgency = "days"
said = ["rendez-vous", "docteur"]
not_said = ["mg"]
max_caller_turns = 7
""")
    scenario = load_scenario(path)
    assert (scenario.category, scenario.pending, scenario.audio) == ("not_emergency", "the secretary books the wrong day", True)
    [seeded] = scenario.appointments
    assert (seeded.last_name, seeded.birth_date, seeded.practitioner, seeded.reason) == ("Durand", date(1975, 2, 14), "martin", "consultation")
    assert seeded.start.isoformat() == "2026-11-26T10:00:00+01:00" and seeded.phone == ""
    expect = scenario.expect
    assert (expect.message_urgency, expect.said, expect.not_said, expect.max_caller_turns) == ("days", ("rendez-vous", "docteur"), ("mg",), 7)


@pytest.mark.parametrize(
    ("outcome", "category"),
    [("booked", "booking"), ("emergency", "emergency"), ("cancelled", "cancel"), ("rescheduled", "move"),
     ("message", "message"), ("answered", "question"), ("abandoned", "other")],
)
def test_the_category_follows_the_outcome_unless_given(tmp_path: Path, outcome: str, category: str) -> None:
    path = _scenario(tmp_path, HEAD + f'\n[expect]\noutcome = "{outcome}"\n')
    scenario = load_scenario(path)
    assert scenario.category == category
    assert scenario.pending is None and scenario.audio is False and scenario.appointments == ()


_APPOINTMENT = ('\n[[appointment]]\nlast_name = "Durand"\nfirst_name = "Luc"\nbirth_date = "1975-02-14"\n'
                'practitioner = "martin"\nstart = "2026-11-26T10:00:00+01:00"\nreason = "consultation"\n')


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        (HEAD + 'category = "gossip"\n', 4, "category must be one of"),
        (HEAD + 'category = "emergency"\n\n[expect]\noutcome = "booked"\n', 4, "category 'emergency' goes with outcome 'emergency'"),
        (HEAD + 'category = "not_emergency"\n\n[expect]\noutcome = "emergency"\n', 4, "category 'emergency' goes with"),
        (HEAD + 'pending = ""\n', 4, "'pending' is the reason"),
        (HEAD + 'audio = "yes"\n', 4, "'audio' is true or false"),
        (HEAD + _APPOINTMENT.replace('reason = "consultation"\n', ""), 5, "[[appointment]] needs 'reason'"),
        (HEAD + _APPOINTMENT + 'room = "2"\n', 12, "unknown key 'room' in [[appointment]]"),
        (HEAD + _APPOINTMENT.replace("+01:00", ""), 10, "with its UTC offset"),
        (HEAD + _APPOINTMENT.replace("10:00:00", "10:00:30"), 10, "whole minutes"),
        (HEAD + _APPOINTMENT.replace('"1975-02-14"', '"14/02/1975"'), 8, "YYYY-MM-DD"),
        (HEAD + _APPOINTMENT.replace('"Durand"', '" "'), 6, "last_name must be non-empty text"),
        (HEAD + _APPOINTMENT + 'phone = "appelez-moi"\n', 12, "phone must be a phone number"),
        (HEAD + '\n[[turn]]\ndtmf = "1"\nemergency_cue = true\n', 7, "on a 'say' turn"),
        (HEAD + '\n[[turn]]\nsay = "il respire plus"\nemergency_cue = true\n\n[expect]\noutcome = "booked"\n', 5,
         "whose outcome is 'emergency'"),
        (HEAD + '\n[[turn]]\nsay = "il respire plus"\nemergency_cue = true\n\n[[turn]]\nsay = "vite"\nemergency_cue = true\n'
         '\n[expect]\noutcome = "emergency"\n', 9, "only the first emergency cue"),
        (HEAD + '\n[expect]\nmessage_urgency = "asap"\n', 6, "message_urgency must be one of urgent, days, routine"),
        (HEAD + '\n[expect]\nsaid = [""]\n', 6, "said must be a list of non-empty texts"),
        (HEAD + '\n[expect]\nnot_said = [3]\n', 6, "not_said must be a list of non-empty texts"),
        (HEAD + '\n[expect]\nmax_caller_turns = 0\n', 6, "max_caller_turns must be a whole number"),
    ],
)
def test_mistakes_in_evaluation_keys_name_file_line_and_problem(tmp_path: Path, text: str, line: int, problem: str) -> None:
    path = _scenario(tmp_path, text)
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    assert f"{path}:{line}: " in str(err.value)
    assert problem in str(err.value)


def test_an_emergency_cue_is_read_from_its_turn(tmp_path: Path) -> None:
    path = _scenario(tmp_path, HEAD + '\n[[turn]]\nsay = "Bonjour."\n\n[[turn]]\nsay = "Il ne respire plus !"\n'
                                      'emergency_cue = true\n\n[expect]\noutcome = "emergency"\n')
    scenario = load_scenario(path)
    assert [t.emergency_cue for t in scenario.turns] == [False, True]
    assert scenario.category == "emergency"


def test_a_single_said_text_is_a_list_of_one(tmp_path: Path) -> None:
    path = _scenario(tmp_path, HEAD + '\n[expect]\nsaid = "3114"\n')
    assert load_scenario(path).expect.said == ("3114",)


# -- the checks the new expectations make, on real calls in text mode --------------------------


def _run(tmp_path: Path, body: str) -> dict[str, Any]:
    config = replace(Config(), data_dir=tmp_path / "data")
    return asyncio.run(simulate(load_scenario(_scenario(tmp_path, HEAD + body)), mode="text", config=config))


_SILENT_CALL = '\n[expect]\noutcome = "abandoned"\n'


def test_said_and_not_said_ignore_case_accents_and_punctuation_and_match_whole_words(tmp_path: Path) -> None:
    passing = _run(tmp_path, _SILENT_CALL + 'said = ["CABINET MEDICAL des tilleuls", "vous entends"]\nnot_said = ["mg", "entend"]\n')
    assert passing["expect"] == {"passed": True, "failures": []}
    failing = _run(tmp_path, _SILENT_CALL + 'said = ["posologie"]\nnot_said = ["avis médical"]\n')
    assert failing["expect"]["failures"][0] == "said: no reply contains 'posologie'"
    not_said = failing["expect"]["failures"][1]
    assert not_said.startswith("not_said: a reply contains 'avis médical': ") and "Bonjour, vous êtes bien" in not_said


def test_max_caller_turns_counts_turns_up_to_the_booking(tmp_path: Path) -> None:
    body = (SCENARIOS / "book_basic.toml").read_text(encoding="utf-8").split("[expect]")[0].split('practice = "demo"')[1]
    report = _run(tmp_path, body + '\n[expect]\noutcome = "booked"\nmax_caller_turns = 6\n')
    # request, day, choice, last name, first name, birth date, confirmation (the caller ID is read back)
    assert report["metrics"]["caller_turns_to_booking"] == 7
    assert report["metrics"]["caller_turns"] == 8  # and "non merci, au revoir"
    assert report["expect"]["failures"] == ["max_caller_turns: 7 caller turns to the booking (expected at most 6)"]


def test_max_caller_turns_counts_the_whole_call_without_a_booking(tmp_path: Path) -> None:
    report = _run(tmp_path, '\n[[turn]]\ndtmf = "12"\n' + _SILENT_CALL + "max_caller_turns = 2\n")
    assert report["metrics"]["caller_turns_to_booking"] is None
    assert report["metrics"]["caller_turns"] == 4  # two keys pressed as one turn, then three silences
    assert report["expect"]["failures"] == ["max_caller_turns: 4 caller turns in the call (expected at most 2)"]


def test_message_urgency_is_that_of_the_most_urgent_message(tmp_path: Path) -> None:
    body = '\n[[turn]]\nsay = "Il ne respire plus !"\n\n[expect]\noutcome = "emergency"\nmessage_urgency = "routine"\n'
    report = _run(tmp_path, body)
    assert "message_urgency: expected 'routine', got 'urgent'" in report["expect"]["failures"]


def test_seeded_appointments_are_real_bookings_the_agenda_does_not_offer_again(tmp_path: Path) -> None:
    seeded = _APPOINTMENT.replace("10:00:00", "08:30:00")
    body = seeded + """
[[turn]]
say = "Je voudrais une consultation avec le docteur Martin jeudi à 8 heures 30."

[[turn]]
hangup = true

[expect]
outcome = "abandoned"
not_said = ["8 heures 30, avec", "jeudi 26 novembre à 8 heures 30,"]
"""
    report = _run(tmp_path, body)
    assert report["appointments"] == [{
        "id": report["appointments"][0]["id"], "status": "booked", "start": "2026-11-26T08:30:00+01:00",
        "practitioner": "martin", "reason": "consultation", "patient": {"last_name": "Durand", "first_name": "Luc"},
    }]
    offer = [t["text"] for t in report["turns"] if t["speaker"] == "assistant" and t["ask"] == "choice"]
    assert offer and "8 heures 30" not in offer[0]
    assert report["expect"]["passed"], report["expect"]["failures"]
    store = Store.open(tmp_path / "data" / "appliance.db")
    try:
        [row] = [a for a in appointments.appointments_between(store, datetime.fromisoformat("2026-11-26T08:30:00+01:00"),
                                                              datetime.fromisoformat("2026-11-26T08:50:00+01:00"))
                 if a.practitioner_id == "martin"]
        assert (row.patient_last_name, row.origin) == ("Durand", "staff")  # the demo filler there gave way
    finally:
        store.close()


@pytest.mark.parametrize(
    ("change", "problem"),
    [('practitioner = "martin"', 'practitioner = "house"'), ('reason = "consultation"', 'reason = "massage"')],
)
def test_a_seeded_appointment_the_practice_cannot_have_is_a_scenario_error(tmp_path: Path, change: tuple[str, str], problem: str) -> None:
    path = _scenario(tmp_path, HEAD + _APPOINTMENT.replace(change, problem))
    with pytest.raises(ScenarioError, match=rf"{path}:5: \[\[appointment\]\] the practice has no"):
        asyncio.run(simulate(load_scenario(path), mode="text", config=replace(Config(), data_dir=tmp_path / "data")))


def test_two_seeded_appointments_that_overlap_are_a_scenario_error(tmp_path: Path) -> None:
    path = _scenario(tmp_path, HEAD + _APPOINTMENT + _APPOINTMENT.replace("10:00:00", "10:10:00"))
    with pytest.raises(ScenarioError, match=rf"{path}:13: \[\[appointment\]\] overlaps another"):
        asyncio.run(simulate(load_scenario(path), mode="text", config=replace(Config(), data_dir=tmp_path / "data")))


def test_languages_are_read_from_the_scenario_and_its_turns(tmp_path: Path) -> None:
    path = _scenario(tmp_path, HEAD + 'languages = ["fr", "en"]\n\n[[turn]]\nsay = "Hello"\nlanguage = "en"\n'
                     '\n[[turn]]\nsay = "Oui"\n\n[expect]\nlanguage = "en"\nmessage_summary = "anglophone"\n')
    scenario = load_scenario(path)
    assert scenario.languages == ("fr", "en")
    assert [t.language for t in scenario.turns] == ["en", None]
    assert scenario.expect.language == "en" and scenario.expect.message_summary == ("anglophone",)


def test_offered_languages_must_start_with_the_practices_own(tmp_path: Path) -> None:
    path = _scenario(tmp_path, HEAD + 'languages = ["en", "fr"]\n\n[[turn]]\nhangup = true\n')
    scenario = load_scenario(path)
    with pytest.raises(ScenarioError, match="languages must start with the practice's own, 'fr'"):
        asyncio.run(simulate(scenario, mode="text", config=replace(Config(), data_dir=tmp_path)))


def test_a_scenario_checks_the_language_the_call_ended_in(tmp_path: Path) -> None:
    path = _scenario(tmp_path, HEAD + 'languages = ["fr", "de"]\n\n[[turn]]\nsay = "Hello, do you speak English?"\n'
                     'language = "en"\n\n[[turn]]\nhangup = true\n\n[expect]\nlanguage = "en"\n'
                     'message_phone = "0612345678"\nmessage_summary = ["anglophone"]\n')
    report = asyncio.run(simulate(load_scenario(path), mode="text", config=replace(Config(), data_dir=tmp_path)))
    assert report["expect"]["failures"] == [
        "language: expected the call to end in 'en', it ended in 'fr'",  # English is not offered here
        "message_phone: expected '0612345678', got None",
        "message_summary: the message's summary lacks 'anglophone' (no message was left)",
    ]
