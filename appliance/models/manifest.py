"""Model manifests: what a model is made of and how to check it.

One TOML file per model in the manifest folder (``models/`` in the repository,
``/usr/share/appliance/models`` on the device). A manifest names the files of the
assembled model directory with their size and sha256, and where they come from:
``pypi`` (concatenated from parts inside installed registry packages) or
``provisioned`` (placed by the device image at ``location``). Swapping a model is
a manifest change, never a code change.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from appliance.errors import ConfigError

ROLES: Final = ("vad", "asr", "tts", "llm")
RUNTIMES: Final = (
    "sherpa-onnx",
    "faster-whisper",
    "sherpa-onnx-asr",
    "kokoro-onnx",
    "piper-onnx",
    "espeak-ng",
    "llama.cpp",
)
_TOP_KEYS: Final = {"name", "role", "runtime", "license", "languages", "description", "source", "files", "params"}
_FILE_KEYS: Final = {"path", "size", "sha256", "parts"}


@dataclass(frozen=True, slots=True)
class ModelFile:
    path: str
    """Name inside the assembled model directory."""
    size_bytes: int
    sha256: str
    parts: tuple[str, ...] = ()
    """For pypi models: installed files concatenated in order (``module/rel/path``)."""


@dataclass(frozen=True, kw_only=True)
class ModelManifest:
    name: str
    role: Literal["vad", "asr", "tts", "llm"]
    runtime: str
    license: str
    source_kind: Literal["pypi", "provisioned"]
    packages: tuple[str, ...] = ()
    location: Path | None = None
    """Provisioned models only: the directory the device image fills."""
    files: tuple[ModelFile, ...]
    languages: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    origin: Path | None = None
    """The manifest file this came from, for messages."""

    @property
    def size_bytes(self) -> int:
        return sum(f.size_bytes for f in self.files)


def load_manifest(path: Path) -> ModelManifest:
    """Parse and validate one manifest; every mistake names the file and the key."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"{path}: cannot read model manifest ({err.strerror})") from err
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML ({err})") from err
    return parse_manifest(raw, path)


def parse_manifest(raw: dict[str, Any], path: Path) -> ModelManifest:
    def fail(problem: str) -> ConfigError:
        return ConfigError(f"{path}: {problem}")

    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise fail(f"unknown key(s) {', '.join(sorted(unknown))}")
    for key in ("name", "role", "runtime", "license", "source", "files"):
        if key not in raw:
            raise fail(f"missing key '{key}'")
    if raw["role"] not in ROLES:
        raise fail(f"role must be one of {', '.join(ROLES)}, got {raw['role']!r}")
    if raw["runtime"] not in RUNTIMES:
        raise fail(f"runtime must be one of {', '.join(RUNTIMES)}, got {raw['runtime']!r}")

    source = raw["source"]
    kind = source.get("kind")
    if kind == "pypi":
        packages = tuple(source.get("packages", ()))
        if not packages:
            raise fail("[source] of kind 'pypi' needs 'packages'")
        location = None
    elif kind == "provisioned":
        if "location" not in source:
            raise fail("[source] of kind 'provisioned' needs 'location'")
        packages, location = (), Path(source["location"])
    else:
        raise fail(f"[source] kind must be 'pypi' or 'provisioned', got {kind!r}")

    files = []
    for i, entry in enumerate(raw["files"]):
        where = f"[[files]] #{i + 1}"
        unknown = set(entry) - _FILE_KEYS
        if unknown:
            raise fail(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        for key in ("path", "size", "sha256"):
            if key not in entry:
                raise fail(f"{where}: missing key '{key}'")
        sha = str(entry["sha256"]).lower()
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise fail(f"{where}: sha256 must be 64 hex digits")
        rel = str(entry["path"])
        if "/" in rel or rel.startswith("."):
            raise fail(f"{where}: path must be a plain file name, got {rel!r}")
        parts = tuple(entry.get("parts", ()))
        if kind == "pypi" and not parts:
            raise fail(f"{where}: a pypi model file needs 'parts'")
        files.append(ModelFile(path=rel, size_bytes=int(entry["size"]), sha256=sha, parts=parts))
    if not files:
        raise fail("no [[files]]")

    return ModelManifest(
        name=str(raw["name"]),
        role=raw["role"],
        runtime=raw["runtime"],
        license=str(raw["license"]),
        source_kind=kind,
        packages=packages,
        location=location,
        files=tuple(files),
        languages=tuple(raw.get("languages", ())),
        params=dict(raw.get("params", {})),
        origin=path,
    )
