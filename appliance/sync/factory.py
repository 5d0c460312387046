"""Build the configured cloud agenda adapter (the only place that picks one)."""

from __future__ import annotations

from appliance.sync.adapter import AgendaAdapter
from appliance.sync.settings import SyncSettings


def open_adapter(settings: SyncSettings) -> AgendaAdapter | None:
    """The adapter ``[sync]`` asks for, or None when the box has no cloud agenda."""
    match settings.adapter:
        case "fhir":
            from appliance.sync.adapters.fhir import FhirAdapter

            assert settings.fhir is not None  # SyncSettings checked it
            return FhirAdapter(settings.fhir)
        case "caldav":
            from appliance.sync.adapters.caldav import CaldavAdapter

            assert settings.caldav is not None
            return CaldavAdapter(settings.caldav)
    return None
