"""VM lifecycle and pins: start / stop / restart with verification, unpin, what a VM is pinned to."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from vm_rebalance.errors import ResourceNotFoundError
from vm_rebalance.executor.lifecycle import run_lifecycle
from vm_rebalance.executor.runners import unpin_vm
from vm_rebalance.model import ClusterState
from vm_rebalance.model.execution import Action, LifecycleReport, LifecycleResult
from vm_rebalance.render.lifecycle import LIFECYCLE_IMPACT, lifecycle_plan_document, unpin_plan_document
from vm_rebalance.service.names import missing_vm, require_vms
from vm_rebalance.service.session import Session


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
    return LifecyclePlan(action=action, vms=tuple(refs), document=lifecycle_plan_document(state, action, refs))


def lifecycle(
    session: Session,
    action: Action,
    vms: Sequence[tuple[str, str]],
    *,
    report: LifecycleReport = lambda *_: None,
    timeout_seconds: float = 600.0,
) -> list[LifecycleResult]:
    """Start / stop / restart VMs with verification."""
    return run_lifecycle(session.api, action, vms, report=report, timeout_seconds=timeout_seconds)


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
