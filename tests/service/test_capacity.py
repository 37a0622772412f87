"""The capacity analysis on hand-built states: bands, headroom, N+1, right-sizing, workload classes, slots."""

import dataclasses
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from factories import GI, make_node, make_state, make_vm
from vm_rebalance.model import (
    Basis,
    ClusterState,
    Goal,
    GoalType,
    InFlightMigration,
    MigrationLimits,
    NodeChange,
    NodeLoad,
    Placement,
    Taint,
    Toleration,
)
from vm_rebalance.model.capacity import (
    Band,
    HeadroomStatus,
    SizingDirection,
    WorkloadClass,
    band_of,
    capacity_report_to_document,
    headroom_status,
)
from vm_rebalance.model.plan import Plan
from vm_rebalance.service.capacity import (
    N_PLUS_ONE_OFF,
    WORKLOAD_ANNOTATION,
    capacity_report,
    classify_workload,
    cluster_capacity,
    largest_node,
    migration_slots,
    n_plus_one,
    node_capacities,
    right_sizing,
)


@pytest.mark.parametrize(
    ("utilisation", "band"),
    [
        pytest.param(0.0, Band.HEALTHY, id="empty"),
        pytest.param(0.699, Band.HEALTHY, id="just-below-70"),
        pytest.param(0.70, Band.PLAN, id="70-is-plan"),
        pytest.param(0.80, Band.PLAN, id="80-is-still-plan"),
        pytest.param(0.801, Band.URGENT, id="above-80"),
        pytest.param(0.90, Band.URGENT, id="90-is-still-urgent"),
        pytest.param(0.901, Band.EMERGENCY, id="above-90"),
        pytest.param(1.3, Band.EMERGENCY, id="overcommitted"),
    ],
)
def test_action_bands_follow_seed_003(utilisation: float, band: Band) -> None:
    assert band_of(utilisation) is band


@given(st.floats(0, 2), st.floats(0, 2))
def test_bands_never_improve_as_utilisation_grows(a: float, b: float) -> None:
    order = list(Band)
    low, high = sorted((a, b))
    assert order.index(band_of(low)) <= order.index(band_of(high))


@pytest.mark.parametrize(
    ("free", "status"),
    [
        pytest.param(0.05, HeadroomStatus.BELOW_MINIMUM, id="5"),
        pytest.param(0.199, HeadroomStatus.BELOW_MINIMUM, id="just-below-20"),
        pytest.param(0.20, HeadroomStatus.DEV_TEST, id="20-meets-minimum"),
        pytest.param(0.30, HeadroomStatus.PRODUCTION, id="30-production"),
        pytest.param(0.40, HeadroomStatus.PRODUCTION, id="40-production"),
        pytest.param(0.55, HeadroomStatus.AMPLE, id="55-ample"),
    ],
)
def test_headroom_against_20_and_30_to_40_percent(free: float, status: HeadroomStatus) -> None:
    assert headroom_status(free) is status


def _measured_state() -> ClusterState:
    nodes = [
        make_node("w1", cpu=10, memory_gi=100, usage_cpu=9.5, usage_memory_gi=40),
        make_node("w2", cpu=10, memory_gi=100, usage_cpu=2, usage_memory_gi=75),
        make_node("cp", cpu=10, memory_gi=100, usage_cpu=10, usage_memory_gi=100, control_plane=True, kvm=0),
    ]
    vms = [
        make_vm("a", node="w1", request_cpu=4, request_memory_gi=50, usage_cpu=1, usage_memory_gi=3),
        make_vm("b", node="w2", request_cpu=1, request_memory_gi=10, usage_cpu=1, usage_memory_gi=3),
    ]
    return make_state(nodes, vms, metrics=True)


def test_node_bands_are_judged_on_the_higher_of_cpu_and_memory() -> None:
    nodes = {n.name: n for n in node_capacities(_measured_state(), Basis.USAGE)}
    assert nodes["w1"].utilisation.cpu == pytest.approx(0.95) and nodes["w1"].band is Band.EMERGENCY
    assert nodes["w2"].utilisation.memory == pytest.approx(0.75) and nodes["w2"].band is Band.PLAN
    assert nodes["w1"].requests.memory == pytest.approx(0.5)
    assert not nodes["cp"].eligible and "control-plane" in nodes["cp"].flags
    by_requests = {n.name: n for n in node_capacities(_measured_state(), Basis.REQUESTS)}
    assert by_requests["w1"].band is Band.HEALTHY  # 40 % CPU, 50 % memory requested


