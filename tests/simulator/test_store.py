"""The object store: identity fields, optimistic concurrency, finalizers, watch history, speed."""

import pytest

from vm_rebalance.simulator.store import (
    AlreadyExistsError,
    ConflictError,
    GoneError,
    NotFoundError,
    Store,
    WatchEvent,
)

VM = ("kubevirt.io", "virtualmachines")
VMI = ("kubevirt.io", "virtualmachineinstances")
NODE = ("", "nodes")
NODE_METRICS = ("metrics.k8s.io", "nodes")


def make_store() -> Store:
    return Store(clock=lambda: "2026-01-01T00:00:00Z", seed=1)


def vm(name: str, ns: str = "ns", run: str = "Always") -> dict:
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"runStrategy": run},
    }


def test_create_assigns_identity_fields() -> None:
    store = make_store()
    out = store.create(VM, vm("a"))
    meta = out["metadata"]
    assert meta["uid"] and meta["creationTimestamp"] == "2026-01-01T00:00:00Z"
    assert meta["generation"] == 1
    assert meta["resourceVersion"] == str(store.resource_version())


def test_create_duplicate_raises_already_exists() -> None:
    store = make_store()
    store.create(VM, vm("a"))
    with pytest.raises(AlreadyExistsError):
        store.create(VM, vm("a"))
    store.create(VM, vm("a", ns="other"))  # other namespace is fine


def test_generate_name_is_seeded_and_unique() -> None:
    names = []
    for _ in range(2):
        store = make_store()
        obj = {"metadata": {"generateName": "kubevirt-migrate-vm-", "namespace": "ns"}, "spec": {}}
        names.append([store.create(VM, obj)["metadata"]["name"] for _ in range(20)])
    assert names[0] == names[1]
    assert len(set(names[0])) == 20
    assert all(n.startswith("kubevirt-migrate-vm-") and len(n) == len("kubevirt-migrate-vm-") + 5 for n in names[0])


def test_returned_objects_are_copies() -> None:
    store = make_store()
    out = store.create(VM, vm("a"))
    out["spec"]["runStrategy"] = "Halted"
    got = store.get(VM, "ns", "a")
    assert got["spec"]["runStrategy"] == "Always"
    got["spec"]["runStrategy"] = "Halted"
    assert store.get(VM, "ns", "a")["spec"]["runStrategy"] == "Always"


def test_get_missing_raises_not_found() -> None:
    store = make_store()
    with pytest.raises(NotFoundError) as exc:
        store.get(VM, "ns", "nope")
    assert exc.value.name == "nope" and exc.value.key == VM
    assert store.try_get(VM, "ns", "nope") is None


def test_list_is_sorted_and_filters_namespace() -> None:
    store = make_store()
    for ns, name in [("b", "x"), ("a", "z"), ("a", "y")]:
        store.create(VM, vm(name, ns))
    items, rv = store.list(VM)
    assert [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in items] == [("a", "y"), ("a", "z"), ("b", "x")]
    assert rv == store.resource_version()
    items, _ = store.list(VM, "a")
    assert [i["metadata"]["name"] for i in items] == ["y", "z"]
    assert store.list(VMI) == ([], rv)


def test_cluster_scoped_objects_have_no_namespace() -> None:
    store = make_store()
    store.create(NODE, {"metadata": {"name": "n1"}, "spec": {}})
    assert "namespace" not in store.get(NODE, None, "n1")["metadata"]
    assert store.get(NODE, "", "n1")["metadata"]["name"] == "n1"


