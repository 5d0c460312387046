"""Telling systemd how we are: READY, STATUS, WATCHDOG (a no-op outside systemd)."""

from __future__ import annotations

import os


def notify(state: str) -> None:
    if not os.environ.get("NOTIFY_SOCKET"):
        return
    from systemd import daemon

    daemon.notify(state)
