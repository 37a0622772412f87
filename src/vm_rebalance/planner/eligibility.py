"""Where a VM may go and how it may move: the one place these rules live.

Pure functions over the model. Every check returns the reasons it fails (empty when it
passes) so that inventory, the planner, `move` validation and the executor's guards all
explain themselves the same way. Rules: design.md §4 and the seeds' node-selection rules.
"""

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from vm_rebalance.model import (
    ClusterState,
    MigrationMethod,
    Node,
    PodAffinityTerm,
    Resources,
    StorageKind,
    TopologySpreadConstraint,
    Violation,
    ViolationKind,
    VirtualMachine,
)
from vm_rebalance.model.cluster import HOSTNAME_LABEL, SCHEDULABLE_LABEL

HARD_TAINT_EFFECTS = frozenset({"NoSchedule", "NoExecute"})


class NodeFlag(StrEnum):
    """Why a node cannot receive migrated VMs (or is worth flagging)."""

    NOT_READY = "NotReady"
    CORDONED = "cordoned"
    NOT_SCHEDULABLE = "not kubevirt-schedulable"
    NO_KVM = "no KVM"
    CONTROL_PLANE = "control-plane"


NODE_FLAG_EXPLANATIONS: Mapping[NodeFlag, str] = {
    NodeFlag.NOT_READY: "node is not Ready",
    NodeFlag.CORDONED: "node is cordoned (SchedulingDisabled)",
    NodeFlag.NOT_SCHEDULABLE: f"node lacks the label {SCHEDULABLE_LABEL}=true",
    NodeFlag.NO_KVM: "node has no devices.kubevirt.io/kvm capacity",
    NodeFlag.CONTROL_PLANE: "node is a control-plane node",
}


FLAG_KINDS: Mapping[NodeFlag, ViolationKind] = {
    NodeFlag.NOT_READY: ViolationKind.NOT_READY,
    NodeFlag.CORDONED: ViolationKind.CORDONED,
    NodeFlag.NOT_SCHEDULABLE: ViolationKind.NOT_SCHEDULABLE,
    NodeFlag.NO_KVM: ViolationKind.NO_KVM,
    NodeFlag.CONTROL_PLANE: ViolationKind.CONTROL_PLANE,
}


def node_flags(node: Node) -> tuple[NodeFlag, ...]:
    """Every reason ``node`` cannot host migrated VMs, in a stable order (empty if eligible)."""
    flags = []
    if not node.ready:
        flags.append(NodeFlag.NOT_READY)
    if node.unschedulable:
        flags.append(NodeFlag.CORDONED)
    if node.labels.get(SCHEDULABLE_LABEL) != "true":
        flags.append(NodeFlag.NOT_SCHEDULABLE)
    if node.kvm_devices <= 0:
        flags.append(NodeFlag.NO_KVM)
    if node.is_control_plane:
        flags.append(NodeFlag.CONTROL_PLANE)
    return tuple(flags)


def is_eligible_target(node: Node) -> bool:
    """Whether ``node`` may receive migrated VMs at all (before looking at a particular VM)."""
    return not node_flags(node)


def untolerated_taints(vm: VirtualMachine, node: Node) -> list[str]:
    """The node's hard taints the VM does not tolerate, as ``key=value:Effect`` strings."""
    return [
        str(t)
        for t in node.taints
        if t.effect in HARD_TAINT_EFFECTS
        # The cordon taint is reported as "cordoned", not as a taint.
        and t.key != "node.kubernetes.io/unschedulable"
        and not any(tol.tolerates(t) for tol in vm.placement.tolerations)
    ]


def static_violations(vm: VirtualMachine, node: Node) -> list[Violation]:
    """Taints, nodeSelector and required node affinity: what depends only on the VM and the node."""
    out = []
    bad_taints = untolerated_taints(vm, node)
    if bad_taints:
        out.append(Violation(ViolationKind.TAINT, f"taint {', '.join(bad_taints)} not tolerated"))
    missing = [f"{k}={v}" for k, v in sorted(vm.placement.node_selector.items()) if node.labels.get(k) != v]
    if missing:
        out.append(Violation(ViolationKind.NODE_SELECTOR, f"nodeSelector {', '.join(missing)} not matched"))
    terms = vm.placement.required_node_terms
    if terms and not any(t.matches(node.name, node.labels) for t in terms):
        out.append(Violation(ViolationKind.NODE_AFFINITY, "required node affinity not satisfied"))
    return out


