"""The core's control socket: a typed test call through the box's own call path,
a configuration reload for the next calls, and clear refusals."""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.app import Appliance
from appliance.config import load_config
from appliance.control import ControlServer, TypedCalls, ask
from appliance.runtime import _control_handlers
from appliance.line.sim.line import SimLine
from appliance.store import queries
from appliance.store.inbox import unhandled_messages


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # A unix socket path must fit in 108 bytes: pytest's tmp_path can be longer.
    with tempfile.TemporaryDirectory(prefix="ctl") as folder:
        yield Path(folder)


def run_core(data_dir: Path, config_file: Path | None, talk) -> None:  # type: ignore[no-untyped-def]
    async def core() -> None:
        config = load_config(config_file, data_dir=data_dir)
        box = Appliance(config)
        line = SimLine()
        test_calls = TypedCalls(box.answer, box.clock.monotonic)
        reload = lambda: load_config(config_file, data_dir=data_dir)  # noqa: E731
        server = ControlServer(data_dir / "control.sock", _control_handlers(box, line, test_calls, reload))
        assert await server.start()
        try:
            await talk(data_dir / "control.sock", box)
        finally:
            await server.close()
            await test_calls.close()
            box.close()

    asyncio.run(core())


def test_a_typed_test_call_gets_the_greeting_then_the_assistants_answers(short_dir: Path) -> None:
    async def talk(sock: Path, box: Appliance) -> None:
        started = await ask(sock, {"cmd": "test_call.start"})
        assert started["ok"] and not started["ended"]
        assert "Cabinet médical des Tilleuls" in started["replies"][0]["text"]

        answer = await ask(sock, {"cmd": "test_call.say", "call_id": started["call_id"],
                                  "text": "j'ai une grosse douleur dans la poitrine"})
        said = " ".join(r["text"] for r in answer["replies"])
        assert "15" in said
        assert all(isinstance(r["latency_ms"], int) for r in answer["replies"][:1])

        assert (await ask(sock, {"cmd": "test_call.end", "call_id": started["call_id"]}))["ok"]
        again = await ask(sock, {"cmd": "test_call.say", "call_id": started["call_id"], "text": "allô"})
        assert again == {"ok": False, "error": "cet appel de test est terminé ; commencez-en un autre"}

        # A real call of the box: in the call list, and its urgent message in the inbox.
        [message] = unhandled_messages(box.store)
        assert message.urgency == "urgent" and message.call_id == started["call_id"]
        assert queries.get_call(box.store, started["call_id"]).line == "test"

    run_core(short_dir, None, talk)


def test_nonsense_on_the_socket_gets_a_clear_refusal_and_the_socket_stays_up(short_dir: Path) -> None:
    async def talk(sock: Path, box: Appliance) -> None:
        assert await ask(sock, {"cmd": "format_disk"}) == {"ok": False, "error": "unknown command 'format_disk'"}
        assert (await ask(sock, {"no": "cmd"}))["ok"] is False
        assert (await ask(sock, {"cmd": "test_call.say", "call_id": "nope", "text": "x"}))["ok"] is False
        started = await ask(sock, {"cmd": "test_call.start"})
        empty = await ask(sock, {"cmd": "test_call.say", "call_id": started["call_id"], "text": "   "})
        assert empty == {"ok": False, "error": "écrivez ce que dirait l'appelant"}
        reader, writer = await asyncio.open_unix_connection(str(sock))
        writer.write(b"{not json\n")
        await writer.drain()
        assert json.loads(await reader.readline()) == {"ok": False, "error": "not a JSON request"}
        writer.close()
        await writer.wait_closed()
        pong = await ask(sock, {"cmd": "ping"})
        assert pong["ok"] is True and pong["line"] == "sim" and pong["line_ok"] is True
        assert pong["models"] == {} and pong["llm_enabled"] is False  # text-only core: nothing loaded

    run_core(short_dir, None, talk)


def test_reload_applies_to_the_next_calls_and_names_what_needs_a_restart(short_dir: Path) -> None:
    config_file = short_dir / "box.toml"
    config_file.write_text('[answering]\nduring_hours = "now"\n')

    async def talk(sock: Path, box: Appliance) -> None:
        config_file.write_text('line = "sim:usr5637"\n[answering]\nduring_hours = "never"\noutside_hours = "never"\n')
        answer = await ask(sock, {"cmd": "reload"})
        assert answer["ok"] and answer["restart"] == ["line"]
        assert box.config.answering.during_hours == "never"
        config_file.write_text('[answering]\nduring_hours = "sometimes"\n')
        refused = await ask(sock, {"cmd": "reload"})
        assert refused["ok"] is False and "configuration refusée" in refused["error"]
        assert box.config.answering.during_hours == "never", "a refused file changes nothing"

    run_core(short_dir, config_file, talk)


def test_asking_a_core_that_is_not_there_is_a_connection_error(short_dir: Path) -> None:
    with pytest.raises(ConnectionError, match="does not answer"):
        asyncio.run(ask(short_dir / "control.sock", {"cmd": "ping"}, timeout_s=1))


def test_a_socket_path_too_long_for_unix_is_refused_without_stopping_the_core(tmp_path: Path) -> None:
    deep = tmp_path / ("x" * 120)
    assert asyncio.run(ControlServer(deep / "control.sock", {}).start()) is False


def test_call_ids_stay_unique_across_restarts_of_the_box(short_dir: Path) -> None:
    """Two processes one after the other on one store (a core restarted): before
    the run prefix, both numbered their first call sim-1 and the second collided."""
    import subprocess
    import sys

    from appliance.store import Store

    from .conftest import REPO, SCENARIOS

    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-m", "appliance", "--data-dir", str(short_dir), "simulate",
             str(SCENARIOS / "silent_caller.toml"), "--text"],
            cwd=REPO, capture_output=True, text=True, timeout=120,
        )
        assert done.returncode == 0, done.stderr
    with Store.open(short_dir / "appliance.db") as store, store.snapshot() as tx:
        ids = [row["id"] for row in tx.execute("SELECT id FROM calls")]
    assert len(ids) == len(set(ids)) == 2
