"""Makespan of a 200-move live plan under the default limits (5 per cluster, 2 per source node).

Runs the real executor against the simulator (HTTPS API, simulated time) and measures in
SIMULATED seconds from the migrations' own timestamps: makespan = first creation → last
Succeeded. The lower bound is what the limits allow at best: max(total slot time ÷ 5, the
busiest source node's slot time ÷ 2, the longest migration), where a migration's slot time is
the time KubeVirt counts it against the limits (Scheduling → Succeeded). Target: within 15 %.

    python benchmarks/executor_bench.py [--moves 200] [--time-scale 5] [--poll 0.05]
"""

import argparse
import json
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from executor.simhelpers import add_vm, cluster_objects, simulator
from vm_rebalance import service
from vm_rebalance.executor.runners import ExecutionOptions
from vm_rebalance.planner import ManualMoveRequest, plan_manual_moves


def ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--moves", type=int, default=200)
    ap.add_argument("--time-scale", type=float, default=5.0)
    ap.add_argument("--poll", type=float, default=0.05)
    ap.add_argument("--sources", type=int, default=20)
    args = ap.parse_args()
    n_src, n_dst = args.sources, 10
    objs = cluster_objects(n_src + n_dst, memory="1024Gi")
    requests = []
    for i in range(args.moves):
        src = 1 + i % n_src
        add_vm(objs, f"vm{i:03d}", f"w{src}", memory=f"{2 + (i * 7) % 15}Gi")
        requests.append(ManualMoveRequest("default", f"vm{i:03d}", f"w{n_src + 1 + i % n_dst}", "live"))
    with tempfile.TemporaryDirectory() as tmp, simulator(Path(tmp), objs, time_scale=args.time_scale) as sim:
        session = service.Session.open(service.Target(kubeconfig=str(sim.kubeconfig)))
        plan = plan_manual_moves(session.state, requests)
        wall = time.monotonic()
        result = service.execute_plan(
            session, plan, options=ExecutionOptions(poll_interval_seconds=args.poll), journal_dir=Path(tmp) / "j"
        )
        wall = time.monotonic() - wall
        session.close()
        migs = sim.migrations()
        ok = sum(o.ok for o in result.outcomes)
        summary = sim.cluster.recorder.summary()
    starts, ends, slot, per_node = [], [], [], {}
    for m in migs:
        stamps = {t["phase"]: ts(t["phaseTransitionTimestamp"]) for t in m["status"]["phaseTransitionTimestamps"]}
        created = ts(m["metadata"]["creationTimestamp"])
        starts.append(created)
        ends.append(stamps["Succeeded"])
        held = stamps["Succeeded"] - stamps.get("Scheduling", created)
        slot.append(held)
        src = m["status"]["migrationState"]["sourceNode"]
        per_node[src] = per_node.get(src, 0.0) + held
    makespan = max(ends) - min(starts)
    bound = max(sum(slot) / 5, max(per_node.values()) / 2, max(slot))
    rows = [
        ("moves", f"{len(migs)} ({ok} succeeded)"),
        ("time scale", f"{args.time_scale:g}x, poll {args.poll:g}s"),
        ("total slot time (sim s)", f"{sum(slot):.0f}"),
        (
            "lower bound (sim s)",
            f"{bound:.0f}  = max(total/5 {sum(slot) / 5:.0f}, busiest node/2 "
            f"{max(per_node.values()) / 2:.0f}, longest {max(slot):.0f})",
        ),
        ("makespan (sim s)", f"{makespan:.0f}"),
        ("overhead vs bound", f"{100 * (makespan / bound - 1):.1f} %  (target ≤ 15 %)"),
        ("peak running (KubeVirt)", str(summary["peak_running_migrations"])),
        ("peak outbound per node", str(max(summary["peak_outbound_per_node"].values()))),
        ("wall time (s)", f"{wall:.1f}"),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    print(json.dumps({"makespan": makespan, "bound": bound}))


if __name__ == "__main__":
    main()
