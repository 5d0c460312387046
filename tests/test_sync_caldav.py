"""The CalDAV adapter against a real Radicale 3.9 (strict preconditions on).

Each test gets its own calendar for practitioner "martin" and a second client
on the same account, "the staff", who edits the calendar behind the box's back.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from appliance.clock import PARIS, FixedClock
from appliance.errors import ConfigError, SyncError
from appliance.sync.adapter import Booking, SyncConflict
from appliance.sync.adapters.caldav import CaldavAdapter, CaldavSettings, resource_name
from tests.ports import free_port
from tests.cloud.caldav_server import CaldavServer, Meddling, scripted_server

NOW = datetime(2026, 3, 3, 10, 0, tzinfo=PARIS)
WED_9H = datetime(2026, 3, 4, 9, 0, tzinfo=PARIS)
WINDOW = (NOW - timedelta(days=1), NOW + timedelta(days=30))


def booking(n: int = 1, start: datetime = WED_9H, minutes: int = 20, **changes: Any) -> Booking:
    fields: dict[str, Any] = dict(
        key=f"box1/appt-{n}", practitioner_id="martin", reason_id="consultation", reason_label="Consultation",
        start=start, end=start + timedelta(minutes=minutes), patient_last_name="Durand", patient_first_name="Anne",
        patient_birth_date=date(1980, 5, 17), patient_phone="0639981234",
    )  # fmt: skip
    fields.update(changes)
    return Booking(**fields)


def settings(server: CaldavServer, **changes: Any) -> CaldavSettings:
    fields: dict[str, Any] = dict(
        base_url=server.url, username=server.username, password=server.password, calendars={"martin": "/box/x/"}
    )
    fields.update(changes)
    return CaldavSettings(**fields)


def ics(uid: str, start: datetime, minutes: int, *extra: str) -> str:
    """An event as a staff calendar app writes it: local time with a TZID."""
    lines = [
        "BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Staff//App//FR", "BEGIN:VEVENT", f"UID:{uid}",
        "DTSTAMP:20260301T080000Z", f"DTSTART;TZID=Europe/Paris:{start:%Y%m%dT%H%M%S}",
        f"DTEND;TZID=Europe/Paris:{start + timedelta(minutes=minutes):%Y%m%dT%H%M%S}",
        "SUMMARY:Réunion", *extra, "END:VEVENT", "END:VCALENDAR",
    ]  # fmt: skip
    return "\r\n".join(lines) + "\r\n"


@pytest.fixture
def server(caldav_server: CaldavServer) -> CaldavServer:
    """The session's Radicale (tests/cloud/caldav_server.py, a plugin of conftest.py)."""
    return caldav_server


@pytest.fixture
def calendar(server: CaldavServer) -> str:
    return server.make_calendar()


@pytest.fixture
def adapter(server: CaldavServer, calendar: str) -> Iterator[CaldavAdapter]:
    with CaldavAdapter(settings(server, calendars={"martin": calendar}), clock=FixedClock(NOW)) as opened:
        yield opened


@pytest.fixture
def staff(server: CaldavServer) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def put(staff: httpx.Client, path: str, text: str, **headers: str) -> httpx.Response:
    response = staff.put(path, content=text.encode(), headers={"Content-Type": "text/calendar", **headers})
    assert response.status_code in (201, 204), response.text
    return response


def events_in(staff: httpx.Client, calendar: str) -> list[str]:
    body = '<propfind xmlns="DAV:"><prop><getetag/></prop></propfind>'
    response = staff.request("PROPFIND", calendar, headers={"Depth": "1"}, content=body)
    hrefs = (href.text or "" for href in ET.fromstring(response.content).iter("{DAV:}href"))
    return sorted(href for href in hrefs if href.endswith(".ics"))


# --- Creating ----------------------------------------------------------------------


