"""The cluster as people look at it: what is where (inventory) and what is going on (status)."""

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from vm_rebalance.errors import ConfigError
from vm_rebalance.executor.journal import (
    ROLLBACK_STEPS,
    FileJournalStore,
    Journal,
    JournalStore,
    RecordStatus,
    Step,
    state_dir,
)
from vm_rebalance.model import ClusterState
from vm_rebalance.render.inventory import inventory_document
from vm_rebalance.service.requests import check_namespaces
from vm_rebalance.service.session import Progress, Target, read_state


@dataclass(frozen=True, slots=True, kw_only=True)
class InventoryView:
    """The Inventory document (nodes, VMs, totals with headroom) and the state it was made from."""

    state: ClusterState
    document: dict[str, Any]

    def to_document(self) -> dict[str, Any]:
        """The Inventory document (`inventory -o json`)."""
        return self.document


def inventory_of(state: ClusterState, namespaces: Sequence[str] = ()) -> InventoryView:
    """The inventory of a state already read (VMs of ``namespaces`` only, when given; nodes always all)."""
    selected = check_namespaces(namespaces)
    return InventoryView(state=state, document=inventory_document(state, namespaces=selected or None))


def inventory(target: Target, namespaces: Sequence[str] = (), *, progress: Progress | None = None) -> InventoryView:
    """Read the cluster and make its inventory.

    Raises:
        ConfigError: a malformed namespace name or snapshot file. ClusterError: the cluster cannot be read.
    """
    check_namespaces(namespaces)
    return inventory_of(read_state(target, progress=progress), namespaces)


@dataclass(frozen=True, slots=True, kw_only=True)
class MigrationInFlight:
    """A migration the cluster is running (whoever created it)."""

    namespace: str
    name: str
    vm: str
    phase: str
    source: str | None
    target: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class UnfinishedExecution:
    """An execution whose journal says it did not finish (and that was not cleared)."""

    plan_id: str
    started_at: str
    moves: dict[str, int]
    """How many moves (or lifecycle VMs) are in each status."""
    command: str = ""
    """The command that started it ('' for journals written by older versions)."""
    kind: str = "plan"
    age_seconds: float | None = None
    held: tuple[str, ...] = ()
    """VMs whose cold move is held for a decision or stopped between its steps (resume puts them right)."""

    @property
    def resume_command(self) -> str:
        """The command that continues it."""
        return f"vm-rebalance resume {self.plan_id}"

    @property
    def age(self) -> str:
        """``3 min ago`` / ``2 h ago`` / ``unknown``."""
        if self.age_seconds is None:
            return "unknown"
        s = int(self.age_seconds)
        if s < 120:
            return f"{s} s ago"
        if s < 7200:
            return f"{s // 60} min ago"
        if s < 172800:
            return f"{s // 3600} h ago"
        return f"{s // 86400} days ago"


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusView:
    """`vm-rebalance status`."""

    migrations: tuple[MigrationInFlight, ...]
    unfinished: tuple[UnfinishedExecution, ...]

    def to_document(self) -> dict[str, Any]:
        """The Status document."""
        return {
            "apiVersion": "vm-rebalance/v1",
            "kind": "Status",
            "migrations_in_flight": [
                {
                    "namespace": m.namespace,
                    "name": m.name,
                    "vm": m.vm,
                    "phase": m.phase,
                    "from": m.source,
                    "to": m.target,
                }
                for m in self.migrations
            ],
            "unfinished_executions": [
                {
                    "plan_id": u.plan_id,
                    "kind": u.kind,
                    "command": u.command,
                    "started_at": u.started_at,
                    "age_seconds": None if u.age_seconds is None else round(u.age_seconds),
                    "moves": dict(u.moves),
                    "needs_attention": list(u.held),
                    "resume": u.resume_command,
                }
                for u in self.unfinished
            ],
        }


