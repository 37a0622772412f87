"""Commands that change the cluster: apply, move, drain, start / stop / restart, unpin, resume, status.

Each one shows what it will do, asks (unless --yes; refuses without a terminal), then
executes with live progress under the cluster's single-writer lock and prints the seeds' final
report, read back from the cluster. On the first failure it stops starting moves and asks what
applies: retry / retry cold / retry on another node / roll back / leave stopped / skip / abort
(without a terminal it stops with exit code 5, and a cold move whose VM could not start is rolled
back). Every execution is journalled: `vm-rebalance resume ID` continues it; a re-run of the same
`move` or `drain` after a crash continues the unfinished one instead of planning anew.
"""

import contextlib
import dataclasses
import json
import math
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
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
from vm_rebalance.model.cancel import CancelReason
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
    status_view,
)
from vm_rebalance.render.lifecycle import batch_warnings
from vm_rebalance.render.plan import render_plan

YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Approve without asking (needed without a terminal).")]
WaitLockOpt = Annotated[
    float,
    typer.Option(
        "--wait-lock",
        help="Seconds to wait for another vm-rebalance execution on this cluster to finish (default: do not "
        "wait; say who holds the lock).",
        callback=lambda v: _non_negative(v, "--wait-lock"),
    ),
]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Show what would happen; change nothing.")]
NamespaceOpt = Annotated[str, typer.Option("--namespace", "-n", help="Namespace of the VMs.")]
OutputOpt = Annotated[Output, typer.Option("--output", "-o", help="table or json (the final report).")]


def _non_negative(value: float, name: str) -> float:
    if not math.isfinite(value) or value < 0:
        raise typer.BadParameter(f"must be a finite number of seconds, 0 or more, not {value:g}", param_hint=name)
    return value


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


@contextlib.contextmanager
def _on_sigterm(handler: Callable[[], None]) -> Iterator[None]:
    """While executing, SIGTERM stops the execution the safe way (as Ctrl-C does) instead of killing it."""

    def handle(_signum: int, _frame: object) -> None:
        handler()

    try:
        previous = signal.signal(signal.SIGTERM, handle)
    except ValueError:  # not the main thread (a library caller): leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt() -> None:
    raise KeyboardInterrupt


def _resume_hint(journal_id: str | None, yes: bool) -> str | None:
    if journal_id is None:
        return None
    return f"vm-rebalance resume {journal_id}" + (" --yes" if yes else "")


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


_SHORTCUTS = {
    "retry elsewhere": service.FailureChoice.RETRY_ELSEWHERE,
    "elsewhere": service.FailureChoice.RETRY_ELSEWHERE,
    "other node": service.FailureChoice.RETRY_ELSEWHERE,
    "rollback": service.FailureChoice.ROLLBACK,
    "leave": service.FailureChoice.LEAVE_STOPPED,
    "cancel": service.FailureChoice.ABORT,
    "q": service.FailureChoice.ABORT,
    "quit": service.FailureChoice.ABORT,
}


def _ask_failure_choice(
    c: Context, run: service.Run, report: service.ExecutionReport
) -> tuple[service.FailureChoice, str | None]:
    """Show the report and the choices that apply to the first failure; the answer (and a node for "elsewhere")."""
    first = report.failed[0]
    c.out.print(report_view(report.to_document()))
    choices = run.choices()
    held = bool(run.held())
    c.err.print(
        failure_choices_text(
            first,
            list(report.not_attempted),
            [(choice.value, service.FAILURE_CHOICE_HELP[choice]) for choice in choices],
            held=held,
        )
    )
    by_name = {choice.value: choice for choice in choices}
    ask = ask_with(c.err)
    while True:
        answer = " ".join(ask(f"{' / '.join(by_name)}: ").lower().split())
        choice = by_name.get(answer) or _SHORTCUTS.get(answer)
        if choice is None or choice not in choices:
            c.err.print(f"answer {', '.join(by_name)}", highlight=False)
            continue
        if choice is not service.FailureChoice.RETRY_ELSEWHERE:
            return choice, None
        nodes = run.other_nodes()
        if not nodes:
            c.err.print("no other node can take this VM now; choose something else", highlight=False)
            continue
        node = ask(f"which node? ({escape(', '.join(nodes[:8]))}): ").strip()
        if node in ("", "cancel"):
            continue
        return choice, node


