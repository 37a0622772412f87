"""Executing an approved plan: the run, the choices after a failure, the final report, getting a
saved plan ready (edits, re-validation, the journal) for `apply`, and resuming any execution.

A ``Run`` is one approved plan being carried out. ``execute`` runs it until it finishes, stops at
the first failure, or is interrupted; after a failure the front-end asks the human which of
``choices()`` to take and calls ``choose``, then ``execute`` again. The report always covers every
move of the approved plan across all attempts, each verified against the cluster.

Safety, whoever drives the run (the CLI, the MCP server, the controller):

* the cluster's single-writer lock (a Lease, kube/lease.py) is held from the first ``execute``
  until ``close``; a second execution waits or stops with a message naming the holder;
* the journal keeps the plan, the command, the options and the cluster's identity, so
  `vm-rebalance resume ID` (`Run.resume`) continues any execution without the user's files and
  refuses to continue it against another cluster;
* a cold move whose VM cannot start on its target is rolled back unless the caller asked to hold
  it for a decision (``hold_failed_cold_start``); ``close`` rolls back whatever is still held, so
  no run ends with a VM down that it stopped — unless the human chose "leave stopped".
"""

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, assert_never

from vm_rebalance.errors import ClusterError, ConfigError, InfeasiblePlanError
from vm_rebalance.executor.engine import ExecutionInterruptedError, Executor, plan_id
from vm_rebalance.executor.journal import Journal, JournalKind, RecordStatus
from vm_rebalance.executor.runners import ExecutionOptions, Resolution
from vm_rebalance.kube.lease import WriterLock
from vm_rebalance.model import ClusterState, MigrationMethod, Move, Plan, plan_from_document, plan_to_document
from vm_rebalance.model.cancel import CancelReason, CancelToken
from vm_rebalance.model.execution import FailureKind, MoveStatus, Outcome, Report, ignore
from vm_rebalance.model.plan import COLD_DOWNTIME, PlanDocumentError
from vm_rebalance.planner import retarget_move, skip_move
from vm_rebalance.planner.eligibility import fit_reasons
from vm_rebalance.render.execution import report_document
from vm_rebalance.service.identity import require_same_cluster
from vm_rebalance.service.planning import revalidate
from vm_rebalance.service.requests import require_plan_names
from vm_rebalance.service.session import Session

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionReport:
    """What an execution did: an outcome per move (verified against the cluster), the cluster before and after."""

    plan: Plan
    outcomes: tuple[Outcome, ...]
    before: ClusterState
    after: ClusterState | None
    warnings: tuple[str, ...] = ()
    interrupted: tuple[str, ...] = ()
    """Interrupted (Ctrl-C, cancel): where each VM in flight was left."""
    journal_id: str | None = None
    """The execution's id: `vm-rebalance resume ID` continues it."""

    @property
    def complete(self) -> bool:
        """Every move succeeded (or was already done)."""
        return all(o.ok for o in self.outcomes)

    @property
    def failed(self) -> tuple[Outcome, ...]:
        """The failed moves (the executor stops at the first one)."""
        return tuple(o for o in self.outcomes if o.status is MoveStatus.FAILED)

    @property
    def skipped(self) -> tuple[Outcome, ...]:
        """Moves the user chose to skip (not failures)."""
        return tuple(o for o in self.outcomes if o.status is MoveStatus.SKIPPED)

    @property
    def not_attempted(self) -> tuple[Move, ...]:
        """Moves that did not start because execution stopped."""
        return tuple(o.move for o in self.outcomes if o.status is MoveStatus.NOT_ATTEMPTED)

    @property
    def resume_command(self) -> str | None:
        """The command that continues this execution (None when there is nothing to continue)."""
        if self.journal_id is None or self.complete:
            return None
        return f"vm-rebalance resume {self.journal_id}"

    def to_document(self) -> dict[str, Any]:
        """The RebalanceReport document (`-o json` of apply / move / drain / resume)."""
        doc = report_document(
            self.plan,
            self.outcomes,
            self.before,
            self.after,
            warnings=self.warnings,
            interrupted=self.interrupted,
        )
        doc["execution"] = self.journal_id
        doc["resume"] = self.resume_command
        return doc


