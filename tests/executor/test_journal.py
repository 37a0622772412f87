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


def test_typed_status_and_step_round_trip_as_the_same_strings(tmp_path: Path) -> None:
    from vm_rebalance.executor.journal import RecordStatus, Step
    from vm_rebalance.model.execution import FailureKind

    j = Journal.open("typed", directory=tmp_path)
    j.update(
        MoveRecord(
            id=1,
            vm="a",
            namespace="ns",
            method="cold",
            target="w2",
            status=RecordStatus.FAILED,
            step=Step.STOPPING,
            failure=FailureKind.STOP_FAILED,
        )
    )
    doc = json.loads((tmp_path / "typed.json").read_text())
    assert doc["moves"][0]["status"] == "failed" and doc["moves"][0]["step"] == "stopping"
    assert doc["moves"][0]["failure"] == "stop-failed"
    back = Journal.open("typed", directory=tmp_path).record(1)
    assert back is not None and back.status is RecordStatus.FAILED and back.step is Step.STOPPING
    assert back.failure is FailureKind.STOP_FAILED


def test_a_journal_written_before_failure_kinds_still_loads(tmp_path: Path) -> None:
    from vm_rebalance.executor.journal import RecordStatus, Step

    old = {
        "version": 1,
        "plan_id": "old",
        "started_at": "2026-01-01T00:00:00Z",
        "finished": False,
        "moves": [
            {
                "id": 3,
                "vm": "a",
                "namespace": "ns",
                "method": "cold",
                "target": "w2",
                "status": "running",
                "attempt": 1,
                "step": "pin",
                "migration": None,
                "original_run_strategy": "Always",
                "was_running": True,
                "pinned": False,
                "temporary_affinity": False,
                "error": None,
                "duration_seconds": None,
                "updated_at": "",
            }
        ],
    }
    (tmp_path / "old.json").write_text(json.dumps(old))
    record = Journal.open("old", directory=tmp_path).record(3)
    assert record is not None and record.status is RecordStatus.RUNNING and record.step is Step.PIN
    assert record.failure is None


def test_a_journal_with_an_unknown_step_is_unreadable_not_guessed(tmp_path: Path) -> None:
    doc = {"moves": [{"id": 1, "vm": "a", "namespace": "ns", "method": "cold", "target": "w", "step": "teleport"}]}
    (tmp_path / "odd.json").write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match="unreadable"):
        Journal.open("odd", directory=tmp_path)


@pytest.mark.parametrize("kind", ["file", "memory"])
def test_stores_behind_the_port_behave_alike(tmp_path: Path, kind: str) -> None:
    from vm_rebalance.executor.journal import FileJournalStore, JournalStore, MemoryJournalStore, unfinished_journals

    store: JournalStore = FileJournalStore(tmp_path) if kind == "file" else MemoryJournalStore()
    assert store.load("p1") is None and store.plan_ids() == []
    first = Journal.open("p1", store=store)
    assert not first.exists
    first.update(MoveRecord(id=1, vm="a", namespace="ns", method="live", target="w2", status="succeeded"))
    done = Journal.open("p2", store=store)
    done.finished = True
    done.save()
    assert store.plan_ids() == ["p1", "p2"]
    assert [j.plan_id for j in unfinished_journals(store)] == ["p1"]
    # fresh: the earlier execution of the same plan is set aside, not continued
    again = Journal.open("p1", store=store, fresh=True)
    assert again.record(1) is None and not again.exists and store.plan_ids() == ["p2"]
