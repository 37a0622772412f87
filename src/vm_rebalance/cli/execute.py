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
import time
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.live import Live
from rich.markdown import Markdown
from rich.markup import escape

from vm_rebalance import service
from vm_rebalance.cli.approval import approve_plan, ask_with, confirm, require_terminal
from vm_rebalance.cli.main import Context, Output, app, ctx_obj, emit_document, progress_printer
from vm_rebalance.cli.options import positive_number
from vm_rebalance.errors import ClusterForbiddenError, ConfigError, ExecutionIncompleteError, InfeasiblePlanError
from vm_rebalance.model import Plan
from vm_rebalance.model.execution import FailureKind
from vm_rebalance.render.dialogue import (
    affinity_kept_markdown,
    affinity_question_markdown,
    improvements_markdown,
    lifecycle_confirmation_markdown,
    lifecycle_result_markdown,
    manual_plan_markdown,
    move_failure_markdown,
    move_result_markdown,
)
from vm_rebalance.render.execution import (
    ProgressTracker,
    failure_choices_text,
    lifecycle_view,
    report_view,
)
from vm_rebalance.render.lifecycle import batch_warnings
from vm_rebalance.render.plan import render_plan

YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Approve without asking (needed without a terminal).")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Show what would happen; change nothing.")]
NamespaceOpt = Annotated[str, typer.Option("--namespace", "-n", help="Namespace of the VMs.")]
OutputOpt = Annotated[Output, typer.Option("--output", "-o", help="table or json (the final report).")]


def _options(
    sequential: bool, replace_affinity: bool, unpin_after: bool, timeout_per_gib: float | None
) -> service.ExecutionOptions:
    if timeout_per_gib is not None and (not math.isfinite(timeout_per_gib) or timeout_per_gib <= 0):
        raise ConfigError(f"--timeout-per-gib must be a finite number above 0, not {timeout_per_gib:g}")
    return service.ExecutionOptions(
        sequential=sequential,
        replace_affinity=replace_affinity,
        unpin_after_cold=unpin_after,
        timeout_per_gib_seconds=timeout_per_gib,
    )


def _print_warnings(c: Context, warnings: list[str] | tuple[str, ...]) -> None:
    for w in warnings:
        c.err.print(f"[yellow]⚠ {escape(w)}[/yellow]", highlight=False)


def _execute_with_progress(c: Context, run: service.Run) -> service.ExecutionReport:
    """One attempt of the run, with a live progress table on a terminal and a line per step otherwise."""
    tracker = ProgressTracker(run.plan)
    if c.err.is_terminal:
        with Live(tracker.view(), console=c.err, refresh_per_second=4, transient=False) as live:

            def report(event: service.MoveEvent) -> None:
                tracker.handle(event)
                live.update(tracker.view())

            return run.execute(report)

    def report_line(event: service.MoveEvent) -> None:
        tracker.handle(event)
        if event.status is not service.MoveStatus.PENDING:
            c.err.print(
                f"#{event.move.id} {escape(event.move.namespace)}/{escape(event.move.vm)} → "
                f"{escape(event.move.target)}: {escape(event.phase)}"
                + (f" ({escape(event.message)})" if event.message else ""),
                highlight=False,
            )

    return run.execute(report_line)


def _ask_failure_choice(c: Context, report: service.ExecutionReport) -> service.FailureChoice:
    first = report.failed[0]
    c.out.print(report_view(report.to_document()))
    c.err.print(failure_choices_text(first, list(report.not_attempted)))
    choices = {choice.value: choice for choice in service.FailureChoice}
    ask = ask_with(c.err)
    while True:
        answer = " ".join(ask(f"{' / '.join(choices)}: ").lower().split())
        if answer in choices:
            return choices[answer]
        if answer in ("cancel", "q", "quit"):
            return service.FailureChoice.ABORT
        c.err.print(f"answer {', '.join(choices)}", highlight=False)


