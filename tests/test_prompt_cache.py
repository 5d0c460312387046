"""The prompt cache: what the box will say is synthesised ahead and played with no model call.

A fake voice counts its calls (each one is a second of silence for a caller on
the real box); the real Kokoro model shows a cached sentence comes back sample
for sample. The warmer is checked against what the real secretary says on a
call, cut into pieces by the real ``AudioSpeaker``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time
import unicodedata
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from appliance.app import Appliance
from appliance.audio.framing import float32_to_int16, int16_to_float32
from appliance.clock import PARIS, FixedClock
from appliance.config import Config, SpeechSettings, load_config
from appliance.errors import ConfigError, SpeechError
from appliance.runtime import _warm_prompts
from appliance.speech.prompt_cache import (
    CachedSynthesizer,
    PromptCache,
    prompt_key,
    prompt_pieces,
    prompt_texts,
    warm_prompts,
)
from appliance.speech.tts import split_for_speech
from appliance.dialogue.reply import Patient
from appliance.dialogue.secretary import Secretary
from appliance.store import queries
from appliance.turns import AudioSpeaker, Heard, Pressed

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=PARIS)  # a Tuesday
RATE = 24000
ENTRY_BYTES = 16 + 2 * 2400  # header + the fake voice's 0.1 s of int16


def _audio(text: str, samples: int = 2400) -> np.ndarray:
    """Different, repeatable audio for every text."""
    seed = int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)
    return np.random.default_rng(seed).uniform(-0.5, 0.5, samples).astype(np.float32)


def _as_played(text: str) -> np.ndarray:
    """What the cache gives back for ``text``: the voice's audio through int16."""
    return int16_to_float32(float32_to_int16(_audio(text)))


class CountingVoice:
    """A synthesiser that counts the model calls a real one would make."""

    sample_rate = RATE

    def __init__(self, on_call=lambda n: None) -> None:  # type: ignore[no-untyped-def]
        self.texts: list[str] = []
        self._lock = threading.Lock()
        self._on_call = on_call

    @property
    def calls(self) -> int:
        with self._lock:
            return len(self.texts)

    def synthesize(self, text: str) -> np.ndarray:
        with self._lock:
            self.texts.append(text)
            n = len(self.texts)
        self._on_call(n)
        return _audio(text)

    def warm_up(self) -> None:
        pass


def _cached(fake: CountingVoice, directory: Path, *, max_bytes: int = 10 * 2**20, **key: str) -> CachedSynthesizer:
    identity = {"voice": "jm_kumo", "model": "kokoro-82m|test", **key}
    return CachedSynthesizer(fake, PromptCache(directory, max_bytes=max_bytes), **identity)


class Line:
    """Just enough of a call for ``AudioSpeaker``: takes every frame at once."""

    def __init__(self) -> None:
        self.frames = 0

    async def play(self, frames: AsyncIterator[np.ndarray]) -> int:
        async for _ in frames:
            self.frames += 1
        return self.frames

    def discard_received(self) -> int:
        return 0


class Asked:
    """Records the pieces a speaker asks its synthesiser for."""

    def __init__(self, inner: CachedSynthesizer) -> None:
        self.inner = inner
        self.sample_rate = inner.sample_rate
        self.pieces: list[str] = []

    def synthesize(self, text: str) -> np.ndarray:
        self.pieces.append(text)
        return self.inner.synthesize(text)

    def warm_up(self) -> None:
        pass


# -- the cache ----------------------------------------------------------------------


def test_an_expected_phrase_is_synthesised_once_then_played_from_disk_even_after_a_restart(tmp_path: Path) -> None:
    voice = CountingVoice()
    prompts = _cached(voice, tmp_path)
    prompts.expect(["Que puis-je faire pour vous ?"])

    first = prompts.synthesize("Que puis-je faire pour vous ?")
    again = prompts.synthesize("Que  puis-je faire pour vous ? ")  # the speaker's spacing does not matter

    assert voice.texts == ["Que puis-je faire pour vous ?"]
    assert np.array_equal(first, _as_played("Que puis-je faire pour vous ?"))
    assert np.array_equal(again, first)
    assert (prompts.hits, prompts.misses) == (1, 1)
    restarted_voice = CountingVoice()
    restarted = _cached(restarted_voice, tmp_path)  # a new process: nothing in RAM
    assert np.array_equal(restarted.synthesize("Que puis-je faire pour vous ?"), first)
    assert restarted_voice.calls == 0


