"""The faults the fault matrix (shared/fault-matrix.md) needs, each through the simulator: ambiguous writes,
subresource-specific errors, 429 with Retry-After, API outage windows, closed and expired watches,
cordoned / tainted / NotReady targets at a moment or when a migration starts, stuck, unschedulable,
quota-rejected, vanishing and crashing migrations, foreign migrations, evacuations, VMIs deleted
mid-migration, starts that never reach Running, and addedNodeSelector on KubeVirt < 1.6."""

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from vm_rebalance.simulator.app import create_app
from vm_rebalance.simulator.builders import node, sim_cluster, vm
from vm_rebalance.simulator.cluster import SimCluster
from vm_rebalance.simulator.faults import faults_from_document

VMS = ("kubevirt.io", "virtualmachines")
VMIS = ("kubevirt.io", "virtualmachineinstances")
VMIMS = ("kubevirt.io", "virtualmachineinstancemigrations")
NODES = ("", "nodes")
KV = "/apis/kubevirt.io/v1/namespaces/default"
ALREADY_RUNNING = 'Operation cannot be fulfilled on virtualmachine.kubevirt.io "web": VM is already running'
SUB = "/apis/subresources.kubevirt.io/v1/namespaces/default/virtualmachines"


def cluster(*names: str, nodes: int = 3) -> SimCluster:
    objects = [node(f"w{i}") for i in range(1, nodes + 1)]
    for n in names:
        objects += vm(n, node="w1", memory="2Gi")
    return sim_cluster(*objects)


def migrate(c: SimCluster, vmi: str, name: str, target: str | None = None) -> None:
    obj = {"metadata": {"name": name, "namespace": "default"}, "spec": {"vmiName": vmi}}
    if target:
        obj["spec"]["addedNodeSelector"] = {"kubernetes.io/hostname": target}
    c.store.create(VMIMS, c.admit("create", VMIMS, obj, None, "admin") or obj)


def phase(c: SimCluster, name: str) -> str:
    obj = c.store.try_get(VMIMS, "default", name)
    return "" if obj is None else (obj.get("status") or {}).get("phase", "")


def ready(c: SimCluster, name: str) -> str:
    conds = c.store.get(NODES, None, name)["status"]["conditions"]
    return next(x["status"] for x in conds if x["type"] == "Ready")


def apply(c: SimCluster, doc: dict[str, object]) -> None:
    c.faults = faults_from_document(doc)


@pytest.fixture
async def api() -> AsyncIterator[tuple[SimCluster, httpx.AsyncClient]]:
    c = cluster("web", "db")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(c)), base_url="http://sim") as client:
        yield c, client


# -- API faults -----------------------------------------------------------------------------------------------


async def test_ambiguous_create_happens_but_the_client_gets_an_error(
    api: tuple[SimCluster, httpx.AsyncClient],
) -> None:
    c, client = api
    apply(
        c,
        {
            "api": [
                {
                    "verbs": ["create"],
                    "resources": ["virtualmachineinstancemigrations"],
                    "code": 504,
                    "afterCommit": True,
                    "count": 1,
                }
            ]
        },
    )
    body = {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstanceMigration",
        "metadata": {"name": "m1"},
        "spec": {"vmiName": "web"},
    }
    r = await client.post(f"{KV}/virtualmachineinstancemigrations", json=body)
    assert r.status_code == 504 and r.json()["reason"] == "Timeout"
    assert c.store.try_get(VMIMS, "default", "m1") is not None  # it was created all the same
    r = await client.post(f"{KV}/virtualmachineinstancemigrations", json={**body, "metadata": {"name": "m2"}})
    assert r.status_code == 400 and "in-flight migration detected" in r.json()["message"]


async def test_subresource_selector_and_kubevirt_wording(api: tuple[SimCluster, httpx.AsyncClient]) -> None:
    c, client = api
    apply(
        c,
        {
            "api": [
                {
                    "subresource": "start",
                    "resources": ["subresources.kubevirt.io/virtualmachines"],
                    "code": 409,
                    "message": ALREADY_RUNNING,
                    "count": 1,
                }
            ]
        },
    )
    r = await client.put(f"{SUB}/web/start", json={})
    assert r.status_code == 409 and r.json()["message"].endswith("VM is already running")
    r = await client.put(f"{SUB}/web/stop", json={})
    assert r.status_code == 202  # the stop is not selected


