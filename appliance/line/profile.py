"""Per-chipset modem profiles: data files in ``profiles/``, loaded strictly, plus detection.

Chipsets differ in facts, not in logic: which ``+VSM`` id is µ-law, whether rings
arrive as ``RING`` or ``<DLE>R``, which DLE code means the caller hung up, where a
GSM module's audio comes out. Keeping those facts in one TOML file per chipset
(each value citing telephony.md) lets the driver stay free of ``if usr: ...``
branches and lets a new stick be supported by adding a file.

Everything here is sans-I/O: ``detect_chipset`` takes the text the modem already
answered to the identification commands, ``pick_voice_format`` the text of its
``AT+VSM=?`` answer. The driver sends the commands; this module only decides.

Every mistake in a profile file names the file and the key, as ``config.py`` does.
"""

from __future__ import annotations

import logging
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from functools import cache
from pathlib import Path
from types import UnionType
from typing import Any, Final, Literal, get_args, get_origin, get_type_hints

from appliance.errors import ConfigError

_LOGGER = logging.getLogger(__name__)

PROFILE_DIR: Final = Path(__file__).resolve().parent / "profiles"
USB_SOURCE: Final = "usb"
"""Key of ``responses`` holding the USB ``vvvv:pppp`` id (from sysfs), next to AT answers."""

_DTMF_CHARS: Final = frozenset("0123456789*#ABCD")  # after a DLE these are key presses, never events
_MIN_ANALOG_BAUD: Final = 80_000  # 1.2: 8 bits x 8000 Hz x 10/8 must fit the port
_RESULT_LINE = re.compile(r"^(OK|ERROR|\+CM[ES] ERROR:.*)$", re.IGNORECASE)


def _check_commands(key: str, commands: Iterable[str], *, allow_empty: bool = False) -> None:
    commands = tuple(commands)
    if not commands and not allow_empty:
        raise ConfigError(f"{key}: needs at least one command")
    for i, command in enumerate(commands):
        if not command.upper().startswith("AT"):
            raise ConfigError(f"{key}[{i}]: an AT command must start with 'AT', got {command!r}")


def _check_codes(key: str, codes: Iterable[str]) -> None:
    for code in codes:
        if len(code) != 1 or not code.isprintable():
            raise ConfigError(f"{key}: a DLE event code is one printable character, got {code!r}")
        if code in _DTMF_CHARS:
            raise ConfigError(f"{key}: {code!r} after a DLE is a DTMF digit, not an event")


# --- identification -------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class AnswerPattern:
    """One regular expression a modem's answer to ``source`` may match."""

    source: str
    """An AT command (``ATI0``, ``AT+GMI9``, ``AT+GMM``) or ``usb`` for the ``vvvv:pppp`` id."""
    pattern: str
    regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.source != USB_SOURCE and not self.source.startswith("AT"):
            raise ConfigError(f"{self.source}: identify by an AT command (upper case) or 'usb'")
        try:
            # Multi-line so '^5601$' matches one information line of a longer answer.
            regex = re.compile(self.pattern, re.IGNORECASE | re.MULTILINE)
        except re.error as err:
            raise ConfigError(f"{self.source}: not a valid regular expression {self.pattern!r} ({err})") from None
        object.__setattr__(self, "regex", regex)


@dataclass(frozen=True, kw_only=True)
class Identification:
    patterns: tuple[AnswerPattern, ...]

    def __post_init__(self) -> None:
        if not self.patterns:
            raise ConfigError("needs at least one pattern, or the profile can never be detected")

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(p.source for p in self.patterns))

    def score(self, answers: Mapping[str, str]) -> int:
        """How many sources (not patterns) agree: two patterns on ATI3 are one piece of evidence."""
        return sum(
            1
            for source in self.sources
            if source in answers
            and any(p.regex.search(answers[source]) for p in self.patterns if p.source == source)
        )


# --- sections ---------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Init:
    commands: tuple[str, ...]
    """Sent in order after opening the port; caller ID and the voice check come from other sections."""
    baud: int = 115200

    def __post_init__(self) -> None:
        _check_commands("commands", self.commands)
        if self.baud <= 0:
            raise ConfigError(f"baud: must be positive, got {self.baud}")


