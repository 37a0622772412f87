"""metrics-server, simulated: NodeMetrics and PodMetrics objects computed from per-VM utilisation.

A virt-launcher pod uses ``cpu-usage`` × vCPUs and ``memory-usage`` × guest memory (VM or VMI
annotations ``simulator.vm-rebalance.io/cpu-usage`` / ``…/memory-usage``, defaults 0.25 and 0.6)
plus a little for QEMU itself; other pods use those fractions of their requests (defaults 0.5 and
0.6). A node uses the sum of its pods plus system usage (3 % of its CPU, 6 % of its memory, or the
node annotations ``…/system-cpu-usage`` / ``…/system-memory-usage`` as fractions of capacity).
Optional seeded noise (SimCluster ``metrics_noise``, a relative standard deviation) jitters each
refresh. Usage follows a VM when it migrates because it is derived from where its pod runs.
Updates are incremental (store events mark pods dirty); NodeMetrics are rewritten every 15
simulated seconds, PodMetrics only when their usage changes.
"""

import contextlib
import random
import time
from typing import TYPE_CHECKING, Any

from .kubevirt import CPU_USAGE_ANNOTATION, MEMORY_USAGE_ANNOTATION, guest_memory_bytes, vcpus
from .lifecycle import NODES, PODS, VMIS, VMS
from .quantity import MIB, cpu_millicores, format_cpu_nanocores, format_memory_ki, memory_bytes
from .scheduler import pod_requests
from .store import NotFoundError, WatchEvent

if TYPE_CHECKING:
    from .cluster import SimCluster

Obj = dict[str, Any]
NODE_METRICS = ("metrics.k8s.io", "nodes")
POD_METRICS = ("metrics.k8s.io", "pods")
SYSTEM_CPU_ANNOTATION = "simulator.vm-rebalance.io/system-cpu-usage"
SYSTEM_MEMORY_ANNOTATION = "simulator.vm-rebalance.io/system-memory-usage"

DEFAULT_VM_CPU_USAGE = 0.25
DEFAULT_VM_MEMORY_USAGE = 0.6
DEFAULT_POD_CPU_USAGE = 0.5
DEFAULT_POD_MEMORY_USAGE = 0.6
REFRESH_SECONDS = 15.0


