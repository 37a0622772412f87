"""virt-controller's migration controller, simplified: the VMIM phase machine with a target pod that
holds requests on the target, KubeVirt's parallel limits, a pre-copy duration model, cancellation by
deletion, failure and stall faults, and garbage collection of finished migrations.

Duration model: pre-copy rounds at the migration bandwidth; each round re-sends what the guest
dirtied during the previous one, until what is left fits in the max downtime (900 ms). A dirty
rate at or above the bandwidth never converges: the migration fails once it has run
completionTimeoutPerGiB × guest GiB seconds, unless allowPostCopy or allowAutoConverge is set.
"""

import contextlib
from typing import TYPE_CHECKING, Any

from .faults import MigrationFault
from .kubevirt import (
    DIRTY_RATE_ANNOTATION,
    MIGRATION_FINALIZER,
    build_launcher_pod,
    guest_memory_bytes,
    placement_of,
)
from .lifecycle import PODS, VMIS, VMS, _set_condition, set_phase
from .quantity import GIB, memory_bytes
from .scheduler import NODES, node_is_ready
from .store import NotFoundError, WatchEvent

if TYPE_CHECKING:
    from .cluster import SimCluster

Obj = dict[str, Any]
Ident = tuple[str, str]
VMIMS = ("kubevirt.io", "virtualmachineinstancemigrations")

FINAL = frozenset({"Succeeded", "Failed"})
NOT_RUNNING = frozenset({"", "Pending", "Succeeded", "Failed"})
HANDED_OFF = frozenset({"PreparingTarget", "TargetReady", "Running"})
UNSCHEDULABLE_TIMEOUT_SECONDS = 300.0
CATCH_ALL_PENDING_TIMEOUT_SECONDS = 900.0
FINISHED_MIGRATIONS_KEPT = 5
DEFAULT_BANDWIDTH_BYTES_PER_SECOND = GIB


class MigrationRun:
    """Controller-private bookkeeping of one migration."""

    def __init__(self, uid: str, order: int, fault: MigrationFault | None) -> None:
        self.uid = uid  # the VMIM's metadata.uid (the key of MigrationController.runs)
        self.order = order
        self.fault = fault
        self.source_node = ""
        self.source_pod = ""
        self.target_pod = ""
        self.target_node = ""
        self.due: float | None = None
        self.scheduling_since = 0.0
        self.step_started: float | None = None
        self.unschedulable_since: float | None = None
        self.will_fail: str | None = None


def migration_seconds(memory: int, bandwidth: float, dirty_rate: float, max_downtime_ms: int) -> float | None:
    """Pre-copy transfer time, or None when it does not converge."""
    if memory <= 0:
        return 1.0
    threshold = bandwidth * max_downtime_ms / 1000
    remaining = float(memory)
    total = 0.0
    for _ in range(40):
        round_seconds = remaining / bandwidth
        total += round_seconds
        dirtied = min(float(memory), dirty_rate * round_seconds)
        if dirtied <= threshold:
            return total + dirtied / bandwidth
        if dirtied >= remaining:
            return None
        remaining = dirtied
    return None


