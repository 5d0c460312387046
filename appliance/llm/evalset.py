"""The French evaluation set a language model must pass before it may help.

Intents: what callers say in their first sentence, as Whisper base writes it down
on a telephone line: lower case, no punctuation, homophones ("annulé" for
"annuler", "ordonance", "prendre des moues" for "prendre rendez-vous", a doubled
"martin martin"), and its hallucinations on silence ("Sous-titres réalisés par…"),
which are no request at all. Labels follow the rule table in
``appliance/dialogue/intent.py`` (wanting the doctor on the phone is ``callback``;
"à quelle heure est mon rendez-vous" is ``question``). None of these sentences is
in the prompt's examples (``tasks.py``).

Summaries: messages as the dialogue leaves them, each with what a summary must
mention (every group, any word of a group, on folded text); ``guard.check_summary``
does the rest (no invented number, drug, date or name; no dose, no advice; short).

``VERSION`` goes into every stored qualification: changing the set re-qualifies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

VERSION: Final = 2

INTENT_SAMPLES: Final = (
    # book
    ("Bonjour, je voudrais prendre rendez-vous avec le docteur Martin.", "book"),
    ("bonjour je voudrais prendre des moues avec le docteur martin martin", "book"),
    ("Est-ce que je pourrais voir un médecin demain matin ?", "book"),
    ("oui c'est pour avoir un rdv pour mon fils il a de la fièvre", "book"),
    ("J'aimerais une consultation la semaine prochaine si possible.", "book"),
    ("je voudrais un rende vous pour un vaccin", "book"),
    # cancel
    ("Je dois annuler mon rendez-vous de jeudi.", "cancel"),
    ("Je ne pourrai pas venir mardi, il faut annuler.", "cancel"),
    ("oui bonjour c'est pour annulé le rendez vous de ma femme", "cancel"),
    ("Je ne viendrai pas demain, vous pouvez supprimer mon rendez-vous ?", "cancel"),
    ("je me désiste pour mon rendez vous de 15h", "cancel"),
    ("Je voulais décommander la consultation de cet après-midi.", "cancel"),
    # move
    ("Est-ce que je peux décaler mon rendez-vous à la semaine prochaine ?", "move"),
    ("Je voudrais changer l'heure de mon rendez-vous de lundi.", "move"),
    ("j'ai un empêchement jeudi est-ce qu'on peut le reporter", "move"),
    ("Il faudrait avancer mon rendez-vous si vous avez de la place plus tôt.", "move"),
    ("je peux pas venir vendredi est-ce que je peux venir un autre jour à la place", "move"),
    # prescription
    ("J'aurais besoin du renouvellement de mon ordonnance.", "prescription"),
    ("Il me faut encore mes médicaments pour la tension.", "prescription"),
    ("c'est pour une ordonance pour le levothyrox", "prescription"),
    ("Je n'ai plus de pilule, il me faudrait une nouvelle prescription.", "prescription"),
    ("bonjour c'est pour le renouvelement de mon traitement", "prescription"),
    ("Le pharmacien m'a dit que mon ordonnance était périmée.", "prescription"),
    # certificate
    ("C'est pour un certificat médical pour le sport.", "certificate"),
    ("Mon fils a besoin d'un certificat pour le judo.", "certificate"),
    ("il me faut un certifica de non contre indication pour la course", "certificate"),
    ("La crèche demande un certificat pour ma fille.", "certificate"),
    ("J'ai un formulaire d'aptitude à faire remplir pour mon club de foot.", "certificate"),
    # sick_note
    ("J'aurais besoin d'un arrêt de travail, je suis malade depuis hier.", "sick_note"),
    ("Est-ce que le docteur peut prolonger mon arrêt ?", "sick_note"),
    ("c'est pour un arrêt de travaille pour ma femme", "sick_note"),
    ("Il me faudrait un arrêt maladie pour cette semaine.", "sick_note"),
    ("mon patron veut un papier d'arrêt pour lundi et mardi", "sick_note"),
    # results
    ("Je voulais savoir si mes résultats de prise de sang sont arrivés.", "results"),
    ("Vous avez reçu mes analyses ?", "results"),
    ("oui c'est pour les résulta de la radio", "results"),
    ("Le laboratoire m'a dit qu'ils vous avaient envoyé mon bilan.", "results"),
    ("Est-ce que le compte rendu de mon échographie est arrivé ?", "results"),
    ("je voudrais connaître le résultat de mon scanner", "results"),
    # admin
    ("J'ai besoin d'une facture pour ma mutuelle.", "admin"),
    ("Vous prenez la carte Vitale ?", "admin"),
    ("je voudrais déclarer le docteur comme médecin traitant", "admin"),
    ("Ma feuille de soins n'a pas été remboursée.", "admin"),
    ("c'est pour une attestation pour la sécu", "admin"),
    ("j'ai changé de mutuelle il faut mettre à jour mon dossier", "admin"),
    # callback
    ("Est-ce que le docteur pourrait me rappeler ?", "callback"),
    ("Je voudrais laisser un message pour le docteur Bernard.", "callback"),
    ("J'aimerais parler au docteur, c'est à propos de ma mère.", "callback"),
    ("rappelez moi s'il vous plaît au numéro habituel", "callback"),
    ("pouvez vous dire au docteur de me rappeler après ses consultations", "callback"),
    ("c'est la pharmacie du centre on voudrait que le docteur nous rappelle", "callback"),
    # question
    ("Quelle est l'adresse du cabinet ?", "question"),
    ("Vous êtes ouverts jusqu'à quelle heure ce soir ?", "question"),
    ("combien coûte une consultation", "question"),
    ("Est-ce que le docteur fait des visites à domicile ?", "question"),
    ("À quelle heure est mon rendez-vous de demain ?", "question"),
    ("est ce qu'il y a un parking près du cabinet", "question"),
    # human
    ("Je voudrais parler à la secrétaire s'il vous plaît.", "human"),
    ("passez-moi quelqu'un je ne veux pas parler à une machine", "human"),
    ("Est-ce que je peux avoir une vraie personne ?", "human"),
    ("j'en ai marre de ce robot je veux un humain", "human"),
    ("le secrétariat s'il vous plaît", "human"),
    # unknown: nothing asked, or Whisper's hallucinations on a silent line
    ("Allô ? Allô ?", "unknown"),
    ("euh oui bonjour euh", "unknown"),
    ("non c'est bon merci au revoir", "unknown"),
    ("Sous-titres réalisés par la communauté d'Amara.org", "unknown"),
    ("Merci d'avoir regardé cette vidéo.", "unknown"),
)


@dataclass(frozen=True, slots=True)
class SummaryCase:
    category: str
    transcript: str
    mentions: tuple[tuple[str, ...], ...]
    """Each group: at least one of these (folded, as substrings) in the summary."""


SUMMARY_CASES: Final = (
    SummaryCase(
        "prescription",
        "Patient : Bonjour, c'est pour le renouvellement de mon Levothyrox.\n"
        "Assistant : Très bien. Quel est votre nom ?\n"
        "Patient : Dupont, Marie Dupont.",
        (("levothyrox", "renouvel", "ordonnance", "traitement"),),
    ),
    SummaryCase(
        "certificate",
        "Patient : Mon fils a besoin d'un certificat médical pour le judo.\n"
        "Patient : La reprise c'est la semaine prochaine.",
        (("certificat",), ("judo", "sport")),
    ),
    SummaryCase(
        "sick_note",
        "Patient : Je suis en arrêt de travail jusqu'à vendredi et je voudrais le faire prolonger.\n"
        "Assistant : C'est noté.",
        (("arret",), ("prolong", "vendredi")),
    ),
    SummaryCase(
        "results",
        "Patient : J'ai fait une prise de sang lundi au laboratoire, est-ce que les résultats sont arrivés ?",
        (("resultat", "analyse", "bilan", "prise de sang"),),
    ),
    SummaryCase(
        "admin",
        "Patient : Il me faudrait une facture de la dernière consultation pour ma mutuelle.",
        (("facture",),),
    ),
    SummaryCase(
        "callback",
        "Patient : Bonjour, je voudrais que le docteur me rappelle au sujet du traitement de mon mari.\n"
        "Assistant : À quel numéro ?\n"
        "Patient : Au 06 12 34 56 78.",
        (("rappel",),),
    ),
    SummaryCase(
        "prescription",
        "Patient : Je n'ai plus de Doliprane 1000, il me faudrait une ordonnance.\n"
        "Patient : J'en prends trois fois par jour pour mon dos.",
        (("doliprane", "ordonnance", "renouvel"),),
    ),
    SummaryCase(
        "results",
        "Patient : Est-ce que le compte rendu de mon IRM du genou a été envoyé au docteur ?",
        (("irm", "compte rendu", "resultat"),),
    ),
    SummaryCase(
        "admin",
        "Patient : Mon employeur veut une attestation de présence pour la consultation de ce matin.",
        (("attestation",),),
    ),
    SummaryCase(
        "other",
        "Patient : Je voulais savoir si le vaccin contre la grippe est disponible au cabinet.",
        (("vaccin", "grippe"),),
    ),
    SummaryCase(
        "callback",
        "Patient : C'est la pharmacie du centre. Nous avons une question sur l'ordonnance de Madame Leroy.\n"
        "Patient : Le docteur peut-il nous rappeler ?",
        (("rappel", "question", "pharmacie"),),
    ),
)
