"""Emergencies said in English and German, and what is not one, with the French rules' discipline.

Every turn of every call runs all the tables (``emergency_any``): these lists pin
down each table alone (the kind it reports) and the combined detector (that a
French, English or German cue alarms whatever language the call is in, and that
ordinary words in any of them do not).
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.dialogue.emergency import KINDS
from appliance.dialogue.emergency_any import detect_any_emergency
from appliance.dialogue.emergency_de import TABLE as GERMAN
from appliance.dialogue.emergency_en import TABLE as ENGLISH

ENGLISH_EMERGENCIES = [
    ("I can't breathe", "breathing"),
    ("My husband is not breathing!", "breathing"),
    ("she's struggling to breathe and her lips are going blue", "breathing"),
    ("my son is having an asthma attack and the inhaler isn't working", "breathing"),
    ("I'm really short of breath, I can't get enough air", "breathing"),
    ("My mother collapsed in the kitchen", "unconscious"),
    ("he's unconscious, he won't wake up", "unconscious"),
    ("my dad passed out and he is not responding", "unconscious"),
    ("I can't wake him up", "unconscious"),
    ("I have a terrible pain in my chest", "chest_pain"),
    ("my chest feels tight and heavy", "chest_pain"),
    ("I don't know, my chest hurts a lot", "chest_pain"),  # a filler, not a negation
    ("I think he's having a heart attack", "chest_pain"),
    ("he's grey and sweating and has a pain down his left arm", "chest_pain"),
    ("I think my wife is having a stroke, her face is drooping", "stroke"),
    ("his speech is slurred and he can't lift his arm", "stroke"),
    ("she can't speak properly since this morning", "stroke"),
    ("he cut his hand with a saw and it's bleeding heavily", "bleeding"),
    ("the bleeding won't stop", "bleeding"),
    ("she's vomiting blood", "bleeding"),
    ("my daughter's lips and tongue are swelling after a bee sting", "allergy"),
    ("I think he's having a severe allergic reaction", "allergy"),
    ("my toddler swallowed some of my sleeping pills", "overdose"),
    ("she took too many tablets on purpose", "overdose"),
    ("my son drank bleach", "overdose"),
    ("my baby is having a seizure", "seizure"),
    ("he's convulsing on the floor", "seizure"),
    ("I want to kill myself", "suicide"),
    ("I don't want to live anymore", "suicide"),
    ("I don't want to die but I keep thinking about ending my life", "suicide"),  # never negated
    ("my baby is 6 weeks old and has a fever of 39 degrees", "child_fever_infant"),
    ("my newborn has a high temperature", "child_fever_infant"),
    ("he has a stiff neck and a fever", "meningitis"),
    ("she has purple spots that don't fade", "meningitis"),
    ("he fell off a ladder and a bone is sticking out", "trauma"),
    ("my son was hit by a car", "trauma"),
    ("my little girl is choking on a sweet", "choking"),
    ("he had a stroke two years ago and now he has another one, again the face drooping", "stroke"),
]

ENGLISH_NOT_EMERGENCIES = [
    "I had a heart attack three years ago and I need a check-up",
    "the pain in my knee is getting worse",
    "I have knee pain when I climb stairs",
    "I don't have any chest pain, just a cough",
    "no chest pain, no fever, just a sore throat",
    "my father had a stroke in 2015, he needs his repeat prescription",
    "I need a repeat prescription for my EpiPen",
    "I'd like the results of my chest X-ray",
    "I think I have a chest infection",
    "I have heartburn after meals",
    "I had food poisoning last month",
    "I hurt myself playing football, my ankle is swollen",
    "I can't breathe through my nose, it's blocked",
    "my cut has stopped bleeding but I'd like it checked",
    "I fainted last year and the doctor wanted to see me again in a few months",
    "I need a sick note for work",
    "could you try fitting me in tomorrow morning",
    "my husband isn't responding to my messages, can you tell me if he came in",
    "my baby is four months old and has a bit of a temperature",
    "my son is six years old with a fever since yesterday",
    "I'd like to book an appointment with Doctor Martin",
    "I'm dying to know my blood test results",
    "this waiting is killing me, when are you open",
    "I need a certificate for the swimming pool, I have asthma",
    "I had a seizure as a child, I need a driving licence form",
    "I'd like to cancel my appointment on Thursday",
    "what are your opening hours on Saturday",
]

GERMAN_EMERGENCIES = [
    ("Ich bekomme keine Luft!", "breathing"),
    ("Mein Mann atmet nicht mehr", "breathing"),
    ("meine Tochter hat Atemnot und die Lippen sind ganz blau", "breathing"),
    ("er hat einen Asthmaanfall, das Spray hilft nicht", "breathing"),
    ("meine Mutter ist zusammengebrochen", "unconscious"),
    ("er ist bewusstlos", "unconscious"),
    ("mein Vater reagiert nicht mehr", "unconscious"),
    ("wir kriegen ihn nicht wach", "unconscious"),
    ("ich habe starke Schmerzen in der Brust", "chest_pain"),
    ("er hat Brustschmerzen seit einer Stunde", "chest_pain"),
    ("ich weiß nicht, er hat Brustschmerzen", "chest_pain"),  # a filler, not a negation
    ("ich glaube, mein Mann hat einen Herzinfarkt", "chest_pain"),
    ("er ist schweißgebadet und der linke Arm tut weh", "chest_pain"),
    ("ich glaube, meine Frau hat einen Schlaganfall", "stroke"),
    ("ihr Mundwinkel hängt und sie spricht ganz verwaschen", "stroke"),
    ("er kann seit heute Morgen den Arm nicht mehr bewegen", "stroke"),
    ("die Wunde blutet sehr stark", "bleeding"),
    ("es hört nicht auf zu bluten", "bleeding"),
    ("er hat Blut erbrochen", "bleeding"),
    ("nach dem Wespenstich ist ihre Zunge geschwollen", "allergy"),
    ("ich glaube, das ist ein allergischer Schock", "allergy"),
    ("mein Kind hat Tabletten geschluckt", "overdose"),
    ("sie hat eine ganze Packung Schlaftabletten genommen", "overdose"),
    ("er hat Putzmittel getrunken", "overdose"),
    ("mein Sohn hat einen Krampfanfall", "seizure"),
    ("ich will mich umbringen", "suicide"),
    ("ich will nicht mehr leben", "suicide"),
    ("ich denke an Selbstmord", "suicide"),
    ("mein Baby ist sechs Wochen alt und hat Fieber", "child_fever_infant"),
    ("unser Neugeborenes hat 39 Grad Fieber", "child_fever_infant"),
    ("er hat einen steifen Nacken und hohes Fieber", "meningitis"),
    ("sie hat lila Flecken am ganzen Körper", "meningitis"),
    ("er ist vom Dach gefallen", "trauma"),
    ("mein Sohn ist von einem Auto angefahren worden", "trauma"),
    ("mein Kind hat sich verschluckt und hustet nicht mehr", "choking"),
    ("er hatte vor zwei Jahren einen Schlaganfall und jetzt hängt wieder der Mundwinkel", "stroke"),
]

GERMAN_NOT_EMERGENCIES = [
    "ich hatte vor zwei Jahren einen Schlaganfall und brauche ein Rezept",
    "Knieschmerzen",
    "ich habe seit einer Woche Knieschmerzen",
    "ich habe Halsschmerzen und Schnupfen",
    "ich habe keine Brustschmerzen, nur Husten",
    "kein Fieber, keine Atemnot, nur Schnupfen",
    "mein Vater hatte letztes Jahr einen Herzinfarkt und braucht eine Kontrolle",
    "ich hatte im Jahr 2019 einen Herzinfarkt",
    "ich möchte die Ergebnisse vom Röntgen der Brust",
    "ich hatte letzten Monat eine Lebensmittelvergiftung",
    "ich habe einen Krampf in der Wade",
    "ich bekomme keine Luft durch die Nase",
    "die Wunde blutet nicht mehr, ich möchte sie nur kontrollieren lassen",
    "ich brauche eine Krankmeldung für die Arbeit",
    "ich möchte einen Termin bei Doktor Martin",
    "mein Baby ist vier Monate alt und hat etwas Fieber",
    "mein Sohn ist sechs Jahre alt und hat Fieber",
    "er reagiert nicht auf meine Nachrichten",
    "ich brauche ein Rezept für mein Asthmaspray",
    "ich brauche eine Überweisung zum Kardiologen",
    "wann haben Sie am Samstag geöffnet",
    "ich möchte meinen Termin am Donnerstag absagen",
    "ich hatte als Kind epileptische Anfälle, ich brauche ein Attest",
    "mein Mann ist querschnittsgelähmt und braucht ein neues Rezept",
    "ich bin letzte Woche ohnmächtig geworden und möchte das abklären lassen",
    "ich habe mir das Knie verletzt",
]


@pytest.mark.parametrize(("heard", "kind"), ENGLISH_EMERGENCIES)
def test_english_emergencies_are_detected(heard: str, kind: str) -> None:
    match = ENGLISH.detect(heard)
    assert match is not None, f"missed: {heard!r}"
    assert match.kind == kind


@pytest.mark.parametrize("heard", ENGLISH_NOT_EMERGENCIES)
def test_english_non_emergencies_are_not_flagged(heard: str) -> None:
    assert ENGLISH.detect(heard) is None


@pytest.mark.parametrize(("heard", "kind"), GERMAN_EMERGENCIES)
def test_german_emergencies_are_detected(heard: str, kind: str) -> None:
    match = GERMAN.detect(heard)
    assert match is not None, f"missed: {heard!r}"
    assert match.kind == kind


@pytest.mark.parametrize("heard", GERMAN_NOT_EMERGENCIES)
def test_german_non_emergencies_are_not_flagged(heard: str) -> None:
    assert GERMAN.detect(heard) is None


def test_the_lists_are_long_enough_to_mean_something() -> None:
    for name, items in (("English emergencies", ENGLISH_EMERGENCIES), ("German emergencies", GERMAN_EMERGENCIES),
                        ("English non-emergencies", ENGLISH_NOT_EMERGENCIES),
                        ("German non-emergencies", GERMAN_NOT_EMERGENCIES)):
        assert len(items) >= 25, f"only {len(items)} {name}"
    # Every kind a call can raise is exercised in both languages.
    for table, items in (("en", ENGLISH_EMERGENCIES), ("de", GERMAN_EMERGENCIES)):
        assert {kind for _, kind in items} == set(KINDS), f"{table}: kinds without a phrase"


@pytest.mark.parametrize(
    ("heard", "kind"),
    [*ENGLISH_EMERGENCIES, *GERMAN_EMERGENCIES,
     ("il ne respire plus", "breathing"), ("j'ai une douleur dans la poitrine", "chest_pain")],
)
def test_every_language_alarms_on_every_call(heard: str, kind: str) -> None:
    """A cue alarms whatever the call's language: all tables run on every turn."""
    match = detect_any_emergency(heard)
    assert match is not None and match.kind == kind


