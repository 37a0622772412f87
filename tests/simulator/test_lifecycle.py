"""VM runStrategy → VMI lifecycle, the virt-launcher pod, printableStatus, lifecycle subresources."""

import pytest

from vm_rebalance.simulator.builders import node, pvc, sim_cluster, vm
from vm_rebalance.simulator.cluster import SimCluster, SubresourceError

VMS = ("kubevirt.io", "virtualmachines")
VMIS = ("kubevirt.io", "virtualmachineinstances")
PODS = ("", "pods")
EVENTS = ("", "events")


def status(c: SimCluster, name: str, ns: str = "default") -> str:
    return c.store.get(VMS, ns, name)["status"].get("printableStatus", "")


def watch_statuses(c: SimCluster, name: str, seconds: float) -> list[str]:
    seen = [status(c, name)]
    for _ in range(int(seconds * 2)):
        c.step(0.5)
        current = status(c, name)
        if current != seen[-1]:
            seen.append(current)
    return seen


def launcher_pods(c: SimCluster, name: str) -> list[dict]:
    return [p for p in c.store.list(PODS, "default")[0] if p["metadata"]["labels"].get("vm.kubevirt.io/name") == name]


def test_start_subresource_runs_halted_vm_through_starting() -> None:
    c = sim_cluster(node("w1"), vm("web", run_strategy="Halted", cpus=4, memory="4Gi"))
    c.step(1)
    assert status(c, "web") == "Stopped"
    c.subresource("default", "virtualmachines", "web", "start", None, "admin")
    assert c.store.get(VMS, "default", "web")["spec"]["runStrategy"] == "Always"
    seen = watch_statuses(c, "web", 30)
    assert seen == ["Stopped", "Starting", "Running"]
    running_at = next(e.time for e in c.recorder.entries("vmi-running"))
    assert 10 <= running_at <= 22
    vmi = c.store.get(VMIS, "default", "web")
    assert vmi["status"]["phase"] == "Running"
    assert vmi["status"]["nodeName"] == "w1"
    assert vmi["metadata"]["labels"]["kubevirt.io/nodeName"] == "w1"
    owner = vmi["metadata"]["ownerReferences"][0]
    assert owner["kind"] == "VirtualMachine" and owner["name"] == "web" and owner["controller"] is True
    phases = [p["phase"] for p in vmi["status"]["phaseTransitionTimestamps"]]
    assert phases == ["Scheduling", "Scheduled", "Running"]
    assert {c_["type"]: c_["status"] for c_ in vmi["status"]["conditions"]}["LiveMigratable"] == "True"
    vm_status = c.store.get(VMS, "default", "web")["status"]
    assert vm_status["ready"] is True and vm_status["created"] is True


def test_launcher_pod_labels_and_requests_follow_kubevirt() -> None:
    c = sim_cluster(node("w1"), vm("web", cpus=4, memory="4Gi", node_selector={"disk": "ssd"}, run_strategy="Halted"))
    c.store.mutate(("", "nodes"), None, "w1", lambda o: o["metadata"]["labels"].update({"disk": "ssd"}))
    c.subresource("default", "virtualmachines", "web", "start", None, "admin")
    c.step(30)
    vmi = c.store.get(VMIS, "default", "web")
    (pod,) = launcher_pods(c, "web")
    assert pod["metadata"]["name"].startswith("virt-launcher-web-")
    labels = pod["metadata"]["labels"]
    assert labels["kubevirt.io"] == "virt-launcher"
    assert labels["kubevirt.io/created-by"] == vmi["metadata"]["uid"]
    requests = pod["spec"]["containers"][0]["resources"]["requests"]
    assert requests["cpu"] == "400m"
    assert requests["devices.kubevirt.io/kvm"] == "1"
    # 4Gi guest + 4Gi/512 page tables + 240Mi fixed + 4×8Mi vCPUs + 8Mi IOThread + 32Mi video
    expected = 4 * 2**30 + 4 * 2**30 // 512 + (240 + 32 + 8 + 32) * 2**20
    from vm_rebalance.simulator.quantity import memory_bytes

    assert memory_bytes(requests["memory"]) == expected
    assert pod["spec"]["nodeSelector"] == {"disk": "ssd", "kubevirt.io/schedulable": "true"}
    assert pod["spec"]["nodeName"] == "w1" and pod["status"]["phase"] == "Running"
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "VirtualMachineInstance"


def test_stop_subresource_on_always_vm_halts_it() -> None:
    c = sim_cluster(node("w1"), vm("web", node="w1"))
    c.step(1)
    assert status(c, "web") == "Running"
    c.subresource("default", "virtualmachines", "web", "stop", None, "admin")
    assert c.store.get(VMS, "default", "web")["spec"]["runStrategy"] == "Halted"
    seen = watch_statuses(c, "web", 20)
    assert seen == ["Running", "Stopping", "Stopped"]
    assert c.store.try_get(VMIS, "default", "web") is None
    assert launcher_pods(c, "web") == []
    assert c.accounting.usage("w1")[0] == 0
    stopped_at = next(e.time for e in c.recorder.entries("vmi-stopped"))
    assert 5 <= stopped_at - 1 <= 11


