"""Built-in scenarios and snapshot loading."""

import json
from collections import Counter
from pathlib import Path

import pytest
import yaml

from vm_rebalance.simulator.builders import node, pvc, vm
from vm_rebalance.simulator.cluster import SimCluster
from vm_rebalance.simulator.quantity import cpu_millicores, memory_bytes
from vm_rebalance.simulator.scenarios import generate_scenario, load_snapshot_file
from vm_rebalance.simulator.scheduler import node_affinity_matches, tolerates

VMS = ("kubevirt.io", "virtualmachines")
VMIS = ("kubevirt.io", "virtualmachineinstances")
NODES = ("", "nodes")
PODS = ("", "pods")
NODE_METRICS = ("metrics.k8s.io", "nodes")


def cpu_usage(c: SimCluster) -> dict[str, float]:
    out = {}
    for m in c.store.list(NODE_METRICS)[0]:
        n = c.store.get(NODES, None, m["metadata"]["name"])
        out[n["metadata"]["name"]] = cpu_millicores(m["usage"]["cpu"]) / cpu_millicores(
            n["status"]["allocatable"]["cpu"]
        )
    return out


def assert_no_violations(c: SimCluster) -> None:
    nodes = {n["metadata"]["name"]: n for n in c.store.list(NODES)[0]}
    groups: dict[str, set[str]] = {}
    for vmi in c.store.list(VMIS)[0]:
        pods = c.live_launcher_pods(vmi)
        assert len(pods) == 1
        pod = pods[0]
        target = nodes[vmi["status"]["nodeName"]]
        assert pod["spec"]["nodeName"] == target["metadata"]["name"]
        assert node_affinity_matches(pod["spec"], target)
        assert not target["spec"].get("unschedulable")
        for taint in target["spec"].get("taints") or []:
            assert tolerates(pod["spec"].get("tolerations") or [], taint)
        group = vmi["metadata"]["labels"].get("app", "")
        if group.startswith("ha-"):
            assert target["metadata"]["name"] not in groups.setdefault(group, set())
            groups[group].add(target["metadata"]["name"])
    assert c.recorder.capacity_overruns == []


def test_demo_is_clearly_imbalanced_and_valid() -> None:
    c = SimCluster.from_scenario("demo", manual_clock=True)
    c.step(1)
    nodes = c.store.list(NODES)[0]
    assert sum("node-role.kubernetes.io/control-plane" in n["metadata"]["labels"] for n in nodes) == 1
    assert len(nodes) == 7
    vms = c.store.list(VMS)[0]
    assert len(vms) == 40
    statuses = Counter(v["status"]["printableStatus"] for v in vms)
    assert statuses["Stopped"] >= 1 and statuses["Running"] >= 35
    vmis = c.store.list(VMIS)[0]
    not_migratable = [
        v
        for v in vmis
        if any(x["type"] == "LiveMigratable" and x["status"] == "False" for x in v["status"]["conditions"])
    ]
    assert 2 <= len(not_migratable) <= 10
    usage = cpu_usage(c)
    workers = sorted(u for n, u in usage.items() if n.startswith("worker"))
    assert workers[-1] >= 0.85 and workers[-2] >= 0.8
    assert workers[0] <= 0.1 and workers[1] <= 0.15
    assert_no_violations(c)
    assert c.kubevirt_version() == "v1.6.0"
    cr = c.store.list(("kubevirt.io", "kubevirts"))[0][0]
    assert cr["spec"]["configuration"]["migrations"]["parallelMigrationsPerCluster"] == 5
    assert any(v["spec"].get("instancetype") for v in vms)
    assert c.store.count(("instancetype.kubevirt.io", "virtualmachineclusterinstancetypes")) == 10


def test_small_scenario() -> None:
    c = SimCluster.from_scenario("small", manual_clock=True)
    workers = [n for n in c.store.list(NODES)[0] if "node-role.kubernetes.io/worker" in n["metadata"]["labels"]]
    assert len(workers) == 4
    assert c.store.count(VMS) == 12
    assert_no_violations(c)


def test_medium_scenario_has_every_feature() -> None:
    c = SimCluster.from_scenario("medium", manual_clock=True, seed=3)
    nodes = c.store.list(NODES)[0]
    assert 45 <= len(nodes) <= 60
    assert c.store.count(VMS) == 1000
    assert any(n["spec"].get("unschedulable") for n in nodes)
    assert any(n["metadata"]["labels"].get("kubevirt.io/schedulable") == "false" for n in nodes)
    assert any("node-role.kubernetes.io/control-plane" in n["metadata"]["labels"] for n in nodes)
    tainted = {
        n["metadata"]["name"] for n in nodes if any(t["key"] == "dedicated" for t in n["spec"].get("taints") or [])
    }
    vmis = c.store.list(VMIS)[0]
    assert any(v["status"]["nodeName"] in tainted for v in vmis)
    vms = c.store.list(VMS)[0]
    assert any(v["spec"].get("dataVolumeTemplates") for v in vms)
    assert any(v["spec"].get("instancetype") for v in vms)
    assert any(v["spec"]["template"]["spec"]["volumes"][0].get("containerDisk") is not None for v in vms)
    assert sum(v["spec"]["runStrategy"] == "Halted" for v in vms) >= 10
    assert c.store.count(("cdi.kubevirt.io", "datavolumes")) > 0
    assert_no_violations(c)
    usage = cpu_usage(c)
    spread = [u for n, u in usage.items() if n.startswith("worker")]
    assert max(spread) > 0.75 and min(spread) < 0.15