def test_creating_twice_leaves_one_event_with_what_the_staff_need(
    adapter: CaldavAdapter, staff: httpx.Client, calendar: str
) -> None:
    first = adapter.create(booking(), "k1")
    again = adapter.create(booking(), "k1")

    assert first == again
    assert first.remote_id == calendar + "box1_2fappt-1.ics"
    assert len(events_in(staff, calendar)) == 1
    text = staff.get(first.remote_id).text
    assert "UID:box1/appt-1" in text
    assert "DTSTART:20260304T080000Z" in text and "DTEND:20260304T082000Z" in text
    assert "SUMMARY:RDV Consultation – DURAND Anne" in text
    unfolded = text.replace("\r\n ", "").replace("\n ", "")
    assert "17/05/1980" in unfolded and "0639981234" in unfolded


def test_a_lost_reply_is_recognised_as_our_own_write_not_a_conflict(
    server: CaldavServer, calendar: str, staff: httpx.Client
) -> None:
    with httpx.Client(transport=Meddling("PUT", lose_reply=True)) as client:
        adapter = CaldavAdapter(settings(server, calendars={"martin": calendar}), client)
        with pytest.raises(SyncError) as lost:
            adapter.create(booking(), "k1")
        assert lost.value.retry is True

        assert adapter.find("box1/appt-1") is not None
        ref = adapter.create(booking(), "k1")  # the worker's retry

    assert ref.version == staff.get(ref.remote_id).headers["ETag"]
    assert len(events_in(staff, calendar)) == 1


def test_someone_elses_event_at_that_time_is_a_conflict_and_nothing_is_written(
    adapter: CaldavAdapter, staff: httpx.Client, calendar: str
) -> None:
    put(staff, calendar + "meeting.ics", ics("staff-meeting", WED_9H - timedelta(minutes=30), 45))

    with pytest.raises(SyncConflict, match="meeting.ics"):
        adapter.create(booking(), "k1")

    assert events_in(staff, calendar) == [calendar + "meeting.ics"]
    assert adapter.find("box1/appt-1") is None


def test_cancelled_transparent_and_adjacent_events_leave_the_time_free(
    adapter: CaldavAdapter, staff: httpx.Client, calendar: str
) -> None:
    put(staff, calendar + "a.ics", ics("cancelled", WED_9H, 20, "STATUS:CANCELLED"))
    put(staff, calendar + "b.ics", ics("reminder", WED_9H, 20, "TRANSP:TRANSPARENT"))
    put(staff, calendar + "c.ics", ics("before", WED_9H - timedelta(minutes=30), 30))
    put(staff, calendar + "d.ics", ics("after", WED_9H + timedelta(minutes=20), 30))

    assert adapter.create(booking(), "k1").remote_id.endswith("box1_2fappt-1.ics")


def test_a_recurring_meeting_blocks_its_later_occurrences(
    adapter: CaldavAdapter, staff: httpx.Client, calendar: str
) -> None:
    put(staff, calendar + "weekly.ics", ics("weekly", WED_9H - timedelta(days=14), 60, "RRULE:FREQ=WEEKLY"))

    with pytest.raises(SyncConflict):
        adapter.create(booking(), "k1")


# --- Moving and cancelling ---------------------------------------------------------


def test_moving_gives_the_event_its_new_times(adapter: CaldavAdapter, staff: httpx.Client) -> None:
    ref = adapter.create(booking(), "k1")

    moved = adapter.move(booking(start=WED_9H + timedelta(hours=2)), ref, "k2")

    assert moved.remote_id == ref.remote_id and moved.version != ref.version
    assert "DTSTART:20260304T100000Z" in staff.get(ref.remote_id).text


def test_a_move_with_a_stale_ref_moves_the_event_as_it_is_now(adapter: CaldavAdapter, staff: httpx.Client) -> None:
    ref = adapter.create(booking(), "k1")
    put(staff, ref.remote_id, ics("box1/appt-1", WED_9H, 20), **{"If-Match": ref.version or ""})

    moved = adapter.move(booking(start=WED_9H + timedelta(hours=2)), ref, "k2")

    assert moved.version == staff.get(ref.remote_id).headers["ETag"]
    assert "DTSTART:20260304T100000Z" in staff.get(ref.remote_id).text


