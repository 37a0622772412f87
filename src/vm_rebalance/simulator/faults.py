"""Scriptable faults: API errors and latency, failed or stalled migrations, nodes going NotReady, VMs
deleted mid-flight. Built from Python calls or a YAML file (format below); applied by the API layer
(:meth:`FaultInjector.api_fault`) and by the cluster's controllers.

YAML format (every section optional; times are simulated seconds since the simulation began)::

    seed: 7                      # for probabilistic API faults
    api:
      - verbs: [update, patch]   # get list watch create update patch delete, or omitted = all
        resources: [virtualmachines]   # plural, or group/plural; omitted = all
        subresource: start       # start stop restart migrate (subresources.kubevirt.io), status, eviction
        namespace: prod          # optional; name: optional too
        code: 409                # 400 403 404 409 429 500 503 504; omitted = latency only
        count: 2                 # how many requests it hits (default unlimited)
        probability: 0.5         # default 1
        latency: 0.3             # wall seconds added before answering
        hang: true               # never answer (client timeout)
        afterCommit: true        # carry the request out, then answer with the code / hang (ambiguous write)
        retryAfter: 5            # 429: the Retry-After header and details.retryAfterSeconds (default 1)
        from: 30                 # active from this simulated time ...
        until: 90                # ... until this one (an API outage window)
        message: "..."           # optional; the Kubernetes text for the code otherwise
    watches:
      - resources: [virtualmachineinstancemigrations]   # selectors as for api (namespace too)
        action: close            # close: end the stream; expire: send ERROR 410 Expired, then end
        afterEvents: 3           # after this many events (default 0: at once) ...
        afterSeconds: 2.5        # ... or this many wall seconds, whichever comes first
        count: 1                 # how many watch requests it hits (default unlimited)
    migrations:
      - action: fail             # fail | stall | unschedulable | quota | vanish | crash-after
        vm: web-01               # a VM (namespace optional: prod/web-01) ...
      - action: fail
        next: 2                  # ... or the next N migrations of any VM
        phase: Running           # where it fails or stalls (default Running; stall also Pending, Scheduling...)
      - action: foreign          # someone else's migration of a VM, created at a time
        vm: prod/web-01
        at: 60
        target: worker-05        # optional: spec.addedNodeSelector to this node
    nodes:
      - node: worker-3
        notReadyAt: 120          # Ready=Unknown with the unreachable taint
        readyAt: 600             # optional
        cordonAt: 30             # spec.unschedulable (uncordonAt to undo)
        unschedulableAt: 40      # label kubevirt.io/schedulable=false (virt-handler's verdict)
        taintAt: 50              # with taint: {key: k, value: v, effect: NoSchedule}
        notReadyWhen: migration-target   # or migration-source: when a migration to/from it starts Running
    vms:
      - vm: prod/web-02
        deleteAt: 60             # or deleteWhen: migrating (the moment one of its migrations starts Running)
        object: vmi              # delete the VMI instead of the VM (default vm)
        evacuateAt: 90           # status.evacuationNodeName = its node (as a drain's eviction does)
        failStart: unschedulable # its next starts: unschedulable (ErrorUnschedulable) | crash (VMI Failed)
        starts: 1                # how many starts fail (default every one)
"""

import random
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


@dataclass
class Fault:
    """An injected API fault the API layer must apply to one request."""

    status_code: int | None
    reason: str
    message: str
    latency_seconds: float = 0.0
    hang: bool = False
    after_commit: bool = False
    retry_after: int | None = 1


@dataclass
class WatchFault:
    """How an injected fault ends one watch stream."""

    action: str  # "close" | "expire"
    after_events: int = 0
    after_seconds: float | None = None


@dataclass
class WatchFaultRule:
    """Which watches are cut, and how."""

    action: str = "close"
    resources: frozenset[str] | None = None
    namespace: str | None = None
    after_events: int = 0
    after_seconds: float | None = None
    count: int | None = None
    hits: int = 0

    def matches(self, key: tuple[str, str], namespace: str | None) -> bool:
        if self.resources is not None:
            group, plural = key
            if plural not in self.resources and f"{group}/{plural}" not in self.resources:
                return False
        return self.namespace is None or namespace == self.namespace


