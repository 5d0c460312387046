"""Reliability scenarios of the outbox against the real FHIR server, shared by
``tests/test_sync_reliability.py`` (which asserts the properties) and
``tests/cloud/bench_sync.py`` (which prints the figures).

Each scenario is one function that sets up its own store file and its own
Practitioners in the server (so scenarios sharing one server stay apart), plays
what happens to a practice, and returns a frozen dataclass of figures. Nothing
here asserts and nothing depends on the machine's speed: a slow machine gives
slower figures, never a failure; the caller decides what must hold.

The crash and two-line scenarios fork: the parent has imported everything
already, so a child costs a few milliseconds instead of a Python start-up, and
SIGKILL hits it at a truly random point of booking and syncing. A child never
uses its parent's SQLite connection or HTTP client (neither survives a fork);
it opens its own, as a restarted box would, and leaves with ``os._exit`` so no
code of the parent (pytest's) ever runs twice.
"""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from appliance.agenda.local import LocalAgenda
from appliance.clock import PARIS, FixedClock, SystemClock
from appliance.errors import SlotTaken
from appliance.store import Store, appointments, outbox
from appliance.store.appointments import BookingRequest
from appliance.store.inbox import unhandled_messages
from appliance.store.settings import box_id
from appliance.sync.adapters import fhir_resources as res
from appliance.sync.adapters.fhir import FhirAdapter, FhirSettings
from appliance.sync.worker import OutboxSettings, OutboxWorker
from tests.cloud.fault_proxy import DROPPED, FaultProxy
from tests.cloud.fhir_server import FhirServer
from tests.cloud.harness import (
    DEMO,
    book_at,
    book_earliest,
    child,
    cloud_census,
    drain,
    duplicates,
    fhir_settings,
    fork,
    live_copies,
    log_count,
    log_lines,
    make_practitioners,
    patient_fields,
    practice_time,
    read_all,
    split_evenly,
    wait_for_empty_backlog,
    worker_running,
)


# Compressed time: the box's defaults (2 s, doubling to 5 min) would make an
# outage test last an hour. The worker still rounds every wait up to 1 s.
_FAST_RETRIES: Final = OutboxSettings(max_attempts=100, backoff_base_s=0.1, backoff_cap_s=1.0, lease_s=30, batch=5)

# -- figures ------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class CrashFigures:
    kills: int
    killed_mid_send: int
    """Kills that left an outbox row leased: the child died between claiming a change and settling it."""
    confirmed: int
    """Bookings whose id reached the caller (written to the pipe after ``book`` returned)."""
    booked: int
    """Appointments in the store afterwards: confirmed ones, and those booked just before a kill."""
    lost: int
    """Confirmed bookings missing from the store or no longer booked."""
    duplicates: int
    """Booking keys with more than one Appointment in the cloud."""
    missing_in_cloud: int
    """Confirmed bookings with no live Appointment in the cloud once the outbox is drained."""
    backlog: int
    """Outbox rows still to send after the final drain."""
    dead: int
    child_errors: tuple[str, ...]
    """Children that died of their own (an exception), not of SIGKILL."""
    integrity: str
    final_drain_s: float
    seconds: float

@dataclass(frozen=True, kw_only=True)
class OutageFigures:
    bookings: int
    phases: tuple[str, ...]
    outage_s: float
    drain_s: float
    """From "the server is back" to an empty backlog (or to giving up)."""
    backlog: int
    lost: int
    duplicates: int
    missing_in_cloud: int
    """Bookings that are not conflicts and still have no live Appointment in the cloud."""
    conflicts_created: int
    """Appointments the staff made in the cloud at times the box had booked offline."""
    conflicts_marked: int
    """Appointments the box marked ``conflict``..."""
    conflict_messages: int
    """...and the urgent ``sync_conflict`` messages the staff got for them."""
    conflicts_misplaced: int
    """Appointments marked conflict that were not given away, or given away and not marked."""
    dead: int
    replies_dropped: int
    """Writes that reached the server and whose reply the proxy dropped."""
    replays_absorbed: int
    """Creates sent again after a lost reply that the server recognised (If-None-Exist)."""
    already_there: int
    """Outbox rows settled as ``already_there``."""
    worker_errors: tuple[str, ...]
    """Exceptions that escaped ``run_once`` or ``pull_once``."""

