"""The controller's decisions: policies → plans on their schedule; plans → approval, edits,
re-validation, execution and its end. Level-triggered: each call looks at an object as it is now
(re-read under a per-object lock) and moves it one step, so a kopf event, the periodic resync and
a new leader after a failover all reach the same result.

RebalancePlan phases::

    Proposed ──approvedHash = planHash──▶ Approved ──(leader, window open, re-validated)──▶ Executing
       │  ▲ edits (skip / retarget) → new hash            │ cluster changed → Proposed (new hash)
       │  └────────────────────────────────────────────────┘
       ├─▶ Superseded (a newer plan of the policy, or the cluster no longer needs it)
       └─▶ Cancelled (spec.cancel)
    Reported (automation Report: never executed)
    Executing ──▶ Succeeded | Failed | Cancelled; held (shutdown / window closed) → resumes later
"""

import dataclasses
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from vm_rebalance import service
from vm_rebalance.controller.executions import Executions, Running
from vm_rebalance.controller.metrics import Metrics
from vm_rebalance.controller.policy import Automation, Policy, parse_policy
from vm_rebalance.controller.schedule import window_state
from vm_rebalance.controller.status import automatic_verdict, imbalance, plan_status
from vm_rebalance.errors import ClusterError, ConfigError, InfeasiblePlanError, RebalanceError
from vm_rebalance.model import ClusterState, Plan
from vm_rebalance.model.cancel import CancelReason
from vm_rebalance.service.incluster import (
    InCluster,
    ObjectRef,
    parse_time,
    plan_of,
    plan_ref,
    prepare_resume,
    stamp,
)

log = logging.getLogger(__name__)

TERMINAL = ("Succeeded", "Failed", "Cancelled", "Superseded")
PENDING = ("Proposed", "Reported")
ACTIVE = ("Approved", "Executing")


def utcnow() -> datetime:
    """The wall clock (schedules and windows are wall-clock things)."""
    return datetime.now(UTC)


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def _status(obj: Mapping[str, Any]) -> dict[str, Any]:
    status = obj.get("status")
    return dict(status) if isinstance(status, dict) else {}