def test_a_staff_edit_between_our_read_and_our_write_is_read_again_and_the_move_wins(
    adapter: CaldavAdapter, server: CaldavServer, calendar: str, staff: httpx.Client
) -> None:
    ref = adapter.create(booking(), "k1")

    def staff_edits() -> None:
        put(staff, ref.remote_id, ics("box1/appt-1", WED_9H, 20), **{"If-Match": "*"})

    meddling = Meddling("PUT", before=staff_edits)

    with httpx.Client(transport=meddling) as client:
        moved = CaldavAdapter(settings(server, calendars={"martin": calendar}), client).move(
            booking(start=WED_9H + timedelta(hours=2)), ref, "k2"
        )

    assert meddling.sent.count("PUT") == 2  # refused (412), read again, written
    assert moved.version == staff.get(ref.remote_id).headers["ETag"]
    assert "DTSTART:20260304T100000Z" in staff.get(ref.remote_id).text


def test_strict_radicale_refuses_an_update_without_if_match_so_the_adapter_sends_it(
    adapter: CaldavAdapter, staff: httpx.Client
) -> None:
    ref = adapter.create(booking(), "k1")

    blind = staff.put(ref.remote_id, content=ics("box1/appt-1", WED_9H, 20).encode())
    assert blind.status_code == 412

    adapter.move(booking(start=WED_9H + timedelta(hours=1)), ref, "k2")
    assert "DTSTART:20260304T090000Z" in staff.get(ref.remote_id).text


def test_a_move_without_a_ref_finds_the_event_and_one_never_sent_creates_it(
    adapter: CaldavAdapter, staff: httpx.Client, calendar: str
) -> None:
    adapter.create(booking(1), "k1")

    adapter.move(booking(1, start=WED_9H + timedelta(hours=1)), None, "k2")
    created = adapter.move(booking(2, start=WED_9H + timedelta(hours=3)), None, "k3")

    assert len(events_in(staff, calendar)) == 2
    assert "DTSTART:20260304T110000Z" in staff.get(created.remote_id).text


def test_a_move_onto_someone_elses_event_is_a_conflict_and_leaves_ours_alone(
    adapter: CaldavAdapter, staff: httpx.Client, calendar: str
) -> None:
    ref = adapter.create(booking(), "k1")
    put(staff, calendar + "meeting.ics", ics("staff-meeting", WED_9H + timedelta(hours=2), 60))

    with pytest.raises(SyncConflict):
        adapter.move(booking(start=WED_9H + timedelta(hours=2)), ref, "k2")

    assert staff.get(ref.remote_id).headers["ETag"] == ref.version


def test_a_move_to_another_practitioner_moves_the_event_to_their_calendar(
    server: CaldavServer, calendar: str, staff: httpx.Client
) -> None:
    other = server.make_calendar()
    config = settings(server, calendars={"martin": calendar, "dupont": other})
    with CaldavAdapter(config, clock=FixedClock(NOW)) as adapter:
        ref = adapter.create(booking(), "k1")

        moved = adapter.move(booking(practitioner_id="dupont"), ref, "k2")

    assert moved.remote_id == other + "box1_2fappt-1.ics"
    assert (events_in(staff, calendar), events_in(staff, other)) == ([], [moved.remote_id])


def test_cancelling_twice_is_fine_even_after_a_staff_edit(adapter: CaldavAdapter, staff: httpx.Client) -> None:
    ref = adapter.create(booking(), "k1")
    put(staff, ref.remote_id, ics("box1/appt-1", WED_9H, 20), **{"If-Match": ref.version or ""})

    adapter.cancel(booking(), ref, "k2")  # stale ETag: 412, read again, delete
    adapter.cancel(booking(), ref, "k3")
    adapter.cancel(booking(7), None, "k4")  # never reached the cloud

    assert staff.get(ref.remote_id).status_code == 404
    assert adapter.find("box1/appt-1") is None


