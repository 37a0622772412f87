"""Workload classes and how each VM migrates: one classification for the planner and the capacity report.

**Classes** (seed 003's categorisation) come from measurements — CPU above 70 % of the vCPUs,
guest memory above 80 %, network traffic above `NETWORK_INTENSIVE` — and from what the user
declares in ``vm-rebalance.io/workload-class`` (annotation on the VM, comma-separated, or a label
of that key on the VM template): a class (``cpu``, ``memory``, ``io``, ``network``) or a seed
workload type (``database``, ``media``, ``streaming``, ``hpc`` …) that implies classes and a
migration consideration.

**Migration profile** (`migration_profile`): what the planner does differently for a VM.

- *Copy time*: pre-copy sends the guest memory, then what the guest dirtied meanwhile, round
  after round: ``memory / (bandwidth − dirty rate)``. The bandwidth is the KubeVirt CR's
  ``migrations.bandwidthPerMigration``; when the cluster sets none (unlimited), 1 GiB/s (a
  10 Gbit/s migration network) is assumed, and every text says "assumed".
- *High dirty rate* — measured at or above a quarter of the bandwidth, or a declared
  ``database`` / ``media`` / ``hpc`` workload: the move runs late in the plan and alone in its
  wave, so its rounds do not compete with other migrations for the network.
- *Would not converge* — a measured dirty rate at or above 80 % of the bandwidth, or a copy time
  beyond KubeVirt's completion timeout (``completionTimeoutPerGiB`` × GiB), without the cluster
  allowing auto-converge or post-copy: the automatic planner proposes the move cold, with that
  reason (``--live-only``: the VM stays, with that reason).
- *Network-heavy* (the ``network`` class): never two such moves from one node in the same wave
  (a wave constraint of the plan, so the executor needs no rule of its own).
- *Large memory* (``LARGE_MEMORY`` or more): its estimated copy time is shown in the plan.
"""

from collections.abc import Mapping
from dataclasses import dataclass

from vm_rebalance.model import GIB, MigrationLimits, MigrationMethod, VirtualMachine
from vm_rebalance.model.capacity import WorkloadClass, WorkloadClassification
from vm_rebalance.planner.eligibility import move_method

WORKLOAD_ANNOTATION = "vm-rebalance.io/workload-class"
"""On the VM (annotation, comma-separated) or its template (label, one value): classes or a workload type."""

CPU_INTENSIVE = 0.70
"""Seed 003: "CPU-intensive: >70% CPU utilization" (of the guest's vCPUs)."""
MEMORY_INTENSIVE = 0.80
"""Seed 003: "Memory-intensive: >80% memory utilization" (of the guest's memory)."""
MIB = 1024**2
NETWORK_INTENSIVE = 50 * MIB
"""Guest traffic (received + transmitted) from which a VM is network-intensive: 50 MiB/s ≈ 420 Mbit/s sustained."""
ASSUMED_BANDWIDTH = GIB
"""Bytes/s one migration gets when the KubeVirt CR sets no ``bandwidthPerMigration`` (unlimited): a 10 Gbit/s link."""
HIGH_DIRTY_SHARE = 0.25
"""A dirty rate at or above this share of the bandwidth: move late and alone."""
NO_CONVERGENCE_SHARE = 0.80
"""A dirty rate at or above this share of the bandwidth: pre-copy would not converge (propose cold)."""
LARGE_MEMORY = 16 * GIB
"""Guests this large get their estimated copy time in the plan's notes."""

WORKLOAD_CLASS_NOTES: Mapping[WorkloadClass, str] = {
    WorkloadClass.CPU: "CPU-intensive: balance CPU across nodes",
    WorkloadClass.MEMORY: "memory-intensive: balance memory across nodes; large guests migrate longer",
    WorkloadClass.IO: "I/O-intensive: distribute across storage backends",
    WorkloadClass.NETWORK: "network-intensive: stagger migrations (never several at once)",
}

