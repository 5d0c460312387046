"""Recognition accuracy figures: the word error rate, the critical-value scoring,
the confirmation model, the utterance set, and the whole measurement.

The utterance set is pinned to the box's parsers: every value it types is what
the parsers extract from the reference text, so a change of either shows here.
"""

from __future__ import annotations

from datetime import date, datetime, time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from appliance.agenda.practice import resolve_practice
from appliance.audio import MODEL_RATE_HZ
from appliance.audio.vad import EnergyVad
from appliance.config import Config
from appliance.errors import ConfigError
from appliance.speech.asr import Transcript
from appliance.simulate.speech_accuracy import (
    UTTERANCES,
    VALUE_KINDS,
    CachedVoice,
    Utterance,
    evaluate,
    extract,
    keyed_in,
    load_utterances,
    same_value,
    second_attempt,
    summary_rows,
    wer_words,
    word_errors,
    wrong_values,
)

NOW = datetime.fromisoformat("2026-03-10T10:00:00+01:00")  # a Tuesday


# -- word error rate ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "hypothesis", "subs", "dels", "ins"),
    [
        ("je voudrais un rendez-vous", "je voudrais un rendez-vous", 0, 0, 0),
        ("je voudrais un rendez-vous", "je voudrais rendez-vous", 0, 1, 0),  # "un" dropped
        ("oui merci", "oui oui merci", 0, 0, 1),
        ("jeudi matin", "joli matin", 1, 0, 0),
        ("le docteur Martin demain", "docteur Master demain matin", 1, 1, 1),
        ("", "bonjour", 0, 0, 1),
        ("bonjour", "", 0, 1, 0),
    ],
)
def test_word_errors_count_substitutions_deletions_and_insertions(
    reference: str, hypothesis: str, subs: int, dels: int, ins: int
) -> None:
    errors = word_errors(reference, hypothesis)
    assert (errors.substitutions, errors.deletions, errors.insertions) == (subs, dels, ins)
    assert errors.words == len(wer_words(reference))


def test_the_rate_is_errors_over_reference_words() -> None:
    errors = word_errors("je voudrais un rendez vous", "je voudrais rendez vous jeudi")
    assert errors.words == 5  # "rendez vous" is two words, as the normalizer writes it
    assert errors.rate == pytest.approx(2 / 5)
    assert (errors + word_errors("oui", "non")).rate == pytest.approx(3 / 6)


@pytest.mark.parametrize(
    ("spoken", "written"),
    [
        ("À dix heures trente.", "à 10h30"),
        ("À dix heures trente.", "A 10:30"),
        ("Neuf heures", "9h"),
        ("Zéro six, douze, trente-quatre, cinquante-six, soixante-dix-huit.", "06 12 34 56 78"),
        ("Zéro six, douze, trente-quatre, cinquante-six, soixante-dix-huit.", "0612345678."),
        ("Le douze mars mille neuf cent quatre-vingt.", "Le 12 mars 1980"),
        ("Le premier avril", "le 1er avril"),
        ("Vingt-trois novembre quatre-vingt-douze", "23 novembre 92"),
        ("Le docteur Lefèvre", "le Dr LEFEVRE"),
        ("rendez-vous", "rendez vous"),
    ],
)
def test_numbers_in_words_and_in_digits_are_the_same_words(spoken: str, written: str) -> None:
    assert wer_words(spoken) == wer_words(written)
    assert word_errors(spoken, written).errors == 0


def test_a_wrong_digit_is_one_word_wrong() -> None:
    errors = word_errors("mon numéro c'est le 06 12 34 56 78", "mon numéro c'est le 06 12 34 56 79")
    assert (errors.substitutions, errors.deletions, errors.insertions) == (1, 0, 0)


# -- critical values ---------------------------------------------------------------------------


def _utt(ask: str, text: str, **values: object) -> Utterance:
    return Utterance("x", ask, text, dict(values))


