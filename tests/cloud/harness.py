"""What the reliability scenarios (``reliability.py``) share: forking a box that
can be killed, booking made-up patients, counting what the cloud holds, and
listening to the worker's log lines."""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
import traceback
import uuid
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import date, datetime, timedelta
from typing import Any, Final

from appliance.agenda.local import LocalAgenda
from appliance.agenda.practice import builtin_practice
from appliance.clock import PARIS
from appliance.dialogue.reply import Patient
from appliance.store import Store, appointments, outbox, queries
from appliance.store.appointments import BookingRequest
from appliance.sync.adapters import fhir_resources as res
from appliance.sync.adapters.fhir import FhirSettings
from appliance.sync.worker import OutboxWorker

from tests.cloud.fhir_server import FhirServer

DEMO: Final = builtin_practice("demo")
SYSTEM: Final = "urn:appliance:booking"  # FhirSettings' default identifier system
_REASONS: Final = ("consultation", "suivi", "vaccination", "certificat")
_LAST_NAMES: Final = ("Durand", "Lefèvre", "Moreau", "Garnier", "Roux", "Fontaine", "Chevalier", "Faure")
_FIRST_NAMES: Final = ("Anne", "Louis", "Camille", "Hugo", "Léa", "Jules", "Inès", "Paul")

_IDLE_S: Final = 0.05  # how long a worker loop naps when nothing is due

def book_at(store: Store, start: datetime) -> int:
    request = BookingRequest(
        practitioner_id="martin", reason_id="consultation", start=start, end=start + timedelta(minutes=20),
        **patient_fields(random.Random(start.hour)),
    )
    return appointments.book(store, DEMO, request).id

# -- shared pieces ------------------------------------------------------------------------------

def make_practitioners(fhir: FhirServer) -> dict[str, str]:
    """The demo practice's two doctors, as new Practitioners: this scenario's own."""
    return {p.id: fhir.practitioner(p.last_name) for p in DEMO.practitioners}

def fhir_settings(base_url: str, practitioners: dict[str, str], *, timeout_s: float) -> FhirSettings:
    return FhirSettings(base_url=base_url, practitioners=practitioners, identifier_system=SYSTEM, timeout_s=timeout_s)

def patient_fields(rng: random.Random) -> dict[str, Any]:
    """A made-up caller (no real person's details, ever)."""
    return {
        "patient_last_name": rng.choice(_LAST_NAMES),
        "patient_first_name": rng.choice(_FIRST_NAMES),
        "patient_birth_date": date(rng.randint(1940, 2010), rng.randint(1, 12), rng.randint(1, 28)),
        "patient_phone": f"06{rng.randint(0, 99_999_999):08d}",
    }

def book_earliest(
    agenda: LocalAgenda, rng: random.Random, *, reason_id: str | None = None, line: str = "sim:1"
) -> int | None:
    """What a call does: recorded when answered, then the earliest free slot
    offered and booked. None when the agenda has no slot left."""
    call_id = f"call-{uuid.uuid4().hex[:12]}"
    queries.insert_call(agenda.store, call_id, agenda.clock.now(), None, line)
    slots = agenda.free_slots(reason_id or rng.choice(_REASONS), None, None, None, 1)
    if not slots:
        return None
    fields = patient_fields(rng)
    patient = Patient(
        last_name=fields["patient_last_name"], first_name=fields["patient_first_name"],
        birth_date=fields["patient_birth_date"], phone=fields["patient_phone"],
    )
    return agenda.book(slots[0], patient, call_id=call_id)

def practice_time(day: date, minutes: int) -> datetime:
    return datetime(day.year, day.month, day.day, minutes // 60, minutes % 60, tzinfo=PARIS)

def split_evenly(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if n < total % parts else 0) for n in range(parts)]

def drain(store: Store, worker: OutboxWorker, limit_s: float) -> float:
    """Passes until the backlog is empty (rows waiting for a retry included); seconds taken."""
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        if worker.run_once().claimed == 0:
            if outbox.sync_status(store).backlog == 0:
                break
            time.sleep(_IDLE_S)  # a retry is due in a moment
    return time.monotonic() - started

