"""The conversation: a deterministic French secretary that books appointments.

Understanding is rule-based (``understand``, ``intent``, ``emergency``): the small
language models a registry ships fail at it (README, "Limits"). Every turn checks
for an emergency first, then for a request for medical advice, then handles what
the assistant asked for. The secretary only decides; the call session performs
the actions it returns (``Book``) and reports back (``booked``, ``booking_failed``).
"""

from __future__ import annotations

import logging
import tomllib
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from importlib import resources
from collections.abc import Callable
from typing import Final, Protocol

from appliance.agenda.practice import Practice
from appliance.agenda.slots import Slot
from appliance.dialogue import speakable
from appliance.dialogue.emergency import detect_emergency
from appliance.dialogue.emergency_heard import detect_heard_emergency
from appliance.dialogue.intent import Intent, detect_intent
from appliance.dialogue.normalize import fold
from appliance.dialogue.policy import asks_medical_advice
from appliance.dialogue.reply import Book, Emergency, Patient, Reply
from appliance.dialogue.understand import (
    WhenPreference,
    match_practitioner,
    match_reason,
    parse_birth_date,
    parse_choice,
    parse_person_name,
    parse_phone,
    parse_when,
    parse_yes_no,
)
from appliance.turns import Heard, HungUp, Pressed, Silent, Turn

_LOGGER = logging.getLogger(__name__)
_MAX_RETRIES: Final = 3  # failed answers to one question before handing over to the staff
_MAX_SILENCES: Final = 3
_OFFERS: Final = 3
_ANY: Final = "any"
_GREETING_WORDS: Final = frozenset({"bonjour", "bonsoir", "allo", "oui", "euh", "alors", "voila", "madame", "monsieur"})


@cache
def templates(language: str = "fr") -> dict[str, str]:
    text = resources.files("appliance.dialogue").joinpath(f"templates/{language}.toml").read_text("utf-8")
    return tomllib.loads(text)


class AgendaView(Protocol):
    """The read side of the agenda the secretary needs."""

    def free_slots(
        self,
        reason_id: str,
        practitioner_id: str | None,
        window_start: datetime | None,
        window_end: datetime | None,
        limit: int,
        accept: Callable[[datetime], bool] | None = None,
    ) -> list[Slot]: ...


@dataclass
class BookingDraft:
    reason_id: str | None = None
    practitioner_id: str | None = None  # an id, or "any"
    when: WhenPreference | None = None
    offered: list[Slot] = field(default_factory=list)
    slot: Slot | None = None
    last_name: str | None = None
    first_name: str | None = None
    birth_date: date | None = None
    phone: str | None = None


