"""One move carried out step by step: live (a migration object) or cold (stop, pin, start).

A runner never blocks: `step()` reads the cluster once, advances its state machine and
returns whether the move is over, so the engine can interleave several moves, respect
the limits and stop starting new ones at the first failure. Every state change is written
to the journal first, so a crash at any point can be resumed (`resume_step`).
"""

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from vm_rebalance.errors import ClusterError, InfeasiblePlanError, ResourceNotFoundError
from vm_rebalance.executor.events import MoveEvent, MoveStatus, Outcome, Report
from vm_rebalance.executor.journal import Journal, MoveRecord
from vm_rebalance.executor.kubevirt import (
    PIN_ANNOTATION,
    TEMP_PIN_ANNOTATION,
    KubeVirtApi,
    affinity_ops,
    annotation_ops,
    existing_node_pin,
    migration_name,
    migration_phase,
    pinned_affinity,
    printable_status,
    run_strategy_ops,
    supports_added_node_selector,
    unpinned_affinity,
    vm_run_strategy,
    vmi_node,
    vmi_running,
)
from vm_rebalance.model import GIB, MigrationMethod, Move

log = logging.getLogger(__name__)

Clock = Callable[[], float]
DEFAULT_TIMEOUT_PER_GIB = 150.0
MAX_CONSECUTIVE_ERRORS = 8
"""A move is given up (safely) after this many ticks in a row whose reads of it all failed."""


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


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def server_duration(migration: dict[str, Any]) -> float | None:
    """A finished migration's duration by the cluster's own clock (creation → final phase)."""
    created = _timestamp((migration.get("metadata") or {}).get("creationTimestamp"))
    parsed = [
        _timestamp(t.get("phaseTransitionTimestamp"))
        for t in (migration.get("status") or {}).get("phaseTransitionTimestamps") or ()
    ]
    stamps = [s for s in parsed if s]
    if not stamps:
        return None
    start = created or min(stamps)
    return max(0.0, (max(stamps) - start).total_seconds())


def failure_reason(migration: dict[str, Any] | None, vmi: dict[str, Any] | None) -> str:
    """The best explanation KubeVirt gives for a failed migration."""
    state = ((vmi or {}).get("status") or {}).get("migrationState") or {}
    if state.get("failureReason"):
        return str(state["failureReason"])
    mstate = ((migration or {}).get("status") or {}).get("migrationState") or {}
    if mstate.get("failureReason"):
        return str(mstate["failureReason"])
    for cond in ((migration or {}).get("status") or {}).get("conditions") or ():
        if cond.get("message"):
            return str(cond["message"])
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
        duration: float | None = None,
        final_node: str | None = None,
        pinned: bool = False,
        notes: tuple[str, ...] = (),
    ) -> bool:
        """Record the outcome; always returns True (the move is over)."""
        duration = duration if duration is not None else self.elapsed
        self.save(status=status.value, error=error, duration_seconds=duration, pinned=pinned)
        self.outcome = Outcome(
            move=self.move,
            status=status,
            duration_seconds=duration,
            error=error,
            migration_name=self.record.migration,
            final_node=final_node,
            pinned=pinned,
            notes=notes,
        )
        self.report(
            MoveEvent(
                move=self.move, status=status, phase=status.value, elapsed_seconds=self.elapsed, message=error or ""
            )
        )
        return True

    def begin(self) -> None:  # pragma: no cover - overridden
        """Start the move (one or a few API calls)."""
        raise NotImplementedError

    def step(self, active: Mapping[tuple[str, str], dict[str, Any]] | None = None) -> bool:  # pragma: no cover
        """Advance; True when the move is over (see `outcome`).

        ``active``: the cluster's unfinished migrations by (namespace, name), listed once per
        tick by the engine, so that following N migrations costs one request, not N.
        """
        raise NotImplementedError

    def interrupt(self) -> str:  # pragma: no cover - overridden
        """Stop as safely as possible on Ctrl-C; return what state the VM is left in."""
        raise NotImplementedError

    def give_up(self, reason: str) -> None:  # pragma: no cover - overridden
        """End the move as failed because the cluster kept refusing to answer, leaving the VM safe."""
        raise NotImplementedError


