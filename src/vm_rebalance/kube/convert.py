"""Raw Kubernetes / KubeVirt JSON → the model. The only place that knows wire field names.

Pure (no network, no files): `state_from_objects` takes the API objects however they were
obtained — a live list or a snapshot file — so both paths give the same ClusterState.
Quantities are parsed with the Kubernetes client's own parser.
"""

import dataclasses
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from kubernetes.utils import parse_quantity

from vm_rebalance.errors import ConfigError
from vm_rebalance.kube import sustained
from vm_rebalance.kube.views import (
    PIN_ANNOTATION,
    PRESSURE_CONDITIONS,
    TEMP_PIN_ANNOTATION,
    MigrationPhase,
    in_flight,
    migration_view,
    vmi_view,
)
from vm_rebalance.model import (
    ClusterState,
    InFlightMigration,
    LabelSelector,
    MigrationLimits,
    Node,
    NodeSelectorTerm,
    Placement,
    PodAffinityTerm,
    Requirement,
    Resources,
    Taint,
    Toleration,
    TopologySpreadConstraint,
    VirtualMachine,
    Volume,
)
from vm_rebalance.model.cluster import HOSTNAME_LABEL
from vm_rebalance.model.signals import Observation, Pressure
from vm_rebalance.model.usage import UsageSample

Obj = Mapping[str, Any]

MI = 1024**2
# Upper bounds past which a quantity is a typo, not a machine: 1 EiB of memory, 1M cores.
MAX_MEMORY_BYTES = 1024**6
MAX_CPU_MILLICORES = 10**9
MAX_QUANTITY = Decimal(10**24)

KNOWN_KINDS = frozenset(
    {
        "Node",
        "Pod",
        "PersistentVolumeClaim",
        "DataVolume",
        "VirtualMachine",
        "VirtualMachineInstance",
        "VirtualMachineInstanceMigration",
        "KubeVirt",
        "NodeMetrics",
        "PodMetrics",
        "VirtualMachineClusterInstancetype",
        "VirtualMachineInstancetype",
        sustained.KIND,
    }
)

# kubevirt/common-instancetypes instancetypes/u/1/sizes.yaml: the fallback when the
# instance type objects cannot be read (kubevirt-api.md §1.5).
U1_SERIES: Mapping[str, tuple[int, int]] = {
    "u1.nano": (1, 512 * MI),
    "u1.micro": (1, 1024 * MI),
    "u1.small": (1, 2048 * MI),
    "u1.medium": (1, 4096 * MI),
    "u1.2xmedium": (2, 4096 * MI),
    "u1.large": (2, 8192 * MI),
    "u1.xlarge": (4, 16384 * MI),
    "u1.2xlarge": (8, 32768 * MI),
    "u1.4xlarge": (16, 65536 * MI),
    "u1.8xlarge": (32, 131072 * MI),
}

FINAL_POD_PHASES = frozenset({"Succeeded", "Failed"})


def _name(obj: Obj) -> str:
    """``Kind namespace/name`` for messages (never fails, whatever the object holds)."""
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping):
        meta = {}
    ns = meta.get("namespace")
    return f"{obj.get('kind', 'object')} {f'{ns}/' if ns else ''}{meta.get('name', '?')}"


class _converting:  # noqa: N801  # used as a function: `with _converting(obj):`
    """Turn a malformed field met while converting ``obj`` into a ConfigError naming the object.

    A class, not a @contextmanager: it wraps every object of 100,000-VM snapshots, where a
    generator per object would cost a second.

    Raises:
        ConfigError: a field had the wrong type or value (a TypeError, ValueError or AttributeError).
    """

    __slots__ = ("obj",)

    def __init__(self, obj: Obj) -> None:
        self.obj = obj

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc_type is not None and issubclass(exc_type, (TypeError, ValueError, AttributeError)):
            raise ConfigError(f"{_name(self.obj)}: malformed field: {exc}") from exc


def quantity(value: Any, *, where: str, field: str) -> Decimal:
    """Parse a Kubernetes quantity, naming the object and field when it is malformed or absurd.

    Raises:
        ConfigError: malformed, negative or non-finite quantity.
    """
    try:
        # Unannotated in the kubernetes package (which ships py.typed); it returns a Decimal.
        q: Decimal = parse_quantity(value)  # type: ignore[no-untyped-call]
    except (ValueError, TypeError, InvalidOperation) as exc:
        raise ConfigError(f"{where}: {field} has a malformed quantity {str(value)[:40]!r}") from exc
    if not q.is_finite() or q < 0:
        raise ConfigError(f"{where}: {field} has an impossible quantity {str(value)[:40]!r}")
    if q > MAX_QUANTITY:
        # Checked on the Decimal: turning 1e100000000 into an int would take hours.
        raise ConfigError(f"{where}: {field} has an absurd quantity {str(value)[:40]!r}")
    return q