def carry_out(
    c: Context,
    session: service.Session,
    plan: Plan,
    *,
    yes: bool,
    dry_run: bool,
    options: service.ExecutionOptions,
    output: Output,
    what: str,
    warnings: list[str] | tuple[str, ...] = (),
    before_execute: object = None,
    cordon: str | None = None,
    resume_hint: str | None = None,
    journal_id: str | None = None,
    fresh_journal: bool = True,
    manual: bool = False,
    offered: service.PlanView | None = None,
) -> service.ExecutionReport | None:
    """Show, approve, execute, handle failures and report: the common path of apply/move/drain.

    ``manual`` (the `move` command): the plan is shown as seed 002's manual-mode summary and a single
    move's result as its per-move report. ``offered``: the plan's view, whose alternatives are shown
    and can be accepted at the approval prompt. Returns the final report, or None when nothing was executed
    (nothing to do, a dry run, or cancelled).
    """
    _print_warnings(c, warnings)

    def show(where: Console) -> None:
        if manual:
            where.print(Markdown(manual_plan_markdown(plan, session.state)))
        else:
            shown = offered.alternatives if offered is not None else ()
            where.print(render_plan(plan, limits=session.state.limits, alternatives=shown))

    if not plan.moves:
        show(c.out)
        c.err.print("nothing to do: no move is needed or possible", highlight=False)
        return None
    if dry_run:
        show(c.out)
        c.err.print(
            f"dry run: {len(plan.moves)} move(s) in {len(plan.waves)} wave(s) would run "
            f"(live before cold, within {session.state.limits.parallel_per_cluster} per cluster and "
            f"{session.state.limits.parallel_outbound_per_node} per source node); nothing was changed",
            highlight=False,
        )
        return None
    require_terminal(yes, what)
    service.require_permissions(session, service.plan_permissions(plan, cordon=cordon), what=what)
    # The plan is data in table mode (stdout); with -o json stdout is reserved for the report,
    # so the plan and every question go to stderr.
    show(c.out if output is Output.table else c.err)
    approved = approve_plan(
        c.err,
        session.state,
        plan,
        yes=yes,
        show=False,
        alternatives=offered.alternative_plans if offered is not None else None,
    )
    if approved is None:
        c.err.print("cancelled: nothing was changed", highlight=False)
        return None
    if callable(before_execute):
        before_execute()
    run = service.Run(session, approved, options=options, journal_id=journal_id, fresh=fresh_journal, warnings=warnings)
    interactive = not yes and sys.stdin.isatty()
    started = time.monotonic()
    while True:
        report = _execute_with_progress(c, run)
        if not report.failed or report.interrupted or not interactive:
            break
        if not run.choose(_ask_failure_choice(c, report)):
            break
    doc = report.to_document()
    if output is Output.json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    elif manual and len(report.outcomes) == 1 and not report.interrupted:
        _manual_result(c, session, report, interactive=interactive, unpin_after=options.unpin_after_cold)
    else:
        c.out.print(report_view(doc))
        for outcome in report.failed if manual else ():
            c.out.print(Markdown(move_failure_markdown(outcome)))
        if not report.interrupted:
            hint = resume_hint or f"continue with `vm-rebalance apply <plan file> --resume` (journal {run.journal_id})"
            c.out.print(
                Markdown(improvements_markdown(doc, elapsed_seconds=time.monotonic() - started, resume_hint=hint))
            )
    if report.interrupted:
        raise KeyboardInterrupt
    if not doc["complete"]:
        forbidden = [m for m in doc["moves"] if m.get("failure") == FailureKind.FORBIDDEN.value]
        if forbidden:
            # The cluster refused a write: that is exit 3 (design.md §3), whatever else the report says.
            raise ClusterForbiddenError(
                f"execution stopped: the cluster refused a write for {len(forbidden)} move(s) "
                f"({_move_names(forbidden)}); {doc['counts']['succeeded']} succeeded, "
                f"{doc['counts']['not attempted']} not attempted",
                hint="grant the missing permissions (see the RBAC section of the README), then continue with: "
                f"vm-rebalance apply <plan file> --resume (journal {run.journal_id})",
            )
        raise ExecutionIncompleteError(
            f"execution stopped: {doc['counts']['succeeded']} succeeded, {doc['counts']['failed']} failed, "
            f"{doc['counts']['not attempted']} not attempted, {doc['counts']['skipped']} skipped",
            hint=resume_hint
            or f"fix the cause, then continue with: vm-rebalance apply <plan file> --resume (journal {run.journal_id})",
        )
    return report


def _move_names(moves: list[dict[str, Any]]) -> str:
    """``ns/vm, ns/vm`` of report moves (at most five), as one plain line."""
    names = [f"{m['namespace']}/{m['vm']}" for m in moves]
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def _manual_result(
    c: Context, session: service.Session, report: service.ExecutionReport, *, interactive: bool, unpin_after: bool
) -> None:
    """Seed 002 step 5 for one move, with the affinity question after a cold move (step 4b.5)."""
    (outcome,) = report.outcomes
    move = outcome.move
    pinned: bool | None = None
    if outcome.ok and outcome.pinned and not unpin_after:
        if interactive:
            c.out.print(Markdown(move_result_markdown(outcome, report.after, pinned=True)))
            c.err.print(Markdown(affinity_question_markdown(move)))
            answer = _ask_choice(c, "yes / no / later: ", ("yes", "no", "later"))
            if answer == "yes" and service.unpin(session, move.namespace, move.vm):
                c.out.print(
                    f"✓ node affinity removed: {escape(move.namespace)}/{escape(move.vm)} can reschedule to any "
                    "suitable node",
                    highlight=False,
                )
            else:
                c.out.print(Markdown(affinity_kept_markdown(move)))
            return
        pinned = True
    c.out.print(Markdown(move_result_markdown(outcome, report.after, pinned=pinned)))


