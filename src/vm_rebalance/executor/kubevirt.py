"""KubeVirt operations the executor needs, over the raw-JSON client, and the node-pin edits.

Writes are guarded: VM changes are JSON patches whose first operation tests the
``metadata.resourceVersion`` that was read, so a stale object is never written (409/422 →
re-read and retry). Migration objects get deterministic names so a retry after a crash
finds the one it created.
"""

import contextlib
import copy
import logging
import re
from collections.abc import Callable
from typing import Any

from vm_rebalance.errors import ClusterError, ResourceNotFoundError
from vm_rebalance.kube import resources as r
from vm_rebalance.kube.client import KubeClient
from vm_rebalance.model.cluster import HOSTNAME_LABEL

log = logging.getLogger(__name__)

PIN_ANNOTATION = "vm-rebalance.io/pinned-to"
"""Set on a VM whose required node affinity vm-rebalance added (value: the node)."""
TEMP_PIN_ANNOTATION = "vm-rebalance.io/temporary-pin"
"""Set while a temporary affinity steers a live migration on KubeVirt < 1.6."""
MIGRATION_LABEL = "vm-rebalance.io/plan"
FINAL_PHASES = frozenset({"Succeeded", "Failed"})
ADDED_NODE_SELECTOR_SINCE = (1, 6)
MAX_CONFLICT_RETRIES = 5


def parse_version(version: str | None) -> tuple[int, int] | None:
    """``v1.6.2`` → (1, 6); None when unknown."""
    if not version:
        return None
    m = re.match(r"v?(\d+)\.(\d+)", version)
    return (int(m.group(1)), int(m.group(2))) if m else None


def supports_added_node_selector(version: str | None) -> bool:
    """Whether VMIM ``spec.addedNodeSelector`` exists (KubeVirt v1.6+)."""
    v = parse_version(version)
    return v is not None and v >= ADDED_NODE_SELECTOR_SINCE


def migration_name(plan_id: str, move_id: int, attempt: int) -> str:
    """A deterministic, DNS-1123 migration name for a move attempt."""
    return f"vmr-{plan_id[:10]}-{move_id}-{attempt}"


# ------------------------------------------------------------------------- node pins (pure)


def _terms(vm: dict[str, Any]) -> list[dict[str, Any]] | None:
    spec = ((vm.get("spec") or {}).get("template") or {}).get("spec") or {}
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    )
    if not required:
        return None
    return list(required.get("nodeSelectorTerms") or [])


def _is_hostname_pin(expr: dict[str, Any]) -> bool:
    return expr.get("key") == HOSTNAME_LABEL and expr.get("operator") == "In"


def existing_node_pin(vm: dict[str, Any]) -> list[str]:
    """Nodes the VM is already pinned to by a ``kubernetes.io/hostname In`` requirement."""
    nodes: list[str] = []
    for term in _terms(vm) or ():
        for expr in term.get("matchExpressions") or ():
            if _is_hostname_pin(expr):
                nodes.extend(expr.get("values") or ())
    return nodes


def pinned_affinity(vm: dict[str, Any], node: str) -> dict[str, Any]:
    """The VM template's ``affinity`` with a required pin to ``node`` added.

    Other affinity (pod affinity, preferred terms, other node requirements) is kept: the
    hostname requirement is ANDed into every existing node-selector term, replacing any
    previous hostname pin. The caller asks the user before replacing a pin it did not add.
    """
    spec = ((vm.get("spec") or {}).get("template") or {}).get("spec") or {}
    affinity = copy.deepcopy(spec.get("affinity") or {})
    node_aff = affinity.setdefault("nodeAffinity", {})
    required = node_aff.setdefault("requiredDuringSchedulingIgnoredDuringExecution", {})
    pin = {"key": HOSTNAME_LABEL, "operator": "In", "values": [node]}
    terms = required.get("nodeSelectorTerms") or [{}]
    new_terms = []
    for term in terms:
        exprs = [e for e in term.get("matchExpressions") or () if not _is_hostname_pin(e)]
        new_terms.append({**term, "matchExpressions": [*exprs, pin]})
    required["nodeSelectorTerms"] = new_terms
    return affinity


