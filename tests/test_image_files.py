"""The files the OS image installs agree with the appliance and with each other."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from appliance.config import load_config

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
