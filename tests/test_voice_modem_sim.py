"""The voice-modem simulator, driven over its pty with plain pyserial.

Assertions are on raw bytes (telephony.md 1.3-1.9), never through the driver's
parsers: the simulator is the second, independent implementation of the protocol.
The one exception is the last test, which feeds a +VRX stream to the driver's
``DleDecoder`` to prove both DLE codecs agree.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from datetime import datetime

import numpy as np
import pytest
import serial

from appliance.clock import PARIS, ScaledClock
from appliance.line.dle import END, Audio, DleDecoder, DleEvent
from appliance.line.profile import detect_chipset
from appliance.line.sim.voice_modem import VoiceModemSim

DEADLINE_S = 3.0  # real seconds; every wait below normally ends in well under 0.5 s
START = datetime(2025, 1, 17, 14, 52, 5, tzinfo=PARIS)  # telephony.md 1.9: DATE=0117, TIME=1452


class Dte:
    """The box's side of the port: everything read is kept, waits poll with a deadline."""

    def __init__(self, path: str) -> None:
        self.port = serial.serial_for_url(path, timeout=0.01)
        self.received = bytearray()

    def send(self, data: bytes) -> None:
        self.port.write(data)

    def read_until(self, done: Callable[[bytes], bool], what: str = "") -> bytes:
        deadline = time.monotonic() + DEADLINE_S
        while not done(bytes(self.received)):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; got {bytes(self.received[-200:])!r}")
            self.received += self.port.read(max(1, self.port.in_waiting))
        return bytes(self.received)

    def expect(self, suffix: bytes) -> bytes:
        """Read until ``suffix`` arrives; return everything read so far and start afresh."""
        self.read_until(lambda got: suffix in got, repr(suffix))
        got = bytes(self.received)
        cut = got.index(suffix) + len(suffix)
        del self.received[:cut]
        return got[:cut]

    def command(self, line: bytes, final: bytes = b"\r\nOK\r\n") -> bytes:
        self.send(line + b"\r")
        return self.expect(final)


@pytest.fixture
def make_sim() -> Iterator[Callable[..., tuple[VoiceModemSim, Dte]]]:
    opened: list[tuple[VoiceModemSim, Dte]] = []

    def make(profile: str = "usr5637", rate: float = 10.0, **options: object) -> tuple[VoiceModemSim, Dte]:
        sim = VoiceModemSim(profile, clock=ScaledClock(rate, start=START), **options).start()  # type: ignore[arg-type]
        dte = Dte(sim.path)
        opened.append((sim, dte))
        return sim, dte

    yield make
    for sim, dte in opened:
        dte.port.close()
        sim.close()  # re-raises a crash of the simulator thread


def dle_codes(stream: bytes) -> list[bytes]:
    """Every <DLE>x pair of a DCE→DTE voice stream except <DLE><DLE> (a data 0x10)."""
    codes, i = [], 0
    while (i := stream.find(b"\x10", i)) >= 0:
        pair = stream[i : i + 2]
        if pair != b"\x10\x10":
            codes.append(pair)
        i += 2
    return codes


def is_line_noise(audio: bytes) -> bool:
    """8-bit linear (silence 0x80) carrying only a live line's faint noise, not words."""
    return set(audio) <= {0x7F, 0x80, 0x81} and audio.count(0x80) > 0.8 * len(audio)


def linear8(audio: bytes) -> np.ndarray:
    return (np.frombuffer(audio, dtype=np.uint8).astype(np.float64) - 128) * 256


def dominant_hz(pcm: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(pcm.size)))
    return float(np.fft.rfftfreq(pcm.size, 1 / 8000)[np.argmax(spectrum)])


def dbfs(pcm: np.ndarray) -> float:
    rms = float(np.sqrt(np.mean(np.asarray(pcm, dtype=np.float64) ** 2)))
    return 20 * np.log10(max(rms, 1e-9) / 32768)


def answer_and_record(dte: Dte, sim: VoiceModemSim) -> None:
    """Ring, answer in voice mode, open +VRX (telephony.md 1.9)."""
    dte.command(b"ATE0")
    dte.command(b"AT+FCLASS=8")
    sim.ring("5035551234")
    dte.expect(b"\x10R" if sim.profile.name == "cx930xx" else b"RING\r\n")  # 1.7: Conexant <DLE>R
    dte.command(b"AT+VLS=1")
    dte.command(b"AT+VRX", b"\r\nCONNECT\r\n")


