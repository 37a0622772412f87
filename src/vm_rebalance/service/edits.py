"""Plan edits, the same for every front-end: skip a move, send it elsewhere, reorder, run sequentially.

``parse_edit`` reads the words the CLI's approval loop accepts (``skip 3``, ``change target 3 to
worker-05``, ``reorder 3,1,2``, ``sequential`` / ``parallel``); ``edit_plan`` applies typed edits
through the planner's edit functions, so every edited plan has its waves, after-state and
improvements recomputed, and says what changed.
"""

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import assert_never

from vm_rebalance.errors import ConfigError, RebalanceError
from vm_rebalance.model import ClusterState, Plan
from vm_rebalance.planner import reorder_moves, retarget_move, skip_move


@dataclass(frozen=True, slots=True)
class Skip:
    """Leave move ``move_id`` out."""

    move_id: int


@dataclass(frozen=True, slots=True)
class Retarget:
    """Send move ``move_id`` to ``node`` instead."""

    move_id: int
    node: str


@dataclass(frozen=True, slots=True)
class Reorder:
    """Run these moves first, in this order."""

    order: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class SetSequential:
    """One move at a time (True) or as many as the limits allow (False)."""

    sequential: bool


@dataclass(frozen=True, slots=True)
class UseAlternative:
    """Accept one of the alternatives offered next to the plan ("live-only")."""

    key: str


Edit = Skip | Retarget | Reorder | SetSequential | UseAlternative

EDIT_HELP = "skip N, change target N to NODE, reorder 3,1,2, sequential, parallel, live only, done"


@dataclass(frozen=True, slots=True, kw_only=True)
class EditResult:
    """The edited plan and one sentence per change."""

    plan: Plan
    changes: tuple[str, ...]


def parse_edit(text: str) -> Edit:
    """One edit from the approval loop's words.

    Raises:
        ConfigError: not an edit (the message lists the ones there are).
    """
    words = text.strip()
    low = words.lower()
    if m := re.fullmatch(r"skip\s+#?(\d+)", low):
        return Skip(int(m.group(1)))
    if m := re.fullmatch(r"(?:change\s+target|retarget)\s+#?(\d+)\s+(?:to\s+)?(\S+)", words, re.IGNORECASE):
        return Retarget(int(m.group(1)), m.group(2))
    if m := re.fullmatch(r"reorder\s+([#\d,\s]+)", low):
        order = tuple(int(x) for x in re.split(r"[,\s#]+", m.group(1).strip()) if x)
        if order:
            return Reorder(order)
    if low in ("sequential", "run sequentially", "one at a time"):
        return SetSequential(True)
    if low in ("parallel", "run in parallel"):
        return SetSequential(False)
    if low in ("live only", "live-only", "--live-only", "use live only", "use live-only"):
        return UseAlternative("live-only")
    raise ConfigError(f"unknown edit {words!r}; use {EDIT_HELP}")


def edit_plan(
    state: ClusterState, plan: Plan, edits: Sequence[Edit], *, alternatives: Mapping[str, Plan] | None = None
) -> EditResult:
    """Apply ``edits`` in order (``alternatives``: the plans the offered alternatives would become).

    Raises:
        ConfigError: an edit names an unknown move. InfeasiblePlanError (PlanEditError): an edit
            names an unknown node or breaks a rule; the message names the move, VM, node and reason.
    """
    changes: list[str] = []
    for edit in edits:
        plan, change = _apply(state, plan, edit, alternatives or {})
        changes.append(change)
    return EditResult(plan=plan, changes=tuple(changes))


def _apply(state: ClusterState, plan: Plan, edit: Edit, alternatives: Mapping[str, Plan]) -> tuple[Plan, str]:
    try:
        match edit:
            case Skip(move_id):
                move = plan.move(move_id)
                edited = skip_move(state, plan, move_id)
                return edited, f"Migration #{move_id} ({move.vm if move else '?'}) removed from plan."
            case Retarget(move_id, node):
                edited = retarget_move(state, plan, move_id, node.strip())
                move = edited.move(move_id)
                return edited, f"Migration #{move_id} ({move.vm if move else '?'}) now goes to {node.strip()}."
            case Reorder(order):
                edited = reorder_moves(state, plan, list(order))
                return edited, f"Moves reordered: {', '.join(f'#{i}' for i in order)} first."
            case SetSequential(sequential):
                edited = dataclasses.replace(plan, sequential=sequential)
                return edited, "Execution is now " + (
                    "sequential (one move at a time)." if sequential else "parallel (within the cluster's limits)."
                )
            case UseAlternative(key):
                if key not in alternatives:
                    offered = ", ".join(alternatives) or "none"
                    raise ConfigError(f"this plan offers no '{key}' alternative (offered: {offered})")
                chosen = alternatives[key]
                return chosen, f"Using the {key} alternative: {len(chosen.moves)} move(s)."
    except RebalanceError:
        raise
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    assert_never(edit)
