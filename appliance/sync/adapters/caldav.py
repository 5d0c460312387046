"""The CalDAV agenda adapter (RFC 4791, RFC 6578 sync-collection, RFC 9110 preconditions).

For a practice whose agenda is a plain calendar server (Radicale, Nextcloud,
SOGo, ...): one calendar collection per practitioner, one event per booking.

- The event's UID is the booking key and its resource name is derived from the
  key, so the box always knows where its own booking lives and a lost reply is
  recognised by reading that one resource back.
- Every write is conditional: ``If-None-Match: *`` to create (never replace an
  event someone else made), ``If-Match: <etag>`` to move or delete (never
  overwrite a change we have not seen without reading it first).
- CalDAV has no slots and no transactions: "the time is free" is an overlap
  query just before the write. The window between the two is milliseconds; the
  inbound sync shows the staff anything that slipped through it.

Requests are written by hand with httpx and ElementTree, each error classified
in one place (``_send``): retry for the network, 429 and 5xx; stop for the rest.
Patient data (in SUMMARY and DESCRIPTION) is never logged, only resource paths.
"""

from __future__ import annotations

import json
import logging
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Final
from urllib.parse import quote, unquote, urljoin, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx

from appliance.clock import Clock, SystemClock
from appliance.errors import ConfigError, SyncError
from appliance.sync.adapters import ical
from appliance.sync.adapter import Booking, Changes, RemoteBusy, RemoteRef, SyncConflict

_LOGGER = logging.getLogger(__name__)

_DAV: Final = "DAV:"
_CAL: Final = "urn:ietf:params:xml:ns:caldav"
_XML: Final = {"Content-Type": "application/xml; charset=utf-8"}
_ICS: Final = {"Content-Type": "text/calendar; charset=utf-8"}
_OWN_KEY_MARK: Final = "/appt-"  # every booking key of a box: "<box id>/appt-<n>"
_SAFE_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.")
_MAX_SYNC_ROUNDS: Final = 50  # a server truncating its answer (507) gives the rest in rounds


@dataclass(frozen=True, kw_only=True)
class CaldavSettings:
    base_url: str
    """The CalDAV server, e.g. ``https://cloud.example.fr/remote.php/dav/``."""
    username: str
    password: str = field(default="", repr=False)
    password_file: Path | None = None
    """Read at each adapter start, so the setup page can change it without a restart."""
    calendars: dict[str, str]
    """Practice's practitioner id → that practitioner's calendar collection
    (a URL on the same server, or a path relative to ``base_url``)."""
    timeout_s: float = 10.0
    timezone: str = "Europe/Paris"
    """Gives a zone to what the staff's clients write without one (all-day events, floating times)."""

    def __post_init__(self) -> None:
        base = urlsplit(self.base_url)
        if base.scheme not in ("http", "https") or not base.netloc:
            raise ConfigError(f"caldav.base_url must be an http:// or https:// URL, got {self.base_url!r}")
        if not self.username:
            raise ConfigError("caldav.username is empty")
        if bool(self.password) == (self.password_file is not None):
            raise ConfigError("caldav: give exactly one of password and password_file")
        if not self.calendars:
            raise ConfigError("caldav.calendars is empty: map each practitioner to a calendar")
        for practitioner, where in self.calendars.items():
            if not practitioner or not where:
                raise ConfigError(f"caldav.calendars: empty practitioner or calendar in {practitioner!r} = {where!r}")
            url = urlsplit(self.calendar_url(practitioner))
            if (url.scheme, url.netloc) != (base.scheme, base.netloc):
                raise ConfigError(
                    f"caldav.calendars.{practitioner} must be on the server of caldav.base_url, got {where!r}"
                )
        if not 1 <= self.timeout_s <= 120:
            raise ConfigError(f"caldav.timeout_s must be 1-120 s, got {self.timeout_s}")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"caldav.timezone is not a known time zone: {self.timezone!r}") from None

    def calendar_url(self, practitioner_id: str) -> str:
        """The collection's absolute URL, always ending with ``/``."""
        url = urljoin(self.base_url.rstrip("/") + "/", self.calendars[practitioner_id])
        return url if url.endswith("/") else url + "/"

    def read_password(self) -> str:
        if self.password_file is None:
            return self.password
        try:
            password = self.password_file.read_text(encoding="utf-8").strip("\r\n")
        except OSError as err:
            raise ConfigError(f"caldav.password_file cannot be read: {err}") from err
        if not password:
            raise ConfigError(f"caldav.password_file {self.password_file} is empty")
        return password


