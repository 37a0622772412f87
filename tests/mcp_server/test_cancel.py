"""cancel_execution: an MCP client stops an execution the safe way (the CLI's Ctrl-C), through the
execution's cancel token; the report and the cluster agree afterwards and no VM is left down."""

from typing import Any

import pytest
from mcp.client import Client

from mcp_server.conftest import VMIMS, VMIS, Sim
from mcp_server.test_resolve_failure import a_running_vm_and_another_node
from vm_rebalance import service
from vm_rebalance.mcp_server.server import create_server

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

IN_FLIGHT = ("Pending", "Scheduling", "Scheduled", "PreparingTarget", "TargetReady", "Running")


def text(result: Any) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)


async def test_cancelling_a_held_cold_move_rolls_it_back_and_the_vm_runs(sim: Sim) -> None:
    ns, name, node, target = a_running_vm_and_another_node(sim)
    sim.server.cluster.faults.fail_starts(f"{ns}/{name}", "unschedulable", starts=1)
    options = service.ExecutionOptions(poll_interval_seconds=0.05)
    async with Client(create_server(service.Target(kubeconfig=str(sim.kubeconfig)), options=options)) as c:
        plan = (
            await c.call_tool("plan_move", {"vms": [f"{ns}/{name}"], "target": target, "method": "cold"})
        ).structured_content
        started = await c.call_tool(
            "execute_plan",
            {"plan_id": plan["plan_id"], "plan_hash": plan["plan_hash"], "confirm": True, "wait_seconds": 120},
        )
        assert started.structured_content["state"] == "awaiting-decision", text(started)
        refused = await c.call_tool("cancel_execution", {"plan_id": plan["plan_id"]})
        assert refused.is_error and "confirm: true" in text(refused)
        not_boolean = await c.call_tool("cancel_execution", {"plan_id": plan["plan_id"], "confirm": "yes"})
        assert not_boolean.is_error
        cancelled = await c.call_tool(
            "cancel_execution", {"plan_id": plan["plan_id"], "confirm": True, "wait_seconds": 120}
        )
        done = cancelled.structured_content
        assert done["state"] == "finished" and done["complete"] is False, text(cancelled)
        again = await c.call_tool("cancel_execution", {"plan_id": plan["plan_id"], "confirm": True})
        assert again.is_error and "already ended" in text(again)
    (move,) = done["report"]["moves"]
    assert "rolled back" in move["error"]
    vmi = sim.store.try_get(VMIS, ns, name)
    assert vmi is not None and vmi["status"]["phase"] == "Running"
    assert sim.vmi_node(ns, name) == node  # back where it was
    assert sim.run_strategy(ns, name) == "Always"


async def test_cancelling_a_running_live_execution_leaves_every_vm_running_and_reports_what_the_cluster_shows(
    sim: Sim,
) -> None:
    ns, name, node, target = a_running_vm_and_another_node(sim)
    options = service.ExecutionOptions(poll_interval_seconds=0.05)
    async with Client(create_server(service.Target(kubeconfig=str(sim.kubeconfig)), options=options)) as c:
        plan = (
            await c.call_tool("plan_move", {"vms": [f"{ns}/{name}"], "target": target, "method": "live"})
        ).structured_content
        started = await c.call_tool(
            "execute_plan",
            {"plan_id": plan["plan_id"], "plan_hash": plan["plan_hash"], "confirm": True, "wait_seconds": 0},
        )
        assert not started.is_error, text(started)
        cancelled = await c.call_tool(
            "cancel_execution", {"plan_id": plan["plan_id"], "confirm": True, "wait_seconds": 120}
        )
    if cancelled.is_error:  # the migration won the race and the execution had already ended
        assert "already ended" in text(cancelled)
        assert sim.vmi_node(ns, name) == target
        return
    done = cancelled.structured_content
    assert done["state"] == "finished", text(cancelled)
    vmi = sim.store.try_get(VMIS, ns, name)
    assert vmi is not None and vmi["status"]["phase"] == "Running"
    where = sim.vmi_node(ns, name)
    assert where in (node, target)
    assert done["complete"] is (where == target)  # the report says what the cluster shows
    assert all((m.get("status") or {}).get("phase") not in IN_FLIGHT for m in sim.store.list(VMIMS)[0])
