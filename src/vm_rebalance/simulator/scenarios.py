"""Initial cluster states: snapshot files (design.md §3) and seeded generators of realistic,
imbalanced KubeVirt clusters (``demo``, ``small``, ``medium``, ``large``).

Generated VM sizes and CPU utilisation follow the shape of public-cloud VM traces: the Azure
Public Dataset (VM traces 2017 and 2019) described in "Resource Central: Understanding and
Predicting Workloads for Improved Resource Management in Large Cloud Platforms", Cortez et al.,
SOSP 2017. There most VMs are small (1–2 vCPUs for well over half of them, few above 8), memory
is mostly 2–4 GiB per vCPU, and average CPU utilisation is low for most VMs with a long tail of
busy ones. The weights below are rounded approximations of those published histograms, not the
dataset itself.
"""

import json
import random
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from .kubevirt import (
    CPU_USAGE_ANNOTATION,
    DIRTY_RATE_ANNOTATION,
    KVM,
    MEMORY_USAGE_ANNOTATION,
    VM_FINALIZER,
    VMI_FINALIZER,
    build_launcher_pod,
    build_vmi,
    launcher_image,
    launcher_requests,
    live_migratable_condition,
    run_strategy,
    running_container_status,
    vcpus,
)
from .lifecycle import DVS, INSTANCETYPES, NODES, PODS, PVCS, VMIS, VMS
from .quantity import GIB, MIB, cpu_millicores, memory_bytes
from .scheduler import node_affinity_matches, tolerates
from .signals import PATTERN_ANNOTATION
from .store import copy_obj, pause_gc

if TYPE_CHECKING:
    from .cluster import SimCluster

Obj = dict[str, Any]

KIND_KEYS: dict[str, tuple[str, str]] = {
    "Node": NODES,
    "Pod": PODS,
    "PersistentVolumeClaim": PVCS,
    "Namespace": ("", "namespaces"),
    "Event": ("", "events"),
    "VirtualMachine": VMS,
    "VirtualMachineInstance": VMIS,
    "VirtualMachineInstanceMigration": ("kubevirt.io", "virtualmachineinstancemigrations"),
    "KubeVirt": ("kubevirt.io", "kubevirts"),
    "DataVolume": DVS,
    "VirtualMachineClusterInstancetype": INSTANCETYPES,
    "NodeMetrics": ("metrics.k8s.io", "nodes"),
    "PodMetrics": ("metrics.k8s.io", "pods"),
    "Lease": ("coordination.k8s.io", "leases"),
    "CustomResourceDefinition": ("apiextensions.k8s.io", "customresourcedefinitions"),
}

#: u1 series of kubevirt/common-instancetypes (kubevirt-api.md §1.5): name -> (vCPUs, memory).
U1_SIZES: dict[str, tuple[int, str]] = {
    "u1.nano": (1, "512Mi"),
    "u1.micro": (1, "1Gi"),
    "u1.small": (1, "2Gi"),
    "u1.medium": (1, "4Gi"),
    "u1.2xmedium": (2, "4Gi"),
    "u1.large": (2, "8Gi"),
    "u1.xlarge": (4, "16Gi"),
    "u1.2xlarge": (8, "32Gi"),
    "u1.4xlarge": (16, "64Gi"),
    "u1.8xlarge": (32, "128Gi"),
}

# Approximate vCPU shares (Azure traces: dominated by 1–2 vCPU VMs, a thin tail of large ones).
VCPU_WEIGHTS = [(1, 0.30), (2, 0.35), (4, 0.22), (8, 0.10), (16, 0.03)]
# Memory per vCPU in GiB (mostly 2–4 GiB/vCPU; the u1 series is 1:4).
MEMORY_PER_VCPU_WEIGHTS = [(2, 0.45), (4, 0.45), (8, 0.10)]
# Average CPU utilisation bands: most VMs are lightly used, a long tail is busy.
CPU_UTIL_BANDS = [((0.02, 0.15), 0.45), ((0.15, 0.35), 0.30), ((0.35, 0.65), 0.17), ((0.65, 0.95), 0.08)]


# -- snapshot files ------------------------------------------------------------------------------------------------


def load_snapshot_file(path: str | Path) -> list[Obj]:
    """Objects of a snapshot: a List (JSON or YAML), multi-document YAML, or concatenated JSON documents.

    Raises:
        ValueError: the file holds something else.
    """
    text = Path(path).read_text()
    docs: list[Any] = []
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        decoder = json.JSONDecoder()
        pos = 0
        while pos < len(text):
            while pos < len(text) and text[pos].isspace():
                pos += 1
            if pos >= len(text):
                break
            doc, pos = decoder.raw_decode(text, pos)
            docs.append(doc)
    else:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    objects: list[Obj] = []
    for doc in docs:
        _flatten(doc, objects)
    if not objects:
        raise ValueError(f"{path}: no Kubernetes objects found")
    return objects


def _flatten(doc: Any, out: list[Obj]) -> None:
    if isinstance(doc, list):
        for item in doc:
            _flatten(item, out)
        return
    if not isinstance(doc, dict):
        raise ValueError("a snapshot holds Kubernetes objects or Lists of them")
    if isinstance(doc.get("items"), list) and not (doc.get("metadata") or {}).get("name"):
        kind = doc.get("kind", "")
        for item in doc.get("items") or []:
            if kind.endswith("List") and kind != "List" and "kind" not in item:
                item = {**item, "kind": kind[: -len("List")]}
            _flatten(item, out)
        return
    if "kind" in doc:
        out.append(doc)