@dataclass(frozen=True, slots=True)
class _Member:
    """One ``DAV:response`` of a multistatus."""

    path: str
    status: int
    etag: str | None = None
    calendar_data: str | None = None
    is_calendar: bool = False


@dataclass(frozen=True, slots=True)
class _Stored:
    """A calendar object as read from the server."""

    path: str
    etag: str | None
    event: ical.Event | None
    """The main VEVENT (not an overridden occurrence); None for a VTODO and the like."""

    @property
    def uid(self) -> str | None:
        return self.event.uid if self.event else None

    @property
    def ref(self) -> RemoteRef:
        return RemoteRef(remote_id=self.path, version=self.etag)


class _TokenRefused(Exception):
    """The server no longer knows our sync token: time for a full listing."""


def resource_name(key: str) -> str:
    """The event's file name: the key with anything unsafe in a URL as ``_xx``.

    Injective (``_`` itself is escaped), so two keys never share a resource, and
    free of ``%`` and ``/``, which servers decode differently.
    """
    return "".join(c if c in _SAFE_CHARS else "".join(f"_{b:02x}" for b in c.encode()) for c in key) + ".ics"


class CaldavAdapter:
    """``AgendaAdapter`` for a CalDAV server. Blocking; the outbox worker runs it in a thread."""

    name = "caldav"

    def __init__(
        self, settings: CaldavSettings, client: httpx.Client | None = None, *, clock: Clock | None = None
    ) -> None:
        self._settings = settings
        self._auth = httpx.BasicAuth(settings.username, settings.read_password())
        self._owns_client = client is None
        self._client = client if client is not None else httpx.Client()
        self._clock = clock or SystemClock()
        self._tz: tzinfo = ZoneInfo(settings.timezone)
        base = urlsplit(settings.base_url)
        self._origin = f"{base.scheme}://{base.netloc}"
        self._calendars = {pid: _path_of(settings.calendar_url(pid), "/") for pid in settings.calendars}

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> CaldavAdapter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- AgendaAdapter -------------------------------------------------------------

    def create(self, booking: Booking, idempotency_key: str) -> RemoteRef:
        return self._create_in(self._calendar(booking.practitioner_id), booking)

    def move(self, booking: Booking, ref: RemoteRef | None, idempotency_key: str) -> RemoteRef:
        calendar = self._calendar(booking.practitioner_id)
        stored = self._locate(booking.key, ref)
        if stored is None:
            return self._create_in(calendar, booking)  # never reached the cloud, or deleted there
        if _parent(stored.path) != calendar:
            # Another practitioner now: a new event in their calendar, then the old one goes.
            moved = self._create_in(calendar, booking)
            self._delete(stored, booking.key)
            return moved
        self._refuse_overlap(calendar, booking)
        for _ in range(2):
            response = self._send(
                "PUT", stored.path, ok=(200, 201, 204, 412),
                headers={**_ICS, "If-Match": stored.etag or "*"}, content=self._event_text(booking),
            )  # fmt: skip
            if response.status_code != 412:
                _LOGGER.info("caldav: moved %s", stored.path)
                return self._ref_after_write(stored.path, response)
            # Changed in the cloud since we read it: read it again; the patient's move wins.
            again = self._get(stored.path)
            if again is None or again.uid != booking.key:
                return self._create_in(calendar, booking)
            stored = again
        raise SyncError("caldav-busy", f"{stored.path} keeps changing on the server; trying again later", retry=True)

    def cancel(self, booking: Booking, ref: RemoteRef | None, idempotency_key: str) -> None:
        if ref is not None and ref.version:
            stored: _Stored | None = _Stored(ref.remote_id, ref.version, None)
        else:
            stored = self._locate(booking.key, ref)
        if stored is not None:
            self._delete(stored, booking.key)

    def find(self, key: str) -> RemoteRef | None:
        for calendar in self._calendars.values():
            stored = self._get(calendar + resource_name(key))
            if stored is not None and stored.uid == key and stored.event and not stored.event.cancelled:
                return stored.ref
        return None

    def changes(self, cursor: str | None, start: datetime, end: datetime) -> Changes:
        tokens = self._read_cursor(cursor)
        if tokens is not None and set(self._calendars.values()) <= set(tokens):
            try:
                return self._pull(tokens, start, end)
            except _TokenRefused as err:
                _LOGGER.info("caldav: the server no longer knows the sync token of %s; pulling everything", err)
        return self._pull(None, start, end)

    def check(self) -> str:
        body = _xml("propfind", _prop("resourcetype", "displayname"))
        for practitioner, calendar in self._calendars.items():
            response = self._send("PROPFIND", calendar, ok=(207, 404), headers={**_XML, "Depth": "0"}, content=body)
            members = _parse_multistatus(response.content, calendar)[0] if response.status_code == 207 else []
            if not any(_same(m.path, calendar) and m.status == 200 for m in members):
                raise SyncError(
                    "caldav-no-calendar", f"the calendar of {practitioner} ({calendar}) does not exist on the CalDAV server"
                )
            if not any(m.is_calendar for m in members):
                raise SyncError(
                    "caldav-not-a-calendar", f"{calendar} (for {practitioner}) is not a calendar on the CalDAV server"
                )
        count = len(self._calendars)
        return f"CalDAV at {self._origin}, {count} calendar{'s' * (count > 1)} ({', '.join(self._calendars)})"

    # --- Writing -------------------------------------------------------------------

    def _create_in(self, calendar: str, booking: Booking) -> RemoteRef:
        self._refuse_overlap(calendar, booking)
        path = calendar + resource_name(booking.key)
        response = self._send(
            "PUT", path, ok=(200, 201, 204, 412),
            headers={**_ICS, "If-None-Match": "*"}, content=self._event_text(booking),
        )  # fmt: skip
        if response.status_code != 412:
            _LOGGER.info("caldav: created %s", path)
            return self._ref_after_write(path, response)
        existing = self._get(path)
        if existing is None:
            raise SyncError("caldav-busy", f"{path} vanished while being written; trying again later", retry=True)
        if existing.uid == booking.key:
            _LOGGER.info("caldav: %s was already there (an earlier reply was lost)", path)
            return existing.ref
        raise SyncConflict(detail=f"{path} already exists on the CalDAV server and is not this booking")

    def _delete(self, stored: _Stored, key: str) -> None:
        for _ in range(2):
            headers = {"If-Match": stored.etag or "*"}
            response = self._send("DELETE", stored.path, ok=(200, 202, 204, 404, 412), headers=headers)
            if response.status_code != 412:
                if response.status_code != 404:  # 404: already gone, which is what we wanted
                    _LOGGER.info("caldav: deleted %s", stored.path)
                return
            again = self._get(stored.path)  # changed since the box last saw it
            if again is None or again.uid != key:
                return  # gone, or no longer ours: nothing of ours left to delete
            stored = again
        raise SyncError("caldav-busy", f"{stored.path} keeps changing on the server; trying again later", retry=True)

    def _ref_after_write(self, path: str, response: httpx.Response) -> RemoteRef:
        etag = response.headers.get("ETag")
        if etag is None:  # RFC 4791 5.3.4: a server that changed what it stored sends none
            stored = self._get(path)
            etag = stored.etag if stored else None
        return RemoteRef(remote_id=path, version=etag)

    def _refuse_overlap(self, calendar: str, booking: Booking) -> None:
        """``SyncConflict`` if anything but this booking takes time between its start and end.

        The server does the time-range matching, recurring events included.
        """
        time_range = (
            f'<C:time-range start="{ical.format_utc(booking.start)}" end="{ical.format_utc(booking.end)}"/>'
        )
        body = _xml(
            "C:calendar-query",
            _prop("getetag", "C:calendar-data"),
            f'<C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">{time_range}'
            "</C:comp-filter></C:comp-filter></C:filter>",
        )
        response = self._send("REPORT", calendar, ok=(207,), headers={**_XML, "Depth": "1"}, content=body)
        for member in _parse_multistatus(response.content, calendar)[0]:
            if member.status != 200 or _same(member.path, calendar):
                continue
            event = self._event_of(member)
            if event and event.uid != booking.key and not event.cancelled and not event.transparent:
                raise SyncConflict(
                    detail=f"the calendar of {booking.practitioner_id} already has {member.path} "
                    f"between {booking.start.isoformat()} and {booking.end.isoformat()}"
                )

    def _event_text(self, booking: Booking) -> str:
        # The practice's own calendar: the staff need who, born when, and how to call back.
        who = f"{booking.patient_last_name.upper()} {booking.patient_first_name}"
        lines = [f"Patient : {who}"]
        if booking.patient_birth_date:
            lines.append(f"Né(e) le : {booking.patient_birth_date:%d/%m/%Y}")
        if booking.patient_phone:
            lines.append(f"Téléphone : {booking.patient_phone}")
        lines += [f"Motif : {booking.reason_label}", f"Pris par le secrétariat téléphonique ({booking.key})"]
        event = ical.Event(
            uid=booking.key, start=booking.start, end=booking.end, status="CONFIRMED",
            summary=f"RDV {booking.reason_label} – {who}", description="\n".join(lines),
        )  # fmt: skip
        return ical.write_event(event, stamp=self._clock.now())

    # --- Reading -------------------------------------------------------------------

    def _calendar(self, practitioner_id: str) -> str:
        try:
            return self._calendars[practitioner_id]
        except KeyError:
            detail = f"no CalDAV calendar is configured for practitioner {practitioner_id!r}"
            raise SyncError("caldav-no-calendar", detail) from None

    def _get(self, path: str) -> _Stored | None:
        response = self._send("GET", path, ok=(200, 404, 410))
        if response.status_code != 200:
            return None
        return self._stored(path, response.headers.get("ETag"), response.text)

    def _stored(self, path: str, etag: str | None, text: str) -> _Stored:
        try:
            events = ical.parse_events(text, default_tz=self._tz)
        except SyncError as err:
            raise SyncError(err.code, f"{path}: {err.detail}", retry=False) from err
        main = next((e for e in events if e.recurrence_id is None), events[0] if events else None)
        return _Stored(path, etag, main)

    def _event_of(self, member: _Member) -> ical.Event | None:
        if member.calendar_data is None:  # the server left it out of the report
            stored = self._get(member.path)
        else:
            stored = self._stored(member.path, member.etag, member.calendar_data)
        return stored.event if stored else None

    def _locate(self, key: str, ref: RemoteRef | None) -> _Stored | None:
        """Our booking's event, where the box last saw it or where its key puts it."""
        paths = [ref.remote_id] if ref is not None else []
        paths += [c + resource_name(key) for c in self._calendars.values() if c + resource_name(key) not in paths]
        for path in paths:
            stored = self._get(path)
            if stored is not None and stored.uid == key:
                return stored
        return None

    # --- Sync ----------------------------------------------------------------------

    def _read_cursor(self, cursor: str | None) -> dict[str, str] | None:
        if cursor is None:
            return None
        try:
            tokens = json.loads(cursor)
        except ValueError:
            tokens = None
        if not isinstance(tokens, dict) or not all(isinstance(v, str) for v in tokens.values()):
            _LOGGER.warning("caldav: unreadable sync cursor, pulling everything")
            return None
        return tokens

    def _pull(self, tokens: Mapping[str, str] | None, start: datetime, end: datetime) -> Changes:
        """One sync-collection REPORT per calendar; ``tokens=None`` lists everything."""
        items: list[RemoteBusy] = []
        removed: list[str] = []
        cursor: dict[str, str] = {}
        for practitioner, calendar in self._calendars.items():
            members, cursor[calendar] = self._sync_report(calendar, tokens[calendar] if tokens else "")
            for member in members:
                if member.status in (404, 410):
                    removed.append(member.path)
                    continue
                busy = self._busy(member, practitioner)
                if busy is not None and busy.start < end and (busy.end > start or busy.start >= start):
                    items.append(busy)
                elif tokens is not None:
                    # Changed and now outside the window (or no longer an event):
                    # for the window it is gone, as a full listing would say.
                    removed.append(member.path)
        return Changes(
            items=tuple(items), removed=tuple(removed),
            cursor=json.dumps(cursor, sort_keys=True), full=tokens is None,
        )  # fmt: skip

    def _sync_report(self, calendar: str, token: str) -> tuple[list[_Member], str]:
        members: dict[str, _Member] = {}
        for _ in range(_MAX_SYNC_ROUNDS):
            body = _xml(
                "sync-collection",
                f"<sync-token>{escape(token)}</sync-token>" if token else "<sync-token/>",
                "<sync-level>1</sync-level>",
                _prop("getetag", "C:calendar-data"),
            )
            response = self._send(
                "REPORT", calendar, ok=(207, 403, 409, 410), headers={**_XML, "Depth": "0"}, content=body
            )
            if response.status_code != 207:
                if token and (response.status_code == 410 or _condition(response) == "valid-sync-token"):
                    raise _TokenRefused(calendar)
                raise _refusal(response, "REPORT", calendar)
            found, new_token = _parse_multistatus(response.content, calendar)
            if not new_token:
                raise SyncError("caldav-bad-response", f"the sync report of {calendar} has no sync-token")
            truncated = any(_same(m.path, calendar) and m.status == 507 for m in found)
            members.update((m.path, m) for m in found if not _same(m.path, calendar))
            token = new_token
            if not truncated:
                return list(members.values()), token
        raise SyncError("caldav-bad-response", f"the sync report of {calendar} never ends", retry=True)

    def _busy(self, member: _Member, practitioner: str) -> RemoteBusy | None:
        if member.status != 200:
            return None
        event = self._event_of(member)
        if event is None:
            return None  # a task or a journal entry: takes no time
        if event.recurring:
            _LOGGER.warning("caldav: %s recurs; only its first occurrence is read", member.path)
        own = _OWN_KEY_MARK in event.uid
        return RemoteBusy(
            remote_id=member.path, practitioner_id=practitioner,
            start=event.start.astimezone(UTC), end=event.end.astimezone(UTC),
            status="cancelled" if event.cancelled or event.transparent else "busy",
            booking_key=event.uid if own else None, version=member.etag,
        )  # fmt: skip

    # --- HTTP ----------------------------------------------------------------------

    def _send(
        self, method: str, path: str, *, ok: Iterable[int],
        headers: Mapping[str, str] | None = None, content: str | None = None,
    ) -> httpx.Response:  # fmt: skip
        """The one place where requests are made and their failures classified."""
        url = urljoin(self._origin, path)
        where = urlsplit(self._origin).netloc
        try:
            response = self._client.request(
                method, url, headers=headers, content=content.encode() if content is not None else None,
                auth=self._auth, timeout=self._settings.timeout_s,
            )  # fmt: skip
        except httpx.TimeoutException as err:
            detail = f"the CalDAV server at {where} did not answer within {self._settings.timeout_s:g} s"
            raise SyncError("caldav-timeout", detail, retry=True) from err
        except (httpx.NetworkError, httpx.RemoteProtocolError, httpx.ProxyError) as err:
            detail = f"the CalDAV server at {where} cannot be reached ({err})"
            raise SyncError("caldav-unreachable", detail, retry=True) from err
        except httpx.HTTPError as err:
            raise SyncError("caldav-error", f"request to the CalDAV server at {where} failed: {err}") from err
        _LOGGER.debug("caldav: %s %s -> %d", method, path, response.status_code)
        if response.status_code not in ok:
            raise _refusal(response, method, path)
        return response


