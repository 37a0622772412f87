"""`vm-rebalance mcp`: the MCP server (official SDK, `MCPServer`) that keeps a human in the loop.

Thin: each tool validates its arguments, calls `tools.Tools`, and returns the Markdown plus
the structured result; a RebalanceError becomes a tool error (`isError`) with the CLI's
message and hint. Nothing changes the cluster without a stored plan, its hash and
`confirm: true`. `--read-only` leaves the changing tools out of the server altogether.
"""

import inspect
import logging
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Annotated, Any, Literal, TypeVar

from mcp.server.mcpserver import Context, MCPServer
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field, StrictBool, StrictFloat, StrictInt

from vm_rebalance import __version__, service
from vm_rebalance.errors import InfeasiblePlanError, RebalanceError
from vm_rebalance.mcp_server.tools import Progress, Tools
from vm_rebalance.mcp_server.views import (
    CapacityReportOutput,
    ExecutionOutput,
    ExplainOutput,
    GoalName,
    InventoryOutput,
    LifecycleAction,
    LifecycleOutput,
    Method,
    PlanOutput,
    Retarget,
    StatusOutput,
    UnpinOutput,
    Weights,
)
from vm_rebalance.render.text import md, plain

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
WindowField = Annotated[
    str | None,
    Field(
        pattern=r"^(\d+(\.\d+)?[smhdw])+$",
        description=(
            "With Prometheus / Thanos: the window usage is averaged over, e.g. 30m, 1h (the server's default), 6h, 7d."
        ),
    ),
]
PercentileField = Annotated[
    StrictFloat | None,
    Field(gt=0, le=100, description="With Prometheus / Thanos: this percentile over the window instead of the mean."),
]

SKILL_URI = "vm-rebalance://skill"
MAX_ERROR = 2000
"""An error line is cut here: a message quoting a huge argument cannot flood the agent's context."""
MAX_BLOCKING = 50
CHANGING_TOOLS = ("execute_plan", "resolve_failure", "cancel_execution", "vm_lifecycle", "unpin_vm")
INSTRUCTIONS = (
    "vm-rebalance plans and executes the rebalancing of KubeVirt VMs across nodes. Read the skill "
    f"({SKILL_URI}, or the 'rebalance_skill' prompt) first. Protocol: make a plan (plan_rebalance, plan_move, "
    "vm_lifecycle or unpin_vm without plan_id), show its Markdown to the human verbatim, wait for explicit "
    "approval, then execute with the plan_id, the plan_hash returned with it and confirm: true. Never execute "
    "without the human's approval; on a failure stop and ask the human how to proceed."
)


def skill_text() -> str:
    """The skill document shipped with the package (data/mcp_skill.md)."""
    return resources.files("vm_rebalance").joinpath("data/mcp_skill.md").read_text(encoding="utf-8")


def _with_progress(ctx: Context) -> Progress:
    async def progress(value: float, total: float | None, message: str) -> None:
        # Progress messages carry cluster text (phases, failure reasons): one line, capped.
        await ctx.report_progress(value, total, plain(message))

    return progress


