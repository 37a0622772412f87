"""CustomResourceDefinitions, structural-schema validation, the status subresource, printer columns,
events.k8s.io and Leases, through the simulator's REST API in process (httpx.ASGITransport)."""

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from vm_rebalance.simulator import crdschema
from vm_rebalance.simulator.app import create_app
from vm_rebalance.simulator.cluster import SimCluster

CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
WIDGETS = "/apis/example.dev/v1/namespaces/ns/widgets"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
MERGE = {"Content-Type": "application/merge-patch+json"}

WIDGET_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["size"],
            "properties": {
                "size": {"type": "integer", "minimum": 1, "maximum": 10},
                "color": {"type": "string", "enum": ["red", "blue"], "default": "red"},
                "title": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 8},
                "owner": {"type": "string", "nullable": True},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "port": {"x-kubernetes-int-or-string": True},
            },
        },
        "status": {
            "type": "object",
            "properties": {
                "phase": {"type": "string"},
                "ready": {"type": "boolean"},
                "conditions": {
                    "type": "array",
                    "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                },
            },
        },
    },
}


def widget_crd(scope: str = "Namespaced", plural: str = "widgets", kind: str = "Widget") -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.example.dev"},
        "spec": {
            "group": "example.dev",
            "scope": scope,
            "names": {"plural": plural, "singular": kind.lower(), "kind": kind, "shortNames": [plural[:2]]},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": WIDGET_SCHEMA},
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
                        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                        {
                            "name": "Ready",
                            "type": "string",
                            "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
                        },
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ],
                }
            ],
        },
    }


def widget(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "example.dev/v1", "kind": "Widget", "metadata": {"name": name}, "spec": spec}


@pytest.fixture
def cluster() -> SimCluster:
    c = SimCluster(seed=0)
    c.store.create(("", "namespaces"), {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"}})
    return c


@pytest.fixture
async def api(cluster: SimCluster) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(cluster)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim") as client:
        yield client


async def make_crd(api: httpx.AsyncClient, crd: dict[str, Any] | None = None) -> dict[str, Any]:
    r = await api.post(CRDS, json=crd or widget_crd())
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


# -- registration ---------------------------------------------------------------------------------------


async def test_a_crd_is_established_and_served_at_once(api: httpx.AsyncClient) -> None:
    assert (await api.get(WIDGETS)).status_code == 404
    crd = await make_crd(api)
    conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conditions == {"NamesAccepted": "True", "Established": "True"}
    assert crd["status"]["acceptedNames"]["listKind"] == "WidgetList"
    assert crd["status"]["storedVersions"] == ["v1"]
    assert "customresourcecleanup.apiextensions.k8s.io" in crd["metadata"]["finalizers"]
    groups = (await api.get("/apis")).json()["groups"]
    assert any(g["name"] == "example.dev" for g in groups)
    resources = (await api.get("/apis/example.dev/v1")).json()["resources"]
    assert {r["name"] for r in resources} == {"widgets", "widgets/status"}
    entry = next(r for r in resources if r["name"] == "widgets")
    assert entry["namespaced"] is True and entry["kind"] == "Widget" and entry["shortNames"] == ["wi"]
    assert "apis/example.dev/v1" in (await api.get("/openapi/v3")).json()["paths"]
    r = await api.get(WIDGETS)
    assert r.status_code == 200 and r.json()["kind"] == "WidgetList" and r.json()["items"] == []
    r = await api.get(f"{CRDS}/widgets.example.dev")
    assert r.status_code == 200
    assert [c["metadata"]["name"] for c in (await api.get(CRDS)).json()["items"]] == ["widgets.example.dev"]


async def test_cluster_scoped_crd(api: httpx.AsyncClient) -> None:
    await make_crd(api, widget_crd(scope="Cluster", plural="gadgets", kind="Gadget"))
    r = await api.post("/apis/example.dev/v1/gadgets", json={**widget("g1", size=2), "kind": "Gadget"})
    assert r.status_code == 201, r.text
    assert "namespace" not in r.json()["metadata"]
    assert (await api.get("/apis/example.dev/v1/namespaces/ns/gadgets")).status_code == 404
    assert (await api.get("/apis/example.dev/v1/gadgets/g1")).json()["spec"] == {"size": 2, "color": "red"}


async def test_deleting_a_crd_removes_its_objects_and_stops_serving_it(
    api: httpx.AsyncClient, cluster: SimCluster
) -> None:
    await make_crd(api)
    assert (await api.post(WIDGETS, json=widget("w1", size=1))).status_code == 201
    r = await api.delete(f"{CRDS}/widgets.example.dev")
    assert r.status_code == 200
    assert (await api.get(WIDGETS)).status_code == 404
    cluster.tick()
    assert (await api.get(f"{CRDS}/widgets.example.dev")).status_code == 404
    assert cluster.store.count(("example.dev", "widgets")) == 0
    assert "example.dev" not in json.dumps((await api.get("/apis")).json())


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        pytest.param(
            lambda c: c["metadata"].update(name="wrong.example.dev"),
            "metadata.name",
            'Invalid value: "wrong.example.dev": must be spec.names.plural+"."+spec.group',
            id="name",
        ),
        pytest.param(
            lambda c: c["spec"]["versions"][0].pop("schema"),
            "spec.versions[0].schema.openAPIV3Schema",
            "Required value: schemas are required",
            id="no-schema",
        ),
        pytest.param(
            lambda c: c["spec"]["versions"][0].update(storage=False),
            "spec.versions",
            'Invalid value: ["v1"]: must have exactly one version marked as storage version',
            id="no-storage-version",
        ),
        pytest.param(
            lambda c: c["spec"].update(scope="Global"),
            "spec.scope",
            'Unsupported value: "Global": supported values: "Cluster", "Namespaced"',
            id="scope",
        ),
    ],
)
async def test_invalid_crds_are_422(api: httpx.AsyncClient, change: Any, field: str, message: str) -> None:
    crd = widget_crd()
    change(crd)
    r = await api.post(CRDS, json=crd)
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["reason"] == "Invalid"
    assert body["message"].startswith('CustomResourceDefinition.apiextensions.k8s.io "')
    assert {"reason": body["details"]["causes"][0]["reason"], "field": field, "message": message} in [
        {k: c[k] for k in ("reason", "field", "message")} for c in body["details"]["causes"]
    ]


