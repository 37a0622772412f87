"""Watch over the simulator's REST API: initial events, resume from a resourceVersion, bookmarks, 410."""

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from vm_rebalance.simulator.app import create_app
from vm_rebalance.simulator.cluster import SimCluster

VMIMS = "/apis/kubevirt.io/v1/namespaces/ns/virtualmachineinstancemigrations"


@pytest.fixture
def cluster() -> SimCluster:
    return SimCluster(seed=0)


@pytest.fixture
async def api(cluster: SimCluster) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(cluster, bookmark_interval=0.2)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim") as client:
        yield client


def lines(response: httpx.Response) -> list[dict[str, object]]:
    return [json.loads(line) for line in response.text.splitlines() if line.strip()]


def add_lease(cluster: SimCluster, name: str) -> dict[str, object]:
    return cluster.store.create(
        ("coordination.k8s.io", "leases"),
        {"metadata": {"name": name, "namespace": "ns", "labels": {"app": name}}},
    )


async def test_watch_without_rv_sends_initial_added_events(api: httpx.AsyncClient, cluster: SimCluster) -> None:
    add_lease(cluster, "a")
    add_lease(cluster, "b")
    r = await api.get("/apis/coordination.k8s.io/v1/namespaces/ns/leases?watch=1&timeoutSeconds=0.3")
    events = lines(r)
    assert [e["type"] for e in events] == ["ADDED", "ADDED"]
    assert events[0]["object"]["kind"] == "Lease"  # type: ignore[index]


async def test_watch_from_rv_replays_changes_with_selector(api: httpx.AsyncClient, cluster: SimCluster) -> None:
    start = cluster.store.resource_version()
    add_lease(cluster, "a")
    add_lease(cluster, "b")
    cluster.store.delete(("coordination.k8s.io", "leases"), "ns", "a")
    r = await api.get(
        f"/apis/coordination.k8s.io/v1/namespaces/ns/leases?watch=true&resourceVersion={start}"
        "&labelSelector=app%3Da&timeoutSeconds=0.3"
    )
    assert [e["type"] for e in lines(r)] == ["ADDED", "DELETED"]


async def test_watch_sends_bookmarks_when_allowed(api: httpx.AsyncClient, cluster: SimCluster) -> None:
    rv = cluster.store.resource_version()
    r = await api.get(
        f"/apis/coordination.k8s.io/v1/leases?watch=1&resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds=0.5"
    )
    events = lines(r)
    assert events and all(e["type"] == "BOOKMARK" for e in events)
    assert events[0]["object"] == {
        "kind": "Lease",
        "apiVersion": "coordination.k8s.io/v1",
        "metadata": {"resourceVersion": str(rv)},
    }


async def test_watch_from_too_old_rv_is_a_410_expired_error_event(cluster: SimCluster) -> None:
    from vm_rebalance.simulator.store import Store

    cluster.store = Store(history_size=2)
    app = create_app(cluster)
    for i in range(5):
        cluster.store.create(("coordination.k8s.io", "leases"), {"metadata": {"name": f"l{i}", "namespace": "ns"}})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim") as client:
        r = await client.get("/apis/coordination.k8s.io/v1/leases?watch=1&resourceVersion=1&timeoutSeconds=1")
    assert r.status_code == 200
    [event] = lines(r)
    assert event["type"] == "ERROR"
    obj = event["object"]
    assert obj["code"] == 410 and obj["reason"] == "Expired"  # type: ignore[index]
    assert obj["message"].startswith("too old resource version: 1 (")  # type: ignore[index]
