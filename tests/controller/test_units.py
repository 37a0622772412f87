"""The plan status, the Automatic gate, node scope, the journal in the plan status and leader election,
with fakes instead of a cluster."""

import copy
from typing import Any

import pytest

from factories import make_node, make_state, make_vm
from vm_rebalance import service
from vm_rebalance.controller.leader import LeaderElector, Timing
from vm_rebalance.controller.metrics import Metrics
from vm_rebalance.controller.reconcile import scope
from vm_rebalance.controller.status import automatic_verdict, imbalance, plan_status
from vm_rebalance.errors import ClusterError
from vm_rebalance.kube.incluster import LeaseRecord
from vm_rebalance.service.incluster import PlanStatusJournal, plan_hash, prepare_resume


def state(*, cold: bool = False) -> Any:
    nodes = [make_node(f"worker-{i}", labels={"pool": "a" if i < 3 else "b"}) for i in (1, 2, 3)]
    vms = [make_vm(f"vm-{i}", node="worker-1", memory_gi=8) for i in range(5)]
    if cold:
        vms = [make_vm(f"db-{i}", node="worker-1", memory_gi=8, storage="rwo") for i in range(5)]
    return make_state(nodes, vms)


def test_plan_status_has_the_document_its_hash_the_tables_and_a_summary() -> None:
    view = service.plan(state(), service.PlanSpec(goal="memory"))
    fields = plan_status(view.plan, view.limits)
    assert fields["planHash"] == plan_hash(fields["plan"]) and fields["shortHash"] == fields["planHash"][:12]
    assert fields["plan"]["kind"] == "RebalancePlan" and len(fields["plan"]["moves"]) == fields["summary"]["moves"]
    assert fields["summary"]["live"] == fields["summary"]["moves"] > 0
    assert fields["summary"]["imbalanceBefore"] > fields["summary"]["imbalanceAfter"]
    moves = fields["tables"]["moves"].splitlines()
    assert moves[0].split()[:4] == ["#", "VM", "Namespace", "Current"] and set(moves[1]) <= {"-", " "}
    assert len(moves) == 2 + fields["summary"]["moves"]
    assert fields["tables"]["nodes"].splitlines()[0].startswith("Node")
    assert "Key improvement" in fields["tables"]["summary"]
    assert automatic_verdict(view.plan, 5) is None
    assert "exceed" in (automatic_verdict(view.plan, 1) or "")
    assert imbalance(view.plan, "before") == pytest.approx(fields["summary"]["imbalanceBefore"], abs=0.01)


def test_cold_moves_always_wait_at_automatic() -> None:
    view = service.plan(state(cold=True), service.PlanSpec(goal="memory"))
    assert view.plan.moves and all(m.method.value == "cold" for m in view.plan.moves)
    verdict = automatic_verdict(view.plan, 100)
    assert verdict is not None and "cold move(s)" in verdict


def test_node_scope_plans_only_the_selected_nodes() -> None:
    scoped = scope(state(), {"pool": "a"})
    assert [n.name for n in scoped.nodes] == ["worker-1", "worker-2"]
    view = service.plan(scoped, service.PlanSpec(goal="memory"))
    assert view.plan.moves and {m.target for m in view.plan.moves} == {"worker-2"}
    assert scope(state(), {}) is not None and len(scope(state(), {}).nodes) == 3


class FakeCluster:
    """The few InCluster calls the journal store and the elector make, with resourceVersion checks."""

    def __init__(self) -> None:
        self.plans: dict[str, dict[str, Any]] = {
            "p": {"metadata": {"name": "p"}, "status": {"execution": {"holder": "me"}}}
        }
        self.lease: LeaseRecord | None = None
        self.rv = 0
        self.fail = False

    # plan status
    def get_plan(self, name: str) -> dict[str, Any]:
        return copy.deepcopy(self.plans[name])

    def fenced_plan_status(self, name: str, holder: str, values: dict[str, Any]) -> None:
        status = self.plans[name]["status"]
        if status.get("execution", {}).get("holder") != holder:
            raise ClusterError("the test failed", status=422)
        status.update(copy.deepcopy(values))

    # lease
    def _check(self) -> None:
        if self.fail:
            raise ClusterError("unreachable", status=503)

    def get_lease(self, namespace: str, name: str) -> LeaseRecord | None:
        self._check()
        return self.lease

    def create_lease(self, namespace: str, name: str, holder: str, duration_seconds: int) -> LeaseRecord:
        self._check()
        if self.lease is not None:
            raise ClusterError("exists", status=409)
        return self._write(holder, duration_seconds)

    def write_lease(
        self, namespace: str, name: str, current: LeaseRecord, *, holder: str, duration_seconds: int, acquired: bool
    ) -> LeaseRecord:
        self._check()
        assert self.lease is not None
        if current.resource_version != self.lease.resource_version:
            raise ClusterError("conflict", status=409)
        return self._write(holder, duration_seconds)

    def _write(self, holder: str, duration: int) -> LeaseRecord:
        self.rv += 1
        self.lease = LeaseRecord(
            holder=holder,
            duration_seconds=duration,
            renew_time=None,
            acquire_time=None,
            transitions=0,
            resource_version=str(self.rv),
        )
        return self.lease


