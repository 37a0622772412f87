"""The read-only `capacity_report` MCP tool over a snapshot (in process, the SDK's in-memory client)."""

import json
from pathlib import Path
from typing import Any

from mcp.client import Client

from rawobjects import as_list, small_cluster
from vm_rebalance import service
from vm_rebalance.mcp_server.server import create_server
from vm_rebalance.service.capacity import N_PLUS_ONE_OFF


def _text(result: Any) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)


def _client(tmp_path: Path, **kwargs: Any) -> Client:
    path = tmp_path / "snap.json"
    path.write_text(json.dumps(as_list(small_cluster())), encoding="utf-8")
    return Client(create_server(service.Target(from_file=str(path)), **kwargs))


async def test_capacity_report_is_read_only_and_returns_the_document(tmp_path: Path) -> None:
    async with _client(tmp_path, read_only=True) as c:
        tools = {t.name: t for t in (await c.list_tools()).tools}
        assert tools["capacity_report"].annotations.read_only_hint is True
        result = await c.call_tool("capacity_report", {})
    assert not result.is_error, _text(result)
    doc = result.structured_content["report"]
    assert (doc["apiVersion"], doc["kind"]) == ("vm-rebalance/v1", "CapacityReport")
    markdown = _text(result)
    assert "## Capacity report" in markdown and "**Cluster band:**" in markdown
    assert "**Not in this report:**" in markdown


async def test_capacity_report_shows_a_stored_plans_nodes_before_and_after(tmp_path: Path) -> None:
    async with _client(tmp_path) as c:
        planned = await c.call_tool("plan_rebalance", {"goal": "cpu"})
        plan_id = planned.structured_content["plan_id"]
        result = await c.call_tool("capacity_report", {"plan_id": plan_id, "n_plus_one": False})
        unknown = await c.call_tool("capacity_report", {"plan_id": "nope"})
        bad = await c.call_tool("capacity_report", {"basis": "vibes"})
    assert not result.is_error, _text(result)
    doc = result.structured_content["report"]
    assert doc["plan"]["goal"] == "cpu" and doc["sections"]["plan"]["available"] is True
    assert doc["n_plus_one"] is None and doc["sections"]["n_plus_one"]["reason"] == N_PLUS_ONE_OFF
    assert unknown.is_error and "nope" in _text(unknown)
    assert bad.is_error
