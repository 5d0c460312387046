"""HL7 FHIR R4 cloud agenda: ``FhirAdapter`` (the contract is in ``adapter.py``).

Plain R4 REST, the part every server speaks: conditional create (``If-None-Exist``
on the booking key) so that a replayed create never makes a second Appointment,
``If-Match`` on every update, and a transaction Bundle when an Appointment and a
Slot must change together or not at all. ``$find/$hold/$book`` are not core R4
and are not used.

The patient travels inside the Appointment as a contained Patient: the box
cannot match callers to the cloud's patient records, and one Patient resource per
phone call would litter the practice's files.

Every HTTP exchange goes through ``_request``, the one place that decides what
is worth retrying (unreachable, timeout, 408, 429, 5xx) and what is refused for
good; bodies that are not FHIR become ``SyncError("fhir-malformed")``. Patient
details never reach the log: only booking keys, resource ids and status codes.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable, Final, Iterator, TypeVar
from urllib.parse import urlencode, urljoin, urlsplit

import httpx

from appliance.errors import ConfigError, SyncError
from appliance.sync.adapters import fhir_resources as res
from appliance.sync.adapter import Booking, Changes, RemoteBusy, RemoteRef, SyncConflict
from appliance.sync.adapters.fhir_resources import Malformed

_LOGGER = logging.getLogger(__name__)

_FHIR_JSON: Final = "application/fhir+json"
_PAGE_SIZE: Final = 100
_MAX_PAGES: Final = 500  # next links that never end must not hold the worker forever
_LONGEST_VISIT: Final = timedelta(hours=24)
"""Servers search Appointments by their start only; an overlap search looks back this
far before the new start, longer than any visit a practice books."""
_STRICT: Final = {"Prefer": "handling=strict"}
"""Unknown search parameters answer 400 instead of being dropped: sekmet (and the
spec's default, lenient handling) would otherwise turn a parameter it lacks into
"every Appointment of the server"."""
_WRITE: Final = {"Content-Type": _FHIR_JSON, "Prefer": "return=representation"}
_STALE: Final = frozenset({409, 412})
_FHIR_ID: Final = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_NO_HISTORY: Final = frozenset({400, 403, 404, 405, 501})


@dataclass(frozen=True, kw_only=True)
class FhirSettings:
    base_url: str
    """The FHIR base, e.g. ``https://agenda.example/fhir`` (``/metadata`` lives under it)."""
    practitioners: dict[str, str]
    """The practice's practitioner id → the cloud's ``Practitioner/<id>``."""
    schedules: dict[str, str] = field(default_factory=dict)
    """Practitioner id → ``Schedule/<id>``, for a cloud that publishes Slots."""
    identifier_system: str = "urn:appliance:booking"
    """``Appointment.identifier.system`` of the box's bookings."""
    timeout_s: float = 10.0
    bearer_token: str | None = None

    def __post_init__(self) -> None:
        url = urlsplit(self.base_url)
        if url.scheme not in ("http", "https") or not url.hostname or url.query or url.fragment:
            raise ConfigError(f"fhir.base_url must be an http:// or https:// URL, got {self.base_url!r}")
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))
        if not self.practitioners:
            raise ConfigError("fhir.practitioners must map at least one practitioner to a Practitioner/<id>")
        _check_refs("fhir.practitioners", self.practitioners, "Practitioner")
        _check_refs("fhir.schedules", self.schedules, "Schedule")
        unknown = sorted(set(self.schedules) - set(self.practitioners))
        if unknown:
            raise ConfigError(f"fhir.schedules: {', '.join(unknown)} not in fhir.practitioners")
        system = self.identifier_system
        if ":" not in system or any(c in system for c in " |,\\$\t\n"):
            raise ConfigError(f"fhir.identifier_system must be an absolute URI without | , $, got {system!r}")
        if not 0.5 <= self.timeout_s <= 120:
            raise ConfigError(f"fhir.timeout_s must be 0.5-120 s, got {self.timeout_s}")
        token = self.bearer_token
        if token is not None and (not token or any(c.isspace() or not c.isprintable() for c in token)):
            raise ConfigError("fhir.bearer_token must be a non-empty token without spaces")
        # Copies: a caller mutating its dict later must not change frozen settings.
        object.__setattr__(self, "practitioners", dict(self.practitioners))
        object.__setattr__(self, "schedules", dict(self.schedules))


