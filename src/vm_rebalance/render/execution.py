"""Execution as people read it: live progress, the final report, and help when a move fails.

`progress_table` and `report_document` are pure; `ProgressTracker` only keeps the latest
event per move. The Markdown forms are for the MCP server. Troubleshooting follows the
seeds' seven common errors.
"""

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, assert_never

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from vm_rebalance.model import ClusterState, Move, Plan
from vm_rebalance.model.execution import (
    FailureKind,
    LifecycleResult,
    LifecycleStatus,
    MoveEvent,
    MoveStatus,
    Outcome,
    outcome_document,
)
from vm_rebalance.render.inventory import inventory_document
from vm_rebalance.render.text import markup, md, plain


def status_icon(status: MoveStatus) -> str:
    """The icon of a move status."""
    match status:
        case MoveStatus.SUCCEEDED:
            return "✓"
        case MoveStatus.FAILED:
            return "✗"
        case MoveStatus.RUNNING:
            return "⏳"
        case MoveStatus.PENDING | MoveStatus.NOT_ATTEMPTED:
            return "⏸"
        case MoveStatus.SKIPPED:
            return "↷"
        case _:
            assert_never(status)


def status_style(status: MoveStatus) -> str:
    """The rich style of a move status."""
    match status:
        case MoveStatus.SUCCEEDED:
            return "green"
        case MoveStatus.FAILED:
            return "bold red"
        case MoveStatus.RUNNING:
            return "cyan"
        case MoveStatus.PENDING | MoveStatus.NOT_ATTEMPTED:
            return "dim"
        case MoveStatus.SKIPPED:
            return "yellow"
        case _:
            assert_never(status)


def status_label(status: MoveStatus) -> str:
    """A move status as the final report's table shows it."""
    match status:
        case MoveStatus.SUCCEEDED:
            return "✓ Success"
        case MoveStatus.FAILED:
            return "✗ Failed"
        case MoveStatus.SKIPPED:
            return "↷ Skipped"
        case MoveStatus.NOT_ATTEMPTED:
            return "⏸ Not attempted"
        case MoveStatus.PENDING | MoveStatus.RUNNING:
            return status.value
        case _:
            assert_never(status)


def duration_text(seconds: float | None) -> str:
    """``42s`` / ``2m 36s`` / ``-``."""
    if seconds is None or math.isnan(seconds):
        return "-"
    s = round(seconds)
    return f"{s // 60}m {s % 60:02d}s" if s >= 60 else f"{s}s"


@dataclass
class ProgressTracker:
    """The latest event of every move, for the live display."""

    plan: Plan
    events: dict[int, MoveEvent] = field(default_factory=dict)

    def handle(self, event: MoveEvent) -> None:
        """Remember an event."""
        self.events[event.move.id] = event

    def counts(self) -> dict[MoveStatus, int]:
        """How many moves are in each status."""
        out = dict.fromkeys(MoveStatus, 0)
        for move in self.plan.moves:
            ev = self.events.get(move.id)
            out[ev.status if ev else MoveStatus.PENDING] += 1
        return out

    def view(self) -> RenderableType:
        """The progress table with a tally line."""
        table = Table(header_style="bold", title="Rebalancing in progress", title_justify="left")
        for col in ("#", "VM", "From", "→", "To", "Type", "Phase", "Elapsed", "Estimate"):
            table.add_column(col)
        for move in self.plan.moves:
            ev = self.events.get(move.id)
            status = ev.status if ev else MoveStatus.PENDING
            phase = ev.phase if ev else "pending"
            table.add_row(
                str(move.id),
                markup(f"{move.namespace}/{move.vm}"),
                markup(move.source or "-"),
                "→",
                markup(move.target),
                move.method.value.capitalize(),
                Text(f"{status_icon(status)} {plain(phase)}", style=status_style(status)),
                duration_text(ev.elapsed_seconds) if ev and status is MoveStatus.RUNNING else "",
                duration_text(ev.estimate_seconds) if ev and ev.estimate_seconds else "",
            )
        c = self.counts()
        done = c[MoveStatus.SUCCEEDED]
        tally = Text(
            f"Status: {done}/{len(self.plan.moves)} migrations complete, {c[MoveStatus.RUNNING]} running, "
            f"{c[MoveStatus.FAILED]} failed"
        )
        return Group(table, tally)


