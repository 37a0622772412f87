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
from vm_rebalance.planner.goals import COLUMN_WORDS, WARNINGS, definition, hot_nodes, hot_thresholds, objective_terms
from vm_rebalance.planner.problem import (
    COUNT,
    COUNT_UNIT,
    CPU,
    CPU_WARNING,
    MEM,
    MEMORY_WARNING,
    FloatArray,
    Problem,
    node_pressure,
)
from vm_rebalance.planner.waves import WaveError, WaveMove, assign_waves
from vm_rebalance.planner.workloads import MigrationProfile, migration_profile, profile_note

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
    state: ClusterState, goal: Goal, basis: Basis, moves: Sequence[DraftMove], base: Problem | None = None
) -> tuple[Problem, FloatArray, FloatArray]:
    """The problem after the moves, the utilisation before them and the VM counts before them.

    ``base``: the untouched problem of ``state`` for this goal and basis, when the caller has one.
    """
    problem = base.fork() if base is not None else Problem(state, goal=goal, basis=basis, feasibility=False)
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
    out = {
        "cpu_stddev": float(np.std(u[:, CPU])),
        "memory_stddev": float(np.std(u[:, MEM])),
        "count_stddev": float(np.std(u[:, COUNT])) / COUNT_UNIT,
        "cpu_max": float(np.max(u[:, CPU])),
        "memory_max": float(np.max(u[:, MEM])),
        "objective": problem.objective(objective_terms(goal), util),
    }
    if any(problem.nodes[j].pressure is not None for j in np.flatnonzero(mask)):
        # Hot nodes by the pressure-aware rule, when the state has PSI (other plans keep their keys).
        out["hot_nodes"] = float(np.sum(hot_nodes(problem, util)))
    return out


def _span(words: str, column: int, before: FloatArray, after: FloatArray) -> str:
    if column == COUNT:
        return f"{before[column]:.0f} → {after[column]:.0f} VMs"
    return f"{words} {_pct(before[column])} → {_pct(after[column])}"


def _shown(problem: Problem, node: int) -> FloatArray:
    """What a note shows for a node now: CPU and memory in % of allocatable, VMs as a plain count."""
    row = problem.node_load[node] / problem.den[node]
    row[COUNT] = problem.node_load[node, COUNT] / COUNT_UNIT
    return np.asarray(row)


def _numbers(columns: Sequence[int], before: FloatArray, after: FloatArray) -> str:
    return ", ".join(_span(COLUMN_WORDS[c], c, before, after) for c in columns)


def hot_words(problem: Problem, node: int, row: FloatArray, columns: Sequence[int]) -> list[str]:
    """Why a node counts as hot in a note: above the warning threshold, or under pressure (PSI) above
    the lowered threshold — the signal the plan acted on."""
    thresholds = hot_thresholds(problem)
    out = []
    for c in columns:
        if c not in thresholds or c not in WARNINGS or row[c] <= thresholds[c][node]:
            continue
        psi = node_pressure(problem.nodes[node], c)
        if row[c] > WARNINGS[c]:
            lowered = thresholds[c][node] < WARNINGS[c]
            out.append(
                f"{COLUMN_WORDS[c]} above the warning threshold"
                + (f", under pressure (PSI {psi * 100:.0f} %)" if lowered and psi is not None else "")
            )
        elif psi is not None:
            out.append(
                f"{COLUMN_WORDS[c]} under pressure (PSI {psi * 100:.0f} % of the time: hot from "
                f"{thresholds[c][node]:.0f} %)"
            )
    return out


