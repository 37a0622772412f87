"""VM lifecycle and pins: start / stop / restart with verification, unpin, what a VM is pinned to.

Lifecycle batches are journalled like plans (`vm-rebalance resume ID` continues one a crash
interrupted, starting again a VM its restart had stopped) and hold the cluster's single-writer
lock while they run. A VM that should run but does not is not "already running": the plan says
why and that its instance will be re-created, and the result says whether that fixed it.
"""

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vm_rebalance.errors import ConfigError, ResourceNotFoundError
from vm_rebalance.executor.journal import Journal, JournalKind, LifecycleRecord, RecordStatus
from vm_rebalance.executor.lifecycle import run_lifecycle
from vm_rebalance.executor.runners import unpin_vm
from vm_rebalance.model import ClusterState
from vm_rebalance.model.execution import Action, LifecycleReport, LifecycleResult, LifecycleStatus
from vm_rebalance.render.lifecycle import LIFECYCLE_IMPACT, lifecycle_plan_document, unpin_plan_document
from vm_rebalance.service.identity import require_same_cluster
from vm_rebalance.service.names import missing_vm, require_vms
from vm_rebalance.service.session import Session

CANNOT_RUN = frozenset(
    {
        "ErrorUnschedulable",
        "CrashLoopBackOff",
        "ErrImagePull",
        "ImagePullBackOff",
        "ErrorPvcNotFound",
        "DataVolumeError",
    }
)


@dataclass(frozen=True, slots=True, kw_only=True)
class LifecyclePlan:
    """What a start / stop / restart would do, for approval."""

    action: Action
    vms: tuple[tuple[str, str], ...]
    document: dict[str, Any]

    @property
    def impact(self) -> str:
        """What the action means for the VMs' users."""
        return LIFECYCLE_IMPACT[self.action]

    @property
    def warnings(self) -> tuple[str, ...]:
        """Already in the desired state, batch size."""
        return tuple(self.document["warnings"])

    def to_document(self) -> dict[str, Any]:
        """The LifecyclePlan document."""
        return self.document


def lifecycle_plan(state: ClusterState, action: Action, refs: Sequence[tuple[str, str]]) -> LifecyclePlan:
    """The plan of a lifecycle operation.

    Raises:
        ConfigError: a named VM does not exist (nothing is planned).
    """
    require_vms(state, refs)
    document = lifecycle_plan_document(state, action, refs)
    if action is not Action.STOP:
        for namespace, name in refs:
            vm = state.vm(namespace, name)
            if vm is None or vm.running or vm.run_strategy not in ("Always", "RerunOnFailure"):
                continue
            if vm.printable_status in CANNOT_RUN or vm.printable_status == "Unknown":
                document["warnings"] = [w for w in document.get("warnings", []) if not w.startswith(f"{vm.ref} ")] + [
                    f"{vm.ref} should run (runStrategy {vm.run_strategy}) but does not ({vm.printable_status}): "
                    f"{action.value} re-creates its instance (stop → start) and verifies it runs"
                ]
    return LifecyclePlan(action=action, vms=tuple(refs), document=document)


def lifecycle_journal_id(action: Action, refs: Sequence[tuple[str, str]]) -> str:
    """A new id for a lifecycle batch's journal (``lc-`` and 12 hex digits)."""
    digest = hashlib.sha256(f"{action.value}|{sorted(refs)}|{time.time_ns()}".encode()).hexdigest()
    return f"lc-{digest[:12]}"


@dataclass(frozen=True, slots=True, kw_only=True)
class LifecycleRun:
    """What a lifecycle batch did, and the id that resumes it."""

    results: tuple[LifecycleResult, ...]
    journal_id: str | None = None

    @property
    def complete(self) -> bool:
        """Every VM reached its state (or was already in it)."""
        return all(r.ok for r in self.results)


def lifecycle(
    session: Session,
    action: Action,
    vms: Sequence[tuple[str, str]],
    *,
    report: LifecycleReport = lambda *_: None,
    timeout_seconds: float = 600.0,
    journal_dir: Path | None = None,
    command: str = "",
    lock: bool = True,
    wait_lock_seconds: float = 0.0,
    journal_id: str | None = None,
) -> list[LifecycleResult]:
    """Start / stop / restart VMs with verification, journalled and under the cluster's single-writer lock.

    ``journal_id`` continues that batch (resume); otherwise a new journal is started.

    Raises:
        WriterLockHeldError: another execution holds the lock.
    """
    return list(
        lifecycle_run(
            session,
            action,
            vms,
            report=report,
            timeout_seconds=timeout_seconds,
            journal_dir=journal_dir,
            command=command,
            lock=lock,
            wait_lock_seconds=wait_lock_seconds,
            journal_id=journal_id,
        ).results
    )


