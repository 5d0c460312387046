"""Signed A/B updates on the box: which slot boots, the trial boot, and the data.

RAUC verifies a bundle and writes it into the inactive root slot; everything
after that is here. The Raspberry Pi 5 firmware chooses the slot: ``autoboot.txt``
on the small first FAT partition says which boot partition is the committed one
(``[all] boot_partition``) and which one a ``reboot "0 tryboot"`` tries once
(``[tryboot] boot_partition``). The tryboot flag is cleared by the firmware
before the kernel starts, so any failure of the trial (a hang, a watchdog reset,
a power cut, or our own reboot) lands on the committed slot again::

    committed A ──install B (rauc)──▶ [tryboot]=B ──reboot "0 tryboot"──▶ B on trial
        ▲                                                               │
        │ timeout: [tryboot]=A, plain reboot          core healthy: [all]=B
        └───────────────────────────────────────────────────────────────┘ ▶ committed B

The data partition is shared by both slots. Before the install the store is
copied with SQLite's backup API; if the trial failed after the new code migrated
the database, the old code refuses that file ("applied by a newer version") and
``recover-store`` puts the copy back, keeping the trial's file aside for the staff.

Run as ``python -m appliance.system.update <command>``: ``status``, ``install``,
``trial-reboot``, ``check`` (the trial boot's health check), ``recover-store``
and ``rauc-backend`` (RAUC's ``custom`` bootloader backend).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Final, Literal, Protocol

from appliance.config import STORE_FILE
from appliance.errors import ApplianceError, StoreError

_LOGGER = logging.getLogger(__name__)

SLOT_PARTITIONS: Final = {"A": 2, "B": 3}
"""RAUC bootname → the slot's boot (FAT) partition, as laid out by the image."""
AUTOBOOT_DIR: Final = Path("/boot/autoboot")  # where the image mounts partition 1
CHOSEN_DIR: Final = Path("/proc/device-tree/chosen/bootloader")  # written by the Pi firmware
CORE_UNIT: Final = "practice-box-core.service"
_AUTOBOOT_MAX_BYTES: Final = 512  # the firmware reads no more of autoboot.txt
_VERSION_RE: Final = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._+~-]{0,63}$")  # a version is also a file name here
_SNAPSHOT_PREFIX: Final = "store-before-"
_TRIAL_TIMEOUT_S: Final = 300.0  # the core loads its models in well under a minute on a Pi 5
_PROBE_INTERVAL_S: Final = 5.0
_PING_TIMEOUT_S: Final = 3.0


class UpdateError(ApplianceError):
    """An update step that cannot go on; the message says what to do."""

    default_code = "update-error"


# -- autoboot.txt ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Autoboot:
    """What autoboot.txt says: the committed boot partition and the one tryboot tries."""

    committed: int
    tryboot: int

    def render(self) -> str:
        # Written whole every time: the firmware only understands these few lines,
        # and a comment would eat into its 512 bytes.
        return (
            "[all]\ntryboot_a_b=1\n"
            f"boot_partition={self.committed}\n"
            f"[tryboot]\nboot_partition={self.tryboot}\n"
        )


def parse_autoboot(text: str) -> Autoboot:
    """Read ``[all]``/``[tryboot]`` ``boot_partition`` (other sections and keys are ignored)."""
    section = "all"
    found: dict[str, int] = {}
    a_b = False
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip().lower()
            continue
        key, sep, value = line.partition("=")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if key == "tryboot_a_b" and section == "all":
            a_b = value == "1"
        elif key == "boot_partition" and section in ("all", "tryboot"):
            if not value.isdigit():
                raise UpdateError("autoboot-invalid", f"boot_partition must be a number, got {value!r}")
            found[section] = int(value)
    if not a_b:
        # Without it the firmware would look for tryboot.txt in the same partition,
        # and a trial would boot the old slot's files.
        raise UpdateError("autoboot-invalid", "autoboot.txt lacks tryboot_a_b=1 under [all]")
    if "all" not in found:
        raise UpdateError("autoboot-invalid", "autoboot.txt has no boot_partition under [all]")
    return Autoboot(committed=found["all"], tryboot=found.get("tryboot", found["all"]))


