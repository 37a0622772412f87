"""Commands that change the cluster: apply, move, drain, start / stop / restart, unpin, status.

Each one shows what it will do, asks (unless --yes; refuses without a terminal), then
executes with live progress and prints the seeds' final report. On the first failure it
stops starting moves and asks: retry / retry cold / skip / abort (without a terminal it
stops with exit code 5).
"""

import dataclasses
import json
import math
import sys
from typing import Annotated, TypedDict

import typer
from rich.live import Live
from rich.markup import escape

from vm_rebalance import service
from vm_rebalance.cli.approval import approve_plan, ask_with, confirm, require_terminal
from vm_rebalance.cli.main import Context, Output, app, ctx_obj, emit_document, progress_printer
from vm_rebalance.cli.options import positive_number
from vm_rebalance.errors import ConfigError, ExecutionIncompleteError, InfeasiblePlanError
from vm_rebalance.executor.engine import Executor, plan_id
from vm_rebalance.executor.events import MoveEvent, MoveStatus, Outcome
from vm_rebalance.executor.journal import Journal, state_dir
from vm_rebalance.executor.lifecycle import Action
from vm_rebalance.executor.runners import ExecutionOptions
from vm_rebalance.model import Goal, GoalType, MigrationMethod, Plan
from vm_rebalance.model.plan import COLD_DOWNTIME
from vm_rebalance.planner import ManualMoveRequest, PlanRequest
from vm_rebalance.render.execution import (
    ProgressTracker,
    failure_choices_text,
    lifecycle_view,
    report_document,
    report_view,
)
from vm_rebalance.render.lifecycle import LIFECYCLE_IMPACT, batch_warnings
from vm_rebalance.render.plan import render_plan

YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Approve without asking (needed without a terminal).")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Show what would happen; change nothing.")]
NamespaceOpt = Annotated[str, typer.Option("--namespace", "-n", help="Namespace of the VMs.")]
OutputOpt = Annotated[Output, typer.Option("--output", "-o", help="table or json (the final report).")]


def _options(
    sequential: bool, replace_affinity: bool, unpin_after: bool, timeout_per_gib: float | None
) -> ExecutionOptions:
    if timeout_per_gib is not None and (not math.isfinite(timeout_per_gib) or timeout_per_gib <= 0):
        raise ConfigError(f"--timeout-per-gib must be a finite number above 0, not {timeout_per_gib:g}")
    return ExecutionOptions(
        sequential=sequential,
        replace_affinity=replace_affinity,
        unpin_after_cold=unpin_after,
        timeout_per_gib_seconds=timeout_per_gib,
    )


def _print_warnings(c: Context, warnings: list[str] | tuple[str, ...]) -> None:
    for w in warnings:
        c.err.print(f"[yellow]⚠ {escape(w)}[/yellow]", highlight=False)


def _run_with_progress(
    c: Context, session: service.Session, plan: Plan, executor_plan: Plan, options: ExecutionOptions, executor: Executor
) -> service.ExecutionResult:
    tracker = ProgressTracker(plan)
    if c.err.is_terminal:
        with Live(tracker.view(), console=c.err, refresh_per_second=4, transient=False) as live:

            def report(event: MoveEvent) -> None:
                tracker.handle(event)
                live.update(tracker.view())

            return service.execute_plan(session, executor_plan, options=options, report=report, executor=executor)

    def report_line(event: MoveEvent) -> None:
        tracker.handle(event)
        if event.status is not MoveStatus.PENDING:
            c.err.print(
                f"#{event.move.id} {event.move.namespace}/{event.move.vm} → {event.move.target}: "
                f"{event.phase}" + (f" ({event.message})" if event.message else ""),
                highlight=False,
            )

    return service.execute_plan(session, executor_plan, options=options, report=report_line, executor=executor)


