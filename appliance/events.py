"""What happens during a call, as small frozen records.

Every stage of a call emits one of these; the session stores them with the call,
the simulate report and the benchmarks read them. They are recorded, never used
to decide what the box does next (DESIGN.md, rule 2). ``at_ms`` counts from the
moment the call was answered.

Privacy: events carry transcripts and names because the call log in the store is
the practice's record of the call. They are never written to the journal at INFO
(see ``appliance.system.logging``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol


@dataclass(frozen=True, slots=True)
class CallAnswered:
    kind: ClassVar[str] = "call_answered"
    at_ms: int
    caller_id: str | None  # None: withheld or unavailable
    line: str


@dataclass(frozen=True, slots=True)
class CallerSpeechStarted:
    kind: ClassVar[str] = "caller_speech_start"
    at_ms: int


@dataclass(frozen=True, slots=True)
class CallerSpeechEnded:
    kind: ClassVar[str] = "caller_speech_end"
    at_ms: int
    speech_ms: int


@dataclass(frozen=True, slots=True)
class TranscriptReady:
    kind: ClassVar[str] = "transcript"
    at_ms: int
    text: str
    audio_ms: int  # 0 when the caller's words were injected as text
    decode_ms: int


@dataclass(frozen=True, slots=True)
class DtmfReceived:
    kind: ClassVar[str] = "dtmf"
    at_ms: int
    digit: str  # "0"-"9", "*", "#"


@dataclass(frozen=True, slots=True)
class CallerSilent:
    kind: ClassVar[str] = "no_input"
    at_ms: int
    after_ms: int


@dataclass(frozen=True, slots=True)
class AssistantReplied:
    kind: ClassVar[str] = "reply"
    at_ms: int
    text: str
    ask: str | None  # the slot the assistant now waits for (README, "ask vocabulary")


@dataclass(frozen=True, slots=True)
class AudioOutStarted:
    kind: ClassVar[str] = "audio_out_start"
    at_ms: int
    latency_ms: int | None
    """End of the caller's speech to the first reply sample sent to the line; None for the greeting."""


@dataclass(frozen=True, slots=True)
class AudioOutEnded:
    kind: ClassVar[str] = "audio_out_end"
    at_ms: int
    audio_ms: int


@dataclass(frozen=True, slots=True)
class CallerBargedIn:
    """The caller talked over the box (or pressed a key) and its reply was stopped."""

    kind: ClassVar[str] = "barge_in"
    at_ms: int
    by: str  # "speech" or "key"
    reaction_ms: int
    """From the caller's onset to the decision to stop, in audio time."""


@dataclass(frozen=True, slots=True)
class Acknowledged:
    """The box said its "D'accord…" because the reply was slow to come (``appliance.acknowledgement``)."""

    kind: ClassVar[str] = "acknowledged"
    at_ms: int
    latency_ms: int
    """End of the caller's speech to the acknowledgement's first sample."""


@dataclass(frozen=True, slots=True)
class TurnTimed:
    kind: ClassVar[str] = "turn_timing"
    at_ms: int
    latency_ms: int
    endpoint_ms: int  # trailing silence the end-pointer waited for
    asr_ms: int
    dialogue_ms: int
    tts_first_ms: int  # time to the first sentence's audio


@dataclass(frozen=True, slots=True)
class AppointmentBooked:
    kind: ClassVar[str] = "booking"
    at_ms: int
    appointment_id: int
    practitioner_id: str
    reason_id: str
    start: str  # ISO 8601 with offset


@dataclass(frozen=True, slots=True)
class AppointmentCancelled:
    kind: ClassVar[str] = "cancellation"
    at_ms: int
    appointment_id: int


@dataclass(frozen=True, slots=True)
class AppointmentMoved:
    kind: ClassVar[str] = "reschedule"
    at_ms: int
    appointment_id: int
    practitioner_id: str
    start: str  # the new start, ISO 8601 with offset


@dataclass(frozen=True, slots=True)
class MessageLeft:
    """A message for the staff is in the inbox (its words are in the store, not here)."""

    kind: ClassVar[str] = "message"
    at_ms: int
    message_id: int
    category: str
    urgency: str


@dataclass(frozen=True, slots=True)
class EmergencyDetected:
    kind: ClassVar[str] = "emergency"
    at_ms: int
    category: str
    phrase: str


@dataclass(frozen=True, slots=True)
class LanguageChanged:
    """The caller speaks another offered language: recognition, voice and words follow it."""

    kind: ClassVar[str] = "language"
    at_ms: int
    language: str  # "de", "en"... what the call is in from now on
    previous: str


@dataclass(frozen=True, slots=True)
class CallEnded:
    kind: ClassVar[str] = "hangup"
    at_ms: int
    by: str  # "caller" | "assistant" | "line"
    outcome: str
    reason: str = ""  # the line's own word for the end (``Call.end_reason``): "dial_tone", "loop_drop"...


@dataclass(frozen=True, slots=True)
class CallFailed:
    kind: ClassVar[str] = "error"
    at_ms: int
    code: str  # a stable ApplianceError code
    detail: str


CallEvent = (
    CallAnswered
    | CallerSpeechStarted
    | CallerSpeechEnded
    | TranscriptReady
    | DtmfReceived
    | CallerSilent
    | AssistantReplied
    | AudioOutStarted
    | AudioOutEnded
    | Acknowledged
    | CallerBargedIn
    | TurnTimed
    | AppointmentBooked
    | AppointmentCancelled
    | AppointmentMoved
    | MessageLeft
    | EmergencyDetected
    | LanguageChanged
    | CallEnded
    | CallFailed
)


def event_to_dict(event: CallEvent) -> dict[str, Any]:
    """``{"kind": ..., "at_ms": ..., <fields>}`` for the store and JSON reports."""
    return {"kind": event.kind, **dataclasses.asdict(event)}


class EventSink(Protocol):
    def __call__(self, event: CallEvent) -> None: ...
