"""Text normalisation: one canonical form of what the recogniser heard.

Whisper writes the same words many ways: "Rendez-vous", "rendez vous",
"RDV", "9h30", "neuf heures trente", "vingt-cinq", "25", with or without
accents and with random punctuation. Every French rule of the dialogue
(emergency, intent, slot parsers) matches against one form instead:

- lowercase, punctuation, apostrophes and hyphens turned into single spaces
  ("j'ai" -> "j ai", "rendez-vous" -> "rendez vous"), so keywords are written
  the same way and matched on word boundaries;
- the recogniser's spellings of "rendez-vous" ("rende vous", "rendévous",
  "rendez vou") written the one way, since every rule about appointments
  looks for it;
- accents folded for matching ("é" -> "e", "œ" -> "oe"), because the recogniser
  drops them at random; the accented form is kept for what is shown or spoken;
- French number words turned into digits ("quatre-vingt-dix-sept" -> "97",
  "zéro six douze" -> "0 6 12"), since the recogniser does it only sometimes.

Pure functions of their input; nothing here can raise on text.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Final

_UNITS: Final = {
    "zero": 0, "un": 1, "une": 1, "deux": 2, "trois": 3, "quatre": 4,
    "cinq": 5, "six": 6, "sept": 7, "huit": 8, "neuf": 9,
}  # fmt: skip
_TEENS: Final = {
    "dix": 10, "onze": 11, "douze": 12, "treize": 13, "quatorze": 14, "quinze": 15, "seize": 16,
}  # fmt: skip
# Belgian and Swiss callers say septante/huitante/nonante; the rules are those of trente.
_TENS: Final = {
    "vingt": 20, "vingts": 20, "trente": 30, "quarante": 40, "cinquante": 50, "soixante": 60,
    "septante": 70, "huitante": 80, "octante": 80, "nonante": 90,
}  # fmt: skip
_HUNDRED: Final = frozenset({"cent", "cents"})
_THOUSAND: Final = frozenset({"mille", "mil"})
_NUMBER_WORDS: Final = frozenset(_UNITS) | frozenset(_TEENS) | frozenset(_TENS) | _HUNDRED | _THOUSAND
# "un"/"une" are mostly articles ("un rendez-vous"): digits only next to other numbers.
_ARTICLES: Final = frozenset({"un", "une"})

_LIGATURES: Final = str.maketrans({"œ": "oe", "Œ": "OE", "æ": "ae", "Æ": "AE"})
_QUOTES: Final = str.maketrans({"’": "'", "‘": "'", "`": "'", "´": "'", "ʼ": "'"})
_CLOCK_RE: Final = re.compile(r"(\d{1,2})\s*:\s*(\d{2})")  # "9:30" is written "9h30" in French
_NOT_WORD_RE: Final = re.compile(r"[\W_]+")
_RENDEZ_VOUS_RE: Final = re.compile(r"\b(?:rendez|rende|rendé|rendés|randez|rande|rendes) ?(?:vous|vou|voux)\b")


@dataclass(frozen=True, slots=True)
class Normalized:
    """The two forms of one utterance, token for token."""

    text: str
    """Lowercase, accents kept, no punctuation, numbers as digits: for display and names."""
    folded: str
    """The same without accents: what every rule matches against."""

    @property
    def tokens(self) -> tuple[str, ...]:
        return tuple(self.folded.split())


def fold_accents(text: str) -> str:
    """Drop diacritics and open ligatures, keeping case and everything else."""
    decomposed = unicodedata.normalize("NFD", text.translate(_LIGATURES))
    return "".join(c for c in decomposed if unicodedata.category(c) != "Mn")


def clean(text: str) -> str:
    """Lowercase, accents kept, punctuation to spaces, spaces collapsed (no number conversion)."""
    text = unicodedata.normalize("NFC", text).translate(_QUOTES).lower()
    text = _CLOCK_RE.sub(r"\1h\2", text)
    return _RENDEZ_VOUS_RE.sub("rendez vous", " ".join(_NOT_WORD_RE.sub(" ", text).split()))


def fold(text: str) -> str:
    """The matching form without number conversion: ``clean`` then accents folded."""
    return fold_accents(clean(text))


def normalize_both(text: str) -> Normalized:
    """Clean, convert number words, and return the accented and folded forms."""
    accented = clean(text).split()
    folded = [fold_accents(token) for token in accented]
    out_accented: list[str] = []
    out_folded: list[str] = []
    i = 0
    while i < len(folded):
        parsed = _number_at(folded, i) if folded[i] in _NUMBER_WORDS else None
        if parsed is not None and folded[i] in _ARTICLES and parsed[1] == i + 1:
            previous_is_number = bool(out_folded) and out_folded[-1].isdigit()
            next_is_number = i + 1 < len(folded) and (
                folded[i + 1].isdigit() or (folded[i + 1] in _NUMBER_WORDS and folded[i + 1] not in _ARTICLES)
            )
            if not (previous_is_number or next_is_number):
                parsed = None
        if parsed is None:
            out_accented.append(accented[i])
            out_folded.append(folded[i])
            i += 1
            continue
        value, i = parsed
        out_accented.append(str(value))
        out_folded.append(str(value))
    return Normalized(" ".join(out_accented), " ".join(out_folded))


def normalize(text: str) -> str:
    """The form every rule matches: folded, without punctuation, numbers as digits."""
    return normalize_both(text).folded


def tokens(text: str) -> tuple[str, ...]:
    """Words of the normalized form."""
    return tuple(normalize(text).split())


def words_to_digits(text: str) -> str:
    """Only the number conversion, on text already cleaned (accents are kept)."""
    return normalize_both(text).text


# -- French number words ----------------------------------------------------------
# Each parser takes folded tokens and a start index and returns (value, next index)
# or None. They accept only grammatical sequences, so "six douze" stays two numbers
# (a phone number read in pairs) while "soixante dix huit" is one.


def _at(words: list[str], i: int) -> str:
    return words[i] if i < len(words) else ""


def _below_100(words: list[str], i: int) -> tuple[int, int] | None:
    word = _at(words, i)
    if word == "zero":
        return 0, i + 1  # zero never combines: "zéro six" is 0 then 6
    if word == "quatre" and _at(words, i + 1) in ("vingt", "vingts"):
        tail = _tail_after_tens(words, i + 2, allow_teens=True)
        return (80 + tail[0], tail[1]) if tail else (80, i + 2)
    if word in _TENS:
        value = _TENS[word]
        if _at(words, i + 1) == "et" and _at(words, i + 2) in ("un", "une"):
            return value + 1, i + 3
        if word == "soixante" and _at(words, i + 1) == "et" and _at(words, i + 2) == "onze":
            return 71, i + 3
        tail = _tail_after_tens(words, i + 1, allow_teens=word == "soixante")
        return (value + tail[0], tail[1]) if tail else (value, i + 1)
    if word in _TEENS:
        if word == "dix" and _at(words, i + 1) in ("sept", "huit", "neuf"):
            return 10 + _UNITS[words[i + 1]], i + 2
        return _TEENS[word], i + 1
    if word in _UNITS:
        return _UNITS[word], i + 1
    return None


def _tail_after_tens(words: list[str], i: int, *, allow_teens: bool) -> tuple[int, int] | None:
    """The 1-9 (or 10-19 after soixante / quatre-vingt) that completes a tens word."""
    word = _at(words, i)
    if allow_teens and word in _TEENS:
        if word == "dix" and _at(words, i + 1) in ("sept", "huit", "neuf"):
            return 10 + _UNITS[words[i + 1]], i + 2
        return _TEENS[word], i + 1
    if word in _UNITS and word != "zero":
        return _UNITS[word], i + 1
    return None


def _below_1000(words: list[str], i: int) -> tuple[int, int] | None:
    if _at(words, i) in _HUNDRED:
        value, j = 100, i + 1
    else:
        head = _below_100(words, i)
        if head is None:
            return None
        value, j = head
        # "dix-neuf cent quatre-vingt" is an old way of saying years; keep it.
        if not (_at(words, j) in _HUNDRED and 2 <= value <= 19 and _at(words, i) != "zero"):
            return value, j
        value, j = value * 100, j + 1
    tail = _below_100(words, j)
    if tail is not None and tail[0] != 0:
        return value + tail[0], tail[1]
    return value, j


def _number_at(words: list[str], i: int) -> tuple[int, int] | None:
    if _at(words, i) in _THOUSAND:
        value, j = 1000, i + 1
    else:
        head = _below_1000(words, i)
        if head is None:
            return None
        value, j = head
        if not (_at(words, j) in _THOUSAND and value >= 2):
            return value, j
        value, j = value * 1000, j + 1
    tail = _below_1000(words, j)
    if tail is not None and tail[0] != 0:
        return value + tail[0], tail[1]
    return value, j


def normalize_input(text: object) -> str:
    """Normalized text, or "" for anything that is not text (a hostile caller ID, None)."""
    if not isinstance(text, str):
        return ""
    return normalize(unicodedata.normalize("NFC", text)[:2000])  # a transcript is never longer
