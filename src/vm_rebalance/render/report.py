"""The capacity report for people: rich tables (CLI), Markdown (MCP) and a self-contained HTML page.

The rows of every table are computed once here (``*_rows``) and only formatted by the three
outputs, so they cannot disagree. A section without data is not drawn; its reason is listed
under "Not in this report".
"""

from collections.abc import Sequence

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from vm_rebalance.model import GIB
from vm_rebalance.model.capacity import (
    BAND_MEANINGS,
    CLUSTER_ACTIONS,
    HEADROOM_MEANINGS,
    NODE_ACTIONS,
    SECTION_TITLES,
    Band,
    CapacityReport,
    NodeCapacity,
    SizingAdvice,
    Utilisation,
    WorkloadClass,
)
from vm_rebalance.render.html import (
    MAX_CHART_ROWS,
    BarRow,
    band_badge,
    busiest_series,
    esc,
    page,
    pct,
    plan_rows,
    series_chart,
    table,
    tradeoff_chart,
    utilisation_chart,
)
from vm_rebalance.render.plan import tradeoff_rows
from vm_rebalance.render.text import markup, md, plain

MAX_NODES = 30
MAX_ROWS = 25
BAND_STYLES = {Band.HEALTHY: "green", Band.PLAN: "yellow", Band.URGENT: "dark_orange", Band.EMERGENCY: "bold red"}
SLOT_STYLES = {"ok": "green", "warning": "yellow", "critical": "bold red"}

NODE_HEADERS = ("Node", "VMs", "CPU", "Memory", "CPU req", "Mem req", "Band", "Action")
SIZING_HEADERS = ("VM", "Node", "Resource", "Advice", "Guest", "Used", "Requested", "Use of guest")
WORKLOAD_HEADERS = ("VM", "Node", "Classes", "Type", "Evidence", "Migration considerations")


def _util_text(u: Utilisation | None) -> str:
    return "-" if u is None else f"CPU {pct(u.cpu)}, memory {pct(u.memory)}"


def shown_nodes(report: CapacityReport, limit: int = MAX_NODES) -> tuple[list[NodeCapacity], int]:
    """Nodes worth listing: VM hosts and eligible nodes, bands worst first then busiest; and how many are left out."""
    relevant = [n for n in report.nodes if n.eligible or n.vms]
    ordered = sorted(relevant, key=lambda n: (-list(Band).index(n.band), -n.utilisation.peak, n.name))
    return ordered[:limit], len(relevant) - min(limit, len(relevant))


def node_rows(nodes: Sequence[NodeCapacity]) -> list[tuple[str, ...]]:
    """Rows of the node table: name (with flags), VMs, basis CPU/memory, requests, band, action."""
    return [
        (
            n.name + (f" ({', '.join(n.flags)})" if n.flags else ""),
            str(n.vms),
            pct(n.utilisation.cpu),
            pct(n.utilisation.memory),
            pct(n.requests.cpu),
            pct(n.requests.memory),
            n.band.value,
            NODE_ACTIONS[n.band] + (f" ({n.signal})" if n.signal else ""),
        )
        for n in nodes
    ]


PRESSURE_HEADERS = ("Node", "CPU some", "Memory some", "Memory full", "I/O some", "Band")
SERIES_HEADERS = ("Node", "CPU mean", "CPU min–max", "Memory mean", "Memory min–max")


def pressure_rows(report: CapacityReport, limit: int = MAX_NODES) -> list[tuple[str, ...]]:
    """Nodes with PSI, the most CPU-pressured first: the share of time tasks waited (over the window)."""
    measured = [n for n in report.nodes if n.pressure is not None and (n.eligible or n.vms)]
    measured.sort(key=lambda n: (-(n.pressure.cpu or 0.0) if n.pressure else 0.0, n.name))
    return [
        (n.name, pct(p.cpu), pct(p.memory), pct(p.memory_full), pct(p.io), n.band.value)
        for n in measured[:limit]
        if (p := n.pressure) is not None
    ]


def series_rows(report: CapacityReport, limit: int = MAX_NODES) -> list[tuple[str, ...]]:
    """Per node (busiest first): mean, min and max of CPU and memory over the window."""
    rows: list[tuple[str, ...]] = []
    for name in busiest_series(report.series, limit):
        s = report.series[name]
        rows.append(
            (
                name,
                pct(sum(s.cpu) / len(s.cpu)),
                f"{pct(min(s.cpu))}–{pct(max(s.cpu))}",
                pct(sum(s.memory) / len(s.memory)),
                f"{pct(min(s.memory))}–{pct(max(s.memory))}",
            )
        )
    return rows


