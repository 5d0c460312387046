"""llama.cpp runner (llama-cpp-python) for GGUF models named by a manifest."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from appliance.errors import ModelError
from appliance.llm.base import Completion, parse_answer
from appliance.models.manifest import ModelManifest



def gguf_file(manifest: ModelManifest) -> tuple[str, str]:
    """The manifest's GGUF file: (path in the model directory, sha256)."""
    for file in manifest.files:
        if file.path.endswith(".gguf"):
            return file.path, file.sha256
    raise ModelError("model-invalid", f"model {manifest.name!r}: its manifest names no .gguf file")


def local_identity(manifest: ModelManifest) -> str:
    """What a qualification of this model is valid for: its name and its weights
    (the manifest's sha256, verified at load), so a swapped file is a new model."""
    return f"{manifest.name}@{gguf_file(manifest)[1][:16]}"


class LlamaCppModel:
    """One GGUF in this process. llama.cpp contexts are not thread-safe: one
    completion at a time, the others wait (within their own timeout)."""

    def __init__(self, manifest: ModelManifest, directory: Path) -> None:
        from llama_cpp import Llama  # heavy import, only when a model is really loaded

        path, _ = gguf_file(manifest)
        self.name = manifest.name
        self.identity = local_identity(manifest)
        self.instruct = bool(manifest.params.get("instruct", False))
        threads = int(manifest.params.get("threads", min(4, os.cpu_count() or 1)))
        try:
            self._llm = Llama(
                model_path=str(directory / path),
                n_ctx=int(manifest.params.get("context_tokens", 2048)),
                n_threads=threads,
                verbose=False,
            )
        except (ValueError, RuntimeError) as err:
            raise ModelError("model-load-failed", f"model {manifest.name!r}: llama.cpp refused it: {err}") from err
        self._lock = threading.Lock()
        self._grammars: dict[str, Any] = {}
        self._stopped = False

    def stop(self) -> None:
        """End the completion under way at its next token and refuse new ones (at shutdown)."""
        self._stopped = True

    def complete(
        self,
        prompt: str,
        *,
        max_tokens: int = 64,
        json_schema: dict[str, Any] | None = None,
        timeout_s: float | None = None,
    ) -> Completion:
        from llama_cpp import StoppingCriteriaList

        started = time.monotonic()
        deadline = None if timeout_s is None else started + timeout_s
        if not self._lock.acquire(timeout=-1 if timeout_s is None else max(timeout_s, 0.0)):
            raise ModelError("llm-busy", f"model {self.name!r} stayed busy with another request for {timeout_s:.1f} s")
        late = False

        def past_deadline(_ids: Any, _logits: Any) -> bool:
            # Checked after every token: the prompt is short, generation is what runs long.
            nonlocal late
            late = self._stopped or (deadline is not None and time.monotonic() > deadline)
            return late

        try:
            if self._stopped:
                raise ModelError("llm-timeout", f"model {self.name!r} is shutting down")
            out = self._llm.create_completion(
                prompt,
                max_tokens=max_tokens,
                temperature=0.0,
                grammar=self._grammar(json_schema),
                stopping_criteria=StoppingCriteriaList([past_deadline]),
            )
        finally:
            self._lock.release()
        seconds = time.monotonic() - started
        if late:
            raise ModelError("llm-timeout", f"model {self.name!r} took more than {timeout_s or 0:.1f} s")
        text = out["choices"][0]["text"]
        if json_schema is not None:
            parse_answer(text, json_schema)
        usage = out["usage"]
        return Completion(
            text=text,
            prompt_tokens=usage["prompt_tokens"],
            completion_tokens=usage["completion_tokens"],
            seconds=seconds,
        )

    def _grammar(self, json_schema: dict[str, Any] | None) -> Any:
        if json_schema is None:
            return None
        from llama_cpp import LlamaGrammar

        key = json.dumps(json_schema, sort_keys=True)
        if key not in self._grammars:  # compiling the GBNF each turn would cost the caller
            self._grammars[key] = LlamaGrammar.from_json_schema(key, verbose=False)
        return self._grammars[key]
