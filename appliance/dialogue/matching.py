"""Which visit reason and which practitioner the caller named.

Fuzzy against recognition errors ("docteur Bernar" is Bernard) but never on
ordinary words; a tie is None so the dialogue asks again rather than guesses.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from typing import Any, Final

from appliance.dialogue.identity import FOLDED_MONTHS
from appliance.dialogue.normalize import normalize, normalize_input
from appliance.dialogue.speakable import WEEKDAY_NAMES

ANY: Final = "any"

def match_reason(text: str, reasons: Sequence[Any]) -> str | None:
    """The id of the visit reason whose keywords or label the caller used; None if none or a tie.

    A phrase that says something specific beats one that only says "see the
    doctor" ("voir le docteur pour un vaccin" is a vaccination, "voir le docteur
    pour mon renouvellement" a follow-up); then an exact phrase beats a fuzzy
    one ("vacin"), then the longest phrase wins. Two reasons matching equally
    well are ambiguous: the dialogue asks.
    """
    words = _stems(normalize_input(text))
    if not words:
        return None
    scored = []
    for reason in reasons:
        phrases = (*getattr(reason, "keywords", ()), _ARTICLE_RE.sub("", normalize(str(reason.label))))
        best = max((_phrase_score(_stems(normalize(str(p))), words) for p in phrases), default=(0, 0, 0))
        if best > (0, 0, 0):
            scored.append((best, str(reason.id)))
    scored.sort(reverse=True)
    if not scored or (len(scored) > 1 and scored[0][0] == scored[1][0]):
        return None
    return scored[0][1]


_ARTICLE_RE: Final = re.compile(r"^(?:un|une|le|la|les|des|du|l|d) ")
_FUZZY_PHRASE: Final = 0.88  # "rappeler" vs "rappel" is 0.86: not the vaccine booster
# Words of any booking: a phrase made only of these ("voir le docteur",
# "consulter") says that the caller wants an appointment, not what for.
_GENERIC_WORDS: Final = frozenset(
    "voir le la les un une de du des l d docteur medecin consulter consultation rendez vou rdv".split()
)


def _stems(folded: str) -> list[str]:
    return [w[:-1] if len(w) > 3 and w[-1] in "sx" else w for w in folded.split()]


def _phrase_score(phrase: list[str], words: list[str]) -> tuple[int, int, int]:
    """(1 specific / 0 generic, 2 exact / 1 fuzzy / 0 none, phrase length in characters)."""
    k, joined = len(phrase), " ".join(phrase)
    if not k:
        return 0, 0, 0
    specific = int(any(w not in _GENERIC_WORDS for w in phrase))
    windows = [" ".join(words[i : i + k]) for i in range(len(words) - k + 1)]
    if joined in windows:
        return specific, 2, len(joined)
    if len(joined) >= 6 and any(difflib.SequenceMatcher(None, w, joined).ratio() >= _FUZZY_PHRASE for w in windows):
        return specific, 1, len(joined)
    return 0, 0, 0


_TITLE_WORDS: Final = frozenset(
    "docteur docteure doctoresse dr doc madame monsieur mme mlle m mr professeur pr le la les l avec".split()
)
_DOCTOR_TITLES: Final = frozenset("docteur docteure doctoresse dr doc professeur pr".split())
# Words a caller says that sound like surnames: never matched fuzzily ("matin" is
# not Martin, "durant" is not Durand), only a name said exactly is.
_COMMON_WORDS: Final = frozenset(
    (*WEEKDAY_NAMES, *FOLDED_MONTHS, *"matin matinee midi soir apres aprem demain durant pendant merci bonjour "
     "oui non rendez vous voudrais voir consultation vaccin certificat ordonnance premier premiere dernier "
     "disponible libre importe lequel laquelle celui celle prefere preference medecin semaine prochaine "
     "docteur pour mon fils fille enfant bebe mari femme heure heures moment".split())
)
_FUZZY_NAME: Final = 0.8  # "Bernar" / "Bernard" is 0.92, "Morin" / "Martin" is 0.55
_ANY_RE: Final = re.compile(
    r"\b(?:n importe (?:lequel|laquelle|qui|quel|quelle)|peu (?:m )?importe|"
    r"(?:le|la) premiere? (?:qui est )?(?:disponible|dispo|libre)|"
    r"(?:celui|celle) qui (?:est|sera) (?:libre|disponible|dispo)|(?:pas de|aucune|sans) preference|ca m est egal|"
    r"indifferent|qui vous voulez|comme vous voulez|l une? ou l autre|le plus rapide|n importe)\b"
)


def match_practitioner(text: str, practitioners: Sequence[Any]) -> str | None:
    """The id of the practitioner named, ``ANY`` when any will do, or None.

    Names are matched on folded words, exactly or with a difflib ratio of at
    least 0.8 against the last name, the aliases and the display name, so the
    recogniser's "docteur Bernar" is Bernard. A name said wins over "peu
    importe". Two practitioners matching equally ("docteur Martin" when two
    Martins work there) is ambiguous: None, and the dialogue asks.
    """
    folded = normalize_input(text)
    words, titled, after_title = [], [], False
    for w in folded.split():
        if w in _TITLE_WORDS:
            after_title = after_title or w in _DOCTOR_TITLES
            continue
        words.append(w)
        titled.append(after_title)  # "docteur Durant" is a name, "durant la semaine" is not
        after_title = False
    scored = []
    for p in practitioners:
        names = (getattr(p, "last_name", ""), *getattr(p, "aliases", ()), getattr(p, "display_name", ""))
        best = max((_name_score(words, titled, str(name)) for name in names), default=(0.0, 0))
        if best[0] >= _FUZZY_NAME:
            scored.append((best, str(p.id)))
    scored.sort(reverse=True)
    if scored:
        return scored[0][1] if len(scored) == 1 or scored[0][0] != scored[1][0] else None
    return ANY if _ANY_RE.search(folded) else None


def _name_score(words: list[str], titled: list[bool], name: str) -> tuple[float, int]:
    """(best ratio of a window of words against the name, number of words in the name)."""
    target = [w for w in normalize(name).split() if w not in _TITLE_WORDS]
    k = len(target)
    if not k:
        return 0.0, 0
    joined, best = " ".join(target), 0.0
    for i in range(len(words) - k + 1):
        window = words[i : i + k]
        if window == target:
            return 1.0, k
        common = any(w in _COMMON_WORDS or w.isdigit() for w in window)
        if len(joined) >= 4 and (titled[i] or not common):
            best = max(best, difflib.SequenceMatcher(None, " ".join(window), joined).ratio())
    return best, k


# -- person names ---------------------------------------------------------------------
# Lead-ins removed from the front of an answer, as folded lowercase word sequences.