def load_into(cluster: "SimCluster", objects: list[Obj], *, take_ownership: bool = False) -> dict[str, Obj]:
    """Create ``objects`` in the cluster's store (lock held) and complete running VMs' VMIs and pods.

    Returns the snapshot's NodeMetrics by node name (see :func:`calibrate_system_usage`).
    """
    store = cluster.store
    namespaces = {o["metadata"].get("namespace") for o in objects if (o.get("metadata") or {}).get("namespace")}
    for ns in sorted(n for n in namespaces if n):
        if store.try_get(("", "namespaces"), None, ns, copy=False) is None:
            store.create(
                ("", "namespaces"),
                {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}},
                    "spec": {"finalizers": ["kubernetes"]},
                    "status": {"phase": "Active"},
                },
            )
    order = [
        "Namespace",
        "Node",
        "KubeVirt",
        "VirtualMachineClusterInstancetype",
        "PersistentVolumeClaim",
        "DataVolume",
        "VirtualMachine",
        "Pod",
        "VirtualMachineInstance",
        "VirtualMachineInstanceMigration",
    ]
    rank = {k: i for i, k in enumerate(order)}
    pod_metrics: dict[tuple[str, str], Obj] = {}
    node_metrics: dict[str, Obj] = {}
    with pause_gc():
        for obj in sorted(objects, key=lambda o: rank.get(o.get("kind", ""), len(order))):
            kind = obj.get("kind", "")
            if kind == "PodMetrics":
                pod_metrics[(obj["metadata"].get("namespace", ""), obj["metadata"]["name"])] = obj
                continue
            if kind == "NodeMetrics":
                node_metrics[obj["metadata"]["name"]] = obj
                continue
            if kind == "Event":
                continue
            key = KIND_KEYS.get(kind)
            if key is None:
                continue
            new = obj if take_ownership else copy_obj(obj)
            meta = new.setdefault("metadata", {})
            meta.pop("resourceVersion", None)
            meta.pop("managedFields", None)
            if kind == "VirtualMachine":
                meta.setdefault("finalizers", [])
                if VM_FINALIZER not in meta["finalizers"]:
                    meta["finalizers"].append(VM_FINALIZER)
            if kind == "Namespace" and store.try_get(key, None, meta.get("name", ""), copy=False) is not None:
                continue
            if kind == "KubeVirt" and store.count(key):
                continue
            if kind == "VirtualMachineInstance":
                pod = _prepare_vmi(cluster, new, pod_metrics)
                store.load(key, new, keep_identity=True)
                if pod is not None:
                    store.load(PODS, pod, keep_identity=True)
                continue
            store.load(key, new, keep_identity=True)
        _complete_running_vms(cluster, pod_metrics)
    return node_metrics


def calibrate_system_usage(cluster: "SimCluster", node_metrics: dict[str, Obj]) -> None:
    """Make simulated node usage match a snapshot's NodeMetrics: what the pods do not explain becomes the
    node's system usage (annotations ``…/system-cpu-usage`` and ``…/system-memory-usage``)."""
    from .metrics import SYSTEM_CPU_ANNOTATION, SYSTEM_MEMORY_ANNOTATION

    for name, metrics in node_metrics.items():
        node = cluster.store.try_get(NODES, None, name, copy=False)
        if node is None:
            continue
        capacity = (node.get("status") or {}).get("capacity") or (node.get("status") or {}).get("allocatable") or {}
        cap_cpu = cpu_millicores(capacity.get("cpu", 0)) * 1_000_000
        cap_mem = memory_bytes(capacity.get("memory", 0))
        if not cap_cpu or not cap_mem:
            continue
        usage = metrics.get("usage") or {}
        pods_cpu, pods_mem = cluster.metrics.node_totals.get(name, [0, 0])
        snap_cpu = cpu_millicores(usage.get("cpu", "0")) * 1_000_000
        snap_mem = memory_bytes(usage.get("memory", "0"))
        fractions = {
            SYSTEM_CPU_ANNOTATION: f"{max(0.0, (snap_cpu - pods_cpu) / cap_cpu):.6f}",
            SYSTEM_MEMORY_ANNOTATION: f"{max(0.0, (snap_mem - pods_mem) / cap_mem):.6f}",
        }

        def annotate(o: Obj, fractions: dict[str, str] = fractions) -> None:
            o["metadata"].setdefault("annotations", {}).update(fractions)

        cluster.store.mutate(NODES, None, name, annotate)


def _complete_running_vms(cluster: "SimCluster", pod_metrics: dict[tuple[str, str], Obj]) -> None:
    """Give running VMs a Running VMI and a bound launcher pod; mark stopped Once/RerunOnFailure VMs as run."""
    store = cluster.store
    now_iso = cluster.clock.now_iso()
    for vm in list(store.iter_objects(VMS)):
        meta = vm["metadata"]
        ns, name = meta.get("namespace") or "", meta["name"]
        cluster.lifecycle.once_started.add(meta.get("uid", ""))
        strategy = run_strategy(vm)
        vmi = store.try_get(VMIS, ns, name, copy=False)
        printable = (vm.get("status") or {}).get("printableStatus")
        wants_running = strategy in ("Always",) or (
            strategy in ("RerunOnFailure", "Manual", "Once") and printable == "Running"
        )
        if vmi is None and wants_running:
            node = (vm.get("status") or {}).get("nodeName")  # not a real field; generators leave it empty
            vmi = _running_vmi(cluster, vm, node, now_iso)
            if vmi is None:
                continue  # nothing fits: the lifecycle controller will report it unschedulable
        if vmi is None:
            continue
        _complete_vmi(cluster, vmi, now_iso, pod_metrics)
    for vmi in list(store.iter_objects(VMIS)):
        if store.try_get(VMS, vmi["metadata"].get("namespace"), vmi["metadata"]["name"], copy=False) is None:
            _complete_vmi(cluster, vmi, now_iso, pod_metrics)


def _prepare_vmi(cluster: "SimCluster", vmi: Obj, pod_metrics: dict[tuple[str, str], Obj]) -> Obj | None:
    """Complete a Running VMI about to be loaded; returns its launcher pod when the snapshot lacks one."""
    meta = vmi["metadata"]
    status = vmi.get("status") or {}
    node = status.get("nodeName")
    if status.get("phase") != "Running" or not node:
        return None
    if not meta.get("uid"):
        meta["uid"] = str(uuid.UUID(int=cluster.rng.getrandbits(128), version=4))
    ns = meta.get("namespace") or ""
    has_pod = any((p.get("spec") or {}).get("nodeName") == node for p in cluster.live_launcher_pods(vmi))
    if has_pod:
        return None  # the snapshot's own pod (loaded before VMIs); its status is completed afterwards
    now_iso = cluster.clock.now_iso()
    pod = build_launcher_pod(vmi)
    pod["metadata"]["name"] = f"virt-launcher-{meta['name']}-{_suffix(cluster.rng)}"
    pod["metadata"]["uid"] = str(uuid.UUID(int=cluster.rng.getrandbits(128), version=4))
    pod["spec"]["nodeName"] = node
    pod["status"] = _running_pod_status(cluster, pod, node, now_iso)
    _complete_status(cluster, vmi, pod, ns, node, now_iso)
    return pod


def _suffix(rng: random.Random) -> str:
    return "".join(rng.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))


def _running_pod_status(cluster: "SimCluster", pod: Obj, node: str, now_iso: str) -> Obj:
    return {
        "phase": "Running",
        "podIP": cluster.next_ip(),
        "hostIP": cluster.node_ip(node),
        "qosClass": "Burstable",
        "startTime": now_iso,
        "conditions": [
            {"type": t, "status": "True", "lastProbeTime": None, "lastTransitionTime": now_iso}
            for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled", "kubevirt.io/virtual-machine-unpaused")
        ],
        "containerStatuses": [running_container_status(pod, now_iso)],
    }


