"""The fault catalogue as scenarios: real models, real drivers, simulated devices.

Each file in ``tests/scenarios/faults/`` states in its ``[expect]`` how the call
must end (``end_reason``), how fast the box noticed the caller was gone
(``hangup_within_s``), that the line was ready again (``line_ready_within_s``),
and, for the three that book first, that the booking survived the fault. The
three bookings are also "``appliance simulate`` books through sim:usr5637,
sim:cx93001 and sim:sim7600 alike". Device lines run in real time: this file
takes a few minutes.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from appliance.config import Config
from appliance.simulate.runner import simulate
from appliance.simulate.scenario import load_scenario

from .conftest import SCENARIOS

pytestmark = pytest.mark.models
FAULTS = sorted((SCENARIOS / "faults").glob("*.toml"))


@pytest.mark.parametrize("path", FAULTS, ids=lambda p: p.stem)
def test_the_line_fault_ends_the_call_as_the_scenario_expects(path: Path, speech, tmp_path: Path) -> None:
    scenario = load_scenario(path)
    config = replace(Config(), data_dir=tmp_path / "data")
    report = asyncio.run(simulate(scenario, mode="audio", config=config, speech=speech))
    assert report["expect"] == {"passed": True, "failures": []}, (report["line"], report["turns"])
    assert report["line"]["name"] == scenario.line


def test_every_device_books_through_its_real_driver_in_the_catalogue() -> None:
    booked = {load_scenario(p).line for p in FAULTS if load_scenario(p).expect.outcome == "booked"}
    assert booked >= {"sim:usr5637", "sim:cx93001", "sim:sim7600"}
