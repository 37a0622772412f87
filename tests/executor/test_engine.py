"""Executor.run: waves, ordering, limits (ours and others' migrations), stop at first failure, resume."""

from pathlib import Path

from executor.fakes import FakeClock, FakeKubeVirt, cold_move, live_move
from vm_rebalance.errors import ClusterError
from vm_rebalance.executor.engine import Executor, describe, plan_id
from vm_rebalance.executor.events import MoveEvent, MoveStatus
from vm_rebalance.executor.journal import Journal
from vm_rebalance.executor.runners import ExecutionOptions
from vm_rebalance.model import Basis, Goal, GoalType, MigrationLimits, Plan


def make_plan(moves) -> Plan:
    return Plan(goal=Goal(type=GoalType.MANUAL), basis=Basis.REQUESTS, moves=tuple(moves))


def executor(
    api: FakeKubeVirt, plan: Plan, tmp_path: Path, *, per_cluster: int = 5, per_node: int = 2, **opts
) -> tuple[Executor, FakeClock]:
    clock = FakeClock()
    api.clock = clock
    journal = Journal.open(plan_id(plan), directory=tmp_path)
    ex = Executor(
        api,
        limits=MigrationLimits(parallel_per_cluster=per_cluster, parallel_outbound_per_node=per_node),
        kubevirt_version=api.version,
        journal=journal,
        options=ExecutionOptions(poll_interval_seconds=1.0, **opts),
        clock=clock,
        sleep=clock.sleep,
    )
    return ex, clock


def spread(n: int, sources: list[str], api: FakeKubeVirt, *, target: str = "t1"):
    moves = []
    for i in range(n):
        src = sources[i % len(sources)]
        api.add_vm(f"vm{i + 1}", src)
        moves.append(live_move(i + 1, f"vm{i + 1}", src, target, gib=1 + (i * 7) % 5))
    return moves


def test_limits_per_cluster_and_per_source_node(tmp_path: Path) -> None:
    api = FakeKubeVirt(polls_to_finish=4)
    plan = make_plan(spread(20, ["a", "b", "c", "d"], api))
    ex, _ = executor(api, plan, tmp_path)
    outcomes = ex.run(plan)
    assert all(o.ok for o in outcomes) and len(outcomes) == 20
    assert api.peak_total == 5 and max(api.peak_outbound.values()) == 2
    assert all(api.node_of(f"vm{i}") == "t1" for i in range(1, 21))
    assert ex.journal.finished


def test_per_node_limit_binds_with_one_source(tmp_path: Path) -> None:
    api = FakeKubeVirt(polls_to_finish=3)
    plan = make_plan(spread(6, ["a"], api))
    ex, _ = executor(api, plan, tmp_path)
    assert all(o.ok for o in ex.run(plan))
    assert api.peak_outbound == {"a": 2} and api.peak_total == 2


def test_others_migrations_in_flight_count(tmp_path: Path) -> None:
    """Three migrations started by someone else from node a: known only from their VMIs' migrationState."""
    api = FakeKubeVirt(polls_to_finish=3)
    plan = make_plan(spread(8, ["a", "b", "c", "d"], api))
    for i in range(3):
        api.add_foreign_migration(f"x{i}", "a", polls=6)
    ex, _ = executor(api, plan, tmp_path)
    assert all(o.ok for o in ex.run(plan))
    assert api.peak_total <= 5  # 3 external + at most 2 of ours
    # node a already has 3 outbound from others: none of ours from a ran next to them
    assert "a" not in {api.sources[m["metadata"]["name"]] for m in api.created[:2]}
    assert api.peak_outbound["a"] == 3


