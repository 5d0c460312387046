"""What the setup page saves: an overlay in the data directory, validated whole
before anything is written, written atomically, read back over the installer's file."""

from __future__ import annotations

import logging
import tomllib
from datetime import date, time
from importlib import resources
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.config import load_config
from appliance.errors import ConfigError
from appliance.settings_file import dumps, overlay_path, read_overlay, save_practice, save_settings


def test_a_saved_change_is_laid_over_the_installers_file_and_the_command_line_wins(tmp_path: Path) -> None:
    installer = tmp_path / "box.toml"
    installer.write_text('[answering]\nduring_hours = "now"\nrings = 4\n[retention]\nmessages_days = 60\n')

    save_settings(installer, tmp_path, {"answering": {"during_hours": "after_rings"}})

    config = load_config(installer, data_dir=tmp_path)
    assert (config.answering.during_hours, config.answering.rings) == ("after_rings", 4)
    assert config.retention.messages_days == 60
    assert read_overlay(tmp_path) == {"answering": {"during_hours": "after_rings"}}
    assert load_config(installer, data_dir=tmp_path, line="sim:usr5637").line == "sim:usr5637"


def test_a_change_the_box_refuses_names_the_setting_and_writes_nothing(tmp_path: Path) -> None:
    save_settings(None, tmp_path, {"retention": {"messages_days": 30}})
    before = overlay_path(tmp_path).read_bytes()

    with pytest.raises(ConfigError, match="retention.messages_days must be a whole number"):
        save_settings(None, tmp_path, {"retention": {"messages_days": 0}, "answering": {"rings": 3}})

    assert overlay_path(tmp_path).read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["settings.toml"], "no temporary file left behind"


def test_a_broken_overlay_on_disk_does_not_stop_the_box_answering(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    overlay_path(tmp_path).write_text('[answering]\nduring_hours = "sometimes"\n')

    with caplog.at_level(logging.ERROR):
        config = load_config(None, data_dir=tmp_path)

    assert config.answering.during_hours == "now"
    assert "ignoring the settings saved from the web page" in caplog.text and "settings.toml" in caplog.text


def test_a_practice_described_on_the_page_is_validated_then_used(tmp_path: Path) -> None:
    demo = tomllib.loads((resources.files("appliance.agenda") / "practices" / "demo.toml").read_text(encoding="utf-8"))
    demo["name"] = "Cabinet du Parc"
    demo["closures"] = [{"start": date(2026, 12, 24), "end": date(2026, 12, 26), "reason": "Noël"}]

    config = save_practice(None, tmp_path, demo)

    assert config.practice == str(tmp_path / "practice.toml")
    from appliance.agenda.practice import resolve_practice

    assert resolve_practice(load_config(None, data_dir=tmp_path).practice).name == "Cabinet du Parc"

    broken = {**demo, "reasons": [{**demo["reasons"][0], "duration_min": 0}]}
    with pytest.raises(ConfigError, match="duration_min must be 5-240"):
        save_practice(None, tmp_path, broken)
    assert resolve_practice(config.practice).reasons[0].duration_min == demo["reasons"][0]["duration_min"]


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
_scalar = st.one_of(_text, st.integers(-10**9, 10**9), st.booleans(), st.floats(allow_nan=False, allow_infinity=False),
                    st.dates(), st.times().map(lambda t: t.replace(microsecond=0, tzinfo=None)))
_keys = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12)


@given(st.dictionaries(_keys, st.one_of(
    _scalar,
    st.lists(_text, max_size=4),
    st.dictionaries(_keys, _scalar, max_size=4),
    st.lists(st.dictionaries(_keys, _scalar, min_size=1, max_size=3), min_size=1, max_size=3),
), max_size=6))
def test_what_is_written_reads_back_exactly(table: dict) -> None:  # type: ignore[type-arg]
    assert tomllib.loads(dumps(table)) == table


def test_times_and_dates_are_written_as_toml_values() -> None:
    assert dumps({"opens": time(8, 30), "day": date(2026, 5, 1)}) == "opens = 08:30:00\nday = 2026-05-01\n"