def _complete_status(cluster: "SimCluster", o: Obj, pod: Obj, ns: str, node: str, now_iso: str) -> None:
    """Fill a Running VMI's labels, finalizers and status as virt-controller and virt-handler would have."""
    store = cluster.store
    migratable = live_migratable_condition(
        o.get("spec") or {},
        lambda n: store.try_get(PVCS, ns, n, copy=False),
        lambda n: store.try_get(DVS, ns, n, copy=False),
    )
    ip = (pod.get("status") or {}).get("podIP") or cluster.next_ip()
    st = o.setdefault("status", {})
    labels = o["metadata"].setdefault("labels", {})
    labels["kubevirt.io/nodeName"] = node
    finalizers = o["metadata"].setdefault("finalizers", [])
    if "kubevirt.io/virtualMachineControllerFinalize" not in finalizers:
        finalizers.append("kubevirt.io/virtualMachineControllerFinalize")
    if not st.get("phaseTransitionTimestamps"):
        st["phaseTransitionTimestamps"] = [
            {"phase": p, "phaseTransitionTimestamp": now_iso} for p in ("Pending", "Scheduling", "Scheduled", "Running")
        ]
    conds = {c.get("type"): c for c in st.get("conditions") or []}
    conds.setdefault("Ready", {"type": "Ready", "status": "True", "lastProbeTime": None, "lastTransitionTime": now_iso})
    conds["LiveMigratable"] = {**migratable, "lastProbeTime": None, "lastTransitionTime": now_iso}
    st["conditions"] = list(conds.values())
    st.setdefault("migrationMethod", "LiveMigration" if migratable["status"] == "True" else "BlockMigration")
    st.setdefault("qosClass", "Burstable")
    st.setdefault("activePods", {pod["metadata"].get("uid", ""): node})
    st.setdefault("launcherContainerImageVersion", launcher_image(pod))
    st.setdefault(
        "interfaces",
        [
            {
                "name": "default",
                "ipAddress": ip,
                "ipAddresses": [ip],
                "mac": cluster.next_mac(),
                "infoSource": "domain, guest-agent",
                "interfaceName": "eth0",
                "queueCount": 1,
                "linkState": "up",
            }
        ],
    )
    st.setdefault("guestOSInfo", {})


def _running_vmi(cluster: "SimCluster", vm: Obj, node: str | None, now_iso: str) -> Obj | None:
    instancetype = None
    matcher = (vm.get("spec") or {}).get("instancetype")
    if matcher and matcher.get("name"):
        instancetype = cluster.store.try_get(INSTANCETYPES, None, matcher["name"], copy=False)
    vmi = build_vmi(vm, instancetype)
    if not node:
        decision = cluster.scheduler.schedule(
            build_launcher_pod({**vmi, "metadata": {**vmi["metadata"], "uid": "pending"}})
        )
        if decision.node is None:
            return None
        node = decision.node
    vmi["status"] = {"phase": "Running", "nodeName": node}
    vmi["metadata"]["labels"]["kubevirt.io/nodeName"] = node
    return cluster.store.create(VMIS, vmi)


def _complete_vmi(cluster: "SimCluster", vmi: Obj, now_iso: str, pod_metrics: dict[tuple[str, str], Obj]) -> None:
    """Give a stored Running VMI a launcher pod if it lacks one, and complete its status."""
    store = cluster.store
    meta = vmi["metadata"]
    ns, name = meta.get("namespace") or "", meta["name"]
    status = vmi.get("status") or {}
    node = status.get("nodeName")
    if status.get("phase") != "Running" or not node:
        return
    pods = [p for p in cluster.live_launcher_pods(vmi) if (p.get("spec") or {}).get("nodeName") == node]
    if not pods:
        pod = build_launcher_pod(vmi)
        pod["spec"]["nodeName"] = node
        pod["status"] = _running_pod_status(cluster, pod, node, now_iso)
        pods = [store.load(PODS, pod, keep_identity=False)]
    pod = pods[0]
    _usage_from_metrics(cluster, vmi, pod, pod_metrics)
    if (
        _has_condition(vmi, "LiveMigratable")
        and node == (vmi["metadata"].get("labels") or {}).get("kubevirt.io/nodeName")
        and VMI_FINALIZER in (vmi["metadata"].get("finalizers") or [])
    ):
        return
    store.mutate(VMIS, ns, name, lambda o: _complete_status(cluster, o, pod, ns, node, now_iso))


def _has_condition(obj: Obj, ctype: str) -> bool:
    return any(c.get("type") == ctype for c in (obj.get("status") or {}).get("conditions") or [])


def _usage_from_metrics(cluster: "SimCluster", vmi: Obj, pod: Obj, pod_metrics: dict[tuple[str, str], Obj]) -> None:
    """Turn a snapshot's PodMetrics into the VM's usage annotations, so usage survives and follows the VM."""
    meta = vmi["metadata"]
    metrics = pod_metrics.get((pod["metadata"].get("namespace", ""), pod["metadata"]["name"]))
    if metrics is None:
        for (ns, pod_name), candidate in pod_metrics.items():
            if ns == meta.get("namespace") and pod_name.startswith(f"virt-launcher-{meta['name']}-"):
                metrics = candidate
                break
    if metrics is None:
        return
    cpu_n = 0.0
    mem_b = 0
    for container in metrics.get("containers") or []:
        usage = container.get("usage") or {}
        cpu_n += cpu_millicores(usage.get("cpu", "0")) / 1000
        mem_b += memory_bytes(usage.get("memory", "0"))
    spec = vmi.get("spec") or {}
    cores = vcpus(spec)
    from .kubevirt import guest_memory_bytes

    guest = guest_memory_bytes(spec) or 1
    annotations = {
        CPU_USAGE_ANNOTATION: f"{min(1.0, cpu_n / cores):.3f}",
        MEMORY_USAGE_ANNOTATION: f"{min(1.0, max(0.0, mem_b - 180 * MIB) / guest):.3f}",
    }
    ns, name = meta.get("namespace"), meta["name"]
    target = VMS if cluster.store.try_get(VMS, ns, name, copy=False) is not None else VMIS

    def annotate(o: Obj) -> None:
        existing = o["metadata"].setdefault("annotations", {})
        for k, v in annotations.items():
            existing.setdefault(k, v)

    cluster.store.mutate(target, ns, name, annotate)


# -- generators ----------------------------------------------------------------------------------------------------


@dataclass
class Pool:
    """A group of identical nodes."""

    prefix: str
    count: int
    cpu: int
    memory_gib: int
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[Obj] = field(default_factory=list)
    kvm: bool = True
    control_plane: bool = False


