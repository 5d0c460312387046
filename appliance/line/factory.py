"""Which line the box answers on, from the configuration's ``line`` string.

    "sim"                               the simulated line (test calls only)
    "sim:usr5637"                       a simulated device (usr5637, cx93001, multitech, sim7600)
                                        answered through the real driver on a pty
    "soundcard" / "soundcard:<name>"    the computer's microphone and speaker (a card whose name
                                        contains <name>): talk to the box on a laptop

Every line but ``sim`` is handed out as a ``GuardedLine``: the box's own dial-tone,
busy-tone and dead-line detection and a hard length cap watch every call.
    "modem:<url>"                       a V.253 USB voice modem, e.g. modem:/dev/ttyACM0
    "modem:<url>,profile=cx930xx"       ... with its chipset named instead of detected
    "gsm:<url>,audio=<url>"             a SIM7600 GSM module: AT port and PCM audio port

URLs are anything pyserial's ``serial_for_url`` opens (a device, a pty,
``socket://``, ``rfc2217://``).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
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


_OPTIONS = {"sim": (), "modem": ("profile",), "gsm": ("audio", "profile"), "soundcard": ()}


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
    if kind == "gsm" and spec.option("audio") is None:
        raise ConfigError(f"line {text!r}: a GSM module needs its audio port, e.g. ',audio=/dev/ttyUSB4'")
    return spec


@contextlib.asynccontextmanager
async def open_line(
    text: str,
    clock: Clock,
    *,
    realtime_sim: bool = True,
    max_call_s: float = 900.0,
    hangup: HangupSettings | None = None,
) -> AsyncIterator[LineDriver]:
    """The started line driver for ``text``; closed on exit."""
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
            from appliance.line.soundcard import SoundCardLine

            card = SoundCardLine(PyAudioDevice(AudioDeviceSpec(name=spec.url)), clock)
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

            gsm = GsmDriver(spec.url, audio_url=spec.option("audio"), clock=clock,
                            profile_name=spec.option("profile") or "sim7600")
            await gsm.start()
            try:
                yield GuardedLine(gsm, clock, guard)
            finally:
                await gsm.close()
