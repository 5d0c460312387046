"""What the dialogue hands back to the call session: words, the next ask, an action."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Final

from appliance.agenda.slots import Slot

ASKS: Final = (
    "request",  # the opening "what can I do for you?"
    "reason",
    "practitioner",
    "when",
    "choice",
    "last_name",
    "first_name",
    "birth_date",
    "phone",
    "confirm",
    "message",
    "appointment",  # which of the caller's appointments
    "emergency",  # after an emergency cue: only the instruction, again
    "anything_else",
)
"""The ask vocabulary: what the assistant waits for after a reply (a public contract, README)."""


@dataclass(frozen=True, slots=True)
class Patient:
    last_name: str
    first_name: str
    birth_date: date
    phone: str


@dataclass(frozen=True, slots=True)
class Book:
    slot: Slot
    patient: Patient


@dataclass(frozen=True, slots=True)
class Cancel:
    appointment_id: int


@dataclass(frozen=True, slots=True)
class Move:
    appointment_id: int
    slot: Slot


@dataclass(frozen=True, slots=True)
class LeaveMessage:
    """A request for the staff; the call session adds the transcript."""

    category: str
    urgency: str  # urgent | days | routine
    summary: str
    patient: dict[str, str]


@dataclass(frozen=True, slots=True)
class Emergency:
    category: str
    phrase: str


Action = Book | Cancel | Move | LeaveMessage | Emergency


@dataclass(frozen=True, slots=True)
class Reply:
    text: str
    ask: str | None
    action: Action | None = None
    end_call: bool = False

    def __post_init__(self) -> None:
        if self.ask is not None and self.ask not in ASKS:
            raise ValueError(f"unknown ask {self.ask!r}")
