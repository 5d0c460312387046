"""AT response framing against the byte dialogues of the telephony reference.

The recordings are the modem's side (DCE→DTE) of §1.4 and §1.9: a USR5637 and a
Conexant modem taking an incoming call, with caller ID, then going into voice mode.
"""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from appliance.errors import LineError
from appliance.line.at import (
    AtItem,
    AtParser,
    Echo,
    FinalResult,
    Garbage,
    InformationLine,
    Urc,
    format_command,
)
from appliance.line.callerid import CallerIdCollector
from appliance.line.dle import DleEvent

from .parser_items import merged_at

OK = FinalResult("OK", False)


def parse(data: bytes, **flags: bool) -> list[AtItem]:
    return AtParser(**flags).feed(data)


def assert_same_at_every_split(data: bytes, expected: list[AtItem], **flags: bool) -> None:
    for cut in range(len(data) + 1):
        parser = AtParser(**flags)
        items = merged_at(parser.feed(data[:cut]) + parser.feed(data[cut:]))
        assert items == expected, f"split at {cut}: {data[:cut]!r} | {data[cut:]!r}"


# --- recorded dialogues ------------------------------------------------------

# §1.9, USR5637: the modem's bytes from the first RING to the start of +VTX.
USR_INCOMING = (
    b"\r\nRING\r\n"
    b"\r\nDATE=0117\r\n\r\nTIME=1452\r\n\r\nNMBR=5035551234\r\n\r\nNAME=WIRELESS CALLER\r\n"
    b"\r\nRING\r\n"
    b"\r\nOK\r\n"  # AT+FCLASS=8
    b"\r\nOK\r\n"  # AT+VSM=131,8000
    b"\r\nOK\r\n"  # AT+VSD=128,0
    b"\r\nOK\r\n\x10H"  # AT+VLS=1, and the USR's <DLE>H self-confirmation
    b"\r\nCONNECT\r\n"  # AT+VTX
)
USR_EXPECTED: list[AtItem] = [
    Urc("RING", ""),
    Urc("DATE", "0117"),
    Urc("TIME", "1452"),
    Urc("NMBR", "5035551234"),
    Urc("NAME", "WIRELESS CALLER"),
    Urc("RING", ""),
    OK,
    OK,
    OK,
    OK,
    DleEvent("H", ord("H")),
    FinalResult("CONNECT", False),
]

# §1.9, Conexant in +FCLASS=8: rings as <DLE>R, spaces around '=' in caller ID.
CONEXANT_INCOMING = (
    b"\x10R"
    b"\r\nDATE = 0117\r\n\r\nTIME = 1452\r\n\r\nNMBR = 5035551234\r\n\r\nNAME = WIRELESS CALLER\r\n"
    b"\x10R"
    b"\r\nOK\r\n"  # AT+VSM=1,8000,0,0
    b"\r\nOK\r\n"  # AT+VSD=0,0
    b"\r\nOK\r\n"  # AT+VLS=1
    b"\r\nCONNECT\r\n"  # AT+VTX
)
CONEXANT_EXPECTED: list[AtItem] = [
    DleEvent("R", ord("R")),
    Urc("DATE", "0117"),
    Urc("TIME", "1452"),
    Urc("NMBR", "5035551234"),
    Urc("NAME", "WIRELESS CALLER"),
    DleEvent("R", ord("R")),
    OK,
    OK,
    OK,
    FinalResult("CONNECT", False),
]

# §1.4 with echo still on after ATZ: ATE0's own echo, then no more echoes.
IDENTIFY = (
    b"ATZ\r\r\nOK\r\n"
    b"ATE0\r\r\nOK\r\n"
    b"\r\nOK\r\n"  # ATV1
    b"\r\n5601\r\n\r\nOK\r\n"  # ATI0
    b"\r\nU.S. Robotics 56K FAX USB V1.2.23\r\n\r\nOK\r\n"  # ATI3
    b'\r\n128,"8-BIT LINEAR",(7200,8000,11025)\r\n'  # AT+VSM=?
    b'\r\n131,"8-BIT ULAW",(8000)\r\n'
    b"\r\nOK\r\n"
)
IDENTIFY_EXPECTED: list[AtItem] = [
    Echo("ATZ"),
    OK,
    Echo("ATE0"),
    OK,
    OK,
    InformationLine("5601"),
    OK,
    InformationLine("U.S. Robotics 56K FAX USB V1.2.23"),
    OK,
    InformationLine('128,"8-BIT LINEAR",(7200,8000,11025)'),
    InformationLine('131,"8-BIT ULAW",(8000)'),
    OK,
]