# --- Changes -----------------------------------------------------------------------


def test_changes_first_list_everything_then_only_what_the_staff_changed(
    adapter: CaldavAdapter, staff: httpx.Client, calendar: str
) -> None:
    ours = adapter.create(booking(), "k1")
    put(staff, calendar + "lunch.ics", ics("lunch", WED_9H + timedelta(hours=3), 60))
    put(staff, calendar + "far.ics", ics("far", WED_9H + timedelta(days=90), 60))  # outside the window

    first = adapter.changes(None, *WINDOW)
    assert first.full
    by_id = {item.remote_id: item for item in first.items}
    assert set(by_id) == {ours.remote_id, calendar + "lunch.ics"}
    assert by_id[ours.remote_id].booking_key == "box1/appt-1"
    assert by_id[ours.remote_id].version == ours.version
    assert by_id[calendar + "lunch.ics"].booking_key is None
    assert by_id[calendar + "lunch.ics"].start == WED_9H + timedelta(hours=3)
    assert by_id[calendar + "lunch.ics"].status == "busy"

    put(staff, calendar + "visit.ics", ics("visit", WED_9H + timedelta(hours=5), 30))
    second = adapter.changes(first.cursor, *WINDOW)
    assert not second.full
    assert [(i.remote_id, i.practitioner_id) for i in second.items] == [(calendar + "visit.ics", "martin")]
    assert second.removed == ()

    staff.delete(calendar + "lunch.ics")
    put(staff, calendar + "visit.ics", ics("visit", WED_9H + timedelta(hours=5), 30, "STATUS:CANCELLED"), **{"If-Match": "*"})
    third = adapter.changes(second.cursor, *WINDOW)
    assert third.removed == (calendar + "lunch.ics",)
    assert [(i.remote_id, i.status) for i in third.items] == [(calendar + "visit.ics", "cancelled")]

    assert adapter.changes(third.cursor, *WINDOW).items == ()


def test_an_event_moved_out_of_the_window_is_gone_from_it(
    adapter: CaldavAdapter, staff: httpx.Client, calendar: str
) -> None:
    put(staff, calendar + "lunch.ics", ics("lunch", WED_9H, 60))
    first = adapter.changes(None, *WINDOW)
    etag = staff.get(calendar + "lunch.ics").headers["ETag"]
    put(staff, calendar + "lunch.ics", ics("lunch", WED_9H + timedelta(days=90), 60), **{"If-Match": etag})

    later = adapter.changes(first.cursor, *WINDOW)

    assert (later.items, later.removed) == ((), (calendar + "lunch.ics",))


@pytest.mark.parametrize(
    "cursor",
    ["not json", '{"/box/elsewhere/": "x"}', "BOGUS"],
    ids=["garbage", "other-calendar", "bogus-token"],
)
def test_an_unusable_cursor_gives_a_full_listing(adapter: CaldavAdapter, calendar: str, cursor: str) -> None:
    ours = adapter.create(booking(), "k1")
    if cursor == "BOGUS":
        cursor = '{"%s": "http://radicale.org/ns/sync/%s"}' % (calendar, "0" * 64)

    changes = adapter.changes(cursor, *WINDOW)

    assert changes.full
    assert [i.remote_id for i in changes.items] == [ours.remote_id]
    assert calendar in changes.cursor


# --- Errors and check() --------------------------------------------------------------


def test_check_describes_a_live_server_and_names_a_missing_calendar(
    server: CaldavServer, adapter: CaldavAdapter
) -> None:
    assert adapter.check() == f"CalDAV at {server.url.rstrip('/')}, 1 calendar (martin)"

    missing = settings(server, calendars={"martin": "/box/nope/"})
    with CaldavAdapter(missing) as lost, pytest.raises(SyncError, match="calendar of martin") as caught:
        lost.check()
    assert caught.value.retry is False


