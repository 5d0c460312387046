"""The conversation: a deterministic secretary that books, cancels, moves,
answers practical questions and takes messages for the staff.

Understanding is rule-based (``understand``, ``intent``, ``emergency``): the small
language models a registry ships fail at it (README, "Limits"); a qualified
helper (``appliance.llm.helper``) is asked only when the rules cannot tell what
a caller wants, never for safety. Every turn checks for an emergency first, then
for a request for medical advice or about other patients, then handles what the
assistant asked for. The secretary only decides; the call session performs the
actions it returns (``Book``, ``Cancel``, ``Move``, ``LeaveMessage``,
``Emergency``) and reports back (``booked``, ``cancelled``, ``message_left``…).

The parts: ``patient`` (who), ``booking``, ``existing`` (cancel, move, read out),
``staff_message``; their shared state is ``conversation``.
"""

from __future__ import annotations

import logging
import re
from typing import Final

from appliance.dialogue import speakable
from appliance.dialogue.answers import answer_question, asks_about_others, question_topic
from appliance.dialogue.conversation import AgendaView, Helper, templates
from appliance.dialogue.emergency_any import detect_any_emergency
from appliance.dialogue.foreign import ForeignSteps
from appliance.dialogue.intent import Intent, detect_intent
from appliance.dialogue.normalize import fold
from appliance.dialogue.policy import asks_medical_advice
from appliance.dialogue.reply import Emergency, LeaveMessage, Reply
from appliance.dialogue.staff_message import MessageSteps, gives_medical_details, message_summary
from appliance.dialogue.understand import match_reason, parse_when, parse_yes_no
from appliance.turns import Heard, HungUp, Pressed, Silent, Turn

__all__ = ["AgendaView", "Helper", "Secretary", "templates"]

_LOGGER = logging.getLogger(__name__)
_MAX_SILENCES: Final = 3
_EMERGENCY_REPEATS: Final = 2  # after the first instruction, said again this many times, then the call ends
_GREETING_WORDS: Final = frozenset({"bonjour", "bonsoir", "allo", "oui", "euh", "alors", "voila", "madame", "monsieur"})
_MESSAGE_INTENTS: Final = {
    Intent.PRESCRIPTION: "prescription",
    Intent.CERTIFICATE: "certificate",
    Intent.SICK_NOTE: "sick_note",
    Intent.RESULTS: "results",
    Intent.ADMIN: "admin",
    Intent.CALLBACK: "callback",
}
# Asks whose answers are short enough that another request in them is a change of mind.
_SWITCHABLE: Final = ("reason", "practitioner", "when", "choice", "confirm", "appointment")
_PURPOSE_OF: Final = {Intent.BOOK: "book", Intent.CANCEL: "cancel", Intent.MOVE: "move",
                      **{intent: "message" for intent in _MESSAGE_INTENTS}, Intent.HUMAN: "message"}
_CLOSING: Final = re.compile(r"\b(?:au revoir|ca ira|c est tout|rien d autre|bonne journee|bonne soiree)\b")
_OWN_APPOINTMENT: Final = re.compile(r"\b(?:mon|mes|notre|son|le) (?:prochain )?(?:rendez vous|rdv)\b")
# Emergencies that have their own national line besides the 15 / 112; the number
# is in the language's templates (``line_suicide``: 3114 in France).
_OWN_LINE: Final = ("suicide",)


