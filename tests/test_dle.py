"""The DLE decoder against the reference's test vectors and a recorded call.

Vectors are Appendix A of the telephony reference; the recording is the byte
dialogue of §1.9 (a caller presses 1 during the greeting, leaves a message,
hangs up: dial tone, then the box aborts the recording).
"""

from __future__ import annotations

from hypothesis import given, strategies as st

from appliance.line.dle import (
    ABORT_RX,
    END,
    END_TX,
    END_TX_CONEXANT_SAFE,
    Audio,
    DleDecoder,
    DleEvent,
    DleItem,
    shield,
)

from .parser_items import merged_dle


def decode(*reads: bytes) -> list[DleItem]:
    decoder = DleDecoder()
    items: list[DleItem] = []
    for read in reads:
        items += decoder.feed(read)
    return merged_dle(items)


def codes(items: list[DleItem]) -> list[str]:
    return [item.code for item in items if isinstance(item, DleEvent)]


def audio(items: list[DleItem]) -> bytes:
    return b"".join(item.data for item in items if isinstance(item, Audio))


# --- Appendix A test vectors -------------------------------------------------


def test_doubled_dle_is_one_data_byte_and_not_an_escape_for_the_next_byte() -> None:
    # 10 10 68: a data byte 0x10 then 'h', not the event <DLE>h
    assert decode(bytes.fromhex("80 10 10 68 81")) == [Audio(bytes.fromhex("80 10 68 81"))]


def test_escape_split_across_two_reads_decodes_as_one() -> None:
    items = decode(bytes.fromhex("80 10"), bytes.fromhex("64 80"))
    assert items == [Audio(b"\x80"), DleEvent("d", 0x64), Audio(b"\x80")]


def test_a_held_key_inside_start_stop_markers_is_one_press() -> None:
    items = decode(bytes.fromhex("10 2F 10 30 10 30 10 30 10 7E"))
    assert items == [DleEvent("0", 0x30)]
    assert items[0].digit == "0"  # type: ignore[union-attr]


def test_digit_then_audio_then_end_of_stream() -> None:
    items = decode(bytes.fromhex("10 35 7F 10 03"))
    assert items == [DleEvent("5", 0x35), Audio(b"\x7f"), DleEvent(END, 0x03)]


def test_dle_sub_is_two_data_bytes() -> None:
    assert decode(bytes.fromhex("10 1A")) == [Audio(b"\x10\x10")]


def test_shield_doubles_every_dle() -> None:
    assert shield(bytes.fromhex("00 10 03 10 10 ff")) == bytes.fromhex("00 10 10 03 10 10 10 10 ff")
    assert shield(b"") == b""


# --- a recorded call (§1.9) --------------------------------------------------

GREETING_PHASE = (
    # +VTX: the modem sends only events while we play; the caller presses 1
    b"\x10/\x101\x101\x101\x10~"
    b"\x10u"  # we fell behind once
)
RECORD_PHASE = (
    b"\x7f\x80\x81\x10\x10\x82"  # audio with a 0x10 sample
    b"\x10/\x10#\x10#\x10~"  # caller presses #
    b"\x83\x10\x1a\x84"  # <DLE><SUB>: two 0x10 samples
    b"\x10d"  # dial tone: the caller hung up
    b"\x80\x80"
    b"\x10\x03\r\nOK\r\n"  # our <DLE>! was answered: end, then the result code
)
RECORDING = GREETING_PHASE + RECORD_PHASE

EXPECTED = [
    DleEvent("1", ord("1")),
    DleEvent("u", ord("u")),
    Audio(b"\x7f\x80\x81\x10\x82"),
    DleEvent("#", ord("#")),
    Audio(b"\x83\x10\x10\x84"),
    DleEvent("d", ord("d")),
    Audio(b"\x80\x80"),
    DleEvent(END, 0x03),
]


def test_recorded_call_decodes_to_presses_events_and_clean_audio() -> None:
    decoder = DleDecoder()
    assert merged_dle(decoder.feed(RECORDING)) == EXPECTED
    assert decoder.ended
    assert decoder.take_rest() == b"\r\nOK\r\n"  # for the AT parser, never audio
    assert decoder.take_rest() == b""


def test_recorded_call_split_at_every_position_gives_the_same_items() -> None:
    for cut in range(len(RECORDING) + 1):
        decoder = DleDecoder()
        items = merged_dle(decoder.feed(RECORDING[:cut]) + decoder.feed(RECORDING[cut:]))
        assert items == EXPECTED, f"split at {cut}"
        assert decoder.take_rest() == b"\r\nOK\r\n", f"split at {cut}"


def test_recorded_call_fed_one_byte_at_a_time() -> None:
    assert decode(*(bytes([b]) for b in RECORDING)) == EXPECTED