# --------------------------------------------------------------------------- troubleshooting


_RWX = [
    "Live migration needs ReadWriteMany storage (and no host devices): retry this move cold (~30-60s downtime)",
    "or move the disk to an RWX storage class (requires data migration)",
]
_UNSCHEDULABLE = [
    "The target lacks resources or the VM's scheduling rules exclude it: check "
    "`vm-rebalance inventory` for the node's free capacity, taints and labels",
    "choose a different target (retry elsewhere) or remove the VM's nodeSelector / tolerate the taint",
    "the VM is pinned to the target: `vm-rebalance unpin` then `vm-rebalance start` to run it anywhere",
]
_CONVERGENCE = [
    "Large memory or a high dirty-page rate kept the migration from converging",
    "retry (it may succeed on a quieter moment), reduce the VM's load, or retry cold",
    "or raise completionTimeoutPerGiB in the KubeVirt / HyperConverged CR",
]
_RBAC = [
    "vm-rebalance lacks permissions: it needs create/delete on virtualmachineinstancemigrations, "
    "update on virtualmachines and virtualmachines/start|stop (kubevirt.io:migrate on KubeVirt ≥ 1.5); "
    "see the README's RBAC section"
]
_GENERIC = [
    "Check the VM and its migration: `vm-rebalance status` and `kubectl describe vmim -n <ns>`",
    "retry, retry cold, or skip this move",
]


def troubleshooting(outcome: Outcome) -> list[str]:
    """Likely causes and next steps for a failed move (after the seeds' seven common errors), by failure kind."""
    kind = outcome.failure
    if kind is None:
        return []
    match kind:
        case FailureKind.NOT_LIVE_MIGRATABLE:
            return list(_RWX)
        case FailureKind.START_FAILED:
            if outcome.final_node is not None and not outcome.pinned:
                return [
                    f"The VM was rolled back: it runs on {plain(outcome.final_node)} with its original placement",
                    f"{plain(outcome.move.target)} could not take it (reason above): make room there, fix its "
                    "taints or labels, or choose another target (`vm-rebalance inventory` shows the candidates), "
                    "then retry",
                ]
            return list(_UNSCHEDULABLE)
        case FailureKind.MIGRATION_TIMEOUT:
            return list(_CONVERGENCE)
        case FailureKind.MIGRATION_FAILED:
            return [
                "KubeVirt ran the migration and reported it failed (reason above); the VM stays on its source",
                "if it did not converge (large memory, high dirty-page rate): retry at a quieter moment, retry "
                "cold, or raise completionTimeoutPerGiB in the KubeVirt / HyperConverged CR",
                "otherwise check the target node and `kubectl describe vmim -n <ns>`, then retry or skip",
            ]
        case FailureKind.FORBIDDEN:
            return list(_RBAC)
        case FailureKind.MIGRATION_IN_FLIGHT:
            return ["Another migration of this VM is in flight: wait for it (vm-rebalance status), then retry"]
        case FailureKind.CONFLICT:
            return [
                "Something else is editing the VM; vm-rebalance re-reads before every write — retry when it is quiet"
            ]
        case FailureKind.INTERRUPTED:
            return ["Execution was interrupted: `vm-rebalance resume ID` (shown below) continues where it stopped"]
        case FailureKind.USER_AFFINITY:
            return [
                "The VM has a node pin of its own: approve replacing it (--replace-affinity shows old → new) or pick "
                "a node the pin allows"
            ]
        case FailureKind.RUN_STRATEGY:
            return ["The VM's runStrategy does not allow this start/stop: check `kubectl get vm -o yaml`, then retry"]
        case FailureKind.VM_NOT_FOUND | FailureKind.VM_NOT_RUNNING:
            return ["The VM is gone or no longer running: re-plan from the cluster as it is now"]
        case FailureKind.WRONG_NODE | FailureKind.MIGRATION_LOST:
            return ["The VM is not where it should be: check `vm-rebalance inventory`, then retry or re-plan"]
        case FailureKind.CLUSTER_UNAVAILABLE:
            return [
                "The API server kept failing to answer: check the cluster's health, then `vm-rebalance resume ID` "
                "(it finishes or rolls back a cold move left half-way)"
            ]
        case FailureKind.STOP_FAILED | FailureKind.ADMISSION_DENIED | FailureKind.API_ERROR:
            return list(_GENERIC)
        case _:
            assert_never(kind)


