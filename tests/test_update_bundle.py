"""Signed update bundles: built by `make bundle`, checked and installed by real RAUC.

The install goes the way it goes on the box: `rauc install` asks the rauc service
over the D-Bus system bus (here a private dbus-daemon), the service checks the
signature and the compatible, writes the image into the inactive slot (here a
plain file standing for the partition) and calls the box's bootloader backend
(`firmware/rauc/bootloader-backend` → `appliance.system.update`), which arms the
trial in a temporary autoboot.txt.

One difference from the box: this kernel has no device mapper, so RAUC cannot
mount a verity bundle here (it needs dm-verity). Installs use the plain format,
whose signature covers the whole file; the verity bundle `make bundle` makes by
default is checked with `rauc extract`, which verifies its payload in user space.
"""

from __future__ import annotations

import configparser
import hashlib
import importlib.util
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

from appliance.store import Store
from appliance.system import update
from appliance.system.update import PiTryboot, UpdateError, install_bundle

REPO = Path(__file__).resolve().parents[1]
FIRMWARE = REPO / "firmware"
SLOT_BYTES = 32 * 2**20
OLD_A = b"the running system, slot A\n" * 4096
OLD_B = b"an older system in slot B\n" * 4096

pytestmark = pytest.mark.skipif(
    shutil.which("rauc") is None or shutil.which("dbus-daemon") is None,
    reason="rauc or dbus-daemon not installed: run `make firmware-tools`",
)


def _load_make_bundle() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_bundle", FIRMWARE / "make_bundle.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


make_bundle = _load_make_bundle()


@dataclass(frozen=True)
class Bundles:
    keyring: Path
    plain: Path
    verity: Path
    other_key: Path
    other_compatible: Path
    tree: Path
    seconds_make_bundle: float


def make(*args: str) -> subprocess.CompletedProcess[str]:
    # Both files given: works before and after the Makefile includes firmware.mk (it is guarded).
    return subprocess.run(
        ["make", "--no-print-directory", "-f", "Makefile", "-f", "firmware/firmware.mk", *args],
        cwd=REPO, capture_output=True, text=True, check=False,
    )


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> Bundles:
    work = tmp_path_factory.mktemp("bundles")
    tree = work / "rootfs"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc" / "practice-box-version").write_text("2026.11.1\n")
    # Incompressible bytes, so that the bundle is more than squashfs' smallest size.
    (tree / "usr" / "lib").mkdir(parents=True)
    (tree / "usr" / "lib" / "payload.bin").write_bytes(random.Random(8).randbytes(400_000))
    keys = work / "keys"
    common = [f"ROOTFS={tree}", f"FIRMWARE_KEYS_DIR={keys}", "BUNDLE_VERSION=2026.11.1"]

    started = time.monotonic()
    built = make("bundle", *common, f"BUNDLE_OUT={work / 'verity'}")
    seconds = time.monotonic() - started
    assert built.returncode == 0, built.stderr
    built = make("bundle", *common, f"BUNDLE_OUT={work / 'plain'}", "BUNDLE_FORMAT=plain")
    assert built.returncode == 0, built.stderr

    other = make_bundle.development_keys(work / "other-keys")
    assert make_bundle.main([
        "--rootfs", str(tree), "--out", str(work / "other-key"), "--version", "2026.11.1", "--format", "plain",
        "--key", str(other.key), "--cert", str(other.cert), "--keyring", str(other.keyring),
    ]) == 0
    assert make_bundle.main([
        "--rootfs", str(tree), "--out", str(work / "other-compatible"), "--version", "2026.11.1",
        "--format", "plain", "--keys-dir", str(keys), "--compatible", "jetson-orin-box",
    ]) == 0
    return Bundles(
        keyring=keys / "ca.cert.pem",
        plain=work / "plain" / "practice-box-rpi5-2026.11.1.raucb",
        verity=work / "verity" / "practice-box-rpi5-2026.11.1.raucb",
        other_key=work / "other-key" / "practice-box-rpi5-2026.11.1.raucb",
        other_compatible=work / "other-compatible" / "jetson-orin-box-2026.11.1.raucb",
        tree=tree,
        seconds_make_bundle=seconds,
    )


