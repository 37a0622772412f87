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
"""

from collections.abc import Sequence
from dataclasses import dataclass

from vm_rebalance.model import ClusterState, VirtualMachine
from vm_rebalance.planner.eligibility import pod_affinity_violations

_AFFINITY_PREFIX = "required pod affinity"


@dataclass(frozen=True, slots=True)
class WaveMove:
    """A move to schedule: the VM, where it is, where it goes."""

    vm: VirtualMachine
    source: str
    target: str


class WaveError(ValueError):
    """A move cannot be scheduled even after every earlier move (it does not fit at all)."""

    def __init__(self, index: int, reasons: Sequence[str]) -> None:
        super().__init__("; ".join(reasons))
        self.index = index
        self.reasons = tuple(reasons)


def _relevant(state: ClusterState) -> set[str]:
    selectors = {
        (term.label_selector, term.namespaces or (v.namespace,))
        for v in state.vms
        for term in (*v.placement.pod_anti_affinity, *v.placement.pod_affinity)
    } | {(tsc.label_selector, (v.namespace,)) for v in state.vms for tsc in v.placement.topology_spread}
    out: set[str] = set()
    for v in state.vms:
        p = v.placement
        own = bool(p.pod_anti_affinity or p.pod_affinity or p.topology_spread)
        if own or (selectors and any(v.namespace in ns and sel.matches(v.labels) for sel, ns in selectors)):
            out.add(v.ref)
    return out


def assign_waves(
    state: ClusterState,
    moves: Sequence[WaveMove],
    *,
    max_per_wave: int | None = None,
    keep_order: bool = False,
) -> list[int]:
    """The wave (from 1) of each move.

    ``keep_order`` makes waves non-decreasing in the given order (a user's explicit order).

    Raises:
        WaveError: a move does not fit even after all earlier moves finished.
    """
    alloc = {n.name: (n.allocatable.cpu_millicores, n.allocatable.memory_bytes) for n in state.nodes}
    # Per node: peak occupancy (requests) during waves 1..len(list); later waves see ``settled``.
    peaks: dict[str, list[list[int]]] = {}
    settled = {n.name: [n.requested.cpu_millicores, n.requested.memory_bytes] for n in state.nodes}
    per_wave: dict[int, int] = {}
    waves: list[int] = []
    relevant = _relevant(state)
    node_labels = {n.name: n.labels for n in state.nodes}
    last_relevant_wave = 1
    last_wave = 1
    start_pos = {v.ref: v.node for v in state.vms if v.running and v.node}
    relevant_vms = [v for v in state.vms if v.ref in relevant and v.running and v.node]
    assigned: list[tuple[int, WaveMove]] = []

    def extend(node: str, length: int) -> list[list[int]]:
        lst = peaks.setdefault(node, [])
        while len(lst) < length:
            lst.append(list(settled[node]))
        return lst

    def earliest_fit(m: WaveMove, horizon: int) -> int | None:
        """The earliest wave from which the target holds the VM in every later wave."""
        cap = alloc.get(m.target)
        if cap is None:
            return None
        req = (m.vm.requests.cpu_millicores, m.vm.requests.memory_bytes)
        tail = settled[m.target]
        if tail[0] + req[0] > cap[0] or tail[1] + req[1] > cap[1]:
            return None
        lst = peaks.get(m.target, [])
        earliest = len(lst) + 1
        for w in range(len(lst), 0, -1):
            cpu, mem = lst[w - 1]
            if cpu + req[0] > cap[0] or mem + req[1] > cap[1]:
                break
            earliest = w
        return min(earliest, horizon)

    def record(m: WaveMove, wave: int) -> None:
        req = (m.vm.requests.cpu_millicores, m.vm.requests.memory_bytes)
        if m.target in settled:
            lst = extend(m.target, wave)
            for w in range(wave, len(lst) + 1):
                lst[w - 1][0] += req[0]
                lst[w - 1][1] += req[1]
            settled[m.target][0] += req[0]
            settled[m.target][1] += req[1]
        if m.source in settled:
            lst = extend(m.source, wave)
            for w in range(wave + 1, len(lst) + 1):
                lst[w - 1][0] -= req[0]
                lst[w - 1][1] -= req[1]
            settled[m.source][0] -= req[0]
            settled[m.source][1] -= req[1]

    def affinity(m: WaveMove, wave: int) -> list[str]:
        moving_now = {a.vm.ref: a for w, a in assigned if w == wave}
        done = {a.vm.ref: a.target for w, a in assigned if w < wave}
        union: list[tuple[str, VirtualMachine]] = []
        stable: list[tuple[str, VirtualMachine]] = []
        for v in relevant_vms:
            here = done.get(v.ref, start_pos.get(v.ref))
            if here is None:
                continue
            union.append((here, v))
            if v.ref in moving_now:
                union.append((moving_now[v.ref].target, v))
            else:
                stable.append((here, v))
        node = state.node(m.target)
        assert node is not None
        reasons = [
            r
            for r in pod_affinity_violations(m.vm, node, node_labels=node_labels, residents=union)
            if not r.startswith(_AFFINITY_PREFIX)
        ]
        reasons += [
            r
            for r in pod_affinity_violations(m.vm, node, node_labels=node_labels, residents=stable)
            if r.startswith(_AFFINITY_PREFIX)
        ]
        return reasons

    top = 0  # max(waves), kept as the moves are assigned (recomputing it per move made N moves quadratic)
    for index, m in enumerate(moves):
        horizon = top + 1
        lower = last_wave if keep_order else 1
        is_relevant = m.vm.ref in relevant
        if is_relevant:
            lower = max(lower, last_relevant_wave)
        first = earliest_fit(m, horizon)
        if first is None:
            cap = alloc.get(m.target)
            if cap is None:
                raise WaveError(index, [f"node {m.target} does not exist"])
            free_cpu, free_mem = cap[0] - settled[m.target][0], cap[1] - settled[m.target][1]
            raise WaveError(
                index,
                [
                    f"insufficient allocatable on {m.target}: needs {m.vm.requests.cpu_millicores}m CPU / "
                    f"{m.vm.requests.memory_bytes / 1024**3:.1f}Gi memory, "
                    f"{max(free_cpu, 0)}m / {max(free_mem, 0) / 1024**3:.1f}Gi free"
                ],
            )
        chosen = None
        w = max(lower, first)
        while chosen is None:
            if max_per_wave is not None and per_wave.get(w, 0) >= max_per_wave:
                w += 1
                continue
            if is_relevant:
                reasons = affinity(m, w)
                if reasons:
                    if w >= horizon:
                        raise WaveError(index, reasons)
                    w += 1
                    continue
            chosen = w
        waves.append(chosen)
        top = max(top, chosen)
        per_wave[chosen] = per_wave.get(chosen, 0) + 1
        record(m, chosen)
        assigned.append((chosen, m))
        if keep_order:
            last_wave = max(last_wave, chosen)
        if is_relevant:
            last_relevant_wave = max(last_relevant_wave, chosen)
    return waves
