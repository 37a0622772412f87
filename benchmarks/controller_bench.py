"""The in-cluster controller's response times against the simulator (wall seconds, 2 cores).

Runs `vm-rebalance controller` as processes (resync 1 s; lease 4 s / renew deadline 3 s / retry 0.5 s,
the test settings; client-go's defaults are 15 / 10 / 2) and measures:

- policy created → RebalancePlan with its status (planning included);
- spec.approvedHash set → phase Executing (kopf's watch event, re-validation, the journal taken);
- leader SIGKILLed mid-plan → the standby holds the Lease → the execution resumed;
- SIGTERM mid-plan → the process exits (running migrations finish first).

    python benchmarks/controller_bench.py [--rounds 3]
"""

import argparse
import signal
import statistics
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests")]

from controller.simenv import environment, imbalanced, wait_for  # noqa: E402


def one_round(tmp: Path) -> dict[str, float]:
    out: dict[str, float] = {}
    with environment(tmp / "a", imbalanced(cold=True)) as env:
        env.start("ctl-a")
        wait_for("lead", lambda: env.lease_holder() == "ctl-a", timeout=30, every=0.02)
        t0 = time.monotonic()
        env.policy("bench", automation="Approve", goal="memory", schedule={"interval": "1h"})
        name = wait_for("plan", lambda: [p["metadata"]["name"] for p in env.plans() if p.get("status")], every=0.02)[0]
        out["policy → plan"] = time.monotonic() - t0
        h = env.plan(name)["status"]["planHash"]
        t0 = time.monotonic()
        env.patch_plan(name, {"approvedHash": h})
        wait_for("executing", lambda: env.phase(name) in ("Executing", "Succeeded"), every=0.02)
        out["approval → executing"] = time.monotonic() - t0
    with environment(tmp / "b", imbalanced(vms=8, memory="6Gi"), time_scale=3) as env:
        a = env.start("ctl-a")
        wait_for("lead", lambda: env.lease_holder() == "ctl-a", timeout=30, every=0.02)
        env.start("ctl-b")
        env.policy("fo", automation="Automatic", liveOnly=True, goal="memory", maxMigrations=8)
        name = wait_for("plan", lambda: [p["metadata"]["name"] for p in env.plans() if p.get("status")])[0]
        wait_for(
            "mid-plan",
            lambda: ((env.plan(name)["status"].get("progress") or {}).get("finished") or 0) >= 1,
            every=0.02,
        )
        t0 = time.monotonic()
        a.kill()
        wait_for("b leads", lambda: env.lease_holder() == "ctl-b", every=0.02)
        out["SIGKILL → standby leads"] = time.monotonic() - t0
        wait_for("resumed", lambda: env.events("ExecutionResumed", name=name), every=0.02)
        out["SIGKILL → execution resumed"] = time.monotonic() - t0
    with environment(tmp / "c", imbalanced(vms=8, memory="6Gi"), time_scale=3) as env:
        a = env.start("ctl-a")
        env.policy("term", automation="Automatic", liveOnly=True, goal="memory", maxMigrations=8)
        name = wait_for("plan", lambda: [p["metadata"]["name"] for p in env.plans() if p.get("status")])[0]
        wait_for(
            "running", lambda: ((env.plan(name)["status"].get("progress") or {}).get("running") or 0) >= 1, every=0.02
        )
        t0 = time.monotonic()
        a.proc.send_signal(signal.SIGTERM)
        a.proc.wait(timeout=120)
        out["SIGTERM → exit (migrations finish)"] = time.monotonic() - t0
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    rounds = parser.parse_args().rounds
    results: dict[str, list[float]] = {}
    with TemporaryDirectory() as d:
        for r in range(rounds):
            for key, value in one_round(Path(d) / str(r)).items():
                results.setdefault(key, []).append(value)
    print("| step | median s | min s | max s |")
    print("|---|---|---|---|")
    for key, values in results.items():
        print(f"| {key} | {statistics.median(values):.2f} | {min(values):.2f} | {max(values):.2f} |")


if __name__ == "__main__":
    main()
