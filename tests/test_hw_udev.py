"""``hw/udev/90-appliance-modem.rules`` read line by line, against udev(7) and the hardware table.

The syntax checked is udev(7) of systemd 252 (the Debian 12 man page): a rule is
comma-separated ``KEY[{attr}] OP "value"`` expressions, match keys take ``==``/``!=``,
assignment keys ``=``/``+=``/``-=``/``:=``. Where ``udevadm verify`` exists
(systemd 253 and later) it checks the file too.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from appliance.line.profile import USB_SOURCE, builtin_profiles

REPO = Path(__file__).resolve().parents[1]
RULES = REPO / "hw" / "udev" / "90-appliance-modem.rules"
README = REPO / "hw" / "README.md"

_EXPRESSION = re.compile(r'^([A-Z_]+)(?:\{([^{}]+)\})?(==|!=|\+=|-=|:=|=)"((?:[^"\\]|\\.)*)"$')
_MATCH_OPS = ("==", "!=")
_ASSIGN_OPS = ("=", "+=", "-=", ":=")
# udev(7): keys that only match, keys that only assign, keys that do both.
_MATCH_ONLY = {"ACTION", "DEVPATH", "KERNEL", "KERNELS", "SUBSYSTEM", "SUBSYSTEMS", "DRIVER", "DRIVERS",
               "ATTRS", "TAGS", "TEST", "PROGRAM", "RESULT", "CONST"}
_ASSIGN_ONLY = {"OWNER", "GROUP", "MODE", "SECLABEL", "RUN", "LABEL", "GOTO", "IMPORT", "OPTIONS"}
_BOTH = {"NAME", "SYMLINK", "ATTR", "SYSCTL", "ENV", "TAG"}
_NEEDS_ATTRIBUTE = {"ATTR", "ATTRS", "ENV", "SYSCTL", "CONST", "SECLABEL", "IMPORT"}
NAMES = {"appliance-modem", "appliance-gsm-at", "appliance-gsm-audio"}
_USB_PAIR = re.compile(r"`([0-9a-f]{4}):([0-9a-f]{4})`")


@dataclass(frozen=True)
class Expression:
    key: str
    attribute: str | None
    op: str
    value: str


@dataclass(frozen=True)
class Rule:
    number: int
    expressions: tuple[Expression, ...]

    def get(self, key: str, attribute: str | None = None, ops: tuple[str, ...] = _MATCH_OPS + _ASSIGN_OPS) -> str | None:
        return next((e.value for e in self.expressions
                     if e.key == key and e.attribute == attribute and e.op in ops), None)

    @property
    def ids(self) -> tuple[str, str] | None:
        """(vendor, product) this rule matches, from usb_id properties or the USB device's attributes."""
        vendor = self.get("ENV", "ID_VENDOR_ID", _MATCH_OPS) or self.get("ATTR", "idVendor", _MATCH_OPS)
        product = self.get("ENV", "ID_MODEL_ID", _MATCH_OPS) or self.get("ATTR", "idProduct", _MATCH_OPS)
        return (vendor, product) if vendor and product else None


def split_expressions(line: str) -> list[str]:
    """Commas outside double quotes separate expressions (udev(7) "comma-separated list")."""
    parts, current, quoted, escaped = [], "", False, False
    for char in line:
        if escaped:
            current, escaped = current + char, False
            continue
        if char == "\\" and quoted:
            current, escaped = current + char, True
        elif char == '"':
            current, quoted = current + char, not quoted
        elif char == "," and not quoted:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    assert not quoted, f"unbalanced quotes in {line!r}"
    parts.append(current.strip())
    return parts


def parse_rule(number: int, line: str) -> Rule:
    expressions = []
    for text in split_expressions(line):
        match = _EXPRESSION.match(text)
        assert match, f"line {number}: not a KEY==\"value\" / KEY=\"value\" expression: {text!r}"
        key, attribute, op, value = match.groups()
        expression = Expression(key, attribute, op, value)
        assert key in _MATCH_ONLY | _ASSIGN_ONLY | _BOTH, f"line {number}: unknown key {key}"
        if key in _MATCH_ONLY:
            assert op in _MATCH_OPS, f"line {number}: {key} only matches, got {op}"
        if key in _ASSIGN_ONLY:
            assert op in _ASSIGN_OPS, f"line {number}: {key} only assigns, got {op}"
        if key in _NEEDS_ATTRIBUTE:
            assert attribute, f"line {number}: {key} needs {{attribute}}"
        expressions.append(expression)
    return Rule(number, tuple(expressions))