WORKLOAD_TYPES: Mapping[str, tuple[tuple[WorkloadClass, ...], str]] = {
    # Seed 003, "Common Workload Types": resource profile → classes; migration considerations.
    "general": ((), "easy to migrate, low dirty page rate"),
    "database": (
        (WorkloadClass.CPU, WorkloadClass.MEMORY, WorkloadClass.IO),
        "high dirty page rate: schedule migrations carefully",
    ),
    "analytics": ((WorkloadClass.NETWORK,), "sensitive to migration pause: use a dedicated migration network"),
    "ai-ml": ((WorkloadClass.CPU, WorkloadClass.MEMORY), "large memory footprint: long migration times"),
    "streaming": ((WorkloadClass.NETWORK,), "network-intensive: avoid concurrent migrations"),
    "batch": ((), "migrate during job idle periods"),
    "hpc": ((WorkloadClass.CPU, WorkloadClass.MEMORY), "extremely long migrations: consider cold migration"),
    "edge": ((), "easy to migrate, scale horizontally"),
    "media": ((WorkloadClass.CPU, WorkloadClass.NETWORK), "high dirty page rate during processing"),
    "dev-test": ((), "higher overcommit acceptable"),
}
HIGH_DIRTY_TYPES = frozenset({"database", "media", "hpc"})
"""Declared workload types whose migrations seed 003 treats as high-dirty-rate."""


def _rate(n: float) -> str:
    return f"{n / GIB:.1f} GiB/s" if n >= GIB else f"{n / MIB:.0f} MiB/s"


def duration(seconds: float) -> str:
    """``45 s``, ``3 min``, ``1.5 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def guest_memory_used(vm: VirtualMachine) -> int | None:
    """Guest memory in use: the launcher pod's working set less the launcher overhead (request − guest)."""
    if vm.usage is None:
        return None
    overhead = max(0, vm.requests.memory_bytes - vm.guest_memory_bytes)
    return max(0, vm.usage.memory_bytes - overhead)


def declared(vm: VirtualMachine) -> list[tuple[str, str]]:
    """(token, where) pairs the user set: the VM annotation (comma-separated) and the template label."""
    found = []
    annotation = vm.annotations.get(WORKLOAD_ANNOTATION)
    if annotation:
        found += [(t.strip().lower(), "annotation") for t in annotation.split(",") if t.strip()]
    label = vm.labels.get(WORKLOAD_ANNOTATION)
    if label:
        found += [(t.strip().lower(), "label") for t in label.replace(".", ",").split(",") if t.strip()]
    return found


@dataclass(frozen=True, slots=True)
class MigrationProfile:
    """How a VM migrates (see the module docstring); ``reasons`` say why, for notes and the report."""

    bandwidth: float
    """Bytes/s the estimate uses."""
    bandwidth_assumed: bool
    """No ``bandwidthPerMigration`` in the KubeVirt CR: `ASSUMED_BANDWIDTH`."""
    estimated_seconds: float | None
    """Pre-copy time of a live migration; None when it would not converge."""
    high_dirty: bool
    converges: bool
    network_heavy: bool
    large_memory: bool
    reasons: tuple[str, ...] = ()

    @property
    def bandwidth_text(self) -> str:
        """``1.0 GiB/s (bandwidthPerMigration)`` or ``1.0 GiB/s (assumed: no bandwidthPerMigration)``."""
        where = "assumed: no bandwidthPerMigration" if self.bandwidth_assumed else "bandwidthPerMigration"
        return f"{_rate(self.bandwidth)} ({where})"

    @property
    def cold_reason(self) -> str | None:
        """Why the planner proposes a cold move although the VM could move live (None: it would not)."""
        return None if self.converges else next((r for r in self.reasons if "converge" in r), None)

    @property
    def special(self) -> bool:
        """Whether the planner treats this VM's move differently from an ordinary live move."""
        return self.high_dirty or not self.converges or self.network_heavy or self.large_memory


