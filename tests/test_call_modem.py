"""A call answered through the V.253 voice-modem driver, on the modem simulator, with the real voice."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from appliance.app import Appliance
from appliance.audio.g711 import ulaw_decode
from appliance.clock import PARIS, FixedClock, ScaledClock
from appliance.config import Config
from appliance.line.factory import open_line
from appliance.line.sim.voice_modem import VoiceModemSim
from appliance.store import queries

pytestmark = pytest.mark.models
NOW = datetime(2026, 11, 24, 9, 0, tzinfo=PARIS)


def test_the_box_answers_a_modem_call_speaks_its_greeting_and_logs_the_hang_up(speech, tmp_path: Path) -> None:
    config = replace(Config(), data_dir=tmp_path, line="modem:placeholder")
    # The line runs 4x faster than real time: the greeting is synthesised about that
    # fast, so the modem hears it with few underruns even on a busy machine.
    line_clock = ScaledClock(4.0)

    async def run() -> tuple[bytes, list[str], str | None]:
        box = Appliance(config, clock=FixedClock(NOW), speech=speech)
        try:
            with VoiceModemSim("usr5637", clock=line_clock) as sim:
                async with open_line(f"modem:{sim.path}", line_clock) as line:
                    serving = asyncio.create_task(box.serve(line))
                    sim.ring("0612345678")
                    async with asyncio.timeout(120):
                        # The greeting is spoken through +VTX; then the box listens again (+VRX).
                        while not (len(sim.heard()) > 8000 * 2 and sim.stats().mode == "vrx"):
                            await asyncio.sleep(0.1)
                        sim.hang_up()
                        while not queries.recent_calls(box.store, NOW.replace(year=2000)) or \
                                queries.recent_calls(box.store, NOW.replace(year=2000))[0].outcome is None:
                            await asyncio.sleep(0.1)
                    serving.cancel()
                    await asyncio.gather(serving, return_exceptions=True)
                heard = sim.heard()
                vsm = sim.stats().vsm
            [call] = queries.recent_calls(box.store, NOW.replace(year=2000))
            kinds = [e.kind for e in queries.call_events(box.store, call.id)]
            return heard, kinds, call.caller_id if vsm == (131, 8000) else "not mu-law"
        finally:
            box.close()

    heard, kinds, caller_id = asyncio.run(run())
    assert caller_id == "0612345678"  # caller ID came through, and µ-law was chosen
    greeting = ulaw_decode(heard).astype(np.float32)
    assert np.sqrt(np.mean(greeting**2)) > 300  # speech, not silence
    assert kinds[:2] == ["call_answered", "reply"] and "audio_out_start" in kinds
    assert kinds[-1] == "hangup"
