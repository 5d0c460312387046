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
from datetime import date, datetime, timedelta
from collections.abc import Mapping
from typing import Final

from appliance.agenda.practice import OpeningPeriod, Practice
from appliance.dialogue import speakable
from appliance.dialogue.normalize import fold
from appliance.dialogue.understand import parse_when

# (topic, patterns on the folded text), the first topic that matches wins: "à
# quelle heure fermez-vous le 24 décembre" is about a closure before the hours.
_TOPICS: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    ("closures", (
        # "vacances" alone is not enough: "un poème sur les vacances" is no question about them
        r"\b(?:ferm\w*|ouvert\w*|absents?|partez|part|fermeture) (?:\w+ ){0,4}?(?:vacances|conges|ferie|feries|pont)\b",
        r"\b(?:vacances|conges|jours? feries?|pont) (?:\w+ ){0,4}?(?:ferm\w*|ouvert\w*|absents?|cabinet|docteurs?|medecins?)\b",
        r"\b(?:dates?|periode) (?:de |des |du )?(?:fermeture|vacances|conges)\b",
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
        r"\b(horaires?|heures d ouverture|ouverts?|ouvertes?|ouvre|ouvrez|fermez|ferme|fermes|fermees?)\b",
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
    r"\b(?:quel patient|quelle patiente|quels patients|qui d autre) (?:\w+ ){0,3}?(?:a rendez vous|vient|est venue?|passe|voit)\b",
    r"\bqui (?:a|avait|aura) (?:un |des )?(?:rendez vous|rdv)\b",
    r"\b(?:donne|donnez|donner|dites|dire|dis|lis|lisez|lire|montre|montrez|montrer|liste|lister|envoyer|envoyez)"
    r" (?:\w+ ){0,3}?(?:les |tous les |toutes les |la liste des |le planning)?(?:rendez vous|rdv|patients|dossiers|agenda|planning)\b",
    r"\b(?:monsieur|madame|mme|mr|m|mademoiselle) [a-z]+ (?:a|avait|aura) (?:bien |t il |t elle )?(?:un |son |le )?(?:rendez vous|rdv)\b",
    r"\b(?:est ce que|savoir si) (?:mon voisin|ma voisine|mon mari|ma femme|mon pere|ma mere|[a-z]+ [a-z]+) (?:a|avait|est venue?) (?:bien )?(?:un |son )?(?:rendez vous|rdv|venu|venue)\b",
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


def answer_question(text: str, practice: Practice, now: datetime, t: Mapping[str, str]) -> Answer | None:
    """The practice's answer to a practical question, or None (not a known topic,
    or one the practice has not answered). ``t``: the dialogue's templates."""
    topic = question_topic(text)
    if topic is None:
        return None
    if topic in ("hours", "closures"):
        day = _one_day(text, now)
        if day is not None:  # "ouvert le 25 décembre ?": that day, not the week
            return Answer("day", _opening_on(practice, day, t))
    said = _SAY[topic](practice, now.date(), t)
    return Answer(topic, said) if said else None


def _one_day(text: str, now: datetime) -> date | None:
    when = parse_when(text, now)
    if when is None or when.earliest or when.window_end - when.window_start > timedelta(days=1):
        return None
    return when.window_start.date()


def _opening_on(practice: Practice, day: date, t: Mapping[str, str]) -> str:
    said = speakable.say_date(day, weekday=True, year=False)
    closure = next((c for c in practice.closures if c.covers(day)), None)
    periods = practice.periods_on(day)
    if closure is not None or not periods:
        reason = f" ({closure.reason})" if closure is not None and closure.reason else ""
        return t["closed_on"].format(day=said, reason=reason)
    spans = t["hours_and"].join(
        t["hours_span"].format(start=speakable.say_time(p.start), end=speakable.say_time(p.end)) for p in periods)
    return t["open_on"].format(day=said, hours=spans)


def say_opening_hours(hours: tuple[OpeningPeriod, ...], t: Mapping[str, str]) -> str:
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
        if first == last:
            days = t["hours_one_day"].format(day=_DAYS[first])
        else:
            days = t["hours_days"].format(first=_DAYS[first], last=_DAYS[last])
        spans = t["hours_and"].join(t["hours_span"].format(start=start, end=end) for start, end in periods)
        parts.append(f"{days} {spans}")
    return t["hours_then"].join(parts)


def _hours(practice: Practice, today: date, t: Mapping[str, str]) -> str:
    return t["answer_hours"].format(hours=say_opening_hours(practice.hours, t))


def _address(practice: Practice, today: date, t: Mapping[str, str]) -> str:
    text = t["answer_address"].format(address=practice.address)
    return f"{text} {practice.info.access}" if practice.info.access else text


def _access(practice: Practice, today: date, t: Mapping[str, str]) -> str:
    return practice.info.access or _address(practice, today, t)


def _bring(practice: Practice, today: date, t: Mapping[str, str]) -> str:
    return practice.info.bring


def _fees(practice: Practice, today: date, t: Mapping[str, str]) -> str:
    return practice.info.fees


def _new_patients(practice: Practice, today: date, t: Mapping[str, str]) -> str:
    if practice.info.new_patients:
        return practice.info.new_patients
    open_reasons = [r for r in practice.reasons if r.new_patients]
    if not open_reasons:
        return t["new_patients_none"]
    who = {p.id for r in open_reasons for p in practice.practitioners_for(r.id)}
    if len(who) == len(practice.practitioners):
        return t["new_patients_all"]
    names = [speakable.say_practitioner(p.display_name) for p in practice.practitioners if p.id in who]
    if len(names) == 1:
        return t["new_patients_one"].format(name=names[0])
    return t["new_patients_some"].format(names=f"{', '.join(names[:-1])}{t['hours_and']}{names[-1]}")


def _closures(practice: Practice, today: date, t: Mapping[str, str]) -> str:
    horizon = today + timedelta(days=_UPCOMING_CLOSURE_DAYS)
    coming = sorted((c for c in practice.closures if c.end >= today and c.start <= horizon), key=lambda c: c.start)
    if not coming:
        return t["closures_none"]
    said = []
    for closure in coming[:3]:
        if closure.start == closure.end:
            said.append(t["closure_day"].format(day=speakable.say_date(closure.start)))
        else:
            said.append(t["closure_span"].format(start=speakable.say_date(closure.start),
                                                 end=speakable.say_date(closure.end)))
    return t["answer_closures"].format(closures=t["closures_then"].join(said))


_SAY: Final = {
    "hours": _hours,
    "address": _address,
    "access": _access,
    "bring": _bring,
    "fees": _fees,
    "new_patients": _new_patients,
    "closures": _closures,
}
