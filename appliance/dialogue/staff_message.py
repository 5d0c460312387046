"""Requests for the staff: renewals, certificates, sick notes, results, paperwork, callbacks.

The assistant collects what (in the caller's words, for a renewal the
medication as said), who (name, first name, date of birth) and a callback
number, reads it back, and leaves a message in the practice inbox with the
transcript, a structured summary and an urgency the staff sort by. It never
asks about symptoms, and says so when a caller starts giving them.
"""

from __future__ import annotations

import re
from typing import Final

from appliance.dialogue import speakable
from appliance.dialogue.conversation import PersonDraft
from appliance.dialogue.existing import ExistingSteps
from appliance.dialogue.normalize import fold
from appliance.dialogue.reply import LeaveMessage, Reply

CATEGORIES: Final = ("prescription", "certificate", "sick_note", "results", "admin", "callback", "other")

# Words that make a request urgent today, whatever its kind: the caller runs out
# of a treatment, or a deadline is today. Said by the caller, never guessed.
_URGENT: Final = re.compile(
    r"\b(urgent|urgence|au plus vite|aujourd hui|ce soir|ce matin|tout de suite|rapidement|vite"
    r"|(?:il|elle) (?:ne )?(?:me|lui|nous) reste (?:plus|qu un|que (?:un|deux|1|2))"
    r"|(?:plus|pas) de (?:medicaments?|traitement|comprimes|insuline|pilule)"
    r"|dernier (?:comprime|cachet|stylo)|derniere (?:boite|plaquette|dose))\b"
)
# How soon each kind is usually needed when nothing urgent was said.
_DEFAULT_URGENCY: Final = {
    "prescription": "days", "sick_note": "days", "results": "days", "callback": "days",
    "certificate": "routine", "admin": "routine", "other": "days",
}
# A sentence that describes symptoms or a condition: the box does not need it.
_MEDICAL_DETAIL: Final = re.compile(
    r"\b(j ai mal|il a mal|elle a mal|douleurs?|fievre|tousse|toux|vomi\w*|diarrhee|nausees?|vertiges?"
    r"|saigne\w*|infection|angine|depression|deprime|cancer|diabete|tension|cholesterol"
    r"|symptomes?|enceinte|fausse couche|maladie de|je suis malade|il est malade|elle est malade)\b"
)
_DETAIL_MAX_WORDS: Final = 30


def urgency_of(category: str, words: str) -> str:
    """``urgent`` (today), ``days`` or ``routine``, from the kind and what was said."""
    return "urgent" if _URGENT.search(fold(words)) else _DEFAULT_URGENCY.get(category, "days")


def gives_medical_details(text: str) -> bool:
    """Symptoms or a condition described (not a visit reason: "un vaccin contre la
    grippe", "mon suivi de tension" are what the practice asks for)."""
    folded = fold(text)
    if re.search(r"\b(vaccin\w*|suivi|controle|renouvel\w*|ordonnance)\b", folded):
        return False
    return _MEDICAL_DETAIL.search(folded) is not None


def detail_from_request(category: str, text: str) -> str | None:
    """What the first sentence already says the request is about, if it says it.

    "le renouvellement de mon Levothyrox" → "Levothyrox"; "un certificat pour le
    judo de mon fils" → "le judo de mon fils". None when only the kind was said.
    """
    patterns = {
        "prescription": r"(?:ordonnance|renouvel\w*|traitement|medicaments?) (?:de |du |des |d |pour (?:mon |ma |mes |le |la |les )?)"
                        r"(?:mon |ma |mes |son |sa |ses )?(.+)",
        "certificate": r"certificat (?:medical )?(?:pour|de|d) (.+)",
        "results": r"resultats? (?:de |du |des |d )(.+)",
    }
    pattern = patterns.get(category)
    if pattern is None:
        return None
    m = re.search(pattern, fold(text))
    if m is None:
        return None
    detail = m.group(1).strip()
    generic = {"ordonnance", "traitement", "medicaments", "medicament", "mon ordonnance", "renouvellement"}
    return None if not detail or detail in generic else _clip(detail)


def _clip(words: str) -> str:
    kept = words.split()[:_DETAIL_MAX_WORDS]
    return " ".join(kept)


class MessageSteps(ExistingSteps):
    def _take_message(self, category: str, *, first_words: str = "", why: str = "", lead: str = "") -> Reply:
        """Start collecting a message; ``lead`` is said first (why the staff take over)."""
        self.purpose = "message"
        m = self.message
        m.category, m.first_words, m.why = category, first_words, why
        if first_words:
            m.detail = detail_from_request(category, first_words)
        if m.detail is None and category in ("prescription", "certificate", "sick_note", "results", "admin", "callback") and not why:
            text = f"{lead} {self.t['message_intro_' + category]} {self.t['ask_detail_' + category]}".strip()
            return self._ask("message", text, question=self.t["ask_detail_" + category])
        return self._ask_who(f"{lead} {self.t['message_intro_' + category]}".strip() if not why else lead)

    def _answer_message(self, text: str) -> Reply:
        if not text.strip():
            return self._retry("ask_detail_again")
        self.message.detail = _clip(text.strip())
        return self._ask_who(self.t["noted"])  # symptoms said here: the Secretary says it needs none

    def _message_readback(self) -> Reply:
        m, p = self.message, self.person
        assert m.category and p.birth_date is not None and p.phone is not None
        detail = f", {self.t['about']} {m.detail}" if m.detail else ""
        text = self.t["message_readback"].format(
            request=self.t["request_" + m.category],
            first_name=p.first_name,
            last_name=p.last_name,
            birth_date=speakable.say_date(p.birth_date),
            detail=detail,
            phone=speakable.say_phone(p.phone) if p.phone else self.t["no_number"],
        )
        return self._ask("confirm", text, question=self.t["not_understood_confirm_message"])

    def _confirm_message(self, answer: bool) -> Reply:
        if not answer:
            # Something was wrong: ask again from the start of the who, keep the what.
            self.person.last_name = self.person.first_name = None
            self.person.birth_date = None
            return self._ask_who(self.t["message_correct"])
        return Reply("", "confirm", action=self._message_action())

    def _message_action(self) -> LeaveMessage:
        m, p = self.message, self.person
        category = m.category or "other"
        urgency = urgency_of(category, f"{m.first_words} {m.detail or ''}")
        phone = p.phone or self.caller_id
        return LeaveMessage(category, urgency, message_summary(self.t, category, m.detail, m.why, p, phone), p.record(phone))


def message_summary(t: dict[str, str], category: str, detail: str | None, why: str, person: PersonDraft,
                    phone: str | None) -> str:
    """One line the staff read in the inbox: kind — who — what — call back at."""
    parts = [t["summary_" + category]]
    last, first, born = person.last_name, person.first_name, person.birth_date
    if last or first:
        who = " ".join(x for x in (first, (last or "").upper()) if x)
        parts.append(f"{who} ({born:%d/%m/%Y})" if born else who)
    if detail:
        parts.append(f"« {detail} »")
    if why:
        parts.append(why)
    parts.append(f"{t['summary_call_back']} {speakable.say_phone(phone)}" if phone else t["summary_no_number"])
    return " — ".join(parts)
