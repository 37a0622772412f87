"""Prometheus exposition of the simulated components, with the real components' metric names and labels:

- **virt-handler** (one per node; KubeVirt ``docs/metrics.md`` of kubevirt/monitoring): per-VMI
  ``kubevirt_vmi_cpu_usage_seconds_total`` (+ ``_user_`` / ``_system_``), ``kubevirt_vmi_vcpu_seconds_total``
  and ``kubevirt_vmi_vcpu_delay_seconds_total`` (``id``), ``kubevirt_vmi_memory_*_bytes`` (available,
  usable, unused, cached, domain, resident, actual_balloon, used — ``used`` is a metric up to KubeVirt
  1.7 and a recording rule later; the simulator reports v1.6), swap traffic, page faults,
  ``kubevirt_vmi_dirty_rate_bytes_per_second``, ``kubevirt_vmi_launcher_memory_overhead_bytes``,
  network bytes, and during a migration ``kubevirt_vmi_migration_data_{bytes_total,processed_bytes,
  remaining_bytes}``, ``…_dirty_memory_rate_bytes``, ``…_memory_transfer_rate_bytes``; labels ``node``,
  ``namespace``, ``name``.
- **virt-controller**: ``kubevirt_vmi_migrations_in_{pending,scheduling,running,unset}_phase``,
  ``kubevirt_vmi_migration_{succeeded,failed,start_time_seconds,end_time_seconds}``, ``kubevirt_vmi_info``,
  ``kubevirt_vm_resource_requests``, ``kubevirt_virt_controller_leading_status``.
- **node-exporter** (one per node): ``node_cpu_seconds_total{cpu,mode}``, ``node_memory_{MemTotal,
  MemAvailable,MemFree,Cached,Buffers,SwapTotal,SwapFree}_bytes``, ``node_load1/5/15``,
  ``node_pressure_{cpu_waiting,cpu_stalled,memory_waiting,memory_stalled,io_waiting,io_stalled}_seconds_total``,
  ``node_vmstat_pswpin`` / ``pswpout``.

Written by hand rather than with prometheus_client: a 500-node cluster is ~300,000 series per scrape.
"""

import datetime
import math
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from .signals import _COL, _VCOL, NODE_CPU_MODES, View

if TYPE_CHECKING:
    from .cluster import SimCluster

Obj = dict[str, Any]

TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"
_VMIMS = ("kubevirt.io", "virtualmachineinstancemigrations")
_VMIS = ("kubevirt.io", "virtualmachineinstances")
_VMS = ("kubevirt.io", "virtualmachines")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def labels(**pairs: str) -> str:
    return ",".join(f'{k}="{_escape(str(v))}"' for k, v in pairs.items())


def _num(value: float) -> str:
    if value.is_integer() and -1e15 < value < 1e15:
        return str(int(value))
    if value != value:  # NaN
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


class Writer:
    """Metric families in the text format (0.0.4) or OpenMetrics 1.0 (counters named without ``_total``)."""

    def __init__(
        self, *, openmetrics: bool = False, timestamps: np.ndarray | None = None, only: set[str] | None = None
    ) -> None:
        self.openmetrics = openmetrics
        self.only = only  # family names to write (None: all)
        self.timestamps = timestamps  # unix seconds per time index, or None: no timestamps
        self.parts: list[str] = []

    def family(self, name: str, kind: str, help_text: str, series: Iterable[tuple[str, np.ndarray | float]]) -> None:
        """One family; each series is (label string, value per time index or one value)."""
        if self.only is not None and name not in self.only:
            return
        rows = list(series)
        if not rows:
            return
        base = name[: -len("_total")] if self.openmetrics and kind == "counter" and name.endswith("_total") else name
        om_kind = "unknown" if kind == "untyped" and self.openmetrics else kind
        self.parts.append(f"# HELP {base} {help_text}\n# TYPE {base} {om_kind}\n")
        out = self.parts
        if self.timestamps is not None:
            if self.openmetrics:
                tails = [f" {ts:.3f}\n" for ts in self.timestamps.tolist()]
            else:
                tails = [f" {int(ts * 1000)}\n" for ts in self.timestamps.tolist()]
        for label_text, values in rows:
            head = f"{name}{{{label_text}}} " if label_text else f"{name} "
            if isinstance(values, np.ndarray):
                if self.timestamps is None:
                    out.append(f"{head}{_num(float(values[-1]))}\n")
                else:
                    flat = np.broadcast_to(values, (len(tails),)).tolist()
                    out.extend([head + _num(v) + tail for v, tail in zip(flat, tails, strict=True)])
            elif self.timestamps is not None and self.openmetrics:
                out.extend([head + _num(float(values)) + tail for tail in tails])
            else:
                out.append(f"{head}{_num(float(values))}\n")

    def text(self) -> str:
        if self.openmetrics:
            self.parts.append("# EOF\n")
        return "".join(self.parts)