# --------------------------------------------------------------------------- final report


def _node_loads(state: ClusterState | None) -> dict[str, dict[str, Any]]:
    if state is None:
        return {}
    doc = inventory_document(state)
    return {n["name"]: n for n in doc["nodes"] if n["eligible"]}


def _util(node: dict[str, Any], key: str) -> float | None:
    value = node.get(f"{key}_usage")
    return value if value is not None else node.get(f"{key}_requests")


def _std(values: Iterable[float | None]) -> float | None:
    vals = [v * 100 for v in values if v is not None]
    if not vals:
        return None
    mean = sum(vals) / len(vals)
    return math.sqrt(sum((v - mean) ** 2 for v in vals) / len(vals))


def execution_result(counts: dict[str, int], *, complete: bool, interrupted: bool) -> str:
    """complete / failed / interrupted / skipped: what the report's header and the exit code follow."""
    if complete:
        return "complete"
    if interrupted:
        return "interrupted"
    if counts.get(MoveStatus.FAILED.value):
        return "failed"
    return "skipped"


_TITLES = {
    "complete": "✓ Rebalancing Complete",
    "failed": "⚠️ Rebalancing Paused - Migration Failed",
    "interrupted": "⏸ Rebalancing Interrupted",
    "skipped": "↷ Rebalancing Finished - Moves Skipped",
}


def report_title(doc: dict[str, Any]) -> str:
    """The report's header: a skipped move is not a failure, an interruption neither."""
    result = doc.get("result") or ("complete" if doc["complete"] else "failed")
    return _TITLES.get(result, _TITLES["failed"])


def report_document(
    plan: Plan,
    outcomes: Iterable[Outcome],
    before: ClusterState,
    after: ClusterState | None,
    *,
    warnings: Iterable[str] = (),
    interrupted: Iterable[str] = (),
) -> dict[str, Any]:
    """The execution report as a versioned document (what -o json prints)."""
    outs = list(outcomes)
    b, a = _node_loads(before), _node_loads(after)
    nodes = []
    for name in sorted(b):
        nb, na = b[name], a.get(name)
        nodes.append(
            {
                "name": name,
                "before": {"vms": nb["vms"], "cpu": _util(nb, "cpu"), "memory": _util(nb, "memory")},
                "after": None
                if na is None
                else {"vms": na["vms"], "cpu": _util(na, "cpu"), "memory": _util(na, "memory")},
            }
        )
    counts = {s.value: sum(1 for o in outs if o.status is s) for s in MoveStatus}
    interrupted = list(interrupted)
    return {
        "apiVersion": "vm-rebalance/v1",
        "kind": "RebalanceReport",
        "goal": plan.goal.type.value,
        "moves": [outcome_document(o) | {"troubleshooting": troubleshooting(o)} for o in outs],
        "counts": counts,
        "complete": all(o.ok for o in outs),
        "result": execution_result(counts, complete=all(o.ok for o in outs), interrupted=bool(interrupted)),
        "nodes": nodes,
        "metrics": {
            "before": {
                "cpu_stddev": _std(_util(n, "cpu") for n in b.values()),
                "memory_stddev": _std(_util(n, "memory") for n in b.values()),
            },
            "after": None
            if not a
            else {
                "cpu_stddev": _std(_util(n, "cpu") for n in a.values()),
                "memory_stddev": _std(_util(n, "memory") for n in a.values()),
            },
        },
        "pinned": [f"{o.move.namespace}/{o.move.vm}" for o in outs if o.pinned],
        "warnings": list(warnings),
        "interrupted": interrupted,
    }


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v * 100:.0f}%"


def _change(b: float | None, a: float | None) -> Text:
    if b is None or a is None:
        return Text("-")
    d = (a - b) * 100
    if abs(d) < 0.5:
        return Text("=", style="dim")
    return Text(f"{d:+.0f}%" + (" ✓" if d < 0 else ""), style="green" if d < 0 else "yellow")


