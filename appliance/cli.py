"""Command line: argparse only; each command hands over to the module that owns it.

Every command turns an ``ApplianceError`` into one clear line and a non-zero exit
status: no traceback reaches the person at the console.

Exit status: 0 success; 1 failure (an internal error says "run with -v"); 2 bad
usage, configuration or scenario; 130 interrupted. ``diagnose-line`` adds
3 (no modem to talk to: the port is missing, not permitted, busy, or nothing
answers AT) and 4 (the modem answered but the box cannot use it as it is: no
voice mode, unknown chipset, no SIM, no network); 0 means ready.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from appliance.errors import ApplianceError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="appliance", description="On-premise AI phone secretary.")
    parser.add_argument("--config", type=Path, help="configuration TOML (default: embedded defaults)")
    parser.add_argument("--data-dir", type=Path, help="where the store and runtime files live")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging (may show personal data)")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="answer the line (and serve the web page)")
    run.add_argument("--no-web", action="store_true", help="do not start the web process")
    run.add_argument(
        "--line",
        help="answer on this line instead of the configured one: soundcard (talk to the box with this "
        "computer's microphone), sim:usr5637, modem:/dev/ttyACM0, ... (README, \"Lines\")",
    )

    sub.add_parser("web", help="serve the local web page")

    sim = sub.add_parser("simulate", help="place one scripted test call through an in-process box")
    sim.add_argument("scenario", type=Path)
    mode = sim.add_mutually_exclusive_group()
    mode.add_argument("--text", dest="mode", action="store_const", const="text", help="inject words (default)")
    mode.add_argument("--audio", dest="mode", action="store_const", const="audio", help="real VAD, ASR and TTS")
    sim.add_argument("--json", type=Path, help="write the JSON report here")

    scen = sub.add_parser("scenarios", help="every scenario in text mode: failures, pass rate, emergency figures, turns")
    scen.add_argument("scenarios", type=Path, nargs="*", default=[Path("tests/scenarios")])
    scen.add_argument("--json", type=Path, help="write the figures and every run here")

    models = sub.add_parser("models", help="check, or assemble and verify, the model files")
    models.add_argument("action", choices=("status", "ensure"), nargs="?", default="status")

    diagnose = sub.add_parser(
        "diagnose-line",
        help="probe a modem (never off-hook, never dialling): chipset, voice, caller ID; save the transcript",
    )
    diagnose.add_argument("port", help="the modem's tty: /dev/ttyACM0, /dev/ttyUSB2, /dev/appliance-modem, ...")
    diagnose.add_argument(
        "--out", type=Path, default=Path("."), help="directory for diagnose-<chipset>-<date>.txt (default: here)"
    )

    sync = sub.add_parser(
        "sync", help="the cloud agenda: status, check the connection, push or pull now, retry dead letters"
    )
    sync.add_argument("action", choices=("status", "check", "push", "pull", "retry"), nargs="?", default="status")

    data = sub.add_parser("data", help="one patient's data: export or erase; or purge what is past its retention")
    data.add_argument("action", choices=("export", "erase", "purge"))
    data.add_argument("--last-name", help="the patient's last name (export, erase)")
    data.add_argument("--birth-date", type=_birth_date, help="YYYY-MM-DD (export, erase)")
    data.add_argument("--phone", help="also the calls and messages from this number")

    update = sub.add_parser(
        "update", help="signed A/B updates: status, install <bundle>, trial-reboot, ... (firmware/README.md)",
        add_help=False,
    )
    update.add_argument("update_args", nargs=argparse.REMAINDER, help="see `appliance update --help`")
    bench = sub.add_parser("bench", help="latency, real-time factors, load time and memory over scenarios")
    bench.add_argument("scenarios", type=Path, nargs="*", default=[Path("tests/scenarios")])
    bench.add_argument("--json", type=Path, default=Path("bench.json"))
    return parser


def _birth_date(text: str):  # type: ignore[no-untyped-def]
    from datetime import date

    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 1980-05-17") from None


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    # `appliance update` hands its arguments, options included, to its own parser.
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "update":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "update":
        args.update_args = [*extra, *args.update_args]
    from appliance.system.logs import setup_logging

    setup_logging(verbose=args.verbose)
    try:
        return _dispatch(args)
    except ApplianceError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2 if err.code in ("config-invalid", "scenario-invalid") else 1
    except KeyboardInterrupt:
        return 130
    except Exception as err:  # a bug: say so plainly; the details go to the log
        logging.getLogger("appliance").debug("unexpected failure", exc_info=True)
        print(f"error: internal error ({type(err).__name__}); run with -v for details", file=sys.stderr)
        return 1


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "diagnose-line":
        # Before the configuration: a broken config file must not stop a look at the modem.
        from appliance.line.diagnose import run as diagnose_line

        return diagnose_line(args.port, out_dir=args.out, echo=_say, complain=_complain)
    from appliance.config import load_config

    config = load_config(args.config, data_dir=args.data_dir, line=getattr(args, "line", None))
    match args.command:
        case "run":
            from appliance.runtime import run_box

            return run_box(config, with_web=not args.no_web, config_path=args.config, echo=_say)
        case "web":
            from appliance.web.app import serve

            return serve(config, config_path=args.config, echo=_say)
        case "simulate":
            from appliance.simulate.runner import run

            return run(args.scenario, mode=args.mode or "text", json_out=args.json,
                       data_dir=args.data_dir, base_config=config, echo=_say, complain=_complain)
        case "scenarios":
            from appliance.simulate.evaluation import run_scenarios_command

            return run_scenarios_command(args.scenarios, config=config, json_out=args.json, echo=_say, complain=_complain)
        case "models":
            return _models(config, args.action)
        case "update":
            from appliance.system.update import main as update_main

            # The store and the control socket the update checks are this configuration's.
            return update_main(["--data-dir", str(config.data_dir), *args.update_args])
        case "sync":
            from appliance.sync.commands import run_sync_command

            return run_sync_command(config, args.action, _say)
        case "data":
            return _data(config, args)
        case "bench":
            from appliance.bench import run_bench

            return run_bench(config, args.scenarios, args.json, config_path=args.config)
    return 2


def _say(line: str) -> None:
    print(line, flush=True)


def _complain(problem: str) -> None:
    print(f"error: {problem}", file=sys.stderr, flush=True)


def _data(config, args: argparse.Namespace) -> int:  # type: ignore[no-untyped-def]
    from appliance.clock import SystemClock
    from appliance.retention import run_data_command
    from appliance.store import Store
    from appliance.store.retention import PatientQuery

    who = None
    if args.last_name and args.birth_date:
        who = PatientQuery(last_name=args.last_name, birth_date=args.birth_date, phone=args.phone)
    clock = SystemClock()
    with Store.open(config.db_path, clock=clock) as store:
        return run_data_command(store, clock, config.retention, args.action, who, _say)


def _models(config, action: str) -> int:  # type: ignore[no-untyped-def]
    from appliance.models import ModelCatalog

    catalog = ModelCatalog(config.models.manifest_dir, config.models.models_dir)
    if action == "ensure":
        for name in catalog.names():
            path = catalog.ensure(name)
            print(f"{name:16} ok  {path}")
        return 0
    bad = 0
    for status in catalog.status():
        state = "ok" if status.ok else f"NOT READY: {status.problem}"
        print(f"{status.name:16} {status.role:4} {state}")
        bad += not status.ok
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
