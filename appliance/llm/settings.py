"""The ``[llm]`` table: the optional language-model helper and where it runs.

```toml
[llm]
enabled = true                          # off by default: the box needs no model
model = "gemma-3-270m"                  # local manifest in models/; "" for none
server_url = "http://192.168.1.20:8080" # an OpenAI-compatible server on the network
server_model = "qwen2.5-3b-instruct"    # the name that server knows it by ("" = its default)
api_key_file = "/etc/appliance/llm.key" # optional bearer key, kept out of this file
```

Whatever is configured, the helper helps only with the tasks its model passed
in ``qualify`` on this box; the dialogue works the same with it off.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from appliance.errors import ConfigError

SERVER_APIS: Final = ("completions", "chat")
_MODEL_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}")


@dataclass(frozen=True, kw_only=True)
class LlmSettings:
    enabled: bool = False
    """Off: the registry's small models fail qualification (README, "Limits")."""
    model: str = "gemma-3-270m"
    """Local model (a manifest name) run by llama.cpp on the box; "" for none.
    With a server configured it is the fallback when the server does not answer."""
    server_url: str = ""
    """An OpenAI-compatible server (llama.cpp's ``llama-server``, ``llama_cpp.server``)
    as ``http(s)://host:port``; "" for none. Preferred over the local model."""
    server_model: str = ""
    """The model name sent to the server; "" lets the server use its only model."""
    server_api: str = "completions"
    """``completions`` (a raw prompt and a GBNF grammar: any model) or ``chat``
    (the server applies the model's chat template; JSON schema as ``response_format``)."""
    api_key_file: Path | None = None
    """A file holding the server's bearer key, so the key stays out of the configuration."""
    timeout_s: float = 1.0
    """How long the server has to classify a caller's request; past it the local
    model, if qualified, gets what remains of ``intent_budget_s``."""
    intent_budget_s: float = 1.5
    """The longest a caller ever waits on the helper for one turn, fallback included."""
    summary_timeout_s: float = 30.0
    """Per message summary; summaries are written after the call, nobody waits."""
    intent_threshold: float = 0.9
    """Share of the evaluation set a model must classify right to help with intents."""
    summary_threshold: float = 0.9
    """Share of the summary checks a model must pass to write summaries."""

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise ConfigError(f"llm.enabled must be true or false, got {self.enabled!r}")
        if not isinstance(self.model, str) or (self.model and not _MODEL_NAME.fullmatch(self.model)):
            raise ConfigError(f"llm.model must be a model manifest name (or \"\"), got {self.model!r}")
        _check_url(self.server_url)
        if not isinstance(self.server_model, str) or len(self.server_model) > 200 or "\n" in self.server_model:
            raise ConfigError(f"llm.server_model must be a model name (text), got {self.server_model!r}")
        if self.server_api not in SERVER_APIS:
            raise ConfigError(f"llm.server_api must be one of {', '.join(SERVER_APIS)}, got {self.server_api!r}")
        _check_range("timeout_s", self.timeout_s, 0.05, 60, "s")
        _check_range("intent_budget_s", self.intent_budget_s, 0.1, 10, "s")
        _check_range("summary_timeout_s", self.summary_timeout_s, 1, 600, "s")
        # Below a half the "gate" would let through a model wrong more often than right.
        _check_range("intent_threshold", self.intent_threshold, 0.5, 1.0, "")
        _check_range("summary_threshold", self.summary_threshold, 0.5, 1.0, "")
        if self.enabled and not self.model and not self.server_url:
            raise ConfigError("llm.enabled needs a local model (llm.model) or a server (llm.server_url)")

    @property
    def server_base(self) -> str:
        """``server_url`` without a trailing ``/`` or ``/v1`` (both are accepted)."""
        url = self.server_url.rstrip("/")
        return url[: -len("/v1")] if url.endswith("/v1") else url


def _check_range(key: str, value: object, low: float, high: float, unit: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"llm.{key} must be a number, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(f"llm.{key} must be {low:g}-{high:g}{' ' + unit if unit else ''}, got {value}")


def _check_url(url: object) -> None:
    if not isinstance(url, str):
        raise ConfigError(f"llm.server_url must be text, got {url!r}")
    if not url:
        return
    try:
        parts = urlsplit(url)
        parts.port  # raises on a port that is not a number or out of range
    except ValueError as err:
        raise ConfigError(f"llm.server_url {url!r} is not a valid URL ({err})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"llm.server_url must be http://host:port or https://host:port, got {url!r}")
    if parts.username or parts.password:
        # A password in the configuration would show on the setup page and in backups.
        raise ConfigError("llm.server_url must not hold credentials: put the key in llm.api_key_file")
    if parts.query or parts.fragment:
        raise ConfigError(f"llm.server_url must be the server's base address, without ?query or #fragment, got {url!r}")
