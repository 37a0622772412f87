"""Planning use cases and the one validation policy of every front-end."""

import dataclasses

import pytest

from factories import make_node, make_state, make_vm
from vm_rebalance.errors import ConfigError, InfeasiblePlanError
from vm_rebalance.model import ClusterState
from vm_rebalance.service import PlanSpec, explain, move_requests, plan, plan_drain, plan_moves, revalidate


def _state() -> ClusterState:
    nodes = [make_node(f"w{i}", cpu=16, memory_gi=64) for i in range(1, 4)]
    vms = [make_vm(f"vm-{i}", node="w1", vcpus=4, memory_gi=8, request_cpu=3, request_memory_gi=8) for i in range(4)]
    vms.append(make_vm("db", node="w2", storage="rwo", vcpus=2, memory_gi=4))
    return make_state(nodes, vms)


def test_plan_view_carries_the_limits_alternatives_and_document() -> None:
    state = _state()
    view = plan(state, PlanSpec(goal="cpu", basis="requests"))
    assert view.plan.moves and view.limits == state.limits
    doc = view.to_document()
    assert doc["kind"] == "RebalancePlan" and len(doc["moves"]) == len(view.plan.moves)


def test_drain_of_an_unknown_node_names_it() -> None:
    with pytest.raises(ConfigError, match="node 'nope' does not exist"):
        plan_drain(_state(), "nope")
    view = plan_drain(_state(), "w1")
    assert {m.source for m in view.plan.moves} == {"w1"}


def test_named_moves() -> None:
    state = _state()
    view = plan_moves(state, move_requests(["vm-0"], "w3", "default"))
    assert [(m.vm, m.target) for m in view.plan.moves] == [("vm-0", "w3")]
    with pytest.raises(ConfigError, match="Target node 'w7' does not exist"):
        plan_moves(state, move_requests(["vm-0"], "w7", "default"))
    with pytest.raises(ConfigError, match="VM 'ghost' does not exist in namespace 'default'"):
        plan_moves(state, move_requests(["ghost"], "w3", "default"))
    with pytest.raises(InfeasiblePlanError, match="no requested move passes validation"):
        plan_moves(state, move_requests(["db"], "w3", "default", "live"))  # RWO cannot move live
    assert plan_moves(state, move_requests(["vm-0"], "w1", "default")).plan.moves == ()  # already there


def test_explain_unknown_move_lists_the_ids() -> None:
    state = _state()
    view = plan_moves(state, move_requests(["vm-0"], "w3", "default"))
    assert explain(state, view.plan, view.plan.moves[0].id)[0].startswith("Move #1: default/vm-0")
    with pytest.raises(ConfigError, match="no move #5") as info:
        explain(state, view.plan, 5)
    assert info.value.hint == "move ids: 1"


def test_revalidation_keeps_what_still_validates_with_its_ids() -> None:
    state = _state()
    view = plan_moves(state, move_requests(["vm-0", "vm-1"], "w3", "default"))
    unchanged = revalidate(state, view.plan)
    assert not unchanged.changed and [m.id for m in unchanged.plan.moves] == [1, 2]

    # vm-0 was moved to w3 by someone else meanwhile; w3 is then cordoned for vm-1's move.
    moved = [dataclasses.replace(v, node="w3") if v.name == "vm-0" else v for v in state.vms]
    later = make_state(
        [dataclasses.replace(n, unschedulable=n.name == "w3") for n in state.nodes], moved, fill_requests=True
    )
    checked = revalidate(later, view.plan)
    assert checked.changed and checked.dropped_ids == (1, 2)
    assert checked.plan.moves == ()
    assert any(w.startswith("Migration #1 (vm-0)") for w in checked.warnings)
    assert any(w.startswith("Migration #2 (vm-1)") for w in checked.warnings)


def test_revalidation_leaves_done_moves_alone() -> None:
    state = _state()
    view = plan_moves(state, move_requests(["vm-0", "vm-1"], "w3", "default"))
    checked = revalidate(state, view.plan, skip_ids=[1])
    assert [m.id for m in checked.plan.moves] == [2] and not checked.changed


def test_errors_name_the_vm_the_namespace_and_what_was_meant() -> None:
    from vm_rebalance.service import missing_node, missing_vm

    state = make_state(
        [make_node("worker-01"), make_node("worker-05")],
        [make_vm("web-01", namespace="prod", node="worker-01"), make_vm("web-02", namespace="prod", node="worker-01")],
    )
    err = missing_vm(state, "default", "web-01")
    assert str(err) == "VM 'web-01' does not exist in namespace 'default'"
    assert err.hint == "it exists in namespace 'prod': use -n prod or prod/web-01"
    typo = missing_vm(state, "prod", "web-1")
    assert typo.hint is not None and "web-01" in typo.hint
    node = missing_node(state, "worker-5", role="target")
    assert str(node) == "Target node 'worker-5' does not exist" and node.hint == "did you mean worker-05, worker-01?"
    with pytest.raises(ConfigError, match="VM 'web-01' does not exist in namespace 'default'") as info:
        plan_moves(state, move_requests(["web-01"], "worker-05", "default"))
    assert info.value.hint == "it exists in namespace 'prod': use -n prod or prod/web-01"


def test_a_vm_that_moved_since_planning_is_flagged() -> None:
    state = _state()
    view = plan_moves(state, move_requests(["vm-0", "vm-1"], "w3", "default"))
    moved = [dataclasses.replace(v, node="w2") if v.name == "vm-0" else v for v in state.vms]
    later = make_state(list(state.nodes), moved)
    checked = revalidate(later, view.plan)
    assert checked.changed and checked.moved_ids == (1,) and checked.dropped_ids == ()
    (flag,) = [w for w in checked.warnings if "moved since the plan was made" in w]
    assert flag == (
        "Migration #1 (vm-0): the VM moved since the plan was made (planned from w1, now on w2); it would move from w2"
    )
    move = checked.plan.move(1)
    assert move is not None and move.source == "w2" and move.target == "w3"
