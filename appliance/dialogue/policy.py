"""Safety rules that hold in every turn, whatever the dialogue is doing.

The box never gives medical advice: when a caller asks for one, it says so from
a fixed template and offers what it can do (an appointment, a message, the 15).
Pure keyword rules, no language model: they must work the same on every call.
"""

from __future__ import annotations

import re
from typing import Final

from appliance.dialogue.normalize import fold

# What to do about a treatment, never about an appointment: "je dois prendre
# rendez-vous" and "je peux changer mon rendez-vous" are no requests for advice.
_NOT_AN_APPOINTMENT: Final = r"(?! (?:un |le |mon |ce |votre )?(?:rendez vous|rdv|contact|la date|l heure|le creneau))"
_TREATMENT_VERBS: Final = (
    r"(?:prendre|donner|arreter|augmenter|diminuer|baisser|reduire|doubler|sauter|continuer|melanger|remplacer|"
    r"changer|couper|ecraser)"
)
_ADVICE_PATTERNS: Final = tuple(
    re.compile(p)
    for p in (
        r"\b(est ce que|c est|c est tu) (grave|dangereux|normal|inquietant|bon signe|mauvais signe)\b",
        r"\bqu est ce que (je dois|il faut|je peux|on doit|on peut) (prendre|faire|donner)\b",
        r"\b(quel|quels|quelle|quelles) (medicament|medicaments|traitement|dose|dosage|sirop|creme|pommade)\b",
        r"\bcombien de (comprimes|cachets|gouttes|doliprane|paracetamol|ibuprofene|gelules|cuilleres)\b",
        rf"\b(je peux|puis je|on peut|je pourrais|il peut|elle peut) (?:lui |en |les |le |la )?{_TREATMENT_VERBS}\b{_NOT_AN_APPOINTMENT}",
        rf"\b(est ce que je dois|dois je|je dois|faut il|il faut) (?:lui |en |les |le |la )?{_TREATMENT_VERBS}\b{_NOT_AN_APPOINTMENT}"
        r"(?! (?:un|une|le|la|mon|ma) (?:certificat|ordonnance|renouvellement|vaccin))",
        r"\bvous (me )?conseill\w*\b",
        r"\bque me conseill\w*\b",
        r"\b(a votre avis|selon vous|d apres vous|vous pensez que c est|vous croyez que c est)\b",
        r"\bqu est ce que (ca|cela|ce resultat|ce chiffre|ce taux) (veut dire|signifie)\b",
        r"\bavis medical\b",
    )
)


def asks_medical_advice(text: str) -> bool:
    """True when the caller asks what to take, do, or whether a symptom is serious."""
    folded = fold(text)
    return any(p.search(folded) for p in _ADVICE_PATTERNS)
