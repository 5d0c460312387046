"""What every device simulator shares: its own thread, and callers' actions run on it.

A simulator's state has one owner, its thread. A test calls ``sim.ring(...)``
from its own thread; the simulator runs the action between two reads of its
ports and the caller waits for it, so what the test does next sees the effect.
Before the thread starts (or after it stopped), actions run at once under the lock.

Why a thread and not an asyncio task: the driver under test runs its own event
loop, and a simulator on that loop would stall whenever the driver stalls it, the
very bug (a loop not drained every 20 ms) these tests must catch.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Final, Self

from appliance.line.sim.pty_endpoint import EndpointClosed

_LOGGER = logging.getLogger(__name__)
SUBMIT_TIMEOUT_S: Final = 5.0  # a simulator that does not answer in this long is broken


class DeviceSim:
    """Base of the simulators: ``_poll`` waits for the ports, ``_serve`` handles them."""

    kind = "device"
    """Named in thread names and failure messages."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.RLock()
        self._actions: queue.SimpleQueue[tuple[Callable[[], object], list[BaseException], threading.Event]] = (
            queue.SimpleQueue()
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    # -- what a simulator provides -------------------------------------------------
    def _ports_open(self) -> bool:
        raise NotImplementedError

    def _poll(self) -> object:
        """Wait (briefly, without the lock) for the ports; returns what is ready."""
        raise NotImplementedError

    def _serve(self, ready: object) -> None:
        """One step under the lock: advance time, read what is ready, write what is due."""
        raise NotImplementedError

    def _close_ports(self) -> None:
        raise NotImplementedError

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> Self:
        self._thread = threading.Thread(target=self._run, name=f"{self.kind}-sim-{self._name}", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop the thread and close the ports; re-raise whatever crashed the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=SUBMIT_TIMEOUT_S)
        self._close_ports()
        if self._error is not None:
            raise RuntimeError(f"the {self.kind} simulator thread failed") from self._error

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- actions from other threads -------------------------------------------------------
    def _submit(self, action: Callable[[], object]) -> None:
        """Run ``action`` on the simulator thread and wait for it; its exception is raised here."""
        thread = self._thread
        if thread is None or not thread.is_alive():
            with self._lock:
                action()
            return
        done = threading.Event()
        failure: list[BaseException] = []
        self._actions.put((action, failure, done))
        if not done.wait(SUBMIT_TIMEOUT_S):
            raise TimeoutError(f"the {self.kind} simulator thread did not respond")
        if failure:
            raise failure[0]

    def _run_actions(self) -> None:
        while True:
            try:
                action, failure, done = self._actions.get_nowait()
            except queue.Empty:
                return
            try:
                action()
            except Exception as err:  # handed back to the caller of _submit
                failure.append(err)
            done.set()

    def _run(self) -> None:
        try:
            while not self._stop.is_set() and self._ports_open():
                ready = self._poll()
                with self._lock:
                    self._run_actions()
                    if not self._ports_open():
                        break
                    self._serve(ready)
        except EndpointClosed:
            pass
        except BaseException as err:  # surfaced by close(): a dead simulator must fail the test
            _LOGGER.exception("%s simulator failed", self.kind)
            self._error = err
        finally:
            self._run_actions()
