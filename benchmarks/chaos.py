"""Chaos: kill -9 at random points of plans that mix live and cold moves, each followed by a resume,
and a soak of ≥ 1,000 migrations with random faults — counting violations of the invariants.

Invariants (the fault campaign's, tests/safety/harness.py): no VM that was running is left stopped;
no duplicate migration (never two unfinished migrations of one VMI); the limits (5 per cluster, 2
outbound per node, counting every migration) never exceeded; no pin that was not reported; journal ==
cluster (every move the journal calls done is where it says; a finished journal has nothing open);
the report says what the cluster shows. After a kill and its resume the plan must also be complete.

    python benchmarks/chaos.py [--kills 100] [--soak 1000] [--seed 1] [--quiet]

Kill trials run the real CLI as a subprocess (`apply PLAN --yes`), SIGKILL it after a random delay,
then run what a user runs: `vm-rebalance resume ID --yes` (or `apply PLAN --yes` again when the
process died before its journal existed). The soak runs rounds of random plans in-process through
`service.Run` (the CLI's path without a terminal: a cold move that cannot start is rolled back) with
a random fault script per round: failed, stalled-then-timed-out, unschedulable and quota-rejected
migrations, starts that never reach Running, API 5xx / 429 bursts, conflicts, dropped watches.
"""

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "src"))

from executor.simhelpers import VMS, Sim, add_vm, cluster_objects, simulator, write_plan  # noqa: E402
from vm_rebalance import service  # noqa: E402
from vm_rebalance.executor.journal import Journal, RecordStatus  # noqa: E402
from vm_rebalance.executor.kubevirt import PIN_ANNOTATION  # noqa: E402
from vm_rebalance.planner import ManualMoveRequest, plan_manual_moves  # noqa: E402
from vm_rebalance.service.identity import stamped  # noqa: E402
from vm_rebalance.simulator.faults import faults_from_document  # noqa: E402

LAUNCHER = f"""
import sys, dataclasses
sys.path.insert(0, {str(ROOT / "src")!r})
from vm_rebalance.cli import execute
_orig = execute._options
execute._options = lambda *a: dataclasses.replace(_orig(*a), poll_interval_seconds=0.05)
from vm_rebalance.cli.main import run
run(sys.argv[1:])
"""


# ------------------------------------------------------------------------------------------ invariants


def pinned_by_us(sim: Sim) -> set[str]:
    return {
        f"{vm['metadata'].get('namespace', 'default')}/{vm['metadata']['name']}"
        for vm in sim.cluster.store.iter_objects(VMS)
        if PIN_ANNOTATION in (vm["metadata"].get("annotations") or {})
    }


def violations(
    sim: Sim,
    state_dir: Path,
    *,
    reported_pins: set[str],
    expect_complete: dict[str, str] | None,
    journal_ids: set[str] | None = None,
) -> list[str]:
    """Every invariant that does not hold (empty: all hold). ``journal_ids``: the journals to compare (None: all)."""
    out: list[str] = []
    rec = sim.cluster.recorder
    if rec.vms_left_stopped():
        out.append(f"VMs left stopped: {rec.vms_left_stopped()}")
    ours_left = [m for m in rec.migrations_left_non_final() if "/vmr-" in m]
    if ours_left:
        out.append(f"migrations left unfinished: {ours_left}")
    if rec.peak_running_migrations > 5 or any(n > 2 for n in rec.peak_outbound_per_node.values()):
        out.append(f"KubeVirt's limits exceeded: {rec.summary()}")
    if sim.inflight.peak_total > 5 or any(n > 2 for n in sim.inflight.peak_per_source.values()):
        out.append(
            f"limits exceeded (every unfinished migration): {sim.inflight.peak_total} {sim.inflight.peak_per_source}"
        )
    if any(n > 1 for n in sim.inflight.peak_per_vmi.values()):
        out.append(f"duplicate migrations: {sim.inflight.peak_per_vmi}")
    if rec.capacity_overruns:
        out.append(f"capacity overrun: {rec.capacity_overruns[:3]}")
    unreported = pinned_by_us(sim) - reported_pins
    if unreported:
        out.append(f"pins nobody was told about: {sorted(unreported)}")
    for path in sorted(state_dir.glob("*.json")):
        if journal_ids is not None and path.stem not in journal_ids:
            continue
        try:
            journal = Journal.open(path.stem, directory=state_dir)
        except Exception as exc:
            out.append(f"journal {path.stem} unreadable: {exc}")
            continue
        for r in journal.moves.values():
            where = sim.node_of(r.vm, r.namespace)
            if r.status is RecordStatus.SUCCEEDED and r.method == "live" and where != r.target:
                out.append(f"journal says {r.namespace}/{r.vm} is on {r.target}, the cluster says {where}")
            if journal.finished and r.status is RecordStatus.RUNNING:
                out.append(f"finished journal {journal.plan_id} has move {r.id} still running")
    if expect_complete is not None:
        for vm, node in expect_complete.items():
            if sim.node_of(vm) != node or not sim.running(vm):
                out.append(f"after resume {vm} is not running on {node} (node {sim.node_of(vm)})")
    return out


