"""SimCluster as a whole: admission of VMs, the background controller thread, events, the KubeVirt CR."""

import time

import pytest

from vm_rebalance.simulator.builders import node, sim_cluster, vm
from vm_rebalance.simulator.cluster import AdmissionError, SimCluster

VMS = ("kubevirt.io", "virtualmachines")
VMIS = ("kubevirt.io", "virtualmachineinstances")
VMIMS = ("kubevirt.io", "virtualmachineinstancemigrations")


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        pytest.param(
            {"runStrategy": "Always", "running": True},
            "spec.running",
            "Running and RunStrategy are mutually exclusive. Note that Running is deprecated, please use "
            "RunStrategy instead",
            id="both",
        ),
        pytest.param({}, "spec.running", "RunStrategy must be specified", id="neither"),
        pytest.param({"runStrategy": "Sometimes"}, "spec.runStrategy", "Invalid RunStrategy (Sometimes)", id="bad"),
    ],
)
def test_vm_admission_checks_run_strategy(spec: dict, field: str, message: str) -> None:
    c = SimCluster(manual_clock=True)
    obj = {"metadata": {"name": "x", "namespace": "default"}, "spec": spec}
    with pytest.raises(AdmissionError) as exc:
        c.admit("create", VMS, obj, None, "admin")
    assert exc.value.code == 422 and exc.value.reason == "Invalid"
    assert exc.value.webhook == "virtualmachine-validator.kubevirt.io"
    assert exc.value.message == message
    assert exc.value.causes == [{"reason": "FieldValueInvalid", "message": message, "field": field}]


def test_valid_vm_is_admitted_unchanged() -> None:
    c = SimCluster(manual_clock=True)
    assert c.admit("create", VMS, vm("ok")[0], None, "admin") is None


def test_vm_created_through_the_store_starts() -> None:
    c = sim_cluster(node("w1"))
    c.store.create(VMS, vm("new")[0])
    assert c.run_until(
        lambda: c.store.get(VMS, "default", "new")["status"].get("printableStatus") == "Running", timeout_seconds=60
    )
    assert (
        "kubevirt.io/virtualMachineControllerFinalize" in c.store.get(VMS, "default", "new")["metadata"]["finalizers"]
    )


def test_background_thread_runs_a_migration_in_scaled_time() -> None:
    c = SimCluster(time_scale=2000, seed=1)
    c.load_objects([node("w1"), node("w2"), *vm("web", node="w1", memory="1Gi")])
    c.start()
    try:
        obj = {"metadata": {"name": "m1", "namespace": "default"}, "spec": {"vmiName": "web"}}
        c.store.create(VMIMS, c.admit("create", VMIMS, obj, None, "admin") or obj)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if c.store.get(VMIMS, "default", "m1").get("status", {}).get("phase") == "Succeeded":
                break
            time.sleep(0.02)
    finally:
        c.stop()
    assert c.store.get(VMIMS, "default", "m1")["status"]["phase"] == "Succeeded"
    assert c.store.get(VMIS, "default", "web")["status"]["nodeName"] == "w2"
    assert c.controller_errors == []


def test_step_needs_a_manual_clock() -> None:
    with pytest.raises(RuntimeError):
        SimCluster().step(1)


def test_default_namespaces_and_kubevirt_cr() -> None:
    c = sim_cluster(node("w1"))
    names = {n["metadata"]["name"] for n in c.store.list(("", "namespaces"))[0]}
    assert {"default", "kubevirt", "kube-system"} <= names
    cr = c.store.get(("kubevirt.io", "kubevirts"), "kubevirt", "kubevirt")
    assert cr["status"]["observedKubeVirtVersion"] == "v1.6.0"
    assert c.kubevirt_version() == "v1.6.0"


def test_events_are_capped() -> None:
    c = sim_cluster(node("w1"), vm("web", node="w1"))
    vm_obj = c.store.get(VMS, "default", "web")
    for i in range(5100):
        c.emit_event(vm_obj, "Test", f"event {i}")
    assert c.store.count(("", "events")) <= 5000


def test_metrics_noise_is_seeded_and_varies_between_refreshes() -> None:
    def samples(seed: int) -> list[str]:
        c = sim_cluster(node("w1"), vm("web", node="w1", cpus=4, cpu_usage=0.5), seed=seed, metrics_noise=0.1)
        out = []
        for _ in range(3):
            c.step(15)
            out.append(c.store.get(("metrics.k8s.io", "nodes"), None, "w1")["usage"]["cpu"])
        return out

    first = samples(7)
    assert first == samples(7)
    assert len(set(first)) > 1
