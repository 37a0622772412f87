"""`mcp`: serve vm-rebalance's tools to AI agents over the Model Context Protocol (stdio or HTTP).

The MCP SDK is imported only when the command runs, so `import vm_rebalance` stays cheap.
"""

from enum import StrEnum
from typing import Annotated

import typer

from vm_rebalance.cli.main import app, ctx_obj
from vm_rebalance.cli.options import local_address
from vm_rebalance.cli.options import port as cli_port
from vm_rebalance.cli.usage import (
    DEFAULT_WINDOW,
    PercentileOption,
    PrometheusOption,
    UsageOption,
    WindowOption,
    with_usage,
)
from vm_rebalance.errors import ConfigError


class Transport(StrEnum):
    """MCP transports."""

    stdio = "stdio"
    http = "http"


@app.command()
def mcp(
    ctx: typer.Context,
    transport: Annotated[
        Transport, typer.Option("--transport", help="stdio (default) or http (streamable HTTP).")
    ] = Transport.stdio,
    host: Annotated[
        str,
        typer.Option("--host", help="HTTP: address to bind (localhost unless you say so).", callback=local_address),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="HTTP: port to listen on.", callback=cli_port)] = 8000,
    read_only: Annotated[
        bool,
        typer.Option(
            "--read-only", help="Leave out the tools that change the cluster (execute_plan, vm_lifecycle, unpin_vm)."
        ),
    ] = False,
    usage: UsageOption = "auto",
    prometheus_url: PrometheusOption = None,
    window: WindowOption = DEFAULT_WINDOW,
    percentile: PercentileOption = None,
) -> None:
    """Run the MCP server for AI agents: inventory, plan, modify, explain, execute with approval.

    Nothing changes the cluster without a plan the human approved: changing tools need the plan's
    id, its hash and confirm: true. Uses the global --kubeconfig / --context (or --from-file for
    read and plan tools only). Register it in an MCP client as the command `vm-rebalance mcp`.
    --usage / --prometheus-url / --window / --percentile set where usage comes from (the read
    tools take a window and percentile of their own).
    """
    c = ctx_obj(ctx)
    target = with_usage(c.target, usage, prometheus_url, window, percentile, series=True)
    try:
        from vm_rebalance.mcp_server.server import run
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] == "mcp":
            raise ConfigError("the MCP server needs the MCP SDK", hint="pip install 'vm-rebalance[mcp]'") from exc
        raise
    if transport is Transport.http:
        where = f"http://{host}:{port}/mcp"
        c.err.print(f"vm-rebalance MCP server on {where}" + (" (read-only)" if read_only else ""), highlight=False)
        if host not in ("127.0.0.1", "localhost", "::1"):
            c.err.print(
                f"[yellow]⚠ listening on {host}: the MCP endpoint has no authentication; anyone who can "
                "reach it can plan and (unless --read-only) change the cluster[/yellow]",
                highlight=False,
            )
    run(target, transport=transport.value, host=host, port=port, read_only=read_only, debug=c.debug)
