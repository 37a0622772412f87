"""propose_plan: every goal and every constraint, table-driven."""

import pytest

from factories import make_node, make_state, make_vm
from planner.helpers import violations
from vm_rebalance.errors import ConfigError
from vm_rebalance.model import (
    DO_NOT_MOVE_ANNOTATION,
    Basis,
    Goal,
    GoalType,
    MigrationMethod,
    Placement,
    Taint,
    Toleration,
)
from vm_rebalance.model.cluster import LabelSelector, PodAffinityTerm
from vm_rebalance.planner import PlanRequest, propose_plan


def _crowded(n_nodes: int = 4, n_vms: int = 8, **vm_kwargs: object):
    nodes = [make_node(f"worker-{i}") for i in range(1, n_nodes + 1)]
    vms = [
        make_vm(f"vm-{k}", node="worker-1", vcpus=4, memory_gi=6, request_cpu=1.5, **vm_kwargs) for k in range(n_vms)
    ]
    return nodes, vms


def _plan(state, goal=GoalType.BALANCED, **kw):
    node = kw.pop("node", None)
    return propose_plan(state, PlanRequest(goal=Goal(type=goal, node=node), **kw))


@pytest.mark.parametrize(
    "goal, metric",
    [
        pytest.param(GoalType.CPU, "cpu_stddev", id="cpu"),
        pytest.param(GoalType.MEMORY, "memory_stddev", id="memory"),
        pytest.param(GoalType.BALANCED, "objective", id="balanced"),
        pytest.param(GoalType.COUNT, "count_stddev", id="count"),
        pytest.param(GoalType.PERFORMANCE, "objective", id="performance"),
    ],
)
def test_every_goal_spreads_a_crowded_node(goal, metric):
    state = make_state(*_crowded())
    plan = _plan(state, goal)
    assert plan.moves
    assert plan.metrics_after[metric] < plan.metrics_before[metric] / 2
    assert violations(state, plan) == []
    assert all(m.source == "worker-1" and m.reason for m in plan.moves)


def test_balanced_cluster_gets_an_empty_plan():
    nodes = [make_node(f"worker-{i}") for i in range(1, 4)]
    vms = [make_vm(f"vm-{n}-{k}", node=f"worker-{n}") for n in range(1, 4) for k in range(3)]
    plan = _plan(make_state(nodes, vms))
    assert plan.moves == ()
    assert plan.metrics_after == plan.metrics_before


def test_weights_steer_the_balanced_goal():
    nodes = [make_node(f"worker-{i}") for i in range(1, 3)]
    # CPU-heavy VMs on worker-1, memory-heavy on worker-2.
    vms = [make_vm(f"c{k}", node="worker-1", request_cpu=4, memory_gi=1) for k in range(3)]
    vms += [make_vm(f"m{k}", node="worker-2", request_cpu=0.1, memory_gi=16) for k in range(3)]
    state = make_state(nodes, vms)
    cpu_first = propose_plan(state, PlanRequest(goal=Goal(type=GoalType.BALANCED, weights={"cpu": 1, "memory": 0})))
    assert cpu_first.metrics_after["cpu_stddev"] < cpu_first.metrics_before["cpu_stddev"]


def test_drain_moves_every_movable_vm_and_explains_the_rest():
    nodes = [make_node("worker-1", unschedulable=True), make_node("worker-2"), make_node("worker-3")]
    vms = [make_vm(f"vm-{k}", node="worker-1") for k in range(4)]
    vms.append(make_vm("pinned", node="worker-1", annotations={DO_NOT_MOVE_ANNOTATION: "true"}))
    vms.append(make_vm("huge", node="worker-1", memory_gi=100))
    state = make_state(nodes, vms)
    plan = _plan(state, GoalType.DRAIN, node="worker-1")
    assert {m.vm for m in plan.moves} == {f"vm-{k}" for k in range(4)}
    reasons = {s.vm: s.reason for s in plan.stays}
    assert set(reasons) == {"pinned", "huge"}
    assert DO_NOT_MOVE_ANNOTATION in reasons["pinned"]
    assert "insufficient allocatable" in reasons["huge"]
    assert violations(state, plan) == []


def test_drain_ignores_cooldown_but_balancing_respects_it():
    nodes, vms = _crowded()
    from dataclasses import replace

    vms = [replace(v, last_migration_seconds_ago=60.0) for v in vms]
    state = make_state(nodes, vms)
    assert _plan(state).moves == ()
    assert len(_plan(state, GoalType.DRAIN, node="worker-1").moves) == len(vms)
    assert _plan(state, cooldown_seconds=30).moves


def test_drain_of_unknown_node_is_a_config_error():
    with pytest.raises(ConfigError):
        _plan(make_state(*_crowded()), GoalType.DRAIN, node="nope")


@pytest.mark.parametrize(
    "kwargs, check",
    [
        pytest.param({"max_migrations": 2}, lambda p: len(p.moves) == 2, id="max-migrations"),
        pytest.param({"max_migrations": 0}, lambda p: p.moves == (), id="max-migrations-zero"),
        pytest.param({"namespaces": ("other",)}, lambda p: p.moves == (), id="namespace-filter"),
    ],
)
def test_request_limits(kwargs, check):
    plan = _plan(make_state(*_crowded()), **kwargs)
    assert check(plan)