def test_the_journal_lives_in_the_plan_status_and_is_fenced() -> None:
    cluster = FakeCluster()
    store = PlanStatusJournal(cluster, "p", "me")  # type: ignore[arg-type]
    assert store.load("p") is None and store.plan_ids() == []
    store.save("p", {"moves": [{"id": 1, "status": "succeeded"}]})
    assert store.load("p") == {"moves": [{"id": 1, "status": "succeeded"}]} and store.plan_ids() == ["p"]
    store.archive("p")
    assert store.load("p") is None
    cluster.plans["p"]["status"]["execution"]["holder"] = "the-new-leader"
    with pytest.raises(ClusterError):
        store.save("p", {"moves": []})  # a replica that lost the execution cannot overwrite it


def test_resume_keeps_done_moves_and_revalidates_the_rest() -> None:
    s = state()
    plan = service.plan(s, service.PlanSpec(goal="memory")).plan
    first = plan.moves[0]
    journal = {"moves": [{"id": first.id, "status": "succeeded"}]}
    prep = prepare_resume(s, plan, journal)
    assert prep.done == 1 and not prep.changed
    assert [m.id for m in prep.plan.moves] == [m.id for m in plan.moves]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def elector(cluster: FakeCluster, name: str, clock: Clock, events: list[str]) -> LeaderElector:
    return LeaderElector(
        cluster,  # type: ignore[arg-type]
        namespace="ns",
        name="lease",
        identity=name,
        timing=Timing(lease_duration=15, renew_deadline=10, retry_period=2),
        started=lambda: events.append(f"{name} started"),
        lost=lambda: events.append(f"{name} lost"),
        clock=clock,
    )


def test_only_one_candidate_leads_and_a_silent_leader_is_replaced_after_the_lease_duration() -> None:
    cluster, clock, events = FakeCluster(), Clock(), []
    a, b = elector(cluster, "a", clock, events), elector(cluster, "b", clock, events)
    assert a.try_acquire_or_renew() is True
    assert b.try_acquire_or_renew() is False  # a holds it
    for t in range(1, 15):  # a stops renewing at 0; b watches the same record for 14 s
        clock.now = float(t)
        assert b.try_acquire_or_renew() is False
    clock.now = 15.5
    assert b.try_acquire_or_renew() is True
    assert cluster.lease is not None and cluster.lease.holder == "b"
    assert a.try_acquire_or_renew() is False  # a, back, sees b's fresh claim
    with pytest.raises(ValueError):
        Timing(lease_duration=5, renew_deadline=10, retry_period=2)


def test_a_renewing_leader_keeps_the_lease() -> None:
    cluster, clock, events = FakeCluster(), Clock(), []
    a, b = elector(cluster, "a", clock, events), elector(cluster, "b", clock, events)
    for t in range(0, 60, 2):
        clock.now = float(t)
        assert a.try_acquire_or_renew() is True
        assert b.try_acquire_or_renew() is False
    cluster.fail = True
    assert a.try_acquire_or_renew() is False  # cannot renew: the loop stops leading after the renew deadline


def test_metrics_exposition_names() -> None:
    m = Metrics()
    m.count_moves([{"method": "live", "status": "succeeded"}, {"method": "cold", "status": "not attempted"}])
    m.observe_phases(["Proposed", "Proposed", "Succeeded"])
    text = m.exposition().decode()
    assert 'vm_rebalance_moves_total{method="live",result="succeeded"} 1.0' in text
    assert 'vm_rebalance_moves_total{method="cold",result="not_attempted"} 1.0' in text
    assert 'vm_rebalance_plans{phase="Proposed"} 2.0' in text
