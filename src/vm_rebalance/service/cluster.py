"""The cluster as people look at it: what is where (inventory) and what is going on (status)."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from vm_rebalance.errors import ConfigError
from vm_rebalance.executor.journal import Journal, state_dir
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
    """An execution whose journal says it did not finish."""

    plan_id: str
    started_at: str
    moves: dict[str, int]
    """How many moves are in each status."""


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
                {"plan_id": u.plan_id, "started_at": u.started_at, "moves": dict(u.moves)} for u in self.unfinished
            ],
        }


def migrations_in_flight(state: ClusterState) -> tuple[MigrationInFlight, ...]:
    """The cluster's unfinished migrations."""
    return tuple(
        MigrationInFlight(namespace=m.namespace, name=m.name, vm=m.vm, phase=m.phase, source=m.source, target=m.target)
        for m in state.migrations
    )


def unfinished_executions() -> tuple[UnfinishedExecution, ...]:
    """The journals of executions that did not finish (this machine's state directory)."""
    found: list[UnfinishedExecution] = []
    directory = state_dir()
    if not directory.exists():
        return ()
    for path in sorted(directory.glob("*.json")):
        try:
            journal = Journal.open(path.stem, directory=directory)
        except ConfigError:
            continue
        if journal.finished:
            continue
        counts: dict[str, int] = {}
        for rec in journal.moves.values():
            counts[str(rec.status)] = counts.get(str(rec.status), 0) + 1
        found.append(UnfinishedExecution(plan_id=journal.plan_id, started_at=journal.started_at, moves=counts))
    return tuple(found)


def status(target: Target, *, progress: Progress | None = None) -> StatusView:
    """Migrations in flight and unfinished executions."""
    state = read_state(target, progress=progress)
    return StatusView(migrations=migrations_in_flight(state), unfinished=unfinished_executions())
