"""`report`: capacity and right-sizing — action bands, headroom, N+1, right-sizing, workload classes, slots."""

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
from vm_rebalance.render.report import capacity_html, render_capacity


@app.command()
def report(
    ctx: typer.Context,
    output: Annotated[Output, typer.Option("--output", "-o", help="table, json or yaml.")] = Output.table,
    html: Annotated[
        str | None, typer.Option("--html", help="Also write a self-contained HTML report with charts to FILE.")
    ] = None,
    plan: Annotated[
        str | None,
        typer.Option("--plan", help="A saved plan (plan --save FILE): show its nodes before → after."),
    ] = None,
    basis: Annotated[
        str | None, typer.Option("--basis", help="usage (metrics; default when available) or requests.")
    ] = None,
    n_plus_one: Annotated[
        bool,
        typer.Option(
            "--n-plus-one/--no-n-plus-one", help="Simulate losing the largest node (a drain plan of its VMs)."
        ),
    ] = True,
    usage: UsageOption = "auto",
    prometheus_url: PrometheusOption = None,
    window: WindowOption = DEFAULT_WINDOW,
    percentile: PercentileOption = None,
) -> None:
    """Capacity and right-sizing report. Read-only: nothing in the cluster changes.

    Per node and for the cluster: the action band (< 70 % healthy, 70-80 % plan for
    expansion, > 80 % add nodes urgently, > 90 % emergency), headroom against the 20 %
    minimum and the 30-40 % production target, N+1 (can the largest node be lost: its VMs
    placed by the planner's drain rules), VMs to shrink or grow with the evidence, workload
    classes (metrics and the vm-rebalance.io/workload-class annotation) and migration slots
    in use. Sections without data are left out and the report says why.
    """
    c = ctx_obj(ctx)
    spec = service.ReportSpec(basis=basis, plan_file=plan, n_plus_one=n_plus_one)
    target = with_usage(c.target, usage, prometheus_url, window, percentile, series=True)
    view = service.report(target, spec, progress=progress_printer(c))
    if html:
        service.write_text(capacity_html(view.report), html)
    if output is Output.table:
        c.out.print(render_capacity(view.report))
        if html:
            c.err.print(f"HTML report written to {html}", highlight=False)
    else:
        emit_document(c, view.to_document(), output)
