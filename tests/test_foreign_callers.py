"""German- and English-speaking callers: the switch, and the honest message path in their language.

Whole calls through ``CallSession`` with scripted turns (``Heard.language`` as the
recogniser would set it) and a recording language switch; the messages are read
back from the store the staff read.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import pytest

from appliance.app import Appliance
from appliance.call import CallResult, CallSession
from appliance.clock import PARIS, FixedClock
from appliance.config import Config
from appliance.dialogue.conversation import templates
from appliance.dialogue.foreign import say_digits
from appliance.dialogue.foreign_words import (
    callback_number,
    parse_yes_no_any,
    spoken_digits,
    states_a_request,
    words_lean_towards,
)
from appliance.dialogue.secretary import Secretary
from appliance.events import EmergencyDetected, LanguageChanged
from appliance.line.sim.line import SimLine
from appliance.store import queries
from appliance.store.inbox import Message, messages_for_call
from appliance.turns import Heard, HungUp, Pressed, Silent, TextSpeaker, Turn

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=PARIS)
CALLER = "0612345678"


@dataclass
class RecordingSwitch:
    """The per-call language switch, as the speech side builds it; records what it was asked."""

    offered: tuple[str, ...] = ("fr", "de", "en")
    current: str = "fr"
    fails: bool = False
    switched: list[str] = field(default_factory=list)
    events_seen: list[str] = field(default_factory=list)
    session: CallSession | None = None

    def switch(self, language: str) -> None:
        if self.session is not None:
            self.events_seen = [e.kind for e in self.session.result.events]
        if self.fails:
            raise RuntimeError("voice missing")
        self.switched.append(language)
        self.current = language


class Script:
    def __init__(self, turns: list[Turn]) -> None:
        self.turns = list(turns)
        self.asks: list[str | None] = []

    async def listen(self, ask: str | None) -> Turn:
        self.asks.append(ask)
        return self.turns.pop(0) if self.turns else HungUp()


@dataclass
class Call:
    result: CallResult
    messages: list[Message]
    switch: RecordingSwitch | None

    @property
    def replies(self) -> list[str]:
        return [t.text for t in self.result.turns if t.speaker == "assistant"]

    @property
    def kinds(self) -> list[str]:
        return [e.kind for e in self.result.events]


def call(tmp_path: Path, turns: list[Turn], *, caller_id: str | None = CALLER,
         switch: RecordingSwitch | None = None, offered: bool = True) -> Call:
    if switch is None and offered:
        switch = RecordingSwitch()

    async def run() -> Call:
        box = Appliance(replace(Config(), data_dir=tmp_path), clock=FixedClock(NOW))
        try:
            line_call = SimLine().place_call(caller_id)
            queries.insert_call(box.store, line_call.call_id, NOW, line_call.caller_id, "sim")
            secretary = Secretary(box.practice, box.agenda, NOW, line_call.caller_id)
            session = CallSession(line_call, secretary, Script(turns), TextSpeaker(), box.agenda, box.inbox,
                                  box.clock, line_name="sim", languages=switch)
            if switch is not None:
                switch.session = session
            result = await session.run()
            return Call(result, messages_for_call(box.store, result.call_id), switch)
        finally:
            box.close()

    return asyncio.run(run())


def en(text: str) -> Heard:
    return Heard(text, language="en")


def de(text: str) -> Heard:
    return Heard(text, language="de")


# -- the message path -----------------------------------------------------------------
def test_an_english_caller_leaves_a_message_and_hears_the_caller_id_read_back(tmp_path: Path) -> None:
    c = call(tmp_path, [en("Hello, do you speak English?"), en("I need a repeat prescription for my inhaler"),
                        en("Yes, that's fine")])
    assert c.switch is not None and c.switch.switched == ["en"]
    changed = [e for e in c.result.events if isinstance(e, LanguageChanged)]
    assert [(e.language, e.previous) for e in changed] == [("en", "fr")]
    intro, callback, goodbye = c.replies[1:]
    assert "cannot book appointments" in intro and "what your call is about" in intro
    assert "cannot give medical advice" in intro  # the machine and its limits, disclosed again in English
    assert "0 6, 1 2, 3 4, 5 6, 7 8" in callback and callback.endswith("Please say yes or no.")
    assert goodbye == templates("en")["foreign_message_left"]
    assert c.result.outcome == "message" and c.result.turns[-1].speaker == "assistant"
    (message,) = c.messages
    assert (message.category, message.urgency) == ("callback", "days")
    assert message.summary.startswith("Patient anglophone – rappel")
    assert "« I need a repeat prescription for my inhaler »" in message.summary
    assert message.summary.endswith("rappeler au 06 12 34 56 78")
    assert message.patient == {"phone": CALLER, "language": "en"}
    assert "Appelant : I need a repeat prescription for my inhaler" in message.transcript


def test_a_german_caller_without_caller_id_types_the_number_on_the_keypad(tmp_path: Path) -> None:
    c = call(tmp_path, [de("Guten Tag, ich möchte bitte einen Rückruf wegen meiner Laborwerte"),
                        Pressed("0049151234567"), de("Ja, richtig")], caller_id=None)
    first, confirm, goodbye = c.replies[1:]
    assert "Auf Deutsch kann ich keine Termine vereinbaren" in first
    assert "Tastatur" in first and "Rautetaste" in first  # the keypad needs no language
    assert "0 0, 4 9, 1 5, 1 2, 3 4, 5 6, 7" in confirm
    assert goodbye == templates("de")["foreign_message_left"]
    (message,) = c.messages
    assert message.summary.startswith("Patient germanophone – rappel")
    assert message.patient == {"phone": "0049151234567", "language": "de"}


def test_an_opening_that_only_greets_is_followed_by_the_question(tmp_path: Path) -> None:
    c = call(tmp_path, [en("Hello?"), en("Um"), en("It's about my son's vaccination certificate"), en("yes")])
    assert states_a_request("Hello?") is False
    assert c.replies[1].endswith(templates("en")["foreign_ask_reason"])
    assert c.replies[2] == templates("en")["foreign_ask_reason_again"]  # "Um" said nothing: asked once more
    (message,) = c.messages
    assert "« It's about my son's vaccination certificate »" in message.summary


def test_a_declined_caller_id_and_a_wrong_number_are_asked_again(tmp_path: Path) -> None:
    c = call(tmp_path, [en("I'd like the doctor to call me about my blood test results"), en("No, not this one"),
                        Pressed("0698765432"), Pressed("2"), Pressed("0698765431"), Pressed("1")])
    assert "Please type it on your phone's keypad" in c.replies[2]
    assert "0 6, 9 8, 7 6, 5 4, 3 2" in c.replies[3]
    assert c.replies[4] == templates("en")["foreign_ask_phone"]
    (message,) = c.messages
    assert message.patient["phone"] == "0698765431"


def test_a_number_said_digit_by_digit_is_read_back(tmp_path: Path) -> None:
    c = call(tmp_path, [en("Please ask the doctor to call me back about my sick note"),
                        en("oh seven, double one, two three, four five, six seven"), en("correct")], caller_id=None)
    assert "0 7, 1 1, 2 3, 4 5, 6 7" in c.replies[2]
    assert c.messages[0].patient["phone"] == "0711234567"


def test_urgent_words_make_an_urgent_message(tmp_path: Path) -> None:
    c = call(tmp_path, [de("Ich brauche dringend ein Rezept, ich habe keine Tabletten mehr"), de("Ja")])
    (message,) = c.messages
    assert message.urgency == "urgent"
    assert c.replies[-1] == templates("de")["foreign_message_left_urgent"]


def test_a_request_for_advice_gets_no_advice_and_is_passed_on(tmp_path: Path) -> None:
    c = call(tmp_path, [en("Hello, should I stop taking my antibiotics? I feel sick"), en("yes")])
    # The introduction says no advice is given; the numbers and the passing on follow it.
    assert "I cannot give medical advice" in c.replies[1]
    assert "If a life is in danger, call 15 or 112. I will pass your question on" in c.replies[1]
    assert "« Hello, should I stop taking my antibiotics? I feel sick »" in c.messages[0].summary


def test_a_caller_who_goes_quiet_still_has_the_message_passed_on(tmp_path: Path) -> None:
    c = call(tmp_path, [en("I need to talk to the doctor about my test results"),
                        Silent(5.0), Silent(5.0), Silent(5.0)])
    (message,) = c.messages
    assert message.patient["phone"] == CALLER  # never declined: the number the call came from
    assert c.result.outcome == "message"


def test_a_caller_with_nothing_to_say_and_no_number_is_not_left_as_a_message(tmp_path: Path) -> None:
    c = call(tmp_path, [en("Hello, do you speak English?"), Silent(5.0), Silent(5.0), Silent(5.0)], caller_id=None)
    assert c.messages == []
    assert c.replies[-1] == templates("en")["gave_up_silence"]


def test_a_foreign_caller_id_is_kept_whatever_its_country(tmp_path: Path) -> None:
    c = call(tmp_path, [en("I would like a call back about my prescription please"), en("yes")],
             caller_id="+447700900123")
    assert "0 0, 4 4, 7 7, 0 0, 9 0, 0 1, 2 3" in c.replies[1]
    assert c.messages[0].patient["phone"] == "00447700900123"


# -- safety first ------------------------------------------------------------------------
def test_an_emergency_in_the_first_german_words_is_handled_before_the_voice_switch(tmp_path: Path) -> None:
    c = call(tmp_path, [de("Hilfe, mein Mann atmet nicht mehr!"), de("Was soll ich tun?")])
    assert c.switch is not None and c.switch.switched == ["de"]
    assert "emergency" in c.switch.events_seen  # the emergency was raised before the voice was switched
    emergency = next(e for e in c.result.events if isinstance(e, EmergencyDetected))
    assert emergency.category == "breathing"
    instruction = templates("de")["emergency"].format(number="15")
    assert c.replies[1:] == [instruction, instruction]
    assert [m.category for m in c.messages] == ["emergency"]


def test_an_emergency_is_said_even_when_the_voice_cannot_switch(tmp_path: Path) -> None:
    c = call(tmp_path, [en("my husband collapsed and he is not breathing")], switch=RecordingSwitch(fails=True))
    assert "emergency" in c.kinds
    failed = [e for e in c.result.events if e.kind == "error"]
    assert [e.code for e in failed] == ["language-switch-failed"]
    assert c.replies[1] == templates("en")["emergency"].format(number="15")


def test_suicidal_words_in_english_give_the_line_of_the_practice_country(tmp_path: Path) -> None:
    c = call(tmp_path, [en("I don't want to live anymore")])
    said = c.replies[1]
    assert "3114" in said and "15" in said  # France's line: the caller is in France
    assert "116 123" not in said and "Samaritans" not in said


def test_an_emergency_said_in_french_during_an_english_call_still_alarms(tmp_path: Path) -> None:
    c = call(tmp_path, [en("Hello, I need a message for the doctor"), en("mon mari a une douleur dans la poitrine")])
    assert c.result.outcome == "emergency"
    assert c.replies[-1] == templates("en")["emergency"].format(number="15")


def test_an_english_emergency_in_a_french_only_practice_gets_the_french_instruction(tmp_path: Path) -> None:
    c = call(tmp_path, [en("my wife is having a stroke")], switch=RecordingSwitch(offered=("fr",)))
    assert c.result.outcome == "emergency"
    assert c.replies[1] == templates("fr")["emergency"].format(number="15")


# -- when the call does not switch ---------------------------------------------------------
def test_a_french_caller_thanking_in_english_later_stays_french(tmp_path: Path) -> None:
    c = call(tmp_path, [Heard("Bonjour, je voudrais parler au docteur Martin", language="fr"),
                        Heard("C'est pour un renouvellement d'ordonnance", language="fr"),
                        en("OK, thank you")])
    assert c.switch is not None and c.switch.switched == []
    assert "language" not in c.kinds


def test_one_english_word_in_a_french_sentence_does_not_switch(tmp_path: Path) -> None:
    c = call(tmp_path, [en("Hello, je voudrais un rendez-vous avec le docteur Martin")])
    assert c.switch is not None and c.switch.switched == []
    assert "motif" in c.replies[1]  # the French booking goes on


def test_a_language_the_practice_does_not_offer_stays_in_its_own(tmp_path: Path) -> None:
    c = call(tmp_path, [de("Guten Tag, ich brauche einen Termin")], switch=RecordingSwitch(offered=("fr", "en")))
    assert c.switch is not None and c.switch.switched == []
    assert c.replies[1] == templates("fr")["not_understood_request"]  # the French dialogue, as today


def test_without_a_switch_the_detected_language_changes_nothing(tmp_path: Path) -> None:
    c = call(tmp_path, [en("Hello, do you speak English?")], offered=False)
    assert "language" not in c.kinds
    assert "I am the practice's automated assistant" not in " ".join(c.replies)


def test_a_caller_who_answers_in_french_on_the_second_turn_is_switched_back(tmp_path: Path) -> None:
    c = call(tmp_path, [en("Hello, do you speak English?"), Heard("Ah pardon, je voudrais un rendez-vous", language="fr")])
    assert c.switch is not None and c.switch.switched == ["en", "fr"]
    assert "motif" in c.replies[2]  # back in the French booking, from its start


# -- the words of the path ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("said", "answer"),
    [("yes", True), ("Yes please", True), ("that's correct", True), ("no problem", True), ("Ja, genau", True),
     ("richtig", True), ("no", False), ("Nein, das stimmt nicht", False), ("that's not right", False),
     ("wrong number", False), ("what?", None), ("", None)],
)
def test_yes_and_no_in_english_and_german(said: str, answer: bool | None) -> None:
    assert parse_yes_no_any(said) is answer


@pytest.mark.parametrize(
    ("said", "digits"),
    [("oh six one two three four five six seven eight", "0612345678"),
     ("06 12 34 56 78", "0612345678"),
     ("double oh, four nine", "0049"),
     ("null sechs, eins zwei, drei vier", "061234"),
     ("plus 44 7700 900123", "00447700900123"),
     ("my number is 07 11 22 33 44 and my name is Smith", "0711223344")],
)
def test_numbers_said_digit_by_digit(said: str, digits: str) -> None:
    assert spoken_digits(said) == digits


def test_a_call_back_number_has_eight_to_fifteen_digits() -> None:
    assert callback_number("1234567") is None
    assert callback_number("12345678") == "12345678"
    assert callback_number("1234567890123456") is None


def test_the_words_must_agree_with_the_detected_language() -> None:
    assert words_lean_towards("I need an appointment please", "en", rather_than="fr")
    assert words_lean_towards("Ich brauche einen Termin", "de", rather_than="fr")
    assert not words_lean_towards("Hello, je voudrais un rendez-vous", "en", rather_than="fr")
    assert not words_lean_towards("OK", "en", rather_than="fr")  # a tie keeps the call where it is
    assert not words_lean_towards("hello", "it", rather_than="fr")


def test_numbers_are_read_for_the_callers_ear() -> None:
    assert say_digits("0612345678", "en") == "0 6, 1 2, 3 4, 5 6, 7 8"
    assert say_digits("+33612345678", "de") == "0 6, 1 2, 3 4, 5 6, 7 8"
    assert say_digits("0612345678", "fr") == "06 12 34 56 78"