def test_a_wrong_password_is_refused_for_good_with_a_message_for_the_staff(
    server: CaldavServer, calendar: str
) -> None:
    wrong = settings(server, password="wrong", calendars={"martin": calendar})
    with CaldavAdapter(wrong) as adapter:
        for attempt in (adapter.check, lambda: adapter.create(booking(), "k1")):
            with pytest.raises(SyncError) as caught:
                attempt()
            assert caught.value.detail == "the CalDAV server refused the user name or password"
            assert caught.value.retry is False


def test_a_server_that_is_down_is_worth_retrying(tmp_path: Path) -> None:
    dead = CaldavSettings(
        base_url=f"http://127.0.0.1:{free_port()}/", username="box", password="x", calendars={"martin": "m/"}
    )
    with CaldavAdapter(dead) as adapter:
        for attempt in (adapter.check, lambda: adapter.create(booking(), "k1"), lambda: adapter.find("k")):
            with pytest.raises(SyncError, match="cannot be reached") as caught:
                attempt()
            assert caught.value.retry is True


@pytest.fixture
def scripted() -> Iterator[Callable[..., CaldavAdapter]]:
    """An adapter talking to a tiny server that answers every request the same way."""
    with ExitStack() as stack:

        def start(status: int, body: bytes = b"", delay_s: float = 0.0) -> CaldavAdapter:
            url = stack.enter_context(scripted_server(status, body, delay_s))
            config = CaldavSettings(base_url=url, username="box", password="x", calendars={"martin": "m/"}, timeout_s=1)
            return stack.enter_context(CaldavAdapter(config))

        yield start


@pytest.mark.parametrize("status", [500, 503, 429])
def test_a_server_error_or_too_many_requests_is_worth_retrying(scripted: Callable[..., CaldavAdapter], status: int) -> None:
    with pytest.raises(SyncError, match=str(status)) as caught:
        scripted(status).create(booking(), "k1")

    assert caught.value.retry is True


def test_a_server_that_does_not_answer_in_time_is_worth_retrying(scripted: Callable[..., CaldavAdapter]) -> None:
    with pytest.raises(SyncError, match="within 1 s") as caught:
        scripted(207, b"<multistatus xmlns='DAV:'/>", delay_s=1.5).find("box1/appt-1")

    assert caught.value.retry is True


@pytest.mark.parametrize(
    ("status", "body", "problem"),
    [
        (207, b"<multistatus xmlns='DAV:'><response>", "not XML"),
        (207, b"<html>hello</html>", "not a multistatus"),
        (207, b"<multistatus xmlns='DAV:'><response><status>HTTP/1.1 200 OK</status></response></multistatus>", "no href"),
        (400, b"", "refused REPORT"),
        (301, b"", "put that URL in the settings"),
        (403, b"<error xmlns='DAV:'><need-privileges/></error>", "403 need-privileges"),
    ],
)
def test_a_broken_or_refusing_server_is_a_clear_error_not_retried(
    scripted: Callable[..., CaldavAdapter], status: int, body: bytes, problem: str
) -> None:
    with pytest.raises(SyncError, match=problem) as caught:
        scripted(status, body).create(booking(), "k1")

    assert caught.value.retry is False


def test_a_malformed_event_in_a_report_is_a_clear_error(scripted: Callable[..., CaldavAdapter]) -> None:
    body = (
        b"<multistatus xmlns='DAV:' xmlns:C='urn:ietf:params:xml:ns:caldav'><sync-token>t1</sync-token>"
        b"<response><href>/m/x.ics</href><propstat><prop><getetag>\"1\"</getetag>"
        b"<C:calendar-data>BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:x\nEND:VEVENT\nEND:VCALENDAR</C:calendar-data>"
        b"</prop><status>HTTP/1.1 200 OK</status></propstat></response></multistatus>"
    )
    with pytest.raises(SyncError, match="/m/x.ics: event 'x' has no DTSTART") as caught:
        scripted(207, body).changes(None, *WINDOW)

    assert caught.value.retry is False


