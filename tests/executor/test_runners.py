"""LiveRunner and ColdRunner step by step against the fake KubeVirt API."""

from pathlib import Path

import pytest

from executor.fakes import FakeClock, FakeKubeVirt, cold_move, live_move
from vm_rebalance.errors import ClusterError
from vm_rebalance.executor.events import FailureKind, MoveEvent, MoveStatus
from vm_rebalance.executor.journal import Journal
from vm_rebalance.executor.kubevirt import PIN_ANNOTATION, TEMP_PIN_ANNOTATION, existing_node_pin
from vm_rebalance.executor.runners import ColdRunner, ExecutionOptions, LiveRunner, Runner, unpin_vm

PLAN = "feedfacecafebeef"


def make(
    cls: type[Runner],
    move,
    api: FakeKubeVirt,
    journal: Journal,
    clock: FakeClock,
    events: list[MoveEvent] | None = None,
    **opts,
) -> Runner:
    return cls(
        move,
        api=api,
        journal=journal,
        options=ExecutionOptions(**opts),
        report=(events if events is not None else []).append,
        clock=clock,
        plan_id=PLAN,
        kubevirt_version=api.version,
    )


def drive(runner: Runner, clock: FakeClock, limit: int = 200) -> None:
    runner.begin()
    for _ in range(limit):
        if runner.outcome is not None or runner.step():
            return
        clock.sleep(1.0)
    raise AssertionError("the runner never finished")


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal.open(PLAN, directory=tmp_path)


def test_live_with_added_node_selector(journal: Journal) -> None:
    api, clock = FakeKubeVirt(), FakeClock()
    api.add_vm("db", "w1")
    events: list[MoveEvent] = []
    r = make(LiveRunner, live_move(1, "db", "w1", "w2"), api, journal, clock, events)
    drive(r, clock)
    assert r.outcome is not None and r.outcome.ok and r.outcome.final_node == "w2"
    assert api.created[0]["metadata"]["name"] == "vmr-feedfaceca-1-1"
    assert api.created[0]["spec"]["addedNodeSelector"] == {"kubernetes.io/hostname": "w2"}
    assert api.patches == []  # no VM edit on KubeVirt >= 1.6
    rec = journal.record(1)
    assert rec is not None and rec.status == "succeeded" and rec.attempt == 1
    assert events[-1].status is MoveStatus.SUCCEEDED


def test_live_before_1_6_uses_a_temporary_affinity_and_removes_it(journal: Journal) -> None:
    api, clock = FakeKubeVirt(version="v1.5.0"), FakeClock()
    api.add_vm("db", "w1", affinity={"podAntiAffinity": {"keep": True}})
    r = make(LiveRunner, live_move(1, "db", "w1", "w3"), api, journal, clock)
    r.begin()
    vm = api.vms[("default", "db")]
    assert existing_node_pin(vm) == ["w3"] and vm["metadata"]["annotations"][TEMP_PIN_ANNOTATION] == "w3"
    assert "addedNodeSelector" not in api.created[0]["spec"]
    assert journal.record(1).temporary_affinity  # type: ignore[union-attr]
    while not r.step():
        clock.sleep(1)
    assert r.outcome is not None and r.outcome.ok and api.node_of("db") == "w3"
    vm = api.vms[("default", "db")]
    assert existing_node_pin(vm) == [] and TEMP_PIN_ANNOTATION not in vm["metadata"]["annotations"]
    assert vm["spec"]["template"]["spec"]["affinity"] == {"podAntiAffinity": {"keep": True}}
    assert not journal.record(1).temporary_affinity  # type: ignore[union-attr]


def test_live_before_1_6_follows_a_migration_started_by_kubevirt(journal: Journal) -> None:
    api, clock = FakeKubeVirt(version="v1.5.0"), FakeClock()
    api.add_vm("db", "w1")
    api.create_migration("default", "kubevirt-workload-update-x", "db", target="w2", plan_id="other")
    r = make(LiveRunner, live_move(1, "db", "w1", "w2"), api, journal, clock)
    drive(r, clock)
    assert r.outcome is not None and r.outcome.ok
    assert [m["metadata"]["name"] for m in api.created] == ["kubevirt-workload-update-x"]
    assert r.outcome.migration_name == "kubevirt-workload-update-x"


