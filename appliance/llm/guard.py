"""The summary guard: a model's summary reaches the staff only if it invents nothing.

A summary is read in a hurry, before the transcript, by people who act on it. A
wrong dose, a number or a drug the caller never said, or advice the practice never
gave, is worse than no summary: the inbox then shows the transcript and the
structured fields alone. So the guard rejects on doubt, and it is deliberately
simple enough to be checked by reading it:

- one short sentence (``SUMMARY_MAX_CHARS``, ``_MAX_WORDS``);
- every number (digits or French number words) also in the transcript;
- every medication name (a list, and the suffixes of international drug names),
  weekday, month and capitalised name also in the transcript;
- no dosage or advice words at all, even if the caller said them: dosing is the
  doctor's to read from the transcript, never from a paraphrase;
- about the caller, not in their voice: "je", "mon"… in a summary leave the
  reader asking who is speaking (and small models merely echo the caller).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

from appliance.llm.tasks import SUMMARY_MAX_CHARS

_MAX_WORDS: Final = 30
_NUMBER_WORDS: Final = {
    "deux": "2", "trois": "3", "quatre": "4", "cinq": "5", "six": "6", "sept": "7", "huit": "8",
    "neuf": "9", "dix": "10", "onze": "11", "douze": "12", "treize": "13", "quatorze": "14",
    "quinze": "15", "seize": "16", "vingt": "20", "trente": "30", "quarante": "40",
    "cinquante": "50", "soixante": "60", "cent": "100", "mille": "1000",
}
# Common in French general practice; the suffixes catch most other generic names.
_MEDICATIONS: Final = frozenset("""
    doliprane dafalgan efferalgan paracetamol aspirine kardegic ibuprofene advil nurofen
    spasfon smecta gaviscon inexium mopral omeprazole esomeprazole pantoprazole
    amoxicilline augmentin clamoxyl azithromycine orelox levothyrox euthyral metformine
    glucophage insuline lantus novorapid ventoline seretide symbicort aerius xyzall
    cetirizine desloratadine tramadol codeine lamaline izalgi morphine xanax lexomil
    temesta stilnox imovane zolpidem deroxat seroplex prozac laroxyl lyrica
    tahor crestor atorvastatine rosuvastatine simvastatine bisoprolol amlodipine ramipril
    perindopril coversyl losartan valsartan furosemide lasilix previscan eliquis xarelto
    pradaxa plavix clopidogrel cortisone prednisolone solupred celestene voltarene
    diclofenac ketoprofene profenid methotrexate lyrica pilule microval optimizette leeloo
""".split())
_MEDICATION_SUFFIXES: Final = (
    "cilline", "mycine", "cycline", "floxacine", "prazole", "olol", "pril", "sartan", "statine",
    "azepam", "azolam", "profene", "tidine", "dronate", "formine", "triptan", "gliptine",
    "parine", "xaban", "dipine", "zepine", "oxetine", "pramine", "semide", "thiazide", "sone", "solone",
)
_DOSAGE: Final = re.compile(
    r"\b(?:\d+ ?(?:mg|g|ml|µg|ug|ui|cl)|mg|milligrammes?|ml|millilitres?|microgrammes?|grammes?"
    r"|comprimes?|gelules?|cachets?|sachets?|gouttes?|ampoules?|doses?|dosages?|posologie"
    r"|fois par jour|par jour|matin et soir|matin midi et soir|toutes les \w+ heures)\b"
)
_ADVICE: Final = re.compile(
    r"\b(?:conseil\w*|recommand\w*|devez|devriez|doit prendre|faut prendre|il faut|prenez"
    r"|evitez|eviter de|arretez|arreter de|augmentez|diminuez|doublez|continuez|surveillez"
    r"|ne vous inquietez|pas grave|sans gravite|rassur\w*|automedication|urgences? pas necessaire"
    r"|allez aux|rendez vous aux urgences|appelez le 15|il est conseille|diagnostic\w*)\b"
)
_WEEKDAYS_MONTHS: Final = frozenset(
    "lundi mardi mercredi jeudi vendredi samedi dimanche janvier fevrier mars avril mai juin juillet"
    " aout septembre octobre novembre decembre demain hier".split()
)
_FIRST_PERSON: Final = frozenset("je j me m moi mon ma mes".split())
# Capitalised words a summary may use without the caller having said them.
_TITLES: Final = frozenset("m mme mlle mr dr docteur docteure patient patiente le la les l un une".split())


def fold(text: str) -> str:
    """Lower case, no accents, letters and digits separated by single spaces."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(re.findall(r"[a-z0-9µ]+", plain))


def _numbers(folded: str) -> set[str]:
    found = set(re.findall(r"\d+", folded))
    for word in folded.split():
        if word in _NUMBER_WORDS:
            found.add(_NUMBER_WORDS[word])
    return {n.lstrip("0") or "0" for n in found}


def _medications(folded: str) -> set[str]:
    return {
        w for w in folded.split()
        if w in _MEDICATIONS or (len(w) > 6 and w.endswith(_MEDICATION_SUFFIXES))
    }


def _capitalised(summary: str) -> set[str]:
    """Capitalised words after the first: names (a surname, a doctor, a place)."""
    words = re.findall(r"[^\W\d_][\w'-]*", summary)
    return {fold(w) for w in words[1:] if w[:1].isupper() and fold(w) not in _TITLES}


def check_summary(summary: str, transcript: str) -> str:
    """Why ``summary`` must not reach the staff ("" if it may). The reason names
    the rule, never the words, so it can be logged."""
    text = summary.strip()
    if not text:
        return "empty"
    if len(text) > SUMMARY_MAX_CHARS or len(text.split()) > _MAX_WORDS:
        return "too-long"
    # Titles out: "M. Dupont" ends no sentence, and its "M" is not "m'" (me).
    untitled = re.sub(r"\b(?:M|Mme|Mlle|Dr|Pr)\.", "", text)
    if "\n" in text or len(re.findall(r"[.!?](?:\s|$)", untitled)) > 1:
        return "not-one-sentence"
    said, wrote = fold(transcript), fold(text)
    said_words = set(said.split())
    if _DOSAGE.search(wrote):
        return "dosage"
    if _ADVICE.search(wrote):
        return "advice"
    if set(fold(untitled).split()) & _FIRST_PERSON:
        return "first-person"
    if not _numbers(wrote) <= _numbers(said):
        return "invented-number"
    if not _medications(wrote) <= said_words:
        return "invented-medication"
    if not (set(wrote.split()) & _WEEKDAYS_MONTHS) <= said_words:
        return "invented-date"
    for name in _capitalised(text):
        if not set(name.split()) <= said_words:
            return "invented-name"
    return ""
