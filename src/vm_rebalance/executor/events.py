"""What the executor reports while it works, and what each move ended as.

The executor never prints: front-ends turn these events into a progress display (CLI),
progress notifications (MCP) or a list (tests).
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from vm_rebalance.model import Move


class MoveStatus(StrEnum):
    """Where a move stands."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    NOT_ATTEMPTED = "not attempted"


@dataclass(frozen=True, slots=True, kw_only=True)
class MoveEvent:
    """A move changed phase (or is still in one)."""

    move: Move
    status: MoveStatus
    phase: str
    """Free text of the current step, e.g. 'Running', 'stopping VM', 'waiting for a slot'."""
    elapsed_seconds: float = 0.0
    estimate_seconds: float | None = None
    message: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """How one move ended."""

    move: Move
    status: MoveStatus
    duration_seconds: float | None = None
    error: str | None = None
    migration_name: str | None = None
    final_node: str | None = None
    pinned: bool = False
    """A cold move left a required node affinity to the target (see `unpin`)."""
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        """Whether the move succeeded."""
        return self.status is MoveStatus.SUCCEEDED


Report = Callable[[MoveEvent], None]


def ignore(_event: MoveEvent) -> None:
    """A Report that drops events."""