def classify_workload(
    vm: VirtualMachine, *, bandwidth_bytes_per_second: int | None = None, warnings: list[str] | None = None
) -> WorkloadClassification:
    """A VM's classes from its metrics and from what the user declared, with evidence and considerations."""
    classes: dict[WorkloadClass, None] = {}
    evidence: list[str] = []
    considerations: list[str] = []
    workload_type: str | None = None
    if vm.running and vm.usage is not None:
        if vm.vcpus > 0:
            cpu = vm.usage.cpu_millicores / (vm.vcpus * 1000)
            if cpu > CPU_INTENSIVE:
                classes[WorkloadClass.CPU] = None
                evidence.append(f"CPU {cpu * 100:.0f} % of {vm.vcpus} vCPU (metrics)")
        used = guest_memory_used(vm)
        if used is not None and vm.guest_memory_bytes > 0:
            mem = used / vm.guest_memory_bytes
            if mem > MEMORY_INTENSIVE:
                classes[WorkloadClass.MEMORY] = None
                evidence.append(f"memory {mem * 100:.0f} % of {vm.guest_memory_bytes / GIB:.0f} GiB guest (metrics)")
    if vm.running and vm.network_bytes_per_second is not None and vm.network_bytes_per_second >= NETWORK_INTENSIVE:
        classes[WorkloadClass.NETWORK] = None
        evidence.append(f"network {_rate(vm.network_bytes_per_second)} (metrics)")
    unknown = []
    for token, where in declared(vm):
        if token in WorkloadClass.__members__.values():
            classes[WorkloadClass(token)] = None
            evidence.append(f"{where} {WORKLOAD_ANNOTATION}: {token}")
        elif token in WORKLOAD_TYPES:
            workload_type = workload_type or token
            type_classes, note = WORKLOAD_TYPES[token]
            for k in type_classes:
                classes[k] = None
            evidence.append(f"{where} {WORKLOAD_ANNOTATION}: {token}")
            considerations.append(f"{token}: {note}")
        else:
            unknown.append(token)
    if unknown and warnings is not None:
        known = ", ".join([*(k.value for k in WorkloadClass), *WORKLOAD_TYPES])
        warnings.append(
            f"VM {vm.namespace}/{vm.name}: unknown {WORKLOAD_ANNOTATION} value(s) {', '.join(unknown)} (known: {known})"
        )
    if vm.dirty_rate_bytes_per_second is not None and vm.running:
        evidence.append(f"dirty rate {_rate(vm.dirty_rate_bytes_per_second)} (metrics)")
    ordered = tuple(k for k in WorkloadClass if k in classes)
    considerations += [WORKLOAD_CLASS_NOTES[k] for k in ordered]
    if WorkloadClass.MEMORY in classes and bandwidth_bytes_per_second:
        seconds = vm.guest_memory_bytes / bandwidth_bytes_per_second
        considerations.append(
            f"copying {vm.guest_memory_bytes / GIB:.0f} GiB takes ≥ {seconds:.0f} s at the bandwidth limit"
        )
    return WorkloadClassification(
        namespace=vm.namespace,
        vm=vm.name,
        node=vm.node,
        classes=ordered,
        workload_type=workload_type,
        evidence=tuple(evidence),
        considerations=tuple(dict.fromkeys(considerations)),
    )


def copy_seconds(memory: int, bandwidth: float, dirty: float) -> float | None:
    """Pre-copy time: the guest memory, then what was dirtied meanwhile, round after round —
    ``memory / (bandwidth − dirty)``; None when the guest dirties as fast as the link copies."""
    if memory <= 0:
        return 0.0
    if dirty >= bandwidth:
        return None
    return memory / (bandwidth - dirty)


