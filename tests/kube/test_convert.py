"""Raw API JSON → ClusterState: every fact the inventory and planner rely on."""

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from rawobjects import (
    kubevirt_obj,
    launcher_pod_obj,
    migration_obj,
    node_metrics_obj,
    node_obj,
    pod_metrics_obj,
    pod_obj,
    pvc_obj,
    small_cluster,
    vm_obj,
    vmi_obj,
)
from vm_rebalance.errors import ConfigError
from vm_rebalance.kube.convert import (
    cpu_millicores,
    derived_launcher_requests,
    memory_bytes,
    placement_from,
    pod_requests,
    snapshot_object,
    state_from_objects,
    vcpus_from,
)
from vm_rebalance.model import (
    LabelSelector,
    NodeSelectorTerm,
    PodAffinityTerm,
    Requirement,
    Resources,
    StorageKind,
    Taint,
    Toleration,
    TopologySpreadConstraint,
)

MI = 1024**2
GI = 1024**3
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def running_vm(name: str, node: str = "w1", **kwargs: Any) -> list[dict[str, Any]]:
    """A VM, its VMI and its launcher pod."""
    vm = vm_obj(name, **kwargs)
    vmi = vmi_obj(vm, node)
    return [vm, vmi, launcher_pod_obj(vmi)]


def state(*objects: dict[str, Any], **kwargs: Any):
    return state_from_objects(list(objects), now=NOW, **kwargs)


# ------------------------------------------------------------------------------ quantities


@pytest.mark.parametrize(
    ("value", "millicores"),
    [
        pytest.param("2", 2000, id="cores"),
        pytest.param("250m", 250, id="millicores"),
        pytest.param("0.5", 500, id="fraction"),
        pytest.param(3, 3000, id="int"),
        pytest.param("1.0001", 1001, id="rounded-up"),
    ],
)
def test_cpu_quantity(value: Any, millicores: int) -> None:
    assert cpu_millicores(value, where="Node n", field="cpu") == millicores


@pytest.mark.parametrize(
    ("value", "size"),
    [
        pytest.param("4Gi", 4 * GI, id="Gi"),
        pytest.param("512Mi", 512 * MI, id="Mi"),
        pytest.param("1G", 10**9, id="G-decimal"),
        pytest.param("1k", 1000, id="k"),
        pytest.param(1024, 1024, id="plain-int"),
    ],
)
def test_memory_quantity(value: Any, size: int) -> None:
    assert memory_bytes(value, where="Node n", field="memory") == size


@pytest.mark.parametrize(
    ("value", "words"),
    [
        pytest.param("lots", "malformed", id="malformed"),
        pytest.param("", "malformed", id="empty"),
        pytest.param("-1Gi", "impossible", id="negative"),
        pytest.param("NaN", "impossible", id="nan"),
        pytest.param("Inf", "impossible", id="infinite"),
        pytest.param("1e30", "absurd", id="1e30"),
        pytest.param("2Ei", "absurd", id="two-exbibytes"),
        pytest.param("1e100000000", "absurd", id="huge-exponent-fails-fast"),
    ],
)
def test_bad_memory_quantity_names_object_and_field(value: str, words: str) -> None:
    with pytest.raises(ConfigError, match=f"^Node w9: status.capacity.memory .*{words}"):
        state(node_obj("w9", memory=value))


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("1e30", id="1e30"),
        pytest.param("2000000", id="two-million-cores"),
        pytest.param("1e100000000", id="huge-exponent"),
    ],
)
def test_absurd_cpu_quantity(value: str) -> None:
    with pytest.raises(ConfigError, match=r"Node w9: status.capacity.cpu .*absurd"):
        state(node_obj("w9", cpu=value))


def test_bad_quantity_in_pod_names_pod_and_container() -> None:
    with pytest.raises(ConfigError, match=r"Pod kube-system/p: spec.containers\[0\].resources.requests.cpu"):
        state(node_obj("w1"), pod_obj("p", "w1", cpu="1e30"))


def test_bad_quantity_in_vm_names_vm_and_field() -> None:
    where = r"VirtualMachine default/a: spec\.template\.spec\.domain\.memory\.guest"
    with pytest.raises(ConfigError, match=where):
        state(vm_obj("a", memory="-4Gi"))