def cpu_millicores(value: Any, *, where: str, field: str) -> int:
    """CPU quantity → millicores (rounded up, as the scheduler does)."""
    m = math.ceil(quantity(value, where=where, field=field) * 1000)
    if m > MAX_CPU_MILLICORES:
        raise ConfigError(f"{where}: {field} is an absurd CPU amount {str(value)[:40]!r}")
    return m


def memory_bytes(value: Any, *, where: str, field: str) -> int:
    """Memory quantity → bytes."""
    b = math.ceil(quantity(value, where=where, field=field))
    if b > MAX_MEMORY_BYTES:
        raise ConfigError(f"{where}: {field} is an absurd memory amount {str(value)[:40]!r}")
    return b


def _resources(mapping: Mapping[str, Any] | None, *, where: str, field: str) -> Resources:
    mapping = mapping or {}
    cpu = mapping.get("cpu")
    mem = mapping.get("memory")
    return Resources(
        cpu_millicores(cpu, where=where, field=f"{field}.cpu") if cpu is not None else 0,
        memory_bytes(mem, where=where, field=f"{field}.memory") if mem is not None else 0,
    )


def parse_time(value: Any) -> datetime | None:
    """RFC 3339 timestamp → aware datetime, or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


# ---------------------------------------------------------------------------- placement


def _requirements(items: Any) -> tuple[Requirement, ...]:
    return tuple(
        Requirement(
            key=str(e.get("key", "")),
            operator=str(e.get("operator", "In")),
            values=tuple(str(v) for v in e.get("values") or ()),
        )
        for e in items or ()
    )


def label_selector_from(raw: Any) -> LabelSelector:
    """A metav1.LabelSelector."""
    raw = raw or {}
    return LabelSelector(
        match_labels={str(k): str(v) for k, v in (raw.get("matchLabels") or {}).items()},
        match_expressions=_requirements(raw.get("matchExpressions")),
    )


def _pod_terms(items: Any) -> tuple[PodAffinityTerm, ...]:
    return tuple(
        PodAffinityTerm(
            label_selector=label_selector_from(t.get("labelSelector")),
            topology_key=str(t.get("topologyKey") or "kubernetes.io/hostname"),
            namespaces=tuple(t.get("namespaces") or ()),
        )
        for t in items or ()
    )


def placement_from(spec: Obj) -> Placement:
    """Placement rules from a VMI / VM template spec (or a pod spec: same field names)."""
    affinity = spec.get("affinity") or {}
    node_aff = affinity.get("nodeAffinity") or {}
    required = node_aff.get("requiredDuringSchedulingIgnoredDuringExecution") or {}
    terms = tuple(
        NodeSelectorTerm(
            match_expressions=_requirements(t.get("matchExpressions")),
            match_fields=_requirements(t.get("matchFields")),
        )
        for t in required.get("nodeSelectorTerms") or ()
    )
    anti = (affinity.get("podAntiAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution")
    pod = (affinity.get("podAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution")
    return Placement(
        node_selector={str(k): str(v) for k, v in (spec.get("nodeSelector") or {}).items()},
        required_node_terms=terms,
        tolerations=tuple(
            Toleration(
                key=str(t.get("key") or ""),
                operator=str(t.get("operator") or "Equal"),
                value=str(t.get("value") or ""),
                effect=str(t.get("effect") or ""),
            )
            for t in spec.get("tolerations") or ()
        ),
        pod_anti_affinity=_pod_terms(anti),
        pod_affinity=_pod_terms(pod),
        topology_spread=tuple(
            TopologySpreadConstraint(
                max_skew=int(t.get("maxSkew") or 1),
                topology_key=str(t.get("topologyKey") or ""),
                when_unsatisfiable=str(t.get("whenUnsatisfiable") or "DoNotSchedule"),
                label_selector=label_selector_from(t.get("labelSelector")),
            )
            for t in spec.get("topologySpreadConstraints") or ()
        ),
        preferred_node_affinity=bool(node_aff.get("preferredDuringSchedulingIgnoredDuringExecution")),
    )


# ---------------------------------------------------------------------------- nodes


def node_from(
    obj: Obj, *, requested: Resources, pods: int, usage: Resources | None, pressure: Pressure | None = None
) -> Node:
    """A Node from its API object plus what the pods on it request (and what a usage source measured)."""
    where = _name(obj)
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    capacity = status.get("capacity") or {}
    allocatable = status.get("allocatable") or capacity
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or ()}
    kvm = allocatable.get("devices.kubevirt.io/kvm", capacity.get("devices.kubevirt.io/kvm"))
    max_pods = allocatable.get("pods")
    return Node(
        name=str(meta.get("name") or ""),
        labels={str(k): str(v) for k, v in (meta.get("labels") or {}).items()},
        taints=tuple(
            Taint(key=str(t.get("key") or ""), effect=str(t.get("effect") or ""), value=str(t.get("value") or ""))
            for t in spec.get("taints") or ()
        ),
        unschedulable=bool(spec.get("unschedulable", False)),
        ready=conditions.get("Ready") == "True",
        pressure_conditions=tuple(c for c in PRESSURE_CONDITIONS if conditions.get(c) == "True"),
        capacity=_resources(capacity, where=where, field="status.capacity"),
        allocatable=_resources(allocatable, where=where, field="status.allocatable"),
        kvm_devices=int(quantity(kvm, where=where, field="devices.kubevirt.io/kvm")) if kvm is not None else 0,
        requested=requested,
        usage=usage,
        pressure=pressure,
        pods=pods,
        max_pods=int(quantity(max_pods, where=where, field="status.allocatable.pods")) if max_pods else 0,
    )


def pod_requests(pod: Obj) -> Resources:
    """Effective pod requests as the scheduler counts them: max(sum(containers), any init) + overhead."""
    where = _name(pod)
    spec = pod.get("spec") or {}
    total = Resources()
    for i, c in enumerate(spec.get("containers") or ()):
        total = total + _resources(
            (c.get("resources") or {}).get("requests"), where=where, field=f"spec.containers[{i}].resources.requests"
        )
    for i, c in enumerate(spec.get("initContainers") or ()):
        init = _resources(
            (c.get("resources") or {}).get("requests"),
            where=where,
            field=f"spec.initContainers[{i}].resources.requests",
        )
        total = Resources(max(total.cpu_millicores, init.cpu_millicores), max(total.memory_bytes, init.memory_bytes))
    return total + _resources(spec.get("overhead"), where=where, field="spec.overhead")


# ---------------------------------------------------------------------------- VMs


def vcpus_from(domain: Obj) -> int:
    """cores × sockets × threads with zero terms skipped (kubevirt hw_utils GetNumberOfVCPUs)."""
    cpu = domain.get("cpu") or {}
    count = 1
    any_set = False
    for key in ("cores", "sockets", "threads"):
        value = int(cpu.get(key) or 0)
        if value > 0:
            count *= value
            any_set = True
    return count if any_set else 0


def derived_launcher_requests(*, vcpus: int, guest_memory: int, explicit: Resources) -> Resources:
    """The virt-launcher pod's requests when the pod was not seen (kubevirt-api.md §2.4).

    CPU: vCPUs / cpuAllocationRatio (default 10) unless requested explicitly. Memory: guest
    memory (or the explicit request) plus KubeVirt's KVM overhead estimate: pagetables
    (guest/512) + 240Mi fixed (launcher, monitor, virtlogd, virtqemud, qemu) + 8Mi per vCPU
    + 8Mi IOThread + 32Mi video RAM.
    """
    cpu = explicit.cpu_millicores or max(1, vcpus) * 100
    base = explicit.memory_bytes or guest_memory
    overhead = guest_memory // 512 + 240 * MI + 8 * MI * max(1, vcpus) + 8 * MI + 32 * MI
    return Resources(cpu, base + overhead)


def access_modes(pvc: Obj) -> tuple[str, ...]:
    """A claim's access modes (status first, as bound; else as requested).

    Raises:
        ValueError: accessModes is not a list of strings.
    """
    status_modes = (pvc.get("status") or {}).get("accessModes")
    spec_modes = (pvc.get("spec") or {}).get("accessModes")
    modes = status_modes or spec_modes or ()
    if not isinstance(modes, list | tuple) or not all(isinstance(m, str) for m in modes):
        raise ValueError(f"accessModes is not a list of strings: {str(modes)[:40]!r}")
    return tuple(modes)


def volumes_from(spec: Obj, namespace: str, pvc_modes: Mapping[tuple[str, str], tuple[str, ...]]) -> tuple[Volume, ...]:
    """The VM's volumes with their claims' access modes (DataVolumes own a PVC of the same name).

    ``pvc_modes`` maps each claim (namespace, name) to its access modes (see `access_modes`).
    """
    out = []
    for v in spec.get("volumes") or ():
        name = str(v.get("name") or "")
        claim: str | None = None
        source = next((k for k in v if k != "name"), "unknown")
        if "persistentVolumeClaim" in v:
            claim = (v["persistentVolumeClaim"] or {}).get("claimName")
        elif "dataVolume" in v:
            claim = (v["dataVolume"] or {}).get("name")
        if claim is None:
            out.append(Volume(name=name, source=source))
            continue
        modes = pvc_modes.get((namespace, claim))
        out.append(
            Volume(
                name=name,
                source=source,
                claim_name=claim,
                access_modes=modes or (),
                claim_found=modes is not None,
            )
        )
    return tuple(out)


def _condition(obj: Obj, kind: str) -> Obj | None:
    return next((c for c in (obj.get("status") or {}).get("conditions") or () if c.get("type") == kind), None)


def _instance_type_size(
    vm: Obj, instancetypes: Mapping[tuple[str, str, str], Obj], namespace: str
) -> tuple[str | None, int, int]:
    """(instance type name, vCPUs, guest memory bytes) from spec.instancetype, else (None, 0, 0)."""
    matcher = (vm.get("spec") or {}).get("instancetype") or {}
    name = matcher.get("name")
    if not name:
        return None, 0, 0
    kind = matcher.get("kind") or "VirtualMachineClusterInstancetype"
    obj = instancetypes.get((kind, "" if kind == "VirtualMachineClusterInstancetype" else namespace, name))
    if obj is not None:
        spec = obj.get("spec") or {}
        where = _name(obj)
        guest = (spec.get("memory") or {}).get("guest")
        return (
            str(name),
            int((spec.get("cpu") or {}).get("guest") or 0),
            memory_bytes(guest, where=where, field="spec.memory.guest") if guest else 0,
        )
    cpus, mem = U1_SERIES.get(str(name), (0, 0))
    return str(name), cpus, mem


class _Index:
    """Objects grouped by kind, with the lookups the conversion needs."""

    def __init__(self, objects: Iterable[Obj]) -> None:
        self.by_kind: dict[str, list[Obj]] = defaultdict(list)
        self.unknown: Counter[str] = Counter()
        for position, obj in enumerate(objects, 1):
            if not isinstance(obj, Mapping):
                raise ConfigError("an item is not a Kubernetes object (expected a mapping with 'kind')")
            kind = obj.get("kind")
            if isinstance(kind, str) and kind in KNOWN_KINDS:
                meta = obj.get("metadata")
                if meta is not None and not isinstance(meta, Mapping):
                    raise ConfigError(
                        f"{kind} (object #{position}): metadata is a {type(meta).__name__}, not a mapping"
                    )
                self.by_kind[kind].append(obj)
            else:
                self.unknown[str(kind or "<no kind>")] += 1


def _key(obj: Obj) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


# ---------------------------------------------------------------------------- snapshots

LAST_APPLIED_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"
POD_ANNOTATIONS_KEPT = frozenset({"kubevirt.io/domain"})
POD_METADATA_KEPT = ("name", "namespace", "uid", "labels")
CONTAINER_FIELDS_KEPT = ("name", "resources")


def _pick(mapping: Mapping[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    return {key: mapping[key] for key in keys if key in mapping}


def _containers(items: Any) -> Any:
    """Containers with only their name and resources (env, args, mounts and the rest dropped)."""
    if not isinstance(items, list):
        return items  # malformed: kept as is, so reading the snapshot still reports it
    return [_pick(c, CONTAINER_FIELDS_KEPT) if isinstance(c, Mapping) else c for c in items]


def _pod_for_snapshot(pod: Obj) -> dict[str, Any]:
    out = _pick(pod, ("apiVersion", "kind"))
    meta = pod.get("metadata")
    if isinstance(meta, Mapping):
        slim_meta = _pick(meta, POD_METADATA_KEPT)
        annotations = meta.get("annotations")
        if isinstance(annotations, Mapping):
            kept = {k: v for k, v in annotations.items() if k in POD_ANNOTATIONS_KEPT}
            if kept:
                slim_meta["annotations"] = kept
        out["metadata"] = slim_meta
    elif meta is not None:
        out["metadata"] = meta
    spec = pod.get("spec")
    if isinstance(spec, Mapping):
        slim_spec = _pick(spec, ("nodeName", "overhead"))
        for field in ("containers", "initContainers"):
            if field in spec:
                slim_spec[field] = _containers(spec[field])
        out["spec"] = slim_spec
    elif spec is not None:
        out["spec"] = spec
    status = pod.get("status")
    if isinstance(status, Mapping):
        out["status"] = _pick(status, ("phase",))
    elif status is not None:
        out["status"] = status
    return out


def snapshot_object(obj: Obj) -> dict[str, Any]:
    """An API object as `vm-rebalance snapshot` saves it: only what the conversion reads where it matters.

    Pods keep their identity, the labels and ``kubevirt.io/domain`` annotation that tie them to a
    VMI, node, phase and container names and resources: no env values (possible secrets), commands
    or mounts. Every object loses ``metadata.managedFields`` and the
    ``kubectl.kubernetes.io/last-applied-configuration`` annotation (a full copy of the object).
    Malformed parts are kept as they are, so reading the snapshot back still names them.
    The input is not modified.
    """
    if obj.get("kind") == "Pod":
        return _pod_for_snapshot(obj)
    out = dict(obj)
    meta = out.get("metadata")
    if isinstance(meta, Mapping):
        slim_meta = {k: v for k, v in meta.items() if k != "managedFields"}
        annotations = slim_meta.get("annotations")
        if isinstance(annotations, Mapping) and LAST_APPLIED_ANNOTATION in annotations:
            slim_meta["annotations"] = {k: v for k, v in annotations.items() if k != LAST_APPLIED_ANNOTATION}
        out["metadata"] = slim_meta
    if obj.get("kind") == "VirtualMachine":
        spec = out.get("spec")
        if isinstance(spec, Mapping) and isinstance(template := spec.get("template"), Mapping):
            inner = template.get("spec")
            if isinstance(inner, Mapping):
                out["spec"] = {**spec, "template": {**template, "spec": _without_guest_secrets(inner)}}
    elif obj.get("kind") == "VirtualMachineInstance" and isinstance(out.get("spec"), Mapping):
        out["spec"] = _without_guest_secrets(out["spec"])
    return out


# Volume sources whose content goes into the guest (cloud-init user data, sysprep answers):
# they can hold passwords and keys, and vm-rebalance needs only that they exist.
_GUEST_CONTENT_SOURCES = ("cloudInitNoCloud", "cloudInitConfigDrive", "sysprep")


def _without_guest_secrets(vmi_spec: Mapping[str, Any]) -> dict[str, Any]:
    """A VMI spec whose cloud-init / sysprep volumes keep their name and kind but not their content."""
    out = dict(vmi_spec)
    volumes = out.get("volumes")
    if isinstance(volumes, list):
        out["volumes"] = [
            {k: ({} if k in _GUEST_CONTENT_SOURCES else v) for k, v in vol.items()} if isinstance(vol, Mapping) else vol
            for vol in volumes
        ]
    out.pop("accessCredentials", None)
    return out


def limits_from(kubevirt: Obj | None) -> tuple[MigrationLimits, str | None]:
    """Migration limits and the KubeVirt version from the KubeVirt CR (defaults 5 and 2)."""
    if kubevirt is None:
        return MigrationLimits(), None
    where = _name(kubevirt)
    mig = ((kubevirt.get("spec") or {}).get("configuration") or {}).get("migrations") or {}
    bandwidth = mig.get("bandwidthPerMigration")
    bw = memory_bytes(bandwidth, where=where, field="bandwidthPerMigration") if bandwidth else None
    status = kubevirt.get("status") or {}
    version = status.get("observedKubeVirtVersion") or status.get("targetKubeVirtVersion")
    try:
        limits = MigrationLimits(
            parallel_per_cluster=int(mig.get("parallelMigrationsPerCluster") or 5),
            parallel_outbound_per_node=int(mig.get("parallelOutboundMigrationsPerNode") or 2),
            completion_timeout_per_gib_seconds=int(mig.get("completionTimeoutPerGiB") or 150),
            bandwidth_bytes_per_second=bw or None,
            allow_auto_converge=mig.get("allowAutoConverge") is True,
            allow_post_copy=mig.get("allowPostCopy") is True,
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: invalid migration settings: {exc}") from exc
    return limits, str(version) if version else None


def usage_from_metrics(node_metrics: Iterable[Obj], pod_metrics: Iterable[Obj]) -> UsageSample:
    """Instant usage from metrics.k8s.io ``NodeMetrics`` / ``PodMetrics`` objects (kubevirt-api.md §7.1).

    Raises:
        ConfigError: a metrics object has a malformed quantity (the message names it).
    """
    pods: dict[tuple[str, str], Resources] = {}
    for pm in pod_metrics:
        with _converting(pm):
            total = Resources()
            for c in pm.get("containers") or ():
                total = total + _resources(c.get("usage"), where=_name(pm), field="containers.usage")
            pods[_key(pm)] = total
    nodes: dict[str, Resources] = {}
    stamps: list[datetime] = []
    for nm in node_metrics:
        with _converting(nm):
            nodes[_key(nm)[1]] = _resources(nm.get("usage"), where=_name(nm), field="usage")
            if (stamp := parse_time(nm.get("timestamp"))) is not None:
                stamps.append(stamp)
    return UsageSample(nodes=nodes, pods=pods, measured_at=max(stamps, default=None), source="metrics.k8s.io")


@dataclass(frozen=True, slots=True)
class _PodAccounting:
    """What the pods say: requests and pod counts per node, and each VMI's launcher pod."""

    requested: Mapping[str, Resources]
    pods_per_node: Mapping[str, int]
    launchers: Mapping[tuple[str, str], tuple[Resources, tuple[str, str]]]
    """(namespace, VMI name) → (its launcher pod's requests, the pod's (namespace, name))."""


