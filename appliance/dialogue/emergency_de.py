"""German phrases that mean "call 112 now", read with the discipline of ``emergency_table``.

The words are matched folded: "Überdosis" is "uberdosis", "Schweiß" is "schweiss".
German glues words together ("Brustschmerzen"): rules on a compound match the
whole word, so "Knieschmerzen" or "Halsschmerzen" never reach a chest or throat
rule, and "Lebensmittelvergiftung" (food poisoning) is not "vergiftet".

What is deliberately *not* an emergency: a pain elsewhere ("Knieschmerzen"),
"Brustkrebs-Vorsorge", an "Röntgen der Brust", a calf cramp ("Krampf in der
Wade"), "ich habe mich verletzt", a blocked nose ("bekomme keine Luft durch die
Nase"), history told as history ("vor zwei Jahren einen Schlaganfall").
"""

from __future__ import annotations

import re
from typing import Final

from appliance.dialogue.emergency_table import InfantFever, Pair, PhraseTable

_W: Final = r"(?:(?!nicht\b|kein\w*\b|nie\b)\w+ )"
_NOSE: Final = r"(?!(?: \w+)? durch die nase)"
_MEDS: Final = r"(?:tabletten|pillen|medikamente|schlaftabletten|schmerztabletten|beruhigungsmittel|insulin)"
_CHEMICALS: Final = r"(?:putzmittel|reiniger|bleiche|chlorreiniger|gift|chemikalien|waschmittel|rattengift)"
_CANT: Final = r"(?:kann|kannst|konnen|konnte) (?:\w+ ){0,2}?nicht (?:mehr )?"

RULES: Final[tuple[tuple[str, str, bool], ...]] = (
    (
        "unconscious",
        r"bewusstlos\w*|ohnmacht\w*|in ohnmacht gefallen|zusammengebrochen|kollabiert|umgekippt"
        r"|(?:das )?bewusstsein verloren|nicht ansprechbar",
        True,
    ),
    (
        "unconscious",
        r"(?:wacht|reagiert|antwortet|bewegt sich) (?:\w+ )?nicht(?: mehr)?(?: auf)?"
        r"(?!(?: auf)? (?:meine|unsere|seine|ihre|deine) (?:nachrichten|anrufe|mails?|e mails?|sms)| (?:am|ans) telefon)"
        r"|(?:kriege|kriegen|bekomme|bekommen) (?:ihn|sie|es) nicht (?:mehr )?wach",
        False,
    ),
    ("unconscious", r"herzstillstand|herz (?:hat )?aufgehort zu schlagen|kein puls", True),
    (
        "breathing",
        r"(?:bekomm\w*|krieg\w*) (?:\w+ )?(?:keine|kaum) luft(?: mehr)?" + _NOSE
        + r"|" + _CANT + r"atmen" + _NOSE + r"|atmet (?:\w+ )?(?:nicht|kaum)(?: mehr)?" + _NOSE,
        False,
    ),
    (
        "breathing",
        r"atemnot|atembeschwerden|schwer (?:zu )?atmen|atmet (?:\w+ )?(?:schwer|schlecht)" + _NOSE
        + r"|erstick\w*|asthmaanfall|asthma anfall|luftnot|ringt nach luft",
        True,
    ),
    ("breathing", r"(?:lippen|gesicht) (?:sind |ist |werden |wird )?(?:ganz )?blau|blaue lippen|lauft blau an", True),
    ("choking", r"verschluckt|etwas im hals stecken|steckt (?:\w+ )?im hals", True),
    (
        "chest_pain",
        r"(?:brust|herz|thorax)\w*schmerz\w*|schmerz\w* " + _W + r"{0,3}?(?:in der|in die|an der|auf der|im) "
        r"(?:brust|brustkorb|herzgegend|thorax)",
        True,
    ),
    (
        "chest_pain",
        r"(?:druck|enge|engegefuhl|stechen|brennen|ziehen) " + _W + r"{0,2}?(?:auf|in|an) der brust"
        r"|brust (?:tut weh|schmerzt|brennt|druckt|ist (?:ganz )?eng)|herzinfarkt|herzanfall|infarkt",
        True,
    ),
    ("stroke", r"schlaganfall|hirnschlag|hirninfarkt|apoplex", True),
    (
        "stroke",
        r"(?:gesicht|mund|mundwinkel) (?:\w+ )?(?:hangt|hangen|schief|verzogen|gelahmt)|(?:hangender|schiefer) "
        r"(?:mund|mundwinkel)|lahmung|gelahmt|taub auf einer seite|halbseitig\w*",
        True,
    ),
    (
        "stroke",
        _CANT + r"(?:sprechen|reden|die worte finden)"
        r"|(?:kann|kannst|konnen|konnte) (?:\w+ ){0,4}?(?:arm|bein|hand|seite|arme|beine) nicht (?:mehr )?(?:bewegen|heben)",
        False,
    ),
    ("stroke", r"(?:spricht|redet) (?:\w+ )?(?:verwaschen|undeutlich|komisch|wirr|lallend)|lallt", True),
    (
        "bleeding",
        r"blutet (?:\w+ )?(?:stark|sehr stark|heftig|extrem|ununterbrochen|ohne ende|uberall|wie verruckt)"
        r"|(?:starke|heftige|schwere|massive) blutung\w*",
        True,
    ),
    ("bleeding", r"hort (?:\w+ )?nicht (?:mehr )?auf zu bluten|blutung (?:hort|stoppt) nicht", False),
    (
        "bleeding",
        r"(?:viel|uberall|sehr viel) blut|blut (?:erbrochen|gespuckt|gehustet)|(?:erbricht|spuckt|hustet) blut"
        r"|tiefe (?:schnittwunde|wunde|schnittverletzung)",
        True,
    ),
    (
        "allergy",
        r"(?:zunge|lippen?|gesicht|hals|rachen) (?:\w+ )?(?:schwillt|schwellen|geschwollen|zugeschwollen)"
        r"|anaphyla\w*|allergischer schock|(?:schwere|starke|heftige) allergische reaktion|quincke",
        True,
    ),
    (
        "overdose",
        r"uberdosis|(?:zu viele|alle|eine ganze packung|die ganze packung|eine packung) (?:\w+ )?" + _MEDS
        + r"(?: \w+){0,2}? (?:genommen|geschluckt|eingenommen)",
        True,
    ),
    ("overdose", r"(?:" + _MEDS + "|" + _CHEMICALS + r") (?:\w+ ){0,2}?(?:geschluckt|getrunken)|vergiftet|vergiftung",
     True),
    ("seizure", r"krampfanfall|krampfanfalle|epileptischer anfall|fieberkrampf|zuckt am ganzen korper"
                r"|krampft am ganzen korper", True),
    (
        "suicide",
        r"suizid\w*|selbstmord\w*|(?:mich|sich) (?:\w+ )?(?:umbringen|toten|das leben nehmen)"
        r"|(?:will|mochte|werde|wollte) (?:\w+ )?sterben|nicht mehr leben|lebensmude"
        r"|(?:allem|meinem leben) ein ende (?:setzen|machen)|keinen sinn mehr zu leben",
        False,
    ),
    ("meningitis", r"meningitis|hirnhautentzundung|(?:lila|violette|dunkelrote) (?:flecken|punkte)", True),
    (
        "trauma",
        r"(?:vom|von einem|von der) (?:auto|bus|lkw|motorrad|laster)\w* (?:angefahren|uberfahren|erfasst)"
        r"|angefahren worden|uberfahren worden"
        r"|(?:vom|von der|von einem|aus dem) (?:dach|leiter|balkon|fenster|baum|gerust) (?:gefallen|gesturzt)",
        True,
    ),
    (
        "trauma",
        r"offener bruch|knochen (?:ragt|steht|schaut) (?:\w+ )?(?:raus|heraus)|schwere verbrennung\w*"
        r"|(?:schwer|stark) (?:verbrannt|verbruht)",
        True,
    ),
)