_DEFAULT_TEXT: dict[int, tuple[str, str]] = {
    400: ("BadRequest", "the server rejected our request for an unknown reason"),
    403: ("Forbidden", "forbidden: injected by the simulator"),
    404: ("NotFound", "the server could not find the requested resource"),
    409: (
        "Conflict",
        'Operation cannot be fulfilled on {resource} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
    ),
    429: ("TooManyRequests", "Too many requests, please try again later."),
    500: ("InternalError", "Internal error occurred: injected by the simulator"),
    503: ("ServiceUnavailable", "the server is currently unable to handle the request"),
    504: (
        "Timeout",
        "the server was unable to return a response in the time allotted, but may still be processing the request",
    ),
}


@dataclass
class ApiFaultRule:
    """Which requests fail, and how."""

    verbs: frozenset[str] | None = None
    resources: frozenset[str] | None = None
    namespace: str | None = None
    name: str | None = None
    status_code: int | None = None
    message: str | None = None
    reason: str | None = None
    count: int | None = None
    probability: float = 1.0
    latency_seconds: float = 0.0
    hang: bool = False
    subresource: str | None = None
    after_commit: bool = False
    retry_after: int | None = 1
    active_from: float | None = None
    active_until: float | None = None
    hits: int = 0

    def matches(
        self,
        verb: str,
        key: tuple[str, str],
        namespace: str | None,
        name: str | None,
        subresource: str = "",
        now: float | None = None,
    ) -> bool:
        """Whether this rule selects the request (ignoring count and probability)."""
        if self.verbs is not None and verb not in self.verbs:
            return False
        if self.subresource is not None and subresource != self.subresource:
            return False
        if now is not None and (
            (self.active_from is not None and now < self.active_from)
            or (self.active_until is not None and now >= self.active_until)
        ):
            return False
        if self.resources is not None:
            group, plural = key
            if plural not in self.resources and f"{group}/{plural}" not in self.resources:
                return False
        if self.namespace is not None and namespace != self.namespace:
            return False
        return self.name is None or name == self.name

    def fault(self, key: tuple[str, str], name: str | None) -> Fault:
        """The Fault this rule produces for a request."""
        if self.status_code is None:
            return Fault(None, "", "", self.latency_seconds, self.hang, self.after_commit, self.retry_after)
        reason, template = _DEFAULT_TEXT.get(self.status_code, ("InternalError", "injected by the simulator"))
        group, plural = key
        resource = f"{plural}.{group}" if group else plural
        message = self.message or template.format(resource=resource, name=name or "")
        return Fault(
            self.status_code,
            self.reason or reason,
            message,
            self.latency_seconds,
            self.hang,
            self.after_commit,
            self.retry_after,
        )


@dataclass
class MigrationFault:
    """Fail or stall migrations of one VM, or the next ``remaining`` migrations of any VM."""

    action: str  # "fail" | "stall" | "unschedulable" | "quota" | "vanish" | "crash-after"
    vm: str | None = None
    namespace: str | None = None
    remaining: int = 1
    phase: str = "Running"
    reason: str = (
        "Live migration failed error encountered during MigrateToURI3 libvirt api call: "
        "virError(Code=1, Domain=10, Message='internal error: migration fault injected by the simulator')"
    )


@dataclass
class TimedAction:
    """Something that happens to the cluster at a simulated time or on a trigger."""

    action: str  # node-not-ready node-ready cordon uncordon node-unschedulable taint delete-vm delete-vmi
    # evacuate-vm foreign-migration
    target: str  # node name or namespace/name
    at: float | None = None
    when: str | None = None  # "migrating" (VMs); "migration-target" | "migration-source" (nodes)
    done: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class StartFault:
    """The next starts of a VM fail: its VMI is never scheduled, or it crashes before Running."""

    vm: str
    namespace: str | None
    mode: str  # "unschedulable" | "crash"
    remaining: int | None = None