@pytest.mark.parametrize(
    ("obj", "where"),
    [
        pytest.param(node_metrics_obj("w1", cpu="x", memory="1Gi"), "NodeMetrics w1: usage.cpu", id="node-metrics"),
        pytest.param(
            {**kubevirt_obj(), "spec": {"configuration": {"migrations": {"bandwidthPerMigration": "fast"}}}},
            "KubeVirt kubevirt/kubevirt: bandwidthPerMigration",
            id="kubevirt-bandwidth",
        ),
        pytest.param(
            {
                **node_obj("w1"),
                "status": {
                    **node_obj("w1")["status"],
                    "allocatable": {"cpu": "1", "devices.kubevirt.io/kvm": "1e40"},
                },
            },
            "Node w1: devices.kubevirt.io/kvm",
            id="kvm",
        ),
    ],
)
def test_bad_quantities_elsewhere(obj: dict[str, Any], where: str) -> None:
    with pytest.raises(ConfigError, match=where):
        state(obj)


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        pytest.param(
            lambda o: o["spec"]["template"]["spec"]["domain"]["cpu"].update(cores="many"),
            "VirtualMachine default/a",
            id="non-integer-cores",
        ),
        pytest.param(lambda o: o["metadata"].pop("namespace"), "VirtualMachine a", id="vm-without-namespace"),
    ],
)
def test_malformed_vm_fields_are_config_errors(mutate: Any, where: str) -> None:
    vm = vm_obj("a")
    mutate(vm)
    with pytest.raises(ConfigError, match=where):
        state(vm)


def test_node_without_name_is_a_config_error() -> None:
    node = node_obj("w1")
    del node["metadata"]["name"]
    with pytest.raises(ConfigError, match="Node"):
        state(node)


def test_duplicate_node_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="duplicate node"):
        state(node_obj("w1"), node_obj("w1"))


def test_non_object_item_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not a Kubernetes object"):
        state_from_objects([node_obj("w1"), "oops"])  # type: ignore[list-item]


def _malformed(objects: list[dict[str, Any]], kind: str, path: tuple[str, ...], value: Any) -> list[dict[str, Any]]:
    """``objects`` with ``path`` set to ``value`` in the first object of ``kind``."""
    objects = copy.deepcopy(objects)
    target: Any = next(o for o in objects if o["kind"] == kind)
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return objects


def _with_migration() -> list[dict[str, Any]]:
    return [*small_cluster(), migration_obj("mig-1", "db")]


MALFORMED = [
    pytest.param(
        "Pod",
        ("spec", "containers"),
        [None],
        r"^Pod default/virt-launcher-db-abcde: malformed field",
        id="pod-null-container",
    ),
    pytest.param("Pod", ("spec",), "x", r"^Pod default/virt-launcher-db-abcde: malformed field", id="pod-spec-string"),
    pytest.param(
        "Pod",
        ("metadata", "labels"),
        ["a"],
        r"^Pod default/virt-launcher-db-abcde: malformed field",
        id="pod-labels-list",
    ),
    pytest.param("Pod", ("metadata",), "x", r"^Pod \(object #\d+\): metadata is a str", id="pod-metadata-string"),
    pytest.param(
        "Pod",
        ("spec", "nodeName"),
        {"a": 1},
        r"^Pod default/virt-launcher-db-abcde: malformed field",
        id="pod-node-dict",
    ),
    pytest.param(
        "VirtualMachineInstanceMigration",
        ("status",),
        "weird",
        r"^VirtualMachineInstanceMigration default/mig-1: malformed field",
        id="vmim-status-string",
    ),
    pytest.param(
        "VirtualMachineInstanceMigration",
        ("status", "phaseTransitionTimestamps"),
        [7],
        r"^VirtualMachineInstanceMigration default/mig-1: malformed field",
        id="vmim-transition-int",
    ),
    pytest.param(
        "PodMetrics",
        ("containers",),
        [None],
        r"^PodMetrics default/virt-launcher-\S+: malformed field",
        id="podmetrics",
    ),
    pytest.param("NodeMetrics", ("usage",), "x", r"^NodeMetrics \S+: malformed field", id="nodemetrics"),
    pytest.param(
        "PersistentVolumeClaim",
        ("status", "accessModes"),
        "ReadWriteMany",
        r"^PersistentVolumeClaim default/db-root: malformed field: accessModes is not a list",
        id="pvc-modes-string",
    ),
    pytest.param("KubeVirt", ("spec",), "x", r"^KubeVirt kubevirt/kubevirt: malformed field", id="kubevirt-spec"),
]


