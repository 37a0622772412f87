"""Scriptable faults: API errors and latency, failed or stalled migrations, nodes going NotReady, VMs
deleted mid-flight. Built from Python calls or a YAML file (format below); applied by the API layer
(:meth:`FaultInjector.api_fault`) and by the cluster's controllers.

YAML format (every section optional)::

    seed: 7                      # for probabilistic API faults
    api:
      - verbs: [update, patch]   # get list watch create update patch delete, or omitted = all
        resources: [virtualmachines]   # plural, or group/plural; omitted = all
        namespace: prod          # optional; name: optional too
        code: 409                # 409 429 500 503 504; omitted = latency only
        count: 2                 # how many requests it hits (default unlimited)
        probability: 0.5         # default 1
        latency: 0.3             # wall seconds added before answering
        hang: true               # never answer (client timeout)
        message: "..."           # optional; the Kubernetes text for the code otherwise
    migrations:
      - action: fail             # fail | stall
        vm: web-01               # a VM (namespace optional: prod/web-01) ...
      - action: fail
        next: 2                  # ... or the next N migrations of any VM
        phase: Running           # where it fails or stalls (default Running)
    nodes:
      - node: worker-3
        notReadyAt: 120          # simulated seconds
        readyAt: 600             # optional
    vms:
      - vm: prod/web-02
        deleteAt: 60             # simulated seconds, or:
        deleteWhen: migrating    # the moment one of its migrations starts Running
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
    hits: int = 0

    def matches(self, verb: str, key: tuple[str, str], namespace: str | None, name: str | None) -> bool:
        """Whether this rule selects the request (ignoring count and probability)."""
        if self.verbs is not None and verb not in self.verbs:
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
            return Fault(None, "", "", self.latency_seconds, self.hang)
        reason, template = _DEFAULT_TEXT.get(self.status_code, ("InternalError", "injected by the simulator"))
        group, plural = key
        resource = f"{plural}.{group}" if group else plural
        message = self.message or template.format(resource=resource, name=name or "")
        return Fault(self.status_code, self.reason or reason, message, self.latency_seconds, self.hang)


@dataclass
class MigrationFault:
    """Fail or stall migrations of one VM, or the next ``remaining`` migrations of any VM."""

    action: str  # "fail" | "stall"
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

    action: str  # "node-not-ready" | "node-ready" | "delete-vm"
    target: str  # node name or namespace/name
    at: float | None = None
    when: str | None = None  # "migrating"
    done: bool = False


@dataclass
class FaultInjector:
    """All the faults scripted for one simulation."""

    seed: int = 0
    api_rules: list[ApiFaultRule] = field(default_factory=list)
    migration_faults: list[MigrationFault] = field(default_factory=list)
    actions: list[TimedAction] = field(default_factory=list)

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
    ) -> ApiFaultRule:
        """Make matching API requests fail with ``status_code`` (None: only add latency or hang)."""
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
        )
        with self._lock:
            self.api_rules.append(rule)
        return rule

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

    def delete_vm(self, vm: str, *, at: float | None = None, when: str | None = None) -> None:
        """Delete a VM (``ns/name``) at a simulated time, or ``when="migrating"``."""
        if at is None and when is None:
            raise ValueError("delete_vm needs at= or when=")
        with self._lock:
            self.actions.append(TimedAction("delete-vm", vm, at=at, when=when))

    # -- applying ------------------------------------------------------------------------------------------------

    def api_fault(self, verb: str, key: tuple[str, str], namespace: str | None, name: str | None) -> Fault | None:
        """The fault for this request, if any rule fires (consumes counts, draws probabilities)."""
        with self._lock:
            for rule in self.api_rules:
                if rule.count is not None and rule.hits >= rule.count:
                    continue
                if not rule.matches(verb, key, namespace, name):
                    continue
                if rule.probability < 1.0 and self._rng.random() >= rule.probability:
                    continue
                rule.hits += 1
                return rule.fault(key, name)
        return None

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


def faults_from_document(doc: dict[str, Any]) -> FaultInjector:
    """Build an injector from the YAML/JSON document described in this module's docstring.

    Raises:
        ValueError: an unknown section, key or action.
    """
    known = {"seed", "api", "migrations", "nodes", "vms"}
    unknown = set(doc) - known
    if unknown:
        raise ValueError(f"unknown fault sections: {sorted(unknown)}")
    injector = FaultInjector(seed=int(doc.get("seed", 0)))
    for item in doc.get("api") or []:
        _check_keys(
            item,
            {"verbs", "resources", "namespace", "name", "code", "count", "probability", "latency", "hang", "message"},
            "api",
        )
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
        )
    for item in doc.get("migrations") or []:
        _check_keys(item, {"action", "vm", "next", "phase", "reason"}, "migrations")
        action = item.get("action")
        if action not in ("fail", "stall"):
            raise ValueError(f"migration fault action must be fail or stall, not {action!r}")
        count = int(item.get("next", 1))
        phase = item.get("phase", "Running")
        if action == "fail":
            injector.fail_migration(item.get("vm"), count=count, phase=phase, reason=item.get("reason"))
        else:
            injector.stall_migration(item.get("vm"), count=count, phase=phase)
    for item in doc.get("nodes") or []:
        _check_keys(item, {"node", "notReadyAt", "readyAt"}, "nodes")
        ready_at = item.get("readyAt")
        injector.node_not_ready(
            item["node"], at=float(item["notReadyAt"]), ready_at=float(ready_at) if ready_at is not None else None
        )
    for item in doc.get("vms") or []:
        _check_keys(item, {"vm", "deleteAt", "deleteWhen"}, "vms")
        at = item.get("deleteAt")
        injector.delete_vm(item["vm"], at=float(at) if at is not None else None, when=item.get("deleteWhen"))
    return injector


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
