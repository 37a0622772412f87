"""Executions running in background threads, so a caller (an MCP tool call, the controller) can
wait for one, poll it, or leave it running.

An execution is never cancelled with its tool call: stopping a cold migration half-way would
leave a VM stopped, so the thread always runs to the end (the executor itself stops starting
moves at the first failure). One execution at a time per server: changes are serialised.
"""

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vm_rebalance.errors import ConfigError, RebalanceError
from vm_rebalance.executor.runners import ExecutionOptions
from vm_rebalance.model import Plan
from vm_rebalance.model.execution import MoveEvent, MoveStatus
from vm_rebalance.render.execution import ProgressTracker, progress_rows
from vm_rebalance.service.execution import execute_plan
from vm_rebalance.service.session import Session

log = logging.getLogger(__name__)

MAX_EXECUTIONS = 20
_FINISHED = (MoveStatus.SUCCEEDED, MoveStatus.FAILED, MoveStatus.SKIPPED, MoveStatus.NOT_ATTEMPTED)


@dataclass(slots=True, kw_only=True)
class Execution:
    """One plan being (or having been) carried out; updated from the executor's thread."""

    plan_id: str
    plan: Plan
    warnings: tuple[str, ...] = ()
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    tracker: ProgressTracker | None = None
    sequence: int = 0
    """Bumped on every change of a move's status or phase (drives progress notifications)."""
    report: dict[str, Any] | None = None
    error: RebalanceError | None = None
    done: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if self.tracker is None:
            self.tracker = ProgressTracker(self.plan)

    def handle(self, event: MoveEvent) -> None:
        """The executor's report callback."""
        assert self.tracker is not None
        with self._lock:
            previous = self.tracker.events.get(event.move.id)
            self.tracker.handle(event)
            if previous is None or (previous.status, previous.phase) != (event.status, event.phase):
                self.sequence += 1

    @property
    def state(self) -> str:
        """running / finished / failed (could not run at all)."""
        if not self.done.is_set():
            return "running"
        return "error" if self.error is not None else "finished"

    def progress(self) -> tuple[int, float, str]:
        """(sequence, progress value, message): moves finished plus a fraction per change, and the latest step."""
        assert self.tracker is not None
        with self._lock:
            events = dict(self.tracker.events)
            sequence = self.sequence
        finished = sum(1 for e in events.values() if e.status in _FINISHED)
        latest = max(events.values(), key=lambda e: e.elapsed_seconds, default=None) if events else None
        running = [e for e in events.values() if e.status is MoveStatus.RUNNING]
        shown = running[-1] if running else latest
        message = f"{finished}/{len(self.plan.moves)} moves finished"
        if shown is not None:
            m = shown.move
            message += f"; #{m.id} {m.namespace}/{m.vm} {m.source or '-'} → {m.target}: {shown.phase}" + (
                f" ({shown.message})" if shown.message else ""
            )
        return sequence, float(finished), message

    def moves(self) -> list[dict[str, Any]]:
        """Per-move progress rows (id, VM, from, to, method, status, phase, elapsed, message)."""
        assert self.tracker is not None
        with self._lock:
            return progress_rows(self.tracker, self.report)


class Executions:
    """The executions of this server, newest last; at most one runs at a time."""

    def __init__(self, *, capacity: int = MAX_EXECUTIONS) -> None:
        self.capacity = capacity
        self._items: dict[str, Execution] = {}
        self._busy = threading.Lock()
        self._lock = threading.Lock()
        self.busy_with: str | None = None

    def claim(self, what: str) -> None:
        """Reserve the right to change the cluster.

        Raises:
            ConfigError: another change is running.
        """
        if not self._busy.acquire(blocking=False):
            raise ConfigError(
                f"another change is running ({self.busy_with}); one change at a time",
                hint="wait for it: migration_status (with wait_seconds) reports its progress",
            )
        self.busy_with = what

    def release(self) -> None:
        """Give the reservation back."""
        self.busy_with = None
        self._busy.release()

    def start(self, execution: Execution, session: Session, run: Callable[[Execution], None]) -> None:
        """Run ``run(execution)`` in a daemon thread (the caller claimed first); closes the session after."""
        with self._lock:
            self._items.pop(execution.plan_id, None)
            self._items[execution.plan_id] = execution
            while len(self._items) > self.capacity:
                oldest = next(iter(self._items))
                if not self._items[oldest].done.is_set():
                    break
                del self._items[oldest]

        def body() -> None:
            try:
                run(execution)
            except RebalanceError as exc:
                execution.error = exc
            except Exception as exc:  # a bug: keep the server alive, say so without details
                log.error("internal error while executing plan %s: %s", execution.plan_id, type(exc).__name__)
                log.debug("traceback", exc_info=True)
                execution.error = RebalanceError(
                    f"internal error: {type(exc).__name__} — this is a bug in "
                    "vm-rebalance; check the cluster with migration_status"
                )
            finally:
                session.close()
                execution.finished_at = time.time()
                self.release()
                execution.done.set()

        threading.Thread(target=body, name=f"execute-{execution.plan_id}", daemon=True).start()

    def get(self, plan_id: str | None) -> Execution | None:
        """The execution of ``plan_id`` (None: the newest one)."""
        with self._lock:
            if plan_id is None:
                return next(reversed(self._items.values()), None)
            return self._items.get(plan_id.strip())

    def all(self) -> list[Execution]:
        """Every remembered execution, oldest first."""
        with self._lock:
            return list(self._items.values())


def run_plan(execution: Execution, session: Session, options: ExecutionOptions) -> None:
    """Carry out ``execution.plan`` and store its final report on the execution."""
    result = execute_plan(
        session, execution.plan, options=options, report=execution.handle, warnings=execution.warnings
    )
    execution.report = result.to_document()
