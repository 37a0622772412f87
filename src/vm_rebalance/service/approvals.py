"""Approval by hash: plans shown to a human, kept by id, so that only the approved content runs.

Used by every front-end that cannot ask on a terminal — the MCP server today (an agent shows
the plan to its human, who approves it), the in-cluster controller tomorrow.

A plan's **hash** is the sha256 of its canonical document (sorted keys, no whitespace): what
the human approved, byte for byte. Its **id** names one *proposal*: a fresh random id every
time a plan is shown, never reused by this server, even when the same content is proposed
again. What a human approves is "the plan shown to me under this id, with this content": so a
plan that `modify_plan` replaced or that was already executed stays refused under its id for
good, and the same content proposed again is a new proposal (a new id, the same hash) that
needs its own approval. The store is bounded (oldest evicted first; an evicted id is unknown,
never reissued) and knows when a plan was replaced by `modify_plan`, already executed, or is
too old to execute. Plain bookkeeping, unit-tested alone.
"""

import hashlib
import hmac
import json
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from vm_rebalance.errors import ConfigError
from vm_rebalance.model import Plan

MAX_PLANS = 50
MAX_AGE_SECONDS = 3600.0
"""A plan older than this is refused: its numbers describe a cluster that has moved on."""


class PlanKind(StrEnum):
    """What executing a stored plan does."""

    REBALANCE = "rebalance"
    LIFECYCLE = "lifecycle"
    UNPIN = "unpin"


EXECUTING_TOOL = {PlanKind.REBALANCE: "execute_plan", PlanKind.LIFECYCLE: "vm_lifecycle", PlanKind.UNPIN: "unpin_vm"}
"""The MCP tool that carries out each kind of plan (named in messages)."""


def canonical_bytes(document: Any) -> bytes:
    """The document as canonical JSON (sorted keys, compact, UTF-8)."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def document_hash(document: Any) -> str:
    """sha256 (hex) of the canonical document: the approval hash."""
    return hashlib.sha256(canonical_bytes(document)).hexdigest()


ID_HEX = 12
"""Plan ids are 12 hex digits (48 random bits)."""


@dataclass(slots=True, kw_only=True)
class StoredPlan:
    """One plan as shown to the agent (and, through it, to the human)."""

    plan_id: str
    plan_hash: str
    kind: PlanKind
    document: dict[str, Any]
    created_at: float
    plan: Plan | None = None
    """The plan itself, for rebalance plans."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Kind-specific data (the lifecycle action and VMs, the VM to unpin)."""
    replaced_by: str | None = None
    executed: bool = False