def unpinned_affinity(vm: dict[str, Any], node: str | None = None) -> dict[str, Any] | None:
    """The VM template's ``affinity`` without hostname pins (None when nothing is left).

    With ``node``, only a pin to exactly that node goes (the one vm-rebalance added): any other
    hostname rule is the user's and stays.
    """
    spec = ((vm.get("spec") or {}).get("template") or {}).get("spec") or {}
    affinity = copy.deepcopy(spec.get("affinity") or {})
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


# ------------------------------------------------------------------------- API operations

VmEdit = Callable[[dict[str, Any]], list[dict[str, Any]]]
"""Computes JSON-patch operations from the freshly read VM (empty: nothing to do)."""


class KubeVirtApi:
    """The reads and writes of live/cold migration and lifecycle, with KubeVirt's error texts kept."""

    def __init__(self, client: KubeClient) -> None:
        self.client = client

    # reads
    def get_vm(self, namespace: str, name: str) -> dict[str, Any]:
        """The VirtualMachine (ResourceNotFoundError when absent)."""
        return self.client.get(r.VMS, name, namespace=namespace)

    def get_vmi(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The VirtualMachineInstance, or None."""
        try:
            return self.client.get(r.VMIS, name, namespace=namespace)
        except ResourceNotFoundError:
            return None

    def get_migration(self, namespace: str, name: str) -> dict[str, Any] | None:
        """A migration object, or None (finished ones may be garbage-collected)."""
        try:
            return self.client.get(r.VMIMS, name, namespace=namespace)
        except ResourceNotFoundError:
            return None

    def active_migrations(self) -> list[dict[str, Any]]:
        """Every migration in the cluster that is not finished."""
        return [
            m for m in self.client.list(r.VMIMS) if ((m.get("status") or {}).get("phase") or "") not in FINAL_PHASES
        ]

    def migrations_of(self, namespace: str, vmi: str) -> list[dict[str, Any]]:
        """The migrations of one VMI (KubeVirt labels them kubevirt.io/vmi-name)."""
        return [
            m for m in self.client.list(r.VMIMS, namespace=namespace) if (m.get("spec") or {}).get("vmiName") == vmi
        ]

    def kubevirt_version(self) -> str | None:
        """The KubeVirt version from the KubeVirt CR's status, or None."""
        try:
            crs = self.client.list(r.KUBEVIRTS)
        except ClusterError:
            return None
        for cr in crs:
            status = cr.get("status") or {}
            version = status.get("observedKubeVirtVersion") or status.get("targetKubeVirtVersion")
            if version:
                return str(version)
        return None

    # writes
    def create_migration(
        self,
        namespace: str,
        name: str,
        vmi: str,
        *,
        target: str | None,
        plan_id: str,
    ) -> dict[str, Any]:
        """Create (or find, after a crash) the migration ``name`` for ``vmi``."""
        existing = self.get_migration(namespace, name)
        if existing is not None:
            return existing
        spec: dict[str, Any] = {"vmiName": vmi}
        if target:
            spec["addedNodeSelector"] = {HOSTNAME_LABEL: target}
        body = {
            "apiVersion": "kubevirt.io/v1",
            "kind": "VirtualMachineInstanceMigration",
            "metadata": {"name": name, "namespace": namespace, "labels": {MIGRATION_LABEL: plan_id[:10]}},
            "spec": spec,
        }
        return self.client.create(r.VMIMS, body, namespace=namespace)

    def delete_migration(self, namespace: str, name: str) -> None:
        """Cancel a migration by deleting it (absent is fine)."""
        with contextlib.suppress(ResourceNotFoundError):
            self.client.delete(r.VMIMS, name, namespace=namespace)

    def start_vm(self, namespace: str, name: str) -> None:
        """PUT virtualmachines/start (KubeVirt rewrites runStrategy as it should)."""
        self.client.put_subresource(r.VM_SUBRESOURCES, name, "start", {}, namespace=namespace)

    def stop_vm(self, namespace: str, name: str) -> None:
        """PUT virtualmachines/stop."""
        self.client.put_subresource(r.VM_SUBRESOURCES, name, "stop", {}, namespace=namespace)

    def patch_vm_guarded(self, vm: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
        """Apply JSON-patch ``ops`` only if the VM still has the resourceVersion it was read with."""
        meta = vm.get("metadata") or {}
        guard = {"op": "test", "path": "/metadata/resourceVersion", "value": meta.get("resourceVersion")}
        return self.client.patch(
            r.VMS,
            str(meta.get("name")),
            [guard, *ops],
            namespace=meta.get("namespace"),
            patch_type="application/json-patch+json",
        )

    def update_vm(
        self, namespace: str, name: str, edit: VmEdit, *, retries: int = MAX_CONFLICT_RETRIES
    ) -> dict[str, Any]:
        """Re-read the VM, compute the patch with ``edit``, write it guarded; on conflict re-read and retry.

        ``edit(vm)`` returns the JSON-patch operations (empty: nothing to do).
        """
        last: ClusterError | None = None
        for _ in range(retries):
            vm = self.get_vm(namespace, name)
            ops = edit(vm)
            if not ops:
                return vm
            try:
                return self.patch_vm_guarded(vm, ops)
            except ClusterError as exc:
                # 409 Conflict, or 422 from a failed `test` op: the VM changed under us.
                if exc.status in (409, 422) or "test operation" in str(exc):
                    last = exc
                    log.debug("VM %s/%s changed while editing it; re-reading", namespace, name)
                    continue
                raise
        raise ClusterError(
            f"VM {namespace}/{name} kept changing while vm-rebalance tried to update it ({last})",
            hint="something else is editing this VM; try again when it is quiet",
        )


def affinity_ops(vm: dict[str, Any], affinity: dict[str, Any] | None) -> list[dict[str, Any]]:
    """JSON-patch operations setting (or removing) the VM template's affinity."""
    spec = ((vm.get("spec") or {}).get("template") or {}).get("spec") or {}
    if affinity is None:
        return [{"op": "remove", "path": "/spec/template/spec/affinity"}] if "affinity" in spec else []
    if spec.get("affinity") == affinity:
        return []
    return [{"op": "add", "path": "/spec/template/spec/affinity", "value": affinity}]


def annotation_ops(vm: dict[str, Any], key: str, value: str | None) -> list[dict[str, Any]]:
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


def run_strategy_ops(vm: dict[str, Any], strategy: str) -> list[dict[str, Any]]:
    """JSON-patch operations restoring ``spec.runStrategy``."""
    spec = vm.get("spec") or {}
    if spec.get("runStrategy") == strategy:
        return []
    ops: list[dict[str, Any]] = []
    if "running" in spec:
        ops.append({"op": "remove", "path": "/spec/running"})
    ops.append({"op": "add", "path": "/spec/runStrategy", "value": strategy})
    return ops


def vm_run_strategy(vm: dict[str, Any]) -> str:
    """The VM's run strategy (``running: true/false`` mapped as KubeVirt maps it)."""
    spec = vm.get("spec") or {}
    if spec.get("runStrategy"):
        return str(spec["runStrategy"])
    return "Always" if spec.get("running") else "Halted"


def printable_status(vm: dict[str, Any]) -> str:
    """``status.printableStatus`` of a VM."""
    return str((vm.get("status") or {}).get("printableStatus") or "Unknown")


def migration_phase(migration: dict[str, Any] | None) -> str:
    """A migration's phase ('' when unset)."""
    return str(((migration or {}).get("status") or {}).get("phase") or "")


def vmi_node(vmi: dict[str, Any] | None) -> str | None:
    """The node a VMI runs on."""
    return ((vmi or {}).get("status") or {}).get("nodeName")


def vmi_running(vmi: dict[str, Any] | None) -> bool:
    """Whether a VMI is Running."""
    return ((vmi or {}).get("status") or {}).get("phase") == "Running"