def _ask_choice(c: Context, prompt: str, choices: tuple[str, ...]) -> str:
    ask = ask_with(c.err)
    while True:
        answer = " ".join(ask(prompt).lower().split())
        if answer in choices:
            return answer
        if answer in ("cancel", "q", "quit") and "later" in choices:
            return "later"
        c.err.print(f"answer {', '.join(choices)}", highlight=False)


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
    saved = service.load_plan(plan_file)
    options = _options(sequential or saved.sequential, replace_affinity, unpin_after, timeout_per_gib)
    edits = [_retarget_pair(item) for item in retarget or ()]
    with service.Session.open(c.target, progress=progress_printer(c)) as session:
        prepared = service.prepare_apply(
            session, saved, resume=resume, dry_run=dry_run, skip=skip or (), retarget=edits, sequential=sequential
        )
        if prepared.done:
            c.err.print(f"resuming: {prepared.done} move(s) already done", highlight=False)
        carry_out(
            c,
            session,
            prepared.plan,
            yes=yes,
            dry_run=dry_run,
            options=options,
            output=output,
            what="applying this plan",
            warnings=prepared.warnings,
            journal_id=prepared.journal_id,
            fresh_journal=not resume,
        )


def _retarget_pair(item: str) -> tuple[int, str]:
    number, sep, node = item.partition("=")
    if not sep or not number.strip().isdigit() or not node.strip():
        raise ConfigError(f"--retarget '{item}' is not N=NODE")
    return int(number), node.strip()


@app.command()
def move(
    ctx: typer.Context,
    vms: Annotated[
        list[str],
        typer.Argument(help="VMs: NAME or NAMESPACE/NAME, each optionally =NODE for its own target (web=worker-05)."),
    ],
    to: Annotated[
        str | None, typer.Option("--to", help="Target node of the VMs that do not name their own (VM=NODE).")
    ] = None,
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
    """Move named VMs to named nodes: live when the VM's storage allows it, cold otherwise.

    `move web-01 --to worker-05`, or several at once with their own targets:
    `move prod/web-01=worker-05 prod/db-01=worker-03`. Validates like the seeds (VM exists, not
    already there, storage, target Ready and not cordoned, plus taints, selectors, affinity and
    capacity), shows what will happen (steps, downtime, rollback), asks, moves, and reports what
    the cluster shows afterwards. After a cold move it asks whether to keep the node pin.
    Batches above 5 VMs get a warning, above 10 a strong recommendation to split.
    """
    c = ctx_obj(ctx)
    requests = service.move_requests(vms, to, namespace, method)
    with service.Session.open(c.target, progress=progress_printer(c)) as session:
        service.require_namespaces(session, [r.namespace for r in requests])
        view = service.plan_moves(session.state, requests, sequential=sequential)
        plan = view.plan
        if not plan.moves:  # every VM is already where it was asked to go
            for rejection in view.rejections:
                c.err.print(escape(rejection.message), highlight=False)
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
            what="this move" if len(plan.moves) == 1 else "these moves",
            options=_options(sequential, replace_affinity, unpin_after, None),
            manual=True,
        )


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
    with service.Session.open(c.target, progress=progress_printer(c)) as session:
        view = service.plan_drain(session.state, node, live_only=live_only, sequential=sequential)
        plan = view.plan
        stuck = [s for s in plan.stays if s.node == node]
        for s in stuck:
            c.err.print(
                f"[yellow]cannot move {escape(s.namespace)}/{escape(s.vm)}: {escape(s.reason)}[/yellow]",
                highlight=False,
            )

        def cordon() -> None:
            if not no_cordon and service.cordon(session, node):
                c.err.print(f"cordoned {escape(node)}", highlight=False)

        executed = False
        if not plan.moves:
            if not dry_run and not no_cordon:
                require_terminal(yes, "cordoning the node")
                service.require_permissions(
                    session, service.plan_permissions(plan, cordon=node), what=f"cordoning {node}"
                )
                if confirm(c.err, f"no VM to move; cordon {escape(node)} anyway?", yes=yes):
                    cordon()
                    executed = True
        else:
            executed = None is not carry_out(
                c,
                session,
                plan,
                yes=yes,
                dry_run=dry_run,
                output=output,
                what=f"draining {node}",
                options=_options(sequential, False, False, None),
                before_execute=cordon,
                cordon=None if no_cordon else node,
                offered=view,
            )
        # The node stays non-empty (after the drain ran, or because nothing could move): exit 4.
        # A dry run, or a drain the user cancelled, exits 0.
        if stuck and not dry_run and (executed or not plan.moves):
            raise InfeasiblePlanError(
                f"{len(stuck)} VM(s) could not be moved off {node}",
                blocking=[f"{s.namespace}/{s.vm}: {s.reason}" for s in stuck],
            )


