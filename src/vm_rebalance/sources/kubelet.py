"""Usage and PSI from the kubelet's stats summary (``GET /api/v1/nodes/NODE/proxy/stats/summary``).

The source for clusters without Prometheus. Per node: CPU (``usageNanoCores``, the kubelet's
latest sample) and memory (``workingSetBytes``) of the node and of every pod — a VM's usage is
its virt-launcher pod's — and, on cgroup v2 with the kubelet's PSI support (``KubeletPSI``, beta
in Kubernetes 1.34), pressure stall information: ``cpu.psi``, ``memory.psi``, ``io.psi`` with
``some`` / ``full`` averages over 10 s, 60 s and 300 s. The 300 s averages are used: usage is
an instant reading, pressure a five-minute one, and the basis line says so.

Needs ``get`` on ``nodes/proxy`` (cluster-wide). A node whose summary cannot be read is left
out with a note (its requests count); when no node can be read at all the sample is empty and
says why, so the next source is tried. Nodes are read by a few threads at once.
"""

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from vm_rebalance.errors import ClusterError, ClusterForbiddenError, ResourceNotFoundError
from vm_rebalance.kube import resources as r
from vm_rebalance.kube.client import KubeClient
from vm_rebalance.kube.convert import parse_time
from vm_rebalance.kube.sustained import sustained_document
from vm_rebalance.model import Resources
from vm_rebalance.model.signals import Observation, Pressure
from vm_rebalance.model.usage import UsageSample

Progress = Callable[[str], None]

PSI_WINDOW_SECONDS = 300.0
"""The kubelet's ``avg300``."""
SOURCE = "kubelet stats summary"
THREADS = 8


def summary_path(node: str) -> str:
    """The API path of a node's stats summary (through the API server's node proxy)."""
    return f"/api/v1/nodes/{node}/proxy/stats/summary"


def _avg300(psi: Any, level: str) -> float | None:
    if not isinstance(psi, Mapping):
        return None
    data = psi.get(level)
    if not isinstance(data, Mapping):
        return None
    value = data.get("avg300")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return min(1.0, max(0.0, float(value) / 100.0))


def pressure_from_summary(node: Mapping[str, Any]) -> Pressure | None:
    """The node's PSI (``avg300`` as fractions), or None when the summary carries none (cgroup v1, older kubelet)."""
    cpu = (node.get("cpu") or {}).get("psi")
    memory = (node.get("memory") or {}).get("psi")
    io = (node.get("io") or {}).get("psi")
    if cpu is None and memory is None and io is None:
        return None
    return Pressure(
        cpu=_avg300(cpu, "some"),
        memory=_avg300(memory, "some"),
        memory_full=_avg300(memory, "full"),
        io=_avg300(io, "some"),
    )


def _usage(block: Mapping[str, Any]) -> Resources | None:
    cpu = (block.get("cpu") or {}).get("usageNanoCores")
    mem = (block.get("memory") or {}).get("workingSetBytes")
    if not isinstance(cpu, int | float) or not isinstance(mem, int | float):
        return None
    return Resources(round(cpu / 1e6), int(mem))


