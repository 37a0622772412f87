"""Execution end to end on the simulator (real HTTPS API, KubeVirt controllers, simulated time).

Every test ends with the cluster in the planned state and the recorder's invariants: limits
never exceeded (KubeVirt's running count and our own in-flight count), no capacity overrun,
no VM left stopped, no migration left unfinished, no unexpected pin.
"""

from pathlib import Path

import pytest

from executor.simhelpers import add_vm, cluster_objects, simulator
from vm_rebalance import service
from vm_rebalance.executor.events import MoveStatus
from vm_rebalance.executor.kubevirt import PIN_ANNOTATION, existing_node_pin
from vm_rebalance.executor.runners import ExecutionOptions
from vm_rebalance.planner import ManualMoveRequest, plan_manual_moves

pytestmark = pytest.mark.e2e
FAST = ExecutionOptions(poll_interval_seconds=0.05)


def execute(sim, tmp_path: Path, requests: list[tuple[str, str, str]], options: ExecutionOptions = FAST):
    session = service.Session.open(service.Target(kubeconfig=str(sim.kubeconfig)))
    try:
        plan = plan_manual_moves(
            session.state, [ManualMoveRequest("default", vm, node, method) for vm, node, method in requests]
        )
        assert len(plan.moves) == len(requests), plan.warnings
        return plan, service.execute_plan(session, plan, options=options, journal_dir=tmp_path / "journals")
    finally:
        session.close()


def test_live_move(tmp_path: Path) -> None:
    objs = cluster_objects()
    add_vm(objs, "db", "w1", storage="rwx", memory="4Gi")
    with simulator(tmp_path, objs) as sim:
        plan, result = execute(sim, tmp_path, [("db", "w2", "auto")])
        assert plan.moves[0].method.value == "live"
        assert result.complete and sim.node_of("db") == "w2" and sim.running("db")
        (mig,) = sim.migrations()
        assert mig["spec"]["addedNodeSelector"] == {"kubernetes.io/hostname": "w2"}
        assert mig["status"]["phase"] == "Succeeded"
        assert result.after is not None and {v.name: v.node for v in result.after.vms}["db"] == "w2"
        sim.assert_clean()


def test_cold_move_rwo(tmp_path: Path) -> None:
    objs = cluster_objects()
    add_vm(objs, "web", "w1", storage="rwo")
    with simulator(tmp_path, objs) as sim:
        plan, result = execute(sim, tmp_path, [("web", "w3", "auto")])
        assert plan.moves[0].method.value == "cold"
        (outcome,) = result.outcomes
        assert outcome.ok and outcome.pinned and outcome.final_node == "w3"
        assert sim.node_of("web") == "w3" and sim.running("web")
        vm = sim.vm("web")
        assert vm["spec"]["runStrategy"] == "Always"
        assert existing_node_pin(vm) == ["w3"] and vm["metadata"]["annotations"][PIN_ANNOTATION] == "w3"
        assert sim.migrations() == []
        sim.assert_clean(pinned=("web",))
        session = service.Session.open(service.Target(kubeconfig=str(sim.kubeconfig)))
        try:
            assert service.unpin(session, "default", "web") is True
            assert service.unpin(session, "default", "web") is False
        finally:
            session.close()
        assert sim.running("web") and sim.node_of("web") == "w3"
        sim.assert_clean()


def test_stopped_vm_is_only_pinned(tmp_path: Path) -> None:
    objs = cluster_objects()
    add_vm(objs, "off", None)
    with simulator(tmp_path, objs) as sim:
        _, result = execute(sim, tmp_path, [("off", "w2", "auto")])
        assert result.complete and result.outcomes[0].pinned
        assert sim.vmi("off") is None and sim.vm("off")["spec"]["runStrategy"] == "Halted"
        assert existing_node_pin(sim.vm("off")) == ["w2"]
        sim.assert_clean(pinned=("off",))


def test_forty_moves_within_the_limits(tmp_path: Path) -> None:
    objs = cluster_objects(12, memory="512Gi")
    requests = []
    for i in range(40):
        src = f"w{1 + i % 8}"
        add_vm(objs, f"vm{i:02d}", src, memory=f"{8 + 4 * (i % 4)}Gi")
        requests.append((f"vm{i:02d}", f"w{9 + i % 4}", "live"))
    # Migrations of 8-20 GiB take 15-30 simulated seconds: long enough at 40x for the executor
    # (a few API round trips per tick) to fill every slot.
    with simulator(tmp_path, objs, time_scale=40) as sim:
        _plan, result = execute(sim, tmp_path, requests)
        assert result.complete, [o.error for o in result.outcomes if not o.ok]
        for vm, node, _ in requests:
            assert sim.node_of(vm) == node
        assert len(sim.inflight.created) == 40  # nothing moved twice
        # Never above the limit; and the executor does run moves side by side (exactly 5 at the peak
        # depends on wall-clock timing under load, so the efficiency goal lives in the benchmark).
        assert 3 <= sim.inflight.peak_total <= 5
        sim.assert_clean()


