"""``appliance diagnose-line`` against the simulated modems, a silent pty, and saved transcripts.

The simulators are driven only through their public constructors, ``.path`` and
their public actions; what they saw (``stats()``, ``commands``) is the independent
check that the probe never went off-hook, never dialled, and left the modem idle.

The transcripts under ``tests/fixtures/diagnose/`` were written by this tool
against the simulators (``python -m tests.test_diagnose`` writes them again). A
transcript from a real modem dropped into that folder is replayed the same way:
that is how a new chipset becomes a fixture.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import subprocess
import sys
import tty
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from appliance.cli import main
from appliance.clock import PARIS, ScaledClock
from appliance.errors import LineError
from appliance.line.diagnose import (
    COMMAND_TIMEOUT_S,
    EXIT_NOT_READY,
    EXIT_READY,
    EXIT_UNREACHABLE,
    STREAM_RESCUE,
    Outcome,
    diagnose,
    is_safe_query,
    mask_transcript,
    replay,
    run,
    transcript_name,
)
from appliance.line.diagnosis import (
    Answer,
    Diagnosis,
    Verdict,
    audio_queries,
    fax_classes,
    gsm_findings,
    registration,
    signal,
    verdict,
    voice_findings,
)
from appliance.line.port_info import Holder, UsbIdentity, open_failure_problem, port_holders, usb_identity
from appliance.line.profile import builtin_profiles
from appliance.line.serial_port import SerialPort
from appliance.line.sim.gsm_modem import GsmModemSim
from appliance.line.sim.voice_modem import VoiceModemSim
from appliance.line.transcript import (
    Crossing,
    ReplayLink,
    Transcript,
    escape,
    load_transcript,
    parse_transcript,
    unescape,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "diagnose"
RATE = 20.0  # the probe's 2 s timeouts and +++ guard seconds take 0.1 s each
START = datetime(2025, 1, 17, 14, 52, 5, tzinfo=PARIS)
ANALOG = ["usr5637", "cx930xx", "multitech"]
NUMBER = "0612345678"
LINE_TOUCHING = (b"ATA", b"ATD", b"ATH1", b"+VLS=1", b"+VTX", b"+VRX", b"+VTR", b"+VTS", b"+CHUP")


def analog_sim(profile: str, clock: ScaledClock, *, chunking: bool = False) -> VoiceModemSim:
    try:
        return VoiceModemSim(profile, clock=clock, chunking=chunking)
    except ValueError as err:  # the simulator grows profiles over time; the test runs once it has this one
        pytest.skip(f"the voice-modem simulator has no {profile}: {err}")


def probe_sim(sim: VoiceModemSim | GsmModemSim, clock: ScaledClock) -> Outcome:
    return asyncio.run(asyncio.wait_for(diagnose(sim.path, clock=clock), timeout=10))


def replayed(transcript: Transcript) -> Outcome:
    return asyncio.run(asyncio.wait_for(replay(transcript, clock=ScaledClock(100)), timeout=10))


def scripted(dialogue: list[tuple[str, list[str], str]], **meta: str) -> Transcript:
    """A hand-written modem: each command, its echo, its information lines and final result."""
    entries = []
    for i, (command, lines, final) in enumerate(dialogue):
        answer = b"".join(b"\r\n" + line.encode() + b"\r\n" for line in [*lines, final])
        entries += [Crossing(0.3 + i / 10, "DTE>", command.encode() + b"\r"),
                    Crossing(0.31 + i / 10, "DCE<", command.encode() + b"\r" + answer)]
    return Transcript(meta={"port": "/dev/ttyACM0", "date": "2025-01-17T14:52:05+01:00", **meta},
                      entries=tuple(entries))


GREETING = [("AT", [], "OK"), ("ATE1", [], "OK"), ("ATV1", [], "OK")]
UNKNOWN_ANSWERS = [(c, [], "ERROR") for c in ("ATI0", "ATI3", "AT+GMI", "AT+GMM", "AT+GMR", "AT+GMI9", "AT+CGMI", "AT+CGMM")]


def sent_lines(transcript: Transcript) -> list[bytes]:
    return [e.data for e in transcript.entries if isinstance(e, Crossing) and e.direction == "DTE>"]


# --- the simulated chipsets ---------------------------------------------------------------


EXPECTED_FORMATS = {
    "usr5637": {"ulaw": [131], "alaw": [130], "linear8": [128]},
    "cx930xx": {"ulaw": [131], "alaw": [132], "linear8": [1, 130]},
}


@pytest.mark.parametrize("chunking", [False, True], ids=["whole-reads", "random-splits"])
@pytest.mark.parametrize("profile", ANALOG)
def test_an_analog_modem_is_recognised_with_its_voice_formats_and_caller_id(profile: str, chunking: bool) -> None:
    clock = ScaledClock(RATE, start=START)
    with analog_sim(profile, clock, chunking=chunking) as sim:
        outcome = probe_sim(sim, clock)
        stats = sim.stats()
    d = outcome.diagnosis
    assert d is not None and d.profile_name == profile and d.kind == "analog"
    found = voice_findings(d)
    formats: dict[str, list[int]] = {}
    for fmt in found.formats:
        if fmt.encoding is not None:
            formats.setdefault(fmt.encoding, []).append(fmt.vsm_id)
    assert formats == EXPECTED_FORMATS.get(profile, formats) and "ulaw" in formats
    assert found.voice and found.caller_id and found.chosen is not None and found.chosen.encoding == "ulaw"
    assert "  the box uses     µ-law: AT+VSM=131,8000" in outcome.report
    assert verdict(d).ready and outcome.exit_code == EXIT_READY
    # Left as the driver expects to find it: data class, on-hook, nothing violated.
    assert (stats.fclass, stats.off_hook, stats.protocol_violations) == (0, False, ())


@pytest.mark.parametrize("profile", ANALOG)
def test_the_probe_never_goes_off_hook_never_dials_and_never_streams(profile: str) -> None:
    clock = ScaledClock(RATE, start=START)
    with analog_sim(profile, clock) as sim:
        outcome = probe_sim(sim, clock)
    assert outcome.transcript is not None
    for line in sent_lines(outcome.transcript):
        assert not any(word in line.upper() for word in LINE_TOUCHING), line
        assert is_safe_query(line.decode("ascii").rstrip("\r")), line


GSM_LINES = {
    "sim7600": ",audio=/dev/ttyUSB4",
    "ec25": ",profile=ec25,audio=/dev/ttyUSB1",
    "sim800": ",profile=sim800,card=<name of the USB sound card>",
}


def gsm_sim(profile: str, clock: ScaledClock) -> GsmModemSim:
    try:
        return GsmModemSim(profile, clock=clock)
    except ValueError as err:
        pytest.skip(f"the GSM simulator has no {profile}: {err}")


@pytest.mark.parametrize("profile", list(GSM_LINES))
def test_a_gsm_module_reports_sim_network_signal_and_the_line_to_configure(profile: str) -> None:
    clock = ScaledClock(RATE, start=START)
    with gsm_sim(profile, clock) as sim:
        outcome = probe_sim(sim, clock)
        commands = sim.stats().commands
    d = outcome.diagnosis
    assert d is not None and (d.profile_name, d.kind) == (profile, "gsm")
    found = gsm_findings(d)
    assert found.sim_ready and found.registered and found.signal == "20/31, about -73 dBm"
    assert any(line.startswith(f'  ready: line = "gsm:{sim.path}{GSM_LINES[profile]}"') for line in outcome.report)
    assert outcome.exit_code == EXIT_READY
    assert not [c for c in commands if c.upper() in ("ATA", "AT+CHUP") or c.upper().startswith("ATD")]


def test_the_audio_switch_of_each_gsm_profile_is_asked_about_as_a_test_command() -> None:
    profiles = builtin_profiles()
    assert audio_queries(profiles["sim7600"]) == ("AT+CPCMREG=?",)
    assert audio_queries(profiles["ec25"]) == ("AT+QPCMV=?",)
    assert audio_queries(profiles["sim800"]) == ()
    assert audio_queries(None) == ("AT+CPCMREG=?", "AT+QPCMV=?")


@pytest.mark.parametrize(
    ("command", "safe"),
    [
        ("AT", True), ("ATI3", True), ("AT+GMI9", True), ("AT+VSM=?", True), ("AT+VLS=?", True),
        ("AT+CPIN?", True), ("AT+CSQ", True), ("AT#CID=?", True), ("AT+FCLASS=8", True), ("ATH0", True),
        ("ATA", False), ("ATD0612345678", False), ("ATH1", False), ("AT+VLS=1", False), ("AT+VTX", False),
        ("AT+VRX", False), ("AT+VTS=[933,933,120]", False), ("AT+CHUP", False), ("AT+CPCMREG=1", False),
        ("ATZ", False), ("AT+VCID=1", False), ("+++", False),
    ],
)
def test_only_queries_and_on_hook_count_as_safe(command: str, safe: bool) -> None:
    assert is_safe_query(command) is safe


# --- what the answers mean ------------------------------------------------------------------


def answer(command: str, *lines: str, result: str | None = "OK", detail: str = "") -> Answer:
    return Answer(command, result, lines, detail)


def diagnosis(profile: str | None, kind: str, *answers: Answer) -> Diagnosis:
    return Diagnosis(port="/dev/ttyACM0", date="2025-01-17T14:52:05+01:00", usb=None, recovery=None,
                     identification=(), profile_name=profile, kind=kind, answers=answers)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("listing", "classes"),
    [("0,8", ("0", "8")), ("(0-2,8)", ("0", "1", "2", "8")), ("0,1,1.0,2,2.0,8", ("0", "1", "1.0", "2", "2.0", "8"))],
)
def test_fax_classes_in_the_forms_modems_list_them(listing: str, classes: tuple[str, ...]) -> None:
    assert fax_classes(answer("AT+FCLASS=?", listing)) == classes
    assert fax_classes(answer("AT+FCLASS=?", result="ERROR")) == ()


@pytest.mark.parametrize(
    ("line", "words"),
    [("+CSQ: 20,99", "20/31, about -73 dBm"), ("+CSQ: 0,0", "0/31, about -113 dBm"),
     ("+CSQ: 99,99", "not known (99): no network seen yet")],
)
def test_signal_in_dbm(line: str, words: str) -> None:
    assert signal(answer("AT+CSQ", line)) == words


@pytest.mark.parametrize(
    ("line", "stat", "words"),
    [("+CREG: 0,1", 1, "registered (home network)"), ("+CREG: 0,5", 5, "registered (roaming)"),
     ("+CREG: 0,3", 3, "registration denied"), ('+CEREG: 2,2,"1A2B","01C2D3E4",7', 2, "not registered, searching")],
)
def test_network_registration(line: str, stat: int, words: str) -> None:
    assert registration(answer("AT+CREG?", line)) == (stat, words)


def test_a_gsm_module_without_a_sim_or_network_is_not_ready_and_says_why() -> None:
    d = diagnosis("sim7600", "gsm", answer("AT+CPIN?", result="ERROR", detail="+CME ERROR: 10"),
                  answer("AT+CREG?", "+CREG: 0,0"), answer("AT+CSQ", "+CSQ: 99,99"))
    assert verdict(d) == Verdict(False, (
        "not ready: the SIM is not ready (AT+CPIN? → +CME ERROR: 10); insert it, or remove its PIN with a phone",
        "not ready: not on a network (not registered, not searching); check the antenna and the SIM's voice plan",
    ))


def test_a_usr_refusing_voice_mode_points_at_its_firmware() -> None:
    d = diagnosis("usr5637", "analog", answer("AT+FCLASS=?", "0,1,8"), answer("AT+FCLASS=8", result="ERROR"))
    assert verdict(d).lines == (
        "not usable: the modem lists voice mode but refused AT+FCLASS=8 (USRobotics USR5637 needs firmware 1.2.23 or later)",
    )


# --- rescue ------------------------------------------------------------------------------------


async def _leave_streaming(path: str) -> None:
    """A program that crashed mid-recording: voice mode, off-hook, +VRX, port closed."""
    port = await SerialPort.open(path)
    try:
        for command, final in ((b"AT+FCLASS=8\r", b"OK\r\n"), (b"AT+VLS=1\r", b"OK\r\n"), (b"AT+VRX\r", b"CONNECT")):
            await port.write(command)
            seen = b""
            while final not in seen:
                seen += await port.read()
        audio = b""
        while len(audio) < 200:
            audio += await port.read()
    finally:
        await port.close()


def test_a_modem_left_streaming_by_a_crash_is_stopped_with_dle_and_put_on_hook() -> None:
    # A slower clock: the probe listens 0.3 clock seconds for the stream before it speaks,
    # and the simulator thread must get to send audio within that time even on a busy machine.
    clock = ScaledClock(2.0, start=START)
    with VoiceModemSim("cx930xx", clock=clock) as sim:
        asyncio.run(asyncio.wait_for(_leave_streaming(sim.path), timeout=5))
        assert sim.stats().off_hook
        outcome = probe_sim(sim, clock)
        stats = sim.stats()
    d = outcome.diagnosis
    assert d is not None and d.recovery == STREAM_RESCUE
    assert d.hung_up is not None and d.hung_up.ok
    assert outcome.transcript is not None
    assert sent_lines(outcome.transcript)[0] == b"\x10!\x10\x03\r"  # <DLE>! first, not an AT (1.7)
    assert (stats.fclass, stats.off_hook, stats.protocol_violations) == (0, False, ())


SILENT_UNTIL_END_OF_PLAYBACK = """\
# A modem left in +VTX: it takes every byte as audio until <DLE><ETX>.
meta port /dev/ttyACM0
meta date 2025-01-17T14:52:05+01:00
0.300 DTE> AT\\r
2.300 note no answer to AT after 2 s
2.301 DTE> \\x10!\\x10\\x03\\r
2.400 DCE< \\r\\nOK\\r\\n
2.800 DTE> AT\\r
2.810 DCE< AT\\r\\r\\nOK\\r\\n
2.820 DTE> ATH0\\r
2.830 DCE< ATH0\\r\\r\\nOK\\r\\n
"""


def test_a_modem_silent_in_playback_answers_after_end_of_stream() -> None:
    outcome = replayed(parse_transcript(SILENT_UNTIL_END_OF_PLAYBACK))
    # The script ends after ATH0, so everything later times out: enough to see the rescue.
    assert outcome.diagnosis is not None
    assert outcome.diagnosis.recovery == STREAM_RESCUE
    assert "after <DLE>! <DLE><ETX>" in outcome.report[2]


# --- ports that do not work -----------------------------------------------------------------


def test_a_missing_port_says_so_and_how_to_find_the_modem() -> None:
    said, complaints = [], []
    code = run("/dev/does-not-exist", out_dir=Path("."), echo=said.append, complain=complaints.append)
    assert code == EXIT_UNREACHABLE
    assert complaints[0].startswith("there is no /dev/does-not-exist: is the modem plugged in?")
    assert "/dev/appliance-modem" in complaints[0]


def test_a_file_that_is_not_a_device_is_refused_before_opening(tmp_path: Path) -> None:
    plain = tmp_path / "ttyACM0"
    plain.write_text("")
    complaints: list[str] = []
    assert run(str(plain), out_dir=tmp_path, echo=print, complain=complaints.append) == EXIT_UNREACHABLE
    assert "is not a serial device" in complaints[0]


def test_a_character_device_that_is_not_a_tty_is_named() -> None:
    outcome = asyncio.run(diagnose("/dev/null", clock=ScaledClock(RATE)))
    assert outcome.transcript is None and outcome.exit_code == EXIT_UNREACHABLE
    assert outcome.problem == "/dev/null is not a serial port (the terminal settings could not be applied): give the modem's tty"


def _open_failure(code: int) -> LineError:
    err = LineError("port-open-failed", f"cannot open /dev/ttyACM0: [Errno {code}] {os.strerror(code)}")
    err.__cause__ = OSError(code, os.strerror(code))
    return err


def test_permission_denied_names_the_dialout_group_and_the_udev_rule() -> None:
    problem = open_failure_problem("/dev/ttyACM0", _open_failure(errno.EACCES))
    assert problem.startswith("permission denied on /dev/ttyACM0")
    assert "sudo usermod -aG dialout $USER" in problem and "90-appliance-modem.rules" in problem


def test_a_busy_port_names_who_holds_it_and_how_to_keep_modemmanager_off() -> None:
    problem = open_failure_problem("/dev/ttyACM0", _open_failure(errno.EBUSY), [Holder(812, "ModemManager")])
    assert problem.startswith("/dev/ttyACM0 is busy (held by ModemManager (pid 812))")
    assert "systemctl stop ModemManager" in problem and "ID_MM_DEVICE_IGNORE" in problem


@pytest.fixture
def bare_pty() -> Iterator[str]:
    """A serial port with nothing behind it: the bytes go nowhere and nothing comes back."""
    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        yield os.ttyname(slave)
    finally:
        os.close(slave)
        os.close(master)


def test_a_port_that_never_answers_is_reported_plainly_after_every_rescue(bare_pty: str) -> None:
    outcome = asyncio.run(asyncio.wait_for(diagnose(bare_pty, clock=ScaledClock(RATE)), timeout=10))
    assert outcome.exit_code == EXIT_UNREACHABLE
    assert outcome.problem is not None
    assert outcome.problem.startswith(f"no answer to AT on {bare_pty} after {COMMAND_TIMEOUT_S:g} s")
    assert "is ModemManager holding it?" in outcome.problem and "hw/README.md" in outcome.problem
    assert outcome.transcript is not None
    assert sent_lines(outcome.transcript) == [b"AT\r", b"\x10!\x10\x03\r", b"AT\r", b"+++", b"AT\r"]


def test_another_process_holding_the_port_is_named(bare_pty: str) -> None:
    with open(bare_pty, "rb", buffering=0) as held:
        sleeper = subprocess.Popen(["sleep", "30"], stdin=held)
    try:
        assert Holder(sleeper.pid, "sleep") in port_holders(bare_pty)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert all(h.pid != sleeper.pid for h in port_holders(bare_pty))


# --- USB identity from sysfs -------------------------------------------------------------------


def _usb_device(root: Path, vendor: str, product: str) -> Path:
    device = root / "devices" / "platform" / "xhci" / "usb1" / "1-1"
    device.mkdir(parents=True)
    (device / "idVendor").write_text(vendor + "\n")
    (device / "idProduct").write_text(product + "\n")
    return device


def _tty(root: Path, name: str, target: Path) -> None:
    (root / "class" / "tty" / name).mkdir(parents=True)
    (root / "class" / "tty" / name / "device").symlink_to(target)


def test_usb_identity_of_a_cdc_acm_modem(tmp_path: Path) -> None:
    interface = _usb_device(tmp_path, "0baf", "0303") / "1-1:1.0"
    interface.mkdir()
    (interface / "bInterfaceNumber").write_text("00\n")
    _tty(tmp_path, "ttyACM0", interface)
    assert usb_identity("/dev/ttyACM0", sys_root=tmp_path) == UsbIdentity("0baf", "0303", "00")


def test_usb_identity_of_one_port_of_a_gsm_module(tmp_path: Path) -> None:
    interface = _usb_device(tmp_path, "2C7C", "0125") / "1-1:1.2"
    (interface / "ttyUSB2").mkdir(parents=True)
    (interface / "bInterfaceNumber").write_text("02\n")
    _tty(tmp_path, "ttyUSB2", interface / "ttyUSB2")
    identity = usb_identity("/dev/ttyUSB2", sys_root=tmp_path)
    assert identity == UsbIdentity("2c7c", "0125", "02")
    assert str(identity) == "2c7c:0125 interface 02" and UsbIdentity.parse(str(identity)) == identity


def test_a_pty_has_no_usb_identity(bare_pty: str) -> None:
    assert usb_identity(bare_pty) is None


def test_the_usb_id_alone_identifies_a_chipset_whose_answers_are_unusual() -> None:
    # An OEM firmware that answers nothing known to ATI: the 0572:1340 USB id still says Conexant.
    oem = scripted([*GREETING, *UNKNOWN_ANSWERS], usb="0572:1340 interface 00")
    outcome = replayed(parse_transcript(oem.render()))
    assert outcome.diagnosis is not None and outcome.diagnosis.profile_name == "cx930xx"
    assert outcome.diagnosis.usb == UsbIdentity("0572", "1340", "00")


# --- caller ID during the probe: masked in the transcript ---------------------------------------


async def _enable_caller_id(path: str) -> None:
    port = await SerialPort.open(path)
    try:
        await port.write(b"AT+VCID=1\r")
        seen = b""
        while b"OK\r\n" not in seen:
            seen += await port.read()
    finally:
        await port.close()


def test_a_caller_ringing_during_the_probe_is_seen_but_the_number_is_masked() -> None:
    clock = ScaledClock(RATE, start=START)
    with VoiceModemSim("usr5637", clock=clock) as sim:
        asyncio.run(asyncio.wait_for(_enable_caller_id(sim.path), timeout=5))

        async def probe_while_ringing() -> Outcome:
            before = len(sim.transcript())
            probing = asyncio.create_task(diagnose(sim.path, clock=clock))
            # Ring once the probe has spoken: caller ID sent to a port nobody has open is
            # flushed when the port is opened, as on a real tty.
            while not any(entry.direction == "DTE>" for entry in sim.transcript()[before:]):
                await asyncio.sleep(0.002)
            await asyncio.to_thread(sim.ring, NUMBER, "A N OTHER", cid="before_ring")
            return await probing

        outcome = asyncio.run(asyncio.wait_for(probe_while_ringing(), timeout=10))
    assert outcome.diagnosis is not None and outcome.transcript is not None
    assert {"NMBR=XXXXXXXXXX", "NAME=XXXXXXXXX"} <= set(outcome.diagnosis.unsolicited)
    assert outcome.exit_code == EXIT_READY  # a ringing line does not confuse the probe
    saved = outcome.transcript.render()
    assert NUMBER not in saved and "A N OTHER" not in saved
    assert replayed(parse_transcript(saved)).report == outcome.report


def test_masking_covers_a_number_split_across_two_reads_and_keeps_the_boundaries() -> None:
    transcript = Transcript(
        meta={},
        entries=(
            Crossing(0.0, "DCE<", b"\r\nNMBR=0612"),
            Crossing(0.1, "DCE<", b"345678\r\n\r\n+CLIP: \"+33612345678\",145,\"\",0,\"\",0\r\n"),
            Crossing(0.2, "DCE<", b"\r\n+CLIP: (0,1)\r\n\r\nOK\r\n"),
        ),
    )
    masked = mask_transcript(transcript)
    assert [len(e.data) for e in masked.entries] == [len(e.data) for e in transcript.entries]  # type: ignore[union-attr]
    stream = masked.sent("DCE<")
    assert b"0612" not in stream and b"345678" not in stream and b"33612345678" not in stream
    assert b"+CLIP: (0,1)" in stream  # the answer to AT+CLIP=? is no caller's data


# --- transcripts -------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_escaped_bytes_are_one_printable_line_that_unescapes_to_the_same_bytes(data: bytes) -> None:
    text = escape(data)
    assert all(0x20 <= ord(c) <= 0x7E for c in text) and not text.endswith(" ")
    assert unescape(text) == data


crossings = st.builds(
    Crossing,
    st.floats(min_value=0, max_value=9999, allow_nan=False).map(lambda s: round(s, 3)),
    st.sampled_from(["DTE>", "DCE<"]),
    st.binary(min_size=1, max_size=40),
)


@settings(max_examples=100, deadline=None)
@given(st.lists(crossings, max_size=8))
def test_a_rendered_transcript_parses_back_to_itself(entries: list[Crossing]) -> None:
    original = Transcript(meta={"format": "appliance-transcript/1", "port": "/dev/ttyACM0"}, entries=tuple(entries),
                          report=("Chipset          usr5637", "", "  µ-law: +VSM=131"))
    assert parse_transcript(original.render()) == original


def test_a_malformed_transcript_line_is_named() -> None:
    with pytest.raises(LineError, match=r"here:2: unknown escape"):
        parse_transcript("meta port x\n0.1 DCE< bad \\q escape\n", source="here")


def test_replay_refuses_a_probe_that_asks_something_else() -> None:
    link = ReplayLink(scripted(GREETING))

    async def ask() -> None:
        await link.write(b"ATZ\r")

    with pytest.raises(LineError, match=r"replay-diverged: wrote b'ATZ\\r' where the transcript has b'AT\\r'"):
        asyncio.run(ask())


@pytest.mark.parametrize("profile", ["usr5637", "cx930xx"])
def test_a_live_transcript_replays_to_the_same_diagnosis_and_report(profile: str) -> None:
    clock = ScaledClock(RATE, start=START)
    with analog_sim(profile, clock) as sim:
        live = probe_sim(sim, clock)
    assert live.transcript is not None
    again = replayed(parse_transcript(live.transcript.render()))
    assert again.diagnosis == live.diagnosis
    assert again.report == live.report == list(live.transcript.report)


def _fixtures() -> list[Path]:
    return sorted(FIXTURES.glob("diagnose-*.txt"))


def _chipset(transcript: Transcript) -> str:
    line = next((line for line in transcript.report if line.startswith("Chipset ")), "Chipset unknown")
    return line.split()[1].rstrip(":")


def simulated_chipsets() -> set[str]:
    """The built-in profiles the simulators can play today."""
    names = set()
    for name, profile in builtin_profiles().items():
        try:
            sim = (GsmModemSim if profile.kind == "gsm" else VoiceModemSim)(name, clock=ScaledClock(1.0))
        except ValueError:
            continue
        sim.close()
        names.add(name)
    return names


def test_there_is_a_fixture_for_every_simulated_chipset_and_for_silence() -> None:
    # A chipset the simulators learn fails here until `python -m tests.test_diagnose` has run.
    assert {"usr5637", "cx930xx", "sim7600"} <= simulated_chipsets()
    assert simulated_chipsets() | {"unknown"} <= {_chipset(load_transcript(p)) for p in _fixtures()}


@pytest.mark.parametrize("path", _fixtures(), ids=lambda p: p.name)
def test_a_saved_transcript_replays_to_the_report_saved_with_it(path: Path) -> None:
    transcript = load_transcript(path)
    assert transcript.report, f"{path.name} has no report lines to compare with"
    assert replayed(transcript).report == list(transcript.report)


# --- the command line --------------------------------------------------------------------------


@pytest.fixture
def root_logging() -> Iterator[None]:
    """``main`` sets up logging for the process; give the other tests theirs back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level


