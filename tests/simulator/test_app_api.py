"""The simulator's REST API in process (httpx.ASGITransport): discovery, CRUD, selectors, paging, errors."""

from collections.abc import AsyncIterator

import httpx
import pytest

from vm_rebalance.simulator.app import create_app
from vm_rebalance.simulator.cluster import SimCluster

VMS = "/apis/kubevirt.io/v1/namespaces/ns/virtualmachines"
TABLE = (
    "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
)


def make_vm(name: str, strategy: str = "Halted", labels: dict[str, str] | None = None) -> dict[str, object]:
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {
            "runStrategy": strategy,
            "template": {"spec": {"domain": {"cpu": {"cores": 1}, "memory": {"guest": "1Gi"}, "devices": {}}}},
        },
    }


@pytest.fixture
def cluster() -> SimCluster:
    c = SimCluster(seed=0)  # controllers not started: the store only changes through the API here
    c.store.create(("", "namespaces"), {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"}})
    for i in range(3):
        c.store.create(
            ("", "nodes"),
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": f"n{i}",
                    "labels": {"zone": "a" if i < 2 else "b", "node-role.kubernetes.io/worker": ""},
                },
                "status": {
                    "conditions": [{"type": "Ready", "status": "True"}],
                    "nodeInfo": {"kubeletVersion": "v1.33.0"},
                },
            },
        )
    return c


@pytest.fixture
async def api(cluster: SimCluster) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(cluster)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim") as client:
        yield client


async def test_discovery_lists_kubevirt_resources_with_short_names_and_subresources(
    api: httpx.AsyncClient,
) -> None:
    groups = (await api.get("/apis")).json()
    names = {g["name"] for g in groups["groups"]}
    assert {
        "kubevirt.io",
        "subresources.kubevirt.io",
        "metrics.k8s.io",
        "instancetype.kubevirt.io",
        "cdi.kubevirt.io",
        "coordination.k8s.io",
        "authorization.k8s.io",
    } <= names
    kv = (await api.get("/apis/kubevirt.io/v1")).json()
    by_name = {r["name"]: r for r in kv["resources"]}
    assert by_name["virtualmachines"]["shortNames"] == ["vm", "vms"]
    assert by_name["virtualmachineinstancemigrations"]["shortNames"] == ["vmim", "vmims"]
    assert by_name["virtualmachineinstances"]["namespaced"] is True
    assert "virtualmachines/status" in by_name and "virtualmachineinstances/status" not in by_name
    sub = (await api.get("/apis/subresources.kubevirt.io/v1")).json()
    assert {r["name"] for r in sub["resources"]} >= {"virtualmachines/start", "virtualmachines/migrate"}
    metrics = (await api.get("/apis/metrics.k8s.io/v1beta1")).json()
    assert {r["name"]: r["verbs"] for r in metrics["resources"]} == {
        "nodes": ["get", "list"],
        "pods": ["get", "list"],
    }
    core = (await api.get("/api/v1")).json()
    assert any(r["name"] == "pods/eviction" for r in core["resources"])
    version = (await api.get("/version")).json()
    assert version["major"] == "1" and version["gitVersion"].startswith("v1.")


async def test_create_get_and_not_found_status(api: httpx.AsyncClient) -> None:
    r = await api.post(VMS, json=make_vm("vm1"))
    assert r.status_code == 201
    vm = r.json()
    assert vm["kind"] == "VirtualMachine" and vm["metadata"]["uid"] and vm["metadata"]["generation"] == 1
    assert vm["metadata"]["resourceVersion"]
    r = await api.get(f"{VMS}/missing")
    assert r.status_code == 404
    assert r.json() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'virtualmachines.kubevirt.io "missing" not found',
        "reason": "NotFound",
        "details": {"name": "missing", "group": "kubevirt.io", "kind": "virtualmachines"},
        "code": 404,
    }
    again = await api.post(VMS, json=make_vm("vm1"))
    assert again.status_code == 409 and again.json()["reason"] == "AlreadyExists"


async def test_generate_name_creates_a_suffixed_name(api: httpx.AsyncClient) -> None:
    vm = make_vm("")
    vm["metadata"] = {"generateName": "web-"}
    r = await api.post(VMS, json=vm)
    assert r.status_code == 201
    name = r.json()["metadata"]["name"]
    assert name.startswith("web-") and len(name) == len("web-") + 5


async def test_stale_update_returns_the_optimistic_lock_conflict(api: httpx.AsyncClient) -> None:
    created = (await api.post(VMS, json=make_vm("vm1"))).json()
    stale = dict(created)
    fresh = dict(created, spec=dict(created["spec"], runStrategy="Manual"))
    assert (await api.put(f"{VMS}/vm1", json=fresh)).status_code == 200
    r = await api.put(f"{VMS}/vm1", json=stale)
    assert r.status_code == 409
    assert r.json() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'Operation cannot be fulfilled on virtualmachines.kubevirt.io "vm1": the object has been '
        "modified; please apply your changes to the latest version and try again",
        "reason": "Conflict",
        "details": {"name": "vm1", "group": "kubevirt.io", "kind": "virtualmachines"},
        "code": 409,
    }


