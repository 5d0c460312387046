"""The emergency phrase rules of one language, and how they are read.

The French rules (``emergency``) came first and carry French-only extras (the
recogniser's glued words, French number words). The German and English tables
(``emergency_de``, ``emergency_en``) follow the same discipline, written once
here so the two cannot drift apart:

- a table of ``(kind, pattern, negatable)`` rules over a folded form of the
  words (lowercase, no punctuation, no accents, "ß" as "ss"), most urgent kinds
  first;
- a negation counts only when it stands right before the phrase, at most two
  words away ("no chest pain", "keine Brustschmerzen"); a rule whose words carry
  their own negation ("can't breathe", "atmet nicht") is never negated, and
  neither are suicidal words ("I don't want to die" still alarms);
- history told as history does not alarm ("a heart attack three years ago", "vor
  zwei Jahren einen Schlaganfall"), unless the same utterance says it is
  happening now ("now", "happening again", "schon wieder", "since this morning");
- two-part rules (``Pair``) alarm when both halves are affirmed anywhere: a stiff
  neck with a fever, grey skin with a pain in the left arm;
- an infant with a fever alarms below three months of age, and a baby whose age
  is not said is assumed young.

No model, no randomness: a doctor can read every table and say what it misses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

from appliance.dialogue.emergency import KINDS, EmergencyMatch
from appliance.dialogue.normalize import fold

_PAST_WINDOW_WORDS: Final = 6  # as in the French rules: a history marker this close dates the phrase
_NEGATION_WINDOW_CHARS: Final = 60  # only the last few words before a phrase are read for a negation
_YOUNG_DAYS: Final = 92  # fever before three months of age is an emergency


@dataclass(frozen=True, slots=True)
class Pair:
    """Both halves affirmed anywhere in the utterance make an emergency of ``kind``."""

    kind: str
    first: re.Pattern[str]
    second: re.Pattern[str]


@dataclass(frozen=True, slots=True)
class InfantFever:
    """Fever in an infant: young-infant words, a stated age, and fever words."""

    infant: re.Pattern[str]
    """Words for a baby; a stated age of three months or more clears them."""
    newborn: re.Pattern[str]
    """Words that say the child is young whatever else is said ("newborn")."""
    age: re.Pattern[str]
    """A stated age, with groups ``n`` (digits or a number word) and ``unit``."""
    fever: re.Pattern[str]
    numbers: dict[str, int]
    """Number words of the language up to twelve (the recogniser writes "six weeks")."""
    days_per_unit: dict[str, int]
    """Unit word prefix → days ("week" → 7)."""


@dataclass(frozen=True)
class PhraseTable:
    language: str
    rules: tuple[tuple[str, str, bool], ...]
    negated_before: re.Pattern[str]
    past: re.Pattern[str]
    now: re.Pattern[str]
    pairs: tuple[Pair, ...] = ()
    infant_fever: InfantFever | None = None
    _compiled: tuple[tuple[str, re.Pattern[str], bool], ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        unknown = {kind for kind, _, _ in self.rules} - set(KINDS)
        if unknown:
            raise ValueError(f"{self.language} emergency table: unknown kinds {sorted(unknown)}")
        compiled = tuple((kind, re.compile(rf"\b(?:{pattern})\b"), negatable) for kind, pattern, negatable in self.rules)
        object.__setattr__(self, "_compiled", compiled)

    def find(self, text: str) -> tuple[EmergencyMatch, ...]:
        """Every emergency kind described, at most one match per kind, most urgent first."""
        if not isinstance(text, str) or not text.strip():
            return ()
        folded = fold_words(text)
        found: dict[str, EmergencyMatch] = {}
        for kind, pattern, negatable in self._compiled:
            if kind in found:
                continue
            m = pattern.search(folded)
            while m is not None and negatable and (self._negated(folded, m.start())
                                                   or self._history(folded, m.start(), m.end())):
                # "no pain before, but now a pain in my chest": the next match may be affirmed.
                m = pattern.search(folded, m.start() + 1)
            if m is not None:
                found[kind] = EmergencyMatch(kind, m.group(0))
        for pair in self.pairs:
            if pair.kind in found:
                continue
            first, second = self._affirmed(pair.first, folded), self._affirmed(pair.second, folded)
            if first is not None and second is not None:
                found[pair.kind] = EmergencyMatch(pair.kind, f"{first} {second}")
        if self.infant_fever is not None and "child_fever_infant" not in found:
            infant = self._infant_with_fever(folded)
            if infant is not None:
                found["child_fever_infant"] = EmergencyMatch("child_fever_infant", infant)
        return tuple(found[kind] for kind in KINDS if kind in found)

    def detect(self, text: str) -> EmergencyMatch | None:
        matches = self.find(text)
        return matches[0] if matches else None

    # -- the discipline -----------------------------------------------------------
    def _negated(self, folded: str, start: int) -> bool:
        before = folded[max(0, start - _NEGATION_WINDOW_CHARS) : start]
        if start > _NEGATION_WINDOW_CHARS:
            before = before.partition(" ")[2]  # drop the word cut in half
        return self.negated_before.search(before) is not None

    def _history(self, folded: str, start: int, end: int) -> bool:
        if self.now.search(folded):
            return False
        before = " ".join(folded[:start].split()[-_PAST_WINDOW_WORDS:])
        after = " ".join(folded[end:].split()[:_PAST_WINDOW_WORDS])
        return self.past.search(before) is not None or self.past.search(after) is not None

    def _affirmed(self, pattern: re.Pattern[str], folded: str) -> str | None:
        for m in pattern.finditer(folded):
            if not self._negated(folded, m.start()) and not self._history(folded, m.start(), m.end()):
                return m.group(0)
        return None

    def _infant_with_fever(self, folded: str) -> str | None:
        rule = self.infant_fever
        assert rule is not None
        fever = self._affirmed(rule.fever, folded)
        if fever is None:
            return None
        ages = []
        for m in rule.age.finditer(folded):
            n = m.group("n")
            value = int(n) if n.isdigit() else rule.numbers.get(n)
            unit = next((days for prefix, days in rule.days_per_unit.items() if m.group("unit").startswith(prefix)), None)
            if value is not None and unit is not None:
                ages.append((value * unit, m.group(0)))
        young = [words for days, words in ages if days < _YOUNG_DAYS]
        if young:
            return f"{young[0]} {fever}"
        newborn = rule.newborn.search(folded)
        if newborn is not None:
            return f"{newborn.group(0)} {fever}"
        baby = rule.infant.search(folded)
        if baby is not None and not ages:  # a baby of unknown age: assume young (safety)
            return f"{baby.group(0)} {fever}"
        return None


_SHARP_S: Final = str.maketrans({"ß": "ss", "ẞ": "ss"})


def fold_words(text: str) -> str:
    """The form the German and English tables read: ``fold`` (lowercase, no
    punctuation, no accents) with "ß" written "ss". Numbers stay as written:
    the French number-word conversion would turn English "six" into 6."""
    return fold(text[:2000].translate(_SHARP_S))
