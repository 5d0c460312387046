"""Intent: what the caller rings about, from their first sentence.

An ordered table of keyword rules over the normalized transcript; the first rule
that matches wins. The order is the whole design, so here it is with its reasons:

1. HUMAN: an explicit wish to talk to a person is honoured whatever else is said.
2. MOVE before CANCEL: "annuler et en reprendre un autre" is a move.
3. CANCEL before BOOK: "annuler mon rendez-vous" mentions a rendez-vous too.
4. A question about an existing appointment ("à quelle heure est mon
   rendez-vous ?") before BOOK, for the same reason.
5. BOOK when explicitly asked ("prendre rendez-vous", "voir le docteur"), even
   for a document: "un rendez-vous pour un certificat" is a booking whose reason
   the reason matcher finds.
6. CALLBACK ("qu'il me rappelle", "laisser un message") before the topics, since
   the caller said how they want it handled.
7. The document and topic intents: SICK_NOTE before PRESCRIPTION and
   CERTIFICATE ("certificat d'arrêt de travail", "prolonger mon arrêt"), then
   RESULTS, then ADMIN (paperwork, billing).
8. QUESTION about practical information (hours, address, prices) before the
   weak booking words, so "combien coûte une consultation" is a question.
9. BOOK on a bare "rendez-vous" / "consultation".
10. QUESTION on generic question words, else UNKNOWN.

Wanting to talk to the doctor is CALLBACK, not HUMAN: the doctor is consulting
and calls back; HUMAN is for the secretary / a person instead of the machine.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Final

from appliance.dialogue.normalize import normalize


class Intent(StrEnum):
    BOOK = "book"
    CANCEL = "cancel"
    MOVE = "move"
    PRESCRIPTION = "prescription"
    CERTIFICATE = "certificate"
    SICK_NOTE = "sick_note"
    RESULTS = "results"
    ADMIN = "admin"
    CALLBACK = "callback"
    QUESTION = "question"
    HUMAN = "human"
    UNKNOWN = "unknown"


_RDV: Final = r"(?:rendez vous|rendezvous|rdv|r d v|rendez vou|consultation|creneau|visite)"
_MY_RDV: Final = r"(?:mon|le|ce|notre|son|un|du|d un|votre|ma) (?:\w+ )?" + _RDV
# "vous pouvez me rappeler l'adresse ?" asks to be reminded of something, not called back.
_NOT_REMIND: Final = r"(?! (?:l |le |la |les |vos |votre )(?:adresse|horaires?|heures?|numero|tarifs?|code|etage|acces))"
_DOCTOR: Final = r"(?:docteur|docteure|doctoresse|dr|medecin|toubib|generaliste|pediatre|sage femme|kine|infirmiere?)"

# (intent, patterns), tried in order.
_RULES: Final[tuple[tuple[Intent, tuple[str, ...]], ...]] = (
    (
        Intent.HUMAN,
        (
            r"(?:parler|discuter|avoir) (?:a|avec) (?:un |une |la |le |quelqu )?"
            r"(?:humain|personne|secretaire|secretariat|quelqu un|standard|vrai|vraie|etre humain|gens)",
            r"(?:passez|passer|passe) moi (?:la |le |une |un |quelqu )?(?:secretaire|secretariat|standard|personne|quelqu un)",
            r"(?:veux|voudrais|veut|aimerais) (?:la |une |le |un )?(?:secretaire|secretariat|humain|vraie personne|vrai personne)",
            r"(?:un|une) (?:humain|vraie personne|vrai personne|personne reelle)|pas (?:un|une|a un|a une) (?:robot|machine|repondeur)",
            r"(?:parler|discuter) (?:a|avec) (?:quelqu un|une personne)",
            r"\boperat(?:eur|rice)\b",
            r"(?:marre|pas) (?:\w+ ){0,3}?(?:robot|machine|repondeur)",
        ),
    ),
    (
        Intent.MOVE,
        (
            r"(?:deplacer|decaler|reporter|repousser|avancer|modifier|changer|bouger|differer) (?:\w+ ){0,3}?"
            + r"(?:" + _RDV + r"|l heure|l horaire|la date|le jour|d heure|d horaire|de jour|de date)",
            r"\b(?:le|la|l) (?:deplacer|decaler|reporter|repousser|avancer)\b",
            # not a bare "déplacer": "je ne peux pas me déplacer" asks for a home visit
            r"\b(?:decal|report)\w*",
            r"(?:pas|plus) (?:venir|etre la) (?:\w+ ){0,8}?(?:a la place|plutot|autre jour|autre date|autre moment|un autre)",
            r"annul\w* (?:\w+ ){0,9}?(?:reprendre|prendre un autre|en prendre|un autre|une autre|reprogrammer)",
            r"(?:un autre|une autre) (?:date|jour|heure|horaire|creneau) (?:pour|a la place)",
        ),
    ),
    (
        Intent.CANCEL,
        (
            r"annul\w*",
            r"decommand\w*|desist\w*|supprim\w* (?:\w+ )?" + _RDV,
            r"(?:pourrai|pourrais|peux|peut|pourrons|pourra) (?:pas|plus) (?:venir|etre la|y aller|me rendre|honorer)",
            r"(?:viendrai|viendra|viendrons) (?:pas|plus)\b",
            r"(?:serai|serons|sera) (?:pas|plus) (?:la|present|presente|disponible|dispo)\b",
            r"(?:venir|aller) (?:a|au) (?:mon |le )?" + _RDV + r" (?:\w+ ){0,3}?(?:pas|plus) possible",
        ),
    ),
    (
        Intent.QUESTION,
        (
            r"(?:quelle heure|quand|quel jour) (?:est|etait|c est) (?:mon|le) " + _RDV,
            r"(?:confirmer|verifier|rappeler l heure de|l heure de) (?:mon|le) " + _RDV,
            r"(?:c est|c etait) quand (?:mon|le) " + _RDV,
            r"(?:est ce que )?j ai (?:bien )?(?:un )?" + _RDV + r" (?:\w+ ){0,4}?(?:quelle heure|quand|confirmer|verifier)",
            r"j ai (?:bien )?(?:un )?rendez vous \w+ (?:ou|a quelle heure)",
        ),
    ),
    (
        Intent.BOOK,
        (
            r"(?:prendre|avoir|fixer|obtenir|reserver|caler|trouver|demander|planifier|programmer) (?:\w+ ){0,2}?" + _RDV,
            r"(?:voir|consulter|rencontrer) (?:le |la |un |une |mon |ma |votre |l )?" + _DOCTOR,
            r"(?:voudrais|veux|aimerais|souhaite|souhaiterais|dois|faut|besoin de) (?:\w+ )?consulter",
            r"(?:etre vue?|passer|venir) (?:\w+ )?(?:au cabinet|en consultation)",
            r"(?:passer voir|venir voir|etre recue?|me faire examiner|faire examiner)",
            r"(?:quand|est ce que) (?:\w+ ){0,3}?(?:de la place|dispo|disponible|disponibilites?|libre)",
            r"(?:voudrais|veux|aimerais|souhaite|souhaiterais|faudrait|besoin d) (?:\w+ )?" + _RDV,
            r"un " + _RDV + r" (?:pour|avec|demain|aujourd hui|cette|la semaine|le plus|des que)",
        ),
    ),
    (
        Intent.CALLBACK,
        (
            # not a bare "rappel": "le rappel du vaccin" is a booking reason
            r"(?:\bme|\bm|\bnous) (?:\w+ )?rappel(?:er|le|lent|lez|ez|lera|lerait|ait)\b(?! plus tard)" + _NOT_REMIND,
            r"rappelez moi|rappelle moi|rappeler moi",
            r"(?:pouvez|pourriez|peut|pourrait|doit|devait|faut) (?:vous |il |elle |on )?(?:me |nous )?rappeler" + _NOT_REMIND,
            r"laisser (?:un |le |une )?(?:message|mot|commission)|un message (?:pour|au|a)",
            r"(?:parler|discuter|joindre) (?:a|au|avec|le|la) (?:le |la |mon |ma |votre )?" + _DOCTOR,
            r"(?:que|qu) (?:le |la )?(?:" + _DOCTOR + r" )?(?:\w+ )?(?:m|me|nous) (?:rappelle|recontacte|contacte)",
        ),
    ),
    (
        Intent.SICK_NOTE,
        (
            r"arrete?s? (?:de |du )?(?:travail|maladie)",
            r"(?:prolong\w*|renouvel\w*) (?:\w+ ){0,2}?arrete?\b(?! cardiaque| respiratoire)",
            r"(?:un|mon|d un|son|cet|l|mon|ton) arret\b(?! cardiaque| respiratoire| de bus| de tram)",
            r"avis d arret|conge maladie|indemnites journalieres",
        ),
    ),
    (
        Intent.PRESCRIPTION,
        (
            r"ordonnances?|ordo\b|ordonance",
            r"renouvel\w*|prescri\w*",
            r"(?:mes|mon|des|du|de) (?:\w+ )?(?:medicaments?|traitement|pilule|cachets?|comprimes?)",
            r"(?:plus de|manque de|besoin de mon|besoin de ma) (?:\w+ )?(?:medicaments?|traitement|pilule|cachets?|comprimes?|insuline)",
        ),
    ),
    (
        Intent.CERTIFICATE,
        (
            r"certificats?|certif\b",
            r"(?:fiche|dossier|formulaire|papier) (?:\w+ ){0,5}?(?:sport|licence|aptitude|colonie|creche|cantine|mdph|ecole|piscine)",
            r"(?:non contre indication|aptitude|licence (?:de|du|pour le) \w+)",
        ),
    ),
    (
        Intent.RESULTS,
        (
            r"resultats?|resulta\b",
            r"(?:mes|les|ma|mon|des) (?:\w+ )?(?:analyses?|prise de sang|bilan|radio|radiographie|scanner|irm|echographie|echo|examens?)",
            r"compte rendu|comptes rendus|biologie|laboratoire|labo\b",
        ),
    ),
    (
        Intent.ADMIN,
        (
            r"factur\w*|feuilles? de soins?|carte vitale|mutuelle|tiers payant|rembours\w*",
            r"medecin traitant|dossier medical|attestation|paiement|payer|cheque|carte bleue|devis|honoraires",
            r"courrier|lettre (?:pour|d|de)|adressage|ald\b|100 pour (?:cent|100)|accident du travail|accident de travail",
            r"(?:changer|changement) (?:de |d )?(?:adresse|numero|nom|mutuelle|assurance)",
        ),
    ),
    (
        Intent.QUESTION,
        (
            r"horaires?|heures? d ouverture|ouvert\w*|ferme\w*",
            r"adresse|ou (?:se trouve|est|etes vous|vous trouvez)|parking|acces|comment venir|quel etage",
            r"tarifs?|prix|combien (?:ca |cela |coute|coutent|ca coute|est ce que ca coute)|depassements?|secteur \d",
            r"teleconsultation|visio|domicile|\bvacances?\b|remplacant\w*|conge\b",
        ),
    ),
    (Intent.BOOK, (_RDV, r"(?:voir|consulter) (?:quelqu un|un specialiste)", r"\b(?:dispo|disponibilites?)\b")),
    (
        Intent.QUESTION,
        (
            r"question|renseignements?|information|savoir si|savoir (?:quand|comment|combien|ou|pourquoi)",
            r"est ce que|est ce qu|pouvez vous me dire|vous pouvez me dire",
        ),
    ),
)
_COMPILED: Final = tuple((intent, re.compile("|".join(rf"\b(?:{p})" for p in patterns))) for intent, patterns in _RULES)


def detect_intent(text: str) -> Intent:
    """The caller's intent from one utterance; UNKNOWN when nothing matches. Never raises."""
    if not isinstance(text, str):
        return Intent.UNKNOWN
    folded = normalize(text)
    if not folded:
        return Intent.UNKNOWN
    for intent, pattern in _COMPILED:
        if pattern.search(folded):
            return intent
    return Intent.UNKNOWN