# -- validation -----------------------------------------------------------------------------------------


async def test_custom_objects_are_validated_like_kube_apiserver_does(api: httpx.AsyncClient) -> None:
    await make_crd(api)
    r = await api.post(WIDGETS, json=widget("w1", size=15, color="green", title="Bad1"))
    assert r.status_code == 422
    body = r.json()
    assert body["reason"] == "Invalid" and body["details"] == {
        "name": "w1",
        "group": "example.dev",
        "kind": "Widget",
        "causes": [
            {
                "reason": "FieldValueNotSupported",
                "message": 'Unsupported value: "green": supported values: "red", "blue"',
                "field": "spec.color",
            },
            {
                "reason": "FieldValueInvalid",
                "message": "Invalid value: 15: spec.size in body should be less than or equal to 10",
                "field": "spec.size",
            },
            {
                "reason": "FieldValueInvalid",
                "message": "Invalid value: \"Bad1\": spec.title in body should match '^[a-z]+$'",
                "field": "spec.title",
            },
        ],
    }
    assert body["message"].startswith(
        'Widget.example.dev "w1" is invalid: [spec.color: Unsupported value: "green": supported values: '
    )
    r = await api.post(WIDGETS, json=widget("w2", size="three"))
    assert r.json()["details"]["causes"] == [
        {
            "reason": "FieldValueTypeInvalid",
            "message": 'Invalid value: "string": spec.size in body must be of type integer: "string"',
            "field": "spec.size",
        }
    ]
    r = await api.post(WIDGETS, json=widget("w3"))
    assert r.json()["details"]["causes"] == [
        {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.size"}
    ]
    r = await api.post(WIDGETS, json=widget("w4", size=0, title=None))
    causes = {c["field"]: c["message"] for c in r.json()["details"]["causes"]}
    assert causes == {
        "spec.title": 'Invalid value: "null": spec.title in body must be of type string: "null"',
        "spec.size": "Invalid value: 0: spec.size in body should be greater than or equal to 1",
    }
    ok = widget("w5", size=3, owner=None, port="http", labels={"a": "b"}, extra={"anything": {"goes": 1}})
    r = await api.post(WIDGETS, json=ok)
    assert r.status_code == 201, r.text
    assert r.json()["spec"]["color"] == "red"  # defaulted
    assert r.json()["spec"]["extra"] == {"anything": {"goes": 1}}  # preserved


async def test_updates_and_patches_are_validated_too(api: httpx.AsyncClient) -> None:
    await make_crd(api)
    await api.post(WIDGETS, json=widget("w1", size=3))
    r = await api.patch(f"{WIDGETS}/w1", json={"spec": {"size": 99}}, headers=MERGE)
    assert r.status_code == 422 and r.json()["details"]["causes"][0]["field"] == "spec.size"
    current = (await api.get(f"{WIDGETS}/w1")).json()
    current["spec"]["color"] = "pink"
    r = await api.put(f"{WIDGETS}/w1", json=current)
    assert r.status_code == 422 and r.json()["details"]["causes"][0]["reason"] == "FieldValueNotSupported"
    r = await api.patch(
        f"{WIDGETS}/w1",
        json=[{"op": "replace", "path": "/spec/size", "value": 4}],
        headers={"Content-Type": "application/json-patch+json"},
    )
    assert r.status_code == 200 and r.json()["spec"]["size"] == 4
    r = await api.patch(
        f"{WIDGETS}/w1", json={"spec": {"size": 5}}, headers={"Content-Type": "application/strategic-merge-patch+json"}
    )
    assert r.status_code == 415


async def test_unknown_fields_are_pruned_warned_or_refused(api: httpx.AsyncClient) -> None:
    await make_crd(api)
    r = await api.post(WIDGETS, json=widget("w1", size=1, bogus=True))
    assert r.status_code == 201
    assert "bogus" not in r.json()["spec"]
    assert r.headers["warning"] == '299 - "unknown field \\"spec.bogus\\""'
    r = await api.post(f"{WIDGETS}?fieldValidation=Strict", json=widget("w2", size=1, bogus=True))
    assert r.status_code == 400
    assert r.json()["message"] == (
        'Widget in version "v1" cannot be handled as a Widget: strict decoding error: unknown field "spec.bogus"'
    )
    r = await api.post(f"{WIDGETS}?fieldValidation=Ignore", json=widget("w3", size=1, bogus=True))
    assert r.status_code == 201 and "warning" not in r.headers


# -- status subresource, generation ---------------------------------------------------------------------


async def test_status_subresource_splits_spec_and_status(api: httpx.AsyncClient) -> None:
    await make_crd(api)
    created = (await api.post(WIDGETS, json={**widget("w1", size=2), "status": {"phase": "Sneaky"}})).json()
    assert "status" not in created  # status is ignored on create
    assert created["metadata"]["generation"] == 1
    r = await api.patch(f"{WIDGETS}/w1/status", json={"status": {"phase": "Ready"}, "spec": {"size": 9}}, headers=MERGE)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == {"phase": "Ready"} and r.json()["spec"]["size"] == 2
    assert r.json()["metadata"]["generation"] == 1  # a status write does not bump the generation
    r = await api.patch(f"{WIDGETS}/w1", json={"status": {"phase": "Ignored"}, "spec": {"size": 3}}, headers=MERGE)
    assert r.json()["status"] == {"phase": "Ready"} and r.json()["spec"]["size"] == 3
    assert r.json()["metadata"]["generation"] == 2
    r = await api.patch(f"{WIDGETS}/w1", json={"metadata": {"labels": {"a": "b"}}}, headers=MERGE)
    assert r.json()["metadata"]["generation"] == 2  # metadata changes do not count
    r = await api.patch(f"{WIDGETS}/w1/status", json={"status": {"ready": "yes"}}, headers=MERGE)
    assert r.status_code == 422
    assert r.json()["details"]["causes"][0]["message"] == (
        'Invalid value: "string": status.ready in body must be of type boolean: "string"'
    )
    current = (await api.get(f"{WIDGETS}/w1")).json()
    current["status"] = {"phase": "ViaPut"}
    r = await api.put(f"{WIDGETS}/w1/status", json=current)
    assert r.status_code == 200 and r.json()["status"] == {"phase": "ViaPut"}
    stale = dict(current, metadata={**current["metadata"], "resourceVersion": "1"})
    assert (await api.put(f"{WIDGETS}/w1", json=stale)).status_code == 409


async def test_printer_columns_in_table_output(api: httpx.AsyncClient) -> None:
    await make_crd(api)
    await api.post(WIDGETS, json=widget("w1", size=2))
    await api.patch(
        f"{WIDGETS}/w1/status",
        json={"status": {"phase": "Ready", "conditions": [{"type": "Ready", "status": "True"}]}},
        headers=MERGE,
    )
    table = (await api.get(WIDGETS, headers={"Accept": TABLE})).json()
    assert table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Size", "Phase", "Ready", "Age"]
    assert table["rows"][0]["cells"][:4] == ["w1", 2, "Ready", "True"]
    crd = widget_crd(plural="bares", kind="Bare")
    del crd["spec"]["versions"][0]["additionalPrinterColumns"]
    await make_crd(api, crd)
    table = (await api.get("/apis/example.dev/v1/namespaces/ns/bares", headers={"Accept": TABLE})).json()
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Age"]


def test_jsonpath_subset() -> None:
    from vm_rebalance.simulator.tables import jsonpath_values

    obj = {"a": {"b": [{"t": "x", "v": 1}, {"t": "y", "v": 2}]}}
    assert jsonpath_values(obj, ".a.b[1].v") == [2]
    assert jsonpath_values(obj, ".a.b[*].v") == [1, 2]
    assert jsonpath_values(obj, '.a.b[?(@.t=="y")].v') == [2]
    assert jsonpath_values(obj, "{.a.missing}") == []


# -- watch, events, leases -------------------------------------------------------------------------------


async def test_watch_a_custom_resource(api: httpx.AsyncClient) -> None:
    await make_crd(api)
    rv = (await api.get(WIDGETS)).json()["metadata"]["resourceVersion"]
    await api.post(WIDGETS, json=widget("w1", size=1))
    await api.patch(f"{WIDGETS}/w1/status", json={"status": {"phase": "Up"}}, headers=MERGE)
    await api.delete(f"{WIDGETS}/w1")
    seen = []
    async with api.stream("GET", f"{WIDGETS}?watch=true&resourceVersion={rv}&timeoutSeconds=1") as r:
        async for line in r.aiter_lines():
            if line:
                seen.append(json.loads(line)["type"])
    assert seen == ["ADDED", "MODIFIED", "DELETED"]


async def test_events_are_served_by_both_event_apis(api: httpx.AsyncClient) -> None:
    core = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "e1", "namespace": "ns"},
        "involvedObject": {"kind": "Widget", "name": "w1", "namespace": "ns", "apiVersion": "example.dev/v1"},
        "reason": "Created",
        "message": "made it",
        "type": "Normal",
        "source": {"component": "test"},
        "count": 1,
    }
    assert (await api.post("/api/v1/namespaces/ns/events", json=core)).status_code == 201
    new = (await api.get("/apis/events.k8s.io/v1/namespaces/ns/events/e1")).json()
    assert new["apiVersion"] == "events.k8s.io/v1"
    assert new["note"] == "made it" and new["regarding"]["name"] == "w1"
    assert new["deprecatedSource"] == {"component": "test"} and new["deprecatedCount"] == 1
    v1 = {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": "e2", "namespace": "ns"},
        "eventTime": "2026-08-01T10:00:00.000000Z",
        "reportingController": "example.dev/controller",
        "reportingInstance": "controller-1",
        "action": "Reconcile",
        "reason": "Done",
        "regarding": {"kind": "Widget", "name": "w1", "namespace": "ns"},
        "note": "reconciled",
        "type": "Normal",
    }
    r = await api.post("/apis/events.k8s.io/v1/namespaces/ns/events", json=v1)
    assert r.status_code == 201, r.text
    assert r.json()["note"] == "reconciled"
    legacy = (await api.get("/api/v1/namespaces/ns/events/e2")).json()
    assert legacy["message"] == "reconciled" and legacy["involvedObject"]["name"] == "w1"
    assert legacy["reportingComponent"] == "example.dev/controller"
    r = await api.patch(
        "/apis/events.k8s.io/v1/namespaces/ns/events/e2",
        json={"series": {"count": 2, "lastObservedTime": "2026-08-01T10:01:00.000000Z"}},
        headers=MERGE,
    )
    assert r.status_code == 200 and r.json()["series"]["count"] == 2
    items = (await api.get("/apis/events.k8s.io/v1/events")).json()["items"]
    assert {i["metadata"]["name"] for i in items} == {"e1", "e2"}
    assert all(i["apiVersion"] == "events.k8s.io/v1" for i in items)
    table = (await api.get("/apis/events.k8s.io/v1/namespaces/ns/events", headers={"Accept": TABLE})).json()
    assert table["rows"][1]["cells"][3:] == ["widget/w1", "reconciled"]