def static_placement_violations(vm: VirtualMachine, node: Node) -> list[str]:
    """`static_violations` as sentences."""
    return [v.message for v in static_violations(vm, node)]


def capacity_check(vm: VirtualMachine, node: Node, *, extra_requested: Resources = Resources()) -> Violation | None:
    """The VM's launcher-pod requests against the node's free allocatable: a CAPACITY violation, or None.

    ``extra_requested`` is what else is already planned onto the node (e.g. other incoming VMs).
    """
    free = node.free - extra_requested
    parts = []
    if vm.requests.cpu_millicores > free.cpu_millicores:
        parts.append(f"CPU needs {vm.requests.cpu_millicores}m, {max(free.cpu_millicores, 0)}m free")
    if vm.requests.memory_bytes > free.memory_bytes:
        parts.append(f"memory needs {_gib(vm.requests.memory_bytes)}, {_gib(max(free.memory_bytes, 0))} free")
    return Violation(ViolationKind.CAPACITY, "insufficient allocatable: " + "; ".join(parts)) if parts else None


def capacity_violation(vm: VirtualMachine, node: Node, *, extra_requested: Resources = Resources()) -> str | None:
    """`capacity_check` as a sentence, or None."""
    found = capacity_check(vm, node, extra_requested=extra_requested)
    return found.message if found else None


def _gib(n: int) -> str:
    return f"{n / 1024**3:.1f}Gi"


def _term_namespaces(vm: VirtualMachine, term: PodAffinityTerm) -> tuple[str, ...]:
    return term.namespaces or (vm.namespace,)


def _domain(node_labels: Mapping[str, Mapping[str, str]], node_name: str, key: str) -> str | None:
    """The node's value of topology ``key`` (the hostname label defaults to the node's name)."""
    value = node_labels.get(node_name, {}).get(key)
    if value is None and key == HOSTNAME_LABEL:
        return node_name
    return value


def _matching_in_domain(
    vm: VirtualMachine,
    term: PodAffinityTerm,
    domain_value: str | None,
    node_labels: Mapping[str, Mapping[str, str]],
    residents: Iterable[tuple[str, VirtualMachine]],
) -> list[VirtualMachine]:
    """Residents (node, vm) in the same topology domain as ``domain_value`` selected by ``term``."""
    if domain_value is None:
        return []
    namespaces = _term_namespaces(vm, term)
    found = []
    for node_name, other in residents:
        if other is vm or other.ref == vm.ref:
            continue
        if _domain(node_labels, node_name, term.topology_key) != domain_value:
            continue
        if other.namespace in namespaces and term.label_selector.matches(other.labels):
            found.append(other)
    return found


def anti_affinity_holders(
    residents: Iterable[tuple[str, VirtualMachine]],
) -> list[tuple[str, VirtualMachine]]:
    """The residents that declare required pod anti-affinity (the only ones that can repel others)."""
    return [(n, v) for n, v in residents if v.placement.pod_anti_affinity]


def selected_by_anti_affinity(vm: VirtualMachine, holder: VirtualMachine) -> tuple[PodAffinityTerm, ...]:
    """The anti-affinity terms of ``holder`` that select ``vm`` (namespace and labels; not topology)."""
    if holder is vm or holder.ref == vm.ref:
        return ()
    return tuple(
        term
        for term in holder.placement.pod_anti_affinity
        if vm.namespace in _term_namespaces(holder, term) and term.label_selector.matches(vm.labels)
    )


