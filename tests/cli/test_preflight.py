"""The permission preflight: a read-only identity is refused before any question, naming what is missing,
and nothing in the cluster changes (exit 3)."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from executor.simhelpers import Sim, add_vm, cluster_objects, simulator
from vm_rebalance.cli.main import run
from vm_rebalance.model import Basis, Goal, GoalType, MigrationMethod, Move, Plan
from vm_rebalance.service import Action, lifecycle_permissions, plan_permissions, unpin_permissions

pytestmark = pytest.mark.e2e

READ_ONLY = {
    "kubeconfigUser": "viewer",
    "users": [
        {
            "name": "viewer",
            "rules": [
                {"verbs": ["get", "list", "watch"], "apiGroups": ["*"], "resources": ["*"]},
                {"verbs": ["create"], "apiGroups": ["authorization.k8s.io"], "resources": ["selfsubjectaccessreviews"]},
            ],
        }
    ],
}


@pytest.fixture
def sim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sim]:
    monkeypatch.setenv("VM_REBALANCE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    objs = cluster_objects(3)
    add_vm(objs, "db", "w1", storage="rwx", memory="4Gi")
    add_vm(objs, "web", "w1", storage="rwo")
    with simulator(tmp_path, objs, time_scale=300, policy=READ_ONLY) as s:
        yield s


def _cli(sim: Sim, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as info:
        run(["--kubeconfig", str(sim.kubeconfig), *args])
    out = capsys.readouterr()
    return int(info.value.code or 0), out.out + out.err


@pytest.mark.parametrize(
    ("args", "missing"),
    [
        pytest.param(
            ["move", "db", "--to", "w2", "--yes"],
            "create virtualmachineinstancemigrations.kubevirt.io in namespace 'default'",
            id="live-move",
        ),
        pytest.param(
            ["move", "web", "--to", "w2", "--yes"],
            "update virtualmachines/stop.subresources.kubevirt.io in namespace 'default'",
            id="cold-move",
        ),
        pytest.param(["drain", "w1", "--yes"], "patch nodes (cluster-wide)", id="drain"),
        pytest.param(
            ["restart", "db", "--yes"],
            "update virtualmachines/start.subresources.kubevirt.io in namespace 'default'",
            id="restart",
        ),
        pytest.param(["unpin", "db", "--yes"], "patch virtualmachines.kubevirt.io in namespace 'default'", id="unpin"),
    ],
)
def test_a_read_only_identity_is_refused_before_anything_changes(
    sim: Sim, capsys: pytest.CaptureFixture[str], args: list[str], missing: str
) -> None:
    before = {name: sim.node_of(name) for name in ("db", "web")}
    code, text = _cli(sim, capsys, *args)
    assert code == 3, text
    assert "needs permissions this identity lacks; nothing was changed" in text
    assert missing in text
    assert {name: sim.node_of(name) for name in ("db", "web")} == before
    assert sim.migrations() == [] and sim.running("db") and sim.running("web")
    assert not any(n["spec"].get("unschedulable") for n in sim.cluster.store.list(("", "nodes"))[0])


def test_what_each_plan_needs() -> None:
    live = Move(id=1, vm="a", namespace="p", source="w1", target="w2", method=MigrationMethod.LIVE)
    cold = Move(id=2, vm="b", namespace="q", source="w1", target="w2", method=MigrationMethod.COLD, running=True)
    stopped = Move(id=3, vm="c", namespace="q", source="-", target="w2", method=MigrationMethod.COLD, running=False)
    plan = Plan(goal=Goal(type=GoalType.MANUAL), basis=Basis.REQUESTS, moves=(live, cold, stopped))
    needed = {str(p) for p in plan_permissions(plan, cordon="w1")}
    assert "create virtualmachineinstancemigrations.kubevirt.io in namespace 'p'" in needed
    assert "patch virtualmachines.kubevirt.io in namespace 'q'" in needed
    assert "update virtualmachines/stop.subresources.kubevirt.io in namespace 'q'" in needed
    assert "patch nodes (cluster-wide)" in needed
    assert not any("namespace 'p'" in p and "subresources" in p for p in needed)  # live moves never stop
    restart = {str(p) for p in lifecycle_permissions(Action.RESTART, [("p", "a")])}
    assert {
        "update virtualmachines/stop.subresources.kubevirt.io in namespace 'p'",
        "update virtualmachines/start.subresources.kubevirt.io in namespace 'p'",
    } <= restart
    assert "patch virtualmachines.kubevirt.io in namespace 'x'" in {str(p) for p in unpin_permissions("x")}
