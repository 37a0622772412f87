"""`plan`: compute a rebalance plan for a goal and show it in the standard format (read-only)."""

from typing import Annotated

import typer

from vm_rebalance import service
from vm_rebalance.cli.main import Output, app, ctx_obj, emit_document, progress_printer
from vm_rebalance.cli.usage import (
    DEFAULT_WINDOW,
    PercentileOption,
    PrometheusOption,
    UsageOption,
    WindowOption,
    with_usage,
)
from vm_rebalance.render.html import plan_html
from vm_rebalance.render.plan import render_plan, render_tradeoff


@app.command()
def plan(
    ctx: typer.Context,
    goal: Annotated[
        str, typer.Option("--goal", "-g", help="cpu, memory, balanced, count, drain or performance.")
    ] = "balanced",
    node: Annotated[str | None, typer.Option("--node", help="The node to drain (with --goal drain).")] = None,
    weights: Annotated[
        str | None, typer.Option("--weights", help="For --goal balanced: e.g. cpu=0.7,memory=0.3 (default 0.5/0.5).")
    ] = None,
    max_migrations: Annotated[int | None, typer.Option("--max-migrations", help="At most this many moves.")] = None,
    basis: Annotated[
        str | None, typer.Option("--basis", help="usage (metrics; default when available) or requests.")
    ] = None,
    live_only: Annotated[bool, typer.Option("--live-only", help="Never plan cold moves of running VMs.")] = False,
    namespace: Annotated[
        list[str] | None, typer.Option("--namespace", "-n", help="Only move VMs of this namespace (repeatable).")
    ] = None,
    headroom: Annotated[
        float, typer.Option("--headroom", help="Keep this % of every node free where possible.")
    ] = 20.0,
    cooldown: Annotated[
        float, typer.Option("--cooldown", help="Minutes after a migration before a VM may move again (not for drain).")
    ] = 60.0,
    sequential: Annotated[bool, typer.Option("--sequential", help="Plan for one move at a time.")] = False,
    min_gain: Annotated[
        float | None,
        typer.Option(
            "--min-gain",
            help="Make a move only when it buys at least this much balance (pp² of squared deviation; "
            "default 25, about 2 points of load moved between nodes 8 points apart; 0: every improving move).",
        ),
    ] = None,
    tradeoff: Annotated[
        bool,
        typer.Option("--tradeoff", help="Also show moves vs objective vs GiB moved vs cold downtime, with the knee."),
    ] = False,
    output: Annotated[Output, typer.Option("--output", "-o", help="table, json or yaml.")] = Output.table,
    save: Annotated[str | None, typer.Option("--save", help="Also write the plan (JSON) to FILE for `apply`.")] = None,
    html: Annotated[
        str | None, typer.Option("--html", help="Also write the plan as a self-contained HTML page with charts.")
    ] = None,
    usage: UsageOption = "auto",
    prometheus_url: PrometheusOption = None,
    window: WindowOption = DEFAULT_WINDOW,
    percentile: PercentileOption = None,
) -> None:
    """Compute the best plan for a goal and show it. Read-only: nothing in the cluster changes.

    Goals: cpu / memory / balanced (weighted) minimise the spread (std dev) of node
    utilisation; count evens out VMs per node by capacity; drain empties --node (what cannot
    move is listed with its reason); performance first brings every node under the warning
    thresholds (CPU 80 %, memory 85 %). Every hard constraint holds in every wave. A move is
    made only when it buys at least --min-gain; a cluster already balanced gets no plan, with
    the reason. --tradeoff shows what fewer moves would buy. Save the plan with --save and
    carry it out with `vm-rebalance apply FILE`. Usage is the sustained load over --window when
    Prometheus is there (--usage, --prometheus-url, --percentile); the goal line says which.
    """
    c = ctx_obj(ctx)
    spec = service.PlanSpec(
        goal=goal,
        node=node,
        weights=service.parse_weights(weights),
        max_migrations=max_migrations,
        basis=basis,
        live_only=live_only,
        namespaces=tuple(namespace or ()),
        headroom=headroom / 100,
        cooldown_seconds=cooldown * 60,
        sequential=sequential,
        min_gain=min_gain,
    )
    spec.to_request()  # bad values are refused before the cluster is read
    target = with_usage(c.target, usage, prometheus_url, window, percentile)
    state = service.read_state(target, progress=progress_printer(c))
    view = service.plan(state, spec)
    doc = view.to_document()
    if save:
        service.write_document(doc, save)
    if html:
        service.write_text(plan_html(view.plan, limits=view.limits, alternatives=view.alternatives), html)
    if output is Output.table:
        c.out.print(render_plan(view.plan, limits=view.limits, alternatives=view.alternatives))
        if tradeoff:
            c.out.print(render_tradeoff(view.plan))
        if save:
            c.err.print(f"plan saved to {save}; carry it out with: vm-rebalance apply {save}", highlight=False)
        if html:
            c.err.print(f"HTML plan written to {html}", highlight=False)
    else:
        emit_document(c, doc, output)
