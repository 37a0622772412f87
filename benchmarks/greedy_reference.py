"""The plain greedy reference of issue 12, written independently of the planner's search.

At each step: take the six nodes whose utilisation deviates most above the mean (0.5·(CPU − mean)⁺
+ 0.5·(memory − mean)⁺, percentage points, usage basis — the nodes furthest *below* the mean
are poor sources: moving a VM off them only widens the spread), evaluate every movable VM on them
against every feasible target, and make the single move that improves the objective most
(0.5·σ(CPU %) + 0.5·σ(memory %) over the eligible nodes — what a plan reports as
``metrics.objective`` for the balanced goal). Stop when no move improves it or at ``budget``.

Feasible = the node may host VMs at all, taints / nodeSelector / required node affinity (the
placement rules of `vm_rebalance.planner.eligibility`, the one place they live), free
allocatable by requests after the earlier moves, and required pod anti-affinity on the
hostname in both directions (matchLabels selectors, as the constrained generator makes them).
Movable = running, not annotated do-not-move, not migrating and — unless ``allow_cold`` —
able to move live (no downtime). A VM may move more than once, as a plain greedy allows.
"""

from dataclasses import dataclass

import numpy as np

from vm_rebalance.model import ClusterState, StorageKind, VirtualMachine
from vm_rebalance.planner.eligibility import is_eligible_target, static_placement_violations

SOURCES = 6


@dataclass
class GreedyResult:
    """The moves made (VM index, target index) and the objective after each prefix (curve[0] = before)."""

    moves: list[tuple[int, int]]
    curve: list[float]


def _movable(vm: VirtualMachine, allow_cold: bool) -> bool:
    if not vm.running or vm.migrating or vm.do_not_move:
        return False
    if allow_cold:
        return True
    return vm.storage_kind is not StorageKind.RWO and vm.live_migratable is not False