class PlanStore:
    """The last ``capacity`` plans by id; thread-safe."""

    def __init__(
        self,
        *,
        capacity: int = MAX_PLANS,
        max_age_seconds: float = MAX_AGE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.capacity = capacity
        self.max_age_seconds = max_age_seconds
        self.clock = clock
        self._plans: OrderedDict[str, StoredPlan] = OrderedDict()
        self._issued: set[str] = set()
        """Every id this store ever handed out (evicted ones too): none is issued twice."""
        self._lock = threading.Lock()

    def _new_id(self) -> str:
        """A random id never issued before by this store (call with the lock held)."""
        while True:
            plan_id = secrets.token_hex(ID_HEX // 2)
            if plan_id not in self._issued:
                self._issued.add(plan_id)
                return plan_id

    def add(
        self, kind: PlanKind, document: dict[str, Any], *, plan: Plan | None = None, extra: dict[str, Any] | None = None
    ) -> StoredPlan:
        """Remember a proposal under a new id (the same content again is another proposal: a new id, the same hash)."""
        plan_hash = document_hash(document)
        with self._lock:
            entry = StoredPlan(
                plan_id=self._new_id(),
                plan_hash=plan_hash,
                kind=kind,
                document=document,
                created_at=self.clock(),
                plan=plan,
                extra=dict(extra or {}),
            )
            self._plans[entry.plan_id] = entry
            while len(self._plans) > self.capacity:
                self._plans.popitem(last=False)
        return entry

    def get(self, plan_id: str) -> StoredPlan:
        """The plan with this id, whatever its state.

        Raises:
            ConfigError: unknown (never made by this server, or evicted).
        """
        with self._lock:
            entry = self._plans.get(plan_id.strip())
        if entry is None:
            raise ConfigError(
                f"unknown plan id '{plan_id}': this server has no such plan (it keeps the last {self.capacity}, "
                "in memory only)",
                hint="make a new plan (plan_rebalance, plan_move, vm_lifecycle or unpin_vm) and show it to the human",
            )
        return entry

    def mark_replaced(self, plan_id: str, new_id: str) -> None:
        """Record that `modify_plan` turned ``plan_id`` into ``new_id``."""
        with self._lock:
            entry = self._plans.get(plan_id)
            if entry is not None and entry.plan_id != new_id:
                entry.replaced_by = new_id

    def approved(self, plan_id: str, plan_hash: str | None, kind: PlanKind) -> StoredPlan:
        """The plan, if it may be executed now with this hash.

        Raises:
            ConfigError: unknown, of another kind, replaced, already executed, too old, or the hash is
                missing or does not match.
        """
        entry = self.get(plan_id)
        if entry.kind is not kind:
            raise ConfigError(
                f"plan {entry.plan_id} is a {entry.kind.value} plan",
                hint=f"carry it out with {EXECUTING_TOOL[entry.kind]}",
            )
        if entry.replaced_by is not None:
            raise ConfigError(
                f"plan {entry.plan_id} was modified: it was replaced by plan {entry.replaced_by}",
                hint=f"show plan {entry.replaced_by} to the human and execute that one once approved",
            )
        if entry.executed:
            raise ConfigError(
                f"plan {entry.plan_id} was already executed",
                hint="make a new plan from the cluster as it is now and ask for approval again",
            )
        age = self.clock() - entry.created_at
        if age > self.max_age_seconds:
            raise ConfigError(
                f"plan {entry.plan_id} is stale: it was made {age / 60:.0f} minutes ago "
                f"(plans expire after {self.max_age_seconds / 60:.0f} minutes)",
                hint="make a new plan and ask the human to approve it",
            )
        if not plan_hash or not plan_hash.strip():
            raise ConfigError(
                f"no plan_hash given for plan {entry.plan_id}: changes need the hash of the plan the human approved",
                hint="pass plan_hash exactly as it was returned with the plan you showed",
            )
        given = plan_hash.strip().lower().removeprefix("sha256:")
        if not hmac.compare_digest(given.encode(), entry.plan_hash.encode()):
            raise ConfigError(
                f"plan_hash does not match plan {entry.plan_id}: the human did not approve this content",
                hint="show the plan again (its Markdown), get explicit approval, and pass the hash returned with it",
            )
        return entry

    def authorize(self, plan_id: str, plan_hash: str | None, kind: PlanKind, confirm: object) -> StoredPlan:
        """The plan, if the human approved exactly this content (its hash) and the caller confirms.

        ``confirm`` must be the boolean True: a string such as "yes" is not a confirmation.

        Raises:
            ConfigError: see ``approved``; or no confirmation.
        """
        entry = self.approved(plan_id, plan_hash, kind)
        if confirm is not True:
            raise ConfigError(
                f"{EXECUTING_TOOL[kind]} changes the cluster and needs confirm: true",
                hint="show the plan to the human, wait for explicit approval, then call again with confirm: true",
            )
        return entry

    def mark_executed(self, plan_id: str) -> None:
        """Record that a plan was carried out (it cannot run twice)."""
        with self._lock:
            entry = self._plans.get(plan_id)
            if entry is not None:
                entry.executed = True

    def __len__(self) -> int:
        with self._lock:
            return len(self._plans)