def test_large_scenario_shape() -> None:
    objects = generate_scenario("large", seed=1)
    kinds = Counter(o["kind"] for o in objects)
    assert 480 <= kinds["Node"] <= 520
    assert kinds["VirtualMachine"] == 10_000
    assert kinds["VirtualMachineInstance"] >= 9_000


def test_generation_is_deterministic_per_seed() -> None:
    def placement(seed: int) -> list[tuple[str, str]]:
        return [
            (o["metadata"]["name"], o["status"]["nodeName"])
            for o in generate_scenario("medium", seed=seed)
            if o["kind"] == "VirtualMachineInstance"
        ]

    assert placement(5) == placement(5)
    assert placement(5) != placement(6)


def test_unknown_scenario_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown scenario"):
        SimCluster.from_scenario("nope")


def snapshot_objects() -> list[dict]:
    objs = [node("w1"), node("w2"), pvc("db-root", "prod", access_mode="ReadWriteOnce")]
    objs += vm("web", "prod", node="w1", cpus=4)
    objs += vm("db", "prod", node="w2", claim="db-root")
    objs += vm("new", "prod")  # Always but no VMI in the file
    objs += vm("off", "prod", run_strategy="Halted")
    objs.append(
        {
            "apiVersion": "metrics.k8s.io/v1beta1",
            "kind": "PodMetrics",
            "metadata": {"name": "virt-launcher-web-abcde", "namespace": "prod"},
            "containers": [{"name": "compute", "usage": {"cpu": "3", "memory": "2Gi"}}],
        }
    )
    objs.append(
        {
            "apiVersion": "metrics.k8s.io/v1beta1",
            "kind": "NodeMetrics",
            "metadata": {"name": "w1"},
            "usage": {"cpu": "6", "memory": "20Gi"},
        }
    )
    return objs


def check_loaded(c: SimCluster) -> None:
    assert c.store.count(NODES) == 2
    assert c.store.get(VMIS, "prod", "web")["status"]["nodeName"] == "w1"
    assert c.store.get(VMIS, "prod", "new")["status"]["phase"] == "Running"
    assert c.store.try_get(VMIS, "prod", "off") is None
    assert {p["spec"]["nodeName"] for p in c.store.list(PODS, "prod")[0]} == {"w1", "w2"}
    web = c.store.get(VMS, "prod", "web")
    assert web["metadata"]["annotations"]["simulator.vm-rebalance.io/cpu-usage"] == "0.750"
    w1 = c.store.get(NODE_METRICS, None, "w1")["usage"]
    assert 5990 <= cpu_millicores(w1["cpu"]) <= 6010  # the snapshot's node usage is reproduced
    assert abs(memory_bytes(w1["memory"]) - 20 * 2**30) < 2**20
    c.step(1)
    assert c.store.get(VMS, "prod", "web")["status"]["printableStatus"] == "Running"
    assert c.store.get(VMS, "prod", "off")["status"]["printableStatus"] == "Stopped"


def test_load_list_json(tmp_path: Path) -> None:
    path = tmp_path / "snap.json"
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": snapshot_objects()}))
    check_loaded(SimCluster.from_scenario(str(path), manual_clock=True))


def test_load_yaml_and_multi_document(tmp_path: Path) -> None:
    path = tmp_path / "snap.yaml"
    path.write_text(yaml.safe_dump_all(snapshot_objects()))
    check_loaded(SimCluster.from_scenario(str(path), manual_clock=True))


def test_load_concatenated_json_and_kind_lists(tmp_path: Path) -> None:
    objs = snapshot_objects()
    vm_items = [{k: v for k, v in o.items() if k != "kind"} for o in objs if o["kind"] == "VirtualMachine"]
    others = [o for o in objs if o["kind"] != "VirtualMachine"]
    text = (
        json.dumps({"apiVersion": "v1", "kind": "List", "items": others})
        + "\n"
        + json.dumps({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineList", "items": vm_items}, indent=2)
    )
    path = tmp_path / "snap.json"
    path.write_text(text)
    assert Counter(o["kind"] for o in load_snapshot_file(path))["VirtualMachine"] == 4
    check_loaded(SimCluster.from_scenario(str(path), manual_clock=True))


def test_snapshot_round_trip_keeps_uids_and_placement(tmp_path: Path) -> None:
    first = SimCluster.from_scenario("demo", manual_clock=True)
    first.step(1)
    items = []
    for key, kind in [
        (NODES, "Node"),
        (VMS, "VirtualMachine"),
        (VMIS, "VirtualMachineInstance"),
        (PODS, "Pod"),
        (("", "persistentvolumeclaims"), "PersistentVolumeClaim"),
    ]:
        items += [{**o, "kind": kind} for o in first.store.list(key)[0]]
    path = tmp_path / "snap.json"
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    second = SimCluster.from_scenario(str(path), manual_clock=True)
    assert {(v["metadata"]["uid"], v["status"]["nodeName"]) for v in first.store.list(VMIS)[0]} == {
        (v["metadata"]["uid"], v["status"]["nodeName"]) for v in second.store.list(VMIS)[0]
    }
    assert second.store.count(PODS) == first.store.count(PODS)
    assert second.recorder.capacity_overruns == []


def test_empty_file_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing\n")
    with pytest.raises(ValueError, match="no Kubernetes objects"):
        load_snapshot_file(path)
