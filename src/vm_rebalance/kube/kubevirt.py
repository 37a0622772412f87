"""KubeVirt operations of live/cold migration and lifecycle: raw JSON in, typed views and typed errors out.

Reads return `VmView`, `VmiView`, `MigrationView`, `NodeView`; refusals arrive as
`ApiRejectedError` with a `Rejection` kind (kube/errors.py). Writes are guarded: VM changes are
JSON patches whose first operation tests the ``metadata.resourceVersion`` that was read, so a
stale object is never written (a conflict → re-read and retry). Migration objects get the
names the caller chose, so a retry after a crash finds the one it created.
"""

import contextlib
import logging
from collections.abc import Callable
from typing import Any, Protocol

from vm_rebalance.errors import ClusterError, ResourceNotFoundError
from vm_rebalance.kube import resources as r
from vm_rebalance.kube.errors import ApiRejectedError, Rejection
from vm_rebalance.kube.pins import pin_ops, restore_ops, run_strategy_ops, unpin_ops
from vm_rebalance.kube.resources import ApiResource
from vm_rebalance.kube.views import (
    MIGRATION_LABEL,
    MIGRATION_TARGET_LABEL,
    MigrationView,
    NodeView,
    VmiView,
    VmView,
    migration_view,
    node_view,
    vm_view,
    vmi_view,
)
from vm_rebalance.model.cluster import HOSTNAME_LABEL

log = logging.getLogger(__name__)

Obj = dict[str, Any]
MAX_CONFLICT_RETRIES = 5
RETRIED_REJECTIONS = frozenset({Rejection.OPTIMISTIC_LOCK, Rejection.GUARD_FAILED})
"""Refusals of a guarded write that mean "the VM changed under us": re-read and retry."""

VmEdit = Callable[[Obj], list[Obj]]
"""Computes JSON-patch operations from the freshly read VM object (empty: nothing to do)."""


class RawClient(Protocol):
    """The raw-JSON requests KubeVirtApi sends (`KubeClient` is one; tests use an in-memory one)."""

    def get(self, resource: ApiResource, name: str, *, namespace: str | None = None) -> dict[str, Any]: ...

    def list(
        self, resource: ApiResource, *, namespace: str | None = None, label_selector: str | None = None
    ) -> list[dict[str, Any]]: ...

    def create(
        self, resource: ApiResource, body: dict[str, Any], *, namespace: str | None = None
    ) -> dict[str, Any]: ...

    def patch(
        self,
        resource: ApiResource,
        name: str,
        patch: Any,
        *,
        namespace: str | None = None,
        patch_type: str = "application/merge-patch+json",
    ) -> dict[str, Any]: ...

    def delete(self, resource: ApiResource, name: str, *, namespace: str | None = None) -> Any: ...

    def put_subresource(
        self, resource: ApiResource, name: str, subresource: str, body: Any = None, *, namespace: str | None = None
    ) -> Any: ...