def rules(*, templates: bool = False) -> list[Rule]:
    """The active rules; with ``templates``, the commented-out ``#SUBSYSTEM...`` rules instead."""
    found = []
    for number, raw in enumerate(RULES.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        assert not line.endswith("\\"), f"line {number}: keep one rule per line (no continuation)"
        if templates:
            if re.match(r"^#[A-Z]+[{=!+:-]", line):
                found.append(parse_rule(number, line[1:]))
        elif line and not line.startswith("#"):
            found.append(parse_rule(number, line))
    return found


def device_rules() -> list[Rule]:
    return [r for r in rules() if r.ids is not None]


def table_ids() -> set[tuple[str, str]]:
    return {(v, p) for v, p in _USB_PAIR.findall(README.read_text(encoding="utf-8"))}


def test_every_line_is_a_well_formed_rule_and_every_goto_has_its_label() -> None:
    parsed = rules()
    assert len(device_rules()) >= 4
    gotos = {r.get("GOTO") for r in parsed if r.get("GOTO")}
    labels = {r.get("LABEL") for r in parsed if r.get("LABEL")}
    assert gotos and gotos <= labels


def test_the_commented_templates_are_well_formed_once_uncommented() -> None:
    templates = rules(templates=True)
    assert templates, "the to-be-confirmed devices (SIM7600, MT9234MU) keep a template"
    for rule in templates:
        assert rule.get("ENV", "ID_MM_DEVICE_IGNORE", ("=",)) == "1"


def test_every_rule_for_a_device_keeps_modemmanager_off() -> None:
    for rule in device_rules():
        assert rule.get("ENV", "ID_MM_DEVICE_IGNORE", ("=",)) == "1", f"line {rule.number}"


def test_every_tty_rule_gives_a_stable_name_group_dialout_and_mode_0660() -> None:
    tty_rules = [r for r in device_rules() if r.get("SUBSYSTEM", ops=("==",)) == "tty"]
    assert tty_rules
    for rule in tty_rules:
        assert rule.get("SYMLINK", ops=("+=",)) in NAMES, f"line {rule.number}"
        assert rule.get("GROUP", ops=("=",)) == "dialout", f"line {rule.number}"
        assert rule.get("MODE", ops=("=",)) == "0660", f"line {rule.number}"
    named = {r.get("SYMLINK", ops=("+=",)) for r in tty_rules}
    assert named == NAMES


def test_gsm_ports_are_told_apart_by_their_usb_interface_number() -> None:
    for rule in device_rules():
        name = rule.get("SYMLINK", ops=("+=",)) or ""
        if name.startswith("appliance-gsm"):
            assert re.fullmatch(r"\d\d", rule.get("ENV", "ID_USB_INTERFACE_NUM", ("==",)) or ""), f"line {rule.number}"


def test_no_rule_asks_two_parents_for_attributes_at_once() -> None:
    # udev(7): all ATTRS keys of one rule must match on the same parent device, so
    # idVendor (USB device) and bInterfaceNumber (interface) can never both match.
    for rule in rules() + rules(templates=True):
        attributes = {e.attribute for e in rule.expressions if e.key == "ATTRS"}
        assert not ({"idVendor", "idProduct"} & attributes and "bInterfaceNumber" in attributes), f"line {rule.number}"


def test_every_usb_id_in_the_rules_is_in_the_hardware_table_and_back() -> None:
    in_rules = {r.ids for r in device_rules()}
    assert in_rules <= table_ids()
    with_tty_rule = {r.ids for r in device_rules() if r.get("SUBSYSTEM", ops=("==",)) == "tty"}
    assert table_ids() <= with_tty_rule


def test_every_usb_id_a_modem_profile_knows_has_a_rule() -> None:
    known = set()
    for profile in builtin_profiles().values():
        for pattern in profile.identification.patterns:
            if pattern.source == USB_SOURCE and (m := re.fullmatch(r"\^([0-9a-f]{4}):([0-9a-f]{4})\$", pattern.pattern)):
                known.add(m.groups())
    assert known, "the profiles identify modems by USB id too"
    assert known <= {r.ids for r in device_rules()}


def _udevadm_verify_available() -> bool:
    udevadm = shutil.which("udevadm")
    if udevadm is None:
        return False
    probe = subprocess.run([udevadm, "verify", "--help"], capture_output=True, text=True, check=False)
    return probe.returncode == 0


@pytest.mark.skipif(
    not _udevadm_verify_available(),
    reason="no `udevadm verify` here (it came with systemd 253; Debian 12 ships 252)",
)
def test_udevadm_verify_accepts_the_file() -> None:
    result = subprocess.run(
        ["udevadm", "verify", "--resolve-names=never", str(RULES)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_usb_device_rule_keeps_the_modem_out_of_autosuspend() -> None:
    # power/control "on" (kernel ABI sysfs-bus-usb) for every id the rules know, so no
    # power tool can put the modem to sleep between two calls.
    usb_devices = [r for r in rules() + rules(templates=True) if r.get("ENV", "DEVTYPE", ("==",)) == "usb_device"]
    assert usb_devices
    for rule in usb_devices:
        assert rule.get("ATTR", "power/control", ("=",)) == "on", f"line {rule.number}"
