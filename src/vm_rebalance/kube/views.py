"""Typed, read-only views of the VM, VMI, migration and node objects the executor and the service act on.

Raw Kubernetes JSON stops here: `vm_view`, `vmi_view`, `migration_view` and `node_view`
read the wire fields once (kubevirt-api.md §1–§3, §6) and the layers above work with frozen
dataclasses and enums. Malformed fields read as absent rather than raising: these views
follow objects the cluster serves right now, and an odd field must not crash an execution
half-way (the planner's conversion, kube/convert.py, is the strict reader of snapshots).
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Self

from vm_rebalance.model.cluster import HOSTNAME_LABEL

PIN_ANNOTATION = "vm-rebalance.io/pinned-to"
"""Set on a VM whose required node affinity vm-rebalance added (value: the node)."""
TEMP_PIN_ANNOTATION = "vm-rebalance.io/temporary-pin"
"""Set while a temporary affinity steers a live migration on KubeVirt < 1.6."""
MIGRATION_LABEL = "vm-rebalance.io/plan"
"""Set on the migrations vm-rebalance creates (value: the plan id's first 10 characters)."""
MIGRATION_TARGET_LABEL = "kubevirt.io/migrationTargetNodeName"
"""Set on a VMI by virt-controller when its migration is handed to the target (kubevirt-api.md §2.2)."""

Obj = Mapping[str, Any]


def _map(obj: Any, key: str) -> Mapping[str, Any]:
    value = obj.get(key) if isinstance(obj, Mapping) else None
    return value if isinstance(value, Mapping) else {}


def _str(value: Any) -> str | None:
    return str(value) if isinstance(value, str | int) and not isinstance(value, bool) and str(value) else None


def _strings(value: Any) -> Mapping[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): str(v) for k, v in value.items()}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def parse_time(value: Any) -> datetime | None:
    """RFC 3339 timestamp → aware datetime, or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


class _Enum(StrEnum):
    """A StrEnum whose unknown wire values read as its ``fallback`` member."""

    @classmethod
    def fallback(cls) -> Self:  # pragma: no cover - overridden
        raise NotImplementedError

    @classmethod
    def parse(cls, value: Any) -> Self:
        """The member for a wire value (the fallback for a value this version does not know)."""
        try:
            return cls(value if isinstance(value, str) else "")
        except ValueError:
            return cls.fallback()


class PrintableStatus(_Enum):
    """``VirtualMachine.status.printableStatus`` (kubevirt-api.md §1.3)."""

    STOPPED = "Stopped"
    PROVISIONING = "Provisioning"
    STARTING = "Starting"
    RUNNING = "Running"
    PAUSED = "Paused"
    STOPPING = "Stopping"
    TERMINATING = "Terminating"
    CRASH_LOOP_BACK_OFF = "CrashLoopBackOff"
    MIGRATING = "Migrating"
    UNKNOWN = "Unknown"
    ERROR_UNSCHEDULABLE = "ErrorUnschedulable"
    ERR_IMAGE_PULL = "ErrImagePull"
    IMAGE_PULL_BACK_OFF = "ImagePullBackOff"
    ERROR_PVC_NOT_FOUND = "ErrorPvcNotFound"
    DATA_VOLUME_ERROR = "DataVolumeError"
    WAITING_FOR_VOLUME_BINDING = "WaitingForVolumeBinding"
    WAITING_FOR_RECEIVER = "WaitingForReceiver"

    @classmethod
    def fallback(cls) -> Self:
        return cls.UNKNOWN

    @property
    def cannot_start(self) -> bool:
        """A status that says the VM is asked to run but cannot (it will not resolve by waiting a little)."""
        return self in _CANNOT_START


_CANNOT_START = frozenset(
    {
        PrintableStatus.ERROR_UNSCHEDULABLE,
        PrintableStatus.CRASH_LOOP_BACK_OFF,
        PrintableStatus.ERR_IMAGE_PULL,
        PrintableStatus.IMAGE_PULL_BACK_OFF,
        PrintableStatus.ERROR_PVC_NOT_FOUND,
        PrintableStatus.DATA_VOLUME_ERROR,
    }
)


class VmiPhase(_Enum):
    """``VirtualMachineInstance.status.phase`` (kubevirt-api.md §2.2)."""

    UNSET = ""
    PENDING = "Pending"
    SCHEDULING = "Scheduling"
    SCHEDULED = "Scheduled"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    UNKNOWN = "Unknown"
    WAITING_FOR_SYNC = "WaitingForSync"

    @classmethod
    def fallback(cls) -> Self:
        return cls.UNKNOWN


class MigrationPhase(_Enum):
    """``VirtualMachineInstanceMigration.status.phase`` (kubevirt-api.md §3.3)."""

    UNSET = ""
    PENDING = "Pending"
    SCHEDULING = "Scheduling"
    SCHEDULED = "Scheduled"
    PREPARING_TARGET = "PreparingTarget"
    TARGET_READY = "TargetReady"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    WAITING_FOR_SYNC = "WaitingForSync"
    SYNCHRONIZING = "Synchronizing"
    OTHER = "<other>"
    """A phase this version does not know: treated as in flight."""

    @classmethod
    def fallback(cls) -> Self:
        return cls.OTHER

    @property
    def final(self) -> bool:
        """Succeeded or Failed (KubeVirt's ``IsFinal``)."""
        return self in (MigrationPhase.SUCCEEDED, MigrationPhase.FAILED)


class PinOwner(StrEnum):
    """Whose required node pin a VM carries."""

    NONE = "none"
    VM_REBALANCE = "vm-rebalance"
    """Added by vm-rebalance (annotated as its own): the tool's to change or remove."""
    USER = "user"
    """The user's own: changed only with the user's explicit approval."""


# ------------------------------------------------------------------------------------------- VM


@dataclass(frozen=True, slots=True, kw_only=True)
class NodePins:
    """A VM's required placement rules as far as pins go, and whose they are.

    vm-rebalance's pin is the requirement ``kubernetes.io/hostname In [N]`` whose node N its
    annotation names (`PIN_ANNOTATION`, or `TEMP_PIN_ANNOTATION` while it steers a live
    migration); every other hostname requirement is the user's.
    """

    hostname_nodes: tuple[str, ...] = ()
    """Nodes named by ``kubernetes.io/hostname In`` requirements in the VM template's required node affinity."""
    marked: str | None = None
    """The node vm-rebalance says it pinned the VM to (``vm-rebalance.io/pinned-to``)."""
    temporary: str | None = None
    """The node a temporary live-migration pin points at (``vm-rebalance.io/temporary-pin``)."""
    other_required_terms: bool = False
    """Required node-affinity requirements other than hostname pins (zones, labels): always the user's."""
    user_terms: tuple[tuple[str, ...], ...] = ()
    """Per required node-selector term, the nodes its user hostname requirements allow (their
    intersection); a term without a user hostname requirement is left out, so empty means no user pin."""
    user_unrestricted_term: bool = False
    """Some required term has no user hostname requirement (it allows any node as far as pins go)."""

    @property
    def ours(self) -> tuple[str, ...]:
        """The nodes of vm-rebalance's own pins that are present in the affinity."""
        return tuple(n for n in (self.marked, self.temporary) if n and n in self.hostname_nodes)

    @property
    def owner(self) -> PinOwner:
        """Whose the hostname pin is: the user's as soon as one hostname requirement is not vm-rebalance's."""
        if not self.hostname_nodes:
            return PinOwner.NONE
        return PinOwner.USER if self.user_terms else PinOwner.VM_REBALANCE

    @property
    def user_nodes(self) -> tuple[str, ...]:
        """Nodes the user's own hostname pins name (in the order they appear)."""
        out: list[str] = []
        for term in self.user_terms:
            out += [n for n in term if n not in out]
        return tuple(out)

    def user_allows(self, node: str) -> bool:
        """Whether the user's hostname pins let the VM run on ``node`` (no user pin: yes)."""
        if not self.user_terms or self.user_unrestricted_term:
            return True
        return any(node in term for term in self.user_terms)


@dataclass(frozen=True, slots=True, kw_only=True)
class VmView:
    """A VirtualMachine as the executor and the service need it."""

    namespace: str
    name: str
    uid: str | None = None
    resource_version: str | None = None
    run_strategy: str = "Halted"
    """``spec.runStrategy``, or the deprecated ``spec.running`` mapped as KubeVirt maps it."""
    status: PrintableStatus = PrintableStatus.UNKNOWN
    printable_status: str = "Unknown"
    """``status.printableStatus`` as served (for people; decide on `status`)."""
    pins: NodePins = NodePins()
    affinity: Mapping[str, Any] | None = None
    """``spec.template.spec.affinity`` as served (opaque JSON: journalled so it can be restored exactly)."""
    tolerations: tuple[tuple[str, str, str, str], ...] = ()
    """(key, operator, value, effect) of the template's tolerations."""
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def stopped(self) -> bool:
        """Whether the VM reports Stopped."""
        return self.status is PrintableStatus.STOPPED

    @property
    def wants_running(self) -> bool:
        """Whether its runStrategy asks KubeVirt to keep it running (Always, RerunOnFailure)."""
        return self.run_strategy in WANTS_RUNNING


WANTS_RUNNING = frozenset({"Always", "RerunOnFailure"})
"""Run strategies under which KubeVirt itself keeps (re)starting the VM."""


def _hostname_pin(expr: Any) -> bool:
    return isinstance(expr, Mapping) and expr.get("key") == HOSTNAME_LABEL and expr.get("operator") == "In"


def template_spec(vm: Obj) -> Mapping[str, Any]:
    """``spec.template.spec`` of a VM object ({} when absent)."""
    return _map(_map(_map(vm, "spec"), "template"), "spec")


def required_node_terms(vm: Obj) -> list[Any] | None:
    """The VM template's required nodeSelectorTerms (None when it has no required node affinity)."""
    required = _map(
        _map(_map(template_spec(vm), "affinity"), "nodeAffinity"), "requiredDuringSchedulingIgnoredDuringExecution"
    )
    if not required:
        return None
    return _list(required.get("nodeSelectorTerms"))


def hostname_pins(vm: Obj) -> list[str]:
    """Nodes the VM is pinned to by a ``kubernetes.io/hostname In`` requirement."""
    nodes: list[str] = []
    for term in required_node_terms(vm) or ():
        for expr in _list(term.get("matchExpressions") if isinstance(term, Mapping) else None):
            if _hostname_pin(expr):
                nodes.extend(str(v) for v in _list(expr.get("values")))
    return nodes


def _ours(expr: Any, marks: set[str]) -> bool:
    """Whether a hostname requirement is one of vm-rebalance's pins (exactly ``In [marked node]``)."""
    values = _list(expr.get("values")) if isinstance(expr, Mapping) else []
    return len(values) == 1 and str(values[0]) in marks


def pins_of(vm: Obj) -> NodePins:
    """The pins of a VM object."""
    annotations = _strings(_map(vm, "metadata").get("annotations"))
    marked = annotations.get(PIN_ANNOTATION) or None
    temporary = annotations.get(TEMP_PIN_ANNOTATION) or None
    marks = {n for n in (marked, temporary) if n}
    other = False
    user_terms: list[tuple[str, ...]] = []
    unrestricted = False
    for term in required_node_terms(vm) or ():
        term_map = term if isinstance(term, Mapping) else {}
        exprs = _list(term_map.get("matchExpressions"))
        if any(not _hostname_pin(e) for e in exprs) or _list(term_map.get("matchFields")):
            other = True
        allowed: set[str] | None = None
        for expr in exprs:
            if _hostname_pin(expr) and not _ours(expr, marks):
                values = {str(v) for v in _list(expr.get("values"))}
                allowed = values if allowed is None else allowed & values
        if allowed is None:
            unrestricted = True
        else:
            user_terms.append(tuple(sorted(allowed)))
    return NodePins(
        hostname_nodes=tuple(hostname_pins(vm)),
        marked=marked,
        temporary=temporary,
        other_required_terms=other,
        user_terms=tuple(user_terms),
        user_unrestricted_term=unrestricted,
    )


def run_strategy_of(vm: Obj) -> str:
    """The VM's run strategy (``running: true/false`` mapped as KubeVirt maps it)."""
    spec = _map(vm, "spec")
    strategy = spec.get("runStrategy")
    if isinstance(strategy, str) and strategy:
        return strategy
    return "Always" if spec.get("running") is True else "Halted"


def vm_view(obj: Obj) -> VmView:
    """The view of a VirtualMachine object."""
    meta = _map(obj, "metadata")
    printable = _str(_map(obj, "status").get("printableStatus")) or "Unknown"
    return VmView(
        namespace=_str(meta.get("namespace")) or "",
        name=_str(meta.get("name")) or "",
        uid=_str(meta.get("uid")),
        resource_version=_str(meta.get("resourceVersion")),
        run_strategy=run_strategy_of(obj),
        status=PrintableStatus.parse(printable),
        printable_status=printable,
        pins=pins_of(obj),
        affinity=_map(template_spec(obj), "affinity") or None,
        annotations=_strings(meta.get("annotations")),
        tolerations=tuple(
            (
                str(t.get("key") or ""),
                str(t.get("operator") or "Equal"),
                str(t.get("value") or ""),
                str(t.get("effect") or ""),
            )
            for t in _list(template_spec(obj).get("tolerations"))
            if isinstance(t, Mapping)
        ),
    )


# ------------------------------------------------------------------------------------------- VMI


@dataclass(frozen=True, slots=True, kw_only=True)
class MigrationState:
    """``status.migrationState`` of a VMI (live) or of a finished migration object (a copy)."""

    migration_uid: str | None = None
    source_node: str | None = None
    target_node: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    completed: bool = False
    failed: bool = False
    abort_requested: bool = False
    failure_reason: str | None = None

    @property
    def in_progress(self) -> bool:
        """Started and not ended: completed, failed and an end time all end it (a failed one has ended)."""
        return self.started_at is not None and not (self.completed or self.failed or self.ended_at is not None)


def migration_state_of(raw: Any) -> MigrationState | None:
    """The view of a ``migrationState`` (None when absent)."""
    if not isinstance(raw, Mapping) or not raw:
        return None
    return MigrationState(
        migration_uid=_str(raw.get("migrationUid")),
        source_node=_str(raw.get("sourceNode")),
        target_node=_str(raw.get("targetNode")),
        started_at=parse_time(raw.get("startTimestamp")),
        ended_at=parse_time(raw.get("endTimestamp")),
        completed=raw.get("completed") is True,
        failed=raw.get("failed") is True,
        abort_requested=raw.get("abortRequested") is True,
        failure_reason=_str(raw.get("failureReason")),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class VmiView:
    """A VirtualMachineInstance: where the VM runs and whether it is migrating."""

    namespace: str
    name: str
    uid: str | None = None
    phase: VmiPhase = VmiPhase.UNSET
    node: str | None = None
    migration: MigrationState | None = None
    live_migratable: bool | None = None
    """The LiveMigratable condition; None when the VMI has none."""
    evacuation_node: str | None = None
    """``status.evacuationNodeName``: KubeVirt is evacuating the VMI off that node."""
    problem: str | None = None
    """Why it does not run, in KubeVirt's / the scheduler's words (PodScheduled=False, a Failed reason)."""

    @property
    def running(self) -> bool:
        """Whether the VMI is Running (migrating ones are Running too)."""
        return self.phase is VmiPhase.RUNNING

    @property
    def migrating(self) -> bool:
        """Whether the VMI reports a migration that started and has not ended."""
        return self.migration is not None and self.migration.in_progress


def vmi_view(obj: Obj) -> VmiView:
    """The view of a VirtualMachineInstance object."""
    meta = _map(obj, "metadata")
    status = _map(obj, "status")
    live: bool | None = None
    problem: str | None = None
    for cond in _list(status.get("conditions")):
        if not isinstance(cond, Mapping):
            continue
        if cond.get("type") == "LiveMigratable":
            live = cond.get("status") == "True"
        elif cond.get("type") in ("PodScheduled", "Synchronized") and cond.get("status") == "False":
            problem = problem or _str(cond.get("message")) or _str(cond.get("reason"))
    if problem is None and status.get("phase") == "Failed":
        problem = _str(status.get("reason")) or "the VM instance failed"
    return VmiView(
        namespace=_str(meta.get("namespace")) or "",
        name=_str(meta.get("name")) or "",
        uid=_str(meta.get("uid")),
        phase=VmiPhase.parse(status.get("phase")),
        node=_str(status.get("nodeName")),
        migration=migration_state_of(status.get("migrationState")),
        live_migratable=live,
        evacuation_node=_str(status.get("evacuationNodeName")),
        problem=problem,
    )


# ------------------------------------------------------------------------------------- migration


@dataclass(frozen=True, slots=True, kw_only=True)
class MigrationView:
    """A VirtualMachineInstanceMigration, whoever created it."""

    namespace: str
    name: str
    uid: str | None = None
    vmi_name: str = ""
    phase: MigrationPhase = MigrationPhase.UNSET
    created_at: datetime | None = None
    phase_times: tuple[tuple[MigrationPhase, datetime], ...] = ()
    state: MigrationState | None = None
    """The migration state KubeVirt copies onto the object when it finalizes (None before that)."""
    condition_messages: tuple[str, ...] = ()
    condition_types: tuple[str, ...] = ()
    """The types of the migration's conditions that are True (e.g. migrationRejectedByResourceQuota)."""
    selected_node: str | None = None
    """The node ``spec.addedNodeSelector`` asks for (KubeVirt >= 1.6), if any."""
    plan: str | None = None
    """The vm-rebalance plan label, when vm-rebalance created it."""

    @property
    def final(self) -> bool:
        """Succeeded or Failed."""
        return self.phase.final

    @property
    def failure_reason(self) -> str | None:
        """KubeVirt's explanation of a failure found on the object (the VMI may say more)."""
        if self.state is not None and self.state.failure_reason:
            return self.state.failure_reason
        return next(iter(self.condition_messages), None)

    @property
    def server_duration_seconds(self) -> float | None:
        """A finished migration's duration by the cluster's own clock (creation → last phase change)."""
        stamps = [t for _, t in self.phase_times]
        if not stamps:
            return None
        start = self.created_at or min(stamps)
        return max(0.0, (max(stamps) - start).total_seconds())


def migration_view(obj: Obj) -> MigrationView:
    """The view of a VirtualMachineInstanceMigration object."""
    meta = _map(obj, "metadata")
    spec = _map(obj, "spec")
    status = _map(obj, "status")
    times: list[tuple[MigrationPhase, datetime]] = []
    for item in _list(status.get("phaseTransitionTimestamps")):
        if isinstance(item, Mapping) and (when := parse_time(item.get("phaseTransitionTimestamp"))) is not None:
            times.append((MigrationPhase.parse(item.get("phase")), when))
    messages = tuple(
        str(c["message"]) for c in _list(status.get("conditions")) if isinstance(c, Mapping) and c.get("message")
    )
    types = tuple(
        str(c["type"])
        for c in _list(status.get("conditions"))
        if isinstance(c, Mapping) and c.get("type") and c.get("status") in ("True", None)
    )
    return MigrationView(
        namespace=_str(meta.get("namespace")) or "",
        name=_str(meta.get("name")) or "",
        uid=_str(meta.get("uid")),
        vmi_name=_str(spec.get("vmiName")) or "",
        phase=MigrationPhase.parse(status.get("phase")),
        created_at=parse_time(meta.get("creationTimestamp")),
        phase_times=tuple(times),
        state=migration_state_of(status.get("migrationState")),
        condition_messages=messages,
        condition_types=types,
        selected_node=_strings(spec.get("addedNodeSelector")).get(HOSTNAME_LABEL),
        plan=_strings(meta.get("labels")).get(MIGRATION_LABEL),
    )


# ------------------------------------------------------------------------------------------ node


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeView:
    """A Node as the executor and the service check it right before acting."""

    name: str
    resource_version: str | None = None
    unschedulable: bool = False
    """Cordoned (``spec.unschedulable``)."""
    ready: bool = False
    """The Ready condition is True."""
    kubevirt_schedulable: bool = False
    """virt-handler's ``kubevirt.io/schedulable=true`` label."""
    pressure: tuple[str, ...] = ()
    """Pressure conditions that are True (MemoryPressure, DiskPressure, PIDPressure)."""
    hard_taints: tuple[tuple[str, str, str], ...] = ()
    """(key, value, effect) of its NoSchedule / NoExecute taints (the cordon taint left out)."""

    @property
    def eligible_now(self) -> bool:
        """Ready, not cordoned and schedulable for VMs (what a target must be right before a move)."""
        return self.ready and not self.unschedulable and self.kubevirt_schedulable


PRESSURE_CONDITIONS = ("MemoryPressure", "DiskPressure", "PIDPressure")


def node_view(obj: Obj) -> NodeView:
    """The view of a Node object."""
    meta = _map(obj, "metadata")
    conditions = {
        c.get("type"): c.get("status") for c in _list(_map(obj, "status").get("conditions")) if isinstance(c, Mapping)
    }
    return NodeView(
        name=_str(meta.get("name")) or "",
        resource_version=_str(meta.get("resourceVersion")),
        unschedulable=_map(obj, "spec").get("unschedulable") is True,
        ready=conditions.get("Ready") == "True",
        kubevirt_schedulable=_strings(meta.get("labels")).get("kubevirt.io/schedulable") == "true",
        pressure=tuple(c for c in PRESSURE_CONDITIONS if conditions.get(c) == "True"),
        hard_taints=tuple(
            (str(t.get("key") or ""), str(t.get("value") or ""), str(t.get("effect") or ""))
            for t in _list(_map(obj, "spec").get("taints"))
            if isinstance(t, Mapping)
            and t.get("effect") in ("NoSchedule", "NoExecute")
            and t.get("key") != "node.kubernetes.io/unschedulable"
        ),
    )


# ------------------------------------------------------------------------------- in flight


@dataclass(frozen=True, slots=True, kw_only=True)
class InFlight:
    """One migration in flight, whoever started it, attributed to its source node where known."""

    namespace: str
    name: str
    """The migration object's name; '' when only the VMI's own status reports the migration."""
    vmi_name: str
    phase: MigrationPhase
    source: str | None = None
    target: str | None = None


def _state_for(migration: MigrationView, vmi: VmiView | None) -> MigrationState | None:
    """The VMI's migration state when it belongs to ``migration`` (not to an earlier one)."""
    if vmi is None or vmi.migration is None:
        return None
    uid = vmi.migration.migration_uid
    return vmi.migration if uid is None or migration.uid is None or uid == migration.uid else None


def in_flight(migrations: Iterable[MigrationView], vmis: Mapping[tuple[str, str], VmiView]) -> list[InFlight]:
    """Every unfinished migration, plus migrations only a VMI's ``status.migrationState`` reports.

    The source node comes from the migration's own state (copied there when it finalizes), else
    from its VMI's ``migrationState`` (KubeVirt writes it at hand-off), else from the node the
    VMI still runs on (a Pending migration has not moved it yet) — so a migration created by
    kubectl, the descheduler or an evacuation counts against its source node like ours do.
    ``vmis`` maps (namespace, name) to the VMIs known; a migration whose VMI is unknown keeps
    ``source`` None.
    """
    out: list[InFlight] = []
    covered: set[tuple[str, str]] = set()
    for m in migrations:
        if m.final:
            continue
        key = (m.namespace, m.vmi_name)
        covered.add(key)
        vmi = vmis.get(key)
        state = _state_for(m, vmi)
        source = (m.state.source_node if m.state else None) or (state.source_node if state else None)
        if source is None and vmi is not None:
            source = vmi.node
        target = (m.state.target_node if m.state else None) or (state.target_node if state else None)
        out.append(
            InFlight(
                namespace=m.namespace,
                name=m.name,
                vmi_name=m.vmi_name,
                phase=m.phase,
                source=source,
                target=target or m.selected_node,
            )
        )
    for key, vmi in sorted(vmis.items()):
        if key in covered or vmi.migration is None or not vmi.migration.in_progress:
            continue
        out.append(
            InFlight(
                namespace=vmi.namespace,
                name="",
                vmi_name=vmi.name,
                phase=MigrationPhase.RUNNING,
                source=vmi.migration.source_node or vmi.node,
                target=vmi.migration.target_node,
            )
        )
    return out


# ----------------------------------------------------------------------------------------- watch


class WatchEventType(_Enum):
    """The ``type`` of a watch event (kubevirt-api.md §8.5)."""

    ADDED = "ADDED"
    MODIFIED = "MODIFIED"
    DELETED = "DELETED"
    BOOKMARK = "BOOKMARK"
    ERROR = "ERROR"
    OTHER = "<other>"

    @classmethod
    def fallback(cls) -> Self:
        return cls.OTHER


@dataclass(frozen=True, slots=True, kw_only=True)
class WatchEvent:
    """One event of a watch stream: what happened and the resourceVersion to resume from."""

    type: WatchEventType
    resource_version: str | None = None
    """The object's resourceVersion (None for an ERROR event, whose object is a Status)."""


def watch_event(raw: Any) -> WatchEvent:
    """The view of a watch event ``{"type", "object"}``."""
    kind = WatchEventType.parse(raw.get("type") if isinstance(raw, Mapping) else None)
    obj = _map(raw, "object")
    version = None if kind is WatchEventType.ERROR else _str(_map(obj, "metadata").get("resourceVersion"))
    return WatchEvent(type=kind, resource_version=version)


def untolerated(node: NodeView, vm: VmView) -> list[str]:
    """The node's NoSchedule / NoExecute taints the VM does not tolerate (as ``key=value:effect``)."""
    out = []
    for key, value, effect in node.hard_taints:
        tolerated = False
        for t_key, op, t_value, t_effect in vm.tolerations:
            if t_effect and t_effect != effect:
                continue
            if not t_key:
                tolerated = op == "Exists"
            elif t_key == key:
                tolerated = op == "Exists" or t_value == value
            if tolerated:
                break
        if not tolerated:
            out.append(f"{key}={value}:{effect}" if value else f"{key}:{effect}")
    return out


def target_refusal(node: NodeView, vm: VmView) -> str | None:
    """Why ``node`` cannot take ``vm`` right now (None: nothing the node itself says against it)."""
    if not node.ready:
        return f"{node.name} is not Ready"
    if node.unschedulable:
        return f"{node.name} is cordoned"
    if not node.kubevirt_schedulable:
        return f"{node.name} is not schedulable for VMs (kubevirt.io/schedulable is not true)"
    taints = untolerated(node, vm)
    if taints:
        return f"{node.name} has taints the VM does not tolerate ({', '.join(taints)})"
    return None
