"""``appliance run``: the core process on the configured line, with the web page beside it.

The web page is a separate process (a slow page or a crash there must never touch
a call's audio); here it is started as a child for convenience, on the device
systemd runs it as its own service.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from appliance.app import Appliance
from appliance.config import Config
from appliance.line.factory import open_line
from appliance.retention import run_retention
from appliance.speech.loading import load_speech
from appliance.system.notify import notify

_LOGGER = logging.getLogger(__name__)


def run_box(
    config: Config, *, with_web: bool, config_path: Path | None = None, echo: Callable[[str], None]
) -> int:
    """Run until SIGTERM/SIGINT; ``echo`` is the console (the CLI's ``print``)."""
    echo("verifying and loading models…")
    speech = load_speech(config.models, config.speech)
    loads = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in speech.load_s.items())
    echo(f"models ready: {loads}")
    box = Appliance(config, speech=speech)
    web = None
    if with_web:
        # The same configuration file, so both processes agree on the store and the port.
        same_config = ["--config", str(config_path)] if config_path else []
        web = subprocess.Popen(
            [sys.executable, "-m", "appliance", *same_config, "--data-dir", str(config.data_dir), "web"]
        )
    try:
        echo(_banner(config, box))
        asyncio.run(_serve(box, echo))
    finally:
        box.close()
        if web is not None:
            web.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                web.wait(timeout=5)
    return 0


async def _serve(box: Appliance, echo: Callable[[str], None]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    config = box.config
    async with open_line(config.line, box.clock, max_call_s=config.speech.max_call_s, hangup=config.hangup,
                         say=echo) as line:
        notify("READY=1")
        notify(f"STATUS=answering on {line.name}: {line.health().detail}")
        serving = asyncio.create_task(box.serve(line))
        stopping = asyncio.create_task(stop.wait())
        # Beside the calls: the outbox towards the cloud agenda, and the retention purge.
        # Neither may take a call down with it; each catches and logs its own failures.
        chores = [asyncio.create_task(run_retention(box.store, config.retention, box.clock, stop))]
        worker = box.outbox_worker(sms=_sms_through(line, loop))
        if worker is not None:
            chores.append(asyncio.create_task(worker.run(stop)))
        _, pending = await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        notify("STOPPING=1")
        stop.set()
        for task in (*pending, *chores):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if serving.done() and not serving.cancelled() and serving.exception() is not None:
            raise serving.exception()  # e.g. the modem was unplugged: systemd restarts us


def _sms_through(line: object, loop: asyncio.AbstractEventLoop) -> Callable[[str, str], None] | None:
    """A GSM line can text a patient whose offline booking lost its slot; the
    worker calls this from its thread, the line's coroutine runs on the loop."""
    send = getattr(getattr(line, "inner", line), "send_sms", None)  # under the hang-up guard
    if send is None:
        return None

    def sms(phone: str, text: str) -> None:
        asyncio.run_coroutine_threadsafe(send(phone, text), loop).result(timeout=60)

    return sms


def _banner(config: Config, box: Appliance) -> str:
    web = f"http://{config.web.host}:{config.web.port}"
    if config.line.startswith("soundcard"):
        return (
            f"\nThe box is answering for {box.practice.name} through this computer's microphone and speaker.\n"
            f"  web page:     {web}\n\n"
            "Speak after the greeting, as on the phone. When a call ends, press Enter for the next one.\n"
            "Stop with Ctrl-C.\n"
        )
    if config.line.startswith("sim:"):
        return (
            f"\nThe box is answering for {box.practice.name} through the real driver on a simulated "
            f"{config.line[4:]} (nothing rings it but a test).\n  web page:     {web}\n"
        )
    if config.line != "sim":
        return f"\nThe box is answering for {box.practice.name} on {config.line}.\n  web page:     {web}\n"
    return (
        f"\nThe box is answering for {box.practice.name} on the simulated line.\n"
        f"  web page:     {web}\n"
        f"  data:         {config.data_dir}\n\n"
        "Place a test call from another shell:\n"
        "  .venv/bin/appliance simulate tests/scenarios/book_basic.toml --audio   (real VAD, ASR, TTS)\n"
        "  .venv/bin/appliance simulate tests/scenarios/book_basic.toml --text    (words only, fast)\n"
        "Stop with Ctrl-C.\n"
    )