def test_a_sentence_made_during_a_call_is_spoken_but_never_written_to_disk(tmp_path: Path) -> None:
    voice = CountingVoice()
    prompts = _cached(voice, tmp_path)
    prompts.expect(["Que puis-je faire pour vous ?"])
    readback = "Je récapitule : pour Marie Dupont, née le 12 mars 1980, joignable au 06 12 34 56 78."

    assert np.array_equal(prompts.synthesize(readback), _as_played(readback))
    prompts.synthesize(readback)

    assert voice.calls == 2  # the caller's data is synthesised each time it is said
    assert len(prompts.cache) == 0
    assert list(tmp_path.iterdir()) == []


def test_the_key_changes_with_the_text_the_voice_the_model_and_the_rate() -> None:
    base = {"voice": "jm_kumo", "model": "kokoro-82m|weights=6e74", "sample_rate": 24000}
    key = prompt_key("Je vous écoute.", **base)

    assert prompt_key("Je  vous écoute. ", **base) == key
    assert prompt_key(unicodedata.normalize("NFD", "Je vous écoute."), **base) == key  # "é" spelt two ways
    assert prompt_key("Je vous écoute !", **base) != key
    assert prompt_key("Je vous écoute.", **{**base, "voice": "jf_gongitsune"}) != key
    assert prompt_key("Je vous écoute.", **{**base, "model": "kokoro-82m|weights=0000"}) != key
    assert prompt_key("Je vous écoute.", **{**base, "sample_rate": 22050}) != key


def test_another_voice_or_model_never_plays_an_entry_made_by_the_first(tmp_path: Path) -> None:
    first = _cached(CountingVoice(), tmp_path)
    first.expect(["Je vous écoute."])
    first.synthesize("Je vous écoute.")

    for identity in ({"voice": "jf_gongitsune"}, {"model": "kokoro-82m|other-weights"}):
        voice = CountingVoice()
        _cached(voice, tmp_path, **identity).synthesize("Je vous écoute.")
        assert voice.calls == 1, identity


def test_the_least_recently_used_phrases_go_first_under_the_cap(tmp_path: Path) -> None:
    voice = CountingVoice()
    prompts = _cached(voice, tmp_path, max_bytes=3 * ENTRY_BYTES)
    texts = ["Première phrase à garder.", "Deuxième phrase, la moins utile.", "Troisième phrase à garder.",
             "Quatrième phrase, la nouvelle."]
    prompts.expect(texts)
    for text in texts[:3]:
        prompts.synthesize(text)
    prompts.synthesize(texts[0])  # used again: now the most recent

    prompts.synthesize(texts[3])

    assert prompts.cache.size_bytes == 3 * ENTRY_BYTES
    assert len(list(tmp_path.glob("*.pcm"))) == 3
    assert prompts.key(texts[1]) not in prompts.cache
    before = voice.calls
    for text in (texts[0], texts[2], texts[3]):
        prompts.synthesize(text)
    assert voice.calls == before


def test_a_lower_cap_at_start_drops_the_entries_unused_for_longest(tmp_path: Path) -> None:
    prompts = _cached(CountingVoice(), tmp_path)
    texts = ["La plus ancienne des phrases.", "Une phrase du milieu de la liste.", "La plus récente des phrases."]
    prompts.expect(texts)
    for age, text in zip((300, 200, 100), texts, strict=True):
        prompts.synthesize(text)
        stamp = time.time() - age
        os.utime(tmp_path / f"{prompts.key(text)}.pcm", (stamp, stamp))

    reopened = PromptCache(tmp_path, max_bytes=2 * ENTRY_BYTES)

    assert prompts.key(texts[0]) not in reopened
    assert prompts.key(texts[1]) in reopened and prompts.key(texts[2]) in reopened
    assert not (tmp_path / f"{prompts.key(texts[0])}.pcm").exists()


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: data[: len(data) // 2], id="truncated"),
        pytest.param(lambda data: data[:-1] + bytes([data[-1] ^ 0x40]), id="one-bit-flipped"),
        pytest.param(lambda data: data[:10], id="header-cut"),
        pytest.param(lambda data: b"", id="empty"),
        pytest.param(lambda data: b"RIFF" + data[4:], id="not-ours"),
    ],
)
def test_a_damaged_entry_is_a_miss_and_is_written_again(tmp_path: Path, damage) -> None:  # type: ignore[no-untyped-def]
    text = "Quel jour et à quel moment vous arrangeraient ?"
    prompts = _cached(CountingVoice(), tmp_path)
    prompts.expect([text])
    prompts.synthesize(text)
    entry = tmp_path / f"{prompts.key(text)}.pcm"
    entry.write_bytes(damage(entry.read_bytes()))

    voice = CountingVoice()
    after_restart = _cached(voice, tmp_path)
    after_restart.expect([text])
    spoken = after_restart.synthesize(text)

    assert voice.calls == 1
    assert np.array_equal(spoken, _as_played(text))
    fresh_voice = CountingVoice()
    assert np.array_equal(_cached(fresh_voice, tmp_path).synthesize(text), spoken)
    assert fresh_voice.calls == 0  # the entry was written again, whole


