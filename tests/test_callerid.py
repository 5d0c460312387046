"""Caller ID parsing, table-driven from the telephony reference's examples (§1.5, §1.9, §2.1)."""

from __future__ import annotations

import pytest

from appliance.line.callerid import CallerId, CallerIdCollector, parse_caller_id

CASES: list[tuple[str, list[str], CallerId | None]] = [
    (
        "Askey manual example (Hayes spacing)",
        ["RING", "DATE = 0321", "TIME = 1405", "NMBR = 504551234", "NAME = A N OTHER", "RING"],
        CallerId("504551234", "A N OTHER", False, False, "0321", "1405", "north-american"),
    ),
    (
        "USR5637 incoming call (§1.9)",
        ["RING", "DATE=0117", "TIME=1452", "NMBR=5035551234", "NAME=WIRELESS CALLER", "RING"],
        CallerId("5035551234", "WIRELESS CALLER", False, False, "0117", "1452", "north-american"),
    ),
    (
        "Conexant/Zoom spacing (§1.9)",
        ["RING", "DATE = 0117", "TIME = 1452", "NMBR = 5035551234", "NAME = WIRELESS CALLER"],
        CallerId("5035551234", "WIRELESS CALLER", False, False, "0117", "1452", "north-american"),
    ),
    (
        "UK USR5637 log: before the first ring, no NAME",
        ["DATE=1203", "TIME=1452", "NMBR=07xxxxxxxx7", "RING"],
        CallerId("07xxxxxxxx7", None, False, False, "1203", "1452", "etsi"),
    ),
    (
        "France/ETSI: before the first ring, leading 0 kept",
        ["DATE=0805", "TIME=0915", "NMBR=0612345678", "RING", "RING"],
        CallerId("0612345678", None, False, False, "0805", "0915", "etsi"),
    ),
    (
        "withheld number (P) and withheld name",
        ["RING", "DATE=0117", "TIME=1452", "NMBR=P", "NAME=P"],
        CallerId(None, None, True, False, "0117", "1452", "north-american"),
    ),
    (
        "unavailable number (O), out of area",
        ["RING", "DATE = 0117", "TIME = 1452", "NMBR = O", "NAME = O"],
        CallerId(None, None, False, True, "0117", "1452", "north-american"),
    ),
    (
        "withheld in France: no NAME, before the ring",
        ["DATE=0117", "TIME=1452", "NMBR=P", "RING"],
        CallerId(None, None, True, False, "0117", "1452", "etsi"),
    ),
    (
        "a NAME containing DATE does not become a date",
        ["RING", "NMBR=5035551234", "NAME=UPDATE CENTER"],
        CallerId("5035551234", "UPDATE CENTER", False, False, None, None, "north-american"),
    ),
    (
        "MESG and unrelated lines are ignored",
        ["RING", "OK", "DATE=0117", "MESG=060342", "TIME=1452", "NMBR=5035551234"],
        CallerId("5035551234", None, False, False, "0117", "1452", "north-american"),
    ),
    (
        "GSM +CLIP after RING (§2.2)",
        ["RING", '+CLIP: "+15035551234",145,"",0,"",0'],
        CallerId("+15035551234", None, False, False, None, None, "3gpp-clip"),
    ),
    (
        "GSM +CLIP with a phonebook name",
        ['+CRING: VOICE', '+CLIP: "0612345678",129,"",0,"Cabinet Dupont",0'],
        CallerId("0612345678", "Cabinet Dupont", False, False, None, None, "3gpp-clip"),
    ),
    (
        "GSM +CLIP withheld (validity 1)",
        ["RING", '+CLIP: "",128,"",0,"",1'],
        CallerId(None, None, True, False, None, None, "3gpp-clip"),
    ),
    (
        "GSM +CLIP not available (validity 2)",
        ["RING", '+CLIP: "",128,"",0,"",2'],
        CallerId(None, None, False, True, None, None, "3gpp-clip"),
    ),
    (
        "GSM +CLIP short form",
        ['+CLIP: "+33612345678",145'],
        CallerId("+33612345678", None, False, False, None, None, "3gpp-clip"),
    ),
    ("only RING: no caller ID service", ["RING", "RING", "RING"], None),
    ("DATE and TIME but no number yet", ["RING", "DATE=0117", "TIME=1452"], None),
    ("nothing", [], None),
]


@pytest.mark.parametrize(("lines", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_parse_caller_id(lines: list[str], expected: CallerId | None) -> None:
    assert parse_caller_id(lines) == expected


def test_collector_is_complete_once_the_number_arrives_and_takes_the_name_after() -> None:
    collector = CallerIdCollector()
    collector.feed("RING")
    collector.feed("DATE=0117")
    collector.feed("TIME=1452")
    assert not collector.complete and collector.result is None
    collector.feed("NMBR=5035551234")
    assert collector.complete
    assert collector.result is not None and collector.result.name is None
    collector.feed("NAME=WIRELESS CALLER")
    assert collector.result.name == "WIRELESS CALLER"
    assert not collector.closed
    collector.feed("RING")
    assert collector.closed and collector.rings == 2


def test_call_waiting_caller_id_replaces_the_closed_record() -> None:
    collector = CallerIdCollector()
    for line in ["RING", "NMBR=5035551234", "RING", "DATE=0117", "NMBR=5035550000"]:
        collector.feed(line)
    assert collector.result is not None
    assert collector.result.number == "5035550000"
    assert collector.result.date == "0117"


def test_a_repeated_tag_starts_a_new_record_without_a_ring_in_between() -> None:
    lines = ["DATE=0117", "TIME=1452", "NMBR=0611111111", "DATE=0117", "TIME=1453", "NMBR=0622222222"]
    result = parse_caller_id(lines)
    assert result is not None and (result.number, result.time) == ("0622222222", "1453")


def test_reset_forgets_everything() -> None:
    collector = CallerIdCollector()
    collector.feed("RING")
    collector.feed("NMBR=5035551234")
    collector.reset()
    assert not collector.complete and collector.result is None and collector.rings == 0


def test_lines_with_line_endings_and_padding_still_parse() -> None:
    result = parse_caller_id(["\r\n", "  NMBR = 0612345678  \r\n"])
    assert result is not None and result.number == "0612345678"