@pytest.mark.parametrize(("kind", "path", "value", "match"), MALFORMED)
def test_malformed_objects_are_config_errors_naming_them(
    kind: str, path: tuple[str, ...], value: Any, match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        state_from_objects(_malformed(_with_migration(), kind, path, value), now=NOW)


def test_access_modes_are_a_list_of_strings() -> None:
    objs = _malformed(small_cluster(), "PersistentVolumeClaim", ("status", "accessModes"), None)
    objs = _malformed(objs, "PersistentVolumeClaim", ("spec", "accessModes"), ["ReadWriteOnce"])
    db = state_from_objects(objs, now=NOW).vm("default", "db")
    assert db.volumes[0].access_modes == ("ReadWriteOnce",)
    with pytest.raises(ConfigError, match="accessModes is not a list"):
        state_from_objects(_malformed(objs, "PersistentVolumeClaim", ("spec", "accessModes"), [1]), now=NOW)


def test_unhashable_kind_is_an_unknown_kind() -> None:
    s = state(node_obj("w1"), {"kind": ["Pod"], "metadata": {"name": "x"}})
    assert any("ignored objects" in n for n in s.notes)


# ------------------------------------------------------------------------------ snapshot_object


def _secret_pod() -> dict[str, Any]:
    pod = pod_obj("app", "w1", namespace="default")
    pod["metadata"].update(
        {
            "uid": "u-1",
            "labels": {"app": "x"},
            "annotations": {
                "kubevirt.io/domain": "vm1",
                "kubectl.kubernetes.io/last-applied-configuration": '{"env": "hunter2"}',
                "other": "hunter2",
            },
            "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:env": {}}}],
            "ownerReferences": [{"kind": "ReplicaSet", "name": "app-1"}],
        }
    )
    container = pod["spec"]["containers"][0]
    container.update(
        {
            "image": "app:1",
            "env": [{"name": "PASSWORD", "value": "hunter2"}],
            "args": ["--password=hunter2"],
            "command": ["run"],
        }
    )
    pod["spec"].update(
        {
            "initContainers": [
                {"name": "init", "env": [{"name": "T", "value": "hunter2"}], "resources": {"requests": {"cpu": "2"}}}
            ],
            "overhead": {"cpu": "100m"},
            "volumes": [{"name": "s", "secret": {"secretName": "hunter2"}}],
            "serviceAccountName": "sa",
        }
    )
    pod["status"].update({"podIP": "10.0.0.1", "conditions": [{"type": "Ready", "status": "True"}]})
    return pod


def test_snapshot_pod_keeps_only_what_conversion_reads() -> None:
    pod = _secret_pod()
    original = copy.deepcopy(pod)
    slim = snapshot_object(pod)
    assert pod == original  # not modified
    assert "hunter2" not in repr(slim)
    assert slim == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "app",
            "namespace": "default",
            "uid": "u-1",
            "labels": {"app": "x"},
            "annotations": {"kubevirt.io/domain": "vm1"},
        },
        "spec": {
            "nodeName": "w1",
            "containers": [{"name": "c", "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}}],
            "initContainers": [{"name": "init", "resources": {"requests": {"cpu": "2"}}}],
            "overhead": {"cpu": "100m"},
        },
        "status": {"phase": "Running"},
    }
    assert pod_requests(slim) == pod_requests(pod)


def test_snapshot_drops_managed_fields_and_last_applied_everywhere() -> None:
    node = node_obj("w1")
    node["metadata"]["managedFields"] = [{"manager": "kubelet"}]
    node["metadata"]["annotations"] = {"kubectl.kubernetes.io/last-applied-configuration": "{}", "keep": "me"}
    slim = snapshot_object(node)
    assert "managedFields" not in slim["metadata"]
    assert slim["metadata"]["annotations"] == {"keep": "me"}
    assert slim["status"] == node["status"] and "managedFields" in node["metadata"]


def test_snapshot_keeps_malformed_parts_for_the_reader_to_report() -> None:
    pod = pod_obj("p", "w1")
    pod["spec"]["containers"] = [None, "x"]
    assert snapshot_object(pod)["spec"]["containers"] == [None, "x"]
    assert snapshot_object({"kind": "Pod", "metadata": "x", "spec": 3})["metadata"] == "x"
    assert snapshot_object({"kind": "Node", "metadata": "x"}) == {"kind": "Node", "metadata": "x"}


def test_slimmed_objects_give_the_same_state() -> None:
    objects = small_cluster()
    for obj in objects:
        if obj["kind"] == "Pod":
            obj["spec"]["containers"][0]["env"] = [{"name": "PASSWORD", "value": "hunter2"}]
    slim = [snapshot_object(o) for o in objects]
    assert "hunter2" not in repr(slim)
    assert state_from_objects(slim, now=NOW) == state_from_objects(objects, now=NOW)


def test_invalid_migration_limits() -> None:
    kv = kubevirt_obj(per_cluster=-3)
    with pytest.raises(ConfigError, match="KubeVirt kubevirt/kubevirt: invalid migration settings"):
        state(kv)


# ------------------------------------------------------------------------------ nodes


def test_node_facts() -> None:
    taints = [{"key": "gpu", "value": "true", "effect": "NoSchedule"}]
    s = state(
        node_obj("w1", cpu="8", memory="32Gi", taints=taints, unschedulable=True, ready=False),
        node_obj("cp", control_plane=True, kvm=None),
    )
    w1, cp = s.node("w1"), s.node("cp")
    assert w1.allocatable == w1.capacity == Resources(8000, 32 * GI)
    assert w1.kvm_devices == 1000
    assert w1.taints == (Taint("gpu", "NoSchedule", "true"),)
    assert w1.unschedulable and not w1.ready
    assert w1.max_pods == 110
    assert w1.labels["kubevirt.io/schedulable"] == "true"
    assert cp.kvm_devices == 0 and cp.is_control_plane


def test_node_without_ready_condition_is_not_ready() -> None:
    node = node_obj("w1")
    node["status"]["conditions"] = []
    assert not state(node).node("w1").ready


def test_node_requests_count_every_live_pod() -> None:
    vm = vm_obj("a")
    vmi = vmi_obj(vm, "w1")
    s = state(
        node_obj("w1"),
        node_obj("w2"),
        vm,
        vmi,
        launcher_pod_obj(vmi, cpu="200m", memory="4400Mi"),
        pod_obj("proxy", "w1", cpu="500m", memory="1Gi"),
        pod_obj("done", "w1", cpu="4", memory="8Gi", phase="Succeeded"),
        pod_obj("crashed", "w1", cpu="4", memory="8Gi", phase="Failed"),
        pod_obj("pending", "w2", cpu="1", memory="1Gi", phase="Pending"),
        {**pod_obj("unscheduled", "w2"), "spec": {"containers": []}},
    )
    assert s.node("w1").requested == Resources(700, 4400 * MI + GI)
    assert s.node("w1").pods == 2
    assert s.node("w2").requested == Resources(1000, GI)
    assert s.node("w2").pods == 1


def test_pod_requests_init_containers_and_overhead() -> None:
    pod = {
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "ns"},
        "spec": {
            "containers": [
                {"resources": {"requests": {"cpu": "100m", "memory": "100Mi"}}},
                {"resources": {"requests": {"cpu": "100m"}}},
                {"name": "no-requests"},
            ],
            "initContainers": [{"resources": {"requests": {"cpu": "1", "memory": "10Mi"}}}],
            "overhead": {"cpu": "50m", "memory": "20Mi"},
        },
    }
    assert pod_requests(pod) == Resources(1050, 120 * MI)


