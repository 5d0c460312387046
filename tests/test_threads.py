"""Models run on the cores the box may use, up to four."""

from __future__ import annotations

import os

import pytest

from appliance.speech.asr import WhisperSettings
from appliance.speech.threads import default_threads
from appliance.speech.tts import KokoroSettings


@pytest.mark.parametrize(("cores", "threads"), [({0}, 1), ({0, 1}, 2), (set(range(4)), 4), (set(range(12)), 4)])
def test_threads_follow_the_cores_this_process_may_use(monkeypatch, cores, threads) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: cores)
    assert default_threads() == threads
    assert WhisperSettings().cpu_threads == threads
    assert KokoroSettings().threads == threads


def test_a_setting_still_wins(monkeypatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    assert WhisperSettings(cpu_threads=1).cpu_threads == 1
