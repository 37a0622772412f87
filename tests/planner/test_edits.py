"""Plan edits (skip, retarget, reorder) and manual moves."""

import pytest

from factories import make_node, make_state, make_vm
from planner.helpers import violations
from vm_rebalance.errors import ConfigError
from vm_rebalance.model import Goal, GoalType, MigrationMethod, plan_from_document, plan_to_document
from vm_rebalance.planner import (
    PlanEditError,
    PlanRequest,
    plan_manual_moves,
    propose_plan,
    reorder_moves,
    retarget_move,
    skip_move,
)


def _state():
    nodes = [make_node(f"worker-{i}") for i in range(1, 5)]
    nodes.append(make_node("worker-5", unschedulable=True))
    vms = [make_vm(f"vm-{k}", node="worker-1", vcpus=4, memory_gi=6, request_cpu=1.5) for k in range(8)]
    vms.append(make_vm("stopped", node=None, running=False, memory_gi=2))
    vms.append(make_vm("rwo", node="worker-2", storage="rwo"))
    return make_state(nodes, vms)


def _plan(state):
    return propose_plan(state, PlanRequest(goal=Goal(type=GoalType.BALANCED)))


def test_skip_removes_the_move_and_recomputes():
    state = _state()
    plan = _plan(state)
    first = plan.moves[0]
    edited = skip_move(state, plan, first.id)
    assert first.id not in {m.id for m in edited.moves}
    assert len(edited.moves) == len(plan.moves) - 1
    assert any(s.vm == first.vm and "skipped" in s.reason for s in edited.stays)
    assert edited.metrics_after["objective"] >= plan.metrics_after["objective"]
    assert {m.id for m in edited.moves} == {m.id for m in plan.moves} - {first.id}
    assert violations(state, edited) == []


def test_skip_unknown_move_is_a_config_error():
    state = _state()
    with pytest.raises(ConfigError):
        skip_move(state, _plan(state), 99)


def test_retarget_is_revalidated():
    state = _state()
    plan = _plan(state)
    move = plan.moves[0]
    other = next(n for n in ("worker-2", "worker-3", "worker-4") if n != move.target)
    edited = retarget_move(state, plan, move.id, other)
    assert edited.move(move.id).target == other
    assert violations(state, edited) == []
    with pytest.raises(PlanEditError, match="cordoned"):
        retarget_move(state, plan, move.id, "worker-5")
    with pytest.raises(ConfigError):
        retarget_move(state, plan, move.id, "nope")
    with pytest.raises(PlanEditError, match="already on"):
        retarget_move(state, plan, move.id, "worker-1")


def test_retarget_to_a_full_node_names_the_reason():
    nodes = [make_node("worker-1"), make_node("worker-2"), make_node("small", cpu=2, memory_gi=4)]
    vms = [make_vm(f"vm-{k}", node="worker-1", memory_gi=6, request_cpu=2) for k in range(6)]
    state = make_state(nodes, vms)
    plan = _plan(state)
    with pytest.raises(PlanEditError, match="insufficient allocatable"):
        retarget_move(state, plan, plan.moves[0].id, "small")


def test_reorder_follows_the_given_order():
    state = _state()
    plan = _plan(state)
    ids = [m.id for m in plan.moves]
    new = reorder_moves(state, plan, list(reversed(ids)))
    assert [m.id for m in new.moves] == list(reversed(ids))
    waves = [m.wave for m in new.moves]
    assert waves == sorted(waves)
    assert violations(state, new) == []
    with pytest.raises(ConfigError):
        reorder_moves(state, plan, [ids[0], ids[0]])


def test_edited_plans_round_trip():
    state = _state()
    edited = skip_move(state, _plan(state), 1)
    doc = plan_to_document(edited)
    assert plan_to_document(plan_from_document(doc)) == doc


@pytest.mark.parametrize(
    "request_, fragment",
    [
        pytest.param(("default", "ghost", "worker-2", "auto"), "does not exist in namespace", id="unknown-vm"),
        pytest.param(("default", "vm-0", "worker-1", "auto"), "already on", id="already-there"),
        pytest.param(("default", "rwo", "worker-3", "live"), "ReadWriteOnce", id="rwo-live"),
        pytest.param(("default", "stopped", "worker-3", "live"), "not running", id="stopped-live"),
        pytest.param(("default", "vm-0", "nope", "auto"), "does not exist", id="unknown-node"),
        pytest.param(("default", "vm-0", "worker-5", "auto"), "cordoned", id="cordoned"),
    ],
)
def test_manual_validation_failures_become_warnings(request_, fragment):
    plan = plan_manual_moves(_state(), [request_])
    assert plan.moves == ()
    assert any(fragment in w and "failed validation" in w for w in plan.warnings)


def test_manual_moves_pick_methods_and_keep_valid_ones():
    state = _state()
    plan = plan_manual_moves(
        state,
        [
            ("default", "vm-0", "worker-2", "auto"),
            ("default", "rwo", "worker-3", "auto"),
            ("default", "stopped", "worker-4", "cold"),
            ("default", "ghost", "worker-2", "auto"),
        ],
    )
    assert plan.goal.type is GoalType.MANUAL
    methods = {m.vm: m.method for m in plan.moves}
    assert methods == {"vm-0": MigrationMethod.LIVE, "rwo": MigrationMethod.COLD, "stopped": MigrationMethod.COLD}
    stopped = next(m for m in plan.moves if m.vm == "stopped")
    assert not stopped.running and stopped.downtime == "none"
    assert len([w for w in plan.warnings if "failed validation" in w]) == 1
    assert violations(state, plan) == []


def test_manual_moves_respect_capacity_across_requests():
    nodes = [make_node("worker-1"), make_node("worker-2", cpu=4, memory_gi=10)]
    vms = [make_vm(f"vm-{k}", node="worker-1", memory_gi=4) for k in range(3)]
    state = make_state(nodes, vms)
    plan = plan_manual_moves(state, [("default", f"vm-{k}", "worker-2", "auto") for k in range(3)])
    assert len(plan.moves) == 2
    assert any("insufficient allocatable" in w for w in plan.warnings)
