"""Typed views of VM, VMI, migration and node objects; whose pin; what is in flight and from where."""

from datetime import UTC, datetime

import pytest

from rawobjects import vm_obj, vmi_obj
from vm_rebalance.kube.views import (
    PIN_ANNOTATION,
    TEMP_PIN_ANNOTATION,
    MigrationPhase,
    MigrationView,
    PinOwner,
    PrintableStatus,
    VmiPhase,
    in_flight,
    migration_view,
    node_view,
    pins_of,
    vm_view,
    vmi_view,
)

HOST = "kubernetes.io/hostname"


def _affinity(*terms: list[dict[str, object]]) -> dict[str, object]:
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": exprs} for exprs in terms]
            }
        }
    }


def _vm(affinity: dict[str, object] | None = None, annotations: dict[str, str] | None = None) -> dict[str, object]:
    spec: dict[str, object] = {"domain": {}}
    if affinity:
        spec["affinity"] = affinity
    return {
        "metadata": {"name": "a", "namespace": "ns", "resourceVersion": "7", "annotations": annotations or {}},
        "spec": {"running": True, "template": {"spec": spec}},
        "status": {"printableStatus": "ErrorUnschedulable"},
    }


def test_vm_view_reads_strategy_status_and_version() -> None:
    view = vm_view(_vm())
    assert view.run_strategy == "Always"  # spec.running: true, as KubeVirt maps it
    assert view.status is PrintableStatus.ERROR_UNSCHEDULABLE and view.status.cannot_start
    assert view.printable_status == "ErrorUnschedulable" and view.resource_version == "7"
    odd = vm_view({"metadata": {"name": "b"}, "status": {"printableStatus": "SomethingNew"}, "spec": []})
    assert odd.status is PrintableStatus.UNKNOWN and odd.printable_status == "SomethingNew"
    assert odd.run_strategy == "Halted"  # malformed spec reads as absent


@pytest.mark.parametrize(
    ("affinity", "annotations", "owner", "user_nodes", "other"),
    [
        pytest.param(None, {}, PinOwner.NONE, (), False, id="none"),
        pytest.param(
            _affinity([{"key": HOST, "operator": "In", "values": ["w2"]}]),
            {PIN_ANNOTATION: "w2"},
            PinOwner.VM_REBALANCE,
            (),
            False,
            id="ours",
        ),
        pytest.param(
            _affinity([{"key": HOST, "operator": "In", "values": ["w3"]}]),
            {TEMP_PIN_ANNOTATION: "w3"},
            PinOwner.VM_REBALANCE,
            (),
            False,
            id="temporary",
        ),
        pytest.param(
            _affinity([{"key": HOST, "operator": "In", "values": ["w3", "w4"]}]),
            {},
            PinOwner.USER,
            ("w3", "w4"),
            False,
            id="users-own",
        ),
        pytest.param(
            _affinity([{"key": HOST, "operator": "In", "values": ["w1"]}]),
            {PIN_ANNOTATION: "w2"},
            PinOwner.USER,
            ("w1",),
            False,
            id="marked-but-changed-by-the-user",
        ),
        pytest.param(
            _affinity([{"key": "zone", "operator": "In", "values": ["a"]}]),
            {},
            PinOwner.NONE,
            (),
            True,
            id="zone-only",
        ),
    ],
)
def test_whose_pin(
    affinity: dict[str, object] | None,
    annotations: dict[str, str],
    owner: PinOwner,
    user_nodes: tuple[str, ...],
    other: bool,
) -> None:
    pins = pins_of(_vm(affinity, annotations))
    assert pins.owner is owner and pins.user_nodes == user_nodes and pins.other_required_terms is other


def test_vmi_view_phase_node_migration_and_migratability() -> None:
    raw = vmi_obj(vm_obj("a", memory="1Gi"), "w1", live_migratable=False)
    raw["status"]["migrationState"] = {"sourceNode": "w1", "targetNode": "w2", "startTimestamp": "2026-01-01T00:00:00Z"}
    view = vmi_view(raw)
    assert view.phase is VmiPhase.RUNNING and view.running and view.node == "w1"
    assert view.live_migratable is False and view.migrating and view.migration is not None
    assert view.migration.started_at == datetime(2026, 1, 1, tzinfo=UTC)
    raw["status"]["migrationState"]["failed"] = True  # a failed migration has ended
    assert not vmi_view(raw).migrating
    assert vmi_view({"status": {"phase": "Weird"}}).phase is VmiPhase.UNKNOWN


