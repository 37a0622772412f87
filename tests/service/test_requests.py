"""PlanSpec and the other typed inputs: every front-end's values are checked here, once."""

import json
from pathlib import Path

import pytest

from vm_rebalance.errors import ConfigError
from vm_rebalance.model import Basis, GoalType
from vm_rebalance.service import PlanSpec, check_namespaces, load_plan, move_requests, parse_weights, vm_refs


def test_a_spec_becomes_the_planners_request() -> None:
    request = PlanSpec(
        goal="balanced",
        weights={"cpu": 0.7, "memory": 0.3},
        max_migrations=5,
        basis="requests",
        live_only=True,
        namespaces=("prod",),
        headroom=0.3,
        cooldown_seconds=60,
        sequential=True,
    ).to_request()
    assert request.goal.type is GoalType.BALANCED
    assert dict(request.goal.weights) == {"cpu": 0.7, "memory": 0.3}
    assert request.basis is Basis.REQUESTS and request.max_migrations == 5 and request.live_only
    assert request.namespaces == ("prod",) and request.headroom == 0.3 and request.cooldown_seconds == 60
    assert request.sequential


def test_defaults() -> None:
    request = PlanSpec().to_request()
    assert request.goal.type is GoalType.BALANCED and dict(request.goal.weights) == {"cpu": 0.5, "memory": 0.5}
    assert request.basis is None and request.max_migrations is None


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        pytest.param(PlanSpec(goal="fastest"), "goal must be one of", id="goal"),
        pytest.param(PlanSpec(goal="manual"), "goal must be one of", id="manual-is-not-a-goal"),
        pytest.param(PlanSpec(goal="drain"), "needs node", id="drain-without-node"),
        pytest.param(PlanSpec(goal="cpu", node="w1"), "only goes with goal 'drain'", id="node-without-drain"),
        pytest.param(PlanSpec(goal="cpu", weights={"cpu": 1}), "only go with goal 'balanced'", id="weights-cpu"),
        pytest.param(PlanSpec(weights={"disk": 1}), "unknown resource disk", id="weights-unknown"),
        pytest.param(PlanSpec(weights={"cpu": float("nan")}), "finite", id="weights-nan"),
        pytest.param(PlanSpec(weights={"cpu": -1, "memory": 2}), "negative", id="weights-negative"),
        pytest.param(PlanSpec(weights={"cpu": 0, "memory": 0}), "positive", id="weights-zero"),
        pytest.param(PlanSpec(basis="vibes"), "basis must be", id="basis"),
        pytest.param(PlanSpec(max_migrations=-1), "0 or more", id="max-migrations"),
        pytest.param(PlanSpec(headroom=1.0), "headroom", id="headroom-100"),
        pytest.param(PlanSpec(headroom=float("nan")), "headroom", id="headroom-nan"),
        pytest.param(PlanSpec(cooldown_seconds=-1), "cooldown", id="cooldown"),
        pytest.param(PlanSpec(cooldown_seconds=float("inf")), "cooldown", id="cooldown-inf"),
        pytest.param(PlanSpec(namespaces=("Bad_NS",)), "not a namespace name", id="namespace"),
    ],
)
def test_bad_values_are_config_errors_naming_the_option(spec: PlanSpec, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        spec.to_request()


def test_parse_weights() -> None:
    assert parse_weights(None) is None
    assert parse_weights("cpu=0.7,memory=0.3") == {"cpu": 0.7, "memory": 0.3}
    for bad in ("cpu", "disk=1", "cpu=x"):
        with pytest.raises(ConfigError, match="--weights"):
            parse_weights(bad)


def test_vm_references() -> None:
    assert vm_refs(["a", "prod/b"], "default") == [("default", "a"), ("prod", "b")]
    with pytest.raises(ConfigError, match="is not a VM name"):
        vm_refs(["prod/"], "default")
    with pytest.raises(ConfigError, match="name at least one VM"):
        vm_refs([], "default")
    with pytest.raises(ConfigError, match="not a namespace name"):
        vm_refs(["UPPER/x"], "default")
    assert check_namespaces(["a-1"]) == ("a-1",)


def test_move_requests() -> None:
    (request,) = move_requests(["prod/db"], " w2 ", "default", "cold")
    assert (request.namespace, request.vm, request.target, request.method) == ("prod", "db", "w2", "cold")
    with pytest.raises(ConfigError, match="--method must be"):
        move_requests(["db"], "w2", "default", "teleport")
    with pytest.raises(ConfigError, match="target node"):
        move_requests(["db"], " ", "default")


@pytest.mark.parametrize(
    ("content", "words"),
    [
        pytest.param(None, "does not exist", id="missing"),
        pytest.param("{not json", "not valid JSON/YAML", id="bad-json"),
        pytest.param("[" * 100_000 + "]" * 100_000, "not valid JSON/YAML|nested too deeply", id="deeply-nested"),
        pytest.param(json.dumps({"kind": "Other"}), "plan file 'plan.json'", id="not-a-plan"),
    ],
)
def test_plan_files_that_are_not_plans(tmp_path: Path, content: str | None, words: str) -> None:
    path = tmp_path / "plan.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=words) as info:
        load_plan(path)
    assert str(tmp_path) not in str(info.value)


def test_a_directory_is_not_a_plan_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        load_plan(tmp_path)
