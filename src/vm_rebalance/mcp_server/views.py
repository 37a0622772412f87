"""The MCP tools' input and output shapes (pydantic, at the edge) and their conversions to library types.

Output models are the tools' `outputSchema`; documents inside them are the versioned
documents of the CLI's `-o json` (Inventory, RebalancePlan, RebalanceReport, …).
"""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from vm_rebalance import service

GoalName = Literal["cpu", "memory", "balanced", "count", "drain", "performance"]
Method = Literal["auto", "live", "cold"]
LifecycleAction = Literal["start", "stop", "restart"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Input(_Model):
    """A tool argument object: validated strictly (no "1" for 1, no "yes" for true)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class Weights(_Input):
    """Relative weights of CPU and memory for the balanced goal (normalised by the planner)."""

    cpu: float = Field(default=0.5, ge=0, description="Weight of CPU balance.")
    memory: float = Field(default=0.5, ge=0, description="Weight of memory balance.")


class Retarget(_Input):
    """Send one move of the plan to another node."""

    move_id: int = Field(description="The move's # in the plan.")
    node: str = Field(
        description="The new target node.",
        max_length=253,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
    )


def plan_spec(
    goal: GoalName,
    *,
    node: str | None = None,
    weights: Weights | None = None,
    max_migrations: int | None = None,
    basis: Literal["usage", "requests"] | None = None,
    live_only: bool = False,
    namespaces: list[str] | None = None,
    sequential: bool = False,
) -> service.PlanSpec:
    """The service's PlanSpec from tool arguments (checked by the service, as the CLI's options are)."""
    return service.PlanSpec(
        goal=goal,
        node=node,
        weights=None if weights is None else {"cpu": weights.cpu, "memory": weights.memory},
        max_migrations=max_migrations,
        basis=basis,
        live_only=live_only,
        namespaces=tuple(namespaces or ()),
        sequential=sequential,
    )


vm_refs = service.vm_refs


# ------------------------------------------------------------------------------ outputs


class InventoryOutput(_Model):
    """cluster_inventory's result."""

    inventory: dict[str, Any] = Field(description="The Inventory document (nodes, vms, totals with headroom).")


class CapacityReportOutput(_Model):
    """capacity_report's result."""

    report: dict[str, Any] = Field(
        description=(
            "The CapacityReport document: cluster and per-node action bands, headroom, n_plus_one, right_sizing, "
            "workload_classes, migration_slots, plan (before → after), and sections (absent ones with the reason)."
        )
    )


class PlanOutput(_Model):
    """A plan to show to the human, with what executing it needs."""

    plan_id: str = Field(description="Pass to execute_plan / modify_plan / explain_move.")
    plan_hash: str = Field(description="sha256 of the canonical plan document; execute_plan needs it.")
    plan: dict[str, Any] = Field(description="The RebalancePlan document (moves, stays, nodes, metrics, warnings).")
    warnings: list[str] = Field(default_factory=list)
    alternatives: list[str] = Field(default_factory=list)
    replaces: str | None = Field(default=None, description="modify_plan: the plan id this plan replaces.")
    changes: list[str] = Field(default_factory=list, description="modify_plan: what was changed.")
    next_step: str


class ExplainOutput(_Model):
    """explain_move's result."""

    plan_id: str
    move_id: int
    explanation: list[str]


class ExecutionOutput(_Model):
    """The state of one execution (a running one, or its final report)."""

    plan_id: str = Field(description="The approved plan being executed.")
    state: Literal["running", "awaiting-decision", "finished", "error"]
    complete: bool | None = Field(default=None, description="Finished: whether every move succeeded.")
    moves: list[dict[str, Any]] = Field(description="Per move: id, vm, namespace, from, to, method, status, phase.")
    report: dict[str, Any] | None = Field(default=None, description="Finished: the RebalanceReport document.")
    error: str | None = None
    warnings: list[str] = Field(default_factory=list)
    question: dict[str, Any] | None = Field(
        default=None,
        description="awaiting-decision: the failed move, whether its VM is not running, the choices that apply "
        "(pass one to resolve_failure), the nodes that fit for 'retry on another node', the seconds before the "
        "safe default (roll back a held VM, stop).",
    )
    execution: str | None = Field(default=None, description="The execution's journal id (`vm-rebalance resume ID`).")
    next_step: str


class StatusOutput(_Model):
    """migration_status's result."""

    executions: list[ExecutionOutput]
    migrations_in_flight: list[dict[str, Any]] | None = Field(
        default=None, description="Read from the cluster when this server has no execution to report."
    )


class LifecycleOutput(_Model):
    """vm_lifecycle's result: a plan to approve, or the results of running it."""

    plan_id: str
    plan_hash: str
    plan: dict[str, Any] = Field(description="The LifecyclePlan document.")
    executed: bool
    results: list[dict[str, Any]] | None = None
    complete: bool | None = None
    next_step: str


class UnpinOutput(_Model):
    """unpin_vm's result: a plan to approve, or what was done."""

    plan_id: str
    plan_hash: str
    plan: dict[str, Any] = Field(description="The UnpinPlan document.")
    executed: bool
    unpinned: bool | None = None
    next_step: str
