"""Synthesis: replies cut into sentences, French phonemes, audio ready for the line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from appliance.audio import FRAME_SAMPLES, LINE_RATE_HZ
from appliance.errors import ConfigError, ModelError, SpeechError
from appliance.speech import tts
from appliance.speech.tts import (
    EspeakSynthesizer,
    KokoroSettings,
    KokoroSynthesizer,
    phonemize,
    speakable,
    split_sentences,
    to_line_frames,
)



@pytest.mark.parametrize(
    ("reply", "sentences"),
    [
        (
            "Je peux vous proposer mardi à 9 heures 30. Cela vous convient-il ?",
            ["Je peux vous proposer mardi à 9 heures 30.", "Cela vous convient-il ?"],
        ),
        (
            "Vous êtes bien au cabinet du Dr. Martin. Que puis-je faire pour vous ?",
            ["Vous êtes bien au cabinet du Dr. Martin.", "Que puis-je faire pour vous ?"],
        ),
        (
            "Bonjour. Vous êtes bien au cabinet médical. Que puis-je faire pour vous ?",
            ["Bonjour. Vous êtes bien au cabinet médical.", "Que puis-je faire pour vous ?"],
        ),
        (
            "Votre rendez-vous est confirmé. Très bien. Merci !",
            ["Votre rendez-vous est confirmé. Très bien. Merci !"],
        ),
        (
            "C'est noté pour M. Dupont ; le rendez-vous est confirmé.",
            ["C'est noté pour M. Dupont ;", "le rendez-vous est confirmé."],
        ),
        ("Le tarif est de 26.50 euros, réglables sur place.", ["Le tarif est de 26.50 euros, réglables sur place."]),
        (
            "« Appelez le quinze. » En cas de doute, rappelez-nous.",
            ["« Appelez le quinze. »", "En cas de doute, rappelez-nous."],
        ),
        ("Quel jour ? « Mardi. » D'accord.", ["Quel jour ? « Mardi. » D'accord."]),
        ("Oui.", ["Oui."]),
        ("", []),
    ],
)
def test_replies_are_cut_into_sentences(reply: str, sentences: list[str]) -> None:
    assert split_sentences(reply) == sentences


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("Rendez-vous à 9h30 avec le Dr. Martin.", "Rendez-vous à 9 heures 30 avec le docteur Martin."),
        ("Venez à 14h.", "Venez à 14 heures."),
        ("Le cabinet ouvre à 1h.", "Le cabinet ouvre à une heure."),
        ("Mme Durand et M. Petit", "madame Durand et monsieur Petit"),
        ("Votre rdv, n°12", "Votre rendez-vous, numéro 12"),
    ],
)
def test_abbreviations_and_clock_times_are_spelled_out(text: str, spoken: str) -> None:
    assert speakable(text) == spoken


def test_french_phonemes_keep_punctuation_and_lose_espeak_joins() -> None:
    ipa = phonemize("Bonjour, je voudrais prendre rendez-vous.")
    assert ipa.startswith("bɔ̃ʒˈuʁ, ")
    assert ipa.endswith(".")
    assert "-" not in ipa
    assert "ʁɑ̃dˈevˈu" in ipa


def test_long_token_lists_are_cut_after_punctuation_else_between_words() -> None:
    space, comma = 16, 3
    words = [[44, 45, 46], [space], [47, 48, comma], [space]] * 60  # 480 tokens
    tokens = [t for word in words for t in word][:-1]

    chunks = tts._split_tokens(tokens, space=space, breaks={comma}, limit=100)

    assert all(len(chunk) <= 100 for chunk in chunks)
    assert all(chunk[-1] == comma for chunk in chunks[:-1])
    assert [t for t in tokens if t != space] == [t for chunk in chunks for t in chunk if t != space]

    no_punctuation = [44, space] * 150
    chunks = tts._split_tokens(no_punctuation, space=space, breaks={comma}, limit=100)
    assert all(len(chunk) <= 100 and chunk[0] != space and chunk[-1] != space for chunk in chunks)


def test_espeak_speaks_at_its_rate_and_fills_line_frames() -> None:
    espeak = EspeakSynthesizer()
    audio = espeak.synthesize("Bonjour, je voudrais prendre rendez-vous.")

    assert espeak.sample_rate == 22050
    assert audio.dtype == np.float32
    assert 1.0 < audio.size / espeak.sample_rate < 5.0
    assert np.abs(audio).max() > 0.1

    frames = to_line_frames(audio, espeak.sample_rate)
    assert all(frame.dtype == np.int16 and frame.size == FRAME_SAMPLES for frame in frames)
    assert len(frames) == -(-round(audio.size * LINE_RATE_HZ / espeak.sample_rate) // FRAME_SAMPLES)


def test_a_missing_espeak_is_a_speech_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tts, "_ESPEAK", "espeak-ng-not-installed")
    with pytest.raises(SpeechError) as caught:
        EspeakSynthesizer().synthesize("Bonjour.")
    assert caught.value.code == "tts-failed"


@pytest.mark.parametrize(
    "make",
    [
        lambda: KokoroSettings(speed=3.0),
        lambda: KokoroSettings(threads=0),
        lambda: KokoroSettings(voice="Kumo"),
        lambda: EspeakSynthesizer(voice="fr fr; rm"),
        lambda: EspeakSynthesizer(rate_wpm=20),
    ],
)
def test_settings_are_validated(make) -> None:
    with pytest.raises(ConfigError):
        make()


def test_an_incomplete_kokoro_directory_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError) as caught:
        KokoroSynthesizer(tmp_path)
    assert caught.value.code == "model-missing"


@pytest.mark.models
def test_an_unknown_voice_names_the_ones_available(kokoro_dir: Path) -> None:
    with pytest.raises(ConfigError, match="jm_kumo"):
        KokoroSynthesizer(kokoro_dir, KokoroSettings(voice="ff_siwis"))


@pytest.fixture(scope="module")
def kokoro(kokoro_dir: Path) -> KokoroSynthesizer:
    return KokoroSynthesizer(kokoro_dir)


@pytest.mark.models
def test_kokoro_speaks_a_sentence_without_dead_air(kokoro: KokoroSynthesizer) -> None:
    audio = kokoro.synthesize("Je peux vous proposer mardi 25 novembre à 9h30.")

    assert kokoro.sample_rate == 24000
    assert audio.dtype == np.float32
    assert 2.0 < audio.size / kokoro.sample_rate < 6.0
    assert 0.1 < np.abs(audio).max() <= 1.0
    # Kokoro's own ~0.35 s of leading silence is trimmed: the caller hears speech at once.
    first_loud = np.flatnonzero(np.abs(audio) > 0.01)[0] / kokoro.sample_rate
    assert first_loud < 0.1


@pytest.mark.models
def test_kokoro_says_nothing_for_nothing(kokoro: KokoroSynthesizer) -> None:
    assert kokoro.synthesize("").size == 0


def test_long_sentences_are_spoken_clause_by_clause_so_audio_starts_sooner() -> None:
    from appliance.speech.tts import split_for_speech

    offer = ("Je vous propose jeudi 26 novembre à 8 heures 50, jeudi 26 novembre à 11 heures 10, "
             "ou jeudi 26 novembre à 11 heures 20, avec le docteur Claire Martin. Lequel vous convient ?")
    pieces = split_for_speech(offer)
    assert pieces[0] == "Je vous propose jeudi 26 novembre à 8 heures 50,"
    assert " ".join(pieces) == offer
    assert split_for_speech("Quel jour vous arrangerait ?") == ["Quel jour vous arrangerait ?"]


def test_when_the_main_voice_fails_the_sentence_is_still_spoken_by_the_fallback() -> None:
    from appliance.errors import SpeechError
    from appliance.speech.loading import FallbackSynthesizer

    class Broken:
        sample_rate = 24000

        def synthesize(self, text: str) -> np.ndarray:
            raise SpeechError("tts-failed", "onnxruntime refused")

        def warm_up(self) -> None: ...

    voice = FallbackSynthesizer(Broken(), EspeakSynthesizer())
    audio = voice.synthesize("Je vous écoute.")
    assert voice.sample_rate == 24000 and voice.fallbacks == 1
    assert len(audio) > 24000 * 0.3 and np.abs(audio).max() > 0.05  # real speech, at the primary's rate


def test_other_languages_keep_their_own_abbreviations() -> None:
    from appliance.speech.tts import plain_speakable

    assert plain_speakable("Dr. Schmidt, « 9h30 »...") == "Dr. Schmidt, 9h30 …"
    ipa = phonemize("Guten Tag, Herr Doktor.", voice="de", rewrite=plain_speakable)
    assert ipa.startswith("ɡˈuːtən tˈɑːk, ") and ipa.endswith(".")


def test_kokoro_is_told_which_language_it_reads() -> None:
    assert KokoroSettings(language="de").language == "de"
    with pytest.raises(ConfigError, match="not 'it'"):
        KokoroSettings(language="it")


def _word_errors(reference: str, heard: str) -> tuple[int, int]:
    import re

    ref, hyp = (re.sub(r"[^\w\s]", " ", text.lower()).split() for text in (reference, heard))
    row = list(range(len(hyp) + 1))
    for i, word in enumerate(ref, start=1):
        diagonal, row[0] = row[0], i
        for j, other in enumerate(hyp, start=1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (word != other))
    return row[-1], len(ref)


@pytest.mark.models
def test_kokoro_speaks_german_whisper_understands_better_than_espeak(kokoro: KokoroSynthesizer, whisper_dir: Path) -> None:
    from appliance.audio.channel import telephone
    from appliance.audio.framing import int16_to_float32
    from appliance.audio.resample import resample
    from appliance.speech.asr import WhisperRecognizer

    whisper = WhisperRecognizer(whisper_dir)
    german = kokoro.speaking("de")
    sentences = [
        "Guten Tag, hier ist die Praxis von Doktor Martin.",
        "Bitte nennen Sie Ihren Namen und Ihre Telefonnummer.",
        "Vielen Dank für Ihren Anruf, auf Wiederhören.",
    ]

    def wer(voice) -> float:  # type: ignore[no-untyped-def]
        errors = words = 0
        for sentence in sentences:
            line = telephone(voice.synthesize(sentence), voice.sample_rate, codec="g711-alaw", noise_db=-50, seed=1)
            heard = whisper.transcribe(int16_to_float32(resample(line, LINE_RATE_HZ, 16000)), language="de")
            e, n = _word_errors(sentence, heard.text)
            errors, words = errors + e, words + n
        return errors / words

    kokoro_wer, espeak_wer = wer(german), wer(EspeakSynthesizer("de"))
    print(f"\nGerman on the phone line, Whisper WER: Kokoro {kokoro_wer:.2f}, espeak-ng {espeak_wer:.2f}")
    assert kokoro_wer < 0.5 and kokoro_wer < espeak_wer
    assert german._session is kokoro._session  # one model in memory for both languages
    assert kokoro.synthesize("Bonjour.").size > 0  # and French is still French
