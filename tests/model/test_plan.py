"""Plans and their document form: plan_to_document / plan_from_document round-trip."""

import json
from typing import Any

import pytest

from vm_rebalance.model import (
    Basis,
    Goal,
    GoalType,
    MigrationMethod,
    Move,
    NodeChange,
    NodeLoad,
    Plan,
    PlanDocumentError,
    Stay,
    plan_from_document,
    plan_to_document,
)


def sample_plan() -> Plan:
    return Plan(
        goal=Goal(type=GoalType.BALANCED, weights={"cpu": 0.7, "memory": 0.3}),
        basis=Basis.USAGE,
        moves=(
            Move(
                id=1,
                vm="db",
                namespace="prod",
                source="w1",
                target="w3",
                method=MigrationMethod.LIVE,
                wave=1,
                cpu=1.8,
                memory_bytes=8 * 1024**3,
                reason="spread load",
                instance_type="u1.large",
                guest_memory_bytes=8 * 1024**3,
                storage="RWX",
            ),
            Move(
                id=2,
                vm="web",
                namespace="prod",
                source="w1",
                target="w2",
                method=MigrationMethod.COLD,
                wave=2,
                cpu=0.5,
                memory_bytes=1024**3,
                downtime="~30-60s",
                storage="RWO",
            ),
            Move(
                id=3,
                vm="off",
                namespace="dev",
                source="w2",
                target="w3",
                method=MigrationMethod.COLD,
                wave=2,
                running=False,
                downtime="none",
                storage="containerdisk",
            ),
        ),
        stays=(
            Stay(vm="cache", namespace="prod", node="w2", reason="already balanced"),
            Stay(vm="halted", namespace="dev", node=None, reason="stopped"),
        ),
        nodes=(NodeChange("w1", NodeLoad(5, 0.85, 0.72), NodeLoad(3, 0.68, 0.59)),),
        metrics_before={"cpu_stddev": 22.1, "memory_stddev": 11.8},
        metrics_after={"cpu_stddev": 4.2, "memory_stddev": 7.3},
        warnings=("batch above 5 VMs",),
        sequential=True,
        max_parallel=2,
        headroom=0.35,
        keep_order=True,
    )


@pytest.mark.parametrize(
    "plan",
    [
        pytest.param(sample_plan(), id="full"),
        pytest.param(Plan(goal=Goal(type=GoalType.CPU), basis=Basis.REQUESTS), id="empty"),
        pytest.param(Plan(goal=Goal(type=GoalType.DRAIN, node="w1"), basis=Basis.USAGE), id="drain"),
        pytest.param(
            Plan(goal=Goal(type=GoalType.CPU), basis=Basis.REQUESTS, max_parallel=1, headroom=0.0),
            id="options",
        ),
    ],
)
def test_round_trip(plan: Plan) -> None:
    doc = plan_to_document(plan)
    # The document is plain JSON and survives serialisation.
    doc = json.loads(json.dumps(doc))
    back = plan_from_document(doc)
    assert back == plan
    assert plan_to_document(back) == doc


def test_document_shape_matches_design() -> None:
    doc = plan_to_document(sample_plan())
    assert doc["apiVersion"] == "vm-rebalance/v1"
    assert doc["kind"] == "RebalancePlan"
    assert doc["goal"] == {"type": "balanced", "weights": {"cpu": 0.7, "memory": 0.3}, "node": None}
    move = doc["moves"][0]
    assert {
        "id",
        "vm",
        "namespace",
        "from",
        "to",
        "method",
        "wave",
        "cpu",
        "memory_bytes",
        "downtime",
        "reason",
    } <= set(move)
    assert (move["from"], move["to"], move["method"]) == ("w1", "w3", "live")
    assert doc["nodes"][0] == {
        "name": "w1",
        "before": {"vms": 5, "cpu": 0.85, "memory": 0.72},
        "after": {"vms": 3, "cpu": 0.68, "memory": 0.59},
    }
    assert doc["metrics"]["before"]["cpu_stddev"] == 22.1
    assert doc["options"] == {"max_parallel": 2, "headroom": 0.35, "keep_order": True}


