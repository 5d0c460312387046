"""The image's systemd units are valid and keep the hardening the box relies on.

``systemd-analyze verify`` reads the real unit files, ExecStart line included,
inside a scratch root directory that holds the host's own systemd units (for
the targets ours name) and an executable at the path ExecStart names, since
verify rejects a unit whose program does not exist. The rest pins, by reading
the files, the properties image/README.md promises: a notify service with a
watchdog for the core, a web page that sees no device and has a memory cap.
"""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOTFS = Path(__file__).resolve().parent.parent / "image" / "rootfs"
UNIT_DIR = ROOTFS / "usr" / "lib" / "systemd" / "system"
CORE = UNIT_DIR / "practice-box-core.service"
WEB = UNIT_DIR / "practice-box-web.service"
SYSUSERS = ROOTFS / "usr" / "lib" / "sysusers.d" / "practice-box.conf"
# The updater's units live with the rest of the updater; build.sh installs them
# beside the core's in /usr/lib/systemd/system.
FIRMWARE_UNIT_DIR = ROOTFS.parent.parent / "firmware" / "systemd"
CHECK = FIRMWARE_UNIT_DIR / "practice-box-update-check.service"
RECOVER = FIRMWARE_UNIT_DIR / "practice-box-update-recover.service"
RAUC_DROPIN = UNIT_DIR / "rauc.service.d" / "practice-box.conf"
ALL_UNITS = (CORE, WEB, CHECK, RECOVER)
HOST_UNIT_DIRS = (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system"))


def _tool(name: str) -> str:
    path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if path is None:
        pytest.fail(f"{name} is missing: install systemd (apt-get install systemd) to check the image's units")
    return path


def _unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    """Sections of a unit file as (key, value) lists: keys such as DeviceAllow repeat."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
            continue
        key, _, value = line.partition("=")
        assert current is not None, f"{path.name}: {line!r} is outside any section"
        current.append((key.strip(), value.strip()))
    return sections


def _values(unit: dict[str, list[tuple[str, str]]], key: str, section: str = "Service") -> list[str]:
    return [value for k, value in unit.get(section, []) if k == key]


def _one(unit: dict[str, list[tuple[str, str]]], key: str, section: str = "Service") -> str:
    values = _values(unit, key, section)
    assert len(values) == 1, f"{key}= should be set once in [{section}], found {values}"
    return values[0]


def _exec_program(unit: dict[str, list[tuple[str, str]]]) -> str:
    return _one(unit, "ExecStart").split()[0]


@pytest.fixture(scope="module")
def scratch_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root for ``systemd-analyze verify --root``: the host's units, ours, and
    an executable where ExecStart points."""
    host_units = next((d for d in HOST_UNIT_DIRS if (d / "sysinit.target").exists()), None)
    if host_units is None:
        pytest.fail("systemd's own units (sysinit.target) are missing: install systemd")
    root = tmp_path_factory.mktemp("root")
    units = root / "usr" / "lib" / "systemd" / "system"
    shutil.copytree(host_units, units, symlinks=True)
    for unit in ALL_UNITS:
        shutil.copy(unit, units / unit.name)
    for path in {_exec_program(_unit(u)) for u in ALL_UNITS}:
        program = root / path.lstrip("/")
        program.parent.mkdir(parents=True, exist_ok=True)
        program.write_text("#!/bin/sh\nexit 0\n")
        program.chmod(0o755)
    return root


def test_the_image_ships_the_core_and_web_units() -> None:
    assert sorted(p.name for p in UNIT_DIR.glob("*.service")) == [
        "practice-box-core.service",
        "practice-box-web.service",
    ]


@pytest.mark.parametrize("name", [unit.name for unit in ALL_UNITS])
def test_systemd_analyze_verify_accepts_the_unit_without_a_single_warning(scratch_root: Path, name: str) -> None:
    result = subprocess.run(
        [_tool("systemd-analyze"), "verify", f"--root={scratch_root}", name],
        capture_output=True, text=True, timeout=60,
    )
    # verify exits 0 on unknown keys and bad values, only warning: any output is a finding.
    report = (result.stdout + result.stderr).strip()
    assert result.returncode == 0 and report == "", report


def test_verify_would_catch_a_misspelt_directive(scratch_root: Path, tmp_path: Path) -> None:
    # Guards the test above: the same run on a broken copy must say something.
    units = scratch_root / "usr" / "lib" / "systemd" / "system"
    broken = units / "practice-box-broken.service"
    broken.write_text(CORE.read_text().replace("NoNewPrivileges=", "NoNewPrivilege="))
    try:
        result = subprocess.run(
            [_tool("systemd-analyze"), "verify", f"--root={scratch_root}", broken.name],
            capture_output=True, text=True, timeout=60,
        )
    finally:
        broken.unlink()
    assert "Unknown key 'NoNewPrivilege'" in result.stderr


def test_the_user_is_declared_for_systemd_sysusers_with_the_line_groups(tmp_path: Path) -> None:
    result = subprocess.run(
        [_tool("systemd-sysusers"), f"--root={tmp_path}", "--dry-run", str(SYSUSERS)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "Creating user 'practice-box'" in result.stderr + result.stdout
    declared = [line.split() for line in SYSUSERS.read_text().splitlines() if line and not line.startswith("#")]
    members = {fields[2] for fields in declared if fields[0] == "m" and fields[1] == "practice-box"}
    for unit in (CORE, WEB):
        assert _one(_unit(unit), "User") == "practice-box"
    assert set(_one(_unit(CORE), "SupplementaryGroups").split()) == {"dialout", "audio"} == members


def test_the_core_tells_systemd_it_is_ready_and_is_restarted_when_it_hangs() -> None:
    core = _unit(CORE)
    assert _one(core, "Type") == "notify"
    assert _one(core, "NotifyAccess") == "main"  # only the core itself, not a child, may say READY
    watchdog = _one(core, "WatchdogSec")
    assert watchdog.endswith("s") and 10 <= int(watchdog[:-1]) <= 60, watchdog
    assert _one(core, "Restart") == "always"
    assert _one(core, "RestartSec")
    assert _one(core, "StartLimitIntervalSec", section="Unit") == "0"  # never gives up


def test_the_core_runs_without_privileges_and_sees_only_the_line_devices() -> None:
    core = _unit(CORE)
    assert _one(core, "CapabilityBoundingSet") == ""
    assert _one(core, "NoNewPrivileges") == "yes"
    assert _one(core, "ProtectSystem") == "strict"
    assert _one(core, "ProtectHome") == "yes"
    assert _one(core, "PrivateTmp") == "yes"
    assert _one(core, "DevicePolicy") == "closed"
    allowed = {value.split()[0] for value in _values(core, "DeviceAllow")}
    assert allowed == {"char-ttyACM", "char-ttyUSB", "char-ttyAMA", "char-ttyS", "char-alsa"}
    # Under ProtectSystem=strict the state directory is the only writable place.
    assert _values(core, "ReadWritePaths") == []


def test_both_processes_share_the_state_directory_they_are_given_as_data_dir() -> None:
    for path in (CORE, WEB):
        unit = _unit(path)
        assert _one(unit, "StateDirectory") == "practice-box"
        command = _one(unit, "ExecStart").split()
        assert command[command.index("--data-dir") + 1] == "/var/lib/practice-box"
        config = command[command.index("--config") + 1]
        assert (ROOTFS / config.lstrip("/")).is_file(), f"{path.name} reads {config}, which the image lacks"
    assert _one(_unit(CORE), "ExecStart").endswith(" run --no-web")  # systemd runs the web page itself
    assert _one(_unit(WEB), "ExecStart").endswith(" web")


def test_the_web_page_has_no_devices_a_memory_cap_and_lower_priority() -> None:
    web, core = _unit(WEB), _unit(CORE)
    assert _one(web, "PrivateDevices") == "yes"
    max_mb = int(_one(web, "MemoryMax").rstrip("M"))
    assert 128 <= max_mb <= 512
    assert int(_one(web, "Nice")) > int(_one(core, "Nice"))
    assert int(_one(web, "CPUWeight")) < int(_one(core, "CPUWeight"))
    assert int(_one(web, "IOWeight")) < int(_one(core, "IOWeight"))
    assert _one(web, "NoNewPrivileges") == "yes"
    # The web page must not take the core down with it, nor be taken down by it.
    assert _values(web, "Requires", section="Unit") == _values(web, "BindsTo", section="Unit") == []


def test_the_web_page_may_bind_the_https_port_and_nothing_more() -> None:
    web = _unit(WEB)
    config = tomllib.loads((ROOTFS / "etc" / "practice-box" / "box.toml").read_text())
    assert config["web"]["port"] < 1024  # hence the capability
    assert _one(web, "AmbientCapabilities") == "CAP_NET_BIND_SERVICE"
    assert _one(web, "CapabilityBoundingSet") == "CAP_NET_BIND_SERVICE"


def test_the_journal_is_persistent_and_capped() -> None:
    conf = _unit(ROOTFS / "usr" / "lib" / "systemd" / "journald.conf.d" / "practice-box.conf")
    assert _one(conf, "Storage", section="Journal") == "persistent"
    assert _one(conf, "SystemMaxUse", section="Journal").endswith("M")
    fstab = (ROOTFS / "etc" / "fstab").read_text()
    assert any(line.split()[:2] == ["/data/journal", "/var/log/journal"] for line in fstab.splitlines() if line[:1] == "/")


def test_the_hardware_watchdog_is_on() -> None:
    conf = _unit(ROOTFS / "usr" / "lib" / "systemd" / "system.conf.d" / "practice-box-watchdog.conf")
    seconds = int(_one(conf, "RuntimeWatchdogSec", section="Manager").rstrip("s"))
    assert 0 < seconds <= 15  # the bcm2835 watchdog counts 15 s at most


def test_the_root_stays_read_only_and_the_state_lives_on_data() -> None:
    entries = [line.split() for line in (ROOTFS / "etc" / "fstab").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    by_mount = {fields[1]: fields for fields in entries}
    assert "/" not in by_mount  # no remount read-write: the kernel's "ro" stands
    assert by_mount["/data"][0] == "PARTLABEL=data"
    assert by_mount["/var/lib/practice-box"][:3] == ["/data/practice-box", "/var/lib/practice-box", "none"]
    assert "bind" in by_mount["/var/lib/practice-box"][3].split(",")


def _image_requirements_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("image_requirements", ROOTFS.parent / "requirements.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_image_takes_the_c_extensions_without_aarch64_wheels_from_debian() -> None:
    requirements = _image_requirements_module()
    pyproject = tomllib.loads((ROOTFS.parent.parent / "pyproject.toml").read_text())
    names = [requirements._name(r) for r in requirements.image_requirements(pyproject)]
    assert "pyaudio" not in names and "systemd-python" not in names
    assert "llama-cpp-python" not in names  # an hour of compiling under qemu: only with IMAGE_WITH_LLAMA=1
    assert "llama-cpp-python" in [requirements._name(r) for r in
                                  requirements.image_requirements(pyproject, with_llama=True)]
    # Everything else in pyproject goes in as it is, pins included.
    kept = set(pyproject["project"]["dependencies"]) - set(requirements.image_requirements(pyproject))
    assert {requirements._name(r) for r in kept} == {"pyaudio", "systemd-python", "llama-cpp-python"}
    build = (ROOTFS.parent / "build.sh").read_text()
    for debian_package in requirements.FROM_DEBIAN.values():
        assert f" {debian_package} " in build, f"build.sh does not install {debian_package}"


def _environment(unit: dict[str, list[tuple[str, str]]]) -> dict[str, str]:
    pairs = " ".join(_values(unit, "Environment")).split()
    return dict(pair.split("=", 1) for pair in pairs)


def test_the_update_units_run_the_appliance_from_the_image_venv_on_the_cores_data_dir() -> None:
    core_command = _one(_unit(CORE), "ExecStart").split()
    venv_python = str(Path(core_command[0]).with_name("python"))  # /opt/practice-box/bin/python
    core_data_dir = core_command[core_command.index("--data-dir") + 1]
    for path, command in ((CHECK, "check"), (RECOVER, "recover-store")):
        unit = _unit(path)
        assert _one(unit, "ExecStart").split()[:4] == [venv_python, "-m", "appliance.system.update", command]
        # The store (<data dir>/appliance.db) and control.sock are where the core keeps them.
        assert _environment(unit)["APPLIANCE_DATA_DIR"] == core_data_dir
        assert core_data_dir in _one(unit, "RequiresMountsFor", section="Unit").split()
    # RAUC starts the bootloader backend, which runs the same interpreter.
    assert _environment(_unit(RAUC_DROPIN))["APPLIANCE_PYTHON"] == venv_python


def test_the_trial_check_runs_only_on_a_tryboot_after_the_core_and_cannot_hang_forever() -> None:
    check = _unit(CHECK)
    assert _one(check, "ConditionPathExists", section="Unit") == "/proc/device-tree/chosen/bootloader/tryboot"
    assert "practice-box-core.service" in _one(check, "After", section="Unit").split()
    assert _environment(check)["APPLIANCE_AUTOBOOT_DIR"] == "/boot/autoboot"
    assert "/boot/autoboot" in _one(check, "RequiresMountsFor", section="Unit").split()
    command = _one(check, "ExecStart").split()
    check_timeout = int(command[command.index("--timeout-s") + 1])
    assert int(_one(check, "TimeoutStartSec")) > check_timeout  # the check's own deadline comes first
    assert _one(check, "Type") == "oneshot"
    assert _one(check, "WantedBy", section="Install") == "multi-user.target"


def test_the_store_is_recovered_before_the_core_as_the_cores_own_user() -> None:
    recover, core = _unit(RECOVER), _unit(CORE)
    assert {"practice-box-core.service", "practice-box-web.service"} <= set(
        _one(recover, "Before", section="Unit").split())
    assert _one(recover, "User") == _one(core, "User")  # the restored file must be the core's to write
    assert _one(recover, "Type") == "oneshot"
    assert _one(recover, "NoNewPrivileges") == "yes"
    assert _one(recover, "CapabilityBoundingSet") == ""
    assert _one(recover, "ReadWritePaths") == _environment(recover)["APPLIANCE_DATA_DIR"]
    assert _one(recover, "WantedBy", section="Install") == "multi-user.target"


def test_the_image_build_installs_and_enables_both_update_units() -> None:
    build = (ROOTFS.parent / "build.sh").read_text()
    for unit in (CHECK, RECOVER):
        assert f"$REPO/firmware/systemd/{unit.name}" in build
        assert f" {unit.name} " in build.split("systemctl enable", 1)[1].split("avahi-daemon", 1)[0] + " "
