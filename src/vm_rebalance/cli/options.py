"""Checks of option values that typer's types cannot express (finite, positive, a port).

Each raises ``typer.BadParameter``: the error boundary in ``cli.main`` prints it as one line
naming the option, with exit code 2. Checks that every front-end shares (goals, weights,
headroom…) live in ``service``; these are the command line's own.
"""

import math
import socket

import typer


def positive_number(value: float | None) -> float | None:
    """A finite number above zero (None passes: the option was not given)."""
    if value is not None and (not math.isfinite(value) or value <= 0):
        raise typer.BadParameter(f"must be a finite number above 0, not {value:g}")
    return value


def port_or_any(value: int) -> int:
    """A TCP port, or 0 for any free port."""
    if not 0 <= value <= 65535:
        raise typer.BadParameter(f"must be a port from 0 (any free port) to 65535, not {value}")
    return value


def port(value: int) -> int:
    """A TCP port from 1 to 65535."""
    if not 1 <= value <= 65535:
        raise typer.BadParameter(f"must be a port from 1 to 65535, not {value}")
    return value


def local_address(value: str) -> str:
    """A host name or address this machine can resolve (to bind a server to)."""
    try:
        socket.getaddrinfo(value, None)
    except (socket.gaierror, UnicodeError) as exc:
        raise typer.BadParameter(f"{value!r} is not an address or host name this machine can resolve") from exc
    return value