@pytest.mark.parametrize(
    ("utterance", "heard", "wrong"),
    [
        (_utt("request", "Jeudi à dix heures trente.", date=date(2026, 3, 12), time=time(10, 30)),
         "Jeudi à 10h30.", []),
        (_utt("request", "Jeudi à dix heures trente.", date=date(2026, 3, 12), time=time(10, 30)),
         "Joli à 10h30.", ["date"]),  # the day missed: no date at all
        (_utt("request", "Jeudi à dix heures trente.", date=date(2026, 3, 12), time=time(10, 30)),
         "Mardi à 10h.", ["date", "time"]),  # another day and another time
        (_utt("last_name", "Je m'appelle Lefèvre.", name="Lefèvre"), "Je m'appelle Lefevre.", []),  # accents
        (_utt("last_name", "Je m'appelle Lefèvre.", name="Lefèvre"), "Je m'appelle Le Fèvre.", ["name"]),
        (_utt("last_name", "Je m'appelle Lefèvre.", name="Lefèvre"), "", ["name"]),  # nothing heard
        (_utt("phone", "Zéro six, douze, trente-quatre, cinquante-six, soixante-dix-huit.", phone="0612345678"),
         "06 12 34 56 78", []),
        (_utt("phone", "Zéro six, douze, trente-quatre, cinquante-six, soixante-dix-huit.", phone="0612345678"),
         "06, 2, 3, 4, 5, 6, 7, 8", ["phone"]),  # what Whisper base made of it once
        (_utt("birth_date", "Le douze mars mille neuf cent quatre-vingt.", birth_date=date(1980, 3, 12)),
         "Le 12 mars 1980.", []),
        (_utt("birth_date", "Le douze mars mille neuf cent quatre-vingt.", birth_date=date(1980, 3, 12)),
         "L'O2 Mars-19, son 4V.", ["birth_date"]),
        (_utt("confirm", "Oui, c'est parfait."), "Oui, c'est pas fait.", []),  # no critical value
    ],
)
def test_a_value_is_wrong_when_the_parser_finds_another_or_none(
    utterance: Utterance, heard: str, wrong: list[str]
) -> None:
    assert wrong_values(utterance, heard, NOW) == wrong


def test_a_date_is_a_single_day_and_a_time_a_precise_one() -> None:
    assert extract("date", "la semaine prochaine", NOW) is None
    assert extract("date", "mardi prochain", NOW) == date(2026, 3, 17)  # "mardi" on a Tuesday: next week
    assert extract("time", "après dix-sept heures", NOW) is None
    assert extract("time", "vers neuf heures et demie", NOW) == time(9, 30)


@pytest.mark.parametrize(
    ("kind", "value", "ask"),
    [
        ("date", date(2026, 3, 12), "when"),
        ("date", date(2026, 4, 1), "request"),
        ("time", time(12, 30), "when"),
        ("time", time(9, 0), "when"),
        ("name", "Le Goff", "last_name"),
        ("name", "Jean-Pierre", "first_name"),
        ("name", "N'Diaye", "last_name"),
    ],
)
def test_the_second_attempt_says_the_value_the_parser_reads_back(kind: str, value: object, ask: str) -> None:
    assert extract(kind, second_attempt(kind, value, ask), NOW) == value


def test_a_last_name_is_spelled_at_the_second_attempt_a_first_name_said_again() -> None:
    assert second_attempt("name", "Le Goff", "last_name") == "Le Goff, L, E, espace, G, O, F, F."
    assert second_attempt("name", "Lefèvre", "last_name") == "Lefèvre, L, E, F, E, V, R, E."
    assert second_attempt("name", "Nathalie", "first_name") == "Nathalie."


def test_birth_dates_and_phone_numbers_are_keyed_in_through_the_box_parsers() -> None:
    assert keyed_in("birth_date", date(1957, 9, 5), NOW) == date(1957, 9, 5)
    assert keyed_in("phone", "0612345678", NOW) == "0612345678"
    with pytest.raises(ValueError):
        keyed_in("name", "Dupont", NOW)
    with pytest.raises(ValueError):
        second_attempt("phone", "0612345678", "phone")


# -- the utterance set ---------------------------------------------------------------------------


def test_the_set_has_enough_utterances_of_every_kind() -> None:
    data = load_utterances()
    assert len(data.utterances) >= 60
    kinds = [kind for u in data.utterances for kind in u.values]
    for kind in VALUE_KINDS:
        assert kinds.count(kind) >= 5, kind
    asks = {u.ask for u in data.utterances}
    assert {"request", "when", "last_name", "first_name", "birth_date", "phone", "confirm"} <= asks


