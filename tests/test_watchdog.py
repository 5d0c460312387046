"""systemd's watchdog is fed from the call loop, and only while no call is stuck."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from appliance.system.watchdog import BeatingCall, Heartbeat, WatchdogSettings, keep_watchdog_fed

from .conftest import REPO


class Ticks:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_stillest_call_sets_the_pace() -> None:
    ticks = Ticks()
    heart = Heartbeat(ticks)
    assert heart.stillest_s() == 0.0  # no call: nothing can be stuck
    heart.begin("a")
    ticks.now += 5
    heart.begin("b")
    ticks.now += 2
    assert heart.stillest_s() == 7.0
    heart.beat("a")
    assert heart.stillest_s() == 2.0
    heart.end("b")
    heart.end("a")
    assert heart.stillest_s() == 0.0


def test_a_frame_arriving_after_the_call_ended_does_not_bring_it_back() -> None:
    ticks = Ticks()
    heart = Heartbeat(ticks)
    heart.begin("a")
    heart.end("a")
    heart.beat("a")
    ticks.now += 500
    assert heart.stillest_s() == 0.0


@pytest.mark.parametrize(
    ("environ", "pid", "expected"),
    [
        ({}, 42, None),  # not under systemd
        ({"WATCHDOG_USEC": "30000000"}, 42, 30.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "42"}, 42, 30.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "7"}, 42, None),  # meant for another process
        ({"WATCHDOG_USEC": "0"}, 42, None),
        ({"WATCHDOG_USEC": "soon"}, 42, None),
    ],
)
def test_the_watchdog_is_the_one_systemd_asked_this_process_for(environ, pid, expected) -> None:
    settings = WatchdogSettings.from_environment(environ, pid=pid)
    assert (settings.interval_s if settings else None) == expected
    if settings:
        assert settings.pet_every_s == expected / 2


class FakeCall:
    call_id = "c1"
    caller_id = None
    end_reason = "caller_hung_up"

    def __init__(self, frames: int) -> None:
        self.frames = frames
        self.played = 0

    async def inbound(self) -> AsyncIterator[np.ndarray]:
        for _ in range(self.frames):
            await asyncio.sleep(0)
            yield np.zeros(160, dtype=np.int16)

    async def play(self, frames: AsyncIterable[np.ndarray]) -> int:
        async for _ in frames:
            self.played += 1
        return self.played


def test_every_frame_heard_or_played_is_a_beat() -> None:
    ticks = Ticks()
    heart = Heartbeat(ticks)
    call = BeatingCall(FakeCall(frames=3), heart)
    assert call.end_reason == "caller_hung_up" and call.call_id == "c1"  # the session sees the same call

    async def scenario() -> None:
        async for _ in call.inbound():
            assert heart.stillest_s() == 0.0  # this frame beat
            ticks.now += 10
        ticks.now += 30
        assert heart.stillest_s() == 40.0

        async def reply() -> AsyncIterator[np.ndarray]:
            for _ in range(4):
                ticks.now += 10
                yield np.zeros(160, dtype=np.int16)

        assert await call.play(reply()) == 4
        assert heart.stillest_s() == 0.0
        ticks.now += 45
        assert heart.stillest_s() == 45.0

    asyncio.run(scenario())
    call.finished()
    assert heart.stillest_s() == 0.0


def test_the_pet_is_withheld_while_a_call_is_still_and_resumes_when_it_moves() -> None:
    ticks = Ticks()
    heart = Heartbeat(ticks)
    sent: list[tuple[float, str]] = []

    async def scenario() -> None:
        feeder = asyncio.create_task(
            keep_watchdog_fed(WatchdogSettings(interval_s=0.02, stall_s=60), heart,
                              send=lambda state: sent.append((ticks.now, state))))
        await asyncio.sleep(0.05)
        idle_pets = len(sent)
        heart.begin("stuck")
        ticks.now += 61  # a minute without a frame heard or played
        await asyncio.sleep(0.05)
        withheld = len(sent)
        await asyncio.sleep(0.05)
        assert len(sent) == withheld, "no pet while the call is stuck"
        heart.beat("stuck")
        await asyncio.sleep(0.05)
        feeder.cancel()
        assert idle_pets >= 2, "an idle box is fed"
        assert len(sent) > withheld, "fed again once the call moves"

    asyncio.run(scenario())
    assert {state for _, state in sent} == {"WATCHDOG=1"}


def _notifications(sock: socket.socket, seconds: float) -> list[str]:
    got: list[str] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        sock.settimeout(max(0.01, end - time.monotonic()))
        try:
            got.extend(sock.recv(4096).decode().split("\n"))
        except TimeoutError:
            break
    return got


def test_the_core_tells_systemd_it_is_ready_feeds_the_watchdog_and_stops_feeding_when_frozen() -> None:
    # The real path: `appliance run` with systemd's environment, sd_notify through systemd-python.
    with tempfile.TemporaryDirectory(prefix="wd") as folder:
        data = Path(folder)
        address = str(data / "notify")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(address)
        config = data / "box.toml"
        config.write_text("[web]\nport = 1\n")  # --no-web: the port is never opened
        env = {**os.environ, "NOTIFY_SOCKET": address, "WATCHDOG_USEC": "400000"}
        env.pop("WATCHDOG_PID", None)
        core = subprocess.Popen(
            [sys.executable, "-m", "appliance", "--config", str(config), "--data-dir", str(data), "run", "--no-web"],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        try:
            seen: list[str] = []
            deadline = time.monotonic() + 60
            while "READY=1" not in seen:
                assert time.monotonic() < deadline and core.poll() is None, "the core never said READY"
                seen += _notifications(sock, 0.5)
            assert seen.index("READY=1") < len(seen)
            fed = _notifications(sock, 1.5)
            assert fed.count("WATCHDOG=1") >= 4, fed  # every 0.2 s

            core.send_signal(signal.SIGSTOP)  # a frozen process: what a hang looks like from outside
            time.sleep(0.3)
            _notifications(sock, 0.1)  # whatever was in flight
            assert "WATCHDOG=1" not in _notifications(sock, 1.0)
            core.send_signal(signal.SIGCONT)
            assert "WATCHDOG=1" in _notifications(sock, 1.5)

            core.send_signal(signal.SIGTERM)
            out, _ = core.communicate(timeout=30)
            assert "STOPPING=1" in _notifications(sock, 1.0)
            assert core.returncode == 0, out
            assert "Traceback" not in out
        finally:
            if core.poll() is None:
                core.kill()
                core.communicate()
            sock.close()
