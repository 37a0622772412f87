"""One move carried out step by step: live (a migration object) or cold (stop, pin, start).

A runner never blocks: `step()` reads the cluster once, advances its state machine and
returns whether the move is over, so the engine can interleave several moves, respect
the limits and stop starting new ones at the first failure. Every state change is written
to the journal first, so a crash at any point can be resumed from the journalled `Step`.
Runners see the cluster through typed views and classified errors (kube/): they decide on
phases, statuses and `Rejection` kinds, and end every failed move with a `FailureKind`.
"""

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, assert_never

from vm_rebalance.errors import ClusterError, InfeasiblePlanError, ResourceNotFoundError
from vm_rebalance.executor.failures import failure_of, rejection_text
from vm_rebalance.executor.journal import Journal, MoveRecord, RecordStatus, Step
from vm_rebalance.executor.kubevirt import migration_name, supports_added_node_selector
from vm_rebalance.kube.errors import ApiRejectedError, Rejection
from vm_rebalance.kube.kubevirt import KubeVirtApi
from vm_rebalance.kube.views import MigrationPhase, MigrationView, PinOwner, PrintableStatus, VmiView
from vm_rebalance.model import GIB, MigrationMethod, Move
from vm_rebalance.model.execution import FailureKind, MoveEvent, MoveStatus, Outcome, Report

log = logging.getLogger(__name__)

Clock = Callable[[], float]
DEFAULT_TIMEOUT_PER_GIB = 150.0
MAX_CONSECUTIVE_ERRORS = 8
"""A move is given up (safely) after this many ticks in a row whose reads of it all failed."""

