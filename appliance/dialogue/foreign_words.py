"""The little the box understands of English and German: enough to take a message.

The booking, names and dates are understood in French only (``understand``,
``identity``). A German- or English-speaking caller gets the message-taking path
of ``foreign``, which needs only these: a yes or a no, a phone number said digit
by digit (or typed on the keypad, which needs no language), whether the caller
asks for medical advice, whether the request is urgent, and whether an opening
sentence says what the call is about or only greets.

Pure functions over ``emergency_table.fold_words``; None when unsure, never raising.
"""

from __future__ import annotations

import re
from typing import Final

from appliance.dialogue.emergency_table import fold_words

MIN_DIGITS: Final = 8  # shorter is no phone number anywhere the practice calls back
MAX_DIGITS: Final = 15  # E.164's longest, written with "00" instead of "+"

# French words too: a bilingual caller answers "oui" as readily as "yes".
_YES: Final = frozenset(
    "yes yeah yep yup sure correct right exactly ok okay fine absolutely certainly "
    "ja jawohl genau richtig stimmt korrekt gerne klar naturlich oui ouais".split()
)
_NO: Final = frozenset("no nope not wrong incorrect nein nicht falsch non".split())
_NO_PROBLEM: Final = re.compile(r"\b(?:no problem|kein problem|no worries)\b")

_DIGIT_WORDS: Final = {
    "zero": "0", "oh": "0", "o": "0", "nought": "0", "one": "1", "two": "2", "three": "3", "four": "4",
    "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9",
    "null": "0", "eins": "1", "ein": "1", "zwei": "2", "zwo": "2", "drei": "3", "vier": "4", "funf": "5",
    "sechs": "6", "sieben": "7", "acht": "8", "neun": "9",
}  # fmt: skip
_REPEATS: Final = {"double": 2, "triple": 3, "doppel": 2}
_NUMBER_FILLERS: Final = frozenset("um uh er ah hm and und dash minus space leerzeichen strich".split())

_ADVICE: Final = {
    "en": re.compile(
        r"\b(?:what (?:should|can|do|must) i (?:take|do|give)|should i (?:take|stop|give|double|increase|reduce|"
        r"keep taking|be worried)|(?:can|may) i (?:take|give|stop|mix|double)(?! (?:an|the|a|my) appointment)"
        r"|is (?:it|this|that) (?:serious|dangerous|normal|bad|worrying)|what (?:dose|dosage|medicine|medication)"
        r"|how (?:many|much) (?:pills|tablets|mg|milligrams|drops|paracetamol|ibuprofen)|do you think it"
        r"|what would you (?:advise|recommend|suggest)|your (?:advice|opinion)|(?:advise|recommend) me)\b"
    ),
    "de": re.compile(
        r"\b(?:was soll (?:ich|man) (?:\w+ )?(?:nehmen|tun|machen|geben)|soll ich (?:\w+ ){0,8}?(?:nehmen|absetzen|"
        r"geben|verdoppeln|weiternehmen)|(?:darf|kann) ich (?:(?!termin)\w+ ){0,8}?(?:nehmen|geben|absetzen|kombinieren)"
        r"|ist (?:das|es) (?:\w+ )?(?:schlimm|gefahrlich|normal|ernst|bedenklich)|welche[sn]? (?:medikament|dosis|"
        r"tabletten)|wie viele (?:tabletten|tropfen|milligramm)|was raten sie|was meinen sie|ihr rat)\b"
    ),
}
_URGENT: Final = {
    "en": re.compile(
        r"\b(?:urgent|urgently|as soon as possible|asap|today|tonight|this (?:morning|afternoon|evening)|right away"
        r"|straight away|immediately|(?:run|ran|running) out|no more (?:pills|tablets|medicine|medication|insulin)"
        r"|last (?:pill|tablet|dose|pen))\b"
    ),
    "de": re.compile(
        r"\b(?:dringend|eilig|so schnell wie moglich|heute|heute abend|sofort|keine (?:tabletten|medikamente|pillen|"
        r"insulin) mehr|letzte (?:tablette|dosis|packung)|aufgebraucht|(?:geht|gehen) mir aus)\b"
    ),
}
# Words that carry no request: greetings, politeness, "do you speak English?".
_FILLERS: Final = frozenset(
    "hello hi hey good morning afternoon evening yes yeah please do you speak english german french is there "
    "anyone anybody who i a the can could sorry excuse me um uh er oh ok okay thank thanks my name it s m "
    "calling call about regarding concerning his her their "
    "hallo guten tag morgen abend ja bitte sprechen sie englisch deutsch franzosisch ist da jemand der die das "
    "ich entschuldigung ah ahm hm danke mein name spricht kann konnen gruss gott servus moin "
    "rufe an anrufen wegen meinem meiner meinen seinem seiner ihrem ihrer ein eine einen habe hab have "
    "bonjour allo oui merci parlez vous anglais allemand".split()
)
_REQUEST_WORDS: Final = 3  # content words that make an opening sentence a request, not a greeting


