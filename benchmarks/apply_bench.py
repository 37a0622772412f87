"""How long `apply PLAN --dry-run` takes for large plans, without the cluster read.

For each size N it writes a snapshot of N running VMs (benchmarks/read_bench.py's generator,
N/8 nodes, so that most targets have room) and a plan file moving every VM to another node,
then times in a fresh process
what `apply --dry-run` does after reading the cluster: load and check the plan file
(`service.load_plan`), re-validate every move against the cluster state (`service.revalidate`)
and render the plan for the terminal. A "ghost" row does the same for a plan whose VMs the
cluster does not have (a plan from another cluster): it is refused at validation. The goal is
linear time: seconds per 1,000 moves should stay flat as N grows.

    python benchmarks/apply_bench.py [--sizes 1000,4000,20000,200000] [--ghost 1000,4000,200000]
"""

import argparse
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from read_bench import generate

SIZES = [1_000, 4_000, 20_000, 200_000]
GHOSTS = [1_000, 4_000, 200_000]

MEASURE = """
import io, resource, sys, time
from rich.console import Console
from vm_rebalance import service
from vm_rebalance.errors import RebalanceError
from vm_rebalance.render.plan import render_plan
from vm_rebalance.sources.snapshot_file import SnapshotFileSource

state = SnapshotFileSource(sys.argv[1]).read()
t0 = time.perf_counter()
try:
    plan = service.load_plan(sys.argv[2])
    t1 = time.perf_counter()
    check_names = getattr(service, "require_plan_names", None)  # absent before issue 16
    if check_names is not None:
        check_names(state, plan)
    checked = service.revalidate(state, plan)
    t2 = time.perf_counter()
    Console(file=io.StringIO(), width=160).print(render_plan(checked.plan, limits=state.limits))
    t3 = time.perf_counter()
    outcome = f"{len(checked.plan.moves)} valid"
except RebalanceError as exc:
    t1 = t2 = t3 = time.perf_counter()
    outcome = f"exit {int(exc.exit_code)}"
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"{t1 - t0:.2f} {t2 - t1:.2f} {t3 - t2:.2f} {rss:.0f} {outcome.replace(' ', '_')}")
"""


def write_plan(snapshot: Path, path: Path, *, ghost: bool, seed: int = 2) -> int:
    """A plan document moving every VM of ``snapshot`` to another node (or N unknown VMs)."""
    items = json.loads(snapshot.read_text())["items"]
    nodes = sorted(o["metadata"]["name"] for o in items if o["kind"] == "Node")
    vmis = [o for o in items if o["kind"] == "VirtualMachineInstance"]
    rng = random.Random(seed)
    moves = []
    for i, vmi in enumerate(vmis, start=1):
        source = vmi["status"]["nodeName"]
        target = nodes[(nodes.index(source) + 1 + rng.randrange(len(nodes) - 1)) % len(nodes)]
        if target == source:
            target = nodes[(nodes.index(source) + 1) % len(nodes)]
        moves.append(
            {
                "id": i,
                "vm": f"ghost-{i:06d}" if ghost else vmi["metadata"]["name"],
                "namespace": vmi["metadata"]["namespace"],
                "from": source,
                "to": target,
                "method": "live" if vmi["status"]["conditions"][0]["status"] == "True" else "cold",
                "wave": 1,
                "cpu": 1.0,
                "memory_bytes": 4 * 2**30,
                "downtime": "<1s",
                "reason": "benchmark",
            }
        )
    doc = {
        "apiVersion": "vm-rebalance/v1",
        "kind": "RebalancePlan",
        "goal": {"type": "manual", "weights": {"cpu": 0.5, "memory": 0.5}, "node": None},
        "basis": "requests",
        "moves": moves,
        "stays": [],
        "nodes": [],
        "metrics": {"before": {}, "after": {}},
        "warnings": [],
    }
    path.write_text(json.dumps(doc))
    return len(moves)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--ghost", default=",".join(map(str, GHOSTS)))
    args = parser.parse_args()
    runs = [(int(n), False) for n in args.sizes.split(",") if n] + [(int(n), True) for n in args.ghost.split(",") if n]
    header = f"{'moves':>8} {'kind':>6} {'load s':>7} {'validate s':>11} {'render s':>9} {'s / 1k':>7} {'RSS MiB':>8}"
    print(header + "  outcome")
    with tempfile.TemporaryDirectory() as tmp:
        for n, ghost in runs:
            snapshot, plan = Path(tmp) / f"snap-{n}.json", Path(tmp) / f"plan-{n}-{ghost}.json"
            if not snapshot.exists():
                generate(max(4, n // 8), n, snapshot)
            moves = write_plan(snapshot, plan, ghost=ghost)
            out = subprocess.run(
                [sys.executable, "-c", MEASURE, str(snapshot), str(plan)], capture_output=True, text=True, check=True
            ).stdout.split()
            load, validate, render, rss = float(out[0]), float(out[1]), float(out[2]), float(out[3])
            per_k = (load + validate + render) / moves * 1000
            kind = "ghost" if ghost else "real"
            print(
                f"{moves:>8} {kind:>6} {load:>7.2f} {validate:>11.2f} {render:>9.2f} {per_k:>7.2f} {rss:>8.0f}  "
                f"{out[4].replace('_', ' ')}"
            )


if __name__ == "__main__":
    main()
