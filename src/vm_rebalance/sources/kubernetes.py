"""A ClusterState read from a live cluster through the Kubernetes API, with a usage source laid over it."""

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

from vm_rebalance.errors import ClusterError, ClusterForbiddenError, ResourceNotFoundError
from vm_rebalance.kube import resources as r
from vm_rebalance.kube.client import KubeClient
from vm_rebalance.kube.convert import state_from_objects
from vm_rebalance.kube.kubevirt import KubeVirtApi
from vm_rebalance.model import ClusterState
from vm_rebalance.sources.usage import MetricsServerUsage, UsageSource

log = logging.getLogger(__name__)

# Read in this order; the first group is required, the rest degrade with a note.
REQUIRED = (r.NODES, r.PODS, r.VMS, r.VMIS)
OPTIONAL = (
    (r.PVCS, "PersistentVolumeClaims"),
    (r.DATAVOLUMES, "DataVolumes"),
    (r.VMIMS, "migrations"),
    (r.KUBEVIRTS, "the KubeVirt CR (migration limits: defaults 5 / 2 assumed)"),
    (r.CLUSTER_INSTANCETYPES, "cluster instance types (u1 series sizes assumed)"),
    (r.INSTANCETYPES, "namespaced instance types"),
)

Progress = Callable[[str], None]


class KubernetesSource:
    """Reads nodes, pods, storage and KubeVirt objects cluster-wide; usage comes from ``usage``.

    ``usage`` defaults to metrics.k8s.io (`MetricsServerUsage`); inject another `UsageSource`
    (e.g. Prometheus) to measure usage differently.
    """

    def __init__(
        self, client: KubeClient, *, progress: Progress | None = None, usage: UsageSource | None = None
    ) -> None:
        self._client = client
        self._progress = progress or (lambda _msg: None)
        self._usage = usage if usage is not None else MetricsServerUsage(client, progress=progress)
        self._objects: list[dict[str, Any]] | None = None
        self._raw: list[dict[str, Any]] | None = None
        self._notes: list[str] = []

    def inventory_objects(self) -> list[dict[str, Any]]:
        """The inventory the state is built from (read once): everything but usage.

        Raises:
            ClusterError: the API server is unreachable or a required list is forbidden.
        """
        if self._objects is not None:
            return self._objects
        objects: list[dict[str, Any]] = []
        for res in REQUIRED:
            self._progress(f"reading {res.qualified}")
            objects.extend(self._client.list(res))
        for res, label in OPTIONAL:
            self._progress(f"reading {res.qualified}")
            try:
                objects.extend(self._client.list(res))
            except ResourceNotFoundError:
                if res is not r.INSTANCETYPES:
                    self._notes.append(f"{label}: not served by this cluster")
            except ClusterForbiddenError as exc:
                self._notes.append(f"{label}: not readable ({exc})")
        self._objects = objects
        return objects

    def raw_objects(self) -> list[dict[str, Any]]:
        """Every object a snapshot keeps: the inventory and the usage source's objects.

        Raises:
            ClusterError: the API server is unreachable or a required list is forbidden.
        """
        if self._raw is None:
            self._raw = [*self.inventory_objects(), *self._usage.snapshot_objects()]
        return self._raw

    def read(self) -> ClusterState:
        """The cluster's state now.

        Raises:
            ClusterError: the cluster cannot be read. ConfigError: an object is malformed.
        """
        objects = self.inventory_objects()
        state = state_from_objects(objects, source="cluster", notes=self._notes, usage=self._usage.read_usage())
        return dataclasses.replace(state, identity=KubeVirtApi(self._client).cluster_identity())


__all__ = ["ClusterError", "KubernetesSource"]
