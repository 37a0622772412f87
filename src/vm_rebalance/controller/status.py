"""What a RebalancePlan's status shows: the plan document and hash, a summary for the printer
columns, the seeds' two tables as plain text for `kubectl describe`, and per-move progress.

Pure: plans and progress rows in, JSON-ready dictionaries out.
"""

from collections.abc import Mapping, Sequence
from typing import Any

from vm_rebalance.model import GoalType, MigrationLimits, MigrationMethod, Plan, plan_to_document
from vm_rebalance.render.plan import plan_view
from vm_rebalance.service.incluster import plan_hash

MOVE_HEADERS = ("#", "VM", "Namespace", "Current Node", "New Node", "Type", "Downtime", "Wave", "Notes")
NODE_HEADERS = ("Node", "VMs Now", "CPU Now", "Memory Now", "VMs After", "CPU After", "Memory After", "Change")
MAX_ROWS = 60
MAX_CELL = 80


def imbalance(plan: Plan, when: str) -> float:
    """The goal's imbalance before or after the plan, in percentage points of standard deviation.

    cpu / memory / count: that standard deviation; balanced and performance: the goal's weighted sum.
    """
    metrics = plan.metrics_before if when == "before" else plan.metrics_after
    match plan.goal.type:
        case GoalType.CPU:
            return float(metrics.get("cpu_stddev", 0.0))
        case GoalType.MEMORY:
            return float(metrics.get("memory_stddev", 0.0))
        case GoalType.COUNT:
            return float(metrics.get("count_stddev", 0.0))
        case _:
            w = plan.goal.weights
            total = (w.get("cpu", 0.5) + w.get("memory", 0.5)) or 1.0
            return float(
                (
                    w.get("cpu", 0.5) * metrics.get("cpu_stddev", 0.0)
                    + w.get("memory", 0.5) * metrics.get("memory_stddev", 0.0)
                )
                / total
            )


def counts(plan: Plan) -> dict[str, int]:
    """Moves by kind: live, cold (a running VM stopped and started), pinned (a stopped VM)."""
    live = sum(1 for m in plan.moves if m.method is MigrationMethod.LIVE)
    cold = sum(1 for m in plan.moves if m.method is MigrationMethod.COLD and m.running)
    return {"moves": len(plan.moves), "live": live, "cold": cold, "pinned": len(plan.moves) - live - cold}


def summary(plan: Plan) -> dict[str, Any]:
    """The numbers the printer columns and the approver read."""
    before, after = imbalance(plan, "before"), imbalance(plan, "after")
    return {
        **counts(plan),
        "goal": plan.goal.type.value,
        "basis": plan.basis.value,
        "imbalanceBefore": round(before, 2),
        "imbalanceAfter": round(after, 2),
        "improvement": f"{before:.1f} → {after:.1f}",
    }


def _cell(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def text_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A fixed-width plain-text table (what `kubectl describe` shows well)."""
    cells = [[_cell(c) for c in headers]] + [[_cell(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def tables(plan: Plan, limits: MigrationLimits | None = None) -> dict[str, str]:
    """The seeds' two tables (moves with the non-obvious stays; nodes before → after) and the summary."""
    view = plan_view(plan, limits=limits)
    waves = {m.id: m.wave for m in plan.moves}
    namespaces = {m.id: m.namespace for m in plan.moves}
    move_rows = []
    for row in view.move_rows[:MAX_ROWS]:
        ident = row[0]
        number = int(ident) if ident.isdigit() else None
        move_rows.append(
            (
                ident or "-",
                row[1],
                namespaces.get(number, "") if number is not None else "",
                row[3],
                row[5].strip("*"),
                row[6],
                row[7],
                str(waves.get(number, "")) if number is not None else "",
                row[8],
            )
        )
    if not move_rows:
        move_rows.append(("-", "-", "-", "-", "-", "-", "-", "-", "no migration needed"))
    moves = text_table(MOVE_HEADERS, move_rows)
    hidden = len(view.move_rows) - len(move_rows) + view.hidden_moves + view.hidden_stays
    if hidden > 0:
        moves += f"\n… and {hidden} more row(s): see status.plan"
    node_rows = [tuple(c for i, c in enumerate(row) if i != 4) for row in view.node_rows]
    nodes = text_table(NODE_HEADERS, node_rows) if node_rows else "no node changes"
    if view.hidden_nodes:
        nodes += f"\n{view.hidden_nodes} other node(s) unchanged and within thresholds"
    lines = [f"Goal: {view.goal_line}", f"Key improvement: {view.key_improvement}"]
    lines += [f"{label}: {value}" for label, value in view.summary]
    lines.append("Execution mode: " + view.execution_mode.replace("**", ""))
    lines += [f"Warning: {w}" for w in view.warnings]
    return {"moves": moves, "nodes": nodes, "summary": "\n".join(lines)}


def plan_status(plan: Plan, limits: MigrationLimits | None = None) -> dict[str, Any]:
    """The status fields that describe a plan: document, hash, summary, tables."""
    document = plan_to_document(plan)
    digest = plan_hash(document)
    return {
        "plan": document,
        "planHash": digest,
        "shortHash": digest[:12],
        "summary": summary(plan),
        "tables": tables(plan, limits),
    }


def automatic_verdict(plan: Plan, max_migrations: int) -> str | None:
    """Why Automatic may *not* execute this plan by itself (None: it may): every move live, within limits."""
    cold = [m for m in plan.moves if m.method is not MigrationMethod.LIVE]
    if cold:
        names = ", ".join(f"#{m.id} {m.namespace}/{m.vm}" for m in cold[:5])
        return f"{len(cold)} cold move(s) ({names}) need a human's approval, even at Automatic"
    if len(plan.moves) > max_migrations:
        return f"{len(plan.moves)} moves exceed the policy's maxMigrations ({max_migrations})"
    return None


def progress(rows: Sequence[Mapping[str, Any]], total: int) -> dict[str, Any]:
    """``status.progress`` from the service's per-move progress rows."""
    finished = sum(1 for r in rows if r.get("status") in ("succeeded", "failed", "skipped", "not attempted"))
    running = [r for r in rows if r.get("status") == "running"]
    return {
        "total": total,
        "finished": finished,
        "running": len(running),
        "moves": [dict(r) for r in rows],
    }
