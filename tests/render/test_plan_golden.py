"""The standard plan format (seed 000's two tables, key improvement, summary, execution mode) as golden
files: one per goal, a manual plan and a drain, so a changed table is a visible diff."""

import pytest

from factories import make_node, make_state, make_vm
from golden import assert_golden
from vm_rebalance import service
from vm_rebalance.model import ClusterState
from vm_rebalance.render.plan import plan_markdown


def _cluster() -> ClusterState:
    nodes = [make_node(f"worker-0{i}", cpu=16, memory_gi=64) for i in range(1, 5)]
    vms = []
    for i in range(6):
        vms.append(
            make_vm(
                f"app-{i:02d}",
                namespace="prod",
                node="worker-01",
                vcpus=4,
                memory_gi=8,
                request_cpu=2.5,
                request_memory_gi=8,
                usage_cpu=2.2,
                usage_memory_gi=6,
                instance_type="u1.large" if i % 2 else None,
            )
        )
    vms.append(
        make_vm(
            "db-01",
            namespace="prod",
            node="worker-02",
            storage="rwo",
            vcpus=4,
            memory_gi=16,
            request_cpu=3,
            request_memory_gi=16,
            usage_cpu=2.5,
            usage_memory_gi=14,
        )
    )
    vms.append(
        make_vm("web-01", namespace="dev", node="worker-02", vcpus=2, memory_gi=4, usage_cpu=0.5, usage_memory_gi=2)
    )
    return make_state(nodes, vms, metrics=True)


@pytest.mark.parametrize("goal", ["cpu", "memory", "balanced", "count", "performance"])
def test_each_goal(goal: str) -> None:
    state = _cluster()
    view = service.plan(state, service.PlanSpec(goal=goal))
    assert_golden(f"plan_{goal}.md", plan_markdown(view.plan, limits=view.limits, alternatives=view.alternatives))


def test_drain() -> None:
    state = _cluster()
    view = service.plan_drain(state, "worker-02")
    assert_golden("plan_drain.md", plan_markdown(view.plan, limits=view.limits, alternatives=view.alternatives))


def test_manual() -> None:
    state = _cluster()
    view = service.plan_moves(
        state, service.move_requests(["prod/app-00=worker-03", "prod/db-01=worker-04"], None, "default")
    )
    assert_golden("plan_manual.md", plan_markdown(view.plan, limits=view.limits))


def test_a_move_into_a_hot_node_runs_after_the_moves_out_of_it() -> None:
    state = _cluster()
    plan = service.plan(state, service.PlanSpec(goal="balanced")).plan
    hot_source_waves = [m.wave for m in plan.moves if m.source == "worker-01"]
    into_hot = [m for m in plan.moves if m.target == "worker-01"]
    assert hot_source_waves and into_hot
    assert all(m.wave > max(hot_source_waves) for m in into_hot)