def _edits_of(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The plan's requested edits in a canonical form (compared with what was applied)."""
    skip = sorted({int(i) for i in spec.get("skip") or () if isinstance(i, int)})
    retarget = sorted(
        {(int(r["move"]), str(r["node"])) for r in spec.get("retarget") or () if isinstance(r, dict) and "move" in r}
    )
    return {"skip": skip, "retarget": [[m, n] for m, n in retarget]}


def scope(state: ClusterState, selector: Mapping[str, str]) -> ClusterState:
    """Only the nodes whose labels match ``selector`` and the VMs running on them (empty: everything).

    The planner sees that part of the cluster only; re-validation before execution checks every
    move against the whole cluster again.
    """
    if not selector:
        return state
    nodes = tuple(n for n in state.nodes if all(n.labels.get(k) == v for k, v in selector.items()))
    names = {n.name for n in nodes}
    vms = tuple(v for v in state.vms if v.node in names)
    note = f"policy scope: {len(nodes)} of {len(state.nodes)} nodes (nodeSelector {dict(selector)})"
    return dataclasses.replace(state, nodes=nodes, vms=vms, notes=(*state.notes, note))


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """What the controller was started with."""

    identity: str
    resync_seconds: float = 15.0


class Controller:
    """Reconciles RebalancePolicies and RebalancePlans (only while it leads)."""

    def __init__(
        self,
        *,
        target: service.Target,
        cluster: InCluster,
        settings: Settings,
        metrics: Metrics,
        options: service.ExecutionOptions,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.target = target
        self.cluster = cluster
        self.settings = settings
        self.identity = settings.identity
        self.metrics = metrics
        self.clock = clock
        self.executions = Executions(
            target=target,
            cluster=cluster,
            identity=settings.identity,
            metrics=metrics,
            options=options,
            on_finished=self._finished,
        )
        self.leading = threading.Event()
        self.draining = threading.Event()
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()
        self._start_lock = threading.Lock()
        """Held from "nothing runs" to "started": two plans reconciled at once never both start."""

    @property
    def acting(self) -> bool:
        """Whether this replica may change anything now."""
        return self.leading.is_set() and not self.draining.is_set()

    @contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        with self._locks_lock:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            yield

    def _event(
        self, obj: Mapping[str, Any], reason: str, note: str, *, warning: bool = False, action: str = ""
    ) -> None:
        self.cluster.event(
            plan_ref(obj), warning=warning, reason=reason, action=action or reason, note=note, instance=self.identity
        )

    def _read_state(self) -> ClusterState:
        with service.Session.open(self.target) as session:
            return session.state

    # ================================================================== policies

    def reconcile_policy(self, obj: Mapping[str, Any]) -> None:
        """Plan for a policy when its schedule says so; keep its status current."""
        if not self.acting:
            return
        name = _name(obj)
        with self._locked(f"policy/{name}"):
            try:
                obj = self.cluster.get_policy(name)
            except ClusterError as exc:
                if exc.status == 404:
                    return
                raise
            self._reconcile_policy(obj)

    def _reconcile_policy(self, obj: dict[str, Any]) -> None:
        name, status = _name(obj), _status(obj)
        meta = obj.get("metadata") or {}
        generation = meta.get("generation")
        now = self.clock()
        try:
            policy = parse_policy(obj)
        except ConfigError as exc:
            if status.get("phase") != "Invalid" or status.get("message") != str(exc):
                self.cluster.patch_policy_status(
                    name, {"phase": "Invalid", "message": str(exc), "observedGeneration": generation}
                )
                self._event(obj, "InvalidPolicy", str(exc), warning=True)
                self.metrics.policy_errors.labels(policy=name).inc()
            return
        if policy.suspended:
            if status.get("phase") != "Suspended":
                self.cluster.patch_policy_status(
                    name,
                    {
                        "phase": "Suspended",
                        "message": "spec.suspend is true: no plans",
                        "observedGeneration": generation,
                    },
                )
            return
        changed = status.get("observedGeneration") != generation
        due = parse_time(status.get("nextScheduleTime"))
        if changed or due is None or status.get("phase") != "Active":
            due = policy.schedule.next_after(None, now) if changed or due is None else due
            if now < due:
                self.cluster.patch_policy_status(
                    name,
                    {
                        "phase": "Active",
                        "observedGeneration": generation,
                        "schedule": policy.schedule.describe(),
                        "nextScheduleTime": _iso(due),
                        "message": f"next plan at {_iso(due)}",
                    },
                )
                return
        if now < due:
            return
        try:
            message, plan_name = self._run_policy(policy, obj, now)
        except ClusterError as exc:
            message, plan_name = f"the cluster could not be read: {exc}", None
            self.metrics.policy_errors.labels(policy=name).inc()
        nxt = policy.schedule.next_after(now, now)
        update: dict[str, Any] = {
            "phase": "Active",
            "observedGeneration": generation,
            "schedule": policy.schedule.describe(),
            "lastScheduleTime": _iso(now),
            "nextScheduleTime": _iso(nxt),
            "message": message,
        }
        if plan_name:
            update["lastPlan"] = plan_name
        self.cluster.patch_policy_status(name, update)

    def _run_policy(self, policy: Policy, obj: Mapping[str, Any], now: datetime) -> tuple[str, str | None]:
        """Make this run's plan; returns the status message and the plan's name (None: no plan)."""
        plans = self.cluster.list_plans(policy.name)
        active = [p for p in plans if _status(p).get("phase") in ACTIVE]
        if active:
            return f"no new plan: plan {_name(active[0])} is {_status(active[0]).get('phase')}", None
        pending = [p for p in plans if _status(p).get("phase") in PENDING]
        state = scope(self._read_state(), policy.node_selector)
        try:
            view = service.plan(state, policy.plan)
        except InfeasiblePlanError as exc:
            self._supersede(pending, f"no feasible plan any more: {exc}")
            return f"no feasible plan: {exc}", None
        except ConfigError as exc:
            self.metrics.policy_errors.labels(policy=policy.name).inc()
            return f"cannot plan: {exc}", None
        plan = view.plan
        before, after = imbalance(plan, "before"), imbalance(plan, "after")
        self.metrics.observe_imbalance(policy.name, before, after if plan.moves else before)
        if not plan.moves:
            self._supersede(pending, "the cluster no longer needs it: nothing would improve enough")
            return (
                f"no plan needed: imbalance {before:.1f} pp, nothing would improve enough "
                f"for goal {plan.goal.type.value}",
                None,
            )
        if before - after < policy.min_improvement:
            self._supersede(pending, "the cluster no longer needs it")
            return (
                f"no plan: it would improve the imbalance by {before - after:.1f} pp ({before:.1f} → {after:.1f}), "
                f"less than minImprovement {policy.min_improvement:g}"
            ), None
        fields = plan_status(plan, view.limits)
        for p in pending:
            if _status(p).get("proposalHash") == fields["planHash"]:
                return f"the plan is unchanged: {_name(p)} still waits ({_status(p).get('phase')})", _name(p)
        name = f"{policy.name}-{now.astimezone(UTC):%Y%m%d-%H%M%S}"
        created = self.cluster.create_plan(name, obj, {"policy": policy.name})
        if created is None:
            return f"plan {name} exists already", name
        status: dict[str, Any] = {
            **fields,
            "proposal": fields["plan"],
            "proposalHash": fields["planHash"],
            "policy": policy.name,
            "automation": policy.automation.value,
            "maxMigrations": policy.plan.max_migrations,
            "createdAt": stamp(),
            "appliedEdits": {"skip": [], "retarget": []},
            "warnings": list(plan.warnings),
        }
        status.update(self._gate(policy.automation, plan, policy.plan.max_migrations or 0))
        self.cluster.patch_plan_status(name, status)
        self.metrics.plans_created.labels(policy=policy.name, automation=policy.automation.value).inc()
        s = fields["summary"]
        note = (
            f"{s['moves']} move(s) ({s['live']} live, {s['cold']} cold, {s['pinned']} pinned); imbalance "
            f"{s['improvement']} pp; hash {fields['shortHash']}: {status['message']}"
        )
        self._event(created, "PlanProposed", note)
        self._event(obj, "PlanProposed", f"plan {name}: {note}")
        self._supersede([p for p in pending if _name(p) != name], f"superseded by plan {name}", by=name)
        self._prune(policy)
        if status["phase"] == "Approved":
            self._event(created, "PlanApproved", "approved automatically: every move is live and within the limits")
        return f"plan {name}: {status['message']}", name

    def _gate(self, automation: Automation, plan: Plan, max_migrations: int) -> dict[str, Any]:
        """Phase and message of a (new or changed) plan under the policy's automation level."""
        match automation:
            case Automation.REPORT:
                return {"phase": "Reported", "message": "automation Report: for information, never executed"}
            case Automation.APPROVE:
                return {
                    "phase": "Proposed",
                    "message": "waiting for approval: set spec.approvedHash to status.planHash",
                }
            case Automation.AUTOMATIC:
                why = automatic_verdict(plan, max_migrations)
                if why is None:
                    return {
                        "phase": "Approved",
                        "approvedBy": "automatic",
                        "message": "approved automatically: every move is live and within the limits",
                    }
                return {"phase": "Proposed", "message": f"waiting for approval: {why}"}

    def _supersede(self, plans: list[dict[str, Any]], why: str, *, by: str | None = None) -> None:
        for p in plans:
            update: dict[str, Any] = {"phase": "Superseded", "message": why}
            if by:
                update["supersededBy"] = by
            self.cluster.patch_plan_status(_name(p), update)
            self._event(p, "PlanSuperseded", why)

    def _prune(self, policy: Policy) -> None:
        """Delete the oldest finished plans of the policy beyond its historyLimit."""
        done = [p for p in self.cluster.list_plans(policy.name) if _status(p).get("phase") in TERMINAL]
        done.sort(key=lambda p: str((p.get("metadata") or {}).get("creationTimestamp") or ""))
        for p in done[: max(0, len(done) - policy.history)]:
            self.cluster.delete_plan(_name(p))

    # ================================================================== plans

    def reconcile_plan(self, obj: Mapping[str, Any]) -> None:
        """Move a plan one step: edits, approval, start or resume of its execution."""
        if not self.acting:
            return
        name = _name(obj)
        with self._locked(f"plan/{name}"):
            try:
                current = self.cluster.get_plan(name)
            except ClusterError as exc:
                if exc.status == 404:
                    return
                raise
            self._reconcile_plan(current)

    def _reconcile_plan(self, obj: dict[str, Any]) -> None:
        name, status = _name(obj), _status(obj)
        spec = obj.get("spec") or {}
        phase = status.get("phase")
        if not phase or phase in TERMINAL:
            return
        if spec.get("cancel"):
            self._cancel(obj)
            return
        if phase in PENDING:
            if _edits_of(spec) != status.get("appliedEdits") and _edits_of(spec) != status.get("rejectedEdits"):
                self._edit(obj)
                return
            if not self._approved(obj):
                return
            obj = self.cluster.get_plan(name)
        if _status(obj).get("phase") in ACTIVE:
            self._maybe_start(obj)

    def _approved(self, obj: dict[str, Any]) -> bool:
        """Turn a matching ``spec.approvedHash`` into phase Approved; True when it was approved now."""
        name, status = _name(obj), _status(obj)
        given = str((obj.get("spec") or {}).get("approvedHash") or "").strip().lower().removeprefix("sha256:")
        if not given:
            return False
        if status.get("phase") == "Reported":
            message = "automation Report: this plan is for information and is never executed (approval ignored)"
            if status.get("message") != message:
                self.cluster.patch_plan_status(name, {"message": message})
                self._event(obj, "ApprovalIgnored", message, warning=True)
            return False
        if given != status.get("planHash"):
            message = (
                f"spec.approvedHash {given[:12]}… is not this plan's hash {str(status.get('planHash'))[:12]}…: "
                "the plan changed since it was approved; approve the plan as it is now"
            )
            if status.get("message") != message:
                self.cluster.patch_plan_status(name, {"message": message})
                self._event(obj, "HashMismatch", message, warning=True)
            return False
        self.cluster.patch_plan_status(
            name, {"phase": "Approved", "approvedBy": "spec.approvedHash", "message": "approved by hash"}
        )
        self._event(obj, "PlanApproved", f"approved by hash {given[:12]}…")
        return True

    def _edit(self, obj: dict[str, Any]) -> None:
        """Recompute the plan from its proposal with the skip / retarget edits of its spec: a new hash."""
        name, status = _name(obj), _status(obj)
        wanted = _edits_of(obj.get("spec") or {})
        edits: list[service.Edit] = [service.Skip(i) for i in wanted["skip"]]
        edits += [service.Retarget(m, n) for m, n in wanted["retarget"]]
        try:
            proposal = plan_of(status.get("proposal"))
            result = service.edit_plan(self._read_state(), proposal, edits)
        except RebalanceError as exc:
            message = f"edit refused: {exc}"
            self.cluster.patch_plan_status(name, {"message": message, "rejectedEdits": wanted})
            self._event(obj, "EditRefused", message, warning=True)
            return
        fields = plan_status(result.plan)
        update: dict[str, Any] = {**fields, "appliedEdits": wanted, "rejectedEdits": None}
        automation = Automation(status.get("automation") or Automation.APPROVE.value)
        update.update(self._gate(automation, result.plan, int(status.get("maxMigrations") or 0)))
        changes = " ".join(result.changes) or "edits removed: back to the proposal."
        update["message"] = f"{changes} New hash {fields['shortHash']}: {update['message']}"
        self.cluster.patch_plan_status(name, update)
        self._event(obj, "PlanEdited", update["message"])

    def _cancel(self, obj: dict[str, Any]) -> None:
        name, status = _name(obj), _status(obj)
        if self.executions.busy() == name:
            self.executions.cancel(CancelReason.CLIENT, name)
            return  # the execution's end records Cancelled
        if status.get("phase") == "Executing":
            return  # another replica's execution (it is not ours to record)
        self.cluster.patch_plan_status(name, {"phase": "Cancelled", "message": "cancelled (spec.cancel)"})
        self._event(obj, "PlanCancelled", "cancelled before it executed")

    def _windows(self, status: Mapping[str, Any], now: datetime) -> tuple[bool, datetime | None]:
        policy_name = status.get("policy")
        if not policy_name:
            return True, None
        try:
            policy = parse_policy(self.cluster.get_policy(str(policy_name)))
        except (ClusterError, ConfigError):
            return True, None  # the policy is gone or broken: its windows cannot hold an approved plan
        return window_state(policy.windows, now)

    def _maybe_start(self, obj: dict[str, Any]) -> None:
        """Start (or resume) an approved plan if this replica leads, nothing else runs and a window is open."""
        with self._start_lock:
            self._start(obj)

    def _start(self, obj: dict[str, Any]) -> None:
        name, status = _name(obj), _status(obj)
        if not self.acting:
            return
        busy = self.executions.busy()
        if busy == name:
            return
        if busy is not None:
            self._note(obj, f"waiting: plan {busy} is executing (one plan at a time)")
            return
        is_open, when = self._windows(status, self.clock())
        if not is_open:
            assert when is not None
            self._note(obj, f"waiting for the maintenance window (opens at {_iso(when)})")
            return
        journal = status.get("journal") if isinstance(status.get("journal"), dict) else None
        resume = bool(journal and journal.get("moves"))
        plan = plan_of(status.get("plan"))
        prep = prepare_resume(self._read_state(), plan, journal)
        if prep.changed:
            self._changed(obj, prep.plan, prep.dropped_ids, prep.warnings)
            return
        execution = dict(status.get("execution") or {})
        previous = execution.get("holder")
        execution.update(
            {
                "holder": self.identity,
                "attempt": int(execution.get("attempt") or 0) + 1,
                "startedAt": execution.get("startedAt") if resume else stamp(),
                "resumedAt": stamp() if resume else None,
            }
        )
        self.cluster.patch_plan_status(
            name,
            {
                "phase": "Executing",
                "execution": execution,
                "message": (
                    f"resumed by {self.identity} after {prep.done} finished move(s)" if resume else "executing"
                ),
            },
        )
        if resume:
            took = f" (taking over from {previous})" if previous and previous != self.identity else ""
            self._event(
                obj, "ExecutionResumed", f"{self.identity} resumes the execution{took}; {prep.done} move(s) done before"
            )
        else:
            self._event(
                obj, "ExecutionStarted", f"{len(prep.plan.moves)} move(s), re-validated against the cluster just now"
            )
        self.executions.start(name, prep.plan, resume=resume)

    def _note(self, obj: Mapping[str, Any], message: str) -> None:
        if _status(obj).get("message") != message:
            self.cluster.patch_plan_status(_name(obj), {"message": message})

    def _changed(self, obj: dict[str, Any], plan: Plan, dropped: tuple[int, ...], warnings: tuple[str, ...]) -> None:
        """The cluster changed under an approved plan: its remainder is a new plan to approve."""
        name, status = _name(obj), _status(obj)
        fields = plan_status(plan)
        automation = Automation(status.get("automation") or Automation.APPROVE.value)
        gate = self._gate(automation, plan, int(status.get("maxMigrations") or 0))
        why = "; ".join(warnings) or "moves no longer validate"
        ids = ", ".join(f"#{i}" for i in dropped)
        message = (
            f"the cluster changed: {ids} no longer validate ({why}); new hash {fields['shortHash']}: {gate['message']}"
        )
        self.cluster.patch_plan_status(
            name, {**fields, **gate, "message": message, "approvedBy": gate.get("approvedBy")}
        )
        self._event(obj, "PlanChanged", message, warning=True)

    # ================================================================== the end of an execution

    def _finished(self, run: Running) -> None:
        f = run.finished
        assert f is not None
        name = run.name
        if f.cancelled is CancelReason.LEASE_LOST:
            log.warning("execution of %s stopped: the lease was lost; the next leader resumes it", name)
            return
        result = "succeeded"
        phase, message, reason, warning = "Succeeded", "every move succeeded", "ExecutionSucceeded", False
        if f.error is not None:
            retry = isinstance(f.error, ClusterError | service.WriterLockHeldError)  # lock held: retried on resync
            phase = "Executing" if retry else "Failed"
            message = f"could not execute: {f.error}" + ("; retrying" if retry else "")
            reason, warning, result = "ExecutionError", True, "failed"
        elif f.cancelled is CancelReason.CLIENT:
            phase, message, reason, warning, result = (
                "Cancelled",
                "cancelled (spec.cancel): in-flight moves were cancelled safely",
                "ExecutionCancelled",
                True,
                "cancelled",
            )
        elif f.cancelled is not None:
            phase, message, reason, warning, result = (
                "Executing",
                f"interrupted ({f.cancelled.value}): in-flight moves cancelled safely; "
                "the next leader resumes the rest",
                "ExecutionInterrupted",
                True,
                "paused",
            )
        elif f.complete:
            pass
        elif f.failed == 0 and f.held is not None:
            phase = "Approved" if f.held is CancelReason.WINDOW_CLOSED else "Executing"
            message = f"paused ({f.held.value}): running moves finished; {f.not_attempted} move(s) continue later"
            reason, result = "ExecutionPaused", "paused"
        else:
            phase, message, reason, warning, result = (
                "Failed",
                f"{f.failed} move(s) failed; {f.not_attempted} not attempted (see status.report)",
                "ExecutionFailed",
                True,
                "failed",
            )
        self.metrics.execution_seconds.labels(result=result).observe(f.seconds)
        values: dict[str, Any] = {"phase": phase, "message": message}
        if f.report is not None:
            values["report"] = f.report
        if phase in TERMINAL:
            values["finishedAt"] = stamp()
        try:
            self.cluster.fenced_plan_status(name, self.identity, values)
        except ClusterError as exc:
            log.warning("the end of %s was not recorded (another replica holds it?): %s", name, exc)
            return
        self._event({"kind": "RebalancePlan", "metadata": {"name": name}}, reason, message, warning=warning)

    # ================================================================== periodic work

    def resync(self) -> None:
        """Reconcile every policy and plan (time-based steps: schedules, windows, resumption)."""
        if not self.acting:
            return
        for policy in self.cluster.list_policies():
            try:
                self.reconcile_policy(policy)
            except RebalanceError as exc:
                log.warning("policy %s: %s", _name(policy), exc)
                self.metrics.policy_errors.labels(policy=_name(policy)).inc()
        plans = self.cluster.list_plans()
        for plan in plans:
            try:
                self.reconcile_plan(plan)
            except RebalanceError as exc:
                log.warning("plan %s: %s", _name(plan), exc)
        self.metrics.observe_phases(str(_status(p).get("phase") or "") for p in self.cluster.list_plans())
        self._close_windows(plans)

    def _close_windows(self, plans: list[dict[str, Any]]) -> None:
        busy = self.executions.busy()
        if busy is None:
            return
        for p in plans:
            if _name(p) == busy:
                is_open, _ = self._windows(_status(p), self.clock())
                if not is_open:
                    self.executions.hold(CancelReason.WINDOW_CLOSED)

    def lease_event(self, lease: ObjectRef, note: str) -> None:
        """Record a leadership change on the Lease."""
        self.cluster.event(lease, reason="LeaderElected", action="Lead", note=note, instance=self.identity)
