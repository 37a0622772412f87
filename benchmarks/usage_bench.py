"""How long reading sustained usage takes, and planning on it (issue 13).

For each scenario the simulator runs at time scale 1; its last hour is backfilled into a real
Prometheus (Debian package ``prometheus``; tests/promharness.py) which then scrapes it live. Timed,
best of --repeat (the setup once):

- reading usage from Prometheus over a 1 h window: the mean, and the p95 (the percentile queries
  are subqueries), with the utilisation series for charts; the number of PromQL queries;
- the same read from the kubelet stats summary (every node through the API server's proxy) and
  from metrics.k8s.io, for comparison;
- planning (goal performance) on the Prometheus state, with its PSI and without (pressure removed).

    python benchmarks/usage_bench.py [--scenarios sustained,diurnal] [--repeat 3] [--step 30]
    python benchmarks/usage_bench.py --synthetic 50:1000,500:12000   # planning with PSI at scale only

``--synthetic`` times the performance plan on `constrained_cluster.generate` clusters (usage basis),
with every node's PSI measured and the most loaded 5 % under CPU pressure (35 %), against the same
cluster without PSI.
"""

import argparse
import dataclasses
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from promharness import running_prometheus
from vm_rebalance import service
from vm_rebalance.kube.client import KubeClient
from vm_rebalance.service.usage import UsageSpec
from vm_rebalance.simulator.cluster import SimCluster
from vm_rebalance.simulator.server import SimulatorServer
from vm_rebalance.sources.prometheus import PrometheusApi, PrometheusUsage

FAMILIES = (
    "node_cpu_seconds_total",
    "node_memory_MemTotal_bytes",
    "node_memory_MemAvailable_bytes",
    "node_pressure_cpu_waiting_seconds_total",
    "node_pressure_memory_waiting_seconds_total",
    "node_pressure_memory_stalled_seconds_total",
    "node_pressure_io_waiting_seconds_total",
    "kubevirt_vmi_cpu_usage_seconds_total",
    "kubevirt_vmi_memory_resident_bytes",
    "kubevirt_vmi_dirty_rate_bytes_per_second",
    "kubevirt_vmi_network_receive_bytes_total",
    "kubevirt_vmi_network_transmit_bytes_total",
)
"""The families the usage source reads (the history is written for these only: diurnal's full hour is 420 MiB)."""


PERFORMANCE = service.PlanSpec(goal="performance")


