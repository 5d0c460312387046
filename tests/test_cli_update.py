"""`appliance update` is the update module's command line, on the configuration's data directory."""

from __future__ import annotations

import subprocess
import sys

from .conftest import REPO


def appliance(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "appliance", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=60)


def test_its_own_help_is_shown() -> None:
    done = appliance("update", "--help")
    assert done.returncode == 0
    assert "install" in done.stdout and "trial-reboot" in done.stdout


def test_a_missing_bundle_is_a_clear_refusal(tmp_path) -> None:
    done = appliance("--data-dir", str(tmp_path), "update", "install", str(tmp_path / "box.raucb"))
    assert done.returncode == 1
    assert "no such bundle file" in done.stderr and "Traceback" not in done.stderr


def test_other_commands_still_refuse_unknown_options() -> None:
    done = appliance("run", "--bogus")
    assert done.returncode == 2 and "unrecognized arguments: --bogus" in done.stderr
