"""Use cases shared by the CLI and the MCP server: read the cluster, snapshot it, plan.

Front-ends parse input, call these, render the results and map errors to exit codes or
tool errors; they hold no logic of their own.
"""

import dataclasses
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
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
from vm_rebalance.executor.watch import MigrationWatcher
from vm_rebalance.kube import resources as kube_resources
from vm_rebalance.kube.client import KubeClient
from vm_rebalance.model import Basis, ClusterState, Goal, GoalType, Plan, PlanDocumentError, plan_from_document
from vm_rebalance.model.thresholds import DEFAULT_HEADROOM
from vm_rebalance.planner import (
    ManualMoveRequest,
    PlanRequest,
    plan_manual_moves,
    propose_plan,
    retarget_move,
    skip_move,
)
from vm_rebalance.planner.goals import automatic_goals
from vm_rebalance.planner.request import DEFAULT_COOLDOWN_SECONDS
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
                w = f"Migration #{move.id} ({move.vm})" + w[len(prefix) :]
                break
        warnings.append(w)
    moves = tuple(dataclasses.replace(m, id=ids[(m.namespace, m.vm)]) for m in checked.moves)
    validated = dataclasses.replace(
        checked,
        goal=plan.goal,
        moves=moves,
        stays=plan.stays,
        sequential=plan.sequential,
        max_parallel=plan.max_parallel,
        headroom=plan.headroom,
        keep_order=plan.keep_order,
    )
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

    def executor(
        self,
        plan: Plan,
        *,
        options: ExecutionOptions,
        journal_dir: Path | None = None,
        journal_id: str | None = None,
        fresh: bool = True,
    ) -> Executor:
        """An executor for ``plan`` with its journal.

        ``journal_id`` is the plan file's id, kept across validation and the user's edits so that
        `--resume` finds it (default: the plan's own id). ``fresh`` (everything but `--resume`)
        archives an earlier journal of the same id instead of continuing it.
        """
        journal = Journal.open(journal_id or plan_id(plan), directory=journal_dir, fresh=fresh)
        return Executor(
            self.api,
            limits=self.state.limits,
            kubevirt_version=self.state.kubevirt_version,
            journal=journal,
            options=options,
            waker=MigrationWatcher(self.client),
        )


def execute_plan(
    session: Session,
    plan: Plan,
    *,
    options: ExecutionOptions = ExecutionOptions(),
    report: Report = ignore,
    journal_dir: Path | None = None,
    fresh: bool = True,
    executor: Executor | None = None,
) -> ExecutionResult:
    """Carry out an (already validated and approved) plan; re-read the cluster afterwards.

    ``fresh=False`` continues the plan's journal (a retry or resume) instead of starting over;
    an ``executor`` made earlier (the CLI's failure loop keeps one per approved plan) is reused.
    """
    before = session.state
    executor = executor or session.executor(plan, options=options, journal_dir=journal_dir, fresh=fresh)
    interrupted: tuple[str, ...] = ()
    try:
        outcomes = executor.run(plan, report)
    except ExecutionInterruptedError as exc:
        outcomes, interrupted = exc.outcomes, tuple(exc.states)
    try:
        after: ClusterState | None = session.refresh()
    except ClusterError:
        after = None
    return ExecutionResult(plan=plan, outcomes=tuple(outcomes), before=before, after=after, interrupted=interrupted)


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


# ------------------------------------------------------------------------------ shared by front-ends (MCP)


def plan_moves(state: ClusterState, requests: Sequence[ManualMoveRequest], *, sequential: bool = False) -> Plan:
    """A validated plan of user-named moves; failed validations are in the plan's warnings.

    An empty plan is returned when every VM is already on its target (nothing to do).

    Raises:
        ConfigError: the target node does not exist, or none of the named VMs can be found.
        InfeasiblePlanError: no requested move passes validation (``blocking`` lists why).
    """
    from vm_rebalance.errors import InfeasiblePlanError

    for target in {r.target for r in requests}:
        if state.node(target) is None:
            raise ConfigError(f"Target node '{target}' does not exist.", hint="list nodes with: vm-rebalance inventory")
    plan = plan_manual_moves(state, requests, sequential=sequential)
    if plan.moves or not requests:
        return plan
    # Only the per-request validation warnings say why nothing is left (others describe the after-state).
    failed = [w for w in plan.warnings if "failed validation" in w] or list(plan.warnings)
    if all("does not exist" in w for w in failed):
        raise ConfigError("none of the named VMs can be found", hint="list VMs with: vm-rebalance inventory")
    if all("already on" in w for w in failed):
        return plan
    raise InfeasiblePlanError("no requested move passes validation", blocking=failed)


def node_pin(session: Session, namespace: str, name: str) -> list[str]:
    """The nodes a VM is pinned to by a hostname node affinity (what `unpin` removes); empty when none.

    Raises:
        ConfigError: the VM does not exist. ClusterError: the cluster cannot be read.
    """
    from vm_rebalance.executor.kubevirt import PIN_ANNOTATION, existing_node_pin

    try:
        vm = session.api.get_vm(namespace, name)
    except ResourceNotFoundError as exc:
        raise ConfigError(f"VM '{name}' does not exist in namespace '{namespace}'") from exc
    nodes = existing_node_pin(vm)
    marked = ((vm.get("metadata") or {}).get("annotations") or {}).get(PIN_ANNOTATION)
    if not nodes and marked:
        nodes = [str(marked)]
    return nodes


