"""The two jobs the helper may be given: prompts, JSON schemas, reading the answers.

Shared by the helper (live calls) and ``qualify`` (the evaluation), so a model is
judged on exactly the prompt it will be sent. Prompts are plain completions with a
few examples, which base and instruct models both follow; the JSON schema does the
rest. The static part comes first and the caller's words last, so llama.cpp keeps
the prefix in its KV cache and only the new words are evaluated per turn.
"""

from __future__ import annotations

import re
from typing import Final

from appliance.llm.base import parse_answer

# The values of appliance.dialogue.intent.Intent the helper may return (a test keeps
# them in step); "unknown" is how a model says it is unsure, and maps to None.
INTENTS: Final = (
    "book", "cancel", "move", "prescription", "certificate", "sick_note",
    "results", "admin", "callback", "question", "human",
)
UNSURE: Final = "unknown"
INTENT_SCHEMA: Final = {
    "type": "object",
    "properties": {"intent": {"type": "string", "enum": [*INTENTS, UNSURE]}},
    "required": ["intent"],
    "additionalProperties": False,
}
INTENT_MAX_TOKENS: Final = 24  # '{"intent": "prescription"}' and the grammar's spaces

SUMMARY_MAX_CHARS: Final = 160  # what the inbox list shows on one line of a phone screen
# No maxLength in the schema: llama.cpp compiles it into 160 nested optional
# characters, which made sampling 3x slower on Gemma's vocabulary. The length is
# bounded by SUMMARY_MAX_TOKENS and checked by the guard instead.
SUMMARY_SCHEMA: Final = {
    "type": "object",
    "properties": {"summary": {"type": "string", "minLength": 1}},
    "required": ["summary"],
    "additionalProperties": False,
}
SUMMARY_MAX_TOKENS: Final = 80
_TEXT_MAX_CHARS: Final = 400  # one turn; Whisper rarely gives more, a loop gives much more
_TRANSCRIPT_MAX_CHARS: Final = 1500

# Examples written for the prompt, none of them in the evaluation set (evalset.py).
_INTENT_PROMPT: Final = """\
Un patient appelle le secrétariat d'un cabinet médical. Classe sa demande.
Intentions possibles :
- book : prendre un rendez-vous
- cancel : annuler un rendez-vous
- move : déplacer ou changer un rendez-vous
- prescription : une ordonnance, le renouvellement d'un traitement
- certificate : un certificat médical (sport, école, crèche)
- sick_note : un arrêt de travail
- results : des résultats d'analyses, de radio, d'examens
- admin : facture, carte Vitale, mutuelle, dossier, courrier
- callback : être rappelé, laisser un message au médecin
- question : horaires, adresse, tarifs, informations pratiques
- human : parler à une vraie personne, au secrétariat
- unknown : rien de tout cela, ou incompréhensible

Demande : Je voudrais venir voir le docteur cette semaine.
Réponse : {"intent": "book"}
Demande : Il faut que j'annule ma consultation de lundi.
Réponse : {"intent": "cancel"}
Demande : Est-ce qu'on peut mettre mon rendez-vous plutôt l'après-midi ?
Réponse : {"intent": "move"}
Demande : Je n'ai plus de comprimés pour le cœur, il me faut une ordonnance.
Réponse : {"intent": "prescription"}
Demande : C'est pour le certificat de natation de ma fille.
Réponse : {"intent": "certificate"}
Demande : Mon employeur me demande un arrêt de travail.
Réponse : {"intent": "sick_note"}
Demande : Est-ce que vous avez reçu ma radio du genou ?
Réponse : {"intent": "results"}
Demande : Je voudrais une facture pour ma mutuelle.
Réponse : {"intent": "admin"}
Demande : Le docteur peut me rappeler ce soir ?
Réponse : {"intent": "callback"}
Demande : Vous êtes ouverts le samedi ?
Réponse : {"intent": "question"}
Demande : Je veux parler à la secrétaire, pas à un robot.
Réponse : {"intent": "human"}
Demande : Euh oui bonjour c'est moi.
Réponse : {"intent": "unknown"}
Demande : """

_SUMMARY_PROMPT: Final = """\
Tu écris pour le secrétariat d'un cabinet médical le résumé d'un message laissé au \
téléphone : une seule phrase courte, en français, qui dit ce que le patient demande. \
N'ajoute rien qui n'ait pas été dit : aucun chiffre, aucun nom, aucun médicament, \
aucune date de plus, et jamais de conseil.

Catégorie : prescription
Transcription :
Patient : Bonjour, c'est pour renouveler l'ordonnance de mon traitement pour la thyroïde.
Patient : Je n'en ai presque plus.
Résumé : {"summary": "Demande le renouvellement de son traitement pour la thyroïde, bientôt épuisé."}

Catégorie : {category}
Transcription :
{transcript}
Résumé : """


def _one_line(text: str, limit: int) -> str:
    # The caller's words must not be able to start a new "Réponse :" line.
    return re.sub(r"\s+", " ", text).strip()[:limit]


def intent_prompt(text: str) -> str:
    return _INTENT_PROMPT + _one_line(text, _TEXT_MAX_CHARS) + "\nRéponse : "


def read_intent(answer_text: str) -> str | None:
    """The intent in a model's answer, or None when it said it is unsure."""
    intent = parse_answer(answer_text, INTENT_SCHEMA)["intent"]
    return None if intent == UNSURE else str(intent)


def summary_prompt(category: str, transcript: str) -> str:
    lines = [_one_line(line, _TEXT_MAX_CHARS) for line in transcript.splitlines() if line.strip()]
    body = "\n".join(lines)[-_TRANSCRIPT_MAX_CHARS:]  # the end holds the request and the read-back
    return _SUMMARY_PROMPT.replace("{category}", _one_line(category, 40)).replace("{transcript}", body)


def read_summary(answer_text: str) -> str:
    summary = parse_answer(answer_text, SUMMARY_SCHEMA)["summary"]
    return " ".join(str(summary).split())