def report_violations(sim: Sim, report: dict[str, Any]) -> list[str]:
    """The report must say what the cluster shows for every attempted move."""
    out = []
    for m in report.get("moves") or ():
        if m["status"] in ("not attempted", "pending"):
            continue
        state = m.get("state")
        if state is None:
            if not any("not verified" in n for n in m.get("notes") or ()):
                out.append(f"move {m['vm']} reported without reading the cluster")
            continue
        node = sim.node_of(m["vm"], m["namespace"])
        if sim.running(m["vm"], m["namespace"]) and f"Running on {node}" not in state:
            out.append(f"move {m['vm']}: report says '{state}', the cluster shows Running on {node}")
    return out


# ------------------------------------------------------------------------------------------ kill points


def kill_cluster(seed: int) -> tuple[list[dict[str, Any]], list[tuple[str, str, str]]]:
    """6 workers; 6 live moves (container disk / RWX) and 2 cold ones (RWO), in a mix of sizes."""
    rng = random.Random(seed)
    objs = cluster_objects(6, memory="128Gi")
    requests = []
    for i in range(8):
        cold = i >= 6
        name = f"{'c' if cold else 'l'}{i}"
        add_vm(objs, name, f"w{1 + i % 3}", memory=f"{rng.choice((1, 2, 4))}Gi", storage="rwo" if cold else "container")
        requests.append((name, f"w{4 + rng.randrange(3)}", "cold" if cold else "live"))
    return objs, requests