@dataclass
class ScenarioSpec:
    """Parameters of a generated cluster."""

    pools: list[Pool]
    vms: int
    namespaces: list[str]
    hot_fraction: float = 0.1
    cold_fraction: float = 0.1
    cordoned: int = 0
    stopped_fraction: float = 0.05
    rwo_fraction: float = 0.15
    containerdisk_fraction: float = 0.2
    datavolume_fraction: float = 0.2
    instancetype_fraction: float = 0.3
    selector_fraction: float = 0.05
    anti_affinity_groups: int = 2
    anti_affinity_size: int = 3
    fixed_counts: list[int] | None = None
    max_vcpus: int = 16
    memory_per_vcpu_weights: list[tuple[int, float]] = field(default_factory=lambda: list(MEMORY_PER_VCPU_WEIGHTS))
    cpu_targets: list[float] | None = None
    #: Load patterns (signals.PATTERN_ANNOTATION) for the VMs of each general-purpose node, in node order.
    node_patterns: list[str] | None = None
    #: Give every VM a seeded diurnal pattern with noise, some VMs bursts, and the hot nodes' VMs hours of load.
    varying_load: bool = False


def _node(pool: Pool, index: int, zone: str) -> Obj:
    """Node ``index`` of ``pool`` in ``zone``, as a kubelet on an OpenShift worker or control plane reports it."""
    name = f"{pool.prefix}-{index:02d}" if pool.count < 100 else f"{pool.prefix}-{index:03d}"
    capacity, allocatable = _node_resources(pool)
    taints = copy_obj(pool.taints)
    if pool.control_plane:
        taints.append({"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"})
    ip = f"192.168.{10 + index // 250}.{index % 250 + 1 + (100 if pool.control_plane else 0)}"
    node: Obj = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": _node_labels(pool, name, zone),
            "annotations": {"kubevirt.io/heartbeat": "2026-08-01T10:00:00Z", "node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {"podCIDR": f"10.{128 + index // 256}.{index % 256}.0/24"},
        "status": {
            "capacity": capacity,
            "allocatable": allocatable,
            "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
            "conditions": [
                {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory"},
                {"type": "DiskPressure", "status": "False", "reason": "KubeletHasNoDiskPressure"},
                {"type": "PIDPressure", "status": "False", "reason": "KubeletHasSufficientPID"},
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "kubelet is posting ready status",
                },
            ],
            "nodeInfo": _node_info(index),
        },
    }
    if taints:
        node["spec"]["taints"] = taints
    return node


def _node_labels(pool: Pool, name: str, zone: str) -> dict[str, str]:
    """The well-known node labels, the role and KubeVirt labels, then the pool's own."""
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": "amd64",
        "topology.kubernetes.io/zone": zone,
        "node.kubernetes.io/instance-type": f"c{pool.cpu}m{pool.memory_gib}",
    }
    if pool.control_plane:
        labels["node-role.kubernetes.io/control-plane"] = ""
        labels["node-role.kubernetes.io/master"] = ""
    else:
        labels["node-role.kubernetes.io/worker"] = ""
        labels["kubevirt.io/schedulable"] = "true" if pool.kvm else "false"
        labels["cpu-vendor.node.kubevirt.io/Intel"] = "true"
    labels.update(pool.labels)
    return labels


def _node_resources(pool: Pool) -> tuple[dict[str, str], dict[str, str]]:
    """A pool node's capacity and allocatable (system reserve taken off), with KubeVirt's devices on KVM workers."""
    mem = pool.memory_gib * GIB
    capacity = {
        "cpu": str(pool.cpu),
        "memory": f"{mem // 1024}Ki",
        "pods": "250",
        "ephemeral-storage": "418Gi",
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
    }
    allocatable = {
        "cpu": f"{pool.cpu * 1000 - 500}m",
        "memory": f"{(mem - 2 * GIB) // 1024}Ki",
        "pods": "250",
        "ephemeral-storage": "380Gi",
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
    }
    if pool.kvm and not pool.control_plane:
        for device in (KVM, "devices.kubevirt.io/tun", "devices.kubevirt.io/vhost-net"):
            capacity[device] = "1k"
            allocatable[device] = "1k"
    return capacity, allocatable


def _node_info(index: int) -> dict[str, str]:
    """The ``nodeInfo`` of node ``index``: versions and machine identifiers."""
    return {
        "architecture": "amd64",
        "containerRuntimeVersion": "cri-o://1.33.2",
        "kernelVersion": "5.14.0-570.el9.x86_64",
        "kubeletVersion": "v1.33.2",
        "kubeProxyVersion": "v1.33.2",
        "operatingSystem": "linux",
        "osImage": "Red Hat Enterprise Linux CoreOS 9.6",
        "machineID": f"{index:032x}",
        "systemUUID": f"{index:08x}-0000-4000-8000-000000000000",
        "bootID": f"{index:032x}",
    }


def _pick(rng: random.Random, weighted: list[tuple[Any, float]]) -> Any:
    total = sum(w for _, w in weighted)
    x = rng.random() * total
    for value, weight in weighted:
        x -= weight
        if x <= 0:
            return value
    return weighted[-1][0]


_USED_SUFFIXES: set[tuple[str, str, str]] = set()


def _system_pods(node: Obj, rng: random.Random) -> list[Obj]:
    name = node["metadata"]["name"]
    pods = []
    specs = [("kube-system", "kube-proxy", "100m", "128Mi"), ("kube-system", "node-exporter", "50m", "64Mi")]
    if node["metadata"]["labels"].get("kubevirt.io/schedulable") == "true":
        specs.append(("kubevirt", "virt-handler", "10m", "325Mi"))
    if "node-role.kubernetes.io/control-plane" in node["metadata"]["labels"]:
        specs += [("kube-system", "kube-apiserver", "250m", "1Gi"), ("kube-system", "etcd", "100m", "1Gi")]
    for ns, app, cpu, mem in specs:
        suffix = "".join(rng.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
        while (ns, app, suffix) in _USED_SUFFIXES:
            suffix = "".join(rng.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
        _USED_SUFFIXES.add((ns, app, suffix))
        pods.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": f"{app}-{suffix}",
                    "namespace": ns,
                    "labels": {"app": app},
                    "annotations": {CPU_USAGE_ANNOTATION: f"{rng.uniform(0.2, 0.8):.2f}"},
                },
                "spec": {
                    "nodeName": name,
                    "containers": [
                        {
                            "name": app,
                            "image": f"registry.k8s.io/{app}:v1.33.2",
                            "resources": {"requests": {"cpu": cpu, "memory": mem}},
                        }
                    ],
                    "tolerations": [{"operator": "Exists"}],
                },
                "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
            }
        )
    return pods


def _instancetypes() -> list[Obj]:
    out = []
    for name, (cpu, mem) in U1_SIZES.items():
        out.append(
            {
                "apiVersion": "instancetype.kubevirt.io/v1beta1",
                "kind": "VirtualMachineClusterInstancetype",
                "metadata": {
                    "name": name,
                    "labels": {
                        "instancetype.kubevirt.io/vendor": "kubevirt.io",
                        "instancetype.kubevirt.io/common-instancetypes-version": "v1.4.0",
                        "instancetype.kubevirt.io/class": "general.purpose",
                        "instancetype.kubevirt.io/cpu": str(cpu),
                        "instancetype.kubevirt.io/memory": mem,
                        "instancetype.kubevirt.io/size": name.split(".")[1],
                        "app.kubernetes.io/managed-by": "virt-operator",
                    },
                },
                "spec": {"cpu": {"guest": cpu}, "memory": {"guest": mem}},
            }
        )
    return out


