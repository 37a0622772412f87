"""Start / stop / restart as people read it: the plan a human approves, and the results, as Markdown.

`lifecycle_plan_document` is pure (the cluster state in, a versioned document out); the
Markdown forms are for the MCP server (the CLI shows `render.execution.lifecycle_view`).
"""

from collections.abc import Iterable, Sequence
from typing import Any

from vm_rebalance.model import ClusterState
from vm_rebalance.model.execution import Action, LifecycleResult, LifecycleStatus
from vm_rebalance.model.thresholds import BATCH_SPLIT, BATCH_WARN
from vm_rebalance.render.execution import duration_text

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


def _md(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def lifecycle_plan_markdown(doc: dict[str, Any]) -> str:
    """The lifecycle plan as Markdown: what happens to which VM, and its impact."""
    action = doc["action"]
    out = [
        f"## 🔄 VM Lifecycle Plan: {action}",
        "",
        f"**Impact:** {doc['impact']}",
        "",
        "| VM | Namespace | Status Now | Node | RunStrategy | Action |",
        "|---|---|---|---|---|---|",
    ]
    for v in doc["vms"]:
        out.append(
            f"| {_md(v['name'])} | {_md(v['namespace'])} | {_md(v['status'])} | {_md(v['node'] or '-')} | "
            f"{_md(v['run_strategy'] or '-')} | {action} |"
        )
    out += ["", f"**Total:** {len(doc['vms'])} VM(s) to {action}"]
    if doc["warnings"]:
        out += ["", "**Warnings:**"] + [f"- ⚠ {w}" for w in doc["warnings"]]
    return "\n".join(out) + "\n"


def lifecycle_results_markdown(results: Iterable[LifecycleResult]) -> str:
    """Results of start / stop / restart as Markdown."""
    out = [
        "## VM Lifecycle Results",
        "",
        "| VM | Action | Result | Status | RunStrategy | Duration | Message |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        icon = "✓" if r.status is LifecycleStatus.DONE else ("=" if r.status is LifecycleStatus.ALREADY else "✗")
        out.append(
            f"| {_md(f'{r.namespace}/{r.name}')} | {r.action.value} | {icon} {r.status.value} | "
            f"{_md(r.printable_status or '-')} | {_md(r.run_strategy or '-')} | "
            f"{duration_text(r.duration_seconds)} | {_md(r.message)} |"
        )
    return "\n".join(out) + "\n"


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
        return f"## 📌 Unpin {ref}\n\n{ref} has no node pin: nothing to do.\n"
    return (
        f"## 📌 Unpin {ref}\n\n| VM | Pinned To | After |\n|---|---|---|\n"
        f"| {_md(ref)} | {_md(', '.join(doc['pinned_to']))} | any suitable node |\n\n"
        f"**Effect:** {doc['effect']}\n"
    )