def window_text(report: CapacityReport) -> str:
    """``over the last 1 h`` (or an empty string for an instant reading)."""
    if report.window_seconds is None:
        return ""
    hours = report.window_seconds / 3600
    return f"over the last {hours:g} h" if hours >= 1 else f"over the last {report.window_seconds / 60:g} min"


def tradeoff_line(report: CapacityReport) -> str:
    """The plan's trade-off in one sentence: where the knee is."""
    plan = report.plan
    if plan is None or not plan.tradeoff:
        return ""
    start, end = plan.tradeoff[0].objective, plan.tradeoff[-1].objective
    knee = f"the knee at {plan.knee} move(s)" if plan.knee else "no clear knee"
    return f"objective {start:.2f} → {end:.2f} over {len(plan.moves)} move(s); {knee}"


def _size(a: SizingAdvice, amount: int) -> str:
    return f"{amount} vCPU" if a.resource == "cpu" else f"{amount / GIB:.1f} GiB"


def sizing_rows(advice: Sequence[SizingAdvice]) -> list[tuple[str, ...]]:
    """Rows of the right-sizing table with the evidence: guest size, usage, requests."""
    rows: list[tuple[str, ...]] = []
    for a in advice:
        if a.resource == "cpu":
            used = f"{a.used / 1000:.2f} cores"
            requested = f"{a.requested / 1000:.2f} cores"
        else:
            used = f"{a.used / GIB:.1f} GiB"
            requested = f"{a.requested / GIB:.1f} GiB"
        rows.append(
            (
                f"{a.namespace}/{a.vm}",
                a.node or "-",
                a.resource,
                f"{a.direction.value} to {_size(a, a.suggested)}",
                _size(a, a.guest),
                used,
                requested,
                pct(a.utilisation),
            )
        )
    return rows


def workload_rows(report: CapacityReport) -> list[tuple[str, ...]]:
    """Rows of the workload-class table."""
    return [
        (
            f"{w.namespace}/{w.vm}",
            w.node or "-",
            ", ".join(k.value for k in w.classes) or "general",
            w.workload_type or "-",
            "; ".join(w.evidence),
            "; ".join(w.considerations) or "-",
        )
        for w in report.workloads
    ]


def class_counts(report: CapacityReport) -> str:
    """``cpu 3 · memory 1 · io 0 · network 2`` over the classified VMs."""
    return " · ".join(f"{k.value} {sum(1 for w in report.workloads if k in w.classes)}" for k in WorkloadClass)


def n_plus_one_lines(report: CapacityReport) -> list[str]:
    """The N+1 verdict and its figures, one statement per line."""
    n1 = report.n_plus_one
    if n1 is None:
        return []
    verdict = (
        f"✓ The cluster can lose {n1.node}: all {n1.vms} of its running VM(s) find a place"
        if n1.fits
        else f"✗ The cluster cannot lose {n1.node}: {len(n1.unplaced)} of its {n1.vms} running VM(s) find no place"
    )
    lines = [verdict, f"Chosen as the {n1.why}."]
    if n1.make_room_moves:
        lines.append(f"Placing them needs {n1.make_room_moves} other VM(s) moved to make room.")
    if n1.cold:
        lines.append(f"{n1.cold} of them cannot move live (a drain moves them cold; a failure restarts them).")
    if n1.after is not None and n1.after_band is not None:
        lines.append(
            f"Afterwards the remaining nodes run at {_util_text(n1.after)} (band {n1.after_band.value}: "
            f"{CLUSTER_ACTIONS[n1.after_band]})"
            + (
                f"; busiest {n1.hottest_after} at {_util_text(n1.hottest_after_utilisation)}"
                if n1.hottest_after
                else ""
            )
            + "."
        )
    return lines


def slots_line(report: CapacityReport) -> str:
    """Migrations in flight against the limits, one line."""
    s = report.slots
    if s is None:
        return ""
    text = (
        f"{s.in_flight} of {s.cluster_limit} cluster-wide migration slots in use ({pct(s.usage)}, {s.status}); "
        f"per source node limit {s.per_node_limit}"
    )
    if s.nodes_at_limit:
        text += f"; at their limit: {', '.join(s.nodes_at_limit)}"
    return text


