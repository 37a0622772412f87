"""Planner benchmark: quality against peer baselines at equal move counts, drain, and speed.

Run: ``python benchmarks/planner_bench.py [--quick]``. Not part of pytest.

Clusters come from a small seeded generator below (deliberately not the simulator's): nodes of
three sizes, VMs of five shapes, placed with a skewed preference so a few nodes run hot. The
objective everywhere is the `balanced` goal's: 0.5 x std dev of CPU % + 0.5 x std dev of
memory % across nodes (requests basis), in percentage points.

Baselines, implemented here from their published descriptions (../shared/peers.md §B):
  threshold   the seeds' rule: move VMs from nodes > 80 % to nodes < 50 % (largest VM first)
  proxlb      ProxLB 2.2 greedy (memory method): smallest guests first, move a guest iff it is on
              the hottest node, to the coolest node; stop when spread <= 10 pp (balanciness)
  lnu         descheduler LowNodeUtilization with KubeVirt's deviation thresholds (under <= mean,
              over > mean + 10 pp), evict up to 2 per node / 5 per cycle, the scheduler
              re-places on the least-allocated feasible node; cycles repeat until nothing moves
  exhaustive  at each step try every (VM, target) pair and take the best improvement
"""

import argparse
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from vm_rebalance.model import (
    Basis,
    ClusterState,
    Goal,
    GoalType,
    Node,
    Resources,
    VirtualMachine,
    Volume,
)
from vm_rebalance.planner import PlanRequest, propose_plan

GI = 1024**3
NODE_SIZES = [(32_000, 128 * GI), (48_000, 192 * GI), (64_000, 256 * GI)]
VM_SHAPES = [(500, 2 * GI), (1000, 4 * GI), (2000, 8 * GI), (4000, 16 * GI), (8000, 32 * GI)]
VM_SHAPE_P = [0.35, 0.3, 0.2, 0.12, 0.03]


# --------------------------------------------------------------------------- generator