def _pod_accounting(pods: Iterable[Obj], vmis: Mapping[tuple[str, str], Obj]) -> _PodAccounting:
    """Requests per node from every live pod; launcher pods also give each VMI its requests."""
    requested: dict[str, Resources] = defaultdict(Resources)
    pods_per_node: Counter[str] = Counter()
    launchers: dict[tuple[str, str], tuple[Resources, tuple[str, str]]] = {}
    for pod in pods:
        with _converting(pod):
            spec = pod.get("spec") or {}
            node_name = spec.get("nodeName")
            if (pod.get("status") or {}).get("phase") in FINAL_POD_PHASES:
                continue
            req = pod_requests(pod)
            if not node_name:
                continue
            requested[node_name] = requested[node_name] + req
            pods_per_node[node_name] += 1
            meta = pod.get("metadata") or {}
            labels = meta.get("labels") or {}
            if labels.get("kubevirt.io") != "virt-launcher":
                continue
            vmi_name = labels.get("vm.kubevirt.io/name") or (meta.get("annotations") or {}).get("kubevirt.io/domain")
            key = (_key(pod)[0], str(vmi_name))
            vmi = vmis.get(key)
            # Only the pod on the VMI's current node speaks for it (a migration target pod does not).
            if vmi_name and (vmi is None or (vmi.get("status") or {}).get("nodeName") == node_name):
                launchers[key] = (req, _key(pod))
    return _PodAccounting(requested=requested, pods_per_node=pods_per_node, launchers=launchers)


