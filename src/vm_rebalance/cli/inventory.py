"""`inventory` and `snapshot`: what is in the cluster, shown or saved."""

import sys
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
from vm_rebalance.errors import ConfigError
from vm_rebalance.render.inventory import inventory_view


@app.command()
def inventory(
    ctx: typer.Context,
    namespace: Annotated[
        list[str] | None, typer.Option("--namespace", "-n", help="Only VMs of this namespace (repeatable).")
    ] = None,
    all_namespaces: Annotated[
        bool, typer.Option("--all-namespaces", "-A", help="VMs of every namespace (default).")
    ] = False,
    output: Annotated[Output, typer.Option("--output", "-o", help="table, json or yaml.")] = Output.table,
    usage: UsageOption = "auto",
    prometheus_url: PrometheusOption = None,
    window: WindowOption = DEFAULT_WINDOW,
    percentile: PercentileOption = None,
) -> None:
    """Show nodes (utilisation, flags, health) and VMs (placement, size, storage, live or cold).

    Nodes are always all shown: their load includes every namespace. CPU and memory are
    shown both by measured usage (metrics-server) and by requests; health turns yellow at
    the warning thresholds (CPU 80 %, memory 85 %) and red at the critical ones (90 %, 95 %).
    """
    c = ctx_obj(ctx)
    if namespace and all_namespaces:
        raise ConfigError("use either --namespace or --all-namespaces, not both")
    target = with_usage(c.target, usage, prometheus_url, window, percentile)
    view = service.inventory(target, namespace or (), progress=progress_printer(c))
    doc = view.to_document()
    if output is Output.table:
        c.out.print(inventory_view(doc))
    else:
        emit_document(c, doc, output)


@app.command()
def snapshot(
    ctx: typer.Context,
    output_file: Annotated[
        str | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")
    ] = None,
    usage: UsageOption = "auto",
    prometheus_url: PrometheusOption = None,
    window: WindowOption = DEFAULT_WINDOW,
    percentile: PercentileOption = None,
) -> None:
    """Save the cluster's state (nodes, pods, storage, VMs, VMIs, migrations, metrics) as a snapshot file.

    The file is a Kubernetes List in JSON; `--from-file FILE` reads it back, so `inventory`
    and `plan` can run offline or on another machine. It holds no credentials. Usage from
    Prometheus (over --window) or the kubelet stats summary is kept as a SustainedUsage object.
    """
    c = ctx_obj(ctx)
    target = with_usage(c.target, usage, prometheus_url, window, percentile, series=True)
    doc = service.take_snapshot(target, progress=progress_printer(c))
    if output_file:
        service.write_document(doc, output_file)
        c.err.print(f"wrote {len(doc['items'])} objects to {output_file}", highlight=False)
    else:
        import json

        sys.stdout.write(json.dumps(doc) + "\n")
