"""The inventory document and its tables: every fact, computed once."""

import io

import pytest
from rich.console import Console

from factories import GI, make_node, make_state, make_vm
from rawobjects import small_cluster
from vm_rebalance.kube.convert import state_from_objects
from vm_rebalance.model import ClusterState, InFlightMigration, MigrationLimits, Taint
from vm_rebalance.render.inventory import health, inventory_document, inventory_view


def render(doc: dict) -> str:
    buffer = io.StringIO()
    Console(file=buffer, width=250, color_system=None).print(inventory_view(doc))
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("cpu", "memory", "expected"),
    [
        pytest.param(0.5, 0.5, "ok", id="ok"),
        pytest.param(0.80, 0.85, "ok", id="at-warning-thresholds"),
        pytest.param(0.81, 0.5, "warning", id="cpu-warning"),
        pytest.param(0.5, 0.86, "warning", id="memory-warning"),
        pytest.param(0.91, 0.5, "critical", id="cpu-critical"),
        pytest.param(0.5, 0.96, "critical", id="memory-critical"),
        pytest.param(None, None, "ok", id="unknown"),
    ],
)
def test_health(cpu: float | None, memory: float | None, expected: str) -> None:
    assert health(cpu, memory) == expected


def test_small_cluster_document() -> None:
    doc = inventory_document(state_from_objects(small_cluster(), source="snapshot"))
    assert (doc["apiVersion"], doc["kind"], doc["source"], doc["basis"]) == (
        "vm-rebalance/v1",
        "Inventory",
        "snapshot",
        "usage",
    )
    assert doc["kubevirt_version"] == "v1.6.0"
    nodes = {n["name"]: n for n in doc["nodes"]}
    assert list(nodes) == ["cp1", "w1", "w2", "w3"]
    assert nodes["cp1"]["flags"] == ["no KVM", "control-plane"] and not nodes["cp1"]["eligible"]
    assert nodes["w1"]["vms"] == 3 and nodes["w1"]["eligible"]
    assert nodes["w1"]["cpu_usage"] == 0.75 and nodes["w1"]["memory_usage"] == 0.625
    assert nodes["w1"]["usage"] == {"cpu_millicores": 12000, "memory_bytes": 40 * GI}
    assert nodes["w1"]["pods"] == 4
    vms = {v["name"]: v for v in doc["vms"]}
    assert {k: (v["storage"], v["move_method"], v["move_blocker"]) for k, v in vms.items()} == {
        "big": ("containerdisk", "live", None),
        "cache": ("containerdisk", "live", None),
        "db": ("RWX", "live", None),
        "off": ("containerdisk", "cold", "stopped"),
        "web": ("RWO", "cold", "RWO"),
    }
    assert vms["big"]["instance_type"] == "u1.xlarge" and vms["big"]["vcpus"] == 4
    assert vms["db"]["memory_bytes"] == 8 * GI and vms["db"]["node"] == "w1"
    assert vms["web"]["move_reason"] == "PVC web-root is not ReadWriteMany (RWO storage)"
    assert vms["db"]["move_reason"] == "live migration possible"
    assert vms["off"]["node"] is None and vms["off"]["status"] == "Stopped"
    assert vms["db"]["volumes"][0] == {
        "name": "db-root",
        "source": "persistentVolumeClaim",
        "claim": "db-root",
        "access_modes": ["ReadWriteMany"],
        "claim_found": True,
    }
    t = doc["totals"]
    assert (t["nodes"], t["eligible_nodes"], t["vms"], t["running_vms"], t["live_movable_vms"]) == (
        4,
        3,
        5,
        4,
        3,
    )
    assert t["allocatable"] == {"cpu_millicores": 40000, "memory_bytes": 160 * GI}
    assert t["usage"] == {"cpu_millicores": 15500, "memory_bytes": 52 * GI}
    assert t["headroom"]["cpu"] == round(1 - 15500 / 40000, 4)
    assert t["headroom"]["target"] == 0.2


