"""The files the OS image installs agree with the appliance and with each other."""

from __future__ import annotations

import configparser
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from appliance.config import load_config
from appliance.system import update

ROOTFS = Path(__file__).resolve().parent.parent / "image" / "rootfs"


def test_the_image_configuration_loads_and_serves_https_on_the_network() -> None:
    config = load_config(ROOTFS / "etc" / "practice-box" / "box.toml")
    assert config.web.https is True  # off 127.0.0.1 the Secure cookie needs TLS
    assert config.web.host == "0.0.0.0"


def test_avahi_announces_the_setup_page_on_the_port_it_is_served_on() -> None:
    service = ET.parse(ROOTFS / "etc" / "avahi" / "services" / "practice-box.service").getroot()
    assert service.tag == "service-group"
    [entry] = service.findall("service")
    assert entry.findtext("type") == "_https._tcp"
    config = load_config(ROOTFS / "etc" / "practice-box" / "box.toml")
    assert int(entry.findtext("port") or 0) == config.web.port
    # %h: avahi puts the host name in, so two boxes on one network stay apart
    assert "%h" in (service.findtext("name") or "")


# -- the A/B layout: genimage, fstab, RAUC's system.conf and update.py agree ------------

IMAGE = ROOTFS.parent
FIRMWARE = IMAGE.parent / "firmware"


def _genimage_partitions() -> list[tuple[str, str]]:
    """(partition name = GPT label, image file) in table order: the order is the numbering."""
    text = (IMAGE / "genimage.cfg.in").read_text()
    disk = text[text.index("image practice-box.img"):]
    return re.findall(r'partition (\w+) \{[^}]*?image = "([^"]+)"', disk)


def _fstab() -> dict[str, list[str]]:
    lines = (ROOTFS / "etc" / "fstab").read_text().splitlines()
    return {fields[1]: fields for fields in (line.split() for line in lines if line.strip() and line[0] != "#")}


def _rauc_conf() -> configparser.ConfigParser:
    conf = configparser.ConfigParser(interpolation=None)
    conf.read(FIRMWARE / "rauc" / "system.conf")
    return conf


def test_the_disk_is_the_raspberry_pi_tryboot_layout_in_the_order_update_py_counts() -> None:
    names = [name for name, _ in _genimage_partitions()]
    assert names == ["autoboot", "boot_a", "boot_b", "rootfs_a", "rootfs_b", "data"]
    # autoboot.txt names boot partitions by number (1-based): A and B must land there.
    for slot, number in update.SLOT_PARTITIONS.items():
        assert names[number - 1] == f"boot_{slot.lower()}"
    # The firmware reads autoboot.txt from the first partition only.
    assert names[0] == "autoboot"


def test_each_partition_is_filled_by_the_image_of_its_own_name() -> None:
    text = (IMAGE / "genimage.cfg.in").read_text()
    for name, image in _genimage_partitions():
        assert image.split(".")[0] == name
        assert re.search(rf'image {re.escape(image)} \{{', text), f"{image} is used but not defined"
    assert 'image rootfs_b.ext4 {' in text and "empty = true" in text.split("image rootfs_b.ext4")[1].split("}\n")[1]


def test_rauc_writes_the_root_slots_genimage_labels_with_update_py_bootnames() -> None:
    conf = _rauc_conf()
    names = [name for name, _ in _genimage_partitions()]
    slots = {section: conf[section] for section in conf.sections() if section.startswith("slot.")}
    assert set(slots) == {"slot.rootfs.0", "slot.rootfs.1"}
    by_bootname = {slot["bootname"]: slot["device"] for slot in slots.values()}
    assert set(by_bootname) == set(update.SLOT_PARTITIONS)
    for bootname, device in by_bootname.items():
        label = f"rootfs_{bootname.lower()}"
        assert device == f"/dev/disk/by-partlabel/{label}"
        assert label in names
    assert conf["system"]["bootloader"] == "custom"
    assert conf["keyring"]["path"] == "/etc/rauc/keyring.pem"


def test_rauc_keeps_its_status_on_the_data_partition_the_image_mounts() -> None:
    conf = _rauc_conf()
    status = Path(conf["system"]["statusfile"])
    assert status.parent == Path("/data/rauc")  # the root is read-only
    assert _fstab()["/data"][0] == "PARTLABEL=data"
    build = (IMAGE / "build.sh").read_text()
    assert '"$D/rauc"' in build  # the build makes the directory: RAUC does not


def test_the_autoboot_partition_is_mounted_read_write_where_update_py_looks() -> None:
    entry = _fstab()[str(update.AUTOBOOT_DIR)]
    assert entry[0] == "PARTLABEL=autoboot"
    assert entry[2] == "vfat"
    assert "rw" in entry[3].split(",")
    # The slots' boot partitions are the firmware's business, not mounted by Linux.
    assert not any(fields[0] in ("PARTLABEL=boot_a", "PARTLABEL=boot_b") for fields in _fstab().values())


def test_the_image_installs_what_system_conf_and_the_backend_name() -> None:
    conf = _rauc_conf()
    backend = conf["handlers"]["bootloader-custom-backend"]
    build = (IMAGE / "build.sh").read_text()
    assert f'"$R{backend}"' in build
    assert f'"$R{conf["keyring"]["path"]}"' in build
    assert '"$R/etc/rauc/system.conf"' in build
    # Installed in the rootfs stage, not in the cached base's PACKAGES.
    packages = re.search(r"^PACKAGES=\(([^)]*)\)", build, re.MULTILINE).group(1).split()
    assert "python3" in packages  # the base list was found
    assert "rauc" not in packages
    assert re.search(r"UPDATER_PACKAGES=\(rauc rauc-service\)", build)


def test_the_wrapper_gives_appliance_update_the_cores_data_dir() -> None:
    script = (ROOTFS / "usr" / "sbin" / "practice-box-update").read_text()
    code = " ".join(line for line in script.splitlines() if not line.lstrip().startswith("#"))
    wrapper = code.replace("\\", " ").split()
    assert wrapper[0] == "exec"
    core = (ROOTFS / "usr" / "lib" / "systemd" / "system" / "practice-box-core.service").read_text()
    core_exec = next(line for line in core.splitlines() if line.startswith("ExecStart=")).split()
    for option in ("--config", "--data-dir"):
        assert wrapper[wrapper.index(option) + 1] == core_exec[core_exec.index(option) + 1]
    assert wrapper[wrapper.index("--data-dir") + 2] == "update"
