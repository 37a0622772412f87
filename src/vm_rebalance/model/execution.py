"""What carrying out a plan or a lifecycle batch produces: statuses, failure kinds, events, outcomes.

Pure data shared by every layer: the executor produces these, `service` passes them on,
`render` and the front-ends show them — none of them needs to import the executor to read
them. Decisions (what to suggest after a failure, which icon to show) match on the enums
here; the ``error`` / ``message`` texts are for people only.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from vm_rebalance.model.plan import Move


class MoveStatus(StrEnum):
    """Where a move stands."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    NOT_ATTEMPTED = "not attempted"


class FailureKind(StrEnum):
    """Why a move failed: what the executor, the renderers and the front-ends decide on."""

    NOT_LIVE_MIGRATABLE = "not-live-migratable"
    """KubeVirt refused a live migration of this VM (RWO disks, host devices, …): a cold move may work."""
    MIGRATION_IN_FLIGHT = "migration-in-flight"
    """Another migration of this VM is in flight (someone else's, or a KubeVirt evacuation)."""
    MIGRATION_FAILED = "migration-failed"
    """KubeVirt ran the migration and reported it failed; the VM stays on its source."""
    MIGRATION_TIMEOUT = "migration-timeout"
    """The migration did not finish within its deadline and was cancelled."""
    MIGRATION_LOST = "migration-lost"
    """The migration object disappeared before it was seen to finish and the VM is not on the target."""
    WRONG_NODE = "wrong-node"
    """The VM ended up on another node than the target."""
    VM_NOT_FOUND = "vm-not-found"
    VM_NOT_RUNNING = "vm-not-running"
    """A live move of a VM that has no running instance (it stopped or was never started)."""
    RUN_STRATEGY = "run-strategy"
    """The VM's runStrategy does not allow the start or stop the move needs."""
    USER_AFFINITY = "user-affinity"
    """The VM has a node pin of the user's own: replacing it needs the user's approval."""
    STOP_FAILED = "stop-failed"
    """A cold move's stop was refused or the VM did not stop in time."""
    START_FAILED = "start-failed"
    """A cold move's VM could not start on the target (unschedulable, crash loop, timeout)."""
    FORBIDDEN = "forbidden"
    """RBAC: the credentials may not do what the move needs."""
    CONFLICT = "conflict"
    """The VM kept changing under vm-rebalance's guarded writes."""
    ADMISSION_DENIED = "admission-denied"
    """An admission webhook or validation refused a change for another reason."""
    CLUSTER_UNAVAILABLE = "cluster-unavailable"
    """The API server kept failing to answer; the move was ended safely."""
    INTERRUPTED = "interrupted"
    """The execution was cancelled (Ctrl-C, an MCP cancel, a shutdown, a lost lease)."""
    API_ERROR = "api-error"
    """Any other API error."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MoveEvent:
    """A move changed phase (or is still in one)."""

    move: Move
    status: MoveStatus
    phase: str
    """Text of the current step for people, e.g. 'Running', 'stopping VM', 'waiting for a slot'."""
    elapsed_seconds: float = 0.0
    estimate_seconds: float | None = None
    message: str = ""
    failure: FailureKind | None = None
    """Set on the event that reports a failed move."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """How one move ended."""

    move: Move
    status: MoveStatus
    duration_seconds: float | None = None
    error: str | None = None
    """What went wrong, for people (``failure`` is what code decides on)."""
    failure: FailureKind | None = None
    """Why the move failed; set exactly when ``status`` is FAILED."""
    migration_name: str | None = None
    final_node: str | None = None
    pinned: bool = False
    """A cold move left a required node affinity to the target (see `unpin`)."""
    notes: tuple[str, ...] = field(default_factory=tuple)
    state: str | None = None
    """What the cluster showed for the VM when the outcome was verified (None: not read)."""

    def __post_init__(self) -> None:
        if (self.status is MoveStatus.FAILED) != (self.failure is not None):
            raise ValueError(f"move {self.move.id}: a failure kind goes with status failed and only with it")

    @property
    def ok(self) -> bool:
        """Whether the move succeeded."""
        return self.status is MoveStatus.SUCCEEDED


Report = Callable[[MoveEvent], None]


def ignore(_event: MoveEvent) -> None:
    """A Report that drops events."""


def outcome_document(outcome: Outcome) -> dict[str, Any]:
    """An outcome as a plain dict (reports, JSON output)."""
    m = outcome.move
    return {
        "id": m.id,
        "vm": m.vm,
        "namespace": m.namespace,
        "from": m.source,
        "to": m.target,
        "scheduler_chooses": m.scheduler_chooses,
        "method": m.method.value,
        "status": outcome.status.value,
        "duration_seconds": None if outcome.duration_seconds is None else round(outcome.duration_seconds, 1),
        "error": outcome.error,
        "failure": None if outcome.failure is None else outcome.failure.value,
        "migration": outcome.migration_name,
        "final_node": outcome.final_node,
        "state": outcome.state,
        "pinned": outcome.pinned,
        "notes": list(outcome.notes),
    }


# ----------------------------------------------------------------------------------------- lifecycle


class Action(StrEnum):
    """Lifecycle actions."""

    START = "start"
    STOP = "stop"
    RESTART = "restart"


class LifecycleStatus(StrEnum):
    """How a lifecycle operation on one VM ended."""

    DONE = "done"
    ALREADY = "already in desired state"
    FAILED = "failed"
    NOT_FOUND = "not found"


@dataclass(frozen=True, slots=True, kw_only=True)
class LifecycleResult:
    """The result for one VM."""

    namespace: str
    name: str
    action: Action
    status: LifecycleStatus
    message: str = ""
    run_strategy: str | None = None
    printable_status: str | None = None
    duration_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Done or already so."""
        return self.status in (LifecycleStatus.DONE, LifecycleStatus.ALREADY)


LifecycleReport = Callable[[str, str, str], None]
"""(namespace/name, phase, message) progress callback."""
