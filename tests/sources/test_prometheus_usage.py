"""The Prometheus / Thanos usage source against a scripted Prometheus (httpx MockTransport).

The real server is in tests/integration/test_sustained_usage_e2e.py; here every answer, failure
and header is under the test's control.
"""

import json
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from fakeapi import FakeApi
from rawobjects import as_list, small_cluster
from vm_rebalance.errors import ConfigError
from vm_rebalance.kube.client import KubeClient
from vm_rebalance.kube.convert import state_from_objects
from vm_rebalance.kube.sustained import KIND, sample_from_sustained, sustained_document
from vm_rebalance.model import GIB
from vm_rebalance.sources.detect import ChainedUsage, UsageChoice, UsageOptions, build_usage
from vm_rebalance.sources.kubernetes import KubernetesSource
from vm_rebalance.sources.prometheus import PrometheusApi, PrometheusUsage, node_key
from vm_rebalance.sources.snapshot_file import SnapshotFileSource, snapshot_document

NOW = 1_790_000_000.0
Handler = Callable[[httpx.Request], httpx.Response]


def _vector(rows: list[tuple[dict[str, str], float]]) -> dict[str, Any]:
    result = [{"metric": labels, "value": [NOW, str(value)]} for labels, value in rows]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


def _matrix(rows: list[tuple[dict[str, str], list[float]]]) -> dict[str, Any]:
    result = [
        {"metric": labels, "values": [[NOW - 3600 + 60 * k, str(v)] for k, v in enumerate(values)]}
        for labels, values in rows
    ]
    return {"status": "success", "data": {"resultType": "matrix", "result": result}}


class FakePrometheus:
    """Answers the source's queries by the metric they name; records every query and header."""

    def __init__(self, *, psi: bool = True, kubevirt: bool = True, status: int = 200) -> None:
        self.psi = psi
        self.kubevirt = kubevirt
        self.status = status
        self.queries: list[str] = []
        self.auth: list[str | None] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        form = urllib.parse.parse_qs(request.content.decode())
        query = form["query"][0]
        self.queries.append(query)
        self.auth.append(request.headers.get("authorization"))
        if self.status != 200:
            return httpx.Response(self.status, json={"status": "error", "error": "forbidden"})
        node = lambda n: {"instance": f"{n}:9100", "job": "node-exporter"}  # noqa: E731
        vm = lambda name: {"namespace": "default", "name": name}  # noqa: E731
        if request.url.path.endswith("query_range"):
            values = [0.9, 0.95, 0.97] if "node_cpu_seconds_total" in query else [0.5, 0.5, 0.5]
            return httpx.Response(200, json=_matrix([(node("w1"), values), (node("w2"), [0.2, 0.3, 0.2])]))
        if "node_pressure_" in query:
            if not self.psi:
                return httpx.Response(200, json=_vector([]))
            cpu = "cpu_waiting" in query
            return httpx.Response(200, json=_vector([(node("w1"), 0.3 if cpu else 0.0), (node("w2"), 0.0)]))
        if "node_cpu_seconds_total" in query:
            return httpx.Response(200, json=_vector([(node("w1"), 15.2), (node("w2"), 3.0)]))
        if "node_memory_" in query:
            return httpx.Response(200, json=_vector([(node("w1"), 40 * GIB), (node("w2"), 10 * GIB)]))
        if not self.kubevirt:
            return httpx.Response(200, json=_vector([]))
        if "kubevirt_vmi_cpu_usage_seconds_total" in query:
            return httpx.Response(200, json=_vector([(vm("db"), 3.8), (vm("web"), 0.5)]))
        if "kubevirt_vmi_memory_resident_bytes" in query:
            return httpx.Response(200, json=_vector([(vm("db"), 7 * GIB), (vm("web"), 2 * GIB)]))
        if "dirty_rate" in query:
            return httpx.Response(200, json=_vector([(vm("db"), 600 * 2**20)]))
        if "network" in query:
            return httpx.Response(200, json=_vector([(vm("web"), 80 * 2**20)]))
        return httpx.Response(200, json=_vector([]))


def _source(fake: Handler, url: str = "http://prometheus:9090", **kw: Any) -> PrometheusUsage:
    token = kw.pop("token", None)
    api = PrometheusApi(url, token=token, transport=httpx.MockTransport(fake))
    return PrometheusUsage(api, clock=lambda: NOW, **kw)


