"""The capacity report use case (`vm-rebalance report`, the `capacity_report` MCP tool) and HTML files.

Front-ends build a ``ReportSpec`` from their input, call ``report`` (or ``report_of`` on a state
already read) and render the ``ReportView``: ``to_document()`` for `-o json|yaml`, the typed
``report`` for tables, Markdown and HTML. The analysis itself is pure (``service/capacity.py``).
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vm_rebalance.errors import ConfigError
from vm_rebalance.model import Basis, ClusterState, Plan
from vm_rebalance.model.capacity import CapacityReport, capacity_report_to_document
from vm_rebalance.service.capacity import capacity_report
from vm_rebalance.service.requests import load_plan
from vm_rebalance.service.session import Progress, Target, read_state

BASES: tuple[str, ...] = tuple(b.value for b in Basis)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportSpec:
    """What to report: the options of `vm-rebalance report` and of the `capacity_report` tool."""

    basis: str | None = None
    """usage or requests; None: usage when the cluster has metrics."""
    plan_file: str | None = None
    """A saved plan (`plan --save`) whose nodes before → after the report shows."""
    n_plus_one: bool = True
    """Simulate losing the largest node (a drain plan; the costliest part on large clusters)."""

    def check(self) -> None:
        """Refuse bad values before the cluster is read.

        Raises:
            ConfigError: an unknown basis.
        """
        if self.basis is not None and self.basis not in BASES:
            raise ConfigError(f"unknown basis '{self.basis}'", hint=f"choose one of {', '.join(BASES)}")


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportView:
    """A capacity report as every front-end shows it."""

    report: CapacityReport

    def to_document(self) -> dict[str, Any]:
        """The CapacityReport document (`report -o json|yaml`)."""
        return capacity_report_to_document(self.report)


def report_of(state: ClusterState, spec: ReportSpec, *, plan: Plan | None = None) -> ReportView:
    """The report of a state already read (pure); ``plan`` overrides ``spec.plan_file``.

    Raises:
        ConfigError: a bad spec or an unreadable plan file.
    """
    spec.check()
    if plan is None and spec.plan_file is not None:
        plan = load_plan(spec.plan_file)
    return ReportView(report=capacity_report(state, basis=spec.basis, plan=plan, check_n_plus_one=spec.n_plus_one))


def report(target: Target, spec: ReportSpec, *, progress: Progress | None = None) -> ReportView:
    """Read the cluster and make its capacity report.

    Raises:
        ConfigError: bad options, plan file or snapshot file. ClusterError: the cluster cannot be read.
    """
    spec.check()
    plan = load_plan(spec.plan_file) if spec.plan_file is not None else None  # a bad file fails before reading
    state = read_state(target, progress=progress)
    return report_of(state, spec, plan=plan)


def write_text(text: str, path: str | Path) -> None:
    """Write a text file (an HTML report). Raises ConfigError when it cannot be written (naming the file only)."""
    p = Path(path)
    try:
        p.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write '{p.name}': {exc.strerror or type(exc).__name__}") from exc
