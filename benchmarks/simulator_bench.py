"""Benchmark the simulator's API: scenario load, server start and a full VM list at 10,000 VMs.

Run: ``python benchmarks/simulator_bench.py [--scenario large] [--repeat 3]``. Prints a table; the
issue's targets are a start under 30 s and a full VM list under 2 s.
"""

import argparse
import json
import ssl
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from kubernetes import client, config

from vm_rebalance.simulator.cluster import SimCluster
from vm_rebalance.simulator.server import SimulatorServer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenario", default="large")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    rows: list[tuple[str, str, str]] = []
    t0 = time.perf_counter()
    cluster = SimCluster.from_scenario(args.scenario, time_scale=1.0)
    load = time.perf_counter() - t0
    vm_count = cluster.store.count(("kubevirt.io", "virtualmachines"))
    rows.append((f"scenario load ({args.scenario})", f"{load:.2f} s", f"{vm_count} VMs"))

    t0 = time.perf_counter()
    server = SimulatorServer(cluster)
    server.start()
    start = time.perf_counter() - t0
    rows.append(("server start (TLS, controllers)", f"{start:.2f} s", f"total {load + start:.2f} s (target < 30 s)"))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            kubeconfig = Path(tmp) / "config"
            server.write_kubeconfig(kubeconfig)
            cfg = client.Configuration()
            config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
            with client.ApiClient(cfg) as api:
                custom = client.CustomObjectsApi(api)
                times = []
                for _ in range(args.repeat):
                    t0 = time.perf_counter()
                    raw = custom.list_cluster_custom_object(
                        "kubevirt.io", "v1", "virtualmachines", _preload_content=False
                    )
                    items = len(json.loads(raw.data)["items"])
                    times.append(time.perf_counter() - t0)
                rows.append(
                    (
                        "VM list, kubernetes client (raw JSON)",
                        f"{statistics.median(times):.3f} s",
                        f"{items} items, median of {args.repeat} (target < 2 s)",
                    )
                )
            token = server.token_for("admin")
            ca = server.ca_pem
            assert ca is not None
            verify = ssl.create_default_context(cadata=ca.decode())
            with httpx.Client(
                base_url=server.url, verify=verify, headers={"authorization": f"Bearer {token}"}, timeout=60
            ) as http:
                times = []
                for _ in range(args.repeat):
                    t0 = time.perf_counter()
                    r = http.get("/apis/kubevirt.io/v1/virtualmachines")
                    items = len(r.json()["items"])
                    times.append(time.perf_counter() - t0)
                rows.append(
                    (
                        "VM list, httpx (parsed)",
                        f"{statistics.median(times):.3f} s",
                        f"{items} items, {len(r.content) / 1e6:.1f} MB",
                    )
                )
    finally:
        server.stop()

    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'time':>9}  notes")
    print("-" * (width + 40))
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>9}  {note}")


if __name__ == "__main__":
    main()
