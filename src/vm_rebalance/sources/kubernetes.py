"""A ClusterState read from a live cluster through the Kubernetes API."""

import logging
from collections.abc import Callable
from typing import Any

from vm_rebalance.errors import ClusterError, ClusterForbiddenError, ResourceNotFoundError
from vm_rebalance.kube import resources as r
from vm_rebalance.kube.client import KubeClient
from vm_rebalance.kube.convert import state_from_objects
from vm_rebalance.model import ClusterState

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
    (r.NODE_METRICS, "node metrics"),
    (r.POD_METRICS, "pod metrics"),
)

Progress = Callable[[str], None]


class KubernetesSource:
    """Reads nodes, pods, storage, KubeVirt objects and metrics, cluster-wide."""

    def __init__(self, client: KubeClient, *, progress: Progress | None = None) -> None:
        self._client = client
        self._progress = progress or (lambda _msg: None)
        self._objects: list[dict[str, Any]] | None = None
        self._notes: list[str] = []

    def raw_objects(self) -> list[dict[str, Any]]:
        """Every object the state is built from (read once).

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
                if res in (r.NODE_METRICS, r.POD_METRICS):
                    self._note_once("metrics.k8s.io is not served (no metrics-server): utilisation is by requests")
                elif res is not r.INSTANCETYPES:
                    self._notes.append(f"{label}: not served by this cluster")
            except ClusterForbiddenError as exc:
                self._notes.append(f"{label}: not readable ({exc})")
            except ClusterError as exc:
                if res in (r.NODE_METRICS, r.POD_METRICS) and exc.status in (500, 503):
                    self._note_once(
                        "metrics.k8s.io is unavailable (metrics-server not ready): utilisation is by requests"
                    )
                else:
                    raise
        self._objects = objects
        return objects

    def _note_once(self, note: str) -> None:
        if note not in self._notes:
            self._notes.append(note)

    def read(self) -> ClusterState:
        """The cluster's state now."""
        objects = self.raw_objects()
        return state_from_objects(objects, source="cluster", notes=self._notes)
