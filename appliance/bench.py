"""``make bench``: figures over the public scenarios, run with the real models.

Prints per-turn latency (p50/p95), ASR real-time factor, TTS time to first
audio, model load times and peak RSS as a table, and writes the same as JSON.
Then the secretary's figures (``appliance.simulate.evaluation``): the pass rate
of every scenario in text mode, emergency recall, false alarms and turns to a
booking, and the pass rate in audio mode of the ``audio = true`` subset (the
calls the latency figures come from; all of them would take hours of model time).
Then recognition accuracy (``appliance.simulate.speech_accuracy``): word error rate clean and
on the telephone, critical values (dates, times, names, numbers) wrong before
and after the box's confirmation step, ASR real-time factor.
A benchmark prints figures; it never fails because a machine is slow.
"""

from __future__ import annotations

import asyncio
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from appliance.agenda.practice import resolve_practice
from appliance.audio import LINE_RATE_HZ
from appliance.audio.framing import float32_to_int16
from appliance.audio.resample import resample
from appliance.bargein import BargeInSettings, EchoCase, reaction_figures
from appliance.app import Appliance
from appliance.config import Config
from appliance.errors import ApplianceError
from appliance.llm.llama import LlamaCppModel
from appliance.llm.qualify import qualify
from appliance.models import ModelCatalog
from appliance.simulate.evaluation import ScenarioRun, audio_subset, run_of, run_scenario, summary_lines
from appliance.simulate.evaluation import figures as figures_of
from appliance.simulate.report import percentile
from appliance.simulate.runner import simulate
from appliance.simulate.scenario import load_scenario
from appliance.speech.loading import SpeechModels, load_speech
from appliance.speech.prompt_cache import CachedSynthesizer, PromptCache, prompt_texts
from appliance.speech.tts import EspeakSynthesizer, Synthesizer, split_for_speech
from appliance.simulate.speech_accuracy import evaluate as evaluate_speech
from appliance.simulate.speech_accuracy import summary_rows as speech_rows
from appliance.turns import AudioSpeaker



def _scenario_files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        files.extend(sorted(path.glob("*.toml")) if path.is_dir() else [path])
    return files


def run_bench(config: Config, paths: list[Path], json_out: Path, *, config_path: Path | None = None) -> int:
    # Text mode first: every scenario, milliseconds each, no model involved.
    text_runs = [run_scenario(path, mode="text", config=config) for path in _scenario_files(paths)]
    audio_runs: list[ScenarioRun] = []
    catalog = ModelCatalog(config.models.manifest_dir, config.models.models_dir)
    started = time.perf_counter()
    speech = load_speech(config.models, config.speech, catalog)
    load_total = time.perf_counter() - started

    latencies: list[float] = []
    first_sounds: list[float] = []
    asr_rtf: list[float] = []
    tts_first: list[float] = []
    runs: list[dict[str, Any]] = []
    for path in audio_subset(paths):
        scenario = load_scenario(path)
        with tempfile.TemporaryDirectory(prefix="appliance-bench-") as tmp:
            cfg = replace(config, data_dir=Path(tmp), practice=scenario.practice)
            call_started = time.perf_counter()
            try:
                report = asyncio.run(simulate(scenario, mode="audio", config=cfg, speech=speech))
            except ApplianceError as err:
                runs.append({"scenario": str(path), "error": str(err)})
                audio_runs.append(run_of(scenario, None, failures=(f"the box failed: {err}",)))
                continue
        audio_runs.append(run_of(scenario, report, seconds=time.perf_counter() - call_started))
        metrics = report["metrics"]
        latencies += metrics["latency_ms"]
        first_sounds += metrics["first_sound_ms"]
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

    prompt_tts = _prompt_first_audio(config, speech)
    barge_in = _barge_in(speech)
    accuracy = _speech_accuracy(config, speech)
    llm = _qualify_local_llm(config, catalog)

    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    box_memory = _box_memory(config_path)
    figures = {
        "machine": {"cpu": platform.processor() or platform.machine(), "python": platform.python_version()},
        "scenarios": runs,
        "turn_latency_ms": {"p50": percentile(latencies, 50), "p95": percentile(latencies, 95), "n": len(latencies)},
        "first_sound_ms": {"p50": percentile(first_sounds, 50), "p95": percentile(first_sounds, 95),
                           "n": len(first_sounds)},
        "asr_rtf": {"p50": percentile(asr_rtf, 50), "p95": percentile(asr_rtf, 95), "n": len(asr_rtf)},
        "tts_first_audio_ms": {"p50": percentile(tts_first, 50), "p95": percentile(tts_first, 95), "n": len(tts_first)},
        "tts_first_audio_prompts_ms": prompt_tts,
        "barge_in": barge_in,
        "model_load_s": {**speech.load_s, "total": load_total, **({"llm": llm["load_s"]} if "load_s" in llm else {})},
        "llm_qualification": llm,
        "speech_accuracy": accuracy,
        "peak_rss_mb": peak_rss_mb,
        "box_memory": box_memory,
        "secretary": {
            "text": figures_of(text_runs, "text").to_json(),
            "audio": figures_of(audio_runs, "audio").to_json(),
            "text_failures": {r.path: list(r.failures) for r in text_runs if not r.passed},
            "audio_failures": {r.path: list(r.failures) for r in audio_runs if not r.passed},
            "audio_seconds": round(sum(r.seconds for r in audio_runs), 1),
        },
    }
    _print_table(figures)
    _print_secretary(text_runs, audio_runs)
    _print_speech_accuracy(accuracy)
    json_out.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print(f"\nwritten to {json_out}")
    return 0


