"""The MCP server in process (the SDK's in-memory client): tool list, argument errors, refusals, lifecycle."""

import json
from pathlib import Path
from typing import Any

import pytest
from mcp.client import Client

from vm_rebalance import service
from vm_rebalance.mcp_server.server import CHANGING_TOOLS, SKILL_URI, create_server

pytestmark = pytest.mark.e2e

NODES = ("", "nodes")
Sim = Any  # the `sim` fixture of conftest.py

ALL_TOOLS = {
    "capacity_report",
    "resolve_failure",
    "cancel_execution",
    "cluster_inventory",
    "plan_rebalance",
    "plan_move",
    "modify_plan",
    "explain_move",
    "execute_plan",
    "migration_status",
    "vm_lifecycle",
    "unpin_vm",
}


def text(result: Any) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)


def client_for(sim: Sim | None = None, **kwargs: Any) -> Client:
    target = service.Target(kubeconfig=str(sim.kubeconfig)) if sim else service.Target(from_file="snap.json")
    return Client(create_server(target, **kwargs))


async def test_tools_are_listed_with_descriptions_schemas_and_annotations():
    async with client_for() as c:
        tools = {t.name: t for t in (await c.list_tools()).tools}
    assert set(tools) == ALL_TOOLS
    assert all(t.description and t.output_schema for t in tools.values())
    execute = tools["execute_plan"]
    assert execute.annotations.destructive_hint is True and execute.annotations.read_only_hint is False
    assert {"plan_id", "plan_hash", "confirm"} <= set(execute.input_schema["properties"])
    assert "CHANGES THE CLUSTER" in execute.description and "confirm: true" in execute.description
    assert tools["plan_rebalance"].annotations.read_only_hint is True
    goal = tools["plan_rebalance"].input_schema["properties"]["goal"]
    assert set(goal["enum"]) == {"cpu", "memory", "balanced", "count", "drain", "performance"}


async def test_read_only_server_leaves_out_the_changing_tools():
    async with client_for(read_only=True) as c:
        names = {t.name for t in (await c.list_tools()).tools}
    assert names == ALL_TOOLS - set(CHANGING_TOOLS)


async def test_skill_is_served_as_a_resource_and_a_prompt():
    async with client_for() as c:
        resource = await c.read_resource(SKILL_URI)
        prompt = await c.get_prompt("rebalance_skill", {"request": "drain worker-02"})
    skill = resource.contents[0].text
    assert "confirmation protocol" in skill and "plan_hash" in skill and "execute_plan" in skill
    prompt_text = prompt.messages[0].content.text
    assert prompt_text.startswith(skill[:40]) and "drain worker-02" in prompt_text


@pytest.mark.parametrize(
    ("tool", "args", "message"),
    [
        pytest.param("plan_rebalance", {"goal": "drain"}, "needs node", id="drain-without-node"),
        pytest.param(
            "plan_rebalance", {"goal": "cpu", "node": "w1"}, "only goes with goal 'drain'", id="node-no-drain"
        ),
        pytest.param(
            "plan_rebalance",
            {"goal": "cpu", "weights": {"cpu": 1}},
            "only go with goal 'balanced'",
            id="weights-no-balanced",
        ),
        pytest.param(
            "plan_rebalance",
            {"goal": "balanced", "weights": {"cpu": 0, "memory": 0}},
            "at least one weight",
            id="zero-weights",
        ),
        pytest.param("plan_rebalance", {"goal": "chaos"}, "goal", id="unknown-goal"),
        pytest.param("explain_move", {"plan_id": "nope", "move_id": 1}, "unknown plan id", id="explain-unknown"),
        pytest.param("modify_plan", {"plan_id": "nope", "skip": [1]}, "unknown plan id", id="modify-unknown"),
        pytest.param(
            "execute_plan",
            {"plan_id": "nope", "plan_hash": "0" * 64, "confirm": True},
            "unknown plan id",
            id="execute-unknown",
        ),
        pytest.param("migration_status", {"plan_id": "nope"}, "no execution of plan nope", id="status-unknown"),
        pytest.param(
            "vm_lifecycle", {"action": "stop", "vms": ["a"]}, "cannot run on --from-file", id="lifecycle-offline"
        ),
        pytest.param("unpin_vm", {"vm": "a"}, "cannot run on --from-file", id="unpin-offline"),
    ],
)
async def test_bad_arguments_are_tool_errors_with_clear_messages(tool, args, message):
    async with client_for() as c:
        result = await c.call_tool(tool, args)
    assert result.is_error
    assert message in text(result)


async def test_cluster_errors_never_show_the_kubeconfig_path(tmp_path: Path):
    missing = tmp_path / "very-secret-kubeconfig.yaml"
    async with Client(create_server(service.Target(kubeconfig=str(missing)))) as c:
        result = await c.call_tool("cluster_inventory", {})
    assert result.is_error
    assert str(missing) not in text(result) and "very-secret" not in text(result)