def test_live_failure_reports_reason_and_cleans_up(journal: Journal) -> None:
    api, clock = FakeKubeVirt(version="v1.5.0"), FakeClock()
    api.add_vm("db", "w1")
    api.fail_vms.add("db")
    r = make(LiveRunner, live_move(1, "db", "w1", "w2"), api, journal, clock)
    drive(r, clock)
    assert r.outcome is not None and r.outcome.status is MoveStatus.FAILED
    assert "injected failure" in (r.outcome.error or "") and "the VM runs on w1" in (r.outcome.error or "")
    assert r.outcome.failure is FailureKind.MIGRATION_FAILED
    assert existing_node_pin(api.vms[("default", "db")]) == []


def test_live_rejection_is_classified_by_message(journal: Journal) -> None:
    api, clock = FakeKubeVirt(), FakeClock()
    api.add_vm("db", "w1")
    api.create_migration("default", "someone-else", "db", target="w3", plan_id="x")
    r = make(LiveRunner, live_move(1, "db", "w1", "w2"), api, journal, clock)
    r.begin()
    assert r.outcome is not None and r.outcome.error is not None
    assert r.outcome.error.startswith("in-flight migration detected")
    assert r.outcome.failure is FailureKind.MIGRATION_IN_FLIGHT


def test_live_timeout_cancels_the_migration(journal: Journal) -> None:
    api, clock = FakeKubeVirt(polls_to_finish=10_000), FakeClock()
    api.add_vm("db", "w1")
    r = make(
        LiveRunner,
        live_move(1, "db", "w1", "w2", gib=1),
        api,
        journal,
        clock,
        timeout_per_gib_seconds=5,
        min_timeout_seconds=10,
    )
    drive(r, clock)
    assert r.outcome is not None and r.outcome.status is MoveStatus.FAILED
    assert "timed out" in (r.outcome.error or "") and api.deleted == ["vmr-feedfaceca-1-1"]
    assert r.outcome.failure is FailureKind.MIGRATION_TIMEOUT


def test_live_interrupt_cancels(journal: Journal) -> None:
    api, clock = FakeKubeVirt(polls_to_finish=100), FakeClock()
    api.add_vm("db", "w1")
    r = make(LiveRunner, live_move(1, "db", "w1", "w2"), api, journal, clock)
    r.begin()
    r.step()
    state = r.interrupt()
    assert "migration cancelled; Running on w1" in state and api.deleted == ["vmr-feedfaceca-1-1"]
    assert r.outcome is not None and r.outcome.failure is FailureKind.INTERRUPTED
    assert journal.record(1).status == "failed"  # type: ignore[union-attr]


def test_live_retry_uses_a_new_attempt_and_name(journal: Journal) -> None:
    api, clock = FakeKubeVirt(), FakeClock()
    api.add_vm("db", "w1")
    api.fail_vms.add("db")
    drive(make(LiveRunner, live_move(1, "db", "w1", "w2"), api, journal, clock), clock)
    api.fail_vms.clear()
    r = make(LiveRunner, live_move(1, "db", "w1", "w2"), api, journal, clock)
    drive(r, clock)
    assert r.outcome is not None and r.outcome.ok
    assert [m["metadata"]["name"] for m in api.created] == ["vmr-feedfaceca-1-1", "vmr-feedfaceca-1-2"]
    assert journal.record(1).attempt == 2  # type: ignore[union-attr]


