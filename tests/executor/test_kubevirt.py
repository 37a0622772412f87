"""KubeVirtApi: version parsing, deterministic names, pin edits, guarded updates with 409 retry."""

from typing import Any

import pytest

from executor.fakes import fake_vm
from vm_rebalance.errors import ClusterError
from vm_rebalance.executor.kubevirt import (
    PIN_ANNOTATION,
    KubeVirtApi,
    affinity_ops,
    annotation_ops,
    existing_node_pin,
    migration_name,
    parse_version,
    pinned_affinity,
    run_strategy_ops,
    supports_added_node_selector,
    unpinned_affinity,
    vm_run_strategy,
)
from vm_rebalance.simulator.patching import JsonPatchError, json_patch

OTHER_TERM = {"key": "zone", "operator": "In", "values": ["a"]}


def test_versions() -> None:
    assert parse_version("v1.6.2") == (1, 6) and parse_version("1.10.0-rc.1") == (1, 10)
    assert parse_version(None) is None and parse_version("garbage") is None
    assert supports_added_node_selector("v1.6.0") and supports_added_node_selector("v2.0.0")
    assert not supports_added_node_selector("v1.5.3") and not supports_added_node_selector(None)


def test_migration_name_is_deterministic_and_dns_safe() -> None:
    name = migration_name("0123456789abcdef", 12, 3)
    assert name == migration_name("0123456789abcdef", 12, 3) == "vmr-0123456789-12-3"
    assert name != migration_name("0123456789abcdef", 12, 4)


def test_pin_keeps_other_terms_and_replaces_previous_pin() -> None:
    vm = fake_vm(
        "a",
        affinity={
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                OTHER_TERM,
                                {"key": "kubernetes.io/hostname", "operator": "In", "values": ["w1"]},
                            ]
                        }
                    ]
                }
            },
            "podAntiAffinity": {"x": 1},
        },
    )
    assert existing_node_pin(vm) == ["w1"]
    aff = pinned_affinity(vm, "w2")
    exprs = aff["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0][
        "matchExpressions"
    ]
    assert OTHER_TERM in exprs and {"key": "kubernetes.io/hostname", "operator": "In", "values": ["w2"]} in exprs
    assert len(exprs) == 2 and aff["podAntiAffinity"] == {"x": 1}
    vm["spec"]["template"]["spec"]["affinity"] = aff
    back = unpinned_affinity(vm)
    assert back is not None
    assert back["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"] == [
        {"matchExpressions": [OTHER_TERM]}
    ]
    assert existing_node_pin({"spec": {"template": {"spec": {"affinity": back}}}}) == []


def test_pin_and_unpin_without_previous_affinity_round_trips() -> None:
    vm = fake_vm("a")
    vm2 = json_patch(vm, affinity_ops(vm, pinned_affinity(vm, "w3")))
    assert existing_node_pin(vm2) == ["w3"]
    assert unpinned_affinity(vm2) is None
    vm3 = json_patch(vm2, affinity_ops(vm2, None))
    assert "affinity" not in vm3["spec"]["template"]["spec"]
    assert affinity_ops(vm3, None) == []


def test_annotation_and_run_strategy_ops() -> None:
    vm = fake_vm("a")
    vm["metadata"].pop("annotations")
    vm = json_patch(vm, annotation_ops(vm, PIN_ANNOTATION, "w2"))
    assert vm["metadata"]["annotations"][PIN_ANNOTATION] == "w2"
    assert annotation_ops(vm, PIN_ANNOTATION, "w2") == []
    vm = json_patch(vm, annotation_ops(vm, PIN_ANNOTATION, None))
    assert PIN_ANNOTATION not in vm["metadata"]["annotations"]
    old = {"spec": {"running": False}}
    assert vm_run_strategy(old) == "Halted"
    restored = json_patch(old, run_strategy_ops(old, "Always"))
    assert restored["spec"] == {"runStrategy": "Always"}


