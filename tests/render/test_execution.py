"""The execution report and its troubleshooting: decided on failure kinds, never on the message text."""

import pytest

from vm_rebalance.model import MigrationMethod, Move
from vm_rebalance.model.execution import FailureKind, MoveStatus, Outcome, outcome_document
from vm_rebalance.render.execution import status_icon, status_label, status_style, troubleshooting

MOVE = Move(id=1, vm="db", namespace="prod", source="w1", target="w2", method=MigrationMethod.LIVE)


def failed(kind: FailureKind, error: str = "whatever") -> Outcome:
    return Outcome(move=MOVE, status=MoveStatus.FAILED, failure=kind, error=error)


@pytest.mark.parametrize("kind", list(FailureKind))
def test_every_failure_kind_has_advice(kind: FailureKind) -> None:
    assert troubleshooting(failed(kind))


def test_the_advice_follows_the_kind_not_the_words_of_the_message() -> None:
    # The message mentions RWO storage and a timeout; the kind says RBAC: the advice is about RBAC.
    advice = troubleshooting(failed(FailureKind.FORBIDDEN, "timed out on an RWO disk, not shared"))
    assert any("permissions" in line for line in advice) and not any("ReadWriteMany" in line for line in advice)
    assert any("ReadWriteMany" in line for line in troubleshooting(failed(FailureKind.NOT_LIVE_MIGRATABLE, "")))


def test_no_advice_for_moves_that_did_not_fail() -> None:
    assert troubleshooting(Outcome(move=MOVE, status=MoveStatus.SUCCEEDED)) == []


def test_a_failed_outcome_needs_a_kind_and_only_a_failed_one_has_one() -> None:
    with pytest.raises(ValueError, match="failure kind"):
        Outcome(move=MOVE, status=MoveStatus.FAILED, error="no kind")
    with pytest.raises(ValueError, match="failure kind"):
        Outcome(move=MOVE, status=MoveStatus.SUCCEEDED, failure=FailureKind.API_ERROR)


def test_the_outcome_document_carries_the_kind() -> None:
    doc = outcome_document(failed(FailureKind.MIGRATION_TIMEOUT, "timed out"))
    assert doc["failure"] == "migration-timeout" and doc["status"] == "failed" and doc["error"] == "timed out"
    assert outcome_document(Outcome(move=MOVE, status=MoveStatus.SKIPPED))["failure"] is None


@pytest.mark.parametrize("status", list(MoveStatus))
def test_every_status_renders(status: MoveStatus) -> None:
    assert status_icon(status) and status_style(status) and status_label(status)