# --- V.250 front end ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("profile", "ati0", "ati3", "gmi9"),
    [
        ("usr5637", b"5601", b"U.S. Robotics 56K FAX USB V1.2.23", None),
        ("cx930xx", b"56000", b"CX93001-EIS_V0.2013-V92", b"CONEXANT ACF"),
    ],
)
def test_identification_answers_per_profile(make_sim, profile, ati0, ati3, gmi9) -> None:
    sim, dte = make_sim(profile)
    assert dte.command(b"ATE0") == b"ATE0\r\r\nOK\r\n"
    answers = {}
    assert dte.command(b"ATI0") == b"\r\n" + ati0 + b"\r\n\r\nOK\r\n"
    answers["ATI0"] = ati0.decode()
    assert dte.command(b"ATI3") == b"\r\n" + ati3 + b"\r\n\r\nOK\r\n"
    answers["ATI3"] = ati3.decode()
    if gmi9 is None:
        assert dte.command(b"AT+GMI9", b"\r\nERROR\r\n") == b"\r\nERROR\r\n"
    else:
        assert dte.command(b"AT+GMI9") == b"\r\n" + gmi9 + b"\r\n\r\nOK\r\n"
        answers["AT+GMI9"] = gmi9.decode()
    detected = detect_chipset(answers)
    assert detected is not None and detected.name == profile


def test_echo_verbose_and_chained_commands(make_sim) -> None:
    _, dte = make_sim()
    assert dte.command(b"AT") == b"AT\r\r\nOK\r\n"  # echo on after power-up (1.3)
    assert dte.command(b"at") == b"at\r\r\nOK\r\n"
    assert dte.command(b"ATE0V0", b"V0\r0\r") == b"ATE0V0\r0\r"  # the line itself is still echoed
    dte.send(b"AT\r")
    assert dte.expect(b"\r") == b"0\r"  # numeric OK, no echo
    dte.send(b"AT+FOO\r")
    assert dte.expect(b"\r") == b"4\r"  # numeric ERROR
    dte.send(b"ATI0\r")
    assert dte.expect(b"0\r") == b"5601\r\n0\r"  # V0 information text has no header
    assert dte.command(b"ATZ") == b"\r\nOK\r\n"  # not echoed (E0), answered in the restored V1
    assert dte.command(b"ATE0V1S0=2S0?") == b"ATE0V1S0=2S0?\r\r\n002\r\n\r\nOK\r\n"  # echo back after Z


def test_quiet_mode_suppresses_results(make_sim) -> None:
    _, dte = make_sim()
    dte.command(b"ATE0")
    dte.send(b"ATQ1\r")
    dte.send(b"ATI0\r")
    assert dte.expect(b"5601\r\n") == b"\r\n5601\r\n"  # information text, no OK for either line
    dte.send(b"ATQ0\r")
    assert dte.expect(b"OK\r\n") == b"\r\nOK\r\n"


def test_unknown_and_out_of_mode_commands_answer_error(make_sim) -> None:
    _, dte = make_sim()
    dte.command(b"ATE0")
    assert dte.command(b"AT+FOO", b"ERROR\r\n") == b"\r\nERROR\r\n"
    assert dte.command(b"ATE7", b"ERROR\r\n") == b"\r\nERROR\r\n"
    assert dte.command(b"AT+VSM=?", b"ERROR\r\n") == b"\r\nERROR\r\n"  # voice needs +FCLASS=8
    dte.command(b"AT+FCLASS=8")
    assert dte.command(b"AT+VSM=131,8000,0,0", b"ERROR\r\n") == b"\r\nERROR\r\n"  # USR: short form only
    assert dte.command(b"AT+VSM=131,8000") == b"\r\nOK\r\n"


# --- the call --------------------------------------------------------------------------------


