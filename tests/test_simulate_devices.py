"""`appliance simulate` through simulated devices: what a scenario may ask of one.

The calls themselves (a booking on each device, each ended by a fault) are in
test_simulate_faults.py.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from appliance.config import Config
from appliance.errors import ScenarioError
from appliance.simulate.runner import simulate
from appliance.simulate.scenario import load_scenario

from .conftest import SCENARIOS


def _on_line(tmp_path: Path, line: str) -> Path:
    text = (SCENARIOS / "book_basic.toml").read_text(encoding="utf-8")
    path = tmp_path / "call.toml"
    path.write_text(text.replace('practice = "demo"\n', f'practice = "demo"\nline = "{line}"\n'), encoding="utf-8")
    return path


def test_an_unknown_device_is_named_with_its_line_number(tmp_path: Path) -> None:
    path = _on_line(tmp_path, "sim:zoom9999")
    with pytest.raises(ScenarioError, match=rf"{path}:6: no simulated device .zoom9999. \(known: sim, sim:usr5637"):
        load_scenario(path)


def test_a_device_line_needs_audio(tmp_path: Path) -> None:
    config = replace(Config(), data_dir=tmp_path / "data")
    with pytest.raises(ScenarioError, match="carries audio only"):
        asyncio.run(simulate(load_scenario(_on_line(tmp_path, "sim:usr5637")), mode="text", config=config))
