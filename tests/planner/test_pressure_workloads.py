"""PSI-aware hot spots and workload-aware moves (issue 13, items 2 and 3), through the goal registry."""

import dataclasses

import pytest

from factories import GI, make_node, make_state, make_vm
from planner.helpers import violations
from vm_rebalance.model import (
    Basis,
    ClusterState,
    Goal,
    GoalType,
    MigrationLimits,
    MigrationMethod,
    Node,
    Plan,
    StayKind,
    VirtualMachine,
    plan_from_document,
    plan_to_document,
)
from vm_rebalance.model.signals import Observation, Pressure
from vm_rebalance.planner import PlanRequest, propose_plan
from vm_rebalance.planner.goals import HOT_SPOTS, definition
from vm_rebalance.planner.workloads import ASSUMED_BANDWIDTH, migration_profile, planned_method
from vm_rebalance.render.plan import plan_markdown

MIB = 1024**2


def _pressured(node: Node, cpu: float = 0.0, memory: float = 0.0) -> Node:
    return dataclasses.replace(node, pressure=Pressure(cpu=cpu, memory=memory, memory_full=0.0, io=0.01))


def _band_cluster(*, psi: bool) -> ClusterState:
    """worker-1 at 75 % CPU, the others at 68 %: inside the balance band by utilisation alone."""
    nodes = [make_node("worker-1", usage_cpu=12.0, usage_memory_gi=20)]
    nodes += [make_node(f"worker-{k}", usage_cpu=10.9, usage_memory_gi=20) for k in (2, 3, 4)]
    if psi:
        nodes = [_pressured(nodes[0], cpu=0.30), *(_pressured(n) for n in nodes[1:])]
    vms = []
    for n, per_vm in (("worker-1", 1.0), ("worker-2", 0.9), ("worker-3", 0.9), ("worker-4", 0.9)):
        vms += [make_vm(f"{n}-vm{i:02d}", node=n, usage_cpu=per_vm, usage_memory_gi=1.5) for i in range(12)]
    state = make_state(nodes, vms, metrics=True)
    return dataclasses.replace(
        state, observation=Observation(source="Prometheus", window_seconds=3600, pressure_window_seconds=3600)
    )


def _plan(state: ClusterState, goal: GoalType = GoalType.PERFORMANCE, **kw: object) -> Plan:
    return propose_plan(state, PlanRequest(goal=Goal(type=goal), basis=Basis.USAGE, **kw))  # type: ignore[arg-type]


def test_a_node_under_cpu_pressure_is_hot_even_at_75_percent() -> None:
    calm = _plan(_band_cluster(psi=False))
    assert not calm.moves and calm.stop_reason.startswith("already balanced")

    state = _band_cluster(psi=True)
    plan = _plan(state)
    assert plan.moves, plan.stop_reason
    assert all(m.source == "worker-1" for m in plan.moves)
    after = {n.name: n.after for n in plan.nodes}
    assert after["worker-1"].cpu <= 0.70 + 1e-9  # relieved below the pressured threshold
    assert plan.metrics_before["hot_nodes"] == 1 and plan.metrics_after["hot_nodes"] == 0
    # The plan shows the signal it acted on: the pressure in the note, the window in the goal line.
    assert "CPU under pressure (PSI 30 % of the time: hot from 70 %)" in plan.moves[0].reason
    assert plan.observation.startswith("Prometheus: mean over 1h")
    text = plan_markdown(plan)
    assert "usage: Prometheus: mean over 1h" in text and "hot nodes (pressure-aware) 1 → 0" in text
    assert not violations(state, plan)


