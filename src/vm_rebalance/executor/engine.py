"""Carry out a plan wave by wave within KubeVirt's limits, stopping at the first failure.

Rules (seeds 001 step 5, design.md §4): waves in order (a wave starts when the previous
one is over); within a wave live moves first, smallest guest memory first, cold moves one
at a time after the live ones; never more migrations in flight than
parallelMigrationsPerCluster, nor more outbound from one node than
parallelOutboundMigrationsPerNode — counting migrations others have in flight; at the first
failure no new move starts, running ones finish, and the rest is reported not attempted.
The executor decides nothing about placement: it carries out the plan's moves as given.
"""

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from vm_rebalance.errors import ClusterError
from vm_rebalance.executor.events import MoveEvent, MoveStatus, Outcome, Report, ignore
from vm_rebalance.executor.journal import Journal
from vm_rebalance.executor.kubevirt import KubeVirtApi
from vm_rebalance.executor.runners import MAX_CONSECUTIVE_ERRORS, ExecutionOptions, Runner, runner_for
from vm_rebalance.model import MigrationLimits, MigrationMethod, Move, Plan, plan_to_document

log = logging.getLogger(__name__)

Sleep = Callable[[float], None]


class Waker(Protocol):
    """Something the executor can wait on between ticks that wakes it early on a change."""

    def start(self) -> None: ...

    def wait(self, timeout_seconds: float) -> bool: ...

    def stop(self) -> None: ...