def test_incoming_call_usr_matches_reference_dialogue(make_sim) -> None:
    sim, dte = make_sim("usr5637")
    dte.command(b"ATE0")
    dte.command(b"AT+VCID=1")
    sim.ring("5035551234", "WIRELESS CALLER")
    got = dte.expect(b"NAME=WIRELESS CALLER\r\n\r\nRING\r\n")
    assert got == (
        b"\r\nRING\r\n"
        b"\r\nDATE=0117\r\n\r\nTIME=1452\r\n\r\nNMBR=5035551234\r\n\r\nNAME=WIRELESS CALLER\r\n"
        b"\r\nRING\r\n"
    )
    assert sim.stats().rings == 2


def test_incoming_call_conexant_spacing_and_dle_r_in_voice_class(make_sim) -> None:
    sim, dte = make_sim("cx930xx")
    dte.command(b"ATE0")
    dte.command(b"AT+FCLASS=8;+VCID=1")
    sim.ring("P")
    got = dte.expect(b"NMBR = P\r\n\x10R")
    assert got == b"\x10R\r\nDATE = 0117\r\n\r\nTIME = 1452\r\n\r\nNMBR = P\r\n\x10R"


def test_vrx_streams_caller_audio_shielded(make_sim) -> None:
    sim, dte = make_sim()
    answer_and_record(dte, sim)
    spoken = bytes(range(256)) * 4  # 0x10 four times, 0x03 and 0x1A right after it never escaped
    sim.say(spoken)
    doubled = spoken.replace(b"\x10", b"\x10\x10")
    dte.read_until(lambda got: doubled in got, "the caller's audio")
    dte.send(b"\x10!")
    stream = dte.expect(b"\x10\x03\r\nOK\r\n")
    assert dle_codes(stream) == [b"\x10\x03"]  # no stray escape anywhere in the audio
    before, _, after = stream.partition(doubled)
    # Around the words only the line's noise floor: in 8-bit linear one step either side of 0x80.
    assert is_line_noise(before) and is_line_noise(after[:-8])
    assert sim.stats().mode == "command"


def test_key_press_usr_is_one_shielded_group(make_sim) -> None:
    sim, dte = make_sim("usr5637")
    answer_and_record(dte, sim)
    sim.press("5", duration_s=0.1)
    dte.read_until(lambda got: b"\x10~" in got, "the end of the key press")
    dte.send(b"\x10!")
    stream = dte.expect(b"\x10\x03\r\nOK\r\n")
    # 1.7: start marker, the digit every 70 ms while held (0 and 70 ms), stop marker.
    assert dle_codes(stream) == [b"\x10/", b"\x105", b"\x105", b"\x10~", b"\x10\x03"]


def test_key_press_simple_style_arrives_once(make_sim) -> None:
    sim, dte = make_sim("cx930xx", dtmf_style="simple")
    answer_and_record(dte, sim)
    sim.press("#")
    dte.read_until(lambda got: b"\x10#" in got, "the key press")
    dte.read_until(lambda got: len(got) > got.index(b"\x10#") + 4000, "more audio")  # 0.5 s later
    dte.send(b"\x10!")
    stream = dte.expect(b"\x10\x03\r\nOK\r\n")
    assert dle_codes(stream) == [b"\x10#", b"\x10\x03"]


@pytest.mark.parametrize(
    ("profile", "event", "tone_hz"),
    [("usr5637", b"\x10d", 440.0), ("cx930xx", b"\x10l", None)],  # USR: dial tone; Conexant: the loop drops
)
def test_caller_hang_up_gives_profile_event_then_tone_or_dead_line(make_sim, profile, event, tone_hz) -> None:
    sim, dte = make_sim(profile)
    answer_and_record(dte, sim)
    sim.say(b"\x20" * 800)
    dte.read_until(lambda got: b"\x20" * 800 in got, "the caller's words")
    sim.hang_up()
    dte.read_until(lambda got: event in got and len(got) > got.index(event) + 4000, "the hang-up event")
    dte.send(b"\x10!")
    stream = dte.expect(b"\x10\x03\r\nOK\r\n")
    assert dle_codes(stream) == [event, b"\x10\x03"]
    tail = stream[stream.index(event) + 2 : -8]
    assert len(tail) >= 4000
    if tone_hz is None:
        assert set(tail) == {0x80}  # a dead line is digital silence, not noise
    else:
        assert dominant_hz(linear8(tail)) == pytest.approx(tone_hz, abs=5)  # the French dial tone
    assert sim.stats().call_state == "gone"