def test_pressure_makes_a_pressured_node_a_poor_target() -> None:
    """A node under pressure is hot from 70 %: the planner does not fill it past that."""
    nodes = [
        make_node("hot", usage_cpu=15.0, usage_memory_gi=20),
        _pressured(make_node("busy", usage_cpu=10.8, usage_memory_gi=20), cpu=0.25),
        make_node("idle", usage_cpu=9.0, usage_memory_gi=20),
    ]
    vms = [make_vm(f"h{i}", node="hot", usage_cpu=2.5, usage_memory_gi=2) for i in range(6)]
    vms += [make_vm(f"b{i}", node="busy", usage_cpu=1.8, usage_memory_gi=2) for i in range(6)]
    vms += [make_vm(f"i{i}", node="idle", usage_cpu=1.5, usage_memory_gi=2) for i in range(6)]
    plan = _plan(make_state(nodes, vms, metrics=True))
    after = {n.name: n.after for n in plan.nodes}
    assert after["busy"].cpu <= 0.70 + 1e-9 and after["hot"].cpu <= 0.80 + 1e-9


def test_pressure_counts_on_the_usage_basis_only() -> None:
    request = PlanRequest(goal=Goal(type=GoalType.PERFORMANCE), basis=Basis.REQUESTS)
    plan = propose_plan(_band_cluster(psi=True), request)
    assert all("pressure" not in m.reason for m in plan.moves)
    assert plan.observation == ""  # requests: no usage basis line


def test_hot_spots_come_from_the_goal_registry() -> None:
    for goal_type in GoalType:
        spec = definition(goal_type)
        goal = Goal(type=goal_type, node="n" if goal_type is GoalType.DRAIN else None)
        assert spec.hot_spots(goal) == HOT_SPOTS
    performance = definition(GoalType.PERFORMANCE).terms(Goal(type=GoalType.PERFORMANCE))
    assert {(t.threshold, t.pressured) for t in performance if t.kind == "hot"} == {
        (t.threshold, t.pressured) for t in HOT_SPOTS
    }


# ------------------------------------------------------------------------------ workloads


def _with(vm: VirtualMachine, *, dirty: int | None = None, network: int | None = None) -> VirtualMachine:
    return dataclasses.replace(vm, dirty_rate_bytes_per_second=dirty, network_bytes_per_second=network)


def _hot_node_cluster(
    make: "list[tuple[str, int | None, int | None]]", limits: MigrationLimits | None = None
) -> ClusterState:
    """One hot node holding the given VMs (name, dirty rate, network rate), two empty nodes."""
    nodes = [
        make_node("src", usage_cpu=15.0, usage_memory_gi=40),
        make_node("t1", usage_cpu=1.0, usage_memory_gi=4),
        make_node("t2", usage_cpu=1.0, usage_memory_gi=4),
    ]
    vms = [
        _with(make_vm(name, node="src", usage_cpu=1.8, usage_memory_gi=4), dirty=dirty, network=net)
        for name, dirty, net in make
    ]
    return make_state(nodes, vms, metrics=True, limits=limits)


def test_high_dirty_rate_moves_go_late_and_alone() -> None:
    spec = [(f"plain-{i}", 10 * MIB, None) for i in range(4)] + [(f"db-{i}", 400 * MIB, None) for i in range(4)]
    state = _hot_node_cluster(spec)
    plan = _plan(state, GoalType.CPU, min_gain=0.0)
    dirty = [m for m in plan.moves if m.vm.startswith("db-")]
    plain = [m for m in plan.moves if m.vm.startswith("plain-")]
    assert dirty and plain, [m.vm for m in plan.moves]
    for m in dirty:
        assert [x.id for x in plan.moves if x.wave == m.wave] == [m.id], "a high-dirty-rate move is alone"
        assert "high dirty rate 400 MiB/s" in m.reason and "late, alone in its wave" in m.reason
        assert m.method is MigrationMethod.LIVE and m.estimated_seconds is not None
    assert min(m.wave for m in dirty) > max(m.wave for m in plain), "late: after every other move"
    assert not violations(state, plan)


