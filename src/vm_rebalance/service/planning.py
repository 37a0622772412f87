"""Planning use cases: propose a plan for a goal, plan named moves or a drain, explain a move,
and re-validate a saved or approved plan against the cluster as it is now.

Every front-end gets the same ``PlanView`` (the plan, the cluster's limits and the alternatives
worth offering) and the same validation policy (``revalidate``).
"""

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from vm_rebalance.errors import ConfigError, InfeasiblePlanError, RebalanceError
from vm_rebalance.model import ClusterState, Goal, GoalType, MigrationLimits, Move, Plan, plan_to_document
from vm_rebalance.model.cluster import vm_ref
from vm_rebalance.planner import (
    ManualMoveRequest,
    PlanRequest,
    Rejection,
    RejectionKind,
    check_manual_moves,
    propose_plan,
)
from vm_rebalance.planner.alternatives import alternatives
from vm_rebalance.planner.explain import explain_move
from vm_rebalance.service.identity import stamped
from vm_rebalance.service.names import missing_node, require_vms
from vm_rebalance.service.pins import (
    approve_replacing,
    pin_refusals,
    user_pin_allows,
    user_pin_nodes,
    with_affinity_changes,
)
from vm_rebalance.service.requests import PlanSpec


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanView:
    """A plan as every front-end shows it: the plan, the cluster's limits, the alternatives."""

    plan: Plan
    limits: MigrationLimits
    alternatives: tuple[str, ...] = ()
    """The sentences offering the alternatives (the plan table shows them)."""
    alternative_plans: Mapping[str, Plan] = field(default_factory=dict)
    """What accepting each alternative turns the plan into, by its key ("live-only", "sequential")."""
    rejections: tuple[Rejection, ...] = ()
    """Named moves (``plan_moves``) left out at validation, with their kind."""

    def to_document(self) -> dict[str, Any]:
        """The plan document of design.md §3 (what `plan -o json` prints and `apply` reads)."""
        return plan_to_document(self.plan)


def propose(state: ClusterState, spec: PlanSpec | PlanRequest) -> Plan:
    """The automatic plan (pure).

    Raises:
        ConfigError: a bad request. InfeasiblePlanError: nothing feasible.
    """
    request = spec.to_request() if isinstance(spec, PlanSpec) else spec
    _require_node(state, request)
    try:
        return with_affinity_changes(stamped(propose_plan(state, request), state), state)
    except ValueError as exc:
        if isinstance(exc, RebalanceError):
            raise
        raise ConfigError(str(exc)) from exc


def plan(state: ClusterState, spec: PlanSpec) -> PlanView:
    """The automatic plan for ``spec`` with the alternatives worth offering next to it."""
    return _with_alternatives(state, spec.to_request())


def _with_alternatives(state: ClusterState, request: PlanRequest) -> PlanView:
    result = propose(state, request)
    offered = alternatives(state, request, result)
    return PlanView(
        plan=result,
        limits=state.limits,
        alternatives=tuple(a.text for a in offered),
        alternative_plans={a.key: a.plan for a in offered},
    )


def _require_node(state: ClusterState, request: PlanRequest) -> None:
    node = request.goal.node
    if node is not None and state.node(node) is None:
        raise missing_node(state, node)


