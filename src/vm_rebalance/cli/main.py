"""The `vm-rebalance` command: global options, sub-commands, and the one error boundary.

Thin by design: parse, call `vm_rebalance.service`, render, exit. Data goes to stdout,
diagnostics and progress to stderr, so `-o json | jq` always works.
"""

import logging
import sys
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, NoReturn

import click
import typer
from rich.console import Console
from rich.markup import escape

from vm_rebalance import __version__, service
from vm_rebalance.errors import ExitCode, RebalanceError

app = typer.Typer(
    name="vm-rebalance",
    help=(
        "Plan and execute the rebalancing of KubeVirt / OpenShift Virtualization VMs across nodes.\n\n"
        "Reads the cluster from your kubeconfig (or --from-file SNAPSHOT), shows a plan in the standard "
        "two-table format, and changes nothing without your approval. Try it without a cluster: "
        "vm-rebalance demo"
    ),
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish, PowerShell
    pretty_exceptions_enable=False,  # tracebacks hold locals (tokens); the boundary below handles errors
    rich_markup_mode="rich",
)


class Output(StrEnum):
    """Output formats."""

    table = "table"
    json = "json"
    yaml = "yaml"


@dataclass(frozen=True, slots=True)
class Context:
    """What every command needs: the target cluster and the consoles."""

    target: service.Target
    out: Console
    err: Console
    debug: bool = False


def ctx_obj(ctx: typer.Context) -> Context:
    """The typed context object set by the main callback."""
    obj = ctx.find_root().obj
    assert isinstance(obj, Context)
    return obj


def _print_version(value: bool) -> None:
    if value:
        sys.stdout.write(f"vm-rebalance {__version__}\n")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    kubeconfig: Annotated[
        str | None,
        typer.Option(
            "--kubeconfig",
            help="Path to the kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster).",
            envvar="VM_REBALANCE_KUBECONFIG",
            show_default=False,
        ),
    ] = None,
    context: Annotated[str | None, typer.Option("--context", help="The kubeconfig context to use.")] = None,
    from_file: Annotated[
        str | None,
        typer.Option(
            "--from-file", "-f", help="Work offline on a snapshot file (see `snapshot`) instead of a live cluster."
        ),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of internal errors and debug logs.")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", help="Print the version and exit.", callback=_print_version, is_eager=True),
    ] = False,
) -> None:
    """Global options."""
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # The Kubernetes client logs request headers (bearer tokens) at DEBUG: keep it quiet always.
    for noisy in ("kubernetes", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    ctx.obj = Context(
        target=service.Target(from_file=from_file, kubeconfig=kubeconfig, context=context),
        # Piped output keeps full rows instead of rich's 80-column default.
        out=Console(soft_wrap=False, width=None if sys.stdout.isatty() else 200),
        err=Console(stderr=True),
        debug=debug,
    )


def emit_document(c: Context, document: Any, output: Output) -> None:
    """Write a JSON or YAML document to stdout."""
    if output is Output.json:
        import json

        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    else:
        import yaml

        sys.stdout.write(yaml.safe_dump(document, sort_keys=False, allow_unicode=True))


def progress_printer(c: Context) -> service.Progress:
    """A progress callback that writes a transient status line to stderr."""

    def show(message: str) -> None:
        if c.err.is_terminal:
            c.err.print(f"[dim]{message}…[/dim]", end="\r")

    return show


def _register() -> None:
    # Commands live in their own modules; importing them registers them on `app`.
    # Import order is the order of `--help`: read, plan, change, then the extras.
    from vm_rebalance.cli import inventory  # noqa: F401, I001
    from vm_rebalance.cli import plan  # noqa: F401
    from vm_rebalance.cli import report  # noqa: F401
    from vm_rebalance.cli import execute  # noqa: F401
    from vm_rebalance.cli import demo, mcp, simulator  # noqa: F401
    from vm_rebalance.cli import controller  # noqa: F401


def fail(err: Console, error: RebalanceError) -> NoReturn:
    """Print a RebalanceError as one line (plus hint) and exit with its code."""
    # Messages quote user input (quantities, names): never let rich read it as markup.
    err.print(f"[bold red]error:[/bold red] {escape(str(error))}", highlight=False, soft_wrap=True)
    for reason in getattr(error, "blocking", ())[:20]:
        err.print(f"  - {escape(reason)}", highlight=False, soft_wrap=True)
    if error.hint:
        err.print(f"[dim]hint:[/dim] {escape(error.hint)}", highlight=False, soft_wrap=True)
    raise SystemExit(int(error.exit_code))


# Recent typer releases carry their own copy of click (typer.Exit, typer.Abort and usage errors
# deriving from typer.TyperException); older ones re-export click's. Catch both families.
_ABORT: tuple[type[BaseException], ...] = (click.exceptions.Abort, typer.Abort)
_EXIT: tuple[type[BaseException], ...] = (click.exceptions.Exit, typer.Exit)
_USAGE: tuple[type[BaseException], ...] = (
    click.ClickException,
    getattr(typer, "TyperException", click.ClickException),
)


def usage_message(exc: BaseException) -> str:
    """A usage error as one line: what is wrong, and where to read how it should be."""
    formatter = getattr(exc, "format_message", None)
    message = formatter() if callable(formatter) else str(exc)
    message = " ".join(str(message).split())  # click wraps some messages over lines
    ctx = getattr(exc, "ctx", None)
    command = getattr(ctx, "command_path", None) or "vm-rebalance"
    return f"{message} (see '{command} --help')"


def run(argv: list[str] | None = None) -> NoReturn:
    """Console-script entry point: the error boundary."""
    _register()
    err = Console(stderr=True)
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        # Without standalone mode click/typer *return* an exit code for Exit (typer turns Ctrl-C
        # into Exit(130)) instead of raising it.
        returned = app(args=argv, prog_name="vm-rebalance", standalone_mode=False)
        if isinstance(returned, int) and not isinstance(returned, bool) and returned != 0:
            if returned == ExitCode.INTERRUPTED:
                err.print("interrupted")
            raise SystemExit(returned)
    except RebalanceError as error:
        fail(err, error)
    except _ABORT:
        err.print("interrupted")
        raise SystemExit(int(ExitCode.INTERRUPTED)) from None
    except _EXIT as exc:
        raise SystemExit(getattr(exc, "exit_code", 0)) from None
    except _USAGE as exc:
        err.print(f"[bold red]error:[/bold red] {escape(usage_message(exc))}", highlight=False, soft_wrap=True)
        raise SystemExit(int(ExitCode.USAGE)) from None
    except KeyboardInterrupt:
        err.print("interrupted")
        raise SystemExit(int(ExitCode.INTERRUPTED)) from None
    except SystemExit:
        raise
    except Exception as exc:
        if debug:
            raise
        err.print(
            f"[bold red]internal error:[/bold red] {type(exc).__name__} — this is a bug in vm-rebalance; "
            "rerun with --debug for the traceback",
            highlight=False,
        )
        raise SystemExit(int(ExitCode.FAILURE)) from None
    raise SystemExit(0)


if __name__ == "__main__":  # pragma: no cover
    run()
