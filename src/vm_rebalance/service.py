"""Use cases shared by the CLI and the MCP server: read the cluster, snapshot it, plan.

Front-ends parse input, call these, render the results and map errors to exit codes or
tool errors; they hold no logic of their own.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vm_rebalance.errors import ConfigError
from vm_rebalance.kube.client import KubeClient
from vm_rebalance.model import ClusterState
from vm_rebalance.sources.kubernetes import KubernetesSource
from vm_rebalance.sources.snapshot_file import SnapshotFileSource, snapshot_document


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """Which cluster to talk to: a snapshot file, or a kubeconfig / context (None = defaults)."""

    from_file: str | None = None
    kubeconfig: str | None = None
    context: str | None = None

    @property
    def offline(self) -> bool:
        """Whether the target is a snapshot file (read-only)."""
        return self.from_file is not None


Progress = Callable[[str], None]


def open_client(target: Target) -> KubeClient:
    """A client for the live cluster. Raises ConfigError when the target is a snapshot file."""
    if target.offline:
        raise ConfigError("this command changes the cluster and cannot run on --from-file (a snapshot)")
    return KubeClient.from_kubeconfig(target.kubeconfig, target.context)


def read_state(target: Target, *, progress: Progress | None = None) -> ClusterState:
    """The cluster's state from a snapshot file or the live API.

    Raises:
        ConfigError: bad snapshot file. ClusterError: the cluster cannot be read.
    """
    if target.from_file is not None:
        return SnapshotFileSource(target.from_file).read()
    with open_client(target) as client:
        return KubernetesSource(client, progress=progress).read()


def take_snapshot(target: Target, *, progress: Progress | None = None) -> dict[str, Any]:
    """The snapshot document (a Kubernetes List) of the live cluster, or of a snapshot file re-read."""
    if target.from_file is not None:
        return snapshot_document(SnapshotFileSource(target.from_file).raw_objects())
    with open_client(target) as client:
        return snapshot_document(KubernetesSource(client, progress=progress).raw_objects())


def write_document(document: dict[str, Any], path: str | Path) -> None:
    """Write a JSON document to ``path``. Raises ConfigError when it cannot be written."""
    p = Path(path)
    try:
        p.write_text(json.dumps(document, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write '{p.name}': {exc.strerror}") from exc