def absent_lines(report: CapacityReport) -> list[str]:
    """ "Title: why it is absent" for every optional section without data."""
    return [f"{SECTION_TITLES.get(s.name, s.name)}: {s.reason}" for s in report.absent]


def headroom_line(report: CapacityReport) -> str:
    """Headroom on the basis and by requests against 20 % / 30–40 %."""
    h = report.headroom
    line = f"Headroom ({report.basis}): CPU {pct(h.cpu)}, memory {pct(h.memory)} — {HEADROOM_MEANINGS[h.status]}"
    if report.basis != "requests":
        line += (
            f". By requests (what the scheduler can still place): CPU {pct(h.requests_cpu)}, "
            f"memory {pct(h.requests_memory)} ({h.requests_status.value})"
        )
    return line


# ------------------------------------------------------------------------------ rich


def render_capacity(report: CapacityReport, *, max_nodes: int = MAX_NODES, max_rows: int = MAX_ROWS) -> RenderableType:
    """The report for a terminal: ``console.print(render_capacity(report))``."""
    parts = _summary_parts(report)
    parts += _node_parts(report, max_nodes)
    parts += _n_plus_one_parts(report, max_rows)
    parts += _sizing_parts(report, max_rows)
    parts += _workload_parts(report, max_rows)
    parts += _slot_and_plan_parts(report, max_nodes)
    parts += _signal_parts(report, max_nodes)
    parts += _closing_parts(report)
    return Group(*parts)


def _signal_parts(report: CapacityReport, max_nodes: int) -> list[RenderableType]:
    """Pressure, utilisation over the window and the plan's trade-off, where the report has them."""
    parts: list[RenderableType] = []
    for available, title, headers, rows in (
        (
            report.section("pressure").available,
            "Pressure (PSI: share of time tasks waited)",
            PRESSURE_HEADERS,
            pressure_rows(report, max_nodes),
        ),
        (
            report.section("utilisation_over_time").available,
            f"Utilisation {window_text(report)}",
            SERIES_HEADERS,
            series_rows(report, max_nodes),
        ),
    ):
        if available and rows:
            t = Table(title=title, title_justify="left", header_style="bold")
            for h in headers:
                t.add_column(h, justify="left" if h == "Node" else "right")
            for row in rows:
                t.add_row(*row)
            parts += [Text(""), t]
    if report.section("tradeoff").available:
        parts += [Text(""), Text(f"Move trade-off: {tradeoff_line(report)}", style="bold")]
    return parts


def _summary_parts(report: CapacityReport) -> list[RenderableType]:
    c = report.cluster
    head = Text()
    head.append("Capacity report", style="bold")
    head.append(f" — basis: {report.basis} ({report.observation})", style="dim")
    band = Text()
    band.append("Cluster band: ", style="bold")
    band.append(f"{c.band.value} ({BAND_MEANINGS[c.band]})", style=BAND_STYLES[c.band])
    band.append(f" — {CLUSTER_ACTIONS[c.band]}")
    counts = Text(
        f"{c.eligible_nodes} of {c.nodes} nodes can host VMs; {c.running_vms} of {c.vms} VMs running; "
        f"utilisation {_util_text(c.utilisation)}; requests {_util_text(c.requests)}"
    )
    return [head, band, counts, Text(headroom_line(report))]


def _node_parts(report: CapacityReport, max_nodes: int) -> list[RenderableType]:
    shown, hidden = shown_nodes(report, max_nodes)
    nodes = Table(title="Nodes", title_justify="left", header_style="bold")
    for h in NODE_HEADERS:
        nodes.add_column(h, justify="right" if h in ("VMs", "CPU", "Memory", "CPU req", "Mem req") else "left")
    for n, row in zip(shown, node_rows(shown), strict=True):
        nodes.add_row(*(markup(c) for c in row[:6]), Text(plain(row[6]), style=BAND_STYLES[n.band]), markup(row[7]))
    parts: list[RenderableType] = [Text(""), nodes]
    if hidden:
        parts.append(Text(f"{hidden} other node(s) not listed (healthier); all are in -o json", style="dim"))
    return parts