class _NodeSeries:
    """Label strings and counter columns of node-exporter's series for some nodes."""

    def __init__(self, view: View, nodes: list[int], extra: dict[str, str] | None) -> None:
        inv = view.inv
        self.view = view
        self.nodes = nodes
        self.base = {
            i: (labels(**(extra or {}), instance=inv.node_names[i]) if extra is not None else "") for i in nodes
        }

    def lab(self, i: int, **more: str) -> str:
        tail = labels(**more)
        return ",".join(p for p in (self.base[i], tail) if p)

    def counter(self, col: str, i: int) -> np.ndarray:
        return np.asarray(self.view.node_counters[:, i, _COL[col]])


#: node-exporter's pressure families: name, signal column (None: always zero), help.
_NODE_PSI = (
    (
        "node_pressure_cpu_waiting_seconds_total",
        "psi_cpu_some",
        "Total time in seconds that processes have waited for CPU time",
    ),
    (
        "node_pressure_cpu_stalled_seconds_total",
        None,
        "Total time in seconds no process could make progress due to CPU congestion",
    ),
    (
        "node_pressure_memory_waiting_seconds_total",
        "psi_mem_some",
        "Total time in seconds that processes have waited for memory",
    ),
    (
        "node_pressure_memory_stalled_seconds_total",
        "psi_mem_full",
        "Total time in seconds no process could make progress due to memory congestion",
    ),
    (
        "node_pressure_io_waiting_seconds_total",
        "psi_io_some",
        "Total time in seconds that processes have waited due to IO congestion",
    ),
    (
        "node_pressure_io_stalled_seconds_total",
        "psi_io_full",
        "Total time in seconds no process could make progress due to IO congestion",
    ),
)


def node_exporter(w: Writer, view: View, nodes: list[int], extra: dict[str, str] | None = None) -> None:
    """node-exporter's families for the given node indexes (``extra`` labels, e.g. instance and job)."""
    s = _NodeSeries(view, nodes, extra)
    _node_cpu_family(w, s)
    _node_memory_families(w, s)
    _node_load_and_pressure_families(w, s)


def _node_cpu_family(w: Writer, s: _NodeSeries) -> None:
    """``node_cpu_seconds_total``: one series per CPU and mode."""
    inv = s.view.inv
    cpu_series: list[tuple[str, np.ndarray | float]] = []
    for i in s.nodes:
        cores = max(1, round(float(inv.node_cores[i])))
        prefix = f"{s.base[i]}," if s.base[i] else ""
        per_mode = [(mode, s.counter(f"cpu_{mode}", i)) for mode in NODE_CPU_MODES]
        for cpu in range(cores):  # every CPU of a node carries the node's shares (labels need no escaping)
            cpu_series.extend((f'{prefix}cpu="{cpu}",mode="{mode}"', values) for mode, values in per_mode)
    w.family("node_cpu_seconds_total", "counter", "Seconds the CPUs spent in each mode.", cpu_series)


