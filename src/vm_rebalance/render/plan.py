"""A plan in the seeds' standard presentation, as rich renderables and as Markdown.

`plan_view` computes what is shown once (which stays and nodes are relevant, the key
improvement, the summary, the duration estimate); `render_plan` (rich, for the CLI) and
`plan_markdown` (for the MCP server) only format that view, so they never disagree.
Information relevance (seeds): only stays with a non-obvious reason, only nodes that change or
are above a threshold; the rest is counted, not listed.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import assert_never

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from vm_rebalance.model import GIB, GoalType, MigrationLimits, MigrationMethod, Move, Plan
from vm_rebalance.model.thresholds import CPU_WARNING, MEMORY_WARNING
from vm_rebalance.planner.goals import definition
from vm_rebalance.render.text import markup, md, plain

LIVE_SETUP_SECONDS = 10.0
LIVE_BYTES_PER_SECOND = float(GIB)
COLD_SECONDS = 60.0
STOPPED_SECONDS = 5.0
MAX_STAYS = 10
MAX_NODES = 20
MAX_MOVES = 1000
"""Move rows shown in a table: a terminal table costs ~4 ms a row, and nobody reads 200,000 rows;
the rest is counted, with where to read every move (the plan's JSON)."""

_HEADERS_MOVES = ("#", "VM", "Instance Type", "Current Node", "→", "New Node", "Type", "Downtime", "Notes")
_HEADERS_NODES = ("Node", "VMs Now", "CPU Now", "Memory Now", "→", "VMs After", "CPU After", "Memory After", "Change")


@dataclass(frozen=True, slots=True)
class PlanView:
    """Everything the plan presentation shows, as plain strings."""

    title: str
    goal_line: str
    move_rows: tuple[tuple[str, ...], ...]
    hidden_moves: int
    """Moves of the plan not in ``move_rows`` (past ``max_moves``)."""
    hidden_stays: int
    node_rows: tuple[tuple[str, ...], ...]
    hidden_nodes: int
    key_improvement: str
    summary: tuple[tuple[str, str], ...]
    execution_mode: str
    warnings: tuple[str, ...]
    alternatives: tuple[str, ...]


def _pct(x: float) -> str:
    return f"{x * 100:.0f}%"


def _downtime(m: Move) -> str:
    if not m.running:
        return "none (stopped)"
    return "<1s pause" if m.method is MigrationMethod.LIVE else "~30-60s"


def move_seconds(m: Move) -> float:
    """Rough duration of one move: live ≈ its estimated copy time (else guest memory at 1 GiB/s) + 10 s
    setup; cold ≈ 60 s."""
    if not m.running:
        return STOPPED_SECONDS
    if m.method is MigrationMethod.LIVE:
        copy = m.guest_memory_bytes / LIVE_BYTES_PER_SECOND if m.estimated_seconds is None else m.estimated_seconds
        return LIVE_SETUP_SECONDS + copy
    return COLD_SECONDS


def estimate_seconds(plan: Plan, limits: MigrationLimits | None = None) -> float:
    """Estimated wall time: waves in turn; inside a wave, live moves packed into the cluster's
    parallel slots (at most the per-node outbound limit from one source), cold ones one at a time."""
    limits = limits or MigrationLimits()
    if plan.sequential:
        return sum(move_seconds(m) for m in plan.moves)
    total = 0.0
    for wave in plan.waves:
        slots = [0.0] * limits.parallel_per_cluster
        per_source: dict[str, list[float]] = {}
        live = sorted(
            (m for m in wave if m.method is MigrationMethod.LIVE or not m.running), key=move_seconds, reverse=True
        )
        for m in live:
            # Earliest slot; a source with its outbound limit in flight waits for one of its own to end.
            k = min(range(len(slots)), key=lambda i: slots[i])
            start = slots[k]
            busy = sorted(per_source.get(m.source, []))
            if len(busy) >= limits.parallel_outbound_per_node:
                start = max(start, busy[-limits.parallel_outbound_per_node])
            end = start + move_seconds(m)
            slots[k] = end
            per_source.setdefault(m.source, []).append(end)
        cold = sum(move_seconds(m) for m in wave if m.method is MigrationMethod.COLD and m.running)
        total += max(slots, default=0.0) + cold
    return total


def _duration_text(seconds: float, parallel: bool) -> str:
    mode = "sequential" if not parallel else "parallel"
    if seconds <= 0:
        return "-"
    if seconds < 90:
        return f"~{max(5, round(seconds / 5) * 5):.0f}s ({mode} execution)"
    lo = max(1, int(seconds // 60))
    hi = max(lo + 1, int(-(-seconds * 1.5 // 60)))
    return f"{lo}-{hi} minutes ({mode} execution)"


def _better(before: float, after: float) -> str:
    if before <= 1e-9:
        return ""
    change = (before - after) / before * 100
    return f" ({change:.0f} % better)" if change >= 0 else f" ({-change:.0f} % worse)"


def _key_improvement(plan: Plan) -> str:
    b, a = plan.metrics_before, plan.metrics_after
    goal = plan.goal

    def std(key: str, label: str, unit: str = " %") -> str:
        x, y = b.get(key, 0.0), a.get(key, 0.0)
        return f"{label} std dev {x:.1f}{unit} → {y:.1f}{unit}{_better(x, y)}"

    if not plan.moves:
        if plan.stop_reason:
            return f"No migration needed: {plan.stop_reason}"
        return "No migration needed: nothing would improve enough for this goal"
    both = f"{std('cpu_stddev', 'CPU')}; {std('memory_stddev', 'memory')}"
    match goal.type:
        case GoalType.DRAIN:
            moved = sum(1 for m in plan.moves if m.source == goal.node)
            left = sum(1 for s in plan.stays if s.node == goal.node)
            targets = len({m.target for m in plan.moves if m.source == goal.node})
            text = f"{goal.node} drained: {moved} VM(s) to {targets} node(s)"
            return text + (f"; {left} VM(s) cannot leave (see Notes)" if left else "")
        case GoalType.CPU:
            return std("cpu_stddev", "CPU")
        case GoalType.MEMORY:
            return std("memory_stddev", "Memory")
        case GoalType.COUNT:
            return std("count_stddev", "VMs per node", unit="")
        case GoalType.PERFORMANCE:
            hot = ""
            if "hot_nodes" in b and "hot_nodes" in a:
                hot = f"; hot nodes (pressure-aware) {b['hot_nodes']:.0f} → {a['hot_nodes']:.0f}"
            return (
                both
                + (
                    f"; hottest node CPU {b.get('cpu_max', 0):.0f} % → {a.get('cpu_max', 0):.0f} %, "
                    f"memory {b.get('memory_max', 0):.0f} % → {a.get('memory_max', 0):.0f} %"
                )
                + hot
            )
        case GoalType.BALANCED | GoalType.MANUAL:
            return both
        case unreachable:
            assert_never(unreachable)


def _goal_line(plan: Plan) -> str:
    line = definition(plan.goal.type).headline(plan.goal, plan.basis.value)
    return f"{line} — usage: {plan.observation}" if plan.observation else line


def _node_change(before_vms: int, after_vms: int, cpu: float, mem: float, drained: bool) -> str:
    if drained and after_vms == 0:
        text = "✓ Drained"
    elif after_vms < before_vms:
        text = "✓ Reduced load"
    elif after_vms > before_vms:
        text = "← Receiving VMs"
    else:
        text = "✓ Balanced"
    if cpu > CPU_WARNING or mem > MEMORY_WARNING:
        text += " ⚠ above threshold"
    return text


def plan_view(
    plan: Plan,
    *,
    limits: MigrationLimits | None = None,
    alternatives: Sequence[str] = (),
    max_stays: int = MAX_STAYS,
    max_nodes: int = MAX_NODES,
    max_moves: int = MAX_MOVES,
) -> PlanView:
    """What the plan presentation shows (see the module docstring)."""
    limits = limits or MigrationLimits()
    node_rows = _node_rows(plan, max_nodes)
    stopped = [m for m in plan.moves if not m.running]
    alts = list(alternatives)
    if stopped:
        names = ", ".join(m.vm for m in stopped[:3])
        alts.append(f"{names} {'is' if len(stopped) == 1 else 'are'} stopped: moving now costs no downtime")
    return PlanView(
        title="📋 VM Rebalance Plan",
        goal_line=_goal_line(plan),
        move_rows=_move_rows(plan, max_moves, max_stays),
        hidden_moves=max(0, len(plan.moves) - max_moves),
        hidden_stays=max(0, len(plan.stays) - max_stays),
        node_rows=node_rows,
        hidden_nodes=len(plan.nodes) - len(node_rows),
        key_improvement=_key_improvement(plan),
        summary=_summary_rows(plan, limits),
        execution_mode=_execution_mode(plan, limits),
        warnings=plan.warnings,
        alternatives=tuple(dict.fromkeys(alts)),
    )


def _move_rows(plan: Plan, max_moves: int, max_stays: int) -> tuple[tuple[str, ...], ...]:
    """The moves table: the first moves, then the first VMs that stay with their reason."""
    rows: list[tuple[str, ...]] = []
    for m in plan.moves[:max_moves]:
        rows.append(
            (
                str(m.id),
                m.vm,
                m.instance_type or "-",
                m.source or "(stopped)",
                "→",
                m.target,
                m.method.value.capitalize(),
                _downtime(m),
                m.reason,
            )
        )
    for s in plan.stays[:max_stays]:
        rows.append(("", s.vm, s.instance_type or "-", s.node or "(stopped)", "-", "*stays*", "-", "-", s.reason))
    return tuple(rows)


def _node_rows(plan: Plan, max_nodes: int) -> tuple[tuple[str, ...], ...]:
    """The node table: nodes whose load changes or is above a warning threshold, before → after."""
    changed = [
        n
        for n in plan.nodes
        if n.before != n.after
        or max(n.before.cpu, n.after.cpu) > CPU_WARNING
        or max(n.before.memory, n.after.memory) > MEMORY_WARNING
    ]
    drained = plan.goal.type is GoalType.DRAIN
    return tuple(
        (
            n.name,
            str(n.before.vms),
            _pct(n.before.cpu),
            _pct(n.before.memory),
            "→",
            str(n.after.vms),
            _pct(n.after.cpu),
            _pct(n.after.memory),
            _node_change(n.before.vms, n.after.vms, n.after.cpu, n.after.memory, drained and n.name == plan.goal.node),
        )
        for n in changed[:max_nodes]
    )


def _summary_rows(plan: Plan, limits: MigrationLimits) -> tuple[tuple[str, str], ...]:
    """The summary: moves by method, VMs staying, downtime, estimated duration, why the plan stops."""
    live = [m for m in plan.moves if m.method is MigrationMethod.LIVE]
    cold_running = [m for m in plan.moves if m.method is MigrationMethod.COLD and m.running]
    stopped = [m for m in plan.moves if not m.running]
    total_vms = sum(n.before.vms for n in plan.nodes)
    summary: list[tuple[str, str]] = [
        ("Total VMs to Rebalance", str(len(plan.moves))),
        ("Live", f"{len(live)} (zero downtime)"),
        (
            "Cold",
            f"{len(cold_running)} (brief downtime)"
            + (f"; {len(stopped)} stopped VM(s) only pinned" if stopped else ""),
        ),
    ]
    staying = max(total_vms - len(plan.moves) + len(stopped), len(plan.stays))
    if plan.stays:
        summary.append(("VMs Staying", f"{staying} ({len(plan.stays)} with a reason listed above)"))
    else:
        summary.append(("VMs Staying", str(staying)))
    if cold_running:
        n = len(cold_running)
        summary.append(("Total Downtime", f"~{30 * n}-{60 * n}s cumulative (cold only)"))
    else:
        summary.append(("Total Downtime", "none"))
    summary.append(("Estimated Duration", _duration_text(estimate_seconds(plan, limits), not plan.sequential)))
    if plan.moves and plan.stop_reason:
        summary.append(("Stops Here Because", plan.stop_reason))
    return tuple(summary)


def _execution_mode(plan: Plan, limits: MigrationLimits) -> str:
    """How the moves run: one at a time, or in parallel within the limits and in how many waves."""
    if plan.sequential:
        return "**Sequential** (one migration at a time)"
    cold_running = any(m.method is MigrationMethod.COLD and m.running for m in plan.moves)
    waves = len(plan.waves)
    return (
        f"**Parallel** (up to {limits.parallel_per_cluster} migrations at a time, "
        f"{limits.parallel_outbound_per_node} per source node"
        + (f"; {waves} waves, each starting when the previous one finished" if waves > 1 else "")
        + (")" if not cold_running else "; cold migrations one at a time)")
    )


def hidden_moves_line(hidden: int) -> str:
    """The line that counts the moves a table leaves out, and says where every move is."""
    return f"… and {hidden} more move(s), not shown here (every move: -o json, or the saved plan file)"


def _rich_text(markdownish: str) -> Text:
    """``**bold**`` segments as bold text."""
    text = Text()
    for k, part in enumerate(markdownish.split("**")):
        text.append(part, style="bold" if k % 2 else "")
    return text


def render_plan(
    plan: Plan,
    *,
    limits: MigrationLimits | None = None,
    alternatives: Sequence[str] = (),
    max_stays: int = MAX_STAYS,
    max_nodes: int = MAX_NODES,
    max_moves: int = MAX_MOVES,
) -> RenderableType:
    """The plan for a terminal: ``console.print(render_plan(plan))``."""
    view = plan_view(
        plan, limits=limits, alternatives=alternatives, max_stays=max_stays, max_nodes=max_nodes, max_moves=max_moves
    )
    parts: list[RenderableType] = [_rich_text(f"**Optimization Goal:** {plain(view.goal_line)}"), Text("")]
    moves = Table(title=view.title, title_justify="left", show_lines=False)
    for h in _HEADERS_MOVES:
        moves.add_column(h, overflow="fold", no_wrap=h in ("#", "→"))
    for row in view.move_rows:
        cells = [markup(c) for c in row]  # names and reasons are data, not console markup
        moves.add_row(*cells[:5], Text(plain(row[5]), style="italic" if row[5] == "*stays*" else ""), *cells[6:])
    if not view.move_rows:
        moves.add_row("", "-", "-", "-", "-", "-", "-", "-", "no migration needed")
    parts.append(moves)
    if view.hidden_moves:
        parts.append(Text(hidden_moves_line(view.hidden_moves), style="dim"))
    if view.hidden_stays:
        parts.append(Text(f"… and {view.hidden_stays} more staying VM(s) with a reason (see -o json)", style="dim"))
    nodes = Table(title="📊 Node State: Before → After", title_justify="left")
    for h in _HEADERS_NODES:
        nodes.add_column(h, no_wrap=True)
    for row in view.node_rows:
        nodes.add_row(*(markup(c) for c in row))
    parts += [Text(""), nodes]
    if view.hidden_nodes:
        parts.append(Text(f"{view.hidden_nodes} other node(s) unchanged and within thresholds", style="dim"))
    parts += [Text(""), _rich_text(f"**Key Improvement:** {plain(view.key_improvement)}"), Text("")]
    parts.append(_rich_text("**Rebalance Summary:**"))
    for label, value in view.summary:
        parts.append(_rich_text(f"  • **{label}**: {value}"))
    parts += [Text(""), _rich_text(f"**Execution Mode**: {view.execution_mode}")]
    if view.warnings:
        parts.append(Text(""))
        parts += [Text(f"⚠ {plain(w, limit=1000)}", style="yellow") for w in view.warnings]
    if view.alternatives:
        parts += [Text(""), _rich_text("💡 **Alternatives**")]
        parts += [Text(f"  • {plain(a, limit=1000)}") for a in view.alternatives]
    return Group(*parts)


def _md_cell(text: str) -> str:
    # Names and reasons come from the cluster or a plan file: data, never Markdown (but our own *stays*).
    return text if text == "*stays*" else md(text)


def plan_markdown(
    plan: Plan,
    *,
    limits: MigrationLimits | None = None,
    alternatives: Sequence[str] = (),
    max_stays: int = MAX_STAYS,
    max_nodes: int = MAX_NODES,
    max_moves: int = MAX_MOVES,
) -> str:
    """The plan as Markdown (what the MCP server returns)."""
    view = plan_view(
        plan, limits=limits, alternatives=alternatives, max_stays=max_stays, max_nodes=max_nodes, max_moves=max_moves
    )
    out = [f"**Optimization Goal:** {md(view.goal_line)}", "", f"## {view.title}", ""]
    out.append("| " + " | ".join(_HEADERS_MOVES) + " |")
    out.append("|" + "|".join("---" for _ in _HEADERS_MOVES) + "|")
    for row in view.move_rows:
        out.append("| " + " | ".join(_md_cell(c) for c in row) + " |")
    if not view.move_rows:
        out.append("| | - | - | - | - | - | - | - | no migration needed |")
    if view.hidden_moves:
        out += ["", hidden_moves_line(view.hidden_moves)]
    if view.hidden_stays:
        out += ["", f"… and {view.hidden_stays} more staying VM(s) with a reason (see the JSON plan)"]
    out += ["", "## 📊 Node State: Before → After", ""]
    out.append("| " + " | ".join(_HEADERS_NODES) + " |")
    out.append("|" + "|".join("---" for _ in _HEADERS_NODES) + "|")
    for row in view.node_rows:
        out.append("| " + " | ".join(_md_cell(c) for c in row) + " |")
    if view.hidden_nodes:
        out += ["", f"{view.hidden_nodes} other node(s) unchanged and within thresholds"]
    out += ["", f"**Key Improvement:** {md(view.key_improvement)}", "", "**Rebalance Summary:**"]
    out += [f"- **{label}**: {value}" for label, value in view.summary]
    out += ["", f"**Execution Mode**: {view.execution_mode}"]
    if view.warnings:
        out += ["", "**Warnings:**"] + [f"- ⚠ {md(w, limit=1000)}" for w in view.warnings]
    if view.alternatives:
        out += ["", "💡 **Alternatives:**"] + [f"- {md(a, limit=1000)}" for a in view.alternatives]
    return "\n".join(out) + "\n"


def tradeoff_rows(plan: Plan) -> list[tuple[str, ...]]:
    """The move-economy curve as rows: moves, objective, share of the improvement, GiB to copy,
    cold downtime, and a mark on the knee and on the plan itself (`plan --tradeoff`)."""
    if not plan.tradeoff:
        return []
    start, end = plan.tradeoff[0].objective, plan.tradeoff[-1].objective
    gained = start - end
    rows: list[tuple[str, ...]] = []
    for p in plan.tradeoff:
        share = (start - p.objective) / gained * 100 if gained > 1e-12 else 0.0
        cold = f"~{30 * p.cold_moves}-{60 * p.cold_moves}s ({p.cold_moves} cold)" if p.cold_moves else "none"
        marks = []
        if plan.knee is not None and p.moves == plan.knee and p.moves:
            marks.append("◀ knee")
        if p.moves == len(plan.moves) and p.moves:
            marks.append("this plan")
        rows.append(
            (str(p.moves), f"{p.objective:.2f}", f"{share:.0f} %", f"{p.gib_moved:.0f}", cold, ", ".join(marks))
        )
    return rows


_HEADERS_TRADEOFF = ("Moves", "Objective", "Improvement", "GiB to copy", "Cold downtime", "")


def _tradeoff_hint(plan: Plan) -> str:
    if plan.knee:
        return (
            f"The knee: {plan.knee} of {len(plan.moves)} moves. Take the first k with `--max-migrations k` "
            "(it returns the best k-move plan, at least as good as the curve shows)."
        )
    return "Take the first k with `--max-migrations k`."


def render_tradeoff(plan: Plan) -> RenderableType:
    """The tradeoff curve for a terminal."""
    table = Table(title="📈 Moves vs Balance (objective: lower is better)", title_justify="left")
    for h in _HEADERS_TRADEOFF:
        table.add_column(h, no_wrap=True)
    rows = tradeoff_rows(plan)
    for row in rows:
        table.add_row(*row)
    if not rows:
        return Text("No tradeoff curve: the plan has no moves to weigh.")
    return Group(table, Text(_tradeoff_hint(plan)))
