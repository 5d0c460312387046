"""Slot parsers: the caller's answers, as Whisper writes them, turned into values.

Every test runs on Monday 23 November 2026 at 10:00 in Paris.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.dialogue.speakable import say_date, say_phone
from appliance.dialogue.understand import (
    ANY,
    PARTS_OF_DAY,
    WhenPreference,
    match_practitioner,
    match_reason,
    parse_birth_date,
    parse_choice,
    parse_person_name,
    parse_phone,
    parse_when,
    parse_yes_no,
)

PARIS = ZoneInfo("Europe/Paris")
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=PARIS)  # a Monday


def at(month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2026 if month >= 11 else 2027, month, day, hour, minute, tzinfo=PARIS)


# -- yes / no -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("heard", "answer"),
    [
        ("oui", True),
        ("Oui.", True),
        ("ouais", True),
        ("d'accord", True),
        ("daccord", True),
        ("c'est ça", True),
        ("c'est bien ça", True),
        ("parfait", True),
        ("ça me va", True),
        ("ca me convient", True),
        ("exactement", True),
        ("tout à fait", True),
        ("oui oui très bien", True),
        ("ok", True),
        ("bien sûr", True),
        ("si", True),
        ("non non, c'est parfait", True),  # the last answer wins
        ("non", False),
        ("Non.", False),
        ("pas du tout", False),
        ("ça ne me va pas", False),
        ("ça me va pas", False),  # without "ne", as people speak
        ("non merci", False),
        ("non c'est bon", False),  # "nothing else, thanks"
        ("c'est tout merci", False),
        ("je ne peux pas", False),
        ("absolument pas", False),
        ("oui... enfin non", False),  # a correction follows what it corrects
        ("Aucun ne me va, désolé.", False),  # refusing every slot offered
        ("aucune des trois ne me convient", False),
        ("ni l'un ni l'autre", False),
        ("rien ne me va", False),
        ("aucun problème", None),
        ("euh", None),
        ("je sais pas", None),
        ("merci", None),
        ("si c'est possible", None),  # "si" = "if"
        ("", None),
    ],
)
def test_parse_yes_no(heard: str, answer: bool | None) -> None:
    assert parse_yes_no(heard) is answer


# -- when -------------------------------------------------------------------------------

WHEN_CASES = [
    # heard, window start, window end, earliest, exact, part of day, description
    ("mardi matin", at(11, 24, 8), at(11, 24, 12, 30), False, None, "morning", "mardi matin"),
    ("Mardi Martin", at(11, 24, 8), at(11, 24, 12, 30), False, None, "morning", "mardi matin"),  # misheard
    ("demain", at(11, 24), at(11, 25), False, None, None, "demain"),
    ("demain en fin d'après-midi", at(11, 24, 16, 30), at(11, 24, 19), False, None, "late_afternoon",
     "demain en fin d'après-midi"),
    ("demain aprem", at(11, 24, 14), at(11, 24, 19), False, None, "afternoon", "demain après-midi"),
    ("demain entre midi et deux", at(11, 24, 12), at(11, 24, 14), False, None, "lunch", "demain entre midi et deux"),
    ("après-demain", at(11, 25), at(11, 26), False, None, None, "après-demain"),
    ("apres demain", at(11, 25), at(11, 26), False, None, None, "après-demain"),
    ("la semaine prochaine", at(11, 30), at(12, 7), False, None, None, "la semaine prochaine"),
    ("la semaine prochaine le matin", at(11, 30, 8), at(12, 6, 12, 30), False, None, "morning",
     "la semaine prochaine le matin"),
    ("cette semaine", NOW, at(11, 30), False, None, None, "cette semaine"),
    ("lundi prochain", at(11, 30), at(12, 1), False, None, None, "lundi prochain"),
    ("lundi", at(11, 30), at(12, 1), False, None, None, "lundi"),  # today's weekday: next week
    ("mardi en huit", at(12, 1), at(12, 2), False, None, None, "mardi en huit"),
    ("mardi de la semaine prochaine", at(12, 1), at(12, 2), False, None, None, "mardi de la semaine prochaine"),
    ("le 25", at(11, 25), at(11, 26), False, None, None, "le 25 novembre"),
    ("le vingt-cinq", at(11, 25), at(11, 26), False, None, None, "le 25 novembre"),
    ("le 23", NOW, at(11, 24), False, None, None, "le 23 novembre"),  # today
    ("le 20", at(12, 20), at(12, 21), False, None, None, "le 20 décembre"),  # past this month: next
    ("le 31", at(12, 31), at(1, 1), False, None, None, "le 31 décembre"),  # no 31 November
    ("le 25 novembre", at(11, 25), at(11, 26), False, None, None, "le 25 novembre"),
    ("le premier décembre", at(12, 1), at(12, 2), False, None, None, "le premier décembre"),
    ("le 2 janvier", at(1, 2), at(1, 3), False, None, None, "le 2 janvier"),  # next year
    ("le 3 décembre à 14h", at(12, 3, 13), at(12, 3, 15), False, at(12, 3, 14), None, "le 3 décembre à 14 heures"),
    ("vendredi 27 à 10h", at(11, 27, 9), at(11, 27, 11), False, at(11, 27, 10), None, "le 27 novembre à 10 heures"),
    ("jeudi vers 11h", at(11, 26, 10), at(11, 26, 12), False, at(11, 26, 11), None, "jeudi vers 11 heures"),
    ("mardi à 10 heures", at(11, 24, 9), at(11, 24, 11), False, at(11, 24, 10), None, "mardi à 10 heures"),
    ("à 9h30", at(11, 24, 8, 30), at(11, 24, 10, 30), False, at(11, 24, 9, 30), None, "à 9 heures 30"),  # past today
    ("neuf heures trente", at(11, 24, 8, 30), at(11, 24, 10, 30), False, at(11, 24, 9, 30), None, "à 9 heures 30"),
    ("à 11h", NOW, at(11, 23, 12), False, at(11, 23, 11), None, "à 11 heures"),
    ("à 3 heures", at(11, 23, 14), at(11, 23, 16), False, at(11, 23, 15), None, "à 15 heures"),
    ("demain à 9 heures et demie", at(11, 24, 8, 30), at(11, 24, 10, 30), False, at(11, 24, 9, 30), None,
     "demain à 9 heures 30"),
    ("demain à midi", at(11, 24, 11), at(11, 24, 13), False, at(11, 24, 12), None, "demain à midi"),
    ("à partir de 16h", at(11, 23, 16), at(11, 24), False, None, None, "à partir de 16 heures"),
    ("avant 10 heures", at(11, 24), at(11, 24, 10), False, None, None, "avant 10 heures"),
    ("en début de matinée", NOW, at(12, 23, 10), False, None, "early_morning", "en début de matinée"),
    ("aujourd'hui", NOW, at(11, 24), False, None, None, "aujourd'hui"),
    ("ce matin", NOW, at(11, 23, 12, 30), False, None, "morning", "ce matin"),
    ("cet après-midi", at(11, 23, 14), at(11, 23, 19), False, None, "afternoon", "cet après-midi"),
    ("ce soir", at(11, 23, 16, 30), at(11, 23, 19), False, None, "late_afternoon", "aujourd'hui en fin d'après-midi"),
    ("dans 15 jours", at(12, 7), at(12, 14), False, None, None, "dans 2 semaines"),
    ("en décembre", at(12, 1), at(1, 1), False, None, None, "en décembre"),
    ("n'importe quand", NOW, at(12, 24), True, None, None, "le plus tôt possible"),
    ("le plus tôt possible", NOW, at(12, 24), True, None, None, "le plus tôt possible"),
    ("Dès que possible !", NOW, at(12, 24), True, None, None, "le plus tôt possible"),
    ("au plus vite demain", at(11, 24), at(11, 25), True, None, None, "demain"),
    # as Whisper writes them
    ("Euh, mardi, vers 9h30 ?", at(11, 24, 8, 30), at(11, 24, 10, 30), False, at(11, 24, 9, 30), None,
     "mardi vers 9 heures 30"),
    ("JEUDI 26 NOVEMBRE A 8H00", at(11, 26, 7), at(11, 26, 9), False, at(11, 26, 8), None, "le 26 novembre à 8 heures"),
    ("le vingt cinq a quatorze heures", at(11, 25, 13), at(11, 25, 15), False, at(11, 25, 14), None,
     "le 25 novembre à 14 heures"),
    ("mercredi apres midi", at(11, 25, 14), at(11, 25, 19), False, None, "afternoon", "mercredi après-midi"),
    ("demain à 10 heures moins le quart", at(11, 24, 8, 45), at(11, 24, 10, 45), False, at(11, 24, 9, 45), None,
     "demain à 9 heures 45"),
    ("à 18h30 ce soir", at(11, 23, 17, 30), at(11, 23, 19, 30), False, at(11, 23, 18, 30), None,
     "aujourd'hui à 18 heures 30"),
    ("ce week-end", at(11, 28), at(11, 30), False, None, None, "ce week-end"),
    ("le mois prochain", at(12, 1), at(1, 1), False, None, None, "le mois prochain"),
    ("dans trois jours", at(11, 26), at(11, 27), False, None, None, "dans 3 jours"),
    # a day taken back is no wish: the one named after the last correction counts
    ("mardi prochain… ah non, pas mardi, jeudi plutôt, le matin", at(11, 26, 8), at(11, 26, 12, 30), False, None,
     "morning", "jeudi matin"),
    ("pas demain, vendredi", at(11, 27), at(11, 28), False, None, None, "vendredi"),
    ("le 25, non pardon, le 26", at(11, 26), at(11, 27), False, None, None, "le 26 novembre"),
    ("jeudi, enfin non, mercredi après-midi", at(11, 25, 14), at(11, 25, 19), False, None, "afternoon",
     "mercredi après-midi"),
    ("dans deux semaines, le mardi si possible", at(12, 8), at(12, 9), False, None, None, "mardi dans 2 semaines"),
    ("jeudi à 10 heures, non pardon, à 11 heures", at(11, 26, 10), at(11, 26, 12), False, at(11, 26, 11), None,
     "jeudi à 11 heures"),
    # of several parts of the day, a ruled-out one drops and a preferred one wins
    ("le matin de préférence, l'après-midi je fais la sieste. Jeudi ?", at(11, 26, 8), at(11, 26, 12, 30), False,
     None, "morning", "jeudi matin"),
    ("jeudi, pas le matin, l'après-midi", at(11, 26, 14), at(11, 26, 19), False, None, "afternoon", "jeudi après-midi"),
    ("jeudi matin ou vendredi après-midi", at(11, 26), at(11, 27), False, None, None, "jeudi"),  # no guess
    ("mercredi matin, de bonne heure", at(11, 25, 8), at(11, 25, 10), False, None, "early_morning",
     "mercredi en début de matinée"),  # the finer of two nested parts
    ("vendredi entre midi et deux, sinon en fin de matinée", at(11, 27, 12), at(11, 27, 14), False, None, "lunch",
     "vendredi entre midi et deux"),  # "X, sinon Y": X
]  # fmt: skip


@pytest.mark.parametrize(
    ("heard", "start", "end", "earliest", "exact", "part", "description"),
    WHEN_CASES,
    ids=[case[0] for case in WHEN_CASES],
)
def test_parse_when(
    heard: str,
    start: datetime,
    end: datetime,
    earliest: bool,
    exact: datetime | None,
    part: str | None,
    description: str,
) -> None:
    assert parse_when(heard, NOW) == WhenPreference(
        window_start=start,
        window_end=end,
        earliest=earliest,
        exact=exact,
        part_of_day=part,
        description=description,
    )


@pytest.mark.parametrize(
    "heard",
    [
        "bonjour",
        "",
        "je voudrais un rendez-vous",
        "Dupont",
        "oui",
        "le docteur Martin",
        "le premier disponible",  # answers "which doctor?", not "when?"
        "c'est pas urgent",
    ],
)
def test_parse_when_is_none_when_no_time_was_said(heard: str) -> None:
    assert parse_when(heard, NOW) is None


def test_a_part_of_day_already_over_gives_an_empty_window() -> None:
    afternoon = NOW.replace(hour=15)
    when = parse_when("ce matin", afternoon)
    assert when is not None
    assert when.window_start == when.window_end == afternoon


def test_times_are_wall_clock_across_the_daylight_saving_change() -> None:
    saturday = datetime(2027, 3, 27, 10, 0, tzinfo=PARIS)  # clocks go forward on Sunday 28
    when = parse_when("lundi à 9h", saturday)
    assert when is not None and when.exact == datetime(2027, 3, 29, 9, 0, tzinfo=PARIS)
    assert when.exact.utcoffset() == timedelta(hours=2)


def test_accepts_applies_the_part_of_day_to_every_day_of_the_window() -> None:
    when = parse_when("la semaine prochaine le matin", NOW)
    assert when is not None
    assert when.accepts(at(12, 2, 9, 0))
    assert not when.accepts(at(12, 2, 15, 0))
    assert not when.accepts(at(11, 24, 9, 0))  # this week
    assert PARTS_OF_DAY["morning"] == (time(8, 0), time(12, 30))


def test_parse_when_needs_an_aware_now() -> None:
    assert parse_when("demain", NOW.replace(tzinfo=None)) is None


# -- choice among offered slots ------------------------------------------------------------

OPTIONS = [at(11, 24, 9, 30), at(11, 25, 10, 20), at(11, 26, 14, 0)]  # Tue, Wed, Thu


@pytest.mark.parametrize(
    ("heard", "index"),
    [
        ("le premier", 0),
        ("la première", 0),
        ("La première option.", 0),
        ("le 1er", 0),
        ("le deuxième", 1),
        ("le second", 1),
        ("le 2", 1),
        ("le deux", 1),
        ("la dernière", 2),
        ("le troisième", 2),
        ("l'avant-dernier", 1),
        ("celui de 10h", 1),
        ("10h20", 1),
        ("dix heures vingt", 1),
        ("celui de 14 heures", 2),
        ("à 2 heures", 2),
        ("mardi", 0),
        ("plutôt jeudi", 2),
        ("mercredi à 10h20", 1),
        ("le 25", 1),
        ("celui de l'après-midi", 2),
        ("le plus tôt", 0),
        ("peu importe", 0),
        ("pas le premier, le deuxième", 1),
        ("le premier, euh non, le troisième", 2),
        ("oui", None),  # three options: which one?
        ("aucun", None),
        ("aucun des deux", None),
        ("non", None),
        ("vendredi", None),  # nothing offered on Friday
        ("le matin", None),  # two morning options
        ("euh", None),
        ("", None),
    ],
)
def test_parse_choice(heard: str, index: int | None) -> None:
    assert parse_choice(heard, OPTIONS) == index


def test_yes_picks_the_only_option() -> None:
    assert parse_choice("oui ça me va", OPTIONS[:1]) == 0
    assert parse_choice("non", OPTIONS[:1]) is None


def test_a_day_number_means_the_date_when_one_option_is_on_it() -> None:
    options = [at(12, 2, 9), at(12, 3, 9)]  # "le 2" is the 2nd of December, the first option
    assert parse_choice("le 2", options) == 0
    assert parse_choice("", []) is None
    assert parse_choice("le premier", []) is None


# -- names ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("heard", "name"),
    [
        ("Dupont", "Dupont"),
        ("dupont.", "Dupont"),
        ("je m'appelle Dupont", "Dupont"),
        ("Je m’appelle DUPONT", "Dupont"),
        ("c'est madame Dupont", "Dupont"),
        ("euh c'est monsieur Martin", "Martin"),
        ("mon nom c'est Dupont, D U P O N T", "Dupont"),
        ("Dupond, D U P O N T", "Dupont"),  # spelled letters win
        ("D-U-P-O-N-T", "Dupont"),
        ("d u p o n t", "Dupont"),
        ("D comme Denis, U, P, O, N, T", "Dupont"),
        ("c'est Le Goff, L E G O F F", "Le Goff"),
        ("le goff", "Le Goff"),
        ("N'Diaye", "N'Diaye"),
        ("n'diaye", "N'Diaye"),
        ("Martin-Leroy", "Martin-Leroy"),
        ("Dupont Marie", "Dupont Marie"),
        ("mon prénom c'est Hélène", "Hélène"),
        ("Jean-Pierre", "Jean-Pierre"),
        ("de la Fontaine", "De la Fontaine"),
        ("Dupont de la Motte", "Dupont de la Motte"),
        ("McDonald", "McDonald"),
        ("oui c'est Dupont voilà", "Dupont"),
        ("euh", None),
        ("oui", None),
        ("euh... oui", None),
        ("je sais pas", None),
        ("pardon ?", None),
        ("c'est pour un rendez-vous", None),
        ("Dupont 12", None),
        ("Jeudi matin, si possible.", None),  # a sentence, not a name: ask again
        ("Bonjour, mon mari a une grosse douleur", None),
        ("Oui, c'est bien ça.", None),
        ("", None),
        ("...", None),
    ],
)
def test_parse_person_name(heard: str, name: str | None) -> None:
    assert parse_person_name(heard) == name


# -- birth date ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("heard", "born"),
    [
        ("12 mars 1980", date(1980, 3, 12)),
        ("le 12/03/1980", date(1980, 3, 12)),
        ("12 03 1980", date(1980, 3, 12)),
        ("12.03.1980", date(1980, 3, 12)),
        ("12031980", date(1980, 3, 12)),
        ("douze mars mille neuf cent quatre-vingt", date(1980, 3, 12)),
        ("douze mars dix-neuf cent quatre-vingt", date(1980, 3, 12)),
        ("né le 1er janvier 1975", date(1975, 1, 1)),
        ("premier janvier 75", date(1975, 1, 1)),
        ("12 mars 80", date(1980, 3, 12)),
        ("le 3 janvier 26", date(2026, 1, 3)),  # a baby
        ("le 30 novembre 26", date(1926, 11, 30)),  # 2026-11-30 is still ahead
        ("premier janvier 15", date(2015, 1, 1)),
        ("cinq juillet deux mille dix", date(2010, 7, 5)),
        ("29 février 2000", date(2000, 2, 29)),
        ("le 14 aout 1950", date(1950, 8, 14)),
        ("29 février 2001", None),
        ("31 février 1980", None),
        ("12 13 1980", None),
        ("12 mars 2030", None),  # future
        ("12 mars 1890", None),  # over 120 years
        ("hier", None),
        ("1980", None),
        ("", None),
    ],
)
def test_parse_birth_date(heard: str, born: date | None) -> None:
    assert parse_birth_date(heard, NOW) == born


# -- phone ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("heard", "phone"),
    [
        ("0612345678", "0612345678"),
        ("06 12 34 56 78", "0612345678"),
        ("06.12.34.56.78", "0612345678"),
        ("+33612345678", "0612345678"),
        ("+33 6 12 34 56 78", "0612345678"),
        ("0033 6 12 34 56 78", "0612345678"),
        ("+33 (0)6 12 34 56 78", "0612345678"),
        ("zéro six douze trente-quatre cinquante-six soixante-dix-huit", "0612345678"),
        ("zéro un quarante-deux zéro zéro zéro zéro zéro zéro", "0142000000"),
        ("plus trente-trois six douze trente-quatre cinquante-six soixante-dix-huit", "0612345678"),
        ("mon numéro c'est le 06 12, euh, 34 56 78 voilà", "0612345678"),
        ("06 12 34 56", None),  # too short
        ("06 12 34 56 78 90", None),  # too long
        ("00 12 34 56 78", None),
        ("oui", None),
        ("", None),
    ],
)
def test_parse_phone(heard: str, phone: str | None) -> None:
    assert parse_phone(heard) == phone


# -- reasons and practitioners --------------------------------------------------------------


@dataclass(frozen=True)
class Reason:
    id: str
    label: str
    keywords: tuple[str, ...]


@dataclass(frozen=True)
class Doctor:
    id: str
    last_name: str
    display_name: str
    aliases: tuple[str, ...] = ()


REASONS = (
    Reason("consultation", "une consultation", ("consultation", "consulter", "malade")),
    Reason("vaccin", "un vaccin", ("vaccin", "vaccination", "rappel")),
    Reason("renouvellement", "un renouvellement d'ordonnance", ("renouvellement", "ordonnance")),
    Reason("certificat", "un certificat", ("certificat", "certificat sportif", "sport")),
    Reason("frottis", "un frottis", ("frottis", "gynécologique")),
)
DOCTORS = (
    Doctor("martin", "Martin", "docteur Claire Martin", ("docteur Claire",)),
    Doctor("bernard", "Bernard", "docteur Paul Bernard"),
    Doctor("durand", "Durand", "docteur Durand"),
    Doctor("le-goff", "Le Goff", "docteur Yann Le Goff"),
)


@pytest.mark.parametrize(
    ("heard", "reason"),
    [
        ("c'est pour un vaccin", "vaccin"),
        ("c'est pour un vacin", "vaccin"),  # misheard, fuzzy
        ("le rappel du tétanos", "vaccin"),
        ("renouvelement de mon ordonance", "renouvellement"),
        ("un certificat pour le sport", "certificat"),
        ("Certificats", "certificat"),
        ("je suis malade", "consultation"),
        ("une consultation", "consultation"),
        # a specific word beats one that only says "see the doctor"
        ("je voudrais consulter pour un vaccin", "vaccin"),
        ("consulter pour mon renouvellement", "renouvellement"),
        ("une consultation pour un certificat", "certificat"),
        ("je voudrais que vous me rappeliez", None),  # "rappeliez" is not "rappel"
        ("bonjour", None),
        ("", None),
    ],
)
def test_match_reason(heard: str, reason: str | None) -> None:
    assert match_reason(heard, REASONS) == reason


def test_two_reasons_matching_equally_are_ambiguous() -> None:
    twins = (Reason("a", "un vaccin adulte", ("vaccin",)), Reason("b", "un vaccin enfant", ("vaccin",)))
    assert match_reason("un vaccin", twins) is None
    assert match_reason("un vaccin enfant", twins) == "b"


@pytest.mark.parametrize(
    ("heard", "practitioner"),
    [
        ("docteur Bernar", "bernard"),  # misheard, fuzzy
        ("Dr Martin", "martin"),
        ("avec le docteur Martin s'il vous plaît", "martin"),
        ("docteur Claire", "martin"),
        ("Bernard", "bernard"),
        ("le docteur Durant", "durand"),
        ("docteur Le Goff", "le-goff"),
        ("docteur le gof", "le-goff"),
        ("n'importe lequel", ANY),
        ("peu importe", ANY),
        ("le premier disponible", ANY),
        ("celui qui est libre", ANY),
        ("pas de préférence", ANY),
        ("ça m'est égal", ANY),
        ("peu importe, le docteur Bernard si possible", "bernard"),  # a name said wins
        ("mardi matin", None),  # "matin" is not Martin
        ("durant la semaine", None),  # "durant" the word is not Durand
        ("bonjour", None),
        ("", None),
    ],
)
def test_match_practitioner(heard: str, practitioner: str | None) -> None:
    assert match_practitioner(heard, DOCTORS) == practitioner


def test_two_practitioners_with_the_same_name_are_ambiguous() -> None:
    martins = (Doctor("c", "Martin", "docteur Claire Martin"), Doctor("p", "Martin", "docteur Paul Martin"))
    assert match_practitioner("docteur Martin", martins) is None
    assert match_practitioner("docteur Paul Martin", martins) == "p"


# -- properties ----------------------------------------------------------------------------

_PARSERS = (
    parse_yes_no,
    parse_person_name,
    parse_phone,
    lambda t: parse_when(t, NOW),
    lambda t: parse_birth_date(t, NOW),
    lambda t: parse_choice(t, OPTIONS),
    lambda t: match_reason(t, REASONS),
    lambda t: match_practitioner(t, DOCTORS),
)


@given(st.text(max_size=300))
def test_no_parser_raises_on_arbitrary_text(text: str) -> None:
    for parse in _PARSERS:
        parse(text)


_PIECES = [
    "mardi", "lundi", "prochain", "demain", "après-demain", "matin", "après-midi", "fin", "début", "de", "le", "la",
    "semaine", "prochaine", "25", "31", "1er", "novembre", "février", "à", "vers", "9h30", "midi", "heures", "avant",
    "à partir de", "cette", "ce", "soir", "aujourd'hui", "dans", "15", "jours", "n'importe quand", "en", "décembre",
    "et demie", "moins le quart", "0", "99", "24h", "entre midi et deux", "mois",
]  # fmt: skip


@given(
    st.lists(st.sampled_from(_PIECES), min_size=1, max_size=8),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31)),
)
def test_when_windows_are_aware_ordered_and_never_in_the_past(pieces: list[str], naive_now: datetime) -> None:
    now = naive_now.replace(tzinfo=PARIS)
    when = parse_when(" ".join(pieces), now)
    if when is None:
        return
    assert when.window_start.tzinfo is PARIS and when.window_end.tzinfo is PARIS
    assert now <= when.window_start <= when.window_end
    assert when.part_of_day is None or when.part_of_day in PARTS_OF_DAY
    assert when.description


@given(st.from_regex(r"0[1-9][0-9]{8}", fullmatch=True))
def test_a_spoken_phone_number_reads_back(digits: str) -> None:
    assert parse_phone(say_phone(digits)) == digits
    assert parse_phone("+33 " + say_phone(digits)[1:]) == digits


@given(st.dates(min_value=date(1907, 1, 1), max_value=NOW.date()))
def test_a_spoken_birth_date_reads_back(born: date) -> None:
    assert parse_birth_date(say_date(born), NOW) == born


@given(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=3, max_size=14))
def test_a_spelled_name_reads_back(letters: str) -> None:
    assert parse_person_name(" ".join(letters)) == letters.capitalize()


def test_midi_30_as_the_box_itself_says_it_is_half_past_twelve() -> None:
    from appliance.clock import PARIS
    from appliance.dialogue.speakable import say_time

    now = datetime(2026, 11, 24, 9, 0, tzinfo=PARIS)
    said = say_time(time(12, 30))
    assert said == "midi 30"
    when = parse_when(f"jeudi à {said}", now)
    assert when is not None and when.exact == datetime(2026, 11, 26, 12, 30, tzinfo=PARIS)
    assert parse_when("midi 3 décembre", now).exact == datetime(2026, 12, 3, 12, 0, tzinfo=PARIS)