def _node_memory_families(w: Writer, s: _NodeSeries) -> None:
    """The ``node_memory_*_bytes`` gauges (/proc/meminfo fields), derived from the memory utilisation."""
    nodes, lab = s.nodes, s.lab
    mem_total = {i: float(s.view.inv.node_mem[i]) for i in nodes}
    used = {i: s.view.node_mem_util[:, i] * mem_total[i] for i in nodes}
    w.family(
        "node_memory_MemTotal_bytes",
        "gauge",
        "Memory information field MemTotal_bytes.",
        [(lab(i), mem_total[i]) for i in nodes],
    )
    w.family(
        "node_memory_MemAvailable_bytes",
        "gauge",
        "Memory information field MemAvailable_bytes.",
        [(lab(i), np.floor(np.maximum(0.0, mem_total[i] - used[i]))) for i in nodes],
    )
    w.family(
        "node_memory_MemFree_bytes",
        "gauge",
        "Memory information field MemFree_bytes.",
        [(lab(i), np.floor(np.maximum(0.0, 0.7 * (mem_total[i] - used[i])))) for i in nodes],
    )
    w.family(
        "node_memory_Cached_bytes",
        "gauge",
        "Memory information field Cached_bytes.",
        [(lab(i), np.floor(np.maximum(0.0, 0.25 * (mem_total[i] - used[i])))) for i in nodes],
    )
    w.family(
        "node_memory_Buffers_bytes",
        "gauge",
        "Memory information field Buffers_bytes.",
        [(lab(i), np.floor(np.maximum(0.0, 0.05 * (mem_total[i] - used[i])))) for i in nodes],
    )
    w.family(
        "node_memory_SwapTotal_bytes",
        "gauge",
        "Memory information field SwapTotal_bytes.",
        [(lab(i), 8.0 * 2**30) for i in nodes],
    )
    w.family(
        "node_memory_SwapFree_bytes",
        "gauge",
        "Memory information field SwapFree_bytes.",
        [
            (lab(i), np.floor(8.0 * 2**30 - np.minimum(8.0 * 2**30, s.counter("pswpout", i) * 4096 * 0.01)))
            for i in nodes
        ],
    )


def _node_load_and_pressure_families(w: Writer, s: _NodeSeries) -> None:
    """Load averages, the pressure (PSI) counters and the swap counters of /proc/vmstat."""
    nodes, lab, counter, view = s.nodes, s.lab, s.counter, s.view
    for window in ("1", "5", "15"):
        w.family(
            f"node_load{window}",
            "gauge",
            f"{window}m load average.",
            [(lab(i), np.round(view.node_util[:, i] * view.inv.node_cores[i] * 1.05, 2)) for i in nodes],
        )
    for name, col, help_text in _NODE_PSI:
        series = [(lab(i), counter(col, i) if col else np.zeros(len(view.times))) for i in nodes]
        w.family(name, "counter", help_text, series)
    w.family(
        "node_vmstat_pswpin",
        "untyped",
        "/proc/vmstat information field pswpin.",
        [(lab(i), np.floor(counter("pswpin", i))) for i in nodes],
    )
    w.family(
        "node_vmstat_pswpout",
        "untyped",
        "/proc/vmstat information field pswpout.",
        [(lab(i), np.floor(counter("pswpout", i))) for i in nodes],
    )


class _VmiSeries:
    """Label strings and counter columns of virt-handler's series for the VMIs on some nodes."""

    def __init__(self, view: View, nodes: list[int], extra: dict[str, str] | None) -> None:
        inv = view.inv
        self.view = view
        self.wanted = set(nodes)
        self.vms = [i for i in range(len(inv.vm_keys)) if int(inv.vm_node[i]) in self.wanted]
        self.vm_labels: dict[int, str] = {}
        for i in self.vms:
            ns, name = inv.vm_keys[i]
            pairs = {**(extra or {})}
            if extra is not None:
                pairs["instance"] = inv.node_names[int(inv.vm_node[i])]
            pairs.update(node=inv.node_names[int(inv.vm_node[i])], namespace=ns, name=name)
            self.vm_labels[i] = labels(**pairs)

    def lab(self, i: int, **more: str) -> str:
        return f"{self.vm_labels[i]},{labels(**more)}" if more else self.vm_labels[i]

    def counter(self, col: str, i: int) -> np.ndarray:
        return np.asarray(self.view.vm_counters[:, i, _VCOL[col]])