@dataclass(frozen=True, kw_only=True)
class DrainFigures:
    changes: int
    creates: int
    moves: int
    cancels: int
    seconds: float
    changes_per_s: float
    backlog: int
    dead: int
    duplicates: int
    mismatched: int
    """Appointments whose cloud copy does not have the store's times and status."""

@dataclass(frozen=True, kw_only=True)
class ParallelFigures:
    lines: int
    seconds: float
    bookings: int
    bookings_per_s: float
    refused: int
    """``SlotTaken``: the other line got the slot first."""
    double_bookings: int
    """Pairs of booked appointments of one practitioner that overlap."""
    unannounced: int
    """Bookings without their "created" outbox row."""
    agenda_full: bool
    child_errors: tuple[str, ...]

@dataclass(frozen=True, kw_only=True)
class DeadLetter:
    what: str
    state: str
    outcome: str | None
    last_error: str | None
    sync_state: str

@dataclass(frozen=True, kw_only=True)
class BadInputFigures:
    rows: tuple[DeadLetter, ...]
    """The garbage, teapot and vanished-slot bookings, in that order, as they ended."""
    slot_was_attached: bool
    """The vanished-slot booking did carry the cloud Slot (else it tested nothing)."""
    conflict_messages: int
    pulls_changed: tuple[int | None, ...]
    """What ``pull_once`` returned under garbage and teapot (None: the cloud could not be asked)."""
    sent_afterwards: int
    """A good booking made after all that still reached the cloud."""
    claimed_later: int
    """Rows claimed by further passes (a bad row retried forever would show here)."""
    backlog: int
    warnings: tuple[str, ...]
    """WARNING log lines of the sync package, as the journal would show them."""
    worker_errors: tuple[str, ...]

# -- the crash loop ---------------------------------------------------------------------

def crash_loop(
    fhir: FhirServer,
    tmp_dir: Path,
    *,
    kills: int = 200,
    seed: int = 1,
    min_ms: int = 20,
    max_ms: int = 400,
    drain_limit_s: float = 300.0,
) -> CrashFigures:
    """SIGKILL a box that books and syncs, ``kills`` times, restarting it on the same file.

    Each child opens the store and its adapter, takes back the leases of its
    killed predecessor (as ``OutboxWorker.run`` does at start), then loops: book
    the earliest free slot, tell the caller (the pipe), one outbox pass.
    """
    started = time.monotonic()
    rng = random.Random(seed)
    path = tmp_dir / "crash.sqlite3"
    settings = fhir_settings(fhir.base_url, make_practitioners(fhir), timeout_s=2.0)
    Store.open(path).close()  # migrated once here, not raced by the first child's kill
    confirmed: list[int] = []
    errors: list[str] = []
    mid_send = 0
    for n in range(kills):
        read_fd, write_fd = os.pipe()
        pid = fork()
        if pid == 0:  # the child: never returns
            os.close(read_fd)
            child(lambda: _crash_child(path, settings, write_fd, seed * 100_003 + n), write_fd)
        os.close(write_fd)
        try:
            time.sleep(rng.uniform(min_ms, max_ms) / 1000)
        finally:  # whatever interrupts the parent, no child is left booking on its own
            os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
        lines = read_all(read_fd).splitlines()
        confirmed += [int(line) for line in lines if line.isdigit()]
        if not (os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL):
            errors += [line for line in lines if not line.isdigit()] or [f"child exited with status {status}"]
        # Opened and closed between two forks: a connection must never cross a fork.
        with Store.open(path) as store:
            mid_send += bool(outbox.outbox_entries(store, state="leased"))

    with Store.open(path) as store, FhirAdapter(settings) as adapter:
        outbox.release_leases(store)  # the last child's, as a restart would
        worker = OutboxWorker(store, adapter, DEMO, SystemClock(), _FAST_RETRIES, rng=random.Random(seed))
        drain_s = drain(store, worker, drain_limit_s)
        with store.snapshot() as tx:
            integrity = "; ".join(str(row[0]) for row in tx.execute("PRAGMA integrity_check"))
            booked = {row["id"] for row in tx.execute("SELECT id FROM appointments WHERE status = 'booked'")}
        prefix = box_id(store)
        status = outbox.sync_status(store)
    census = cloud_census(fhir, settings.practitioners.values())
    return CrashFigures(
        kills=kills,
        killed_mid_send=mid_send,
        confirmed=len(confirmed),
        booked=len(booked),
        lost=sum(1 for appointment_id in confirmed if appointment_id not in booked),
        duplicates=duplicates(census),
        missing_in_cloud=sum(1 for i in confirmed if not live_copies(census.get(f"{prefix}/appt-{i}", []))),
        backlog=status.backlog,
        dead=status.dead,
        child_errors=tuple(errors),
        integrity=integrity,
        final_drain_s=round(drain_s, 3),
        seconds=round(time.monotonic() - started, 3),
    )

