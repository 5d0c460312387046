"""Configuration: embedded defaults, and every mistake named with its file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.config import Config, load_config
from appliance.errors import ConfigError


def test_no_file_means_the_embedded_defaults() -> None:
    config = load_config(None)
    assert config == Config()
    assert (config.line, config.practice, config.web.port) == ("sim", "demo", 8080)


def test_a_file_and_overrides_are_layered(tmp_path: Path) -> None:
    path = tmp_path / "box.toml"
    path.write_text('practice = "demo"\n[web]\nport = 8443\n[speech.endpoint]\nsilence_s = 0.8\n')
    config = load_config(path, data_dir=tmp_path / "data")
    assert config.web.port == 8443 and config.speech.endpoint.silence_s == 0.8
    assert config.data_dir == tmp_path / "data"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("colour = 'blue'\n", "unknown key(s) colour"),
        ("[web]\nprot = 80\n", "unknown key(s) web.prot"),
        ("[web]\nport = 99999\n", "web.port must be 1-65535"),
        ("web = 3\n", "[web] must be a table"),
        ("line = '/dev/ttyACM0'\n", "line must start with one of sim, modem, gsm"),
        ("line = 'modem:'\n", "needs a port"),
        ("line = 'sim:zoom9999'\n", "no simulated device 'zoom9999' (known: sim, sim:usr5637, sim:cx93001"),
        ("[answering]\nduring_hours = 'later'\n", "answering.during_hours must be one of now, after_rings, never"),
        ("[answering]\nhours = ['weekdays']\n", "answering.hours: 'weekdays' must look like"),
        ("line = 'gsm:/dev/ttyUSB2'\n", "needs its audio: either a serial audio port"),
        ("line = 'gsm:/dev/ttyUSB2,audio=/dev/ttyUSB1,card=Android'\n", "not both"),
        ("line = 'gsm:/dev/ttyUSB0,profile=sim800,card=USB,card_rate=11025'\n", "card_rate must be 8000, 16000"),
        ("line = 'modem:/dev/ttyACM0,speed=9600'\n", "unknown option 'speed=9600'"),
        ("[speech.endpoint]\nsilence_s = 9\n", "silence_s"),
        ("practice = \n", "not valid TOML"),
    ],
)
def test_mistakes_name_the_file_and_the_key(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "box.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value) and problem in str(err.value)


def test_run_line_on_the_command_line_overrides_the_file_and_is_validated(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "box.toml"
    path.write_text("line = 'modem:/dev/ttyACM0'\n")
    assert load_config(path, line="soundcard").line == "soundcard"
    done = subprocess.run(
        [sys.executable, "-m", "appliance", "--config", str(path), "run", "--line", "fax:/dev/ttyS0"],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2
    assert "line must start with one of sim, modem, gsm, soundcard" in done.stderr
    assert "Traceback" not in done.stderr