def _carry_on(c: Context, run: service.Run, interactive: bool) -> service.ExecutionReport:
    """Execute, then ask after each failure until it is done, the human stops, or nobody can be asked."""
    while True:
        report = _execute_with_progress(c, run)
        if not report.failed or report.interrupted or not interactive:
            return report
        choice, node = _ask_failure_choice(c, run, report)
        try:
            go_on = run.choose(choice, node=node)
        except (ConfigError, InfeasiblePlanError) as exc:
            c.err.print(f"[red]{escape(str(exc))}[/red]", highlight=False)
            if exc.hint:
                c.err.print(f"[dim]hint:[/dim] {escape(exc.hint)}", highlight=False)
            continue
        if not go_on:
            return run.report


def _show_plan(
    where: Console, session: service.Session, plan: Plan, *, manual: bool, offered: service.PlanView | None
) -> None:
    """Print the plan: seed 002's manual-mode summary, or the plan table with any alternatives offered."""
    if manual:
        where.print(Markdown(manual_plan_markdown(plan, session.state)))
    else:
        shown = offered.alternatives if offered is not None else ()
        where.print(render_plan(plan, limits=session.state.limits, alternatives=shown))


def _nothing_to_run(
    c: Context,
    session: service.Session,
    plan: Plan,
    warnings: list[str] | tuple[str, ...],
    *,
    dry_run: bool,
    manual: bool,
    offered: service.PlanView | None,
) -> bool:
    """Print the warnings; with no move or on a dry run, show the plan, say why nothing runs, return True."""
    _print_warnings(c, warnings)
    if not plan.moves:
        _show_plan(c.out, session, plan, manual=manual, offered=offered)
        c.err.print("nothing to do: no move is needed or possible", highlight=False)
        return True
    if dry_run:
        _show_plan(c.out, session, plan, manual=manual, offered=offered)
        c.err.print(
            f"dry run: {len(plan.moves)} move(s) in {len(plan.waves)} wave(s) would run "
            f"(live before cold, within {session.state.limits.parallel_per_cluster} per cluster and "
            f"{session.state.limits.parallel_outbound_per_node} per source node); nothing was changed",
            highlight=False,
        )
        return True
    return False


def _approved_plan(
    c: Context,
    session: service.Session,
    plan: Plan,
    *,
    yes: bool,
    output: Output,
    what: str,
    cordon: str | None,
    manual: bool,
    offered: service.PlanView | None,
) -> Plan | None:
    """Check terminal and permissions, show the plan and ask; None (said on stderr) when cancelled."""
    require_terminal(yes, what)
    service.require_permissions(session, service.plan_permissions(plan, cordon=cordon), what=what)
    # The plan is data in table mode (stdout); with -o json stdout is reserved for the report,
    # so the plan and every question go to stderr.
    _show_plan(c.out if output is Output.table else c.err, session, plan, manual=manual, offered=offered)
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
    return approved


def _execute(
    c: Context,
    run: service.Run,
    *,
    interactive: bool,
    before_execute: object,
) -> float:
    """Take the lock, run ``before_execute`` and execute with progress; the seconds it took."""
    started = time.monotonic()
    try:
        run.acquire()  # before the cordon: a second drain waits or stops here, having changed nothing
        if callable(before_execute):
            before_execute()
        with _on_sigterm(lambda: run.cancel.cancel(CancelReason.SHUTDOWN)):
            _carry_on(c, run, interactive)
    finally:
        run.close()  # a VM still held for a decision (Ctrl-C at the question) is rolled back
    return time.monotonic() - started


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
    command: str = "",
    wait_lock: float = 0.0,
) -> service.ExecutionReport | None:
    """Show, approve, execute, handle failures and report: the common path of apply/move/drain.

    ``manual`` (the `move` command): the plan is shown as seed 002's manual-mode summary and a single
    move's result as its per-move report. ``offered``: the plan's view, whose alternatives are shown
    and can be accepted at the approval prompt. Returns the final report, or None when nothing was executed
    (nothing to do, a dry run, or cancelled).
    """
    if _nothing_to_run(c, session, plan, warnings, dry_run=dry_run, manual=manual, offered=offered):
        return None
    approved = _approved_plan(
        c, session, plan, yes=yes, output=output, what=what, cordon=cordon, manual=manual, offered=offered
    )
    if approved is None:
        return None
    interactive = not yes and sys.stdin.isatty()
    run = service.Run(
        session,
        approved,
        # A cold move whose VM cannot start waits for the human's decision only when someone can answer.
        options=dataclasses.replace(options, hold_failed_cold_start=interactive),
        journal_id=journal_id,
        fresh=fresh_journal,
        warnings=warnings,
        command=command,
        wait_lock_seconds=wait_lock,
    )
    elapsed = _execute(c, run, interactive=interactive, before_execute=before_execute)
    return _report(
        c,
        session,
        run,
        output=output,
        manual=manual,
        interactive=interactive,
        yes=yes,
        unpin_after=options.unpin_after_cold,
        resume_hint=resume_hint,
        elapsed_seconds=elapsed,
    )