def test_restart_always_vm_creates_a_new_vmi_and_keeps_strategy() -> None:
    c = sim_cluster(node("w1"), vm("web", node="w1"))
    c.step(1)
    old_uid = c.store.get(VMIS, "default", "web")["metadata"]["uid"]
    c.subresource("default", "virtualmachines", "web", "restart", None, "admin")
    assert [r["action"] for r in c.store.get(VMS, "default", "web")["status"]["stateChangeRequests"]] == [
        "Stop",
        "Start",
    ]
    assert c.run_until(
        lambda: (
            (c.store.try_get(VMIS, "default", "web") or {}).get("metadata", {}).get("uid") not in (None, old_uid)
            and status(c, "web") == "Running"
        ),
        timeout_seconds=60,
    )
    vm_obj = c.store.get(VMS, "default", "web")
    assert vm_obj["spec"]["runStrategy"] == "Always"
    assert not vm_obj["status"].get("stateChangeRequests")


def test_manual_strategy_uses_state_change_requests() -> None:
    c = sim_cluster(node("w1"), vm("job", run_strategy="Manual"))
    c.step(1)
    assert status(c, "job") == "Stopped"
    c.subresource("default", "virtualmachines", "job", "start", None, "admin")
    assert c.run_until(lambda: status(c, "job") == "Running", timeout_seconds=40)
    assert c.store.get(VMS, "default", "job")["spec"]["runStrategy"] == "Manual"
    c.subresource("default", "virtualmachines", "job", "stop", None, "admin")
    assert c.run_until(lambda: status(c, "job") == "Stopped", timeout_seconds=40)
    assert c.store.try_get(VMIS, "default", "job") is None


def test_spec_running_true_is_always() -> None:
    objs = vm("old", run_strategy="Always")
    del objs[0]["spec"]["runStrategy"]
    objs[0]["spec"]["running"] = False
    c = sim_cluster(node("w1"), objs)
    c.subresource("default", "virtualmachines", "old", "start", None, "admin")
    assert c.store.get(VMS, "default", "old")["spec"]["running"] is True
    assert c.run_until(lambda: status(c, "old") == "Running", timeout_seconds=40)


@pytest.mark.parametrize(
    ("strategy", "running", "action", "body", "code", "message"),
    [
        pytest.param("Always", True, "start", None, 409, "VM is already running", id="start-running"),
        pytest.param("Manual", False, "stop", None, 409, "VM is not running", id="stop-manual-stopped"),
        pytest.param(
            "Halted",
            False,
            "restart",
            None,
            409,
            "RunStategy Halted does not support manual restart requests",
            id="restart-halted",
        ),
        pytest.param("Manual", False, "restart", None, 409, "VM is not running: Halted", id="restart-no-vmi"),
        pytest.param(
            "Always",
            True,
            "restart",
            {"gracePeriodSeconds": 5},
            400,
            "For force restart, only gracePeriod=0 is supported for now",
            id="restart-grace",
        ),
        pytest.param("Halted", False, "migrate", None, 409, "VM is not running", id="migrate-stopped"),
        pytest.param("Once", False, "start", None, 409, "Once does not support manual start requests", id="start-once"),
    ],
)
def test_subresource_errors_use_virt_api_texts(
    strategy: str, running: bool, action: str, body: dict | None, code: int, message: str
) -> None:
    c = sim_cluster(node("w1"), vm("web", run_strategy=strategy, node="w1" if running else None))
    if strategy == "Once":
        c.step(30)  # Once ran already (loaded VMs count as started); make it finish by deleting the VMI
    c.step(1)
    with pytest.raises(SubresourceError) as exc:
        c.subresource("default", "virtualmachines", "web", action, body, "admin")
    assert exc.value.code == code
    if code == 409:
        assert exc.value.reason == "Conflict"
        assert exc.value.message == f'Operation cannot be fulfilled on virtualmachine.kubevirt.io "web": {message}'
    else:
        assert exc.value.message == message


def test_subresource_on_missing_vm_is_404_with_singular_resource() -> None:
    c = sim_cluster(node("w1"))
    with pytest.raises(SubresourceError) as exc:
        c.subresource("default", "virtualmachines", "nope", "start", None, "admin")
    assert exc.value.code == 404
    assert exc.value.message == 'virtualmachine.kubevirt.io "nope" not found'