def migrations_in_flight(state: ClusterState) -> tuple[MigrationInFlight, ...]:
    """The cluster's unfinished migrations."""
    return tuple(
        MigrationInFlight(namespace=m.namespace, name=m.name, vm=m.vm, phase=m.phase, source=m.source, target=m.target)
        for m in state.migrations
    )


_COLD_IN_PROGRESS = frozenset(
    {Step.STOPPING, Step.PIN, Step.STARTING, Step.HELD, Step.LEAVING_STOPPED, *ROLLBACK_STEPS}
)


def _age(started_at: str, now: float) -> float | None:
    try:
        return max(0.0, now - datetime.fromisoformat(started_at.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return None


def _attention(journal: Journal) -> tuple[str, ...]:
    """VMs a cold move of this execution may have left not running (held, or between its steps)."""
    return tuple(
        f"{r.namespace}/{r.vm}"
        for r in journal.moves.values()
        if (r.status is RecordStatus.RUNNING and r.step in _COLD_IN_PROGRESS and r.was_running) or r.held
    )


def unfinished_executions(directory: Path | None = None) -> tuple[UnfinishedExecution, ...]:
    """The journals of executions that did not finish and were not cleared (this machine's state directory)."""
    found: list[UnfinishedExecution] = []
    directory = directory or state_dir()
    if not directory.exists():
        return ()
    now = time.time()
    for path in sorted(directory.glob("*.json")):
        try:
            journal = Journal.open(path.stem, directory=directory)
        except ConfigError:
            continue
        if not journal.open_work:
            continue
        found.append(
            UnfinishedExecution(
                plan_id=journal.plan_id,
                started_at=journal.started_at,
                moves=journal.counts(),
                command=journal.command,
                kind=journal.kind.value,
                age_seconds=_age(journal.started_at, now),
                held=_attention(journal),
            )
        )
    found.sort(key=lambda u: u.started_at)
    return tuple(found)


def clear_executions(ids: Sequence[str], *, directory: Path | None = None) -> list[str]:
    """Set executions aside so that `status` no longer lists them and `resume` refuses them.

    ``ids`` may be ``all`` (every unfinished execution) or ``finished`` (every finished journal
    still on disk). An unfinished execution whose cold move may have left a VM not running is
    refused: resuming it puts the VM right first.

    Returns:
        The ids set aside.

    Raises:
        ConfigError: an unknown id, or an execution that must be resumed first.
    """
    store: JournalStore = FileJournalStore(directory)
    known = store.plan_ids()
    if list(ids) == ["finished"]:
        wanted = [i for i in known if _is_finished(i, store)]
    elif list(ids) == ["all"]:
        wanted = [u.plan_id for u in unfinished_executions(directory)]
    else:
        wanted = list(ids)
        unknown = [i for i in wanted if i not in known]
        if unknown:
            raise ConfigError(
                f"no execution {', '.join(unknown)} on this machine", hint="`vm-rebalance status` lists them"
            )
    blocked = []
    for plan_id in wanted:
        try:
            journal = Journal.open(plan_id, store=store)
        except ConfigError:
            continue  # an unreadable journal can always be set aside
        if journal.open_work and _attention(journal):
            blocked.append(f"{plan_id} ({', '.join(_attention(journal))})")
    if blocked:
        raise ConfigError(
            f"execution {'; '.join(blocked)} may have left a VM not running: it is not cleared",
            hint="resume it first: vm-rebalance resume ID (it starts the VM again or finishes its move)",
        )
    for plan_id in wanted:
        store.archive(plan_id)
    return wanted


def _is_finished(plan_id: str, store: JournalStore) -> bool:
    try:
        return Journal.open(plan_id, store=store).finished
    except ConfigError:
        return False


def status(target: Target, *, progress: Progress | None = None) -> StatusView:
    """Migrations in flight and unfinished executions."""
    state = read_state(target, progress=progress)
    return StatusView(migrations=migrations_in_flight(state), unfinished=unfinished_executions())