def test_live_resume_after_crash_before_the_create_call(journal: Journal) -> None:
    """The name is journalled before the migration is created: resume creates it once, with that name."""
    api, clock = FakeKubeVirt(), FakeClock()
    api.add_vm("db", "w1")
    r = make(LiveRunner, live_move(1, "db", "w1", "w2"), api, journal, clock)
    r.begin()
    assert journal.record(1).migration == "vmr-feedfaceca-1-1"  # type: ignore[union-attr]
    api.migrations.clear()  # as if the process died before the POST reached the server
    api.created.clear()
    reopened = Journal.open(PLAN, store=journal.store)
    r2 = make(LiveRunner, live_move(1, "db", "w1", "w2"), api, reopened, clock)
    drive(r2, clock)
    assert r2.outcome is not None and r2.outcome.ok, r2.outcome
    assert [m["metadata"]["name"] for m in api.created] == ["vmr-feedfaceca-1-1"]
    assert reopened.record(1).attempt == 1  # type: ignore[union-attr]


def test_live_resume_follows_the_journalled_migration(journal: Journal) -> None:
    api, clock = FakeKubeVirt(), FakeClock()
    api.add_vm("db", "w1")
    make(LiveRunner, live_move(1, "db", "w1", "w2"), api, journal, clock).begin()
    reopened = Journal.open(PLAN, store=journal.store)
    r2 = make(LiveRunner, live_move(1, "db", "w1", "w2"), api, reopened, clock)
    drive(r2, clock)
    assert r2.outcome is not None and r2.outcome.ok and len(api.created) == 1
    assert reopened.record(1).attempt == 1  # type: ignore[union-attr]


# ----------------------------------------------------------------------------------------------- cold


def test_cold_move_in_the_seeds_order(journal: Journal) -> None:
    api, clock = FakeKubeVirt(lifecycle_polls=2), FakeClock()
    api.add_vm("web", "w1")
    r = make(ColdRunner, cold_move(1, "web", "w1", "w2"), api, journal, clock)
    drive(r, clock)
    assert r.outcome is not None and r.outcome.ok and r.outcome.pinned and r.outcome.final_node == "w2"
    assert [c for c in api.calls if c[0] in ("stop", "start")] == [("stop", "web"), ("start", "web")]
    vm = api.vms[("default", "web")]
    assert existing_node_pin(vm) == ["w2"] and vm["metadata"]["annotations"][PIN_ANNOTATION] == "w2"
    assert vm["spec"]["runStrategy"] == "Always"
    # the pin was written while the VM was stopped, with the resourceVersion read after the stop
    pin_index = next(i for i, c in enumerate(api.calls) if c == ("start", "web"))
    assert ("get_vm", "web") in api.calls[:pin_index]
    assert unpin_vm(api, "default", "web") is True
    assert existing_node_pin(api.vms[("default", "web")]) == []
    assert unpin_vm(api, "default", "web") is False


def test_cold_move_restores_a_manual_run_strategy(journal: Journal) -> None:
    api, clock = FakeKubeVirt(), FakeClock()
    api.add_vm("web", "w1", run_strategy="Manual")
    r = make(ColdRunner, cold_move(1, "web", "w1", "w2"), api, journal, clock)
    drive(r, clock)
    assert r.outcome is not None and r.outcome.ok
    assert api.vms[("default", "web")]["spec"]["runStrategy"] == "Manual"
    assert journal.record(1).original_run_strategy == "Manual"  # type: ignore[union-attr]


def test_cold_move_of_a_stopped_vm_only_pins(journal: Journal) -> None:
    api, clock = FakeKubeVirt(), FakeClock()
    api.add_vm("off", None)
    r = make(ColdRunner, cold_move(1, "off", None, "w3", running=False), api, journal, clock)
    drive(r, clock)
    assert r.outcome is not None and r.outcome.ok and r.outcome.pinned
    assert not [c for c in api.calls if c[0] in ("stop", "start")]
    assert ("default", "off") not in api.vmis
    assert api.vms[("default", "off")]["spec"]["runStrategy"] == "Halted"


