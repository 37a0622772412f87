"""A journal per plan, so `apply --resume` continues after a crash without repeating work.

One JSON file per plan id under the state directory (``$VM_REBALANCE_STATE_DIR``, else
``$XDG_STATE_HOME/vm-rebalance/journals``, else ``~/.local/state/vm-rebalance/journals``),
rewritten atomically (temp file + rename) after every state change. It records, per move,
its status, attempt number, the migration it created, the VM's original runStrategy and
whether a pin or a temporary affinity was added — what resume needs to reconcile with the
cluster. The cluster remains the source of truth: resume re-reads it.
"""

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vm_rebalance.errors import ConfigError

JOURNAL_VERSION = 1


def state_dir() -> Path:
    """Where journals live."""
    explicit = os.environ.get("VM_REBALANCE_STATE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "vm-rebalance" / "journals"


@dataclass(slots=True, kw_only=True)
class MoveRecord:
    """What the journal knows about one move."""

    id: int
    vm: str
    namespace: str
    method: str
    target: str
    status: str = "pending"
    """pending / running / succeeded / failed / skipped."""
    attempt: int = 0
    step: str = ""
    """Cold moves: stopping / stopped / pinned / starting; live: migrating."""
    migration: str | None = None
    original_run_strategy: str | None = None
    was_running: bool | None = None
    pinned: bool = False
    temporary_affinity: bool = False
    error: str | None = None
    duration_seconds: float | None = None
    updated_at: str = ""


@dataclass(slots=True, kw_only=True)
class Journal:
    """The journal of one plan's execution."""

    plan_id: str
    path: Path
    moves: dict[int, MoveRecord] = field(default_factory=dict)
    started_at: str = ""
    finished: bool = False

    @classmethod
    def open(cls, plan_id: str, *, directory: Path | None = None, fresh: bool = False) -> "Journal":
        """Load the plan's journal, or start an empty one (not written until the first save).

        ``fresh`` starts over: an existing journal of the same plan id (an earlier execution of
        identical content) is moved to ``archive/`` so that its finished moves are not skipped.
        """
        path = (directory or state_dir()) / f"{plan_id}.json"
        if fresh and path.exists():
            archive = path.parent / "archive"
            archive.mkdir(parents=True, exist_ok=True)
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
            os.replace(path, archive / f"{plan_id}-{stamp}.json")
        if not path.exists():
            return cls(plan_id=plan_id, path=path, started_at=_now())
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            moves = {int(m["id"]): MoveRecord(**m) for m in doc.get("moves", [])}
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise ConfigError(
                f"the journal of plan {plan_id} is unreadable: {exc}",
                hint=f"remove it from {path.parent.name}/ to start over",
            ) from exc
        return cls(
            plan_id=plan_id,
            path=path,
            moves=moves,
            started_at=str(doc.get("started_at", "")),
            finished=bool(doc.get("finished", False)),
        )

    @property
    def exists(self) -> bool:
        """Whether a journal was written for this plan before."""
        return self.path.exists()

    def record(self, move_id: int) -> MoveRecord | None:
        """The record of a move, if any."""
        return self.moves.get(move_id)

    def update(self, record: MoveRecord) -> None:
        """Store a move's record and save."""
        record.updated_at = _now()
        self.moves[record.id] = record
        self.save()

    def save(self) -> None:
        """Write atomically."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        doc: dict[str, Any] = {
            "version": JOURNAL_VERSION,
            "plan_id": self.plan_id,
            "started_at": self.started_at,
            "finished": self.finished,
            "moves": [asdict(m) for m in sorted(self.moves.values(), key=lambda m: m.id)],
        }
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".journal-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(doc, f, indent=1)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