ExecutionResult = ExecutionReport
"""The earlier name of ExecutionReport (library users)."""


def options_document(options: ExecutionOptions) -> dict[str, Any]:
    """Execution options as the journal keeps them."""
    return dataclasses.asdict(options)


def options_from_document(doc: dict[str, Any]) -> ExecutionOptions:
    """Execution options back from a journal (unknown keys ignored, missing ones default)."""
    known = {f.name for f in dataclasses.fields(ExecutionOptions)}
    return ExecutionOptions(**{k: v for k, v in doc.items() if k in known})


def execute_plan(
    session: Session,
    plan: Plan,
    *,
    options: ExecutionOptions = ExecutionOptions(),
    report: Report = ignore,
    journal_dir: Path | None = None,
    fresh: bool = True,
    executor: Executor | None = None,
    warnings: Sequence[str] = (),
    cancel: CancelToken | None = None,
) -> ExecutionReport:
    """Carry out an (already validated and approved) plan; re-read the cluster afterwards.

    ``fresh=False`` continues the plan's journal (a retry or resume) instead of starting over;
    an ``executor`` made earlier (a ``Run`` keeps one per approved plan) is reused. ``cancel``
    stops it the safe way when cancelled (an MCP cancel, a shutdown). This takes no lock: a
    ``Run`` does (use one unless the caller holds the cluster's single-writer lock itself).
    """
    before = session.state
    executor = executor or session.executor(plan, options=options, journal_dir=journal_dir, fresh=fresh, cancel=cancel)
    interrupted: tuple[str, ...] = ()
    try:
        outcomes = executor.run(plan, report)
    except ExecutionInterruptedError as exc:
        outcomes, interrupted = exc.outcomes, tuple(exc.states)
    try:
        after: ClusterState | None = session.refresh()
    except ClusterError:
        after = None
    return ExecutionReport(
        plan=plan,
        outcomes=tuple(outcomes),
        before=before,
        after=after,
        warnings=tuple(warnings),
        interrupted=interrupted,
        journal_id=executor.journal.plan_id,
    )


class FailureChoice(StrEnum):
    """What the human may do after a move failed (seed 001 step 5, and the cold-move safety net)."""

    RETRY = "retry"
    RETRY_COLD = "retry cold"
    RETRY_ELSEWHERE = "retry on another node"
    ROLLBACK = "roll back"
    """A cold move held after its start failed: restore the VM's original placement, start it, verify."""
    LEAVE_STOPPED = "leave stopped"
    """A cold move held after its start failed: stop the VM and leave it so (pinned to the target)."""
    SKIP = "skip"
    ABORT = "abort"


FAILURE_CHOICE_HELP: dict[FailureChoice, str] = {
    FailureChoice.RETRY: "retry the failed move with the same settings",
    FailureChoice.RETRY_COLD: "retry it as a cold migration (~30-60s downtime)",
    FailureChoice.RETRY_ELSEWHERE: "retry it to another node (you name it)",
    FailureChoice.ROLLBACK: "start the VM again with its original placement and stop here",
    FailureChoice.LEAVE_STOPPED: "stop the VM and leave it stopped, pinned to the target (you start it later)",
    FailureChoice.SKIP: "skip it and continue with the rest (a held VM is rolled back first)",
    FailureChoice.ABORT: "stop here (a held VM is rolled back first)",
}


