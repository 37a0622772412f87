"""Capacity and right-sizing analysis of a ClusterState (pure: no I/O, the same state gives the same report).

What it computes, with seed 003's numbers (model/capacity.py holds the thresholds):
- per node and cluster-wide utilisation on the basis (measured usage where present, else
  requests), by requests, and by usage; the action band of each;
- headroom against the 20 % minimum and the 30–40 % production target;
- N+1: the largest node is lost and the planner's drain goal places its VMs with the real
  placement rules (taints, selectors, affinity, capacity) — nothing is re-implemented here;
- right-sizing: VMs whose measured usage is far below or above their guest size;
- workload classes from metrics (CPU > 70 % of vCPUs, memory > 80 % of the guest) and from the
  ``vm-rebalance.io/workload-class`` annotation or label;
- migration slots: migrations in flight against the cluster and per-node limits.

Optional inputs come from the usage source and the plan, and are reported as absent sections
with the reason where they do not exist, never invented: utilisation over the window (Prometheus /
Thanos), PSI (Prometheus' node_pressure_*, the kubelet stats summary) — a node under CPU pressure
is in the "urgent" band from 70 % (it is hot even at 75 %) — network traffic per VM (Prometheus),
and the plan's move trade-off curve.
"""

import dataclasses
import math
from collections import Counter
from collections.abc import Iterable

from vm_rebalance.model import (
    GIB,
    Basis,
    ClusterState,
    Goal,
    GoalType,
    MigrationMethod,
    Node,
    Plan,
    Resources,
    VirtualMachine,
)
from vm_rebalance.model.capacity import (
    Band,
    CapacityReport,
    ClusterCapacity,
    Headroom,
    MigrationSlots,
    NodeCapacity,
    NPlusOne,
    Section,
    SizingAdvice,
    SizingDirection,
    Unplaced,
    Utilisation,
    WorkloadClassification,
    band_of,
    headroom_status,
)
from vm_rebalance.model.cluster import DO_NOT_MOVE_ANNOTATION
from vm_rebalance.model.thresholds import (
    CPU_PRESSURE,
    CPU_PRESSURED_WARNING,
    MEMORY_PRESSURE,
    MEMORY_PRESSURED_WARNING,
)
from vm_rebalance.planner import PlanRequest
from vm_rebalance.planner.eligibility import node_flags
from vm_rebalance.planner.workloads import (
    WORKLOAD_ANNOTATION,
    WORKLOAD_TYPES,
    classify_workload,
    guest_memory_used,
    migration_profile,
    profile_considerations,
)
from vm_rebalance.service.planning import propose

CPU_TARGET = 0.65
"""Seed 003's CPU target, 60–70 % average usage: suggested vCPUs put usage near its middle."""
MEMORY_TARGET = 0.75
"""Seed 003's memory target, 70–80 % utilisation."""
CPU_GROW = 0.80
"""Seed 003: CPU warning > 80 % — the guest needs more vCPUs."""
MEMORY_GROW = 0.85
"""Seed 003: memory warning > 85 % — the guest needs more memory."""
CPU_SHRINK = 0.20
"""Below this share of its vCPUs a VM (of 2 vCPUs or more) is over-provisioned."""
MEMORY_SHRINK = 0.30
"""Below this share of its guest memory a VM (of 2 GiB or more) is over-provisioned."""

SLOTS_WARNING = 0.80
"""Seed 003: cluster migration limit warning at > 80 % (4/5), critical at the limit."""

NO_PLAN = "no plan was given (report --plan FILE; plan_id for the MCP tool)"
N_PLUS_ONE_OFF = "not checked: switched off (--no-n-plus-one; n_plus_one: false for the MCP tool)"


def _absent_over_time(state: ClusterState, basis: Basis) -> str:
    obs = state.observation
    if basis is Basis.REQUESTS or obs is None:
        return "no utilisation time series: the report is on requests (no usage source measured the cluster)"
    if obs.sustained:
        return f"no utilisation series came with the {obs.statistic} of {obs.source} (the range queries failed)"
    return (
        f"no utilisation time series: usage comes from {obs.source}, one instant reading (bands are judged on "
        "that reading, not on sustained load; Prometheus over --window gives both)"
    )


