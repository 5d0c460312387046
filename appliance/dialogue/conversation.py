"""What every part of the secretary shares: the call's state and how it asks.

The secretary is split by what it does for the caller (``booking``,
``existing`` for cancel/move, ``staff_message``, ``patient`` for the who-is-it
questions); each part is a mixin over this base, so that one call's state stays
one explicit object: what is being done (``purpose``), what was asked last
(``ask``), and the drafts filled so far.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Final, Protocol

from appliance.agenda.practice import Practice
from appliance.agenda.slots import Slot
from appliance.dialogue import speakable
from appliance.dialogue.identity import parse_phone
from appliance.dialogue.reply import Reply
from appliance.dialogue.understand import WhenPreference

if TYPE_CHECKING:
    from appliance.store.appointments import Appointment

MAX_RETRIES: Final = 3
"""Failed answers to one question: re-asked, then narrowed, then handed to the staff."""

# The headline of a call, when several things happened: an emergency stays an
# emergency whatever followed; a change to the agenda says more than a message.
_OUTCOME_RANK: Final = {"emergency": 5, "booked": 4, "rescheduled": 4, "cancelled": 4, "message": 3,
                        "answered": 2, "transferred": 2, "abandoned": 0}


@cache
def templates(language: str = "fr") -> dict[str, str]:
    text = resources.files("appliance.dialogue").joinpath(f"templates/{language}.toml").read_text("utf-8")
    return tomllib.loads(text)


def has_templates(language: object) -> bool:
    """Whether the dialogue can speak ``language`` (a ``templates/<language>.toml`` exists)."""
    if not isinstance(language, str) or not language.isalpha():
        return False
    return resources.files("appliance.dialogue").joinpath(f"templates/{language}.toml").is_file()


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

    def upcoming_for(self, birth_date: date) -> list[Appointment]:
        """Booked appointments from now on of patients born that day (the name is
        compared by the secretary, tolerant to recognition errors)."""
        ...


class Helper(Protocol):
    """The optional language-model helper (``appliance.llm.helper``); None = off."""

    def intent(self, text: str) -> str | None: ...


@dataclass
class BookingDraft:
    reason_id: str | None = None
    practitioner_id: str | None = None  # an id, or "any"
    when: WhenPreference | None = None
    offered: list[Slot] = field(default_factory=list)
    slot: Slot | None = None


@dataclass
class ChangeDraft:
    """An existing appointment being cancelled, moved or read out."""

    found: list[Appointment] = field(default_factory=list)
    target: Appointment | None = None
    misses: int = 0  # lookups that found nothing


@dataclass
class MessageDraft:
    category: str | None = None  # prescription, certificate, sick_note, results, admin, callback, other
    detail: str | None = None  # what, in the caller's words
    first_words: str = ""  # the sentence that started the request (for the urgency rules)
    why: str = ""  # why the box hands over, when it does ("not understood", "no appointment found")


@dataclass
class PersonDraft:
    """Who the call is about, as far as the caller has told."""

    last_name: str | None = None
    first_name: str | None = None
    birth_date: date | None = None
    phone: str | None = None  # "" once the caller declined the caller ID

    def record(self, phone: str | None) -> dict[str, str]:
        """What a message keeps of the patient: the details known, the number to call back."""
        known = (("last_name", self.last_name), ("first_name", self.first_name),
                 ("birth_date", self.birth_date.isoformat() if self.birth_date else None), ("phone", phone))
        return {key: value for key, value in known if value}


@dataclass
class Conversation:
    """State and asking discipline; the dialogue itself lives in the mixins."""

    practice: Practice
    agenda: AgendaView
    now: datetime
    caller_id: str | None
    language: str = "fr"
    helper: Helper | None = None
    t: dict[str, str] = field(init=False)
    ask: str | None = field(init=False, default=None)
    purpose: str | None = field(init=False, default=None)  # book | cancel | move | check | message
    person: PersonDraft = field(init=False, default_factory=PersonDraft)
    draft: BookingDraft = field(init=False, default_factory=BookingDraft)
    change: ChangeDraft = field(init=False, default_factory=ChangeDraft)
    message: MessageDraft = field(init=False, default_factory=MessageDraft)
    outcome: str = field(init=False, default="abandoned")
    appointment_id: int | None = field(init=False, default=None)
    _retries: int = field(init=False, default=0)
    _silences: int = field(init=False, default=0)
    _last_question: str = field(init=False, default="")
    _minimisation_said: bool = field(init=False, default=False)
    _emergency_kind: str = field(init=False, default="")
    _emergency_repeats: int = field(init=False, default=0)
    _last_urgency: str = field(init=False, default="days")
    caller_digits: str | None = field(init=False, default=None)
    """The caller ID whatever its country, as a French number or "00" + digits
    ("+49 151 …" → "0049151…"); ``caller_id`` keeps French numbers only."""

    def __post_init__(self) -> None:
        self.t = templates(self.language)
        raw = self.caller_id if isinstance(self.caller_id, str) else ""
        self.caller_id = parse_phone(raw) if raw else None
        digits = "".join(c for c in raw if c.isdigit())
        international = ("00" + digits if raw.strip().startswith("+") else digits) if digits else None
        self.caller_digits = self.caller_id or international

    def _start(self, purpose: str | None) -> None:
        """A new request: what the caller asked before no longer applies (a caller
        who booked for a child and now asks for their own renewal is asked again)."""
        self.purpose = purpose
        self.person = PersonDraft()
        self.draft = BookingDraft()
        self.change = ChangeDraft()
        self.message = MessageDraft()

    # -- asking -----------------------------------------------------------------
    def _ask(self, ask: str, text: str, *, question: str | None = None) -> Reply:
        if ask != self.ask:
            self._retries = 0
        self.ask = ask
        self._last_question = question or text
        return Reply(text, ask)

    def _retry(self, key: str, **values: str) -> Reply:
        """The answer did not fit: say it in other words; after ``MAX_RETRIES``
        the staff take over (``_hand_over``), so nobody is stuck in a loop."""
        self._retries += 1
        if self._retries >= MAX_RETRIES:
            return self._hand_over()
        if self._retries == MAX_RETRIES - 1 and f"{key}_narrow" in self.t:
            key = f"{key}_narrow"  # the last try is a question answered by yes or no
        return Reply(self.t[key].format(**values), self.ask)

    @property
    def _narrowed(self) -> bool:
        """The question now waiting is the narrowed, yes-or-no one."""
        return self._retries == MAX_RETRIES - 1

    def _hand_over(self) -> Reply:  # pragma: no cover - the Secretary defines it
        raise NotImplementedError

    def _settle(self, outcome: str) -> None:
        if _OUTCOME_RANK[outcome] >= _OUTCOME_RANK.get(self.outcome, 0):
            self.outcome = outcome

    # -- wording ------------------------------------------------------------------
    def _doctor(self, practitioner_id: str) -> str:
        return speakable.say_practitioner(self.practice.practitioner(practitioner_id).display_name)

    def _join(self, items: list[str]) -> str:
        if len(items) <= 1:
            return "".join(items)
        return f"{', '.join(items[:-1])} {self.t['or']} {items[-1]}"