def test_others_pending_migrations_count_against_the_node_their_vmi_runs_on(tmp_path: Path) -> None:
    """Not handed off yet (Pending): neither the migration nor the VMI names a source; the VMI's node does."""
    api = FakeKubeVirt(polls_to_finish=2)
    plan = make_plan(spread(2, ["a"], api))
    api.add_foreign_migration("x0", "a", handed_off=False, polls=4)
    api.add_foreign_migration("x1", "a", handed_off=False, polls=4)
    ex, _ = executor(api, plan, tmp_path)
    assert all(o.ok for o in ex.run(plan))
    assert api.peak_outbound["a"] == 2  # ours waited until the two foreign ones from a were done


def test_order_live_first_smallest_first_cold_one_at_a_time(tmp_path: Path) -> None:
    api = FakeKubeVirt(polls_to_finish=2)
    for name, node in (("big", "a"), ("small", "b"), ("mid", "c"), ("c1", "a"), ("c2", "b")):
        api.add_vm(name, node)
    moves = [
        cold_move(1, "c1", "a", "t"),
        live_move(2, "big", "a", "t", gib=16),
        cold_move(3, "c2", "b", "t"),
        live_move(4, "small", "b", "t", gib=1),
        live_move(5, "mid", "c", "t", gib=4),
    ]
    plan = make_plan(moves)
    ex, _ = executor(api, plan, tmp_path)
    events: list[MoveEvent] = []
    outcomes = ex.run(plan, events.append)
    assert [o.move.id for o in outcomes] == [1, 2, 3, 4, 5] and all(o.ok for o in outcomes)
    assert [m["spec"]["vmiName"] for m in api.created] == ["small", "mid", "big"]
    starts = [c for c in api.calls if c[0] in ("stop", "start")]
    assert starts == [("stop", "c1"), ("start", "c1"), ("stop", "c2"), ("start", "c2")]
    # no cold move started while a live one ran
    first_stop = next(i for i, e in enumerate(events) if e.phase == "stopping VM")
    assert sum(1 for e in events[:first_stop] if e.status is MoveStatus.SUCCEEDED) == 3


def test_waves_in_order(tmp_path: Path) -> None:
    api = FakeKubeVirt(polls_to_finish=3)
    for i in range(1, 5):
        api.add_vm(f"v{i}", f"n{i}")
    plan = make_plan(
        [
            live_move(1, "v1", "n1", "t", wave=1),
            live_move(2, "v2", "n2", "t", wave=2),
            live_move(3, "v3", "n3", "t", wave=1, gib=8),
            live_move(4, "v4", "n4", "t", wave=2),
        ]
    )
    ex, _ = executor(api, plan, tmp_path)
    events: list[MoveEvent] = []
    assert all(o.ok for o in ex.run(plan, events.append))
    done_wave1 = max(i for i, e in enumerate(events) if e.move.wave == 1 and e.status is MoveStatus.SUCCEEDED)
    first_wave2 = min(i for i, e in enumerate(events) if e.move.wave == 2)
    assert done_wave1 < first_wave2


def test_sequential(tmp_path: Path) -> None:
    api = FakeKubeVirt(polls_to_finish=3)
    plan = make_plan(spread(4, ["a", "b"], api))
    ex, _ = executor(api, plan, tmp_path, sequential=True)
    assert all(o.ok for o in ex.run(plan))
    assert api.peak_total == 1


def test_first_failure_stops_new_moves_running_ones_finish(tmp_path: Path) -> None:
    api = FakeKubeVirt(polls_to_finish=3)
    plan = make_plan(spread(10, ["a", "b", "c", "d", "e"], api))
    api.fail_vms.add("vm1")  # the smallest: started first
    ex, _ = executor(api, plan, tmp_path)
    outcomes = ex.run(plan)
    by = {o.move.vm: o for o in outcomes}
    assert by["vm1"].status is MoveStatus.FAILED
    started = {m["spec"]["vmiName"] for m in api.created}
    assert len(started) == 5  # the first five started together; nothing after the failure
    for vm in started - {"vm1"}:
        assert by[vm].ok  # running ones finished
    not_attempted = [o for o in outcomes if o.status is MoveStatus.NOT_ATTEMPTED]
    assert len(not_attempted) == 5 and all(api.node_of(o.move.vm) == o.move.source for o in not_attempted)
    assert not api.active_migrations()
    assert not ex.journal.finished
    assert describe(by["vm1"])["status"] == "failed"

    # retry: a second run on the same journal re-attempts the failed move with a new name, skips done ones
    api.fail_vms.clear()
    created_before = len(api.created)
    ex2, _ = executor(api, plan, tmp_path)
    api.clock = None
    outcomes2 = ex2.run(plan)
    assert all(o.ok for o in outcomes2)
    again = [m["metadata"]["name"] for m in api.created[created_before:]]
    assert len(again) == 6 and any(n.endswith("-2") for n in again)
    vm1_rec = ex2.journal.record(by["vm1"].move.id)
    assert vm1_rec is not None and vm1_rec.attempt == 2
    assert sum(1 for o in outcomes2 if "done in an earlier run" in o.notes) == 4
    assert ex2.journal.finished


