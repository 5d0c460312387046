"""Practical questions answered from the practice's own settings.

Opening hours, the address, closures and whether new patients are taken are
said from the structured settings (so they can never disagree with what the
agenda offers); access, what to bring and fees are the practice's own
sentences (``[info]``), read as written. A question on a topic the practice has
not answered gets no answer here: the secretary then offers a message, it
never improvises one.

Pure functions of the words, the practice and the day: testable without audio.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Final

from appliance.agenda.practice import OpeningPeriod, Practice
from appliance.dialogue import speakable
from appliance.dialogue.normalize import fold

# (topic, patterns on the folded text), the first topic that matches wins: "à
# quelle heure fermez-vous le 24 décembre" is about a closure before the hours.
_TOPICS: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    ("closures", (
        r"\b(vacances|conges|ferie|feries|fermeture|pont)\b",
        r"\bferme (?:\w+ ){0,2}?(?:pendant|en (?:aout|juillet|decembre)|entre|le \d+|le (?:lundi|mardi|mercredi|jeudi|vendredi|samedi))",
        r"\b(noel|paques|toussaint|jour de l an|nouvel an)\b",
    )),
    ("new_patients", (
        r"\b(nouveaux?|nouvelles?) (patients?|patientes?)\b",
        r"\bmedecin traitant\b",
        r"\b(prenez|prend|acceptez|accepte|prendre) (?:\w+ ){0,3}?(patients?|patientes?)\b",
    )),
    ("fees", (
        r"\b(tarifs?|prix|coute|coutent|cout|honoraires?|depassements?|secteur|tiers payant|rembourse\w*|mutuelle)\b",
        r"\bcombien (?:\w+ ){0,3}?(consultation|visite|payer|paye|ca fait)\b",
        r"\b(carte bancaire|carte bleue|cb|cheques?|especes|liquide|paiement|payer)\b",
    )),
    ("bring", (
        r"\b(apporter|amener|ramener|emmener|prevoir)\b",
        r"\b(papiers|documents) (?:\w+ ){0,3}?(faut|besoin|prendre)\b",
    )),
    ("access", (
        r"\b(acces|parking|garer|stationner|stationnement|metro|bus|tram|tramway|ascenseur|etage|fauteuil roulant|handicap\w*|pmr)\b",
        r"\bcomment (?:on )?(?:vient|venir|aller|se rendre|trouver|acceder)\b",
    )),
    ("address", (
        r"\badresse\b",
        r"\bou (?:est|se trouve|se situe|etes vous|vous trouvez|c est)\b",
        r"\bvous etes ou\b",
    )),
    ("hours", (
        r"\b(horaires?|heures d ouverture|ouvert|ouverte|ouvre|ouvrez|fermez|ferme|fermes|fermee)\b",
        r"\bjusqu a quelle heure\b",
        r"\ba quelle heure (?:vous |est ce que vous |le cabinet )?(?:ouvr|ferm|commenc|fini)",
    )),
)
_COMPILED: Final = tuple((topic, tuple(re.compile(p) for p in patterns)) for topic, patterns in _TOPICS)

# Questions about other people's care or the practice's patients: never answered,
# whoever asks (privacy), before any topic.
_OTHERS: Final = tuple(re.compile(p) for p in (
    r"\b(quels?|quelles?|liste|noms?|combien) (?:\w+ ){0,3}?(patients?|patientes?|personnes?|gens)\b(?! (?:nouveaux|nouvelles))",
    r"\b(rendez vous|rdv|dossier|resultats?|ordonnances?|adresse|numero|telephone) (?:\w+ ){0,2}?(de|d) "
    r"(madame|monsieur|mme|m|mon voisin|ma voisine|mon ex|quelqu un|cette personne|un autre patient|une autre patiente)\b",
    r"\b(qui|quel patient|quelle patiente) (?:\w+ ){0,3}?(a rendez vous|vient|est venu|est venue|passe|voit)\b",
    r"\b(donne|donnez|dites|dis|lis|lisez|montre|montrez) (?:\w+ ){0,2}?(les |tous les |la liste des )?(rendez vous|rdv|patients|dossiers)\b",
))

_DAYS: Final = speakable.WEEKDAY_NAMES
_UPCOMING_CLOSURE_DAYS: Final = 90


@dataclass(frozen=True, slots=True)
class Answer:
    topic: str
    text: str


def asks_about_others(text: str) -> bool:
    """A question about other patients or the practice's patient list."""
    folded = fold(text)
    return any(p.search(folded) for p in _OTHERS)