def _n_plus_one_parts(report: CapacityReport, max_rows: int) -> list[RenderableType]:
    n1 = report.n_plus_one
    if n1 is None:
        return []
    parts: list[RenderableType] = [Text(""), Text("N+1: losing the largest node", style="bold")]
    for k, line in enumerate(n_plus_one_lines(report)):
        style = ("green" if n1.fits else "bold red") if k == 0 else ""
        parts.append(Text(line, style=style))
    parts += [
        Text(f"  - {plain(u.namespace)}/{plain(u.vm)}: {plain(u.reason, limit=1000)}") for u in n1.unplaced[:max_rows]
    ]
    return parts


def _sizing_parts(report: CapacityReport, max_rows: int) -> list[RenderableType]:
    if not report.section("right_sizing").available:
        return []
    if not report.right_sizing:
        return [Text(""), Text("Right-sizing: every measured VM is within its sizing targets.", style="green")]
    sizing = Table(title="Right-sizing", title_justify="left", header_style="bold")
    for h in SIZING_HEADERS:
        sizing.add_column(h)
    for row in sizing_rows(report.right_sizing[:max_rows]):
        sizing.add_row(*(markup(c) for c in row))
    parts: list[RenderableType] = [Text(""), sizing]
    if len(report.right_sizing) > max_rows:
        parts.append(Text(f"… and {len(report.right_sizing) - max_rows} more (see -o json)", style="dim"))
    return parts


def _workload_parts(report: CapacityReport, max_rows: int) -> list[RenderableType]:
    parts: list[RenderableType] = [Text(""), Text(f"Workload classes: {class_counts(report)}", style="bold")]
    if not report.workloads:
        parts.append(Text("No VM shows a class (all general purpose by metrics and annotations).", style="dim"))
        return parts
    work = Table(header_style="bold")
    for h in WORKLOAD_HEADERS:
        work.add_column(h)
    for row in workload_rows(report)[:max_rows]:
        work.add_row(*(markup(c) for c in row))  # annotations are data, not rich markup
    parts.append(work)
    if len(report.workloads) > max_rows:
        parts.append(Text(f"… and {len(report.workloads) - max_rows} more (see -o json)", style="dim"))
    return parts


def _slot_and_plan_parts(report: CapacityReport, max_nodes: int) -> list[RenderableType]:
    parts: list[RenderableType] = []
    if report.slots is not None:
        slot = Text("Migration slots: ", style="bold")
        slot.append(slots_line(report), style=SLOT_STYLES.get(report.slots.status, ""))
        parts += [Text(""), slot]
    if report.plan is not None:
        rows, _ = plan_rows(report.plan.nodes, limit=max_nodes)
        plan = Table(title=f"Plan ({report.plan.goal.type.value}): nodes before → after", title_justify="left")
        for h in ("Node", "CPU now", "CPU after", "Memory now", "Memory after"):
            plan.add_column(h, justify="left" if h == "Node" else "right")
        for r in rows:
            plan.add_row(markup(r.label), pct(r.cpu_before), pct(r.cpu), pct(r.memory_before), pct(r.memory))
        parts += [Text(""), plan]
    return parts


def _closing_parts(report: CapacityReport) -> list[RenderableType]:
    parts: list[RenderableType] = []
    absent = absent_lines(report)
    if absent:
        parts += [Text(""), Text("Not in this report:", style="bold")]
        parts += [Text(f"  • {line}", style="dim") for line in absent]
    if report.warnings:
        parts.append(Text(""))
        parts += [Text(f"⚠ {w}", style="yellow") for w in report.warnings]
    return parts


# ------------------------------------------------------------------------------ markdown


def _md(text: object) -> str:
    return md(text)  # cluster text is data: escaped, one line, capped (render/text.py)


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" for _ in headers) + "|",
        *("| " + " | ".join(_md(c) for c in row) + " |" for row in rows),
    ]


