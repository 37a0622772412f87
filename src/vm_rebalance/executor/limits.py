"""The migration limits against everyone: what is in flight in the cluster, and whether a move may start.

KubeVirt allows ``parallelMigrationsPerCluster`` migrations at once and
``parallelOutboundMigrationsPerNode`` from one node (kubevirt-api.md §4.1). The executor counts
every unfinished migration object, whoever created it, and every migration a VMI's own
``status.migrationState`` reports, each attributed to its source node (`kube.views.in_flight`).
The count fails closed: when it cannot be read, `InFlightCounter.read` raises and the engine
admits no new live move until it can.
"""

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from vm_rebalance.kube.kubevirt import KubeVirtApi
from vm_rebalance.kube.views import InFlight, MigrationView, VmiView, in_flight
from vm_rebalance.model import MigrationLimits

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class Census:
    """The cluster's migrations in flight at one tick."""

    migrations: tuple[InFlight, ...] = ()
    listed: Mapping[tuple[str, str], MigrationView] = field(default_factory=dict)
    """The unfinished migration objects by (namespace, name): runners follow theirs from here."""

    def others(self, ours: set[str]) -> list[InFlight]:
        """Migrations in flight that are not the executor's own (``ours``: names of its migrations)."""
        return [m for m in self.migrations if not (m.name and m.name in ours)]


def admits(limits: MigrationLimits, *, source: str, ours_in_flight: list[str], others: list[InFlight]) -> bool:
    """Whether one more live migration from ``source`` stays within the cluster and per-node limits.

    ``ours_in_flight`` are the source nodes of the executor's own live migrations in flight.
    A migration of others whose source is unknown counts against the cluster limit only.
    """
    if len(ours_in_flight) + len(others) >= limits.parallel_per_cluster:
        return False
    outbound = sum(1 for s in ours_in_flight if s == source) + sum(1 for m in others if m.source == source)
    return outbound < limits.parallel_outbound_per_node


class InFlightCounter:
    """Reads the cluster's migrations in flight (one list per tick, plus a VMI read per unknown source)."""

    def __init__(self, api: KubeVirtApi) -> None:
        self.api = api
        self._vmi_of: dict[tuple[str, str, str | None], VmiView | None] = {}
        """The VMI each migration (namespace, name, uid) was attributed with: read once per migration."""

    def read(self, *, with_vmis: bool = True, ours: frozenset[str] = frozenset()) -> Census:
        """Every migration in flight now.

        ``with_vmis`` also lists the VMIs that report a migration themselves (needed to admit a
        move; following moves that already run does not need it). ``ours`` names the caller's
        own migrations: their source is known, so their VMIs are not read.

        Raises:
            ClusterError: the migrations (or the VMIs) cannot be read: callers fail closed.
        """
        migrations = self.api.unfinished_migrations()
        vmis: dict[tuple[str, str], VmiView] = {}
        if with_vmis:
            vmis = {(v.namespace, v.name): v for v in self.api.migrating_vmis()}
        live_keys = set()
        for m in migrations:
            key = (m.namespace, m.name, m.uid)
            live_keys.add(key)
            vmi_key = (m.namespace, m.vmi_name)
            if m.name in ours or vmi_key in vmis or (m.state is not None and m.state.source_node):
                continue
            if key not in self._vmi_of:
                # A migration not handed off yet (Pending, Scheduling): its VMI still runs on the source.
                self._vmi_of[key] = self.api.get_vmi(m.namespace, m.vmi_name)
            vmi = self._vmi_of[key]
            if vmi is not None:
                vmis[vmi_key] = vmi
        # Forget finished migrations, so the cache stays as small as what is in flight.
        self._vmi_of = {k: v for k, v in self._vmi_of.items() if k in live_keys}
        return Census(
            migrations=tuple(in_flight(migrations, vmis)),
            listed={(m.namespace, m.name): m for m in migrations},
        )
