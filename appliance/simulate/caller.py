"""The simulated caller: plays a scenario's turns against the box.

After each assistant reply it plays the first unused turn whose ``when`` matches
the assistant's current ask, else the next unused turn without ``when``, else it
stays silent (README, "Scenarios"). In audio mode it speaks with a voice distinct
from the assistant's, through a telephone channel (8 kHz G.711, 300-3400 Hz).

The caller follows the box's events the way a person follows the conversation:
it knows what was asked and when the assistant stopped talking. The box itself
never reads its own events to decide anything.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import numpy as np

from appliance.audio import LINE_RATE_HZ
from appliance.audio.channel import telephone
from appliance.audio.framing import to_frames
from appliance.events import AssistantReplied, AudioOutEnded, AudioOutStarted, CallEnded, CallEvent, TranscriptReady
from appliance.line.sim.line import SimCall
from appliance.simulate.devices import DeviceCaller
from appliance.simulate.scenario import CallerVoice, Scenario, ScenarioTurn
from appliance.speech.tts import Synthesizer

_LOGGER = logging.getLogger(__name__)
_LEAD_IN_S = 0.3  # a breath before speaking, so the VAD sees the onset
_INTO_REPLY_S = 1.0  # a "while_box_speaks" act comes this far into the assistant's reply


@dataclass
class CallerAudio:
    synthesizer: Synthesizer
    voice: CallerVoice

    def render(self, text: str, seed: int) -> list[np.ndarray]:
        pcm = self.synthesizer.synthesize(text)
        line = telephone(
            pcm,
            self.synthesizer.sample_rate,
            codec=self.voice.channel,
            noise_db=self.voice.noise_db,
            seed=seed,
        )
        lead = np.zeros(int(_LEAD_IN_S * LINE_RATE_HZ), dtype=np.int16)
        return to_frames(np.concatenate([lead, line]))


class ScriptedCaller:
    def __init__(
        self, scenario: Scenario, call: SimCall | DeviceCaller, *, audio: CallerAudio | None, silence_s: float
    ) -> None:
        self.scenario = scenario
        self.call = call
        self.audio = audio
        self.silence_s = silence_s
        """Text mode: how long "staying silent" lasts (the box's no-input time)."""
        self.ask: str | None = None
        self.used: set[int] = set()
        self.played: list[ScenarioTurn] = []
        self.said_before_transcript: list[str | None] = []
        """For each transcript the box produced, what this caller had last said."""
        self.turn_before_transcript: list[ScenarioTurn | None] = []
        """For each transcript, the scenario turn this caller had last said."""
        self._acting: asyncio.Task[None] | None = None
        self._interrupting = False  # a while_box_speaks act is under way for the current reply
        self.failure: BaseException | None = None
        self.hung_up_at: float | None = None
        """``time.monotonic()`` when this caller hung up (for ``hangup_within_s``)."""
        self.call_ended_at: float | None = None

    def observe(self, event: CallEvent) -> None:
        match event:
            case AssistantReplied(ask=ask):
                self.ask = ask
            case TranscriptReady():
                said = [t for t in self.played if t.say is not None]
                self.said_before_transcript.append(said[-1].say if said else None)
                self.turn_before_transcript.append(said[-1] if said else None)
            case AudioOutStarted():
                upcoming = self.pick(take=False)
                if upcoming is not None and upcoming.while_box_speaks:
                    self._interrupting = True
                    self.pick()  # taken now: it is this reply's interruption
                    self._acting = asyncio.get_running_loop().create_task(self._act(upcoming, _INTO_REPLY_S))
            case AudioOutEnded():
                if self._interrupting:
                    self._interrupting = False
                    return
                if self.audio is not None:
                    self.call.hold()  # no phantom silence while this caller composes
                self._acting = asyncio.get_running_loop().create_task(self._act(self.pick()))
            case CallEnded():
                self.call_ended_at = time.monotonic()

    def pick(self, *, take: bool = True) -> ScenarioTurn | None:
        turns = self.scenario.turns
        for i, turn in enumerate(turns):
            if i not in self.used and turn.when is not None and turn.when == self.ask:
                if take:
                    self.used.add(i)
                return turn
        for i, turn in enumerate(turns):
            if i not in self.used and turn.when is None:
                if take:
                    self.used.add(i)
                return turn
        return None

    async def _act(self, turn: ScenarioTurn | None, after_s: float = 0.0) -> None:
        try:
            if after_s:
                await asyncio.sleep(after_s)
            await self._play(turn)
        except Exception as err:  # reported by the runner, never swallowed
            self.failure = err
            self.call.caller_hangs_up()

    async def _play(self, turn: ScenarioTurn | None) -> None:
        call = self.call
        if call.ended:
            return
        if turn is None:
            if self.audio is None:
                call.send_silence(self.silence_s)
            call.release()
            return
        self.played.append(turn)
        if turn.hangup:
            self.hung_up_at = time.monotonic()
            call.caller_hangs_up()
        elif turn.fault is not None:
            assert isinstance(call, DeviceCaller)  # the scenario checked the line has a device
            await call.inject(turn.fault, turn.fault_s)
            call.release()
        elif turn.dtmf is not None:
            for digit in turn.dtmf:
                call.send_dtmf(digit, hold_s=turn.hold_s)
            call.release()
        elif turn.silence_s is not None:
            call.send_silence(turn.silence_s)
            call.release()
        elif turn.say is not None:
            if self.audio is None:
                # Text mode plays the recogniser too: the language it would have detected.
                call.send_text(turn.say, language=turn.language)
            else:
                frames = await asyncio.to_thread(self.audio.render, turn.say, len(self.played))
                call.send_audio(frames)
            call.release()

