"""The placement problem as numpy arrays, the goal's objective, and its vectorised move deltas.

`Problem` turns a `ClusterState` into arrays the search can work on quickly: node loads on
the chosen basis, free allocatable by requests, a static VM-class x node feasibility matrix
(node eligibility, taints, nodeSelector, required node affinity — cached per distinct static
placement, so 100,000 VMs with a handful of placements cost a handful of rule evaluations),
and which VMs take part in pod (anti-)affinity or topology spread — including VMs selected by
another VM's required anti-affinity, which Kubernetes enforces symmetrically (those are checked lazily
with `eligibility.pod_affinity_violations`, the same function `fit_reasons` uses).

Utilisation is kept per node in "units": percentage points of allocatable for CPU and
memory, ten units per (capacity-weighted) VM for the count and heavy-VM columns. An
objective is a weighted sum of terms over the objective nodes (eligible targets; the node
being drained is not one): ``std`` terms are population standard deviations, ``hot`` terms
are the root mean square of the excess over a threshold. Moving one VM changes only two
nodes, so the new objective of every (VM, target) pair follows from running sums in O(1) —
`move_deltas` evaluates a whole block of pairs at once.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from vm_rebalance.model import Basis, ClusterState, Goal, GoalType, Node, VirtualMachine, thresholds
from vm_rebalance.planner.affinity import AffinityIndex
from vm_rebalance.planner.eligibility import is_eligible_target, static_violations

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

CPU, MEM, COUNT, HEAVY = 0, 1, 2, 3
COLUMNS = 4
COUNT_UNIT = 10.0
"""Units per VM in the count columns, so that count and percentage-point objectives share thresholds."""

# The seeds' thresholds (model/thresholds.py) in percentage points, the unit of the search.
CPU_WARNING, MEMORY_WARNING = 100 * thresholds.CPU_WARNING, 100 * thresholds.MEMORY_WARNING
CPU_CRITICAL, MEMORY_CRITICAL = 100 * thresholds.CPU_CRITICAL, 100 * thresholds.MEMORY_CRITICAL
CPU_PRESSURED, MEMORY_PRESSURED = 100 * thresholds.CPU_PRESSURED_WARNING, 100 * thresholds.MEMORY_PRESSURED_WARNING
HEAVY_QUANTILE = 0.9


@dataclass(frozen=True, slots=True)
class Term:
    """One part of an objective: the std dev of a column, or the RMS excess over a threshold.

    A hot term with ``pressured`` uses that lower threshold on the nodes under pressure in its
    column (CPU or memory PSI at or above `PRESSURE_LIMITS`, on the usage basis): a node whose
    tasks keep waiting for CPU is hot even below the warning threshold (`Problem.thresholds`).
    """

    kind: Literal["std", "hot"]
    column: int
    weight: float
    threshold: float = 0.0
    pressured: float | None = None


PRESSURE_LIMITS = {CPU: thresholds.CPU_PRESSURE, MEM: thresholds.MEMORY_PRESSURE}
"""PSI (fraction of time) from which a node counts as under pressure, per column."""


def node_pressure(node: Node, column: int) -> float | None:
    """The node's PSI in ``column`` (CPU: cpu some; memory: memory some), or None when not measured."""
    if node.pressure is None:
        return None
    return node.pressure.cpu if column == CPU else node.pressure.memory if column == MEM else None


def under_pressure(node: Node, column: int) -> bool:
    """Whether the node's PSI in ``column`` is at or above the limit (CPU 10 %, memory 5 % of the time)."""
    value = node_pressure(node, column)
    return value is not None and column in PRESSURE_LIMITS and value >= PRESSURE_LIMITS[column]


def normalised_weights(goal: Goal) -> tuple[float, float]:
    """The goal's CPU and memory weights, summing to 1 (0.5 / 0.5 when both are zero)."""
    cpu = float(goal.weights.get("cpu", 0.5))
    mem = float(goal.weights.get("memory", 0.5))
    total = cpu + mem
    return (0.5, 0.5) if total <= 0 else (cpu / total, mem / total)


def _hot(x: FloatArray | float, threshold: FloatArray | float) -> FloatArray:
    excess = np.maximum(np.asarray(x, dtype=np.float64) - threshold, 0.0)
    return np.asarray(excess * excess)


@dataclass(slots=True)
class Sums:
    """Running sums over the objective nodes that determine the objective."""

    s1: FloatArray
    s2: FloatArray
    hot: FloatArray
    """Per term: sum of squared excess (only meaningful for hot terms)."""
    k: int


def _static_key(vm: VirtualMachine) -> tuple[object, ...]:
    p = vm.placement
    return (tuple(sorted(p.node_selector.items())), p.required_node_terms, p.tolerations)


