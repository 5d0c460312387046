"""Callers' actions run on a simulator's own thread, so its state has one owner.

A test calls ``sim.ring(...)`` from its own thread; the simulator thread runs the
action between two reads of its port and the caller waits for it, so what the
test does next sees the effect. Before the thread starts (or after it stopped),
actions run at once under the simulator's lock.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Final

SUBMIT_TIMEOUT_S: Final = 5.0  # a simulator that does not answer in this long is broken


class ActionInbox:
    def __init__(self, name: str, lock: threading.RLock) -> None:
        self._name = name
        self._lock = lock
        self._queue: queue.SimpleQueue[tuple[Callable[[], object], list[BaseException], threading.Event]] = (
            queue.SimpleQueue()
        )

    def submit(self, action: Callable[[], object], thread: threading.Thread | None) -> None:
        """Run ``action`` on ``thread`` and wait for it; its exception is raised here."""
        if thread is None or not thread.is_alive():
            with self._lock:
                action()
            return
        done = threading.Event()
        failure: list[BaseException] = []
        self._queue.put((action, failure, done))
        if not done.wait(SUBMIT_TIMEOUT_S):
            raise TimeoutError(f"the {self._name} simulator thread did not respond")
        if failure:
            raise failure[0]

    def drain(self) -> None:
        """On the simulator thread: run every waiting action."""
        while True:
            try:
                action, failure, done = self._queue.get_nowait()
            except queue.Empty:
                return
            try:
                action()
            except Exception as err:  # handed back to the caller of submit
                failure.append(err)
            done.set()
