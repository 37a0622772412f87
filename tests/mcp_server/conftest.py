"""Fixtures: a simulated cluster served over HTTPS, its kubeconfig, and an isolated journal directory."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vm_rebalance.simulator.cluster import SimCluster
from vm_rebalance.simulator.server import SimulatorServer

VMS = ("kubevirt.io", "virtualmachines")
VMIS = ("kubevirt.io", "virtualmachineinstances")
VMIMS = ("kubevirt.io", "virtualmachineinstancemigrations")
NODES = ("", "nodes")


class Sim:
    """A running simulator and the kubeconfig that reaches it."""

    def __init__(self, server: SimulatorServer, kubeconfig: Path) -> None:
        self.server = server
        self.kubeconfig = kubeconfig

    @property
    def store(self) -> Any:
        return self.server.cluster.store

    def migrations(self) -> int:
        """How many VirtualMachineInstanceMigrations exist."""
        return len(self.store.list(VMIMS)[0])

    def vmi_node(self, namespace: str, name: str) -> str | None:
        vmi = self.store.try_get(VMIS, namespace, name)
        return None if vmi is None else (vmi.get("status") or {}).get("nodeName")

    def run_strategy(self, namespace: str, name: str) -> str | None:
        return self.store.get(VMS, namespace, name)["spec"].get("runStrategy")


@pytest.fixture
def sim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sim]:
    """A fresh 'small' scenario (4 imbalanced workers, 12 VMs) at 500× time; journals under tmp_path."""
    monkeypatch.setenv("VM_REBALANCE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    cluster = SimCluster.from_scenario("small", time_scale=500)
    with SimulatorServer(cluster) as server:
        path = tmp_path / "kubeconfig-secret-location.yaml"
        server.write_kubeconfig(path)
        yield Sim(server, path)