def test_a_cache_that_cannot_be_written_still_lets_the_box_speak(tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the cache should be")
    voice = CountingVoice()
    prompts = _cached(voice, blocked)
    prompts.expect(["Je vous écoute."])

    assert np.array_equal(prompts.synthesize("Je vous écoute."), _as_played("Je vous écoute."))
    prompts.synthesize("Je vous écoute.")
    assert voice.calls == 2


def test_threads_speaking_at_once_always_get_their_own_sentence(tmp_path: Path) -> None:
    texts = [f"Phrase numéro {i} de l'assistant." for i in range(12)]
    voice = CountingVoice()
    prompts = _cached(voice, tmp_path, max_bytes=8 * ENTRY_BYTES)  # small: eviction runs while others read
    prompts.expect(texts)
    wrong: list[str] = []

    def speak(worker: int) -> None:
        rng = np.random.default_rng(worker)
        for _ in range(60):
            text = texts[rng.integers(len(texts))]
            if not np.array_equal(prompts.synthesize(text), _as_played(text)):
                wrong.append(text)

    threads = [threading.Thread(target=speak, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert wrong == []
    assert prompts.hits + prompts.misses == 8 * 60
    assert prompts.hits > 0
    assert prompts.cache.size_bytes <= 8 * ENTRY_BYTES
    assert len(list(tmp_path.glob("*.pcm"))) == len(prompts.cache) <= 8
    assert list(tmp_path.glob(".*.tmp")) == []


# -- the phrases and the warmer -----------------------------------------------------------


@pytest.fixture
def box(tmp_path: Path):  # type: ignore[no-untyped-def]
    app = Appliance(replace(Config(), data_dir=tmp_path / "box"), clock=FixedClock(NOW))
    yield app
    app.close()


def _warmed(box: Appliance, directory: Path) -> tuple[CountingVoice, CachedSynthesizer, list[str]]:
    voice = CountingVoice()
    prompts = _cached(voice, directory)
    texts = prompt_texts(box.practice, box.agenda, NOW)
    report = warm_prompts(prompts, lambda: texts, idle=lambda: True, stop=threading.Event())
    assert report.finished and report.failed == 0 and report.ready == report.pieces == report.synthesized
    return voice, prompts, texts


def test_a_booking_call_is_spoken_from_the_cache_piece_by_piece_as_the_speaker_cuts_it(
    box: Appliance, tmp_path: Path
) -> None:
    voice, prompts, _ = _warmed(box, tmp_path / "cache")
    model_calls = voice.calls
    secretary = Secretary(box.practice, box.agenda, NOW, None)
    replies = [
        secretary.greet(),
        secretary.respond(Heard(text="Bonjour, je voudrais un rendez-vous pour une consultation le plus tôt possible")),
        secretary.respond(Heard(text="le premier disponible")),
        secretary.respond(Pressed("2")),
    ]
    replies.append(secretary.booked(7, awaits_cloud=box.agenda.awaits_cloud))
    assert [r.ask for r in replies] == ["request", "practitioner", "choice", "last_name", "anything_else"]

    for reply in replies:
        asked = Asked(prompts)
        line = Line()
        asyncio.run(AudioSpeaker(line, asked).say(reply.text, lambda: None))  # type: ignore[arg-type]
        assert asked.pieces == split_for_speech(reply.text)
        assert line.frames > 0

    assert voice.calls == model_calls  # greeting, question, offer, noted, booked: not one model call
    assert prompts.hits == sum(len(split_for_speech(r.text)) for r in replies)


def test_the_prompts_hold_the_greeting_emergency_and_offers_for_today_and_the_coming_days(box: Appliance) -> None:
    texts = prompt_texts(box.practice, box.agenda, NOW)
    pieces = prompt_pieces(texts)
    joined = "\n".join(pieces)

    assert pieces[0] == "Bonjour, vous êtes bien au Cabinet médical des Tilleuls."  # the first made
    emergency = Secretary(box.practice, box.agenda, NOW, None).respond(Heard(text="Mon mari ne respire plus"))
    assert emergency.ask == "emergency"
    assert set(split_for_speech(emergency.text)) <= set(pieces)
    which_doctor = "Avec quel médecin souhaitez-vous le rendez-vous : docteur Claire Martin, docteur Julien Bernard," \
                   " ou le premier disponible ?"
    assert set(split_for_speech(which_doctor)) <= set(pieces)
    for day in ("mardi 24 novembre", "mercredi 25 novembre", "jeudi 26 novembre", "vendredi 27 novembre"):
        assert f"Je vous propose {day} à" in joined, day
    assert len(pieces) == len(set(pieces))
    for text in texts:  # templates for the staff's inbox are not said
        assert not text.startswith(("Renouvellement d'ordonnance", "l'assistant n'a pas compris"))


def test_the_offers_follow_the_agenda(box: Appliance) -> None:
    secretary = Secretary(box.practice, box.agenda, NOW, None)
    offer = secretary.respond(Heard(text="Un rendez-vous avec le docteur Bernard demain pour un vaccin"))
    assert offer.ask == "choice"
    assert offer.text in prompt_texts(box.practice, box.agenda, NOW)

    taken = secretary.draft.offered[0]
    queries.insert_call(box.store, "call-1", NOW, None, "sim")
    box.agenda.book(taken, Patient("Durand", "Paul", date(1970, 1, 2), "0612345678"), "call-1")

    assert offer.text not in prompt_texts(box.practice, box.agenda, NOW)  # hence a new round every hour


def test_the_warmer_waits_while_a_call_is_in_progress_and_stops_when_asked(box: Appliance, tmp_path: Path) -> None:
    voice = CountingVoice()
    prompts = _cached(voice, tmp_path / "cache")
    in_call = threading.Event()
    in_call.set()
    stop = threading.Event()
    texts = prompt_texts(box.practice, box.agenda, NOW)
    results = []
    warmer = threading.Thread(target=lambda: results.append(
        warm_prompts(prompts, lambda: texts, idle=lambda: not in_call.is_set(), stop=stop, pause_s=0.01)))
    warmer.start()
    time.sleep(0.3)
    assert voice.calls == 0  # a call in progress: not one sentence

    stop.set()
    warmer.join(timeout=5)

    assert not warmer.is_alive()
    assert results[0].finished is False and voice.calls == 0


def test_the_warmer_pauses_when_a_call_comes_in_and_resumes_after_it(box: Appliance, tmp_path: Path) -> None:
    in_call = threading.Event()
    voice = CountingVoice(on_call=lambda n: in_call.set() if n == 3 else None)  # the phone rings during piece 3
    prompts = _cached(voice, tmp_path / "cache")
    texts = prompt_texts(box.practice, box.agenda, NOW)
    results = []
    warmer = threading.Thread(target=lambda: results.append(
        warm_prompts(prompts, lambda: texts, idle=lambda: not in_call.is_set(), stop=threading.Event(),
                     pause_s=0.01)))
    warmer.start()
    deadline = time.monotonic() + 5
    while voice.calls < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)
    assert voice.calls == 3  # the piece under way finished, no other started

    in_call.clear()
    warmer.join(timeout=20)

    assert results[0].finished
    assert voice.calls == results[0].pieces == len(prompt_pieces(texts))


def test_a_phrase_the_model_fails_on_is_skipped_not_fatal(tmp_path: Path) -> None:
    class Stumbling(CountingVoice):
        def synthesize(self, text: str) -> np.ndarray:
            if "médecin" in text:
                super().synthesize(text)
                raise SpeechError("tts-failed", "kokoro: test")
            return super().synthesize(text)

    prompts = _cached(Stumbling(), tmp_path)
    texts = ["Je vous écoute.", "Avec quel médecin ?", "Merci de votre appel, au revoir."]
    report = warm_prompts(prompts, lambda: texts, idle=lambda: True, stop=threading.Event())

    assert (report.ready, report.failed, report.synthesized) == (2, 1, 2)


def test_the_warmer_leaves_room_under_the_cap_rather_than_evicting_what_it_just_made(tmp_path: Path) -> None:
    voice = CountingVoice()
    prompts = _cached(voice, tmp_path, max_bytes=10 * ENTRY_BYTES)
    texts = [f"Phrase utile numéro {i}." for i in range(20)]

    report = warm_prompts(prompts, lambda: texts, idle=lambda: True, stop=threading.Event())

    assert report.ready == 9 and report.left_out == 11
    assert all(prompts.key(text) in prompts.cache for text in texts[:9])  # the first, most useful ones


def test_the_core_warms_only_between_calls(box: Appliance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``appliance run``'s chore: paused while a call's row is open in the store."""
    texts = [f"Phrase utile numéro {i}." for i in range(20)]
    asked_for = []
    monkeypatch.setattr("appliance.runtime.prompt_texts", lambda practice, *a, **k: asked_for.append(practice) or texts)
    voice = CountingVoice()
    box.speech = SimpleNamespace(prompts=_cached(voice, tmp_path / "cache"))  # type: ignore[assignment]
    queries.insert_call(box.store, "call-1", NOW - timedelta(minutes=2), "0612345678", "sim")
    queries.insert_call(box.store, "crashed", NOW - timedelta(hours=2), None, "sim")  # never finished

    async def run() -> None:
        chore = asyncio.create_task(_warm_prompts(box))
        await asyncio.sleep(1.2)
        assert voice.calls == 0
        queries.finish_call(box.store, "call-1", NOW, "answered", {})
        deadline = time.monotonic() + 10
        while voice.calls < len(texts) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        chore.cancel()
        with pytest.raises(asyncio.CancelledError):
            await chore

    asyncio.run(run())
    assert voice.texts == texts
    assert asked_for == [box.practice]


# -- settings and the real voice ------------------------------------------------------


def test_the_cache_settings_are_checked(tmp_path: Path) -> None:
    assert SpeechSettings().prompt_cache is True
    with pytest.raises(ConfigError, match="prompt_cache_mb"):
        SpeechSettings(prompt_cache_mb=0)
    with pytest.raises(ConfigError, match="prompt_cache_mb"):
        SpeechSettings(prompt_cache_mb=2.5)  # type: ignore[arg-type]
    config_file = tmp_path / "box.toml"
    config_file.write_text('[speech]\nprompt_cache = "yes"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="prompt_cache must be true or false"):
        load_config(config_file, data_dir=tmp_path)
    config_file.write_text("[speech]\nprompt_cache = false\nprompt_cache_mb = 20\n", encoding="utf-8")
    speech = load_config(config_file, data_dir=tmp_path).speech
    assert (speech.prompt_cache, speech.prompt_cache_mb) == (False, 20)


@pytest.mark.models
def test_kokoro_behind_the_cache_plays_a_cached_sentence_sample_for_sample_without_the_model(
    catalog, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    from appliance.config import ModelChoice
    from appliance.speech.loading import FallbackSynthesizer, load_speech

    speech = load_speech(ModelChoice(), SpeechSettings(), catalog, cache_dir=tmp_path)
    prompts = speech.prompts
    assert prompts is not None
    assert isinstance(speech.synthesizer, FallbackSynthesizer) and speech.synthesizer.primary is prompts
    assert "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb" in prompts.model
    kokoro = prompts.inner
    sentence = "Bonjour, vous êtes bien au cabinet médical des Tilleuls."
    prompts.expect([sentence])
    made = speech.synthesizer.synthesize(sentence)
    assert made.size > kokoro.sample_rate // 2  # real speech, over half a second

    def no_model(text: str) -> np.ndarray:
        raise AssertionError("the model was called for a cached sentence")

    restarted = CachedSynthesizer(
        SimpleNamespace(sample_rate=kokoro.sample_rate, synthesize=no_model, warm_up=lambda: None),  # type: ignore[arg-type]
        PromptCache(tmp_path, max_bytes=2**20 * 10), voice=prompts.voice, model=prompts.model,
    )
    assert np.array_equal(restarted.synthesize(sentence), made)