@pytest.mark.usefixtures("root_logging")
def test_the_command_prints_the_report_and_saves_a_transcript_that_replays(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with VoiceModemSim("usr5637", clock=ScaledClock(1.0)) as sim:
        code = main(["diagnose-line", sim.path, "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == EXIT_READY
    assert "Chipset          usr5637: USRobotics USR5637" in out
    (saved,) = tmp_path.glob("diagnose-usr5637-*.txt")
    assert f"Transcript saved to {saved}" in out
    assert replayed(load_transcript(saved)).report == list(load_transcript(saved).report)


@pytest.mark.usefixtures("root_logging")
def test_the_command_exits_3_with_one_line_on_stderr_when_there_is_no_modem(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["diagnose-line", "/dev/does-not-exist"]) == EXIT_UNREACHABLE
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: there is no /dev/does-not-exist") and captured.err.count("\n") == 1


def test_an_analog_modem_without_voice_mode_is_reachable_but_not_ready() -> None:
    data_only = scripted([
        *GREETING, *UNKNOWN_ANSWERS,
        ("AT+FCLASS=?", ["0,1,2"], "OK"), ("AT+VCID=?", [], "ERROR"), ("AT#CID=?", [], "ERROR"),
    ])
    outcome = replayed(data_only)
    assert outcome.diagnosis is not None and outcome.exit_code == EXIT_NOT_READY
    assert "Chipset          unknown chipset (no built-in profile matches)" in outcome.report
    assert "  not usable: no voice mode (class 8) in AT+FCLASS=?; a data/fax-only modem cannot answer calls" in outcome.report


# --- writing the fixtures again ------------------------------------------------------------------


def write_fixtures(directory: Path = FIXTURES) -> list[Path]:
    """Probe every simulated chipset, a modem left streaming, and a silent pty; save the transcripts."""
    directory.mkdir(parents=True, exist_ok=True)
    cases = [*sorted(simulated_chipsets()), "cx930xx streaming", "silent"]
    written = []
    for minute, case in enumerate(cases):
        clock = ScaledClock(RATE, start=START.replace(minute=minute))
        name = case.split()[0]
        if name == "silent":
            master, slave = os.openpty()
            tty.setraw(slave)
            outcome = asyncio.run(asyncio.wait_for(diagnose(os.ttyname(slave), clock=clock), timeout=10))
            os.close(slave)
            os.close(master)
        else:
            kind = builtin_profiles()[name].kind
            with (GsmModemSim if kind == "gsm" else VoiceModemSim)(name, clock=clock) as sim:
                if case.endswith("streaming"):
                    asyncio.run(asyncio.wait_for(_leave_streaming(sim.path), timeout=5))
                outcome = probe_sim(sim, clock)
        assert outcome.transcript is not None
        path = directory / transcript_name(outcome, outcome.transcript.meta["date"])
        path.write_text(outcome.transcript.render(), encoding="utf-8")
        written.append(path)
    return written


def refresh_reports(directory: Path = FIXTURES) -> list[Path]:
    """Rewrite the report lines of saved transcripts by replaying them (after an intended
    change of the report's wording: review the diff). A real modem's capture cannot be
    taken again; its bytes stay as they are."""
    refreshed = []
    for path in sorted(directory.glob("diagnose-*.txt")):
        transcript = load_transcript(path)
        path.write_text(transcript.with_report(replayed(transcript).report).render(), encoding="utf-8")
        refreshed.append(path)
    return refreshed


if __name__ == "__main__":
    # python -m tests.test_diagnose            probe the simulators again, write new fixtures
    # python -m tests.test_diagnose --refresh  replay every fixture and rewrite its report lines
    done = refresh_reports() if sys.argv[1:] == ["--refresh"] else write_fixtures()
    for written_path in done:
        print(written_path)
