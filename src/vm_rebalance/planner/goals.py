"""The goal registry: one definition per goal — its objective, its words, its CLI/MCP name.

Every goal-dependent decision of the planner and every goal-dependent text of the renderers
reads a `GoalDefinition` from `definition(goal_type)`; nothing else matches on the goal type.
`definition` matches exhaustively (``typing.assert_never``), so a new `GoalType` member without
a definition fails the type check instead of falling into a default.

**Adding a goal** = a `GoalType` member (model/plan.py: it is written in plan files), one
definition below (its objective terms, minimum gain, balance band, note columns, texts) and
its tests (tests/planner/test_goals.py shows the pattern). The CLI's and the MCP server's goal
lists come from `automatic_goals()`.

**Minimum gain.** A move is made only when it lowers the objective by at least ``min_gain``,
measured as the equivalent drop in the sum over nodes of squared deviations from the mean
(pp²; ``Δobjective × 2 × nodes × objective``), a unit that does not shrink as the cluster
grows. 25 pp² is about what moving 2 percentage points of load between two nodes 8 points
apart buys. On the constrained benchmark clusters (50 to 5,000 nodes) the default stops
plans where the next move buys under ~0.1 % of the improvement: they keep ~93 % of the
achievable improvement with ~70 % of the moves (`benchmarks/planner_bench.py`, README).
`--min-gain` changes it (0: every improving move).

**Balance band.** A cluster already inside the goal's band gets no plan at all, with the
reason: no node above the warning thresholds and every node within ``BAND_PP`` percentage
points of the mean (count: within one VM of its capacity-weighted share).

**Hot spots** are judged by each goal's ``hot_spots`` terms — by default the seeds' warning
thresholds (CPU 80 %, memory 85 %) on the sustained utilisation, lowered on a node under
pressure (CPU PSI ≥ 10 % → hot from 70 %; memory PSI ≥ 5 % → hot from 80 %): a node whose
tasks keep waiting for a CPU is hot even at 75 %. The balance band, the plan's notes and its
warnings use them; the performance goal also minimises them.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import assert_never

import numpy as np

from vm_rebalance.model import Goal, GoalType
from vm_rebalance.planner.problem import (
    COUNT,
    COUNT_UNIT,
    CPU,
    CPU_PRESSURED,
    CPU_WARNING,
    HEAVY,
    MEM,
    MEMORY_PRESSURED,
    MEMORY_WARNING,
    BoolArray,
    FloatArray,
    Problem,
    Term,
    normalised_weights,
)

DEFAULT_MIN_GAIN = 25.0
"""pp²: see the module docstring (tuned on the constrained benchmark clusters)."""
BAND_PP = 10.0
"""A node within this many percentage points of the mean is inside the balance band."""

COLUMN_WORDS = {CPU: "CPU", MEM: "memory", COUNT: "VMs", HEAVY: "heavy VMs"}
WARNINGS = {CPU: CPU_WARNING, MEM: MEMORY_WARNING}
HOT_SPOTS = (
    Term("hot", CPU, 1.0, CPU_WARNING, pressured=CPU_PRESSURED),
    Term("hot", MEM, 1.0, MEMORY_WARNING, pressured=MEMORY_PRESSURED),
)
"""The default hot-spot rule: the warning thresholds, lowered on nodes under pressure (see the module docstring)."""


@dataclass(frozen=True, slots=True)
class Band:
    """The balance band of a goal: the columns whose spread counts, and how far a node may stray."""

    columns: tuple[int, ...]
    tolerance: float
    unit: str = "pp"


@dataclass(frozen=True, slots=True, kw_only=True)
class GoalDefinition:
    """Everything goal-specific: objective, stop rule, band, what a move's note shows, words."""

    type: GoalType
    summary: str
    """One line for help texts and the MCP tool description."""
    automatic: bool
    """`propose_plan` plans it (the manual goal is a list of user-named moves)."""
    terms: Callable[[Goal], tuple[Term, ...]]
    """The objective: a weighted sum of std-dev and hot-spot terms (see `problem`)."""
    min_gain: float = DEFAULT_MIN_GAIN
    """Default minimum gain per move (pp²); 0 for goals that must move what they must (drain)."""
    band: Callable[[Goal], Band | None] = field(default=lambda goal: None)
    """The balance band, or None when "already balanced" does not apply (drain, manual)."""
    note_columns: Callable[[Goal], tuple[int, ...]] = field(default=lambda goal: (CPU, MEM))
    """Which numbers a move's note shows for the nodes it relieves and fills."""
    headline: Callable[[Goal, str], str]
    """The "Optimization Goal" line, given the basis ("usage" / "requests")."""
    hot_spots: Callable[[Goal], tuple[Term, ...]] = field(default=lambda goal: HOT_SPOTS)
    """How the goal tells a hot node (hot terms; their weights are ignored): the balance band, notes, warnings."""

    @property
    def name(self) -> str:
        """The CLI ``--goal`` value and the MCP goal name."""
        return self.type.value