# §2.2, SIM7600: an incoming call, answered, then the caller hangs up.
SIM7600_CALL = (
    b"\r\nRING\r\n"
    b'\r\n+CLIP: "+15035551234",145,"",0,"",0\r\n'
    b'\r\n+CLCC: 4,1,4,0,0,"+15035551234",145\r\n'
    b"\r\nVOICE CALL: BEGIN\r\n\r\nOK\r\n"  # ATA
    b"\r\n+RXDTMF: 5\r\n"
    b"\r\nVOICE CALL: END: 000008\r\n"
    b"\r\nNO CARRIER\r\n"
)
SIM7600_EXPECTED: list[AtItem] = [
    Urc("RING", ""),
    Urc("+CLIP", '"+15035551234",145,"",0,"",0'),
    Urc("+CLCC", '4,1,4,0,0,"+15035551234",145'),
    Urc("VOICE CALL", "BEGIN"),
    OK,
    Urc("+RXDTMF", "5"),
    Urc("VOICE CALL", "END: 000008"),
    FinalResult("NO CARRIER", False),
]

RECORDINGS = [
    pytest.param(USR_INCOMING, USR_EXPECTED, {}, id="usr5637-incoming"),
    pytest.param(CONEXANT_INCOMING, CONEXANT_EXPECTED, {}, id="conexant-incoming"),
    pytest.param(IDENTIFY, IDENTIFY_EXPECTED, {"echo": True}, id="identify-with-echo"),
    pytest.param(SIM7600_CALL, SIM7600_EXPECTED, {}, id="sim7600-call"),
]


@pytest.mark.parametrize(("data", "expected", "flags"), RECORDINGS)
def test_recorded_dialogue(data: bytes, expected: list[AtItem], flags: dict[str, bool]) -> None:
    assert parse(data, **flags) == expected


@pytest.mark.parametrize(("data", "expected", "flags"), RECORDINGS)
def test_recorded_dialogue_split_at_every_position(
    data: bytes, expected: list[AtItem], flags: dict[str, bool]
) -> None:
    assert_same_at_every_split(data, expected, **flags)


@pytest.mark.parametrize(("data", "expected", "flags"), RECORDINGS)
def test_recorded_dialogue_one_byte_at_a_time(
    data: bytes, expected: list[AtItem], flags: dict[str, bool]
) -> None:
    parser = AtParser(**flags)
    items: list[AtItem] = []
    for byte in data:
        items += parser.feed(bytes([byte]))
    assert items == expected


def test_caller_id_urcs_feed_the_collector() -> None:
    collector = CallerIdCollector()
    for item in parse(CONEXANT_INCOMING):
        if isinstance(item, Urc):
            collector.feed(item.line)
    assert collector.result is not None
    assert (collector.result.number, collector.result.name) == ("5035551234", "WIRELESS CALLER")


# --- framing details ---------------------------------------------------------


def test_echo_off_first_line_is_empty_and_ignored() -> None:
    assert parse(b"\r\nOK\r\n") == [OK]


def test_unsolicited_ring_between_a_command_and_its_ok() -> None:
    items = parse(b"\r\nRING\r\n\r\n5601\r\n\r\nOK\r\n")
    assert items == [Urc("RING", ""), InformationLine("5601"), OK]


def test_expected_echo_is_recognised_without_the_echo_flag() -> None:
    parser = AtParser()
    parser.expect_echo("AT+FCLASS=8")
    assert parser.feed(b"AT+FCLASS=8\r\r\nOK\r\n") == [Echo("AT+FCLASS=8"), OK]
    # once the result came, the same text is no longer an echo
    assert parser.feed(b"AT+FCLASS=8\r\n") == [InformationLine("AT+FCLASS=8")]


def test_expected_echo_waits_past_a_ring() -> None:
    parser = AtParser()
    parser.expect_echo("ATI0")
    assert parser.feed(b"\r\nRING\r\nATI0\r\r\n5601\r\n\r\nOK\r\n") == [
        Urc("RING", ""),
        Echo("ATI0"),
        InformationLine("5601"),
        OK,
    ]


def test_without_echo_a_line_starting_with_at_is_information() -> None:
    assert parse(b"\r\nATX\r\n") == [InformationLine("ATX")]


@pytest.mark.parametrize(
    ("line", "code"),
    [
        (b"OK", "OK"),
        (b"ERROR", "ERROR"),
        (b"CONNECT", "CONNECT"),
        (b"CONNECT 33600", "CONNECT"),
        (b"NO CARRIER", "NO CARRIER"),
        (b"BUSY", "BUSY"),
        (b"NO ANSWER", "NO ANSWER"),
        (b"NO DIALTONE", "NO DIALTONE"),
        (b"NO DIAL TONE", "NO DIALTONE"),
        (b"VCON", "VCON"),
        (b"+CME ERROR: 10", "ERROR"),
        (b"+CMS ERROR: 500", "ERROR"),
    ],
)
def test_verbose_final_results(line: bytes, code: str) -> None:
    [item] = parse(b"\r\n" + line + b"\r\n")
    assert item == FinalResult(code, False)
    assert isinstance(item, FinalResult) and item.text == line.decode()


