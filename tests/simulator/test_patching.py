"""Patch semantics of the simulator: merge, strategic merge, JSON patch and server-side apply ownership."""

import pytest

from vm_rebalance.simulator.patching import (
    JsonPatchError,
    json_patch,
    merge_patch,
    paths_from_fields_v1,
    record_update,
    server_side_apply,
    strategic_merge_patch,
)
from vm_rebalance.simulator.status import ApiError

NOW = "2026-01-01T00:00:00Z"


def test_merge_patch_deletes_nulls_and_replaces_lists() -> None:
    target = {"a": {"b": 1, "c": 2}, "l": [1, 2]}
    assert merge_patch(target, {"a": {"b": None, "d": 3}, "l": [3]}) == {"a": {"c": 2, "d": 3}, "l": [3]}
    assert target == {"a": {"b": 1, "c": 2}, "l": [1, 2]}


def test_strategic_merge_merges_containers_by_name_and_deletes_with_directive() -> None:
    pod = {
        "spec": {
            "containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}],
            "tolerations": [{"key": "k1"}],
        }
    }
    patch = {
        "spec": {
            "containers": [{"name": "a", "image": "z"}, {"name": "b", "$patch": "delete"}],
            "tolerations": [{"key": "k2"}],
            "$setElementOrder/containers": [{"name": "a"}],
        }
    }
    out = strategic_merge_patch(pod, patch)
    assert out["spec"]["containers"] == [{"name": "a", "image": "z"}]
    assert out["spec"]["tolerations"] == [{"key": "k2"}]


def test_strategic_merge_taints_by_key_and_finalizers_as_set() -> None:
    node = {"metadata": {"finalizers": ["a"]}, "spec": {"taints": [{"key": "t1", "effect": "NoSchedule"}]}}
    out = strategic_merge_patch(
        node, {"metadata": {"finalizers": ["b"]}, "spec": {"taints": [{"key": "t2", "effect": "NoExecute"}]}}
    )
    assert out["metadata"]["finalizers"] == ["a", "b"]
    assert [t["key"] for t in out["spec"]["taints"]] == ["t1", "t2"]


@pytest.mark.parametrize(
    ("ops", "expected"),
    [
        pytest.param([{"op": "add", "path": "/l/-", "value": 3}], {"a": {"b": 1}, "l": [1, 2, 3]}, id="append"),
        pytest.param([{"op": "remove", "path": "/a/b"}], {"a": {}, "l": [1, 2]}, id="remove"),
        pytest.param(
            [{"op": "test", "path": "/a/b", "value": 1}, {"op": "replace", "path": "/a/b", "value": 5}],
            {"a": {"b": 5}, "l": [1, 2]},
            id="test-then-replace",
        ),
        pytest.param([{"op": "move", "from": "/a/b", "path": "/c"}], {"a": {}, "l": [1, 2], "c": 1}, id="move"),
        pytest.param(
            [{"op": "copy", "from": "/l", "path": "/m"}], {"a": {"b": 1}, "l": [1, 2], "m": [1, 2]}, id="copy"
        ),
    ],
)
def test_json_patch_operations(ops: list[dict[str, object]], expected: dict[str, object]) -> None:
    assert json_patch({"a": {"b": 1}, "l": [1, 2]}, ops) == expected


def test_json_patch_failed_test_raises() -> None:
    with pytest.raises(JsonPatchError, match="test failed"):
        json_patch(
            {"spec": {"runStrategy": "Always"}},
            [{"op": "test", "path": "/spec/runStrategy", "value": "Halted"}],
        )


def _vm(strategy: str) -> dict[str, object]:
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {"name": "vm1"},
        "spec": {"runStrategy": strategy},
    }


def test_apply_conflicts_with_an_update_owner_using_the_exact_text() -> None:
    live = _vm("Always")
    record_update(None, live, manager="kubectl", api_version="kubevirt.io/v1", subresource="", now=NOW)
    changed = _vm("Halted")
    changed["metadata"] = dict(live["metadata"])  # type: ignore[arg-type]
    record_update(live, changed, manager="kubernetes-mcp-server", api_version="kubevirt.io/v1", subresource="", now=NOW)
    with pytest.raises(ApiError) as info:
        server_side_apply(changed, _vm("Always"), manager="other", force=False, subresource="", now=NOW)
    err = info.value.to_status()
    assert err["code"] == 409 and err["reason"] == "Conflict"
    assert err["message"] == (
        'Apply failed with 1 conflict: conflict with "kubernetes-mcp-server" using kubevirt.io/v1: .spec.runStrategy'
    )
    assert err["details"]["causes"] == [
        {
            "reason": "FieldManagerConflict",
            "message": 'conflict with "kubernetes-mcp-server" using kubevirt.io/v1',
            "field": ".spec.runStrategy",
        }
    ]


def test_apply_same_value_shares_ownership_and_force_takes_it() -> None:
    live = server_side_apply(None, _vm("Always"), manager="a", force=False, subresource="", now=NOW)
    shared = server_side_apply(live, _vm("Always"), manager="b", force=False, subresource="", now=NOW)
    owners = {e["manager"] for e in shared["metadata"]["managedFields"]}
    assert owners == {"a", "b"}
    with pytest.raises(ApiError) as info:
        server_side_apply(shared, _vm("Halted"), manager="c", force=False, subresource="", now=NOW)
    assert info.value.message.startswith('Apply failed with 2 conflicts: conflicts with "a":\n- .spec.runStrategy')
    forced = server_side_apply(shared, _vm("Halted"), manager="c", force=True, subresource="", now=NOW)
    assert forced["spec"]["runStrategy"] == "Halted"
    entries = {e["manager"]: paths_from_fields_v1(e["fieldsV1"]) for e in forced["metadata"]["managedFields"]}
    assert entries == {"c": {("spec", "runStrategy")}}


def test_apply_removes_fields_the_manager_stopped_applying() -> None:
    first = _vm("Always")
    first["spec"]["template"] = {"spec": {"x": 1}}  # type: ignore[index]
    live = server_side_apply(None, first, manager="a", force=False, subresource="", now=NOW)
    again = server_side_apply(live, _vm("Always"), manager="a", force=False, subresource="", now=NOW)
    assert "template" not in again["spec"]
