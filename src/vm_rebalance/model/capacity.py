"""A capacity and right-sizing report: action bands, headroom, N+1, right-sizing, workload classes, slots.

Pure data plus its versioned document form (``kind: CapacityReport``). The numbers are computed
in ``service/capacity.py``; the renderers (``render/report.py``, ``render/html.py``) only format
them. Every optional part is a ``Section`` that is either present or absent *with the reason*,
so no renderer ever shows a chart or table for data that does not exist.

The seeds' capacity figures (seed 003, "Capacity Planning"): action bands on cluster utilisation
(< 70 % healthy, 70–80 % plan for expansion, > 80 % add nodes urgently, > 90 % emergency) and
headroom (20 % minimum, 20–30 % dev/test, 30–40 % production).
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from vm_rebalance.model.cluster import Resources
from vm_rebalance.model.plan import Plan
from vm_rebalance.model.signals import Pressure, UtilisationSeries

REPORT_API_VERSION = "vm-rebalance/v1"
REPORT_KIND = "CapacityReport"

BAND_PLAN = 0.70
BAND_URGENT = 0.80
BAND_EMERGENCY = 0.90
HEADROOM_MINIMUM = 0.20
HEADROOM_PRODUCTION = (0.30, 0.40)

_EMPTY_COUNTS: Mapping[str, int] = MappingProxyType({})


class Band(StrEnum):
    """Seed 003's action thresholds on utilisation (the higher of CPU and memory)."""

    HEALTHY = "healthy"
    """Below 70 %."""
    PLAN = "plan"
    """70–80 %: plan for expansion."""
    URGENT = "urgent"
    """Above 80 %: add nodes urgently."""
    EMERGENCY = "emergency"
    """Above 90 %: emergency capacity issue."""


CLUSTER_ACTIONS: Mapping[Band, str] = MappingProxyType(
    {
        Band.HEALTHY: "Healthy headroom: no action needed",
        Band.PLAN: "Plan for expansion",
        Band.URGENT: "Add nodes urgently",
        Band.EMERGENCY: "Emergency capacity issue: add capacity now",
    }
)
NODE_ACTIONS: Mapping[Band, str] = MappingProxyType(
    {
        Band.HEALTHY: "-",
        Band.PLAN: "watch: approaching the warning levels",
        Band.URGENT: "move load off it (vm-rebalance plan --goal performance)",
        Band.EMERGENCY: "move load off it now; if the cluster is high too, add nodes",
    }
)
BAND_MEANINGS: Mapping[Band, str] = MappingProxyType(
    {
        Band.HEALTHY: "< 70 %",
        Band.PLAN: "70–80 %",
        Band.URGENT: "> 80 %",
        Band.EMERGENCY: "> 90 %",
    }
)


def band_of(utilisation: float) -> Band:
    """The action band of a utilisation fraction (0.7 is already "plan"; 0.8 still is)."""
    if utilisation > BAND_EMERGENCY:
        return Band.EMERGENCY
    if utilisation > BAND_URGENT:
        return Band.URGENT
    if utilisation >= BAND_PLAN:
        return Band.PLAN
    return Band.HEALTHY


class HeadroomStatus(StrEnum):
    """Free capacity against seed 003's targets."""

    BELOW_MINIMUM = "below-minimum"
    """Under 20 % free: rebalancing becomes difficult."""
    DEV_TEST = "dev-test"
    """20–30 % free: meets the minimum (enough for dev/test), below the production target."""
    PRODUCTION = "production"
    """30–40 % free: the production target."""
    AMPLE = "ample"
    """Over 40 % free: above the production target (room to consolidate)."""


HEADROOM_MEANINGS: Mapping[HeadroomStatus, str] = MappingProxyType(
    {
        HeadroomStatus.BELOW_MINIMUM: "below the 20 % minimum: rebalancing and failover become difficult",
        HeadroomStatus.DEV_TEST: "meets the 20 % minimum (dev/test), below the 30–40 % production target",
        HeadroomStatus.PRODUCTION: "within the 30–40 % production target",
        HeadroomStatus.AMPLE: "above the 30–40 % production target: room to consolidate",
    }
)


def headroom_status(free: float) -> HeadroomStatus:
    """Where a free-capacity fraction stands against 20 % and 30–40 %."""
    if free < HEADROOM_MINIMUM:
        return HeadroomStatus.BELOW_MINIMUM
    if free < HEADROOM_PRODUCTION[0]:
        return HeadroomStatus.DEV_TEST
    if free <= HEADROOM_PRODUCTION[1]:
        return HeadroomStatus.PRODUCTION
    return HeadroomStatus.AMPLE


