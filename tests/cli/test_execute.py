"""The changing commands end to end on the simulator: apply / move / drain / lifecycle / unpin,
the approval loop and the failure prompt through a pseudo-terminal, kill -9 then --resume,
exit codes, and no secret in any output.
"""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from executor.simhelpers import Sim, add_vm, cluster_objects, simulator, write_plan
from vm_rebalance import service
from vm_rebalance.cli import execute as execute_cli
from vm_rebalance.cli.main import run
from vm_rebalance.executor.kubevirt import TEMP_PIN_ANNOTATION, existing_node_pin
from vm_rebalance.planner import ManualMoveRequest, plan_manual_moves

pytestmark = pytest.mark.e2e
SRC = str(Path(__file__).resolve().parents[2] / "src")
LAUNCHER = """
import sys, dataclasses, signal
# Ctrl-C as in a terminal, even when the test run itself was started with SIGINT ignored (nohup, &).
signal.signal(signal.SIGINT, signal.default_int_handler)
sys.path.insert(0, {src!r})
from vm_rebalance.cli import execute
_orig = execute._options
execute._options = lambda *a: dataclasses.replace(_orig(*a), poll_interval_seconds=0.1)
from vm_rebalance.cli.main import run
run(sys.argv[1:])
"""


@pytest.fixture(autouse=True)
def _env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VM_REBALANCE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    orig = execute_cli._options
    monkeypatch.setattr(execute_cli, "_options", lambda *a: dataclasses.replace(orig(*a), poll_interval_seconds=0.05))
    import functools

    from vm_rebalance.executor import lifecycle

    monkeypatch.setattr(
        "vm_rebalance.service.vms.run_lifecycle",
        functools.partial(lifecycle.run_lifecycle, poll_interval_seconds=0.05),
    )


def cli(sim: Sim, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as info:
        run(["--kubeconfig", str(sim.kubeconfig), *args])
    out = capsys.readouterr()
    text = out.out + out.err
    assert str(sim.kubeconfig) not in text and "secret-dir" not in text
    assert sim.server.token_for("admin") not in text if hasattr(sim.server, "token_for") else True
    return int(info.value.code or 0), text


def mixed(tmp_path: Path, version: str = "v1.6.0") -> list[dict]:
    objs = cluster_objects(4, version=version)
    add_vm(objs, "db", "w1", storage="rwx", memory="4Gi")
    add_vm(objs, "cache", "w1", memory="1Gi")
    add_vm(objs, "web", "w1", storage="rwo")
    add_vm(objs, "api", "w2", memory="2Gi")
    add_vm(objs, "off", None)
    return objs


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Sim]:
    with simulator(tmp_path, mixed(tmp_path), time_scale=300) as s:
        yield s


def save_plan(sim: Sim, tmp_path: Path, requests: list[tuple[str, str, str]]) -> str:
    session = service.Session.open(service.Target(kubeconfig=str(sim.kubeconfig)))
    try:
        plan = plan_manual_moves(session.state, [ManualMoveRequest("default", v, n, m) for v, n, m in requests])
    finally:
        session.close()
    assert len(plan.moves) == len(requests), plan.warnings
    return write_plan(tmp_path / "plan.json", plan)


# ------------------------------------------------------------------------------------------ non-interactive