class Secretary:
    """One call's conversation state and its French dialogue policy."""

    def __init__(
        self, practice: Practice, agenda: AgendaView, now: datetime, caller_id: str | None, language: str = "fr"
    ) -> None:
        self.practice = practice
        self.agenda = agenda
        self.now = now
        self.caller_id = parse_phone(caller_id) if caller_id else None
        self.t = templates(language)
        self.ask: str | None = None
        self.draft = BookingDraft()
        self.outcome = "abandoned"
        self.appointment_id: int | None = None
        self._retries = 0
        self._silences = 0
        self._last_question = ""

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

    def booked(self, appointment_id: int, *, awaits_cloud: bool = False) -> Reply:
        """``awaits_cloud``: the practice's cloud agenda has not confirmed it yet, so
        the caller hears "registered, will be confirmed", not "confirmed"."""
        if self.outcome != "emergency":  # an emergency stays the call's headline
            self.outcome = "booked"
        self.appointment_id = appointment_id
        slot = self.draft.slot
        assert slot is not None
        text = self.t["booked_pending" if awaits_cloud else "booked"].format(slot=speakable.say_datetime(slot.start), practitioner=self._doctor(slot))
        return self._ask("anything_else", text, question=self.t["ask_anything_else"])

    def booking_failed(self, *, slot_taken: bool) -> Reply:
        if slot_taken:
            # Someone else (another line, the online agenda) took it meanwhile:
            # offer the next free ones for the same wish.
            self.draft.slot = None
            reply = self._search_and_offer()
            return Reply(f"{self.t['slot_taken']} {reply.text}", reply.ask, reply.action, reply.end_call)
        return self._ask("anything_else", self.t["booking_failed"], question=self.t["ask_anything_else"])

    # -- turn handling ----------------------------------------------------------
    def _on_words(self, text: str) -> Reply:
        # Safety first, every turn, before anything the caller asked for.
        if (match := detect_emergency(text) or detect_heard_emergency(text)) is not None:
            self.outcome = "emergency"
            number = self.practice.emergency_number
            # The line stays open: a real emergency hangs up and dials the 15, while a
            # false alarm ("il a fait un AVC il y a deux ans") can still be helped.
            return Reply(
                f"{self.t['emergency'].format(number=number)} {self.t['after_emergency']}",
                "request",
                action=Emergency(match.kind, match.phrase),
            )
        if asks_medical_advice(text):
            return Reply(f"{self.t['no_advice']} {self._last_question}", self.ask)
        handler = getattr(self, f"_answer_{self.ask}", self._answer_request)
        return handler(text)

    def _on_silence(self) -> Reply:
        self._silences += 1
        if self._silences >= _MAX_SILENCES:
            return Reply(self.t["gave_up_silence"], None, end_call=True)
        return Reply(f"{self.t['silence']} {self._last_question}", self.ask)

    def _on_keys(self, digits: str) -> Reply:
        # The keypad is the fallback where speech recognition is weakest: numbers.
        if self.ask == "choice" and digits.isdigit() and 1 <= int(digits) <= len(self.draft.offered):
            return self._choose(int(digits) - 1)
        if self.ask in ("confirm", "anything_else") and digits in ("1", "2"):
            return self._on_words("oui" if digits == "1" else "non")
        if self.ask == "birth_date" and len(digits) == 8 and digits.isdigit():
            return self._answer_birth_date(f"{digits[:2]}/{digits[2:4]}/{digits[4:]}")
        if self.ask == "phone" and digits.isdigit():
            return self._answer_phone(digits)
        return self._retry("keys_not_understood", question=self._last_question)

    def _retry(self, key: str, **values: str) -> Reply:
        self._retries += 1
        if self._retries >= _MAX_RETRIES:
            return Reply(self.t["gave_up"], None, end_call=True)
        return Reply(self.t[key].format(**values), self.ask)

    def _ask(self, ask: str, text: str, *, question: str | None = None) -> Reply:
        if ask != self.ask:
            self._retries = 0
        self.ask = ask
        self._last_question = question or text
        return Reply(text, ask)

    # -- the questions -------------------------------------------------------
    def _answer_request(self, text: str) -> Reply:
        if _only_greeting(text):  # "Bonjour…": the request is still to come
            return Reply(self.t["listening"], self.ask)
        intent = detect_intent(text)
        reason = match_reason(text, self.practice.reasons)
        when = parse_when(text, self.now)
        if intent is Intent.BOOK or reason or (when and intent is Intent.UNKNOWN):
            self._absorb(text)
            return self._next_booking_question()
        if intent is Intent.UNKNOWN:
            return self._retry("not_understood_request")
        return self._ask("anything_else", self.t["not_supported"], question=self.t["ask_anything_else"])

    def _answer_reason(self, text: str) -> Reply:
        self._absorb(text)
        if self.draft.reason_id is None:
            return self._retry("ask_reason", options=self._reason_options())
        return self._next_booking_question()

    def _answer_practitioner(self, text: str) -> Reply:
        self._absorb(text)
        if self.draft.practitioner_id is None:
            return self._retry("ask_practitioner", options=self._practitioner_options())
        return self._next_booking_question()

    def _answer_when(self, text: str) -> Reply:
        self._absorb(text)
        if self.draft.when is None:
            return self._retry("not_understood_when")
        return self._next_booking_question()

    def _answer_choice(self, text: str) -> Reply:
        offered = self.draft.offered
        index = parse_choice(text, [slot.start for slot in offered])
        if index is not None and 0 <= index < len(offered):
            return self._choose(index)
        when = parse_when(text, self.now)
        if when is not None:  # "plutôt jeudi": a new wish, search again
            self.draft.when = when
            return self._search_and_offer()
        if parse_yes_no(text) is False:
            self.draft.when = None
            return self._ask("when", self.t["ask_other_time"], question=self.t["ask_when"])
        return self._retry("not_understood_choice", options=self._offer_list(offered))

    def _answer_last_name(self, text: str) -> Reply:
        name = parse_person_name(text)
        if name is None:
            return self._retry("ask_last_name_again")
        self.draft.last_name = name
        return self._ask("first_name", self.t["ask_first_name"])

    def _answer_first_name(self, text: str) -> Reply:
        name = parse_person_name(text)
        if name is None:
            return self._retry("ask_first_name_again")
        self.draft.first_name = name
        return self._ask("birth_date", self.t["ask_birth_date"])

    def _answer_birth_date(self, text: str) -> Reply:
        born = parse_birth_date(text, self.now)
        if born is None:
            return self._retry("ask_birth_date_again")
        self.draft.birth_date = born
        return self._ask_phone()

    def _answer_phone(self, text: str) -> Reply:
        phone = parse_phone(text)
        if phone is None and self.caller_id and self.draft.phone is None:
            if parse_yes_no(text) is True:
                phone = self.caller_id
            elif parse_yes_no(text) is False:
                self.draft.phone = ""  # the caller ID was declined: ask for another number
                return self._ask("phone", self.t["ask_phone"])
        if phone is None:
            return self._retry("ask_phone_again")
        self.draft.phone = phone
        return self._readback()

    def _answer_confirm(self, text: str) -> Reply:
        answer = parse_yes_no(text)
        if answer is True:
            d = self.draft
            assert d.slot and d.last_name and d.first_name and d.birth_date and d.phone
            patient = Patient(d.last_name, d.first_name, d.birth_date, d.phone)
            return Reply("", "confirm", action=Book(d.slot, patient))
        if answer is False:
            self.draft = BookingDraft(reason_id=self.draft.reason_id, practitioner_id=self.draft.practitioner_id)
            return self._ask("when", self.t["restart_booking"], question=self.t["ask_when"])
        return self._retry("not_understood_confirm")

    def _answer_anything_else(self, text: str) -> Reply:
        answer = parse_yes_no(text)
        intent = detect_intent(text)
        if answer is False or (answer is None and intent is Intent.UNKNOWN and not text.strip()):
            return Reply(self.t["goodbye"], None, end_call=True)
        if intent is not Intent.UNKNOWN:
            self.draft = BookingDraft()
            return self._answer_request(text)
        if answer is True:
            self.draft = BookingDraft()
            return self._ask("request", self.t["listening"], question=self.t["ask_request"])
        return Reply(self.t["goodbye"], None, end_call=True)

    # -- booking steps ---------------------------------------------------------
    def _absorb(self, text: str) -> None:
        """Take every booking detail the caller gave, in whatever order they came."""
        d = self.draft
        if d.reason_id is None:
            d.reason_id = match_reason(text, self.practice.reasons)
        if d.practitioner_id is None:
            d.practitioner_id = match_practitioner(text, self.practice.practitioners)
        if d.when is None:
            d.when = parse_when(text, self.now)

    def _next_booking_question(self) -> Reply:
        d = self.draft
        if d.reason_id is None:
            if len(self.practice.reasons) == 1:
                d.reason_id = self.practice.reasons[0].id
            else:
                return self._ask("reason", self.t["ask_reason"].format(options=self._reason_options()))
        if d.practitioner_id is None:
            seeing = self._practitioners_for(d.reason_id)
            if len(seeing) <= 1:
                d.practitioner_id = _ANY
            else:
                return self._ask(
                    "practitioner", self.t["ask_practitioner"].format(options=self._practitioner_options())
                )
        if d.when is None:
            return self._ask("when", self.t["ask_when"])
        return self._search_and_offer()

    def _search_and_offer(self) -> Reply:
        d = self.draft
        assert d.reason_id is not None and d.when is not None
        who = None if d.practitioner_id in (None, _ANY) else d.practitioner_id
        when = d.when
        later = False
        if when.earliest:
            # "au plus vite demain": the earliest slot, but not before the day named.
            slots = self.agenda.free_slots(d.reason_id, who, when.window_start, None, _OFFERS)
        else:
            slots = self.agenda.free_slots(
                d.reason_id, who, when.window_start, when.window_end, _OFFERS if when.exact is None else 12,
                accept=when.accepts,  # "mornings next week": not the afternoons of that week
            )
            if when.exact is not None:  # closest to the time asked for, then in order
                slots.sort(key=lambda s: abs((s.start - when.exact).total_seconds()))
                slots = sorted(slots[:_OFFERS], key=lambda s: s.start)
            if not slots:
                later = True
                slots = self.agenda.free_slots(d.reason_id, who, when.window_end, None, _OFFERS)
        if not slots:
            return Reply(self.t["no_slot"], None, end_call=True)
        d.offered = slots
        if len(slots) == 1:
            key = "offer_later_one" if later else "offer_one"
            text = self.t[key].format(option=self._offer_list(slots), description=when.description)
        else:
            key = "offer_later" if later else "offer"
            text = self.t[key].format(options=self._offer_list(slots), description=when.description)
        return self._ask("choice", text)

    def _choose(self, index: int) -> Reply:
        slot = self.draft.offered[index]
        self.draft.slot = slot
        d = self.draft
        if d.last_name and d.first_name and d.birth_date and d.phone:
            return self._readback()  # a new slot after losing one: the patient is known already
        text = self.t["ask_last_name"].format(slot=speakable.say_datetime(slot.start))
        return self._ask("last_name", text, question=self.t["ask_last_name_again"])

    def _ask_phone(self) -> Reply:
        if self.caller_id:
            text = self.t["ask_phone_callerid"].format(phone=speakable.say_phone(self.caller_id))
            return self._ask("phone", text)
        return self._ask("phone", self.t["ask_phone"])

    def _readback(self) -> Reply:
        d = self.draft
        assert d.slot and d.reason_id and d.birth_date and d.phone
        text = self.t["readback"].format(
            reason=self.practice.reason(d.reason_id).label,
            practitioner=self._doctor(d.slot),
            slot=speakable.say_datetime(d.slot.start),
            first_name=d.first_name,
            last_name=d.last_name,
            birth_date=speakable.say_date(d.birth_date),
            phone=speakable.say_phone(d.phone),
        )
        return self._ask("confirm", text, question=self.t["not_understood_confirm"])

    # -- wording helpers -------------------------------------------------------
    def _doctor(self, slot: Slot) -> str:
        return speakable.say_practitioner(self.practice.practitioner(slot.practitioner_id).display_name)

    def _practitioners_for(self, reason_id: str) -> list[str]:
        reason = self.practice.reason(reason_id)
        ids = [p.id for p in self.practice.practitioners]
        return [i for i in ids if not reason.practitioner_ids or i in reason.practitioner_ids]

    def _reason_options(self) -> str:
        return self._join([r.label for r in self.practice.reasons])

    def _practitioner_options(self) -> str:
        ids = self._practitioners_for(self.draft.reason_id) if self.draft.reason_id else None
        names = [p.display_name for p in self.practice.practitioners if ids is None or p.id in ids]
        return ", ".join(names)

    def _offer_list(self, slots: list[Slot]) -> str:
        names = [self.practice.practitioner(s.practitioner_id).display_name for s in slots]
        if len(set(names)) == 1:  # one doctor: name them once, not after every time
            times = speakable.say_slot_options([(s.start, "") for s in slots])
            return f"{times}, avec {speakable.say_practitioner(names[0])}"
        return speakable.say_slot_options([(s.start, name) for s, name in zip(slots, names, strict=True)])

    def _join(self, items: list[str]) -> str:
        if len(items) <= 1:
            return "".join(items)
        return f"{', '.join(items[:-1])} {self.t['or']} {items[-1]}"


def _only_greeting(text: str) -> bool:
    words = fold(text).split()
    return bool(words) and all(word in _GREETING_WORDS for word in words)
