"""Safety rules that hold in every turn, whatever the dialogue is doing.

The box never gives medical advice: when a caller asks for one, it says so from
a fixed template and offers what it can do (an appointment, a message, the 15).
Pure keyword rules, no language model: they must work the same on every call.
"""

from __future__ import annotations

import re
from typing import Final

from appliance.dialogue.normalize import fold

_ADVICE_PATTERNS: Final = tuple(
    re.compile(p)
    for p in (
        r"\b(est ce que|c est) (grave|dangereux|normal)\b",
        r"\bqu est ce que (je dois|il faut|je peux) (prendre|faire)\b",
        r"\b(quel|quels|quelle) (medicament|traitement|dose|dosage)\b",
        r"\bcombien de (comprimes|cachets|gouttes|doliprane|paracetamol|ibuprofene)\b",
        r"\b(je peux|puis je|on peut) (prendre|donner|arreter|augmenter|melanger)\b",
        r"\bvous (me )?conseill\w*\b",
        r"\bque me conseill\w*\b",
        r"\bavis medical\b",
    )
)


def asks_medical_advice(text: str) -> bool:
    """True when the caller asks what to take, do, or whether a symptom is serious."""
    folded = fold(text)
    return any(p.search(folded) for p in _ADVICE_PATTERNS)
