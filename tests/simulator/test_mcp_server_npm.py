"""The npm ``kubernetes-mcp-server`` (a real third-party Go client) against the simulator over HTTPS.

Its ``resources_list`` needs server-side Table responses and SelfSubjectAccessReview; ``vm_lifecycle``
does GET + PUT of ``spec.runStrategy`` (kubevirt-api.md §9).
"""

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters

from simulator.clientcluster import small_cluster
from vm_rebalance.simulator.server import SimulatorServer

pytestmark = pytest.mark.e2e

VMS = ("kubevirt.io", "virtualmachines")


@pytest.fixture(scope="module")
def mcp_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed: cannot install kubernetes-mcp-server")
    prefix = Path(os.environ.get("VMRB_MCP_NPM_PREFIX") or tmp_path_factory.mktemp("mcp-npm"))
    binary = prefix / "node_modules" / ".bin" / "kubernetes-mcp-server"
    if not binary.exists():
        try:
            proc = subprocess.run(
                [npm, "install", "--no-audit", "--no-fund", "--prefix", str(prefix), "kubernetes-mcp-server"],
                capture_output=True,
                text=True,
                timeout=240,
            )
        except subprocess.TimeoutExpired:
            pytest.skip("npm install kubernetes-mcp-server timed out (offline?)")
        if proc.returncode != 0 or not binary.exists():
            pytest.skip(f"npm install kubernetes-mcp-server failed: {proc.stderr.strip()[-300:]}")
    return binary


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SimulatorServer, Path]]:
    cluster = small_cluster(seed=5)
    with SimulatorServer(cluster) as srv:
        path = tmp_path_factory.mktemp("kube") / "config"
        srv.write_kubeconfig(path)
        yield srv, path


def text_of(result: object) -> str:
    return "\n".join(getattr(block, "text", "") for block in getattr(result, "content", []))


async def test_resources_list_and_vm_lifecycle(mcp_binary: Path, server: tuple[SimulatorServer, Path]) -> None:
    srv, kubeconfig = server
    store = srv.cluster.store
    vms, _ = store.list(VMS)
    nodes, _ = store.list(("", "nodes"))
    running = next(v for v in vms if v["spec"].get("runStrategy") == "Always")
    ns, name = running["metadata"]["namespace"], running["metadata"]["name"]
    params = StdioServerParameters(
        command=str(mcp_binary),
        args=["--kubeconfig", str(kubeconfig), "--toolsets", "core,kubevirt"],
        env={**os.environ, "HOME": str(kubeconfig.parent)},
    )
    async with Client(params, read_timeout_seconds=60) as mcp:
        tools = {t.name for t in (await mcp.list_tools()).tools}
        assert {"resources_list", "vm_lifecycle"} <= tools

        listed = await mcp.call_tool("resources_list", {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine"})
        assert not listed.is_error, text_of(listed)
        text = text_of(listed)
        assert name in text and vms[0]["metadata"]["name"] in text and vms[-1]["metadata"]["name"] in text

        node_list = await mcp.call_tool("resources_list", {"apiVersion": "v1", "kind": "Node"})
        assert not node_list.is_error, text_of(node_list)
        assert all(n["metadata"]["name"] in text_of(node_list) for n in nodes)

        stopped = await mcp.call_tool("vm_lifecycle", {"namespace": ns, "name": name, "action": "stop"})
        assert not stopped.is_error, text_of(stopped)
        assert store.get(VMS, ns, name)["spec"]["runStrategy"] == "Halted"

        started = await mcp.call_tool("vm_lifecycle", {"namespace": ns, "name": name, "action": "start"})
        assert not started.is_error, text_of(started)
        assert store.get(VMS, ns, name)["spec"]["runStrategy"] == "Always"
