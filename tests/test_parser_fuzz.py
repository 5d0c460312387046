"""Properties of the sans-I/O parsers, fed modem-like and random bytes cut anywhere.

What each module promises, and what is checked here beyond the example tests in
test_at.py, test_dle.py and test_callerid.py (which cut a stream once):

    at.py        a babbling modem gives Garbage, never an exception; how the bytes
                 are cut into reads (any number of cuts, or one byte at a time)
                 changes nothing; every printable line is exactly one item
    dle.py       shield then decode is the identity for any audio and any events
                 in between, cut anywhere (an escape split across reads survives);
                 every 0x10 is doubled; one key press is one digit however long held
    callerid.py  a caller-ID burst, as the modem prints it, gives the same caller
                 through the AT parser whatever the cuts; lines that are not caller
                 ID change nothing; any line is accepted
    vsm.py       any text is accepted; a listing in either vendor layout reads back;
                 the best format wins whatever the order of the listing

gsm.py parses its URCs with ``AtParser`` and ``CallerIdCollector`` inside its I/O
classes and has no public pure function of its own, so its URCs (+CLIP, +CLCC,
VOICE CALL, MISSED_CALL, "> ") are part of the AT and caller-ID streams here.
"""

from __future__ import annotations

import string

from hypothesis import given, settings, strategies as st

from appliance.errors import LineError
from appliance.line.at import AtItem, AtParser, Echo, FinalResult, InformationLine, Urc, format_command
from appliance.line.callerid import CallerId, CallerIdCollector, parse_caller_id
from appliance.line.dle import END, ETX, Audio, DleDecoder, DleEvent, DleItem, event_code, shield
from appliance.line.profile import builtin_profiles
from appliance.line.vsm import ENCODING_PREFERENCE, parse_vsm_methods, pick_voice_format

from .parser_items import merged_at, merged_dle

FAST = settings(max_examples=150, deadline=None)
CUTS = st.lists(st.integers(min_value=0, max_value=2500), max_size=24)
DLE = 0x10


