"""One cancel token for every way an execution can be asked to stop.

Ctrl-C in the CLI, an MCP client's cancel, a controller's shutdown and a lost leader lease
all call `CancelToken.cancel`; the executor checks `cancelled` between steps, waits on the
token instead of sleeping (so a cancel ends the wait at once) and then takes the one safe
path: stop starting moves and cancel the in-flight ones without leaving a VM down.
Standard library only (a `threading.Event`): safe to trigger from a signal handler's thread,
an event loop or another worker thread.
"""

import threading
from collections.abc import Callable
from enum import StrEnum


class CancelReason(StrEnum):
    """Who asked the execution to stop."""

    INTERRUPT = "interrupted"
    """Ctrl-C / SIGINT in a terminal."""
    CLIENT = "cancelled by the client"
    """An MCP client (or another caller of the library) cancelled the execution."""
    SHUTDOWN = "shutting down"
    """The process is terminating (SIGTERM, a controller shutting down)."""
    LEASE_LOST = "the execution lock was lost"
    """Another process took the single-writer lease."""
    WINDOW_CLOSED = "the maintenance window closed"
    """The controller's maintenance window ended (used to hold an execution: running moves finish)."""


class CancelToken:
    """Set once, read many times; callbacks run once when it is set."""

    __slots__ = ("_callbacks", "_event", "_lock", "_reason")

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._reason: CancelReason | None = None
        self._callbacks: list[Callable[[], None]] = []

    def cancel(self, reason: CancelReason = CancelReason.CLIENT) -> None:
        """Ask the execution to stop; the first reason given is kept."""
        with self._lock:
            if self._event.is_set():
                return
            self._reason = reason
            self._event.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    @property
    def cancelled(self) -> bool:
        """Whether `cancel` was called."""
        return self._event.is_set()

    @property
    def reason(self) -> CancelReason | None:
        """Why it was cancelled (None while it is not)."""
        return self._reason

    def wait(self, timeout_seconds: float) -> bool:
        """Sleep up to ``timeout_seconds``, less if cancelled meanwhile; returns whether it is cancelled."""
        return self._event.wait(max(0.0, timeout_seconds))

    def on_cancel(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` when the token is cancelled (at once if it already is)."""
        with self._lock:
            if not self._event.is_set():
                self._callbacks.append(callback)
                return
        callback()