def plan_drain(
    state: ClusterState, node: str, *, live_only: bool = False, sequential: bool = False, replace_affinity: bool = False
) -> PlanView:
    """The plan that empties ``node``; what cannot move is in the plan's stays with its reason.

    ``replace_affinity``: the user approved replacing the node pins of their own that keep VMs on
    ``node`` (each such move shows the pin old → new); without it those VMs stay, and a warning
    says how to approve it.

    Raises:
        ConfigError: the node does not exist.
    """
    request = PlanRequest(goal=Goal(type=GoalType.DRAIN, node=node), live_only=live_only, sequential=sequential)
    on_node = {v.ref for v in state.vms if v.node == node}
    checked = approve_replacing(state, on_node) if replace_affinity else state
    view = _with_alternatives(checked, request)
    # The pins as read (not as approved): each move that replaces one shows it old → new.
    plan = with_affinity_changes(view.plan, state)
    offered = {key: with_affinity_changes(p, state) for key, p in view.alternative_plans.items()}
    if not replace_affinity:
        staying = {(st.namespace, st.vm) for st in plan.stays}
        hints = [
            f"{v.ref} stays: its own node affinity kubernetes.io/hostname In [{', '.join(user_pin_nodes(v))}] keeps "
            f"it on {node}; drain --replace-affinity moves it and replaces that pin (shown old → new)"
            for v in state.vms
            if v.ref in on_node
            and (v.namespace, v.name) in staying
            and user_pin_nodes(v)
            and not any(user_pin_allows(v, n.name) for n in state.nodes if n.name != node)
        ]
        plan = dataclasses.replace(plan, warnings=(*plan.warnings, *hints))
    return dataclasses.replace(view, plan=plan, alternative_plans=offered)


def plan_moves(
    state: ClusterState,
    requests: Sequence[ManualMoveRequest],
    *,
    sequential: bool = False,
    replace_affinity: bool = False,
) -> PlanView:
    """A validated plan of user-named moves; the moves that fail validation are in ``rejections`` and,
    when others remain, in the plan's warnings ("Migration #2 (db) failed validation: … Proceeding with
    remaining migrations.").

    An empty plan is returned when every VM is already on its target (nothing to do; the rejections say so).
    ``replace_affinity``: the user approved replacing the named VMs' own node pins (each move that
    does shows the pin old → new); without it a move its VM's own pin excludes fails validation,
    with the pin and the way to approve it in the warnings.

    Raises:
        ConfigError: the target node or a named VM does not exist (and nothing else is left to do).
        InfeasiblePlanError: no requested move passes validation (``blocking`` lists why).
    """
    for target in sorted({r.target for r in requests}):
        if state.node(target) is None:
            raise missing_node(state, target, role="target")
    named = {vm_ref(r.namespace, r.vm) for r in requests}
    approved = approve_replacing(state, named) if replace_affinity else state
    checked = check_manual_moves(approved, requests, sequential=sequential)
    rejections = checked.rejections
    refusals = () if replace_affinity else tuple(pin_refusals(state, [(r.namespace, r.vm, r.target) for r in requests]))
    if checked.plan.moves:
        texts = tuple(r.sentence() for r in rejections)
        plan = dataclasses.replace(checked.plan, warnings=texts + checked.plan.warnings + refusals)
        plan = with_affinity_changes(stamped(plan, state), state)
        return PlanView(plan=plan, limits=state.limits, rejections=rejections)
    kinds = {r.kind for r in rejections}
    if kinds == {RejectionKind.VM_NOT_FOUND}:
        require_vms(state, [(r.namespace, r.vm) for r in rejections])
    if not rejections or kinds == {RejectionKind.ALREADY_ON_TARGET}:
        return PlanView(plan=stamped(checked.plan, state), limits=state.limits, rejections=rejections)
    raise InfeasiblePlanError(
        "no requested move passes validation", blocking=[r.message for r in rejections] + list(refusals)
    )


def explain(state: ClusterState, plan: Plan, move_id: int) -> tuple[str, ...]:
    """Why move ``move_id``: why this VM, why this target, why live or cold.

    Raises:
        ConfigError: the plan has no such move (the message lists the ids it has).
    """
    try:
        return tuple(explain_move(state, plan, move_id))
    except KeyError:
        ids = ", ".join(str(m.id) for m in plan.moves) or "none"
        raise ConfigError(f"the plan has no move #{move_id}", hint=f"move ids: {ids}") from None


# ------------------------------------------------------------------------------ re-validation


