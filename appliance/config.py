"""The box's configuration: frozen dataclasses loaded from TOML, validated once.

With no file at all the box runs on its embedded defaults: the simulated line,
a local SQLite store in ``var/``, the ``demo`` practice, the web page on
127.0.0.1:8080, no cloud agenda (``[sync]``), the default retention periods. Every mistake in a file names the file and the key.
"""

from __future__ import annotations

import logging
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Final

from appliance.answering import AnsweringSettings
from appliance.audio.endpoint import EndpointSettings
from appliance.errors import ConfigError
from appliance.line.guard import HangupSettings
from appliance.llm.settings import LlmSettings
from appliance.retention import RetentionSettings
from appliance.settings_file import merge, overlay_path, read_overlay
from appliance.sync.adapters.caldav import CaldavSettings
from appliance.sync.adapters.fhir import FhirSettings
from appliance.sync.settings import SyncSettings
from appliance.sync.worker import OutboxSettings

_LOGGER = logging.getLogger(__name__)

STORE_FILE: Final = "appliance.db"
"""The SQLite store's name in the data directory (the core, the page, updates)."""


@dataclass(frozen=True, kw_only=True)
class ModelChoice:
    vad: str = "silero-vad"
    asr: str = "whisper-base"
    tts: str = "kokoro-82m"
    llm: str | None = None
    llm_enabled: bool | None = None
    """Before the ``[llm]`` table these two named the helper's model and switch; still
    read (``[llm]`` wins), and always mirror ``Config.llm`` once loaded."""
    manifest_dir: Path | None = None
    models_dir: Path | None = None


@dataclass(frozen=True, kw_only=True)
class WebSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    https: bool = False
    """Serve over TLS with the certificate made at first start (needed off 127.0.0.1:
    browsers drop the Secure session cookie on plain http elsewhere)."""
    cert_dir: Path | None = None
    """Where that certificate and its key live; default ``<data_dir>/tls``."""

    def __post_init__(self) -> None:
        if not 1 <= self.port <= 65535:
            raise ConfigError(f"web.port must be 1-65535, got {self.port}")
        if not isinstance(self.https, bool):
            raise ConfigError(f"web.https must be true or false, got {self.https!r}")


SPEECH_LANGUAGES = ("fr", "de", "en")
"""Languages the box can hear and speak: Whisper base knows all three; the voices are in
``appliance.speech.language``."""


@dataclass(frozen=True, kw_only=True)
class SpeechSettings:
    language: str = "fr"
    """The practice's main language: the one the box greets in and assumes until a caller
    is heard speaking another offered language. Only French dialogue exists yet."""
    languages: tuple[str, ...] | None = None
    """Languages offered to callers (a list in TOML; must include ``language``). Default:
    only the main one, and then no detection runs at all. With more, the first utterances
    of a call are checked and the box switches to the caller's language."""
    voice: str = "jm_kumo"
    fallback_to_espeak: bool = True
    """If Kokoro fails on a sentence, say it with espeak-ng rather than say nothing."""
    max_call_s: float = 600.0
    endpoint: EndpointSettings = field(default_factory=EndpointSettings)
    prompt_cache: bool = True
    """Synthesise what the box will likely say (greeting, questions, today's offers) while
    no call is in progress, and keep it in ``<data_dir>/prompt-cache``: it then plays at once."""
    prompt_cache_mb: int = 100
    """Size cap of that cache on disk; the least recently used phrases go first."""

    def __post_init__(self) -> None:
        if self.language not in ("fr",):
            raise ConfigError(
                f"speech.language: the main language must be 'fr' (the dialogue is French), got {self.language!r}"
            )
        object.__setattr__(self, "languages", self._offered())
        if not 30 <= self.max_call_s <= 3600:
            raise ConfigError(f"speech.max_call_s must be 30-3600 s, got {self.max_call_s}")
        if not isinstance(self.prompt_cache, bool):
            raise ConfigError(f"speech.prompt_cache must be true or false, got {self.prompt_cache!r}")
        mb = self.prompt_cache_mb
        if isinstance(mb, bool) or not isinstance(mb, int) or not 1 <= mb <= 10000:
            raise ConfigError(f"speech.prompt_cache_mb must be a whole number 1-10000, got {mb!r}")

    def _offered(self) -> tuple[str, ...]:
        if self.languages is None:
            return (self.language,)
        given = self.languages
        if isinstance(given, str) or not isinstance(given, (list, tuple)):
            raise ConfigError(f"speech.languages must be a list such as [\"fr\", \"en\"], got {given!r}")
        offered = tuple(given)
        unknown = [lang for lang in offered if lang not in SPEECH_LANGUAGES]
        if unknown:
            raise ConfigError(
                f"speech.languages: {', '.join(map(repr, unknown))} not available; "
                f"choose among {', '.join(SPEECH_LANGUAGES)}"
            )
        if len(set(offered)) != len(offered):
            raise ConfigError(f"speech.languages lists a language twice: {list(offered)}")
        if self.language not in offered:
            raise ConfigError(
                f"speech.languages must include the main language {self.language!r}, got {list(offered)}"
            )
        return offered


