"""The cold-move safety net, pins that move along, and outcomes verified before they are reported
(fake KubeVirt API; the same paths run against the simulator in tests/safety)."""

import copy
from pathlib import Path

import pytest

from executor.fakes import FakeClock, FakeKubeVirt, cold_move, live_move
from vm_rebalance.errors import ClusterError
from vm_rebalance.executor.engine import Executor
from vm_rebalance.executor.journal import Journal, RecordStatus, Step
from vm_rebalance.executor.kubevirt import PIN_ANNOTATION, existing_node_pin
from vm_rebalance.executor.runners import ColdRunner, ExecutionOptions, LiveRunner, Resolution, Runner
from vm_rebalance.executor.verify import verify
from vm_rebalance.model import AffinityChange, Basis, Goal, GoalType, MigrationLimits, PinOwnerKind, Plan
from vm_rebalance.model.execution import FailureKind, MoveStatus, Outcome

PLAN = "feedfacecafebeef"
HOST = "kubernetes.io/hostname"


def affinity(*nodes: str, extra: dict | None = None) -> dict:
    exprs = [{"key": HOST, "operator": "In", "values": list(nodes)}]
    out: dict = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": exprs}]}
        }
    }
    if extra:
        out.update(extra)
    return out


def make(cls: type[Runner], move, api: FakeKubeVirt, journal: Journal, clock: FakeClock, **opts) -> Runner:
    return cls(
        move,
        api=api,
        journal=journal,
        options=ExecutionOptions(**opts),
        report=lambda _e: None,
        clock=clock,
        plan_id=PLAN,
        kubevirt_version=api.version,
    )


def drive(runner: Runner, clock: FakeClock, limit: int = 400) -> None:
    if runner.outcome is None and runner.record.status is not RecordStatus.RUNNING:
        runner.begin()
    for _ in range(limit):
        if runner.outcome is not None or runner.step():
            return
        clock.sleep(1.0)
    raise AssertionError("the runner never finished")


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal.open(PLAN, directory=tmp_path)


def stuck_on_target(api: FakeKubeVirt, name: str) -> None:
    """The fake cluster cannot place the VM: its start stays pending, the VM reports ErrorUnschedulable."""
    api.pending_lifecycle.pop(("default", name), None)
    api.vmis.pop(("default", name), None)
    api.vms[("default", name)]["status"]["printableStatus"] = "ErrorUnschedulable"


def run_to_starting(runner: Runner, journal: Journal) -> None:
    runner.begin()
    while journal.record(runner.move.id).step is not Step.STARTING:  # type: ignore[union-attr]
        runner.step()


# ------------------------------------------------------------------------------------------ rollback


def test_a_failed_start_restores_the_exact_original_placement_and_starts_the_vm(journal: Journal) -> None:
    """Issue 11 #1: rollback by default — affinity (the user's own terms, an earlier pin of ours) back as it was."""
    api, clock = FakeKubeVirt(), FakeClock()
    original = affinity("w1", "w3", extra={"podAntiAffinity": {"keep": True}})
    api.add_vm("web", "w1", affinity=original)
    api.vms[("default", "web")]["metadata"]["annotations"] = {"other": "kept"}
    r = make(ColdRunner, cold_move(1, "web", "w1", "w3"), api, journal, clock)
    run_to_starting(r, journal)
    pinned = api.vms[("default", "web")]
    assert sorted(existing_node_pin(pinned)) == ["w1", "w3", "w3"]  # the user's rule kept, ours ANDed
    stuck_on_target(api, "web")
    drive(r, clock)
    outcome = r.outcome
    assert outcome is not None and outcome.failure is FailureKind.START_FAILED and not outcome.pinned
    assert "rolled back" in (outcome.error or "") and outcome.final_node is not None
    vm = api.vms[("default", "web")]
    assert vm["spec"]["template"]["spec"]["affinity"] == original
    assert vm["metadata"]["annotations"] == {"other": "kept"}
    assert api.running("web") and vm["spec"]["runStrategy"] == "Always"


