"""An appointment the caller already has: cancel it, move it, or hear it again.

Found by last name AND date of birth, never by the name alone: the agenda is
asked for the appointments of patients born that day, and the name the caller
gave must be close to the booked one (recognition turns "Dupont" into
"Dupond"; it does not turn it into "Martin"). Nothing changes before a
read-back the caller has said yes to.
"""

from __future__ import annotations

from difflib import SequenceMatcher
from typing import TYPE_CHECKING, Final

from appliance.dialogue import speakable
from appliance.dialogue.booking import BookingSteps
from appliance.dialogue.normalize import fold
from appliance.dialogue.reply import Cancel, Move, Reply
from appliance.dialogue.understand import parse_choice, parse_when

if TYPE_CHECKING:
    from appliance.store.appointments import Appointment

_NAME_LIKENESS: Final = 0.75  # "dupond" ~ "dupont" 0.83, "martin" ~ "dupont" 0.17
_MAX_LISTED: Final = 3
_MAX_MISSES: Final = 2  # the name is asked again once, then the staff take over


def same_name(heard: str, booked: str) -> bool:
    a, b = fold(heard).replace(" ", ""), fold(booked).replace(" ", "")
    return bool(a and b) and (a == b or SequenceMatcher(None, a, b).ratio() >= _NAME_LIKENESS)


class ExistingSteps(BookingSteps):
    def _look_up(self) -> Reply:
        p = self.person
        assert p.last_name and p.birth_date
        found = [a for a in self.agenda.upcoming_for(p.birth_date) if same_name(p.last_name, a.patient_last_name)]
        self.change.found = found[:_MAX_LISTED]
        if not found:
            return self._nothing_found()
        if len(found) == 1:
            return self._about(found[0])
        options = self._join([self._appointment_words(a) for a in self.change.found])
        key = {"cancel": "found_several_cancel", "move": "found_several_move"}.get(self.purpose or "", "found_several_check")
        return self._ask("appointment", self.t[key].format(count=str(len(found)), options=options))

    def _nothing_found(self) -> Reply:
        p = self.person
        assert p.last_name and p.birth_date
        self.change.misses += 1
        nothing = self.t["no_appointment_found"].format(last_name=p.last_name, birth_date=speakable.say_date(p.birth_date))
        if self.change.misses < _MAX_MISSES:
            p.last_name, p.birth_date = None, None
            return self._ask("last_name", f"{nothing} {self.t['lookup_again']}", question=self.t["ask_last_name_again"])
        # Booked online or by the staff under another spelling: a person sorts it out.
        return self._start_handover("why_not_found", f"{nothing} {self.t['will_pass_on']}")

    def _start_handover(self, why: str, lead: str) -> Reply:  # pragma: no cover - the Secretary's
        raise NotImplementedError

    def _answer_appointment(self, text: str) -> Reply:
        found = self.change.found
        index = parse_choice(text, [a.start for a in found])
        if index is None:
            when = parse_when(text, self.now)
            if when is not None:
                matching = [i for i, a in enumerate(found) if when.accepts(a.start)]
                index = matching[0] if len(matching) == 1 else None
        if index is None or not 0 <= index < len(found):
            options = self._join([self._appointment_words(a) for a in found])
            return self._retry("not_understood_appointment", options=options)
        return self._about(found[index])

    def _about(self, appointment: Appointment) -> Reply:
        self.change.target = appointment
        words = self._appointment_words(appointment)
        if self.purpose == "cancel":
            return self._ask("confirm", self.t["confirm_cancel"].format(appointment=words),
                             question=self.t["not_understood_confirm_cancel"])
        if self.purpose == "move":
            # The same visit with the same practitioner, at another time.
            self.draft.reason_id = appointment.reason_id
            self.draft.practitioner_id = appointment.practitioner_id
            self.draft.when = None
            return self._ask("when", self.t["ask_when_move"].format(appointment=words), question=self.t["ask_when"])
        self._settle("answered")
        return self._ask("anything_else", self.t["your_appointment"].format(appointment=words),
                         question=self.t["ask_anything_else"])

    def _move_readback(self) -> Reply:
        target, slot = self.change.target, self.draft.slot
        assert target is not None and slot is not None
        text = self.t["confirm_move"].format(
            old=speakable.say_datetime(target.start),
            new=speakable.say_datetime(slot.start),
            practitioner=self._doctor(slot.practitioner_id),
        )
        return self._ask("confirm", text, question=self.t["not_understood_confirm_move"])

    def _keep_appointment(self) -> Reply:
        target = self.change.target
        assert target is not None
        self.purpose = None
        text = self.t["change_dropped"].format(appointment=self._appointment_words(target))
        return self._ask("anything_else", f"{text} {self.t['ask_anything_else']}", question=self.t["ask_anything_else"])

    def _confirm_change(self, answer: bool) -> Reply:
        target = self.change.target
        assert target is not None
        if not answer:
            return self._keep_appointment()
        if self.purpose == "cancel":
            return Reply("", "confirm", action=Cancel(target.id))
        assert self.draft.slot is not None
        return Reply("", "confirm", action=Move(target.id, self.draft.slot))

    def _appointment_words(self, appointment: Appointment) -> str:
        return self.t["appointment_words"].format(
            slot=speakable.say_datetime(appointment.start), practitioner=self._doctor(appointment.practitioner_id)
        )
