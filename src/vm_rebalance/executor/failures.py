"""Which `FailureKind` a cluster error means for a move: decided on error types and rejection kinds."""

from typing import assert_never

from vm_rebalance.errors import ClusterError, ClusterForbiddenError, ClusterUnreachableError, ResourceNotFoundError
from vm_rebalance.kube.errors import ApiRejectedError, Rejection
from vm_rebalance.model.execution import FailureKind


def failure_for_rejection(kind: Rejection) -> FailureKind:
    """The failure a refused request means for the move that sent it."""
    match kind:
        case (
            Rejection.OPTIMISTIC_LOCK
            | Rejection.GUARD_FAILED
            | Rejection.APPLY_CONFLICT
            | Rejection.CONFLICT
            | Rejection.LIFECYCLE_UNDERWAY
            | Rejection.ALREADY_RUNNING
        ):
            return FailureKind.CONFLICT
        case Rejection.NOT_MIGRATABLE:
            return FailureKind.NOT_LIVE_MIGRATABLE
        case Rejection.MIGRATION_IN_FLIGHT:
            return FailureKind.MIGRATION_IN_FLIGHT
        case Rejection.VMI_NOT_FOUND | Rejection.VMI_FINAL | Rejection.NOT_RUNNING:
            return FailureKind.VM_NOT_RUNNING
        case Rejection.RUN_STRATEGY:
            return FailureKind.RUN_STRATEGY
        case Rejection.WEBHOOK_DENIED | Rejection.INVALID | Rejection.BAD_REQUEST | Rejection.ALREADY_EXISTS:
            return FailureKind.ADMISSION_DENIED
        case _:
            assert_never(kind)


def failure_of(exc: ClusterError) -> FailureKind:
    """The failure a cluster error means for a move (a 404 during a move: its VM is gone)."""
    if isinstance(exc, ApiRejectedError):
        return failure_for_rejection(exc.kind)
    if isinstance(exc, ClusterForbiddenError):
        return FailureKind.FORBIDDEN
    if isinstance(exc, ResourceNotFoundError):
        return FailureKind.VM_NOT_FOUND
    if isinstance(exc, ClusterUnreachableError):
        return FailureKind.CLUSTER_UNAVAILABLE
    return FailureKind.API_ERROR


def rejection_text(exc: ClusterError) -> str:
    """KubeVirt's own words for a refusal (the webhook's wrapping removed); other errors as they are."""
    return exc.detail if isinstance(exc, ApiRejectedError) and exc.detail else str(exc)
