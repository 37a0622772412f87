"""Wake the executor as soon as a migration changes, with polling as the fallback.

A daemon thread watches VirtualMachineInstanceMigrations cluster-wide and sets an event on
every change; the executor waits on that event instead of sleeping a full poll interval,
so a freed slot or a finished migration is noticed at once. If the watch cannot be
opened or keeps failing, the thread gives up quietly and the executor simply polls.
"""

import logging
import threading
import time

from vm_rebalance.errors import ClusterError
from vm_rebalance.kube import resources as r
from vm_rebalance.kube.client import KubeClient
from vm_rebalance.kube.views import WatchEventType, watch_event

log = logging.getLogger(__name__)

MAX_FAILURES = 5


class MigrationWatcher:
    """`wait(timeout)` returns early when a migration changed (a `Waker` for the executor)."""

    def __init__(self, client: KubeClient) -> None:
        self._client = client
        self._changed = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.events_seen = 0

    def start(self) -> None:
        """Start watching (idempotent)."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="vmim-watch", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop watching (the thread ends at its next read timeout at the latest)."""
        self._stop.set()
        self._changed.set()
        self._thread = None

    def wake(self) -> None:
        """End the current `wait` at once (the executor's cancel token calls it)."""
        self._changed.set()

    def wait(self, timeout_seconds: float) -> bool:
        """Sleep up to ``timeout_seconds``, less if a migration changed meanwhile.

        Returns:
            True when woken by a change, False when the time ran out (or the watcher is stopped).
        """
        if self._stop.is_set():
            time.sleep(timeout_seconds)  # stopped: a plain sleep
            return False
        woken = self._changed.wait(timeout_seconds)
        self._changed.clear()
        return woken and not self._stop.is_set()

    def _run(self) -> None:
        version: str | None = None
        failures = 0
        while not self._stop.is_set() and failures < MAX_FAILURES:
            try:
                for raw in self._client.watch_events(r.VMIMS, resource_version=version, read_timeout_seconds=5.0):
                    if self._stop.is_set():
                        return
                    event = watch_event(raw)
                    if event.type is WatchEventType.ERROR:
                        version = None  # 410 Gone: start again from now
                        break
                    version = event.resource_version or version
                    if event.type is not WatchEventType.BOOKMARK:
                        self.events_seen += 1
                        self._changed.set()
                failures = 0
            except ClusterError as exc:
                failures += 1
                log.debug("migration watch failed (%s); polling only meanwhile", exc)
                self._stop.wait(min(2.0 * failures, 10.0))
        if failures >= MAX_FAILURES:
            log.debug("migration watch given up; the executor polls")
