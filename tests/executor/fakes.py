"""An in-memory KubeVirtApi for unit tests of the runners, the engine and lifecycle.

Only the primitive reads and writes are faked; `update_vm` (re-read, guarded patch, retry)
is the real one. Migrations progress one phase per `get_migration` poll (`polls_to_finish`
polls to Succeeded, or Failed for VMs in `fail_vms`); stop/start take `lifecycle_polls`
reads of the VM to settle. A fake clock advances by `tick` on every migration poll.
"""

import copy
from typing import Any

from vm_rebalance.errors import ClusterError, ResourceNotFoundError
from vm_rebalance.executor.kubevirt import FINAL_PHASES, KubeVirtApi, existing_node_pin
from vm_rebalance.model import GIB, MigrationMethod, Move
from vm_rebalance.simulator.patching import JsonPatchError, json_patch

Obj = dict[str, Any]


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


class FakeKubeVirt(KubeVirtApi):
    """VMs, VMIs and migrations in dicts, with scriptable conflicts and failures."""

    def __init__(self, *, version: str | None = "v1.6.0", polls_to_finish: int = 3, lifecycle_polls: int = 1) -> None:
        super().__init__(client=None)  # type: ignore[arg-type]
        self.version = version
        self.polls_to_finish = polls_to_finish
        self.lifecycle_polls = lifecycle_polls
        self.vms: dict[tuple[str, str], Obj] = {}
        self.vmis: dict[tuple[str, str], Obj] = {}
        self.migrations: dict[tuple[str, str], Obj] = {}
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
        self.external: list[Obj] = []
        self.external_polls = 0
        """Others' migrations (`external`) finish after this many listings."""
        self.clock: FakeClock | None = None
        self.start_refused: set[str] = set()

    # -- setup
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
            self.vmis[(namespace, name)] = {
                "metadata": {"name": name, "namespace": namespace},
                "status": {"phase": "Running", "nodeName": node},
            }
        return vm

    def node_of(self, name: str, namespace: str = "default") -> str | None:
        vmi = self.vmis.get((namespace, name))
        return vmi["status"]["nodeName"] if vmi else None

    # -- reads
    def get_vm(self, namespace: str, name: str) -> Obj:
        self.calls.append(("get_vm", name))
        self._settle(namespace, name)
        try:
            return copy.deepcopy(self.vms[(namespace, name)])
        except KeyError:
            raise ResourceNotFoundError(f"virtualmachines '{name}' not found", status=404) from None

    def get_vmi(self, namespace: str, name: str) -> Obj | None:
        vmi = self.vmis.get((namespace, name))
        return copy.deepcopy(vmi) if vmi else None

    def get_migration(self, namespace: str, name: str) -> Obj | None:
        mig = self.migrations.get((namespace, name))
        if mig is None:
            return None
        self._advance(mig)
        return copy.deepcopy(mig)

    def active_migrations(self) -> list[Obj]:
        for mig in list(self.migrations.values()):
            self._advance(mig)  # like get_migration: the fake cluster moves on when it is looked at
        return self._unfinished()

    def _unfinished(self) -> list[Obj]:
        if self.external:
            self.external_polls -= 1
            if self.external_polls < 0:
                self.external = []
        ours = [m for m in self.migrations.values() if m["status"].get("phase") not in FINAL_PHASES]
        return copy.deepcopy(ours + self.external)

    def migrations_of(self, namespace: str, vmi: str) -> list[Obj]:
        return [
            copy.deepcopy(m)
            for (ns, _), m in self.migrations.items()
            if ns == namespace and m["spec"]["vmiName"] == vmi
        ]

    def kubevirt_version(self) -> str | None:
        return self.version

    # -- writes
    def create_migration(self, namespace: str, name: str, vmi: str, *, target: str | None, plan_id: str) -> Obj:
        if (namespace, name) in self.migrations:
            return copy.deepcopy(self.migrations[(namespace, name)])
        for m in self.migrations.values():
            if (
                m["spec"]["vmiName"] == vmi
                and m["metadata"]["namespace"] == namespace
                and m["status"].get("phase") not in FINAL_PHASES
            ):
                raise ClusterError("admission webhook denied the request: in-flight migration detected", status=400)
        if (namespace, vmi) not in self.vmis:
            raise ClusterError(
                f'admission webhook denied the request: the VMI "{namespace}/{vmi}" does not exist', status=400
            )
        vm = self.vms[(namespace, vmi)]
        pins = existing_node_pin(vm)
        dest = target or (pins[0] if pins else None)
        mig = {
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"vmiName": vmi, **({"addedNodeSelector": {"kubernetes.io/hostname": target}} if target else {})},
            "status": {"phase": "Pending", "migrationState": {"sourceNode": self.node_of(vmi, namespace)}},
            "_dest": dest,
        }
        self.migrations[(namespace, name)] = mig
        self.created.append(copy.deepcopy(mig))
        self.polls[name] = 0
        self._count_peaks()
        return copy.deepcopy(mig)

    def _count_peaks(self) -> None:
        active = self._unfinished()
        self.peak_total = max(self.peak_total, len(active))
        per: dict[str, int] = {}
        for m in active:
            src = m["status"]["migrationState"].get("sourceNode")
            per[src] = per.get(src, 0) + 1
        for node, n in per.items():
            self.peak_outbound[node] = max(self.peak_outbound.get(node, 0), n)

    def delete_migration(self, namespace: str, name: str) -> None:
        self.deleted.append(name)
        self.migrations.pop((namespace, name), None)

    def _advance(self, mig: Obj) -> None:
        if mig["status"]["phase"] in FINAL_PHASES:
            return
        if self.clock is not None:
            self.clock.now += 1.0
        name = mig["metadata"]["name"]
        self.polls[name] += 1
        if self.polls[name] < self.polls_to_finish:
            mig["status"]["phase"] = "Running"
            return
        ns, vmi_name = mig["metadata"]["namespace"], mig["spec"]["vmiName"]
        if vmi_name in self.fail_vms or mig["_dest"] is None:
            mig["status"]["phase"] = "Failed"
            mig["status"]["migrationState"]["failureReason"] = "injected failure"
            return
        mig["status"]["phase"] = "Succeeded"
        self.vmis[(ns, vmi_name)]["status"]["nodeName"] = mig["_dest"]

    def start_vm(self, namespace: str, name: str) -> None:
        self.calls.append(("start", name))
        if name in self.start_refused:
            raise ClusterError("start refused", status=500)
        vm = self.vms[(namespace, name)]
        if (namespace, name) in self.vmis:
            raise ClusterError("Operation cannot be fulfilled: VM is already running", status=409)
        vm["spec"]["runStrategy"] = "Always"
        self._bump(vm)
        vm["status"]["printableStatus"] = "Starting"
        self.pending_lifecycle[(namespace, name)] = ("start", self.lifecycle_polls)

    def stop_vm(self, namespace: str, name: str) -> None:
        self.calls.append(("stop", name))
        vm = self.vms[(namespace, name)]
        if (namespace, name) not in self.vmis:
            raise ClusterError("Operation cannot be fulfilled: VM is not running", status=409)
        vm["spec"]["runStrategy"] = "Halted"
        self._bump(vm)
        vm["status"]["printableStatus"] = "Stopping"
        self.pending_lifecycle[(namespace, name)] = ("stop", self.lifecycle_polls)

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
            pins = existing_node_pin(vm)
            node = pins[0] if pins else "old-node"
            self.vmis[(namespace, name)] = {
                "metadata": {"name": name, "namespace": namespace},
                "status": {"phase": "Running", "nodeName": node},
            }
            vm["status"]["printableStatus"] = "Running"

    @staticmethod
    def _bump(vm: Obj) -> None:
        vm["metadata"]["resourceVersion"] = str(int(vm["metadata"]["resourceVersion"]) + 1)

    def patch_vm_guarded(self, vm: Obj, ops: list[Obj]) -> Obj:
        meta = vm["metadata"]
        key = (meta["namespace"], meta["name"])
        live = self.vms[key]
        if self.conflicts > 0:
            self.conflicts -= 1
            if self.concurrent_edit is not None:
                self.concurrent_edit(live)
            self._bump(live)
            raise ClusterError("conflict on virtualmachines: the object has been modified", status=409)
        guard = {"op": "test", "path": "/metadata/resourceVersion", "value": meta.get("resourceVersion")}
        try:
            new = json_patch(live, [guard, *ops])
        except JsonPatchError as exc:
            raise ClusterError(f"the server rejected our request: {exc}", status=422) from exc
        self._bump(new)
        self.vms[key] = new
        self.patches.append((meta["name"], ops))
        return copy.deepcopy(new)


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
