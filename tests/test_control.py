"""The core's control socket: a typed or spoken test call through the box's own
call path, a configuration reload for the next calls, and clear refusals.

The spoken turns are real: espeak-ng says the sentence, sox makes it the 16 kHz
mono PCM the page sends, and the core hears it with the installed VAD and
Whisper models, loaded on the first spoken turn as on the plain simulated line.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import tempfile
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from appliance.app import Appliance
from appliance.config import load_config
from appliance.control import ControlError, ControlServer, TypedCalls, ask
from appliance.runtime import _control_handlers, _typed_calls
from appliance.line.sim.line import SimLine
from appliance.store import queries
from appliance.store.inbox import unhandled_messages

SPOKEN = "Bonjour, je voudrais prendre un rendez-vous chez le médecin."


def espeak_wav(text: str, path: Path, *, lead_s: float = 0.5, tail_s: float = 2.5) -> Path:
    """``text`` said by espeak-ng's French voice, as 16 kHz mono 16-bit WAV with
    silence around it (the page's microphone, and Chromium's fake one, hear that)."""
    raw = path.with_suffix(".espeak.wav")
    # 130 words a minute: at espeak's default 175 Whisper base mishears most sentences.
    # (This one is heard right at 110-140, and after 44.1/48 kHz round trips.)
    subprocess.run(["espeak-ng", "-v", "fr", "-s", "130", "-w", str(raw), text], check=True, timeout=60)
    subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", "-e", "signed-integer", str(path),
                    "pad", str(lead_s), str(tail_s)], check=True, timeout=60)
    raw.unlink()
    return path


def pcm_of(wav: Path) -> bytes:
    with wave.open(str(wav)) as audio:
        assert (audio.getframerate(), audio.getnchannels(), audio.getsampwidth()) == (16000, 1, 2)
        return audio.readframes(audio.getnframes())


def b64(pcm: bytes) -> str:
    return base64.b64encode(pcm).decode()


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
        test_calls = _typed_calls(box)
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
        config_file.write_text('[speech]\nlanguages = ["fr", "en"]\n')
        answer = await ask(sock, {"cmd": "reload"})
        assert "speech.languages" in answer["restart"], "each language's voice is loaded at start"

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


# --- Spoken turns ------------------------------------------------------------------------


@pytest.mark.models
def test_a_spoken_turn_is_heard_by_the_calls_recognizer_and_answered(short_dir: Path) -> None:
    pcm = pcm_of(espeak_wav(SPOKEN, short_dir / "spoken.wav"))

    async def talk(sock: Path, box: Appliance) -> None:
        assert box.speech is None, "the plain simulated line starts without models"
        started = await ask(sock, {"cmd": "test_call.start"})
        # The first spoken turn loads the recognizer, once, off the loop: the core keeps answering.
        assert await ask(sock, {"cmd": "test_call.hearing"}) == {"ok": True, "state": "loading"}
        assert (await ask(sock, {"cmd": "ping"}, timeout_s=2))["ok"]
        deadline = time.monotonic() + 120
        while (state := await ask(sock, {"cmd": "test_call.hearing"})) == {"ok": True, "state": "loading"}:
            assert time.monotonic() < deadline, "the recognizer did not load"
            await asyncio.sleep(0.2)
        assert state == {"ok": True, "state": "ready"}

        began = time.perf_counter()
        answer = await ask(sock, {"cmd": "test_call.hear", "call_id": started["call_id"], "pcm16k": b64(pcm)})
        took_ms = round((time.perf_counter() - began) * 1000)
        assert answer["ok"], answer
        assert "rendez" in answer["heard"].lower()
        assert 2.0 < answer["speech_s"] < 5.0, "trimmed to the speech, not the 3 s of silence around it"
        assert 0 < answer["asr_ms"] < took_ms
        [reply, *_] = answer["replies"]
        assert reply["text"] and isinstance(reply["latency_ms"], int)
        assert reply["latency_ms"] >= answer["asr_ms"], "the turn's latency counts the recognition"
        assert not answer["ended"]
        print(f"\nheard {answer['heard']!r}: {answer['speech_s']} s of speech, recognised in {answer['asr_ms']} ms, "
              f"first reply after {reply['latency_ms']} ms, {took_ms} ms for the whole request")

        # Silence is refused without troubling the call, which goes on.
        silence = b64(bytes(2 * 16000))
        quiet = await ask(sock, {"cmd": "test_call.hear", "call_id": started["call_id"], "pcm16k": silence})
        assert quiet["ok"] is False and quiet["code"] == "no-speech" and "aucune parole" in quiet["error"]
        typed = await ask(sock, {"cmd": "test_call.say", "call_id": started["call_id"], "text": "avec le docteur Martin"})
        assert typed["ok"] and typed["replies"]

        await ask(sock, {"cmd": "test_call.end", "call_id": started["call_id"]})
        # In the call log like a phone call's turn: what was heard, from how much audio, in how long.
        events = [e.data for e in queries.call_events(box.store, started["call_id"]) if e.kind == "transcript"]
        assert "rendez" in events[0]["text"].lower() and events[0]["audio_ms"] > 2000 and events[0]["decode_ms"] > 0
        assert events[-1]["audio_ms"] == 0, "the typed turn after it has no audio"

    run_core(short_dir, None, talk)


def test_spoken_turns_that_cannot_be_heard_get_clear_refusals(short_dir: Path) -> None:
    async def talk(sock: Path, box: Appliance) -> None:
        started = await ask(sock, {"cmd": "test_call.start"})
        call_id = started["call_id"]

        async def hear(pcm16k: object, call: str = call_id) -> dict[str, object]:
            return await ask(sock, {"cmd": "test_call.hear", "call_id": call, "pcm16k": pcm16k})

        assert (await hear(b64(bytes(3200)), "sim-gone"))["error"] == "cet appel de test est terminé ; commencez-en un autre"
        assert (await hear(""))["code"] == "audio-empty"
        assert (await hear(b64(bytes(20 * 16000 * 2 + 2))))["code"] == "audio-too-long"
        assert (await hear("%%% not base64 %%%"))["code"] == "audio-invalid"
        assert (await hear(b64(bytes(3201))))["code"] == "audio-invalid", "16-bit samples: an even number of bytes"
        assert (await hear(None))["code"] == "audio-invalid"
        assert (await hear(12))["code"] == "audio-invalid"
        # None of it reached the call, which still takes a typed turn.
        typed = await ask(sock, {"cmd": "test_call.say", "call_id": call_id, "text": "je voudrais un rendez-vous"})
        assert typed["ok"] and typed["replies"]

    run_core(short_dir, None, talk)


def test_a_recognizer_that_fails_to_load_is_a_sentence_and_is_tried_again(short_dir: Path) -> None:
    config_file = short_dir / "box.toml"
    config_file.write_text('[models]\nasr = "whisper-gigantic"\n')

    async def talk(sock: Path, box: Appliance) -> None:
        started = await ask(sock, {"cmd": "test_call.start"})
        spoken = {"cmd": "test_call.hear", "call_id": started["call_id"], "pcm16k": b64(bytes(3200))}
        for _ in range(2):  # not remembered as broken for good: fixed models are picked up
            failed = await ask(sock, spoken)
            assert failed["ok"] is False and failed["code"] == "hearing-failed"
            assert failed["error"].startswith("la reconnaissance vocale n'a pas pu se charger : ")
            assert "no manifest for model 'whisper-gigantic'" in failed["detail"]
            assert "Traceback" not in failed["error"]
        # A page polling the state sees the failure once, then a new attempt.
        assert (await ask(sock, {"cmd": "test_call.hearing"}))["state"] == "loading"
        while (state := await ask(sock, {"cmd": "test_call.hearing"})).get("state") == "loading":
            await asyncio.sleep(0.05)
        assert state["code"] == "hearing-failed"
        assert (await ask(sock, {"cmd": "test_call.hearing"}))["state"] == "loading"
        assert (await ask(sock, {"cmd": "test_call.say", "call_id": started["call_id"], "text": "allô"}))["ok"]

    run_core(short_dir, config_file, talk)


def test_a_core_without_ears_says_so() -> None:
    async def no_call(*args: object, **kwargs: object) -> None:
        raise AssertionError("no call is placed")

    with pytest.raises(ControlError, match="ne sait pas reconnaître la parole") as refused:
        asyncio.run(TypedCalls(no_call, time.monotonic).hearing())
    assert refused.value.code == "hearing-unavailable"


def test_the_clip_is_trimmed_to_its_speech_with_a_calls_margins() -> None:
    """A click shorter than a turn is ignored; the speech keeps the call's pre- and post-roll."""
    from appliance.audio.vad import EnergyVad
    from appliance.speech.asr import Transcript
    from appliance.speech.hearing import Ears

    class Recorder:
        heard: list[np.ndarray] = []

        def transcribe(self, pcm16k: np.ndarray, *, hotwords: tuple[str, ...] = ()) -> Transcript:
            self.heard.append(pcm16k)
            return Transcript("bonjour", "fr", pcm16k.size / 16000, 0.25, 0.1, -0.2)

        def warm_up(self) -> None:
            pass

    rate = 16000
    tone = (0.3 * np.sin(np.arange(rate) * 2 * np.pi * 440 / rate)).astype(np.float32)
    clip = np.zeros(6 * rate, dtype=np.float32)
    clip[int(0.5 * rate):int(0.55 * rate)] = tone[:int(0.05 * rate)]  # a 50 ms click
    clip[2 * rate:4 * rate] = np.concatenate([tone, tone])  # two seconds of "speech"
    recorder = Recorder()
    heard = Ears(EnergyVad, recorder, min_speech_s=0.25).hear(clip)
    assert heard.text == "bonjour" and heard.asr_ms == 250 and heard.clip_s == 6.0
    # 2 s of speech, 0.3 s before (the call's pre-roll) and 0.15 s after, to the VAD's 32 ms windows.
    assert heard.speech_s == pytest.approx(2.45, abs=0.07)
    assert recorder.heard[0].size == round(heard.speech_s * rate)
    assert Ears(EnergyVad, recorder).hear(np.zeros(rate, dtype=np.float32)).speech_s == 0.0
