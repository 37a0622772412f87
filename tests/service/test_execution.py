"""A Run: one approved plan carried out across the attempts a failure may need (fakes, no HTTP)."""

from pathlib import Path

from executor.fakes import FakeClock, FakeKubeVirt, live_move
from factories import make_node, make_state
from vm_rebalance.executor.engine import Executor, plan_id
from vm_rebalance.executor.journal import Journal
from vm_rebalance.model import Basis, ClusterState, Goal, GoalType, MigrationLimits, MigrationMethod, Plan
from vm_rebalance.model.cancel import CancelToken
from vm_rebalance.service import ExecutionOptions, FailureChoice, MoveStatus, Run


class FakeLock:
    """The single-writer lock as a Run uses it (the real one is tested against the simulator)."""

    def __init__(self, holders: list[str], what: str) -> None:
        self.holders, self.what = holders, what

    def acquire(self, *, wait_seconds: float = 0.0) -> None:
        self.holders.append(self.what)

    def keep_renewing(self, on_lost: object) -> None:
        pass

    def release(self) -> None:
        self.holders.remove(self.what)


class FakeSession:
    """What a Run needs of a Session: the state, an executor over the fake API, a refresh, the lock."""

    def __init__(self, api: FakeKubeVirt, state: ClusterState, journal_dir: Path) -> None:
        self.api = api
        self.state = state
        self.journal_dir = journal_dir
        self.clock = FakeClock()
        api.clock = self.clock
        self.refreshed = 0
        self.holders: list[str] = []

    def writer_lock(self, what: str) -> FakeLock:
        return FakeLock(self.holders, what)

    def executor(
        self,
        plan: Plan,
        *,
        options: ExecutionOptions,
        journal_id: str | None = None,
        fresh: bool = True,
        cancel: CancelToken | None = None,
    ) -> Executor:
        journal = Journal.open(journal_id or plan_id(plan), directory=self.journal_dir, fresh=fresh)
        return Executor(
            self.api,
            limits=MigrationLimits(parallel_per_cluster=5, parallel_outbound_per_node=2),
            kubevirt_version=self.api.version,
            journal=journal,
            options=options,
            clock=self.clock,
            sleep=self.clock.sleep,
            cancel=cancel,
        )

    def refresh(self) -> ClusterState:
        self.refreshed += 1
        return self.state


def _run(tmp_path: Path, api: FakeKubeVirt, moves: list) -> Run:
    plan = Plan(goal=Goal(type=GoalType.MANUAL), basis=Basis.REQUESTS, moves=tuple(moves))
    state = make_state([make_node("a"), make_node("b"), make_node("t")], [])
    session = FakeSession(api, state, tmp_path)
    return Run(session, plan, options=ExecutionOptions(poll_interval_seconds=1.0), warnings=("w",))  # type: ignore[arg-type]


def test_a_clean_run_reports_every_move(tmp_path: Path) -> None:
    api = FakeKubeVirt(polls_to_finish=2)
    api.add_vm("vm1", "a")
    api.add_vm("vm2", "b")
    run = _run(tmp_path, api, [live_move(1, "vm1", "a", "t"), live_move(2, "vm2", "b", "t")])
    report = run.execute()
    assert report.complete and not report.failed and report.warnings == ("w",)
    assert [o.move.id for o in report.outcomes] == [1, 2]
    assert api.node_of("vm1") == api.node_of("vm2") == "t"
    assert run.choose(FailureChoice.RETRY) is False  # nothing failed: nothing to continue
    assert report.to_document()["complete"] is True


def test_retry_cold_after_a_failure_then_the_report_covers_both_attempts(tmp_path: Path) -> None:
    api = FakeKubeVirt(polls_to_finish=2)
    api.add_vm("vm1", "a")
    api.add_vm("vm2", "a")
    api.fail_vms.add("vm1")
    run = _run(tmp_path, api, [live_move(1, "vm1", "a", "t", gib=1), live_move(2, "vm2", "a", "t", gib=8)])
    first = run.execute()
    assert [o.move.id for o in first.failed] == [1]
    assert not first.complete and api.node_of("vm1") == "a"
    assert run.choose(FailureChoice.RETRY_COLD) is True
    api.fail_vms.clear()
    second = run.execute()
    assert second.complete, second.outcomes
    by_id = {o.move.id: o for o in second.outcomes}
    assert by_id[1].move.method is MigrationMethod.COLD  # retried cold
    assert api.node_of("vm1") == "t" and api.node_of("vm2") == "t"
    assert [o.move.id for o in second.outcomes] == [1, 2]  # the approved plan's order


def test_skip_marks_the_failed_move_and_continues(tmp_path: Path) -> None:
    api = FakeKubeVirt(polls_to_finish=2)
    api.add_vm("vm1", "a")
    api.add_vm("vm2", "b")
    api.fail_vms.add("vm1")
    run = _run(tmp_path, api, [live_move(1, "vm1", "a", "t", gib=1), live_move(2, "vm2", "b", "t", gib=8)])
    run.execute()
    assert run.choose(FailureChoice.SKIP) is True
    report = run.execute()
    by_id = {o.move.id: o.status for o in report.outcomes}
    assert by_id[1] is MoveStatus.SKIPPED and by_id[2] is MoveStatus.SUCCEEDED
    assert api.node_of("vm1") == "a"  # the skipped VM stays on its source


def test_abort_stops(tmp_path: Path) -> None:
    api = FakeKubeVirt(polls_to_finish=2)
    api.add_vm("vm1", "a")
    api.fail_vms.add("vm1")
    run = _run(tmp_path, api, [live_move(1, "vm1", "a", "t")])
    run.execute()
    assert run.choose(FailureChoice.ABORT) is False
    assert run.report.failed and api.node_of("vm1") == "a"
