"""Booking: reason, practitioner, when, two or three free slots, the choice.

Also the search a move uses: moving an appointment is choosing a new slot for
the same reason with the same practitioner.
"""

from __future__ import annotations

import re
from typing import Final

from appliance.agenda.slots import Slot
from appliance.dialogue import speakable
from appliance.dialogue.normalize import fold
from appliance.dialogue.patient import PatientSteps
from appliance.dialogue.reply import Book, Patient, Reply
from appliance.dialogue.understand import match_practitioner, match_reason, parse_choice, parse_when, parse_yes_no
from appliance.dialogue.understand import WhenPreference

OFFERS: Final = 3
_KEEP: Final = re.compile(r"\b(?:garde|gardons|garder|laisse|laissez|laisser|maintien\w*|tant pis|on oublie|je reste)\b")
ANY: Final = "any"


class BookingSteps(PatientSteps):
    # -- the questions -------------------------------------------------------
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
        if self._narrowed and parse_when(text, self.now) is None and parse_yes_no(text) is True:
            text = "le plus tôt possible"  # the narrowed question was "the earliest possible?"
        if self.purpose == "move" and parse_when(text, self.now) is None and _KEEP.search(fold(text)):
            return self._keep_appointment()
        self._absorb(text)
        if self.draft.when is None:
            return self._retry("not_understood_when")
        return self._search_and_offer() if self.purpose == "move" else self._next_booking_question()

    def _answer_choice(self, text: str) -> Reply:
        offered = self.draft.offered
        index = parse_choice(text, [slot.start for slot in offered])
        if index is not None and 0 <= index < len(offered):
            return self._choose(index)
        when = parse_when(text, self.now)
        doctor = match_practitioner(text, self.practice.practitioners) if self.purpose == "book" else None
        if doctor is not None and doctor != self.draft.practitioner_id:  # "plutôt le docteur Bernard"
            self.draft.practitioner_id = doctor
            self.draft.when = when or self.draft.when
            return self._search_and_offer()
        if when is not None:  # "plutôt jeudi": a new wish, search again
            self.draft.when = when
            return self._search_and_offer()
        if self.purpose == "move" and _KEEP.search(fold(text)):
            return self._keep_appointment()
        if parse_yes_no(text) is False:
            self.draft.when = None
            return self._ask("when", self.t["ask_other_time"], question=self.t["ask_when"])
        return self._retry("not_understood_choice", options=self._offer_list(offered))

    # -- for the prompt cache ----------------------------------------------------
    def booking_reply(
        self, reason_id: str | None = None, practitioner_id: str | None = None, when: WhenPreference | None = None
    ) -> Reply:
        """What the secretary says next on a booking with these details known: the
        reason or doctor question, or its offer of free slots. Public so that the
        prompt cache (``appliance.speech.prompt_cache``) has the day's offers
        synthesised in the secretary's own words before a caller asks."""
        self._start("book")
        self.draft.reason_id, self.draft.practitioner_id, self.draft.when = reason_id, practitioner_id, when
        return self._next_booking_question()

    # -- steps -----------------------------------------------------------------
    def _absorb(self, text: str) -> None:
        """Take every booking detail the caller gave, in whatever order they came."""
        d = self.draft
        if d.reason_id is None:
            d.reason_id = match_reason(text, self.practice.reasons)
        if d.practitioner_id is None:
            d.practitioner_id = match_practitioner(text, self.practice.practitioners)
        when = parse_when(text, self.now)
        if when is not None:  # the latest wish wins: "non, pas mardi, jeudi"
            d.when = when

    def _next_booking_question(self) -> Reply:
        d = self.draft
        if d.reason_id is None:
            if len(self.practice.reasons) == 1:
                d.reason_id = self.practice.reasons[0].id
            else:
                return self._ask("reason", self.t["ask_reason"].format(options=self._reason_options()))
        if d.practitioner_id is None:
            if len(self._practitioners_for(d.reason_id)) <= 1:
                d.practitioner_id = ANY
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
        who = None if d.practitioner_id in (None, ANY) else d.practitioner_id
        when = d.when
        later = False
        if when.earliest:
            # "au plus vite demain": the earliest slot, but not before the day named.
            slots = self.agenda.free_slots(d.reason_id, who, when.window_start, None, OFFERS)
        else:
            slots = self.agenda.free_slots(
                d.reason_id, who, when.window_start, when.window_end, OFFERS if when.exact is None else 12,
                accept=when.accepts,  # "mornings next week": not the afternoons of that week
            )
            if when.exact is not None:  # closest to the time asked for, then in order
                slots.sort(key=lambda s: abs((s.start - when.exact).total_seconds()))
                slots = sorted(slots[:OFFERS], key=lambda s: s.start)
            if not slots:
                later = True
                slots = self.agenda.free_slots(d.reason_id, who, when.window_end, None, OFFERS)
        if not slots:
            return self._no_slot()
        d.offered = slots
        if len(slots) == 1:
            key = "offer_later_one" if later else "offer_one"
            text = self.t[key].format(option=self._offer_list(slots), description=when.description)
        else:
            key = "offer_later" if later else "offer"
            text = self.t[key].format(options=self._offer_list(slots), description=when.description)
        return self._ask("choice", text)

    def _keep_appointment(self) -> Reply:  # pragma: no cover - defined by ExistingSteps
        raise NotImplementedError

    def _no_slot(self) -> Reply:  # pragma: no cover - the Secretary hands it to the staff
        raise NotImplementedError

    def _choose(self, index: int) -> Reply:
        slot = self.draft.offered[index]
        self.draft.slot = slot
        if self.purpose == "move":
            return self._move_readback()
        return self._ask_who(self.t["noted_slot"].format(slot=speakable.say_datetime(slot.start)))

    def _move_readback(self) -> Reply:  # pragma: no cover - defined by ExistingSteps
        raise NotImplementedError

    def _booking_readback(self) -> Reply:
        d, p = self.draft, self.person
        assert d.slot and d.reason_id and p.birth_date and p.phone
        text = self.t["readback"].format(
            reason=self.practice.reason(d.reason_id).label,
            practitioner=self._doctor(d.slot.practitioner_id),
            slot=speakable.say_datetime(d.slot.start),
            first_name=p.first_name,
            last_name=p.last_name,
            birth_date=speakable.say_date(p.birth_date),
            phone=speakable.say_phone(p.phone),
        )
        return self._ask("confirm", text, question=self.t["not_understood_confirm"])

    def _confirm_booking(self, answer: bool) -> Reply:
        if answer:
            d, p = self.draft, self.person
            assert d.slot and p.last_name and p.first_name and p.birth_date and p.phone
            return Reply("", "confirm", action=Book(d.slot, Patient(p.last_name, p.first_name, p.birth_date, p.phone)))
        self.draft.when, self.draft.slot, self.draft.offered = None, None, []
        return self._ask("when", self.t["restart_booking"], question=self.t["ask_when"])

    # -- wording ---------------------------------------------------------------
    def _practitioners_for(self, reason_id: str) -> list[str]:
        return [p.id for p in self.practice.practitioners_for(reason_id)]

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
            return f"{times}, {self.t['with']} {speakable.say_practitioner(names[0])}"
        return speakable.say_slot_options([(s.start, name) for s, name in zip(slots, names, strict=True)])