def _refusal(response: httpx.Response, method: str, path: str) -> SyncError:
    status = response.status_code
    if status == 401:
        return SyncError("caldav-auth", "the CalDAV server refused the user name or password")
    if status == 429 or status >= 500:
        detail = f"the CalDAV server answered {status} to {method} {path}; trying again later"
        return SyncError("caldav-unavailable", detail, retry=True)
    if 300 <= status < 400:  # redirects are not followed: a moved calendar is a settings change
        where = response.headers.get("Location", "elsewhere")
        return SyncError("caldav-redirect", f"the CalDAV server sends {path} to {where}: put that URL in the settings")
    condition = _condition(response)
    reason = f"{status} {condition}" if condition else str(status)
    if status == 404:
        return SyncError("caldav-not-found", f"{path} does not exist on the CalDAV server ({method})")
    if status == 403:
        return SyncError("caldav-forbidden", f"the CalDAV server forbids {method} on {path} ({reason})")
    return SyncError("caldav-refused", f"the CalDAV server refused {method} {path} ({reason})")


def _condition(response: httpx.Response) -> str | None:
    """The precondition a WebDAV error body names (``valid-sync-token``), if any.

    Only the element's name: a body may echo what we sent, patient data included.
    """
    try:
        root = ET.fromstring(response.content)
    except ET.ParseError:
        return None
    if root.tag == f"{{{_DAV}}}error" and len(root):
        return root[0].tag.rpartition("}")[2]
    return None