# ------------------------------------------------------------------------------ VMs


def test_launcher_pod_requests_are_authoritative() -> None:
    vm = vm_obj("a", cores=4, memory="8Gi")
    vmi = vmi_obj(vm, "w1")
    s = state(node_obj("w1"), vm, vmi, launcher_pod_obj(vmi, cpu="3", memory="9Gi"))
    a = s.vm("default", "a")
    assert a.requests == Resources(3000, 9 * GI)
    assert (a.vcpus, a.guest_memory_bytes) == (4, 8 * GI)
    assert a.running and a.node == "w1"


def test_derived_requests_without_launcher_pod() -> None:
    vm = vm_obj("a", cores=2, memory="4Gi")
    s = state(node_obj("w1"), vm, vmi_obj(vm, "w1"))
    overhead = 4 * GI // 512 + 240 * MI + 16 * MI + 8 * MI + 32 * MI
    assert s.vm("default", "a").requests == Resources(200, 4 * GI + overhead)
    assert derived_launcher_requests(vcpus=2, guest_memory=4 * GI, explicit=Resources()) == Resources(
        200, 4 * GI + overhead
    )


def test_derived_requests_honour_explicit_requests() -> None:
    vm = vm_obj("a", cores=2, memory="4Gi")
    vm["spec"]["template"]["spec"]["domain"]["resources"] = {"requests": {"cpu": "1500m", "memory": "6Gi"}}
    req = state(vm).vm("default", "a").requests
    assert req.cpu_millicores == 1500
    assert req.memory_bytes == 6 * GI + 4 * GI // 512 + 240 * MI + 16 * MI + 8 * MI + 32 * MI


def test_migration_target_pod_is_not_credited_to_the_vm() -> None:
    vm = vm_obj("a")
    vmi = vmi_obj(vm, "w1")
    source = launcher_pod_obj(vmi, cpu="200m", memory="4400Mi")
    target = copy.deepcopy(launcher_pod_obj(vmi, cpu="300m", memory="5000Mi"))
    target["metadata"]["name"] = "virt-launcher-a-target"
    target["spec"]["nodeName"] = "w2"
    for order in ([source, target], [target, source]):
        s = state(node_obj("w1"), node_obj("w2"), vm, vmi, *order)
        assert s.vm("default", "a").requests == Resources(200, 4400 * MI)
        # The target pod still takes room on its node.
        assert s.node("w2").requested == Resources(300, 5000 * MI)


def test_launcher_found_by_domain_annotation() -> None:
    vm = vm_obj("a")
    vmi = vmi_obj(vm, "w1")
    pod = launcher_pod_obj(vmi, cpu="700m")
    del pod["metadata"]["labels"]["vm.kubevirt.io/name"]
    pod["metadata"]["annotations"] = {"kubevirt.io/domain": "a"}
    assert state(vm, vmi, pod).vm("default", "a").requests.cpu_millicores == 700
    pod["metadata"]["annotations"] = None
    assert state(vm, vmi, pod).vm("default", "a").requests.cpu_millicores != 700


def test_vcpus() -> None:
    assert vcpus_from({"cpu": {"cores": 2, "sockets": 2, "threads": 2}}) == 8
    assert vcpus_from({"cpu": {"sockets": 4}}) == 4
    assert vcpus_from({}) == 0