def _symmetric_anti_affinity(
    vm: VirtualMachine,
    target_labels: Mapping[str, str],
    node_labels: Mapping[str, Mapping[str, str]],
    residents: Iterable[tuple[str, VirtualMachine]],
) -> list[Violation]:
    """Existing VMs whose required anti-affinity selects ``vm`` in the target's topology domain.

    The Kubernetes scheduler enforces required anti-affinity symmetrically: an incoming pod
    may not land in a domain where a running pod's anti-affinity term selects it.
    """
    clashes: dict[tuple[str, str], list[str]] = {}
    for node_name, holder in residents:
        if not holder.placement.pod_anti_affinity:
            continue
        for term in selected_by_anti_affinity(vm, holder):
            value = target_labels.get(term.topology_key)
            if value is None or _domain(node_labels, node_name, term.topology_key) != value:
                continue
            clashes.setdefault((term.topology_key, value), []).append(holder.name)
    return [
        Violation(
            ViolationKind.RESIDENT_ANTI_AFFINITY,
            f"anti-affinity of {', '.join(sorted(set(names))[:3])} against it on {key}={value}",
        )
        for (key, value), names in sorted(clashes.items())
    ]


def pod_affinity_checks(
    vm: VirtualMachine,
    node: Node,
    *,
    node_labels: Mapping[str, Mapping[str, str]],
    residents: Sequence[tuple[str, VirtualMachine]],
) -> list[Violation]:
    """Required pod anti-affinity (both directions), pod affinity and hard topology spread of ``vm`` on ``node``.

    Anti-affinity is symmetric, as in the Kubernetes scheduler: ``vm``'s own terms against the
    residents, and every resident's terms against ``vm`` (only residents that declare
    anti-affinity are looked at). ``residents`` are the (node, VM) pairs of running VMs where
    they would be at that moment; ``node_labels`` maps every node name to its labels (topology
    domains).
    """
    out: list[Violation] = []
    labels = dict(node.labels)
    labels.setdefault(HOSTNAME_LABEL, node.name)
    for term in vm.placement.pod_anti_affinity:
        clash = _matching_in_domain(vm, term, labels.get(term.topology_key), node_labels, residents)
        if clash:
            names = ", ".join(sorted(o.name for o in clash)[:3])
            out.append(
                Violation(
                    ViolationKind.ANTI_AFFINITY,
                    f"anti-affinity with {names} on {term.topology_key}={labels.get(term.topology_key)}",
                )
            )
    out += _symmetric_anti_affinity(vm, labels, node_labels, residents)
    for term in vm.placement.pod_affinity:
        if not _matching_in_domain(vm, term, labels.get(term.topology_key), node_labels, residents):
            out.append(
                Violation(ViolationKind.POD_AFFINITY, f"required pod affinity ({term.topology_key}) not satisfied")
            )
    for tsc in vm.placement.topology_spread:
        if tsc.when_unsatisfiable != "DoNotSchedule":
            continue
        found = _spread_violation(vm, tsc, labels, node_labels, residents)
        if found is not None:
            out.append(found)
    return out


def _spread_violation(
    vm: VirtualMachine,
    tsc: TopologySpreadConstraint,
    labels: Mapping[str, str],
    node_labels: Mapping[str, Mapping[str, str]],
    residents: Sequence[tuple[str, VirtualMachine]],
) -> Violation | None:
    counts: Counter[str] = Counter()
    domains = {d for name in node_labels if (d := _domain(node_labels, name, tsc.topology_key)) is not None}
    for node_name, other in residents:
        if other.ref == vm.ref or other.namespace != vm.namespace:
            continue
        value = _domain(node_labels, node_name, tsc.topology_key)
        if value is not None and tsc.label_selector.matches(other.labels):
            counts[value] += 1
    target = labels.get(tsc.topology_key)
    if target is None:
        return Violation(ViolationKind.TOPOLOGY_SPREAD, f"node has no {tsc.topology_key} label (topology spread)")
    minimum = min((counts.get(d, 0) for d in domains), default=0)
    if counts.get(target, 0) + 1 - minimum > tsc.max_skew:
        return Violation(
            ViolationKind.TOPOLOGY_SPREAD, f"topology spread on {tsc.topology_key} would exceed maxSkew {tsc.max_skew}"
        )
    return None


