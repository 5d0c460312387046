"""A misbehaving network between the box and the real FHIR server.

``FaultProxy`` listens on 127.0.0.1 in front of a real server and does, to every
request, what its current ``mode`` says; the mode can be switched at any moment
from the test:

- ``pass``: forwarded, and the server's reply relayed;
- ``down``: nothing listens on the port any more (connection refused);
- ``error500``: a 500 comes back at once, nothing reaches the server;
- ``hang``: the request is read and never answered (the client's timeout fires);
- ``drop_halfway``: a write (anything but GET/HEAD) is forwarded, so it happens in
  the server, then the client gets half the reply and a closed connection: the
  classic lost reply. Reads pass, otherwise no write would ever be attempted
  (the adapter searches before it creates);
- ``garbage``: 200 with a body that is not JSON;
- ``teapot``: 418, a status no FHIR server sends.

Replies carry the proxy's address where the server wrote its own (next-page
links, ``Location``), as a reverse proxy in front of a real server would: the
adapter rightly refuses to follow a link that leaves its base URL.

One request per connection (``Connection: close`` both ways): the proxy never has
to find where a keep-alive reply ends, and a mode switch applies from the very
next request. Each connection has its own thread; every blocking call has a
timeout, so ``close()`` joins them all and leaves no socket open (warnings are
errors in the tests, a forgotten socket is a ResourceWarning).
"""

from __future__ import annotations

import json
import select
import socket
import threading
from collections import Counter
from typing import Final, Literal, get_args
from urllib.parse import urlsplit

Mode = Literal["pass", "down", "error500", "hang", "drop_halfway", "garbage", "teapot"]
MODES: Final = get_args(Mode)
DROPPED: Final = "dropped"

_POLL_S: Final = 0.05  # how soon the accept loop and hung requests notice a mode change or close()
_IO_TIMEOUT_S: Final = 30.0  # a slow real server still answers; a stuck peer does not hold a thread forever
_HANG_LIMIT_S: Final = 120.0  # a client that never gives up is let go eventually
_MAX_HEAD: Final = 64 * 1024


