"""Builders of raw Kubernetes / KubeVirt JSON objects, shaped as the API returns them.

Tests import them with ``from rawobjects import node_obj, vm_obj, …``.
"""

import copy
import json
from typing import Any


def node_obj(
    name: str,
    *,
    cpu: str = "16",
    memory: str = "64Gi",
    kvm: str | None = "1k",
    ready: bool = True,
    unschedulable: bool = False,
    schedulable_label: bool = True,
    control_plane: bool = False,
    taints: list[dict[str, str]] | None = None,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    all_labels = {"kubernetes.io/hostname": name}
    if schedulable_label:
        all_labels["kubevirt.io/schedulable"] = "true"
    if control_plane:
        all_labels["node-role.kubernetes.io/control-plane"] = ""
    all_labels.update(labels or {})
    resources = {"cpu": cpu, "memory": memory, "pods": "110"}
    if kvm is not None:
        resources["devices.kubevirt.io/kvm"] = kvm
    spec: dict[str, Any] = {}
    if unschedulable:
        spec["unschedulable"] = True
    if taints:
        spec["taints"] = taints
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": all_labels},
        "spec": spec,
        "status": {
            "capacity": dict(resources),
            "allocatable": dict(resources),
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def vm_obj(
    name: str,
    *,
    namespace: str = "default",
    run_strategy: str = "Always",
    cores: int = 2,
    memory: str = "4Gi",
    pvcs: list[str] = (),  # type: ignore[assignment]
    datavolumes: list[str] = (),  # type: ignore[assignment]
    container_disk: bool = False,
    instancetype: str | None = None,
    node_selector: dict[str, str] | None = None,
    affinity: dict[str, Any] | None = None,
    tolerations: list[dict[str, str]] | None = None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    printable_status: str | None = None,
) -> dict[str, Any]:
    volumes: list[dict[str, Any]] = []
    for claim in pvcs:
        volumes.append({"name": claim, "persistentVolumeClaim": {"claimName": claim}})
    for dv in datavolumes:
        volumes.append({"name": dv, "dataVolume": {"name": dv}})
    if container_disk:
        volumes.append({"name": "root", "containerDisk": {"image": "quay.io/containerdisks/fedora:latest"}})
    volumes.append({"name": "cloudinit", "cloudInitNoCloud": {"userData": "#cloud-config"}})
    tspec: dict[str, Any] = {"domain": {"devices": {}}, "volumes": volumes}
    if instancetype is None:
        tspec["domain"]["cpu"] = {"cores": cores}
        tspec["domain"]["memory"] = {"guest": memory}
    if node_selector:
        tspec["nodeSelector"] = node_selector
    if affinity:
        tspec["affinity"] = affinity
    if tolerations:
        tspec["tolerations"] = tolerations
    spec: dict[str, Any] = {
        "runStrategy": run_strategy,
        "template": {"metadata": {"labels": {"kubevirt.io/domain": name, **(labels or {})}}, "spec": tspec},
    }
    if instancetype:
        spec["instancetype"] = {"kind": "VirtualMachineClusterInstancetype", "name": instancetype}
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations or {}},
        "spec": spec,
        "status": {"printableStatus": printable_status or ("Running" if run_strategy == "Always" else "Stopped")},
    }


def vmi_obj(
    vm: dict[str, Any],
    node: str,
    *,
    phase: str = "Running",
    live_migratable: bool = True,
    reason: str | None = None,
    message: str | None = None,
    uid: str | None = None,
) -> dict[str, Any]:
    name = vm["metadata"]["name"]
    ns = vm["metadata"]["namespace"]
    cond: dict[str, Any] = {"type": "LiveMigratable", "status": "True" if live_migratable else "False"}
    if not live_migratable:
        cond["reason"] = reason or "DisksNotLiveMigratable"
        cond["message"] = message or "cannot migrate VMI: PVC x is not shared"
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstance",
        "metadata": {
            "name": name,
            "namespace": ns,
            "uid": uid or f"uid-{ns}-{name}",
            "labels": {**vm["spec"]["template"]["metadata"]["labels"], "kubevirt.io/nodeName": node},
        },
        "spec": vm["spec"]["template"]["spec"],
        "status": {"phase": phase, "nodeName": node, "conditions": [cond, {"type": "Ready", "status": "True"}]},
    }


def launcher_pod_obj(vmi: dict[str, Any], *, cpu: str = "200m", memory: str = "4400Mi") -> dict[str, Any]:
    name = vmi["metadata"]["name"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"virt-launcher-{name}-abcde",
            "namespace": vmi["metadata"]["namespace"],
            "labels": {
                "kubevirt.io": "virt-launcher",
                "kubevirt.io/created-by": vmi["metadata"]["uid"],
                "vm.kubevirt.io/name": name,
            },
        },
        "spec": {
            "nodeName": vmi["status"]["nodeName"],
            "containers": [{"name": "compute", "resources": {"requests": {"cpu": cpu, "memory": memory}}}],
        },
        "status": {"phase": "Running"},
    }


def pod_obj(
    name: str,
    node: str,
    *,
    namespace: str = "kube-system",
    cpu: str = "500m",
    memory: str = "1Gi",
    phase: str = "Running",
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "nodeName": node,
            "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": memory}}}],
        },
        "status": {"phase": phase},
    }