def _to(m: dict[str, Any]) -> str:
    """A move's target as the report shows it (the scheduler's choice when the user named none)."""
    if not m.get("scheduler_chooses"):
        return str(m["to"])
    if m.get("final_node") and m["status"] == MoveStatus.SUCCEEDED.value:
        return f"{m['final_node']} (scheduler's choice)"
    return f"scheduler decides (expected {m['to']})"


def report_view(doc: dict[str, Any]) -> RenderableType:
    """The seeds' final report: executed migrations, cluster state before → after, improvements."""
    parts: list[RenderableType] = []
    complete = doc["complete"]
    title = report_title(doc)
    counts = doc["counts"]
    head = Text(title + "\n", style="bold green" if complete else "bold yellow")
    head.append(
        f"Status: {counts['succeeded']}/{len(doc['moves'])} successful, {counts['failed']} failed, "
        f"{counts['not attempted']} not attempted, {counts['skipped']} skipped",
        style="",
    )
    parts.append(head)
    table = Table(title="Executed migrations", title_justify="left", header_style="bold")
    for col in ("VM", "From", "To", "Type", "Duration", "Status", "Now (read from the cluster)"):
        table.add_column(col)
    for m in doc["moves"]:
        status = MoveStatus(m["status"])
        table.add_row(
            markup(f"{m['namespace']}/{m['vm']}"),
            markup(m["from"] or "-"),
            markup(_to(m)),
            m["method"],
            duration_text(m["duration_seconds"]),
            Text(status_label(status), style=status_style(status)),
            markup(m.get("state") or ("not read" if status is not MoveStatus.NOT_ATTEMPTED else "-")),
        )
    parts.append(table)
    for m in doc["moves"]:
        for note in m.get("notes") or ():
            parts.append(Text(f"• {plain(m['namespace'])}/{plain(m['vm'])}: {plain(note, limit=1000)}", style="dim"))
    failed = [m for m in doc["moves"] if m["status"] == MoveStatus.FAILED.value]
    for m in failed:
        t = Text(f"✗ {plain(m['namespace'])}/{plain(m['vm'])}: {plain(m['error'], limit=1000)}\n", style="red")
        for line in m["troubleshooting"]:
            t.append(f"  • {line}\n", style="")
        parts.append(t)
    if doc["nodes"] and any(n["after"] for n in doc["nodes"]):
        nt = Table(title="Cluster State: Before → After (measured)", title_justify="left", header_style="bold")
        for col in ("Node", "VMs", "CPU Before", "CPU After", "Change", "Memory Before", "Memory After", "Change"):
            nt.add_column(col)
        for n in doc["nodes"]:
            b, a = n["before"], n["after"] or {}
            nt.add_row(
                markup(n["name"]),
                f"{b['vms']} → {a.get('vms', '-')}",
                _pct(b["cpu"]),
                _pct(a.get("cpu")),
                _change(b["cpu"], a.get("cpu")),
                _pct(b["memory"]),
                _pct(a.get("memory")),
                _change(b["memory"], a.get("memory")),
            )
        parts.append(nt)
        mb, ma = doc["metrics"]["before"], doc["metrics"]["after"] or {}
        lines = Text("Improvements: ", style="bold")
        for key, label in (("cpu_stddev", "CPU"), ("memory_stddev", "Memory")):
            if mb.get(key) is not None and ma.get(key) is not None:
                lines.append(f"{label} std dev {mb[key]:.1f} % → {ma[key]:.1f} %  ")
        parts.append(lines)
    if doc["pinned"]:
        parts.append(
            Text(
                f"Pinned by cold migration: {plain(', '.join(doc['pinned']), limit=1000)}. "
                "They stay on their new node even if it fails; remove the pin with `vm-rebalance unpin VM -n NS` "
                "when you want flexible rescheduling.",
                style="yellow",
            )
        )
    for state in doc["interrupted"]:
        parts.append(Text(f"Interrupted: {plain(state, limit=1000)}", style="yellow"))
    for w in doc["warnings"]:
        parts.append(Text(f"⚠ {plain(w, limit=1000)}", style="yellow"))
    if doc.get("resume"):
        parts.append(Text(f"Continue with: {plain(doc['resume'], limit=1000)}", style="bold"))
    return Group(*parts)


