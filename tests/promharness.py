"""A real Prometheus server (Debian package ``prometheus``) over a running simulator's signals.

The simulator writes its past as OpenMetrics (``/metrics/history``), ``promtool tsdb
create-blocks-from openmetrics`` backfills it, and Prometheus then scrapes the live endpoints found
through the simulator's HTTP service discovery (``/metrics/targets/…``) — so a window of history
exists seconds after the simulator started. The simulator must run at time scale 1 (live scrapes
carry no timestamps).

`PROMETHEUS_SKIP` is the pytest mark for modules that need the binaries: skipped with the reason when
they are missing (``.ci/run`` installs the Debian package).
"""

import json
import shutil
import socket
import ssl
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from vm_rebalance.simulator.server import SimulatorServer

PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
JOBS = ("node-exporter", "virt-handler", "virt-controller")
PROMETHEUS_SKIP = pytest.mark.skipif(
    PROMETHEUS is None or PROMTOOL is None,
    reason="the prometheus/promtool binaries are not installed "
    "(Debian package 'prometheus': apt-get install -y prometheus; .ci/run installs it)",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunningPrometheus:
    url: str
    work: Path
    history_seconds: float
    """How long writing (and backfilling) the history took."""

    def query(self, expr: str) -> dict[str, float]:
        """Instant query; result keyed by the instance (or node) label."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=60) as r:
            body: dict[str, Any] = json.load(r)
        assert body["status"] == "success", body
        out = {}
        for item in body["data"]["result"]:
            metric = item["metric"]
            out[metric.get("instance") or metric.get("node") or metric.get("__name__", "")] = float(item["value"][1])
        return out


@contextmanager
def running_prometheus(
    srv: SimulatorServer,
    work: Path,
    *,
    start: int = -3600,
    step: int = 30,
    families: Sequence[str] | None = None,
    targets: int,
    scrape_interval: str = "5s",
    scrape_timeout: str | None = None,
    wait_seconds: float = 120.0,
    scrape: bool = True,
) -> Iterator[RunningPrometheus]:
    """Backfill ``[start, 0]`` of the simulator's history and run Prometheus scraping it live.

    ``targets``: how many scrape targets must be up before it is used (nodes × 2 + 1). ``scrape=False``:
    the backfilled history only (a large scenario's live scrapes can outrun the simulator on a busy machine).
    """
    assert srv.ca_pem is not None and PROMTOOL is not None and PROMETHEUS is not None
    (work / "ca.pem").write_bytes(srv.ca_pem)
    params = {"start": str(start), "end": "0", "step": str(step)}
    if families:
        params["families"] = ",".join(families)
    started = time.monotonic()
    verify = ssl.create_default_context(cafile=str(work / "ca.pem"))
    with (
        httpx.Client(verify=verify, timeout=600) as client,
        client.stream("GET", f"{srv.url}/metrics/history", params=params) as r,
    ):
        assert r.status_code == 200, r.read()[:500]
        with (work / "history.om").open("wb") as f:
            for chunk in r.iter_bytes():
                f.write(chunk)
    with (work / "history.om").open("rb") as f:
        f.seek(-6, 2)
        assert f.read() == b"# EOF\n", "the history is not complete OpenMetrics (no final # EOF)"
    backfill = subprocess.run(
        [PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", str(work / "history.om"), str(work / "data")],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert backfill.returncode == 0, backfill.stderr[-2000:]
    (work / "history.om").unlink()
    history_seconds = time.monotonic() - started
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
        for job in (JOBS if scrape else ())
    )
    timeout = f", scrape_timeout: {scrape_timeout}" if scrape_timeout else ""
    (work / "prometheus.yml").write_text(
        f"global: {{scrape_interval: {scrape_interval}, evaluation_interval: {scrape_interval}{timeout}}}\n"
        f"scrape_configs:{jobs or ' []'}"
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
    prom = RunningPrometheus(f"http://127.0.0.1:{port}", work, history_seconds)
    try:
        deadline = time.monotonic() + wait_seconds
        while time.monotonic() < deadline:
            try:
                if (not scrape and prom.query("vector(1)")) or prom.query("count(up == 1)").get("") == float(targets):
                    break
            except OSError:
                pass
            time.sleep(0.5)
        else:
            log_text = (work / "prometheus.log").read_text()[-3000:]
            raise AssertionError(f"Prometheus did not scrape every target: {log_text}")
        yield prom
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()