@dataclass(frozen=True, slots=True)
class Utilisation:
    """CPU and memory as fractions of allocatable."""

    cpu: float
    memory: float

    @property
    def peak(self) -> float:
        """The higher of the two: what the bands are judged on."""
        return max(self.cpu, self.memory)


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeCapacity:
    """One node: its load on the report's basis, by requests and by measured usage, and its band."""

    name: str
    eligible: bool
    """Whether it can receive migrated VMs (Ready, schedulable, KVM, worker)."""
    flags: tuple[str, ...] = ()
    vms: int = 0
    allocatable: Resources
    utilisation: Utilisation
    """On the report's basis (usage where measured, else requests)."""
    requests: Utilisation
    usage: Utilisation | None = None
    band: Band
    pressure: Pressure | None = None
    """Pressure stall information over the observation's window, when measured."""
    signal: str | None = None
    """Why the band is higher than utilisation alone says (e.g. CPU pressure at 75 % CPU)."""


_NO_SERIES: Mapping[str, UtilisationSeries] = MappingProxyType({})


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterCapacity:
    """The cluster over the nodes that can host VMs (Total used / Total capacity, seed 003)."""

    nodes: int
    eligible_nodes: int
    vms: int
    running_vms: int
    allocatable: Resources
    utilisation: Utilisation
    requests: Utilisation
    usage: Utilisation | None
    band: Band


@dataclass(frozen=True, slots=True, kw_only=True)
class Headroom:
    """Free capacity (1 − utilisation) cluster-wide, on the basis and by requests."""

    cpu: float
    memory: float
    requests_cpu: float
    requests_memory: float
    status: HeadroomStatus
    """Judged on the lower of CPU and memory on the report's basis."""
    requests_status: HeadroomStatus
    """The same by requests: what the scheduler can still place."""

    @property
    def free(self) -> float:
        """The lower of CPU and memory headroom on the report's basis."""
        return min(self.cpu, self.memory)


@dataclass(frozen=True, slots=True, kw_only=True)
class Unplaced:
    """A VM of the lost node that finds no other node, and why (the planner's words)."""

    namespace: str
    vm: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class NPlusOne:
    """Can the cluster lose its largest node? Its VMs placed elsewhere by the planner's drain goal."""

    node: str
    why: str
    """Why this node was chosen (largest allocatable memory, then CPU)."""
    vms: int
    """Running VMs on it."""
    placed: int
    unplaced: tuple[Unplaced, ...] = ()
    make_room_moves: int = 0
    """Other VMs the planner would move to make room."""
    cold: int = 0
    """Of the placed VMs, how many cannot move live (in a real failure all of them restart)."""
    after: Utilisation | None = None
    """Cluster utilisation (basis) over the remaining eligible nodes once its VMs run there."""
    after_band: Band | None = None
    hottest_after: str | None = None
    hottest_after_utilisation: Utilisation | None = None

    @property
    def fits(self) -> bool:
        """Every VM of the lost node finds a place."""
        return not self.unplaced


class SizingDirection(StrEnum):
    """Which way a VM should be resized."""

    SHRINK = "shrink"
    GROW = "grow"


@dataclass(frozen=True, slots=True, kw_only=True)
class SizingAdvice:
    """One right-sizing finding with its evidence: usage vs requests vs guest size."""

    namespace: str
    vm: str
    node: str | None
    resource: str
    """``cpu`` (vCPUs, usage in millicores) or ``memory`` (bytes)."""
    direction: SizingDirection
    guest: int
    """The guest's size: vCPUs, or guest memory bytes."""
    suggested: int
    """A guest size that would put usage near the seed's target (CPU 60–70 %, memory 70–80 %)."""
    used: int
    """Measured usage: CPU millicores, or guest memory bytes (pod working set less launcher overhead)."""
    requested: int
    """The launcher pod's request: CPU millicores, or memory bytes."""
    utilisation: float
    """``used`` as a fraction of the guest size."""


class WorkloadClass(StrEnum):
    """Seed 003's usage-pattern categories."""

    CPU = "cpu"
    MEMORY = "memory"
    IO = "io"
    NETWORK = "network"


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkloadClassification:
    """A VM's workload classes, where each came from, and what that means for migrating it."""

    namespace: str
    vm: str
    node: str | None
    classes: tuple[WorkloadClass, ...]
    workload_type: str | None = None
    """A seed 003 workload type named in the annotation (database, streaming, …)."""
    evidence: tuple[str, ...] = ()
    considerations: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class MigrationSlots:
    """Migrations in flight against the cluster's limits (seed 003: warning > 80 %, critical at the limit)."""

    in_flight: int
    cluster_limit: int
    per_node_limit: int
    outbound: Mapping[str, int] = field(default_factory=lambda: _EMPTY_COUNTS)
    """Migrations in flight per source node (those whose source is known)."""
    status: str = "ok"
    """ok / warning / critical."""

    @property
    def usage(self) -> float:
        """In-flight migrations as a fraction of the cluster limit."""
        return self.in_flight / self.cluster_limit if self.cluster_limit else 0.0

    @property
    def nodes_at_limit(self) -> tuple[str, ...]:
        """Source nodes with their outbound limit in flight."""
        return tuple(sorted(n for n, k in self.outbound.items() if k >= self.per_node_limit))


