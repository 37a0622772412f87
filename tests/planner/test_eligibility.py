"""Eligibility: node flags, VM/node fit reasons and how a VM may move — every reason."""

import pytest

from factories import GI, make_node, make_state, make_vm
from vm_rebalance.model import (
    LabelSelector,
    MigrationMethod,
    Node,
    NodeSelectorTerm,
    Placement,
    PodAffinityTerm,
    Requirement,
    Resources,
    Taint,
    Toleration,
    TopologySpreadConstraint,
    VirtualMachine,
    Volume,
)
from vm_rebalance.planner.eligibility import (
    NODE_FLAG_EXPLANATIONS,
    NodeFlag,
    capacity_violation,
    fit_reasons,
    is_eligible_target,
    live_blocker,
    live_blocker_detail,
    move_method,
    node_flags,
    pod_affinity_violations,
    static_placement_violations,
)

# ------------------------------------------------------------------------------ node flags


@pytest.mark.parametrize(
    ("node", "flags"),
    [
        pytest.param(make_node("n"), (), id="eligible"),
        pytest.param(make_node("n", ready=False), (NodeFlag.NOT_READY,), id="not-ready"),
        pytest.param(make_node("n", unschedulable=True), (NodeFlag.CORDONED,), id="cordoned"),
        pytest.param(
            make_node("n", labels={"kubevirt.io/schedulable": "false"}),
            (NodeFlag.NOT_SCHEDULABLE,),
            id="schedulable-false",
        ),
        pytest.param(
            Node(name="n", labels={}, kvm_devices=1000),
            (NodeFlag.NOT_SCHEDULABLE,),
            id="schedulable-label-absent",
        ),
        pytest.param(make_node("n", kvm=0), (NodeFlag.NO_KVM,), id="no-kvm"),
        pytest.param(make_node("n", control_plane=True), (NodeFlag.CONTROL_PLANE,), id="control-plane"),
        pytest.param(
            make_node("n", labels={"node-role.kubernetes.io/master": ""}),
            (NodeFlag.CONTROL_PLANE,),
            id="master",
        ),
        pytest.param(
            make_node(
                "n",
                ready=False,
                unschedulable=True,
                kvm=0,
                control_plane=True,
                labels={"kubevirt.io/schedulable": "false"},
            ),
            (
                NodeFlag.NOT_READY,
                NodeFlag.CORDONED,
                NodeFlag.NOT_SCHEDULABLE,
                NodeFlag.NO_KVM,
                NodeFlag.CONTROL_PLANE,
            ),
            id="all-at-once-in-stable-order",
        ),
        pytest.param(make_node("n", unschedulable=True, kvm=0), (NodeFlag.CORDONED, NodeFlag.NO_KVM), id="two-at-once"),
    ],
)
def test_node_flags(node: Node, flags: tuple[NodeFlag, ...]) -> None:
    assert node_flags(node) == flags
    assert is_eligible_target(node) is (not flags)


def test_every_flag_is_explained_in_fit_reasons() -> None:
    node = make_node(
        "n",
        ready=False,
        unschedulable=True,
        kvm=0,
        control_plane=True,
        labels={"kubevirt.io/schedulable": "false"},
    )
    vm = make_vm("a", node="other")
    reasons = fit_reasons(vm, node, make_state([node, make_node("other")], [vm]))
    for flag in NodeFlag:
        assert NODE_FLAG_EXPLANATIONS[flag] in reasons


# ------------------------------------------------------------------------------ static placement


def _vm(**placement: object) -> VirtualMachine:
    return make_vm("a", node="src", placement=Placement(**placement))  # type: ignore[arg-type]


GPU = Taint("gpu", "NoSchedule", "true")


