"""The language models this process has opened, shared by the helper and the qualification.

A local model holds 250 MB to a few GB of memory: it is loaded once per process,
by the qualification pass in the background (never on a caller's time), and kept
only while it is qualified for something. A server back-end is an HTTP client,
opened at once.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from appliance.errors import ConfigError, ModelError
from appliance.llm.base import LanguageModel
from appliance.llm.llama import LlamaCppModel, local_identity
from appliance.llm.qualify import Backend
from appliance.llm.server import ServerModel
from appliance.llm.settings import LlmSettings
from appliance.models import ModelCatalog

_LOGGER = logging.getLogger(__name__)


def configured_backends(settings: LlmSettings, catalog: ModelCatalog | None) -> tuple[Backend, ...]:
    """The back-ends of ``settings``, the preferred first: the server, then the local model."""
    backends = []
    if settings.server_url:
        backends.append(Backend(
            kind="server",
            key=f"server {settings.server_base}|{settings.server_model}|{settings.server_api}",
            model=settings.server_model,  # "" : whatever the server runs (helper_status shows which)
            url=settings.server_base,
        ))
    if settings.model:
        if catalog is None:
            raise ConfigError("llm.model names a local model but no model catalog was given")
        manifest = catalog.get(settings.model)  # ModelError if there is no such manifest
        if manifest.role != "llm":
            raise ConfigError(f"llm.model {settings.model!r} is a {manifest.role} model, not a language model")
        backends.append(Backend(kind="local", key=f"local {local_identity(manifest)}", model=manifest.name))
    return tuple(backends)


def read_api_key(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        key = path.read_text(encoding="utf-8").strip()
    except OSError as err:
        raise ConfigError(f"llm.api_key_file {path}: cannot read it ({err.strerror})") from err
    if not key or any(c.isspace() for c in key):
        raise ConfigError(f"llm.api_key_file {path}: expected one key on one line")
    return key


class ModelPool:
    def __init__(self) -> None:
        self._models: dict[str, LanguageModel] = {}
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    def loaded(self, backend: Backend) -> LanguageModel | None:
        """The model if it is open already; never loads anything."""
        with self._lock:
            return self._models.get(backend.key)

    def open(self, backend: Backend, settings: LlmSettings, catalog: ModelCatalog | None) -> LanguageModel:
        """The model, loading it first if needed (seconds for a local model: not on a call)."""
        with self._lock:
            if backend.key in self._models:
                return self._models[backend.key]
            loading = self._loading.setdefault(backend.key, threading.Lock())
        with loading:  # two threads asking at once load it once
            existing = self.loaded(backend)
            if existing is not None:
                return existing
            model = self._make(backend, settings, catalog)
            with self._lock:
                self._models[backend.key] = model
            return model

    def put(self, backend: Backend, model: LanguageModel) -> None:
        """Use ``model`` for ``backend`` (a model opened elsewhere, or a test's fake)."""
        with self._lock:
            self._models[backend.key] = model

    def forget(self, backend: Backend) -> None:
        """Let go of a model (its memory goes when the last call using it returns)."""
        with self._lock:
            model = self._models.pop(backend.key, None)
        if isinstance(model, ServerModel):
            model.close()

    def close(self) -> None:
        """At shutdown: stop local generation at the next token, close the clients."""
        with self._lock:
            models, self._models = list(self._models.values()), {}
        for model in models:
            if isinstance(model, LlamaCppModel):
                model.stop()
            elif isinstance(model, ServerModel):
                model.close()

    @staticmethod
    def _make(backend: Backend, settings: LlmSettings, catalog: ModelCatalog | None) -> LanguageModel:
        if backend.kind == "server":
            return ServerModel(
                settings.server_base,
                model=settings.server_model,
                api=settings.server_api,
                api_key=read_api_key(settings.api_key_file),
                timeout_s=settings.timeout_s,
            )
        if catalog is None:
            raise ModelError("model-unknown", f"no model catalog to load {backend.model!r} from")
        manifest = catalog.get(backend.model)
        _LOGGER.info("loading language model %s", manifest.name)
        return LlamaCppModel(manifest, catalog.ensure(manifest.name))


POOL = ModelPool()
"""The process's models: the core's helper and its qualification pass share them."""
