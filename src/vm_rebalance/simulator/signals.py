"""Load over time and the signals monitoring reads from it: per-VM load patterns (diurnal swings,
bursts, noise) deterministic from the cluster's seed, integrated into the counters and gauges that
KubeVirt's virt-handler / virt-controller and node-exporter expose, and the kubelet's PSI.

**Load patterns.** A VM (or VMI) annotation ``simulator.vm-rebalance.io/load-pattern`` holds terms
separated by ``;``:

- ``diurnal=A`` — CPU follows a daily cosine of relative amplitude ``A`` peaking at ``peak=H``
  (hour of day of the simulated clock, default 14);
- ``burst=START+DURATION@LEVEL`` — from ``START`` for ``DURATION`` simulated seconds (relative to the
  simulation start, negative = before it; suffixes ``s``, ``m``, ``h``) the guest keeps ``LEVEL`` of
  its vCPUs busy (a 2-minute spike: ``burst=-30+2m@1.0``; a node hot for hours:
  ``burst=-4h+6h@0.95``); several bursts may be given;
- ``noise=R`` — multiplicative noise of relative standard deviation ``R``, a fresh draw every
  15 simulated seconds, from the seed and the VM's identity.

The base level is the VM's ``…/cpu-usage`` (and ``…/memory-usage``) annotation. Memory follows the
diurnal swing at a quarter of its amplitude. Without a pattern, load is constant (as before).

**Time.** Everything is a function of simulated time, sampled on a 15 s grid. Counters start
:data:`HISTORY_SECONDS` before the simulation began, so a window of the past exists from the first
second: :meth:`Signals.openmetrics_history` writes it as OpenMetrics with explicit timestamps (for
``promtool tsdb create-blocks-from openmetrics``), and the live endpoints continue the same counters.
The history is computed with the current placement of the VMs.

**PSI** comes from utilisation: CPU "some" pressure grows from 0 at 70 % busy to 50 % of the time
at 100 %; memory pressure from 80 % used; a little I/O pressure everywhere; swap traffic above 90 %
memory use.
"""

import math
import re
import threading
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .kubevirt import (
    CPU_USAGE_ANNOTATION,
    DIRTY_RATE_ANNOTATION,
    MEMORY_USAGE_ANNOTATION,
    guest_memory_bytes,
    memory_overhead_bytes,
    vcpus,
)
from .quantity import cpu_millicores, memory_bytes

if TYPE_CHECKING:
    from .cluster import SimCluster
    from .store import WatchEvent

Obj = dict[str, Any]
PATTERN_ANNOTATION = "simulator.vm-rebalance.io/load-pattern"
NETWORK_RATE_ANNOTATION = "simulator.vm-rebalance.io/network-rate"
"""Guest network traffic at full CPU load, bytes per second as a quantity (default ``4Mi``)."""
BUCKET = 15.0
HISTORY_SECONDS = 6 * 3600.0
DEFAULT_CPU = 0.25
DEFAULT_MEMORY = 0.6
NODE_CPU_MODES = ("idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user")
_CHUNK = 240
_VMS = ("kubevirt.io", "virtualmachines")
_VMIS = ("kubevirt.io", "virtualmachineinstances")
_NODES = ("", "nodes")
_VMIMS = ("kubevirt.io", "virtualmachineinstancemigrations")


# -- load patterns ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Burst:
    start: float
    duration: float
    level: float


@dataclass(frozen=True)
class LoadPattern:
    diurnal: float = 0.0
    peak_hour: float = 14.0
    noise: float = 0.0
    bursts: tuple[Burst, ...] = ()


