"""In-process timings of the simulated cluster: scenario start-up, listing all VMs, idle ticks.

``python -m vm_rebalance.simulator.bench [SCENARIO]`` (default ``large``, 10,000 VMs). The HTTP
layer adds JSON encoding on top of the list time.
"""

import json
import sys
import time

from .cluster import SimCluster

VMS = ("kubevirt.io", "virtualmachines")


def run(scenario: str = "large") -> dict[str, float]:
    """Measure one scenario; returns seconds per step."""
    out: dict[str, float] = {}
    start = time.perf_counter()
    cluster = SimCluster.from_scenario(scenario, manual_clock=True)
    out["start_seconds"] = time.perf_counter() - start
    start = time.perf_counter()
    items, _ = cluster.store.list(VMS, copy=False)
    json.dumps({"items": items})
    out["list_vms_json_seconds"] = time.perf_counter() - start
    start = time.perf_counter()
    cluster.store.list(VMS)
    out["list_vms_deep_copy_seconds"] = time.perf_counter() - start
    start = time.perf_counter()
    cluster.step(60)
    out["simulate_60s_idle_seconds"] = time.perf_counter() - start
    out["vms"] = float(len(items))
    return out


def main() -> None:
    """Print the timings."""
    scenario = sys.argv[1] if len(sys.argv) > 1 else "large"
    for name, value in run(scenario).items():
        print(f"{name:28} {value:10.3f}")


if __name__ == "__main__":
    main()
