"""Pin and run-strategy edits of a VM object as JSON-patch operations."""

from executor.fakes import fake_vm
from vm_rebalance.kube.pins import (
    affinity_ops,
    annotation_ops,
    existing_node_pin,
    pin_ops,
    pinned_affinity,
    run_strategy_ops,
    unpin_ops,
    unpinned_affinity,
    vm_run_strategy,
)
from vm_rebalance.kube.views import PIN_ANNOTATION, TEMP_PIN_ANNOTATION, PinOwner, pins_of
from vm_rebalance.simulator.patching import json_patch

OTHER_TERM = {"key": "zone", "operator": "In", "values": ["a"]}


def test_pin_keeps_other_terms_and_replaces_previous_pin() -> None:
    vm = fake_vm(
        "a",
        affinity={
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                OTHER_TERM,
                                {"key": "kubernetes.io/hostname", "operator": "In", "values": ["w1"]},
                            ]
                        }
                    ]
                }
            },
            "podAntiAffinity": {"x": 1},
        },
    )
    assert existing_node_pin(vm) == ["w1"]
    kept = pinned_affinity(vm, "w2")  # the user's own pin stays unless its replacement was approved
    kept_exprs = kept["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0][
        "matchExpressions"
    ]
    assert {"key": "kubernetes.io/hostname", "operator": "In", "values": ["w1"]} in kept_exprs and len(kept_exprs) == 3
    aff = pinned_affinity(vm, "w2", replace_user=True)
    exprs = aff["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0][
        "matchExpressions"
    ]
    assert OTHER_TERM in exprs and {"key": "kubernetes.io/hostname", "operator": "In", "values": ["w2"]} in exprs
    assert len(exprs) == 2 and aff["podAntiAffinity"] == {"x": 1}
    vm["spec"]["template"]["spec"]["affinity"] = aff
    back = unpinned_affinity(vm)
    assert back is not None
    assert back["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"] == [
        {"matchExpressions": [OTHER_TERM]}
    ]
    assert existing_node_pin({"spec": {"template": {"spec": {"affinity": back}}}}) == []


def test_pin_and_unpin_without_previous_affinity_round_trips() -> None:
    vm = fake_vm("a")
    vm2 = json_patch(vm, affinity_ops(vm, pinned_affinity(vm, "w3")))
    assert existing_node_pin(vm2) == ["w3"]
    assert unpinned_affinity(vm2) is None
    vm3 = json_patch(vm2, affinity_ops(vm2, None))
    assert "affinity" not in vm3["spec"]["template"]["spec"]
    assert affinity_ops(vm3, None) == []


def test_annotation_and_run_strategy_ops() -> None:
    vm = fake_vm("a")
    vm["metadata"].pop("annotations")
    vm = json_patch(vm, annotation_ops(vm, PIN_ANNOTATION, "w2"))
    assert vm["metadata"]["annotations"][PIN_ANNOTATION] == "w2"
    assert annotation_ops(vm, PIN_ANNOTATION, "w2") == []
    vm = json_patch(vm, annotation_ops(vm, PIN_ANNOTATION, None))
    assert PIN_ANNOTATION not in vm["metadata"]["annotations"]
    old = {"spec": {"running": False}}
    assert vm_run_strategy(old) == "Halted"
    restored = json_patch(old, run_strategy_ops(old, "Always"))
    assert restored["spec"] == {"runStrategy": "Always"}


def test_pin_ops_mark_the_pin_as_ours_and_unpin_ops_remove_only_ours() -> None:
    vm = fake_vm(
        "a",
        affinity={
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [OTHER_TERM]}]
                }
            }
        },
    )
    pinned = json_patch(vm, pin_ops(vm, "w2"))
    pins = pins_of(pinned)
    assert pins.hostname_nodes == ("w2",) and pins.marked == "w2" and pins.owner is PinOwner.VM_REBALANCE
    assert pins.other_required_terms  # the zone term is the user's and stays
    back = json_patch(pinned, unpin_ops(pinned, "w2"))
    assert pins_of(back).owner is PinOwner.NONE and PIN_ANNOTATION not in back["metadata"]["annotations"]
    assert back["spec"]["template"]["spec"]["affinity"] == vm["spec"]["template"]["spec"]["affinity"]
    temp = json_patch(vm, pin_ops(vm, "w3", temporary=True))
    assert pins_of(temp).temporary == "w3" and temp["metadata"]["annotations"][TEMP_PIN_ANNOTATION] == "w3"
    assert pins_of(temp).owner is PinOwner.VM_REBALANCE
