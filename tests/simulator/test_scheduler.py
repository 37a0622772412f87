"""Placement of new VMIs: filters, least-allocated scoring, unschedulable reporting and retry."""

import pytest

from vm_rebalance.simulator.builders import anti_affinity, node, node_affinity, sim_cluster, vm
from vm_rebalance.simulator.cluster import SimCluster

VMS = ("kubevirt.io", "virtualmachines")
VMIS = ("kubevirt.io", "virtualmachineinstances")
NODES = ("", "nodes")
EVENTS = ("", "events")


def start(c: SimCluster, name: str, ns: str = "default") -> None:
    c.subresource(ns, "virtualmachines", name, "start", None, "admin")
    c.step(20)


def placed_on(c: SimCluster, name: str, ns: str = "default") -> str | None:
    vmi = c.store.try_get(VMIS, ns, name)
    return (vmi or {}).get("status", {}).get("nodeName")


def test_least_allocated_node_wins_and_ties_break_by_name() -> None:
    c = sim_cluster(
        node("a"), node("b"), node("c"), vm("busy", node="a", memory="32Gi"), vm("new", run_strategy="Halted")
    )
    start(c, "new")
    assert placed_on(c, "new") == "b"


@pytest.mark.parametrize(
    ("vm_kwargs", "expected"),
    [
        pytest.param({"node_selector": {"disk": "ssd"}}, "b", id="nodeSelector"),
        pytest.param(
            {"affinity": node_affinity({"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]})},
            "b",
            id="affinity-In",
        ),
        pytest.param(
            {
                "affinity": node_affinity(
                    {"matchExpressions": [{"key": "disk", "operator": "NotIn", "values": ["ssd"]}]}
                )
            },
            "a",
            id="affinity-NotIn",
        ),
        pytest.param(
            {"affinity": node_affinity({"matchExpressions": [{"key": "gpu", "operator": "Exists"}]})},
            "c",
            id="affinity-Exists",
        ),
        pytest.param(
            {"affinity": node_affinity({"matchExpressions": [{"key": "disk", "operator": "DoesNotExist"}]})},
            "c",
            id="affinity-DoesNotExist",
        ),
        pytest.param(
            {"affinity": node_affinity({"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["40"]}]})},
            "c",
            id="affinity-Gt",
        ),
        pytest.param(
            {"affinity": node_affinity({"matchExpressions": [{"key": "cores", "operator": "Lt", "values": ["20"]}]})},
            "a",
            id="affinity-Lt",
        ),
        pytest.param(
            {"affinity": node_affinity({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["c"]}]})},
            "c",
            id="matchFields",
        ),
        pytest.param(
            {
                "affinity": node_affinity(
                    {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["none"]}]},
                    {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["b"]}]},
                )
            },
            "b",
            id="terms-ORed",
        ),
    ],
)
def test_node_selection_rules(vm_kwargs: dict, expected: str) -> None:
    c = sim_cluster(
        node("a", labels={"disk": "hdd", "cores": "16"}),
        node("b", labels={"disk": "ssd", "cores": "32"}),
        node("c", labels={"gpu": "t4", "cores": "64"}),
        vm("new", run_strategy="Halted", **vm_kwargs),
    )
    start(c, "new")
    assert placed_on(c, "new") == expected


def test_taints_need_tolerations() -> None:
    taint = {"key": "dedicated", "value": "db", "effect": "NoSchedule"}
    c = sim_cluster(
        node("tainted", taints=[taint]),
        vm("plain", run_strategy="Halted"),
        vm(
            "tolerant",
            run_strategy="Halted",
            tolerations=[{"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}],
        ),
    )
    start(c, "plain")
    start(c, "tolerant")
    assert placed_on(c, "plain") is None
    assert placed_on(c, "tolerant") == "tainted"


@pytest.mark.parametrize(
    ("bad_node", "reason"),
    [
        pytest.param(node("x", unschedulable=True), "1 node(s) were unschedulable", id="cordoned"),
        pytest.param(
            node("x", ready=False), "1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }", id="not-ready"
        ),
        pytest.param(node("x", kvm=False), "1 node(s) didn't match Pod's node affinity/selector", id="not-kvm"),
        pytest.param(
            node("x", control_plane=True),
            "1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }",
            id="control-plane",
        ),
        pytest.param(node("x", memory_gib=2), "1 Insufficient memory", id="too-small"),
    ],
)
def test_unschedulable_vm_reports_the_scheduler_message(bad_node: dict, reason: str) -> None:
    c = sim_cluster(bad_node, vm("new", run_strategy="Halted", memory="4Gi"))
    start(c, "new")
    vmi = c.store.get(VMIS, "default", "new")
    assert vmi["status"]["phase"] == "Scheduling"
    cond = next(x for x in vmi["status"]["conditions"] if x["type"] == "PodScheduled")
    assert cond["status"] == "False" and cond["reason"] == "Unschedulable"
    assert cond["message"].startswith(f"0/1 nodes are available: {reason}.")
    assert c.store.get(VMS, "default", "new")["status"]["printableStatus"] == "ErrorUnschedulable"
    events = [e for e in c.store.list(EVENTS)[0] if e["reason"] == "FailedScheduling"]
    assert events and events[0]["type"] == "Warning" and events[0]["message"] == cond["message"]


def test_unschedulable_vm_starts_once_capacity_appears() -> None:
    c = sim_cluster(node("small", memory_gib=2), vm("new", run_strategy="Halted", memory="4Gi"))
    start(c, "new")
    assert placed_on(c, "new") is None
    c.store.create(NODES, node("big"))
    assert c.run_until(
        lambda: c.store.get(VMS, "default", "new")["status"]["printableStatus"] == "Running", timeout_seconds=60
    )
    assert placed_on(c, "new") == "big"


def test_required_pod_anti_affinity_spreads_vms() -> None:
    spread = anti_affinity("app", "ha")
    c = sim_cluster(
        node("a"),
        node("b"),
        vm("ha-1", node="a", labels={"app": "ha"}, affinity=spread),
        vm("ha-2", run_strategy="Halted", labels={"app": "ha"}, affinity=spread),
        vm("ha-3", run_strategy="Halted", labels={"app": "ha"}, affinity=spread),
    )
    start(c, "ha-2")
    assert placed_on(c, "ha-2") == "b"
    start(c, "ha-3")
    assert placed_on(c, "ha-3") is None
    message = next(
        x for x in c.store.get(VMIS, "default", "ha-3")["status"]["conditions"] if x["type"] == "PodScheduled"
    )["message"]
    assert "2 node(s) didn't match pod anti-affinity rules" in message


def test_kvm_device_capacity_is_a_limit() -> None:
    small = node("a")
    small["status"]["allocatable"]["devices.kubevirt.io/kvm"] = "1"
    c = sim_cluster(small, vm("one", node="a"), vm("two", run_strategy="Halted"))
    start(c, "two")
    assert placed_on(c, "two") is None


def test_cpu_requests_limit_placement() -> None:
    c = sim_cluster(node("a", cpu=1), vm("big", run_strategy="Halted", cpus=16))
    start(c, "big")
    cond = next(x for x in c.store.get(VMIS, "default", "big")["status"]["conditions"] if x["type"] == "PodScheduled")
    assert "1 Insufficient cpu" in cond["message"]
