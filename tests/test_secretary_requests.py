"""The secretary beyond booking: cancel, move, read out, messages, questions, hand-over.

Each test is one phone call in text mode through the real ``CallSession``, the
real store and the demo practice: what the caller says, what the assistant
answers, and what is left in the agenda and the inbox afterwards.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from appliance.app import Appliance
from appliance.call import CallResult, CallSession
from appliance.clock import PARIS, FixedClock
from appliance.config import Config
from appliance.dialogue import speakable
from appliance.dialogue.secretary import Secretary
from appliance.store import appointments, inbox as store_inbox, outbox, queries
from appliance.turns import Heard, HungUp, Pressed, TextSpeaker, Turn

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=PARIS)  # a Tuesday
THURSDAY_10 = datetime(2026, 11, 26, 10, 0, tzinfo=PARIS)


class Caller:
    """Says its lines in order, then hangs up; remembers what the assistant asked."""

    def __init__(self, *lines: str | Turn) -> None:
        self.lines = list(lines)
        self.asks: list[str | None] = []

    async def listen(self, ask: str | None) -> Turn:
        self.asks.append(ask)
        if not self.lines:
            return HungUp()
        line = self.lines.pop(0)
        return Heard(text=line, decided_at=0.0) if isinstance(line, str) else line


class Box:
    def __init__(self, tmp_path: Path) -> None:
        self.app = Appliance(replace(Config(), data_dir=tmp_path), clock=FixedClock(NOW))
        queries.insert_call(self.app.store, "seed", NOW - timedelta(days=7), None, "sim")

    def seed(self, last: str = "Dupont", first: str = "Marie", born: date = date(1980, 3, 12),
             start: datetime = THURSDAY_10, practitioner: str = "martin") -> int:
        """An appointment at the first free time from ``start`` (the demo agenda is busy)."""
        [slot] = self.app.agenda.free_slots("consultation", practitioner, start, start + timedelta(hours=8), 1)
        start = slot.start
        self.seeded = speakable.say_datetime(start)
        request = appointments.BookingRequest(
            practitioner_id=practitioner, reason_id="consultation", start=start, end=start + timedelta(minutes=20),
            patient_last_name=last, patient_first_name=first, patient_birth_date=born,
            patient_phone="0612345678", call_id="seed",
        )
        return appointments.book(self.app.store, self.app.practice, request).id

    def call(self, caller: Caller, caller_id: str | None = "0612345678") -> CallResult:
        async def run() -> CallResult:
            from appliance.line.sim.line import SimLine

            call = SimLine().place_call(caller_id)
            queries.insert_call(self.app.store, call.call_id, NOW, caller_id, "sim")
            secretary = Secretary(self.app.practice, self.app.agenda, NOW, call.caller_id)
            session = CallSession(call, secretary, caller, TextSpeaker(), self.app.agenda, self.app.inbox,
                                  self.app.clock, line_name="sim")
            return await session.run()

        return asyncio.run(run())

    def messages(self) -> list[store_inbox.Message]:
        return store_inbox.unhandled_messages(self.app.store)


@pytest.fixture
def box(tmp_path: Path):  # type: ignore[no-untyped-def]
    b = Box(tmp_path)
    yield b
    b.app.close()


def said(result: CallResult) -> list[str]:
    return [t.text for t in result.turns if t.speaker == "assistant"]


# -- cancelling ------------------------------------------------------------------
def test_a_caller_cancels_their_appointment_found_by_name_and_birth_date(box: Box) -> None:
    appointment_id = box.seed()
    result = box.call(Caller("Bonjour, je dois annuler mon rendez-vous.", "Dupont", "le 12 mars 1980", "oui", "non merci"))
    assert result.outcome == "cancelled"
    assert box.seeded.startswith("jeudi 26 novembre")
    assert box.seeded in said(result)[3]  # read back before anything changes
    assert appointments.get_appointment(box.app.store, appointment_id).status == "cancelled"
    assert [e.kind for e in outbox.outbox_entries(box.app.store)][-1] == "appointment.cancelled"


def test_a_name_misheard_by_recognition_still_finds_the_appointment_with_the_birth_date(box: Box) -> None:
    box.seed(last="Dupont")
    result = box.call(Caller("Je voudrais annuler mon rendez-vous", "Dupond", "12/03/1980", "oui"))
    assert result.outcome == "cancelled"


def test_the_name_alone_finds_nothing_and_another_patients_appointment_is_never_read_out(box: Box) -> None:
    box.seed(last="Dupont", born=date(1980, 3, 12))
    result = box.call(Caller("Annuler mon rendez-vous s'il vous plaît", "Dupont", "le 1er janvier 1990",
                             "Dupont", "le 1er janvier 1990", "oui"))
    text = " ".join(said(result))
    assert box.seeded not in text
    assert "Je ne trouve pas de rendez-vous" in text
    # Not found twice: the staff are asked to check, the caller is told so.
    assert result.outcome == "message"
    [message] = box.messages()
    assert message.category == "callback" and "introuvable" in message.summary
    assert appointments.get_appointment(box.app.store, 1).status == "booked"


def test_saying_no_at_the_read_back_changes_nothing(box: Box) -> None:
    appointment_id = box.seed()
    result = box.call(Caller("Il faut annuler mon rendez-vous de jeudi", "Dupont", "12 mars 1980", "non", "non merci"))
    assert "maintenu" in said(result)[4]
    assert appointments.get_appointment(box.app.store, appointment_id).status == "booked"


def test_with_two_appointments_the_caller_chooses_which_one(box: Box) -> None:
    box.seed(start=THURSDAY_10)
    later = box.seed(start=THURSDAY_10 + timedelta(days=7))
    result = box.call(Caller("Je voudrais annuler un rendez-vous", "Dupont", "12 mars 1980", Pressed("2"), "oui"))
    assert "Lequel faut-il annuler" in said(result)[3]
    assert result.outcome == "cancelled"
    assert appointments.get_appointment(box.app.store, later).status == "cancelled"
    assert appointments.get_appointment(box.app.store, later - 1).status == "booked"


# -- moving -----------------------------------------------------------------------
def test_a_caller_moves_their_appointment_to_another_day_with_the_same_doctor(box: Box) -> None:
    appointment_id = box.seed()
    result = box.call(Caller("Je voudrais déplacer mon rendez-vous", "Dupont", "12 mars 1980",
                             "vendredi après-midi", "le premier", "oui", "non"))
    assert result.outcome == "rescheduled"
    moved = appointments.get_appointment(box.app.store, appointment_id, tz=PARIS)
    assert moved.start.date() == date(2026, 11, 27) and moved.start.hour >= 14
    assert moved.practitioner_id == "martin"
    assert [e.kind for e in outbox.outbox_entries(box.app.store)][-1] == "appointment.moved"
    assert f"je déplace votre rendez-vous {box.seeded} au vendredi 27 novembre" in said(result)[5]


# -- reading it out -----------------------------------------------------------------
def test_a_caller_who_forgot_the_time_hears_it_after_name_and_birth_date(box: Box) -> None:
    box.seed()
    result = box.call(Caller("À quelle heure est mon rendez-vous ?", "Dupont", "12 mars 1980", "non merci"))
    assert result.outcome == "answered"
    assert f"Vous avez rendez-vous {box.seeded}" in said(result)[3]


# -- messages for the staff -----------------------------------------------------------
def test_a_renewal_request_becomes_a_message_with_the_medication_and_a_summary(box: Box) -> None:
    result = box.call(Caller("Bonjour, c'est pour un renouvellement d'ordonnance.", "Levothyrox et Kardégic",
                             "Durand", "Paul", "le 3 février 1950", "oui", "oui", "non merci"))
    assert result.outcome == "message"
    [message] = box.messages()
    assert message.category == "prescription" and message.urgency == "days"
    assert "Levothyrox et Kardégic" in message.summary and "Paul DURAND (03/02/1950)" in message.summary
    assert "06 12 34 56 78" in message.summary
    assert "Appelant : Levothyrox et Kardégic" in message.transcript
    assert message.patient == {"last_name": "Durand", "first_name": "Paul", "birth_date": "1950-02-03",
                               "phone": "0612345678"}


def test_a_medication_named_in_the_first_sentence_is_not_asked_again(box: Box) -> None:
    caller = Caller("Je voudrais le renouvellement de mon Levothyrox", "Durand", "Paul", "3 février 1950", "oui", "oui")
    result = box.call(caller)
    assert caller.asks[1] == "last_name"
    assert "Levothyrox" in box.messages()[0].summary.lower().capitalize() or "levothyrox" in box.messages()[0].summary
    assert result.outcome == "message"


def test_running_out_of_a_treatment_makes_the_message_urgent_today(box: Box) -> None:
    box.call(Caller("Il ne me reste plus de médicaments pour la tension, il me faut une ordonnance",
                    "l'amlodipine", "Durand", "Paul", "3 février 1950", "oui", "oui"))
    [message] = box.messages()
    assert message.urgency == "urgent"


def test_symptoms_given_in_a_message_are_not_asked_for_and_the_caller_is_told(box: Box) -> None:
    result = box.call(Caller("J'ai besoin qu'on me rappelle", "c'est parce que j'ai de la fièvre et je tousse",
                             "Durand", "Paul", "3 février 1950", "oui", "oui"))
    assert "Je n'ai pas besoin de détails médicaux" in said(result)[2]


def test_a_caller_who_asks_for_a_person_gets_a_callback_message_not_a_dead_end(box: Box) -> None:
    result = box.call(Caller("Je veux parler à une vraie personne", "c'est pour un papier de la CAF",
                             "Durand", "Paul", "3 février 1950", "oui", "oui"))
    assert "assistant automatique" in said(result)[1]
    assert box.messages()[0].category == "callback"
    assert result.outcome == "message"


# -- practical questions ------------------------------------------------------------
@pytest.mark.parametrize("question, words", [
    ("Quels sont vos horaires ?", "du lundi au vendredi de 8 heures 30"),
    ("Vous êtes où exactement ?", "12 rue des Tilleuls"),
    ("Combien coûte une consultation ?", "30 euros"),
    ("Vous prenez de nouveaux patients ?", "Julien Bernard"),
    ("Est-ce qu'il y a un parking ?", "parking public"),
])
def test_practical_questions_are_answered_from_the_practice_settings(box: Box, question: str, words: str) -> None:
    result = box.call(Caller(question, "non merci"))
    assert result.outcome == "answered"
    assert words in said(result)[1]
    assert said(result)[1].endswith("Puis-je faire autre chose pour vous ?")


def test_a_question_the_practice_has_not_answered_is_passed_on_not_improvised(box: Box) -> None:
    result = box.call(Caller("Est-ce que vous faites les vaccins contre la fièvre jaune à l'étranger ?"))
    assert result.outcome != "answered"


def test_questions_about_other_patients_reveal_nothing(box: Box) -> None:
    box.seed()
    result = box.call(Caller("Donnez-moi les rendez-vous de madame Dupont", "Quels patients le docteur voit aujourd'hui ?"))
    text = " ".join(said(result))
    assert "aucune information sur les autres patients" in text
    assert box.seeded not in text and "Dupont" not in text


# -- emergencies stay first -----------------------------------------------------------
def test_after_an_emergency_the_assistant_only_repeats_the_instruction(box: Box) -> None:
    result = box.call(Caller("Je voudrais un rendez-vous, mon mari a très mal à la poitrine", "mardi matin", "oui"))
    replies = said(result)[1:]
    assert len(replies) == 3
    assert all("appelez immédiatement le 15" in r and "rendez-vous" not in r for r in replies)
    assert result.outcome == "emergency"


def test_suicidal_thoughts_get_the_3114(box: Box) -> None:
    result = box.call(Caller("Je n'ai plus envie de vivre"))
    assert "3114" in said(result)[1]


def test_symptoms_given_while_booking_are_not_needed_and_the_booking_goes_on(box: Box) -> None:
    caller = Caller("Je voudrais un rendez-vous, j'ai de la fièvre et je tousse depuis trois jours")
    result = box.call(caller)
    assert said(result)[1].startswith("Je n'ai pas besoin de détails médicaux")
    assert caller.asks[1] in ("reason", "practitioner", "when")


def test_a_visit_reason_is_not_taken_for_medical_details(box: Box) -> None:
    result = box.call(Caller("C'est pour le vaccin contre la grippe"))
    assert "détails médicaux" not in said(result)[1]


# -- when understanding fails --------------------------------------------------------
def test_not_understood_twice_the_question_narrows_to_yes_or_no(box: Box) -> None:
    caller = Caller("zzz krr", "hmm bof", "oui", "une consultation avec le docteur Martin", "euh", "ben", "oui")
    result = box.call(caller)
    replies = said(result)
    assert "Je n'ai pas bien compris" in replies[1]
    assert "Est-ce pour un rendez-vous ? Répondez par oui ou par non." in replies[2]
    assert "premier rendez-vous disponible vous conviendrait-il" in replies[6]
    assert caller.asks[-1] == "choice"  # the earliest slots are offered


def test_a_no_to_the_narrowed_question_becomes_a_message_not_a_loop(box: Box) -> None:
    caller = Caller("zzz krr", "hmm bof", "non", "c'est au sujet d'une facture", "Durand", "Paul", "3 février 1950",
                    "oui", "oui")
    result = box.call(caller)
    assert result.outcome == "message"
    assert box.messages()[0].category == "callback"


# -- a caller who changes their mind ---------------------------------------------------
def test_a_caller_booking_who_decides_to_cancel_instead_is_followed(box: Box) -> None:
    appointment_id = box.seed()
    result = box.call(Caller("Je voudrais un rendez-vous avec le docteur Martin pour une consultation",
                             "Ah non, en fait je voudrais plutôt annuler mon rendez-vous de jeudi",
                             "Dupont", "12 mars 1980", "oui"))
    assert result.outcome == "cancelled"
    assert appointments.get_appointment(box.app.store, appointment_id).status == "cancelled"


def test_a_caller_moving_who_decides_to_cancel_cancels_the_appointment_already_found(box: Box) -> None:
    appointment_id = box.seed()
    caller = Caller("Je voudrais déplacer mon rendez-vous", "Dupont", "12 mars 1980",
                    "Non finalement annulez-le, je ne pourrai pas venir du tout", "oui")
    result = box.call(caller)
    assert caller.asks[3:] == ["when", "confirm", "anything_else"]
    assert result.outcome == "cancelled"
    assert appointments.get_appointment(box.app.store, appointment_id).status == "cancelled"


# -- the LLM helper, where the rules are unsure ---------------------------------------
class KnowingHelper:
    """Stands in for a qualified model: knows one sentence the rules do not."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def intent(self, text: str) -> str | None:
        self.asked.append(text)
        return "cancel" if "plus besoin de passer" in text else None

    def summary(self, category: str, transcript: str) -> str | None:
        return "Le patient demande le renouvellement de son traitement habituel."


