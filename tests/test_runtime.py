"""`appliance run` (what `make run` starts): page served, control socket up, clean stop."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from appliance.control import ask
from tests.ports import free_port

from .conftest import REPO

def test_the_box_starts_serves_its_page_answers_its_control_socket_and_stops_on_sigterm() -> None:
    # On the plain simulated line nothing rings but typed test calls: no models to load.
    folder = tempfile.TemporaryDirectory(prefix="box")  # a unix socket path must stay short
    tmp_path = Path(folder.name)
    port = free_port()
    config = tmp_path / "box.toml"
    config.write_text(f"[web]\nport = {port}\n")
    box = subprocess.Popen(
        [sys.executable, "-m", "appliance", "--config", str(config), "--data-dir", str(tmp_path), "run"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,  # the core and its web child: one group to clean up
    )
    lines: list[str] = []
    try:
        assert box.stdout is not None
        deadline = time.monotonic() + 120
        while not any("Place a test call" in line for line in lines):
            line = box.stdout.readline()
            assert line or box.poll() is None, "".join(lines)
            lines.append(line)
            assert time.monotonic() < deadline, "".join(lines)
        assert not any("models ready" in line for line in lines)
        while True:  # the banner is printed as the core starts its control socket
            try:
                answer = asyncio.run(ask(tmp_path / "control.sock", {"cmd": "ping"}, timeout_s=10))
                break
            except ConnectionError:
                assert time.monotonic() < deadline, "the control socket did not come up"
                time.sleep(0.2)
        assert answer["ok"] and answer["line"] == "sim"
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
                    assert json.load(answer)["ok"] is True
                break
            except OSError:
                assert time.monotonic() < deadline, "web page did not come up"
                time.sleep(0.2)
        box.send_signal(signal.SIGTERM)
        out, _ = box.communicate(timeout=30)
        assert box.returncode == 0, "".join(lines) + out
        assert "Traceback" not in "".join(lines) + out
    finally:
        # The web child holds the output pipe too: a core that died without stopping
        # it would keep communicate() waiting forever. End the whole group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(box.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            box.communicate(timeout=10)
        folder.cleanup()
