"""The one door: every front-end (the CLI, the MCP server, the controller) goes through here.

Front-ends parse their input into the typed requests of this package, call its use cases and
render the typed results (each has ``to_document()`` for `-o json`); they never import the
planner, the executor, `kube` or `sources` (an import-linter contract in pyproject.toml keeps
it so). What the use cases need from below — execution options and events, lifecycle actions —
is re-exported here.

Modules: ``session`` (targets, reading the cluster, sessions), ``requests`` (PlanSpec, VM
references, plan files), ``planning`` (propose, named moves, drain, explain, re-validation),
``edits`` (skip / retarget / reorder / sequential), ``preflight`` (permissions), ``execution`` (runs, failure choices,
reports, apply, resume), ``vms`` (start / stop / restart, pins), ``cluster`` (inventory, status, clearing
executions), ``pins`` (whose pin a move changes), ``identity`` (which cluster a plan belongs to),
``approvals`` (approval by hash), ``background`` (executions in threads) and ``report`` (the
capacity report; its pure analysis is ``capacity``).
"""

from vm_rebalance.executor.engine import plan_id
from vm_rebalance.executor.runners import ExecutionOptions
from vm_rebalance.kube.lease import WriterLockHeldError
from vm_rebalance.model.execution import (
    Action,
    FailureKind,
    LifecycleResult,
    LifecycleStatus,
    MoveEvent,
    MoveStatus,
    Outcome,
    Report,
)
from vm_rebalance.service.approvals import PlanKind, PlanStore, StoredPlan
from vm_rebalance.service.background import Execution, Executions, FailureQuestion, run_plan
from vm_rebalance.service.cluster import (
    InventoryView,
    MigrationInFlight,
    StatusView,
    UnfinishedExecution,
    clear_executions,
    inventory,
    inventory_of,
    status,
    unfinished_executions,
)
from vm_rebalance.service.edits import (
    EDIT_HELP,
    Edit,
    EditResult,
    Reorder,
    Retarget,
    SetSequential,
    Skip,
    UseAlternative,
    edit_plan,
    parse_edit,
)
from vm_rebalance.service.execution import (
    FAILURE_CHOICE_HELP,
    ApplyPreparation,
    ExecutionReport,
    ExecutionResult,
    FailureChoice,
    Run,
    execute_plan,
    open_execution,
    prepare_apply,
    unfinished_for,
)
from vm_rebalance.service.identity import require_same_cluster
from vm_rebalance.service.names import missing_node, missing_vm, require_namespaces, require_vms
from vm_rebalance.service.pins import scheduler_chooses, scheduler_targets
from vm_rebalance.service.planning import (
    PlanView,
    Revalidation,
    explain,
    plan,
    plan_drain,
    plan_moves,
    propose,
    revalidate,
)
from vm_rebalance.service.preflight import (
    lifecycle_permissions,
    plan_permissions,
    require_permissions,
    unpin_permissions,
)
from vm_rebalance.service.report import BASES, ReportSpec, ReportView, report, report_of, write_text
from vm_rebalance.service.requests import (
    GOALS,
    METHODS,
    PlanSpec,
    check_namespaces,
    load_plan,
    move_requests,
    parse_weights,
    require_plan_names,
    vm_refs,
)
from vm_rebalance.service.session import (
    Progress,
    Session,
    Target,
    cordon,
    open_client,
    read_state,
    take_snapshot,
    write_document,
)
from vm_rebalance.service.vms import (
    LifecyclePlan,
    LifecycleRun,
    lifecycle,
    lifecycle_journal_id,
    lifecycle_plan,
    lifecycle_run,
    node_pin,
    resume_lifecycle,
    unpin,
    unpin_plan,
)

__all__ = [
    "BASES",
    "EDIT_HELP",
    "FAILURE_CHOICE_HELP",
    "GOALS",
    "METHODS",
    "Action",
    "ApplyPreparation",
    "Edit",
    "EditResult",
    "Execution",
    "ExecutionOptions",
    "ExecutionReport",
    "ExecutionResult",
    "Executions",
    "FailureChoice",
    "FailureKind",
    "FailureQuestion",
    "InventoryView",
    "LifecyclePlan",
    "LifecycleResult",
    "LifecycleRun",
    "LifecycleStatus",
    "MigrationInFlight",
    "MoveEvent",
    "MoveStatus",
    "Outcome",
    "PlanKind",
    "PlanSpec",
    "PlanStore",
    "PlanView",
    "Progress",
    "Reorder",
    "Report",
    "ReportSpec",
    "ReportView",
    "Retarget",
    "Revalidation",
    "Run",
    "Session",
    "SetSequential",
    "Skip",
    "StatusView",
    "StoredPlan",
    "Target",
    "UnfinishedExecution",
    "UseAlternative",
    "WriterLockHeldError",
    "check_namespaces",
    "clear_executions",
    "cordon",
    "edit_plan",
    "execute_plan",
    "explain",
    "inventory",
    "inventory_of",
    "lifecycle",
    "lifecycle_journal_id",
    "lifecycle_permissions",
    "lifecycle_plan",
    "lifecycle_run",
    "load_plan",
    "missing_node",
    "missing_vm",
    "move_requests",
    "node_pin",
    "open_client",
    "open_execution",
    "parse_edit",
    "parse_weights",
    "plan",
    "plan_drain",
    "plan_id",
    "plan_moves",
    "plan_permissions",
    "prepare_apply",
    "propose",
    "read_state",
    "report",
    "report_of",
    "require_namespaces",
    "require_permissions",
    "require_plan_names",
    "require_same_cluster",
    "require_vms",
    "resume_lifecycle",
    "revalidate",
    "run_plan",
    "scheduler_chooses",
    "scheduler_targets",
    "status",
    "take_snapshot",
    "unfinished_executions",
    "unfinished_for",
    "unpin",
    "unpin_permissions",
    "unpin_plan",
    "vm_refs",
    "write_document",
    "write_text",
]
