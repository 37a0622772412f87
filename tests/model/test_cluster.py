"""The cluster model: quantities, taints, selectors, storage kinds, state lookups."""

import pytest

from factories import GI, make_node, make_state, make_vm
from vm_rebalance.model import (
    ClusterState,
    LabelSelector,
    MigrationLimits,
    Node,
    NodeSelectorTerm,
    Requirement,
    Resources,
    StorageKind,
    Taint,
    Toleration,
    VirtualMachine,
    Volume,
    vm_ref,
)


def test_resources_arithmetic_and_fit() -> None:
    a, b = Resources(1000, 2 * GI), Resources(500, GI)
    assert a + b == Resources(1500, 3 * GI)
    assert a - b == Resources(500, GI)
    assert b.fits_in(a)
    assert not a.fits_in(b)
    assert not Resources(1000, 3 * GI).fits_in(a)
    assert Resources(1000, 2 * GI).fits_in(a)


@pytest.mark.parametrize(
    ("taint", "text"),
    [
        pytest.param(Taint("gpu", "NoSchedule", "true"), "gpu=true:NoSchedule", id="with-value"),
        pytest.param(Taint("maint", "NoExecute"), "maint:NoExecute", id="no-value"),
    ],
)
def test_taint_str(taint: Taint, text: str) -> None:
    assert str(taint) == text


@pytest.mark.parametrize(
    ("toleration", "taint", "tolerated"),
    [
        pytest.param(
            Toleration("gpu", "Equal", "true", "NoSchedule"),
            Taint("gpu", "NoSchedule", "true"),
            True,
            id="equal-match",
        ),
        pytest.param(
            Toleration("gpu", "Equal", "false", "NoSchedule"),
            Taint("gpu", "NoSchedule", "true"),
            False,
            id="equal-value-mismatch",
        ),
        pytest.param(Toleration("gpu", "Equal", "", ""), Taint("gpu", "NoSchedule"), True, id="equal-empty-value"),
        pytest.param(Toleration("gpu", "Exists"), Taint("gpu", "NoSchedule", "anything"), True, id="exists"),
        pytest.param(Toleration("other", "Exists"), Taint("gpu", "NoSchedule"), False, id="exists-other-key"),
        pytest.param(Toleration("", "Exists"), Taint("gpu", "NoExecute", "x"), True, id="empty-key-exists-all"),
        pytest.param(Toleration("", "Equal", "x"), Taint("gpu", "NoExecute", "x"), False, id="empty-key-equal"),
        pytest.param(
            Toleration("gpu", "Exists", effect="NoExecute"),
            Taint("gpu", "NoSchedule"),
            False,
            id="effect-mismatch",
        ),
        pytest.param(Toleration("gpu", "Exists", effect=""), Taint("gpu", "NoExecute"), True, id="empty-effect-all"),
    ],
)
def test_toleration(toleration: Toleration, taint: Taint, tolerated: bool) -> None:
    assert toleration.tolerates(taint) is tolerated


LABELS = {"zone": "a", "gen": "5", "ssd": ""}