@pytest.mark.parametrize(
    ("vm", "node", "expected"),
    [
        pytest.param(
            _vm(),
            make_node("n", taints=[GPU]),
            ["taint gpu=true:NoSchedule not tolerated"],
            id="taint-not-tolerated",
        ),
        pytest.param(
            _vm(),
            make_node("n", taints=[Taint("maint", "NoExecute")]),
            ["taint maint:NoExecute not tolerated"],
            id="noexecute-not-tolerated",
        ),
        pytest.param(
            _vm(tolerations=(Toleration("gpu", "Equal", "true", "NoSchedule"),)),
            make_node("n", taints=[GPU]),
            [],
            id="equal-toleration",
        ),
        pytest.param(
            _vm(tolerations=(Toleration("gpu", "Equal", "false", "NoSchedule"),)),
            make_node("n", taints=[GPU]),
            ["taint gpu=true:NoSchedule not tolerated"],
            id="equal-wrong-value",
        ),
        pytest.param(
            _vm(tolerations=(Toleration("gpu", "Exists"),)),
            make_node("n", taints=[GPU]),
            [],
            id="exists-toleration",
        ),
        pytest.param(
            _vm(tolerations=(Toleration("", "Exists"),)),
            make_node("n", taints=[GPU, Taint("x", "NoExecute")]),
            [],
            id="empty-key-exists",
        ),
        pytest.param(
            _vm(tolerations=(Toleration("gpu", "Exists", effect="NoExecute"),)),
            make_node("n", taints=[GPU]),
            ["taint gpu=true:NoSchedule not tolerated"],
            id="effect-mismatch",
        ),
        pytest.param(
            _vm(),
            make_node("n", taints=[Taint("soft", "PreferNoSchedule")]),
            [],
            id="prefer-no-schedule-ignored",
        ),
        pytest.param(
            _vm(),
            make_node("n", taints=[Taint("node.kubernetes.io/unschedulable", "NoSchedule")]),
            [],
            id="cordon-taint-reported-as-cordon-not-taint",
        ),
        pytest.param(
            _vm(),
            make_node("n", taints=[GPU, Taint("b", "NoExecute")]),
            ["taint gpu=true:NoSchedule, b:NoExecute not tolerated"],
            id="several-taints-one-reason",
        ),
        pytest.param(
            _vm(node_selector={"disk": "ssd"}),
            make_node("n", labels={"disk": "ssd"}),
            [],
            id="node-selector-ok",
        ),
        pytest.param(
            _vm(node_selector={"disk": "ssd", "zone": "a"}),
            make_node("n", labels={"disk": "hdd"}),
            ["nodeSelector disk=ssd, zone=a not matched"],
            id="node-selector-miss",
        ),
        pytest.param(
            _vm(required_node_terms=(NodeSelectorTerm(match_expressions=(Requirement("zone", "In", ("a", "b")),)),)),
            make_node("n", labels={"zone": "a"}),
            [],
            id="affinity-in",
        ),
        pytest.param(
            _vm(required_node_terms=(NodeSelectorTerm(match_expressions=(Requirement("zone", "In", ("b",)),)),)),
            make_node("n", labels={"zone": "a"}),
            ["required node affinity not satisfied"],
            id="affinity-in-miss",
        ),
        pytest.param(
            _vm(required_node_terms=(NodeSelectorTerm(match_expressions=(Requirement("zone", "NotIn", ("a",)),)),)),
            make_node("n", labels={"zone": "a"}),
            ["required node affinity not satisfied"],
            id="affinity-notin",
        ),
        pytest.param(
            _vm(required_node_terms=(NodeSelectorTerm(match_expressions=(Requirement("gpu", "Exists"),)),)),
            make_node("n"),
            ["required node affinity not satisfied"],
            id="affinity-exists",
        ),
        pytest.param(
            _vm(required_node_terms=(NodeSelectorTerm(match_expressions=(Requirement("gpu", "DoesNotExist"),)),)),
            make_node("n"),
            [],
            id="affinity-doesnotexist",
        ),
        pytest.param(
            _vm(required_node_terms=(NodeSelectorTerm(match_expressions=(Requirement("cores", "Gt", ("32",)),)),)),
            make_node("n", labels={"cores": "64"}),
            [],
            id="affinity-gt",
        ),
        pytest.param(
            _vm(required_node_terms=(NodeSelectorTerm(match_expressions=(Requirement("cores", "Lt", ("32",)),)),)),
            make_node("n", labels={"cores": "64"}),
            ["required node affinity not satisfied"],
            id="affinity-lt",
        ),
        pytest.param(
            _vm(required_node_terms=(NodeSelectorTerm(match_fields=(Requirement("metadata.name", "In", ("n",)),)),)),
            make_node("n"),
            [],
            id="affinity-matchfields-name",
        ),
        pytest.param(
            _vm(
                required_node_terms=(NodeSelectorTerm(match_fields=(Requirement("metadata.name", "In", ("other",)),)),)
            ),
            make_node("n"),
            ["required node affinity not satisfied"],
            id="affinity-matchfields-other-name",
        ),
        pytest.param(
            _vm(
                required_node_terms=(
                    NodeSelectorTerm(match_expressions=(Requirement("zone", "In", ("b",)),)),
                    NodeSelectorTerm(match_expressions=(Requirement("zone", "In", ("a",)),)),
                )
            ),
            make_node("n", labels={"zone": "a"}),
            [],
            id="affinity-terms-ored",
        ),
        pytest.param(
            _vm(
                required_node_terms=(
                    NodeSelectorTerm(
                        match_expressions=(
                            Requirement("zone", "In", ("a",)),
                            Requirement("disk", "In", ("ssd",)),
                        )
                    ),
                )
            ),
            make_node("n", labels={"zone": "a"}),
            ["required node affinity not satisfied"],
            id="affinity-requirements-anded",
        ),
        pytest.param(
            _vm(required_node_terms=(NodeSelectorTerm(),)),
            make_node("n"),
            ["required node affinity not satisfied"],
            id="affinity-empty-term",
        ),
        pytest.param(
            _vm(node_selector={"disk": "ssd"}),
            make_node("n", taints=[GPU]),
            ["taint gpu=true:NoSchedule not tolerated", "nodeSelector disk=ssd not matched"],
            id="several-reasons",
        ),
    ],
)
def test_static_placement(vm: VirtualMachine, node: Node, expected: list[str]) -> None:
    assert static_placement_violations(vm, node) == expected


