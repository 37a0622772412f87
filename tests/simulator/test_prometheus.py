"""A real Prometheus server (Debian package ``prometheus``) over the simulator's signals.

The simulator writes its past hour as OpenMetrics (``/metrics/history``), ``promtool tsdb
create-blocks-from openmetrics`` backfills it, and Prometheus then scrapes the live endpoints found
through the simulator's HTTP service discovery (``/metrics/targets/…``) — so a one-hour window of
history exists seconds after the simulator started. Scenario ``sustained``: worker-01 is saturated all
along, worker-02 has only a 2-minute spike around the simulation's start.

Skipped, with the reason, when the prometheus or promtool binaries are missing (``.ci/run`` installs
the Debian package ``prometheus``).
"""

from collections.abc import Iterator

import pytest

from promharness import PROMETHEUS_SKIP, RunningPrometheus, running_prometheus
from vm_rebalance.simulator.cluster import SimCluster
from vm_rebalance.simulator.server import SimulatorServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow, PROMETHEUS_SKIP]


class Prom:
    """A Prometheus scraping the simulator (tests/promharness.py) and the simulated cluster."""

    def __init__(self, running: RunningPrometheus, cluster: SimCluster) -> None:
        self.running = running
        self.cluster = cluster

    def query(self, expr: str) -> dict[str, float]:
        """Instant query; result keyed by the instance (or node) label."""
        return self.running.query(expr)


@pytest.fixture(scope="module")
def prom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prom]:
    work = tmp_path_factory.mktemp("prometheus")
    cluster = SimCluster.from_scenario("sustained", time_scale=1)
    # 7 node-exporters, 7 virt-handlers, 1 controller: the last hour backfilled, then scraped live.
    with SimulatorServer(cluster) as srv, running_prometheus(srv, work, targets=15, wait_seconds=60) as running:
        yield Prom(running, cluster)


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