def capacity_markdown(report: CapacityReport, *, max_nodes: int = MAX_NODES, max_rows: int = MAX_ROWS) -> str:
    """The report as Markdown (what the MCP tool returns)."""
    c = report.cluster
    out = [
        "## Capacity report",
        "",
        f"**Basis:** {report.basis} ({_md(report.observation)})",
        f"**Cluster band:** {c.band.value} ({BAND_MEANINGS[c.band]}) — {CLUSTER_ACTIONS[c.band]}",
        f"**Cluster:** {c.eligible_nodes} of {c.nodes} nodes can host VMs; {c.running_vms} of {c.vms} VMs running; "
        f"utilisation {_util_text(c.utilisation)}; requests {_util_text(c.requests)}",
        f"**{headroom_line(report)}**",
        "",
        "### Nodes",
        "",
    ]
    shown, hidden = shown_nodes(report, max_nodes)
    out += _md_table(NODE_HEADERS, node_rows(shown))
    if hidden:
        out += ["", f"{hidden} other node(s) not listed (healthier); all are in the document"]
    if report.n_plus_one is not None:
        out += ["", "### N+1: losing the largest node", ""]
        out += n_plus_one_lines(report)
        out += [f"- {_md(u.namespace)}/{_md(u.vm)}: {_md(u.reason)}" for u in report.n_plus_one.unplaced[:max_rows]]
    if report.section("right_sizing").available:
        out += ["", "### Right-sizing", ""]
        if report.right_sizing:
            out += _md_table(SIZING_HEADERS, sizing_rows(report.right_sizing[:max_rows]))
            if len(report.right_sizing) > max_rows:
                out += ["", f"… and {len(report.right_sizing) - max_rows} more (see the document)"]
        else:
            out.append("Every measured VM is within its sizing targets.")
    out += ["", f"### Workload classes ({class_counts(report)})", ""]
    if report.workloads:
        out += _md_table(WORKLOAD_HEADERS, workload_rows(report)[:max_rows])
        if len(report.workloads) > max_rows:
            out += ["", f"… and {len(report.workloads) - max_rows} more (see the document)"]
    else:
        out.append("No VM shows a class (all general purpose by metrics and annotations).")
    if report.slots is not None:
        out += ["", f"**Migration slots:** {slots_line(report)}"]
    if report.plan is not None:
        rows, _ = plan_rows(report.plan.nodes, limit=max_nodes)
        out += ["", f"### Plan ({report.plan.goal.type.value}): nodes before → after", ""]
        out += _md_table(
            ("Node", "CPU now", "CPU after", "Memory now", "Memory after"),
            [(r.label, pct(r.cpu_before), pct(r.cpu), pct(r.memory_before), pct(r.memory)) for r in rows],
        )
    if report.section("pressure").available:
        out += ["", "### Pressure (PSI: share of time tasks waited)", ""]
        out += _md_table(PRESSURE_HEADERS, pressure_rows(report, max_nodes))
    if report.section("utilisation_over_time").available:
        out += ["", f"### Utilisation {window_text(report)}", ""]
        out += _md_table(SERIES_HEADERS, series_rows(report, max_nodes))
    if report.section("tradeoff").available:
        out += ["", f"**Move trade-off:** {_md(tradeoff_line(report))}"]
    absent = absent_lines(report)
    if absent:
        out += ["", "**Not in this report:**"] + [f"- {_md(line)}" for line in absent]
    if report.warnings:
        out += ["", "**Warnings:**"] + [f"- ⚠ {_md(w)}" for w in report.warnings]
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------ html


def _card(key: str, value: str, extra: str = "") -> str:
    return f'<div class="card"><div class="k">{esc(key)}</div><div class="v">{value}</div>{extra}</div>'


def _slots_svg(report: CapacityReport) -> str:
    s = report.slots
    assert s is not None
    cells = max(s.cluster_limit, s.in_flight)
    width = 40 + cells * 34
    colour = {"ok": "#2e7d32", "warning": "#c88a00", "critical": "#c62828"}[s.status]
    parts = [
        f'<svg class="chart" id="migration-slots" data-chart="migration-slots" role="img" '
        f'aria-label="Migration slots in use" viewBox="0 0 {width} 44" style="max-width:{width}px" '
        'xmlns="http://www.w3.org/2000/svg"><title>Migration slots in use</title>'
    ]
    for i in range(cells):
        fill = colour if i < s.in_flight else "#fff"
        parts.append(
            f'<rect class="slot" x="{10 + i * 34}" y="6" width="28" height="28" rx="4" fill="{fill}" '
            f'stroke="#8a92a3"><title>slot {i + 1}: {"in use" if i < s.in_flight else "free"}</title></rect>'
        )
    parts.append("</svg>")
    return "".join(parts)


