"""Composition root: builds the box from its ``Config`` and answers calls.

``Appliance`` owns the store, the practice, the agenda and the loaded models, and
turns each answered call into a ``CallSession`` with the right listener and
speaker. ``appliance run`` serves a line with it; ``appliance simulate`` places
one scripted call through it, in the same process.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Final

import numpy as np

from appliance.acknowledgement import Acknowledgement, AcknowledgingSpeaker
from appliance.agenda.local import LocalAgenda
from appliance.bargein import BargeInSettings, BargeInWatch, SharedInbound
from appliance.answering import AnsweringPolicy
from appliance.agenda.practice import Practice, resolve_practice
from appliance.call import CallResult, CallSession
from appliance.clock import Clock, SystemClock
from appliance.config import Config
from appliance.dialogue.secretary import Secretary
from appliance.dialogue.conversation import templates
from appliance.errors import ApplianceError, LineError
from appliance.events import Acknowledged, CallEvent, MessageLeft, event_to_dict
from appliance.inbox import LocalInbox
from appliance.line.base import Call, IncomingCall, LineDriver
from appliance.line.sim.line import SimCall
from appliance.speech.language import LanguageSwitch
from appliance.speech.loading import SpeechModels
from appliance.speech.tts import to_line_frames
from appliance.llm.helper import DialogueHelper, NoHelper, open_helper
from appliance.store import Store, appointments, queries
from appliance.store.inbox import add_summary_note
from appliance.sync.adapter import AgendaAdapter
from appliance.sync.factory import open_adapter
from appliance.sync.worker import ConflictSms, OutboxWorker
from appliance.system.watchdog import BeatingCall, Heartbeat
from appliance.turns import AudioListener, AudioSpeaker, Listener, Speaker, TextListener, TextSpeaker

_LOGGER = logging.getLogger(__name__)
_CHOICE_WORDS: Final = ("premier", "deuxième", "troisième", "dernier")
_WHEN_WORDS: Final = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "matin", "après-midi", "demain")


class Appliance:
    def __init__(
        self,
        config: Config,
        *,
        clock: Clock | None = None,
        speech: SpeechModels | None = None,
        practice_base: Path | None = None,
    ) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self.speech = speech
        config.data_dir.mkdir(parents=True, exist_ok=True)
        self.practice: Practice = resolve_practice(config.practice, practice_base)
        self.store = Store.open(config.db_path, clock=self.clock)
        with self.store.transaction() as tx:
            queries.save_practice(tx, self.practice)
        if self.practice.id == "demo":
            # The demo practice comes with a realistic agenda around "now".
            appointments.seed_appointments(self.store, self.practice, self.clock.now())
        config.sync.check_practice(tuple(p.id for p in self.practice.practitioners))
        self.cloud: AgendaAdapter | None = open_adapter(config.sync)
        self.agenda = LocalAgenda(self.store, self.practice, self.clock, awaits_cloud=self.cloud is not None)
        self.inbox = LocalInbox(self.store, self.clock)
        self.answering = AnsweringPolicy(config.answering, self.practice)
        self._practice_base = practice_base
        # Off, or gated by this box's own qualification of its model (``appliance.llm``).
        self.helper: DialogueHelper = open_helper(config, self.store)
        # Calls in progress show life here; systemd's watchdog is fed only while they do.
        self.heartbeat = Heartbeat(self.clock.monotonic)
        self._ack_frames = self._acknowledgement_frames()

    def reload(self, config: Config) -> list[str]:
        """Take a changed configuration for the next calls; returns what needs a restart.

        A call in progress keeps the practice, agenda and settings it started with
        (its session holds them); only calls answered afterwards see the change.
        The line, the models, the data directory and the cloud agenda connection
        are opened once at start: a change there is reported, not applied.
        """
        practice = resolve_practice(config.practice, self._practice_base)
        config.sync.check_practice(tuple(p.id for p in practice.practitioners))
        with self.store.transaction() as tx:
            queries.save_practice(tx, practice)
        needs_restart = [
            name for name in ("line", "data_dir", "models", "sync", "web")
            if getattr(config, name) != getattr(self.config, name)
        ]
        if config.speech.languages != self.config.speech.languages:
            needs_restart.append("speech.languages")  # each language's voice is loaded at start
        self.practice = practice
        self.agenda = LocalAgenda(self.store, practice, self.clock, awaits_cloud=self.cloud is not None)
        self.answering = AnsweringPolicy(config.answering, practice)
        self.config = config
        _LOGGER.info("configuration reloaded for the next calls%s",
                     f"; restart needed for: {', '.join(needs_restart)}" if needs_restart else "")
        return needs_restart

    def outbox_worker(self, *, sms: ConflictSms | None = None) -> OutboxWorker | None:
        """The worker that keeps the cloud agenda in step; None without one."""
        if self.cloud is None:
            return None
        return OutboxWorker(self.store, self.cloud, self.practice, self.clock, self.config.sync.outbox, sms=sms)

    def close(self) -> None:
        close = getattr(self.cloud, "close", None)
        if close is not None:
            close()
        self.store.close()

    async def serve(self, line: LineDriver) -> None:
        """Answer every call on ``line``, each in its own task, until the line closes."""
        calls: set[asyncio.Task[None]] = set()
        try:
            async for incoming in line.incoming():
                task = asyncio.create_task(self._answer_isolated(incoming, line.name))
                calls.add(task)
                task.add_done_callback(calls.discard)
        finally:
            # The line is gone (or we are stopping): end the calls still running on it.
            for task in calls:
                task.cancel()
            await asyncio.gather(*calls, return_exceptions=True)

    async def _answer_isolated(self, incoming: IncomingCall, line_name: str) -> None:
        # One call's failure (a broken store write) must never reach the others,
        # nor stop the line: it is logged and the line keeps answering.
        try:
            if await self.answering.take(incoming, self.clock.now()):
                await self.answer(incoming, line_name=line_name, watched=True)
        except LineError as err:  # the caller gave up as the box picked up, the modem balked
            _LOGGER.warning("a call could not be answered: %s", err.detail)
        except Exception:
            _LOGGER.exception("a call could not be handled")

    async def answer(
        self,
        incoming: IncomingCall,
        *,
        line_name: str,
        text_mode: bool = False,
        on_event: Callable[[CallEvent], None] = lambda e: None,
        watched: bool = False,
    ) -> CallResult:
        """Take one call to its end. A ``watched`` call (a phone call, not a test call
        waiting for someone to type) beats the heartbeat systemd's watchdog relies on."""
        call: Call = await incoming.answer()
        if watched:
            call = BeatingCall(call, self.heartbeat)  # type: ignore[assignment]
        try:
            return await self._take(call, line_name=line_name, text_mode=text_mode, on_event=on_event)
        finally:
            if isinstance(call, BeatingCall):
                call.finished()

    async def _take(
        self, call: Call, *, line_name: str, text_mode: bool, on_event: Callable[[CallEvent], None]
    ) -> CallResult:
        started = self.clock.now()
        await asyncio.to_thread(queries.insert_call, self.store, call.call_id, started, call.caller_id, line_name)
        listener, speaker, languages = self._ears_and_voice(call, text_mode)
        acknowledgement = None
        if isinstance(listener, AudioListener) and self._ack_frames:
            main_language = self.config.speech.language
            acknowledgement = Acknowledgement(
                call, self._ack_frames, self.clock,
                on_played=lambda waited_s: session.emit(Acknowledged(session.at_ms(), round(waited_s * 1000))),
                # Made in the main language: a caller switched to another hears none.
                active=lambda: languages is None or languages.current == main_language,
            )
            listener.when_turn_ends(acknowledgement.turn_ended)
            speaker = AcknowledgingSpeaker(speaker, acknowledgement)
        secretary = Secretary(self.practice, self.agenda, started, call.caller_id, self.config.speech.language,
                              helper=self.helper if not isinstance(self.helper, NoHelper) else None)
        session = CallSession(
            call,
            secretary,
            listener,
            speaker,
            self.agenda,
            self.inbox,
            self.clock,
            line_name=line_name,
            max_call_s=self.config.speech.max_call_s,
            on_event=on_event,
            languages=languages,
        )
        try:
            result = await session.run()
        finally:
            if acknowledgement is not None:
                acknowledgement.close()
        await asyncio.to_thread(self._record, call.call_id, result)
        # After the caller has gone: the model's words never delay an answer.
        await asyncio.to_thread(self._add_summaries, result, session.transcript(), secretary.t)
        _LOGGER.info("call %s ended: %s, %d turns", call.call_id, result.outcome, len(result.turns))
        return result

    def _ears_and_voice(self, call: Call, text_mode: bool) -> tuple[Listener, Speaker, LanguageSwitch | None]:
        """The call's listener and speaker, and its language switch when the practice
        offers several languages (None: the call stays in the main language)."""
        speech = self.config.speech
        offered = tuple(speech.languages or (speech.language,))
        if text_mode:
            if not isinstance(call, SimCall):
                raise TypeError("text mode exists only on the simulated line")
            # Typed words have no accent to detect: the switch only changes what the dialogue speaks.
            switch = LanguageSwitch(offered, speech.language) if len(offered) > 1 else None
            return TextListener(call, self.clock), TextSpeaker(), switch
        if self.speech is None:
            raise RuntimeError("audio calls need the speech models loaded")
        # Per call: the recognizer detects the caller's language on the first
        # utterances, the voice follows the switch; one language = the shared ones.
        recognizer, voice, switch = self.speech.for_call()
        # One reader of the line for both: the speaker hears a caller talking over
        # it (barge-in) and hands their first words to the listener.
        inbound = SharedInbound(call.inbound())
        listener = AudioListener(
            call,
            self.speech.new_vad(),
            recognizer,
            self.clock,
            speech.endpoint,
            vocabulary=self._hotwords,
            inbound=inbound,
        )
        watch = BargeInWatch(inbound, self.speech.new_vad(threshold=BargeInSettings().vad_threshold))
        speaker = AudioSpeaker(call, voice, barge_in=watch)
        return listener, speaker, switch if len(switch.offered) > 1 else None

    def _acknowledgement_frames(self) -> list[np.ndarray]:
        """The "D'accord…" a slow reply is preceded by, as line frames; made once, at start
        (the prompt cache usually has it). Without it the box simply says nothing meanwhile."""
        if self.speech is None:
            return []
        try:
            pcm = self.speech.phrase(templates(self.config.speech.language)["acknowledge"])
        except ApplianceError as err:
            _LOGGER.warning("no acknowledgement phrase: %s", err.detail)
            return []
        return to_line_frames(pcm, self.speech.synthesizer.sample_rate)

    def _hotwords(self, ask: str | None) -> tuple[str, ...]:
        """Words this practice's callers are likely to say now, to bias Whisper towards.

        Only where measured to help: weekdays after "when" (Whisper base hears
        "jeudi matin" as "joli matin" without them), ordinals after an offer,
        doctors' names when asked which doctor. Biasing every answer made others
        worse ("c'est parfait" became "c'est pas faire", "grippe" "grite").
        """
        doctors = tuple(p.last_name for p in self.practice.practitioners)
        match ask:
            case "when":
                return _WHEN_WORDS
            case "choice":  # "le deuxième" is heard as "l'automne" without them
                return _CHOICE_WORDS
            case "request" | "practitioner":  # "docteur Martin" is heard as "Dr. Master" without
                return ("docteur", *doctors)
        return ()

    def _record(self, call_id: str, result: CallResult) -> None:
        events = [(i, e.at_ms, e.kind, event_to_dict(e)) for i, e in enumerate(result.events)]
        queries.append_call_events(self.store, call_id, events)
        summary = {
            "outcome": result.outcome,
            "appointment_id": result.appointment_id,
            "turns": len(result.turns),
        }
        queries.finish_call(self.store, call_id, self.clock.now(), result.outcome, summary)


    def _add_summaries(self, result: CallResult, transcript: str, t: dict[str, str]) -> None:
        """The helper's free-text sentence under each message's structured summary,
        when it is qualified for summaries (its guard drops anything invented)."""
        if isinstance(self.helper, NoHelper):
            return
        for event in result.events:
            if isinstance(event, MessageLeft) and event.category != "emergency":
                sentence = self.helper.summary(event.category, transcript)
                if sentence:
                    add_summary_note(self.store, event.message_id, t["summary_helper"].format(text=sentence))


def dump_events(result: CallResult) -> str:
    return json.dumps([event_to_dict(e) for e in result.events], ensure_ascii=False, indent=2)