async def test_429_burst_with_retry_after(api: tuple[SimCluster, httpx.AsyncClient]) -> None:
    c, client = api
    apply(
        c, {"api": [{"verbs": ["patch"], "resources": ["virtualmachines"], "code": 429, "retryAfter": 7, "count": 3}]}
    )
    patch = {"metadata": {"labels": {"x": "y"}}}
    headers = {"Content-Type": "application/merge-patch+json"}
    codes = [(await client.patch(f"{KV}/virtualmachines/web", json=patch, headers=headers)) for _ in range(4)]
    assert [r.status_code for r in codes] == [429, 429, 429, 200]
    assert codes[0].headers["retry-after"] == "7" and codes[0].json()["details"]["retryAfterSeconds"] == 7


async def test_409_conflicts_on_vm_patches_then_success(api: tuple[SimCluster, httpx.AsyncClient]) -> None:
    c, client = api
    apply(
        c,
        {
            "api": [
                {
                    "verbs": ["patch"],
                    "resources": ["kubevirt.io/virtualmachines"],
                    "name": "web",
                    "code": 409,
                    "count": 2,
                }
            ]
        },
    )
    headers = {"Content-Type": "application/merge-patch+json"}
    codes = [
        (await client.patch(f"{KV}/virtualmachines/web", json={"spec": {}}, headers=headers)).status_code
        for _ in range(3)
    ]
    assert codes == [409, 409, 200]


async def test_api_outage_window(api: tuple[SimCluster, httpx.AsyncClient]) -> None:
    c, client = api
    apply(c, {"api": [{"code": 503, "from": 10, "until": 20}]})
    assert (await client.get(f"{KV}/virtualmachines")).status_code == 200
    c.step(12)
    r = await client.get(f"{KV}/virtualmachines")
    assert r.status_code == 503 and r.json()["reason"] == "ServiceUnavailable"
    c.step(10)
    assert (await client.get(f"{KV}/virtualmachines")).status_code == 200


async def test_failing_vmi_gets_while_migrations_succeed(api: tuple[SimCluster, httpx.AsyncClient]) -> None:
    c, client = api
    apply(c, {"api": [{"verbs": ["get", "list"], "resources": ["virtualmachineinstances"], "code": 500}]})
    assert (await client.get(f"{KV}/virtualmachineinstances/web")).status_code == 500
    migrate(c, "web", "m1")
    assert c.run_until(lambda: phase(c, "m1") == "Succeeded", timeout_seconds=300)
    assert (await client.get(f"{KV}/virtualmachineinstancemigrations/m1")).json()["status"]["phase"] == "Succeeded"


async def watch_lines(client: httpx.AsyncClient, path: str) -> list[dict[str, object]]:
    out = []
    async with client.stream("GET", path) as r:
        async for line in r.aiter_lines():
            if line:
                out.append(json.loads(line))
    return out


async def test_watches_closed_after_some_events_or_expired(api: tuple[SimCluster, httpx.AsyncClient]) -> None:
    c, client = api
    apply(
        c,
        {
            "watches": [
                {"resources": ["virtualmachines"], "action": "close", "afterEvents": 1, "count": 1},
                {"resources": ["virtualmachines"], "action": "expire", "count": 1},
                {"resources": ["nodes"], "action": "close", "afterSeconds": 0.2},
            ]
        },
    )
    first = await watch_lines(client, f"{KV}/virtualmachines?watch=true&timeoutSeconds=30")
    assert [e["type"] for e in first] == ["ADDED"]  # closed after one event, long before the timeout
    second = await watch_lines(client, f"{KV}/virtualmachines?watch=true&timeoutSeconds=30")
    assert [e["type"] for e in second] == ["ERROR"]
    assert second[0]["object"]["code"] == 410 and second[0]["object"]["reason"] == "Expired"  # type: ignore[index]
    third = await watch_lines(client, f"{KV}/virtualmachines?watch=true&timeoutSeconds=1")
    assert {e["type"] for e in third} == {"ADDED"} and len(third) == 2  # the rules are used up
    nodes = await watch_lines(client, "/api/v1/nodes?watch=true&timeoutSeconds=30")
    assert len(nodes) == 3  # the initial events, then closed after 0.2 s


# -- nodes ----------------------------------------------------------------------------------------------------