@pytest.mark.parametrize(
    ("extra", "vcpus", "memory"),
    [
        pytest.param(
            {
                "kind": "VirtualMachineClusterInstancetype",
                "metadata": {"name": "custom"},
                "spec": {"cpu": {"guest": 3}, "memory": {"guest": "6Gi"}},
            },
            3,
            6 * GI,
            id="from-object",
        ),
        pytest.param(None, 0, 0, id="unknown-name-no-object"),
    ],
)
def test_instance_type_from_object(extra: dict[str, Any] | None, vcpus: int, memory: int) -> None:
    vm = vm_obj("a", instancetype="custom", container_disk=True)
    objs = [vm] + ([extra] if extra else [])
    a = state(*objs).vm("default", "a")
    assert a.instance_type == "custom"
    assert a.vcpus == (vcpus or 1)
    assert a.guest_memory_bytes == memory


def test_namespaced_instance_type() -> None:
    vm = vm_obj("a", namespace="team", instancetype="mine", container_disk=True)
    vm["spec"]["instancetype"]["kind"] = "VirtualMachineInstancetype"
    it = {
        "kind": "VirtualMachineInstancetype",
        "metadata": {"name": "mine", "namespace": "team"},
        "spec": {"cpu": {"guest": 6}, "memory": {"guest": "12Gi"}},
    }
    other_ns = copy.deepcopy(it)
    other_ns["metadata"]["namespace"] = "elsewhere"
    other_ns["spec"]["cpu"]["guest"] = 99
    a = state(vm, other_ns, it).vm("team", "a")
    assert (a.vcpus, a.guest_memory_bytes) == (6, 12 * GI)


@pytest.mark.parametrize(
    ("name", "vcpus", "memory"),
    [
        pytest.param("u1.nano", 1, 512 * MI, id="nano"),
        pytest.param("u1.medium", 1, 4 * GI, id="medium"),
        pytest.param("u1.large", 2, 8 * GI, id="large"),
        pytest.param("u1.xlarge", 4, 16 * GI, id="xlarge"),
        pytest.param("u1.8xlarge", 32, 128 * GI, id="8xlarge"),
    ],
)
def test_u1_fallback(name: str, vcpus: int, memory: int) -> None:
    a = state(vm_obj("a", instancetype=name, container_disk=True)).vm("default", "a")
    assert (a.instance_type, a.vcpus, a.guest_memory_bytes) == (name, vcpus, memory)


@pytest.mark.parametrize(
    ("spec", "strategy"),
    [
        pytest.param({"running": True}, "Always", id="running-true"),
        pytest.param({"running": False}, "Halted", id="running-false"),
        pytest.param({}, "Halted", id="neither"),
        pytest.param({"runStrategy": "RerunOnFailure"}, "RerunOnFailure", id="run-strategy"),
    ],
)
def test_run_strategy(spec: dict[str, Any], strategy: str) -> None:
    vm = vm_obj("a")
    del vm["spec"]["runStrategy"]
    vm["spec"].update(spec)
    assert state(vm).vm("default", "a").run_strategy == strategy


def test_stopped_vm() -> None:
    vm = vm_obj("off", run_strategy="Halted")
    off = state(node_obj("w1"), vm).vm("default", "off")
    assert not off.running and off.node is None
    assert off.printable_status == "Stopped"
    assert off.live_migratable is None


def test_vmi_not_running_yet_is_not_placed() -> None:
    vm = vm_obj("a")
    vmi = vmi_obj(vm, "w1", phase="Scheduling")
    a = state(node_obj("w1"), vm, vmi).vm("default", "a")
    assert not a.running and a.node is None


def test_placement_from_raw_spec() -> None:
    spec = {
        "nodeSelector": {"disk": "ssd"},
        "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}, {"operator": "Exists"}],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]},
                        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["w1"]}]},
                    ]
                },
                "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 1, "preference": {}}],
            },
            "podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "labelSelector": {"matchLabels": {"app": "db"}},
                        "topologyKey": "zone",
                        "namespaces": ["x"],
                    }
                ]
            },
            "podAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [
                    {"labelSelector": {"matchExpressions": [{"key": "app", "operator": "Exists"}]}}
                ]
            },
        },
        "topologySpreadConstraints": [
            {
                "maxSkew": 2,
                "topologyKey": "zone",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {"app": "web"}},
            }
        ],
    }
    p = placement_from(spec)
    assert dict(p.node_selector) == {"disk": "ssd"}
    assert p.tolerations == (Toleration("gpu", "Exists", "", "NoSchedule"), Toleration("", "Exists"))
    assert p.required_node_terms == (
        NodeSelectorTerm(match_expressions=(Requirement("zone", "In", ("a",)),)),
        NodeSelectorTerm(match_fields=(Requirement("metadata.name", "In", ("w1",)),)),
    )
    assert p.preferred_node_affinity
    assert p.pod_anti_affinity == (PodAffinityTerm(LabelSelector({"app": "db"}), "zone", ("x",)),)
    assert p.pod_affinity == (
        PodAffinityTerm(LabelSelector(match_expressions=(Requirement("app", "Exists"),)), "kubernetes.io/hostname"),
    )
    assert p.topology_spread == (TopologySpreadConstraint(2, "zone", "ScheduleAnyway", LabelSelector({"app": "web"})),)


