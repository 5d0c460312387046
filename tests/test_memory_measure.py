"""The bench's memory figure comes from a process that really holds every model."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from .conftest import REPO

pytestmark = pytest.mark.models


def test_a_fresh_process_loads_and_uses_every_model_and_reports_its_peak() -> None:
    done = subprocess.run([sys.executable, "-m", "appliance.simulate.memory"], cwd=REPO, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert {"whisper-base", "kokoro-82m", "silero-vad"} <= set(figures["models"])
    steps = figures["steps"]
    # Models weigh hundreds of MB: a figure near the interpreter's own 50 MB would mean nothing was loaded.
    assert steps["speech"]["peak_mb"] > steps["start"]["peak_mb"] + 200
    assert figures["peak_rss_mb"] == max(step["peak_mb"] for step in steps.values())