def test_usage_over_a_window_with_psi_dirty_and_network_rates() -> None:
    fake = FakePrometheus()
    sample = _source(fake).read_usage()
    assert sample.nodes["w1"].cpu_millicores == 15200 and sample.nodes["w1"].memory_bytes == 40 * GIB
    assert sample.vms[("default", "db")].cpu_millicores == 3800
    assert sample.pressure["w1"].cpu == pytest.approx(0.3) and sample.pressure["w2"].cpu == 0.0
    assert sample.dirty_rates[("default", "db")] == 600 * 2**20
    assert sample.network_rates[("default", "web")] == 80 * 2**20
    obs = sample.observation
    assert obs is not None and obs.window_seconds == 3600 and obs.percentile is None
    assert obs.describe().startswith("Prometheus: mean over 1h ending") and "PSI over the same window" in obs.describe()
    assert obs.series["w1"].cpu == (0.9, 0.95, 0.97)
    assert not sample.notes
    # The mean over the window is the rate over the whole window, of the busy CPU modes only.
    cpu_query = next(q for q in fake.queries if "node_cpu_seconds_total" in q)
    assert "[3600s]" in cpu_query and 'mode!~"idle|iowait|steal"' in cpu_query
    assert all(a is None for a in fake.auth)  # plain HTTP: no credentials


def test_a_percentile_is_a_quantile_over_the_window() -> None:
    fake = FakePrometheus()
    sample = _source(fake, percentile=95, window_seconds=6 * 3600).read_usage()
    assert sample.observation is not None and sample.observation.statistic == "p95 over 6h"
    cpu = next(q for q in fake.queries if "node_cpu_seconds_total" in q and "quantile" in q)
    assert cpu.startswith("quantile_over_time(0.95, (") and "[21600s:" in cpu
    memory = next(q for q in fake.queries if "node_memory_MemAvailable" in q and "quantile" in q)
    assert "quantile_over_time(0.05, node_memory_MemAvailable_bytes[21600s])" in memory


def test_a_partial_prometheus_degrades_with_notes() -> None:
    sample = _source(FakePrometheus(psi=False, kubevirt=False)).read_usage()
    assert sample.available and not sample.vms and not sample.pressure
    assert any("no PSI" in n for n in sample.notes)
    assert any("no KubeVirt VM metrics" in n for n in sample.notes)
    assert sample.observation is not None and sample.observation.pressure_window_seconds is None


def test_an_unreachable_prometheus_is_a_note_without_credentials() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    sample = _source(refuse, url="http://alice:s3cret@prom.example:9090/sub?x=1").read_usage()
    assert not sample.available
    assert sample.notes == ("Prometheus node CPU: http://prom.example:9090 is unreachable (ConnectError)",)


def test_the_token_goes_over_https_only_and_a_refusal_names_the_role() -> None:
    fake = FakePrometheus(status=403)
    sample = _source(fake, url="https://thanos.apps.example", token="tok-123").read_usage()
    assert fake.auth[0] == "Bearer tok-123"
    assert "cluster-monitoring-view" in sample.notes[0] and "tok-123" not in sample.notes[0]
    plain = FakePrometheus()
    _source(plain, url="http://prometheus:9090", token="tok-123").read_usage()
    assert set(plain.auth) == {None}


def test_node_keys_follow_kube_prometheus_relabelling() -> None:
    assert node_key({"instance": "worker-1:9100"}) == "worker-1"
    assert node_key({"instance": "worker-1"}) == "worker-1"
    assert node_key({"instance": "[fd00::1]:9100"}) == "fd00::1"
    assert node_key({"instance": "10.0.0.5:9100", "node": "worker-5"}) == "worker-5"
    assert node_key({}) is None


def test_the_state_takes_the_window_and_a_snapshot_keeps_it(
    fake_api: FakeApi, kubeconfig: Path, tmp_path: Path
) -> None:
    fake_api.load(small_cluster())
    with KubeClient.from_kubeconfig(str(kubeconfig)) as client:
        source = KubernetesSource(client, usage=_source(FakePrometheus()))
        live = source.read()
        raw = source.raw_objects()
    assert [o for o in raw if o.get("kind") == KIND]  # the sustained figures, not NodeMetrics
    assert not any(o.get("kind") in ("NodeMetrics", "PodMetrics") for o in raw)
    w1 = live.node("w1")
    assert w1 is not None and w1.pressure is not None and w1.pressure.cpu == pytest.approx(0.3)
    db = live.vm("default", "db")
    assert db is not None and db.dirty_rate_bytes_per_second == 600 * 2**20
    path = tmp_path / "snap.json"
    path.write_text(json.dumps(snapshot_document(raw)), encoding="utf-8")
    offline = SnapshotFileSource(path).read()
    assert offline.observation is not None and live.observation is not None
    assert offline.observation.describe() == live.observation.describe()
    assert offline.observation.series == live.observation.series
    assert [(n.name, n.usage, n.pressure) for n in offline.nodes] == [(n.name, n.usage, n.pressure) for n in live.nodes]
    assert [(v.usage, v.dirty_rate_bytes_per_second, v.network_bytes_per_second) for v in offline.vms] == [
        (v.usage, v.dirty_rate_bytes_per_second, v.network_bytes_per_second) for v in live.vms
    ]