def _check_migration_shape(mig: Obj) -> None:
    """Strict where the lenient view would read a malformed field as absent (a snapshot must say what is wrong).

    Raises:
        TypeError: a field that must be a mapping or a list of mappings is not.
    """
    for part in ("spec", "status"):
        if not isinstance(mig.get(part) or {}, Mapping):
            raise TypeError(f"{part} is a {type(mig.get(part)).__name__}, not a mapping")
    status = mig.get("status") or {}
    if not isinstance(status.get("migrationState") or {}, Mapping):
        raise TypeError("status.migrationState is not a mapping")
    for field in ("phaseTransitionTimestamps", "conditions"):
        items = status.get(field) or []
        if not isinstance(items, list) or not all(isinstance(i, Mapping) for i in items):
            raise TypeError(f"status.{field} is not a list of mappings")


@dataclass(frozen=True, slots=True)
class _MigrationHistory:
    """Migrations in flight (attributed to their source node) and when each VM last migrated."""

    in_flight: tuple[InFlightMigration, ...]
    migrating: frozenset[tuple[str, str]]
    last_end: Mapping[tuple[str, str], datetime]


def _migration_history(migrations: Iterable[Obj], vmis: Mapping[tuple[str, str], Obj]) -> _MigrationHistory:
    """In-flight migrations from every migration object and every VMI's migrationState; the cooldown's last ends."""
    views = []
    last_end: dict[tuple[str, str], datetime] = {}
    for mig in migrations:
        with _converting(mig):
            _check_migration_shape(mig)
            view = migration_view(mig)
            views.append(view)
            if view.phase is MigrationPhase.SUCCEEDED:
                ends = [view.state.ended_at if view.state else None]
                ends += [t for phase, t in view.phase_times if phase is MigrationPhase.SUCCEEDED]
                end = max((e for e in ends if e), default=None)
                key = (view.namespace, view.vmi_name)
                if end and (last := last_end.get(key)) is not None:
                    end = max(end, last)
                if end:
                    last_end[key] = end
    # VMI views only where they matter: VMIs of unfinished migrations, and VMIs reporting one themselves.
    wanted = {(v.namespace, v.vmi_name) for v in views if not v.final}
    relevant = {
        key: vmi_view(obj)
        for key, obj in vmis.items()
        if key in wanted or (obj.get("status") or {}).get("migrationState")
    }
    found = in_flight(views, relevant)
    return _MigrationHistory(
        in_flight=tuple(
            InFlightMigration(
                namespace=m.namespace,
                name=m.name,
                vm=m.vmi_name,
                phase=m.phase.value or "Pending",
                source=m.source,
                target=m.target,
            )
            for m in found
        ),
        migrating=frozenset((m.namespace, m.vmi_name) for m in found),
        last_end=last_end,
    )


