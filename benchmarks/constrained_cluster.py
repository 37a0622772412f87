"""A seeded generator of imbalanced clusters WITH the constraints real clusters have.

Used by `planner_bench.py` and by the planner's scale-quality test. Deliberately independent
of the simulator's scenario builders. What it makes, for ``n_nodes`` nodes and ``n_vms`` VMs:

* nodes of mixed sizes (16, 32, 48 or 64 cores; 4 or 8 GiB per core, 8 twice as often), three zones, 40 % with
  ``disk=ssd``, 8 % an infra pool tainted ``dedicated=infra:NoSchedule`` (label
  ``node-pool=infra``), 1 % cordoned and one control-plane node (neither may receive VMs);
* VMs of eight shapes (1-16 vCPU, 2-64 GiB), launcher requests 250m CPU per vCPU and the
  guest memory plus 3 %, measured usage (CPU a beta-distributed share of the vCPUs, memory
  40-95 % of the guest) — metrics are available, so plans use the usage basis;
* constraints: 10 % ``nodeSelector disk=ssd``; 5 % infra VMs (tolerate the taint and select
  ``node-pool=infra``); 15 % in HA groups of 2-4 replicas with required pod anti-affinity on
  the hostname; 15 % RWO disks (they move cold); 10 % container disks (live); 1 % annotated
  do-not-move;
* placement skewed by a Pareto preference so a minority of nodes run hot, every constraint
  and capacity (by requests, at most 95 % of allocatable) respected at the start.
"""

import numpy as np

from vm_rebalance.model import (
    DO_NOT_MOVE_ANNOTATION,
    ClusterState,
    LabelSelector,
    Node,
    Placement,
    PodAffinityTerm,
    Resources,
    Taint,
    Toleration,
    VirtualMachine,
    Volume,
)

GI = 1024**3
CORES = (16, 32, 48, 64)
GIB_PER_CORE = (4, 8, 8)
SHAPES = ((1, 2), (2, 4), (2, 8), (4, 8), (4, 16), (8, 16), (8, 32), (16, 64))
SHAPE_P = (0.28, 0.30, 0.14, 0.12, 0.08, 0.05, 0.02, 0.01)
SYSTEM = Resources(1000, 2 * GI)
"""What non-VM pods request and use on every node."""

_INFRA_TAINT = Taint("dedicated", "NoSchedule", "infra")
_INFRA_TOLERATION = Toleration(key="dedicated", operator="Equal", value="infra", effect="NoSchedule")


def _nodes_spec(n_nodes: int, rng: np.random.Generator) -> tuple[np.ndarray, list[dict[str, str]], list[bool], int]:
    cores = rng.choice(CORES, n_nodes)
    gib = cores * rng.choice(GIB_PER_CORE, n_nodes)
    alloc = np.stack([cores * 1000.0 - 500, gib * GI - 4.0 * GI], axis=1)
    labels: list[dict[str, str]] = []
    tainted: list[bool] = []
    infra = rng.random(n_nodes) < 0.08
    ssd = rng.random(n_nodes) < 0.40
    for j in range(n_nodes):
        lab = {
            "kubernetes.io/hostname": f"node-{j:04d}",
            "kubevirt.io/schedulable": "true",
            "topology.kubernetes.io/zone": f"zone-{j % 3}",
        }
        if ssd[j]:
            lab["disk"] = "ssd"
        if infra[j]:
            lab["node-pool"] = "infra"
        labels.append(lab)
        tainted.append(bool(infra[j]))
    control = n_nodes - 1
    labels[control]["node-role.kubernetes.io/control-plane"] = ""
    return alloc, labels, tainted, control


