"""The network back-end: an OpenAI-compatible server on the practice's network.

First against small servers on 127.0.0.1 that answer as told (well, wrongly, late,
not at all), then against llama-cpp-python's own server (``python -m
llama_cpp.server``) on the shipped GGUF, the way a practice would run one.
"""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from appliance.config import Config
from appliance.errors import ModelError
from appliance.llm.background import run_qualification
from appliance.llm.helper import GatedHelper
from appliance.llm.pool import ModelPool, configured_backends
from appliance.llm.qualify import helper_status, read_document
from appliance.llm.server import ServerModel
from appliance.llm.settings import LlmSettings
from appliance.llm.tasks import INTENT_MAX_TOKENS, INTENT_SCHEMA, INTENTS, SUMMARY_SCHEMA, UNSURE, intent_prompt
from appliance.models import ModelCatalog
from appliance.store import Store
from tests.ports import free_port
from tests.test_llm_helper import _RIGHT_INTENT, _RIGHT_SUMMARY, ScriptedModel, bad_model, good_model

Respond = Callable[[str, str, Any], tuple[int, Any]]


class _Handler(BaseHTTPRequestHandler):
    server: _FakeServer

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.server.requests.append((self.command, self.path, dict(self.headers), body))
        status, payload = self.server.respond(self.command, self.path, body)
        if callable(payload):  # the test writes the answer itself (trickling)
            payload(self)
            return
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


class _FakeServer(ThreadingHTTPServer):
    respond: Respond
    requests: list[tuple[str, str, dict[str, str], Any]]


