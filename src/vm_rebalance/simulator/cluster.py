"""SimCluster: the simulated KubeVirt cluster behind the API layer: store, clock, controllers,
KubeVirt admission webhooks, virt-api lifecycle subresources, faults and the recorder.

The API layer (app.py) calls :meth:`SimCluster.admit`, :meth:`SimCluster.subresource` and
:meth:`SimCluster.api_fault`; tests build a cluster with ``manual_clock=True`` and call
:meth:`SimCluster.step` to advance simulated time deterministically.
"""

import collections
import contextlib
import gc
import logging
import random
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NamedTuple

from .clock import SimClock
from .crds import CrdController
from .faults import Fault, FaultInjector, TimedAction
from .kubecontrollers import KubeControllers, default_service_account, kubernetes_service
from .kubevirt import KUBEVIRT_VERSION, MIGRATION_FINALIZER, RUN_STRATEGIES, placement_of, run_strategy
from .lifecycle import FINAL_VMI_PHASES, NODES, PODS, VMIS, VMS, LifecycleController, _set_condition
from .metrics import MetricsController
from .migration import FINAL, VMIMS, MigrationController
from .rbac import bootstrap_objects
from .recorder import Recorder
from .resources import Registry
from .scheduler import NodeAccounting, Scheduler
from .signals import Signals
from .store import NotFoundError, Store, WatchEvent, copy_obj

__all__ = ["AdmissionError", "Fault", "SimCluster", "SubresourceError"]

Obj = dict[str, Any]
EVENTS = ("", "events")
NAMESPACES = ("", "namespaces")
SERVICE_ACCOUNTS = ("", "serviceaccounts")
SERVICES = ("", "services")
KUBEVIRTS = ("kubevirt.io", "kubevirts")
CONTROLLER_USER = "system:serviceaccount:kubevirt:kubevirt-controller"
MAX_EVENTS = 5000
CORDON_TAINT = "node.kubernetes.io/unschedulable"
_log = logging.getLogger(__name__)


