"""The cluster as the tool sees it: nodes, VMs and what constrains their placement.

Pure data: frozen dataclasses, quantities as integers in base units (millicores, bytes),
no I/O and no third-party imports. Built by `kube/convert.py` from API objects or
snapshot files; read by the planner, the renderers and the executor.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import NewType

from vm_rebalance.model.signals import Observation, Pressure

NodeName = NewType("NodeName", str)
VmRef = NewType("VmRef", str)
"""A VM's identity: ``"namespace/name"``."""

GIB = 1024**3
DO_NOT_MOVE_ANNOTATION = "vm-rebalance.io/do-not-move"
"""VMs whose annotation (on the VM) is ``"true"`` are never moved by the automatic planner."""

CONTROL_PLANE_LABELS = ("node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master")
SCHEDULABLE_LABEL = "kubevirt.io/schedulable"
HOSTNAME_LABEL = "kubernetes.io/hostname"

_EMPTY: Mapping[str, str] = MappingProxyType({})


def vm_ref(namespace: str, name: str) -> VmRef:
    """The ``namespace/name`` identity of a VM."""
    return VmRef(f"{namespace}/{name}")


@dataclass(frozen=True, slots=True)
class Resources:
    """CPU and memory amounts."""

    cpu_millicores: int = 0
    memory_bytes: int = 0

    def __add__(self, other: "Resources") -> "Resources":
        return Resources(self.cpu_millicores + other.cpu_millicores, self.memory_bytes + other.memory_bytes)

    def __sub__(self, other: "Resources") -> "Resources":
        return Resources(self.cpu_millicores - other.cpu_millicores, self.memory_bytes - other.memory_bytes)

    def fits_in(self, free: "Resources") -> bool:
        """Whether this amount fits in ``free`` on both dimensions."""
        return self.cpu_millicores <= free.cpu_millicores and self.memory_bytes <= free.memory_bytes


class TaintEffect(StrEnum):
    """Kubernetes taint effects."""

    NO_SCHEDULE = "NoSchedule"
    PREFER_NO_SCHEDULE = "PreferNoSchedule"
    NO_EXECUTE = "NoExecute"


@dataclass(frozen=True, slots=True)
class Taint:
    """A node taint."""

    key: str
    effect: str
    value: str = ""

    def __str__(self) -> str:
        return f"{self.key}={self.value}:{self.effect}" if self.value else f"{self.key}:{self.effect}"


@dataclass(frozen=True, slots=True)
class Toleration:
    """A pod toleration, matched as the Kubernetes scheduler matches it."""

    key: str = ""
    operator: str = "Equal"
    value: str = ""
    effect: str = ""

    def tolerates(self, taint: Taint) -> bool:
        """Whether this toleration tolerates ``taint``."""
        if self.effect and self.effect != taint.effect:
            return False
        if not self.key:
            # An empty key with operator Exists tolerates everything.
            return self.operator == "Exists"
        if self.key != taint.key:
            return False
        if self.operator == "Exists":
            return True
        return self.value == taint.value


@dataclass(frozen=True, slots=True)
class Requirement:
    """A label (or field) requirement: ``key operator values``."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfy this requirement (node-selector and label-selector operators)."""
        present = self.key in labels
        value = labels.get(self.key)
        op = self.operator
        if op == "In":
            return present and value in self.values
        if op == "NotIn":
            return not present or value not in self.values
        if op == "Exists":
            return present
        if op == "DoesNotExist":
            return not present
        if op in ("Gt", "Lt"):
            if not present or not self.values:
                return False
            try:
                have, want = int(value or ""), int(self.values[0])
            except ValueError:
                return False
            return have > want if op == "Gt" else have < want
        return False