def test_vsd_silence_timer_reports_s_without_voice(make_sim) -> None:
    sim, dte = make_sim()
    dte.command(b"ATE0")
    dte.command(b"AT+FCLASS=8")
    sim.ring("5035551234")
    dte.expect(b"RING\r\n")
    dte.command(b"AT+VSD=128,10")  # 1 s
    dte.command(b"AT+VLS=1")
    dte.command(b"AT+VRX", b"\r\nCONNECT\r\n")
    got = dte.read_until(lambda got: b"\x10s" in got, "the silence event")
    assert 7900 <= got.index(b"\x10s") <= 8100  # after 1 s of 8000 B/s audio


def test_vtx_accepts_paced_shielded_audio_then_ok(make_sim) -> None:
    sim, dte = make_sim(rate=2.0)
    clock = sim.clock  # the same clock paces the writer, as the driver's would (6.1)
    dte.command(b"ATE0")
    dte.command(b"AT+FCLASS=8")
    dte.command(b"AT+VLS=1")
    dte.command(b"AT+VTX", b"\r\nCONNECT\r\n")
    audio = bytes(range(256)) * 16  # 4096 B = 0.5 s, sixteen 0x10 samples
    started, sent = clock.monotonic(), 0
    while sent < len(audio):
        allowed = int((clock.monotonic() - started) * 8000) + 400  # stay 400 B ahead (1.8)
        if allowed > sent:
            chunk = audio[sent : min(allowed, len(audio))]
            dte.send(chunk.replace(b"\x10", b"\x10\x10"))
            sent += len(chunk)
        time.sleep(0.001)
    dte.send(b"\x10\x03")
    assert dte.expect(b"\r\nOK\r\n").endswith(b"\r\nOK\r\n")
    assert sim.heard() == audio
    stats = sim.stats()
    assert (stats.tx_overruns, stats.protocol_violations, stats.mode) == (0, (), "command")


def test_vtx_burst_overflows_the_bounded_buffer(make_sim) -> None:
    sim, dte = make_sim(rate=1.0)
    dte.command(b"ATE0")
    dte.command(b"AT+FCLASS=8")
    dte.command(b"AT+VLS=1")
    dte.command(b"AT+VTX", b"\r\nCONNECT\r\n")
    dte.send(b"\x80" * 6000)  # 0.75 s of audio at once: the kernel takes it, the modem cannot
    dte.read_until(lambda got: b"\x10o" in got, "the overrun report")
    dte.send(b"\x10\x18\x10\x03")  # clear the buffer, end: OK without waiting for the backlog
    dte.expect(b"\r\nOK\r\n")
    stats = sim.stats()
    assert stats.tx_overruns == 1 and stats.tx_overrun_bytes >= 6000 - 1536 - 100
    assert len(sim.heard()) < 6000


def test_unplug_fails_the_dte_port(make_sim) -> None:
    sim, dte = make_sim()
    dte.command(b"AT")
    sim.unplug()
    with pytest.raises(serial.SerialException):
        dte.port.read(1)
    with pytest.raises(serial.SerialException):
        dte.port.write(b"AT\r")


def test_transcript_records_both_directions_in_time_order(make_sim) -> None:
    sim, dte = make_sim()
    dte.command(b"ATI0")
    entries = sim.transcript()
    assert b"".join(e.data for e in entries if e.direction == "DTE>") == b"ATI0\r"
    assert b"".join(e.data for e in entries if e.direction == "DCE<") == b"ATI0\r\r\n5601\r\n\r\nOK\r\n"
    assert [e.at_s for e in entries] == sorted(e.at_s for e in entries)


# --- cross-check with the driver's codec ---------------------------------------------------------


