"""Issue 11, problem by problem, against the simulator over HTTPS with the real CLI: none reproduces.

1. a cold move that cannot start no longer leaves the VM down; start / restart fix a VM that should
   run but does not; the terminal's failure question offers roll back / leave stopped / elsewhere;
2. a VM vm-rebalance pinned can be moved and drained again (its pin moves along);
3. a user's node affinity is shown old → new and replaced only with approval, caught at validation;
4. the printed resume command works as printed; status lists command and age; executions can be cleared;
5. reports are true: cancelled-but-completed is moved (see test_safety_net), skipped is not failed,
   a NotReady node is not "ok", status prints no "(? → ?)" and no dicts;
6. the count of others' migrations fails closed.
Every test ends with the fault campaign's invariants (harness.assert_invariants).
"""

import re
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from executor.simhelpers import VMS, Sim, add_vm, cluster_objects, simulator, write_plan
from safety.harness import assert_invariants, cli, env, fast_cli, json_doc, report_json, vm_pinned_by_us
from vm_rebalance import service
from vm_rebalance.executor.kubevirt import PIN_ANNOTATION, existing_node_pin
from vm_rebalance.planner import ManualMoveRequest, plan_manual_moves
from vm_rebalance.simulator.faults import TimedAction

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
__all__ = ["fast_cli"]  # the fixture, used by name
HOST = "kubernetes.io/hostname"
SRC = str(Path(__file__).resolve().parents[2] / "src")


def user_affinity(*nodes: str) -> dict:
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": HOST, "operator": "In", "values": list(nodes)}]}]
            }
        }
    }


def objects() -> list[dict]:
    objs = cluster_objects(6)
    add_vm(objs, "web", "w1", storage="rwo")
    add_vm(objs, "mq", "w1", storage="rwo")
    add_vm(objs, "db", "w1", storage="rwx", memory="4Gi")
    add_vm(objs, "cache", "w2", memory="1Gi")
    add_vm(objs, "app", "w3", storage="rwo", affinity=user_affinity("w3", "w4"))
    return objs


@pytest.fixture
def sim(tmp_path: Path, fast_cli: Path) -> Iterator[Sim]:
    with simulator(tmp_path, objects(), time_scale=300) as s:
        yield s


def cordon_when_stopped(sim: Sim, vm: str, node: str) -> threading.Thread:
    """Cordon ``node`` right after ``vm`` stopped ("cordon worker-06 right after 'stopping VM'")."""

    def watch() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if sim.cluster.store.get(VMS, "default", vm)["spec"].get("runStrategy") == "Halted" and sim.vmi(vm) is None:
                sim.cluster.apply_action(TimedAction("cordon", node), sim.cluster.clock.now())
                return
            time.sleep(0.01)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def set_template(sim: Sim, vm: str, *, affinity: dict | None = None, annotations: dict | None = None) -> None:
    def change(o: dict) -> None:
        if affinity is not None:
            o["spec"]["template"]["spec"]["affinity"] = affinity
        if annotations is not None:
            o["metadata"].setdefault("annotations", {}).update(annotations)

    sim.cluster.store.mutate(VMS, "default", vm, change)


