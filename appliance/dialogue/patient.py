"""Who the call is about: last name, first name, date of birth, a phone number.

Only these four are ever asked (data minimisation), and only those the purpose
needs: finding an appointment takes the last name and the date of birth (never
the name alone); a booking and a message take all four.
"""

from __future__ import annotations

import re
from typing import Final

from appliance.dialogue import speakable
from appliance.dialogue.conversation import Conversation
from appliance.dialogue.identity import parse_birth_date, parse_person_name, parse_phone
from appliance.dialogue.normalize import fold
from appliance.dialogue.reply import Reply
from appliance.dialogue.understand import parse_yes_no


_PHONE_WORDS: Final = re.compile(r"\b(?:numero|telephone|portable|fixe|joindre|joignable)\b")
_BIRTH_WORDS: Final = re.compile(r"\b(?:date de naissance|naissance|ne le|nee le|ne en|nee en)\b")
_FIRST_NAME_WORDS: Final = re.compile(r"\bprenom\b")
_LAST_NAME_WORDS: Final = re.compile(r"\b(?:nom|nom de famille|orthographe|s ecrit|epele)\b")


class PatientSteps(Conversation):
    def _ask_who(self, lead: str = "") -> Reply:
        """Ask for the first detail still missing, or go on with the purpose."""
        p = self.person
        if self.purpose == "handover":  # the staff call back: a number is all that is needed
            return self._ask_phone(lead) if p.phone is None else self._after_who()
        lookup = self.purpose in ("cancel", "move", "check")
        if p.last_name is None:
            key = "ask_last_name_lookup" if lookup else "ask_last_name_plain"
            return self._ask("last_name", f"{lead} {self.t[key]}".strip(), question=self.t["ask_last_name_again"])
        if p.first_name is None and not lookup:
            return self._ask("first_name", f"{lead} {self.t['ask_first_name']}".strip())
        if p.birth_date is None:
            return self._ask("birth_date", f"{lead} {self.t['ask_birth_date']}".strip())
        if p.phone is None and not lookup:
            if self.caller_id:
                # The number the call comes from: said in the read-back, where the
                # caller corrects it if it is not the right one (one question less).
                p.phone = self.caller_id
            else:
                return self._ask_phone(lead)
        return self._after_who()

    def _correct_who(self, text: str) -> Reply | None:
        """ "Non, le numéro c'est le 06 …", "non, mon nom c'est Dupond": the detail
        the caller corrects at a read-back is asked again (or taken as said), the
        rest is kept. None when the words name no detail of the who."""
        words = fold(text)
        p = self.person
        if _PHONE_WORDS.search(words) or parse_phone(text):
            phone = parse_phone(text)
            if phone is None:
                p.phone = ""  # not that number: ask for the right one
                return self._ask("phone", self.t["ask_phone"])
            p.phone = phone
            return self._ask_who()
        if _BIRTH_WORDS.search(words):
            born = parse_birth_date(text, self.now)
            p.birth_date = born
            return self._ask_who() if born else self._ask("birth_date", self.t["ask_birth_date"])
        if _FIRST_NAME_WORDS.search(words):
            p.first_name = None
            return self._ask("first_name", self.t["ask_first_name_again"])
        if _LAST_NAME_WORDS.search(words):
            p.last_name = None
            return self._ask("last_name", self.t["ask_last_name_again"])
        return None

    def _after_who(self) -> Reply:  # pragma: no cover - the Secretary routes by purpose
        raise NotImplementedError

    def _answer_last_name(self, text: str) -> Reply:
        name = parse_person_name(text)
        if name is None:
            return self._retry("ask_last_name_again")
        self.person.last_name = name
        return self._ask_who()

    def _answer_first_name(self, text: str) -> Reply:
        name = parse_person_name(text)
        if name is None:
            return self._retry("ask_first_name_again")
        self.person.first_name = name
        return self._ask_who()

    def _answer_birth_date(self, text: str) -> Reply:
        born = parse_birth_date(text, self.now)
        if born is None:
            return self._retry("ask_birth_date_again")
        self.person.birth_date = born
        return self._ask_who()

    def _answer_phone(self, text: str) -> Reply:
        p = self.person
        phone = parse_phone(text)
        if phone is None and self.caller_id and p.phone is None:
            answer = parse_yes_no(text)
            if answer is True:
                phone = self.caller_id
            elif answer is False:
                p.phone = ""  # the caller ID was declined: ask for another number
                return self._ask("phone", self.t["ask_phone"])
        if phone is None:
            return self._retry("ask_phone_again")
        p.phone = phone
        return self._ask_who()

    def _ask_phone(self, lead: str = "") -> Reply:
        if self.caller_id and self.person.phone is None:
            text = self.t["ask_phone_callerid"].format(phone=speakable.say_phone(self.caller_id))
        else:
            text = self.t["ask_phone"]
        return self._ask("phone", f"{lead} {text}".strip())
