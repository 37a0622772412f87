"""Order moves into waves that are safe to run concurrently (design.md §3 "Waves").

Input: moves in an order that is safe to run one at a time (each fits once every earlier
one finished — what the search produces). Each move gets the earliest wave in which, for
every wave from there on, every target holds all its incoming VMs (by requests) while their
sources still hold them — a list scheduling in the spirit of Kahn's topological order, with
the capacity "dependencies" read from a per-node occupancy timeline. Appending a new wave
at the end is always possible, so a sequentially safe order always gets waves; a swap or a
cycle simply ends up spread over several waves, never as a transient overcommit.

VMs that take part in pod (anti-)affinity or topology spread keep their relative order and are
checked with `eligibility.pod_affinity_violations` against a conservative picture of the
wave: anti-affinity and spread see the moving VMs at both their source and their target;
required pod affinity only counts VMs that are not moving in that wave.

Workload rules (planner/workloads.py) are wave constraints too, so the executor — which runs a
wave only after the previous one — needs no rule of its own: a move marked ``alone`` (a high
dirty rate) gets a wave to itself, and two ``network`` moves (network-intensive VMs) never leave
the same node in the same wave.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from vm_rebalance.model import ClusterState, Node, Violation, ViolationKind, VirtualMachine
from vm_rebalance.planner.affinity import AffinityIndex
from vm_rebalance.planner.eligibility import pod_affinity_checks


@dataclass(frozen=True, slots=True)
class WaveMove:
    """A move to schedule: the VM, where it is, where it goes."""

    vm: VirtualMachine
    source: str
    target: str
    alone: bool = False
    """No other move in its wave (a high-dirty-rate live migration)."""
    network: bool = False
    """At most one such move per source node and wave (network-intensive VMs)."""


class WaveError(ValueError):
    """A move cannot be scheduled even after every earlier move (it does not fit at all)."""

    def __init__(self, index: int, violations: Sequence[Violation]) -> None:
        super().__init__("; ".join(v.message for v in violations))
        self.index = index
        self.violations = tuple(violations)
        self.reasons = tuple(v.message for v in violations)


def _affinity_violations(
    vm: VirtualMachine,
    node: Node,
    node_labels: dict[str, Mapping[str, str]],
    union: Sequence[tuple[str, VirtualMachine]],
    stable: Sequence[tuple[str, VirtualMachine]],
) -> list[Violation]:
    """The rules broken on ``node`` in a wave: anti-affinity and spread see the VMs moving in the
    wave at both ends (``union``); required pod affinity counts only VMs that stay put (``stable``)."""
    out = [
        v
        for v in pod_affinity_checks(vm, node, node_labels=node_labels, residents=union)
        if v.kind is not ViolationKind.POD_AFFINITY
    ]
    out += [
        v
        for v in pod_affinity_checks(vm, node, node_labels=node_labels, residents=stable)
        if v.kind is ViolationKind.POD_AFFINITY
    ]
    return out


def assign_waves(
    state: ClusterState,
    moves: Sequence[WaveMove],
    *,
    max_per_wave: int | None = None,
    keep_order: bool = False,
    affinity: AffinityIndex | None = None,
    relieve_first: frozenset[str] = frozenset(),
) -> list[int]:
    """The wave (from 1) of each move.

    ``keep_order`` makes waves non-decreasing in the given order (a user's explicit order).
    ``relieve_first``: hot nodes; a move into one runs in a wave after every earlier move out of it
    (the search chose it once the node was relieved, so it never lands on the node while it is hot).
    ``affinity``: an index of the state's running VMs already built (the search's), used when
    every moving VM is in it.

    Raises:
        WaveError: a move does not fit even after all earlier moves finished.
    """
    if affinity is not None:
        indexed = {v.ref for v in affinity.vms}
        if any(m.vm.ref not in indexed for m in moves):
            affinity = None
    if affinity is None:
        affinity = AffinityIndex(state.vms)
    scheduler = _Scheduler(state, affinity)
    waves: list[int] = []
    last_relevant_wave = 1
    last_wave = 1
    relieved: dict[str, int] = {}
    """Hot node → the last wave of a move out of it so far."""
    top = 0  # max(waves), kept as the moves are assigned (recomputing it per move made N moves quadratic)
    for number, m in enumerate(moves):
        horizon = top + 1
        lower = last_wave if keep_order else 1
        if m.target in relieved:
            lower = max(lower, relieved[m.target] + 1)
        relevant = scheduler.relevant(m)
        if relevant:
            lower = max(lower, last_relevant_wave)
        first = scheduler.earliest_fit(m, horizon)
        if first is None:
            raise WaveError(number, [scheduler.no_fit(m)])
        chosen = None
        w = max(lower, first)
        while chosen is None:
            if max_per_wave is not None and scheduler.per_wave.get(w, 0) >= max_per_wave:
                w += 1
                continue
            if not scheduler.workload_fits(m, w):
                w += 1
                continue
            if relevant:
                reasons = scheduler.affinity(m, w)
                if reasons:
                    if w >= horizon:
                        raise WaveError(number, reasons)
                    w += 1
                    continue
            chosen = w
        waves.append(chosen)
        top = max(top, chosen)
        scheduler.record(m, chosen)
        if m.source in relieve_first:
            relieved[m.source] = max(relieved.get(m.source, 0), chosen)
        if keep_order:
            last_wave = max(last_wave, chosen)
        if relevant:
            last_relevant_wave = max(last_relevant_wave, chosen)
    return waves


class _Scheduler:
    """Per node, the peak occupancy (requests) in each wave so far; per VM, where it is in each wave."""

    def __init__(self, state: ClusterState, index: AffinityIndex) -> None:
        self.state = state
        self.index = index
        self.position = {v.ref: k for k, v in enumerate(index.vms)}
        self.alloc = {n.name: (n.allocatable.cpu_millicores, n.allocatable.memory_bytes) for n in state.nodes}
        # Per node: peak occupancy during waves 1..len(list); later waves see ``settled``.
        self.peaks: dict[str, list[list[int]]] = {}
        self.settled = {n.name: [n.requested.cpu_millicores, n.requested.memory_bytes] for n in state.nodes}
        self.per_wave: dict[int, int] = {}
        self.node_labels = {n.name: n.labels for n in state.nodes}
        self.start_pos = {v.ref: v.node for v in state.vms if v.running and v.node}
        self.moved_in: dict[str, tuple[int, str]] = {}
        """Per VM: (wave, target) of its move once assigned."""
        self.alone: set[int] = set()
        """Waves that belong to one move (no other may join)."""
        self.network: set[tuple[int, str]] = set()
        """(wave, source node) that already has a network-intensive move."""

    def workload_fits(self, m: WaveMove, wave: int) -> bool:
        """Whether the workload rules let ``m`` into ``wave`` (alone; one network-heavy move per source)."""
        if wave in self.alone:
            return False
        if m.alone and self.per_wave.get(wave, 0) > 0:
            return False
        return not (m.network and (wave, m.source) in self.network)

    def relevant(self, m: WaveMove) -> bool:
        k = self.position.get(m.vm.ref)
        return k is not None and self.index.relevant[k]

    def _extend(self, node: str, length: int) -> list[list[int]]:
        lst = self.peaks.setdefault(node, [])
        while len(lst) < length:
            lst.append(list(self.settled[node]))
        return lst

    def earliest_fit(self, m: WaveMove, horizon: int) -> int | None:
        """The earliest wave from which the target holds the VM in every later wave."""
        cap = self.alloc.get(m.target)
        if cap is None:
            return None
        req = (m.vm.requests.cpu_millicores, m.vm.requests.memory_bytes)
        tail = self.settled[m.target]
        if tail[0] + req[0] > cap[0] or tail[1] + req[1] > cap[1]:
            return None
        lst = self.peaks.get(m.target, [])
        earliest = len(lst) + 1
        for w in range(len(lst), 0, -1):
            cpu, mem = lst[w - 1]
            if cpu + req[0] > cap[0] or mem + req[1] > cap[1]:
                break
            earliest = w
        return min(earliest, horizon)

    def no_fit(self, m: WaveMove) -> Violation:
        cap = self.alloc.get(m.target)
        if cap is None:
            return Violation(ViolationKind.NO_NODE, f"node {m.target} does not exist")
        free_cpu, free_mem = cap[0] - self.settled[m.target][0], cap[1] - self.settled[m.target][1]
        return Violation(
            ViolationKind.CAPACITY,
            f"insufficient allocatable on {m.target}: needs {m.vm.requests.cpu_millicores}m CPU / "
            f"{m.vm.requests.memory_bytes / 1024**3:.1f}Gi memory, "
            f"{max(free_cpu, 0)}m / {max(free_mem, 0) / 1024**3:.1f}Gi free",
        )

    def record(self, m: WaveMove, wave: int) -> None:
        self.per_wave[wave] = self.per_wave.get(wave, 0) + 1
        if m.alone:
            self.alone.add(wave)
        if m.network:
            self.network.add((wave, m.source))
        req = (m.vm.requests.cpu_millicores, m.vm.requests.memory_bytes)
        if m.target in self.settled:
            lst = self._extend(m.target, wave)
            for w in range(wave, len(lst) + 1):
                lst[w - 1][0] += req[0]
                lst[w - 1][1] += req[1]
            self.settled[m.target][0] += req[0]
            self.settled[m.target][1] += req[1]
        if m.source in self.settled:
            lst = self._extend(m.source, wave)
            for w in range(wave + 1, len(lst) + 1):
                lst[w - 1][0] -= req[0]
                lst[w - 1][1] -= req[1]
            self.settled[m.source][0] -= req[0]
            self.settled[m.source][1] -= req[1]
        self.moved_in[m.vm.ref] = (wave, m.target)

    def affinity(self, m: WaveMove, wave: int) -> list[Violation]:
        union: list[tuple[str, VirtualMachine]] = []
        stable: list[tuple[str, VirtualMachine]] = []
        k = self.position.get(m.vm.ref)
        for j in self.index.seen_by(k) if k is not None else ():
            v = self.index.vms[j]
            here = self.start_pos.get(v.ref)
            move = self.moved_in.get(v.ref)
            if move is not None and move[0] < wave:
                here = move[1]
            if here is None:
                continue
            union.append((here, v))
            if move is not None and move[0] == wave:
                union.append((move[1], v))
            else:
                stable.append((here, v))
        node = self.state.node(m.target)
        assert node is not None
        return _affinity_violations(m.vm, node, self.node_labels, union, stable)
