"""`vm-rebalance report` and `plan --html` end to end through the run() error boundary, on snapshot files."""

import json
from pathlib import Path

import pytest
import yaml

from rawobjects import as_list, small_cluster, vm_obj
from vm_rebalance.cli.main import run
from vm_rebalance.service.capacity import N_PLUS_ONE_OFF


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the command; (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as info:
        run(list(argv))
    out, err = capsys.readouterr()
    code = info.value.code
    return (code if isinstance(code, int) else 0 if code is None else 1), out, err


@pytest.fixture(autouse=True)
def _no_ambient_kubeconfig(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("VM_REBALANCE_KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))


@pytest.fixture
def snapshot_file(tmp_path: Path) -> Path:
    objects = small_cluster()
    objects.append(vm_obj("stream", run_strategy="Halted", annotations={"vm-rebalance.io/workload-class": "streaming"}))
    path = tmp_path / "snap.json"
    path.write_text(json.dumps(as_list(objects)), encoding="utf-8")
    return path


def test_report_json_is_a_versioned_capacity_document(capsys: pytest.CaptureFixture[str], snapshot_file: Path) -> None:
    code, out, err = cli(capsys, "--from-file", str(snapshot_file), "report", "-o", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert (doc["apiVersion"], doc["kind"], doc["source"], doc["basis"]) == (
        "vm-rebalance/v1",
        "CapacityReport",
        "snapshot",
        "usage",
    )
    assert {n["name"] for n in doc["nodes"]} == {"cp1", "w1", "w2", "w3"}
    assert doc["cluster"]["band"] in {"healthy", "plan", "urgent", "emergency"}
    assert doc["n_plus_one"]["node"] in {"w1", "w2"}  # the 64 GiB workers, not the 32 GiB w3 or the control plane
    classified = {w["vm"]: w for w in doc["workload_classes"]["vms"]}
    assert classified["stream"]["workload_type"] == "streaming" and classified["stream"]["classes"] == ["network"]
    assert doc["migration_slots"]["cluster_limit"] == 5
    assert doc["sections"]["plan"] == {"available": False, "reason": doc["sections"]["plan"]["reason"]}
    assert "kubeconfig" not in err


def test_report_yaml_and_table(capsys: pytest.CaptureFixture[str], snapshot_file: Path) -> None:
    code, out, _ = cli(capsys, "--from-file", str(snapshot_file), "report", "-o", "yaml")
    assert code == 0 and yaml.safe_load(out)["kind"] == "CapacityReport"
    code, out, _ = cli(capsys, "--from-file", str(snapshot_file), "report", "--basis", "requests", "--no-n-plus-one")
    assert code == 0
    assert "Capacity report — basis: requests" in out and "Cluster band:" in out
    assert f"N+1: losing the largest node: {N_PLUS_ONE_OFF}" in out


def test_report_html_and_a_saved_plan(capsys: pytest.CaptureFixture[str], snapshot_file: Path, tmp_path: Path) -> None:
    plan_file = tmp_path / "plan.json"
    plan_html = tmp_path / "plan.html"
    code, _, err = cli(
        capsys,
        "--from-file",
        str(snapshot_file),
        "plan",
        "--goal",
        "cpu",
        "--save",
        str(plan_file),
        "--html",
        str(plan_html),
    )
    assert code == 0, err
    assert "HTML plan written to" in err
    page = plan_html.read_text("utf-8")
    assert page.startswith("<!DOCTYPE html>") and "📊 Node State: Before → After" in page
    report_html = tmp_path / "report.html"
    code, out, err = cli(
        capsys, "--from-file", str(snapshot_file), "report", "--plan", str(plan_file), "--html", str(report_html)
    )
    assert code == 0, err
    assert "nodes before → after" in out
    html = report_html.read_text("utf-8")
    assert 'data-chart="node-utilisation"' in html and 'data-chart="plan-before-after"' in html


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(("report", "--basis", "vibes"), "unknown basis 'vibes'", id="bad-basis"),
        pytest.param(("report", "--plan", "missing.json"), "plan file 'missing.json' does not exist", id="no-plan"),
        pytest.param(("report", "--html", "/nonexistent-dir/r.html"), "cannot write 'r.html'", id="unwritable"),
        pytest.param(("plan", "--html", "/nonexistent-dir/p.html"), "cannot write 'p.html'", id="plan-unwritable"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], snapshot_file: Path, argv: tuple[str, ...], message: str
) -> None:
    code, _, err = cli(capsys, "--from-file", str(snapshot_file), *argv)
    assert code == 2
    assert message in err and "Traceback" not in err
    assert "nonexistent-dir" not in err  # a path is not echoed (it could be a secret location)


@pytest.mark.e2e
def test_report_on_the_simulated_demo_cluster_over_https(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """The real client reads the simulator; a live report equals the report of its snapshot."""
    from vm_rebalance.simulator.cluster import SimCluster
    from vm_rebalance.simulator.server import SimulatorServer

    cluster = SimCluster.from_scenario("demo", manual_clock=True)
    kubeconfig = tmp_path / "kubeconfig"
    saved = tmp_path / "demo.json"
    html = tmp_path / "demo.html"
    with SimulatorServer(cluster, manage_cluster=False) as srv:  # frozen: no controller ticks
        srv.write_kubeconfig(kubeconfig)
        code, live_out, err = cli(capsys, "--kubeconfig", str(kubeconfig), "report", "-o", "json", "--html", str(html))
        assert code == 0, err
        code, _, err = cli(capsys, "--kubeconfig", str(kubeconfig), "snapshot", "-o", str(saved))
        assert code == 0, err
    live = json.loads(live_out)
    assert live["source"] == "cluster" and live["basis"] == "usage"  # the simulator serves metrics.k8s.io
    assert live["cluster"]["eligible_nodes"] == 6  # six workers; the control-plane node is not capacity
    # The demo's two hottest workers (CPU targets 88 % and 86 %) are beyond the warning level.
    hot = {n["name"] for n in live["nodes"] if n["band"] in ("urgent", "emergency")}
    assert len(hot) == 2
    assert live["n_plus_one"]["fits"] is True and live["right_sizing"]
    assert str(kubeconfig) not in live_out + err and 'data-chart="node-utilisation"' in html.read_text("utf-8")
    code, file_out, err = cli(capsys, "--from-file", str(saved), "report", "-o", "json")
    assert code == 0, err
    assert {**json.loads(file_out), "source": None, "observation": None} == {
        **live,
        "source": None,
        "observation": None,
    }
