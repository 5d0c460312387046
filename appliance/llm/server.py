"""A language model on an OpenAI-compatible server on the practice's network.

For a practice whose box is too small for a useful model: a PC in the back office
runs llama.cpp's ``llama-server`` (or ``python -m llama_cpp.server``) and the box
sends it what the caller said. Two ways to ask, both understood by both servers:

- ``completions``: ``POST /v1/completions`` with the raw prompt and a ``grammar``
  (GBNF, made here from the JSON schema). Not ``json_schema``: llama_cpp.server
  ignores that field, and llama-server refuses a request carrying both.
- ``chat``: ``POST /v1/chat/completions``, the prompt as one user message (the
  server applies the model's chat template) and ``response_format =
  {"type": "json_object", "schema": ...}``.

The answer is checked against the schema either way: another OpenAI-compatible
server may ignore those fields, and its free text must fail here (``llm-schema``)
rather than reach a caller. Prompts hold what callers said: they are never logged,
and an error answer's body (a 422 echoes the request) is never read into a message.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from typing import Any, Final

import httpx

from appliance.errors import ModelError
from appliance.llm.base import Completion, parse_answer
from appliance.llm.settings import SERVER_APIS

_LOGGER = logging.getLogger(__name__)
_MAX_ANSWER_BYTES: Final = 1 << 20  # a few hundred tokens of JSON; more is not an answer to us
_PATHS: Final = {"completions": "/v1/completions", "chat": "/v1/chat/completions"}


class ServerModel:
    def __init__(
        self,
        base_url: str,
        *,
        model: str = "",
        api: str = "completions",
        api_key: str | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        if api not in SERVER_APIS:
            raise ValueError(f"api must be one of {SERVER_APIS}, got {api!r}")
        if not base_url.startswith(("http://", "https://")):
            raise ModelError("llm-refused", f"{base_url!r}: only http:// and https:// servers are supported")
        base = base_url.rstrip("/")
        self.base_url = base[: -len("/v1")] if base.endswith("/v1") else base  # ".../v1" is how servers print it
        self.model = model
        self.api = api
        self.timeout_s = timeout_s
        self.name = f"{model or 'default model'} on {self.base_url}"
        headers = {"Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        # trust_env=False: no HTTP(S)_PROXY detour for a server on the practice's own
        # network; what callers said must not cross a proxy the box was never told about.
        self._client = httpx.Client(
            base_url=self.base_url, headers=headers, follow_redirects=False, trust_env=False
        )

    def close(self) -> None:
        self._client.close()

    def complete(
        self,
        prompt: str,
        *,
        max_tokens: int = 64,
        json_schema: dict[str, Any] | None = None,
        timeout_s: float | None = None,
    ) -> Completion:
        started = time.monotonic()
        payload = self._request("POST", _PATHS[self.api], self._body(prompt, max_tokens, json_schema),
                                timeout_s if timeout_s is not None else self.timeout_s)
        text = _answer_text(payload, self.api)
        if json_schema is not None:
            parse_answer(text, json_schema)
        usage = payload.get("usage") if isinstance(payload.get("usage"), dict) else {}
        seconds = time.monotonic() - started
        _LOGGER.debug("%s answered %d characters in %.2f s", self.name, len(text), seconds)
        return Completion(
            text=text,
            prompt_tokens=_count(usage.get("prompt_tokens")),
            completion_tokens=_count(usage.get("completion_tokens")),
            seconds=seconds,
        )

    def served_model(self, timeout_s: float = 5.0) -> str:
        """The model the server will really use for our requests (``GET /v1/models``):
        the configured one if it lists it, else its first. Both servers run another
        model for a name they do not know, so this, not the name we send, is what a
        qualification is valid for."""
        payload = self._request("GET", "/v1/models", None, timeout_s)
        try:
            ids = [str(entry["id"]) for entry in payload["data"]]
        except (KeyError, TypeError):
            raise ModelError("llm-malformed", f"{self.base_url}/v1/models: no list of models in the answer") from None
        if not ids:
            raise ModelError("llm-malformed", f"{self.base_url}/v1/models: the server lists no model")
        return self.model if self.model in ids else ids[0]

    def _body(self, prompt: str, max_tokens: int, json_schema: dict[str, Any] | None) -> dict[str, Any]:
        body: dict[str, Any] = {"max_tokens": max_tokens, "temperature": 0.0, "stream": False}
        if self.model:
            body["model"] = self.model
        if self.api == "chat":
            body["messages"] = [{"role": "user", "content": prompt}]
            if json_schema is not None:
                body["response_format"] = {"type": "json_object", "schema": json_schema}
        else:
            body["prompt"] = prompt
            if json_schema is not None:
                body["grammar"] = gbnf(json.dumps(json_schema, sort_keys=True))
        return body

    def _request(self, method: str, path: str, body: dict[str, Any] | None, timeout_s: float) -> dict[str, Any]:
        url = f"{self.base_url}{path}"
        deadline = time.monotonic() + timeout_s
        try:
            # Streamed so the deadline holds for the whole answer, not for each read:
            # a server that trickles bytes must not keep a caller waiting.
            with self._client.stream(method, path, json=body, timeout=httpx.Timeout(timeout_s)) as response:
                _check_status(response.status_code, url)
                raw = bytearray()
                for chunk in response.iter_bytes():
                    raw += chunk
                    if len(raw) > _MAX_ANSWER_BYTES:
                        raise ModelError("llm-malformed", f"{url}: answer larger than {_MAX_ANSWER_BYTES} bytes")
                    if time.monotonic() > deadline:
                        raise ModelError("llm-timeout", f"{url}: no complete answer within {timeout_s:.1f} s")
        except httpx.TimeoutException:
            raise ModelError("llm-timeout", f"{url}: no answer within {timeout_s:.1f} s") from None
        except httpx.TransportError as err:
            raise ModelError("llm-unreachable", f"{url}: {err or type(err).__name__}") from err
        try:
            payload = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ModelError("llm-malformed", f"{url}: the answer is not JSON") from None
        if not isinstance(payload, dict):
            raise ModelError("llm-malformed", f"{url}: the answer is not a JSON object")
        return payload


def _check_status(status: int, url: str) -> None:
    if status < 300:
        return
    if status in (401, 403):
        raise ModelError("llm-refused", f"{url}: HTTP {status}, the server refused the API key (llm.api_key_file)")
    if status == 404:
        raise ModelError("llm-refused", f"{url}: HTTP 404, no OpenAI-compatible server at this address")
    if status < 500:
        raise ModelError("llm-refused", f"{url}: HTTP {status}, the server rejected the request")
    raise ModelError("llm-server-error", f"{url}: HTTP {status}, the server failed")


def _answer_text(payload: dict[str, Any], api: str) -> str:
    try:
        choice = payload["choices"][0]
        text = choice["message"]["content"] if api == "chat" else choice["text"]
    except (KeyError, IndexError, TypeError):
        field = "choices[0].message.content" if api == "chat" else "choices[0].text"
        raise ModelError("llm-malformed", f"the server's answer has no {field}") from None
    if not isinstance(text, str):
        raise ModelError("llm-malformed", "the server's answer text is not a string")
    return text


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


@functools.lru_cache(maxsize=8)
def gbnf(schema_json: str) -> str:
    """The GBNF grammar llama.cpp compiles from a JSON schema (the converter ships
    with llama-cpp-python; both servers parse its output)."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    return json_schema_to_gbnf(schema_json)