async def test_execution_is_refused_without_the_approved_hash_and_confirm(sim: Sim):
    seen: list[str] = []
    async with client_for(sim) as c:
        inventory = await c.call_tool("cluster_inventory", {"namespaces": ["prod"]})
        assert not inventory.is_error and "### Nodes" in text(inventory)
        assert {v["namespace"] for v in inventory.structured_content["inventory"]["vms"]} == {"prod"}
        planned = await c.call_tool("plan_rebalance", {"goal": "balanced"})
        assert not planned.is_error, text(planned)
        plan = planned.structured_content
        assert plan["plan"]["moves"] and len(plan["plan_hash"]) == 64
        assert "📋 VM Rebalance Plan" in text(planned) and plan["plan_hash"] in text(planned)
        modified = await c.call_tool("modify_plan", {"plan_id": plan["plan_id"], "skip": [1]})
        new = modified.structured_content
        assert new["plan_id"] != plan["plan_id"] and new["plan_hash"] != plan["plan_hash"]
        assert new["replaces"] == plan["plan_id"] and "Migration #1" in new["changes"][0]
        attempts = [
            ({"plan_id": new["plan_id"], "plan_hash": "f" * 64, "confirm": True}, "does not match"),
            ({"plan_id": new["plan_id"], "confirm": True}, "no plan_hash given"),
            ({"plan_id": new["plan_id"], "plan_hash": plan["plan_hash"], "confirm": True}, "does not match"),
            ({"plan_id": new["plan_id"], "plan_hash": new["plan_hash"], "confirm": False}, "needs confirm: true"),
            ({"plan_id": new["plan_id"], "plan_hash": new["plan_hash"]}, "needs confirm: true"),
            ({"plan_id": "0123456789ab", "plan_hash": new["plan_hash"], "confirm": True}, "unknown plan id"),
            ({"plan_id": plan["plan_id"], "plan_hash": plan["plan_hash"], "confirm": True}, "was modified"),
        ]
        for args, message in attempts:
            result = await c.call_tool("execute_plan", args)
            assert result.is_error and message in text(result), (args, text(result))
            seen.append(text(result))
        explained = await c.call_tool(
            "explain_move", {"plan_id": new["plan_id"], "move_id": new["plan"]["moves"][0]["id"]}
        )
        assert "Why live" in text(explained) or "Why cold" in text(explained)
        seen += [
            text(inventory),
            text(planned),
            text(modified),
            text(explained),
            json.dumps(planned.structured_content),
            json.dumps(inventory.structured_content),
        ]
    assert sim.migrations() == 0
    assert not any(str(sim.kubeconfig) in s or "secret-location" in s for s in seen)


async def test_execution_is_refused_when_the_cluster_changed(sim: Sim):
    vm = next(
        v
        for v in sim.store.list(("kubevirt.io", "virtualmachineinstances"))[0]
        if (v.get("status") or {}).get("phase") == "Running"
    )
    ns, name, node = vm["metadata"]["namespace"], vm["metadata"]["name"], vm["status"]["nodeName"]
    target = next(
        n["metadata"]["name"]
        for n in sim.store.list(NODES)[0]
        if n["metadata"]["name"] not in (node,) and "control" not in n["metadata"]["name"]
    )
    async with client_for(sim) as c:
        planned = await c.call_tool("plan_move", {"vms": [f"{ns}/{name}"], "target": target})
        assert not planned.is_error, text(planned)
        plan = planned.structured_content

        def cordon(obj: dict) -> None:
            obj["spec"]["unschedulable"] = True

        sim.store.mutate(NODES, None, target, cordon)
        result = await c.call_tool(
            "execute_plan", {"plan_id": plan["plan_id"], "plan_hash": plan["plan_hash"], "confirm": True}
        )
    assert result.is_error
    assert "the cluster changed" in text(result) and "cordoned" in text(result) and target in text(result)
    assert sim.migrations() == 0


async def test_plan_move_reports_failed_validations(sim: Sim):
    async with client_for(sim) as c:
        none_found = await c.call_tool("plan_move", {"vms": ["ghost"], "target": "worker-01"})
        no_node = await c.call_tool("plan_move", {"vms": ["ghost"], "target": "nowhere"})
    assert none_found.is_error and "VM 'ghost' does not exist in namespace 'default'" in text(none_found)
    assert no_node.is_error and "Target node 'nowhere' does not exist" in text(no_node)