def test_cold_move_refuses_to_replace_a_foreign_pin(journal: Journal) -> None:
    api, clock = FakeKubeVirt(), FakeClock()
    api.add_vm(
        "web",
        "w1",
        affinity={
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["w1"]}]}
                    ]
                }
            }
        },
    )
    r = make(ColdRunner, cold_move(1, "web", "w1", "w2"), api, journal, clock)
    drive(r, clock)
    assert r.outcome is not None and "--replace-affinity" in (r.outcome.error or "")
    assert r.outcome.failure is FailureKind.USER_AFFINITY
    assert api.calls.count(("stop", "web")) == 0
    r = make(ColdRunner, cold_move(1, "web", "w1", "w2"), api, journal, clock, replace_affinity=True)
    drive(r, clock)
    assert r.outcome is not None and r.outcome.ok and api.node_of("web") == "w2"


def test_cold_move_pin_retries_on_conflict(journal: Journal) -> None:
    api, clock = FakeKubeVirt(), FakeClock()
    api.add_vm("web", "w1")
    r = make(ColdRunner, cold_move(1, "web", "w1", "w2"), api, journal, clock)
    r.begin()
    while journal.record(1).step != "pin":  # type: ignore[union-attr]
        r.step()
    api.conflicts = 2
    api.concurrent_edit = lambda vm: vm["metadata"].setdefault("labels", {}).update(other="writer")
    while not r.step():
        pass
    assert r.outcome is not None and r.outcome.ok
    vm = api.vms[("default", "web")]
    assert vm["metadata"]["labels"] == {"other": "writer"} and existing_node_pin(vm) == ["w2"]


def test_cold_interrupt_never_leaves_the_vm_stopped(journal: Journal) -> None:
    api, clock = FakeKubeVirt(lifecycle_polls=5), FakeClock()
    api.add_vm("web", "w1")
    r = make(ColdRunner, cold_move(1, "web", "w1", "w2"), api, journal, clock)
    r.begin()
    api.get_vm("default", "web")
    api.pending_lifecycle[("default", "web")] = ("stop", 0)
    api.get_vm("default", "web")  # now stopped
    r.interrupt()
    assert ("start", "web") in api.calls


def test_cold_resume_continues_at_the_journalled_step(journal: Journal) -> None:
    api, clock = FakeKubeVirt(), FakeClock()
    api.add_vm("web", "w1")
    r = make(ColdRunner, cold_move(1, "web", "w1", "w2"), api, journal, clock)
    r.begin()
    while journal.record(1).step != "starting":  # type: ignore[union-attr]
        r.step()
    reopened = Journal.open(PLAN, store=journal.store)
    r2 = make(ColdRunner, cold_move(1, "web", "w1", "w2"), api, reopened, clock)
    drive(r2, clock)
    assert r2.outcome is not None and r2.outcome.ok
    assert api.calls.count(("stop", "web")) == 1 and api.calls.count(("start", "web")) == 1


def test_live_move_on_old_kubevirt_follows_a_migration_kubevirt_started_itself(tmp_path):
    """KubeVirt < 1.6: after the temporary affinity, a workload-updater migration is adopted, not duplicated."""
    from vm_rebalance.executor.events import MoveStatus
    from vm_rebalance.executor.journal import Journal
    from vm_rebalance.executor.runners import ExecutionOptions, LiveRunner

    api = FakeKubeVirt(version="v1.5.0", polls_to_finish=2)
    api.add_vm("web", "n1")
    move = live_move(1, "web", "n1", "n2")
    updater = api.create_migration("default", "kubevirt-workload-update-abc", "web", target=None, plan_id="x")
    api.migrations[("default", "kubevirt-workload-update-abc")]["_dest"] = "n2"  # it follows the new affinity
    assert updater.name == "kubevirt-workload-update-abc" and not updater.final
    created_before = len(api.created)
    runner = LiveRunner(
        move,
        api=api,
        journal=Journal.open("p1", directory=tmp_path),
        options=ExecutionOptions(),
        report=lambda _e: None,
        plan_id="p1" * 8,
        kubevirt_version="v1.5.0",
    )
    runner.begin()
    assert runner.record.migration == updater.name
    assert len(api.created) == created_before  # no second migration
    while not runner.step():
        pass
    assert runner.outcome is not None and runner.outcome.status is MoveStatus.SUCCEEDED
    assert api.node_of("web") == "n2"
    assert api.get_vm("default", "web").pins.temporary is None
    assert TEMP_PIN_ANNOTATION not in api.vms[("default", "web")]["metadata"]["annotations"]


