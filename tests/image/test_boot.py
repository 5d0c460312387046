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

RAUC_BOOT_SLOT = """\
[Service]
ExecStart=
ExecStart=/usr/bin/rauc --mount=/run/rauc --override-boot-slot=A service
"""
"""A test-only drop-in for rauc.service: a container sees the host's /proc/cmdline,
which has no rauc.slot=; on the box the kernel command line of boot_a says A."""

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
    # Partition 1 as the build prepared it (fstab's device lines are skipped in a container).
    subprocess.run(["cp", "-a", str(rootfs.parent / "autoboot"), str(work / "autoboot")], check=True)
    inside = work / "in"
    inside.mkdir()
    shutil.copy(HERE / "inside_check.py", inside / "inside_check.py")
    units = work / "units"
    (units / "practice-box-core.service.d").mkdir(parents=True)
    (units / "practice-box-core.service.d" / "test-watchdog.conf").write_text(
        f"[Service]\nWatchdogSec={TEST_WATCHDOG_S}s\n")
    (units / "practice-box-check.service").write_text(CHECK_UNIT)
    (units / "rauc.service.d").mkdir()
    (units / "rauc.service.d" / "test-boot-slot.conf").write_text(RAUC_BOOT_SLOT)
    out = work / "out"
    out.mkdir()
    command = [
        nspawn, "--register=no", "--keep-unit", "-q", "-b", "-D", str(rootfs),
        "--read-only",  # the device's root is read-only: so is the test's
        f"--bind={work / 'data'}:/data",
        f"--bind={out}:/run/box-test",
        f"--bind={work / 'autoboot'}:/boot/autoboot",
        f"--bind-ro={inside}:/run/box-test-in",
        # /run/systemd/system: runtime units, above the image's own in systemd's search path.
        f"--bind-ro={units / 'practice-box-core.service.d'}:/run/systemd/system/practice-box-core.service.d",
        f"--bind-ro={units / 'practice-box-check.service'}:/run/systemd/system/practice-box-check.service",
        f"--bind-ro={units / 'rauc.service.d'}:/run/systemd/system/rauc.service.d",
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
    return {"results": results, "journal": journal, "rootfs": rootfs}


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


def test_rauc_is_installed_with_the_repositorys_configuration_and_the_signing_ca(boot: dict) -> None:
    updater = boot["results"]["updater"]
    repo = HERE.parent.parent
    assert updater["system_conf"] == (repo / "firmware" / "rauc" / "system.conf").read_text()
    assert updater["keyring"].startswith("-----BEGIN CERTIFICATE-----")
    keyring = os.environ.get("BUNDLE_KEYRING") or str(
        Path(os.environ.get("FIRMWARE_KEYS_DIR", Path.home() / ".cache/appliance/firmware-keys")) / "ca.cert.pem")
    if Path(keyring).is_file():  # the CA `make bundle` signs with is the one the box trusts
        assert updater["keyring"] == Path(keyring).read_text()
    assert updater["backend_executable"]
    assert "APPLIANCE_PYTHON=/opt/practice-box/bin/python" in updater["rauc_environment"]


def test_rauc_status_answers_through_the_backend_and_autoboot_txt(boot: dict) -> None:
    updater = boot["results"]["updater"]
    assert updater["rauc_status_exit"] == 0, updater["rauc_status"]
    status = updater["rauc_status"]
    assert status["compatible"] == "practice-box-rpi5"
    assert status["booted"] == "A"
    # get-primary: the backend read [all] boot_partition=2 from autoboot.txt, slot A.
    assert status["boot_primary"] == "rootfs.0"
    assert "boot_partition=2" in updater["autoboot_after"]  # a status query writes nothing
    # The wrapper runs `appliance update status` with the box's configuration.
    assert updater["wrapper_status_exit"] == 0, updater["wrapper_status"]
    assert "committed: A" in updater["wrapper_status"] and "next trial: none" in updater["wrapper_status"]


def test_on_an_ordinary_boot_the_store_check_runs_before_the_core_and_the_trial_check_stays_out(
        boot: dict) -> None:
    updater = boot["results"]["updater"]
    assert updater["recover_enabled"] == updater["check_enabled"] == "enabled"
    assert updater["recover_result"] == "success" and updater["recover_exit_status"] == 0
    assert updater["recover_done_before_core"]
    # No /proc/device-tree/chosen/bootloader/tryboot in a container (nor on an ordinary boot).
    assert updater["check_condition"] == "no" and updater["check_state"] == "inactive"


# -- what the build left for the disk: no boot needed -----------------------------------


@pytest.fixture(scope="module")
def built() -> Path:
    out = Path(os.environ["APPLIANCE_IMAGE_TEST"]).resolve().parent
    if not (out / "disk" / "practice-box.img").exists():
        pytest.fail(f"{out}/disk/practice-box.img is missing: run `make image` first")
    return out


def test_the_disk_image_has_the_tryboot_layout_update_py_expects(built: Path) -> None:
    from appliance.system.update import SLOT_PARTITIONS

    table = json.loads(subprocess.run(["sfdisk", "--json", str(built / "disk" / "practice-box.img")],
                                      capture_output=True, text=True, check=True).stdout)["partitiontable"]
    assert table["label"] == "gpt"
    names = [part["name"] for part in table["partitions"]]
    assert names == ["autoboot", "boot_a", "boot_b", "rootfs_a", "rootfs_b", "data"]
    assert {slot: names[number - 1] for slot, number in SLOT_PARTITIONS.items()} == {"A": "boot_a", "B": "boot_b"}


def test_autoboot_txt_commits_slot_a_with_no_trial(built: Path) -> None:
    from appliance.system.update import SLOT_PARTITIONS, parse_autoboot

    autoboot = parse_autoboot((built / "autoboot" / "autoboot.txt").read_text(encoding="ascii"))
    assert autoboot.committed == SLOT_PARTITIONS["A"]
    assert autoboot.tryboot == SLOT_PARTITIONS["A"]


def test_each_boot_partition_names_its_own_root_slot_on_the_kernel_command_line(built: Path) -> None:
    for slot in ("a", "b"):
        cmdline = built / f"boot-{slot}" / "cmdline.txt"
        if not cmdline.exists():
            pytest.skip("built with IMAGE_WITH_KERNEL=0: no boot files")
        lines = cmdline.read_text().splitlines()
        assert len(lines) == 1  # the firmware reads one line
        words = lines[0].split()
        assert [w for w in words if w.startswith("root=")] == [f"root=PARTLABEL=rootfs_{slot}"]
        assert [w for w in words if w.startswith("rauc.slot=")] == [f"rauc.slot={slot.upper()}"]
        assert "ro" in words
    # Boot B is boot A's copy apart from the command line: the same kernel in both slots.
    a = sorted(p.name for p in (built / "boot-a").iterdir())
    assert a == sorted(p.name for p in (built / "boot-b").iterdir()) and any(n.startswith("vmlinuz") for n in a)