NEGATED_BEFORE: Final = re.compile(
    r"\b(?:(?<!weiss )(?<!weis )nicht|kein|keine|keinen|keiner|keinem|ohne|nie|niemals)(?: mehr)?(?: \w+){0,2} $"
)
PAST: Final = re.compile(
    r"\b(?:vor (?:\w+ ){0,2}?(?:wochen?|monaten?|monat|jahren?|jahr)"
    r"|(?:letzte[ns]?|vergangene[ns]?|im letzten|im vergangenen) (?:jahr|monat|woche|sommer|winter)"
    r"|(?:19|20)\d\d|als (?:ich|er|sie) (?:ein )?(?:kind|klein|jung|baby|jugendlicher) war|als (?:kind|baby|jugendlicher)"
    r"|fruher|vorgeschichte|in der vergangenheit|damals)\b"
)
NOW: Final = re.compile(
    r"\b(?:jetzt|gerade|im moment|momentan|schon wieder|wieder (?:da|passiert|angefangen|los)|erneut"
    r"|seit (?:heute|gestern|heute nacht|heute morgen|heute fruh"
    r"|\w+ (?:minuten|stunden?|tagen?)))\b"
)
_NUMBERS: Final = {"ein": 1, "eine": 1, "einen": 1, "einem": 1, "zwei": 2, "drei": 3, "vier": 4, "funf": 5,
                   "sechs": 6, "sieben": 7, "acht": 8, "neun": 9, "zehn": 10, "elf": 11, "zwolf": 12}  # fmt: skip
_FEVER: Final = re.compile(r"\b(?:fieber\w*|hohe temperatur|(?:38|39|40|41)(?: komma \d)? grad|gluht|glueht)\b")

TABLE: Final = PhraseTable(
    language="de",
    rules=RULES,
    negated_before=NEGATED_BEFORE,
    past=PAST,
    now=NOW,
    pairs=(
        Pair("meningitis", re.compile(r"\b(?:nackensteif\w*|steife[rn]? nacken|nacken (?:ist )?(?:ganz )?steif)\b"),
             _FEVER),
        Pair(
            "chest_pain",
            re.compile(r"\b(?:blass|grau im gesicht|kaltschweissig|schweissgebadet|schwitzt\w*|kalter schweiss)\b"),
            re.compile(r"\b(?:schmerz\w*|tut weh|weh)(?: \w+){0,3}? (?:im|in den|in der|am|an der) "
                       r"(?:linken arm|arm links|kiefer|linken schulter)\b|\b(?:linke[rn]? arm|kiefer) "
                       r"(?:\w+ )?(?:tut weh|schmerzt)\b"),
        ),
    ),
    infant_fever=InfantFever(
        infant=re.compile(r"\b(?:baby|babys|saugling|kleinkind)\b"),
        newborn=re.compile(r"\b(?:neugeboren\w*)\b"),
        age=re.compile(r"\b(?P<n>\d{1,3}|" + "|".join(_NUMBERS) + r") (?P<unit>tage?n?|wochen?|monate?n?|jahre?n?) alt\b"),
        fever=_FEVER,
        numbers=_NUMBERS,
        days_per_unit={"tag": 1, "woch": 7, "monat": 30, "jahr": 365},
    ),
)
