"""Plan edits as every front-end uses them: the words of the approval loop, typed edits, what changed."""

import pytest

from factories import make_node, make_state, make_vm
from vm_rebalance.errors import ConfigError, InfeasiblePlanError
from vm_rebalance.model import ClusterState, Plan
from vm_rebalance.service import (
    PlanSpec,
    Reorder,
    Retarget,
    SetSequential,
    Skip,
    edit_plan,
    parse_edit,
    propose,
)


@pytest.mark.parametrize(
    ("text", "edit"),
    [
        ("skip 3", Skip(3)),
        ("skip #3", Skip(3)),
        ("change target 2 to worker-05", Retarget(2, "worker-05")),
        ("Change Target #2 worker-05", Retarget(2, "worker-05")),
        ("retarget 2 Worker-X", Retarget(2, "Worker-X")),
        ("reorder 3,1,2", Reorder((3, 1, 2))),
        ("reorder 3 1 2", Reorder((3, 1, 2))),
        ("sequential", SetSequential(True)),
        ("run sequentially", SetSequential(True)),
        ("parallel", SetSequential(False)),
    ],
)
def test_parse_edit(text: str, edit: object) -> None:
    assert parse_edit(text) == edit


@pytest.mark.parametrize("text", ["", "skip", "skip x", "reorder", "frobnicate 3", "move 1 to w2"])
def test_unknown_edits_say_which_there_are(text: str) -> None:
    with pytest.raises(ConfigError, match=r"unknown edit .* use skip N, change target N to NODE"):
        parse_edit(text)


def _cluster() -> tuple[ClusterState, Plan]:
    nodes = [make_node(f"w{i}", cpu=16, memory_gi=64) for i in range(1, 4)]
    nodes.append(make_node("w9", cpu=16, memory_gi=64, unschedulable=True))
    vms = [make_vm(f"vm-{i}", node="w1", vcpus=4, memory_gi=8, request_cpu=3, request_memory_gi=8) for i in range(4)]
    state = make_state(nodes, vms)
    plan = propose(state, PlanSpec(goal="cpu", basis="requests"))
    assert len(plan.moves) >= 2
    return state, plan


def test_edits_recompute_the_plan_and_say_what_changed() -> None:
    state, plan = _cluster()
    first, second = plan.moves[0], plan.moves[1]
    other = next(n for n in ("w1", "w2", "w3") if n not in (second.target, second.source))
    result = edit_plan(
        state, plan, [Skip(first.id), Retarget(second.id, other), Reorder((second.id,)), SetSequential(True)]
    )
    assert result.plan.move(first.id) is None
    moved = result.plan.move(second.id)
    assert moved is not None and moved.target == other
    assert result.plan.sequential
    assert result.changes == (
        f"Migration #{first.id} ({first.vm}) removed from plan.",
        f"Migration #{second.id} ({second.vm}) now goes to {other}.",
        f"Moves reordered: #{second.id} first.",
        "Execution is now sequential (one move at a time).",
    )
    # The after-state follows the edit: the skipped VM stays on its source.
    after = {n.name: n.after.vms for n in result.plan.nodes}
    assert after[first.source] >= 1


def test_an_edit_that_breaks_a_rule_is_refused_with_the_reason() -> None:
    state, plan = _cluster()
    with pytest.raises(ConfigError):
        edit_plan(state, plan, [Skip(99)])
    with pytest.raises(ConfigError, match="node 'nope' does not exist"):
        edit_plan(state, plan, [Retarget(plan.moves[0].id, "nope")])
    with pytest.raises(InfeasiblePlanError, match="w9"):
        edit_plan(state, plan, [Retarget(plan.moves[0].id, "w9")])


def test_alternatives_are_edits() -> None:
    from vm_rebalance.service import UseAlternative

    assert parse_edit("live only") == UseAlternative("live-only")
    assert parse_edit("use live-only") == UseAlternative("live-only")
    state, plan = _cluster()
    other = edit_plan(state, plan, [SetSequential(True)]).plan
    result = edit_plan(state, plan, [UseAlternative("live-only")], alternatives={"live-only": other})
    assert result.plan is other and result.changes[0].startswith("Using the live-only alternative")
    with pytest.raises(ConfigError, match="offers no 'live-only' alternative"):
        edit_plan(state, plan, [UseAlternative("live-only")])