def best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """The best wall time of ``repeat`` runs, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def prometheus_read(url: str, *, percentile: float | None) -> tuple[float, int, Any]:
    """(seconds, queries, sample) of one read of the Prometheus source."""
    api = PrometheusApi(url)
    try:
        usage = PrometheusUsage(api, window_seconds=3600, percentile=percentile, series=True)
        start = time.perf_counter()
        sample = usage.read_usage()
        return time.perf_counter() - start, api.queries, sample
    finally:
        api.close()


def bench(scenario: str, repeat: int, step: int, *, scrape: bool = True) -> list[str]:
    """The rows of one scenario."""
    rows = []
    cluster = SimCluster.from_scenario(scenario, time_scale=1)
    with tempfile.TemporaryDirectory() as tmp, SimulatorServer(cluster) as srv:
        work = Path(tmp)
        kubeconfig = str(work / "kubeconfig")
        srv.write_kubeconfig(kubeconfig)
        setup = time.perf_counter()
        with running_prometheus(
            srv,
            work,
            step=step,
            families=FAMILIES,
            targets=2 * _node_count(kubeconfig) + 1,
            scrape_interval="30s",
            scrape_timeout="25s",
            wait_seconds=600,
            scrape=scrape,
        ) as prom:
            setup_seconds = time.perf_counter() - setup
            mean_t, _ = best(lambda: prometheus_read(prom.url, percentile=None), repeat)
            seconds_mean, queries_mean, sample = prometheus_read(prom.url, percentile=None)
            p95_t, _ = best(lambda: prometheus_read(prom.url, percentile=95), repeat)
            _, queries_p95, _ = prometheus_read(prom.url, percentile=95)
            target = service.Target(
                kubeconfig=kubeconfig, usage=UsageSpec(source="prometheus", prometheus_url=prom.url)
            )
            read_t, state = best(lambda: service.read_state(target), repeat)
            stats_t, _ = best(
                lambda: service.read_state(service.Target(kubeconfig=kubeconfig, usage=UsageSpec(source="stats"))),
                repeat,
            )
            ms_t, _ = best(
                lambda: service.read_state(
                    service.Target(kubeconfig=kubeconfig, usage=UsageSpec(source="metrics-server"))
                ),
                repeat,
            )
            spec = service.PlanSpec(goal="performance")
            plan_psi_t, plan = best(lambda: service.plan(state, spec), repeat)
            plain = dataclasses.replace(state, nodes=tuple(dataclasses.replace(n, pressure=None) for n in state.nodes))
            plan_plain_t, plain_plan = best(lambda: service.plan(plain, spec), repeat)
    del seconds_mean
    vms = sum(1 for v in state.vms if v.running)
    pressured = sum(1 for n in state.nodes if n.pressure is not None and (n.pressure.cpu or 0) >= 0.10)
    rows.append(
        f"| {scenario} | {len(state.nodes)} / {vms} | {setup_seconds:.1f} s (history step {step} s"
        + ("" if scrape else "; backfill only, no live scrapes")
        + ") | "
        f"{mean_t:.2f} s ({queries_mean} queries) | {p95_t:.2f} s ({queries_p95} queries) | "
        f"{read_t:.2f} s | {stats_t:.2f} s | {ms_t:.2f} s | "
        f"{plan_psi_t:.2f} s ({len(plan.plan.moves)} moves, {pressured} node(s) under CPU pressure) | "
        f"{plan_plain_t:.2f} s ({len(plain_plan.plan.moves)} moves) |"
    )
    del sample
    return rows


def synthetic(sizes: str, repeat: int) -> None:
    """Planning time with and without PSI on generated clusters."""
    from constrained_cluster import generate

    from vm_rebalance.model.signals import Pressure

    print("| cluster | nodes under CPU pressure | plan (performance) with PSI | without PSI |")
    print("|---|---|---|---|")
    for size in sizes.split(","):
        n_nodes, n_vms = (int(x) for x in size.split(":"))
        state = generate(n_nodes, n_vms)
        loaded = sorted(
            (n for n in state.nodes if n.usage is not None),
            key=lambda n: -(n.usage.cpu_millicores / max(1, n.allocatable.cpu_millicores)) if n.usage else 0.0,
        )
        hot = {n.name for n in loaded[: max(1, len(loaded) // 20)]}
        nodes = tuple(
            dataclasses.replace(n, pressure=Pressure(cpu=0.35 if n.name in hot else 0.0, memory=0.0, io=0.01))
            for n in state.nodes
        )
        with_psi = dataclasses.replace(state, nodes=nodes)
        psi_t, psi_plan = best(lambda s=with_psi: service.plan(s, PERFORMANCE), repeat)
        plain_t, plain_plan = best(lambda s=state: service.plan(s, PERFORMANCE), repeat)
        print(
            f"| {n_nodes} nodes / {n_vms:,} VMs | {len(hot)} | {psi_t:.2f} s ({len(psi_plan.plan.moves)} moves) | "
            f"{plain_t:.2f} s ({len(plain_plan.plan.moves)} moves) |",
            flush=True,
        )


def _node_count(kubeconfig: str) -> int:
    from vm_rebalance.kube import resources as r

    with KubeClient.from_kubeconfig(kubeconfig) as client:
        return len(client.list(r.NODES))


def main() -> None:
    """Print one Markdown table row per scenario."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", default="sustained,diurnal")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--step", type=int, default=30)
    parser.add_argument(
        "--no-scrape", action="store_true", help="query the backfilled hour only (no live scrapes of the simulator)"
    )
    parser.add_argument("--synthetic", default="", help="nodes:vms,… — planning with PSI on generated clusters")
    args = parser.parse_args()
    if args.synthetic:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        synthetic(args.synthetic, args.repeat)
        return
    print(
        "| scenario | nodes / running VMs | backfill + Prometheus start | Prometheus read, mean over 1 h | "
        "p95 over 1 h | whole state read (Prometheus) | stats summary | metrics.k8s.io | "
        "plan (performance) with PSI | without PSI |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for scenario in args.scenarios.split(","):
        for row in bench(scenario, args.repeat, args.step, scrape=not args.no_scrape):
            print(row, flush=True)


if __name__ == "__main__":
    main()