def run_cli(script: Path, sim: Sim, tmp: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, VM_REBALANCE_STATE_DIR=str(tmp / "state"), HOME=str(tmp / "home"), TERM="dumb")
    env.pop("KUBECONFIG", None)
    return subprocess.run(
        [sys.executable, str(script), "--kubeconfig", str(sim.kubeconfig), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def kill_trial(seed: int, max_delay: float) -> tuple[list[str], float]:
    """One kill -9 at a random moment, then the resume; the violations and the delay used."""
    rng = random.Random(seed)
    objs, requests = kill_cluster(seed)
    with tempfile.TemporaryDirectory() as tmp_name, simulator(Path(tmp_name), objs, time_scale=200) as sim:
        tmp = Path(tmp_name)
        script = tmp / "launch.py"
        script.write_text(LAUNCHER)
        session = service.Session.open(service.Target(kubeconfig=str(sim.kubeconfig)))
        try:
            plan = stamped(
                plan_manual_moves(session.state, [ManualMoveRequest("default", v, n, m) for v, n, m in requests]),
                session.state,
            )
        finally:
            session.close()
        plan_file = write_plan(tmp / "plan.json", plan)
        env = dict(os.environ, VM_REBALANCE_STATE_DIR=str(tmp / "state"), HOME=str(tmp / "home"), TERM="dumb")
        env.pop("KUBECONFIG", None)
        proc = subprocess.Popen(
            [sys.executable, str(script), "--kubeconfig", str(sim.kubeconfig), "apply", plan_file, "--yes"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        delay = rng.uniform(0.0, max_delay)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        state = tmp / "state"
        journals = list(state.glob("*.json")) if state.exists() else []
        if journals:
            done = run_cli(script, sim, tmp, "resume", journals[0].stem, "--yes", "-o", "json")
            if done.returncode == 2 and "is finished" in done.stderr:
                done = run_cli(script, sim, tmp, "status", "-o", "json")  # it had finished before the kill
        else:
            done = run_cli(script, sim, tmp, "apply", plan_file, "--yes", "-o", "json")
        problems: list[str] = []
        report: dict[str, Any] = {}
        if done.returncode != 0:
            problems.append(f"resume exited {done.returncode}: {done.stderr.strip()[-300:]}")
        with contextlib.suppress(ValueError):
            text = done.stdout
            report = json.loads(text[text.index("{") :])
        deadline = time.monotonic() + 10
        while sim.cluster.recorder.migrations_left_non_final() and time.monotonic() < deadline:
            time.sleep(0.05)
        pins = set(report.get("pinned") or ()) | {f"default/{v}" for v, _, m in requests if m == "cold"}
        problems += violations(sim, state, reported_pins=pins, expect_complete={v: n for v, n, _ in requests})
        if report.get("kind") == "RebalanceReport":
            problems += report_violations(sim, report)
        return problems, delay


# ------------------------------------------------------------------------------------------------ soak


FAULTS = [
    lambda vm: {"migrations": [{"action": "fail", "vm": f"default/{vm}"}]},
    lambda vm: {"migrations": [{"action": "unschedulable", "vm": f"default/{vm}"}]},
    lambda vm: {"migrations": [{"action": "quota", "vm": f"default/{vm}"}]},
    lambda vm: {"migrations": [{"action": "vanish", "vm": f"default/{vm}"}]},
    lambda vm: {"migrations": [{"action": "stall", "vm": f"default/{vm}", "phase": "Pending"}]},
    lambda vm: {"vms": [{"vm": f"default/{vm}", "failStart": "unschedulable", "starts": 1}]},
    lambda vm: {"vms": [{"vm": f"default/{vm}", "failStart": "crash", "starts": 1}]},
    lambda _vm: {"api": [{"verbs": ["get", "list"], "code": 503, "count": 6}]},
    lambda _vm: {"api": [{"code": 429, "retryAfter": 1, "count": 6}]},
    lambda _vm: {"api": [{"verbs": ["patch"], "resources": ["virtualmachines"], "code": 409, "count": 3}]},
    lambda _vm: {
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
    lambda _vm: {
        "watches": [{"resources": ["virtualmachineinstancemigrations"], "action": "expire", "afterEvents": 2}]
    },
    lambda _vm: {},
]


@dataclass
class Soak:
    rounds: int = 0
    migrations: int = 0
    """Live migrations created plus cold moves carried out (each a VM changing node)."""
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    problems: list[str] = field(default_factory=list)


def soak_cluster() -> list[dict[str, Any]]:
    objs = cluster_objects(10, memory="256Gi")
    for i in range(40):
        add_vm(
            objs, f"s{i:02d}", f"w{1 + i % 10}", memory=f"{1 + i % 3}Gi", storage="rwo" if i % 7 == 0 else "container"
        )
    return objs


@contextlib.contextmanager
def state_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as tmp:
        previous = os.environ.get("VM_REBALANCE_STATE_DIR")
        os.environ["VM_REBALANCE_STATE_DIR"] = tmp
        try:
            yield Path(tmp)
        finally:
            if previous is None:
                os.environ.pop("VM_REBALANCE_STATE_DIR", None)
            else:
                os.environ["VM_REBALANCE_STATE_DIR"] = previous


def soak(target: int, seed: int, *, log: bool = True) -> Soak:
    """Rounds of random plans (6 moves, some cold) under a random fault until ``target`` migrations ran."""
    rng = random.Random(seed)
    result = Soak()
    options = service.ExecutionOptions(poll_interval_seconds=0.02, min_timeout_seconds=2.0, timeout_per_gib_seconds=1.0)
    with (
        tempfile.TemporaryDirectory() as tmp,
        state_dir() as journals,
        simulator(Path(tmp), soak_cluster(), time_scale=2000) as sim,
    ):
        target_kubeconfig = service.Target(kubeconfig=str(sim.kubeconfig))
        while result.migrations < target:
            result.rounds += 1
            sim.cluster.faults = faults_from_document({})
            sim.cluster.recorder.mark_baseline()
            session = service.Session.open(target_kubeconfig)
            try:
                running = [v for v in session.state.vms if v.running and v.node]
                chosen = rng.sample(running, min(6, len(running)))
                requests = []
                for vm in chosen:
                    targets = [n.name for n in session.state.nodes if n.name != vm.node]
                    requests.append(ManualMoveRequest(vm.namespace, vm.name, rng.choice(targets), "auto"))
                plan = plan_manual_moves(session.state, requests)
                if not plan.moves:
                    continue
                victim = rng.choice(plan.moves).vm
                fault = rng.choice(FAULTS)(victim)
                created_before = len(sim.inflight.created)
                with service.Run(session, plan, options=options) as run:
                    journal_id = run.journal_id
                    run.acquire()  # the lock first: a fault on the Lease would only stop the round before it starts
                    sim.cluster.faults = faults_from_document(fault)
                    report = run.execute()
                    while report.failed and not report.interrupted:  # no terminal: skip the failed move, go on
                        if not run.choose(service.FailureChoice.SKIP):
                            break
                        report = run.execute()
                doc = report.to_document()
            finally:
                session.close()
            sim.cluster.faults = faults_from_document({})
            deadline = time.monotonic() + 10
            while [
                m for m in sim.cluster.recorder.migrations_left_non_final() if "/vmr-" in m
            ] and time.monotonic() < deadline:
                time.sleep(0.02)
            cold_done = sum(
                1
                for o in report.outcomes
                if o.move.method.value == "cold" and o.status is not service.MoveStatus.NOT_ATTEMPTED
            )
            result.migrations += len(sim.inflight.created) - created_before + cold_done
            result.succeeded += sum(1 for o in report.outcomes if o.ok)
            result.failed += sum(1 for o in report.outcomes if o.status is service.MoveStatus.FAILED)
            result.skipped += sum(1 for o in report.outcomes if o.status is service.MoveStatus.SKIPPED)
            pins = set(doc["pinned"]) | pinned_before(sim, doc)
            problems = violations(
                sim, journals, reported_pins=pins, expect_complete=None, journal_ids={journal_id}
            ) + report_violations(sim, doc)
            for p in problems:
                result.problems.append(f"round {result.rounds} ({json.dumps(fault)[:80]}): {p}")
            if log and result.rounds % 20 == 0:
                done = f"{result.rounds} rounds, {result.migrations} migrations"
                print(f"  soak: {done}, {len(result.problems)} violations", flush=True)
            # unpin what earlier rounds pinned, so later plans have room to choose from
            for ref in pinned_by_us(sim):
                ns, name = ref.split("/")
                with contextlib.suppress(Exception):
                    s = service.Session.open(target_kubeconfig)
                    try:
                        service.unpin(s, ns, name)
                    finally:
                        s.close()
    return result


def pinned_before(sim: Sim, doc: dict[str, Any]) -> set[str]:
    """Pins from earlier rounds (reported then) that this round did not touch."""
    touched = {f"{m['namespace']}/{m['vm']}" for m in doc["moves"]}
    return {p for p in pinned_by_us(sim) if p not in touched}


# ------------------------------------------------------------------------------------------------ main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=100)
    ap.add_argument("--soak", type=int, default=1000, help="migrations in the soak (0: none)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-delay", type=float, default=3.0, help="latest kill, seconds after the start")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()
    started = time.monotonic()
    kill_problems: list[str] = []
    delays = []
    for i in range(args.kills):
        problems, delay = kill_trial(args.seed * 10_000 + i, args.max_delay)
        delays.append(delay)
        kill_problems += [f"kill {i} at {delay:.2f}s: {p}" for p in problems]
        if not args.quiet and (i + 1) % 10 == 0:
            print(f"  kills: {i + 1}/{args.kills}, {len(kill_problems)} violations", flush=True)
    kills_seconds = time.monotonic() - started
    soak_started = time.monotonic()
    soaked = soak(args.soak, args.seed, log=not args.quiet) if args.soak else Soak()
    soak_seconds = time.monotonic() - soak_started
    print()
    print("| part | trials | migrations | violations | time |")
    print("|---|---|---|---|---|")
    print(
        f"| kill -9 at a random point (0–{args.max_delay:g} s) + resume | {args.kills} kill points | "
        f"{args.kills * 8} planned moves | {len(kill_problems)} | {kills_seconds:.0f} s |"
    )
    print(
        f"| soak with random faults | {soaked.rounds} rounds | {soaked.migrations} "
        f"({soaked.succeeded} succeeded, {soaked.failed} failed, {soaked.skipped} skipped moves) | "
        f"{len(soaked.problems)} | {soak_seconds:.0f} s |"
    )
    for p in (kill_problems + soaked.problems)[:40]:
        print("  violation:", p)
    sys.exit(1 if kill_problems or soaked.problems else 0)


if __name__ == "__main__":
    main()