# ------------------------------------------------------------------------------ pod (anti-)affinity


def _labelled(name: str, node: str, *, namespace: str = "default", **labels: str) -> VirtualMachine:
    return make_vm(name, node=node, namespace=namespace, labels=labels)


def _term(topology: str = "kubernetes.io/hostname", namespaces: tuple[str, ...] = (), **labels: str) -> PodAffinityTerm:
    return PodAffinityTerm(
        label_selector=LabelSelector(match_labels=labels), topology_key=topology, namespaces=namespaces
    )


ZONED = {
    "n1": {"kubernetes.io/hostname": "n1", "zone": "a"},
    "n2": {"kubernetes.io/hostname": "n2", "zone": "a"},
    "n3": {"kubernetes.io/hostname": "n3", "zone": "b"},
}


def _node(name: str) -> Node:
    return make_node(name, labels=ZONED[name])


@pytest.mark.parametrize(
    ("vm", "target", "residents", "expected"),
    [
        pytest.param(
            make_vm("a", node="n3", placement=Placement(pod_anti_affinity=(_term(app="db"),))),
            "n1",
            [("n1", _labelled("b", "n1", app="db"))],
            ["anti-affinity with b on kubernetes.io/hostname=n1"],
            id="anti-affinity-same-host",
        ),
        pytest.param(
            make_vm("a", node="n3", placement=Placement(pod_anti_affinity=(_term(app="db"),))),
            "n2",
            [("n1", _labelled("b", "n1", app="db"))],
            [],
            id="anti-affinity-other-host",
        ),
        pytest.param(
            make_vm("a", node="n3", placement=Placement(pod_anti_affinity=(_term(app="db"),))),
            "n1",
            [("n1", _labelled("b", "n1", app="web"))],
            [],
            id="anti-affinity-selector-miss",
        ),
        pytest.param(
            make_vm("a", node="n3", placement=Placement(pod_anti_affinity=(_term(app="db"),))),
            "n1",
            [("n1", _labelled("b", "n1", namespace="other", app="db"))],
            [],
            id="anti-affinity-same-namespace-only-by-default",
        ),
        pytest.param(
            make_vm(
                "a",
                node="n3",
                placement=Placement(pod_anti_affinity=(_term(namespaces=("other",), app="db"),)),
            ),
            "n1",
            [("n1", _labelled("b", "n1", namespace="other", app="db"))],
            ["anti-affinity with b on kubernetes.io/hostname=n1"],
            id="anti-affinity-namespaces-list",
        ),
        pytest.param(
            make_vm("a", node="n3", placement=Placement(pod_anti_affinity=(_term("zone", app="db"),))),
            "n2",
            [("n1", _labelled("b", "n1", app="db"))],
            ["anti-affinity with b on zone=a"],
            id="anti-affinity-zone",
        ),
        pytest.param(
            make_vm(
                "a",
                node="n1",
                labels={"app": "db"},
                placement=Placement(pod_anti_affinity=(_term(app="db"),)),
            ),
            "n1",
            [("n1", make_vm("a", node="n1", labels={"app": "db"}))],
            [],
            id="anti-affinity-ignores-itself",
        ),
        pytest.param(
            make_vm("a", node="n3", placement=Placement(pod_affinity=(_term(app="db"),))),
            "n1",
            [("n1", _labelled("b", "n1", app="db"))],
            [],
            id="pod-affinity-ok",
        ),
        pytest.param(
            make_vm("a", node="n3", placement=Placement(pod_affinity=(_term(app="db"),))),
            "n2",
            [("n1", _labelled("b", "n1", app="db"))],
            ["required pod affinity (kubernetes.io/hostname) not satisfied"],
            id="pod-affinity-miss",
        ),
        pytest.param(
            make_vm("a", node="n3", placement=Placement(pod_affinity=(_term("zone", app="db"),))),
            "n2",
            [("n1", _labelled("b", "n1", app="db"))],
            [],
            id="pod-affinity-zone",
        ),
    ],
)
def test_pod_affinity(vm: VirtualMachine, target: str, residents: list, expected: list[str]) -> None:
    assert pod_affinity_violations(vm, _node(target), node_labels=ZONED, residents=residents) == expected


