"""Property tests over random clusters: safety in every wave, drain completeness, no worsening, determinism."""

import json

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from factories import make_node, make_state, make_vm
from planner.helpers import violations
from vm_rebalance.model import (
    DO_NOT_MOVE_ANNOTATION,
    Basis,
    Goal,
    GoalType,
    Placement,
    Resources,
    Taint,
    Toleration,
    plan_from_document,
    plan_to_document,
)
from vm_rebalance.model.cluster import LabelSelector, PodAffinityTerm
from vm_rebalance.planner import STRATEGIES, PlanRequest, propose_plan
from vm_rebalance.planner.eligibility import fit_reasons
from vm_rebalance.planner.problem import Problem
from vm_rebalance.planner.search import NO_ROOM

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ANTI = Placement(pod_anti_affinity=(PodAffinityTerm(label_selector=LabelSelector(match_labels={"app": "db"})),))
SSD = Placement(node_selector={"disk": "ssd"})
TOLERANT = Placement(tolerations=(Toleration(key="gpu", operator="Exists"),))
# One-directional: the guards repel app=web VMs that declare nothing themselves (Kubernetes
# enforces an existing VM's required anti-affinity against incoming VMs too).
GUARD = Placement(pod_anti_affinity=(PodAffinityTerm(label_selector=LabelSelector(match_labels={"app": "web"})),))


@st.composite
def clusters(draw):
    n_nodes = draw(st.integers(2, 6))
    nodes = []
    for i in range(n_nodes):
        nodes.append(
            make_node(
                f"worker-{i}",
                cpu=draw(st.sampled_from([8, 16, 32])),
                memory_gi=draw(st.sampled_from([16, 32, 64])),
                unschedulable=draw(st.booleans()) and i > 1,
                labels={"disk": "ssd"} if draw(st.booleans()) else {},
                taints=[Taint("gpu", "NoSchedule", "true")] if i > 0 and draw(st.integers(0, 5)) == 0 else [],
            )
        )
    vms = []
    for k in range(draw(st.integers(0, 16))):
        kind = draw(st.integers(0, 11))
        vms.append(
            make_vm(
                f"vm-{k}",
                namespace=draw(st.sampled_from(["a", "b"])),
                node=f"worker-{draw(st.integers(0, n_nodes - 1))}",
                memory_gi=draw(st.sampled_from([1, 2, 4, 8])),
                request_cpu=draw(st.sampled_from([0.25, 0.5, 1, 2, 4])),
                storage=draw(st.sampled_from(["rwx", "rwx", "rwo", "containerdisk"])),
                labels={1: {"app": "db"}, 5: {"app": "web"}, 6: {"app": "web"}}.get(kind, {}),
                placement={1: ANTI, 2: SSD, 3: TOLERANT, 7: GUARD}.get(kind),
                annotations={DO_NOT_MOVE_ANNOTATION: "true"} if kind == 4 else {},
            )
        )
    return make_state(nodes, vms)


GOALS = [GoalType.CPU, GoalType.MEMORY, GoalType.BALANCED, GoalType.COUNT, GoalType.PERFORMANCE]


@SETTINGS
@given(
    clusters(),
    st.sampled_from(GOALS),
    st.booleans(),
    st.none() | st.integers(0, 4),
    st.sampled_from(sorted(STRATEGIES)),
)
def test_no_constraint_broken_and_objective_never_worse(state, goal, live_only, max_migrations, strategy):
    request = PlanRequest(goal=Goal(type=goal), live_only=live_only, max_migrations=max_migrations, strategy=strategy)
    plan = propose_plan(state, request)
    assert violations(state, plan, live_only=live_only) == []
    assert plan.metrics_after["objective"] <= plan.metrics_before["objective"] + 1e-9
    if max_migrations is not None:
        assert len(plan.moves) <= max_migrations
    for m in plan.moves:
        vm = state.vm(m.namespace, m.vm)
        assert vm is not None and not vm.do_not_move
    assert propose_plan(state, request) == plan
    doc = plan_to_document(plan)
    assert plan_to_document(plan_from_document(json.loads(json.dumps(doc)))) == doc


@SETTINGS
@given(clusters(), st.booleans())
def test_drain_leaves_nothing_movable_behind(state, live_only):
    node = state.nodes[0].name
    plan = propose_plan(state, PlanRequest(goal=Goal(type=GoalType.DRAIN, node=node), live_only=live_only))
    assert violations(state, plan, live_only=live_only) == []
    moved = {(m.namespace, m.vm) for m in plan.moves}
    stays = {(s.namespace, s.vm): s.reason for s in plan.stays}
    # Replay the final state: whatever stayed on the node really could not go anywhere.
    requested = {n.name: n.requested for n in state.nodes}
    where = {v.ref: v.node for v in state.vms if v.running and v.node}
    for m in plan.moves:
        vm = state.vm(m.namespace, m.vm)
        requested[m.target] = requested[m.target] + vm.requests
        requested[m.source] = requested[m.source] - vm.requests
        where[vm.ref] = m.target
    residents = [(str(n), v) for v in state.vms if (n := where.get(v.ref))]
    for vm in state.vms_on(node):
        key = (vm.namespace, vm.name)
        assert key in moved or key in stays, f"{key} silently dropped"
        if key in stays and ("no feasible target" in stays[key] or stays[key].startswith(NO_ROOM)):
            for other in state.nodes:
                if other.name == node:
                    continue
                extra = requested[other.name] - other.requested
                assert fit_reasons(
                    vm,
                    other,
                    state,
                    residents=residents,
                    extra_requested=Resources(extra.cpu_millicores, extra.memory_bytes),
                )


@settings(max_examples=15, deadline=None)
@given(st.integers(2, 6), st.integers(1, 4))
def test_a_balanced_cluster_gets_an_empty_plan(n_nodes, per_node):
    nodes = [make_node(f"worker-{i}") for i in range(n_nodes)]
    vms = [make_vm(f"vm-{i}-{k}", node=f"worker-{i}") for i in range(n_nodes) for k in range(per_node)]
    state = make_state(nodes, vms)
    for goal in GOALS:
        assert propose_plan(state, PlanRequest(goal=Goal(type=goal))).moves == ()


@SETTINGS
@given(clusters())
def test_fast_feasibility_matches_fit_reasons(state):
    """The cached class x node matrix plus the capacity check agree with eligibility.fit_reasons."""
    problem = Problem(state, goal=Goal(type=GoalType.BALANCED), basis=Basis.REQUESTS)
    free = problem.free
    for i, vm in enumerate(problem.vms):
        for j, node in enumerate(problem.nodes):
            if node.name == vm.node:
                continue
            fast = bool(problem.class_feasible[problem.vm_class[i], j]) and bool((problem.vm_req[i] <= free[j]).all())
            if not problem.dynamic[i]:
                assert fast == (not fit_reasons(vm, node, state)), (vm.name, node.name)
            elif fast is False:
                assert fit_reasons(vm, node, state)
    assert np.all(problem.class_feasible[:, ~problem.eligible] == 0)