def test_every_typed_value_is_what_the_parsers_extract_from_the_reference() -> None:
    data = load_utterances()
    for u in data.utterances:
        for kind, value in u.values.items():
            assert extract(kind, u.text, data.now) == value, f"{u.id}: {kind}"


def test_every_name_answer_types_its_name() -> None:
    for u in load_utterances().utterances:
        if u.ask in ("last_name", "first_name"):
            assert "name" in u.values, u.id


def test_every_wrong_value_could_be_recovered_by_the_confirmation_step() -> None:
    """The second attempt (or the keypad) says each value so that the parsers get it:
    a value still wrong after confirmation is the recognizer's doing, not the model's."""
    data = load_utterances()
    for u in data.utterances:
        for kind, value in u.values.items():
            if kind in ("birth_date", "phone"):
                assert keyed_in(kind, value, data.now) == value, u.id
            else:
                assert same_value(kind, value, extract(kind, second_attempt(kind, value, u.ask), data.now)), u.id


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ('[[utterance]]\nid = "a"\nask = "when"\ntext = "Jeudi."\n', "now"),
        ('now = "2026-03-10T10:00:00"\n', "UTC offset"),
        ('now = "2026-03-10T10:00:00+01:00"\n[[utterance]]\nid = "a"\nask = "lunch"\ntext = "Oui."\n', "ask"),
        ('now = "2026-03-10T10:00:00+01:00"\n[[utterance]]\nid = "a"\nask = "when"\ntext = "Oui."\nday = "x"\n',
         "unknown keys"),
        ('now = "2026-03-10T10:00:00+01:00"\n[[utterance]]\nid = "a"\nask = "phone"\ntext = "Oui."\nphone = "612"\n',
         "10 digits"),
        ('now = "2026-03-10T10:00:00+01:00"\n' + '[[utterance]]\nid = "a"\nask = "when"\ntext = "Oui."\n' * 2, "twice"),
    ],
)
def test_a_bad_utterance_file_is_refused_with_the_reason(tmp_path: Path, body: str, problem: str) -> None:
    path = tmp_path / "u.toml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(ConfigError, match=problem):
        load_utterances(path)


# -- the measurement, with stand-ins for the models ----------------------------------------------


class _Tone:
    """A "voice" saying every text as a 1 kHz tone, longer for longer texts."""

    sample_rate = 24000

    def __init__(self) -> None:
        self.said: list[str] = []

    def synthesize(self, text: str) -> np.ndarray:
        self.said.append(text)
        n = int(self.sample_rate * (0.5 + 0.02 * len(text)))
        return (0.3 * np.sin(2 * np.pi * 1000 * np.arange(n) / self.sample_rate)).astype(np.float32)


