"""Drain makes room: when a VM leaving the drained node fits nowhere, other VMs move first.

Sizes are in units of 1 CPU + 4 GiB (requests) on 8-unit nodes, so every cluster here is
effectively one-dimensional and its arithmetic can be checked by hand.
"""

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from factories import make_node, make_state, make_vm
from planner.helpers import violations
from vm_rebalance.model import DO_NOT_MOVE_ANNOTATION, ClusterState, Goal, GoalType, Placement, Plan
from vm_rebalance.model.cluster import LabelSelector, PodAffinityTerm
from vm_rebalance.planner import PlanRequest, propose_plan
from vm_rebalance.planner.edits import PlanEditError, skip_move
from vm_rebalance.planner.search import NO_ROOM

PINNED = {DO_NOT_MOVE_ANNOTATION: "true"}
RECENT = 60.0
"""Seconds since the last migration: inside the default one-hour cooldown."""


def _node(name: str, *, unschedulable: bool = False):
    return make_node(name, cpu=8, memory_gi=32, unschedulable=unschedulable)


def _vm(name: str, node: str, units: int, **kwargs: object):
    cooldown = kwargs.pop("recent", False)
    vm = make_vm(
        name, node=node, vcpus=units, memory_gi=4 * units, request_cpu=units, request_memory_gi=4 * units, **kwargs
    )
    return replace(vm, last_migration_seconds_ago=RECENT) if cooldown else vm


def _drain(state: ClusterState, node: str = "worker-0", **kwargs: object) -> Plan:
    return propose_plan(state, PlanRequest(goal=Goal(type=GoalType.DRAIN, node=node), **kwargs))


def _wave(plan: Plan, vm: str) -> int:
    return next(m.wave for m in plan.moves if m.vm == vm)


def _one_helper_cluster(**helper: object) -> ClusterState:
    """worker-1 and worker-2 have 2 units free each; ``big`` (4 units, itself in cooldown) needs 4.
    Only ``small`` (2 units on worker-1) may move: to worker-2, which leaves room on worker-1."""
    nodes = [_node("worker-0", unschedulable=True), _node("worker-1"), _node("worker-2")]
    vms = [
        _vm("big", "worker-0", 4, recent=True),
        _vm("pinned-1", "worker-1", 4, annotations=PINNED),
        _vm("small", "worker-1", 2, **helper),
        _vm("pinned-2", "worker-2", 6, annotations=PINNED),
    ]
    return make_state(nodes, vms)


def test_one_helper_moves_first_to_make_room():
    state = _one_helper_cluster()
    plan = _drain(state)
    assert [(m.vm, m.source, m.target) for m in sorted(plan.moves, key=lambda m: m.wave)] == [
        ("small", "worker-1", "worker-2"),
        ("big", "worker-0", "worker-1"),
    ]
    assert _wave(plan, "small") < _wave(plan, "big")
    assert plan.stays == ()
    assert violations(state, plan) == []
    helper = next(m for m in plan.moves if m.vm == "small")
    assert "makes room on worker-1" in helper.reason
    assert _drain(state) == plan  # deterministic


def test_skipping_a_helper_is_refused_while_the_vm_it_made_room_for_still_moves():
    state = _one_helper_cluster()
    plan = _drain(state)
    helper = next(m for m in plan.moves if m.vm == "small")
    with pytest.raises(PlanEditError, match="no longer fits"):
        skip_move(state, plan, helper.id)


def test_two_helpers_when_one_is_not_enough():
    # worker-1 is full: its two movable 2-unit VMs must both leave (to worker-2 and worker-3,
    # whose own VMs are pinned) before big fits there.
    nodes = [_node("worker-0"), *(_node(f"worker-{i}") for i in (1, 2, 3))]
    vms = [
        _vm("big", "worker-0", 4),
        _vm("pinned-1", "worker-1", 4, annotations=PINNED),
        _vm("a", "worker-1", 2),
        _vm("b", "worker-1", 2),
        _vm("pinned-2", "worker-2", 6, annotations=PINNED),
        _vm("pinned-3", "worker-3", 6, annotations=PINNED),
    ]
    state = make_state(nodes, vms)
    plan = _drain(state)
    assert plan.stays == ()
    assert len(plan.moves) == 3
    helpers = {m.vm: m.target for m in plan.moves if m.source == "worker-1"}
    assert set(helpers) == {"a", "b"} and set(helpers.values()) == {"worker-2", "worker-3"}
    assert next(m.target for m in plan.moves if m.vm == "big") == "worker-1"
    assert max(_wave(plan, "a"), _wave(plan, "b")) < _wave(plan, "big")
    assert violations(state, plan) == []


