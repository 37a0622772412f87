"""An in-memory KubeVirt API server for unit tests of the runners, the engine and lifecycle.

`FakeKubeVirt` is a real `KubeVirtApi` whose raw-JSON client is itself: it keeps VM, VMI,
migration and node objects as the API serves them and answers errors as Kubernetes `Status`
bodies translated by the real `kube.errors.error_for_status`, so the typed views, the
refusal classification, the pins and the guarded update are the production ones.

Migrations progress one phase per look (`polls_to_finish` looks to Succeeded, or Failed for
VMs in `fail_vms`) and report their state on the VMI as KubeVirt does (`status.migrationState`,
copied onto the migration when it finalizes); stop/start take `lifecycle_polls` reads of the
VM to settle. A fake clock advances by one second on every migration look.
"""

import copy
from typing import Any

from vm_rebalance.errors import ClusterError
from vm_rebalance.kube import resources as r
from vm_rebalance.kube.errors import error_for_status
from vm_rebalance.kube.kubevirt import KubeVirtApi
from vm_rebalance.kube.pins import existing_node_pin
from vm_rebalance.kube.resources import ApiResource
from vm_rebalance.kube.views import MIGRATION_TARGET_LABEL
from vm_rebalance.model import GIB, MigrationMethod, Move
from vm_rebalance.simulator.patching import JsonPatchError, json_patch

Obj = dict[str, Any]
FINAL_PHASES = frozenset({"Succeeded", "Failed"})
WEBHOOK = (
    'virtualmachineinstancemigrations.kubevirt.io "{name}" is forbidden: admission webhook '
    '"migration-create-validator.kubevirt.io" denied the request: '
)