def wait(predicate, seconds: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached")


# ------------------------------------------------------------------------------------------------ #1


def test_1_a_cold_move_whose_target_is_cordoned_after_the_stop_is_rolled_back(
    sim: Sim, fast_cli: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    watcher = cordon_when_stopped(sim, "web", "w6")
    code, report = report_json(sim, "move", "web", "--to", "w6", "--yes", capsys=capsys)
    watcher.join(timeout=5)
    assert code == 5
    (move,) = report["moves"]
    assert move["failure"] == "start-failed" and "rolled back" in move["error"], move
    assert sim.running("web") and sim.node_of("web") != "w6" and vm_pinned_by_us(sim) == []
    assert move["state"] == f"Running on {sim.node_of('web')}" and move["pinned"] is False
    assert_invariants(sim, fast_cli, report=report)


def test_1_start_and_restart_fix_a_vm_that_should_run_but_does_not(
    sim: Sim, fast_cli: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue's state: pinned by vm-rebalance to a cordoned node, runStrategy Always, ErrorUnschedulable."""
    set_template(sim, "web", affinity=user_affinity("w6"), annotations={PIN_ANNOTATION: "w6"})
    sim.cluster.apply_action(TimedAction("cordon", "w6"), sim.cluster.clock.now())
    sim.cluster.store.mutate(VMS, "default", "web", lambda o: o["spec"].update(runStrategy="Halted"))
    wait(lambda: sim.vmi("web") is None)
    sim.cluster.store.mutate(VMS, "default", "web", lambda o: o["spec"].update(runStrategy="Always"))
    wait(lambda: sim.vm("web").get("status", {}).get("printableStatus") == "ErrorUnschedulable", 60)

    code, text = cli(sim, "start", "web", "--yes", capsys=capsys)
    assert code == 5, text
    assert "already running" not in text
    assert "should run" in text and "ErrorUnschedulable" in text and "vm-rebalance unpin default/web" in text
    code, text = cli(sim, "unpin", "web", "--yes", capsys=capsys)
    assert code == 0, text
    code, text = cli(sim, "start", "web", "--yes", capsys=capsys)
    assert code == 0, text
    assert sim.running("web") and sim.node_of("web") != "w6"
    # restart of a VM that should run but does not re-creates it too (no conflict): its stuck instance
    # keeps a rule the user has fixed since
    set_template(sim, "cache", affinity=user_affinity("w6"))
    sim.cluster.store.mutate(VMS, "default", "cache", lambda o: o["spec"].update(runStrategy="Halted"))
    wait(lambda: sim.vmi("cache") is None)
    sim.cluster.store.mutate(VMS, "default", "cache", lambda o: o["spec"].update(runStrategy="Always"))
    wait(lambda: sim.vm("cache").get("status", {}).get("printableStatus") == "ErrorUnschedulable", 60)
    sim.cluster.store.mutate(VMS, "default", "cache", lambda o: o["spec"]["template"]["spec"].pop("affinity"))
    code, text = cli(sim, "restart", "cache", "--yes", capsys=capsys)
    assert code == 0, text
    assert sim.running("cache") and "it did not run before" in re.sub(r"\s+", " ", text)
    assert_invariants(sim, fast_cli)


def spawn(sim: Sim, tmp_path: Path, *args: str) -> pexpect.spawn:
    launcher = tmp_path / "launch.py"
    launcher.write_text(
        "import sys, dataclasses, signal\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        f"sys.path.insert(0, {SRC!r})\n"
        "from vm_rebalance.cli import execute\n"
        "_orig = execute._options\n"
        "execute._options = lambda *a: dataclasses.replace(_orig(*a), poll_interval_seconds=0.1)\n"
        "from vm_rebalance.cli.main import run\n"
        "run(sys.argv[1:])\n"
    )
    return pexpect.spawn(
        sys.executable,
        [str(launcher), "--kubeconfig", str(sim.kubeconfig), *args],
        env=env(tmp_path),
        encoding="utf-8",
        timeout=60,
        dimensions=(60, 250),
    )


@pytest.mark.slow
@pytest.mark.parametrize("answer", ["roll back", "leave stopped", "retry on another node", "abort"])
def test_1_the_terminal_asks_and_carries_out_the_answer(sim: Sim, tmp_path: Path, fast_cli: Path, answer: str) -> None:
    sim.cluster.faults.fail_starts("default/web", "unschedulable", starts=1)
    session = service.Session.open(service.Target(kubeconfig=str(sim.kubeconfig)))
    try:
        plan = plan_manual_moves(session.state, [ManualMoveRequest("default", "web", "w5", "cold")])
    finally:
        session.close()
    child = spawn(sim, tmp_path, "apply", write_plan(tmp_path / "plan.json", plan))
    child.expect("explain N / cancel: ")
    child.sendline("approve")
    child.expect("retry / retry on another node / roll back / leave stopped / skip / abort: ", timeout=90)
    assert not sim.running("web")  # held: the human decides
    child.sendline(answer)
    if answer == "retry on another node":
        child.expect("which node", timeout=30)
        child.sendline("w4")
    child.expect(pexpect.EOF, timeout=90)
    child.close()
    if answer == "leave stopped":
        assert child.exitstatus == 5 and not sim.running("web") and vm_pinned_by_us(sim) == ["web"]
        assert "left stopped as you chose" in re.sub(r"\s+", " ", child.before)
        assert_invariants(sim, fast_cli, pinned=["web"], stopped_by_choice=["web"])
        return
    if answer == "retry on another node":
        assert child.exitstatus == 0, child.before
        assert sim.node_of("web") == "w4" and vm_pinned_by_us(sim) == ["web"]
        assert_invariants(sim, fast_cli, pinned=["web"])
        return
    assert child.exitstatus == 5, child.before
    assert sim.running("web") and sim.node_of("web") != "w5" and vm_pinned_by_us(sim) == []
    assert_invariants(sim, fast_cli)


# ------------------------------------------------------------------------------------------------ #2


def test_2_a_vm_vm_rebalance_pinned_is_moved_and_drained_again(
    sim: Sim, fast_cli: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, report = report_json(sim, "move", "mq", "--to", "w6", "--yes", capsys=capsys)
    assert code == 0 and sim.node_of("mq") == "w6" and report["pinned"] == ["default/mq"]
    code, report = report_json(sim, "move", "mq", "--to", "w4", "--yes", capsys=capsys)
    assert code == 0, report
    assert sim.node_of("mq") == "w4" and existing_node_pin(sim.vm("mq")) == ["w4"]
    assert sim.vm("mq")["metadata"]["annotations"][PIN_ANNOTATION] == "w4"
    code, text = cli(sim, "drain", "w4", "--yes", capsys=capsys)
    assert code == 0, text
    assert "no feasible target" not in text and sim.node_of("mq") not in ("w4", None)
    assert existing_node_pin(sim.vm("mq")) == [sim.node_of("mq")]  # re-pinned to its new node, and reported
    assert "Pinned by cold migration: default/mq" in re.sub(r"\s+", " ", text)
    assert_invariants(sim, fast_cli, pinned=["mq"])


# ------------------------------------------------------------------------------------------------ #3


def test_3_a_users_affinity_is_shown_old_to_new_and_needs_approval(
    sim: Sim, fast_cli: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    original = sim.vm("app")["spec"]["template"]["spec"]["affinity"]
    code, text = cli(sim, "move", "app", "--to", "w6", "--yes", capsys=capsys)
    assert code == 4, text  # caught at validation: nothing ran
    flat = re.sub(r"\s+", " ", text)
    assert "In [w3, w4] → In [w6]" in flat and "--replace-affinity" in flat
    assert sim.node_of("app") == "w3" and sim.migrations() == []
    # a target the user's affinity allows: no flag needed, and the user's rule is kept (ANDed)
    code, text = cli(sim, "move", "app", "--to", "w4", "--yes", capsys=capsys)
    assert code == 0, text
    assert sim.node_of("app") == "w4" and sorted(existing_node_pin(sim.vm("app"))) == ["w3", "w4", "w4"]
    assert cli(sim, "unpin", "app", "--yes", capsys=capsys)[0] == 0
    assert sim.vm("app")["spec"]["template"]["spec"]["affinity"] == original  # exactly the user's again
    # approved: the plan says what is replaced, then it runs
    code, text = cli(sim, "move", "app", "--to", "w6", "--replace-affinity", "--yes", capsys=capsys)
    assert code == 0, text
    assert "replaces your node affinity kubernetes.io/hostname In [w3, w4] → In [w6]" in re.sub(r"\s+", " ", text)
    assert sim.node_of("app") == "w6" and existing_node_pin(sim.vm("app")) == ["w6"]
    assert_invariants(sim, fast_cli, pinned=["app"])


def test_3_drain_offers_and_honours_replacing_a_users_pin(
    sim: Sim, fast_cli: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    set_template(sim, "cache", affinity=user_affinity("w2"))
    code, text = cli(sim, "drain", "w2", "--yes", capsys=capsys)
    assert code == 4, text
    assert "drain --replace-affinity" in re.sub(r"\s+", " ", text) and sim.node_of("cache") == "w2"
    code, text = cli(sim, "drain", "w2", "--replace-affinity", "--yes", capsys=capsys)
    assert code == 0, text
    assert sim.node_of("cache") != "w2" and "In [w2] →" in re.sub(r"\s+", " ", text)
    assert_invariants(sim, fast_cli, pinned=["cache"])


# ------------------------------------------------------------------------------------------------ #4


def test_4_the_printed_resume_command_works_and_status_lists_command_and_age(
    sim: Sim, fast_cli: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sim.cluster.faults.fail_migration("db")
    code, text = cli(sim, "move", "db", "cache", "--to", "w5", "--sequential", "--yes", capsys=capsys)
    assert code == 5, text
    printed = re.search(r"vm-rebalance (resume \S+ --yes)", text)
    assert printed, text
    code, status = cli(sim, "status", capsys=capsys)
    flat = re.sub(r"\s+", " ", status)
    assert code == 0 and "move db cache --to w5 -n default" in flat and " ago" in flat
    assert "(? → ?)" not in status and "{" not in status
    code, text = cli(sim, *printed.group(1).split(), capsys=capsys)
    assert code == 0, text
    assert sim.node_of("db") == "w5" and sim.node_of("cache") == "w5"
    code, status = cli(sim, "status", "-o", "json", capsys=capsys)
    assert json_doc(status)["unfinished_executions"] == []
    code, text = cli(sim, "status", "--clear", "finished", capsys=capsys)
    assert code == 0 and "cleared 1" in text
    assert_invariants(sim, fast_cli)


def test_4_an_unfinished_execution_can_be_cleared_unless_it_left_a_vm_down(
    sim: Sim, fast_cli: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sim.cluster.faults.fail_migration("db")
    assert cli(sim, "move", "db", "--to", "w5", "--yes", capsys=capsys)[0] == 5
    code, status = cli(sim, "status", "-o", "json", capsys=capsys)
    (unfinished,) = json_doc(status)["unfinished_executions"]
    assert unfinished["needs_attention"] == [] and unfinished["resume"].startswith("vm-rebalance resume ")
    code, text = cli(sim, "status", "--clear", unfinished["plan_id"], capsys=capsys)
    assert code == 0, text
    code, status = cli(sim, "status", "-o", "json", capsys=capsys)
    assert json_doc(status)["unfinished_executions"] == []
    assert cli(sim, "resume", unfinished["plan_id"], "--yes", capsys=capsys)[0] == 2  # cleared: not resumed


# ------------------------------------------------------------------------------------------------ #5


def test_5_skipped_is_not_failed_and_health_follows_ready(
    sim: Sim, fast_cli: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from vm_rebalance.render.execution import report_markdown, report_title

    doc = {
        "complete": False,
        "result": "skipped",
        "counts": {"succeeded": 1, "failed": 0, "skipped": 1, "not attempted": 0},
    }
    assert report_title(doc) == "↷ Rebalancing Finished - Moves Skipped"
    assert "Failed" not in report_markdown({**doc, "moves": [], "nodes": [], "pinned": []})
    sim.cluster.apply_action(TimedAction("node-not-ready", "w6"), sim.cluster.clock.now())
    _, text = cli(sim, "inventory", "-o", "json", capsys=capsys)
    nodes = {n["name"]: n for n in json_doc(text)["nodes"]}
    assert nodes["w6"]["health"] == "critical" and "NotReady" in nodes["w6"]["health_reasons"]


def test_5_status_shows_a_foreign_migration_without_question_marks(
    sim: Sim, fast_cli: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sim.cluster.faults.stall_migration("cache", phase="Pending")
    obj = {"metadata": {"name": "by-kubectl", "namespace": "default"}, "spec": {"vmiName": "cache"}}
    sim.cluster.store.create(
        ("kubevirt.io", "virtualmachineinstancemigrations"),
        sim.cluster.admit("create", ("kubevirt.io", "virtualmachineinstancemigrations"), obj, None, "admin") or obj,
    )
    code, text = cli(sim, "status", capsys=capsys)
    assert code == 0 and "default/cache" in text
    assert "?" not in text and "{" not in text and "'" not in text


# ------------------------------------------------------------------------------------------------ #6


def test_6_the_count_of_others_migrations_fails_closed(sim: Sim, fast_cli: Path) -> None:
    session = service.Session.open(service.Target(kubeconfig=str(sim.kubeconfig)))
    try:
        plan = service.plan_moves(session.state, [ManualMoveRequest("default", "db", "w5", "live")]).plan
        sim.cluster.faults.inject_api_error(503, verbs=["list"], resources=["virtualmachineinstancemigrations"])
        with service.Run(session, plan, options=service.ExecutionOptions(poll_interval_seconds=0.01)) as run:
            report = run.execute()
    finally:
        session.close()
        sim.cluster.faults.api_rules.clear()
    (outcome,) = report.outcomes
    assert outcome.failure is service.FailureKind.CLUSTER_UNAVAILABLE and "nothing was changed" in (outcome.error or "")
    assert sim.migrations() == [] and sim.node_of("db") == "w1"