class RebalanceServer:
    """Builds the MCPServer for one target and turns tool outcomes into MCP results."""

    def __init__(
        self,
        target: service.Target,
        *,
        read_only: bool = False,
        debug: bool = False,
        options: service.ExecutionOptions | None = None,
    ) -> None:
        self.target = target
        self.read_only = read_only
        self.debug = debug
        self.tools = Tools(target, options=options, preflight=not read_only)
        # Paths that must never reach a result or a log line (the target's kubeconfig).
        self._secrets = [s for s in (target.kubeconfig,) if s]
        self.mcp: MCPServer = MCPServer(
            name="vm-rebalance",
            title="vm-rebalance",
            version=__version__,
            instructions=INSTRUCTIONS,
            log_level="DEBUG" if debug else "WARNING",
        )
        self._register()
        self._register_skill()

    # ------------------------------------------------------------------ results

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "<kubeconfig>")
        return text

    def _error(self, error: RebalanceError) -> CallToolResult:
        # Messages quote the agent's input and the cluster's words: data, never Markdown structure.
        lines = [f"error: {md(error, limit=MAX_ERROR)}"]
        if isinstance(error, InfeasiblePlanError) and error.blocking and len(error.blocking) > 1:
            lines += [f"- {md(b, limit=MAX_ERROR)}" for b in error.blocking[:MAX_BLOCKING]]
            if len(error.blocking) > MAX_BLOCKING:
                lines.append(f"- … and {len(error.blocking) - MAX_BLOCKING} more")
        if error.hint:
            lines.append(f"hint: {md(error.hint, limit=MAX_ERROR)}")
        return CallToolResult(content=[TextContent(type="text", text=self._scrub("\n".join(lines)))], is_error=True)

    async def _result(self, tool: str, call: Awaitable[tuple[BaseModel, str]]) -> CallToolResult:
        try:
            output, markdown = await call
        except RebalanceError as error:
            log.info("tool %s refused: %s", tool, self._scrub(plain(error, limit=MAX_ERROR)))  # one log line
            return self._error(error)
        except Exception as exc:  # a bug: say so without details (they may hold paths or tokens)
            log.error("internal error in tool %s: %s", tool, type(exc).__name__)
            if self.debug:
                log.debug("traceback", exc_info=True)
            return self._error(
                RebalanceError(
                    f"internal error: {type(exc).__name__} — this is a bug in vm-rebalance",
                    hint="run the server with --debug for details",
                )
            )
        return CallToolResult(
            content=[TextContent(type="text", text=self._scrub(markdown))],
            structured_content=output.model_dump(mode="json"),
        )

    # ------------------------------------------------------------------ tools

    def _tool(self, title: str, annotations: ToolAnnotations) -> Callable[[F], F]:
        """Register a tool; its docstring (dedented) is the description agents read."""

        def decorator(fn: F) -> F:
            self.mcp.add_tool(fn, title=title, annotations=annotations, description=inspect.cleandoc(fn.__doc__ or ""))
            return fn

        return decorator

    def _register(self) -> None:
        """Register the tools in the order clients list them; --read-only stops before the changing ones."""
        reading = ToolAnnotations(read_only_hint=True, open_world_hint=False)
        planning = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)
        changing = ToolAnnotations(
            read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=False
        )
        editing = ToolAnnotations(
            read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False
        )
        self._register_inventory_tools(reading)
        self._register_rebalance_tools(planning)
        self._register_move_planning_tools(planning)
        self._register_plan_inspection_tools(reading)
        if self.read_only:
            return
        self._register_execution_tools(changing)
        self._register_execution_control_tools(changing)
        self._register_vm_tools(changing, editing)

    def _register_inventory_tools(self, reading: ToolAnnotations) -> None:
        """Cluster inventory and capacity report (read-only)."""
        tool, tools = self._tool, self.tools

        @tool("Cluster inventory", reading)
        async def cluster_inventory(
            namespaces: Annotated[
                list[str] | None, Field(description="Only list VMs of these namespaces (nodes are always all listed).")
            ] = None,
            max_vms: Annotated[
                StrictInt, Field(ge=1, le=5000, description="At most this many VM rows in the Markdown.")
            ] = 200,
            window: WindowField = None,
            percentile: PercentileField = None,
        ) -> Annotated[CallToolResult, InventoryOutput]:
            """Show the cluster: nodes (CPU/memory by usage and requests, health, flags such as cordoned or
            control-plane), VMs (node, status, size, storage, whether they can move live or only cold) and
            headroom. Read-only. Call it first to understand the cluster or to answer "what runs where";
            then plan with plan_rebalance or plan_move."""
            return await self._result(
                "cluster_inventory", tools.cluster_inventory(namespaces, max_vms, window, percentile)
            )

        @tool("Capacity report", reading)
        async def capacity_report(
            basis: Annotated[
                Literal["usage", "requests"] | None,
                Field(description="Utilisation from measured usage (default when metrics exist) or from requests."),
            ] = None,
            n_plus_one: Annotated[
                StrictBool, Field(description="Simulate losing the largest node (a drain plan of its VMs).")
            ] = True,
            plan_id: Annotated[
                str | None, Field(description="A plan made on this server: show its nodes before → after.")
            ] = None,
            max_rows: Annotated[StrictInt, Field(ge=1, le=1000, description="At most this many rows per table.")] = 25,
            window: WindowField = None,
            percentile: PercentileField = None,
        ) -> Annotated[CallToolResult, CapacityReportOutput]:
            """Capacity and right-sizing report. Read-only. Per node and for the cluster: the action band
            (< 70 % healthy, 70-80 % plan for expansion, > 80 % add nodes urgently, > 90 % emergency), headroom
            against the 20 % minimum and the 30-40 % production target, N+1 (can the largest node be lost: its VMs
            placed with the planner's drain rules), VMs to shrink or grow with the evidence, workload classes
            (metrics and the vm-rebalance.io/workload-class annotation), migration slots in use. Sections without
            data are listed with the reason. Use it to answer capacity questions; to act on hot nodes, plan with
            plan_rebalance (goal performance) and show that plan to the human."""
            return await self._result(
                "capacity_report", tools.capacity_report(basis, n_plus_one, plan_id, max_rows, window, percentile)
            )

    def _register_rebalance_tools(self, planning: ToolAnnotations) -> None:
        """plan_rebalance (changes nothing)."""
        tool, tools = self._tool, self.tools

        @tool("Plan a rebalance", planning)
        async def plan_rebalance(
            goal: Annotated[
                GoalName,
                Field(
                    description=(
                        "cpu / memory / balanced (weighted CPU+memory) minimise the spread of node utilisation; count "
                        "evens out VMs per node; drain empties `node`; performance first brings every node under "
                        "CPU 80 % / memory 85 %. Ask the human when the goal is ambiguous."
                    )
                ),
            ] = "balanced",
            weights: Annotated[Weights | None, Field(description="Goal balanced only: CPU vs memory weights.")] = None,
            node: Annotated[str | None, Field(description="Goal drain only: the node to empty.")] = None,
            max_migrations: Annotated[StrictInt | None, Field(ge=0, description="At most this many moves.")] = None,
            live_only: Annotated[
                StrictBool,
                Field(description=("Never plan cold moves of running VMs (no downtime; VMs on RWO storage stay).")),
            ] = False,
            namespaces: Annotated[
                list[str] | None, Field(description="Only move VMs of these namespaces (all namespaces when empty).")
            ] = None,
            basis: Annotated[
                Literal["usage", "requests"] | None,
                Field(description="Utilisation from measured usage (default when metrics exist) or from requests."),
            ] = None,
            sequential: Annotated[StrictBool, Field(description="Plan for one move at a time.")] = False,
            window: WindowField = None,
            percentile: PercentileField = None,
        ) -> Annotated[CallToolResult, PlanOutput]:
            """Compute the best rebalance plan for a goal. Changes nothing in the cluster; the plan is kept in
            this server's memory under a plan_id with a plan_hash (sha256 of the plan document).

            Returns the plan in the standard format (moves table, node state before → after, key
            improvement, summary, execution mode, warnings, alternatives). Next: show the Markdown to the
            human verbatim and wait for explicit approval; they may ask to modify (modify_plan) or explain a
            move (explain_move). Only after approval call execute_plan with plan_id, plan_hash, confirm: true."""
            return await self._result(
                "plan_rebalance",
                tools.plan_rebalance(
                    goal,
                    node=node,
                    weights=weights,
                    max_migrations=max_migrations,
                    basis=basis,
                    live_only=live_only,
                    namespaces=namespaces,
                    sequential=sequential,
                    window=window,
                    percentile=percentile,
                ),
            )

    def _register_move_planning_tools(self, planning: ToolAnnotations) -> None:
        """plan_move and modify_plan (change nothing)."""
        tool, tools = self._tool, self.tools

        @tool("Plan moving named VMs", planning)
        async def plan_move(
            vms: Annotated[list[str], Field(min_length=1, description="VM names, or NAMESPACE/NAME.")],
            target: Annotated[str, Field(description="The node to move them to.")],
            namespace: Annotated[str, Field(description="Namespace of VMs given without one.")] = "default",
            method: Annotated[
                Method,
                Field(
                    description=(
                        "auto: live when the VM's storage allows (RWX / container disk), else cold (~30-60 s "
                        "downtime); live: refuse VMs that cannot move live; cold: stop, pin, start."
                    )
                ),
            ] = "auto",
            sequential: Annotated[StrictBool, Field(description="One move at a time.")] = False,
        ) -> Annotated[CallToolResult, PlanOutput]:
            """Plan moving named VMs to a node, validated like the seeds: the VM exists and is not already
            there, its storage allows the method, the target exists, is Ready and not cordoned (plus taints,
            selectors, affinity and capacity). VMs failing a validation are left out and explained in
            `warnings`; an error is returned when none passes. Changes nothing. Next: show the Markdown to the
            human, wait for approval, then execute_plan with plan_id, plan_hash and confirm: true."""
            return await self._result("plan_move", tools.plan_move(vms, target, namespace, method, sequential))

        @tool("Modify a plan", planning)
        async def modify_plan(
            plan_id: Annotated[str, Field(description="The plan to modify.")],
            skip: Annotated[list[StrictInt] | None, Field(description="Move ids (#) to leave out.")] = None,
            retarget: Annotated[list[Retarget] | None, Field(description="Moves to send to another node.")] = None,
            order: Annotated[
                list[StrictInt] | None,
                Field(description="Move ids to run first, in this order (the rest keep their order)."),
            ] = None,
            sequential: Annotated[
                StrictBool | None, Field(description="Switch sequential execution on or off.")
            ] = None,
        ) -> Annotated[CallToolResult, PlanOutput]:
            """Change a plan as the human asked: skip moves, change their target node, reorder them, or run
            sequentially. Returns a NEW plan (new plan_id and plan_hash) with waves, node states and
            improvements recomputed; the old plan can no longer be executed. Edits that would break a hard
            constraint are refused with the reason. Changes nothing in the cluster. Next: show the updated
            Markdown plan to the human and ask for approval again."""
            return await self._result(
                "modify_plan",
                tools.modify_plan(plan_id, skip=skip, retarget=retarget, order=order, sequential=sequential),
            )

    def _register_plan_inspection_tools(self, reading: ToolAnnotations) -> None:
        """explain_move and migration_status (read-only)."""
        tool, tools = self._tool, self.tools

        @tool("Explain a move", reading)
        async def explain_move(
            plan_id: Annotated[str, Field(description="The plan.")],
            move_id: Annotated[StrictInt, Field(description="The move's # in the plan.")],
        ) -> Annotated[CallToolResult, ExplainOutput]:
            """Explain one move of a plan: why this VM, why this target node (checked against the cluster now),
            why live or cold and what downtime that means. Read-only. Use it when the human asks
            "explain <#>"; then ask again for approval."""
            return await self._result("explain_move", tools.explain_move(plan_id, move_id))

        @tool("Migration status", reading)
        async def migration_status(
            ctx: Context,
            plan_id: Annotated[
                str | None, Field(description="The executed plan (default: the newest execution).")
            ] = None,
            wait_seconds: Annotated[
                StrictFloat,
                Field(
                    ge=0,
                    le=3600,
                    description=(
                        "Wait up to this long for a running execution to finish, with progress notifications."
                    ),
                ),
            ] = 0,
        ) -> Annotated[CallToolResult, StatusOutput]:
            """Progress of an execution started by execute_plan, per move (pending / running with its phase /
            succeeded / failed / not attempted), or its final report once finished. Without any execution on
            this server, lists the cluster's migrations in flight. Read-only; poll it (or pass wait_seconds)
            when execute_plan returned while the execution was still running."""
            return await self._result(
                "migration_status", tools.migration_status(plan_id, wait_seconds, _with_progress(ctx))
            )

    def _register_execution_tools(self, changing: ToolAnnotations) -> None:
        """execute_plan (changes the cluster)."""
        tool, tools = self._tool, self.tools

        @tool("Execute an approved plan", changing)
        async def execute_plan(
            ctx: Context,
            plan_id: Annotated[str, Field(description="The plan the human approved.")],
            plan_hash: Annotated[
                str | None,
                Field(
                    description=(
                        "Required: the plan_hash returned with that plan (proves the approved content is what runs)."
                    )
                ),
            ] = None,
            confirm: Annotated[
                StrictBool,
                Field(description=("Required: true, and only after the human explicitly approved the plan.")),
            ] = False,
            wait_seconds: Annotated[
                StrictFloat,
                Field(
                    ge=0,
                    le=3600,
                    description=(
                        "Wait up to this long for the execution to finish (0: return at once and poll "
                        "migration_status)."
                    ),
                ),
            ] = 600,
        ) -> Annotated[CallToolResult, ExecutionOutput]:
            """CHANGES THE CLUSTER: migrate the VMs of an approved plan. Call it only after the human
            explicitly approved the plan shown to them, with its plan_id, its plan_hash and confirm: true;
            anything else is refused (unknown, modified, already executed or stale plan; missing or wrong
            hash; confirm not true). The plan is first re-validated against the live cluster: if any move no
            longer passes, nothing is executed and the error names what changed.

            Moves run in waves, live before cold, within KubeVirt's concurrency limits, stopping at the first
            failure. Progress notifications report each move's phase. The execution runs in the background:
            this call waits up to wait_seconds and returns the final report (or the progress so far; then
            follow it with migration_status). Cancelling the call does not stop the execution. On a failure
            the execution waits (state awaiting-decision) with the choices that apply: show the report and ask
            the human, then pass their decision to resolve_failure; never decide on your own."""
            return await self._result(
                "execute_plan", tools.execute_plan(plan_id, plan_hash, confirm, wait_seconds, _with_progress(ctx))
            )

    def _register_execution_control_tools(self, changing: ToolAnnotations) -> None:
        """resolve_failure and cancel_execution (change the cluster)."""
        tool, tools = self._tool, self.tools

        @tool("Resolve a failed move", changing)
        async def resolve_failure(
            ctx: Context,
            plan_id: Annotated[str, Field(description="The execution waiting for a decision (its plan_id).")],
            choice: Annotated[
                Literal["retry", "retry cold", "retry on another node", "roll back", "leave stopped", "skip", "abort"],
                Field(description="The human's decision: one of the choices the execution offered."),
            ],
            node: Annotated[
                str | None, Field(description="For 'retry on another node': the node (one the question lists).")
            ] = None,
            confirm: Annotated[
                StrictBool, Field(description="Required: true, and only after the human made this decision.")
            ] = False,
            wait_seconds: Annotated[
                StrictFloat, Field(ge=0, le=3600, description="Wait up to this long for the execution to go on.")
            ] = 600,
        ) -> Annotated[CallToolResult, ExecutionOutput]:
            """CHANGES THE CLUSTER: carry out the human's decision for an execution waiting after a failure
            (state awaiting-decision): retry, retry cold, retry on another node (with node), roll back (a cold
            move's VM that could not start is started again with its original placement), leave stopped,
            skip (continue with the rest) or abort. Only the choices the execution offered apply. Without a
            decision the execution takes the safe default after a while (roll back, stop)."""
            return await self._result(
                "resolve_failure",
                tools.resolve_failure(plan_id, choice, node, confirm, wait_seconds, _with_progress(ctx)),
            )

        @tool("Cancel an execution", changing)
        async def cancel_execution(
            ctx: Context,
            plan_id: Annotated[
                str | None, Field(description="The running execution (its plan_id; default: the newest).")
            ] = None,
            confirm: Annotated[
                StrictBool, Field(description="Required: true, and only after the human asked to stop.")
            ] = False,
            wait_seconds: Annotated[
                StrictFloat, Field(ge=0, le=3600, description="Wait up to this long for the execution to stop.")
            ] = 120,
        ) -> Annotated[CallToolResult, ExecutionOutput]:
            """CHANGES THE CLUSTER: stop a running execution the safe way, as Ctrl-C does in the CLI: no new
            move starts; live migrations in flight are cancelled (their VMs stay where the cluster shows
            them); a cold move in progress is finished or rolled back so that no VM is left down; a decision
            the execution waits for gets the safe default. Returns the report read from the cluster."""
            return await self._result(
                "cancel_execution", tools.cancel_execution(plan_id, confirm, wait_seconds, _with_progress(ctx))
            )

    def _register_vm_tools(self, changing: ToolAnnotations, editing: ToolAnnotations) -> None:
        """vm_lifecycle (changes the cluster) and unpin_vm (edits a VM)."""
        tool, tools = self._tool, self.tools

        @tool("Start / stop / restart VMs", changing)
        async def vm_lifecycle(
            ctx: Context,
            action: Annotated[LifecycleAction | None, Field(description="Step 1: start, stop or restart.")] = None,
            vms: Annotated[list[str] | None, Field(description="Step 1: VM names, or NAMESPACE/NAME.")] = None,
            namespace: Annotated[str, Field(description="Namespace of VMs given without one.")] = "default",
            plan_id: Annotated[str | None, Field(description="Step 2: the approved lifecycle plan.")] = None,
            plan_hash: Annotated[str | None, Field(description="Step 2: the plan_hash returned in step 1.")] = None,
            confirm: Annotated[StrictBool, Field(description="Step 2: true, after the human approved.")] = False,
        ) -> Annotated[CallToolResult, LifecycleOutput]:
            """Start, stop or restart VMs in two steps. Step 1 (action + vms, no plan_id) changes nothing: it
            returns a lifecycle plan (each VM's current status and the impact: stop = services down, restart
            = ~1-2 min interruption) with plan_id and plan_hash. Show it to the human and wait for explicit
            approval. Step 2 (plan_id + plan_hash + confirm: true) CHANGES THE CLUSTER: it runs the plan and
            verifies each VM reached its state (restart = stop → verify stopped → start → verify running)."""
            return await self._result(
                "vm_lifecycle",
                tools.vm_lifecycle(action, vms, namespace, plan_id, plan_hash, confirm, _with_progress(ctx)),
            )

        @tool("Unpin a VM", editing)
        async def unpin_vm(
            vm: Annotated[str | None, Field(description="Step 1: the VM name, or NAMESPACE/NAME.")] = None,
            namespace: Annotated[str, Field(description="Namespace of a VM given without one.")] = "default",
            plan_id: Annotated[str | None, Field(description="Step 2: the approved unpin plan.")] = None,
            plan_hash: Annotated[str | None, Field(description="Step 2: the plan_hash returned in step 1.")] = None,
            confirm: Annotated[StrictBool, Field(description="Step 2: true, after the human approved.")] = False,
        ) -> Annotated[CallToolResult, UnpinOutput]:
            """Remove the node pin (required node affinity kubernetes.io/hostname) that a cold migration added,
            so the VM can reschedule anywhere on its next restart; it keeps running where it is. Two steps
            like vm_lifecycle: step 1 (vm) shows the pin and changes nothing; step 2 (plan_id + plan_hash +
            confirm: true, after the human approved) CHANGES THE VM."""
            return await self._result("unpin_vm", tools.unpin_vm(vm, namespace, plan_id, plan_hash, confirm))

    def _register_skill(self) -> None:
        @self.mcp.resource(
            SKILL_URI,
            name="vm-rebalance skill",
            mime_type="text/markdown",
            description="How to use vm-rebalance's tools with a human in the loop.",
        )
        def skill() -> str:
            return skill_text()

        @self.mcp.prompt(name="rebalance_skill", title="vm-rebalance: rebalance VMs with a human in the loop")
        def rebalance_skill(request: str = "") -> str:
            """The vm-rebalance skill: which tool to use when, the approval protocol, how to present plans."""
            text = skill_text()
            return text + (f"\n\n---\n\nThe user's request: {request}\n" if request else "")


def create_server(
    target: service.Target,
    *,
    read_only: bool = False,
    debug: bool = False,
    options: service.ExecutionOptions | None = None,
) -> MCPServer:
    """The MCP server for ``target`` (tools, the skill resource and prompt)."""
    return RebalanceServer(target, read_only=read_only, debug=debug, options=options).mcp


def run(
    target: service.Target,
    *,
    transport: Literal["stdio", "http"] = "stdio",
    host: str = "127.0.0.1",
    port: int = 8000,
    read_only: bool = False,
    debug: bool = False,
) -> None:
    """Serve until the client disconnects (stdio) or the process is stopped (http)."""
    server = create_server(target, read_only=read_only, debug=debug)
    if transport == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host=host, port=port)
