"""Plan edits and manual moves, shared by the CLI (`apply --skip/--retarget`, `move`) and the MCP server.

Every edit returns a new plan recomputed the way a fresh one is: waves (capacity-safe in
every wave), after-state, metrics and warnings. Move ids stay stable across edits, so
several edits can name moves by the ids the user saw first.
"""

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import assert_never

from vm_rebalance.errors import ConfigError, InfeasiblePlanError
from vm_rebalance.model import (
    Basis,
    ClusterState,
    Goal,
    GoalType,
    MigrationMethod,
    Plan,
    Resources,
    Stay,
    StayKind,
    ViolationKind,
    VirtualMachine,
    vm_ref,
)
from vm_rebalance.planner.assemble import DraftMove, PlanOptions, assemble_plan, drafts_from_plan
from vm_rebalance.planner.eligibility import BlockerKind, fit_reasons, fit_violations, live_blocker_detail, move_method
from vm_rebalance.planner.propose import resolve_basis
from vm_rebalance.planner.waves import WaveError


class PlanEditError(InfeasiblePlanError):
    """An edit would break a hard constraint; the message names the move, VM, node and reason."""


@dataclass(frozen=True, slots=True)
class ManualMoveRequest:
    """One VM the user wants on a node, and how (auto: live when possible, else cold)."""

    namespace: str
    vm: str
    target: str
    method: str = "auto"

    def __post_init__(self) -> None:
        if self.method not in ("auto", "live", "cold"):
            raise ValueError(f"method must be auto, live or cold, not '{self.method}'")


def _kept_warnings(plan: Plan) -> list[str]:
    """The warnings that do not follow from the moves themselves (those are recomputed)."""
    return list(plan.warnings[: len(plan.warnings) - plan.derived_warnings])


def _drafts(state: ClusterState, plan: Plan) -> list[DraftMove]:
    try:
        return drafts_from_plan(state, plan)
    except KeyError as exc:
        raise ConfigError(
            f"VM {exc.args[0]} of the plan no longer exists in the cluster",
            hint="propose a new plan",
        ) from exc


def plan_options(plan: Plan, *, keep_order: bool = False) -> PlanOptions:
    """The assembly options ``plan`` was made with, for recomputing it after an edit.

    ``keep_order`` switches an explicit order on (a reorder); once on, it stays on.
    """
    return PlanOptions(
        headroom=plan.headroom,
        sequential=plan.sequential,
        max_parallel=plan.max_parallel,
        keep_order=plan.keep_order or keep_order,
    )


def _rebuild(
    state: ClusterState,
    plan: Plan,
    drafts: Sequence[DraftMove],
    stays: Sequence[Stay],
    *,
    blame: Callable[[DraftMove, WaveError], PlanEditError],
    keep_order: bool = False,
) -> Plan:
    """``plan`` recomputed with ``drafts`` and ``stays``; a move that no longer fits is explained by ``blame``."""
    try:
        return assemble_plan(
            state,
            goal=plan.goal,
            basis=plan.basis,
            moves=drafts,
            stays=stays,
            warnings=_kept_warnings(plan),
            options=plan_options(plan, keep_order=keep_order),
            renumber=False,
        )
    except WaveError as exc:
        raise blame(drafts[exc.index], exc) from exc


def _no_longer_fits(what: str) -> Callable[[DraftMove, WaveError], PlanEditError]:
    def blame(d: DraftMove, exc: WaveError) -> PlanEditError:
        return PlanEditError(
            f"{what}: move {d.id} ({d.vm.ref} → {d.target}) no longer fits: {exc}",
            blocking=[f"move {d.id}"],
            hint=f"skip move {d.id} too, or retarget it",
        )

    return blame


def _find(plan: Plan, move_id: int) -> int:
    if plan.move(move_id) is None:
        ids = ", ".join(str(m.id) for m in plan.moves) or "none"
        raise ConfigError(f"the plan has no move {move_id}", hint=f"move ids: {ids}")
    return move_id


