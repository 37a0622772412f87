"""A real Prometheus server (Debian package ``prometheus``) over the simulator's signals.

The simulator writes its past hour as OpenMetrics (``/metrics/history``), ``promtool tsdb
create-blocks-from openmetrics`` backfills it, and Prometheus then scrapes the live endpoints found
through the simulator's HTTP service discovery (``/metrics/targets/…``) — so a one-hour window of
history exists seconds after the simulator started. Scenario ``sustained``: worker-01 is saturated all
along, worker-02 has only a 2-minute spike around the simulation's start.

Skipped, with the reason, when the prometheus or promtool binaries are missing (``.ci/run`` installs
the Debian package ``prometheus``).
"""

import json
import shutil
import socket
import ssl
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from vm_rebalance.simulator.cluster import SimCluster
from vm_rebalance.simulator.server import SimulatorServer

PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
pytestmark = [pytest.mark.e2e, pytest.mark.e2e, pytest.mark.slow]
if PROMETHEUS is None or PROMTOOL is None:
    pytestmark.append(
        pytest.mark.skip(
            reason="the prometheus/promtool binaries are not installed "
            "(Debian package 'prometheus': apt-get install -y prometheus; .ci/run installs it)"
        )
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Prom:
    def __init__(self, url: str, server: SimulatorServer, cluster: SimCluster) -> None:
        self.url = url
        self.server = server
        self.cluster = cluster

    def query(self, expr: str) -> dict[str, float]:
        """Instant query; result keyed by the instance (or node) label."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=30) as r:
            body: dict[str, Any] = json.load(r)
        assert body["status"] == "success", body
        out = {}
        for item in body["data"]["result"]:
            metric = item["metric"]
            out[metric.get("instance") or metric.get("node") or metric.get("__name__", "")] = float(item["value"][1])
        return out


@pytest.fixture(scope="module")
def prom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prom]:
    work = tmp_path_factory.mktemp("prometheus")
    cluster = SimCluster.from_scenario("sustained", time_scale=1)
    with SimulatorServer(cluster) as srv:
        assert srv.ca_pem is not None
        (work / "ca.pem").write_bytes(srv.ca_pem)
        with httpx.Client(verify=ssl.create_default_context(cafile=str(work / "ca.pem")), timeout=120) as client:
            r = client.get(f"{srv.url}/metrics/history", params={"start": "-3600", "end": "0", "step": "30"})
        assert r.status_code == 200, r.text[:500]
        assert r.text.endswith("# EOF\n")
        (work / "history.om").write_bytes(r.content)
        assert PROMTOOL is not None and PROMETHEUS is not None
        backfill = subprocess.run(
            [PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", str(work / "history.om"), str(work / "data")],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert backfill.returncode == 0, backfill.stderr[-2000:]
        tls = f"tls_config: {{ca_file: {work / 'ca.pem'}}}"
        jobs = "".join(
            f"""
  - job_name: {job}
    scheme: https
    {tls}
    http_sd_configs:
      - url: {srv.url}/metrics/targets/{job}
        {tls}
"""
            for job in ("node-exporter", "virt-handler", "virt-controller")
        )
        (work / "prometheus.yml").write_text(
            f"global: {{scrape_interval: 5s, evaluation_interval: 5s}}\nscrape_configs:{jobs}"
        )
        port = free_port()
        log = (work / "prometheus.log").open("w")
        proc = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={work / 'prometheus.yml'}",
                f"--storage.tsdb.path={work / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        p = Prom(f"http://127.0.0.1:{port}", srv, cluster)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if p.query("count(up == 1)").get("") == 15.0:  # 7 node-exporters, 7 virt-handlers, 1 controller
                        break
                except OSError:
                    pass
                time.sleep(0.5)
            else:
                raise AssertionError(
                    "Prometheus did not scrape every target: " + (work / "prometheus.log").read_text()[-3000:]
                )
            yield p
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
            log.close()


def test_a_one_hour_window_sees_the_saturated_node_not_the_spike(prom: Prom) -> None:
    util = prom.query('avg_over_time((1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[2m])))[1h:1m])')
    assert util["worker-01"] > 0.9, util
    assert util["worker-02"] < 0.45, util
    psi = prom.query("rate(node_pressure_cpu_waiting_seconds_total[1h])")
    assert psi["worker-01"] > 0.2 and psi["worker-02"] < 0.05, psi
    vm_cores = prom.query("sum by (node) (rate(kubevirt_vmi_cpu_usage_seconds_total[1h]))")
    assert vm_cores["worker-01"] > 13 and vm_cores["worker-02"] < 7, vm_cores
    samples = prom.query("count_over_time(node_load1[1h])")
    assert min(samples.values()) >= 120  # the backfilled hour at a 30 s step


def test_a_short_window_at_the_start_chases_the_spike(prom: Prom) -> None:
    util = prom.query('1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[1m]))')
    assert util["worker-02"] > 0.85, util
    assert util["worker-01"] > 0.85, util


def test_live_scrapes_continue_the_backfilled_counters(prom: Prom) -> None:
    epoch = prom.cluster.clock.epoch.timestamp()
    newest = prom.query('timestamp(node_cpu_seconds_total{instance="worker-01",cpu="0",mode="user"})')
    assert newest["worker-01"] > epoch + 1  # a live scrape, after the backfilled end
    assert prom.query("resets(node_cpu_seconds_total[1h]) > 0") == {}
    assert prom.query("resets(kubevirt_vmi_cpu_usage_seconds_total[1h]) > 0") == {}
    memory = prom.query("avg by (instance) (node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes)")
    assert 0 < memory["worker-01"] < 1
    assert prom.query("kubevirt_virt_controller_leading_status")["virt-controller"] == 1.0
    dirty = prom.query("sum by (node) (kubevirt_vmi_dirty_rate_bytes_per_second)")
    assert dirty and all(v > 0 for v in dirty.values())
