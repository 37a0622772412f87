"""Typed inputs, checked once for every front-end: what to plan, which VMs, which plan file.

A front-end builds a ``PlanSpec`` (or VM references) from its own input — command-line options,
MCP tool arguments, a custom resource — and the service checks it here, so the CLI, the MCP
server and the controller refuse the same values with the same messages.
"""

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vm_rebalance.errors import ConfigError
from vm_rebalance.model import Basis, ClusterState, Goal, GoalType, Plan, PlanDocumentError, plan_from_document
from vm_rebalance.model.thresholds import DEFAULT_HEADROOM
from vm_rebalance.planner import ManualMoveRequest, PlanRequest
from vm_rebalance.planner.goals import automatic_goals
from vm_rebalance.planner.request import DEFAULT_COOLDOWN_SECONDS
from vm_rebalance.render.text import plain
from vm_rebalance.service.planfile import MAX_PLAN_BYTES, check_plan_document, parse_plan_text

GOALS: tuple[str, ...] = tuple(d.name for d in automatic_goals())
"""The goals a user can ask the automatic planner for (from the planner's goal registry)."""

METHODS: tuple[str, ...] = ("auto", "live", "cold")
"""How a named VM may move: auto (live when its storage allows it), live, or cold."""

DEFAULT_WEIGHTS: Mapping[str, float] = {"cpu": 0.5, "memory": 0.5}

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def _shown(value: str) -> str:
    """A value from the user or an agent as an error message quotes it: one line, at most 80 characters."""
    return plain(value, limit=80)


def check_name(value: str, what: str) -> str:
    """A VM or node name as Kubernetes allows it (an RFC 1123 subdomain, at most 253 characters).

    Raises:
        ConfigError: a name no VM or node can have (the message quotes it on one line).
    """
    if len(value) > 253 or not _DNS_SUBDOMAIN.fullmatch(value):
        raise ConfigError(
            f"'{_shown(value)}' is not a {what} name (lower-case letters, digits, '-' and '.', at most 253 characters)"
        )
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanSpec:
    """What to plan: the options of `vm-rebalance plan`, of the `plan_rebalance` tool, of a policy.

    Built once at the edge; ``to_request`` checks it and gives the planner's request.
    """

    goal: str = "balanced"
    node: str | None = None
    """The node to empty (goal drain only)."""
    weights: Mapping[str, float] | None = None
    """Goal balanced: relative weights of cpu and memory (default 0.5 / 0.5)."""
    max_migrations: int | None = None
    basis: str | None = None
    """usage or requests; None: usage when the cluster has metrics."""
    live_only: bool = False
    namespaces: Sequence[str] = field(default_factory=tuple)
    headroom: float = DEFAULT_HEADROOM
    """A fraction of every node to keep free where possible (0.2 = 20 %)."""
    cooldown_seconds: float = DEFAULT_COOLDOWN_SECONDS
    sequential: bool = False
    min_gain: float | None = None
    """Make a move only when it buys at least this much balance (None: the goal's default)."""

    def to_request(self) -> PlanRequest:
        """The planner's request.

        Raises:
            ConfigError: inconsistent or out-of-range values (the message names the option).
        """
        goal = self.goal
        if goal not in GOALS:
            raise ConfigError(f"goal must be one of {', '.join(GOALS)}, not '{_shown(goal)}'")
        if goal == "drain" and not self.node:
            raise ConfigError("goal 'drain' needs node: the node to empty (--node)")
        if self.node and goal != "drain":
            raise ConfigError("node only goes with goal 'drain'")
        weights = _checked_weights(self.weights, goal)
        if self.basis not in (None, "usage", "requests"):
            raise ConfigError(f"basis must be usage or requests, not '{_shown(str(self.basis))}'")
        if self.max_migrations is not None and self.max_migrations < 0:
            raise ConfigError("max migrations must be 0 or more")
        if not math.isfinite(self.headroom) or not 0 <= self.headroom < 1:
            raise ConfigError("headroom must be from 0 to 99 %")
        if not math.isfinite(self.cooldown_seconds) or self.cooldown_seconds < 0:
            raise ConfigError("the cooldown must be 0 or more")
        if self.min_gain is not None and (not math.isfinite(self.min_gain) or self.min_gain < 0):
            raise ConfigError("the minimum gain must be a number, 0 or more")
        return PlanRequest(
            goal=Goal(type=GoalType(goal), weights=weights, node=self.node),
            basis=Basis(self.basis) if self.basis else None,
            max_migrations=self.max_migrations,
            live_only=self.live_only,
            namespaces=check_namespaces(self.namespaces),
            headroom=self.headroom,
            cooldown_seconds=self.cooldown_seconds,
            sequential=self.sequential,
            min_gain=self.min_gain,
        )