class Run:
    """One approved plan being carried out, across the attempts a failure may need."""

    def __init__(
        self,
        session: Session,
        plan: Plan,
        *,
        options: ExecutionOptions = ExecutionOptions(),
        journal_id: str | None = None,
        fresh: bool = True,
        warnings: Sequence[str] = (),
        cancel: CancelToken | None = None,
        command: str = "",
        lock: bool = True,
        wait_lock_seconds: float = 0.0,
    ) -> None:
        self.session = session
        self.plan = plan
        """The approved plan: the report lists its moves."""
        self.options = options
        self.warnings = tuple(warnings)
        self.cancel = cancel if cancel is not None else CancelToken()
        self.executor = session.executor(plan, options=options, journal_id=journal_id, fresh=fresh, cancel=self.cancel)
        self.command = command
        self._lock_wanted = lock
        self._wait_lock = wait_lock_seconds
        self._lock: WriterLock | None = None
        self._current = plan
        self._before = session.state
        self._outcomes: dict[int, Outcome] = {}
        self._last: ExecutionReport | None = None
        self._record_plan(fresh)

    # ------------------------------------------------------------------------------- journal

    def _record_plan(self, fresh: bool) -> None:
        """Keep what `resume` needs in the journal (kept as it was when continuing one)."""
        journal = self.executor.journal
        if journal.plan is not None and not fresh:
            return
        journal.kind = JournalKind.PLAN
        journal.plan = plan_to_document(self.plan)
        journal.command = self.command or journal.command
        journal.options = options_document(self.options)
        journal.cluster = self.session.state.identity

    @property
    def journal_id(self) -> str:
        """The id its journal is kept under (what `resume` finds)."""
        return self.executor.journal.plan_id

    # ---------------------------------------------------------------------------------- lock

    def acquire(self) -> None:
        """Take the cluster's single-writer lock (done by the first `execute`; a lost lock cancels the run).

        Raises:
            WriterLockHeldError: another execution holds it (after waiting ``wait_lock_seconds``).
            ClusterError: the lock cannot be read or written.
        """
        if not self._lock_wanted or self._lock is not None:
            return
        what = self.command or f"executing plan {self.journal_id}"
        lock = self.session.writer_lock(f"{what} (execution {self.journal_id})")
        lock.acquire(wait_seconds=self._wait_lock)
        lock.keep_renewing(lambda: self.cancel.cancel(CancelReason.LEASE_LOST))
        self._lock = lock

    def close(self) -> None:
        """Roll back any move still held for a decision, then release the lock."""
        try:
            self.settle()
        finally:
            if self._lock is not None:
                self._lock.release()
                self._lock = None

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------- execute

    def execute(self, report: Report = ignore) -> ExecutionReport:
        """Run what is left; returns the report of every move so far."""
        self.acquire()
        self.executor.journal.save()
        result = execute_plan(self.session, self._current, options=self.options, report=report, executor=self.executor)
        for outcome in result.outcomes:
            self._outcomes[outcome.move.id] = outcome
        self._last = result
        return self.report

    @property
    def report(self) -> ExecutionReport:
        """Every move of the approved plan that has an outcome, as it stands."""
        last = self._last
        return ExecutionReport(
            plan=self.plan,
            outcomes=tuple(self._outcomes[m.id] for m in self.plan.moves if m.id in self._outcomes),
            before=self._before,
            after=last.after if last is not None else None,
            warnings=self.warnings,
            interrupted=last.interrupted if last is not None else (),
            journal_id=self.journal_id,
        )

    # ---------------------------------------------------------------------- after a failure

    def held(self) -> tuple[Outcome, ...]:
        """Failed cold moves whose VM is held for the human's decision (not running, pinned to the target)."""
        ids = set(self.executor.held())
        return tuple(o for o in self.report.failed if o.move.id in ids)

    def choices(self) -> tuple[FailureChoice, ...]:
        """The choices that make sense for the first failed move (empty: nothing failed)."""
        failed = self.report.failed
        if not failed:
            return ()
        first = failed[0]
        if self.held():
            return (
                FailureChoice.RETRY,
                FailureChoice.RETRY_ELSEWHERE,
                FailureChoice.ROLLBACK,
                FailureChoice.LEAVE_STOPPED,
                FailureChoice.SKIP,
                FailureChoice.ABORT,
            )
        out = [FailureChoice.RETRY]
        if first.move.method is MigrationMethod.LIVE:
            out.append(FailureChoice.RETRY_COLD)
        out += [FailureChoice.RETRY_ELSEWHERE, FailureChoice.SKIP, FailureChoice.ABORT]
        return tuple(out)

    def other_nodes(self) -> tuple[str, ...]:
        """Nodes the first failed move's VM could go to instead (re-read from the cluster), best first."""
        failed = self.report.failed
        if not failed:
            return ()
        move = failed[0].move
        try:
            state = self.session.refresh()
        except ClusterError:
            state = self.session.state
        vm = state.vm(move.namespace, move.vm)
        if vm is None:
            return ()
        fits = [
            n
            for n in state.nodes
            if n.name not in (move.target, move.source) and not [str(r) for r in fit_reasons(vm, n, state)]
        ]
        fits.sort(key=lambda n: (n.requested.cpu_millicores / max(1, n.allocatable.cpu_millicores), n.name))
        return tuple(n.name for n in fits)

    def choose(self, choice: FailureChoice, *, node: str | None = None) -> bool:
        """Act on the human's choice after a failure; True when the run should continue (execute again).

        Raises:
            ConfigError: ``choice`` does not apply to this failure, or RETRY_ELSEWHERE names no usable node.
        """
        failed = self.report.failed
        if not failed:
            return False
        move = failed[0].move
        if choice not in self.choices():
            raise ConfigError(
                f"'{choice.value}' does not apply to this failure",
                hint="choose one of: " + ", ".join(c.value for c in self.choices()),
            )
        held = move.id in self.executor.held()
        match choice:
            case FailureChoice.RETRY:
                return True
            case FailureChoice.RETRY_COLD:
                self._replace_move(move.id, method=MigrationMethod.COLD, downtime=COLD_DOWNTIME)
                return True
            case FailureChoice.RETRY_ELSEWHERE:
                self._retarget(move, node)
                return True
            case FailureChoice.ROLLBACK:
                self._resolve(move, Resolution.ROLLBACK)
                return False
            case FailureChoice.LEAVE_STOPPED:
                self._resolve(move, Resolution.LEAVE_STOPPED)
                return False
            case FailureChoice.SKIP:
                if held:
                    self._resolve(move, Resolution.ROLLBACK)
                self.executor.mark_skipped(move)
                self._outcomes[move.id] = dataclasses.replace(
                    self._outcomes[move.id], status=MoveStatus.SKIPPED, failure=None, error="skipped by the user"
                )
                return True
            case FailureChoice.ABORT:
                if held:
                    self._resolve(move, Resolution.ROLLBACK)
                return False
        assert_never(choice)

    def settle(self) -> None:
        """Roll back every move still held for a decision (the default when nobody answers)."""
        for outcome in self.held():
            try:
                self._resolve(outcome.move, Resolution.ROLLBACK)
            except ClusterError as exc:
                log.warning("could not roll back %s/%s: %s", outcome.move.namespace, outcome.move.vm, exc)

    def _resolve(self, move: Move, resolution: Resolution) -> None:
        outcome = self.executor.resolve(move, resolution)
        self._outcomes[move.id] = outcome
        try:
            after: ClusterState | None = self.session.refresh()
        except ClusterError:
            after = None
        if self._last is not None:
            self._last = dataclasses.replace(self._last, after=after)

    def _replace_move(self, move_id: int, **changes: Any) -> None:
        self._current = dataclasses.replace(
            self._current,
            moves=tuple(dataclasses.replace(m, **changes) if m.id == move_id else m for m in self._current.moves),
        )
        # `resume` continues what the human chose, not the plan as first approved.
        self.executor.journal.plan = plan_to_document(self._current)
        self.executor.journal.save()

    def _retarget(self, move: Move, node: str | None) -> None:
        if not node:
            raise ConfigError("retry on another node needs the node", hint="e.g. " + ", ".join(self.other_nodes()[:3]))
        if node in (move.target,):
            raise ConfigError(f"{node} is the node the move just failed to reach", hint="use retry for the same node")
        source = self.executor.journal.record(move.id)
        origin = (source.source if source is not None else "") or move.source
        if node == origin:
            raise ConfigError(
                f"{node} is where the VM ran before the move", hint="choose roll back (or skip) to keep it there"
            )
        state = self.session.refresh()
        target = state.node(node)
        vm = state.vm(move.namespace, move.vm)
        if target is None:
            raise ConfigError(
                f"Target node '{node}' does not exist", hint="choose one of: " + ", ".join(self.other_nodes())
            )
        if vm is None:
            raise ConfigError(f"VM '{move.vm}' no longer exists in namespace '{move.namespace}'")
        reasons = [str(r) for r in fit_reasons(vm, target, state)]
        if reasons:
            raise InfeasiblePlanError(
                f"{move.namespace}/{move.vm} cannot go to {node}: {'; '.join(reasons)}",
                blocking=reasons,
                hint="choose one of: " + (", ".join(self.other_nodes()) or "(no other node fits now)"),
            )
        self._replace_move(move.id, target=node)
        self.plan = dataclasses.replace(
            self.plan,
            moves=tuple(dataclasses.replace(m, target=node) if m.id == move.id else m for m in self.plan.moves),
        )

    # --------------------------------------------------------------------------------- resume

    @classmethod
    def resume(
        cls,
        session: Session,
        journal_id: str,
        *,
        journal_dir: Path | None = None,
        options: ExecutionOptions | None = None,
        cancel: CancelToken | None = None,
        lock: bool = True,
        wait_lock_seconds: float = 0.0,
        hold_failed_cold_start: bool | None = None,
    ) -> "Run":
        """The unfinished execution ``journal_id``, ready to continue (its plan and options from its journal).

        ``hold_failed_cold_start`` overrides the journalled option (whether someone can be asked now).

        Moves the journal calls done are verified against the cluster when it runs; moves that
        never started are re-validated first (those that no longer validate are left out, with
        a warning).

        Raises:
            ConfigError: no such execution, it is finished or was cleared, it is a lifecycle batch
                (see `service.vms.resume_lifecycle`), it was made for another cluster, or its
                journal is unreadable.
        """
        journal = open_execution(journal_id, journal_dir=journal_dir)
        if journal.kind is not JournalKind.PLAN:
            raise ConfigError(f"execution {journal_id} is a lifecycle batch", hint="resume it with the same command")
        require_same_cluster(journal.cluster, session.state.identity, what=f"execution {journal_id}")
        if journal.plan is None:
            raise ConfigError(
                f"execution {journal_id} was recorded by an older vm-rebalance without its plan",
                hint="continue it with `vm-rebalance apply PLAN --resume` and its plan file",
            )
        try:
            plan = plan_from_document(journal.plan)
        except PlanDocumentError as exc:
            raise ConfigError(f"the plan kept with execution {journal_id} is unreadable: {exc}") from exc
        started = {r.id for r in journal.moves.values() if r.status is not RecordStatus.PENDING}
        checked = revalidate(session.state, plan, skip_ids=started)
        kept = tuple(sorted((*checked.plan.moves, *(m for m in plan.moves if m.id in started)), key=lambda m: m.id))
        resumed = dataclasses.replace(plan, moves=kept)
        options = options or options_from_document(journal.options)
        if hold_failed_cold_start is not None:
            options = dataclasses.replace(options, hold_failed_cold_start=hold_failed_cold_start)
        run = cls(
            session,
            resumed,
            options=options,
            journal_id=journal_id,
            fresh=False,
            warnings=checked.warnings,
            cancel=cancel,
            command=journal.command,
            lock=lock,
            wait_lock_seconds=wait_lock_seconds,
        )
        return run


