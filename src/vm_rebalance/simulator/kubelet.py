"""The kubelet's stats summary (``GET /api/v1/nodes/NODE/proxy/stats/summary``) with PSI as a kubelet
on cgroup v2 reports it (KubeletPSI, beta in 1.34): ``cpu.psi``, ``memory.psi`` and ``io.psi`` each
``{"some": {"total", "avg10", "avg60", "avg300"}, "full": {…}}`` — ``total`` the kernel's cumulative
stall time in microseconds, the averages percentages over 10 s, 60 s and 300 s (kubelet
``stats/v1alpha1`` types ``PSIStats`` / ``PSIData``). Node, pods and containers carry them.
"""

from typing import TYPE_CHECKING, Any, NamedTuple

from .signals import _VCOL, Snapshot

if TYPE_CHECKING:
    from .cluster import SimCluster

Obj = dict[str, Any]
_PODS = ("", "pods")


def _scaled_psi(psi: Obj, share: float) -> Obj:
    return {
        level: {
            "total": int(values["total"] * share),
            "avg10": round(values["avg10"] * share, 2),
            "avg60": round(values["avg60"] * share, 2),
            "avg300": round(values["avg300"] * share, 2),
        }
        for level, values in psi.items()
    }


class _NodeFacts(NamedTuple):
    """What a node's summary and its pods' summaries share."""

    node_index: int
    now_iso: str
    cores: float
    util: float
    mem_used: float
    cpu_psi: Obj
    mem_psi: Obj
    io_psi: Obj


def stats_summary(cluster: "SimCluster", node: str, snap: Snapshot) -> Obj | None:
    """The summary of ``node``, or None when the node does not exist."""
    i = snap.node_index(node)
    if i is None:
        return None
    inv = snap.inv
    mem_total = float(inv.node_mem[i])
    facts = _NodeFacts(
        node_index=i,
        now_iso=cluster.clock.iso(snap.now),
        cores=float(inv.node_cores[i]),
        util=float(snap.node_util[-1, i]),
        mem_used=float(snap.node_mem_util[-1, i]) * mem_total,
        cpu_psi=snap.psi(i, "cpu"),
        mem_psi=snap.psi(i, "mem"),
        io_psi=snap.psi(i, "io"),
    )
    summary: Obj = {"node": _node_stats(cluster, node, snap, facts, mem_total), "pods": []}
    vm_index = {key: j for j, key in enumerate(inv.vm_keys)}
    with cluster.store.lock:
        pods = [
            p
            for p in cluster.store.iter_objects(_PODS)
            if (p.get("spec") or {}).get("nodeName") == node and (p.get("status") or {}).get("phase") == "Running"
        ]
    for pod in sorted(pods, key=lambda p: (p["metadata"].get("namespace", ""), p["metadata"]["name"])):
        summary["pods"].append(_pod_stats(snap, facts, vm_index, pod))
    return summary


def _node_stats(cluster: "SimCluster", node: str, snap: Snapshot, facts: _NodeFacts, mem_total: float) -> Obj:
    """The ``node`` part of the summary: the node's CPU and memory use with their PSI, and fixed parts."""
    now_iso, cores, mem_used = facts.now_iso, facts.cores, facts.mem_used
    counters = snap.node_counters[node]
    busy_seconds = sum(float(counters[k]) for k in range(len(counters)) if k < 8) - float(counters[0])
    start = cluster.clock.iso(-6 * 3600.0)
    return {
        "nodeName": node,
        "systemContainers": [
            {
                "name": name,
                "startTime": start,
                "cpu": {"time": now_iso, "usageNanoCores": int(cores * 0.01 * 1e9), "usageCoreNanoSeconds": 0},
                "memory": {"time": now_iso, "usageBytes": 200 * 2**20, "workingSetBytes": 150 * 2**20},
            }
            for name in ("kubelet", "runtime", "pods")
        ],
        "startTime": start,
        "cpu": {
            "time": now_iso,
            "usageNanoCores": int(facts.util * cores * 1e9),
            "usageCoreNanoSeconds": int(busy_seconds * cores * 1e9),
            "psi": facts.cpu_psi,
        },
        "memory": {
            "time": now_iso,
            "availableBytes": int(max(0.0, mem_total - mem_used)),
            "usageBytes": int(mem_used * 1.1),
            "workingSetBytes": int(mem_used),
            "rssBytes": int(mem_used * 0.8),
            "pageFaults": 0,
            "majorPageFaults": 0,
            "psi": facts.mem_psi,
        },
        "io": {"time": now_iso, "psi": facts.io_psi},
        **_node_fixed_stats(now_iso),
    }