class AdmissionError(Exception):
    """A KubeVirt webhook denial; the API layer wraps it as kube-apiserver does (kubevirt-api.md §8.9)."""

    def __init__(
        self, code: int, message: str, webhook: str, reason: str = "", causes: list[Obj] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.webhook = webhook
        self.reason = reason
        self.causes = causes or []


class SubresourceError(Exception):
    """A virt-api lifecycle subresource error, already in its final Status form."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message


def _conflict(name: str, message: str) -> SubresourceError:
    return SubresourceError(
        409, "Conflict", f'Operation cannot be fulfilled on virtualmachine.kubevirt.io "{name}": {message}'
    )


class _VmRequest(NamedTuple):
    """A start/stop/restart/migrate request on a VM, with the VM's state when it arrived."""

    namespace: str
    name: str
    body: Obj
    dry_run: bool
    vm: Obj
    vmi: Obj | None
    strategy: str
    vmi_phase: str
    vmi_final: bool
    requests: list[Obj]


class SimCluster:
    """A simulated KubeVirt cluster."""

    def __init__(
        self,
        *,
        time_scale: float = 1.0,
        seed: int = 0,
        manual_clock: bool = False,
        clock: SimClock | None = None,
        faults: FaultInjector | None = None,
        metrics_noise: float = 0.0,
        migration_bandwidth_bytes_per_second: float = 2**30,
        tick_wall_seconds: float = 0.02,
    ) -> None:
        self.clock = clock or SimClock(time_scale=time_scale, manual=manual_clock)
        self.seed = seed
        self.rng = random.Random(seed)
        self.store = Store(clock=self.clock.now_iso, seed=seed)
        self.faults = faults or FaultInjector(seed=seed)
        self.migration_bandwidth_bytes_per_second = migration_bandwidth_bytes_per_second
        self.duration_scale = 1.0
        """Multiplier on the controllers' built-in step durations (start, stop, migration setup)."""
        self.metrics_noise = metrics_noise
        self.tick_wall_seconds = tick_wall_seconds
        self.launcher_index: dict[str, set[tuple[str, str]]] = {}
        self._dirty_nodes: set[str] = set()
        self._ip_counter = 10
        self._mac_counter = 1
        self._events: collections.deque[tuple[str, str]] = collections.deque()
        self._thread: threading.Thread | None = None
        self.controller_errors: list[str] = []
        """Tracebacks of controller ticks that raised in the background thread (tests assert it stays empty)."""
        self._stop = threading.Event()
        self.store.subscribe(self._index_launcher)
        self.registry = Registry()
        """The served resource types: the simulator's own plus CRD-registered ones."""
        self.crds = CrdController(self)
        self.accounting = NodeAccounting(self.store)
        self.scheduler = Scheduler(self.store, self.accounting)
        self.recorder = Recorder(self.store, self.accounting, self.clock.now)
        self.lifecycle = LifecycleController(self)
        self.migrations = MigrationController(self)
        self.signals = Signals(self)
        """Load over time and the monitoring signals derived from it (module ``signals``)."""
        self.metrics = MetricsController(self)
        self.kube_controllers = KubeControllers(self)
        """kube-controller-manager's namespace, serviceaccount and deployment controllers."""
        for ns in ("default", "kubevirt", "kube-system"):
            self.store.create(
                NAMESPACES,
                {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}},
                    "spec": {"finalizers": ["kubernetes"]},
                    "status": {"phase": "Active"},
                },
            )
            self.store.create(SERVICE_ACCOUNTS, default_service_account(ns))
        self.store.create(SERVICES, kubernetes_service())
        for key, obj in bootstrap_objects():
            self.store.create(key, obj)

    # -- construction --------------------------------------------------------------------------------------------

    @classmethod
    def from_scenario(cls, scenario: str, *, time_scale: float = 1.0, seed: int = 0, **kwargs: Any) -> "SimCluster":
        """A cluster loaded from a built-in scenario name or a snapshot file path.

        Raises:
            ValueError: unknown scenario name or malformed file.
        """
        from .scenarios import SCENARIOS, generate_scenario, load_snapshot_file

        cluster = cls(time_scale=time_scale, seed=seed, **kwargs)
        if scenario in SCENARIOS:
            objects = generate_scenario(scenario, seed=seed)
        elif Path(scenario).exists():
            objects = load_snapshot_file(scenario)
        else:
            raise ValueError(f"unknown scenario {scenario!r}: not one of {sorted(SCENARIOS)} and not a file")
        cluster.load_objects(objects, take_ownership=True)
        return cluster

    def load_objects(self, objects: Iterable[Obj], *, take_ownership: bool = False) -> None:
        """Add objects as the initial state; running VMs lacking a VMI or launcher pod get them.

        ``take_ownership`` skips copying the input (the caller must not use the objects afterwards).
        """
        from .scenarios import calibrate_system_usage, load_into

        with self.store.lock:
            node_metrics = load_into(self, list(objects), take_ownership=take_ownership)
            self.ensure_kubevirt_cr()
            self.lifecycle.tick(self.clock.now())  # VM statuses now, not in the first background tick
            self.metrics.refresh(self.clock.now(), force=True)
            if node_metrics:
                calibrate_system_usage(self, node_metrics)
                self.metrics.refresh(self.clock.now(), force=True)
        self.recorder.mark_baseline()
        if self.store.count(VMS) >= 2000:
            gc.freeze()  # big initial states live as long as the cluster; stop the GC rescanning them

    def ensure_kubevirt_cr(self) -> None:
        """Create the KubeVirt CR (KubeVirt's defaults, v1.6.0) if the scenario had none."""
        with self.store.lock:
            if self.store.count(KUBEVIRTS):
                return
            self.store.create(KUBEVIRTS, default_kubevirt_cr())

    # -- running -------------------------------------------------------------------------------------------------

    def tick(self) -> None:
        """Run every controller once at the current simulated time."""
        now = self.clock.now()
        with self.store.lock:
            for action in self.faults.due_actions(now):
                self.apply_action(action, now)
            if self._dirty_nodes:
                self._sync_cordon_taints()
            self.crds.tick(now)
            self.kube_controllers.tick(now)
            self.lifecycle.tick(now)
            self.migrations.tick(now)
            self.lifecycle.tick(now)
            self.metrics.tick(now)

    def step(self, seconds: float, *, tick_seconds: float = 0.5) -> None:
        """Advance a manual clock by ``seconds`` in ``tick_seconds`` increments, ticking after each."""
        if not self.clock.manual:
            raise RuntimeError("step() needs a manual clock (SimCluster(manual_clock=True))")
        self.tick()
        remaining = seconds
        while remaining > 1e-9:
            delta = min(tick_seconds, remaining)
            self.clock.advance(delta)
            remaining -= delta
            self.tick()

    def run_until(
        self, predicate: Callable[[], bool], *, timeout_seconds: float = 3600.0, tick_seconds: float = 0.5
    ) -> bool:
        """Step a manual clock until ``predicate()`` holds or ``timeout_seconds`` of simulated time pass."""
        deadline = self.clock.now() + timeout_seconds
        self.tick()
        while not predicate():
            if self.clock.now() >= deadline:
                return False
            self.step(tick_seconds, tick_seconds=tick_seconds)
        return True

    def start(self) -> None:
        """Run the controllers in a background thread, ticking every ``tick_wall_seconds``."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="simulator-controllers", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the background controllers."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception as exc:  # a controller bug must not freeze the whole simulated cluster
                self.controller_errors.append(traceback.format_exc())
                self.recorder.record("controller-error", repr(exc))
                _log.exception("simulator controller tick failed")
            time.sleep(self.tick_wall_seconds)

    # -- helpers used by the controllers -------------------------------------------------------------------------

    def wake_at(self, sim_seconds: float) -> None:
        """Note that something is due at ``sim_seconds`` (controllers re-check active work every tick)."""

    def kubevirt_cr(self) -> Obj | None:
        """The KubeVirt CR (read-only), if any."""
        items, _ = self.store.list(KUBEVIRTS, copy=False)
        return items[0] if items else None

    def kubevirt_version(self) -> str:
        """The KubeVirt version the cluster reports (status.observedKubeVirtVersion)."""
        cr = self.kubevirt_cr()
        return str(((cr or {}).get("status") or {}).get("observedKubeVirtVersion") or KUBEVIRT_VERSION)

    def _sync_cordon_taints(self) -> None:
        """The node lifecycle controller's part: cordon (spec.unschedulable) ⇔ the unschedulable taint."""
        dirty = sorted(self._dirty_nodes)
        self._dirty_nodes.clear()
        for name in dirty:
            node = self.store.try_get(NODES, None, name, copy=False)
            if node is None:
                continue
            spec = node.get("spec") or {}
            taints = spec.get("taints") or []
            has = any(t.get("key") == CORDON_TAINT for t in taints)
            cordoned = bool(spec.get("unschedulable"))
            if has == cordoned:
                continue
            now_iso = self.clock.now_iso()

            def sync(o: Obj, cordoned: bool = cordoned, now_iso: str = now_iso) -> None:
                spec = o.setdefault("spec", {})
                kept = [t for t in spec.get("taints") or [] if t.get("key") != CORDON_TAINT]
                if cordoned:
                    kept.append({"key": CORDON_TAINT, "effect": "NoSchedule", "timeAdded": now_iso})
                if kept:
                    spec["taints"] = kept
                else:
                    spec.pop("taints", None)

            self.store.mutate(NODES, None, name, sync)
            self.recorder.record("cordon" if cordoned else "uncordon", name)

    def _index_launcher(self, event: WatchEvent) -> None:
        if event.key == NODES and event.type != "DELETED":
            self._dirty_nodes.add(event.obj["metadata"]["name"])
            return
        if event.key != PODS:
            return
        meta = event.obj["metadata"]
        vmi_uid = (meta.get("labels") or {}).get("kubevirt.io/created-by")
        if not vmi_uid:
            return
        ident = (meta.get("namespace") or "", meta["name"])
        if event.type == "DELETED":
            pods = self.launcher_index.get(vmi_uid)
            if pods is not None:
                pods.discard(ident)
                if not pods:
                    del self.launcher_index[vmi_uid]
        else:
            self.launcher_index.setdefault(vmi_uid, set()).add(ident)

    def live_launcher_pods(self, vmi: Obj) -> list[Obj]:
        """The VMI's virt-launcher pods that have not terminated."""
        out = []
        for ns, name in sorted(self.launcher_index.get(vmi["metadata"].get("uid", ""), ())):
            pod = self.store.try_get(PODS, ns, name, copy=False)
            if pod is not None and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
                out.append(pod)
        return out

    def bind_pod(self, ns: str, name: str, node: str, now_iso: str) -> None:
        """Bind a pod to a node as the scheduler's binding subresource does."""

        def bind(o: Obj) -> None:
            o["spec"]["nodeName"] = node
            st = o.setdefault("status", {})
            st["phase"] = "Pending"
            _set_condition(st, {"type": "PodScheduled", "status": "True"}, now_iso)

        self.store.mutate(PODS, ns, name, bind)

    def next_ip(self) -> str:
        """A fresh pod IP in 10.128.0.0/14."""
        self._ip_counter += 1
        n = self._ip_counter
        return f"10.{128 + (n >> 16) % 4}.{(n >> 8) & 255}.{n & 255}"

    def next_mac(self) -> str:
        """A fresh locally administered MAC address."""
        self._mac_counter += 1
        n = self._mac_counter
        return "02:" + ":".join(f"{(n >> s) & 255:02x}" for s in (32, 24, 16, 8, 0))

    def node_ip(self, node_name: str) -> str:
        """The node's InternalIP."""
        node = self.store.try_get(NODES, None, node_name, copy=False)
        for addr in ((node or {}).get("status") or {}).get("addresses") or []:
            if addr.get("type") == "InternalIP":
                return str(addr.get("address"))
        return "192.168.0.1"

    def emit_event(self, obj: Obj, reason: str, message: str, *, type_: str = "Normal", component: str = "") -> None:
        """Write a core/v1 Event about ``obj``."""
        meta = obj.get("metadata") or {}
        ns = meta.get("namespace") or "default"
        now_iso = self.clock.now_iso()
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{meta.get('name', 'unknown')}.{self.rng.getrandbits(64):016x}", "namespace": ns},
            "involvedObject": {
                "apiVersion": obj.get("apiVersion", ""),
                "kind": obj.get("kind", ""),
                "name": meta.get("name", ""),
                "namespace": meta.get("namespace", ""),
                "uid": meta.get("uid", ""),
                "resourceVersion": meta.get("resourceVersion", ""),
            },
            "reason": reason,
            "message": message,
            "type": type_,
            "count": 1,
            "firstTimestamp": now_iso,
            "lastTimestamp": now_iso,
            "source": {"component": component},
            "reportingComponent": component,
            "reportingInstance": "",
        }
        created = self.store.create(EVENTS, event)
        self._events.append((ns, created["metadata"]["name"]))
        while len(self._events) > MAX_EVENTS:
            old_ns, old_name = self._events.popleft()
            with contextlib.suppress(NotFoundError):
                self.store.delete(EVENTS, old_ns, old_name)

    def apply_action(self, action: TimedAction, now: float) -> None:
        """Carry out a scripted fault action."""
        now_iso = self.clock.iso(now)
        if action.action in ("node-not-ready", "node-ready"):
            self._set_node_readiness(action, now_iso)
        elif action.action in ("delete-vm", "delete-vmi"):
            ns, _, name = action.target.rpartition("/")
            key = VMS if action.action == "delete-vm" else VMIS
            with contextlib.suppress(NotFoundError):
                self.store.delete(key, ns or "default", name)
                self.recorder.record("vm-deleted" if key == VMS else "vmi-deleted", f"{ns or 'default'}/{name}")
        elif action.action in ("cordon", "uncordon", "node-unschedulable", "taint"):
            self._change_node_scheduling(action, now_iso)
        elif action.action == "evacuate-vm":
            ns, _, name = action.target.rpartition("/")
            vmi = self.store.try_get(VMIS, ns or "default", name, copy=False)
            node = ((vmi or {}).get("status") or {}).get("nodeName")
            if vmi is not None and node:

                def evacuate(o: Obj, node: str = node) -> None:
                    o.setdefault("status", {})["evacuationNodeName"] = node

                self.store.mutate(VMIS, ns or "default", name, evacuate)
                self.recorder.record("evacuate", f"{ns or 'default'}/{name}", node=node)
        elif action.action == "foreign-migration":
            self._start_foreign_migration(action)

    def _set_node_readiness(self, action: TimedAction, now_iso: str) -> None:
        """A node stops or resumes posting status: its Ready condition, unreachable taint and KubeVirt label."""
        ready = action.action == "node-ready"
        if self.store.try_get(NODES, None, action.target, copy=False) is None:
            return

        def flip(o: Obj) -> None:
            st = o.setdefault("status", {})
            if ready:
                _set_condition(
                    st,
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "KubeletReady",
                        "message": "kubelet is posting ready status",
                    },
                    now_iso,
                )
            else:
                _set_condition(
                    st,
                    {
                        "type": "Ready",
                        "status": "Unknown",
                        "reason": "NodeStatusUnknown",
                        "message": "Kubelet stopped posting node status.",
                    },
                    now_iso,
                )
            taints = [
                t for t in (o.get("spec") or {}).get("taints") or [] if t.get("key") != "node.kubernetes.io/unreachable"
            ]
            if not ready:
                taints.append({"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule", "timeAdded": now_iso})
            o.setdefault("spec", {})["taints"] = taints
            if not taints:
                o["spec"].pop("taints")
            o["metadata"].setdefault("labels", {})["kubevirt.io/schedulable"] = "true" if ready else "false"

        self.store.mutate(NODES, None, action.target, flip)
        self.recorder.record(action.action, action.target)

    def _change_node_scheduling(self, action: TimedAction, now_iso: str) -> None:
        """Cordon, uncordon, mark KubeVirt-unschedulable or taint a node."""
        if self.store.try_get(NODES, None, action.target, copy=False) is None:
            return

        def change(o: Obj, kind: str = action.action, extra: Obj = action.extra) -> None:
            spec = o.setdefault("spec", {})
            if kind == "cordon":
                spec["unschedulable"] = True
            elif kind == "uncordon":
                spec.pop("unschedulable", None)
            elif kind == "node-unschedulable":
                o["metadata"].setdefault("labels", {})["kubevirt.io/schedulable"] = "false"
            else:
                taint = dict(extra.get("taint") or {})
                taint.setdefault("effect", "NoSchedule")
                taint["timeAdded"] = now_iso
                spec["taints"] = [t for t in spec.get("taints") or [] if t.get("key") != taint.get("key")] + [taint]

        self.store.mutate(NODES, None, action.target, change)
        self.recorder.record(action.action, action.target)

    def _start_foreign_migration(self, action: TimedAction) -> None:
        """Another tool (a descheduler) creates a migration of the target VM, through admission."""
        ns, _, name = action.target.rpartition("/")
        vmim: Obj = {
            "apiVersion": "kubevirt.io/v1",
            "kind": "VirtualMachineInstanceMigration",
            "metadata": {"generateName": f"{name}-descheduler-", "namespace": ns or "default"},
            "spec": {"vmiName": name},
        }
        target = action.extra.get("target")
        if target:
            vmim["spec"]["addedNodeSelector"] = {"kubernetes.io/hostname": target}
        try:
            mutated = self.admit("create", VMIMS, vmim, None, "system:serviceaccount:kube-system:descheduler")
        except AdmissionError as exc:
            self.recorder.record("foreign-migration-refused", action.target, reason=exc.message)
            return
        created = self.store.create(VMIMS, mutated or vmim)
        self.recorder.record("foreign-migration", action.target, migration=created["metadata"]["name"])

    # -- API layer entry points ----------------------------------------------------------------------------------

    def api_fault(
        self, verb: str, key: tuple[str, str], namespace: str | None, name: str | None, subresource: str = ""
    ) -> Fault | None:
        """The injected fault the API layer must apply to this request, if any."""
        return self.faults.api_fault(verb, key, namespace, name, subresource, self.clock.now())

    def admit(self, verb: str, key: tuple[str, str], obj: Obj | None, old: Obj | None, user: str) -> Obj | None:
        """KubeVirt's mutating and validating webhooks; returns the mutated object when one changed it.

        Raises:
            AdmissionError: a webhook denied the request.
        """
        with self.store.lock:
            try:
                if key == VMIMS:
                    if verb == "create" and obj is not None:
                        return self._admit_vmim_create(obj, user)
                    if verb in ("update", "patch") and obj is not None and old is not None:
                        self._admit_vmim_update(obj, old)
                elif key == VMS and verb in ("create", "update", "patch") and obj is not None:
                    self._admit_vm(obj, old if verb != "create" else None)
            except AdmissionError as exc:
                name = ((obj or {}).get("metadata") or {}).get("name") or ""
                self.recorder.record("admission-denied", f"{verb} {key[1]} {name}", message=exc.message, user=user)
                raise
            return None

    def _admit_vm(self, obj: Obj, old: Obj | None) -> None:
        webhook = "virtualmachine-validator.kubevirt.io"
        spec = obj.get("spec") or {}
        has_running = spec.get("running") is not None
        strategy = spec.get("runStrategy")
        name = (obj.get("metadata") or {}).get("name", "")
        if has_running and strategy:
            raise _invalid(
                webhook,
                "spec.running",
                "Running and RunStrategy are mutually exclusive. Note that "
                "Running is deprecated, please use RunStrategy instead",
            )
        if not has_running and not strategy:
            raise _invalid(webhook, "spec.running", "RunStrategy must be specified")
        if strategy and strategy not in RUN_STRATEGIES:
            raise _invalid(webhook, "spec.runStrategy", f"Invalid RunStrategy ({strategy})")
        if old is None:
            return
        new_place = placement_of(((obj.get("spec") or {}).get("template") or {}).get("spec") or {})
        old_place = placement_of(((old.get("spec") or {}).get("template") or {}).get("spec") or {})
        if new_place != old_place and self._vmi_migrating(old["metadata"].get("namespace") or "", name):
            raise _invalid(
                webhook,
                "spec.template.spec",
                f"Cannot change the placement (nodeSelector, affinity, tolerations) of VirtualMachine "
                f"{name} while its VirtualMachineInstance is migrating; retry after the migration "
                "finishes",
            )

    def _vmi_migrating(self, ns: str, name: str) -> bool:
        for vmim in self.store.iter_objects(VMIMS):
            if (
                vmim["metadata"].get("namespace") == ns
                and (vmim.get("spec") or {}).get("vmiName") == name
                and ((vmim.get("status") or {}).get("phase") or "") not in FINAL
            ):
                return True
        return False

    def _admit_vmim_create(self, obj: Obj, user: str) -> Obj:
        new: Obj = copy_obj(obj)
        meta = new.setdefault("metadata", {})
        spec = new.get("spec") or {}
        vmi_name = spec.get("vmiName") or ""
        ns = meta.get("namespace") or "default"
        # mutating webhook (migrations-mutator.kubevirt.io)
        if vmi_name:
            meta.setdefault("labels", {})["kubevirt.io/vmi-name"] = vmi_name
        finalizers = meta.setdefault("finalizers", [])
        if MIGRATION_FINALIZER not in finalizers:
            finalizers.append(MIGRATION_FINALIZER)
        if "addedNodeSelector" in spec and _version_tuple(self.kubevirt_version()) < (1, 6):
            spec.pop("addedNodeSelector")  # not in the CRD's schema before v1.6: pruned, the migration goes anywhere
        # validating webhook (migration-create-validator.kubevirt.io)
        webhook = "migration-create-validator.kubevirt.io"
        if not vmi_name:
            raise _invalid(webhook, "spec.vmiName", "vmiName is missing")
        if spec.get("priority") and user != CONTROLLER_USER:
            raise AdmissionError(
                422,
                "Migration priority queue, only virt-controller is allowed to set priority field",
                webhook,
                "Invalid",
                [
                    {
                        "reason": "FieldValueForbidden",
                        "field": "spec.priority",
                        "message": "Migration priority queue, only virt-controller is allowed to set priority field",
                    }
                ],
            )
        vmi = self.store.try_get(VMIS, ns, vmi_name, copy=False)
        if vmi is None:
            raise AdmissionError(400, f'the VMI "{ns}/{vmi_name}" does not exist', webhook)
        if ((vmi.get("status") or {}).get("phase")) in FINAL_VMI_PHASES:
            raise AdmissionError(400, "Cannot migrate VMI in finalized state.", webhook)
        for cond in (vmi.get("status") or {}).get("conditions") or []:
            if cond.get("type") == "LiveMigratable" and cond.get("status") == "False":
                raise AdmissionError(
                    400,
                    f"Cannot migrate VMI, Reason: {cond.get('reason', '')}, Message: {cond.get('message', '')}",
                    webhook,
                )
        for other in self.store.iter_objects(VMIMS):
            if (
                other["metadata"].get("namespace") == ns
                and (other["metadata"].get("labels") or {}).get("kubevirt.io/vmi-name") == vmi_name
                and ((other.get("status") or {}).get("phase") or "") not in FINAL
            ):
                raise AdmissionError(
                    400,
                    f"in-flight migration detected. Active migration job "
                    f"({other['metadata'].get('uid')}) is currently already in progress for VMI "
                    f"{vmi_name}.",
                    webhook,
                )
        return new

    def _admit_vmim_update(self, obj: Obj, old: Obj) -> None:
        webhook = "migration-update-validator.kubevirt.io"
        if (obj.get("spec") or {}) != (old.get("spec") or {}):
            raise _invalid(webhook, "spec", "update of Migration object's spec is restricted")
        phase = (old.get("status") or {}).get("phase") or ""
        old_label = (old["metadata"].get("labels") or {}).get("kubevirt.io/vmi-name")
        new_label = ((obj.get("metadata") or {}).get("labels") or {}).get("kubevirt.io/vmi-name")
        if phase not in FINAL and old_label is not None and new_label != old_label:
            raise _invalid(webhook, "metadata.labels", "selector label can't be modified on an in-flight migration")

    def subresource(self, namespace: str, resource: str, name: str, action: str, body: Obj | None, user: str) -> None:
        """virt-api's PUT virtualmachines/{name}/{start,stop,restart,migrate}.

        Raises:
            SubresourceError: the Status virt-api answers with (404, 409, 400, 500).
        """
        body = body or {}
        if resource != "virtualmachines" or action not in ("start", "stop", "restart", "migrate"):
            raise SubresourceError(404, "NotFound", "the server could not find the requested resource")
        dry_run = bool(body.get("dryRun"))
        with self.store.lock:
            vm = self.store.try_get(VMS, namespace, name, copy=False)
            if vm is None:
                raise SubresourceError(404, "NotFound", f'virtualmachine.kubevirt.io "{name}" not found')
            vmi = self.store.try_get(VMIS, namespace, name, copy=False)
            vmi_phase = ((vmi or {}).get("status") or {}).get("phase") or ""
            request = _VmRequest(
                namespace=namespace,
                name=name,
                body=body,
                dry_run=dry_run,
                vm=vm,
                vmi=vmi,
                strategy=run_strategy(vm),
                vmi_phase=vmi_phase,
                vmi_final=vmi_phase in FINAL_VMI_PHASES,
                requests=(vm.get("status") or {}).get("stateChangeRequests") or [],
            )
            if action == "start":
                self._vm_start(request)
            elif action == "stop":
                self._vm_stop(request)
            elif action == "restart":
                self._vm_restart(request)
            else:
                self._vm_migrate(request, user)
            if not dry_run:
                self.recorder.record(f"subresource-{action}", f"{namespace}/{name}", user=user)

    def _vm_start(self, r: _VmRequest) -> None:
        """``start``: set runStrategy Always for a Halted VM, otherwise queue a Start request."""
        name = r.name
        if r.vmi is not None and not r.vmi_final and r.vmi_phase not in ("", "Unknown"):
            raise _conflict(name, "VM is already running")
        if r.strategy in ("Always", "Once"):
            raise _conflict(name, f"{r.strategy} does not support manual start requests")
        if r.strategy == "RerunOnFailure" and r.vmi_phase == "Failed":
            raise _conflict(name, "RerunOnFailure does not support starting VM from failed state")
        if r.strategy == "Halted" and not r.body.get("paused"):
            if not r.dry_run:
                self._patch_run_strategy(r.vm, "Always")
        else:
            if r.requests:
                raise _conflict(name, "unable to complete request: stop/start already underway")
            if not r.dry_run:
                self._add_requests(r.namespace, name, [{"action": "Start"}])

    def _vm_stop(self, r: _VmRequest) -> None:
        """``stop``: by runStrategy, a forced stop of a Halted VM, a Stop request, or runStrategy Halted."""
        name = r.name
        if r.strategy == "Halted":
            if r.vmi is None or r.vmi_final:
                raise _conflict(name, "VM is not running")
            if r.body.get("gracePeriod") is None:
                raise _conflict(name, "Halted only supports manual stop requests with a shorter graceperiod")
            if not r.dry_run:
                self.lifecycle.dirty.add((r.namespace, name))
        elif r.strategy in ("Manual", "RerunOnFailure"):
            if r.vmi is None or r.vmi_final:
                raise _conflict(name, "VM is not running")
            if r.requests:
                raise _conflict(name, "unable to complete request: stop/start already underway")
            if not r.dry_run:
                self._add_requests(r.namespace, name, [{"action": "Stop", "uid": r.vmi["metadata"]["uid"]}])
        elif not r.dry_run:
            self._patch_run_strategy(r.vm, "Halted")

    def _vm_restart(self, r: _VmRequest) -> None:
        """``restart``: queue a Stop and a Start request (only a forced restart takes a grace period, 0)."""
        name = r.name
        grace = r.body.get("gracePeriodSeconds")
        if grace is not None and int(grace) > 0:
            raise SubresourceError(400, "BadRequest", "For force restart, only gracePeriod=0 is supported for now")
        if r.strategy in ("Halted", "Once"):
            raise _conflict(name, f"RunStategy {r.strategy} does not support manual restart requests")
        if r.vmi is None:
            raise _conflict(name, "VM is not running: Halted")
        if r.requests:
            raise _conflict(name, "unable to complete request: stop/start already underway")
        if not r.dry_run:
            self._add_requests(
                r.namespace, name, [{"action": "Stop", "uid": r.vmi["metadata"]["uid"]}, {"action": "Start"}]
            )

    def _vm_migrate(self, r: _VmRequest, user: str) -> None:
        """``migrate``: create a migration of the running VMI, through admission."""
        if r.vmi is None or r.vmi_phase != "Running":
            raise _conflict(r.name, "VM is not running")
        vmim: Obj = {
            "apiVersion": "kubevirt.io/v1",
            "kind": "VirtualMachineInstanceMigration",
            "metadata": {"generateName": "kubevirt-migrate-vm-", "namespace": r.namespace},
            "spec": {"vmiName": r.name},
        }
        if r.body.get("addedNodeSelector"):
            vmim["spec"]["addedNodeSelector"] = dict(r.body["addedNodeSelector"])
        try:
            mutated = self.admit("create", VMIMS, vmim, None, user) or vmim
        except AdmissionError as exc:
            raise SubresourceError(
                500,
                "InternalError",
                f'Internal error occurred: virtualmachineinstancemigrations.kubevirt.io "Unknown" is '
                f'forbidden: admission webhook "{exc.webhook}" denied the request: {exc.message}',
            ) from exc
        if not r.dry_run:
            self.store.create(VMIMS, mutated)

    def _patch_run_strategy(self, vm: Obj, strategy: str) -> None:
        meta = vm["metadata"]
        uses_running = (vm.get("spec") or {}).get("runStrategy") is None and (vm.get("spec") or {}).get(
            "running"
        ) is not None

        def patch(o: Obj) -> None:
            if uses_running:
                o["spec"]["running"] = strategy == "Always"
            else:
                o["spec"]["runStrategy"] = strategy

        self.store.mutate(VMS, meta.get("namespace"), meta["name"], patch)

    def _add_requests(self, ns: str, name: str, requests: list[Obj]) -> None:
        def add(o: Obj) -> None:
            o.setdefault("status", {}).setdefault("stateChangeRequests", []).extend(requests)

        self.store.mutate(VMS, ns, name, add)


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.lstrip("v").split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def _invalid(webhook: str, field: str, message: str) -> AdmissionError:
    return AdmissionError(
        422, message, webhook, "Invalid", [{"reason": "FieldValueInvalid", "message": message, "field": field}]
    )