@dataclass(frozen=True, slots=True)
class NodeSelectorTerm:
    """One term of a required node affinity; terms are ORed, requirements inside are ANDed."""

    match_expressions: tuple[Requirement, ...] = ()
    match_fields: tuple[Requirement, ...] = ()

    def matches(self, node_name: str, labels: Mapping[str, str]) -> bool:
        """Whether the node satisfies every requirement of this term."""
        if not self.match_expressions and not self.match_fields:
            return False  # an empty term matches no objects (Kubernetes semantics)
        fields = {"metadata.name": node_name}
        return all(r.matches(labels) for r in self.match_expressions) and all(
            r.matches(fields) for r in self.match_fields
        )


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """A Kubernetes label selector (matchLabels + matchExpressions)."""

    match_labels: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    match_expressions: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` are selected."""
        return all(labels.get(k) == v for k, v in self.match_labels.items()) and all(
            r.matches(labels) for r in self.match_expressions
        )

    def __hash__(self) -> int:
        return hash((tuple(sorted(self.match_labels.items())), self.match_expressions))


@dataclass(frozen=True, slots=True)
class PodAffinityTerm:
    """A required pod (anti-)affinity term."""

    label_selector: LabelSelector
    topology_key: str = HOSTNAME_LABEL
    namespaces: tuple[str, ...] = ()
    """Empty means the VM's own namespace."""


@dataclass(frozen=True, slots=True)
class TopologySpreadConstraint:
    """A topology spread constraint (only ``DoNotSchedule`` ones are hard)."""

    max_skew: int
    topology_key: str
    when_unsatisfiable: str
    label_selector: LabelSelector


@dataclass(frozen=True, slots=True, kw_only=True)
class Placement:
    """Where a VM may run: everything the scheduler checks for its launcher pod."""

    node_selector: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    required_node_terms: tuple[NodeSelectorTerm, ...] = ()
    """Required node affinity terms (ORed); empty means no required node affinity."""
    tolerations: tuple[Toleration, ...] = ()
    pod_anti_affinity: tuple[PodAffinityTerm, ...] = ()
    pod_affinity: tuple[PodAffinityTerm, ...] = ()
    topology_spread: tuple[TopologySpreadConstraint, ...] = ()
    preferred_node_affinity: bool = False
    """Whether preferred (soft) node affinity terms exist; informational only."""

    def __hash__(self) -> int:
        return hash(
            (
                tuple(sorted(self.node_selector.items())),
                self.required_node_terms,
                self.tolerations,
                self.pod_anti_affinity,
                self.pod_affinity,
                self.topology_spread,
            )
        )


class StorageKind(StrEnum):
    """How a VM's disks constrain migration, from most to least movable."""

    NONE = "none"
    CONTAINER_DISK = "containerdisk"
    RWX = "RWX"
    RWO = "RWO"


@dataclass(frozen=True, slots=True, kw_only=True)
class Volume:
    """A VM volume and what its storage allows."""

    name: str
    source: str
    """``persistentVolumeClaim``, ``dataVolume``, ``containerDisk``, ``cloudInitNoCloud``, …"""
    claim_name: str | None = None
    access_modes: tuple[str, ...] = ()
    """The claim's access modes (status first, else spec); empty when the claim was not found."""
    claim_found: bool = True

    @property
    def storage_kind(self) -> StorageKind:
        """RWX / RWO for claims, container disk, or none for config volumes."""
        if self.claim_name is None:
            return StorageKind.CONTAINER_DISK if self.source == "containerDisk" else StorageKind.NONE
        return StorageKind.RWX if "ReadWriteMany" in self.access_modes else StorageKind.RWO


@dataclass(frozen=True, slots=True, kw_only=True)
class Node:
    """A cluster node with what it offers, what is already asked of it and why it may not host VMs."""

    name: str
    labels: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    taints: tuple[Taint, ...] = ()
    unschedulable: bool = False
    ready: bool = True
    pressure_conditions: tuple[str, ...] = ()
    """Node conditions reporting pressure that are True (MemoryPressure, DiskPressure, PIDPressure); PSI
    figures are ``pressure``."""
    capacity: Resources = Resources()
    allocatable: Resources = Resources()
    kvm_devices: int = 0
    """``devices.kubevirt.io/kvm`` capacity (KubeVirt registers 1000 per node)."""
    requested: Resources = Resources()
    """Sum of the requests of every non-terminated pod on the node (launchers and others)."""
    usage: Resources | None = None
    """Measured usage (metrics.k8s.io, or a window's mean / percentile from Prometheus), when available."""
    pressure: Pressure | None = None
    """Pressure stall information over the observation's window, when the usage source measures it."""
    pods: int = 0
    max_pods: int = 0

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a node needs a name")

    @property
    def is_control_plane(self) -> bool:
        """Whether the node carries a control-plane / master role label."""
        return any(label in self.labels for label in CONTROL_PLANE_LABELS)

    @property
    def free(self) -> Resources:
        """Allocatable minus requests: what the scheduler can still place."""
        return self.allocatable - self.requested

    def __hash__(self) -> int:
        return hash(self.name)


@dataclass(frozen=True, slots=True, kw_only=True)
class VirtualMachine:
    """A KubeVirt VirtualMachine, with its running instance's facts when it runs."""

    namespace: str
    name: str
    run_strategy: str = "Always"
    printable_status: str = "Unknown"
    running: bool = False
    """A VMI exists and is Running (or migrating)."""
    node: str | None = None
    vcpus: int = 1
    guest_memory_bytes: int = 0
    requests: Resources = Resources()
    """The virt-launcher pod's requests (authoritative where the pod was seen, else derived)."""
    usage: Resources | None = None
    """Measured usage of the launcher pod (metrics.k8s.io), when available."""
    instance_type: str | None = None
    labels: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    """Labels of the VMI / launcher pod (the VM template's labels), used by (anti-)affinity."""
    annotations: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    placement: Placement = Placement()
    eviction_strategy: str | None = None
    volumes: tuple[Volume, ...] = ()
    live_migratable: bool | None = None
    """The VMI's LiveMigratable condition; None when unknown (no VMI or no condition)."""
    live_migratable_reason: str | None = None
    live_migratable_message: str | None = None
    migrating: bool = False
    """A migration of this VM is in flight."""
    last_migration_seconds_ago: float | None = None
    """How long ago the newest finished migration of this VM ended, for the anti-thrash cooldown."""
    dirty_rate_bytes_per_second: int | None = None
    """The guest's memory dirty rate (KubeVirt's ``kubevirt_vmi_dirty_rate_bytes_per_second``), when measured."""
    network_bytes_per_second: int | None = None
    """Guest network traffic, received + transmitted, when measured."""
    pinned_to: str | None = None
    """The node vm-rebalance pinned the VM to (an earlier cold move). That pin is the tool's to change:
    it is not part of ``placement``; a later move or drain re-pins (or unpins) the VM."""

    def __post_init__(self) -> None:
        if not self.namespace or not self.name:
            raise ValueError("a VM needs a namespace and a name")
        if self.vcpus < 0 or self.guest_memory_bytes < 0:
            raise ValueError(f"VM {self.namespace}/{self.name} has negative size")

    @property
    def ref(self) -> VmRef:
        """``namespace/name``."""
        return vm_ref(self.namespace, self.name)

    @property
    def storage_kind(self) -> StorageKind:
        """The most constraining storage kind among the VM's volumes."""
        kinds = {v.storage_kind for v in self.volumes}
        for kind in (StorageKind.RWO, StorageKind.RWX, StorageKind.CONTAINER_DISK):
            if kind in kinds:
                return kind
        return StorageKind.NONE

    @property
    def do_not_move(self) -> bool:
        """Whether the user marked this VM as not to be moved by the automatic planner."""
        return self.annotations.get(DO_NOT_MOVE_ANNOTATION, "").lower() == "true"

    def __hash__(self) -> int:
        return hash((self.namespace, self.name))


@dataclass(frozen=True, slots=True, kw_only=True)
class MigrationLimits:
    """KubeVirt's migration settings (KubeVirt CR ``spec.configuration.migrations``)."""

    parallel_per_cluster: int = 5
    parallel_outbound_per_node: int = 2
    completion_timeout_per_gib_seconds: int = 150
    bandwidth_bytes_per_second: int | None = None
    """``bandwidthPerMigration``; None or 0 means unlimited."""
    allow_auto_converge: bool = False
    """``allowAutoConverge``: QEMU throttles the guest until pre-copy converges."""
    allow_post_copy: bool = False
    """``allowPostCopy``: a migration that does not converge switches to post-copy."""

    def __post_init__(self) -> None:
        if self.parallel_per_cluster < 1 or self.parallel_outbound_per_node < 1:
            raise ValueError("migration limits must be at least 1")


@dataclass(frozen=True, slots=True, kw_only=True)
class InFlightMigration:
    """A migration that is not finished yet."""

    namespace: str
    name: str
    vm: str
    phase: str
    source: str | None = None
    target: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterState:
    """Everything the planner and renderers need to know about a cluster at one moment."""

    nodes: tuple[Node, ...]
    vms: tuple[VirtualMachine, ...]
    limits: MigrationLimits = MigrationLimits()
    kubevirt_version: str | None = None
    metrics_available: bool = False
    """Whether usage came from metrics.k8s.io (otherwise the basis is requests)."""
    migrations: tuple[InFlightMigration, ...] = ()
    notes: tuple[str, ...] = ()
    """Things the user should know about how the state was read (e.g. metrics missing)."""
    source: str = "cluster"
    """``cluster`` or ``snapshot``; never a path."""
    observation: Observation | None = None
    """How the usage was observed (source, window, statistic, PSI); None when there is no usage."""
    usage_warnings: tuple[str, ...] = ()
    """Usage sources skipped or read only partly (e.g. Prometheus unreachable): plans and reports repeat them."""
    identity: str | None = None
    """The cluster's identity (its kube-system namespace uid) when it was read from a live cluster."""
    _nodes_by_name: Mapping[str, Node] = field(init=False, repr=False, compare=False)
    _vms_by_ref: Mapping[VmRef, VirtualMachine] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        nodes = {n.name: n for n in self.nodes}
        if len(nodes) != len(self.nodes):
            raise ValueError("duplicate node names")
        vms = {v.ref: v for v in self.vms}
        if len(vms) != len(self.vms):
            raise ValueError("duplicate VMs")
        object.__setattr__(self, "_nodes_by_name", nodes)
        object.__setattr__(self, "_vms_by_ref", vms)

    def node(self, name: str) -> Node | None:
        """The node called ``name``, or None."""
        return self._nodes_by_name.get(name)

    def vm(self, namespace: str, name: str) -> VirtualMachine | None:
        """The VM ``namespace/name``, or None."""
        return self._vms_by_ref.get(vm_ref(namespace, name))

    def vms_on(self, node: str) -> tuple[VirtualMachine, ...]:
        """The running VMs placed on ``node``."""
        return tuple(v for v in self.vms if v.node == node and v.running)
