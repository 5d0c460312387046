"""``[sync]``: which cloud agenda the box keeps in step with, and how.

    [sync]
    adapter = "fhir"            # "none" (default), "fhir" or "caldav"
    [sync.outbox]               # optional: retries, leases, pull interval
    pull_interval_s = 120
    [sync.fhir]
    base_url = "https://fhir.example/r4"
    practitioners = { martin = "Practitioner/12", bernard = "Practitioner/13" }

With ``adapter = "none"`` the local agenda is the practice's agenda: bookings
are confirmed to callers as soon as they are written, and the outbox keeps
them for the day a cloud agenda is connected.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from appliance.errors import ConfigError
from appliance.sync.adapters.caldav import CaldavSettings
from appliance.sync.adapters.fhir import FhirSettings
from appliance.sync.worker import OutboxSettings

ADAPTERS: Final = ("none", "fhir", "caldav")


@dataclass(frozen=True, kw_only=True)
class SyncSettings:
    adapter: str = "none"
    outbox: OutboxSettings = field(default_factory=OutboxSettings)
    fhir: FhirSettings | None = None
    caldav: CaldavSettings | None = None

    def __post_init__(self) -> None:
        if self.adapter not in ADAPTERS:
            raise ConfigError(f"sync.adapter must be one of {', '.join(ADAPTERS)}; got {self.adapter!r}")
        if self.adapter != "none" and getattr(self, self.adapter) is None:
            raise ConfigError(f"sync.adapter = {self.adapter!r} needs a [sync.{self.adapter}] table")

    @property
    def enabled(self) -> bool:
        return self.adapter != "none"

    def check_practice(self, practitioner_ids: tuple[str, ...]) -> None:
        """Every practitioner the assistant books for must have a place in the cloud:
        found now, not as a dead letter after the first booking."""
        if self.fhir is not None and self.adapter == "fhir":
            where, mapping = "sync.fhir.practitioners", self.fhir.practitioners
        elif self.caldav is not None and self.adapter == "caldav":
            where, mapping = "sync.caldav.calendars", self.caldav.calendars
        else:
            return
        missing = [p for p in practitioner_ids if p not in mapping]
        if missing:
            raise ConfigError(f"{where} has no entry for {', '.join(repr(p) for p in missing)}")