#: virt-handler's migration families: name, type, help, key of an :func:`active_migrations` row.
_MIGRATION_FAMILIES = (
    (
        "kubevirt_vmi_migration_data_bytes_total",
        "counter",
        "The total Guest OS data to be migrated to the new VM.",
        "total",
    ),
    (
        "kubevirt_vmi_migration_data_processed_bytes",
        "gauge",
        "The total Guest OS data processed and migrated to the new VM.",
        "processed",
    ),
    (
        "kubevirt_vmi_migration_data_remaining_bytes",
        "gauge",
        "The remaining guest OS data to be migrated to the new VM.",
        "remaining",
    ),
    (
        "kubevirt_vmi_migration_dirty_memory_rate_bytes",
        "gauge",
        "The rate of memory being dirty in the Guest OS.",
        "dirty",
    ),
    (
        "kubevirt_vmi_migration_memory_transfer_rate_bytes",
        "gauge",
        "The rate at which the memory is being transferred.",
        "rate",
    ),
)


def virt_handler(
    w: Writer, view: View, nodes: list[int], extra: dict[str, str] | None = None, migrations: list[Obj] | None = None
) -> None:
    """virt-handler's per-VMI families for the VMIs on the given nodes."""
    s = _VmiSeries(view, nodes, extra)
    _vmi_cpu_families(w, s)
    _vmi_memory_families(w, s)
    _vmi_dirty_rate_and_network_families(w, s)
    if migrations:
        _vmi_migration_families(w, [m for m in migrations if m["source_index"] in s.wanted], extra)


def _vmi_cpu_families(w: Writer, s: _VmiSeries) -> None:
    """CPU time of each VMI (total, user, system) and of each of its vCPUs (running and delayed)."""
    vms, lab, counter = s.vms, s.lab, s.counter
    w.family(
        "kubevirt_vmi_cpu_usage_seconds_total",
        "counter",
        "Total CPU time spent in all modes (sum of both vcpu and hypervisor usage).",
        [(lab(i), counter("cpu", i) * 1.02) for i in vms],
    )
    w.family(
        "kubevirt_vmi_cpu_user_usage_seconds_total",
        "counter",
        "Total CPU time spent in user mode.",
        [(lab(i), counter("cpu", i) * 0.8) for i in vms],
    )
    w.family(
        "kubevirt_vmi_cpu_system_usage_seconds_total",
        "counter",
        "Total CPU time spent in system mode.",
        [(lab(i), counter("cpu", i) * 0.2) for i in vms],
    )
    vcpu_rows = []
    delay_rows = []
    for i in vms:
        n = max(1, int(s.view.inv.vcpus[i]))
        cpu_share, delay_share = counter("cpu", i) / n, counter("delay", i) / n
        for vcpu in range(n):
            vcpu_rows.append((f'{s.vm_labels[i]},id="{vcpu}",state="running"', cpu_share))
            delay_rows.append((f'{s.vm_labels[i]},id="{vcpu}"', delay_share))
    w.family(
        "kubevirt_vmi_vcpu_seconds_total",
        "counter",
        "Total amount of time spent in each state by each vcpu (cpu_time excluding hypervisor time).",
        vcpu_rows,
    )
    w.family(
        "kubevirt_vmi_vcpu_delay_seconds_total",
        "counter",
        "Amount of time spent by each vcpu waiting in the queue instead of running.",
        delay_rows,
    )