def _report(
    c: Context,
    session: service.Session,
    run: service.Run,
    *,
    output: Output,
    manual: bool,
    interactive: bool,
    yes: bool,
    unpin_after: bool,
    resume_hint: str | None,
    elapsed_seconds: float | None,
) -> service.ExecutionReport:
    """Print the run's final report (read back from the cluster) and turn what is left into the exit code."""
    report = run.report
    doc = report.to_document()
    if output is Output.json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    elif manual and len(report.outcomes) == 1 and not report.interrupted:
        _manual_result(c, session, report, interactive=interactive, unpin_after=unpin_after)
    else:
        c.out.print(report_view(doc))
        for outcome in report.failed if manual else ():
            c.out.print(Markdown(move_failure_markdown(outcome)))
    hint = resume_hint or _resume_hint(report.resume_command and run.journal_id, yes)
    if output is not Output.json and not (manual and len(report.outcomes) == 1) and not report.interrupted:
        next_step = resume_hint or (f"continue with `{hint}`" if hint else None)
        c.out.print(Markdown(improvements_markdown(doc, elapsed_seconds=elapsed_seconds, resume_hint=next_step)))
    if report.interrupted:
        if hint:
            c.err.print(f"continue with: {escape(hint)}", highlight=False)
        raise KeyboardInterrupt
    if not doc["complete"]:
        counts = doc["counts"]
        forbidden = [m for m in doc["moves"] if m.get("failure") == FailureKind.FORBIDDEN.value]
        if forbidden:
            # The cluster refused a write: that is exit 3 (design.md §3), whatever else the report says.
            raise ClusterForbiddenError(
                f"execution stopped: the cluster refused a write for {len(forbidden)} move(s) "
                f"({_move_names(forbidden)}); {counts['succeeded']} succeeded, "
                f"{counts['not attempted']} not attempted",
                hint="grant the missing permissions (see the RBAC section of the README)"
                + (f", then continue with: {hint}" if hint else ""),
            )
        summary = (
            f"{counts['succeeded']} succeeded, {counts['failed']} failed, {counts['not attempted']} not attempted, "
            f"{counts['skipped']} skipped"
        )
        stopped = "execution stopped" if counts["failed"] else "execution finished with skipped moves"
        raise ExecutionIncompleteError(
            f"{stopped}: {summary}",
            hint=f"fix the cause, then continue with: {hint}" if hint and counts["failed"] else hint,
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
    wait_lock: WaitLockOpt = 0.0,
) -> None:
    """Carry out a saved plan: re-validate every move against the cluster, ask, execute, report.

    Moves run wave by wave, live before cold, smallest first, within KubeVirt's limits.
    Progress is journalled: after a crash or Ctrl-C, `apply PLAN --resume` (or `vm-rebalance
    resume ID`) continues without repeating finished moves — those are read back from the
    cluster first. A plan made for another cluster is refused.
    """
    c = ctx_obj(ctx)
    saved = service.load_plan(plan_file)
    options = _options(sequential or saved.sequential, replace_affinity, unpin_after, timeout_per_gib)
    edits = [_retarget_pair(item) for item in retarget or ()]
    with service.Session.open(c.target, progress=progress_printer(c)) as session:
        prepared = service.prepare_apply(
            session,
            saved,
            resume=resume,
            dry_run=dry_run,
            skip=skip or (),
            retarget=edits,
            sequential=sequential,
            replace_affinity=replace_affinity,
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
            command=f"apply {Path(plan_file).name}",
            wait_lock=wait_lock,
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
        str | None,
        typer.Option(
            "--to",
            help="Target node of the VMs that do not name their own (VM=NODE). Without it, live moves go where "
            "the scheduler chooses.",
        ),
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
    wait_lock: WaitLockOpt = 0.0,
) -> None:
    """Move named VMs to named nodes: live when the VM's storage allows it, cold otherwise.

    `move web-01 --to worker-05`, or several at once with their own targets:
    `move prod/web-01=worker-05 prod/db-01=worker-03`. Validates like the seeds (VM exists, not
    already there, storage, target Ready and not cordoned, plus taints, selectors, affinity and
    capacity), shows what will happen (steps, downtime, rollback), asks, moves, and reports what
    the cluster shows afterwards. After a cold move it asks whether to keep the node pin.
    Batches above 5 VMs get a warning, above 10 a strong recommendation to split. A VM's own
    node pin that excludes the target is replaced only with --replace-affinity (shown old → new);
    a pin vm-rebalance added earlier simply moves along. Run again after a crash, it continues
    the unfinished move (restoring a VM it had stopped) before anything else.
    """
    c = ctx_obj(ctx)
    untargeted = [item for item in vms if "=" not in item] if not (to or "").strip() else []
    if not untargeted:
        requests = service.move_requests(vms, to, namespace, method)
    command = "move " + " ".join(vms) + (f" --to {to}" if to else "") + f" -n {namespace}"
    with service.Session.open(c.target, progress=progress_printer(c)) as session:
        chosen: list[tuple[str, str]] = []
        if untargeted:
            # No --to: for live moves the scheduler decides (seed 002); a cold move needs a target.
            if method == "cold":
                raise ConfigError("a cold move needs a target node: give --to NODE")
            chosen = service.vm_refs(untargeted, namespace)
            service.require_namespaces(session, [ns for ns, _ in chosen])
            expected = service.scheduler_targets(session.state, chosen)
            items = [f"{ns}/{name}={expected[(ns, name)]}" for ns, name in chosen]
            requests = service.move_requests(items + [i for i in vms if "=" in i], None, namespace, method)
        service.require_namespaces(session, [r.namespace for r in requests])
        if not dry_run and _continue_unfinished(
            c, session, [(r.namespace, r.vm) for r in requests], yes, output, wait_lock
        ):
            return
        view = service.plan_moves(session.state, requests, sequential=sequential, replace_affinity=replace_affinity)
        plan = view.plan
        if chosen:
            plan = service.scheduler_chooses(plan, chosen)
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
            warnings=plan.warnings,
            command=command,
            wait_lock=wait_lock,
        )


