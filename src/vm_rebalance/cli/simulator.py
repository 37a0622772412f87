"""`simulator serve`: the embedded KubeVirt cluster simulator as a real API server."""

from pathlib import Path
from typing import Annotated

import typer

from vm_rebalance.cli.demo import known_scenario
from vm_rebalance.cli.main import app
from vm_rebalance.cli.options import port_or_any, positive_number
from vm_rebalance.errors import ConfigError

simulator_app = typer.Typer(
    help="The embedded KubeVirt cluster simulator (for demos, tests and trying things out).", no_args_is_help=True
)
app.add_typer(simulator_app, name="simulator")


@simulator_app.command("serve")
def serve(
    scenario: Annotated[
        str,
        typer.Option(
            "--scenario",
            help="Built-in scenario (demo, small, medium, large, …) or a snapshot file.",
            callback=known_scenario,
        ),
    ] = "demo",
    port: Annotated[
        int, typer.Option("--port", help="Port on 127.0.0.1 (0 = any free port).", callback=port_or_any)
    ] = 0,
    kubeconfig_out: Annotated[
        str | None, typer.Option("--kubeconfig-out", help="Write a kubeconfig for this server to FILE.")
    ] = None,
    time_scale: Annotated[
        float,
        typer.Option(
            "--time-scale",
            help="Simulated seconds per wall second (60 = a minute per second).",
            callback=positive_number,
        ),
    ] = 60.0,
    plain_http: Annotated[bool, typer.Option("--http", help="Serve plain HTTP instead of HTTPS.")] = False,
    policy: Annotated[str | None, typer.Option("--policy", help="RBAC-like policy file (YAML).")] = None,
    faults: Annotated[str | None, typer.Option("--faults", help="Fault script (YAML).")] = None,
) -> None:
    """Run a simulated KubeVirt cluster that kubectl and vm-rebalance can talk to, until Ctrl-C."""
    from vm_rebalance.simulator.server import serve as run_server

    if faults and not Path(faults).is_file():
        raise ConfigError(f"fault script '{Path(faults).name}' does not exist")
    if policy and not Path(policy).is_file():
        raise ConfigError(f"policy file '{Path(policy).name}' does not exist")
    try:
        run_server(
            scenario,
            port=port,
            kubeconfig_out=kubeconfig_out,
            time_scale=time_scale,
            tls=not plain_http,
            policy_file=policy,
            faults_file=faults,
        )
    except ValueError as exc:
        # The simulator shares no code with the tool (not even its errors): translate here.
        raise ConfigError(f"the simulator cannot start: {exc}") from exc
    except OSError as exc:  # strerror only: the exception's text holds file paths
        raise ConfigError(f"the simulator cannot start: {exc.strerror or type(exc).__name__}") from exc
