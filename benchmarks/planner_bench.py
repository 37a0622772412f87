"""Planner benchmark: ONE table — our planner, the plain greedy reference and the peers, side by side.

Run: ``python benchmarks/planner_bench.py [--quick] [--sizes 50,500,5000]``. Not part of pytest.

Clusters come from `constrained_cluster.generate` (seed 0): mixed node sizes (16-64 cores),
taints and an infra pool, node selectors, required anti-affinity (HA groups), RWO and
container-disk VMs, do-not-move VMs, cordoned and control-plane nodes, measured usage. The
objective everywhere is what a `balanced` plan reports: 0.5·σ(CPU %) + 0.5·σ(memory %) over
the eligible nodes, usage basis, percentage points (lower is better).

Rows (each measured in its own process, so "peak RSS" is that algorithm's process peak — the
generated cluster in memory included; "time" is the algorithm alone, wall clock, with its CPU
seconds in brackets — on a shared 2-core machine the CPU figure is the steadier one):
  ours              `plan --goal balanced` (default minimum gain)
  ours, k=100       `plan --goal balanced --max-migrations 100`
  greedy            issue 12's reference (`greedy_reference.py`): at each step every movable VM on
                    the six nodes most above the mean against every feasible target, best single move
  threshold         the seeds' rule: VMs from nodes > 80 % (CPU or memory) to nodes < 50 %, largest first
  ProxLB            ProxLB 2.2's greedy (memory): smallest guests first, hottest → coolest node,
                    until the spread is <= 10 pp
  LNU               descheduler LowNodeUtilization with KubeVirt's deviation thresholds (under <= mean,
                    over > mean + 10 pp), 2 per node / 5 per cycle, least-allocated feasible target
Baselines move only VMs that can move live, to targets every placement rule allows (they are
given the same feasibility as the greedy). "vs greedy at equal k": for ours, the objective after
the plan's first k moves (the order the search chose them) against the greedy's after k, for
every k the two share — the worst margin and how many k are worse; for the others, their result
against the greedy's first k moves, k = their move count.
"""

import argparse
import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from constrained_cluster import generate
from greedy_reference import Greedy

from vm_rebalance.model import ClusterState, Goal, GoalType
from vm_rebalance.planner import PlanRequest, propose_plan

SIZES = {50: 1_000, 500: 12_000, 5000: 100_000}
GREEDY_CAP = 3_000
"""The greedy reference stops here at the latest (at 5,000 nodes a step takes ~50 ms)."""
ALGORITHMS = ("ours", "ours-k100", "greedy", "threshold", "proxlb", "lnu")
LABELS = {
    "ours": "**ours**",
    "ours-k100": "ours, `--max-migrations 100`",
    "greedy": "greedy (reference)",
    "threshold": "threshold (seeds)",
    "proxlb": "ProxLB greedy",
    "lnu": "descheduler LNU",
}


# --------------------------------------------------------------------------- peers


def _move_best(g: Greedy, i: int, score: Callable[[np.ndarray], np.ndarray], exclude: int) -> bool:
    """Move VM ``i`` to its feasible target with the lowest ``score`` (per node); False if none."""
    ok = g.feasible_targets(i)
    ok[exclude] = False
    if not ok.any():
        return False
    nodes = np.flatnonzero(ok)
    g.move(i, int(nodes[np.argmin(score(nodes))]))
    return True


def threshold_rule(g: Greedy, budget: int) -> int:
    """Seeds: from nodes > 80 % (CPU or memory) to nodes < 50 % (both), largest VM first."""
    moves = 0
    util = g.load / g.den
    for s in [int(j) for j in np.argsort(-util.max(axis=1)) if g.obj[j] and util[j].max() > 80]:
        residents = [int(i) for i in np.flatnonzero((g.pos == s) & g.movable)]
        for i in sorted(residents, key=lambda i: -(g.vm_load[i] / g.den[s]).sum()):
            util = g.load / g.den
            if moves >= budget or util[s].max() <= 80:
                break
            cool = (util.max(axis=1) < 50) & g.obj
            ok = g.feasible_targets(i) & cool
            if ok.any():
                nodes = np.flatnonzero(ok)
                g.move(i, int(nodes[np.argmin(util[nodes].max(axis=1))]))
                moves += 1
    return moves


