"""``make bench-sync``: crash, outage and throughput figures of the outbox.

    .venv/bin/python -m tests.cloud.bench_sync --json bench-sync.json

Starts the real FHIR server (the same code path as the tests' fixture) in a
temporary directory, runs the scenarios of ``tests/cloud/reliability.py`` at
full size, prints a table and writes every figure as JSON. It asserts nothing
and never fails because a machine is slow; ``tests/test_sync_reliability.py``
holds the properties. It exits non-zero only if a scenario could not run.

The forking scenarios (crash loop, two lines) run first, before the fault
proxy has started any thread: a fork copies only the thread that calls it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

from tests.cloud.fault_proxy import FaultProxy
from tests.cloud.fhir_server import running_fhir_server
from tests.cloud.harness import figures_as_dict
from tests.cloud.reliability import crash_loop, drain_throughput, outage, parallel_booking

_HEADLINES = {
    "crash": "Crash: SIGKILL during booking and sync, then restart",
    "parallel": "Two lines booking at once on one database",
    "outage": "Outage: down, 500s, hangs, lost replies; then the server comes back",
    "drain": "Draining queued changes to the FHIR server",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench-sync", description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--kills", type=int, default=200)
    parser.add_argument("--bookings", type=int, default=200, help="made during the outage")
    parser.add_argument("--changes", type=int, default=1000, help="queued, then drained")
    parser.add_argument("--lines-seconds", type=float, default=10.0, help="how long the two lines book")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    # The worker's warnings (one per failed attempt in an outage) would drown the table.
    # The level is the handler's: the outage scenario lowers a logger to INFO to count lines.
    errors_only = logging.StreamHandler()
    errors_only.setLevel(logging.ERROR)
    errors_only.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.ERROR, handlers=[errors_only])

    results: dict[str, Any] = {}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-sync-") as tmp:
        work = Path(tmp)
        (work / "fhir").mkdir()
        with running_fhir_server(work / "fhir") as fhir:
            _run("crash", results, lambda: crash_loop(fhir, _fresh(work, "crash"), kills=args.kills, seed=args.seed))
            _run("parallel", results, lambda: parallel_booking(_fresh(work, "lines"), seconds=args.lines_seconds))
            with FaultProxy(fhir.base_url) as proxy:
                _run("outage", results, lambda: outage(
                    fhir, proxy, _fresh(work, "outage"), bookings=args.bookings, seed=args.seed))
            _run("drain", results, lambda: drain_throughput(fhir, _fresh(work, "drain"), changes=args.changes))

    report = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "seconds": round(time.monotonic() - started, 1),
        **{name: figures_as_dict(figures) for name, figures in results.items()},
    }
    print(_table(results, report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"figures written to {args.json}")
    return 0 if len(results) == len(_HEADLINES) else 1


def _run(name: str, results: dict[str, Any], scenario: Any) -> None:
    print(f"running {name}...", file=sys.stderr, flush=True)
    try:
        results[name] = scenario()
    except Exception:  # one broken scenario must not hide the others' figures
        logging.getLogger("bench-sync").exception("scenario %s failed", name)


def _fresh(work: Path, name: str) -> Path:
    path = work / name
    path.mkdir()
    return path


def _table(results: dict[str, Any], report: dict[str, Any]) -> str:
    machine = report["machine"]
    lines = [f"bench-sync: {machine['cpus']} CPUs, Python {machine['python']}, {report['seconds']} s in all"]
    for name, title in _HEADLINES.items():
        lines += ["", title]
        figures = results.get(name)
        if figures is None:
            lines.append("  (failed: see the error above)")
            continue
        width = max(len(f.name) for f in fields(figures))
        for f in fields(figures):
            lines.append(f"  {f.name:<{width}}  {_shown(getattr(figures, f.name))}")
    return "\n".join(lines)


def _shown(value: Any) -> str:
    if isinstance(value, tuple) and not all(isinstance(v, str) and len(v) < 20 for v in value):
        return f"{len(value)}" + (f"  (first: {str(value[0])[:200]!r})" if value else "")
    if isinstance(value, tuple):
        return ", ".join(value)
    return str(value)


if __name__ == "__main__":
    sys.exit(main())
