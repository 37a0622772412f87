"""Live migration: admission, the phase machine, limits, target selection, cancel, failure, GC."""

from typing import Any

import pytest

from vm_rebalance.simulator.builders import anti_affinity, node, node_affinity, pvc, sim_cluster, vm
from vm_rebalance.simulator.cluster import AdmissionError, SimCluster, SubresourceError

VMS = ("kubevirt.io", "virtualmachines")
VMIS = ("kubevirt.io", "virtualmachineinstances")
VMIMS = ("kubevirt.io", "virtualmachineinstancemigrations")
KUBEVIRTS = ("kubevirt.io", "kubevirts")
PODS = ("", "pods")
EVENTS = ("", "events")


def migrate(c: SimCluster, vmi: str, name: str | None = None, ns: str = "default", **spec: Any) -> dict:
    obj = {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstanceMigration",
        "metadata": {"namespace": ns, **({"name": name} if name else {"generateName": "mig-"})},
        "spec": {"vmiName": vmi, **spec},
    }
    mutated = c.admit("create", VMIMS, obj, None, "admin") or obj
    return c.store.create(VMIMS, mutated)


def phase(c: SimCluster, name: str, ns: str = "default") -> str:
    obj = c.store.try_get(VMIMS, ns, name)
    return "" if obj is None else obj.get("status", {}).get("phase", "")


def done(c: SimCluster, *names: str) -> bool:
    return all(phase(c, n) in ("Succeeded", "Failed") for n in names)


def two_nodes(**vm_kwargs: Any) -> SimCluster:
    return sim_cluster(node("w1"), node("w2"), vm("web", node="w1", **vm_kwargs))


def test_successful_migration_moves_the_vmi_and_records_everything() -> None:
    c = two_nodes(memory="4Gi")
    m = migrate(c, "web", "m1")
    assert m["metadata"]["labels"]["kubevirt.io/vmi-name"] == "web"
    assert m["metadata"]["finalizers"] == ["kubevirt.io/migrationJobFinalize"]
    source_pod = c.live_launcher_pods(c.store.get(VMIS, "default", "web"))[0]["metadata"]["name"]
    assert c.run_until(lambda: done(c, "m1"), timeout_seconds=120)
    final = c.store.get(VMIMS, "default", "m1")
    assert final["status"]["phase"] == "Succeeded"
    assert [p["phase"] for p in final["status"]["phaseTransitionTimestamps"]] == [
        "Pending",
        "Scheduling",
        "Scheduled",
        "PreparingTarget",
        "TargetReady",
        "Running",
        "Succeeded",
    ]
    assert final["metadata"]["finalizers"] == []
    state = final["status"]["migrationState"]
    assert state["sourceNode"] == "w1" and state["targetNode"] == "w2"
    assert state["completed"] is True and state["failed"] is False
    assert state["migrationUid"] == final["metadata"]["uid"]
    assert state["sourcePod"] == source_pod and state["startTimestamp"] <= state["endTimestamp"]
    vmi = c.store.get(VMIS, "default", "web")
    assert vmi["status"]["nodeName"] == "w2"
    assert vmi["metadata"]["labels"]["kubevirt.io/nodeName"] == "w2"
    assert "kubevirt.io/migrationTargetNodeName" not in vmi["metadata"]["labels"]
    assert vmi["status"]["migrationState"] == state
    assert c.store.try_get(PODS, "default", source_pod) is None
    pods = c.live_launcher_pods(vmi)
    assert [p["spec"]["nodeName"] for p in pods] == ["w2"]
    assert c.accounting.usage("w1")[:3] == (0, 0, 0)
    assert any(e["reason"] == "Migrated" for e in c.store.list(EVENTS)[0])
    c.step(1)
    assert c.store.get(VMS, "default", "web")["status"]["printableStatus"] == "Running"


def test_vm_shows_migrating_while_the_transfer_runs() -> None:
    c = two_nodes(memory="8Gi")
    migrate(c, "web", "m1")
    assert c.run_until(lambda: phase(c, "m1") == "Running", timeout_seconds=60)
    c.step(1)
    assert c.store.get(VMS, "default", "web")["status"]["printableStatus"] == "Migrating"


