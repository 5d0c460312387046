"""What a modem answered to ``appliance diagnose-line``, and what that means for the box.

``Diagnosis`` holds only the modem's answers (and the facts around them: port,
USB id, profile matched). Everything said about them, the voice formats, the
GSM registration, the verdict, is derived here by pure functions, so a replayed
transcript gives exactly the report the live probe printed, and the meaning of
an answer can be improved without new captures.

Voice formats are classified with the driver's own ``vsm.pick_voice_format``,
one listed method at a time, so the report can never disagree with what the
driver would choose.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

from appliance.line.port_info import UDEV_RULES, UsbIdentity
from appliance.line.profile import ModemProfile, builtin_profiles
from appliance.line.vsm import SAMPLE_RATE_HZ, VoiceFormat, parse_vsm_methods, pick_voice_format, vsm_commands

ENCODING_LABELS: Final = {"ulaw": "µ-law", "alaw": "A-law", "linear8": "8-bit linear"}
_CREG: Final = re.compile(r"\+C[EG]?REG:\s*(?:\d+\s*,\s*)?(\d+)")  # +CREG, +CGREG, +CEREG
_CSQ: Final = re.compile(r"\+CSQ:\s*(\d+)\s*,\s*(\d+)")
_REGISTRATION: Final = {  # TS 27.007 +CREG <stat>
    0: "not registered, not searching",
    1: "registered (home network)",
    2: "not registered, searching",
    3: "registration denied",
    4: "unknown",
    5: "registered (roaming)",
}
_CSQ_UNKNOWN: Final = 99
CALLER_ID_QUERIES: Final = ("AT+VCID=?", "AT#CID=?")  # formatted caller ID (V.253), and Rockwell's


@dataclass(frozen=True, slots=True)
class Answer:
    """One command and what the modem said to it."""

    command: str
    result: str | None
    """The final result code ("OK", "ERROR", ...); None when nothing came in time."""
    lines: tuple[str, ...] = ()
    detail: str = ""
    """The final line as received when it says more than its code: ``+CME ERROR: 10``."""

    @property
    def ok(self) -> bool:
        return self.result == "OK"

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def summary(self) -> str:
        """What a person needs to see in one line."""
        if self.result is None:
            return "no answer"
        if self.ok:
            return " | ".join(self.lines) if self.lines else "OK"
        return self.detail or self.result


@dataclass(frozen=True, kw_only=True)
class Diagnosis:
    port: str
    date: str  # ISO 8601, from the clock when the port was opened
    usb: UsbIdentity | None
    recovery: str | None
    """What it took to get an OK: None (the first AT), or the rescue that worked."""
    hung_up: Answer | None = None
    """``ATH0`` after a rescue: a modem stuck in a stream was in a call."""
    identification: tuple[Answer, ...]
    profile_name: str | None
    kind: Literal["analog", "gsm"]
    answers: tuple[Answer, ...]
    """Everything asked after identification, in order."""
    unsolicited: tuple[str, ...] = ()
    """Lines the modem sent on its own (RING, caller ID), values already masked."""

    @property
    def profile(self) -> ModemProfile | None:
        return builtin_profiles().get(self.profile_name) if self.profile_name else None

    def answer(self, command: str) -> Answer | None:
        return next((a for a in self.answers if a.command == command), None)


@dataclass(frozen=True, slots=True)
class FormatSupport:
    vsm_id: int
    name: str
    encoding: str | None  # "ulaw", "alaw", "linear8"; None: a format the box does not decode


@dataclass(frozen=True, slots=True)
class Verdict:
    ready: bool
    lines: tuple[str, ...]


# --- analog ------------------------------------------------------------------------------


def fax_classes(answer: Answer | None) -> tuple[str, ...]:
    """``AT+FCLASS=?`` → the classes: "0,1,2,8", "(0-2,8)", "0,1,1.0,2,2.0,8"."""
    if answer is None or not answer.ok:
        return ()
    classes: list[str] = []
    for token in re.findall(r"\d+(?:\.\d+)?(?:-\d+)?", answer.text, re.ASCII):
        low, dash, high = token.partition("-")
        if dash and low.isdigit() and high.isdigit() and int(high) - int(low) <= 16:
            classes += [str(n) for n in range(int(low), int(high) + 1)]
        else:
            classes.append(token)
    return tuple(dict.fromkeys(classes))


def voice_formats(profile: ModemProfile | None, answer: Answer | None) -> tuple[FormatSupport, ...]:
    """Each method of an ``AT+VSM=?`` answer, classified as the driver would."""
    if answer is None or not answer.ok:
        return ()
    found = []
    for line in answer.lines:
        methods = parse_vsm_methods(line)
        for method in methods:
            # A bare id list names no formats: only the profile's hints can (vsm.py).
            alone = line if len(methods) == 1 else str(method.cml)
            chosen = pick_voice_format(profile, alone)
            encoding = chosen.encoding if chosen is not None and chosen.vsm_id == method.cml else None
            found.append(FormatSupport(method.cml, method.name, encoding))
    return tuple(found)


@dataclass(frozen=True, slots=True)
class VoiceFindings:
    """What an analog modem's answers say about taking calls."""

    voice: bool  # class 8 in AT+FCLASS=?
    refused: Answer | None  # AT+FCLASS=8 when it did not answer OK
    formats: tuple[FormatSupport, ...]
    chosen: VoiceFormat | None  # what the driver would pick
    caller_id: bool  # AT+VCID=? or AT#CID=? answered OK


