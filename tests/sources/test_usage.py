"""The usage-source port: a source of usage laid over the inventory, injected rather than hard-coded."""

import json
from pathlib import Path
from typing import Any

from fakeapi import FakeApi
from rawobjects import as_list, small_cluster
from vm_rebalance.kube.client import KubeClient
from vm_rebalance.model import GIB, Resources
from vm_rebalance.model.usage import UsageSample
from vm_rebalance.sources.kubernetes import KubernetesSource
from vm_rebalance.sources.snapshot_file import SnapshotFileSource
from vm_rebalance.sources.usage import NoUsage

METRICS_KINDS = {"NodeMetrics", "PodMetrics"}


class AveragedUsage:
    """Stands in for a Prometheus source: usage per node and per VM, nothing a snapshot can keep."""

    def __init__(self) -> None:
        self.reads = 0

    def read_usage(self) -> UsageSample:
        self.reads += 1
        return UsageSample(
            nodes={"w1": Resources(1500, 6 * GIB), "w2": Resources(500, 2 * GIB)},
            vms={("default", "db"): Resources(700, 3 * GIB)},
            source="averaged",
        )

    def snapshot_objects(self) -> list[dict[str, Any]]:
        return []


def test_an_injected_usage_source_replaces_metrics_server(fake_api: FakeApi, kubeconfig: Path) -> None:
    fake_api.load(small_cluster())
    usage = AveragedUsage()
    with KubeClient.from_kubeconfig(str(kubeconfig)) as client:
        source = KubernetesSource(client, usage=usage)
        state = source.read()
        raw = source.raw_objects()
    assert usage.reads == 1 and state.metrics_available
    assert state.node("w1").usage == Resources(1500, 6 * GIB)  # type: ignore[union-attr]
    assert state.vm("default", "db").usage == Resources(700, 3 * GIB)  # type: ignore[union-attr]
    assert not any(o.get("kind") in METRICS_KINDS for o in raw)  # metrics.k8s.io was not read at all
    assert not any("metrics.k8s.io" in path for path, _, _ in fake_api.requests)


def test_the_default_usage_is_metrics_server_and_a_snapshot_keeps_it(
    fake_api: FakeApi, kubeconfig: Path, tmp_path: Path
) -> None:
    fake_api.load(small_cluster())
    with KubeClient.from_kubeconfig(str(kubeconfig)) as client:
        source = KubernetesSource(client)
        live = source.read()
        raw = source.raw_objects()
    assert live.metrics_available and {o.get("kind") for o in raw} >= METRICS_KINDS
    path = tmp_path / "snap.json"
    path.write_text(json.dumps(as_list(raw)), encoding="utf-8")
    replayed = SnapshotFileSource(path).read()
    assert [n.usage for n in replayed.nodes] == [n.usage for n in live.nodes]
    assert [v.usage for v in replayed.vms] == [v.usage for v in live.vms]


def test_no_usage_means_requests_with_one_note_saying_why(tmp_path: Path) -> None:
    path = tmp_path / "snap.json"
    path.write_text(json.dumps(as_list(small_cluster())), encoding="utf-8")
    state = SnapshotFileSource(path, usage=NoUsage("usage switched off by the test")).read()
    assert not state.metrics_available and all(n.usage is None for n in state.nodes)
    assert [n for n in state.notes if "usage" in n or "metrics" in n] == ["usage switched off by the test"]
