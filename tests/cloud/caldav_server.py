"""A real Radicale CalDAV server on 127.0.0.1 for the sync tests.

Radicale lives in its own virtualenv (``.venv-cloud``, made by ``make
cloud-servers``), never in the box's. One server per test session, in a
temporary directory, with one user; each test makes its own calendar so tests
do not see each other's events.

``strict_preconditions`` is on: Radicale then refuses to replace an existing
event without ``If-Match`` (412), so every passing update proves the adapter
sent one.

Two smaller doubles for what Radicale will not do on demand: ``Meddling``, a
transport through which the world interferes (a reply lost, an edit slipped in
between two requests), and ``scripted_server``, a server that answers every
request with one status and body (500, a timeout, XML that is not XML).
"""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Final

import httpx
import pytest

from tests.ports import free_port

REPO: Final = Path(__file__).resolve().parents[2]
RADICALE_PYTHON: Final = REPO / ".venv-cloud" / "bin" / "python"
USER: Final = "box"
PASSWORD: Final = "secret-box-password"
_START_TIMEOUT_S: Final = 20.0


@dataclass(frozen=True)
class CaldavServer:
    url: str
    """``http://127.0.0.1:<port>/``"""
    username: str
    password: str
    root: Path

    def client(self) -> httpx.Client:
        """Another client of the same account: the staff's calendar app. Close it."""
        return httpx.Client(base_url=self.url, auth=(self.username, self.password), timeout=10)

    def make_calendar(self, name: str | None = None) -> str:
        """A new, empty calendar collection; returns its path (``/box/<name>/``)."""
        path = f"/{self.username}/{name or 'cal-' + uuid.uuid4().hex[:12]}/"
        with self.client() as client:
            response = client.request("MKCALENDAR", path)
        assert response.status_code == 201, f"MKCALENDAR {path}: {response.status_code} {response.text}"
        return path


def _write_config(root: Path, port: int) -> Path:
    (root / "users").write_text(f"{USER}:{PASSWORD}\n", encoding="utf-8")
    config = root / "config"
    config.write_text(
        f"""[server]
hosts = 127.0.0.1:{port}

[auth]
type = htpasswd
htpasswd_filename = {root / "users"}
htpasswd_encryption = plain
# Radicale waits 1 s after a wrong password by default; the tests have one.
delay = 0

[storage]
filesystem_folder = {root / "collections"}
strict_preconditions = True

[rights]
type = owner_only

[logging]
level = warning
""",
        encoding="utf-8",
    )
    return config


def _wait_until_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    with httpx.Client(timeout=1) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                tail = log.read_text(encoding="utf-8", errors="replace")[-2000:]
                pytest.fail(f"Radicale exited with code {process.returncode} at start:\n{tail}")
            try:
                client.get(url)  # any HTTP answer (401 included) means it is serving
                return
            except httpx.TransportError:
                time.sleep(0.05)
    pytest.fail(f"Radicale did not answer on {url} within {_START_TIMEOUT_S:g} s (log: {log})")


def start_radicale(root: Path) -> tuple[CaldavServer, subprocess.Popen[bytes]]:
    if not RADICALE_PYTHON.exists():
        pytest.fail(f"Radicale is not installed ({RADICALE_PYTHON} is missing): run make cloud-servers")
    port = free_port()
    config = _write_config(root, port)
    log = root / "radicale.log"
    with log.open("wb") as sink:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(
            [str(RADICALE_PYTHON), "-m", "radicale", "--config", str(config)],
            stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT, cwd=root,
        )  # fmt: skip
    server = CaldavServer(url=f"http://127.0.0.1:{port}/", username=USER, password=PASSWORD, root=root)
    try:
        _wait_until_ready(server.url, process, log)
    except BaseException:
        stop(process)
        raise
    return server, process


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture(scope="session")
def caldav_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CaldavServer]:
    """Radicale 3.9 on a free 127.0.0.1 port, for the whole session."""
    server, process = start_radicale(tmp_path_factory.mktemp("radicale"))
    try:
        yield server
    finally:
        stop(process)


# --- Misbehaviour on demand ----------------------------------------------------------


class Meddling(httpx.BaseTransport):
    """A real transport, with the world interfering around the first request of one method."""

    def __init__(self, method: str, *, before: Callable[[], object] | None = None, lose_reply: bool = False) -> None:
        self._inner = httpx.HTTPTransport()
        self._method, self._before, self._lose_reply = method, before, lose_reply
        self.sent: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        first = request.method == self._method and self._method not in self.sent
        self.sent.append(request.method)
        if first and self._before:
            self._before()
        response = self._inner.handle_request(request)
        if first and self._lose_reply:  # it reached the server; its reply never reaches the box
            response.read()
            response.close()
            raise httpx.ReadError("connection reset by peer", request=request)
        return response

    def close(self) -> None:
        self._inner.close()


class Scripted(BaseHTTPRequestHandler):
    """A tiny server answering every request with the status and body it is given."""

    status = 500
    body = b"oops"
    delay_s = 0.0

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.delay_s:
            threading.Event().wait(self.delay_s)
        try:
            self.send_response(self.status)
            self.send_header("Content-Length", str(len(self.body)))
            self.end_headers()
            self.wfile.write(self.body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting: that is the point of the timeout test

    do_GET = do_PUT = do_REPORT = do_PROPFIND = do_DELETE = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def scripted_server(status: int, body: bytes = b"", delay_s: float = 0.0) -> Iterator[str]:
    """``Scripted`` on a free 127.0.0.1 port; yields its URL."""
    handler = type("Handler", (Scripted,), {"status": status, "body": body, "delay_s": delay_s})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
