"""What KubeVirt derives from a VM: the VMI, its virt-launcher pod and the pod's requests, live-migratability.

Pure functions over raw JSON dicts (kubevirt-api.md §1.4, §2.3, §2.4); no store access.
"""

import hashlib
import math
from collections.abc import Callable, Mapping
from typing import Any

from .quantity import MIB, cpu_millicores, format_cpu_millicores, format_memory_bytes, memory_bytes

Obj = dict[str, Any]

KUBEVIRT_VERSION = "v1.6.0"
LAUNCHER_IMAGE = f"quay.io/kubevirt/virt-launcher:{KUBEVIRT_VERSION}"
CPU_ALLOCATION_RATIO = 10
KVM = "devices.kubevirt.io/kvm"
VM_FINALIZER = "kubevirt.io/virtualMachineControllerFinalize"
VMI_FINALIZER = "kubevirt.io/virtualMachineControllerFinalize"
MIGRATION_FINALIZER = "kubevirt.io/migrationJobFinalize"

#: Per-VM knobs of the simulator, read from VM (or VMI) annotations.
CPU_USAGE_ANNOTATION = "simulator.vm-rebalance.io/cpu-usage"
"""Fraction (0..1) of the VM's vCPUs the guest keeps busy; on other pods, a fraction of their CPU request."""
MEMORY_USAGE_ANNOTATION = "simulator.vm-rebalance.io/memory-usage"
"""Fraction (0..1) of guest memory the guest uses; on other pods, a fraction of their memory request."""
DIRTY_RATE_ANNOTATION = "simulator.vm-rebalance.io/dirty-rate"
"""Guest memory dirtied per second during a migration, as a quantity (``200Mi``); default 2 % of guest memory."""

RUN_STRATEGIES = ("Always", "Halted", "Manual", "RerunOnFailure", "Once", "WaitAsReceiver")


def run_strategy(vm: Mapping[str, Any]) -> str:
    """The VM's effective runStrategy (``spec.running`` maps to Always/Halted)."""
    spec = vm.get("spec") or {}
    strategy = spec.get("runStrategy")
    if strategy:
        return str(strategy)
    running = spec.get("running")
    if running is None:
        return "Halted"
    return "Always" if running else "Halted"


def vcpus(vmi_spec: Mapping[str, Any]) -> int:
    """Number of vCPUs: cores×sockets×threads with zero terms skipped, else from the CPU request/limit."""
    domain = vmi_spec.get("domain") or {}
    cpu = domain.get("cpu") or {}
    count = 1
    seen = False
    for field in ("cores", "sockets", "threads"):
        value = int(cpu.get(field) or 0)
        if value:
            count *= value
            seen = True
    if seen:
        return count
    resources = domain.get("resources") or {}
    for section in ("limits", "requests"):
        cpu_value = (resources.get(section) or {}).get("cpu")
        if cpu_value is not None:
            return max(1, math.ceil(cpu_millicores(cpu_value) / 1000))
    return 1


def guest_memory_bytes(vmi_spec: Mapping[str, Any]) -> int:
    """Guest RAM: domain.memory.guest, else the memory request, else limit."""
    domain = vmi_spec.get("domain") or {}
    guest = (domain.get("memory") or {}).get("guest")
    if guest is not None:
        return memory_bytes(guest)
    resources = domain.get("resources") or {}
    for section in ("requests", "limits"):
        value = (resources.get(section) or {}).get("memory")
        if value is not None:
            return memory_bytes(value)
    return 0


def memory_overhead_bytes(vmi_spec: Mapping[str, Any]) -> int:
    """virt-launcher memory overhead for KVM on amd64 (kubevirt-api.md §2.4)."""
    devices = (vmi_spec.get("domain") or {}).get("devices") or {}
    overhead = guest_memory_bytes(vmi_spec) // 512  # page tables
    overhead += (25 + 100 + 25 + 40 + 50) * MIB  # monitor, launcher, virtlogd, virtqemud, qemu
    overhead += 8 * MIB * vcpus(vmi_spec) + 8 * MIB  # per vCPU, IOThread
    if devices.get("autoattachGraphicsDevice", True) is not False:
        overhead += 32 * MIB
    return overhead


def launcher_requests(vmi_spec: Mapping[str, Any]) -> dict[str, int]:
    """The virt-launcher pod's requests: ``cpu`` (millicores), ``memory`` (bytes), the kvm device."""
    resources = (vmi_spec.get("domain") or {}).get("resources") or {}
    requests = resources.get("requests") or {}
    if requests.get("cpu") is not None:
        cpu = cpu_millicores(requests["cpu"])
    else:
        cpu = math.ceil(vcpus(vmi_spec) * 1000 / CPU_ALLOCATION_RATIO)
    if requests.get("memory") is not None:
        memory = memory_bytes(requests["memory"])
    else:
        memory = guest_memory_bytes(vmi_spec)
    if not resources.get("overcommitGuestOverhead"):
        memory += memory_overhead_bytes(vmi_spec)
    return {"cpu": cpu, "memory": memory, KVM: 1}


