"""How long the capacity report takes on the simulator's scenarios (the tool reading them over HTTPS).

For each scenario: the simulator serves it, `take_snapshot` writes a snapshot file, then the
snapshot is read into a ClusterState and each phase of the report is timed (best of --repeat):
the analysis without N+1, the N+1 drain simulation alone, the HTML page and the JSON document.

    python benchmarks/report_bench.py [--scenarios medium,large] [--repeat 3]
"""

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vm_rebalance import service
from vm_rebalance.model import Basis
from vm_rebalance.model.capacity import capacity_report_to_document
from vm_rebalance.render.report import capacity_html
from vm_rebalance.service.capacity import capacity_report, largest_node, n_plus_one
from vm_rebalance.simulator.cluster import SimCluster
from vm_rebalance.simulator.server import SimulatorServer


def best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """The best wall time of ``repeat`` runs, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def snapshot(scenario: str, directory: Path) -> Path:
    """A snapshot file of the scenario, taken by the tool from the running simulator."""
    path = directory / f"{scenario}.json"
    with SimulatorServer(SimCluster.from_scenario(scenario)) as server:
        kubeconfig = directory / f"{scenario}.kubeconfig"
        server.write_kubeconfig(str(kubeconfig))
        service.write_document(service.take_snapshot(service.Target(kubeconfig=str(kubeconfig))), path)
    return path


def main() -> None:
    """Print one Markdown table row per scenario."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", default="medium,large")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print("| scenario | nodes | VMs | read snapshot | analysis w/o N+1 | N+1 drain | HTML (size) | document |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="vm-rebalance-report-bench-") as tmp:
        for scenario in args.scenarios.split(","):
            path = snapshot(scenario, Path(tmp))
            t_read, state = best(lambda p=path: service.read_state(service.Target(from_file=str(p))), 1)
            t_plain, _ = best(lambda s=state: capacity_report(s, check_n_plus_one=False), args.repeat)
            lost = largest_node(state)
            basis = Basis.USAGE if state.metrics_available else Basis.REQUESTS
            t_n1, _ = best(lambda s=state, n=lost, b=basis: n_plus_one(s, b, n), args.repeat) if lost else (0.0, None)
            report = capacity_report(state)
            t_html, html = best(lambda r=report: capacity_html(r), args.repeat)
            t_doc, _ = best(lambda r=report: json.dumps(capacity_report_to_document(r)), args.repeat)
            print(
                f"| {scenario} | {len(state.nodes):,} | {len(state.vms):,} | {t_read:.2f} s | {t_plain:.2f} s | "
                f"{t_n1:.2f} s | {t_html:.2f} s ({len(html) / 1e6:.1f} MB) | {t_doc:.2f} s |",
                flush=True,
            )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
