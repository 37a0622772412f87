"""Which cluster a plan or an execution belongs to.

A cluster's identity is the uid of its ``kube-system`` namespace (every cluster has one, it
never changes, and a kubeconfig context or a server URL says nothing about what is behind it).
Plans carry it (the optional plan-file key ``cluster``), journals record it, and `apply`,
`resume` and the MCP server refuse a plan or a journal made for another cluster — a resume
against the wrong context must not "succeed" by reading someone else's VMs.
"""

import dataclasses

from vm_rebalance.errors import ConfigError
from vm_rebalance.model import ClusterState, Plan


def stamped(plan: Plan, state: ClusterState) -> Plan:
    """The plan marked with the identity of the cluster it was made from (unchanged when unknown)."""
    if state.identity is None or plan.cluster == state.identity:
        return plan
    return dataclasses.replace(plan, cluster=state.identity)


def require_same_cluster(made_for: str | None, here: str | None, *, what: str) -> None:
    """Refuse ``what`` (a plan, an execution) made for another cluster than the one connected to.

    Nothing is refused when either identity is unknown (a plan made offline from a snapshot, or
    a cluster whose kube-system namespace cannot be read).

    Raises:
        ConfigError: the identities differ (exit code 2: the input does not belong here).
    """
    if made_for is None or here is None or made_for == here:
        return
    raise ConfigError(
        f"{what} was made for another cluster (kube-system uid {made_for[:8]}…); this one is {here[:8]}… — "
        "nothing was changed",
        hint="check --context / KUBECONFIG, or plan again against this cluster",
    )