class KubeletStatsUsage:
    """Instant usage and five-minute PSI per node, and pod usage, from every node's stats summary."""

    def __init__(
        self,
        client: KubeClient,
        *,
        progress: Progress | None = None,
        nodes: Callable[[], list[str]] | None = None,
        threads: int = THREADS,
        quiet_if_absent: bool = False,
    ) -> None:
        """``quiet_if_absent``: an API server that does not serve the node proxy (404) is no news (auto-detection);
        a refusal (403) or a failure is still a note."""
        self._quiet = quiet_if_absent
        self._client = client
        self._progress = progress or (lambda _msg: None)
        self._nodes = nodes
        self._threads = max(1, threads)
        self._sample: UsageSample | None = None

    def _node_names(self) -> list[str]:
        if self._nodes is not None:
            return self._nodes()
        return sorted(str((n.get("metadata") or {}).get("name") or "") for n in self._client.list(r.NODES))

    def _summary(self, node: str) -> Mapping[str, Any]:
        body = self._client.request("GET", summary_path(node), verb="get", resource="nodes/proxy", name=node)
        if not isinstance(body, Mapping):
            raise ClusterError(f"the stats summary of node {node} is not an object")
        return body

    def read_usage(self) -> UsageSample:
        """Usage and PSI of every node whose summary could be read; notes say what is missing and why."""
        if self._sample is None:
            self._sample = self._read()
        return self._sample

    def _read(self) -> UsageSample:
        try:
            names = [n for n in self._node_names() if n]
        except ClusterError as exc:
            return UsageSample(source=SOURCE, notes=(f"{SOURCE}: the nodes cannot be listed ({exc})",))
        if not names:
            return UsageSample(source=SOURCE, notes=(f"{SOURCE}: the cluster has no nodes",))
        self._progress(f"reading the stats summary of {len(names)} node(s)")
        # The first node tells whether the endpoint is there and allowed at all.
        first = self._one(names[0])
        if isinstance(first, ClusterForbiddenError):
            return UsageSample(
                source=SOURCE,
                notes=(f"{SOURCE} not readable: the identity needs 'get' on 'nodes/proxy' ({first})",),
            )
        if isinstance(first, ResourceNotFoundError):
            note = f"{SOURCE} not served (the node proxy answered 404 for node {names[0]})"
            return UsageSample(source=SOURCE, notes=() if self._quiet else (note,))
        if isinstance(first, ClusterError) and len(names) == 1:
            return UsageSample(source=SOURCE, notes=(f"{SOURCE} not readable: {first}",))
        with ThreadPoolExecutor(max_workers=min(self._threads, len(names))) as pool:
            rest = list(pool.map(self._one, names[1:]))
        results = dict(zip(names, [first, *rest], strict=True))
        nodes: dict[str, Resources] = {}
        pods: dict[tuple[str, str], Resources] = {}
        pressure: dict[str, Pressure] = {}
        failed: list[tuple[str, ClusterError]] = []
        stamps: list[datetime] = []
        for name, result in results.items():
            if isinstance(result, ClusterError):
                failed.append((name, result))
                continue
            node = result.get("node") or {}
            if (usage := _usage(node)) is not None:
                nodes[name] = usage
                if (stamp := parse_time((node.get("cpu") or {}).get("time"))) is not None:
                    stamps.append(stamp)
            if (p := pressure_from_summary(node)) is not None:
                pressure[name] = p
            for pod in result.get("pods") or ():
                ref = pod.get("podRef") or {}
                if (pod_usage := _usage(pod)) is not None and ref.get("name"):
                    pods[(str(ref.get("namespace") or ""), str(ref["name"]))] = pod_usage
        notes = []
        if failed:
            name, error = failed[0]
            notes.append(
                f"{SOURCE}: {len(failed)} of {len(names)} node(s) could not be read (e.g. {name}: {error}); "
                "their requests count"
            )
        if nodes and not pressure:
            notes.append(
                f"{SOURCE} carries no PSI (cgroup v1, or a kubelet without KubeletPSI): hot spots are judged on "
                "utilisation alone"
            )
        elif pressure and len(pressure) < len(nodes):
            notes.append(f"{SOURCE}: {len(nodes) - len(pressure)} node(s) report no PSI")
        end = max(stamps, default=None)
        observation = Observation(
            source=SOURCE, pressure_window_seconds=PSI_WINDOW_SECONDS if pressure else None, end=end
        )
        return UsageSample(
            nodes=nodes,
            pods=pods,
            measured_at=end,
            source=SOURCE,
            notes=tuple(notes),
            pressure=pressure,
            observation=observation if nodes else None,
        )

    def _one(self, node: str) -> Mapping[str, Any] | ClusterError:
        try:
            return self._summary(node)
        except ClusterError as exc:
            return exc

    def snapshot_objects(self) -> list[dict[str, Any]]:
        """One ``SustainedUsage`` object with these figures (a snapshot replays them offline)."""
        sample = self.read_usage()
        return [sustained_document(sample)] if sample.available else []
