"""One move carried out step by step: live (a migration object) or cold (stop, pin, start).

A runner never blocks: `step()` reads the cluster once, advances its state machine and
returns whether the move is over, so the engine can interleave several moves, respect
the limits and stop starting new ones at the first failure. Every state change is written
to the journal first, so a crash at any point can be resumed from the journalled `Step`.
Runners see the cluster through typed views and classified errors (kube/): they decide on
phases, statuses and `Rejection` kinds, and end every failed move with a `FailureKind`.

The cold-move safety net (design.md §4): a VM a cold move stopped never stays down by the
move's doing. When it cannot start on the target (ErrorUnschedulable, a crash loop, no
Running within the deadline), or anything fails between its stop and its start, the move
rolls back — the VM's original affinity and pin marks (journalled before the first change)
are restored, it is started and verified Running — and the report says where it runs. With
``hold_failed_cold_start`` (a human or an agent is there to decide) a failed start is held
as it is instead, and `ColdRunner.resolve` carries out the decision (roll back, or leave it
stopped); a retry is a new attempt of the move. Every message says what the cluster showed
when it was read, never what was merely expected.
"""

import copy
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, assert_never

from vm_rebalance.errors import ClusterError, InfeasiblePlanError, ResourceNotFoundError
from vm_rebalance.executor.failures import failure_of, rejection_text
from vm_rebalance.executor.journal import ROLLBACK_STEPS, Journal, MoveRecord, RecordStatus, Step
from vm_rebalance.executor.kubevirt import migration_name, supports_added_node_selector
from vm_rebalance.kube.errors import ApiRejectedError, Rejection
from vm_rebalance.kube.kubevirt import KubeVirtApi
from vm_rebalance.kube.views import (
    PIN_ANNOTATION,
    TEMP_PIN_ANNOTATION,
    MigrationPhase,
    MigrationView,
    VmiPhase,
    VmiView,
    VmView,
    target_refusal,
)
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
    """Allow replacing a node pin that vm-rebalance did not add (the user agreed; a move whose plan
    carries the approved affinity change needs no flag)."""
    unpin_after_cold: bool = False
    """Remove the pin right after a successful cold move (else offer `unpin`)."""
    hold_failed_cold_start: bool = False
    """When a cold move's VM cannot start on its target, hold it as it is for the human's decision
    (retry / retry on another node / roll back / leave stopped) instead of rolling back at once.
    Only for a caller that asks someone (a terminal, an MCP client) and rolls back without an answer."""
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


class Resolution(StrEnum):
    """What the human decided for a cold move held after its start failed (besides retrying it)."""

    ROLLBACK = "roll back"
    """Restore the VM's original placement, start it and verify it runs."""
    LEAVE_STOPPED = "leave stopped"
    """Stop the VM and leave it so (pinned to the target), as the human chose."""