def test_skipped_moves_are_not_run(tmp_path: Path) -> None:
    api = FakeKubeVirt(polls_to_finish=2)
    plan = make_plan(spread(3, ["a"], api))
    ex, _ = executor(api, plan, tmp_path)
    ex.mark_skipped(plan.moves[0])
    outcomes = ex.run(plan)
    assert outcomes[0].status is MoveStatus.SKIPPED and all(o.ok for o in outcomes[1:])
    assert "vm1" not in {m["spec"]["vmiName"] for m in api.created}


def test_keyboard_interrupt_cancels_in_flight(tmp_path: Path) -> None:
    import pytest

    from vm_rebalance.executor.engine import ExecutionInterruptedError

    api = FakeKubeVirt(polls_to_finish=100)
    plan = make_plan(spread(3, ["a", "b", "c"], api))
    ex, clock = executor(api, plan, tmp_path)
    ticks = {"n": 0}

    def sleep(seconds: float) -> None:
        ticks["n"] += 1
        if ticks["n"] == 3:
            raise KeyboardInterrupt
        clock.sleep(seconds)

    ex.sleep = sleep
    with pytest.raises(ExecutionInterruptedError) as info:
        ex.run(plan)
    assert len(info.value.states) == 3
    assert all("migration cancelled; Running on" in s for s in info.value.states), info.value.states
    assert sorted(api.deleted) == sorted(m["metadata"]["name"] for m in api.created)


# ------------------------------------------------------------------------------------- cancel


def test_a_cancel_token_stops_the_run_the_same_safe_way_as_ctrl_c(tmp_path: Path) -> None:
    import pytest

    from vm_rebalance.executor.engine import ExecutionInterruptedError
    from vm_rebalance.model.cancel import CancelReason, CancelToken
    from vm_rebalance.model.execution import FailureKind

    api = FakeKubeVirt(polls_to_finish=100)
    plan = make_plan(spread(8, ["a", "b", "c", "d"], api))
    ex, clock = executor(api, plan, tmp_path)
    token = CancelToken()
    ex.cancel = token
    ticks = {"n": 0}

    def sleep(seconds: float) -> None:
        ticks["n"] += 1
        if ticks["n"] == 2:
            token.cancel(CancelReason.CLIENT)  # e.g. an MCP client's cancel, from another thread
        clock.sleep(seconds)

    ex.sleep = sleep
    with pytest.raises(ExecutionInterruptedError) as info:
        ex.run(plan)
    assert info.value.reason is CancelReason.CLIENT
    created = [m["metadata"]["name"] for m in api.created]
    assert len(created) == 5 and sorted(api.deleted) == sorted(created)  # in-flight ones cancelled, no new ones
    interrupted = [o for o in info.value.outcomes if o.failure is FailureKind.INTERRUPTED]
    assert len(interrupted) == 5 and all("migration cancelled; Running on" in s for s in info.value.states)
    assert sum(o.status is MoveStatus.NOT_ATTEMPTED for o in info.value.outcomes) == 3
    assert not ex.journal.finished