def capacity_html(report: CapacityReport) -> str:
    """The report as a self-contained HTML page (`report --html FILE`)."""
    body = _html_overview(report)
    body += _html_bands(report)
    body += _html_signals(report)
    body += _html_plan(report)
    body += _html_n_plus_one(report)
    body += _html_slots_and_sizing(report)
    body += _html_workloads_and_notes(report)
    return page("Capacity report", body)


def _html_overview(report: CapacityReport) -> list[str]:
    c, h = report.cluster, report.headroom
    body = [
        "<h1>Capacity report</h1>",
        f'<p class="meta">Source: {esc(report.source)} · basis: {esc(report.basis)} — {esc(report.observation)}'
        + (f" · KubeVirt {esc(report.kubevirt_version)}" if report.kubevirt_version else "")
        + "</p>",
        '<div class="cards">',
        _card("Cluster band", band_badge(c.band), f"<div>{esc(CLUSTER_ACTIONS[c.band])}</div>"),
        _card("Utilisation", f"{pct(c.utilisation.cpu)} / {pct(c.utilisation.memory)}", "<div>CPU / memory</div>"),
        _card(
            "Headroom",
            f"{pct(h.cpu)} / {pct(h.memory)}",
            f"<div>{esc(h.status.value)}: target ≥ 20 %, production 30–40 %</div>",
        ),
        _card("Nodes", f"{c.eligible_nodes} / {c.nodes}", "<div>can host VMs / all</div>"),
        _card("VMs", f"{c.running_vms} / {c.vms}", "<div>running / all</div>"),
    ]
    if report.n_plus_one is not None:
        n1 = report.n_plus_one
        verdict = '<span class="ok">✓ yes</span>' if n1.fits else '<span class="critical">✗ no</span>'
        body.append(_card("N+1", verdict, f"<div>losing {esc(n1.node)}</div>"))
    body.append("</div>")
    body.append(f"<p>{esc(headroom_line(report))}.</p>")
    return body


def _html_bands(report: CapacityReport) -> list[str]:
    c = report.cluster
    body = [f"<h2>Utilisation and action bands ({esc(report.basis)})</h2>"]
    relevant = [n for n in report.nodes if n.eligible or n.vms]
    drawn = sorted(relevant, key=lambda n: (-n.utilisation.peak, n.name))[:MAX_CHART_ROWS]
    rows = [BarRow("cluster", c.utilisation.cpu, c.utilisation.memory)] + [
        BarRow(n.name, n.utilisation.cpu, n.utilisation.memory) for n in drawn
    ]
    body.append(utilisation_chart(rows, chart_id="node-utilisation", title="Per-node utilisation by action band"))
    if len(relevant) > len(drawn):
        body.append(
            f'<p class="absent">{len(relevant) - len(drawn)} less busy node(s) not drawn; all are listed below.</p>'
        )
    band_rows = [[band_badge(b), esc(BAND_MEANINGS[b]), esc(CLUSTER_ACTIONS[b]), esc(NODE_ACTIONS[b])] for b in Band]
    body.append(table(("Band", "Utilisation", "Cluster action", "Node action"), band_rows))
    all_rows = node_rows(sorted(relevant, key=lambda n: n.name))
    body.append(
        f"<details><summary>All {len(all_rows)} node(s)</summary>"
        + table(NODE_HEADERS, [[esc(x) for x in r] for r in all_rows], numeric=(1, 2, 3, 4, 5))
        + "</details>"
    )
    return body


def _html_plan(report: CapacityReport) -> list[str]:
    plan = report.plan
    if plan is None:
        return []
    rows_p, left_out = plan_rows(plan.nodes)
    body = [f"<h2>Plan ({esc(plan.goal.type.value)}, {len(plan.moves)} move(s)): nodes before → after</h2>"]
    if plan.moves and rows_p:
        body.append(utilisation_chart(rows_p, chart_id="plan-before-after", title="Nodes before and after the plan"))
        if left_out:
            body.append(f'<p class="absent">{left_out} more node(s) not drawn (unchanged, less busy)</p>')
    else:
        body.append('<p class="absent">The plan moves nothing: no before → after chart.</p>')
    if report.section("tradeoff").available:
        body.append(f"<h3>Move trade-off: {esc(tradeoff_line(report))}</h3>")
        body.append(tradeoff_chart(plan.tradeoff, knee=plan.knee, moves=len(plan.moves), chart_id="report-tradeoff"))
        body.append(
            "<details><summary>The curve as a table</summary>"
            + table(
                ("Moves", "Objective", "Improvement", "GiB to copy", "Cold downtime", ""),
                [[esc(x) for x in r] for r in tradeoff_rows(plan)],
            )
            + "</details>"
        )
    return body