Listed = Mapping[tuple[str, str], MigrationView]
"""The cluster's unfinished migrations by (namespace, name), listed once per tick by the engine."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionOptions:
    """How moves are carried out."""

    timeout_per_gib_seconds: float | None = None
    """Live migration timeout per GiB of guest memory; None: the cluster's completionTimeoutPerGiB
    (KubeVirt CR), which the executor fills in (KubeVirt's default is 150)."""
    min_timeout_seconds: float = 120.0
    stop_timeout_seconds: float = 300.0
    start_timeout_seconds: float = 600.0
    poll_interval_seconds: float = 2.0
    replace_affinity: bool = False
    """Allow replacing a node pin that vm-rebalance did not add (the user agreed)."""
    unpin_after_cold: bool = False
    """Remove the pin right after a successful cold move (else offer `unpin`)."""
    sequential: bool = False
    bandwidth_bytes_per_second: float = 1 * GIB
    """Used for progress estimates only."""

    def live_timeout(self, move: Move) -> float:
        """How long a live migration of this move may take."""
        gib = max(move.guest_memory_bytes, move.memory_bytes) / GIB
        return max(self.min_timeout_seconds, self.per_gib * gib)

    @property
    def per_gib(self) -> float:
        """The timeout per GiB in force."""
        return self.timeout_per_gib_seconds if self.timeout_per_gib_seconds is not None else DEFAULT_TIMEOUT_PER_GIB

    def live_estimate(self, move: Move) -> float:
        """A rough duration estimate for progress displays."""
        return 10.0 + max(move.guest_memory_bytes, move.memory_bytes) / self.bandwidth_bytes_per_second


def failure_reason(migration: MigrationView | None, vmi: VmiView | None) -> str:
    """The best explanation KubeVirt gives for a failed migration (the VMI's own state first)."""
    if vmi is not None and vmi.migration is not None and vmi.migration.failure_reason:
        return vmi.migration.failure_reason
    if migration is not None and migration.failure_reason:
        return migration.failure_reason
    return "the migration failed (KubeVirt gave no reason)"


class Runner:
    """Common state of a move being carried out."""

    def __init__(
        self,
        move: Move,
        *,
        api: KubeVirtApi,
        journal: Journal,
        options: ExecutionOptions,
        report: Report,
        clock: Clock = time.monotonic,
        plan_id: str,
        kubevirt_version: str | None,
    ) -> None:
        self.move = move
        self.api = api
        self.journal = journal
        self.options = options
        self.report = report
        self.clock = clock
        self.plan_id = plan_id
        self.kubevirt_version = kubevirt_version
        self.started = clock()
        self.outcome: Outcome | None = None
        previous = journal.record(move.id)
        self.record = previous or MoveRecord(
            id=move.id, vm=move.vm, namespace=move.namespace, method=move.method.value, target=move.target
        )
        self.record.method = move.method.value
        self.record.target = move.target
        self._last_phase = ""

    @property
    def elapsed(self) -> float:
        """Seconds since this runner started."""
        return self.clock() - self.started

    def save(self, **changes: Any) -> None:
        """Update the journal record."""
        for key, value in changes.items():
            setattr(self.record, key, value)
        self.journal.update(self.record)

    def emit(self, phase: str, *, message: str = "", estimate: float | None = None) -> None:
        """Report progress (only on a phase change, or with a message)."""
        if phase == self._last_phase and not message:
            return
        self._last_phase = phase
        self.report(
            MoveEvent(
                move=self.move,
                status=MoveStatus.RUNNING,
                phase=phase,
                elapsed_seconds=self.elapsed,
                estimate_seconds=estimate,
                message=message,
            )
        )

    def finish(
        self,
        status: MoveStatus,
        *,
        error: str | None = None,
        failure: FailureKind | None = None,
        duration: float | None = None,
        final_node: str | None = None,
        pinned: bool = False,
        notes: tuple[str, ...] = (),
    ) -> bool:
        """Record the outcome; always returns True (the move is over)."""
        duration = duration if duration is not None else self.elapsed
        self.save(
            status=RecordStatus(status.value), error=error, failure=failure, duration_seconds=duration, pinned=pinned
        )
        self.outcome = Outcome(
            move=self.move,
            status=status,
            duration_seconds=duration,
            error=error,
            failure=failure,
            migration_name=self.record.migration,
            final_node=final_node,
            pinned=pinned,
            notes=notes,
        )
        self.report(
            MoveEvent(
                move=self.move,
                status=status,
                phase=status.value,
                elapsed_seconds=self.elapsed,
                message=error or "",
                failure=failure,
            )
        )
        return True

    def fail(self, failure: FailureKind, error: str, *, final_node: str | None = None) -> bool:
        """End the move as failed with ``failure``; always returns True."""
        return self.finish(MoveStatus.FAILED, error=error, failure=failure, final_node=final_node)

    def begin(self) -> None:  # pragma: no cover - overridden
        """Start the move (one or a few API calls)."""
        raise NotImplementedError

    def step(self, active: Listed | None = None) -> bool:  # pragma: no cover - overridden
        """Advance; True when the move is over (see `outcome`).

        ``active``: the cluster's unfinished migrations, listed once per tick by the engine, so
        that following N migrations costs one request, not N (None: no list this tick).
        """
        raise NotImplementedError

    def interrupt(self) -> str:  # pragma: no cover - overridden
        """Stop as safely as possible on a cancel; return what state the VM is left in."""
        raise NotImplementedError

    def give_up(self, reason: str, failure: FailureKind = FailureKind.CLUSTER_UNAVAILABLE) -> None:  # pragma: no cover
        """End the move as failed (the cluster kept refusing to answer, or could not start it), leaving the VM safe."""
        raise NotImplementedError


class LiveRunner(Runner):
    """A live migration through a VirtualMachineInstanceMigration aimed at the target node."""

    def begin(self) -> None:
        """Create (or find) the migration; on KubeVirt < 1.6 steer it with a temporary affinity.

        The migration's deterministic name is journalled before it is created, so a crash in
        between finds it (create_migration returns the existing one) instead of starting a second.
        """
        resumed = self.record.status is RecordStatus.RUNNING and self.record.migration
        if not resumed:
            attempt = self.record.attempt + 1
            self.save(
                status=RecordStatus.RUNNING,
                attempt=attempt,
                step=Step.MIGRATING,
                error=None,
                failure=None,
                migration=migration_name(self.plan_id, self.move.id, attempt),
            )
        name = str(self.record.migration)
        if resumed and self._resumable(name):
            self.emit("resumed", estimate=self.options.live_estimate(self.move))
            return
        use_selector = supports_added_node_selector(self.kubevirt_version)
        try:
            if not use_selector and not self.record.temporary_affinity:
                self.api.add_pin(self.move.namespace, self.move.vm, self.move.target, temporary=True)
                self.save(temporary_affinity=True)
            adopted = None if use_selector else self._adopt_existing()
            if adopted is not None:
                # KubeVirt's workload updater already migrates it (because of our affinity): follow that one.
                name = adopted
            else:
                self.api.create_migration(
                    self.move.namespace,
                    name,
                    self.move.vm,
                    target=self.move.target if use_selector else None,
                    plan_id=self.plan_id,
                )
        except ClusterError as exc:
            self._cleanup_temporary_affinity()
            self.fail(failure_of(exc), rejection_text(exc))
            return
        self.save(migration=name)
        self.emit("created", estimate=self.options.live_estimate(self.move))

    def _resumable(self, name: str) -> bool:
        """After a crash: follow the journalled migration if it exists or the VM already arrived.

        Otherwise the crash came before the create call reached the server: create it now.
        """
        if self.api.get_migration(self.move.namespace, name) is not None:
            return True
        vmi = self.api.get_vmi(self.move.namespace, self.move.vm)
        return vmi is not None and vmi.node == self.move.target

    def _adopt_existing(self) -> str | None:
        """A migration KubeVirt's workload updater started for this VMI (after our affinity change)."""
        for mig in self.api.migrations_of(self.move.namespace, self.move.vm):
            if not mig.final:
                return mig.name
        return None

    def _cleanup_temporary_affinity(self) -> None:
        if not self.record.temporary_affinity:
            return
        try:
            self.api.remove_pin(self.move.namespace, self.move.vm, self.move.target, temporary=True)
            self.save(temporary_affinity=False)
        except ClusterError as exc:
            log.warning("could not remove the temporary affinity of %s/%s: %s", self.move.namespace, self.move.vm, exc)

    def step(self, active: Listed | None = None) -> bool:
        """Follow the migration's phase; verify the VM's node at the end."""
        if self.outcome is not None:
            return True
        name = str(self.record.migration)
        listed = None if active is None else active.get((self.move.namespace, name))
        # Still unfinished in this tick's list: no request needed. Otherwise read it (it finished,
        # failed, was garbage-collected, or no list was available).
        mig = listed if listed is not None else self.api.get_migration(self.move.namespace, name)
        if mig is None or mig.phase is MigrationPhase.SUCCEEDED:
            return self._verify_arrival(mig)
        if mig.phase is MigrationPhase.FAILED:
            vmi = self.api.get_vmi(self.move.namespace, self.move.vm)
            self._cleanup_temporary_affinity()
            where = vmi.node if vmi is not None else None
            return self.fail(
                FailureKind.MIGRATION_FAILED,
                f"{failure_reason(mig, vmi)}; the VM stays on {where or self.move.source}",
                final_node=where,
            )
        timeout = self.options.live_timeout(self.move)
        if self.elapsed > timeout:
            self.api.delete_migration(self.move.namespace, name)
            self._cleanup_temporary_affinity()
            return self.fail(
                FailureKind.MIGRATION_TIMEOUT,
                f"timed out after {timeout:.0f}s ({self.options.per_gib:.0f} s per GiB); the migration was "
                f"cancelled and the VM stays on {self.move.source}",
                final_node=self.move.source,
            )
        self.emit(mig.phase.value or "Pending", estimate=self.options.live_estimate(self.move))
        return False

    def _verify_arrival(self, mig: MigrationView | None) -> bool:
        """The migration succeeded or disappeared: the VMI's node decides."""
        vmi = self.api.get_vmi(self.move.namespace, self.move.vm)
        node = vmi.node if vmi is not None else None
        self._cleanup_temporary_affinity()
        if vmi is not None and vmi.running and node == self.move.target:
            duration = mig.server_duration_seconds if mig is not None else None
            return self.finish(MoveStatus.SUCCEEDED, duration=duration, final_node=node)
        if mig is None:
            return self.fail(
                FailureKind.MIGRATION_LOST,
                f"migration {self.record.migration} disappeared; the VM is on {node or 'no node'}",
                final_node=node,
            )
        return self.fail(
            FailureKind.WRONG_NODE,
            f"migration succeeded but the VM runs on {node}, not {self.move.target}",
            final_node=node,
        )

    def interrupt(self) -> str:
        """Cancel the migration: the VM stays on its source."""
        if self.record.migration:
            self.api.delete_migration(self.move.namespace, self.record.migration)
        self._cleanup_temporary_affinity()
        self.fail(FailureKind.INTERRUPTED, "interrupted: migration cancelled")
        return f"{self.move.namespace}/{self.move.vm}: migration cancelled, stays on {self.move.source}"

    def give_up(self, reason: str, failure: FailureKind = FailureKind.CLUSTER_UNAVAILABLE) -> None:
        """Cancel the migration (best effort) so that nothing keeps running unobserved."""
        try:
            if self.record.migration:
                self.api.delete_migration(self.move.namespace, self.record.migration)
            self._cleanup_temporary_affinity()
            left = f"the migration was cancelled; the VM stays on {self.move.source}"
        except ClusterError:
            left = f"migration {self.record.migration} may still be running: check `vm-rebalance status`"
        self.fail(failure, f"{reason}; {left}")


def _stop_failure(exc: ClusterError) -> FailureKind:
    """A refused stop: RBAC, the run strategy and an unreachable API keep their kind; the rest is STOP_FAILED."""
    kind = failure_of(exc)
    match kind:
        case (
            FailureKind.FORBIDDEN
            | FailureKind.RUN_STRATEGY
            | FailureKind.CLUSTER_UNAVAILABLE
            | FailureKind.VM_NOT_FOUND
        ):
            return kind
        case _:
            return FailureKind.STOP_FAILED


class ColdRunner(Runner):
    """Stop → wait Stopped → re-read → pin to the target → start → verify on the target."""

    def begin(self) -> None:
        """Read the VM, decide, and issue the stop."""
        if self.record.status is RecordStatus.RUNNING and self.record.step is not Step.NONE:
            self.emit(f"resuming at {self.record.step.value}")
            return
        self.save(
            status=RecordStatus.RUNNING, attempt=self.record.attempt + 1, step=Step.INIT, error=None, failure=None
        )
        self._init()

    def _init(self) -> None:
        ns, name = self.move.namespace, self.move.vm
        try:
            vm = self.api.get_vm(ns, name)
        except ResourceNotFoundError:
            self.fail(FailureKind.VM_NOT_FOUND, f"VM '{name}' does not exist in namespace '{ns}'")
            return
        vmi = self.api.get_vmi(ns, name)
        was_running = vmi is not None and vmi.running
        if (vmi is not None and vmi.migrating) or any(not m.final for m in self.api.migrations_of(ns, name)):
            self.fail(
                FailureKind.MIGRATION_IN_FLIGHT,
                "a live migration of this VM is in flight; KubeVirt refuses "
                "placement changes meanwhile — try again when it is finished",
            )
            return
        pins = vm.pins
        if (
            pins.owner is PinOwner.USER
            and not self.options.replace_affinity
            and pins.hostname_nodes != (self.move.target,)
        ):
            self.fail(
                FailureKind.USER_AFFINITY,
                f"the VM already has a required node affinity to {', '.join(pins.hostname_nodes)}; "
                "replacing it needs your approval (--replace-affinity)",
            )
            return
        # A retry keeps what the first attempt saw: a VM that attempt stopped is still "was running".
        if self.record.was_running is None:
            self.save(original_run_strategy=vm.run_strategy, was_running=was_running)
        if not was_running:
            self.save(step=Step.PIN)
            return
        # Journal first: a crash right after the stop request must resume at "stopping".
        self.save(step=Step.STOPPING)
        try:
            self.api.stop_vm(ns, name)
        except ClusterError as exc:
            if not (isinstance(exc, ApiRejectedError) and exc.kind is Rejection.NOT_RUNNING):
                self.save(step=Step.INIT)
                where = vmi.node if vmi is not None else None
                self.fail(_stop_failure(exc), f"stopping the VM failed: {exc}; it keeps running on {where}")
                return
        self.emit("stopping VM", estimate=60.0)

    def _recover(self) -> str:
        """After a failure between stop and start: start the VM again (never leave it stopped by us)."""
        ns, name = self.move.namespace, self.move.vm
        if not self.record.was_running or self.record.step not in (Step.STOPPING, Step.PIN):
            return ""
        try:
            self.api.start_vm(ns, name)
        except ApiRejectedError as exc:
            if exc.kind is Rejection.ALREADY_RUNNING:
                return "; the VM is running"
            return f"; the VM is STOPPED and could not be restarted ({exc}) — start it with `vm-rebalance start`"
        except ClusterError as exc:
            return f"; the VM is STOPPED and could not be restarted ({exc}) — start it with `vm-rebalance start`"
        where = "on the target (pinned)" if self.record.pinned else "where the scheduler places it (not pinned)"
        return f"; the VM was started again {where}"

    def give_up(self, reason: str, failure: FailureKind = FailureKind.CLUSTER_UNAVAILABLE) -> None:
        """End the move as failed, restarting the VM if it was stopped by this move."""
        self.fail(failure, f"{reason}{self._recover()}")

    def step(self, active: Listed | None = None) -> bool:
        """Advance the cold-migration state machine by one read."""
        if self.outcome is not None:
            return True
        step = self.record.step
        try:
            match step:
                case Step.INIT:
                    self._init()
                    return self.outcome is not None
                case Step.STOPPING:
                    return self._step_stopping()
                case Step.PIN:
                    return self._step_pin()
                case Step.STARTING:
                    return self._step_starting()
                case Step.NONE | Step.MIGRATING:
                    return self.fail(FailureKind.API_ERROR, f"a cold move cannot be at journal step '{step.value}'")
                case _:
                    assert_never(step)
        except ClusterError as exc:
            return self.fail(failure_of(exc), f"{exc} (cold move stopped at step '{step.value}'){self._recover()}")

    def _step_stopping(self) -> bool:
        vm = self.api.get_vm(self.move.namespace, self.move.vm)
        vmi = self.api.get_vmi(self.move.namespace, self.move.vm)
        if vm.stopped and (vmi is None or not vmi.running):
            self.save(step=Step.PIN)
            self.emit("stopped")
            return False
        if self.elapsed > self.options.stop_timeout_seconds:
            reason = (
                f"the VM did not stop within {self.options.stop_timeout_seconds:.0f}s "
                f"(status {vm.printable_status}); it is not pinned"
            )
            return self.fail(FailureKind.STOP_FAILED, reason + self._recover())
        self.emit("stopping VM")
        return False

    def _step_pin(self) -> bool:
        ns, name = self.move.namespace, self.move.vm
        self.api.add_pin(ns, name, self.move.target)
        self.save(pinned=True)
        if not self.record.was_running:
            self._restore_run_strategy()
            return self.finish(
                MoveStatus.SUCCEEDED,
                pinned=True,
                final_node=None,
                duration=0.0,
                notes=("the VM was stopped: it is only pinned and will start on the target",),
            )
        try:
            self.api.start_vm(ns, name)
        except ApiRejectedError as exc:
            if exc.kind is not Rejection.ALREADY_RUNNING:
                raise
            # It was started meanwhile (an earlier attempt's recovery, or someone else)
            # before the pin could place it: stop it again, then pin and start.
            self.save(step=Step.STOPPING)
            self.api.stop_vm(ns, name)
            self.emit("the VM was running again: stopping it")
            return False
        self.save(step=Step.STARTING)
        self.emit("starting VM on target", estimate=30.0)
        return False

    def _step_starting(self) -> bool:
        ns, name = self.move.namespace, self.move.vm
        vm = self.api.get_vm(ns, name)
        vmi = self.api.get_vmi(ns, name)
        node = vmi.node if vmi is not None else None
        running = vmi is not None and vmi.running
        if running and node == self.move.target:
            self._restore_run_strategy()
            pinned = True
            if self.options.unpin_after_cold:
                unpin_vm(self.api, ns, name)
                pinned = False
            return self.finish(MoveStatus.SUCCEEDED, final_node=node, pinned=pinned)
        if running and node and node != self.move.target:
            return self.fail(
                FailureKind.WRONG_NODE, f"the VM started on {node} instead of {self.move.target}", final_node=node
            )
        if vm.status is PrintableStatus.ERROR_UNSCHEDULABLE or self.elapsed > self.options.start_timeout_seconds:
            return self.fail(
                FailureKind.START_FAILED,
                f"the VM cannot start on {self.move.target} ({vm.printable_status}); it is pinned there and "
                f"not running — retry, retry elsewhere, or unpin and start it",
            )
        self.emit("starting VM on target")
        return False

    def _restore_run_strategy(self) -> None:
        original = self.record.original_run_strategy
        if not original:
            return
        # start/stop rewrite Always → Halted → Always; Once/Manual/RerunOnFailure may end up
        # different: put back what the user had.
        self.api.set_run_strategy(self.move.namespace, self.move.vm, original)

    def interrupt(self) -> str:
        """Never leave a VM stopped by us: if it was stopped and not yet started, start it."""
        ns, name = self.move.namespace, self.move.vm
        if self.record.step in (Step.STOPPING, Step.PIN) and self.record.was_running:
            try:
                self.api.start_vm(ns, name)
                state = "was stopped; start requested again (it may start on its old node if not pinned yet)"
            except ClusterError as exc:
                state = f"is STOPPED and could not be restarted ({exc}): start it with vm-rebalance start"
        elif self.record.step is Step.STARTING:
            state = "is starting on the target"
        else:
            state = "was not changed"
        self.fail(FailureKind.INTERRUPTED, f"interrupted: the VM {state}")
        return f"{ns}/{name}: {state}"


def unpin_vm(api: KubeVirtApi, namespace: str, name: str) -> bool:
    """Remove the node pin vm-rebalance added; False when there was none.

    Raises:
        InfeasiblePlanError: the VM has a node pin vm-rebalance did not add (it is the user's).
        ResourceNotFoundError: the VM does not exist.
    """
    pins = api.get_vm(namespace, name).pins
    if pins.marked is None:
        if pins.hostname_nodes:
            raise InfeasiblePlanError(
                f"the node pin of {namespace}/{name} (to {', '.join(pins.hostname_nodes)}) was not added by "
                "vm-rebalance",
                hint="it is left alone; edit the VM's spec.template.spec.affinity yourself if it should go",
            )
        return False
    api.remove_pin(namespace, name, pins.marked)
    return True


def runner_for(move: Move, **kwargs: Any) -> Runner:
    """The runner for a move's method."""
    return LiveRunner(move, **kwargs) if move.method is MigrationMethod.LIVE else ColdRunner(move, **kwargs)
