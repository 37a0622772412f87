"""Node-pin and run-strategy edits of a VM object, as JSON-patch operations (pure; wire format).

A pin is a required node affinity ``kubernetes.io/hostname In [node]`` in the VM template,
marked with an annotation saying vm-rebalance added it (`PIN_ANNOTATION`, or
`TEMP_PIN_ANNOTATION` while it steers a live migration on KubeVirt < 1.6). Other affinity
terms are always kept; a hostname requirement of the user's own is kept too (the new pin is
ANDed with it) unless its replacement was approved (``replace_user``). `restore_ops` puts a
VM's affinity and pin annotations back exactly as they were read (a cold move's rollback).
`KubeVirtApi` applies these through guarded patches.
"""

import copy
from typing import Any

from vm_rebalance.kube.views import (
    PIN_ANNOTATION,
    TEMP_PIN_ANNOTATION,
    hostname_pins,
    run_strategy_of,
    template_spec,
)
from vm_rebalance.model.cluster import HOSTNAME_LABEL

PIN_ANNOTATIONS = (PIN_ANNOTATION, TEMP_PIN_ANNOTATION)

Obj = dict[str, Any]

existing_node_pin = hostname_pins
"""Old name of `hostname_pins`."""
vm_run_strategy = run_strategy_of
"""Old name of `run_strategy_of`."""


def _is_hostname_pin(expr: Obj) -> bool:
    return expr.get("key") == HOSTNAME_LABEL and expr.get("operator") == "In"


def _marks(vm: Obj) -> set[str]:
    annotations = (vm.get("metadata") or {}).get("annotations") or {}
    return {str(annotations[k]) for k in PIN_ANNOTATIONS if annotations.get(k)}


def _is_our_pin(expr: Obj, marks: set[str]) -> bool:
    values = list(expr.get("values") or ())
    return _is_hostname_pin(expr) and len(values) == 1 and str(values[0]) in marks


def pinned_affinity(vm: Obj, node: str, *, replace_user: bool = False) -> Obj:
    """The VM template's ``affinity`` with a required pin to ``node`` added.

    Other affinity (pod affinity, preferred terms, other node requirements) is kept: the
    hostname requirement is ANDed into every existing node-selector term, replacing vm-rebalance's
    previous pin. A hostname requirement of the user's own stays (ANDed with the new pin) unless
    ``replace_user``: whether it may be replaced is decided before (see `NodePins.user_allows`).
    """
    affinity = copy.deepcopy(dict(template_spec(vm).get("affinity") or {}))
    marks = _marks(vm)
    node_aff = affinity.setdefault("nodeAffinity", {})
    required = node_aff.setdefault("requiredDuringSchedulingIgnoredDuringExecution", {})
    pin = {"key": HOSTNAME_LABEL, "operator": "In", "values": [node]}
    terms = required.get("nodeSelectorTerms") or [{}]
    new_terms = []
    for term in terms:
        exprs = [
            e
            for e in term.get("matchExpressions") or ()
            if not (_is_our_pin(e, marks) or (replace_user and _is_hostname_pin(e)))
        ]
        new_terms.append({**term, "matchExpressions": [*exprs, pin]})
    required["nodeSelectorTerms"] = new_terms
    return affinity


def unpinned_affinity(vm: Obj, node: str | None = None) -> Obj | None:
    """The VM template's ``affinity`` without hostname pins (None when nothing is left).

    With ``node``, only a pin to exactly that node goes (the one vm-rebalance added): any other
    hostname rule is the user's and stays.
    """
    affinity = copy.deepcopy(dict(template_spec(vm).get("affinity") or {}))
    node_aff = affinity.get("nodeAffinity") or {}
    required = node_aff.get("requiredDuringSchedulingIgnoredDuringExecution")
    if required:
        kept = []
        for term in required.get("nodeSelectorTerms") or ():
            exprs = [
                e
                for e in term.get("matchExpressions") or ()
                if not (_is_hostname_pin(e) and (node is None or list(e.get("values") or ()) == [node]))
            ]
            rest = {k: v for k, v in term.items() if k != "matchExpressions"}
            if exprs:
                rest["matchExpressions"] = exprs
            if rest.get("matchExpressions") or rest.get("matchFields"):
                kept.append(rest)
        if kept:
            required["nodeSelectorTerms"] = kept
        else:
            node_aff.pop("requiredDuringSchedulingIgnoredDuringExecution", None)
    if not node_aff:
        affinity.pop("nodeAffinity", None)
    return affinity or None