def pvc_obj(name: str, *, namespace: str = "default", modes: tuple[str, ...] = ("ReadWriteMany",)) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"accessModes": list(modes), "resources": {"requests": {"storage": "30Gi"}}},
        "status": {"phase": "Bound", "accessModes": list(modes)},
    }


def node_metrics_obj(name: str, *, cpu: str, memory: str, timestamp: str = "2026-11-21T12:00:00Z") -> dict[str, Any]:
    return {
        "apiVersion": "metrics.k8s.io/v1beta1",
        "kind": "NodeMetrics",
        "metadata": {"name": name},
        "timestamp": timestamp,
        "window": "20s",
        "usage": {"cpu": cpu, "memory": memory},
    }


def pod_metrics_obj(pod: dict[str, Any], *, cpu: str, memory: str) -> dict[str, Any]:
    return {
        "apiVersion": "metrics.k8s.io/v1beta1",
        "kind": "PodMetrics",
        "metadata": {"name": pod["metadata"]["name"], "namespace": pod["metadata"]["namespace"]},
        "timestamp": "2026-11-21T12:00:00Z",
        "window": "20s",
        "containers": [{"name": "compute", "usage": {"cpu": cpu, "memory": memory}}],
    }


def kubevirt_obj(*, per_cluster: int = 5, per_node: int = 2, version: str = "v1.6.0") -> dict[str, Any]:
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "KubeVirt",
        "metadata": {"name": "kubevirt", "namespace": "kubevirt"},
        "spec": {
            "configuration": {
                "migrations": {
                    "parallelMigrationsPerCluster": per_cluster,
                    "parallelOutboundMigrationsPerNode": per_node,
                }
            }
        },
        "status": {"observedKubeVirtVersion": version, "phase": "Deployed"},
    }


def migration_obj(
    name: str,
    vm: str,
    *,
    namespace: str = "default",
    phase: str = "Succeeded",
    end: str = "2026-11-21T11:50:00Z",
    source: str = "w1",
    target: str = "w2",
) -> dict[str, Any]:
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstanceMigration",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"vmiName": vm},
        "status": {
            "phase": phase,
            "phaseTransitionTimestamps": [{"phase": phase, "phaseTransitionTimestamp": end}],
            "migrationState": {
                "sourceNode": source,
                "targetNode": target,
                "endTimestamp": end if phase in ("Succeeded", "Failed") else None,
            },
        },
    }


def small_cluster() -> list[dict[str, Any]]:
    """Three workers, a control-plane node, five VMs (RWX, RWO, container disk, stopped, instance type)."""
    objs: list[dict[str, Any]] = [
        node_obj("w1"),
        node_obj("w2"),
        node_obj("w3", cpu="8", memory="32Gi"),
        node_obj("cp1", control_plane=True, kvm=None),
        kubevirt_obj(),
        pvc_obj("db-root"),
        pvc_obj("web-root", modes=("ReadWriteOnce",)),
    ]
    vms = [
        (vm_obj("db", pvcs=["db-root"], cores=4, memory="8Gi"), "w1"),
        (vm_obj("web", pvcs=["web-root"]), "w1"),
        (vm_obj("cache", container_disk=True, cores=1, memory="2Gi"), "w2"),
        (vm_obj("big", instancetype="u1.xlarge", container_disk=True), "w1"),
    ]
    for vm, node in vms:
        vmi = vmi_obj(vm, node, live_migratable=vm["metadata"]["name"] != "web")
        pod = launcher_pod_obj(vmi)
        objs += [vm, vmi, pod, pod_metrics_obj(pod, cpu="1500m", memory="3Gi")]
    objs.append(vm_obj("off", run_strategy="Halted", container_disk=True))
    objs += [pod_obj("kube-proxy-w1", "w1"), pod_obj("kube-proxy-w2", "w2")]
    objs += [
        node_metrics_obj("w1", cpu="12", memory="40Gi"),
        node_metrics_obj("w2", cpu="3", memory="10Gi"),
        node_metrics_obj("w3", cpu="500m", memory="2Gi"),
        node_metrics_obj("cp1", cpu="1", memory="4Gi"),
    ]
    return objs


def as_list(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "List", "items": objects}


SECRET = "hunter2"
"""A value that a snapshot must never hold (see `with_secrets`)."""


def with_secrets(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Copies of ``objects`` as a real API serves them: every pod has a secret env value, init
    container, command and volume, every object managedFields and kubectl's last-applied annotation."""
    out = copy.deepcopy(objects)
    for obj in out:
        meta = obj.setdefault("metadata", {})
        meta["managedFields"] = [{"manager": "kubectl", "operation": "Apply", "fieldsV1": {"f:spec": {}}}]
        meta.setdefault("annotations", {})["kubectl.kubernetes.io/last-applied-configuration"] = json.dumps(
            {"password": SECRET}
        )
        if obj["kind"] != "Pod":
            continue
        spec = obj["spec"]
        for container in spec["containers"]:
            container["env"] = [{"name": "PASSWORD", "value": SECRET}]
            container["args"] = [f"--password={SECRET}"]
            container["image"] = "registry.example/app:1"
        spec["initContainers"] = [
            {"name": "init", "env": [{"name": "TOKEN", "value": SECRET}], "resources": {"requests": {"cpu": "10m"}}}
        ]
        spec["volumes"] = [{"name": "creds", "secret": {"secretName": SECRET}}]
        obj["status"]["podIP"] = "10.0.0.9"
    return out
