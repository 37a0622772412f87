"""The embedded KubeVirt cluster simulator: a real Kubernetes API over HTTP in front of simulated controllers.

It shares no code with the rest of vm_rebalance. Importing the package is cheap: the HTTP stack
(starlette, uvicorn) loads only when ``SimulatorServer``, ``serve`` or ``create_app`` is first used.
"""

from typing import Any

__all__ = ["SimulatorServer", "create_app", "serve"]


def __getattr__(name: str) -> Any:
    if name in ("SimulatorServer", "serve"):
        from . import server

        return getattr(server, name)
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