def test_cold_failure_after_the_stop_starts_the_vm_again_and_a_retry_finishes_the_move(journal: Journal) -> None:
    """Review finding: a failed pin must not leave the VM stopped, and the retry must still start it."""
    api, clock = FakeKubeVirt(lifecycle_polls=1), FakeClock()
    api.add_vm("web", "w1")
    original_patch = api.patch_vm_guarded
    calls = {"n": 0}

    def forbidden_once(vm, ops):
        calls["n"] += 1
        if calls["n"] == 1:
            raise ClusterError("forbidden: cannot patch virtualmachines.kubevirt.io", status=403)
        return original_patch(vm, ops)

    api.patch_vm_guarded = forbidden_once  # type: ignore[method-assign]
    first = make(ColdRunner, cold_move(1, "web", "w1", "w2"), api, journal, clock)
    drive(first, clock)
    assert first.outcome is not None and not first.outcome.ok
    assert "rolled back: the VM runs on old-node again" in (first.outcome.error or ""), first.outcome.error
    assert api.calls.count(("start", "web")) == 1  # restarted after the failed pin
    assert api.running("web") and existing_node_pin(api.vms[("default", "web")]) == []

    # The retry (same journal) remembers the VM was running and so starts it on the target.
    retry = make(ColdRunner, cold_move(1, "web", "w1", "w2"), api, journal, clock)
    assert retry.record.was_running is True
    drive(retry, clock)
    assert retry.outcome is not None and retry.outcome.ok, retry.outcome
    assert api.node_of("web") == "w2"


def test_live_move_survives_transient_read_errors_and_gives_up_safely_after_many(tmp_path: Path) -> None:
    """The list of migrations works while the move is admitted, then every read of it fails for a while."""
    from vm_rebalance.executor.engine import Executor
    from vm_rebalance.model import MigrationLimits, Plan
    from vm_rebalance.model.plan import Basis, Goal, GoalType

    def run(failures: int):
        api, clock = FakeKubeVirt(polls_to_finish=2), FakeClock()
        api.clock = clock
        api.add_vm("db", "n1")
        real_get, real_list = api.get_migration, api.unfinished_migrations
        left = {"n": failures}

        def flaky(*args, **kwargs):
            if api.created and left["n"] > 0:  # once the migration exists, reading it fails for a while
                left["n"] -= 1
                raise ClusterError("the API server is unavailable (503)", status=503)
            return real_get(*args, **kwargs)

        def list_once():
            if api.lists == 0:
                return real_list()
            api.lists += 1
            raise ClusterError("list failed", status=503)

        api.get_migration = flaky  # type: ignore[method-assign]
        api.unfinished_migrations = list_once  # type: ignore[method-assign]
        plan = Plan(goal=Goal(type=GoalType.MANUAL), basis=Basis.REQUESTS, moves=(live_move(1, "db", "n1", "n2"),))
        ex = Executor(
            api,
            limits=MigrationLimits(),
            kubevirt_version=api.version,
            journal=Journal.open(f"p{failures}", directory=tmp_path),
            options=ExecutionOptions(poll_interval_seconds=1.0),
            clock=clock,
            sleep=clock.sleep,
        )
        return api, ex.run(plan)

    api, outcomes = run(3)
    assert outcomes[0].ok and api.node_of("db") == "n2", outcomes[0]
    api, outcomes = run(10_000)
    assert not outcomes[0].ok and "kept failing" in (outcomes[0].error or "")
    assert outcomes[0].failure is FailureKind.CLUSTER_UNAVAILABLE
    assert api.deleted  # the migration was cancelled, not left running unobserved