def test_target_cordoned_unschedulable_and_tainted_at_given_moments() -> None:
    c = cluster("web")
    apply(
        c,
        {
            "nodes": [
                {"node": "w2", "cordonAt": 5, "uncordonAt": 30},
                {
                    "node": "w3",
                    "unschedulableAt": 5,
                    "taintAt": 6,
                    "taint": {"key": "maintenance", "value": "yes", "effect": "NoSchedule"},
                },
            ]
        },
    )
    c.step(10)
    w2 = c.store.get(NODES, None, "w2")
    assert w2["spec"]["unschedulable"] is True
    assert any(t["key"] == "node.kubernetes.io/unschedulable" for t in w2["spec"]["taints"])
    w3 = c.store.get(NODES, None, "w3")
    assert w3["metadata"]["labels"]["kubevirt.io/schedulable"] == "false"
    assert any(t["key"] == "maintenance" and t["effect"] == "NoSchedule" for t in w3["spec"]["taints"])
    migrate(c, "web", "m1", target="w2")  # the only target is cordoned: the target pod cannot schedule
    c.step(10)
    assert phase(c, "m1") == "Scheduling"
    c.step(30)
    assert "unschedulable" not in c.store.get(NODES, None, "w2")["spec"]
    assert c.run_until(lambda: phase(c, "m1") == "Succeeded", timeout_seconds=300)


@pytest.mark.parametrize("role", ["migration-target", "migration-source"])
def test_node_dies_when_a_migration_to_or_from_it_starts(role: str) -> None:
    c = cluster("web")
    victim = "w2" if role == "migration-target" else "w1"
    apply(c, {"nodes": [{"node": victim, "notReadyWhen": role}]})
    migrate(c, "web", "m1", target="w2")
    assert c.run_until(lambda: phase(c, "m1") in ("Succeeded", "Failed"), timeout_seconds=300)
    assert phase(c, "m1") == "Failed"
    assert ready(c, victim) == "Unknown"
    assert c.store.get(VMIS, "default", "web")["status"]["nodeName"] == "w1"


# -- migrations -----------------------------------------------------------------------------------------------


def test_migration_stuck_in_pending_until_cancelled() -> None:
    c = cluster("web")
    apply(c, {"migrations": [{"action": "stall", "vm": "web", "phase": "Pending"}]})
    migrate(c, "web", "m1")
    c.step(1200)
    assert phase(c, "m1") == "Pending"
    c.store.delete(VMIMS, "default", "m1")
    assert c.run_until(lambda: c.store.try_get(VMIMS, "default", "m1") is None, timeout_seconds=30)


def test_unschedulable_target_fails_after_kubevirts_timeout() -> None:
    c = cluster("web")
    apply(c, {"migrations": [{"action": "unschedulable", "vm": "web"}]})
    migrate(c, "web", "m1")
    c.step(60)
    assert phase(c, "m1") == "Scheduling"
    events = [e for e in c.store.list(("", "events"))[0] if e["reason"] == "FailedScheduling"]
    assert events and "Insufficient devices.kubevirt.io/kvm" in events[-1]["message"]
    assert c.run_until(lambda: phase(c, "m1") == "Failed", timeout_seconds=400)
    reason = c.store.get(VMIMS, "default", "m1")["status"]["migrationState"]["failureReason"]
    assert "unschedulable" in reason


def test_quota_rejected_migration_carries_the_condition() -> None:
    c = cluster("web")
    apply(c, {"migrations": [{"action": "quota", "vm": "web"}]})
    migrate(c, "web", "m1")
    c.step(30)
    vmim = c.store.get(VMIMS, "default", "m1")
    assert vmim["status"]["phase"] == "Pending"
    cond = next(x for x in vmim["status"]["conditions"] if x["type"] == "migrationRejectedByResourceQuota")
    assert cond["status"] == "True" and "exceeded quota" in cond["message"]


def test_finished_migration_vanishes() -> None:
    c = cluster("web")
    apply(c, {"migrations": [{"action": "vanish", "vm": "web"}]})
    migrate(c, "web", "m1")
    assert c.run_until(lambda: c.store.try_get(VMIMS, "default", "m1") is None, timeout_seconds=300)
    state = c.store.get(VMIS, "default", "web")["status"]["migrationState"]
    assert state["completed"] is True and state["targetNode"] != "w1"  # only the VMI tells the outcome now


def test_guest_crashes_after_a_successful_migration() -> None:
    c = cluster("web")
    apply(c, {"migrations": [{"action": "crash-after", "vm": "web"}]})
    migrate(c, "web", "m1")
    assert c.run_until(lambda: phase(c, "m1") == "Succeeded", timeout_seconds=300)
    assert c.run_until(lambda: bool(c.recorder.entries("vmi-failed")), timeout_seconds=30)
    assert c.recorder.entries("vmi-failed")[0].message == "default/web"
    assert any(e["reason"] == "Crashed" for e in c.store.list(("", "events"))[0])


