"""Runs inside the booted image (practice-box-check.service), as root, with the
image's own Debian python3 and the standard library only.

Waits for the core to report READY, asks the web page for its first page over
HTTPS on port 443 (the shipped configuration), freezes the core to make its
watchdog fire, and writes what it saw to /run/box-test/results.json with the
journal of both units beside it; then powers the container off. The host-side
test (test_boot.py) reads the results and decides.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import time
import traceback
import urllib.error
import urllib.request
from pathlib import Path

OUT = Path("/run/box-test")
CORE = "practice-box-core.service"
WEB = "practice-box-web.service"


def show(unit: str | None, *props: str) -> dict[str, str]:
    """``systemctl show`` of a unit, or of the service manager itself (``None``)."""
    args = ["systemctl", "show", *([unit] if unit else []), *(f"--property={p}" for p in props)]
    text = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def wait_for(what: str, predicate, timeout_s: float, every_s: float = 0.5):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every_s)
    raise TimeoutError(f"{what}: not within {timeout_s:.0f} s")


def monotonic_s(value: str) -> float:
    return int(value) / 1e6


def capabilities(pid: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    raise LookupError("CapEff")


def uid_of(pid: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise LookupError("Uid")


def check_ready(results: dict) -> None:
    def active():
        state = show(CORE, "ActiveState", "SubState")
        if state["ActiveState"] == "failed":
            raise RuntimeError(f"{CORE} failed")
        return state["ActiveState"] == "active"

    wait_for("the core's READY", active, timeout_s=300)
    core = show(CORE, "ActiveEnterTimestampMonotonic", "ExecMainStartTimestampMonotonic", "StatusText",
                "MainPID", "NRestarts", "WatchdogUSec", "User")
    userspace = monotonic_s(show(None, "UserspaceTimestampMonotonic")["UserspaceTimestampMonotonic"])
    ready = monotonic_s(core["ActiveEnterTimestampMonotonic"])
    results["core"] = {
        "ready": True,
        "boot_to_ready_s": round(ready - userspace, 1),
        "start_to_ready_s": round(ready - monotonic_s(core["ExecMainStartTimestampMonotonic"]), 1),
        "status_text": core["StatusText"],
        "restarts_before": int(core["NRestarts"]),
        "watchdog": core["WatchdogUSec"],  # as systemctl prints it: "8s"
        "uid": uid_of(core["MainPID"]),
        "capabilities": capabilities(core["MainPID"]),
    }


def check_web(results: dict) -> None:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the self-signed first-boot certificate

    started = time.monotonic()

    def answer():
        try:
            with urllib.request.urlopen("https://127.0.0.1:443/setup", context=context, timeout=10) as response:
                return response.status, response.read(4096).decode("utf-8", "replace")
        except urllib.error.HTTPError as err:
            return err.code, ""
        except OSError:
            return None

    status, body = wait_for("the web page on https://127.0.0.1:443/setup", answer, timeout_s=240, every_s=2)
    web = show(WEB, "MainPID", "ActiveState")
    results["web"] = {
        "status": status,
        "html": "<html" in body.lower(),
        "answered_after_s": round(time.monotonic() - started, 1),
        "uid": uid_of(web["MainPID"]),
        "capabilities": capabilities(web["MainPID"]),
        "sees_devices": sorted(os.listdir(f"/proc/{web['MainPID']}/root/dev")),
    }


def check_watchdog(results: dict) -> None:
    before = show(CORE, "MainPID", "NRestarts")
    frozen = int(before["MainPID"])
    os.kill(frozen, signal.SIGSTOP)  # a hung call loop: alive, silent
    stopped_at = time.monotonic()

    def restarted():
        now = show(CORE, "MainPID", "NRestarts", "ActiveState", "Result")
        fresh = now["MainPID"] not in ("0", str(frozen))
        if int(now["NRestarts"]) > int(before["NRestarts"]) and now["ActiveState"] == "active" and fresh:
            return now
        return None

    after = wait_for("the watchdog's restart of the frozen core", restarted, timeout_s=240)
    journal = subprocess.run(["journalctl", "-b", "-u", CORE, "--no-pager", "-o", "cat"],
                             capture_output=True, text=True).stdout
    results["watchdog"] = {
        "restarts": int(after["NRestarts"]),
        "active_again_after_s": round(time.monotonic() - stopped_at, 1),
        "timeout_logged": "Watchdog timeout" in journal,
        "new_pid": int(after["MainPID"]) != frozen,
    }


def check_system(results: dict) -> None:
    enabled = subprocess.run(["systemctl", "is-enabled", "ModemManager.service"], capture_output=True, text=True)
    sock = Path("/var/lib/practice-box/control.sock")
    root_writable = os.access("/usr", os.W_OK) and _try_write("/usr/.probe")
    results["system"] = {
        "modemmanager": enabled.stdout.strip(),
        "control_socket": sock.is_socket(),
        "control_socket_uid": sock.stat().st_uid if sock.exists() else None,
        "root_writable": root_writable,
        "journal_on_data": any(Path("/var/log/journal").iterdir()),
        "failed_units": subprocess.run(["systemctl", "--failed", "--plain", "--no-legend"],
                                       capture_output=True, text=True).stdout.split("\n"),
    }


def check_updater(results: dict) -> None:
    """RAUC and the box's side of it, as far as a container shows them: the files,
    the two units' verdicts on an ordinary boot, and `rauc status` answered by the
    rauc service (D-Bus activated) through the real backend and autoboot.txt."""
    core = show(CORE, "ExecMainStartTimestampMonotonic")
    recover = show("practice-box-update-recover.service", "Result", "ExecMainStatus",
                   "ExecMainExitTimestampMonotonic", "UnitFileState")
    check = show("practice-box-update-check.service", "ConditionResult", "ActiveState", "UnitFileState")
    backend = Path("/usr/lib/practice-box/rauc-bootloader-backend")
    status = subprocess.run(["rauc", "status", "--output-format=json"], capture_output=True, text=True, timeout=180)
    wrapper = subprocess.run(["practice-box-update", "status"], capture_output=True, text=True, timeout=120)
    rauc_env = show("rauc.service", "Environment")["Environment"]
    results["updater"] = {
        "system_conf": Path("/etc/rauc/system.conf").read_text(),
        "keyring": Path("/etc/rauc/keyring.pem").read_text(),
        "backend_executable": os.access(backend, os.X_OK),
        "rauc_environment": rauc_env,
        "recover_result": recover["Result"],
        "recover_exit_status": int(recover["ExecMainStatus"] or -1),
        "recover_enabled": recover["UnitFileState"],
        "recover_done_before_core": 0 < int(recover["ExecMainExitTimestampMonotonic"])
                                    <= int(core["ExecMainStartTimestampMonotonic"]),
        "check_enabled": check["UnitFileState"],
        "check_condition": check["ConditionResult"],
        "check_state": check["ActiveState"],
        "rauc_status_exit": status.returncode,
        "rauc_status": json.loads(status.stdout) if status.returncode == 0 else status.stderr[-2000:],
        "wrapper_status_exit": wrapper.returncode,
        "wrapper_status": (wrapper.stdout + wrapper.stderr)[-2000:],
        "autoboot_after": Path("/boot/autoboot/autoboot.txt").read_text(),
    }


def _try_write(path: str) -> bool:
    try:
        Path(path).write_text("x")
    except OSError:
        return False
    Path(path).unlink()
    return True


def main() -> None:
    results: dict = {"errors": []}
    try:
        for check in (check_ready, check_web, check_system, check_updater, check_watchdog):
            try:
                check(results)
            except Exception:  # noqa: BLE001 - every check runs; the host test reports each failure
                results["errors"].append(f"{check.__name__}: {traceback.format_exc(limit=2)}")
    finally:
        journal = subprocess.run(["journalctl", "-b", "--no-pager", "-o", "short-monotonic",
                                  "-u", CORE, "-u", WEB, "-u", "practice-box-check.service",
                                  "-u", "practice-box-update-recover.service", "-u", "rauc.service"],
                                 capture_output=True, text=True).stdout
        (OUT / "journal.txt").write_text(journal)
        (OUT / "results.json").write_text(json.dumps(results, indent=2))
        subprocess.run(["systemctl", "--no-block", "poweroff"])


if __name__ == "__main__":
    main()