def open_execution(journal_id: str, *, journal_dir: Path | None = None) -> Journal:
    """The journal of an unfinished execution.

    Raises:
        ConfigError: there is none under that id, it is finished or cleared, or it is unreadable.
    """
    journal = Journal.open(journal_id, directory=journal_dir)
    if not journal.exists:
        raise ConfigError(
            f"no execution {journal_id} on this machine", hint="`vm-rebalance status` lists unfinished executions"
        )
    if journal.finished:
        raise ConfigError(f"execution {journal_id} is finished: nothing to resume")
    if journal.abandoned:
        raise ConfigError(f"execution {journal_id} was cleared: nothing to resume")
    return journal


def unfinished_for(
    refs: Sequence[tuple[str, str]], *, command: str | None = None, journal_dir: Path | None = None
) -> list[Journal]:
    """Unfinished executions (of plans) that touch any of these VMs, or were started by ``command``, oldest first.

    A re-run of `move` or `drain` after a crash continues one of these instead of planning anew
    (the VM it stopped must be restored, not reported as already "moved").
    """
    from vm_rebalance.executor.journal import FileJournalStore, unfinished_journals

    wanted = set(refs)
    found = [
        j
        for j in unfinished_journals(FileJournalStore(journal_dir))
        if j.kind is JournalKind.PLAN
        and (
            any((r.namespace, r.vm) in wanted for r in j.moves.values())
            or (command is not None and j.command == command)
        )
    ]
    return sorted(found, key=lambda j: j.started_at)