def test_source_frees_its_requests_only_after_success() -> None:
    c = two_nodes(memory="8Gi")
    before_w1 = c.accounting.usage("w1")
    migrate(c, "web", "m1")
    observed = []
    while not done(c, "m1"):
        c.step(0.5)
        observed.append((phase(c, "m1"), c.accounting.usage("w1"), c.accounting.usage("w2")))
        assert c.clock.now() < 200
    for ph, w1, w2 in observed:
        if ph in ("Scheduled", "PreparingTarget", "TargetReady", "Running"):
            assert w1 == before_w1, "the source keeps its requests during the migration"
            assert w2 == before_w1, "the target pod holds the same requests on the target"
    assert c.accounting.usage("w1")[:3] == (0, 0, 0)
    assert c.accounting.usage("w2") == before_w1


def test_twenty_migrations_respect_kubevirt_limits() -> None:
    nodes = [node(f"w{i}", cpu=32, memory_gib=128) for i in range(1, 11)]
    vms = []
    for i in range(20):
        vms += vm(f"vm-{i:02d}", node=f"w{i % 5 + 1}", memory="4Gi")  # sources: w1..w5, 4 VMs each
    c = sim_cluster(*nodes, *vms)
    names = [migrate(c, f"vm-{i:02d}", f"m-{i:02d}")["metadata"]["name"] for i in range(20)]
    c.step(2)
    pending = [n for n in names if phase(c, n) == "Pending"]
    assert len(pending) >= 10, "extra migrations wait Pending"
    assert c.run_until(lambda: done(c, *names), timeout_seconds=1200)
    assert all(phase(c, n) == "Succeeded" for n in names)
    assert c.recorder.peak_running_migrations == 5
    assert max(c.recorder.peak_outbound_per_node.values()) <= 2
    assert c.recorder.capacity_overruns == []
    assert c.recorder.migrations_left_non_final() == []
    assert c.recorder.vms_left_stopped() == []
    for i in range(20):
        vmi = c.store.get(VMIS, "default", f"vm-{i:02d}")
        assert vmi["status"]["nodeName"] != f"w{i % 5 + 1}"


def test_limits_come_from_the_kubevirt_cr() -> None:
    c = sim_cluster(node("w1"), node("w2"), node("w3"), *vm("a", node="w1"), *vm("b", node="w2"))

    def one_at_a_time(o: dict) -> None:
        o["spec"]["configuration"]["migrations"]["parallelMigrationsPerCluster"] = 1

    c.store.mutate(KUBEVIRTS, "kubevirt", "kubevirt", one_at_a_time)
    migrate(c, "a", "ma")
    migrate(c, "b", "mb")
    assert c.run_until(lambda: done(c, "ma", "mb"), timeout_seconds=300)
    assert c.recorder.peak_running_migrations == 1


def test_added_node_selector_picks_the_target_and_vm_wins_collisions() -> None:
    c = sim_cluster(node("w1"), node("w2"), node("w3"), vm("web", node="w1"))
    migrate(c, "web", "m1", addedNodeSelector={"kubernetes.io/hostname": "w3"})
    assert c.run_until(lambda: done(c, "m1"), timeout_seconds=120)
    assert c.store.get(VMIS, "default", "web")["status"]["nodeName"] == "w3"


def test_vm_affinity_constrains_the_target_and_never_the_source() -> None:
    affinity = node_affinity(
        {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["w1", "w3"]}]}
    )
    c = sim_cluster(node("w1"), node("w2"), node("w3"), vm("web", node="w1", affinity=affinity))
    migrate(c, "web", "m1")
    assert c.run_until(lambda: done(c, "m1"), timeout_seconds=120)
    assert c.store.get(VMIS, "default", "web")["status"]["nodeName"] == "w3"


def test_target_pod_has_anti_affinity_against_the_vmi_and_migration_labels() -> None:
    c = two_nodes()
    m = migrate(c, "web", "m1")
    c.step(1)
    vmi_uid = c.store.get(VMIS, "default", "web")["metadata"]["uid"]
    target = next(
        p
        for p in c.store.list(PODS, "default")[0]
        if p["metadata"]["labels"].get("kubevirt.io/migrationJobUID") == m["metadata"]["uid"]
    )
    term = target["spec"]["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][-1]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchExpressions"][0]["values"] == [vmi_uid]
    assert target["metadata"]["annotations"]["kubevirt.io/migrationJobName"] == "m1"


def test_unschedulable_target_fails_after_five_minutes() -> None:
    c = sim_cluster(node("w1"), node("w2", memory_gib=2), vm("web", node="w1"))
    migrate(c, "web", "m1")
    c.step(290)
    assert phase(c, "m1") == "Scheduling"
    c.step(15)
    assert phase(c, "m1") == "Failed"
    assert [p["spec"]["nodeName"] for p in c.live_launcher_pods(c.store.get(VMIS, "default", "web"))] == ["w1"]