async def test_leases_with_optimistic_concurrency(api: httpx.AsyncClient) -> None:
    leases = "/apis/coordination.k8s.io/v1/namespaces/ns/leases"
    lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "leader"},
        "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15, "acquireTime": "2026-08-01T10:00:00.000000Z"},
    }
    created = (await api.post(leases, json=lease)).json()
    first = dict(created, spec={**created["spec"], "holderIdentity": "b"})
    second = dict(created, spec={**created["spec"], "holderIdentity": "c"})
    results = await asyncio.gather(api.put(f"{leases}/leader", json=first), api.put(f"{leases}/leader", json=second))
    assert sorted(r.status_code for r in results) == [200, 409]
    table = (await api.get(leases, headers={"Accept": TABLE})).json()
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Holder", "Age"]
    assert table["rows"][0]["cells"][1] in ("b", "c")


# -- schema helpers -------------------------------------------------------------------------------------


def test_prune_keeps_preserved_subtrees_and_reports_paths() -> None:
    obj = {"metadata": {}, "spec": {"size": 1, "x": 1, "extra": {"free": 1}, "labels": {"k": "v"}}, "other": 2}
    assert sorted(crdschema.prune(obj, WIDGET_SCHEMA)) == ["other", "spec.x"]
    assert obj["spec"] == {"size": 1, "extra": {"free": 1}, "labels": {"k": "v"}}


