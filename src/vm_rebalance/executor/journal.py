"""A journal per plan, so a resumed execution continues after a crash without repeating work.

It records, per move, its status, attempt number, the step it reached, the migration it
created, the VM's original runStrategy, affinity and pin marks (what a rollback restores) and
whether a pin or a temporary affinity was added — what resume needs to reconcile with the
cluster. The cluster remains the source of truth: resume re-reads it and verifies every move
the journal calls done. Every state change is saved before the action it announces.

A journal also keeps what is needed to continue without the user's files: the plan document
(or the VMs of a lifecycle batch), the command that started it, the execution options, and
the identity of the cluster it runs against (`vm-rebalance resume ID` reads them back).

Where journals are kept is a port, `JournalStore`: today `FileJournalStore`, one JSON file
per plan id under the state directory (``$VM_REBALANCE_STATE_DIR``, else
``$XDG_STATE_HOME/vm-rebalance/journals``, else ``~/.local/state/vm-rebalance/journals``),
rewritten atomically (temp file + fsync + rename); tomorrow the controller's RebalancePlan
status. `MemoryJournalStore` keeps them in memory (tests, dry runs).
"""

import copy
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from vm_rebalance.errors import ConfigError
from vm_rebalance.model.execution import FailureKind

JOURNAL_VERSION = 2
"""2 added the plan, command, options, cluster identity and lifecycle records (1 is read as well)."""