def _fraction(annotations: dict[str, str], key: str) -> float | None:
    value = annotations.get(key)
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class MetricsController:
    """Keeps NodeMetrics and PodMetrics current; the cluster calls :meth:`tick` with the store lock held."""

    def __init__(self, cluster: "SimCluster") -> None:
        self.cluster = cluster
        self.store = cluster.store
        self.last_refresh: float | None = None
        self.rng = random.Random(cluster.seed + 1)
        self.usage: dict[tuple[str, str], tuple[str, int, int]] = {}  # pod -> (node, nanocores, bytes)
        self.node_totals: dict[str, list[int]] = {}
        self.dirty_pods: set[tuple[str, str]] = set()
        self.dirty_nodes: set[str] = set()
        self._last_full_wall = 0.0
        self.store.subscribe(self._on_event)
        self._cache: dict[tuple[str, str], tuple[tuple[str, ...], tuple[float, float]]] = {}
        self._now = 0.0

    def tick(self, now: float) -> None:
        """Apply changes now; rewrite node metrics (fresh timestamps) every REFRESH_SECONDS of simulated time."""
        self._now = now
        if self.last_refresh is None or now - self.last_refresh >= REFRESH_SECONDS:
            self.refresh(now)
        elif self.dirty_pods or self.dirty_nodes:
            self._apply(now)

    def pod_usage(self, pod: Obj) -> tuple[int, int]:
        """(nanocores, bytes) a running pod uses."""
        cpu, mem = self._base_usage(pod)
        if self.cluster.metrics_noise:
            cpu *= max(0.0, 1 + self.rng.gauss(0, self.cluster.metrics_noise))
            mem *= max(0.0, 1 + self.rng.gauss(0, self.cluster.metrics_noise / 4))
        return int(cpu), int(mem) // 1024 * 1024

    def _base_usage(self, pod: Obj) -> tuple[float, float]:
        meta = pod["metadata"]
        domain = (meta.get("annotations") or {}).get("kubevirt.io/domain")
        ns = meta.get("namespace")
        if domain and (ns or "", domain) in self.cluster.signals.patterns:
            return self._compute_usage(pod)  # time-varying load: no caching
        versions: tuple[str, ...] = (meta.get("resourceVersion", ""),)
        if domain:
            vmi = self.store.try_get(VMIS, ns, domain, copy=False)
            vm = self.store.try_get(VMS, ns, domain, copy=False)
            versions += (
                (vmi or {}).get("metadata", {}).get("resourceVersion", ""),
                (vm or {}).get("metadata", {}).get("resourceVersion", ""),
            )
        ident = (ns or "", meta["name"])
        cached = self._cache.get(ident)
        if cached is not None and cached[0] == versions:
            return cached[1]
        usage = self._compute_usage(pod)
        self._cache[ident] = (versions, usage)
        return usage

    def _compute_usage(self, pod: Obj) -> tuple[float, float]:
        meta = pod["metadata"]
        labels = meta.get("labels") or {}
        annotations = meta.get("annotations") or {}
        if labels.get("kubevirt.io") == "virt-launcher":
            vmi_name = annotations.get("kubevirt.io/domain", "")
            ns = meta.get("namespace")
            vmi = self.store.try_get(VMIS, ns, vmi_name, copy=False)
            if vmi is None or (vmi.get("status") or {}).get("nodeName") != (pod.get("spec") or {}).get("nodeName"):
                return 5e6, 60.0 * MIB  # a migration target not yet running the guest
            vm = self.store.try_get(VMS, ns, vmi_name, copy=False)
            vm_ann = ((vm or {}).get("metadata") or {}).get("annotations") or {}
            vmi_ann = vmi["metadata"].get("annotations") or {}
            cpu_frac = _fraction(vm_ann, CPU_USAGE_ANNOTATION)
            if cpu_frac is None:
                cpu_frac = _fraction(vmi_ann, CPU_USAGE_ANNOTATION)
            mem_frac = _fraction(vm_ann, MEMORY_USAGE_ANNOTATION)
            if mem_frac is None:
                mem_frac = _fraction(vmi_ann, MEMORY_USAGE_ANNOTATION)
            if (ns or "", vmi_name) in self.cluster.signals.patterns:
                now_cpu = self.cluster.signals.vm_cpu_fraction_now(ns or "", vmi_name, self._now)
                now_mem = self.cluster.signals.vm_memory_fraction_now(ns or "", vmi_name, self._now)
                cpu_frac = cpu_frac if now_cpu is None else now_cpu
                mem_frac = mem_frac if now_mem is None else now_mem
            spec = vmi.get("spec") or {}
            cpu = (DEFAULT_VM_CPU_USAGE if cpu_frac is None else cpu_frac) * vcpus(spec) * 1e9 + 15e6
            mem = (DEFAULT_VM_MEMORY_USAGE if mem_frac is None else mem_frac) * guest_memory_bytes(spec) + 180 * MIB
        else:
            req_cpu, req_mem, _ = pod_requests(pod)
            cpu_frac = _fraction(annotations, CPU_USAGE_ANNOTATION)
            mem_frac = _fraction(annotations, MEMORY_USAGE_ANNOTATION)
            cpu = (DEFAULT_POD_CPU_USAGE if cpu_frac is None else cpu_frac) * max(req_cpu, 10) * 1e6
            mem = (DEFAULT_POD_MEMORY_USAGE if mem_frac is None else mem_frac) * max(req_mem, 32 * MIB)
        return cpu, mem

    def refresh(self, now: float, *, force: bool = False) -> None:
        """Rewrite every NodeMetrics; recompute every pod too with ``force`` or noise (rate-limited when big)."""
        self.last_refresh = now
        self._now = now
        for ns, name in sorted(self.cluster.signals.patterns):
            vmi = self.store.try_get(VMIS, ns, name, copy=False)
            if vmi is not None:
                self.dirty_pods.update(self.cluster.launcher_index.get(vmi["metadata"].get("uid", ""), ()))
        pods = self.cluster.accounting.pods
        wall = time.monotonic()
        if force or (self.cluster.metrics_noise and (len(pods) < 2000 or wall - self._last_full_wall >= 5.0)):
            self._last_full_wall = wall
            self.dirty_pods.update(pods)
            self.dirty_pods.update(self.usage)
            self._apply(now, all_nodes=True, rewrite=True)
        else:
            self._apply(now, all_nodes=True)

    def _on_event(self, event: WatchEvent) -> None:
        meta = event.obj["metadata"]
        key = event.key
        if key == PODS:
            self.dirty_pods.add((meta.get("namespace") or "", meta["name"]))
        elif key == VMIS:
            self.dirty_pods.update(self.cluster.launcher_index.get(meta.get("uid", ""), ()))
        elif key == VMS:
            vmi = self.store.try_get(VMIS, meta.get("namespace"), meta["name"], copy=False)
            if vmi is not None:
                self.dirty_pods.update(self.cluster.launcher_index.get(vmi["metadata"].get("uid", ""), ()))
        elif key == NODES:
            self.dirty_nodes.add(meta["name"])

    def _apply(self, now: float, *, all_nodes: bool = False, rewrite: bool = False) -> None:
        """Recompute the dirty pods, adjust node totals, write the changed metrics objects."""
        now_iso = self.cluster.clock.iso(now)
        for ident in sorted(self.dirty_pods):
            ns, name = ident
            pod = self.store.try_get(PODS, ns, name, copy=False)
            old = self.usage.get(ident)
            new: tuple[str, int, int] | None = None
            node = ((pod or {}).get("spec") or {}).get("nodeName")
            if pod is not None and node and (pod.get("status") or {}).get("phase") == "Running":
                cpu, mem = self.pod_usage(pod)
                new = (node, cpu, mem)
            if new == old and not rewrite:
                continue
            for entry, sign in ((old, -1), (new, 1)):
                if entry is None:
                    continue
                totals = self.node_totals.setdefault(entry[0], [0, 0])
                totals[0] += sign * entry[1]
                totals[1] += sign * entry[2]
                self.dirty_nodes.add(entry[0])
            if new is None:
                self.usage.pop(ident, None)
                self._cache.pop(ident, None)
                with contextlib.suppress(NotFoundError):
                    self.store.delete(POD_METRICS, ns, name)
                continue
            self.usage[ident] = new
            assert pod is not None
            self._put(
                POD_METRICS,
                {
                    "kind": "PodMetrics",
                    "apiVersion": "metrics.k8s.io/v1beta1",
                    "metadata": {
                        "name": name,
                        "namespace": ns,
                        "creationTimestamp": now_iso,
                        "labels": dict(pod["metadata"].get("labels") or {}),
                    },
                    "timestamp": now_iso,
                    "window": "15s",
                    "containers": [
                        {
                            "name": c.get("name", "compute"),
                            "usage": {
                                "cpu": format_cpu_nanocores(new[1] if i == 0 else 0),
                                "memory": format_memory_ki(new[2] if i == 0 else 0),
                            },
                        }
                        for i, c in enumerate((pod.get("spec") or {}).get("containers") or [{}])
                    ],
                },
            )
        self.dirty_pods.clear()
        nodes = (
            list(self.store.iter_objects(NODES))
            if all_nodes
            else [
                n
                for n in (self.store.try_get(NODES, None, name, copy=False) for name in sorted(self.dirty_nodes))
                if n is not None
            ]
        )
        self.dirty_nodes.clear()
        for node_obj in nodes:
            self._write_node(node_obj, now_iso)

    def _write_node(self, node: Obj, now_iso: str) -> None:
        name = node["metadata"]["name"]
        status = node.get("status") or {}
        capacity = status.get("capacity") or status.get("allocatable") or {}
        annotations = node["metadata"].get("annotations") or {}
        sys_cpu = _fraction(annotations, SYSTEM_CPU_ANNOTATION)
        sys_mem = _fraction(annotations, SYSTEM_MEMORY_ANNOTATION)
        cpu, mem = self.node_totals.get(name, [0, 0])
        cpu += int((0.03 if sys_cpu is None else sys_cpu) * cpu_millicores(capacity.get("cpu", 0)) * 1e6)
        cpu = min(cpu, int(cpu_millicores(capacity.get("cpu", 0)) * 1e6)) if capacity.get("cpu") else cpu  # a busy node
        # reports at most its capacity, however many vCPUs want to run
        mem += int((0.06 if sys_mem is None else sys_mem) * memory_bytes(capacity.get("memory", 0)))
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
        if not ready:
            if self.store.try_get(NODE_METRICS, None, name, copy=False) is not None:
                self.store.delete(NODE_METRICS, None, name)
            return
        self._put(
            NODE_METRICS,
            {
                "kind": "NodeMetrics",
                "apiVersion": "metrics.k8s.io/v1beta1",
                "metadata": {
                    "name": name,
                    "creationTimestamp": now_iso,
                    "labels": dict(node["metadata"].get("labels") or {}),
                },
                "timestamp": now_iso,
                "window": "20.05s",
                "usage": {
                    "cpu": format_cpu_nanocores(max(0, cpu)),
                    "memory": format_memory_ki(max(0, mem) // 1024 * 1024),
                },
            },
        )

    def _put(self, key: tuple[str, str], obj: Obj) -> None:
        self.store.put(key, obj)