class _Parrot:
    """A recognizer hearing the same words whatever is said; it notes the hotwords it gets."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.hotwords: list[tuple[str, ...]] = []

    def transcribe(self, pcm16k: np.ndarray, *, hotwords: tuple[str, ...] = ()) -> Transcript:
        self.hotwords.append(tuple(hotwords))
        audio_s = pcm16k.size / MODEL_RATE_HZ
        return Transcript(self.text, "fr", audio_s, audio_s / 4, 0.01, -0.2)

    def warm_up(self) -> None:
        pass


def test_the_whole_measurement_with_stand_in_models(tmp_path: Path) -> None:
    (tmp_path / "u.toml").write_text(
        'now = "2026-03-10T10:00:00+01:00"\n'
        '[[utterance]]\nid = "when"\nask = "when"\ntext = "Jeudi à dix heures."\ndate = "2026-03-12"\ntime = "10:00"\n'
        '[[utterance]]\nid = "phone"\nask = "phone"\ntext = "Zéro six, douze, trente-quatre, cinquante-six, '
        'soixante-dix-huit."\nphone = "0612345678"\n',
        encoding="utf-8",
    )
    (tmp_path / "tts").mkdir()
    (tmp_path / "tts" / "model.onnx").write_bytes(b"x")
    voice, ears = _Tone(), _Parrot("Jeudi à 11 heures.")
    speech = SimpleNamespace(
        caller_voice=lambda name: voice, tts_dir=tmp_path / "tts", recognizer=ears, new_vad=lambda: EnergyVad()
    )
    config = Config(data_dir=tmp_path / "var")

    figures = evaluate(speech, config, resolve_practice("demo"), path=tmp_path / "u.toml")  # type: ignore[arg-type]

    assert figures["utterances"] == 2
    assert figures["wer"]["telephone"]["words"] == 5  # "jeudi a 10 h" + the number as one word
    assert figures["wer"]["clean"]["substitutions"] == 1 + 1  # 10 -> 11; the number -> "jeudi"
    crit = figures["critical_values"]
    assert crit["telephone"]["by_kind"]["time"] == {"rate": 1.0, "wrong": 1, "total": 1}
    assert crit["telephone"]["by_kind"]["date"]["wrong"] == 0
    assert crit["telephone"]["by_kind"]["phone"]["wrong"] == 1
    # The phone number is keyed in; the time said again is misheard the same way.
    assert crit["telephone_after_confirmation"]["by_kind"]["phone"]["wrong"] == 0
    assert crit["telephone_after_confirmation"]["by_kind"]["time"]["wrong"] == 1
    assert "À 10 heures." in voice.said  # the second attempt at the time
    assert figures["results"][0]["second_attempt"] == {"time": "Jeudi à 11 heures."}
    assert figures["asr_rtf"]["telephone"]["p50"] == pytest.approx(0.25, abs=0.01)  # ms rounding
    # A call asked "when" gives Whisper the weekdays: so does the measurement.
    assert any("jeudi" in words for words in ears.hotwords)
    # Each utterance is synthesized once (the phone reuses the clean one's audio), the time's second attempt too.
    assert (figures["synthesis"]["synthesized"], figures["synthesis"]["from_cache"]) == (3, 2)
    assert any(name.startswith("WER telephone") for name, _ in summary_rows(figures))

    again = evaluate(speech, config, resolve_practice("demo"), path=tmp_path / "u.toml")  # type: ignore[arg-type]
    assert again["synthesis"]["synthesized"] == 0  # every sound from the cache
    assert [r["telephone"] for r in again["results"]] == [r["telephone"] for r in figures["results"]]


def test_the_cache_gives_the_same_audio_as_the_first_synthesis(tmp_path: Path) -> None:
    voice = _Tone()
    cached = CachedVoice(voice, "tone", tmp_path)
    first = cached.synthesize("Bonjour.")
    second = cached.synthesize("Bonjour.")
    assert voice.said == ["Bonjour."]
    np.testing.assert_array_equal(first, second)
    assert np.max(np.abs(first - voice.synthesize("Bonjour."))) < 1e-4  # 16-bit rounding only
    assert CachedVoice(voice, "another key", tmp_path).synthesize("Bonjour.") is not None
    assert voice.said.count("Bonjour.") == 3  # another key is another sound


# -- the real models ----------------------------------------------------------------------------


@pytest.mark.models
def test_three_utterances_with_the_real_models(speech, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = load_utterances()
    chosen = [u for u in data.utterances if u.id in ("book-tomorrow-morning", "yes-ok", "name-dubois")]
    lines = [f'now = "{data.now.isoformat()}"']
    for u in chosen:
        lines += ["[[utterance]]", f'id = "{u.id}"', f'ask = "{u.ask}"', f'text = "{u.text}"']
        lines += [f'{kind} = "{value.isoformat() if hasattr(value, "isoformat") else value}"'
                  for kind, value in u.values.items()]
    (tmp_path / "u.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = Config(data_dir=tmp_path / "var")

    figures = evaluate(speech, config, resolve_practice("demo"), path=tmp_path / "u.toml")

    assert figures["utterances"] == 3
    assert figures["synthesis"]["synthesized"] >= 3
    for condition in ("clean", "telephone"):
        assert figures["wer"][condition]["words"] == sum(len(wer_words(u.text)) for u in chosen)
        assert figures["wer"][condition]["rate"] < 0.6, figures["results"]  # Whisper base hears most of it
        assert figures["asr_rtf"][condition]["n"] >= 3
        assert 0 < figures["asr_rtf"][condition]["p50"] < 3
    assert all(r["telephone"]["heard"] for r in figures["results"])
    assert figures["critical_values"]["telephone"]["total"] == 2
    assert UTTERANCES.is_file()
