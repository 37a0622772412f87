"""The fault campaign: every row of shared/fault-matrix.md that applies to executing a plan, injected
through the simulator's fault scripts (or, where a row is about the tool's own process, by killing or
crashing it), each ending with the campaign's invariants (harness.assert_invariants): no VM that was
running left stopped, no duplicate migration, limits never exceeded, no pin left unreported,
journal == cluster, and a report that says what the cluster shows.

Rows covered elsewhere are named in the README's "When things go wrong" table (issue tests in
test_issue11.py / test_issue16.py, kill -9 in tests/cli/test_execute.py and benchmarks/chaos.py).
"""

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from executor.simhelpers import VMIMS, VMS, Sim, add_vm, cluster_objects, simulator, write_plan
from safety.harness import assert_invariants, cli, env, fast_cli, report_json, vm_pinned_by_us
from vm_rebalance import service
from vm_rebalance.executor.kubevirt import TEMP_PIN_ANNOTATION, existing_node_pin
from vm_rebalance.executor.runners import ColdRunner
from vm_rebalance.model import Plan
from vm_rebalance.planner import ManualMoveRequest, plan_manual_moves
from vm_rebalance.service.identity import stamped
from vm_rebalance.simulator.faults import TimedAction

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
__all__ = ["fast_cli"]
SRC = str(Path(__file__).resolve().parents[2] / "src")
FAST = service.ExecutionOptions(poll_interval_seconds=0.05)
ALREADY_RUNNING = 'Operation cannot be fulfilled on virtualmachine.kubevirt.io "web": VM is already running'
NOT_RUNNING = 'Operation cannot be fulfilled on virtualmachine.kubevirt.io "web": VM is not running'
ONCE = "Once does not support manual start requests"
NOT_MIGRATABLE = (
    'admission webhook "migration-create-validator.kubevirt.io" denied the request: Cannot migrate VMI, Reason: '
    "DisksNotLiveMigratable, Message: cannot migrate VMI: PVC a-root is not shared, live migration requires that "
    "all PVCs must be shared (using ReadWriteMany access mode)"
)


def objects(version: str = "v1.6.0") -> list[dict]:
    objs = cluster_objects(5, version=version)
    for name, node in (("a", "w1"), ("b", "w1"), ("c", "w2")):
        add_vm(objs, name, node, memory="1Gi")
    add_vm(objs, "web", "w1", storage="rwo")
    add_vm(objs, "man", "w2", storage="rwo")
    return objs


def _manual(objs: list[dict]) -> list[dict]:
    for o in objs:
        if o["kind"] == "VirtualMachine" and o["metadata"]["name"] == "man":
            o["spec"]["runStrategy"] = "Manual"
    return objs


@pytest.fixture
def sim(tmp_path: Path, fast_cli: Path) -> Iterator[Sim]:
    with simulator(tmp_path, _manual(objects()), time_scale=300) as s:
        yield s


def plan_of(sim: Sim, requests: list[tuple[str, str, str]], *, sequential: bool = False) -> Plan:
    session = service.Session.open(service.Target(kubeconfig=str(sim.kubeconfig)))
    try:
        plan = plan_manual_moves(
            session.state, [ManualMoveRequest("default", v, n, m) for v, n, m in requests], sequential=sequential
        )
        plan = stamped(plan, session.state)
    finally:
        session.close()
    assert len(plan.moves) == len(requests), plan.warnings
    return plan


def execute(
    sim: Sim,
    requests: list[tuple[str, str, str]],
    *,
    on_event: Callable[[service.MoveEvent], None] | None = None,
    options: service.ExecutionOptions = FAST,
    sequential: bool = False,
    plan: Plan | None = None,
) -> service.ExecutionReport:
    """Run a plan through the service (the CLI's path without the terminal), with a hook on every event."""
    plan = plan or plan_of(sim, requests, sequential=sequential)
    session = service.Session.open(service.Target(kubeconfig=str(sim.kubeconfig)))
    try:
        with service.Run(session, plan, options=options) as run:
            return run.execute(on_event or (lambda _e: None))
    finally:
        session.close()


def apply(sim: Sim, tmp_path: Path, requests: list[tuple[str, str, str]], capsys, *args: str) -> tuple[int, dict]:  # type: ignore[no-untyped-def]
    plan = write_plan(tmp_path / "plan.json", plan_of(sim, requests))
    return report_json(sim, "apply", plan, "--yes", *args, capsys=capsys)


