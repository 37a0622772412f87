"""Every object the simulator serves decodes in strict clients.

1. Schema: every Kubernetes kind the simulator serves (lists, items, discovery documents, Status errors,
   watch events) is validated against the Kubernetes OpenAPI schema, in the strict JSON-schema form that
   the PyPI package ``kubernetes-validate`` ships (generated from Kubernetes' own OpenAPI document by
   openapi2jsonschema; "strict" = ``additionalProperties: false``, so invented fields fail too).
   KubeVirt, CDI and metrics.k8s.io kinds are not part of that schema and are not checked here.
2. lightkube, whose models follow the same OpenAPI schema and refuse objects missing required fields,
   lists, watches, creates and updates through a real SimulatorServer over HTTPS.
"""

import json
import re
import threading
from collections.abc import AsyncIterator, Iterator
from importlib import resources as importlib_resources
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from referencing import Registry, Resource

from simulator.clientcluster import small_cluster
from vm_rebalance.simulator.app import create_app
from vm_rebalance.simulator.builders import node, sim_cluster, vm
from vm_rebalance.simulator.cluster import SimCluster
from vm_rebalance.simulator.server import SimulatorServer

SCHEMA_VERSION = "v1.36.0-local-strict"  # the simulator reports Kubernetes 1.36
_BASE = importlib_resources.files("kubernetes_validate") / "kubernetes-json-schema" / SCHEMA_VERSION
_DEFINITIONS = Resource.from_contents(json.loads((_BASE / "_definitions.json").read_text()))
_VALIDATORS: dict[str, jsonschema.Draft202012Validator | None] = {}


def schema_file(kind: str, api_version: str) -> str:
    """kubernetes-validate's file name of a kind (``pod-v1.json``, ``lease-coordination-v1.json``)."""
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    return f"{kind.lower()}-{group_version}.json"


def validator(filename: str) -> jsonschema.Draft202012Validator | None:
    if filename not in _VALIDATORS:
        path = _BASE / filename
        if not path.is_file():
            _VALIDATORS[filename] = None
        else:
            schema = json.loads(path.read_text())
            registry = _DEFINITIONS @ (Resource.from_contents(schema) @ Registry())  # type: ignore[var-annotated]
            _VALIDATORS[filename] = jsonschema.Draft202012Validator(schema, registry=registry)
    return _VALIDATORS[filename]


def problems(doc: Any, filename: str) -> list[str]:
    v = validator(filename)
    assert v is not None, f"kubernetes-validate has no schema {filename}"
    return [f"{filename} /{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}" for e in v.iter_errors(doc)]


def test_schema_files_are_found() -> None:
    assert schema_file("Pod", "v1") == "pod-v1.json"
    assert schema_file("Lease", "coordination.k8s.io/v1") == "lease-coordination-v1.json"
    assert validator("pod-v1.json") is not None
    assert validator("virtualmachine-kubevirt-v1.json") is None


@pytest.fixture
def busy_cluster() -> SimCluster:
    """Nodes, running and stopped VMs, a finished migration, scheduling events."""
    objects = [node("w1"), node("w2"), node("w3", unschedulable=True)]
    objects += vm("web", node="w1", memory="2Gi") + vm("db", node="w2", memory="4Gi") + vm("off", run_strategy="Halted")
    c = sim_cluster(*objects)
    vmim = {"metadata": {"name": "m1", "namespace": "default"}, "spec": {"vmiName": "web"}}
    c.store.create(
        ("kubevirt.io", "virtualmachineinstancemigrations"),
        c.admit("create", ("kubevirt.io", "virtualmachineinstancemigrations"), vmim, None, "admin") or vmim,
    )
    assert c.run_until(
        lambda: (
            (c.store.get(("kubevirt.io", "virtualmachineinstancemigrations"), "default", "m1").get("status") or {}).get(
                "phase"
            )
            == "Succeeded"
        ),
        timeout_seconds=300,
    )
    return c


@pytest.fixture
async def api(busy_cluster: SimCluster) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(busy_cluster)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim") as client:
        yield client