def test_second_start_request_while_one_is_pending_is_refused() -> None:
    c = sim_cluster(node("w1"), vm("job", run_strategy="Manual"))
    c.subresource("default", "virtualmachines", "job", "start", None, "admin")
    with pytest.raises(SubresourceError) as exc:
        c.subresource("default", "virtualmachines", "job", "start", None, "admin")
    assert "stop/start already underway" in exc.value.message


def test_dry_run_changes_nothing() -> None:
    c = sim_cluster(node("w1"), vm("web", run_strategy="Halted"))
    c.subresource("default", "virtualmachines", "web", "start", {"dryRun": ["All"]}, "admin")
    assert c.store.get(VMS, "default", "web")["spec"]["runStrategy"] == "Halted"


def test_rwo_pvc_makes_vmi_not_live_migratable_with_kubevirt_message() -> None:
    c = sim_cluster(node("w1"), pvc("db-root", access_mode="ReadWriteOnce"), vm("db", claim="db-root", node="w1"))
    vmi = c.store.get(VMIS, "default", "db")
    cond = next(x for x in vmi["status"]["conditions"] if x["type"] == "LiveMigratable")
    assert cond["status"] == "False"
    assert cond["reason"] == "DisksNotLiveMigratable"
    assert cond["message"] == (
        "cannot migrate VMI: PVC db-root is not shared, live migration requires that all "
        "PVCs must be shared (using ReadWriteMany access mode)"
    )
    c.step(1)
    vm_conds = {x["type"]: x for x in c.store.get(VMS, "default", "db")["status"]["conditions"]}
    assert vm_conds["LiveMigratable"]["status"] == "False"


def test_deleting_a_vm_stops_its_vmi_then_removes_it() -> None:
    c = sim_cluster(node("w1"), vm("web", node="w1"))
    c.step(1)
    c.store.delete(VMS, "default", "web")
    c.step(1)
    assert status(c, "web") == "Terminating"
    assert c.run_until(lambda: c.store.try_get(VMS, "default", "web") is None, timeout_seconds=30)
    assert c.store.try_get(VMIS, "default", "web") is None
    assert launcher_pods(c, "web") == []


def test_always_vm_respawns_when_its_launcher_pod_disappears() -> None:
    c = sim_cluster(node("w1"), vm("web", node="w1"))
    c.step(1)
    old_uid = c.store.get(VMIS, "default", "web")["metadata"]["uid"]
    (pod,) = launcher_pods(c, "web")
    c.store.delete(PODS, "default", pod["metadata"]["name"])
    assert c.run_until(
        lambda: (
            c.store.try_get(VMIS, "default", "web") is not None
            and c.store.get(VMIS, "default", "web")["metadata"]["uid"] != old_uid
            and status(c, "web") == "Running"
        ),
        timeout_seconds=60,
    )


def test_instancetype_sizes_the_launcher_pod() -> None:
    instancetype = {
        "apiVersion": "instancetype.kubevirt.io/v1beta1",
        "kind": "VirtualMachineClusterInstancetype",
        "metadata": {"name": "u1.xlarge"},
        "spec": {"cpu": {"guest": 4}, "memory": {"guest": "16Gi"}},
    }
    c = sim_cluster(node("w1"), instancetype, vm("big", instancetype="u1.xlarge", run_strategy="Halted"))
    c.subresource("default", "virtualmachines", "big", "start", None, "admin")
    assert c.run_until(lambda: status(c, "big") == "Running", timeout_seconds=40)
    (pod,) = launcher_pods(c, "big")
    assert pod["spec"]["containers"][0]["resources"]["requests"]["cpu"] == "400m"
    assert c.store.get(VMIS, "default", "big")["spec"]["domain"]["memory"]["guest"] == "16Gi"


def test_vm_placement_change_propagates_to_running_vmi() -> None:
    c = sim_cluster(node("w1"), vm("web", node="w1"))
    c.step(1)

    def pin(o: dict) -> None:
        o["spec"]["template"]["spec"]["nodeSelector"] = {"kubernetes.io/hostname": "w1"}

    c.store.mutate(VMS, "default", "web", pin)
    c.step(1)
    assert c.store.get(VMIS, "default", "web")["spec"]["nodeSelector"] == {"kubernetes.io/hostname": "w1"}


def test_events_record_start() -> None:
    c = sim_cluster(node("w1"), vm("web", run_strategy="Halted"))
    c.subresource("default", "virtualmachines", "web", "start", None, "admin")
    c.step(30)
    reasons = {e["reason"] for e in c.store.list(EVENTS)[0]}
    assert {"SuccessfulCreate", "Scheduled", "Started"} <= reasons


def test_coarse_ticks_do_not_stretch_a_start() -> None:
    c = sim_cluster(node("w1"), vm("web", run_strategy="Halted"))
    c.subresource("default", "virtualmachines", "web", "start", None, "admin")
    c.step(30, tick_seconds=30)
    assert status(c, "web") == "Running"
