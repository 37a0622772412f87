"""The migration watch wakes the executor early, against the simulator's real watch API."""

import threading
import time
from pathlib import Path

import pytest

from vm_rebalance.executor.watch import MigrationWatcher
from vm_rebalance.kube.client import KubeClient
from vm_rebalance.kube.resources import VMIMS
from vm_rebalance.simulator.cluster import SimCluster
from vm_rebalance.simulator.server import SimulatorServer

pytestmark = pytest.mark.e2e


def test_a_new_migration_ends_the_wait_early(tmp_path: Path) -> None:
    cluster = SimCluster.from_scenario("small", time_scale=50)
    with SimulatorServer(cluster) as server:
        server.write_kubeconfig(tmp_path / "kubeconfig")
        client = KubeClient.from_kubeconfig(str(tmp_path / "kubeconfig"))
        watcher = MigrationWatcher(client)
        watcher.start()
        try:
            time.sleep(0.5)  # let the watch open
            vmi = cluster.store.list(("kubevirt.io", "virtualmachineinstances"))[0][0]
            body = {
                "apiVersion": "kubevirt.io/v1",
                "kind": "VirtualMachineInstanceMigration",
                "metadata": {"name": "watch-test", "namespace": vmi["metadata"]["namespace"]},
                "spec": {"vmiName": vmi["metadata"]["name"]},
            }
            namespace = vmi["metadata"]["namespace"]
            threading.Timer(0.3, lambda: client.create(VMIMS, body, namespace=namespace)).start()
            assert watcher.wait(20.0) is True  # woken by the migration, not by the timeout
            assert watcher.events_seen >= 1
        finally:
            watcher.stop()
            client.close()


def test_a_stopped_watcher_is_a_plain_sleep() -> None:
    watcher = MigrationWatcher(client=None)  # type: ignore[arg-type]
    watcher.stop()
    started = time.monotonic()
    assert watcher.wait(0.2) is False
    assert time.monotonic() - started >= 0.19  # a lower bound: sleep never returns early