def describe_state(vm: VmView | None, vmi: VmiView | None) -> str:
    """What the cluster shows for a VM, in a few words (only what was read)."""
    if vm is None:
        return "the VM does not exist (any more)"
    pins = vm.pins
    pin = f", pinned to {', '.join(pins.ours)}" if pins.ours else ""
    if pins.user_terms:
        pin += f", its own node affinity allows {', '.join(pins.user_nodes)}"
    if vmi is not None and vmi.running:
        migrating = " (migrating)" if vmi.migrating else ""
        return f"Running on {vmi.node or 'an unknown node'}{migrating}{pin}"
    why = f": {vmi.problem}" if vmi is not None and vmi.problem else ""
    return f"not running ({vm.printable_status}{why}){pin}"


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

    def fail(
        self, failure: FailureKind, error: str, *, final_node: str | None = None, notes: tuple[str, ...] = ()
    ) -> bool:
        """End the move as failed with ``failure``; always returns True."""
        return self.finish(MoveStatus.FAILED, error=error, failure=failure, final_node=final_node, notes=notes)

    @property
    def replace_user(self) -> bool:
        """Whether replacing the VM's own node pin was approved (the flag, or the plan's affinity change)."""
        change = self.move.affinity
        return self.options.replace_affinity or (change is not None and change.replaces_user)

    def capture_original(self, vm: VmView) -> None:
        """Journal the VM's placement before the move changes it (once per move, across retries)."""
        if self.record.original_captured:
            return
        self.save(
            original_captured=True,
            original_affinity=copy.deepcopy(dict(vm.affinity)) if vm.affinity else None,
            original_marks={k: vm.annotations.get(k) for k in (PIN_ANNOTATION, TEMP_PIN_ANNOTATION)},
        )

    def restore_original(self) -> None:
        """Put the VM's journalled placement back (no-op when nothing was captured)."""
        if not self.record.original_captured:
            return
        self.api.restore_placement(
            self.move.namespace, self.move.vm, self.record.original_affinity, dict(self.record.original_marks)
        )

    def user_pin_refusal(self, vm: VmView) -> str | None:
        """Why the VM's own node pin stops this move (None: it allows the target or its replacement was approved)."""
        pins = vm.pins
        if pins.user_allows(self.move.target) or self.replace_user:
            return None
        return (
            f"the VM has its own required node affinity to {', '.join(pins.user_nodes)}, which excludes "
            f"{self.move.target}; replacing it needs your approval (--replace-affinity shows old → new) — "
            "nothing was changed"
        )

    def precheck(self, vm: VmView | None, vmi: VmiView | None) -> bool:
        """Right before the move changes anything: is it still to do? Ends it (SKIPPED / SUCCEEDED) when not.

        The VM may be gone, under a KubeVirt evacuation, already on its target, or its target may
        have become unable to take it since planning (NotReady, cordoned, not schedulable, tainted):
        such a move is not started and says why (fault matrix rows 16, 23, 26, 33, 34).
        """
        if vm is None:
            self.finish(MoveStatus.SKIPPED, error="the VM no longer exists: nothing to move (nothing was changed)")
            return True
        if vmi is not None and vmi.evacuation_node:
            self.finish(
                MoveStatus.SKIPPED,
                error=f"KubeVirt is evacuating the VM off {vmi.evacuation_node}: it is left to KubeVirt "
                "(nothing was changed)",
            )
            return True
        if self.move.running and vmi is not None and vmi.running and vmi.node == self.move.target and not vmi.migrating:
            self.finish(
                MoveStatus.SUCCEEDED,
                final_node=vmi.node,
                duration=0.0,
                notes=("already on its target: nothing was done",),
            )
            return True
        if self.move.scheduler_chooses:
            return False
        try:
            node = self.api.get_node(self.move.target)
        except ResourceNotFoundError:
            self.finish(
                MoveStatus.SKIPPED, error=f"target {self.move.target} no longer exists: not moved (nothing was changed)"
            )
            return True
        refusal = target_refusal(node, vm)
        if refusal is not None:
            self.finish(
                MoveStatus.SKIPPED,
                error=f"{refusal} since planning: the VM was not moved there (nothing was changed); re-plan",
            )
            return True
        return False

    def observe(self) -> tuple[VmView | None, VmiView | None]:
        """The VM and its instance as the cluster shows them now (VM None: it is gone).

        Raises:
            ClusterError: they cannot be read.
        """
        try:
            vm = self.api.get_vm(self.move.namespace, self.move.vm)
        except ResourceNotFoundError:
            return None, None
        return vm, self.api.get_vmi(self.move.namespace, self.move.vm)

    def begin(self) -> None:  # pragma: no cover - overridden
        """Start the move (one or a few API calls)."""
        raise NotImplementedError

    def step(self, active: Listed | None = None) -> bool:  # pragma: no cover - overridden
        """Advance; True when the move is over (see `outcome`).

        ``active``: the cluster's unfinished migrations, listed once per tick by the engine, so
        that following N migrations costs one request, not N (None: no list this tick).
        """
        raise NotImplementedError

    def interrupt(self, pause: Callable[[float], None] | None = None) -> str:  # pragma: no cover - overridden
        """Stop as safely as possible on a cancel; return what state the VM is left in.

        ``pause`` (a sleep) lets a move whose VM is between stop and start finish its safe path first.
        """
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
        A VM that carries vm-rebalance's pin (or whose own pin the user approved replacing) is
        re-pinned to the target first; the pin is put back if the migration does not succeed.
        """
        resumed = self.record.status is RecordStatus.RUNNING and self.record.migration
        if not resumed:
            vm, vmi = self.observe()
            if self.precheck(vm, vmi):
                return
            assert vm is not None
            refusal = self.user_pin_refusal(vm)
            if refusal is not None:
                self.fail(FailureKind.USER_AFFINITY, refusal)
                return
            attempt = self.record.attempt + 1
            self.save(
                status=RecordStatus.RUNNING,
                attempt=attempt,
                step=Step.MIGRATING,
                error=None,
                failure=None,
                held=False,
                source=self.move.source,
                migration=migration_name(self.plan_id, self.move.id, attempt),
            )
            if (vm.pins.ours or vm.pins.user_terms) and not self.record.repinned and not self.move.scheduler_chooses:
                # The VM's pin would keep the target pod off the target: move the pin along (LiveUpdate).
                self.capture_original(vm)
                self.save(repinned=True)
                try:
                    self.api.add_pin(
                        self.move.namespace, self.move.vm, self.move.target, replace_user=self.replace_user
                    )
                except ClusterError as exc:
                    self._cleanup_temporary_affinity()
                    self.fail(failure_of(exc), f"could not move the VM's pin to {self.move.target}: {exc}")
                    return
        name = str(self.record.migration)
        if resumed and self._resumable(name):
            self.emit("resumed", estimate=self.options.live_estimate(self.move))
            return
        use_selector = supports_added_node_selector(self.kubevirt_version) and not self.move.scheduler_chooses
        try:
            if (
                not use_selector
                and not self.move.scheduler_chooses
                and not self.record.temporary_affinity
                and not self.record.repinned
            ):
                self.api.add_pin(self.move.namespace, self.move.vm, self.move.target, temporary=True)
                self.save(temporary_affinity=True)
            adopted = None if use_selector and not self.record.repinned else self._adopt_existing()
            if adopted is not None:
                # KubeVirt's workload updater already migrates it (because of our affinity): follow that one.
                name = adopted
            else:
                created = self.api.create_migration(
                    self.move.namespace,
                    name,
                    self.move.vm,
                    target=self.move.target if use_selector else None,
                    plan_id=self.plan_id,
                )
                self.save(migration_uid=created.uid)
        except ClusterError as exc:
            if not isinstance(exc, ApiRejectedError) and self._found_after_ambiguous_create(name, exc):
                return
            self._cleanup_temporary_affinity()
            self.fail(failure_of(exc), rejection_text(exc) + "; nothing was migrated")
            return
        self.save(migration=name)
        self.emit("created", estimate=self.options.live_estimate(self.move))

    def _found_after_ambiguous_create(self, name: str, exc: ClusterError) -> bool:
        """A create whose answer was lost (5xx, timeout): it may have happened. Look it up by its name;
        adopt it if it exists, else create it once more (fault matrix rows 2, 19, 20). True when following one."""
        log.debug("create of migration %s ended ambiguously (%s): looking it up", name, exc)
        try:
            found = self.api.get_migration(self.move.namespace, name)
            if found is None:
                found = self.api.create_migration(
                    self.move.namespace,
                    name,
                    self.move.vm,
                    target=self.move.target
                    if supports_added_node_selector(self.kubevirt_version) and not self.move.scheduler_chooses
                    else None,
                    plan_id=self.plan_id,
                )
        except ClusterError:
            return False
        self.save(migration=name, migration_uid=found.uid)
        self.emit("created", message="the create's answer was lost: found it by its name")
        return True

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

    def _cleanup_temporary_affinity(self) -> str:
        """Undo the affinity changes of a move that did not succeed; what was done, for the message."""
        done = ""
        try:
            if self.record.temporary_affinity:
                self.api.remove_pin(self.move.namespace, self.move.vm, self.move.target, temporary=True)
                self.save(temporary_affinity=False)
            if self.record.repinned:
                self.restore_original()
                self.save(repinned=False)
                done = "; its node pin was put back as it was"
        except ResourceNotFoundError:
            self.save(temporary_affinity=False, repinned=False)
        except ClusterError as exc:
            log.warning("could not restore the affinity of %s/%s: %s", self.move.namespace, self.move.vm, exc)
            done = f"; its node affinity could NOT be put back ({exc}): check it with `kubectl get vm -o yaml`"
        return done

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
            vm, vmi = self.observe()
            restored = self._cleanup_temporary_affinity()
            if vm is None:
                return self.fail(
                    FailureKind.VM_NOT_FOUND,
                    f"the VM was deleted during its migration ({failure_reason(mig, vmi)}); nothing was re-created",
                )
            where = vmi.node if vmi is not None and vmi.running else None
            state = f"the VM runs on {where}" if where else f"the VM is {describe_state(vm, vmi)}"
            return self.fail(
                FailureKind.MIGRATION_FAILED, f"{failure_reason(mig, vmi)}; {state}{restored}", final_node=where
            )
        if "migrationRejectedByResourceQuota" in mig.condition_types:
            self.api.delete_migration(self.move.namespace, name)
            restored = self._cleanup_temporary_affinity()
            why = next(iter(mig.condition_messages), "the target pod exceeds the namespace's quota")
            return self.fail(
                FailureKind.ADMISSION_DENIED,
                f"the namespace's ResourceQuota rejected the migration's target pod ({why}); the migration was "
                f"cancelled{restored}: during a migration namespace {self.move.namespace}'s quota must fit the "
                "source and the target pod at once",
            )
        timeout = self.options.live_timeout(self.move)
        if self.elapsed > timeout:
            self.api.delete_migration(self.move.namespace, name)
            restored = self._cleanup_temporary_affinity()
            return self.fail(
                FailureKind.MIGRATION_TIMEOUT,
                f"timed out after {timeout:.0f}s ({self.options.per_gib:.0f} s per GiB); the migration was "
                f"cancelled{restored}",
            )
        self.emit(mig.phase.value or "Pending", estimate=self.options.live_estimate(self.move))
        return False

    def _verify_arrival(self, mig: MigrationView | None) -> bool:
        """The migration succeeded or disappeared: the VMI's node decides."""
        vm, vmi = self.observe()
        node = vmi.node if vmi is not None else None
        if vm is None:
            self.save(repinned=False, temporary_affinity=False)
            return self.fail(
                FailureKind.VM_NOT_FOUND, "the VM was deleted during its migration; nothing was re-created"
            )
        arrived = node == self.move.target or (self.move.scheduler_chooses and node and node != self.move.source)
        if vmi is not None and vmi.running and arrived and not vmi.migrating:
            if self.record.temporary_affinity:
                self._cleanup_temporary_affinity()
            duration = mig.server_duration_seconds if mig is not None else None
            pinned = self.record.repinned
            return self.finish(MoveStatus.SUCCEEDED, duration=duration, final_node=node, pinned=pinned)
        if vmi is not None and vmi.migrating and mig is None:
            return False  # the object is gone (GC) but the VMI still reports it in progress: wait for the VMI
        restored = self._cleanup_temporary_affinity()
        if mig is None:
            return self.fail(
                FailureKind.MIGRATION_LOST,
                f"migration {self.record.migration} disappeared before it was seen to finish; the cluster shows "
                f"the VM {describe_state(vm, vmi)}{restored}",
                final_node=node if vmi is not None and vmi.running else None,
            )
        return self.fail(
            FailureKind.WRONG_NODE,
            f"the migration reports success but the cluster shows the VM {describe_state(vm, vmi)}, not on "
            f"{self.move.target}{restored}",
            final_node=node,
        )

    def interrupt(self, pause: Callable[[float], None] | None = None) -> str:
        """Cancel the migration, then read where the VM is (a migration may complete before the cancel lands)."""
        if self.record.migration:
            self.api.delete_migration(self.move.namespace, self.record.migration)
        restored = self._cleanup_temporary_affinity()
        try:
            vm, vmi = self.observe()
        except ClusterError as exc:
            self.fail(
                FailureKind.INTERRUPTED,
                f"interrupted: migration cancelled{restored}; where the VM runs could not be read ({exc})",
            )
            return f"{self.move.namespace}/{self.move.vm}: migration cancelled; its state could not be read"
        if vmi is not None and vmi.running and vmi.node == self.move.target and not vmi.migrating:
            self.finish(
                MoveStatus.SUCCEEDED,
                final_node=vmi.node,
                notes=("the migration completed before the cancel took effect",),
            )
            return f"{self.move.namespace}/{self.move.vm}: moved to {vmi.node} (it completed before the cancel)"
        state = describe_state(vm, vmi)
        self.fail(
            FailureKind.INTERRUPTED,
            f"interrupted: migration cancelled; the VM is {state}{restored}",
            final_node=vmi.node if vmi is not None and vmi.running else None,
        )
        return f"{self.move.namespace}/{self.move.vm}: migration cancelled; {state}"

    def give_up(self, reason: str, failure: FailureKind = FailureKind.CLUSTER_UNAVAILABLE) -> None:
        """Cancel the migration (best effort) so that nothing keeps running unobserved; claim nothing unread."""
        try:
            if self.record.migration:
                self.api.delete_migration(self.move.namespace, self.record.migration)
            restored = self._cleanup_temporary_affinity()
            left = f"the migration was cancelled{restored}"
        except ClusterError:
            left = f"migration {self.record.migration} may still be running: check `vm-rebalance status`"
        try:
            vm, vmi = self.observe()
            where = f"; the cluster shows the VM {describe_state(vm, vmi)}"
        except ClusterError:
            where = "; where the VM runs could not be read"
        self.fail(failure, f"{reason}; {left}{where}")


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


