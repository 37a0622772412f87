"""The recorder's log and invariant counters."""

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