def _vmi_memory_gauges(s: _VmiSeries) -> tuple[tuple[str, str, Callable[[int], Any]], ...]:
    """The ``kubevirt_vmi_memory_*_bytes`` gauges: name, help and value per VM index."""
    view, inv = s.view, s.view.inv
    guest = {i: float(inv.memory[i]) for i in s.vms}
    used = {i: view.vm_mem[:, i] * guest[i] for i in s.vms}
    return (
        (
            "kubevirt_vmi_memory_available_bytes",
            "Amount of usable memory as seen by the domain.",
            lambda i: np.full(len(view.times), guest[i]),
        ),
        (
            "kubevirt_vmi_memory_usable_bytes",
            "The amount of memory which can be reclaimed by balloon without pushing the guest system to swap.",
            lambda i: guest[i] - used[i],
        ),
        (
            "kubevirt_vmi_memory_unused_bytes",
            "The amount of memory left completely unused by the system.",
            lambda i: 0.8 * (guest[i] - used[i]),
        ),
        (
            "kubevirt_vmi_memory_cached_bytes",
            "The amount of memory that is being used to cache I/O and is available to be reclaimed.",
            lambda i: 0.2 * (guest[i] - used[i]),
        ),
        ("kubevirt_vmi_memory_used_bytes", "Amount of `used` memory as seen by the domain.", lambda i: used[i]),
        (
            "kubevirt_vmi_memory_domain_bytes",
            "The amount of memory in bytes allocated to the domain.",
            lambda i: np.full(len(view.times), guest[i]),
        ),
        (
            "kubevirt_vmi_memory_actual_balloon_bytes",
            "Current balloon size in bytes.",
            lambda i: np.full(len(view.times), guest[i]),
        ),
        (
            "kubevirt_vmi_memory_resident_bytes",
            "Resident set size of the process running the domain.",
            lambda i: used[i] + 0.6 * float(inv.overhead[i]),
        ),
        (
            "kubevirt_vmi_memory_swap_in_traffic_bytes",
            "The total amount of data read from swap space of the guest in bytes.",
            lambda i: np.zeros(len(view.times)),
        ),
        (
            "kubevirt_vmi_memory_swap_out_traffic_bytes",
            "The total amount of memory written out to swap space of the guest in bytes.",
            lambda i: np.zeros(len(view.times)),
        ),
    )


def _vmi_memory_families(w: Writer, s: _VmiSeries) -> None:
    """The memory gauges and the page-fault counters of each VMI."""
    vms, lab = s.vms, s.lab
    for name, help_text, fn in _vmi_memory_gauges(s):
        w.family(name, "gauge", help_text, [(lab(i), np.floor(np.asarray(fn(i)))) for i in vms])
    w.family(
        "kubevirt_vmi_memory_pgmajfault_total",
        "counter",
        "The number of page faults when disk IO was required.",
        [(lab(i), np.floor(s.counter("pgmajfault", i))) for i in vms],
    )
    w.family(
        "kubevirt_vmi_memory_pgminfault_total",
        "counter",
        "The number of other page faults, when disk IO was not required.",
        [(lab(i), np.floor(s.counter("pgminfault", i))) for i in vms],
    )


def _vmi_dirty_rate_and_network_families(w: Writer, s: _VmiSeries) -> None:
    """Each VMI's dirty rate (scaled by its CPU activity), launcher overhead and network traffic."""
    vms, lab, counter, inv = s.vms, s.lab, s.counter, s.view.inv
    base = np.maximum(inv.base_cpu, 0.01)
    w.family(
        "kubevirt_vmi_dirty_rate_bytes_per_second",
        "gauge",
        "Guest dirty-rate in bytes per second.",
        [(lab(i), np.round(float(inv.dirty[i]) * np.minimum(2.0, s.view.vm_cpu[:, i] / base[i]))) for i in vms],
    )
    w.family(
        "kubevirt_vmi_launcher_memory_overhead_bytes",
        "gauge",
        "Estimation of the memory amount required for virt-launcher's infrastructure components (e.g. libvirt, QEMU).",
        [(lab(i), float(inv.overhead[i])) for i in vms],
    )
    w.family(
        "kubevirt_vmi_network_receive_bytes_total",
        "counter",
        "Total network traffic received in bytes.",
        [(lab(i, interface="default"), np.floor(counter("rx", i))) for i in vms],
    )
    w.family(
        "kubevirt_vmi_network_transmit_bytes_total",
        "counter",
        "Total network traffic transmitted in bytes.",
        [(lab(i, interface="default"), np.floor(counter("tx", i))) for i in vms],
    )


