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


class ViolationKind(StrEnum):
    """Why a VM cannot be placed on a node: one kind per placement rule (the text is for people)."""

    NOT_READY = "not-ready"
    CORDONED = "cordoned"
    NOT_SCHEDULABLE = "not-schedulable"
    NO_KVM = "no-kvm"
    CONTROL_PLANE = "control-plane"
    TAINT = "taint"
    NODE_SELECTOR = "node-selector"
    NODE_AFFINITY = "node-affinity"
    ANTI_AFFINITY = "anti-affinity"
    """The VM's own required anti-affinity selects a VM in the target's domain."""
    RESIDENT_ANTI_AFFINITY = "resident-anti-affinity"
    """A VM in the target's domain has required anti-affinity that selects this VM."""
    POD_AFFINITY = "pod-affinity"
    TOPOLOGY_SPREAD = "topology-spread"
    CAPACITY = "capacity"
    """Not enough free allocatable (requests) on the target."""
    NO_NODE = "no-node"
    """The target node does not exist."""


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken placement rule: its kind (for decisions) and a sentence (for people)."""

    kind: ViolationKind
    message: str

    def __str__(self) -> str:
        return self.message


class StayKind(StrEnum):
    """Why a VM stays where it is (decisions and renderings match on this, never on the text)."""

    NAMESPACE = "namespace"
    """Its namespace was not selected."""
    DO_NOT_MOVE = "do-not-move"
    MIGRATING = "migrating"
    COOLDOWN = "cooldown"
    LIVE_ONLY = "live-only"
    """--live-only and it cannot move live."""
    NO_TARGET = "no-target"
    """No node can take it (placement rules or capacity)."""
    NO_ROOM = "no-room"
    """Drain: no room even after moving others."""
    BUDGET = "budget"
    """--max-migrations was reached."""
    NOT_WORTH = "not-worth"
    """A move would not gain enough to justify a migration."""
    SKIPPED = "skipped"
    """The user skipped its move."""
    OTHER = "other"
    """Not classified (plans written before stays carried a kind)."""


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
    estimated_seconds: float | None = None
    """A live move's estimated copy time (guest memory at the cluster's migration bandwidth, with the
    measured dirty rate); None when not estimated (cold moves, older plans)."""
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
    kind: StayKind = StayKind.OTHER
    instance_type: str | None = None


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


@dataclass(frozen=True, slots=True)
class TradeoffPoint:
    """The plan cut after its first ``moves`` moves (in the order the search chose them)."""

    moves: int
    objective: float
    gib_moved: float
    """Guest memory that the live moves among them copy."""
    cold_moves: int
    """Cold moves of running VMs among them (~30-60 s of downtime each)."""


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
    stop_reason: str = ""
    """Why the plan ends where it does ("already balanced: …", the minimum gain, --max-migrations)."""
    min_gain: float | None = None
    """The minimum gain per move (pp²) the plan was made with; None for drain and manual plans."""
    tradeoff: tuple[TradeoffPoint, ...] = ()
    """Objective, GiB copied and cold moves after the first k moves, thinned (`plan --tradeoff`)."""
    knee: int | None = None
    """Moves at the knee of the tradeoff curve (where more moves start to buy little)."""
    derived_warnings: int = 0
    """How many of the last ``warnings`` follow from the moves themselves (batch size, cold moves,
    nodes left hot, headroom): recomputed, not kept, when the plan is edited."""
    observation: str = ""
    """On the usage basis: how the usage was observed (the basis line, e.g. "Prometheus: mean over 1h
    ending …; PSI over the same window"); empty on requests or when unknown."""
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
        if not 0 <= self.derived_warnings <= len(self.warnings):
            raise ValueError("derived_warnings must count some of the warnings")

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
                self.stop_reason,
                self.min_gain,
                self.tradeoff,
                self.knee,
                self.derived_warnings,
                self.observation,
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
                **({} if m.estimated_seconds is None else {"estimated_seconds": round(m.estimated_seconds, 1)}),
            }
            | _move_extras(m)
            for m in plan.moves
        ],
        "stays": [
            {
                "vm": s.vm,
                "namespace": s.namespace,
                "node": s.node,
                "reason": s.reason,
                "kind": s.kind.value,
                "instance_type": s.instance_type,
            }
            for s in plan.stays
        ],
        "nodes": [
            {"name": n.name, "before": _load_to_document(n.before), "after": _load_to_document(n.after)}
            for n in plan.nodes
        ],
        "metrics": {
            "before": {k: round(v, 4) for k, v in plan.metrics_before.items()},
            "after": {k: round(v, 4) for k, v in plan.metrics_after.items()},
        },
        "warnings": list(plan.warnings),
        "derived_warnings": plan.derived_warnings,
        **_economy_to_document(plan),
    }