def _absent_pressure(state: ClusterState) -> str:
    source = state.observation.source if state.observation is not None else "no usage source"
    return (
        f"no pressure stall information (PSI): {source} reports none (Prometheus with node-exporter's pressure "
        "collector, or the kubelet stats summary on cgroup v2, does)"
    )


IO_NETWORK_ABSENT = (
    "no per-VM network or I/O metrics (KubeVirt's, from Prometheus): I/O- and network-intensive classes come "
    f"from the {WORKLOAD_ANNOTATION} annotation or label alone"
)


def _tradeoff_section(plan: Plan | None) -> Section:
    if plan is None:
        return Section("tradeoff", False, "no move trade-off curve was given (report --plan FILE of a balancing plan)")
    if not plan.tradeoff:
        return Section(
            "tradeoff",
            False,
            f"the {plan.goal.type.value} plan carries no trade-off curve (drain, named moves and plans that move "
            "nothing have none)",
        )
    return Section("tradeoff", True)


def resolve_report_basis(state: ClusterState, basis: str | None, warnings: list[str]) -> Basis:
    """Usage where measured (the default when metrics exist), else requests — with a warning if usage was asked."""
    if basis is None:
        return Basis.USAGE if state.metrics_available else Basis.REQUESTS
    chosen = Basis(basis)
    if chosen is Basis.USAGE and not state.metrics_available:
        warnings.append("usage metrics are not available (metrics.k8s.io): the report uses requests instead")
        return Basis.REQUESTS
    return chosen


def _frac(used: int, total: int) -> float:
    return used / total if total > 0 else 0.0


def _requests_util(node: Node) -> Utilisation:
    a, r = node.allocatable, node.requested
    return Utilisation(_frac(r.cpu_millicores, a.cpu_millicores), _frac(r.memory_bytes, a.memory_bytes))


def _usage_util(node: Node) -> Utilisation | None:
    if node.usage is None:
        return None
    a, u = node.allocatable, node.usage
    return Utilisation(_frac(u.cpu_millicores, a.cpu_millicores), _frac(u.memory_bytes, a.memory_bytes))


def _pressure_band(node: Node, util: Utilisation, band: Band, basis: Basis) -> tuple[Band, str | None]:
    """A node under pressure above the pressured thresholds is hot even below 80 %: at least "urgent"."""
    p = node.pressure
    if p is None or basis is not Basis.USAGE:
        return band, None
    signals = []
    if p.cpu is not None and p.cpu >= CPU_PRESSURE and util.cpu > CPU_PRESSURED_WARNING:
        signals.append(f"CPU pressure {p.cpu * 100:.0f} % of the time at {util.cpu * 100:.0f} % CPU")
    if p.memory is not None and p.memory >= MEMORY_PRESSURE and util.memory > MEMORY_PRESSURED_WARNING:
        signals.append(f"memory pressure {p.memory * 100:.0f} % of the time at {util.memory * 100:.0f} % memory")
    if not signals:
        return band, None
    order = list(Band)
    raised = max(band, Band.URGENT, key=order.index)
    return raised, "; ".join(signals)


def node_capacities(state: ClusterState, basis: Basis) -> tuple[NodeCapacity, ...]:
    """Every node's utilisation (basis, requests, usage) and band, sorted by name; a node under
    pressure above the pressured thresholds is "urgent" even below 80 %, with the signal."""
    counts = Counter(v.node for v in state.vms if v.running and v.node)
    out = []
    for node in sorted(state.nodes, key=lambda n: n.name):
        requests = _requests_util(node)
        usage = _usage_util(node)
        util = usage if basis is Basis.USAGE and usage is not None else requests
        flags = node_flags(node)
        band, signal = _pressure_band(node, util, band_of(util.peak), basis)
        out.append(
            NodeCapacity(
                name=node.name,
                eligible=not flags,
                flags=tuple(str(f) for f in flags),
                vms=counts.get(node.name, 0),
                allocatable=node.allocatable,
                utilisation=util,
                requests=requests,
                usage=usage,
                band=band,
                pressure=node.pressure,
                signal=signal,
            )
        )
    return tuple(out)