@dataclass(frozen=True, slots=True)
class _Context:
    """Everything a VM's conversion looks up in the other objects."""

    pvc_modes: Mapping[tuple[str, str], tuple[str, ...]]
    instancetypes: Mapping[tuple[str, str, str], Obj]
    vmis: Mapping[tuple[str, str], Obj]
    pods: _PodAccounting
    usage: UsageSample
    history: _MigrationHistory
    anchor: datetime


def _claim_modes(pvcs: Iterable[Obj]) -> dict[tuple[str, str], tuple[str, ...]]:
    modes: dict[tuple[str, str], tuple[str, ...]] = {}
    for pvc in pvcs:
        with _converting(pvc):
            modes[_key(pvc)] = access_modes(pvc)
    return modes


def _vm_size(obj: Obj, live_spec: Obj, ctx: _Context) -> tuple[str | None, int, int, Resources]:
    """(instance type, vCPUs, guest memory bytes, explicit requests) of a VM."""
    ns = _key(obj)[0]
    where = _name(obj)
    domain = (((obj.get("spec") or {}).get("template") or {}).get("spec") or {}).get("domain") or {}
    explicit = _resources(
        (domain.get("resources") or {}).get("requests"),
        where=where,
        field="spec.template.spec.domain.resources.requests",
    )
    it_name, it_cpus, it_mem = _instance_type_size(obj, ctx.instancetypes, ns)
    vcpus = vcpus_from(live_spec.get("domain") or domain) or it_cpus
    if not vcpus:
        vcpus = max(1, math.ceil(explicit.cpu_millicores / 1000)) if explicit.cpu_millicores else 1
    guest = (domain.get("memory") or {}).get("guest") or ((live_spec.get("domain") or {}).get("memory") or {}).get(
        "guest"
    )
    guest_bytes = memory_bytes(guest, where=where, field="spec.template.spec.domain.memory.guest") if guest else 0
    return it_name, vcpus, guest_bytes or it_mem or explicit.memory_bytes, explicit


