"""What the operating system knows about a serial port, for people setting up a modem.

Three questions ``appliance diagnose-line`` asks before and after opening a port:
which USB device and interface is behind it (sysfs), who else has it open
(``/proc/*/fd``: ModemManager probes every new ttyACM/ttyUSB for about 10 s,
telephony.md 1.2), and, when opening failed, what the person should do about it.
Each answer says the fix, not only the fault. Nothing here talks to the modem.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from appliance.errors import LineError

HW_README: Final = "hw/README.md"
UDEV_RULES: Final = "hw/udev/90-appliance-modem.rules"
_MODEM_MANAGER: Final = "ModemManager"


@dataclass(frozen=True, slots=True)
class UsbIdentity:
    vendor_id: str  # "0baf", lower-case hex, as udev's ID_VENDOR_ID
    product_id: str  # "0303"
    interface: str | None  # "00", as udev's ID_USB_INTERFACE_NUM; None when sysfs does not say

    @property
    def pair(self) -> str:
        """``vvvv:pppp``, the form ``lsusb`` prints and the profiles' ``usb`` patterns match."""
        return f"{self.vendor_id}:{self.product_id}"

    def __str__(self) -> str:
        return self.pair if self.interface is None else f"{self.pair} interface {self.interface}"

    @classmethod
    def parse(cls, text: str) -> UsbIdentity | None:
        """Read back ``str(identity)`` (a transcript's ``meta usb`` line); "" or "none" is None."""
        parts = text.split()
        if not parts or parts == ["none"]:
            return None
        vendor, _, product = parts[0].partition(":")
        interface = parts[2] if len(parts) == 3 and parts[1] == "interface" else None
        return cls(vendor, product, interface)


@dataclass(frozen=True, slots=True)
class Holder:
    pid: int
    name: str

    def __str__(self) -> str:
        return f"{self.name} (pid {self.pid})"


def is_device_path(url: str) -> bool:
    """A filesystem path, not a pyserial URL such as ``socket://`` or ``rfc2217://``."""
    return "://" not in url


def usb_identity(port: str, *, sys_root: Path = Path("/sys")) -> UsbIdentity | None:
    """The USB vendor/product and interface number behind ``port``, or None (a pty, a UART).

    ``/dev/appliance-modem`` → ``/dev/ttyACM0`` → ``/sys/class/tty/ttyACM0/device``,
    which is the USB interface (CDC-ACM) or a child of it (usb-serial); the USB
    device holding ``idVendor`` is the interface's parent.
    """
    if not is_device_path(port):
        return None
    name = Path(os.path.realpath(port)).name
    try:
        root = sys_root.resolve(strict=True)
        node = (root / "class" / "tty" / name / "device").resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    interface: str | None = None
    for directory in (node, *node.parents):
        if interface is None and (directory / "bInterfaceNumber").is_file():
            interface = _read(directory / "bInterfaceNumber")
        if (directory / "idVendor").is_file() and (directory / "idProduct").is_file():
            vendor, product = _read(directory / "idVendor"), _read(directory / "idProduct")
            if vendor and product:
                return UsbIdentity(vendor.lower(), product.lower(), interface)
        if directory == root:
            break
    return None


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def port_holders(port: str, *, proc_root: Path = Path("/proc")) -> tuple[Holder, ...]:
    """Other processes with ``port``'s device open (this process excluded), by device number.

    Processes of other users cannot be inspected without root; they are simply
    not listed, so an empty answer means "none that we can see".
    """
    if not is_device_path(port):
        return ()
    try:
        device = os.stat(port)
    except OSError:
        return ()
    if not stat.S_ISCHR(device.st_mode):
        return ()
    holders = []
    for pid_dir in _pid_dirs(proc_root):
        if int(pid_dir.name) == os.getpid():
            continue
        if any(_same_device(fd, device.st_rdev) for fd in _fds(pid_dir)):
            holders.append(Holder(int(pid_dir.name), _process_name(pid_dir)))
    return tuple(holders)


def modem_manager_running(*, proc_root: Path = Path("/proc")) -> bool:
    return any(_process_name(pid_dir) == _MODEM_MANAGER for pid_dir in _pid_dirs(proc_root))


def _pid_dirs(proc_root: Path) -> Iterable[Path]:
    try:
        return [p for p in proc_root.iterdir() if p.name.isdigit()]
    except OSError:
        return []


def _fds(pid_dir: Path) -> Iterable[Path]:
    try:
        return list((pid_dir / "fd").iterdir())
    except OSError:  # another user's process, or it just exited
        return []


def _same_device(fd: Path, rdev: int) -> bool:
    try:
        target = os.stat(fd)
    except OSError:
        return False
    return stat.S_ISCHR(target.st_mode) and target.st_rdev == rdev


def _process_name(pid_dir: Path) -> str:
    return _read(pid_dir / "comm") or "?"


# --- why a port did not open --------------------------------------------------------


def missing_port_problem(port: str) -> str | None:
    """A plain sentence if ``port`` cannot be a serial device, before trying to open it."""
    if not is_device_path(port):
        return None
    try:
        mode = os.stat(port).st_mode
    except FileNotFoundError:
        return (
            f"there is no {port}: is the modem plugged in? `ls /dev/ttyACM* /dev/ttyUSB* /dev/serial/by-id/` "
            f"lists the serial ports; with {UDEV_RULES} installed a known modem is /dev/appliance-modem "
            f"(see {HW_README})"
        )
    except OSError as err:
        return f"cannot look at {port}: {err.strerror}"
    if not stat.S_ISCHR(mode):
        return f"{port} is not a serial device (not a character device): give the modem's tty, e.g. /dev/ttyACM0"
    return None


def open_failure_problem(port: str, err: LineError, holders: Iterable[Holder] = ()) -> str:
    """Why ``SerialPort.open`` failed, with the fix, from the OS error it wraps."""
    code = _errno_of(err)
    others = ", ".join(str(h) for h in holders)
    if code in (errno.EACCES, errno.EPERM):
        return (
            f"permission denied on {port}: add yourself to the dialout group "
            f"(`sudo usermod -aG dialout $USER`, then log in again), or install {UDEV_RULES} "
            f"(group dialout, mode 0660; see {HW_README})"
        )
    if code == errno.EBUSY:
        held = f" (held by {others})" if others else ""
        return (
            f"{port} is busy{held}: another program has it open. ModemManager grabs modems for about 10 s "
            f"after they appear: `sudo systemctl stop ModemManager`, or install {UDEV_RULES}, which sets "
            f"ID_MM_DEVICE_IGNORE for the supported modems (see {HW_README})"
        )
    if code == errno.ENOENT:
        return missing_port_problem(port) or f"there is no {port}"
    if code in (errno.ENXIO, errno.ENODEV, errno.EIO):
        return f"{port} exists but no device answers behind it: unplugged, or a stale name; plug it in again"
    if "Inappropriate ioctl" in str(err) or code == errno.ENOTTY:
        return f"{port} is not a serial port (the terminal settings could not be applied): give the modem's tty"
    return f"cannot open {port}: {err.detail}"


def _errno_of(err: BaseException) -> int | None:
    seen: BaseException | None = err
    while seen is not None:
        code = getattr(seen, "errno", None)
        if isinstance(code, int):
            return code
        seen = seen.__cause__
    return None
