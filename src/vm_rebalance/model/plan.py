"""A rebalance plan: goal, moves in waves, what stays, nodes before and after.

Pure data plus its versioned document form (design.md §3 "Plan file"): `plan_to_document`
and `plan_from_document` round-trip, so a saved plan is exactly what `apply` executes.
No I/O here; reading and writing files happens in the layers above.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from vm_rebalance.model.thresholds import DEFAULT_HEADROOM

PLAN_API_VERSION = "vm-rebalance/v1"
PLAN_KIND = "RebalancePlan"

LIVE_DOWNTIME = "<1s"
COLD_DOWNTIME = "~30-60s"
NO_DOWNTIME = "none"

DEFAULT_PLAN_HEADROOM = DEFAULT_HEADROOM
"""A plan's soft headroom when its document does not say (older documents)."""


class GoalType(StrEnum):
    """What the automatic planner optimises."""

    CPU = "cpu"
    MEMORY = "memory"
    BALANCED = "balanced"
    COUNT = "count"
    DRAIN = "drain"
    PERFORMANCE = "performance"
    MANUAL = "manual"
    """Moves named by the user (``move``); not an optimisation goal."""


class Basis(StrEnum):
    """Which numbers utilisation is computed from."""

    USAGE = "usage"
    REQUESTS = "requests"


class MigrationMethod(StrEnum):
    """How a VM moves."""

    LIVE = "live"
    COLD = "cold"


@dataclass(frozen=True, slots=True, kw_only=True)
class Goal:
    """The user's goal, with weights for ``balanced`` and the node for ``drain``."""

    type: GoalType
    weights: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({"cpu": 0.5, "memory": 0.5}))
    node: str | None = None

    def __post_init__(self) -> None:
        if self.type is GoalType.DRAIN and not self.node:
            raise ValueError("the drain goal needs a node")
        if any(w < 0 or not math.isfinite(w) for w in self.weights.values()):
            raise ValueError("weights must be finite and non-negative")

    def __hash__(self) -> int:
        return hash((self.type, tuple(sorted(self.weights.items())), self.node))


class PinOwnerKind(StrEnum):
    """Whose node pin a move changes."""

    VM_REBALANCE = "vm-rebalance"
    """vm-rebalance's own pin (from an earlier cold move): the tool's to change, no approval needed."""
    USER = "user"
    """The user's own node affinity: replaced only because the user approved it (``--replace-affinity``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AffinityChange:
    """A move's change of the VM's hostname pin, shown in the plan as old → new."""

    owner: PinOwnerKind
    before: tuple[str, ...]
    """The nodes the pin allows now."""
    after: tuple[str, ...]
    """The nodes it allows after the move."""

    @property
    def replaces_user(self) -> bool:
        """Whether the user's own pin is replaced (what needs explicit approval)."""
        return self.owner is PinOwnerKind.USER

    def describe(self) -> str:
        """``your node affinity kubernetes.io/hostname In [w3, w4] → In [w6]``."""
        whose = "your node affinity" if self.replaces_user else "vm-rebalance's pin"
        return f"{whose} kubernetes.io/hostname In [{', '.join(self.before)}] → In [{', '.join(self.after)}]"


@dataclass(frozen=True, slots=True, kw_only=True)
class Move:
    """One VM going from one node to another."""

    id: int
    vm: str
    namespace: str
    source: str
    target: str
    method: MigrationMethod
    wave: int = 1
    cpu: float = 0.0
    """CPU moved, in cores, on the plan's basis."""
    memory_bytes: int = 0
    """Memory moved, in bytes, on the plan's basis."""
    downtime: str = LIVE_DOWNTIME
    reason: str = ""
    instance_type: str | None = None
    running: bool = True
    """False for a stopped VM, which is only pinned (no downtime)."""
    guest_memory_bytes: int = 0
    """Guest RAM: what a live migration copies; drives its duration and timeout."""
    storage: str = ""
    """RWX / RWO / containerdisk / none."""
    affinity: AffinityChange | None = None
    """The node pin this move changes (optional plan-file key ``affinity``); None: no pin involved."""
    scheduler_chooses: bool = False
    """A live move the user gave no target: the migration carries no node selector and the scheduler
    chooses; ``target`` is where it is expected (optional plan-file key ``scheduler_chooses``)."""

    def __post_init__(self) -> None:
        if self.source == self.target:
            raise ValueError(f"move {self.id}: {self.namespace}/{self.vm} source and target are both {self.source}")
        if self.wave < 1:
            raise ValueError("waves start at 1")


