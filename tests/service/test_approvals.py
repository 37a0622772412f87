"""PlanStore: ids and hashes of canonical documents, bounded memory, and every refusal of `approved`."""

import pytest

from vm_rebalance.errors import ConfigError
from vm_rebalance.service.approvals import PlanKind, PlanStore, document_hash


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def doc(n: int = 1) -> dict:
    return {"kind": "RebalancePlan", "moves": [{"id": i, "vm": f"vm-{i}"} for i in range(n)]}


def test_hash_is_sha256_of_canonical_json_and_ignores_key_order():
    a = {"b": 1, "a": [1, 2]}
    b = {"a": [1, 2], "b": 1}
    assert document_hash(a) == document_hash(b)
    assert len(document_hash(a)) == 64
    assert document_hash(doc(1)) != document_hash(doc(2))


def test_the_same_content_proposed_again_is_a_new_proposal_with_the_same_hash():
    store = PlanStore()
    first = store.add(PlanKind.REBALANCE, doc())
    store.mark_executed(first.plan_id)
    again = store.add(PlanKind.REBALANCE, doc())
    assert again.plan_id != first.plan_id and again.plan_hash == first.plan_hash
    assert store.approved(again.plan_id, again.plan_hash, PlanKind.REBALANCE) is again
    with pytest.raises(ConfigError, match="already executed"):
        store.approved(first.plan_id, first.plan_hash, PlanKind.REBALANCE)


def test_a_replaced_plan_stays_refused_when_its_content_is_proposed_again():
    """modify_plan replaced X; planning the same request again must not bring X back to life."""
    store = PlanStore()
    x = store.add(PlanKind.REBALANCE, doc(2))
    y = store.add(PlanKind.REBALANCE, doc(1))
    store.mark_replaced(x.plan_id, y.plan_id)
    z = store.add(PlanKind.REBALANCE, doc(2))
    assert z.plan_id not in (x.plan_id, y.plan_id) and z.plan_hash == x.plan_hash
    with pytest.raises(ConfigError, match="was modified"):
        store.approved(x.plan_id, x.plan_hash, PlanKind.REBALANCE)
    assert store.approved(z.plan_id, z.plan_hash, PlanKind.REBALANCE) is z


def test_ids_are_never_issued_twice_not_even_after_eviction(monkeypatch: pytest.MonkeyPatch):
    store = PlanStore(capacity=2)
    tokens = iter(["aaaaaaaaaaaa", "bbbbbbbbbbbb", "cccccccccccc", "aaaaaaaaaaaa", "dddddddddddd"])
    monkeypatch.setattr("vm_rebalance.service.approvals.secrets.token_hex", lambda n: next(tokens))
    ids = [store.add(PlanKind.REBALANCE, doc(1)).plan_id for _ in range(4)]
    assert ids == ["aaaaaaaaaaaa", "bbbbbbbbbbbb", "cccccccccccc", "dddddddddddd"]
    with pytest.raises(ConfigError, match="unknown plan id"):
        store.get("aaaaaaaaaaaa")


def test_store_keeps_only_the_newest_plans():
    store = PlanStore(capacity=3)
    entries = [store.add(PlanKind.REBALANCE, doc(n)) for n in range(1, 6)]
    assert len(store) == 3
    with pytest.raises(ConfigError, match="unknown plan id"):
        store.get(entries[0].plan_id)
    assert store.get(entries[-1].plan_id) is entries[-1]


@pytest.mark.parametrize(
    ("prepare", "given_hash", "match"),
    [
        pytest.param(lambda s, e: None, None, "no plan_hash given", id="missing-hash"),
        pytest.param(lambda s, e: None, "", "no plan_hash given", id="empty-hash"),
        pytest.param(lambda s, e: None, "0" * 64, "does not match", id="wrong-hash"),
        pytest.param(lambda s, e: s.mark_executed(e.plan_id), "ok", "already executed", id="executed"),
        pytest.param(lambda s, e: s.mark_replaced(e.plan_id, "feedbeef0000"), "ok", "was modified", id="modified"),
        pytest.param(lambda s, e: setattr(s.clock, "now", s.clock.now + 7200), "ok", "is stale", id="stale"),
    ],
)
def test_approved_refuses(prepare, given_hash, match):
    store = PlanStore(clock=FakeClock())
    entry = store.add(PlanKind.REBALANCE, doc())
    prepare(store, entry)
    with pytest.raises(ConfigError, match=match):
        store.approved(entry.plan_id, entry.plan_hash if given_hash == "ok" else given_hash, PlanKind.REBALANCE)


def test_approved_refuses_a_plan_of_another_kind_and_accepts_the_right_hash():
    store = PlanStore()
    entry = store.add(PlanKind.LIFECYCLE, {"kind": "LifecyclePlan"})
    with pytest.raises(ConfigError, match="lifecycle plan") as err:
        store.approved(entry.plan_id, entry.plan_hash, PlanKind.REBALANCE)
    assert "vm_lifecycle" in (err.value.hint or "")
    assert store.approved(entry.plan_id, f"  sha256:{entry.plan_hash.upper()} ", PlanKind.LIFECYCLE) is entry


@pytest.mark.parametrize("confirm", ["yes", "true", "1", "on", 1, None, False, {"value": True}])
def test_only_the_boolean_true_confirms(confirm: object) -> None:
    store = PlanStore()
    entry = store.add(PlanKind.REBALANCE, {"moves": [1]})
    with pytest.raises(ConfigError, match="needs confirm: true"):
        store.authorize(entry.plan_id, entry.plan_hash, PlanKind.REBALANCE, confirm)
    assert store.authorize(entry.plan_id, entry.plan_hash, PlanKind.REBALANCE, True) is entry


def test_authorize_checks_the_hash_before_the_confirmation() -> None:
    store = PlanStore()
    entry = store.add(PlanKind.LIFECYCLE, {"vms": ["a"]})
    with pytest.raises(ConfigError, match="does not match"):
        store.authorize(entry.plan_id, "0" * 64, PlanKind.LIFECYCLE, True)
    with pytest.raises(ConfigError, match="is a lifecycle plan") as info:
        store.authorize(entry.plan_id, entry.plan_hash, PlanKind.REBALANCE, True)
    assert info.value.hint == "carry it out with vm_lifecycle"
