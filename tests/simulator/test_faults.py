"""Scripted faults: API errors and latency, failed and stalled migrations, NotReady nodes, VM deletion."""

from pathlib import Path

import pytest

from vm_rebalance.simulator.builders import node, sim_cluster, vm
from vm_rebalance.simulator.cluster import SimCluster
from vm_rebalance.simulator.faults import FaultInjector, faults_from_document, load_faults

VMS = ("kubevirt.io", "virtualmachines")
VMIS = ("kubevirt.io", "virtualmachineinstances")
VMIMS = ("kubevirt.io", "virtualmachineinstancemigrations")
NODES = ("", "nodes")


def migrate(c: SimCluster, vmi: str, name: str) -> None:
    obj = {"metadata": {"name": name, "namespace": "default"}, "spec": {"vmiName": vmi}}
    c.store.create(VMIMS, c.admit("create", VMIMS, obj, None, "admin") or obj)


def phase(c: SimCluster, name: str) -> str:
    obj = c.store.try_get(VMIMS, "default", name)
    return "" if obj is None else obj.get("status", {}).get("phase", "")


def cluster(*names: str) -> SimCluster:
    vms = []
    for n in names:
        vms += vm(n, node="w1", memory="2Gi")
    return sim_cluster(node("w1"), node("w2"), node("w3"), *vms)


@pytest.mark.parametrize(
    ("code", "reason", "message"),
    [
        pytest.param(
            409,
            "Conflict",
            'Operation cannot be fulfilled on virtualmachines.kubevirt.io "web": the object '
            "has been modified; please apply your changes to the latest version and try "
            "again",
            id="409",
        ),
        pytest.param(429, "TooManyRequests", "Too many requests, please try again later.", id="429"),
        pytest.param(500, "InternalError", "Internal error occurred: injected by the simulator", id="500"),
        pytest.param(503, "ServiceUnavailable", "the server is currently unable to handle the request", id="503"),
        pytest.param(
            504,
            "Timeout",
            "the server was unable to return a response in the time allotted, but may still be processing the request",
            id="504",
        ),
    ],
)
def test_api_errors_carry_kubernetes_reasons(code: int, reason: str, message: str) -> None:
    faults = FaultInjector()
    faults.inject_api_error(code, verbs=["update"], resources=["virtualmachines"], count=1)
    fault = faults.api_fault("update", VMS, "default", "web")
    assert fault is not None
    assert (fault.status_code, fault.reason, fault.message) == (code, reason, message)
    assert faults.api_fault("update", VMS, "default", "web") is None  # count used up


def test_api_fault_selectors() -> None:
    faults = FaultInjector()
    faults.inject_api_error(503, verbs="list", resources=["kubevirt.io/virtualmachines"], namespace="prod")
    assert faults.api_fault("get", VMS, "prod", "a") is None
    assert faults.api_fault("list", VMS, "dev", None) is None
    assert faults.api_fault("list", ("", "pods"), "prod", None) is None
    assert faults.api_fault("list", VMS, "prod", None) is not None


def test_latency_and_hang_faults() -> None:
    faults = FaultInjector()
    faults.inject_latency(0.25, verbs=["get"])
    faults.inject_api_error(None, verbs=["watch"], hang=True)
    slow = faults.api_fault("get", NODES, None, "w1")
    assert slow is not None and slow.status_code is None and slow.latency_seconds == 0.25
    hung = faults.api_fault("watch", NODES, None, None)
    assert hung is not None and hung.hang


def test_probabilistic_faults_are_seeded() -> None:
    def draws(seed: int) -> list[bool]:
        faults = FaultInjector(seed=seed)
        faults.inject_api_error(500, probability=0.3)
        return [faults.api_fault("get", NODES, None, "x") is not None for _ in range(200)]

    first = draws(4)
    assert first == draws(4)
    assert 30 < sum(first) < 90


def test_cluster_api_fault_delegates_to_its_injector() -> None:
    c = sim_cluster(node("w1"))
    c.faults.inject_api_error(429, verbs=["create"], resources=["virtualmachineinstancemigrations"])
    fault = c.api_fault("create", VMIMS, "default", None)
    assert fault is not None and fault.status_code == 429


