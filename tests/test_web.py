"""The web page is its own process: it answers, and at first start shows the setup code."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

from appliance.config import Config
from appliance.simulate.runner import simulate
from appliance.simulate.scenario import load_scenario

from tests.ports import free_port
from .conftest import REPO, SCENARIOS


def test_the_page_answers_and_asks_for_the_first_administrator(tmp_path: Path) -> None:
    config = replace(Config(), data_dir=tmp_path)
    asyncio.run(simulate(load_scenario(SCENARIOS / "emergency_chest_pain.toml"), mode="text", config=config))
    port = free_port()
    box = tmp_path / "box.toml"
    box.write_text(f"[web]\nport = {port}\n")
    web = subprocess.Popen([sys.executable, "-m", "appliance", "--config", str(box), "--data-dir", str(tmp_path), "web"],
                           cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
                    health = json.load(answer)
                break
            except OSError:
                assert web.poll() is None, web.communicate()[1]
                assert time.monotonic() < deadline, "web page did not come up"
                time.sleep(0.2)
        assert health["ok"] is True
        # Every page needs an account; with none yet, a visitor lands on first-boot setup.
        request = urllib.request.Request(f"http://127.0.0.1:{port}/inbox", headers={"Accept": "text/html"})
        with urllib.request.urlopen(request, timeout=5) as answer:
            page = answer.read().decode()
            assert answer.url.endswith("/setup")
        assert "Première mise en service" in page
    finally:
        web.terminate()
        console, _ = web.communicate(timeout=10)
    code = (tmp_path / "setup-code").read_text().strip()
    assert f"setup code for the first administrator: {code}" in console
