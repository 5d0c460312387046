"""The local agenda as the call sees it: free slots to offer, and booking one.

Reads the busy times from the store and computes free slots with the practice's
rules (``slots.free_slots``); a booking goes through ``appointments.book``, which
writes the appointment and its outbox row in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta

from appliance.agenda.practice import Practice
from appliance.agenda.slots import Slot, free_slots
from appliance.clock import Clock
from appliance.dialogue.reply import Patient
from appliance.store import Store, appointments

# Three offers at 9:00, 9:10 and 9:20 are one offer; spread them so the caller has a real choice.
_SPREAD_MIN = 30


class LocalAgenda:
    def __init__(self, store: Store, practice: Practice, clock: Clock, *, awaits_cloud: bool = False) -> None:
        self.store = store
        self.practice = practice
        self.clock = clock
        self.awaits_cloud = awaits_cloud
        """A cloud agenda is configured: a booking is registered here at once and
        confirmed when the outbox has delivered it."""

    def free_slots(
        self,
        reason_id: str,
        practitioner_id: str | None,
        window_start: datetime | None,
        window_end: datetime | None,
        limit: int,
        accept: Callable[[datetime], bool] | None = None,
    ) -> list[Slot]:
        now = self.clock.now()
        horizon = now + timedelta(days=self.practice.rules.horizon_days + 1)
        busy = appointments.busy_intervals(self.store, window_start or now, window_end or horizon)
        return free_slots(
            self.practice,
            reason_id,
            busy,
            now,
            practitioner_id=practitioner_id,
            window_start=window_start,
            window_end=window_end,
            limit=limit,
            spread_min=_SPREAD_MIN,
            accept=accept,
        )

    def upcoming_for(self, birth_date: date) -> list[appointments.Appointment]:
        """Appointments still to come of every patient born that day (the
        secretary matches the name, tolerant to recognition errors)."""
        return appointments.find_for_patient(self.store, None, birth_date, after=self.clock.now(), tz=self.practice.tz)

    def cancel(self, appointment_id: int, call_id: str) -> None:
        appointments.cancel(self.store, appointment_id, tz=self.practice.tz)

    def move(self, appointment_id: int, slot: Slot, call_id: str) -> None:
        appointments.move(self.store, appointment_id, slot.start, slot.end, tz=self.practice.tz)

    def book(self, slot: Slot, patient: Patient, call_id: str) -> int:
        request = appointments.BookingRequest(
            practitioner_id=slot.practitioner_id,
            reason_id=slot.reason_id,
            start=slot.start,
            end=slot.end,
            patient_last_name=patient.last_name,
            patient_first_name=patient.first_name,
            patient_birth_date=patient.birth_date,
            patient_phone=patient.phone,
            call_id=call_id,
        )
        return appointments.book(self.store, self.practice, request).id