def move_note(
    m: DraftMove,
    goal: Goal,
    columns: Sequence[int],
    source: tuple[FloatArray, FloatArray] | None,
    target: tuple[FloatArray, FloatArray],
    hot: Sequence[str] | None = None,
    profile: MigrationProfile | None = None,
) -> str:
    """A move's note: the node it relieves and the node it fills, with their numbers just before
    and just after this move (the plan's moves taken in execution order).

    ``source`` / ``target`` are (before, after) rows of the two nodes (`_shown`); ``source`` is
    None for a stopped VM (it holds no node). ``hot`` says why the source is hot (`hot_words`;
    default: the warning thresholds). ``profile``: the VM's migration profile (workloads.py) —
    why it moves cold although it could move live, its order rule and estimated copy time.
    """
    fills = f"fills {m.target} ({_numbers(columns, *target)})"
    if source is None:
        text = f"stopped: pinned to {m.target}, where it will start (no downtime); {fills}"
    else:
        if hot is None:
            hot = [
                f"{COLUMN_WORDS[c]} above the warning threshold"
                for c in columns
                if c in WARNINGS and source[0][c] > WARNINGS[c]
            ]
        relieves = f"relieves {m.source} ({_numbers(columns, *source)}{'; ' if hot else ''}{', '.join(hot)})"
        if goal.type is GoalType.DRAIN and m.source == goal.node:
            text = f"drains {m.source}; {relieves}; {fills}"
        elif goal.type is GoalType.DRAIN:
            text = f"makes room on {m.source} for a VM leaving {goal.node}; {relieves}; {fills}"
        elif goal.type is GoalType.MANUAL:
            text = f"requested; {relieves}; {fills}"
        else:
            text = f"{relieves}; {fills}"
    if m.vm.running and m.method is MigrationMethod.COLD:
        why = live_blocker(m.vm) or (profile.cold_reason if profile is not None else None)
        text += f"; cold because {why or 'live migration was not requested'}"
    elif m.vm.running and profile is not None and profile.special:
        extra = profile_note(profile, m.vm, live=True)
        if not profile.converges:
            extra = "; ".join(p for p in (f"{profile.cold_reason} (consider cold)", extra) if p)
        if extra:
            text += f"; {extra}"
    return text


def _hot_nodes(problem: Problem) -> frozenset[str]:
    """Nodes above a warning threshold before the plan: a move into one waits for the moves out of it."""
    util = problem.utilisation()
    hot = (util[:, CPU] > CPU_WARNING) | (util[:, MEM] > MEMORY_WARNING)
    return frozenset(problem.node_names[int(j)] for j in np.flatnonzero(hot))


def _order(moves: Sequence[DraftMove], wave_of: Sequence[int], keep_order: bool) -> list[tuple[int, DraftMove]]:
    """The moves in execution order: by wave; within a wave live before cold, smallest first (the
    seeds' ordering), or the given order when the user fixed it."""
    indexed = list(enumerate(moves))
    if keep_order:
        indexed.sort(key=lambda p: (wave_of[p[0]], p[0]))
    else:
        indexed.sort(
            key=lambda p: (
                wave_of[p[0]],
                p[1].method is MigrationMethod.COLD and p[1].vm.running,
                p[1].vm.guest_memory_bytes,
                p[0],
            )
        )
    return indexed


def _notes(
    problem: Problem,
    goal: Goal,
    ordered: Sequence[tuple[int, DraftMove]],
    profiles: dict[int, MigrationProfile] | None = None,
) -> list[str]:
    """Every move's note, replaying the moves in execution order on a working copy."""
    columns = definition(goal.type).note_columns(goal)
    profiles = profiles or {}
    replay = problem.fork()
    notes = []
    for k, m in ordered:
        t = replay.node_index[m.target]
        i = replay.vm_index.get(m.vm.ref)
        s = None if i is None else int(replay.pos[i])
        before_s = None if s is None else _shown(replay, s)
        before_t = _shown(replay, t)
        if i is None:
            replay.add_started(m.vm, t)
        else:
            replay.apply(i, t)
        source = None if s is None or before_s is None else (before_s, _shown(replay, s))
        hot = None if s is None or before_s is None else hot_words(replay, s, before_s, columns)
        notes.append(move_note(m, goal, columns, source, (before_t, _shown(replay, t)), hot, profiles.get(k)))
    return notes


