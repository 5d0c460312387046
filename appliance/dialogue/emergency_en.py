"""English phrases that mean "call 112 now", read with the discipline of ``emergency_table``.

The words are matched folded: "can't" is "can t", "he's" is "he s".

What is deliberately *not* an emergency: a pain elsewhere ("the pain in my
knee"), "heartburn", a "chest X-ray" or a "chest infection", "food poisoning", an
EpiPen prescription, "I hurt myself playing football", "I can't breathe through
my nose", history told as history ("I had a heart attack three years ago").
"""

from __future__ import annotations

import re
from typing import Final

from appliance.dialogue.emergency_table import InfantFever, Pair, PhraseTable

# A filler word that is not itself a negation: "bleeding not much" must not match
# "bleeding <word> much".
_W: Final = r"(?:(?!not\b|no\b|never\b|t\b)\w+ )"
_WHO: Final = r"(?:he|she|they|it|baby|mum|mom|mother|dad|father|husband|wife|son|daughter|child|partner|grandma|grandad)"
_HIS: Final = r"(?:my|his|her|their|the|our)"
_NOSE: Final = r"(?!(?: \w+)? (?:through|with|out of) " + _HIS + r" nose)"
_MEDS: Final = r"(?:pills|tablets|medicines?|medications?|sleeping pills|painkillers|paracetamol|insulin|antidepressants)"
_CHEMICALS: Final = r"(?:bleach|detergent|poison|cleaning (?:product|liquid|fluid)|chemicals?|weed killer|antifreeze)"
_CANT: Final = r"(?:can t|cannot|can not|couldn t|could not|unable to|isn t able to)"

RULES: Final[tuple[tuple[str, str, bool], ...]] = (
    ("unconscious", r"unconscious|unresponsive|passed out|blacked out|fainted|collapsed|knocked out", True),
    ("unconscious", r"(?:lost|losing|loss of) consciousness", True),
    ("unconscious", _CANT + r" (?:wake|rouse) (?:him|her|them|" + _HIS + r" \w+)(?: up)?", False),
    (
        "unconscious",
        _WHO + r" (?:is not|isn t|s not|is no longer|won t be|doesn t|does not|won t|will not) "
        r"(?:responding|respond|waking up|wake up|moving)"
        r"(?! to (?:" + _HIS + r" )?(?:calls?|messages?|texts?|e ?mails?|phone))",
        False,
    ),
    ("unconscious", r"cardiac arrest|heart (?:has )?stopped|no pulse", True),
    ("breathing", _CANT + r" (?:\w+ )?(?:breathe|breath|catch (?:my|his|her|their) breath)" + _NOSE, False),
    (
        "breathing",
        r"(?:not|isn t|is not|stopped|no longer) breathing" + _NOSE + r"|breathing (?:has )?stopped",
        False,
    ),
    (
        "breathing",
        r"(?:struggling|hard|difficult|fighting) to breathe" + _NOSE
        + r"|(?:trouble|difficulty|difficulties|problems?|struggling) breathing" + _NOSE
        + r"|short(?:ness)? of breath|breathless|gasping(?: for (?:air|breath))?|suffocat\w*",
        True,
    ),
    ("breathing", r"(?:can t|cannot|can not) get (?:any |enough )?air|asthma attack", True),
    (
        "breathing",
        r"(?:lips|face|he|she|baby) (?:is |are |has |have )?(?:gone |turned |turning |going )" + _W + r"?(?:blue|purple)"
        r"|blue lips",
        True,
    ),
    ("choking", r"choking|chokes|choked", True),
    (
        "choking",
        r"swallowed (?:a |an |the |some )?(?:coin|battery|button battery|batteries|magnet|magnets|marble|toy|"
        r"piece of \w+)|something stuck in " + _HIS + r" throat",
        True,
    ),
    (
        "chest_pain",
        r"(?:pain|pains|pressure|tightness|heaviness|crushing|squeezing|burning|ache|aching|weight) " + _W
        + r"{0,3}?(?:in|on|across|around|of) (?:my |his |her |their |the )?chest",
        True,
    ),
    (
        "chest_pain",
        r"chest (?:pains?|tightness|pressure|hurts|is (?:tight|hurting|burning|painful|heavy)|feels "
        r"(?:tight|heavy|crushed|like))|tight chest",
        True,
    ),
    ("chest_pain", r"heart attack|angina attack", True),
    ("stroke", r"stroke|mini stroke", True),
    (
        "stroke",
        r"(?:face|mouth|lip|smile) (?:is |has )?(?:gone |going |started )?(?:drooping|droopy|dropped|twisted|lopsided|"
        r"crooked|numb)|(?:drooping|droopy|twisted|crooked) (?:face|mouth|smile)",
        True,
    ),
    (
        "stroke",
        _CANT + r" (?:\w+ )?(?:speak|talk|get (?:his|her|my|the) words out|find (?:his|her|my) words|"
        r"lift (?:his|her|my|their) (?:arm|arms|leg)|move (?:" + _HIS + r" )?(?:arm|leg|hand|side))",
        False,
    ),
    (
        "stroke",
        r"slurr\w*|(?:speech|words) (?:is |are )?(?:slurred|strange|garbled|jumbled)|talking (?:strangely|nonsense|"
        r"gibberish)|paralys\w*|numb (?:on|down) one side|one side of (?:" + _HIS + r" )?(?:face|body)",
        True,
    ),
    (
        "bleeding",
        r"bleeding " + _W + r"?(?:heavily|badly|a lot|profusely|everywhere|non stop|so much|from (?:his|her|my|the) "
        r"head)|(?:heavy|severe|major|massive|serious) bleeding",
        True,
    ),
    ("bleeding", r"(?:won t|will not|doesn t|does not|can t|cannot) stop (?:the )?bleeding|bleeding (?:that )?"
                 r"(?:won t|will not|doesn t|does not) stop", False),
    (
        "bleeding",
        r"(?:lot|lots|pool|loads) of blood|blood everywhere|(?:vomiting|coughing|throwing up|spitting) (?:up )?blood"
        r"|haemorrhag\w*|hemorrhag\w*|deep (?:cut|wound|gash)",
        True,
    ),
    (
        "allergy",
        r"(?:throat|tongue|lips?|face|mouth) (?:is |are |has |have )?(?:started )?(?:swelling|swollen|swelled|closing)"
        r"|swelling (?:of|in) " + _HIS + r" (?:throat|tongue|lips?|face)|anaphyla\w*|allergic shock"
        r"|(?:severe|bad|serious|violent) allergic reaction",
        True,
    ),
    ("overdose", r"overdos\w*|too many " + _MEDS + r"|(?:took|taken|swallowed) (?:\w+ ){0,2}?all (?:of )?" + _HIS + r" "
                 + _MEDS, True),
    ("overdose", r"(?:swallowed|drank|drunk|ate) (?:\w+ ){0,3}?(?:" + _MEDS + "|" + _CHEMICALS + ")", True),
    ("overdose", r"(?<!food )poisoned|(?<!food )poisoning", True),
    ("seizure", r"seizures?|seizing|convuls\w*|having (?:a )?fits?|epileptic fit|(?:is|s|started|keeps) fitting", True),
    (
        "suicide",
        r"suicid\w*|kill (?:myself|himself|herself|themselves)|(?:end|take) (?:my|his|her|their) (?:own )?life"
        r"|(?:want|wants|wanted|going|plan|planning) to die|better off dead|end it all",
        False,
    ),
    (
        "suicide",
        r"(?:don t|do not|doesn t|does not|no longer) want to (?:live|be alive|be here|go on)"
        r"|no (?:reason|point) (?:to|in) (?:live|living|going on)|(?:want|going|planning) to hurt "
        r"(?:myself|himself|herself)|self harm\w*",
        False,
    ),
    ("meningitis", r"meningitis|purple (?:spots|rash|blotches)|rash (?:that )?(?:doesn t|does not|won t) fade", True),
    (
        "trauma",
        r"hit by (?:a |the )?(?:car|bus|lorry|truck|motorbike|motorcycle|bike|van)|run over"
        r"|fell (?:off|from|out of) (?:a |the )?(?:roof|ladder|balcony|window|tree|scaffolding|stairs)",
        True,
    ),
    (
        "trauma",
        r"(?:bone|bones) (?:is |are )?(?:sticking|poking) out|open fracture|badly (?:burnt|burned|scalded)"
        r"|(?:severe|serious|bad) (?:burns?|scald)|(?:burnt|burned|scalded) (?:all over|badly|with boiling)",
        True,
    ),
)

