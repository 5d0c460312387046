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
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any
from pathlib import Path

from appliance.app import Appliance
from appliance.config import Config, load_config
from appliance.control import ControlError, ControlServer, Handler, TypedCalls, control_socket
from appliance.errors import ConfigError
from appliance.line.base import LineDriver
from appliance.line.factory import open_line
from appliance.llm.background import qualify_in_background
from appliance.retention import run_retention
from appliance.speech.hearing import EarsLoader, ears_of, load_ears
from appliance.speech.loading import load_speech
from appliance.speech.prompt_cache import keep_prompts_warm, prompt_texts
from appliance.store import queries
from appliance.system.notify import notify
from appliance.system.watchdog import WatchdogSettings, keep_watchdog_fed

_LOGGER = logging.getLogger(__name__)


def run_box(
    config: Config, *, with_web: bool, config_path: Path | None = None, echo: Callable[[str], None]
) -> int:
    """Run until SIGTERM/SIGINT; ``echo`` is the console (the CLI's ``print``)."""
    speech = None
    if config.line != "sim":
        echo("verifying and loading models…")
        speech = load_speech(config.models, config.speech, cache_dir=config.data_dir / "prompt-cache")
        loads = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in speech.load_s.items())
        echo(f"models ready: {loads}")
    # else: nothing rings the plain simulated line but test calls from the web page
    # (text mode; a spoken turn loads the recognizer then, see _typed_calls) and
    # `appliance simulate`, which loads its own models.
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
        asyncio.run(_serve(box, echo, _reloader(config, config_path)))
    finally:
        box.close()
        if web is not None:
            web.terminate()
            try:
                web.wait(timeout=5)
            except subprocess.TimeoutExpired:  # a page stuck mid-request: the core does not leave it behind
                web.kill()
                web.wait()
    return 0


def _reloader(config: Config, config_path: Path | None) -> Callable[[], Config]:
    """Read the configuration again as it was read at start (same file, same data
    directory and line: those two cannot change without a restart anyway)."""
    return lambda: load_config(config_path, data_dir=config.data_dir, line=config.line)


def _typed_calls(box: Appliance) -> TypedCalls:
    """The web page's test calls. A spoken turn is heard by the recognizer the phone
    calls use: the one loaded at start, or, on the plain simulated line (which
    starts without models), the same model loaded once on the first spoken turn."""
    if box.speech is not None:
        ears = EarsLoader(ready=ears_of(box.speech, box.config.speech))
    else:
        models, speech = box.config.models, box.config.speech  # as at start: a model change needs a restart
        ears = EarsLoader(lambda: load_ears(models, speech))
    # The hotwords a call would give Whisper for what the assistant just asked.
    return TypedCalls(box.answer, box.clock.monotonic, ears=ears, vocabulary=box._hotwords)


def _control_handlers(box: Appliance, line: LineDriver, test_calls: TypedCalls,
                      reload_config: Callable[[], Config]) -> dict[str, Handler]:
    async def ping(_: dict[str, Any]) -> dict[str, Any]:
        health = line.health()
        models = {name: round(seconds, 1) for name, seconds in box.speech.load_s.items()} if box.speech else {}
        return {"ok": True, "line": line.name, "line_ok": health.ok, "line_detail": health.detail,
                "models": models, "llm_enabled": box.config.models.llm_enabled}

    async def reload(_: dict[str, Any]) -> dict[str, Any]:
        try:
            restart = box.reload(await asyncio.to_thread(reload_config))
        except ConfigError as err:
            raise ControlError(f"configuration refusée : {err.detail}") from None
        detail = "appliquée aux prochains appels"
        if restart:
            detail += f" ; redémarrage nécessaire pour : {', '.join(restart)}"
        return {"ok": True, "detail": detail, "restart": restart}

    return {
        "ping": ping,
        "reload": reload,
        "test_call.start": lambda _: test_calls.start(),
        "test_call.say": lambda r: test_calls.say(str(r.get("call_id", "")), str(r.get("text", ""))),
        "test_call.hearing": lambda _: test_calls.hearing(),
        "test_call.hear": lambda r: test_calls.hear(str(r.get("call_id", "")), r.get("pcm16k")),
        "test_call.end": lambda r: test_calls.end(str(r.get("call_id", ""))),
    }


async def _serve(box: Appliance, echo: Callable[[str], None], reload_config: Callable[[], Config]) -> None:
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
        # The web page's few commands (reload, a typed or spoken test call), on a unix socket.
        test_calls = _typed_calls(box)
        control = ControlServer(control_socket(config), _control_handlers(box, line, test_calls, reload_config))
        await control.start()
        # Beside the calls: the outbox towards the cloud agenda, and the retention purge.
        # Neither may take a call down with it; each catches and logs its own failures.
        chores = [asyncio.create_task(run_retention(box.store, config.retention, box.clock, stop))]
        # systemd's watchdog (WatchdogSec=): fed from this loop, and only while no call is stuck.
        watchdog = WatchdogSettings.from_environment()
        if watchdog is not None:
            chores.append(asyncio.create_task(keep_watchdog_fed(watchdog, box.heartbeat)))
        # The LLM helper's models are evaluated in a thread of their own; its gate stays shut meanwhile.
        chores.append(asyncio.create_task(qualify_in_background(config, box.store)))
        # The phrases the box will likely say, synthesised while no call is in progress (hourly).
        if box.speech is not None and box.speech.prompts is not None:
            chores.append(asyncio.create_task(_warm_prompts(box)))
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
        await control.close()
        await test_calls.close()
        if serving.done() and not serving.cancelled() and serving.exception() is not None:
            raise serving.exception()  # e.g. the modem was unplugged: systemd restarts us


def _warm_prompts(box: Appliance) -> Coroutine[Any, Any, None]:
    """The prompt cache's warmer: the practice's phrases as it is configured now (a
    reload is seen at the next round), paused while any call, a test call from
    the page included, is in progress."""
    assert box.speech is not None and box.speech.prompts is not None

    def texts() -> list[str]:
        return prompt_texts(box.practice, box.agenda, box.clock.now(), language=box.config.speech.language,
                            awaits_cloud=box.agenda.awaits_cloud)

    def idle() -> bool:
        # A call is in progress from its row's insertion to its finish; a row a crash
        # left open stops counting once no call could still be running.
        since = box.clock.now() - timedelta(seconds=box.config.speech.max_call_s)
        return all(call.ended_at is not None for call in queries.recent_calls(box.store, since))

    return keep_prompts_warm(box.speech.prompts, texts, idle=idle)


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
    web = f"{'https' if config.web.https else 'http'}://{config.web.host}:{config.web.port}"
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