def apply_instancetype(vmi_spec: Obj, instancetype: Mapping[str, Any] | None) -> None:
    """Fill CPU and memory from a (cluster) instance type, as virt-controller does when it renders the VMI."""
    if not instancetype:
        return
    it_spec = instancetype.get("spec") or {}
    domain = vmi_spec.setdefault("domain", {})
    guest_cpus = (it_spec.get("cpu") or {}).get("guest")
    if guest_cpus:
        domain["cpu"] = {"sockets": int(guest_cpus), "cores": 1, "threads": 1}
    guest_memory = (it_spec.get("memory") or {}).get("guest")
    if guest_memory:
        domain.setdefault("memory", {})["guest"] = guest_memory


def claim_names(vmi_spec: Mapping[str, Any]) -> list[str]:
    """PVC names behind the VMI's persistentVolumeClaim and dataVolume volumes."""
    names = []
    for volume in vmi_spec.get("volumes") or []:
        if "persistentVolumeClaim" in volume:
            names.append(volume["persistentVolumeClaim"].get("claimName", ""))
        elif "dataVolume" in volume:
            names.append(volume["dataVolume"].get("name", ""))
    return names


def _access_modes(pvc: Mapping[str, Any] | None, dv: Mapping[str, Any] | None) -> list[str] | None:
    if pvc is not None:
        modes = (pvc.get("status") or {}).get("accessModes") or (pvc.get("spec") or {}).get("accessModes")
        return list(modes or [])
    if dv is not None:
        spec = dv.get("spec") or {}
        section = spec.get("pvc") or spec.get("storage") or {}
        modes = section.get("accessModes")
        return list(modes) if modes is not None else None
    return None


def live_migratable_condition(
    vmi_spec: Mapping[str, Any],
    lookup_pvc: Callable[[str], Mapping[str, Any] | None],
    lookup_dv: Callable[[str], Mapping[str, Any] | None],
) -> Obj:
    """The VMI's LiveMigratable condition, checking interfaces then disks as virt-handler does."""
    networks = {n.get("name"): n for n in vmi_spec.get("networks") or []}
    for iface in ((vmi_spec.get("domain") or {}).get("devices") or {}).get("interfaces") or []:
        network = networks.get(iface.get("name")) or {}
        if "pod" in network and "bridge" in iface:
            return {
                "type": "LiveMigratable",
                "status": "False",
                "reason": "InterfaceNotLiveMigratable",
                "message": "cannot migrate VMI which does not use masquerade or a migratable plugin to "
                "connect to the pod network",
            }
    for volume in vmi_spec.get("volumes") or []:
        if "hostDisk" in volume:
            return {
                "type": "LiveMigratable",
                "status": "False",
                "reason": "DisksNotLiveMigratable",
                "message": "cannot migrate VMI with non-shared HostDisk",
            }
    for name in claim_names(vmi_spec):
        modes = _access_modes(lookup_pvc(name), lookup_dv(name))
        if modes is not None and "ReadWriteMany" not in modes:
            return {
                "type": "LiveMigratable",
                "status": "False",
                "reason": "DisksNotLiveMigratable",
                "message": f"cannot migrate VMI: PVC {name} is not shared, live migration requires that "
                "all PVCs must be shared (using ReadWriteMany access mode)",
            }
    return {"type": "LiveMigratable", "status": "True"}


def launcher_image(pod: Mapping[str, Any]) -> str:
    """The image of a pod's first container (snapshots may omit it)."""
    containers = (pod.get("spec") or {}).get("containers") or [{}]
    return str(containers[0].get("image") or LAUNCHER_IMAGE)


def running_container_status(pod: Mapping[str, Any], now_iso: str) -> Obj:
    """The kubelet's status of a pod's running ``compute`` container, with every field the API requires
    (``imageID`` and ``containerID`` included: strict clients such as lightkube refuse a status without them)."""
    image = launcher_image(pod)
    seed = f"{(pod.get('metadata') or {}).get('uid', '')}/{(pod.get('metadata') or {}).get('name', '')}"
    digest = hashlib.sha256(image.encode()).hexdigest()
    return {
        "name": "compute",
        "ready": True,
        "started": True,
        "restartCount": 0,
        "image": image,
        "imageID": f"{image.rsplit(':', 1)[0]}@sha256:{digest}",
        "containerID": f"cri-o://{hashlib.sha256(seed.encode()).hexdigest()}",
        "lastState": {},
        "state": {"running": {"startedAt": now_iso}},
    }


def placement_of(vmi_spec: Mapping[str, Any]) -> Obj:
    """The placement fields KubeVirt copies from the VMI to its launcher pod."""
    return {
        k: vmi_spec[k]
        for k in ("nodeSelector", "affinity", "tolerations", "topologySpreadConstraints")
        if vmi_spec.get(k)
    }