@dataclass(frozen=True, kw_only=True)
class CallerId:
    enable: tuple[str, ...]
    style: Literal["vcid", "clip"]
    """``vcid``: DATE/TIME/NMBR/NAME lines (telephony.md 1.5); ``clip``: ``+CLIP:`` after RING (2.1)."""
    equals_spacing: Literal["none", "spaced", "either"]
    """``DATE=0801`` (USR) or ``DATE = 0805`` (Conexant); the parser accepts both regardless."""

    def __post_init__(self) -> None:
        _check_commands("enable", self.enable)


@dataclass(frozen=True, kw_only=True)
class Voice:
    """V.253 voice mode commands of an analog modem (telephony.md 1.6, 1.8)."""

    enter: str
    leave: str
    answer: str
    """Goes off-hook in voice mode. Never ``ATA``: in data class callers hear modem tones."""
    hang_up: str
    query_formats: str
    vsm_ulaw: int | None = None
    vsm_alaw: int | None = None
    vsm_linear8: int | None = None
    """Hints for this chipset's ``+VSM`` ids; the modem's ``AT+VSM=?`` answer decides."""
    vsm_long_form: bool
    """Also accepts ``AT+VSM=<cml>,<rate>,0,0`` (tried after the short form gives ERROR)."""
    vsd_sensitivity: int
    beep: str
    tx: bool
    rx: bool
    full_duplex: bool
    full_duplex_echo_cancelled: bool

    def __post_init__(self) -> None:
        for name in ("enter", "leave", "answer", "hang_up", "query_formats", "beep"):
            _check_commands(name, (getattr(self, name),))
        if self.answer.strip().upper() == "ATA":
            raise ConfigError("answer: ATA answers as a data modem and callers hear its tones; use AT+VLS=1")
        if not 0 <= self.vsd_sensitivity <= 255:
            raise ConfigError(f"vsd_sensitivity: must be 0-255, got {self.vsd_sensitivity}")
        hints = {k: v for k in ("vsm_ulaw", "vsm_alaw", "vsm_linear8") if (v := getattr(self, k)) is not None}
        for key, value in hints.items():
            if not 0 <= value <= 255:
                raise ConfigError(f"{key}: a +VSM id is 0-255, got {value}")
        if len(set(hints.values())) != len(hints):
            raise ConfigError(f"vsm_*: one +VSM id cannot be two formats, got {hints}")
        if self.full_duplex_echo_cancelled and not self.full_duplex:
            raise ConfigError("full_duplex_echo_cancelled: set without full_duplex")

    def vsm_hint(self, encoding: str) -> int | None:
        return {"ulaw": self.vsm_ulaw, "alaw": self.vsm_alaw, "linear8": self.vsm_linear8}[encoding]


@dataclass(frozen=True, kw_only=True)
class DleQuirks:
    """Which shielded codes this chipset emits and how it wants streams ended (telephony.md 1.7)."""

    ring_in_voice_idle: Literal["RING", "DLE_R"]
    hangup_codes: tuple[str, ...]
    """Codes that end the call (the driver adds its own silence/tone detection, 1.10)."""
    dial_tone_codes: tuple[str, ...]
    busy_codes: tuple[str, ...]
    silence_codes: tuple[str, ...]
    ignore_after_answer: tuple[str, ...]
    """Codes that are an echo of our own ``AT+VLS=1``, not news from the line."""
    extension_codes: tuple[str, ...]
    extension_off_hook_codes: tuple[str, ...] = ()
    """Of ``extension_codes``, those that mean "a person lifted an extension phone":
    the box must fall silent and release the line. Empty: the chipset does not say."""
    call_waiting_codes: tuple[str, ...] = ()
    """Codes reporting a second caller during a call (``w``): never a hang-up, never a new call."""
    dtmf_styles: tuple[str, ...]
    """``shielded`` (``/ 5 5 ~``) and/or ``simple`` (``5`` once)."""
    triple_dle_exit: bool
    """End TX / abort RX with ``<DLE><DLE><DLE><ETX>`` / ``<DLE><DLE><DLE>!``."""

    def __post_init__(self) -> None:
        for name in (
            "hangup_codes", "dial_tone_codes", "busy_codes", "silence_codes",
            "ignore_after_answer", "extension_codes", "extension_off_hook_codes", "call_waiting_codes",
        ):
            _check_codes(name, getattr(self, name))
        if not self.hangup_codes:
            raise ConfigError("hangup_codes: needs at least one code")
        if not self.dtmf_styles or not set(self.dtmf_styles) <= {"shielded", "simple"}:
            raise ConfigError(f"dtmf_styles: one or both of 'shielded', 'simple', got {list(self.dtmf_styles)}")
        if overlap := set(self.ignore_after_answer) & set(self.hangup_codes):
            raise ConfigError(f"ignore_after_answer: {sorted(overlap)} also listed in hangup_codes")
        if stray := set(self.extension_off_hook_codes) - set(self.extension_codes):
            raise ConfigError(f"extension_off_hook_codes: {sorted(stray)} not listed in extension_codes")
        if overlap := set(self.call_waiting_codes) & set(self.hangup_codes):
            raise ConfigError(f"call_waiting_codes: {sorted(overlap)} also listed in hangup_codes")


