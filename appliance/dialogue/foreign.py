"""A caller who speaks another offered language: an honest message for the team.

The box understands bookings, names and dates in French only. A German- or
English-speaking caller is not walked through a French booking in translation;
in their language the box says what it can do (take a message for the team, who
call back), lets them say what the call is about in their own words (one turn,
a second if the first said nothing), settles the number to call back (the
caller ID read back, else typed on the keypad, which needs no language), and
leaves a ``LeaveMessage`` whose summary the staff read in the practice's own
language: "Patient anglophone – rappel — « … » — rappeler au 06 …".

Safety does not depend on any of this: the secretary checks every turn for an
emergency in every language before it comes here (``emergency_any``), and a
request for medical advice gets the fixed "I cannot give medical advice" with
the emergency numbers, never an answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from appliance.dialogue import speakable
from appliance.dialogue.conversation import Conversation, templates
from appliance.dialogue.foreign_words import (
    asks_advice,
    callback_number,
    content_words,
    parse_yes_no_any,
    says_urgent,
    spoken_digits,
    states_a_request,
)
from appliance.dialogue.identity import parse_phone
from appliance.dialogue.reply import LeaveMessage, Reply
from appliance.dialogue.staff_message import urgency_of

UNDERSTOOD: Final = "fr"
"""The language the rule-based understanding reads."""
CATEGORY: Final = "callback"
_REASON_TURNS: Final = 2  # the reason in the caller's own words: one turn, a second if the first said nothing
_PHONE_TRIES: Final = 3  # then the message goes with what is known: never a loop
_REASON_MAX_WORDS: Final = 60


@dataclass
class ForeignDraft:
    """What a caller in another language has said so far."""

    language: str
    introduced: bool = False
    reason: list[str] = field(default_factory=list)
    reason_turns: int = 0
    phone: str | None = None
    """The number confirmed for the call back; "" once the caller ID was declined."""
    typed: str | None = None
    """A number typed or said, waiting for the caller's yes."""
    phone_tries: int = 0
    advice_asked: bool = False