def test_cluster_utilisation_counts_only_nodes_that_can_host_vms() -> None:
    warnings: list[str] = []
    cluster = cluster_capacity(_measured_state(), Basis.USAGE, warnings)
    # (9.5 + 2) / 20 CPU, (40 + 75) / 200 memory: the saturated control-plane node is not capacity.
    assert cluster.utilisation.cpu == pytest.approx(0.575)
    assert cluster.utilisation.memory == pytest.approx(0.575)
    assert cluster.requests.cpu == pytest.approx(0.25)
    assert (cluster.eligible_nodes, cluster.nodes, cluster.band) == (2, 3, Band.HEALTHY)
    assert warnings == []


def test_a_node_without_a_usage_reading_counts_with_its_requests_and_says_so() -> None:
    state = make_state(
        [make_node("w1", cpu=10, memory_gi=10, usage_cpu=5, usage_memory_gi=5), make_node("w2", cpu=10, memory_gi=10)],
        [make_vm("a", node="w2", request_cpu=3, request_memory_gi=1)],
        metrics=True,
    )
    warnings: list[str] = []
    cluster = cluster_capacity(state, Basis.USAGE, warnings)
    assert cluster.utilisation.cpu == pytest.approx((5 + 3) / 20)
    assert warnings == ["1 node(s) have no usage reading: their requests are used instead"]


def test_usage_asked_without_metrics_falls_back_to_requests_with_a_warning() -> None:
    state = make_state([make_node("w1"), make_node("w2")], [make_vm("a", node="w1")])
    report = capacity_report(state, basis="usage")
    assert report.basis == "requests"
    assert any("usage metrics are not available" in w for w in report.warnings)
    assert not report.section("right_sizing").available
    assert "right-sizing needs usage" in (report.section("right_sizing").reason or "")


def test_headroom_of_the_report() -> None:
    report = capacity_report(_measured_state(), check_n_plus_one=False)
    h = report.headroom
    assert (h.cpu, h.memory) == (pytest.approx(0.425), pytest.approx(0.425))
    assert h.status is HeadroomStatus.AMPLE
    assert h.requests_cpu == pytest.approx(0.75)
    assert report.section("n_plus_one").reason == N_PLUS_ONE_OFF


# ------------------------------------------------------------------------------ N+1


def test_largest_node_is_chosen_by_memory_then_cpu_then_name() -> None:
    state = make_state(
        [
            make_node("a", cpu=32, memory_gi=64),
            make_node("b", cpu=8, memory_gi=128),
            make_node("c", cpu=16, memory_gi=128),
            make_node("d", cpu=16, memory_gi=128),
            make_node("cp", cpu=64, memory_gi=512, control_plane=True),
        ],
        [],
    )
    node = largest_node(state)
    assert node is not None and node.name == "c"
    assert largest_node(make_state([make_node("only")], [])) is None


def test_n_plus_one_fits_when_the_others_can_take_every_vm() -> None:
    nodes = [make_node("big", cpu=16, memory_gi=128), make_node("w2", cpu=16, memory_gi=64), make_node("w3")]
    vms = [make_vm(f"v{i}", node="big", memory_gi=8, request_memory_gi=8, request_cpu=1) for i in range(4)]
    vms.append(make_vm("rwo", node="big", storage="rwo", memory_gi=4, request_memory_gi=4, request_cpu=1))
    state = make_state(nodes, vms)
    result = n_plus_one(state, Basis.REQUESTS, state.node("big"))  # type: ignore[arg-type]
    assert result.fits and (result.vms, result.placed) == (5, 5)
    assert result.cold == 1  # the RWO VM cannot move live
    # 36 GiB of requests on the 128 GiB left; CPU 5 of 32 cores.
    assert result.after is not None
    assert result.after.memory == pytest.approx(36 / 128, abs=1e-3)
    assert result.after.cpu == pytest.approx(5 / 32, abs=1e-3)
    assert result.after_band is Band.HEALTHY


def test_n_plus_one_names_the_vms_that_find_no_place_with_the_planners_reason() -> None:
    nodes = [make_node("big", cpu=16, memory_gi=128), make_node("w2", cpu=16, memory_gi=64)]
    vms = [make_vm(f"v{i}", node="big", memory_gi=30, request_memory_gi=30, request_cpu=1) for i in range(3)]
    state = make_state(nodes, vms)
    result = n_plus_one(state, Basis.REQUESTS, state.node("big"))  # type: ignore[arg-type]
    assert not result.fits
    assert (result.placed, len(result.unplaced)) == (2, 1)
    # The reason is the planner's own (its wording is the planner's to change).
    assert result.unplaced[0].vm in {"v0", "v1", "v2"} and result.unplaced[0].reason


