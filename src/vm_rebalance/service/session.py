"""Which cluster, and an open connection to it: targets, reading state, snapshots, sessions."""

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vm_rebalance.errors import ConfigError
from vm_rebalance.executor.engine import Executor, plan_id
from vm_rebalance.executor.journal import Journal, JournalStore
from vm_rebalance.executor.runners import ExecutionOptions
from vm_rebalance.executor.watch import MigrationWatcher
from vm_rebalance.kube.client import KubeClient
from vm_rebalance.kube.kubevirt import KubeVirtApi
from vm_rebalance.kube.lease import WriterLock
from vm_rebalance.model import ClusterState, Plan
from vm_rebalance.model.cancel import CancelToken
from vm_rebalance.service.usage import UsageSpec, note_window, snapshot_usage, usage_source
from vm_rebalance.sources.kubernetes import KubernetesSource
from vm_rebalance.sources.snapshot_file import SnapshotFileSource, snapshot_document

Progress = Callable[[str], None]
"""A one-line progress message for the human (e.g. "listing pods")."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """Which cluster to talk to: a snapshot file, or a kubeconfig / context (None = defaults)."""

    from_file: str | None = None
    kubeconfig: str | None = None
    context: str | None = None
    usage: UsageSpec | None = None
    """Where usage comes from (``--usage``, ``--window`` …); None: metrics.k8s.io (service/usage.py)."""

    @property
    def offline(self) -> bool:
        """Whether the target is a snapshot file (read-only)."""
        return self.from_file is not None


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
        return note_window(SnapshotFileSource(target.from_file, usage=snapshot_usage(target)).read(), target)
    with open_client(target) as client:
        usage = usage_source(target, client, progress=progress)
        return note_window(KubernetesSource(client, progress=progress, usage=usage).read(), target)


def take_snapshot(target: Target, *, progress: Progress | None = None) -> dict[str, Any]:
    """The snapshot document (a Kubernetes List) of the live cluster, or of a snapshot file re-read."""
    if target.from_file is not None:
        snapshot_usage(target)  # a live-only usage source is refused on a snapshot
        return snapshot_document(SnapshotFileSource(target.from_file).raw_objects())
    with open_client(target) as client:
        usage = usage_source(target, client, progress=progress)
        return snapshot_document(KubernetesSource(client, progress=progress, usage=usage).raw_objects())


def write_document(document: dict[str, Any], path: str | Path) -> None:
    """Write a JSON document to ``path``. Raises ConfigError when it cannot be written."""
    p = Path(path)
    try:
        p.write_text(json.dumps(document, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write '{p.name}': {exc.strerror}") from exc


@dataclass(slots=True)
class Session:
    """An open connection to a live cluster for one use case (client, KubeVirt API, the state read)."""

    client: KubeClient
    api: KubeVirtApi
    state: ClusterState

    @classmethod
    def open(cls, target: Target, *, progress: Progress | None = None) -> "Session":
        """Connect and read the cluster (raises ConfigError on --from-file, ClusterError)."""
        client = open_client(target)
        try:
            usage = usage_source(target, client, progress=progress)
            state = KubernetesSource(client, progress=progress, usage=usage).read()
        except BaseException:
            client.close()
            raise
        return cls(client=client, api=KubeVirtApi(client), state=state)

    def refresh(self) -> ClusterState:
        """Re-read the cluster."""
        self.state = KubernetesSource(self.client).read()
        return self.state

    def close(self) -> None:
        """Release the connection."""
        self.client.close()

    def writer_lock(self, what: str) -> WriterLock:
        """The cluster's single-writer lock for an execution described by ``what`` (not taken yet)."""
        return WriterLock(self.client, what)

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def executor(
        self,
        plan: Plan,
        *,
        options: ExecutionOptions,
        journal_dir: Path | None = None,
        journal_id: str | None = None,
        fresh: bool = True,
        journal_store: JournalStore | None = None,
        cancel: CancelToken | None = None,
        hold: CancelToken | None = None,
    ) -> Executor:
        """An executor for ``plan`` with its journal.

        ``journal_id`` is the plan file's id, kept across validation and the user's edits so that
        `--resume` finds it (default: the plan's own id). ``fresh`` (everything but `--resume`)
        archives an earlier journal of the same id instead of continuing it. ``journal_store``
        defaults to the files under ``journal_dir`` (the state directory); ``cancel`` is the token
        that Ctrl-C, an MCP cancel or a shutdown trigger (default: a token only Ctrl-C sets); ``hold``
        stops admitting moves and lets the running ones finish (the run can be resumed later).
        """
        journal = Journal.open(journal_id or plan_id(plan), directory=journal_dir, fresh=fresh, store=journal_store)
        return Executor(
            self.api,
            limits=self.state.limits,
            kubevirt_version=self.state.kubevirt_version,
            journal=journal,
            options=options,
            waker=MigrationWatcher(self.client),
            cancel=cancel,
            hold=hold,
        )


def cordon(session: Session, node: str) -> bool:
    """Mark a node unschedulable (as `kubectl cordon`); False when it already was."""
    current = session.state.node(node)
    if current is not None and current.unschedulable:
        return False
    return session.api.cordon_node(node)