def question_topic(text: str) -> str | None:
    folded = fold(text)
    for topic, patterns in _COMPILED:
        if any(p.search(folded) for p in patterns):
            return topic
    return None


def answer_question(text: str, practice: Practice, today: date) -> Answer | None:
    """The practice's answer to a practical question, or None (not a known topic,
    or one the practice has not answered)."""
    topic = question_topic(text)
    if topic is None:
        return None
    said = _SAY[topic](practice, today)
    return Answer(topic, said) if said else None


def _hours(practice: Practice, today: date) -> str:
    return f"Le cabinet est ouvert {say_opening_hours(practice.hours)}."


def say_opening_hours(hours: tuple[OpeningPeriod, ...]) -> str:
    """ "du lundi au vendredi de 8 heures 30 à 12 heures 30 et de 14 heures à 19 heures,
    et le samedi de 9 heures à midi": consecutive days with the same periods together."""
    by_day: dict[int, tuple[tuple[str, str], ...]] = {}
    for period in sorted(hours, key=lambda p: (p.weekday, p.start)):
        by_day.setdefault(period.weekday, ())
        by_day[period.weekday] += ((speakable.say_time(period.start), speakable.say_time(period.end)),)
    groups: list[tuple[int, int, tuple[tuple[str, str], ...]]] = []
    for day in sorted(by_day):
        if groups and groups[-1][1] == day - 1 and groups[-1][2] == by_day[day]:
            groups[-1] = (groups[-1][0], day, by_day[day])
        else:
            groups.append((day, day, by_day[day]))
    parts = []
    for first, last, periods in groups:
        days = f"le {_DAYS[first]}" if first == last else f"du {_DAYS[first]} au {_DAYS[last]}"
        spans = " et ".join(f"de {start} à {end}" for start, end in periods)
        parts.append(f"{days} {spans}")
    return ", et ".join(parts)


def _address(practice: Practice, today: date) -> str:
    text = f"Le cabinet se trouve au {practice.address}."
    return f"{text} {practice.info.access}" if practice.info.access else text


def _access(practice: Practice, today: date) -> str:
    return practice.info.access or _address(practice, today)


def _bring(practice: Practice, today: date) -> str:
    return practice.info.bring


def _fees(practice: Practice, today: date) -> str:
    return practice.info.fees


def _new_patients(practice: Practice, today: date) -> str:
    if practice.info.new_patients:
        return practice.info.new_patients
    open_reasons = [r for r in practice.reasons if r.new_patients]
    if not open_reasons:
        return "Pour le moment, les médecins du cabinet ne prennent pas de nouveaux patients."
    who = {p.id for r in open_reasons for p in practice.practitioners_for(r.id)}
    names = [speakable.say_practitioner(p.display_name) for p in practice.practitioners if p.id in who]
    if len(who) == len(practice.practitioners):
        return "Oui, le cabinet prend de nouveaux patients. Je peux vous donner un rendez-vous."
    joined = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} et {names[-1]}"
    verb = "prend" if len(names) == 1 else "prennent"
    return f"Seul{'' if len(names) == 1 else 's'} {joined} {verb} de nouveaux patients. Je peux vous donner un rendez-vous."


def _closures(practice: Practice, today: date) -> str:
    horizon = today + timedelta(days=_UPCOMING_CLOSURE_DAYS)
    coming = sorted((c for c in practice.closures if c.end >= today and c.start <= horizon), key=lambda c: c.start)
    if not coming:
        return "Aucune fermeture n'est prévue dans les trois prochains mois, en dehors des horaires habituels."
    said = []
    for closure in coming[:3]:
        if closure.start == closure.end:
            said.append(f"le {speakable.say_date(closure.start)}")
        else:
            said.append(f"du {speakable.say_date(closure.start)} au {speakable.say_date(closure.end)}")
    return f"Le cabinet sera fermé {', puis '.join(said)}."


_SAY: Final = {
    "hours": _hours,
    "address": _address,
    "access": _access,
    "bring": _bring,
    "fees": _fees,
    "new_patients": _new_patients,
    "closures": _closures,
}