def cluster_capacity(state: ClusterState, basis: Basis, warnings: list[str]) -> ClusterCapacity:
    """Seed 003's Total used / Total capacity over the nodes that can host VMs."""
    pool = [n for n in state.nodes if not node_flags(n)]
    if not pool:
        warnings.append("no node can receive migrated VMs: cluster figures cover every node")
        pool = list(state.nodes)
    alloc_cpu = sum(n.allocatable.cpu_millicores for n in pool)
    alloc_mem = sum(n.allocatable.memory_bytes for n in pool)
    req = Utilisation(
        _frac(sum(n.requested.cpu_millicores for n in pool), alloc_cpu),
        _frac(sum(n.requested.memory_bytes for n in pool), alloc_mem),
    )
    usage: Utilisation | None = None
    measured = [n for n in pool if n.usage is not None]
    if state.metrics_available and measured:
        usage = Utilisation(
            _frac(sum(n.usage.cpu_millicores for n in measured if n.usage), alloc_cpu),
            _frac(sum(n.usage.memory_bytes for n in measured if n.usage), alloc_mem),
        )
    if basis is Basis.USAGE:
        # As the planner does: a node without a usage reading counts with its requests.
        def load(n: Node) -> tuple[int, int]:
            r = n.usage if n.usage is not None else n.requested
            return r.cpu_millicores, r.memory_bytes

        loads = [load(n) for n in pool]
        util = Utilisation(_frac(sum(c for c, _ in loads), alloc_cpu), _frac(sum(m for _, m in loads), alloc_mem))
        missing = len(pool) - len(measured)
        if missing:
            warnings.append(f"{missing} node(s) have no usage reading: their requests are used instead")
    else:
        util = req
    return ClusterCapacity(
        nodes=len(state.nodes),
        eligible_nodes=sum(1 for n in state.nodes if not node_flags(n)),
        vms=len(state.vms),
        running_vms=sum(1 for v in state.vms if v.running),
        allocatable=Resources(alloc_cpu, alloc_mem),
        utilisation=util,
        requests=req,
        usage=usage,
        band=band_of(util.peak),
    )


def headroom(cluster: ClusterCapacity) -> Headroom:
    """Free capacity against the 20 % minimum and the 30–40 % production target."""
    u, r = cluster.utilisation, cluster.requests
    free = Utilisation(1.0 - u.cpu, 1.0 - u.memory)
    free_req = Utilisation(1.0 - r.cpu, 1.0 - r.memory)
    return Headroom(
        cpu=free.cpu,
        memory=free.memory,
        requests_cpu=free_req.cpu,
        requests_memory=free_req.memory,
        status=headroom_status(min(free.cpu, free.memory)),
        requests_status=headroom_status(min(free_req.cpu, free_req.memory)),
    )


# ------------------------------------------------------------------------------ N+1


def largest_node(state: ClusterState) -> Node | None:
    """The eligible node with the most allocatable memory (then CPU, then name); None below two eligible nodes."""
    pool = [n for n in state.nodes if not node_flags(n)]
    if len(pool) < 2:
        return None
    return min(pool, key=lambda n: (-n.allocatable.memory_bytes, -n.allocatable.cpu_millicores, n.name))


def _as_failed(state: ClusterState, node: str) -> ClusterState:
    """The state as a failure of ``node`` would leave it: its VMs must run elsewhere whatever their
    do-not-move annotation or a migration in flight says (they restart, they are not asked)."""
    vms = []
    for v in state.vms:
        if v.node == node and v.running and (v.do_not_move or v.migrating):
            annotations = {k: a for k, a in v.annotations.items() if k != DO_NOT_MOVE_ANNOTATION}
            v = dataclasses.replace(v, annotations=annotations, migrating=False)
        vms.append(v)
    return dataclasses.replace(state, vms=tuple(vms))