def _checked_weights(weights: Mapping[str, float] | None, goal: str) -> dict[str, float]:
    if weights is None:
        return dict(DEFAULT_WEIGHTS)
    if goal != "balanced":
        raise ConfigError("weights only go with goal 'balanced'")
    unknown = sorted(set(weights) - {"cpu", "memory"})
    if unknown:
        raise ConfigError(f"weights: unknown resource {', '.join(unknown)}")
    if not all(math.isfinite(w) for w in weights.values()):
        raise ConfigError("weights must be finite numbers")
    if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
        raise ConfigError("weights must not be negative, and at least one weight must be positive")
    return {"cpu": weights.get("cpu", 0.0), "memory": weights.get("memory", 0.0)}


def parse_weights(text: str | None) -> dict[str, float] | None:
    """``cpu=0.7,memory=0.3`` → {"cpu": 0.7, "memory": 0.3}; None stays None (the default weights).

    Raises:
        ConfigError: not ``cpu=W`` / ``memory=W`` pairs of numbers.
    """
    if not text:
        return None
    weights: dict[str, float] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or key not in ("cpu", "memory"):
            raise ConfigError(f"--weights: '{part}' is not cpu=W or memory=W")
        try:
            weights[key] = float(value)
        except ValueError as exc:
            raise ConfigError(f"--weights: '{value}' is not a number") from exc
    return weights


def check_namespaces(namespaces: Sequence[str]) -> tuple[str, ...]:
    """Namespace names as Kubernetes allows them (RFC 1123 labels, at most 63 characters).

    Raises:
        ConfigError: a name no namespace can have.
    """
    for ns in namespaces:
        if len(ns) > 63 or not _DNS_LABEL.fullmatch(ns):
            raise ConfigError(
                f"'{_shown(ns)}' is not a namespace name (lower-case letters, digits and '-', at most 63 characters)"
            )
    return tuple(namespaces)


def vm_refs(vms: Sequence[str], namespace: str) -> list[tuple[str, str]]:
    """``name`` or ``namespace/name`` → (namespace, name).

    Raises:
        ConfigError: an empty name, a malformed namespace, or no VM at all.
    """
    refs = []
    for ref in vms:
        ns, _, name = ref.strip().rpartition("/")
        if not name:
            raise ConfigError(f"'{_shown(ref)}' is not a VM name (NAME or NAMESPACE/NAME)")
        refs.append((check_namespaces([ns or namespace])[0], check_name(name, "VM")))
    if not refs:
        raise ConfigError("name at least one VM")
    return refs