# -- the bootloader ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BootState:
    committed: str
    """The slot a normal boot starts."""
    trial: str | None
    """The slot a ``tryboot`` reboot starts once, if it is not the committed one."""
    booted: str | None
    """The slot running now (None: not known, e.g. not on a Pi)."""
    tryboot: bool
    """This boot was a tryboot."""

    @property
    def on_trial(self) -> bool:
        """Running the slot under trial: the check decides whether it is committed."""
        return self.tryboot and self.booted is not None and self.booted == self.trial


class Bootloader(Protocol):
    def state(self) -> BootState: ...

    def arm_trial(self, slot: str) -> None:
        """The next tryboot reboot starts ``slot`` (once)."""

    def cancel_trial(self) -> None:
        """A tryboot reboot starts the committed slot again."""

    def commit(self, slot: str) -> None:
        """Every boot from now on starts ``slot``."""


class PiTryboot:
    """Raspberry Pi 5 firmware A/B: autoboot.txt plus the one-shot tryboot flag.

    ``autoboot_dir`` is the mounted first partition; ``chosen_dir`` is where the
    firmware tells Linux which partition it booted and whether it was a tryboot.
    Tests point both at temporary directories: the code path is the device's.
    """

    def __init__(
        self,
        autoboot_dir: Path = AUTOBOOT_DIR,
        chosen_dir: Path = CHOSEN_DIR,
        partitions: dict[str, int] | None = None,
    ) -> None:
        self.autoboot_path = autoboot_dir / "autoboot.txt"
        self.chosen_dir = chosen_dir
        self.partitions = dict(partitions or SLOT_PARTITIONS)
        self._slots = {number: name for name, number in self.partitions.items()}

    def state(self) -> BootState:
        boot = self._read()
        committed = self._slot(boot.committed)
        trial = self._slot(boot.tryboot)
        booted_number = self._chosen("partition")
        return BootState(
            committed=committed,
            trial=trial if trial != committed else None,
            booted=self._slots.get(booted_number) if booted_number is not None else None,
            tryboot=self._chosen("tryboot") == 1,
        )

    def arm_trial(self, slot: str) -> None:
        boot = self._read()
        self._write(Autoboot(committed=boot.committed, tryboot=self._partition(slot)))

    def cancel_trial(self) -> None:
        boot = self._read()
        self._write(Autoboot(committed=boot.committed, tryboot=boot.committed))

    def commit(self, slot: str) -> None:
        # [tryboot] follows the committed slot: a stray `reboot "0 tryboot"` must not
        # start the old system; the next install arms a trial of its own.
        number = self._partition(slot)
        self._write(Autoboot(committed=number, tryboot=number))

    def _read(self) -> Autoboot:
        try:
            text = self.autoboot_path.read_text(encoding="ascii")
        except FileNotFoundError:
            raise UpdateError(
                "autoboot-missing",
                f"{self.autoboot_path} not found: is the boot selection partition mounted?",
            ) from None
        except (OSError, UnicodeDecodeError) as err:
            raise UpdateError("autoboot-unreadable", f"{self.autoboot_path}: {err}") from err
        return parse_autoboot(text)

    def _write(self, boot: Autoboot) -> None:
        data = boot.render().encode("ascii")
        assert len(data) <= _AUTOBOOT_MAX_BYTES, "autoboot.txt grew past what the firmware reads"
        # Write aside, flush, rename: a power cut leaves the old file or the new one.
        # (On FAT the rename is not journalled, but it is one directory-entry write.)
        temporary = self.autoboot_path.with_name("autoboot.tmp")
        with open(temporary, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, self.autoboot_path)
        _fsync_dir(self.autoboot_path.parent)

    def _chosen(self, name: str) -> int | None:
        try:
            raw = (self.chosen_dir / name).read_bytes()
        except OSError:
            return None
        return int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None  # device-tree cells are big-endian

    def _slot(self, partition: int) -> str:
        try:
            return self._slots[partition]
        except KeyError:
            raise UpdateError(
                "autoboot-unknown-partition",
                f"autoboot.txt names partition {partition}, which is no slot ({self._describe()})",
            ) from None

    def _partition(self, slot: str) -> int:
        try:
            return self.partitions[slot]
        except KeyError:
            raise UpdateError("unknown-slot", f"no slot {slot!r} ({self._describe()})") from None

    def _describe(self) -> str:
        return ", ".join(f"{name}=partition {number}" for name, number in self.partitions.items())


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a directory; the rename is done anyway
    finally:
        os.close(fd)