def test_plan_options_default_and_round_trip() -> None:
    plan = Plan(goal=Goal(type=GoalType.CPU), basis=Basis.USAGE)
    assert (plan.max_parallel, plan.headroom, plan.keep_order) == (None, 0.20, False)
    doc = plan_to_document(plan)
    assert doc["options"] == {"max_parallel": None, "headroom": 0.2, "keep_order": False}
    back = plan_from_document(json.loads(json.dumps(plan_to_document(sample_plan()))))
    assert (back.max_parallel, back.headroom, back.keep_order) == (2, 0.35, True)


@pytest.mark.parametrize(
    "options",
    [
        pytest.param(None, id="null"),
        pytest.param({}, id="empty"),
        pytest.param("absent", id="absent"),
    ],
)
def test_documents_without_options_use_the_defaults(options: Any) -> None:
    doc = plan_to_document(sample_plan())
    if options == "absent":
        del doc["options"]
    else:
        doc["options"] = options
    plan = plan_from_document(doc)
    assert (plan.max_parallel, plan.headroom, plan.keep_order) == (None, 0.20, False)
    # Documents written from then on carry the (default) options and round-trip.
    again = plan_to_document(plan)
    assert again["options"] == {"max_parallel": None, "headroom": 0.2, "keep_order": False}
    assert plan_to_document(plan_from_document(again)) == again


def test_waves_and_lookup() -> None:
    plan = sample_plan()
    assert [[m.id for m in w] for w in plan.waves] == [[1], [2, 3]]
    assert plan.move(2) is not None and plan.move(2).vm == "web"
    assert plan.move(99) is None