def pieces(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` cut at the given offsets: the reads a serial port might deliver."""
    bounds = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(bounds, bounds[1:])]


def one_by_one(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


# --- at.py ---------------------------------------------------------------------------------

_MODEM_LINES = st.sampled_from([
    b"OK", b"ERROR", b"RING", b"RING 2", b"CONNECT", b"CONNECT 33600", b"NO CARRIER", b"VCON", b"NO DIAL TONE",
    b"+CME ERROR: 10", b"+CMS ERROR: 500", b"0", b"2", b"4", b"5601", b"56000", b"U.S. Robotics 56K FAX USB V1.2.23",
    b"DATE = 0117", b"TIME=1452", b"NMBR=5035551234", b"NAME=WIRELESS CALLER", b"AT+VSM=?", b"ATI0", b"at+fclass=8",
    b'131,"8-BIT ULAW",(8000)', b'+CLIP: "+15035551234",145,"",0,"",0', b"+CRING: VOICE",
    b'+CLCC: 4,1,0,0,0,"+15035551234",145', b"VOICE CALL: BEGIN", b"VOICE CALL: END: 000008",
    b"MISSED_CALL: 11:53AM 08020866256", b"+RXDTMF: 5", b'+QIND: "ccinfo",1,1,-1,0,0,"+336",145', b"+CMGS: 124",
])
_TERMINATORS = st.sampled_from([b"\r\n", b"\r", b"\n", b"\r\r\n", b"\n\r", b"\r\n\r\n"])
_NOISE = st.one_of(
    st.binary(max_size=16),  # anything at all
    st.sampled_from([b"\x00\x00\x00", b"\x10R", b"\x10H", b"\x10\x03", b"\x10\x10", b"\x10", b"\x10\r", b"> "]),
    st.just(b"\x80" * 2100),  # audio from a modem left in +VRX: longer than any line
)
_PRINTABLE = st.text(alphabet=[chr(c) for c in range(0x20, 0x7F)], min_size=1, max_size=60)
_LINE_TOKEN = st.tuples(st.one_of(_MODEM_LINES, _PRINTABLE.map(str.encode)), _TERMINATORS).map(b"".join)
MODEM_STREAM = st.lists(st.one_of(_LINE_TOKEN, _LINE_TOKEN, _NOISE), max_size=30).map(b"".join)


def at_items(reads: list[bytes], *, echo: bool, numeric: bool, expect: str | None) -> list[AtItem]:
    parser = AtParser(echo=echo, numeric=numeric)
    if expect is not None:
        parser.expect_echo(expect)
    items: list[AtItem] = []
    for read in reads:
        items += parser.feed(read)
    return merged_at(items)


@FAST
@given(MODEM_STREAM, CUTS, st.booleans(), st.booleans(), st.sampled_from([None, "ATI0", "AT+VSM=?"]))
def test_at_items_do_not_depend_on_how_the_stream_is_cut_into_reads(
    data: bytes, cuts: list[int], echo: bool, numeric: bool, expect: str | None
) -> None:
    whole = at_items([data], echo=echo, numeric=numeric, expect=expect)
    assert at_items(pieces(data, cuts), echo=echo, numeric=numeric, expect=expect) == whole
    assert at_items(one_by_one(data), echo=echo, numeric=numeric, expect=expect) == whole


def _text(item: AtItem) -> str | None:
    match item:
        case FinalResult(text=text) | InformationLine(text=text) | Echo(text=text):
            return text
        case Urc(line=line):
            return line
    return None


@FAST
@given(st.lists(st.tuples(_PRINTABLE, _TERMINATORS), max_size=20), CUTS, st.booleans(), st.booleans())
def test_every_printable_line_is_exactly_one_item_with_its_text(
    lines: list[tuple[str, bytes]], cuts: list[int], echo: bool, numeric: bool
) -> None:
    data = b"".join(text.encode() + end for text, end in lines)
    items = at_items(pieces(data, cuts), echo=echo, numeric=numeric, expect=None)
    assert [_text(item) for item in items] == [text.strip() for text, _ in lines if text.strip()]


@FAST
@given(st.text(max_size=40))
def test_format_command_either_frames_one_command_line_or_refuses_it(command: str) -> None:
    try:
        framed = format_command(command)
    except LineError as err:  # the one documented refusal
        assert err.code == "at-command-invalid"
    else:
        assert framed == command.encode("ascii") + b"\r" and b"\n" not in framed and framed.count(b"\r") == 1


# --- dle.py --------------------------------------------------------------------------------

# Bytes that, after a DLE, are a plain event: not data (DLE, SUB), not the end (ETX),
# not DTMF group markers (/ ~ and the 0x7F typo), not a complex event packet (X).
_PLAIN_CODES = sorted(set(range(256)) - {DLE, 0x1A, ETX, ord("/"), ord("~"), 0x7F, ord("X")})
_AUDIO = st.lists(st.one_of(st.just(b"\x10"), st.binary(max_size=8)), max_size=8).map(b"".join)  # DLE-rich


def dle_decode(reads: list[bytes]) -> tuple[list[DleItem], bytes]:
    decoder = DleDecoder()
    items: list[DleItem] = []
    for read in reads:
        items += decoder.feed(read)
    return merged_dle(items), decoder.take_rest()


@FAST
@given(
    st.lists(st.tuples(_AUDIO, st.sampled_from(_PLAIN_CODES)), max_size=12),
    _AUDIO,
    st.one_of(st.none(), st.binary(max_size=20)),
    CUTS,
)
def test_shielded_audio_and_events_decode_to_themselves_however_the_stream_is_cut(
    segments: list[tuple[bytes, int]], tail: bytes, after_end: bytes | None, cuts: list[int]
) -> None:
    wire = b"".join(shield(audio) + bytes([DLE, code]) for audio, code in segments) + shield(tail)
    expected: list[DleItem] = []
    for audio, code in segments:
        expected += [Audio(audio)] if audio else []
        expected.append(DleEvent(event_code(code), code))
    expected += [Audio(tail)] if tail else []
    if after_end is not None:  # <DLE><ETX>, then the modem's command-state text
        wire += bytes([DLE, ETX]) + after_end
        expected.append(DleEvent(END, ETX))
    expected = merged_dle(expected)
    rest = after_end or b""
    assert dle_decode(pieces(wire, cuts)) == (expected, rest)
    assert dle_decode(one_by_one(wire)) == (expected, rest)


@FAST
@given(st.binary(max_size=300))
def test_shield_doubles_every_dle_and_nothing_else(data: bytes) -> None:
    wire = shield(data)
    assert len(wire) == len(data) + data.count(DLE)
    assert wire.replace(b"\x10\x10", b"") == data.replace(b"\x10", b"")  # no lone DLE left on the wire


_PRESS = st.tuples(st.sampled_from("0123456789*#ABCD"), st.integers(min_value=1, max_value=6), st.booleans(), _AUDIO)


@FAST
@given(st.lists(_PRESS, max_size=8), CUTS)
def test_one_key_press_is_one_digit_however_long_the_key_is_held(
    presses: list[tuple[str, int, bool, bytes]], cuts: list[int]
) -> None:
    wire = b""
    for digit, repeats, framed, audio in presses:
        key = bytes([DLE, ord(digit)])
        # Framed: <DLE>/ then the digit every ~70 ms while held, then <DLE>~ (Multitech, USR).
        # Unframed: <DLE>5 once per press (the "simple" style).
        wire += (bytes([DLE, ord("/")]) + key * repeats + bytes([DLE, ord("~")])) if framed else key
        wire += shield(audio)
    items, _ = dle_decode(pieces(wire, cuts))
    assert [i.digit for i in items if isinstance(i, DleEvent)] == [digit for digit, *_ in presses]
    assert b"".join(i.data for i in items if isinstance(i, Audio)) == b"".join(a for *_, a in presses)


@FAST
@given(st.binary(max_size=120), CUTS)
def test_a_complex_event_packet_is_one_event_with_its_body_wherever_it_is_cut(payload: bytes, cuts: list[int]) -> None:
    wire = b"\x80" + bytes([DLE, ord("X")]) + shield(payload) + bytes([DLE, ord(".")]) + b"\x7f"
    assert dle_decode(pieces(wire, cuts))[0] == [Audio(b"\x80"), DleEvent("X", ord("X"), payload), Audio(b"\x7f")]


@FAST
@given(st.binary(max_size=400), CUTS)
def test_any_bytes_cut_anywhere_decode_like_one_read(data: bytes, cuts: list[int]) -> None:
    whole = dle_decode([data])
    assert dle_decode(pieces(data, cuts)) == whole
    assert dle_decode(one_by_one(data)) == whole


# --- callerid.py ----------------------------------------------------------------------------

_NUMBERS = st.one_of(st.text(alphabet=string.digits, min_size=1, max_size=15), st.sampled_from(["P", "O", ""]))
_NAMES = st.one_of(
    st.none(),
    st.text(alphabet=string.ascii_uppercase + string.digits + " .-'", min_size=1, max_size=20).filter(str.strip),
    st.sampled_from(["P", "O", "WIRELESS CALLER", "UPDATE DATE CLINIC"]),
)
_DATES = st.one_of(st.none(), st.from_regex(r"\A(0[1-9]|1[0-2])[0-3][0-9]\Z"))
_TIMES = st.one_of(st.none(), st.from_regex(r"\A([01][0-9]|2[0-3])[0-5][0-9]\Z"))
_NOT_CALLER_ID = st.sampled_from(["OK", "ERROR", "+VCID: 1", "CONNECT", "5601", "VOICE CALL: BEGIN", "NMBR", "RINGING"])


def expected_caller(number: str, name: str | None, date: str | None, time: str | None, ring_first: bool) -> CallerId:
    withheld, unavailable = number == "P", number in ("O", "")
    shown_name = name.strip() if name is not None and name.strip() not in ("P", "O") else None
    return CallerId(
        number=None if withheld or unavailable else number,
        name=shown_name,
        withheld=withheld,
        unavailable=unavailable,
        date=date,
        time=time,
        style="north-american" if ring_first or name is not None else "etsi",
    )


def caller_from_modem_bytes(reads: list[bytes]) -> CallerId | None:
    """What the voice-modem driver does: AT items, RING and the tag URCs to the collector."""
    parser, collector = AtParser(), CallerIdCollector()
    for read in reads:
        for item in parser.feed(read):
            if isinstance(item, Urc) and item.name in ("RING", "DATE", "TIME", "NMBR", "NAME", "MESG", "+CLIP"):
                collector.feed(item.line)
    return collector.result


@FAST
@given(
    _NUMBERS, _NAMES, _DATES, _TIMES,
    st.booleans(), st.booleans(), st.sampled_from(["=", " = "]), st.lists(_NOT_CALLER_ID, max_size=3), CUTS,
)
def test_a_caller_id_burst_gives_the_same_caller_wherever_the_reads_cut_it(
    number: str, name: str | None, date: str | None, time: str | None,
    ring_first: bool, ring_after: bool, equals: str, noise: list[str], cuts: list[int],
) -> None:
    tags = [("DATE", date), ("TIME", time), ("NMBR", number), ("NAME", name)]
    lines = ["RING"] if ring_first else []
    lines += [f"{tag}{equals}{value}" for tag, value in tags if value is not None]
    lines[1:1] = noise  # lines of other meaning, in the middle of the burst
    lines += ["RING"] if ring_after else []
    wire = b"".join(b"\r\n" + line.encode() + b"\r\n" for line in lines)
    expected = expected_caller(number, name, date, time, ring_first)
    assert caller_from_modem_bytes(pieces(wire, cuts)) == expected
    assert parse_caller_id(lines) == expected


@FAST
@given(
    st.one_of(st.from_regex(r"\A\+?[0-9]{3,15}\Z"), st.just("")),
    st.sampled_from([129, 145, 128]),
    st.text(alphabet=string.ascii_letters + " ,", max_size=12),
    st.sampled_from(["0", "1", "2"]),
    CUTS,
)
def test_a_gsm_clip_line_gives_the_same_caller_wherever_the_reads_cut_it(
    number: str, kind: int, alpha: str, validity: str, cuts: list[int]
) -> None:
    wire = f'\r\nRING\r\n\r\n+CLIP: "{number}",{kind},"",0,"{alpha}",{validity}\r\n'.encode()
    withheld = validity == "1"
    unavailable = validity == "2" or (not number and not withheld)
    expected = CallerId(
        number=None if withheld or unavailable else number,
        name=alpha.strip() or None,
        withheld=withheld,
        unavailable=unavailable,
        date=None,
        time=None,
        style="3gpp-clip",
    )
    assert caller_from_modem_bytes(pieces(wire, cuts)) == expected


@FAST
@given(st.lists(st.text(max_size=50), max_size=20))
def test_the_collector_takes_any_line_and_answers_none_or_a_caller(lines: list[str]) -> None:
    collector = CallerIdCollector()
    for line in lines:
        collector.feed(line)
    assert collector.result is None or isinstance(collector.result, CallerId)
    assert collector.complete == (collector.result is not None)


# --- vsm.py ---------------------------------------------------------------------------------


# Lines shaped like +VSM listings, with any characters where the numbers go:
# str.isdigit() is also true of "²" and "١", which int() may not accept.
_VSM_FIELDS = st.text(alphabet="0123456789²³¹١٣() ,-\"", max_size=24)
_VSM_LIKE = st.lists(
    st.tuples(st.integers(0, 255), st.text(alphabet="ABC -", max_size=6), _VSM_FIELDS).map(
        lambda t: f'{t[0]},"{t[1]}",{t[2]}'
    ),
    max_size=4,
).map("\n".join)


@FAST
@given(st.one_of(st.text(max_size=120), _VSM_LIKE))
def test_any_vsm_answer_is_read_without_an_exception(answer: str) -> None:
    for profile in (None, builtin_profiles()["usr5637"]):
        methods = parse_vsm_methods(answer)
        chosen = pick_voice_format(profile, answer)
        assert chosen is None or chosen.vsm_id in {m.cml for m in methods}


_VSM_NAME = st.text(alphabet=string.ascii_uppercase + string.digits + " -", min_size=1, max_size=16).filter(str.strip)
_RATES = st.lists(st.sampled_from([7200, 8000, 11025, 16000]), min_size=1, max_size=3, unique=True)


@FAST
@given(st.lists(st.tuples(st.integers(0, 255), _VSM_NAME, _RATES, st.sampled_from([4, 8, 14, 16])), max_size=8))
def test_a_listing_in_either_vendor_layout_reads_back(methods: list[tuple[int, str, list[int], int]]) -> None:
    usr = "\n".join(f'{cml},"{name}",({",".join(map(str, rates))})' for cml, name, rates, _ in methods)
    conexant = "\n".join(f'{cml},"{name}",{bits},0,{rates[0]},0,0' for cml, name, rates, bits in methods)
    read_usr = parse_vsm_methods(usr + "\nOK")
    assert [(m.cml, m.name, m.rate_ranges_hz) for m in read_usr] == [
        (cml, name.strip(), tuple((r, r) for r in rates)) for cml, name, rates, _ in methods
    ]
    read_cx = parse_vsm_methods(conexant)
    assert [(m.cml, m.bits, m.rate_ranges_hz) for m in read_cx] == [
        (cml, bits, ((rates[0], rates[0]),)) for cml, _, rates, bits in methods
    ]


_USR_LISTING = [
    '128,"8-BIT LINEAR",(7200,8000,11025)', '129,"16-BIT LINEAR",(7200,8000,11025)', '130,"8-BIT ALAW",(8000)',
    '131,"8-BIT ULAW",(8000)', '132,"IMA ADPCM",(7200,8000,11025)',
]


@FAST
@given(st.permutations(_USR_LISTING), st.sets(st.sampled_from(_USR_LISTING)))
def test_the_best_format_wins_whatever_the_order_of_the_listing(order: list[str], removed: set[str]) -> None:
    kept = [line for line in order if line not in removed]
    chosen = pick_voice_format(builtin_profiles()["usr5637"], "\n".join(kept))
    offered = {"131": "ulaw", "130": "alaw", "128": "linear8"}
    available = [enc for enc in ENCODING_PREFERENCE if any(line.startswith(cml) and offered[cml] == enc
                                                            for line in kept for cml in offered)]
    assert (chosen.encoding if chosen else None) == (available[0] if available else None)