@contextmanager
def fake_server(respond: Respond) -> Iterator[tuple[_FakeServer, str]]:
    server = _FakeServer(("127.0.0.1", free_port()), _Handler)
    server.respond = respond
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server, f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def completion(text: str) -> dict[str, Any]:
    return {"choices": [{"text": text, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 500, "completion_tokens": 6}}


def oracle(model_id: Callable[[], str] = lambda: "house-model") -> Respond:
    """A server with a perfect model: the evaluation set's right answers."""
    def respond(method: str, path: str, body: Any) -> tuple[int, Any]:
        if path == "/v1/models":
            return 200, {"object": "list", "data": [{"id": model_id(), "object": "model"}]}
        prompt = body["prompt"]
        if "intent" in body["grammar"]:
            return 200, completion(json.dumps({"intent": _RIGHT_INTENT.get(prompt) or UNSURE}))
        return 200, completion(json.dumps({"summary": _RIGHT_SUMMARY.get(prompt, "Demande un rappel.")}))
    return respond


@contextmanager
def stalling_server() -> Iterator[str]:
    """Accepts connections (the kernel's backlog) and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", free_port()))
    sock.listen(8)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store.open(tmp_path / "box.db")
    yield store
    store.close()


@pytest.fixture
def model_factory() -> Iterator[Callable[..., ServerModel]]:
    opened: list[ServerModel] = []

    def make(url: str, **kw: Any) -> ServerModel:
        opened.append(ServerModel(url, **kw))
        return opened[-1]

    yield make
    for model in opened:
        model.close()


# -- what is sent, what is read -----------------------------------------------------------

def test_a_completion_carries_a_grammar_the_model_name_and_the_key(model_factory) -> None:  # type: ignore[no-untyped-def]
    with fake_server(lambda m, p, b: (200, completion('{"intent": "results"}'))) as (server, url):
        model = model_factory(url + "/v1", model="house-model", api_key="s3cret")
        out = model.complete(intent_prompt("Vous avez reçu mes analyses ?"), max_tokens=INTENT_MAX_TOKENS,
                             json_schema=INTENT_SCHEMA, timeout_s=5)
    assert out.text == '{"intent": "results"}' and out.prompt_tokens == 500 and out.completion_tokens == 6
    method, path, headers, body = server.requests[0]
    assert (method, path) == ("POST", "/v1/completions")
    assert headers["Authorization"] == "Bearer s3cret"
    assert body["model"] == "house-model" and body["temperature"] == 0 and body["max_tokens"] == INTENT_MAX_TOKENS
    assert body["prompt"].endswith("Demande : Vous avez reçu mes analyses ?\nRéponse : ")
    # GBNF that allows exactly the intents; no json_schema beside it (llama-server refuses both)
    assert "root ::=" in body["grammar"]
    assert all(f'\\"{label}\\"' in body["grammar"] for label in (*INTENTS, UNSURE))
    assert "json_schema" not in body and body["stream"] is False


def test_the_chat_api_sends_the_schema_as_response_format(model_factory) -> None:  # type: ignore[no-untyped-def]
    answer = {"choices": [{"message": {"role": "assistant", "content": '{"summary": "Demande un rappel."}'}}]}
    with fake_server(lambda m, p, b: (200, answer)) as (server, url):
        model = model_factory(url, api="chat")
        out = model.complete("Résume.", json_schema=SUMMARY_SCHEMA, timeout_s=5)
    assert out.text == '{"summary": "Demande un rappel."}'
    _, path, headers, body = server.requests[0]
    assert path == "/v1/chat/completions" and "Authorization" not in headers and "model" not in body
    assert body["messages"] == [{"role": "user", "content": "Résume."}]
    assert body["response_format"] == {"type": "json_object", "schema": SUMMARY_SCHEMA}


@pytest.mark.parametrize(
    ("status", "payload", "code"),
    [
        (500, {"error": "out of memory"}, "llm-server-error"),
        (503, b"", "llm-server-error"),
        (401, {"detail": "Invalid API key"}, "llm-refused"),
        (404, b"not here", "llm-refused"),
        (200, b"<html>a captive portal</html>", "llm-malformed"),
        (200, {"choices": []}, "llm-malformed"),
        (200, {"choices": [{"text": None}]}, "llm-malformed"),
        (200, completion('{"intent": "bo'), "llm-malformed"),  # cut off by max_tokens
        (200, completion("Bien sûr ! La demande concerne un rendez-vous."), "llm-malformed"),
        (200, completion('{"intent": "surgery"}'), "llm-schema"),
        (200, completion('{"label": "book"}'), "llm-schema"),
    ],
)
def test_a_bad_answer_is_a_model_error_with_its_code(model_factory, status: int, payload: Any, code: str) -> None:  # type: ignore[no-untyped-def]
    with fake_server(lambda m, p, b: (status, payload)) as (_, url):
        with pytest.raises(ModelError) as failed:
            model_factory(url).complete(intent_prompt("je voudrais un rende vous"), json_schema=INTENT_SCHEMA,
                                        timeout_s=5)
    assert failed.value.code == code


def test_no_error_and_no_log_line_repeats_what_the_caller_said(model_factory, caplog) -> None:  # type: ignore[no-untyped-def]
    said = "Je suis Jeanne Martin, née le 3 mars 1950, au 06 11 22 33 44"
    # A 422 from a FastAPI server echoes the request, prompt included.
    echo = lambda m, p, b: (422, {"detail": [{"msg": "bad", "input": b}]})  # noqa: E731
    with caplog.at_level(logging.DEBUG), fake_server(echo) as (_, url):
        with pytest.raises(ModelError) as refused:
            model_factory(url).complete(intent_prompt(said), json_schema=INTENT_SCHEMA, timeout_s=5)
    assert refused.value.code == "llm-refused"
    assert "Martin" not in str(refused.value) and "Martin" not in caplog.text and "06 11" not in caplog.text


def test_a_server_that_never_answers_times_out_on_time(model_factory) -> None:  # type: ignore[no-untyped-def]
    with stalling_server() as url:
        model = model_factory(url, timeout_s=0.4)
        started = time.monotonic()
        with pytest.raises(ModelError) as late:
            model.complete(intent_prompt("allô"), json_schema=INTENT_SCHEMA)
    assert late.value.code == "llm-timeout"
    assert 0.35 < time.monotonic() - started < 1.2


def test_a_server_that_trickles_its_answer_is_cut_off_at_the_deadline(model_factory) -> None:  # type: ignore[no-untyped-def]
    def trickle(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "200")
        handler.end_headers()
        try:
            for _ in range(40):  # a byte every 0.05 s: each read is quick, the whole is not
                handler.wfile.write(b" ")
                handler.wfile.flush()
                time.sleep(0.05)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up, as it should

    with fake_server(lambda m, p, b: (200, trickle)) as (_, url):
        started = time.monotonic()
        with pytest.raises(ModelError) as late:
            model_factory(url).complete("x", json_schema=INTENT_SCHEMA, timeout_s=0.5)
        assert late.value.code == "llm-timeout"
        assert time.monotonic() - started < 1.2


def test_a_server_that_is_not_there_is_unreachable(model_factory) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ModelError) as gone:
        model_factory(f"http://127.0.0.1:{free_port()}").complete("x", timeout_s=2)
    assert gone.value.code == "llm-unreachable"


def test_only_http_servers_are_accepted() -> None:
    with pytest.raises(ModelError):
        ServerModel("file:///etc/passwd")


def test_the_model_a_server_really_runs_is_asked_for(model_factory) -> None:  # type: ignore[no-untyped-def]
    listing = {"data": [{"id": "qwen2.5-3b"}, {"id": "llama-3.2-1b"}]}
    with fake_server(lambda m, p, b: (200, listing)) as (_, url):
        assert model_factory(url, model="llama-3.2-1b").served_model() == "llama-3.2-1b"
        # a name the server does not know: it runs its default, so that is what is judged
        assert model_factory(url, model="gpt-4").served_model() == "qwen2.5-3b"
    with fake_server(lambda m, p, b: (200, {"data": []})) as (_, url):
        with pytest.raises(ModelError, match="lists no model"):
            model_factory(url).served_model()


# -- the server behind the gate -----------------------------------------------------------

def server_config(tmp_path: Path, url: str, **llm: Any) -> Config:
    settings = {"model": "", "server_url": url, **llm}
    return Config(data_dir=tmp_path, llm=LlmSettings(enabled=True, **settings))


def test_a_good_server_qualifies_and_answers_the_calls(tmp_path: Path, store: Store) -> None:
    served = ["house-model"]
    with fake_server(oracle(lambda: served[0])) as (server, url):
        config = server_config(tmp_path, url, server_model="house-model")
        pool = ModelPool()
        run_qualification(config, store, threading.Event(), pool=pool)
        backends = configured_backends(config.llm, None)
        helper = GatedHelper(config.llm, store, backends, pool.loaded)
        assert helper.intent("je voudrais un rende vous pour un vaccin") == "book"
        status = helper_status(store)
        assert status.backend == "server" and status.model == "house-model" and status.helps_with == ("intent", "summary")
        assert read_document(store)["results"][backends[0].key]["served"] == "house-model"

        # Started again: the stored verdict stands, the server is only asked what it runs.
        asked = len(server.requests)
        run_qualification(config, store, threading.Event(), pool=pool)
        assert [path for _, path, _, _ in server.requests[asked:]] == ["/v1/models"]

        # The practice swapped the model behind the same address: evaluated again.
        served[0] = "another-model"
        asked = len(server.requests)
        run_qualification(config, store, threading.Event(), pool=pool)
        assert len(server.requests) - asked > 10
        pool.close()


def test_the_page_names_the_model_a_server_runs_when_none_was_configured(tmp_path: Path, store: Store) -> None:
    with fake_server(oracle(lambda: "mistral-7b-instruct")) as (_, url):
        pool = ModelPool()
        run_qualification(server_config(tmp_path, url), store, threading.Event(), pool=pool)
        pool.close()
    status = helper_status(store)
    assert (status.backend, status.model, status.backends[0].url) == ("server", "mistral-7b-instruct", url)


def test_an_unreachable_server_is_recorded_and_tried_again(tmp_path: Path, store: Store) -> None:
    config = server_config(tmp_path, f"http://127.0.0.1:{free_port()}")
    stop = threading.Event()
    pool = ModelPool()
    worker = threading.Thread(target=run_qualification, args=(config, store, stop), kwargs={"pool": pool, "retry_s": 0.05})
    worker.start()
    time.sleep(0.3)
    stop.set()
    worker.join(timeout=5)
    assert not worker.is_alive()
    status = helper_status(store)
    assert status.backends[0].state == "unreachable" and "Connect" in status.backends[0].detail
    assert status.intent is None and status.helps_with == ()
    pool.close()


def _both_qualified(tmp_path: Path, store: Store, url: str, local: ScriptedModel, **llm: Any) -> tuple[GatedHelper, ModelPool]:
    """A server and the local fallback, both qualified (with fakes), then the real
    client towards ``url`` put in place of the server's fake."""
    config = Config(data_dir=tmp_path, llm=LlmSettings(enabled=True, server_url=url, **llm))
    backends = configured_backends(config.llm, ModelCatalog())
    pool = ModelPool()
    pool.put(backends[0], good_model())
    pool.put(backends[1], local)
    run_qualification(config, store, threading.Event(), pool=pool)
    pool.put(backends[0], ServerModel(url, timeout_s=config.llm.timeout_s))
    return GatedHelper(config.llm, store, backends, pool.loaded), pool


def test_when_the_server_stalls_the_local_model_answers_within_the_budget(tmp_path: Path, store: Store) -> None:
    with stalling_server() as url:
        helper, pool = _both_qualified(tmp_path, store, url, good_model(), timeout_s=0.4, intent_budget_s=1.0)
        started = time.monotonic()
        assert helper.intent("Vous avez reçu mes analyses ?") == "results"
        waited = time.monotonic() - started
        pool.close()
    assert 0.35 < waited < 1.0 + 0.2  # the server's 0.4 s, then the local model


def test_when_the_server_fails_and_the_local_model_is_not_qualified_there_is_no_intent(
    tmp_path: Path, store: Store
) -> None:
    with fake_server(lambda m, p, b: (500, {"error": "crashed"})) as (_, url):
        helper, pool = _both_qualified(tmp_path, store, url, bad_model(), timeout_s=0.4)
        started = time.monotonic()
        assert helper.intent("Vous avez reçu mes analyses ?") is None
        assert time.monotonic() - started < 0.4  # a 500 is quick: no waiting for nothing
        pool.close()


# -- llama-cpp-python's own server on the shipped GGUF --------------------------------------

@pytest.fixture(scope="module")
def llama_server(catalog: ModelCatalog, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    manifest = catalog.get("gemma-3-270m")
    gguf = catalog.ensure(manifest.name) / next(f.path for f in manifest.files if f.path.endswith(".gguf"))
    port = free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", manifest.name,
             "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--n_threads", "2"],
            stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                pytest.fail(f"llama_cpp.server exited ({process.returncode}):\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(url + "/v1/models", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server not ready after 120 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        # The first request evaluates the whole prompt prefix (seconds on a busy CI
        # machine); later ones reuse it from the KV cache, as on a real server.
        warm = ServerModel(url, timeout_s=120)
        warm.complete(intent_prompt("bonjour"), max_tokens=INTENT_MAX_TOKENS, json_schema=INTENT_SCHEMA)
        warm.close()
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.mark.models
@pytest.mark.parametrize("api", ["completions", "chat"])
def test_llama_cpp_server_answers_json_that_matches_the_schema(llama_server: str, api: str) -> None:
    model = ServerModel(llama_server, model="gemma-3-270m", api=api, timeout_s=120)
    try:
        assert model.served_model() == "gemma-3-270m"
        out = model.complete(intent_prompt("je voudrais un rende vous pour un vaccin"),
                             max_tokens=INTENT_MAX_TOKENS, json_schema=INTENT_SCHEMA)
    finally:
        model.close()
    answer = json.loads(out.text)  # ServerModel checked the schema already; this checks the check
    assert set(answer) == {"intent"} and answer["intent"] in (*INTENTS, UNSURE)
    assert out.completion_tokens > 0 and out.prompt_tokens > 400


@pytest.mark.models
def test_the_shipped_model_fails_qualification_through_the_server_and_the_gate_stays_shut(
    llama_server: str, tmp_path: Path, store: Store
) -> None:
    # Generous limits, so what fails it is the model, not this machine's load.
    config = server_config(tmp_path, llama_server, server_model="gemma-3-270m",
                           timeout_s=20, intent_budget_s=10, summary_timeout_s=120)
    pool = ModelPool()
    started = time.monotonic()
    run_qualification(config, store, threading.Event(), pool=pool)
    took = time.monotonic() - started
    status = helper_status(store)
    server = status.backends[0]
    assert (status.backend, server.state, server.url) == ("server", "done", llama_server)
    assert status.intent is not None and status.summary is not None
    print(f"\ngemma-3-270m through llama_cpp.server: intents {status.intent.correct}/{status.intent.tried} tried "
          f"of {status.intent.total}, summaries {status.summary.correct}/{status.summary.tried} tried "
          f"of {status.summary.total}, {took:.0f} s")
    assert not status.intent.qualified and not status.summary.qualified
    assert status.helps_with == ()
    helper = GatedHelper(config.llm, store, configured_backends(config.llm, None), pool.loaded)
    assert helper.intent("Vous avez reçu mes analyses ?") is None
    assert helper.summary("results", "Patient : Vous avez reçu mes analyses ?") is None
    pool.close()
