"""`demo`: the whole tool on an embedded simulated cluster — inventory, plan, approval, execution."""

import os
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.rule import Rule

from vm_rebalance import service
from vm_rebalance.cli.approval import require_terminal
from vm_rebalance.cli.execute import carry_out
from vm_rebalance.cli.main import Context, Output, app, ctx_obj
from vm_rebalance.cli.options import positive_number
from vm_rebalance.errors import ConfigError
from vm_rebalance.render.inventory import inventory_view


def known_scenario(value: str) -> str:
    """A built-in scenario name or an existing snapshot file."""
    from vm_rebalance.simulator.scenarios import SCENARIOS

    if value in SCENARIOS or Path(value).is_file():
        return value
    raise typer.BadParameter(f"'{value}' is neither a built-in scenario ({', '.join(sorted(SCENARIOS))}) nor a file")


@app.command()
def demo(
    ctx: typer.Context,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Approve the plan without asking.")] = False,
    scenario: Annotated[
        str,
        typer.Option(
            "--scenario",
            help="Simulator scenario: a built-in name (see `simulator serve --help`) or a snapshot file.",
            callback=known_scenario,
        ),
    ] = "demo",
    time_scale: Annotated[
        float,
        typer.Option(
            "--time-scale",
            help="Simulated seconds per wall second (5: the demo takes ~30 s).",
            callback=positive_number,
        ),
    ] = 5.0,
    goal: Annotated[
        str, typer.Option("--goal", help="Planning goal: cpu, memory, balanced, count or performance.")
    ] = "balanced",
) -> None:
    """Try vm-rebalance without a cluster: a simulated imbalanced KubeVirt cluster, a plan, your approval, execution.

    The simulator is a real Kubernetes API server on 127.0.0.1 (HTTPS); everything goes
    through the same code paths as with a real cluster. Nothing outside this process changes.
    """
    c = ctx_obj(ctx)
    if goal == "drain":
        raise ConfigError("the demo does not drain a node; try `vm-rebalance simulator serve` and `drain NODE`")
    spec = service.PlanSpec(goal=goal)
    spec.to_request()  # every bad value is refused before the simulator starts
    require_terminal(yes, "the demo")
    from vm_rebalance.simulator.cluster import SimCluster
    from vm_rebalance.simulator.server import SimulatorServer

    with tempfile.TemporaryDirectory(prefix="vm-rebalance-demo-") as tmp:
        c.err.print(
            f"starting a simulated KubeVirt cluster (scenario '{scenario}', {time_scale:g}× time)…", highlight=False
        )
        cluster = SimCluster.from_scenario(scenario, time_scale=time_scale)
        with SimulatorServer(cluster) as server:
            kubeconfig = Path(tmp) / "kubeconfig"
            server.write_kubeconfig(str(kubeconfig))
            previous = os.environ.get("VM_REBALANCE_STATE_DIR")
            os.environ["VM_REBALANCE_STATE_DIR"] = str(Path(tmp) / "journals")
            try:
                _run(
                    Context(target=service.Target(kubeconfig=str(kubeconfig)), out=c.out, err=c.err, debug=c.debug),
                    yes=yes,
                    spec=spec,
                )
            finally:
                if previous is None:
                    os.environ.pop("VM_REBALANCE_STATE_DIR", None)
                else:
                    os.environ["VM_REBALANCE_STATE_DIR"] = previous


def _run(c: Context, *, yes: bool, spec: service.PlanSpec) -> None:
    session = service.Session.open(c.target)
    try:
        c.out.print(Rule("1. Inventory"))
        c.out.print(inventory_view(service.inventory_of(session.state).document))
        c.out.print(Rule(f"2. Plan (goal: {spec.goal})"))
        view = service.plan(session.state, spec)
        plan = view.plan
        carry_out(
            c,
            session,
            plan,
            yes=yes,
            dry_run=False,
            output=Output.table,
            what="the demo plan",
            options=service.ExecutionOptions(poll_interval_seconds=0.5),
            offered=view,
            resume_hint="the simulated cluster injected a realistic failure; run the demo again, or try "
            "`vm-rebalance simulator serve` and the commands yourself",
        )
        c.out.print(Rule("Done"))
        c.out.print(
            "Next: point vm-rebalance at your cluster — `vm-rebalance inventory`, "
            "`vm-rebalance plan --goal balanced --save plan.json`, `vm-rebalance apply plan.json`.",
            highlight=False,
        )
    finally:
        session.close()