def test_vm_placement_comes_from_the_running_instance() -> None:
    vm = vm_obj("a", node_selector={"disk": "hdd"})
    vmi = vmi_obj(vm, "w1")
    vmi["spec"] = copy.deepcopy(vmi["spec"])
    vmi["spec"]["nodeSelector"] = {"disk": "ssd"}
    vmi["spec"]["evictionStrategy"] = "LiveMigrate"
    a = state(vm, vmi).vm("default", "a")
    assert dict(a.placement.node_selector) == {"disk": "ssd"}
    assert a.eviction_strategy == "LiveMigrate"
    assert a.labels["kubevirt.io/domain"] == "a"


# ------------------------------------------------------------------------------ storage


def _vm_with(volumes: list[dict[str, Any]], *objs: dict[str, Any], live: bool = True, reason: str | None = None) -> Any:
    vm = vm_obj("a")
    vm["spec"]["template"]["spec"]["volumes"] = volumes
    vmi = vmi_obj(vm, "w1", live_migratable=live, reason=reason)
    return state(node_obj("w1"), vm, vmi, launcher_pod_obj(vmi), *objs).vm("default", "a")


def _pvc_vol(claim: str) -> dict[str, Any]:
    return {"name": claim, "persistentVolumeClaim": {"claimName": claim}}


def _dv_vol(name: str) -> dict[str, Any]:
    return {"name": name, "dataVolume": {"name": name}}


@pytest.mark.parametrize(
    ("volumes", "objs", "kind", "method"),
    [
        pytest.param([_pvc_vol("d")], [pvc_obj("d")], StorageKind.RWX, "live", id="rwx-pvc"),
        pytest.param([_pvc_vol("d")], [pvc_obj("d", modes=("ReadWriteOnce",))], StorageKind.RWO, "cold", id="rwo-pvc"),
        pytest.param(
            [_dv_vol("d")],
            [pvc_obj("d"), {"kind": "DataVolume", "metadata": {"name": "d", "namespace": "default"}}],
            StorageKind.RWX,
            "live",
            id="datavolume-resolves-to-pvc",
        ),
        pytest.param(
            [_dv_vol("d")],
            [pvc_obj("d", modes=("ReadWriteOnce",))],
            StorageKind.RWO,
            "cold",
            id="rwo-datavolume",
        ),
        pytest.param(
            [{"name": "r", "containerDisk": {"image": "x"}}],
            [],
            StorageKind.CONTAINER_DISK,
            "live",
            id="container-disk",
        ),
        pytest.param([], [], StorageKind.NONE, "live", id="no-disks"),
        pytest.param(
            [{"name": "ci", "cloudInitNoCloud": {}}, {"name": "cm", "configMap": {"name": "x"}}],
            [],
            StorageKind.NONE,
            "live",
            id="config-volumes-only",
        ),
        pytest.param([_pvc_vol("gone")], [], StorageKind.RWO, "cold", id="missing-claim"),
        pytest.param(
            [_pvc_vol("d"), _pvc_vol("e")],
            [pvc_obj("d"), pvc_obj("e", modes=("ReadWriteOnce",))],
            StorageKind.RWO,
            "cold",
            id="mixed-rwx-rwo",
        ),
        pytest.param(
            [_pvc_vol("d")],
            [pvc_obj("d", namespace="other")],
            StorageKind.RWO,
            "cold",
            id="claim-in-other-namespace-not-found",
        ),
    ],
)
def test_storage(volumes: list[dict[str, Any]], objs: list[dict[str, Any]], kind: StorageKind, method: str) -> None:
    from vm_rebalance.planner.eligibility import move_method

    vm = _vm_with(volumes, *objs)
    assert vm.storage_kind is kind
    assert move_method(vm).value == method


def test_missing_claim_is_flagged() -> None:
    (vol,) = _vm_with([_pvc_vol("gone")]).volumes
    assert (vol.claim_name, vol.claim_found, vol.access_modes) == ("gone", False, ())


def test_pvc_access_modes_status_first_then_spec() -> None:
    pending = pvc_obj("d", modes=("ReadWriteMany",))
    del pending["status"]["accessModes"]
    assert _vm_with([_pvc_vol("d")], pending).volumes[0].access_modes == ("ReadWriteMany",)
    bound = pvc_obj("d", modes=("ReadWriteOnce",))
    bound["status"]["accessModes"] = ["ReadWriteMany"]
    assert _vm_with([_pvc_vol("d")], bound).volumes[0].access_modes == ("ReadWriteMany",)


