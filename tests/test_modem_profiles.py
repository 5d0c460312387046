"""Modem profiles: the shipped data files, strict loading, chipset detection, +VSM choice.

Identification strings and +VSM answers are the ones quoted in telephony.md
(1.1, 1.4, 1.6, 2.2-2.4); where the reference has none (GSM model names) the
profile marks its pattern unverified and the test says so.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from appliance.errors import ConfigError
from appliance.line.profile import (
    PROFILE_DIR,
    ModemProfile,
    builtin_profiles,
    detect_chipset,
    identification_commands,
    load_profile,
)
from appliance.line.vsm import VoiceFormat, parse_vsm_methods, pick_voice_format, vsm_commands

PROFILES = builtin_profiles()
Edit = Callable[[str], str]

USR_ATI3 = "U.S. Robotics 56K FAX USB V1.2.23"
CX_ATI3 = "CX93001-EIS_V0.2013-V92"

# telephony.md 1.6, USR5637 firmware 1.2.23.
USR_VSM = """\
128,"8-BIT LINEAR",(7200,8000,11025)
129,"16-BIT LINEAR",(7200,8000,11025)
130,"8-BIT ALAW",(8000)
131,"8-BIT ULAW",(8000)
132,"IMA ADPCM",(7200,8000,11025)
OK
"""
# telephony.md 1.6, Conexant CX93001.
CX_VSM = """\
0,"SIGNED PCM",8,0,8000,0,0
1,"UNSIGNED PCM",8,0,8000,0,0
129,"IMA ADPCM",4,0,8000,0,0
130,"UNSIGNED PCM",8,0,8000,0,0
131,"Mu-Law",8,0,8000,0,0
132,"A-Law",8,0,8000,0,0
133,"14 bit PCM",14,0,8000,0,0
OK
"""


def without(answer: str, *ids: int) -> str:
    return "\n".join(line for line in answer.splitlines() if not any(line.startswith(f"{i},") for i in ids))


# --- the shipped files ------------------------------------------------------------


def test_every_builtin_profile_loads() -> None:
    assert set(PROFILES) == {"usr5637", "cx930xx", "multitech", "sim7600", "ec25", "sim800"}
    assert {p.name for p in PROFILES.values() if p.kind == "analog"} == {"usr5637", "cx930xx", "multitech"}
    for path in sorted(PROFILE_DIR.glob("*.toml")):
        assert load_profile(path) == PROFILES[path.stem]


@pytest.mark.parametrize("name", ["usr5637", "cx930xx", "multitech"])
def test_analog_profiles_answer_in_voice_mode_never_ata(name: str) -> None:
    voice = PROFILES[name].voice
    assert voice is not None
    assert (voice.enter, voice.answer, voice.leave) == ("AT+FCLASS=8", "AT+VLS=1", "AT+FCLASS=0")
    assert voice.tx and voice.rx
    assert PROFILES[name].init.baud == 115200
    assert PROFILES[name].init.commands[:2] == ("ATZ", "ATE0")


# telephony.md 6.2: the per-chipset differences the driver must act on.
# name: (ring while idle in FCLASS=8, reports <DLE>l, ignores <DLE>H after VLS=1,
#        +VTR, CID spacing, +VSM ulaw/alaw/linear8 hints)
ANALOG_FACTS = {
    "usr5637": ("RING", False, True, False, "none", (131, 130, 128)),
    "cx930xx": ("DLE_R", True, False, True, "spaced", (131, 132, 1)),
    "multitech": ("RING", False, True, False, "either", (131, 130, 128)),
}


@pytest.mark.parametrize("name", sorted(ANALOG_FACTS))
def test_analog_profile_facts(name: str) -> None:
    ring, loop_drop, ignores_h, vtr, spacing, hints = ANALOG_FACTS[name]
    p = PROFILES[name]
    assert p.dle is not None and p.voice is not None
    assert p.dle.ring_in_voice_idle == ring
    assert ("l" in p.dle.hangup_codes) is loop_drop
    assert ("H" in p.dle.ignore_after_answer) is ignores_h
    assert p.voice.full_duplex is vtr
    assert not p.voice.full_duplex_echo_cancelled  # 1.8: no +VTR echo cancellation anywhere
    assert p.caller_id.equals_spacing == spacing
    assert (p.voice.vsm_ulaw, p.voice.vsm_alaw, p.voice.vsm_linear8) == hints
    assert {"d", "b", "s", "q"} <= set(p.dle.hangup_codes)


def test_usr_quirks_and_conexant_quirks() -> None:
    usr, cx = PROFILES["usr5637"].quirks, PROFILES["cx930xx"].quirks
    assert usr.min_firmware == "1.2.23"
    assert usr.dle_h_after_answer and usr.vts_digit_unsupported and usr.vrx_requires_vls5
    assert cx.cid_may_be_disabled and cx.linear8_noisy and not cx.vts_digit_unsupported
    assert PROFILES["cx930xx"].caller_id.enable == ("AT-SCID=1;+VCID=1;-STE=3",)


# name: (audio paths in preference order, first enable commands, enabled only in an active call)
GSM_FACTS = {
    "sim7600": (("serial_pcm",), ("AT+CPCMREG=1",), True),
    "ec25": (("uac", "serial_pcm"), ("AT+QPCMV=1,2",), False),
    "sim800": (("sound_card",), (), False),
}


@pytest.mark.parametrize("name", sorted(GSM_FACTS))
def test_gsm_profile_facts(name: str) -> None:
    paths, first_enable, needs_active = GSM_FACTS[name]
    p = PROFILES[name]
    assert p.gsm is not None and p.voice is None and p.dle is None
    assert tuple(a.path for a in p.gsm.audio) == paths
    assert p.gsm.audio[0].enable == first_enable
    assert p.quirks.pcm_requires_active_call is needs_active
    assert p.gsm.audio[0].frame_bytes == 320  # 160 x int16 at 8 kHz
    assert p.caller_id.enable == ("AT+CLIP=1",) and p.caller_id.style == "clip"
    assert "AT+CHUP" in p.gsm.hang_up
    assert "NO CARRIER" in p.gsm.hangup_urcs
    assert (p.gsm.sms.ucs2_charset, p.gsm.sms.ucs2_parameters) == ('AT+CSCS="UCS2"', "AT+CSMP=17,167,0,8")
    assert p.gsm.sms.gsm_charset == 'AT+CSCS="GSM"'


def test_sim7600_pcm_is_switched_on_only_in_an_active_call_and_off_after() -> None:
    gsm = PROFILES["sim7600"].gsm
    assert gsm is not None
    (audio,) = gsm.audio
    assert (audio.port, audio.enable_when, audio.disable) == ("ttyUSB4", "call_active", ("AT+CPCMREG=0",))
    assert audio.enable_retry_window_s > 0  # ERROR before the call is active -> retry
    assert "AT+CPCMREG=1" not in PROFILES["sim7600"].init.commands


# --- detection --------------------------------------------------------------------

DETECTION = [
    # telephony.md 1.1 / 1.4 / 6.2
    ({"ATI0": "5601"}, "usr5637"),
    ({"ATI0": "\r\n5601\r\n\r\nOK\r\n"}, "usr5637"),
    ({"ATI0": "ATI0\r\r\n5601\r\n\r\nOK\r\n"}, "usr5637"),  # echo still on
    ({"ati3": USR_ATI3}, "usr5637"),
    ({"ATI0": "5601", "ATI3": USR_ATI3, "AT+GMI9": "\r\nERROR\r\n"}, "usr5637"),
    ({"usb": "0baf:0303"}, "usr5637"),
    ({"ATI0": "56000"}, "cx930xx"),
    ({"ATI3": f"\r\n{CX_ATI3}\r\n\r\nOK\r\n"}, "cx930xx"),
    ({"AT+GMI9": "CONEXANT ACF"}, "cx930xx"),
    ({"ATI0": "56000", "ATI3": CX_ATI3, "AT+GMI9": "CONEXANT ACF"}, "cx930xx"),
    ({"usb": "0572:1340"}, "cx930xx"),
    ({"usb": "0572:1349"}, "cx930xx"),
    ({"ATI0": "MT9234MU"}, "multitech"),  # 1.1: "ATI0 contains MT9234MU"
    ({"usb": "2C7C:0125"}, "ec25"),  # 2.3 USBCFG vendor/product
    # GSM model names: not captured in telephony.md; the profiles mark these unverified.
    ({"AT+GMM": "SIM7600G-H"}, "sim7600"),
    ({"AT+GMM": "EG25"}, "ec25"),
    ({"AT+GMM": "\r\nSIM800\r\n\r\nOK\r\n"}, "sim800"),
    # best match: two answers for USR outweigh one for Conexant
    ({"ATI0": "5601", "ATI3": USR_ATI3, "AT+GMI9": "CONEXANT ACF"}, "usr5637"),
    # unknown modems
    ({}, None),
    ({"ATI0": "28800"}, None),
    ({"ATI0": "56001"}, None),  # neither 5601 nor 56000: patterns are anchored
    ({"ATI0": "OK", "AT+GMI9": "ERROR"}, None),
    ({"ATI3": "Generic V.92 modem"}, None),
    ({"usb": "0572:9999"}, None),
    # contradictory evidence, one answer each: a tie is not a guess
    ({"ATI0": "5601", "AT+GMI9": "CONEXANT ACF"}, None),
]


@pytest.mark.parametrize(("responses", "expected"), DETECTION)
def test_detect_chipset(responses: dict[str, str], expected: str | None) -> None:
    found = detect_chipset(responses, PROFILES)
    assert (found.name if found else None) == expected


def test_detect_chipset_defaults_to_builtin_profiles_and_accepts_a_list() -> None:
    assert detect_chipset({"ATI0": "5601"}) == PROFILES["usr5637"]
    only_cx = [PROFILES["cx930xx"]]
    assert detect_chipset({"ATI0": "5601"}, only_cx) is None
    assert detect_chipset({"ATI0": "56000"}, only_cx) == PROFILES["cx930xx"]


def test_identification_commands_lists_what_the_driver_must_ask() -> None:
    commands = identification_commands(PROFILES)
    assert {"ATI0", "ATI3", "AT+GMI9", "AT+GMM"} == set(commands)
    assert "usb" not in commands


# --- strict loading ---------------------------------------------------------------


def _drop_table(text: str, header: str) -> str:
    pattern = re.compile(rf"^\[{re.escape(header)}\]\n(?:(?!\[).*\n)*", re.MULTILINE)
    assert pattern.search(text), header
    return pattern.sub("", text, count=1)


def _table(profile: str, header: str) -> str:
    """One whole table of a shipped profile, to graft onto another."""
    text = (PROFILE_DIR / f"{profile}.toml").read_text(encoding="utf-8")
    match = re.search(rf"^\[{re.escape(header)}\]\n(?:(?!\[).*\n)*", text, re.MULTILINE)
    assert match, header
    return "\n" + match[0]


def _replace(old: str, new: str) -> Edit:
    def edit(text: str) -> str:
        assert text.count(old) == 1, old
        return text.replace(old, new)

    return edit


BAD_ANALOG = [
    ("unknown top-level key", _replace('kind = "analog"', 'kind = "analog"\ncolour = "red"'), "colour"),
    ("unknown key in a table", _replace("tx = true", "tx = true\nvolume = 3"), "voice.volume"),
    ("name is the file name", _replace('kind = "analog"', 'name = "x"\nkind = "analog"'), "name:"),
    ("string for an integer", _replace("baud = 115200", 'baud = "fast"'), "init.baud"),
    ("integer for a boolean", _replace("full_duplex = false", "full_duplex = 1"), "voice.full_duplex"),
    ("boolean for an integer", _replace("vsm_ulaw = 131", "vsm_ulaw = true"), "voice.vsm_ulaw"),
    ("string for an array", _replace('hangup_codes = ["b", "d", "s", "q"]', 'hangup_codes = "b"'), "dle.hangup_codes"),
    ("wrong item type", _replace('silence_codes = ["s", "q"]', 'silence_codes = ["s", 7]'), "dle.silence_codes[1]"),
    ("bad choice", _replace('kind = "analog"', 'kind = "isdn"'), "kind:"),
    ("missing init table", lambda t: _drop_table(t, "init"), "init: missing"),
    ("missing init commands", _replace('commands = ["ATZ", "ATE0", "ATV1", "ATS0=0"]', ""), "init.commands: missing"),
    ("empty init commands", _replace('commands = ["ATZ", "ATE0", "ATV1", "ATS0=0"]', "commands = []"), "init.commands"),
    ("init command not AT", _replace('["ATZ", "ATE0", "ATV1", "ATS0=0"]', '["ATZ", "reset"]'), "init.commands[1]"),
    ("answer with ATA", _replace('answer = "AT+VLS=1"', 'answer = "ATA"'), "voice.answer"),
    ("bad regex", _replace("ATI3 = ['^U\\.S\\. Robotics 56K']", "ATI3 = ['(']"), "identification.ATI3"),
    ("empty identification", lambda t: _drop_table(t, "identification") + "[identification]\n", "identification:"),
    ("DTMF digit as an event", _replace('busy_codes = ["b"]', 'busy_codes = ["5"]'), "dle.busy_codes"),
    ("analog without dle", lambda t: _drop_table(t, "dle"), "dle: an analog profile needs"),
    ("quirk without its workaround", _replace('ignore_after_answer = ["H"]', "ignore_after_answer = []"),
     "quirks.dle_h_after_answer"),
    ("unknown quirk", _replace("[quirks]\n", "[quirks]\nsmells_funny = true\n"), "quirks.smells_funny"),
    ("not TOML", lambda t: t + "\n[[[\n", "not valid TOML"),
]


@pytest.mark.parametrize(("edit", "key"), [pytest.param(e, k, id=i) for i, e, k in BAD_ANALOG])
def test_bad_analog_profile_names_file_and_key(tmp_path: Path, edit: Edit, key: str) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(edit((PROFILE_DIR / "usr5637.toml").read_text(encoding="utf-8")), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_profile(path)
    assert "broken.toml" in str(err.value)
    assert key in str(err.value)


BAD_GSM = [
    ("audio rate as string", _replace("sample_rate_hz = 8000", 'sample_rate_hz = "8k"'),
     "gsm.audio[0].sample_rate_hz"),
    ("unsupported audio rate", _replace("sample_rate_hz = 8000", "sample_rate_hz = 44100"),
     "gsm.audio[0].sample_rate_hz"),
    ("serial pcm without port", _replace('port = "ttyUSB4"', 'port = ""'), "gsm.audio[0].port"),
    ("unknown sms key", _replace('text_mode = "AT+CMGF=1"', 'text_mode = "AT+CMGF=1"\npdu = true'), "gsm.sms.pdu"),
    ("gsm with a voice table", lambda t: t + _table("usr5637", "voice"), "voice: a gsm profile has no"),
    ("missing gsm table", lambda t: re.sub(r"(?ms)^\[gsm\]\n.*", "", t), "gsm: a gsm profile needs"),
    ("bad dtmf value style", _replace('dtmf_value = "digit"', 'dtmf_value = "morse"'), "gsm.dtmf_value"),
]


@pytest.mark.parametrize(("edit", "key"), [pytest.param(e, k, id=i) for i, e, k in BAD_GSM])
def test_bad_gsm_profile_names_file_and_key(tmp_path: Path, edit: Edit, key: str) -> None:
    path = tmp_path / "odd_module.toml"
    path.write_text(edit((PROFILE_DIR / "sim7600.toml").read_text(encoding="utf-8")), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_profile(path)
    assert "odd_module.toml" in str(err.value)
    assert key in str(err.value)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nowhere.toml"):
        load_profile(tmp_path / "nowhere.toml")


def test_a_copied_profile_loads_under_its_file_name(tmp_path: Path) -> None:
    path = tmp_path / "zoom3095.toml"
    path.write_text((PROFILE_DIR / "cx930xx.toml").read_text(encoding="utf-8"), encoding="utf-8")
    profile = load_profile(path)
    assert isinstance(profile, ModemProfile) and profile.name == "zoom3095"
    assert detect_chipset({"ATI0": "56000"}, [profile]) == profile


# --- +VSM -------------------------------------------------------------------------

VOICE_FORMATS = [
    # (profile, AT+VSM=? answer, expected (encoding, id) or None)
    ("usr5637", USR_VSM, ("ulaw", 131)),
    ("usr5637", "AT+VSM=?\r\r\n" + USR_VSM.replace("\n", "\r\n"), ("ulaw", 131)),  # echo and CRLF
    ("usr5637", without(USR_VSM, 131), ("alaw", 130)),
    ("usr5637", without(USR_VSM, 131, 130), ("linear8", 128)),
    ("usr5637", without(USR_VSM, 131, 130, 128), None),  # 16-bit linear and ADPCM are not taken
    ("cx930xx", CX_VSM, ("ulaw", 131)),
    ("cx930xx", without(CX_VSM, 131), ("alaw", 132)),
    ("cx930xx", without(CX_VSM, 131, 132), ("linear8", 1)),  # hint 1 over the other UNSIGNED PCM, 130
    ("cx930xx", without(CX_VSM, 131, 132, 1), ("linear8", 130)),
    ("cx930xx", without(CX_VSM, 131, 132, 1, 130), None),  # signed, ADPCM, 14-bit only
    (None, CX_VSM, ("ulaw", 131)),  # by name, no profile needed
    (None, without(CX_VSM, 131, 132), ("linear8", 1)),  # first listed without a hint
    # older Conexant parts list bare ids (1.6): only the chipset's table can read them
    ("cx930xx", "1,129,130,140,141\nOK", ("linear8", 1)),
    (None, "1,129,130,140,141\nOK", None),
    # µ-law offered only at a rate other than 8000 Hz is skipped
    ("usr5637", USR_VSM.replace('131,"8-BIT ULAW",(8000)', '131,"8-BIT ULAW",(11025)'), ("alaw", 130)),
    ("usr5637", "ERROR\n", None),
]


@pytest.mark.parametrize(("name", "answer", "expected"), VOICE_FORMATS)
def test_pick_voice_format(name: str | None, answer: str, expected: tuple[str, int] | None) -> None:
    chosen = pick_voice_format(PROFILES[name] if name else None, answer)
    assert ((chosen.encoding, chosen.vsm_id) if chosen else None) == expected
    if chosen:
        assert chosen.sample_rate_hz == 8000


def test_parse_vsm_methods_reads_both_layouts() -> None:
    usr = {m.cml: m for m in parse_vsm_methods(USR_VSM)}
    assert usr[128].name == "8-BIT LINEAR"
    assert usr[128].rate_ranges_hz == ((7200, 7200), (8000, 8000), (11025, 11025))
    assert usr[131].rate_ranges_hz == ((8000, 8000),) and usr[131].bits is None
    cx = {m.cml: m for m in parse_vsm_methods(CX_VSM)}
    assert set(cx) == {0, 1, 129, 130, 131, 132, 133}
    assert (cx[133].name, cx[133].bits, cx[129].bits) == ("14 bit PCM", 14, 4)
    assert cx[131].supports_rate(8000) and not cx[131].supports_rate(11025)


@pytest.mark.parametrize(
    ("name", "voice_format", "expected"),
    [
        ("usr5637", VoiceFormat(encoding="ulaw", vsm_id=131), ("AT+VSM=131,8000",)),
        ("cx930xx", VoiceFormat(encoding="linear8", vsm_id=1), ("AT+VSM=1,8000", "AT+VSM=1,8000,0,0")),
    ],
)
def test_vsm_commands_short_form_first(name: str, voice_format: VoiceFormat, expected: tuple[str, ...]) -> None:
    assert vsm_commands(PROFILES[name], voice_format) == expected