@dataclass(frozen=True, kw_only=True)
class GsmAudio:
    """One way to get a GSM call's audio, in order of preference (telephony.md 2.2-2.4)."""

    path: Literal["serial_pcm", "uac", "sound_card"]
    port: str
    """tty name for ``serial_pcm``, ALSA card for ``uac``; empty when the board decides."""
    enable: tuple[str, ...]
    enable_when: Literal["call_active", "any_time"]
    enable_retry_window_s: float
    """How long to retry ``enable`` while it answers ERROR (SIM7600: not yet active)."""
    disable: tuple[str, ...]
    sample_rate_hz: int
    one_time_setup: tuple[str, ...]
    """Commands that reconfigure the module (and may need a reset): never sent automatically."""
    busy_urc: str = ""
    """URC saying the module cannot take uplink audio now (EC25 ``+QPCMV: 0,0``): pause it."""
    ready_urc: str = ""
    """URC saying it can again (EC25 ``+QPCMV: 1,0``)."""

    def __post_init__(self) -> None:
        if bool(self.busy_urc) != bool(self.ready_urc):
            raise ConfigError("busy_urc/ready_urc: give both or neither (a pause needs its end)")
        _check_commands("enable", self.enable, allow_empty=self.path == "sound_card")
        _check_commands("disable", self.disable, allow_empty=True)
        _check_commands("one_time_setup", self.one_time_setup, allow_empty=True)
        if self.path in ("serial_pcm", "uac") and not self.port:
            raise ConfigError(f"port: needed for path {self.path!r}")
        if self.sample_rate_hz not in (8000, 16000):
            raise ConfigError(f"sample_rate_hz: 8000 or 16000, got {self.sample_rate_hz}")
        if not 0 <= self.enable_retry_window_s <= 60:
            raise ConfigError(f"enable_retry_window_s: must be 0-60 s, got {self.enable_retry_window_s}")

    @property
    def frame_bytes(self) -> int:
        """Bytes of one 20 ms frame of S16LE mono (320 at 8 kHz, as SIM7600 sends)."""
        return self.sample_rate_hz // 50 * 2


@dataclass(frozen=True, kw_only=True)
class GsmSms:
    """TS 27.005 text-mode settings; UCS2 for text outside GSM 03.38 (telephony.md 2.5)."""

    text_mode: str
    gsm_charset: str
    gsm_parameters: str
    ucs2_charset: str
    ucs2_parameters: str
    new_message_indication: str

    def __post_init__(self) -> None:
        for f in fields(self):
            _check_commands(f.name, (getattr(self, f.name),))


@dataclass(frozen=True, kw_only=True)
class Gsm:
    """27.007 call control and vendor audio of a GSM/LTE module (telephony.md 2.1-2.4)."""

    at_port: str
    answer: str
    hang_up: tuple[str, ...]
    call_state_urcs: tuple[str, ...]
    hangup_urcs: tuple[str, ...]
    clcc_poll_s: float
    """Watchdog: the port can die mid-call without NO CARRIER (2.1)."""
    dtmf_urc: str
    dtmf_value: Literal["digit", "ascii_code", "digit_ms"]
    send_dtmf: tuple[str, ...]
    audio: tuple[GsmAudio, ...]
    sms: GsmSms

    def __post_init__(self) -> None:
        _check_commands("answer", (self.answer,))
        _check_commands("hang_up", self.hang_up)
        _check_commands("send_dtmf", self.send_dtmf)
        if not self.hangup_urcs:
            raise ConfigError("hangup_urcs: needs at least one")
        if not self.audio:
            raise ConfigError("audio: needs at least one [[gsm.audio]] path")
        if not 0.5 <= self.clcc_poll_s <= 30:
            raise ConfigError(f"clcc_poll_s: must be 0.5-30 s, got {self.clcc_poll_s}")