@dataclass(frozen=True, kw_only=True)
class Config:
    line: str = "sim"
    """``sim``, ``modem:<port>[,profile=...]`` or ``gsm:<port>,audio=<port>`` (``appliance.line.factory``)."""
    data_dir: Path = Path("var")
    practice: str = "demo"
    """A built-in practice name, or a practice TOML file."""
    web: WebSettings = field(default_factory=WebSettings)
    speech: SpeechSettings = field(default_factory=SpeechSettings)
    models: ModelChoice = field(default_factory=ModelChoice)
    answering: AnsweringSettings = field(default_factory=AnsweringSettings)
    """When the box picks up (office hours, after N rings, never); default: every call at once."""
    hangup: HangupSettings = field(default_factory=HangupSettings)
    """The box's own hang-up detection on real lines: dial/busy tone, dead line, maximum length."""
    sync: SyncSettings = field(default_factory=SyncSettings)
    """The practice's cloud agenda (FHIR or CalDAV), if any; default: none."""
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    llm: LlmSettings = field(default_factory=LlmSettings)
    """The optional language-model helper (``appliance.llm``); default: off."""

    def __post_init__(self) -> None:
        from appliance.line.factory import parse_line  # validates; the driver is opened at run time

        parse_line(self.line)
        self._settle_llm()

    def _settle_llm(self) -> None:
        # The old [models] llm / llm_enabled keys fill what [llm] leaves at its default;
        # then [models] mirrors [llm], for the readers that still look there.
        llm, models, default = self.llm, self.models, LlmSettings()
        if models.llm is not None and llm.model == default.model:
            llm = replace(llm, model=models.llm)
        if models.llm_enabled is not None and llm.enabled == default.enabled:
            llm = replace(llm, enabled=models.llm_enabled)
        object.__setattr__(self, "llm", llm)
        object.__setattr__(self, "models", replace(models, llm=llm.model, llm_enabled=llm.enabled))

    @property
    def db_path(self) -> Path:
        return self.data_dir / STORE_FILE


def load_config(path: Path | None, *, overlay: dict[str, Any] | None = None, **overrides: Any) -> Config:
    """Defaults, then the file (if any), then what the setup page saved in the data
    directory (``settings_file``; or ``overlay``, a candidate being validated), then
    command-line overrides."""
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as err:
            raise ConfigError(f"{path}: cannot read the configuration ({err.strerror})") from err
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{path}: not valid TOML ({err})") from err
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        base = _build(Config, {**raw, **given}, "")
    except ConfigError as err:
        raise ConfigError(f"{path}: {err.detail}" if path else err.detail) from None
    candidate = overlay is not None
    try:
        if overlay is None:
            overlay = read_overlay(base.data_dir)
        if not overlay:
            return base
        return _build(Config, {**merge(raw, overlay), **given}, "")
    except ConfigError as err:
        # The file alone was fine: the page's saved settings are what is wrong.
        problem = ConfigError(f"{overlay_path(base.data_dir)}: {err.detail}")
        if candidate:
            raise problem from None
        # On disk already (edited by hand, or written by a newer box): a box that
        # answers on the installer's settings beats a box that does not answer.
        _LOGGER.error("ignoring the settings saved from the web page: %s", problem.detail)
        return base


_NESTED = {
    "web": WebSettings,
    "speech": SpeechSettings,
    "models": ModelChoice,
    "endpoint": EndpointSettings,
    "answering": AnsweringSettings,
    "hangup": HangupSettings,
    "sync": SyncSettings,
    "outbox": OutboxSettings,
    "fhir": FhirSettings,
    "caldav": CaldavSettings,
    "retention": RetentionSettings,
    "llm": LlmSettings,
}


def _build(cls: type, raw: dict[str, Any], prefix: str) -> Any:
    known = {f.name: f for f in fields(cls)}
    unknown = set(raw) - set(known)
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(prefix + k for k in sorted(unknown))}")
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        # A table only where the dataclass declares one: [models] llm is a plain name.
        if key in _NESTED and _NESTED[key].__name__ in str(known[key].type):
            if not isinstance(value, dict):
                raise ConfigError(f"[{prefix}{key}] must be a table")
            kwargs[key] = _build(_NESTED[key], value, f"{prefix}{key}.")
        elif key.endswith(("_dir", "_file")):
            if not isinstance(value, (str, Path)) or not str(value):  # Path: a command-line override
                raise ConfigError(f"{prefix}{key} must be a path (text), got {value!r}")
            kwargs[key] = Path(value)
        else:
            kwargs[key] = value
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise ConfigError(f"{prefix or 'config'}: {err}") from err
