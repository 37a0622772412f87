"""The controller's Prometheus metrics (prometheus-client), in a registry of its own.

| metric | type | labels |
|---|---|---|
| `vm_rebalance_plans_created_total` | counter | policy, automation |
| `vm_rebalance_plans` | gauge | phase (plans by phase, as last seen) |
| `vm_rebalance_moves_total` | counter | method (live / cold), result (succeeded / failed / skipped / not_attempted) |
| `vm_rebalance_imbalance_percent` | gauge | policy, when (before / after): the goal's std dev, last plan |
| `vm_rebalance_execution_seconds` | histogram | result (succeeded / failed / cancelled / paused) |
| `vm_rebalance_migration_slots_in_use` | gauge | moves of this controller in flight |
| `vm_rebalance_migration_slots` | gauge | the cluster's parallelMigrationsPerCluster |
| `vm_rebalance_leader` | gauge | 1 while this replica holds the lease |
| `vm_rebalance_policy_errors_total` | counter | policy |
"""

from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

PHASES = ("Proposed", "Reported", "Approved", "Executing", "Succeeded", "Failed", "Cancelled", "Superseded")


class Metrics:
    """All series of one controller process."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.plans_created = Counter(
            "vm_rebalance_plans_created", "RebalancePlans made by policies", ["policy", "automation"], registry=r
        )
        self.plans = Gauge("vm_rebalance_plans", "RebalancePlans by phase", ["phase"], registry=r)
        self.moves = Counter(
            "vm_rebalance_moves", "Moves carried out, by method and result", ["method", "result"], registry=r
        )
        self.imbalance = Gauge(
            "vm_rebalance_imbalance_percent",
            "The goal's standard deviation of node utilisation (percentage points) before and after the last plan",
            ["policy", "when"],
            registry=r,
        )
        self.execution_seconds = Histogram(
            "vm_rebalance_execution_seconds",
            "Wall time of plan executions",
            ["result"],
            buckets=(10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, float("inf")),
            registry=r,
        )
        self.slots_in_use = Gauge(
            "vm_rebalance_migration_slots_in_use", "Moves of this controller in flight", registry=r
        )
        self.slots = Gauge("vm_rebalance_migration_slots", "The cluster's parallel migration limit", registry=r)
        self.leader = Gauge("vm_rebalance_leader", "1 while this replica holds the leader lease", registry=r)
        self.policy_errors = Counter(
            "vm_rebalance_policy_errors",
            "Policy runs that failed (bad spec, unreadable cluster)",
            ["policy"],
            registry=r,
        )
        for phase in PHASES:
            self.plans.labels(phase=phase).set(0)

    def observe_phases(self, phases: Iterable[str]) -> None:
        """Set the plans-by-phase gauge from the phases of every plan."""
        tally: dict[str, int] = dict.fromkeys(PHASES, 0)
        for phase in phases:
            if phase in tally:
                tally[phase] += 1
        for phase, n in tally.items():
            self.plans.labels(phase=phase).set(n)

    def observe_imbalance(self, policy: str, before: float, after: float) -> None:
        """The last plan's imbalance for a policy."""
        self.imbalance.labels(policy=policy, when="before").set(before)
        self.imbalance.labels(policy=policy, when="after").set(after)

    def count_moves(self, outcomes: Iterable[Mapping[str, object]]) -> None:
        """Count finished moves from report rows (method, status)."""
        for row in outcomes:
            result = str(row.get("status") or "").replace(" ", "_")
            if result in ("succeeded", "failed", "skipped", "not_attempted"):
                self.moves.labels(method=str(row.get("method") or ""), result=result).inc()

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes."""
        return generate_latest(self.registry)