def test_n_plus_one_applies_the_real_placement_rules() -> None:
    taint = Taint(key="dedicated", value="db", effect="NoSchedule")
    nodes = [make_node("big", memory_gi=128), make_node("db-1", taints=[taint]), make_node("w3")]
    tolerant = Placement(tolerations=(Toleration(key="dedicated", operator="Equal", value="db", effect="NoSchedule"),))
    pinned = Placement(node_selector={"pool": "gpu"})
    vms = [
        make_vm("db", node="big", placement=tolerant),
        make_vm("gpu", node="big", placement=pinned),
        make_vm("web", node="big"),
    ]
    state = make_state(nodes, vms)
    result = n_plus_one(state, Basis.REQUESTS, state.node("big"))  # type: ignore[arg-type]
    assert [u.vm for u in result.unplaced] == ["gpu"]
    assert result.placed == 2


def test_n_plus_one_treats_the_loss_as_a_failure_not_a_request() -> None:
    nodes = [make_node("big", memory_gi=128), make_node("w2")]
    vm = make_vm("keep", node="big", annotations={"vm-rebalance.io/do-not-move": "true"})
    state = make_state(nodes, [vm])
    migrating = dataclasses.replace(state, vms=(dataclasses.replace(vm, migrating=True),))
    for s in (state, migrating):
        result = n_plus_one(s, Basis.REQUESTS, s.node("big"))  # type: ignore[arg-type]
        assert result.fits and result.placed == 1


def test_n_plus_one_is_absent_with_a_reason_below_two_nodes() -> None:
    report = capacity_report(make_state([make_node("w1"), make_node("cp", control_plane=True)], []))
    assert report.n_plus_one is None
    assert "fewer than two nodes can host VMs" in (report.section("n_plus_one").reason or "")


# ------------------------------------------------------------------------------ right-sizing


def test_right_sizing_finds_vms_far_from_their_targets_with_the_evidence() -> None:
    vms = [
        make_vm("hot", vcpus=4, usage_cpu=3.6, usage_memory_gi=3, memory_gi=4, request_memory_gi=4.25),
        make_vm("idle", vcpus=8, usage_cpu=0.2, usage_memory_gi=2.25, memory_gi=16, request_memory_gi=16.25),
        make_vm("full", vcpus=2, usage_cpu=1.0, usage_memory_gi=7.85, memory_gi=8, request_memory_gi=8.25),
        make_vm("fine", vcpus=2, usage_cpu=1.3, usage_memory_gi=3.25, memory_gi=4, request_memory_gi=4.25),
        make_vm("tiny", vcpus=1, usage_cpu=0.01, usage_memory_gi=0.5, memory_gi=1, request_memory_gi=1.25),
        make_vm("unmeasured", vcpus=8),
    ]
    advice = {(a.vm, a.resource): a for a in right_sizing(vms)}
    assert set(advice) == {("hot", "cpu"), ("idle", "cpu"), ("idle", "memory"), ("full", "memory")}
    hot = advice["hot", "cpu"]
    assert (hot.direction, hot.guest, hot.suggested) == (SizingDirection.GROW, 4, 6)  # 3.6 cores / 65 %
    assert (hot.used, hot.requested, hot.utilisation) == (3600, 400, pytest.approx(0.9))
    idle = advice["idle", "cpu"]
    assert (idle.direction, idle.suggested) == (SizingDirection.SHRINK, 1)
    memory = advice["idle", "memory"]
    # 2.25 GiB working set less the 0.25 GiB launcher overhead (request − guest) = 2 GiB of 16.
    assert memory.used == 2 * GI and memory.utilisation == pytest.approx(0.125)
    assert (memory.direction, memory.suggested) == (SizingDirection.SHRINK, 3 * GI)
    full = advice["full", "memory"]
    assert (full.direction, full.suggested) == (SizingDirection.GROW, 11 * GI)  # 7.6 GiB / 75 %


# ------------------------------------------------------------------------------ workload classes


def test_classes_from_metrics() -> None:
    vm = make_vm("busy", vcpus=2, usage_cpu=1.8, usage_memory_gi=3.9, memory_gi=4, request_memory_gi=4.25)
    c = classify_workload(vm)
    assert c.classes == (WorkloadClass.CPU, WorkloadClass.MEMORY)
    assert c.evidence == ("CPU 90 % of 2 vCPU (metrics)", "memory 91 % of 4 GiB guest (metrics)")


def test_classes_and_types_from_the_annotation_and_label() -> None:
    vm = make_vm(
        "db",
        annotations={WORKLOAD_ANNOTATION: "database, Network"},
        labels={WORKLOAD_ANNOTATION: "io"},
    )
    c = classify_workload(vm)
    assert c.classes == (WorkloadClass.CPU, WorkloadClass.MEMORY, WorkloadClass.IO, WorkloadClass.NETWORK)
    assert c.workload_type == "database"
    assert "database: high dirty page rate: schedule migrations carefully" in c.considerations
    assert "network-intensive: stagger migrations (never several at once)" in c.considerations
    assert f"label {WORKLOAD_ANNOTATION}: io" in c.evidence