class FaultProxy:
    """``with FaultProxy("http://127.0.0.1:8000/fhir") as proxy: proxy.mode = "down"``."""

    def __init__(self, upstream_base_url: str, mode: Mode = "pass") -> None:
        url = urlsplit(upstream_base_url)
        if url.scheme != "http" or url.hostname != "127.0.0.1" or url.port is None:
            raise ValueError(f"the fault proxy fronts a plain http://127.0.0.1:<port> server, got {upstream_base_url!r}")
        self._upstream = (url.hostname, url.port)
        self._upstream_origin = f"http://127.0.0.1:{url.port}".encode()
        self._path = url.path.rstrip("/")
        self._mode: Mode = "pass"
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._listening_as_wanted = threading.Event()
        self._handlers: set[threading.Thread] = set()
        self.counts: Counter[str] = Counter()
        """Requests seen per mode, and under ``DROPPED`` the replies actually dropped."""
        # Bound now, so the port is known (and stays ours) before the first request.
        self._listener: socket.socket | None = self._listen(0)
        self.port: int = self._listener.getsockname()[1]
        self._server = threading.Thread(target=self._serve, name="fault-proxy", daemon=True)
        self._server.start()
        self.mode = mode

    @property
    def base_url(self) -> str:
        """Where the box should point its FHIR adapter."""
        return f"http://127.0.0.1:{self.port}{self._path}"

    @property
    def mode(self) -> Mode:
        return self._mode

    @mode.setter
    def mode(self, mode: Mode) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown fault proxy mode {mode!r}; one of {', '.join(MODES)}")
        with self._lock:
            self._mode = mode
            self._listening_as_wanted.clear()
        # Wait for the accept loop to open or close the port: when the setter
        # returns, "down" really refuses and anything else really listens.
        if not self._listening_as_wanted.wait(timeout=5.0):
            raise RuntimeError(f"the fault proxy could not switch to {mode!r} (port {self.port} taken?)")

    def close(self) -> None:
        self._closing.set()
        self._server.join(timeout=10.0)
        with self._lock:
            handlers = list(self._handlers)
        for handler in handlers:
            handler.join(timeout=_IO_TIMEOUT_S + 5)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- accepting ---------------------------------------------------------------

    def _listen(self, port: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            # Reopening the same port after "down" while old connections sit in TIME_WAIT.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))
            sock.listen(128)
        except OSError:
            sock.close()
            raise
        return sock

    def _serve(self) -> None:
        try:
            while not self._closing.is_set():
                self._follow_mode()
                if self._listener is None:
                    self._closing.wait(_POLL_S)
                    continue
                ready, _, _ = select.select([self._listener], [], [], _POLL_S)
                if not ready:
                    continue
                try:
                    client, _ = self._listener.accept()
                except OSError:
                    continue
                handler = threading.Thread(target=self._handle, args=(client,), name="fault-proxy-conn", daemon=True)
                with self._lock:
                    self._handlers = {t for t in self._handlers if t.is_alive()}
                    self._handlers.add(handler)
                handler.start()
        finally:
            if self._listener is not None:
                self._listener.close()
                self._listener = None

    def _follow_mode(self) -> None:
        """Open or close the listening socket to match the mode (only this thread touches it)."""
        with self._lock:
            down = self._mode == "down"
        if down and self._listener is not None:
            self._listener.close()  # connections still in the backlog are reset: refused too
            self._listener = None
        elif not down and self._listener is None:
            try:
                self._listener = self._listen(self.port)
            except OSError:
                return  # the setter times out and says so
        self._listening_as_wanted.set()

    # -- one connection ------------------------------------------------------------

    def _handle(self, client: socket.socket) -> None:
        with client:
            client.settimeout(_IO_TIMEOUT_S)
            try:
                request = _read_request(client)
            except (OSError, ValueError):
                return
            if request is None:
                return
            with self._lock:
                mode = self._mode
            method = request.split(b" ", 1)[0].upper()
            try:
                self._act(mode, method, request, client)
            except OSError:
                pass  # the client gave up (its timeout): nothing to relay to

    def _act(self, mode: Mode, method: bytes, request: bytes, client: socket.socket) -> None:
        write = method not in (b"GET", b"HEAD")
        self._count(mode)
        match mode:
            case "pass" | "down":
                # "down" here: accepted just before the port closed; let it through.
                client.sendall(self._forward(request))
            case "error500":
                client.sendall(_reply(500, "Internal Server Error", _outcome("fault proxy: the server failed")))
            case "hang":
                self._hang(client)
            case "drop_halfway":
                reply = self._forward(request)
                if write:
                    self._count(DROPPED)
                    client.sendall(reply[: len(reply) // 2])
                    client.shutdown(socket.SHUT_RDWR)
                else:
                    client.sendall(reply)
            case "garbage":
                client.sendall(_reply(200, "OK", b'{"resourceType": "Bundle", "entry": [{"resource": {"id": '))
            case "teapot":
                client.sendall(_reply(418, "I'm a teapot", b"short and stout", content_type="text/plain"))

    def _forward(self, request: bytes) -> bytes:
        """Send the request to the real server and return its whole reply (it closes after one)."""
        with socket.create_connection(self._upstream, timeout=_IO_TIMEOUT_S) as upstream:
            upstream.sendall(request)
            chunks = []
            while chunk := upstream.recv(65536):
                chunks.append(chunk)
        return self._as_ours(b"".join(chunks))

    def _as_ours(self, reply: bytes) -> bytes:
        """The reply with the server's origin replaced by the proxy's, Content-Length adjusted."""
        ours = f"http://127.0.0.1:{self.port}".encode()
        head, sep, body = reply.partition(b"\r\n\r\n")
        if not sep or b"transfer-encoding: chunked" in head.lower():
            return reply  # not seen from sekmet; relayed untouched rather than corrupted
        body = body.replace(self._upstream_origin, ours)
        lines = []
        for line in head.replace(self._upstream_origin, ours).split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                line = b"Content-Length: " + str(len(body)).encode()
            lines.append(line)
        return b"\r\n".join(lines) + sep + body

    def _hang(self, client: socket.socket) -> None:
        """Hold the request unanswered until the client hangs up (its timeout) or the proxy closes."""
        waited = 0.0
        while not self._closing.is_set() and waited < _HANG_LIMIT_S:
            ready, _, _ = select.select([client], [], [], _POLL_S)
            waited += _POLL_S
            if ready and not client.recv(4096):
                return  # closed by the client

    def _count(self, what: str) -> None:
        with self._lock:
            self.counts[what] += 1


def _read_request(sock: socket.socket) -> bytes | None:
    """One HTTP/1.1 request (head and Content-Length body) with ``Connection: close``
    put in place of whatever the client asked for. None if the client sent nothing."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            if data:
                raise ValueError("the client closed mid-request")
            return None
        data += chunk
        if len(data) > _MAX_HEAD:
            raise ValueError("request head too long")
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = 0
    kept = [lines[0]]
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        key = name.strip().lower()
        if key == b"content-length":
            length = int(value.strip())
        elif key == b"transfer-encoding":
            raise ValueError("chunked requests are not supported (httpx sends Content-Length)")
        if key not in (b"connection", b"keep-alive"):
            kept.append(line)
    kept.append(b"Connection: close")
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ValueError("the client closed mid-body")
        body += chunk
    return b"\r\n".join(kept) + b"\r\n\r\n" + body[:length]


def _reply(status: int, reason: str, body: bytes, *, content_type: str = "application/fhir+json") -> bytes:
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


def _outcome(diagnostics: str) -> bytes:
    return json.dumps({
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "exception", "diagnostics": diagnostics}],
    }).encode()