async def test_update_keeps_status_of_kinds_with_a_status_subresource(api: httpx.AsyncClient) -> None:
    created = (await api.post(VMS, json=make_vm("vm1"))).json()
    status_put = dict(created, status={"printableStatus": "Stopped"})
    r = await api.put(f"{VMS}/vm1/status", json=status_put)
    assert r.status_code == 200 and r.json()["status"] == {"printableStatus": "Stopped"}
    generation = r.json()["metadata"]["generation"]
    main_put = dict(r.json(), status={"printableStatus": "Running"})
    r = await api.put(f"{VMS}/vm1", json=main_put)
    assert r.json()["status"] == {"printableStatus": "Stopped"}
    assert r.json()["metadata"]["generation"] == generation


async def test_label_and_field_selectors(api: httpx.AsyncClient) -> None:
    for name, labels in (("a", {"app": "web", "tier": "1"}), ("b", {"app": "db"}), ("c", {})):
        assert (await api.post(VMS, json=make_vm(name, labels=labels))).status_code == 201

    async def names(query: str) -> list[str]:
        r = await api.get(f"{VMS}?{query}")
        assert r.status_code == 200, r.text
        return [o["metadata"]["name"] for o in r.json()["items"]]

    assert await names("labelSelector=app%3Dweb") == ["a"]
    assert await names("labelSelector=app%3D%3Dweb") == ["a"]
    assert await names("labelSelector=app!%3Dweb") == ["b", "c"]
    assert await names("labelSelector=app%20in%20(web,db)") == ["a", "b"]
    assert await names("labelSelector=app%20notin%20(web)") == ["b", "c"]
    assert await names("labelSelector=tier") == ["a"]
    assert await names("labelSelector=!tier") == ["b", "c"]
    assert await names("labelSelector=app,!tier") == ["b"]
    assert await names("fieldSelector=metadata.name%3Db") == ["b"]
    assert await names("fieldSelector=metadata.namespace%3Dns,metadata.name!%3Db") == ["a", "c"]
    bad = await api.get(f"{VMS}?fieldSelector=spec.nodeName%3Dx")
    assert bad.status_code == 400 and bad.json()["message"] == "field label not supported: spec.nodeName"


async def test_pod_field_selector_on_node_name_and_phase(api: httpx.AsyncClient, cluster: SimCluster) -> None:
    for name, node, phase in (("p1", "n0", "Running"), ("p2", "n1", "Running"), ("p3", "n0", "Pending")):
        cluster.store.create(
            ("", "pods"),
            {
                "metadata": {"name": name, "namespace": "ns"},
                "spec": {"nodeName": node, "containers": [{"name": "c"}]},
                "status": {"phase": phase},
            },
        )
    r = await api.get("/api/v1/pods?fieldSelector=spec.nodeName%3Dn0,status.phase%3DRunning")
    assert [p["metadata"]["name"] for p in r.json()["items"]] == ["p1"]


async def test_list_paging_with_limit_and_continue(api: httpx.AsyncClient) -> None:
    seen: list[str] = []
    url = "/api/v1/nodes?limit=2"
    first = (await api.get(url)).json()
    assert first["kind"] == "NodeList" and first["metadata"]["continue"]
    assert first["metadata"]["remainingItemCount"] == 1
    seen += [n["metadata"]["name"] for n in first["items"]]
    second = (await api.get(f"{url}&continue={first['metadata']['continue']}")).json()
    seen += [n["metadata"]["name"] for n in second["items"]]
    assert seen == ["n0", "n1", "n2"] and "continue" not in second["metadata"]


async def test_strategic_merge_on_a_custom_resource_is_415(api: httpx.AsyncClient) -> None:
    await api.post(VMS, json=make_vm("vm1"))
    r = await api.patch(
        f"{VMS}/vm1",
        json={"spec": {"runStrategy": "Manual"}},
        headers={"content-type": "application/strategic-merge-patch+json"},
    )
    assert r.status_code == 415
    assert r.json()["message"] == (
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
    )


async def test_strategic_merge_patch_on_a_node(api: httpx.AsyncClient) -> None:
    r = await api.patch(
        "/api/v1/nodes/n0",
        json={"spec": {"unschedulable": True}},
        headers={"content-type": "application/strategic-merge-patch+json"},
    )
    assert r.status_code == 200 and r.json()["spec"]["unschedulable"] is True


async def test_json_patch_test_failure_is_rejected_and_merge_patch_applies(api: httpx.AsyncClient) -> None:
    await api.post(VMS, json=make_vm("vm1"))
    ops = [
        {"op": "test", "path": "/spec/runStrategy", "value": "Always"},
        {"op": "replace", "path": "/spec/runStrategy", "value": "Manual"},
    ]
    r = await api.patch(f"{VMS}/vm1", json=ops, headers={"content-type": "application/json-patch+json"})
    assert r.status_code == 422 and "test failed" in r.json()["message"]
    r = await api.patch(
        f"{VMS}/vm1",
        json={"metadata": {"labels": {"x": "y"}}},
        headers={"content-type": "application/merge-patch+json"},
    )
    assert r.status_code == 200 and r.json()["metadata"]["labels"] == {"x": "y"}