class LiveRunner(Runner):
    """A live migration through a VirtualMachineInstanceMigration aimed at the target node."""

    def begin(self) -> None:
        """Create (or find) the migration; on KubeVirt < 1.6 steer it with a temporary affinity.

        The migration's deterministic name is journalled before it is created, so a crash in
        between finds it (create_migration returns the existing one) instead of starting a second.
        """
        resumed = self.record.status == "running" and self.record.migration
        if not resumed:
            attempt = self.record.attempt + 1
            self.save(
                status="running",
                attempt=attempt,
                step="migrating",
                error=None,
                migration=migration_name(self.plan_id, self.move.id, attempt),
            )
        name = str(self.record.migration)
        use_selector = supports_added_node_selector(self.kubevirt_version)
        # After a crash: follow the migration we created; if it never got created (crash
        # before the API call) and the VM is not on the target yet, create it now.
        if resumed and (
            self.api.get_migration(self.move.namespace, name) is not None
            or vmi_node(self.api.get_vmi(self.move.namespace, self.move.vm)) == self.move.target
        ):
            self.emit("resumed", estimate=self.options.live_estimate(self.move))
            return
        try:
            if not use_selector and not self.record.temporary_affinity:
                self._add_temporary_affinity()
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
            self.finish(MoveStatus.FAILED, error=_rejection(exc))
            return
        self.save(migration=name)
        self.emit("created", estimate=self.options.live_estimate(self.move))

    def _add_temporary_affinity(self) -> None:
        target = self.move.target

        def edit(vm: dict[str, Any]) -> list[dict[str, Any]]:
            return affinity_ops(vm, pinned_affinity(vm, target)) + annotation_ops(vm, TEMP_PIN_ANNOTATION, target)

        self.api.update_vm(self.move.namespace, self.move.vm, edit)
        self.save(temporary_affinity=True)

    def _adopt_existing(self) -> str | None:
        """A migration KubeVirt's workload updater started for this VMI (after our affinity change)."""
        for mig in self.api.migrations_of(self.move.namespace, self.move.vm):
            if migration_phase(mig) not in ("Succeeded", "Failed"):
                return str(mig["metadata"]["name"])
        return None

    def _cleanup_temporary_affinity(self) -> None:
        if not self.record.temporary_affinity:
            return
        target = self.move.target

        def edit(vm: dict[str, Any]) -> list[dict[str, Any]]:
            return affinity_ops(vm, unpinned_affinity(vm, target)) + annotation_ops(vm, TEMP_PIN_ANNOTATION, None)

        try:
            self.api.update_vm(self.move.namespace, self.move.vm, edit)
            self.save(temporary_affinity=False)
        except ClusterError as exc:
            log.warning("could not remove the temporary affinity of %s/%s: %s", self.move.namespace, self.move.vm, exc)

    def step(self, active: Mapping[tuple[str, str], dict[str, Any]] | None = None) -> bool:
        """Follow the migration's phase; verify the VM's node at the end."""
        if self.outcome is not None:
            return True
        name = str(self.record.migration)
        listed = None if active is None else active.get((self.move.namespace, name))
        # Still unfinished in this tick's list: no request needed. Otherwise read it (it finished,
        # failed, was garbage-collected, or no list was available).
        mig = listed if listed is not None else self.api.get_migration(self.move.namespace, name)
        phase = migration_phase(mig)
        if mig is None or phase == "Succeeded":
            vmi = self.api.get_vmi(self.move.namespace, self.move.vm)
            node = vmi_node(vmi)
            self._cleanup_temporary_affinity()
            if node == self.move.target and vmi_running(vmi):
                return self.finish(
                    MoveStatus.SUCCEEDED, duration=server_duration(mig) if mig else None, final_node=node
                )
            if mig is None:
                return self.finish(
                    MoveStatus.FAILED,
                    final_node=node,
                    error=f"migration {name} disappeared; the VM is on {node or 'no node'}",
                )
            return self.finish(
                MoveStatus.FAILED,
                final_node=node,
                error=f"migration succeeded but the VM runs on {node}, not {self.move.target}",
            )
        if phase == "Failed":
            vmi = self.api.get_vmi(self.move.namespace, self.move.vm)
            self._cleanup_temporary_affinity()
            return self.finish(
                MoveStatus.FAILED,
                final_node=vmi_node(vmi),
                error=f"{failure_reason(mig, vmi)}; the VM stays on {vmi_node(vmi) or self.move.source}",
            )
        timeout = self.options.live_timeout(self.move)
        if self.elapsed > timeout:
            self.api.delete_migration(self.move.namespace, name)
            self._cleanup_temporary_affinity()
            return self.finish(
                MoveStatus.FAILED,
                final_node=self.move.source,
                error=f"timed out after {timeout:.0f}s ({self.options.per_gib:.0f} s per GiB); the migration was "
                f"cancelled and the VM stays on {self.move.source}",
            )
        self.emit(phase or "Pending", estimate=self.options.live_estimate(self.move))
        return False

    def interrupt(self) -> str:
        """Cancel the migration: the VM stays on its source."""
        if self.record.migration:
            self.api.delete_migration(self.move.namespace, self.record.migration)
        self._cleanup_temporary_affinity()
        self.finish(MoveStatus.FAILED, error="interrupted: migration cancelled")
        return f"{self.move.namespace}/{self.move.vm}: migration cancelled, stays on {self.move.source}"

    def give_up(self, reason: str) -> None:
        """Cancel the migration (best effort) so that nothing keeps running unobserved."""
        try:
            if self.record.migration:
                self.api.delete_migration(self.move.namespace, self.record.migration)
            self._cleanup_temporary_affinity()
            left = f"the migration was cancelled; the VM stays on {self.move.source}"
        except ClusterError:
            left = f"migration {self.record.migration} may still be running: check `vm-rebalance status`"
        self.finish(MoveStatus.FAILED, error=f"{reason}; {left}")