@pytest.mark.parametrize(
    ("body", "problem", "retry"),
    [
        (b"<multistatus xmlns='DAV:'/>", "has no sync-token", False),
        (
            b"<multistatus xmlns='DAV:'><sync-token>t2</sync-token><response><href>/m/</href>"
            b"<status>HTTP/1.1 507 Insufficient Storage</status></response></multistatus>",
            "never ends",
            True,
        ),
    ],
    ids=["no-token", "truncated-forever"],
)
def test_a_sync_report_that_breaks_the_protocol_is_a_clear_error(
    scripted: Callable[..., CaldavAdapter], body: bytes, problem: str, retry: bool
) -> None:
    with pytest.raises(SyncError, match=problem) as caught:
        scripted(207, body).changes(None, *WINDOW)

    assert caught.value.retry is retry


def test_check_says_when_a_collection_is_not_a_calendar(server: CaldavServer) -> None:
    with CaldavAdapter(settings(server, calendars={"martin": "/box/"})) as adapter:  # the user's home
        with pytest.raises(SyncError, match="/box/ .for martin. is not a calendar"):
            adapter.check()


# --- Settings and privacy ------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"base_url": "ftp://cloud.example.fr/"}, "http:// or https://"),
        ({"username": ""}, "username"),
        ({"password": ""}, "exactly one of password and password_file"),
        ({"password_file": Path("/run/secret")}, "exactly one"),
        ({"calendars": {}}, "calendars is empty"),
        ({"calendars": {"martin": "https://other.example.fr/cal/"}}, "calendars.martin must be on the server"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
    ],
)
def test_settings_are_validated_with_a_clear_message(changes: dict[str, Any], problem: str) -> None:
    fields: dict[str, Any] = dict(
        base_url="https://cloud.example.fr/dav/", username="box", password="p", calendars={"martin": "cal/m"}
    )
    with pytest.raises(ConfigError, match=problem):
        CaldavSettings(**{**fields, **changes})


def test_calendar_paths_resolve_against_the_base_url_and_the_password_can_live_in_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "caldav-password"
    secret.write_text("s3cret\n")
    config = CaldavSettings(
        base_url="https://cloud.example.fr/dav", username="box", password_file=secret,
        calendars={"martin": "cal/martin", "dupont": "/other/dupont/"},
    )  # fmt: skip

    assert config.calendar_url("martin") == "https://cloud.example.fr/dav/cal/martin/"
    assert config.calendar_url("dupont") == "https://cloud.example.fr/other/dupont/"
    assert config.read_password() == "s3cret"
    assert "s3cret" not in repr(replace(config, password="s3cret", password_file=None))


def test_resource_names_are_safe_and_never_shared_by_two_keys() -> None:
    keys = ["box1/appt-1", "box1_2fappt-1", "box 1/appt-1", "bôx/appt-1", "a.b-c"]

    names = [resource_name(k) for k in keys]
    assert names[0] == "box1_2fappt-1.ics"
    assert len(set(names)) == len(keys)
    assert all(set(n) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._") for n in names)


def test_no_patient_data_is_logged_at_info(
    adapter: CaldavAdapter, staff: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="appliance.sync.adapters.caldav")
    ref = adapter.create(booking(), "k1")
    adapter.create(booking(), "k1")
    adapter.move(booking(start=WED_9H + timedelta(hours=1)), ref, "k2")
    adapter.changes(None, *WINDOW)
    adapter.cancel(booking(), None, "k3")

    logged = "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.INFO)
    assert "created" in logged and "deleted" in logged
    for secret in ("Durand", "DURAND", "Anne", "1980", "0639981234", "06 39"):
        assert secret not in logged


def test_an_unknown_practitioner_is_refused_for_good(adapter: CaldavAdapter) -> None:
    with pytest.raises(SyncError, match="no CalDAV calendar is configured for practitioner 'dupont'") as caught:
        adapter.create(booking(practitioner_id="dupont"), "k1")

    assert caught.value.retry is False
