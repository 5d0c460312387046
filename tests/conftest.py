"""Shared fixtures: the real models, verified once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.models import ModelCatalog

# The real cloud-agenda servers, started once per test session on 127.0.0.1.
pytest_plugins = ["tests.cloud.caldav_server", "tests.cloud.fhir_server"]

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = REPO / "tests" / "scenarios"
FIXTURES = REPO / "tests" / "fixtures"


@pytest.fixture(scope="session")
def catalog() -> ModelCatalog:
    return ModelCatalog()


@pytest.fixture(scope="session")
def silero_dir(catalog: ModelCatalog) -> Path:
    return catalog.ensure("silero-vad")


@pytest.fixture(scope="session")
def whisper_dir(catalog: ModelCatalog) -> Path:
    return catalog.ensure("whisper-base")


@pytest.fixture(scope="session")
def kokoro_dir(catalog: ModelCatalog) -> Path:
    return catalog.ensure("kokoro-82m")


@pytest.fixture(scope="session")
def speech(catalog: ModelCatalog):  # type: ignore[no-untyped-def]
    """The full speech stack, as ``appliance run`` loads it."""
    from appliance.config import ModelChoice, SpeechSettings
    from appliance.speech.loading import load_speech

    return load_speech(ModelChoice(), SpeechSettings(), catalog)