@pytest.mark.parametrize(
    ("req", "matches"),
    [
        pytest.param(Requirement("zone", "In", ("a", "b")), True, id="in"),
        pytest.param(Requirement("zone", "In", ("b",)), False, id="in-miss"),
        pytest.param(Requirement("missing", "In", ("a",)), False, id="in-absent"),
        pytest.param(Requirement("zone", "NotIn", ("b",)), True, id="notin"),
        pytest.param(Requirement("zone", "NotIn", ("a",)), False, id="notin-miss"),
        pytest.param(Requirement("missing", "NotIn", ("a",)), True, id="notin-absent"),
        pytest.param(Requirement("ssd", "Exists"), True, id="exists"),
        pytest.param(Requirement("missing", "Exists"), False, id="exists-absent"),
        pytest.param(Requirement("missing", "DoesNotExist"), True, id="doesnotexist"),
        pytest.param(Requirement("zone", "DoesNotExist"), False, id="doesnotexist-present"),
        pytest.param(Requirement("gen", "Gt", ("4",)), True, id="gt"),
        pytest.param(Requirement("gen", "Gt", ("5",)), False, id="gt-equal"),
        pytest.param(Requirement("gen", "Lt", ("6",)), True, id="lt"),
        pytest.param(Requirement("gen", "Lt", ("5",)), False, id="lt-equal"),
        pytest.param(Requirement("zone", "Gt", ("1",)), False, id="gt-not-int"),
        pytest.param(Requirement("missing", "Lt", ("1",)), False, id="lt-absent"),
        pytest.param(Requirement("gen", "Gt", ()), False, id="gt-no-value"),
        pytest.param(Requirement("zone", "Bogus", ("a",)), False, id="unknown-operator"),
    ],
)
def test_requirement(req: Requirement, matches: bool) -> None:
    assert req.matches(LABELS) is matches


@pytest.mark.parametrize(
    ("term", "matches"),
    [
        pytest.param(NodeSelectorTerm(), False, id="empty-term-matches-nothing"),
        pytest.param(NodeSelectorTerm(match_expressions=(Requirement("zone", "In", ("a",)),)), True, id="expr"),
        pytest.param(
            NodeSelectorTerm(match_fields=(Requirement("metadata.name", "In", ("n1",)),)),
            True,
            id="field-name",
        ),
        pytest.param(
            NodeSelectorTerm(match_fields=(Requirement("metadata.name", "NotIn", ("n1",)),)),
            False,
            id="field-name-notin",
        ),
        pytest.param(
            NodeSelectorTerm(
                match_expressions=(Requirement("zone", "In", ("a",)),),
                match_fields=(Requirement("metadata.name", "In", ("n2",)),),
            ),
            False,
            id="expr-and-field-anded",
        ),
    ],
)
def test_node_selector_term(term: NodeSelectorTerm, matches: bool) -> None:
    assert term.matches("n1", LABELS) is matches


def test_label_selector() -> None:
    sel = LabelSelector(match_labels={"app": "db"}, match_expressions=(Requirement("tier", "In", ("x",)),))
    assert sel.matches({"app": "db", "tier": "x"})
    assert not sel.matches({"app": "db"})
    assert not sel.matches({"app": "web", "tier": "x"})
    assert LabelSelector().matches({})
    assert hash(sel) == hash(
        LabelSelector(match_labels={"app": "db"}, match_expressions=(Requirement("tier", "In", ("x",)),))
    )


@pytest.mark.parametrize(
    ("volume", "kind"),
    [
        pytest.param(
            Volume(name="d", source="persistentVolumeClaim", claim_name="c", access_modes=("ReadWriteMany",)),
            StorageKind.RWX,
            id="rwx",
        ),
        pytest.param(
            Volume(name="d", source="persistentVolumeClaim", claim_name="c", access_modes=("ReadWriteOnce",)),
            StorageKind.RWO,
            id="rwo",
        ),
        pytest.param(
            Volume(name="d", source="dataVolume", claim_name="c", access_modes=("ReadWriteOnce", "ReadWriteMany")),
            StorageKind.RWX,
            id="dv-both-modes",
        ),
        pytest.param(
            Volume(name="d", source="persistentVolumeClaim", claim_name="c", claim_found=False),
            StorageKind.RWO,
            id="missing-claim-is-rwo",
        ),
        pytest.param(Volume(name="d", source="containerDisk"), StorageKind.CONTAINER_DISK, id="containerdisk"),
        pytest.param(Volume(name="d", source="cloudInitNoCloud"), StorageKind.NONE, id="config"),
    ],
)
def test_volume_storage_kind(volume: Volume, kind: StorageKind) -> None:
    assert volume.storage_kind is kind


