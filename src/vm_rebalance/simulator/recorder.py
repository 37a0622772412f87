"""What happened in a simulation, and the invariants tests assert on.

The recorder watches the store rather than trusting the controllers: migration concurrency is
counted from the VMIM phases as a client would see them, and capacity from the bound pods.
"""

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .scheduler import NODES, NodeAccounting, node_allocatable
from .store import Store, WatchEvent

VMS = ("kubevirt.io", "virtualmachines")
VMIS = ("kubevirt.io", "virtualmachineinstances")
VMIMS = ("kubevirt.io", "virtualmachineinstancemigrations")

#: VMIM phases KubeVirt counts against the parallel-migration limits (kubevirt-api.md §3.3 IsRunning).
NOT_RUNNING_PHASES = frozenset({"", "Pending", "Succeeded", "Failed", "WaitingForSync", "Synchronizing"})
FINAL_PHASES = frozenset({"Succeeded", "Failed"})

#: The event log keeps the newest entries only, so a long-running ``simulator serve`` stays bounded.
MAX_LOG_ENTRIES = 50_000
#: Likewise for the capacity overruns (each one is a transition of a node+resource into overrun).
MAX_CAPACITY_OVERRUNS = 10_000


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One line of the simulation's event log."""

    time: float
    kind: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CapacityOverrun:
    """A moment when a node's pod requests exceeded its allocatable."""

    time: float
    node: str
    resource: str
    requested: int
    allocatable: int


