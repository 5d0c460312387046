"""Qualification: may this language model help with intent classification here?

A small labelled French set is classified with a JSON grammar; the model is
qualified only if it gets at least ``PASS_RATIO`` right. The registry's models
(gemma-3-270m base) fail; a provisioned >=1B instruct model is expected to pass.
Nothing in the dialogue uses an unqualified model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final

from appliance.llm.base import LanguageModel

PASS_RATIO: Final = 0.9
LABELS: Final = ("book", "cancel", "prescription", "certificate", "results", "admin")
SAMPLES: Final = (
    ("Bonjour, je voudrais prendre rendez-vous avec le docteur Martin.", "book"),
    ("Est-ce que je pourrais voir un médecin demain matin ?", "book"),
    ("Je dois annuler mon rendez-vous de jeudi.", "cancel"),
    ("Je ne pourrai pas venir mardi, il faut annuler.", "cancel"),
    ("J'aurais besoin du renouvellement de mon ordonnance.", "prescription"),
    ("Il me faut encore mes médicaments pour la tension.", "prescription"),
    ("C'est pour un certificat médical pour le sport.", "certificate"),
    ("Mon fils a besoin d'un certificat pour le judo.", "certificate"),
    ("Je voulais savoir si mes résultats de prise de sang sont arrivés.", "results"),
    ("Vous avez reçu mes analyses ?", "results"),
    ("Quelle est l'adresse du cabinet ?", "admin"),
    ("Vous prenez la carte Vitale ?", "admin"),
)
_SCHEMA: Final = {
    "type": "object",
    "properties": {"intent": {"type": "string", "enum": list(LABELS)}},
    "required": ["intent"],
}
_PROMPT: Final = (
    "Classe la demande d'un patient qui appelle un cabinet médical. "
    "Réponds en JSON avec une intention parmi : " + ", ".join(LABELS) + ".\n"
    "Demande : {text}\nRéponse : "
)


@dataclass(frozen=True, slots=True)
class Qualification:
    model: str
    correct: int
    total: int
    seconds: float

    @property
    def qualified(self) -> bool:
        return self.correct >= PASS_RATIO * self.total


def qualify(model: LanguageModel) -> Qualification:
    correct, seconds = 0, 0.0
    for text, label in SAMPLES:
        out = model.complete(_PROMPT.format(text=text), max_tokens=16, json_schema=_SCHEMA)
        seconds += out.seconds
        try:
            correct += json.loads(out.text).get("intent") == label
        except (json.JSONDecodeError, AttributeError):
            pass  # cut off or malformed: counts as wrong
    return Qualification(model.name, correct, len(SAMPLES), seconds)