def lifecycle_run(
    session: Session,
    action: Action,
    vms: Sequence[tuple[str, str]],
    *,
    report: LifecycleReport = lambda *_: None,
    timeout_seconds: float = 600.0,
    journal_dir: Path | None = None,
    command: str = "",
    lock: bool = True,
    wait_lock_seconds: float = 0.0,
    journal_id: str | None = None,
) -> LifecycleRun:
    """`lifecycle`, returning the journal id with the results."""
    journal_id = journal_id or lifecycle_journal_id(action, vms)
    journal = Journal.open(journal_id, directory=journal_dir)
    if not journal.exists:
        journal.kind = JournalKind.LIFECYCLE
        journal.command = command or f"{action.value} {' '.join(f'{ns}/{name}' for ns, name in vms)}"
        journal.cluster = session.state.identity
        journal.options = {"action": action.value, "timeout_seconds": timeout_seconds}
        for namespace, name in vms:
            journal.lifecycle[f"{namespace}/{name}"] = LifecycleRecord(namespace=namespace, name=name, action=action)
    writer = session.writer_lock(f"{journal.command} (execution {journal_id})") if lock else None
    if writer is not None:
        writer.acquire(wait_seconds=wait_lock_seconds)
        writer.keep_renewing(lambda: None)
    try:
        journal.save()
        results = run_lifecycle(
            session.api, action, vms, report=report, timeout_seconds=timeout_seconds, journal=journal
        )
        if all(r.ok or r.status is LifecycleStatus.NOT_FOUND for r in results):
            journal.finished = True
            journal.save()
    finally:
        if writer is not None:
            writer.release()
    return LifecycleRun(results=tuple(results), journal_id=None if journal.finished else journal_id)


def resume_lifecycle(
    session: Session,
    journal_id: str,
    *,
    report: LifecycleReport = lambda *_: None,
    journal_dir: Path | None = None,
    wait_lock_seconds: float = 0.0,
) -> LifecycleRun:
    """Continue an unfinished lifecycle batch (a VM its restart stopped is started again).

    Raises:
        ConfigError: no such batch, finished, cleared, unreadable, or made for another cluster.
    """
    journal = Journal.open(journal_id, directory=journal_dir)
    if not journal.exists or journal.kind is not JournalKind.LIFECYCLE:
        raise ConfigError(f"no lifecycle batch {journal_id} on this machine")
    if not journal.open_work:
        raise ConfigError(f"execution {journal_id} is finished or was cleared: nothing to resume")
    require_same_cluster(journal.cluster, session.state.identity, what=f"execution {journal_id}")
    action = Action(str(journal.options.get("action") or "start"))
    refs = [(r.namespace, r.name) for r in journal.lifecycle.values() if r.status is not RecordStatus.SUCCEEDED]
    done = [r for r in journal.lifecycle.values() if r.status is RecordStatus.SUCCEEDED]
    run = lifecycle_run(
        session,
        action,
        refs,
        report=report,
        timeout_seconds=float(journal.options.get("timeout_seconds") or 600.0),
        journal_dir=journal_dir,
        journal_id=journal_id,
        wait_lock_seconds=wait_lock_seconds,
    )
    earlier = tuple(
        LifecycleResult(
            namespace=r.namespace,
            name=r.name,
            action=action,
            status=LifecycleStatus.DONE,
            message=f"{r.message or 'done'} (in an earlier run)",
        )
        for r in done
    )
    return LifecycleRun(results=earlier + run.results, journal_id=run.journal_id)


def unpin(session: Session, namespace: str, name: str) -> bool:
    """Remove the node pin a cold move added; False when the VM had none."""
    try:
        return unpin_vm(session.api, namespace, name)
    except ResourceNotFoundError:
        raise missing_vm(session.state, namespace, name) from None


def node_pin(session: Session, namespace: str, name: str) -> list[str]:
    """The nodes a VM is pinned to by a hostname node affinity (what `unpin` removes); empty when none.

    Raises:
        ConfigError: the VM does not exist. ClusterError: the cluster cannot be read.
    """
    try:
        pins = session.api.get_vm(namespace, name).pins
    except ResourceNotFoundError:
        raise missing_vm(session.state, namespace, name) from None
    if not pins.hostname_nodes and pins.marked:
        return [pins.marked]
    return list(pins.hostname_nodes)


def unpin_plan(session: Session, namespace: str, name: str) -> dict[str, Any]:
    """The UnpinPlan document: what `unpin` would remove."""
    return unpin_plan_document(namespace, name, node_pin(session, namespace, name))