@dataclass
class _VmPlan:
    name: str
    namespace: str
    cpus: int
    memory_gib: float
    cpu_frac: float
    mem_frac: float
    storage: str  # rwx | rwo | containerdisk | dv-rwx | dv-rwo
    instancetype: str | None = None
    running: bool = True
    group: str | None = None
    selector: dict[str, str] | None = None
    tolerate: bool = False
    node: str | None = None
    pattern: str | None = None


def _vm_objects(plan: _VmPlan, rng: random.Random) -> list[Obj]:
    """The VirtualMachine of a plan first, then the DataVolume and PVCs its root disk needs."""
    ns = plan.namespace
    labels = {"app.kubernetes.io/name": plan.name.rsplit("-", 1)[0], "kubevirt.io/domain": plan.name}
    if plan.group:
        labels["app"] = plan.group
    spec = _vm_template_spec(plan)
    vm_spec: Obj = {"runStrategy": "Always" if plan.running else "Halted"}
    objs = _vm_root_disk(plan, spec, vm_spec)
    _vm_placement(plan, spec)
    vm_spec["template"] = {"metadata": {"labels": labels}, "spec": spec}
    if plan.instancetype:
        vm_spec["instancetype"] = {"kind": "VirtualMachineClusterInstancetype", "name": plan.instancetype}
        vm_spec["preference"] = {"kind": "VirtualMachineClusterPreference", "name": "rhel.9"}
    vm = {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {
            "name": plan.name,
            "namespace": ns,
            "labels": {"app": plan.group or labels["app.kubernetes.io/name"]},
            "annotations": _vm_annotations(plan),
        },
        "spec": vm_spec,
    }
    objs.insert(0, vm)
    return objs


def _vm_annotations(plan: _VmPlan) -> dict[str, str]:
    """The simulator's usage annotations: CPU and memory use, load pattern, dirty rate of busy VMs."""
    annotations = {CPU_USAGE_ANNOTATION: f"{plan.cpu_frac:.3f}", MEMORY_USAGE_ANNOTATION: f"{plan.mem_frac:.3f}"}
    if plan.pattern:
        annotations[PATTERN_ANNOTATION] = plan.pattern
    if plan.cpu_frac > 0.7:
        annotations[DIRTY_RATE_ANNOTATION] = f"{int(plan.memory_gib * 1024 * 0.05)}Mi"
    return annotations


def _vm_template_spec(plan: _VmPlan) -> Obj:
    """The VMI template's spec without volumes and placement: devices, machine, network, eviction strategy,
    and CPU and memory unless an instance type gives them."""
    spec: Obj = {
        "domain": {
            "devices": {
                "disks": [
                    {"name": "rootdisk", "disk": {"bus": "virtio"}},
                    {"name": "cloudinitdisk", "disk": {"bus": "virtio"}},
                ],
                "interfaces": [{"name": "default", "masquerade": {}}],
                "rng": {},
            },
            "machine": {"type": "pc-q35-rhel9.6.0"},
            "firmware": {"bootloader": {"efi": {}}},
        },
        "networks": [{"name": "default", "pod": {}}],
        "evictionStrategy": "LiveMigrate" if plan.storage in ("rwx", "dv-rwx", "containerdisk") else "None",
        "terminationGracePeriodSeconds": 180,
    }
    if plan.instancetype is None:
        spec["domain"]["cpu"] = {"cores": 1, "sockets": plan.cpus, "threads": 1}
        mem = f"{int(plan.memory_gib)}Gi" if plan.memory_gib >= 1 else f"{int(plan.memory_gib * 1024)}Mi"
        spec["domain"]["memory"] = {"guest": mem}
    return spec


def _vm_root_disk(plan: _VmPlan, spec: Obj, vm_spec: Obj) -> list[Obj]:
    """Set the template's volumes (a container disk, a PVC or a DataVolume, and cloud-init) and, for a
    DataVolume, the VM's template for it; returns the storage objects to create."""
    cloudinit = {"name": "cloudinitdisk", "cloudInitNoCloud": {"userData": "#cloud-config\nuser: cloud-user\n"}}
    size_gib = 30 if plan.memory_gib <= 8 else 60
    if plan.storage == "containerdisk":
        spec["volumes"] = [
            {"name": "rootdisk", "containerDisk": {"image": "quay.io/containerdisks/fedora:41"}},
            cloudinit,
        ]
        return []
    if plan.storage in ("rwx", "rwo"):
        claim = f"{plan.name}-rootdisk"
        spec["volumes"] = [{"name": "rootdisk", "persistentVolumeClaim": {"claimName": claim}}, cloudinit]
        return [_pvc(claim, plan.namespace, plan.storage, size_gib)]
    dv = f"{plan.name}-rootdisk"
    mode = "rwx" if plan.storage == "dv-rwx" else "rwo"
    spec["volumes"] = [{"name": "rootdisk", "dataVolume": {"name": dv}}, cloudinit]
    vm_spec["dataVolumeTemplates"] = [
        {
            "metadata": {"name": dv},
            "spec": {
                "sourceRef": {
                    "kind": "DataSource",
                    "name": "rhel9",
                    "namespace": "openshift-virtualization-os-images",
                },
                "storage": {"accessModes": [_mode(mode)], "resources": {"requests": {"storage": f"{size_gib}Gi"}}},
            },
        }
    ]
    return [_data_volume(plan, dv, vm_spec["dataVolumeTemplates"][0]["spec"]), _pvc(dv, plan.namespace, mode, size_gib)]


def _data_volume(plan: _VmPlan, dv: str, dv_spec: Obj) -> Obj:
    """The imported (Succeeded) DataVolume ``dv`` owned by the plan's VM."""
    return {
        "apiVersion": "cdi.kubevirt.io/v1beta1",
        "kind": "DataVolume",
        "metadata": {
            "name": dv,
            "namespace": plan.namespace,
            "ownerReferences": [
                {
                    "apiVersion": "kubevirt.io/v1",
                    "kind": "VirtualMachine",
                    "name": plan.name,
                    "controller": True,
                    "blockOwnerDeletion": True,
                    "uid": "",
                }
            ],
        },
        "spec": dv_spec,
        "status": {"phase": "Succeeded", "progress": "100.0%", "claimName": dv},
    }


def _vm_placement(plan: _VmPlan, spec: Obj) -> None:
    """Add the plan's node selector, its toleration of the databases pool and its anti-affinity group."""
    if plan.selector:
        spec["nodeSelector"] = dict(plan.selector)
    if plan.tolerate:
        spec["tolerations"] = [{"key": "dedicated", "operator": "Equal", "value": "databases", "effect": "NoSchedule"}]
        spec.setdefault("nodeSelector", {})["pool"] = "databases"
    if plan.group:
        spec["affinity"] = {
            "podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "labelSelector": {
                            "matchExpressions": [{"key": "app", "operator": "In", "values": [plan.group]}]
                        },
                        "topologyKey": "kubernetes.io/hostname",
                    }
                ]
            }
        }


