"""Executing an approved plan: the run, the seeds' choices after a failure, the final report,
and getting a saved plan ready (edits, re-validation, the journal) for `apply`.

A ``Run`` is one approved plan being carried out. ``execute`` runs it until it finishes, stops at
the first failure, or is interrupted; after a failure the front-end asks the human and calls
``choose`` with retry / retry cold / skip / abort, then ``execute`` again. The report always
covers every move of the approved plan across all attempts.
"""

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, assert_never

from vm_rebalance.errors import ClusterError, ConfigError
from vm_rebalance.executor.engine import ExecutionInterruptedError, Executor, plan_id
from vm_rebalance.executor.journal import Journal
from vm_rebalance.executor.runners import ExecutionOptions
from vm_rebalance.model import ClusterState, MigrationMethod, Move, Plan
from vm_rebalance.model.cancel import CancelToken
from vm_rebalance.model.execution import MoveStatus, Outcome, Report, ignore
from vm_rebalance.model.plan import COLD_DOWNTIME
from vm_rebalance.planner import retarget_move, skip_move
from vm_rebalance.render.execution import report_document
from vm_rebalance.service.planning import revalidate
from vm_rebalance.service.requests import require_plan_names
from vm_rebalance.service.session import Session


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionReport:
    """What an execution did: an outcome per move, the cluster before and after."""

    plan: Plan
    outcomes: tuple[Outcome, ...]
    before: ClusterState
    after: ClusterState | None
    warnings: tuple[str, ...] = ()
    interrupted: tuple[str, ...] = ()
    """Interrupted (Ctrl-C, cancel): where each VM in flight was left."""

    @property
    def complete(self) -> bool:
        """Every move succeeded (or was already done)."""
        return all(o.ok for o in self.outcomes)

    @property
    def failed(self) -> tuple[Outcome, ...]:
        """The failed moves (the executor stops at the first one)."""
        return tuple(o for o in self.outcomes if o.status is MoveStatus.FAILED)

    @property
    def not_attempted(self) -> tuple[Move, ...]:
        """Moves that did not start because execution stopped."""
        return tuple(o.move for o in self.outcomes if o.status is MoveStatus.NOT_ATTEMPTED)

    def to_document(self) -> dict[str, Any]:
        """The RebalanceReport document (`-o json` of apply / move / drain)."""
        return report_document(
            self.plan,
            self.outcomes,
            self.before,
            self.after,
            warnings=self.warnings,
            interrupted=self.interrupted,
        )


ExecutionResult = ExecutionReport
"""The earlier name of ExecutionReport (library users)."""


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
    stops it the safe way when cancelled (an MCP cancel, a shutdown).
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
    )


class FailureChoice(StrEnum):
    """What the human may do after a move failed (seed 001, step 5)."""

    RETRY = "retry"
    RETRY_COLD = "retry cold"
    SKIP = "skip"
    ABORT = "abort"


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
    ) -> None:
        self.session = session
        self.plan = plan
        """The approved plan: the report lists its moves."""
        self.options = options
        self.warnings = tuple(warnings)
        self.executor = session.executor(plan, options=options, journal_id=journal_id, fresh=fresh, cancel=cancel)
        self._current = plan
        self._before = session.state
        self._outcomes: dict[int, Outcome] = {}
        self._last: ExecutionReport | None = None

    @property
    def journal_id(self) -> str:
        """The id its journal is kept under (what `--resume` finds)."""
        return self.executor.journal.plan_id

    def execute(self, report: Report = ignore) -> ExecutionReport:
        """Run what is left; returns the report of every move so far."""
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
        )

    def choose(self, choice: FailureChoice) -> bool:
        """Act on the human's choice after a failure; True when the run should continue (execute again)."""
        failed = self.report.failed
        if not failed:
            return False
        move = failed[0].move
        match choice:
            case FailureChoice.RETRY:
                return True
            case FailureChoice.RETRY_COLD:
                self._current = dataclasses.replace(
                    self._current,
                    moves=tuple(
                        dataclasses.replace(m, method=MigrationMethod.COLD, downtime=COLD_DOWNTIME)
                        if m.id == move.id
                        else m
                        for m in self._current.moves
                    ),
                )
                return True
            case FailureChoice.SKIP:
                self.executor.mark_skipped(move)
                return True
            case FailureChoice.ABORT:
                return False
        assert_never(choice)


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
    """Moves an earlier run already finished (resume)."""
    journal_id: str
    """The saved plan's id: its journal, kept across edits, so that `--resume` finds it."""


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
) -> ApplyPreparation:
    """The user's edits, then re-validation against the cluster as it is now (see ``Revalidation``).

    On ``resume``, moves the journal records as succeeded or running are not re-validated
    (their VM may be migrating or already on the target): the executor finishes them from the
    journal against the cluster; they stay in the plan so the report lists them.

    Raises:
        ConfigError: the plan was started before and did not finish (and this is no resume), or an
            edit names an unknown move. InfeasiblePlanError: an edit breaks a rule.
    """
    journal_id = plan_id(saved)
    journal = Journal.open(journal_id, directory=journal_dir)
    if journal.exists and not journal.finished and not resume and not dry_run:
        raise ConfigError(
            f"this plan was started before and did not finish (journal {journal_id})",
            hint="continue it with --resume, or re-plan",
        )
    state = session.state
    plan = saved
    for move_id in skip:
        plan = skip_move(state, plan, move_id)
    for move_id, node in retarget:
        plan = retarget_move(state, plan, move_id, node)
    records = journal.moves.values() if resume else ()
    done = {rec.id for rec in records if rec.status == "succeeded"}
    in_flight = {rec.id for rec in records if rec.status == "running"}
    require_plan_names(state, plan, skip_ids=done | in_flight)  # unknown VMs or nodes: bad input (exit 2)
    checked = revalidate(state, plan, skip_ids=done | in_flight)
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