class KubeVirtApi:
    """The reads and writes of live/cold migration and lifecycle, over a raw-JSON client."""

    def __init__(self, client: RawClient) -> None:
        self.client = client

    # ------------------------------------------------------------------------------- reads

    def get_vm(self, namespace: str, name: str) -> VmView:
        """The VirtualMachine. Raises ResourceNotFoundError when absent."""
        return vm_view(self.client.get(r.VMS, name, namespace=namespace))

    def get_vmi(self, namespace: str, name: str) -> VmiView | None:
        """The VirtualMachineInstance, or None."""
        try:
            return vmi_view(self.client.get(r.VMIS, name, namespace=namespace))
        except ResourceNotFoundError:
            return None

    def get_migration(self, namespace: str, name: str) -> MigrationView | None:
        """A migration object, or None (finished ones may be garbage-collected)."""
        try:
            return migration_view(self.client.get(r.VMIMS, name, namespace=namespace))
        except ResourceNotFoundError:
            return None

    def unfinished_migrations(self) -> list[MigrationView]:
        """Every migration in the cluster that is not finished, whoever created it.

        Raises:
            ClusterError: they cannot be listed (callers that enforce limits must fail closed).
        """
        return [m for m in map(migration_view, self.client.list(r.VMIMS)) if not m.final]

    active_migrations = unfinished_migrations
    """Old name of `unfinished_migrations`."""

    def migrating_vmis(self) -> list[VmiView]:
        """VMIs whose own status says a migration is in progress.

        Only VMIs KubeVirt has labelled as a migration target (`MIGRATION_TARGET_LABEL`, set at
        hand-off) are listed, so this is one small request, not a list of every VMI.

        Raises:
            ClusterError: they cannot be listed.
        """
        listed = self.client.list(r.VMIS, label_selector=MIGRATION_TARGET_LABEL)
        return [v for v in map(vmi_view, listed) if v.migrating]

    def migrations_of(self, namespace: str, vmi: str) -> list[MigrationView]:
        """The migrations of one VMI (finished ones included)."""
        return [m for m in map(migration_view, self.client.list(r.VMIMS, namespace=namespace)) if m.vmi_name == vmi]

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

    def get_node(self, name: str) -> NodeView:
        """A Node. Raises ResourceNotFoundError when absent."""
        return node_view(self.client.get(r.NODES, name))

    def cluster_identity(self) -> str | None:
        """The cluster's identity: the uid of its ``kube-system`` namespace (None when it cannot be read).

        Every cluster has that namespace and its uid never changes, so a plan or a journal made
        for one cluster can be told from another (kubectl contexts and server URLs can change).
        """
        try:
            ns = self.client.get(r.NAMESPACES, "kube-system")
        except ClusterError as exc:
            log.debug("cluster identity unknown: %s", exc)
            return None
        uid = (ns.get("metadata") or {}).get("uid")
        return str(uid) if uid else None

    # ------------------------------------------------------------------------------ writes

    def create_migration(
        self, namespace: str, name: str, vmi: str, *, target: str | None, plan_id: str
    ) -> MigrationView:
        """Create (or find, after a crash) the migration ``name`` for ``vmi``.

        ``target`` goes into ``spec.addedNodeSelector`` (KubeVirt >= 1.6; None on older ones).

        Raises:
            ApiRejectedError: KubeVirt refused it (not migratable, another migration in flight, …).
        """
        existing = self.get_migration(namespace, name)
        if existing is not None:
            return existing
        spec: Obj = {"vmiName": vmi}
        if target:
            spec["addedNodeSelector"] = {HOSTNAME_LABEL: target}
        body = {
            "apiVersion": "kubevirt.io/v1",
            "kind": "VirtualMachineInstanceMigration",
            "metadata": {"name": name, "namespace": namespace, "labels": {MIGRATION_LABEL: plan_id[:10]}},
            "spec": spec,
        }
        return migration_view(self.client.create(r.VMIMS, body, namespace=namespace))

    def delete_migration(self, namespace: str, name: str) -> None:
        """Cancel a migration by deleting it (absent is fine)."""
        with contextlib.suppress(ResourceNotFoundError):
            self.client.delete(r.VMIMS, name, namespace=namespace)

    def start_vm(self, namespace: str, name: str) -> None:
        """PUT virtualmachines/start (KubeVirt rewrites runStrategy as it should).

        Raises:
            ApiRejectedError: e.g. ALREADY_RUNNING, RUN_STRATEGY.
        """
        self.client.put_subresource(r.VM_SUBRESOURCES, name, "start", {}, namespace=namespace)

    def stop_vm(self, namespace: str, name: str) -> None:
        """PUT virtualmachines/stop.

        Raises:
            ApiRejectedError: e.g. NOT_RUNNING (it is already stopped), RUN_STRATEGY.
        """
        self.client.put_subresource(r.VM_SUBRESOURCES, name, "stop", {}, namespace=namespace)

    def add_pin(
        self, namespace: str, name: str, node: str, *, temporary: bool = False, replace_user: bool = False
    ) -> VmView:
        """Pin the VM to ``node`` (required node affinity) and mark the pin as vm-rebalance's.

        vm-rebalance's earlier pin is replaced; the user's own hostname pin is kept (ANDed) unless
        ``replace_user`` (the user approved replacing it).
        """
        return vm_view(
            self.update_vm(
                namespace, name, lambda vm: pin_ops(vm, node, temporary=temporary, replace_user=replace_user)
            )
        )

    def restore_placement(
        self, namespace: str, name: str, affinity: Obj | None, marks: dict[str, str | None]
    ) -> VmView:
        """Put the VM's template affinity and pin annotations back as they were before vm-rebalance changed them."""
        return vm_view(self.update_vm(namespace, name, lambda vm: restore_ops(vm, affinity, marks)))

    def remove_pin(self, namespace: str, name: str, node: str, *, temporary: bool = False) -> VmView:
        """Remove vm-rebalance's pin to ``node`` and its mark; any other pin stays."""
        return vm_view(self.update_vm(namespace, name, lambda vm: unpin_ops(vm, node, temporary=temporary)))

    def set_run_strategy(self, namespace: str, name: str, strategy: str) -> VmView:
        """Put ``spec.runStrategy`` back to ``strategy`` (start/stop rewrite it)."""
        return vm_view(self.update_vm(namespace, name, lambda vm: run_strategy_ops(vm, strategy)))

    def cordon_node(self, name: str) -> bool:
        """Mark a node unschedulable (as `kubectl cordon`); False when it already was."""
        if self.get_node(name).unschedulable:
            return False
        self.client.patch(r.NODES, name, {"spec": {"unschedulable": True}})
        return True

    # ----------------------------------------------------------------------- guarded edits

    def patch_vm_guarded(self, vm: Obj, ops: list[Obj]) -> Obj:
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

    def update_vm(self, namespace: str, name: str, edit: VmEdit, *, retries: int = MAX_CONFLICT_RETRIES) -> Obj:
        """Re-read the VM, compute the patch with ``edit``, write it guarded; on conflict re-read and retry.

        Raises:
            ClusterError: the VM kept changing (after ``retries`` attempts) or the write was refused.
        """
        last: ApiRejectedError | None = None
        for _ in range(retries):
            vm = self.client.get(r.VMS, name, namespace=namespace)
            ops = edit(vm)
            if not ops:
                return vm
            try:
                return self.patch_vm_guarded(vm, ops)
            except ApiRejectedError as exc:
                if exc.kind not in RETRIED_REJECTIONS:
                    raise
                last = exc
                log.debug("VM %s/%s changed while editing it; re-reading", namespace, name)
        raise ApiRejectedError(
            f"VM {namespace}/{name} kept changing while vm-rebalance tried to update it ({last})",
            kind=Rejection.OPTIMISTIC_LOCK,
            detail=last.detail if last else "",
            status=last.status if last and last.status else 409,
            hint="something else is editing this VM; try again when it is quiet",
        )
