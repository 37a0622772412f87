"""Planning use cases: propose a plan for a goal, plan named moves or a drain, explain a move,
and re-validate a saved or approved plan against the cluster as it is now.

Every front-end gets the same ``PlanView`` (the plan, the cluster's limits and the alternatives
worth offering) and the same validation policy (``revalidate``).
"""

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from vm_rebalance.errors import ConfigError, InfeasiblePlanError, RebalanceError
from vm_rebalance.model import ClusterState, Goal, GoalType, MigrationLimits, Plan, plan_to_document
from vm_rebalance.model.cluster import vm_ref
from vm_rebalance.planner import ManualMoveRequest, PlanRequest, plan_manual_moves, propose_plan
from vm_rebalance.planner.alternatives import suggest_alternatives
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
    request = spec.to_request()
    result = propose(state, request)
    return PlanView(plan=result, limits=state.limits, alternatives=suggest_alternatives(state, request, result))


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
    plan = with_affinity_changes(propose(checked, request), state)
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
    return PlanView(plan=plan, limits=state.limits)


def plan_moves(
    state: ClusterState,
    requests: Sequence[ManualMoveRequest],
    *,
    sequential: bool = False,
    replace_affinity: bool = False,
) -> PlanView:
    """A validated plan of user-named moves; failed validations are in the plan's warnings.

    An empty plan is returned when every VM is already on its target (nothing to do).
    ``replace_affinity``: the user approved replacing the named VMs' own node pins (each move that
    does shows the pin old → new); without it a move its VM's own pin excludes fails validation,
    with the pin and the way to approve it in the warnings.

    Raises:
        ConfigError: the target node does not exist, or none of the named VMs can be found.
        InfeasiblePlanError: no requested move passes validation (``blocking`` lists why).
    """
    for target in sorted({r.target for r in requests}):
        if state.node(target) is None:
            raise missing_node(state, target, role="target")
    missing = [(r.namespace, r.vm) for r in requests if state.vm(r.namespace, r.vm) is None]
    if missing and len(missing) == len(requests):
        require_vms(state, missing)
    named = {vm_ref(r.namespace, r.vm) for r in requests}
    checked = approve_replacing(state, named) if replace_affinity else state
    result = with_affinity_changes(stamped(plan_manual_moves(checked, requests, sequential=sequential), state), state)
    refusals = [] if replace_affinity else pin_refusals(state, [(r.namespace, r.vm, r.target) for r in requests])
    if refusals:
        result = dataclasses.replace(result, warnings=(*result.warnings, *refusals))
    view = PlanView(plan=result, limits=state.limits)
    if result.moves or not requests:
        return view
    # Only the per-request validation warnings say why nothing is left (others describe the after-state).
    failed = [w for w in result.warnings if "failed validation" in w] or list(result.warnings)
    failed += refusals
    if all("does not exist" in w for w in failed):
        raise ConfigError("none of the named VMs can be found", hint="list VMs with: vm-rebalance inventory")
    if all("already on" in w for w in failed):
        return view
    raise InfeasiblePlanError("no requested move passes validation", blocking=failed)


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
    with a warning saying why (``dropped``); what remains is ``plan``. When anything was dropped,
    the remaining plan is a different plan and needs its own approval: the CLI shows it and asks
    again (``--yes`` approves whatever still validates), the MCP server refuses to execute and
    returns it as a new plan with a new hash for the human to approve.
    """

    plan: Plan
    """The moves that still validate (ids as in the original plan); its warnings say why others went."""
    dropped_ids: tuple[int, ...] = ()
    """The ids of the moves that no longer validate."""

    @property
    def changed(self) -> bool:
        """Whether the cluster changed under the plan (some move was dropped)."""
        return bool(self.dropped_ids)

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
    checked = with_affinity_changes(
        plan_manual_moves(
            approve_replacing(state, approved) if approved else state,
            requests,
            basis=plan.basis,
            sequential=plan.sequential,
        ),
        state,
    )
    ids = {(m.namespace, m.vm): m.id for m in kept}
    by_number = {i + 1: m for i, m in enumerate(kept)}
    warnings = []
    for w in checked.warnings:
        # plan_manual_moves numbers requests from 1; speak of the plan's own move ids.
        for number, move in by_number.items():
            prefix = f"Migration #{number} ({move.vm})"
            if w.startswith(prefix):
                w = f"Migration #{move.id} ({move.vm})" + w[len(prefix) :]
                break
        warnings.append(w)
    moves = tuple(dataclasses.replace(m, id=ids[(m.namespace, m.vm)]) for m in checked.moves)
    validated = dataclasses.replace(
        checked,
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
    return Revalidation(plan=dataclasses.replace(validated, warnings=tuple(warnings)), dropped_ids=dropped)
