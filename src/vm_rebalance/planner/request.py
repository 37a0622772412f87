"""What the user asks the automatic planner for: goal, basis, limits and soft preferences."""

from dataclasses import dataclass

from vm_rebalance.model import Basis, Goal
from vm_rebalance.model.thresholds import DEFAULT_HEADROOM

DEFAULT_COOLDOWN_SECONDS = 3600.0


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanRequest:
    """Options of one `propose_plan` call (the flags of `vm-rebalance plan`)."""

    goal: Goal
    basis: Basis | None = None
    """None: usage when the state has metrics, else requests."""
    max_migrations: int | None = None
    live_only: bool = False
    """Running VMs that cannot move live stay where they are."""
    namespaces: tuple[str, ...] = ()
    """Only VMs in these namespaces move; empty means all namespaces."""
    headroom: float = DEFAULT_HEADROOM
    """Keep this fraction of every node free after the plan where possible (soft)."""
    cooldown_seconds: float = DEFAULT_COOLDOWN_SECONDS
    """A VM migrated less than this long ago is not moved again (except to drain a node)."""
    seed: int = 0
    """Reserved for randomised strategies; the default strategies are deterministic without it."""
    max_parallel: int | None = None
    """At most this many moves per wave (None: as many as capacity allows)."""
    sequential: bool = False
    strategy: str = "greedy"
    min_gain: float | None = None
    """A move must buy at least this much (pp², see `goals`); None: the goal's default."""

    def __post_init__(self) -> None:
        if self.max_migrations is not None and self.max_migrations < 0:
            raise ValueError("max_migrations must be >= 0")
        if not 0.0 <= self.headroom < 1.0:
            raise ValueError("headroom must be in [0, 1)")
        if self.cooldown_seconds < 0:
            raise ValueError("cooldown_seconds must be >= 0")
        if self.max_parallel is not None and self.max_parallel < 1:
            raise ValueError("max_parallel must be >= 1")
        if self.min_gain is not None and not 0.0 <= self.min_gain < float("inf"):
            raise ValueError("min_gain must be a finite number >= 0")
