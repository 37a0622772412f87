"""After a failed move the MCP execution waits for the human's decision and resolve_failure carries it out;
a cold move whose VM could not start is held meanwhile and rolled back on "roll back"."""

from typing import Any

import pytest
from mcp.client import Client

from mcp_server.conftest import VMIS, VMS, Sim
from vm_rebalance import service
from vm_rebalance.mcp_server.server import create_server

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def text(result: Any) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)


def a_running_vm_and_another_node(sim: Sim) -> tuple[str, str, str, str]:
    vmi = next(v for v in sim.store.list(VMIS)[0] if (v.get("status") or {}).get("phase") == "Running")
    ns, name, node = vmi["metadata"]["namespace"], vmi["metadata"]["name"], vmi["status"]["nodeName"]
    nodes = [n["metadata"]["name"] for n in sim.store.list(("", "nodes"))[0] if "control" not in n["metadata"]["name"]]
    return ns, name, node, next(n for n in nodes if n != node)


async def test_a_held_cold_move_waits_for_the_decision_then_rolls_back(sim: Sim) -> None:
    ns, name, _node, target = a_running_vm_and_another_node(sim)
    sim.server.cluster.faults.fail_starts(f"{ns}/{name}", "unschedulable", starts=1)
    options = service.ExecutionOptions(poll_interval_seconds=0.05)
    async with Client(create_server(service.Target(kubeconfig=str(sim.kubeconfig)), options=options)) as c:
        planned = await c.call_tool("plan_move", {"vms": [f"{ns}/{name}"], "target": target, "method": "cold"})
        assert not planned.is_error, text(planned)
        plan = planned.structured_content
        started = await c.call_tool(
            "execute_plan",
            {"plan_id": plan["plan_id"], "plan_hash": plan["plan_hash"], "confirm": True, "wait_seconds": 120},
        )
        out = started.structured_content
        assert out["state"] == "awaiting-decision", text(started)
        question = out["question"]
        assert question["vm_not_running"] is True
        assert {c["choice"] for c in question["choices"]} >= {"roll back", "leave stopped", "retry on another node"}
        assert "resolve_failure" in out["next_step"] and "Waiting for your decision" in text(started)
        refused = await c.call_tool("resolve_failure", {"plan_id": plan["plan_id"], "choice": "roll back"})
        assert refused.is_error and "confirm: true" in text(refused)
        wrong = await c.call_tool(
            "resolve_failure", {"plan_id": plan["plan_id"], "choice": "retry cold", "confirm": True}
        )
        assert wrong.is_error and "does not apply" in text(wrong)
        resolved = await c.call_tool(
            "resolve_failure",
            {"plan_id": plan["plan_id"], "choice": "roll back", "confirm": True, "wait_seconds": 120},
        )
        done = resolved.structured_content
    assert done["state"] == "finished" and done["complete"] is False, text(resolved)
    (move,) = done["report"]["moves"]
    assert "rolled back" in move["error"] and move["state"].startswith("Running on")
    vmi = sim.store.try_get(VMIS, ns, name)
    assert vmi is not None and vmi["status"]["phase"] == "Running"
    vm = sim.store.get(VMS, ns, name)
    assert "vm-rebalance.io/pinned-to" not in (vm["metadata"].get("annotations") or {})
