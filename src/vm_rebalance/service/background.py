"""Executions running in background threads, so a caller (an MCP tool call, the controller) can
wait for one, poll it, or leave it running.

An execution is never cancelled with its tool call: stopping a cold migration half-way would
leave a VM stopped, so the thread always runs to the end (the executor itself stops starting
moves at the first failure). Only an explicit `Execution.request_cancel` (the MCP tool
`cancel_execution`) stops it early, the safe way, through its cancel token. One execution at a
time per server: changes are serialised, and each execution also holds the cluster's
single-writer lock (a `Run`).

After a failure the execution waits for the human's decision — the same choices the CLI asks
(retry, retry cold, retry on another node, roll back, leave stopped, skip, abort) — which the
caller passes with `Execution.answer` (the MCP tool `resolve_failure`). A cold move whose VM could
not start is held meanwhile; without an answer within ``decision_timeout`` it is rolled back and
the execution stops, so an agent that never answers cannot leave a VM down.
"""

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vm_rebalance.errors import ConfigError, RebalanceError
from vm_rebalance.executor.runners import ExecutionOptions
from vm_rebalance.model import Plan
from vm_rebalance.model.cancel import CancelReason, CancelToken
from vm_rebalance.model.execution import MoveEvent, MoveStatus
from vm_rebalance.render.execution import ProgressTracker, progress_rows
from vm_rebalance.service.execution import FAILURE_CHOICE_HELP, FailureChoice, Run
from vm_rebalance.service.session import Session

DECISION_TIMEOUT_SECONDS = 900.0
"""How long an execution waits for the human's decision after a failure before the safe default
(roll back a held cold move, stop)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FailureQuestion:
    """What an execution waiting for a decision asks."""

    move_id: int
    vm: str
    namespace: str
    error: str
    held: bool
    """The VM is not running (its cold start failed) until the decision."""
    choices: tuple[FailureChoice, ...]
    other_nodes: tuple[str, ...]
    deadline: float
    """time.time() after which the safe default is taken."""
    problem: str = ""
    """Why the last answer could not be carried out (asked again)."""

    def to_document(self) -> dict[str, Any]:
        """The question as tool results carry it."""
        return {
            "move": self.move_id,
            "vm": f"{self.namespace}/{self.vm}",
            "error": self.error,
            "vm_not_running": self.held,
            "choices": [{"choice": c.value, "what": FAILURE_CHOICE_HELP[c]} for c in self.choices],
            "other_nodes": list(self.other_nodes),
            "default_in_seconds": max(0, round(self.deadline - time.time())),
            "problem": self.problem or None,
        }


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
    question: FailureQuestion | None = None
    """Set while the execution waits for the human's decision after a failure."""
    journal_id: str | None = None
    cancel: CancelToken = field(default_factory=CancelToken)
    """Stops the execution the safe way (`request_cancel`: an MCP client's cancel)."""
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _answered: threading.Event = field(default_factory=threading.Event)
    _answer: tuple[FailureChoice, str | None] | None = None

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
        """running / awaiting-decision / finished / error (could not run at all)."""
        if not self.done.is_set():
            return "awaiting-decision" if self.question is not None else "running"
        return "error" if self.error is not None else "finished"

    def answer(self, choice: FailureChoice, node: str | None = None) -> None:
        """The human's decision for the failure the execution waits on.

        Raises:
            ConfigError: it waits for no decision, or ``choice`` does not apply.
        """
        question = self.question
        if question is None:
            raise ConfigError(f"execution {self.plan_id} is not waiting for a decision (state: {self.state})")
        if choice not in question.choices:
            raise ConfigError(
                f"'{choice.value}' does not apply to this failure",
                hint="choose one of: " + ", ".join(c.value for c in question.choices),
            )
        if choice is FailureChoice.RETRY_ELSEWHERE and not node:
            raise ConfigError(
                "retry on another node needs the node",
                hint="nodes that fit now: " + (", ".join(question.other_nodes) or "none"),
            )
        self._answer = (choice, node)
        self.question = None
        self._answered.set()

    def request_cancel(self) -> None:
        """Stop the safe way: no new move starts, moves in flight are cancelled without leaving a VM down;
        a pending decision gets the safe default (a held VM is rolled back)."""
        self.cancel.cancel(CancelReason.CLIENT)
        if self.question is not None:
            self._answer = None
            self.question = None
            self._answered.set()

    def wait_for_answer(self, question: FailureQuestion) -> tuple[FailureChoice, str | None] | None:
        """Ask ``question`` and wait until it is answered or its deadline passes (None)."""
        self._answer = None
        self._answered.clear()
        self.question = question
        self.sequence += 1
        if self.cancel.cancelled:  # cancelled meanwhile: the safe default, without waiting
            self.question = None
            return None
        answered = self._answered.wait(max(0.0, question.deadline - time.time()))
        self.question = None
        return self._answer if answered else None

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


def run_plan(
    execution: Execution,
    session: Session,
    options: ExecutionOptions,
    *,
    decision_timeout: float = DECISION_TIMEOUT_SECONDS,
    command: str = "",
) -> None:
    """Carry out ``execution.plan`` under the cluster's lock, asking after each failure; store the final report."""
    options = dataclasses.replace(options, hold_failed_cold_start=decision_timeout > 0)
    run = Run(
        session,
        execution.plan,
        options=options,
        warnings=execution.warnings,
        command=command or f"MCP execute_plan {execution.plan_id}",
        cancel=execution.cancel,
    )
    execution.journal_id = run.journal_id
    try:
        while True:
            report = run.execute(execution.handle)
            execution.report = report.to_document()
            if not report.failed or report.interrupted or decision_timeout <= 0 or execution.cancel.cancelled:
                break
            if not _decide(execution, run, report.failed[0], decision_timeout):
                break
    finally:
        run.close()
    execution.report = run.report.to_document()


def _decide(execution: Execution, run: Run, failed: Any, decision_timeout: float) -> bool:
    """Ask the caller after a failure; True when the run goes on. No answer in time: the safe default (stop)."""
    problem = ""
    while True:
        question = FailureQuestion(
            move_id=failed.move.id,
            vm=failed.move.vm,
            namespace=failed.move.namespace,
            error=failed.error or "",
            held=bool(run.held()),
            choices=run.choices(),
            other_nodes=run.other_nodes(),
            deadline=time.time() + decision_timeout,
            problem=problem,
        )
        answer = execution.wait_for_answer(question)
        if answer is None:
            log.info("execution %s: no decision in time; taking the safe default", execution.plan_id)
            return False  # Run.close rolls back a held VM
        choice, node = answer
        try:
            return run.choose(choice, node=node)
        except RebalanceError as exc:
            problem = str(exc) + (f" ({exc.hint})" if exc.hint else "")