def test_held_for_a_decision_then_rolled_back(journal: Journal) -> None:
    api, clock = FakeKubeVirt(), FakeClock()
    api.add_vm("web", "w1")
    r = make(ColdRunner, cold_move(1, "web", "w1", "w2"), api, journal, clock, hold_failed_cold_start=True)
    run_to_starting(r, journal)
    stuck_on_target(api, "web")
    assert r.step() is True
    assert r.outcome is not None and r.outcome.failure is FailureKind.START_FAILED
    assert "held for your decision" in (r.outcome.error or "")
    rec = journal.record(1)
    assert rec is not None and rec.held and rec.step is Step.HELD and rec.status is RecordStatus.FAILED
    assert not api.running("web") and existing_node_pin(api.vms[("default", "web")]) == ["w2"]
    r.resolve(Resolution.ROLLBACK)
    drive(r, clock)
    assert r.outcome is not None and "rolled back" in (r.outcome.error or "")
    assert api.running("web") and existing_node_pin(api.vms[("default", "web")]) == []


def test_held_then_left_stopped_keeps_the_pin_and_says_so(journal: Journal) -> None:
    api, clock = FakeKubeVirt(), FakeClock()
    api.add_vm("web", "w1")
    r = make(ColdRunner, cold_move(1, "web", "w1", "w2"), api, journal, clock, hold_failed_cold_start=True)
    run_to_starting(r, journal)
    stuck_on_target(api, "web")
    r.step()
    r.resolve(Resolution.LEAVE_STOPPED)
    drive(r, clock)
    assert r.outcome is not None and r.outcome.pinned and "left stopped as you chose" in (r.outcome.error or "")
    vm = api.vms[("default", "web")]
    assert vm["spec"]["runStrategy"] == "Halted" and existing_node_pin(vm) == ["w2"]


def test_a_retry_after_holding_starts_from_a_new_attempt_and_keeps_the_original(journal: Journal) -> None:
    api, clock = FakeKubeVirt(), FakeClock()
    api.add_vm("web", "w1", affinity=affinity("w1", "w2"))
    original = copy.deepcopy(api.vms[("default", "web")]["spec"]["template"]["spec"]["affinity"])
    r = make(ColdRunner, cold_move(1, "web", "w1", "w2"), api, journal, clock, hold_failed_cold_start=True)
    run_to_starting(r, journal)
    stuck_on_target(api, "web")
    r.step()
    retry = make(ColdRunner, cold_move(1, "web", "w1", "w2"), api, journal, clock)
    drive(retry, clock)
    assert retry.outcome is not None and retry.outcome.ok and api.node_of("web") == "w2"
    assert journal.record(1).attempt == 2 and journal.record(1).original_affinity == original  # type: ignore[union-attr]


def test_a_failure_between_stop_and_start_rolls_back_rather_than_leaving_the_vm_down(journal: Journal) -> None:
    api, clock = FakeKubeVirt(), FakeClock()
    api.add_vm("web", "w1")
    real = api.add_pin

    def refused(*args, **kwargs):
        raise ClusterError("forbidden: cannot patch virtualmachines.kubevirt.io", status=403)

    api.add_pin = refused  # type: ignore[method-assign]
    r = make(ColdRunner, cold_move(1, "web", "w1", "w2"), api, journal, clock)
    drive(r, clock)
    api.add_pin = real  # type: ignore[method-assign]
    assert r.outcome is not None and not r.outcome.ok and api.running("web")
    assert "rolled back" in (r.outcome.error or "")


def test_an_interrupt_between_stop_and_start_finishes_the_safe_path(journal: Journal) -> None:
    api, clock = FakeKubeVirt(lifecycle_polls=2), FakeClock()
    api.add_vm("web", "w1")
    r = make(ColdRunner, cold_move(1, "web", "w1", "w2"), api, journal, clock)
    r.begin()
    while journal.record(1).step is not Step.PIN:  # type: ignore[union-attr]
        r.step()
    state = r.interrupt(clock.sleep)
    assert api.running("web"), state
    assert "runs on" in state and existing_node_pin(api.vms[("default", "web")]) == []


