"""The built-in kinds a deployment applies: kube-apiserver's defaults, validation and allocated values,
the namespace / serviceaccount / deployment controllers, and NamespaceLifecycle (ASGI, manual clock)."""

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from vm_rebalance.simulator.app import create_app
from vm_rebalance.simulator.cluster import SimCluster

RBAC = "rbac.authorization.k8s.io"


@pytest.fixture
def cluster() -> SimCluster:
    return SimCluster(seed=0, manual_clock=True)


@pytest.fixture
async def api(cluster: SimCluster) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(cluster)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim") as client:
        yield client


async def created(api: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    r = await api.post(path, json=body)
    assert r.status_code == 201, r.text
    data: dict[str, Any] = r.json()
    return data


def deployment(name: str = "web", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [{"name": "main", "image": "quay.io/x/web:1.0", "ports": [{"containerPort": 80}]}]
                },
            },
        },
    }
    body["spec"].update(spec)
    return body


async def test_every_cluster_starts_with_what_kube_apiserver_and_its_controllers_make(api: httpx.AsyncClient) -> None:
    sas = (await api.get("/api/v1/serviceaccounts")).json()["items"]
    assert sorted((s["metadata"]["namespace"], s["metadata"]["name"]) for s in sas) == [
        ("default", "default"),
        ("kube-system", "default"),
        ("kubevirt", "default"),
    ]
    svc = (await api.get("/api/v1/namespaces/default/services/kubernetes")).json()
    assert svc["spec"]["clusterIP"] == "10.96.0.1" and svc["spec"]["ports"][0]["port"] == 443
    roles = {r["metadata"]["name"] for r in (await api.get(f"/apis/{RBAC}/v1/clusterroles")).json()["items"]}
    assert roles == {
        "cluster-admin",
        "system:discovery",
        "system:basic-user",
        "system:public-info-viewer",
        "kubevirt.io:migrate",
    }


async def test_namespace_create_and_delete_with_its_contents(api: httpx.AsyncClient, cluster: SimCluster) -> None:
    ns = await created(
        api, "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}}
    )
    assert ns["metadata"]["labels"] == {"kubernetes.io/metadata.name": "team"}
    assert ns["spec"] == {"finalizers": ["kubernetes"]} and ns["status"] == {"phase": "Active"}
    cluster.step(0.5)
    assert (await api.get("/api/v1/namespaces/team/serviceaccounts/default")).status_code == 200
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "held", "finalizers": ["example.dev/hold"]}}
    await created(api, "/api/v1/namespaces/team/configmaps", cm)
    await created(api, "/apis/apps/v1/namespaces/team/deployments", deployment())
    r = await api.delete("/api/v1/namespaces/team")
    assert r.status_code == 200 and r.json()["status"]["phase"] == "Terminating"
    assert r.json()["metadata"]["deletionTimestamp"]
    # no new content in a terminating namespace
    r = await api.post("/api/v1/namespaces/team/configmaps", json={"metadata": {"name": "late"}})
    assert r.status_code == 403
    assert r.json()["message"] == (
        'configmaps "late" is forbidden: unable to create new content in namespace team because it is being terminated'
    )
    assert r.json()["details"]["causes"][0]["reason"] == "NamespaceTerminating"
    cluster.step(1)
    assert (await api.get("/apis/apps/v1/namespaces/team/deployments/web")).status_code == 404
    assert (await api.get("/api/v1/namespaces/team")).json()["status"][
        "phase"
    ] == "Terminating"  # held by the finalizer
    held = (await api.get("/api/v1/namespaces/team/configmaps/held")).json()
    assert held["metadata"]["deletionTimestamp"]
    r = await api.patch(
        "/api/v1/namespaces/team/configmaps/held",
        content=json.dumps({"metadata": {"finalizers": None}}),
        headers={"content-type": "application/merge-patch+json"},
    )
    assert r.status_code == 200, r.text
    cluster.step(1)
    assert (await api.get("/api/v1/namespaces/team")).status_code == 404
    r = await api.delete("/api/v1/namespaces/default")
    assert r.status_code == 403 and r.json()["message"] == (
        'namespaces "default" is forbidden: this namespace may not be deleted'
    )
    # and no new content in a namespace that does not exist
    r = await api.post("/api/v1/namespaces/team/configmaps", json={"metadata": {"name": "x"}})
    assert r.status_code == 404 and r.json()["message"] == 'namespaces "team" not found'


