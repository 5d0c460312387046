"""FHIR R4 resources as the box writes and reads them: Appointment and Slot.

Pure functions, no I/O: a ``Booking`` becomes an Appointment dict, the
Appointments and Slots a server returns become ``RemoteBusy`` items, and Bundles
(search pages, history, transaction replies) and the sync cursor are read. Anything a
server sends that is not the shape R4 promises raises ``Malformed``; the adapter
turns it into a ``SyncError`` so that no ``KeyError`` or ``TypeError`` ever
reaches the outbox worker.

The shape was checked against sekmet-fhir's strict inbound validation (the
``fhir.resources`` models): ``participant.status`` is required, instants need an
offset, and empty strings are refused, so empty fields are left out rather
than sent as ``""``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Collection, Final, Iterator

from appliance.sync.adapter import Booking, RemoteBusy

REASON_SYSTEM: Final = "urn:appliance:reason"
"""Coding system of ``Appointment.serviceType``: the practice's own visit-reason ids."""

IDEMPOTENCY_EXTENSION: Final = "urn:appliance:idempotency-key"
"""Records which outbox message wrote the current version, so a person reading the
cloud's history can match it with the box's log. Deduplication does not rely on it:
the booking key in ``identifier`` is what conditional create searches for."""

PATIENT_ID: Final = "patient"
"""The contained Patient's local id (``participant.actor = #patient``): the box has no
Patient resource in the cloud and must not create one per phone call."""

# Statuses in which an Appointment no longer holds its time. Anything else, even a
# status this module has never heard of, is treated as taking the time: booking on
# top of an appointment is worse than a needless conflict the staff resolve.
_RELEASED: Final = frozenset({"cancelled", "entered-in-error", "waitlist"})
_DEAD: Final = frozenset({"cancelled", "entered-in-error"})


class Malformed(ValueError):
    """A server's body is not what FHIR R4 promises (missing field, wrong type)."""


# -- time ------------------------------------------------------------------------


def instant(moment: datetime) -> str:
    """A FHIR instant with its offset, at whole seconds (``2026-12-01T09:00:00+01:00``)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment.isoformat()}: bookings carry their offset")
    return moment.replace(microsecond=0).isoformat()


def parse_instant(value: object, where: str) -> datetime:
    if not isinstance(value, str):
        raise Malformed(f"{where} is not an instant: {value!r}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise Malformed(f"{where} is not an instant: {value!r}") from None
    if moment.tzinfo is None:
        raise Malformed(f"{where} has no offset: {value!r}")
    return moment


# -- reading fields safely ----------------------------------------------------------


def field(resource: dict[str, Any], name: str, kind: type, where: str, *, required: bool = True) -> Any:
    value = resource.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise Malformed(f"{where}.{name} missing or not a {kind.__name__}: {value!r}")
    return value


def resource_id(resource: dict[str, Any], rtype: str) -> str:
    if not isinstance(resource, dict) or resource.get("resourceType") != rtype:
        raise Malformed(f"expected a {rtype}, got {kind_of(resource)}")
    return field(resource, "id", str, rtype)


def etag(resource: dict[str, Any]) -> str | None:
    """The version ETag (``W/"3"``) built from ``meta.versionId``, as a server's header would be."""
    meta = resource.get("meta")
    version = meta.get("versionId") if isinstance(meta, dict) else None
    return f'W/"{version}"' if isinstance(version, str) and version else None


def last_updated(resource: dict[str, Any], where: str) -> tuple[datetime, str]:
    """``meta.lastUpdated`` parsed, and as the server wrote it (the sync cursor keeps its text)."""
    meta = resource.get("meta")
    text = meta.get("lastUpdated") if isinstance(meta, dict) else None
    return parse_instant(text, f"{where}.meta.lastUpdated"), str(text)


def reference_id(reference: object, rtype: str) -> str | None:
    """``Slot/7`` (or an absolute ``https://…/Slot/7``) → ``7``; anything else → None."""
    if not isinstance(reference, str):
        return None
    parts = reference.split("?")[0].rstrip("/").split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    if len(parts) >= 2 and parts[-2] == rtype and parts[-1]:
        return parts[-1]
    return None


def escape_token(value: str) -> str:
    """Escape a search value's ``\\ , | $`` (FHIR search, "Escaping Search Parameters")."""
    for char in ("\\", ",", "|", "$"):
        value = value.replace(char, "\\" + char)
    return value


def kind_of(value: object) -> str:
    if isinstance(value, dict):
        return repr(value.get("resourceType", "an object without resourceType"))
    return type(value).__name__


# -- Appointment -------------------------------------------------------------------