def _crash_child(path: Path, settings: FhirSettings, confirm_fd: int, seed: int) -> None:
    rng = random.Random(seed)
    clock = SystemClock()
    store = Store.open(path, clock=clock)
    adapter = FhirAdapter(settings)
    outbox.release_leases(store)
    worker = OutboxWorker(store, adapter, DEMO, clock, _FAST_RETRIES, rng=rng)
    agenda = LocalAgenda(store, DEMO, clock, awaits_cloud=True)
    while True:
        appointment_id = book_earliest(agenda, rng)
        if appointment_id is None:
            os.write(confirm_fd, b"the agenda is full\n")
            return
        # Only now may the caller hear "your appointment is booked".
        os.write(confirm_fd, f"{appointment_id}\n".encode())
        worker.run_once()

# -- the outage -----------------------------------------------------------------------------

_OUTAGE_PHASES: Final = ("down", "error500", "hang", "drop_halfway")
_OFFLINE: Final = frozenset({"down", "error500", "hang"})  # nothing the box sends reaches the server

def outage(
    fhir: FhirServer,
    proxy: FaultProxy,
    tmp_dir: Path,
    *,
    bookings: int = 200,
    phase_s: float = 2.0,
    conflicts_per_phase: int = 2,
    seed: int = 2,
    drain_limit_s: float = 600.0,
) -> OutageFigures:
    """Book through four kinds of outage while the worker keeps trying, then bring the server back.

    The worker runs in a thread beside the bookings, as in the core; it pushes
    whatever is due and pulls every second. In each offline phase the staff take
    ``conflicts_per_phase`` of the times the box has just booked, directly in the
    server: the box cannot know, and must say so when the server is back.
    """
    rng = random.Random(seed)
    practitioners = make_practitioners(fhir)
    settings = fhir_settings(proxy.base_url, practitioners, timeout_s=1.0)
    clock = SystemClock()
    booked: list[int] = []
    given_away: set[int] = set()
    errors: list[str] = []
    proxy.mode = "pass"
    dropped_before = proxy.counts[DROPPED]
    with (
        Store.open(tmp_dir / "outage.sqlite3", clock=clock) as store,
        FhirAdapter(settings) as adapter,
        log_count("appliance.sync.adapters.fhir", "a reply was lost") as replays,
    ):
        worker = OutboxWorker(store, adapter, DEMO, clock, _FAST_RETRIES, rng=random.Random(seed))
        agenda = LocalAgenda(store, DEMO, clock, awaits_cloud=True)
        with worker_running(worker, errors, pull_every_s=1.0):
            outage_started = time.monotonic()
            for phase, count in zip(_OUTAGE_PHASES, split_evenly(bookings, len(_OUTAGE_PHASES))):
                proxy.mode = phase  # type: ignore[assignment]
                taken = set(rng.sample(range(count), min(conflicts_per_phase, count))) if phase in _OFFLINE else set()
                for i in range(count):
                    appointment_id = book_earliest(agenda, rng)
                    if appointment_id is None:
                        break
                    booked.append(appointment_id)
                    if i in taken:
                        _staff_take(fhir, practitioners, store, appointment_id)
                        given_away.add(appointment_id)
                    time.sleep(phase_s / max(count, 1))
            outage_s = time.monotonic() - outage_started
            proxy.mode = "pass"
            back = time.monotonic()
            backlog = wait_for_empty_backlog(store, drain_limit_s)
            drain_s = time.monotonic() - back
        with store.snapshot() as tx:
            states = {row["id"]: (row["status"], row["sync_state"]) for row in tx.execute(
                "SELECT id, status, sync_state FROM appointments")}
            already_there = tx.one("SELECT count(*) AS n FROM outbox WHERE outcome = 'already_there'")["n"]
        marked = {i for i, (_, sync_state) in states.items() if sync_state == "conflict"}
        messages = [m for m in unhandled_messages(store) if m.category == "sync_conflict" and m.urgency == "urgent"]
        prefix = box_id(store)
        status = outbox.sync_status(store)
    census = cloud_census(fhir, practitioners.values())
    return OutageFigures(
        bookings=len(booked),
        phases=_OUTAGE_PHASES,
        outage_s=round(outage_s, 3),
        drain_s=round(drain_s, 3),
        backlog=backlog,
        lost=sum(1 for i in booked if states.get(i, ("", ""))[0] != "booked"),
        duplicates=duplicates(census),
        missing_in_cloud=sum(
            1 for i in booked if i not in given_away and not live_copies(census.get(f"{prefix}/appt-{i}", []))
        ),
        conflicts_created=len(given_away),
        conflicts_marked=len(marked),
        conflict_messages=len({m.patient.get("appointment_id") for m in messages} & given_away),
        conflicts_misplaced=len(marked ^ given_away),
        dead=status.dead,
        replies_dropped=proxy.counts[DROPPED] - dropped_before,
        replays_absorbed=replays.count,
        already_there=int(already_there),
        worker_errors=tuple(errors),
    )

