"""Turn an ordered list of moves into a complete `Plan`: waves, ids, reasons, nodes, metrics, warnings.

Shared by `propose_plan`, the plan edits and manual moves, so that an edited plan is
recomputed exactly as a fresh one would be.
"""

from collections.abc import Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType

import numpy as np

from vm_rebalance.model import (
    Basis,
    ClusterState,
    Goal,
    GoalType,
    MigrationMethod,
    Move,
    NodeChange,
    NodeLoad,
    Plan,
    Stay,
    VirtualMachine,
)
from vm_rebalance.model.plan import COLD_DOWNTIME, LIVE_DOWNTIME, NO_DOWNTIME
from vm_rebalance.model.thresholds import BATCH_SPLIT, BATCH_WARN, DEFAULT_HEADROOM
from vm_rebalance.planner.eligibility import live_blocker
from vm_rebalance.planner.problem import (
    COUNT,
    COUNT_UNIT,
    CPU,
    CPU_WARNING,
    MEM,
    MEMORY_WARNING,
    FloatArray,
    Problem,
    normalised_weights,
    objective_terms,
)
from vm_rebalance.planner.waves import WaveMove, assign_waves

_LIST_LIMIT = 5


@dataclass(frozen=True, slots=True)
class DraftMove:
    """A move before waves, ids and reasons: the VM, where it is ("" when stopped), where it goes."""

    vm: VirtualMachine
    source: str
    target: str
    method: MigrationMethod
    id: int | None = None


@dataclass(frozen=True, slots=True)
class PlanOptions:
    """How to assemble: soft headroom for warnings, execution mode, wave limits."""

    headroom: float = DEFAULT_HEADROOM
    sequential: bool = False
    max_parallel: int | None = None
    keep_order: bool = False
    """Waves follow the given order (an explicit user order) instead of live-first, smallest-first."""


def _names(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_LIST_LIMIT])
    return shown + (f" and {len(items) - _LIST_LIMIT} more" if len(items) > _LIST_LIMIT else "")


def _pct(x: float) -> str:
    return f"{x:.0f} %"


def simulate(
    state: ClusterState, goal: Goal, basis: Basis, moves: Sequence[DraftMove]
) -> tuple[Problem, FloatArray, FloatArray]:
    """The problem after the moves, the utilisation before them and the VM counts before them."""
    problem = Problem(state, goal=goal, basis=basis, feasibility=False)
    before = problem.utilisation()
    counts = problem.node_load[:, COUNT] / COUNT_UNIT
    for m in moves:
        t = problem.node_index[m.target]
        i = problem.vm_index.get(m.vm.ref)
        if i is None:
            problem.add_started(m.vm, t)
        else:
            problem.apply(i, t)
    return problem, before, counts


def plan_metrics(problem: Problem, util: FloatArray, goal: Goal) -> dict[str, float]:
    """Std devs (percentage points; count in VMs), maxima and the goal's objective over the objective nodes."""
    mask = problem.obj_mask
    u = util[mask]
    if len(u) == 0:
        return {"cpu_stddev": 0.0, "memory_stddev": 0.0, "count_stddev": 0.0, "objective": 0.0}
    return {
        "cpu_stddev": float(np.std(u[:, CPU])),
        "memory_stddev": float(np.std(u[:, MEM])),
        "count_stddev": float(np.std(u[:, COUNT])) / COUNT_UNIT,
        "cpu_max": float(np.max(u[:, CPU])),
        "memory_max": float(np.max(u[:, MEM])),
        "objective": problem.objective(objective_terms(goal), util),
    }


