"""Small builders of raw Kubernetes objects for tests and hand-written scenarios.

``SimCluster.load_objects([node("w1"), vm("web", node="w1")])`` gives a cluster whose running
VMs already have a Running VMI and launcher pod on the given node.
"""

from typing import Any

from .kubevirt import CPU_USAGE_ANNOTATION, DIRTY_RATE_ANNOTATION, KVM, MEMORY_USAGE_ANNOTATION, build_vmi

Obj = dict[str, Any]


def node(
    name: str,
    *,
    cpu: int = 16,
    memory_gib: int = 64,
    labels: dict[str, str] | None = None,
    taints: list[Obj] | None = None,
    unschedulable: bool = False,
    ready: bool = True,
    kvm: bool = True,
    control_plane: bool = False,
) -> Obj:
    """A Node with allocatable = capacity, the kvm device and kubevirt.io/schedulable=true (unless not kvm)."""
    all_labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}
    if control_plane:
        all_labels["node-role.kubernetes.io/control-plane"] = ""
    else:
        all_labels["node-role.kubernetes.io/worker"] = ""
        all_labels["kubevirt.io/schedulable"] = "true" if kvm else "false"
    all_labels.update(labels or {})
    capacity = {"cpu": str(cpu), "memory": f"{memory_gib}Gi", "pods": "250"}
    if kvm and not control_plane:
        capacity[KVM] = "1k"
    spec: Obj = {}
    node_taints = list(taints or [])
    if control_plane:
        node_taints.append({"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"})
    if unschedulable:
        spec["unschedulable"] = True
        node_taints.append({"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"})
    if node_taints:
        spec["taints"] = node_taints
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": all_labels},
        "spec": spec,
        "status": {
            "capacity": dict(capacity),
            "allocatable": dict(capacity),
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True" if ready else "False",
                    "reason": "KubeletReady" if ready else "KubeletNotReady",
                }
            ],
            "addresses": [{"type": "InternalIP", "address": f"192.168.1.{sum(map(ord, name)) % 250 + 1}"}],
        },
    }


def pvc(name: str, namespace: str = "default", *, access_mode: str = "ReadWriteMany", size: str = "30Gi") -> Obj:
    """A Bound PersistentVolumeClaim."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"accessModes": [access_mode], "resources": {"requests": {"storage": size}}},
        "status": {"phase": "Bound", "accessModes": [access_mode], "capacity": {"storage": size}},
    }


def vm(
    name: str,
    namespace: str = "default",
    *,
    cpus: int = 2,
    memory: str = "4Gi",
    run_strategy: str = "Always",
    node: str | None = None,
    claim: str | None = None,
    node_selector: dict[str, str] | None = None,
    affinity: Obj | None = None,
    tolerations: list[Obj] | None = None,
    labels: dict[str, str] | None = None,
    cpu_usage: float | None = None,
    memory_usage: float | None = None,
    dirty_rate: str | None = None,
    instancetype: str | None = None,
) -> list[Obj]:
    """A VirtualMachine (container disk, or the PVC ``claim``) and, with ``node``, its Running VMI there."""
    annotations: dict[str, str] = {}
    if cpu_usage is not None:
        annotations[CPU_USAGE_ANNOTATION] = str(cpu_usage)
    if memory_usage is not None:
        annotations[MEMORY_USAGE_ANNOTATION] = str(memory_usage)
    if dirty_rate is not None:
        annotations[DIRTY_RATE_ANNOTATION] = dirty_rate
    volume: Obj = (
        {"name": "rootdisk", "persistentVolumeClaim": {"claimName": claim}}
        if claim
        else {"name": "rootdisk", "containerDisk": {"image": "quay.io/containerdisks/fedora:41"}}
    )
    spec: Obj = {
        "domain": {
            "devices": {
                "disks": [{"name": "rootdisk", "disk": {"bus": "virtio"}}],
                "interfaces": [{"name": "default", "masquerade": {}}],
            }
        },
        "networks": [{"name": "default", "pod": {}}],
        "volumes": [volume],
    }
    if instancetype is None:
        spec["domain"]["cpu"] = {"cores": 1, "sockets": cpus, "threads": 1}
        spec["domain"]["memory"] = {"guest": memory}
    if node_selector:
        spec["nodeSelector"] = dict(node_selector)
    if affinity:
        spec["affinity"] = affinity
    if tolerations:
        spec["tolerations"] = tolerations
    vm_spec: Obj = {
        "runStrategy": run_strategy,
        "template": {"metadata": {"labels": {"kubevirt.io/domain": name, **(labels or {})}}, "spec": spec},
    }
    if instancetype:
        vm_spec["instancetype"] = {"kind": "VirtualMachineClusterInstancetype", "name": instancetype}
    obj: Obj = {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
        "spec": vm_spec,
    }
    out = [obj]
    if node is not None:
        vmi = build_vmi(obj)
        vmi["metadata"]["labels"]["kubevirt.io/nodeName"] = node
        vmi["status"] = {"phase": "Running", "nodeName": node}
        out.append(vmi)
    return out


def anti_affinity(label_key: str, label_value: str) -> Obj:
    """Required pod anti-affinity against pods labelled ``label_key=label_value`` on the same host."""
    return {
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {label_key: label_value}}, "topologyKey": "kubernetes.io/hostname"}
            ]
        }
    }


def node_affinity(*terms: Obj) -> Obj:
    """Required node affinity with the given nodeSelectorTerms."""
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}}}


def sim_cluster(*objects: Obj | list[Obj], seed: int = 0, **kwargs: Any) -> Any:
    """A manual-clock SimCluster loaded with ``objects`` (lists are flattened); for tests."""
    from .cluster import SimCluster

    cluster = SimCluster(manual_clock=True, seed=seed, **kwargs)
    flat: list[Obj] = []
    for item in objects:
        flat.extend(item if isinstance(item, list) else [item])
    cluster.load_objects(flat)
    return cluster