def test_failed_migration_fault_by_vm_name() -> None:
    c = cluster("web", "db")
    c.faults.fail_migration("default/web")
    migrate(c, "web", "m-web")
    migrate(c, "db", "m-db")
    assert c.run_until(
        lambda: phase(c, "m-web") in ("Succeeded", "Failed") and phase(c, "m-db") in ("Succeeded", "Failed"),
        timeout_seconds=200,
    )
    assert phase(c, "m-web") == "Failed" and phase(c, "m-db") == "Succeeded"
    state = c.store.get(VMIS, "default", "web")["status"]["migrationState"]
    assert state["failed"] is True and "MigrateToURI3" in state["failureReason"]
    assert c.store.get(VMIS, "default", "web")["status"]["nodeName"] == "w1"
    assert len(c.live_launcher_pods(c.store.get(VMIS, "default", "web"))) == 1


def test_next_n_migrations_fail() -> None:
    c = cluster("a", "b", "c")
    c.faults.fail_migration(count=2)
    for n in ("a", "b", "c"):
        migrate(c, n, f"m-{n}")
        assert c.run_until(lambda n=n: phase(c, f"m-{n}") in ("Succeeded", "Failed"), timeout_seconds=200)
    assert [phase(c, f"m-{n}") for n in ("a", "b", "c")] == ["Failed", "Failed", "Succeeded"]


def test_stalled_migration_stays_until_cancelled() -> None:
    c = cluster("web")
    c.faults.stall_migration("web", phase="Running")
    migrate(c, "web", "m1")
    c.step(2000)
    assert phase(c, "m1") == "Running"
    c.store.delete(VMIMS, "default", "m1")
    assert c.run_until(lambda: c.store.try_get(VMIMS, "default", "m1") is None, timeout_seconds=30)


def test_node_not_ready_at_a_time_fails_migrations_from_it_and_blocks_scheduling() -> None:
    c = cluster("web")
    c.faults.node_not_ready("w1", at=5)
    migrate(c, "web", "m1")
    c.step(10)
    node_obj = c.store.get(NODES, None, "w1")
    ready = next(x for x in node_obj["status"]["conditions"] if x["type"] == "Ready")
    assert ready["status"] == "Unknown"
    assert node_obj["metadata"]["labels"]["kubevirt.io/schedulable"] == "false"
    assert phase(c, "m1") == "Failed"
    assert c.store.try_get(("metrics.k8s.io", "nodes"), None, "w1") is None or c.clock.now() < 15


def test_delete_vm_when_its_migration_starts() -> None:
    c = cluster("web")
    c.faults.delete_vm("default/web", when="migrating")
    migrate(c, "web", "m1")
    assert c.run_until(lambda: phase(c, "m1") == "Failed", timeout_seconds=200)
    assert c.run_until(lambda: c.store.try_get(VMS, "default", "web") is None, timeout_seconds=60)
    assert c.recorder.vms_left_stopped() == ["default/web"]


def test_fault_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "faults.yaml"
    path.write_text("""
seed: 3
api:
  - verbs: [patch]
    resources: [virtualmachines]
    code: 409
    count: 1
  - verbs: [list]
    latency: 0.1
migrations:
  - action: fail
    vm: default/web
  - action: stall
    next: 1
nodes:
  - node: w3
    notReadyAt: 50
    readyAt: 100
vms:
  - vm: default/db
    deleteAt: 20
""")
    faults = load_faults(path)
    assert faults.api_fault("patch", VMS, "default", "x").status_code == 409  # type: ignore[union-attr]
    assert faults.api_fault("list", NODES, None, None).latency_seconds == 0.1  # type: ignore[union-attr]
    c = cluster("web", "db", "other")
    c.faults = faults
    c.step(25)
    assert c.store.try_get(VMS, "default", "db") is None or c.store.get(VMS, "default", "db")["metadata"].get(
        "deletionTimestamp"
    )
    c.step(30)
    assert (
        next(x for x in c.store.get(NODES, None, "w3")["status"]["conditions"] if x["type"] == "Ready")["status"]
        == "Unknown"
    )
    c.step(50)
    assert (
        next(x for x in c.store.get(NODES, None, "w3")["status"]["conditions"] if x["type"] == "Ready")["status"]
        == "True"
    )


def test_bad_fault_documents_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown fault sections"):
        faults_from_document({"apis": []})
    with pytest.raises(ValueError, match="fail or stall"):
        faults_from_document({"migrations": [{"action": "explode"}]})
    with pytest.raises(ValueError, match="unknown keys"):
        faults_from_document({"api": [{"verb": "get"}]})
