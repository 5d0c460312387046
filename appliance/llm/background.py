"""The core's qualification pass: evaluate the configured models beside the calls.

At every start of ``appliance run`` (one line in ``runtime``), in its own thread:
record the helper's set-up for the setup page; then for each back-end, reuse the
stored verdict if it is still valid for this model, or load the model and
evaluate it; keep a local model loaded only if it passed something. A server
that cannot be reached is tried again every few minutes. Live calls never wait
on any of this: until a verdict is stored the gate stays closed.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import TYPE_CHECKING, Final

from appliance.errors import ApplianceError, ModelError
from appliance.llm.pool import POOL, ModelPool, configured_backends
from appliance.llm.qualify import (
    Backend,
    QualificationStopped,
    announce,
    qualified_tasks,
    qualify,
    read_document,
    record,
    valid_entry,
)
from appliance.llm.server import ServerModel
from appliance.llm.settings import LlmSettings
from appliance.models import ModelCatalog
from appliance.store import Store

if TYPE_CHECKING:
    from appliance.config import Config

_LOGGER = logging.getLogger(__name__)
_RETRY_S: Final = 300.0  # an unreachable server is asked again this often
_JOIN_S: Final = 5.0  # at shutdown: a local model stops within a token, a server within its timeout


def run_qualification(
    config: Config, store: Store, stop: threading.Event, *, pool: ModelPool = POOL, retry_s: float = _RETRY_S
) -> None:
    """The whole pass, until every back-end has a verdict or ``stop`` is set."""
    settings = config.llm
    if not settings.enabled:
        announce(store, settings, ())
        return
    try:
        catalog = ModelCatalog(config.models.manifest_dir, config.models.models_dir) if settings.model else None
        backends = configured_backends(settings, catalog)
    except ApplianceError as err:
        _LOGGER.error("LLM helper: cannot set up its models: %s", err)
        announce(store, settings, (), problem=str(err))
        return
    announce(store, settings, backends)
    pending = list(backends)
    while pending and not stop.is_set():
        pending = [b for b in pending if not _settle(b, settings, catalog, store, stop, pool)]
        if pending:
            stop.wait(retry_s)


def _settle(backend: Backend, settings: LlmSettings, catalog: ModelCatalog | None, store: Store,
            stop: threading.Event, pool: ModelPool) -> bool:
    """Give ``backend`` a verdict; False if it must be tried again later (unreachable)."""
    thresholds = {"intent": settings.intent_threshold, "summary": settings.summary_threshold}
    entry = valid_entry(read_document(store), backend, settings)
    if backend.kind == "local" and entry is not None and not qualified_tasks(entry, thresholds):
        # The weights' hash is in the key: a failed model's verdict stands without loading it.
        _LOGGER.info("LLM helper: %s already evaluated, helps with nothing", backend.label)
        return True
    try:
        model = pool.open(backend, settings, catalog)
        served = model.served_model() if isinstance(model, ServerModel) else ""
    except ModelError as err:
        if backend.kind == "server":
            _LOGGER.warning("LLM helper: server %s: %s (trying again in a while)", backend.url, err.detail)
            record(store, backend, settings, state="unreachable", detail=err.detail)
            return False
        _LOGGER.error("LLM helper: local model %s cannot be used: %s", backend.label, err.detail)
        record(store, backend, settings, state="error", detail=err.detail)
        return True  # a broken model file does not mend itself: `make models`, then a restart
    except ApplianceError as err:  # e.g. an unreadable API key file
        _LOGGER.error("LLM helper: %s cannot be used: %s", backend.label, err.detail)
        record(store, backend, settings, state="error", detail=err.detail)
        return True
    if entry is not None and entry.get("served", "") == served:
        passed = qualified_tasks(entry, thresholds)
        _LOGGER.info("LLM helper: %s already evaluated, helps with: %s", backend.label,
                     ", ".join(sorted(passed)) or "nothing")
        return True
    # From here until the verdict the gate is closed for this back-end.
    record(store, backend, settings, state="running", served=served)
    _LOGGER.info("LLM helper: evaluating %s on the French evaluation set", backend.label)
    intent_limit = min(settings.timeout_s, settings.intent_budget_s) if backend.kind == "server" else None
    try:
        result = qualify(model, settings, intent_timeout_s=intent_limit, stop_early=True, stop=stop)
    except QualificationStopped:
        return True
    except ModelError as err:  # the server went away mid-way: not the model's fault
        _LOGGER.warning("LLM helper: server %s failed during the evaluation: %s", backend.url, err.detail)
        record(store, backend, settings, state="unreachable", served=served, detail=err.detail)
        return False
    record(store, backend, settings, state="done", served=served, result=result, at=store.clock.now())
    for task in (result.intent, result.summary):
        _LOGGER.info("LLM helper: %s %s: %d/%d right (%d tried), %s (threshold %.0f %%)", backend.label, task.task,
                     task.correct, task.total, task.tried, "qualified" if task.qualified else "NOT qualified",
                     task.threshold * 100)
    if not result.qualified and backend.kind == "local":
        pool.forget(backend)  # hundreds of MB that would never be used
    return True


async def qualify_in_background(config: Config, store: Store, *, pool: ModelPool = POOL) -> None:
    """Run the pass in a thread of its own until it is done; cancelled with the box.

    A thread, not the loop's executor: a pass can take minutes, and at shutdown
    the loop must not wait for it, only ask it to stop.
    """
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def work() -> None:
        try:
            run_qualification(config, store, stop, pool=pool)
        except Exception:  # a failed evaluation must not take the core down
            if not stop.is_set():
                _LOGGER.exception("LLM helper: the qualification pass failed")
        finally:
            try:
                loop.call_soon_threadsafe(lambda: done.done() or done.set_result(None))
            except RuntimeError:  # the loop is already closed
                pass

    stop = threading.Event()
    thread = threading.Thread(target=work, name="llm-qualification", daemon=True)
    thread.start()
    try:
        await done
    except asyncio.CancelledError:
        stop.set()
        pool.close()  # a local generation stops at its next token
        await asyncio.to_thread(thread.join, _JOIN_S)  # before the box closes the store under it
        raise