class Secretary(ForeignSteps, MessageSteps):
    """One call's conversation state and its French dialogue policy; a caller in
    another offered language is taken through ``foreign`` (a message for the team)."""

    # -- entry points ---------------------------------------------------------
    def greet(self) -> Reply:
        text = self.t["greeting"].format(practice=self.practice.name, notice=self.practice.data_notice).strip()
        return self._ask("request", text, question=self.t["ask_request"])

    def respond(self, turn: Turn) -> Reply:
        match turn:
            case HungUp():
                return Reply("", None, end_call=True)
            case Silent():
                return self._on_silence()
            case Pressed(digits=digits):
                self._silences = 0
                return self._on_keys(digits)
            case Heard(text=text):
                self._silences = 0
                return self._on_words(text)
        raise AssertionError(f"unhandled turn {turn!r}")

    # -- what the call session reports back -------------------------------------
    def booked(self, appointment_id: int, *, awaits_cloud: bool = False) -> Reply:
        """``awaits_cloud``: the practice's cloud agenda has not confirmed it yet, so
        the caller hears "registered, will be confirmed", not "confirmed"."""
        self._settle("booked")
        self.appointment_id = appointment_id
        slot = self.draft.slot
        assert slot is not None
        text = self.t["booked_pending" if awaits_cloud else "booked"].format(
            slot=speakable.say_datetime(slot.start), practitioner=self._doctor(slot.practitioner_id))
        return self._done(text)

    def booking_failed(self, *, slot_taken: bool) -> Reply:
        if slot_taken:
            # Someone else (another line, the online agenda) took it meanwhile:
            # offer the next free ones for the same wish.
            self.draft.slot = None
            reply = self._search_and_offer()
            return Reply(f"{self.t['slot_taken']} {reply.text}", reply.ask, reply.action, reply.end_call)
        return self._failed_change("why_booking_failed")

    def cancelled(self, *, awaits_cloud: bool = False) -> Reply:
        self._settle("cancelled")
        target = self.change.target
        assert target is not None
        self.appointment_id = target.id
        return self._done(self.t["cancelled"].format(appointment=self._appointment_words(target)))

    def moved(self, *, awaits_cloud: bool = False) -> Reply:
        self._settle("rescheduled")
        target, slot = self.change.target, self.draft.slot
        assert target is not None and slot is not None
        self.appointment_id = target.id
        key = "moved_pending" if awaits_cloud else "moved"
        return self._done(self.t[key].format(slot=speakable.say_datetime(slot.start),
                                             practitioner=self._doctor(slot.practitioner_id)))

    def change_failed(self, *, slot_taken: bool) -> Reply:
        if slot_taken and self.purpose == "move":
            self.draft.slot = None
            reply = self._search_and_offer()
            return Reply(f"{self.t['slot_taken']} {reply.text}", reply.ask, reply.action, reply.end_call)
        return self._failed_change("why_change_failed")

    def message_left(self) -> Reply:
        if self.foreign is not None:
            return self._foreign_message_left()
        self._settle("message")
        handed_over = self.purpose == "handover"
        urgent = self.message.category is not None and self._last_urgency == "urgent"
        text = self.t["message_left_urgent" if urgent else "message_left"]
        if handed_over:
            self.purpose = None
            return Reply(f"{self.t['message_left_handover']} {self.t['goodbye']}", None, end_call=True)
        return self._done(text)

    def message_failed(self) -> Reply:
        """The inbox could not be written (a full disk): say so, never pretend."""
        return Reply(self.t["message_failed"], None, end_call=True)

    # -- turn handling ----------------------------------------------------------
    def _on_words(self, text: str) -> Reply:
        # Safety first, every turn, before anything the caller asked for.
        if self.ask == "emergency":
            return self._repeat_emergency()
        if (match := detect_any_emergency(text)) is not None:  # every language, whatever the call's
            self._settle("emergency")
            self._emergency_kind = match.kind
            self._emergency_repeats = 0
            self.ask = "emergency"
            return Reply(self._emergency_words(), "emergency", action=Emergency(match.kind, match.phrase))
        if self.foreign is not None:  # the French understanding below cannot read these words
            return self._foreign_words(text)
        if asks_medical_advice(text):
            return Reply(f"{self.t['no_advice']} {self._last_question}", self.ask)
        if asks_about_others(text):
            return Reply(f"{self.t['no_other_patients']} {self._last_question}", self.ask)
        handler = getattr(self, f"_answer_{self.ask}", self._answer_request)
        reply = self._change_of_mind(text) or handler(text)
        if gives_medical_details(text) and not self._minimisation_said and reply.text and not reply.action:
            # Data minimisation: the box needs no symptoms, and says so once.
            self._minimisation_said = True
            reply = Reply(f"{self.t['no_medical_details']} {reply.text}", reply.ask, reply.action, reply.end_call)
        return reply

    def _emergency_words(self) -> str:
        if self._emergency_kind in _OWN_LINE:
            own = self.t["line_" + self._emergency_kind]
            if self.foreign is not None:
                # The caller is in the practice's country: its line, in the caller's words.
                own = templates(self.language)["line_" + self._emergency_kind]
                return self.t[f"emergency_{self._emergency_kind}_line"].format(
                    number=self.practice.emergency_number, own=own)
            return self.t["emergency_" + self._emergency_kind].format(number=self.practice.emergency_number, own=own)
        return self.t["emergency"].format(number=self.practice.emergency_number)

    def _repeat_emergency(self) -> Reply:
        """After an emergency cue the assistant says nothing but the instruction: a
        caller in danger must not be drawn back into booking."""
        self._emergency_repeats += 1
        if self._emergency_repeats > _EMERGENCY_REPEATS:
            return Reply(self._emergency_words(), None, end_call=True)
        return Reply(self._emergency_words(), "emergency")

    def _on_silence(self) -> Reply:
        if self.ask == "emergency":
            return self._repeat_emergency()
        self._silences += 1
        if self._silences >= _MAX_SILENCES:
            if self.foreign is not None:
                return self._foreign_silences_ran_out()
            if self.purpose == "handover":  # nothing more to wait for: leave what we have
                return self._leave_what_we_have()
            return Reply(self.t["gave_up_silence"], None, end_call=True)
        return Reply(f"{self.t['silence']} {self._last_question}", self.ask)

    def _on_keys(self, digits: str) -> Reply:
        # The keypad is the fallback where speech recognition is weakest: numbers.
        if self.ask == "emergency":
            return self._repeat_emergency()
        if self.foreign is not None:
            return self._foreign_keys(digits)
        if self.ask == "choice" and digits.isdigit() and 1 <= int(digits) <= len(self.draft.offered):
            return self._choose(int(digits) - 1)
        if self.ask == "appointment" and digits.isdigit() and 1 <= int(digits) <= len(self.change.found):
            return self._about(self.change.found[int(digits) - 1])
        if self.ask in ("confirm", "anything_else") and digits in ("1", "2"):
            return self._on_words("oui" if digits == "1" else "non")
        if self.ask == "birth_date" and len(digits) == 8 and digits.isdigit():
            return self._answer_birth_date(f"{digits[:2]}/{digits[2:4]}/{digits[4:]}")
        if self.ask == "phone" and digits.isdigit():
            return self._answer_phone(digits)
        return self._retry("keys_not_understood", question=self._last_question)

    # -- the opening request ------------------------------------------------------
    def _answer_request(self, text: str) -> Reply:
        intent = detect_intent(text)
        if intent is Intent.UNKNOWN and self._narrowed and (answer := parse_yes_no(text)) is not None:
            # "Is it for an appointment?" - yes books, no becomes a message for the staff.
            if answer:
                self._start("book")
                return self._next_booking_question()
            self._start("message")
            return self._take_message("callback", first_words=text)
        if _only_greeting(text):  # "Bonjour…": the request is still to come
            return Reply(self.t["listening"], self.ask)
        if intent is Intent.UNKNOWN and _CLOSING.search(fold(text)):
            return Reply(self.t["goodbye"], None, end_call=True)  # "non, ça ira, merci, au revoir"
        if intent is Intent.UNKNOWN and self.helper is not None:
            intent = self._helper_intent(text)
        reason = match_reason(text, self.practice.reasons)
        when = parse_when(text, self.now)
        if intent is Intent.CERTIFICATE and reason is not None:
            intent = Intent.BOOK  # the practice books certificates: the doctor must see the patient
        if intent in (Intent.UNKNOWN, Intent.QUESTION) and question_topic(text) is not None:
            return self._answer_question(text)  # "vous prenez de nouveaux patients ?" is not a booking yet
        if intent is Intent.BOOK or (intent is Intent.UNKNOWN and (reason or when)):
            self._start("book")
            self._absorb(text)
            return self._next_booking_question()
        if intent in (Intent.CANCEL, Intent.MOVE):
            self._start(intent.value)
            return self._ask_who(self.t[f"{intent.value}_intro"])
        if intent is Intent.QUESTION:
            return self._answer_question(text)
        if intent in _MESSAGE_INTENTS:
            self._start("message")
            return self._take_message(_MESSAGE_INTENTS[intent], first_words=text)
        if intent is Intent.HUMAN:
            self._start("message")
            return self._take_message("callback", first_words=text, lead=self.t["no_human"])
        return self._retry("not_understood_request")

    def _change_of_mind(self, text: str) -> Reply | None:
        """A caller who asks for something else mid-way ("finalement, je préfère
        annuler mon rendez-vous") is followed, not held to the first request.

        Only where the answer expected is short (a day, a choice, a yes): a name or
        a message's words may contain anything."""
        if self.ask not in _SWITCHABLE or self.purpose is None:
            return None
        intent = detect_intent(text)
        wanted = _PURPOSE_OF.get(intent)
        if wanted is None or wanted == self.purpose:
            return None
        if wanted == "book" and self.purpose in ("move", "cancel", "check"):
            return None  # "je garde mon rendez-vous", "un autre rendez-vous": still about that one
        if self.purpose == "move" and intent is Intent.CANCEL and self.change.target is not None:
            self.purpose = "cancel"  # the appointment is found already: cancel that one
            return self._about(self.change.target)
        return self._answer_request(text)

    def _helper_intent(self, text: str) -> Intent:
        assert self.helper is not None
        try:
            said = self.helper.intent(text)
        except Exception:  # noqa: BLE001 - a helper's bug must never cost the caller a turn
            _LOGGER.exception("the LLM helper failed")
            return Intent.UNKNOWN
        try:
            return Intent(said) if said else Intent.UNKNOWN
        except ValueError:
            return Intent.UNKNOWN

    def _answer_question(self, text: str) -> Reply:
        if _OWN_APPOINTMENT.search(fold(text)):
            self._start("check")
            return self._ask_who(self.t["check_intro"])
        answer = answer_question(text, self.practice, self.now, self.t)
        if answer is not None:
            self._settle("answered")
            return self._done(answer.text)
        self._start("message")
        return self._take_message("admin", first_words=text, lead=self.t["no_answer"])

    def _answer_anything_else(self, text: str) -> Reply:
        answer = parse_yes_no(text)
        intent = detect_intent(text)
        more = (question_topic(text) or match_reason(text, self.practice.reasons) or parse_when(text, self.now))
        if intent is not Intent.UNKNOWN or (answer is not False and more):
            return self._answer_request(text)
        if answer is True:
            self._start(None)
            return self._ask("request", self.t["listening"], question=self.t["ask_request"])
        return Reply(self.t["goodbye"], None, end_call=True)

    # -- the read-back ------------------------------------------------------------
    def _answer_confirm(self, text: str) -> Reply:
        answer = parse_yes_no(text)
        if answer is None:
            if self.purpose == "book" and parse_when(text, self.now) is not None:
                # "non, plutôt jeudi" without a clear no: a new wish for the time.
                self._absorb(text)
                self.draft.slot = None
                return self._search_and_offer()
            key = {"cancel": "not_understood_confirm_cancel", "move": "not_understood_confirm_move",
                   "message": "not_understood_confirm_message"}.get(self.purpose or "", "not_understood_confirm")
            return self._retry(key)
        if answer is False and self.purpose in ("book", "message"):
            corrected = self._correct_who(text)
            if corrected is not None:
                return corrected
            when = parse_when(text, self.now) if self.purpose == "book" else None
            slot = self.draft.slot
            # "non, plutôt jeudi" is a new wish; "demain je ne peux pas" names the day refused.
            if when is not None and slot is not None and not when.accepts(slot.start):
                self._absorb(text)
                self.draft.slot = None
                return self._search_and_offer()
        if self.purpose == "book":
            return self._confirm_booking(answer)
        if self.purpose in ("cancel", "move"):
            return self._confirm_change(answer)
        return self._confirm_message(answer)

    def _after_who(self) -> Reply:
        if self.purpose == "book":
            return self._booking_readback()
        if self.purpose in ("cancel", "move", "check"):
            return self._look_up()
        if self.purpose == "handover":
            return self._leave_what_we_have()
        return self._message_readback()

    # -- when the box cannot do it: the staff take over ---------------------------
    def _hand_over(self) -> Reply:
        """Understanding failed three times: a message for the staff, with what is
        known and the transcript, and the caller is told so; never a silent hang-up."""
        if self.purpose == "handover":
            return self._leave_what_we_have()
        return self._start_handover("why_not_understood", self.t["hand_over"])

    def _no_slot(self) -> Reply:
        return self._start_handover("why_no_slot", self.t["no_slot"])

    def _failed_change(self, why: str) -> Reply:
        return self._start_handover(why, self.t["change_failed"])

    def _start_handover(self, why: str, lead: str) -> Reply:
        category = self.message.category or "callback"
        self.purpose = "handover"
        self.message.category = category
        self.message.why = self.t[why]
        if self.person.phone:
            return self._leave_what_we_have(lead)
        return self._ask_phone(lead)

    def _leave_what_we_have(self, lead: str = "") -> Reply:
        self.purpose = "handover"
        p = self.person
        phone = p.phone or self.caller_id
        category = self.message.category or "callback"
        self._last_urgency = "days"
        summary = message_summary(self.t, category, self.message.detail, self.message.why, p, phone)
        return Reply(lead, None, action=LeaveMessage(category, "days", summary, p.record(phone)))

    def _message_action(self) -> LeaveMessage:
        action = super()._message_action()
        self._last_urgency = action.urgency
        return action

    # -- wording ----------------------------------------------------------------
    def _done(self, text: str) -> Reply:
        self.purpose = None
        return self._ask("anything_else", f"{text} {self.t['ask_anything_else']}", question=self.t["ask_anything_else"])


def _only_greeting(text: str) -> bool:
    words = fold(text).split()
    return bool(words) and all(word in _GREETING_WORDS for word in words)
