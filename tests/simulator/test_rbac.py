"""RBAC from the cluster's own objects: the authorizer's rule matching, bindings, ServiceAccount tokens,
impersonation and the review APIs, through the API layer (ASGI, no network)."""

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from vm_rebalance.simulator.app import create_app
from vm_rebalance.simulator.auth import Attributes, Policy, UserInfo
from vm_rebalance.simulator.cluster import SimCluster
from vm_rebalance.simulator.rbac import rule_allows
from vm_rebalance.simulator.server import SimulatorServer

TOKENS = {"admin-token": "admin", "alice-token": "alice", "bob-token": "bob"}
RBAC = "rbac.authorization.k8s.io"
CLUSTER_ROLES = f"/apis/{RBAC}/v1/clusterroles"
CLUSTER_ROLE_BINDINGS = f"/apis/{RBAC}/v1/clusterrolebindings"


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


ADMIN = bearer("admin-token")


def attrs(verb: str, resource: str = "", **kw: Any) -> Attributes:
    return Attributes(UserInfo("u"), verb, resource=resource, **kw)


# -- rule matching ------------------------------------------------------------------------------------------


def test_rule_matching_follows_kube_apiserver() -> None:
    rule = {"apiGroups": ["kubevirt.io"], "resources": ["virtualmachines"], "verbs": ["get", "list"]}
    assert rule_allows(attrs("get", "virtualmachines", group="kubevirt.io"), rule)
    assert not rule_allows(attrs("delete", "virtualmachines", group="kubevirt.io"), rule)
    assert not rule_allows(attrs("get", "virtualmachines", group=""), rule)
    # a subresource needs its own entry; "*/status" matches any resource's status
    assert not rule_allows(attrs("get", "virtualmachines", group="kubevirt.io", subresource="status"), rule)
    status_rule = {"apiGroups": ["*"], "resources": ["*/status"], "verbs": ["*"]}
    assert rule_allows(attrs("patch", "pods", subresource="status"), status_rule)
    assert not rule_allows(attrs("patch", "pods"), status_rule)
    migrate = {"apiGroups": ["subresources.kubevirt.io"], "resources": ["virtualmachines/migrate"], "verbs": ["update"]}
    assert rule_allows(
        attrs("update", "virtualmachines", group="subresources.kubevirt.io", subresource="migrate"), migrate
    )
    assert not rule_allows(
        attrs("update", "virtualmachines", group="subresources.kubevirt.io", subresource="stop"), migrate
    )
    named = {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": ["leader"], "verbs": ["*"]}
    assert rule_allows(attrs("update", "leases", group="coordination.k8s.io", name="leader"), named)
    assert not rule_allows(attrs("update", "leases", group="coordination.k8s.io", name="other"), named)
    assert not rule_allows(attrs("list", "leases", group="coordination.k8s.io"), named)  # a list has no name
    urls = {"nonResourceURLs": ["/apis/*", "/version"], "verbs": ["get"]}
    path = {"resource_request": False}
    assert rule_allows(attrs("get", path="/apis/kubevirt.io/v1", **path), urls)
    assert rule_allows(attrs("get", path="/version", **path), urls)
    assert not rule_allows(attrs("get", path="/version/x", **path), urls)
    assert not rule_allows(attrs("get", path="/api", **path), urls)
    assert not rule_allows(attrs("get", "pods"), urls)


def test_policy_file_rbac_mode() -> None:
    policy = Policy.from_dict({"rbac": "cluster", "users": [{"name": "alice", "groups": ["ops"]}]})
    assert policy.rbac and policy.users() == ["admin", "alice"]
    assert policy.user_info("alice") == UserInfo("alice", ("ops", "system:authenticated"))
    assert policy.user_info("admin").groups == ("system:masters", "system:authenticated")
    with pytest.raises(ValueError, match="permissions come from the cluster's Roles"):
        Policy.from_dict({"rbac": "cluster", "users": [{"name": "x", "rules": [{"verbs": ["get"]}]}]})
    with pytest.raises(ValueError, match="rbac must be 'cluster' or 'rules'"):
        Policy.from_dict({"rbac": "yes"})


# -- through the API ----------------------------------------------------------------------------------------


@pytest.fixture
def cluster() -> SimCluster:
    return SimCluster(seed=0, manual_clock=True)


@pytest.fixture
async def api(cluster: SimCluster) -> AsyncIterator[httpx.AsyncClient]:
    policy = Policy.from_dict({"rbac": "cluster", "users": [{"name": "alice"}, {"name": "bob", "groups": ["ops"]}]})
    app = create_app(cluster, tokens=TOKENS, policy=policy)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://sim") as client:
        yield client


def cluster_role(name: str, *rules: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": f"{RBAC}/v1", "kind": "ClusterRole", "metadata": {"name": name}, "rules": list(rules)}


def binding(kind: str, name: str, role_kind: str, role: str, *subjects: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": f"{RBAC}/v1",
        "kind": kind,
        "metadata": {"name": name},
        "roleRef": {"apiGroup": RBAC, "kind": role_kind, "name": role},
        "subjects": list(subjects),
    }


async def create(api: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    r = await api.post(path, json=body, headers=ADMIN)
    assert r.status_code == 201, r.text
    data: dict[str, Any] = r.json()
    return data


async def narrow_role_for(api: httpx.AsyncClient, *subjects: dict[str, Any]) -> None:
    """ClusterRole 'reader': read pods and VMs, migrate VMs; bound cluster-wide to ``subjects``."""
    await create(
        api,
        CLUSTER_ROLES,
        cluster_role(
            "reader",
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["kubevirt.io"], "resources": ["virtualmachines"], "verbs": ["get", "list"]},
            {"apiGroups": ["subresources.kubevirt.io"], "resources": ["virtualmachines/migrate"], "verbs": ["update"]},
        ),
    )
    await create(
        api, CLUSTER_ROLE_BINDINGS, binding("ClusterRoleBinding", "reader", "ClusterRole", "reader", *subjects)
    )


async def test_a_user_bound_to_a_narrow_role_gets_exactly_it(api: httpx.AsyncClient) -> None:
    alice = bearer("alice-token")
    assert (await api.get("/api/v1/pods", headers=alice)).status_code == 403  # nothing bound yet
    await narrow_role_for(api, {"kind": "User", "name": "alice", "apiGroup": RBAC})
    assert (await api.get("/api/v1/pods", headers=alice)).status_code == 200
    assert (await api.get("/apis/kubevirt.io/v1/namespaces/default/virtualmachines", headers=alice)).status_code == 200
    r = await api.delete("/api/v1/namespaces/default/pods/p1", headers=alice)
    assert r.status_code == 403
    assert r.json() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'pods "p1" is forbidden: User "alice" cannot delete resource "pods" in API group "" in the '
        'namespace "default"',
        "reason": "Forbidden",
        "details": {"name": "p1", "kind": "pods"},
        "code": 403,
    }
    r = await api.get("/api/v1/nodes", headers=alice)
    assert r.json()["message"] == (
        'nodes is forbidden: User "alice" cannot list resource "nodes" in API group "" at the cluster scope'
    )
    r = await api.put("/apis/subresources.kubevirt.io/v1/namespaces/default/virtualmachines/vm1/stop", headers=alice)
    assert r.json()["message"] == (
        'virtualmachines.subresources.kubevirt.io "vm1" is forbidden: User "alice" cannot update resource '
        '"virtualmachines/stop" in API group "subresources.kubevirt.io" in the namespace "default"'
    )
    r = await api.put("/apis/subresources.kubevirt.io/v1/namespaces/default/virtualmachines/vm1/migrate", headers=alice)
    assert r.status_code == 404  # allowed; the VM does not exist
    # bob (another user) gets nothing from alice's binding; the change of a binding counts at once
    assert (await api.get("/api/v1/pods", headers=bearer("bob-token"))).status_code == 403
    r = await api.delete(f"{CLUSTER_ROLE_BINDINGS}/reader", headers=ADMIN)
    assert r.status_code == 200
    assert (await api.get("/api/v1/pods", headers=alice)).status_code == 403


async def test_groups_role_bindings_and_missing_roles(api: httpx.AsyncClient) -> None:
    bob = bearer("bob-token")
    await create(
        api,
        CLUSTER_ROLES,
        cluster_role("vm-editor", {"apiGroups": ["kubevirt.io"], "resources": ["virtualmachines"], "verbs": ["*"]}),
    )
    rb = binding(
        "RoleBinding", "ops-edit", "ClusterRole", "vm-editor", {"kind": "Group", "name": "ops", "apiGroup": RBAC}
    )
    await create(api, f"/apis/{RBAC}/v1/namespaces/default/rolebindings", rb)
    # a RoleBinding to a ClusterRole grants it in its namespace only
    assert (await api.get("/apis/kubevirt.io/v1/namespaces/default/virtualmachines", headers=bob)).status_code == 200
    assert (await api.get("/apis/kubevirt.io/v1/namespaces/kubevirt/virtualmachines", headers=bob)).status_code == 403
    assert (await api.get("/apis/kubevirt.io/v1/virtualmachines", headers=bob)).status_code == 403
    # a binding to a role that does not exist: the denial says why, as kube-apiserver does
    missing = binding("RoleBinding", "typo", "Role", "vm-edtor", {"kind": "Group", "name": "ops", "apiGroup": RBAC})
    await create(api, f"/apis/{RBAC}/v1/namespaces/kubevirt/rolebindings", missing)
    r = await api.get("/apis/kubevirt.io/v1/namespaces/kubevirt/virtualmachines", headers=bob)
    assert r.json()["message"] == (
        'virtualmachines.kubevirt.io is forbidden: User "bob" cannot list resource "virtualmachines" in API group '
        '"kubevirt.io" in the namespace "kubevirt": RBAC: role.rbac.authorization.k8s.io "vm-edtor" not found'
    )
    # a Role in the namespace
    role = {
        "apiVersion": f"{RBAC}/v1",
        "kind": "Role",
        "metadata": {"name": "vm-edtor"},
        "rules": [{"apiGroups": ["kubevirt.io"], "resources": ["virtualmachines"], "verbs": ["list"]}],
    }
    await create(api, f"/apis/{RBAC}/v1/namespaces/kubevirt/roles", role)
    assert (await api.get("/apis/kubevirt.io/v1/namespaces/kubevirt/virtualmachines", headers=bob)).status_code == 200


async def test_a_namespace_is_in_its_own_namespace(api: httpx.AsyncClient) -> None:
    alice = bearer("alice-token")
    await create(
        api,
        CLUSTER_ROLES,
        cluster_role("ns-reader", {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"]}),
    )
    rb = binding("RoleBinding", "ns", "ClusterRole", "ns-reader", {"kind": "User", "name": "alice", "apiGroup": RBAC})
    await create(api, f"/apis/{RBAC}/v1/namespaces/kubevirt/rolebindings", rb)
    assert (await api.get("/api/v1/namespaces/kubevirt", headers=alice)).status_code == 200
    r = await api.get("/api/v1/namespaces/default", headers=alice)
    assert r.status_code == 403 and 'in the namespace "default"' in r.json()["message"]


async def test_discovery_is_granted_by_the_bootstrap_bindings(api: httpx.AsyncClient) -> None:
    alice = bearer("alice-token")
    for path in ("/api", "/apis", "/api/v1", "/apis/kubevirt.io/v1", "/openapi/v3"):
        assert (await api.get(path, headers=alice)).status_code == 200, path
    r = await api.get(f"{CLUSTER_ROLE_BINDINGS}/system:discovery", headers=ADMIN)
    assert [s["name"] for s in r.json()["subjects"]] == ["system:authenticated"]
    assert (await api.delete(f"{CLUSTER_ROLE_BINDINGS}/system:discovery", headers=ADMIN)).status_code == 200
    r = await api.get("/apis", headers=alice)
    assert r.status_code == 403
    assert r.json()["message"] == 'forbidden: User "alice" cannot get path "/apis"'
    assert (await api.get("/apis", headers=ADMIN)).status_code == 200  # system:masters
    assert (await api.get("/version", headers=alice)).status_code == 200  # public, like system:public-info-viewer


async def review(api: httpx.AsyncClient, plural: str, spec: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
    group = "authentication.k8s.io" if plural == "selfsubjectreviews" else "authorization.k8s.io"
    return await api.post(f"/apis/{group}/v1/{plural}", json={"spec": spec}, headers=headers)


async def test_reviews_answer_from_the_same_authorizer(api: httpx.AsyncClient) -> None:
    alice = bearer("alice-token")
    await narrow_role_for(api, {"kind": "User", "name": "alice", "apiGroup": RBAC})
    migrate = {
        "verb": "update",
        "group": "subresources.kubevirt.io",
        "resource": "virtualmachines",
        "subresource": "migrate",
        "namespace": "prod",
    }
    r = await review(api, "selfsubjectaccessreviews", {"resourceAttributes": migrate}, alice)
    assert r.status_code == 201
    assert r.json()["status"] == {
        "allowed": True,
        "reason": 'RBAC: allowed by ClusterRoleBinding "reader" of ClusterRole "reader" to User "alice"',
    }
    r = await review(api, "selfsubjectaccessreviews", {"resourceAttributes": {**migrate, "subresource": "stop"}}, alice)
    assert r.json()["status"] == {"allowed": False}
    r = await review(
        api, "selfsubjectaccessreviews", {"nonResourceAttributes": {"verb": "get", "path": "/apis"}}, alice
    )
    assert r.json()["status"]["allowed"] is True
    # the rules that apply to alice in a namespace (kubectl auth can-i --list)
    r = await review(api, "selfsubjectrulesreviews", {"namespace": "default"}, alice)
    status = r.json()["status"]
    assert {
        "verbs": ["update"],
        "apiGroups": ["subresources.kubevirt.io"],
        "resources": ["virtualmachines/migrate"],
    } in (status["resourceRules"])
    assert {
        "verbs": ["create"],
        "apiGroups": ["authorization.k8s.io"],
        "resources": [
            "selfsubjectaccessreviews",
            "selfsubjectrulesreviews",
        ],
    } in status["resourceRules"]
    assert status["incomplete"] is False
    # who am I
    r = await review(api, "selfsubjectreviews", {}, alice)
    assert r.json()["status"]["userInfo"] == {"username": "alice", "groups": ["system:authenticated"]}
    # SubjectAccessReview asks about someone else and needs its own permission
    sar = {"user": "alice", "resourceAttributes": {"verb": "list", "resource": "pods"}}
    assert (await review(api, "subjectaccessreviews", sar, alice)).status_code == 403
    r = await review(api, "subjectaccessreviews", sar, ADMIN)
    assert r.json()["status"]["allowed"] is True
    r = await review(api, "subjectaccessreviews", {**sar, "user": "bob", "groups": ["ops"]}, ADMIN)
    assert r.json()["status"]["allowed"] is False


async def service_account(api: httpx.AsyncClient, ns: str, name: str) -> dict[str, Any]:
    body = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}}
    return await create(api, f"/api/v1/namespaces/{ns}/serviceaccounts", body)


async def token_for(api: httpx.AsyncClient, ns: str, name: str, **spec: Any) -> httpx.Response:
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
    return await api.post(f"/api/v1/namespaces/{ns}/serviceaccounts/{name}/token", json=body, headers=ADMIN)


async def test_service_account_tokens_authenticate_as_the_account(api: httpx.AsyncClient) -> None:
    sa = await service_account(api, "kubevirt", "rebalancer")
    r = await token_for(api, "kubevirt", "rebalancer", expirationSeconds=1200)
    assert r.status_code == 201, r.text
    request = r.json()
    assert request["kind"] == "TokenRequest" and request["spec"]["expirationSeconds"] == 1200
    assert request["status"]["expirationTimestamp"].endswith("Z")
    token = bearer(request["status"]["token"])
    who = (await review(api, "selfsubjectreviews", {}, token)).json()["status"]["userInfo"]
    assert who == {
        "username": "system:serviceaccount:kubevirt:rebalancer",
        "groups": ["system:serviceaccounts", "system:serviceaccounts:kubevirt", "system:authenticated"],
        "uid": sa["metadata"]["uid"],
    }
    r = await api.get("/api/v1/pods", headers=token)
    assert r.json()["message"] == (
        'pods is forbidden: User "system:serviceaccount:kubevirt:rebalancer" cannot list resource "pods" in API '
        'group "" at the cluster scope'
    )
    # a ServiceAccount subject's namespace defaults to the RoleBinding's
    await create(
        api, CLUSTER_ROLES, cluster_role("pod-reader", {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]})
    )
    rb = binding("RoleBinding", "sa", "ClusterRole", "pod-reader", {"kind": "ServiceAccount", "name": "rebalancer"})
    await create(api, f"/apis/{RBAC}/v1/namespaces/kubevirt/rolebindings", rb)
    assert (await api.get("/api/v1/namespaces/kubevirt/pods", headers=token)).status_code == 200
    assert (await api.get("/api/v1/namespaces/default/pods", headers=token)).status_code == 403
    # a group binding: every ServiceAccount of the namespace
    crb = binding(
        "ClusterRoleBinding",
        "kv-sas",
        "ClusterRole",
        "pod-reader",
        {"kind": "Group", "name": "system:serviceaccounts:kubevirt"},
    )
    await create(api, CLUSTER_ROLE_BINDINGS, crb)
    assert (await api.get("/api/v1/pods", headers=token)).status_code == 200
    # deleting the account invalidates its tokens, even if one of the same name is made again
    assert (
        await api.delete("/api/v1/namespaces/kubevirt/serviceaccounts/rebalancer", headers=ADMIN)
    ).status_code == 200
    assert (await api.get("/api/v1/pods", headers=token)).status_code == 401
    await service_account(api, "kubevirt", "rebalancer")
    assert (await api.get("/api/v1/pods", headers=token)).status_code == 401


async def test_token_request_errors(api: httpx.AsyncClient) -> None:
    r = await token_for(api, "default", "nobody")
    assert r.status_code == 404 and r.json()["message"] == 'serviceaccounts "nobody" not found'
    r = await token_for(api, "default", "default", expirationSeconds=60)
    assert r.status_code == 422
    assert r.json()["message"] == (
        'TokenRequest.authentication.k8s.io "default" is invalid: spec.expirationSeconds: Invalid value: 60: may '
        "not specify a duration less than 10 minutes"
    )
    # a token for another audience is not accepted by the API server
    r = await token_for(api, "default", "default", audiences=["vault"])
    assert r.status_code == 201 and r.json()["spec"]["audiences"] == ["vault"]
    assert (await api.get("/api", headers=bearer(r.json()["status"]["token"]))).status_code == 401
    # asking for a token is itself authorized: create serviceaccounts/token
    alice = bearer("alice-token")
    r = await api.post("/api/v1/namespaces/default/serviceaccounts/default/token", json={}, headers=alice)
    assert r.json()["message"] == (
        'serviceaccounts "default" is forbidden: User "alice" cannot create resource "serviceaccounts/token" in '
        'API group "" in the namespace "default"'
    )
    # a forged token (signature changed) is rejected
    good = (await token_for(api, "default", "default")).json()["status"]["token"]
    forged = good[:-2] + ("AA" if not good.endswith("AA") else "BB")
    assert (await api.get("/api", headers=bearer(forged))).status_code == 401


async def test_impersonation_needs_the_impersonate_verb(api: httpx.AsyncClient) -> None:
    alice = bearer("alice-token")
    sa_user = {"Impersonate-User": "system:serviceaccount:default:default"}
    r = await review(api, "selfsubjectreviews", {}, {**ADMIN, **sa_user})
    assert r.json()["status"]["userInfo"] == {
        "username": "system:serviceaccount:default:default",
        "groups": ["system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"],
    }
    r = await api.get("/api/v1/pods", headers={**alice, "Impersonate-User": "bob"})
    assert r.status_code == 403
    assert r.json()["message"] == (
        'users "bob" is forbidden: User "alice" cannot impersonate resource "users" in API group "" at the cluster '
        "scope"
    )
    r = await api.get("/api/v1/pods", headers={**alice, **sa_user})
    assert r.json()["message"] == (
        'serviceaccounts "default" is forbidden: User "alice" cannot impersonate resource "serviceaccounts" in API '
        'group "" in the namespace "default"'
    )
    await create(
        api,
        CLUSTER_ROLES,
        cluster_role("impersonator", {"apiGroups": [""], "resources": ["users", "groups"], "verbs": ["impersonate"]}),
    )
    await create(
        api,
        CLUSTER_ROLE_BINDINGS,
        binding("ClusterRoleBinding", "alice-imp", "ClusterRole", "impersonator", {"kind": "User", "name": "alice"}),
    )
    r = await review(api, "selfsubjectreviews", {}, {**alice, "Impersonate-User": "bob", "Impersonate-Group": "ops"})
    assert r.json()["status"]["userInfo"] == {"username": "bob", "groups": ["ops", "system:authenticated"]}
    # impersonating a user does not bring the user's own groups along: admin without system:masters
    r = await api.get("/api/v1/nodes", headers={**alice, "Impersonate-User": "admin"})
    assert r.status_code == 403
    r = await api.get(
        "/api/v1/nodes", headers={**alice, "Impersonate-User": "x", "Impersonate-Group": "system:masters"}
    )
    assert r.status_code == 200


async def test_rules_mode_and_no_policy_still_answer_the_new_reviews(cluster: SimCluster) -> None:
    policy = Policy.from_dict(
        {"users": [{"name": "alice", "rules": [{"verbs": ["list"], "apiGroups": [""], "resources": ["pods"]}]}]}
    )
    for app_policy, expected in (
        (policy, [{"verbs": ["list"], "apiGroups": [""], "resources": ["pods"]}]),
        (None, None),
    ):
        app = create_app(cluster, tokens=TOKENS, policy=app_policy)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://sim") as api:
            alice = bearer("alice-token")
            r = await review(api, "selfsubjectrulesreviews", {"namespace": "default"}, alice)
            assert r.status_code == 201
            rules = r.json()["status"]["resourceRules"]
            assert rules == (
                expected if expected is not None else [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]
            )
            r = await review(api, "selfsubjectreviews", {}, alice)
            assert r.json()["status"]["userInfo"]["username"] == "alice"


def test_server_rbac_switch_and_policy_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("rbac: cluster\nusers:\n  - name: alice\n    groups: [ops]\n")
    server = SimulatorServer(SimCluster(seed=0, manual_clock=True), policy_file=path, tls=False)
    assert server.policy is not None and server.policy.rbac and server.auth_enabled  # tokens even over HTTP
    server = SimulatorServer(SimCluster(seed=0, manual_clock=True), rbac=True, tls=False)
    assert server.policy is not None and server.policy.rbac and server.auth_enabled
    rules = Policy.from_dict({"users": [{"name": "a", "rules": [{"verbs": ["get"], "resources": ["pods"]}]}]})
    with pytest.raises(ValueError, match="not from policy rules"):
        SimulatorServer(SimCluster(seed=0, manual_clock=True), rbac=True, policy=rules)
    with pytest.raises(RuntimeError, match="start the server"):
        server.kubeconfig(service_account="default/default")