def test_driver_dle_decoder_recovers_the_simulated_stream(make_sim) -> None:
    sim, dte = make_sim("usr5637")
    answer_and_record(dte, sim)
    spoken = bytes(range(256)) * 8 + b"\x10\x1a\x10\x03\x10\x10\x10!"
    sim.say(spoken)
    sim.press("7", duration_s=0.2)
    dte.read_until(lambda got: b"\x10~" in got and len(got) > got.index(b"\x10~") + 8000, "audio and key")
    dte.send(b"\x10!")
    stream = dte.expect(b"\x10\x03\r\nOK\r\n")

    decoder = DleDecoder()
    audio, events = bytearray(), []
    for start in range(0, len(stream), 97):  # odd read sizes split escape pairs
        for item in decoder.feed(stream[start : start + 97]):
            if isinstance(item, Audio):
                audio += item.data
            else:
                assert isinstance(item, DleEvent)
                events.append(item.code)
    assert decoder.ended and decoder.take_rest() == b"\r\nOK\r\n"
    assert spoken in bytes(audio)
    assert events == ["7", END]
    assert is_line_noise(bytes(audio).replace(spoken, b""))


# --- the line ------------------------------------------------------------------------------------


def read_for(dte: Dte, sim: VoiceModemSim, seconds: float) -> bytes:
    """Everything the modem sends during ``seconds`` of the simulator's clock."""
    until = sim.clock.monotonic() + seconds
    return dte.read_until(lambda _: sim.clock.monotonic() >= until, f"{seconds} s of line time")


def test_a_silent_caller_is_line_noise_and_a_dead_line_digital_silence(make_sim) -> None:
    # The box's own hang-up detector tells these two apart by level (about -57 dBFS vs nothing).
    sim, dte = make_sim("usr5637")  # 8-bit linear: the coarsest coding of the noise floor
    answer_and_record(dte, sim)
    noise = read_for(dte, sim, 1.0)[-4000:]
    assert is_line_noise(noise) and -61 < dbfs(linear8(noise)) < -53
    sim.hang_up("silence")
    read_for(dte, sim, 1.0)  # the caller's side goes quiet within the exchange's reaction time
    dte.received.clear()
    dead = read_for(dte, sim, 1.0)
    assert len(dead) >= 7000 and set(dead) == {0x80}  # no event either: only the level says it
    assert dle_codes(dead) == []


def test_busy_tone_is_reported_again_every_four_seconds(make_sim) -> None:
    sim, dte = make_sim("usr5637")
    answer_and_record(dte, sim)
    sim.hang_up("busy")
    stream = read_for(dte, sim, 5.0)
    assert dle_codes(stream) == [b"\x10b", b"\x10b"]  # at 0.5 s and 4.5 s (1.7)


@pytest.mark.parametrize("style", ["shielded", "simple"])
def test_a_key_held_for_one_and_a_half_seconds(make_sim, style: str) -> None:
    sim, dte = make_sim("cx930xx", dtmf_style=style)
    answer_and_record(dte, sim)
    sim.press("9", duration_s=1.5)
    stream = read_for(dte, sim, 2.0)
    if style == "simple":
        assert dle_codes(stream) == [b"\x109"]
    else:  # "/", the digit every 70 ms while held, "~" (telephony.md 1.7)
        found = dle_codes(stream)
        assert found[0] == b"\x10/" and found[-1] == b"\x10~"
        assert set(found[1:-1]) == {b"\x109"} and abs(len(found[1:-1]) - 22) <= 1  # 1.5 s / 70 ms


@pytest.mark.parametrize(("profile", "reported"), [("cx930xx", [b"\x10P"]), ("usr5637", [])])
def test_extension_picked_up_during_a_call(make_sim, profile: str, reported: list[bytes]) -> None:
    sim, dte = make_sim(profile)
    answer_and_record(dte, sim)
    read_for(dte, sim, 0.3)
    dte.received.clear()
    sim.pick_up_extension()
    stream = read_for(dte, sim, 1.0)
    assert dle_codes(stream) == reported  # only chipsets whose profile lists an off-hook code say so
    audio = stream.replace(b"\x10P", b"")
    assert dbfs(linear8(audio)) > -40  # the person's voice is on the line now
    assert sim.stats().extension_off_hook