def test_migration_view_duration_reason_and_target() -> None:
    raw = {
        "metadata": {
            "name": "m",
            "namespace": "ns",
            "uid": "u1",
            "creationTimestamp": "2026-08-01T10:00:00Z",
            "labels": {"vm-rebalance.io/plan": "feedfaceca"},
        },
        "spec": {"vmiName": "a", "addedNodeSelector": {HOST: "w2"}},
        "status": {
            "phase": "Failed",
            "phaseTransitionTimestamps": [
                {"phase": "Pending", "phaseTransitionTimestamp": "2026-08-01T10:00:01Z"},
                {"phase": "Failed", "phaseTransitionTimestamp": "2026-08-01T10:00:25Z"},
            ],
            "conditions": [{"type": "migrationAbortRequested", "message": "Migration failed due to being canceled"}],
        },
    }
    view = migration_view(raw)
    assert view.final and view.phase is MigrationPhase.FAILED and view.selected_node == "w2"
    assert view.plan == "feedfaceca" and view.server_duration_seconds == 25.0
    assert view.failure_reason == "Migration failed due to being canceled"
    assert migration_view({"status": {"phase": "Brand-new"}}).phase is MigrationPhase.OTHER
    assert not MigrationPhase.OTHER.final


def test_node_view() -> None:
    raw = {
        "metadata": {"name": "w1", "labels": {"kubevirt.io/schedulable": "true"}},
        "spec": {"unschedulable": True},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }
    view = node_view(raw)
    assert view.name == "w1" and view.unschedulable and view.ready and view.kubevirt_schedulable


def _mig(name: str, vmi: str, phase: str = "Running", uid: str | None = None, **state: str) -> MigrationView:
    status: dict[str, object] = {"phase": phase}
    if state:
        status["migrationState"] = state
    return migration_view(
        {"metadata": {"name": name, "namespace": "ns", "uid": uid or name}, "spec": {"vmiName": vmi}, "status": status}
    )


def _vmi(name: str, node: str, **state: object) -> dict[str, object]:
    status: dict[str, object] = {"phase": "Running", "nodeName": node}
    if state:
        status["migrationState"] = state
    return {"metadata": {"name": name, "namespace": "ns"}, "status": status}


def test_in_flight_attributes_every_migration_to_its_source() -> None:
    started = "2026-01-01T00:00:00Z"
    vmis = {
        ("ns", "a"): vmi_view(
            _vmi("a", "w1", migrationUid="m-a", sourceNode="w1", targetNode="w2", startTimestamp=started)
        ),
        ("ns", "b"): vmi_view(_vmi("b", "w3")),  # a Pending migration: the VMI still runs on its source
        ("ns", "c"): vmi_view(
            _vmi("c", "w4", migrationUid="old", sourceNode="w9", startTimestamp=started, completed=True)
        ),
        # no migration object at all (garbage-collected, or another tool's bookkeeping): the VMI's state counts
        ("ns", "d"): vmi_view(_vmi("d", "w5", migrationUid="m-d", sourceNode="w5", startTimestamp=started)),
    }
    found = in_flight(
        [
            _mig("m-a", "a"),
            _mig("m-b", "b", phase="Pending"),
            _mig("m-c", "c"),  # the VMI's state belongs to an earlier migration: its node is the source
            _mig("m-e", "e"),  # its VMI is unknown: counts, source unknown
            _mig("done", "a", phase="Succeeded", sourceNode="w0"),
        ],
        vmis,
    )
    by_vmi = {m.vmi_name: m for m in found}
    assert set(by_vmi) == {"a", "b", "c", "d", "e"}
    assert by_vmi["a"].source == "w1" and by_vmi["a"].target == "w2"
    assert by_vmi["b"].source == "w3" and by_vmi["c"].source == "w4" and by_vmi["e"].source is None
    assert by_vmi["d"].name == "" and by_vmi["d"].source == "w5"


def test_watch_events() -> None:
    from vm_rebalance.kube.views import WatchEventType, watch_event

    added = watch_event({"type": "ADDED", "object": {"metadata": {"resourceVersion": "12"}}})
    assert added.type is WatchEventType.ADDED and added.resource_version == "12"
    gone = watch_event({"type": "ERROR", "object": {"kind": "Status", "code": 410}})
    assert gone.type is WatchEventType.ERROR and gone.resource_version is None
    assert watch_event({"type": "SOMETHING"}).type is WatchEventType.OTHER
    assert watch_event("garbage").type is WatchEventType.OTHER
