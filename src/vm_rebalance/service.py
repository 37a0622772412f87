"""Use cases shared by the CLI and the MCP server: read the cluster, snapshot it, plan.

Front-ends parse input, call these, render the results and map errors to exit codes or
tool errors; they hold no logic of their own.
"""

import dataclasses
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vm_rebalance.errors import ClusterError, ConfigError, RebalanceError, ResourceNotFoundError
from vm_rebalance.executor.engine import ExecutionInterruptedError, Executor, plan_id
from vm_rebalance.executor.events import Outcome, Report, ignore
from vm_rebalance.executor.journal import Journal
from vm_rebalance.executor.kubevirt import KubeVirtApi
from vm_rebalance.executor.lifecycle import Action, LifecycleReport, LifecycleResult, run_lifecycle
from vm_rebalance.executor.runners import ExecutionOptions, unpin_vm
from vm_rebalance.kube.client import KubeClient
from vm_rebalance.model import ClusterState, Plan, PlanDocumentError, plan_from_document
from vm_rebalance.planner import ManualMoveRequest, PlanRequest, plan_manual_moves, propose_plan
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


# ------------------------------------------------------------------------------ planning


def load_plan(path: str | Path) -> Plan:
    """Read a plan file (JSON or YAML) written by `plan --save` / `-o json`.

    Raises:
        ConfigError: unreadable or malformed file, naming the field at fault.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"plan file '{p.name}' does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"plan file '{p.name}' cannot be read: {exc}") from exc
    try:
        if text.lstrip().startswith("{"):
            doc = json.loads(text)
        else:
            import yaml

            doc = yaml.safe_load(text)
    except ValueError as exc:
        raise ConfigError(f"plan file '{p.name}' is not valid JSON/YAML: {exc}") from exc
    except Exception as exc:  # yaml.YAMLError has no common base with ValueError
        raise ConfigError(f"plan file '{p.name}' is not valid JSON/YAML: {exc}") from exc
    try:
        return plan_from_document(doc)
    except PlanDocumentError as exc:
        raise ConfigError(f"plan file '{p.name}': {exc}") from exc


def propose(state: ClusterState, request: PlanRequest) -> Plan:
    """The automatic plan for ``request`` (pure; raises InfeasiblePlanError / ConfigError)."""
    try:
        return propose_plan(state, request)
    except ValueError as exc:
        if isinstance(exc, RebalanceError):
            raise
        raise ConfigError(str(exc)) from exc


def validate_against(state: ClusterState, plan: Plan, *, skip_ids: Iterable[int] = ()) -> tuple[Plan, list[str]]:
    """Re-validate a plan's moves against the cluster as it is now (the seeds' four validations + fit).

    Moves that fail are removed with a warning ("Migration #X (vm) failed validation: …");
    the remaining moves keep their ids, goal and method. ``skip_ids`` are left out silently
    (already done in an earlier run).
    """
    skip = set(skip_ids)
    kept = [m for m in plan.moves if m.id not in skip]
    requests = [ManualMoveRequest(m.namespace, m.vm, m.target, m.method.value) for m in kept]
    checked = plan_manual_moves(state, requests, basis=plan.basis, sequential=plan.sequential)
    ids = {(m.namespace, m.vm): m.id for m in kept}
    warnings = []
    by_number = {i + 1: m for i, m in enumerate(kept)}
    for w in checked.warnings:
        # plan_manual_moves numbers requests from 1; speak of the plan's own move ids.
        for number, move in by_number.items():
            prefix = f"Migration #{number} ({move.vm})"
            if w.startswith(prefix):
                w = f"Migration #{move.id} ({move.vm})" + w[len(prefix):]
                break
        warnings.append(w)
    moves = tuple(dataclasses.replace(m, id=ids[(m.namespace, m.vm)]) for m in checked.moves)
    validated = dataclasses.replace(checked, goal=plan.goal, moves=moves, stays=plan.stays,
                                    sequential=plan.sequential)
    return validated, warnings


# ------------------------------------------------------------------------------ execution


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionResult:
    """What an execution did: outcomes per move, the cluster before and after."""

    plan: Plan
    outcomes: tuple[Outcome, ...]
    before: ClusterState
    after: ClusterState | None
    warnings: tuple[str, ...] = ()
    interrupted: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        """Every move succeeded (or was already done)."""
        return all(o.ok for o in self.outcomes)


@dataclass(slots=True)
class Session:
    """An open connection to a live cluster for one execution (client, KubeVirt API, journal)."""

    client: KubeClient
    api: KubeVirtApi
    state: ClusterState

    @classmethod
    def open(cls, target: Target, *, progress: Progress | None = None) -> "Session":
        """Connect and read the cluster (raises ConfigError on --from-file, ClusterError)."""
        client = open_client(target)
        try:
            state = KubernetesSource(client, progress=progress).read()
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

    def executor(self, plan: Plan, *, options: ExecutionOptions, journal_dir: Path | None = None) -> Executor:
        """An executor for ``plan`` with its journal."""
        journal = Journal.open(plan_id(plan), directory=journal_dir)
        return Executor(self.api, limits=self.state.limits, kubevirt_version=self.state.kubevirt_version,
                        journal=journal, options=options)


def execute_plan(
    session: Session,
    plan: Plan,
    *,
    options: ExecutionOptions = ExecutionOptions(),
    report: Report = ignore,
    journal_dir: Path | None = None,
) -> ExecutionResult:
    """Carry out an (already validated and approved) plan; re-read the cluster afterwards."""
    before = session.state
    executor = session.executor(plan, options=options, journal_dir=journal_dir)
    interrupted: tuple[str, ...] = ()
    try:
        outcomes = executor.run(plan, report)
    except ExecutionInterruptedError as exc:
        outcomes, interrupted = exc.outcomes, tuple(exc.states)
    try:
        after: ClusterState | None = session.refresh()
    except ClusterError:
        after = None
    return ExecutionResult(plan=plan, outcomes=tuple(outcomes), before=before, after=after,
                           interrupted=interrupted)


def lifecycle(
    session: Session,
    action: Action,
    vms: Sequence[tuple[str, str]],
    *,
    report: LifecycleReport = lambda *_: None,
    timeout_seconds: float = 600.0,
) -> list[LifecycleResult]:
    """Start / stop / restart VMs with verification."""
    return run_lifecycle(session.api, action, vms, report=report, timeout_seconds=timeout_seconds)


def unpin(session: Session, namespace: str, name: str) -> bool:
    """Remove the node pin a cold move added; False when the VM had none."""
    try:
        return unpin_vm(session.api, namespace, name)
    except ResourceNotFoundError as exc:
        raise ConfigError(f"VM '{name}' does not exist in namespace '{namespace}'") from exc