def parse_yes_no_any(text: str) -> bool | None:
    """Yes or no in English, German or French; the first decisive word wins ("no, that's wrong")."""
    folded = _NO_PROBLEM.sub("yes", fold_words(text))
    for word in folded.split():
        if word in _YES:
            return True
        if word in _NO:
            return False
    return None


def spoken_digits(text: str) -> str:
    """The digits said, in order: "oh six, double one, 2 3" → "061123". Other words end
    nothing (a caller says "my number is ..."), and "plus" is "00"."""
    out: list[str] = []
    repeat = 1
    for word in fold_words(text).split():
        if word.isdigit():
            out.append(word * repeat)
        elif word in _DIGIT_WORDS:
            out.append(_DIGIT_WORDS[word] * repeat)
        elif word in _REPEATS:
            repeat = _REPEATS[word]
            continue
        elif word == "plus" and not out:
            out.append("00")
        elif word not in _NUMBER_FILLERS and out:
            # "0612 ... and my name is 4 ..." : a number is said in one go.
            if len("".join(out)) >= MIN_DIGITS:
                break
        repeat = 1
    return "".join(out)


def callback_number(digits: str) -> str | None:
    """A number the practice can call back, digits only, or None when it is too short or long."""
    only = "".join(c for c in digits if c.isdigit())
    return only if MIN_DIGITS <= len(only) <= MAX_DIGITS else None


def asks_advice(language: str, text: str) -> bool:
    pattern = _ADVICE.get(language)
    return pattern is not None and pattern.search(fold_words(text)) is not None


def says_urgent(language: str, text: str) -> bool:
    pattern = _URGENT.get(language)
    return pattern is not None and pattern.search(fold_words(text)) is not None


def content_words(text: str) -> int:
    return sum(1 for word in fold_words(text).split() if word not in _FILLERS)


def states_a_request(text: str) -> bool:
    """Whether an opening sentence says what the call is about ("I need a repeat
    prescription"), rather than only greeting ("Hello, do you speak English?")."""
    return content_words(text) >= _REQUEST_WORDS


# Words only one of the three languages uses often, to check a detected language
# against what was said. Shared words ("die", "so", "a") are left out.
_MARKERS: Final = {
    "fr": frozenset("je j vous le la les un une des du est c pour avec rendez bonjour oui non merci mon ma mes "
                    "voudrais pas et au aux allo madame monsieur docteur ce cette suis ai".split()),
    "en": frozenset("i you the an is my to for with please hello hi yes thank thanks need would like appointment "
                    "can do speak it this that have am m s doctor call english".split()),
    "de": frozenset("ich sie der das ein eine einen ist mein meine mit fur bitte hallo guten tag ja nein danke "
                    "brauche mochte termin sprechen haben und nicht bin habe arzt arztin deutsch".split()),
}


def words_lean_towards(text: str, language: str, *, rather_than: str) -> bool:
    """Whether the words are more ``language`` than ``rather_than``: a second opinion on
    the recogniser's language detection, so that "Hello, je voudrais un rendez-vous"
    stays French. Unknown languages and ties keep the call where it is."""
    proposed, current = _MARKERS.get(language), _MARKERS.get(rather_than)
    if proposed is None:
        return False
    words = fold_words(text).split()
    return sum(w in proposed for w in words) > sum(w in (current or frozenset()) for w in words)
