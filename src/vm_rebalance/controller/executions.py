"""Carrying out one approved RebalancePlan in a thread, with its journal and progress in the plan's status.

One execution at a time per controller (the leader): migrations are a shared, limited resource and
the executor already runs a plan's moves in parallel within KubeVirt's limits. Two tokens steer a
running execution (`model.cancel.CancelToken`):

- ``hold`` — no new move starts; running migrations finish; the journal stays unfinished and the
  plan resumes later (graceful shutdown, a maintenance window that closes);
- ``cancel`` — the executor's safe path at once: in-flight migrations cancelled, a VM a cold move
  stopped started again (a lost lease, a shutdown that ran out of grace, ``spec.cancel``).
"""

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vm_rebalance import service
from vm_rebalance.controller.metrics import Metrics
from vm_rebalance.controller.status import progress
from vm_rebalance.errors import ClusterError, RebalanceError
from vm_rebalance.model import Plan
from vm_rebalance.model.cancel import CancelReason, CancelToken
from vm_rebalance.service.incluster import InCluster, PlanStatusJournal, vm_ref

log = logging.getLogger(__name__)

PROGRESS_EVERY_SECONDS = 1.0


@dataclass(slots=True, kw_only=True)
class Finished:
    """How an execution ended (what the reconciler writes into the plan's status)."""

    report: dict[str, Any] | None
    complete: bool
    failed: int
    not_attempted: int
    cancelled: CancelReason | None
    held: CancelReason | None
    error: RebalanceError | None
    seconds: float


@dataclass(slots=True, kw_only=True)
class Running:
    """One execution in flight."""

    name: str
    plan: Plan
    cancel: CancelToken = field(default_factory=CancelToken)
    hold: CancelToken = field(default_factory=CancelToken)
    thread: threading.Thread | None = None
    tracking: service.Execution | None = None
    done: threading.Event = field(default_factory=threading.Event)
    finished: Finished | None = None


class Executions:
    """The controller's executions (at most one running)."""

    def __init__(
        self,
        *,
        target: service.Target,
        cluster: InCluster,
        identity: str,
        metrics: Metrics,
        options: service.ExecutionOptions,
        on_finished: Callable[[Running], None],
    ) -> None:
        self.target = target
        self.cluster = cluster
        self.identity = identity
        self.metrics = metrics
        self.options = options
        self.on_finished = on_finished
        self._lock = threading.Lock()
        self.current: Running | None = None

    def busy(self) -> str | None:
        """The plan being executed, if any."""
        with self._lock:
            run = self.current
        return run.name if run is not None and not run.done.is_set() else None

    def start(self, name: str, plan: Plan, *, resume: bool) -> Running:
        """Run ``plan`` (the RebalancePlan ``name``) in a thread; the caller checked nothing else runs."""
        run = Running(name=name, plan=plan)
        run.tracking = service.Execution(plan_id=name, plan=plan)
        run.thread = threading.Thread(target=self._body, args=(run, resume), name=f"execute-{name}", daemon=True)
        with self._lock:
            self.current = run
        self.metrics.slots_in_use.set(0)
        run.thread.start()
        return run

    def hold(self, reason: CancelReason) -> None:
        """Stop starting moves; running ones finish (the execution ends paused, resumable)."""
        with self._lock:
            run = self.current
        if run is not None:
            run.hold.cancel(reason)

    def cancel(self, reason: CancelReason, name: str | None = None) -> None:
        """Stop the safe way at once (optionally only if it is plan ``name``)."""
        with self._lock:
            run = self.current
        if run is not None and (name is None or run.name == name):
            run.cancel.cancel(reason)

    def wait(self, timeout: float) -> bool:
        """Wait for the running execution to end; True when none is running any more."""
        with self._lock:
            run = self.current
        return run is None or run.done.wait(timeout)

    # ------------------------------------------------------------------ the thread

    def _body(self, run: Running, resume: bool) -> None:
        started = time.monotonic()
        finished = Finished(
            report=None, complete=False, failed=0, not_attempted=0, cancelled=None, held=None, error=None, seconds=0.0
        )
        try:
            finished = self._execute(run, resume, started)
        except RebalanceError as exc:
            log.warning("execution of %s could not run: %s", run.name, exc)
            finished.error = exc
        except Exception as exc:  # a bug: keep the controller alive and say so
            log.exception("internal error while executing %s", run.name)
            finished.error = RebalanceError(f"internal error: {type(exc).__name__} — this is a bug in vm-rebalance")
        finally:
            finished.seconds = time.monotonic() - started
            finished.cancelled = run.cancel.reason if run.cancel.cancelled else None
            finished.held = run.hold.reason if run.hold.cancelled else None
            run.finished = finished
            self.metrics.slots_in_use.set(0)
            try:
                self.on_finished(run)
            except Exception:
                log.exception("recording the end of %s failed", run.name)
            run.done.set()

    def _execute(self, run: Running, resume: bool, started: float) -> Finished:
        session = service.Session.open(self.target)
        # The cluster's single-writer lock, as every executing command takes it: a CLI, MCP or
        # controller execution never overlaps another one (a held lock is retried on the next resync).
        lock = session.writer_lock(f"controller plan {run.name}")
        try:
            lock.acquire()
            lock.keep_renewing(lambda: run.cancel.cancel(CancelReason.LEASE_LOST))
            self.metrics.slots.set(session.state.limits.parallel_per_cluster)
            store = PlanStatusJournal(self.cluster, run.name, self.identity)
            earlier = _done_ids(store.load(run.name)) if resume else set()
            executor = session.executor(
                run.plan,
                options=self.options,
                journal_id=run.name,
                fresh=not resume,
                journal_store=store,
                cancel=run.cancel,
                hold=run.hold,
            )
            reporter = _Reporter(self, run)
            result = service.execute_plan(session, run.plan, executor=executor, report=reporter)
            reporter.flush(force=True)
        finally:
            lock.release()
            session.close()
        document = result.to_document()
        self.metrics.count_moves(
            {"method": o.move.method.value, "status": o.status.value}
            for o in result.outcomes
            if o.move.id not in earlier
        )
        return Finished(
            report=document,
            complete=result.complete,
            failed=len(result.failed),
            not_attempted=len(result.not_attempted),
            cancelled=None,
            held=None,
            error=None,
            seconds=time.monotonic() - started,
        )


