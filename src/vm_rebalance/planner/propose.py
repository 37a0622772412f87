"""`propose_plan`: the automatic planner's entry point (pure: state + request → plan)."""

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from vm_rebalance.errors import ConfigError
from vm_rebalance.model import (
    DO_NOT_MOVE_ANNOTATION,
    GIB,
    Basis,
    ClusterState,
    GoalType,
    MigrationMethod,
    Plan,
    Resources,
    Stay,
    VirtualMachine,
)
from vm_rebalance.planner.assemble import DraftMove, PlanOptions, assemble_plan
from vm_rebalance.planner.eligibility import fit_reasons, live_blocker, move_method
from vm_rebalance.planner.problem import CPU, CPU_WARNING, MEM, MEMORY_WARNING, Problem, objective_terms
from vm_rebalance.planner.request import PlanRequest
from vm_rebalance.planner.search import (
    REFINE_MAX_MOVES,
    SINGLE_MOVE_PAIRS,
    STRATEGIES,
    SearchContext,
    Step,
    refine_under_budget,
)

MOVE_COST = 8.0
"""Base cost of any move, in squared-deviation units (pp²): below this the gain is negligible."""
COST_PER_GIB = 0.02
"""Extra cost per GiB of guest memory: smaller VMs move first when the gain is similar."""
COLD_RUNNING_COST = 400.0
"""Extra cost of a cold move of a running VM (downtime): it must buy a lot of balance."""
COLD_WORTH = 0.9
"""Cold moves are dropped when a plan without them achieves this share of the improvement."""


def resolve_basis(state: ClusterState, requested: Basis | None, warnings: list[str]) -> Basis:
    """Usage when metrics are there (default), else requests — with a warning if usage was asked for."""
    if requested is None:
        return Basis.USAGE if state.metrics_available else Basis.REQUESTS
    if requested is Basis.USAGE and not state.metrics_available:
        warnings.append("usage metrics are not available (metrics.k8s.io): planning on requests instead")
        return Basis.REQUESTS
    return requested


def _blocker(vm: VirtualMachine, request: PlanRequest, *, draining: bool) -> str | None:
    if request.namespaces and vm.namespace not in request.namespaces:
        return f"namespace {vm.namespace} not selected"
    if vm.do_not_move:
        return f"annotated {DO_NOT_MOVE_ANNOTATION}=true"
    if vm.migrating:
        return "a migration of this VM is already in flight"
    ago = vm.last_migration_seconds_ago
    if not draining and request.cooldown_seconds > 0 and ago is not None and ago < request.cooldown_seconds:
        return f"migrated {ago / 60:.0f} min ago (anti-thrash cooldown {request.cooldown_seconds / 60:.0f} min)"
    if request.live_only:
        blocker = live_blocker(vm)
        if blocker is not None:
            return f"--live-only and it cannot move live: {blocker}"
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


