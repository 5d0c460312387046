"""The llama.cpp runner on the registry's GGUF: loads, obeys a JSON grammar, keeps to its
time, and the shipped model fails qualification so the helper's gate stays shut."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from appliance.config import Config
from appliance.errors import ModelError
from appliance.llm.background import run_qualification
from appliance.llm.helper import GatedHelper
from appliance.llm.llama import LlamaCppModel
from appliance.llm.pool import ModelPool, configured_backends
from appliance.llm.qualify import helper_status, qualify_intents
from appliance.llm.settings import LlmSettings
from appliance.llm.tasks import INTENT_MAX_TOKENS, INTENT_SCHEMA, INTENTS, UNSURE, intent_prompt
from appliance.store import Store

pytestmark = pytest.mark.models


@pytest.fixture(scope="module")
def gemma(catalog):  # type: ignore[no-untyped-def]
    manifest = catalog.get("gemma-3-270m")
    return LlamaCppModel(manifest, catalog.ensure(manifest.name))


def test_a_json_schema_grammar_constrains_the_output_to_the_labels(gemma) -> None:  # type: ignore[no-untyped-def]
    out = gemma.complete(intent_prompt("je voudrais un rendez-vous"), max_tokens=INTENT_MAX_TOKENS,
                         json_schema=INTENT_SCHEMA)
    assert json.loads(out.text)["intent"] in (*INTENTS, UNSURE)
    assert out.completion_tokens > 0 and out.seconds > 0


def test_an_answer_cut_off_by_max_tokens_is_malformed_not_half_read(gemma) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ModelError) as cut:
        gemma.complete(intent_prompt("je voudrais un rendez-vous"), max_tokens=3, json_schema=INTENT_SCHEMA)
    assert cut.value.code == "llm-malformed"


def test_a_generation_past_its_time_limit_is_stopped(gemma) -> None:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    with pytest.raises(ModelError) as late:
        gemma.complete("Il était une fois, dans un petit village de Provence,", max_tokens=400, timeout_s=0.3)
    assert late.value.code == "llm-timeout"
    # stopped at the next token, not after 400 of them (~8 s at 50 tokens/s)
    assert time.monotonic() - started < 2.0


def test_a_busy_model_makes_the_next_caller_wait_no_longer_than_its_limit(gemma) -> None:  # type: ignore[no-untyped-def]
    story = threading.Thread(target=gemma.complete, args=("Il était une fois",), kwargs={"max_tokens": 60})
    story.start()
    try:
        while not gemma._lock.locked():
            time.sleep(0.001)
        started = time.monotonic()
        with pytest.raises(ModelError) as busy:
            gemma.complete(intent_prompt("allô"), json_schema=INTENT_SCHEMA, timeout_s=0.05)
        assert busy.value.code == "llm-busy"
        assert time.monotonic() - started < 0.5
    finally:
        story.join()


def test_the_shipped_model_fails_the_intent_set(gemma) -> None:  # type: ignore[no-untyped-def]
    result = qualify_intents(gemma, timeout_s=10.0, stop_early=True)
    assert result.total >= 60 and 0 < result.tried <= result.total
    # The base model is documented as unqualified; if this ever flips, the README must change.
    assert not result.qualified
    assert result.tried < result.total  # stopped as soon as the threshold was out of reach


def test_the_core_qualification_leaves_the_gate_shut_for_the_shipped_model(
    gemma, catalog, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    config = Config(data_dir=tmp_path, llm=LlmSettings(enabled=True, intent_budget_s=10, summary_timeout_s=120))
    backend = configured_backends(config.llm, catalog)[0]
    pool = ModelPool()
    pool.put(backend, gemma)  # the module's model: not loaded twice
    store = Store.open(tmp_path / "box.db")
    try:
        run_qualification(config, store, threading.Event(), pool=pool)
        status = helper_status(store)
        assert (status.backend, status.model, status.backends[0].state) == ("local", "gemma-3-270m", "done")
        assert status.intent is not None and not status.intent.qualified
        assert status.summary is not None and not status.summary.qualified
        assert pool.loaded(backend) is None  # an unqualified local model is not kept in memory
        helper = GatedHelper(config.llm, store, [backend], lambda b: gemma)
        assert helper.intent("je voudrais un rende vous pour un vaccin") is None
    finally:
        store.close()


def test_a_stopped_model_ends_its_generation_and_takes_no_more(catalog) -> None:  # type: ignore[no-untyped-def]
    manifest = catalog.get("gemma-3-270m")
    model = LlamaCppModel(manifest, catalog.ensure(manifest.name))
    codes: list[str] = []

    def tell_a_story() -> None:
        try:
            model.complete("Il était une fois", max_tokens=400)
        except ModelError as err:
            codes.append(err.code)

    story = threading.Thread(target=tell_a_story)
    story.start()
    while not model._lock.locked():
        time.sleep(0.001)
    started = time.monotonic()
    model.stop()
    story.join()
    assert time.monotonic() - started < 2.0 and codes == ["llm-timeout"]
    with pytest.raises(ModelError):
        model.complete("Bonjour", max_tokens=4)