def test_cluster_unavailable_during_a_cold_move_keeps_the_journal_open_for_resume(journal: Journal) -> None:
    api, clock = FakeKubeVirt(), FakeClock()
    api.add_vm("web", "w1")
    r = make(ColdRunner, cold_move(1, "web", "w1", "w2"), api, journal, clock)
    r.begin()
    api.start_refused.add("web")
    r.give_up("the cluster kept failing to answer (503)")
    assert r.outcome is not None and r.outcome.failure is FailureKind.CLUSTER_UNAVAILABLE
    assert "vm-rebalance resume" in (r.outcome.error or "")
    assert journal.record(1).status is RecordStatus.RUNNING  # type: ignore[union-attr]


# ------------------------------------------------------------------------------------ pins move along


def test_a_live_move_of_a_vm_we_pinned_moves_the_pin_and_restores_it_on_failure(journal: Journal) -> None:
    """Issue 11 #2: the tool's own pin is the tool's to change — no flag needed."""
    api, clock = FakeKubeVirt(), FakeClock()
    api.add_vm("mq", "w6", affinity=affinity("w6"))
    api.vms[("default", "mq")]["metadata"]["annotations"] = {PIN_ANNOTATION: "w6"}
    before = copy.deepcopy(api.vms[("default", "mq")])
    api.fail_vms.add("mq")
    r = make(LiveRunner, live_move(1, "mq", "w6", "w4"), api, journal, clock)
    drive(r, clock)
    assert r.outcome is not None and r.outcome.failure is FailureKind.MIGRATION_FAILED
    assert "put back" in (r.outcome.error or "")
    after = api.vms[("default", "mq")]
    assert after["spec"]["template"]["spec"]["affinity"] == before["spec"]["template"]["spec"]["affinity"]
    assert after["metadata"]["annotations"] == {PIN_ANNOTATION: "w6"}
    api.fail_vms.clear()
    second = make(LiveRunner, live_move(1, "mq", "w6", "w4"), api, journal, clock)
    drive(second, clock)
    assert second.outcome is not None and second.outcome.ok and second.outcome.pinned
    assert existing_node_pin(api.vms[("default", "mq")]) == ["w4"] and api.node_of("mq") == "w4"
    assert api.vms[("default", "mq")]["metadata"]["annotations"] == {PIN_ANNOTATION: "w4"}


def test_a_user_pin_is_replaced_only_with_the_plans_approval(journal: Journal) -> None:
    """Issue 11 #3: caught before anything changes; with the plan's AffinityChange the runner replaces it."""
    api, clock = FakeKubeVirt(), FakeClock()
    api.add_vm("app", "w3", affinity=affinity("w3", "w4"))
    refused = make(ColdRunner, cold_move(1, "app", "w3", "w6"), api, journal, clock)
    drive(refused, clock)
    assert refused.outcome is not None and refused.outcome.failure is FailureKind.USER_AFFINITY
    assert "nothing was changed" in (refused.outcome.error or "") and ("stop", "app") not in api.calls
    approved = cold_move(1, "app", "w3", "w6")
    change = AffinityChange(owner=PinOwnerKind.USER, before=("w3", "w4"), after=("w6",))
    approved = approved.__class__(
        **{**{f: getattr(approved, f) for f in approved.__dataclass_fields__}, "affinity": change}
    )
    ok = make(ColdRunner, approved, api, Journal.open("other", store=journal.store), clock)
    drive(ok, clock)
    assert ok.outcome is not None and ok.outcome.ok and existing_node_pin(api.vms[("default", "app")]) == ["w6"]


def test_a_user_pin_that_allows_the_target_is_kept_and_anded(journal: Journal) -> None:
    api, clock = FakeKubeVirt(), FakeClock()
    api.add_vm("app", "w4", affinity=affinity("w3", "w4"))
    r = make(ColdRunner, cold_move(1, "app", "w4", "w3"), api, journal, clock)
    drive(r, clock)
    assert r.outcome is not None and r.outcome.ok
    assert sorted(existing_node_pin(api.vms[("default", "app")])) == ["w3", "w3", "w4"]


# ------------------------------------------------------------------------------------- verification


