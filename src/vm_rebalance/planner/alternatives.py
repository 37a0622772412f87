"""Alternatives worth offering next to a plan (the seeds' "💡 Alternative Approach Detected").

Each alternative is something the user can accept as an edit of the plan ("live only",
"sequential"): it carries the plan it would become, computed, not guessed.
"""

from dataclasses import dataclass, replace

from vm_rebalance.model import ClusterState, GoalType, MigrationMethod, Plan
from vm_rebalance.model.thresholds import BATCH_WARN
from vm_rebalance.planner.propose import propose_plan
from vm_rebalance.planner.request import PlanRequest

LIVE_ONLY = "live-only"
SEQUENTIAL = "sequential"


@dataclass(frozen=True, slots=True, kw_only=True)
class Alternative:
    """One alternative: its key (what the user types to accept it), the sentence offering it, the plan."""

    key: str
    text: str
    plan: Plan


def alternatives(state: ClusterState, request: PlanRequest, plan: Plan) -> tuple[Alternative, ...]:
    """The alternatives that trade balance for less disruption, with their computed cost.

    Only what helps the decision: a live-only variant when the plan has cold moves of running
    VMs (its objective computed), and sequential execution for risky batches.
    """
    out: list[Alternative] = []
    cold = [m for m in plan.moves if m.running and m.method is MigrationMethod.COLD]
    if cold and not request.live_only and request.goal.type is not GoalType.MANUAL:
        live = propose_plan(state, replace(request, live_only=True))
        out.append(Alternative(key=LIVE_ONLY, text=_live_only_text(request, plan, live), plan=live))
    if not plan.sequential and (len(cold) >= 2 or len(plan.moves) > BATCH_WARN):
        out.append(
            Alternative(
                key=SEQUENTIAL,
                text="Run sequentially (type `sequential`, or apply --sequential): same total downtime, lower "
                "network impact, easier to abort",
                plan=replace(plan, sequential=True),
            )
        )
    return tuple(out)


def _live_only_text(request: PlanRequest, plan: Plan, live: Plan) -> str:
    if request.goal.type is GoalType.DRAIN:
        left = sum(1 for s in live.stays if s.node == request.goal.node)
        return (
            f"With --live-only (type `live only`): no downtime, {len(live.moves)} live moves, but {left} VM(s) "
            f"stay on {request.goal.node}"
        )
    before = plan.metrics_before.get("objective", 0.0)
    ours = plan.metrics_after.get("objective", 0.0)
    theirs = live.metrics_after.get("objective", 0.0)
    gained = before - ours
    kept = (before - theirs) / gained * 100 if gained > 1e-9 else 100.0
    return (
        f"With --live-only (type `live only`): no downtime and {len(live.moves)} moves; objective {before:.1f} → "
        f"{theirs:.1f} instead of {ours:.1f} ({kept:.0f} % of this plan's improvement)"
    )


def suggest_alternatives(state: ClusterState, request: PlanRequest, plan: Plan) -> tuple[str, ...]:
    """The alternatives' sentences (see ``alternatives``)."""
    return tuple(a.text for a in alternatives(state, request, plan))