def state_dir() -> Path:
    """Where journal files live."""
    explicit = os.environ.get("VM_REBALANCE_STATE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "vm-rebalance" / "journals"


class RecordStatus(StrEnum):
    """A move's status as journalled."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


class Step(StrEnum):
    """How far a running move got (what resume continues from)."""

    NONE = ""
    """Not started."""
    INIT = "init"
    """Cold: about to read the VM and decide (nothing changed yet)."""
    STOPPING = "stopping"
    """Cold: the stop was requested (journalled before the request); waiting for Stopped."""
    PIN = "pin"
    """Cold: the VM is stopped (or was never running); pin it, then start it."""
    STARTING = "starting"
    """Cold: pinned and started; waiting for it to run on the target."""
    MIGRATING = "migrating"
    """Live: the migration's name is journalled (before it is created); following it."""
    HELD = "held"
    """Cold: the start on the target failed and the VM is held as it is for the human's decision
    (retry / retry on another node / roll back / leave stopped)."""
    ROLLBACK_STOPPING = "rollback-stopping"
    """Cold rollback: making sure the VM (stuck on the target) is stopped before its placement is restored."""
    ROLLBACK_RESTORE = "rollback-restore"
    """Cold rollback: the VM is stopped; restore its original affinity and pin marks, then start it."""
    ROLLBACK_STARTING = "rollback-starting"
    """Cold rollback: started with its original placement; waiting for it to run."""
    LEAVING_STOPPED = "leaving-stopped"
    """Cold: the human chose to leave the VM stopped (pinned to the target); waiting for the stop."""


ROLLBACK_STEPS = frozenset({Step.ROLLBACK_STOPPING, Step.ROLLBACK_RESTORE, Step.ROLLBACK_STARTING})


@dataclass(slots=True, kw_only=True)
class MoveRecord:
    """What the journal knows about one move."""

    id: int
    vm: str
    namespace: str
    method: str
    target: str
    status: RecordStatus = RecordStatus.PENDING
    attempt: int = 0
    step: Step = Step.NONE
    migration: str | None = None
    original_run_strategy: str | None = None
    was_running: bool | None = None
    pinned: bool = False
    temporary_affinity: bool = False
    error: str | None = None
    failure: FailureKind | None = None
    duration_seconds: float | None = None
    updated_at: str = ""
    source: str = ""
    """The node the VM ran on when the move began ('' for a stopped VM)."""
    original_captured: bool = False
    """Whether ``original_affinity`` / ``original_marks`` hold the VM's placement from before its first change."""
    original_affinity: dict[str, Any] | None = None
    """The VM template's affinity before vm-rebalance changed it (what a rollback restores)."""
    original_marks: dict[str, str | None] = field(default_factory=dict)
    """vm-rebalance's pin annotations before it changed them (annotation → value or None)."""
    repinned: bool = False
    """Live: the VM's affinity was changed to the target before migrating (its pin moves with it);
    restored if the migration does not succeed."""
    held: bool = False
    """Cold: the start failed and the VM waits for the human's decision (see `Step.HELD`)."""
    rollback_reason: str | None = None
    """Why a rollback runs (the failure it undoes)."""
    migration_uid: str | None = None
    """The uid of the migration vm-rebalance created (checked against the VMI's migrationState)."""
    verified: str | None = None
    """What the cluster showed when the outcome was last verified (for people)."""

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> "MoveRecord":
        """A record as `asdict` wrote it (older journals lack ``failure``).

        Raises:
            ValueError / TypeError / KeyError: not a record.
        """
        fields = {k: v for k, v in doc.items() if k in _MOVE_FIELDS}
        fields["status"] = RecordStatus(fields.get("status", "pending"))
        fields["step"] = Step(fields.get("step") or "")
        failure = fields.get("failure")
        fields["failure"] = FailureKind(failure) if failure else None
        fields["original_marks"] = dict(fields.get("original_marks") or {})
        return cls(**fields)


class LifecycleStep(StrEnum):
    """How far a lifecycle operation on one VM got."""

    NONE = ""
    STOPPING = "stopping"
    """The stop was requested (journalled first); waiting for Stopped (a restart then starts it)."""
    STARTING = "starting"
    """The start was requested; waiting for Running."""


@dataclass(slots=True, kw_only=True)
class LifecycleRecord:
    """What the journal knows about one VM of a start / stop / restart batch."""

    namespace: str
    name: str
    action: str
    status: RecordStatus = RecordStatus.PENDING
    step: LifecycleStep = LifecycleStep.NONE
    was_running: bool | None = None
    message: str = ""
    updated_at: str = ""

    @property
    def ref(self) -> str:
        """``namespace/name``."""
        return f"{self.namespace}/{self.name}"

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> "LifecycleRecord":
        """A record as `asdict` wrote it."""
        fields = {k: v for k, v in doc.items() if k in _LIFECYCLE_FIELDS}
        fields["status"] = RecordStatus(fields.get("status", "pending"))
        fields["step"] = LifecycleStep(fields.get("step") or "")
        return cls(**fields)


class JournalStore(Protocol):
    """Where journals are kept (files today; the RebalancePlan status for the controller)."""

    def load(self, plan_id: str) -> dict[str, Any] | None:
        """The journal document of a plan, or None when none was saved.

        Raises:
            ConfigError: it exists but cannot be read.
        """
        ...

    def save(self, plan_id: str, document: dict[str, Any]) -> None:
        """Store a plan's journal document (atomically: a crash keeps the old or the new one)."""
        ...

    def archive(self, plan_id: str) -> None:
        """Set a plan's journal aside so that a new execution of the same plan starts over."""
        ...

    def plan_ids(self) -> list[str]:
        """The plans with a journal."""
        ...


class FileJournalStore:
    """One JSON file per plan id in a directory (the state directory by default)."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or state_dir()

    def path(self, plan_id: str) -> Path:
        """The file of a plan's journal."""
        return self.directory / f"{plan_id}.json"

    def load(self, plan_id: str) -> dict[str, Any] | None:
        """The journal document, or None when there is no file."""
        path = self.path(plan_id)
        if not path.exists():
            return None
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise _unreadable(plan_id, exc, self.directory.name) from exc
        if not isinstance(doc, dict):
            raise _unreadable(plan_id, ValueError("not a JSON object"), self.directory.name)
        return doc

    def save(self, plan_id: str, document: dict[str, Any]) -> None:
        """Write atomically."""
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".journal-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(document, f, indent=1)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path(plan_id))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def archive(self, plan_id: str) -> None:
        """Move the file to ``archive/`` (kept for the record, no longer resumed)."""
        path = self.path(plan_id)
        if path.exists():
            archive = self.directory / "archive"
            archive.mkdir(parents=True, exist_ok=True)
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
            os.replace(path, archive / f"{plan_id}-{stamp}.json")

    def plan_ids(self) -> list[str]:
        """Plan ids with a journal file, sorted."""
        if not self.directory.exists():
            return []
        return sorted(p.stem for p in self.directory.glob("*.json"))


class MemoryJournalStore:
    """Journals in memory (documents are copied in and out, as a real store would)."""

    def __init__(self) -> None:
        self.documents: dict[str, dict[str, Any]] = {}
        self.archived: list[dict[str, Any]] = []

    def load(self, plan_id: str) -> dict[str, Any] | None:
        """The document saved for the plan, or None."""
        doc = self.documents.get(plan_id)
        return copy.deepcopy(doc) if doc is not None else None

    def save(self, plan_id: str, document: dict[str, Any]) -> None:
        """Keep a copy."""
        self.documents[plan_id] = copy.deepcopy(document)

    def archive(self, plan_id: str) -> None:
        """Set the plan's document aside."""
        doc = self.documents.pop(plan_id, None)
        if doc is not None:
            self.archived.append(doc)

    def plan_ids(self) -> list[str]:
        """Plans with a document, sorted."""
        return sorted(self.documents)


def _unreadable(plan_id: str, exc: BaseException, where: str) -> ConfigError:
    at = f" at byte {exc.pos}" if isinstance(exc, json.JSONDecodeError) else ""
    return ConfigError(
        f"the journal of execution {plan_id} is unreadable{at} ({type(exc).__name__}); nothing was changed",
        hint=f"inspect the cluster (vm-rebalance status), then remove it from {where}/ "
        f"(or `vm-rebalance status --clear {plan_id}`) to start over",
    )


class JournalKind(StrEnum):
    """What a journal records."""

    PLAN = "plan"
    """Moves of a plan (apply, move, drain)."""
    LIFECYCLE = "lifecycle"
    """A start / stop / restart batch."""


@dataclass(slots=True, kw_only=True)
class Journal:
    """The journal of one execution, saved through its store after every change."""

    plan_id: str
    store: JournalStore
    moves: dict[int, MoveRecord] = field(default_factory=dict)
    started_at: str = ""
    finished: bool = False
    kind: JournalKind = JournalKind.PLAN
    command: str = ""
    """The command line that started it (for people: `status` shows it)."""
    plan: dict[str, Any] | None = None
    """The plan document it executes (`resume` continues it without the user's file)."""
    options: dict[str, Any] = field(default_factory=dict)
    """The execution options it ran with (`resume` uses them again)."""
    cluster: str | None = None
    """The identity of the cluster it runs against (the kube-system namespace's uid), when known."""
    lifecycle: dict[str, LifecycleRecord] = field(default_factory=dict)
    """A lifecycle batch's VMs by ``namespace/name`` (kind LIFECYCLE)."""
    abandoned: bool = False
    """Set aside by the user (`status --clear`): no longer resumed."""

    @classmethod
    def open(
        cls,
        plan_id: str,
        *,
        directory: Path | None = None,
        fresh: bool = False,
        store: JournalStore | None = None,
    ) -> "Journal":
        """Load the plan's journal, or start an empty one (not saved until the first change).

        ``store`` defaults to the files under ``directory`` (the state directory by default).
        ``fresh`` starts over: an existing journal of the same plan id (an earlier execution of
        identical content) is archived so that its finished moves are not skipped.

        Raises:
            ConfigError: the stored journal is unreadable.
        """
        store = store if store is not None else FileJournalStore(directory)
        if fresh:
            store.archive(plan_id)
        doc = store.load(plan_id)
        if doc is None:
            return cls(plan_id=plan_id, store=store, started_at=_now())
        try:
            moves = {int(m["id"]): MoveRecord.from_document(m) for m in doc.get("moves", [])}
            lifecycle = {rec.ref: rec for rec in (LifecycleRecord.from_document(v) for v in doc.get("lifecycle") or [])}
            kind = JournalKind(doc.get("kind") or JournalKind.PLAN.value)
            plan = doc.get("plan")
            options = doc.get("options") or {}
            if (plan is not None and not isinstance(plan, dict)) or not isinstance(options, dict):
                raise TypeError("plan and options must be objects")
        except (ValueError, TypeError, KeyError) as exc:
            raise _unreadable(plan_id, exc, "the state directory") from exc
        return cls(
            plan_id=plan_id,
            store=store,
            moves=moves,
            started_at=str(doc.get("started_at", "")),
            finished=bool(doc.get("finished", False)),
            kind=kind,
            command=str(doc.get("command") or ""),
            plan=plan,
            options=dict(options),
            cluster=doc.get("cluster") if isinstance(doc.get("cluster"), str) else None,
            lifecycle=lifecycle,
            abandoned=bool(doc.get("abandoned", False)),
        )

    @property
    def exists(self) -> bool:
        """Whether a journal was saved for this plan before."""
        return self.store.load(self.plan_id) is not None

    @property
    def open_work(self) -> bool:
        """Neither finished nor abandoned: `resume` continues it."""
        return not self.finished and not self.abandoned

    def record(self, move_id: int) -> MoveRecord | None:
        """The record of a move, if any."""
        return self.moves.get(move_id)

    def update(self, record: MoveRecord) -> None:
        """Store a move's record and save."""
        record.updated_at = _now()
        self.moves[record.id] = record
        self.save()

    def update_vm(self, record: LifecycleRecord) -> None:
        """Store a lifecycle record and save."""
        record.updated_at = _now()
        self.lifecycle[record.ref] = record
        self.save()

    def document(self) -> dict[str, Any]:
        """The journal as its store keeps it (the file format)."""
        return {
            "version": JOURNAL_VERSION,
            "plan_id": self.plan_id,
            "kind": self.kind.value,
            "command": self.command,
            "started_at": self.started_at,
            "finished": self.finished,
            "abandoned": self.abandoned,
            "cluster": self.cluster,
            "options": self.options,
            "plan": self.plan,
            "moves": [asdict(m) for m in sorted(self.moves.values(), key=lambda m: m.id)],
            "lifecycle": [asdict(v) for v in self.lifecycle.values()],
        }

    def save(self) -> None:
        """Save through the store."""
        self.store.save(self.plan_id, self.document())

    def counts(self) -> dict[str, int]:
        """How many moves (or lifecycle VMs) are in each status."""
        out: dict[str, int] = {}
        for status in [m.status for m in self.moves.values()] + [v.status for v in self.lifecycle.values()]:
            out[status.value] = out.get(status.value, 0) + 1
        return out


def unfinished_journals(store: JournalStore) -> list[Journal]:
    """The journals of executions that did not finish and were not abandoned (unreadable ones are left out)."""
    out = []
    for plan_id in store.plan_ids():
        try:
            journal = Journal.open(plan_id, store=store)
        except ConfigError:
            continue
        if journal.open_work:
            out.append(journal)
    return out


_MOVE_FIELDS = frozenset(MoveRecord.__dataclass_fields__)
_LIFECYCLE_FIELDS = frozenset(LifecycleRecord.__dataclass_fields__)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