def rauc_backend(bootloader: Bootloader, args: Sequence[str]) -> tuple[int, str]:
    """RAUC's ``custom`` bootloader interface, on top of the tryboot state.

    RAUC calls ``set-state <slot> bad`` before writing a slot and ``set-primary
    <slot>`` after: here that cancels, then arms, the slot's trial. ``set-state
    <slot> good`` (``rauc status mark-good``) commits only the slot running on
    trial: committing a slot that never booted would skip the trial altogether.
    Returns the exit status and what to print.
    """
    match list(args):
        case ["get-primary"]:
            state = bootloader.state()
            return 0, state.trial or state.committed
        case ["get-current"]:
            state = bootloader.state()
            if state.booted is None:
                return 1, "the booted slot is unknown (no firmware partition in the device tree)"
            return 0, state.booted
        case ["get-state", slot]:
            state = bootloader.state()
            return 0, "good" if slot in (state.committed, state.trial) else "bad"
        case ["set-primary", slot]:
            state = bootloader.state()
            if slot == state.committed:
                bootloader.cancel_trial()
            else:
                bootloader.arm_trial(slot)
            return 0, ""
        case ["set-state", slot, "bad"]:
            state = bootloader.state()
            if slot == state.committed:
                return 1, f"slot {slot} is the committed slot; install an update instead of marking it bad"
            if slot == state.trial:
                bootloader.cancel_trial()
            return 0, ""
        case ["set-state", slot, "good"]:
            state = bootloader.state()
            if slot == state.committed:
                return 0, ""
            if state.on_trial and slot == state.booted:
                bootloader.commit(slot)
                return 0, ""
            return 1, f"slot {slot} can only be marked good while it runs on trial"
        case _:
            return 2, f"unknown bootloader request: {' '.join(args) or '(none)'}"


# -- the trial boot's health check ------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class TrialSettings:
    timeout_s: float = _TRIAL_TIMEOUT_S
    """How long the new system has to report healthy before it is given up."""
    interval_s: float = _PROBE_INTERVAL_S
    """Pause between two health probes."""

    def __post_init__(self) -> None:
        if not 10 <= self.timeout_s <= 3600:
            raise UpdateError("settings-invalid", f"the trial timeout must be 10-3600 s, got {self.timeout_s}")
        if not 0.1 <= self.interval_s <= self.timeout_s:
            raise UpdateError("settings-invalid", f"the probe interval must be 0.1 s to the timeout, got {self.interval_s}")


class Timer(Protocol):
    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class RealTimer:
    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


CheckOutcome = Literal["committed", "rolled-back", "not-on-trial"]


def check_trial(
    bootloader: Bootloader,
    healthy: Callable[[], bool],
    timer: Timer,
    settings: TrialSettings = TrialSettings(),
    *,
    reboot: Callable[[], None] | None = None,
) -> CheckOutcome:
    """On a trial boot, commit the slot once ``healthy()``; give it up after the timeout.

    Giving up cancels the trial and calls ``reboot`` (a plain one: the firmware has
    already cleared the tryboot flag, so the committed slot starts). Without
    ``reboot`` the box stays up on the new slot until someone restarts it, and
    that restart falls back all the same.
    """
    state = bootloader.state()
    if not state.on_trial:
        return "not-on-trial"
    slot = state.booted
    assert slot is not None  # on_trial implies it
    deadline = timer.monotonic() + settings.timeout_s
    while True:
        if healthy():
            bootloader.commit(slot)
            _LOGGER.info("slot %s reported healthy on its trial boot: committed", slot)
            return "committed"
        if timer.monotonic() >= deadline:
            break
        timer.sleep(min(settings.interval_s, max(0.0, deadline - timer.monotonic())))
    bootloader.cancel_trial()
    _LOGGER.warning(
        "slot %s did not report healthy within %.0f s: falling back to slot %s",
        slot, settings.timeout_s, state.committed,
    )
    if reboot is not None:
        reboot()
    return "rolled-back"


def core_healthy(socket_path: Path, unit_active: Callable[[], bool]) -> bool:
    """The core answers ``ping`` with ``ok`` on its control socket and systemd shows it active."""
    from appliance.control import ask  # the core's own client: one wire format (imports numpy: lazily)

    try:
        answer = asyncio.run(ask(socket_path, {"cmd": "ping"}, timeout_s=_PING_TIMEOUT_S))
    except (ConnectionError, OSError, TimeoutError, ValueError):
        return False
    return answer.get("ok") is True and unit_active()