def _staff_take(fhir: FhirServer, practitioners: dict[str, str], store: Store, appointment_id: int) -> None:
    """The reception desk books someone else at the time the box just gave away offline."""
    mine = appointments.get_appointment(store, appointment_id, tz=PARIS)
    assert mine is not None
    fhir.appointment(practitioners[mine.practitioner_id], mine.start, mine.end)

# -- throughput ---------------------------------------------------------------------------------

_DRAIN_DAY0: Final = date(2031, 1, 6)  # a Monday, far from the other scenarios' days

def drain_throughput(fhir: FhirServer, tmp_dir: Path, *, changes: int = 1000, drain_limit_s: float = 600.0) -> DrainFigures:
    """``changes`` outbox rows (creates, then a tenth moved and a tenth cancelled) drained to the server."""
    moves = cancels = changes // 10
    creates = changes - moves - cancels
    practitioners = make_practitioners(fhir)
    settings = fhir_settings(fhir.base_url, practitioners, timeout_s=10.0)
    clock = SystemClock()
    with Store.open(tmp_dir / "drain.sqlite3", clock=clock) as store, FhirAdapter(settings) as adapter:
        ids = [appointments.book(store, DEMO, _request(n)).id for n in range(creates)]
        for n, appointment_id in enumerate(ids[:moves]):
            start = _drain_start(n) + timedelta(days=364)  # same weekday, a year on: free
            appointments.move(store, appointment_id, start, start + timedelta(minutes=20))
        # Half the cancellations hit moved appointments (created, moved, cancelled: in order).
        for appointment_id in ids[moves - cancels // 2: moves] + ids[moves: moves + cancels - cancels // 2]:
            appointments.cancel(store, appointment_id)
        queued = outbox.sync_status(store).backlog
        worker = OutboxWorker(store, adapter, DEMO, clock, OutboxSettings(batch=50), rng=random.Random(3))
        seconds = drain(store, worker, drain_limit_s)
        local = {a.id: a for a in appointments.appointments_between(
            store, practice_time(_DRAIN_DAY0, 0), practice_time(_DRAIN_DAY0 + timedelta(days=800), 0), include_cancelled=True)}
        prefix = box_id(store)
        status = outbox.sync_status(store)
    census = cloud_census(fhir, practitioners.values())
    mismatched = 0
    for appointment_id, appointment in local.items():
        copies = census.get(f"{prefix}/appt-{appointment_id}", [])
        live = live_copies(copies)
        if appointment.status == "cancelled":
            mismatched += bool(live)
        elif len(live) != 1 or res.interval(live[0], "cloud") != (appointment.start, appointment.end):
            mismatched += 1
    return DrainFigures(
        changes=queued,
        creates=creates,
        moves=moves,
        cancels=cancels,
        seconds=round(seconds, 3),
        changes_per_s=round(queued / seconds, 1) if seconds > 0 else 0.0,
        backlog=status.backlog,
        dead=status.dead,
        duplicates=duplicates(census),
        mismatched=mismatched + (len(ids) - len(local)),
    )

def _drain_start(n: int) -> datetime:
    """The n-th create's start: mornings of weekdays from ``_DRAIN_DAY0``, martin and bernard in turn."""
    per_day = 2 * 12  # two practitioners, twelve 20-minute visits from 8:30 to 12:30
    day, k = divmod(n, per_day)
    weeks, weekday = divmod(day, 5)
    return practice_time(_DRAIN_DAY0 + timedelta(days=7 * weeks + weekday), 8 * 60 + 30 + 20 * (k // 2))

def _request(n: int) -> BookingRequest:
    start = _drain_start(n)
    return BookingRequest(
        practitioner_id=("martin", "bernard")[n % 2], reason_id="consultation",
        start=start, end=start + timedelta(minutes=20), **patient_fields(random.Random(n)),
    )

def parallel_booking(tmp_dir: Path, *, seconds: float = 3.0, lines: int = 2) -> ParallelFigures:
    """``lines`` processes booking the earliest free slot, all at once, on one file.

    Each has its own connection, as two phone lines (or a line and the web page)
    in separate processes would; both ask for the same earliest slot, so every
    booking is a race that one of them must lose cleanly.
    """
    path = tmp_dir / "lines.sqlite3"
    now = datetime(2031, 3, 3, 7, 0, tzinfo=PARIS)  # a Monday morning: the day is free
    Store.open(path, clock=FixedClock(now)).close()
    go_read, go_write = os.pipe()
    children: list[tuple[int, int]] = []
    for n in range(lines):
        read_fd, write_fd = os.pipe()
        pid = fork()
        if pid == 0:
            os.close(read_fd)
            os.close(go_write)
            child(lambda: _line_child(path, now, go_read, write_fd, seconds, n), write_fd)
        os.close(write_fd)
        children.append((pid, read_fd))
    os.close(go_read)
    os.write(go_write, b"g" * lines)  # every line opened its store: start together
    os.close(go_write)
    reports: list[dict[str, Any]] = []
    errors: list[str] = []
    for pid, read_fd in children:
        output = read_all(read_fd)  # EOF when the child is done
        os.waitpid(pid, 0)
        try:
            reports.append(json.loads(output))
        except ValueError:
            errors.append(output.strip() or f"line {pid} said nothing")
    with Store.open(path, clock=FixedClock(now)) as store, store.snapshot() as tx:
        overlapping = tx.one(
            "SELECT count(*) AS n FROM appointments a JOIN appointments b"
            " ON a.practitioner_id = b.practitioner_id AND a.id < b.id"
            " AND a.start_utc < b.end_utc AND b.start_utc < a.end_utc"
            " WHERE a.status = 'booked' AND b.status = 'booked'"
        )["n"]
        unannounced = tx.one(
            "SELECT count(*) AS n FROM appointments a WHERE NOT EXISTS (SELECT 1 FROM outbox o"
            " WHERE o.kind = 'appointment.created' AND o.aggregate_key = 'appt-' || a.id)"
        )["n"]
    booked = sum(r["booked"] for r in reports)
    elapsed = max((r["seconds"] for r in reports), default=0.0)
    return ParallelFigures(
        lines=lines,
        seconds=round(elapsed, 3),
        bookings=booked,
        bookings_per_s=round(booked / elapsed, 1) if elapsed > 0 else 0.0,
        refused=sum(r["refused"] for r in reports),
        double_bookings=int(overlapping),
        unannounced=int(unannounced),
        agenda_full=any(r["full"] for r in reports),
        child_errors=tuple(errors),
    )

def _line_child(path: Path, now: datetime, go_fd: int, report_fd: int, seconds: float, line: int) -> None:
    rng = random.Random(line)
    store = Store.open(path, clock=FixedClock(now))
    agenda = LocalAgenda(store, DEMO, store.clock)
    os.read(go_fd, 1)
    booked = refused = 0
    full = False
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        try:
            if book_earliest(agenda, rng, reason_id="consultation", line=f"sim:{line + 1}") is None:
                full = True
                break
            booked += 1
        except SlotTaken:
            refused += 1
    report = {"booked": booked, "refused": refused, "full": full, "seconds": time.monotonic() - started}
    os.write(report_fd, json.dumps(report).encode())

# -- bad input from the cloud ---------------------------------------------------------------

def bad_cloud_input(fhir: FhirServer, proxy: FaultProxy, tmp_dir: Path) -> BadInputFigures:
    """A reply that is not JSON, a status no FHIR server sends, a Slot deleted under a booking.

    The first two are refusals for good (dead letters); the third is the cloud
    having given the time away, so a conflict the staff are told about. Either
    way the row stops being sent, and the worker goes on with the next one.
    """
    practitioners = make_practitioners(fhir)
    schedule = fhir.schedule(practitioners["martin"])
    clock = FixedClock(datetime(2031, 2, 3, 8, 0, tzinfo=PARIS))  # a Monday
    tuesday = practice_time(date(2031, 2, 4), 0)
    [slot] = fhir.free_slots(schedule, tuesday.replace(hour=9), 1, minutes=20)
    settings = FhirSettings(
        base_url=proxy.base_url, practitioners=practitioners, schedules={"martin": schedule}, timeout_s=2.0
    )
    errors: list[str] = []
    pulls: list[int] = []
    with (
        Store.open(tmp_dir / "bad-input.sqlite3", clock=clock) as store,
        FhirAdapter(settings) as adapter,
        log_lines("appliance.sync", logging.WARNING) as warnings,
    ):
        worker = OutboxWorker(store, adapter, DEMO, clock, OutboxSettings(), rng=random.Random(4))

        def attempt(work: Callable[[], Any]) -> Any:
            try:
                return work()
            except Exception as err:  # the point: nothing may escape
                errors.append(f"{type(err).__name__}: {err}")
                return None

        proxy.mode = "pass"
        attempt(worker.pull_once)  # the box learns of the free Slot
        ids: list[int] = []
        for mode, hour in (("garbage", 10), ("teapot", 11)):
            proxy.mode = mode  # type: ignore[assignment]
            ids.append(book_at(store, tuesday.replace(hour=hour)))
            pulls.append(attempt(worker.pull_once))
            attempt(worker.run_once)
        proxy.mode = "pass"
        ids.append(book_at(store, tuesday.replace(hour=9)))  # exactly the Slot: the booking carries it
        [entry] = [e for e in outbox.outbox_entries(store) if e.payload["id"] == ids[-1]]
        attached = (entry.payload.get("remote_slot") or {}).get("remote_id") == f"Slot/{slot['id']}"
        fhir.delete(f"Slot/{slot['id']}")
        attempt(worker.run_once)
        book_at(store, tuesday.replace(hour=14))
        sent = getattr(attempt(worker.run_once), "sent", 0)
        claimed_later = sum(getattr(attempt(worker.run_once), "claimed", 0) for _ in range(3))
        rows = {e.payload["id"]: e for e in outbox.outbox_entries(store)}
        letters = tuple(
            DeadLetter(
                what=what, state=rows[i].state, outcome=rows[i].outcome, last_error=rows[i].last_error,
                sync_state=getattr(appointments.get_appointment(store, i, tz=PARIS), "sync_state", "missing"),
            )
            for what, i in zip(("garbage", "teapot", "vanished slot"), ids)
        )
        messages = [m for m in unhandled_messages(store) if m.category == "sync_conflict"]
        backlog = outbox.sync_status(store).backlog
    return BadInputFigures(
        rows=letters,
        slot_was_attached=attached,
        conflict_messages=len(messages),
        pulls_changed=tuple(pulls),
        sent_afterwards=sent,
        claimed_later=claimed_later,
        backlog=backlog,
        warnings=tuple(warnings),
        worker_errors=tuple(errors),
    )