def carry_out(
    c: Context,
    session: service.Session,
    plan: Plan,
    *,
    yes: bool,
    dry_run: bool,
    options: ExecutionOptions,
    output: Output,
    what: str,
    warnings: list[str] | tuple[str, ...] = (),
    before_execute: object = None,
    resume_hint: str | None = None,
    journal_id: str | None = None,
    fresh_journal: bool = True,
) -> bool:
    """Show, approve, execute, handle failures and report: the common path of apply/move/drain.

    Returns whether anything was executed (False: nothing to do, a dry run, or cancelled).
    """
    _print_warnings(c, warnings)
    if not plan.moves:
        c.out.print(render_plan(plan, limits=session.state.limits))
        c.err.print("nothing to do: no move is needed or possible", highlight=False)
        return False
    if dry_run:
        c.out.print(render_plan(plan, limits=session.state.limits))
        c.err.print(
            f"dry run: {len(plan.moves)} move(s) in {len(plan.waves)} wave(s) would run "
            f"(live before cold, within {session.state.limits.parallel_per_cluster} per cluster and "
            f"{session.state.limits.parallel_outbound_per_node} per source node); nothing was changed",
            highlight=False,
        )
        return False
    require_terminal(yes, what)
    # The plan is data in table mode (stdout); with -o json stdout is reserved for the report,
    # so the plan and every question go to stderr.
    (c.out if output is Output.table else c.err).print(render_plan(plan, limits=session.state.limits))
    approved = approve_plan(c.err, session.state, plan, yes=yes, show=False)
    if approved is None:
        c.err.print("cancelled: nothing was changed", highlight=False)
        return False
    if callable(before_execute):
        before_execute()
    executor = session.executor(approved, options=options, journal_id=journal_id, fresh=fresh_journal)
    current = approved
    first_before = session.state
    all_outcomes: dict[int, Outcome] = {}
    while True:
        result = _run_with_progress(c, session, approved, current, options, executor)
        for o in result.outcomes:
            all_outcomes[o.move.id] = o
        failed = [o for o in result.outcomes if o.status is MoveStatus.FAILED]
        if not failed or result.interrupted or yes or not sys.stdin.isatty():
            break
        first = failed[0]
        pending = [o.move for o in result.outcomes if o.status is MoveStatus.NOT_ATTEMPTED]
        c.out.print(report_view(report_document(approved, result.outcomes, first_before, result.after)))
        c.err.print(failure_choices_text(first, pending))
        choice = ask_with(c.err)("retry / retry cold / skip / abort: ").lower()
        if choice == "retry":
            continue
        if choice == "retry cold":
            current = dataclasses.replace(
                current,
                moves=tuple(
                    dataclasses.replace(m, method=MigrationMethod.COLD, downtime=COLD_DOWNTIME)
                    if m.id == first.move.id
                    else m
                    for m in current.moves
                ),
            )
            continue
        if choice == "skip":
            executor.mark_skipped(first.move)
            continue
        break
    outcomes = [all_outcomes[m.id] for m in approved.moves if m.id in all_outcomes]
    doc = report_document(
        approved,
        outcomes,
        first_before,
        result.after,
        warnings=warnings,
        interrupted=result.interrupted,
    )
    if output is Output.json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        c.out.print(report_view(doc))
    if result.interrupted:
        raise KeyboardInterrupt
    if not doc["complete"]:
        raise ExecutionIncompleteError(
            f"execution stopped: {doc['counts']['succeeded']} succeeded, {doc['counts']['failed']} failed, "
            f"{doc['counts']['not attempted']} not attempted, {doc['counts']['skipped']} skipped",
            hint=resume_hint
            or f"fix the cause, then continue with: vm-rebalance apply <plan file> --resume "
            f"(journal {executor.journal.plan_id})",
        )
    return True