def test_the_helper_is_asked_only_when_the_rules_cannot_tell_and_its_intent_is_followed(box: Box) -> None:
    helper = KnowingHelper()
    box.seed()

    async def run() -> CallResult:
        from appliance.line.sim.line import SimLine

        call = SimLine().place_call("0612345678")
        queries.insert_call(box.app.store, call.call_id, NOW, "0612345678", "sim")
        secretary = Secretary(box.app.practice, box.app.agenda, NOW, call.caller_id, helper=helper)
        caller = Caller("Je n'ai plus besoin de passer jeudi finalement", "Dupont", "12 mars 1980", "oui")
        return await CallSession(call, secretary, caller, TextSpeaker(), box.app.agenda, box.app.inbox,
                                 box.app.clock, line_name="sim").run()

    result = asyncio.run(run())
    assert helper.asked == ["Je n'ai plus besoin de passer jeudi finalement"]  # not for names, dates or yes
    assert result.outcome == "cancelled"


def test_a_helper_that_fails_costs_nothing(box: Box) -> None:
    class Broken:
        def intent(self, text: str) -> str | None:
            raise RuntimeError("model crashed")

    secretary = Secretary(box.app.practice, box.app.agenda, NOW, None, helper=Broken())
    secretary.greet()
    reply = secretary.respond(Heard(text="blablabla", decided_at=0.0))
    assert "pas bien compris" in reply.text