def n_plus_one(state: ClusterState, basis: Basis, node: Node) -> NPlusOne:
    """Lose ``node``: the planner's drain goal (real placement rules, cold where live is impossible)
    places its VMs; what finds no place is listed with the planner's reason."""
    plan = propose(
        _as_failed(state, node.name),
        PlanRequest(goal=Goal(type=GoalType.DRAIN, node=node.name), basis=basis, cooldown_seconds=0.0),
    )
    on_node = [v for v in state.vms if v.running and v.node == node.name]
    out_moves = [m for m in plan.moves if m.source == node.name]
    unplaced = tuple(
        Unplaced(namespace=s.namespace, vm=s.vm, reason=s.reason) for s in plan.stays if s.node == node.name
    )
    alloc = {n.name: n.allocatable for n in state.nodes}
    remaining = {n.name for n in state.nodes if not node_flags(n) and n.name != node.name}
    after = [c for c in plan.nodes if c.name in remaining]
    after_util: Utilisation | None = None
    hottest: tuple[str, Utilisation] | None = None
    if after:
        cpu_total = sum(alloc[c.name].cpu_millicores for c in after)
        mem_total = sum(alloc[c.name].memory_bytes for c in after)
        after_util = Utilisation(
            _frac(int(sum(c.after.cpu * alloc[c.name].cpu_millicores for c in after)), cpu_total),
            _frac(int(sum(c.after.memory * alloc[c.name].memory_bytes for c in after)), mem_total),
        )
        top = max(after, key=lambda c: (max(c.after.cpu, c.after.memory), c.name))
        hottest = (top.name, Utilisation(top.after.cpu, top.after.memory))
    gib = node.allocatable.memory_bytes / GIB
    return NPlusOne(
        node=node.name,
        why=f"largest node: {gib:.0f} GiB memory, {node.allocatable.cpu_millicores / 1000:g} CPU allocatable",
        vms=len(on_node),
        placed=len(out_moves),
        unplaced=unplaced,
        make_room_moves=len(plan.moves) - len(out_moves),
        cold=sum(1 for m in out_moves if m.method is MigrationMethod.COLD and m.running),
        after=after_util,
        after_band=None if after_util is None else band_of(after_util.peak),
        hottest_after=None if hottest is None else hottest[0],
        hottest_after_utilisation=None if hottest is None else hottest[1],
    )


# ------------------------------------------------------------------------------ right-sizing


def _ceil_gib(n: float) -> int:
    return max(1, math.ceil(n / GIB)) * GIB


def right_sizing(vms: Iterable[VirtualMachine]) -> tuple[SizingAdvice, ...]:
    """Running VMs with measured usage far below or above their guest size, with the evidence."""
    out: list[SizingAdvice] = []
    for vm in sorted(vms, key=lambda v: (v.namespace, v.name)):
        if not vm.running or vm.usage is None:
            continue
        if vm.vcpus > 0:
            used = vm.usage.cpu_millicores
            util = used / (vm.vcpus * 1000)
            want = max(1, math.ceil(used / 1000 / CPU_TARGET))
            direction = _direction(util, CPU_GROW, CPU_SHRINK, want, vm.vcpus, shrinkable=vm.vcpus >= 2)
            if direction is not None:
                out.append(_advice(vm, "cpu", direction, vm.vcpus, want, used, vm.requests.cpu_millicores, util))
        mem_used = guest_memory_used(vm)
        if vm.guest_memory_bytes > 0 and mem_used is not None:
            util = mem_used / vm.guest_memory_bytes
            want_bytes = _ceil_gib(mem_used / MEMORY_TARGET)
            direction = _direction(
                util,
                MEMORY_GROW,
                MEMORY_SHRINK,
                want_bytes,
                vm.guest_memory_bytes,
                shrinkable=vm.guest_memory_bytes >= 2 * GIB,
            )
            if direction is not None:
                out.append(
                    _advice(
                        vm,
                        "memory",
                        direction,
                        vm.guest_memory_bytes,
                        want_bytes,
                        mem_used,
                        vm.requests.memory_bytes,
                        util,
                    )
                )
    return tuple(out)


