"""Qualification: may this language model help with intents, with summaries, here?

Each task is scored on the French evaluation set (``evalset``) with the prompt,
schema and time limit it will have on live calls: a late answer is a wrong one.
A model is qualified for a task when it gets at least the threshold right.
The registry's models (gemma-3-270m base) fail; a provisioned >=1B instruct model
is expected to pass. Nothing in the dialogue uses an unqualified model.

Results are kept in the store (``llm.qualification``) with what they are valid
for (the model's identity, the evaluation set's version, the time limits), so a
model is evaluated once, not at every start; ``helper_status`` reads them back
for the setup page.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

from appliance.errors import ModelError
from appliance.llm import evalset
from appliance.llm.base import LanguageModel
from appliance.llm.guard import check_summary, fold
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
from appliance.store.access import Db
from appliance.store.settings import get_setting, put_setting

PASS_RATIO: Final = 0.9  # the default threshold of both tasks (LlmSettings)
QUALIFICATION_KEY: Final = "llm.qualification"
TASKS: Final = ("intent", "summary")
# Problems of the server, not of the model: the qualification stops and is tried
# again later instead of recording a failure that would stand until the model changes.
INFRASTRUCTURE_ERRORS: Final = frozenset({"llm-unreachable", "llm-refused", "llm-server-error"})


def passes(correct: int, total: int, threshold: float) -> bool:
    # 1e-9: 0.9 * 60 is 54.00000000000001 in floating point, and 54 right must pass.
    return total > 0 and correct >= math.ceil(threshold * total - 1e-9)


class QualificationStopped(Exception):
    """The box is stopping: the qualification was abandoned, nothing is recorded."""


@dataclass(frozen=True, slots=True)
class TaskResult:
    task: str
    correct: int
    tried: int
    """Samples run: fewer than ``total`` when stopped early, once the threshold was out of reach."""
    total: int
    seconds: float
    threshold: float

    @property
    def qualified(self) -> bool:
        return passes(self.correct, self.total, self.threshold)

    @property
    def score(self) -> float:
        return self.correct / self.total if self.total else 0.0


@dataclass(frozen=True, slots=True)
class Qualification:
    model: str
    intent: TaskResult
    summary: TaskResult

    @property
    def qualified(self) -> bool:
        """For at least one task."""
        return self.intent.qualified or self.summary.qualified


def _run(
    task: str,
    cases: tuple[Any, ...],
    attempt: Callable[[Any], bool],
    threshold: float,
    stop_early: bool,
    stop: threading.Event | None,
) -> TaskResult:
    allowed_wrong = len(cases) - math.ceil(threshold * len(cases) - 1e-9)
    correct = tried = 0
    started = time.monotonic()
    for case in cases:
        if stop is not None and stop.is_set():
            raise QualificationStopped(task)
        tried += 1
        try:
            correct += bool(attempt(case))
        except ModelError as err:
            if err.code in INFRASTRUCTURE_ERRORS:
                raise
            # cut off, malformed, off-schema or too late: a wrong answer
        if stop_early and tried - correct > allowed_wrong:
            break  # cannot pass any more: spare the CPU the calls share
    return TaskResult(task, correct, tried, len(cases), time.monotonic() - started, threshold)


def qualify_intents(
    model: LanguageModel,
    *,
    timeout_s: float | None = None,
    threshold: float = PASS_RATIO,
    stop_early: bool = False,
    stop: threading.Event | None = None,
) -> TaskResult:
    def attempt(case: tuple[str, str]) -> bool:
        text, label = case
        out = model.complete(intent_prompt(text), max_tokens=INTENT_MAX_TOKENS,
                             json_schema=INTENT_SCHEMA, timeout_s=timeout_s)
        return (read_intent(out.text) or "unknown") == label

    return _run("intent", evalset.INTENT_SAMPLES, attempt, threshold, stop_early, stop)


def summary_passes(summary: str, case: evalset.SummaryCase) -> bool:
    """A summary invents nothing (``check_summary``), says what was asked, and is
    not merely a piece of the transcript copied out."""
    if check_summary(summary, case.transcript):
        return False
    folded = fold(summary)
    if folded in fold(case.transcript):
        return False
    return all(any(fold(word) in folded for word in group) for group in case.mentions)


def qualify_summaries(
    model: LanguageModel,
    *,
    timeout_s: float | None = None,
    threshold: float = PASS_RATIO,
    stop_early: bool = False,
    stop: threading.Event | None = None,
) -> TaskResult:
    def attempt(case: evalset.SummaryCase) -> bool:
        out = model.complete(summary_prompt(case.category, case.transcript), max_tokens=SUMMARY_MAX_TOKENS,
                             json_schema=SUMMARY_SCHEMA, timeout_s=timeout_s)
        return summary_passes(read_summary(out.text), case)

    return _run("summary", evalset.SUMMARY_CASES, attempt, threshold, stop_early, stop)


def qualify(
    model: LanguageModel,
    settings: LlmSettings | None = None,
    *,
    intent_timeout_s: float | None = None,
    stop_early: bool = False,
    stop: threading.Event | None = None,
) -> Qualification:
    """Both tasks, with the time limits and thresholds of ``settings`` (the defaults
    if None); ``intent_timeout_s`` overrides the intent budget (a server's own limit)."""
    settings = settings or LlmSettings()
    intent = qualify_intents(
        model, timeout_s=intent_timeout_s or settings.intent_budget_s,
        threshold=settings.intent_threshold, stop_early=stop_early, stop=stop,
    )
    summary = qualify_summaries(
        model, timeout_s=settings.summary_timeout_s,
        threshold=settings.summary_threshold, stop_early=stop_early, stop=stop,
    )
    return Qualification(model.name, intent, summary)


# -- what is kept in the store ------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Backend:
    """One place a model runs, as the gate knows it."""

    kind: Literal["server", "local"]
    key: str
    """What a stored qualification is valid for: the local model's name and weights,
    or the server's address, the model name asked for and the API."""
    model: str
    url: str = ""

    @property
    def label(self) -> str:
        """For log lines."""
        return f"{self.model or 'its default model'} on {self.url}" if self.kind == "server" else self.model


def conditions(settings: LlmSettings) -> dict[str, Any]:
    """Besides the model, what a qualification depends on: a change re-runs it."""
    return {
        "eval": evalset.VERSION,
        "intent_budget_s": settings.intent_budget_s,
        "timeout_s": settings.timeout_s,
        "summary_timeout_s": settings.summary_timeout_s,
    }


def read_document(db: Db) -> dict[str, Any]:
    doc = get_setting(db, QUALIFICATION_KEY, {})
    return doc if isinstance(doc, dict) else {}


def announce(db: Db, settings: LlmSettings, backends: tuple[Backend, ...], problem: str = "") -> None:
    """Record the helper's current set-up (for the page), keeping past results."""
    doc = read_document(db)
    doc.update(
        enabled=settings.enabled,
        backends=[{"kind": b.kind, "key": b.key, "model": b.model, "url": b.url} for b in backends],
        thresholds={"intent": settings.intent_threshold, "summary": settings.summary_threshold},
        problem=problem,
    )
    doc.setdefault("results", {})
    put_setting(db, QUALIFICATION_KEY, doc)


def record(db: Db, backend: Backend, settings: LlmSettings, *, state: str, detail: str = "",
           served: str = "", result: Qualification | None = None, at: datetime | None = None) -> None:
    """Store one back-end's state (``running``, ``done``, ``unreachable``, ``error``) and results."""
    doc = read_document(db)
    results = doc.setdefault("results", {})
    entry: dict[str, Any] = {
        "kind": backend.kind, "model": backend.model, "url": backend.url, "served": served,
        "state": state, "detail": detail, "conditions": conditions(settings),
    }
    if result is not None:
        for task in (result.intent, result.summary):
            entry[task.task] = {
                "correct": task.correct, "tried": task.tried, "total": task.total,
                "seconds": round(task.seconds, 2), "at": at.isoformat() if at else "",
            }
    results.pop(backend.key, None)  # re-inserted last: the newest verdicts are the ones kept
    results[backend.key] = entry
    # A practice trying models one after the other keeps the last few verdicts.
    for stale in list(results)[:-8]:
        del results[stale]
    put_setting(db, QUALIFICATION_KEY, doc)


def valid_entry(doc: dict[str, Any], backend: Backend, settings: LlmSettings) -> dict[str, Any] | None:
    """The stored, finished qualification of ``backend`` if still valid for ``settings``."""
    entry = doc.get("results", {}).get(backend.key)
    if not isinstance(entry, dict) or entry.get("state") != "done":
        return None
    if entry.get("conditions") != conditions(settings):
        return None
    return entry


def qualified_tasks(entry: dict[str, Any] | None, thresholds: dict[str, float]) -> frozenset[str]:
    """The tasks a stored qualification passed, against the thresholds in force now."""
    if entry is None:
        return frozenset()
    statuses = {task: _task_status(entry.get(task), thresholds.get(task, PASS_RATIO)) for task in TASKS}
    return frozenset(task for task, status in statuses.items() if status is not None and status.qualified)


# -- what the setup page shows ---------------------------------------------------------

@dataclass(frozen=True, slots=True)
class TaskStatus:
    qualified: bool
    score: float
    """Right answers over the whole set (samples not run count as wrong)."""
    correct: int
    tried: int
    total: int
    threshold: float
    at: datetime | None
    """When it was evaluated."""


@dataclass(frozen=True, slots=True)
class BackendStatus:
    kind: str
    """``server`` (on the network) or ``local`` (llama.cpp on the box)."""
    model: str
    """The model as configured, or for a server named by nobody, the one it said it runs."""
    url: str
    state: str
    """``pending`` (not evaluated yet), ``running``, ``done``, ``unreachable`` or ``error``."""
    detail: str
    intent: TaskStatus | None
    summary: TaskStatus | None


@dataclass(frozen=True, slots=True)
class HelperStatus:
    enabled: bool
    model: str
    """The preferred back-end's model ("" with none)."""
    backend: str
    """``server``, ``local`` or "" (none configured)."""
    intent: TaskStatus | None
    summary: TaskStatus | None
    """The preferred back-end's results; None until evaluated."""
    backends: tuple[BackendStatus, ...]
    """Every configured back-end, the preferred first (a server, then its local fallback)."""
    problem: str = ""

    @property
    def helps_with(self) -> tuple[str, ...]:
        """The tasks the helper really does now (some back-end is qualified for them)."""
        if not self.enabled:
            return ()
        return tuple(task for task in TASKS
                     if any(s is not None and s.qualified for s in (getattr(b, task) for b in self.backends)))


def _task_status(raw: Any, threshold: float) -> TaskStatus | None:
    if not isinstance(raw, dict):
        return None
    try:
        correct, tried, total = int(raw["correct"]), int(raw["tried"]), int(raw["total"])
        at = datetime.fromisoformat(raw["at"]) if raw.get("at") else None
    except (KeyError, TypeError, ValueError):
        return None
    return TaskStatus(
        qualified=passes(correct, total, threshold),
        score=correct / total if total else 0.0,
        correct=correct, tried=tried, total=total, threshold=threshold, at=at,
    )


def helper_status(db: Db) -> HelperStatus:
    """The helper as the core last set it up, and what each of its models passed."""
    doc = read_document(db)
    thresholds = doc.get("thresholds") if isinstance(doc.get("thresholds"), dict) else {}
    results = doc.get("results") if isinstance(doc.get("results"), dict) else {}
    backends = []
    for b in doc.get("backends") or ():
        entry = results.get(b.get("key"))
        entry = entry if isinstance(entry, dict) else {}
        backends.append(BackendStatus(
            kind=str(b.get("kind", "")), model=str(b.get("model") or entry.get("served", "")), url=str(b.get("url", "")),
            state=str(entry.get("state", "pending")), detail=str(entry.get("detail", "")),
            intent=_task_status(entry.get("intent"), thresholds.get("intent", PASS_RATIO)),
            summary=_task_status(entry.get("summary"), thresholds.get("summary", PASS_RATIO)),
        ))
    first = backends[0] if backends else None
    return HelperStatus(
        enabled=bool(doc.get("enabled", False)),
        model=first.model if first else "",
        backend=first.kind if first else "",
        intent=first.intent if first else None,
        summary=first.summary if first else None,
        backends=tuple(backends),
        problem=str(doc.get("problem", "")),
    )
