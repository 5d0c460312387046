"""``[retention]``: how long the box keeps what it learns about patients.

The practice chooses; the box purges once an hour (``RetentionTask``), so
nothing stays much longer than chosen. Call audio is never written to disk:
the box has no recording feature, so there is nothing of it to keep.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from appliance.clock import Clock
from appliance.errors import ConfigError
from appliance.store import Store
from appliance.store.retention import PatientQuery, Purged, erase_patient, export_patient, purge

_LOGGER = logging.getLogger(__name__)
_EVERY_S: Final = 3600.0


@dataclass(frozen=True, kw_only=True)
class RetentionSettings:
    transcripts_days: int = 30
    """What callers said, turn by turn (the call log); the call's outcome stays."""
    messages_days: int = 90
    """Messages in the staff's inbox, handled or not."""
    calls_days: int = 365
    """The list of calls: time, number, outcome."""
    outbox_days: int = 30
    """Changes already delivered to the cloud agenda (they hold a copy of the booking)."""
    appointments_days: int = 365
    """Past appointments, once the cloud agenda has them."""

    def __post_init__(self) -> None:
        for name in ("transcripts_days", "messages_days", "calls_days", "outbox_days", "appointments_days"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 3650:
                raise ConfigError(f"retention.{name} must be a whole number of days from 1 to 3650, got {value!r}")
        if self.transcripts_days > self.calls_days:
            raise ConfigError("retention.transcripts_days cannot be longer than retention.calls_days")


def purge_now(store: Store, settings: RetentionSettings, clock: Clock) -> Purged:
    purged = purge(
        store,
        now=clock.now(),
        transcripts_days=settings.transcripts_days,
        messages_days=settings.messages_days,
        calls_days=settings.calls_days,
        outbox_days=settings.outbox_days,
        appointments_days=settings.appointments_days,
    )
    if purged.total:
        _LOGGER.info(
            "retention: purged %d call logs, %d messages, %d calls, %d sent changes, %d past appointments",
            purged.call_events, purged.messages, purged.calls, purged.outbox_rows, purged.appointments,
        )
    return purged


async def run_retention(store: Store, settings: RetentionSettings, clock: Clock, stop: asyncio.Event) -> None:
    """The core's task: purge at start, then every hour."""
    while not stop.is_set():
        try:
            await asyncio.to_thread(purge_now, store, settings, clock)
        except Exception:  # a busy store: try again next hour, the calls go on
            _LOGGER.exception("retention purge failed")
        try:
            await asyncio.wait_for(stop.wait(), timeout=_EVERY_S)
        except TimeoutError:
            pass


def run_data_command(
    store: Store,
    clock: Clock,
    settings: RetentionSettings,
    action: str,
    who: PatientQuery | None,
    echo: Callable[[str], None],
) -> int:
    """``appliance data export|erase|purge``: a patient's rights, and the purge on demand."""
    if action == "purge":
        purged = purge_now(store, settings, clock)
        echo(
            f"purged: {purged.call_events} call logs, {purged.messages} messages, {purged.calls} calls,"
            f" {purged.outbox_rows} sent changes, {purged.appointments} past appointments"
        )
        return 0
    if who is None:
        raise ConfigError("export and erase need --last-name and --birth-date")
    if action == "export":
        echo(json.dumps(export_patient(store, who), ensure_ascii=False, indent=2))
        return 0
    erased = erase_patient(store, who, now=clock.now())
    echo(
        f"erased: {erased.appointments} appointment(s) ({erased.cancelled} future one(s) cancelled),"
        f" {erased.messages} message(s), {erased.calls} call(s)"
    )
    return 0
