"""`vm-rebalance plan --min-gain` and `--tradeoff` (the move economy), offline on a snapshot."""

import json
from pathlib import Path

import pytest

from cli.test_inventory import cli
from rawobjects import as_list, small_cluster


@pytest.fixture
def snapshot_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    path = tmp_path / "snap.json"
    path.write_text(json.dumps(as_list(small_cluster())), encoding="utf-8")
    return path


def test_min_gain_is_passed_to_the_plan_and_saved(capsys: pytest.CaptureFixture[str], snapshot_file: Path) -> None:
    code, out, err = cli(capsys, "--from-file", str(snapshot_file), "plan", "--min-gain", "0", "-o", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["min_gain"] == 0
    assert doc["stop_reason"]
    code, out, err = cli(capsys, "--from-file", str(snapshot_file), "plan", "-o", "json")
    assert code == 0, err
    assert json.loads(out)["min_gain"] == 25


def test_tradeoff_table(capsys: pytest.CaptureFixture[str], snapshot_file: Path) -> None:
    code, out, err = cli(capsys, "--from-file", str(snapshot_file), "plan", "--min-gain", "0", "--tradeoff")
    assert code == 0, err
    assert "📋 VM Rebalance Plan" in out
    assert ("Moves vs Balance" in out and "knee" in out) or "No tradeoff curve" in out


@pytest.mark.parametrize("value", ["-1", "nan"])
def test_a_bad_min_gain_is_a_usage_error(capsys: pytest.CaptureFixture[str], snapshot_file: Path, value: str) -> None:
    code, _, err = cli(capsys, "--from-file", str(snapshot_file), "plan", "--min-gain", value)
    assert code == 2
    assert "minimum gain" in err and "Traceback" not in err