# ------------------------------------------------------------------------------ apply


@dataclass(frozen=True, slots=True, kw_only=True)
class ApplyPreparation:
    """A saved plan made ready to execute now."""

    plan: Plan
    """The user's edits applied and re-validated (done moves of a resumed run are kept for the report)."""
    warnings: tuple[str, ...]
    """Why moves were dropped, and what else validation noticed."""
    dropped_ids: tuple[int, ...]
    """Moves that no longer validate (left out)."""
    done: int
    """Moves an earlier run already finished (resume; verified against the cluster)."""
    journal_id: str
    """The saved plan's id: its journal, kept across edits, so that `--resume` finds it."""


def _still_done(state: ClusterState, move: Move) -> bool:
    """Whether the cluster (as read) still shows a move an earlier run finished: its VM on the target."""
    vm = state.vm(move.namespace, move.vm)
    if vm is None:
        return False
    if not move.running:
        return not vm.running
    return vm.running and vm.node == move.target


def prepare_apply(
    session: Session,
    saved: Plan,
    *,
    resume: bool = False,
    dry_run: bool = False,
    skip: Sequence[int] = (),
    retarget: Sequence[tuple[int, str]] = (),
    sequential: bool = False,
    journal_dir: Path | None = None,
    replace_affinity: bool = False,
) -> ApplyPreparation:
    """The user's edits, then re-validation against the cluster as it is now (see ``Revalidation``).

    A plan made for another cluster is refused. On ``resume``, moves the journal records as
    running are not re-validated (their VM may be migrating or stopped between the steps of a
    cold move): the executor finishes them from the journal. Moves it records as succeeded are
    re-read from the cluster: those still done stay in the plan for the report, the others are
    re-validated like any move (the journal's word is not trusted).

    Raises:
        ConfigError: the plan was started before and did not finish (and this is no resume), it was
            made for another cluster, or an edit names an unknown move. InfeasiblePlanError: an edit
            breaks a rule.
    """
    require_same_cluster(saved.cluster, session.state.identity, what="this plan")
    journal_id = plan_id(saved)
    journal = Journal.open(journal_id, directory=journal_dir)
    if journal.exists and journal.open_work and not resume and not dry_run:
        raise ConfigError(
            f"this plan was started before and did not finish (execution {journal_id})",
            hint=f"continue it with --resume (or `vm-rebalance resume {journal_id}`), or re-plan",
        )
    state = session.state
    plan = saved
    for move_id in skip:
        plan = skip_move(state, plan, move_id)
    for move_id, node in retarget:
        plan = retarget_move(state, plan, move_id, node)
    records = list(journal.moves.values()) if resume else []
    by_id = {m.id: m for m in plan.moves}
    done = {
        rec.id
        for rec in records
        if rec.status is RecordStatus.SUCCEEDED and rec.id in by_id and _still_done(state, by_id[rec.id])
    }
    in_flight = {rec.id for rec in records if rec.status is RecordStatus.RUNNING}
    require_plan_names(state, plan, skip_ids=done | in_flight)  # unknown VMs or nodes: bad input (exit 2)
    checked = revalidate(state, plan, skip_ids=done | in_flight, replace_affinity=replace_affinity)
    validated = checked.plan
    if done or in_flight:
        kept = tuple(m for m in plan.moves if m.id in done | in_flight)
        validated = dataclasses.replace(validated, moves=tuple(sorted(kept + validated.moves, key=lambda m: m.id)))
    if sequential:
        validated = dataclasses.replace(validated, sequential=True)
    return ApplyPreparation(
        plan=validated,
        warnings=checked.warnings,
        dropped_ids=checked.dropped_ids,
        done=len(done),
        journal_id=journal_id,
    )


def failure_kind_of(report: ExecutionReport) -> FailureKind | None:
    """The failure kind of the first failed move (None: nothing failed)."""
    failed = report.failed
    return failed[0].failure if failed else None
