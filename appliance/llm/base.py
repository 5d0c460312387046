"""The language-model boundary: completion with an optional JSON-schema grammar.

The dialogue does not depend on a language model: understanding is rule-based
and safety rules never consult one. A model is an optional helper, used only
for the tasks it passed in ``qualify`` on this box.

Every back-end fails with a ``ModelError`` whose code says what went wrong:

    llm-timeout       no (complete) answer within the time given
    llm-busy          the local model was busy with another call for all that time
    llm-unreachable   the server could not be reached (refused, reset, no route)
    llm-refused       the server said no (4xx: a wrong API key, a request it rejects)
    llm-server-error  the server failed (5xx)
    llm-malformed     the answer is not what was asked for (not JSON, cut off, no text)
    llm-schema        JSON that does not match the schema asked for
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from appliance.errors import ModelError


@dataclass(frozen=True, slots=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float


class LanguageModel(Protocol):
    name: str

    def complete(
        self,
        prompt: str,
        *,
        max_tokens: int = 64,
        json_schema: dict[str, Any] | None = None,
        timeout_s: float | None = None,
    ) -> Completion:
        """Greedy completion. With ``json_schema`` the text is JSON matching it, or
        ``ModelError`` is raised; past ``timeout_s`` (None: no limit) it is ``llm-timeout``."""


def parse_answer(text: str, schema: dict[str, Any]) -> Any:
    """The JSON in ``text``, checked against ``schema`` (the subset the box's tasks use).

    A grammar-constrained local model can still be cut off by ``max_tokens``, and a
    server may ignore the grammar it was sent: the answer is checked either way.
    """
    try:
        # strict=False: llama.cpp's JSON grammar lets a raw newline into a string.
        value = json.loads(text, strict=False)
    except (json.JSONDecodeError, TypeError):
        raise ModelError("llm-malformed", f"the answer is not JSON ({len(text)} characters, cut off?)") from None
    problem = schema_problem(value, schema, "answer")
    if problem:
        raise ModelError("llm-schema", problem)
    return value


_TYPES: dict[str, type | tuple[type, ...]] = {
    "object": dict,
    "array": list,
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "null": type(None),
}


def schema_problem(value: Any, schema: dict[str, Any], where: str) -> str:
    """What makes ``value`` break ``schema`` ("" if nothing): type, enum, required,
    properties, additionalProperties, items, minLength/maxLength, minimum/maximum."""
    expected = schema.get("type")
    if expected is not None:
        kinds = _TYPES.get(expected)
        if kinds is None:
            return f"{where}: unsupported schema type {expected!r}"
        # bool is an int in Python, but not in JSON
        if not isinstance(value, kinds) or (isinstance(value, bool) and expected not in ("boolean",)):
            return f"{where}: expected {expected}, got {type(value).__name__}"
    if "enum" in schema and value not in schema["enum"]:
        return f"{where}: not one of the allowed values"
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            return f"{where}: shorter than {schema['minLength']} characters"
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            return f"{where}: longer than {schema['maxLength']} characters"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            return f"{where}: below {schema['minimum']}"
        if "maximum" in schema and value > schema["maximum"]:
            return f"{where}: above {schema['maximum']}"
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for key in schema.get("required", ()):
            if key not in value:
                return f"{where}: {key!r} is missing"
        for key, item in value.items():
            if key in properties:
                problem = schema_problem(item, properties[key], f"{where}.{key}")
                if problem:
                    return problem
            elif schema.get("additionalProperties") is False:
                return f"{where}: unexpected key {key!r}"
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            problem = schema_problem(item, schema["items"], f"{where}[{i}]")
            if problem:
                return problem
    return ""