def generate(n_nodes: int, n_vms: int, seed: int = 0) -> ClusterState:
    """An imbalanced, constrained cluster (see the module docstring). Deterministic per seed."""
    rng = np.random.default_rng(seed)
    alloc, labels, tainted, control = _nodes_spec(n_nodes, rng)
    cordoned = set(rng.choice(n_nodes - 1, max(1, n_nodes // 100), replace=False).tolist()) if n_nodes > 4 else set()
    shapes = np.array(SHAPES, dtype=np.float64)[rng.choice(len(SHAPES), n_vms, p=SHAPE_P)]
    vcpus = shapes[:, 0]
    guest = shapes[:, 1] * GI
    req = np.stack([vcpus * 250.0, guest * 1.03], axis=1)
    cpu_use = vcpus * 1000.0 * rng.beta(1.6, 3.5, n_vms)
    mem_use = guest * rng.uniform(0.4, 0.95, n_vms)

    kind = rng.random(n_vms)
    ssd_vm = kind < 0.10
    infra_vm = (kind >= 0.10) & (kind < 0.15)
    storage = rng.random(n_vms)
    rwo = storage < 0.15
    cdisk = (storage >= 0.15) & (storage < 0.25)
    pinned = rng.random(n_vms) < 0.01
    # HA groups: 15 % of the VMs, groups of 2-4 replicas with required anti-affinity on the hostname.
    group = np.full(n_vms, -1, dtype=np.int64)
    in_group = np.flatnonzero(rng.random(n_vms) < 0.15)
    g, k = 0, 0
    while k < len(in_group):
        size = int(rng.integers(2, 5))
        group[in_group[k : k + size]] = g
        g += 1
        k += size

    ssd_nodes = np.array(["disk" in lab for lab in labels])
    infra_nodes = np.array(tainted)
    eligible = np.ones(n_nodes, dtype=bool)
    eligible[control] = False
    host = eligible.copy()
    pref = rng.pareto(1.1, n_nodes) + 0.3
    pref[~host] = 0.0
    pref /= pref.sum()
    used = np.tile(np.array([SYSTEM.cpu_millicores, SYSTEM.memory_bytes], dtype=np.float64), (n_nodes, 1))
    placement = np.full(n_vms, -1, dtype=np.int64)
    members: dict[int, set[int]] = {}
    cdf: dict[tuple[bool, bool], np.ndarray] = {}
    allowed_of: dict[tuple[bool, bool], np.ndarray] = {}
    for key in ((False, False), (False, True), (True, False), (True, True)):
        allowed = host & (infra_nodes if key[0] else ~infra_nodes)
        if key[1]:
            allowed &= ssd_nodes
        allowed_of[key] = allowed
        p = np.where(allowed, pref, 0.0)
        cdf[key] = np.cumsum(p) / p.sum() if p.sum() > 0 else np.zeros(0)
    order = np.argsort(-req[:, 1], kind="stable")  # big first, so they find room
    for i in order.tolist():
        key = (bool(infra_vm[i]), bool(ssd_vm[i]))
        if len(cdf[key]) == 0:
            continue
        taken = members.get(int(group[i]), set()) if group[i] >= 0 else set()
        tries = np.minimum(np.searchsorted(cdf[key], rng.random(12)), n_nodes - 1)
        spot = -1
        for j in tries.tolist():
            if allowed_of[key][j] and j not in taken and (used[j] + req[i] <= alloc[j] * 0.95).all():
                spot = j
                break
        if spot < 0:
            fit = allowed_of[key] & (used + req[i] <= alloc * 0.95).all(axis=1)
            fit[list(taken)] = False
            if not fit.any():
                continue
            cand = np.flatnonzero(fit)
            spot = int(cand[np.argmin((used[cand] / alloc[cand]).max(axis=1))])
        placement[i] = spot
        used[spot] += req[i]
        if group[i] >= 0:
            members.setdefault(int(group[i]), set()).add(spot)

    vm_usage = np.stack([cpu_use, mem_use], axis=1)
    node_usage = np.tile(np.array([SYSTEM.cpu_millicores, SYSTEM.memory_bytes], dtype=np.float64), (n_nodes, 1))
    placed = placement >= 0
    np.add.at(node_usage, placement[placed], vm_usage[placed])

    nodes = tuple(
        Node(
            name=f"node-{j:04d}",
            labels=labels[j],
            taints=(_INFRA_TAINT,) if tainted[j] else (),
            unschedulable=j in cordoned,
            capacity=Resources(int(alloc[j, 0]) + 500, int(alloc[j, 1]) + 4 * GI),
            allocatable=Resources(int(alloc[j, 0]), int(alloc[j, 1])),
            kvm_devices=1000,
            requested=Resources(int(used[j, 0]), int(used[j, 1])),
            usage=Resources(int(node_usage[j, 0]), int(node_usage[j, 1])),
            pods=int((placement == j).sum()) + 5,
            max_pods=250,
        )
        for j in range(n_nodes)
    )
    vms = []
    for i in range(n_vms):
        if not placed[i]:
            continue
        name = f"vm-{i:06d}"
        ns = f"tenant-{i % 20:02d}"
        if rwo[i]:
            volumes = (
                Volume(
                    name="root",
                    source="persistentVolumeClaim",
                    claim_name=f"{name}-root",
                    access_modes=("ReadWriteOnce",),
                ),
            )
        elif cdisk[i]:
            volumes = (Volume(name="root", source="containerDisk"),)
        else:
            volumes = (
                Volume(
                    name="root",
                    source="persistentVolumeClaim",
                    claim_name=f"{name}-root",
                    access_modes=("ReadWriteMany",),
                ),
            )
        vm_labels: dict[str, str] = {"vm.kubevirt.io/name": name}
        anti: tuple[PodAffinityTerm, ...] = ()
        if group[i] >= 0:
            app = f"ha-{int(group[i]):05d}"
            vm_labels["app"] = app
            anti = (PodAffinityTerm(label_selector=LabelSelector(match_labels={"app": app})),)
        if infra_vm[i]:
            place = Placement(
                node_selector={"node-pool": "infra"}, tolerations=(_INFRA_TOLERATION,), pod_anti_affinity=anti
            )
        elif ssd_vm[i]:
            place = Placement(node_selector={"disk": "ssd"}, pod_anti_affinity=anti)
        else:
            place = Placement(pod_anti_affinity=anti)
        vms.append(
            VirtualMachine(
                # An HA group's replicas share a namespace (anti-affinity terms look in their own).
                namespace=f"tenant-{int(group[i]) % 20:02d}" if group[i] >= 0 else ns,
                name=name,
                run_strategy="Always",
                printable_status="Running",
                running=True,
                node=f"node-{int(placement[i]):04d}",
                vcpus=int(vcpus[i]),
                guest_memory_bytes=int(guest[i]),
                requests=Resources(int(req[i, 0]), int(req[i, 1])),
                usage=Resources(int(cpu_use[i]), int(mem_use[i])),
                labels=vm_labels,
                annotations={DO_NOT_MOVE_ANNOTATION: "true"} if pinned[i] else {},
                placement=place,
                volumes=volumes,
                live_migratable=not rwo[i],
                live_migratable_reason="DisksNotLiveMigratable" if rwo[i] else None,
            )
        )
    return ClusterState(nodes=nodes, vms=tuple(vms), metrics_available=True)
