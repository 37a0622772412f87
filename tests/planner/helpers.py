"""Shared checks for planner tests: replay a plan wave by wave and report every broken rule."""

from vm_rebalance.model import ClusterState, MigrationMethod, Plan, Resources
from vm_rebalance.planner.eligibility import fit_reasons, live_blocker

_CAPACITY = "insufficient allocatable"


def violations(state: ClusterState, plan: Plan, *, live_only: bool = False) -> list[str]:
    """Every hard constraint the plan breaks in any wave (empty when it is safe)."""
    out: list[str] = []
    requested = {n.name: n.requested for n in state.nodes}
    alloc = {n.name: n.allocatable for n in state.nodes}
    where = {v.ref: v.node for v in state.vms if v.running and v.node}
    seen: set[str] = set()
    for wave in plan.waves:
        incoming: dict[str, Resources] = {}
        for m in wave:
            vm = state.vm(m.namespace, m.vm)
            if vm is None:
                out.append(f"move {m.id}: unknown VM")
                continue
            if vm.ref in seen:
                out.append(f"move {m.id}: {vm.ref} moves twice")
            seen.add(vm.ref)
            if vm.running and where.get(vm.ref) != m.source:
                out.append(f"move {m.id}: {vm.ref} is not on {m.source}")
            if live_only and vm.running and m.method is MigrationMethod.COLD:
                out.append(f"move {m.id}: cold move under --live-only")
            if m.method is MigrationMethod.LIVE and live_blocker(vm) is not None:
                out.append(f"move {m.id}: live move of a VM that cannot move live")
            incoming[m.target] = incoming.get(m.target, Resources()) + vm.requests
            node = state.node(m.target)
            assert node is not None
            residents = [(str(n), v) for v in state.vms if (n := where.get(v.ref))]
            rules = [r for r in fit_reasons(vm, node, state, residents=residents) if not r.startswith(_CAPACITY)]
            if rules:
                out.append(f"move {m.id}: {vm.ref} → {m.target}: {rules}")
        for target, extra in incoming.items():
            total = requested[target] + extra
            if not total.fits_in(alloc[target]):
                out.append(f"wave: {target} overcommitted ({total} > {alloc[target]})")
        for m in wave:
            vm = state.vm(m.namespace, m.vm)
            assert vm is not None
            requested[m.target] = requested[m.target] + vm.requests
            if m.source in requested:
                requested[m.source] = requested[m.source] - vm.requests
            where[vm.ref] = m.target
        # VMs moving in the same wave must not clash with each other either (in both
        # directions of anti-affinity): check every moved VM against the state after the wave.
        residents = [(str(n), v) for v in state.vms if (n := where.get(v.ref))]
        for m in wave:
            vm = state.vm(m.namespace, m.vm)
            node = state.node(m.target)
            assert vm is not None and node is not None
            clash = [r for r in fit_reasons(vm, node, state, residents=residents) if "anti-affinity" in r]
            if clash:
                out.append(f"move {m.id}: {vm.ref} → {m.target} after its wave: {clash}")
    return out