class FakeClient:
    """Just enough of KubeClient for KubeVirtApi's VM reads and guarded patches."""

    def __init__(self, vm: dict[str, Any], *, conflicts: int = 0, status: int = 409) -> None:
        self.vm = vm
        self.conflicts = conflicts
        self.status = status
        self.patches: list[list[dict[str, Any]]] = []
        self.gets = 0

    def get(self, resource: Any, name: str, *, namespace: str | None = None) -> dict[str, Any]:
        self.gets += 1
        import copy

        return copy.deepcopy(self.vm)

    def patch(
        self, resource: Any, name: str, body: Any, *, namespace: str | None = None, patch_type: str = ""
    ) -> dict[str, Any]:
        assert patch_type == "application/json-patch+json"
        assert body[0] == {"op": "test", "path": "/metadata/resourceVersion", "value": body[0]["value"]}
        self.patches.append(body)
        if self.conflicts:
            self.conflicts -= 1
            # someone else wrote the VM meanwhile
            self.vm["metadata"]["resourceVersion"] = str(int(self.vm["metadata"]["resourceVersion"]) + 1)
            self.vm["metadata"]["labels"] = {"touched": "yes"}
            raise ClusterError("conflict: the object has been modified", status=self.status)
        try:
            self.vm = json_patch(self.vm, body)
        except JsonPatchError as exc:  # a stale write would be refused here
            raise ClusterError(f"test operation failed: {exc}", status=422) from exc
        self.vm["metadata"]["resourceVersion"] = str(int(self.vm["metadata"]["resourceVersion"]) + 1)
        return self.vm


@pytest.mark.parametrize("status", [409, 422])
def test_update_vm_rereads_and_retries_on_conflict(status: int) -> None:
    client = FakeClient(fake_vm("a"), conflicts=2, status=status)
    api = KubeVirtApi(client)  # type: ignore[arg-type]
    seen: list[str] = []

    def edit(vm: dict[str, Any]) -> list[dict[str, Any]]:
        seen.append(vm["metadata"]["resourceVersion"])
        return affinity_ops(vm, pinned_affinity(vm, "w2"))

    result = api.update_vm("default", "a", edit)
    assert existing_node_pin(result) == ["w2"]
    assert result["metadata"]["labels"] == {"touched": "yes"}  # the concurrent change survived
    assert seen == ["1", "2", "3"]  # every attempt re-read: never a stale write
    assert [p[0]["value"] for p in client.patches] == ["1", "2", "3"]


def test_update_vm_gives_up_after_retries_and_other_errors_pass_through() -> None:
    api = KubeVirtApi(FakeClient(fake_vm("a"), conflicts=99))  # type: ignore[arg-type]
    with pytest.raises(ClusterError, match="kept changing"):
        api.update_vm("default", "a", lambda vm: [{"op": "add", "path": "/metadata/labels", "value": {}}])
    api = KubeVirtApi(FakeClient(fake_vm("a"), conflicts=1, status=403))  # type: ignore[arg-type]
    with pytest.raises(ClusterError, match="conflict"):
        api.update_vm("default", "a", lambda vm: [{"op": "add", "path": "/metadata/labels", "value": {}}])


def test_update_vm_with_nothing_to_do_writes_nothing() -> None:
    client = FakeClient(fake_vm("a"))
    KubeVirtApi(client).update_vm("default", "a", lambda vm: [])  # type: ignore[arg-type]
    assert client.patches == []


def test_unpin_removes_only_the_pin_vm_rebalance_added():
    from executor.fakes import FakeKubeVirt
    from vm_rebalance.errors import InfeasiblePlanError
    from vm_rebalance.executor.kubevirt import PIN_ANNOTATION, existing_node_pin, pinned_affinity, unpinned_affinity
    from vm_rebalance.executor.runners import unpin_vm

    api = FakeKubeVirt()
    api.add_vm("web", "w1")
    vm = api.vms[("default", "web")]
    vm["spec"]["template"]["spec"]["affinity"] = pinned_affinity(vm, "w1")  # the user's own pin
    with pytest.raises(InfeasiblePlanError, match="not added by vm-rebalance"):
        unpin_vm(api, "default", "web")
    assert existing_node_pin(api.vms[("default", "web")]) == ["w1"]
    # A pin to another node than ours stays when ours goes.
    assert existing_node_pin({"spec": {"template": {"spec": {"affinity": unpinned_affinity(vm, "w9")}}}}) == ["w1"]
    vm["metadata"].setdefault("annotations", {})[PIN_ANNOTATION] = "w1"
    assert unpin_vm(api, "default", "web") is True
    assert existing_node_pin(api.vms[("default", "web")]) == []