def _spread(when: str, skew: int = 1) -> Placement:
    return Placement(
        topology_spread=(
            TopologySpreadConstraint(
                max_skew=skew,
                topology_key="zone",
                when_unsatisfiable=when,
                label_selector=LabelSelector(match_labels={"app": "web"}),
            ),
        )
    )


@pytest.mark.parametrize(
    ("when", "skew", "target", "expected"),
    [
        pytest.param(
            "DoNotSchedule",
            1,
            "n1",
            ["topology spread on zone would exceed maxSkew 1"],
            id="do-not-schedule-violated",
        ),
        pytest.param("DoNotSchedule", 1, "n3", [], id="do-not-schedule-ok-in-empty-zone"),
        pytest.param("DoNotSchedule", 2, "n1", [], id="do-not-schedule-within-skew"),
        pytest.param("ScheduleAnyway", 1, "n1", [], id="schedule-anyway-ignored"),
    ],
)
def test_topology_spread(when: str, skew: int, target: str, expected: list[str]) -> None:
    vm = make_vm("new", node=None, running=False, labels={"app": "web"}, placement=_spread(when, skew))
    residents = [("n1", _labelled("w1", "n1", app="web"))]
    assert pod_affinity_violations(vm, _node(target), node_labels=ZONED, residents=residents) == expected


def test_topology_spread_node_without_topology_label() -> None:
    vm = make_vm("new", labels={"app": "web"}, placement=_spread("DoNotSchedule"))
    bare = make_node("bare")
    reasons = pod_affinity_violations(vm, bare, node_labels={**ZONED, "bare": dict(bare.labels)}, residents=[])
    assert reasons == ["node has no zone label (topology spread)"]


def test_fit_reasons_uses_state_residents_for_anti_affinity() -> None:
    n1, n2 = make_node("n1"), make_node("n2")
    other = make_vm("b", node="n1", labels={"app": "db"})
    vm = make_vm("a", node="n2", placement=Placement(pod_anti_affinity=(_term(app="db"),)))
    state = make_state([n1, n2], [vm, other])
    assert fit_reasons(vm, state.node("n1"), state) == ["anti-affinity with b on kubernetes.io/hostname=n1"]
    # Explicit residents replace the state's placement (e.g. during planning).
    assert fit_reasons(vm, state.node("n1"), state, residents=[]) == []