def test_foreign_migration_at_a_time_blocks_ours() -> None:
    c = cluster("web")
    apply(c, {"migrations": [{"action": "foreign", "vm": "default/web", "at": 5, "target": "w3"}]})
    c.step(6)
    foreign = [m for m in c.store.list(VMIMS)[0] if m["metadata"]["name"].startswith("web-descheduler-")]
    assert len(foreign) == 1 and foreign[0]["spec"]["addedNodeSelector"] == {"kubernetes.io/hostname": "w3"}
    with pytest.raises(Exception, match="in-flight migration detected"):
        migrate(c, "web", "ours")
    assert c.run_until(lambda: c.store.get(VMIS, "default", "web")["status"]["nodeName"] == "w3", timeout_seconds=300)


# -- VMs ------------------------------------------------------------------------------------------------------


def test_vmi_deleted_during_its_migration() -> None:
    c = cluster("web")
    apply(c, {"vms": [{"vm": "default/web", "deleteWhen": "migrating", "object": "vmi"}]})
    migrate(c, "web", "m1")
    assert c.run_until(lambda: phase(c, "m1") == "Failed", timeout_seconds=300)
    assert c.store.try_get(VMS, "default", "web") is not None  # the VM stays; runStrategy Always starts a new VMI
    assert c.run_until(
        lambda: (c.store.try_get(VMIS, "default", "web") or {}).get("status", {}).get("phase") == "Running",
        timeout_seconds=300,
    )


def test_evacuation_at_a_time() -> None:
    c = cluster("web")
    apply(c, {"vms": [{"vm": "default/web", "evacuateAt": 5}]})
    c.step(6)
    assert c.recorder.entries("evacuate")[0].message == "default/web"
    assert c.run_until(lambda: c.store.get(VMIS, "default", "web")["status"]["nodeName"] != "w1", timeout_seconds=300)
    assert any(m["metadata"]["name"].startswith("kubevirt-evacuation-") for m in c.store.list(VMIMS)[0])


def start_vm(c: SimCluster, name: str) -> None:
    c.subresource("default", "virtualmachines", name, "start", {}, "admin")


def stop_and_wait(c: SimCluster, name: str) -> None:
    c.subresource("default", "virtualmachines", name, "stop", {}, "admin")
    assert c.run_until(lambda: c.store.try_get(VMIS, "default", name) is None, timeout_seconds=120)


def test_a_start_that_never_reaches_running() -> None:
    c = cluster("web")
    apply(c, {"vms": [{"vm": "web", "failStart": "unschedulable", "starts": 1}]})
    stop_and_wait(c, "web")
    start_vm(c, "web")
    c.step(60)
    assert c.store.get(VMS, "default", "web")["status"]["printableStatus"] == "ErrorUnschedulable"
    vmi = c.store.get(VMIS, "default", "web")
    assert vmi["status"]["phase"] == "Scheduling"
    stop_and_wait(c, "web")
    start_vm(c, "web")  # the fault was for one start only
    assert c.run_until(
        lambda: (c.store.try_get(VMIS, "default", "web") or {}).get("status", {}).get("phase") == "Running",
        timeout_seconds=120,
    )


def test_a_start_that_crashes() -> None:
    c = cluster("web")
    apply(c, {"vms": [{"vm": "web", "failStart": "crash", "starts": 1}]})
    stop_and_wait(c, "web")
    start_vm(c, "web")
    assert c.run_until(lambda: bool(c.recorder.entries("vmi-failed")), timeout_seconds=120)
    assert any(e["reason"] == "FailedCreate" for e in c.store.list(("", "events"))[0])
    assert c.run_until(  # runStrategy Always starts it again; the second start works
        lambda: (c.store.try_get(VMIS, "default", "web") or {}).get("status", {}).get("phase") == "Running",
        timeout_seconds=120,
    )


def test_added_node_selector_is_pruned_before_kubevirt_1_6() -> None:
    c = cluster("web")
    c.store.mutate(
        ("kubevirt.io", "kubevirts"),
        "kubevirt",
        "kubevirt",
        lambda o: o["status"].update(observedKubeVirtVersion="v1.5.2"),
    )
    migrate(c, "web", "m1", target="w3")
    assert "addedNodeSelector" not in c.store.get(VMIMS, "default", "m1")["spec"]


def test_fault_document_errors() -> None:
    with pytest.raises(ValueError, match="notReadyWhen must be"):
        faults_from_document({"nodes": [{"node": "w1", "notReadyWhen": "soon"}]})
    with pytest.raises(ValueError, match="failStart must be"):
        faults_from_document({"vms": [{"vm": "a", "failStart": "explode"}]})
    with pytest.raises(ValueError, match="close or expire"):
        faults_from_document({"watches": [{"action": "sever"}]})
    with pytest.raises(ValueError, match="foreign migration needs"):
        faults_from_document({"migrations": [{"action": "foreign", "vm": "a"}]})