def test_the_sustained_object_round_trips_and_names_a_bad_field() -> None:
    sample = _source(FakePrometheus()).read_usage()
    again = sample_from_sustained(sustained_document(sample))
    assert (again.nodes, again.vms, again.pressure, again.dirty_rates, again.network_rates) == (
        sample.nodes,
        sample.vms,
        sample.pressure,
        sample.dirty_rates,
        sample.network_rates,
    )
    doc = sustained_document(sample)
    doc["nodes"][0]["pressure"]["cpu"] = 7
    with pytest.raises(ConfigError, match=r"pressure\.cpu must be a fraction"):
        state_from_objects([*small_cluster(), doc])
    doc = sustained_document(sample)
    doc["windowSeconds"] = "an hour"
    with pytest.raises(ConfigError, match="'windowSeconds' must be a number"):
        state_from_objects([*small_cluster(), doc])


def test_an_unreachable_prometheus_falls_back_with_a_plan_warning(fake_api: FakeApi, kubeconfig: Path) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    fake_api.load(small_cluster())
    options = UsageOptions(choice=UsageChoice.PROMETHEUS, prometheus_url="http://prom.invalid:9090")
    with KubeClient.from_kubeconfig(str(kubeconfig)) as client:
        usage = build_usage(client, options, transport=httpx.MockTransport(refuse))
        state = KubernetesSource(client, usage=usage).read()
    assert isinstance(usage, ChainedUsage)
    assert state.observation is not None and state.observation.source == "metrics.k8s.io"
    assert any("prom.invalid:9090 is unreachable" in w for w in state.usage_warnings)
    # The fake API serves no node proxy: an explicit --usage prometheus says the stats summary was not there either.
    assert any("stats summary not served" in w for w in state.usage_warnings)


def test_auto_detection_without_prometheus_is_quiet(fake_api: FakeApi, kubeconfig: Path) -> None:
    fake_api.load(small_cluster())
    with KubeClient.from_kubeconfig(str(kubeconfig)) as client:
        state = KubernetesSource(client, usage=build_usage(client, UsageOptions())).read()
    assert state.observation is not None and state.observation.source == "metrics.k8s.io"
    assert state.usage_warnings == ()
    paths = [p for p, _, _ in fake_api.requests]
    assert "/apis/route.openshift.io/v1/namespaces/openshift-monitoring/routes/thanos-querier" in paths


def test_the_thanos_querier_gets_the_contexts_token_and_other_urls_do_not(
    fake_api: FakeApi, kubeconfig: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VM_REBALANCE_PROMETHEUS_TOKEN", raising=False)
    fake_api.load(small_cluster())
    for url, expected in (
        ("https://thanos-querier.openshift-monitoring.svc:9091", "Bearer ctx-token"),
        ("https://prometheus.example.com", None),
    ):
        fake = FakePrometheus()
        options = UsageOptions(choice=UsageChoice.PROMETHEUS, prometheus_url=url, series=False)
        with KubeClient.from_kubeconfig(str(kubeconfig)) as client:
            usage = build_usage(client, options, token=lambda: "ctx-token", transport=httpx.MockTransport(fake))
            sample = usage.read_usage()
        assert sample.available, sample.notes
        assert set(fake.auth) == {expected}, url
    monkeypatch.setenv("VM_REBALANCE_PROMETHEUS_TOKEN", "env-token")
    fake = FakePrometheus()
    options = UsageOptions(choice=UsageChoice.PROMETHEUS, prometheus_url="https://prometheus.example.com")
    with KubeClient.from_kubeconfig(str(kubeconfig)) as client:
        build_usage(client, options, token=lambda: "ctx-token", transport=httpx.MockTransport(fake)).read_usage()
    assert set(fake.auth) == {"Bearer env-token"}


def test_a_snapshot_file_replays_what_was_kept(tmp_path: Path) -> None:
    objects = [*small_cluster(), sustained_document(_source(FakePrometheus()).read_usage())]
    path = tmp_path / "snap.json"
    path.write_text(json.dumps(as_list(objects)), encoding="utf-8")
    state = SnapshotFileSource(path).read()
    assert state.observation is not None and state.observation.source == "Prometheus"
    w1 = state.node("w1")
    assert w1 is not None and w1.usage is not None and w1.usage.cpu_millicores == 15200  # not NodeMetrics' 12