def plan_id(plan: Plan) -> str:
    """A stable id of a plan's content (what the human approved)."""
    doc = plan_to_document(plan)
    canonical = json.dumps({"goal": doc["goal"], "moves": doc["moves"]}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


class ExecutionInterruptedError(Exception):
    """Ctrl-C during execution; carries what was done and the state of in-flight VMs."""

    def __init__(self, outcomes: list[Outcome], states: list[str]) -> None:
        super().__init__("interrupted")
        self.outcomes = outcomes
        self.states = states


def _ordered(wave: tuple[Move, ...]) -> list[Move]:
    """Live before cold; smallest guest memory first; then plan order."""
    return sorted(
        wave,
        key=lambda m: (m.method is MigrationMethod.COLD, m.guest_memory_bytes or m.memory_bytes, m.id),
    )


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
        sleep: Sleep = time.sleep,
        waker: Waker | None = None,
    ) -> None:
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

    # ----------------------------------------------------------------------- limits

    def _active_migrations(self) -> list[dict[str, Any]] | None:
        """Every unfinished migration in the cluster (one LIST per tick), or None when it fails."""
        try:
            return self.api.active_migrations()
        except ClusterError as exc:
            log.debug("could not list migrations: %s", exc)
            return None

    @staticmethod
    def _external_in_flight(active: list[dict[str, Any]] | None, ours: set[str]) -> list[tuple[str | None]]:
        """Source nodes of migrations in flight that are not ours (None when not known yet)."""
        out = []
        for mig in active or ():
            name = (mig.get("metadata") or {}).get("name")
            if name in ours:
                continue
            state = (mig.get("status") or {}).get("migrationState") or {}
            out.append((state.get("sourceNode"),))
        return out

    def _can_start(self, move: Move, active: dict[int, Runner], external: list[tuple[str | None]]) -> bool:
        if self.options.sequential and active:
            return False
        if move.method is MigrationMethod.COLD:
            # Cold moves one at a time, after the wave's live moves are done (caller's order).
            return not active
        live_active = [r for r in active.values() if r.move.method is MigrationMethod.LIVE]
        in_flight = len(live_active) + len(external)
        if in_flight >= self.limits.parallel_per_cluster:
            return False
        outbound = sum(1 for r in live_active if r.move.source == move.source)
        outbound += sum(1 for (src,) in external if src == move.source)
        return outbound < self.limits.parallel_outbound_per_node

    # ----------------------------------------------------------------------- run

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
                runner.finish(MoveStatus.FAILED, error=f"the cluster kept failing to answer ({again})")
            return True
        errors.pop(runner.move.id, None)
        return done

    def run(self, plan: Plan, report: Report = ignore) -> list[Outcome]:
        """Carry the plan out; returns one Outcome per move (in plan order).

        Moves the journal records as succeeded or skipped are not repeated; a move the
        journal records as running (a crash) is resumed from its recorded step.

        Raises:
            ExecutionInterruptedError: on KeyboardInterrupt, after cancelling in-flight work.
        """
        pid = self.journal.plan_id
        outcomes: dict[int, Outcome] = {}
        active: dict[int, Runner] = {}
        errors: dict[int, int] = {}
        failed = False
        if self.waker is not None:
            self.waker.start()
        try:
            for wave in plan.waves:
                queue: list[Move] = []
                for move in _ordered(wave):
                    record = self.journal.record(move.id)
                    if record and record.status == "succeeded":
                        outcomes[move.id] = Outcome(
                            move=move,
                            status=MoveStatus.SUCCEEDED,
                            duration_seconds=record.duration_seconds,
                            migration_name=record.migration,
                            final_node=move.target,
                            pinned=record.pinned,
                            notes=("done in an earlier run",),
                        )
                    elif record and record.status == "skipped":
                        outcomes[move.id] = Outcome(
                            move=move, status=MoveStatus.SKIPPED, error=record.error or "skipped by the user"
                        )
                    else:
                        queue.append(move)
                while queue or active:
                    listed = None
                    if queue or any(r.move.method is MigrationMethod.LIVE for r in active.values()):
                        listed = self._active_migrations()
                    by_key = (
                        None
                        if listed is None
                        else {
                            (
                                str((m.get("metadata") or {}).get("namespace")),
                                str((m.get("metadata") or {}).get("name")),
                            ): m
                            for m in listed
                        }
                    )
                    for move_id, runner in list(active.items()):
                        if self._step(runner, by_key, errors):
                            assert runner.outcome is not None
                            outcomes[move_id] = runner.outcome
                            del active[move_id]
                            if not runner.outcome.ok:
                                failed = True
                    if failed:
                        queue.clear()  # stop starting new moves; let the running ones finish
                    live_active = sum(1 for r in active.values() if r.move.method is MigrationMethod.LIVE)
                    if (
                        queue
                        and live_active < self.limits.parallel_per_cluster
                        and not (self.options.sequential and active)
                    ):
                        external = self._external_in_flight(
                            listed, {str(r.record.migration) for r in active.values() if r.record.migration}
                        )
                        # Live moves of the wave first; a cold one waits until no live one is queued.
                        for move in list(queue):
                            if move.method is MigrationMethod.COLD and any(
                                q.method is MigrationMethod.LIVE for q in queue
                            ):
                                break
                            if not self._can_start(move, active, external):
                                if move.method is MigrationMethod.COLD or self.options.sequential:
                                    break
                                report(MoveEvent(move=move, status=MoveStatus.PENDING, phase="waiting for a slot"))
                                continue
                            runner = runner_for(
                                move,
                                api=self.api,
                                journal=self.journal,
                                options=self.options,
                                report=report,
                                clock=self.clock,
                                plan_id=pid,
                                kubevirt_version=self.kubevirt_version,
                            )
                            queue.remove(move)
                            # In `active` before it acts, so that Ctrl-C during begin() is cleaned up too.
                            active[move.id] = runner
                            try:
                                runner.begin()
                            except ClusterError as exc:
                                runner.give_up(f"could not start the move: {exc}")
                            if runner.outcome is not None:
                                del active[move.id]
                                outcomes[move.id] = runner.outcome
                                if not runner.outcome.ok:
                                    failed = True
                                    queue.clear()
                                    break
                    if active or queue:
                        # also while waiting for a slot held by others' migrations: never spin.
                        # With a waker (a migration watch) a change ends the wait at once.
                        if self.waker is not None:
                            self.waker.wait(self.options.poll_interval_seconds)
                        else:
                            self.sleep(self.options.poll_interval_seconds)
                if failed:
                    break
        except KeyboardInterrupt:
            states = []
            for move_id, runner in active.items():
                try:
                    states.append(runner.interrupt())
                except (ClusterError, KeyboardInterrupt) as exc:
                    states.append(f"{runner.move.namespace}/{runner.move.vm}: state unknown ({exc})")
                if runner.outcome is not None:
                    outcomes[move_id] = runner.outcome
            raise ExecutionInterruptedError(self._complete(plan, outcomes), states) from None
        finally:
            if self.waker is not None:
                self.waker.stop()
        result = self._complete(plan, outcomes)
        if all(o.ok or o.status is MoveStatus.SKIPPED for o in result):
            self.journal.finished = True
            self.journal.save()
        return result

    @staticmethod
    def _complete(plan: Plan, outcomes: dict[int, Outcome]) -> list[Outcome]:
        return [
            outcomes.get(m.id)
            or Outcome(move=m, status=MoveStatus.NOT_ATTEMPTED, error="not attempted (an earlier move failed)")
            for m in plan.moves
        ]

    def mark_skipped(self, move: Move, reason: str = "skipped by the user") -> None:
        """Record that the user chose to skip a move (after a failure)."""
        record = self.journal.record(move.id)
        if record is None:
            from vm_rebalance.executor.journal import MoveRecord

            record = MoveRecord(
                id=move.id, vm=move.vm, namespace=move.namespace, method=move.method.value, target=move.target
            )
        record.status = "skipped"
        record.error = reason
        self.journal.update(record)


def describe(outcome: Outcome) -> dict[str, Any]:
    """An outcome as a plain dict (reports, JSON output)."""
    m = outcome.move
    return {
        "id": m.id,
        "vm": m.vm,
        "namespace": m.namespace,
        "from": m.source,
        "to": m.target,
        "method": m.method.value,
        "status": outcome.status.value,
        "duration_seconds": None if outcome.duration_seconds is None else round(outcome.duration_seconds, 1),
        "error": outcome.error,
        "migration": outcome.migration_name,
        "pinned": outcome.pinned,
        "notes": list(outcome.notes),
    }