def _balance_terms(goal: Goal) -> tuple[Term, ...]:
    wc, wm = normalised_weights(goal)
    terms = []
    if wc > 0:
        terms.append(Term("std", CPU, wc))
    if wm > 0:
        terms.append(Term("std", MEM, wm))
    return tuple(terms)


def _weighted_columns(goal: Goal) -> tuple[int, ...]:
    return tuple(t.column for t in _balance_terms(goal))


def _balanced_headline(goal: Goal, basis: str) -> str:
    w = {k: round(v, 2) for k, v in goal.weights.items()}
    default = w == {"cpu": 0.5, "memory": 0.5}
    return "Balance CPU and memory" + ("" if default else f" (weights {w})") + f" (on {basis})"


CPU_GOAL = GoalDefinition(
    type=GoalType.CPU,
    summary="even out CPU utilisation across nodes (std dev of CPU %)",
    automatic=True,
    terms=lambda goal: (Term("std", CPU, 1.0),),
    band=lambda goal: Band((CPU,), BAND_PP),
    note_columns=lambda goal: (CPU,),
    headline=lambda goal, basis: f"Balance CPU load across nodes (on {basis})",
)
MEMORY_GOAL = GoalDefinition(
    type=GoalType.MEMORY,
    summary="even out memory utilisation across nodes (std dev of memory %)",
    automatic=True,
    terms=lambda goal: (Term("std", MEM, 1.0),),
    band=lambda goal: Band((MEM,), BAND_PP),
    note_columns=lambda goal: (MEM,),
    headline=lambda goal, basis: f"Balance memory load across nodes (on {basis})",
)
BALANCED_GOAL = GoalDefinition(
    type=GoalType.BALANCED,
    summary="even out CPU and memory together, weighted (default 0.5 / 0.5)",
    automatic=True,
    terms=_balance_terms,
    band=lambda goal: Band(_weighted_columns(goal), BAND_PP),
    note_columns=_weighted_columns,
    headline=_balanced_headline,
)
COUNT_GOAL = GoalDefinition(
    type=GoalType.COUNT,
    summary="even out the number of VMs per node, weighted by node capacity",
    automatic=True,
    terms=lambda goal: (Term("std", COUNT, 1.0),),
    band=lambda goal: Band((COUNT,), COUNT_UNIT, unit="VM"),
    note_columns=lambda goal: (COUNT,),
    headline=lambda goal, basis: "Even number of VMs per node, weighted by node capacity",
)
PERFORMANCE_GOAL = GoalDefinition(
    type=GoalType.PERFORMANCE,
    summary="first bring every node under the warning thresholds, then spread heavy VMs",
    automatic=True,
    # Hot spots dominate (first bring every node under the warning thresholds), then the
    # balance of both resources, then heavy VMs kept apart.
    # Hot spots (pressure-aware, as the hot-spot rule) dominate: first bring every node under its
    # thresholds, then the balance of both resources, then heavy VMs kept apart.
    terms=lambda goal: (
        *(Term("hot", t.column, 4.0, t.threshold, pressured=t.pressured) for t in HOT_SPOTS),
        *(Term("std", t.column, t.weight) for t in _balance_terms(goal)),
        Term("std", HEAVY, 0.25),
    ),
    band=lambda goal: Band((CPU, MEM), BAND_PP),
    headline=lambda goal, basis: (
        f"Remove hot spots (CPU > {CPU_WARNING:.0f} %, memory > {MEMORY_WARNING:.0f} %), "
        f"then spread heavy VMs (on {basis})"
    ),
)
DRAIN_GOAL = GoalDefinition(
    type=GoalType.DRAIN,
    summary="move every VM off one node (--node); what cannot move is listed with its reason",
    automatic=True,
    # Targets are chosen to leave the other nodes best balanced.
    terms=_balance_terms,
    min_gain=0.0,
    headline=lambda goal, basis: f"Drain {goal.node} (move every VM off it)",
)
MANUAL_GOAL = GoalDefinition(
    type=GoalType.MANUAL,
    summary="the moves the user named",
    automatic=False,
    terms=_balance_terms,
    min_gain=0.0,
    headline=lambda goal, basis: "Move the VMs you named",
)


