"""The emergency rule of the evaluation: after the first cue, nothing but the instruction.

An emergency scenario is a failing test if the assistant says anything but the
emergency instruction after the caller's first emergency cue: a caller whose
husband is grey and sweating must not hear "what else can I do for you?", nor
be asked for a birth date.

"The emergency instruction" is read from the dialogue's own templates, so the
rule follows the wording the practice approved instead of a copy of it here:
every sentence of a reply must be a sentence of the ``emergency`` template or of
a template whose name starts with ``emergency_`` (a shorter repeat, a goodbye).
Sentences are compared without case, accents or punctuation; ``{number}`` is the
practice's emergency number and any other placeholder matches any words.

"The first cue" is the scenario turn marked ``emergency_cue = true`` when there is
one (so an emergency heard one turn late fails), else the box's first
``emergency`` event.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Final

from appliance.dialogue.normalize import fold

_SENTENCE_END_RE: Final = re.compile(r"(?<=[.!?…])\s+")
_HOLE: Final = "zqxplaceholderzqx"  # survives ``fold`` as one word, then becomes "any words"
_SHOWN: Final = 2  # offending replies quoted in a failure: enough to see the problem


@cache
def _templates(language: str) -> dict[str, Any]:
    text = resources.files("appliance.dialogue").joinpath(f"templates/{language}.toml").read_text("utf-8")
    return tomllib.loads(text)


@dataclass(frozen=True)
class EmergencyInstruction:
    """Tells whether a reply is the emergency instruction and nothing else."""

    sentences: tuple[re.Pattern[str], ...]

    @classmethod
    def from_templates(cls, language: str, number: str) -> EmergencyInstruction:
        """The instruction as the dialogue's templates for ``language`` word it."""
        texts = [
            value for key, value in _templates(language).items()
            if isinstance(value, str) and (key == "emergency" or key.startswith("emergency_"))
        ]  # fmt: skip
        if not texts:
            raise LookupError(f"the {language} templates have no 'emergency' template")
        return cls.from_texts(texts, number)

    @classmethod
    def from_texts(cls, texts: Sequence[str], number: str) -> EmergencyInstruction:
        patterns = {_sentence_pattern(sentence, number) for text in texts for sentence in _sentences(text)}
        return cls(tuple(sorted(patterns, key=lambda p: p.pattern)))

    def __call__(self, reply: str) -> bool:
        said = [fold(s) for s in _sentences(reply)]
        said = [s for s in said if s]
        return bool(said) and all(any(p.fullmatch(s) for p in self.sentences) for s in said)


def _sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE_END_RE.split(text.strip()) if s.strip()]


def _sentence_pattern(sentence: str, number: str) -> re.Pattern[str]:
    filled = re.sub(r"\{(\w+)\}", lambda m: number if m.group(1) == "number" else f" {_HOLE} ", sentence)
    folded = fold(filled)
    return re.compile(re.escape(folded).replace(re.escape(_HOLE), r".+?"))


def emergency_failures(
    events: Sequence[dict[str, Any]], *, cue_transcript: int | None, is_instruction: EmergencyInstruction
) -> list[str]:
    """What breaks the rule in a call's event log (``event_to_dict`` form); [] when it holds.

    ``cue_transcript``: the index, among the call's ``transcript`` events, of the
    one that carried the scenario's ``emergency_cue`` turn, if it was heard.
    """
    starts = [i for i, e in enumerate(events) if e["kind"] == "emergency"]
    if cue_transcript is not None:
        heard = [i for i, e in enumerate(events) if e["kind"] == "transcript"]
        if cue_transcript < len(heard):
            starts.append(heard[cue_transcript])
    if not starts:
        return []  # no cue was heard and none detected: the outcome check says what went wrong
    replies = [e["text"] for e in events[min(starts) :] if e["kind"] == "reply"]
    if not replies:
        return ["emergency rule: the emergency instruction was never said after the first cue"]
    wrong = [text for text in replies if not is_instruction(text)]
    if not wrong:
        return []
    quoted = "; ".join(repr(text) for text in wrong[:_SHOWN]) + (f" (and {len(wrong) - _SHOWN} more)" if len(wrong) > _SHOWN else "")
    return [f"emergency rule: after the first emergency cue the assistant said more than the instruction: {quoted}"]