@app.command()
def drain(
    ctx: typer.Context,
    node: Annotated[str, typer.Argument(help="The node to empty of VMs.")],
    no_cordon: Annotated[bool, typer.Option("--no-cordon", help="Do not cordon the node first.")] = False,
    live_only: Annotated[bool, typer.Option("--live-only", help="Leave VMs that cannot move live.")] = False,
    sequential: Annotated[bool, typer.Option("--sequential", help="One move at a time.")] = False,
    replace_affinity: Annotated[
        bool,
        typer.Option("--replace-affinity", help="Replace VMs' own node pins that keep them on this node (old → new)."),
    ] = False,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    output: OutputOpt = Output.table,
    wait_lock: WaitLockOpt = 0.0,
) -> None:
    """Move every VM off a node (for maintenance): cordon it, plan with the drain goal, apply.

    What cannot move is listed with its reason. Running VMs with RWO storage move cold. A VM
    that vm-rebalance pinned to the node earlier is re-pinned to its new node; one pinned there by
    its own node affinity moves only with --replace-affinity (the plan shows old → new). Run again
    after a crash, it continues the unfinished drain first.
    """
    c = ctx_obj(ctx)
    with service.Session.open(c.target, progress=progress_printer(c)) as session:
        on_node = [(v.namespace, v.name) for v in session.state.vms if v.node == node or v.pinned_to == node]
        if not dry_run and _continue_unfinished(c, session, on_node, yes, output, wait_lock, f"drain {node}"):
            return
        view = service.plan_drain(
            session.state, node, live_only=live_only, sequential=sequential, replace_affinity=replace_affinity
        )
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
            _print_warnings(c, plan.warnings)
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
                warnings=plan.warnings,
                options=_options(sequential, replace_affinity, False, None),
                before_execute=cordon,
                cordon=None if no_cordon else node,
                offered=view,
                command=f"drain {node}",
                wait_lock=wait_lock,
            )
        # The node stays non-empty (after the drain ran, or because nothing could move): exit 4.
        # A dry run, or a drain the user cancelled, exits 0.
        if stuck and not dry_run and (executed or not plan.moves):
            raise InfeasiblePlanError(
                f"{len(stuck)} VM(s) could not be moved off {node}",
                blocking=[f"{s.namespace}/{s.vm}: {s.reason}" for s in stuck],
            )