def systemd_unit_active(unit: str = CORE_UNIT) -> bool:
    try:
        done = subprocess.run(["systemctl", "is-active", "--quiet", unit], check=False, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def systemd_reboot(*, tryboot: bool) -> None:
    # "0 tryboot": partition 0 (autoboot.txt decides) with the one-shot flag; systemd
    # hands the argument to the reboot(2) call the Pi firmware driver reads.
    command = ["systemctl", "reboot", "0 tryboot"] if tryboot else ["systemctl", "reboot"]
    subprocess.run(command, check=True)


# -- the database across an update --------------------------------------------------------


def snapshot_store(db_path: Path, update_dir: Path, version: str) -> Path | None:
    """Copy the store to ``<update_dir>/store-before-<version>.db`` (only the latest is kept).

    Through SQLite's backup API while the core runs: one committed state, never half
    a transaction. None when there is no store yet (a box not set up).
    """
    from appliance.store import Store

    if not _VERSION_RE.match(version):
        raise UpdateError("version-invalid", f"bundle version {version!r} is not a plain version string")
    if not db_path.exists():
        return None
    update_dir.mkdir(parents=True, exist_ok=True)
    target = update_dir / f"{_SNAPSHOT_PREFIX}{version}.db"
    partial = target.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    with Store.open(db_path) as store:
        store.backup_to(partial)
    os.replace(partial, target)
    for older in update_dir.glob(f"{_SNAPSHOT_PREFIX}*.db"):
        if older != target:
            older.unlink()
    _LOGGER.info("store copied to %s before the update", target.name)
    return target


RecoverOutcome = Literal["store-fine", "no-store", "restored"]


def recover_store(db_path: Path, update_dir: Path, *, now: datetime | None = None) -> RecoverOutcome:
    """Make the store usable by the code running now, after a failed trial.

    A store this code opens is left alone. A store a newer version migrated
    (``schema-too-new``) is moved aside, with its WAL, as ``store-from-trial-<time>.db``
    (calls and messages taken during the trial are in it) and the pre-update copy
    is put in its place. Any other refusal is not ours to repair and is raised.
    """
    from appliance.store import Store

    if not db_path.exists():
        return "no-store"
    try:
        Store.open(db_path).close()
        return "store-fine"
    except StoreError as err:
        if err.code != "schema-too-new":
            raise
    snapshots = sorted(update_dir.glob(f"{_SNAPSHOT_PREFIX}*.db"), key=lambda p: p.stat().st_mtime)
    if not snapshots:
        raise UpdateError(
            "no-snapshot",
            f"{db_path} was migrated by a newer version and there is no copy from before the update"
            f" in {update_dir}; boot the newer slot again or restore a backup",
        )
    stamp = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    aside = update_dir / f"store-from-trial-{stamp}.db"
    moved: list[tuple[Path, Path]] = []
    for suffix in ("", "-wal", "-shm"):  # the WAL holds committed rows not yet in the main file
        source = db_path.with_name(db_path.name + suffix)
        if source.exists():
            destination = aside.with_name(aside.name + suffix)
            os.replace(source, destination)
            moved.append((destination, source))
    shutil.copy2(snapshots[-1], db_path)
    try:
        Store.open(db_path).close()
    except StoreError:
        # The copy is no better: put the newer file back rather than lose it.
        db_path.unlink(missing_ok=True)
        for destination, source in moved:
            os.replace(destination, source)
        raise
    _LOGGER.warning("store from the failed update kept as %s; the copy from before it is back", aside.name)
    return "restored"


# -- installing a bundle ----------------------------------------------------------------


Runner = Callable[[list[str]], subprocess.CompletedProcess[str]]


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False)


def bundle_version(bundle: Path, *, keyring: Path | None = None, run: Runner = _run) -> str:
    """The version a signed bundle announces; ``rauc info`` checks the signature first."""
    command = ["rauc", "info", "--output-format=json", str(bundle)]
    if keyring is not None:
        command.insert(2, f"--keyring={keyring}")
    done = run(command)
    if done.returncode != 0:
        raise UpdateError("bundle-refused", _last_line(done.stderr) or f"rauc info failed ({done.returncode})")
    try:
        version = json.loads(done.stdout)["version"]
    except (ValueError, KeyError, TypeError) as err:
        raise UpdateError("bundle-refused", "rauc info gave no version for this bundle") from err
    if not isinstance(version, str) or not _VERSION_RE.match(version):
        raise UpdateError("bundle-refused", f"bundle version {version!r} is not a plain version string")
    return version


