"""Who the patient is: last and first names, date of birth, phone number.

Pure functions, None when unsure, never raising (see ``understand``). Names come
back capitalised as written on a card ("Le Goff", "N'Diaye"); spelled letters
win over the spoken name when both are given.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime
from typing import Final

from appliance.dialogue.normalize import fold_accents, normalize_input
from appliance.dialogue.speakable import MONTH_NAMES, WEEKDAY_NAMES

FOLDED_MONTHS: Final = tuple(fold_accents(m) for m in MONTH_NAMES)
MONTH_PATTERN: Final = "(?:" + "|".join(FOLDED_MONTHS) + ")"

_BIRTH_RES: Final = (
    re.compile(rf"\b(?P<d>\d{{1,2}}|1er|premier)(?:er)? (?P<mon>{MONTH_PATTERN}) (?P<y>\d{{4}}|(?:19|20) \d{{2}}|\d{{2}})\b"),
    re.compile(r"\b(?P<d>\d{1,2}) (?P<m>\d{1,2}) (?P<y>\d{4}|(?:19|20) \d{2}|\d{2})\b"),
    re.compile(r"\b(?P<d>\d{2})(?P<m>\d{2})(?P<y>\d{4}|\d{2})\b"),
)
_MAX_AGE_YEARS: Final = 120
_MAX_AGE_TWO_DIGITS: Final = 110  # "premier janvier 15" is 2015, not 1915


def parse_birth_date(text: str, now: datetime) -> date | None:
    """A birth date said or dictated; None if impossible, in the future or over 120 years ago."""
    folded = normalize_input(text)
    today = now.date()
    for pattern in _BIRTH_RES:
        for m in pattern.finditer(folded):
            raw_day, raw_year = m.group("d"), m.group("y").replace(" ", "")
            day = 1 if raw_day in ("1er", "premier") else int(raw_day)
            month = FOLDED_MONTHS.index(m.group("mon")) + 1 if "mon" in m.re.groupindex else int(m.group("m"))
            if len(raw_year) == 4:
                years, max_age = [int(raw_year)], _MAX_AGE_YEARS
            else:
                years, max_age = [2000 + int(raw_year), 1900 + int(raw_year)], _MAX_AGE_TWO_DIGITS
            for year in years:
                born = valid_date(year, month, day) if 1 <= month <= 12 else None
                if born is not None and born <= today and _age(born, today) <= max_age:
                    return born
    return None


def _age(born: date, today: date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


_PHONE_FILLERS: Final = frozenset({"euh", "heu", "hum", "plus", "tiret", "point", "virgule", "et", "puis"})
_FRENCH_NUMBER_RE: Final = re.compile(r"^0[1-9]\d{8}$")


def parse_phone(text: str) -> str | None:
    """A French phone number as 10 digits starting with 0 ("+33 6 ..." becomes "06 ...")."""
    runs: list[str] = []
    current = ""
    for token in normalize_input(text).split():
        if token.isdigit():
            current += token
        elif token not in _PHONE_FILLERS and current:
            runs.append(current)
            current = ""
    runs.append(current)
    for digits in (*runs, "".join(runs)):
        for prefix in ("0033", "330", "33", ""):  # +33, 0033, "+33 (0)6"
            if digits.startswith(prefix):
                local = "0" + digits[len(prefix) :] if prefix else digits
                if _FRENCH_NUMBER_RE.match(local):
                    return local
    return None


# -- names, reasons, practitioners -------------------------------------------------

_LEAD_INS: Final = tuple(
    sorted(  # longest first: "mon nom c'est" before "mon nom"
        (tuple(phrase.split()) for phrase in (
        "je m'appelle", "je mappelle", "je m appelle", "m'appelle", "il s'appelle", "elle s'appelle", "il s'agit de",
        "c'est au nom de", "au nom de", "c'est pour", "de la part de", "mon nom de famille c'est", "mon nom de famille est",
        "mon nom de famille", "nom de famille", "mon nom c'est", "mon nom est", "mon nom", "son nom c'est", "son nom est",
        "son nom", "le nom c'est", "le nom", "nom", "mon prenom c'est", "mon prenom est", "mon prenom", "son prenom c'est",
        "son prenom", "le prenom c'est", "le prenom", "prenom", "moi c'est", "c'est", "cest", "c est", "je suis", "ici",
        "oui", "ouais", "alors", "donc", "euh", "heu", "euuh", "hum", "hmm", "ben", "bah", "bon", "ah", "oh", "bonjour",
        "voila", "madame", "monsieur", "mademoiselle", "mme", "mlle", "m", "mr", "dr", "docteur", "et", "ca s'ecrit",
        "ca s'epelle", "j'epelle",
        )),
        key=len,
        reverse=True,
    )
)  # fmt: skip
_END_WORDS: Final = frozenset(
    "et mais je j'ai qui pour comme c'est voila merci s'il sil svp euh heu donc alors oui non avec ne n'est mon ma "
    "sa son ca ça c est".split()
)
# Words that make an answer a sentence rather than a name: "jeudi matin si
# possible" or "mon mari" must be asked again, not booked under that name.
_NOT_A_NAME: Final = frozenset(
    (*WEEKDAY_NAMES, *FOLDED_MONTHS, *"je j'ai tu il elle on nous vous ils elles pas sais sait suis est sont ai as a "
     "avons avez ont voudrais voulais veux peux pouvez faire fait rendez rdv rendez-vous oui ouais non merci bonjour "
     "quoi comment pardon pourquoi quand excusez repeter repetez compris entendu attendez attends moment instant "
     "seconde que qu' dans sur mais ou un une les mes mon ma ton ta son sa ses notre votre leur ce cette ces ca c'est "
     "cela si possible bien tres trop plus moins tout tous toute rien chose encore deja toujours vraiment accord "
     "d'accord voila alors donc puis enfin matin soir midi apres-midi apres aprem heure heures demain aujourd'hui "
     "semaine prochain prochaine medecin docteur appelle nom prenom famille personne allo madame monsieur mari "
     "femme fils fille enfant bebe consultation vaccin certificat ordonnance urgent urgence".split())
)
_PARTICLES: Final = frozenset("de du des la le van von der den di da del della ter ten".split())
_SPELLING_SEPARATORS: Final = {"tiret": "-", "apostrophe": "'", "espace": " "}
_SPELLING_SKIP: Final = frozenset("accent aigu grave circonflexe trema cedille majuscule minuscule".split())
_WORD_RE: Final = re.compile(r"[^\W\d_]+(?:['-][^\W\d_]+)*|\d+")


def parse_person_name(text: str) -> str | None:
    """A last or first name as the caller said it, capitalised; spelled letters win.

    "je m'appelle dupont" -> "Dupont"; "c'est madame Le Goff" -> "Le Goff";
    "D U P O N T" -> "Dupont". None for fillers ("euh", "oui"), digits, or
    sentences that are not a name.
    """
    if not isinstance(text, str):
        return None
    raw = unicodedata.normalize("NFC", text[:500]).replace("’", "'")
    words = _WORD_RE.findall(raw)
    keys = [fold_accents(w.lower()) for w in words]
    spoken = _spoken_name(words, keys)
    spelled = _spelled_name(words, keys, whole=spoken is None)
    if spelled is not None:
        if spoken is not None and _letters(spoken) == _letters(spelled):
            return spoken  # keeps "Le Goff" when "L E G O F F" was spelled after it
        return spelled
    return spoken


def _spoken_name(words: list[str], keys: list[str]) -> str | None:
    start, changed = 0, True
    while changed:
        changed = False
        for lead in _LEAD_INS:
            if tuple(keys[start : start + len(lead)]) == lead:
                start, changed = start + len(lead), True
                break
    end = start
    # A name ends at a clause word or where spelling starts ("Le Goff, L E G O F F").
    while end < len(words) and (end == start or (keys[end] not in _END_WORDS and len(keys[end]) > 1)):
        end += 1
    name, name_keys = words[start:end], keys[start:end]
    if not 1 <= len(name) <= 4 or any(k in _NOT_A_NAME or k.isdigit() for k in name_keys):
        return None
    if any(all(len(part) == 1 for part in k.split("-")) for k in name_keys):
        return None  # "D-U-P-O-N-T" is spelling, read by _spelled_name
    if all(k in _PARTICLES or len(k) < 2 for k in name_keys) or any(len(k) < 2 for k in name_keys):
        return None
    return _capitalise(name)


def _spelled_name(words: list[str], keys: list[str], *, whole: bool) -> str | None:
    """The longest run of spelled letters ("D U P O N T", "D comme Denis", "tiret")."""
    best: list[str] = []
    run: list[str] = []
    i = 0
    while i <= len(words):
        key = keys[i] if i < len(words) else ""
        parts = words[i].split("-") if i < len(words) else []
        if parts and all(len(p) == 1 and p.isalpha() for p in parts):
            run.extend(parts)
        elif key == "comme" and run and i + 1 < len(words):
            i += 1  # "D comme Denis": the word after "comme" only confirms the letter
        elif key == "double" and i + 1 < len(words) and len(words[i + 1]) == 1:
            run.append(words[i + 1])  # "double L": the letter itself comes next, once more
        elif key in _SPELLING_SEPARATORS and run:
            run.append(_SPELLING_SEPARATORS[key])
        elif key in _SPELLING_SKIP and run:
            pass
        else:
            if sum(c.isalpha() for c in run) > sum(c.isalpha() for c in best):
                best = run
            run = []
        i += 1
    letters = sum(c.isalpha() for c in best)
    if letters < 3 and not (whole and letters == 2):
        return None
    text = "".join(best).strip(" -'")
    return _capitalise(re.sub(r"\s+", " ", text).split()) if text else None


def _letters(name: str) -> str:
    return "".join(c for c in fold_accents(name).lower() if c.isalpha())


def _capitalise(words: list[str]) -> str:
    out = []
    for i, word in enumerate(words):
        if i > 0 and word.lower() in _PARTICLES and i < len(words) - 1:
            out.append(word.lower())
        elif any(c.isupper() for part in re.split(r"['-]", word) for c in part[1:]) and not word.isupper():
            out.append(word)  # "McDonald", "DiCaprio": the recogniser knew better
        else:
            out.append(re.sub(r"[^'-]+", lambda m: m.group(0)[:1].upper() + m.group(0)[1:].lower(), word))
    return " ".join(out)

def valid_date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None
