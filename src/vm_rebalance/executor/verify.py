"""Before anything is reported: what the cluster shows for every move, read now.

The runners decide each move's outcome from what they read while it ran; a report is only
true if it says what the cluster shows when it is printed. `verify` re-reads every move's VM
and instance (node, phase, pins, runStrategy) and corrects the outcome where the cluster
disagrees: a move reported done whose VM is elsewhere is not done; a cancelled or failed live
move whose VM is Running on its target (the migration completed before the cancel landed) is
"moved"; a read that fails says so instead of guessing. `verify_done` does the same for moves
an earlier run (the journal) calls succeeded, before a resume trusts them.
"""

import dataclasses
import logging

from vm_rebalance.errors import ClusterError, ResourceNotFoundError
from vm_rebalance.executor.journal import Journal, RecordStatus
from vm_rebalance.executor.runners import describe_state
from vm_rebalance.kube.kubevirt import KubeVirtApi
from vm_rebalance.kube.views import VmiView, VmView
from vm_rebalance.model import MigrationMethod, Move
from vm_rebalance.model.execution import FailureKind, MoveStatus, Outcome

log = logging.getLogger(__name__)


def _observe(api: KubeVirtApi, move: Move) -> tuple[VmView | None, VmiView | None]:
    try:
        vm = api.get_vm(move.namespace, move.vm)
    except ResourceNotFoundError:
        return None, None
    return vm, api.get_vmi(move.namespace, move.vm)


def arrived(move: Move, vm: VmView | None, vmi: VmiView | None) -> bool:
    """Whether the cluster shows the move done: Running on its target (a stopped VM: pinned to it)."""
    if vm is None:
        return False
    placed = vmi is not None and vmi.running and not vmi.migrating
    if placed and vmi is not None:
        return vmi.node == move.target or bool(move.scheduler_chooses and vmi.node and vmi.node != move.source)
    return not move.running and vmi is None and move.target in vm.pins.ours


def verify(api: KubeVirtApi, outcome: Outcome, journal: Journal | None = None) -> Outcome:
    """``outcome`` as the cluster shows it now (status corrected where the cluster disagrees)."""
    move = outcome.move
    if outcome.status in (MoveStatus.NOT_ATTEMPTED, MoveStatus.PENDING):
        return outcome
    try:
        vm, vmi = _observe(api, move)
    except ClusterError as exc:
        note = f"final state not verified: the cluster could not be read ({exc})"
        return dataclasses.replace(outcome, notes=(*outcome.notes, note), state=None, final_node=None)
    state = describe_state(vm, vmi)
    node = vmi.node if vmi is not None and vmi.running else None
    pinned = vm is not None and move.target in vm.pins.ours
    done = arrived(move, vm, vmi)
    checked = dataclasses.replace(outcome, state=state, final_node=node, pinned=pinned if vm is not None else False)
    if outcome.status is MoveStatus.SUCCEEDED and not done:
        checked = dataclasses.replace(
            checked,
            status=MoveStatus.FAILED,
            failure=FailureKind.WRONG_NODE if vm is not None else FailureKind.VM_NOT_FOUND,
            error=f"reported done, but the cluster shows the VM {state}",
        )
    elif (
        outcome.status is MoveStatus.FAILED
        and move.method is MigrationMethod.LIVE
        and done
        and outcome.failure
        in (
            FailureKind.INTERRUPTED,
            FailureKind.CLUSTER_UNAVAILABLE,
            FailureKind.MIGRATION_TIMEOUT,
            FailureKind.MIGRATION_LOST,
            FailureKind.API_ERROR,
        )
    ):
        checked = dataclasses.replace(
            checked,
            status=MoveStatus.SUCCEEDED,
            failure=None,
            error=None,
            notes=(*outcome.notes, "the migration completed before it could be cancelled: the VM is on its target"),
        )
    if journal is not None and checked.status is not outcome.status:
        record = journal.record(move.id)
        if record is not None:
            record.status = RecordStatus(checked.status.value)
            record.failure = checked.failure
            record.error = checked.error
            record.verified = state
            journal.update(record)
    return checked


def verify_done(api: KubeVirtApi, move: Move) -> tuple[bool | None, str]:
    """Whether a move an earlier run recorded as succeeded is still done (None: cannot tell), and what is seen."""
    try:
        vm, vmi = _observe(api, move)
    except ClusterError as exc:
        log.debug("cannot verify move %s: %s", move.id, exc)
        return None, f"the cluster could not be read ({exc})"
    return arrived(move, vm, vmi), describe_state(vm, vmi)