def _guard(name: str, node: str, term: PodAffinityTerm, **labels: str) -> VirtualMachine:
    """A resident that declares required anti-affinity (it repels the VMs its term selects)."""
    return make_vm(name, node=node, labels=labels, placement=Placement(pod_anti_affinity=(term,)))


@pytest.mark.parametrize(
    ("vm", "target", "residents", "expected"),
    [
        pytest.param(
            _labelled("a", "n3", app="web"),
            "n1",
            [("n1", _guard("b", "n1", _term(app="web")))],
            ["anti-affinity of b against it on kubernetes.io/hostname=n1"],
            id="resident-repels-incoming-same-host",
        ),
        pytest.param(
            _labelled("a", "n3", app="web"),
            "n2",
            [("n1", _guard("b", "n1", _term(app="web")))],
            [],
            id="resident-other-host",
        ),
        pytest.param(
            _labelled("a", "n3", app="web"),
            "n2",
            [("n1", _guard("b", "n1", _term("zone", app="web")))],
            ["anti-affinity of b against it on zone=a"],
            id="resident-repels-in-zone",
        ),
        pytest.param(
            _labelled("a", "n3", app="api"),
            "n1",
            [("n1", _guard("b", "n1", _term(app="web")))],
            [],
            id="resident-selector-miss",
        ),
        pytest.param(
            _labelled("a", "n3", namespace="other", app="web"),
            "n1",
            [("n1", _guard("b", "n1", _term(app="web")))],
            [],
            id="resident-term-own-namespace-only-by-default",
        ),
        pytest.param(
            _labelled("a", "n3", namespace="other", app="web"),
            "n1",
            [("n1", _guard("b", "n1", _term(namespaces=("other",), app="web")))],
            ["anti-affinity of b against it on kubernetes.io/hostname=n1"],
            id="resident-term-namespaces-list",
        ),
        pytest.param(
            _guard("a", "n3", _term(app="web"), app="web"),
            "n3",
            [("n3", _guard("a", "n3", _term(app="web"), app="web"))],
            [],
            id="resident-is-the-vm-itself",
        ),
        pytest.param(
            _guard("a", "n3", _term(app="db"), app="db"),
            "n1",
            [("n1", _guard("b", "n1", _term(app="db"), app="db"))],
            [
                "anti-affinity with b on kubernetes.io/hostname=n1",
                "anti-affinity of b against it on kubernetes.io/hostname=n1",
            ],
            id="both-directions",
        ),
    ],
)
def test_anti_affinity_is_symmetric(vm: VirtualMachine, target: str, residents: list, expected: list[str]) -> None:
    """An existing VM's required anti-affinity also keeps an incoming VM out (as kube-scheduler does)."""
    assert pod_affinity_violations(vm, _node(target), node_labels=ZONED, residents=residents) == expected


def test_symmetric_anti_affinity_uses_the_hostname_of_unlabelled_nodes() -> None:
    bare = make_node("bare")
    guard = _guard("b", "bare", _term(app="web"))
    labels = {"bare": {}}
    reasons = pod_affinity_violations(
        _labelled("a", "n3", app="web"), bare, node_labels=labels, residents=[("bare", guard)]
    )
    assert reasons == ["anti-affinity of b against it on kubernetes.io/hostname=bare"]


def test_hostname_topology_spread_counts_nodes_without_the_hostname_label() -> None:
    """Spread on kubernetes.io/hostname sees every node as its own domain, labelled or not (as anti-affinity does)."""
    placement = Placement(
        topology_spread=(
            TopologySpreadConstraint(
                max_skew=1,
                topology_key="kubernetes.io/hostname",
                when_unsatisfiable="DoNotSchedule",
                label_selector=LabelSelector(match_labels={"app": "web"}),
            ),
        )
    )
    vm = make_vm("new", node="n3", labels={"app": "web"}, placement=placement)
    unlabelled: dict[str, dict[str, str]] = {"n1": {}, "n2": {}, "n3": {}}
    residents = [("n1", _labelled("w1", "n1", app="web"))]
    crowded = pod_affinity_violations(vm, make_node("n1"), node_labels=unlabelled, residents=residents)
    assert crowded == ["topology spread on kubernetes.io/hostname would exceed maxSkew 1"]
    assert pod_affinity_violations(vm, make_node("n2"), node_labels=unlabelled, residents=residents) == []