def voice_findings(d: Diagnosis) -> VoiceFindings:
    entered = d.answer("AT+FCLASS=8")
    vsm = d.answer("AT+VSM=?")
    return VoiceFindings(
        voice="8" in fax_classes(d.answer("AT+FCLASS=?")),
        refused=entered if entered is not None and not entered.ok else None,
        formats=voice_formats(d.profile, vsm),
        chosen=pick_voice_format(d.profile, vsm.text) if vsm is not None and vsm.ok else None,
        caller_id=any(a.ok for a in d.answers if a.command in CALLER_ID_QUERIES),
    )


def _voice_lines(d: Diagnosis, f: VoiceFindings) -> list[str]:
    profile = d.profile
    classes = _shown(d.answer("AT+FCLASS=?"))
    lines = ["", "Voice (V.253)", f"  voice mode       {'yes' if f.voice else 'no'} (AT+FCLASS=? → {classes})"]
    if f.refused is not None:
        lines.append(f"  AT+FCLASS=8      {f.refused.summary()}: the modem refused voice mode")
    elif f.voice:
        label = "  formats          "
        order = list(ENCODING_LABELS)
        usable = sorted((x for x in f.formats if x.encoding), key=lambda x: order.index(x.encoding or ""))
        for fmt in usable:
            lines.append(f'{label}{ENCODING_LABELS[fmt.encoding or ""]}: +VSM={fmt.vsm_id} "{fmt.name}"'.rstrip())
            label = " " * len(label)
        if not usable:
            lines.append(f"{label}none the box can use (AT+VSM=? → {_shown(d.answer('AT+VSM=?'))})")
        if others := [x for x in f.formats if x.encoding is None]:
            listed = ", ".join(f'{x.vsm_id} "{x.name}"' if x.name else str(x.vsm_id) for x in others)
            lines.append(f"  not used         {listed}")
        if f.chosen is not None:
            command = (vsm_commands(profile, f.chosen)[0] if profile is not None
                       else f"AT+VSM={f.chosen.vsm_id},{SAMPLE_RATE_HZ}")
            lines.append(f"  the box uses     {ENCODING_LABELS[f.chosen.encoding]}: {command}")
        for command in ("AT+VLS=?", "AT+VSD=?"):
            if (answer := d.answer(command)) is not None:
                lines.append(f"  {command:<16} {answer.summary()}")
    lines += ["", "Caller ID"]
    lines += [f"  {a.command:<16} {a.summary()}" for a in d.answers if a.command in CALLER_ID_QUERIES]
    if f.caller_id:
        how = f"; the box enables it with {', '.join(profile.caller_id.enable)}" if profile is not None else ""
        lines.append(f"  supported        yes{how}")
    else:
        lines.append("  supported        no answer says so: calls will come without the caller's number")
    if profile is not None and profile.quirks.cid_may_be_disabled:
        lines.append("  note             some units ship with caller ID off: if only RING arrives, add")
        lines.append("                   AT!4886=02 (ETSI FSK, France) or =00 (Bell FSK) to the init")
        lines.append("                   (telephony.md 1.1)")
    return lines