class Greedy:
    """The cluster as arrays, and the reference greedy over them."""

    def __init__(self, state: ClusterState, *, allow_cold: bool = False) -> None:
        nodes = sorted(state.nodes, key=lambda n: n.name)
        self.names = [n.name for n in nodes]
        index = {n: j for j, n in enumerate(self.names)}
        vms = [v for v in state.vms if v.running and v.node in index]
        self.vms = vms
        self.obj = np.array([is_eligible_target(n) for n in nodes])
        self.alloc = np.array([[n.allocatable.cpu_millicores, n.allocatable.memory_bytes] for n in nodes], float)
        self.requested = np.array([[n.requested.cpu_millicores, n.requested.memory_bytes] for n in nodes], float)
        self.den = self.alloc / 100.0
        self.load = np.array(
            [[(n.usage or n.requested).cpu_millicores, (n.usage or n.requested).memory_bytes] for n in nodes], float
        )
        self.vm_load = np.array(
            [[(v.usage or v.requests).cpu_millicores, (v.usage or v.requests).memory_bytes] for v in vms], float
        )
        self.vm_req = np.array([[v.requests.cpu_millicores, v.requests.memory_bytes] for v in vms], float)
        self.pos = np.array([index[str(v.node)] for v in vms], dtype=np.int64)
        self.movable = np.array([_movable(v, allow_cold) for v in vms], dtype=bool)
        classes: dict[tuple[object, ...], int] = {}
        rows: list[np.ndarray] = []
        self.cls = np.zeros(len(vms), dtype=np.int64)
        for i, v in enumerate(vms):
            p = v.placement
            key = (tuple(sorted(p.node_selector.items())), p.required_node_terms, p.tolerations)
            if key not in classes:
                classes[key] = len(rows)
                rows.append(
                    np.array([self.obj[j] and not static_placement_violations(v, n) for j, n in enumerate(nodes)])
                )
            self.cls[i] = classes[key]
        self.feasible = np.vstack(rows)
        self.conflicts = self._conflicts(vms)

    @staticmethod
    def _conflicts(vms: list[VirtualMachine]) -> dict[int, list[int]]:
        by_label: dict[tuple[str, str, str], set[int]] = {}
        for i, v in enumerate(vms):
            for k, val in v.labels.items():
                by_label.setdefault((v.namespace, k, val), set()).add(i)
        out: dict[int, set[int]] = {}
        for i, v in enumerate(vms):
            for term in v.placement.pod_anti_affinity:
                namespaces = term.namespaces or (v.namespace,)
                for ns in namespaces:
                    sets = [by_label.get((ns, k, val), set()) for k, val in term.label_selector.match_labels.items()]
                    hit = set.intersection(*sets) if sets else set()
                    for j in hit - {i}:
                        out.setdefault(i, set()).add(j)
                        out.setdefault(j, set()).add(i)
        return {i: sorted(js) for i, js in out.items()}

    def objective(self) -> float:
        u = (self.load / self.den)[self.obj]
        return float(0.5 * np.std(u[:, 0]) + 0.5 * np.std(u[:, 1]))

    def feasible_targets(self, i: int) -> np.ndarray:
        """Per node: may VM ``i`` go there now (placement rules, free allocatable, anti-affinity)."""
        ok = self.feasible[self.cls[i]] & (self.vm_req[i][None, :] <= self.alloc - self.requested).all(axis=1)
        ok[self.pos[i]] = False
        for j in self.conflicts.get(i, ()):
            ok[self.pos[j]] = False
        return np.asarray(ok)

    def move(self, i: int, t: int) -> None:
        s = int(self.pos[i])
        self.load[s] -= self.vm_load[i]
        self.load[t] += self.vm_load[i]
        self.requested[s] -= self.vm_req[i]
        self.requested[t] += self.vm_req[i]
        self.pos[i] = t

    def step(self) -> tuple[int, int] | None:
        """The best single improving move from the six most-deviating nodes, or None."""
        util = self.load / self.den
        u = util[self.obj]
        k = float(len(u))
        mean = u.mean(axis=0)
        over = np.maximum(util - mean[None, :], 0.0)
        dev = np.where(self.obj, 0.5 * over[:, 0] + 0.5 * over[:, 1], -1.0)
        top = np.argsort(-dev, kind="stable")[:SOURCES]
        cand = np.flatnonzero(self.movable & np.isin(self.pos, top))
        if len(cand) == 0:
            return None
        targets = np.flatnonzero(self.obj)
        src = self.pos[cand]
        total = np.zeros((len(cand), len(targets)))
        for c in (0, 1):
            s1, s2 = u[:, c].sum(), (u[:, c] ** 2).sum()
            a = (self.vm_load[cand, c] / self.den[src, c])[:, None]
            b = self.vm_load[cand, c][:, None] / self.den[targets, c][None, :]
            us = util[src, c][:, None]
            ut = util[targets, c][None, :]
            n1 = s1 - a + b
            n2 = s2 - 2 * a * us + a * a + 2 * b * ut + b * b
            total += 0.5 * np.sqrt(np.maximum(n2 / k - (n1 / k) ** 2, 0.0))
        free = self.alloc - self.requested
        ok = (self.vm_req[cand][:, None, :] <= free[targets][None, :, :]).all(axis=2)
        ok &= self.feasible[self.cls[cand]][:, targets]
        ok &= src[:, None] != targets[None, :]
        col = {int(t): c for c, t in enumerate(targets.tolist())}
        for r, i in enumerate(cand.tolist()):
            for j in self.conflicts.get(i, ()):
                c = col.get(int(self.pos[j]))
                if c is not None:
                    ok[r, c] = False
        total = np.where(ok, total, np.inf)
        flat = int(np.argmin(total))
        r, c = divmod(flat, len(targets))
        if not np.isfinite(total[r, c]) or total[r, c] >= self.objective() - 1e-9:
            return None
        return int(cand[r]), int(targets[c])

    def run(self, budget: int) -> GreedyResult:
        curve = [self.objective()]
        moves: list[tuple[int, int]] = []
        while len(moves) < budget:
            pick = self.step()
            if pick is None:
                break
            self.move(*pick)
            moves.append(pick)
            curve.append(self.objective())
        return GreedyResult(moves, curve)


def greedy_curve(state: ClusterState, budget: int, *, allow_cold: bool = False) -> list[float]:
    """The objective after each of the reference greedy's first ``budget`` moves (index 0 = before)."""
    return Greedy(state, allow_cold=allow_cold).run(budget).curve
