"""The LLM helper's gate: a model helps only with what it passed here; summaries invent nothing.

The models are fakes that answer the evaluation set from a table, as a
schema-constrained model would write it: a good one, a bad one, an unsure one, a
slow one. The real models are in test_llm.py (local) and test_llm_server.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from appliance.config import Config, ModelChoice, load_config
from appliance.dialogue.intent import Intent
from appliance.errors import ConfigError, ModelError
from appliance.llm.background import qualify_in_background, run_qualification
from appliance.llm.base import Completion, parse_answer
from appliance.llm.evalset import INTENT_SAMPLES, SUMMARY_CASES
from appliance.llm.guard import check_summary
from appliance.llm.helper import GatedHelper, NoHelper, open_helper
from appliance.llm.pool import ModelPool, configured_backends
from appliance.llm.qualify import QUALIFICATION_KEY, helper_status, read_document, summary_passes
from appliance.llm.settings import LlmSettings
from appliance.llm.tasks import INTENTS, INTENT_SCHEMA, UNSURE, intent_prompt, summary_prompt
from appliance.models import ModelCatalog
from appliance.store import Store
from appliance.store.settings import get_setting

# What a good model writes for each summary case: third person, nothing added.
REFERENCE_SUMMARIES = (
    "Demande le renouvellement de l'ordonnance de Levothyrox.",
    "Demande un certificat médical pour le judo de son fils.",
    "Demande la prolongation de son arrêt de travail qui se termine vendredi.",
    "Demande si les résultats de sa prise de sang de lundi sont arrivés.",
    "Demande une facture de la dernière consultation pour sa mutuelle.",
    "Souhaite que le docteur la rappelle au sujet du traitement de son mari.",
    "Demande une ordonnance de Doliprane, n'en a plus.",
    "Demande si le compte rendu de son IRM du genou a été envoyé au docteur.",
    "Demande une attestation de présence pour son employeur.",
    "Demande si le vaccin contre la grippe est disponible au cabinet.",
    "La pharmacie du centre a une question sur une ordonnance et demande à être rappelée.",
)
_RIGHT_INTENT = {intent_prompt(text): label for text, label in INTENT_SAMPLES}
_RIGHT_SUMMARY = {summary_prompt(c.category, c.transcript): s for c, s in zip(SUMMARY_CASES, REFERENCE_SUMMARIES)}


class ScriptedModel:
    """A language model whose answers are functions of the right answer (None off the set)."""

    def __init__(
        self,
        name: str = "scripted",
        *,
        intent: Callable[[str | None], str] = lambda right: right or UNSURE,
        summary: Callable[[str | None], str] = lambda right: right or "Demande à être rappelé.",
        delay_s: float = 0.0,
    ) -> None:
        self.name = name
        self._intent = intent
        self._summary = summary
        self.delay_s = delay_s
        self.calls = 0

    def complete(self, prompt: str, *, max_tokens: int = 64, json_schema: dict[str, Any] | None = None,
                 timeout_s: float | None = None) -> Completion:
        self.calls += 1
        if self.delay_s:
            if timeout_s is not None and self.delay_s > timeout_s:
                time.sleep(timeout_s)
                raise ModelError("llm-timeout", f"{self.name} took more than {timeout_s} s")
            time.sleep(self.delay_s)
        if json_schema is not None and "intent" in json_schema["properties"]:
            text = '{"intent": "%s"}' % self._intent(_RIGHT_INTENT.get(prompt))
        else:
            text = '{"summary": "%s"}' % self._summary(_RIGHT_SUMMARY.get(prompt)).replace('"', "'")
        return Completion(text=text, prompt_tokens=len(prompt) // 4, completion_tokens=8, seconds=self.delay_s)


def good_model(**kw: Any) -> ScriptedModel:
    return ScriptedModel("good", **kw)


def bad_model() -> ScriptedModel:
    # Always the commonest intent, and summaries that copy the caller and add a day.
    return ScriptedModel("bad", intent=lambda right: "book",
                         summary=lambda right: "Je voudrais un rendez-vous mardi à 10 h.")


def llm_config(tmp_path: Path, *, manifests: Path | None = None, **llm: Any) -> Config:
    models = ModelChoice(manifest_dir=manifests) if manifests else ModelChoice()
    return Config(data_dir=tmp_path, models=models, llm=LlmSettings(enabled=True, **llm))


def catalog_of(config: Config) -> ModelCatalog:
    return ModelCatalog(config.models.manifest_dir, config.models.models_dir)


def qualified_with(config: Config, store: Store, models: list[Any]) -> tuple[GatedHelper, ModelPool]:
    """Run the qualification pass over ``models`` (one per configured back-end, in
    order) and return the helper the dialogue would get, on the same pool."""
    pool = ModelPool()
    backends = configured_backends(config.llm, catalog_of(config))
    assert len(backends) == len(models)
    for backend, model in zip(backends, models):
        pool.put(backend, model)
    run_qualification(config, store, threading.Event(), pool=pool, retry_s=0.01)
    return GatedHelper(config.llm, store, backends, pool.loaded), pool


def write_manifest(folder: Path, name: str, weights: bytes) -> None:
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.toml").write_text(f"""
name = "{name}"
role = "llm"
runtime = "llama.cpp"
license = "MIT"
[source]
kind = "provisioned"
location = "{folder / 'weights'}"
[[files]]
path = "{name}.gguf"
size = {len(weights)}
sha256 = "{hashlib.sha256(weights).hexdigest()}"
""", encoding="utf-8")


@pytest.fixture
def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    store = Store.open(tmp_path / "box.db")
    yield store
    store.close()


# -- the tasks and the evaluation set -----------------------------------------------

def test_the_helper_knows_every_intent_of_the_dialogue_and_nothing_else() -> None:
    assert set(INTENTS) | {UNSURE} == {i.value for i in Intent}
    assert set(INTENT_SCHEMA["properties"]["intent"]["enum"]) == {i.value for i in Intent}


def test_the_evaluation_set_covers_every_intent_with_speech_recognition_errors() -> None:
    labels = [label for _, label in INTENT_SAMPLES]
    assert len(INTENT_SAMPLES) >= 60
    assert {label: labels.count(label) >= 5 for label in set(labels)} == {i.value: True for i in Intent}
    assert len({text for text, _ in INTENT_SAMPLES}) == len(INTENT_SAMPLES)
    # none of them is one of the prompt's own examples: that would be a free answer
    assert not any(f"Demande : {text}\n" in intent_prompt("x") for text, _ in INTENT_SAMPLES)


def test_a_careful_summary_passes_every_check_of_the_summary_set() -> None:
    for case, summary in zip(SUMMARY_CASES, REFERENCE_SUMMARIES, strict=True):
        assert check_summary(summary, case.transcript) == "", summary
        assert summary_passes(summary, case), summary


def test_a_summary_that_copies_the_caller_or_misses_the_request_fails_the_summary_set() -> None:
    levothyrox = SUMMARY_CASES[0]
    assert not summary_passes("Bonjour, c'est pour le renouvellement de mon Levothyrox.", levothyrox)
    assert not summary_passes("Le patient a appelé le cabinet.", levothyrox)


_TRANSCRIPT = (
    "Patient : Bonjour, c'est M. Dupont, je n'ai plus de Doliprane 1000, il me faudrait une ordonnance.\n"
    "Patient : Mon numéro c'est le 06 12 34 56 78."
)


@pytest.mark.parametrize(
    ("summary", "verdict"),
    [
        ("Demande une ordonnance de Doliprane.", ""),
        ("M. Dupont demande une ordonnance de Doliprane 1000.", ""),
        ("Demande une ordonnance de Doliprane, à rappeler au 06 12 34 56 78.", ""),
        ("Demande une ordonnance de Doliprane 500.", "invented-number"),
        ("Demande trois boîtes de Doliprane.", "invented-number"),
        ("Demande une ordonnance d'Efferalgan.", "invented-medication"),
        ("Demande une ordonnance d'amoxicilline.", "invented-medication"),
        ("Demande une ordonnance de Doliprane 1000 mg.", "dosage"),
        ("Demande du Doliprane, deux comprimés par jour.", "dosage"),
        ("Il faut prendre du Doliprane en attendant.", "advice"),
        ("Ne vous inquiétez pas, le docteur rappellera.", "advice"),
        ("Je n'ai plus de Doliprane.", "first-person"),
        ("Demande une ordonnance pour mardi.", "invented-date"),
        ("Mme Martin demande une ordonnance.", "invented-name"),
        ("Demande une ordonnance. Rappeler vite.", "not-one-sentence"),
        ("Demande une ordonnance " + "de Doliprane " * 20 + ".", "too-long"),
        ("   ", "empty"),
    ],
)
def test_the_summary_guard_rejects_what_the_caller_did_not_say(summary: str, verdict: str) -> None:
    assert check_summary(summary, _TRANSCRIPT) == verdict


def test_an_answer_is_checked_against_its_schema() -> None:
    assert parse_answer('{"intent": "book"}', INTENT_SCHEMA) == {"intent": "book"}
    with pytest.raises(ModelError) as cut:
        parse_answer('{"intent": "bo', INTENT_SCHEMA)
    assert cut.value.code == "llm-malformed"
    for wrong in ('{"intent": "surgery"}', '{"label": "book"}', '["book"]', '{"intent": "book", "x": 1}'):
        with pytest.raises(ModelError) as off_schema:
            parse_answer(wrong, INTENT_SCHEMA)
        assert off_schema.value.code == "llm-schema", wrong


# -- the gate ----------------------------------------------------------------------

def test_a_good_model_qualifies_and_then_helps_with_intents_and_summaries(tmp_path: Path, store: Store) -> None:
    config = llm_config(tmp_path)
    helper, _ = qualified_with(config, store, [good_model()])
    # a sentence the rules miss ("rende vous"): the helper is there for these
    assert helper.intent("je voudrais un rende vous pour un vaccin") == "book"
    case = SUMMARY_CASES[1]
    assert helper.summary(case.category, case.transcript) == REFERENCE_SUMMARIES[1]
    status = helper_status(store)
    assert status.enabled and status.backend == "local" and status.model == "gemma-3-270m"
    assert status.intent is not None and status.intent.qualified and status.intent.score == 1.0
    assert status.summary is not None and status.summary.qualified
    assert status.intent.at is not None and status.helps_with == ("intent", "summary")


def test_a_bad_model_fails_qualification_and_is_never_asked_during_calls(tmp_path: Path, store: Store) -> None:
    manifests = tmp_path / "manifests"
    write_manifest(manifests, "house-llm", b"weights that are not on this disk")
    config = llm_config(tmp_path, manifests=manifests, model="house-llm")
    model = bad_model()
    helper, pool = qualified_with(config, store, [model])
    status = helper_status(store)
    assert status.intent is not None and not status.intent.qualified
    assert status.summary is not None and not status.summary.qualified
    # It stopped as soon as the threshold was out of reach, sparing the box's CPU.
    assert status.intent.tried < status.intent.total
    assert status.helps_with == ()
    asked = model.calls
    assert helper.intent("je voudrais un rende vous pour un vaccin") is None
    assert helper.summary("certificate", SUMMARY_CASES[1].transcript) is None
    assert model.calls == asked
    # and its memory is let go: only a qualified local model stays loaded
    backend = configured_backends(config.llm, catalog_of(config))[0]
    assert pool.loaded(backend) is None
    # nor loaded again at the next start just to be told it failed (loading these
    # weights, which are not on disk, would have recorded an error)
    run_qualification(config, store, threading.Event(), pool=ModelPool())
    assert helper_status(store).backends[0].state == "done"


def test_the_gate_is_per_task(tmp_path: Path, store: Store) -> None:
    config = llm_config(tmp_path)
    good_at_intents = ScriptedModel("half", summary=lambda right: "Je rappellerai.")
    helper, _ = qualified_with(config, store, [good_at_intents])
    assert helper.intent("Vous avez reçu mes analyses ?") == "results"
    assert helper.summary("results", SUMMARY_CASES[3].transcript) is None
    assert helper_status(store).helps_with == ("intent",)


def test_an_unsure_model_gives_no_intent(tmp_path: Path, store: Store) -> None:
    helper, _ = qualified_with(llm_config(tmp_path), store, [good_model()])
    assert helper.intent("Allô ? Allô ?") is None  # the model answered "unknown"
    assert helper.intent("   ") is None


def test_the_threshold_in_force_decides_not_the_one_at_qualification(tmp_path: Path, store: Store) -> None:
    # Wrong on the six "book" samples: 61 of 67 right, 91 %.
    mostly = ScriptedModel("mostly", intent=lambda right: "admin" if right == "book" else (right or UNSURE))
    config = llm_config(tmp_path)
    helper, pool = qualified_with(config, store, [mostly])
    assert helper.intent("Vous avez reçu mes analyses ?") == "results"  # 61/67 >= 90 %
    stricter = LlmSettings(enabled=True, intent_threshold=0.95)
    strict_helper = GatedHelper(stricter, store, configured_backends(stricter, catalog_of(config)), pool.loaded)
    assert strict_helper.intent("Vous avez reçu mes analyses ?") is None


def test_a_qualification_is_reused_until_the_model_changes(tmp_path: Path, store: Store) -> None:
    manifests = tmp_path / "manifests"
    write_manifest(manifests, "house-llm", b"weights v1")
    config = llm_config(tmp_path, manifests=manifests, model="house-llm")
    first = good_model()
    qualified_with(config, store, [first])
    assert first.calls > 0
    again = good_model()
    helper, _ = qualified_with(config, store, [again])
    assert again.calls == 0  # same model, same set, same limits: the stored verdict stands
    assert helper.intent("Vous avez reçu mes analyses ?") == "results"
    # New weights under the same name are a new model.
    write_manifest(manifests, "house-llm", b"weights v2")
    swapped = bad_model()
    helper, _ = qualified_with(config, store, [swapped])
    assert swapped.calls > 0
    assert helper.intent("Vous avez reçu mes analyses ?") is None
    # So is a change of the time it is allowed: a slower budget may change the verdict.
    relaxed = llm_config(tmp_path, manifests=manifests, model="house-llm", intent_budget_s=3.0)
    retried = good_model()
    qualified_with(relaxed, store, [retried])
    assert retried.calls > 0


def test_a_caller_never_waits_longer_than_the_intent_budget(tmp_path: Path, store: Store) -> None:
    config = llm_config(tmp_path, intent_budget_s=0.3)
    slow = good_model()
    helper, _ = qualified_with(config, store, [slow])
    slow.delay_s = 2.0  # the model got slow after qualifying (the box is busy)
    started = time.monotonic()
    assert helper.intent("Vous avez reçu mes analyses ?") is None
    assert time.monotonic() - started < 0.3 + 0.2


def test_a_model_too_slow_for_calls_does_not_qualify(tmp_path: Path, store: Store) -> None:
    config = llm_config(tmp_path, intent_budget_s=0.1)
    _, _ = qualified_with(config, store, [good_model(delay_s=0.15)])
    status = helper_status(store)
    assert status.intent is not None and not status.intent.qualified and status.intent.correct == 0


def test_helper_failures_never_reach_the_dialogue(tmp_path: Path, store: Store) -> None:
    config = llm_config(tmp_path)
    model = good_model()
    helper, _ = qualified_with(config, store, [model])

    def broken(*args: Any, **kw: Any) -> Completion:
        raise RuntimeError("a bug in a back-end")

    model.complete = broken  # type: ignore[method-assign]
    assert helper.intent("Vous avez reçu mes analyses ?") is None
    assert helper.summary("results", SUMMARY_CASES[3].transcript) is None


# -- opening the helper, and its status for the setup page -----------------------------

def test_the_helper_is_off_by_default_and_says_so(tmp_path: Path, store: Store) -> None:
    config = Config(data_dir=tmp_path)
    assert not config.llm.enabled and not config.models.llm_enabled
    helper = open_helper(config, store)
    assert isinstance(helper, NoHelper)
    assert helper.intent("je voudrais un rendez-vous") is None and helper.summary("other", "x") is None
    run_qualification(config, store, threading.Event())
    status = helper_status(store)
    assert not status.enabled and status.backends == () and status.helps_with == ()


def test_a_helper_that_cannot_be_set_up_is_a_no_helper_and_a_log_line(
    tmp_path: Path, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    config = llm_config(tmp_path, model="no-such-model")
    with caplog.at_level(logging.ERROR, logger="appliance.llm.helper"):
        assert isinstance(open_helper(config, store), NoHelper)
    assert "no-such-model" in caplog.text
    keyless = llm_config(tmp_path, model="", server_url="http://127.0.0.1:9", api_key_file=tmp_path / "missing.key")
    assert isinstance(open_helper(keyless, store), NoHelper)


def test_an_enabled_helper_opens_at_once_and_stays_shut_until_qualified(tmp_path: Path, store: Store) -> None:
    started = time.monotonic()
    helper = open_helper(llm_config(tmp_path), store)
    assert isinstance(helper, GatedHelper)
    assert time.monotonic() - started < 1.0  # no model is loaded on the way
    assert helper.intent("Vous avez reçu mes analyses ?") is None
    assert helper_status(store).backends == ()  # nothing announced before the core's pass


def test_the_status_is_stored_as_json_under_one_key(tmp_path: Path, store: Store) -> None:
    qualified_with(llm_config(tmp_path), store, [good_model()])
    doc = get_setting(store, QUALIFICATION_KEY)
    assert doc["enabled"] is True and doc["backends"][0]["kind"] == "local"
    entry = doc["results"][doc["backends"][0]["key"]]
    assert entry["state"] == "done" and entry["intent"]["correct"] == len(INTENT_SAMPLES)


def test_the_core_qualifies_in_the_background_and_stops_with_the_box(tmp_path: Path, store: Store) -> None:
    config = llm_config(tmp_path)
    backend = configured_backends(config.llm, catalog_of(config))[0]

    async def finish() -> None:
        pool = ModelPool()
        pool.put(backend, good_model())
        await qualify_in_background(config, store, pool=pool)

    asyncio.run(finish())
    assert helper_status(store).helps_with == ("intent", "summary")

    # A slow evaluation is abandoned at shutdown, quickly, and its verdict not recorded.
    other = llm_config(tmp_path, intent_budget_s=2.0)

    async def stop_midway() -> float:
        pool = ModelPool()
        pool.put(backend, good_model(delay_s=0.05))
        task = asyncio.create_task(qualify_in_background(other, store, pool=pool))
        await asyncio.sleep(0.3)
        started = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return time.monotonic() - started

    assert asyncio.run(stop_midway()) < 1.0
    entry = read_document(store)["results"][backend.key]
    assert entry["state"] == "running"
    assert GatedHelper(other.llm, store, [backend], lambda b: good_model()).intent("Vous avez reçu mes analyses ?") is None


# -- the [llm] table --------------------------------------------------------------------

def _load(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "appliance.toml"
    path.write_text(f'data_dir = "{tmp_path}"\n' + text, encoding="utf-8")
    return load_config(path)


def test_the_llm_table_is_read_with_units_and_a_key_file(tmp_path: Path) -> None:
    config = _load(tmp_path, """