@dataclass(frozen=True, slots=True, kw_only=True)
class Stay:
    """A VM the plan leaves where it is, and why."""

    vm: str
    namespace: str
    node: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class NodeLoad:
    """A node's VM count and utilisation (fractions of allocatable)."""

    vms: int
    cpu: float
    memory: float


@dataclass(frozen=True, slots=True)
class NodeChange:
    """A node before and after the plan."""

    name: str
    before: NodeLoad
    after: NodeLoad


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """A complete rebalance plan (design.md §3)."""

    goal: Goal
    basis: Basis
    moves: tuple[Move, ...] = ()
    stays: tuple[Stay, ...] = ()
    nodes: tuple[NodeChange, ...] = ()
    metrics_before: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    metrics_after: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    warnings: tuple[str, ...] = ()
    sequential: bool = False
    """Execute one move at a time (the user asked, or the plan requires it)."""
    max_parallel: int | None = None
    """At most this many moves per wave (None: as many as capacity allows); kept so edits honour it."""
    headroom: float = DEFAULT_PLAN_HEADROOM
    """The soft headroom the plan was made for (warnings); kept so edits honour it."""
    keep_order: bool = False
    """The moves follow an explicit user order (waves never reorder them); kept across later edits."""
    cluster: str | None = None
    """The identity of the cluster the plan was made for (its kube-system namespace uid; optional
    plan-file key ``cluster``): `apply` refuses it on another cluster."""

    def __post_init__(self) -> None:
        ids = [m.id for m in self.moves]
        if len(ids) != len(set(ids)):
            raise ValueError("move ids must be unique")
        if self.max_parallel is not None and self.max_parallel < 1:
            raise ValueError("max_parallel must be >= 1")
        if not 0.0 <= self.headroom < 1.0:
            raise ValueError("headroom must be in [0, 1)")

    @property
    def waves(self) -> tuple[tuple[Move, ...], ...]:
        """The moves grouped by wave, in wave order."""
        numbers = sorted({m.wave for m in self.moves})
        return tuple(tuple(m for m in self.moves if m.wave == w) for w in numbers)

    def move(self, move_id: int) -> Move | None:
        """The move with this id, or None."""
        return next((m for m in self.moves if m.id == move_id), None)

    def __hash__(self) -> int:
        return hash(
            (
                self.goal,
                self.basis,
                self.moves,
                self.stays,
                self.nodes,
                self.warnings,
                self.sequential,
                self.max_parallel,
                self.headroom,
                self.keep_order,
                self.cluster,
            )
        )


def _load_to_document(load: NodeLoad) -> dict[str, Any]:
    return {"vms": load.vms, "cpu": round(load.cpu, 4), "memory": round(load.memory, 4)}


def _move_extras(m: Move) -> dict[str, Any]:
    """The optional keys of a move document (present only when they say something)."""
    extras: dict[str, Any] = {"scheduler_chooses": True} if m.scheduler_chooses else {}
    if m.affinity is not None:
        extras["affinity"] = {
            "owner": m.affinity.owner.value,
            "from": list(m.affinity.before),
            "to": list(m.affinity.after),
        }
    return extras


def _affinity_from_document(raw: Any, where: str) -> AffinityChange | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise PlanDocumentError(f"{where}.affinity: must be an object")
    try:
        return AffinityChange(
            owner=PinOwnerKind(str(raw.get("owner"))),
            before=tuple(str(n) for n in raw.get("from") or ()),
            after=tuple(str(n) for n in raw.get("to") or ()),
        )
    except (ValueError, TypeError) as exc:
        raise PlanDocumentError(f"{where}.affinity: {exc}") from exc


