"""Emergencies in what Whisper base really heard (transcripts recorded from the audio chain)."""

from __future__ import annotations

import pytest

from appliance.dialogue.emergency_heard import detect_heard_emergency


@pytest.mark.parametrize(
    ("heard", "kind"),
    [
        ("Bonjour, mon mari a ingrôstulé dans la patrine de pizina.", "chest_pain"),
        ("Bonjour, mon mari a en gros douleur de la patrine de pizzerneur.", "chest_pain"),
        ("J'ai tremble à la poitrine.", "chest_pain"),
        ("Je m'arrive plus à respire.", "breathing"),
        ("et la perte du connaissance.", "unconscious"),
        ("Je vends ma suicide.", "suicide"),
        ("il saigne beaucoup", "bleeding"),
        ("il a perdu conaissance", "unconscious"),  # the needed word before gives the context
    ],
)
def test_garbled_emergencies_are_still_caught(heard: str, kind: str) -> None:
    match = detect_heard_emergency(heard)
    assert match is not None and match.kind == kind


@pytest.mark.parametrize(
    "heard",
    [
        "Je voudrais prendre rendez-vous avec le docteur Martin",
        "il n'a pas de douleur à la poitrine",
        "à ma connaissance il va bien",
        "je respire bien merci",
        "un certificat pour le sport",
        "je voudrais du poisson",
        # the exclusions of the phrase rules hold here too
        "je suis tombée dans l'escalier, sans perte de connaissance",
        "ma mère a fait un infarctus l'année dernière",
        "je respire mal par le nez, j'ai un rhume",
        "une radio de la poitrine le mois dernier",
        # a near-miss alone or after a title is a name, not a garbled word
        "Poirier.",
        "Madame Poirier",
        "",
    ],
)
def test_ordinary_sentences_are_not_alarms(heard: str) -> None:
    assert detect_heard_emergency(heard) is None