def without_own_pin(placement: Placement, marks: set[str]) -> Placement:
    """The placement without vm-rebalance's own pins (``kubernetes.io/hostname In [marked node]``).

    Such a pin is the tool's to change on a later move or drain (design.md §4), so planning and
    validation do not treat it as a rule; the executor moves or replaces it. A term left empty
    by the removal goes (it held only the pin); with no term left there is no required affinity.
    """
    if not marks or not placement.required_node_terms:
        return placement

    def ours(req: Requirement) -> bool:
        return req.key == HOSTNAME_LABEL and req.operator == "In" and len(req.values) == 1 and req.values[0] in marks

    terms = []
    for term in placement.required_node_terms:
        kept = tuple(r for r in term.match_expressions if not ours(r))
        if kept or term.match_fields:
            terms.append(NodeSelectorTerm(match_expressions=kept, match_fields=term.match_fields))
        elif len(kept) == len(term.match_expressions):
            terms.append(term)  # an empty term stays what it was (it matches nothing)
    return dataclasses.replace(placement, required_node_terms=tuple(terms))


def vm_from(obj: Obj, ctx: _Context) -> VirtualMachine:
    """A VirtualMachine from its API object and what the other objects say about it."""
    ns, name = _key(obj)
    spec = obj.get("spec") or {}
    template = (spec.get("template") or {}).get("spec") or {}
    vmi = ctx.vmis.get((ns, name))
    vmi_status = (vmi or {}).get("status") or {}
    live_spec = (vmi or {}).get("spec") or template  # the running instance's spec is authoritative
    it_name, vcpus, guest_bytes, explicit = _vm_size(obj, live_spec, ctx)
    running = vmi is not None and vmi_status.get("phase") == "Running"
    node_name = vmi_status.get("nodeName") if running else None
    launcher = ctx.pods.launchers.get((ns, name))
    if launcher is not None:
        reqs, pod_key = launcher
        usage = ctx.usage.vms.get((ns, name)) or ctx.usage.pods.get(pod_key)
    else:
        reqs = derived_launcher_requests(vcpus=vcpus, guest_memory=guest_bytes, explicit=explicit)
        usage = ctx.usage.vms.get((ns, name))
    cond = _condition(vmi, "LiveMigratable") if vmi else None
    live_ok = None if cond is None else cond.get("status") == "True"
    end = ctx.history.last_end.get((ns, name))
    template_meta = (spec.get("template") or {}).get("metadata") or {}
    labels = (vmi or {}).get("metadata", {}).get("labels") or template_meta.get("labels") or {}
    run_strategy = spec.get("runStrategy") or ("Always" if spec.get("running") else "Halted")
    annotations = {str(a): str(b) for a, b in ((obj.get("metadata") or {}).get("annotations") or {}).items()}
    marks = {annotations[k] for k in (PIN_ANNOTATION, TEMP_PIN_ANNOTATION) if annotations.get(k)}
    placement = placement_from(live_spec)
    unpinned = without_own_pin(placement, marks)
    own_pin = annotations.get(PIN_ANNOTATION) if unpinned != placement else None
    return VirtualMachine(
        namespace=ns,
        name=name,
        run_strategy=str(run_strategy),
        printable_status=str((obj.get("status") or {}).get("printableStatus") or ("Running" if running else "Stopped")),
        running=running,
        node=str(node_name) if node_name else None,
        vcpus=vcpus,
        guest_memory_bytes=guest_bytes,
        requests=reqs,
        usage=usage,
        instance_type=it_name,
        labels={str(a): str(b) for a, b in labels.items()},
        annotations=annotations,
        placement=unpinned,
        pinned_to=own_pin,
        eviction_strategy=live_spec.get("evictionStrategy"),
        volumes=volumes_from(template or live_spec, ns, ctx.pvc_modes),
        live_migratable=live_ok,
        live_migratable_reason=(cond or {}).get("reason") if live_ok is False else None,
        live_migratable_message=(cond or {}).get("message") if live_ok is False else None,
        migrating=(ns, name) in ctx.history.migrating,
        last_migration_seconds_ago=max(0.0, (ctx.anchor - end).total_seconds()) if end else None,
        dirty_rate_bytes_per_second=ctx.usage.dirty_rates.get((ns, name)),
        network_bytes_per_second=ctx.usage.network_rates.get((ns, name)),
    )


