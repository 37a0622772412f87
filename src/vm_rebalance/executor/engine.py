"""Carry out a plan wave by wave within KubeVirt's limits, stopping at the first failure.

Rules (seeds 001 step 5, design.md §4): waves in order (a wave starts when the previous
one is over); within a wave live moves first, smallest guest memory first, cold moves one
at a time after the live ones; never more migrations in flight than
parallelMigrationsPerCluster, nor more outbound from one node than
parallelOutboundMigrationsPerNode — counting every migration in the cluster, whoever started
it, and admitting no live move while they cannot be counted (executor/limits.py); at the first
failure no new move starts, running ones finish, and the rest is reported not attempted.
A `CancelToken` (Ctrl-C, an MCP cancel, a shutdown, a lost lease) stops it the same safe way:
no new move, in-flight migrations cancelled, a cold move between its stop and its start rolled
back (or finished) before the run ends.
Before anything is reported, every move's outcome is verified against the cluster
(executor/verify.py); on resume, moves the journal calls done are verified too, and one whose
VM is not where the plan put it runs again.
The executor decides nothing about placement: it carries out the plan's moves as given.
"""

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from vm_rebalance.errors import ClusterError, ClusterForbiddenError
from vm_rebalance.executor.failures import failure_of
from vm_rebalance.executor.journal import Journal, MoveRecord, RecordStatus, Step
from vm_rebalance.executor.limits import Census, InFlightCounter, admits
from vm_rebalance.executor.runners import (
    MAX_CONSECUTIVE_ERRORS,
    ColdRunner,
    ExecutionOptions,
    Resolution,
    Runner,
    runner_for,
)
from vm_rebalance.executor.verify import verify, verify_done
from vm_rebalance.kube.kubevirt import KubeVirtApi
from vm_rebalance.model import MigrationLimits, MigrationMethod, Move, Plan, plan_to_document
from vm_rebalance.model.cancel import CancelReason, CancelToken
from vm_rebalance.model.execution import (
    FailureKind,
    MoveEvent,
    MoveStatus,
    Outcome,
    Report,
    ignore,
    outcome_document,
)

log = logging.getLogger(__name__)

Sleep = Callable[[float], None]
MAX_BLIND_TICKS = 30
"""Ticks in a row without a count of the cluster's migrations after which a waiting live move fails
(fail closed: it was never started) instead of waiting on."""


class Waker(Protocol):
    """Something the executor can wait on between ticks that wakes it early on a change."""

    def start(self) -> None: ...

    def wait(self, timeout_seconds: float) -> bool: ...

    def wake(self) -> None: ...

    def stop(self) -> None: ...