def _mode(short: str) -> str:
    return "ReadWriteMany" if short == "rwx" else "ReadWriteOnce"


def _pvc(name: str, ns: str, mode: str, size_gib: int) -> Obj:
    sc = "ocs-storagecluster-ceph-rbd-virtualization" if mode == "rwx" else "lvms-vg1"
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "accessModes": [_mode(mode)],
            "resources": {"requests": {"storage": f"{size_gib}Gi"}},
            "storageClassName": sc,
            "volumeMode": "Block" if mode == "rwx" else "Filesystem",
            "volumeName": f"pvc-{zlib.crc32(f'{ns}/{name}'.encode()):010d}",
        },
        "status": {"phase": "Bound", "accessModes": [_mode(mode)], "capacity": {"storage": f"{size_gib}Gi"}},
    }


SCENARIOS: dict[str, ScenarioSpec] = {
    "demo": ScenarioSpec(
        pools=[Pool("control-plane", 1, 8, 32, control_plane=True), Pool("worker", 6, 16, 96)],
        vms=40,
        namespaces=["prod", "dev"],
        cordoned=0,
        stopped_fraction=0.0,
        rwo_fraction=0.1,
        containerdisk_fraction=0.15,
        datavolume_fraction=0.2,
        instancetype_fraction=0.3,
        selector_fraction=0.0,
        anti_affinity_groups=1,
        anti_affinity_size=2,
        fixed_counts=[10, 9, 8, 8, 2, 1],
        max_vcpus=4,
        memory_per_vcpu_weights=[(2, 0.8), (4, 0.2)],
        cpu_targets=[0.88, 0.86, 0.55, 0.5, 0.1, 0.06],
    ),
    "small": ScenarioSpec(
        pools=[Pool("control-plane", 1, 8, 32, control_plane=True), Pool("worker", 4, 16, 64)],
        vms=12,
        namespaces=["prod", "dev"],
        stopped_fraction=0.1,
        anti_affinity_groups=1,
        anti_affinity_size=2,
        selector_fraction=0.0,
        fixed_counts=[5, 4, 1, 1],
        max_vcpus=4,
        memory_per_vcpu_weights=[(2, 0.5), (4, 0.5)],
        cpu_targets=[0.82, 0.6, 0.2, 0.12],
    ),
    "medium": ScenarioSpec(
        pools=[
            Pool("control-plane", 3, 16, 64, control_plane=True),
            Pool("worker", 36, 64, 256),
            Pool("worker-large", 8, 96, 512),
            Pool(
                "db",
                4,
                64,
                512,
                labels={"pool": "databases"},
                taints=[{"key": "dedicated", "value": "databases", "effect": "NoSchedule"}],
            ),
            Pool("infra", 2, 16, 64, kvm=False),
        ],
        vms=1000,
        namespaces=["prod", "staging", "dev", "batch", "web", "data"],
        cordoned=1,
    ),
    # A node saturated all along (worker-01), one with only a 2-minute spike around the start of the
    # simulation (worker-02: simulated seconds -30 to +90), one that was hot for two hours until an hour
    # ago (worker-04), diurnal swings elsewhere (signals.py).
    "sustained": ScenarioSpec(
        pools=[Pool("control-plane", 1, 8, 32, control_plane=True), Pool("worker", 6, 16, 64)],
        vms=36,
        namespaces=["prod", "dev"],
        stopped_fraction=0.0,
        rwo_fraction=0.1,
        containerdisk_fraction=0.15,
        datavolume_fraction=0.2,
        instancetype_fraction=0.3,
        selector_fraction=0.0,
        anti_affinity_groups=0,
        fixed_counts=[8, 9, 5, 5, 4, 4],
        max_vcpus=4,
        memory_per_vcpu_weights=[(2, 0.8), (4, 0.2)],
        cpu_targets=[0.95, 0.3, 0.45, 0.4, 0.3, 0.25],
        node_patterns=[
            "noise=0.03",
            "burst=-30+2m@0.93;noise=0.05",
            "diurnal=0.5;noise=0.05",
            "burst=-3h+2h@0.95;noise=0.05",
            "diurnal=0.2;noise=0.05",
            "diurnal=0.2;peak=9;noise=0.05",
        ],
    ),
    # ~50 nodes / 1,000 VMs whose load varies: daily swings, random bursts, a few nodes hot for hours.
    "diurnal": ScenarioSpec(
        pools=[
            Pool("control-plane", 3, 16, 64, control_plane=True),
            Pool("worker", 40, 64, 256),
            Pool("worker-large", 8, 96, 512),
        ],
        vms=1000,
        namespaces=["prod", "staging", "dev", "batch", "web"],
        varying_load=True,
    ),
    "large": ScenarioSpec(
        pools=[
            Pool("control-plane", 3, 32, 128, control_plane=True),
            Pool("worker", 380, 64, 256),
            Pool("worker-large", 80, 96, 512),
            Pool(
                "db",
                25,
                64,
                512,
                labels={"pool": "databases"},
                taints=[{"key": "dedicated", "value": "databases", "effect": "NoSchedule"}],
            ),
            Pool("infra", 12, 16, 64, kvm=False),
        ],
        vms=10000,
        namespaces=[f"team-{i:02d}" for i in range(20)],
        cordoned=3,
    ),
}


def generate_scenario(name: str, *, seed: int = 0) -> list[Obj]:
    """The objects of a built-in scenario (a snapshot-like list), deterministic for a seed.

    Raises:
        ValueError: unknown scenario name.
    """
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; choose one of {sorted(SCENARIOS)}")
    return generate_cluster(SCENARIOS[name], seed=seed)