def _plan(*moves) -> Plan:
    return Plan(goal=Goal(type=GoalType.MANUAL), basis=Basis.REQUESTS, moves=tuple(moves))


def test_a_cancelled_move_that_completed_is_reported_moved(journal: Journal) -> None:
    """Issue 11 #5: Ctrl-C after the migration completed — the VM is on the target, the report says moved."""
    api, clock = FakeKubeVirt(polls_to_finish=3), FakeClock()
    api.add_vm("db", "w1")
    r = make(LiveRunner, live_move(1, "db", "w1", "w2"), api, journal, clock)
    r.begin()
    r.step()
    api.get_migration("default", "vmr-feedfaceca-1-1")
    api.get_migration("default", "vmr-feedfaceca-1-1")  # KubeVirt finishes it meanwhile
    assert api.node_of("db") == "w2"
    state = r.interrupt()
    assert r.outcome is not None and r.outcome.status is MoveStatus.SUCCEEDED
    assert "before the cancel" in state


def test_verification_corrects_an_interrupted_move_whose_vm_arrived_and_a_done_move_that_did_not(
    journal: Journal,
) -> None:
    api = FakeKubeVirt()
    api.add_vm("a", "w2")
    api.add_vm("b", "w1")
    cancelled = Outcome(
        move=live_move(1, "a", "w1", "w2"),
        status=MoveStatus.FAILED,
        failure=FailureKind.INTERRUPTED,
        error="interrupted",
    )
    claimed = Outcome(move=live_move(2, "b", "w1", "w3"), status=MoveStatus.SUCCEEDED)
    fixed = verify(api, cancelled)
    assert fixed.status is MoveStatus.SUCCEEDED and fixed.state == "Running on w2" and fixed.final_node == "w2"
    caught = verify(api, claimed)
    assert caught.status is MoveStatus.FAILED and caught.failure is FailureKind.WRONG_NODE
    assert "Running on w1" in (caught.error or "")


def test_no_state_is_claimed_that_was_not_read(journal: Journal) -> None:
    """Issue 16 #3: with every VMI read failing the report says it could not read, never 'stays on'."""
    api = FakeKubeVirt()
    api.add_vm("a", "w1")

    def failing(*_a, **_k):
        raise ClusterError("get virtualmachineinstances failed with HTTP 503", status=503)

    api.get_vmi = failing  # type: ignore[method-assign]
    out = verify(
        api,
        Outcome(
            move=live_move(1, "a", "w1", "w2"),
            status=MoveStatus.FAILED,
            failure=FailureKind.CLUSTER_UNAVAILABLE,
            error="x",
        ),
    )
    assert out.state is None and out.final_node is None and any("not verified" in n for n in out.notes)


def test_resume_redoes_a_move_the_journal_calls_done_when_the_cluster_disagrees(tmp_path: Path) -> None:
    """Issue 16 #2: the journal's "succeeded" is not trusted — moved by hand since, it runs again."""
    api, clock = FakeKubeVirt(polls_to_finish=2), FakeClock()
    api.clock = clock
    api.add_vm("a", "w1")
    api.add_vm("b", "w1")
    plan = _plan(live_move(1, "a", "w1", "w2"), live_move(2, "b", "w1", "w3"))

    def executor() -> Executor:
        return Executor(
            api,
            limits=MigrationLimits(),
            kubevirt_version=api.version,
            journal=Journal.open("p", directory=tmp_path),
            options=ExecutionOptions(poll_interval_seconds=1.0),
            clock=clock,
            sleep=clock.sleep,
        )

    first = executor().run(plan)
    assert all(o.ok for o in first)
    api.vmis[("default", "a")]["status"]["nodeName"] = "w5"  # someone moved it by hand
    again = executor().run(plan)
    by_id = {o.move.id: o for o in again}
    assert by_id[1].ok and "earlier run" not in " ".join(by_id[1].notes) and api.node_of("a") == "w2"
    assert by_id[2].ok and any("earlier run" in n for n in by_id[2].notes) and by_id[2].state == "Running on w3"
    assert len(api.created) == 3  # one more migration, for the VM that was not where the journal said