class FakeClock:
    """A monotonic clock the test advances."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def fake_vm(name: str, *, namespace: str = "default", run_strategy: str = "Always", affinity: Obj | None = None) -> Obj:
    spec: Obj = {"domain": {"memory": {"guest": "4Gi"}}}
    if affinity:
        spec["affinity"] = affinity
    return {
        "metadata": {"name": name, "namespace": namespace, "resourceVersion": "1", "annotations": {}},
        "spec": {"runStrategy": run_strategy, "template": {"spec": spec}},
        "status": {"printableStatus": "Running" if run_strategy == "Always" else "Stopped"},
    }


def status_error(
    code: int, message: str, *, reason: str = "", verb: str, resource: ApiResource, **kw: Any
) -> ClusterError:
    """The error the real client raises for a Status answer."""
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    return error_for_status(code, body, verb=verb, resource=resource.qualified, **kw)


class FakeKubeVirt(KubeVirtApi):
    """VMs, VMIs, migrations and nodes in dicts, with scriptable conflicts and failures."""

    def __init__(self, *, version: str | None = "v1.6.0", polls_to_finish: int = 3, lifecycle_polls: int = 1) -> None:
        super().__init__(client=self)
        self.version = version
        self.polls_to_finish = polls_to_finish
        self.lifecycle_polls = lifecycle_polls
        self.vms: dict[tuple[str, str], Obj] = {}
        self.vmis: dict[tuple[str, str], Obj] = {}
        self.migrations: dict[tuple[str, str], Obj] = {}
        self.nodes: dict[str, Obj] = {}
        self.polls: dict[str, int] = {}
        self.fail_vms: set[str] = set()
        self.conflicts = 0
        """How many guarded patches fail with 409 (after a concurrent edit bumps the VM)."""
        self.concurrent_edit: Any = None
        """Called with the VM dict before a conflict is raised (a concurrent writer)."""
        self.patches: list[tuple[str, list[Obj]]] = []
        self.created: list[Obj] = []
        self.deleted: list[str] = []
        self.calls: list[tuple[str, str]] = []
        self.pending_lifecycle: dict[tuple[str, str], tuple[str, int]] = {}
        self.peak_total = 0
        self.peak_outbound: dict[str, int] = {}
        self.sources: dict[str, str | None] = {}
        """Source node of every migration (ours and others'), as seen when it was created."""
        self.clock: FakeClock | None = None
        self.start_refused: set[str] = set()
        self.list_failures = 0
        """How many cluster-wide migration lists fail with 503 (then they work again)."""
        self.lists = 0
        """Cluster-wide migration lists answered so far."""
        self.uids = 0

    # ---------------------------------------------------------------------------------- setup

    def add_vm(
        self,
        name: str,
        node: str | None,
        *,
        namespace: str = "default",
        run_strategy: str = "Always",
        affinity: Obj | None = None,
    ) -> Obj:
        vm = fake_vm(name, namespace=namespace, run_strategy=run_strategy if node else "Halted", affinity=affinity)
        self.vms[(namespace, name)] = vm
        if node:
            self.vmis[(namespace, name)] = self._vmi(name, namespace, node)
        return vm

    @staticmethod
    def _vmi(name: str, namespace: str, node: str) -> Obj:
        return {
            "metadata": {"name": name, "namespace": namespace, "labels": {}},
            "status": {"phase": "Running", "nodeName": node},
        }

    def add_foreign_migration(
        self, vmi: str, source: str, *, namespace: str = "default", handed_off: bool = True, polls: int = 1000
    ) -> Obj:
        """Someone else's migration (kubectl, the descheduler): no vm-rebalance label, no migrationState on it.

        Its source is known only from the VMI: its ``status.migrationState`` once ``handed_off``,
        else the node the VMI still runs on. It finishes after ``polls`` looks.
        """
        if (namespace, vmi) not in self.vms:
            self.add_vm(vmi, source, namespace=namespace)
        name = f"kubevirt-migrate-vm-{vmi}"
        mig = self._new_migration(namespace, name, vmi, dest=f"{source}-elsewhere")
        self.polls[name] = 0
        mig["_polls_to_finish"] = polls
        if handed_off:
            self._start_on_vmi(mig)
            mig["status"]["phase"] = "Running"
        return mig

    def running(self, name: str, namespace: str = "default") -> bool:
        vmi = self.vmis.get((namespace, name))
        return vmi is not None and vmi["status"].get("phase") == "Running"

    def node_of(self, name: str, namespace: str = "default") -> str | None:
        vmi = self.vmis.get((namespace, name))
        return vmi["status"]["nodeName"] if vmi else None

    def kubevirt_version(self) -> str | None:
        return self.version

    # ------------------------------------------------------------------- the raw client (RawClient)

    def get(self, resource: ApiResource, name: str, *, namespace: str | None = None) -> Obj:
        ns = namespace or ""
        if resource is r.VMS:
            self.calls.append(("get_vm", name))
            self._settle(ns, name)
            found = self.vms.get((ns, name))
        elif resource is r.VMIS:
            found = self.vmis.get((ns, name))
        elif resource is r.VMIMS:
            found = self.migrations.get((ns, name))
            if found is not None:
                self._advance(found)
        elif resource is r.NODES:
            # Nodes nobody set up are Ready, schedulable workers (the fake's cluster has them all).
            found = self.nodes.get(name) or {
                "metadata": {"name": name, "labels": {"kubevirt.io/schedulable": "true"}},
                "spec": {},
                "status": {"conditions": [{"type": "Ready", "status": "True"}]},
            }
        else:
            raise AssertionError(f"unexpected get of {resource.plural}")
        if found is None:
            raise status_error(
                404,
                f'{resource.qualified} "{name}" not found',
                reason="NotFound",
                verb="get",
                resource=resource,
                namespace=namespace,
                name=name,
            )
        return copy.deepcopy({k: v for k, v in found.items() if not k.startswith("_")})

    def list(
        self, resource: ApiResource, *, namespace: str | None = None, label_selector: str | None = None
    ) -> list[Obj]:
        if resource is r.VMIMS:
            if namespace is None:
                self.lists += 1
                if self.list_failures > 0:
                    self.list_failures -= 1
                    raise status_error(
                        503, "the server is currently unable to handle the request", verb="list", resource=resource
                    )
                for mig in list(self.migrations.values()):
                    self._advance(mig)  # the fake cluster moves on when it is looked at
            items = [
                m for m in self.migrations.values() if namespace is None or m["metadata"]["namespace"] == namespace
            ]
            return [copy.deepcopy({k: v for k, v in m.items() if not k.startswith("_")}) for m in items]
        if resource is r.VMIS:
            assert label_selector == MIGRATION_TARGET_LABEL, label_selector
            return [copy.deepcopy(v) for v in self.vmis.values() if label_selector in v["metadata"].get("labels", {})]
        if resource is r.KUBEVIRTS:
            return []
        raise AssertionError(f"unexpected list of {resource.plural}")

    def create(self, resource: ApiResource, body: Obj, *, namespace: str | None = None) -> Obj:
        assert resource is r.VMIMS
        ns, name, vmi = namespace or "", body["metadata"]["name"], body["spec"]["vmiName"]
        for m in self.migrations.values():
            if (
                m["spec"]["vmiName"] == vmi
                and m["metadata"]["namespace"] == ns
                and m["status"]["phase"] not in FINAL_PHASES
            ):
                raise status_error(
                    400,
                    WEBHOOK.format(name=name) + "in-flight migration detected. Active migration job (x) is currently "
                    f"already in progress for VMI {vmi}.",
                    reason="Forbidden",
                    verb="create",
                    resource=resource,
                    namespace=ns,
                    name=name,
                )
        if (ns, vmi) not in self.vmis:
            raise status_error(
                400,
                WEBHOOK.format(name=name) + f'the VMI "{ns}/{vmi}" does not exist',
                reason="Forbidden",
                verb="create",
                resource=resource,
                namespace=ns,
                name=name,
            )
        target = (body["spec"].get("addedNodeSelector") or {}).get("kubernetes.io/hostname")
        pins = existing_node_pin(self.vms[(ns, vmi)])
        mig = self._new_migration(ns, name, vmi, dest=target or (pins[0] if pins else None))
        mig["metadata"]["labels"] = dict(body["metadata"].get("labels") or {})
        mig["spec"] = copy.deepcopy(body["spec"])
        self.created.append(copy.deepcopy(mig))
        self.polls[name] = 0
        return copy.deepcopy({k: v for k, v in mig.items() if not k.startswith("_")})

    def _new_migration(self, ns: str, name: str, vmi: str, *, dest: str | None) -> Obj:
        self.uids += 1
        mig = {
            "metadata": {"name": name, "namespace": ns, "uid": f"uid-{self.uids}"},
            "spec": {"vmiName": vmi},
            "status": {"phase": "Pending"},
            "_dest": dest,
        }
        self.migrations[(ns, name)] = mig
        self.sources[name] = self.node_of(vmi, ns)
        self._count_peaks()
        return mig

    def _count_peaks(self) -> None:
        active = [m for m in self.migrations.values() if m["status"]["phase"] not in FINAL_PHASES]
        self.peak_total = max(self.peak_total, len(active))
        per: dict[str | None, int] = {}
        for m in active:
            src = self.sources.get(m["metadata"]["name"])
            per[src] = per.get(src, 0) + 1
        for node, n in per.items():
            if node is not None:
                self.peak_outbound[node] = max(self.peak_outbound.get(node, 0), n)

    def delete(self, resource: ApiResource, name: str, *, namespace: str | None = None) -> None:
        assert resource is r.VMIMS
        self.deleted.append(name)
        mig = self.migrations.pop((namespace or "", name), None)
        if mig is None:
            raise status_error(404, "not found", reason="NotFound", verb="delete", resource=resource, name=name)
        # KubeVirt aborts a deleted migration that is still running: the VMI's state says it ended.
        vmi = self.vmis.get((namespace or "", mig["spec"]["vmiName"]))
        state = (vmi or {}).get("status", {}).get("migrationState")
        if state and state.get("migrationUid") == mig["metadata"]["uid"] and not state.get("completed"):
            state.update(abortRequested=True, failed=True, endTimestamp="2026-01-01T00:01:00Z")

    def put_subresource(
        self, resource: ApiResource, name: str, subresource: str, body: Any = None, *, namespace: str | None = None
    ) -> None:
        ns = namespace or ""
        self.calls.append((subresource, name))
        vm = self.vms[(ns, name)]
        conflict = f'Operation cannot be fulfilled on virtualmachine.kubevirt.io "{name}": '
        if subresource == "start":
            if name in self.start_refused:
                raise status_error(500, "start refused", verb="update", resource=resource, name=name)
            if (ns, name) in self.vmis:
                raise status_error(
                    409,
                    conflict + "VM is already running",
                    reason="Conflict",
                    verb="update",
                    resource=resource,
                    name=name,
                )
            vm["spec"]["runStrategy"] = "Always"
            vm["status"]["printableStatus"] = "Starting"
        elif subresource == "stop":
            if (ns, name) not in self.vmis and vm["spec"].get("runStrategy") != "Always":
                raise status_error(
                    409, conflict + "VM is not running", reason="Conflict", verb="update", resource=resource, name=name
                )
            vm["spec"]["runStrategy"] = "Halted"
            vm["status"]["printableStatus"] = "Stopping"
        else:
            raise AssertionError(subresource)
        self._bump(vm)
        self.pending_lifecycle[(ns, name)] = (subresource, self.lifecycle_polls)

    def patch(
        self,
        resource: ApiResource,
        name: str,
        patch: Any,
        *,
        namespace: str | None = None,
        patch_type: str = "application/merge-patch+json",
    ) -> Obj:
        if resource is r.NODES:
            self.nodes[name]["spec"] = {**self.nodes[name].get("spec", {}), **patch["spec"]}
            return copy.deepcopy(self.nodes[name])
        assert resource is r.VMS and patch_type == "application/json-patch+json"
        key = (namespace or "", name)
        live = self.vms[key]
        if self.conflicts > 0:
            self.conflicts -= 1
            if self.concurrent_edit is not None:
                self.concurrent_edit(live)
            self._bump(live)
            raise status_error(
                409,
                f'Operation cannot be fulfilled on virtualmachines.kubevirt.io "{name}": the object has been modified; '
                "please apply your changes to the latest version and try again",
                reason="Conflict",
                verb="patch",
                resource=resource,
                namespace=namespace,
                name=name,
            )
        try:
            new = json_patch(live, patch)
        except JsonPatchError as exc:
            raise status_error(422, str(exc), reason="Invalid", verb="patch", resource=resource, name=name) from exc
        self._bump(new)
        self.vms[key] = new
        self.patches.append((name, patch[1:]))
        return copy.deepcopy(new)

    # ------------------------------------------------------------------------------ the cluster

    def _start_on_vmi(self, mig: Obj) -> None:
        """KubeVirt's hand-off: the VMI reports the migration (source, target, start) and gets the target label."""
        ns, vmi_name = mig["metadata"]["namespace"], mig["spec"]["vmiName"]
        vmi = self.vmis.get((ns, vmi_name))
        if vmi is None:
            return
        vmi["status"]["migrationState"] = {
            "migrationUid": mig["metadata"]["uid"],
            "sourceNode": vmi["status"]["nodeName"],
            "targetNode": mig.get("_dest"),
            "startTimestamp": "2026-01-01T00:00:00Z",
            "completed": False,
            "failed": False,
        }
        vmi["metadata"].setdefault("labels", {})[MIGRATION_TARGET_LABEL] = mig.get("_dest") or "somewhere"

    def _advance(self, mig: Obj) -> None:
        if mig["status"]["phase"] in FINAL_PHASES:
            return
        if self.clock is not None:
            self.clock.now += 1.0
        name = mig["metadata"]["name"]
        self.polls[name] += 1
        if self.polls[name] < mig.get("_polls_to_finish", self.polls_to_finish):
            if mig["status"]["phase"] == "Pending":
                self._start_on_vmi(mig)
            mig["status"]["phase"] = "Running"
            return
        ns, vmi_name = mig["metadata"]["namespace"], mig["spec"]["vmiName"]
        vmi = self.vmis.get((ns, vmi_name))
        state = dict((vmi or {}).get("status", {}).get("migrationState") or {}, completed=True)
        state["endTimestamp"] = "2026-01-01T00:01:00Z"
        if vmi_name in self.fail_vms or mig["_dest"] is None:
            mig["status"]["phase"] = "Failed"
            state.update(failed=True, failureReason="injected failure")
        else:
            mig["status"]["phase"] = "Succeeded"
            if vmi is not None:
                vmi["status"]["nodeName"] = mig["_dest"]
        if vmi is not None:
            vmi["status"]["migrationState"] = state
        mig["status"]["migrationState"] = copy.deepcopy(state)

    def _settle(self, namespace: str, name: str) -> None:
        pending = self.pending_lifecycle.get((namespace, name))
        if pending is None:
            return
        action, left = pending
        if left > 0:
            self.pending_lifecycle[(namespace, name)] = (action, left - 1)
            return
        del self.pending_lifecycle[(namespace, name)]
        vm = self.vms[(namespace, name)]
        if action == "stop":
            self.vmis.pop((namespace, name), None)
            vm["status"]["printableStatus"] = "Stopped"
        else:
            self.vmis[(namespace, name)] = self._vmi(name, namespace, _allowed_node(vm) or "old-node")
            vm["status"]["printableStatus"] = "Running"

    @staticmethod
    def _bump(vm: Obj) -> None:
        vm["metadata"]["resourceVersion"] = str(int(vm["metadata"]["resourceVersion"]) + 1)


def _allowed_node(vm: Obj) -> str | None:
    """The node the VM's hostname requirements allow (their intersection, as a scheduler would)."""
    terms = (
        vm["spec"]["template"]["spec"]
        .get("affinity", {})
        .get("nodeAffinity", {})
        .get("requiredDuringSchedulingIgnoredDuringExecution", {})
        .get("nodeSelectorTerms", [])
    )
    for term in terms:
        allowed: set[str] | None = None
        for expr in term.get("matchExpressions", []):
            if expr.get("key") == "kubernetes.io/hostname" and expr.get("operator") == "In":
                allowed = set(expr["values"]) if allowed is None else allowed & set(expr["values"])
        if allowed:
            return sorted(allowed)[0]
    return None


def live_move(id_: int, vm: str, source: str, target: str, *, gib: float = 4, wave: int = 1) -> Move:
    return Move(
        id=id_,
        vm=vm,
        namespace="default",
        source=source,
        target=target,
        method=MigrationMethod.LIVE,
        wave=wave,
        guest_memory_bytes=int(gib * GIB),
        memory_bytes=int(gib * GIB),
    )


def cold_move(id_: int, vm: str, source: str | None, target: str, *, running: bool = True, wave: int = 1) -> Move:
    return Move(
        id=id_,
        vm=vm,
        namespace="default",
        source=source or "-",
        target=target,
        method=MigrationMethod.COLD,
        wave=wave,
        running=running,
        guest_memory_bytes=4 * GIB,
        memory_bytes=4 * GIB,
    )