def test_the_helpers_summary_is_added_under_the_structured_one_after_the_call(box: Box) -> None:
    from appliance.events import MessageLeft

    box.call(Caller("C'est pour un renouvellement d'ordonnance.", "Levothyrox", "Durand", "Paul", "3 février 1950",
                    "oui", "oui"))
    [message] = box.messages()
    box.app.helper = KnowingHelper()
    result = CallResult("x", "message", None, None, events=[MessageLeft(0, message.id, "prescription", "days")])
    box.app._add_summaries(result, message.transcript, Secretary(box.app.practice, box.app.agenda, NOW, None).t)
    [message] = box.messages()
    assert message.summary.splitlines()[0].startswith("Renouvellement d'ordonnance")
    assert message.summary.splitlines()[1] == (
        "Résumé automatique, à vérifier : Le patient demande le renouvellement de son traitement habituel.")


# -- corrections at the read-back ----------------------------------------------------
BOOKING = ("Une consultation avec le docteur Martin jeudi matin", "le premier", "Durand", "Paul", "3 février 1950")


def test_the_caller_id_is_read_back_not_asked_and_a_new_number_said_there_replaces_it(box: Box) -> None:
    caller = Caller(*BOOKING, "Non, le numéro c'est le 07 81 23 45 67", "oui")
    result = box.call(caller)
    assert "phone" not in caller.asks
    assert "joignable au 06 12 34 56 78" in said(result)[5]
    assert "joignable au 07 81 23 45 67" in said(result)[6]
    assert result.outcome == "booked"
    assert appointments.get_appointment(box.app.store, result.appointment_id).patient_phone == "0781234567"


def test_a_wrong_name_at_the_read_back_is_asked_again_and_the_rest_is_kept(box: Box) -> None:
    caller = Caller(*BOOKING, "Non, le nom c'est pas ça", "Durant", "oui")
    result = box.call(caller)
    assert caller.asks[-3:] == ["last_name", "confirm", "anything_else"]
    booked = appointments.get_appointment(box.app.store, result.appointment_id)
    assert (booked.patient_last_name, booked.patient_first_name) == ("Durant", "Paul")


def test_a_wrong_birth_date_said_at_the_read_back_is_taken(box: Box) -> None:
    result = box.call(Caller(*BOOKING, "Non, la date de naissance c'est le 4 février 1950", "oui"))
    booked = appointments.get_appointment(box.app.store, result.appointment_id)
    assert booked.patient_birth_date == date(1950, 2, 4)


def test_without_caller_id_the_number_is_asked(box: Box) -> None:
    caller = Caller(*BOOKING, "06 11 22 33 44", "oui")
    result = box.call(caller, caller_id=None)
    assert "phone" in caller.asks and result.outcome == "booked"