def test_fit_reasons_sees_residents_anti_affinity() -> None:
    n1, n2 = make_node("n1"), make_node("n2")
    guard = _guard("b", "n1", _term(app="web"))
    vm = make_vm("a", node="n2", labels={"app": "web"})
    state = make_state([n1, n2], [vm, guard])
    assert fit_reasons(vm, state.node("n1"), state) == ["anti-affinity of b against it on kubernetes.io/hostname=n1"]
    # A stopped holder is no resident: nothing to enforce.
    stopped = make_state([n1, n2], [vm, make_vm("b", node=None, running=False, labels={}, placement=guard.placement)])
    assert fit_reasons(vm, stopped.node("n1"), stopped) == []


# ------------------------------------------------------------------------------ capacity


@pytest.mark.parametrize(
    ("vm", "node", "extra", "expected"),
    [
        pytest.param(
            make_vm("a", request_cpu=2, request_memory_gi=4),
            make_node("n", cpu=4, memory_gi=8),
            Resources(),
            None,
            id="fits",
        ),
        pytest.param(
            make_vm("a", request_cpu=2, request_memory_gi=4),
            make_node("n", cpu=4, memory_gi=8, requested_cpu=3),
            Resources(),
            "insufficient allocatable: CPU needs 2000m, 1000m free",
            id="cpu",
        ),
        pytest.param(
            make_vm("a", request_cpu=1, request_memory_gi=4),
            make_node("n", cpu=4, memory_gi=8, requested_memory_gi=6),
            Resources(),
            "insufficient allocatable: memory needs 4.0Gi, 2.0Gi free",
            id="memory",
        ),
        pytest.param(
            make_vm("a", request_cpu=5, request_memory_gi=9),
            make_node("n", cpu=4, memory_gi=8),
            Resources(),
            "insufficient allocatable: CPU needs 5000m, 4000m free; memory needs 9.0Gi, 8.0Gi free",
            id="both",
        ),
        pytest.param(
            make_vm("a", request_cpu=1, request_memory_gi=1),
            make_node("n", cpu=4, memory_gi=8),
            Resources(3500, 0),
            "insufficient allocatable: CPU needs 1000m, 500m free",
            id="extra-requested",
        ),
        pytest.param(
            make_vm("a", request_cpu=1, request_memory_gi=1),
            make_node("n", cpu=4, memory_gi=8),
            Resources(5000, 10 * GI),
            "insufficient allocatable: CPU needs 1000m, 0m free; memory needs 1.0Gi, 0.0Gi free",
            id="overcommitted-shows-zero-free",
        ),
        pytest.param(
            make_vm("a", request_cpu=4, request_memory_gi=8),
            make_node("n", cpu=4, memory_gi=8),
            Resources(),
            None,
            id="exactly-fits",
        ),
    ],
)
def test_capacity(vm: VirtualMachine, node: Node, extra: Resources, expected: str | None) -> None:
    assert capacity_violation(vm, node, extra_requested=extra) == expected


def test_fit_reasons_capacity_and_own_node() -> None:
    vm = make_vm("a", node="n1", request_cpu=3, request_memory_gi=1)
    state = make_state([make_node("n1", cpu=4), make_node("n2", cpu=4, requested_cpu=2)], [vm])
    # On its own node the VM's requests are already counted.
    assert fit_reasons(vm, state.node("n1"), state) == []
    assert fit_reasons(vm, state.node("n2"), state) == ["insufficient allocatable: CPU needs 3000m, 2000m free"]
    # What else is planned onto the node counts against it.
    assert fit_reasons(vm, state.node("n2"), state, extra_requested=Resources(-1000, 0)) == []
    small = make_vm("b", node="n2", request_cpu=1, request_memory_gi=1)
    assert fit_reasons(small, state.node("n1"), state) == []
    assert fit_reasons(small, state.node("n1"), state, extra_requested=Resources(500, 0)) == [
        "insufficient allocatable: CPU needs 1000m, 500m free"
    ]