def _lifecycle(
    ctx: typer.Context, action: service.Action, vms: list[str], namespace: str, yes: bool, output: Output
) -> None:
    c = ctx_obj(ctx)
    refs = service.vm_refs(vms, namespace)
    _print_warnings(c, batch_warnings(len(refs)))
    with service.Session.open(c.target) as session:
        service.require_namespaces(session, [ns for ns, _ in refs])
        planned = service.lifecycle_plan(session.state, action, refs)  # unknown VMs: refused before asking
        require_terminal(yes, f"{action.value} of VMs")
        service.require_permissions(
            session, service.lifecycle_permissions(action, refs), what=f"{action.value} of {len(refs)} VM(s)"
        )
        (c.out if output is Output.table else c.err).print(
            Markdown(lifecycle_confirmation_markdown(action, planned.document["vms"]))
        )
        _print_warnings(c, [w for w in planned.warnings if w not in batch_warnings(len(refs))])
        if not confirm(c.err, f"{action.value} {len(refs)} VM(s)?", yes=yes):
            c.err.print("cancelled: nothing was changed")
            return

        def progress(ref: str, phase: str, message: str) -> None:
            c.err.print(f"{escape(ref)}: {escape(phase)} {escape(message)}", highlight=False)

        results = service.lifecycle(session, action, refs, report=progress)
    if output is Output.json:
        sys.stdout.write(json.dumps([dataclasses.asdict(r) for r in results], indent=2, default=str) + "\n")
    else:
        c.out.print(lifecycle_view(results))
        for result in results:
            c.out.print(Markdown(lifecycle_result_markdown(result)))
    missing = [r for r in results if r.status is service.LifecycleStatus.NOT_FOUND]
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
    _lifecycle(ctx, service.Action.START, vms, namespace, yes, output)


@app.command()
def stop(
    ctx: typer.Context,
    vms: Annotated[list[str], typer.Argument(help="VM names (or NAMESPACE/NAME).")],
    namespace: NamespaceOpt = "default",
    yes: YesOpt = False,
    output: OutputOpt = Output.table,
) -> None:
    """Stop VMs gracefully and verify they stopped."""
    _lifecycle(ctx, service.Action.STOP, vms, namespace, yes, output)


@app.command()
def restart(
    ctx: typer.Context,
    vms: Annotated[list[str], typer.Argument(help="VM names (or NAMESPACE/NAME).")],
    namespace: NamespaceOpt = "default",
    yes: YesOpt = False,
    output: OutputOpt = Output.table,
) -> None:
    """Restart VMs: stop → verify stopped → start → verify running."""
    _lifecycle(ctx, service.Action.RESTART, vms, namespace, yes, output)


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
    with service.Session.open(c.target) as session:
        service.require_namespaces(session, [ns])
        service.require_vms(session.state, [(ns, name)])
        require_terminal(yes, "unpinning")
        service.require_permissions(session, service.unpin_permissions(ns), what=f"unpinning {ns}/{name}")
        if not confirm(c.err, f"remove the node pin of {escape(ns)}/{escape(name)}?", yes=yes):
            c.err.print("cancelled: nothing was changed")
            return
        if service.unpin(session, ns, name):
            c.out.print(
                f"✓ {escape(ns)}/{escape(name)} unpinned: it can reschedule to any suitable node", highlight=False
            )
        else:
            c.out.print(f"{escape(ns)}/{escape(name)} has no node pin: nothing to do", highlight=False)


@app.command()
def status(ctx: typer.Context, output: OutputOpt = Output.table) -> None:
    """Show migrations in flight in the cluster and unfinished vm-rebalance executions."""
    c = ctx_obj(ctx)
    view = service.status(c.target, progress=progress_printer(c))
    if output is not Output.table:
        emit_document(c, view.to_document(), output)
        return
    if not view.migrations:
        c.out.print("no migration in flight")
    for m in view.migrations:
        c.out.print(
            f"{escape(m.namespace)}/{escape(m.vm)}: {escape(m.phase)} ({escape(m.source or '?')} → "
            f"{escape(m.target or '?')}) [{escape(m.name)}]",
            highlight=False,
        )
    for j in view.unfinished:
        counts = ", ".join(f"{n} {status}" for status, n in sorted(j.moves.items()))
        c.out.print(
            f"unfinished execution {j.plan_id} started {j.started_at}: {counts} — "
            "continue with `vm-rebalance apply PLAN --resume`",
            highlight=False,
        )
