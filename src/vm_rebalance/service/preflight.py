"""Permission preflight: before any approval question, check that the identity may do every step.

The seeds: check permissions before executing and name what is missing. Each use case lists the
verbs its plan needs, per namespace (a live move creates a migration in the VM's namespace; a cold
move patches the VM and stops/starts it; a drain also cordons the node); one SelfSubjectAccessReview
each answers, and a refusal lists exactly what is missing, before anything changes.
"""

from collections.abc import Iterable, Sequence

from vm_rebalance.errors import ClusterForbiddenError
from vm_rebalance.kube.access import Permission, denied
from vm_rebalance.model import MigrationMethod, Plan
from vm_rebalance.model.execution import Action
from vm_rebalance.service.session import Session, Target, open_client

KUBEVIRT = "kubevirt.io"
SUBRESOURCES = "subresources.kubevirt.io"


def _vm_reads(namespace: str) -> list[Permission]:
    return [
        Permission("get", KUBEVIRT, "virtualmachines", namespace=namespace),
        Permission("get", KUBEVIRT, "virtualmachineinstances", namespace=namespace),
    ]


def plan_permissions(plan: Plan, *, cordon: str | None = None) -> list[Permission]:
    """What executing ``plan`` needs (and cordoning ``cordon`` first, for a drain)."""
    needed: list[Permission] = []
    for move in plan.moves:
        ns = move.namespace
        needed += _vm_reads(ns)
        if move.method is MigrationMethod.LIVE:
            needed += [
                Permission("create", KUBEVIRT, "virtualmachineinstancemigrations", namespace=ns),
                Permission("get", KUBEVIRT, "virtualmachineinstancemigrations", namespace=ns),
                Permission("delete", KUBEVIRT, "virtualmachineinstancemigrations", namespace=ns),
            ]
        else:
            needed.append(Permission("patch", KUBEVIRT, "virtualmachines", namespace=ns))
            if move.running:
                needed += [
                    Permission("update", SUBRESOURCES, "virtualmachines", "stop", namespace=ns),
                    Permission("update", SUBRESOURCES, "virtualmachines", "start", namespace=ns),
                ]
    if cordon is not None:
        needed.append(Permission("patch", "", "nodes"))
    return needed


def lifecycle_permissions(action: Action, refs: Sequence[tuple[str, str]]) -> list[Permission]:
    """What a start / stop / restart of ``refs`` needs."""
    needed: list[Permission] = []
    steps = {Action.START: ("start",), Action.STOP: ("stop",), Action.RESTART: ("stop", "start")}[action]
    for ns, _ in refs:
        needed += _vm_reads(ns)
        needed += [Permission("update", SUBRESOURCES, "virtualmachines", step, namespace=ns) for step in steps]
    return needed


def unpin_permissions(namespace: str) -> list[Permission]:
    """What removing a node pin needs."""
    return [
        Permission("get", KUBEVIRT, "virtualmachines", namespace=namespace),
        Permission("patch", KUBEVIRT, "virtualmachines", namespace=namespace),
    ]


def require_permissions(where: Session | Target, permissions: Iterable[Permission], *, what: str) -> None:
    """Refuse, naming every missing permission, unless the identity may do all of ``permissions``.

    ``where`` is an open session, or a target to ask through a connection of its own.

    Raises:
        ClusterForbiddenError: something is missing (exit code 3); nothing was changed.
    """
    if isinstance(where, Session):
        missing = denied(where.client, permissions)
    else:
        with open_client(where) as client:
            missing = denied(client, permissions)
    if missing:
        raise ClusterForbiddenError(
            f"{what} needs permissions this identity lacks; nothing was changed: " + "; ".join(str(p) for p in missing),
            hint="ask a cluster administrator to grant them (README: RBAC), or run with another --context",
        )