def proxlb(g: Greedy, budget: int, balanciness: float = 10.0) -> int:
    """ProxLB 2.2 greedy, memory method: smallest guests first, hottest node → coolest node."""
    moves = 0
    for i in sorted(np.flatnonzero(g.movable).tolist(), key=lambda i: (g.vm_load[i, 1], i)):
        mem = np.where(g.obj, g.load[:, 1] / g.den[:, 1], np.nan)
        if np.nanmax(mem) - np.nanmin(mem) <= balanciness or moves >= budget:
            break
        hot, cool = int(np.nanargmax(mem)), int(np.nanargmin(mem))
        if g.pos[i] != hot or not g.feasible_targets(i)[cool]:
            continue
        g.move(i, cool)
        moves += 1
    return moves


def lnu(g: Greedy, budget: int, per_node: int = 2, per_cycle: int = 5, cycles: int = 2000) -> int:
    """descheduler LowNodeUtilization (deviation 0/10), the scheduler = least-allocated feasible node."""
    moves = 0
    for _ in range(cycles):
        util = g.load / g.den
        mean = util[g.obj].mean(axis=0)
        under = g.obj & (util <= mean).all(axis=1)
        over = np.flatnonzero(g.obj & (util > mean + 10).any(axis=1))
        if not under.any() or len(over) == 0:
            return moves
        evicted = 0
        for s in sorted(over.tolist(), key=lambda j: -util[j].sum()):
            if evicted >= per_cycle or moves >= budget:
                break
            count = 0
            for i in np.flatnonzero((g.pos == s) & g.movable).tolist():
                if count >= per_node or evicted >= per_cycle or moves >= budget:
                    break
                placed = _move_best(g, i, lambda nodes: (g.requested[nodes] / g.alloc[nodes]).mean(axis=1), s)
                if placed:
                    count += 1
                    evicted += 1
                    moves += 1
                if not ((g.load[s] / g.den[s]) > mean + 10).any():
                    break
        if evicted == 0 or moves >= budget:
            return moves
    return moves


PEERS: dict[str, Callable[[Greedy, int], int]] = {"threshold": threshold_rule, "proxlb": proxlb, "lnu": lnu}


# --------------------------------------------------------------------------- one cell, in its own process


def _search_curve(state: ClusterState, request: PlanRequest) -> tuple[list[float], object]:
    """Plan, recording the objective after each prefix of the moves in the order the search chose them."""
    import vm_rebalance.planner.propose as propose
    from vm_rebalance.planner.tradeoff import objective_curve

    seen: dict[str, list[float]] = {}
    original = propose.tradeoff_points

    def spy(pristine, steps, terms, is_cold):  # type: ignore[no-untyped-def]
        seen["curve"] = objective_curve(pristine, steps, terms)
        return original(pristine, steps, terms, is_cold)

    propose.tradeoff_points = spy
    try:
        plan = propose_plan(state, request)
    finally:
        propose.tradeoff_points = original
    return seen.get("curve", []), plan


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_cell(algorithm: str, n_nodes: int, n_vms: int) -> dict[str, object]:
    state = generate(n_nodes, n_vms, seed=0)
    cpu = _cpu_seconds()
    start = time.perf_counter()
    if algorithm in ("ours", "ours-k100"):
        budget = 100 if algorithm == "ours-k100" else None
        curve, plan = _search_curve(state, PlanRequest(goal=Goal(type=GoalType.BALANCED), max_migrations=budget))
        elapsed = time.perf_counter() - start
        moves = len(plan.moves)  # type: ignore[attr-defined]
        after = plan.metrics_after["objective"]  # type: ignore[attr-defined]
        before = plan.metrics_before["objective"]  # type: ignore[attr-defined]
    elif algorithm == "greedy":
        g = Greedy(state)
        result = g.run(GREEDY_CAP)
        elapsed = time.perf_counter() - start
        curve, moves, before, after = result.curve, len(result.moves), result.curve[0], result.curve[-1]
    else:
        g = Greedy(state)
        before = g.objective()
        moves = PEERS[algorithm](g, 10**9)
        elapsed = time.perf_counter() - start
        after, curve = g.objective(), []
    cpu = _cpu_seconds() - cpu
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    return {
        "cpu": cpu,
        "moves": moves,
        "before": before,
        "after": after,
        "seconds": elapsed,
        "rss_gib": rss,
        "curve": [float(x) for x in curve],
    }