def _vmi_migration_families(w: Writer, rows: list[Obj], extra: dict[str, str] | None) -> None:
    """The transfer progress of the migrations leaving the given nodes (rows of :func:`active_migrations`)."""
    for name, kind, help_text, key in _MIGRATION_FAMILIES:
        series = []
        for m in rows:
            pairs = {**(extra or {})}
            if extra is not None:
                pairs["instance"] = m["node"]
            pairs.update(node=m["node"], namespace=m["namespace"], name=m["name"])
            series.append((labels(**pairs), float(m[key])))
        w.family(name, kind, help_text, series)


def active_migrations(cluster: "SimCluster", now: float, node_index: dict[str, int]) -> list[Obj]:
    """Progress of the migrations in their transfer phase, as virt-handler's domain stats report it."""
    out: list[Obj] = []
    controller = cluster.migrations
    with cluster.store.lock:
        for vmim in cluster.store.iter_objects(_VMIMS):
            if (vmim.get("status") or {}).get("phase") != "Running":
                continue
            run = controller.runs.get(vmim["metadata"].get("uid", ""))
            if run is None or not run.source_node or run.source_node not in node_index:
                continue
            ns = vmim["metadata"].get("namespace") or ""
            vmi = cluster.store.try_get(_VMIS, ns, (vmim.get("spec") or {}).get("vmiName", ""), copy=False)
            if vmi is None:
                continue
            state = (vmi.get("status") or {}).get("migrationState") or {}
            started = state.get("startTimestamp")
            from .kubevirt import guest_memory_bytes

            memory = float(guest_memory_bytes(vmi.get("spec") or {}))
            begin = cluster.clock.sim_seconds_of(started) if started else now
            end = run.due if run.due is not None else now + 1.0
            fraction = 0.0 if end <= begin else min(1.0, max(0.0, (now - begin) / (end - begin)))
            dirty = float(controller._dirty_rate(vmi, int(memory)))
            duration = max(1.0, end - begin)
            total = memory + dirty * duration * 0.5
            out.append(
                {
                    "node": run.source_node,
                    "source_index": node_index[run.source_node],
                    "namespace": ns,
                    "name": vmi["metadata"]["name"],
                    "total": total,
                    "processed": total * fraction,
                    "remaining": total * (1.0 - fraction),
                    "dirty": dirty,
                    "rate": total / duration,
                }
            )
    return out


def virt_controller(w: Writer, cluster: "SimCluster", extra: dict[str, str] | None = None) -> None:
    """virt-controller's cluster-wide families (current state only)."""
    pre = {**(extra or {})}
    with cluster.store.lock:
        phases, finished = _migrations_by_phase(cluster)
        vmis = list(cluster.store.iter_objects(_VMIS))
        vms = list(cluster.store.iter_objects(_VMS))
    w.family(
        "kubevirt_virt_controller_leading_status",
        "gauge",
        "Indication for an operating virt-controller.",
        [(labels(**pre, pod="virt-controller-0"), 1.0)],
    )
    for phase, count in phases.items():
        w.family(
            f"kubevirt_vmi_migrations_in_{phase}_phase",
            "gauge",
            f"Number of current {phase} migrations.",
            [(labels(**pre), float(count))],
        )
    _finished_migration_families(w, pre, finished)
    _vmi_info_family(w, pre, vmis)
    _vm_resource_requests_family(w, pre, vms)


