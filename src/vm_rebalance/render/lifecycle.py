"""Start / stop / restart and unpin as documents: what a human approves (the seeds' conversation
around them is in `render.dialogue`).

`lifecycle_plan_document` is pure (the cluster state in, a versioned document out).
"""

from collections.abc import Sequence
from typing import Any

from vm_rebalance.model import ClusterState
from vm_rebalance.model.execution import Action
from vm_rebalance.model.thresholds import BATCH_SPLIT, BATCH_WARN
from vm_rebalance.render.text import md

LIFECYCLE_IMPACT = {
    Action.START: "consumes resources (CPU/memory) on the node it is scheduled to",
    Action.STOP: "graceful shutdown: the VM's services stop until it is started again",
    Action.RESTART: "brief interruption (~1-2 min): stop, verify stopped, start, verify running",
}


def batch_warnings(count: int) -> list[str]:
    """The seeds' batch warnings for a lifecycle operation on ``count`` VMs."""
    if count > BATCH_SPLIT:
        return [f"{count} VMs in one batch: consider splitting it (more than {BATCH_SPLIT})"]
    if count > BATCH_WARN:
        return [f"{count} VMs in one batch (more than {BATCH_WARN}): review carefully"]
    return []


def lifecycle_plan_document(state: ClusterState, action: Action, vms: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """What a start / stop / restart of ``vms`` would do, for approval (VMs not found have status ``not found``)."""
    rows: list[dict[str, Any]] = []
    warnings: list[str] = []
    for namespace, name in vms:
        vm = state.vm(namespace, name)
        if vm is None:
            rows.append(
                {"namespace": namespace, "name": name, "status": "not found", "node": None, "run_strategy": None}
            )
            continue
        rows.append(
            {
                "namespace": namespace,
                "name": name,
                "status": vm.printable_status,
                "node": vm.node,
                "run_strategy": vm.run_strategy,
            }
        )
        if action is Action.START and vm.running:
            warnings.append(f"{namespace}/{name} is already running: nothing to do for it")
        elif action is Action.STOP and not vm.running:
            warnings.append(f"{namespace}/{name} is not running: nothing to do for it")
        elif action is Action.RESTART and not vm.running:
            warnings.append(f"{namespace}/{name} is not running: restart will only start it")
    warnings += batch_warnings(len(vms))
    return {
        "apiVersion": "vm-rebalance/v1",
        "kind": "LifecyclePlan",
        "action": action.value,
        "impact": LIFECYCLE_IMPACT[action],
        "vms": rows,
        "warnings": warnings,
    }


def unpin_plan_document(namespace: str, name: str, pinned_to: Sequence[str]) -> dict[str, Any]:
    """What `unpin` would change on one VM, for approval."""
    return {
        "apiVersion": "vm-rebalance/v1",
        "kind": "UnpinPlan",
        "namespace": namespace,
        "vm": name,
        "pinned_to": list(pinned_to),
        "effect": (
            "removes the required node affinity (kubernetes.io/hostname) a cold migration added; the VM keeps "
            "running where it is, and later restarts may place it on any suitable node"
        )
        if pinned_to
        else "nothing: the VM has no node pin",
    }


def unpin_plan_markdown(doc: dict[str, Any]) -> str:
    """The unpin plan as Markdown."""
    ref = f"{doc['namespace']}/{doc['vm']}"
    if not doc["pinned_to"]:
        return f"## 📌 Unpin {md(ref)}\n\n{md(ref)} has no node pin: nothing to do.\n"
    return (
        f"## 📌 Unpin {md(ref)}\n\n| VM | Pinned To | After |\n|---|---|---|\n"
        f"| {md(ref)} | {md(', '.join(doc['pinned_to']))} | any suitable node |\n\n"
        f"**Effect:** {doc['effect']}\n"
    )