def build_vmi(vm: Mapping[str, Any], instancetype: Mapping[str, Any] | None = None) -> Obj:
    """A fresh VMI (phase Pending) rendered from a VM's template, owned by the VM."""
    meta = vm["metadata"]
    template = (vm.get("spec") or {}).get("template") or {}
    tmeta = template.get("metadata") or {}
    spec = _copy(template.get("spec") or {})
    apply_instancetype(spec, instancetype)
    labels = dict(tmeta.get("labels") or {})
    annotations = dict(tmeta.get("annotations") or {})
    for key in (CPU_USAGE_ANNOTATION, MEMORY_USAGE_ANNOTATION, DIRTY_RATE_ANNOTATION):
        value = (meta.get("annotations") or {}).get(key)
        if value is not None:
            annotations.setdefault(key, value)
    vmi_meta: Obj = {
        "name": meta["name"],
        "namespace": meta.get("namespace", "default"),
        "labels": labels,
        "ownerReferences": [
            {
                "apiVersion": "kubevirt.io/v1",
                "kind": "VirtualMachine",
                "name": meta["name"],
                "uid": meta.get("uid", ""),
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
        "finalizers": [VMI_FINALIZER, "foregroundDeleteVirtualMachine"],
    }
    if annotations:
        vmi_meta["annotations"] = annotations
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstance",
        "metadata": vmi_meta,
        "spec": spec,
        "status": {"phase": "Pending"},
    }


def build_launcher_pod(
    vmi: Mapping[str, Any],
    *,
    placement: Mapping[str, Any] | None = None,
    extra_labels: Mapping[str, str] | None = None,
    added_node_selector: Mapping[str, str] | None = None,
    extra_affinity_terms: list[Obj] | None = None,
) -> Obj:
    """A virt-launcher pod for a VMI (not yet bound to a node): labels, requests and selectors per §2.4."""
    meta = vmi["metadata"]
    spec = vmi.get("spec") or {}
    name = meta["name"]
    pod_spec = _launcher_pod_spec(spec, placement, added_node_selector, extra_affinity_terms)
    labels = _launcher_labels(meta, extra_labels)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": f"virt-launcher-{name}-",
            "namespace": meta.get("namespace", "default"),
            "labels": labels,
            "annotations": {
                "kubevirt.io/domain": name,
                "kubevirt.io/memory-overhead-bytes": str(memory_overhead_bytes(spec)),
                "kubectl.kubernetes.io/default-container": "compute",
            },
            "ownerReferences": [
                {
                    "apiVersion": "kubevirt.io/v1",
                    "kind": "VirtualMachineInstance",
                    "name": name,
                    "uid": meta.get("uid", ""),
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": pod_spec,
        "status": {"phase": "Pending", "qosClass": "Burstable"},
    }


def _launcher_labels(meta: Mapping[str, Any], extra_labels: Mapping[str, str] | None) -> dict[str, str]:
    """The VMI's labels without its node labels, plus virt-launcher's own and ``extra_labels``."""
    labels = dict(meta.get("labels") or {})
    labels.pop("kubevirt.io/nodeName", None)
    labels.pop("kubevirt.io/migrationTargetNodeName", None)
    labels.update(
        {
            "kubevirt.io": "virt-launcher",
            "kubevirt.io/created-by": meta.get("uid", ""),
            "vm.kubevirt.io/name": meta["name"],
        }
    )
    labels.update(extra_labels or {})
    return labels


def _launcher_pod_spec(
    spec: Mapping[str, Any],
    placement: Mapping[str, Any] | None,
    added_node_selector: Mapping[str, str] | None,
    extra_affinity_terms: list[Obj] | None,
) -> Obj:
    """The pod spec: the compute container with the launcher's requests, and the VMI's placement rules."""
    requests = launcher_requests(spec)
    place = dict(placement if placement is not None else placement_of(spec))
    node_selector = dict(added_node_selector or {})
    node_selector.update(place.get("nodeSelector") or {})  # on a collision the VM/VMI value wins
    node_selector["kubevirt.io/schedulable"] = "true"
    pod_spec: Obj = {
        "containers": [
            {
                "name": "compute",
                "image": LAUNCHER_IMAGE,
                "command": ["/usr/bin/virt-launcher-monitor"],
                "resources": {
                    "requests": {
                        "cpu": format_cpu_millicores(requests["cpu"]),
                        "memory": format_memory_bytes(requests["memory"]),
                        KVM: "1",
                    },
                    "limits": {KVM: "1"},
                },
            }
        ],
        "nodeSelector": node_selector,
        "restartPolicy": "Never",
        "schedulerName": "default-scheduler",
        "serviceAccountName": "default",
        "terminationGracePeriodSeconds": int(spec.get("terminationGracePeriodSeconds", 30)),
        "readinessGates": [{"conditionType": "kubevirt.io/virtual-machine-unpaused"}],
    }
    affinity = _copy(place.get("affinity") or {})
    if extra_affinity_terms:
        anti = affinity.setdefault("podAntiAffinity", {})
        anti.setdefault("requiredDuringSchedulingIgnoredDuringExecution", []).extend(extra_affinity_terms)
    if affinity:
        pod_spec["affinity"] = affinity
    if place.get("tolerations"):
        pod_spec["tolerations"] = _copy(place["tolerations"])
    if place.get("topologySpreadConstraints"):
        pod_spec["topologySpreadConstraints"] = _copy(place["topologySpreadConstraints"])
    return pod_spec


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value
