"""Shared test factories: small builders, never shared mutable objects.

Tests import them with ``from factories import make_node, make_vm, make_state``."""

from collections.abc import Iterable, Mapping

from vm_rebalance.model import (
    ClusterState,
    MigrationLimits,
    Node,
    Placement,
    Resources,
    Taint,
    VirtualMachine,
    Volume,
)

GI = 1024**3


def make_node(
    name: str = "worker-1",
    *,
    cpu: float = 16,
    memory_gi: float = 64,
    requested_cpu: float = 0.0,
    requested_memory_gi: float = 0.0,
    usage_cpu: float | None = None,
    usage_memory_gi: float | None = None,
    labels: Mapping[str, str] | None = None,
    taints: Iterable[Taint] = (),
    unschedulable: bool = False,
    ready: bool = True,
    kvm: int = 1000,
    control_plane: bool = False,
) -> Node:
    """A KubeVirt-ready worker node unless told otherwise."""
    all_labels = {"kubernetes.io/hostname": name, "kubevirt.io/schedulable": "true"}
    if control_plane:
        all_labels["node-role.kubernetes.io/control-plane"] = ""
    all_labels.update(labels or {})
    alloc = Resources(int(cpu * 1000), int(memory_gi * GI))
    usage = None
    if usage_cpu is not None or usage_memory_gi is not None:
        usage = Resources(int((usage_cpu or 0) * 1000), int((usage_memory_gi or 0) * GI))
    return Node(
        name=name,
        labels=all_labels,
        taints=tuple(taints),
        unschedulable=unschedulable,
        ready=ready,
        capacity=alloc,
        allocatable=alloc,
        kvm_devices=kvm,
        requested=Resources(int(requested_cpu * 1000), int(requested_memory_gi * GI)),
        usage=usage,
    )


def make_vm(
    name: str = "vm-1",
    *,
    namespace: str = "default",
    node: str | None = "worker-1",
    vcpus: int = 2,
    memory_gi: float = 4,
    request_cpu: float | None = None,
    request_memory_gi: float | None = None,
    usage_cpu: float | None = None,
    usage_memory_gi: float | None = None,
    running: bool = True,
    storage: str = "rwx",
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    placement: Placement | None = None,
    live_migratable: bool | None = None,
    instance_type: str | None = None,
) -> VirtualMachine:
    """A running VM with one RWX disk unless told otherwise (storage: rwx, rwo, containerdisk)."""
    if storage == "rwx":
        volumes = (
            Volume(
                name="root", source="persistentVolumeClaim", claim_name=f"{name}-root", access_modes=("ReadWriteMany",)
            ),
        )
    elif storage == "rwo":
        volumes = (
            Volume(
                name="root", source="persistentVolumeClaim", claim_name=f"{name}-root", access_modes=("ReadWriteOnce",)
            ),
        )
    else:
        volumes = (Volume(name="root", source="containerDisk"),)
    if live_migratable is None and running:
        live_migratable = storage != "rwo"
    req = Resources(
        int((request_cpu if request_cpu is not None else vcpus / 10) * 1000),
        int((request_memory_gi if request_memory_gi is not None else memory_gi + 0.25) * GI),
    )
    usage = None
    if usage_cpu is not None or usage_memory_gi is not None:
        usage = Resources(int((usage_cpu or 0) * 1000), int((usage_memory_gi or 0) * GI))
    return VirtualMachine(
        namespace=namespace,
        name=name,
        run_strategy="Always" if running else "Halted",
        printable_status="Running" if running else "Stopped",
        running=running,
        node=node if running else None,
        vcpus=vcpus,
        guest_memory_bytes=int(memory_gi * GI),
        requests=req,
        usage=usage,
        labels=dict(labels or {}),
        annotations=dict(annotations or {}),
        placement=placement or Placement(),
        volumes=volumes,
        live_migratable=live_migratable if running else None,
        live_migratable_reason=None if live_migratable or not running else "DisksNotLiveMigratable",
        instance_type=instance_type,
    )


def make_state(
    nodes: Iterable[Node],
    vms: Iterable[VirtualMachine],
    *,
    metrics: bool = False,
    limits: MigrationLimits | None = None,
    fill_requests: bool = True,
) -> ClusterState:
    """A ClusterState; with ``fill_requests`` each node's requested = the sum of its VMs' requests."""
    vms = tuple(vms)
    nodes = tuple(nodes)
    if fill_requests:
        filled = []
        for n in nodes:
            total = n.requested
            for v in vms:
                if v.running and v.node == n.name:
                    total = total + v.requests
            filled.append(Node(**{**{f: getattr(n, f) for f in n.__dataclass_fields__}, "requested": total}))
        nodes = tuple(filled)
    return ClusterState(nodes=nodes, vms=vms, metrics_available=metrics, limits=limits or MigrationLimits())