@dataclass(frozen=True, slots=True, kw_only=True)
class Revalidation:
    """A plan checked against the cluster as it is now.

    The policy, the same for every front-end: moves that no longer validate are dropped, each
    with a warning saying why (``dropped_ids``); a VM that moved since the plan was made is
    flagged (``moved_ids``) and its move now starts where the VM is; what remains is ``plan``.
    When anything changed, the remaining plan is a different plan and needs its own approval: the
    CLI shows it with the flags and asks again (``--yes`` approves whatever still validates), the
    MCP server refuses to execute and returns it as a new plan with a new hash for the human.
    """

    plan: Plan
    """The moves that still validate (ids as in the original plan); its warnings say why others went."""
    dropped_ids: tuple[int, ...] = ()
    """The ids of the moves that no longer validate."""
    moved_ids: tuple[int, ...] = ()
    """The ids of moves whose VM is no longer on the node the plan moves it from."""

    @property
    def changed(self) -> bool:
        """Whether the cluster changed under the plan (a move dropped, or a VM moved meanwhile)."""
        return bool(self.dropped_ids or self.moved_ids)

    @property
    def warnings(self) -> tuple[str, ...]:
        """Why moves were dropped, and what else validation noticed."""
        return self.plan.warnings


def revalidate(
    state: ClusterState, plan: Plan, *, skip_ids: Iterable[int] = (), replace_affinity: bool = False
) -> Revalidation:
    """Re-validate a plan's moves against the cluster as it is now (the seeds' four validations + fit).

    The remaining moves keep their ids, goal and method; ``skip_ids`` are left out silently
    (already done in an earlier run) and are not re-validated. A move whose plan carries the
    user's approval to replace its VM's own pin (or every move, with ``replace_affinity``) is
    validated without that pin.
    """
    skip = set(skip_ids)
    kept = [m for m in plan.moves if m.id not in skip]
    requests = [ManualMoveRequest(m.namespace, m.vm, m.target, m.method.value) for m in kept]
    approved = {
        vm_ref(m.namespace, m.vm) for m in kept if replace_affinity or (m.affinity and m.affinity.replaces_user)
    }
    checked = check_manual_moves(
        approve_replacing(state, approved) if approved else state,
        requests,
        basis=plan.basis,
        sequential=plan.sequential,
    )
    checked = dataclasses.replace(checked, plan=with_affinity_changes(checked.plan, state))
    ids = {(m.namespace, m.vm): m.id for m in kept}
    # Requests are numbered from 1 in the order given: speak of the plan's own move ids.
    warnings = [r.sentence(kept[r.number - 1].id) for r in checked.rejections] + list(checked.plan.warnings)
    moves = tuple(dataclasses.replace(m, id=ids[(m.namespace, m.vm)]) for m in checked.plan.moves)
    validated = dataclasses.replace(
        checked.plan,
        goal=plan.goal,
        moves=moves,
        stays=plan.stays,
        sequential=plan.sequential,
        max_parallel=plan.max_parallel,
        headroom=plan.headroom,
        keep_order=plan.keep_order,
        cluster=plan.cluster,
    )
    remaining = {m.id for m in moves}
    dropped = tuple(m.id for m in kept if m.id not in remaining)
    planned = {m.id: m for m in kept}
    changes = [(m, why) for m in moves if (why := _changed_since(planned[m.id], m)) is not None]
    warnings += [f"Migration #{m.id} ({m.vm}): {why}" for m, why in changes]
    return Revalidation(
        plan=dataclasses.replace(validated, warnings=tuple(warnings)),
        dropped_ids=dropped,
        moved_ids=tuple(m.id for m, _ in changes),
    )


def _changed_since(planned: Move, now: Move) -> str | None:
    """How a move's VM changed since the plan was made (moved, stopped, started), or None."""
    if planned.running and now.running and planned.source != now.source:
        return (
            f"the VM moved since the plan was made (planned from {planned.source}, now on {now.source}); "
            f"it would move from {now.source}"
        )
    if planned.running and not now.running:
        return (
            f"the VM stopped since the plan was made (planned to move from {planned.source}); it would only be pinned"
        )
    if not planned.running and now.running:
        return f"the VM started since the plan was made (now on {now.source}); it would move {now.method.value}"
    return None