@app.command()
def apply(
    ctx: typer.Context,
    plan_file: Annotated[str, typer.Argument(help="A plan saved with `plan --save FILE` (or `plan -o json`).")],
    skip: Annotated[list[int] | None, typer.Option("--skip", help="Leave out move N (repeatable).")] = None,
    retarget: Annotated[
        list[str] | None, typer.Option("--retarget", help="Send move N elsewhere: N=NODE (repeatable).")
    ] = None,
    sequential: Annotated[bool, typer.Option("--sequential", help="One move at a time.")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted execution of this plan.")] = False,
    replace_affinity: Annotated[
        bool, typer.Option("--replace-affinity", help="Allow cold moves to replace a VM's existing node pin.")
    ] = False,
    unpin_after: Annotated[
        bool, typer.Option("--unpin", help="Remove cold moves' node pins right after success.")
    ] = False,
    timeout_per_gib: Annotated[
        float | None,
        typer.Option(
            "--timeout-per-gib",
            help="Live migration timeout, seconds per GiB of guest memory (default: the cluster's "
            "completionTimeoutPerGiB, 150 if unset).",
            callback=positive_number,
        ),
    ] = None,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    output: OutputOpt = Output.table,
) -> None:
    """Carry out a saved plan: re-validate every move against the cluster, ask, execute, report.

    Moves run wave by wave, live before cold, smallest first, within KubeVirt's limits.
    Progress is journalled: after a crash or Ctrl-C, `apply PLAN --resume` continues
    without repeating finished moves.
    """
    c = ctx_obj(ctx)
    plan = plan_file_plan = service.load_plan(plan_file)
    options = _options(sequential or plan.sequential, replace_affinity, unpin_after, timeout_per_gib)
    session = service.Session.open(c.target, progress=progress_printer(c))
    try:
        journal = Journal.open(plan_id(plan))
        if journal.exists and not journal.finished and not resume and not dry_run:
            raise ConfigError(
                f"this plan was started before and did not finish (journal {plan_id(plan)})",
                hint="continue it with --resume, or re-plan",
            )
        edits = []
        for item in retarget or ():
            number, sep, node = item.partition("=")
            if not sep or not number.strip().isdigit() or not node.strip():
                raise ConfigError(f"--retarget '{item}' is not N=NODE")
            edits.append((int(number), node.strip()))
        validated, warnings, done = service.prepare_apply(
            session.state, plan, journal, resume=resume, skip=skip or (), retarget=edits, sequential=sequential
        )
        if done:
            c.err.print(f"resuming: {done} move(s) already done", highlight=False)
        carry_out(
            c,
            session,
            validated,
            yes=yes,
            dry_run=dry_run,
            options=options,
            output=output,
            what="applying this plan",
            warnings=warnings,
            journal_id=plan_id(plan_file_plan),
            fresh_journal=not resume,
        )
    finally:
        session.close()


@app.command()
def move(
    ctx: typer.Context,
    vms: Annotated[list[str], typer.Argument(help="VM names (or NAMESPACE/NAME).")],
    to: Annotated[str, typer.Option("--to", help="Target node.")],
    namespace: NamespaceOpt = "default",
    method: Annotated[str, typer.Option("--method", help="auto (live when possible), live or cold.")] = "auto",
    sequential: Annotated[bool, typer.Option("--sequential", help="One move at a time.")] = False,
    replace_affinity: Annotated[
        bool, typer.Option("--replace-affinity", help="Allow replacing a VM's existing node pin.")
    ] = False,
    unpin_after: Annotated[
        bool, typer.Option("--unpin", help="Remove the cold move's node pin after success.")
    ] = False,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    output: OutputOpt = Output.table,
) -> None:
    """Move named VMs to a node: live when the VM's storage allows it, cold otherwise.

    Validates like the seeds (VM exists, not already there, storage, target Ready and not
    cordoned, plus taints, selectors, affinity and capacity). Batches above 5 VMs get a
    warning, above 10 a strong recommendation to split.
    """
    c = ctx_obj(ctx)
    if method not in ("auto", "live", "cold"):
        raise ConfigError(f"--method must be auto, live or cold, not '{method}'")
    requests = [ManualMoveRequest(ns, name, to, method) for ns, name in service.vm_refs(vms, namespace)]
    session = service.Session.open(c.target, progress=progress_printer(c))
    try:
        plan = service.plan_moves(session.state, requests, sequential=sequential)
        if not plan.moves:
            _print_warnings(c, plan.warnings)
            c.err.print("nothing to do", highlight=False)
            return
        carry_out(
            c,
            session,
            plan,
            yes=yes,
            dry_run=dry_run,
            output=output,
            what="this move",
            options=_options(sequential, replace_affinity, unpin_after, None),
        )
    finally:
        session.close()


@app.command()
def drain(
    ctx: typer.Context,
    node: Annotated[str, typer.Argument(help="The node to empty of VMs.")],
    no_cordon: Annotated[bool, typer.Option("--no-cordon", help="Do not cordon the node first.")] = False,
    live_only: Annotated[bool, typer.Option("--live-only", help="Leave VMs that cannot move live.")] = False,
    sequential: Annotated[bool, typer.Option("--sequential", help="One move at a time.")] = False,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    output: OutputOpt = Output.table,
) -> None:
    """Move every VM off a node (for maintenance): cordon it, plan with the drain goal, apply.

    What cannot move is listed with its reason. Running VMs with RWO storage move cold.
    """
    c = ctx_obj(ctx)
    session = service.Session.open(c.target, progress=progress_printer(c))
    try:
        state = session.state
        if state.node(node) is None:
            raise ConfigError(f"node '{node}' does not exist", hint="list nodes with: vm-rebalance inventory")
        plan = service.propose(
            state, PlanRequest(goal=Goal(type=GoalType.DRAIN, node=node), live_only=live_only, sequential=sequential)
        )
        stuck = [s for s in plan.stays if s.node == node]
        for s in stuck:
            c.err.print(f"[yellow]cannot move {s.namespace}/{s.vm}: {escape(s.reason)}[/yellow]", highlight=False)

        def cordon() -> None:
            if not no_cordon and service.cordon(session, node):
                c.err.print(f"cordoned {node}", highlight=False)

        executed = False
        if not plan.moves:
            if not dry_run and not no_cordon:
                require_terminal(yes, "cordoning the node")
                if confirm(c.err, f"no VM to move; cordon {node} anyway?", yes=yes):
                    cordon()
                    executed = True
        else:
            executed = carry_out(
                c,
                session,
                plan,
                yes=yes,
                dry_run=dry_run,
                output=output,
                what=f"draining {node}",
                options=_options(sequential, False, False, None),
                before_execute=cordon,
            )
        # The node stays non-empty (after the drain ran, or because nothing could move): exit 4.
        # A dry run, or a drain the user cancelled, exits 0.
        if stuck and not dry_run and (executed or not plan.moves):
            raise InfeasiblePlanError(
                f"{len(stuck)} VM(s) could not be moved off {node}",
                blocking=[f"{s.namespace}/{s.vm}: {s.reason}" for s in stuck],
            )
    finally:
        session.close()


def _lifecycle(ctx: typer.Context, action: Action, vms: list[str], namespace: str, yes: bool, output: Output) -> None:
    c = ctx_obj(ctx)
    refs = service.vm_refs(vms, namespace)
    _print_warnings(c, batch_warnings(len(refs)))
    impact = LIFECYCLE_IMPACT[action]
    session = service.Session.open(c.target)
    try:
        service.require_vms(session.state, refs)  # unknown VMs are refused before anything is asked
        c.err.print(
            f"VM lifecycle: {action.value} {', '.join(f'{n}/{v}' for n, v in refs)} — {impact}", highlight=False
        )
        require_terminal(yes, f"{action.value} of VMs")
        if not confirm(c.err, f"{action.value} {len(refs)} VM(s)?", yes=yes):
            c.err.print("cancelled: nothing was changed")
            return

        def progress(ref: str, phase: str, message: str) -> None:
            c.err.print(f"{ref}: {phase} {message}", highlight=False)

        results = service.lifecycle(session, action, refs, report=progress)
    finally:
        session.close()
    if output is Output.json:
        sys.stdout.write(json.dumps([dataclasses.asdict(r) for r in results], indent=2, default=str) + "\n")
    else:
        c.out.print(lifecycle_view(results))
    missing = [r for r in results if r.status.value == "not found"]
    failed = [r for r in results if not r.ok]
    if missing and len(missing) == len(failed):
        raise ConfigError("; ".join(r.message for r in missing), hint="list VMs with: vm-rebalance inventory")
    if failed:
        raise ExecutionIncompleteError(
            f"{len(failed)} of {len(results)} VM(s) failed to {action.value}: "
            + "; ".join(f"{r.name}: {r.message}" for r in failed)
        )


@app.command()
def start(
    ctx: typer.Context,
    vms: Annotated[list[str], typer.Argument(help="VM names (or NAMESPACE/NAME).")],
    namespace: NamespaceOpt = "default",
    yes: YesOpt = False,
    output: OutputOpt = Output.table,
) -> None:
    """Start VMs and verify they run (already running is reported, not an error)."""
    _lifecycle(ctx, Action.START, vms, namespace, yes, output)


@app.command()
def stop(
    ctx: typer.Context,
    vms: Annotated[list[str], typer.Argument(help="VM names (or NAMESPACE/NAME).")],
    namespace: NamespaceOpt = "default",
    yes: YesOpt = False,
    output: OutputOpt = Output.table,
) -> None:
    """Stop VMs gracefully and verify they stopped."""
    _lifecycle(ctx, Action.STOP, vms, namespace, yes, output)


@app.command()
def restart(
    ctx: typer.Context,
    vms: Annotated[list[str], typer.Argument(help="VM names (or NAMESPACE/NAME).")],
    namespace: NamespaceOpt = "default",
    yes: YesOpt = False,
    output: OutputOpt = Output.table,
) -> None:
    """Restart VMs: stop → verify stopped → start → verify running."""
    _lifecycle(ctx, Action.RESTART, vms, namespace, yes, output)


@app.command()
def unpin(
    ctx: typer.Context,
    vm: Annotated[str, typer.Argument(help="VM name (or NAMESPACE/NAME).")],
    namespace: NamespaceOpt = "default",
    yes: YesOpt = False,
) -> None:
    """Remove the required node affinity a cold migration added, so the VM can reschedule anywhere again.

    The VM keeps running where it is; only future restarts may place it elsewhere.
    """
    c = ctx_obj(ctx)
    ((ns, name),) = service.vm_refs([vm], namespace)
    session = service.Session.open(c.target)
    try:
        require_terminal(yes, "unpinning")
        if not confirm(c.err, f"remove the node pin of {ns}/{name}?", yes=yes):
            c.err.print("cancelled: nothing was changed")
            return
        if service.unpin(session, ns, name):
            c.out.print(f"✓ {ns}/{name} unpinned: it can reschedule to any suitable node", highlight=False)
        else:
            c.out.print(f"{ns}/{name} has no node pin: nothing to do", highlight=False)
    finally:
        session.close()


_MigrationInFlight = TypedDict(
    "_MigrationInFlight",
    {"namespace": str, "name": str, "vm": str, "phase": str, "from": str | None, "to": str | None},
)
"""One entry of the status document's ``migrations_in_flight`` ("from" is a keyword, hence the call syntax)."""


class _UnfinishedExecution(TypedDict):
    """One entry of the status document's ``unfinished_executions``."""

    plan_id: str
    started_at: str
    moves: dict[str, int]


@app.command()
def status(ctx: typer.Context, output: OutputOpt = Output.table) -> None:
    """Show migrations in flight in the cluster and unfinished vm-rebalance executions."""
    c = ctx_obj(ctx)
    state = service.read_state(c.target, progress=progress_printer(c))
    journals: list[_UnfinishedExecution] = []
    directory = state_dir()
    if directory.exists():
        for path in sorted(directory.glob("*.json")):
            try:
                journal = Journal.open(path.stem, directory=directory)
            except ConfigError:
                continue
            if not journal.finished:
                counts: dict[str, int] = {}
                for rec in journal.moves.values():
                    counts[str(rec.status)] = counts.get(str(rec.status), 0) + 1
                journals.append({"plan_id": journal.plan_id, "started_at": journal.started_at, "moves": counts})
    in_flight: list[_MigrationInFlight] = [
        {"namespace": m.namespace, "name": m.name, "vm": m.vm, "phase": m.phase, "from": m.source, "to": m.target}
        for m in state.migrations
    ]
    doc = {
        "apiVersion": "vm-rebalance/v1",
        "kind": "Status",
        "migrations_in_flight": in_flight,
        "unfinished_executions": journals,
    }
    if output is not Output.table:
        emit_document(c, doc, output)
        return
    if not state.migrations:
        c.out.print("no migration in flight")
    for m in in_flight:
        c.out.print(
            f"{m['namespace']}/{m['vm']}: {m['phase']} ({m['from'] or '?'} → {m['to'] or '?'}) [{m['name']}]",
            highlight=False,
        )
    for j in journals:
        c.out.print(
            f"unfinished execution {j['plan_id']} started {j['started_at']}: {j['moves']} — "
            "continue with `vm-rebalance apply PLAN --resume`",
            highlight=False,
        )
