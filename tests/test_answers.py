"""Practical answers come from the practice's settings, worded for the ear."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, time

from appliance.clock import PARIS

from appliance.agenda.practice import Closure, OpeningPeriod, PracticeInfo, builtin_practice
from appliance.dialogue.answers import answer_question, asks_about_others, question_topic, say_opening_hours
from appliance.dialogue.conversation import templates

T = templates("fr")


def demo_practice():  # type: ignore[no-untyped-def]
    return builtin_practice("demo")
TODAY = date(2026, 11, 24)
NOW = datetime(2026, 11, 24, 9, 0, tzinfo=PARIS)


def _open(weekday: int, start: time, end: time) -> OpeningPeriod:
    return OpeningPeriod(weekday=weekday, start=start, end=end)


def test_days_with_the_same_hours_are_said_together() -> None:
    hours = tuple(_open(d, time(8, 30), time(12)) for d in range(5)) + (_open(5, time(9), time(12)),)
    assert say_opening_hours(hours, T) == "du lundi au vendredi de 8 heures 30 à midi, et le samedi de 9 heures à midi"


def test_a_day_that_differs_breaks_the_run() -> None:
    hours = (_open(0, time(9), time(12)), _open(1, time(9), time(12)), _open(2, time(14), time(18)))
    assert say_opening_hours(hours, T) == "du lundi au mardi de 9 heures à midi, et le mercredi de 14 heures à 18 heures"


def test_upcoming_closures_are_read_and_past_ones_are_not() -> None:
    practice = replace(demo_practice(), closures=(Closure(start=date(2026, 1, 1), end=date(2026, 1, 1)),
                                                  Closure(start=date(2026, 12, 24), end=date(2027, 1, 2), reason="vacances")))
    answer = answer_question("Vous êtes fermés pendant les vacances ?", practice, NOW, T)
    assert answer is not None and answer.topic == "closures"
    assert answer.text == "Le cabinet sera fermé du 24 décembre 2026 au 2 janvier 2027."


def test_no_closure_coming_is_said_plainly() -> None:
    answer = answer_question("Vous fermez pendant les congés ?", replace(demo_practice(), closures=()), NOW, T)
    assert answer is not None and answer.text.startswith("Aucune fermeture")


def test_who_takes_new_patients_follows_the_visit_reasons_when_the_practice_wrote_nothing() -> None:
    practice = demo_practice()
    practice = replace(practice, info=PracticeInfo(),
                       reasons=tuple(replace(r, new_patients=r.id == "premiere") for r in practice.reasons))
    answer = answer_question("Vous prenez de nouveaux patients ?", practice, NOW, T)
    assert answer is not None and answer.text.startswith("Seul le docteur Julien Bernard prend")
    closed = replace(practice, reasons=tuple(replace(r, new_patients=False) for r in practice.reasons))
    assert "ne prennent pas" in answer_question("nouveaux patients ?", closed, NOW, T).text


def test_a_topic_the_practice_left_empty_is_not_answered() -> None:
    practice = replace(demo_practice(), info=PracticeInfo())
    assert answer_question("Combien coûte la consultation ?", practice, NOW, T) is None


def test_questions_are_sorted_by_topic() -> None:
    assert question_topic("à quelle heure vous fermez ce soir ?") == "hours"
    assert question_topic("c'est quoi votre adresse") == "address"
    assert question_topic("est-ce que je peux payer par carte bleue") == "fees"
    assert question_topic("je voudrais un rendez-vous") is None


def test_questions_about_other_patients_are_recognised() -> None:
    assert asks_about_others("quels patients le docteur voit aujourd'hui")
    assert asks_about_others("donnez-moi le numéro de téléphone de madame Leroy")
    assert not asks_about_others("vous prenez de nouveaux patients ?")
    assert not asks_about_others("je voudrais annuler mon rendez-vous")


def test_a_question_about_one_day_is_answered_for_that_day() -> None:
    practice = demo_practice()
    christmas = answer_question("Le cabinet sera ouvert le 25 décembre ?", practice, NOW, T)
    assert christmas is not None and christmas.text == "Le vendredi 25 décembre, le cabinet est fermé (Noël)."
    saturday = answer_question("Vous êtes ouverts samedi ?", practice, NOW, T)
    assert saturday is not None and saturday.text == "Le samedi 28 novembre, le cabinet est ouvert de 9 heures à midi."


def test_holidays_need_a_question_about_the_practice_not_just_the_word() -> None:
    assert question_topic("écrivez-moi un poème sur les vacances") is None
    assert question_topic("le cabinet est fermé pendant les vacances ?") == "closures"
