"""The language-model boundary: completion with an optional JSON-schema grammar.

The dialogue does not depend on a language model: understanding is rule-based
and safety rules never consult one. A model is an optional helper, used only
for the tasks it passed in ``qualify`` on this box.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float


class LanguageModel(Protocol):
    name: str

    def complete(self, prompt: str, *, max_tokens: int = 64, json_schema: dict[str, Any] | None = None) -> Completion:
        """Greedy completion; with ``json_schema`` the output is constrained to match it."""
