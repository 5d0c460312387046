"""Emergency detection: French phrases that mean "call the 15 now".

Runs first on every turn, before anything the caller asked for, and depends on
no model: a keyword table over the normalized transcript (``normalize``), so it
behaves the same on every call and can be read and reviewed by a doctor.

The trade-off is deliberate and one-sided. A false alarm costs the caller one
sentence ("if this is a life-threatening emergency, call the 15") and perhaps a
call back; a miss can cost a life. So:

- phrases are matched without accents, with the recogniser's usual slips
  ("il respire plus" without "ne", "a v c" for "AVC");
- history clearly told as history does not alarm: "il a fait un AVC il y a
  deux ans", "un malaise la semaine dernière" (weeks, months, years ago, a past
  year, "antécédents"). Since the assistant says nothing but the emergency
  instruction once it alarms, such a false alarm would cost the caller their
  appointment. Hours and days ago still alarm ("il a fait un malaise hier",
  "depuis deux jours"), and so does anything said to be happening now
  ("maintenant", "de nouveau", "depuis ce matin");
- a negation suppresses a match only when it stands right before the phrase
  ("il n'a pas de douleur dans la poitrine", "sans perte de connaissance"), at
  most two words away; anything looser ("je sais pas, il a mal à la poitrine",
  "c'est pas urgent mais j'ai une douleur dans la poitrine") still alarms;
- suicidal words are never negated: "j'ai pas envie de mourir" still alarms.

What is deliberately *not* an emergency: a drug name alone ("ventoline"),
"mal au cœur" (nausea in French), a pain elsewhere ("douleur au genou"),
"c'est urgent" (callers say it of any appointment they want soon).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from appliance.dialogue.normalize import normalize

KINDS: Final = (
    "unconscious",
    "breathing",
    "choking",
    "chest_pain",
    "stroke",
    "bleeding",
    "allergy",
    "overdose",
    "seizure",
    "suicide",
    "meningitis",
    "child_fever_infant",
    "trauma",
)
"""Every ``EmergencyMatch.kind``, most urgent first: the order in which matches are reported."""


@dataclass(frozen=True, slots=True)
class EmergencyMatch:
    kind: str
    """One of ``KINDS``."""
    phrase: str
    """The words that matched, in normalized form (for the call log, not for the caller)."""


# A filler word that is not itself a negation: "saigne pas beaucoup" must not
# match "saigne <word> beaucoup".
_W: Final = r"(?:(?!pas\b|plus\b|jamais\b|ni\b)\w+ )"
_WHO: Final = r"(?:il|elle|bebe|on|mari|femme|fils|fille|pere|mere|enfant|papa|maman)"
_MEDS_ALT: Final = (
    r"medicaments?|cachets?|comprimes?|pilules?|gelules?|doliprane|paracetamol|"
    r"somniferes?|anxiolytiques?|antidepresseurs?|insuline|gouttes"
)
_CHEMICALS_ALT: Final = r"javel|detergent|destop|white spirit|produit menager|lessive|poison|produits? chimiques?"
_MEDS: Final = f"(?:{_MEDS_ALT})"
_CHEMICALS: Final = f"(?:{_CHEMICALS_ALT})"

# (kind, pattern, negatable). Patterns are matched on word boundaries of the
# normalized text; the table is tried top to bottom, so order is priority.
_RULES: Final[tuple[tuple[str, str, bool], ...]] = (
    ("unconscious", r"inconscient\w*", True),
    ("unconscious", r"(?:perdu|perd|perdre|perte de) (?:la )?connaissance", True),
    ("unconscious", r"sans connaissance|dans le coma|evanou\w*|tombe\w* dans les pommes", True),
    ("unconscious", _WHO + r" (?:ne |n )?(?:se )?(?:re)?reveille (?:plus|pas)", False),
    ("unconscious", r"(?:arrive|arrivons|peux|peut|pouvons) (?:plus|pas) (?:a )?(?:le|la|les) reveiller", False),
    (
        "unconscious",
        _WHO + r" (?:ne |n )?(?:repond|reagit|bouge) plus"
        r"(?! (?:au telephone|aux? (?:appels?|messages?|mails?|sms)|a (?:mes|nos|ses) (?:appels|messages)))",
        False,
    ),
    ("unconscious", r"(?:fait|fais|faire|eu) un (?:gros |grave )?malaise", True),
    ("unconscious", r"arret cardiaque|coeur (?:s est arrete|ne bat plus|bat plus)", True),
    ("breathing", r"mal a respirer(?! par le nez)|difficultes? (?:a|pour) respirer(?! par le nez)", True),
    ("breathing", r"(?:arrive|arrivons|peu[tx]) (?:plus|pas) (?:a )?respirer", False),
    (
        "breathing",
        r"(?:ne |n )?respire (?:plus|plu|pas|presque plus|mal|tres mal|difficilement)"
        r"(?! (?:facilement|mieux|librement|normalement))(?!(?: \w+)? par le nez)",
        False,
    ),
    ("breathing", r"etouff\w*|suffoqu\w*|manque d air|(?:tres|completement|super) essouffl\w*", True),
    ("breathing", r"(?:arrive|peu[tx]) (?:plus|pas) a reprendre (?:son|mon|sa|ma) (?:souffle|respiration)", False),
    ("breathing", r"(?:fait|fais|en|a|ai) (?:une )?crise d asthme", True),
    ("breathing", r"(?:levres?|visage|devient|devenu|devenue) " + _W + r"?(?:bleu|bleue|bleus|bleues|violet|violette)s?", True),
    ("breathing", r"respiration (?:sifflante|difficile|bruyante|tres rapide)", True),
    ("choking", r"avale de travers|(?:avale|coince) (?:une?|des) (?:piece|pile|bille|aimant|jouet|objet|noyau|bonbon)s?", True),
    (
        "chest_pain",
        r"(?:douleurs?|mal|serrement|oppression|pression|poids|brulures?|serre|point) " + _W
        + r"{0,3}?(?:(?:a|dans|sur|au niveau de|de|en) )?(?:la |ma |sa )?poitrines?",  # also "douleur poitrine"
        True,
    ),
    ("chest_pain", r"poitrines? (?:qui )?(?:me |lui )?(?:serre|brule|comprime|oppresse|fait " + _W + r"?mal)", True),
    ("chest_pain", r"(?:douleurs?|oppression) thoraciques?|(?:douleurs?|mal) (?:au|dans le) thorax", True),
    ("chest_pain", r"douleurs? (?:au|dans le|du) coeur", True),  # not "mal au cœur": that is nausea
    ("chest_pain", r"(?:fait|fais|faire|faisant|c est|est) (?:un |une )?(?:infarctus|crise cardiaque)", True),
    (
        "stroke",
        r"(?:bouche|visage|levre|figure) " + _W + r"?(?:de traver\w*|tordue?|deformee?|paralysee?|qui tombe|tombe d un cote)",
        True,
    ),
    ("stroke", r"(?:arrive|arrivons|peut) (?:plus|pas) (?:a )?(?:parler|articuler)|peux plus parler", False),
    (
        "stroke",
        r"(?:arrive|peu[tx]) (?:plus|pas) (?:a )?bouger (?:le |la |son |sa |mon |ma )?(?:bras|jambe|main|cote|visage)",
        False,
    ),
    ("stroke", r"parle (?:bizarrement|de travers|n importe comment|tout bizarre|bizarre)|trouve plus ses mots", True),
    ("stroke", r"mots (?:qui )?(?:ne )?sortent (?:plus|pas)|parole (?:confuse|pateuse|bizarre)", True),
    ("stroke", r"paralys\w*|\bavc|a v c|accident vasculaire|attaque cerebrale", True),
    (
        "bleeding",
        r"saign\w* " + _W + r"?(?:beaucoup|abondamment|enormement|fort|sans arret|a flots?|de partout|partout|"
        r"trop|de la tete|a la tete)",
        True,
    ),
    ("bleeding", r"saignements? " + _W + r"?(?:important|abondant|enorme|grave|qui (?:ne )?s arrete pas)", True),
    ("bleeding", r"arrete (?:pas|plus) de saigner|(?:arrive|arrivons) (?:pas|plus) a arreter (?:le saignement|le sang)", False),
    ("bleeding", r"(?:beaucoup|plein|enormement) de sang|hemorragi\w*|(?:vomi\w*|crach\w*) du sang|sang partout", True),
    ("bleeding", r"plaie (?:tres )?profonde|coupe\w* (?:tres )?profond\w*", True),
    (
        "allergy",
        r"(?:gorge|langue|levres?|visage|bouche|figure|cou) (?:qui |lui |me )?(?:gonfle|enfle|se serre|se ferme)\w*",
        True,
    ),
    (
        "allergy",
        r"(?:gonfle\w*|enfle\w*|gonflement) (?:de |du |des )?(?:la |le |les |sa |ma )?(?:gorge|langue|levres?|visage)",
        True,
    ),
    (
        "allergy",
        r"quincke|anaphyla\w*|choc allergique|reaction allergique " + _W + r"?(?:grave|forte|severe|importante|violente)",
        True,
    ),
    (
        "overdose",
        r"(?:avale|ingere|pris|bu) " + _W + r"{0,2}?"
        r"(?:toute? (?:la|sa|une|ma) (?:boite|plaquette|tube|flacon)|tous (?:ses|mes|les) " + _MEDS + ")",
        True,
    ),
    ("overdose", r"(?:avale|ingere) " + _W + r"{0,2}?(?:" + _MEDS_ALT + "|" + _CHEMICALS_ALT + ")", True),
    ("overdose", r"(?:pris|avale|bu|ingere|donne) " + _W + r"?trop (?:de|d) " + _W + r"?" + _MEDS, True),
    ("overdose", r"(?:bu|avale) (?:de la |du |des )?" + _CHEMICALS, True),
    ("overdose", r"sur ?dose|over ?dose|intoxi\w*|empoisonn\w*", True),
    ("seizure", r"convuls\w*|crise d epilepsie|crise epileptique|yeux revulses", True),
    ("suicide", r"suicid\w*|mettre fin a (?:mes|ses|tes) jours|(?:envie d|veu[xt]|vais|va) en finir", False),
    (
        "suicide",
        r"(?:veu[xt]|voudrais|envie de|vais|va|(?:pense|penser|songe|songer)(?: \w+){0,2}? a|idees? de) (?:me |se )?"
        r"(?:tuer|mourir|suicider|foutre en l air|pendre|jeter (?:du|par la|sous))",
        False,
    ),
    ("suicide", r"(?:plus|pas) envie de vivre|(?:veu[xt]|voudrais) plus vivre|marre de (?:la )?vie", False),
    ("meningitis", r"purpura|meningite|taches? " + _W + r"?(?:violettes?|pourpres?)", True),
    ("trauma", r"renverse\w* par une? (?:voiture|moto|camion|bus|velo|scooter)|fracture ouverte|os qui sort", True),
    ("trauma", r"(?:tombe\w*|chute) (?:du|d un|de l|de la|par la) (?:toit|echelle|balcon|fenetre|etage|arbre)", True),
    ("trauma", r"brule\w* (?:gravement|grave|au visage|partout)|(?:grave|grosse) brulure", True),
    ("trauma", r"(?:gravement|grievement|tres) brule\w*|(?:renverse\w*|ebouillant\w*) (?:\w+ ){0,4}?(?:eau|huile|lait) bouillant\w*", True),
)
_COMPILED: Final = tuple((kind, re.compile(rf"\b(?:{p})\b"), neg) for kind, p, neg in _RULES)

# Right before a phrase, at most two words away: "pas de", "n'a plus vraiment de",
# "sans". Not "pas mal de" (a lot of), "en plus" / "de plus en plus" (more), nor
# the filler "je sais pas".
_NEGATED_BEFORE: Final = re.compile(
    r"\b(?:(?<!sais )(?<!sait )pas(?! mal de)|(?<!en )plus|aucune?|sans|jamais|ni)(?: du tout)?(?: \w+){0,2} $"
)

# Two-part rules: both halves anywhere in the utterance.
_INFANT: Final = re.compile(r"\b(?:nourrissons?|nouveau nee?s?|nouveaux nes|bebes?)\b")
_INFANT_AGE: Final = re.compile(r"\b(\d{1,3}) (jours?|semaines?|mois|ans?)\b")
_FEVER: Final = re.compile(r"\b(?:fievre|temperature|brulant\w*|(?:a )?(?:38|39|40|41)(?: \d)? degres?|a (?:38|39|40|41))\b")
# "de la fièvre depuis 3 jours" gives the fever's age, not the child's.
_DURATION_BEFORE: Final = re.compile(r"\b(?:depuis|pendant|il y a|ca fait|cela fait|dans) $")
_NECK: Final = re.compile(r"\b(?:raideur (?:de |dans )?(?:la )?nuque|nuque (?:raide|bloquee))\b")
# A heart attack told by what is seen rather than felt in the chest: grey or
# pale, or sweating, with a pain in the left arm, the jaw or the left shoulder.
_PALE_OR_SWEATING: Final = re.compile(
    r"\b(?:gris|grise|pale|livide|blanc comme un linge|blanche comme un linge|transpir\w*|sueurs?|en nage)\b"
)
_RADIATING_PAIN: Final = re.compile(
    r"\b(?:mal|douleurs?|serre\w*)(?: \w+){0,2}? (?:au|a la|dans le|dans la|a l|de la|du) "
    r"(?:bras gauche|machoire|epaule gauche)\b"
)

# History told as history: the phrase is not what happens now.
_PAST: Final = re.compile(
    r"\b(?:il y a (?:\w+ ){1,3}?(?:semaines?|mois|ans?|annees?)"
    r"|(?:l an|l annee|la semaine|le mois|l ete|l hiver|le printemps|l automne) (?:dernier|derniere|passe|passee)"
    r"|en (?:19|20)\d\d|quand (?:il|elle|j|je) (?:etait|etais) (?:petit|petite|jeune|enfant|bebe)"
    r"|antecedents?|dans le passe|autrefois)\b"
)
_NOW: Final = re.compile(
    r"\b(?:maintenant|en ce moment|actuellement|la tout de suite|de nouveau|a nouveau|recommence\w*"
    r"|depuis (?:ce matin|cette nuit|hier|tout a l heure|\d+ (?:minutes?|heures?|jours?)))\b"
)
_PAST_WINDOW_WORDS: Final = 6  # a history marker this close to the phrase, before or after, dates it


def told_as_history(folded: str, start: int, end: int) -> bool:
    """Whether the phrase at ``folded[start:end]`` is dated weeks or more in the past,
    with nothing in the utterance saying it is happening now."""
    if _NOW.search(folded):
        return False
    before = " ".join(folded[:start].split()[-_PAST_WINDOW_WORDS:])
    after = " ".join(folded[end:].split()[:_PAST_WINDOW_WORDS])
    return _PAST.search(before) is not None or _PAST.search(after) is not None


def detect_emergency(text: str) -> EmergencyMatch | None:
    """The most urgent emergency the caller describes, or None. Never raises."""
    matches = find_emergencies(text)
    return matches[0] if matches else None


# The recogniser glues a short word to the next one ("il amal au bras", "ma mère a
# l'abouche de travers"): unglued before the rules read the words they need.
_GLUED_RE: Final = re.compile(r"\b(a|la|l|d)(mal|bouche|poitrine|gorge|langue|levres?)\b")


def find_emergencies(text: str) -> tuple[EmergencyMatch, ...]:
    """Every emergency kind described, at most one match per kind, most urgent first."""
    if not isinstance(text, str) or not text.strip():
        return ()
    folded = _GLUED_RE.sub(r"\1 \2", normalize(text))
    found: dict[str, EmergencyMatch] = {}
    for kind, pattern, negatable in _COMPILED:
        if kind in found:
            continue
        m = pattern.search(folded)
        while m is not None and negatable and (_negated(folded, m.start()) or told_as_history(folded, m.start(), m.end())):
            # Overlapping retry: in "pas mal de douleurs dans la poitrine" the negated
            # "mal ... poitrine" hides the affirmed "douleurs dans la poitrine".
            m = pattern.search(folded, m.start() + 1)
        if m is not None:
            found[kind] = EmergencyMatch(kind, m.group(0))
    fever = _first_affirmed(_FEVER, folded)
    if fever is not None:
        neck = _first_affirmed(_NECK, folded)
        if neck is not None and "meningitis" not in found:
            found["meningitis"] = EmergencyMatch("meningitis", f"{neck} {fever}")
        infant = _infant(folded)
        if infant is not None:
            found["child_fever_infant"] = EmergencyMatch("child_fever_infant", f"{infant} {fever}")
    if "chest_pain" not in found:
        sign = _first_affirmed(_PALE_OR_SWEATING, folded)
        pain = _first_affirmed(_RADIATING_PAIN, folded)
        if sign is not None and pain is not None:
            found["chest_pain"] = EmergencyMatch("chest_pain", f"{sign} {pain}")
    return tuple(found[kind] for kind in KINDS if kind in found)


def _negated(folded: str, start: int) -> bool:
    """Whether a negation stands right before ``start`` (only the last few words are read)."""
    before = folded[max(0, start - 60) : start]
    if start > 60:
        before = before.partition(" ")[2]  # drop the word cut in half
    return _NEGATED_BEFORE.search(before) is not None


def _first_affirmed(pattern: re.Pattern[str], folded: str) -> str | None:
    for m in pattern.finditer(folded):
        if not _negated(folded, m.start()) and not told_as_history(folded, m.start(), m.end()):
            return m.group(0)
    return None


def _infant(folded: str) -> str | None:
    """An infant under three months, or a baby of unknown age (safety: assume young).

    Fever before three months is an emergency; after, it is an appointment. A
    stated age of three months or more (or in years) clears "bébé".
    """
    ages = list(_INFANT_AGE.finditer(folded))
    for m in ages:
        if _DURATION_BEFORE.search(folded[max(0, m.start() - 20) : m.start()]):
            continue
        value, unit = int(m.group(1)), m.group(2)
        if (unit.startswith("jour") and value < 92) or (unit.startswith("semaine") and value < 13):
            return m.group(0)
        if unit == "mois" and value < 3:
            return m.group(0)
    word = _INFANT.search(folded)
    if word is None:
        return None
    if word.group(0).startswith(("nourrisson", "nouveau")):
        return word.group(0)
    stated = [m for m in ages if not _DURATION_BEFORE.search(folded[max(0, m.start() - 20) : m.start()])]
    return None if stated else word.group(0)