def _reason(
    m: DraftMove,
    goal: Goal,
    problem: Problem,
    before: FloatArray,
    after: FloatArray,
    counts: tuple[FloatArray, FloatArray],
    most_room: set[str],
    mean: FloatArray,
) -> str:
    s = problem.node_index.get(m.source)
    t = problem.node_index[m.target]
    counts_b, counts_a = counts
    if not m.vm.running:
        text = f"stopped: pinned to {m.target}, where it will start (no downtime)"
    elif goal.type is GoalType.COUNT and s is not None:
        text = (
            f"{m.source} hosts {counts_b[s]:.0f} VMs → {counts_a[s]:.0f}; "
            f"{m.target} {counts_b[t]:.0f} → {counts_a[t]:.0f}"
        )
    else:
        if goal.type is GoalType.CPU:
            col = CPU
        elif goal.type is GoalType.MEMORY:
            col = MEM
        else:
            wc, wm = normalised_weights(goal)
            ref = s if s is not None else t
            sign = 1.0 if s is not None else -1.0
            cpu_excess = sign * wc * (before[ref, CPU] - mean[CPU])
            col = CPU if cpu_excess >= sign * wm * (before[ref, MEM] - mean[MEM]) else MEM
        dim = "CPU" if col == CPU else "memory"
        room = "has the most headroom" if m.target in most_room else "has room"
        target_text = f"{m.target} {room} ({dim} {_pct(before[t, col])} → {_pct(after[t, col])})"
        if goal.type is GoalType.DRAIN and m.source == goal.node:
            text = f"drains {m.source}; {target_text}"
        elif goal.type is GoalType.DRAIN and s is not None:
            text = f"makes room on {m.source} for a VM leaving {goal.node}; {target_text}"
        elif goal.type is GoalType.MANUAL:
            text = f"requested; {target_text}"
        elif s is not None:
            threshold = CPU_WARNING if col == CPU else MEMORY_WARNING
            hot = " (above the warning threshold)" if before[s, col] > threshold else ""
            text = f"{m.source} {dim} {_pct(before[s, col])}{hot} → {_pct(after[s, col])}; {target_text}"
        else:
            text = target_text
    if m.vm.running and m.method is MigrationMethod.COLD:
        text += f"; cold because {live_blocker(m.vm) or 'live migration was not requested'}"
    return text


