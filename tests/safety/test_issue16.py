"""Issue 16, problems 1–4, against the simulator over HTTPS: none reproduces.

1. kill -9 of `move` / `drain` during a cold move's stop: the re-run continues the unfinished
   execution (the VM is started on its target) instead of reporting success;
2. `apply --resume` re-reads the cluster instead of trusting the journal's "succeeded"; a plan (or an
   execution) made for another cluster is refused;
3. reports never state a cluster state that was not read (every VMI GET failing 503; a VM deleted
   during its migration);
4. the limits hold against everyone (a kubectl migration counts against its source node), and two
   executions at once are one too many: the second stops naming the holder of the cluster's lock.
"""

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from executor.simhelpers import VMIMS, VMS, Sim, add_vm, cluster_objects, simulator, write_plan
from safety.harness import assert_invariants, cli, env, fast_cli, json_doc, report_json
from vm_rebalance import service
from vm_rebalance.executor.journal import Journal
from vm_rebalance.planner import ManualMoveRequest, plan_manual_moves
from vm_rebalance.service.identity import stamped

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
__all__ = ["fast_cli"]
SRC = str(Path(__file__).resolve().parents[2] / "src")
LAUNCHER = (
    "import sys, dataclasses\n"
    f"sys.path.insert(0, {SRC!r})\n"
    "from vm_rebalance.cli import execute\n"
    "_orig = execute._options\n"
    "execute._options = lambda *a: dataclasses.replace(_orig(*a), poll_interval_seconds=0.05)\n"
    "from vm_rebalance.cli.main import run\n"
    "run(sys.argv[1:])\n"
)


def objects() -> list[dict]:
    objs = cluster_objects(5)
    add_vm(objs, "web", "w1", storage="rwo")
    for name in ("a", "b", "c", "d", "e"):
        add_vm(objs, name, "w1", memory="1Gi")
    add_vm(objs, "x", "w2", memory="1Gi")
    return objs


@pytest.fixture
def sim(tmp_path: Path, fast_cli: Path) -> Iterator[Sim]:
    with simulator(tmp_path, objects(), time_scale=300) as s:
        yield s