def wait_for_empty_backlog(store: Store, limit_s: float) -> int:
    deadline = time.monotonic() + limit_s
    while (backlog := outbox.sync_status(store).backlog) and time.monotonic() < deadline:
        time.sleep(_IDLE_S)
    return backlog

@contextmanager
def worker_running(worker: OutboxWorker, errors: list[str], *, pull_every_s: float) -> Iterator[None]:
    """The core's outbox task, as a thread: push what is due, pull now and then, never die."""
    stop = threading.Event()

    def loop() -> None:
        next_pull = 0.0
        while not stop.is_set():
            try:
                if time.monotonic() >= next_pull:
                    worker.pull_once()
                    next_pull = time.monotonic() + pull_every_s
                if worker.run_once().claimed == 0:
                    stop.wait(_IDLE_S)
            except Exception as err:  # a finding, not a crash of the harness
                errors.append(f"{type(err).__name__}: {err}")
                stop.wait(_IDLE_S)

    thread = threading.Thread(target=loop, name="outbox-worker")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()

def cloud_census(fhir: FhirServer, practitioners: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    """Every Appointment of these Practitioners in the server, filed under the box's booking key.

    Read directly from the server (never through the proxy), following next links.
    """
    by_key: dict[str, list[dict[str, Any]]] = defaultdict(list)
    url: str | None = f"{fhir.base_url}/Appointment"
    params: dict[str, str] | None = {"actor": ",".join(practitioners), "_count": "500"}
    while url:
        response = fhir.client.get(url, params=params)
        response.raise_for_status()
        bundle = response.json()
        for entry in bundle.get("entry", []):
            key = res.booking_key(entry["resource"], SYSTEM)
            if key is not None:
                by_key[key].append(entry["resource"])
        url = next((link["url"] for link in bundle.get("link", []) if link.get("relation") == "next"), None)
        params = None
    return by_key

def duplicates(census: dict[str, list[dict[str, Any]]]) -> int:
    return sum(1 for copies in census.values() if len(copies) > 1)

def live_copies(copies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for c in copies if not res.is_dead(c)]

@contextmanager
def log_lines(logger_name: str, level: int) -> Iterator[list[str]]:
    """Formatted log lines of ``logger_name`` (and below) at ``level`` or above, while inside."""
    lines: list[str] = []
    handler = _ListHandler(lines, level)
    logger = logging.getLogger(logger_name)
    logger.addHandler(handler)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)

@contextmanager
def log_count(logger_name: str, needle: str) -> Iterator[_CountHandler]:
    """Counts INFO-or-above records of ``logger_name`` that contain ``needle``.

    The logger is lowered to INFO meanwhile: the adapter says "a reply was lost"
    at INFO, below what the journal keeps by default.
    """
    handler = _CountHandler(needle)
    logger = logging.getLogger(logger_name)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)

class _CountHandler(logging.Handler):
    def __init__(self, needle: str) -> None:
        super().__init__(logging.INFO)
        self.needle = needle
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += self.needle in record.getMessage()

class _ListHandler(logging.Handler):
    def __init__(self, lines: list[str], level: int) -> None:
        super().__init__(level)
        self.lines = lines
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

def fork() -> int:
    """``os.fork()``, without Python 3.12's warning about other threads of the parent.

    Warnings are errors in the tests, and that one would be raised in the parent
    after the child exists, leaving it running unwatched. A fork here is safe
    with other threads about (a session's test servers): the child touches none
    of their locks, only the SQLite connection and HTTP client it opens itself.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*fork\(\) may lead to deadlocks", category=DeprecationWarning)
        return os.fork()

def child(work: Callable[[], None], report_fd: int) -> None:
    """Run ``work`` in a forked child and leave without running any of the parent's code."""
    code = 0
    try:
        work()
    except BaseException:
        os.write(report_fd, ("error: " + traceback.format_exc()[-1500:]).encode())
        code = 3
    finally:
        os._exit(code)

def read_all(fd: int) -> str:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks).decode(errors="replace")

def figures_as_dict(figures: Any) -> dict[str, Any]:
    """A figures dataclass as plain JSON types (for the bench's file)."""
    return json.loads(json.dumps(asdict(figures), default=str))