def once(
    predicate: Callable[[service.MoveEvent], bool], action: Callable[[], None]
) -> Callable[[service.MoveEvent], None]:
    done = {"yes": False}

    def hook(event: service.MoveEvent) -> None:
        if not done["yes"] and predicate(event):
            done["yes"] = True
            action()

    return hook


def by_vm(report: dict | service.ExecutionReport) -> dict:  # type: ignore[type-arg]
    doc = report if isinstance(report, dict) else report.to_document()
    return {m["vm"]: m for m in doc["moves"]}


def now(sim: Sim) -> float:
    return sim.cluster.clock.now()


# ------------------------------------------------------------------------------- the tool's own process


def test_row_01_killed_after_the_plan_was_written_before_the_first_action(
    sim: Sim, fast_cli: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    session = service.Session.open(service.Target(kubeconfig=str(sim.kubeconfig)))
    try:
        run = service.Run(session, plan_of(sim, [("a", "w3", "live"), ("web", "w4", "cold")]), options=FAST, lock=False)
        run.executor.journal.save()  # the journal is written … and the process dies before acting
        execution = run.journal_id
    finally:
        session.close()
    code, report = report_json(sim, "resume", execution, "--yes", capsys=capsys)
    assert code == 0, report
    assert sim.node_of("a") == "w3" and sim.node_of("web") == "w4"
    assert len(sim.inflight.created) == 1  # executed once
    assert_invariants(sim, fast_cli, report=report)


def test_rows_05_38_crash_after_the_pin_before_the_start_then_resume_restores_the_run_strategy(
    sim: Sim, fast_cli: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    class Crash(BaseException):
        pass

    real = ColdRunner._step_pin

    def pin_then_die(self: ColdRunner) -> bool:
        self.api.add_pin(self.move.namespace, self.move.vm, self.move.target)
        raise Crash

    monkeypatch.setattr(ColdRunner, "_step_pin", pin_then_die)
    session = service.Session.open(service.Target(kubeconfig=str(sim.kubeconfig)))
    try:
        # lock=False: a real crash ends the lock's renewal with the process (tested in test_issue16)
        run = service.Run(session, plan_of(sim, [("man", "w4", "cold")]), options=FAST, lock=False)
        with pytest.raises(Crash):
            run.execute()
        execution = run.journal_id
    finally:
        session.close()
    monkeypatch.setattr(ColdRunner, "_step_pin", real)
    assert not sim.running("man") and existing_node_pin(sim.vm("man")) == ["w4"]  # down, pinned, not started
    code, report = report_json(sim, "resume", execution, "--yes", capsys=capsys)
    assert code == 0, report
    assert sim.node_of("man") == "w4" and sim.vm("man")["spec"]["runStrategy"] == "Manual"
    assert_invariants(sim, fast_cli, report=report, pinned=["man"])


def test_row_06_a_truncated_journal_is_refused_with_its_byte_and_nothing_changes(
    sim: Sim, fast_cli: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sim.cluster.faults.fail_migration("a")
    assert apply(sim, fast_cli.parent, [("a", "w3", "live")], capsys)[0] == 5
    (journal,) = fast_cli.glob("*.json")
    text = journal.read_text()
    journal.write_text(text[: len(text) // 2])
    code, out = cli(sim, "resume", journal.stem, "--yes", capsys=capsys)
    assert code == 2 and "unreadable at byte" in out and "nothing was changed" in out, out
    assert len(sim.migrations()) == 1 and sim.node_of("a") == "w1"
    assert cli(sim, "status", capsys=capsys)[0] == 0  # status still works (the unreadable one is left out)


@pytest.mark.slow
def test_row_08_sigterm_stops_the_safe_way_and_the_execution_resumes(
    sim: Sim, tmp_path: Path, fast_cli: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = write_plan(tmp_path / "plan.json", plan_of(sim, [("a", "w3", "live")]))
    sim.cluster.faults.stall_migration("a")
    script = tmp_path / "launch.py"
    script.write_text(
        "import sys, dataclasses\n"
        f"sys.path.insert(0, {SRC!r})\n"
        "from vm_rebalance.cli import execute\n"
        "_orig = execute._options\n"
        "execute._options = lambda *a: dataclasses.replace(_orig(*a), poll_interval_seconds=0.05)\n"
        "from vm_rebalance.cli.main import run\n"
        "run(sys.argv[1:])\n"
    )
    proc = subprocess.Popen(
        [sys.executable, str(script), "--kubeconfig", str(sim.kubeconfig), "apply", plan, "--yes"],
        env=env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not sim.migrations() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert "vm-rebalance resume" in out and sim.cluster.recorder.migrations_left_non_final() == []
    printed = re.search(r"continue with: vm-rebalance resume (\S+)", out)
    assert printed, out
    resume = printed.group(1)
    code, report = report_json(sim, "resume", resume, "--yes", capsys=capsys)
    assert code == 0, report
    assert sim.node_of("a") == "w3"
    assert_invariants(sim, fast_cli, report=report)


# ---------------------------------------------------------------------------------- API answers


@pytest.mark.parametrize(("count", "succeeds"), [(3, True), (12, False)])
def test_row_09_conflicts_on_vm_patches_are_re_read_and_retried_then_rolled_back(
    sim: Sim, fast_cli: Path, count: int, succeeds: bool
) -> None:
    sim.cluster.faults.inject_api_error(409, verbs=["patch"], resources=["virtualmachines"], name="web", count=count)
    report = execute(sim, [("web", "w4", "cold")])
    (outcome,) = report.outcomes
    if succeeds:
        assert outcome.ok and sim.node_of("web") == "w4"
        assert_invariants(sim, fast_cli, report=report.to_document(), pinned=["web"])
    else:
        assert outcome.failure is service.FailureKind.CONFLICT and "rolled back" in (outcome.error or "")
        assert sim.running("web") and vm_pinned_by_us(sim) == []
        assert_invariants(sim, fast_cli, report=report.to_document())


def test_row_10_already_running_on_start_is_handled(sim: Sim, fast_cli: Path) -> None:
    sim.cluster.faults.inject_api_error(
        409,
        resources=["subresources.kubevirt.io/virtualmachines"],
        subresource="start",
        message=ALREADY_RUNNING,
        count=1,
    )
    report = execute(sim, [("web", "w4", "cold")])
    assert report.complete and sim.node_of("web") == "w4", report.outcomes
    assert_invariants(sim, fast_cli, report=report.to_document(), pinned=["web"])


def test_row_11_a_not_running_answer_to_a_stop_is_checked_against_the_cluster(sim: Sim, fast_cli: Path) -> None:
    sim.cluster.faults.inject_api_error(
        409, resources=["subresources.kubevirt.io/virtualmachines"], subresource="stop", message=NOT_RUNNING, count=1
    )
    report = execute(sim, [("web", "w4", "cold")])
    (outcome,) = report.outcomes
    assert outcome.failure is service.FailureKind.STOP_FAILED and "nothing was changed" in (outcome.error or "")
    assert sim.node_of("web") == "w1" and sim.running("web")
    assert_invariants(sim, fast_cli, report=report.to_document())


def test_row_12_a_run_strategy_refusal_of_the_start_rolls_back_and_says_where_the_vm_is(
    sim: Sim, fast_cli: Path
) -> None:
    sim.cluster.faults.inject_api_error(
        409, resources=["subresources.kubevirt.io/virtualmachines"], subresource="start", message=ONCE, count=1
    )
    report = execute(sim, [("web", "w4", "cold")])
    (outcome,) = report.outcomes
    assert outcome.failure is service.FailureKind.RUN_STRATEGY and "rolled back" in (outcome.error or "")
    assert outcome.state == f"Running on {sim.node_of('web')}"
    assert_invariants(sim, fast_cli, report=report.to_document())


def wait_for_migration(sim: Sim) -> None:
    deadline = time.monotonic() + 30
    while not sim.migrations() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sim.migrations()


def test_rows_13_32_someone_elses_migration_is_left_alone(sim: Sim, fast_cli: Path) -> None:
    plan = plan_of(sim, [("a", "w3", "live")])
    sim.cluster.faults.stall_migration("a", phase="Running")
    sim.cluster.faults.foreign_migration("default/a", at=now(sim), target="w5")  # after planning, before acting
    wait_for_migration(sim)
    report = execute(sim, [], plan=plan)
    (outcome,) = report.outcomes
    assert outcome.failure is service.FailureKind.MIGRATION_IN_FLIGHT, outcome
    (foreign,) = sim.migrations()
    assert foreign["status"]["phase"] not in ("Succeeded", "Failed")  # not cancelled by us
    sim.cluster.store.delete(VMIMS, "default", foreign["metadata"]["name"])  # its owner cancels it
    deadline = time.monotonic() + 20
    while sim.cluster.recorder.migrations_left_non_final() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert_invariants(sim, fast_cli, report=report.to_document())


def test_row_14_not_live_migratable_offers_retry_cold(sim: Sim, fast_cli: Path) -> None:
    sim.cluster.faults.inject_api_error(
        400, verbs=["create"], resources=["virtualmachineinstancemigrations"], message=NOT_MIGRATABLE, count=1
    )
    plan = plan_of(sim, [("a", "w3", "live")])
    session = service.Session.open(service.Target(kubeconfig=str(sim.kubeconfig)))
    try:
        with service.Run(session, plan, options=FAST) as run:
            report = run.execute()
            assert report.failed[0].failure is service.FailureKind.NOT_LIVE_MIGRATABLE
            assert service.FailureChoice.RETRY_COLD in run.choices()
            assert run.choose(service.FailureChoice.RETRY_COLD)
            report = run.execute()
    finally:
        session.close()
    assert report.complete and sim.node_of("a") == "w3"
    assert_invariants(sim, fast_cli, report=report.to_document(), pinned=["a"])


def test_row_16_a_vm_deleted_before_its_move_is_skipped_and_the_plan_goes_on(sim: Sim, fast_cli: Path) -> None:
    def delete_b() -> None:
        sim.cluster.store.delete(VMS, "default", "b")

    hook = once(lambda e: e.move.vm == "a" and e.phase == "created", delete_b)
    report = execute(
        sim, [("a", "w3", "live"), ("b", "w3", "live"), ("c", "w4", "live")], on_event=hook, sequential=True
    )
    moves = by_vm(report)
    assert moves["b"]["status"] == "skipped" and "no longer exists" in moves["b"]["error"]
    assert moves["a"]["status"] == moves["c"]["status"] == "succeeded"
    assert report.to_document()["result"] == "skipped"
    assert_invariants(sim, fast_cli, report=report.to_document(), stopped_by_choice=["b"])  # b: deleted by the test


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param({"migrations": [{"action": "vanish", "vm": "default/a"}]}, id="row-17-own-vmim-gcd"),
        pytest.param(
            {
                "api": [
                    {
                        "resources": ["virtualmachineinstances", "virtualmachineinstancemigrations"],
                        "code": 429,
                        "retryAfter": 1,
                        "count": 3,
                    }
                ]
            },
            id="row-18-429",
        ),
        pytest.param(
            {"api": [{"verbs": ["get", "list"], "resources": ["virtualmachineinstances"], "code": 500, "count": 3}]},
            id="row-19-500-reads",
        ),
        pytest.param(
            {
                "api": [
                    {"verbs": ["create"], "resources": ["virtualmachineinstancemigrations"], "code": 500, "count": 1}
                ]
            },
            id="row-19-500-create",
        ),
        pytest.param(
            {
                "api": [
                    {
                        "verbs": ["create"],
                        "resources": ["virtualmachineinstancemigrations"],
                        "code": 504,
                        "afterCommit": True,
                        "count": 1,
                    }
                ]
            },
            id="rows-02-20-ambiguous-create",
        ),
        pytest.param(
            {"watches": [{"resources": ["virtualmachineinstancemigrations"], "action": "expire", "afterEvents": 1}]},
            id="row-21-watch-410",
        ),
        pytest.param(
            {"watches": [{"resources": ["virtualmachineinstancemigrations"], "action": "close", "afterEvents": 0}]},
            id="row-21-watch-dropped",
        ),
    ],
)
def test_transient_api_faults_end_with_the_plan_done_once(sim: Sim, fast_cli: Path, fault: dict) -> None:  # type: ignore[type-arg]
    from vm_rebalance.simulator.faults import faults_from_document

    sim.cluster.faults = faults_from_document(fault)
    report = execute(sim, [("a", "w3", "live"), ("c", "w4", "live")])
    assert report.complete, report.outcomes
    assert sim.node_of("a") == "w3" and sim.node_of("c") == "w4"
    assert len(sim.inflight.created) == 2  # one migration each: nothing created twice
    assert_invariants(sim, fast_cli, report=report.to_document())


def test_row_22_an_outage_during_a_cold_move_ends_resumable_and_resume_puts_the_vm_right(
    sim: Sim, fast_cli: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def outage() -> None:
        sim.cluster.faults.inject_api_error(503)

    report = execute(sim, [("web", "w4", "cold")], on_event=once(lambda e: e.phase == "stopped", outage))
    sim.cluster.faults.api_rules.clear()
    (outcome,) = report.outcomes
    assert outcome.failure is service.FailureKind.CLUSTER_UNAVAILABLE and "vm-rebalance resume" in (outcome.error or "")
    assert report.resume_command
    _, resumed = report_json(sim, *report.resume_command.split()[1:], "--yes", capsys=capsys)
    assert sim.running("web"), resumed
    assert_invariants(sim, fast_cli, report=resumed, pinned=["web"])


# --------------------------------------------------------------------------------- nodes and migrations


@pytest.mark.parametrize("change", ["node-not-ready", "node-unschedulable", "cordon", "taint"])
def test_rows_23_26_a_target_that_became_unusable_is_never_migrated_to(sim: Sim, fast_cli: Path, change: str) -> None:
    def spoil() -> None:
        extra = {"taint": {"key": "maintenance", "value": "yes", "effect": "NoSchedule"}} if change == "taint" else {}
        sim.cluster.apply_action(TimedAction(change, "w4", extra=extra), now(sim))

    hook = once(lambda e: e.move.vm == "a" and e.phase == "created", spoil)
    report = execute(sim, [("a", "w3", "live"), ("c", "w4", "live")], on_event=hook, sequential=True)
    moves = by_vm(report)
    assert moves["a"]["status"] == "succeeded"
    assert moves["c"]["status"] == "skipped" and "since planning" in moves["c"]["error"], moves["c"]
    assert sim.node_of("c") == "w2" and [m["spec"]["vmiName"] for m in sim.migrations()] == ["a"]
    assert_invariants(sim, fast_cli, report=report.to_document())


@pytest.mark.parametrize(
    ("script", "kind", "words"),
    [
        pytest.param(
            {"nodes": [{"node": "w3", "notReadyWhen": "migration-target"}]}, "migration-failed", "", id="row-24"
        ),
        pytest.param({"migrations": [{"action": "fail", "vm": "default/a"}]}, "migration-failed", "", id="row-27"),
        pytest.param(
            {"migrations": [{"action": "unschedulable", "vm": "default/a"}]}, "migration-failed", "", id="row-29"
        ),
        pytest.param(
            {"migrations": [{"action": "quota", "vm": "default/a"}]}, "admission-denied", "quota", id="row-30"
        ),
    ],
)
def test_migration_failures_leave_the_vm_on_its_source_and_say_why(
    sim: Sim,
    fast_cli: Path,
    script: dict,
    kind: str,
    words: str,  # type: ignore[type-arg]
) -> None:
    from vm_rebalance.simulator.faults import faults_from_document

    sim.cluster.faults = faults_from_document(script)
    report = execute(sim, [("a", "w3", "live")])
    (move,) = by_vm(report).values()
    assert move["failure"] == kind and words in move["error"], move
    assert sim.node_of("a") == "w1" and sim.running("a") and move["state"] == "Running on w1"
    assert len(sim.inflight.created) == 1  # no automatic retry
    if script.get("nodes"):
        sim.cluster.apply_action(TimedAction("node-ready", "w3"), now(sim))
    assert_invariants(sim, fast_cli, report=report.to_document())


def test_row_25_the_source_failing_during_the_migration_is_reported_not_cold_moved(sim: Sim, fast_cli: Path) -> None:
    from vm_rebalance.simulator.faults import faults_from_document

    sim.cluster.faults = faults_from_document({"nodes": [{"node": "w1", "notReadyWhen": "migration-source"}]})
    report = execute(sim, [("a", "w3", "live")])
    (outcome,) = report.outcomes
    assert outcome.state is not None  # what the cluster shows, whatever it is
    assert len(sim.migrations()) == 1 and existing_node_pin(sim.vm("a")) == []  # no cold move behind its back
    if not outcome.ok:
        assert "stays on" not in (outcome.error or "")


def test_row_28_a_migration_stuck_pending_is_cancelled_at_its_deadline(sim: Sim, fast_cli: Path) -> None:
    sim.cluster.faults.stall_migration("a", phase="Pending")
    options = service.ExecutionOptions(poll_interval_seconds=0.05, min_timeout_seconds=1.0, timeout_per_gib_seconds=0.5)
    report = execute(sim, [("a", "w3", "live")], options=options)
    (outcome,) = report.outcomes
    assert outcome.failure is service.FailureKind.MIGRATION_TIMEOUT and "cancelled" in (outcome.error or "")
    assert sim.node_of("a") == "w1"
    assert_invariants(sim, fast_cli, report=report.to_document())


def test_row_33_a_vm_already_on_its_target_needs_nothing(
    sim: Sim, tmp_path: Path, fast_cli: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = write_plan(tmp_path / "plan.json", plan_of(sim, [("a", "w3", "live")]))
    obj = {
        "metadata": {"name": "by-hand", "namespace": "default"},
        "spec": {"vmiName": "a", "addedNodeSelector": {"kubernetes.io/hostname": "w3"}},
    }
    sim.cluster.store.create(VMIMS, sim.cluster.admit("create", VMIMS, obj, None, "admin") or obj)
    deadline = time.monotonic() + 30
    while sim.node_of("a") != "w3" and time.monotonic() < deadline:
        time.sleep(0.05)
    code, text = cli(sim, "apply", plan, "--yes", capsys=capsys)
    assert code == 0 and "already on" in text, text
    assert [m["metadata"]["name"] for m in sim.migrations()] == ["by-hand"]


def test_row_34_a_vm_under_evacuation_is_left_to_kubevirt(sim: Sim, fast_cli: Path) -> None:
    plan = plan_of(sim, [("a", "w3", "live")])
    sim.cluster.faults.stall_migration("a", phase="Running")  # KubeVirt's evacuation takes its time
    sim.cluster.apply_action(TimedAction("evacuate-vm", "default/a"), now(sim))
    report = execute(sim, [], plan=plan)
    (move,) = by_vm(report).values()
    assert move["status"] == "skipped" and "evacuating" in move["error"]
    assert not [m for m in sim.migrations() if m["metadata"]["name"].startswith("vmr-")]


def test_row_39_no_placement_change_while_the_vm_migrates(sim: Sim, fast_cli: Path) -> None:
    plan = plan_of(sim, [("a", "w4", "cold")])
    sim.cluster.faults.stall_migration("a", phase="Running")
    obj = {"metadata": {"name": "by-hand", "namespace": "default"}, "spec": {"vmiName": "a"}}
    sim.cluster.store.create(VMIMS, sim.cluster.admit("create", VMIMS, obj, None, "admin") or obj)
    report = execute(sim, [], plan=plan)
    (outcome,) = report.outcomes
    assert outcome.failure is service.FailureKind.MIGRATION_IN_FLIGHT and "nothing was changed" in (outcome.error or "")
    assert existing_node_pin(sim.vm("a")) == [] and sim.running("a")
    sim.cluster.store.delete(VMIMS, "default", "by-hand")


def test_row_40_an_unreadable_kubevirt_cr_falls_back_to_the_documented_limits(
    sim: Sim, fast_cli: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sim.cluster.faults.inject_api_error(403, resources=["kubevirts"])
    code, text = cli(sim, "inventory", "-o", "json", capsys=capsys)
    assert code == 0 and "defaults 5 / 2 assumed" in text
    report = execute(sim, [("a", "w3", "live"), ("b", "w3", "live"), ("c", "w4", "live")])
    assert report.complete
    assert_invariants(sim, fast_cli, report=report.to_document())


def test_row_54_kubevirt_before_1_6_steers_with_a_temporary_pin_and_removes_it(tmp_path: Path, fast_cli: Path) -> None:
    with simulator(tmp_path, _manual(objects(version="v1.5.0")), time_scale=300) as old:
        report = execute(old, [("a", "w3", "live"), ("c", "w4", "live")])
        assert report.complete
        for m in old.migrations():
            assert "addedNodeSelector" not in m["spec"]
        assert all(TEMP_PIN_ANNOTATION not in (old.vm(v)["metadata"].get("annotations") or {}) for v in "ac")
        assert_invariants(old, fast_cli, report=report.to_document())


def test_the_plan_file_of_the_campaign_round_trips(sim: Sim, tmp_path: Path) -> None:
    plan = plan_of(sim, [("a", "w3", "live")])
    doc = json.loads(Path(write_plan(tmp_path / "p.json", plan)).read_text())
    assert doc["cluster"]["uid"] == sim.cluster.store.get(("", "namespaces"), None, "kube-system")["metadata"]["uid"]
