"""Which line the box answers on, from the configuration's ``line`` string.

    "sim"                               the simulated line (test calls only)
    "sim:usr5637"                       a simulated device (usr5637, cx93001, sim7600, ec25, sim800)
                                        answered through the real driver on a pty
    "soundcard" / "soundcard:<name>"    the computer's microphone and speaker (a card whose name
                                        contains <name>): talk to the box on a laptop

Every line but ``sim`` is handed out as a ``GuardedLine``: the box's own dial-tone,
busy-tone and dead-line detection and a hard length cap watch every call.
    "modem:<url>"                       a V.253 USB voice modem, e.g. modem:/dev/ttyACM0
    "modem:<url>,profile=cx930xx"       ... with its chipset named instead of detected
    "gsm:<url>,audio=<url>"             a SIM7600 GSM module: AT port and PCM audio port
    "gsm:<url>,profile=ec25,audio=<url>"   a Quectel EC25: PCM on its NMEA port (+QPCMV=1,0)
    "gsm:<url>,profile=ec25,card=<name>"   ... or its USB audio card (UAC, +QPCMV=1,2)
    "gsm:<url>,profile=sim800,card=<name>[,card_rate=16000]"
                                        a SIM800 whose analog audio is wired to a USB sound card

URLs are anything pyserial's ``serial_for_url`` opens (a device, a pty,
``socket://``, ``rfc2217://``).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace

from appliance.clock import Clock
from appliance.errors import ConfigError
from appliance.line.base import LineDriver
from appliance.line.guard import GuardedLine, HangupSettings
from appliance.line.sim.line import SimLine

KINDS = ("sim", "modem", "gsm", "soundcard")


@dataclass(frozen=True, slots=True)
class LineSpec:
    kind: str
    url: str = ""
    options: tuple[tuple[str, str], ...] = ()

    def option(self, name: str) -> str | None:
        return dict(self.options).get(name)


_OPTIONS = {"sim": (), "modem": ("profile",), "gsm": ("audio", "card", "card_rate", "profile"), "soundcard": ()}


def parse_line(text: str) -> LineSpec:
    """Validate a ``line`` setting; every mistake says what a valid one looks like."""
    kind, _, rest = text.partition(":")
    if kind not in KINDS:
        raise ConfigError(f"line must start with one of {', '.join(KINDS)} (e.g. 'modem:/dev/ttyACM0'), got {text!r}")
    if kind == "sim":
        if not rest:
            return LineSpec("sim")
        from appliance.line.sim.devices import device_profile

        device_profile(rest)  # a ConfigError that lists the simulated devices
        return LineSpec("sim", rest)
    if kind == "soundcard":
        if "," in rest:
            raise ConfigError(f"line {text!r}: a sound card takes no options, e.g. 'soundcard' or 'soundcard:USB Audio'")
        return LineSpec("soundcard", rest)
    url, *extras = rest.split(",")
    if not url:
        raise ConfigError(f"line {text!r}: the {kind} needs a port, e.g. '{kind}:/dev/ttyACM0'")
    options = []
    for extra in extras:
        name, eq, value = extra.partition("=")
        if not eq or name not in _OPTIONS[kind] or not value:
            known = ", ".join(f"{o}=..." for o in _OPTIONS[kind]) or "none"
            raise ConfigError(f"line {text!r}: unknown option {extra!r} (options for {kind}: {known})")
        options.append((name, value))
    spec = LineSpec(kind, url, tuple(options))
    if kind == "gsm":
        if (spec.option("audio") is None) == (spec.option("card") is None):
            raise ConfigError(
                f"line {text!r}: a GSM module needs its audio: either a serial audio port "
                "(',audio=/dev/ttyUSB4') or a sound card (',card=USB Audio'), not both"
            )
        rate = spec.option("card_rate")
        if rate is not None and (not rate.isdigit() or int(rate) not in (8000, 16000, 44100, 48000)):
            raise ConfigError(f"line {text!r}: card_rate must be 8000, 16000, 44100 or 48000, got {rate!r}")
    return spec


@contextlib.asynccontextmanager
async def open_line(
    text: str,
    clock: Clock,
    *,
    realtime_sim: bool = True,
    max_call_s: float = 900.0,
    hangup: HangupSettings | None = None,
    say: Callable[[str], None] | None = None,
) -> AsyncIterator[LineDriver]:
    """The started line driver for ``text``; closed on exit. ``say``: the console, for the laptop line's prompts."""
    spec = parse_line(text)
    guard = hangup or HangupSettings()
    match spec.kind:
        case "sim" if spec.url:
            from appliance.line.sim.devices import simulated_device

            async with simulated_device(spec.url, clock, max_call_s=max_call_s) as (_, driver):
                yield GuardedLine(driver, clock, guard)
        case "soundcard":
            from appliance.line.audio_device import AudioDeviceSpec
            from appliance.line.pyaudio_device import PyAudioDevice
            from appliance.line.soundcard import EnterOrPause, SoundCardLine

            next_call = EnterOrPause(clock, say=say) if say is not None else None
            card = SoundCardLine(PyAudioDevice(AudioDeviceSpec(name=spec.url)), clock, next_call=next_call)
            try:
                # A microphone behind noise suppression goes digitally silent while
                # the person thinks: only tones and the length cap end such a call.
                yield GuardedLine(card, clock, replace(guard, detect_dead_line=False))
            finally:
                await card.close()
        case "sim":
            line = SimLine(realtime=realtime_sim)
            try:
                yield line
            finally:
                await line.close()
        case "modem":
            from appliance.line.voice_modem import VoiceModemDriver

            async with VoiceModemDriver(
                spec.url, clock=clock, profile_name=spec.option("profile"), max_call_s=max_call_s
            ) as modem:
                yield GuardedLine(modem, clock, guard)
        case "gsm":
            from appliance.line.gsm import GsmDriver

            card = None
            if (card_name := spec.option("card")) is not None:
                from appliance.line.audio_device import AudioDeviceSpec
                from appliance.line.pyaudio_device import PyAudioDevice

                rate = int(spec.option("card_rate") or 8000)
                card = PyAudioDevice(AudioDeviceSpec(name=card_name, rate_hz=rate, frames_per_buffer=rate // 50))
            gsm = GsmDriver(spec.url, audio_url=spec.option("audio"), audio_device=card, clock=clock,
                            profile_name=spec.option("profile") or "sim7600")
            await gsm.start()
            try:
                yield GuardedLine(gsm, clock, guard)
            finally:
                await gsm.close()
