"""Drain benchmark: how many VMs leave the busiest node, and how many extra moves make room.

Run: ``python benchmarks/drain_bench.py``. Not part of pytest. (The balance benchmark is
planner_bench.py.) Clusters come from a small seeded generator below (deliberately not the
simulator's): nodes of three sizes, VMs of five shapes, placed with a skewed preference so a
few nodes run hot; requests basis. 'tight' rows first fill the other nodes until their free
room is 1.1 x what the drained node's VMs request, in fragments, so the bigger VMs fit only
once others move.
"""

import argparse
import time
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


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the smallest size only")
    args = parser.parse_args()
    drain_check([(10, 200)] if args.quick else [(10, 200), (50, 1000), (500, 10_000)])


if __name__ == "__main__":
    main()