def pod_affinity_violations(
    vm: VirtualMachine,
    node: Node,
    *,
    node_labels: Mapping[str, Mapping[str, str]],
    residents: Sequence[tuple[str, VirtualMachine]],
) -> list[str]:
    """`pod_affinity_checks` as sentences."""
    return [v.message for v in pod_affinity_checks(vm, node, node_labels=node_labels, residents=residents)]


def fit_violations(
    vm: VirtualMachine,
    node: Node,
    state: ClusterState,
    *,
    extra_requested: Resources = Resources(),
    residents: Sequence[tuple[str, VirtualMachine]] | None = None,
    node_labels: Mapping[str, Mapping[str, str]] | None = None,
) -> list[Violation]:
    """Every rule that keeps ``vm`` off ``node`` now (empty when it fits).

    Covers node eligibility, taints, nodeSelector, required node affinity, required pod
    (anti-)affinity and topology spread, and free allocatable by requests. ``residents``
    defaults to where the running VMs are in ``state``; ``node_labels`` (every node's labels)
    to those of ``state`` (callers checking many moves pass them once: linear, not quadratic).
    """
    out = [Violation(FLAG_KINDS[f], NODE_FLAG_EXPLANATIONS[f]) for f in node_flags(node)]
    out += static_violations(vm, node)
    if residents is None:
        residents = [(v.node, v) for v in state.vms if v.running and v.node]
    if node_labels is None:
        node_labels = {n.name: n.labels for n in state.nodes}
    out += pod_affinity_checks(vm, node, node_labels=node_labels, residents=residents)
    if vm.node != node.name:
        capacity = capacity_check(vm, node, extra_requested=extra_requested)
        if capacity:
            out.append(capacity)
    return out


def fit_reasons(
    vm: VirtualMachine,
    node: Node,
    state: ClusterState,
    *,
    extra_requested: Resources = Resources(),
    residents: Sequence[tuple[str, VirtualMachine]] | None = None,
    node_labels: Mapping[str, Mapping[str, str]] | None = None,
) -> list[str]:
    """`fit_violations` as sentences (empty when it fits)."""
    violations = fit_violations(
        vm, node, state, extra_requested=extra_requested, residents=residents, node_labels=node_labels
    )
    return [v.message for v in violations]


class BlockerKind(StrEnum):
    """Why a VM cannot move live."""

    STOPPED = "stopped"
    MIGRATING = "migrating"
    RWO = "rwo"
    NOT_MIGRATABLE = "not-migratable"


@dataclass(frozen=True, slots=True)
class LiveBlocker:
    """Why a VM cannot move live: its kind (for decisions), a short code for tables and a full sentence."""

    code: str
    message: str
    kind: BlockerKind = BlockerKind.NOT_MIGRATABLE


def live_blocker_detail(vm: VirtualMachine) -> LiveBlocker | None:
    """Why ``vm`` cannot move live right now (code + message), or None when it can."""
    if not vm.running:
        return LiveBlocker("stopped", "VM is not running", BlockerKind.STOPPED)
    if vm.migrating:
        return LiveBlocker("migrating", "a migration of this VM is already in flight", BlockerKind.MIGRATING)
    rwo = [v.claim_name for v in vm.volumes if v.storage_kind is StorageKind.RWO]
    if rwo:
        return LiveBlocker(
            "RWO", f"PVC {', '.join(str(c) for c in rwo)} is not ReadWriteMany (RWO storage)", BlockerKind.RWO
        )
    if vm.live_migratable is False:
        reason = vm.live_migratable_reason or "NotMigratable"
        message = f": {vm.live_migratable_message}" if vm.live_migratable_message else ""
        return LiveBlocker(reason, f"VMI is not LiveMigratable ({reason}{message})")
    return None


def live_blocker(vm: VirtualMachine) -> str | None:
    """Why ``vm`` cannot move live right now, or None when it can."""
    detail = live_blocker_detail(vm)
    return detail.message if detail else None


def move_method(vm: VirtualMachine) -> MigrationMethod:
    """Live when the VM can move live, else cold (a stopped VM moves 'cold' without downtime)."""
    return MigrationMethod.LIVE if live_blocker(vm) is None else MigrationMethod.COLD