def _to_move(
    number: int,
    m: DraftMove,
    basis: Basis,
    wave: int,
    reason: str,
    renumber: bool,
    profile: MigrationProfile | None = None,
) -> Move:
    use_usage = basis is Basis.USAGE and m.vm.usage is not None
    amount = m.vm.usage if use_usage and m.vm.usage is not None else m.vm.requests
    if not m.vm.running:
        downtime = NO_DOWNTIME
    elif m.method is MigrationMethod.LIVE:
        downtime = LIVE_DOWNTIME
    else:
        downtime = COLD_DOWNTIME
    return Move(
        id=number if renumber or m.id is None else m.id,
        vm=m.vm.name,
        namespace=m.vm.namespace,
        source=m.source,
        target=m.target,
        method=m.method,
        wave=wave,
        cpu=amount.cpu_millicores / 1000.0,
        memory_bytes=amount.memory_bytes,
        downtime=downtime,
        reason=reason,
        instance_type=m.vm.instance_type,
        running=m.vm.running,
        guest_memory_bytes=m.vm.guest_memory_bytes,
        storage=m.vm.storage_kind.value,
        estimated_seconds=(
            profile.estimated_seconds
            if profile is not None and m.vm.running and m.method is MigrationMethod.LIVE
            else None
        ),
    )


def derived_warnings(problem: Problem, after: FloatArray, moves: Sequence[Move], headroom: float) -> list[str]:
    """The warnings that follow from the moves themselves: batch size, cold moves, hot nodes, headroom."""
    out = []
    if len(moves) > BATCH_SPLIT:
        out.append(
            f"{len(moves)} migrations in one plan: strongly recommend splitting it into batches of at most "
            f"{BATCH_SPLIT} (--max-migrations {BATCH_SPLIT})"
        )
    elif len(moves) > BATCH_WARN:
        out.append(f"{len(moves)} migrations in one plan (more than {BATCH_WARN}): review the batch carefully")
    cold = [f"{m.namespace}/{m.vm}" for m in moves if m.running and m.method is MigrationMethod.COLD]
    if cold:
        out.append(f"{len(cold)} cold migration(s) of running VMs, ~30-60s downtime each: {_names(cold)}")
    hot_mask = hot_nodes(problem, after)
    hot = [
        f"{name} (CPU {_pct(after[j, CPU])}, memory {_pct(after[j, MEM])}"
        + "".join(f", {w}" for w in hot_words(problem, j, after[j], (CPU, MEM)) if "pressure" in w)
        + ")"
        for j, name in enumerate(problem.node_names)
        if hot_mask[j]
    ]
    if hot:
        out.append(
            f"{len(hot)} node(s) stay above the warning thresholds (CPU {CPU_WARNING:.0f} % / memory "
            f"{MEMORY_WARNING:.0f} %, lower under pressure) after the plan: {_names(hot)}"
            if any("pressure" in h for h in hot)
            else f"{len(hot)} node(s) stay above the warning thresholds (CPU {CPU_WARNING:.0f} % / memory "
            f"{MEMORY_WARNING:.0f} %) after the plan: {_names(hot)}"
        )
    limit = 100.0 * (1.0 - headroom)
    if headroom > 0:
        short = [
            name
            for j, name in enumerate(problem.node_names)
            if problem.obj_mask[j] and (after[j, CPU] > limit or after[j, MEM] > limit)
        ]
        if short:
            out.append(f"headroom of {headroom:.0%} not achievable on {len(short)} node(s): {_names(short)}")
    return out


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
    base: Problem | None = None,
) -> Plan:
    """The complete plan for ``moves`` (given in an order that is safe to run one at a time).

    Raises:
        WaveError: a move does not fit even after every earlier one (the caller explains it).
    """
    start = base.fork() if base is not None else Problem(state, goal=goal, basis=basis, feasibility=False)
    profiles = [migration_profile(m.vm, state.limits) if m.vm.running and m.source else None for m in moves]
    moves, profiles, wave_of = _waves(state, moves, profiles, options, base, relieve_first=_hot_nodes(start))
    ordered = _order(moves, wave_of, options.keep_order)
    by_index = {k: p for k, p in enumerate(profiles) if p is not None}
    notes = _notes(start, goal, ordered, by_index)
    problem, before, count_before = simulate(state, goal, basis, moves, start)
    after = problem.utilisation()
    counts_b = np.rint(count_before).astype(int)
    counts_a = np.rint(problem.node_load[:, COUNT] / COUNT_UNIT).astype(int)
    out = [
        _to_move(number, m, basis, wave_of[k], note, renumber, by_index.get(k))
        for number, ((k, m), note) in enumerate(zip(ordered, notes, strict=True), start=1)
    ]
    nodes = tuple(
        NodeChange(
            name,
            NodeLoad(int(counts_b[j]), float(before[j, CPU]) / 100.0, float(before[j, MEM]) / 100.0),
            NodeLoad(int(counts_a[j]), float(after[j, CPU]) / 100.0, float(after[j, MEM]) / 100.0),
        )
        for j, name in enumerate(problem.node_names)
    )
    kept = list(dict.fromkeys(warnings))
    derived = [
        w
        for w in dict.fromkeys(
            [*derived_warnings(problem, after, out, options.headroom), *_workload_warnings(ordered, by_index)]
        )
        if w not in kept
    ]
    return Plan(
        goal=goal,
        basis=basis,
        moves=tuple(out),
        stays=tuple(stays),
        nodes=nodes,
        metrics_before=MappingProxyType(plan_metrics(problem, before, goal)),
        metrics_after=MappingProxyType(plan_metrics(problem, after, goal)),
        warnings=(*kept, *derived),
        derived_warnings=len(derived),
        sequential=options.sequential,
        max_parallel=options.max_parallel,
        headroom=options.headroom,
        keep_order=options.keep_order,
        observation=_observation(state, basis),
    )