def test_apply_yes_and_json_report(sim: Sim, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = save_plan(sim, tmp_path, [("db", "w3", "live"), ("cache", "w4", "live")])
    code, text = cli(sim, "apply", plan, "--yes", "-o", "json", capsys=capsys)
    assert code == 0, text
    assert sim.node_of("db") == "w3" and sim.node_of("cache") == "w4"
    sim.assert_clean()
    code, text = cli(sim, "status", "-o", "json", capsys=capsys)
    assert code == 0 and json.loads(text[text.index("{") :])["migrations_in_flight"] == []


def test_without_terminal_and_without_yes_refuses(sim: Sim, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = save_plan(sim, tmp_path, [("db", "w3", "live")])
    code, text = cli(sim, "apply", plan, capsys=capsys)
    assert code == 2 and "--yes" in text
    code, _ = cli(sim, "move", "db", "--to", "w3", capsys=capsys)
    assert code == 2
    code, _ = cli(sim, "stop", "db", capsys=capsys)
    assert code == 2
    assert sim.node_of("db") == "w1" and sim.migrations() == [] and sim.running("db")


def test_dry_run_changes_nothing(sim: Sim, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = save_plan(sim, tmp_path, [("db", "w3", "live")])
    code, text = cli(sim, "apply", plan, "--dry-run", capsys=capsys)
    assert code == 0 and "dry run" in text and sim.migrations() == []


def test_failed_migration_exit_5_then_resume(sim: Sim, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = save_plan(sim, tmp_path, [("cache", "w3", "live"), ("api", "w4", "live"), ("db", "w4", "live")])
    sim.cluster.faults.fail_migration("cache")
    code, text = cli(sim, "apply", plan, "--yes", capsys=capsys)
    assert code == 5, text
    assert "failed" in text and "not attempted" in text and "vm-rebalance resume " in text
    assert sim.node_of("cache") == "w1"
    code, text = cli(sim, "apply", plan, "--yes", capsys=capsys)
    assert code == 2 and "--resume" in text  # an unfinished journal is not silently restarted
    code, text = cli(sim, "apply", plan, "--resume", "--yes", capsys=capsys)
    assert code == 0, text
    assert (sim.node_of("cache"), sim.node_of("api"), sim.node_of("db")) == ("w3", "w4", "w4")
    names = [m["metadata"]["name"] for m in sim.migrations() if m["spec"]["vmiName"] == "cache"]
    assert sorted(n[-2:] for n in names) == ["-1", "-2"]
    sim.assert_clean()


def test_move_cold_then_unpin(sim: Sim, capsys: pytest.CaptureFixture[str]) -> None:
    code, text = cli(sim, "move", "web", "--to", "w2", "--yes", capsys=capsys)
    assert code == 0, text
    assert sim.node_of("web") == "w2" and sim.vm("web")["spec"]["runStrategy"] == "Always"
    assert "unpin" in text
    sim.assert_clean(pinned=("web",))
    code, text = cli(sim, "unpin", "web", "--yes", capsys=capsys)
    assert code == 0 and "unpinned" in text
    sim.assert_clean()


def test_move_unknown_vm_and_node(sim: Sim, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(sim, "move", "ghost", "--to", "w2", "--yes", capsys=capsys)[0] == 2
    assert cli(sim, "move", "db", "--to", "nowhere", "--yes", capsys=capsys)[0] == 2


def test_drain_mixed_node(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    objs = mixed(tmp_path)
    add_vm(objs, "stuck", "w1", node_selector={"kubernetes.io/hostname": "w1"})
    with simulator(tmp_path, objs, time_scale=300) as s:
        code, text = cli(s, "drain", "w1", "--dry-run", capsys=capsys)
        assert code == 0, text  # a dry run changes nothing and is not a failure
        assert "stuck" in text and s.node_of("db") == "w1"
        code, text = cli(s, "drain", "w1", "--yes", capsys=capsys)
        assert code == 4, text  # done, but one VM could not move
        assert "stuck" in text
        node = s.cluster.store.get(("", "nodes"), None, "w1")
        assert node["spec"].get("unschedulable") is True
        assert s.node_of("stuck") == "w1"
        for vm in ("db", "cache", "web"):
            assert s.node_of(vm) not in (None, "w1"), vm
        assert s.running("web")
        s.assert_clean(
            pinned=(*tuple(p for p in s.pinned() if p in ("web",)), "stuck")
            if "stuck" in s.pinned()
            else tuple(p for p in s.pinned() if p == "web")
        )


def test_lifecycle_commands(sim: Sim, capsys: pytest.CaptureFixture[str]) -> None:
    code, text = cli(sim, "start", "db", "--yes", capsys=capsys)
    assert code == 0 and "already running" in text
    code, text = cli(sim, "stop", "db", "api", "--yes", capsys=capsys)
    assert code == 0, text
    assert not sim.running("db") and not sim.running("api")
    assert sim.vm("db")["status"]["printableStatus"] == "Stopped"
    code, text = cli(sim, "start", "db", "api", "--yes", capsys=capsys)
    assert code == 0 and sim.running("db") and sim.running("api")
    uid = sim.vmi("cache")["metadata"]["uid"]
    code, text = cli(sim, "restart", "cache", "--yes", "-o", "json", capsys=capsys)
    assert code == 0, text
    assert sim.running("cache") and sim.vmi("cache")["metadata"]["uid"] != uid
    code, text = cli(sim, "start", "ghost", "--yes", capsys=capsys)
    assert code == 2 and "does not exist" in text


# ------------------------------------------------------------------------------------------ subprocesses


def launcher(tmp_path: Path) -> list[str]:
    path = tmp_path / "launch.py"
    path.write_text(LAUNCHER.format(src=SRC))
    return [sys.executable, str(path)]


def env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "VM_REBALANCE_STATE_DIR": str(tmp_path / "state"),
        "HOME": str(tmp_path / "home"),
        "COLUMNS": "200",
        "TERM": "dumb",
        "PYTHONPATH": SRC,
    }


def spawn(sim: Sim, tmp_path: Path, *args: str) -> pexpect.spawn:
    cmd = [*launcher(tmp_path), "--kubeconfig", str(sim.kubeconfig), *args]
    return pexpect.spawn(cmd[0], cmd[1:], env=env(tmp_path), encoding="utf-8", timeout=30, dimensions=(50, 200))


@pytest.mark.parametrize(("answer", "pinned"), [("yes", False), ("later", True), ("no", True)])
def test_manual_cold_move_dialogue_ends_with_the_affinity_question(
    sim: Sim, tmp_path: Path, answer: str, pinned: bool
) -> None:
    child = spawn(sim, tmp_path, "move", "web", "--to", "w2")
    child.expect("What will happen")
    child.expect("explain N / cancel: ")
    child.sendline("yes")
    child.expect("Cold Migration Successful", timeout=60)
    child.expect("Would you like to remove the node affinity now")
    child.expect("yes / no / later: ")
    child.sendline(answer)
    child.expect(pexpect.EOF, timeout=60)
    child.close()
    assert child.exitstatus == 0, child.before
    assert sim.node_of("web") == "w2" and sim.running("web")
    said = " ".join(child.before.split())
    if pinned:
        assert "Node affinity kept" in said and "vm-rebalance unpin default/web" in said
        sim.assert_clean(pinned=("web",))
    else:
        assert "node affinity removed" in said
        sim.assert_clean()


def test_several_vms_to_several_nodes_in_one_move(sim: Sim, capsys: pytest.CaptureFixture[str]) -> None:
    code, text = cli(sim, "move", "db=w3", "cache=w4", "--yes", capsys=capsys)
    assert code == 0, text
    assert "Batch Rebalance Plan" in text and "2 live migration(s)" in text
    assert sim.node_of("db") == "w3" and sim.node_of("cache") == "w4"
    assert cli(sim, "move", "db", capsys=capsys)[0] == 2  # no target at all: a usage error
    sim.assert_clean()


def test_interactive_explain_modify_skip_approve(sim: Sim, tmp_path: Path) -> None:
    plan = save_plan(sim, tmp_path, [("db", "w3", "live"), ("cache", "w4", "live")])
    child = spawn(sim, tmp_path, "apply", plan)
    child.expect("explain N / cancel: ")
    child.sendline("explain 1")
    child.expect("explain N / cancel: ")
    assert "Move #1: default/cache from w1 to w4" in child.before  # the planner numbers smallest first
    child.sendline("modify")
    child.expect("modify>")
    child.sendline("skip 1")
    child.expect(r"Migration #1 \(cache\) removed from plan")
    child.expect("modify>")
    child.sendline("done")
    child.expect("explain N / cancel: ")
    child.sendline("approve")
    child.expect(pexpect.EOF, timeout=60)
    child.close()
    assert child.exitstatus == 0, child.before
    assert sim.node_of("db") == "w3" and sim.node_of("cache") == "w1"  # move 1 (cache) was skipped
    sim.assert_clean()


def test_interactive_cancel_changes_nothing(sim: Sim, tmp_path: Path) -> None:
    plan = save_plan(sim, tmp_path, [("db", "w3", "live")])
    child = spawn(sim, tmp_path, "apply", plan)
    child.expect("explain N / cancel: ")
    child.sendline("cancel")
    child.expect("nothing was changed")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert sim.migrations() == [] and sim.node_of("db") == "w1"


@pytest.mark.parametrize("answer", ["skip", "abort", "retry cold"])
def test_failure_prompt(sim: Sim, tmp_path: Path, answer: str) -> None:
    plan = save_plan(sim, tmp_path, [("cache", "w3", "live"), ("db", "w4", "live")])
    sim.cluster.faults.fail_migration("cache")
    child = spawn(sim, tmp_path, "apply", plan)
    child.expect("explain N / cancel: ")
    child.sendline("approve")
    child.expect("retry / retry cold / retry on another node / skip / abort", timeout=60)
    child.sendline(answer)
    child.expect(pexpect.EOF, timeout=60)
    child.close()
    if answer == "skip":
        assert child.exitstatus == 5  # a skipped move leaves the plan incomplete
        assert sim.node_of("cache") == "w1" and sim.node_of("db") == "w4"
    elif answer == "abort":
        assert child.exitstatus == 5
        # db ran alongside the failed move (both fit the limits): running moves finish
        assert sim.node_of("cache") == "w1" and sim.node_of("db") == "w4"
    else:
        assert child.exitstatus == 0, child.before
        assert sim.node_of("cache") == "w3" and sim.node_of("db") == "w4"
        assert existing_node_pin(sim.vm("cache")) == ["w3"]
    assert sim.cluster.recorder.migrations_left_non_final() == []
    assert sim.cluster.recorder.vms_left_stopped() == []


def test_kill_9_then_resume(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    objs = cluster_objects(6, version="v1.5.0", memory="256Gi")  # the temporary-affinity path
    requests = []
    for i in range(8):
        add_vm(objs, f"v{i}", f"w{1 + i % 3}", memory=f"{6 + i}Gi")
        requests.append((f"v{i}", f"w{4 + i % 3}", "live"))
    add_vm(objs, "rwo", "w1", storage="rwo")
    requests.append(("rwo", "w5", "cold"))
    with simulator(tmp_path, objs, time_scale=10) as s:
        plan = save_plan(s, tmp_path, requests)
        cmd = [sys.executable, "-m", "vm_rebalance", "--kubeconfig", str(s.kubeconfig), "apply", plan, "--yes"]
        proc = subprocess.Popen(cmd, env=env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while not s.inflight.created and time.monotonic() < deadline:
            time.sleep(0.02)
        assert s.inflight.created, "no migration started"
        time.sleep(0.3)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()
        assert (
            any(
                TEMP_PIN_ANNOTATION in (vm["metadata"].get("annotations") or {})
                for vm in s.cluster.store.iter_objects(("kubevirt.io", "virtualmachines"))
            )
            or s.inflight.created
        )
        out = subprocess.run(
            [*cmd[:-1], "--resume", "--yes"], env=env(tmp_path), capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0, out.stdout + out.stderr
        assert str(s.kubeconfig) not in out.stdout + out.stderr
        for vm, node, _ in requests:
            assert s.node_of(vm) == node, vm
        vmis = [m["spec"]["vmiName"] for m in s.migrations()]
        assert len(vmis) == len(set(vmis)) == 8  # nothing moved twice, nothing lost
        s.assert_clean(pinned=("rwo",))


def test_ctrl_c_cancels_the_migration_in_flight_and_exits_130(sim: Sim, tmp_path: Path) -> None:
    plan = save_plan(sim, tmp_path, [("db", "w3", "live")])
    sim.cluster.faults.stall_migration("db")  # it would never finish on its own
    child = spawn(sim, tmp_path, "apply", plan, "--yes")
    child.expect("Execution Mode", timeout=60)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not sim.migrations():
        time.sleep(0.1)  # wait until the migration exists (the live display may not repaint on a dumb terminal)
    assert sim.migrations()
    time.sleep(0.5)
    child.sendintr()
    child.expect(pexpect.EOF, timeout=60)
    child.close()
    assert child.exitstatus == 130, child.before
    assert "stays on w1" in child.before or "cancelled" in child.before
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(
        (m.get("status") or {}).get("phase") not in ("Succeeded", "Failed") for m in sim.migrations()
    ):
        time.sleep(0.1)
    assert sim.cluster.recorder.migrations_left_non_final() == []
    assert sim.node_of("db") == "w1" and sim.running("db")


def test_a_vm_already_on_its_target_is_simply_nothing_to_do(sim: Sim, capsys: pytest.CaptureFixture[str]) -> None:
    code, text = cli(sim, "move", "db", "--to", "w1", "--yes", capsys=capsys)
    assert code == 0, text
    assert "VM 'db' is already on 'w1'. No migration needed." in text and "nothing to do" in text
    assert "failed validation" not in text and "Proceeding with remaining migrations" not in text
    sim.assert_clean()