def _direction(
    util: float, grow: float, shrink: float, want: int, have: int, *, shrinkable: bool
) -> SizingDirection | None:
    if util > grow and want > have:
        return SizingDirection.GROW
    if util < shrink and shrinkable and want < have:
        return SizingDirection.SHRINK
    return None


def _advice(
    vm: VirtualMachine,
    resource: str,
    direction: SizingDirection,
    guest: int,
    suggested: int,
    used: int,
    requested: int,
    util: float,
) -> SizingAdvice:
    return SizingAdvice(
        namespace=vm.namespace,
        vm=vm.name,
        node=vm.node,
        resource=resource,
        direction=direction,
        guest=guest,
        suggested=suggested,
        used=used,
        requested=requested,
        utilisation=util,
    )


# ------------------------------------------------------------------------------ workload classes


def workload_classes(state: ClusterState, warnings: list[str]) -> tuple[WorkloadClassification, ...]:
    """The VMs with at least one class, a declared workload type or a migration the planner treats
    differently (high dirty rate, not converging); the others are general purpose. The considerations
    say what a plan does with each (the planner's own `migration_profile`)."""
    out = []
    bandwidth = state.limits.bandwidth_bytes_per_second
    for vm in sorted(state.vms, key=lambda v: (v.namespace, v.name)):
        c = classify_workload(vm, bandwidth_bytes_per_second=bandwidth, warnings=warnings)
        profile = migration_profile(vm, state.limits) if vm.running else None
        extra = profile_considerations(profile) if profile is not None else ()
        if c.classes or c.workload_type or (profile is not None and (profile.high_dirty or not profile.converges)):
            out.append(dataclasses.replace(c, considerations=tuple(dict.fromkeys((*c.considerations, *extra)))))
    return tuple(out)


# ------------------------------------------------------------------------------ migration slots


def migration_slots(state: ClusterState) -> MigrationSlots:
    """Migrations in flight against the cluster's limits."""
    limits = state.limits
    in_flight = len(state.migrations)
    outbound = Counter(m.source for m in state.migrations if m.source)
    usage = in_flight / limits.parallel_per_cluster
    if in_flight >= limits.parallel_per_cluster:
        status = "critical"
    elif usage >= SLOTS_WARNING or any(k >= limits.parallel_outbound_per_node for k in outbound.values()):
        status = "warning"
    else:
        status = "ok"
    return MigrationSlots(
        in_flight=in_flight,
        cluster_limit=limits.parallel_per_cluster,
        per_node_limit=limits.parallel_outbound_per_node,
        outbound=dict(outbound),
        status=status,
    )


# ------------------------------------------------------------------------------ the report


def _observation(state: ClusterState, basis: Basis) -> str:
    if basis is Basis.REQUESTS:
        return "requests of the virt-launcher pods (what the scheduler counts), no measured usage"
    obs = state.observation
    if obs is None or not obs.sustained:
        source = obs.source if obs is not None else "metrics.k8s.io"
        return f"one instant reading of {source} ({state.source}): not a sustained average" + (
            f"; PSI averaged over {obs.pressure_window_seconds:.0f} s"
            if obs is not None and obs.pressure_window_seconds
            else ""
        )
    return f"{obs.describe()} ({state.source})"


def _plan_warnings(state: ClusterState, plan: Plan) -> list[str]:
    unknown = sorted({n.name for n in plan.nodes} - {n.name for n in state.nodes})
    if not unknown:
        return []
    return [f"the plan names node(s) this cluster does not have: {', '.join(unknown[:5])}"]


