"""No medical advice: what a caller says when asking for one, and what is only an appointment."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.dialogue.policy import asks_medical_advice


@pytest.mark.parametrize(
    "heard",
    [
        "combien de doliprane je peux donner à mon fils de cinq ans ?",
        "j'ai une boule sous la peau, est-ce que c'est grave ?",
        "mon cholestérol est à 2,5, c'est normal ou pas ?",
        "est-ce que je peux prendre de l'ibuprofène avec mon traitement ?",
        "j'ai de la fièvre, qu'est-ce que je dois faire ?",
        "je peux arrêter mes antibiotiques avant la fin ?",
        "j'ai oublié ma pilule, est-ce que je dois en prendre deux ?",
        "je peux doubler mon comprimé ?",
        "quel sirop vous me conseillez ?",
        "à votre avis c'est la varicelle ?",
        "ma TSH est basse, qu'est-ce que ça veut dire ?",
        "quel médicament pour la toux ?",
        "c'est inquiétant d'avoir 16 de tension ?",
    ],
)
def test_requests_for_advice_are_recognised(heard: str) -> None:
    assert asks_medical_advice(heard)


@pytest.mark.parametrize(
    "heard",
    [
        "je dois prendre rendez-vous avec le docteur Martin",
        "est-ce que je peux prendre rendez-vous demain ?",
        "je peux changer mon rendez-vous ?",
        "il faut prendre un rendez-vous pour le vaccin",
        "je dois prendre un certificat pour le sport",
        "je voudrais le renouvellement de mon ordonnance",
        "c'est pour un contrôle de ma tension",
        "",
    ],
)
def test_appointments_and_requests_are_not_advice(heard: str) -> None:
    assert not asks_medical_advice(heard)


@given(st.text(max_size=300))
def test_never_raises_on_arbitrary_text(text: str) -> None:
    assert asks_medical_advice(text) in (True, False)