def _node_fixed_stats(now_iso: str) -> Obj:
    """The parts of a node's summary the simulator does not model: network, file systems, process limits."""
    return {
        "network": {"time": now_iso, "name": "eth0", "rxBytes": 0, "rxErrors": 0, "txBytes": 0, "txErrors": 0},
        "fs": {
            "time": now_iso,
            "availableBytes": 300 * 2**30,
            "capacityBytes": 418 * 2**30,
            "usedBytes": 118 * 2**30,
        },
        "runtime": {
            "imageFs": {
                "time": now_iso,
                "availableBytes": 300 * 2**30,
                "capacityBytes": 418 * 2**30,
                "usedBytes": 40 * 2**30,
            }
        },
        "rlimit": {"time": now_iso, "maxpid": 4194304, "curproc": 900},
    }


def _pod_usage(
    snap: Snapshot, node_index: int, vm_index: dict[tuple[str, str], int], pod: Obj
) -> tuple[float, float, float]:
    """A running pod's CPU cores, cumulative CPU seconds and working set: its VM's for a launcher pod on
    this node, a small constant otherwise."""
    inv = snap.inv
    meta = pod["metadata"]
    ns = meta.get("namespace") or ""
    domain = (meta.get("annotations") or {}).get("kubevirt.io/domain")
    j = vm_index.get((ns, domain or "")) if domain else None
    if j is not None and int(inv.vm_node[j]) == node_index:
        cpu_cores = float(snap.vm_cpu[-1, j]) * float(inv.vcpus[j]) + 0.015
        cpu_seconds = float(snap.vm_counters[(ns, domain or "")][_VCOL["cpu"]])
        working_set = float(snap.vm_mem[j]) * float(inv.memory[j]) + 0.6 * float(inv.overhead[j])
        return cpu_cores, cpu_seconds, working_set
    return 0.01, 0.0, 64.0 * 2**20


def _pod_stats(snap: Snapshot, facts: _NodeFacts, vm_index: dict[tuple[str, str], int], pod: Obj) -> Obj:
    """One pod's summary; its PSI is the node's scaled by the pod's share of the node's use."""
    now_iso = facts.now_iso
    meta = pod["metadata"]
    cpu_cores, cpu_seconds, working_set = _pod_usage(snap, facts.node_index, vm_index, pod)
    share = min(1.0, cpu_cores / max(facts.util * facts.cores, 1e-9))
    cpu: Obj = {
        "time": now_iso,
        "usageNanoCores": int(cpu_cores * 1e9),
        "usageCoreNanoSeconds": int(cpu_seconds * 1e9),
        "psi": _scaled_psi(facts.cpu_psi, share),
    }
    memory: Obj = {
        "time": now_iso,
        "usageBytes": int(working_set * 1.05),
        "workingSetBytes": int(working_set),
        "rssBytes": int(working_set * 0.9),
        "pageFaults": 0,
        "majorPageFaults": 0,
        "psi": _scaled_psi(facts.mem_psi, working_set / max(facts.mem_used, 1.0)),
    }
    started = (pod.get("status") or {}).get("startTime") or now_iso
    containers = [
        {
            "name": c.get("name", "compute"),
            "startTime": started,
            "cpu": cpu if k == 0 else {"time": now_iso, "usageNanoCores": 0, "usageCoreNanoSeconds": 0},
            "memory": memory if k == 0 else {"time": now_iso, "usageBytes": 0, "workingSetBytes": 0},
            "rootfs": {"time": now_iso, "usedBytes": 40960},
            "logs": {"time": now_iso, "usedBytes": 8192},
        }
        for k, c in enumerate((pod.get("spec") or {}).get("containers") or [{"name": "compute"}])
    ]
    return {
        "podRef": {"name": meta["name"], "namespace": meta.get("namespace") or "", "uid": meta.get("uid", "")},
        "startTime": started,
        "containers": containers,
        "cpu": cpu,
        "memory": memory,
        "io": {"time": now_iso, "psi": _scaled_psi(facts.io_psi, share)},
        "network": {"time": now_iso, "name": "eth0", "rxBytes": 0, "rxErrors": 0, "txBytes": 0, "txErrors": 0},
        "volume": [],
        "ephemeral-storage": {"time": now_iso, "usedBytes": 49152},
        "process_stats": {"process_count": 12},
    }