def skip_move(state: ClusterState, plan: Plan, move_id: int) -> Plan:
    """The plan without move ``move_id``; its VM is listed as staying ("skipped").

    Raises:
        ConfigError: no such move, or a VM of the plan is gone.
        PlanEditError: a later move needed the room the skipped move would have freed.
    """
    _find(plan, move_id)
    drafts = [d for d in _drafts(state, plan) if d.id != move_id]
    skipped = plan.move(move_id)
    assert skipped is not None
    stays = [
        *plan.stays,
        Stay(
            vm=skipped.vm,
            namespace=skipped.namespace,
            node=skipped.source or None,
            reason=f"move {move_id} skipped by the user",
            kind=StayKind.SKIPPED,
            instance_type=skipped.instance_type,
        ),
    ]
    return _rebuild(state, plan, drafts, stays, blame=_no_longer_fits(f"skipping move {move_id}"))


def retarget_move(state: ClusterState, plan: Plan, move_id: int, node: str) -> Plan:
    """The plan with move ``move_id`` going to ``node`` instead, re-validated with the eligibility rules.

    Raises:
        ConfigError: no such move or node.
        PlanEditError: the VM cannot go to ``node`` (the message says why).
    """
    _find(plan, move_id)
    target = state.node(node)
    if target is None:
        raise ConfigError(f"node '{node}' does not exist", hint="run `vm-rebalance inventory` to list the nodes")
    drafts = _drafts(state, plan)
    index = next(k for k, d in enumerate(drafts) if d.id == move_id)
    d = drafts[index]
    if d.source == node:
        raise PlanEditError(f"move {move_id}: {d.vm.ref} is already on {node}; skip the move instead")
    reasons = [v.message for v in fit_violations(d.vm, target, state) if v.kind is not ViolationKind.CAPACITY]
    if reasons:
        raise PlanEditError(
            f"move {move_id}: {d.vm.ref} cannot go to {node}: {'; '.join(reasons)}",
            blocking=reasons,
            hint="choose another node",
        )
    drafts[index] = DraftMove(vm=d.vm, source=d.source, target=node, method=d.method, id=d.id)

    def blame(bad: DraftMove, exc: WaveError) -> PlanEditError:
        who = (
            f"{d.vm.ref} cannot go to {node}"
            if bad.id == move_id
            else f"then move {bad.id} ({bad.vm.ref} → {bad.target}) no longer fits"
        )
        return PlanEditError(f"move {move_id}: {who}: {exc}", blocking=list(exc.reasons), hint="choose another node")

    return _rebuild(state, plan, drafts, plan.stays, blame=blame)


def reorder_moves(state: ClusterState, plan: Plan, order: Sequence[int]) -> Plan:
    """The plan executed in ``order`` (move ids first, the others after them in their current order).

    Waves follow the order: a move never runs in an earlier wave than one listed before it.

    Raises:
        ConfigError: unknown or repeated ids.
        PlanEditError: the order would need a target before the room it needs is freed.
    """
    if len(set(order)) != len(order):
        raise ConfigError("a move id appears twice in the new order")
    for move_id in order:
        _find(plan, move_id)
    drafts = _drafts(state, plan)
    by_id = {d.id: d for d in drafts}
    rest = [d for d in drafts if d.id not in set(order)]
    new = [by_id[i] for i in order] + rest
    return _rebuild(state, plan, new, plan.stays, blame=_no_longer_fits("the new order"), keep_order=True)


class RejectionKind(StrEnum):
    """Why a named move failed validation (what the service decides on; the message is for people)."""

    VM_NOT_FOUND = "vm-not-found"
    DUPLICATE = "duplicate"
    ALREADY_ON_TARGET = "already-on-target"
    ALREADY_MIGRATING = "already-migrating"
    NOT_LIVE_MIGRATABLE = "not-live-migratable"
    TARGET_NOT_FOUND = "target-not-found"
    TARGET_NOT_READY = "target-not-ready"
    TARGET_CORDONED = "target-cordoned"
    DOES_NOT_FIT = "does-not-fit"