def plan_to_document(plan: Plan) -> dict[str, Any]:
    """The plan as the versioned JSON document of design.md §3."""
    doc = _plan_document(plan)
    if plan.cluster is not None:
        doc["cluster"] = {"uid": plan.cluster}
    return doc


def _plan_document(plan: Plan) -> dict[str, Any]:
    return {
        "apiVersion": PLAN_API_VERSION,
        "kind": PLAN_KIND,
        "goal": {"type": plan.goal.type.value, "weights": dict(plan.goal.weights), "node": plan.goal.node},
        "basis": plan.basis.value,
        "sequential": plan.sequential,
        "options": {"max_parallel": plan.max_parallel, "headroom": plan.headroom, "keep_order": plan.keep_order},
        "moves": [
            {
                "id": m.id,
                "vm": m.vm,
                "namespace": m.namespace,
                "from": m.source,
                "to": m.target,
                "method": m.method.value,
                "wave": m.wave,
                "cpu": round(m.cpu, 4),
                "memory_bytes": m.memory_bytes,
                "downtime": m.downtime,
                "reason": m.reason,
                "instance_type": m.instance_type,
                "running": m.running,
                "guest_memory_bytes": m.guest_memory_bytes,
                "storage": m.storage,
            }
            | _move_extras(m)
            for m in plan.moves
        ],
        "stays": [{"vm": s.vm, "namespace": s.namespace, "node": s.node, "reason": s.reason} for s in plan.stays],
        "nodes": [
            {"name": n.name, "before": _load_to_document(n.before), "after": _load_to_document(n.after)}
            for n in plan.nodes
        ],
        "metrics": {
            "before": {k: round(v, 4) for k, v in plan.metrics_before.items()},
            "after": {k: round(v, 4) for k, v in plan.metrics_after.items()},
        },
        "warnings": list(plan.warnings),
    }


class PlanDocumentError(ValueError):
    """A plan document is malformed; the message names the field at fault."""


def _cluster_from_document(raw: Any) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or not isinstance(raw.get("uid"), str) or not raw["uid"]:
        raise PlanDocumentError("cluster: must be an object with a non-empty 'uid'")
    return str(raw["uid"])


def _req(doc: Mapping[str, Any], key: str, where: str) -> Any:
    if not isinstance(doc, Mapping) or key not in doc:
        raise PlanDocumentError(f"{where}: missing field '{key}'")
    return doc[key]


def _load_from_document(doc: Any, where: str) -> NodeLoad:
    try:
        return NodeLoad(int(_req(doc, "vms", where)), float(_req(doc, "cpu", where)), float(_req(doc, "memory", where)))
    except (TypeError, ValueError) as exc:
        raise PlanDocumentError(f"{where}: {exc}") from exc


def _options_from_document(doc: Any) -> tuple[int | None, float, bool]:
    """(max_parallel, headroom, keep_order) of the optional "options" object; defaults when absent."""
    if doc is None:
        return None, DEFAULT_PLAN_HEADROOM, False
    if not isinstance(doc, Mapping):
        raise PlanDocumentError("options: must be an object")
    raw_parallel = doc.get("max_parallel")
    raw_headroom = doc.get("headroom")
    raw_keep = doc.get("keep_order", False)
    if raw_parallel is not None and (isinstance(raw_parallel, bool) or not isinstance(raw_parallel, int)):
        raise PlanDocumentError(f"options.max_parallel: expected an integer or null, got {raw_parallel!r}")
    if raw_headroom is not None and (isinstance(raw_headroom, bool) or not isinstance(raw_headroom, int | float)):
        raise PlanDocumentError(f"options.headroom: expected a number, got {raw_headroom!r}")
    if not isinstance(raw_keep, bool):
        raise PlanDocumentError(f"options.keep_order: expected true or false, got {raw_keep!r}")
    headroom = DEFAULT_PLAN_HEADROOM if raw_headroom is None else float(raw_headroom)
    if raw_parallel is not None and raw_parallel < 1:
        raise PlanDocumentError(f"options.max_parallel: must be >= 1, got {raw_parallel}")
    if not 0.0 <= headroom < 1.0:
        raise PlanDocumentError(f"options.headroom: must be in [0, 1), got {headroom}")
    return raw_parallel, headroom, raw_keep


