"""A second emergency pass for what speech recognition garbles.

Whisper base turns "une grosse douleur dans la poitrine" into "ingrôstulé dans
la patrine": the phrase rules in ``emergency`` then see nothing. This pass snaps
near-misses of a few critical words back to the word ("patrine" → "poitrine")
and treats a critical word in its context as an alarm on its own.

It errs towards alarming on purpose: the emergency reply keeps the line open
(``Secretary``), so a false alarm costs the caller one sentence, while a miss
can cost a life. No language model is involved.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Final

from appliance.dialogue.emergency import EmergencyMatch
from appliance.dialogue.normalize import fold

_MIN_RATIO: Final = 0.8  # "patrine"/"poitrine" = 0.8; "poisson"/"poitrine" = 0.53
_MIN_LENGTH: Final = 6  # shorter tokens match too many ordinary words
_LOOKBACK: Final = 4  # tokens before a critical word that give it its meaning
_NEGATION_LOOKBACK: Final = 6  # "pas de douleur à la poitrine": the negation is 5 back
_NEGATIONS: Final = frozenset({"pas", "aucun", "aucune", "jamais", "sans"})


@dataclass(frozen=True, slots=True)
class _Critical:
    kind: str
    needs: frozenset[str] = frozenset()
    """Words one of which must come just before (``respire`` alone is no alarm)."""


_CRITICAL: Final = {
    "poitrine": _Critical("chest_pain"),
    "thoracique": _Critical("chest_pain"),
    "infarctus": _Critical("chest_pain"),
    "connaissance": _Critical("unconscious", frozenset({"perdu", "perd", "perte", "sans", "perdre"})),
    "inconscient": _Critical("unconscious"),
    "inconsciente": _Critical("unconscious"),
    "respire": _Critical("breathing", frozenset({"plus", "pas", "mal"})),
    "respirer": _Critical("breathing", frozenset({"plus", "pas", "mal"})),
    "etouffe": _Critical("choking"),
    "saigne": _Critical("bleeding", frozenset({"beaucoup", "enormement", "arrete", "abondamment"})),
    "hemorragie": _Critical("bleeding"),
    "suicide": _Critical("suicide"),
    "suicider": _Critical("suicide"),
    "convulse": _Critical("seizure"),
    "convulsions": _Critical("seizure"),
}


def detect_heard_emergency(text: str) -> EmergencyMatch | None:
    """An emergency in a garbled transcript, or None."""
    tokens = fold(text).split()
    for i, token in enumerate(tokens):
        word = _closest_critical(token)
        if word is None:
            continue
        critical = _CRITICAL[word]
        before = set(tokens[max(0, i - _LOOKBACK):i])
        if critical.needs:
            if critical.needs & before or critical.needs & set(tokens[i + 1:i + 2]):
                return EmergencyMatch(kind=critical.kind, phrase=" ".join(tokens[max(0, i - 2):i] + [word]))
            continue
        if set(tokens[max(0, i - _NEGATION_LOOKBACK):i]) & _NEGATIONS:
            continue  # "pas de douleur à la poitrine"
        return EmergencyMatch(kind=critical.kind, phrase=word)
    return None


def _closest_critical(token: str) -> str | None:
    if token in _CRITICAL:
        return token
    if len(token) < _MIN_LENGTH:
        return None
    found = difflib.get_close_matches(token, _CRITICAL, n=1, cutoff=_MIN_RATIO)
    return found[0] if found else None