def test_structural_problems() -> None:
    assert crdschema.structural_problems({"type": "object", "properties": {"a": {}}}, "s") == [
        {
            "reason": "FieldValueRequired",
            "field": "s.properties[a].type",
            "message": "Required value: must not be empty for specified object fields",
        }
    ]


async def test_watch_leases_and_events_k8s_io(api: httpx.AsyncClient) -> None:
    leases = "/apis/coordination.k8s.io/v1/namespaces/ns/leases"
    events_v1 = "/apis/events.k8s.io/v1/namespaces/ns/events"
    rv = (await api.get(leases)).json()["metadata"]["resourceVersion"]
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "l"}, "spec": {}}
    await api.post(leases, json=lease)
    await api.patch(f"{leases}/l", json={"spec": {"holderIdentity": "x"}}, headers=MERGE)
    core = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "e", "namespace": "ns"},
        "involvedObject": {"kind": "Lease", "name": "l", "namespace": "ns"},
        "message": "renewed",
        "reason": "Renewed",
    }
    await api.post("/api/v1/namespaces/ns/events", json=core)
    seen = []
    async with api.stream("GET", f"{leases}?watch=true&resourceVersion={rv}&timeoutSeconds=1") as r:
        async for line in r.aiter_lines():
            if line:
                seen.append(json.loads(line)["type"])
    assert seen == ["ADDED", "MODIFIED"]
    got = []
    async with api.stream("GET", f"{events_v1}?watch=true&resourceVersion={rv}&timeoutSeconds=1") as r:
        async for line in r.aiter_lines():
            if line:
                got.append(json.loads(line)["object"])
    assert [(o["apiVersion"], o["note"]) for o in got] == [("events.k8s.io/v1", "renewed")]
