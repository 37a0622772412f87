"""The journal: where it lives, atomic rewrite, round trip, unreadable files."""

import json
from pathlib import Path

import pytest

from vm_rebalance.errors import ConfigError
from vm_rebalance.executor.journal import Journal, MoveRecord, state_dir


def test_state_dir_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VM_REBALANCE_STATE_DIR", str(tmp_path / "x"))
    assert state_dir() == tmp_path / "x"
    monkeypatch.delenv("VM_REBALANCE_STATE_DIR")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert state_dir() == tmp_path / "xdg" / "vm-rebalance" / "journals"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert state_dir() == tmp_path / "home" / ".local" / "state" / "vm-rebalance" / "journals"


def test_round_trip_and_atomic_write(tmp_path: Path) -> None:
    j = Journal.open("abc", directory=tmp_path)
    assert not j.exists and j.record(1) is None
    j.update(
        MoveRecord(
            id=1,
            vm="a",
            namespace="ns",
            method="live",
            target="w2",
            status="running",
            attempt=2,
            migration="vmr-abc-1-2",
            temporary_affinity=True,
        )
    )
    j.update(
        MoveRecord(
            id=2,
            vm="b",
            namespace="ns",
            method="cold",
            target="w3",
            status="succeeded",
            original_run_strategy="Always",
            was_running=True,
            pinned=True,
        )
    )
    assert j.exists and sorted(p.name for p in tmp_path.iterdir()) == ["abc.json"]  # no temp file left
    again = Journal.open("abc", directory=tmp_path)
    assert again.record(1) is not None and again.record(1).migration == "vmr-abc-1-2"  # type: ignore[union-attr]
    assert again.record(1).temporary_affinity and again.record(2).pinned  # type: ignore[union-attr]
    assert not again.finished
    again.finished = True
    again.save()
    assert json.loads((tmp_path / "abc.json").read_text())["finished"] is True


def test_unreadable_journal_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match="unreadable") as info:
        Journal.open("bad", directory=tmp_path)
    assert str(tmp_path) not in str(info.value) + (info.value.hint or "")
