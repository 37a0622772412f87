"""Simulator fixtures shared by the execution end-to-end and CLI tests: small known clusters,
a server with a kubeconfig, an in-flight counter of our own migrations, and the invariants.
"""

import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rawobjects import as_list, kubevirt_obj, node_obj, pvc_obj, vm_obj, vmi_obj
from vm_rebalance.executor.kubevirt import PIN_ANNOTATION, TEMP_PIN_ANNOTATION, existing_node_pin
from vm_rebalance.model import Plan, plan_to_document
from vm_rebalance.simulator.auth import Policy
from vm_rebalance.simulator.cluster import SimCluster
from vm_rebalance.simulator.kubevirt import DIRTY_RATE_ANNOTATION
from vm_rebalance.simulator.server import SimulatorServer

Obj = dict[str, Any]
VMS = ("kubevirt.io", "virtualmachines")
VMIS = ("kubevirt.io", "virtualmachineinstances")
VMIMS = ("kubevirt.io", "virtualmachineinstancemigrations")
NODES = ("", "nodes")
CALM = {DIRTY_RATE_ANNOTATION: "1Mi"}
"""A low dirty rate: the pre-copy model always converges."""


def add_vm(
    objs: list[Obj], name: str, node: str | None, *, memory: str = "2Gi", storage: str = "container", **kw: Any
) -> None:
    """A VM (and its VMI when ``node``): storage is rwx / rwo / container."""
    pvcs: list[str] = []
    if storage in ("rwx", "rwo"):
        objs.append(pvc_obj(f"{name}-root", modes=("ReadWriteMany",) if storage == "rwx" else ("ReadWriteOnce",)))
        pvcs = [f"{name}-root"]
    vm = vm_obj(
        name,
        memory=memory,
        cores=1,
        pvcs=pvcs,
        container_disk=storage == "container",
        run_strategy="Always" if node else "Halted",
        annotations=dict(CALM),
        **kw,
    )
    objs.append(vm)
    if node:
        # No launcher pod: the simulator creates it (see the report: it crashes on one without an image).
        objs.append(vmi_obj(vm, node, live_migratable=storage != "rwo"))


def cluster_objects(nodes: int = 3, *, version: str = "v1.6.0", memory: str = "64Gi") -> list[Obj]:
    return [*(node_obj(f"w{i}", memory=memory) for i in range(1, nodes + 1)), kubevirt_obj(version=version)]


def write_snapshot(path: Path, objs: list[Obj]) -> str:
    path.write_text(json.dumps(as_list(objs)))
    return str(path)


def write_plan(path: Path, plan: Plan) -> str:
    path.write_text(json.dumps(plan_to_document(plan)))
    return str(path)


@dataclass
class InFlight:
    """Peak count of non-final VMIMs (Pending included: what the executor itself has in flight)."""

    cluster: SimCluster
    peak_total: int = 0
    peak_per_source: dict[str, int] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    created: list[str] = field(default_factory=list)
    peak_per_vmi: dict[str, int] = field(default_factory=dict)
    """The most unfinished migrations one VMI ever had at once (KubeVirt allows one: a second is a duplicate)."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.cluster.store.subscribe(self._on_event)

    def _on_event(self, event: Any) -> None:
        if event.key != VMIMS:
            return
        meta = event.obj["metadata"]
        name = meta["name"]
        with self.lock:
            if event.type == "ADDED":
                self.created.append(name)
                vmi = self.cluster.store.try_get(VMIS, meta.get("namespace"), event.obj["spec"]["vmiName"], copy=False)
                self.sources[name] = ((vmi or {}).get("status") or {}).get("nodeName") or ""
            active = [
                m
                for m in self.cluster.store.iter_objects(VMIMS)
                if ((m.get("status") or {}).get("phase") or "") not in ("Succeeded", "Failed")
            ]
            self.peak_total = max(self.peak_total, len(active))
            per: dict[str, int] = {}
            for m in active:
                src = self.sources.get(m["metadata"]["name"], "")
                per[src] = per.get(src, 0) + 1
            for node, n in per.items():
                self.peak_per_source[node] = max(self.peak_per_source.get(node, 0), n)
            per_vmi: dict[str, int] = {}
            for m in active:
                key = f"{m['metadata'].get('namespace')}/{m['spec']['vmiName']}"
                per_vmi[key] = per_vmi.get(key, 0) + 1
            for key, n in per_vmi.items():
                self.peak_per_vmi[key] = max(self.peak_per_vmi.get(key, 0), n)


@dataclass
class Sim:
    cluster: SimCluster
    server: SimulatorServer
    kubeconfig: Path
    inflight: InFlight

    def vm(self, name: str, namespace: str = "default") -> Obj:
        return self.cluster.store.get(VMS, namespace, name)

    def vmi(self, name: str, namespace: str = "default") -> Obj | None:
        return self.cluster.store.try_get(VMIS, namespace, name)

    def node_of(self, name: str, namespace: str = "default") -> str | None:
        return ((self.vmi(name, namespace) or {}).get("status") or {}).get("nodeName")

    def running(self, name: str, namespace: str = "default") -> bool:
        return ((self.vmi(name, namespace) or {}).get("status") or {}).get("phase") == "Running"

    def migrations(self) -> list[Obj]:
        return list(self.cluster.store.iter_objects(VMIMS))

    def pinned(self) -> list[str]:
        """VMs with a hostname pin or one of vm-rebalance's annotations."""
        out = []
        for vm in self.cluster.store.iter_objects(VMS):
            ann = vm["metadata"].get("annotations") or {}
            if existing_node_pin(vm) or PIN_ANNOTATION in ann or TEMP_PIN_ANNOTATION in ann:
                out.append(vm["metadata"]["name"])
        return sorted(out)

    def assert_clean(self, *, per_cluster: int = 5, per_node: int = 2, pinned: tuple[str, ...] = ()) -> None:
        """Limits never exceeded (KubeVirt's view and ours), no overrun, nothing stopped/pinned/orphaned."""
        rec = self.cluster.recorder
        assert rec.peak_running_migrations <= per_cluster, rec.summary()
        assert all(n <= per_node for n in rec.peak_outbound_per_node.values()), rec.summary()
        assert self.inflight.peak_total <= per_cluster, self.inflight
        assert all(n <= per_node for n in self.inflight.peak_per_source.values()), self.inflight
        assert rec.capacity_overruns == []
        assert rec.vms_left_stopped() == []
        assert rec.migrations_left_non_final() == []
        assert self.pinned() == sorted(pinned), self.pinned()


@contextlib.contextmanager
def simulator(
    tmp_path: Path, objs: list[Obj], *, time_scale: float = 400.0, policy: dict[str, Any] | None = None
) -> Iterator[Sim]:
    """A simulated cluster over HTTPS; ``policy`` (the simulator's RBAC-like policy, as a dict) limits the
    identity its kubeconfig uses."""
    cluster = SimCluster.from_scenario(write_snapshot(tmp_path / "snapshot.json", objs), time_scale=time_scale, seed=0)
    inflight = InFlight(cluster)
    with SimulatorServer(cluster, policy=Policy.from_dict(policy) if policy else None) as srv:
        kubeconfig = tmp_path / "secret-dir" / "kubeconfig"
        kubeconfig.parent.mkdir(exist_ok=True)
        srv.write_kubeconfig(kubeconfig)
        yield Sim(cluster, srv, kubeconfig, inflight)