def default_kubevirt_cr(version: str = KUBEVIRT_VERSION) -> Obj:
    """A KubeVirt CR as virt-operator leaves it, with the upstream migration defaults made explicit."""
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "KubeVirt",
        "metadata": {"name": "kubevirt", "namespace": "kubevirt", "finalizers": ["foregroundDeleteKubeVirt"]},
        "spec": {
            "certificateRotateStrategy": {},
            "configuration": {
                "developerConfiguration": {"featureGates": []},
                "migrations": {
                    "parallelMigrationsPerCluster": 5,
                    "parallelOutboundMigrationsPerNode": 2,
                    "completionTimeoutPerGiB": 150,
                    "progressTimeout": 150,
                    "bandwidthPerMigration": "0Mi",
                    "allowAutoConverge": False,
                    "allowPostCopy": False,
                },
            },
            "customizeComponents": {},
            "imagePullPolicy": "IfNotPresent",
            "workloadUpdateStrategy": {"workloadUpdateMethods": ["LiveMigrate"]},
        },
        "status": {
            "phase": "Deployed",
            "observedKubeVirtVersion": version,
            "targetKubeVirtVersion": version,
            "observedKubeVirtRegistry": "quay.io/kubevirt",
            "operatorVersion": version,
            "conditions": [
                {
                    "type": "Available",
                    "status": "True",
                    "reason": "AllComponentsReady",
                    "message": "All components are ready.",
                }
            ],
        },
    }