def test_a_token_cancelled_before_the_run_starts_nothing(tmp_path: Path) -> None:
    import pytest

    from vm_rebalance.executor.engine import ExecutionInterruptedError
    from vm_rebalance.model.cancel import CancelReason, CancelToken

    api = FakeKubeVirt()
    plan = make_plan(spread(2, ["a"], api))
    ex, _ = executor(api, plan, tmp_path)
    ex.cancel = CancelToken()
    ex.cancel.cancel(CancelReason.SHUTDOWN)
    with pytest.raises(ExecutionInterruptedError) as info:
        ex.run(plan)
    assert info.value.reason is CancelReason.SHUTDOWN and api.created == []


def test_a_cancel_from_another_thread_ends_the_wait_at_once(tmp_path: Path) -> None:
    """Without an injected sleep the executor waits on the token: a cancel ends a 10-minute poll interval."""
    import threading

    import pytest

    from vm_rebalance.executor.engine import ExecutionInterruptedError
    from vm_rebalance.model.cancel import CancelToken

    class Signalling(FakeKubeVirt):
        def __init__(self) -> None:
            super().__init__(polls_to_finish=1_000)
            self.first_created = threading.Event()

        def create(self, resource, body, *, namespace=None):
            out = super().create(resource, body, namespace=namespace)
            self.first_created.set()
            return out

    api = Signalling()
    plan = make_plan(spread(1, ["a"], api))
    token = CancelToken()
    ex = Executor(
        api,
        limits=MigrationLimits(),
        kubevirt_version=api.version,
        journal=Journal.open(plan_id(plan), directory=tmp_path),
        options=ExecutionOptions(poll_interval_seconds=600.0),
        cancel=token,
    )
    canceller = threading.Thread(target=lambda: api.first_created.wait(60) and token.cancel())
    canceller.start()
    with pytest.raises(ExecutionInterruptedError):
        ex.run(plan)
    canceller.join()
    assert api.deleted == [api.created[0]["metadata"]["name"]]


# -------------------------------------------------------------------------------- fail closed


def test_no_live_move_starts_while_the_clusters_migrations_cannot_be_listed(tmp_path: Path) -> None:
    api = FakeKubeVirt(polls_to_finish=2)
    plan = make_plan(spread(4, ["a", "b"], api))
    api.list_failures = 6
    created_while_blind: list[int] = []
    real = api.list

    def watching(resource, **kw):
        if api.list_failures > 0 and kw.get("namespace") is None and resource.plural.endswith("migrations"):
            created_while_blind.append(len(api.created))
        return real(resource, **kw)

    api.list = watching  # type: ignore[method-assign]
    ex, _ = executor(api, plan, tmp_path)
    events: list[MoveEvent] = []
    outcomes = ex.run(plan, events.append)
    assert all(o.ok for o in outcomes)
    assert created_while_blind == [0] * 6  # nothing was admitted until the list worked again
    assert any("cannot be counted" in e.phase for e in events)


def test_a_list_that_never_recovers_fails_the_first_move_closed_and_changes_nothing(tmp_path: Path) -> None:
    from vm_rebalance.model.execution import FailureKind

    api = FakeKubeVirt()
    plan = make_plan(spread(3, ["a"], api))
    api.list_failures = 10_000
    ex, _ = executor(api, plan, tmp_path)
    outcomes = ex.run(plan)
    assert api.created == [] and not ex.journal.finished
    assert outcomes[0].status is MoveStatus.FAILED and outcomes[0].failure is FailureKind.CLUSTER_UNAVAILABLE
    assert "could not be listed" in (outcomes[0].error or "")
    assert [o.status for o in outcomes[1:]] == [MoveStatus.NOT_ATTEMPTED] * 2