def generate(n_nodes: int, n_vms: int, seed: int) -> ClusterState:
    """An imbalanced cluster: every node eligible, every VM running and live-migratable."""
    rng = np.random.default_rng(seed)
    sizes = [NODE_SIZES[int(k)] for k in rng.integers(0, len(NODE_SIZES), n_nodes)]
    alloc = np.array(sizes, dtype=np.float64)
    shapes = np.array(VM_SHAPES, dtype=np.float64)[rng.choice(len(VM_SHAPES), n_vms, p=VM_SHAPE_P)]
    # Scale the VM count to ~55 % of cluster capacity if the shapes overshoot.
    pref = rng.pareto(1.2, n_nodes) + 0.2
    pref /= pref.sum()
    used = np.zeros_like(alloc)
    placement = np.empty(n_vms, dtype=np.int64)
    for i in range(n_vms):
        order = rng.choice(n_nodes, size=min(n_nodes, 8), replace=False, p=pref)
        for j in order:
            if (used[j] + shapes[i] <= alloc[j] * 0.95).all():
                break
        else:
            j = int(np.argmin((used / alloc).max(axis=1)))
        placement[i] = j
        used[j] += shapes[i]
    rwx = (Volume(name="root", source="persistentVolumeClaim", claim_name="root", access_modes=("ReadWriteMany",)),)
    labels = {"kubevirt.io/schedulable": "true"}
    nodes = tuple(
        Node(
            name=f"node-{j:04d}",
            labels={**labels, "kubernetes.io/hostname": f"node-{j:04d}"},
            allocatable=Resources(int(alloc[j, 0]), int(alloc[j, 1])),
            capacity=Resources(int(alloc[j, 0]), int(alloc[j, 1])),
            kvm_devices=1000,
            requested=Resources(int(used[j, 0]), int(used[j, 1])),
        )
        for j in range(n_nodes)
    )
    vms = tuple(
        VirtualMachine(
            namespace="bench",
            name=f"vm-{i:06d}",
            running=True,
            node=f"node-{int(placement[i]):04d}",
            vcpus=max(1, int(shapes[i, 0] // 1000)),
            guest_memory_bytes=int(shapes[i, 1]),
            requests=Resources(int(shapes[i, 0]), int(shapes[i, 1])),
            volumes=rwx,
            live_migratable=True,
        )
        for i in range(n_vms)
    )
    return ClusterState(nodes=nodes, vms=vms)


# --------------------------------------------------------------------------- array model


class Arrays:
    """The cluster as arrays for the baselines (requests basis)."""

    def __init__(self, state: ClusterState) -> None:
        self.names = [n.name for n in state.nodes]
        index = {n: j for j, n in enumerate(self.names)}
        self.alloc = np.array([[n.allocatable.cpu_millicores, n.allocatable.memory_bytes] for n in state.nodes], float)
        self.used = np.array([[n.requested.cpu_millicores, n.requested.memory_bytes] for n in state.nodes], float)
        self.req = np.array([[v.requests.cpu_millicores, v.requests.memory_bytes] for v in state.vms], float)
        self.pos = np.array([index[str(v.node)] for v in state.vms])
        self.moves = 0

    def util(self) -> np.ndarray:
        return self.used / self.alloc * 100.0

    def objective(self) -> float:
        u = self.util()
        return float(0.5 * np.std(u[:, 0]) + 0.5 * np.std(u[:, 1]))

    def fits(self, i: int, t: int) -> bool:
        return bool((self.used[t] + self.req[i] <= self.alloc[t]).all())

    def move(self, i: int, t: int) -> None:
        s = self.pos[i]
        self.used[s] -= self.req[i]
        self.used[t] += self.req[i]
        self.pos[i] = t
        self.moves += 1


def threshold_rule(a: Arrays, budget: int) -> None:
    """Seeds: from nodes > 80 % (CPU or memory) to nodes < 50 % (both), largest VM first."""
    u = a.util()
    over = [int(j) for j in np.argsort(-u.max(axis=1)) if u[j].max() > 80]
    for s in over:
        for i in sorted(np.flatnonzero(a.pos == s), key=lambda i: -a.req[i].sum() / a.alloc[s].sum()):
            if a.moves >= budget or a.util()[s].max() <= 80:
                break
            u = a.util()
            under = [int(t) for t in np.argsort(u.max(axis=1)) if u[t].max() < 50 and a.fits(int(i), int(t))]
            if under:
                a.move(int(i), under[0])


def proxlb(a: Arrays, budget: int, balanciness: float = 10.0) -> None:
    """ProxLB 2.2 greedy, memory method: smallest guests first, hottest node → coolest node."""
    for i in sorted(range(len(a.pos)), key=lambda i: (a.req[i, 1], i)):
        m = a.util()[:, 1]
        if m.max() - m.min() <= balanciness or a.moves >= budget:
            break
        hot, cool = int(np.argmax(m)), int(np.argmin(m))
        if a.pos[i] != hot:
            continue
        if a.req[i, 1] >= a.alloc[cool, 1] - a.used[cool, 1] or not a.fits(i, cool):
            continue
        a.move(i, cool)


def lnu(a: Arrays, budget: int, per_node: int = 2, per_cycle: int = 5, cycles: int = 200) -> None:
    """descheduler LowNodeUtilization (deviation 0/10), scheduler = least-allocated feasible node."""
    for _ in range(cycles):
        u = a.util()
        mean = u.mean(axis=0)
        low, high = mean, mean + 10
        under = np.flatnonzero((u <= low).all(axis=1))
        over = np.flatnonzero((u > high).any(axis=1))
        if len(under) == 0 or len(over) == 0:
            return
        avail = ((high / 100 * a.alloc[under]) - a.used[under]).sum(axis=0)
        over = sorted(over, key=lambda j: -a.used[j].sum())
        evicted = 0
        for s in over:
            count = 0
            for i in np.flatnonzero(a.pos == s):
                if count >= per_node or evicted >= per_cycle or a.moves >= budget:
                    break
                # The scheduler's least-allocated choice among nodes that fit.
                score = (a.used + a.req[i]) / a.alloc
                ok = (a.used + a.req[i] <= a.alloc).all(axis=1)
                ok[s] = False
                if not ok.any():
                    continue
                t = int(np.flatnonzero(ok)[np.argmin(score[ok].mean(axis=1))])
                a.move(int(i), t)
                count += 1
                evicted += 1
                avail -= a.req[i]
                if not (a.util()[s] > high).any() or (avail <= 0).any():
                    break
        if evicted == 0 or a.moves >= budget:
            return


def exhaustive(a: Arrays, budget: int) -> None:
    """At each step, every (VM, target) pair; take the best improvement."""
    n = len(a.alloc)
    while a.moves < budget:
        base = a.objective()
        u = a.util()
        s = a.pos
        k = float(n)
        best, best_pair = base - 1e-9, None
        # new std per column for all pairs, vectorised: (VMs, nodes)
        totals = np.zeros((len(s), n))
        for c in (0, 1):
            a_s = (a.req[:, c] / a.alloc[s, c] * 100)[:, None]
            b_t = a.req[:, c][:, None] / a.alloc[None, :, c] * 100
            s1, s2 = u[:, c].sum(), (u[:, c] ** 2).sum()
            us, ut = u[s, c][:, None], u[None, :, c]
            n1 = s1 - a_s + b_t
            n2 = s2 + a_s * a_s - 2 * a_s * us + b_t * b_t + 2 * b_t * ut
            totals += 0.5 * np.sqrt(np.maximum(n2 / k - (n1 / k) ** 2, 0))
        ok = ((a.used[None, :, :] + a.req[:, None, :]) <= a.alloc[None, :, :]).all(axis=2)
        ok[np.arange(len(s)), s] = False
        totals = np.where(ok, totals, np.inf)
        flat = int(np.argmin(totals))
        i, t = divmod(flat, n)
        if totals[i, t] < best:
            best_pair = (i, t)
        if best_pair is None:
            return
        a.move(*best_pair)


# --------------------------------------------------------------------------- ours


def ours(state: ClusterState, budget: int | None, strategy: str = "greedy") -> tuple[int, float, float]:
    request = PlanRequest(
        goal=Goal(type=GoalType.BALANCED), basis=Basis.REQUESTS, max_migrations=budget, strategy=strategy
    )
    start = time.perf_counter()
    plan = propose_plan(state, request)
    elapsed = time.perf_counter() - start
    return len(plan.moves), plan.metrics_after["objective"], elapsed


def run_baseline(state: ClusterState, fn: Callable[[Arrays, int], None], budget: int) -> tuple[int, float]:
    a = Arrays(state)
    fn(a, budget)
    return a.moves, a.objective()


def quality(sizes: list[tuple[int, int]], seeds: int) -> None:
    print("\n## Quality (balanced goal, objective = 0.5·σ(CPU %) + 0.5·σ(memory %), lower is better)\n")
    print("| cluster | algorithm | moves | objective | ours @ same moves | ours better by |")
    print("|---|---|---|---|---|---|")
    for n_nodes, n_vms in sizes:
        for seed in range(seeds):
            state = generate(n_nodes, n_vms, seed)
            label = f"{n_nodes} nodes / {n_vms} VMs (seed {seed})"
            before = Arrays(state).objective()
            k, obj, _ = ours(state, None)
            print(f"| {label} | (before) | 0 | {before:.2f} | | |")
            print(f"| {label} | **ours** | {k} | {obj:.2f} | | |")
            rows: list[tuple[str, Callable[[Arrays, int], None], int]] = [
                ("threshold (seeds)", threshold_rule, 10**9),
                ("ProxLB greedy", proxlb, 10**9),
                ("descheduler LNU", lnu, 10**9),
            ]
            if n_nodes <= 50:
                rows.append(("exhaustive best-improvement", exhaustive, k))
            for name, fn, budget in rows:
                moves, value = run_baseline(state, fn, budget)
                if moves == 0:
                    print(f"| {label} | {name} | 0 | {value:.2f} | {before:.2f} | (no moves) |")
                    continue
                _, same, _ = ours(state, moves)
                better = (value - same) / value * 100 if value > 0 else 0.0
                print(f"| {label} | {name} | {moves} | {value:.2f} | {same:.2f} | {better:+.0f} % |")


def tighten(state: ClusterState, drained: str, slack: float, seed: int) -> ClusterState:
    """``state`` with filler VMs on the other nodes until their free room is ``slack`` x what the
    drained node's VMs request, left in fragments (random shares per node): the room is there,
    but the bigger VMs fit only once others move."""
    rng = np.random.default_rng(seed)
    a = Arrays(state)
    d = a.names.index(drained)
    unit = VM_SHAPES[0][0]
    need = a.req[a.pos == d, 0].sum()
    free = (a.alloc - a.used)[:, 0]
    free[d] = 0.0
    # No node keeps room for the drained node's largest VM (where the total allows it).
    biggest = a.req[a.pos == d, 0].max(initial=unit)
    cap = np.minimum(free, biggest - unit if (biggest - unit) * (len(free) - 1) >= need * slack else free)
    shares = rng.dirichlet(np.ones(len(free))) * need * slack
    keep = np.minimum(np.floor(shares / unit) * unit, cap)
    short = need * slack - keep.sum()
    for j in np.argsort(-(cap - keep), kind="stable"):  # put what the caps cut off where there is room
        add = min(cap[j] - keep[j], np.ceil(short / unit) * unit)
        keep[j] += max(add, 0.0)
        short -= max(add, 0.0)
    fillers = []
    for j, node in enumerate(state.nodes):
        left = free[j] - keep[j]
        k = 0
        while left >= unit:
            cpu, mem = max((sh for sh in VM_SHAPES if sh[0] <= left), key=lambda sh: sh[0])
            fillers.append(
                VirtualMachine(
                    namespace="bench",
                    name=f"fill-{j:04d}-{k:03d}",
                    running=True,
                    node=node.name,
                    vcpus=max(1, cpu // 1000),
                    guest_memory_bytes=mem,
                    requests=Resources(cpu, mem),
                    volumes=state.vms[0].volumes,
                    live_migratable=True,
                )
            )
            left -= cpu
            k += 1
    added: dict[str, Resources] = {}
    for v in fillers:
        added[str(v.node)] = added.get(str(v.node), Resources()) + v.requests
    nodes = tuple(replace(n, requested=n.requested + added.get(n.name, Resources())) for n in state.nodes)
    return ClusterState(nodes=nodes, vms=state.vms + tuple(fillers))


def drain_check(sizes: list[tuple[int, int]]) -> None:
    print("\n## Drain (the most loaded node)\n")
    print(
        "Free CPU elsewhere / needed: the other nodes' free allocatable (requests) against the drained VMs' "
        "requests; when it is short, not every VM can leave whatever moves first. 'tight' rows first fill the "
        "other nodes until that ratio is 1.1, in fragments, so the bigger VMs fit only once others move.\n"
    )
    print(
        "| cluster | VMs on node | moved off | extra moves (make room) | staying (reason) | free CPU / needed | time |"
    )
    print("|---|---|---|---|---|---|---|")
    for n_nodes, n_vms in sizes:
        for tight in (False, True):
            state = generate(n_nodes, n_vms, 0)
            a = Arrays(state)
            drained = int(np.argmax(a.util().max(axis=1)))
            node = state.nodes[drained].name
            if tight:
                if (np.delete(a.alloc - a.used, drained, axis=0)[:, 0].sum()) < 1.1 * a.req[a.pos == drained, 0].sum():
                    continue  # already short of room: nothing to tighten
                state = tighten(state, node, 1.1, 0)
                a = Arrays(state)
            start = time.perf_counter()
            plan = propose_plan(state, PlanRequest(goal=Goal(type=GoalType.DRAIN, node=node), basis=Basis.REQUESTS))
            elapsed = time.perf_counter() - start
            on_node = sum(1 for v in state.vms if v.node == node)
            off = sum(1 for m in plan.moves if m.source == node)
            reasons = "; ".join(sorted({s.reason[:90] for s in plan.stays})) or "-"
            free = np.delete(a.alloc - a.used, drained, axis=0)[:, 0].sum() / 1000
            needed = a.req[a.pos == drained, 0].sum() / 1000
            label = f"{n_nodes} / {n_vms}" + (" tight" if tight else "")
            print(
                f"| {label} | {on_node} | {off} | {len(plan.moves) - off} | {len(plan.stays)} ({reasons}) "
                f"| {free:.1f} / {needed:.1f} cores | {elapsed:.2f} s |"
            )


def speed(sizes: list[tuple[int, int]]) -> None:
    print("\n## Speed (planning alone, balanced goal, 2 cores)\n")
    print("| cluster | moves | plan time | peak RSS of the process |")
    print("|---|---|---|---|")
    for n_nodes, n_vms in sizes:
        state = generate(n_nodes, n_vms, 1)
        k, _, elapsed = ours(state, None)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
        print(f"| {n_nodes} / {n_vms} | {k} | {elapsed:.2f} s | {rss:.2f} GiB |")
        sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, one seed")
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    if args.quick:
        quality([(10, 200), (50, 1000)], 1)
        drain_check([(10, 200)])
        speed([(50, 1000)])
        return
    quality([(10, 200), (50, 1000), (500, 10_000)], args.seeds)
    drain_check([(10, 200), (50, 1000), (500, 10_000)])
    speed([(50, 1000), (500, 10_000), (5000, 100_000)])


if __name__ == "__main__":
    main()