def _cannot_start(vm: VmView, vmi: VmiView | None) -> bool:
    """Asked to run, and the cluster says it will not without help (unschedulable, crash loop, failed)."""
    return vm.status.cannot_start or (vmi is not None and vmi.phase is VmiPhase.FAILED)


class ColdRunner(Runner):
    """Stop → wait Stopped → re-read → pin to the target → start → verify on the target (or roll back)."""

    def begin(self) -> None:
        """Read the VM, decide, and issue the stop."""
        if self.record.status is RecordStatus.RUNNING and self.record.step is not Step.NONE:
            self.emit(f"resuming at {self.record.step.value}")
            return
        self.save(
            status=RecordStatus.RUNNING,
            attempt=self.record.attempt + 1,
            step=Step.INIT,
            error=None,
            failure=None,
            held=False,
            rollback_reason=None,
        )
        self._init()

    def _init(self) -> None:
        ns, name = self.move.namespace, self.move.vm
        vm, vmi = self.observe()
        if self.record.attempt <= 1 and self.record.was_running is None and self.precheck(vm, vmi):
            return
        if vm is None:
            self.fail(FailureKind.VM_NOT_FOUND, f"VM '{name}' does not exist in namespace '{ns}'")
            return
        was_running = vmi is not None and vmi.running
        if (vmi is not None and vmi.migrating) or any(not m.final for m in self.api.migrations_of(ns, name)):
            self.fail(
                FailureKind.MIGRATION_IN_FLIGHT,
                "a live migration of this VM is in flight; KubeVirt refuses "
                "placement changes meanwhile — try again when it is finished (nothing was changed)",
            )
            return
        refusal = self.user_pin_refusal(vm)
        if refusal is not None:
            self.fail(FailureKind.USER_AFFINITY, refusal)
            return
        # A retry keeps what the first attempt saw: a VM that attempt stopped is still "was running",
        # and its placement from before the first change is what a rollback restores.
        if self.record.was_running is None:
            self.save(
                original_run_strategy=vm.run_strategy,
                was_running=was_running,
                source=vmi.node if was_running and vmi else "",
            )
        self.capture_original(vm)
        asked_to_run = vmi is not None and vmi.phase not in (VmiPhase.SUCCEEDED, VmiPhase.FAILED)
        if not was_running and not asked_to_run and not vm.wants_running:
            self.save(step=Step.PIN)
            return
        # Journal first: a crash right after the stop request must resume at "stopping".
        self.save(step=Step.STOPPING)
        try:
            self.api.stop_vm(ns, name)
        except ClusterError as exc:
            if not (isinstance(exc, ApiRejectedError) and exc.kind is Rejection.NOT_RUNNING):
                self.save(step=Step.INIT)
                where = f"it keeps running on {vmi.node}" if was_running and vmi else f"it is {describe_state(vm, vmi)}"
                self.fail(_stop_failure(exc), f"stopping the VM failed: {exc}; {where} (nothing was changed)")
                return
            # "VM is not running": idempotent only if that is what the cluster shows (fault matrix row 11).
            again = self.api.get_vmi(ns, name)
            if again is not None and again.running:
                self.save(step=Step.INIT)
                self.fail(
                    FailureKind.STOP_FAILED,
                    f"KubeVirt answered that the VM is not running, but its instance runs on {again.node}: the stop "
                    "did not happen (nothing was changed); try again",
                )
                return
        self.emit("stopping VM", estimate=60.0)

    # ----------------------------------------------------------------------------- the safety net

    def _rollback(self, failure: FailureKind, reason: str) -> bool:
        """Undo a cold move that failed after the VM was stopped: restore, start, verify (over the next ticks).

        A VM that was not running is only given its placement back. Returns True when the move is over.
        """
        if not self.record.was_running:
            restored = self._restore_quietly()
            return self.fail(failure, f"{reason}{restored}")
        self.save(step=Step.ROLLBACK_STOPPING, rollback_reason=reason, failure=failure, held=False)
        self.emit("rolling back", message=reason)
        return False

    def _restore_quietly(self) -> str:
        try:
            self.restore_original()
        except ClusterError as exc:
            return f"; its original node affinity could NOT be restored ({exc})"
        self.save(pinned=False)
        return "; its original node affinity was restored" if self.record.pinned else ""

    def _rollback_failure(self) -> tuple[FailureKind, str]:
        return self.record.failure or FailureKind.START_FAILED, self.record.rollback_reason or "the move failed"

    def _step_rollback_stopping(self) -> bool:
        vm, vmi = self.observe()
        kind, reason = self._rollback_failure()
        if vm is None:
            return self.fail(FailureKind.VM_NOT_FOUND, f"{reason}; the VM was deleted meanwhile")
        if vmi is not None and vmi.running:
            if vmi.node == self.move.target:
                # It came up on the target after all: the move is done; stopping it again would only add downtime.
                return self._succeeded(vm, vmi, notes=("the VM reached Running on the target late",))
            self._restore_quietly()
            return self.fail(kind, f"{reason}; the VM runs on {vmi.node} (nothing more was done)", final_node=vmi.node)
        if vm.stopped and vmi is None:
            self.save(step=Step.ROLLBACK_RESTORE)
            return False
        if vm.wants_running or (vmi is not None and vmi.phase not in (VmiPhase.SUCCEEDED, VmiPhase.FAILED)):
            try:
                self.api.stop_vm(self.move.namespace, self.move.vm)
            except ApiRejectedError as exc:
                if exc.kind is not Rejection.NOT_RUNNING:
                    raise
        if self.elapsed > self.options.stop_timeout_seconds + self.options.start_timeout_seconds * 2:
            return self.fail(
                kind, f"{reason}; the rollback could not stop the VM to restore it: {describe_state(vm, vmi)}"
            )
        self.emit("rolling back: stopping VM")
        return False

    def _step_rollback_restore(self) -> bool:
        self.restore_original()
        self.save(pinned=False)
        try:
            self.api.start_vm(self.move.namespace, self.move.vm)
        except ApiRejectedError as exc:
            if exc.kind is not Rejection.ALREADY_RUNNING:
                raise
        self.save(step=Step.ROLLBACK_STARTING)
        self.emit("rolling back: starting VM with its original placement", estimate=30.0)
        return False

    def _step_rollback_starting(self) -> bool:
        vm, vmi = self.observe()
        kind, reason = self._rollback_failure()
        if vm is None:
            return self.fail(FailureKind.VM_NOT_FOUND, f"{reason}; the VM was deleted meanwhile")
        if vmi is not None and vmi.running and vmi.node:
            self._restore_run_strategy()
            return self.fail(
                kind,
                f"{reason}; rolled back: the VM runs on {vmi.node} again with its original placement",
                final_node=vmi.node,
                notes=("rolled back",),
            )
        if (
            _cannot_start(vm, vmi)
            or self.elapsed > self.options.stop_timeout_seconds + self.options.start_timeout_seconds * 2
        ):
            return self.fail(
                kind,
                f"{reason}; rollback: its original placement was restored and it was started, but the cluster "
                f"shows it {describe_state(vm, vmi)} — it needs attention (`vm-rebalance start "
                f"{self.move.namespace}/{self.move.vm}` says why and offers the fix)",
            )
        self.emit("rolling back: starting VM")
        return False

    def resolve(self, resolution: Resolution) -> None:
        """Carry out the human's decision for a held move over the next `step` calls."""
        record = self.record
        if not record.held:
            raise ValueError(f"move {self.move.id} is not held for a decision")
        self.outcome = None
        reason = record.error or "the VM could not start on the target"
        match resolution:
            case Resolution.ROLLBACK:
                self.save(
                    status=RecordStatus.RUNNING,
                    step=Step.ROLLBACK_STOPPING,
                    held=False,
                    rollback_reason=reason,
                    failure=FailureKind.START_FAILED,
                )
            case Resolution.LEAVE_STOPPED:
                self.save(status=RecordStatus.RUNNING, step=Step.LEAVING_STOPPED, held=False, rollback_reason=reason)
            case _:
                assert_never(resolution)

    def _step_leaving_stopped(self) -> bool:
        vm, vmi = self.observe()
        if vm is None:
            return self.fail(FailureKind.VM_NOT_FOUND, "the VM was deleted meanwhile")
        if vm.stopped and vmi is None:
            return self.finish(
                MoveStatus.FAILED,
                error=f"left stopped as you chose: the VM could not start on {self.move.target} and is stopped, "
                f"pinned there — start it with `vm-rebalance start {self.move.namespace}/{self.move.vm}` when "
                f"{self.move.target} can take it, or `vm-rebalance unpin` it first",
                failure=FailureKind.START_FAILED,
                pinned=True,
                notes=("left stopped by choice",),
            )
        try:
            self.api.stop_vm(self.move.namespace, self.move.vm)
        except ApiRejectedError as exc:
            if exc.kind is not Rejection.NOT_RUNNING:
                raise
        self.emit("stopping VM (left stopped)")
        return False

    # -------------------------------------------------------------------------------- the steps

    def give_up(self, reason: str, failure: FailureKind = FailureKind.CLUSTER_UNAVAILABLE) -> None:
        """The cluster kept failing: try once to put back and start a VM this move stopped; claim nothing unread.

        When that is not possible the journal keeps the move in progress, so `vm-rebalance resume`
        finishes (or rolls back) the move once the cluster answers.
        """
        stopped_by_us = self.record.was_running and self.record.step is not Step.INIT
        if not stopped_by_us:
            self.fail(failure, f"{reason} (nothing was changed)")
            return
        try:
            self.restore_original()
            self.api.start_vm(self.move.namespace, self.move.vm)
            note = "; its original placement was restored and a start was requested"
        except ApiRejectedError as exc:
            note = "; its original placement was restored" if exc.kind is Rejection.ALREADY_RUNNING else ""
        except ClusterError:
            note = ""
        step = self.record.step
        self.fail(
            failure,
            f"{reason}{note}; the VM was stopped by this move and may not be running — "
            "`vm-rebalance resume` finishes or rolls back the move when the cluster answers",
        )
        # Keep the move open in the journal: the outcome is reported, the work is not done.
        self.save(
            status=RecordStatus.RUNNING, step=step if step not in (Step.NONE, Step.HELD) else Step.ROLLBACK_STOPPING
        )

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
                case Step.ROLLBACK_STOPPING:
                    return self._step_rollback_stopping()
                case Step.ROLLBACK_RESTORE:
                    return self._step_rollback_restore()
                case Step.ROLLBACK_STARTING:
                    return self._step_rollback_starting()
                case Step.LEAVING_STOPPED:
                    return self._step_leaving_stopped()
                case Step.HELD:
                    return self.fail(FailureKind.START_FAILED, self.record.error or "held for a decision")
                case Step.NONE | Step.MIGRATING:
                    return self.fail(FailureKind.API_ERROR, f"a cold move cannot be at journal step '{step.value}'")
                case _:
                    assert_never(step)
        except ClusterError as exc:
            if isinstance(exc, ResourceNotFoundError):
                return self.fail(FailureKind.VM_NOT_FOUND, f"the VM was deleted during its cold move ({exc})")
            if step in ROLLBACK_STEPS or step is Step.LEAVING_STOPPED:
                raise  # the engine retries it next tick, then gives up (keeping the journal open)
            if step in (Step.STOPPING, Step.PIN, Step.STARTING):
                return self._rollback(failure_of(exc), f"{exc} (cold move at step '{step.value}')")
            return self.fail(failure_of(exc), f"{exc} (cold move stopped at step '{step.value}'; nothing was changed)")

    def _step_stopping(self) -> bool:
        vm, vmi = self.observe()
        if vm is None:
            return self.fail(FailureKind.VM_NOT_FOUND, "the VM was deleted during its cold move")
        if vm.stopped and (vmi is None or not vmi.running):
            self.save(step=Step.PIN)
            self.emit("stopped")
            return False
        if self.elapsed > self.options.stop_timeout_seconds:
            return self._rollback(
                FailureKind.STOP_FAILED,
                f"the VM did not stop within {self.options.stop_timeout_seconds:.0f}s (status {vm.printable_status})",
            )
        self.emit("stopping VM")
        return False

    def _step_pin(self) -> bool:
        ns, name = self.move.namespace, self.move.vm
        self.api.add_pin(ns, name, self.move.target, replace_user=self.replace_user)
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
            vmi = self.api.get_vmi(ns, name)
            if vmi is None:
                # "Already running" with no instance at all: believe the cluster, not the answer (row 10).
                self.api.start_vm(ns, name)
            elif vmi.node != self.move.target and vmi.phase not in (VmiPhase.SUCCEEDED, VmiPhase.FAILED):
                # It was started meanwhile (an earlier attempt's recovery, or someone else)
                # before the pin could place it: stop it again, then pin and start.
                self.save(step=Step.STOPPING)
                self.api.stop_vm(ns, name)
                self.emit("the VM was running again: stopping it")
                return False
        self.save(step=Step.STARTING)
        self.emit("starting VM on target", estimate=30.0)
        return False

    def _succeeded(self, vm: VmView, vmi: VmiView, notes: tuple[str, ...] = ()) -> bool:
        self._restore_run_strategy()
        pinned = True
        if self.options.unpin_after_cold:
            unpin_vm(self.api, self.move.namespace, self.move.vm)
            pinned = False
        return self.finish(MoveStatus.SUCCEEDED, final_node=vmi.node, pinned=pinned, notes=notes)

    def _step_starting(self) -> bool:
        vm, vmi = self.observe()
        if vm is None:
            return self.fail(FailureKind.VM_NOT_FOUND, "the VM was deleted during its cold move")
        node = vmi.node if vmi is not None else None
        running = vmi is not None and vmi.running
        if running and vmi is not None and node == self.move.target:
            return self._succeeded(vm, vmi)
        if running and node and node != self.move.target:
            # It runs (nothing is down), but not where the pin says: put its placement back and say so.
            restored = self._restore_quietly()
            return self.fail(
                FailureKind.WRONG_NODE,
                f"the VM started on {node} instead of {self.move.target}{restored}",
                final_node=node,
            )
        timed_out = self.elapsed > self.options.start_timeout_seconds
        if _cannot_start(vm, vmi) or timed_out:
            why = f"{vm.printable_status}: {vmi.problem}" if vmi is not None and vmi.problem else vm.printable_status
            if timed_out and not _cannot_start(vm, vmi):
                why = f"not Running after {self.options.start_timeout_seconds:.0f}s, status {why}"
            reason = f"the VM cannot start on {self.move.target} ({why})"
            if self.options.hold_failed_cold_start:
                self.save(step=Step.HELD, held=True)
                self.fail(
                    FailureKind.START_FAILED,
                    f"{reason}; it is not running and is pinned to {self.move.target}, held for your decision: "
                    "retry, retry on another node, roll back (start it with its original placement) or leave "
                    "it stopped",
                )
                self.save(status=RecordStatus.FAILED, held=True, step=Step.HELD)
                return True
            return self._rollback(FailureKind.START_FAILED, reason)
        self.emit("starting VM on target")
        return False

    def _restore_run_strategy(self) -> None:
        original = self.record.original_run_strategy
        if not original:
            return
        # start/stop rewrite Always → Halted → Always; Once/Manual/RerunOnFailure may end up
        # different: put back what the user had.
        self.api.set_run_strategy(self.move.namespace, self.move.vm, original)

    def interrupt(self, pause: Callable[[float], None] | None = None) -> str:
        """Never leave a VM stopped by us: finish the move's safe path before the execution stops.

        Between the stop and the start the move rolls back (the VM starts again with its original
        placement); once it was started on the target it is followed to Running (or rolled back).
        With ``pause`` (a sleep) this waits for that, up to the runner's own deadlines; without it
        the start is only requested and the journal keeps the move open for `resume`.
        """
        ns, name = self.move.namespace, self.move.vm
        step = self.record.step
        if step in (Step.NONE, Step.INIT) or not self.record.was_running:
            if step is Step.PIN or step is Step.STOPPING:
                self._restore_quietly()
            self.fail(FailureKind.INTERRUPTED, "interrupted before the VM was stopped: nothing was changed")
            return f"{ns}/{name}: not changed"
        if step in (Step.STOPPING, Step.PIN):
            self._rollback(FailureKind.INTERRUPTED, "interrupted between the stop and the start")
        elif step is Step.HELD:
            self.fail(FailureKind.START_FAILED, self.record.error or "held for a decision")
            return f"{ns}/{name}: not running (held for your decision)"
        if pause is None:
            try:
                self.restore_original() if self.record.step in ROLLBACK_STEPS else None
                self.api.start_vm(ns, name)
            except ClusterError as exc:
                log.debug("start on interrupt: %s", exc)
            self.outcome = None
            self.fail(
                FailureKind.INTERRUPTED,
                "interrupted during a cold move: a start was requested; `vm-rebalance resume` verifies it",
            )
            self.save(status=RecordStatus.RUNNING)
            return f"{ns}/{name}: start requested (not verified)"
        for _ in range(10_000):
            if self.step():
                break
            pause(self.options.poll_interval_seconds)
        outcome = self.outcome
        if outcome is not None and outcome.ok:
            return f"{ns}/{name}: the cold move finished before stopping: Running on {outcome.final_node}"
        if (
            outcome is not None
            and outcome.status is MoveStatus.FAILED
            and outcome.failure is not FailureKind.INTERRUPTED
        ):
            return f"{ns}/{name}: {outcome.error}"
        return f"{ns}/{name}: {outcome.error if outcome else 'state unknown'}"


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