def test_live_migratable_false_with_kubevirt_reason() -> None:
    vm = _vm_with([_pvc_vol("d")], pvc_obj("d"), live=False, reason="InterfaceNotLiveMigratable")
    assert vm.storage_kind is StorageKind.RWX
    assert vm.live_migratable is False
    assert vm.live_migratable_reason == "InterfaceNotLiveMigratable"
    assert vm.live_migratable_message
    from vm_rebalance.planner.eligibility import live_blocker_detail

    assert live_blocker_detail(vm).code == "InterfaceNotLiveMigratable"


def test_live_migratable_true_has_no_reason() -> None:
    vm = _vm_with([_pvc_vol("d")], pvc_obj("d"))
    assert vm.live_migratable is True and vm.live_migratable_reason is None


# ------------------------------------------------------------------------------ metrics, KubeVirt, migrations


def test_metrics_present() -> None:
    vm = vm_obj("a")
    vmi = vmi_obj(vm, "w1")
    pod = launcher_pod_obj(vmi)
    s = state(
        node_obj("w1"),
        vm,
        vmi,
        pod,
        node_metrics_obj("w1", cpu="3", memory="10Gi"),
        pod_metrics_obj(pod, cpu="1500m", memory="3Gi"),
    )
    assert s.metrics_available
    assert s.node("w1").usage == Resources(3000, 10 * GI)
    assert s.vm("default", "a").usage == Resources(1500, 3 * GI)
    assert not any("metrics" in n for n in s.notes)


def test_metrics_absent_notes_requests_basis() -> None:
    s = state(node_obj("w1"), *running_vm("a"))
    assert not s.metrics_available
    assert s.node("w1").usage is None and s.vm("default", "a").usage is None
    assert any("no node metrics" in n and "requests" in n for n in s.notes)


def test_notes_passed_in_are_kept_first() -> None:
    s = state(node_obj("w1"), notes=["from the source"])
    assert s.notes[0] == "from the source"


def test_kubevirt_limits_and_version() -> None:
    kv = kubevirt_obj(per_cluster=10, per_node=3, version="v1.5.2")
    kv["spec"]["configuration"]["migrations"].update(completionTimeoutPerGiB=300, bandwidthPerMigration="64Mi")
    s = state(kv)
    assert (s.limits.parallel_per_cluster, s.limits.parallel_outbound_per_node) == (10, 3)
    assert s.limits.completion_timeout_per_gib_seconds == 300
    assert s.limits.bandwidth_bytes_per_second == 64 * MI
    assert s.kubevirt_version == "v1.5.2"


def test_kubevirt_defaults() -> None:
    s = state(node_obj("w1"))
    assert (s.limits.parallel_per_cluster, s.limits.parallel_outbound_per_node) == (5, 2)
    assert s.limits.bandwidth_bytes_per_second is None
    assert s.kubevirt_version is None
    kv = kubevirt_obj()
    kv["spec"] = {}
    kv["status"] = {"targetKubeVirtVersion": "v1.4.0"}
    s = state(kv)
    assert (s.limits.parallel_per_cluster, s.kubevirt_version) == (5, "v1.4.0")


def test_cooldown_from_last_succeeded_migration() -> None:
    objs = [
        *running_vm("a"),
        migration_obj("m1", "a", end="2026-11-21T11:00:00Z"),
        migration_obj("m2", "a", end="2026-11-21T11:50:00Z"),
        migration_obj("m3", "a", phase="Failed", end="2026-11-21T11:59:00Z"),
    ]
    assert state(*objs).vm("default", "a").last_migration_seconds_ago == 600.0
    # Other namespaces' migrations of a same-named VM do not count.
    assert (
        state(*running_vm("b"), migration_obj("m", "b", namespace="other"))
        .vm("default", "b")
        .last_migration_seconds_ago
        is None
    )


def test_cooldown_anchored_on_metrics_timestamp_by_default() -> None:
    objs = [
        *running_vm("a"),
        migration_obj("m", "a", end="2026-11-21T11:55:00Z"),
        node_metrics_obj("w1", cpu="1", memory="1Gi", timestamp="2026-11-21T12:00:00Z"),
    ]
    assert state_from_objects(objs).vm("default", "a").last_migration_seconds_ago == 300.0


def test_in_flight_migrations() -> None:
    objs = [
        *running_vm("a"),
        *running_vm("b"),
        migration_obj("m1", "a", phase="Running", source="w1", target="w2"),
        migration_obj("m0", "b", phase="Succeeded"),
    ]
    s = state(*objs)
    (m,) = s.migrations
    assert (m.namespace, m.name, m.vm, m.phase, m.source, m.target) == (
        "default",
        "m1",
        "a",
        "Running",
        "w1",
        "w2",
    )
    assert s.vm("default", "a").migrating and not s.vm("default", "b").migrating
    assert s.vm("default", "a").last_migration_seconds_ago is None


