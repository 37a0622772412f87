"""The move-economy curve of a plan: objective, GiB to copy and cold moves after its first k moves.

The search accepts moves in order of value, each one feasible after those before it, so every
prefix of that order is itself a valid plan; ``--max-migrations k`` returns the best k-move
plan, which is at least as good as the k-prefix. The curve is kept on the plan, thinned to a
few dozen points, with its knee (Kneedle: the point furthest above the chord from the first
to the last point, in normalised coordinates) and the prefixes that buy 50 / 80 / 90 % of the
improvement, so a user can choose "the 40 moves that buy 80 %" (`plan --tradeoff`).
"""

from collections.abc import Sequence

import numpy as np

from vm_rebalance.model import GIB, TradeoffPoint
from vm_rebalance.planner.problem import BoolArray, Problem, Term, objective_from

SHARES = (0.5, 0.8, 0.9)
"""Prefixes worth marking: the fewest moves that buy this share of the plan's improvement."""
GEOMETRIC_POINTS = 14


def objective_curve(pristine: Problem, steps: Sequence[tuple[int, int]], terms: Sequence[Term]) -> list[float]:
    """The objective before (index 0) and after each prefix of ``steps`` (running sums: O(1) a step)."""
    p = pristine.fork()
    util = p.utilisation()
    sums = p.sums(terms, util)
    s1, s2, hot = sums.s1.copy(), sums.s2.copy(), sums.hot.copy()
    hot_terms = [(k, t, p.thresholds(t)) for k, t in enumerate(terms) if t.kind == "hot"]
    out = [objective_from(terms, s1, s2, hot, sums.k)]
    for i, t in steps:
        source = int(p.pos[i])
        for node in (source, t):
            if p.obj_mask[node]:
                s1 -= util[node]
                s2 -= util[node] * util[node]
                for k, term, th in hot_terms:
                    hot[k] -= max(util[node, term.column] - th[node], 0.0) ** 2
        p.apply(i, t)
        for node in (source, t):
            util[node] = p.node_load[node] / p.den[node]
            if p.obj_mask[node]:
                s1 += util[node]
                s2 += util[node] * util[node]
                for k, term, th in hot_terms:
                    hot[k] += max(util[node, term.column] - th[node], 0.0) ** 2
        out.append(objective_from(terms, s1, s2, hot, sums.k))
    return out


def knee(curve: Sequence[float]) -> int:
    """The Kneedle knee of a decreasing curve (0 when it does not improve)."""
    n = len(curve) - 1
    if n <= 0 or curve[0] - curve[-1] <= 1e-12:
        return 0
    y = (curve[0] - np.asarray(curve)) / (curve[0] - curve[-1])
    x = np.arange(n + 1) / n
    return int(np.argmax(y - x))


def share_point(curve: Sequence[float], share: float) -> int:
    """The fewest moves whose prefix buys ``share`` of the whole improvement."""
    total = curve[0] - curve[-1]
    if total <= 1e-12:
        return 0
    target = curve[0] - share * total
    return int(np.argmax(np.asarray(curve) <= target + 1e-12))


def tradeoff_points(
    pristine: Problem,
    steps: Sequence[tuple[int, int]],
    terms: Sequence[Term],
    is_cold: BoolArray,
) -> tuple[tuple[TradeoffPoint, ...], int]:
    """The thinned curve (moves, objective, GiB copied by live moves, cold moves of running VMs) and its knee."""
    curve = objective_curve(pristine, steps, terms)
    n = len(steps)
    if n == 0:
        return (), 0
    gib = np.cumsum([0.0] + [0.0 if is_cold[i] else pristine.vms[i].guest_memory_bytes / GIB for i, _ in steps])
    cold = np.cumsum([0] + [int(is_cold[i]) for i, _ in steps])
    k_knee = knee(curve)
    picks = {0, n, k_knee, *(share_point(curve, s) for s in SHARES)}
    picks |= {int(k) for k in np.unique(np.round(np.geomspace(1, n, GEOMETRIC_POINTS)))}
    points = tuple(
        TradeoffPoint(moves=k, objective=float(curve[k]), gib_moved=float(gib[k]), cold_moves=int(cold[k]))
        for k in sorted(picks)
    )
    return points, k_knee