class Recorder:
    """Event log plus invariant counters, fed by store events."""

    def __init__(self, store: Store, accounting: NodeAccounting, now: Callable[[], float]) -> None:
        self._store = store
        self._now = now
        self._lock = threading.Lock()
        self.log: deque[LogEntry] = deque(maxlen=MAX_LOG_ENTRIES)
        self.log_total = 0  # entries ever recorded, including those the bounded log has dropped
        self.capacity_overruns: list[CapacityOverrun] = []
        self.capacity_overruns_total = 0  # overruns ever recorded, including trimmed ones
        self._overrun: set[tuple[str, str]] = set()  # (node, resource) currently over allocatable
        self.peak_running_migrations = 0
        self.peak_outbound_per_node: dict[str, int] = {}
        self.peak_inbound_per_node: dict[str, int] = {}
        self.migration_phases: dict[str, list[str]] = {}  # live VMIM uid -> phases seen, in order
        self._running: dict[str, tuple[str, str]] = {}  # VMIM uid -> (source node, target node)
        self._baseline_running: set[tuple[str, str]] = set()
        self._accounting = accounting
        accounting.listeners.append(self._check_node)
        store.subscribe(self._on_event)

    # -- logging -------------------------------------------------------------------------------------------------

    def record(self, kind: str, message: str, /, **details: Any) -> None:
        """Append to the event log."""
        with self._lock:
            self.log.append(LogEntry(self._now(), kind, message, details))
            self.log_total += 1

    def entries(self, kind: str | None = None) -> list[LogEntry]:
        """Log entries (the newest :data:`MAX_LOG_ENTRIES`), optionally of one kind."""
        with self._lock:
            return [e for e in self.log if kind is None or e.kind == kind]

    # -- invariants ----------------------------------------------------------------------------------------------

    def mark_baseline(self) -> None:
        """Remember which VMs run now, for :meth:`vms_left_stopped`."""
        with self._store.lock:
            self._baseline_running = {
                (vmi["metadata"].get("namespace", ""), vmi["metadata"]["name"])
                for vmi in self._store.iter_objects(VMIS)
                if (vmi.get("status") or {}).get("phase") == "Running"
            }

    def vms_left_stopped(self) -> list[str]:
        """``namespace/name`` of VMs that ran at the baseline and have no Running VMI now."""
        with self._store.lock:
            out = []
            for ns, name in sorted(self._baseline_running):
                vmi = self._store.try_get(VMIS, ns, name, copy=False)
                if vmi is None or (vmi.get("status") or {}).get("phase") != "Running":
                    out.append(f"{ns}/{name}")
            return out

    def migrations_left_non_final(self) -> list[str]:
        """``namespace/name`` of VMIMs that are not Succeeded or Failed."""
        with self._store.lock:
            return sorted(
                f"{m['metadata'].get('namespace', '')}/{m['metadata']['name']}"
                for m in self._store.iter_objects(VMIMS)
                if (m.get("status") or {}).get("phase") not in FINAL_PHASES
            )

    def running_migrations(self) -> int:
        """Migrations currently counted against the cluster-wide limit."""
        with self._lock:
            return len(self._running)

    def summary(self) -> dict[str, Any]:
        """The counters as a plain dict (for logs and reports)."""
        with self._lock:
            return {
                "peak_running_migrations": self.peak_running_migrations,
                "peak_outbound_per_node": dict(self.peak_outbound_per_node),
                "peak_inbound_per_node": dict(self.peak_inbound_per_node),
                "capacity_overruns": self.capacity_overruns_total,
                "log_entries": self.log_total,
            }

    # -- store feeds ---------------------------------------------------------------------------------------------

    def _on_event(self, event: WatchEvent) -> None:
        if event.key != VMIMS:
            return
        uid = event.obj["metadata"].get("uid", "")
        phase = (event.obj.get("status") or {}).get("phase") or ""
        deleted = event.type == "DELETED"
        with self._lock:
            if deleted:
                # Deleted (cancelled or garbage-collected): forget its history so it does not pile up.
                self.migration_phases.pop(uid, None)
            else:
                phases = self.migration_phases.setdefault(uid, [])
                if not phases or phases[-1] != phase:
                    phases.append(phase)
            running = not deleted and phase not in NOT_RUNNING_PHASES
            if running and uid not in self._running:
                self._running[uid] = self._endpoints(event.obj)
            elif not running:
                self._running.pop(uid, None)
            elif self._running[uid][1] == "":
                self._running[uid] = self._endpoints(event.obj)
            self.peak_running_migrations = max(self.peak_running_migrations, len(self._running))
            outbound: dict[str, int] = {}
            inbound: dict[str, int] = {}
            for source, target in self._running.values():
                outbound[source] = outbound.get(source, 0) + 1
                if target:
                    inbound[target] = inbound.get(target, 0) + 1
            for node, n in outbound.items():
                self.peak_outbound_per_node[node] = max(self.peak_outbound_per_node.get(node, 0), n)
            for node, n in inbound.items():
                self.peak_inbound_per_node[node] = max(self.peak_inbound_per_node.get(node, 0), n)

    def _endpoints(self, vmim: dict[str, Any]) -> tuple[str, str]:
        state = (vmim.get("status") or {}).get("migrationState") or {}
        source = state.get("sourceNode") or ""
        target = state.get("targetNode") or ""
        if not source:
            vmi = self._store.try_get(
                VMIS, vmim["metadata"].get("namespace"), vmim["spec"].get("vmiName", ""), copy=False
            )
            if vmi is not None:
                vstate = (vmi.get("status") or {}).get("migrationState") or {}
                if vstate.get("migrationUid") != vmim["metadata"].get("uid"):
                    vstate = {}  # the state of an earlier migration
                source = vstate.get("sourceNode") or (vmi.get("status") or {}).get("nodeName") or ""
                target = target or vstate.get("targetNode") or ""
        return source, target

    def _check_node(self, node_name: str) -> None:
        node = self._store.try_get(NODES, None, node_name, copy=False)
        if node is None:
            with self._lock:
                self._overrun = {key for key in self._overrun if key[0] != node_name}
            return
        a_cpu, a_mem, a_kvm, _ = node_allocatable(node)
        u_cpu, u_mem, u_kvm, _ = self._accounting.usage(node_name)
        for resource, used, alloc in (
            ("cpu", u_cpu, a_cpu),
            ("memory", u_mem, a_mem),
            ("devices.kubevirt.io/kvm", u_kvm, a_kvm),
        ):
            key = (node_name, resource)
            over = used > alloc and (resource != "devices.kubevirt.io/kvm" or bool(u_kvm))
            with self._lock:
                if not over:
                    self._overrun.discard(key)
                elif key not in self._overrun:  # record the transition into overrun, once
                    self._overrun.add(key)
                    self.capacity_overruns.append(CapacityOverrun(self._now(), node_name, resource, used, alloc))
                    self.capacity_overruns_total += 1
                    if len(self.capacity_overruns) > MAX_CAPACITY_OVERRUNS:
                        del self.capacity_overruns[: len(self.capacity_overruns) - MAX_CAPACITY_OVERRUNS]
