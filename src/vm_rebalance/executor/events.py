"""What the executor reports while it works, and what each move ended as.

The types live in `vm_rebalance.model.execution` (render and the front-ends read them
without importing the executor); they are re-exported here under their old home.
"""

from vm_rebalance.model.execution import (
    FailureKind,
    MoveEvent,
    MoveStatus,
    Outcome,
    Report,
    ignore,
    outcome_document,
)

__all__ = ["FailureKind", "MoveEvent", "MoveStatus", "Outcome", "Report", "ignore", "outcome_document"]