def test_high_dirty_rate_fails_after_completion_timeout() -> None:
    c = two_nodes(memory="2Gi", dirty_rate="2Gi")
    migrate(c, "web", "m1")
    assert c.run_until(lambda: phase(c, "m1") == "Running", timeout_seconds=60)
    started = c.clock.now()
    assert c.run_until(lambda: done(c, "m1"), timeout_seconds=1000)
    assert phase(c, "m1") == "Failed"
    assert 299 <= c.clock.now() - started <= 303  # 150 s/GiB × 2 GiB
    state = c.store.get(VMIS, "default", "web")["status"]["migrationState"]
    assert state["failed"] is True and "not completed after 300 sec" in state["failureReason"]
    assert c.store.get(VMIS, "default", "web")["status"]["nodeName"] == "w1"


def test_duration_grows_with_memory_and_dirty_rate() -> None:
    seconds = {}
    for label, kwargs in {
        "small": {"memory": "2Gi", "dirty_rate": "1Mi"},
        "big": {"memory": "32Gi", "dirty_rate": "1Mi"},
        "dirty": {"memory": "32Gi", "dirty_rate": "600Mi"},
    }.items():
        c = sim_cluster(node("w1", memory_gib=128), node("w2", memory_gib=128), vm("web", node="w1", **kwargs))
        migrate(c, "web", "m1")
        assert c.run_until(lambda c=c: done(c, "m1"), timeout_seconds=2000)
        assert phase(c, "m1") == "Succeeded"
        seconds[label] = c.clock.now()
    assert seconds["small"] < seconds["big"] < seconds["dirty"]
    assert 29 <= seconds["big"] - seconds["small"] <= 32  # 30 GiB more at 1 GiB/s


def test_cancel_before_handoff_fails_and_removes_the_migration() -> None:
    c = two_nodes()
    uid = migrate(c, "web", "m1")["metadata"]["uid"]
    c.step(1)
    assert phase(c, "m1") == "Scheduling"
    c.store.delete(VMIMS, "default", "m1")
    assert c.store.get(VMIMS, "default", "m1")["metadata"]["deletionTimestamp"]
    c.step(1)
    assert c.store.try_get(VMIMS, "default", "m1") is None
    (failed,) = c.recorder.entries("migration-failed")
    assert failed.message == "default/m1" and failed.details["reason"] == "Migration failed due to being canceled"
    assert uid not in c.recorder.migration_phases  # the recorder forgets deleted migrations
    assert [p["spec"].get("nodeName") for p in c.live_launcher_pods(c.store.get(VMIS, "default", "web"))] == ["w1"]
    assert any(e["message"] == "Migration failed due to being canceled" for e in c.store.list(EVENTS)[0])


def test_cancel_during_transfer_aborts() -> None:
    c = two_nodes(memory="16Gi")
    migrate(c, "web", "m1")
    assert c.run_until(lambda: phase(c, "m1") == "Running", timeout_seconds=60)
    c.store.delete(VMIMS, "default", "m1")
    c.step(0.5)
    assert c.store.get(VMIS, "default", "web")["status"]["migrationState"]["abortStatus"] == "Aborting"
    assert c.run_until(lambda: c.store.try_get(VMIMS, "default", "m1") is None, timeout_seconds=30)
    state = c.store.get(VMIS, "default", "web")["status"]["migrationState"]
    assert state["abortRequested"] is True and state["abortStatus"] == "Succeeded"
    assert state["failed"] is True and state["completed"] is True
    assert c.store.get(VMIS, "default", "web")["status"]["nodeName"] == "w1"