def test_the_fewest_and_smallest_helpers_are_preferred():
    # big needs 4 units; worker-1, -2 and -4 have 2 free, worker-3 has 3. Room on worker-1 takes
    # its 3-unit VM, on worker-2 its 2-unit VM, on worker-4 its two 1-unit VMs: one move beats
    # two, and of the single moves the smaller VM wins (both end at the same balance).
    nodes = [_node(f"worker-{i}") for i in range(5)]
    vms = [
        _vm("big", "worker-0", 4),
        _vm("pinned-1", "worker-1", 3, annotations=PINNED),
        _vm("three", "worker-1", 3),
        _vm("pinned-2", "worker-2", 4, annotations=PINNED),
        _vm("two", "worker-2", 2),
        _vm("pinned-3", "worker-3", 5, annotations=PINNED),
        _vm("pinned-4", "worker-4", 4, annotations=PINNED),
        _vm("one-a", "worker-4", 1),
        _vm("one-b", "worker-4", 1),
    ]
    state = make_state(nodes, vms)
    plan = _drain(state)
    assert plan.stays == ()
    assert [(m.vm, m.target) for m in sorted(plan.moves, key=lambda m: m.wave)] == [
        ("two", "worker-3"),
        ("big", "worker-2"),
    ]
    assert violations(state, plan) == []


def test_helpers_respect_residents_anti_affinity():
    # worker-2's guard repels app=web: the helper must go to worker-3 instead, though worker-2
    # sorts first.
    term = PodAffinityTerm(label_selector=LabelSelector(match_labels={"app": "web"}))
    guard = Placement(pod_anti_affinity=(term,))
    nodes = [_node("worker-0"), _node("worker-1"), _node("worker-2"), _node("worker-3")]
    vms = [
        _vm("big", "worker-0", 4),
        _vm("pinned-1", "worker-1", 4, annotations=PINNED),
        _vm("small", "worker-1", 2, labels={"app": "web"}),
        _vm("guard", "worker-2", 6, annotations=PINNED, placement=guard),
        _vm("pinned-3", "worker-3", 6, annotations=PINNED),
    ]
    state = make_state(nodes, vms)
    plan = _drain(state)
    assert plan.stays == ()
    assert next(m.target for m in plan.moves if m.vm == "small") == "worker-3"
    assert violations(state, plan) == []


@pytest.mark.parametrize(
    "helper, request_kwargs, expected",
    [
        pytest.param({"recent": True}, {}, "none of its VMs may move", id="helper-in-cooldown"),
        pytest.param({"annotations": PINNED}, {}, "none of its VMs may move", id="helper-do-not-move"),
        pytest.param({"storage": "rwo"}, {"live_only": True}, "none of its VMs may move", id="helper-not-live"),
        pytest.param({}, {"max_migrations": 1}, "max-migrations reached: it would need 1 other move", id="budget"),
    ],
)
def test_when_no_room_can_be_made_the_stay_says_why(helper, request_kwargs, expected):
    state = _one_helper_cluster(**helper)
    plan = _drain(state, **request_kwargs)
    assert plan.moves == ()
    (stay,) = plan.stays
    assert stay.vm == "big"
    assert expected in stay.reason
    if "max_migrations" not in request_kwargs:
        assert stay.reason.startswith(NO_ROOM)
        assert "worker-1 lacks 2000m CPU and 8.0Gi memory" in stay.reason


def test_not_enough_room_in_the_whole_cluster_is_said_plainly():
    nodes = [_node("worker-0"), _node("worker-1"), _node("worker-2")]
    vms = [
        _vm("big", "worker-0", 4),
        _vm("small", "worker-1", 2),
        _vm("rest-1", "worker-1", 5),
        _vm("rest-2", "worker-2", 7),
    ]
    plan = _drain(make_state(nodes, vms))
    assert plan.moves == ()
    (stay,) = plan.stays
    assert stay.reason == (
        f"{NO_ROOM}: the 2 node(s) it may run on have 2000m CPU / 8.0Gi free in total, it needs 4000m CPU / 16.0Gi"
    )