def _migrations_by_phase(cluster: "SimCluster") -> tuple[dict[str, int], list[Obj]]:
    """How many migrations are in each unfinished phase group, and the finished ones (store lock held)."""
    phases = {"pending": 0, "scheduling": 0, "running": 0, "unset": 0}
    finished: list[Obj] = []
    for vmim in cluster.store.iter_objects(_VMIMS):
        phase = (vmim.get("status") or {}).get("phase") or ""
        if phase == "":
            phases["unset"] += 1
        elif phase == "Pending":
            phases["pending"] += 1
        elif phase in ("Scheduling", "Scheduled", "PreparingTarget", "TargetReady"):
            phases["scheduling"] += 1
        elif phase == "Running":
            phases["running"] += 1
        else:
            finished.append(vmim)
    return phases, finished


def _finished_migration_families(w: Writer, pre: dict[str, str], finished: list[Obj]) -> None:
    """Outcome, start and end time of each finished migration."""

    def mlabels(m: Obj) -> str:
        meta = m["metadata"]
        return labels(
            **pre, namespace=meta.get("namespace", ""), vmi=(m.get("spec") or {}).get("vmiName", ""), vmim=meta["name"]
        )

    def when(m: Obj, key: str) -> float:
        stamp = ((m.get("status") or {}).get("migrationState") or {}).get(key)
        if not stamp:
            return 0.0
        return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()

    w.family(
        "kubevirt_vmi_migration_succeeded",
        "gauge",
        "Indicates if the VMI migration succeeded.",
        [(mlabels(m), 1.0) for m in finished if m["status"]["phase"] == "Succeeded"],
    )
    w.family(
        "kubevirt_vmi_migration_failed",
        "gauge",
        "Indicates if the VMI migration failed.",
        [(mlabels(m), 1.0) for m in finished if m["status"]["phase"] == "Failed"],
    )
    w.family(
        "kubevirt_vmi_migration_start_time_seconds",
        "gauge",
        "The time at which the migration started.",
        [(mlabels(m), when(m, "startTimestamp")) for m in finished if when(m, "startTimestamp")],
    )
    w.family(
        "kubevirt_vmi_migration_end_time_seconds",
        "gauge",
        "The time at which the migration ended.",
        [(mlabels(m), when(m, "endTimestamp")) for m in finished if when(m, "endTimestamp")],
    )


def _vmi_info_family(w: Writer, pre: dict[str, str], vmis: list[Obj]) -> None:
    """``kubevirt_vmi_info``: one series per VMI with its node and phase."""
    info = []
    for vmi in sorted(vmis, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"])):
        st = vmi.get("status") or {}
        meta = vmi["metadata"]
        info.append(
            (
                labels(
                    **pre,
                    name=meta["name"],
                    namespace=meta.get("namespace", ""),
                    node=st.get("nodeName") or "",
                    phase=(st.get("phase") or "").lower(),
                    os="<none>",
                    workload="<none>",
                    flavor="<none>",
                ),
                1.0,
            )
        )
    w.family("kubevirt_vmi_info", "gauge", "Information about VirtualMachineInstances.", info)


def _vm_resource_requests_family(w: Writer, pre: dict[str, str], vms: list[Obj]) -> None:
    """``kubevirt_vm_resource_requests``: each VM's vCPUs and guest memory."""
    from .kubevirt import guest_memory_bytes, vcpus

    requests = []
    for vm in sorted(vms, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"])):
        spec = ((vm.get("spec") or {}).get("template") or {}).get("spec") or {}
        meta = vm["metadata"]
        ns = meta.get("namespace", "")
        requests.append(
            (
                labels(**pre, name=meta["name"], namespace=ns, resource="cpu", unit="cores", source="domain"),
                float(vcpus(spec)),
            )
        )
        mem = guest_memory_bytes(spec)
        if mem:
            requests.append(
                (
                    labels(**pre, name=meta["name"], namespace=ns, resource="memory", unit="bytes", source="domain"),
                    float(mem),
                )
            )
    w.family(
        "kubevirt_vm_resource_requests",
        "gauge",
        "Resources requested by Virtual Machine. Reports memory and CPU requests.",
        requests,
    )
