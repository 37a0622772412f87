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


def _limited(state, **kw):
    return propose_plan(state, PlanRequest(goal=Goal(type=GoalType.BALANCED), **kw))


def _other_target(plan, move):
    return next(n for n in ("worker-2", "worker-3", "worker-4") if n != move.target)


def test_the_plan_carries_its_request_options():
    state = _state()
    plan = _limited(state, max_parallel=1, headroom=0.9)
    assert (plan.max_parallel, plan.headroom, plan.keep_order) == (1, 0.9, False)
    assert [m.wave for m in plan.moves] == list(range(1, len(plan.moves) + 1))
    default = _plan(state)
    assert (default.max_parallel, default.headroom, default.keep_order) == (None, 0.20, False)


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda s, p: reorder_moves(s, p, [m.id for m in reversed(p.moves)]), id="reorder"),
        pytest.param(lambda s, p: skip_move(s, p, p.moves[0].id), id="skip"),
        pytest.param(lambda s, p: retarget_move(s, p, p.moves[0].id, _other_target(p, p.moves[0])), id="retarget"),
    ],
)
def test_max_parallel_and_headroom_survive_every_edit(edit):
    state = _state()
    plan = _limited(state, max_parallel=1, headroom=0.9)
    assert any("headroom of 90%" in w for w in plan.warnings)
    edited = edit(state, plan)
    assert (edited.max_parallel, edited.headroom) == (1, 0.9)
    # One move per wave, as the request asked (not all in wave 1).
    assert all(len(w) == 1 for w in edited.waves)
    assert len(edited.waves) == len(edited.moves) > 1
    # The headroom warning is recomputed with the request's headroom, not the 20 % default.
    assert any("headroom of 90%" in w for w in edited.warnings)
    assert not any("headroom of 20%" in w for w in edited.warnings)
    assert violations(state, edited) == []
    # ... and they survive the document too.
    loaded = plan_from_document(plan_to_document(edited))
    assert (loaded.max_parallel, loaded.headroom, loaded.keep_order) == (1, 0.9, edited.keep_order)


def _sized_state():
    nodes = [make_node(f"worker-{i}") for i in range(1, 5)]
    vms = [make_vm(f"vm-{k}", node="worker-1", vcpus=4, memory_gi=2 + k, request_cpu=1.5) for k in range(8)]
    return make_state(nodes, vms)


def _largest_first(plan):
    return [m.id for m in sorted(plan.moves, key=lambda m: -m.guest_memory_bytes)]


def test_an_explicit_order_survives_a_later_skip_and_retarget():
    state = _sized_state()
    plan = _plan(state)
    order = _largest_first(plan)
    assert [m.id for m in plan.moves] != order  # the planner runs the smallest first
    reordered = reorder_moves(state, plan, order)
    assert reordered.keep_order
    assert [m.id for m in reordered.moves] == order
    skipped = skip_move(state, reordered, order[1])
    assert skipped.keep_order
    assert [m.id for m in skipped.moves] == [i for i in order if i != order[1]]
    first = skipped.move(order[0])
    retargeted = retarget_move(state, skipped, first.id, _other_target(skipped, first))
    assert retargeted.keep_order
    assert [m.id for m in retargeted.moves] == [m.id for m in skipped.moves]
    # Through the document as well (apply --skip reads a saved plan).
    loaded = plan_from_document(plan_to_document(reordered))
    assert loaded.keep_order
    assert [m.id for m in skip_move(state, loaded, order[1]).moves] == [m.id for m in skipped.moves]


def test_an_explicit_order_with_max_parallel_survives_a_skip():
    state = _sized_state()
    plan = _limited(state, max_parallel=2)
    order = _largest_first(plan)
    skipped = skip_move(state, reorder_moves(state, plan, order), order[0])
    assert [m.id for m in skipped.moves] == order[1:]
    assert max(len(w) for w in skipped.waves) <= 2
    assert [m.wave for m in skipped.moves] == sorted(m.wave for m in skipped.moves)


def test_a_document_without_options_loads_with_defaults_and_edits():
    state = _state()
    doc = plan_to_document(_limited(state, max_parallel=1, headroom=0.5))
    assert doc["options"] == {"max_parallel": 1, "headroom": 0.5, "keep_order": False}
    del doc["options"]
    old = plan_from_document(doc)
    assert (old.max_parallel, old.headroom, old.keep_order) == (None, 0.20, False)
    edited = skip_move(state, old, old.moves[0].id)
    assert (edited.max_parallel, edited.headroom, edited.keep_order) == (None, 0.20, False)
    assert violations(state, edited) == []


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
