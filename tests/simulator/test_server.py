"""SimulatorServer: TLS with a generated CA, bearer-token auth, kubeconfig files, plain HTTP, clean stop."""

import base64
import ssl
import stat
from pathlib import Path

import httpx
import pytest
import yaml

from vm_rebalance.simulator.cluster import SimCluster
from vm_rebalance.simulator.server import SimulatorServer

pytestmark = pytest.mark.e2e


def test_https_server_with_kubeconfig_and_token(tmp_path: Path) -> None:
    with SimulatorServer(SimCluster(seed=0)) as srv:
        assert srv.url.startswith("https://127.0.0.1:")
        path = tmp_path / "kubeconfig"
        srv.write_kubeconfig(path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        kc = yaml.safe_load(path.read_text())
        assert kc["current-context"] == "simulator"
        ca = base64.b64decode(kc["clusters"][0]["cluster"]["certificate-authority-data"])
        token = kc["users"][0]["user"]["token"]
        ctx = ssl.create_default_context(cadata=ca.decode())
        with httpx.Client(base_url=srv.url, verify=ctx) as http:
            assert http.get("/api/v1/nodes").status_code == 401
            r = http.get("/api/v1/namespaces", headers={"authorization": f"Bearer {token}"})
            assert r.status_code == 200 and r.json()["kind"] == "NamespaceList"
            assert http.get(f"https://localhost:{srv.port}/healthz").status_code == 200
    assert srv._thread is None


def test_plain_http_server_without_auth() -> None:
    srv = SimulatorServer(SimCluster(seed=0), tls=False)
    srv.start()
    try:
        assert srv.url.startswith("http://")
        assert "token" not in srv.kubeconfig()["users"][0]["user"]
        r = httpx.get(f"{srv.url}/apis/kubevirt.io/v1")
        assert r.status_code == 200
    finally:
        srv.stop()
    srv.stop()  # idempotent