def _check_refs(key: str, mapping: dict[str, str], rtype: str) -> None:
    for local, remote in mapping.items():
        kind, _, remote_id = str(remote).partition("/")
        if not local or kind != rtype or not _FHIR_ID.fullmatch(remote_id):
            raise ConfigError(f"{key}.{local} must look like {rtype}/<id>, got {remote!r}")
    if len(set(mapping.values())) != len(mapping):
        raise ConfigError(f"{key}: two practitioners map to the same {rtype}")


_Method = TypeVar("_Method", bound=Callable[..., Any])


def _guarded(method: _Method) -> _Method:
    """The last line at the boundary: whatever slipped past the explicit checks of a
    server's reply leaves as a SyncError, never as a KeyError that kills the worker."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except SyncError:
            raise
        except Malformed as err:
            raise SyncError("fhir-malformed", f"the cloud agenda's reply is not FHIR R4: {err}") from err
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as err:
            raise SyncError("fhir-malformed", f"unexpected reply from the cloud agenda ({type(err).__name__})") from err

    return wrapper  # type: ignore[return-value]


class FhirAdapter:
    """``AgendaAdapter`` for a FHIR R4 server. Blocking; the outbox worker runs it in a thread."""

    name = "fhir"

    def __init__(self, settings: FhirSettings, client: httpx.Client | None = None) -> None:
        self._settings = settings
        self._base = settings.base_url
        self._own_client = client is None
        # Redirects are not followed: a moved server is a base_url to fix, and a
        # redirect must not carry the bearer token to another host.
        self._client = client if client is not None else httpx.Client(timeout=settings.timeout_s)
        self._headers = {"Accept": _FHIR_JSON}
        if settings.bearer_token:
            self._headers["Authorization"] = f"Bearer {settings.bearer_token}"
        self._by_practitioner = {ref: local for local, ref in settings.practitioners.items()}
        self._by_schedule = {ref: local for local, ref in settings.schedules.items()}

    def close(self) -> None:
        if self._own_client:
            self._client.close()

    def __enter__(self) -> FhirAdapter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- AgendaAdapter -------------------------------------------------------------

    @_guarded
    def create(self, booking: Booking, idempotency_key: str) -> RemoteRef:
        practitioner = self._practitioner(booking)
        if booking.remote_slot is not None:
            return self._create_in_slot(booking, practitioner, idempotency_key)
        # Without Slots nothing in FHIR locks a time: look for a taker first. Two
        # writers can still both pass between search and create; the changes pull
        # then shows the double booking to the staff.
        self._check_free(booking, practitioner, ignore_id=None)
        resource = res.new_appointment(
            booking, practitioner=practitioner, system=self._system, idempotency_key=idempotency_key
        )
        response = self._request(
            "POST", f"{self._base}/Appointment", body=resource,
            headers={**_WRITE, "If-None-Exist": self._key_query(booking.key)}, allow={412},
        )
        if response.status_code == 412:
            raise SyncError("fhir-duplicate-key", f"several Appointments in the cloud carry booking key {booking.key}")
        appt_id, version = self._written(response, "Appointment")
        if response.status_code == 200:
            _LOGGER.info("fhir: booking %s was already Appointment/%s (a reply was lost)", booking.key, appt_id)
        else:
            _LOGGER.info("fhir: booking %s created as Appointment/%s", booking.key, appt_id)
        return RemoteRef(remote_id=appt_id, version=version)

    @_guarded
    def move(self, booking: Booking, ref: RemoteRef | None, idempotency_key: str) -> RemoteRef:
        practitioner = self._practitioner(booking)
        wanted = (self._slot_id(booking.remote_slot),) if booking.remote_slot is not None else ()
        for _attempt in range(2):
            found = self._locate(booking.key, ref)
            if found is None:
                _LOGGER.info("fhir: booking %s to move is not in the cloud; creating it", booking.key)
                return self.create(booking, idempotency_key)
            current, version = found
            appt_id = res.resource_id(current, "Appointment")
            if res.is_dead(current):
                raise SyncError(
                    "fhir-cancelled-in-cloud",
                    f"Appointment/{appt_id} (booking {booking.key}) was cancelled in the cloud; it cannot be moved",
                )
            held = res.slot_ids(current)
            if (
                res.interval(current, appt_id) == (booking.start, booking.end)
                and set(held) == set(wanted)
                and res.practitioner_of(current, self._by_practitioner, appt_id) == booking.practitioner_id
            ):
                return RemoteRef(remote_id=appt_id, version=version)  # done already: a reply was lost
            if not wanted:
                self._check_free(booking, practitioner, ignore_id=appt_id)
            moved = res.rescheduled(
                current, booking, idempotency_key=idempotency_key, slot_ids=wanted,
                practitioner=practitioner, mapped=self._by_practitioner,
            )
            entries = [res.put_entry(moved, f"Appointment/{appt_id}", version)]
            entries += self._slot_entries(
                take=[s for s in wanted if s not in held], free=[s for s in held if s not in wanted]
            )
            written = self._commit(entries)
            if written is not None:
                _LOGGER.info("fhir: booking %s moved (Appointment/%s)", booking.key, appt_id)
                return RemoteRef(remote_id=appt_id, version=written[0][1])
            _LOGGER.info("fhir: Appointment/%s changed in the cloud meanwhile; reading it again", appt_id)
        raise SyncError("fhir-busy", f"booking {booking.key} kept changing in the cloud while being moved", retry=True)

    @_guarded
    def cancel(self, booking: Booking, ref: RemoteRef | None, idempotency_key: str) -> None:
        for _attempt in range(2):
            found = self._locate(booking.key, ref)
            if found is None or res.is_dead(found[0]):
                _LOGGER.info("fhir: booking %s is not (or no longer) in the cloud: nothing to cancel", booking.key)
                return
            current, version = found
            appt_id = res.resource_id(current, "Appointment")
            gone = res.cancelled(current, idempotency_key=idempotency_key)
            entries = [res.put_entry(gone, f"Appointment/{appt_id}", version)]
            entries += self._slot_entries(take=[], free=list(res.slot_ids(current)))
            if self._commit(entries) is not None:
                _LOGGER.info("fhir: booking %s cancelled (Appointment/%s)", booking.key, appt_id)
                return
            _LOGGER.info("fhir: Appointment/%s changed in the cloud meanwhile; reading it again", appt_id)
        raise SyncError("fhir-busy", f"booking {booking.key} kept changing in the cloud while cancelled", retry=True)

    @_guarded
    def find(self, key: str) -> RemoteRef | None:
        for resource in self._by_key(key):
            if not res.is_dead(resource):
                return RemoteRef(remote_id=res.resource_id(resource, "Appointment"), version=res.etag(resource))
        return None

    @_guarded
    def changes(self, cursor: str | None, start: datetime, end: datetime) -> Changes:
        """Appointments of the mapped practitioners (and Slots of the mapped schedules).

        A first pull (``cursor`` None, empty or unreadable) returns the window and
        ``full=True``. Later pulls return whatever changed since the cursor, also
        outside the window: an appointment the staff moved out of it must not stay
        busy in the box's copy (so the first incremental pull may also bring items
        outside the window that changed after the newest one inside it). Deleted
        resources come from ``_history``; ids the box never knew are harmless there.
        """
        if start.utcoffset() is None or end.utcoffset() is None:
            raise SyncError("fhir-invalid-window", "changes() needs an aware start and end")
        since = res.Cursor.parse(cursor)
        if cursor and since is None:
            _LOGGER.warning("fhir: unreadable sync cursor; pulling the whole window again")
        newest = res.Newest(since)
        items: list[RemoteBusy] = []
        window = (f"ge{res.instant(start)}", f"lt{res.instant(end)}")
        queries: list[tuple[str, str, str]] = [("Appointment", "actor", "date")]
        if self._by_schedule:
            queries.append(("Slot", "schedule", "start"))
        for rtype, owner, when in queries:
            owners = self._by_practitioner if rtype == "Appointment" else self._by_schedule
            params = [(owner, ",".join(owners)), ("_sort", "_lastUpdated")]
            if since is None:
                params += [(when, window[0]), (when, window[1])]
            else:
                params.append(("_lastUpdated", f"ge{since.instant}"))
            for resource in self._search_steady(rtype, params):
                if not newest.add(resource, rtype):
                    continue  # delivered by the previous pull already
                if rtype == "Appointment":
                    item = res.appointment_busy(resource, self._by_practitioner, self._system)
                else:
                    item = res.slot_busy(resource, self._by_schedule)
                if item is not None:
                    items.append(item)
        removed = () if since is None else self._removed_since(since.instant, [rtype for rtype, _, _ in queries])
        return Changes(items=tuple(items), removed=removed, cursor=newest.cursor(), full=since is None)

    @_guarded
    def check(self) -> str:
        body = self._json(self._request("GET", f"{self._base}/metadata"), "GET metadata")
        if body.get("resourceType") != "CapabilityStatement":
            raise SyncError("fhir-not-fhir", f"{self._base}/metadata is no FHIR CapabilityStatement: check the address")
        version = res.field(body, "fhirVersion", str, "CapabilityStatement")
        if not version.startswith("4."):
            raise SyncError("fhir-version", f"the server at {self._base} speaks FHIR {version}; the box speaks R4")
        software = body.get("software") if isinstance(body.get("software"), dict) else {}
        label = " ".join(str(software[k]) for k in ("name", "version") if isinstance(software.get(k), str))
        return f"FHIR {version} server at {self._base}" + (f" ({label})" if label else "")

    # -- steps -----------------------------------------------------------------------

    @property
    def _system(self) -> str:
        return self._settings.identifier_system

    def _practitioner(self, booking: Booking) -> str:
        ref = self._settings.practitioners.get(booking.practitioner_id)
        if ref is None:
            raise SyncError(
                "fhir-unmapped-practitioner",
                f"practitioner {booking.practitioner_id!r} has no Practitioner in the cloud (fhir.practitioners)",
            )
        if booking.start.utcoffset() is None or booking.end.utcoffset() is None or booking.start >= booking.end:
            raise SyncError("fhir-invalid-booking", f"booking {booking.key} needs aware times, start before end")
        return ref

    def _key_query(self, key: str) -> str:
        return urlencode({"identifier": f"{self._system}|{res.escape_token(key)}"})

    def _by_key(self, key: str) -> list[dict[str, Any]]:
        return list(self._search("Appointment", [("identifier", f"{self._system}|{res.escape_token(key)}")]))

    def _locate(self, key: str, ref: RemoteRef | None) -> tuple[dict[str, Any], str | None] | None:
        """The booking's Appointment and its version: by ``ref`` if it still exists,
        else by key (a live one first). None if the cloud never had it."""
        if ref is not None:
            appt_id = res.reference_id(ref.remote_id, "Appointment") or ref.remote_id
            if _FHIR_ID.fullmatch(appt_id):
                found = self._read("Appointment", appt_id)
                if found is not None:
                    return found
        matches = self._by_key(key)
        chosen = next((m for m in matches if not res.is_dead(m)), matches[0] if matches else None)
        return (chosen, res.etag(chosen)) if chosen is not None else None

    def _check_free(self, booking: Booking, practitioner: str, *, ignore_id: str | None) -> None:
        params = [
            ("actor", practitioner),
            ("date", f"ge{res.instant(booking.start - _LONGEST_VISIT)}"),
            ("date", f"lt{res.instant(booking.end)}"),
        ]
        for other in self._search("Appointment", params):
            other_id = res.resource_id(other, "Appointment")
            if other_id == ignore_id or res.booking_key(other, self._system) == booking.key:
                continue
            times = res.interval(other, f"Appointment/{other_id}")
            if res.holds_time(other) and times is not None and res.overlaps(times, booking.start, booking.end):
                raise SyncConflict(
                    "fhir-overlap",
                    f"{booking.practitioner_id} already has Appointment/{other_id} from {times[0].isoformat()} "
                    f"to {times[1].isoformat()} in the cloud",
                )

    def _create_in_slot(self, booking: Booking, practitioner: str, idempotency_key: str) -> RemoteRef:
        assert booking.remote_slot is not None
        slot_id = self._slot_id(booking.remote_slot)
        appointment = res.new_appointment(
            booking, practitioner=practitioner, system=self._system,
            idempotency_key=idempotency_key, slot_ids=(slot_id,),
        )
        create = {
            "fullUrl": f"urn:uuid:{uuid.uuid4()}",
            "resource": appointment,
            "request": {"method": "POST", "url": "Appointment", "ifNoneExist": self._key_query(booking.key)},
        }
        for _attempt in range(2):
            try:
                entries = [create, *self._slot_entries(take=[slot_id], free=[])]
            except SyncConflict:
                mine = self.find(booking.key)  # taken by this very booking, its reply lost?
                if mine is not None:
                    return mine
                raise
            written = self._commit(entries)
            if written is not None:
                _LOGGER.info("fhir: booking %s created as Appointment/%s in Slot/%s", booking.key, written[0][0], slot_id)
                return RemoteRef(remote_id=written[0][0], version=written[0][1])
            mine = self.find(booking.key)
            if mine is not None:
                return mine
            _LOGGER.info("fhir: Slot/%s changed while booking it; reading it again", slot_id)
        raise SyncConflict("fhir-slot-taken", f"Slot/{slot_id} kept changing in the cloud")

    def _slot_id(self, ref: RemoteRef) -> str:
        slot_id = res.reference_id(ref.remote_id, "Slot") or ref.remote_id
        if not _FHIR_ID.fullmatch(slot_id):
            raise SyncError("fhir-invalid-booking", f"{ref.remote_id!r} is not a Slot id")
        return slot_id

    def _slot_entries(self, *, take: list[str], free: list[str]) -> list[dict[str, Any]]:
        """Transaction entries that mark Slots busy (they must be free now) or free
        (if still busy), each guarded by the version just read. The version the box
        saw when it offered the slot is not used: a slot edited since but still free
        is still bookable (a 412 then would only be a needless conflict), and a
        taken one is refused here, before anything is written."""
        entries = []
        for slot_id in take:
            found = self._read("Slot", slot_id)
            if found is None:
                raise SyncConflict("fhir-slot-gone", f"Slot/{slot_id} no longer exists in the cloud")
            slot, version = found
            state = res.status(slot, f"Slot/{slot_id}")
            if state != "free":
                raise SyncConflict("fhir-slot-taken", f"Slot/{slot_id} is {state} in the cloud")
            entries.append(res.put_entry(res.with_slot_status(slot, "busy"), f"Slot/{slot_id}", version))
        for slot_id in free:
            found = self._read("Slot", slot_id)
            if found is not None and res.status(found[0], f"Slot/{slot_id}") == "busy":
                entries.append(res.put_entry(res.with_slot_status(found[0], "free"), f"Slot/{slot_id}", found[1]))
        return entries

    def _removed_since(self, since: str, rtypes: list[str]) -> tuple[str, ...]:
        """Ids whose newest version since ``since`` is a deletion (history lists newest first)."""
        since_at = res.parse_instant(since, "cursor")
        removed: list[str] = []
        for rtype in rtypes:
            newest: dict[str, str] = {}  # id -> method of its newest version
            url = f"{self._base}/{rtype}/_history"
            pages = self._pages(url, [("_since", since)], f"{rtype} history", allow=_NO_HISTORY)
            for bundle in pages:
                if bundle is None:
                    _LOGGER.debug("fhir: no %s/_history on this server; deletions go unseen", rtype)
                    break
                if res.history_methods(bundle, rtype, since_at, newest):
                    pages.close()  # older versions reached: sekmet's next links drop _since
                    break
            removed += [f"{rtype}/{entry_id}" for entry_id, method in newest.items() if method == "DELETE"]
        return tuple(removed)

    # -- HTTP ------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        url: str,
        *,
        params: list[tuple[str, str]] | None = None,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        allow: frozenset[int] | set[int] = frozenset(),
    ) -> httpx.Response:
        """One exchange, classified: success or an allowed status comes back, the rest raises."""
        what = f"{method} {urlsplit(url).path}"
        content = json.dumps(body).encode() if body is not None else None
        try:
            response = self._client.request(
                method, url, params=params, content=content,
                headers={**self._headers, **(headers or {})}, timeout=self._settings.timeout_s,
            )
        except httpx.TimeoutException as err:
            raise SyncError(
                "fhir-timeout",
                f"the cloud agenda at {self._base} did not answer within {self._settings.timeout_s:g} s",
                retry=True,
            ) from err
        except httpx.UnsupportedProtocol as err:
            raise SyncError("fhir-refused", f"cannot use {url}: {err}") from err
        except httpx.ConnectError as err:
            detail = f"cannot reach the cloud agenda at {self._base} ({err})"
            raise SyncError("fhir-unreachable", detail, retry=True) from err
        except httpx.TransportError as err:  # reset, closed mid-reply, protocol error
            detail = f"the connection to {self._base} broke ({type(err).__name__}: {err})"
            raise SyncError("fhir-unreachable", detail, retry=True) from err
        except httpx.RequestError as err:  # too many redirects, undecodable content
            raise SyncError("fhir-refused", f"{what}: {type(err).__name__}: {err}") from err
        status = response.status_code
        _LOGGER.debug("fhir: %s -> %d", what, status)
        if status < 300 or status in allow:
            return response
        detail = f"{what} answered HTTP {status}{_diagnostics(response)}"
        if status in (408, 429) or status >= 500:
            raise SyncError("fhir-unavailable", f"the cloud agenda is unavailable for now: {detail}", retry=True)
        if status in (401, 403):
            raise SyncError("fhir-auth", f"the cloud agenda refused the box's credentials: {detail}")
        if status in _STALE:
            raise SyncConflict("fhir-conflict", detail)
        raise SyncError("fhir-refused", detail)

    def _json(self, response: httpx.Response, what: str) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError as err:  # JSONDecodeError and UnicodeDecodeError both are
            kind = response.headers.get("Content-Type", "no content type")
            raise SyncError("fhir-malformed", f"{what}: the cloud agenda's reply is not JSON ({kind})") from err
        if not isinstance(body, dict):
            raise SyncError("fhir-malformed", f"{what}: the cloud agenda's reply is not a JSON object")
        return body

    def _read(self, rtype: str, rid: str) -> tuple[dict[str, Any], str | None] | None:
        """A resource and its version ETag; None if it never existed or was deleted."""
        response = self._request("GET", f"{self._base}/{rtype}/{rid}", allow={404, 410})
        if response.status_code in (404, 410):
            return None
        resource = self._json(response, f"GET {rtype}/{rid}")
        res.resource_id(resource, rtype)
        return resource, response.headers.get("ETag") or res.etag(resource)

    def _search(self, rtype: str, params: list[tuple[str, str]]) -> Iterator[dict[str, Any]]:
        for bundle in self._pages(f"{self._base}/{rtype}", params, f"{rtype} search"):
            assert bundle is not None  # no status is allowed through for a search
            yield from res.search_matches(bundle, rtype)

    def _search_steady(self, rtype: str, params: list[tuple[str, str]]) -> list[dict[str, Any]]:
        """All matches of a search, read again if the result set shifted while it was
        paged: a server paging by offset (sekmet does) skips one match when another is
        updated or deleted meanwhile, and a full pull would then drop a busy time."""
        for _attempt in range(3):
            found: list[dict[str, Any]] = []
            ids: set[object] = set()
            totals: set[object] = set()
            for bundle in self._pages(f"{self._base}/{rtype}", params, f"{rtype} search"):
                assert bundle is not None
                totals.add(bundle.get("total"))
                for resource in res.search_matches(bundle, rtype):
                    ids.add(resource.get("id"))
                    found.append(resource)
            if len(ids) == len(found) and len(totals) <= 1:
                return found
            _LOGGER.info("fhir: %s changed in the cloud during the pull; reading them again", rtype)
        raise SyncError("fhir-busy", f"the cloud's {rtype}s kept changing during the pull", retry=True)

    def _pages(
        self, url: str, params: list[tuple[str, str]], what: str, allow: frozenset[int] = frozenset()
    ) -> Iterator[dict[str, Any] | None]:
        """Bundles of a search or history, following ``link[relation=next]``.
        Yields None (once) if the first page answers one of ``allow``."""
        query: list[tuple[str, str]] | None = [*params, ("_count", str(_PAGE_SIZE))]
        seen = {url}
        for _page in range(_MAX_PAGES):
            response = self._request("GET", url, params=query, headers=_STRICT, allow=allow)
            if response.status_code in allow:
                yield None
                return
            bundle = self._json(response, what)
            if bundle.get("resourceType") != "Bundle":
                raise Malformed(f"{what} answered {res.kind_of(bundle)}, not a Bundle")
            yield bundle
            links = bundle.get("link") or []
            following = [
                link.get("url") for link in links if isinstance(link, dict) and link.get("relation") == "next"
            ] if isinstance(links, list) else []
            if not following or not isinstance(following[0], str):
                return
            url, query = self._follow(following[0]), None
            if url in seen:
                raise Malformed(f"{what}: the next-page links go round in a circle")
            seen.add(url)
        raise Malformed(f"{what}: more than {_MAX_PAGES} pages")

    def _follow(self, link: str) -> str:
        absolute = urljoin(self._base + "/", link)
        if absolute != self._base and not absolute.startswith(self._base + "/"):
            # Never send the token elsewhere; a server behind a proxy that names
            # itself by another address needs base_url set to that address.
            raise SyncError("fhir-bad-link", f"the server's next-page link leaves {self._base}: {absolute}")
        return absolute

    def _commit(self, entries: list[dict[str, Any]]) -> list[tuple[str, str | None]] | None:
        """Write the entries together: (id, version) of each, or None if one was stale (409/412)."""
        if len(entries) == 1 and entries[0]["request"]["method"] == "PUT":  # a plain update needs no Bundle
            entry = entries[0]
            rtype = entry["request"]["url"].split("/")[0]
            headers = {**_WRITE}
            if entry["request"].get("ifMatch"):
                headers["If-Match"] = entry["request"]["ifMatch"]
            response = self._request(
                "PUT", f"{self._base}/{entry['request']['url']}", body=entry["resource"], headers=headers, allow=_STALE
            )
            return None if response.status_code in _STALE else [self._written(response, rtype)]
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
        response = self._request("POST", self._base, body=bundle, headers=_WRITE, allow=_STALE)
        if response.status_code in _STALE:
            return None
        return res.transaction_written(self._json(response, "transaction"), entries)

    def _written(self, response: httpx.Response, rtype: str) -> tuple[str, str | None]:
        """(id, version) of what a POST or PUT wrote, from its body or else its headers."""
        if response.content.strip():
            body = self._json(response, f"write of a {rtype}")
            if body.get("resourceType") == rtype:
                return res.resource_id(body, rtype), response.headers.get("ETag") or res.etag(body)
        written_id = res.reference_id(response.headers.get("Location"), rtype)
        if written_id is None:
            raise Malformed(f"the reply to a write of a {rtype} names no {rtype}")
        return written_id, response.headers.get("ETag")


def _diagnostics(response: httpx.Response) -> str:
    """The OperationOutcome's first words, for the staff: ": Version conflict: …"."""
    try:
        body = response.json()
        issues = body.get("issue") if isinstance(body, dict) else None
        texts = [i["diagnostics"] for i in issues or [] if isinstance(i, dict) and isinstance(i.get("diagnostics"), str)]
    except ValueError:
        texts = []
    return f": {'; '.join(texts)[:300]}" if texts else ""