def test_kubevirt_before_1_6_steers_with_a_temporary_affinity(tmp_path: Path) -> None:
    objs = cluster_objects(version="v1.5.0")
    add_vm(
        objs,
        "db",
        "w1",
        storage="rwx",
        affinity={
            "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 1,
                        "podAffinityTerm": {
                            "labelSelector": {"matchLabels": {"app": "x"}},
                            "topologyKey": "kubernetes.io/hostname",
                        },
                    }
                ]
            }
        },
    )
    with simulator(tmp_path, objs) as sim:
        original = sim.vm("db")["spec"]["template"]["spec"]["affinity"]
        affinity_seen: list[list[str]] = []
        sim.cluster.store.subscribe(
            lambda e: (
                affinity_seen.append(existing_node_pin(e.obj)) if e.key == ("kubevirt.io", "virtualmachines") else None
            )
        )
        _, result = execute(sim, tmp_path, [("db", "w3", "live")])
        assert result.complete and sim.node_of("db") == "w3"
        (mig,) = sim.migrations()
        assert "addedNodeSelector" not in mig["spec"]  # steered by the VM's affinity
        assert ["w3"] in affinity_seen  # the temporary pin was there during the migration ...
        vm = sim.vm("db")
        assert vm["spec"]["template"]["spec"]["affinity"] == original  # ... and is gone, other terms kept
        sim.assert_clean()


def test_conflict_on_vm_patch_is_retried_with_a_fresh_read(tmp_path: Path) -> None:
    objs = cluster_objects()
    add_vm(objs, "web", "w1", storage="rwo")
    with simulator(tmp_path, objs) as sim:
        sim.cluster.faults.inject_api_error(409, verbs=["patch"], resources=["virtualmachines"], count=2)
        _, result = execute(sim, tmp_path, [("web", "w2", "cold")])
        assert result.complete and sim.node_of("web") == "w2"
        sim.assert_clean(pinned=("web",))


def test_concurrent_update_is_never_overwritten(tmp_path: Path) -> None:
    """Another writer changes the VM between our read and our write: its change survives."""
    objs = cluster_objects()
    add_vm(objs, "web", "w1", storage="rwo")
    with simulator(tmp_path, objs) as sim:
        from vm_rebalance.executor.kubevirt import KubeVirtApi, affinity_ops, pinned_affinity
        from vm_rebalance.kube.client import KubeClient

        with KubeClient.from_kubeconfig(str(sim.kubeconfig)) as client:
            api = KubeVirtApi(client)
            calls = {"n": 0}

            def edit(vm):
                calls["n"] += 1
                if calls["n"] == 1:  # a concurrent update lands after our read
                    sim.cluster.store.mutate(
                        ("kubevirt.io", "virtualmachines"),
                        "default",
                        "web",
                        lambda o: o["metadata"].setdefault("labels", {}).update(team="b"),
                    )
                return affinity_ops(vm, pinned_affinity(vm, "w2"))

            api.update_vm("default", "web", edit)
        vm = sim.vm("web")
        assert calls["n"] == 2 and vm["metadata"]["labels"]["team"] == "b" and existing_node_pin(vm) == ["w2"]


def test_failed_migration_stops_the_batch_then_retry_and_retry_cold(tmp_path: Path) -> None:
    objs = cluster_objects(4)
    for i, mem in enumerate(("1Gi", "2Gi", "3Gi", "4Gi", "5Gi", "6Gi")):
        add_vm(objs, f"v{i}", f"w{1 + i % 2}", memory=mem)
    with simulator(tmp_path, objs) as sim:
        sim.cluster.faults.fail_migration("v1")
        session = service.Session.open(service.Target(kubeconfig=str(sim.kubeconfig)))
        try:
            plan = plan_manual_moves(
                session.state, [ManualMoveRequest("default", f"v{i}", f"w{3 + i % 2}", "live") for i in range(6)]
            )
            opts = ExecutionOptions(poll_interval_seconds=0.05)
            result = service.execute_plan(session, plan, options=opts, journal_dir=tmp_path / "j")
            status = {o.move.vm: o.status for o in result.outcomes}
            assert status["v1"] is MoveStatus.FAILED
            assert MoveStatus.NOT_ATTEMPTED in status.values() and MoveStatus.SUCCEEDED in status.values()
            started = set(sim.inflight.created)
            assert len(started) < 6
            for o in result.outcomes:
                expected = o.move.target if o.ok else o.move.source
                assert sim.node_of(o.move.vm) == expected
            assert sim.cluster.recorder.migrations_left_non_final() == []

            # retry: the same journal, the failed move gets attempt 2 (a new migration name)
            sim.cluster.faults.fail_migration("v1")  # fails again ...
            again = service.execute_plan(session, plan, options=opts, journal_dir=tmp_path / "j", fresh=False)
            assert {o.move.vm: o.status for o in again.outcomes}["v1"] is MoveStatus.FAILED
            names = [n for n in sim.inflight.created if n.endswith("-2")]
            assert len(names) == 1
            # ... so retry it cold, as the failure prompt's "retry cold" does
            import dataclasses

            from vm_rebalance.model import MigrationMethod

            cold = dataclasses.replace(
                plan,
                moves=tuple(
                    dataclasses.replace(m, method=MigrationMethod.COLD) if m.vm == "v1" else m for m in plan.moves
                ),
            )
            # the same journal (the approved plan's), as carry_out does
            final = session.executor(plan, options=opts, journal_dir=tmp_path / "j", fresh=False).run(cold)
        finally:
            session.close()
        assert all(o.ok for o in final), [o.error for o in final]
        assert {o.move.vm: o.move.method.value for o in final}["v1"] == "cold"
        for o in final:
            assert sim.node_of(o.move.vm) == o.move.target
        moved = [n.split("-")[2] for n in sim.inflight.created]
        assert len(moved) == len(set(sim.inflight.created))
        sim.assert_clean(pinned=("v1",))
