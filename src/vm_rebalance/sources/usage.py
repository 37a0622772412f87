"""The usage-source port: what nodes and VMs use, measured by something other than the inventory.

A `ClusterSource` reads the inventory (nodes, VMs, pods, storage, KubeVirt objects); a
`UsageSource` is laid over it (kube/convert.py `state_from_objects(usage=…)`). Today that is
metrics.k8s.io's instant usage (`MetricsServerUsage`); a Prometheus / Thanos source
(time-averaged usage, PSI) or the kubelet's stats summary is another implementation of the same
two methods, injected into `KubernetesSource` — nothing else changes.
"""

from collections.abc import Callable
from typing import Any, Protocol

from vm_rebalance.errors import ClusterError, ClusterForbiddenError, ResourceNotFoundError
from vm_rebalance.kube import resources as r
from vm_rebalance.kube.client import KubeClient
from vm_rebalance.kube.convert import usage_from_metrics
from vm_rebalance.model.usage import UsageSample

Progress = Callable[[str], None]


class UsageSource(Protocol):
    """Measures what nodes and VMs use."""

    def read_usage(self) -> UsageSample:
        """The usage now; an empty sample (with a note saying why) when there is none.

        Raises:
            ClusterError: the source failed in a way that must stop the read (not a mere absence).
        """
        ...

    def snapshot_objects(self) -> list[dict[str, Any]]:
        """API objects that let a snapshot file replay this usage (empty when it cannot be kept)."""
        ...


class MetricsServerUsage:
    """Instant usage from metrics.k8s.io (metrics-server): NodeMetrics and PodMetrics, read once."""

    def __init__(self, client: KubeClient, *, progress: Progress | None = None) -> None:
        self._client = client
        self._progress = progress or (lambda _msg: None)
        self._objects: tuple[list[dict[str, Any]], list[dict[str, Any]]] | None = None
        self._notes: list[str] = []

    def _read(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        if self._objects is None:
            self._objects = (self._list(r.NODE_METRICS, "node metrics"), self._list(r.POD_METRICS, "pod metrics"))
        return self._objects

    def _list(self, resource: r.ApiResource, label: str) -> list[dict[str, Any]]:
        self._progress(f"reading {resource.qualified}")
        try:
            return self._client.list(resource)
        except ResourceNotFoundError:
            self._note("metrics.k8s.io is not served (no metrics-server): utilisation is by requests")
        except ClusterForbiddenError as exc:
            self._note(f"{label}: not readable ({exc})")
        except ClusterError as exc:
            if exc.status not in (500, 503):
                raise
            self._note("metrics.k8s.io is unavailable (metrics-server not ready): utilisation is by requests")
        return []

    def _note(self, note: str) -> None:
        if note not in self._notes:
            self._notes.append(note)

    def read_usage(self) -> UsageSample:
        """Node and pod usage (a VM's is its launcher pod's); notes say why it is missing."""
        nodes, pods = self._read()
        sample = usage_from_metrics(nodes, pods)
        return UsageSample(
            nodes=sample.nodes,
            pods=sample.pods,
            measured_at=sample.measured_at,
            source=sample.source,
            notes=tuple(self._notes),
        )

    def snapshot_objects(self) -> list[dict[str, Any]]:
        """The NodeMetrics and PodMetrics objects as served (a snapshot keeps them)."""
        nodes, pods = self._read()
        return [*nodes, *pods]


class NoUsage:
    """No usage at all: utilisation is by requests (e.g. when metrics must not be read)."""

    def __init__(self, reason: str = "usage was not read: utilisation is by requests") -> None:
        self._reason = reason

    def read_usage(self) -> UsageSample:
        """An empty sample saying why."""
        return UsageSample(notes=(self._reason,))

    def snapshot_objects(self) -> list[dict[str, Any]]:
        """Nothing to keep."""
        return []