# --------------------------------------------------------------------------- the table


def _cell(algorithm: str, n_nodes: int, n_vms: int) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, __file__, "--cell", algorithm, str(n_nodes), str(n_vms)],
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _versus(name: str, cell: dict[str, object], greedy: list[float]) -> str:
    moves = int(cell["moves"])  # type: ignore[call-overload]
    if name == "greedy":
        return "(the reference)"
    if not greedy or moves == 0:
        return "–"
    curve = list(cell["curve"])  # type: ignore[call-overload]
    if name.startswith("ours") and curve:
        shared = range(1, min(len(curve), len(greedy)))
        margins = [curve[k] - greedy[k] for k in shared]
        worse = sum(1 for m in margins if m > 1e-9)
        worst = max(margins, default=0.0)
        k = min(moves, len(greedy) - 1)
        text = f"k={k}: {curve[k]:.2f} vs {greedy[k]:.2f}; "
        if worse == 0:
            return text + f"never worse (k=1…{len(margins)})"
        return text + f"worse at {worse} of {len(margins)} k (at most +{worst:.3f})"
    k = min(moves, len(greedy) - 1)
    note = "" if moves < len(greedy) else f" (greedy stops at {len(greedy) - 1})"
    return f"k={moves}: {float(cell['after']):.2f} vs greedy {greedy[k]:.2f}{note}"  # type: ignore[arg-type]


def table(sizes: list[int], algorithms: tuple[str, ...]) -> None:
    print("| cluster | algorithm | moves | objective | vs greedy at equal k | time (CPU) | peak RSS |")
    print("|---|---|---|---|---|---|---|")
    for n_nodes in sizes:
        n_vms = SIZES.get(n_nodes, n_nodes * 20)
        label = f"{n_nodes} nodes / {n_vms:,} VMs"
        cells = {a: _cell(a, n_nodes, n_vms) for a in algorithms}
        greedy = list(cells["greedy"]["curve"]) if "greedy" in cells else []  # type: ignore[call-overload]
        for a in algorithms:
            c = cells[a]
            print(
                f"| {label} | {LABELS[a]} | {c['moves']} | {float(c['before']):.2f} → {float(c['after']):.2f} "  # type: ignore[arg-type]
                f"| {_versus(a, c, greedy)} | {float(c['seconds']):.2f} s ({float(c['cpu']):.2f} s) "  # type: ignore[arg-type]
                f"| {float(c['rss_gib']):.2f} GiB |"  # type: ignore[arg-type]
            )
            sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50 and 500 nodes only")
    parser.add_argument("--sizes", help="comma-separated node counts (50, 500, 5000)")
    parser.add_argument("--cell", nargs=3, metavar=("ALGORITHM", "NODES", "VMS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cell:
        print(json.dumps(run_cell(args.cell[0], int(args.cell[1]), int(args.cell[2]))))
        return
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else ([50, 500] if args.quick else [50, 500, 5000])
    table(sizes, ALGORITHMS)


if __name__ == "__main__":
    main()