async def _extra_objects(api: httpx.AsyncClient) -> None:
    """Objects of the kinds the scenario does not make by itself, created as a client would."""
    lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "leader"},
        "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15, "renewTime": "2026-08-01T10:00:00.000000Z"},
    }
    pdb = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "web"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}},
    }
    sc = {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": "fast"},
        "provisioner": "example.dev/fast",
    }
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.dev"},
        "spec": {
            "group": "example.dev",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                }
            ],
        },
    }
    event = {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": "w.1", "namespace": "default"},
        "eventTime": "2026-08-01T10:00:00.000000Z",
        "reportingController": "example.dev/c",
        "reportingInstance": "c-1",
        "action": "Reconcile",
        "reason": "Done",
        "regarding": {"kind": "Widget", "name": "w", "namespace": "default"},
        "type": "Normal",
    }
    pvc = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "disk"},
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "10Gi"}}},
    }
    labels = {"app": "web"}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": "web",
                    "containers": [{"name": "web", "image": "quay.io/x/web:1", "ports": [{"containerPort": 80}]}],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"type": "NodePort", "selector": labels, "ports": [{"port": 80, "targetPort": 80}]},
    }
    role_rules = [{"apiGroups": [""], "resources": ["pods"], "resourceNames": ["p"], "verbs": ["get"]}]
    ref = {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "reader"}
    subjects = [{"kind": "ServiceAccount", "name": "web", "namespace": "default"}, {"kind": "User", "name": "u"}]
    rbac = "/apis/rbac.authorization.k8s.io/v1"
    for path, body in (
        ("/api/v1/namespaces", {"metadata": {"name": "team"}}),
        ("/api/v1/namespaces/default/serviceaccounts", {"metadata": {"name": "web"}}),
        ("/api/v1/namespaces/default/configmaps", {"metadata": {"name": "cfg"}, "data": {"a": "b"}}),
        ("/api/v1/namespaces/default/secrets", {"metadata": {"name": "s"}, "stringData": {"k": "v"}}),
        ("/api/v1/namespaces/default/services", service),
        ("/apis/apps/v1/namespaces/default/deployments", deployment),
        (f"{rbac}/clusterroles", {"metadata": {"name": "reader"}, "rules": role_rules}),
        (f"{rbac}/namespaces/default/roles", {"metadata": {"name": "reader"}, "rules": role_rules}),
        (f"{rbac}/clusterrolebindings", {"metadata": {"name": "reader"}, "roleRef": ref, "subjects": subjects}),
        (
            f"{rbac}/namespaces/default/rolebindings",
            {"metadata": {"name": "reader"}, "roleRef": ref, "subjects": subjects},
        ),
        ("/api/v1/namespaces/default/persistentvolumeclaims", pvc),
        ("/apis/coordination.k8s.io/v1/namespaces/default/leases", lease),
        ("/apis/policy/v1/namespaces/default/poddisruptionbudgets", pdb),
        ("/apis/storage.k8s.io/v1/storageclasses", sc),
        ("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd),
        ("/apis/events.k8s.io/v1/namespaces/default/events", event),
    ):
        r = await api.post(path, json=body)
        assert r.status_code == 201, r.text


@pytest.mark.slow  # ~3 s: a schema per served kind to compile and check
async def test_every_served_kubernetes_kind_matches_the_openapi_schema(
    api: httpx.AsyncClient, busy_cluster: SimCluster
) -> None:
    await _extra_objects(api)
    busy_cluster.step(3.5)  # the Deployment's status becomes available, the new namespace gets its ServiceAccount
    found: list[str] = []
    checked: dict[str, int] = {}
    found += problems((await api.get("/api")).json() | {"apiVersion": "v1"}, "apiversions-meta-v1.json")
    groups = (await api.get("/apis")).json()
    found += problems(groups, "apigrouplist-meta-v1.json")
    paths = ["/api/v1"] + [f"/apis/{g['name']}/{v['version']}" for g in groups["groups"] for v in g["versions"]]
    for g in groups["groups"]:
        found += problems((await api.get(f"/apis/{g['name']}")).json(), "apigroup-meta-v1.json")
    for gv_path in paths:
        doc = (await api.get(gv_path)).json()
        found += problems(doc, "apiresourcelist-meta-v1.json")
        api_version = doc["groupVersion"]
        for res in doc["resources"]:
            if "/" in res["name"] or "list" not in res["verbs"]:
                continue
            if validator(schema_file(res["kind"], api_version)) is None:
                continue  # KubeVirt, CDI and metrics.k8s.io kinds: not in the Kubernetes schema
            r = await api.get(f"{gv_path}/{res['name']}")
            assert r.status_code == 200, r.text
            body = r.json()
            found += problems(body, schema_file(body["kind"], api_version))
            for item in body["items"]:
                found += problems(item, schema_file(res["kind"], api_version))
            checked[f"{api_version} {res['kind']}"] = len(body["items"])
    for kind in ("v1 Pod", "v1 Node", "v1 Event", "events.k8s.io/v1 Event", "v1 Namespace", "v1 PersistentVolumeClaim"):
        assert checked.get(kind, 0) > 0, (kind, checked)
    for kind in (
        "coordination.k8s.io/v1 Lease",
        "apiextensions.k8s.io/v1 CustomResourceDefinition",
        "v1 ServiceAccount",
        "v1 ConfigMap",
        "v1 Secret",
        "v1 Service",
        "apps/v1 Deployment",
        "rbac.authorization.k8s.io/v1 ClusterRole",
        "rbac.authorization.k8s.io/v1 ClusterRoleBinding",
        "rbac.authorization.k8s.io/v1 Role",
        "rbac.authorization.k8s.io/v1 RoleBinding",
        "policy/v1 PodDisruptionBudget",
    ):
        assert checked.get(kind, 0) > 0, (kind, checked)
    deployments = (await api.get("/apis/apps/v1/deployments")).json()["items"]
    assert deployments[0]["status"]["availableReplicas"] == 2  # a status was checked, not an empty one
    r = await api.get("/api/v1/namespaces/default/pods/missing")
    found += problems(r.json(), "status-meta-v1.json")
    r = await api.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json={"metadata": {"name": "x"}})
    assert r.status_code == 422
    found += problems(r.json(), "status-meta-v1.json")
    lines = []
    async with api.stream("GET", "/api/v1/pods?watch=true&timeoutSeconds=1") as stream:
        async for line in stream.aiter_lines():
            if line:
                lines.append(json.loads(line))
    assert lines
    for event in lines:
        found += problems(event, "watchevent-meta-v1.json")
        found += problems(event["object"], "pod-v1.json")
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {"verb": "list", "resource": "pods"}},
    }
    r = await api.post("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", json=review)
    found += problems(r.json(), "selfsubjectaccessreview-authorization-v1.json")
    for plural, spec, filename in (
        ("selfsubjectrulesreviews", {"namespace": "default"}, "selfsubjectrulesreview-authorization-v1.json"),
        (
            "subjectaccessreviews",
            {"user": "u", "groups": ["g"], "resourceAttributes": {"verb": "get", "resource": "pods"}},
            "subjectaccessreview-authorization-v1.json",
        ),
    ):
        r = await api.post(f"/apis/authorization.k8s.io/v1/{plural}", json={"spec": spec})
        assert r.status_code == 201, r.text
        found += problems(r.json(), filename)
    r = await api.post("/apis/authentication.k8s.io/v1/selfsubjectreviews", json={})
    found += problems(r.json(), "selfsubjectreview-authentication-v1.json")
    r = await api.post(
        "/api/v1/namespaces/default/serviceaccounts/web/token", json={"spec": {"expirationSeconds": 3600}}
    )
    assert r.status_code == 201, r.text
    found += problems(r.json(), "tokenrequest-authentication-v1.json")
    r = await api.delete("/api/v1/namespaces/team")
    found += problems(r.json(), "namespace-v1.json")
    async with api.stream("GET", "/apis/apps/v1/deployments?watch=true&timeoutSeconds=1") as stream:
        async for line in stream.aiter_lines():
            if line:
                found += problems(json.loads(line)["object"], "deployment-apps-v1.json")
    assert found == []