def assemble_plan(
    state: ClusterState,
    *,
    goal: Goal,
    basis: Basis,
    moves: Sequence[DraftMove],
    stays: Sequence[Stay] = (),
    warnings: Sequence[str] = (),
    options: PlanOptions = PlanOptions(),
    renumber: bool = True,
) -> Plan:
    """The complete plan for ``moves`` (given in an order that is safe to run one at a time).

    Raises:
        WaveError: a move does not fit even after every earlier one (the caller explains it).
    """
    wave_of = assign_waves(
        state,
        [WaveMove(m.vm, m.source, m.target) for m in moves],
        max_per_wave=1 if options.sequential else options.max_parallel,
        keep_order=options.keep_order,
    )
    indexed = list(enumerate(moves))
    if options.keep_order:
        indexed.sort(key=lambda p: (wave_of[p[0]], p[0]))
    else:
        # Within a wave: live before cold, smallest first (the seeds' ordering).
        indexed.sort(
            key=lambda p: (
                wave_of[p[0]],
                p[1].method is MigrationMethod.COLD and p[1].vm.running,
                p[1].vm.guest_memory_bytes,
                p[0],
            )
        )
    problem, before, count_before = simulate(state, goal, basis, moves)
    after = problem.utilisation()
    counts_b = np.rint(count_before).astype(int)
    counts_a = np.rint(problem.node_load[:, COUNT] / COUNT_UNIT).astype(int)
    obj_after = after[problem.obj_mask]
    most_room: set[str] = set()
    if len(obj_after):
        targets = {m.target for m in moves}
        low_cpu = problem.node_names[int(np.flatnonzero(problem.obj_mask)[np.argmin(before[problem.obj_mask, CPU])])]
        low_mem = problem.node_names[int(np.flatnonzero(problem.obj_mask)[np.argmin(before[problem.obj_mask, MEM])])]
        most_room = {n for n in (low_cpu, low_mem) if n in targets}

    # The nodes' mean utilisation before the plan, once (per move it made N moves quadratic).
    mean = before[problem.obj_mask].mean(axis=0) if problem.obj_mask.any() else before.mean(axis=0)
    out: list[Move] = []
    for number, (k, m) in enumerate(indexed, start=1):
        use_usage = basis is Basis.USAGE and m.vm.usage is not None
        amount = m.vm.usage if use_usage and m.vm.usage is not None else m.vm.requests
        if not m.vm.running:
            downtime = NO_DOWNTIME
        elif m.method is MigrationMethod.LIVE:
            downtime = LIVE_DOWNTIME
        else:
            downtime = COLD_DOWNTIME
        out.append(
            Move(
                id=number if renumber or m.id is None else m.id,
                vm=m.vm.name,
                namespace=m.vm.namespace,
                source=m.source,
                target=m.target,
                method=m.method,
                wave=wave_of[k],
                cpu=amount.cpu_millicores / 1000.0,
                memory_bytes=amount.memory_bytes,
                downtime=downtime,
                reason=_reason(m, goal, problem, before, after, (counts_b, counts_a), most_room, mean),
                instance_type=m.vm.instance_type,
                running=m.vm.running,
                guest_memory_bytes=m.vm.guest_memory_bytes,
                storage=m.vm.storage_kind.value,
            )
        )

    nodes = []
    for j, name in enumerate(problem.node_names):
        nodes.append(
            NodeChange(
                name,
                NodeLoad(int(counts_b[j]), float(before[j, CPU]) / 100.0, float(before[j, MEM]) / 100.0),
                NodeLoad(int(counts_a[j]), float(after[j, CPU]) / 100.0, float(after[j, MEM]) / 100.0),
            )
        )

    all_warnings = list(warnings)
    if len(out) > BATCH_SPLIT:
        all_warnings.append(
            f"{len(out)} migrations in one plan: strongly recommend splitting it into batches of at most "
            f"{BATCH_SPLIT} (--max-migrations {BATCH_SPLIT})"
        )
    elif len(out) > BATCH_WARN:
        all_warnings.append(f"{len(out)} migrations in one plan (more than {BATCH_WARN}): review the batch carefully")
    cold = [f"{m.namespace}/{m.vm}" for m in out if m.running and m.method is MigrationMethod.COLD]
    if cold:
        all_warnings.append(f"{len(cold)} cold migration(s) of running VMs, ~30-60s downtime each: {_names(cold)}")
    hot = [
        f"{name} (CPU {_pct(after[j, CPU])}, memory {_pct(after[j, MEM])})"
        for j, name in enumerate(problem.node_names)
        if problem.obj_mask[j] and (after[j, CPU] > CPU_WARNING or after[j, MEM] > MEMORY_WARNING)
    ]
    if hot:
        all_warnings.append(
            f"{len(hot)} node(s) stay above the warning thresholds (CPU {CPU_WARNING:.0f} % / memory "
            f"{MEMORY_WARNING:.0f} %) after the plan: {_names(hot)}"
        )
    limit = 100.0 * (1.0 - options.headroom)
    if options.headroom > 0:
        short = [
            name
            for j, name in enumerate(problem.node_names)
            if problem.obj_mask[j] and (after[j, CPU] > limit or after[j, MEM] > limit)
        ]
        if short:
            all_warnings.append(
                f"headroom of {options.headroom:.0%} not achievable on {len(short)} node(s): {_names(short)}"
            )

    return Plan(
        goal=goal,
        basis=basis,
        moves=tuple(out),
        stays=tuple(stays),
        nodes=tuple(nodes),
        metrics_before=MappingProxyType(plan_metrics(problem, before, goal)),
        metrics_after=MappingProxyType(plan_metrics(problem, after, goal)),
        warnings=tuple(dict.fromkeys(all_warnings)),
        sequential=options.sequential,
        max_parallel=options.max_parallel,
        headroom=options.headroom,
        keep_order=options.keep_order,
    )


def drafts_from_plan(state: ClusterState, plan: Plan) -> list[DraftMove]:
    """The plan's moves as drafts, in execution order (wave, then position), resolved against ``state``.

    A plan with ``keep_order`` (an explicit user order) keeps its moves exactly in the order given.

    Raises:
        KeyError: naming a VM of the plan that is not in ``state``.
    """
    out = []
    ordered = plan.moves if plan.keep_order else sorted(plan.moves, key=lambda m: m.wave)
    for m in ordered:
        vm = state.vm(m.namespace, m.vm)
        if vm is None:
            raise KeyError(f"{m.namespace}/{m.vm}")
        out.append(DraftMove(vm=vm, source=m.source, target=m.target, method=m.method, id=m.id))
    return out


def with_reason(stay: Stay, reason: str) -> Stay:
    """A copy of ``stay`` with another reason."""
    return replace(stay, reason=reason)