def _voice_verdict(d: Diagnosis, f: VoiceFindings) -> Verdict:
    profile = d.profile
    if not f.voice:
        return Verdict(False, (
            "not usable: no voice mode (class 8) in AT+FCLASS=?; a data/fax-only modem cannot answer calls",
        ))
    if f.refused is not None:
        firmware = profile.quirks.min_firmware if profile is not None else ""
        hint = f" ({profile.model} needs firmware {firmware} or later)" if profile is not None and firmware else ""
        return Verdict(False, (f"not usable: the modem lists voice mode but refused AT+FCLASS=8{hint}",))
    if f.chosen is None:
        return Verdict(False, ("not usable: no µ-law, A-law or 8-bit linear format at 8000 Hz in AT+VSM=?",))
    if profile is None:
        return Verdict(False, (
            "voice works, but no built-in profile matches this chipset: the box will not start on it",
            "yet. Send this transcript with a bug report: it becomes a test fixture (see hw/README.md).",
        ))
    lines = (
        f'ready: line = "modem:{d.port}" in the configuration (detected as {profile.name};',
        f"with {UDEV_RULES} installed use /dev/appliance-modem)",
    )
    return Verdict(True, lines if f.caller_id else (*lines, "calls will be answered without caller ID"))


# --- GSM ----------------------------------------------------------------------------------


def registration(answer: Answer | None) -> tuple[int | None, str]:
    """``AT+CREG?`` → (stat, words)."""
    if answer is None or not answer.ok:
        return None, _shown(answer)
    match = _CREG.search(answer.text)
    if match is None:
        return None, answer.summary()
    stat = int(match.group(1))
    return stat, _REGISTRATION.get(stat, f"stat {stat}")


def signal(answer: Answer | None) -> str:
    """``AT+CSQ`` → "20/31, about -73 dBm" (TS 27.007: dBm = -113 + 2 x rssi)."""
    if answer is None or not answer.ok:
        return _shown(answer)
    match = _CSQ.search(answer.text)
    if match is None:
        return answer.summary()
    rssi = int(match.group(1))
    if rssi == _CSQ_UNKNOWN:
        return "not known (99): no network seen yet"
    return f"{rssi}/31, about {-113 + 2 * rssi} dBm"


def audio_queries(profile: ModemProfile | None) -> tuple[str, ...]:
    """Test commands (``=?``) for the commands that switch each audio path on.

    The last command of a path's ``enable`` list is the switch itself (``AT+CPCMREG=1``,
    ``AT+QPCMV=1,0``); those before it prepare (GPS output moved away, audio mode).
    Unknown module: both vendors' switches.
    """
    if profile is None or profile.gsm is None:
        return ("AT+CPCMREG=?", "AT+QPCMV=?")
    names = []
    for path in profile.gsm.audio:
        if path.enable and (match := re.match(r"^(AT[+#$%!-][A-Z0-9]+)", path.enable[-1].upper())):
            names.append(f"{match.group(1)}=?")
    return tuple(dict.fromkeys(names))


@dataclass(frozen=True, slots=True)
class GsmFindings:
    """What a GSM module's answers say about taking calls."""

    sim_ready: bool
    registration: int | None  # TS 27.007 +CREG <stat>
    network: str
    signal: str
    caller_id: bool  # AT+CLIP=? answered OK

    @property
    def registered(self) -> bool:
        return self.registration in (1, 5)


def gsm_findings(d: Diagnosis) -> GsmFindings:
    cpin = d.answer("AT+CPIN?")
    clip = d.answer("AT+CLIP=?")
    stat, words = registration(d.answer("AT+CREG?"))
    return GsmFindings(
        sim_ready=cpin is not None and cpin.ok and "READY" in cpin.text.upper(),
        registration=stat,
        network=words,
        signal=signal(d.answer("AT+CSQ")),
        caller_id=clip is not None and clip.ok,
    )


