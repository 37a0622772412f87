"""The plan file's optional keys (cluster identity, a move's pin change, the scheduler's choice) round-trip,
are absent when they say nothing (older readers see the same document), and are checked when present."""

import dataclasses

import pytest

from vm_rebalance.model import (
    AffinityChange,
    Basis,
    Goal,
    GoalType,
    MigrationMethod,
    Move,
    PinOwnerKind,
    Plan,
    PlanDocumentError,
    plan_from_document,
    plan_to_document,
)

MOVE = Move(id=1, vm="app", namespace="prod", source="w3", target="w6", method=MigrationMethod.COLD)


def test_the_optional_keys_round_trip() -> None:
    change = AffinityChange(owner=PinOwnerKind.USER, before=("w3", "w4"), after=("w6",))
    plan = Plan(
        goal=Goal(type=GoalType.MANUAL),
        basis=Basis.REQUESTS,
        moves=(
            dataclasses.replace(MOVE, affinity=change),
            dataclasses.replace(MOVE, id=2, vm="db", scheduler_chooses=True),
        ),
        cluster="5f0c-uid",
    )
    doc = plan_to_document(plan)
    assert doc["cluster"] == {"uid": "5f0c-uid"}
    assert doc["moves"][0]["affinity"] == {"owner": "user", "from": ["w3", "w4"], "to": ["w6"]}
    assert doc["moves"][1]["scheduler_chooses"] is True and "affinity" not in doc["moves"][1]
    assert plan_from_document(doc) == plan
    assert change.describe() == "your node affinity kubernetes.io/hostname In [w3, w4] → In [w6]"


def test_without_them_the_document_is_what_it_was() -> None:
    doc = plan_to_document(Plan(goal=Goal(type=GoalType.MANUAL), basis=Basis.REQUESTS, moves=(MOVE,)))
    assert "cluster" not in doc and not {"affinity", "scheduler_chooses"} & set(doc["moves"][0])
    assert plan_from_document(doc).cluster is None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"cluster": {"uid": ""}}, "cluster"),
        ({"cluster": "abc"}, "cluster"),
    ],
)
def test_a_malformed_identity_is_refused(change: dict, field: str) -> None:  # type: ignore[type-arg]
    doc = plan_to_document(Plan(goal=Goal(type=GoalType.MANUAL), basis=Basis.REQUESTS, moves=(MOVE,))) | change
    with pytest.raises(PlanDocumentError, match=field):
        plan_from_document(doc)


def test_a_malformed_pin_change_is_refused() -> None:
    doc = plan_to_document(Plan(goal=Goal(type=GoalType.MANUAL), basis=Basis.REQUESTS, moves=(MOVE,)))
    doc["moves"][0]["affinity"] = {"owner": "someone", "from": [], "to": ["w6"]}
    with pytest.raises(PlanDocumentError, match=r"moves\[0\]\.affinity"):
        plan_from_document(doc)