def move_requests(
    vms: Sequence[str], target: str | None, namespace: str, method: str = "auto"
) -> list[ManualMoveRequest]:
    """The manual moves of `move VM... --to NODE` / `move VM=NODE...` (or the `plan_move` tool).

    Each item is ``NAME``, ``NAMESPACE/NAME``, or either with ``=NODE`` for its own target;
    items without one go to ``target``.

    Raises:
        ConfigError: a malformed VM reference, a VM without a target, or an unknown method.
    """
    if method not in METHODS:
        raise ConfigError(f"--method must be {', '.join(METHODS[:-1])} or {METHODS[-1]}, not '{_shown(method)}'")
    default = (target or "").strip()
    requests = []
    for item in vms:
        ref, sep, node = item.partition("=")
        node = node.strip() if sep else default
        if sep and not node:
            raise ConfigError(f"'{_shown(item)}' names no node after '='; write VM=NODE")
        if not node:
            shown = _shown(ref.strip())
            raise ConfigError(f"no target node for '{shown}': give --to NODE, or write {shown}=NODE")
        ((ns, name),) = vm_refs([ref], namespace)
        requests.append(ManualMoveRequest(ns, name, check_name(node, "node"), method))
    if not requests:
        raise ConfigError("name at least one VM")
    return requests


def load_plan(path: str | Path) -> Plan:
    """Read a plan file (JSON or YAML) written by `plan --save` / `-o json`.

    The file is parsed with bounds (size, nesting, number of values) and checked against the
    plan-file JSON Schema (``data/plan.schema.json``) before it becomes a `Plan`.

    Raises:
        ConfigError: unreadable, oversized, malformed or schema-violating file, naming the field at fault.
    """
    p = Path(path)
    where = f"plan file '{plain(p.name, limit=120)}'"
    try:
        if p.stat().st_size > MAX_PLAN_BYTES:
            raise ConfigError(f"{where} is larger than {MAX_PLAN_BYTES // 2**20} MiB: not a plan file")
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"{where} does not exist") from exc
    except IsADirectoryError as exc:
        raise ConfigError(f"{where} is a directory") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where} cannot be read: {type(exc).__name__}") from exc
    doc = parse_plan_text(text, where)
    check_plan_document(doc, where)
    try:
        return plan_from_document(doc)
    except PlanDocumentError as exc:
        raise ConfigError(f"{where}: {plain(exc, limit=300)}") from exc


MAX_NAMED = 8
"""How many missing names an error lists before counting the rest."""


def _listed(names: Sequence[str]) -> str:
    shown = ", ".join(plain(n, limit=80) for n in names[:MAX_NAMED])
    return shown + (f" (and {len(names) - MAX_NAMED} more)" if len(names) > MAX_NAMED else "")


def require_plan_names(state: ClusterState, plan: Plan, *, skip_ids: Iterable[int] = ()) -> None:
    """Refuse a plan that names VMs or nodes this cluster does not have (design.md §3: bad input, exit 2).

    A plan made for another cluster names none of this one's VMs; one naming a VM that does not
    exist (any more) would otherwise run its other moves and report them complete. Moves in
    ``skip_ids`` (done in an earlier run, or left out with --skip) are not looked at.

    Raises:
        ConfigError: naming the missing VMs and nodes and the moves that name them.
    """
    skip = set(skip_ids)
    moves = [m for m in plan.moves if m.id not in skip]
    vms = [m for m in moves if state.vm(m.namespace, m.vm) is None]
    nodes = sorted(
        {m.target for m in moves if state.node(m.target) is None}
        | {m.source for m in moves if m.source and state.node(m.source) is None}
    )
    if not vms and not nodes:
        return
    parts = []
    if vms:
        parts.append(f"{len(vms)} VM(s) this cluster does not have: {_listed([f'{m.namespace}/{m.vm}' for m in vms])}")
    if nodes:
        parts.append(f"{len(nodes)} node(s) this cluster does not have: {_listed(nodes)}")
    ids = sorted({m.id for m in vms} | {m.id for m in moves if m.target in nodes or m.source in nodes})
    other = " (was it made for another cluster?)" if len(ids) == len(moves) else ""
    raise ConfigError(
        f"the plan names {' and '.join(parts)}{other}",
        hint=(
            "re-plan against this cluster (vm-rebalance plan --save FILE)"
            + ("" if other else ", or leave those moves out: " + " ".join(f"--skip {i}" for i in ids[:MAX_NAMED]))
        ),
    )
