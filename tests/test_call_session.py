"""CallSession rules that hold whatever the line and the models do."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from appliance.app import Appliance
from appliance.call import CallSession
from appliance.clock import PARIS, FixedClock
from appliance.config import Config
from appliance.dialogue.secretary import Secretary
from appliance.errors import SpeechError
from appliance.line.sim.line import SimLine
from appliance.turns import HungUp, TextSpeaker, Turn

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=PARIS)


class FlakyEars:
    """The recogniser fails on the first utterance; the caller then books nothing and hangs up."""

    def __init__(self) -> None:
        self.turns: list[Turn | SpeechError] = [SpeechError("asr-failed", "decoder crashed"), HungUp()]

    async def listen(self, ask: str | None) -> Turn:
        item = self.turns.pop(0)
        if isinstance(item, SpeechError):
            raise item
        return item


def test_a_recognition_failure_costs_a_pardon_not_the_call(tmp_path: Path) -> None:
    async def run():  # type: ignore[no-untyped-def]
        box = Appliance(replace(Config(), data_dir=tmp_path), clock=FixedClock(NOW))
        try:
            call = SimLine().place_call("0612345678")
            secretary = Secretary(box.practice, box.agenda, NOW, call.caller_id)
            session = CallSession(call, secretary, FlakyEars(), TextSpeaker(), box.agenda, box.inbox,
                                  box.clock, line_name="sim")
            return await session.run()
        finally:
            box.close()

    result = asyncio.run(run())
    kinds = [e.kind for e in result.events]
    assert "error" in kinds
    error = next(e for e in result.events if e.kind == "error")
    assert error.code == "asr-failed"
    replies = [t.text for t in result.turns if t.speaker == "assistant"]
    assert len(replies) == 2 and "pas bien compris" in replies[1]  # asked again
    assert result.events[-1].kind == "hangup" and result.events[-1].by == "caller"