def generate_cluster(spec: ScenarioSpec, *, seed: int = 0) -> list[Obj]:
    """Nodes, instance types, storage, VMs (with Running VMIs placed) and system pods for ``spec``."""
    rng = random.Random(seed)
    nodes: list[Obj] = []
    zones = ["zone-a", "zone-b", "zone-c"]
    index = 0
    for pool in spec.pools:
        for i in range(1, pool.count + 1):
            node = _node(pool, i, zones[index % 3])
            index += 1
            nodes.append(node)
    workers = [
        n
        for n in nodes
        if n["metadata"]["labels"].get("kubevirt.io/schedulable") == "true" and not n["spec"].get("taints")
    ]
    for node in workers[len(workers) - spec.cordoned :] if spec.cordoned else []:
        node["spec"]["unschedulable"] = True
        node["spec"]["taints"] = [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]
    plans = _plan_vms(spec, rng)
    _place(spec, plans, nodes, rng)
    _assign_patterns(spec, plans, nodes, random.Random(seed + 17))
    objects: list[Obj] = [*nodes, *_instancetypes()]
    from .cluster import default_kubevirt_cr

    objects.append(default_kubevirt_cr())
    _USED_SUFFIXES.clear()
    for node in nodes:
        objects.extend(_system_pods(node, rng))
    for plan in plans:
        vm_objs = _vm_objects(plan, rng)
        objects.extend(vm_objs)
        if plan.running and plan.node:
            vm = vm_objs[0]
            instancetype = None
            if plan.instancetype:
                cpu, mem = U1_SIZES[plan.instancetype]
                instancetype = {"spec": {"cpu": {"guest": cpu}, "memory": {"guest": mem}}}
            vmi = build_vmi(vm, instancetype)
            vmi["metadata"]["labels"]["kubevirt.io/nodeName"] = plan.node
            vmi["status"] = {"phase": "Running", "nodeName": plan.node}
            objects.append(vmi)
    return objects


