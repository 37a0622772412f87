"""`controller` (the in-cluster controller) and `approve PLAN` (approve a RebalancePlan by its hash).

kopf and prometheus-client (the `controller` extra) are imported only when `controller` runs.
"""

import logging
import re
import sys
from typing import Annotated

import typer
from rich.markup import escape

from vm_rebalance import service
from vm_rebalance.cli.approval import confirm, require_terminal
from vm_rebalance.cli.main import app, ctx_obj
from vm_rebalance.cli.options import local_address, positive_number
from vm_rebalance.cli.options import port as cli_port
from vm_rebalance.errors import ConfigError
from vm_rebalance.service import incluster

_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_HASH = re.compile(r"(sha256:)?[0-9a-f]{64}")


@app.command()
def controller(
    ctx: typer.Context,
    namespace: Annotated[
        str | None,
        typer.Option(
            "--namespace", help="Namespace of the leader Lease (default: $POD_NAMESPACE, the pod's, else vm-rebalance)."
        ),
    ] = None,
    lease: Annotated[str, typer.Option("--lease", help="Name of the leader-election Lease.")] = "vm-rebalance-leader",
    identity: Annotated[
        str | None, typer.Option("--identity", help="This replica's name in the Lease (default: pod name + random).")
    ] = None,
    host: Annotated[
        str, typer.Option("--host", help="Address of the metrics and probe server.", callback=local_address)
    ] = "0.0.0.0",
    port: Annotated[
        int, typer.Option("--port", help="Port of /metrics, /healthz and /readyz.", callback=cli_port)
    ] = 8080,
    resync: Annotated[
        float,
        typer.Option(
            "--resync", help="Seconds between full reconciliations (schedules, windows).", callback=positive_number
        ),
    ] = 15.0,
    lease_duration: Annotated[
        float, typer.Option("--lease-duration", help="Seconds a leader's claim lasts.", callback=positive_number)
    ] = 15.0,
    renew_deadline: Annotated[
        float,
        typer.Option(
            "--renew-deadline", help="Seconds the leader may fail to renew before it stops.", callback=positive_number
        ),
    ] = 10.0,
    retry_period: Annotated[
        float, typer.Option("--retry-period", help="Seconds between election attempts.", callback=positive_number)
    ] = 2.0,
    shutdown_grace: Annotated[
        float,
        typer.Option(
            "--shutdown-grace",
            help="On SIGTERM: seconds to let running migrations finish before cancelling them.",
            callback=positive_number,
        ),
    ] = 120.0,
    poll_interval: Annotated[
        float,
        typer.Option(
            "--poll-interval", help="Seconds between the executor's checks of migrations.", callback=positive_number
        ),
    ] = 2.0,
    log_level: Annotated[str, typer.Option("--log-level", help="debug, info, warning or error.")] = "info",
) -> None:
    """Run the in-cluster controller: RebalancePolicies make RebalancePlans; approved plans execute.

    Two replicas elect a leader on a Lease; only the leader acts. Serves Prometheus metrics on
    /metrics and probes on /healthz and /readyz. SIGTERM lets running migrations finish (up to
    --shutdown-grace), and the next leader resumes the plan from its status.
    """
    c = ctx_obj(ctx)
    level = getattr(logging, log_level.upper(), None)
    if not isinstance(level, int) or log_level.lower() not in ("debug", "info", "warning", "error"):
        raise typer.BadParameter(
            f"must be debug, info, warning or error, not {log_level!r}", param_hint="'--log-level'"
        )
    if namespace is not None:
        service.check_namespaces([namespace])
    if not _DNS_SUBDOMAIN.fullmatch(lease) or len(lease) > 253:
        raise typer.BadParameter(f"{lease!r} is not a Lease name (a DNS subdomain)", param_hint="'--lease'")
    if identity is not None and not identity.strip():
        raise typer.BadParameter("must not be empty", param_hint="'--identity'")
    try:
        from vm_rebalance.controller import leader, operator
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in ("kopf", "prometheus_client", "croniter"):
            raise ConfigError(
                f"the controller needs {exc.name.split('.')[0]}", hint="pip install 'vm-rebalance[controller]'"
            ) from exc
        raise
    try:
        timing = leader.Timing(lease_duration=lease_duration, renew_deadline=renew_deadline, retry_period=retry_period)
    except ValueError as exc:
        raise typer.BadParameter(
            "need --retry-period < --renew-deadline < --lease-duration", param_hint="'--renew-deadline'"
        ) from exc
    logging.getLogger().setLevel(level)
    logging.getLogger("vm_rebalance").setLevel(level)
    for noisy in ("kubernetes", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)  # the client logs tokens at DEBUG
    logging.getLogger("kopf").setLevel(max(level, logging.INFO))
    logging.getLogger("kopf.objects").setLevel(max(level, logging.WARNING))  # a line per handled event
    options = operator.Options(
        namespace=namespace or operator.default_namespace(),
        lease_name=lease,
        identity=identity or operator.default_identity(),
        host=host,
        port=port,
        resync_seconds=resync,
        timing=timing,
        shutdown_grace_seconds=shutdown_grace,
        execution=service.ExecutionOptions(poll_interval_seconds=poll_interval),
    )
    raise typer.Exit(operator.run(c.target, options))


@app.command()
def approve(
    ctx: typer.Context,
    plan: Annotated[str, typer.Argument(help="The RebalancePlan's name (kubectl get rebalanceplans).")],
    hash_: Annotated[
        str | None,
        typer.Option("--hash", help="Approve only if the plan's hash is this one (the hash you reviewed)."),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Approve without showing the plan and asking.")] = False,
) -> None:
    """Approve a RebalancePlan: set its spec.approvedHash to the hash of the plan it shows now.

    Shows the plan's tables and asks first (or pass --yes, or --hash with the hash you reviewed).
    The controller executes it only if the hash still matches the plan's status.
    """
    c = ctx_obj(ctx)
    if hash_ is not None and not _HASH.fullmatch(hash_.strip().lower()):
        raise typer.BadParameter("must be the plan's sha256 hash (64 hex digits)", param_hint="'--hash'")
    require_terminal(yes or hash_ is not None, f"approving plan {plan}")
    with incluster.InCluster.open(c.target) as cluster:
        current = incluster.read_approval(cluster, plan)
        if not (yes or hash_ is not None):
            for key in ("summary", "moves", "nodes"):
                if current.tables.get(key):
                    c.err.print(escape(current.tables[key]), highlight=False, soft_wrap=True)
                    c.err.print("")
            c.err.print(f"plan hash: {current.plan_hash}", highlight=False)
            if not confirm(c.err, f"approve plan {plan}", yes=False):
                c.err.print("not approved")
                raise typer.Exit(0)
        approved = incluster.approve_plan(cluster, plan, hash_ if hash_ is not None else current.plan_hash)
    sys.stdout.write(f"rebalanceplan {approved.name} approved (hash {approved.plan_hash})\n")