def _html_signals(report: CapacityReport) -> list[str]:
    body: list[str] = []
    if report.section("utilisation_over_time").available:
        body.append(f"<h2>Utilisation {esc(window_text(report))}</h2>")
        body.append(
            series_chart(report.series, chart_id="utilisation-over-time", title="Node utilisation over the window")
        )
        body.append(
            "<details><summary>Mean, minimum and maximum per node</summary>"
            + table(SERIES_HEADERS, [[esc(x) for x in r] for r in series_rows(report, len(report.series))])
            + "</details>"
        )
    if report.section("pressure").available:
        body.append("<h2>Pressure (PSI)</h2>")
        body.append(
            "<p>The share of time tasks waited for CPU, memory or I/O. A node whose CPU pressure is at or above "
            "10 % is hot from 70 % CPU (memory: 5 % from 80 %).</p>"
        )
        body.append(table(PRESSURE_HEADERS, [[esc(x) for x in r] for r in pressure_rows(report)], numeric=(1, 2, 3, 4)))
    return body


def _html_n_plus_one(report: CapacityReport) -> list[str]:
    n1, c = report.n_plus_one, report.cluster
    if n1 is None:
        return []
    body = ["<h2>N+1: losing the largest node</h2>"]
    body += [f"<p>{esc(line)}</p>" for line in n_plus_one_lines(report)]
    if n1.after is not None:
        now_after = BarRow(
            "cluster", n1.after.cpu, n1.after.memory, cpu_before=c.utilisation.cpu, memory_before=c.utilisation.memory
        )
        body.append(
            utilisation_chart(
                [now_after], chart_id="n-plus-one", title=f"Cluster utilisation now and after losing {n1.node}"
            )
        )
    if n1.unplaced:
        body.append(
            table(
                ("VM", "Why it finds no place"),
                [[esc(f"{u.namespace}/{u.vm}"), esc(u.reason)] for u in n1.unplaced],
            )
        )
    return body


def _html_slots_and_sizing(report: CapacityReport) -> list[str]:
    body: list[str] = []
    if report.slots is not None:
        body.append("<h2>Migration slots</h2>")
        body.append(_slots_svg(report))
        body.append(f'<p class="{esc(report.slots.status)}">{esc(slots_line(report))}</p>')
    if not report.section("right_sizing").available:
        return body
    body.append("<h2>Right-sizing</h2>")
    if not report.right_sizing:
        body.append('<p class="ok">Every measured VM is within its sizing targets.</p>')
        return body
    body.append(
        "<p>Targets (seed 003): CPU 60–70 % of the vCPUs, memory 70–80 % of the guest. Evidence: "
        f"{esc(report.observation)}.</p>"
    )
    body.append(
        table(SIZING_HEADERS, [[esc(x) for x in r] for r in sizing_rows(report.right_sizing)], numeric=(4, 5, 6, 7))
    )
    return body


def _html_workloads_and_notes(report: CapacityReport) -> list[str]:
    body = [f"<h2>Workload classes</h2><p>{esc(class_counts(report))}</p>"]
    if report.workloads:
        body.append(table(WORKLOAD_HEADERS, [[esc(x) for x in r] for r in workload_rows(report)]))
    else:
        body.append('<p class="absent">No VM shows a class (all general purpose by metrics and annotations).</p>')
    absent = absent_lines(report)
    if absent:
        body.append('<h2>Not in this report</h2><ul class="absent">')
        body += [f"<li>{esc(line)}</li>" for line in absent]
        body.append("</ul>")
    if report.warnings:
        body.append('<h2>Warnings</h2><ul class="warn">' + "".join(f"<li>⚠ {esc(w)}</li>" for w in report.warnings))
        body.append("</ul>")
    return body


__all__ = [
    "absent_lines",
    "capacity_html",
    "capacity_markdown",
    "class_counts",
    "headroom_line",
    "n_plus_one_lines",
    "node_rows",
    "pressure_rows",
    "render_capacity",
    "series_rows",
    "shown_nodes",
    "sizing_rows",
    "slots_line",
    "workload_rows",
]
