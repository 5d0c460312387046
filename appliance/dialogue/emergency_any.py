"""Emergency detection in every language the box knows, on every turn.

All tables run on every utterance, whatever language the call is in: a
bilingual caller switches language in mid-sentence, the language detector can
be wrong, and a German caller in a practice that offers only French still says
"Schlaganfall". The French phrase rules run first, then the English and German
tables, then the French pass for garbled words (the most permissive one), and
the most urgent kind found wins.

Whether these tables alarm on ordinary French calls is measured by the whole
French scenario suite (``appliance scenarios tests/scenarios``: 0 false alarms).
"""

from __future__ import annotations

from typing import Final

from appliance.dialogue import emergency_de, emergency_en
from appliance.dialogue.emergency import KINDS, EmergencyMatch, find_emergencies
from appliance.dialogue.emergency_heard import detect_heard_emergency
from appliance.dialogue.emergency_table import PhraseTable

TABLES: Final[dict[str, PhraseTable]] = {"en": emergency_en.TABLE, "de": emergency_de.TABLE}
"""The tables besides the French rules, by language."""


def detect_any_emergency(text: str) -> EmergencyMatch | None:
    """The most urgent emergency described in any language, or None. Never raises."""
    found = list(find_emergencies(text))
    for table in TABLES.values():
        found.extend(table.find(text))
    if found:
        return min(found, key=lambda match: KINDS.index(match.kind))
    return detect_heard_emergency(text)