@dataclass(frozen=True)
class Device:
    root: Path
    slot_a: Path
    slot_b: Path
    autoboot_dir: Path
    chosen_dir: Path
    env: dict[str, str]

    def rauc(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["rauc", *args], env=self.env, capture_output=True, text=True, check=False, timeout=60)

    def bootloader(self) -> PiTryboot:
        return PiTryboot(self.autoboot_dir, self.chosen_dir)


def _system_conf(device_root: Path, keyring: Path) -> str:
    """The box's own system.conf, pointed at files instead of partitions."""
    conf = configparser.ConfigParser(interpolation=None)
    conf.optionxform = str  # type: ignore[assignment,method-assign]  # RAUC keys are case-sensitive
    conf.read(FIRMWARE / "rauc" / "system.conf")
    conf["system"]["statusfile"] = str(device_root / "status.raucs")
    conf["system"]["mountprefix"] = str(device_root / "mnt")
    conf["system"]["bundle-formats"] = "plain"  # no dm-verity in this kernel (see the module docstring)
    conf["keyring"]["path"] = str(keyring)
    conf["handlers"]["bootloader-custom-backend"] = str(FIRMWARE / "rauc" / "bootloader-backend")
    conf["slot.rootfs.0"]["device"] = str(device_root / "slot-a.img")
    conf["slot.rootfs.1"]["device"] = str(device_root / "slot-b.img")
    lines = []
    for section in conf.sections():
        lines.append(f"[{section}]")
        lines += [f"{key}={value}" for key, value in conf[section].items()]
        lines.append("")
    return "\n".join(lines)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, bundles: Bundles) -> Iterator[Device]:
    root = tmp_path_factory.mktemp("device")
    (root / "mnt").mkdir()
    (root / "autoboot").mkdir()
    (root / "chosen").mkdir()
    (root / "system.conf").write_text(_system_conf(root, bundles.keyring))
    bus_socket = root / "bus.sock"
    (root / "bus.conf").write_text(
        '<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"'
        ' "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">\n'
        f"<busconfig><type>system</type><listen>unix:path={bus_socket}</listen><auth>EXTERNAL</auth>"
        '<policy context="default"><allow user="*"/><allow own="*"/><allow send_destination="*"/>'
        '<allow receive_sender="*"/></policy></busconfig>\n'
    )
    env = dict(os.environ)
    env.update(
        DBUS_SYSTEM_BUS_ADDRESS=f"unix:path={bus_socket}",
        APPLIANCE_PYTHON=sys.executable,
        APPLIANCE_AUTOBOOT_DIR=str(root / "autoboot"),
        APPLIANCE_CHOSEN_DIR=str(root / "chosen"),
    )
    bus = subprocess.Popen(
        ["dbus-daemon", "--nofork", f"--config-file={root / 'bus.conf'}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    log = open(root / "rauc-service.log", "w")
    rauc = None
    try:
        _wait_for(bus_socket.exists, "the private dbus-daemon")
        # The booted slot: RAUC reads it from the kernel command line on the box.
        rauc = subprocess.Popen(
            ["rauc", "service", f"--conf={root / 'system.conf'}", "--override-boot-slot=A"],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        device = Device(root, root / "slot-a.img", root / "slot-b.img", root / "autoboot", root / "chosen", env)
        _wait_for(lambda: device.rauc("status").returncode == 0, "the rauc service on the private bus")
        yield device
    finally:
        for process in (rauc, bus):
            if process is not None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=10)
        log.close()


def _wait_for(ready, what: str, timeout_s: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not come up in {timeout_s} s")
        time.sleep(0.05)


@pytest.fixture
def device(service: Device) -> Device:
    """Slot A runs (committed, ordinary boot); slot B holds an older system."""
    for path, filler in ((service.slot_a, OLD_A), (service.slot_b, OLD_B)):
        with open(path, "wb") as out:
            out.write(filler)
            out.truncate(SLOT_BYTES)
    (service.autoboot_dir / "autoboot.txt").write_text("[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=2\n")
    (service.chosen_dir / "partition").write_bytes((2).to_bytes(4, "big"))
    (service.chosen_dir / "tryboot").write_bytes((0).to_bytes(4, "big"))
    return service


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def payload_of(bundle: Path, keyring: Path, into: Path) -> bytes:
    done = subprocess.run(
        ["rauc", "extract", f"--keyring={keyring}", str(bundle), str(into)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return (into / "rootfs.ext4").read_bytes()


def flip_byte(bundle: Path, target: Path) -> Path:
    """The same bundle with one byte of its payload (not of its signature) changed."""
    data = bytearray(bundle.read_bytes())
    signature_size = int.from_bytes(data[-8:], "big")
    data[(len(data) - 8 - signature_size) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    return target


def file_in_image(image: Path, inside: str) -> str:
    done = subprocess.run(["debugfs", "-R", f"cat {inside}", str(image)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


# -- building ---------------------------------------------------------------------------------


def test_make_bundle_signs_a_verity_bundle_the_device_keyring_accepts(bundles: Bundles, tmp_path: Path) -> None:
    info = subprocess.run(
        ["rauc", "info", f"--keyring={bundles.keyring}", str(bundles.verity)], capture_output=True, text=True, check=False
    )
    assert info.returncode == 0, info.stderr
    assert "Verified inline signature by 'O = Practice Box, CN = practice-box development signing'" in info.stderr
    assert "Compatible: \t'practice-box-rpi5'" in info.stdout
    assert "Version:    \t'2026.11.1'" in info.stdout
    assert "Bundle Format: \tverity" in info.stdout
    # The payload is the rootfs tree given to make bundle, as an ext4 image.
    image = tmp_path / "x" / "rootfs.ext4"
    payload_of(bundles.verity, bundles.keyring, tmp_path / "x")
    assert file_in_image(image, "/etc/practice-box-version") == "2026.11.1\n"
    print(f"make bundle: {bundles.seconds_make_bundle:.2f} s, {bundles.verity.stat().st_size} bytes (verity),"
          f" {bundles.plain.stat().st_size} bytes (plain)")


def test_make_bundle_without_a_root_file_system_says_how_to_get_one(tmp_path: Path) -> None:
    built = make("bundle", f"ROOTFS={tmp_path / 'none'}", f"BUNDLE_OUT={tmp_path / 'out'}",
                 f"FIRMWARE_KEYS_DIR={tmp_path / 'keys'}")
    assert built.returncode != 0
    assert "no root file system at" in built.stderr and "make image" in built.stderr
    assert "Traceback" not in built.stderr
    assert not (tmp_path / "keys").exists()  # nothing made for a build that cannot happen


def test_development_keys_stay_outside_the_repository_and_private(bundles: Bundles) -> None:
    keys = bundles.keyring.parent
    assert REPO not in keys.parents
    for private in ("ca.key.pem", "signing.key.pem"):
        assert (keys / private).stat().st_mode & 0o077 == 0
    assert keys.stat().st_mode & 0o077 == 0


# -- installing into the inactive slot, with the real rauc service ------------------------------


def test_bundle_from_make_is_installed_into_the_inactive_slot_and_armed_for_trial(
    bundles: Bundles, device: Device, tmp_path: Path
) -> None:
    before_a = digest(device.slot_a)
    started = time.monotonic()
    done = device.rauc("install", str(bundles.plain))
    took = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    assert "succeeded" in done.stdout

    payload = payload_of(bundles.plain, bundles.keyring, tmp_path / "x")
    assert device.slot_b.read_bytes()[: len(payload)] == payload
    assert digest(device.slot_a) == before_a
    state = device.bootloader().state()
    assert (state.committed, state.trial, state.booted, state.on_trial) == ("A", "B", "A", False)
    status = device.rauc("status", "--output-format=json")
    assert json.loads(status.stdout)["boot_primary"] == "rootfs.1"  # RAUC reads it back through the backend
    print(f"rauc install: {took:.2f} s")


def refused(device: Device, bundle: Path) -> str:
    before = (digest(device.slot_a), digest(device.slot_b), (device.autoboot_dir / "autoboot.txt").read_text())
    done = device.rauc("install", str(bundle))
    assert done.returncode != 0
    assert (digest(device.slot_a), digest(device.slot_b), (device.autoboot_dir / "autoboot.txt").read_text()) == before
    return done.stdout + done.stderr


def test_bundle_with_one_byte_changed_is_refused_and_no_slot_is_touched(
    bundles: Bundles, device: Device, tmp_path: Path
) -> None:
    tampered = flip_byte(bundles.plain, tmp_path / "tampered.raucb")
    assert "signature verification failed" in refused(device, tampered)


def test_bundle_signed_by_another_key_is_refused(bundles: Bundles, device: Device) -> None:
    assert "signature verification failed" in refused(device, bundles.other_key)


def test_unsigned_bundle_is_refused(bundles: Bundles, device: Device, tmp_path: Path) -> None:
    data = bundles.plain.read_bytes()
    signature_size = int.from_bytes(data[-8:], "big")
    unsigned = tmp_path / "unsigned.raucb"
    unsigned.write_bytes(data[: len(data) - 8 - signature_size] + (0).to_bytes(8, "big"))
    assert "signature" in refused(device, unsigned).lower()


def test_bundle_for_another_compatible_is_refused(bundles: Bundles, device: Device) -> None:
    message = refused(device, bundles.other_compatible)
    assert "jetson-orin-box" in message and "practice-box-rpi5" in message


def test_verity_bundle_with_one_byte_changed_fails_its_payload_check(bundles: Bundles, tmp_path: Path) -> None:
    # Only the manifest of a verity bundle is signed; the payload is held to the
    # signed hash tree, by dm-verity on the box and by rauc extract here.
    tampered = flip_byte(bundles.verity, tmp_path / "tampered.raucb")
    done = subprocess.run(
        ["rauc", "extract", f"--keyring={bundles.keyring}", str(tampered), str(tmp_path / "x")],
        capture_output=True, text=True, check=False,
    )
    assert done.returncode != 0
    assert "bundle payload is corrupted" in done.stderr
    assert not (tmp_path / "x" / "rootfs.ext4").exists()


# -- the box's install command: check, copy the store, then RAUC -----------------------------


def test_install_copies_the_store_before_rauc_writes_the_slot(
    bundles: Bundles, device: Device, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", device.env["DBUS_SYSTEM_BUS_ADDRESS"])
    data = tmp_path / "data"
    Store.open(data / "appliance.db").close()
    version = install_bundle(bundles.plain, data, keyring=bundles.keyring)
    assert version == "2026.11.1"
    snapshot = data / "update" / "store-before-2026.11.1.db"
    assert Store.open(snapshot).applied_migrations()  # a store the current code opens
    assert device.bootloader().state().trial == "B"


def test_install_refuses_a_tampered_bundle_before_copying_anything(
    bundles: Bundles, device: Device, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", device.env["DBUS_SYSTEM_BUS_ADDRESS"])
    data = tmp_path / "data"
    Store.open(data / "appliance.db").close()
    with pytest.raises(UpdateError) as refused_install:
        install_bundle(flip_byte(bundles.plain, tmp_path / "t.raucb"), data, keyring=bundles.keyring)
    assert refused_install.value.code == "bundle-refused"
    assert not (data / "update").exists()
    assert device.bootloader().state().trial is None


# -- the configuration the image installs ---------------------------------------------------


def test_device_configuration_matches_the_bundles_and_the_slot_table() -> None:
    conf = configparser.ConfigParser(interpolation=None)
    conf.read(FIRMWARE / "rauc" / "system.conf")
    assert conf["system"]["compatible"] == make_bundle.COMPATIBLE
    assert conf["system"]["bundle-formats"] == "verity"  # plain is for this test machine only
    assert conf["system"]["bootloader"] == "custom"
    bootnames = {conf[s]["bootname"] for s in conf.sections() if s.startswith("slot.rootfs.")}
    assert bootnames == set(update.SLOT_PARTITIONS)
