"""Bearer-token authentication and the RBAC-like policy of the simulated API server."""

from collections.abc import AsyncIterator

import httpx
import pytest

from vm_rebalance.simulator.app import create_app
from vm_rebalance.simulator.auth import Policy
from vm_rebalance.simulator.cluster import SimCluster

POLICY = {
    "users": [
        {
            "name": "rebalancer",
            "rules": [
                {"verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": ["nodes", "pods"]},
                {
                    "verbs": ["get", "list"],
                    "apiGroups": ["kubevirt.io"],
                    "resources": ["virtualmachines"],
                    "namespaces": ["prod"],
                },
                {
                    "verbs": ["update"],
                    "apiGroups": ["subresources.kubevirt.io"],
                    "resources": ["virtualmachines/migrate"],
                },
            ],
        }
    ]
}
TOKENS = {"admin-token": "admin", "reb-token": "rebalancer", "eve-token": "eve"}


@pytest.fixture
async def api() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(SimCluster(seed=0), tokens=TOKENS, policy=Policy.from_dict(POLICY))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim") as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def test_missing_or_wrong_token_is_401_status(api: httpx.AsyncClient) -> None:
    for headers in ({}, bearer("nope")):
        r = await api.get("/api/v1/nodes", headers=headers)
        assert r.status_code == 401
        assert r.json()["reason"] == "Unauthorized" and r.json()["kind"] == "Status"
    assert (await api.get("/healthz")).status_code == 200


async def test_admin_is_unrestricted_and_listed_user_is_limited(api: httpx.AsyncClient) -> None:
    assert (await api.get("/apis/kubevirt.io/v1/virtualmachines", headers=bearer("admin-token"))).status_code == 200
    assert (await api.get("/api/v1/nodes", headers=bearer("reb-token"))).status_code == 200
    ok = await api.get("/apis/kubevirt.io/v1/namespaces/prod/virtualmachines", headers=bearer("reb-token"))
    assert ok.status_code == 200


async def test_forbidden_names_verb_resource_group_and_namespace(api: httpx.AsyncClient) -> None:
    r = await api.delete("/apis/kubevirt.io/v1/namespaces/prod/virtualmachines/vm1", headers=bearer("reb-token"))
    assert r.status_code == 403
    assert r.json()["message"] == (
        'virtualmachines.kubevirt.io "vm1" is forbidden: User "rebalancer" cannot delete resource '
        '"virtualmachines" in API group "kubevirt.io" in the namespace "prod"'
    )
    r = await api.get("/apis/kubevirt.io/v1/virtualmachines", headers=bearer("reb-token"))
    assert r.json()["message"] == (
        'virtualmachines.kubevirt.io is forbidden: User "rebalancer" cannot list resource "virtualmachines" '
        'in API group "kubevirt.io" at the cluster scope'
    )
    r = await api.put(
        "/apis/subresources.kubevirt.io/v1/namespaces/prod/virtualmachines/vm1/start",
        headers=bearer("reb-token"),
    )
    assert r.status_code == 403 and 'cannot update resource "virtualmachines/start"' in r.json()["message"]
    r = await api.get("/api/v1/nodes", headers=bearer("eve-token"))
    assert r.status_code == 403 and 'User "eve" cannot list resource "nodes" in API group ""' in r.json()["message"]


async def test_ssar_answers_per_policy(api: httpx.AsyncClient) -> None:
    async def allowed(token: str, attrs: dict[str, str]) -> bool:
        body = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attrs},
        }
        r = await api.post("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", json=body, headers=bearer(token))
        assert r.status_code == 201
        return bool(r.json()["status"]["allowed"])

    migrate = {
        "verb": "update",
        "group": "subresources.kubevirt.io",
        "resource": "virtualmachines",
        "subresource": "migrate",
        "namespace": "prod",
    }
    assert await allowed("reb-token", migrate)
    assert not await allowed("reb-token", {**migrate, "subresource": "stop"})
    assert not await allowed("reb-token", {"verb": "list", "group": "kubevirt.io", "resource": "virtualmachines"})
    assert await allowed("admin-token", {"verb": "delete", "group": "", "resource": "nodes"})