def plan_request(
    goal: str,
    *,
    node: str | None = None,
    weights: Mapping[str, float] | None = None,
    max_migrations: int | None = None,
    basis: str | None = None,
    live_only: bool = False,
    namespaces: Sequence[str] = (),
    headroom: float = DEFAULT_HEADROOM,
    cooldown_seconds: float = DEFAULT_COOLDOWN_SECONDS,
    sequential: bool = False,
    min_gain: float | None = None,
) -> PlanRequest:
    """A PlanRequest from front-end values, checked once for every front-end.

    Raises:
        ConfigError: inconsistent or out-of-range values (the message names the option).
    """
    goals = [d.name for d in automatic_goals()]
    if goal not in goals:
        raise ConfigError(f"goal must be one of {', '.join(goals)}, not '{goal}'")
    if goal == "drain" and not node:
        raise ConfigError("goal 'drain' needs node: the node to empty (--node)")
    if node and goal != "drain":
        raise ConfigError("node only goes with goal 'drain'")
    if weights is not None and goal != "balanced":
        raise ConfigError("weights only go with goal 'balanced'")
    if weights is not None:
        if set(weights) - {"cpu", "memory"}:
            raise ConfigError(f"weights: unknown resource {', '.join(sorted(set(weights) - {'cpu', 'memory'}))}")
        if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
            raise ConfigError("weights must not be negative, and at least one weight must be positive")
    if basis not in (None, "usage", "requests"):
        raise ConfigError(f"basis must be usage or requests, not '{basis}'")
    if max_migrations is not None and max_migrations < 0:
        raise ConfigError("max migrations must be 0 or more")
    if not 0 <= headroom < 1:
        raise ConfigError("headroom must be from 0 to 99 %")
    if cooldown_seconds < 0:
        raise ConfigError("the cooldown must be 0 or more")
    if min_gain is not None and not 0 <= min_gain < float("inf"):
        raise ConfigError("the minimum gain must be a number, 0 or more")
    w = dict(weights) if weights is not None else {"cpu": 0.5, "memory": 0.5}
    return PlanRequest(
        goal=Goal(type=GoalType(goal), weights={"cpu": w.get("cpu", 0.0), "memory": w.get("memory", 0.0)}, node=node),
        basis=Basis(basis) if basis else None,
        max_migrations=max_migrations,
        live_only=live_only,
        namespaces=tuple(namespaces),
        headroom=headroom,
        cooldown_seconds=cooldown_seconds,
        sequential=sequential,
        min_gain=min_gain,
    )


def vm_refs(vms: Sequence[str], namespace: str) -> list[tuple[str, str]]:
    """``name`` or ``namespace/name`` → (namespace, name).

    Raises:
        ConfigError: an empty name, or no VM at all.
    """
    refs = []
    for ref in vms:
        ns, _, name = ref.strip().rpartition("/")
        if not name:
            raise ConfigError(f"'{ref}' is not a VM name (NAME or NAMESPACE/NAME)")
        refs.append((ns or namespace, name))
    if not refs:
        raise ConfigError("name at least one VM")
    return refs


def prepare_apply(
    state: ClusterState,
    plan: Plan,
    journal: Journal,
    *,
    resume: bool,
    skip: Sequence[int] = (),
    retarget: Sequence[tuple[int, str]] = (),
    sequential: bool = False,
) -> tuple[Plan, list[str], int]:
    """A saved plan made ready to execute now: the user's edits, then re-validation.

    On ``resume``, moves the journal records as succeeded or running are not re-validated
    (their VM may be migrating or already on the target): the executor finishes them from the
    journal against the cluster; they stay in the plan so the report lists them.

    Returns:
        The plan to execute, the validation warnings, and how many moves were already done.

    Raises:
        ConfigError / PlanEditError: an edit names an unknown move or node, or breaks a rule.
    """
    for move_id in skip:
        plan = skip_move(state, plan, move_id)
    for move_id, node in retarget:
        plan = retarget_move(state, plan, move_id, node)
    records = journal.moves.values() if resume else ()
    done = {rec.id for rec in records if rec.status == "succeeded"}
    in_flight = {rec.id for rec in records if rec.status == "running"}
    validated, warnings = validate_against(state, plan, skip_ids=done | in_flight)
    if done or in_flight:
        kept = tuple(m for m in plan.moves if m.id in done | in_flight)
        validated = dataclasses.replace(validated, moves=tuple(sorted(kept + validated.moves, key=lambda m: m.id)))
    if sequential:
        validated = dataclasses.replace(validated, sequential=True)
    return validated, warnings, len(done)


def cordon(session: Session, node: str) -> bool:
    """Mark a node unschedulable (as `kubectl cordon`); False when it already was."""
    current = session.state.node(node)
    if current is not None and current.unschedulable:
        return False
    session.client.patch(kube_resources.NODES, node, {"spec": {"unschedulable": True}})
    return True
