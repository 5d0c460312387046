"""``hw/README.md`` and ``hw/bom.csv`` against each other and against the code they describe.

The installer follows the page, so what it states about the box (setting names,
which modem reports an extension, the store's durability) must be what the code
does, and the bill of materials must add up and list only supported hardware.
"""

from __future__ import annotations

import csv
import re
import tomllib
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from appliance.answering import AnsweringSettings
from appliance.config import SpeechSettings
from appliance.line.factory import parse_line
from appliance.line.profile import builtin_profiles
from appliance.line.ringing import RING_GAP_S
from appliance.line.voice_modem_call import EXTENSION_PICKED_UP

REPO = Path(__file__).resolve().parents[1]
README = REPO / "hw" / "README.md"
BOM = REPO / "hw" / "bom.csv"

COLUMNS = ["config", "kind", "item", "supported", "qty", "unit_eur", "price_note"]
KINDS = {"board", "line", "power", "cooling", "storage", "ups", "rtc", "enclosure", "cable", "antenna", "sim"}
DEVICE_KINDS = {"board", "line"}  # the kinds the supported tables must list
# Sections whose tables list the supported hardware, first column = the device.
SUPPORTED_SECTIONS = ("## Boards", "## Line hardware")
_PRICE = re.compile(r"^\d+\.\d\d$")
_TOTAL_ROW = re.compile(r"^\| `([a-z0-9-]+)` \| .+ \| (\d+(?:\.\d\d)?) \|$")


@dataclass(frozen=True)
class BomLine:
    config: str
    kind: str
    item: str
    supported: str
    qty: int
    unit_eur: Decimal
    price_note: str

    @property
    def line_eur(self) -> Decimal:
        return self.qty * self.unit_eur


def bom() -> list[BomLine]:
    with BOM.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == COLUMNS
        rows = list(reader)
    lines = []
    for number, row in enumerate(rows, start=2):
        assert re.fullmatch(r"[1-9]\d*", row["qty"]), f"bom.csv line {number}: quantity {row['qty']!r}"
        assert _PRICE.match(row["unit_eur"]), f"bom.csv line {number}: unit price {row['unit_eur']!r} (euros, 2 decimals)"
        lines.append(BomLine(row["config"], row["kind"], row["item"], row["supported"], int(row["qty"]),
                             Decimal(row["unit_eur"]), row["price_note"]))
    return lines


def readme() -> str:
    return README.read_text(encoding="utf-8")


def section(title: str) -> str:
    """The text of a ``## `` section, up to the next one."""
    text = readme()
    start = text.index(f"\n{title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:] if end < 0 else text[start:end]


def supported_rows() -> list[list[str]]:
    """Every data row of the tables in the supported-hardware sections, as cells."""
    rows = []
    for title in SUPPORTED_SECTIONS:
        for line in section(title).splitlines():
            if line.startswith("|") and not line.startswith("|---"):
                cells = [c.strip() for c in line.strip("|").split("|")]
                if cells[0] not in ("board", "device", "module"):  # the header rows
                    rows.append(cells)
    return rows


def page_totals() -> dict[str, Decimal]:
    totals = {}
    for line in section("## Bill of materials").splitlines():
        if match := _TOTAL_ROW.match(line):
            totals[match.group(1)] = Decimal(match.group(2))
    return totals


def toml_blocks() -> list[dict]:
    return [tomllib.loads(block) for block in re.findall(r"```toml\n(.*?)```", readme(), flags=re.S)]


def test_every_bom_line_is_a_known_kind_with_a_dated_price_note() -> None:
    lines = bom()
    assert lines
    for line in lines:
        assert line.kind in KINDS, line
        assert line.item.strip(), line
        # Prices are rough: each says where it comes from, or that it is an estimate.
        assert "2026" in line.price_note or "monthly" in line.price_note, line


def test_the_totals_on_the_page_are_the_sums_of_the_bom_lines() -> None:
    sums: dict[str, Decimal] = {}
    for line in bom():
        sums[line.config] = sums.get(line.config, Decimal(0)) + line.line_eur
    assert page_totals() == sums


def test_the_arithmetic_holds_for_a_line_with_a_quantity_above_one() -> None:
    cells = [line for line in bom() if line.qty > 1]
    assert cells, "the 18650 cells and the LTE antennas come in pairs"
    for line in cells:
        assert line.line_eur == line.unit_eur * line.qty > line.unit_eur


def test_every_board_and_line_device_in_the_bom_is_in_the_supported_tables() -> None:
    devices = [row[0] for row in supported_rows()]
    assert "Raspberry Pi 5" in devices
    for line in bom():
        if line.kind in DEVICE_KINDS:
            assert line.supported, f"{line.item}: name its row in the supported tables"
            assert line.supported in line.item, line
            assert any(line.supported in device for device in devices), f"{line.supported!r} is not in hw/README.md"
        else:
            assert not line.supported, f"{line.item}: only boards and line devices name a supported row"


def test_no_bom_line_buys_hardware_the_page_says_not_to_use() -> None:
    rows = supported_rows()
    for line in bom():
        if line.kind in DEVICE_KINDS:
            row = next(r for r in rows if line.supported in r[0])
            assert "do not use" not in " ".join(row).lower(), line.item


def test_each_full_configuration_has_a_board_a_line_device_storage_and_a_ups() -> None:
    kinds: dict[str, set[str]] = {}
    for line in bom():
        kinds.setdefault(line.config, set()).add(line.kind)
    full = {config: k for config, k in kinds.items() if not config.startswith("option-")}
    assert {"analog-pi5", "gsm-pi5", "analog-jetson"} <= set(full)
    for config, k in full.items():
        assert {"board", "line", "storage", "ups"} <= k, config
    assert "antenna" in kinds["gsm-pi5"] and "sim" in kinds["gsm-pi5"]


def test_the_configuration_examples_on_the_page_are_valid() -> None:
    blocks = toml_blocks()
    answering = [AnsweringSettings(**b["answering"]) for b in blocks if "answering" in b]
    assert any(a.during_hours == "after_rings" for a in answering), "the parallel-wiring example"
    lines = {b["line"] for b in blocks if "line" in b} | set(re.findall(r'`line = "([^"]+)"`', readme()))
    assert "modem:/dev/appliance-modem" in lines
    for text in lines:
        parse_line(text)  # raises ConfigError on a line setting the box would refuse


def test_the_ring_timing_the_page_states_is_the_code_s() -> None:
    text = section("## Wiring the phone line")
    assert f"has not rung for {RING_GAP_S:g} s (`RING_GAP_S`)" in text
    assert f"rings = {AnsweringSettings(during_hours='after_rings').rings}" in text


def test_only_the_chipsets_the_page_credits_report_an_extension_lifted() -> None:
    # The wiring advice (prefer a Conexant when the line is shared) rests on this.
    profiles = builtin_profiles()
    reporting = {name for name, p in profiles.items() if p.dle is not None and p.dle.extension_off_hook_codes}
    assert reporting == {"cx930xx"}
    text = section("## Wiring the phone line")
    assert f"`{EXTENSION_PICKED_UP}`" in text


def test_the_durability_and_cache_figures_the_page_states_are_the_code_s() -> None:
    db_source = (REPO / "appliance" / "store" / "db.py").read_text(encoding="utf-8")
    assert "PRAGMA journal_mode = WAL" in db_source and "PRAGMA synchronous = FULL" in db_source
    assert "`synchronous = FULL`" in section("## Power")
    assert f"`speech.prompt_cache_mb = {SpeechSettings().prompt_cache_mb}`" in section("## Storage")
