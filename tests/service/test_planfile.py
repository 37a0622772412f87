"""Plan files: the shipped JSON Schema, enforced on load with a bounded parser; every invalid value refused."""

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from factories import make_node, make_state, make_vm
from vm_rebalance.errors import ConfigError
from vm_rebalance.model import Basis, Goal, GoalType, plan_to_document
from vm_rebalance.planner import PlanRequest, plan_manual_moves, propose_plan
from vm_rebalance.service import planfile
from vm_rebalance.service.requests import load_plan


def real_plan_document() -> dict[str, Any]:
    nodes = [make_node(f"worker-{i}", requested_cpu=8 if i == 1 else 1) for i in range(1, 4)]
    vms = [make_vm(f"vm-{i}", node="worker-1", vcpus=2) for i in range(1, 5)]
    vms.append(make_vm("off", node=None, running=False))
    state = make_state(nodes, vms)
    plan = plan_manual_moves(state, [("default", "vm-1", "worker-2", "auto"), ("default", "off", "worker-3", "auto")])
    assert len(plan.moves) == 2
    return plan_to_document(plan)


def write(tmp_path: Path, doc: Any, name: str = "plan.json") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def test_the_shipped_schema_is_a_valid_json_schema_and_accepts_what_plan_writes():
    schema = planfile.plan_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    doc = real_plan_document()
    jsonschema.Draft202012Validator(schema).validate(doc)
    planfile.check_plan_document(doc, "plan")


def test_an_automatic_plan_round_trips_through_a_file(tmp_path: Path):
    nodes = [make_node(f"worker-{i}", requested_cpu=12 if i == 1 else 1) for i in range(1, 4)]
    state = make_state(nodes, [make_vm(f"vm-{i}", node="worker-1") for i in range(6)], metrics=True)
    plan = propose_plan(state, PlanRequest(goal=Goal(type=GoalType.BALANCED), basis=Basis.REQUESTS))
    assert plan_to_document(load_plan(write(tmp_path, plan_to_document(plan)))) == plan_to_document(plan)


def test_the_optional_keys_of_failure_paths_load_from_a_file(tmp_path: Path):
    doc = real_plan_document()
    doc["cluster"] = {"uid": "5f0c-uid"}
    doc["moves"][0]["affinity"] = {"owner": "user", "from": ["worker-1"], "to": ["worker-2"]}
    doc["moves"][0]["scheduler_chooses"] = True
    jsonschema.Draft202012Validator(planfile.plan_schema()).validate(doc)
    plan = load_plan(write(tmp_path, doc))
    assert plan.cluster == "5f0c-uid"
    assert plan.moves[0].affinity is not None and plan.moves[0].affinity.after == ("worker-2",)
    assert plan.moves[0].scheduler_chooses
    assert plan_to_document(plan) == doc


def mutated(path: str, value: Any) -> dict[str, Any]:
    doc = real_plan_document()
    target: Any = doc
    keys = path.split(".")
    for key in keys[:-1]:
        target = target[int(key)] if key.isdigit() else target[key]
    last = keys[-1]
    if value is DELETE:
        del target[last]
    elif last.isdigit():
        target[int(last)] = value
    else:
        target[last] = value
    return doc


DELETE = object()
LEVELS = list(zip("abcdefg", "bcdefgh", strict=True))