def _assign_patterns(spec: ScenarioSpec, plans: list[_VmPlan], nodes: list[Obj], rng: random.Random) -> None:
    """Time-varying load (signals.py): per-node patterns, or seeded diurnal swings, bursts and hot nodes."""
    general = [
        n["metadata"]["name"]
        for n in nodes
        if n["metadata"]["labels"].get("kubevirt.io/schedulable") == "true"
        and not n["spec"].get("taints")
        and not n["spec"].get("unschedulable")
    ]
    if spec.node_patterns:
        by_node = dict(zip(general, spec.node_patterns, strict=False))
        for plan in plans:
            if plan.running and plan.node in by_node and by_node[plan.node]:
                plan.pattern = by_node[plan.node]
        return
    if not spec.varying_load:
        return
    hot = set(rng.sample(general, max(1, len(general) // 20))) if general else set()
    for plan in plans:
        if not plan.running:
            continue
        terms = [f"diurnal={rng.uniform(0.15, 0.45):.2f}", f"peak={rng.uniform(10, 18):.1f}", "noise=0.08"]
        if plan.node in hot:
            terms.append("burst=-5h+12h@0.92")
        elif rng.random() < 0.04:
            start = rng.randrange(-6 * 3600, 3600, 15)
            terms.append(f"burst={start}+{rng.choice((60, 120, 300, 900))}@{rng.uniform(0.8, 1.0):.2f}")
        plan.pattern = ";".join(terms)


def _plan_vms(spec: ScenarioSpec, rng: random.Random) -> list[_VmPlan]:
    plans = []
    kinds = ["web", "app", "api", "db", "cache", "batch", "build", "vdi", "mq", "search"]
    group_members: list[str | None] = []
    for g in range(spec.anti_affinity_groups):
        group_members += [f"ha-{kinds[g % len(kinds)]}-{g}"] * spec.anti_affinity_size
    has_db_pool = any(p.labels.get("pool") == "databases" for p in spec.pools)
    per_kind: dict[str, int] = {}
    for i in range(spec.vms):
        kind = kinds[i % len(kinds)] if spec.vms > 60 else kinds[rng.randrange(len(kinds))]
        ns = spec.namespaces[i % len(spec.namespaces)]
        per_kind[kind] = per_kind.get(kind, 0) + 1
        name = f"{kind}-{per_kind[kind]:04d}" if spec.vms >= 1000 else f"{kind}-{per_kind[kind]:02d}"
        cpus = min(_pick(rng, VCPU_WEIGHTS), spec.max_vcpus)
        mem = cpus * _pick(rng, spec.memory_per_vcpu_weights)
        lo, hi = _pick(rng, CPU_UTIL_BANDS)
        plan = _VmPlan(name, ns, cpus, mem, rng.uniform(lo, hi), rng.uniform(0.3, 0.85), "rwx")
        roll = rng.random()
        if roll < spec.rwo_fraction:
            plan.storage = "rwo" if rng.random() < 0.6 else "dv-rwo"
        elif roll < spec.rwo_fraction + spec.containerdisk_fraction:
            plan.storage = "containerdisk"
        elif roll < spec.rwo_fraction + spec.containerdisk_fraction + spec.datavolume_fraction:
            plan.storage = "dv-rwx"
        if rng.random() < spec.instancetype_fraction:
            fitting = [n for n, (c, m) in U1_SIZES.items() if c == cpus and memory_bytes(m) == int(mem * GIB)]
            if fitting:
                plan.instancetype = fitting[0]
        if i < len(group_members):
            plan.group = group_members[i]
            plan.storage = "rwx"
        if has_db_pool and kind == "db" and rng.random() < 0.6:
            plan.tolerate = True
        elif rng.random() < spec.selector_fraction:
            plan.selector = {"topology.kubernetes.io/zone": rng.choice(["zone-a", "zone-b", "zone-c"])}
        plans.append(plan)
    stopped = max(1, round(spec.vms * spec.stopped_fraction)) if spec.stopped_fraction or spec.fixed_counts else 0
    if spec.fixed_counts:
        stopped = max(1, spec.vms - sum(spec.fixed_counts))
    candidates = [p for p in plans if p.group is None]
    for plan in rng.sample(candidates, min(stopped, len(candidates))):
        plan.running = False
    return plans


class _Capacity:
    def __init__(self, node: Obj) -> None:
        alloc = node["status"]["allocatable"]
        self.node = node
        self.name = node["metadata"]["name"]
        self.cpu = cpu_millicores(alloc["cpu"]) - 170  # system pods
        self.memory = memory_bytes(alloc["memory"]) - 600 * MIB
        self.kvm = int(memory_bytes(alloc.get(KVM, "0")))
        self.headroom = 0.08 * memory_bytes(alloc["memory"])
        self.static: dict[Any, bool] = {}
        self.groups: set[str] = set()
        self.vcpus = 0
        self.plans: list[_VmPlan] = []

    def fits(self, plan: _VmPlan, requests: dict[str, int], pod_spec: Obj) -> bool:
        if self.kvm <= 0 or (plan.group and plan.group in self.groups):
            return False
        # keep 8 % memory headroom so the generated cluster never starts over-committed
        if requests["cpu"] > self.cpu or requests["memory"] > self.memory - self.headroom:
            return False
        return self.static_fit(plan, pod_spec)

    def static_fit(self, plan: _VmPlan, pod_spec: Obj) -> bool:
        key = (plan.tolerate, tuple(sorted((plan.selector or {}).items())))
        cached = self.static.get(key)
        if cached is None:
            node = self.node
            cached = (
                not node["spec"].get("unschedulable")
                and node_affinity_matches(pod_spec, node)
                and all(
                    taint.get("effect") not in ("NoSchedule", "NoExecute")
                    or tolerates(pod_spec.get("tolerations") or [], taint)
                    for taint in node["spec"].get("taints") or []
                )
            )
            self.static[key] = cached
        return cached

    def take(self, plan: _VmPlan, requests: dict[str, int]) -> None:
        self.cpu -= requests["cpu"]
        self.memory -= requests["memory"]
        self.kvm -= 1
        self.vcpus += plan.cpus
        self.plans.append(plan)
        if plan.group:
            self.groups.add(plan.group)


def _plan_spec(plan: _VmPlan) -> Obj:
    spec: Obj = {
        "domain": {
            "cpu": {"sockets": plan.cpus, "cores": 1, "threads": 1},
            "memory": {"guest": f"{int(plan.memory_gib * 1024)}Mi"},
        },
        "nodeSelector": {"kubevirt.io/schedulable": "true"},
    }
    if plan.selector:
        spec["nodeSelector"].update(plan.selector)
    if plan.tolerate:
        spec["tolerations"] = [{"key": "dedicated", "operator": "Equal", "value": "databases", "effect": "NoSchedule"}]
        spec["nodeSelector"]["pool"] = "databases"
    return spec


def _place(spec: ScenarioSpec, plans: list[_VmPlan], nodes: list[Obj], rng: random.Random) -> None:
    """Put each running VM plan on a node (a plan that fits nowhere is stopped), then shape CPU use per node."""
    caps = [_Capacity(n) for n in nodes if n["metadata"]["labels"].get("kubevirt.io/schedulable") == "true"]
    general = [c for c in caps if not c.node["spec"].get("taints") and not c.node["spec"].get("unschedulable")]
    running = [p for p in plans if p.running]
    running.sort(key=lambda p: (p.group is None, not p.tolerate, -p.cpus, -p.memory_gib))
    targets, weights = _placement_targets(spec, general, rng)
    if targets:
        _place_by_counts(spec, running, caps, general, targets)
    else:
        _place_weighted(running, caps, weights, rng)
    _shape_utilisation(spec, caps, general, weights, rng)


def _placement_targets(
    spec: ScenarioSpec, general: list[_Capacity], rng: random.Random
) -> tuple[dict[str, int], dict[str, float]]:
    """Fixed VM counts per general-purpose node when the spec has them; otherwise placement weights that
    make a seeded few nodes hot (3.0) and a few cold (0.15)."""
    weights: dict[str, float] = {}
    if spec.fixed_counts:
        return dict(zip([c.name for c in general], spec.fixed_counts, strict=False)), weights
    hot = max(1, int(len(general) * spec.hot_fraction))
    cold = max(1, int(len(general) * spec.cold_fraction))
    order = list(general)
    rng.shuffle(order)
    for c in order[:hot]:
        weights[c.name] = 3.0
    for c in order[hot : hot + cold]:
        weights[c.name] = 0.15
    return {}, weights


def _place_weighted(
    running: list[_VmPlan], caps: list[_Capacity], weights: dict[str, float], rng: random.Random
) -> None:
    """Place each VM on a node drawn by weight × memory among the nodes it fits on."""
    classes: dict[Any, tuple[list[_Capacity], list[float]]] = {}
    for plan in running:
        requests = launcher_requests(_plan_spec(plan))
        pod_spec = _plan_spec(plan)
        klass = (plan.tolerate, tuple(sorted((plan.selector or {}).items())))
        if klass not in classes:
            statics = [c for c in caps if c.static_fit(plan, pod_spec)]
            cum: list[float] = []
            total = 0.0
            for c in statics:
                total += weights.get(c.name, 1.0) * max(0.01, c.memory / GIB)
                cum.append(total)
            classes[klass] = (statics, cum)
        statics, cum = classes[klass]
        choice = None
        for _ in range(40):  # weighted rejection sampling: O(log n) per VM on big clusters
            candidate = rng.choices(statics, cum_weights=cum)[0] if statics else None
            if candidate is not None and candidate.fits(plan, requests, pod_spec):
                choice = candidate
                break
        if choice is None:
            feasible = [c for c in statics if c.fits(plan, requests, pod_spec)]
            if not feasible:
                plan.running = False
                continue
            choice = max(feasible, key=lambda c: (c.memory, c.name))
        choice.take(plan, requests)
        plan.node = choice.name


def _place_by_counts(
    spec: ScenarioSpec,
    running: list[_VmPlan],
    caps: list[_Capacity],
    general: list[_Capacity],
    targets: dict[str, int],
) -> None:
    """Place each VM on the feasible node furthest below its fixed count (hottest target first)."""
    placed_counts: dict[str, int] = {}
    for plan in running:
        requests = launcher_requests(_plan_spec(plan))
        pod_spec = _plan_spec(plan)
        feasible = [c for c in caps if c.fits(plan, requests, pod_spec)]
        if not feasible:
            plan.running = False
            continue
        wanting = [c for c in feasible if placed_counts.get(c.name, 0) < targets.get(c.name, 0)]
        hotness = dict(zip([c.name for c in general], spec.cpu_targets or [], strict=False))
        choice = max(
            wanting or feasible,
            key=lambda c: (
                hotness.get(c.name, 0.0),
                targets.get(c.name, 0) - placed_counts.get(c.name, 0),
                c.memory,
                c.name,
            ),
        )
        choice.take(plan, requests)
        plan.node = choice.name
        placed_counts[choice.name] = placed_counts.get(choice.name, 0) + 1


def _shape_utilisation(
    spec: ScenarioSpec,
    caps: list[_Capacity],
    general: list[_Capacity],
    weights: dict[str, float],
    rng: random.Random,
) -> None:
    """Shape utilisation: hot nodes busy, cold nodes idle (scaled per node, clamped per VM)."""
    cpu_targets: dict[str, float] = {}
    if spec.cpu_targets:
        cpu_targets = dict(zip([c.name for c in general], spec.cpu_targets, strict=False))
    else:
        for c in general:
            w = weights.get(c.name, 1.0)
            cpu_targets[c.name] = (
                rng.uniform(0.8, 0.92) if w > 1 else rng.uniform(0.03, 0.12) if w < 1 else rng.uniform(0.3, 0.65)
            )
    for c in caps:
        target = cpu_targets.get(c.name)
        if target is None or not c.plans:
            continue
        cores = cpu_millicores(c.node["status"]["capacity"]["cpu"]) / 1000
        want = max(0.0, target - 0.03) * cores - 0.015 * len(c.plans)
        for _ in range(10):  # water-filling: VMs that hit the cap pass the rest to the others
            fixed = sum(p.cpu_frac * p.cpus for p in c.plans if p.cpu_frac >= 0.97)
            free = [p for p in c.plans if p.cpu_frac < 0.97]
            have = sum(p.cpu_frac * p.cpus for p in free)
            if have <= 0 or abs(fixed + have - want) < 0.05:
                break
            scale = (want - fixed) / have
            for p in free:
                p.cpu_frac = min(0.97, max(0.01, p.cpu_frac * scale))