@pytest.mark.parametrize(("profile", "waiting_event"), [("cx930xx", [b"\x10w"]), ("usr5637", [])])
def test_call_waiting_beep_event_and_caller_id_packet(make_sim, profile: str, waiting_event: list[bytes]) -> None:
    sim, dte = make_sim(profile)
    dte.command(b"ATE0")
    dte.command(b"AT+VCID=1")
    answer_and_record(dte, sim)
    read_for(dte, sim, 0.2)
    dte.received.clear()
    sim.call_waiting("0699887766")
    stream = read_for(dte, sim, 1.0)
    codes = dle_codes(stream)
    assert codes[: len(waiting_event)] == waiting_event
    assert codes[len(waiting_event) :] == [b"\x10X", b"\x10."]  # caller ID as a complex event packet
    packet = stream[stream.index(b"\x10X") + 2 : stream.index(b"\x10.")]
    assert b"NMBR" in packet and b"0699887766" in packet
    beep = linear8(stream[: stream.index(b"\x10X")].replace(b"\x10w", b""))
    assert dominant_hz(beep) == pytest.approx(440, abs=10)


def test_a_caller_who_gives_up_stops_the_rings(make_sim) -> None:
    sim, dte = make_sim("usr5637")
    dte.command(b"ATE0")
    sim.ring(None)
    dte.expect(b"RING\r\n")
    sim.abandon()
    assert b"RING" not in read_for(dte, sim, 12.0)  # two ring periods: nothing comes
    assert sim.stats().call_state == "gone"


def test_extension_picked_up_while_ringing_stops_the_rings(make_sim) -> None:
    sim, dte = make_sim("usr5637")
    dte.command(b"ATE0")
    sim.ring(None)
    dte.expect(b"RING\r\n")
    sim.pick_up_extension()
    assert b"RING" not in read_for(dte, sim, 12.0)
    assert sim.stats().call_state == "taken"


# --- faults of the device -----------------------------------------------------------------------------


def test_path_is_a_stable_name_that_follows_a_replug(make_sim) -> None:
    sim, dte = make_sim()
    first = os.path.realpath(sim.path)
    assert os.path.islink(sim.path) and first.startswith("/dev/pts/")
    sim.unplug()
    assert not os.path.exists(sim.path)  # as udev removes the by-id link
    with pytest.raises(serial.SerialException):
        dte.port.read(1)
    sim.replug()
    dte.port.close()
    dte = Dte(sim.path)
    assert dte.command(b"AT") == b"AT\r\r\nOK\r\n"  # freshly powered up: echo on again
    assert sim.stats().plugged


def test_a_hung_modem_ignores_everything_until_it_resumes(make_sim) -> None:
    sim, dte = make_sim()
    dte.command(b"ATE0")
    sim.stop_answering()
    dte.send(b"ATI0\r")
    assert read_for(dte, sim, 1.0) == b""
    sim.resume_answering()
    assert dte.command(b"AT") == b"\r\nOK\r\n"  # the ATI0 sent meanwhile is gone, not answered late


def test_a_hung_modem_stalls_its_voice_stream_too(make_sim) -> None:
    sim, dte = make_sim()
    answer_and_record(dte, sim)
    read_for(dte, sim, 0.2)
    sim.stop_answering()
    read_for(dte, sim, 0.2)  # what was already on its way
    dte.received.clear()
    assert read_for(dte, sim, 1.0) == b""
    sim.resume_answering()
    assert 3000 <= len(read_for(dte, sim, 0.5)) <= 6000  # on from now: no burst of the 1 s missed
    assert sim.stats().mode == "vrx"


def test_garbage_goes_out_where_asked(make_sim) -> None:
    sim, dte = make_sim()
    dte.command(b"ATE0")
    sim.garbage(b"\x00\xffJUNK\r\n", before_reply_to="ATI0")
    assert dte.command(b"ATI0") == b"\x00\xffJUNK\r\n\r\n5601\r\n\r\nOK\r\n"
    sim.garbage(b"\xfe\xfd")
    assert dte.read_until(lambda got: b"\xfe\xfd" in got, "idle garbage").endswith(b"\xfe\xfd")


def test_random_chunking_cuts_the_writes(make_sim) -> None:
    sim, dte = make_sim("usr5637", chunking=True, seed=11)
    answer_and_record(dte, sim)
    sim.say(bytes(range(256)) * 16)
    read_for(dte, sim, 1.0)
    sizes = [len(e.data) for e in sim.transcript() if e.direction == "DCE<"]
    assert max(sizes) <= 700 and len(set(sizes)) > 10