class MigrationController:
    """Drives VirtualMachineInstanceMigrations; the cluster calls :meth:`tick` with the store lock held."""

    def __init__(self, cluster: "SimCluster") -> None:
        self.cluster = cluster
        self.store = cluster.store
        self.active: set[Ident] = set()
        self.runs: dict[str, MigrationRun] = {}
        self.evacuating: set[Ident] = set()
        self._evacuation_attempts: dict[Ident, float] = {}
        self._order = 0
        self.store.subscribe(self._on_event)

    def _on_event(self, event: WatchEvent) -> None:
        if event.key == VMIS:
            if event.type != "DELETED" and (event.obj.get("status") or {}).get("evacuationNodeName"):
                meta = event.obj["metadata"]
                self.evacuating.add((meta.get("namespace") or "", meta["name"]))
            return
        if event.key != VMIMS:
            return
        meta = event.obj["metadata"]
        ident = (meta.get("namespace") or "", meta["name"])
        phase = (event.obj.get("status") or {}).get("phase") or ""
        if event.type == "DELETED":
            self.active.discard(ident)
            self.runs.pop(meta.get("uid", ""), None)
        elif phase not in FINAL or (meta.get("deletionTimestamp") and meta.get("finalizers")):
            self.active.add(ident)

    # -- configuration -------------------------------------------------------------------------------------------

    def config(self) -> Obj:
        """spec.configuration.migrations of the KubeVirt CR, with KubeVirt's defaults filled in."""
        cr = self.cluster.kubevirt_cr()
        conf = dict((((cr or {}).get("spec") or {}).get("configuration") or {}).get("migrations") or {})
        conf.setdefault("parallelMigrationsPerCluster", 5)
        conf.setdefault("parallelOutboundMigrationsPerNode", 2)
        conf.setdefault("completionTimeoutPerGiB", 150)
        conf.setdefault("progressTimeout", 150)
        conf.setdefault("bandwidthPerMigration", "0Mi")
        conf.setdefault("allowAutoConverge", False)
        conf.setdefault("allowPostCopy", False)
        conf.setdefault("maxDowntimeMs", 900)
        return conf

    # -- loop ----------------------------------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        """Advance every non-final migration, oldest first."""
        if self.evacuating:
            self._evacuate(now)
        if not self.active:
            return
        conf = self.config()
        items = []
        for ns, name in list(self.active):
            vmim = self.store.try_get(VMIMS, ns, name, copy=False)
            if vmim is None:
                self.active.discard((ns, name))
                continue
            items.append(vmim)
        for vmim in items:
            uid = vmim["metadata"].get("uid", "")
            if uid not in self.runs:
                self._order += 1
                vmi_name = (vmim.get("spec") or {}).get("vmiName", "")
                fault = self.cluster.faults.take_migration_fault(vmim["metadata"].get("namespace", ""), vmi_name)
                self.runs[uid] = MigrationRun(uid, self._order, fault)
        items.sort(key=lambda m: self.runs[m["metadata"]["uid"]].order)
        running, outbound = self._running_counts()
        for vmim in items:
            meta = vmim["metadata"]
            ns, name = meta.get("namespace") or "", meta["name"]
            current = self.store.try_get(VMIMS, ns, name, copy=False)
            if current is None:
                continue
            # Chain the steps whose time has come, so a coarse tick (a high time scale) does not stretch a
            # migration by one tick per phase; each step's timer starts when the previous step ended.
            for _ in range(8):
                before = (current.get("status") or {}).get("phase") or ""
                self._step(current, now, conf, running, outbound)
                running, outbound = self._running_counts()
                current = self.store.try_get(VMIMS, ns, name, copy=False)
                if current is None or ((current.get("status") or {}).get("phase") or "") == before:
                    break

    def _evacuate(self, now: float) -> None:
        """The evacuation controller: migrate VMIs whose status.evacuationNodeName names their node.

        The API layer's eviction interceptor sets that field when a drain evicts a virt-launcher pod.
        """
        for ident in sorted(self.evacuating):
            ns, name = ident
            vmi = self.store.try_get(VMIS, ns, name, copy=False)
            status = (vmi or {}).get("status") or {}
            target = status.get("evacuationNodeName")
            if vmi is None or not target:
                self._stop_evacuating(ident)
                continue
            if status.get("nodeName") != target:
                self.store.mutate(VMIS, ns, name, lambda o: o["status"].pop("evacuationNodeName", None))
                self._stop_evacuating(ident)
                continue
            in_flight = any(
                (m.get("spec") or {}).get("vmiName") == name
                for m in (self.store.try_get(VMIMS, a, b, copy=False) for a, b in self.active if a == ns)
                if m is not None
            )
            if in_flight or now - self._evacuation_attempts.get(ident, -1e9) < 5.0:
                continue
            self._evacuation_attempts[ident] = now
            vmim: Obj = {
                "apiVersion": "kubevirt.io/v1",
                "kind": "VirtualMachineInstanceMigration",
                "metadata": {
                    "generateName": "kubevirt-evacuation-",
                    "namespace": ns,
                    "annotations": {"kubevirt.io/evacuationMigration": target},
                },
                "spec": {"vmiName": name},
            }
            from .cluster import CONTROLLER_USER, AdmissionError

            try:
                mutated = self.cluster.admit("create", VMIMS, vmim, None, CONTROLLER_USER) or vmim
            except AdmissionError as exc:
                self.cluster.recorder.record("evacuation-blocked", f"{ns}/{name}", reason=exc.message)
                continue
            created = self.store.create(VMIMS, mutated)
            self.cluster.recorder.record("evacuation", f"{ns}/{name}", migration=created["metadata"]["name"])

    def _stop_evacuating(self, ident: Ident) -> None:
        self.evacuating.discard(ident)
        self._evacuation_attempts.pop(ident, None)

    def _running_counts(self) -> tuple[int, dict[str, int]]:
        total = 0
        outbound: dict[str, int] = {}
        for ns, name in self.active:
            vmim = self.store.try_get(VMIMS, ns, name, copy=False)
            if vmim is None:
                continue
            phase = (vmim.get("status") or {}).get("phase") or ""
            if phase in NOT_RUNNING:
                continue
            total += 1
            run = self.runs.get(vmim["metadata"].get("uid", ""))
            if run is not None and run.source_node:
                outbound[run.source_node] = outbound.get(run.source_node, 0) + 1
        return total, outbound

    def _step(self, vmim: Obj, now: float, conf: Obj, running: int, outbound: dict[str, int]) -> None:
        """Move one migration on by at most one phase, or fail it when its VMI, pods or nodes went away."""
        meta = vmim["metadata"]
        ns, name = meta.get("namespace") or "", meta["name"]
        run = self.runs[meta.get("uid", "")]
        phase = (vmim.get("status") or {}).get("phase") or ""
        if phase in FINAL:
            self._release_finalizer(ns, name)
            return
        vmi_name = (vmim.get("spec") or {}).get("vmiName", "")
        vmi = self.store.try_get(VMIS, ns, vmi_name, copy=False)

        if meta.get("deletionTimestamp"):
            self._abort(vmim, vmi, run, now)
            return
        if phase == "":
            self._accept(vmim, vmi, run, now)
            return
        vmi_phase = ((vmi or {}).get("status") or {}).get("phase")
        if vmi is None:
            self._fail(vmim, run, now, "Migration failed because vmi does not exist.", event_only=True)
            return
        if vmi["metadata"].get("deletionTimestamp") or vmi_phase != "Running":
            self._fail(vmim, run, now, "Migration failed vmi shutdown during migration.", event_only=True)
            return
        if run.fault is not None and run.fault.action == "stall" and phase == run.fault.phase:
            return
        if phase == "Pending":
            if run.fault is not None and run.fault.action == "quota":
                self._rejected_by_quota(vmim, vmi, now)
                return
            self._pending(vmim, vmi, run, now, conf, running, outbound)
            return
        if self._failed_in_flight(vmim, run, now, phase):
            return
        self._advance(vmim, vmi, run, now, conf, phase)

    def _accept(self, vmim: Obj, vmi: Obj | None, run: MigrationRun, now: float) -> None:
        """A new migration becomes Pending unless its VMI is missing or an older migration of it is unfinished."""
        meta = vmim["metadata"]
        ns, name, uid = meta.get("namespace") or "", meta["name"], meta.get("uid", "")
        vmi_name = (vmim.get("spec") or {}).get("vmiName", "")
        if vmi is None:
            self._fail(vmim, run, now, "Migration failed because vmi does not exist.", event_only=True)
            return
        for other in self.store.iter_objects(VMIMS):
            if (
                other["metadata"].get("uid") != uid
                and other["metadata"].get("namespace") == ns
                and (other.get("spec") or {}).get("vmiName") == vmi_name
                and ((other.get("status") or {}).get("phase") or "") not in FINAL
                and other["metadata"]["uid"] in self.runs
                and self.runs[other["metadata"]["uid"]].order < run.order
            ):
                self._fail(
                    vmim,
                    run,
                    now,
                    "VMI is not eligible for migration because another migration job is in progress.",
                    event_only=True,
                )
                return
        self._set_vmim_phase(ns, name, "Pending", self.cluster.clock.iso(now))

    def _failed_in_flight(self, vmim: Obj, run: MigrationRun, now: float, phase: str) -> bool:
        """Fail a scheduled migration whose target pod or either node went away, or that an injected fault
        fails in this phase (after a short delay); True when the migration does not go on this tick."""
        ns = vmim["metadata"].get("namespace") or ""
        if (
            phase != "Scheduling"
            and run.target_pod
            and self.store.try_get(PODS, ns, run.target_pod, copy=False) is None
        ):
            self._fail(vmim, run, now, "Migration target pod was removed during active migration.")
            return True
        if run.target_node and not self._node_ready(run.target_node):
            self._fail(vmim, run, now, "Migration failed because target pod shutdown during migration")
            return True
        if not self._node_ready(run.source_node):
            self._fail(vmim, run, now, f"source node {run.source_node} is not ready", source_reported=True)
            return True
        if run.fault is not None and run.fault.action == "fail" and phase == run.fault.phase:
            if run.due is None:
                run.due = now + 2.0 * self.cluster.duration_scale
                self.cluster.wake_at(run.due)
            if now >= run.due:
                self._fail(vmim, run, now, run.fault.reason, source_reported=True)
            return True
        return False

    def _advance(self, vmim: Obj, vmi: Obj, run: MigrationRun, now: float, conf: Obj, phase: str) -> None:
        """The next phase once the current one's time is up: Scheduling → … → Running → Succeeded/Failed."""
        ns, name = vmim["metadata"].get("namespace") or "", vmim["metadata"]["name"]
        vmi_name = (vmim.get("spec") or {}).get("vmiName", "")
        now_iso = self.cluster.clock.iso(now)
        if phase == "Scheduling":
            self._scheduling(vmim, vmi, run, now)
        elif phase == "Scheduled":
            if self._elapsed(run, now, 1.0):
                self._vmi_state(ns, vmi_name, run, now_iso, handed_off=True)
                self._set_vmim_phase(ns, name, "PreparingTarget", now_iso)
        elif phase == "PreparingTarget":
            if self._elapsed(run, now, 1.0):
                self._vmi_state(ns, vmi_name, run, now_iso, target_address=True)
                self._set_vmim_phase(ns, name, "TargetReady", now_iso)
        elif phase == "TargetReady" and self._elapsed(run, now, 0.5):
            self._start_transfer(vmim, vmi, run, now, conf)
        elif phase == "Running" and run.due is not None and now >= run.due:
            if run.will_fail:
                self._fail(vmim, run, now, run.will_fail, source_reported=True)
            else:
                self._succeed(vmim, vmi, run, now)

    def _elapsed(self, run: MigrationRun, now: float, seconds: float) -> bool:
        """True once ``seconds`` have passed since the current step started (starts its timer)."""
        if run.due is None:
            start = now if run.step_started is None else min(run.step_started, now)
            run.due = start + seconds * self.cluster.duration_scale
            self.cluster.wake_at(run.due)
        if now >= run.due:
            run.step_started = run.due
            run.due = None
            return True
        return False

    def _node_ready(self, node_name: str) -> bool:
        if not node_name:
            return True
        node = self.store.try_get(NODES, None, node_name, copy=False)
        return node is not None and node_is_ready(node)

    # -- phases --------------------------------------------------------------------------------------------------

    def _pending(
        self, vmim: Obj, vmi: Obj, run: MigrationRun, now: float, conf: Obj, running: int, outbound: dict[str, int]
    ) -> None:
        meta = vmim["metadata"]
        ns, name = meta.get("namespace") or "", meta["name"]
        source_node = (vmi.get("status") or {}).get("nodeName") or ""
        if running >= int(conf["parallelMigrationsPerCluster"]):
            return
        if outbound.get(source_node, 0) >= int(conf["parallelOutboundMigrationsPerNode"]):
            return
        if len(self.cluster.live_launcher_pods(vmi)) > 1:
            return
        now_iso = self.cluster.clock.iso(now)
        source_pods = [
            p for p in self.cluster.live_launcher_pods(vmi) if (p.get("spec") or {}).get("nodeName") == source_node
        ]
        run.source_node = source_node
        run.source_pod = source_pods[0]["metadata"]["name"] if source_pods else ""
        vm = self.store.try_get(VMS, ns, vmi["metadata"]["name"], copy=False)
        placement = None
        if vm is not None:
            placement = placement_of(((vm.get("spec") or {}).get("template") or {}).get("spec") or {})
        anti_affinity = {
            "labelSelector": {
                "matchExpressions": [
                    {"key": "kubevirt.io/created-by", "operator": "In", "values": [vmi["metadata"].get("uid", "")]}
                ]
            },
            "topologyKey": "kubernetes.io/hostname",
        }
        pod = build_launcher_pod(
            vmi,
            placement=placement,
            extra_labels={"kubevirt.io/migrationJobUID": meta.get("uid", "")},
            added_node_selector=(vmim.get("spec") or {}).get("addedNodeSelector") or {},
            extra_affinity_terms=[anti_affinity],
        )
        pod["metadata"].setdefault("annotations", {})["kubevirt.io/migrationJobName"] = name
        created = self.store.create(PODS, pod)
        run.target_pod = created["metadata"]["name"]
        run.scheduling_since = now
        run.step_started = now
        self._vmi_state(ns, vmi["metadata"]["name"], run, now_iso)
        self._set_vmim_phase(ns, name, "Scheduling", now_iso)
        self.cluster.recorder.record(
            "migration-scheduling", f"{ns}/{name}", vmi=vmi["metadata"]["name"], source=source_node
        )
        self._try_schedule_target(vmim, run, now)

    def _try_schedule_target(self, vmim: Obj, run: MigrationRun, now: float) -> None:
        ns = vmim["metadata"].get("namespace") or ""
        pod = self.store.try_get(PODS, ns, run.target_pod, copy=False)
        if pod is None:
            return
        if (pod.get("spec") or {}).get("nodeName"):
            return
        decision = self.cluster.scheduler.schedule(pod)
        now_iso = self.cluster.clock.iso(now)
        if run.fault is not None and run.fault.action == "unschedulable":
            nodes = self.store.count(NODES)
            decision = type(decision)(
                None,
                f"0/{nodes} nodes are available: {nodes} Insufficient devices.kubevirt.io/kvm. "
                f"preemption: 0/{nodes} nodes are available: {nodes} No preemption victims found for incoming pod.",
            )
        if decision.node is None:
            if run.unschedulable_since is None:
                run.unschedulable_since = now
                self.cluster.wake_at(now + UNSCHEDULABLE_TIMEOUT_SECONDS)

                def pending(o: Obj) -> None:
                    _set_condition(
                        o.setdefault("status", {}),
                        {
                            "type": "PodScheduled",
                            "status": "False",
                            "reason": "Unschedulable",
                            "message": decision.message,
                        },
                        now_iso,
                    )

                self.store.mutate(PODS, ns, run.target_pod, pending)
                self.cluster.emit_event(
                    pod, "FailedScheduling", decision.message, type_="Warning", component="default-scheduler"
                )
            return
        run.unschedulable_since = None
        run.target_node = decision.node
        run.step_started = now
        self.cluster.bind_pod(ns, run.target_pod, decision.node, now_iso)
        self.cluster.emit_event(
            pod,
            "Scheduled",
            f"Successfully assigned {ns}/{run.target_pod} to {decision.node}",
            component="default-scheduler",
        )

    def _scheduling(self, vmim: Obj, vmi: Obj, run: MigrationRun, now: float) -> None:
        meta = vmim["metadata"]
        ns, name = meta.get("namespace") or "", meta["name"]
        pod = self.store.try_get(PODS, ns, run.target_pod, copy=False)
        if pod is None:
            self._fail(vmim, run, now, "Migration target pod was removed during active migration.")
            return
        if not (pod.get("spec") or {}).get("nodeName"):
            self._try_schedule_target(vmim, run, now)
            pod = self.store.get(PODS, ns, run.target_pod, copy=False)
            if not (pod.get("spec") or {}).get("nodeName"):
                if (
                    run.unschedulable_since is not None
                    and now - run.unschedulable_since >= UNSCHEDULABLE_TIMEOUT_SECONDS
                ):
                    self._fail(
                        vmim,
                        run,
                        now,
                        f"Migration target pod for VMI [{ns}/{vmi['metadata']['name']}] is currently unschedulable.",
                    )
                elif now - run.scheduling_since >= CATCH_ALL_PENDING_TIMEOUT_SECONDS:
                    self._fail(vmim, run, now, "Migration target pod is pending for too long.")
                return
        if self._elapsed(run, now, 3.0):
            now_iso = self.cluster.clock.iso(now)
            self.cluster.lifecycle._set_pod_running(pod, now_iso)
            self._vmi_state(ns, vmi["metadata"]["name"], run, now_iso, target_known=True)
            self._set_vmim_phase(ns, name, "Scheduled", now_iso)

    def _start_transfer(self, vmim: Obj, vmi: Obj, run: MigrationRun, now: float, conf: Obj) -> None:
        meta = vmim["metadata"]
        ns, name = meta.get("namespace") or "", meta["name"]
        vmi_name = vmi["metadata"]["name"]
        now_iso = self.cluster.clock.iso(now)
        memory = guest_memory_bytes(vmi.get("spec") or {})
        bandwidth = (
            float(memory_bytes(conf.get("bandwidthPerMigration") or "0"))
            or self.cluster.migration_bandwidth_bytes_per_second
        )
        dirty = self._dirty_rate(vmi, memory)
        seconds = migration_seconds(memory, bandwidth, dirty, int(conf.get("maxDowntimeMs") or 900))
        timeout = float(conf["completionTimeoutPerGiB"]) * max(1.0, memory / GIB)
        if seconds is None and (conf.get("allowPostCopy") or conf.get("allowAutoConverge")):
            seconds = 2 * memory / bandwidth + 1.0
        if seconds is None or seconds > timeout:
            run.will_fail = f"Live migration is not completed after {int(timeout)} sec and has been aborted"
            seconds = timeout
        start = now if run.step_started is None else min(run.step_started, now)
        run.due = start + seconds * self.cluster.duration_scale + 0.5
        self.cluster.wake_at(run.due)

        def started(o: Obj) -> None:
            state = o.setdefault("status", {}).setdefault("migrationState", {})
            state["startTimestamp"] = now_iso
            state["mode"] = "PreCopy"

        self.store.mutate(VMIS, ns, vmi_name, started)
        self._set_vmim_phase(ns, name, "Running", now_iso)
        self.cluster.recorder.record(
            "migration-running",
            f"{ns}/{name}",
            vmi=vmi_name,
            source=run.source_node,
            target=run.target_node,
            seconds=seconds,
        )
        for action in self.cluster.faults.triggered_actions("migrating", ns, vmi_name):
            self.cluster.apply_action(action, now)
        for when, node in (("migration-target", run.target_node), ("migration-source", run.source_node)):
            for action in self.cluster.faults.triggered_node_actions(when, node):
                self.cluster.apply_action(action, now)

    def _dirty_rate(self, vmi: Obj, memory: int) -> float:
        annotations = vmi["metadata"].get("annotations") or {}
        value = annotations.get(DIRTY_RATE_ANNOTATION)
        if value is None:
            vm = self.store.try_get(VMS, vmi["metadata"].get("namespace"), vmi["metadata"]["name"], copy=False)
            value = ((vm or {}).get("metadata", {}).get("annotations") or {}).get(DIRTY_RATE_ANNOTATION)
        if value is None:
            return 0.02 * memory
        return float(memory_bytes(value))

    # -- VMI migration state -------------------------------------------------------------------------------------

    def _vmi_state(
        self,
        ns: str,
        vmi_name: str,
        run: MigrationRun,
        now_iso: str,
        *,
        handed_off: bool = False,
        target_known: bool = False,
        target_address: bool = False,
    ) -> None:
        vmim_uid = run.uid

        def update(o: Obj) -> None:
            st = o.setdefault("status", {})
            state = st.get("migrationState") or {}
            if state.get("migrationUid") != vmim_uid:
                state = {
                    "migrationUid": vmim_uid,
                    "sourceNode": run.source_node,
                    "sourcePod": run.source_pod,
                    "targetPod": run.target_pod,
                    "completed": False,
                    "failed": False,
                }
            if target_known or handed_off:
                state["targetNode"] = run.target_node
                state["targetPod"] = run.target_pod
                o["metadata"].setdefault("labels", {})["kubevirt.io/migrationTargetNodeName"] = run.target_node
            if target_address:
                state["targetNodeAddress"] = self.cluster.node_ip(run.target_node)
                state["targetNodeDomainDetected"] = True
            st["migrationState"] = state
            if run.target_node:
                pods = {
                    p["metadata"]["uid"]: p["spec"].get("nodeName")
                    for p in self.cluster.live_launcher_pods(o)
                    if p["spec"].get("nodeName")
                }
                st["activePods"] = pods

        self.store.mutate(VMIS, ns, vmi_name, update)

    # -- endings -------------------------------------------------------------------------------------------------

    def _succeed(self, vmim: Obj, vmi: Obj, run: MigrationRun, now: float) -> None:
        meta = vmim["metadata"]
        ns, name = meta.get("namespace") or "", meta["name"]
        vmi_name = vmi["metadata"]["name"]
        now_iso = self.cluster.clock.iso(now)
        target = run.target_node

        def moved(o: Obj) -> None:
            st = o.setdefault("status", {})
            state = st.setdefault("migrationState", {})
            state["endTimestamp"] = now_iso
            state["completed"] = True
            state["failed"] = False
            st["nodeName"] = target
            labels = o["metadata"].setdefault("labels", {})
            labels["kubevirt.io/nodeName"] = target
            labels.pop("kubevirt.io/migrationTargetNodeName", None)
            target_pod = self.store.try_get(PODS, ns, run.target_pod, copy=False)
            if target_pod is not None:
                st["activePods"] = {target_pod["metadata"]["uid"]: target}

        updated = self.store.mutate(VMIS, ns, vmi_name, moved)
        # Only now does the source pod go away and free its requests on the source node.
        if run.source_pod:
            with contextlib.suppress(NotFoundError):
                self.store.delete(PODS, ns, run.source_pod)
        self._finish(ns, name, "Succeeded", updated["status"]["migrationState"], now_iso)
        self.cluster.emit_event(
            vmi, "Migrated", f"The VirtualMachineInstance migrated to node {target}.", component="virt-handler"
        )
        self.cluster.emit_event(
            vmim,
            "SuccessfulMigration",
            "Source node reported migration succeeded",
            component="virtualmachine-migration-controller",
        )
        self.cluster.recorder.record(
            "migration-succeeded", f"{ns}/{name}", vmi=vmi_name, source=run.source_node, target=target
        )
        self._garbage_collect(ns, vmi_name)
        if run.fault is not None and run.fault.action == "crash-after":
            self.cluster.lifecycle._fail_vmi(ns, vmi_name, "the guest crashed after its migration", now_iso)
            self.cluster.emit_event(
                vmi,
                "Crashed",
                "The guest crashed on the target after the migration",
                type_="Warning",
                component="virt-handler",
            )
        self._vanish_if_asked(run, ns, name)

    def _fail(
        self,
        vmim: Obj,
        run: MigrationRun,
        now: float,
        reason: str,
        *,
        event_only: bool = False,
        source_reported: bool = False,
        aborted: bool = False,
    ) -> None:
        meta = vmim["metadata"]
        ns, name = meta.get("namespace") or "", meta["name"]
        vmi_name = (vmim.get("spec") or {}).get("vmiName", "")
        now_iso = self.cluster.clock.iso(now)
        state: Obj | None = None
        vmi = self.store.try_get(VMIS, ns, vmi_name, copy=False)
        vmim_uid = meta.get("uid", "")
        if vmi is not None and ((vmi.get("status") or {}).get("migrationState") or {}).get("migrationUid") == vmim_uid:

            def failed(o: Obj) -> None:
                st = o.setdefault("status", {})
                mstate = st.setdefault("migrationState", {})
                mstate["endTimestamp"] = now_iso
                # virt-handler marks a migration that ended, successfully or not, as completed.
                mstate["completed"] = True
                mstate["failed"] = True
                mstate["failureReason"] = reason
                if aborted:
                    mstate["abortRequested"] = True
                    mstate["abortStatus"] = "Succeeded"
                o["metadata"].get("labels", {}).pop("kubevirt.io/migrationTargetNodeName", None)
                source = self.store.try_get(PODS, ns, run.source_pod, copy=False) if run.source_pod else None
                if source is not None:
                    st["activePods"] = {source["metadata"]["uid"]: run.source_node}

            state = self.store.mutate(VMIS, ns, vmi_name, failed)["status"]["migrationState"]
        if run.target_pod:
            with contextlib.suppress(NotFoundError):
                self.store.delete(PODS, ns, run.target_pod)
        self._finish(ns, name, "Failed", state, now_iso, abort=aborted)
        self.cluster.emit_event(
            vmim, "FailedMigration", reason, type_="Warning", component="virtualmachine-migration-controller"
        )
        if vmi is not None and not event_only:
            self.cluster.emit_event(
                vmi,
                "MigrationFailed",
                reason
                if source_reported
                else f"VirtualMachineInstance migration uid {vmim_uid} failed. reason: {reason}",
                type_="Warning",
                component="virt-handler",
            )
        self.cluster.recorder.record(
            "migration-failed",
            f"{ns}/{name}",
            vmi=vmi_name,
            reason=reason,
            source=run.source_node,
            target=run.target_node,
        )
        self._garbage_collect(ns, vmi_name)
        self._vanish_if_asked(run, ns, name)

    def _vanish_if_asked(self, run: MigrationRun, ns: str, name: str) -> None:
        """The ``vanish`` fault: the finished VMIM is gone at once (garbage-collected or deleted by someone)."""
        if run.fault is None or run.fault.action != "vanish":
            return
        with contextlib.suppress(NotFoundError):
            self.store.mutate(VMIMS, ns, name, lambda o: o["metadata"].__setitem__("finalizers", []))
            self.store.delete(VMIMS, ns, name)
        self.cluster.recorder.record("migration-vanished", f"{ns}/{name}")

    def _rejected_by_quota(self, vmim: Obj, vmi: Obj, now: float) -> None:
        """The ``quota`` fault: the target pod is rejected by the namespace's ResourceQuota; the VMIM stays
        Pending with the condition KubeVirt sets (kubevirt-api.md; migration.go)."""
        meta = vmim["metadata"]
        ns, name = meta.get("namespace") or "", meta["name"]
        conds = (vmim.get("status") or {}).get("conditions") or []
        if any(c.get("type") == "migrationRejectedByResourceQuota" for c in conds):
            return
        now_iso = self.cluster.clock.iso(now)
        message = (
            f'pods "virt-launcher-{vmi["metadata"]["name"]}-target" is forbidden: exceeded quota: {ns}-quota, '
            "requested: requests.memory, used: requests.memory, limited: requests.memory"
        )

        def reject(o: Obj) -> None:
            _set_condition(
                o.setdefault("status", {}),
                {
                    "type": "migrationRejectedByResourceQuota",
                    "status": "True",
                    "reason": "migrationRejectedByResourceQuota",
                    "message": message,
                },
                now_iso,
            )

        self.store.mutate(VMIMS, ns, name, reject)
        self.cluster.emit_event(
            vmim,
            "FailedCreate",
            f"Error creating pod: {message}",
            type_="Warning",
            component="virtualmachine-migration-controller",
        )
        self.cluster.recorder.record("migration-quota-rejected", f"{ns}/{name}")

    def _abort(self, vmim: Obj, vmi: Obj | None, run: MigrationRun, now: float) -> None:
        phase = (vmim.get("status") or {}).get("phase") or ""
        ns = vmim["metadata"].get("namespace") or ""
        now_iso = self.cluster.clock.iso(now)
        if phase in HANDED_OFF and vmi is not None:
            state = (vmi.get("status") or {}).get("migrationState") or {}
            if not state.get("abortRequested"):

                def requested(o: Obj) -> None:
                    ms = o.setdefault("status", {}).setdefault("migrationState", {})
                    ms["abortRequested"] = True
                    ms["abortStatus"] = "Aborting"

                self.store.mutate(VMIS, ns, vmi["metadata"]["name"], requested)
                run.due = now + 1.5 * self.cluster.duration_scale
                self.cluster.wake_at(run.due)
                return
            if run.due is not None and now < run.due:
                return
            self._fail(vmim, run, now, "Migration failed due to being canceled", aborted=True)
        else:
            self._fail(vmim, run, now, "Migration failed due to being canceled", event_only=True)

        def cond(o: Obj) -> None:
            _set_condition(o.setdefault("status", {}), {"type": "migrationAbortRequested", "status": "True"}, now_iso)

        current = self.store.try_get(VMIMS, ns, vmim["metadata"]["name"], copy=False)
        if current is not None:
            self.store.mutate(VMIMS, ns, vmim["metadata"]["name"], cond)

    def _finish(self, ns: str, name: str, phase: str, state: Obj | None, now_iso: str, *, abort: bool = False) -> None:
        def final(o: Obj) -> None:
            st = o.setdefault("status", {})
            set_phase(st, phase, now_iso)
            if state is not None:
                st["migrationState"] = dict(state)
            if abort:
                _set_condition(st, {"type": "migrationAbortRequested", "status": "True"}, now_iso)
            o["metadata"]["finalizers"] = [f for f in o["metadata"].get("finalizers") or [] if f != MIGRATION_FINALIZER]

        self.store.mutate(VMIMS, ns, name, final)

    def _release_finalizer(self, ns: str, name: str) -> None:
        vmim = self.store.get(VMIMS, ns, name, copy=False)
        if MIGRATION_FINALIZER in (vmim["metadata"].get("finalizers") or []):
            self.store.mutate(
                VMIMS,
                ns,
                name,
                lambda o: o["metadata"].__setitem__(
                    "finalizers", [f for f in o["metadata"]["finalizers"] if f != MIGRATION_FINALIZER]
                ),
            )
        else:
            self.active.discard((ns, name))

    def _set_vmim_phase(self, ns: str, name: str, phase: str, now_iso: str) -> None:
        self.store.mutate(VMIMS, ns, name, lambda o: set_phase(o.setdefault("status", {}), phase, now_iso))

    def _garbage_collect(self, ns: str, vmi_name: str) -> None:
        """Keep only the newest finished migrations of a VMI (KubeVirt keeps 5)."""
        finished = [
            m
            for m in self.store.iter_objects(VMIMS)
            if m["metadata"].get("namespace") == ns
            and (m.get("spec") or {}).get("vmiName") == vmi_name
            and (m.get("status") or {}).get("phase") in FINAL
        ]
        if len(finished) <= FINISHED_MIGRATIONS_KEPT:
            return

        def age(m: Obj) -> tuple[str, int]:
            return (m["metadata"].get("creationTimestamp", ""), int(m["metadata"].get("resourceVersion", "0")))

        finished.sort(key=age)
        for old in finished[: len(finished) - FINISHED_MIGRATIONS_KEPT]:
            with contextlib.suppress(NotFoundError):
                self.store.delete(VMIMS, ns, old["metadata"]["name"])

    def expected_seconds(self, vmi: Obj) -> float | None:
        """How long the transfer phase of a migration of this VMI would take now (None: never converges)."""
        conf = self.config()
        memory = guest_memory_bytes(vmi.get("spec") or {})
        bandwidth = (
            float(memory_bytes(conf.get("bandwidthPerMigration") or "0"))
            or self.cluster.migration_bandwidth_bytes_per_second
        )
        return migration_seconds(memory, bandwidth, self._dirty_rate(vmi, memory), int(conf["maxDowntimeMs"]))
