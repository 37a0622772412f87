"""`propose_plan`: the automatic planner's entry point (pure: state + request → plan).

Steps: check the request; build the problem; say which VMs may move (and why the others may
not, as a `StayKind`); stop at once when the cluster is already inside the goal's balance band;
search (live moves first, then cold ones only where they buy a lot); cut to ``--max-migrations``
and choose those moves jointly; explain what stays; assemble waves, notes and metrics; attach
the move-economy curve.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from vm_rebalance.errors import ConfigError
from vm_rebalance.model import (
    DO_NOT_MOVE_ANNOTATION,
    GIB,
    Basis,
    ClusterState,
    GoalType,
    MigrationLimits,
    MigrationMethod,
    Plan,
    Resources,
    Stay,
    StayKind,
    VirtualMachine,
)
from vm_rebalance.planner.assemble import DraftMove, PlanOptions, assemble_plan
from vm_rebalance.planner.eligibility import fit_reasons, live_blocker
from vm_rebalance.planner.goals import (
    GoalDefinition,
    band_reason,
    definition,
    hot_nodes,
    hot_thresholds,
    objective_terms,
)
from vm_rebalance.planner.problem import BoolArray, FloatArray, Problem
from vm_rebalance.planner.request import PlanRequest
from vm_rebalance.planner.search import (
    REFINE_MAX_MOVES,
    SINGLE_MOVE_PAIRS,
    STRATEGIES,
    SearchContext,
    Step,
    refine_under_budget,
)
from vm_rebalance.planner.tradeoff import tradeoff_points
from vm_rebalance.planner.workloads import migration_profile, planned_method

COST_PER_GIB = 0.02
"""Extra cost per GiB of guest memory (pp²): a tie-breaker, smaller VMs first when gains are equal."""
COLD_RUNNING_COST = 400.0
"""Extra cost of a cold move of a running VM (downtime), pp²: it must buy a lot of balance."""
COLD_WORTH = 0.9
"""Cold moves are dropped when the live moves alone achieve this share of the improvement."""

Blocker = tuple[StayKind, str]
"""Why a VM may not move at all in this plan: its kind and a sentence."""
Strategy = Callable[[Problem, SearchContext], list[Step]]


def resolve_basis(state: ClusterState, requested: Basis | None, warnings: list[str]) -> Basis:
    """Usage when metrics are there (default), else requests — with a warning if usage was asked for."""
    if requested is None:
        return Basis.USAGE if state.metrics_available else Basis.REQUESTS
    if requested is Basis.USAGE and not state.metrics_available:
        warnings.append("usage metrics are not available (metrics.k8s.io): planning on requests instead")
        return Basis.REQUESTS
    return requested


def _blocker(
    vm: VirtualMachine, request: PlanRequest, *, draining: bool, limits: MigrationLimits | None = None
) -> Blocker | None:
    if request.namespaces and vm.namespace not in request.namespaces:
        return StayKind.NAMESPACE, f"namespace {vm.namespace} not selected"
    if vm.do_not_move:
        return StayKind.DO_NOT_MOVE, f"annotated {DO_NOT_MOVE_ANNOTATION}=true"
    if vm.migrating:
        return StayKind.MIGRATING, "a migration of this VM is already in flight"
    ago = vm.last_migration_seconds_ago
    if not draining and request.cooldown_seconds > 0 and ago is not None and ago < request.cooldown_seconds:
        return (
            StayKind.COOLDOWN,
            f"migrated {ago / 60:.0f} min ago (anti-thrash cooldown {request.cooldown_seconds / 60:.0f} min)",
        )
    if request.live_only:
        blocker = live_blocker(vm)
        if blocker is None and limits is not None and vm.running:
            blocker = migration_profile(vm, limits).cold_reason
        if blocker is not None:
            return StayKind.LIVE_ONLY, f"--live-only and it cannot move live: {blocker}"
    return None


def explain_no_target(problem: Problem, state: ClusterState, vm: VirtualMachine, exclude: str | None) -> str:
    """Why no node can take ``vm`` as things stand after the search (a short summary)."""
    examples: list[str] = []
    ineligible = 0
    for j, node in enumerate(problem.nodes):
        if node.name in (exclude, vm.node):
            continue
        if not problem.eligible[j]:
            ineligible += 1
            continue
        extra = Resources(
            int(problem.requested[j, 0] - node.requested.cpu_millicores),
            int(problem.requested[j, 1] - node.requested.memory_bytes),
        )
        # Residents where the plan leaves them (anti-affinity in both directions, affinity, spread).
        reasons = fit_reasons(vm, node, state, extra_requested=extra, residents=problem.residents_for(vm))
        if reasons:
            examples.append(f"{node.name}: {reasons[0]}")
    if not examples and not ineligible:
        return "no other node in the cluster"
    text = "no feasible target"
    if examples:
        text += " (" + "; ".join(examples[:2]) + (f"; +{len(examples) - 2} more" if len(examples) > 2 else "") + ")"
    if ineligible:
        text += f"; {ineligible} node(s) cannot host VMs at all"
    return text


def _check_request(state: ClusterState, request: PlanRequest) -> tuple[GoalDefinition, Strategy]:
    goal = request.goal
    spec = definition(goal.type)
    if not spec.automatic:
        raise ConfigError(f"the {spec.name} goal has no automatic plan; use plan_manual_moves")
    strategy = STRATEGIES.get(request.strategy)
    if strategy is None:
        raise ConfigError(
            f"unknown strategy '{request.strategy}'", hint=f"choose one of {', '.join(sorted(STRATEGIES))}"
        )
    if goal.type is GoalType.DRAIN and state.node(str(goal.node)) is None:
        raise ConfigError(f"node '{goal.node}' does not exist", hint="run `vm-rebalance inventory` to list the nodes")
    return spec, strategy


def _search_context(
    problem: Problem, request: PlanRequest, blockers: Sequence[Blocker | None], min_gain: float
) -> SearchContext:
    """Who may move, what each move costs (the minimum gain, a GiB tie-break, cold downtime), the budget."""
    goal = request.goal
    draining = goal.type is GoalType.DRAIN
    n = len(problem.vms)
    movable = np.array([b is None for b in blockers], dtype=bool).reshape(n)
    # Cold by method, never by cost: cost also grows with guest memory, so a huge live VM would look cold.
    limits = problem.state.limits
    is_cold = np.array([planned_method(v, limits) is MigrationMethod.COLD for v in problem.vms], dtype=bool).reshape(n)
    cost = (
        min_gain
        + COST_PER_GIB * np.array([v.guest_memory_bytes for v in problem.vms], dtype=np.float64) / GIB
        + np.where(is_cold, COLD_RUNNING_COST, 0.0)
    ).reshape(n)
    budget = n if request.max_migrations is None else request.max_migrations
    return SearchContext(
        terms=objective_terms(goal),
        movable=movable,
        cost=cost,
        is_cold=is_cold,
        # One more than allowed: tells whether the budget cut the plan short.
        budget=budget + (0 if draining or request.max_migrations is None else 1),
        headroom_limit=100.0 * (1.0 - request.headroom),
        drain_node=problem.node_index[str(goal.node)] if draining else None,
        # Drain: VMs moved to make room are ordinary moves (the cooldown holds them).
        helper_movable=np.array(
            [_blocker(v, request, draining=False, limits=limits) is None for v in problem.vms], dtype=bool
        ).reshape(n)
        if draining
        else None,
    )


@dataclass(slots=True)
class SearchResult:
    """The moves in the order the search chose them, the problem after them, why it stopped."""

    steps: list[Step]
    problem: Problem
    ctx: SearchContext
    stop_reason: str


def _balance(strategy: Strategy, pristine: Problem, ctx: SearchContext, min_gain: float) -> SearchResult:
    """Live moves first; then cold moves of running VMs from there, kept only when they buy a lot.

    A cold move pays ``COLD_RUNNING_COST`` on top of the minimum gain, and the cold extension
    is dropped when the live moves alone reach ``COLD_WORTH`` of the improvement with it.
    """
    live_ctx = replace(ctx, movable=ctx.movable & ~ctx.is_cold, failures={})
    problem = pristine.fork()
    steps = strategy(problem, live_ctx)
    stop = f"the next move would gain less than the minimum gain ({min_gain:g} pp², --min-gain)"
    if len(steps) >= ctx.budget or not (ctx.movable & ctx.is_cold).any():
        return SearchResult(steps, problem, live_ctx, stop)
    moved = np.zeros(len(problem.vms), dtype=bool)
    moved[[i for i, _ in steps]] = True
    ext_ctx = replace(ctx, movable=ctx.movable & ~moved, budget=ctx.budget - len(steps), failures={})
    extended = problem.fork()
    extra = strategy(extended, ext_ctx)
    if not any(ctx.is_cold[i] for i, _ in extra):
        return SearchResult(steps, problem, live_ctx, stop)
    base = pristine.objective(ctx.terms)
    with_cold = base - extended.objective(ctx.terms)
    without = base - problem.objective(ctx.terms)
    if without >= COLD_WORTH * with_cold:
        return SearchResult(steps, problem, live_ctx, stop)
    return SearchResult(steps + extra, extended, ctx, stop)


def _apply_budget(result: SearchResult, pristine: Problem, budget: int, warnings: list[str]) -> SearchResult:
    """Cut to ``budget`` moves and, where affordable, choose them jointly (the best k-move plan)."""
    steps = result.steps[:budget]
    small = int(result.ctx.movable.sum()) * int(pristine.obj_mask.sum()) <= SINGLE_MOVE_PAIRS
    if 0 < budget <= REFINE_MAX_MOVES and small:
        steps, problem = refine_under_budget(pristine, steps, result.ctx)
    else:
        problem = pristine.fork()
        for i, t in steps:
            problem.apply(i, t)
    warnings.append(f"stopped at --max-migrations {budget}: more moves would improve the balance further")
    return SearchResult(steps, problem, result.ctx, f"--max-migrations {budget} reached")


def _drain_warnings(state: ClusterState, request: PlanRequest, stays: Sequence[Stay], steps: int) -> list[str]:
    node = state.node(str(request.goal.node))
    assert node is not None
    out = []
    if not node.unschedulable:
        out.append(f"{node.name} is not cordoned: new VMs may still be scheduled there; cordon it before applying")
    unmoved = [s for s in stays if s.node == node.name]
    if unmoved:
        out.append(f"{len(unmoved)} VM(s) cannot leave {node.name}; see their reasons")
    elif not steps:
        out.append(f"{node.name} runs no VMs: nothing to drain")
    return out


def propose_plan(state: ClusterState, request: PlanRequest) -> Plan:
    """The automatic plan for ``request`` on ``state``: moves in waves, stays, nodes, metrics, warnings.

    Raises:
        ConfigError: unknown drain node or strategy, or a manual goal (use `plan_manual_moves`).
    """
    spec, strategy = _check_request(state, request)
    goal = request.goal
    draining = goal.type is GoalType.DRAIN
    warnings: list[str] = []
    basis = resolve_basis(state, request.basis, warnings)
    if basis is Basis.USAGE or not state.metrics_available:
        warnings += [w for w in state.usage_warnings if w not in warnings]
    problem = Problem(state, goal=goal, basis=basis)
    if problem.vms_without_usage:
        warnings.append(f"{problem.vms_without_usage} VM(s) have no usage metrics: their requests are used instead")
    if not problem.obj_mask.any():
        warnings.append("no eligible target node (Ready, schedulable, kubevirt.io/schedulable=true, KVM, worker)")
    blockers = [_blocker(v, request, draining=draining, limits=state.limits) for v in problem.vms]
    min_gain = spec.min_gain if request.min_gain is None else request.min_gain
    ctx = _search_context(problem, request, blockers, min_gain)
    pristine = problem.fork()
    budget = len(problem.vms) if request.max_migrations is None else request.max_migrations

    in_band = (
        None if draining else band_reason(goal, pristine.utilisation(), pristine.obj_mask, hot_thresholds(pristine))
    )
    if in_band is not None:
        result = SearchResult([], pristine.fork(), ctx, in_band)
    elif draining:
        result = SearchResult(strategy(problem, ctx), problem, ctx, "")
    else:
        result = _balance(strategy, pristine, ctx, min_gain)
        if len(result.steps) > budget:
            result = _apply_budget(result, pristine, budget, warnings)
    steps = result.steps
    drafts = [
        DraftMove(
            vm=pristine.vms[i],
            source=pristine.node_names[int(pristine.home[i])],
            target=pristine.node_names[t],
            method=planned_method(pristine.vms[i], state.limits),
        )
        for i, t in steps
    ]
    stays = _stays(pristine, result.problem, state, request, blockers, {i for i, _ in steps}, ctx.failures)
    if draining:
        warnings += _drain_warnings(state, request, stays, len(steps))
    plan = assemble_plan(
        state,
        goal=goal,
        basis=basis,
        moves=drafts,
        stays=stays,
        warnings=warnings,
        options=PlanOptions(
            headroom=request.headroom, sequential=request.sequential, max_parallel=request.max_parallel
        ),
        base=pristine,
    )
    if draining:
        return plan
    points, knee = tradeoff_points(pristine, steps, ctx.terms, ctx.is_cold & ctx.movable)
    return replace(
        plan, stop_reason=result.stop_reason, min_gain=min_gain, tradeoff=points, knee=knee if points else None
    )


def _above_mean(problem: Problem, after_util: FloatArray) -> BoolArray:
    mask = problem.obj_mask
    mean = after_util[mask].mean(axis=0) if mask.any() else np.zeros(after_util.shape[1])
    above = np.zeros(len(problem.nodes), dtype=bool)
    for t in objective_terms(problem.goal):
        above |= after_util[:, t.column] > mean[t.column] + 5.0
    return above


def _stays(
    pristine: Problem,
    kept: Problem,
    state: ClusterState,
    request: PlanRequest,
    blockers: Sequence[Blocker | None],
    moved: set[int],
    failures: dict[int, tuple[StayKind, str]],
) -> list[Stay]:
    """VMs that stay where the reason matters: on the drained node, on nodes still hot after the
    plan, or held by a rule on a node still above the average."""
    goal = request.goal
    draining = goal.type is GoalType.DRAIN
    after_util = kept.utilisation()
    hot = hot_nodes(pristine, after_util)
    above = _above_mean(pristine, after_util)
    stays = []
    for i, vm in enumerate(pristine.vms):
        if i in moved:
            continue
        j = int(pristine.home[i])
        node = pristine.node_names[j]
        found: Blocker | None
        if draining:
            found = _drain_stay(kept, state, vm, node, blockers[i], failures.get(i), str(goal.node))
        else:
            found = _balance_stay(pristine, kept, state, request, i, blockers[i], (bool(above[j]), bool(hot[j])), moved)
        if found is not None:
            stays.append(
                Stay(
                    vm=vm.name,
                    namespace=vm.namespace,
                    node=node,
                    reason=found[1],
                    kind=found[0],
                    instance_type=vm.instance_type,
                )
            )
    return stays


def _drain_stay(
    kept: Problem,
    state: ClusterState,
    vm: VirtualMachine,
    node: str,
    blocker: Blocker | None,
    failure: tuple[StayKind, str] | None,
    drained: str,
) -> Blocker | None:
    if node != drained:
        return None
    if blocker is not None:
        return blocker
    if failure is not None:
        return failure
    return StayKind.NO_TARGET, explain_no_target(kept, state, vm, exclude=drained)


def _balance_stay(
    pristine: Problem,
    kept: Problem,
    state: ClusterState,
    request: PlanRequest,
    i: int,
    blocker: Blocker | None,
    above_hot: tuple[bool, bool],
    moved: set[int],
) -> Blocker | None:
    """Why a VM on a node that stays hot (or above the mean) does not move, when that is worth saying."""
    above, still_hot = above_hot
    if blocker is not None:
        if blocker[0] is StayKind.NAMESPACE or not (above or still_hot):
            return None
        return blocker
    j = int(pristine.home[i])
    if not still_hot:
        return None
    if request.max_migrations is not None and len(moved) >= request.max_migrations:
        return StayKind.BUDGET, "--max-migrations reached"
    fits = (kept.vm_req[i][None, :] <= kept.free).all(axis=1)
    fits &= pristine.class_feasible[pristine.vm_class[i]]
    fits[j] = False
    if fits.any():
        return StayKind.NOT_WORTH, "moving it would not improve the balance enough to justify a migration"
    return StayKind.NO_TARGET, explain_no_target(kept, state, pristine.vms[i], exclude=None)