def test_only_five_finished_migrations_per_vmi_are_kept() -> None:
    c = sim_cluster(node("w1"), node("w2"), vm("web", node="w1", memory="1Gi"))
    for i in range(7):
        migrate(c, "web", f"m{i}")
        assert c.run_until(lambda i=i: done(c, f"m{i}"), timeout_seconds=120)
    left = sorted(m["metadata"]["name"] for m in c.store.list(VMIMS)[0])
    assert left == ["m2", "m3", "m4", "m5", "m6"]
    # The garbage-collected migrations are pruned from the recorder and the controller; the peaks stay.
    live_uids = {m["metadata"]["uid"] for m in c.store.list(VMIMS)[0]}
    assert set(c.recorder.migration_phases) == live_uids
    assert all(phases[-1] == "Succeeded" for phases in c.recorder.migration_phases.values())
    assert set(c.migrations.runs) <= live_uids
    assert c.recorder.peak_running_migrations == 1
    assert c.recorder.peak_outbound_per_node == {"w1": 1, "w2": 1}


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        pytest.param("missing", 'the VMI "default/ghost" does not exist', id="no-vmi"),
        pytest.param(
            "rwo",
            "Cannot migrate VMI, Reason: DisksNotLiveMigratable, Message: cannot migrate VMI: PVC "
            "web-root is not shared, live migration requires that all PVCs must be shared (using "
            "ReadWriteMany access mode)",
            id="not-migratable",
        ),
        pytest.param(
            "in-flight",
            "in-flight migration detected. Active migration job ({uid}) is currently already in progress for VMI web.",
            id="in-flight",
        ),
    ],
)
def test_admission_rejects_with_kubevirt_texts(setup: str, message: str) -> None:
    mode = "ReadWriteOnce" if setup == "rwo" else "ReadWriteMany"
    c = sim_cluster(node("w1"), node("w2"), pvc("web-root", access_mode=mode), vm("web", node="w1", claim="web-root"))
    vmi = "ghost" if setup == "missing" else "web"
    uid = migrate(c, "web", "first")["metadata"]["uid"] if setup == "in-flight" else ""
    with pytest.raises(AdmissionError) as exc:
        migrate(c, vmi, "m2")
    assert exc.value.code == 400
    assert exc.value.webhook == "migration-create-validator.kubevirt.io"
    assert exc.value.message == message.format(uid=uid)


def test_admission_rejects_missing_vmi_name_and_spec_updates() -> None:
    c = two_nodes()
    with pytest.raises(AdmissionError) as exc:
        c.admit("create", VMIMS, {"metadata": {"name": "x", "namespace": "default"}, "spec": {}}, None, "admin")
    assert exc.value.code == 422 and exc.value.message == "vmiName is missing"
    m = migrate(c, "web", "m1")
    changed = {**m, "spec": {"vmiName": "other"}}
    with pytest.raises(AdmissionError) as exc:
        c.admit("update", VMIMS, changed, m, "admin")
    assert exc.value.message == "update of Migration object's spec is restricted"
    assert c.admit("update", VMIMS, m, m, "admin") is None


def test_finalized_vmi_cannot_be_migrated() -> None:
    c = two_nodes()
    c.store.mutate(VMIS, "default", "web", lambda o: o["status"].__setitem__("phase", "Succeeded"))
    with pytest.raises(AdmissionError) as exc:
        migrate(c, "web", "m1")
    assert exc.value.message == "Cannot migrate VMI in finalized state."


def test_vm_placement_change_is_refused_while_migrating() -> None:
    c = two_nodes()
    migrate(c, "web", "m1")
    c.step(1)
    old = c.store.get(VMS, "default", "web")
    new = {
        **old,
        "spec": {
            **old["spec"],
            "template": {
                **old["spec"]["template"],
                "spec": {**old["spec"]["template"]["spec"], "affinity": anti_affinity("app", "x")},
            },
        },
    }
    with pytest.raises(AdmissionError) as exc:
        c.admit("update", VMS, new, old, "admin")
    assert exc.value.code == 422 and "while its VirtualMachineInstance is migrating" in exc.value.message
    assert c.run_until(lambda: done(c, "m1"), timeout_seconds=120)
    assert c.admit("update", VMS, new, c.store.get(VMS, "default", "web"), "admin") is None


def test_migrate_subresource_creates_a_generated_migration() -> None:
    c = sim_cluster(node("w1"), node("w2"), node("w3"), vm("web", node="w1"))
    c.subresource(
        "default", "virtualmachines", "web", "migrate", {"addedNodeSelector": {"kubernetes.io/hostname": "w3"}}, "admin"
    )
    (m,) = c.store.list(VMIMS)[0]
    assert m["metadata"]["name"].startswith("kubevirt-migrate-vm-")
    assert m["spec"] == {"vmiName": "web", "addedNodeSelector": {"kubernetes.io/hostname": "w3"}}
    assert c.run_until(lambda: done(c, m["metadata"]["name"]), timeout_seconds=120)
    assert c.store.get(VMIS, "default", "web")["status"]["nodeName"] == "w3"