class ForeignSteps(Conversation):
    foreign: ForeignDraft | None = None
    """Set while the caller speaks a language the understanding does not read."""

    @property
    def spoken(self) -> str:
        """The language the assistant speaks now."""
        return self.foreign.language if self.foreign is not None else self.language

    def switch_language(self, language: str) -> None:
        """From now on, speak ``language``: the call session has switched the
        recognizer and the voice. Back in the understood language, the dialogue
        starts again from its first question."""
        if language == self.spoken:
            return
        self.t = templates(language)  # FileNotFoundError for a language without templates: the caller checks
        if language == UNDERSTOOD:
            self.foreign = None
            self._start(None)
            self.ask = "request"
            self._last_question = self.t["ask_request"]
            return
        self.foreign = ForeignDraft(language)

    # -- the turns ----------------------------------------------------------------
    def _foreign_words(self, text: str) -> Reply:
        f = self.foreign
        assert f is not None
        lead = ""
        if asks_advice(f.language, text) and not f.advice_asked:
            f.advice_asked = True
            key = "foreign_no_advice" if f.introduced else "foreign_advice_passed_on"  # the intro says it already
            lead = self.t[key].format(number=self.practice.emergency_number)
        if not f.introduced:
            f.introduced = True
            lead = f"{self.t['foreign_intro']} {lead}".strip()
            if states_a_request(text):
                f.reason.append(text.strip())
                return self._foreign_phone(f"{lead} {self.t['foreign_noted']}")
            return self._ask("message", f"{lead} {self.t['foreign_ask_reason']}", question=self.t["foreign_ask_reason"])
        match self.ask:
            case "message":
                return self._foreign_reason(text, lead)
            case "phone":
                return self._foreign_phone_answer(text, parse_yes_no_any(text), spoken_digits(text), lead)
            case "confirm":
                return self._foreign_confirm(parse_yes_no_any(text), lead)
        # Anything else (after a message failed): the message is all this path offers.
        return self._foreign_reason(text, lead)

    def _foreign_keys(self, digits: str) -> Reply:
        """The keypad needs no language: 1 is yes, 2 is no, and a number is a number."""
        yes_no = {"1": True, "2": False}.get(digits)
        match self.ask:
            case "phone":
                return self._foreign_phone_answer("", yes_no if len(digits) == 1 else None, digits, "")
            case "confirm":
                return self._foreign_confirm(yes_no, "")
        return Reply(self.t['keys_not_understood'].format(question=self._last_question), self.ask)

    def _foreign_silences_ran_out(self) -> Reply:
        """Nothing more is coming: what was said is passed on if it can be acted on."""
        f = self.foreign
        assert f is not None
        if f.reason or self._foreign_number() is not None:
            return self._foreign_leave()
        return Reply(self.t["gave_up_silence"], None, end_call=True)

    # -- the reason -------------------------------------------------------------------
    def _foreign_reason(self, text: str, lead: str) -> Reply:
        f = self.foreign
        assert f is not None
        f.reason_turns += 1
        if content_words(text) > 0:
            f.reason.append(text.strip())
            return self._foreign_phone(f"{lead} {self.t['foreign_noted']}")
        if f.reason_turns < _REASON_TURNS:
            return self._ask("message", f"{lead} {self.t['foreign_ask_reason_again']}".strip(),
                             question=self.t["foreign_ask_reason"])
        return self._foreign_phone(lead)  # the transcript tells the team the rest

    # -- the number to call back --------------------------------------------------------
    def _foreign_phone(self, lead: str) -> Reply:
        f = self.foreign
        assert f is not None
        if f.phone:
            return self._foreign_leave(lead)
        if self.caller_digits and f.phone is None:
            question = self.t["foreign_ask_phone_callerid"].format(phone=say_digits(self.caller_digits, f.language))
        else:
            question = self.t["foreign_ask_phone"]
        return self._ask("phone", f"{lead} {question}".strip(), question=question)

    def _foreign_phone_answer(self, text: str, yes_no: bool | None, digits: str, lead: str) -> Reply:
        f = self.foreign
        assert f is not None
        offering_caller_id = bool(self.caller_digits) and f.phone is None
        number = callback_number(digits)
        number = (parse_phone(number) or number) if number else None  # "0033 6 …" is "06 …"
        if number is not None:
            f.typed = number
            question = self.t["foreign_confirm_phone"].format(phone=say_digits(number, f.language))
            return self._ask("confirm", f"{lead} {question}".strip(), question=question)
        if offering_caller_id and yes_no is True:
            f.phone = self.caller_digits
            return self._foreign_leave(lead)
        if offering_caller_id and yes_no is False:
            f.phone = ""
            return self._foreign_phone(lead)
        f.phone_tries += 1
        if f.phone_tries >= _PHONE_TRIES:
            return self._foreign_leave(lead)
        again = self.t["foreign_yes_no"] if offering_caller_id else self.t["foreign_ask_phone_again"]
        return Reply(f"{lead} {again}".strip(), "phone")

    def _foreign_confirm(self, yes_no: bool | None, lead: str) -> Reply:
        f = self.foreign
        assert f is not None
        if yes_no is True and f.typed:
            f.phone, f.typed = f.typed, None
            return self._foreign_leave(lead)
        f.phone_tries += 1
        if f.phone_tries >= _PHONE_TRIES:
            return self._foreign_leave(lead)  # the number typed goes with the message: better than none
        if yes_no is False:
            f.typed = None
            f.phone = ""
            return self._ask("phone", f"{lead} {self.t['foreign_ask_phone']}".strip())
        return Reply(f"{lead} {self.t['foreign_yes_no']}".strip(), "confirm")

    def _foreign_number(self) -> str | None:
        f = self.foreign
        assert f is not None
        if f.phone:
            return f.phone
        if f.typed:
            return f.typed
        if f.phone is None and self.caller_digits:
            return self.caller_digits  # never declined: the number the call came from
        return None

    # -- the message ----------------------------------------------------------------------
    def _foreign_leave(self, lead: str = "") -> Reply:
        f = self.foreign
        assert f is not None
        phone = self._foreign_number()
        words = " ".join(f.reason)
        urgency = "urgent" if says_urgent(f.language, words) else urgency_of(CATEGORY, words)
        self._last_urgency = urgency
        staff = templates(self.language)  # the team reads the practice's own language
        patient = {"phone": phone, "language": f.language} if phone else {"language": f.language}
        action = LeaveMessage(CATEGORY, urgency, foreign_summary(staff, f.language, words, phone), patient)
        return Reply(lead.strip(), None, action=action)

    def _foreign_message_left(self) -> Reply:
        self._settle("message")
        if self._foreign_number() is None:
            key = "foreign_message_left_no_number"
        else:
            key = "foreign_message_left_urgent" if self._last_urgency == "urgent" else "foreign_message_left"
        return Reply(self.t[key], None, end_call=True)


def foreign_summary(staff: dict[str, str], language: str, words: str, phone: str | None) -> str:
    """The staff's line: "Patient anglophone – rappel — « … » — rappeler au 06 12 …"."""
    who = staff["foreign_summary"].format(language=staff.get(f"language_name_{language}", language))
    parts = [who]
    if words.strip():
        parts.append(f"« {' '.join(words.split()[:_REASON_MAX_WORDS])} »")
    parts.append(f"{staff['summary_call_back']} {speakable.say_phone(phone)}" if phone else staff["summary_no_number"])
    return " — ".join(parts)


def say_digits(digits: str, language: str) -> str:
    """A number for the caller's ear: French pairs ("06 12 …", read "zéro six, douze")
    for French, else digit by digit in pairs, "0 6, 1 2, 3 4", which any voice reads
    one digit at a time. A French number is shown as 10 digits."""
    only = parse_phone(digits) or "".join(c for c in digits if c.isdigit())
    if language == UNDERSTOOD:
        return speakable.say_phone(only)
    return ", ".join(" ".join(only[i : i + 2]) for i in range(0, len(only), 2))