@dataclass(frozen=True, slots=True)
class Section:
    """Whether an optional part of the report has data; when it does not, why."""

    name: str
    available: bool
    reason: str | None = None


SECTION_TITLES: Mapping[str, str] = MappingProxyType(
    {
        "n_plus_one": "N+1: losing the largest node",
        "right_sizing": "Right-sizing",
        "workload_classes": "Workload classes",
        "migration_slots": "Migration slots",
        "plan": "Plan: nodes before → after",
        "utilisation_over_time": "Utilisation over time",
        "pressure": "Pressure (PSI)",
        "io_network_metrics": "I/O and network metrics",
        "tradeoff": "Move trade-off curve",
    }
)


@dataclass(frozen=True, slots=True, kw_only=True)
class CapacityReport:
    """The whole report (``vm-rebalance report``)."""

    source: str
    basis: str
    """``usage`` or ``requests``: what utilisation, bands and headroom are computed from."""
    observation: str
    """How usage was observed (e.g. one instant metrics.k8s.io reading); what "sustained" can mean here."""
    cluster: ClusterCapacity
    headroom: Headroom
    nodes: tuple[NodeCapacity, ...]
    n_plus_one: NPlusOne | None = None
    right_sizing: tuple[SizingAdvice, ...] = ()
    workloads: tuple[WorkloadClassification, ...] = ()
    slots: MigrationSlots | None = None
    plan: Plan | None = None
    sections: tuple[Section, ...] = ()
    warnings: tuple[str, ...] = ()
    kubevirt_version: str | None = None
    series: Mapping[str, UtilisationSeries] = field(default_factory=lambda: _NO_SERIES)
    """Per node: utilisation (fractions of capacity) over the window, when the usage source keeps history."""
    window_seconds: float | None = None
    """The window the usage summarises (None: an instant reading or requests)."""

    def section(self, name: str) -> Section:
        """The named section (absent with no reason when the report does not know it)."""
        return next((s for s in self.sections if s.name == name), Section(name, False, "not computed"))

    @property
    def absent(self) -> tuple[Section, ...]:
        """The optional sections without data, each with its reason."""
        return tuple(s for s in self.sections if not s.available)


# ------------------------------------------------------------------------------ document


def _r(x: float) -> float:
    return round(x, 4)


def _util(u: Utilisation | None) -> dict[str, float] | None:
    return None if u is None else {"cpu": _r(u.cpu), "memory": _r(u.memory)}


def _res(r: Resources) -> dict[str, int]:
    return {"cpu_millicores": r.cpu_millicores, "memory_bytes": r.memory_bytes}


def capacity_report_to_document(report: CapacityReport) -> dict[str, Any]:
    """The versioned document (``-o json|yaml``): ``apiVersion: vm-rebalance/v1``, ``kind: CapacityReport``."""
    return {
        "apiVersion": REPORT_API_VERSION,
        "kind": REPORT_KIND,
        "source": report.source,
        "basis": report.basis,
        "observation": report.observation,
        "kubevirt_version": report.kubevirt_version,
        "thresholds": {
            "bands": {b.value: BAND_MEANINGS[b] for b in Band},
            "headroom": {"minimum": HEADROOM_MINIMUM, "production": list(HEADROOM_PRODUCTION)},
        },
        "cluster": _cluster_document(report),
        "headroom": _headroom_document(report),
        "nodes": [_node_document(n) for n in report.nodes],
        "n_plus_one": _n_plus_one_document(report),
        "right_sizing": [_advice_document(a) for a in report.right_sizing],
        "workload_classes": _workloads_document(report),
        "migration_slots": _slots_document(report),
        "plan": _plan_document(report),
        "window_seconds": report.window_seconds,
        "utilisation_over_time": {
            name: {
                "times": list(series.times),
                "cpu": [_r(x) for x in series.cpu],
                "memory": [_r(x) for x in series.memory],
            }
            for name, series in sorted(report.series.items())
        }
        or None,
        "sections": {s.name: {"available": s.available, "reason": s.reason} for s in report.sections},
        "warnings": list(report.warnings),
    }