def launch(sim: Sim, tmp_path: Path, *args: str) -> subprocess.Popen[bytes]:
    script = tmp_path / "launch.py"
    script.write_text(LAUNCHER)
    return subprocess.Popen(
        [sys.executable, str(script), "--kubeconfig", str(sim.kubeconfig), *args],
        env=env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def wait(predicate, seconds: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.005)
    raise AssertionError("condition not reached")


def save_plan(sim: Sim, path: Path, requests: list[tuple[str, str, str]]) -> str:
    session = service.Session.open(service.Target(kubeconfig=str(sim.kubeconfig)))
    try:
        plan = plan_manual_moves(session.state, [ManualMoveRequest("default", v, n, m) for v, n, m in requests])
        plan = stamped(plan, session.state)  # the identity `plan` gives it
    finally:
        session.close()
    assert len(plan.moves) == len(requests), plan.warnings
    return write_plan(path, plan)


def migrate_by_hand(sim: Sim, vm: str, node: str) -> None:
    """`kubectl apply` of a migration to ``node`` (no vm-rebalance label), then wait for it to finish."""
    obj = {
        "metadata": {"name": f"by-hand-{vm}-{node}", "namespace": "default"},
        "spec": {"vmiName": vm, "addedNodeSelector": {"kubernetes.io/hostname": node}},
    }
    sim.cluster.store.create(VMIMS, sim.cluster.admit("create", VMIMS, obj, None, "admin") or obj)
    wait(lambda: sim.node_of(vm) == node)


# ------------------------------------------------------------------------------------------------ #1


@pytest.mark.slow
@pytest.mark.parametrize("command", [["move", "web", "--to", "w3"], ["drain", "w1"]])
def test_1_a_rerun_after_kill_9_during_the_stop_continues_the_execution(
    tmp_path: Path, fast_cli: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    objs = cluster_objects(3)
    add_vm(objs, "web", "w1", storage="rwo")
    with simulator(tmp_path, objs, time_scale=20) as sim:  # slow enough to kill it between stop and start
        proc = launch(sim, tmp_path, *command, "--yes")
        wait(lambda: sim.cluster.store.get(VMS, "default", "web")["spec"].get("runStrategy") == "Halted")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()
        wait(lambda: sim.vmi("web") is None)  # the VM is down, by the killed run's doing
        code, text = cli(sim, *command, "--yes", capsys=capsys)
        assert code == 0, text
        assert "an earlier run did not finish" in text and "continuing it" in text
        assert sim.running("web") and sim.node_of("web") in ("w2", "w3")
        code, status = cli(sim, "status", "-o", "json", capsys=capsys)
        assert json_doc(status)["unfinished_executions"] == []
        assert_invariants(sim, fast_cli, pinned=["web"])


# ------------------------------------------------------------------------------------------------ #2


def test_2_apply_resume_reads_the_cluster_instead_of_trusting_the_journal(
    sim: Sim, tmp_path: Path, fast_cli: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = save_plan(sim, tmp_path / "plan.json", [("a", "w3", "live"), ("b", "w3", "live"), ("c", "w4", "live")])
    sim.cluster.faults.fail_migration("c")
    code, text = cli(sim, "apply", plan, "--sequential", "--yes", capsys=capsys)
    assert code == 5, text
    assert sim.node_of("a") == "w3" and sim.node_of("b") == "w3" and sim.node_of("c") == "w1"
    migrate_by_hand(sim, "a", "w5")  # after the "crash", someone moves two of its VMs elsewhere
    migrate_by_hand(sim, "b", "w2")
    code, report = report_json(sim, "apply", plan, "--resume", "--yes", capsys=capsys)
    assert code == 0, report
    assert (sim.node_of("a"), sim.node_of("b"), sim.node_of("c")) == ("w3", "w3", "w4")
    by_vm = {m["vm"]: m for m in report["moves"]}
    assert not any("earlier run" in n for n in by_vm["a"]["notes"] + by_vm["b"]["notes"]), by_vm
    assert all(m["state"] == f"Running on {m['to']}" for m in report["moves"])
    assert_invariants(sim, fast_cli, report=report)


def test_2_a_plan_or_an_execution_of_another_cluster_is_refused(
    sim: Sim, tmp_path: Path, fast_cli: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan_file = Path(save_plan(sim, tmp_path / "plan.json", [("a", "w3", "live")]))
    doc = json.loads(plan_file.read_text())
    assert doc["cluster"]["uid"]  # the plan carries the identity of the cluster it was made for
    doc["cluster"]["uid"] = "00000000-0000-4000-8000-000000000000"
    other = tmp_path / "other.json"
    other.write_text(json.dumps(doc))
    code, text = cli(sim, "apply", str(other), "--yes", capsys=capsys)
    assert code == 2 and "another cluster" in text, text
    assert sim.migrations() == []
    # an execution recorded against another cluster is not resumed here either
    sim.cluster.faults.fail_migration("a")
    assert cli(sim, "apply", str(plan_file), "--yes", capsys=capsys)[0] == 5
    (journal_file,) = fast_cli.glob("*.json")
    journal = json.loads(journal_file.read_text())
    journal["cluster"] = "00000000-0000-4000-8000-000000000000"
    journal_file.write_text(json.dumps(journal))
    code, text = cli(sim, "resume", journal_file.stem, "--yes", capsys=capsys)
    assert code == 2 and "another cluster" in text, text
    assert sim.node_of("a") == "w1"


# ------------------------------------------------------------------------------------------------ #3


def test_3_with_every_vmi_read_failing_the_report_states_nothing_it_did_not_read(sim: Sim, fast_cli: Path) -> None:
    session = service.Session.open(service.Target(kubeconfig=str(sim.kubeconfig)))
    try:
        plan = service.plan_moves(session.state, [ManualMoveRequest("default", "a", "w3", "live")]).plan

        def fail_vmi_reads_once_created(event: service.MoveEvent) -> None:
            if event.phase == "created" and not sim.cluster.faults.api_rules:
                sim.cluster.faults.inject_api_error(503, verbs=["get"], resources=["virtualmachineinstances"])

        with service.Run(session, plan, options=service.ExecutionOptions(poll_interval_seconds=0.05)) as run:
            report = run.execute(fail_vmi_reads_once_created)
    finally:
        session.close()
        sim.cluster.faults.api_rules.clear()
    (outcome,) = report.outcomes
    assert "stays on" not in (outcome.error or "") and "could not be read" in (outcome.error or ""), outcome
    assert outcome.state is None and any("not verified" in n for n in outcome.notes)
    assert sim.node_of("a") == "w3"  # it did move: the report did not claim otherwise
    assert sim.cluster.recorder.migrations_left_non_final() == []


def test_3_a_vm_deleted_during_its_migration_is_reported_so(
    sim: Sim, fast_cli: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sim.cluster.faults.delete_vm("default/a", when="migrating")
    code, report = report_json(sim, "move", "a", "--to", "w3", "--yes", capsys=capsys)
    assert code == 5
    (move,) = report["moves"]
    assert move["failure"] == "vm-not-found" and "deleted during its migration" in move["error"], move
    assert "stays on" not in move["error"] and move["state"] == "the VM does not exist (any more)"
    assert sim.vmi("a") is None and sim.cluster.store.try_get(VMS, "default", "a") is None  # not re-created
    assert sim.cluster.recorder.migrations_left_non_final() == []


# ------------------------------------------------------------------------------------------------ #4


def test_4_a_migration_created_with_kubectl_counts_against_its_source_node(
    sim: Sim, fast_cli: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sim.cluster.faults.stall_migration("e", phase="Pending")
    obj = {"metadata": {"name": "by-kubectl", "namespace": "default"}, "spec": {"vmiName": "e"}}
    sim.cluster.store.create(VMIMS, sim.cluster.admit("create", VMIMS, obj, None, "admin") or obj)
    code, text = cli(sim, "move", "a", "b", "c", "d", "--to", "w4", "--yes", capsys=capsys)
    assert code == 0, text
    assert all(sim.node_of(v) == "w4" for v in "abcd")
    assert sim.inflight.peak_per_source["w1"] <= 2, sim.inflight.peak_per_source  # the kubectl one included
    sim.cluster.store.delete(VMIMS, "default", "by-kubectl")


def test_4_a_second_execution_stops_naming_the_holder_then_takes_over_from_a_dead_one(
    sim: Sim, tmp_path: Path, fast_cli: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = save_plan(sim, tmp_path / "first.json", [("a", "w3", "live")])
    second = save_plan(sim, tmp_path / "second.json", [("x", "w4", "live")])
    sim.cluster.faults.stall_migration("a")
    proc = launch(sim, tmp_path, "apply", first, "--yes")
    try:
        wait(lambda: bool(sim.migrations()))
        code, text = cli(sim, "apply", second, "--yes", capsys=capsys)
        flat = " ".join(text.split())
        assert code == 4, text
        assert "another vm-rebalance execution is changing this cluster: apply first.json" in flat
        assert f"(pid {proc.pid})" in flat and "--wait-lock" in flat
        assert sim.node_of("x") == "w2" and len(sim.migrations()) == 1
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()
    # the holder died (same host, its process is gone): the lock is taken over at once
    code, text = cli(sim, "apply", second, "--yes", capsys=capsys)
    assert code == 0, text
    assert sim.node_of("x") == "w4"
    # the killed execution is listed, and resumed as printed (its stalled migration was cancelled meanwhile)
    unfinished = [j for j in (Journal.open(p.stem, directory=fast_cli) for p in fast_cli.glob("*.json")) if j.open_work]
    assert len(unfinished) == 1
    for m in sim.migrations():
        if m["spec"]["vmiName"] == "a" and m["status"].get("phase") not in ("Succeeded", "Failed"):
            sim.cluster.store.delete(VMIMS, "default", m["metadata"]["name"])
    code, text = cli(sim, "resume", unfinished[0].plan_id, "--yes", capsys=capsys)
    assert code == 0, text
    assert sim.node_of("a") == "w3"
    assert_invariants(sim, fast_cli)


@pytest.mark.slow
def test_1_a_restart_batch_killed_after_the_stop_is_resumed_and_the_vm_started(
    tmp_path: Path, fast_cli: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Resume covers lifecycle batches too: `status` lists it, `resume ID` starts the VM the restart stopped."""
    objs = cluster_objects(2)
    add_vm(objs, "web", "w1")
    with simulator(tmp_path, objs, time_scale=20) as sim:
        script = tmp_path / "launch.py"
        script.write_text(
            LAUNCHER.replace(
                "from vm_rebalance.cli.main import run\n",
                "import functools\nfrom vm_rebalance.executor import lifecycle\n"
                "import vm_rebalance.service.vms as vms\n"
                "vms.run_lifecycle = functools.partial(lifecycle.run_lifecycle, poll_interval_seconds=0.05)\n"
                "from vm_rebalance.cli.main import run\n",
            )
        )
        proc = subprocess.Popen(
            [sys.executable, str(script), "--kubeconfig", str(sim.kubeconfig), "restart", "web", "--yes"],
            env=env(tmp_path),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait(lambda: sim.cluster.store.get(VMS, "default", "web")["spec"].get("runStrategy") == "Halted")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        wait(lambda: sim.vmi("web") is None)
        code, status = cli(sim, "status", "-o", "json", capsys=capsys)
        (unfinished,) = json_doc(status)["unfinished_executions"]
        assert unfinished["kind"] == "lifecycle" and unfinished["command"] == "restart default/web"
        code, text = cli(sim, "resume", unfinished["plan_id"], "--yes", capsys=capsys)
        assert code == 0, text
        assert sim.running("web")
        assert json_doc(cli(sim, "status", "-o", "json", capsys=capsys)[1])["unfinished_executions"] == []
        assert_invariants(sim, fast_cli)