@dataclass(frozen=True, kw_only=True)
class Quirks:
    """Known failure modes (telephony.md 1.11, 2.6) the driver works around. All off by default."""

    min_firmware: str = ""
    dle_h_after_answer: bool = False
    vts_digit_unsupported: bool = False
    vts_single_tone_rejected: bool = False
    vrx_requires_vls5: bool = False
    cid_may_be_disabled: bool = False
    linear8_noisy: bool = False
    pcm_requires_active_call: bool = False
    uplink_may_stall: bool = False
    audio_port_may_be_missing: bool = False
    usbcfg_can_remove_ports: bool = False
    audio_device_late: bool = False
    dtmf_may_be_missing: bool = False


@dataclass(frozen=True, kw_only=True)
class ModemProfile:
    name: str
    """The file name without ``.toml``."""
    kind: Literal["analog", "gsm"]
    model: str
    identification: Identification
    init: Init
    caller_id: CallerId
    voice: Voice | None = None
    dle: DleQuirks | None = None
    gsm: Gsm | None = None
    quirks: Quirks = field(default_factory=Quirks)

    def __post_init__(self) -> None:
        if self.kind == "analog":
            for section in ("voice", "dle"):
                if getattr(self, section) is None:
                    raise ConfigError(f"{section}: an analog profile needs a [{section}] table")
            if self.gsm is not None:
                raise ConfigError("gsm: an analog profile has no [gsm] table")
            if self.caller_id.style != "vcid":
                raise ConfigError("caller_id.style: an analog modem reports caller ID with +VCID ('vcid')")
            if self.init.baud < _MIN_ANALOG_BAUD:
                raise ConfigError(f"init.baud: 8-bit 8 kHz audio needs more than 80 kbit/s, got {self.init.baud}")
        else:
            if self.gsm is None:
                raise ConfigError("gsm: a gsm profile needs a [gsm] table")
            for section in ("voice", "dle"):
                if getattr(self, section) is not None:
                    raise ConfigError(f"{section}: a gsm profile has no [{section}] table")
            if self.caller_id.style != "clip":
                raise ConfigError("caller_id.style: a GSM module reports caller ID with +CLIP ('clip')")
        # A quirk flag nobody acts on is a lie: the USR <DLE>H must be in the ignore list.
        if self.quirks.dle_h_after_answer and (self.dle is None or "H" not in self.dle.ignore_after_answer):
            raise ConfigError("quirks.dle_h_after_answer: add 'H' to dle.ignore_after_answer")


# --- loading ------------------------------------------------------------------------


def load_profile(path: Path | str) -> ModemProfile:
    """Read and validate one profile file; the file name (without .toml) is its name."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the modem profile ({err.strerror})") from err
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML ({err})") from err
    if "name" in raw:
        raise ConfigError(f"{path}: name: not a key; the profile is named after its file ({path.stem!r})")
    try:
        return _build(ModemProfile, raw, "", name=path.stem)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err.detail}") from None


@cache
def _builtin() -> tuple[ModemProfile, ...]:
    return tuple(load_profile(p) for p in sorted(PROFILE_DIR.glob("*.toml")))


def builtin_profiles() -> dict[str, ModemProfile]:
    """The profiles shipped in ``appliance/line/profiles``, by name (a fresh dict each call)."""
    return {p.name: p for p in _builtin()}


def _build(cls: type, raw: Any, where: str, **given: Any) -> Any:
    """``cls`` from a TOML table: unknown, missing and mistyped keys named by their path."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where.rstrip('.') or 'profile'}: must be a table, got {_type_name(raw)}")
    hints = get_type_hints(cls)
    known = {f.name: f for f in fields(cls) if f.init and f.name not in given}
    if unknown := sorted(set(raw) - set(known)):
        raise ConfigError(f"unknown key(s) {', '.join(where + k for k in unknown)}")
    kwargs = dict(given)
    for name, f in known.items():
        if name in raw:
            kwargs[name] = _convert(hints[name], raw[name], where + name)
        elif f.default is MISSING and f.default_factory is MISSING:
            raise ConfigError(f"{where}{name}: missing")
    try:
        return cls(**kwargs)
    except ConfigError as err:
        # __post_init__ names the key within its own table; add the table's path.
        raise ConfigError(f"{where}{err.detail}") from None