def new_appointment(
    booking: Booking,
    *,
    practitioner: str,
    system: str,
    idempotency_key: str,
    slot_ids: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The Appointment for a booking: status booked, patient contained, practitioner referenced."""
    patient: dict[str, Any] = {"resourceType": "Patient", "id": PATIENT_ID}
    name: dict[str, Any] = {}
    if booking.patient_last_name.strip():
        name["family"] = booking.patient_last_name.strip()
    if booking.patient_first_name.strip():
        name["given"] = [booking.patient_first_name.strip()]
    if name:
        patient["name"] = [name]
    if booking.patient_birth_date is not None:
        patient["birthDate"] = booking.patient_birth_date.isoformat()
    if booking.patient_phone and booking.patient_phone.strip():
        patient["telecom"] = [{"system": "phone", "value": booking.patient_phone.strip(), "use": "mobile"}]
    service: dict[str, Any] = {}
    if booking.reason_id.strip():
        service["coding"] = [{"system": REASON_SYSTEM, "code": booking.reason_id.strip()}]
    resource: dict[str, Any] = {
        "resourceType": "Appointment",
        "contained": [patient],
        "identifier": [{"system": system, "value": booking.key}],
        "status": "booked",
        "participant": [
            {"actor": {"reference": f"#{PATIENT_ID}"}, "required": "required", "status": "accepted"},
            {"actor": {"reference": practitioner}, "required": "required", "status": "accepted"},
        ],
    }
    if booking.reason_label.strip():
        service["text"] = booking.reason_label.strip()
        resource["description"] = booking.reason_label.strip()
    if service:
        resource["serviceType"] = [service]
    if slot_ids:
        resource["slot"] = [{"reference": f"Slot/{slot_id}"} for slot_id in slot_ids]
    return rescheduled(resource, booking, idempotency_key=idempotency_key, slot_ids=slot_ids)


def rescheduled(
    resource: dict[str, Any],
    booking: Booking,
    *,
    idempotency_key: str,
    slot_ids: tuple[str, ...],
    practitioner: str | None = None,
    mapped: Collection[str] = (),
) -> dict[str, Any]:
    """A copy of a stored Appointment at the booking's times (and with ``practitioner``
    in place of the mapped one it had, for a move to a colleague). Every other field
    the cloud holds (notes the staff added, its own codes) is kept as it is."""
    out = copy.deepcopy(resource)
    out["start"] = instant(booking.start)
    out["end"] = instant(booking.end)
    out["minutesDuration"] = max(1, round((booking.end - booking.start).total_seconds() / 60))
    if slot_ids:
        out["slot"] = [{"reference": f"Slot/{slot_id}"} for slot_id in slot_ids]
    else:
        out.pop("slot", None)
    if practitioner is not None:
        out["participant"] = _with_practitioner(out.get("participant") or [], practitioner, mapped)
    return _stamped(out, idempotency_key)


def _with_practitioner(participants: list[Any], practitioner: str, mapped: Collection[str]) -> list[Any]:
    def ref(participant: Any) -> str | None:
        actor = participant.get("actor") if isinstance(participant, dict) else None
        ref_id = reference_id(actor.get("reference") if isinstance(actor, dict) else None, "Practitioner")
        return f"Practitioner/{ref_id}" if ref_id else None

    if any(ref(p) == practitioner for p in participants):
        return participants
    for participant in participants:
        if ref(participant) in mapped:
            participant["actor"] = {"reference": practitioner}
            return participants
    return [*participants, {"actor": {"reference": practitioner}, "required": "required", "status": "accepted"}]


def cancelled(resource: dict[str, Any], *, idempotency_key: str) -> dict[str, Any]:
    out = copy.deepcopy(resource)
    out["status"] = "cancelled"
    return _stamped(out, idempotency_key)


def _stamped(resource: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
    _without_version(resource)
    others = [
        ext for ext in resource.get("extension") or []
        if not (isinstance(ext, dict) and ext.get("url") == IDEMPOTENCY_EXTENSION)
    ]
    mark = [{"url": IDEMPOTENCY_EXTENSION, "valueString": idempotency_key}] if idempotency_key.strip() else []
    if others or mark:
        resource["extension"] = [*others, *mark]
    else:
        resource.pop("extension", None)
    return resource


def booking_key(resource: dict[str, Any], system: str) -> str | None:
    for ident in resource.get("identifier") or []:
        if isinstance(ident, dict) and ident.get("system") == system and isinstance(ident.get("value"), str):
            return ident["value"]
    return None


def status(resource: dict[str, Any], where: str) -> str:
    return field(resource, "status", str, where)


def is_dead(resource: dict[str, Any]) -> bool:
    """Cancelled or entered in error: as if it did not exist, for ``find`` and ``cancel``."""
    return resource.get("status") in _DEAD


def holds_time(resource: dict[str, Any]) -> bool:
    return resource.get("status") not in _RELEASED


def slot_ids(resource: dict[str, Any]) -> tuple[str, ...]:
    refs = resource.get("slot") or []
    if not isinstance(refs, list):
        raise Malformed(f"Appointment/{resource.get('id')}.slot is not a list")
    return tuple(
        ref_id for ref in refs
        if isinstance(ref, dict) and (ref_id := reference_id(ref.get("reference"), "Slot")) is not None
    )


def interval(resource: dict[str, Any], where: str) -> tuple[datetime, datetime] | None:
    """(start, end) of an Appointment or Slot; None if it has no start (a proposal
    without a time). A missing end falls back on ``minutesDuration``, then on the start."""
    if resource.get("start") is None:
        return None
    start = parse_instant(resource.get("start"), f"{where}.start")
    if resource.get("end") is not None:
        return start, parse_instant(resource.get("end"), f"{where}.end")
    minutes = resource.get("minutesDuration")
    if isinstance(minutes, int) and not isinstance(minutes, bool) and minutes > 0:
        return start, start + timedelta(minutes=minutes)
    return start, start


def overlaps(taken: tuple[datetime, datetime], start: datetime, end: datetime) -> bool:
    taken_start, taken_end = taken
    if taken_start == taken_end:  # a bare start: taken if it falls inside
        return start <= taken_start < end
    return taken_start < end and start < taken_end


def practitioner_of(resource: dict[str, Any], practitioners: dict[str, str], where: str) -> str | None:
    """The practice's id of the first mapped Practitioner among the participants."""
    participants = resource.get("participant") or []
    if not isinstance(participants, list):
        raise Malformed(f"{where}.participant is not a list")
    for participant in participants:
        actor = participant.get("actor") if isinstance(participant, dict) else None
        ref_id = reference_id(actor.get("reference") if isinstance(actor, dict) else None, "Practitioner")
        if ref_id is not None and f"Practitioner/{ref_id}" in practitioners:
            return practitioners[f"Practitioner/{ref_id}"]
    return None


