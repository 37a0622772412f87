"""A small cluster shared by the real-client tests (official client, kubectl, kubernetes-mcp-server)."""

from typing import Any

from vm_rebalance.simulator.cluster import SimCluster


def small_cluster(seed: int) -> SimCluster:
    """Three workers and six VMs (four running, live-migratable), fast simulated time."""

    def node(name: str) -> dict[str, Any]:
        resources = {"cpu": "16", "memory": "64Gi", "pods": "110", "devices.kubevirt.io/kvm": "1k"}
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "labels": {
                    "kubernetes.io/hostname": name,
                    "kubevirt.io/schedulable": "true",
                    "node-role.kubernetes.io/worker": "",
                },
            },
            "spec": {},
            "status": {
                "capacity": resources,
                "allocatable": resources,
                "conditions": [{"type": "Ready", "status": "True"}],
                "nodeInfo": {
                    "architecture": "amd64",
                    "bootID": name,
                    "containerRuntimeVersion": "cri-o://1.33.0",
                    "kernelVersion": "5.14.0",
                    "kubeProxyVersion": "",
                    "kubeletVersion": "v1.33.0",
                    "machineID": name,
                    "operatingSystem": "linux",
                    "osImage": "RHCOS",
                    "systemUUID": name,
                },
            },
        }

    def vm(name: str, strategy: str) -> dict[str, Any]:
        return {
            "apiVersion": "kubevirt.io/v1",
            "kind": "VirtualMachine",
            "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
            "spec": {
                "runStrategy": strategy,
                "template": {
                    "spec": {
                        "domain": {
                            "cpu": {"cores": 1},
                            "memory": {"guest": "1Gi"},
                            "devices": {"interfaces": [{"name": "default", "masquerade": {}}]},
                        },
                        "networks": [{"name": "default", "pod": {}}],
                        "evictionStrategy": "LiveMigrate",
                    }
                },
            },
        }

    cluster = SimCluster(time_scale=500, seed=seed)
    cluster.load_objects(
        [node(f"worker-{i}") for i in range(3)] + [vm(f"vm-{i}", "Always" if i < 4 else "Halted") for i in range(6)]
    )
    return cluster