def test_unknown_declared_classes_are_a_warning_not_an_error() -> None:
    warnings: list[str] = []
    c = classify_workload(make_vm("x", annotations={WORKLOAD_ANNOTATION: "gpu,cpu"}), warnings=warnings)
    assert c.classes == (WorkloadClass.CPU,)
    assert len(warnings) == 1 and "unknown vm-rebalance.io/workload-class value(s) gpu" in warnings[0]


def test_large_memory_vms_get_their_copy_time_at_the_bandwidth_limit() -> None:
    vm = make_vm("big", memory_gi=64, annotations={WORKLOAD_ANNOTATION: "memory"})
    c = classify_workload(vm, bandwidth_bytes_per_second=GI)
    assert "copying 64 GiB takes ≥ 64 s at the bandwidth limit" in c.considerations


def test_unclassified_vms_are_general_purpose_and_not_listed() -> None:
    state = make_state(
        [make_node("w1"), make_node("w2")],
        [make_vm("plain"), make_vm("net", annotations={WORKLOAD_ANNOTATION: "network"})],
    )
    report = capacity_report(state)
    assert [w.vm for w in report.workloads] == ["net"]


# ------------------------------------------------------------------------------ migration slots


def _with_migrations(sources: list[str | None], limits: MigrationLimits | None = None) -> ClusterState:
    state = make_state([make_node("w1"), make_node("w2")], [], limits=limits)
    flights = tuple(
        InFlightMigration(namespace="default", name=f"m{i}", vm=f"v{i}", phase="Running", source=s)
        for i, s in enumerate(sources)
    )
    return dataclasses.replace(state, migrations=flights)


@pytest.mark.parametrize(
    ("sources", "status"),
    [
        pytest.param([], "ok", id="idle"),
        pytest.param(["w1", "w2", None], "ok", id="3-of-5"),
        pytest.param(["w1", "w1", "w2"], "warning", id="a-node-at-its-outbound-limit"),
        pytest.param(["w1", "w2", None, None], "warning", id="4-of-5"),
        pytest.param(["w1", "w2", None, None, None], "critical", id="at-the-limit"),
    ],
)
def test_migration_slots_follow_the_seed_alert_thresholds(sources: list[str | None], status: str) -> None:
    slots = migration_slots(_with_migrations(sources))
    assert (slots.in_flight, slots.cluster_limit, slots.status) == (len(sources), 5, status)


def test_migration_slots_use_the_clusters_configured_limits() -> None:
    slots = migration_slots(
        _with_migrations(["w1"], MigrationLimits(parallel_per_cluster=2, parallel_outbound_per_node=1))
    )
    assert (slots.cluster_limit, slots.per_node_limit, slots.nodes_at_limit, slots.status) == (2, 1, ("w1",), "warning")


# ------------------------------------------------------------------------------ the report and its document


def _plan(nodes: list[str]) -> Plan:
    return Plan(
        goal=Goal(type=GoalType.CPU),
        basis=Basis.USAGE,
        nodes=tuple(NodeChange(n, NodeLoad(2, 0.9, 0.5), NodeLoad(1, 0.6, 0.4)) for n in nodes),
    )


def test_every_optional_section_is_present_or_says_why_not() -> None:
    report = capacity_report(_measured_state())
    names = {s.name for s in report.sections}
    assert names >= {"n_plus_one", "right_sizing", "workload_classes", "migration_slots", "plan", "tradeoff"}
    assert all(s.reason for s in report.absent)
    assert {s.name for s in report.absent} == {
        "plan",
        "utilisation_over_time",
        "pressure",
        "io_network_metrics",
        "tradeoff",
    }
    with_plan = capacity_report(_measured_state(), plan=_plan(["w1", "gone"]))
    assert with_plan.section("plan").available
    assert any("this cluster does not have: gone" in w for w in with_plan.warnings)


def test_the_document_is_versioned_and_json() -> None:
    report = capacity_report(_measured_state(), plan=_plan(["w1"]))
    doc = json.loads(json.dumps(capacity_report_to_document(report)))
    assert (doc["apiVersion"], doc["kind"]) == ("vm-rebalance/v1", "CapacityReport")
    assert doc["cluster"]["band"] == "healthy" and doc["cluster"]["action"].startswith("Healthy")
    assert doc["headroom"]["status"] == "ample" and doc["headroom"]["requests"]["status"] == "ample"
    assert [n["name"] for n in doc["nodes"]] == ["cp", "w1", "w2"]
    assert doc["nodes"][1]["band"] == "emergency" and doc["nodes"][1]["action"]
    assert doc["n_plus_one"]["node"] == "w1" and doc["n_plus_one"]["fits"] is True
    assert doc["plan"]["nodes"][0]["after"]["cpu"] == 0.6
    assert doc["migration_slots"]["status"] == "ok"
    assert doc["sections"]["tradeoff"]["available"] is False
    assert doc["thresholds"]["bands"]["urgent"] == "> 80 %"
