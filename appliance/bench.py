"""``make bench``: figures over the public scenarios, run with the real models.

Prints per-turn latency (p50/p95), ASR real-time factor, TTS time to first
audio, model load times and peak RSS as a table, and writes the same as JSON.
A benchmark prints figures; it never fails because a machine is slow.
"""

from __future__ import annotations

import asyncio
import json
import platform
import resource
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from appliance.config import Config
from appliance.errors import ApplianceError
from appliance.llm.llama import LlamaCppModel
from appliance.llm.qualify import qualify
from appliance.models import ModelCatalog
from appliance.simulate.runner import simulate
from appliance.simulate.scenario import load_scenario
from appliance.speech.loading import load_speech


def _pct(values: list[float], pct: int) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]


def _scenario_files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        files.extend(sorted(path.glob("*.toml")) if path.is_dir() else [path])
    return files


def run_bench(config: Config, paths: list[Path], json_out: Path) -> int:
    catalog = ModelCatalog(config.models.manifest_dir, config.models.models_dir)
    started = time.perf_counter()
    speech = load_speech(config.models, config.speech, catalog)
    load_total = time.perf_counter() - started

    latencies: list[float] = []
    asr_rtf: list[float] = []
    tts_first: list[float] = []
    runs: list[dict[str, Any]] = []
    for path in _scenario_files(paths):
        scenario = load_scenario(path)
        with tempfile.TemporaryDirectory(prefix="appliance-bench-") as tmp:
            cfg = replace(config, data_dir=Path(tmp), practice=scenario.practice)
            try:
                report = asyncio.run(simulate(scenario, mode="audio", config=cfg, speech=speech))
            except ApplianceError as err:
                runs.append({"scenario": str(path), "error": str(err)})
                continue
        metrics = report["metrics"]
        latencies += metrics["latency_ms"]
        tts_first += metrics["tts_first_ms"]
        for event in report["events"]:
            if event["kind"] == "transcript" and event["audio_ms"]:
                asr_rtf.append(event["decode_ms"] / event["audio_ms"])
        runs.append({
            "scenario": str(path),
            "outcome": report["outcome"],
            "expect_passed": report["expect"]["passed"],
            "latency_ms": metrics["latency_ms"],
        })

    llm: dict[str, Any] = {}
    try:
        manifest = catalog.get(config.models.llm)
        t0 = time.perf_counter()
        model = LlamaCppModel(manifest, catalog.ensure(manifest.name))
        llm["load_s"] = time.perf_counter() - t0
        result = qualify(model)
        llm.update(model=result.model, correct=result.correct, total=result.total,
                   qualified=result.qualified, seconds=result.seconds)
    except ApplianceError as err:
        llm["error"] = str(err)

    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figures = {
        "machine": {"cpu": platform.processor() or platform.machine(), "python": platform.python_version()},
        "scenarios": runs,
        "turn_latency_ms": {"p50": _pct(latencies, 50), "p95": _pct(latencies, 95), "n": len(latencies)},
        "asr_rtf": {"p50": _pct(asr_rtf, 50), "p95": _pct(asr_rtf, 95), "n": len(asr_rtf)},
        "tts_first_audio_ms": {"p50": _pct(tts_first, 50), "p95": _pct(tts_first, 95), "n": len(tts_first)},
        "model_load_s": {**speech.load_s, "total": load_total, **({"llm": llm["load_s"]} if "load_s" in llm else {})},
        "llm_qualification": llm,
        "peak_rss_mb": peak_rss_mb,
    }
    _print_table(figures)
    json_out.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print(f"\nwritten to {json_out}")
    return 0


def _print_table(f: dict[str, Any]) -> None:
    def ms(v: float | None) -> str:
        return "—" if v is None else f"{v:8.0f} ms"

    def ratio(v: float | None) -> str:
        return "—" if v is None else f"{v:8.2f}"

    rows = [
        ("turn latency p50", ms(f["turn_latency_ms"]["p50"])),
        ("turn latency p95", ms(f["turn_latency_ms"]["p95"])),
        ("ASR real-time factor p50", ratio(f["asr_rtf"]["p50"])),
        ("ASR real-time factor p95", ratio(f["asr_rtf"]["p95"])),
        ("TTS first audio p50", ms(f["tts_first_audio_ms"]["p50"])),
        ("TTS first audio p95", ms(f["tts_first_audio_ms"]["p95"])),
    ]
    rows += [(f"load {name}", f"{seconds:8.2f} s") for name, seconds in f["model_load_s"].items()]
    rows.append(("peak RSS", f"{f['peak_rss_mb']:8.0f} MB"))
    llm = f["llm_qualification"]
    if "correct" in llm:
        verdict = "qualified" if llm["qualified"] else "not qualified"
        rows.append((f"LLM {llm['model']} intents", f"{llm['correct']}/{llm['total']} ({verdict})"))
    print(f"\n{'figure':32} value")
    print("-" * 48)
    for name, value in rows:
        print(f"{name:32} {value}")
    print("\nscenarios:")
    for run in f["scenarios"]:
        state = run.get("error") or f"{run['outcome']:10} expectations {'passed' if run['expect_passed'] else 'FAILED'}"
        print(f"  {Path(run['scenario']).name:32} {state}")
