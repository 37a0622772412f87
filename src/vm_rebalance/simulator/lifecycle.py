"""virt-controller's VM and VMI controllers, simplified: runStrategy and stateChangeRequests decide
whether a VMI should exist; a VMI goes Pending → Scheduling → Scheduled → Running with its
virt-launcher pod, and stopping takes a few simulated seconds; the VM's status follows.

Work is event-driven: store events mark VMs dirty, timers wake them, so a 10,000-VM cluster at
rest costs nothing per tick.
"""

import contextlib
import heapq
from typing import TYPE_CHECKING, Any

from .kubevirt import (
    VM_FINALIZER,
    build_launcher_pod,
    build_vmi,
    launcher_image,
    live_migratable_condition,
    placement_of,
    run_strategy,
    running_container_status,
)
from .store import NotFoundError, WatchEvent

if TYPE_CHECKING:
    from .cluster import SimCluster

Obj = dict[str, Any]
Ident = tuple[str, str]
VMS = ("kubevirt.io", "virtualmachines")
VMIS = ("kubevirt.io", "virtualmachineinstances")
PODS = ("", "pods")
NODES = ("", "nodes")
PVCS = ("", "persistentvolumeclaims")
DVS = ("cdi.kubevirt.io", "datavolumes")
INSTANCETYPES = ("instancetype.kubevirt.io", "virtualmachineclusterinstancetypes")

FINAL_VMI_PHASES = frozenset({"Succeeded", "Failed"})
UNSCHEDULABLE_RETRY_SECONDS = 10.0


def _condition(obj: Obj, ctype: str) -> Obj | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == ctype:
            return dict(cond)
    return None


def _set_condition(status: Obj, cond: Obj, now_iso: str) -> None:
    conds = status.setdefault("conditions", [])
    for i, existing in enumerate(conds):
        if existing.get("type") == cond["type"]:
            if all(existing.get(k) == v for k, v in cond.items()):
                return
            merged = {**cond, "lastProbeTime": None, "lastTransitionTime": now_iso}
            if existing.get("status") == cond.get("status"):
                merged["lastTransitionTime"] = existing.get("lastTransitionTime", now_iso)
            conds[i] = merged
            return
    conds.append({**cond, "lastProbeTime": None, "lastTransitionTime": now_iso})


def _drop_condition(status: Obj, ctype: str) -> None:
    status["conditions"] = [c for c in status.get("conditions") or [] if c.get("type") != ctype]


def set_phase(vmi_status: Obj, phase: str, now_iso: str) -> None:
    """Set a VMI or VMIM phase and append its phaseTransitionTimestamp."""
    if vmi_status.get("phase") == phase:
        return
    vmi_status["phase"] = phase
    vmi_status.setdefault("phaseTransitionTimestamps", []).append({"phase": phase, "phaseTransitionTimestamp": now_iso})