async def test_lifecycle_needs_a_plan_its_hash_and_confirm(sim: Sim):
    vm = next(
        v for v in sim.store.list(("kubevirt.io", "virtualmachines"))[0] if v["spec"].get("runStrategy") == "Always"
    )
    ns, name = vm["metadata"]["namespace"], vm["metadata"]["name"]
    progress: list[str] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(message or "")

    async with client_for(sim) as c:
        planned = await c.call_tool("vm_lifecycle", {"action": "stop", "vms": [f"{ns}/{name}"]})
        assert not planned.is_error, text(planned)
        plan = planned.structured_content
        assert plan["executed"] is False and "## VM Lifecycle Operation" in text(planned) and "`stop`" in text(planned)
        unconfirmed = await c.call_tool("vm_lifecycle", {"plan_id": plan["plan_id"], "plan_hash": plan["plan_hash"]})
        wrong = await c.call_tool("vm_lifecycle", {"plan_id": plan["plan_id"], "plan_hash": "0" * 64, "confirm": True})
        assert unconfirmed.is_error and wrong.is_error
        assert sim.run_strategy(ns, name) == "Always"
        done = await c.call_tool(
            "vm_lifecycle",
            {"plan_id": plan["plan_id"], "plan_hash": plan["plan_hash"], "confirm": True},
            progress_callback=on_progress,
        )
        assert not done.is_error, text(done)
        again = await c.call_tool(
            "vm_lifecycle", {"plan_id": plan["plan_id"], "plan_hash": plan["plan_hash"], "confirm": True}
        )
    assert done.structured_content["complete"] is True
    assert done.structured_content["results"][0]["status"] == "done"
    assert sim.run_strategy(ns, name) == "Halted"
    assert progress and any(name in p for p in progress)
    assert again.is_error and "already executed" in text(again)


async def test_unpin_shows_that_an_unpinned_vm_needs_nothing(sim: Sim):
    vm = sim.store.list(("kubevirt.io", "virtualmachines"))[0][0]
    async with client_for(sim) as c:
        result = await c.call_tool("unpin_vm", {"vm": vm["metadata"]["name"], "namespace": vm["metadata"]["namespace"]})
    assert not result.is_error, text(result)
    assert result.structured_content["plan"]["pinned_to"] == [] and "nothing to do" in text(result)


async def test_the_changed_plans_remainder_is_a_new_plan_to_approve(sim: Sim):
    """The validation policy: what still validates is offered as a new plan, never executed on the old hash."""
    running = [
        v
        for v in sim.store.list(("kubevirt.io", "virtualmachineinstances"))[0]
        if v["status"].get("phase") == "Running"
    ]
    first, second = running[0], running[1]
    busy = {first["status"]["nodeName"], second["status"]["nodeName"]}
    targets = [
        n["metadata"]["name"]
        for n in sim.store.list(NODES)[0]
        if n["metadata"]["name"] not in busy and "control" not in n["metadata"]["name"]
    ]
    async with client_for(sim) as c:
        planned = await c.call_tool(
            "plan_move",
            {
                "vms": [f"{v['metadata']['namespace']}/{v['metadata']['name']}" for v in (first, second)],
                "target": targets[0],
            },
        )
        assert not planned.is_error, text(planned)
        plan = planned.structured_content
        if len(plan["plan"]["moves"]) < 2:
            pytest.skip("the scenario's target cannot take both VMs")

        # Someone deletes one of the two VMs meanwhile.
        ns, name = first["metadata"]["namespace"], first["metadata"]["name"]
        sim.store.delete(("kubevirt.io", "virtualmachineinstances"), ns, name)
        sim.store.delete(("kubevirt.io", "virtualmachines"), ns, name)
        refused = await c.call_tool(
            "execute_plan", {"plan_id": plan["plan_id"], "plan_hash": plan["plan_hash"], "confirm": True}
        )
        assert refused.is_error and "what still validates is plan" in text(refused)
        new_id = text(refused).split("what still validates is plan ")[1].split(" ")[0]
        again = await c.call_tool(
            "execute_plan", {"plan_id": plan["plan_id"], "plan_hash": plan["plan_hash"], "confirm": True}
        )
        assert again.is_error and f"replaced by plan {new_id}" in text(again)
    assert sim.migrations() == 0


async def test_a_plan_the_identity_could_not_execute_is_refused_before_approval(tmp_path: Path):
    from vm_rebalance.simulator.auth import Policy
    from vm_rebalance.simulator.cluster import SimCluster
    from vm_rebalance.simulator.server import SimulatorServer

    policy = Policy.from_dict(
        {
            "kubeconfigUser": "viewer",
            "users": [
                {
                    "name": "viewer",
                    "rules": [
                        {"verbs": ["get", "list", "watch"], "apiGroups": ["*"], "resources": ["*"]},
                        {
                            "verbs": ["create"],
                            "apiGroups": ["authorization.k8s.io"],
                            "resources": ["selfsubjectaccessreviews"],
                        },
                    ],
                }
            ],
        }
    )
    with SimulatorServer(SimCluster.from_scenario("small", time_scale=500), policy=policy) as server:
        kubeconfig = tmp_path / "kc"
        server.write_kubeconfig(kubeconfig)
        target = service.Target(kubeconfig=str(kubeconfig))
        async with Client(create_server(target)) as c:
            refused = await c.call_tool("plan_rebalance", {"goal": "cpu"})
        async with Client(create_server(target, read_only=True)) as c:
            allowed = await c.call_tool("plan_rebalance", {"goal": "cpu"})
    assert refused.is_error and "needs permissions this identity lacks" in text(refused)
    assert "create virtualmachineinstancemigrations.kubevirt.io" in text(refused)
    assert not allowed.is_error, text(allowed)  # read-only: plans to look at, no preflight