def _gsm_lines(d: Diagnosis, f: GsmFindings) -> list[str]:
    profile = d.profile
    clip = d.answer("AT+CLIP=?")
    lines = [
        "", "GSM",
        f"  SIM              {'ready' if f.sim_ready else _shown(d.answer('AT+CPIN?'))}",
        f"  network          {f.network}",
        f"  signal           {f.signal}",
        f"  caller ID        {'yes' if f.caller_id else 'not confirmed'} (AT+CLIP=? → {_shown(clip)})",
        "", "Audio",
    ]
    if profile is not None and profile.gsm is not None:
        for path in profile.gsm.audio:
            where = {"serial_pcm": f"PCM on {path.port}", "uac": f"USB sound card {path.port}",
                     "sound_card": "a USB sound card wired to SPK/MIC"}[path.path]
            lines.append(f"  path             {where}, {path.sample_rate_hz} Hz")
    for command in audio_queries(profile):
        if (answer := d.answer(command)) is not None:
            lines.append(f"  {command:<16} {answer.summary()}")
    return lines


def _gsm_verdict(d: Diagnosis, f: GsmFindings) -> Verdict:
    profile = d.profile
    lines = []
    if not f.sim_ready:
        lines.append(f"not ready: the SIM is not ready (AT+CPIN? → {_shown(d.answer('AT+CPIN?'))}); "
                     "insert it, or remove its PIN with a phone")
    if not f.registered:
        lines.append(f"not ready: not on a network ({f.network}); check the antenna and the SIM's voice plan")
    if profile is None or profile.gsm is None:
        lines.append("not ready: no built-in profile matches this module; send this transcript with a bug report")
    if lines or profile is None or profile.gsm is None:
        return Verdict(False, tuple(lines))
    named = "" if profile.name == "sim7600" else f",profile={profile.name}"
    serial = next((p for p in profile.gsm.audio if p.path == "serial_pcm"), None)
    if serial is not None:
        return Verdict(True, (
            f'ready: line = "gsm:{d.port}{named},audio=/dev/{serial.port}" (the audio port as named on this',
            f"board; with {UDEV_RULES} installed use /dev/appliance-gsm-at and /dev/appliance-gsm-audio)",
        ))
    return Verdict(True, (
        f'ready: line = "gsm:{d.port}{named},card=<name of the USB sound card>" (the audio goes through',
        "a sound card: see hw/README.md for the wiring)",
    ))


# --- the whole report --------------------------------------------------------------------------


def _sections(d: Diagnosis) -> tuple[list[str], Verdict]:
    if d.kind == "gsm":
        gsm = gsm_findings(d)
        return _gsm_lines(d, gsm), _gsm_verdict(d, gsm)
    voice = voice_findings(d)
    return _voice_lines(d, voice), _voice_verdict(d, voice)


def verdict(d: Diagnosis) -> Verdict:
    return _sections(d)[1]


def render_report(d: Diagnosis) -> list[str]:
    """The report ``appliance diagnose-line`` prints, line by line."""
    profile = d.profile
    chipset = (f"{profile.name}: {profile.model}" if profile is not None
               else "unknown chipset (no built-in profile matches)")
    lines = [
        f"Port             {d.port} (probed {d.date})",
        f"USB              {d.usb if d.usb is not None else 'not a USB device, or sysfs does not say'}",
        f"Answers AT       yes{_recovery_words(d.recovery)}",
        *([f"Put on-hook      ATH0 → {d.hung_up.summary()}"] if d.hung_up is not None else []),
        f"Chipset          {chipset}",
        "",
        "Identification",
    ]
    lines += [f"  {a.command:<16} {a.summary()}" for a in d.identification]
    sections, result = _sections(d)
    lines += sections
    if d.unsolicited:
        lines += ["", "Unsolicited (the line rang, or the modem spoke on its own)"]
        lines += [f"  {line}" for line in d.unsolicited]
    lines += ["", "Verdict"]
    lines += [f"  {line}" for line in result.lines]
    return lines


def _recovery_words(recovery: str | None) -> str:
    if recovery is None:
        return ""
    return f", after {recovery} (a program that crashed left it in a voice stream or data mode)"


def _shown(answer: Answer | None) -> str:
    if answer is None:
        return "not asked"
    return answer.summary()


def problem_report(port: str, problem: str) -> list[str]:
    """The report when there was nothing to diagnose: the port or the modem did not answer."""
    return [f"Port             {port}", "", "Problem", f"  {problem}"]
