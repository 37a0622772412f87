"""The goal registry: every goal type has one definition, and each definition drives the planner.

Adding a goal: a GoalType member, a definition in planner/goals.py, and a test here like
`test_each_automatic_goal_plans_and_reports_its_objective`."""

import numpy as np
import pytest

from factories import make_node, make_state, make_vm
from vm_rebalance.model import Goal, GoalType
from vm_rebalance.planner import PlanRequest, propose_plan
from vm_rebalance.planner.goals import BAND_PP, automatic_goals, band_reason, definition, objective_terms
from vm_rebalance.planner.problem import CPU, MEM


def test_every_goal_type_has_exactly_one_definition():
    for goal_type in GoalType:
        spec = definition(goal_type)
        assert spec.type is goal_type
        assert spec.name == goal_type.value
        assert spec.summary
        assert spec.min_gain >= 0
    assert [d.name for d in automatic_goals()] == [t.value for t in GoalType if t is not GoalType.MANUAL]


@pytest.mark.parametrize("spec", automatic_goals(), ids=lambda d: d.name)
def test_each_automatic_goal_plans_and_reports_its_objective(spec):
    nodes = [make_node(f"worker-{i}") for i in range(1, 4)]
    vms = [make_vm(f"vm-{k}", node="worker-1", vcpus=4, memory_gi=6, request_cpu=1.5) for k in range(8)]
    goal = Goal(type=spec.type, node="worker-1" if spec.type is GoalType.DRAIN else None)
    plan = propose_plan(make_state(nodes, vms), PlanRequest(goal=goal))
    assert plan.moves
    if spec.type is GoalType.DRAIN:
        assert len(plan.moves) == len(vms) and not plan.stays
    else:
        assert plan.metrics_after["objective"] < plan.metrics_before["objective"]
    assert objective_terms(goal)
    assert spec.headline(goal, "requests")


def test_the_manual_goal_has_no_automatic_plan():
    from vm_rebalance.errors import ConfigError

    with pytest.raises(ConfigError, match="manual"):
        propose_plan(make_state([make_node()], []), PlanRequest(goal=Goal(type=GoalType.MANUAL)))


def test_balance_band():
    mask = np.ones(3, dtype=bool)
    util = np.zeros((3, 4))
    util[:, CPU] = [50, 55, 60]
    util[:, MEM] = [40, 40, 41]
    reason = band_reason(Goal(type=GoalType.CPU), util, mask)
    assert reason is not None and "CPU within ±10 pp of the mean 55 %" in reason
    util[:, CPU] = [40, 55, 70]  # the mean stays 55: 15 pp away on both sides
    assert BAND_PP < 15
    assert band_reason(Goal(type=GoalType.CPU), util, mask) is None
    # Memory alone is still inside its band, and no node is above the warning thresholds.
    assert band_reason(Goal(type=GoalType.MEMORY), util, mask) is not None
    util[0, MEM] = 90  # above the memory warning threshold: never "already balanced"
    assert band_reason(Goal(type=GoalType.CPU), util, mask) is None
    assert band_reason(Goal(type=GoalType.DRAIN, node="n"), util, mask) is None
