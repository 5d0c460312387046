"""Messages for the staff, left by calls (the write side of the practice inbox)."""

from __future__ import annotations

from typing import Any, Final

from appliance.clock import Clock
from appliance.store import Store
from appliance.store.inbox import Urgency, insert_message

# What the staff read in the inbox for each kind of emergency the box recognises.
EMERGENCY_LABELS: Final = {
    "unconscious": "perte de connaissance",
    "breathing": "difficulté à respirer",
    "choking": "étouffement",
    "chest_pain": "douleur thoracique",
    "stroke": "signes d'AVC",
    "bleeding": "saignement important",
    "allergy": "réaction allergique grave",
    "overdose": "intoxication ou surdosage",
    "seizure": "convulsions",
    "suicide": "idées suicidaires",
    "meningitis": "signes de méningite",
    "child_fever_infant": "fièvre chez un nourrisson",
    "trauma": "traumatisme grave",
}


class LocalInbox:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    def leave(
        self,
        call_id: str,
        *,
        category: str,
        urgency: Urgency,
        summary: str,
        transcript: str,
        patient: dict[str, Any] | None = None,
    ) -> int:
        return insert_message(
            self.store,
            call_id=call_id,
            created_at=self.clock.now(),
            category=category,
            urgency=urgency,
            summary=summary,
            transcript=transcript,
            patient=patient,
        )


def emergency_summary(kind: str, phrase: str, number: str) -> str:
    label = EMERGENCY_LABELS.get(kind, kind)
    return f"Urgence possible ({label}) : l'appelant a été orienté vers le {number} ou le 112. Entendu : « {phrase} »."
