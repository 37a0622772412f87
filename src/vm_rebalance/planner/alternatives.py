"""Alternatives worth offering next to a plan (the seeds' "💡 Alternative Approach Detected")."""

from dataclasses import replace

from vm_rebalance.model import ClusterState, GoalType, MigrationMethod, Plan
from vm_rebalance.model.thresholds import BATCH_WARN
from vm_rebalance.planner.propose import propose_plan
from vm_rebalance.planner.request import PlanRequest


def suggest_alternatives(state: ClusterState, request: PlanRequest, plan: Plan) -> tuple[str, ...]:
    """One-line alternatives that trade balance for less disruption, with their computed cost.

    Only what helps the decision: a live-only variant when the plan has cold moves of running
    VMs (its objective computed, not guessed), and sequential execution for risky batches.
    """
    out: list[str] = []
    cold = [m for m in plan.moves if m.running and m.method is MigrationMethod.COLD]
    if cold and not request.live_only and request.goal.type is not GoalType.MANUAL:
        live = propose_plan(state, replace(request, live_only=True))
        before = plan.metrics_before.get("objective", 0.0)
        ours = plan.metrics_after.get("objective", 0.0)
        theirs = live.metrics_after.get("objective", 0.0)
        if request.goal.type is GoalType.DRAIN:
            left = sum(1 for s in live.stays if s.node == request.goal.node)
            out.append(
                f"With --live-only: no downtime, {len(live.moves)} live moves, but {left} VM(s) stay on "
                f"{request.goal.node}"
            )
        else:
            gained = before - ours
            kept = (before - theirs) / gained * 100 if gained > 1e-9 else 100.0
            out.append(
                f"With --live-only: no downtime and {len(live.moves)} moves; objective {before:.1f} → "
                f"{theirs:.1f} instead of {ours:.1f} ({kept:.0f} % of this plan's improvement)"
            )
    if not plan.sequential and (len(cold) >= 2 or len(plan.moves) > BATCH_WARN):
        out.append("Run sequentially (apply --sequential): same total downtime, lower network impact, easier to abort")
    return tuple(out)