async def test_server_side_apply_creates_then_conflicts_then_forces(api: httpx.AsyncClient) -> None:
    body = (
        "apiVersion: kubevirt.io/v1\nkind: VirtualMachine\nmetadata: {name: vm2}\n"
        "spec: {runStrategy: Halted, template: {spec: {domain: {devices: {}, memory: {guest: 1Gi}}}}}\n"
    )
    headers = {"content-type": "application/apply-patch+yaml"}
    r = await api.patch(f"{VMS}/vm2?fieldManager=tool", content=body, headers=headers)
    assert r.status_code == 201, r.text
    r = await api.patch(
        f"{VMS}/vm2",
        json={"spec": {"runStrategy": "Manual"}},
        headers={
            "content-type": "application/merge-patch+json",
            "user-agent": "kubernetes-mcp-server/v0.0.69 (linux/amd64)",
        },
    )
    assert r.status_code == 200
    r = await api.patch(f"{VMS}/vm2?fieldManager=tool", content=body, headers=headers)
    assert r.status_code == 409
    assert r.json()["message"] == (
        'Apply failed with 1 conflict: conflict with "kubernetes-mcp-server" using kubevirt.io/v1: .spec.runStrategy'
    )
    r = await api.patch(f"{VMS}/vm2?fieldManager=tool&force=true", content=body, headers=headers)
    assert r.status_code == 200 and r.json()["spec"]["runStrategy"] == "Halted"
    missing = await api.patch(f"{VMS}/vm2", content=body, headers=headers)
    assert missing.status_code == 422 and "fieldManager: Required value" in missing.json()["message"]


async def test_dry_run_does_not_mutate(api: httpx.AsyncClient) -> None:
    r = await api.post(f"{VMS}?dryRun=All", json=make_vm("ghost"))
    assert r.status_code == 201
    assert (await api.get(f"{VMS}/ghost")).status_code == 404
    await api.post(VMS, json=make_vm("vm1"))
    r = await api.delete(f"{VMS}/vm1?dryRun=All")
    assert r.status_code == 200 and (await api.get(f"{VMS}/vm1")).status_code == 200


async def test_delete_returns_the_object_and_then_404(api: httpx.AsyncClient) -> None:
    await api.post(VMS, json=make_vm("vm1"))
    r = await api.delete(f"{VMS}/vm1")
    assert r.status_code == 200 and r.json()["metadata"]["name"] == "vm1"
    assert (await api.get(f"{VMS}/vm1")).status_code in (200, 404)  # a VM finalizer may keep it briefly


async def test_table_response_for_nodes_and_vms(api: httpx.AsyncClient) -> None:
    r = await api.get("/api/v1/nodes", headers={"accept": TABLE})
    table = r.json()
    assert table["kind"] == "Table" and table["apiVersion"] == "meta.k8s.io/v1"
    assert [c["name"] for c in table["columnDefinitions"] if c["priority"] == 0] == [
        "Name",
        "Status",
        "Roles",
        "Age",
        "Version",
    ]
    assert table["rows"][0]["cells"][:3] == ["n0", "Ready", "worker"]
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    await api.post(VMS, json=make_vm("vm1"))
    vms = (await api.get(VMS, headers={"accept": TABLE})).json()
    assert [c["name"] for c in vms["columnDefinitions"]] == ["Name", "Age", "Status", "Ready"]
    none = (await api.get(f"{VMS}?includeObject=None", headers={"accept": TABLE})).json()
    assert "object" not in none["rows"][0]


async def test_openapi_v3_has_patch_with_gvk_and_field_validation(api: httpx.AsyncClient) -> None:
    index = (await api.get("/openapi/v3")).json()
    url = index["paths"]["apis/kubevirt.io/v1"]["serverRelativeURL"]
    doc = (await api.get(url)).json()
    patches = [p["patch"] for p in doc["paths"].values() if "patch" in p]
    vmim = [p for p in patches if p["x-kubernetes-group-version-kind"]["kind"] == "VirtualMachineInstanceMigration"]
    assert vmim and any(q["name"] == "fieldValidation" and q["in"] == "query" for q in vmim[0]["parameters"])
    assert "application/strategic-merge-patch+json" not in vmim[0]["requestBody"]["content"]


async def test_unknown_paths_and_verbs(api: httpx.AsyncClient) -> None:
    assert (await api.get("/apis/example.com/v1/things")).status_code == 404
    r = await api.post("/apis/metrics.k8s.io/v1beta1/nodes", json={"metadata": {"name": "x"}})
    assert r.status_code == 405 and r.json()["reason"] == "MethodNotAllowed"
    r = await api.put("/apis/kubevirt.io/v1/namespaces/ns/virtualmachineinstances/x/status", json={})
    assert r.status_code == 404


async def test_self_subject_access_review_without_policy_allows(api: httpx.AsyncClient) -> None:
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {"verb": "list", "group": "kubevirt.io", "resource": "virtualmachines"}},
    }
    r = await api.post("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", json=review)
    assert r.status_code == 201 and r.json()["status"]["allowed"] is True
