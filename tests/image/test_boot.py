"""The built arm64 image boots, read-only, under systemd-nspawn + qemu-user, and
its units do what image/README.md says: the core reaches READY, a frozen core is
killed by its watchdog and comes back, the setup page answers over HTTPS on 443.

Run by ``make test-image`` (APPLIANCE_IMAGE_TEST=<the built root file system>),
as root. The root file system is booted with ``--read-only``, which proves the
box runs on a read-only root and leaves the build untouched; the data partition
is a scratch copy of the one the build prepared. The checks run inside, in
practice-box-check.service (inside_check.py), which writes results.json and
powers the container off; this side reads the results and decides.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
BOOT_TIMEOUT_S = 900  # boot + the checks' own waits, under emulation on 2 cores
TEST_WATCHDOG_S = 8
"""The core's WatchdogSec for this test only (30 s on the device): the test waits
one period after freezing the core, not half a minute."""

CHECK_UNIT = """\
[Unit]
Description=Practice box image test: the checks (tests/image/inside_check.py)
After=practice-box-core.service practice-box-web.service

[Service]
Type=oneshot
ExecStart=/usr/bin/python3 /run/box-test-in/inside_check.py
StandardOutput=journal
"""


@pytest.fixture(scope="module")
def boot(tmp_path_factory: pytest.TempPathFactory) -> dict:
    rootfs = Path(os.environ["APPLIANCE_IMAGE_TEST"]).resolve()
    if not (rootfs / "opt" / "practice-box" / "bin" / "appliance").exists():
        pytest.fail(f"{rootfs} is not a built image root file system: run `make image` first")
    if os.geteuid() != 0:
        pytest.fail("booting the image needs root (systemd-nspawn)")
    nspawn = shutil.which("systemd-nspawn")
    if nspawn is None:
        pytest.fail("systemd-nspawn is missing: apt-get install systemd-container")
    work = tmp_path_factory.mktemp("boot")
    # The data partition as the build prepared it (ownership kept: cp -a as root).
    subprocess.run(["cp", "-a", str(rootfs.parent / "data"), str(work / "data")], check=True)
    inside = work / "in"
    inside.mkdir()
    shutil.copy(HERE / "inside_check.py", inside / "inside_check.py")
    units = work / "units"
    (units / "practice-box-core.service.d").mkdir(parents=True)
    (units / "practice-box-core.service.d" / "test-watchdog.conf").write_text(
        f"[Service]\nWatchdogSec={TEST_WATCHDOG_S}s\n")
    (units / "practice-box-check.service").write_text(CHECK_UNIT)
    out = work / "out"
    out.mkdir()
    command = [
        nspawn, "--register=no", "--keep-unit", "-q", "-b", "-D", str(rootfs),
        "--read-only",  # the device's root is read-only: so is the test's
        f"--bind={work / 'data'}:/data",
        f"--bind={out}:/run/box-test",
        f"--bind-ro={inside}:/run/box-test-in",
        # /run/systemd/system: runtime units, above the image's own in systemd's search path.
        f"--bind-ro={units / 'practice-box-core.service.d'}:/run/systemd/system/practice-box-core.service.d",
        f"--bind-ro={units / 'practice-box-check.service'}:/run/systemd/system/practice-box-check.service",
        "systemd.wants=practice-box-check.service",
    ]
    started = time.monotonic()
    try:
        console = subprocess.run(command, capture_output=True, text=True, timeout=BOOT_TIMEOUT_S)
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"the container did not power off within {BOOT_TIMEOUT_S} s; its console:\n"
                    f"{(err.stdout or b'')[-4000:]!r}")
    elapsed = time.monotonic() - started
    results_file = out / "results.json"
    if not results_file.exists():
        pytest.fail(f"the checks wrote no results (nspawn exit {console.returncode}); console:\n"
                    f"{console.stdout[-4000:]}\n{console.stderr[-2000:]}")
    results = json.loads(results_file.read_text())
    results["boot_to_poweroff_s"] = round(elapsed, 1)
    journal = (out / "journal.txt").read_text()
    # Kept for a look after a failure: the figures are printed at the end of the run.
    keep = rootfs.parent / "test-image"
    shutil.rmtree(keep, ignore_errors=True)
    shutil.copytree(out, keep)
    print(f"\nimage test figures: {json.dumps({k: v for k, v in results.items() if k != 'errors'}, indent=1)}")
    return {"results": results, "journal": journal}


def test_every_check_inside_the_image_ran(boot: dict) -> None:
    assert boot["results"]["errors"] == [], "\n".join(boot["results"]["errors"]) + "\n" + boot["journal"][-3000:]


def test_the_core_reaches_ready_as_its_own_unprivileged_user(boot: dict) -> None:
    core = boot["results"]["core"]
    assert core["ready"] is True
    assert core["status_text"].startswith("answering on ")  # sent with READY=1
    assert core["watchdog"] == f"{TEST_WATCHDOG_S}s"  # the test drop-in took effect
    assert core["uid"] != 0 and core["capabilities"] == 0
    assert core["boot_to_ready_s"] > 0


def test_a_frozen_core_is_killed_by_the_watchdog_and_answers_again(boot: dict) -> None:
    watchdog = boot["results"]["watchdog"]
    assert watchdog["timeout_logged"], boot["journal"][-3000:]
    assert watchdog["restarts"] >= 1 and watchdog["new_pid"]


def test_the_setup_page_answers_over_https_with_only_the_bind_capability(boot: dict) -> None:
    web = boot["results"]["web"]
    assert web["status"] == 200 and web["html"]  # /setup: the first administrator's page, public
    assert web["uid"] == boot["results"]["core"]["uid"]
    assert web["capabilities"] == 1 << 10  # CAP_NET_BIND_SERVICE alone
    # PrivateDevices=yes: the pseudo-devices only, no tty of a modem.
    assert not any(name.startswith(("ttyACM", "ttyUSB", "snd")) for name in web["sees_devices"])


def test_the_root_is_read_only_and_the_state_is_on_data(boot: dict) -> None:
    system = boot["results"]["system"]
    assert system["root_writable"] is False
    assert system["control_socket"] and system["control_socket_uid"] == boot["results"]["core"]["uid"]
    assert system["journal_on_data"]
    assert system["modemmanager"] == "masked"
