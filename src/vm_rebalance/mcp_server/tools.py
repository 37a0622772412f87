"""What each MCP tool does, over `vm_rebalance.service`: read, plan, remember, and change only when approved.

Every method returns an output model plus its Markdown, or raises a RebalanceError (which
`server.py` turns into a tool error). Blocking library calls run in worker threads so the
event loop keeps serving; executions run in background threads (`executions.py`). No MCP
imports: the server module adapts these to the SDK.
"""

import dataclasses
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal, TypeVar

import anyio
import anyio.to_thread

from vm_rebalance import service
from vm_rebalance.errors import ConfigError, InfeasiblePlanError
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
    plan_spec,
    vm_refs,
)
from vm_rebalance.model import Plan, plan_to_document
from vm_rebalance.render.dialogue import (
    improvements_markdown,
    lifecycle_confirmation_markdown,
    lifecycle_result_markdown,
    manual_plan_markdown,
)
from vm_rebalance.render.execution import migration_route, progress_markdown, report_markdown
from vm_rebalance.render.inventory import inventory_markdown
from vm_rebalance.render.lifecycle import unpin_plan_markdown
from vm_rebalance.render.plan import plan_markdown
from vm_rebalance.render.report import capacity_markdown
from vm_rebalance.render.text import md
from vm_rebalance.service import Execution, Executions, FailureQuestion, PlanKind, PlanStore, StoredPlan, run_plan
from vm_rebalance.service.usage import UsageSpec

T = TypeVar("T")
Progress = Callable[[float, float | None, str], Awaitable[None]]
"""(progress, total, message) → a progress notification to the caller."""

_POLL_SECONDS = 0.25


async def _no_progress(_progress: float, _total: float | None, _message: str) -> None:
    return None


def _approval_footer(entry: StoredPlan, what: str) -> str:
    return (
        f"\n---\nPlan id: `{entry.plan_id}` · approval hash: `{entry.plan_hash}`\n\n"
        f"**Nothing has changed yet.** Show this {what} to the human and ask for explicit approval "
        "(approve / modify / explain / cancel).\n"
    )


def _lifecycle_outcome(entry: StoredPlan, results: list[service.LifecycleResult]) -> tuple[LifecycleOutput, str]:
    """The output and Markdown of an executed lifecycle plan: one row per VM, complete when all succeeded."""
    rows = [
        {
            "namespace": r.namespace,
            "name": r.name,
            "action": r.action.value,
            "status": r.status.value,
            "message": r.message,
            "printable_status": r.printable_status,
            "run_strategy": r.run_strategy,
            "duration_seconds": round(r.duration_seconds, 1),
        }
        for r in results
    ]
    complete = all(r.ok for r in results)
    next_step = (
        "Show the results to the human."
        if complete
        else ("Some VMs failed: show the messages to the human and ask how to proceed.")
    )
    return (
        LifecycleOutput(
            plan_id=entry.plan_id,
            plan_hash=entry.plan_hash,
            plan=entry.document,
            executed=True,
            results=rows,
            complete=complete,
            next_step=next_step,
        ),
        "\n".join(lifecycle_result_markdown(r) for r in results),
    )


