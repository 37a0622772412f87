"""Exit codes and inputs as design.md §3 says: a plan naming VMs or nodes the cluster does not have is bad
input (exit 2, naming them), a forbidden write during execution is exit 3, invalid plan values and deeply
nested files are exit 2 — never "nothing to do", never a partial "✓ Rebalancing Complete".
"""

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from executor.simhelpers import Sim, add_vm, cluster_objects, simulator, write_plan
from vm_rebalance import service
from vm_rebalance.cli import execute as execute_cli
from vm_rebalance.cli.main import run
from vm_rebalance.planner import ManualMoveRequest, plan_manual_moves

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def _env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VM_REBALANCE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    orig = execute_cli._options
    monkeypatch.setattr(execute_cli, "_options", lambda *a: dataclasses.replace(orig(*a), poll_interval_seconds=0.05))


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Sim]:
    objs = cluster_objects(4)
    for i in range(8):
        add_vm(objs, f"vm-{i}", "w1", memory="1Gi")
    with simulator(tmp_path, objs, time_scale=300) as s:
        yield s


def cli(sim: Sim, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as info:
        run(["--kubeconfig", str(sim.kubeconfig), *args])
    out = capsys.readouterr()
    return int(info.value.code or 0), out.out + out.err


def eight_moves(sim: Sim, tmp_path: Path) -> dict:
    session = service.Session.open(service.Target(kubeconfig=str(sim.kubeconfig)))
    try:
        requests = [ManualMoveRequest("default", f"vm-{i}", f"w{2 + i % 3}", "live") for i in range(8)]
        plan = plan_manual_moves(session.state, requests)
    finally:
        session.close()
    assert len(plan.moves) == 8, plan.warnings
    return json.loads(Path(write_plan(tmp_path / "eight.json", plan)).read_text())


def save(tmp_path: Path, doc: dict, name: str = "plan.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return str(path)


def test_a_plan_naming_an_unknown_vm_is_exit_2_and_runs_nothing(sim: Sim, tmp_path: Path, capsys):
    doc = eight_moves(sim, tmp_path)
    doc["moves"][7]["vm"] = "ghost"
    code, text = cli(sim, "apply", save(tmp_path, doc), "--yes", capsys=capsys)
    assert code == 2, text
    assert "default/ghost" in text and "--skip 8" in text
    assert "Rebalancing Complete" not in text
    assert not sim.cluster.store.list(("kubevirt.io", "virtualmachineinstancemigrations"))[0]


def test_a_plan_from_another_cluster_is_exit_2_naming_what_is_missing(sim: Sim, tmp_path: Path, capsys):
    doc = eight_moves(sim, tmp_path)
    for i, move in enumerate(doc["moves"]):
        move.update(vm=f"db-{i:02d}", namespace="prod", to=f"worker-{i % 3 + 1:02d}")
    for flag in ("--dry-run", "--yes"):
        code, text = cli(sim, "apply", save(tmp_path, doc), flag, capsys=capsys)
        assert code == 2, text
        assert "8 VM(s) this cluster does not have: prod/db-00" in text and "another cluster" in text
        assert "nothing to do" not in text and text.count("\n") < 6
    assert not sim.cluster.store.list(("kubevirt.io", "virtualmachineinstancemigrations"))[0]


def test_a_forbidden_write_during_execution_is_exit_3(sim: Sim, tmp_path: Path, capsys):
    doc = eight_moves(sim, tmp_path)
    doc["moves"] = doc["moves"][:2]
    sim.cluster.faults.inject_api_error(403, verbs="create", resources="virtualmachineinstancemigrations")
    code, text = cli(sim, "apply", save(tmp_path, doc), "--yes", capsys=capsys)
    assert code == 3, text
    assert "refused a write" in text and "RBAC" in text


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        pytest.param("sequential", "maybe", "sequential", id="sequential-maybe"),
        pytest.param("moves", {}, "moves", id="moves-object"),
        pytest.param("cpu", "NaN", "not valid JSON", id="nan-cpu"),
    ],
)
def test_invalid_plan_values_are_exit_2(sim: Sim, tmp_path: Path, capsys, field: str, value: object, words: str):
    doc = eight_moves(sim, tmp_path)
    if field == "cpu":
        text = json.dumps(doc).replace('"cpu": ', '"cpu": NaN, "was": ', 1)
        path = tmp_path / "nan.json"
        path.write_text(text)
        plan = str(path)
    else:
        doc[field] = value
        plan = save(tmp_path, doc)
    code, text = cli(sim, "apply", plan, "--dry-run", capsys=capsys)
    assert code == 2, text
    assert words in text


def test_a_deeply_nested_snapshot_is_exit_2(tmp_path: Path, capsys):
    path = tmp_path / "deep.json"
    path.write_text('{"apiVersion": "v1", "kind": "List", "items": ' + "[" * 5000 + "]" * 5000 + "}")
    with pytest.raises(SystemExit) as info:
        run(["--from-file", str(path), "inventory"])
    assert info.value.code == 2
    assert "nested too deeply" in capsys.readouterr().err