class LifecycleController:
    """Drives VMs and VMIs; the cluster calls :meth:`tick` with the store lock held."""

    def __init__(self, cluster: "SimCluster") -> None:
        self.cluster = cluster
        self.store = cluster.store
        self.dirty: set[Ident] = set()
        self.timers: list[tuple[float, str, str]] = []
        self.due: dict[str, float] = {}  # VMI uid -> when its current step completes
        self.step_end: dict[str, float] = {}  # VMI uid -> when its previous step completed
        self.once_started: set[str] = set()  # VM uids whose Once run has begun
        self.unschedulable: set[Ident] = set()
        self.capacity_changed = False
        self.last_retry = 0.0
        self.start_faults: dict[str, str] = {}  # VMI uid -> "unschedulable" | "crash" (fault injection)
        self.store.subscribe(self._on_event)
        cluster.accounting.listeners.append(self._on_capacity)

    # -- feeds ---------------------------------------------------------------------------------------------------

    def _on_event(self, event: WatchEvent) -> None:
        key = event.key
        meta = event.obj["metadata"]
        if key in (VMS, VMIS):
            self.dirty.add((meta.get("namespace") or "", meta["name"]))
        elif key == PODS:
            owner = (meta.get("annotations") or {}).get("kubevirt.io/domain")
            if owner:
                self.dirty.add((meta.get("namespace") or "", owner))
            if event.type == "DELETED":
                self.capacity_changed = True
        elif key in (NODES, PVCS):
            self.capacity_changed = True

    def _on_capacity(self, node: str) -> None:
        self.capacity_changed = True

    def wake(self, ns: str, name: str, at: float) -> None:
        """Reconcile VM ``ns/name`` again at simulated time ``at``."""
        heapq.heappush(self.timers, (at, ns, name))

    # -- loop ----------------------------------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        """Reconcile everything that changed or whose timer expired."""
        while self.timers and self.timers[0][0] <= now:
            _, ns, name = heapq.heappop(self.timers)
            self.dirty.add((ns, name))
        if self.unschedulable and (self.capacity_changed or now - self.last_retry >= UNSCHEDULABLE_RETRY_SECONDS):
            self.dirty |= self.unschedulable
            self.last_retry = now
        self.capacity_changed = False
        rounds = 0
        while self.dirty and rounds < 5:  # a few passes let a change settle within one tick
            batch = sorted(self.dirty)
            self.dirty.clear()
            for ns, name in batch:
                self.reconcile(ns, name, now)
            rounds += 1

    def reconcile(self, ns: str, name: str, now: float) -> None:
        """Bring one VM and its VMI a step closer to what the VM asks for."""
        vm = self.store.try_get(VMS, ns, name, copy=False)
        vmi = self.store.try_get(VMIS, ns, name, copy=False)
        if vm is None:
            if vmi is not None:
                owners = vmi["metadata"].get("ownerReferences") or []
                if any(o.get("kind") == "VirtualMachine" for o in owners):
                    self._stop_vmi(vmi)  # garbage collection of an orphan
                self._progress_vmi(ns, name, now)
            return
        vm_meta = vm["metadata"]
        if vm_meta.get("deletionTimestamp"):
            if vmi is not None:
                self._stop_vmi(vmi)
                self._progress_vmi(ns, name, now)
            if self.store.try_get(VMIS, ns, name, copy=False) is None:
                self.store.mutate(
                    VMS,
                    ns,
                    name,
                    lambda o: o["metadata"].__setitem__(
                        "finalizers", [f for f in o["metadata"].get("finalizers") or [] if f != VM_FINALIZER]
                    ),
                )
                return
            self._update_vm_status(ns, name, now)
            return
        if VM_FINALIZER not in (vm_meta.get("finalizers") or []):
            self.store.mutate(VMS, ns, name, lambda o: o["metadata"].setdefault("finalizers", []).append(VM_FINALIZER))
        self._sync_run_state(ns, name, now)
        self._progress_vmi(ns, name, now)
        self._update_vm_status(ns, name, now)

    # -- runStrategy -------------------------------------------------------------------------------------------

    def _sync_run_state(self, ns: str, name: str, now: float) -> None:
        vm = self.store.get(VMS, ns, name, copy=False)
        vmi = self.store.try_get(VMIS, ns, name, copy=False)
        strategy = run_strategy(vm)
        vm_uid = vm["metadata"].get("uid", "")
        requests = list((vm.get("status") or {}).get("stateChangeRequests") or [])
        phase = (vmi.get("status") or {}).get("phase") if vmi else None
        stopping = bool(vmi and vmi["metadata"].get("deletionTimestamp"))

        if requests:
            head = requests[0]
            if head.get("action") == "Stop":
                uid = head.get("uid")
                if (
                    vmi is not None
                    and (uid is None or uid == vmi["metadata"].get("uid"))
                    and phase not in FINAL_VMI_PHASES
                ):
                    self._stop_vmi(vmi)
                    if strategy == "Always":
                        return  # keep the request until the VMI is gone so Always does not respawn it early
                    self._pop_request(ns, name)
                    return
                self._pop_request(ns, name)
                return
            if head.get("action") == "Start":
                if vmi is None:
                    self._create_vmi(ns, name)
                    self._pop_request(ns, name)
                elif phase in FINAL_VMI_PHASES and not stopping:
                    self._stop_vmi(vmi)
                elif not stopping:
                    self._pop_request(ns, name)
                return

        if strategy == "Halted":
            if vmi is not None:
                self._stop_vmi(vmi)
        elif strategy == "Always":
            if vmi is None:
                self._create_vmi(ns, name)
            elif phase in FINAL_VMI_PHASES:
                self._stop_vmi(vmi)
        elif strategy == "RerunOnFailure":
            if vmi is None and vm_uid not in self.once_started:
                self._create_vmi(ns, name)
            elif vmi is not None and phase == "Failed":
                self._stop_vmi(vmi)
                self.once_started.discard(vm_uid)
        elif strategy == "Once" and vmi is None and vm_uid not in self.once_started:
            self._create_vmi(ns, name)
        # Manual and WaitAsReceiver: only stateChangeRequests act.

    def _pop_request(self, ns: str, name: str) -> None:
        def pop(o: Obj) -> None:
            reqs = (o.get("status") or {}).get("stateChangeRequests") or []
            if reqs:
                reqs.pop(0)
            if not reqs:
                o.get("status", {}).pop("stateChangeRequests", None)

        self.store.mutate(VMS, ns, name, pop)
        self.dirty.add((ns, name))

    def _create_vmi(self, ns: str, name: str) -> None:
        vm = self.store.get(VMS, ns, name, copy=False)
        instancetype = None
        matcher = (vm.get("spec") or {}).get("instancetype")
        if matcher and matcher.get("name"):
            instancetype = self.store.try_get(INSTANCETYPES, None, matcher["name"], copy=False)
        vmi = build_vmi(vm, instancetype)
        created = self.store.create(VMIS, vmi)
        mode = self.cluster.faults.take_start_fault(ns, name)
        if mode is not None:
            self.start_faults[created["metadata"]["uid"]] = mode
        self.once_started.add(vm["metadata"].get("uid", ""))
        self.cluster.emit_event(
            vm,
            "SuccessfulCreate",
            f"Started the virtual machine by creating the new virtual machine instance {name}",
            component="virtualmachine-controller",
        )
        self.cluster.recorder.record("vmi-created", f"{ns}/{name}", uid=created["metadata"]["uid"])

    def _stop_vmi(self, vmi: Obj) -> None:
        if vmi["metadata"].get("deletionTimestamp"):
            return
        meta = vmi["metadata"]
        try:
            self.store.delete(VMIS, meta.get("namespace"), meta["name"])
        except NotFoundError:
            return
        self.cluster.recorder.record("vmi-stopping", f"{meta.get('namespace')}/{meta['name']}")

    # -- VMI progress ----------------------------------------------------------------------------------------------

    def _launcher_pods(self, ns: str, vmi_uid: str) -> list[Obj]:
        out = []
        for ident in sorted(self.cluster.launcher_index.get(vmi_uid, ())):
            pod = self.store.try_get(PODS, ident[0], ident[1], copy=False)
            if pod is not None:
                out.append(pod)
        return out

    def _start_step(self, uid: str, ns: str, name: str, now: float, low: float, high: float) -> None:
        """Start the timer of the next step (from when the previous one ended)."""
        start = min(self.step_end.pop(uid, now), now)
        due = start + self.cluster.rng.uniform(low, high) * self.cluster.duration_scale
        self.due[uid] = due
        self.wake(ns, name, due)
        if due <= now:
            self.dirty.add((ns, name))

    def _step_done(self, uid: str, ns: str, name: str, now: float, low: float, high: float) -> bool:
        """True once the current step's randomised duration has elapsed (starts the timer on first call)."""
        due = self.due.get(uid)
        if due is None:
            # A step starts when the previous one ended, not at this (possibly coarse) tick.
            start = min(self.step_end.pop(uid, now), now)
            due = start + self.cluster.rng.uniform(low, high) * self.cluster.duration_scale
            self.due[uid] = due
            if due > now:
                self.wake(ns, name, due)
                return False
        if now >= due:
            del self.due[uid]
            self.step_end[uid] = due
            self.dirty.add((ns, name))  # let the next step start within this tick if its time has come too
            return True
        return False

    def _progress_vmi(self, ns: str, name: str, now: float) -> None:
        vmi = self.store.try_get(VMIS, ns, name, copy=False)
        if vmi is None:
            return
        uid = vmi["metadata"].get("uid", "")
        status = vmi.get("status") or {}
        phase = status.get("phase") or ""
        now_iso = self.cluster.clock.iso(now)
        if vmi["metadata"].get("deletionTimestamp"):
            self._progress_stop(vmi, now)
            return
        if phase in ("", "Pending"):
            self._start_launcher(vmi, now)
            return
        if phase in FINAL_VMI_PHASES:
            return
        pods = self._launcher_pods(ns, uid)
        source = self._source_pod(vmi, pods)
        if source is None:
            if phase == "Scheduling" and not pods:
                self._start_launcher(vmi, now)
                return
            self._fail_vmi(ns, name, "PodNotExists", now_iso)
            return
        if phase == "Scheduling":
            if not (source.get("spec") or {}).get("nodeName"):
                self._schedule_pod(vmi, source, now)
                return
            if self._step_done(uid, ns, name, now, 4.0, 8.0):
                node = source["spec"]["nodeName"]
                self._set_pod_running(source, now_iso)

                def scheduled(o: Obj) -> None:
                    st = o.setdefault("status", {})
                    set_phase(st, "Scheduled", now_iso)
                    st["nodeName"] = node
                    o["metadata"].setdefault("labels", {})["kubevirt.io/nodeName"] = node
                    _set_condition(st, {"type": "PodScheduled", "status": "True"}, now_iso)
                    st["activePods"] = {source["metadata"]["uid"]: node}
                    st["launcherContainerImageVersion"] = launcher_image(source)
                    st["qosClass"] = "Burstable"
                    st["guestOSInfo"] = {}

                self.store.mutate(VMIS, ns, name, scheduled)
                self._start_step(uid, ns, name, now, 6.0, 12.0)
            return
        if phase == "Scheduled":
            if self._step_done(uid, ns, name, now, 6.0, 12.0):
                if self.start_faults.pop(uid, None) == "crash":
                    self._fail_vmi(ns, name, "virt-launcher crashed while starting the domain", now_iso)
                    vm = self.store.try_get(VMS, ns, name, copy=False)
                    if vm is not None:
                        self.cluster.emit_event(
                            vm,
                            "FailedCreate",
                            "virt-launcher crashed while starting the domain",
                            type_="Warning",
                            component="virt-handler",
                        )
                    return
                self._set_running(ns, name, now_iso)
            return
        if phase == "Running":
            self._live_update_placement(ns, name, now_iso)

    def _source_pod(self, vmi: Obj, pods: list[Obj]) -> Obj | None:
        """The launcher pod the VMI runs in (not a migration target), if it still exists."""
        status = vmi.get("status") or {}
        node = status.get("nodeName")
        candidates = [
            p
            for p in pods
            if "kubevirt.io/migrationJobUID" not in (p["metadata"].get("labels") or {})
            or (node and (p.get("spec") or {}).get("nodeName") == node)
        ]
        if node:
            on_node = [
                p
                for p in candidates
                if (p.get("spec") or {}).get("nodeName") == node
                and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
            ]
            return on_node[0] if on_node else None
        live = [p for p in candidates if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
        return live[0] if live else None

    def _start_launcher(self, vmi: Obj, now: float) -> None:
        meta = vmi["metadata"]
        ns, name = meta.get("namespace") or "", meta["name"]
        now_iso = self.cluster.clock.iso(now)
        pod = self.store.create(PODS, build_launcher_pod(vmi))

        def scheduling(o: Obj) -> None:
            set_phase(o.setdefault("status", {}), "Scheduling", now_iso)

        self.store.mutate(VMIS, ns, name, scheduling)
        self._schedule_pod(self.store.get(VMIS, ns, name, copy=False), pod, now)

    def _schedule_pod(self, vmi: Obj, pod: Obj, now: float) -> None:
        meta = vmi["metadata"]
        ns, name = meta.get("namespace") or "", meta["name"]
        now_iso = self.cluster.clock.iso(now)
        decision = self.cluster.scheduler.schedule(pod)
        if self.start_faults.get(meta.get("uid", "")) == "unschedulable":
            nodes = self.store.count(NODES)
            decision = type(decision)(
                None,
                f"0/{nodes} nodes are available: {nodes} node(s) didn't match Pod's node affinity/selector. "
                f"preemption: 0/{nodes} nodes are available: {nodes} Preemption is not helpful for scheduling.",
            )
        pod_ns, pod_name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        if decision.node is None:
            self.unschedulable.add((ns, name))
            already = _condition(vmi, "PodScheduled")
            if already and already.get("message") == decision.message:
                return

            def pod_pending(o: Obj) -> None:
                st = o.setdefault("status", {})
                st["phase"] = "Pending"
                _set_condition(
                    st,
                    {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": decision.message},
                    now_iso,
                )

            self.store.mutate(PODS, pod_ns, pod_name, pod_pending)

            def vmi_unschedulable(o: Obj) -> None:
                _set_condition(
                    o.setdefault("status", {}),
                    {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": decision.message},
                    now_iso,
                )

            self.store.mutate(VMIS, ns, name, vmi_unschedulable)
            self.cluster.emit_event(
                pod, "FailedScheduling", decision.message, type_="Warning", component="default-scheduler"
            )
            self.cluster.recorder.record("unschedulable", f"{ns}/{name}", reason=decision.message)
            return
        self.unschedulable.discard((ns, name))
        node = decision.node
        self.cluster.bind_pod(pod_ns, pod_name, node, now_iso)

        def vmi_scheduled(o: Obj) -> None:
            _drop_condition(o.setdefault("status", {}), "PodScheduled")

        self.store.mutate(VMIS, ns, name, vmi_scheduled)
        self.cluster.emit_event(
            pod, "Scheduled", f"Successfully assigned {pod_ns}/{pod_name} to {node}", component="default-scheduler"
        )
        self.cluster.recorder.record("scheduled", f"{ns}/{name}", node=node)
        self._start_step(meta.get("uid", ""), ns, name, now, 4.0, 8.0)

    def _set_pod_running(self, pod: Obj, now_iso: str) -> None:
        def running(o: Obj) -> None:
            st = o.setdefault("status", {})
            st["phase"] = "Running"
            st["startTime"] = st.get("startTime") or now_iso
            for ctype in (
                "Initialized",
                "Ready",
                "ContainersReady",
                "PodScheduled",
                "kubevirt.io/virtual-machine-unpaused",
            ):
                _set_condition(st, {"type": ctype, "status": "True"}, now_iso)
            st["containerStatuses"] = [running_container_status(o, now_iso)]
            st["podIP"] = self.cluster.next_ip()
            st["hostIP"] = self.cluster.node_ip(o["spec"].get("nodeName", ""))

        self.store.mutate(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"], running)

    def _set_running(self, ns: str, name: str, now_iso: str) -> None:
        vmi = self.store.get(VMIS, ns, name, copy=False)
        migratable = self.live_migratable(vmi)
        pods = self._launcher_pods(ns, vmi["metadata"].get("uid", ""))
        ip = ((pods[0].get("status") or {}).get("podIP") if pods else None) or self.cluster.next_ip()

        def running(o: Obj) -> None:
            st = o.setdefault("status", {})
            set_phase(st, "Running", now_iso)
            _set_condition(st, {"type": "Ready", "status": "True"}, now_iso)
            _set_condition(st, migratable, now_iso)
            st["migrationMethod"] = "LiveMigration" if migratable["status"] == "True" else "BlockMigration"
            st["interfaces"] = [
                {
                    "name": "default",
                    "ipAddress": ip,
                    "ipAddresses": [ip],
                    "mac": self.cluster.next_mac(),
                    "infoSource": "domain, guest-agent",
                    "interfaceName": "eth0",
                    "queueCount": 1,
                    "linkState": "up",
                }
            ]

        self.store.mutate(VMIS, ns, name, running)
        vm = self.store.try_get(VMS, ns, name, copy=False)
        if vm is not None:
            self.cluster.emit_event(vm, "Started", "VirtualMachineInstance started.", component="virt-handler")
        self.cluster.recorder.record("vmi-running", f"{ns}/{name}", node=vmi["status"].get("nodeName"))

    def live_migratable(self, vmi: Obj) -> Obj:
        """The VMI's LiveMigratable condition from its volumes and interfaces."""
        ns = vmi["metadata"].get("namespace") or ""
        return live_migratable_condition(
            vmi.get("spec") or {},
            lambda n: self.store.try_get(PVCS, ns, n, copy=False),
            lambda n: self.store.try_get(DVS, ns, n, copy=False),
        )

    def _live_update_placement(self, ns: str, name: str, now_iso: str) -> None:
        """Propagate a VM's changed nodeSelector/affinity/tolerations to its running VMI (LiveUpdate)."""
        vm = self.store.try_get(VMS, ns, name, copy=False)
        vmi = self.store.get(VMIS, ns, name, copy=False)
        if vm is None or ((vmi.get("status") or {}).get("migrationState") or {}).get("completed") is False:
            return
        template_spec = ((vm.get("spec") or {}).get("template") or {}).get("spec") or {}
        wanted = placement_of(template_spec)
        current = placement_of(vmi.get("spec") or {})
        if wanted == current:
            return

        def update(o: Obj) -> None:
            for field in ("nodeSelector", "affinity", "tolerations", "topologySpreadConstraints"):
                if field in wanted:
                    o["spec"][field] = wanted[field]
                else:
                    o["spec"].pop(field, None)

        self.store.mutate(VMIS, ns, name, update)

    def _fail_vmi(self, ns: str, name: str, reason: str, now_iso: str) -> None:
        def failed(o: Obj) -> None:
            st = o.setdefault("status", {})
            set_phase(st, "Failed", now_iso)
            st["reason"] = reason
            _set_condition(st, {"type": "Ready", "status": "False", "reason": reason}, now_iso)

        self.store.mutate(VMIS, ns, name, failed)
        self.cluster.recorder.record("vmi-failed", f"{ns}/{name}", reason=reason)

    def _progress_stop(self, vmi: Obj, now: float) -> None:
        meta = vmi["metadata"]
        ns, name, uid = meta.get("namespace") or "", meta["name"], meta.get("uid", "")
        phase = (vmi.get("status") or {}).get("phase") or ""
        pods = self._launcher_pods(ns, uid)
        running_pods = [p for p in pods if (p.get("spec") or {}).get("nodeName")]
        if phase not in FINAL_VMI_PHASES and running_pods and not self._step_done(uid, ns, name, now, 5.0, 10.0):
            return
        self.due.pop(uid, None)
        self.step_end.pop(uid, None)
        now_iso = self.cluster.clock.iso(now)
        for pod in pods:
            with contextlib.suppress(NotFoundError):
                self.store.delete(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"])

        def finish(o: Obj) -> None:
            st = o.setdefault("status", {})
            if st.get("phase") not in FINAL_VMI_PHASES:
                set_phase(st, "Succeeded", now_iso)
            _set_condition(st, {"type": "Ready", "status": "False", "reason": "PodTerminating"}, now_iso)
            o["metadata"]["finalizers"] = []

        self.store.mutate(VMIS, ns, name, finish)
        vm = self.store.try_get(VMS, ns, name, copy=False)
        if vm is not None:
            self.cluster.emit_event(
                vm, "Stopped", "The VirtualMachineInstance was shut down.", component="virt-handler"
            )
        self.cluster.recorder.record("vmi-stopped", f"{ns}/{name}")
        self.unschedulable.discard((ns, name))
        self.dirty.add((ns, name))

    # -- VM status -----------------------------------------------------------------------------------------------

    def _update_vm_status(self, ns: str, name: str, now: float) -> None:
        vm = self.store.try_get(VMS, ns, name, copy=False)
        if vm is None:
            return
        vmi = self.store.try_get(VMIS, ns, name, copy=False)
        now_iso = self.cluster.clock.iso(now)
        old = vm.get("status") or {}
        new = dict(old)
        new["conditions"] = [dict(c) for c in old.get("conditions") or []]
        strategy = run_strategy(vm)
        new["runStrategy"] = strategy
        new["printableStatus"] = self.printable_status(vm, vmi, now)
        new["created"] = vmi is not None
        ready_cond = _condition(vmi, "Ready") if vmi is not None else None
        new["ready"] = bool(ready_cond and ready_cond.get("status") == "True")
        if vmi is None:
            cond = {"type": "Ready", "status": "False", "reason": "VMINotExists", "message": "VMI does not exist"}
        elif ready_cond is None:
            cond = {
                "type": "Ready",
                "status": "False",
                "reason": "VMIConditionMissing",
                "message": "VMI does not have a ready condition",
            }
        else:
            cond = {k: v for k, v in ready_cond.items() if k in ("type", "status", "reason", "message")}
        _set_condition(new, cond, now_iso)
        if vmi is not None:
            for ctype in ("LiveMigratable", "PodScheduled"):
                c = _condition(vmi, ctype)
                if c is not None:
                    _set_condition(
                        new, {k: v for k, v in c.items() if k in ("type", "status", "reason", "message")}, now_iso
                    )
                else:
                    _drop_condition(new, ctype)
        else:
            _drop_condition(new, "LiveMigratable")
            _drop_condition(new, "PodScheduled")
        if not new["created"]:
            new.pop("created")
        if not new["ready"]:
            new.pop("ready")
        generation = vm["metadata"].get("generation", 1)
        new["observedGeneration"] = generation
        new["desiredGeneration"] = generation
        if vmi is not None:
            new["volumeSnapshotStatuses"] = old.get("volumeSnapshotStatuses") or [
                {
                    "name": v.get("name", ""),
                    "enabled": False,
                    "reason": "No VolumeSnapshotClass: Volume snapshots are not configured for this StorageClass",
                }
                for v in ((vm.get("spec") or {}).get("template") or {}).get("spec", {}).get("volumes") or []
            ]
        if new == old:
            return
        self.store.set_fields(VMS, ns, name, {"status": new})

    def printable_status(self, vm: Obj, vmi: Obj | None, now: float) -> str:
        """KubeVirt's printableStatus, first match wins (kubevirt-api.md §1.3)."""
        strategy = run_strategy(vm)
        requests = (vm.get("status") or {}).get("stateChangeRequests") or []
        if vm["metadata"].get("deletionTimestamp"):
            return "Terminating"
        phase = ((vmi or {}).get("status") or {}).get("phase") or ""
        final = phase in FINAL_VMI_PHASES
        stop_expected = strategy == "Halted" or any(r.get("action") == "Stop" for r in requests)
        if vmi is not None and not final and (vmi["metadata"].get("deletionTimestamp") or stop_expected):
            return "Stopping"
        if vmi is not None:
            state = (vmi.get("status") or {}).get("migrationState") or {}
            start = state.get("startTimestamp")
            end = state.get("endTimestamp")
            if (
                start
                and self.cluster.clock.sim_seconds_of(start) <= now + 1e-6
                and (not end or self.cluster.clock.sim_seconds_of(end) > now)
            ):
                return "Migrating"
            paused = _condition(vmi, "Paused")
            if phase == "Running":
                return "Paused" if paused and paused.get("status") == "True" else "Running"
            sched = _condition(vmi, "PodScheduled")
            if sched and sched.get("status") == "False" and sched.get("reason") == "Unschedulable":
                return "ErrorUnschedulable"
        start_expected = strategy in ("Always", "RerunOnFailure", "Once") or any(
            r.get("action") == "Start" for r in requests
        )
        if (
            vmi is None
            and start_expected
            and not (strategy == "Once" and vm["metadata"].get("uid") in self.once_started)
        ):
            return "Starting"
        if vmi is not None and phase in ("", "Pending", "Scheduling", "Scheduled"):
            return "Starting"
        if vmi is None or final:
            return "Stopped"
        return "Unknown"