# -- lightkube ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SimulatorServer, Path]]:
    cluster = small_cluster(seed=5)
    with SimulatorServer(cluster) as srv:
        path = tmp_path_factory.mktemp("lightkube") / "config"
        srv.write_kubeconfig(path)
        yield srv, path


@pytest.mark.e2e
@pytest.mark.e2e
def test_lightkube_reads_and_writes_through_the_real_api(server: tuple[SimulatorServer, Path]) -> None:
    from lightkube import Client, KubeConfig
    from lightkube.core.exceptions import ApiError
    from lightkube.generic_resource import create_namespaced_resource
    from lightkube.models.coordination_v1 import LeaseSpec
    from lightkube.models.core_v1 import ObjectReference
    from lightkube.models.meta_v1 import ObjectMeta
    from lightkube.resources.coordination_v1 import Lease
    from lightkube.resources.core_v1 import Event, Namespace, Node, PersistentVolumeClaim, Pod

    srv, path = server
    deadline = 200
    while (
        deadline
        and sum(1 for p in srv.cluster.store.list(("", "pods"))[0] if p.get("status", {}).get("phase") == "Running") < 4
    ):
        threading.Event().wait(0.05)
        deadline -= 1
    client = Client(KubeConfig.from_file(str(path)))
    pods = list(client.list(Pod, namespace="*"))
    running = [p for p in pods if p.status and p.status.phase == "Running"]
    assert len(running) >= 4
    assert all(cs.imageID for p in running for cs in p.status.containerStatuses or [])
    assert len(list(client.list(Node))) == 3
    assert {n.metadata.name for n in client.list(Namespace)} >= {"default", "kubevirt"}
    list(client.list(PersistentVolumeClaim, namespace="*"))
    client.create(
        Event(
            metadata=ObjectMeta(name="lk.1", namespace="default"),
            involvedObject=ObjectReference(kind="Pod", name=running[0].metadata.name, namespace="default"),
            reason="Tested",
            message="by lightkube",
            type="Normal",
        )
    )
    assert [e.message for e in client.list(Event, namespace="default")] == ["by lightkube"]
    created = client.create(
        Lease(metadata=ObjectMeta(name="lk", namespace="default"), spec=LeaseSpec(holderIdentity="a"))
    )
    created.spec.holderIdentity = "b"
    updated = client.replace(created)
    assert updated.spec.holderIdentity == "b"
    created.spec.holderIdentity = "c"  # stale resourceVersion
    with pytest.raises(ApiError) as err:
        client.replace(created)
    assert err.value.status.code == 409
    virtual_machine = create_namespaced_resource("kubevirt.io", "v1", "VirtualMachine", "virtualmachines")
    vms = list(client.list(virtual_machine, namespace="default"))
    assert len(vms) == 6
    expected = {p.metadata.name for p in client.list(Pod, namespace="default")}
    seen: dict[str, str] = {}
    for op, pod in client.watch(Pod, namespace="default"):
        seen[pod.metadata.name] = op
        if set(seen) == expected:
            break
    assert set(seen.values()) == {"ADDED"}
    client.close()