def test_a_migration_only_its_vmi_reports_counts_against_its_node(tmp_path: Path) -> None:
    """No migration object (another tool's, or garbage-collected early): the VMI's migrationState still counts."""
    api = FakeKubeVirt(polls_to_finish=2)
    plan = make_plan(spread(2, ["a"], api))
    mig = api.add_foreign_migration("x", "a")
    del api.migrations[("default", mig["metadata"]["name"])]  # only the VMI says it migrates
    ex, clock = executor(api, plan, tmp_path, per_node=1)
    ticks = {"n": 0}

    def sleep(seconds: float) -> None:
        ticks["n"] += 1
        if ticks["n"] == 5:  # the foreign migration ends
            api.vmis[("default", "x")]["status"]["migrationState"]["completed"] = True
        clock.sleep(seconds)

    ex.sleep = sleep
    created_at: list[int] = []
    real_create = api.create

    def create(resource, body, *, namespace=None):
        created_at.append(ticks["n"])
        return real_create(resource, body, namespace=namespace)

    api.create = create  # type: ignore[method-assign]
    assert all(o.ok for o in ex.run(plan))
    # With a per-node limit of 1 nothing of ours started from node a while x migrated off it.
    assert len(created_at) == 2 and min(created_at) >= 5


def test_the_vmis_list_failing_also_fails_closed(tmp_path: Path) -> None:
    api = FakeKubeVirt(polls_to_finish=2)
    plan = make_plan(spread(1, ["a"], api))
    real = api.migrating_vmis
    left = {"n": 3}

    def flaky():
        if left["n"] > 0:
            left["n"] -= 1
            created_at_failure.append(len(api.created))
            raise ClusterError("vmis unavailable", status=503)
        return real()

    created_at_failure: list[int] = []
    api.migrating_vmis = flaky  # type: ignore[method-assign]
    ex, _ = executor(api, plan, tmp_path)
    assert all(o.ok for o in ex.run(plan))
    assert created_at_failure == [0, 0, 0]


def test_a_forbidden_list_of_migrations_fails_at_once_naming_rbac(tmp_path: Path) -> None:
    from executor.fakes import status_error
    from vm_rebalance.kube import resources as r
    from vm_rebalance.model.execution import FailureKind

    api = FakeKubeVirt()
    plan = make_plan(spread(2, ["a"], api))

    def forbidden():
        raise status_error(403, "forbidden", verb="list", resource=r.VMIMS)

    api.unfinished_migrations = forbidden  # type: ignore[method-assign]
    ex, _ = executor(api, plan, tmp_path)
    outcomes = ex.run(plan)
    assert api.created == [] and outcomes[0].failure is FailureKind.FORBIDDEN
    assert "cannot list virtualmachineinstancemigrations.kubevirt.io" in (outcomes[0].error or "")


def test_a_hold_lets_running_moves_finish_and_starts_no_new_one(tmp_path: Path) -> None:
    """A controller's graceful shutdown: no migration is cancelled; the rest is not attempted, resumable."""
    from vm_rebalance.model.cancel import CancelReason, CancelToken

    api = FakeKubeVirt(polls_to_finish=4)
    plan = make_plan(spread(8, ["a", "b", "c", "d"], api))
    ex, clock = executor(api, plan, tmp_path)
    ex.hold = CancelToken()
    ticks = {"n": 0}

    def sleep(seconds: float) -> None:
        ticks["n"] += 1
        if ticks["n"] == 2:
            ex.hold.cancel(CancelReason.SHUTDOWN)
        clock.sleep(seconds)

    ex.sleep = sleep
    outcomes = ex.run(plan)  # returns normally: nothing was interrupted
    assert len(api.created) == 5 and api.deleted == []
    succeeded = [o for o in outcomes if o.status is MoveStatus.SUCCEEDED]
    held = [o for o in outcomes if o.status is MoveStatus.NOT_ATTEMPTED]
    assert len(succeeded) == 5 and len(held) == 3
    assert all("held: shutting down" in (o.error or "") for o in held)
    assert not ex.journal.finished  # a later run resumes the rest
    again, _ = executor(api, plan, tmp_path)
    assert all(o.ok for o in again.run(plan)) and len(api.created) == 8