def test_max_migrations_cut_is_reported():
    plan = _plan(make_state(*_crowded()), max_migrations=1)
    assert any("--max-migrations 1" in w for w in plan.warnings)


def test_do_not_move_vms_stay():
    nodes, vms = _crowded(annotations={DO_NOT_MOVE_ANNOTATION: "true"})
    plan = _plan(make_state(nodes, vms))
    assert plan.moves == ()
    assert any(DO_NOT_MOVE_ANNOTATION in s.reason for s in plan.stays)


def test_live_only_keeps_rwo_vms_in_place():
    nodes, vms = _crowded(storage="rwo")
    state = make_state(nodes, vms)
    plan = _plan(state, live_only=True)
    assert plan.moves == ()
    assert all("--live-only" in s.reason for s in plan.stays)
    cold = _plan(state)
    assert cold.moves and all(m.method is MigrationMethod.COLD for m in cold.moves)
    assert any("cold migration" in w for w in cold.warnings)


def test_cold_moves_are_avoided_when_live_ones_do_almost_as_well():
    nodes, vms = _crowded()
    vms.append(make_vm("db", node="worker-1", storage="rwo", vcpus=4, memory_gi=6, request_cpu=1.5))
    plan = _plan(make_state(nodes, vms))
    assert plan.moves and all(m.method is MigrationMethod.LIVE for m in plan.moves)


def test_a_huge_live_vm_is_not_treated_as_cold():
    """2 TiB of guest memory makes a move expensive, but it stays live: no live-only re-plan drops it."""
    nodes = [make_node(f"worker-{i}", cpu=256, memory_gi=8192) for i in (1, 2)]
    vms = [make_vm("huge", node="worker-1", vcpus=16, memory_gi=2048)]
    vms += [make_vm(f"half-{k}", node="worker-1", vcpus=8, memory_gi=1024) for k in range(2)]
    state = make_state(nodes, vms)
    plan = _plan(state, GoalType.MEMORY)
    # One live move of the huge VM balances perfectly; the two halves would need two moves.
    assert [(m.vm, m.method) for m in plan.moves] == [("huge", MigrationMethod.LIVE)]
    assert not any("cold migration" in w for w in plan.warnings)
    assert violations(state, plan) == []


def test_taints_and_node_selectors_are_respected():
    nodes = [
        make_node("worker-1"),
        make_node("worker-2", taints=[Taint("gpu", "NoSchedule", "true")]),
        make_node("worker-3", labels={"disk": "ssd"}),
        make_node("worker-4"),
    ]
    ssd = Placement(node_selector={"disk": "ssd"})
    vms = [make_vm(f"vm-{k}", node="worker-1", placement=ssd, request_cpu=2) for k in range(6)]
    state = make_state(nodes, vms)
    plan = _plan(state)
    assert plan.moves and {m.target for m in plan.moves} == {"worker-3"}
    tolerant = Placement(tolerations=(Toleration(key="gpu", operator="Exists"),))
    vms = [make_vm(f"vm-{k}", node="worker-1", placement=tolerant, request_cpu=2) for k in range(6)]
    assert "worker-2" in {m.target for m in _plan(make_state(nodes, vms)).moves}


@pytest.mark.parametrize(
    "node_kwargs",
    [
        pytest.param({"unschedulable": True}, id="cordoned"),
        pytest.param({"ready": False}, id="not-ready"),
        pytest.param({"kvm": 0}, id="no-kvm"),
        pytest.param({"control_plane": True}, id="control-plane"),
        pytest.param({"labels": {"kubevirt.io/schedulable": "false"}}, id="not-schedulable"),
    ],
)
def test_ineligible_nodes_never_receive(node_kwargs):
    nodes = [make_node("worker-1"), make_node("worker-2", **node_kwargs), make_node("worker-3")]
    vms = [make_vm(f"vm-{k}", node="worker-1", request_cpu=2) for k in range(6)]
    plan = _plan(make_state(nodes, vms))
    assert plan.moves and "worker-2" not in {m.target for m in plan.moves}


def test_anti_affinity_keeps_replicas_apart():
    term = PodAffinityTerm(label_selector=LabelSelector(match_labels={"app": "db"}))
    placement = Placement(pod_anti_affinity=(term,))
    nodes = [make_node(f"worker-{i}") for i in range(1, 4)]
    vms = [
        make_vm(f"db-{k}", node="worker-1", labels={"app": "db"}, placement=placement, request_cpu=3) for k in range(1)
    ]
    vms += [make_vm("db-x", node="worker-2", labels={"app": "db"}, placement=placement, request_cpu=3)]
    vms += [make_vm(f"web-{k}", node="worker-1", request_cpu=2) for k in range(4)]
    state = make_state(nodes, vms)
    plan = _plan(state)
    assert violations(state, plan) == []
    assert not any(m.vm == "db-0" and m.target == "worker-2" for m in plan.moves)


