"""How fast a snapshot file is read into a ClusterState, and how much memory it takes.

Generates snapshot files of growing size (nodes, running VMs with VMI + launcher pod +
PVC + pod metrics, node metrics), then times `SnapshotFileSource(path).read()` in a fresh
process each, reporting wall time and peak RSS. Goal (issue 2): 5,000 nodes / 100,000 VMs
well under a minute and under 2 GiB.

    python benchmarks/read_bench.py [--sizes 50:1000,500:10000,5000:100000]
"""

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = [(50, 1_000), (500, 10_000), (5_000, 100_000)]


def generate(nodes: int, vms: int, path: Path, seed: int = 1) -> int:
    """Write a snapshot List of the given size; return its size in bytes."""
    rng = random.Random(seed)
    items: list[dict] = []
    for i in range(nodes):
        name = f"node-{i:05d}"
        res = {"cpu": "64", "memory": "256Gi", "pods": "250", "devices.kubevirt.io/kvm": "1k"}
        items.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "labels": {"kubernetes.io/hostname": name, "kubevirt.io/schedulable": "true"},
                },
                "spec": {},
                "status": {"capacity": res, "allocatable": res, "conditions": [{"type": "Ready", "status": "True"}]},
            }
        )
        items.append(
            {
                "apiVersion": "metrics.k8s.io/v1beta1",
                "kind": "NodeMetrics",
                "metadata": {"name": name},
                "timestamp": "2026-11-21T12:00:00Z",
                "window": "20s",
                "usage": {"cpu": f"{rng.randint(1000, 60000)}m", "memory": f"{rng.randint(8, 240)}Gi"},
            }
        )
    for j in range(vms):
        ns = f"ns-{j % 50}"
        name = f"vm-{j:06d}"
        node = f"node-{rng.randrange(nodes):05d}"
        cores = rng.choice([1, 2, 4, 8])
        mem = f"{cores * 4}Gi"
        rwx = rng.random() < 0.8
        spec = {
            "domain": {"cpu": {"cores": cores}, "memory": {"guest": mem}, "devices": {}},
            "volumes": [{"name": "root", "persistentVolumeClaim": {"claimName": f"{name}-root"}}],
        }
        labels = {"kubevirt.io/domain": name, "app": f"app-{j % 200}"}
        items.append(
            {
                "apiVersion": "kubevirt.io/v1",
                "kind": "VirtualMachine",
                "metadata": {"name": name, "namespace": ns},
                "spec": {"runStrategy": "Always", "template": {"metadata": {"labels": labels}, "spec": spec}},
                "status": {"printableStatus": "Running", "ready": True},
            }
        )
        uid = f"uid-{j}"
        items.append(
            {
                "apiVersion": "kubevirt.io/v1",
                "kind": "VirtualMachineInstance",
                "metadata": {
                    "name": name,
                    "namespace": ns,
                    "uid": uid,
                    "labels": {**labels, "kubevirt.io/nodeName": node},
                },
                "spec": spec,
                "status": {
                    "phase": "Running",
                    "nodeName": node,
                    "conditions": [{"type": "LiveMigratable", "status": "True" if rwx else "False"}],
                },
            }
        )
        pod = f"virt-launcher-{name}-x1y2z"
        items.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": pod,
                    "namespace": ns,
                    "labels": {
                        "kubevirt.io": "virt-launcher",
                        "kubevirt.io/created-by": uid,
                        "vm.kubevirt.io/name": name,
                    },
                },
                "spec": {
                    "nodeName": node,
                    "containers": [
                        {
                            "name": "compute",
                            "resources": {"requests": {"cpu": f"{cores * 100}m", "memory": f"{cores * 4096 + 300}Mi"}},
                        }
                    ],
                },
                "status": {"phase": "Running"},
            }
        )
        items.append(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": f"{name}-root", "namespace": ns},
                "spec": {"accessModes": ["ReadWriteMany" if rwx else "ReadWriteOnce"]},
                "status": {"phase": "Bound", "accessModes": ["ReadWriteMany" if rwx else "ReadWriteOnce"]},
            }
        )
        items.append(
            {
                "apiVersion": "metrics.k8s.io/v1beta1",
                "kind": "PodMetrics",
                "metadata": {"name": pod, "namespace": ns},
                "timestamp": "2026-11-21T12:00:00Z",
                "window": "20s",
                "containers": [
                    {
                        "name": "compute",
                        "usage": {
                            "cpu": f"{rng.randint(10, cores * 1000)}m",
                            "memory": f"{rng.randint(256, cores * 4096)}Mi",
                        },
                    }
                ],
            }
        )
    text = json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
    path.write_text(text)
    return len(text)


MEASURE = """
import resource, sys, time
t = time.perf_counter()
from vm_rebalance.sources.snapshot_file import SnapshotFileSource
state = SnapshotFileSource(sys.argv[1]).read()
elapsed = time.perf_counter() - t
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"{elapsed:.2f} {rss:.0f} {len(state.nodes)} {len(state.vms)}")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", help="comma-separated NODES:VMS pairs", default=None)
    args = parser.parse_args()
    sizes = SIZES if not args.sizes else [tuple(int(x) for x in s.split(":")) for s in args.sizes.split(",")]
    print(f"{'nodes':>6} {'VMs':>8} {'file MiB':>9} {'read s':>7} {'peak RSS MiB':>13}  goal")
    with tempfile.TemporaryDirectory() as tmp:
        for nodes, vms in sizes:
            path = Path(tmp) / f"snap-{nodes}-{vms}.json"
            size = generate(nodes, vms, path)
            t0 = time.perf_counter()
            out = subprocess.run(
                [sys.executable, "-c", MEASURE, str(path)], capture_output=True, text=True, check=True
            ).stdout.split()
            _ = time.perf_counter() - t0
            secs, rss, n, v = float(out[0]), float(out[1]), int(out[2]), int(out[3])
            assert (n, v) == (nodes, vms), (n, v)
            goal = "< 60 s, < 2048 MiB" if vms >= 100_000 else ""
            ok = "" if not goal else ("met" if secs < 60 and rss < 2048 else "MISSED")
            print(f"{nodes:>6} {vms:>8} {size / 2**20:>9.0f} {secs:>7.2f} {rss:>13.0f}  {goal} {ok}")


if __name__ == "__main__":
    main()