def _seconds(text: str) -> float:
    m = re.fullmatch(r"\s*([+-]?\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if m is None:
        raise ValueError(f"not a duration: {text!r}")
    return float(m.group(1)) * {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}[m.group(2)]


def parse_pattern(text: str) -> LoadPattern:
    """A load pattern from its annotation text (grammar in the module docstring).

    Raises:
        ValueError: a term or value that does not parse.
    """
    diurnal, peak, noise = 0.0, 14.0, 0.0
    bursts: list[Burst] = []
    for term in (t.strip() for t in text.split(";")):
        if not term:
            continue
        key, sep, value = term.partition("=")
        if not sep:
            raise ValueError(f"load pattern term {term!r} is not key=value")
        key = key.strip()
        try:
            if key == "diurnal":
                diurnal = float(value)
            elif key == "peak":
                peak = float(value) % 24
            elif key == "noise":
                noise = max(0.0, float(value))
            elif key == "burst":
                m = re.fullmatch(r"\s*([+-]?[\d.]+[smh]?)\s*\+\s*([\d.]+[smh]?)\s*@\s*([\d.]+)\s*", value)
                if m is None:
                    raise ValueError(f"burst {value!r} is not START+DURATION@LEVEL")
                bursts.append(Burst(_seconds(m.group(1)), _seconds(m.group(2)), float(m.group(3))))
            else:
                raise ValueError(f"unknown load pattern term {key!r} (diurnal, peak, noise, burst)")
        except ValueError as err:
            if "load pattern" in str(err) or "burst" in str(err):
                raise
            raise ValueError(f"load pattern term {term!r}: {err}") from None
    return LoadPattern(diurnal, peak, noise, tuple(bursts))


def _mix(values: np.ndarray) -> np.ndarray:
    """A 64-bit integer hash (splitmix64's finaliser), vectorised."""
    z = values.astype(np.uint64)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return z


def _normal(seed: int, ident: str, buckets: np.ndarray) -> np.ndarray:
    """Deterministic standard-normal draws per (seed, ident, bucket)."""
    salt = np.uint64((zlib.crc32(f"{seed}/{ident}".encode()) << 20) + 0x9E3779B97F4A7C15 % (1 << 40))
    with np.errstate(over="ignore"):
        base = buckets.astype(np.int64).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + salt
    u1 = (_mix(base) >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    u2 = (_mix(base + np.uint64(1)) >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    return np.asarray(np.sqrt(-2.0 * np.log(np.maximum(u1, 1e-12))) * np.cos(2 * math.pi * u2))


# -- inventory --------------------------------------------------------------------------------------------


def _fraction(annotations: dict[str, str], key: str) -> float | None:
    try:
        return max(0.0, float(annotations[key])) if key in annotations else None
    except ValueError:
        return None


@dataclass
class _Inventory:
    """Running VMIs and nodes as arrays (rebuilt when the cluster changes)."""

    vm_keys: list[tuple[str, str]] = field(default_factory=list)
    vm_node: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    vcpus: np.ndarray = field(default_factory=lambda: np.zeros(0))
    memory: np.ndarray = field(default_factory=lambda: np.zeros(0))
    overhead: np.ndarray = field(default_factory=lambda: np.zeros(0))
    base_cpu: np.ndarray = field(default_factory=lambda: np.zeros(0))
    base_mem: np.ndarray = field(default_factory=lambda: np.zeros(0))
    diurnal: np.ndarray = field(default_factory=lambda: np.zeros(0))
    peak: np.ndarray = field(default_factory=lambda: np.zeros(0))
    noise: np.ndarray = field(default_factory=lambda: np.zeros(0))
    dirty: np.ndarray = field(default_factory=lambda: np.zeros(0))
    network: np.ndarray = field(default_factory=lambda: np.zeros(0))
    bursts: list[tuple[int, Burst]] = field(default_factory=list)
    noisy: list[int] = field(default_factory=list)
    info: list[Obj] = field(default_factory=list)
    node_names: list[str] = field(default_factory=list)
    node_cores: np.ndarray = field(default_factory=lambda: np.zeros(0))
    node_mem: np.ndarray = field(default_factory=lambda: np.zeros(0))
    node_sys_cpu: np.ndarray = field(default_factory=lambda: np.zeros(0))
    node_sys_mem: np.ndarray = field(default_factory=lambda: np.zeros(0))
    node_ready: list[bool] = field(default_factory=list)


#: Per-node counters integrated over time (columns of Signals.node_counters).
_NODE_COLUMNS = (
    *(f"cpu_{m}" for m in NODE_CPU_MODES),
    "psi_cpu_some",
    "psi_mem_some",
    "psi_mem_full",
    "psi_io_some",
    "psi_io_full",
    "pswpin",
    "pswpout",
)
_COL = {name: i for i, name in enumerate(_NODE_COLUMNS)}
#: Per-VM counters.
_VM_COLUMNS = ("cpu", "delay", "rx", "tx", "pgmajfault", "pgminfault")
_VCOL = {name: i for i, name in enumerate(_VM_COLUMNS)}


def node_shares(util: np.ndarray, mem_util: np.ndarray) -> dict[str, np.ndarray]:
    """Per-second shares of each node counter for CPU utilisation ``util`` and memory use ``mem_util``."""
    u = np.clip(util, 0.0, 1.0)
    m = np.clip(mem_util, 0.0, 1.0)
    cpu_some = np.minimum(1.0, 0.5 * np.square(np.clip((u - 0.7) / 0.3, 0.0, None)))
    mem_some = np.minimum(1.0, 0.4 * np.square(np.clip((m - 0.8) / 0.2, 0.0, None)))
    io_some = 0.01 + 0.04 * u
    swap = 2000.0 * np.clip((m - 0.9) / 0.1, 0.0, None)
    iowait = 0.01 * (1.0 - u)
    return {
        "cpu_user": 0.75 * u,
        "cpu_system": 0.2 * u,
        "cpu_softirq": 0.03 * u,
        "cpu_irq": 0.02 * u,
        "cpu_nice": np.zeros_like(u),
        "cpu_steal": np.zeros_like(u),
        "cpu_iowait": iowait,
        "cpu_idle": np.clip(1.0 - u - iowait, 0.0, None),
        "psi_cpu_some": cpu_some,
        "psi_mem_some": mem_some,
        "psi_mem_full": 0.5 * mem_some,
        "psi_io_some": io_some,
        "psi_io_full": 0.4 * io_some,
        "pswpin": 0.3 * swap,
        "pswpout": swap,
    }


def _add_vms(inv: _Inventory, rows: list[tuple[Any, ...]]) -> None:
    """Fill the VM columns of ``inv`` from the rows :meth:`Signals._vm_row` returns."""
    inv.vm_keys = [r[0] for r in rows]
    inv.vm_node = np.array([r[1] for r in rows], dtype=np.int64)
    inv.vcpus = np.array([r[2] for r in rows])
    inv.memory = np.array([r[3] for r in rows])
    inv.overhead = np.array([r[4] for r in rows])
    inv.base_cpu = np.array([r[5] for r in rows])
    inv.base_mem = np.array([r[6] for r in rows])
    inv.diurnal = np.array([r[7].diurnal for r in rows])
    inv.peak = np.array([r[7].peak_hour for r in rows])
    inv.noise = np.array([r[7].noise for r in rows])
    inv.dirty = np.array([r[8] for r in rows])
    inv.network = np.array([r[9] for r in rows])
    inv.info = [r[10] for r in rows]
    for i, r in enumerate(rows):
        inv.bursts.extend((i, b) for b in r[7].bursts)
        if r[7].noise > 0:
            inv.noisy.append(i)


class Signals:
    """The cluster's load over time and the metrics derived from it. Thread-safe; cheap until first used."""

    def __init__(self, cluster: "SimCluster") -> None:
        self.cluster = cluster
        self.store = cluster.store
        self._lock = threading.RLock()
        self._stale = True
        self._inv = _Inventory()
        self.k_done: int | None = None  # counters are integrated over buckets < k_done
        self.vm_counters: dict[tuple[str, str], np.ndarray] = {}
        self.node_counters: dict[str, np.ndarray] = {}
        self.patterns: set[tuple[str, str]] = set()
        """VMs with a load pattern (their metrics.k8s.io usage is refreshed on every metrics tick)."""
        self.store.subscribe(self._on_event)
        tod = cluster.clock.epoch
        self._epoch_tod = tod.hour * 3600 + tod.minute * 60 + tod.second

    # -- inventory ------------------------------------------------------------------------------------------

    def _on_event(self, event: "WatchEvent") -> None:
        if event.key in (_VMIS, _NODES, _VMS):
            self._stale = True
            if event.key in (_VMS, _VMIS):
                meta = event.obj["metadata"]
                ident = (meta.get("namespace") or "", meta["name"])
                if event.type != "DELETED" and PATTERN_ANNOTATION in (meta.get("annotations") or {}):
                    self.patterns.add(ident)

    def inventory(self) -> _Inventory:
        with self._lock:
            if self._stale:
                with self.store.lock:
                    self._inv = self._build()
                    self._stale = False
            return self._inv

    def _build(self) -> _Inventory:
        """The inventory of the nodes and the Running VMIs on them, read from the store (its lock held)."""
        inv = _Inventory()
        index = self._add_nodes(inv)
        rows: list[tuple[Any, ...]] = []
        for vmi in sorted(
            self.store.iter_objects(_VMIS), key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"])
        ):
            row = self._vm_row(vmi, index)
            if row is not None:
                rows.append(row)
        _add_vms(inv, rows)
        return inv

    def _add_nodes(self, inv: _Inventory) -> dict[str, int]:
        """Fill the node columns of ``inv`` (nodes in name order); returns each node's index."""
        nodes = sorted(self.store.iter_objects(_NODES), key=lambda n: n["metadata"]["name"])
        index = {}
        cores, mem, sys_cpu, sys_mem = [], [], [], []
        for i, n in enumerate(nodes):
            name = n["metadata"]["name"]
            index[name] = i
            inv.node_names.append(name)
            status = n.get("status") or {}
            capacity = status.get("capacity") or status.get("allocatable") or {}
            cores.append(max(0.001, cpu_millicores(capacity.get("cpu", "1")) / 1000))
            mem.append(float(max(1, memory_bytes(capacity.get("memory", "1Gi")))))
            ann = n["metadata"].get("annotations") or {}
            sc = _fraction(ann, "simulator.vm-rebalance.io/system-cpu-usage")
            sm = _fraction(ann, "simulator.vm-rebalance.io/system-memory-usage")
            sys_cpu.append(0.03 if sc is None else sc)
            sys_mem.append(0.06 if sm is None else sm)
            inv.node_ready.append(
                any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
            )
        inv.node_cores, inv.node_mem = np.array(cores), np.array(mem)
        inv.node_sys_cpu, inv.node_sys_mem = np.array(sys_cpu), np.array(sys_mem)
        return index

    def _vm_row(self, vmi: Obj, index: dict[str, int]) -> tuple[Any, ...] | None:
        """A Running VMI's row of the inventory (size, usage annotations of the VMI and its VM, pattern,
        info labels), or None when it is not running on a known node."""
        st = vmi.get("status") or {}
        node = st.get("nodeName")
        if st.get("phase") != "Running" or node not in index:
            return None
        meta = vmi["metadata"]
        ns, name = meta.get("namespace") or "", meta["name"]
        vm = self.store.try_get(_VMS, ns, name, copy=False)
        vm_ann = ((vm or {}).get("metadata") or {}).get("annotations") or {}
        ann = {**(meta.get("annotations") or {}), **vm_ann}
        spec = vmi.get("spec") or {}
        cpu = _fraction(ann, CPU_USAGE_ANNOTATION)
        memf = _fraction(ann, MEMORY_USAGE_ANNOTATION)
        try:
            pattern = parse_pattern(ann.get(PATTERN_ANNOTATION, ""))
        except ValueError:
            pattern = LoadPattern()
        guest = float(guest_memory_bytes(spec))
        dirty = ann.get(DIRTY_RATE_ANNOTATION)
        network = ann.get(NETWORK_RATE_ANNOTATION)
        return (
            (ns, name),
            index[node],
            float(vcpus(spec)),
            guest,
            float(memory_overhead_bytes(spec)),
            DEFAULT_CPU if cpu is None else min(1.0, cpu),
            DEFAULT_MEMORY if memf is None else min(1.0, memf),
            pattern,
            float(memory_bytes(dirty)) if dirty else 0.02 * guest,
            float(memory_bytes(network)) if network else 4.0 * 2**20,
            {
                "node": node,
                "instance_type": ((vm or {}).get("spec") or {}).get("instancetype", {}).get("name", "<none>"),
                "evictable": "true"
                if spec.get("evictionStrategy") in ("LiveMigrate", "LiveMigrateIfPossible")
                else "false",
                "migrating": bool((st.get("migrationState") or {}).get("startTimestamp"))
                and not (st.get("migrationState") or {}).get("completed"),
            },
        )

    # -- load -----------------------------------------------------------------------------------------------

    def cpu_fraction(self, inv: _Inventory, buckets: np.ndarray) -> np.ndarray:
        """CPU busy fraction of each VM's vCPUs, shape (len(buckets), VMs)."""
        t = buckets.astype(np.float64) * BUCKET
        tod = (self._epoch_tod + t) % 86400.0
        out = np.broadcast_to(inv.base_cpu, (len(t), len(inv.base_cpu))).copy()
        if np.any(inv.diurnal):
            phase = 2 * math.pi * (tod[:, None] / 3600.0 - inv.peak[None, :]) / 24.0
            out *= 1.0 + inv.diurnal[None, :] * np.cos(phase)
        for i in inv.noisy:
            out[:, i] *= np.maximum(
                0.0, 1.0 + inv.noise[i] * _normal(self.cluster.seed, "/".join(inv.vm_keys[i]), buckets)
            )
        for i, burst in inv.bursts:
            active = (t >= burst.start) & (t < burst.start + burst.duration)
            out[active, i] = np.maximum(out[active, i], burst.level)
        return np.asarray(np.clip(out, 0.0, 1.0))

    def memory_fraction(self, inv: _Inventory, buckets: np.ndarray) -> np.ndarray:
        t = buckets.astype(np.float64) * BUCKET
        tod = (self._epoch_tod + t) % 86400.0
        out = np.broadcast_to(inv.base_mem, (len(t), len(inv.base_mem))).copy()
        if np.any(inv.diurnal):
            phase = 2 * math.pi * (tod[:, None] / 3600.0 - inv.peak[None, :]) / 24.0
            out *= 1.0 + 0.25 * inv.diurnal[None, :] * np.cos(phase)
        return np.asarray(np.clip(out, 0.0, 1.0))

    def node_load(self, inv: _Inventory, buckets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(VM CPU fractions, node CPU utilisation, node memory utilisation) for ``buckets``."""
        cpu = self.cpu_fraction(inv, buckets)
        mem = self.memory_fraction(inv, buckets)
        nodes = len(inv.node_names)
        node_cpu = np.zeros((len(buckets), nodes))
        node_mem = np.zeros((len(buckets), nodes))
        if len(inv.vm_keys):
            cores = cpu * inv.vcpus[None, :] + 0.015
            used = mem * inv.memory[None, :] + inv.overhead[None, :] * 0.6
            for row in range(len(buckets)):
                node_cpu[row] = np.bincount(inv.vm_node, weights=cores[row], minlength=nodes)
                node_mem[row] = np.bincount(inv.vm_node, weights=used[row], minlength=nodes)
        util = node_cpu / inv.node_cores[None, :] + inv.node_sys_cpu[None, :]
        mem_util = node_mem / inv.node_mem[None, :] + inv.node_sys_mem[None, :]
        return cpu, np.clip(util, 0.0, 1.0), np.clip(mem_util, 0.0, 1.0)

    # -- integration ----------------------------------------------------------------------------------------

    def _bucket_increments(self, inv: _Inventory, buckets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-bucket counter increments: VMs [T, VMs, cols] and nodes [T, nodes, cols]."""
        cpu, util, mem_util = self.node_load(inv, buckets)
        shares = node_shares(util, mem_util)
        node_inc = np.zeros((len(buckets), len(inv.node_names), len(_NODE_COLUMNS)))
        for name, col in _COL.items():
            node_inc[:, :, col] = shares[name] * BUCKET
        vm_inc = np.zeros((len(buckets), len(inv.vm_keys), len(_VM_COLUMNS)))
        if len(inv.vm_keys):
            busy = cpu * inv.vcpus[None, :] * BUCKET
            vm_inc[:, :, _VCOL["cpu"]] = busy
            vm_inc[:, :, _VCOL["delay"]] = busy * shares["psi_cpu_some"][:, inv.vm_node]
            traffic = cpu * BUCKET * inv.network[None, :]
            vm_inc[:, :, _VCOL["rx"]] = traffic
            vm_inc[:, :, _VCOL["tx"]] = 0.6 * traffic
            vm_inc[:, :, _VCOL["pgminfault"]] = busy * 900.0
            vm_inc[:, :, _VCOL["pgmajfault"]] = busy * 0.5
        return vm_inc, node_inc

    def _increments(self, inv: _Inventory, k0: int, k1: int) -> tuple[np.ndarray, np.ndarray]:
        """Per-VM and per-node counter increments over buckets [k0, k1)."""
        vm_total = np.zeros((len(inv.vm_keys), len(_VM_COLUMNS)))
        node_total = np.zeros((len(inv.node_names), len(_NODE_COLUMNS)))
        for start in range(k0, k1, _CHUNK):
            vm_inc, node_inc = self._bucket_increments(inv, np.arange(start, min(k1, start + _CHUNK)))
            vm_total += vm_inc.sum(axis=0)
            node_total += node_inc.sum(axis=0)
        return vm_total, node_total

    def advance(self, now: float) -> int:
        """Integrate the counters up to the bucket of ``now``; returns that bucket."""
        k_now = math.floor(now / BUCKET)
        with self._lock:
            inv = self.inventory()
            if self.k_done is None:
                self.k_done = math.floor(-HISTORY_SECONDS / BUCKET)
            if k_now > self.k_done:
                vm_inc, node_inc = self._increments(inv, self.k_done, k_now)
                for i, key in enumerate(inv.vm_keys):
                    current = self.vm_counters.get(key)
                    self.vm_counters[key] = vm_inc[i] if current is None else current + vm_inc[i]
                for i, name in enumerate(inv.node_names):
                    current = self.node_counters.get(name)
                    self.node_counters[name] = node_inc[i] if current is None else current + node_inc[i]
                self.k_done = k_now
            return k_now

    def snapshot(self, now: float) -> "Snapshot":
        """Counters and gauges at simulated time ``now``."""
        with self._lock:
            k_now = self.advance(now)
            inv = self.inventory()
            partial = now - k_now * BUCKET
            vm_inc, node_inc = self._increments(inv, k_now, k_now + 1)
            cpu, util, mem_util = self.node_load(inv, np.arange(k_now - 19, k_now + 1))
            mem = self.memory_fraction(inv, np.array([k_now]))[0]
            vm_counts = {
                key: self.vm_counters.get(key, np.zeros(len(_VM_COLUMNS))) + vm_inc[i] * (partial / BUCKET)
                for i, key in enumerate(inv.vm_keys)
            }
            node_counts = {
                name: self.node_counters.get(name, np.zeros(len(_NODE_COLUMNS))) + node_inc[i] * (partial / BUCKET)
                for i, name in enumerate(inv.node_names)
            }
            return Snapshot(now, inv, cpu, util, mem_util, mem, vm_counts, node_counts)

    def vm_cpu_fraction_now(self, ns: str, name: str, now: float) -> float | None:
        """The VM's CPU busy fraction now when it has a load pattern (metrics.k8s.io follows it)."""
        inv = self.inventory()
        try:
            i = inv.vm_keys.index((ns, name))
        except ValueError:
            return None
        return float(self.cpu_fraction(_single(inv, i), np.array([math.floor(now / BUCKET)]))[0, 0])

    def vm_memory_fraction_now(self, ns: str, name: str, now: float) -> float | None:
        inv = self.inventory()
        try:
            i = inv.vm_keys.index((ns, name))
        except ValueError:
            return None
        return float(self.memory_fraction(_single(inv, i), np.array([math.floor(now / BUCKET)]))[0, 0])


def _single(inv: _Inventory, i: int) -> _Inventory:
    one = _Inventory(
        vm_keys=[inv.vm_keys[i]],
        vm_node=inv.vm_node[i : i + 1],
        vcpus=inv.vcpus[i : i + 1],
        memory=inv.memory[i : i + 1],
        overhead=inv.overhead[i : i + 1],
        base_cpu=inv.base_cpu[i : i + 1],
        base_mem=inv.base_mem[i : i + 1],
        diurnal=inv.diurnal[i : i + 1],
        peak=inv.peak[i : i + 1],
        noise=inv.noise[i : i + 1],
        dirty=inv.dirty[i : i + 1],
        network=inv.network[i : i + 1],
        bursts=[(0, b) for j, b in inv.bursts if j == i],
        noisy=[0] if i in inv.noisy else [],
    )
    return one


@dataclass
class Snapshot:
    """Signals at one moment: the last 20 buckets of load (for averages) and the counters."""

    now: float
    inv: _Inventory
    vm_cpu: np.ndarray  # (20, VMs), last row = now
    node_util: np.ndarray  # (20, nodes)
    node_mem_util: np.ndarray  # (20, nodes)
    vm_mem: np.ndarray  # (VMs,)
    vm_counters: dict[tuple[str, str], np.ndarray]
    node_counters: dict[str, np.ndarray]

    def node_index(self, name: str) -> int | None:
        try:
            return self.inv.node_names.index(name)
        except ValueError:
            return None

    def psi(self, node: int, kind: str) -> Obj:
        """The kubelet's PSIStats of a node: ``some``/``full`` with ``total`` (µs) and avg10/60/300 (%)."""
        shares = node_shares(self.node_util[:, node], self.node_mem_util[:, node])
        name = self.inv.node_names[node]
        counters = self.node_counters[name]
        out: Obj = {}
        for level in ("some", "full"):
            column = f"psi_{kind}_{level}"
            if column in _COL:
                series = shares[column]
                total = counters[_COL[column]]
            else:  # CPU "full" is not defined at the root cgroup: the kernel reports zero
                series = np.zeros(len(self.node_util))
                total = 0.0
            out[level] = {
                "total": int(total * 1e6),
                "avg10": round(float(series[-1]) * 100, 2),
                "avg60": round(float(series[-4:].mean()) * 100, 2),
                "avg300": round(float(series[-20:].mean()) * 100, 2),
            }
        return out


# -- views over time ----------------------------------------------------------------------------------------


@dataclass
class View:
    """Signals at one or more moments: what the exposition renders. Arrays are indexed [time, VM|node]."""

    inv: _Inventory
    times: np.ndarray  # simulated seconds
    vm_cpu: np.ndarray
    vm_mem: np.ndarray
    node_util: np.ndarray
    node_mem_util: np.ndarray
    vm_counters: np.ndarray  # [T, VMs, len(_VM_COLUMNS)]
    node_counters: np.ndarray  # [T, nodes, len(_NODE_COLUMNS)]


def live_view(signals: Signals, now: float) -> View:
    """The signals now, as a one-moment view."""
    snap = signals.snapshot(now)
    inv = snap.inv
    vm = np.array([snap.vm_counters[k] for k in inv.vm_keys]).reshape(len(inv.vm_keys), len(_VM_COLUMNS))
    nodes = np.array([snap.node_counters[n] for n in inv.node_names]).reshape(len(inv.node_names), len(_NODE_COLUMNS))
    return View(
        inv,
        np.array([now]),
        snap.vm_cpu[-1:],
        snap.vm_mem[None, :],
        snap.node_util[-1:],
        snap.node_mem_util[-1:],
        vm[None, :, :],
        nodes[None, :, :],
    )


def history_view(signals: Signals, start: float, end: float, step: float) -> View:
    """The signals at ``start``, ``start + step`` … ``end`` (simulated seconds, multiples of 15 s), with the
    current placement; counters continue into the live ones."""
    if step <= 0 or step % BUCKET or start % BUCKET or end % BUCKET:
        raise ValueError("start, end and step must be multiples of 15 seconds")
    if start < -HISTORY_SECONDS or end < start:
        raise ValueError(f"the history covers [{-int(HISTORY_SECONDS)}, now] simulated seconds")
    inv = signals.inventory()
    k_origin = math.floor(-HISTORY_SECONDS / BUCKET)
    sample_k = np.arange(int(start // BUCKET), int(end // BUCKET) + 1, int(step // BUCKET))
    vm_out = np.zeros((len(sample_k), len(inv.vm_keys), len(_VM_COLUMNS)))
    node_out = np.zeros((len(sample_k), len(inv.node_names), len(_NODE_COLUMNS)))
    # Counters at bucket k are the sum of the increments of the buckets before k.
    vm_cum, node_cum = signals._increments(inv, k_origin, int(sample_k[0]))
    position = {int(k): j for j, k in enumerate(sample_k)}
    vm_out[0], node_out[0] = vm_cum, node_cum
    last = int(sample_k[-1])
    for start in range(int(sample_k[0]), last, _CHUNK):
        buckets = np.arange(start, min(last, start + _CHUNK))
        vm_inc, node_inc = signals._bucket_increments(inv, buckets)
        vm_running = vm_cum + np.cumsum(vm_inc, axis=0)
        node_running = node_cum + np.cumsum(node_inc, axis=0)
        for row, k in enumerate(buckets.tolist()):
            j = position.get(k + 1)
            if j is not None:
                vm_out[j], node_out[j] = vm_running[row], node_running[row]
        vm_cum, node_cum = vm_running[-1], node_running[-1]
    cpu, util, mem_util = signals.node_load(inv, sample_k)
    mem = signals.memory_fraction(inv, sample_k)
    return View(inv, sample_k * BUCKET, cpu, mem, util, mem_util, vm_out, node_out)