def capacity_report(
    state: ClusterState,
    *,
    basis: str | None = None,
    plan: Plan | None = None,
    check_n_plus_one: bool = True,
) -> CapacityReport:
    """The capacity and right-sizing report of ``state`` (pure).

    Args:
        basis: usage or requests (None: usage when the cluster has metrics).
        plan: a plan whose nodes before → after the report shows.
        check_n_plus_one: run the N+1 drain simulation (the costliest part on large clusters).
    """
    warnings: list[str] = []
    chosen = resolve_report_basis(state, basis, warnings)
    nodes = node_capacities(state, chosen)
    cluster = cluster_capacity(state, chosen, warnings)
    n1, n1_section = _n_plus_one_part(state, chosen, check_n_plus_one)
    sizing, sizing_section = _right_sizing_part(state, warnings)
    sections: list[Section] = [n1_section, sizing_section]
    workloads = workload_classes(state, warnings)
    sections.append(Section("workload_classes", True))
    sections.append(Section("migration_slots", True))
    if plan is None:
        sections.append(Section("plan", False, NO_PLAN))
    else:
        sections.append(Section("plan", True))
        warnings += _plan_warnings(state, plan)
    obs = state.observation
    series = dict(obs.series) if obs is not None and chosen is Basis.USAGE else {}
    sections += _measurement_sections(state, chosen, nodes, bool(series))
    sections.append(_tradeoff_section(plan))
    warnings[:0] = [w for w in state.usage_warnings if w not in warnings]
    return CapacityReport(
        source=state.source,
        basis=chosen.value,
        observation=_observation(state, chosen),
        cluster=cluster,
        headroom=headroom(cluster),
        nodes=nodes,
        n_plus_one=n1,
        right_sizing=sizing,
        workloads=workloads,
        slots=migration_slots(state),
        plan=plan,
        sections=tuple(sections),
        warnings=tuple(dict.fromkeys(warnings)),
        kubevirt_version=state.kubevirt_version,
        series=series,
        window_seconds=obs.window_seconds if obs is not None and chosen is Basis.USAGE else None,
    )


def _n_plus_one_part(state: ClusterState, chosen: Basis, check: bool) -> tuple[NPlusOne | None, Section]:
    """The N+1 drain simulation of the largest node, unless switched off or no node can be lost."""
    if not check:
        return None, Section("n_plus_one", False, N_PLUS_ONE_OFF)
    lost = largest_node(state)
    if lost is None:
        return None, Section("n_plus_one", False, "fewer than two nodes can host VMs: no node can be lost")
    return n_plus_one(state, chosen, lost), Section("n_plus_one", True)


def _right_sizing_part(state: ClusterState, warnings: list[str]) -> tuple[tuple[SizingAdvice, ...], Section]:
    """Right-sizing advice for the running VMs with measured usage (a warning counts those without)."""
    measured = [v for v in state.vms if v.running and v.usage is not None]
    if not measured:
        return (), Section("right_sizing", False, "no VM has measured usage (metrics.k8s.io): right-sizing needs usage")
    sizing = right_sizing(measured)
    unmeasured = sum(1 for v in state.vms if v.running and v.usage is None)
    if unmeasured:
        warnings.append(f"{unmeasured} running VM(s) have no usage reading: not assessed for right-sizing")
    return sizing, Section("right_sizing", True)


def _measurement_sections(
    state: ClusterState, chosen: Basis, nodes: tuple[NodeCapacity, ...], has_series: bool
) -> list[Section]:
    """Whether the report has usage over time, node pressure and network readings, and why not."""
    return [
        Section("utilisation_over_time", True)
        if has_series
        else Section("utilisation_over_time", False, _absent_over_time(state, chosen)),
        Section("pressure", True)
        if any(n.pressure is not None for n in nodes)
        else Section("pressure", False, _absent_pressure(state)),
        Section("io_network_metrics", True)  # network measured; I/O classes still declared
        if any(v.network_bytes_per_second is not None for v in state.vms)
        else Section("io_network_metrics", False, IO_NETWORK_ABSENT),
    ]


__all__ = [
    "WORKLOAD_ANNOTATION",
    "WORKLOAD_TYPES",
    "capacity_report",
    "classify_workload",
    "cluster_capacity",
    "headroom",
    "largest_node",
    "migration_slots",
    "n_plus_one",
    "node_capacities",
    "right_sizing",
    "workload_classes",
]