def plan_id(plan: Plan) -> str:
    """A stable id of a plan's content (what the human approved)."""
    doc = plan_to_document(plan)
    canonical = json.dumps({"goal": doc["goal"], "moves": doc["moves"]}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


class ExecutionInterruptedError(Exception):
    """The execution was cancelled; carries what was done, the state of in-flight VMs and why."""

    def __init__(
        self, outcomes: list[Outcome], states: list[str], reason: CancelReason = CancelReason.INTERRUPT
    ) -> None:
        super().__init__(reason.value)
        self.outcomes = outcomes
        self.states = states
        self.reason = reason


def _ordered(wave: tuple[Move, ...]) -> list[Move]:
    """Live before cold; smallest guest memory first; then plan order."""
    return sorted(
        wave,
        key=lambda m: (m.method is MigrationMethod.COLD, m.guest_memory_bytes or m.memory_bytes, m.id),
    )


@dataclass(slots=True)
class _Run:
    """The mutable state of one `Executor.run`."""

    outcomes: dict[int, Outcome] = field(default_factory=dict)
    active: dict[int, Runner] = field(default_factory=dict)
    errors: dict[int, int] = field(default_factory=dict)
    """Consecutive failed ticks per running move."""
    failed: bool = False
    blind_ticks: int = 0
    """Consecutive ticks in which the cluster's migrations could not be counted."""
    blind_error: ClusterError | None = None
    """Why they could not be counted, the last time."""

    def live_active(self) -> list[Runner]:
        return [r for r in self.active.values() if r.move.method is MigrationMethod.LIVE]

    def end(self, runner: Runner) -> None:
        assert runner.outcome is not None
        self.active.pop(runner.move.id, None)
        self.outcomes[runner.move.id] = runner.outcome
        if runner.outcome.status is MoveStatus.FAILED:
            self.failed = True  # a move that is skipped (its VM gone, its target unusable) does not stop the plan


class Executor:
    """Runs a plan's moves against the cluster."""

    def __init__(
        self,
        api: KubeVirtApi,
        *,
        limits: MigrationLimits,
        kubevirt_version: str | None,
        journal: Journal,
        options: ExecutionOptions = ExecutionOptions(),
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep | None = None,
        waker: Waker | None = None,
        cancel: CancelToken | None = None,
        hold: CancelToken | None = None,
    ) -> None:
        """``sleep`` None waits on the cancel token (a cancel ends the wait); tests pass a fake.

        ``hold``, when set, stops admitting moves while letting the running ones finish; `run` then
        returns with the rest not attempted and the journal unfinished, so a later run resumes it
        (a controller's graceful shutdown, the end of a maintenance window).
        """
        self.api = api
        self.limits = limits
        self.kubevirt_version = kubevirt_version
        self.journal = journal
        # The live-migration timeout follows the cluster's completionTimeoutPerGiB unless the user set one.
        if options.timeout_per_gib_seconds is None:
            options = dataclasses.replace(
                options, timeout_per_gib_seconds=float(limits.completion_timeout_per_gib_seconds)
            )
        self.options = options
        self.clock = clock
        self.sleep = sleep
        self.waker = waker
        self.cancel = cancel if cancel is not None else CancelToken()
        self.hold = hold if hold is not None else CancelToken()
        self.counter = InFlightCounter(api)

    # ----------------------------------------------------------------------------------- run

    def run(self, plan: Plan, report: Report = ignore) -> list[Outcome]:
        """Carry the plan out; returns one Outcome per move (in plan order).

        Moves the journal records as succeeded or skipped are not repeated; a move the
        journal records as running (a crash) is resumed from its recorded step.

        Raises:
            ExecutionInterruptedError: the cancel token was cancelled (or Ctrl-C arrived), after
                cancelling in-flight work.
        """
        run = _Run()
        if self.waker is not None:
            self.waker.start()
            self.cancel.on_cancel(self.waker.wake)
            self.hold.on_cancel(self.waker.wake)
        try:
            self._run_waves(plan, run, report)
        except KeyboardInterrupt:
            self.cancel.cancel(CancelReason.INTERRUPT)
        finally:
            if self.waker is not None:
                self.waker.stop()
        if self.cancel.cancelled:
            raise self._interrupted(plan, run) from None
        result = self._verified(
            self._complete(plan, run.outcomes, held=self.hold.reason if self.hold.cancelled else None)
        )
        self._close_if_done(result)
        return result

    def _verified(self, outcomes: list[Outcome]) -> list[Outcome]:
        """Every outcome as the cluster shows it now (see executor/verify.py)."""
        return [verify(self.api, o, self.journal) for o in outcomes]

    def _close_if_done(self, outcomes: list[Outcome]) -> None:
        if all(o.ok or o.status is MoveStatus.SKIPPED for o in outcomes) and not any(
            r.status is RecordStatus.RUNNING for r in self.journal.moves.values()
        ):
            self.journal.finished = True
            self.journal.save()

    def _run_waves(self, plan: Plan, run: _Run, report: Report) -> None:
        for wave in plan.waves:
            queue = self._resume_wave(wave, run)
            while (queue or run.active) and not self.cancel.cancelled:
                self._tick(queue, run, report)
            if run.failed or self.cancel.cancelled or self.hold.cancelled:
                return

    def _resume_wave(self, wave: tuple[Move, ...], run: _Run) -> list[Move]:
        """The wave's moves still to run; those the journal records as done (verified now) or skipped are reported."""
        queue: list[Move] = []
        for move in _ordered(wave):
            record = self.journal.record(move.id)
            if record and record.status is RecordStatus.SUCCEEDED:
                done, seen = verify_done(self.api, move)
                if done is False:
                    # The journal says done, the cluster disagrees (moved by hand since, or never arrived): redo it.
                    log.info(
                        "move %s: recorded as done, but the cluster shows the VM %s: running it again", move.id, seen
                    )
                    self._reopen(record, f"recorded as done, but the cluster showed the VM {seen}")
                    queue.append(move)
                    continue
                note = "done in an earlier run" + ("" if done else f" (not re-verified: {seen})")
                run.outcomes[move.id] = Outcome(
                    move=move,
                    status=MoveStatus.SUCCEEDED,
                    duration_seconds=record.duration_seconds,
                    migration_name=record.migration,
                    final_node=move.target if done else None,
                    pinned=record.pinned,
                    notes=(note,),
                    state=seen if done else None,
                )
            elif (
                record
                and record.status is RecordStatus.FAILED
                and not record.held
                and (found := verify_done(self.api, move))[0]
            ):
                # An earlier attempt "failed" (or could not tell), but the VM is where the move puts it: done.
                seen = found[1]
                record.status, record.failure, record.error, record.verified = RecordStatus.SUCCEEDED, None, None, seen
                self.journal.update(record)
                run.outcomes[move.id] = Outcome(
                    move=move,
                    status=MoveStatus.SUCCEEDED,
                    final_node=move.target,
                    pinned=record.pinned,
                    migration_name=record.migration,
                    notes=("found on its target: an earlier attempt completed after all",),
                    state=seen,
                )
            elif record and record.status is RecordStatus.SKIPPED:
                run.outcomes[move.id] = Outcome(
                    move=move, status=MoveStatus.SKIPPED, error=record.error or "skipped by the user"
                )
            else:
                queue.append(move)
        return queue

    def _tick(self, queue: list[Move], run: _Run, report: Report) -> None:
        """Observe the cluster once, advance the running moves, admit queued ones, then wait."""
        census = self._census(queue, run)
        self._advance(run, census)
        if run.failed or self.hold.cancelled:
            queue.clear()  # stop starting new moves; let the running ones finish
        if queue:
            self._admit(queue, run, census, report)
        if run.active or queue:
            # also while waiting for a slot held by others' migrations: never spin.
            self._pause()

    def _census(self, queue: list[Move], run: _Run) -> Census | None:
        """The migrations in flight (None when they cannot be read this tick, or are not needed)."""
        live = run.live_active()
        if not queue and not live:
            return None
        # Admitting needs everyone's migrations, VMIs' own reports included; following ours, and a
        # tick whose slots are all ours, need only the list of migration objects.
        admitting = bool(queue) and len(live) < self.limits.parallel_per_cluster
        ours = frozenset(str(r.record.migration) for r in run.active.values() if r.record.migration)
        try:
            return self.counter.read(with_vmis=admitting, ours=ours)
        except ClusterError as exc:
            log.debug("could not count the cluster's migrations: %s", exc)
            run.blind_error = exc
            return None

    def _advance(self, run: _Run, census: Census | None) -> None:
        listed = census.listed if census is not None else None
        for runner in list(run.active.values()):
            if self._step(runner, listed, run.errors):
                run.end(runner)

    @staticmethod
    def _step(runner: Runner, listed: Any, errors: dict[int, int]) -> bool:
        """One tick of a runner; an API error is "unknown this tick" until it repeats too often."""
        try:
            done = runner.step(listed)
        except ClusterError as exc:
            errors[runner.move.id] = errors.get(runner.move.id, 0) + 1
            log.debug("move %s: cluster read failed (%s)", runner.move.id, exc)
            if errors[runner.move.id] < MAX_CONSECUTIVE_ERRORS:
                return False
            try:
                runner.give_up(f"the cluster kept failing to answer ({exc})")
            except ClusterError as again:
                runner.fail(FailureKind.CLUSTER_UNAVAILABLE, f"the cluster kept failing to answer ({again})")
            return True
        errors.pop(runner.move.id, None)
        return done

    def _admit(self, queue: list[Move], run: _Run, census: Census | None, report: Report) -> None:
        """Start the queued moves the limits allow: live ones first, a cold one when no live one is queued."""
        live_queued = any(m.method is MigrationMethod.LIVE for m in queue)
        if census is None and live_queued and self._blind(queue, run, report):
            return
        if census is not None:
            run.blind_ticks = 0
        if len(run.live_active()) >= self.limits.parallel_per_cluster or (self.options.sequential and run.active):
            return
        ours = {str(r.record.migration) for r in run.active.values() if r.record.migration}
        others = census.others(ours) if census is not None else []
        for move in list(queue):
            if move.method is MigrationMethod.COLD and any(q.method is MigrationMethod.LIVE for q in queue):
                break
            if move.method is MigrationMethod.LIVE and census is None:
                break  # fail closed: no live move while the cluster's migrations are unknown
            if not self._can_start(move, run, others):
                if move.method is MigrationMethod.COLD or self.options.sequential:
                    break
                report(MoveEvent(move=move, status=MoveStatus.PENDING, phase="waiting for a slot"))
                continue
            queue.remove(move)
            if self._start(move, run, report):
                queue.clear()
                return

    def _blind(self, queue: list[Move], run: _Run, report: Report) -> bool:
        """No count of the cluster's migrations this tick: wait, or fail the first live move after too long.

        Returns True when admission is over for this tick.
        """
        run.blind_ticks += 1
        first = next(m for m in queue if m.method is MigrationMethod.LIVE)
        forbidden = isinstance(run.blind_error, ClusterForbiddenError)  # permanent: waiting cannot help
        if (run.blind_ticks < MAX_BLIND_TICKS and not forbidden) or run.active:
            report(
                MoveEvent(
                    move=first,
                    status=MoveStatus.PENDING,
                    phase="waiting: the cluster's migrations cannot be counted",
                )
            )
            return True
        kind = FailureKind.FORBIDDEN if forbidden else FailureKind.CLUSTER_UNAVAILABLE
        why = f"({run.blind_error})" if forbidden else f"{run.blind_ticks} times in a row"
        run.outcomes[first.id] = Outcome(
            move=first,
            status=MoveStatus.FAILED,
            failure=kind,
            error=f"not started: the cluster's migrations could not be listed {why}, so the migration limits "
            "could not be checked (nothing was changed)",
        )
        report(
            MoveEvent(
                move=first,
                status=MoveStatus.FAILED,
                phase=MoveStatus.FAILED.value,
                message=run.outcomes[first.id].error or "",
                failure=kind,
            )
        )
        run.failed = True
        queue.clear()
        return True

    def _can_start(self, move: Move, run: _Run, others: list[Any]) -> bool:
        if self.options.sequential and run.active:
            return False
        if move.method is MigrationMethod.COLD:
            # Cold moves one at a time, after the wave's live moves are done (caller's order).
            return not run.active
        return admits(
            self.limits,
            source=move.source,
            ours_in_flight=[r.move.source for r in run.live_active()],
            others=others,
        )

    def _start(self, move: Move, run: _Run, report: Report) -> bool:
        """Begin a move; True when it failed at once (the caller stops admitting)."""
        runner = runner_for(
            move,
            api=self.api,
            journal=self.journal,
            options=self.options,
            report=report,
            clock=self.clock,
            plan_id=self.journal.plan_id,
            kubevirt_version=self.kubevirt_version,
        )
        # In `active` before it acts, so that a cancel during begin() is cleaned up too.
        run.active[move.id] = runner
        try:
            runner.begin()
        except ClusterError as exc:
            runner.give_up(f"could not start the move: {exc}", failure_of(exc))
        if runner.outcome is None:
            return False
        run.end(runner)
        return runner.outcome.status is MoveStatus.FAILED

    def _pause(self) -> None:
        """Wait a poll interval; a migration watch or a cancel ends the wait early."""
        if self.cancel.cancelled:
            return
        if self.waker is not None:
            self.waker.wait(self.options.poll_interval_seconds)
        elif self.sleep is not None:
            self.sleep(self.options.poll_interval_seconds)
        else:
            self.cancel.wait(self.options.poll_interval_seconds)

    def _interrupted(self, plan: Plan, run: _Run) -> ExecutionInterruptedError:
        """Cancel what is in flight the safe way; the error to raise."""
        states = []
        for move_id, runner in list(run.active.items()):
            try:
                states.append(runner.interrupt(self._sleep_for_safety))
            except (ClusterError, KeyboardInterrupt) as exc:
                states.append(f"{runner.move.namespace}/{runner.move.vm}: state unknown ({exc})")
            if runner.outcome is not None:
                run.outcomes[move_id] = runner.outcome
        reason = self.cancel.reason or CancelReason.INTERRUPT
        try:
            outcomes = self._verified(self._complete(plan, run.outcomes))
        except KeyboardInterrupt:
            outcomes = self._complete(plan, run.outcomes)
        return ExecutionInterruptedError(outcomes, states, reason)

    @staticmethod
    def _complete(plan: Plan, outcomes: dict[int, Outcome], held: CancelReason | None = None) -> list[Outcome]:
        why = (
            f"not attempted (held: {held.value}; a later run continues)"
            if held
            else "not attempted (an earlier move failed)"
        )
        return [outcomes.get(m.id) or Outcome(move=m, status=MoveStatus.NOT_ATTEMPTED, error=why) for m in plan.moves]

    def _reopen(self, record: MoveRecord, why: str) -> None:
        """Make a move recorded as done (or held) run again from the start, as a new attempt."""
        record.status = RecordStatus.PENDING
        record.step = Step.NONE
        record.held = False
        record.migration = None
        record.migration_uid = None
        record.temporary_affinity = False
        record.repinned = False
        record.pinned = False
        record.was_running = None
        record.original_captured = False
        record.original_affinity = None
        record.original_marks = {}
        record.error = why
        record.failure = None
        self.journal.update(record)

    def resolve(self, move: Move, resolution: Resolution, report: Report = ignore) -> Outcome:
        """Carry out the human's decision for a cold move held after its start failed (see `Resolution`).

        Runs that one move's rollback (or stop) to its end, then verifies it against the cluster.

        Raises:
            ValueError: the move is not held for a decision.
        """
        runner = ColdRunner(
            move,
            api=self.api,
            journal=self.journal,
            options=self.options,
            report=report,
            clock=self.clock,
            plan_id=self.journal.plan_id,
            kubevirt_version=self.kubevirt_version,
        )
        runner.resolve(resolution)
        errors: dict[int, int] = {}
        while not self._step(runner, None, errors):
            self._sleep_for_safety(self.options.poll_interval_seconds)
        assert runner.outcome is not None
        return verify(self.api, runner.outcome, self.journal)

    def held(self) -> list[int]:
        """Ids of the moves held for a decision (a cold start that failed, with `hold_failed_cold_start`)."""
        return [r.id for r in self.journal.moves.values() if r.held]

    def _sleep_for_safety(self, seconds: float) -> None:
        """A sleep that a cancel does not cut short (used while a VM is put back in a safe state)."""
        if self.sleep is not None:
            self.sleep(seconds)
        else:
            time.sleep(seconds)

    def mark_skipped(self, move: Move, reason: str = "skipped by the user") -> None:
        """Record that the user chose to skip a move (after a failure)."""
        record = self.journal.record(move.id) or MoveRecord(
            id=move.id, vm=move.vm, namespace=move.namespace, method=move.method.value, target=move.target
        )
        record.status = RecordStatus.SKIPPED
        record.error = reason
        record.failure = None
        self.journal.update(record)


describe = outcome_document
"""Old name of `model.execution.outcome_document`."""
