"""The journal never carries a caller's phone number."""

from __future__ import annotations

import logging

import pytest

from appliance.system.logs import RedactingFilter, redact


@pytest.mark.parametrize(
    "text",
    ["appel de 0612345678", "appel de 06 12 34 56 78", "appel de +33 6 12 34 56 78", "n° 06.12.34.56.78"],
)
def test_phone_numbers_are_masked(text: str) -> None:
    assert "[phone]" in redact(text)
    assert "34" not in redact(text).replace("[phone]", "")


def test_times_and_counts_are_left_alone() -> None:
    assert redact("call sim-3 ended after 12 turns at 09:30, 842 ms") == "call sim-3 ended after 12 turns at 09:30, 842 ms"


def test_the_filter_rewrites_the_record_it_lets_through() -> None:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "caller %s rang", ("0612345678",), None)
    assert RedactingFilter().filter(record)
    assert record.getMessage() == "caller [phone] rang"