[llm]
enabled = true
server_url = "http://192.168.1.20:8080/v1/"
server_model = "qwen2.5-3b-instruct"
api_key_file = "/etc/appliance/llm.key"
timeout_s = 0.8
""")
    assert config.llm.enabled and config.llm.server_base == "http://192.168.1.20:8080"
    assert config.llm.api_key_file == Path("/etc/appliance/llm.key") and config.llm.timeout_s == 0.8
    assert config.models.llm_enabled is True  # the old readers see the same switch


def test_the_old_models_keys_still_switch_the_helper(tmp_path: Path) -> None:
    config = _load(tmp_path, '[models]\nllm = "house-llm"\nllm_enabled = true\n')
    assert config.llm.enabled and config.llm.model == "house-llm"
    both = _load(tmp_path, '[models]\nllm_enabled = true\n[llm]\nmodel = "other-llm"\n')
    assert both.llm.enabled and both.llm.model == "other-llm"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('server_url = "ftp://10.0.0.2/"', "http://host:port"),
        ('server_url = "http://"', "http://host:port"),
        ('server_url = "http://10.0.0.2:99999"', "not a valid URL"),
        ('server_url = "http://user:secret@10.0.0.2:8080"', "api_key_file"),
        ("timeout_s = -1", "llm.timeout_s must be"),
        ("intent_budget_s = 0", "llm.intent_budget_s must be"),
        ("summary_timeout_s = 5000", "llm.summary_timeout_s must be"),
        ("intent_threshold = 0.2", "llm.intent_threshold must be"),
        ('server_api = "responses"', "llm.server_api must be one of"),
        ('enabled = true\nmodel = ""', "needs a local model"),
        ('model = "../../etc/passwd"', "llm.model must be"),
        ("enabled = 1", "true or false"),
        ('surprise = "x"', "unknown key(s) llm.surprise"),
    ],
)
def test_a_wrong_llm_table_is_refused_with_a_clear_message(tmp_path: Path, table: str, message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        _load(tmp_path, "[llm]\n" + table + "\n")
    assert message in refused.value.detail
    assert "appliance.toml" in refused.value.detail
