"""Quality at equal move counts against the plain greedy of issue 12, on a constrained cluster.

The cluster generator and the greedy reference live in benchmarks/ (where planner_bench.py uses
them on 50 to 5,000 nodes); here one fixed seed on 50 nodes keeps the test quick."""

import importlib.util
import sys
from pathlib import Path

import pytest

from vm_rebalance.model import Goal, GoalType
from vm_rebalance.planner import PlanRequest, propose_plan
from vm_rebalance.planner.tradeoff import objective_curve

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def cluster():
    return _load("constrained_cluster").generate(50, 1000, seed=3)


@pytest.fixture(scope="module")
def greedy(cluster):
    return _load("greedy_reference").Greedy(cluster).run(400).curve


@pytest.mark.slow
@pytest.mark.parametrize("k", [1, 5, 10, 22, 50])
def test_max_migrations_plans_are_at_least_as_good_as_the_greedys_first_k_moves(cluster, greedy, k):
    plan = propose_plan(cluster, PlanRequest(goal=Goal(type=GoalType.BALANCED), max_migrations=k))
    assert len(plan.moves) <= k
    reference = greedy[min(k, len(greedy) - 1)]
    assert plan.metrics_after["objective"] <= reference + 1e-9, (k, plan.metrics_after["objective"], reference)


@pytest.mark.slow
def test_every_prefix_of_the_plan_is_within_a_tenth_of_a_percent_of_the_greedys(cluster, greedy, monkeypatch):
    import vm_rebalance.planner.propose as propose

    seen = {}
    original = propose.tradeoff_points

    def spy(pristine, steps, terms, is_cold):
        seen["curve"] = objective_curve(pristine, steps, terms)
        return original(pristine, steps, terms, is_cold)

    monkeypatch.setattr(propose, "tradeoff_points", spy)
    plan = propose_plan(cluster, PlanRequest(goal=Goal(type=GoalType.BALANCED)))
    ours = seen["curve"]
    assert len(ours) - 1 == len(plan.moves) > 10
    # The steepest-descent order is not the greedy's: on this seed it trails by 0.003 (0.02 %) at
    # one k (22; the --max-migrations 22 plan above is not behind). Never by more than 0.1 %.
    worse = [k for k in range(1, len(ours)) if ours[k] > greedy[min(k, len(greedy) - 1)] * 1.001 + 1e-9]
    assert worse == []
    assert sum(ours[k] > greedy[min(k, len(greedy) - 1)] + 1e-9 for k in range(1, len(ours))) <= 1
