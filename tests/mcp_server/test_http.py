"""`vm-rebalance mcp --transport http`: streamable HTTP on localhost, driven by the SDK's client."""

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mcp.client import Client

from rawobjects import as_list, small_cluster

pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_http_transport_serves_the_read_only_tools_on_localhost(tmp_path: Path) -> None:
    snapshot = tmp_path / "cluster.json"
    snapshot.write_text(json.dumps(as_list(small_cluster())))
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vm_rebalance",
            "--from-file",
            str(snapshot),
            "mcp",
            "--transport",
            "http",
            "--port",
            str(port),
            "--read-only",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.2)
        async with Client(f"http://127.0.0.1:{port}/mcp", read_timeout_seconds=60) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert {"cluster_inventory", "plan_rebalance", "explain_move"} <= names
            assert not names & {"execute_plan", "vm_lifecycle", "unpin_vm"}  # --read-only
            result = await client.call_tool("plan_rebalance", {"goal": "balanced"})
            assert not result.is_error
            assert result.structured_content["plan"]["moves"]
            assert str(snapshot.parent) not in json.dumps(result.structured_content)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