@pytest.mark.parametrize(
    ("build", "match"),
    [
        pytest.param(lambda: Goal(type=GoalType.DRAIN), "drain", id="drain-without-node"),
        pytest.param(lambda: Goal(type=GoalType.BALANCED, weights={"cpu": -1.0}), "weights", id="negative-weight"),
        pytest.param(
            lambda: Goal(type=GoalType.BALANCED, weights={"cpu": float("inf")}),
            "weights",
            id="infinite-weight",
        ),
        pytest.param(
            lambda: Move(id=1, vm="a", namespace="n", source="w1", target="w1", method=MigrationMethod.LIVE),
            "source and target",
            id="same-node",
        ),
        pytest.param(
            lambda: Move(id=1, vm="a", namespace="n", source="w1", target="w2", method=MigrationMethod.LIVE, wave=0),
            "waves",
            id="wave-zero",
        ),
        pytest.param(
            lambda: Plan(
                goal=Goal(type=GoalType.CPU),
                basis=Basis.USAGE,
                moves=(
                    Move(id=1, vm="a", namespace="n", source="w1", target="w2", method=MigrationMethod.LIVE),
                    Move(id=1, vm="b", namespace="n", source="w1", target="w2", method=MigrationMethod.LIVE),
                ),
            ),
            "unique",
            id="duplicate-ids",
        ),
        pytest.param(
            lambda: Plan(goal=Goal(type=GoalType.CPU), basis=Basis.USAGE, max_parallel=0),
            "max_parallel",
            id="max-parallel-zero",
        ),
        pytest.param(
            lambda: Plan(goal=Goal(type=GoalType.CPU), basis=Basis.USAGE, headroom=1.0),
            "headroom",
            id="headroom-one",
        ),
    ],
)
def test_model_validation(build: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build()


def _doc(**changes: Any) -> dict[str, Any]:
    doc = plan_to_document(sample_plan())
    doc.update(changes)
    return doc


def _move_doc(**changes: Any) -> dict[str, Any]:
    doc = plan_to_document(sample_plan())
    doc["moves"][0].update(changes)
    return doc


def _without_move_field(name: str) -> dict[str, Any]:
    doc = plan_to_document(sample_plan())
    del doc["moves"][0][name]
    return doc


@pytest.mark.parametrize(
    ("doc", "match"),
    [
        pytest.param([], "object", id="not-a-mapping"),
        pytest.param(_doc(kind="Other"), "not a plan", id="wrong-kind"),
        pytest.param(_doc(apiVersion="v2"), "not a plan", id="wrong-version"),
        pytest.param({k: v for k, v in _doc().items() if k != "goal"}, "goal", id="no-goal"),
        pytest.param(_doc(goal={"weights": {}}), "type", id="goal-without-type"),
        pytest.param(_doc(goal={"type": "bogus"}), "bogus", id="unknown-goal"),
        pytest.param(_doc(basis="vibes"), "vibes", id="unknown-basis"),
        pytest.param({k: v for k, v in _doc().items() if k != "moves"}, "moves", id="no-moves"),
        pytest.param(_without_move_field("to"), r"moves\[0\].*'to'", id="move-without-to"),
        pytest.param(_without_move_field("id"), r"moves\[0\].*'id'", id="move-without-id"),
        pytest.param(_move_doc(method="teleport"), "teleport", id="unknown-method"),
        pytest.param(_move_doc(to="w1"), "source and target", id="move-to-same-node"),
        pytest.param(_move_doc(id="one"), "malformed", id="non-int-id"),
        pytest.param(_doc(moves=[5]), r"moves\[0\]", id="move-not-object"),
        pytest.param(_doc(stays=[{"vm": "x"}]), r"stays\[0\].*namespace", id="stay-without-namespace"),
        pytest.param(
            _doc(nodes=[{"name": "w1", "before": {"vms": 1, "cpu": 0.1}, "after": {}}]),
            r"nodes\[0\].before.*memory",
            id="load-without-memory",
        ),
        pytest.param(
            _doc(
                nodes=[
                    {
                        "name": "w1",
                        "before": {"vms": "x", "cpu": 0, "memory": 0},
                        "after": {"vms": 1, "cpu": 0, "memory": 0},
                    }
                ]
            ),
            r"nodes\[0\].before",
            id="load-bad-number",
        ),
        pytest.param(_doc(metrics=[1]), "malformed", id="metrics-not-object"),
        pytest.param(_doc(goal={"type": "drain"}), "drain", id="drain-without-node"),
        pytest.param(_doc(options=[1]), "options", id="options-not-object"),
        pytest.param(_doc(options={"max_parallel": "two"}), r"options\.max_parallel", id="max-parallel-not-int"),
        pytest.param(_doc(options={"max_parallel": 0}), r"options\.max_parallel", id="max-parallel-zero"),
        pytest.param(_doc(options={"headroom": "lots"}), r"options\.headroom", id="headroom-not-number"),
        pytest.param(_doc(options={"headroom": 1.5}), r"options\.headroom", id="headroom-out-of-range"),
        pytest.param(_doc(options={"keep_order": "yes"}), r"options\.keep_order", id="keep-order-not-bool"),
    ],
)
def test_malformed_documents_name_the_field(doc: Any, match: str) -> None:
    with pytest.raises(PlanDocumentError, match=match):
        plan_from_document(doc)


def test_optional_move_fields_default() -> None:
    doc = plan_to_document(sample_plan())
    doc["moves"] = [{"id": 7, "vm": "a", "namespace": "n", "from": "w1", "to": "w2", "method": "live"}]
    del doc["stays"], doc["nodes"], doc["metrics"], doc["warnings"], doc["sequential"], doc["options"]
    plan = plan_from_document(doc)
    (move,) = plan.moves
    assert (move.wave, move.cpu, move.memory_bytes, move.downtime, move.running) == (1, 0.0, 0, "<1s", True)
    assert plan.stays == () and plan.nodes == () and plan.warnings == () and not plan.sequential
    assert (plan.max_parallel, plan.headroom, plan.keep_order) == (None, 0.20, False)