@pytest.mark.parametrize(
    ("path", "value", "words"),
    [
        pytest.param("sequential", "maybe", r"sequential: .*boolean", id="sequential-maybe"),
        pytest.param("moves", {}, r"moves: .*array", id="moves-object"),
        pytest.param("moves.0.cpu", "1.5", r"moves\[0\]\.cpu", id="cpu-string"),
        pytest.param("moves.0.cpu", -1, r"moves\[0\]\.cpu", id="cpu-negative"),
        pytest.param("moves.0.id", 0, r"moves\[0\]\.id", id="id-zero"),
        pytest.param("moves.0.id", True, r"moves\[0\]\.id", id="id-bool"),
        pytest.param("moves.0.method", "teleport", r"moves\[0\]\.method", id="method"),
        pytest.param("moves.0.vm", "db\n## Injected", r"moves\[0\]\.vm", id="vm-name-newline"),
        pytest.param("moves.0.vm", "a" * 254, r"moves\[0\]\.vm", id="vm-name-long"),
        pytest.param("moves.0.namespace", "Prod", r"moves\[0\]\.namespace", id="namespace-upper"),
        pytest.param("moves.0.to", "", r"moves\[0\]\.to", id="to-empty"),
        pytest.param("moves.0.running", "yes", r"moves\[0\]\.running", id="running-string"),
        pytest.param("moves.0.memory_bytes", 1.5, r"moves\[0\]\.memory_bytes", id="memory-fraction"),
        pytest.param("moves.0.reason", "x" * 5000, r"moves\[0\]\.reason", id="reason-too-long"),
        pytest.param("moves.0.from", DELETE, r"moves\[0\]: .*from", id="from-missing"),
        pytest.param("goal.type", "chaos", r"goal\.type", id="goal"),
        pytest.param("goal.weights", {"cpu": -1}, r"goal\.weights\.cpu", id="weights-negative"),
        pytest.param("basis", "vibes", r"basis", id="basis"),
        pytest.param("options", {"headroom": 1.5}, r"options\.headroom", id="headroom"),
        pytest.param("options", {"max_parallel": 0}, r"options\.max_parallel", id="max-parallel"),
        pytest.param("apiVersion", "vm-rebalance/v2", r"apiVersion", id="api-version"),
        pytest.param("warnings", "none", r"warnings", id="warnings-string"),
        pytest.param("cluster", {"uid": ""}, r"cluster\.uid", id="cluster-uid-empty"),
        pytest.param("cluster", "5f0c-uid", r"cluster", id="cluster-string"),
        pytest.param(
            "moves.0.affinity",
            {"owner": "someone", "to": ["worker-2"]},
            r"moves\[0\]\.affinity\.owner",
            id="affinity-owner",
        ),
        pytest.param(
            "moves.0.affinity",
            {"owner": "user", "to": ["worker 2\n# H"]},
            r"moves\[0\]\.affinity\.to",
            id="affinity-node",
        ),
        pytest.param(
            "moves.0.scheduler_chooses", "yes", r"moves\[0\]\.scheduler_chooses", id="scheduler-chooses-string"
        ),
    ],
)
def test_invalid_values_are_refused_naming_the_field(tmp_path: Path, path: str, value: Any, words: str):
    doc = mutated(path, value)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(planfile.plan_schema()).validate(doc)  # the reference validator agrees
    with pytest.raises(ConfigError, match=words) as info:
        load_plan(write(tmp_path, doc))
    assert info.value.exit_code == 2
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        pytest.param('{"apiVersion": "vm-rebalance/v1", "cpu": NaN}', "not valid JSON", id="json-nan"),
        pytest.param('{"apiVersion": "vm-rebalance/v1", "cpu": Infinity}', "not valid JSON", id="json-infinity"),
        pytest.param("[" * 5000 + "]" * 5000, "not valid JSON", id="json-deep"),
        pytest.param("a: " + "[" * 40 + "]" * 40, "nested more than", id="yaml-deeper-than-a-plan"),
        pytest.param("a: " + "[" * 5000 + "]" * 5000, "not valid JSON/YAML|nested", id="yaml-deep"),
        pytest.param("a: 2024-01-01\n", "date values are not JSON data", id="yaml-date"),
        pytest.param(
            "a: &a [x, x, x, x, x, x, x, x]\n"
            + "".join(f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n" for p, c in LEVELS),
            "more values than it has characters",
            id="yaml-alias-bomb",
        ),
    ],
)
def test_the_parser_is_bounded(tmp_path: Path, content: str, words: str):
    with pytest.raises(ConfigError, match=words) as info:
        load_plan(write(tmp_path, content, "plan.yaml" if not content.startswith(("{", "[")) else "plan.json"))
    assert info.value.exit_code == 2


def test_yaml_nan_is_refused_by_the_schema(tmp_path: Path):
    doc = real_plan_document()
    doc["moves"][0]["cpu"] = float("nan")
    text = yaml.safe_dump(doc)
    assert ".nan" in text
    with pytest.raises(ConfigError, match=r"moves\[0\]\.cpu"):
        load_plan(write(tmp_path, text, "plan.yaml"))


def test_an_oversized_file_is_refused_before_it_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr("vm_rebalance.service.requests.MAX_PLAN_BYTES", 100)
    with pytest.raises(ConfigError, match="larger than"):
        load_plan(write(tmp_path, real_plan_document()))


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_any_single_field_corruption_is_a_config_error_never_a_crash(tmp_path_factory, data):
    """Whatever value replaces one field, loading ends in a plan or in a ConfigError (exit 2)."""
    doc = real_plan_document()
    paths = ["sequential", "basis", "goal.type", "goal.node", "goal.weights", "options"]
    paths += [f"moves.0.{k}" for k in doc["moves"][0]] + ["moves", "stays", "nodes", "metrics", "warnings"]
    path = data.draw(st.sampled_from(paths))
    value = data.draw(
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
            max_leaves=6,
        )
    )
    target = mutated(path, copy.deepcopy(value))
    path_on_disk = write(tmp_path_factory.mktemp("p"), target)
    try:
        load_plan(path_on_disk)
    except ConfigError as exc:
        assert exc.exit_code == 2 and "\n" not in str(exc)