def install_bundle(
    bundle: Path, data_dir: Path, *, keyring: Path | None = None, run: Runner = _run
) -> str:
    """Verify, copy the store, then let the rauc service write the inactive slot."""
    if not bundle.is_file():
        raise UpdateError("bundle-missing", f"{bundle}: no such bundle file")
    version = bundle_version(bundle, keyring=keyring, run=run)
    snapshot_store(data_dir / STORE_FILE, data_dir / "update", version)
    done = run(["rauc", "install", str(bundle)])
    if done.returncode != 0:
        raise UpdateError("install-failed", _last_line(done.stderr + done.stdout) or "rauc install failed")
    _LOGGER.info("update %s written to the inactive slot; reboot on trial to try it", version)
    return version


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


# -- command line -------------------------------------------------------------------------


def _bootloader_from_env() -> PiTryboot:
    # The environment lets the RAUC backend (a process RAUC starts) and tests aim
    # the same code at another boot partition.
    return PiTryboot(
        Path(os.environ.get("APPLIANCE_AUTOBOOT_DIR", AUTOBOOT_DIR)),
        Path(os.environ.get("APPLIANCE_CHOSEN_DIR", CHOSEN_DIR)),
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="appliance update", description="Signed A/B updates of the box.")
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("APPLIANCE_DATA_DIR", "/data")))
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("status", help="which slot runs, which is committed, which is on trial")
    install = commands.add_parser("install", help="verify a bundle, copy the store, write the inactive slot")
    install.add_argument("bundle", type=Path)
    install.add_argument("--keyring", type=Path, help="check against this keyring (default: RAUC's system.conf)")
    install.add_argument("--reboot", action="store_true", help="reboot on trial once installed")
    commands.add_parser("trial-reboot", help="reboot once into the installed slot")
    check = commands.add_parser("check", help="on a trial boot: commit when the core is healthy, else fall back")
    check.add_argument("--timeout-s", type=float, default=_TRIAL_TIMEOUT_S)
    check.add_argument("--no-reboot", action="store_true", help="do not reboot after a failed trial")
    commands.add_parser("recover-store", help="after a failed trial: put back the store copied before the update")
    backend = commands.add_parser("rauc-backend", help="RAUC's custom bootloader backend")
    backend.add_argument("request", nargs="*")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _dispatch(args)
    except ApplianceError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


def _dispatch(args: argparse.Namespace) -> int:
    data_dir: Path = args.data_dir
    match args.command:
        case "rauc-backend":
            status, text = rauc_backend(_bootloader_from_env(), args.request)
            if text:
                print(text, file=sys.stdout if status == 0 else sys.stderr)
            return status
        case "status":
            state = _bootloader_from_env().state()
            print(f"booted: {state.booted or 'unknown'}{' (trial)' if state.on_trial else ''}")
            print(f"committed: {state.committed}")
            print(f"next trial: {state.trial or 'none'}")
            return 0
        case "install":
            if not (data_dir / STORE_FILE).exists():
                # Said before, not after: a wrong data directory means no copy to fall back on.
                print(f"warning: no store in {data_dir}: nothing will be copied before the update "
                      "(on the box, use practice-box-update or --data-dir /var/lib/practice-box)", file=sys.stderr)
            version = install_bundle(args.bundle, data_dir, keyring=args.keyring)
            print(f"update {version} installed in the inactive slot")
            if args.reboot:
                systemd_reboot(tryboot=True)
            else:
                print("to try it: appliance update trial-reboot")
            return 0
        case "trial-reboot":
            state = _bootloader_from_env().state()
            if state.trial is None:
                print("no update is waiting for a trial", file=sys.stderr)
                return 1
            systemd_reboot(tryboot=True)
            return 0
        case "check":
            outcome = check_trial(
                _bootloader_from_env(),
                lambda: core_healthy(data_dir / "control.sock", systemd_unit_active),
                RealTimer(),
                TrialSettings(timeout_s=args.timeout_s),
                reboot=None if args.no_reboot else (lambda: systemd_reboot(tryboot=False)),
            )
            print(outcome)
            return 0 if outcome != "rolled-back" else 1
        case "recover-store":
            print(recover_store(data_dir / STORE_FILE, data_dir / "update"))
            return 0
    raise AssertionError(args.command)  # argparse allows no other command


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    sys.exit(main())
