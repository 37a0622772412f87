"""The kubelet stats summary as a usage source: instant usage, five-minute PSI, and every way it is missing.

The simulator's real endpoint (over HTTPS, with the node proxy path) is used where it matters;
refusals and partial answers come from a stub client.
"""

from pathlib import Path
from typing import Any

import pytest

from vm_rebalance import service
from vm_rebalance.errors import ClusterError, ClusterForbiddenError, ResourceNotFoundError
from vm_rebalance.kube.client import KubeClient
from vm_rebalance.service.usage import UsageSpec
from vm_rebalance.simulator.cluster import SimCluster
from vm_rebalance.simulator.server import SimulatorServer
from vm_rebalance.sources.kubelet import KubeletStatsUsage, pressure_from_summary


def _summary(node: str, *, psi: bool = True, cpu_cores: float = 4.0) -> dict[str, Any]:
    def block(avg300: float) -> dict[str, Any]:
        data = {"total": 1, "avg10": avg300, "avg60": avg300, "avg300": avg300}
        return {"some": data, "full": data}

    cpu: dict[str, Any] = {"time": "2026-08-01T10:00:00Z", "usageNanoCores": int(cpu_cores * 1e9)}
    memory: dict[str, Any] = {"time": "2026-08-01T10:00:00Z", "workingSetBytes": 8 * 2**30}
    node_block: dict[str, Any] = {"nodeName": node, "cpu": cpu, "memory": memory}
    if psi:
        node_block["cpu"] = {**cpu, "psi": block(25.0)}
        node_block["memory"] = {**memory, "psi": block(2.0)}
        node_block["io"] = {"psi": block(1.0)}
    pod = {
        "podRef": {"name": "virt-launcher-db-abcde", "namespace": "prod"},
        "cpu": {"usageNanoCores": 1_500_000_000},
        "memory": {"workingSetBytes": 3 * 2**30},
    }
    return {"node": node_block, "pods": [pod]}


class StubClient:
    """Answers stats summaries per node, or raises what the test says."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers

    def request(self, method: str, path: str, **_: Any) -> Any:
        node = path.split("/")[4]
        answer = self.answers[node]
        if isinstance(answer, Exception):
            raise answer
        return answer


def _usage(answers: dict[str, Any], **kw: Any) -> KubeletStatsUsage:
    client: Any = StubClient(answers)
    return KubeletStatsUsage(client, nodes=lambda: sorted(answers), **kw)


def test_usage_psi_and_pods_from_the_summary() -> None:
    sample = _usage({"w1": _summary("w1"), "w2": _summary("w2", cpu_cores=1.0)}).read_usage()
    assert sample.nodes["w1"].cpu_millicores == 4000 and sample.nodes["w2"].cpu_millicores == 1000
    assert sample.pods[("prod", "virt-launcher-db-abcde")].cpu_millicores == 1500
    p = sample.pressure["w1"]
    assert (p.cpu, p.memory, p.memory_full, p.io) == pytest.approx((0.25, 0.02, 0.02, 0.01))
    obs = sample.observation
    assert obs is not None and not obs.sustained and obs.pressure_window_seconds == 300
    assert obs.describe() == "kubelet stats summary: one instant reading; PSI averaged over 5m"


def test_forbidden_node_proxy_says_which_permission() -> None:
    denied = ClusterForbiddenError('nodes "w1" is forbidden: cannot get resource "nodes/proxy"')
    sample = _usage({"w1": denied, "w2": _summary("w2")}).read_usage()
    assert not sample.available
    assert sample.notes and "needs 'get' on 'nodes/proxy'" in sample.notes[0]


def test_not_served_is_quiet_during_auto_detection_only() -> None:
    missing = ResourceNotFoundError("the server could not find the requested resource")
    assert _usage({"w1": missing}, quiet_if_absent=True).read_usage().notes == ()
    assert "not served" in _usage({"w1": missing}).read_usage().notes[0]


def test_a_node_that_fails_is_left_out_with_a_note() -> None:
    sample = _usage({"w1": _summary("w1"), "w2": ClusterError("proxy error")}).read_usage()
    assert set(sample.nodes) == {"w1"}
    assert "1 of 2 node(s) could not be read" in sample.notes[0]


def test_cgroup_v1_has_no_psi_and_says_so() -> None:
    sample = _usage({"w1": _summary("w1", psi=False)}).read_usage()
    assert sample.available and not sample.pressure
    assert "carries no PSI" in sample.notes[0]
    assert pressure_from_summary({"cpu": {"usageNanoCores": 1}}) is None


@pytest.mark.e2e
def test_the_simulators_stats_summary_over_https(tmp_path: Path) -> None:
    cluster = SimCluster.from_scenario("sustained", time_scale=1)
    with SimulatorServer(cluster) as srv:
        kubeconfig = tmp_path / "kubeconfig"
        srv.write_kubeconfig(str(kubeconfig))
        with KubeClient.from_kubeconfig(str(kubeconfig)) as client:
            sample = KubeletStatsUsage(client).read_usage()
        state = service.read_state(service.Target(kubeconfig=str(kubeconfig), usage=UsageSpec(source="stats")))
    assert sample.available and not sample.notes
    assert sample.pressure["worker-01"].cpu is not None and sample.pressure["worker-01"].cpu > 0.2
    assert state.observation is not None and state.observation.source == "kubelet stats summary"
    running = [v for v in state.vms if v.running]
    assert running and all(v.usage is not None for v in running)  # launcher pods measured
    w1 = state.node("worker-01")
    assert w1 is not None and w1.pressure is not None and w1.usage is not None
