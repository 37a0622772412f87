"""A RebalancePolicy's spec read into typed values: the service's `PlanSpec`, the automation level,
the schedule, maintenance windows and the scope.

Every field maps to something that works (``minGain`` is the planner's minimum gain per move,
``PlanSpec.min_gain``); a bad value is refused with a message naming the field.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from vm_rebalance import service
from vm_rebalance.controller.schedule import Schedule, Window, parse_schedule, parse_windows
from vm_rebalance.errors import ConfigError

POLICY_GOALS = ("balanced", "cpu", "memory", "count", "performance")
"""The goals a standing policy may pursue (drain is a one-off, not a policy)."""
DEFAULT_MAX_MIGRATIONS = 5
"""Per run, like the descheduler's KubeVirt profile (5 evictions per cycle)."""
DEFAULT_HISTORY = 10


class Automation(StrEnum):
    """What the controller does with a policy's plans (the peers' automation levels)."""

    REPORT = "Report"
    """Plans only, never executed (the descheduler's Predictive mode, DRS manual)."""
    APPROVE = "Approve"
    """Plans wait until a human approves them by hash."""
    AUTOMATIC = "Automatic"
    """Plans whose moves are all live and within the limits execute by themselves; cold moves still wait."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    """A RebalancePolicy, checked."""

    name: str
    automation: Automation
    plan: service.PlanSpec
    schedule: Schedule
    windows: tuple[Window, ...]
    node_selector: Mapping[str, str]
    min_improvement: float
    """Percentage points of the goal's standard deviation a plan must gain to be proposed."""
    history: int
    suspended: bool


def _number(spec: Mapping[str, Any], key: str, default: float, *, low: float, high: float | None = None) -> float:
    value = spec.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{key} must be a number")
    if value < low or (high is not None and value > high):
        raise ConfigError(f"{key} must be from {low:g} to {high:g}" if high is not None else f"{key} must be ≥ {low:g}")
    return float(value)


def parse_policy(obj: Mapping[str, Any]) -> Policy:
    """The policy object as the controller acts on it.

    Raises:
        ConfigError: a value the service or the controller refuses; the message names the field.
    """
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    if not isinstance(spec, dict):
        raise ConfigError("spec must be an object")
    try:
        automation = Automation(spec.get("automation") or Automation.APPROVE.value)
    except ValueError:
        raise ConfigError(f"automation must be Report, Approve or Automatic, not '{spec.get('automation')}'") from None
    goal = str(spec.get("goal") or "balanced")
    if goal not in POLICY_GOALS:
        raise ConfigError(f"goal must be one of {', '.join(POLICY_GOALS)}, not '{goal}'")
    weights = spec.get("weights")
    if weights is not None and not isinstance(weights, dict):
        raise ConfigError("weights must be an object {cpu: W, memory: W}")
    namespaces = spec.get("namespaces") or []
    if not isinstance(namespaces, list) or not all(isinstance(n, str) for n in namespaces):
        raise ConfigError("namespaces must be a list of names")
    selector = spec.get("nodeSelector") or {}
    if not isinstance(selector, dict) or not all(isinstance(v, str) for v in selector.values()):
        raise ConfigError("nodeSelector must map label keys to values")
    max_migrations = int(_number(spec, "maxMigrations", DEFAULT_MAX_MIGRATIONS, low=1, high=1000))
    fields: dict[str, Any] = {
        "goal": goal,
        "weights": {str(k): float(v) for k, v in weights.items()} if weights else None,
        "max_migrations": max_migrations,
        "basis": spec.get("basis") or None,
        "live_only": bool(spec.get("liveOnly", False)),
        "namespaces": tuple(namespaces),
        "headroom": _number(spec, "headroomPercent", 20, low=0, high=99) / 100,
        "cooldown_seconds": _number(spec, "cooldownMinutes", 60, low=0) * 60,
    }
    if spec.get("minGain") is not None:
        fields["min_gain"] = _number(spec, "minGain", 0, low=0)
    try:
        plan = service.PlanSpec(**fields)
    except (TypeError, ValueError) as exc:  # pragma: no cover - fields are checked above
        raise ConfigError(str(exc)) from exc
    plan.to_request()  # the service's own checks (weights, basis, namespaces): same messages as the CLI
    return Policy(
        name=str(meta.get("name") or ""),
        automation=automation,
        plan=plan,
        schedule=parse_schedule(spec.get("schedule")),
        windows=parse_windows(spec.get("maintenanceWindows")),
        node_selector={str(k): str(v) for k, v in selector.items()},
        min_improvement=_number(spec, "minImprovement", 0, low=0, high=100),
        history=int(_number(spec, "historyLimit", DEFAULT_HISTORY, low=1, high=1000)),
        suspended=bool(spec.get("suspend", False)),
    )