def test_residents_anti_affinity_keeps_incoming_vms_out():
    # worker-3 runs a guard whose required anti-affinity selects app=web; the web VMs carry no
    # terms themselves, yet Kubernetes would refuse them on worker-3 (symmetric anti-affinity).
    term = PodAffinityTerm(label_selector=LabelSelector(match_labels={"app": "web"}))
    nodes = [make_node(f"worker-{i}") for i in range(1, 4)]
    vms = [make_vm(f"web-{k}", node="worker-1", labels={"app": "web"}, request_cpu=2) for k in range(6)]
    vms += [make_vm("guard", node="worker-3", placement=Placement(pod_anti_affinity=(term,)), request_cpu=0.5)]
    state = make_state(nodes, vms)
    for strategy in ("greedy", "exhaustive"):
        plan = _plan(state, strategy=strategy)
        assert plan.moves, "worker-2 is still a valid target"
        assert violations(state, plan) == []
        assert not any(m.target == "worker-3" and m.vm.startswith("web") for m in plan.moves)
        assert not any(m.vm == "guard" and m.target == "worker-1" for m in plan.moves)
    drained = _plan(state, goal=GoalType.DRAIN, node="worker-1")
    assert violations(state, drained) == []
    assert {m.target for m in drained.moves} == {"worker-2"}


def test_waves_respect_residents_anti_affinity():
    # The guard leaves worker-1 and a web VM takes its place: not in the same wave, because
    # while the guard is still migrating out its anti-affinity keeps app=web off worker-1.
    from vm_rebalance.planner.waves import WaveMove, assign_waves

    term = PodAffinityTerm(label_selector=LabelSelector(match_labels={"app": "web"}))
    nodes = [make_node(f"worker-{i}") for i in range(1, 4)]
    guard = make_vm("guard", node="worker-1", placement=Placement(pod_anti_affinity=(term,)))
    web = make_vm("web", node="worker-3", labels={"app": "web"})
    state = make_state(nodes, [guard, web])
    waves = assign_waves(state, [WaveMove(guard, "worker-1", "worker-2"), WaveMove(web, "worker-3", "worker-1")])
    assert waves == [1, 2]


def test_capacity_is_never_exceeded_in_a_wave():
    # Two nodes nearly full; a third empty: every move must fit while sources still hold the VMs.
    nodes = [
        make_node("worker-1", cpu=8, memory_gi=16),
        make_node("worker-2", cpu=8, memory_gi=16),
        make_node("worker-3", cpu=8, memory_gi=16),
    ]
    vms = [make_vm(f"a{k}", node="worker-1", memory_gi=3.5) for k in range(4)]
    vms += [make_vm(f"b{k}", node="worker-2", memory_gi=1) for k in range(2)]
    state = make_state(nodes, vms)
    plan = _plan(state)
    assert violations(state, plan) == []


def test_basis_defaults_to_usage_with_metrics_and_falls_back_with_a_warning():
    nodes = [
        make_node("worker-1", usage_cpu=12, usage_memory_gi=40),
        make_node("worker-2", usage_cpu=1, usage_memory_gi=4),
    ]
    vms = [make_vm(f"vm-{k}", node="worker-1", usage_cpu=3, usage_memory_gi=8) for k in range(4)]
    with_metrics = make_state(nodes, vms, metrics=True)
    assert _plan(with_metrics).basis is Basis.USAGE
    without = make_state(nodes, vms, metrics=False)
    plan = _plan(without, basis=Basis.USAGE)
    assert plan.basis is Basis.REQUESTS
    assert any("usage metrics are not available" in w for w in plan.warnings)


def test_performance_removes_hot_spots():
    nodes = [make_node(f"worker-{i}", cpu=10) for i in range(1, 4)]
    vms = [make_vm(f"vm-{k}", node="worker-1", request_cpu=1.8, memory_gi=2) for k in range(5)]
    vms += [make_vm(f"w{k}", node="worker-2", request_cpu=1.5, memory_gi=2) for k in range(2)]
    state = make_state(nodes, vms)
    plan = _plan(state, GoalType.PERFORMANCE)
    assert plan.metrics_before["cpu_max"] > 80
    assert plan.metrics_after["cpu_max"] <= 80


def test_same_input_same_plan_and_input_order_does_not_matter():
    nodes, vms = _crowded(n_vms=10)
    a = _plan(make_state(nodes, vms))
    b = _plan(make_state(list(reversed(nodes)), list(reversed(vms))))
    assert a == b


def test_unknown_strategy_is_a_config_error():
    with pytest.raises(ConfigError):
        _plan(make_state(*_crowded()), strategy="nope")


def test_large_batches_warn():
    nodes, vms = _crowded(n_nodes=6, n_vms=30)
    plan = _plan(make_state(nodes, vms))
    assert len(plan.moves) > 10
    assert any("strongly recommend splitting" in w for w in plan.warnings)


def test_max_parallel_and_sequential_limit_wave_sizes():
    state = make_state(*_crowded(n_vms=12))
    assert max(len(w) for w in _plan(state, max_parallel=2).waves) <= 2
    seq = _plan(state, sequential=True)
    assert seq.sequential and all(len(w) == 1 for w in seq.waves)