def _waves(
    state: ClusterState,
    moves: Sequence[DraftMove],
    profiles: Sequence[MigrationProfile | None],
    options: PlanOptions,
    base: Problem | None,
    *,
    relieve_first: frozenset[str] = frozenset(),
) -> tuple[list[DraftMove], list[MigrationProfile | None], list[int]]:
    """Waves under the capacity, affinity and workload rules; high-dirty-rate live moves go last
    (late in the plan, each alone in its wave) unless the user fixed the order or that order is
    not safe (a later move needed the room they make)."""

    def wave_moves(ms: Sequence[DraftMove], ps: Sequence[MigrationProfile | None]) -> list[WaveMove]:
        out = []
        for m, p in zip(ms, ps, strict=True):
            live = p is not None and m.method is MigrationMethod.LIVE
            out.append(
                WaveMove(
                    m.vm,
                    m.source,
                    m.target,
                    alone=live and p is not None and p.high_dirty,
                    network=live and p is not None and p.network_heavy,
                )
            )
        return out

    def schedule(ms: Sequence[DraftMove], ps: Sequence[MigrationProfile | None]) -> list[int]:
        return assign_waves(
            state,
            wave_moves(ms, ps),
            max_per_wave=1 if options.sequential else options.max_parallel,
            keep_order=options.keep_order,
            affinity=base.affinity if base is not None else None,
            relieve_first=relieve_first,
        )

    late = [
        k
        for k, (m, p) in enumerate(zip(moves, profiles, strict=True))
        if p is not None and p.high_dirty and m.method is MigrationMethod.LIVE
    ]
    if late and not options.keep_order:
        order = [k for k in range(len(moves)) if k not in set(late)] + late
        moved = [moves[k] for k in order]
        moved_profiles = [profiles[k] for k in order]
        try:
            return moved, moved_profiles, schedule(moved, moved_profiles)
        except WaveError:
            pass  # the given order is the safe one: keep it (each still alone in its wave)
    return list(moves), list(profiles), schedule(moves, profiles)


def _workload_warnings(ordered: Sequence[tuple[int, DraftMove]], profiles: dict[int, MigrationProfile]) -> list[str]:
    """Live moves of VMs whose live migration would not converge (named moves, edits): say so."""
    risky = [
        f"{m.vm.namespace}/{m.vm.name}"
        for k, m in ordered
        if m.method is MigrationMethod.LIVE and (p := profiles.get(k)) is not None and not p.converges
    ]
    if not risky:
        return []
    return [
        f"{len(risky)} live move(s) of VMs whose live migration would not converge (dirty rate against the "
        f"migration bandwidth, or beyond KubeVirt's completion timeout): {_names(risky)}; move them cold instead"
    ]


def _observation(state: ClusterState, basis: Basis) -> str:
    """The plan's basis line: how the usage it planned on was observed (usage basis only)."""
    if basis is not Basis.USAGE or state.observation is None:
        return ""
    return state.observation.describe()


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