def _economy_to_document(plan: Plan) -> dict[str, Any]:
    """The optional move-economy keys: only present when the plan has them (older readers ignore them)."""
    out: dict[str, Any] = {}
    if plan.observation:
        out["observation"] = plan.observation
    if plan.stop_reason:
        out["stop_reason"] = plan.stop_reason
    if plan.min_gain is not None:
        out["min_gain"] = plan.min_gain
    if plan.tradeoff:
        out["tradeoff"] = {
            "knee": plan.knee,
            "points": [
                {
                    "moves": p.moves,
                    "objective": round(p.objective, 4),
                    "gib_moved": round(p.gib_moved, 2),
                    "cold_moves": p.cold_moves,
                }
                for p in plan.tradeoff
            ],
        }
    return out


_LEGACY_DERIVED = (
    "migrations in one plan",
    "cold migration(s) of running VMs",
    "stay above the warning thresholds",
    "headroom of ",
)
"""Phrases of the derived warnings in plan files written before "derived_warnings" existed."""


def _derived_from_document(doc: Mapping[str, Any], warnings: tuple[str, ...]) -> int:
    """The count of trailing derived warnings; for older files, classified once here by their phrases."""
    raw = doc.get("derived_warnings")
    if raw is not None:
        if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= len(warnings):
            raise PlanDocumentError(f"derived_warnings: expected 0 to {len(warnings)}, got {raw!r}")
        return raw
    count = 0
    for w in reversed(warnings):
        if not any(phrase in w for phrase in _LEGACY_DERIVED):
            break
        count += 1
    return count


def _economy_from_document(doc: Mapping[str, Any]) -> dict[str, Any]:
    raw = doc.get("tradeoff") or {}
    if not isinstance(raw, Mapping):
        raise PlanDocumentError("tradeoff: must be an object")
    points = tuple(
        TradeoffPoint(
            int(_req(p, "moves", f"tradeoff.points[{i}]")),
            float(_req(p, "objective", f"tradeoff.points[{i}]")),
            float(p.get("gib_moved", 0.0)),
            int(p.get("cold_moves", 0)),
        )
        for i, p in enumerate(raw.get("points") or ())
    )
    knee = raw.get("knee")
    min_gain = doc.get("min_gain")
    return {
        "observation": str(doc.get("observation", "")),
        "stop_reason": str(doc.get("stop_reason", "")),
        "min_gain": None if min_gain is None else float(min_gain),
        "tradeoff": points,
        "knee": None if knee is None else int(knee),
    }


class PlanDocumentError(ValueError):
    """A plan document is malformed; the message names the field at fault."""


_MOVE_FIELDS = frozenset({"id", "vm", "namespace", "from", "to", "method"})


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


def _flag(doc: Mapping[str, Any], key: str, default: bool, where: str) -> bool:
    value = doc.get(key, default)
    if not isinstance(value, bool):
        raise PlanDocumentError(f"{where}.{key}: expected true or false, got {str(value)[:40]!r}")
    return value


def _finite(value: Any, where: str) -> float:
    number = float(value)
    if value is True or value is False or not math.isfinite(number):
        raise PlanDocumentError(f"{where}: expected a finite number, got {str(value)[:40]!r}")
    return number


def _goal_from_document(doc: Mapping[str, Any]) -> Goal:
    """The plan's goal from its "goal" object (weights default to half cpu, half memory)."""
    g = _req(doc, "goal", "plan")
    return Goal(
        type=GoalType(_req(g, "type", "goal")),
        weights=MappingProxyType(
            {str(k): _finite(v, f"goal.weights.{k}") for k, v in g["weights"].items()}
            if g.get("weights")
            else {"cpu": 0.5, "memory": 0.5}
        ),
        node=g.get("node"),
    )