def test_the_live_timeout_follows_the_clusters_completion_timeout(journal: Journal) -> None:
    from vm_rebalance.executor.engine import Executor
    from vm_rebalance.model import MigrationLimits

    api = FakeKubeVirt()
    ex = Executor(
        api, limits=MigrationLimits(completion_timeout_per_gib_seconds=300), kubevirt_version="v1.6.0", journal=journal
    )
    assert ex.options.per_gib == 300
    ex = Executor(
        api,
        limits=MigrationLimits(completion_timeout_per_gib_seconds=300),
        kubevirt_version="v1.6.0",
        journal=journal,
        options=ExecutionOptions(timeout_per_gib_seconds=60),
    )
    assert ex.options.per_gib == 60  # the user's --timeout-per-gib wins


def test_a_live_move_of_a_vm_kubevirt_cannot_migrate_fails_with_its_kind(journal: Journal) -> None:
    """The webhook's "Cannot migrate VMI, Reason: DisksNotLiveMigratable" arrives classified, whatever its words."""
    from executor.fakes import WEBHOOK, status_error
    from vm_rebalance.kube import resources as r

    api, clock = FakeKubeVirt(), FakeClock()
    api.add_vm("db", "w1")

    def refuse(resource, body, *, namespace=None):
        message = WEBHOOK.format(name=body["metadata"]["name"]) + (
            "Cannot migrate VMI, Reason: DisksNotLiveMigratable, Message: cannot migrate VMI: PVC root is not shared"
        )
        raise status_error(400, message, reason="Forbidden", verb="create", resource=r.VMIMS)

    api.create = refuse  # type: ignore[method-assign]
    runner = make(LiveRunner, live_move(1, "db", "w1", "w2"), api, journal, clock)
    runner.begin()
    assert runner.outcome is not None and runner.outcome.failure is FailureKind.NOT_LIVE_MIGRATABLE
    assert runner.outcome.error is not None and runner.outcome.error.startswith("Cannot migrate VMI")
    assert journal.record(1).failure is FailureKind.NOT_LIVE_MIGRATABLE  # type: ignore[union-attr]


def test_a_cold_move_that_cannot_start_on_its_target_fails_with_start_failed(journal: Journal) -> None:
    api, clock = FakeKubeVirt(), FakeClock()
    api.add_vm("web", "w1")
    r = make(ColdRunner, cold_move(1, "web", "w1", "w2"), api, journal, clock)
    r.begin()
    while journal.record(1).step != "starting":  # type: ignore[union-attr]
        r.step()
    api.pending_lifecycle.clear()
    api.vms[("default", "web")]["status"]["printableStatus"] = "ErrorUnschedulable"
    assert not r.step()  # the safety net: roll back instead of leaving the VM down
    assert journal.record(1).step == "rollback-stopping"  # type: ignore[union-attr]
    while not r.step():
        clock.sleep(1)
    assert r.outcome is not None and r.outcome.failure is FailureKind.START_FAILED
    assert "rolled back: the VM runs on old-node again" in (r.outcome.error or ""), r.outcome.error
    assert api.running("web") and existing_node_pin(api.vms[("default", "web")]) == []


def test_a_cold_stop_refused_by_the_run_strategy_keeps_its_kind(journal: Journal) -> None:
    from executor.fakes import status_error
    from vm_rebalance.kube import resources as r

    api, clock = FakeKubeVirt(), FakeClock()
    api.add_vm("web", "w1")

    def refuse(resource, name, subresource, body=None, *, namespace=None):
        raise status_error(
            409,
            "Halted only supports manual stop requests with a shorter graceperiod",
            reason="Conflict",
            verb="update",
            resource=r.VM_SUBRESOURCES,
        )

    api.put_subresource = refuse  # type: ignore[method-assign]
    runner = make(ColdRunner, cold_move(1, "web", "w1", "w2"), api, journal, clock)
    runner.begin()
    assert runner.outcome is not None and runner.outcome.failure is FailureKind.RUN_STRATEGY
    assert api.node_of("web") == "w1" and journal.record(1).step == "init"  # type: ignore[union-attr]