def affinity_ops(vm: Obj, affinity: Obj | None) -> list[Obj]:
    """JSON-patch operations setting (or removing) the VM template's affinity."""
    spec = template_spec(vm)
    if affinity is None:
        return [{"op": "remove", "path": "/spec/template/spec/affinity"}] if "affinity" in spec else []
    if spec.get("affinity") == affinity:
        return []
    return [{"op": "add", "path": "/spec/template/spec/affinity", "value": affinity}]


def annotation_ops(vm: Obj, key: str, value: str | None) -> list[Obj]:
    """JSON-patch operations setting or removing one annotation."""
    meta = vm.get("metadata") or {}
    annotations = meta.get("annotations")
    escaped = key.replace("~", "~0").replace("/", "~1")
    if value is None:
        if annotations and key in annotations:
            return [{"op": "remove", "path": f"/metadata/annotations/{escaped}"}]
        return []
    if annotations is None:
        return [{"op": "add", "path": "/metadata/annotations", "value": {key: value}}]
    if annotations.get(key) == value:
        return []
    return [{"op": "add", "path": f"/metadata/annotations/{escaped}", "value": value}]


def run_strategy_ops(vm: Obj, strategy: str) -> list[Obj]:
    """JSON-patch operations restoring ``spec.runStrategy``."""
    spec = vm.get("spec") or {}
    if spec.get("runStrategy") == strategy:
        return []
    ops: list[Obj] = []
    if "running" in spec:
        ops.append({"op": "remove", "path": "/spec/running"})
    ops.append({"op": "add", "path": "/spec/runStrategy", "value": strategy})
    return ops


def pin_ops(vm: Obj, node: str, *, temporary: bool = False, replace_user: bool = False) -> list[Obj]:
    """Pin ``vm`` to ``node`` and mark the pin as vm-rebalance's (temporary: a live-migration steer).

    A permanent pin replaces vm-rebalance's earlier pin and its mark; ``replace_user`` also drops the
    user's own hostname requirements (only with the user's approval).
    """
    marker = TEMP_PIN_ANNOTATION if temporary else PIN_ANNOTATION
    return affinity_ops(vm, pinned_affinity(vm, node, replace_user=replace_user)) + annotation_ops(vm, marker, node)


def restore_ops(vm: Obj, affinity: Obj | None, marks: dict[str, str | None]) -> list[Obj]:
    """Put the VM template's affinity and vm-rebalance's pin annotations back as they were read.

    ``marks`` maps `PIN_ANNOTATION` / `TEMP_PIN_ANNOTATION` to their earlier values (None: absent).
    """
    ops = affinity_ops(vm, copy.deepcopy(affinity) if affinity else None)
    meta = vm.get("metadata") or {}
    if meta.get("annotations") is None:
        wanted = {k: v for k in PIN_ANNOTATIONS if (v := marks.get(k)) is not None}
        return ops + ([{"op": "add", "path": "/metadata/annotations", "value": wanted}] if wanted else [])
    for key in PIN_ANNOTATIONS:
        ops += annotation_ops(vm, key, marks.get(key))
    return ops


def unpin_ops(vm: Obj, node: str, *, temporary: bool = False) -> list[Obj]:
    """Remove vm-rebalance's pin to ``node`` (only that one) and its mark."""
    marker = TEMP_PIN_ANNOTATION if temporary else PIN_ANNOTATION
    return affinity_ops(vm, unpinned_affinity(vm, node)) + annotation_ops(vm, marker, None)