def _move_from_document(m: Any, where: str) -> Move:
    """One move of the "moves" list; ``where`` (``moves[i]``) names it in errors."""
    if not isinstance(m, dict) or not _MOVE_FIELDS.issubset(m):  # one check per move: 200,000 are common
        for key in sorted(_MOVE_FIELDS):
            _req(m, key, where)
    return Move(
        id=int(m["id"]),
        vm=str(m["vm"]),
        namespace=str(m["namespace"]),
        source=str(m["from"]),
        target=str(m["to"]),
        method=MigrationMethod(m["method"]),
        wave=int(m.get("wave", 1)),
        cpu=_finite(m.get("cpu", 0.0), f"{where}.cpu"),
        memory_bytes=int(m.get("memory_bytes", 0)),
        downtime=str(m.get("downtime", LIVE_DOWNTIME)),
        reason=str(m.get("reason", "")),
        instance_type=m.get("instance_type"),
        running=_flag(m, "running", True, where),
        guest_memory_bytes=int(m.get("guest_memory_bytes", 0)),
        storage=str(m.get("storage", "")),
        estimated_seconds=None if m.get("estimated_seconds") is None else float(m["estimated_seconds"]),
        affinity=_affinity_from_document(m.get("affinity"), where),
        scheduler_chooses=m.get("scheduler_chooses") is True,
    )


def _moves_from_document(doc: Mapping[str, Any]) -> tuple[Move, ...]:
    """The plan's moves from its required "moves" list."""
    raw_moves = _req(doc, "moves", "plan")
    if not isinstance(raw_moves, list):
        raise PlanDocumentError("moves: expected a list of moves")
    return tuple(_move_from_document(m, f"moves[{i}]") for i, m in enumerate(raw_moves))


def _stays_from_document(doc: Mapping[str, Any]) -> tuple[Stay, ...]:
    """The VMs that stay put, from the optional "stays" list."""
    return tuple(
        Stay(
            vm=str(_req(s, "vm", f"stays[{i}]")),
            namespace=str(_req(s, "namespace", f"stays[{i}]")),
            node=s.get("node"),
            reason=str(s.get("reason", "")),
            kind=StayKind(s.get("kind", StayKind.OTHER.value)),
            instance_type=s.get("instance_type"),
        )
        for i, s in enumerate(doc.get("stays") or [])
    )


def _nodes_from_document(doc: Mapping[str, Any]) -> tuple[NodeChange, ...]:
    """Each node's load before and after, from the optional "nodes" list."""
    return tuple(
        NodeChange(
            str(_req(n, "name", f"nodes[{i}]")),
            _load_from_document(_req(n, "before", f"nodes[{i}]"), f"nodes[{i}].before"),
            _load_from_document(_req(n, "after", f"nodes[{i}]"), f"nodes[{i}].after"),
        )
        for i, n in enumerate(doc.get("nodes") or [])
    )


def _metrics_from_document(metrics: Any) -> tuple[Mapping[str, float], Mapping[str, float]]:
    """(before, after) of the optional "metrics" object, each empty when absent."""
    return (
        MappingProxyType({k: float(v) for k, v in (metrics.get("before") or {}).items()}),
        MappingProxyType({k: float(v) for k, v in (metrics.get("after") or {}).items()}),
    )


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
        goal = _goal_from_document(doc)
        basis = Basis(_req(doc, "basis", "plan"))
        moves = _moves_from_document(doc)
        stays = _stays_from_document(doc)
        nodes = _nodes_from_document(doc)
        metrics = doc.get("metrics") or {}
        max_parallel, headroom, keep_order = _options_from_document(doc.get("options"))
        warnings = tuple(str(w) for w in doc.get("warnings") or ())
        metrics_before, metrics_after = _metrics_from_document(metrics)
        return Plan(
            goal=goal,
            basis=basis,
            moves=moves,
            stays=stays,
            nodes=nodes,
            metrics_before=metrics_before,
            metrics_after=metrics_after,
            warnings=warnings,
            derived_warnings=_derived_from_document(doc, warnings),
            sequential=_flag(doc, "sequential", False, "plan"),
            max_parallel=max_parallel,
            headroom=headroom,
            keep_order=keep_order,
            **_economy_from_document(doc),
            cluster=_cluster_from_document(doc.get("cluster")),
        )
    except PlanDocumentError:
        raise
    except (TypeError, ValueError, AttributeError) as exc:
        raise PlanDocumentError(f"malformed plan: {exc}") from exc