RWX = Volume(name="a", source="persistentVolumeClaim", claim_name="a", access_modes=("ReadWriteMany",))
RWO = Volume(name="b", source="persistentVolumeClaim", claim_name="b", access_modes=("ReadWriteOnce",))
CD = Volume(name="c", source="containerDisk")
CFG = Volume(name="d", source="cloudInitNoCloud")


@pytest.mark.parametrize(
    ("volumes", "kind"),
    [
        pytest.param((), StorageKind.NONE, id="no-volumes"),
        pytest.param((CFG,), StorageKind.NONE, id="config-only"),
        pytest.param((CD, CFG), StorageKind.CONTAINER_DISK, id="containerdisk"),
        pytest.param((RWX, CD), StorageKind.RWX, id="rwx-beats-containerdisk"),
        pytest.param((RWX, RWO), StorageKind.RWO, id="mixed-rwo-wins"),
    ],
)
def test_vm_storage_kind_is_most_constraining(volumes: tuple[Volume, ...], kind: StorageKind) -> None:
    vm = VirtualMachine(namespace="ns", name="vm", volumes=volumes)
    assert vm.storage_kind is kind


@pytest.mark.parametrize(
    ("annotations", "pinned"),
    [
        pytest.param({}, False, id="none"),
        pytest.param({"vm-rebalance.io/do-not-move": "true"}, True, id="true"),
        pytest.param({"vm-rebalance.io/do-not-move": "True"}, True, id="case-insensitive"),
        pytest.param({"vm-rebalance.io/do-not-move": "false"}, False, id="false"),
    ],
)
def test_do_not_move(annotations: dict[str, str], pinned: bool) -> None:
    assert VirtualMachine(namespace="ns", name="vm", annotations=annotations).do_not_move is pinned


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"namespace": "", "name": "x"}, id="no-namespace"),
        pytest.param({"namespace": "ns", "name": ""}, id="no-name"),
        pytest.param({"namespace": "ns", "name": "x", "vcpus": -1}, id="negative-vcpus"),
        pytest.param({"namespace": "ns", "name": "x", "guest_memory_bytes": -1}, id="negative-memory"),
    ],
)
def test_vm_validation(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        VirtualMachine(**kwargs)


def test_node_needs_a_name_and_has_free_and_control_plane() -> None:
    with pytest.raises(ValueError):
        Node(name="")
    node = make_node("n", cpu=4, memory_gi=8, requested_cpu=1, requested_memory_gi=2)
    assert node.free == Resources(3000, 6 * GI)
    assert not node.is_control_plane
    assert make_node("cp", control_plane=True).is_control_plane
    assert make_node("m", labels={"node-role.kubernetes.io/master": ""}).is_control_plane


def test_migration_limits_validation() -> None:
    assert MigrationLimits().parallel_per_cluster == 5
    assert MigrationLimits().parallel_outbound_per_node == 2
    with pytest.raises(ValueError):
        MigrationLimits(parallel_per_cluster=0)
    with pytest.raises(ValueError):
        MigrationLimits(parallel_outbound_per_node=0)


def test_state_lookups() -> None:
    n1, n2 = make_node("n1"), make_node("n2")
    a = make_vm("a", node="n1")
    b = make_vm("b", node="n2", namespace="other")
    off = make_vm("off", running=False)
    state = make_state([n1, n2], [a, b, off])
    assert state.node("n1") is not None and state.node("n1").name == "n1"
    assert state.node("nope") is None
    assert state.vm("other", "b") == b
    assert state.vm("default", "b") is None
    assert state.vms_on("n1") == (a,)
    assert b.ref == vm_ref("other", "b") == "other/b"
    assert state.source == "cluster"


def test_state_rejects_duplicates() -> None:
    with pytest.raises(ValueError, match="duplicate node"):
        ClusterState(nodes=(make_node("n1"), make_node("n1")), vms=())
    with pytest.raises(ValueError, match="duplicate VM"):
        ClusterState(nodes=(), vms=(make_vm("a"), make_vm("a")))