@pytest.mark.parametrize(
    "heard",
    [*ENGLISH_NOT_EMERGENCIES, *GERMAN_NOT_EMERGENCIES,
     "il a fait un AVC il y a deux ans", "j'ai mal au genou", "je voudrais un rendez-vous pour un certificat"],
)
def test_no_table_alarms_on_ordinary_words_of_another(heard: str) -> None:
    assert detect_any_emergency(heard) is None


def test_a_bilingual_caller_is_heard_in_both_languages_at_once() -> None:
    match = detect_any_emergency("Bonjour, sorry, my husband, il est tombé, he is not breathing")
    assert match is not None and match.kind == "breathing"


def test_the_most_urgent_kind_wins_across_languages() -> None:
    match = detect_any_emergency("je saigne beaucoup and he is unconscious")
    assert match is not None and match.kind == "unconscious"


def test_negation_counts_only_right_before_the_phrase() -> None:
    assert ENGLISH.detect("no pain in my chest") is None
    assert ENGLISH.detect("it's not urgent but I have a pain in my chest") is not None
    assert GERMAN.detect("keine Schmerzen in der Brust") is None
    assert GERMAN.detect("es ist nicht dringend, aber ich habe Schmerzen in der Brust") is not None


def test_history_is_cleared_by_anything_said_to_happen_now() -> None:
    assert ENGLISH.detect("I had a stroke three years ago") is None
    assert ENGLISH.detect("I had a stroke three years ago and I think it's happening again") is not None
    assert GERMAN.detect("ich hatte vor drei Jahren einen Herzinfarkt") is None
    assert GERMAN.detect("ich hatte vor drei Jahren einen Herzinfarkt und jetzt wieder Schmerzen in der Brust") is not None


def test_the_match_names_the_words_for_the_call_log() -> None:
    match = ENGLISH.detect("He's NOT breathing!!!")
    assert match is not None and match.phrase == "not breathing"
    match = GERMAN.detect("Überdosis")
    assert match is not None and match.phrase == "uberdosis"


@given(st.text(max_size=300))
def test_never_raises_on_arbitrary_text(text: str) -> None:
    for table in (ENGLISH, GERMAN):
        for match in table.find(text):
            assert match.kind in KINDS
    detect_any_emergency(text)


def test_what_is_not_text_is_no_emergency() -> None:
    for table in (ENGLISH, GERMAN):
        assert table.find(None) == ()  # type: ignore[arg-type]
        assert table.find("   ") == ()