def report_markdown(doc: dict[str, Any]) -> str:
    """The final report as Markdown (for agents)."""
    counts = doc["counts"]
    lines = [
        f"## {report_title(doc)}",
        "",
        f"**Status:** {counts['succeeded']}/{len(doc['moves'])} successful, {counts['failed']} failed, "
        f"{counts['not attempted']} not attempted, {counts['skipped']} skipped",
        "",
        "| VM | From | To | Type | Duration | Status | Now |",
        "|----|------|----|------|----------|--------|-----|",
    ]
    for m in doc["moves"]:
        lines.append(
            f"| {md(m['vm'])} | {md(m['from'] or '-')} | {md(_to(m))} | {m['method']} | "
            f"{duration_text(m['duration_seconds'])} | {m['status']} | {md(m.get('state') or '-')} |"
        )
    for m in doc["moves"]:
        if m["status"] == MoveStatus.FAILED.value:
            # The failure reason comes from the cluster: escaped, on one line, capped — never structure.
            lines += [
                "",
                f"**Failed:** {md(m['vm'])}: {md(m['error'] or '', limit=1000)}",
                "",
                "**Troubleshooting:**",
            ]
            lines += [f"- {t}" for t in m["troubleshooting"]]
    if doc["nodes"] and any(n["after"] for n in doc["nodes"]):
        lines += [
            "",
            "**Cluster State: Before → After**",
            "",
            "| Node | CPU Before | CPU After | Memory Before | Memory After |",
            "|------|------------|-----------|---------------|--------------|",
        ]
        for n in doc["nodes"]:
            a = n["after"] or {}
            lines.append(
                f"| {md(n['name'])} | {_pct(n['before']['cpu'])} | {_pct(a.get('cpu'))} | "
                f"{_pct(n['before']['memory'])} | {_pct(a.get('memory'))} |"
            )
    if doc["pinned"]:
        lines += ["", f"Pinned by cold migration: {md(', '.join(doc['pinned']), limit=1000)} (use unpin_vm to remove)."]
    return "\n".join(lines)


DEFAULT_CHOICES: tuple[tuple[str, str], ...] = (
    ("retry", "retry the failed migration with the same settings"),
    ("retry cold", "retry it as a cold migration (~30-60s downtime)"),
    ("skip", "skip it and continue"),
    ("abort", "stop, leave the cluster as it is now"),
)


def failure_choices_text(
    outcome: Outcome,
    not_attempted: list[Move],
    choices: Sequence[tuple[str, str]] = DEFAULT_CHOICES,
    *,
    held: bool = False,
) -> Text:
    """The question after a failure: the choices that apply, each with what it does."""
    t = Text("How would you like to proceed?\n", style="bold")
    if held:
        t.append(
            f"{plain(outcome.move.namespace)}/{plain(outcome.move.vm)} is NOT running: it could not start on "
            f"{plain(outcome.move.target)}. Without an answer it is rolled back "
            "(started with its original placement).\n",
            style="yellow",
        )
    width = max(len(name) for name, _ in choices) + 2
    for name, what in choices:
        if name == "skip":
            what = (
                f"skip {plain(outcome.move.vm)} and continue"
                + (f" with {len(not_attempted)} remaining" if not_attempted else "")
                + (" (rolled back first)" if held else "")
            )
        t.append(f"  {name.ljust(width)}– {what}\n")
    return t


def lifecycle_icon(status: LifecycleStatus) -> str:
    """The icon of a lifecycle result."""
    match status:
        case LifecycleStatus.DONE:
            return "✓"
        case LifecycleStatus.ALREADY:
            return "="
        case LifecycleStatus.FAILED | LifecycleStatus.NOT_FOUND:
            return "✗"
        case _:
            assert_never(status)


def lifecycle_view(results: Iterable[LifecycleResult]) -> RenderableType:
    """Results of start/stop/restart."""
    table = Table(title="VM lifecycle", title_justify="left", header_style="bold")
    for col in ("VM", "Action", "Result", "Status", "RunStrategy", "Duration", "Message"):
        table.add_column(col)
    for r in results:
        style = "green" if r.ok else "red"
        icon = lifecycle_icon(r.status)
        table.add_row(
            markup(f"{r.namespace}/{r.name}"),
            r.action.value,
            Text(f"{icon} {r.status.value}", style=style),
            markup(r.printable_status or "-"),
            markup(r.run_strategy or "-"),
            duration_text(r.duration_seconds),
            markup(r.message, limit=1000),
        )
    return table