class Tools:
    """The tool implementations of one server: its target cluster, plans and executions."""

    def __init__(
        self,
        target: service.Target,
        *,
        store: PlanStore | None = None,
        executions: Executions | None = None,
        options: service.ExecutionOptions | None = None,
        preflight: bool = True,
    ) -> None:
        self.target = target
        self.preflight = preflight
        """Check the identity's permissions when a changing plan is made (not in read-only mode)."""
        self.store = store or PlanStore()
        self.executions = executions or Executions()
        self.options = options or service.ExecutionOptions()

    # ------------------------------------------------------------------ helpers

    @staticmethod
    async def _thread(fn: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(fn, *args)

    async def _state(self, target: service.Target | None = None) -> Any:
        return await self._thread(service.read_state, target or self.target)

    def _windowed(self, window: str | None, percentile: float | None) -> service.Target:
        """The server's target, with another usage window / percentile when the call asks for one."""
        if window is None and percentile is None:
            return self.target
        spec = (self.target.usage or UsageSpec()).with_window(window, percentile)
        spec.options()  # a bad window or percentile is refused before the cluster is read
        return dataclasses.replace(self.target, usage=spec)

    def _require_live(self) -> None:
        if self.target.offline:
            raise ConfigError(
                "this command changes the cluster and cannot run on --from-file (a snapshot)",
                hint="start the server with --kubeconfig/--context for a live cluster",
            )

    async def _require(self, permissions: list[Any], what: str) -> None:
        """The permission preflight, before the plan is shown for approval (live cluster only)."""
        if self.preflight and not self.target.offline and permissions:
            await self._thread(lambda: service.require_permissions(self.target, permissions, what=what))

    def _plan_output(
        self,
        entry: StoredPlan,
        plan: Plan,
        limits: Any,
        *,
        alternatives: Sequence[str] = (),
        replaces: str | None = None,
        changes: Sequence[str] = (),
        summary: str | None = None,
    ) -> tuple[PlanOutput, str]:
        markdown = summary if summary is not None else plan_markdown(plan, limits=limits, alternatives=alternatives)
        if changes:
            markdown = "\n".join(f"- {md(c)}" for c in changes) + "\n\n" + markdown
        if plan.moves:
            next_step = (
                f"Show the Markdown plan to the human. After explicit approval call execute_plan with "
                f"plan_id '{entry.plan_id}', plan_hash '{entry.plan_hash}' and confirm: true. To change it "
                "call modify_plan; to justify a move call explain_move."
            )
            markdown += _approval_footer(entry, "plan")
        else:
            next_step = "Nothing to execute: tell the human no migration is needed or possible (see warnings)."
        out = PlanOutput(
            plan_id=entry.plan_id,
            plan_hash=entry.plan_hash,
            plan=entry.document,
            warnings=list(plan.warnings),
            alternatives=list(alternatives),
            replaces=replaces,
            changes=list(changes),
            next_step=next_step,
        )
        return out, markdown

    # ------------------------------------------------------------------ read

    async def cluster_inventory(
        self, namespaces: list[str] | None, max_vms: int, window: str | None = None, percentile: float | None = None
    ) -> tuple[InventoryOutput, str]:
        """Nodes, VMs, flags and headroom."""
        target = self._windowed(window, percentile)
        view = await self._thread(lambda: service.inventory(target, namespaces or ()))
        doc = view.to_document()
        return InventoryOutput(inventory=doc), inventory_markdown(doc, max_vms=max_vms)

    async def capacity_report(
        self,
        basis: Literal["usage", "requests"] | None,
        n_plus_one: bool,
        plan_id: str | None,
        max_rows: int,
        window: str | None = None,
        percentile: float | None = None,
    ) -> tuple[CapacityReportOutput, str]:
        """Bands, headroom, N+1, right-sizing, workload classes, slots; a stored plan's nodes before → after."""
        spec = service.ReportSpec(basis=basis, n_plus_one=n_plus_one)
        spec.check()
        plan: Plan | None = None
        if plan_id is not None:
            entry = self.store.get(plan_id)
            if entry.plan is None:
                raise ConfigError(f"plan {entry.plan_id} is a {entry.kind.value} plan: it moves no VM between nodes")
            plan = entry.plan
        state = await self._state(self._windowed(window, percentile))
        view = await self._thread(lambda: service.report_of(state, spec, plan=plan))
        markdown = capacity_markdown(view.report, max_rows=max_rows)
        return CapacityReportOutput(report=view.to_document()), markdown

    # ------------------------------------------------------------------ plan

    async def plan_rebalance(
        self,
        goal: GoalName,
        *,
        node: str | None,
        weights: Weights | None,
        max_migrations: int | None,
        basis: Literal["usage", "requests"] | None,
        live_only: bool,
        namespaces: list[str] | None,
        sequential: bool,
        window: str | None = None,
        percentile: float | None = None,
    ) -> tuple[PlanOutput, str]:
        """An automatic plan for a goal, remembered under its id and hash."""
        spec = plan_spec(
            goal,
            node=node,
            weights=weights,
            max_migrations=max_migrations,
            basis=basis,
            live_only=live_only,
            namespaces=namespaces,
            sequential=sequential,
        )
        spec.to_request()  # bad arguments are refused before the cluster is read
        state = await self._state(self._windowed(window, percentile))
        view = await self._thread(lambda: service.plan(state, spec))
        await self._require(service.plan_permissions(view.plan, cordon=None), "this plan")
        entry = self.store.add(PlanKind.REBALANCE, view.to_document(), plan=view.plan, extra={"spec": spec})
        return self._plan_output(entry, view.plan, view.limits, alternatives=view.alternatives)

    async def plan_move(
        self, vms: list[str], target: str, namespace: str, method: Method, sequential: bool
    ) -> tuple[PlanOutput, str]:
        """A plan of named moves, validated like the seeds (failed validations become warnings)."""
        requests = service.move_requests(vms, target, namespace, method)
        state = await self._state()
        view = await self._thread(lambda: service.plan_moves(state, requests, sequential=sequential))
        await self._require(service.plan_permissions(view.plan), "this move")
        entry = self.store.add(PlanKind.REBALANCE, view.to_document(), plan=view.plan)
        summary = (
            manual_plan_markdown(view.plan, state)
            if view.plan.moves
            else "".join(f"{md(r.message)}\n\n" for r in view.rejections) + "Nothing to do.\n"
        )
        if summary is not None and view.plan.warnings:
            summary += "\n**Warnings:**\n" + "".join(f"- ⚠ {md(w)}\n" for w in view.plan.warnings)
        return self._plan_output(entry, view.plan, view.limits, summary=summary)

    async def modify_plan(
        self,
        plan_id: str,
        *,
        skip: list[int] | None,
        retarget: list[Retarget] | None,
        order: list[int] | None,
        sequential: bool | None,
    ) -> tuple[PlanOutput, str]:
        """A new plan: the old one with moves skipped, retargeted or reordered; improvements recomputed."""
        old = self.store.get(plan_id)
        if old.kind is not PlanKind.REBALANCE or old.plan is None:
            raise ConfigError(f"plan {old.plan_id} is a {old.kind.value} plan; only rebalance plans can be modified")
        if old.replaced_by is not None:
            raise ConfigError(
                f"plan {old.plan_id} was already modified into plan {old.replaced_by}",
                hint=f"modify plan {old.replaced_by} instead",
            )
        if not (skip or retarget or order or sequential is not None):
            raise ConfigError("nothing to modify: give skip, retarget, order or sequential")
        edits: list[service.Edit] = [service.Skip(move_id) for move_id in skip or ()]
        edits += [service.Retarget(r.move_id, r.node) for r in retarget or ()]
        if order:
            edits.append(service.Reorder(tuple(order)))
        if sequential is not None and sequential != old.plan.sequential:
            edits.append(service.SetSequential(sequential))
        state = await self._state()
        plan = old.plan
        result = await self._thread(lambda: service.edit_plan(state, plan, edits))
        entry = self.store.add(
            PlanKind.REBALANCE, plan_to_document(result.plan), plan=result.plan, extra=dict(old.extra)
        )
        self.store.mark_replaced(old.plan_id, entry.plan_id)
        return self._plan_output(entry, result.plan, state.limits, replaces=old.plan_id, changes=result.changes)

    async def explain_move(self, plan_id: str, move_id: int) -> tuple[ExplainOutput, str]:
        """Why this VM, why this target, why live or cold."""
        entry = self.store.get(plan_id)
        if entry.plan is None:
            raise ConfigError(f"plan {entry.plan_id} is a {entry.kind.value} plan: it has no moves to explain")
        if entry.plan.move(move_id) is None:
            ids = ", ".join(str(m.id) for m in entry.plan.moves) or "none"
            raise ConfigError(f"plan {entry.plan_id} has no move {move_id}", hint=f"move ids: {ids}")
        state = await self._state()
        lines = list(service.explain(state, entry.plan, move_id))
        markdown = f"### Why move #{move_id}\n\n" + "\n".join(f"- {md(line, limit=1000)}" for line in lines) + "\n"
        return ExplainOutput(plan_id=entry.plan_id, move_id=move_id, explanation=lines), markdown

    # ------------------------------------------------------------------ execute

    async def execute_plan(
        self, plan_id: str, plan_hash: str | None, confirm: bool, wait_seconds: float, progress: Progress = _no_progress
    ) -> tuple[ExecutionOutput, str]:
        """Re-validate the approved plan against the live cluster, then run it in the background."""
        entry = self.store.authorize(plan_id, plan_hash, PlanKind.REBALANCE, confirm)
        self._require_live()
        plan = entry.plan
        assert plan is not None
        self.executions.claim(f"plan {entry.plan_id}")
        session: service.Session | None = None
        try:
            session = await self._thread(service.Session.open, self.target)
            await self._thread(
                lambda: service.require_permissions(session, service.plan_permissions(plan), what="this plan")
            )
            checked = await self._thread(lambda: service.revalidate(session.state, plan))
            if checked.changed:
                self._refuse_changed(entry, checked)
        except BaseException:
            if session is not None:
                session.close()
            self.executions.release()
            raise
        self.store.mark_executed(entry.plan_id)
        execution = Execution(plan_id=entry.plan_id, plan=checked.plan, warnings=checked.warnings)
        options = dataclasses.replace(self.options, sequential=checked.plan.sequential or self.options.sequential)
        self.executions.start(execution, session, lambda e: run_plan(e, session, options))
        await self._follow(execution, wait_seconds, progress)
        return self._execution_output(execution)

    def _refuse_changed(self, entry: StoredPlan, checked: service.Revalidation) -> None:
        """The validation policy: what still validates is a new plan the human must approve."""
        remaining = self.store.add(
            PlanKind.REBALANCE, plan_to_document(checked.plan), plan=checked.plan, extra=dict(entry.extra)
        )
        self.store.mark_replaced(entry.plan_id, remaining.plan_id)
        dropped, total = len(checked.dropped_ids), len(entry.plan.moves) if entry.plan else 0
        what = [f"{dropped} of {total} move(s) no longer validate"] if dropped else []
        if checked.moved_ids:
            what.append(f"{len(checked.moved_ids)} move(s) would now start elsewhere")
        why = "; ".join(checked.warnings)
        raise InfeasiblePlanError(
            f"the cluster changed since plan {entry.plan_id} was made: {' and '.join(what)} "
            f"({why}), so it was not executed (nothing was changed); what still validates is plan "
            f"{remaining.plan_id} (hash {remaining.plan_hash}, {len(checked.plan.moves)} move(s))",
            blocking=list(checked.warnings),
            hint=f"show plan {remaining.plan_id} to the human and execute it only once approved",
        )

    async def _follow(self, execution: Execution, wait_seconds: float, progress: Progress) -> None:
        """Wait up to ``wait_seconds`` for the execution, forwarding progress (values strictly increase)."""
        total = float(len(execution.plan.moves))
        deadline = time.monotonic() + max(0.0, wait_seconds)
        last_sequence, last_value, steps = -1, -1.0, 0
        while True:
            sequence, finished, message = execution.progress()
            if sequence != last_sequence:
                last_sequence = sequence
                steps = 0 if finished > last_value else steps + 1
                value = finished + min(0.99, steps * 0.01)
                if value > last_value:
                    last_value = value
                    await progress(value, total, message)
            if execution.done.is_set() or execution.question is not None or time.monotonic() >= deadline:
                break  # finished, or waiting for the human's decision (resolve_failure)
            await anyio.sleep(_POLL_SECONDS)
        if execution.done.is_set() and total > last_value:
            await progress(total, total, f"execution {execution.state}")

    def _awaiting_decision_output(self, execution: Execution, question: FailureQuestion) -> tuple[ExecutionOutput, str]:
        """A failed move waits for the human: the report, the choices that apply and the way to answer."""
        rows = execution.moves()
        doc = question.to_document()
        choices = ", ".join(f"'{c['choice']}' ({c['what']})" for c in doc["choices"])
        down = " The VM is NOT running until then." if question.held else ""
        next_step = (
            f"A move failed and the execution waits for the human's decision.{down} Show the report and "
            f"the choices to the human: {choices}. Then call resolve_failure with plan_id "
            f"'{execution.plan_id}', the chosen choice (and node for 'retry on another node') and confirm: true. "
            f"Without a decision within {doc['default_in_seconds']} s the safe default is taken (roll back, stop)."
        )
        report = execution.report or {}
        markdown = (report_markdown(report) if report else "") + "\n\n### ⏸ Waiting for your decision\n\n"
        markdown += "".join(f"- **{md(c['choice'])}** – {md(c['what'])}\n" for c in doc["choices"])
        if question.problem:
            markdown += f"\nThe last answer could not be carried out: {md(question.problem)}\n"
        return ExecutionOutput(
            plan_id=execution.plan_id,
            state="awaiting-decision",
            complete=False,
            moves=rows,
            report=report or None,
            warnings=list(execution.warnings),
            question=doc,
            execution=execution.journal_id,
            next_step=next_step,
        ), markdown

    def _execution_output(self, execution: Execution) -> tuple[ExecutionOutput, str]:
        state = execution.state
        rows = execution.moves()
        question = execution.question
        if state == "awaiting-decision" and question is not None:
            return self._awaiting_decision_output(execution, question)
        if state == "running":
            next_step = (
                f"Still running. Call migration_status with plan_id '{execution.plan_id}' (and wait_seconds) "
                "to follow it; tell the human how it progresses."
            )
            markdown = progress_markdown(rows, title=f"⏳ Rebalancing in progress (plan {execution.plan_id})")
            return ExecutionOutput(
                plan_id=execution.plan_id,
                state="running",
                moves=rows,
                warnings=list(execution.warnings),
                next_step=next_step,
            ), markdown
        if execution.error is not None:
            hint = f" (hint: {execution.error.hint})" if execution.error.hint else ""
            return ExecutionOutput(
                plan_id=execution.plan_id,
                state="error",
                complete=False,
                moves=rows,
                error=str(execution.error),
                warnings=list(execution.warnings),
                next_step="Report the error to the human; check the cluster with cluster_inventory before re-planning.",
            ), f"## ✗ Execution failed\n\n{md(f'{execution.error}{hint}', limit=1000)}\n"
        report = execution.report or {}
        complete = bool(report.get("complete"))
        if complete:
            next_step = "Show the final report to the human."
            if report.get("pinned"):
                next_step += " Cold-moved VMs are pinned to their new node; offer unpin_vm."
        else:
            next_step = (
                "Execution stopped. Show the report (every VM's state is read from the cluster) and the "
                "troubleshooting to the human. Do NOT continue without their decision; to continue, make a new "
                "plan (plan_move / plan_rebalance) and get it approved."
            )
        markdown = report_markdown(report) if report else "## Execution finished\n"
        if report:
            elapsed = (execution.finished_at or time.time()) - execution.started_at
            hint = "make a new plan (plan_move / plan_rebalance) for what is left and get it approved"
            markdown += "\n" + improvements_markdown(report, elapsed_seconds=elapsed, resume_hint=hint)
        return ExecutionOutput(
            plan_id=execution.plan_id,
            state="finished",
            complete=complete,
            moves=rows,
            report=report,
            warnings=list(execution.warnings),
            execution=execution.journal_id,
            next_step=next_step,
        ), markdown

    async def resolve_failure(
        self,
        plan_id: str,
        choice: str,
        node: str | None,
        confirm: bool,
        wait_seconds: float,
        progress: Progress = _no_progress,
    ) -> tuple[ExecutionOutput, str]:
        """The human's decision for an execution waiting after a failure (the CLI's failure question)."""
        if confirm is not True:
            raise ConfigError("resolve_failure changes the cluster: pass confirm: true once the human decided")
        execution = self.executions.get(plan_id)
        if execution is None:
            raise ConfigError(f"no execution of plan {plan_id} on this server")
        try:
            decided = service.FailureChoice(choice.strip().lower())
        except ValueError:
            names = ", ".join(c.value for c in service.FailureChoice)
            raise ConfigError(f"unknown choice '{md(choice)}'", hint=f"one of: {names}") from None
        execution.answer(decided, node.strip() if node else None)
        await anyio.sleep(_POLL_SECONDS)
        await self._follow(execution, wait_seconds, progress)
        return self._execution_output(execution)

    async def cancel_execution(
        self, plan_id: str | None, confirm: bool, wait_seconds: float, progress: Progress = _no_progress
    ) -> tuple[ExecutionOutput, str]:
        """Stop an execution of this server the safe way (the human asked for it)."""
        if confirm is not True:
            raise ConfigError("cancel_execution changes the cluster: pass confirm: true once the human asked for it")
        execution = self.executions.get(plan_id)
        if execution is None:
            raise ConfigError(f"no execution of plan {plan_id} on this server" if plan_id else "no execution to cancel")
        if execution.done.is_set():
            raise ConfigError(
                f"the execution of plan {execution.plan_id} already ended ({execution.state}); nothing to cancel",
                hint="migration_status shows its report",
            )
        execution.request_cancel()
        await self._follow(execution, wait_seconds, progress)
        return self._execution_output(execution)

    async def migration_status(
        self, plan_id: str | None, wait_seconds: float, progress: Progress = _no_progress
    ) -> tuple[StatusOutput, str]:
        """The progress of an execution of this server (or the cluster's migrations in flight)."""
        execution = self.executions.get(plan_id)
        if execution is None and plan_id:
            raise ConfigError(
                f"no execution of plan {plan_id} on this server",
                hint="execute_plan starts one; migration_status without plan_id shows the newest",
            )
        if execution is None:
            if self.target.offline:
                return StatusOutput(executions=[]), "No execution on this server (offline snapshot).\n"
            state = await self._state()
            flights = [
                {
                    "namespace": m.namespace,
                    "name": m.name,
                    "vm": m.vm,
                    "phase": m.phase,
                    "from": m.source,
                    "to": m.target,
                }
                for m in state.migrations
            ]
            lines = [
                f"- {md(m['namespace'])}/{md(m['vm'])}: {md(m['phase'] or 'Pending')} "
                f"({md(migration_route(m['from'], m['to']))})"
                for m in flights
            ]
            markdown = "No execution on this server.\n\n" + (
                "**Migrations in flight:**\n" + "\n".join(lines) if lines else "No migration in flight in the cluster."
            )
            return StatusOutput(executions=[], migrations_in_flight=flights), markdown + "\n"
        if wait_seconds > 0 and not execution.done.is_set():
            await self._follow(execution, wait_seconds, progress)
        out, markdown = self._execution_output(execution)
        return StatusOutput(executions=[out]), markdown

    # ------------------------------------------------------------------ lifecycle / unpin

    async def vm_lifecycle(
        self,
        action: LifecycleAction | None,
        vms: list[str] | None,
        namespace: str,
        plan_id: str | None,
        plan_hash: str | None,
        confirm: bool,
        progress: Progress = _no_progress,
    ) -> tuple[LifecycleOutput, str]:
        """Step 1 (no plan_id): a lifecycle plan to approve. Step 2 (plan_id, hash, confirm): run it."""
        self._require_live()
        if plan_id is None:
            return await self._propose_lifecycle(action, vms, namespace)
        entry, planned_action, refs = self._authorize_lifecycle(action, vms, namespace, plan_id, plan_hash, confirm)
        results = await self._run_lifecycle(entry, planned_action, refs, progress)
        return _lifecycle_outcome(entry, results)

    async def _propose_lifecycle(
        self, action: LifecycleAction | None, vms: list[str] | None, namespace: str
    ) -> tuple[LifecycleOutput, str]:
        """Step 1 of vm_lifecycle: plan the action on the VMs and store the plan for approval."""
        if action is None or not vms:
            raise ConfigError("vm_lifecycle needs action and vms to make a plan (or plan_id to run one)")
        refs = vm_refs(vms, namespace)
        state = await self._state()
        planned = service.lifecycle_plan(state, service.Action(action), refs)
        await self._require(
            service.lifecycle_permissions(planned.action, refs), f"{planned.action.value} of {len(refs)} VM(s)"
        )
        doc = planned.to_document()
        entry = self.store.add(PlanKind.LIFECYCLE, doc, extra={"action": planned.action, "vms": refs})
        next_step = (
            f"Show the plan to the human. After explicit approval call vm_lifecycle with plan_id "
            f"'{entry.plan_id}', plan_hash '{entry.plan_hash}' and confirm: true."
        )
        return (
            LifecycleOutput(
                plan_id=entry.plan_id, plan_hash=entry.plan_hash, plan=doc, executed=False, next_step=next_step
            ),
            lifecycle_confirmation_markdown(planned.action, doc["vms"])
            + "".join(f"\n⚠️ {md(w)}\n" for w in planned.warnings)
            + _approval_footer(entry, "lifecycle plan"),
        )

    def _authorize_lifecycle(
        self,
        action: LifecycleAction | None,
        vms: list[str] | None,
        namespace: str,
        plan_id: str,
        plan_hash: str | None,
        confirm: bool,
    ) -> tuple[StoredPlan, service.Action, list[tuple[str, str]]]:
        """Step 2 of vm_lifecycle: the approved plan, its action and VMs; any action or vms given must match."""
        entry = self.store.authorize(plan_id, plan_hash, PlanKind.LIFECYCLE, confirm)
        planned_action: service.Action = entry.extra["action"]
        refs = entry.extra["vms"]
        if action is not None and service.Action(action) is not planned_action:
            raise ConfigError(f"plan {entry.plan_id} is to {planned_action.value}, not to {action}")
        if vms and vm_refs(vms, namespace) != refs:
            raise ConfigError(
                f"the VMs given differ from those of plan {entry.plan_id}",
                hint="pass only plan_id, plan_hash and confirm to run an approved plan",
            )
        return entry, planned_action, refs

    async def _run_lifecycle(
        self, entry: StoredPlan, planned_action: service.Action, refs: list[tuple[str, str]], progress: Progress
    ) -> list[service.LifecycleResult]:
        """Run an approved lifecycle plan in a worker thread, holding the execution slot, with progress."""
        self.executions.claim(f"{planned_action.value} of {len(refs)} VM(s)")
        try:
            session = await self._thread(service.Session.open, self.target)
        except BaseException:
            self.executions.release()
            raise
        self.store.mark_executed(entry.plan_id)
        messages: list[str] = []

        def report(ref: str, phase: str, message: str) -> None:
            messages.append(f"{ref}: {phase} {message}".strip())

        def run() -> list[service.LifecycleResult]:
            try:
                return service.lifecycle(session, planned_action, refs, report=report)
            finally:
                session.close()

        try:
            return await self._run_reporting(run, messages, progress)
        finally:
            self.executions.release()

    async def _run_reporting(self, fn: Callable[[], T], messages: list[str], progress: Progress) -> T:
        """Run ``fn`` in a thread, forwarding each new message as a progress notification."""
        result: list[T] = []
        sent = 0

        async def call() -> None:
            result.append(await self._thread(fn))

        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            while not result:
                while sent < len(messages):
                    sent += 1
                    await progress(float(sent), None, messages[sent - 1])
                await anyio.sleep(_POLL_SECONDS)
        return result[0]

    async def unpin_vm(
        self, vm: str | None, namespace: str, plan_id: str | None, plan_hash: str | None, confirm: bool
    ) -> tuple[UnpinOutput, str]:
        """Step 1 (no plan_id): what would be unpinned. Step 2 (plan_id, hash, confirm): remove the pin."""
        self._require_live()
        if plan_id is None:
            if not vm:
                raise ConfigError("unpin_vm needs vm to make a plan (or plan_id to run one)")
            ((ns, name),) = vm_refs([vm], namespace)

            def unpin_plan() -> dict[str, Any]:
                with service.Session.open(self.target) as session:
                    return service.unpin_plan(session, ns, name)

            doc = await self._thread(unpin_plan)
            if doc["pinned_to"]:
                await self._require(service.unpin_permissions(ns), f"unpinning {ns}/{name}")
            entry = self.store.add(PlanKind.UNPIN, doc, extra={"vm": (ns, name)})
            if doc["pinned_to"]:
                next_step = (
                    f"Show the plan to the human. After explicit approval call unpin_vm with plan_id "
                    f"'{entry.plan_id}', plan_hash '{entry.plan_hash}' and confirm: true."
                )
                markdown = unpin_plan_markdown(doc) + _approval_footer(entry, "unpin plan")
            else:
                next_step = "Nothing to do: the VM has no node pin."
                markdown = unpin_plan_markdown(doc)
            return UnpinOutput(
                plan_id=entry.plan_id, plan_hash=entry.plan_hash, plan=doc, executed=False, next_step=next_step
            ), markdown
        entry = self.store.authorize(plan_id, plan_hash, PlanKind.UNPIN, confirm)
        ns, name = entry.extra["vm"]
        self.executions.claim(f"unpin of {ns}/{name}")
        try:

            def run() -> bool:
                session = service.Session.open(self.target)
                try:
                    return service.unpin(session, ns, name)
                finally:
                    session.close()

            self.store.mark_executed(entry.plan_id)
            done = await self._thread(run)
        finally:
            self.executions.release()
        markdown = (
            f"✓ {md(ns)}/{md(name)} unpinned: it can reschedule to any suitable node\n"
            if done
            else f"{md(ns)}/{md(name)} has no node pin: nothing to do\n"
        )
        return UnpinOutput(
            plan_id=entry.plan_id,
            plan_hash=entry.plan_hash,
            plan=entry.document,
            executed=True,
            unpinned=done,
            next_step="Tell the human the result.",
        ), markdown


__all__ = ["Progress", "Tools"]
