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

from appliance.dialogue.emergency import EmergencyMatch, told_as_history
from appliance.dialogue.normalize import fold

_MIN_RATIO: Final = 0.8  # "patrine"/"poitrine" = 0.8; "poisson"/"poitrine" = 0.53
_MIN_LENGTH: Final = 6  # shorter tokens match too many ordinary words
_LOOKBACK: Final = 4  # tokens before a critical word that give it its meaning
_NEGATION_LOOKBACK: Final = 6  # "pas de douleur à la poitrine": the negation is 5 back
_NEGATIONS: Final = frozenset({"pas", "aucun", "aucune", "jamais", "sans"})
_NEGATION_BEFORE_NEEDED: Final = 3  # "sans perte de connaissance": "sans" right before the needed word
# Words after which a critical word is no alarm, whatever the spelling: "respire
# mal par le nez" is a cold, "une radio de la poitrine" an examination.
# A near-miss counts only where the word would stand in a sentence, after a small
# word ("dans la patrine"): alone or after a title it is a name ("Poirier.",
# "Madame Poirier").
_LEAD_WORDS: Final = frozenset(
    "la le les l de du des d dans a au aux sa ma ta son mon en une un sur il elle j je se s est".split()
)
_HARMLESS_AFTER: Final = {"respire": ("par le nez",), "respirer": ("par le nez",)}
_HARMLESS_BEFORE: Final = {
    "poitrine": frozenset({"radio", "radiographie", "scanner", "echographie", "irm", "boule", "grosseur", "kyste",
                           "bouton", "boutons", "eczema", "plaque", "plaques", "tatouage", "sein", "seins"}),
}


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
    """An emergency in a garbled transcript, or None.

    The exclusions of the phrase rules hold here too (``emergency``): a negation
    ("sans perte de connaissance"), history ("un infarctus l'année dernière"), and
    a harmless context ("respire mal par le nez", "une radio de la poitrine").
    """
    folded = fold(text)
    tokens = folded.split()
    for i, token in enumerate(tokens):
        word = _closest_critical(token)
        if word is None:
            continue
        critical = _CRITICAL[word]
        if word != token and not critical.needs and (i == 0 or tokens[i - 1] not in _LEAD_WORDS):
            continue  # a word that needs no context must at least stand where a word would
        after = " ".join(tokens[i + 1 : i + 5])
        if any(after.startswith(phrase) or after.partition(" ")[2].startswith(phrase)
               for phrase in _HARMLESS_AFTER.get(word, ())):
            continue
        if _HARMLESS_BEFORE.get(word, frozenset()) & set(tokens[max(0, i - _LOOKBACK) : i]):
            continue
        start, end = _char_span(tokens, i, i + 1)
        if told_as_history(folded, start, end):
            continue
        if critical.needs:
            needed = [j for j in range(max(0, i - _LOOKBACK), i) if tokens[j] in critical.needs]
            if needed:
                last = needed[-1]  # "sans perte de connaissance": "sans" negates "perte"
                if set(tokens[max(0, last - _NEGATION_BEFORE_NEEDED) : last]) & _NEGATIONS:
                    continue  # "sans perte de connaissance", "pas perdu connaissance"
                return EmergencyMatch(kind=critical.kind, phrase=" ".join(tokens[max(0, i - 2):i] + [word]))
            if critical.needs & set(tokens[i + 1:i + 2]):
                return EmergencyMatch(kind=critical.kind, phrase=" ".join(tokens[max(0, i - 2):i] + [word]))
            continue
        if set(tokens[max(0, i - _NEGATION_LOOKBACK):i]) & _NEGATIONS:
            continue  # "pas de douleur à la poitrine"
        return EmergencyMatch(kind=critical.kind, phrase=word)
    return None


def _char_span(tokens: list[str], first: int, last: int) -> tuple[int, int]:
    """Character offsets, in ``" ".join(tokens)``, of ``tokens[first:last]``."""
    start = sum(len(t) + 1 for t in tokens[:first])
    return start, start + len(" ".join(tokens[first:last]))


def _closest_critical(token: str) -> str | None:
    if token in _CRITICAL:
        return token
    if len(token) < _MIN_LENGTH:
        return None
    found = difflib.get_close_matches(token, _CRITICAL, n=1, cutoff=_MIN_RATIO)
    return found[0] if found else None