def test_fit_reasons_everything_at_once() -> None:
    node = make_node("n", cpu=1, unschedulable=True, taints=[GPU])
    vm = make_vm("a", node="src", request_cpu=2, placement=Placement(node_selector={"disk": "ssd"}))
    reasons = fit_reasons(vm, node, make_state([node, make_node("src")], [vm]))
    assert reasons == [
        "node is cordoned (SchedulingDisabled)",
        "taint gpu=true:NoSchedule not tolerated",
        "nodeSelector disk=ssd not matched",
        "insufficient allocatable: CPU needs 2000m, 1000m free",
    ]


# ------------------------------------------------------------------------------ live or cold


def _claim(name: str, *modes: str, found: bool = True, source: str = "persistentVolumeClaim") -> Volume:
    return Volume(name=name, source=source, claim_name=name, access_modes=modes, claim_found=found)


def _running(volumes: tuple[Volume, ...], **kwargs: object) -> VirtualMachine:
    return VirtualMachine(namespace="ns", name="vm", running=True, node="n1", volumes=volumes, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("vm", "code", "message"),
    [
        pytest.param(_running((_claim("root", "ReadWriteMany"),), live_migratable=True), None, None, id="rwx-pvc"),
        pytest.param(
            _running((_claim("root", "ReadWriteOnce"),)),
            "RWO",
            "PVC root is not ReadWriteMany (RWO storage)",
            id="rwo-pvc",
        ),
        pytest.param(_running((_claim("dv", "ReadWriteMany", source="dataVolume"),)), None, None, id="rwx-datavolume"),
        pytest.param(
            _running((_claim("dv", "ReadWriteOnce", source="dataVolume"),)),
            "RWO",
            "PVC dv is not ReadWriteMany (RWO storage)",
            id="rwo-datavolume",
        ),
        pytest.param(
            _running((Volume(name="root", source="containerDisk"),), live_migratable=True),
            None,
            None,
            id="container-disk",
        ),
        pytest.param(_running(()), None, None, id="no-disks"),
        pytest.param(_running((Volume(name="ci", source="cloudInitNoCloud"),)), None, None, id="config-volumes-only"),
        pytest.param(
            _running((_claim("gone", found=False),)),
            "RWO",
            "PVC gone is not ReadWriteMany (RWO storage)",
            id="missing-claim-is-cold",
        ),
        pytest.param(
            _running((_claim("a", "ReadWriteMany"), _claim("b", "ReadWriteOnce"), _claim("c", "ReadWriteOnce"))),
            "RWO",
            "PVC b, c is not ReadWriteMany (RWO storage)",
            id="mixed-rwx-rwo-names-rwo-claims",
        ),
        pytest.param(
            _running(
                (_claim("root", "ReadWriteMany"),),
                live_migratable=False,
                live_migratable_reason="InterfaceNotLiveMigratable",
                live_migratable_message="cannot migrate VMI which uses bridge interface",
            ),
            "InterfaceNotLiveMigratable",
            "VMI is not LiveMigratable (InterfaceNotLiveMigratable: cannot migrate VMI which uses bridge interface)",
            id="not-live-migratable-with-rwx",
        ),
        pytest.param(
            _running((), live_migratable=False),
            "NotMigratable",
            "VMI is not LiveMigratable (NotMigratable)",
            id="not-live-migratable-without-reason",
        ),
        pytest.param(
            VirtualMachine(namespace="ns", name="vm", running=False, volumes=(_claim("r", "ReadWriteOnce"),)),
            "stopped",
            "VM is not running",
            id="stopped",
        ),
        pytest.param(
            _running((_claim("root", "ReadWriteMany"),), migrating=True),
            "migrating",
            "a migration of this VM is already in flight",
            id="migration-in-flight",
        ),
    ],
)
def test_live_or_cold(vm: VirtualMachine, code: str | None, message: str | None) -> None:
    detail = live_blocker_detail(vm)
    assert (detail.code if detail else None) == code
    assert live_blocker(vm) == message
    assert move_method(vm) is (MigrationMethod.LIVE if code is None else MigrationMethod.COLD)