def test_migrate_subresource_wraps_webhook_denials_as_internal_error() -> None:
    c = sim_cluster(node("w1"), node("w2"), pvc("r", access_mode="ReadWriteOnce"), vm("web", node="w1", claim="r"))
    with pytest.raises(SubresourceError) as exc:
        c.subresource("default", "virtualmachines", "web", "migrate", None, "admin")
    assert exc.value.code == 500 and exc.value.reason == "InternalError"
    assert exc.value.message.startswith(
        'Internal error occurred: virtualmachineinstancemigrations.kubevirt.io "Unknown" is forbidden: admission '
        'webhook "migration-create-validator.kubevirt.io" denied the request: Cannot migrate VMI, Reason: '
        "DisksNotLiveMigratable"
    )


def test_metrics_follow_the_vm_after_migration() -> None:
    c = sim_cluster(node("w1"), node("w2"), vm("web", node="w1", cpus=8, cpu_usage=0.5))
    c.step(1)
    from vm_rebalance.simulator.quantity import cpu_millicores

    def node_cpu(name: str) -> int:
        return cpu_millicores(c.store.get(("metrics.k8s.io", "nodes"), None, name)["usage"]["cpu"])

    assert node_cpu("w1") > 4000 > node_cpu("w2")
    migrate(c, "web", "m1")
    assert c.run_until(lambda: done(c, "m1"), timeout_seconds=120)
    c.step(16)
    assert node_cpu("w2") > 4000 > node_cpu("w1")
    (pm,) = c.store.list(("metrics.k8s.io", "pods"), "default")[0]
    assert pm["containers"][0]["name"] == "compute"


def test_evacuation_node_name_triggers_an_evacuation_migration() -> None:
    c = two_nodes()
    c.store.mutate(VMIS, "default", "web", lambda o: o["status"].__setitem__("evacuationNodeName", "w1"))
    c.step(1)
    (m,) = c.store.list(VMIMS)[0]
    assert m["metadata"]["name"].startswith("kubevirt-evacuation-")
    assert m["metadata"]["annotations"]["kubevirt.io/evacuationMigration"] == "w1"
    assert c.run_until(lambda: done(c, m["metadata"]["name"]), timeout_seconds=120)
    c.step(1)
    vmi = c.store.get(VMIS, "default", "web")
    assert vmi["status"]["nodeName"] == "w2" and "evacuationNodeName" not in vmi["status"]
    assert len(c.store.list(VMIMS)[0]) == 1
    assert not c.migrations.evacuating and not c.migrations._evacuation_attempts


def test_cordon_adds_and_uncordon_removes_the_unschedulable_taint() -> None:
    c = two_nodes()
    c.store.mutate(("", "nodes"), None, "w2", lambda o: o["spec"].__setitem__("unschedulable", True))
    c.step(0.5)
    taints = c.store.get(("", "nodes"), None, "w2")["spec"]["taints"]
    assert [t["key"] for t in taints] == ["node.kubernetes.io/unschedulable"]
    migrate(c, "web", "m1")
    c.step(30)
    assert phase(c, "m1") == "Scheduling"
    c.store.mutate(("", "nodes"), None, "w2", lambda o: o["spec"].__setitem__("unschedulable", False))
    assert c.run_until(lambda: done(c, "m1"), timeout_seconds=120)
    assert "taints" not in c.store.get(("", "nodes"), None, "w2")["spec"]
    assert phase(c, "m1") == "Succeeded"


def test_deleting_the_target_pod_fails_the_migration() -> None:
    c = two_nodes(memory="16Gi")
    migrate(c, "web", "m1")
    assert c.run_until(lambda: phase(c, "m1") == "Running", timeout_seconds=60)
    target = c.store.get(VMIS, "default", "web")["status"]["migrationState"]["targetPod"]
    c.store.delete(PODS, "default", target)
    c.step(1)
    assert phase(c, "m1") == "Failed"
    assert c.store.get(VMIS, "default", "web")["status"]["nodeName"] == "w1"


def test_coarse_ticks_do_not_stretch_a_migration() -> None:
    c = two_nodes(memory="2Gi", dirty_rate="1Mi")
    migrate(c, "web", "m1")
    c.step(30, tick_seconds=30)
    final = c.store.get(VMIMS, "default", "m1")
    assert final["status"]["phase"] == "Succeeded"
    state = final["status"]["migrationState"]
    assert c.clock.sim_seconds_of(state["endTimestamp"]) <= 30
