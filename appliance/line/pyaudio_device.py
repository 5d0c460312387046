"""A real sound card through PortAudio (pyaudio): the only module that imports pyaudio.

``PyAudioDevice`` implements ``appliance.line.audio_device.AudioDevice`` for the
laptop's microphone and speaker and for modems whose call audio is a USB sound
card (Quectel EC25 in UAC mode, a SIM800 wired to a USB card; telephony.md 2.3, 2.4).

- The card is the first device whose name contains ``spec.name`` (case
  ignored), or the system default when the name is empty; ``list_devices()``
  shows the names to choose from.
- Full duplex is two PortAudio streams, one per direction: the call reads from
  one thread and writes from another, and PortAudio promises nothing about one
  stream used from two threads at once.
- Mono int16 at ``spec.rate_hz``. Some cards refuse 8 kHz (EC21 rejects
  non-matching hardware parameters, telephony.md 2.3; many USB cards only do
  48 kHz): the card then runs at 16 or 48 kHz and soxr converts, so the stream
  still speaks ``spec.rate_hz``.
- PortAudio is initialised afresh for every ``open()``: it enumerates cards only
  then, and a USB card unplugged and plugged back since would be invisible.
- Every PortAudio failure becomes ``AudioDeviceError`` with a plain message.

PortAudio's ALSA and JACK back-ends print dozens of lines on stderr while
probing ("ALSA lib pcm.c: Unknown PCM cards.pcm.rear", "jack server is not
running"), none of them about our card. While PortAudio starts and opens the
card, file descriptor 2 is pointed at a temporary file (C libraries write to
the descriptor, not to ``sys.stderr``); afterwards the known noise is dropped
(logged at DEBUG) and anything else is written back to stderr, so a message
another thread wrote meanwhile is delayed, not lost.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pyaudio

from appliance.audio.resample import StreamResampler
from appliance.line.audio_device import AudioDeviceError, AudioDeviceSpec

_LOGGER = logging.getLogger(__name__)

FALLBACK_RATES_HZ: Final = (16000, 48000)  # what cards that refuse 8 kHz accept; soxr converts
_PROBE_NOISE: Final = re.compile(
    r"^(ALSA lib |Expression '|Cannot connect to server|jack server is not running|JackShm"
    r"|connect\(2\) call to|attempt to connect to server failed|bt_audio_service_open)"
)

PortAudioFactory = Callable[[], Any]
"""Makes a started PortAudio (``pyaudio.PyAudio``); tests pass a fake."""


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """One PortAudio device, as ``list_devices`` reports it."""

    index: int
    name: str
    inputs: int
    outputs: int
    default_rate_hz: int

    def __str__(self) -> str:
        kinds = "/".join(k for k, n in (("in", self.inputs), ("out", self.outputs)) if n) or "none"
        return f"[{self.index}] {self.name} ({kinds}, {self.default_rate_hz} Hz)"


def list_devices(*, portaudio: PortAudioFactory = pyaudio.PyAudio, quiet: bool = True) -> list[DeviceInfo]:
    """Every sound device PortAudio sees now, for ``appliance diagnose-line`` and error messages."""
    with _started(portaudio, quiet) as pa:
        return _devices(pa)


class PyAudioDevice:
    """A sound card by (part of) its name; each ``open()`` gives a fresh full-duplex stream."""

    def __init__(
        self, spec: AudioDeviceSpec, *, portaudio: PortAudioFactory = pyaudio.PyAudio, quiet: bool = True
    ) -> None:
        self.spec = spec
        self._portaudio = portaudio
        self._quiet = quiet  # False: let PortAudio's probing noise through (debugging a card)

    def open(self) -> PyAudioStream:
        with _silenced_stderr(self._quiet):
            pa = _initialise(self._portaudio)
            try:
                return self._open(pa)
            except BaseException:
                pa.terminate()
                raise

    def _open(self, pa: Any) -> PyAudioStream:
        mic = _pick(pa, self.spec.name, "input")
        speaker = _pick(pa, self.spec.name, "output")
        label = self.spec.name or "default"
        in_stream, in_rate = _open_direction(pa, mic, "input", self.spec, label)
        try:
            out_stream, out_rate = _open_direction(pa, speaker, "output", self.spec, label)
        except BaseException:
            _close_quietly(in_stream)
            raise
        _LOGGER.info(
            "sound card %r: microphone %r at %d Hz, speaker %r at %d Hz", label, mic["name"], in_rate,
            speaker["name"], out_rate,
        )
        return PyAudioStream(
            pa, in_stream, out_stream, rate_hz=self.spec.rate_hz, in_rate_hz=in_rate, out_rate_hz=out_rate, label=label
        )


class PyAudioStream:
    """An open card (implements ``AudioStream``): int16 mono at the spec's rate both ways."""

    def __init__(
        self,
        pa: Any,
        input_stream: Any,
        output_stream: Any,
        *,
        rate_hz: int,
        in_rate_hz: int,
        out_rate_hz: int,
        label: str,
    ) -> None:
        self._pa = pa
        self._in = input_stream
        self._out = output_stream
        self.rate_hz = rate_hz
        self.in_rate_hz = in_rate_hz
        self.out_rate_hz = out_rate_hz
        self._label = label
        # Low-latency soxr: a stream has no end to flush at, and HQ's 130 ms bursts
        # would hold back the end of every prompt until the next one.
        self._to_line = StreamResampler(in_rate_hz, rate_hz, quality="LQ") if in_rate_hz != rate_hz else None
        self._to_card = StreamResampler(rate_hz, out_rate_hz, quality="LQ") if out_rate_hz != rate_hz else None
        self._captured = np.zeros(0, np.int16)  # converted capture not yet read (soxr gives bursts)
        self._closed = False

    def read(self, frames: int) -> np.ndarray:
        if self._to_line is None:
            return self._read_card(frames)
        while len(self._captured) < frames:
            wanted = max(1, -(-(frames - len(self._captured)) * self.in_rate_hz // self.rate_hz))
            self._captured = np.concatenate([self._captured, self._to_line.process(self._read_card(wanted))])
        out, self._captured = self._captured[:frames], self._captured[frames:]
        return out

    def write(self, samples: np.ndarray) -> None:
        self._check()
        pcm = np.asarray(samples, dtype=np.int16)
        if self._to_card is not None:
            pcm = self._to_card.process(pcm)
        if len(pcm) == 0:
            return  # still inside the resampler's filter; it comes out with the next chunk
        try:
            # Underflow is not an error: the card played silence while the box had nothing to say.
            self._out.write(pcm.astype("<i2", copy=False).tobytes(), exception_on_underflow=False)
        except OSError as err:
            raise _explain(err, self._label, "playing") from err

    def close(self) -> None:
        """Release the card. Only once no read or write is under way: PortAudio does not
        allow closing a stream another thread is blocked in (``SoundCardCall`` closes it
        from its reader thread, after the last read).
        """
        if self._closed:
            return
        self._closed = True
        # close() discards what is still buffered, as a hang-up should (stop_stream would drain it).
        _close_quietly(self._in)
        _close_quietly(self._out)
        with contextlib.suppress(Exception):
            self._pa.terminate()

    def _read_card(self, frames: int) -> np.ndarray:
        self._check()
        try:
            # An overflow (the reader was late) loses samples, as any card does; not an error.
            data = self._in.read(frames, exception_on_overflow=False)
        except OSError as err:
            raise _explain(err, self._label, "recording") from err
        return np.frombuffer(data, dtype="<i2").astype(np.int16)

    def _check(self) -> None:
        if self._closed:
            raise AudioDeviceError("the sound-card stream is closed")


# -- PortAudio, carefully ---------------------------------------------------------------


@contextlib.contextmanager
def _started(portaudio: PortAudioFactory, quiet: bool) -> Iterator[Any]:
    with _silenced_stderr(quiet):
        pa = _initialise(portaudio)
    try:
        yield pa
    finally:
        with contextlib.suppress(Exception):
            pa.terminate()


def _initialise(portaudio: PortAudioFactory) -> Any:
    try:
        return portaudio()
    except OSError as err:
        raise AudioDeviceError(f"the sound system could not start ({_text(err)})") from err


def _devices(pa: Any) -> list[DeviceInfo]:
    devices = []
    for index in range(pa.get_device_count()):
        with contextlib.suppress(OSError):  # a device vanishing while we list it is simply gone
            info = pa.get_device_info_by_index(index)
            devices.append(
                DeviceInfo(
                    index=int(info["index"]),
                    name=str(info["name"]),
                    inputs=int(info["maxInputChannels"]),
                    outputs=int(info["maxOutputChannels"]),
                    default_rate_hz=int(info["defaultSampleRate"]),
                )
            )
    return devices


def _pick(pa: Any, name: str, direction: str) -> dict[str, Any]:
    """The device for one direction: the first whose name contains ``name``, or the default."""
    role = "microphone (input)" if direction == "input" else "speaker (output)"
    channels = "maxInputChannels" if direction == "input" else "maxOutputChannels"
    if not name:
        try:
            info = pa.get_default_input_device_info() if direction == "input" else pa.get_default_output_device_info()
        except OSError as err:
            raise AudioDeviceError(f"no sound card with a {role} found: {_found(pa)}") from err
        return dict(info)
    wanted = name.casefold()
    everything = _device_dicts(pa)
    for info in everything:
        if wanted in str(info["name"]).casefold() and int(info[channels]) > 0:
            return info
    if any(wanted in str(d["name"]).casefold() for d in everything):
        raise AudioDeviceError(f"sound card {name!r} has no {role}: {_found(pa)}")
    raise AudioDeviceError(f"no sound card named {name!r} (unplugged?): {_found(pa)}")


def _device_dicts(pa: Any) -> list[dict[str, Any]]:
    found = []
    for index in range(pa.get_device_count()):
        with contextlib.suppress(OSError):
            found.append(dict(pa.get_device_info_by_index(index)))
    return found


def _found(pa: Any) -> str:
    names = [d.name for d in _devices(pa)]
    return f"found {', '.join(repr(n) for n in names)}" if names else "PortAudio sees no sound device at all"


def _open_direction(
    pa: Any, info: dict[str, Any], direction: str, spec: AudioDeviceSpec, label: str
) -> tuple[Any, int]:
    """Open one direction at ``spec.rate_hz`` or, if the card refuses it, at a rate soxr converts from."""
    index = int(info["index"])
    rates = [spec.rate_hz, *FALLBACK_RATES_HZ, int(info.get("defaultSampleRate", 0) or 0)]
    tried: list[int] = []
    for rate in dict.fromkeys(r for r in rates if r > 0):
        tried.append(rate)
        ask = {f"{direction}_device": index, f"{direction}_channels": 1, f"{direction}_format": pyaudio.paInt16}
        try:
            pa.is_format_supported(rate, **ask)
        except ValueError:
            continue  # PortAudio says no without touching the card: try the next rate
        frames_per_buffer = max(1, spec.frames_per_buffer * rate // spec.rate_hz)  # the same 20 ms
        try:
            stream = pa.open(
                rate=rate,
                channels=1,
                format=pyaudio.paInt16,
                input=direction == "input",
                output=direction == "output",
                frames_per_buffer=frames_per_buffer,
                **{f"{direction}_device_index": index},
            )
        except OSError as err:
            if _code(err) == pyaudio.paInvalidSampleRate:
                continue
            raise _explain(err, label, f"opening the {'microphone' if direction == 'input' else 'speaker'}") from err
        if rate != spec.rate_hz:
            _LOGGER.info(
                "sound card %r refuses %d Hz for %s; using %d Hz and converting", label, spec.rate_hz, direction, rate
            )
        return stream, rate
    rates_text = ", ".join(f"{r} Hz" for r in tried)
    raise AudioDeviceError(f"sound card {label!r} accepts none of {rates_text} for mono 16-bit {direction}")


def _explain(err: OSError, label: str, doing: str) -> AudioDeviceError:
    """A PortAudio error as a sentence a person at the box can act on."""
    code = _code(err)
    card = f"sound card {label!r}"
    match code:
        case pyaudio.paDeviceUnavailable:
            text = f"{card} is busy: another program is using it (close it, or pick another card)"
        case pyaudio.paInvalidDevice:
            text = f"{card} is not available (unplugged?)"
        case pyaudio.paInvalidSampleRate:
            text = f"{card} refuses the sample rate"
        case pyaudio.paInvalidChannelCount | pyaudio.paSampleFormatNotSupported:
            text = f"{card} does not do mono 16-bit audio"
        case pyaudio.paTimedOut:
            text = f"{card} stopped answering"
        case pyaudio.paBadStreamPtr:
            text = f"{card} stream is closed"
        case pyaudio.paUnanticipatedHostError:
            text = f"{card} failed ({_text(err)}): unplugged, or taken by another program?"
        case _:
            text = f"{card}: {_text(err)}"
    return AudioDeviceError(f"{text} [{doing}, PortAudio {code}]" if code is not None else f"{text} [{doing}]")


def _code(err: OSError) -> int | None:
    """pyaudio raises ``OSError(code, text)``, ``OSError(text, code)`` or ``OSError(text)``."""
    return next((a for a in err.args if isinstance(a, int) and not isinstance(a, bool)), None)


def _text(err: OSError) -> str:
    return next((a for a in err.args if isinstance(a, str)), type(err).__name__)


def _close_quietly(stream: Any) -> None:
    with contextlib.suppress(Exception):
        stream.close()


@contextlib.contextmanager
def _silenced_stderr(enabled: bool) -> Iterator[None]:
    """Keep PortAudio's probing noise off the terminal; hand anything else back to stderr."""
    if not enabled:
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no fd 2 (a daemon, pythonw): nothing to protect
        yield
        return
    capture = tempfile.TemporaryFile()
    try:
        os.dup2(capture.fileno(), 2)
        yield
    finally:
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        capture.seek(0)
        printed = capture.read().decode("utf-8", "replace").splitlines(keepends=True)
        capture.close()
        kept = [line for line in printed if not _PROBE_NOISE.match(line)]
        if len(kept) < len(printed):
            _LOGGER.debug("PortAudio printed %d line(s) of probing noise", len(printed) - len(kept))
        if kept:
            with contextlib.suppress(OSError):
                os.write(2, "".join(kept).encode())