def test_bytes_after_end_of_stream_are_kept_for_later_reads_too() -> None:
    decoder = DleDecoder()
    assert codes(decoder.feed(b"\x80\x10\x03\r\n")) == [END]
    assert decoder.feed(b"OK\r\n") == []
    assert decoder.take_rest() == b"\r\nOK\r\n"


# --- key presses -------------------------------------------------------------


def test_digits_without_markers_are_one_press_each() -> None:
    # A modem that sends one code per press: pressing 5 twice is two presses.
    assert codes(decode(b"\x105\x80\x105")) == ["5", "5"]


def test_two_held_keys_in_two_groups_are_two_presses() -> None:
    assert codes(decode(b"\x10/\x107\x107\x10~\x80\x10/\x107\x107\x107\x10~")) == ["7", "7"]


def test_key_change_inside_a_group_whose_stop_marker_was_lost() -> None:
    assert codes(decode(b"\x10/\x101\x101\x102\x102\x10~")) == ["1", "2"]


def test_si2493_stop_marker_typo_closes_the_group() -> None:
    # Its manual prints the stop marker as 0x7F: it must close the group, not be an event.
    assert codes(decode(b"\x10/\x109\x109\x10\x7f\x10/\x109\x10\x7f")) == ["9", "9"]


def test_all_sixteen_keys_are_dtmf() -> None:
    keys = "0123456789*#ABCD"
    items = decode(b"".join(b"\x10" + k.encode() for k in keys))
    assert [item.digit for item in items if isinstance(item, DleEvent)] == list(keys)


def test_call_progress_events_are_not_digits() -> None:
    items = decode(b"\x10b\x10d\x10s\x10q\x10l\x10h\x10H\x10R")
    assert codes(items) == ["b", "d", "s", "q", "l", "h", "H", "R"]
    assert all(item.digit is None for item in items if isinstance(item, DleEvent))


# --- unknown and odd codes ---------------------------------------------------


def test_unknown_codes_are_reported_and_never_become_audio() -> None:
    items = decode(b"\x80\x10Z\x81\x10\x00\x82\x10\x1b\x83")
    assert items == [
        Audio(b"\x80"),
        DleEvent("Z", ord("Z")),
        Audio(b"\x81"),
        DleEvent("0x00", 0x00),
        Audio(b"\x82"),
        DleEvent("0x1b", 0x1B),
        Audio(b"\x83"),
    ]


def test_complex_event_packet_is_one_event_with_its_body() -> None:
    items = decode(b"\x80\x10XNMBR=5035551234\x10\x10\x10.\x81")
    assert items == [
        Audio(b"\x80"),
        DleEvent("X", ord("X"), b"NMBR=5035551234\x10"),
        Audio(b"\x81"),
    ]


def test_complex_event_packet_without_end_marker_gives_the_audio_back() -> None:
    items = decode(b"\x10X" + b"\x41" * 600)
    assert isinstance(items[0], DleEvent) and items[0].code == "X"
    assert len(items[0].payload) == 512
    assert items[1:] == [Audio(b"\x41" * 88)]


# --- the DTE→DCE side --------------------------------------------------------


def test_commands_to_the_modem_are_the_v253_bytes() -> None:
    assert END_TX == b"\x10\x03"
    assert ABORT_RX == b"\x10\x21"
    # on a conforming modem the Conexant-safe form is a 0x10 sample, then the end
    assert decode(END_TX_CONEXANT_SAFE) == [Audio(b"\x10"), DleEvent(END, 0x03)]


# --- properties --------------------------------------------------------------


@given(st.binary(max_size=2000))
def test_shielded_audio_decodes_to_itself_with_no_events(data: bytes) -> None:
    items = DleDecoder().feed(shield(data))
    assert all(isinstance(item, Audio) for item in items)
    assert audio(items) == data
    assert len(items) <= 1  # one read, one Audio


@given(st.binary(max_size=500), st.lists(st.integers(min_value=0, max_value=1000), max_size=6))
def test_shielded_audio_survives_any_cutting_into_reads(data: bytes, cuts: list[int]) -> None:
    wire = shield(data)
    bounds = sorted({min(c, len(wire)) for c in cuts} | {0, len(wire)})
    reads = [wire[a:b] for a, b in zip(bounds, bounds[1:])]
    assert decode(*reads) == ([Audio(data)] if data else [])


@given(st.binary(max_size=300), st.integers(min_value=0, max_value=300))
def test_any_bytes_split_anywhere_decode_like_one_read(data: bytes, cut: int) -> None:
    whole = DleDecoder()
    split = DleDecoder()
    assert merged_dle(split.feed(data[:cut]) + split.feed(data[cut:])) == merged_dle(whole.feed(data))
    assert split.take_rest() == whole.take_rest()
