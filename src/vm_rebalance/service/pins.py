"""Pins as first-class state in planning: whose pin a move changes, and the user's approval.

A VM can be pinned to nodes (a required ``kubernetes.io/hostname In [...]`` node affinity) by
vm-rebalance (an earlier cold move; annotated as its own) or by the user. vm-rebalance's pin is
the tool's to change: the cluster reading leaves it out of the VM's placement rules
(`VirtualMachine.pinned_to`), so a later move or drain simply re-pins the VM, and the plan shows
the change. The user's pin is a rule: a move it excludes is refused at validation with the pin
shown old → new and the way to approve it (``--replace-affinity``); with that approval the pin
is left out for validation and every move that replaces it carries an `AffinityChange`, so the
executor replaces exactly what was approved — nothing is asked mid-execution.
"""

import dataclasses
from collections.abc import Collection

from vm_rebalance.model import AffinityChange, ClusterState, NodeSelectorTerm, PinOwnerKind, Plan, VirtualMachine
from vm_rebalance.model.cluster import HOSTNAME_LABEL, VmRef


def user_pin_nodes(vm: VirtualMachine) -> tuple[str, ...]:
    """The nodes the VM's own hostname pins name (empty: it has none)."""
    nodes: list[str] = []
    for term in vm.placement.required_node_terms:
        for req in term.match_expressions:
            if req.key == HOSTNAME_LABEL and req.operator == "In":
                nodes += [v for v in req.values if v not in nodes]
    return tuple(nodes)


def user_pin_allows(vm: VirtualMachine, node: str) -> bool:
    """Whether the VM's own hostname pins let it run on ``node`` (no such pin: yes)."""
    terms = vm.placement.required_node_terms
    if not user_pin_nodes(vm):
        return True
    for term in terms:
        pins = [r for r in term.match_expressions if r.key == HOSTNAME_LABEL and r.operator == "In"]
        if all(node in r.values for r in pins):
            return True
    return False


def _without_user_pins(vm: VirtualMachine) -> VirtualMachine:
    terms = []
    for term in vm.placement.required_node_terms:
        kept = tuple(r for r in term.match_expressions if not (r.key == HOSTNAME_LABEL and r.operator == "In"))
        if kept or term.match_fields:
            terms.append(NodeSelectorTerm(match_expressions=kept, match_fields=term.match_fields))
    return dataclasses.replace(vm, placement=dataclasses.replace(vm.placement, required_node_terms=tuple(terms)))


def approve_replacing(state: ClusterState, refs: Collection[VmRef] | None = None) -> ClusterState:
    """The state as validation sees it once the user approved replacing pins: those VMs' own hostname pins left out.

    ``refs`` are the VMs concerned (None: every VM). Other rules (zones, labels, taints) stay.
    """
    vms = tuple(
        _without_user_pins(v) if (refs is None or v.ref in refs) and user_pin_nodes(v) else v for v in state.vms
    )
    return dataclasses.replace(state, vms=vms)


def with_affinity_changes(plan: Plan, state: ClusterState) -> Plan:
    """The plan with every move that changes a pin saying so (old → new), from the state as read."""
    moves = []
    changed = False
    for m in plan.moves:
        vm = state.vm(m.namespace, m.vm)
        change: AffinityChange | None = None
        if vm is not None:
            user = user_pin_nodes(vm)
            if user and not user_pin_allows(vm, m.target):
                change = AffinityChange(owner=PinOwnerKind.USER, before=user, after=(m.target,))
            elif vm.pinned_to and vm.pinned_to != m.target:
                change = AffinityChange(owner=PinOwnerKind.VM_REBALANCE, before=(vm.pinned_to,), after=(m.target,))
        if change != m.affinity:
            changed = True
        moves.append(dataclasses.replace(m, affinity=change))
    if not changed:
        return plan
    notes = [
        f"Migration #{m.id} ({m.vm}) replaces {m.affinity.describe()}"
        + (" — you approved it (--replace-affinity)" if m.affinity.replaces_user else "")
        for m in moves
        if m.affinity is not None
    ]
    warnings = tuple(w for w in plan.warnings if not w.startswith("Migration #") or " replaces " not in w)
    return dataclasses.replace(plan, moves=tuple(moves), warnings=(*warnings, *notes))


def pin_refusals(state: ClusterState, requests: Collection[tuple[str, str, str]]) -> list[str]:
    """For (namespace, vm, target) requests a user pin excludes: the pin old → new and how to approve it."""
    out = []
    for namespace, name, target in requests:
        vm = state.vm(namespace, name)
        if vm is None or user_pin_allows(vm, target):
            continue
        old = ", ".join(user_pin_nodes(vm))
        out.append(
            f"{vm.ref} has its own node affinity kubernetes.io/hostname In [{old}], which excludes {target}: "
            f"replacing it (In [{old}] → In [{target}]) needs your approval — add --replace-affinity"
        )
    return out


def scheduler_targets(state: ClusterState, refs: Collection[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """Where the scheduler is expected to place each VM of a live move given no target (seed 002: "scheduler decides").

    The expectation follows kube-scheduler's default scoring (least allocated) among the nodes every
    placement rule allows; the migration itself carries no node selector.

    Raises:
        ConfigError: a VM does not exist, cannot move live (a cold move needs a target), or is pinned.
        InfeasiblePlanError: no other node can take it now.
    """
    from vm_rebalance.errors import ConfigError, InfeasiblePlanError
    from vm_rebalance.planner.eligibility import fit_reasons, move_method

    out: dict[tuple[str, str], str] = {}
    for namespace, name in refs:
        vm = state.vm(namespace, name)
        if vm is None:
            raise ConfigError(f"VM '{name}' does not exist in namespace '{namespace}'")
        if not vm.running or move_method(vm).value != "live":
            raise ConfigError(
                f"{vm.ref} cannot move live, and a cold move needs a target node",
                hint=f"give --to NODE (or {vm.ref}=NODE)",
            )
        if vm.pinned_to or user_pin_nodes(vm):
            raise ConfigError(f"{vm.ref} is pinned to a node: the scheduler cannot choose", hint="give --to NODE")
        fits = [n for n in state.nodes if n.name != vm.node and not list(fit_reasons(vm, n, state))]
        if not fits:
            raise InfeasiblePlanError(f"no other node can take {vm.ref} now")
        best = min(fits, key=lambda n: (n.requested.cpu_millicores / max(1, n.allocatable.cpu_millicores), n.name))
        out[(namespace, name)] = best.name
    return out


def scheduler_chooses(plan: Plan, refs: Collection[tuple[str, str]]) -> Plan:
    """The plan with the moves of ``refs`` marked as the scheduler's choice (no node selector)."""
    wanted = set(refs)
    moves = tuple(
        dataclasses.replace(
            m,
            scheduler_chooses=True,
            reason=(m.reason + "; " if m.reason else "")
            + f"no target given: the scheduler decides (expected {m.target}, the eligible node with the most room)",
        )
        if (m.namespace, m.vm) in wanted
        else m
        for m in plan.moves
    )
    return dataclasses.replace(plan, moves=moves)
