"""CallSession: the only place that decides what happens next in a call.

Per turn: listen (VAD, end-pointer, ASR, or injected text) → the secretary
decides (emergency first) → perform its action (a booking: agenda + outbox in one
transaction) → speak (TTS sentence by sentence). Every step is a ``CallEvent``.

On a call offering several languages (``languages``), an early turn heard in
another offered language moves the secretary's words to it, then, once the
emergency check and any emergency action are done, the recognizer and the voice.

Latency of a turn = the trailing silence the end-pointer waited for (audio time)
+ the wall time from that decision to the first reply sample handed to the line.
On a real line both clocks run together; on a fast simulated line audio time runs
ahead, and this sum is what the caller would have waited.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from appliance.agenda.slots import Slot
from appliance.clock import Clock
from appliance.dialogue.conversation import has_templates
from appliance.dialogue.foreign_words import words_lean_towards
from appliance.dialogue.reply import Book, Cancel, Emergency, LeaveMessage, Move, Patient, Reply
from appliance.dialogue.secretary import Secretary
from appliance.errors import ApplianceError, SlotTaken, SpeechError
from appliance.events import (
    AppointmentBooked,
    AppointmentCancelled,
    AppointmentMoved,
    AssistantReplied,
    AudioOutEnded,
    AudioOutStarted,
    CallAnswered,
    CallEnded,
    CallerSilent,
    CallerSpeechEnded,
    CallerSpeechStarted,
    CallEvent,
    CallerBargedIn,
    CallFailed,
    DtmfReceived,
    EmergencyDetected,
    LanguageChanged,
    MessageLeft,
    TranscriptReady,
    TurnTimed,
)
from appliance.inbox import emergency_summary
from appliance.line.base import Call
from appliance.turns import Heard, HungUp, Listener, Pressed, Silent, Speaker, Turn

_LOGGER = logging.getLogger(__name__)
_SWITCH_TURNS: Final = 2
"""The caller's language is followed only in their first utterances: a French
caller's later "OK, thank you" must not turn the call into English."""


class LanguageSwitch(Protocol):
    """One call's languages (``appliance.speech.language`` builds it): switching
    moves the recognizer and the voice to another offered language."""

    @property
    def offered(self) -> tuple[str, ...]: ...

    @property
    def current(self) -> str: ...

    def switch(self, language: str) -> None: ...


class Booker(Protocol):
    """The write side of the agenda: one transaction for the appointment and its outbox row."""

    def book(self, slot: Slot, patient: Patient, call_id: str) -> int: ...

    def cancel(self, appointment_id: int, call_id: str) -> None: ...

    def move(self, appointment_id: int, slot: Slot, call_id: str) -> None: ...

    @property
    def awaits_cloud(self) -> bool:
        """Bookings go on to a cloud agenda, which has yet to confirm them."""
        ...


class Inbox(Protocol):
    """Where the staff find what a call left for them."""

    def leave(self, call_id: str, *, category: str, urgency: str, summary: str, transcript: str,
              patient: dict[str, Any] | None = None) -> int: ...


@dataclass
class TurnRecord:
    speaker: str  # "caller" | "assistant"
    text: str
    asr_text: str | None = None
    ask: str | None = None
    latency_ms: int | None = None


@dataclass
class CallResult:
    call_id: str
    outcome: str
    appointment_id: int | None
    emergency: Emergency | None
    turns: list[TurnRecord] = field(default_factory=list)
    events: list[CallEvent] = field(default_factory=list)


