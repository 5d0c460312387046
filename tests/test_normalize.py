"""Normalisation: every way Whisper writes a French utterance comes to one form."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.dialogue.normalize import Normalized, clean, fold, fold_accents, normalize, normalize_both, tokens


@pytest.mark.parametrize(
    ("heard", "expected"),
    [
        ("Je voudrais un Rendez-Vous.", "je voudrais un rendez vous"),
        ("J'ai   du mal à respirer !!!", "j ai du mal a respirer"),
        ("Qu’est-ce que c’est ?", "qu est ce que c est"),
        ("ÉLÈVE, Œuvre, cœur", "eleve oeuvre coeur"),
        ("  ça,va ; merci…  ", "ca va merci"),
        ("rdv_demain", "rdv demain"),
        ("un rende vous", "un rendez vous"),  # the recogniser's spellings of one word
        ("un rendévous demain", "un rendez vous demain"),
        ("Rendez-vou", "rendez vous"),
        ("rendez-vous", "rendez vous"),
        ("", ""),
        ("?!.", ""),
    ],
)
def test_fold_gives_the_matching_form_without_touching_numbers(heard: str, expected: str) -> None:
    assert fold(heard) == expected


@pytest.mark.parametrize(
    ("heard", "expected"),
    [
        ("vingt-cinq", "25"),
        ("quatre-vingt-dix-sept", "97"),
        ("quatre vingts", "80"),
        ("quatre-vingt-un", "81"),
        ("soixante-dix-huit", "78"),
        ("soixante et onze", "71"),
        ("vingt et un", "21"),
        ("trente et une", "31"),
        ("dix-sept", "17"),
        ("seize", "16"),
        ("cent", "100"),
        ("cent deux", "102"),
        ("trois cents", "300"),
        ("mille neuf cent quatre-vingt", "1980"),
        ("mille neuf cent quatre-vingt-cinq", "1985"),
        ("dix-neuf cent soixante-douze", "1972"),
        ("deux mille vingt-six", "2026"),
        ("deux mille", "2000"),
        ("septante-deux", "72"),  # Belgian and Swiss callers
        ("nonante-neuf", "99"),
        ("zéro six douze", "0 6 12"),
        ("zéro six douze trente-quatre cinquante-six soixante-dix-huit", "0 6 12 34 56 78"),
        ("zéro un quarante-deux", "0 1 42"),  # "un" next to numbers is a digit
        ("neuf heures trente", "9 heures 30"),
        ("à quatorze heures quinze", "a 14 heures 15"),
        ("le douze mars", "le 12 mars"),
        ("9:30", "9h30"),
        ("à 14 : 45", "a 14h45"),
        ("12/03/1980", "12 03 1980"),
        ("+33 6 12", "33 6 12"),
    ],
)
def test_number_words_become_digits(heard: str, expected: str) -> None:
    assert normalize(heard) == expected


@pytest.mark.parametrize(
    ("heard", "expected"),
    [
        ("je voudrais un rendez-vous", "je voudrais un rendez vous"),  # an article, not 1
        ("une consultation", "une consultation"),
        ("un certificat pour le sport", "un certificat pour le sport"),
        ("et puis", "et puis"),
    ],
)
def test_articles_stay_words(heard: str, expected: str) -> None:
    assert normalize(heard) == expected


def test_both_forms_keep_the_same_tokens() -> None:
    both = normalize_both("Hélène, née le douze décembre")
    assert both == Normalized(text="hélène née le 12 décembre", folded="helene nee le 12 decembre")
    assert both.tokens == ("helene", "nee", "le", "12", "decembre")
    assert tokens("Rendez-vous à neuf heures") == ("rendez", "vous", "a", "9", "heures")


def test_accents_are_kept_by_clean_and_dropped_by_fold_accents() -> None:
    assert clean("Août, ÉTÉ") == "août été"
    assert fold_accents("Août, ÉTÉ") == "Aout, ETE"


@given(st.text(max_size=200))
def test_never_raises_and_is_idempotent(text: str) -> None:
    once = normalize(text)
    assert normalize(once) == once
    assert once == once.strip()
    assert "  " not in once


@given(st.integers(min_value=0, max_value=99).filter(lambda n: n != 1))  # "un" alone is an article
def test_every_two_digit_number_said_in_words_comes_back(n: int) -> None:
    assert normalize(_french(n)) == str(n)


def _french(n: int) -> str:
    """A reference speller for 0-99, written independently of the parser."""
    units = "zéro un deux trois quatre cinq six sept huit neuf dix onze douze treize quatorze quinze seize".split()
    if n < 17:
        return units[n]
    if n < 20:
        return f"dix-{units[n - 10]}"
    tens = {2: "vingt", 3: "trente", 4: "quarante", 5: "cinquante", 6: "soixante", 8: "quatre-vingt"}
    ten, unit = divmod(n, 10)
    if ten in (7, 9):
        return f"{tens[ten - 1]}-{'et-' if n == 71 else ''}{_french(10 + unit)}"
    if unit == 0:
        return tens[ten]
    if unit == 1 and ten != 8:
        return f"{tens[ten]} et un"
    return f"{tens[ten]}-{units[unit]}"
