"""The planner: pure functions from a cluster state and a request to a plan (no I/O).

Public API: `propose_plan` (automatic goals), `plan_manual_moves` (user-named moves), the plan
edits `skip_move` / `retarget_move` / `reorder_moves`, `PlanRequest`, and the strategy
registry `STRATEGIES`. Placement rules live in `eligibility`; every goal's objective, minimum
gain, balance band and words in the goal registry `goals`; the move-economy curve in
`tradeoff`; who takes part in pod (anti-)affinity in `affinity`.
"""

from vm_rebalance.planner.edits import (
    ManualMoveRequest,
    ManualPlan,
    PlanEditError,
    Rejection,
    RejectionKind,
    check_manual_moves,
    plan_manual_moves,
    reorder_moves,
    retarget_move,
    skip_move,
)
from vm_rebalance.planner.propose import propose_plan
from vm_rebalance.planner.request import PlanRequest
from vm_rebalance.planner.search import STRATEGIES

__all__ = [
    "STRATEGIES",
    "ManualMoveRequest",
    "ManualPlan",
    "PlanEditError",
    "PlanRequest",
    "Rejection",
    "RejectionKind",
    "check_manual_moves",
    "plan_manual_moves",
    "propose_plan",
    "reorder_moves",
    "retarget_move",
    "skip_move",
]