class Problem:
    """A cluster as arrays. Working copies (``pos``, ``node_load``, ``requested``) change as moves apply."""

    def __init__(
        self,
        state: ClusterState,
        *,
        goal: Goal,
        basis: Basis,
        objective_nodes: Sequence[str] | None = None,
        feasibility: bool = True,
    ) -> None:
        self.state = state
        self.goal = goal
        self.basis = basis
        self._index_nodes(state, objective_nodes)
        self._index_vms(state)
        self._load_arrays()
        self._denominators()
        self._feasibility_classes(feasibility)
        self._shared: dict[str, object] = {}
        """Derived static data computed on first use and shared by every fork."""

    def _index_nodes(self, state: ClusterState, objective_nodes: Sequence[str] | None) -> None:
        self.nodes: tuple[Node, ...] = tuple(sorted(state.nodes, key=lambda n: n.name))
        self.node_names = [n.name for n in self.nodes]
        self.node_index: dict[str, int] = {n: i for i, n in enumerate(self.node_names)}
        self.node_labels: Mapping[str, Mapping[str, str]] = {n.name: n.labels for n in self.nodes}
        self.eligible = np.array([is_eligible_target(n) for n in self.nodes], dtype=bool).reshape(len(self.nodes))
        if objective_nodes is None:
            drained = self.goal.node if self.goal.type is GoalType.DRAIN else None
            self.obj_mask = self.eligible & np.array([n.name != drained for n in self.nodes], dtype=bool)
        else:
            wanted = set(objective_nodes)
            self.obj_mask = np.array([n.name in wanted for n in self.nodes], dtype=bool)
        self.alloc = np.array(
            [[n.allocatable.cpu_millicores, n.allocatable.memory_bytes] for n in self.nodes], dtype=np.float64
        ).reshape(len(self.nodes), 2)
        self.requested = np.array(
            [[n.requested.cpu_millicores, n.requested.memory_bytes] for n in self.nodes], dtype=np.float64
        ).reshape(len(self.nodes), 2)

    def _index_vms(self, state: ClusterState) -> None:
        # Placed, running VMs only: a stopped VM holds no node and loads none.
        self.vms: tuple[VirtualMachine, ...] = tuple(
            sorted(
                (v for v in state.vms if v.running and v.node is not None and v.node in self.node_index),
                key=lambda v: (v.namespace, v.name),
            )
        )
        self.vm_index = {v.ref: i for i, v in enumerate(self.vms)}
        self.pos: IntArray = np.array([self.node_index[str(v.node)] for v in self.vms], dtype=np.int64)
        self.home: IntArray = self.pos.copy()
        self.vm_req = np.array(
            [[v.requests.cpu_millicores, v.requests.memory_bytes] for v in self.vms], dtype=np.float64
        ).reshape(len(self.vms), 2)

    def _load_arrays(self) -> None:
        """What each VM and node weighs in every column, on the basis."""
        use_usage = self.basis is Basis.USAGE
        n_vms, n_nodes = len(self.vms), len(self.nodes)
        self.vms_without_usage = sum(1 for v in self.vms if use_usage and v.usage is None)
        self.nodes_without_usage = sum(1 for n in self.nodes if use_usage and n.usage is None)
        load = np.zeros((n_vms, COLUMNS), dtype=np.float64)
        for i, v in enumerate(self.vms):
            r = v.usage if use_usage and v.usage is not None else v.requests
            load[i, CPU] = r.cpu_millicores
            load[i, MEM] = r.memory_bytes
        load[:, COUNT] = COUNT_UNIT
        if n_vms:
            cpu_loads = load[:, CPU]
            cut = float(np.quantile(cpu_loads, HEAVY_QUANTILE))
            load[:, HEAVY] = np.where((cpu_loads >= cut) & (cpu_loads > 0), COUNT_UNIT, 0.0)
        self.load = load
        node_load = np.zeros((n_nodes, COLUMNS), dtype=np.float64)
        for j, n in enumerate(self.nodes):
            r = n.usage if use_usage and n.usage is not None else n.requested
            node_load[j, CPU] = r.cpu_millicores
            node_load[j, MEM] = r.memory_bytes
        np.add.at(node_load[:, COUNT], self.pos, load[:, COUNT])
        np.add.at(node_load[:, HEAVY], self.pos, load[:, HEAVY])
        self.node_load = node_load

    def _denominators(self) -> None:
        """Per node and column: what one unit is (1 % of allocatable; a capacity-weighted VM for counts)."""
        n_nodes = len(self.nodes)
        den = np.full((n_nodes, COLUMNS), np.inf)
        den[:, CPU] = np.where(self.alloc[:, 0] > 0, self.alloc[:, 0] / 100.0, np.inf)
        den[:, MEM] = np.where(self.alloc[:, 1] > 0, self.alloc[:, 1] / 100.0, np.inf)
        ref = self.obj_mask if self.obj_mask.any() else np.ones(n_nodes, dtype=bool)
        if n_nodes:
            mean_cpu = float(np.mean(self.alloc[ref, 0])) or 1.0
            mean_mem = float(np.mean(self.alloc[ref, 1])) or 1.0
            weight = (self.alloc[:, 0] / mean_cpu + self.alloc[:, 1] / mean_mem) / 2.0
            den[:, COUNT] = np.where(weight > 0, weight, np.inf)
        den[:, HEAVY] = den[:, COUNT]
        self.den = den

    def _feasibility_classes(self, feasibility: bool) -> None:
        """Static feasibility per distinct (nodeSelector, required node affinity, tolerations)."""
        n_nodes = len(self.nodes)
        classes: dict[tuple[object, ...], int] = {}
        vm_class = np.zeros(len(self.vms), dtype=np.int64)
        rows: list[BoolArray] = []
        for i, v in enumerate(self.vms):
            key = _static_key(v) if feasibility else ()
            c = classes.get(key)
            if c is None:
                c = len(rows)
                classes[key] = c
                row = [
                    bool(self.eligible[j]) and (not feasibility or not static_violations(v, n))
                    for j, n in enumerate(self.nodes)
                ]
                rows.append(np.array(row, dtype=bool).reshape(n_nodes))
            vm_class[i] = c
        self.vm_class = vm_class
        self.class_feasible: BoolArray = np.vstack(rows) if rows else np.zeros((0, n_nodes), dtype=bool)

    def thresholds(self, term: Term) -> FloatArray:
        """Per node, the hot threshold of ``term``: ``term.pressured`` where the node is under pressure in the
        term's column (usage basis only: pressure is a measured signal), else ``term.threshold``."""
        key = f"thresholds:{term.column}:{term.threshold}:{term.pressured}"
        found = self._shared.get(key)
        if not isinstance(found, np.ndarray):
            found = np.full(len(self.nodes), term.threshold, dtype=np.float64)
            if term.pressured is not None and self.basis is Basis.USAGE:
                for j, node in enumerate(self.nodes):
                    if under_pressure(node, term.column):
                        found[j] = min(term.threshold, term.pressured)
            self._shared[key] = found
        return found

    @property
    def affinity(self) -> AffinityIndex:
        """Who takes part in pod (anti-)affinity or spread, and who repels whom (built on first use)."""
        index = self._shared.get("affinity")
        if not isinstance(index, AffinityIndex):
            index = AffinityIndex(self.vms)
            self._shared["affinity"] = index
        return index

    @property
    def dynamic(self) -> BoolArray:
        """Per VM: its feasibility depends on where other VMs are (pod (anti-)affinity, spread —
        including VMs that another VM's required anti-affinity selects, enforced symmetrically)."""
        found = self._shared.get("dynamic")
        if not isinstance(found, np.ndarray):
            index = self.affinity
            found = np.array([index.dynamic(i) for i in range(len(self.vms))], dtype=bool).reshape(len(self.vms))
            self._shared["dynamic"] = found
        return found

    # ----------------------------------------------------------------- state

    def fork(self) -> "Problem":
        """An independent working copy (the static parts are shared, the mutable arrays copied)."""
        other = object.__new__(Problem)
        for name in self.__dict__:
            setattr(other, name, self.__dict__[name])
        other.pos = self.pos.copy()
        other.node_load = self.node_load.copy()
        other.requested = self.requested.copy()
        return other

    @property
    def free(self) -> FloatArray:
        """Allocatable minus requested per node (CPU millicores, memory bytes), as things stand now."""
        return np.asarray(self.alloc - self.requested)

    def utilisation(self) -> FloatArray:
        """Per node and column, in units (percentage points, or 10 per weighted VM)."""
        return np.asarray(self.node_load / self.den)

    def apply(self, i: int, target: int) -> None:
        """Move VM ``i`` to node ``target`` in the working copy."""
        source = int(self.pos[i])
        self.node_load[source] -= self.load[i]
        self.node_load[target] += self.load[i]
        self.requested[source] -= self.vm_req[i]
        self.requested[target] += self.vm_req[i]
        self.pos[i] = target

    def add_started(self, vm: VirtualMachine, target: int) -> None:
        """Account for a stopped VM that will start on ``target`` (manual moves)."""
        use_usage = self.basis is Basis.USAGE
        r = vm.usage if use_usage and vm.usage is not None else vm.requests
        self.node_load[target, CPU] += r.cpu_millicores
        self.node_load[target, MEM] += r.memory_bytes
        self.node_load[target, COUNT] += COUNT_UNIT
        self.requested[target] += (vm.requests.cpu_millicores, vm.requests.memory_bytes)

    def residents_for(self, vm: VirtualMachine) -> list[tuple[str, VirtualMachine]]:
        """(node, VM) of the VMs whose position can matter to ``vm``'s placement rules, where they are now."""
        i = self.vm_index.get(vm.ref)
        if i is None:
            index = AffinityIndex((*self.vms, vm))
            seen = [j for j in index.seen_by(len(self.vms)) if j < len(self.vms)]
        else:
            seen = self.affinity.seen_by(i)
        return [(self.node_names[int(self.pos[j])], self.vms[j]) for j in seen]

    # ------------------------------------------------------------- objective

    def sums(self, terms: Sequence[Term], util: FloatArray | None = None) -> Sums:
        """Running sums of ``util`` (default: the current utilisation) over the objective nodes."""
        u = (self.utilisation() if util is None else util)[self.obj_mask]
        hot = np.array(
            [
                float(np.sum(_hot(u[:, t.column], self.thresholds(t)[self.obj_mask]))) if t.kind == "hot" else 0.0
                for t in terms
            ]
        )
        return Sums(s1=u.sum(axis=0), s2=(u * u).sum(axis=0), hot=hot, k=int(self.obj_mask.sum()))

    def objective(self, terms: Sequence[Term], util: FloatArray | None = None) -> float:
        """The objective of the current (or given) utilisation."""
        s = self.sums(terms, util)
        return float(objective_from(terms, s.s1, s.s2, s.hot, s.k))

    def move_deltas(
        self, terms: Sequence[Term], sums: Sums, vms: IntArray, targets: IntArray, util: FloatArray
    ) -> FloatArray:
        """The objective after moving each VM of ``vms`` to each node of ``targets``: shape (vms, targets)."""
        src = self.pos[vms]
        in_obj_src = self.obj_mask[src].astype(np.float64)[:, None]
        in_obj_tgt = self.obj_mask[targets].astype(np.float64)[None, :]
        columns = sorted({t.column for t in terms})
        new_s1: dict[int, FloatArray] = {}
        new_s2: dict[int, FloatArray] = {}
        cache: dict[int, tuple[FloatArray, FloatArray, FloatArray, FloatArray]] = {}
        for c in columns:
            a = (self.load[vms, c] / self.den[src, c])[:, None]
            b = self.load[vms, c][:, None] / self.den[targets, c][None, :]
            us = util[src, c][:, None]
            ut = util[targets, c][None, :]
            cache[c] = (a, b, us, ut)
            new_s1[c] = sums.s1[c] + in_obj_tgt * b - in_obj_src * a
            new_s2[c] = sums.s2[c] + in_obj_src * (a * a - 2.0 * a * us) + in_obj_tgt * (b * b + 2.0 * b * ut)
        total = np.zeros((len(vms), len(targets)), dtype=np.float64)
        k = max(sums.k, 1)
        for idx, term in enumerate(terms):
            if term.weight == 0:
                continue
            if term.kind == "std":
                m = new_s1[term.column] / k
                var = np.maximum(new_s2[term.column] / k - m * m, 0.0)
                total += term.weight * np.sqrt(var)
            else:
                a, b, us, ut = cache[term.column]
                th = self.thresholds(term)
                th_s, th_t = th[src][:, None], th[targets][None, :]
                hot = (
                    sums.hot[idx]
                    + in_obj_src * (_hot(us - a, th_s) - _hot(us, th_s))
                    + in_obj_tgt * (_hot(ut + b, th_t) - _hot(ut, th_t))
                )
                total += term.weight * np.sqrt(np.maximum(hot, 0.0) / k)
        return total


def objective_from(terms: Sequence[Term], s1: FloatArray, s2: FloatArray, hot: FloatArray, k: int) -> float:
    """The objective given the running sums."""
    if k <= 0:
        return 0.0
    total = 0.0
    for idx, term in enumerate(terms):
        if term.kind == "std":
            m = float(s1[term.column]) / k
            total += term.weight * float(np.sqrt(max(float(s2[term.column]) / k - m * m, 0.0)))
        else:
            total += term.weight * float(np.sqrt(max(float(hot[idx]), 0.0) / k))
    return total


def population_std(values: FloatArray) -> float:
    """Population standard deviation (0 for no values)."""
    return float(np.std(values)) if len(values) else 0.0