@dataclass
class FaultInjector:
    """All the faults scripted for one simulation."""

    seed: int = 0
    api_rules: list[ApiFaultRule] = field(default_factory=list)
    migration_faults: list[MigrationFault] = field(default_factory=list)
    actions: list[TimedAction] = field(default_factory=list)
    watch_rules: list[WatchFaultRule] = field(default_factory=list)
    start_faults: list[StartFault] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()

    # -- scripting -----------------------------------------------------------------------------------------------

    def inject_api_error(
        self,
        status_code: int | None = 500,
        *,
        verbs: list[str] | str | None = None,
        resources: list[str] | str | None = None,
        namespace: str | None = None,
        name: str | None = None,
        count: int | None = None,
        probability: float = 1.0,
        latency_seconds: float = 0.0,
        hang: bool = False,
        message: str | None = None,
        subresource: str | None = None,
        after_commit: bool = False,
        retry_after: int | None = 1,
        active_from: float | None = None,
        active_until: float | None = None,
    ) -> ApiFaultRule:
        """Make matching API requests fail with ``status_code`` (None: only add latency or hang).

        ``after_commit`` carries the request out first (an ambiguous write: the client cannot tell);
        ``active_from`` / ``active_until`` bound it to a window of simulated time.
        """
        rule = ApiFaultRule(
            verbs=_set(verbs),
            resources=_set(resources),
            namespace=namespace,
            name=name,
            status_code=status_code,
            message=message,
            count=count,
            probability=probability,
            latency_seconds=latency_seconds,
            hang=hang,
            subresource=subresource,
            after_commit=after_commit,
            retry_after=retry_after,
            active_from=active_from,
            active_until=active_until,
        )
        with self._lock:
            self.api_rules.append(rule)
        return rule

    def cut_watches(
        self,
        action: str = "close",
        *,
        resources: list[str] | str | None = None,
        namespace: str | None = None,
        after_events: int = 0,
        after_seconds: float | None = None,
        count: int | None = None,
    ) -> WatchFaultRule:
        """End matching watch streams early: ``close`` them, or ``expire`` them with an ERROR 410 event."""
        if action not in ("close", "expire"):
            raise ValueError(f"watch fault action must be close or expire, not {action!r}")
        rule = WatchFaultRule(action, _set(resources), namespace, after_events, after_seconds, count)
        with self._lock:
            self.watch_rules.append(rule)
        return rule

    def fail_starts(self, vm: str, mode: str = "unschedulable", *, starts: int | None = None) -> StartFault:
        """Make the next ``starts`` starts of ``vm`` fail (None: all): ``unschedulable`` or ``crash``."""
        if mode not in ("unschedulable", "crash"):
            raise ValueError(f"failStart must be unschedulable or crash, not {mode!r}")
        namespace, name = _split(vm)
        fault = StartFault(name or "", namespace, mode, starts)
        with self._lock:
            self.start_faults.append(fault)
        return fault

    def node_action(
        self, action: str, node: str, *, at: float | None = None, when: str | None = None, **extra: Any
    ) -> None:
        """A scripted change of a node at a simulated time or on a trigger (see TimedAction.action)."""
        with self._lock:
            self.actions.append(TimedAction(action, node, at=at, when=when, extra=dict(extra)))

    def foreign_migration(self, vm: str, *, at: float, target: str | None = None) -> None:
        """Someone else (a descheduler, an admin) migrates ``vm`` at simulated time ``at``."""
        with self._lock:
            self.actions.append(TimedAction("foreign-migration", vm, at=at, extra={"target": target}))

    def inject_latency(self, seconds: float, **selectors: Any) -> ApiFaultRule:
        """Delay matching API requests by ``seconds`` of wall time."""
        return self.inject_api_error(None, latency_seconds=seconds, **selectors)

    def fail_migration(
        self, vm: str | None = None, *, count: int = 1, phase: str = "Running", reason: str | None = None
    ) -> MigrationFault:
        """Fail the next ``count`` migrations of ``vm`` (``name`` or ``ns/name``; None = any VM)."""
        return self._migration_fault("fail", vm, count, phase, reason)

    def stall_migration(self, vm: str | None = None, *, count: int = 1, phase: str = "Running") -> MigrationFault:
        """Freeze the next ``count`` migrations of ``vm`` in ``phase`` until they are cancelled."""
        return self._migration_fault("stall", vm, count, phase, None)

    def _migration_fault(
        self, action: str, vm: str | None, count: int, phase: str, reason: str | None
    ) -> MigrationFault:
        namespace, name = _split(vm)
        fault = MigrationFault(action, name, namespace, count, phase)
        if reason:
            fault.reason = reason
        with self._lock:
            self.migration_faults.append(fault)
        return fault

    def node_not_ready(self, node: str, *, at: float, ready_at: float | None = None) -> None:
        """Make ``node`` NotReady at simulated time ``at`` (and Ready again at ``ready_at``)."""
        with self._lock:
            self.actions.append(TimedAction("node-not-ready", node, at=at))
            if ready_at is not None:
                self.actions.append(TimedAction("node-ready", node, at=ready_at))

    def delete_vm(self, vm: str, *, at: float | None = None, when: str | None = None, vmi: bool = False) -> None:
        """Delete a VM (``ns/name``), or only its VMI, at a simulated time, or ``when="migrating"``."""
        if at is None and when is None:
            raise ValueError("delete_vm needs at= or when=")
        with self._lock:
            self.actions.append(TimedAction("delete-vmi" if vmi else "delete-vm", vm, at=at, when=when))

    def evacuate_vm(self, vm: str, *, at: float) -> None:
        """Mark a VM's VMI for evacuation at a time (status.evacuationNodeName, as a drain's eviction does)."""
        with self._lock:
            self.actions.append(TimedAction("evacuate-vm", vm, at=at))

    # -- applying ------------------------------------------------------------------------------------------------

    def api_fault(
        self,
        verb: str,
        key: tuple[str, str],
        namespace: str | None,
        name: str | None,
        subresource: str = "",
        now: float | None = None,
    ) -> Fault | None:
        """The fault for this request, if any rule fires (consumes counts, draws probabilities)."""
        with self._lock:
            for rule in self.api_rules:
                if rule.count is not None and rule.hits >= rule.count:
                    continue
                if not rule.matches(verb, key, namespace, name, subresource, now):
                    continue
                if rule.probability < 1.0 and self._rng.random() >= rule.probability:
                    continue
                rule.hits += 1
                return rule.fault(key, name)
        return None

    def watch_fault(self, key: tuple[str, str], namespace: str | None) -> WatchFault | None:
        """How a new watch of ``key`` ends early, if a rule says so (consumes counts)."""
        with self._lock:
            for rule in self.watch_rules:
                if rule.count is not None and rule.hits >= rule.count:
                    continue
                if rule.matches(key, namespace):
                    rule.hits += 1
                    return WatchFault(rule.action, rule.after_events, rule.after_seconds)
        return None

    def take_start_fault(self, namespace: str, vm: str) -> str | None:
        """How a new start of ``namespace/vm`` fails, if it should (consumes one use)."""
        with self._lock:
            for fault in self.start_faults:
                if fault.vm != vm or fault.namespace not in (None, namespace):
                    continue
                if fault.remaining is not None:
                    if fault.remaining <= 0:
                        continue
                    fault.remaining -= 1
                return fault.mode
        return None

    def triggered_node_actions(self, when: str, node: str) -> list[TimedAction]:
        """Node actions triggered by ``when`` (migration-target / migration-source) on ``node`` (each once)."""
        with self._lock:
            out = [a for a in self.actions if not a.done and a.when == when and a.target == node]
            for action in out:
                action.done = True
            return out

    def take_migration_fault(self, namespace: str, vm: str) -> MigrationFault | None:
        """The fault assigned to a new migration of ``namespace/vm`` (consumes one use)."""
        with self._lock:
            for specific in (True, False):
                for fault in self.migration_faults:
                    if fault.remaining <= 0 or (fault.vm is not None) != specific:
                        continue
                    if fault.vm is not None and (fault.vm != vm or fault.namespace not in (None, namespace)):
                        continue
                    fault.remaining -= 1
                    return fault
        return None

    def due_actions(self, now: float) -> list[TimedAction]:
        """Timed actions whose time has come (each returned once)."""
        with self._lock:
            due = [a for a in self.actions if not a.done and a.at is not None and a.at <= now]
            for action in due:
                action.done = True
            return due

    def triggered_actions(self, when: str, namespace: str, vm: str) -> list[TimedAction]:
        """Trigger-based actions for a VM (each returned once)."""
        with self._lock:
            out = []
            for action in self.actions:
                if action.done or action.when != when:
                    continue
                ns, name = _split(action.target)
                if name == vm and ns in (None, namespace):
                    action.done = True
                    out.append(action)
            return out