def definition(goal_type: GoalType) -> GoalDefinition:
    """The definition of ``goal_type`` (exhaustive: a new goal type without one fails the type check)."""
    match goal_type:
        case GoalType.CPU:
            return CPU_GOAL
        case GoalType.MEMORY:
            return MEMORY_GOAL
        case GoalType.BALANCED:
            return BALANCED_GOAL
        case GoalType.COUNT:
            return COUNT_GOAL
        case GoalType.PERFORMANCE:
            return PERFORMANCE_GOAL
        case GoalType.DRAIN:
            return DRAIN_GOAL
        case GoalType.MANUAL:
            return MANUAL_GOAL
        case unreachable:
            assert_never(unreachable)


def automatic_goals() -> tuple[GoalDefinition, ...]:
    """The goals `propose_plan` plans, in declaration order (the CLI's and MCP's choices)."""
    return tuple(d for d in (definition(t) for t in GoalType) if d.automatic)


def objective_terms(goal: Goal) -> tuple[Term, ...]:
    """The terms of the goal's objective."""
    return definition(goal.type).terms(goal)


def hot_thresholds(problem: Problem) -> dict[int, FloatArray]:
    """Per column (CPU, memory), each node's hot-spot threshold for the problem's goal (pressure-aware)."""
    return {t.column: problem.thresholds(t) for t in definition(problem.goal.type).hot_spots(problem.goal)}


def hot_nodes(problem: Problem, util: FloatArray) -> BoolArray:
    """The objective nodes above their hot-spot threshold in any column."""
    hot = np.zeros(len(problem.nodes), dtype=bool)
    for column, th in hot_thresholds(problem).items():
        hot |= util[:, column] > th
    return np.asarray(hot & problem.obj_mask, dtype=bool)


def band_reason(goal: Goal, util: FloatArray, mask: BoolArray, hot: dict[int, FloatArray] | None = None) -> str | None:
    """Why the cluster is already balanced for ``goal`` (inside its band), or None when it is not.

    ``util`` is the utilisation in search units (percentage points; 10 per weighted VM for
    counts), ``mask`` the objective nodes and ``hot`` the per-node hot-spot thresholds
    (`hot_thresholds`; default: the warning thresholds everywhere).
    """
    band = definition(goal.type).band(goal)
    if band is None or not mask.any():
        return None
    u = util[mask]
    limits = hot or {c: np.full(len(util), WARNINGS[c]) for c in (CPU, MEM)}
    if any(bool(np.any(u[:, c] > th[mask])) for c, th in limits.items()):
        return None
    parts = []
    for c in band.columns:
        mean = float(np.mean(u[:, c]))
        worst = float(np.max(np.abs(u[:, c] - mean)))
        if worst > band.tolerance:
            return None
        if band.unit == "VM":
            parts.append(f"every node within one VM of its capacity-weighted share ({worst / COUNT_UNIT:.1f} at most)")
        else:
            parts.append(
                f"{COLUMN_WORDS[c]} within ±{band.tolerance:.0f} pp of the mean {mean:.0f} % (furthest {worst:.1f} pp)"
            )
    return (
        f"already balanced: no node above the warning thresholds (CPU {CPU_WARNING:.0f} %, memory "
        f"{MEMORY_WARNING:.0f} %) and " + "; ".join(parts)
    )


__all__ = [
    "BAND_PP",
    "DEFAULT_MIN_GAIN",
    "HOT_SPOTS",
    "Band",
    "GoalDefinition",
    "automatic_goals",
    "band_reason",
    "definition",
    "hot_nodes",
    "hot_thresholds",
    "objective_terms",
]