def test_when_not_everything_fits_more_vms_leave():
    # 6 units free elsewhere (3 + 3); on the node 4 + 1 + 1 + 1 + 1: largest first would place
    # the 4-unit VM and one or two small ones, smallest first places the four small ones.
    nodes = [_node("worker-0"), _node("worker-1"), _node("worker-2")]
    vms = [_vm("big", "worker-0", 4), *(_vm(f"s{k}", "worker-0", 1) for k in range(4))]
    vms += [_vm("rest-1", "worker-1", 5), _vm("rest-2", "worker-2", 5)]
    state = make_state(nodes, vms)
    plan = _drain(state)
    assert {m.vm for m in plan.moves} == {f"s{k}" for k in range(4)}
    assert [s.vm for s in plan.stays] == ["big"]
    assert violations(state, plan) == []


# ------------------------------------------------------------------ property

UNIT_NODE = 8


@st.composite
def roomy_clusters(draw):
    """A drained node plus 3-6 full-ish nodes whose total free room exceeds the drained VMs' by
    two units, every VM 1 or 2 units (small next to 8-unit nodes), and every other node running
    at least one movable 1-unit VM.

    Why drain must place everything here (by induction over the drained VMs): let F be the free
    units on the other nodes and D the units still to drain; F >= D + 2 holds at the start and
    every placement lowers both by the VM's size. A 1-unit VM fits directly (F >= 3). A 2-unit VM
    that fits nowhere means every node has at most 1 unit free, so at least F >= 4 nodes have
    exactly 1: one helper — a movable 1-unit VM of such a node (each has one: only make-room
    targets lose VMs, and they end full) — moves to another, and the VM takes its place.
    """
    n_others = draw(st.integers(3, 6))
    frees = [draw(st.sampled_from([1, 1, 1, 1, 0, 2])) for _ in range(n_others)]
    if sum(frees) < 3:
        frees[-1] += 3 - sum(frees)
    nodes = [_node("worker-0", unschedulable=draw(st.booleans()))]
    vms = []
    for j, free in enumerate(frees, start=1):
        name = f"worker-{j}"
        nodes.append(_node(name))
        vms.append(_vm(f"w{j}-helper", name, 1))
        left = UNIT_NODE - free - 1
        k = 0
        while left > 0:
            units = 2 if left >= 2 and draw(st.booleans()) else 1
            flag = draw(st.sampled_from(["plain", "pinned", "recent", "rwo"]))
            kwargs: dict[str, object] = {
                "pinned": {"annotations": PINNED},
                "recent": {"recent": True},
                "rwo": {"storage": "rwo"},
            }.get(flag, {})
            vms.append(_vm(f"w{j}-{k}", name, units, **kwargs))
            left -= units
            k += 1
    budget = min(sum(frees) - 2, UNIT_NODE)
    k = 0
    while budget > 0:
        units = draw(st.sampled_from([2, 2, 1])) if budget >= 2 else 1
        vms.append(_vm(f"d{k}", "worker-0", units, recent=draw(st.booleans())))
        budget -= units
        k += 1
    if draw(st.booleans()):
        vms.append(_vm("d-pinned", "worker-0", 1, annotations=PINNED))
    return make_state(nodes, vms)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(roomy_clusters(), st.booleans())
def test_drain_leaves_nothing_movable_behind_when_room_can_be_made(state, live_only):
    plan = _drain(state, live_only=live_only)
    assert violations(state, plan, live_only=live_only) == []
    moved = {m.vm for m in plan.moves}
    for vm in state.vms_on("worker-0"):
        if vm.do_not_move:
            assert any(s.vm == vm.name and DO_NOT_MOVE_ANNOTATION in s.reason for s in plan.stays)
        else:
            assert vm.name in moved, (vm.name, [s.reason for s in plan.stays])
    for m in plan.moves:
        if m.source != "worker-0":  # a helper: an ordinary move
            vm = state.vm(m.namespace, m.vm)
            assert vm is not None and not vm.do_not_move and vm.last_migration_seconds_ago is None
            assert m.target != "worker-0"
            if live_only:
                assert vm.storage_kind.value != "rwo"