def _cluster_document(report: CapacityReport) -> dict[str, Any]:
    c = report.cluster
    return {
        "nodes": c.nodes,
        "eligible_nodes": c.eligible_nodes,
        "vms": c.vms,
        "running_vms": c.running_vms,
        "allocatable": _res(c.allocatable),
        "utilisation": _util(c.utilisation),
        "requests": _util(c.requests),
        "usage": _util(c.usage),
        "band": c.band.value,
        "action": CLUSTER_ACTIONS[c.band],
    }


def _headroom_document(report: CapacityReport) -> dict[str, Any]:
    h = report.headroom
    return {
        "cpu": _r(h.cpu),
        "memory": _r(h.memory),
        "status": h.status.value,
        "meaning": HEADROOM_MEANINGS[h.status],
        "requests": {"cpu": _r(h.requests_cpu), "memory": _r(h.requests_memory), "status": h.requests_status.value},
    }


def _node_document(n: NodeCapacity) -> dict[str, Any]:
    return {
        "name": n.name,
        "eligible": n.eligible,
        "flags": list(n.flags),
        "vms": n.vms,
        "allocatable": _res(n.allocatable),
        "utilisation": _util(n.utilisation),
        "requests": _util(n.requests),
        "usage": _util(n.usage),
        "band": n.band.value,
        "action": NODE_ACTIONS[n.band] if n.band is not Band.HEALTHY else None,
        "pressure": None if n.pressure is None else n.pressure.to_document(),
        "signal": n.signal,
    }


def _n_plus_one_document(report: CapacityReport) -> dict[str, Any] | None:
    n1 = report.n_plus_one
    if n1 is None:
        return None
    return {
        "node": n1.node,
        "why": n1.why,
        "vms": n1.vms,
        "placed": n1.placed,
        "fits": n1.fits,
        "cold": n1.cold,
        "make_room_moves": n1.make_room_moves,
        "unplaced": [{"namespace": u.namespace, "vm": u.vm, "reason": u.reason} for u in n1.unplaced],
        "after": _util(n1.after),
        "after_band": None if n1.after_band is None else n1.after_band.value,
        "hottest_after": None
        if n1.hottest_after is None
        else {"node": n1.hottest_after, "utilisation": _util(n1.hottest_after_utilisation)},
    }


def _advice_document(a: SizingAdvice) -> dict[str, Any]:
    return {
        "namespace": a.namespace,
        "vm": a.vm,
        "node": a.node,
        "resource": a.resource,
        "direction": a.direction.value,
        "guest": a.guest,
        "suggested": a.suggested,
        "used": a.used,
        "requested": a.requested,
        "utilisation": _r(a.utilisation),
    }


def _workloads_document(report: CapacityReport) -> dict[str, Any]:
    return {
        "counts": {k.value: sum(1 for w in report.workloads if k in w.classes) for k in WorkloadClass},
        "vms": [
            {
                "namespace": w.namespace,
                "vm": w.vm,
                "node": w.node,
                "classes": [k.value for k in w.classes],
                "workload_type": w.workload_type,
                "evidence": list(w.evidence),
                "considerations": list(w.considerations),
            }
            for w in report.workloads
        ],
    }


def _slots_document(report: CapacityReport) -> dict[str, Any] | None:
    slots = report.slots
    if slots is None:
        return None
    return {
        "in_flight": slots.in_flight,
        "cluster_limit": slots.cluster_limit,
        "per_node_limit": slots.per_node_limit,
        "usage": _r(slots.usage),
        "status": slots.status,
        "outbound": dict(sorted(slots.outbound.items())),
        "nodes_at_limit": list(slots.nodes_at_limit),
    }


def _plan_document(report: CapacityReport) -> dict[str, Any] | None:
    plan = report.plan
    if plan is None:
        return None
    return {
        "goal": plan.goal.type.value,
        "basis": plan.basis.value,
        "moves": len(plan.moves),
        "tradeoff": None
        if not plan.tradeoff
        else {
            "knee": plan.knee,
            "points": [
                {
                    "moves": p.moves,
                    "objective": _r(p.objective),
                    "gib_moved": round(p.gib_moved, 2),
                    "cold_moves": p.cold_moves,
                }
                for p in plan.tradeoff
            ],
        },
        "nodes": [
            {
                "name": n.name,
                "before": {"vms": n.before.vms, "cpu": _r(n.before.cpu), "memory": _r(n.before.memory)},
                "after": {"vms": n.after.vms, "cpu": _r(n.after.cpu), "memory": _r(n.after.memory)},
            }
            for n in plan.nodes
        ],
    }