def _lifecycle(
    ctx: typer.Context,
    action: service.Action,
    vms: list[str],
    namespace: str,
    yes: bool,
    output: Output,
    wait_lock: float = 0.0,
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

        command = f"{action.value} " + " ".join(f"{ns}/{name}" for ns, name in refs)
        journal_id = service.lifecycle_journal_id(action, refs)
        try:
            with _on_sigterm(_interrupt):
                run = service.lifecycle_run(
                    session,
                    action,
                    refs,
                    report=progress,
                    command=command,
                    wait_lock_seconds=wait_lock,
                    journal_id=journal_id,
                )
        except KeyboardInterrupt:
            c.err.print(f"continue with: {escape(_resume_hint(journal_id, yes) or '')}", highlight=False)
            raise
    _lifecycle_report(c, action, run, output, yes)


def _lifecycle_report(c: Context, action: service.Action, run: service.LifecycleRun, output: Output, yes: bool) -> None:
    results = list(run.results)
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
            + "; ".join(f"{r.name}: {r.message}" for r in failed),
            hint=f"after fixing the cause: {_resume_hint(run.journal_id, yes)}" if run.journal_id else None,
        )


@app.command()
def start(
    ctx: typer.Context,
    vms: Annotated[list[str], typer.Argument(help="VM names (or NAMESPACE/NAME).")],
    namespace: NamespaceOpt = "default",
    yes: YesOpt = False,
    output: OutputOpt = Output.table,
    wait_lock: WaitLockOpt = 0.0,
) -> None:
    """Start VMs and verify they run (already running is reported, not an error).

    A VM that should run but does not (ErrorUnschedulable, CrashLoopBackOff, …) is re-created and
    verified; when it still cannot run, the cause and the fix are named.
    """
    _lifecycle(ctx, service.Action.START, vms, namespace, yes, output, wait_lock)


@app.command()
def stop(
    ctx: typer.Context,
    vms: Annotated[list[str], typer.Argument(help="VM names (or NAMESPACE/NAME).")],
    namespace: NamespaceOpt = "default",
    yes: YesOpt = False,
    output: OutputOpt = Output.table,
    wait_lock: WaitLockOpt = 0.0,
) -> None:
    """Stop VMs gracefully and verify they stopped."""
    _lifecycle(ctx, service.Action.STOP, vms, namespace, yes, output, wait_lock)


@app.command()
def restart(
    ctx: typer.Context,
    vms: Annotated[list[str], typer.Argument(help="VM names (or NAMESPACE/NAME).")],
    namespace: NamespaceOpt = "default",
    yes: YesOpt = False,
    output: OutputOpt = Output.table,
    wait_lock: WaitLockOpt = 0.0,
) -> None:
    """Restart VMs: stop → verify stopped → start → verify running (a VM that should run but does not is re-created)."""
    _lifecycle(ctx, service.Action.RESTART, vms, namespace, yes, output, wait_lock)


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


def _continue_unfinished(
    c: Context,
    session: service.Session,
    refs: list[tuple[str, str]],
    yes: bool,
    output: Output,
    wait_lock: float,
    command: str | None = None,
) -> bool:
    """A re-run after a crash: continue the unfinished execution that touches these VMs; True when one ran.

    Planning anew would see a VM that the crashed run stopped as "stopped" and merely pin it: the
    unfinished execution must be finished (or its VM restored) first.
    """
    unfinished = service.unfinished_for(refs, command=command)
    if not unfinished:
        return False
    journal = unfinished[0]
    what = journal.command or f"execution {journal.plan_id}"
    c.err.print(
        f"[yellow]an earlier run did not finish: {escape(what)} (execution {escape(journal.plan_id)}, started "
        f"{escape(journal.started_at)}) — continuing it first[/yellow]",
        highlight=False,
    )
    _resume_plan(c, session, journal.plan_id, yes=yes, output=output, wait_lock=wait_lock)
    return True


