"""A kube-scheduler subset: node filters (cordon, taints, selectors, node affinity, resources, pod
anti-affinity) and least-allocated scoring, plus the per-node request accounting they need.

NodeAccounting is fed by store events, so it always reflects the stored pods; the recorder reads it
to detect capacity overruns.
"""

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .kubevirt import KVM
from .quantity import cpu_millicores, memory_bytes
from .store import Store, WatchEvent

Obj = dict[str, Any]
PODS = ("", "pods")
NODES = ("", "nodes")

TERMINAL_POD_PHASES = frozenset({"Succeeded", "Failed"})


def pod_requests(pod: Mapping[str, Any]) -> tuple[int, int, int]:
    """Sum of the containers' (cpu millicores, memory bytes, kvm devices) requests."""
    cpu = mem = kvm = 0
    for container in (pod.get("spec") or {}).get("containers") or []:
        requests = (container.get("resources") or {}).get("requests") or {}
        if "cpu" in requests:
            cpu += cpu_millicores(requests["cpu"])
        if "memory" in requests:
            mem += memory_bytes(requests["memory"])
        if KVM in requests:
            kvm += int(memory_bytes(requests[KVM]))
    return cpu, mem, kvm


def node_allocatable(node: Mapping[str, Any]) -> tuple[int, int, int, int]:
    """(cpu millicores, memory bytes, kvm devices, pods) allocatable on a node."""
    status = node.get("status") or {}
    alloc = status.get("allocatable") or status.get("capacity") or {}
    return (
        cpu_millicores(alloc.get("cpu", 0)),
        memory_bytes(alloc.get("memory", 0)),
        int(memory_bytes(alloc.get(KVM, 0))),
        int(memory_bytes(alloc.get("pods", 110))),
    )


def node_is_ready(node: Mapping[str, Any]) -> bool:
    """The node's Ready condition is True."""
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


@dataclass
class PodEntry:
    """What the scheduler needs to know about a bound, non-terminated pod."""

    node: str
    cpu: int
    memory: int
    kvm: int
    namespace: str
    labels: dict[str, str]
    anti_affinity: list[Obj] = field(default_factory=list)