def appointment_busy(resource: dict[str, Any], practitioners: dict[str, str], system: str) -> RemoteBusy | None:
    """An Appointment as a stretch of busy (or freed) time; None when it is not one of
    the mapped practitioners' or has no time to place."""
    appt_id = resource_id(resource, "Appointment")
    where = f"Appointment/{appt_id}"
    state = status(resource, where)
    practitioner = practitioner_of(resource, practitioners, where)
    times = interval(resource, where)
    if practitioner is None or times is None or times[0] == times[1]:
        return None
    return RemoteBusy(
        remote_id=where,
        practitioner_id=practitioner,
        start=times[0],
        end=times[1],
        status="busy" if state not in _RELEASED else "cancelled",
        booking_key=booking_key(resource, system),
        version=etag(resource),
    )


# -- Slot ---------------------------------------------------------------------------


def slot_busy(resource: dict[str, Any], schedules: dict[str, str]) -> RemoteBusy | None:
    """A Slot of a mapped Schedule: ``free`` or ``busy`` (busy-tentative and
    busy-unavailable are busy to a caller; entered-in-error no longer takes time,
    ``cancelled``). None for other schedules' slots."""
    slot_id = resource_id(resource, "Slot")
    where = f"Slot/{slot_id}"
    schedule = field(resource, "schedule", dict, where)
    schedule_id = reference_id(schedule.get("reference"), "Schedule")
    practitioner = schedules.get(f"Schedule/{schedule_id}") if schedule_id else None
    if practitioner is None:
        return None
    start = parse_instant(resource.get("start"), f"{where}.start")
    end = parse_instant(resource.get("end"), f"{where}.end")
    state = status(resource, where)
    return RemoteBusy(
        remote_id=where,
        practitioner_id=practitioner,
        start=start,
        end=end,
        status={"free": "free", "entered-in-error": "cancelled"}.get(state, "busy"),
        version=etag(resource),
    )


def with_slot_status(resource: dict[str, Any], new_status: str) -> dict[str, Any]:
    out = copy.deepcopy(resource)
    _without_version(out)
    out["status"] = new_status
    return out


def _without_version(resource: dict[str, Any]) -> None:
    """The server owns versionId and lastUpdated; tags and security labels stay."""
    meta = resource.get("meta")
    if isinstance(meta, dict):
        kept = {k: v for k, v in meta.items() if k not in ("versionId", "lastUpdated")}
        if kept:
            resource["meta"] = kept
        else:
            resource.pop("meta")


# -- Bundles and the sync cursor ----------------------------------------------------