def propose_plan(state: ClusterState, request: PlanRequest) -> Plan:
    """The automatic plan for ``request`` on ``state``: moves in waves, stays, nodes, metrics, warnings.

    Raises:
        ConfigError: unknown drain node or strategy, or a manual goal (use `plan_manual_moves`).
    """
    goal = request.goal
    if goal.type is GoalType.MANUAL:
        raise ConfigError("the manual goal has no automatic plan; use plan_manual_moves")
    strategy = STRATEGIES.get(request.strategy)
    if strategy is None:
        raise ConfigError(
            f"unknown strategy '{request.strategy}'", hint=f"choose one of {', '.join(sorted(STRATEGIES))}"
        )
    draining = goal.type is GoalType.DRAIN
    if draining and state.node(str(goal.node)) is None:
        raise ConfigError(f"node '{goal.node}' does not exist", hint="run `vm-rebalance inventory` to list the nodes")

    warnings: list[str] = []
    basis = resolve_basis(state, request.basis, warnings)
    problem = Problem(state, goal=goal, basis=basis)
    if problem.vms_without_usage:
        warnings.append(f"{problem.vms_without_usage} VM(s) have no usage metrics: their requests are used instead")
    if not problem.obj_mask.any():
        warnings.append("no eligible target node (Ready, schedulable, kubevirt.io/schedulable=true, KVM, worker)")

    blockers = [_blocker(v, request, draining=draining) for v in problem.vms]
    movable = np.array([b is None for b in blockers], dtype=bool).reshape(len(problem.vms))
    # Cold by method, never by cost: cost also grows with guest memory, so a huge live VM would look cold.
    is_cold = np.array([move_method(v) is MigrationMethod.COLD for v in problem.vms], dtype=bool).reshape(
        len(problem.vms)
    )
    cost = (
        MOVE_COST
        + COST_PER_GIB * np.array([v.guest_memory_bytes for v in problem.vms], dtype=np.float64) / GIB
        + np.where(is_cold, COLD_RUNNING_COST, 0.0)
    ).reshape(len(problem.vms))
    budget = len(problem.vms) if request.max_migrations is None else request.max_migrations
    drain_index = problem.node_index[str(goal.node)] if draining else None
    ctx = SearchContext(
        terms=objective_terms(goal),
        movable=movable,
        cost=cost,
        is_cold=is_cold,
        # One more than allowed: tells whether the budget cut the plan short.
        budget=budget + (0 if draining or request.max_migrations is None else 1),
        headroom_limit=100.0 * (1.0 - request.headroom),
        drain_node=drain_index,
        # Drain: VMs moved to make room are ordinary moves (the cooldown holds them).
        helper_movable=np.array(
            [_blocker(v, request, draining=False) is None for v in problem.vms], dtype=bool
        ).reshape(len(problem.vms))
        if draining
        else None,
    )
    pristine = problem.fork()
    steps: list[Step] = strategy(problem, ctx)
    search_ctx = ctx
    cold = [i for i, _ in steps if is_cold[i]]
    if cold and not draining:
        # A cold move of a running VM must buy a lot of balance: try the plan without them.
        live_ctx = replace(ctx, movable=ctx.movable & ~is_cold, failures={})
        live_problem = pristine.fork()
        live_steps = strategy(live_problem, live_ctx)
        base = pristine.objective(ctx.terms)
        with_cold = base - problem.objective(ctx.terms)
        without = base - live_problem.objective(ctx.terms)
        if without >= COLD_WORTH * with_cold and len(live_steps) <= len(steps) + 2 * len(cold):
            steps, problem = live_steps, live_problem
            search_ctx = live_ctx
    if len(steps) > budget:
        steps = steps[:budget]
        small = int(ctx.movable.sum()) * int(pristine.obj_mask.sum()) <= SINGLE_MOVE_PAIRS
        if 0 < budget <= REFINE_MAX_MOVES and small and not draining:
            # The budget binds: choose the moves jointly rather than greedily.
            steps, problem = refine_under_budget(pristine, steps, search_ctx)
        warnings.append(f"stopped at --max-migrations {budget}: more moves would improve the balance further")
    moved = {i for i, _ in steps}
    drafts = [
        DraftMove(
            vm=problem.vms[i],
            source=problem.node_names[int(problem.home[i])],
            target=problem.node_names[t],
            method=move_method(problem.vms[i]),
        )
        for i, t in steps
    ]
    # Re-simulate with only the kept steps, for honest "no feasible target" explanations.
    kept = pristine.fork()
    for i, t in steps:
        kept.apply(i, t)

    stays = _stays(problem, kept, state, request, blockers, moved, ctx.failures, kept.utilisation(), draining)
    if draining:
        node = state.node(str(goal.node))
        assert node is not None
        if not node.unschedulable:
            warnings.append(
                f"{node.name} is not cordoned: new VMs may still be scheduled there; cordon it before applying"
            )
        unmoved = [s for s in stays if s.node == node.name]
        if unmoved:
            warnings.append(f"{len(unmoved)} VM(s) cannot leave {node.name}; see their reasons")
        elif not steps:
            warnings.append(f"{node.name} runs no VMs: nothing to drain")
    return assemble_plan(
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


def _stays(
    problem: Problem,
    kept: Problem,
    state: ClusterState,
    request: PlanRequest,
    blockers: Sequence[str | None],
    moved: set[int],
    failures: dict[int, str],
    after_util: np.ndarray,
    draining: bool,
) -> list[Stay]:
    """VMs that stay where the reason matters: on the drained node, on nodes still hot after the
    plan, or held by a rule on a node still above the average."""
    goal = request.goal
    hot = problem.obj_mask & ((after_util[:, CPU] > CPU_WARNING) | (after_util[:, MEM] > MEMORY_WARNING))
    mask = problem.obj_mask
    mean = after_util[mask].mean(axis=0) if mask.any() else np.zeros(after_util.shape[1])
    above = np.zeros(len(problem.nodes), dtype=bool)
    for t in objective_terms(goal):
        above |= after_util[:, t.column] > mean[t.column] + 5.0
    stays = []
    for i, vm in enumerate(problem.vms):
        if i in moved:
            continue
        j = int(problem.home[i])
        node = problem.node_names[j]
        blocker = blockers[i]
        if draining:
            if node != goal.node:
                continue
            if blocker is not None:
                reason = blocker
            elif i in failures:
                reason = failures[i]
            else:
                reason = explain_no_target(kept, state, vm, exclude=goal.node)
        elif blocker is not None and blocker.startswith("namespace "):
            continue
        elif blocker is not None and (above[j] or hot[j]):
            reason = blocker
        elif hot[j] and mask[j]:
            if request.max_migrations is not None and len(moved) >= request.max_migrations:
                reason = "--max-migrations reached"
            else:
                fits = (kept.vm_req[i][None, :] <= kept.free).all(axis=1)
                fits &= problem.class_feasible[problem.vm_class[i]]
                fits[j] = False
                reason = (
                    "moving it would not improve the balance enough to justify a migration"
                    if fits.any()
                    else explain_no_target(kept, state, vm, exclude=None)
                )
        else:
            continue
        stays.append(Stay(vm=vm.name, namespace=vm.namespace, node=node, reason=reason))
    return stays