def _limits(kubevirts: list[Obj]) -> tuple[MigrationLimits, str | None]:
    if not kubevirts:
        return limits_from(None)
    with _converting(kubevirts[0]):
        return limits_from(kubevirts[0])


def _notes(index: "_Index", given: Iterable[str], usage: UsageSample, *, usage_given: bool) -> list[str]:
    """The source's notes first, then what this conversion noticed (ignored kinds, no usage)."""
    notes = list(given)
    if index.unknown:
        kinds = ", ".join(f"{kind} ({n})" for kind, n in sorted(index.unknown.items()))
        notes.append(f"ignored objects of kinds vm-rebalance does not use: {kinds}")
    notes += [n for n in usage.notes if n not in notes]
    # One note about missing usage: a usage source that explains its absence is not repeated.
    if not usage.available and index.by_kind["Node"] and not (usage_given and usage.notes):
        notes.append("no node metrics (metrics-server absent or not readable): utilisation is by requests")
    return notes


def _kept_usage(k: Mapping[str, list[Obj]]) -> UsageSample:
    """The usage a snapshot (or a list of objects) holds: its ``SustainedUsage`` object when it has one
    (Prometheus / stats summary figures kept by `snapshot`), else its metrics.k8s.io objects."""
    kept = k[sustained.KIND]
    if kept:
        with _converting(kept[-1]):
            return sustained.sample_from_sustained(kept[-1])
    return usage_from_metrics(k["NodeMetrics"], k["PodMetrics"])