async def test_service_defaults_allocation_and_immutable_cluster_ip(api: httpx.AsyncClient) -> None:
    base = "/api/v1/namespaces/default/services"
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}}}
    r = await api.post(base, json=svc)
    assert r.status_code == 422 and r.json()["message"] == 'Service "web" is invalid: spec.ports: Required value'
    svc["spec"]["ports"] = [{"name": "http", "port": 80, "targetPort": "http"}]
    one = (await created(api, base, svc))["spec"]
    assert one["type"] == "ClusterIP" and one["clusterIPs"] == [one["clusterIP"]] and one["clusterIP"] != "10.96.0.1"
    assert one["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    assert one["sessionAffinity"] == "None" and one["ipFamilies"] == ["IPv4"]
    node_port = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "np"},
        "spec": {"type": "NodePort", "ports": [{"port": 8080}]},
    }
    two = (await created(api, base, node_port))["spec"]
    assert two["clusterIP"] not in (one["clusterIP"], "10.96.0.1")
    assert 30000 <= two["ports"][0]["nodePort"] <= 32767 and two["ports"][0]["targetPort"] == 8080
    # a PUT without the allocated values keeps them; changing the cluster IP is refused
    current = (await api.get(f"{base}/web")).json()
    del current["spec"]["clusterIP"], current["spec"]["clusterIPs"]
    r = await api.put(f"{base}/web", json=current)
    assert r.status_code == 200 and r.json()["spec"]["clusterIP"] == one["clusterIP"]
    current = r.json()
    current["spec"]["clusterIP"] = "10.96.9.9"
    r = await api.put(f"{base}/web", json=current)
    assert (
        r.status_code == 422 and 'spec.clusterIP: Invalid value: "10.96.9.9": field is immutable' in r.json()["message"]
    )
    r = await api.post(base, json={"metadata": {"name": "bad"}, "spec": {"type": "Balanced", "ports": [{"port": 1}]}})
    assert r.json()["message"] == (
        'Service "bad" is invalid: spec.type: Unsupported value: "Balanced": supported values: "ClusterIP", '
        '"ExternalName", "LoadBalancer", "NodePort"'
    )


async def test_secrets_fold_string_data_and_never_echo_values(api: httpx.AsyncClient) -> None:
    base = "/api/v1/namespaces/default/secrets"
    body = {"metadata": {"name": "s"}, "stringData": {"token": "hunter2"}, "data": {"ca": "Y2E="}}
    secret = await created(api, base, body)
    assert secret["type"] == "Opaque" and "stringData" not in secret
    assert secret["data"] == {"ca": "Y2E=", "token": "aHVudGVyMg=="}
    r = await api.post(base, json={"metadata": {"name": "bad"}, "data": {"token": "not base64 SECRET!"}})
    assert r.status_code == 400
    assert (
        r.json()["message"]
        == 'Secret in version "v1" cannot be handled as a Secret: illegal base64 data in key "token"'
    )
    assert "SECRET" not in r.text


