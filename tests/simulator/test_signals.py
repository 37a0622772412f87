"""Time-varying load, the Prometheus endpoints and the kubelet stats summary (in process)."""

from collections.abc import AsyncIterator

import httpx
import numpy as np
import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from vm_rebalance.simulator.app import create_app
from vm_rebalance.simulator.builders import node, sim_cluster, vm
from vm_rebalance.simulator.cluster import SimCluster
from vm_rebalance.simulator.quantity import cpu_millicores
from vm_rebalance.simulator.signals import (
    _COL,
    PATTERN_ANNOTATION,
    Burst,
    LoadPattern,
    history_view,
    live_view,
    parse_pattern,
)

NODE_METRICS = ("metrics.k8s.io", "nodes")


def test_pattern_grammar() -> None:
    assert parse_pattern("diurnal=0.3;peak=9;noise=0.05;burst=-30+2m@0.9;burst=-4h+6h@0.95") == LoadPattern(
        0.3, 9.0, 0.05, (Burst(-30.0, 120.0, 0.9), Burst(-14400.0, 21600.0, 0.95))
    )
    assert parse_pattern("") == LoadPattern()
    for bad, message in (
        ("wobble=1", "unknown load pattern term"),
        ("burst=soon", "START\\+DURATION@LEVEL"),
        ("diurnal", "not key=value"),
        ("noise=lots", "noise=lots"),
    ):
        with pytest.raises(ValueError, match=message):
            parse_pattern(bad)


@pytest.fixture(scope="module")
def sustained() -> SimCluster:
    return SimCluster.from_scenario("sustained", manual_clock=True, seed=3)


def node_util(c: SimCluster, start: float, end: float) -> dict[str, float]:
    view = history_view(c.signals, start, end, 15)
    return {n: float(view.node_util[:, i].mean()) for i, n in enumerate(view.inv.node_names)}


def test_sustained_scenario_shapes(sustained: SimCluster) -> None:
    hour = node_util(sustained, -3600, 0)
    assert hour["worker-01"] > 0.9  # saturated all along
    assert hour["worker-02"] < 0.45  # only a short spike
    spike = node_util(sustained, -15, 0)
    assert spike["worker-02"] > 0.9
    before = node_util(sustained, -600, -300)
    assert before["worker-02"] < 0.45
    hot_earlier = node_util(sustained, -3 * 3600 + 300, -3600 - 300)
    assert hot_earlier["worker-04"] > 0.85 and hour["worker-04"] < 0.6  # hot for two hours, until an hour ago


def test_load_is_deterministic_for_a_seed() -> None:
    def loads(seed: int) -> np.ndarray:
        c = SimCluster.from_scenario("sustained", manual_clock=True, seed=seed)
        return history_view(c.signals, -600, 0, 15).node_util

    assert np.array_equal(loads(5), loads(5))
    assert not np.array_equal(loads(5), loads(6))


def test_history_counters_continue_into_live_ones(sustained: SimCluster) -> None:
    history = history_view(sustained.signals, -60, 0, 15)
    live = live_view(sustained.signals, 0.0)
    assert np.allclose(history.node_counters[-1], live.node_counters[0])
    assert np.allclose(history.vm_counters[-1], live.vm_counters[0])
    assert np.all(np.diff(history.node_counters[:, :, _COL["cpu_idle"]], axis=0) >= 0)
    assert np.all(np.diff(history.node_counters[:, :, _COL["cpu_user"]], axis=0) > 0)


def test_metrics_server_follows_the_pattern() -> None:
    c = SimCluster.from_scenario("sustained", manual_clock=True, seed=3)
    c.step(20)
    during = cpu_millicores(c.store.get(NODE_METRICS, None, "worker-02")["usage"]["cpu"]) / 16000
    c.step(150)
    after = cpu_millicores(c.store.get(NODE_METRICS, None, "worker-02")["usage"]["cpu"]) / 16000
    assert during > 0.85 and after < 0.5


def test_a_vm_without_a_pattern_keeps_a_constant_load() -> None:
    c = sim_cluster(node("w1"), vm("flat", node="w1", cpus=4, cpu_usage=0.5))
    view = history_view(c.signals, -3600, 0, 60)
    assert np.allclose(view.vm_cpu, 0.5)


@pytest.fixture
async def api(sustained: SimCluster) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(sustained)), base_url="http://sim"
    ) as client:
        yield client