class CallSession:
    def __init__(
        self,
        call: Call,
        secretary: Secretary,
        listener: Listener,
        speaker: Speaker,
        booker: Booker,
        inbox: Inbox,
        clock: Clock,
        *,
        line_name: str,
        max_call_s: float = 600.0,
        on_event: Callable[[CallEvent], None] = lambda e: None,
        languages: LanguageSwitch | None = None,
    ) -> None:
        self.call = call
        self.secretary = secretary
        self.listener = listener
        self.speaker = speaker
        self.booker = booker
        self.inbox = inbox
        self.clock = clock
        self.line_name = line_name
        self.max_call_s = max_call_s
        self._on_event = on_event
        self.languages = languages
        """None: the call stays in the practice's language whatever the caller speaks."""
        self._utterances = 0
        self._t0 = clock.monotonic()
        self.result = CallResult(call.call_id, "abandoned", None, None)

    # -- events ---------------------------------------------------------------
    def at_ms(self, t: float | None = None) -> int:
        return round(((self.clock.monotonic() if t is None else t) - self._t0) * 1000)

    def emit(self, event: CallEvent) -> None:
        self.result.events.append(event)
        try:
            self._on_event(event)
        except Exception:  # an observer's bug must never end a patient's call
            _LOGGER.exception("event observer failed on %s", event.kind)

    # -- the call ---------------------------------------------------------------
    async def run(self) -> CallResult:
        self.emit(CallAnswered(0, self.call.caller_id, self.line_name))
        ended_by = "assistant"
        try:
            async with asyncio.timeout(self.max_call_s):
                ended_by = await self._converse()
        except TimeoutError:
            self.emit(CallFailed(self.at_ms(), "call-too-long", f"over {self.max_call_s:.0f} s"))
            ended_by = "line"
        except ApplianceError as err:
            _LOGGER.error("call %s failed: %s", self.call.call_id, err.code)
            self.emit(CallFailed(self.at_ms(), err.code, err.detail))
            ended_by = "line"
        except Exception as err:  # noqa: BLE001 - the call ends cleanly, whatever broke
            _LOGGER.exception("call %s crashed", self.call.call_id)
            self.emit(CallFailed(self.at_ms(), "internal-error", type(err).__name__))
            ended_by = "line"
        finally:
            if not self.call.ended:
                await self.call.hang_up()
        self.result.outcome = self.secretary.outcome
        self.emit(CallEnded(self.at_ms(), ended_by, self.result.outcome, self.call.end_reason))
        return self.result

    async def _converse(self) -> str:
        reply = self.secretary.greet()
        await self._speak(reply, heard_at=None)
        while True:
            if self.call.ended:
                return "caller"
            try:
                turn = await self.listener.listen(self.secretary.ask)
            except SpeechError as err:
                # One utterance the recogniser choked on is a "pardon ?", not the end of the call.
                self.emit(CallFailed(self.at_ms(), err.code, err.detail))
                turn = Heard(text="", decided_at=self.clock.monotonic())
            if isinstance(turn, HungUp):
                return "caller"
            self._record_turn(turn)
            started = self.clock.monotonic()
            language = self._language_to_follow(turn)
            if language is not None and language != self.secretary.spoken:
                # Its words only, a change of templates: the emergency check, in every
                # language, is still the first thing ``respond`` does.
                self.emit(LanguageChanged(self.at_ms(), language, self.secretary.spoken))
                self.secretary.switch_language(language)
            reply = await asyncio.to_thread(self.secretary.respond, turn)
            reply = await self._perform(reply)
            if language is not None:
                await self._switch_speech(language)  # recognizer and voice, before the reply is spoken
            dialogue_ms = round((self.clock.monotonic() - started) * 1000)
            await self._speak(reply, heard_at=turn, dialogue_ms=dialogue_ms)
            if reply.end_call:
                return "assistant"

    def _language_to_follow(self, turn: Turn) -> str | None:
        """The language the call should go on in, when this turn calls for a switch:
        an early utterance, in another offered language, whose words agree."""
        if self.languages is None or not isinstance(turn, Heard) or not turn.text.strip():
            return None
        self._utterances += 1
        language, current = turn.language, self.languages.current
        if language is None or language == current or self._utterances > _SWITCH_TURNS:
            return None
        if language not in self.languages.offered or not has_templates(language):
            return None  # a language the practice does not offer: the call stays in its own
        if not words_lean_towards(turn.text, language, rather_than=current):
            return None  # "Hello, je voudrais un rendez-vous" is a French call
        return language

    async def _switch_speech(self, language: str) -> None:
        assert self.languages is not None
        try:
            # May load a voice: a thread, never the loop that drains the line.
            await asyncio.to_thread(self.languages.switch, language)
        except Exception as err:  # noqa: BLE001 - the caller still hears the words, in the old voice
            _LOGGER.warning("call %s: the switch to %s failed: %s", self.call.call_id, language, type(err).__name__)
            self.emit(CallFailed(self.at_ms(), "language-switch-failed", f"{language}: {type(err).__name__}"))

    def transcript(self) -> str:
        """The conversation so far, as the staff read it in a message."""
        who = {"caller": "Appelant", "assistant": "Assistant"}
        return "\n".join(f"{who[t.speaker]} : {t.text}" for t in self.result.turns if t.text)

    def _record_turn(self, turn: Turn) -> None:
        match turn:
            case Heard(text=text, audio_s=audio_s, asr_ms=asr_ms, endpoint_s=endpoint_s):
                end_ms = self.at_ms(turn.decided_at) - round(endpoint_s * 1000)
                if turn.speech_started_at is not None:
                    self.emit(CallerSpeechStarted(self.at_ms(turn.speech_started_at)))
                if audio_s:
                    self.emit(CallerSpeechEnded(end_ms, round(audio_s * 1000)))
                self.emit(TranscriptReady(self.at_ms(), text, round(audio_s * 1000), asr_ms))
                self.result.turns.append(TurnRecord("caller", text, asr_text=text))
            case Pressed(digits=digits):
                for digit in digits:
                    self.emit(DtmfReceived(self.at_ms(), digit))
                self.result.turns.append(TurnRecord("caller", f"[{digits}]", asr_text=f"[{digits}]"))
            case Silent(after_s=after_s):
                self.emit(CallerSilent(self.at_ms(), round(after_s * 1000)))
                self.result.turns.append(TurnRecord("caller", ""))

    async def _perform(self, reply: Reply) -> Reply:
        """Do what the secretary decided, and tell it how it went. Its answer may
        carry an action of its own (a failed booking becomes a message for the
        staff); what was to be said before is kept in front."""
        said: list[str] = []
        for _ in range(3):  # book → failed → leave a message: never more than that
            if reply.action is None or isinstance(reply.action, Emergency):
                break
            if reply.text:
                said.append(reply.text)
            reply = await self._do(reply)
        if isinstance(reply.action, Emergency):
            await self._emergency(reply.action)
        if said:
            reply = Reply(" ".join([*said, reply.text]).strip(), reply.ask, reply.action, reply.end_call)
        return reply

    async def _emergency(self, action: Emergency) -> None:
        self.result.emergency = action
        self.emit(EmergencyDetected(self.at_ms(), action.category, action.phrase))
        # The staff must see it at once, not when the call ends.
        number = self.secretary.practice.emergency_number
        await asyncio.to_thread(
            self.inbox.leave,
            self.call.call_id,
            category="emergency",
            urgency="urgent",
            summary=emergency_summary(action.category, action.phrase, number),
            transcript=self.transcript(),
            patient={"phone": self.call.caller_id} if self.call.caller_id else None,
        )

    async def _do(self, reply: Reply) -> Reply:
        call_id = self.call.call_id
        match reply.action:
            case Book(slot=slot, patient=patient):
                try:
                    appointment_id = await asyncio.to_thread(self.booker.book, slot, patient, call_id)
                except SlotTaken:
                    return self.secretary.booking_failed(slot_taken=True)
                except ApplianceError as err:
                    self.emit(CallFailed(self.at_ms(), err.code, err.detail))
                    return self.secretary.booking_failed(slot_taken=False)
                self.result.appointment_id = appointment_id
                self.emit(AppointmentBooked(self.at_ms(), appointment_id, slot.practitioner_id, slot.reason_id,
                                            slot.start.isoformat()))
                return self.secretary.booked(appointment_id, awaits_cloud=self.booker.awaits_cloud)
            case Cancel(appointment_id=appointment_id):
                try:
                    await asyncio.to_thread(self.booker.cancel, appointment_id, call_id)
                except ApplianceError as err:
                    self.emit(CallFailed(self.at_ms(), err.code, err.detail))
                    return self.secretary.change_failed(slot_taken=False)
                self.result.appointment_id = appointment_id
                self.emit(AppointmentCancelled(self.at_ms(), appointment_id))
                return self.secretary.cancelled(awaits_cloud=self.booker.awaits_cloud)
            case Move(appointment_id=appointment_id, slot=slot):
                try:
                    await asyncio.to_thread(self.booker.move, appointment_id, slot, call_id)
                except SlotTaken:
                    return self.secretary.change_failed(slot_taken=True)
                except ApplianceError as err:
                    self.emit(CallFailed(self.at_ms(), err.code, err.detail))
                    return self.secretary.change_failed(slot_taken=False)
                self.result.appointment_id = appointment_id
                self.emit(AppointmentMoved(self.at_ms(), appointment_id, slot.practitioner_id, slot.start.isoformat()))
                return self.secretary.moved(awaits_cloud=self.booker.awaits_cloud)
            case LeaveMessage(category=category, urgency=urgency, summary=summary, patient=patient):
                try:
                    message_id = await asyncio.to_thread(
                        self.inbox.leave, call_id, category=category, urgency=urgency, summary=summary,
                        transcript=self.transcript(), patient=patient or None,
                    )
                except ApplianceError as err:
                    self.emit(CallFailed(self.at_ms(), err.code, err.detail))
                    return self.secretary.message_failed()
                self.emit(MessageLeft(self.at_ms(), message_id, category, urgency))
                return self.secretary.message_left()
        return reply

    async def _speak(self, reply: Reply, *, heard_at: Turn | None, dialogue_ms: int = 0) -> None:
        if not reply.text:
            return
        self.emit(AssistantReplied(self.at_ms(), reply.text, reply.ask))
        decided_at = getattr(heard_at, "decided_at", None)
        endpoint_s = getattr(heard_at, "endpoint_s", 0.0)
        latency: dict[str, Any] = {}
        synth_start = self.clock.monotonic()

        def first_audio() -> None:
            now = self.clock.monotonic()
            if decided_at is None:
                self.emit(AudioOutStarted(self.at_ms(now), None))
                return
            latency_ms = round((now - decided_at + endpoint_s) * 1000)
            latency["ms"] = latency_ms
            self.emit(AudioOutStarted(self.at_ms(now), latency_ms))
            asr_ms = getattr(heard_at, "asr_ms", 0)
            self.emit(
                TurnTimed(
                    self.at_ms(now),
                    latency_ms,
                    round(endpoint_s * 1000),
                    asr_ms,
                    dialogue_ms,
                    round((now - synth_start) * 1000),
                )
            )

        # Never cut: the greeting (it says the caller talks to an automated assistant),
        # what to do in an emergency, and a last reply (the call ends after it: words
        # that interrupted it would be heard by nobody).
        interruptible = heard_at is not None and not isinstance(reply.action, Emergency) and not reply.end_call
        spoken_ms = await self.speaker.say(reply.text, first_audio, interruptible=interruptible)
        self.result.turns.append(TurnRecord("assistant", reply.text, ask=reply.ask, latency_ms=latency.get("ms")))
        self.emit(AudioOutEnded(self.at_ms(), spoken_ms))
        if (barged := getattr(self.speaker, "barged_in", None)) is not None:
            self.emit(CallerBargedIn(self.at_ms(), barged.by, max(0, barged.heard_ms - barged.onset_ms)))