@pytest.mark.parametrize(
    ("digit", "code"),
    [(b"0", "OK"), (b"1", "CONNECT"), (b"3", "NO CARRIER"), (b"4", "ERROR"),
     (b"6", "NO DIALTONE"), (b"7", "BUSY"), (b"8", "NO ANSWER")],
)
def test_numeric_final_results_end_with_cr_only(digit: bytes, code: str) -> None:
    # V0: "<code><CR>" with no LF; the item must come without waiting for more bytes
    assert parse(digit + b"\r", numeric=True) == [FinalResult(code, True)]


def test_numeric_dialogue_with_information_text_and_ring() -> None:
    data = b"ATI0\r5601\r\n0\r2\r2\r"  # echo, ATI0's answer, OK, two rings (V0)
    expected: list[AtItem] = [
        Echo("ATI0"),
        InformationLine("5601"),
        FinalResult("OK", True),
        Urc("RING", ""),
        Urc("RING", ""),
    ]
    assert parse(data, numeric=True, echo=True) == expected
    assert_same_at_every_split(data, expected, numeric=True, echo=True)


def test_digits_are_information_text_in_verbose_mode() -> None:
    assert parse(b"\r\n0\r\n\r\n4\r\n") == [InformationLine("0"), InformationLine("4")]


@pytest.mark.parametrize(
    ("line", "urc"),
    [
        (b"RING", Urc("RING", "")),
        (b"+CRING: VOICE", Urc("+CRING", "VOICE")),
        (b"DATE = 0117", Urc("DATE", "0117")),
        (b"NAME=A N OTHER", Urc("NAME", "A N OTHER")),
        (b"MESG=060342", Urc("MESG", "060342")),
        (b'+CMTI: "SM",3', Urc("+CMTI", '"SM",3')),
        (b"MISSED_CALL: 11:53AM 08020866256", Urc("MISSED_CALL", "11:53AM 08020866256")),
        (b'+QIND: "ccinfo",1,1,-1,0,0,"0612345678",129', Urc("+QIND", '"ccinfo",1,1,-1,0,0,"0612345678",129')),
    ],
)
def test_unsolicited_result_codes(line: bytes, urc: Urc) -> None:
    [item] = parse(b"\r\n" + line + b"\r\n")
    assert item == urc
    assert isinstance(item, Urc) and item.line == line.decode()


def test_an_answer_to_a_query_is_information_not_unsolicited() -> None:
    assert parse(b"\r\n+CPCMREG: 1\r\n\r\nOK\r\n") == [InformationLine("+CPCMREG: 1"), OK]


# --- noise -------------------------------------------------------------------


def test_nuls_around_text_are_reported_and_the_text_still_read() -> None:
    assert parse(b"\x00\x00\r\nOK\x00\r\n") == [Garbage(b"\x00\x00\x00"), OK]


def test_binary_line_is_garbage_and_the_next_line_still_parses() -> None:
    assert parse(b"\xff\x7f\x80\x81\r\nOK\r\n") == [Garbage(b"\xff\x7f\x80\x81"), OK]


def test_audio_from_a_modem_left_in_voice_mode_cannot_grow_the_buffer() -> None:
    items = merged_at(parse(b"\x80" * 10_000))
    assert items == [Garbage(b"\x80" * 8192)]  # whole 2048-byte blocks; the rest is pending


def test_a_dle_before_a_non_code_byte_is_noise_and_keeps_the_line_end() -> None:
    assert parse(b"\x80\x10\r\nOK\r\n") == [Garbage(b"\x80\x10"), OK]


def test_dle_end_of_stream_in_command_state() -> None:
    assert parse(b"\x10\x03\r\nOK\r\n") == [DleEvent("end", 0x03), OK]


@given(st.binary(max_size=400), st.booleans(), st.booleans())
def test_a_babbling_modem_never_raises(data: bytes, echo: bool, numeric: bool) -> None:
    parser = AtParser(echo=echo, numeric=numeric)
    items = parser.feed(data) + parser.feed(b"\r\nOK\r\n")
    assert all(isinstance(item, AtItem) for item in items)  # type: ignore[arg-type]
    assert items[-1] == OK  # and the modem, once sane again, is understood


@given(st.binary(max_size=200), st.integers(min_value=0, max_value=200))
def test_any_bytes_split_anywhere_parse_like_one_read(data: bytes, cut: int) -> None:
    whole = AtParser()
    split = AtParser()
    assert merged_at(split.feed(data[:cut]) + split.feed(data[cut:])) == merged_at(whole.feed(data))


# --- commands ----------------------------------------------------------------


def test_format_command() -> None:
    assert format_command("AT+FCLASS=8") == b"AT+FCLASS=8\r"
    assert format_command("AT+VTS=[933,933,120]") == b"AT+VTS=[933,933,120]\r"


@pytest.mark.parametrize("bad", ["", "ATZ\r", "AT\nZ", "AT+CMGS=\"é\"", "AT\x10"])
def test_format_command_rejects_what_is_not_one_command_line(bad: str) -> None:
    with pytest.raises(LineError) as caught:
        format_command(bad)
    assert caught.value.code == "at-command-invalid"
