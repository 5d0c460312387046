"""How many threads a model runs on: the cores this process may use, at most four.

A 2-core test machine, a 4-core Pi 5 and a 6-core Jetson Orin Nano get what they
have, read at start (``sched_getaffinity`` honours a CPU set given by systemd or a
container, where ``os.cpu_count`` would not). Within a call the recognizer and
the voice mostly take turns, so each may use every core; past four, Whisper base
and Kokoro gain little and the line's own threads would starve.
"""

from __future__ import annotations

import os
from typing import Final

_MAX_THREADS: Final = 4


def default_threads() -> int:
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        usable = os.cpu_count() or 1
    return max(1, min(_MAX_THREADS, usable))
