"""KubeVirtApi: typed reads, classified refusals, guarded updates with conflict retry, pins, cordon."""

from typing import Any

import pytest

from executor.fakes import FakeKubeVirt, fake_vm, status_error
from vm_rebalance.errors import ClusterError, ClusterForbiddenError, InfeasiblePlanError
from vm_rebalance.kube import resources as r
from vm_rebalance.kube.errors import ApiRejectedError, Rejection
from vm_rebalance.kube.kubevirt import KubeVirtApi
from vm_rebalance.kube.pins import affinity_ops, existing_node_pin, pinned_affinity, unpinned_affinity
from vm_rebalance.kube.views import PIN_ANNOTATION, MigrationPhase, PinOwner, VmiPhase
from vm_rebalance.simulator.patching import JsonPatchError, json_patch

OPTIMISTIC = 'Operation cannot be fulfilled on virtualmachines.kubevirt.io "a": the object has been modified'


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
            message = (
                OPTIMISTIC if self.status == 409 else "testing value /metadata/resourceVersion failed: test failed"
            )
            if self.status == 403:
                raise status_error(403, "forbidden", verb="patch", resource=r.VMS, name=name)
            raise status_error(self.status, message, verb="patch", resource=r.VMS, name=name)
        try:
            self.vm = json_patch(self.vm, body)
        except JsonPatchError as exc:  # a stale write would be refused here
            raise status_error(422, str(exc), verb="patch", resource=r.VMS, name=name) from exc
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
    with pytest.raises(ClusterForbiddenError):
        api.update_vm("default", "a", lambda vm: [{"op": "add", "path": "/metadata/labels", "value": {}}])


def test_update_vm_with_nothing_to_do_writes_nothing() -> None:
    client = FakeClient(fake_vm("a"))
    KubeVirtApi(client).update_vm("default", "a", lambda vm: [])  # type: ignore[arg-type]
    assert client.patches == []


def test_unpin_removes_only_the_pin_vm_rebalance_added():
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


def test_an_invalid_patch_is_not_retried_as_a_conflict() -> None:
    """Only "the VM changed" refusals are retried; a 422 that is not a failed guard passes through at once."""

    class Invalid(FakeClient):
        def patch(self, resource: Any, name: str, body: Any, **kw: Any) -> dict[str, Any]:
            self.patches.append(body)
            raise status_error(
                422, 'VirtualMachine.kubevirt.io "a" is invalid: spec: bad', verb="patch", resource=r.VMS
            )

    client = Invalid(fake_vm("a"))
    with pytest.raises(ApiRejectedError) as info:
        KubeVirtApi(client).update_vm("default", "a", lambda vm: [{"op": "add", "path": "/x", "value": 1}])  # type: ignore[arg-type]
    assert info.value.kind is Rejection.INVALID and len(client.patches) == 1


def test_reads_are_typed_views() -> None:
    api = FakeKubeVirt(polls_to_finish=2)
    api.add_vm("db", "w1", run_strategy="Manual")
    vm = api.get_vm("default", "db")
    assert (vm.namespace, vm.name, vm.run_strategy, vm.resource_version) == ("default", "db", "Manual", "1")
    assert vm.pins.owner is PinOwner.NONE
    vmi = api.get_vmi("default", "db")
    assert vmi is not None and vmi.phase is VmiPhase.RUNNING and vmi.node == "w1" and not vmi.migrating
    assert api.get_vmi("default", "ghost") is None and api.get_migration("default", "ghost") is None
    created = api.create_migration("default", "m1", "db", target="w2", plan_id="feedfacecafebeef")
    assert created.vmi_name == "db" and created.selected_node == "w2" and created.plan == "feedfaceca"
    assert created.phase is MigrationPhase.PENDING and not created.final
    assert [m.name for m in api.unfinished_migrations()] == ["m1"]
    vmi = api.get_vmi("default", "db")
    assert vmi is not None and vmi.migrating and vmi.migration is not None and vmi.migration.source_node == "w1"
    assert [v.name for v in api.migrating_vmis()] == ["db"]
    done = api.get_migration("default", "m1")
    assert done is not None and done.phase is MigrationPhase.SUCCEEDED and done.state is not None
    assert done.state.source_node == "w1" and api.unfinished_migrations() == []


def test_refusals_reach_the_caller_classified() -> None:
    api = FakeKubeVirt()
    api.add_vm("db", "w1")
    api.create_migration("default", "m1", "db", target="w2", plan_id="p")
    with pytest.raises(ApiRejectedError) as info:
        api.create_migration("default", "m2", "db", target="w3", plan_id="p")
    assert info.value.kind is Rejection.MIGRATION_IN_FLIGHT
    assert info.value.detail.startswith("in-flight migration detected")
    with pytest.raises(ApiRejectedError) as info:
        api.create_migration("default", "m3", "ghost", target="w3", plan_id="p")
    assert info.value.kind is Rejection.VMI_NOT_FOUND
    with pytest.raises(ApiRejectedError) as info:
        api.start_vm("default", "db")
    assert info.value.kind is Rejection.ALREADY_RUNNING
    api.add_vm("off", None)
    with pytest.raises(ApiRejectedError) as info:
        api.stop_vm("default", "off")
    assert info.value.kind is Rejection.NOT_RUNNING


def test_pins_whose_they_are_and_cordon() -> None:
    api = FakeKubeVirt()
    api.add_vm("web", "w1")
    assert api.add_pin("default", "web", "w2").pins.owner is PinOwner.VM_REBALANCE
    raw = api.vms[("default", "web")]
    raw["metadata"]["annotations"].pop(PIN_ANNOTATION)  # the mark is gone: the pin reads as the user's
    assert api.get_vm("default", "web").pins.owner is PinOwner.USER
    api.nodes["w2"] = {"metadata": {"name": "w2"}, "spec": {}}
    assert api.cordon_node("w2") is True and api.get_node("w2").unschedulable
    assert api.cordon_node("w2") is False
