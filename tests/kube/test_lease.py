"""The single-writer lock (a coordination.k8s.io Lease) against the simulator's API server over HTTPS."""

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from vm_rebalance.kube.client import KubeClient
from vm_rebalance.kube.lease import LEASE_NAME, WriterLock, WriterLockHeldError, current_holder
from vm_rebalance.simulator.cluster import SimCluster
from vm_rebalance.simulator.server import SimulatorServer

pytestmark = pytest.mark.e2e


@pytest.fixture
def client(tmp_path: Path) -> Iterator[KubeClient]:
    with SimulatorServer(SimCluster.from_scenario("small", time_scale=50)) as server:
        path = tmp_path / "kubeconfig"
        server.write_kubeconfig(path)
        with KubeClient.from_kubeconfig(str(path)) as c:
            yield c


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_second_writer_is_refused_naming_the_holder_and_gets_it_once_released(client: KubeClient) -> None:
    first = WriterLock(client, "apply plan.json")
    first.acquire()
    holder = current_holder(client)
    assert holder is not None and holder.what == "apply plan.json" and holder.pid == os.getpid()
    second = WriterLock(client, "drain w1")
    with pytest.raises(WriterLockHeldError) as info:
        second.acquire()
    assert "apply plan.json" in str(info.value) and f"(pid {os.getpid()})" in str(info.value)
    assert info.value.exit_code == 4 and "--wait-lock" in (info.value.hint or "")
    first.release()
    assert current_holder(client) is None
    second.acquire()
    assert current_holder(client).what == "drain w1"  # type: ignore[union-attr]
    second.release()


def test_a_holder_whose_process_died_on_this_host_is_taken_over_at_once(client: KubeClient) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    gone = WriterLock(client, "apply crashed.json", pid=int(dead.stdout))
    gone.acquire()  # …and its process is gone (kill -9): the lease stays behind, unreleased
    taker = WriterLock(client, "vm-rebalance resume X")
    taker.acquire()
    assert current_holder(client).what == "vm-rebalance resume X"  # type: ignore[union-attr]
    taker.release()


def test_an_expired_lease_of_another_host_is_taken_over_and_renewal_keeps_it(client: KubeClient) -> None:
    clock = Clock()
    other = WriterLock(client, "apply elsewhere.json", host="another-host", clock=clock, duration_seconds=30)
    other.acquire()
    mine = WriterLock(client, "apply here.json", clock=clock, duration_seconds=30)
    with pytest.raises(WriterLockHeldError):
        mine.acquire()
    assert other.renew()
    clock.now += 31 + 5  # not renewed for longer than its duration (plus the allowance for skew)
    mine.acquire()
    assert current_holder(client).what == "apply here.json"  # type: ignore[union-attr]
    lost: list[bool] = []
    other._on_lost = lambda: lost.append(True)
    assert other.renew() is False and lost == [True]  # the old holder learns it lost the lock
    mine.release()


def test_the_lease_is_a_real_lease(client: KubeClient) -> None:
    from vm_rebalance.kube import resources as r

    lock = WriterLock(client, "apply plan.json")
    lock.acquire()
    lease = client.get(r.LEASES, LEASE_NAME, namespace="kube-system")
    assert lease["spec"]["holderIdentity"].startswith("vm-rebalance-") and lease["spec"]["leaseDurationSeconds"] == 30
    lock.release()
