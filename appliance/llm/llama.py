"""llama.cpp runner (llama-cpp-python) for GGUF models named by a manifest."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from appliance.errors import ModelError
from appliance.llm.base import Completion
from appliance.models.manifest import ModelManifest

_LOGGER = logging.getLogger(__name__)


class LlamaCppModel:
    def __init__(self, manifest: ModelManifest, directory: Path) -> None:
        from llama_cpp import Llama  # heavy import, only when a model is really loaded

        gguf = [f.path for f in manifest.files if f.path.endswith(".gguf")]
        if not gguf:
            raise ModelError("model-invalid", f"model {manifest.name!r}: its manifest names no .gguf file")
        self.name = manifest.name
        self.instruct = bool(manifest.params.get("instruct", False))
        threads = int(manifest.params.get("threads", min(4, os.cpu_count() or 1)))
        try:
            self._llm = Llama(
                model_path=str(directory / gguf[0]),
                n_ctx=int(manifest.params.get("context_tokens", 2048)),
                n_threads=threads,
                verbose=False,
            )
        except (ValueError, RuntimeError) as err:
            raise ModelError("model-load-failed", f"model {manifest.name!r}: llama.cpp refused it: {err}") from err

    def complete(self, prompt: str, *, max_tokens: int = 64, json_schema: dict[str, Any] | None = None) -> Completion:
        from llama_cpp import LlamaGrammar

        grammar = LlamaGrammar.from_json_schema(json.dumps(json_schema), verbose=False) if json_schema else None
        started = time.perf_counter()
        out = self._llm.create_completion(prompt, max_tokens=max_tokens, temperature=0.0, grammar=grammar)
        usage = out["usage"]
        return Completion(
            text=out["choices"][0]["text"],
            prompt_tokens=usage["prompt_tokens"],
            completion_tokens=usage["completion_tokens"],
            seconds=time.perf_counter() - started,
        )