def families(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for fam in parse_text(text):
        for sample in fam.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


async def test_node_exporter_endpoint(api: httpx.AsyncClient) -> None:
    r = await api.get("/metrics/node-exporter/worker-01")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4")
    fams = families(r.text)
    cpu = fams["node_cpu_seconds_total"]
    assert len(cpu) == 16 * 8 and {labels["mode"] for labels, _ in cpu} >= {"idle", "user", "system", "iowait"}
    for name in (
        "node_memory_MemAvailable_bytes",
        "node_memory_MemTotal_bytes",
        "node_pressure_cpu_waiting_seconds_total",
        "node_pressure_memory_waiting_seconds_total",
        "node_pressure_memory_stalled_seconds_total",
        "node_pressure_io_waiting_seconds_total",
        "node_pressure_io_stalled_seconds_total",
        "node_load1",
    ):
        assert name in fams, name
    assert fams["node_memory_MemTotal_bytes"][0][1] == 64 * 2**30
    assert (await api.get("/metrics/node-exporter/nope")).status_code == 404


async def test_virt_handler_and_controller_endpoints(api: httpx.AsyncClient, sustained: SimCluster) -> None:
    fams = families((await api.get("/metrics/virt-handler/worker-01")).text)
    cpu = fams["kubevirt_vmi_cpu_usage_seconds_total"]
    on_node = {
        (v["metadata"]["namespace"], v["metadata"]["name"])
        for v in sustained.store.list(("kubevirt.io", "virtualmachineinstances"))[0]
        if v["status"].get("nodeName") == "worker-01"
    }
    assert {(labels["namespace"], labels["name"]) for labels, _ in cpu} == on_node
    assert all(labels["node"] == "worker-01" for labels, _ in cpu)
    for name in (
        "kubevirt_vmi_memory_used_bytes",
        "kubevirt_vmi_memory_available_bytes",
        "kubevirt_vmi_memory_usable_bytes",
        "kubevirt_vmi_dirty_rate_bytes_per_second",
        "kubevirt_vmi_vcpu_delay_seconds_total",
        "kubevirt_vmi_network_receive_bytes_total",
    ):
        assert name in fams, name
    controller = families((await api.get("/metrics/virt-controller")).text)
    assert controller["kubevirt_virt_controller_leading_status"][0][1] == 1
    assert "kubevirt_vmi_migrations_in_running_phase" in controller
    targets = (await api.get("/metrics/targets/node-exporter")).json()
    assert [t["labels"]["instance"] for t in targets] == sorted(
        n["metadata"]["name"] for n in sustained.store.list(("", "nodes"))[0]
    )
    assert targets[0]["labels"]["__metrics_path__"] == "/metrics/node-exporter/control-plane-01"


async def test_history_is_valid_openmetrics(api: httpx.AsyncClient) -> None:
    r = await api.get("/metrics/history", params={"start": "-300", "end": "0", "step": "60"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/openmetrics-text")
    names = {}
    for fam in parse_openmetrics(r.text):
        names[fam.name] = fam
    cpu = names["node_cpu_seconds"]
    assert cpu.type == "counter"
    times = sorted({float(s.timestamp) for s in cpu.samples})
    assert len(times) == 6 and times[1] - times[0] == 60
    assert all(s.labels["job"] == "node-exporter" and "instance" in s.labels for s in cpu.samples)
    only = await api.get(
        "/metrics/history", params={"start": "-60", "families": "node_load1,kubevirt_vmi_memory_used_bytes"}
    )
    assert {f.name for f in parse_openmetrics(only.text)} == {"node_load1", "kubevirt_vmi_memory_used_bytes"}
    assert (await api.get("/metrics/history", params={"start": "-7"})).status_code == 400
    assert (await api.get("/metrics/history", params={"start": "-90000"})).status_code == 400


async def test_stats_summary_with_psi(api: httpx.AsyncClient) -> None:
    r = await api.get("/api/v1/nodes/worker-01/proxy/stats/summary")
    assert r.status_code == 200
    summary = r.json()
    psi = summary["node"]["cpu"]["psi"]
    assert set(psi) == {"some", "full"}
    assert set(psi["some"]) == {"total", "avg10", "avg60", "avg300"}
    assert psi["some"]["avg10"] > 20 and psi["full"]["total"] == 0
    assert set(summary["node"]["memory"]["psi"]) == {"some", "full"}
    assert set(summary["node"]["io"]["psi"]) == {"some", "full"}
    assert summary["node"]["nodeName"] == "worker-01"
    pods = summary["pods"]
    launcher = next(p for p in pods if p["podRef"]["name"].startswith("virt-launcher-"))
    assert launcher["cpu"]["usageNanoCores"] > 0 and "psi" in launcher["containers"][0]["cpu"]
    calm = (await api.get("/api/v1/nodes/worker-06/proxy/stats/summary")).json()
    assert calm["node"]["cpu"]["psi"]["some"]["avg10"] < psi["some"]["avg10"]
    missing = await api.get("/api/v1/nodes/nope/proxy/stats/summary")
    assert missing.status_code == 404 and missing.json()["reason"] == "NotFound"


async def test_migration_progress_metrics() -> None:
    c = sim_cluster(node("w1", memory_gib=128), node("w2", memory_gib=128), vm("big", node="w1", memory="48Gi"))
    vmim = {"metadata": {"name": "m1", "namespace": "default"}, "spec": {"vmiName": "big"}}
    key = ("kubevirt.io", "virtualmachineinstancemigrations")
    c.store.create(key, c.admit("create", key, vmim, None, "admin") or vmim)
    assert c.run_until(lambda: c.store.get(key, "default", "m1").get("status", {}).get("phase") == "Running")
    c.step(20)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(c)), base_url="http://sim") as api:
        fams = families((await api.get("/metrics/virt-handler/w1")).text)
        remaining = fams["kubevirt_vmi_migration_data_remaining_bytes"][0]
        processed = fams["kubevirt_vmi_migration_data_processed_bytes"][0][1]
        assert remaining[0]["name"] == "big" and remaining[1] > 0 and processed > 0
        assert "kubevirt_vmi_migration_data_remaining_bytes" not in families(
            (await api.get("/metrics/virt-handler/w2")).text
        )
        controller = families((await api.get("/metrics/virt-controller")).text)
        assert controller["kubevirt_vmi_migrations_in_running_phase"][0][1] == 1


def test_pattern_annotation_name() -> None:
    assert PATTERN_ANNOTATION == "simulator.vm-rebalance.io/load-pattern"