@pytest.mark.e2e
def test_lightkube_decodes_the_deployment_kinds_and_rbac(server: tuple[SimulatorServer, Path]) -> None:
    """lightkube's typed models for what a deployment applies, created and read back (strict decoding),
    a ServiceAccount token through the TokenRequest subresource, and that token's identity in RBAC mode."""
    from lightkube import Client, KubeConfig
    from lightkube.core.exceptions import ApiError
    from lightkube.models.apps_v1 import DeploymentSpec
    from lightkube.models.authentication_v1 import TokenRequestSpec
    from lightkube.models.core_v1 import Container, ContainerPort, PodSpec, PodTemplateSpec, ServicePort, ServiceSpec
    from lightkube.models.meta_v1 import LabelSelector, ObjectMeta
    from lightkube.models.rbac_v1 import PolicyRule, RoleRef, Subject
    from lightkube.resources.apps_v1 import Deployment
    from lightkube.resources.authorization_v1 import SelfSubjectAccessReview
    from lightkube.resources.core_v1 import ConfigMap, Namespace, Secret, Service, ServiceAccount
    from lightkube.resources.rbac_authorization_v1 import ClusterRole, ClusterRoleBinding, Role, RoleBinding

    srv, path = server
    client = Client(KubeConfig.from_file(str(path)))
    client.create(Namespace(metadata=ObjectMeta(name="lk")))
    client.create(ServiceAccount(metadata=ObjectMeta(name="lk-sa", namespace="lk")))
    client.create(ConfigMap(metadata=ObjectMeta(name="cfg", namespace="lk"), data={"a": "b"}))
    client.create(Secret(metadata=ObjectMeta(name="sec", namespace="lk"), stringData={"k": "v"}))
    labels = {"app": "lk"}
    client.create(
        Deployment(
            metadata=ObjectMeta(name="lk", namespace="lk"),
            spec=DeploymentSpec(
                selector=LabelSelector(matchLabels=labels),
                template=PodTemplateSpec(
                    metadata=ObjectMeta(labels=labels),
                    spec=PodSpec(
                        serviceAccountName="lk-sa",
                        containers=[
                            Container(name="c", image="quay.io/x/y:1", ports=[ContainerPort(containerPort=80)])
                        ],
                    ),
                ),
            ),
        )
    )
    svc = client.create(
        Service(
            metadata=ObjectMeta(name="lk", namespace="lk"),
            spec=ServiceSpec(selector=labels, ports=[ServicePort(port=80)]),
        )
    )
    assert svc.spec.clusterIP and svc.spec.ports[0].protocol == "TCP"
    assert client.get(Secret, "sec", namespace="lk").data == {"k": "dg=="}
    assert [s.metadata.name for s in client.list(ServiceAccount, namespace="lk")] == ["default", "lk-sa"]
    rule = PolicyRule(apiGroups=["apps"], resources=["deployments"], verbs=["get", "list"])
    client.create(ClusterRole(metadata=ObjectMeta(name="lk-deploy-reader"), rules=[rule]))
    client.create(
        ClusterRoleBinding(
            metadata=ObjectMeta(name="lk-deploy-reader"),
            roleRef=RoleRef(apiGroup="rbac.authorization.k8s.io", kind="ClusterRole", name="lk-deploy-reader"),
            subjects=[Subject(kind="ServiceAccount", name="lk-sa", namespace="lk")],
        )
    )
    client.create(Role(metadata=ObjectMeta(name="r", namespace="lk"), rules=[rule]))
    client.create(
        RoleBinding(
            metadata=ObjectMeta(name="r", namespace="lk"),
            roleRef=RoleRef(apiGroup="rbac.authorization.k8s.io", kind="Role", name="r"),
            subjects=[Subject(kind="User", name="someone", apiGroup="rbac.authorization.k8s.io")],
        )
    )
    assert {r.metadata.name for r in client.list(ClusterRole)} >= {"cluster-admin", "lk-deploy-reader"}
    assert [b.roleRef.name for b in client.list(RoleBinding, namespace="lk")] == ["r"]
    deadline = 200
    while deadline and not (client.get(Deployment, "lk", namespace="lk").status.availableReplicas or 0):
        threading.Event().wait(0.05)
        deadline -= 1
    assert client.get(Deployment, "lk", namespace="lk").status.availableReplicas == 1
    token = client.create(
        ServiceAccount.Token(metadata=ObjectMeta(), spec=TokenRequestSpec(audiences=[], expirationSeconds=1200)),
        "lk-sa",
        namespace="lk",
    )
    assert token.status.token and token.status.expirationTimestamp
    client.close()

    def client_with(bearer: str) -> Client:
        config = srv.kubeconfig()
        config["users"][0]["user"]["token"] = bearer
        return Client(KubeConfig.from_dict(config))

    # this server authorizes everyone; the review sees the token's identity
    review = SelfSubjectAccessReview.from_dict(
        {"spec": {"resourceAttributes": {"verb": "get", "resource": "deployments", "group": "apps"}}}
    )
    as_sa = client_with(token.status.token)
    assert as_sa.create(review).status.allowed is True
    assert [d.metadata.name for d in as_sa.list(Deployment, namespace="lk")] == ["lk"]
    as_sa.close()
    with pytest.raises(ApiError) as err:
        list(client_with("not-a-token").list(Namespace))
    assert err.value.status.code == 401
    assert srv.cluster.store.try_get(("", "serviceaccounts"), "lk", "lk-sa") is not None