def test_update_with_stale_resource_version_conflicts() -> None:
    store = make_store()
    first = store.create(VM, vm("a"))
    second = store.update(VM, {**first, "spec": {"runStrategy": "Halted"}})
    with pytest.raises(ConflictError):
        store.update(VM, {**first, "spec": {"runStrategy": "Manual"}})
    assert int(second["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])


def test_update_without_resource_version_is_unconditional() -> None:
    store = make_store()
    store.create(VM, vm("a"))
    obj = vm("a")
    obj["spec"]["runStrategy"] = "Manual"
    assert store.update(VM, obj)["spec"]["runStrategy"] == "Manual"


def test_update_keeps_identity_and_bumps_generation_only_on_spec_change() -> None:
    store = make_store()
    first = store.create(VM, vm("a"))
    labelled = store.update(VM, {**first, "metadata": {**first["metadata"], "labels": {"x": "1"}, "uid": "forged"}})
    assert labelled["metadata"]["uid"] == first["metadata"]["uid"]
    assert labelled["metadata"]["generation"] == 1
    changed = store.update(VM, {**labelled, "spec": {"runStrategy": "Halted"}})
    assert changed["metadata"]["generation"] == 2


def test_main_resource_update_ignores_status_for_status_subresource_kinds() -> None:
    store = make_store()
    first = store.create(VM, vm("a"))
    with_status = store.update(VM, {**first, "status": {"printableStatus": "Running"}}, subresource="status")
    assert with_status["status"] == {"printableStatus": "Running"}
    assert with_status["metadata"]["generation"] == 1
    after = store.update(
        VM, {**with_status, "status": {"printableStatus": "Forged"}, "spec": {"runStrategy": "Halted"}}
    )
    assert after["status"] == {"printableStatus": "Running"}
    assert after["spec"] == {"runStrategy": "Halted"}


def test_status_update_changes_only_status() -> None:
    store = make_store()
    first = store.create(VM, vm("a"))
    out = store.update(
        VM, {**first, "spec": {"runStrategy": "Halted"}, "status": {"ready": True}}, subresource="status"
    )
    assert out["spec"]["runStrategy"] == "Always"
    assert out["status"] == {"ready": True}


def test_vmi_without_status_subresource_updates_everything() -> None:
    store = make_store()
    first = store.create(
        VMI, {"metadata": {"name": "a", "namespace": "ns"}, "spec": {}, "status": {"phase": "Pending"}}
    )
    out = store.update(VMI, {**first, "status": {"phase": "Running"}})
    assert out["status"]["phase"] == "Running"


def test_delete_with_finalizer_sets_deletion_timestamp_until_finalizer_removed() -> None:
    store = make_store()
    obj = vm("a")
    obj["metadata"]["finalizers"] = ["kubevirt.io/migrationJobFinalize"]
    store.create(VM, obj)
    marked = store.delete(VM, "ns", "a")
    assert marked["metadata"]["deletionTimestamp"]
    assert store.get(VM, "ns", "a")["metadata"]["deletionTimestamp"]
    store.mutate(VM, "ns", "a", lambda o: o["metadata"].__setitem__("finalizers", []))
    assert store.try_get(VM, "ns", "a") is None


def test_update_cannot_clear_deletion_timestamp() -> None:
    store = make_store()
    obj = vm("a")
    obj["metadata"]["finalizers"] = ["f"]
    store.create(VM, obj)
    marked = store.delete(VM, "ns", "a")
    del marked["metadata"]["deletionTimestamp"]
    out = store.update(VM, marked)
    assert out["metadata"]["deletionTimestamp"]


def test_delete_without_finalizers_removes() -> None:
    store = make_store()
    store.create(VM, vm("a"))
    store.delete(VM, "ns", "a")
    with pytest.raises(NotFoundError):
        store.delete(VM, "ns", "a")


def test_events_since_and_subscribers() -> None:
    store = make_store()
    seen: list[WatchEvent] = []
    unsubscribe = store.subscribe(seen.append)
    start = store.resource_version()
    store.create(VM, vm("a"))
    store.create(NODE, {"metadata": {"name": "n"}})
    store.mutate(VM, "ns", "a", lambda o: o["spec"].__setitem__("runStrategy", "Halted"))
    store.delete(VM, "ns", "a")
    events = store.events_since(VM, start)
    assert [e.type for e in events] == ["ADDED", "MODIFIED", "DELETED"]
    assert [e.resource_version for e in events] == sorted(e.resource_version for e in events)
    assert events[-1].obj["metadata"]["resourceVersion"] == str(events[-1].resource_version)
    assert [e.type for e in seen] == ["ADDED", "ADDED", "MODIFIED", "DELETED"]
    unsubscribe()
    store.create(VM, vm("b"))
    assert len(seen) == 4
    assert store.events_since(VM, start, namespace="other") == []


def test_events_since_too_old_is_gone() -> None:
    store = Store(seed=0, history_size=10)
    start = store.resource_version()
    for i in range(30):
        store.create(VM, vm(f"v{i}"))
    with pytest.raises(GoneError) as exc:
        store.events_since(VM, start)
    assert exc.value.requested == start and exc.value.oldest > start
    recent = store.resource_version() - 5
    assert len(store.events_since(VM, recent)) == 5


def test_metrics_writes_stay_out_of_watch_history() -> None:
    store = Store(seed=0, history_size=5)
    start = store.resource_version()
    store.create(VM, vm("a"))
    for i in range(20):
        store.create(NODE_METRICS, {"metadata": {"name": f"n{i}"}})
    assert len(store.events_since(VM, start)) == 1


def test_ten_thousand_vms_load_and_list() -> None:
    store = make_store()
    template = {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {"namespace": "ns", "labels": {"app": "x", "tier": "web"}, "annotations": {"a": "b"}},
        "spec": {
            "runStrategy": "Always",
            "template": {
                "metadata": {"labels": {"app": "x"}},
                "spec": {
                    "domain": {
                        "cpu": {"cores": 2},
                        "memory": {"guest": "4Gi"},
                        "devices": {
                            "disks": [{"name": "root", "disk": {"bus": "virtio"}}],
                            "interfaces": [{"name": "default", "masquerade": {}}],
                        },
                    },
                    "networks": [{"name": "default", "pod": {}}],
                    "volumes": [{"name": "root", "persistentVolumeClaim": {"claimName": "pvc"}}],
                },
            },
        },
        "status": {
            "printableStatus": "Running",
            "ready": True,
            "created": True,
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }
    for i in range(10_000):
        obj = dict(template)
        obj["metadata"] = {**template["metadata"], "name": f"vm-{i:05d}"}
        store.create(VM, obj)
    items, _ = store.list(VM)
    raw, _ = store.list(VM, copy=False)
    # Speed is measured by `python -m vm_rebalance.simulator.bench`, not asserted here (no wall-clock
    # assertions in tests: a loaded machine made this flaky).
    assert len(items) == len(raw) == 10_000
    assert [o["metadata"]["name"] for o in raw] == sorted(o["metadata"]["name"] for o in raw)
    assert items[0] == raw[0] and items[0] is not raw[0]


def test_a_failing_subscriber_does_not_block_the_others() -> None:
    store = make_store()
    seen: list[str] = []

    def broken(event: WatchEvent) -> None:
        raise RuntimeError("boom")

    store.subscribe(broken)
    store.subscribe(lambda e: seen.append(e.type))
    store.create(VM, vm("a"))
    assert seen == ["ADDED"]
    assert store.subscriber_errors == 1
