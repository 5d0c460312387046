"""The gated helper the dialogue asks: an intent when the rules are unsure, a summary.

The rules decide; the helper is asked only where they could not, and it answers
only with a model that passed that task's qualification on this box (``qualify``),
read from the store at each call so a qualification finishing in the background
opens the gate without a restart. Everything else is None, and the dialogue goes
on as it would without a model:

    helper off / no qualified model / model unsure  ─▶ None
    server late or failing ─▶ the local model, if qualified, in what remains of the budget ─▶ None

A caller waits at most ``intent_budget_s`` on an intent, fallback included.
Summaries are written after the call; each passes ``guard.check_summary`` (it
invents nothing, gives no advice) or is dropped. Both methods block for up to
their time limit: call them off the event loop (``asyncio.to_thread``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Final, Protocol

from appliance.errors import ModelError
from appliance.llm.base import LanguageModel
from appliance.llm.guard import check_summary
from appliance.llm.pool import POOL, configured_backends
from appliance.llm.qualify import Backend, qualified_tasks, read_document, valid_entry
from appliance.llm.settings import LlmSettings
from appliance.llm.tasks import (
    INTENT_MAX_TOKENS,
    INTENT_SCHEMA,
    SUMMARY_MAX_TOKENS,
    SUMMARY_SCHEMA,
    intent_prompt,
    read_intent,
    read_summary,
    summary_prompt,
)
from appliance.models import ModelCatalog
from appliance.store import Store

if TYPE_CHECKING:
    from appliance.config import Config

_LOGGER = logging.getLogger(__name__)
_MIN_TRY_S: Final = 0.1  # less than this left of the budget: not worth starting a model


class DialogueHelper(Protocol):
    def intent(self, text: str) -> str | None:
        """One of the Intent values (book, cancel, move, prescription, certificate, sick_note, results, admin, callback, question, human) or None: helper off, not qualified for intents, unsure, timed out or failed."""

    def summary(self, category: str, transcript: str) -> str | None:
        """One short French sentence for the staff inbox, or None (off / not qualified / failed)."""


class NoHelper:
    """The helper switched off, or not set up: the dialogue's rules alone."""

    def intent(self, text: str) -> str | None:
        return None

    def summary(self, category: str, transcript: str) -> str | None:
        return None


class GatedHelper:
    def __init__(
        self,
        settings: LlmSettings,
        store: Store,
        backends: Sequence[Backend],
        models: Callable[[Backend], LanguageModel | None],
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """``backends`` preferred first; ``models`` gives a back-end's model if it is
        open (``ModelPool.loaded``: it never loads one on a caller's time)."""
        self._settings = settings
        self._store = store
        self._backends = tuple(backends)
        self._models = models
        self._monotonic = monotonic

    def intent(self, text: str) -> str | None:
        if not text or not text.strip():
            return None
        try:
            return self._intent(text)
        except Exception:  # a helper must never take a call down with it
            _LOGGER.exception("LLM helper: intent failed")
            return None

    def summary(self, category: str, transcript: str) -> str | None:
        if not transcript or not transcript.strip():
            return None
        try:
            return self._summary(category, transcript)
        except Exception:
            _LOGGER.exception("LLM helper: summary failed")
            return None

    def _intent(self, text: str) -> str | None:
        settings = self._settings
        deadline = self._monotonic() + settings.intent_budget_s
        for backend, model in self._ready("intent"):
            remaining = deadline - self._monotonic()
            if remaining < _MIN_TRY_S:
                break
            # The server gets its own limit, so a fallback still has time to answer.
            limit = min(remaining, settings.timeout_s) if backend.kind == "server" else remaining
            try:
                out = model.complete(intent_prompt(text), max_tokens=INTENT_MAX_TOKENS,
                                     json_schema=INTENT_SCHEMA, timeout_s=limit)
                return read_intent(out.text)  # "unknown" is an answer: None, no fallback
            except ModelError as err:
                _LOGGER.warning("LLM helper: %s gave no intent (%s): %s", backend.label, err.code, err.detail)
        return None

    def _summary(self, category: str, transcript: str) -> str | None:
        for backend, model in self._ready("summary"):
            try:
                out = model.complete(summary_prompt(category, transcript), max_tokens=SUMMARY_MAX_TOKENS,
                                     json_schema=SUMMARY_SCHEMA, timeout_s=self._settings.summary_timeout_s)
                summary = read_summary(out.text)
            except ModelError as err:
                _LOGGER.warning("LLM helper: %s gave no summary (%s): %s", backend.label, err.code, err.detail)
                continue
            reason = check_summary(summary, transcript)
            if reason:
                # The rule that failed, never the words: they are about a patient.
                _LOGGER.info("LLM helper: summary by %s dropped (%s)", backend.label, reason)
                return None
            return summary
        return None

    def _ready(self, task: str) -> Iterator[tuple[Backend, LanguageModel]]:
        """The back-ends qualified for ``task`` now, with their open model, preferred first."""
        settings = self._settings
        doc = read_document(self._store)
        thresholds = {"intent": settings.intent_threshold, "summary": settings.summary_threshold}
        for backend in self._backends:
            if task not in qualified_tasks(valid_entry(doc, backend, settings), thresholds):
                continue
            model = self._models(backend)
            if model is not None:
                yield backend, model


def open_helper(config: Config, store: Store) -> DialogueHelper:
    """The helper for ``config``; never raises: on any problem a ``NoHelper`` and a log line.

    Cheap: no model is loaded here. The core's qualification pass
    (``background.qualify_in_background``) loads and evaluates them beside the calls.
    """
    try:
        settings = config.llm
        if not settings.enabled:
            _LOGGER.info("LLM helper off (llm.enabled = false): rules only")
            return NoHelper()
        catalog = ModelCatalog(config.models.manifest_dir, config.models.models_dir) if settings.model else None
        backends = configured_backends(settings, catalog)
        for backend in backends:
            if backend.kind == "server":
                POOL.open(backend, settings, catalog)  # an HTTP client: no I/O yet
        return GatedHelper(settings, store, backends, POOL.loaded)
    except Exception as err:  # the box answers calls without a helper rather than not at all
        _LOGGER.error("LLM helper off: %s", err)
        return NoHelper()