def test_migration_state_on_vmi_marks_migrating() -> None:
    vm = vm_obj("a")
    vmi = vmi_obj(vm, "w1")
    vmi["status"]["migrationState"] = {"startTimestamp": "2026-11-21T11:59:00Z"}
    assert state(vm, vmi).vm("default", "a").migrating
    vmi["status"]["migrationState"]["completed"] = True
    assert not state(vm, vmi).vm("default", "a").migrating


def test_unknown_kinds_are_noted_and_ignored() -> None:
    s = state(
        node_obj("w1"),
        {"kind": "ConfigMap", "metadata": {"name": "x"}},
        {"kind": "ConfigMap", "metadata": {"name": "y"}},
        {"kind": "Service"},
        {"metadata": {}},
    )
    note = next(n for n in s.notes if n.startswith("ignored objects"))
    assert "ConfigMap (2)" in note and "Service (1)" in note and "<no kind> (1)" in note
    assert len(s.nodes) == 1


def test_small_cluster_end_to_end() -> None:
    s = state_from_objects(small_cluster(), source="snapshot")
    assert [n.name for n in s.nodes] == ["cp1", "w1", "w2", "w3"]
    assert [v.name for v in s.vms] == ["big", "cache", "db", "off", "web"]
    assert s.source == "snapshot"
    assert s.metrics_available
    assert {v.name: v.storage_kind.value for v in s.vms} == {
        "big": "containerdisk",
        "cache": "containerdisk",
        "db": "RWX",
        "off": "containerdisk",
        "web": "RWO",
    }
    assert s.node("w1").requested == Resources(3 * 200 + 500, 3 * 4400 * MI + GI)


def test_snapshot_objects_drop_cloud_init_content_of_vms_and_vmis():
    from vm_rebalance.kube.convert import snapshot_object

    vm = vm_obj("db", pvcs=["db-root"])
    vm["spec"]["template"]["spec"]["volumes"].append(
        {"name": "init", "cloudInitNoCloud": {"userData": "#cloud-config\npassword: hunter2"}}
    )
    vm["spec"]["template"]["spec"]["accessCredentials"] = [
        {"sshPublicKey": {"source": {"secret": {"secretName": "k"}}}}
    ]
    vmi = vmi_obj(vm, "w1")
    for obj in (vm, vmi):
        slim = snapshot_object(obj)
        assert "hunter2" not in json.dumps(slim) and "accessCredentials" not in json.dumps(slim)
        assert "hunter2" in json.dumps(obj)  # the input is not modified
    assert (
        state_from_objects([snapshot_object(o) for o in (vm, vmi, pvc_obj("db-root"), node_obj("w1"))]).vms[0].volumes
    )


def test_a_foreign_migration_is_attributed_to_its_source_from_the_vmi() -> None:
    """kubectl's migration carries no migrationState until it finalizes: the VMI's says where it comes from."""
    vm = vm_obj("a")
    vmi = vmi_obj(vm, "w1")
    vmi["status"]["migrationState"] = {
        "migrationUid": "u-1",
        "sourceNode": "w1",
        "targetNode": "w3",
        "startTimestamp": "2026-11-21T11:59:00Z",
    }
    mig = migration_obj("kubevirt-migrate-vm-x", "a", phase="Running")
    mig["metadata"]["uid"] = "u-1"
    del mig["status"]["migrationState"]
    (m,) = state(node_obj("w1"), vm, vmi, mig).migrations
    assert (m.name, m.source, m.target, m.phase) == ("kubevirt-migrate-vm-x", "w1", "w3", "Running")
    # Only the VMI reports it (no migration object): it is still in flight, and counted.
    (m,) = state(node_obj("w1"), vm, vmi).migrations
    assert (m.name, m.vm, m.source) == ("", "a", "w1")


def test_an_injected_usage_sample_overlays_the_inventory() -> None:
    from vm_rebalance.model.usage import UsageSample

    vm = vm_obj("a")
    vmi = vmi_obj(vm, "w1")
    pod = launcher_pod_obj(vmi)
    objs = [node_obj("w1"), vm, vmi, pod, node_metrics_obj("w1", cpu="3", memory="10Gi")]
    sample = UsageSample(
        nodes={"w1": Resources(1000, GI)},
        vms={("default", "a"): Resources(250, GI)},
        measured_at=datetime(2026, 11, 21, 12, tzinfo=UTC),
        source="test",
    )
    s = state_from_objects(objs, usage=sample)
    assert s.node("w1").usage == Resources(1000, GI)  # the objects' own NodeMetrics are not used
    assert s.vm("default", "a").usage == Resources(250, GI)
    empty = state_from_objects(objs, usage=UsageSample(notes=("the source said why",)))
    assert not empty.metrics_available and "the source said why" in empty.notes
    assert not any("no node metrics" in n for n in empty.notes)  # explained once, by the source