def plan_from_document(doc: Any) -> Plan:
    """Rebuild a Plan from its document form.

    Raises:
        PlanDocumentError: naming the field at fault.
    """
    if not isinstance(doc, Mapping):
        raise PlanDocumentError("a plan document must be a JSON/YAML object")
    if doc.get("apiVersion") != PLAN_API_VERSION or doc.get("kind") != PLAN_KIND:
        raise PlanDocumentError(
            f"not a plan: expected apiVersion '{PLAN_API_VERSION}' and kind '{PLAN_KIND}', "
            f"got '{doc.get('apiVersion')}' / '{doc.get('kind')}'"
        )
    try:
        g = _req(doc, "goal", "plan")
        goal = Goal(
            type=GoalType(_req(g, "type", "goal")),
            weights=MappingProxyType(
                {str(k): float(v) for k, v in g["weights"].items()} if g.get("weights") else {"cpu": 0.5, "memory": 0.5}
            ),
            node=g.get("node"),
        )
        basis = Basis(_req(doc, "basis", "plan"))
        moves = []
        for i, m in enumerate(_req(doc, "moves", "plan")):
            where = f"moves[{i}]"
            moves.append(
                Move(
                    id=int(_req(m, "id", where)),
                    vm=str(_req(m, "vm", where)),
                    namespace=str(_req(m, "namespace", where)),
                    source=str(_req(m, "from", where)),
                    target=str(_req(m, "to", where)),
                    method=MigrationMethod(_req(m, "method", where)),
                    wave=int(m.get("wave", 1)),
                    cpu=float(m.get("cpu", 0.0)),
                    memory_bytes=int(m.get("memory_bytes", 0)),
                    downtime=str(m.get("downtime", LIVE_DOWNTIME)),
                    reason=str(m.get("reason", "")),
                    instance_type=m.get("instance_type"),
                    running=bool(m.get("running", True)),
                    guest_memory_bytes=int(m.get("guest_memory_bytes", 0)),
                    storage=str(m.get("storage", "")),
                    affinity=_affinity_from_document(m.get("affinity"), where),
                    scheduler_chooses=m.get("scheduler_chooses") is True,
                )
            )
        stays = tuple(
            Stay(
                vm=str(_req(s, "vm", f"stays[{i}]")),
                namespace=str(_req(s, "namespace", f"stays[{i}]")),
                node=s.get("node"),
                reason=str(s.get("reason", "")),
            )
            for i, s in enumerate(doc.get("stays") or [])
        )
        nodes = tuple(
            NodeChange(
                str(_req(n, "name", f"nodes[{i}]")),
                _load_from_document(_req(n, "before", f"nodes[{i}]"), f"nodes[{i}].before"),
                _load_from_document(_req(n, "after", f"nodes[{i}]"), f"nodes[{i}].after"),
            )
            for i, n in enumerate(doc.get("nodes") or [])
        )
        metrics = doc.get("metrics") or {}
        max_parallel, headroom, keep_order = _options_from_document(doc.get("options"))
        return Plan(
            goal=goal,
            basis=basis,
            moves=tuple(moves),
            stays=stays,
            nodes=nodes,
            metrics_before=MappingProxyType({k: float(v) for k, v in (metrics.get("before") or {}).items()}),
            metrics_after=MappingProxyType({k: float(v) for k, v in (metrics.get("after") or {}).items()}),
            warnings=tuple(str(w) for w in doc.get("warnings") or ()),
            sequential=bool(doc.get("sequential", False)),
            max_parallel=max_parallel,
            headroom=headroom,
            keep_order=keep_order,
            cluster=_cluster_from_document(doc.get("cluster")),
        )
    except PlanDocumentError:
        raise
    except (TypeError, ValueError, AttributeError) as exc:
        raise PlanDocumentError(f"malformed plan: {exc}") from exc