def entries(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    found = bundle.get("entry") or []
    if not isinstance(found, list) or not all(isinstance(e, dict) for e in found):
        raise Malformed("Bundle.entry is not a list of objects")
    return found


def history_time(entry: dict[str, Any]) -> datetime | None:
    """When a history entry's version was written: ``response.lastModified``, else the
    resource's ``meta.lastUpdated``; None if neither is readable."""
    answer = entry.get("response")
    resource = entry.get("resource")
    meta = resource.get("meta") if isinstance(resource, dict) else None
    for text in (answer.get("lastModified") if isinstance(answer, dict) else None,
                 meta.get("lastUpdated") if isinstance(meta, dict) else None):
        if isinstance(text, str):
            try:
                return parse_instant(text, "history")
            except Malformed:
                continue
    return None


def search_matches(bundle: dict[str, Any], rtype: str) -> Iterator[dict[str, Any]]:
    """The matches of a searchset page, without ``_include``d resources or outcomes."""
    for entry in entries(bundle):
        mode = entry.get("search", {}).get("mode") if isinstance(entry.get("search"), dict) else None
        resource = entry.get("resource")
        if mode in (None, "match") and isinstance(resource, dict) and resource.get("resourceType") == rtype:
            yield resource
        elif mode == "match":
            raise Malformed(f"{rtype} search: a match is {kind_of(resource)}")


def history_methods(bundle: dict[str, Any], rtype: str, since: datetime, newest: dict[str, str]) -> bool:
    """Note in ``newest`` each id's newest method (history lists newest first) on
    one history page; True once a version older than ``since`` shows up."""
    for entry in entries(bundle):
        request = entry.get("request") if isinstance(entry.get("request"), dict) else {}
        at = history_time(entry)
        if at is not None and at < since:
            return True
        entry_id = reference_id(request.get("url"), rtype) or reference_id(entry.get("fullUrl"), rtype)
        if entry_id is not None:
            newest.setdefault(entry_id, str(request.get("method", "")).upper())
    return False


def put_entry(resource: dict[str, Any], url: str, version: str | None) -> dict[str, Any]:
    """A transaction entry updating ``url``, guarded by ``version`` when there is one."""
    request = {"method": "PUT", "url": url}
    if version:
        request["ifMatch"] = version
    return {"resource": resource, "request": request}


def transaction_written(reply: dict[str, Any], sent: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    """(id, version) written by each entry sent, from a transaction-response (same order)."""
    answers = entries(reply)
    if reply.get("type") != "transaction-response" or len(answers) != len(sent):
        raise Malformed(f"the transaction's reply is not a transaction-response with {len(sent)} entries")
    return [_entry_written(answer, entry["request"]["url"].split("/")[0]) for answer, entry in zip(answers, sent)]


def _entry_written(entry: dict[str, Any], rtype: str) -> tuple[str, str | None]:
    answer = entry.get("response") if isinstance(entry.get("response"), dict) else {}
    version = answer.get("etag") if isinstance(answer.get("etag"), str) else None
    resource = entry.get("resource")
    if isinstance(resource, dict) and resource.get("resourceType") == rtype:
        return resource_id(resource, rtype), version or etag(resource)
    written_id = reference_id(answer.get("location"), rtype)
    if written_id is None:
        raise Malformed(f"a transaction-response entry names no {rtype}")
    return written_id, version


@dataclass(frozen=True)
class Cursor:
    """``<instant> [<Type/id@version> …]``: the greatest ``meta.lastUpdated`` the
    server returned (its clock, never the box's), and what carried exactly it.

    Pulls ask for ``_lastUpdated=ge<instant>``, not ``gt``: a write stamped in the
    same millisecond as the last one seen, committed just after that pull, would
    otherwise be skipped for good. The items listed are the ones delivered already.
    """

    instant: str
    seen: frozenset[str]

    @classmethod
    def parse(cls, text: str | None) -> Cursor | None:
        if not text:
            return None
        head, *seen = text.split(" ")
        try:
            parse_instant(head, "cursor")
        except Malformed:
            return None  # another adapter's token, or a box restored from a backup
        return cls(head, frozenset(seen))


class Newest:
    """Follows the greatest ``meta.lastUpdated`` over a pull; says what is new."""

    def __init__(self, since: Cursor | None) -> None:
        self._since = since
        self._at = parse_instant(since.instant, "cursor") if since else None
        self._text = since.instant if since else ""
        self._seen: set[str] = set(since.seen) if since else set()

    def add(self, resource: dict[str, Any], rtype: str) -> bool:
        """Record the resource's stamp; False if the previous pull delivered it already."""
        rid = resource_id(resource, rtype)
        at, text = last_updated(resource, f"{rtype}/{rid}")
        key = f"{rtype}/{rid}@{resource['meta'].get('versionId')}"
        if self._at is None or at > self._at:
            self._at, self._text, self._seen = at, text, {key}
        elif at == self._at:
            self._seen.add(key)
        return self._since is None or key not in self._since.seen

    def cursor(self) -> str:
        """Empty when nothing was ever seen: the next pull is a full one again (cheap, as
        the window was empty), which spares guessing the server's clock."""
        return " ".join([self._text, *sorted(self._seen)]) if self._text else ""