def _done_ids(journal: dict[str, Any] | None) -> set[int]:
    """Moves an earlier run (another leader) finished: not counted again."""
    return {
        int(m["id"])
        for m in (journal or {}).get("moves") or ()
        if isinstance(m, dict) and m.get("status") == "succeeded" and "id" in m
    }


class _Reporter:
    """The executor's report callback: progress into the status (throttled), Events on the VMs."""

    def __init__(self, executions: Executions, run: Running) -> None:
        self.executions = executions
        self.run = run
        self.last = 0.0
        self.dirty = False
        self.seen: dict[int, str] = {}

    def __call__(self, event: service.MoveEvent) -> None:
        tracking = self.run.tracking
        assert tracking is not None
        tracking.handle(event)
        self.dirty = True
        status = event.status.value
        if self.seen.get(event.move.id) != status:
            self.seen[event.move.id] = status
            self._vm_event(event)
        running = sum(1 for s in self.seen.values() if s == "running")
        self.executions.metrics.slots_in_use.set(running)
        self.flush()

    def _vm_event(self, event: service.MoveEvent) -> None:
        m = event.move
        where = f"{m.source or '(stopped)'} → {m.target}"
        texts = {
            "running": ("MoveStarted", False, f"{m.method.value} move {where} started (plan {self.run.name}, #{m.id})"),
            "succeeded": ("MoveSucceeded", False, f"moved {where} ({m.method.value}; plan {self.run.name}, #{m.id})"),
            "failed": (
                "MoveFailed",
                True,
                f"{m.method.value} move {where} failed: {event.message} (plan {self.run.name})",
            ),
        }
        entry = texts.get(event.status.value)
        if entry is None:
            return
        reason, warning, note = entry
        self.executions.cluster.event(
            vm_ref(m.namespace, m.vm),
            warning=warning,
            reason=reason,
            action="Migrate",
            note=note,
            instance=self.executions.identity,
        )

    def flush(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not self.dirty or (not force and now - self.last < PROGRESS_EVERY_SECONDS):
            return
        tracking = self.run.tracking
        assert tracking is not None
        try:
            self.executions.cluster.fenced_plan_status(
                self.run.name,
                self.executions.identity,
                {"progress": progress(tracking.moves(), len(self.run.plan.moves))},
            )
            self.last, self.dirty = now, False
        except ClusterError as exc:
            log.debug("progress of %s not written: %s", self.run.name, exc)