def _prompt_first_audio(config: Config, speech: SpeechModels, sample: int = 30) -> dict[str, Any]:
    """TTS time to first audio of the replies the prompt cache prepares, without then with it.

    The first piece of ``sample`` replies spread over the demo practice's prompts
    (greeting, questions, offers, confirmations), each said through ``AudioSpeaker``
    (worker thread, resampling, first 20 ms frame): once from the model, which
    stores it, then again from the cache (a file read).
    """
    with tempfile.TemporaryDirectory(prefix="appliance-bench-prompts-") as tmp:
        box = Appliance(Config(data_dir=Path(tmp) / "box"))
        try:
            texts = prompt_texts(box.practice, box.agenda, box.clock.now())
        finally:
            box.close()
        firsts = list(dict.fromkeys(split_for_speech(text)[0] for text in texts))
        pieces = firsts[:: max(1, len(firsts) // sample)][:sample]
        prompts = CachedSynthesizer(speech.synthesizer, PromptCache(Path(tmp) / "cache", max_bytes=2**30),
                                    voice=config.speech.voice, model="bench")
        prompts.expect(pieces)
        uncached = [_first_audio_ms(prompts, piece) for piece in pieces]
        cached = [_first_audio_ms(prompts, piece) for piece in pieces]
    return {kind: {"p50": percentile(values, 50), "p95": percentile(values, 95), "n": len(values)}
            for kind, values in (("uncached", uncached), ("cached", cached))}


def _first_audio_ms(synthesizer: Synthesizer, text: str) -> float:
    class Drain:  # a line that takes every frame at once
        async def play(self, frames: Any) -> int:
            return len([frame async for frame in frames])

        def discard_received(self) -> int:
            return 0

    first: list[float] = []
    started = time.perf_counter()
    asyncio.run(AudioSpeaker(Drain(), synthesizer).say(text, lambda: first.append(time.perf_counter())))  # type: ignore[arg-type]
    return (first[0] - started) * 1000


def _speech_accuracy(config: Config, speech: SpeechModels) -> dict[str, Any]:
    """Recognition accuracy on tests/speech/utterances.toml (synthesized speech cached
    under ``<data_dir>/bench/speech``, so a rerun skips the synthesis)."""
    try:
        return evaluate_speech(speech, config, resolve_practice(config.practice))
    except ApplianceError as err:
        return {"error": str(err)}


def _print_speech_accuracy(accuracy: dict[str, Any]) -> None:
    print("\nrecognition accuracy (tests/speech/utterances.toml, synthetic caller voice):")
    if "error" in accuracy:
        print(f"  {accuracy['error']}")
        return
    for name, value in speech_rows(accuracy):
        print(f"  {name:32} {value}")


def _print_secretary(text_runs: list[ScenarioRun], audio_runs: list[ScenarioRun]) -> None:
    print(f"\nsecretary, text mode ({len(text_runs)} scenarios):")
    for line in summary_lines(figures_of(text_runs, "text")):
        print(f"  {line}")
    for run in text_runs:
        if not run.passed:
            print(f"  {Path(run.path).name:44} {'pending' if run.pending else 'FAILED'}: {run.failures[0] if run.failures else ''}"[:160])
    print(f"secretary, audio mode ({len(audio_runs)} scenarios marked audio = true, "
          f"{sum(r.seconds for r in audio_runs):.0f} s):")
    for line in summary_lines(figures_of(audio_runs, "audio")):
        print(f"  {line}")


def _barge_in(speech: SpeechModels) -> dict[str, Any]:
    """Barge-in on a full-duplex line, in audio time: the box's reply and its echo
    (delays 0-300 ms, 12-30 dB down), a caller 0-12 dB louder than the echo talking
    over it, and the same echo alone, which must never stop the box."""
    def line_voice(text: str, rate_wpm: int) -> np.ndarray:
        espeak = EspeakSynthesizer(voice="fr-fr", rate_wpm=rate_wpm)
        return float32_to_int16(resample(espeak.synthesize(text), espeak.sample_rate, LINE_RATE_HZ))

    box = line_voice("Le docteur Martin peut vous recevoir mardi à neuf heures, mercredi à dix heures "
                     "trente, ou jeudi à quatorze heures. Lequel vous convient le mieux ?", 150)
    caller = line_voice("Oui bonjour, mardi matin ce serait parfait.", 170)
    echo_alone = [EchoCase(delay, loss) for delay in (0, 60, 150, 300) for loss in (6, 12, 20, 30)]
    callers = [EchoCase(delay, loss, level, at) for delay in (0, 60, 150, 300) for loss in (12, 20, 30)
               for level in (-18, -24) for at in (0.6, 2.5)]
    vad = speech.new_vad(threshold=BargeInSettings().vad_threshold)
    figures = reaction_figures(box, caller, echo_alone + callers, vad)
    return {"p50_ms": figures.p50_ms, "max_ms": figures.max_ms, "callers": len(figures.reactions_ms),
            "missed": figures.missed, "false_stops": figures.false_stops, "echo_alone": figures.echo_cases}


def _box_memory(config_path: Path | None) -> dict[str, Any]:
    """Peak RSS of a fresh process holding every model, as the core does (appliance.simulate.memory)."""
    command = [sys.executable, "-m", "appliance.simulate.memory", *(["--config", str(config_path)] if config_path else [])]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (subprocess.TimeoutExpired, json.JSONDecodeError, IndexError) as err:
        return {"error": f"memory measurement failed: {type(err).__name__}"}


def _qualify_local_llm(config: Config, catalog: ModelCatalog) -> dict[str, Any]:
    """The configured local model on the whole evaluation set (no early stop: the
    full score is the figure), with the time limits it would have on calls."""
    llm: dict[str, Any] = {}
    if not config.llm.model:
        return llm
    try:
        manifest = catalog.get(config.llm.model)
        t0 = time.perf_counter()
        model = LlamaCppModel(manifest, catalog.ensure(manifest.name))
        llm["load_s"] = time.perf_counter() - t0
        result = qualify(model, config.llm)
    except ApplianceError as err:
        llm["error"] = str(err)
        return llm
    llm["model"] = result.model
    llm["qualified"] = result.qualified
    for task in (result.intent, result.summary):
        llm[task.task] = {"correct": task.correct, "total": task.total, "threshold": task.threshold,
                          "qualified": task.qualified, "seconds": round(task.seconds, 2)}
    return llm


def _print_table(f: dict[str, Any]) -> None:
    def ms(v: float | None) -> str:
        return "—" if v is None else f"{v:8.0f} ms"

    def ratio(v: float | None) -> str:
        return "—" if v is None else f"{v:8.2f}"

    rows = [
        ("turn latency p50", ms(f["turn_latency_ms"]["p50"])),
        ("turn latency p95", ms(f["turn_latency_ms"]["p95"])),
        ("first sound p50 (\"D'accord…\" or reply)", ms(f["first_sound_ms"]["p50"])),
        ("first sound p95", ms(f["first_sound_ms"]["p95"])),
        ("ASR real-time factor p50", ratio(f["asr_rtf"]["p50"])),
        ("ASR real-time factor p95", ratio(f["asr_rtf"]["p95"])),
        ("TTS first audio p50", ms(f["tts_first_audio_ms"]["p50"])),
        ("TTS first audio p95", ms(f["tts_first_audio_ms"]["p95"])),
    ]
    for kind in ("uncached", "cached"):
        rows += [(f"TTS first audio {kind} p{p}", ms(f["tts_first_audio_prompts_ms"][kind][f"p{p}"])) for p in (50, 95)]
    b = f["barge_in"]
    rows.append(("barge-in reaction p50 / max", f"{ms(b['p50_ms'])} / {b['max_ms']} ms over {b['callers']} callers"))
    rows.append(("barge-in false stops, missed", f"{b['false_stops']}/{b['echo_alone']} echo-alone lines, {b['missed']} missed"))
    rows += [(f"load {name}", f"{seconds:8.2f} s") for name, seconds in f["model_load_s"].items()]
    memory = f["box_memory"]
    if "peak_rss_mb" in memory:
        rows.append(("peak RSS, every model loaded", f"{memory['peak_rss_mb']:8.0f} MB ({', '.join(memory['models'])})"))
    else:
        rows.append(("peak RSS, every model loaded", memory.get("error", "not measured")[:60]))
    rows.append(("peak RSS of this bench process", f"{f['peak_rss_mb']:8.0f} MB"))
    llm = f["llm_qualification"]
    for task, label in (("intent", "intents"), ("summary", "summaries")):
        if task in llm:
            t = llm[task]
            verdict = "qualified" if t["qualified"] else "not qualified"
            rows.append((f"LLM {llm['model']} {label}",
                         f"{t['correct']}/{t['total']} ({verdict}) in {t['seconds']:.0f} s"))
    if "error" in llm:
        rows.append(("LLM qualification", llm["error"][:60]))
    print(f"\n{'figure':32} value")
    print("-" * 48)
    for name, value in rows:
        print(f"{name:32} {value}")
    print("\nscenarios:")
    for run in f["scenarios"]:
        state = run.get("error") or f"{run['outcome']:10} expectations {'passed' if run['expect_passed'] else 'FAILED'}"
        print(f"  {Path(run['scenario']).name:32} {state}")