def _resume_plan(
    c: Context, session: service.Session, journal_id: str, *, yes: bool, output: Output, wait_lock: float
) -> service.ExecutionReport:
    interactive = not yes and sys.stdin.isatty()
    run = service.Run.resume(session, journal_id, wait_lock_seconds=wait_lock, hold_failed_cold_start=interactive)
    _print_warnings(c, run.warnings)
    require_terminal(yes, f"resuming execution {journal_id}")
    (c.out if output is Output.table else c.err).print(render_plan(run.plan, limits=session.state.limits))
    if not confirm(c.err, f"continue execution {escape(journal_id)}?", yes=yes):
        run.close()
        c.err.print("cancelled: nothing was changed", highlight=False)
        raise typer.Exit(0)
    started = time.monotonic()
    try:
        with _on_sigterm(lambda: run.cancel.cancel(CancelReason.SHUTDOWN)):
            _carry_on(c, run, interactive)
    finally:
        run.close()
    return _report(
        c,
        session,
        run,
        output=output,
        manual=False,
        interactive=interactive,
        yes=yes,
        unpin_after=run.options.unpin_after_cold,
        resume_hint=None,
        elapsed_seconds=time.monotonic() - started,
    )


@app.command()
def resume(
    ctx: typer.Context,
    execution: Annotated[
        str, typer.Argument(help="The execution's id (printed when it stopped; `status` lists them).")
    ],
    yes: YesOpt = False,
    output: OutputOpt = Output.table,
    wait_lock: WaitLockOpt = 0.0,
) -> None:
    """Continue an unfinished execution of apply, move, drain or a start / stop / restart batch.

    Its plan, options and command come from its journal (no plan file needed). Moves an earlier
    run finished are read back from the cluster first and redone if the VM is not where they put
    it; a cold move left half-way is finished or rolled back; a VM a restart stopped is started.
    An execution made against another cluster is refused.
    """
    c = ctx_obj(ctx)
    journal = service.open_execution(execution.strip())
    with service.Session.open(c.target, progress=progress_printer(c)) as session:
        if journal.kind.value == "lifecycle":
            service.require_same_cluster(journal.cluster, session.state.identity, what=f"execution {execution}")
            require_terminal(yes, f"resuming execution {execution}")
            if not confirm(c.err, f"continue {escape(journal.command or execution)}?", yes=yes):
                c.err.print("cancelled: nothing was changed", highlight=False)
                return

            def progress(ref: str, phase: str, message: str) -> None:
                c.err.print(f"{escape(ref)}: {escape(phase)} {escape(message)}", highlight=False)

            run = service.resume_lifecycle(session, journal.plan_id, report=progress, wait_lock_seconds=wait_lock)
            action = service.Action(str(journal.options.get("action") or "start"))
            _lifecycle_report(c, action, run, output, yes)
            return
        _resume_plan(c, session, journal.plan_id, yes=yes, output=output, wait_lock=wait_lock)


@app.command()
def status(
    ctx: typer.Context,
    output: OutputOpt = Output.table,
    clear: Annotated[
        list[str] | None,
        typer.Option(
            "--clear",
            help="Set an execution aside so it is no longer listed or resumed: an id, 'finished' (every finished "
            "journal) or 'all' (every unfinished one). One that may have left a VM not running is refused.",
        ),
    ] = None,
) -> None:
    """Show migrations in flight in the cluster and unfinished vm-rebalance executions (with their command and age)."""
    c = ctx_obj(ctx)
    if clear:
        cleared = service.clear_executions([x.strip() for x in clear])
        c.out.print(
            f"cleared {len(cleared)} execution(s)" + (f": {escape(', '.join(cleared))}" if cleared else ""),
            highlight=False,
        )
        return
    view = service.status(c.target, progress=progress_printer(c))
    if output is not Output.table:
        emit_document(c, view.to_document(), output)
        return
    c.out.print(status_view(view.to_document()))