class NodeAccounting:
    """Requests of bound, non-terminated pods per node, kept current from store events."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.pods: dict[tuple[str, str], PodEntry] = {}
        self.by_node: dict[str, set[tuple[str, str]]] = {}
        self.used: dict[str, list[int]] = {}  # node -> [cpu, memory, kvm, pods]
        self.listeners: list[Callable[[str], None]] = []
        with store.lock:
            for pod in store.iter_objects(PODS):
                self._upsert(pod)
            store.subscribe(self._on_event)

    def _on_event(self, event: WatchEvent) -> None:
        if event.key != PODS:
            return
        meta = event.obj["metadata"]
        ident = (meta.get("namespace") or "", meta["name"])
        before = self.pods.get(ident)
        if event.type == "DELETED":
            self._drop(ident)
        else:
            self._upsert(event.obj)
        after = self.pods.get(ident)
        for node in {e.node for e in (before, after) if e is not None}:
            for listener in self.listeners:
                listener(node)

    def _drop(self, ident: tuple[str, str]) -> None:
        entry = self.pods.pop(ident, None)
        if entry is None:
            return
        used = self.used[entry.node]
        used[0] -= entry.cpu
        used[1] -= entry.memory
        used[2] -= entry.kvm
        used[3] -= 1
        self.by_node[entry.node].discard(ident)

    def _upsert(self, pod: Mapping[str, Any]) -> None:
        meta = pod["metadata"]
        ident = (meta.get("namespace") or "", meta["name"])
        self._drop(ident)
        node = (pod.get("spec") or {}).get("nodeName")
        if not node or (pod.get("status") or {}).get("phase") in TERMINAL_POD_PHASES:
            return
        cpu, mem, kvm = pod_requests(pod)
        anti = (((pod.get("spec") or {}).get("affinity") or {}).get("podAntiAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        ) or []
        entry = PodEntry(node, cpu, mem, kvm, ident[0], dict(meta.get("labels") or {}), list(anti))
        self.pods[ident] = entry
        used = self.used.setdefault(node, [0, 0, 0, 0])
        used[0] += cpu
        used[1] += mem
        used[2] += kvm
        used[3] += 1
        self.by_node.setdefault(node, set()).add(ident)

    def usage(self, node: str) -> tuple[int, int, int, int]:
        """(cpu, memory, kvm, pods) requested on a node."""
        used = self.used.get(node)
        return (used[0], used[1], used[2], used[3]) if used else (0, 0, 0, 0)


# -- matching ------------------------------------------------------------------------------------------------


def tolerates(tolerations: Iterable[Mapping[str, Any]], taint: Mapping[str, Any]) -> bool:
    """Whether any toleration matches the taint (key, operator Equal/Exists, effect)."""
    for tol in tolerations:
        effect = tol.get("effect") or ""
        if effect and effect != taint.get("effect"):
            continue
        key = tol.get("key") or ""
        operator = tol.get("operator") or "Equal"
        if not key:
            if operator == "Exists":
                return True
            continue
        if key != taint.get("key"):
            continue
        if operator == "Exists" or (tol.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def _match_expression(expr: Mapping[str, Any], value: str | None) -> bool:
    operator = expr.get("operator")
    values = [str(v) for v in expr.get("values") or []]
    if operator == "In":
        return value is not None and value in values
    if operator == "NotIn":
        return value is None or value not in values
    if operator == "Exists":
        return value is not None
    if operator == "DoesNotExist":
        return value is None
    if operator in ("Gt", "Lt"):
        try:
            number, bound = int(value or ""), int(values[0])
        except (ValueError, IndexError):
            return False
        return number > bound if operator == "Gt" else number < bound
    return False


def node_selector_term_matches(term: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    """A nodeSelectorTerm: all matchExpressions (labels) and matchFields (metadata.name) hold."""
    exprs = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not exprs and not fields:
        return False  # an empty term matches no objects
    labels = node["metadata"].get("labels") or {}
    for expr in exprs:
        if not _match_expression(expr, labels.get(expr.get("key", ""))):
            return False
    for expr in fields:
        value = node["metadata"]["name"] if expr.get("key") == "metadata.name" else None
        if not _match_expression(expr, value):
            return False
    return True


def node_affinity_matches(pod_spec: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    """nodeSelector and required node affinity both match the node."""
    labels = node["metadata"].get("labels") or {}
    for key, value in (pod_spec.get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            return False
    required = ((pod_spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    )
    if required:
        terms = required.get("nodeSelectorTerms") or []
        if not any(node_selector_term_matches(t, node) for t in terms):
            return False
    return True


def label_selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A metav1.LabelSelector (matchLabels + matchExpressions); None matches nothing, {} everything."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    return all(
        _match_expression(expr, labels.get(expr.get("key", ""))) for expr in selector.get("matchExpressions") or []
    )


def _term_namespaces(term: Mapping[str, Any], own_namespace: str) -> set[str] | None:
    """Namespaces an affinity term applies to; None means all."""
    if term.get("namespaceSelector") == {}:
        return None
    names = set(term.get("namespaces") or [])
    return names or {own_namespace}


@dataclass
class Decision:
    """Where a pod goes, or why it cannot go anywhere."""

    node: str | None
    message: str = ""
    reasons: dict[str, str] = field(default_factory=dict)


class Scheduler:
    """Filters and scores nodes for a pod; deterministic (ties go to the lexically first node)."""

    def __init__(self, store: Store, accounting: NodeAccounting) -> None:
        self.store = store
        self.accounting = accounting

    def filter_node(
        self, pod: Mapping[str, Any], node: Mapping[str, Any], requests: tuple[int, int, int] | None = None
    ) -> list[str]:
        """Reasons the node cannot take the pod (kube-scheduler wording); empty when it fits."""
        spec = pod.get("spec") or {}
        tolerations = spec.get("tolerations") or []
        node_spec = node.get("spec") or {}
        if node_spec.get("unschedulable") and not tolerates(
            tolerations, {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}
        ):
            return ["node(s) were unschedulable"]
        taints = list(node_spec.get("taints") or [])
        if not node_is_ready(node) and not any(t.get("key") == "node.kubernetes.io/not-ready" for t in taints):
            taints.append({"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"})
        for taint in taints:
            if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(tolerations, taint):
                value = taint.get("value") or ""
                return [f"node(s) had untolerated taint {{{taint.get('key')}: {value}}}"]
        if not node_affinity_matches(spec, node):
            return ["node(s) didn't match Pod's node affinity/selector"]
        cpu, mem, kvm = requests if requests is not None else pod_requests(pod)
        a_cpu, a_mem, a_kvm, a_pods = node_allocatable(node)
        name = node["metadata"]["name"]
        u_cpu, u_mem, u_kvm, u_pods = self.accounting.usage(name)
        reasons = []
        if u_pods + 1 > a_pods:
            reasons.append("Too many pods")
        if cpu and u_cpu + cpu > a_cpu:
            reasons.append("Insufficient cpu")
        if mem and u_mem + mem > a_mem:
            reasons.append("Insufficient memory")
        if kvm and u_kvm + kvm > a_kvm:
            reasons.append(f"Insufficient {KVM}")
        if reasons:
            return reasons
        if self._violates_anti_affinity(pod, node):
            return ["node(s) didn't match pod anti-affinity rules"]
        return []

    def _nodes_in_topology(self, node: Mapping[str, Any], key: str) -> list[str]:
        value = (node["metadata"].get("labels") or {}).get(key)
        if value is None:
            return []
        if key == "kubernetes.io/hostname":
            return [node["metadata"]["name"]]
        return [
            n["metadata"]["name"]
            for n in self.store.iter_objects(NODES)
            if (n["metadata"].get("labels") or {}).get(key) == value
        ]

    def _violates_anti_affinity(self, pod: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
        meta = pod.get("metadata") or {}
        own_ns = meta.get("namespace") or ""
        own_labels = meta.get("labels") or {}
        terms = (((pod.get("spec") or {}).get("affinity") or {}).get("podAntiAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        ) or []
        for term in terms:
            namespaces = _term_namespaces(term, own_ns)
            for node_name in self._nodes_in_topology(node, term.get("topologyKey", "")):
                for ident in self.accounting.by_node.get(node_name, ()):
                    entry = self.accounting.pods[ident]
                    if namespaces is not None and entry.namespace not in namespaces:
                        continue
                    if label_selector_matches(term.get("labelSelector"), entry.labels):
                        return True
        # Existing pods' anti-affinity against the incoming pod (symmetry), hostname topology only.
        for ident in self.accounting.by_node.get(node["metadata"]["name"], ()):
            entry = self.accounting.pods[ident]
            for term in entry.anti_affinity:
                if term.get("topologyKey") != "kubernetes.io/hostname":
                    continue
                namespaces = _term_namespaces(term, entry.namespace)
                if namespaces is not None and own_ns not in namespaces:
                    continue
                if label_selector_matches(term.get("labelSelector"), own_labels):
                    return True
        return False

    def score(self, node: Mapping[str, Any], requests: tuple[int, int, int]) -> float:
        """Least-allocated score in [0, 1]: mean free fraction of cpu and memory after placing."""
        a_cpu, a_mem, _, _ = node_allocatable(node)
        u_cpu, u_mem, _, _ = self.accounting.usage(node["metadata"]["name"])
        free_cpu = (a_cpu - u_cpu - requests[0]) / a_cpu if a_cpu else 0.0
        free_mem = (a_mem - u_mem - requests[1]) / a_mem if a_mem else 0.0
        return (free_cpu + free_mem) / 2

    def schedule(self, pod: Mapping[str, Any], *, exclude: Iterable[str] = ()) -> Decision:
        """The best feasible node for the pod, or the kube-scheduler FailedScheduling message."""
        requests = pod_requests(pod)
        excluded = set(exclude)
        reasons: dict[str, str] = {}
        best: tuple[float, str] | None = None
        nodes = sorted(self.store.iter_objects(NODES), key=lambda n: n["metadata"]["name"])
        for node in nodes:
            name = node["metadata"]["name"]
            if name in excluded:
                reasons[name] = "node(s) didn't match pod anti-affinity rules"
                continue
            problems = self.filter_node(pod, node, requests)
            if problems:
                reasons[name] = ", ".join(problems)
                continue
            candidate = (-self.score(node, requests), name)
            if best is None or candidate < best:
                best = candidate
        if best is not None:
            return Decision(best[1])
        return Decision(None, unschedulable_message(len(nodes), reasons.values()), reasons)


def unschedulable_message(total: int, reasons: Iterable[str]) -> str:
    """kube-scheduler's FailedScheduling text, e.g. ``0/6 nodes are available: 2 Insufficient cpu, …``."""
    counts: dict[str, int] = {}
    for text in reasons:
        for reason in text.split(", "):
            counts[reason] = counts.get(reason, 0) + 1
    parts = sorted(f"{n} {reason}" for reason, n in counts.items())
    detail = ", ".join(parts)
    return (
        f"0/{total} nodes are available: {detail}. preemption: 0/{total} nodes are available: "
        f"{total} Preemption is not helpful for scheduling."
    )