async def test_deployment_validation_and_status_over_simulated_time(
    api: httpx.AsyncClient, cluster: SimCluster
) -> None:
    base = "/apis/apps/v1/namespaces/default/deployments"
    bad = deployment()
    bad["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    bad["spec"]["template"]["spec"]["containers"][0]["image"] = ""
    r = await api.post(base, json=bad)
    assert r.status_code == 422
    assert r.json()["message"] == (
        'Deployment.apps "web" is invalid: [spec.template.metadata.labels: Invalid value: '
        'map[string]string{"app":"web"}: `selector` does not match template `labels`, '
        "spec.template.spec.containers[0].image: Required value]"
    )
    made = await created(api, base, deployment(replicas=2))
    spec = made["spec"]
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
    container = spec["template"]["spec"]["containers"][0]
    assert container["imagePullPolicy"] == "IfNotPresent" and container["ports"][0]["protocol"] == "TCP"
    assert made["status"] == {}
    cluster.step(0.5)
    status = (await api.get(f"{base}/web")).json()["status"]
    assert status["observedGeneration"] == 1 and status["updatedReplicas"] == 2 and status["unavailableReplicas"] == 2
    assert {c["type"]: c["status"] for c in status["conditions"]} == {"Available": "False", "Progressing": "True"}
    cluster.step(3)
    status = (await api.get(f"{base}/web")).json()["status"]
    assert status["availableReplicas"] == 2 and status["readyReplicas"] == 2
    assert {c["type"]: c["reason"] for c in status["conditions"]} == {
        "Available": "MinimumReplicasAvailable",
        "Progressing": "NewReplicaSetAvailable",
    }
    assert "the simulator runs no pods" in status["conditions"][1]["message"]
    assert (await api.get("/api/v1/namespaces/default/pods?labelSelector=app%3Dweb")).json()["items"] == []
    # scaling is a new generation; the status follows
    r = await api.patch(
        f"{base}/web",
        content=json.dumps({"spec": {"replicas": 3}}),
        headers={"content-type": "application/merge-patch+json"},
    )
    assert r.json()["metadata"]["generation"] == 2
    cluster.step(4)
    status = (await api.get(f"{base}/web")).json()["status"]
    assert (status["observedGeneration"], status["availableReplicas"]) == (2, 3)
    # the selector is immutable
    moved = (await api.get(f"{base}/web")).json()
    moved["spec"]["selector"] = {"matchLabels": {"app": "web", "tier": "x"}}
    moved["spec"]["template"]["metadata"]["labels"]["tier"] = "x"
    r = await api.put(f"{base}/web", json=moved)
    assert r.status_code == 422 and "spec.selector: Invalid value" in r.json()["message"]


async def test_rbac_objects_are_validated(api: httpx.AsyncClient) -> None:
    roles = f"/apis/{RBAC}/v1/clusterroles"
    r = await api.post(roles, json={"metadata": {"name": "r"}, "rules": [{"resources": ["pods"], "verbs": ["get"]}]})
    assert r.status_code == 422
    assert r.json()["message"] == (
        'ClusterRole.rbac.authorization.k8s.io "r" is invalid: rules[0].apiGroups: Required value: resource rules '
        "must supply at least one api group"
    )
    r = await api.post(
        f"/apis/{RBAC}/v1/namespaces/default/roles",
        json={"metadata": {"name": "r"}, "rules": [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]},
    )
    assert (
        'rules[0].nonResourceURLs: Invalid value: []string{"/metrics"}: namespaced rules cannot apply'
        in (r.json()["message"])
    )
    bindings = f"/apis/{RBAC}/v1/clusterrolebindings"
    crb = {
        "metadata": {"name": "b"},
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "ServiceAccount", "name": "x"}, {"kind": "User", "name": "u"}],
    }
    r = await api.post(bindings, json=crb)
    assert r.json()["message"] == (
        'ClusterRoleBinding.rbac.authorization.k8s.io "b" is invalid: subjects[0].namespace: Required value'
    )
    crb["subjects"][0]["namespace"] = "default"
    made = await created(api, bindings, crb)
    assert made["subjects"][1]["apiGroup"] == RBAC  # defaulted for User and Group subjects
    made["roleRef"]["name"] = "edit"
    r = await api.put(f"{bindings}/b", json=made)
    assert r.status_code == 422 and r.json()["message"].endswith(
        "roleRef: Invalid value: "
        'rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", Kind:"ClusterRole", Name:"edit"}: cannot change roleRef'
    )


async def test_annotations_over_the_limit_are_refused(api: httpx.AsyncClient) -> None:
    body = {"metadata": {"name": "big", "annotations": {"a": "x" * 262145}}}
    r = await api.post("/api/v1/namespaces/default/configmaps", json=body)
    assert r.status_code == 422
    assert r.json()["message"] == (
        'ConfigMap "big" is invalid: metadata.annotations: Too long: must have at most 262144 bytes'
    )


async def test_new_kinds_are_watched(api: httpx.AsyncClient) -> None:
    await created(api, "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "c1"}, "data": {"k": "v"}})
    events = []
    async with api.stream("GET", "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=1") as stream:
        async for line in stream.aiter_lines():
            if line:
                events.append(json.loads(line))
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "c1")]
    table = await api.get(
        "/api/v1/namespaces/default/configmaps", headers={"accept": "application/json;as=Table;g=meta.k8s.io;v=v1"}
    )
    assert [c["name"] for c in table.json()["columnDefinitions"]] == ["Name", "Data", "Age"]
    assert table.json()["rows"][0]["cells"][:2] == ["c1", 1]