def _convert(tp: Any, value: Any, key: str) -> Any:
    origin = get_origin(tp)
    if origin is UnionType:  # ``X | None``: absent means None, so a present value is an X
        (inner,) = [a for a in get_args(tp) if a is not type(None)]
        return _convert(inner, value, key)
    if tp is Identification:
        return _identification(value, key)
    if is_dataclass(tp):
        return _build(tp, value, key + ".")
    if origin is tuple:
        item_type = get_args(tp)[0]
        if not isinstance(value, list):
            raise ConfigError(f"{key}: must be an array, got {_type_name(value)}")
        return tuple(_convert(item_type, item, f"{key}[{i}]") for i, item in enumerate(value))
    if origin is Literal:
        if value not in get_args(tp):
            choices = ", ".join(repr(a) for a in get_args(tp))
            raise ConfigError(f"{key}: must be one of {choices}, got {value!r}")
        return value
    # bool is an int in Python but never a number in a profile file.
    if tp is bool and isinstance(value, bool):
        return value
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if tp is str and isinstance(value, str):
        return value
    raise ConfigError(f"{key}: must be {_type_label(tp)}, got {_type_name(value)} {value!r}")


def _identification(raw: Any, key: str) -> Identification:
    """``[identification]``: each key a source (AT command or ``usb``), each value regexes."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{key}: must be a table, got {_type_name(raw)}")
    patterns: list[AnswerPattern] = []
    for source, value in raw.items():
        where = f"{key}.{source}"
        for pattern in _convert(tuple[str, ...], value, where):
            try:
                patterns.append(AnswerPattern(source=_source_key(source), pattern=pattern))
            except ConfigError as err:
                raise ConfigError(f"{key}.{err.detail}") from None
    try:
        return Identification(patterns=tuple(patterns))
    except ConfigError as err:
        raise ConfigError(f"{key}: {err.detail}") from None


def _type_label(tp: Any) -> str:
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(tp, str(tp))


def _type_name(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "table"}.get(
        type(value), type(value).__name__
    )


# --- detection -----------------------------------------------------------------------


def _source_key(source: str) -> str:
    source = source.strip()
    return USB_SOURCE if source.lower() == USB_SOURCE else source.upper()


def _answer_text(source: str, text: str) -> str:
    """The information lines of a raw answer: no echo, no blank lines, no final result."""
    if source == USB_SOURCE:
        return text.strip().lower()
    lines = [line.strip() for line in text.splitlines()]
    kept = [
        line for line in lines
        if line and line.upper() != source and not _RESULT_LINE.match(line)
    ]
    return "\n".join(kept)


def identification_commands(profiles: Iterable[ModemProfile] | Mapping[str, ModemProfile]) -> tuple[str, ...]:
    """The AT commands whose answers ``detect_chipset`` can use, in first-seen order."""
    if isinstance(profiles, Mapping):
        profiles = profiles.values()
    sources = (s for p in profiles for s in p.identification.sources if s != USB_SOURCE)
    return tuple(dict.fromkeys(sources))


def detect_chipset(
    responses: Mapping[str, str],
    profiles: Iterable[ModemProfile] | Mapping[str, ModemProfile] | None = None,
) -> ModemProfile | None:
    """The profile whose patterns agree with the most answers, or None.

    ``responses`` maps an identification command (``"ATI0"``) to the modem's raw
    answer, echo and ``OK`` included or not, and optionally ``"usb"`` to the
    ``vvvv:pppp`` id. A tie between profiles also gives None: guessing between two
    chipsets would pick quirks at random, and the caller can fall back to a
    configured profile instead.
    """
    if profiles is None:
        profiles = _builtin()
    elif isinstance(profiles, Mapping):
        profiles = profiles.values()
    answers: dict[str, str] = {}
    for source, text in responses.items():
        key = _source_key(source)
        answers[key] = _answer_text(key, text)
    scored = [(p.identification.score(answers), p) for p in profiles]
    best = max((score for score, _ in scored), default=0)
    if best == 0:
        return None
    winners = [p for score, p in scored if score == best]
    if len(winners) > 1:
        _LOGGER.warning("modem matches %s equally; no profile chosen", ", ".join(p.name for p in winners))
        return None
    return winners[0]