NEGATED_BEFORE: Final = re.compile(
    r"\b(?:not|no|never|without|(?:don t|do not)(?! know)|doesn t|does not|didn t|did not|isn t|hasn t|haven t"
    r"|wasn t|hardly any|none)(?: at all)?(?: \w+){0,2} $"
)
PAST: Final = re.compile(
    r"\b(?:(?:\w+ ){1,3}?(?:weeks?|months?|years?) ago|last (?:year|month|week|summer|winter|spring|autumn|fall)"
    r"|in (?:19|20)\d\d|back in (?:19|20)\d\d|(?:when|as) (?:i|he|she|they) (?:was|were) (?:a )?"
    r"(?:child|kid|baby|little|young|teenager)|as a (?:child|kid|baby|teenager)|history of|in the past|years back"
    r"|previous|previously)\b"
)
NOW: Final = re.compile(
    r"\b(?:now|right now|at the moment|currently|(?:happening|happened|started|starting|having (?:it|one|another)"
    r"|it s back|doing it)(?: \w+)? again|since (?:this morning|last night|yesterday|"
    r"\w+ (?:minutes?|hours?|days?))|for the (?:last|past) (?:\w+ )?(?:minutes?|hours?))\b"
)
_NUMBERS: Final = {"one": 1, "a": 1, "an": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
                   "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12}  # fmt: skip
_FEVER: Final = re.compile(
    r"\b(?:fever|feverish|high temperature|temperature of (?:38|39|40|41)|(?:38|39|40|41)(?: point \d)? degrees"
    r"|burning up|very hot)\b"
)

TABLE: Final = PhraseTable(
    language="en",
    rules=RULES,
    negated_before=NEGATED_BEFORE,
    past=PAST,
    now=NOW,
    pairs=(
        Pair("meningitis", re.compile(r"\b(?:stiff neck|neck (?:is |feels )?(?:stiff|rigid)|neck stiffness)\b"), _FEVER),
        Pair(
            "chest_pain",
            re.compile(r"\b(?:grey|gray|pale|clammy|sweating|sweaty|cold sweat|pouring with sweat)\b"),
            re.compile(r"\b(?:pain|pains|ache|aching|hurts?|hurting)(?: \w+){0,3}? (?:in|down|to|into) "
                       r"(?:my |his |her |their |the )?(?:left arm|jaw|left shoulder)\b"),
        ),
    ),
    infant_fever=InfantFever(
        infant=re.compile(r"\b(?:baby|babies|infant)\b"),
        newborn=re.compile(r"\b(?:newborn|new born)\b"),
        age=re.compile(r"\b(?P<n>\d{1,3}|" + "|".join(_NUMBERS) + r") (?P<unit>days?|weeks?|months?|years?) old\b"),
        fever=_FEVER,
        numbers=_NUMBERS,
        days_per_unit={"day": 1, "week": 7, "month": 30, "year": 365},
    ),
)