@dataclass(frozen=True, slots=True, kw_only=True)
class Rejection:
    """A named move left out at validation: which request (numbered from 1), why, in words."""

    number: int
    namespace: str
    vm: str
    target: str
    kind: RejectionKind
    message: str

    def sentence(self, move_id: int | None = None) -> str:
        """The seeds' wording: "Migration #N (vm) failed validation: … Proceeding with remaining migrations."."""
        number = self.number if move_id is None else move_id
        return (
            f"Migration #{number} ({self.vm}) failed validation: {self.message} Proceeding with remaining migrations."
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ManualPlan:
    """Named moves validated: the plan of those that pass (its warnings without the rejections), and why the
    others were left out."""

    plan: Plan
    rejections: tuple[Rejection, ...] = ()


def _live_refusal(vm: VirtualMachine) -> tuple[RejectionKind, str] | None:
    blocker = live_blocker_detail(vm)
    if blocker is None:
        return None
    match blocker.kind:
        case BlockerKind.STOPPED:
            message = "Cannot perform live migration. VM is not running. Use cold migration or start VM first."
        case BlockerKind.RWO:
            message = (
                "Cannot perform live migration. VM uses ReadWriteOnce (RWO) storage. "
                "Use cold migration instead (brief downtime ~30-60s)."
            )
        case BlockerKind.MIGRATING | BlockerKind.NOT_MIGRATABLE:
            message = f"Cannot perform live migration: {blocker.message}."
        case unreachable:
            assert_never(unreachable)
    return RejectionKind.NOT_LIVE_MIGRATABLE, message


def _target_refusal(
    vm: VirtualMachine,
    name: str,
    state: ClusterState,
    extra: Resources,
    residents: list[tuple[str, VirtualMachine]],
    node_labels: Mapping[str, Mapping[str, str]] | None = None,
) -> tuple[RejectionKind, str] | None:
    node = state.node(name)
    if node is None:
        return RejectionKind.TARGET_NOT_FOUND, f"Target node '{name}' does not exist."
    if not node.ready:
        return RejectionKind.TARGET_NOT_READY, f"Target node '{name}' is not Ready. Choose different target."
    if node.unschedulable:
        return (
            RejectionKind.TARGET_CORDONED,
            f"Target node '{name}' is cordoned (SchedulingDisabled). Choose different target or uncordon node.",
        )
    reasons = fit_reasons(vm, node, state, extra_requested=extra, residents=residents, node_labels=node_labels)
    return (RejectionKind.DOES_NOT_FIT, f"cannot run on {name}: {'; '.join(reasons)}") if reasons else None


def _request_refusal(
    vm: VirtualMachine | None,
    req: ManualMoveRequest,
    seen: set[str],
    state: ClusterState,
    extra: Resources,
    residents: list[tuple[str, VirtualMachine]],
    node_labels: Mapping[str, Mapping[str, str]] | None = None,
) -> tuple[RejectionKind, str] | None:
    """The seeds' validations of one named move, in their order (None: it passes)."""
    if vm is None:
        return (
            RejectionKind.VM_NOT_FOUND,
            f"VM '{req.vm}' does not exist in namespace '{req.namespace}'. "
            "Use `vm-rebalance inventory` to see available VMs.",
        )
    if vm.ref in seen:
        return RejectionKind.DUPLICATE, f"VM '{req.vm}' is already in this plan."
    if vm.running and vm.node == req.target:
        return RejectionKind.ALREADY_ON_TARGET, f"VM '{req.vm}' is already on '{req.target}'. No migration needed."
    if vm.migrating:
        return RejectionKind.ALREADY_MIGRATING, f"VM '{req.vm}' is already migrating."
    if req.method == "live":
        refusal = _live_refusal(vm)
        if refusal is not None:
            return refusal
    return _target_refusal(vm, req.target, state, extra, residents, node_labels)


def plan_manual_moves(
    state: ClusterState,
    requests: Sequence[ManualMoveRequest | tuple[str, str, str, str]],
    *,
    basis: Basis | None = None,
    sequential: bool = False,
) -> Plan:
    """A plan of user-named moves (goal ``manual``), validated as the seeds require; the moves that fail
    are left out and explained in the plan's warnings ("Migration #2 (db-01) failed validation: …").
    ``check_manual_moves`` gives the same with the rejections typed."""
    checked = check_manual_moves(state, requests, basis=basis, sequential=sequential)
    texts = tuple(r.sentence() for r in checked.rejections)
    return dataclasses.replace(checked.plan, warnings=texts + checked.plan.warnings)


def check_manual_moves(
    state: ClusterState,
    requests: Sequence[ManualMoveRequest | tuple[str, str, str, str]],
    *,
    basis: Basis | None = None,
    sequential: bool = False,
) -> ManualPlan:
    """Named moves validated as the seeds require: the plan of those that pass, and the rejections.

    Each request is checked in turn (VM exists, not already on the target, storage allows the
    method, target exists / Ready / not cordoned, then every `fit_reasons` rule given the
    requests accepted before it); the caller decides whether an empty or shortened plan is fatal.
    """
    warnings: list[str] = []
    chosen_basis = resolve_basis(state, basis, warnings)
    drafts: list[DraftMove] = []
    rejections: list[Rejection] = []
    extra: dict[str, Resources] = {}
    residents = {v.ref: (str(v.node), v) for v in state.vms if v.running and v.node}
    # A VM without pod (anti-)affinity or topology spread of its own is only checked against the
    # residents whose anti-affinity could repel it: passing just those keeps N moves linear.
    holders = {ref: pair for ref, pair in residents.items() if pair[1].placement.pod_anti_affinity}
    node_labels = {n.name: n.labels for n in state.nodes}
    seen: set[str] = set()
    for number, raw in enumerate(requests, start=1):
        req = raw if isinstance(raw, ManualMoveRequest) else ManualMoveRequest(*raw)
        vm = state.vm(req.namespace, req.vm)
        # A VM without pod (anti-)affinity or topology spread of its own is checked only against the
        # residents whose anti-affinity could repel it.
        own_terms = vm is not None and (
            vm.placement.pod_anti_affinity or vm.placement.pod_affinity or vm.placement.topology_spread
        )
        candidates = list((residents if own_terms else holders).values())
        refusal = _request_refusal(vm, req, seen, state, extra.get(req.target, Resources()), candidates, node_labels)
        if refusal is not None or vm is None:
            kind, message = refusal or (RejectionKind.VM_NOT_FOUND, f"VM '{req.vm}' does not exist.")
            rejections.append(
                Rejection(
                    number=number, namespace=req.namespace, vm=req.vm, target=req.target, kind=kind, message=message
                )
            )
            continue
        seen.add(vm.ref)
        if vm.do_not_move:
            warnings.append(f"{vm.ref} is annotated do-not-move; it is in the plan because it was named explicitly")
        method = (
            MigrationMethod.LIVE
            if req.method == "live"
            else move_method(vm)
            if req.method == "auto"
            else MigrationMethod.COLD
        )
        source = vm.node if vm.running and vm.node else ""
        drafts.append(DraftMove(vm=vm, source=source, target=req.target, method=method))
        extra[req.target] = extra.get(req.target, Resources()) + vm.requests
        if source:
            extra[source] = extra.get(source, Resources()) - vm.requests
        residents[vm_ref(vm.namespace, vm.name)] = (req.target, vm)
        if vm.placement.pod_anti_affinity:
            holders[vm_ref(vm.namespace, vm.name)] = (req.target, vm)
    try:
        plan = assemble_plan(
            state,
            goal=Goal(type=GoalType.MANUAL),
            basis=chosen_basis,
            moves=drafts,
            warnings=warnings,
            options=PlanOptions(sequential=sequential),
        )
    except WaveError as exc:
        d = drafts[exc.index]
        raise InfeasiblePlanError(f"{d.vm.ref} → {d.target}: {exc}") from exc
    return ManualPlan(plan=plan, rejections=tuple(rejections))
