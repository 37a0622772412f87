"""The recorder's log and invariant counters."""

import pytest

from vm_rebalance.simulator import recorder
from vm_rebalance.simulator.builders import node, sim_cluster, vm

VMIMS = ("kubevirt.io", "virtualmachineinstancemigrations")
PODS = ("", "pods")


def test_capacity_overrun_is_recorded_with_node_and_time() -> None:
    c = sim_cluster(node("w1", memory_gib=8), vm("web", node="w1", memory="4Gi"))
    c.step(3)
    assert c.recorder.capacity_overruns == []
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "hog", "namespace": "default"},
        "spec": {"nodeName": "w1", "containers": [{"name": "c", "resources": {"requests": {"memory": "6Gi"}}}]},
        "status": {"phase": "Running"},
    }
    c.store.create(PODS, pod)
    (overrun,) = c.recorder.capacity_overruns
    assert overrun.node == "w1" and overrun.resource == "memory" and overrun.time == 3.0
    assert overrun.requested > overrun.allocatable


def test_vms_left_stopped_and_migrations_left_behind() -> None:
    c = sim_cluster(node("w1"), node("w2"), vm("a", node="w1"), vm("b", node="w1"), vm("c", run_strategy="Halted"))
    assert c.recorder.vms_left_stopped() == []
    c.subresource("default", "virtualmachines", "a", "stop", None, "admin")
    c.store.create(
        VMIMS,
        c.admit(
            "create",
            VMIMS,
            {"metadata": {"name": "m", "namespace": "default"}, "spec": {"vmiName": "b"}},
            None,
            "admin",
        ),
    )
    c.faults.stall_migration("b")
    c.step(30)
    assert c.recorder.vms_left_stopped() == ["default/a"]
    assert c.recorder.migrations_left_non_final() == ["default/m"]
    assert c.recorder.running_migrations() == 1
    summary = c.recorder.summary()
    assert summary["peak_running_migrations"] == 1
    assert summary["peak_outbound_per_node"] == {"w1": 1}


def test_log_has_timed_entries() -> None:
    c = sim_cluster(node("w1"), vm("a", run_strategy="Halted"))
    c.subresource("default", "virtualmachines", "a", "start", None, "admin")
    c.step(30)
    kinds = [e.kind for e in c.recorder.entries()]
    assert (
        kinds.index("subresource-start")
        < kinds.index("vmi-created")
        < kinds.index("scheduled")
        < kinds.index("vmi-running")
    )
    running = c.recorder.entries("vmi-running")[0]
    assert running.message == "default/a" and running.details["node"] == "w1" and running.time > 0


def hog(name: str, memory: str, node_name: str = "w1") -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"nodeName": node_name, "containers": [{"name": "c", "resources": {"requests": {"memory": memory}}}]},
        "status": {"phase": "Running"},
    }


def test_overrun_is_recorded_once_per_transition() -> None:
    c = sim_cluster(node("w1", memory_gib=8), node("w2", memory_gib=8), vm("web", node="w1", memory="4Gi"))
    c.step(3)
    c.store.create(PODS, hog("hog", "6Gi"))
    for i in range(20):  # more pod events while w1 stays overrun
        c.store.create(PODS, hog(f"small-{i}", "1Mi"))
        c.store.mutate(PODS, "default", f"small-{i}", lambda o: o["metadata"].setdefault("labels", {}).update(x="y"))
    assert [(o.node, o.resource) for o in c.recorder.capacity_overruns] == [("w1", "memory")]
    c.store.delete(PODS, "default", "hog")  # back under allocatable
    c.store.create(PODS, hog("hog2", "6Gi"))  # and over again: a second overrun
    c.store.create(PODS, hog("hog3", "9Gi", "w2"))  # another node is its own overrun
    assert [(o.node, o.resource) for o in c.recorder.capacity_overruns] == [
        ("w1", "memory"),
        ("w1", "memory"),
        ("w2", "memory"),
    ]
    assert c.recorder.summary()["capacity_overruns"] == 3


def test_log_is_bounded_and_summary_counts_every_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recorder, "MAX_LOG_ENTRIES", 100)
    c = sim_cluster(node("w1"), vm("a", run_strategy="Halted"))
    before = c.recorder.summary()["log_entries"]
    for i in range(1000):
        c.recorder.record("tick", str(i))
    assert len(c.recorder.log) == 100
    assert [e.message for e in c.recorder.entries("tick")] == [str(i) for i in range(900, 1000)]
    assert c.recorder.summary()["log_entries"] == before + 1000


def test_default_log_bound_holds_under_many_events() -> None:
    c = sim_cluster(node("w1"))
    for i in range(recorder.MAX_LOG_ENTRIES + 5000):
        c.recorder.record("tick", str(i))
    assert len(c.recorder.log) == recorder.MAX_LOG_ENTRIES
    assert c.recorder.entries("tick")[-1].message == str(recorder.MAX_LOG_ENTRIES + 4999)


def test_capacity_overruns_are_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recorder, "MAX_CAPACITY_OVERRUNS", 3)
    c = sim_cluster(node("w1", memory_gib=8))
    for i in range(10):  # ten transitions into overrun
        c.store.create(PODS, hog(f"hog-{i}", "9Gi"))
        c.store.delete(PODS, "default", f"hog-{i}")
    assert len(c.recorder.capacity_overruns) == 3
    assert c.recorder.summary()["capacity_overruns"] == 10


def test_migration_phases_are_pruned_when_the_migration_is_deleted() -> None:
    c = sim_cluster(node("w1"), node("w2"), vm("web", node="w1", memory="1Gi"))
    created = c.store.create(
        VMIMS,
        c.admit(
            "create",
            VMIMS,
            {"metadata": {"name": "m", "namespace": "default"}, "spec": {"vmiName": "web"}},
            None,
            "admin",
        ),
    )
    uid = created["metadata"]["uid"]
    assert c.run_until(
        lambda: (c.store.get(VMIMS, "default", "m").get("status") or {}).get("phase") == "Succeeded",
        timeout_seconds=120,
    )
    assert c.recorder.migration_phases[uid][-1] == "Succeeded"
    c.store.delete(VMIMS, "default", "m")
    c.step(1)
    assert c.store.try_get(VMIMS, "default", "m") is None
    assert c.recorder.migration_phases == {}
    assert c.recorder.running_migrations() == 0
    assert c.recorder.peak_running_migrations == 1 and c.recorder.peak_outbound_per_node == {"w1": 1}
    assert c.recorder.peak_inbound_per_node == {"w2": 1}