def migration_profile(vm: VirtualMachine, limits: MigrationLimits) -> MigrationProfile:
    """How ``vm`` migrates on a cluster with these KubeVirt migration settings (see the module docstring)."""
    assumed = not limits.bandwidth_bytes_per_second
    bandwidth = float(limits.bandwidth_bytes_per_second or ASSUMED_BANDWIDTH)
    classification = classify_workload(vm)
    dirty = vm.dirty_rate_bytes_per_second
    memory = vm.guest_memory_bytes
    seconds = copy_seconds(memory, bandwidth, float(dirty or 0))
    timeout = limits.completion_timeout_per_gib_seconds * max(memory / GIB, 1.0)
    reasons: list[str] = []
    rescued = limits.allow_auto_converge or limits.allow_post_copy
    converges = True
    high_dirty = False
    if dirty is not None and dirty >= NO_CONVERGENCE_SHARE * bandwidth and not rescued:
        converges = False
        reasons.append(
            f"live migration would not converge: dirty rate {_rate(dirty)} against {_rate(bandwidth)} per migration"
            + (" (assumed)" if assumed else " (bandwidthPerMigration)")
        )
    elif seconds is not None and seconds > timeout and not rescued:
        converges = False
        reasons.append(
            f"live migration would not converge in time: ~{duration(seconds)} to copy "
            f"{memory / GIB:.0f} GiB exceeds KubeVirt's completion timeout ({duration(timeout)})"
        )
    if dirty is not None and dirty >= HIGH_DIRTY_SHARE * bandwidth:
        high_dirty = True
        if converges:
            reasons.append(f"high dirty rate {_rate(dirty)} ({dirty / bandwidth:.0%} of the bandwidth)")
    elif classification.workload_type in HIGH_DIRTY_TYPES:
        high_dirty = True
        reasons.append(f"{classification.workload_type} workload: high dirty page rate")
    network = WorkloadClass.NETWORK in classification.classes
    if network:
        reasons.append("network-intensive")
    large = memory >= LARGE_MEMORY
    return MigrationProfile(
        bandwidth=bandwidth,
        bandwidth_assumed=assumed,
        estimated_seconds=seconds if converges else None,
        high_dirty=high_dirty,
        converges=converges,
        network_heavy=network,
        large_memory=large,
        reasons=tuple(reasons),
    )


def planned_method(vm: VirtualMachine, limits: MigrationLimits) -> MigrationMethod:
    """How the automatic planner moves ``vm``: cold when it cannot move live, or when a live migration
    would not converge (its dirty rate against the bandwidth); else live."""
    method = move_method(vm)
    if method is MigrationMethod.LIVE and not migration_profile(vm, limits).converges:
        return MigrationMethod.COLD
    return method


def profile_note(profile: MigrationProfile, vm: VirtualMachine, *, live: bool) -> str:
    """What a move's note adds for a special VM: the order rule it follows and the estimated copy time."""
    parts = []
    if live and profile.high_dirty:
        parts.append(
            f"{next((r for r in profile.reasons if 'dirty' in r), 'high dirty rate')}: late, alone in its wave"
        )
    if live and profile.network_heavy:
        parts.append("network-intensive: no other network-intensive move from this node in its wave")
    if live and (profile.large_memory or profile.high_dirty) and profile.estimated_seconds is not None:
        seconds = profile.estimated_seconds
        parts.append(
            f"~{duration(max(seconds, 1.0))} to copy {vm.guest_memory_bytes / GIB:.0f} GiB at {profile.bandwidth_text}"
        )
    return "; ".join(parts)


def profile_considerations(profile: MigrationProfile) -> tuple[str, ...]:
    """The profile as the capacity report states it (what a plan would do with the VM)."""
    out = []
    if not profile.converges and profile.cold_reason:
        out.append(f"{profile.cold_reason}: a plan proposes it cold")
    elif profile.high_dirty:
        out.append("high dirty rate: a plan moves it late and alone in its wave")
    if profile.network_heavy:
        out.append("network-intensive: a plan never moves two such VMs from one node at once")
    if profile.large_memory and profile.estimated_seconds is not None:
        out.append(f"~{duration(max(profile.estimated_seconds, 1.0))} to copy at {profile.bandwidth_text}")
    return tuple(out)
