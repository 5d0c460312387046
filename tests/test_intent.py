"""Intent: what the caller rings about, from the first sentence as Whisper heard it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.dialogue.intent import Intent, detect_intent
from appliance.dialogue.normalize import fold_accents

CASES = [
    # BOOK
    ("prendre rendez-vous", Intent.BOOK),
    ("Bonjour, je voudrais prendre un rendez-vous s'il vous plaît", Intent.BOOK),
    ("je voudrais voir le docteur", Intent.BOOK),
    ("une consultation", Intent.BOOK),
    ("je voudrais un RDV pour demain", Intent.BOOK),
    ("est-ce que vous avez de la place demain", Intent.BOOK),
    ("est ce que le docteur a des disponibilités cette semaine", Intent.BOOK),
    ("c'est pour voir un médecin", Intent.BOOK),
    ("je voudrais consulter pour une angine", Intent.BOOK),
    ("un rendez-vous pour un certificat", Intent.BOOK),  # the reason is found by match_reason
    ("je voudrais prendre rendez vous pour un renouvellement", Intent.BOOK),
    ("rdv", Intent.BOOK),
    # CANCEL
    ("annuler mon rendez-vous", Intent.CANCEL),
    ("je voudrais annuler mon rdv de demain", Intent.CANCEL),
    ("c'est pour une annulation", Intent.CANCEL),
    ("je ne pourrai pas venir demain", Intent.CANCEL),
    ("je viendrai pas jeudi", Intent.CANCEL),
    ("je dois décommander", Intent.CANCEL),
    # MOVE
    ("déplacer mon rendez-vous", Intent.MOVE),
    ("decaler mon rendez vous", Intent.MOVE),
    ("changer mon rendez-vous", Intent.MOVE),
    ("est-ce qu'on peut le décaler", Intent.MOVE),
    ("je voudrais avancer mon rendez-vous", Intent.MOVE),
    ("reporter le rdv à la semaine prochaine", Intent.MOVE),
    ("changer l'heure de mon rendez-vous", Intent.MOVE),
    ("annuler et en reprendre un autre", Intent.MOVE),
    ("je ne peux pas venir mardi, on peut mettre jeudi à la place ?", Intent.MOVE),
    # PRESCRIPTION
    ("renouvellement d'ordonnance", Intent.PRESCRIPTION),
    ("renouvellement de ventoline", Intent.PRESCRIPTION),
    ("j'ai besoin d'une ordonnance", Intent.PRESCRIPTION),
    ("renouveler ma pilule", Intent.PRESCRIPTION),
    ("je n'ai plus de médicaments", Intent.PRESCRIPTION),
    # SICK_NOTE
    ("arrêt de travail", Intent.SICK_NOTE),
    ("c'est pour un arret maladie", Intent.SICK_NOTE),
    ("prolonger mon arrêt", Intent.SICK_NOTE),
    ("j'ai besoin d'un arrêt", Intent.SICK_NOTE),
    ("un certificat d'arrêt de travail", Intent.SICK_NOTE),
    # CERTIFICATE
    ("certificat pour le sport", Intent.CERTIFICATE),
    ("un certificat médical pour la piscine", Intent.CERTIFICATE),
    ("il me faut un certif pour le foot", Intent.CERTIFICATE),
    # RESULTS
    ("résultats de ma prise de sang", Intent.RESULTS),
    ("je voulais savoir si mes analyses sont arrivées", Intent.RESULTS),
    ("c'est pour le compte rendu de mon scanner", Intent.RESULTS),
    # CALLBACK
    ("est-ce que le docteur peut me rappeler", Intent.CALLBACK),
    ("je voudrais laisser un message au docteur", Intent.CALLBACK),
    ("je voudrais parler au docteur Martin", Intent.CALLBACK),
    ("rappelez-moi s'il vous plaît", Intent.CALLBACK),
    # ADMIN
    ("c'est pour une facture", Intent.ADMIN),
    ("changer de médecin traitant", Intent.ADMIN),
    ("j'ai oublié ma carte vitale", Intent.ADMIN),
    ("une feuille de soins", Intent.ADMIN),
    # QUESTION
    ("quels sont vos horaires", Intent.QUESTION),
    ("vous êtes ouverts samedi ?", Intent.QUESTION),
    ("combien coûte une consultation", Intent.QUESTION),
    ("quelle est l'adresse du cabinet", Intent.QUESTION),
    ("à quelle heure est mon rendez-vous", Intent.QUESTION),
    ("j'ai un rendez-vous demain, c'est à quelle heure ?", Intent.QUESTION),
    ("j'ai une question", Intent.QUESTION),
    ("je ne peux pas me déplacer, le docteur fait des visites à domicile ?", Intent.QUESTION),
    # HUMAN
    ("je voudrais parler à la secrétaire", Intent.HUMAN),
    ("je veux parler à un humain", Intent.HUMAN),
    ("passez-moi quelqu'un", Intent.HUMAN),
    ("je ne veux pas parler à une machine", Intent.HUMAN),
    ("je voudrais parler à quelqu'un pour annuler", Intent.HUMAN),
    # UNKNOWN
    ("c'est pour le rappel du vaccin", Intent.UNKNOWN),
    ("bonjour", Intent.UNKNOWN),
    ("oui", Intent.UNKNOWN),
    ("euh", Intent.UNKNOWN),
    ("", Intent.UNKNOWN),
    ("...", Intent.UNKNOWN),
]


@pytest.mark.parametrize(("heard", "intent"), CASES)
def test_intent(heard: str, intent: Intent) -> None:
    assert detect_intent(heard) is intent


@pytest.mark.parametrize(("heard", "intent"), CASES[::4])
def test_recogniser_noise_does_not_change_the_intent(heard: str, intent: Intent) -> None:
    noisy = fold_accents(heard).upper().replace("'", " ").replace("-", " ") + " ?!"
    assert detect_intent(noisy) is intent


def test_intent_is_a_plain_string_for_logs() -> None:
    assert Intent.SICK_NOTE == "sick_note"
    assert f"{Intent.BOOK}" == "book"


@given(st.text(max_size=300))
def test_never_raises_on_arbitrary_text(text: str) -> None:
    assert isinstance(detect_intent(text), Intent)


def test_being_reminded_of_the_address_is_not_a_callback() -> None:
    assert detect_intent("Vous pouvez me rappeler l'adresse du cabinet ?") is not Intent.CALLBACK
    assert detect_intent("Vous pouvez me rappeler cet après-midi ?") is Intent.CALLBACK
