"""The plan's standard presentation (rich and Markdown)."""

import io

from rich.console import Console

from factories import make_node, make_state, make_vm
from vm_rebalance.model import DO_NOT_MOVE_ANNOTATION, Goal, GoalType, MigrationLimits
from vm_rebalance.planner import PlanRequest, plan_manual_moves, propose_plan
from vm_rebalance.planner.alternatives import suggest_alternatives
from vm_rebalance.render.plan import estimate_seconds, plan_markdown, render_plan


def _state():
    nodes = [make_node(f"worker-{i}") for i in range(1, 5)]
    vms = [
        make_vm(f"vm-{k}", node="worker-1", vcpus=4, memory_gi=6, request_cpu=1.6, instance_type="u1.large")
        for k in range(8)
    ]
    vms.append(make_vm("keep", node="worker-1", request_cpu=4, annotations={DO_NOT_MOVE_ANNOTATION: "true"}))
    vms.append(make_vm("db", node="worker-1", storage="rwo", request_cpu=4, memory_gi=8))
    return make_state(nodes, vms)


def _text(renderable) -> str:
    console = Console(file=io.StringIO(), width=140, color_system=None)
    console.print(renderable)
    return console.file.getvalue()


def test_rich_plan_has_the_standard_sections():
    state = _state()
    request = PlanRequest(goal=Goal(type=GoalType.BALANCED))
    plan = propose_plan(state, request)
    out = _text(render_plan(plan, alternatives=suggest_alternatives(state, request, plan)))
    for section in (
        "📋 VM Rebalance Plan",
        "📊 Node State: Before → After",
        "Key Improvement:",
        "Rebalance Summary:",
        "Total VMs to Rebalance",
        "Estimated Duration",
        "Execution Mode",
    ):
        assert section in out
    header = next(line for line in out.splitlines() if "Instance Type" in line)
    cells = [c.strip() for c in header.strip("┃ ").split("┃")]
    assert cells == ["#", "VM", "Instance Type", "Current Node", "→", "New Node", "Type", "Downtime", "Notes"]
    assert "Change" in out and "← Receiving VMs" in out and "✓ Reduced load" in out
    assert "CPU std dev" in out and "% better" in out
    assert "u1.large" in out and "<1s pause" in out
    assert "Parallel" in out


def test_markdown_matches_the_seed_format():
    plan = propose_plan(_state(), PlanRequest(goal=Goal(type=GoalType.CPU)))
    md = plan_markdown(plan)
    assert "## 📋 VM Rebalance Plan" in md
    assert "| # | VM | Instance Type | Current Node | → | New Node | Type | Downtime | Notes |" in md
    assert "| Node | VMs Now | CPU Now | Memory Now | → | VMs After | CPU After | Memory After | Change |" in md
    assert "**Key Improvement:** CPU std dev" in md
    assert "- **Live**:" in md and "**Execution Mode**: **Parallel**" in md


def test_stays_with_reasons_are_shown_and_the_rest_counted():
    nodes = [make_node(f"worker-{i}", cpu=10) for i in range(1, 4)]
    vms = [
        make_vm(f"p{k}", node="worker-1", request_cpu=2.2, annotations={DO_NOT_MOVE_ANNOTATION: "true"})
        for k in range(4)
    ]
    vms += [make_vm("w", node="worker-2")]
    plan = propose_plan(make_state(nodes, vms), PlanRequest(goal=Goal(type=GoalType.CPU)))
    md = plan_markdown(plan, max_stays=2)
    assert md.count("*stays*") == 2
    assert "2 more staying VM(s)" in md
    assert "No migration needed" in md


def test_sequential_plan_and_cold_moves():
    nodes = [make_node(f"worker-{i}") for i in range(1, 4)]
    vms = [make_vm(f"db{k}", node="worker-1", storage="rwo", request_cpu=4) for k in range(3)]
    state = make_state(nodes, vms)
    request = PlanRequest(goal=Goal(type=GoalType.CPU), sequential=True)
    plan = propose_plan(state, request)
    md = plan_markdown(plan)
    assert "**Sequential**" in md
    assert "Cold" in md and "~30-60s" in md and "cumulative (cold only)" in md
    assert any("With --live-only" in a for a in suggest_alternatives(state, request, plan))


def test_drain_and_manual_plans_render():
    state = _state()
    drain = propose_plan(state, PlanRequest(goal=Goal(type=GoalType.DRAIN, node="worker-1")))
    md = plan_markdown(drain)
    assert ("worker-1 drained" in md and "✓ Drained" not in md) or "keep" in md
    manual = plan_manual_moves(state, [("default", "vm-0", "worker-2", "auto")])
    assert "Move the VMs you named" in plan_markdown(manual)


def test_duration_estimate_uses_memory_and_slots():
    nodes = [make_node(f"worker-{i}") for i in range(1, 3)]
    vms = [make_vm("big", node="worker-1", memory_gi=20)]
    plan = plan_manual_moves(make_state(nodes, vms), [("default", "big", "worker-2", "live")])
    assert estimate_seconds(plan) == 10 + 20
    assert estimate_seconds(plan, MigrationLimits(parallel_per_cluster=1)) == 30


def test_a_long_plan_shows_its_first_moves_and_counts_the_rest():
    plan = propose_plan(_state(), PlanRequest(goal=Goal(type=GoalType.BALANCED)))
    assert len(plan.moves) >= 3
    shown = 2
    out = _text(render_plan(plan, max_moves=shown))
    md = plan_markdown(plan, max_moves=shown)
    hidden = len(plan.moves) - shown
    for text in (out, md):
        assert f"… and {hidden} more move(s), not shown here (every move: -o json" in text
    assert plan.moves[0].vm in md and plan.moves[1].vm in md
    assert f"| {plan.moves[2].id} | {plan.moves[2].vm} |" not in md
    # The summary still counts every move, shown or not.
    assert f"- **Total VMs to Rebalance**: {len(plan.moves)}" in md
    assert "more move(s)" not in plan_markdown(plan)