def _parse_multistatus(body: bytes, base: str) -> tuple[list[_Member], str | None]:
    """A 207 body → its responses and, for a sync report, the new sync token."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError as err:
        raise SyncError("caldav-bad-response", f"the CalDAV server's answer about {base} is not XML ({err})") from err
    if root.tag != f"{{{_DAV}}}multistatus":
        raise SyncError("caldav-bad-response", f"the CalDAV server answered {root.tag} about {base}, not a multistatus")
    members: list[_Member] = []
    for response in root.iterfind(f"{{{_DAV}}}response"):
        href = response.findtext(f"{{{_DAV}}}href")
        if not href or not href.strip():
            raise SyncError("caldav-bad-response", f"a response about {base} has no href")
        path = _path_of(href.strip(), base)
        status = _status(response.findtext(f"{{{_DAV}}}status"), base)
        if status is not None:
            members.append(_Member(path, status))
            continue
        etag = data = None
        is_calendar = False
        for propstat in response.iterfind(f"{{{_DAV}}}propstat"):
            if _status(propstat.findtext(f"{{{_DAV}}}status"), base) != 200:
                continue
            etag = propstat.findtext(f"{{{_DAV}}}prop/{{{_DAV}}}getetag") or etag
            data = propstat.findtext(f"{{{_DAV}}}prop/{{{_CAL}}}calendar-data") or data
            kind = propstat.find(f"{{{_DAV}}}prop/{{{_DAV}}}resourcetype")
            is_calendar = is_calendar or (kind is not None and kind.find(f"{{{_CAL}}}calendar") is not None)
        members.append(_Member(path, 200, etag, data, is_calendar))
    token = root.findtext(f"{{{_DAV}}}sync-token")
    return members, token.strip() if token else None


def _status(line: str | None, base: str) -> int | None:
    """``HTTP/1.1 404 Not Found`` → 404."""
    if line is None:
        return None
    parts = line.split()
    if len(parts) < 2 or not (parts[1].isascii() and parts[1].isdigit()):
        raise SyncError("caldav-bad-response", f"a response about {base} has the status {line[:40]!r}")
    return int(parts[1])


def _path_of(href: str, base: str) -> str:
    """The canonical path of an href: how remote ids are spelt, whatever the
    server's choice of percent-encoding (``%40`` or ``@``), so that the id a
    write returns and the id a sync report gives for the same event are equal."""
    return quote(unquote(urlsplit(urljoin(base, href)).path), safe="/@:+!$&'()*,;=~")


def _same(path: str, collection: str) -> bool:
    return path.rstrip("/") == collection.rstrip("/")  # servers differ on the final slash


def _parent(path: str) -> str:
    return path.rstrip("/").rpartition("/")[0] + "/"


def _prop(*names: str) -> str:
    return "<prop>" + "".join(f"<{n}/>" for n in names) + "</prop>"


def _xml(root: str, *children: str) -> str:
    """A request body; DAV: is the default namespace, ``C:`` is CalDAV's."""
    return (
        f'<?xml version="1.0" encoding="utf-8"?>\n<{root} xmlns="DAV:" xmlns:C="{_CAL}">'
        + "".join(children)
        + f"</{root}>"
    )