def _set(value: list[str] | str | None) -> frozenset[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    items = frozenset(value)
    return None if "*" in items else items


def _split(ref: str | None) -> tuple[str | None, str | None]:
    if ref is None:
        return None, None
    if "/" in ref:
        ns, name = ref.split("/", 1)
        return ns, name
    return None, ref


_MIGRATION_ACTIONS = ("fail", "stall", "unschedulable", "quota", "vanish", "crash-after")


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def faults_from_document(doc: dict[str, Any]) -> FaultInjector:
    """Build an injector from the YAML/JSON document described in this module's docstring.

    Raises:
        ValueError: an unknown section, key or action.
    """
    known = {"seed", "api", "watches", "migrations", "nodes", "vms"}
    unknown = set(doc) - known
    if unknown:
        raise ValueError(f"unknown fault sections: {sorted(unknown)}")
    injector = FaultInjector(seed=int(doc.get("seed", 0)))
    for item in doc.get("api") or []:
        _add_api_fault(injector, item)
    for item in doc.get("watches") or []:
        _add_watch_fault(injector, item)
    for item in doc.get("migrations") or []:
        _add_migration_fault(injector, item)
    for item in doc.get("nodes") or []:
        _add_node_faults(injector, item)
    for item in doc.get("vms") or []:
        _add_vm_faults(injector, item)
    return injector


_API_KEYS = {
    "verbs",
    "resources",
    "subresource",
    "namespace",
    "name",
    "code",
    "count",
    "probability",
    "latency",
    "hang",
    "afterCommit",
    "retryAfter",
    "from",
    "until",
    "message",
}


def _add_api_fault(injector: FaultInjector, item: dict[str, Any]) -> None:
    """One item of the ``api`` section: an error, latency or hang on matching requests."""
    _check_keys(item, _API_KEYS, "api")
    injector.inject_api_error(
        item.get("code"),
        verbs=item.get("verbs"),
        resources=item.get("resources"),
        namespace=item.get("namespace"),
        name=item.get("name"),
        count=item.get("count"),
        probability=float(item.get("probability", 1.0)),
        latency_seconds=float(item.get("latency", 0.0)),
        hang=bool(item.get("hang", False)),
        message=item.get("message"),
        subresource=item.get("subresource"),
        after_commit=bool(item.get("afterCommit", False)),
        retry_after=int(item["retryAfter"]) if item.get("retryAfter") is not None else 1,
        active_from=_opt_float(item.get("from")),
        active_until=_opt_float(item.get("until")),
    )


def _add_watch_fault(injector: FaultInjector, item: dict[str, Any]) -> None:
    """One item of the ``watches`` section: cut matching watch streams."""
    _check_keys(item, {"resources", "namespace", "action", "afterEvents", "afterSeconds", "count"}, "watches")
    injector.cut_watches(
        item.get("action", "close"),
        resources=item.get("resources"),
        namespace=item.get("namespace"),
        after_events=int(item.get("afterEvents", 0)),
        after_seconds=_opt_float(item.get("afterSeconds")),
        count=item.get("count"),
    )


def _add_migration_fault(injector: FaultInjector, item: dict[str, Any]) -> None:
    """One item of the ``migrations`` section: a failing, stalling, … migration, or a foreign one."""
    _check_keys(item, {"action", "vm", "next", "phase", "reason", "at", "target"}, "migrations")
    action = item.get("action")
    if action == "foreign":
        if not item.get("vm") or item.get("at") is None:
            raise ValueError("a foreign migration needs vm and at")
        injector.foreign_migration(item["vm"], at=float(item["at"]), target=item.get("target"))
        return
    if action not in _MIGRATION_ACTIONS:
        raise ValueError(
            "migration fault action must be fail or stall (or unschedulable, quota, vanish, crash-after, "
            f"foreign), not {action!r}"
        )
    count = int(item.get("next", 1))
    phase = item.get("phase", "Running")
    if action == "fail":
        injector.fail_migration(item.get("vm"), count=count, phase=phase, reason=item.get("reason"))
    elif action == "stall":
        injector.stall_migration(item.get("vm"), count=count, phase=phase)
    else:
        injector._migration_fault(action, item.get("vm"), count, phase, item.get("reason"))


_NODE_KEYS = {
    "node",
    "notReadyAt",
    "readyAt",
    "cordonAt",
    "uncordonAt",
    "unschedulableAt",
    "taintAt",
    "taint",
    "notReadyWhen",
}


def _add_node_faults(injector: FaultInjector, item: dict[str, Any]) -> None:
    """One item of the ``nodes`` section: readiness, cordon and taint changes of one node."""
    _check_keys(item, _NODE_KEYS, "nodes")
    name = item["node"]
    if item.get("notReadyAt") is not None:
        injector.node_not_ready(name, at=float(item["notReadyAt"]), ready_at=_opt_float(item.get("readyAt")))
    elif item.get("readyAt") is not None:
        injector.node_action("node-ready", name, at=float(item["readyAt"]))
    for key, action in (
        ("cordonAt", "cordon"),
        ("uncordonAt", "uncordon"),
        ("unschedulableAt", "node-unschedulable"),
    ):
        if item.get(key) is not None:
            injector.node_action(action, name, at=float(item[key]))
    if item.get("taintAt") is not None:
        taint = item.get("taint") or {"key": "simulator.vm-rebalance.io/injected", "effect": "NoSchedule"}
        injector.node_action("taint", name, at=float(item["taintAt"]), taint=dict(taint))
    if item.get("notReadyWhen") is not None:
        if item["notReadyWhen"] not in ("migration-target", "migration-source"):
            raise ValueError("notReadyWhen must be migration-target or migration-source")
        injector.node_action("node-not-ready", name, when=item["notReadyWhen"])


def _add_vm_faults(injector: FaultInjector, item: dict[str, Any]) -> None:
    """One item of the ``vms`` section: deleting, evacuating or failing to start one VM."""
    _check_keys(item, {"vm", "deleteAt", "deleteWhen", "object", "evacuateAt", "failStart", "starts"}, "vms")
    if item.get("object", "vm") not in ("vm", "vmi"):
        raise ValueError("object must be vm or vmi")
    if item.get("deleteAt") is not None or item.get("deleteWhen") is not None:
        injector.delete_vm(
            item["vm"],
            at=_opt_float(item.get("deleteAt")),
            when=item.get("deleteWhen"),
            vmi=item.get("object") == "vmi",
        )
    if item.get("evacuateAt") is not None:
        injector.evacuate_vm(item["vm"], at=float(item["evacuateAt"]))
    if item.get("failStart") is not None:
        starts = item.get("starts")
        injector.fail_starts(item["vm"], item["failStart"], starts=int(starts) if starts is not None else None)


def load_faults(path: str | Path) -> FaultInjector:
    """Read a fault script from a YAML (or JSON) file."""
    doc = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(doc, dict):
        raise ValueError("a fault file must be a mapping")
    return faults_from_document(doc)


def _check_keys(item: dict[str, Any], allowed: set[str], section: str) -> None:
    unknown = set(item) - allowed
    if unknown:
        raise ValueError(f"unknown keys in {section} fault: {sorted(unknown)}")