def progress_rows(tracker: ProgressTracker, report: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Per-move progress as plain rows; the final report, when given, is authoritative."""
    final = {m["id"]: m for m in report["moves"]} if report else {}
    rows = []
    for m in tracker.plan.moves:
        ev = tracker.events.get(m.id)
        status = (ev.status if ev else MoveStatus.PENDING).value
        elapsed = duration_text(ev.elapsed_seconds) if ev else "-"
        if m.id in final:
            status = final[m.id]["status"]
            elapsed = duration_text(final[m.id]["duration_seconds"])
        rows.append(
            {
                "id": m.id,
                "vm": m.vm,
                "namespace": m.namespace,
                "from": m.source,
                "to": m.target,
                "method": m.method.value,
                "status": status,
                "phase": ev.phase if ev else "pending",
                "elapsed": elapsed,
                "message": (final.get(m.id) or {}).get("error") or (ev.message if ev else ""),
            }
        )
    return rows


def progress_markdown(rows: Iterable[dict[str, Any]], *, title: str = "⏳ Rebalancing in progress") -> str:
    """Per-move progress rows as a Markdown table (for agents polling a running execution)."""
    rows = list(rows)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    lines = [
        f"## {title}",
        "",
        ", ".join(f"{n} {s}" for s, n in counts.items()) or "no moves",
        "",
        "| # | VM | From | → | To | Type | Status | Phase | Elapsed |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        icon = status_icon(MoveStatus(r["status"]))
        lines.append(
            f"| {r['id']} | {md(r['namespace'])}/{md(r['vm'])} | {md(r['from'] or '-')} | → | {md(r['to'])} | "
            f"{r['method'].capitalize()} | {icon} {r['status']} | {md(r['phase'])} | {r['elapsed']} |"
        )
    return "\n".join(lines) + "\n"


def migration_route(source: str | None, target: str | None) -> str:
    """``w1 → w3``, or what is known of it (never question marks)."""
    if source and target:
        return f"{source} → {target}"
    if source:
        return f"from {source} (target not chosen yet)"
    if target:
        return f"→ {target} (source not reported)"
    return "not reported yet"


def status_view(doc: dict[str, Any]) -> RenderableType:
    """`vm-rebalance status`: the cluster's migrations in flight and the unfinished executions, as tables."""
    parts: list[RenderableType] = []
    migrations = doc.get("migrations_in_flight") or []
    if migrations:
        table = Table(title="Migrations in flight", title_justify="left", header_style="bold")
        for col in ("VM", "Phase", "Route", "Migration"):
            table.add_column(col)
        for m in migrations:
            table.add_row(
                markup(f"{m['namespace']}/{m['vm']}"),
                markup(m["phase"] or "Pending"),
                markup(migration_route(m["from"], m["to"])),
                markup(m["name"] or "-"),
            )
        parts.append(table)
    else:
        parts.append(Text("No migration in flight."))
    unfinished = doc.get("unfinished_executions") or []
    if unfinished:
        table = Table(title="Unfinished executions", title_justify="left", header_style="bold")
        for col in ("Execution", "Command", "Started", "Moves", "Needs attention", "Continue with"):
            table.add_column(col)
        for u in unfinished:
            counts = ", ".join(f"{n} {state}" for state, n in sorted(u["moves"].items())) or "-"
            age = u.get("age_seconds")
            started = u["started_at"] + (f" ({_age_text(age)})" if age is not None else "")
            table.add_row(
                markup(u["plan_id"]),
                markup(u.get("command") or "(recorded before commands were kept)"),
                markup(started),
                markup(counts),
                markup(", ".join(u.get("needs_attention") or ()) or "-", limit=1000),
                markup(u["resume"]),
            )
        parts.append(table)
        parts.append(
            Text(
                "Set one aside with `vm-rebalance status --clear ID` (finished journals: --clear finished).",
                style="dim",
            )
        )
    else:
        parts.append(Text("No unfinished vm-rebalance execution."))
    return Group(*parts)


def _age_text(seconds: float) -> str:
    s = int(seconds)
    if s < 120:
        return f"{s} s ago"
    if s < 7200:
        return f"{s // 60} min ago"
    if s < 172800:
        return f"{s // 3600} h ago"
    return f"{s // 86400} days ago"