def test_requests_basis_without_metrics() -> None:
    node = make_node("n1", cpu=10, memory_gi=10)
    state = make_state([node], [make_vm("a", node="n1", request_cpu=9.5, request_memory_gi=2)])
    doc = inventory_document(state)
    assert doc["basis"] == "requests"
    (n,) = doc["nodes"]
    assert n["cpu_usage"] is None and n["usage"] is None
    assert n["cpu_requests"] == 0.95 and n["health"] == "critical"
    assert doc["totals"]["usage"] is None and doc["totals"]["cpu_usage"] is None
    assert doc["totals"]["headroom"]["cpu"] == 0.05


def test_usage_drives_health_when_measured() -> None:
    node = make_node("n1", cpu=10, memory_gi=10, usage_cpu=8.5, usage_memory_gi=1)
    doc = inventory_document(make_state([node], [], metrics=True))
    assert doc["nodes"][0]["health"] == "warning"


def test_flags_taints_and_zero_allocatable() -> None:
    nodes = [
        make_node(
            "tainted",
            taints=[
                Taint("gpu", "NoSchedule", "true"),
                Taint("node.kubernetes.io/unschedulable", "NoSchedule"),
            ],
            unschedulable=True,
        ),
        make_node("empty", cpu=0, memory_gi=0, ready=False),
    ]
    doc = inventory_document(make_state(nodes, []))
    by = {n["name"]: n for n in doc["nodes"]}
    assert by["tainted"]["flags"] == ["cordoned", "tainted"]
    assert by["tainted"]["taints"] == ["gpu=true:NoSchedule"]
    assert by["empty"]["flags"] == ["NotReady"] and by["empty"]["cpu_requests"] is None
    assert doc["totals"]["headroom"]["cpu"] is None


def test_namespace_filter_keeps_all_nodes() -> None:
    state = make_state(
        [make_node("n1"), make_node("n2")],
        [make_vm("a", namespace="prod", node="n1"), make_vm("b", namespace="dev", node="n2")],
    )
    doc = inventory_document(state, namespaces=["prod"])
    assert [v["name"] for v in doc["vms"]] == ["a"]
    assert [n["name"] for n in doc["nodes"]] == ["n1", "n2"]
    assert [n["vms"] for n in doc["nodes"]] == [1, 1]
    assert inventory_document(state, namespaces=[])["vms"] == []


def test_migrations_and_notes_and_limits() -> None:
    state = ClusterState(
        nodes=(make_node("n1"),),
        vms=(),
        limits=MigrationLimits(parallel_per_cluster=7, parallel_outbound_per_node=3),
        migrations=(InFlightMigration(namespace="ns", name="m1", vm="a", phase="Running", source="n1", target="n2"),),
        notes=("something to know",),
    )
    doc = inventory_document(state)
    assert doc["migrations_in_flight"] == [
        {"namespace": "ns", "name": "m1", "vm": "a", "phase": "Running", "from": "n1", "to": "n2"}
    ]
    assert doc["notes"] == ["something to know"]
    assert doc["migration_limits"]["parallel_per_cluster"] == 7
    text = render(doc)
    assert "Migrations in flight" in text and "m1" in text
    assert "Note: something to know" in text
    assert "7 per cluster, 3 outbound per node" in text


def test_table_shows_every_node_and_vm() -> None:
    doc = inventory_document(state_from_objects(small_cluster()))
    text = render(doc)
    for name in ("cp1", "w1", "w2", "w3", "big", "cache", "db", "off", "web", "u1.xlarge"):
        assert name in text
    assert "cold (RWO)" in text and "cold (stopped)" in text
    assert "no KVM, control-plane" in text
    assert "75%" in text  # w1 CPU usage
    assert "Cluster: 4 nodes (3 can host migrated VMs), 5 VMs (4 running, 3 can move live)" in text
    assert "KubeVirt v1.6.0" in text
    assert "Migrations in flight" not in text