def test_a_dirty_rate_beyond_the_bandwidth_is_proposed_cold_with_the_reason() -> None:
    limits = MigrationLimits(bandwidth_bytes_per_second=512 * MIB)
    state = _hot_node_cluster([(f"media-{i}", 500 * MIB, None) for i in range(6)], limits)
    vm = state.vms[0]
    assert planned_method(vm, limits) is MigrationMethod.COLD
    plan = _plan(state, GoalType.CPU, min_gain=0.0)
    assert plan.moves
    for m in plan.moves:
        assert m.method is MigrationMethod.COLD and m.estimated_seconds is None
        assert "cold because live migration would not converge: dirty rate 500 MiB/s against 512 MiB/s" in m.reason
    assert not violations(state, plan)
    live_only = _plan(state, GoalType.CPU, min_gain=0.0, live_only=True)
    assert not live_only.moves
    assert any(s.kind is StayKind.LIVE_ONLY and "would not converge" in s.reason for s in live_only.stays)


def test_auto_converge_lets_such_a_vm_move_live() -> None:
    limits = MigrationLimits(bandwidth_bytes_per_second=512 * MIB, allow_auto_converge=True)
    state = _hot_node_cluster([("media-0", 500 * MIB, None)], limits)
    profile = migration_profile(state.vms[0], limits)
    assert profile.converges and profile.high_dirty


def test_network_heavy_vms_never_leave_one_node_two_at_a_time() -> None:
    state = _hot_node_cluster([(f"stream-{i}", None, 80 * MIB) for i in range(8)])
    plan = _plan(state, GoalType.CPU, min_gain=0.0)
    assert len(plan.moves) >= 3
    per_wave = [sum(1 for m in plan.moves if m.wave == w) for w in sorted({m.wave for m in plan.moves})]
    assert max(per_wave) == 1  # all leave the same node
    assert all("network-intensive" in m.reason for m in plan.moves)
    # Without the rule the same moves would share waves (KubeVirt allows 2 outbound per node).
    plain = _plan(_hot_node_cluster([(f"stream-{i}", None, None) for i in range(8)]), GoalType.CPU, min_gain=0.0)
    assert len(plain.waves) < len(plain.moves)


def test_large_memory_moves_show_their_copy_time_at_the_clusters_bandwidth() -> None:
    limits = MigrationLimits(bandwidth_bytes_per_second=256 * MIB)
    nodes = [make_node("src", usage_cpu=15.0, usage_memory_gi=120, memory_gi=256), make_node("dst", memory_gi=256)]
    vms = [make_vm(f"big-{i}", node="src", memory_gi=32, usage_cpu=3.0, usage_memory_gi=30) for i in range(5)]
    plan = _plan(make_state(nodes, vms, metrics=True, limits=limits), GoalType.CPU)
    assert plan.moves
    for m in plan.moves:
        assert m.estimated_seconds == pytest.approx(32 * GI / (256 * MIB))  # 128 s
        assert "~2 min to copy 32 GiB at 256 MiB/s (bandwidthPerMigration)" in m.reason
    # The plan document keeps the estimate (an optional key) and reads it back.
    again = plan_from_document(plan_to_document(plan))
    assert [m.estimated_seconds for m in again.moves] == [m.estimated_seconds for m in plan.moves]


def test_without_a_bandwidth_setting_the_estimate_says_it_is_assumed() -> None:
    vm = make_vm("big", memory_gi=64)
    profile = migration_profile(vm, MigrationLimits())
    assert profile.bandwidth == ASSUMED_BANDWIDTH and profile.bandwidth_assumed
    assert "assumed" in profile.bandwidth_text and profile.large_memory


def test_a_declared_database_is_treated_as_high_dirty_rate() -> None:
    vm = make_vm("db", annotations={"vm-rebalance.io/workload-class": "database"})
    profile = migration_profile(vm, MigrationLimits())
    assert profile.high_dirty and profile.converges
    assert "database workload: high dirty page rate" in profile.reasons
