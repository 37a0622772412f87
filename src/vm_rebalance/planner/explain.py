"""Why a move is in a plan: why this VM, why this target, why live or cold (for `explain N`)."""

from vm_rebalance.model import GIB, ClusterState, MigrationMethod, Plan
from vm_rebalance.planner.eligibility import fit_reasons, live_blocker, node_flags


def explain_move(state: ClusterState, plan: Plan, move_id: int) -> list[str]:
    """Sentences explaining move ``move_id`` of ``plan`` against ``state``.

    Raises:
        KeyError: no such move.
    """
    move = plan.move(move_id)
    if move is None:
        raise KeyError(move_id)
    vm = state.vm(move.namespace, move.vm)
    lines = [
        f"Move #{move.id}: {move.namespace}/{move.vm} from {move.source or '(stopped)'} to {move.target}, "
        f"{move.method.value} (downtime {move.downtime})."
    ]
    if vm is None:
        lines.append("The VM is no longer in the cluster: this move will be dropped at validation.")
        return lines
    size = f"{vm.vcpus} vCPU, {vm.guest_memory_bytes / GIB:.1f} GiB guest memory"
    lines.append(f"Why this VM: {move.reason or 'named by the user'} ({size}; storage {vm.storage_kind.value}).")
    blocker = live_blocker(vm)
    if move.method is MigrationMethod.LIVE:
        lines.append(
            "Why live: the VM runs and every disk is shared (RWX) or a container disk, and KubeVirt reports "
            "it LiveMigratable — it keeps running, with a pause under a second at cutover."
        )
    elif not vm.running:
        lines.append("Why cold: the VM is stopped, so it is only pinned to the target — no downtime.")
    else:
        lines.append(
            f"Why cold: {blocker or 'cold was requested'} — the VM is stopped, pinned to the target and "
            "started there (~30-60s downtime)."
        )
    node = state.node(move.target)
    if node is None:
        lines.append(f"Target {move.target} no longer exists.")
        return lines
    flags = node_flags(node)
    reasons = fit_reasons(vm, node, state)
    if reasons:
        lines.append(f"Target check now: {move.target} would refuse it — {'; '.join(reasons)}.")
    else:
        free = node.free
        lines.append(
            f"Why {move.target}: it passes every rule (Ready, schedulable, KVM, taints, selectors, affinity) and has "
            f"{free.cpu_millicores / 1000:.1f} CPU / {free.memory_bytes / GIB:.1f} GiB free by requests"
            + ("" if not flags else f" (flags: {', '.join(str(f) for f in flags)})")
            + "."
        )
    change = next((n for n in plan.nodes if n.name == move.target), None)
    if change is not None:
        lines.append(
            f"{move.target} after the plan: CPU {change.before.cpu * 100:.0f}% → {change.after.cpu * 100:.0f}%, "
            f"memory {change.before.memory * 100:.0f}% → {change.after.memory * 100:.0f}%."
        )
    return lines