def _observation(sample: UsageSample) -> Observation | None:
    """How the usage was observed: the source's own account, else (metrics.k8s.io) one instant reading."""
    if sample.observation is not None:
        return sample.observation
    if not sample.available:
        return None
    return Observation(source=sample.source or "metrics.k8s.io", end=sample.measured_at)


def state_from_objects(
    objects: Iterable[Obj],
    *,
    source: str = "cluster",
    now: datetime | None = None,
    notes: Iterable[str] = (),
    usage: UsageSample | None = None,
) -> ClusterState:
    """Build the ClusterState from raw API objects (any order, any mix of kinds).

    ``usage`` is the usage overlay (a usage source's sample); None takes it from the objects'
    own metrics.k8s.io ``NodeMetrics`` / ``PodMetrics`` (a snapshot's, or a live list's).
    ``now`` anchors the migration cooldown; by default it is the usage's measuring time (a
    snapshot's own moment), else the current time.

    Raises:
        ConfigError: an object has a malformed or absurd field (the message names it).
    """
    index = _Index(objects)
    k = index.by_kind
    sample = usage if usage is not None else _kept_usage(k)
    vmis = {_key(o): o for o in k["VirtualMachineInstance"]}
    pods = _pod_accounting(k["Pod"], vmis)
    ctx = _Context(
        pvc_modes=_claim_modes(k["PersistentVolumeClaim"]),
        instancetypes={
            (str(o.get("kind")), _key(o)[0], _key(o)[1]): o
            for o in k["VirtualMachineClusterInstancetype"] + k["VirtualMachineInstancetype"]
        },
        vmis=vmis,
        pods=pods,
        usage=sample,
        history=_migration_history(k["VirtualMachineInstanceMigration"], vmis),
        anchor=now or sample.measured_at or datetime.now(UTC),
    )
    vms = []
    for obj in k["VirtualMachine"]:
        with _converting(obj):
            vms.append(vm_from(obj, ctx))
    nodes = []
    for obj in k["Node"]:
        node_name = _key(obj)[1]
        with _converting(obj):
            nodes.append(
                node_from(
                    obj,
                    requested=pods.requested.get(node_name, Resources()),
                    pods=pods.pods_per_node.get(node_name, 0),
                    usage=sample.nodes.get(node_name),
                    pressure=sample.pressure.get(node_name),
                )
            )
    limits, version = _limits(k["KubeVirt"])
    nodes.sort(key=lambda n: n.name)
    vms.sort(key=lambda v: (v.namespace, v.name))
    try:
        return ClusterState(
            nodes=tuple(nodes),
            vms=tuple(vms),
            limits=limits,
            kubevirt_version=version,
            metrics_available=sample.available,
            migrations=ctx.history.in_flight,
            notes=tuple(_notes(index, notes, sample, usage_given=usage is not None)),
            source=source,
            observation=_observation(sample),
            usage_warnings=sample.warnings,
        )
    except ValueError as exc:
        raise ConfigError(f"inconsistent cluster data: {exc}") from exc
