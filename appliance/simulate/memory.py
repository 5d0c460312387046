"""Peak memory of a process holding every model the box uses, as the core would.

``make bench`` runs this in a fresh process: the bench's own process also holds
its scenarios' audio, reports and synthesized utterances, which the box never
does, so its peak would overstate the box. Each model is loaded as the core
loads it and used once (a turn recognized, a sentence synthesized, a few tokens
generated): buffers allocated on first use count too.

    python -m appliance.simulate.memory [--config box.toml]   → one JSON line
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from appliance.audio import MODEL_RATE_HZ
from appliance.config import load_config
from appliance.errors import ApplianceError


def _rss_mb() -> dict[str, float]:
    """Resident memory now and at its peak, from the kernel's own counters.

    VmHWM, not ``getrusage``'s ru_maxrss: the latter survives ``exec``, so a process
    started by a big one (the bench, pytest) would report its parent's peak.
    """
    figures = {"VmRSS:": 0.0, "VmHWM:": 0.0}
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            key = line.split(maxsplit=1)[0] if line.strip() else ""
            if key in figures:
                figures[key] = int(line.split()[1]) / 1024
    return {"current_mb": round(figures["VmRSS:"]), "peak_mb": round(figures["VmHWM:"])}


def measure(config_path: Path | None) -> dict[str, Any]:
    from appliance.models.catalog import ModelCatalog
    from appliance.speech.loading import load_speech

    config = load_config(config_path)
    steps: dict[str, Any] = {"start": _rss_mb()}
    speech = load_speech(config.models, config.speech)
    rng = np.random.default_rng(0)
    speech.recognizer.transcribe((rng.standard_normal(MODEL_RATE_HZ * 5) * 0.05).astype(np.float32))
    speech.synthesizer.synthesize("Bonjour, vous êtes bien au cabinet médical. Que puis-je faire pour vous ?")
    steps["speech"] = _rss_mb()
    models = sorted(name for name in speech.load_s if name != "warm_up")
    if config.llm.model:
        from appliance.llm.llama import LlamaCppModel

        catalog = ModelCatalog(config.models.manifest_dir, config.models.models_dir)
        manifest = catalog.get(config.llm.model)
        llm = LlamaCppModel(manifest, catalog.ensure(manifest.name))
        llm.complete("Le patient veut un rendez-vous. Intention :", max_tokens=8, timeout_s=60.0)
        steps["llm"] = _rss_mb()
        models.append(config.llm.model)
    return {"models": models, "steps": steps, "peak_rss_mb": steps[list(steps)[-1]]["peak_mb"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m appliance.simulate.memory")
    parser.add_argument("--config", type=Path)
    args = parser.parse_args(argv)
    try:
        print(json.dumps(measure(args.config)))
    except ApplianceError as err:
        print(json.dumps({"error": str(err)}))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
