"""The iCalendar writer and reader of the CalDAV adapter: round trips, folding, and
what the staff's calendar clients write, malformed input included."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.errors import SyncError
from appliance.sync.adapters import ical
from appliance.sync.adapters.ical import Event, parse_events, write_event

PARIS = ZoneInfo("Europe/Paris")
START = datetime(2026, 3, 4, 9, 0, tzinfo=PARIS)
STAMP = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

# Text a patient's name or a reason can hold: anything printable, plus the
# characters iCalendar must escape. Control characters are dropped on writing
# (tested apart), surrogates cannot be encoded at all.
TEXT = st.text(
    st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from(list("\n\t\\;,:\"' ")),
    max_size=300,
)


def event(**changes: object) -> Event:
    fields: dict[str, object] = dict(
        uid="box1/appt-12", start=START, end=START + timedelta(minutes=20),
        summary="RDV Consultation – DURAND Anne", description="Né(e) le : 17/05/1980", status="CONFIRMED",
    )  # fmt: skip
    fields.update(changes)
    return Event(**fields)  # type: ignore[arg-type]


def calendar(*event_lines: str) -> str:
    return "\r\n".join(["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Staff//Client//EN", *event_lines, "END:VCALENDAR"])


def vevent(*lines: str) -> list[str]:
    return ["BEGIN:VEVENT", "UID:staff-1", "DTSTAMP:20260301T120000Z", *lines, "END:VEVENT"]


# --- Writing -----------------------------------------------------------------------


def test_an_event_is_written_in_utc_with_crlf_line_ends() -> None:
    text = write_event(event(), stamp=STAMP)

    assert text.startswith("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n")
    assert text.endswith("END:VEVENT\r\nEND:VCALENDAR\r\n")
    assert "\r\nDTSTART:20260304T080000Z\r\n" in text  # 9:00 in Paris in winter
    assert "\r\nDTEND:20260304T082000Z\r\n" in text
    assert "\r\nDTSTAMP:20260301T120000Z\r\n" in text
    assert "\r\nUID:box1/appt-12\r\n" in text
    assert "\r\nSTATUS:CONFIRMED\r\n" in text
    assert "\n" not in text.replace("\r\n", "")


def test_special_characters_are_escaped() -> None:
    text = write_event(event(summary="a\\b;c,d\ne"), stamp=STAMP)

    assert "\r\nSUMMARY:a\\\\b\\;c\\,d\\ne\r\n" in text


def test_control_characters_are_dropped_not_sent() -> None:
    text = write_event(event(summary="Anne\x00\x07 Durand\r\nB"), stamp=STAMP)

    assert parse_events(text)[0].summary == "Anne Durand\nB"


def test_a_naive_time_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="aware"):
        write_event(event(start=datetime(2026, 3, 4, 9, 0)), stamp=STAMP)


def test_long_lines_are_folded_at_75_octets_without_cutting_a_character() -> None:
    text = write_event(event(description="é" * 100 + "x" * 100), stamp=STAMP)

    lines = text.split("\r\n")
    assert max(len(line.encode()) for line in lines) == 75
    assert any(line.startswith(" ") for line in lines)
    assert parse_events(text)[0].description == "é" * 100 + "x" * 100


@given(summary=TEXT, description=TEXT, uid=TEXT.filter(lambda s: s.strip() != ""))
def test_text_survives_a_round_trip(summary: str, description: str, uid: str) -> None:
    text = write_event(event(summary=summary, description=description, uid=uid), stamp=STAMP)

    assert all(len(line.encode()) <= 75 for line in text.split("\r\n"))
    (back,) = parse_events(text)
    assert (back.summary, back.description, back.uid) == (summary, description, uid)
    assert (back.start, back.end) == (START, START + timedelta(minutes=20))


@given(line=TEXT)
def test_fold_then_unfold_is_the_identity(line: str) -> None:
    line = "X-NOTE:" + line.replace("\n", " ")  # a content line never holds a raw newline

    assert ical.unfold(ical.fold(line)) == [line]


# --- Reading what the staff's clients write ----------------------------------------


def test_a_tzid_time_is_read_in_its_zone() -> None:
    (read,) = parse_events(calendar(*vevent("DTSTART;TZID=Europe/Paris:20260304T090000", "DURATION:PT45M")))

    assert read.start == START
    assert read.end == START + timedelta(minutes=45)


def test_floating_times_and_unknown_zones_are_the_practices_local_time() -> None:
    text = calendar(
        *vevent("DTSTART:20260304T090000", "DTEND;TZID=\"Romance Standard Time\":20260304T093000")
    )

    (read,) = parse_events(text, default_tz=PARIS)
    assert (read.start, read.end) == (START, START + timedelta(minutes=30))


def test_an_all_day_event_lasts_the_day() -> None:
    (read,) = parse_events(calendar(*vevent("DTSTART;VALUE=DATE:20260304")), default_tz=PARIS)

    assert read.all_day
    assert read.start == datetime(2026, 3, 4, tzinfo=PARIS)
    assert read.end == datetime(2026, 3, 5, tzinfo=PARIS)


def test_status_transparency_and_recurrence_are_read() -> None:
    (read,) = parse_events(
        calendar(*vevent("DTSTART:20260304T080000Z", "STATUS:cancelled", "TRANSP:TRANSPARENT", "RRULE:FREQ=WEEKLY"))
    )

    assert read.cancelled and read.transparent and read.recurring


def test_an_alarm_inside_an_event_does_not_replace_its_description() -> None:
    text = calendar(
        *vevent(
            "DTSTART:20260304T080000Z",
            "DESCRIPTION:the event",
            "BEGIN:VALARM",
            "ACTION:DISPLAY",
            "DESCRIPTION:the alarm",
            "TRIGGER:-PT15M",
            "END:VALARM",
        )
    )

    assert parse_events(text)[0].description == "the event"


def test_lf_line_ends_and_quoted_parameters_with_colons_are_read() -> None:
    text = calendar(*vevent('ORGANIZER;CN="Dr: Martin; cabinet":mailto:m@example.fr', "DTSTART:20260304T080000Z"))

    (read,) = parse_events(text.replace("\r\n", "\n"))
    assert read.start == START


def test_a_task_gives_no_event() -> None:
    text = calendar("BEGIN:VTODO", "UID:t1", "SUMMARY:call back", "END:VTODO")

    assert parse_events(text) == []


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "does not start with BEGIN:VCALENDAR"),
        ("BEGIN:VEVENT\r\nEND:VEVENT", "does not start with BEGIN:VCALENDAR"),
        (" folded first line", "continuation line"),
        (calendar(*vevent("DTSTART:20260304T080000Z"))[:-len("END:VCALENDAR")], "ends inside VCALENDAR"),
        (calendar("BEGIN:VEVENT", "UID:x", "DTSTART:20260304T080000Z", "END:VTODO"), "END:VTODO where END:VEVENT"),
        (calendar("BEGIN:VEVENT", "DTSTART:20260304T080000Z", "END:VEVENT"), "no UID"),
        (calendar("BEGIN:VEVENT", "UID:x", "END:VEVENT"), "has no DTSTART"),
        (calendar(*vevent("DTSTART:2026-03-04 08:00"))[:], "not a date or date-time"),
        (calendar(*vevent("DTSTART:20261304T080000Z")), "not a date or date-time"),
        (calendar(*vevent("DTSTART;VALUE=DATE:2026030")), "not a date or date-time"),
        (calendar(*vevent("DTSTART:20260304T080000Z", "DURATION:PT")), "not a duration"),
        (calendar(*vevent("DTSTART:20260304T080000Z", "DTEND:20260304T070000Z")), "ends before it starts"),
        (calendar(*vevent("DTSTART20260304T080000Z")), "no ':'"),
        (calendar(*vevent(";X=1:value")), "without a property name"),
        (calendar(*vevent('DTSTART;TZID="Europe/Paris:20260304T080000')), "unclosed quote"),
        (calendar(*vevent("DTSTART;TZID:20260304T080000")), "without '='"),
        (calendar(*vevent("DTSTART:20260304T080000Z")) + "\r\nBEGIN:VEVENT", "after END:VCALENDAR"),
    ],
)
def test_malformed_calendar_data_is_a_sync_error_that_says_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(SyncError, match=problem) as caught:
        parse_events(text)

    assert caught.value.code == "ical-malformed"
    assert caught.value.retry is False


# Content lines built from the properties the reader interprets, with good,
# bad and absurd values: whatever the mix, the answer is events or a SyncError.
_LINE = st.builds(
    "{}{}:{}".format,
    st.sampled_from(["DTSTART", "DTEND", "DURATION", "UID", "STATUS", "TRANSP", "BEGIN", "END", "RRULE", "RECURRENCE-ID"]),
    st.sampled_from(["", ";VALUE=DATE", ";TZID=Europe/Paris", ';TZID="a:b"', ";TZID=", ";TZID=../../etc", ";TZID=/Europe/Paris"]),
    st.sampled_from(["20260304T080000Z", "20260304", "99991231", "VEVENT", "VALARM", "PT1H", "-PT5M", "P99999999999W"])
    | st.text(max_size=20),
)


@given(st.lists(_LINE, max_size=12))
def test_nothing_but_a_sync_error_escapes_the_reader(lines: list[str]) -> None:
    text = "\r\n".join(["BEGIN:VCALENDAR", "BEGIN:VEVENT", "UID:u", "DTSTART:20260304T080000Z", *lines])
    try:
        parse_events(text)
    except SyncError as err:
        assert err.code == "ical-malformed"