def _rejection(exc: ClusterError) -> str:
    """KubeVirt's admission denials arrive as 400 (or 500 through virt-api): classify by message."""
    text = str(exc)
    for marker in ("Cannot migrate VMI", "in-flight migration detected", "does not exist", "finalized state"):
        if marker in text:
            return text[text.index(marker) :]
    return text


def _migrating(vmi: dict[str, Any] | None) -> bool:
    """Whether the VMI reports a migration that started and has not ended (a failed one has ended)."""
    state = ((vmi or {}).get("status") or {}).get("migrationState") or {}
    return bool(state.get("startTimestamp")) and not (
        state.get("completed") or state.get("failed") or state.get("endTimestamp")
    )


class ColdRunner(Runner):
    """Stop → wait Stopped → re-read → pin to the target → start → verify on the target."""

    def begin(self) -> None:
        """Read the VM, decide, and issue the stop."""
        if self.record.status == "running" and self.record.step:
            self.emit(f"resuming at {self.record.step}")
            return
        self.save(status="running", attempt=self.record.attempt + 1, step="init", error=None)
        self._init()

    def _init(self) -> None:
        ns, name = self.move.namespace, self.move.vm
        try:
            vm = self.api.get_vm(ns, name)
        except ResourceNotFoundError:
            self.finish(MoveStatus.FAILED, error=f"VM '{name}' does not exist in namespace '{ns}'")
            return
        vmi = self.api.get_vmi(ns, name)
        was_running = vmi is not None and vmi_running(vmi)
        if _migrating(vmi) or any(
            migration_phase(m) not in ("Succeeded", "Failed") for m in self.api.migrations_of(ns, name)
        ):
            self.finish(
                MoveStatus.FAILED,
                error="a live migration of this VM is in flight; KubeVirt refuses "
                "placement changes meanwhile — try again when it is finished",
            )
            return
        pins = existing_node_pin(vm)
        ours = ((vm.get("metadata") or {}).get("annotations") or {}).get(PIN_ANNOTATION)
        if pins and not ours and not self.options.replace_affinity and pins != [self.move.target]:
            self.finish(
                MoveStatus.FAILED,
                error=f"the VM already has a required node affinity to {', '.join(pins)}; "
                "replacing it needs your approval (--replace-affinity)",
            )
            return
        # A retry keeps what the first attempt saw: a VM that attempt stopped is still "was running".
        if self.record.was_running is None:
            self.save(original_run_strategy=vm_run_strategy(vm), was_running=was_running)
        if was_running:
            # Journal first: a crash right after the stop request must resume at "stopping".
            self.save(step="stopping")
            try:
                self.api.stop_vm(ns, name)
            except ClusterError as exc:
                if "not running" not in str(exc):
                    self.save(step="init")
                    self.finish(
                        MoveStatus.FAILED, error=f"stopping the VM failed: {exc}; it keeps running on {vmi_node(vmi)}"
                    )
                    return
            self.emit("stopping VM", estimate=60.0)
        else:
            self.save(step="pin")

    def _recover(self) -> str:
        """After a failure between stop and start: start the VM again (never leave it stopped by us)."""
        ns, name = self.move.namespace, self.move.vm
        if not self.record.was_running or self.record.step not in ("stopping", "pin"):
            return ""
        try:
            self.api.start_vm(ns, name)
        except ClusterError as exc:
            if "already running" in str(exc):
                return "; the VM is running"
            return f"; the VM is STOPPED and could not be restarted ({exc}) — start it with `vm-rebalance start`"
        where = "on the target (pinned)" if self.record.pinned else "where the scheduler places it (not pinned)"
        return f"; the VM was started again {where}"

    def give_up(self, reason: str) -> None:
        """End the move as failed, restarting the VM if it was stopped by this move."""
        self.finish(MoveStatus.FAILED, error=f"{reason}{self._recover()}")

    def step(self, active: Mapping[tuple[str, str], dict[str, Any]] | None = None) -> bool:
        """Advance the cold-migration state machine by one read."""
        if self.outcome is not None:
            return True
        ns, name = self.move.namespace, self.move.vm
        step = self.record.step
        try:
            if step == "init":
                self._init()
                return self.outcome is not None
            if step == "stopping":
                vm = self.api.get_vm(ns, name)
                vmi = self.api.get_vmi(ns, name)
                if printable_status(vm) == "Stopped" and (vmi is None or not vmi_running(vmi)):
                    self.save(step="pin")
                    self.emit("stopped")
                    return False
                if self.elapsed > self.options.stop_timeout_seconds:
                    reason = (
                        f"the VM did not stop within {self.options.stop_timeout_seconds:.0f}s "
                        f"(status {printable_status(vm)}); it is not pinned"
                    )
                    return self.finish(MoveStatus.FAILED, error=reason + self._recover())
                self.emit("stopping VM")
                return False
            if step == "pin":
                target = self.move.target

                def edit(vm: dict[str, Any]) -> list[dict[str, Any]]:
                    return affinity_ops(vm, pinned_affinity(vm, target)) + annotation_ops(vm, PIN_ANNOTATION, target)

                self.api.update_vm(ns, name, edit)
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
                except ClusterError as exc:
                    if "already running" not in str(exc):
                        raise
                    # It was started meanwhile (an earlier attempt's recovery, or someone else)
                    # before the pin could place it: stop it again, then pin and start.
                    self.save(step="stopping")
                    self.api.stop_vm(ns, name)
                    self.emit("the VM was running again: stopping it")
                    return False
                self.save(step="starting")
                self.emit("starting VM on target", estimate=30.0)
                return False
            if step == "starting":
                vm = self.api.get_vm(ns, name)
                vmi = self.api.get_vmi(ns, name)
                node = vmi_node(vmi)
                if vmi_running(vmi) and node == self.move.target:
                    self._restore_run_strategy()
                    pinned = True
                    if self.options.unpin_after_cold:
                        unpin_vm(self.api, ns, name)
                        pinned = False
                    return self.finish(MoveStatus.SUCCEEDED, final_node=node, pinned=pinned)
                if vmi_running(vmi) and node and node != self.move.target:
                    return self.finish(
                        MoveStatus.FAILED,
                        final_node=node,
                        error=f"the VM started on {node} instead of {self.move.target}",
                    )
                status = printable_status(vm)
                if status == "ErrorUnschedulable" or self.elapsed > self.options.start_timeout_seconds:
                    return self.finish(
                        MoveStatus.FAILED,
                        error=f"the VM cannot start on {self.move.target} ({status}); it is pinned there and "
                        f"not running — retry, retry elsewhere, or unpin and start it",
                    )
                self.emit("starting VM on target")
                return False
        except ClusterError as exc:
            return self.finish(MoveStatus.FAILED, error=f"{exc} (cold move stopped at step '{step}'){self._recover()}")
        return self.finish(MoveStatus.FAILED, error=f"unknown journal step '{step}'")

    def _restore_run_strategy(self) -> None:
        original = self.record.original_run_strategy
        if not original:
            return
        # start/stop rewrite Always → Halted → Always; Once/Manual/RerunOnFailure may end up
        # different: put back what the user had.
        self.api.update_vm(self.move.namespace, self.move.vm, lambda vm: run_strategy_ops(vm, original))

    def interrupt(self) -> str:
        """Never leave a VM stopped by us: if it was stopped and not yet started, start it."""
        ns, name = self.move.namespace, self.move.vm
        if self.record.step in ("stopping", "pin") and self.record.was_running:
            try:
                self.api.start_vm(ns, name)
                state = "was stopped; start requested again (it may start on its old node if not pinned yet)"
            except ClusterError as exc:
                state = f"is STOPPED and could not be restarted ({exc}): start it with vm-rebalance start"
        elif self.record.step == "starting":
            state = "is starting on the target"
        else:
            state = "was not changed"
        self.finish(MoveStatus.FAILED, error=f"interrupted: the VM {state}")
        return f"{ns}/{name}: {state}"


def unpin_vm(api: KubeVirtApi, namespace: str, name: str) -> bool:
    """Remove the node pin vm-rebalance added; False when there was none.

    Raises:
        InfeasiblePlanError: the VM has a node pin vm-rebalance did not add (it is the user's).
    """
    vm = api.get_vm(namespace, name)
    ours = ((vm.get("metadata") or {}).get("annotations") or {}).get(PIN_ANNOTATION)
    if not ours:
        pins = existing_node_pin(vm)
        if pins:
            raise InfeasiblePlanError(
                f"the node pin of {namespace}/{name} (to {', '.join(pins)}) was not added by vm-rebalance",
                hint="it is left alone; edit the VM's spec.template.spec.affinity yourself if it should go",
            )
        return False

    def edit(current: dict[str, Any]) -> list[dict[str, Any]]:
        return affinity_ops(current, unpinned_affinity(current, str(ours))) + annotation_ops(
            current, PIN_ANNOTATION, None
        )

    api.update_vm(namespace, name, edit)
    return True


def runner_for(move: Move, **kwargs: Any) -> Runner:
    """The runner for a move's method."""
    return LiveRunner(move, **kwargs) if move.method is MigrationMethod.LIVE else ColdRunner(move, **kwargs)
