"""Every language's templates say the same things as the French ones.

fr.toml is the reference: the dialogue code (appliance/dialogue/) fills its
placeholders and joins some keys together, so another language must have exactly
the same keys, each with the same placeholders, and keep the safety wording: the
emergency instruction with the practice's number and 112, and a greeting that
says a machine answers and gives no medical advice (callers must know they are
talking to a machine).
"""

from __future__ import annotations

import string
import tomllib
from importlib import resources
from importlib.resources.abc import Traversable

import pytest

from appliance.dialogue.conversation import templates
from appliance.simulate.emergency_rule import EmergencyInstruction

TEMPLATE_DIR: Traversable = resources.files("appliance.dialogue").joinpath("templates")
LANGUAGES = sorted(entry.name.removesuffix(".toml") for entry in TEMPLATE_DIR.iterdir() if entry.name.endswith(".toml"))
OTHERS = [language for language in LANGUAGES if language != "fr"]

# A few words of the greeting, per language: "automated assistant" and "no medical advice".
GREETING_WORDS = {
    "fr": ("assistant automatique", "avis médical"),
    "de": ("automatischen assistenten", "keine medizinische beratung"),
    "en": ("automated assistant", "cannot give medical advice"),
}
# The national suicide-prevention line each language's file gives.
SUICIDE_LINES = {"fr": "3114", "de": "0800 111 0 111", "en": "116 123"}


def load(language: str) -> dict[str, object]:
    return tomllib.loads(TEMPLATE_DIR.joinpath(f"{language}.toml").read_text("utf-8"))


def placeholders(text: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}


def dummy_values(text: str) -> dict[str, str]:
    return {name: f"<{name}>" for name in placeholders(text)}


def test_the_expected_languages_are_there() -> None:
    assert {"fr", "de", "en"} <= set(LANGUAGES)


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_value_is_a_non_empty_string(language: str) -> None:
    for key, value in load(language).items():
        assert isinstance(value, str), f"{language}.{key} is not a string (a table or a number?)"
        assert value.strip(), f"{language}.{key} is empty"


@pytest.mark.parametrize("language", OTHERS)
def test_same_keys_as_french(language: str) -> None:
    fr, other = set(load("fr")), set(load(language))
    assert not fr - other, f"{language}.toml lacks {sorted(fr - other)}"
    assert not other - fr, f"{language}.toml has keys fr.toml has not: {sorted(other - fr)}"


@pytest.mark.parametrize("language", OTHERS)
def test_same_placeholders_as_french(language: str) -> None:
    fr, other = load("fr"), load(language)
    for key in fr.keys() & other.keys():
        assert placeholders(str(other[key])) == placeholders(str(fr[key])), (
            f"{language}.{key}: placeholders {sorted(placeholders(str(other[key])))}, "
            f"fr.toml has {sorted(placeholders(str(fr[key])))}"
        )


@pytest.mark.parametrize("language", LANGUAGES)
def test_placeholders_are_plain_names(language: str) -> None:
    """No "{}" nor "{0}" nor "{a.b}": the code fills them by keyword only."""
    for key, value in load(language).items():
        for name in placeholders(str(value)):
            assert name.isidentifier(), f"{language}.{key}: placeholder {{{name}}}"


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_value_formats(language: str) -> None:
    for key, value in load(language).items():
        text = str(value)
        filled = text.format(**dummy_values(text))
        assert "{" not in filled and "}" not in filled, f"{language}.{key}: a brace is left: {filled!r}"


@pytest.mark.parametrize("language", OTHERS)
def test_separators_keep_the_spaces_of_the_french_ones(language: str) -> None:
    """``hours_and`` and the like are joined between words: their spaces matter."""
    fr, other = load("fr"), load(language)
    for key in ("hours_and", "hours_then", "closures_then"):
        a, b = str(fr[key]), str(other[key])
        assert (b[0].isspace(), b[-1].isspace()) == (a[0].isspace(), a[-1].isspace()), f"{language}.{key} = {b!r}"
    for key in ("or", "with", "about"):
        value = str(other[key])
        assert value == value.strip(), f"{language}.{key} = {value!r}: the code adds the spaces"
    for key in ("or", "with"):
        assert len(str(other[key]).split()) == 1, f"{language}.{key} must be one word"


@pytest.mark.parametrize("language", LANGUAGES)
def test_emergency_templates_name_the_practice_number_and_112(language: str) -> None:
    t = load(language)
    emergency_keys = [key for key in t if key == "emergency" or key.startswith("emergency_")]
    assert "emergency" in emergency_keys
    for key in emergency_keys:
        assert "{number}" in str(t[key]), f"{language}.{key} does not say the practice's emergency number"
    assert "112" in str(t["emergency"]), f"{language}.emergency does not say 112"
    assert "112" in str(t["no_advice"]) or language == "fr", f"{language}.no_advice gives no emergency number"


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_emergency_instruction_is_recognised_by_the_evaluation(language: str) -> None:
    """The evaluation's emergency rule splits the template into sentences: it must
    recognise the instruction the dialogue says (no abbreviation cutting it up)."""
    t = load(language)
    is_instruction = EmergencyInstruction.from_templates(language, "15")
    assert is_instruction(str(t["emergency"]).format(number="15"))
    own = str(t["line_suicide"])
    assert is_instruction(str(t["emergency_suicide"]).format(number="15", own=own))


@pytest.mark.parametrize("language", [language for language in LANGUAGES if language in SUICIDE_LINES])
def test_suicide_line(language: str) -> None:
    assert load(language)["line_suicide"] == SUICIDE_LINES[language]


@pytest.mark.parametrize("language", LANGUAGES)
def test_greeting_says_a_machine_answers_and_gives_no_medical_advice(language: str) -> None:
    assert language in GREETING_WORDS, f"say which words of the {language} greeting disclose the machine"
    greeting = str(load(language)["greeting"]).lower()
    for words in GREETING_WORDS[language]:
        assert words in greeting, f"{language}.greeting lacks {words!r}"


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_dialogue_loads_the_language(language: str) -> None:
    assert templates(language) == load(language)
