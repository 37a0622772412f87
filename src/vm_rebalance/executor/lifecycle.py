"""Start, stop and restart VMs, verified (seed 004): restart = stop → verify Stopped → start → verify Running.

Batches run side by side: every VM's request is issued, then all are followed until each
reaches its state or fails. A VM already in the desired state is reported as such, not
as an error (decided on the refusal's `Rejection` kind, never on its text).

A VM that should run but does not — its runStrategy keeps it "started" while the cluster shows
ErrorUnschedulable, CrashLoopBackOff, a failed instance or Unknown — is not "already running":
`start` and `restart` say why it does not run, re-create its instance (stop → start, which also
picks up placement changes such as a removed pin) and verify it; when it still cannot run the
result names the cause and the fix (a vm-rebalance pin to unpin, the user's own affinity, room).

With a journal every VM's step is saved before its request, so a batch killed half-way (a
restart after its stop) is continued by `vm-rebalance resume ID`: the VM is started again.
"""

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import assert_never

from vm_rebalance.errors import ClusterError, ResourceNotFoundError
from vm_rebalance.executor.journal import Journal, LifecycleRecord, LifecycleStep, RecordStatus
from vm_rebalance.kube.errors import ApiRejectedError, Rejection
from vm_rebalance.kube.kubevirt import KubeVirtApi
from vm_rebalance.kube.views import PrintableStatus, VmiPhase, VmiView, VmView
from vm_rebalance.model.execution import Action, LifecycleReport, LifecycleResult, LifecycleStatus

__all__ = ["Action", "LifecycleReport", "LifecycleResult", "LifecycleStatus", "run_lifecycle", "stuck_reason"]

Clock = Callable[[], float]


class _Waiting(StrEnum):
    """What an operation waits for."""

    NOTHING = ""
    STOPPED = "stop"
    RUNNING = "start"


@dataclass(slots=True)
class _Op:
    namespace: str
    name: str
    action: Action
    waiting: _Waiting
    started: float
    result: LifecycleResult | None = None
    recreate: str = ""
    """Why the VM's instance is re-created (it should run but does not); '' otherwise."""
    then_start: bool = False
    """Start it once it is stopped (restart, or a re-created instance)."""

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"


def _running(vmi: VmiView | None) -> bool:
    return vmi is not None and vmi.running


def stuck_reason(vm: VmView, vmi: VmiView | None) -> str | None:
    """Why a VM that should run does not (None: it runs, it is not asked to, or it is still starting)."""
    if _running(vmi):
        return None
    failed = vmi is not None and vmi.phase is VmiPhase.FAILED
    wants = vm.wants_running or (vmi is not None and vmi.phase not in (VmiPhase.SUCCEEDED, VmiPhase.FAILED))
    if not wants and not failed:
        return None
    if not (vm.status.cannot_start or failed or vm.status is PrintableStatus.UNKNOWN):
        return None
    why = f": {vmi.problem}" if vmi is not None and vmi.problem else ""
    return f"it should run (runStrategy {vm.run_strategy}) but does not — {vm.printable_status}{why}"


def fix_hint(vm: VmView) -> str:
    """What would let a VM run that cannot: the pin to remove, the rule to change, or room to make."""
    ref = f"{vm.namespace}/{vm.name}"
    if vm.pins.ours:
        return (
            f"it is pinned by vm-rebalance to {', '.join(vm.pins.ours)}: `vm-rebalance unpin {ref}` lets it run on "
            f"any suitable node, then `vm-rebalance start {ref}`"
        )
    if vm.pins.user_terms:
        return (
            f"its own node affinity allows only {', '.join(vm.pins.user_nodes)}: make room there or change the "
            f"affinity, then `vm-rebalance start {ref}`"
        )
    return (
        f"make room for it or fix the cause above (`kubectl describe vmi -n {vm.namespace} {vm.name}`), then start it"
    )


def run_lifecycle(
    api: KubeVirtApi,
    action: Action,
    vms: Sequence[tuple[str, str]],
    *,
    timeout_seconds: float = 600.0,
    poll_interval_seconds: float = 2.0,
    report: LifecycleReport = lambda *_: None,
    clock: Clock = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    journal: Journal | None = None,
) -> list[LifecycleResult]:
    """Apply ``action`` to every (namespace, name) VM and verify it; results in input order.

    With ``journal`` each VM's step is saved before its request; VMs the journal has finished are
    reported from it, and one it left half-way continues from its step (resume).
    """
    ops: list[_Op] = []
    for namespace, name in vms:
        op = _Op(namespace, name, action, _Waiting.NOTHING, clock())
        ops.append(op)
        _begin(api, op, report, clock, journal)
    try:
        while any(op.result is None for op in ops):
            sleep(poll_interval_seconds)
            for op in ops:
                if op.result is None:
                    _advance(api, op, report, clock, timeout_seconds, journal)
    except KeyboardInterrupt:
        _interrupt(api, ops, clock, journal)
        raise
    return [op.result for op in ops if op.result is not None]


def _save(journal: Journal | None, op: _Op, status: RecordStatus, step: LifecycleStep, message: str = "") -> None:
    if journal is None:
        return
    record = journal.lifecycle.get(op.ref) or LifecycleRecord(namespace=op.namespace, name=op.name, action=op.action)
    record.status, record.step, record.message = status, step, message
    journal.update_vm(record)


def _finish(
    op: _Op,
    status: LifecycleStatus,
    message: str,
    clock: Clock,
    vm: VmView | None = None,
    journal: Journal | None = None,
) -> None:
    op.result = LifecycleResult(
        namespace=op.namespace,
        name=op.name,
        action=op.action,
        status=status,
        message=message,
        run_strategy=vm.run_strategy if vm else None,
        printable_status=vm.printable_status if vm else None,
        duration_seconds=clock() - op.started,
    )
    ok = status in (LifecycleStatus.DONE, LifecycleStatus.ALREADY)
    _save(journal, op, RecordStatus.SUCCEEDED if ok else RecordStatus.FAILED, LifecycleStep.NONE, message)


def _begin(api: KubeVirtApi, op: _Op, report: LifecycleReport, clock: Clock, journal: Journal | None) -> None:
    record = journal.lifecycle.get(op.ref) if journal is not None else None
    if record is not None and record.status is RecordStatus.SUCCEEDED:
        op.result = LifecycleResult(
            namespace=op.namespace,
            name=op.name,
            action=op.action,
            status=LifecycleStatus.DONE,
            message=f"{record.message or 'done'} (in an earlier run)",
        )
        return
    try:
        vm = api.get_vm(op.namespace, op.name)
        vmi = api.get_vmi(op.namespace, op.name)
    except ResourceNotFoundError:
        msg = f"VM '{op.name}' does not exist in namespace '{op.namespace}'"
        _finish(op, LifecycleStatus.NOT_FOUND, msg, clock, journal=journal)
        return
    except ClusterError as exc:
        _finish(op, LifecycleStatus.FAILED, str(exc), clock, journal=journal)
        return
    try:
        if record is not None and record.status is RecordStatus.RUNNING and record.step is not LifecycleStep.NONE:
            _continue(api, op, record, vm, report, journal)
        elif _request(api, op, vm, vmi, report, clock, journal):
            return
    except ClusterError as exc:
        _refused(op, exc, vm, clock, journal)
        return
    report(op.ref, op.waiting.value, "requested")


def _continue(
    api: KubeVirtApi, op: _Op, record: LifecycleRecord, vm: VmView, report: LifecycleReport, journal: Journal | None
) -> None:
    """Resume: re-issue the journalled step's request (both are idempotent) and wait for it."""
    if record.step is LifecycleStep.STOPPING:
        op.then_start = op.action is Action.RESTART or (record.was_running is True and op.action is Action.START)
        _stop(api, op)
        op.waiting = _Waiting.STOPPED
    else:
        _start(api, op, vm)
        op.waiting = _Waiting.RUNNING
    report(op.ref, op.waiting.value, f"resuming at {record.step.value}")


def _stop(api: KubeVirtApi, op: _Op) -> None:
    try:
        api.stop_vm(op.namespace, op.name)
    except ApiRejectedError as exc:
        if exc.kind is not Rejection.NOT_RUNNING:
            raise


def _start(api: KubeVirtApi, op: _Op, vm: VmView) -> None:
    try:
        api.start_vm(op.namespace, op.name)
    except ApiRejectedError as exc:
        # Already running, or a strategy that keeps it started by itself (Always): waiting is all there is to do.
        if exc.kind is Rejection.ALREADY_RUNNING or (exc.kind is Rejection.RUN_STRATEGY and vm.wants_running):
            return
        raise


def _request(
    api: KubeVirtApi,
    op: _Op,
    vm: VmView,
    vmi: VmiView | None,
    report: LifecycleReport,
    clock: Clock,
    journal: Journal | None,
) -> bool:
    """Send the first request of ``op``; True when the operation is already over."""
    running = _running(vmi)
    stuck = stuck_reason(vm, vmi)
    if journal is not None:
        record = journal.lifecycle.get(op.ref) or LifecycleRecord(
            namespace=op.namespace, name=op.name, action=op.action
        )
        record.was_running = running or stuck is not None
        journal.lifecycle[op.ref] = record
    match op.action:
        case Action.START:
            if running:
                _finish(
                    op,
                    LifecycleStatus.ALREADY,
                    f"VM is already running on {vmi.node if vmi else '?'}",
                    clock,
                    vm,
                    journal,
                )
                return True
            if stuck is not None:
                return _recreate(api, op, stuck, report, journal)
            if vm.wants_running and vmi is not None:
                op.waiting = _Waiting.RUNNING  # it is starting by itself: verify it gets there
                _save(journal, op, RecordStatus.RUNNING, LifecycleStep.STARTING)
                return False
            _save(journal, op, RecordStatus.RUNNING, LifecycleStep.STARTING)
            _start(api, op, vm)
            op.waiting = _Waiting.RUNNING
        case Action.STOP:
            if not running and vm.status in (PrintableStatus.STOPPED, PrintableStatus.UNKNOWN) and not vm.wants_running:
                _finish(op, LifecycleStatus.ALREADY, "VM is already stopped", clock, vm, journal)
                return True
            _save(journal, op, RecordStatus.RUNNING, LifecycleStep.STOPPING)
            _stop(api, op)
            op.waiting = _Waiting.STOPPED
        case Action.RESTART:
            if stuck is not None:
                return _recreate(api, op, stuck, report, journal)
            if not running:
                # Restart of a stopped VM: nothing to stop; start it (and say so).
                _save(journal, op, RecordStatus.RUNNING, LifecycleStep.STARTING)
                _start(api, op, vm)
                op.waiting = _Waiting.RUNNING
                report(op.ref, op.waiting.value, "VM was not running: starting it")
                return True
            _save(journal, op, RecordStatus.RUNNING, LifecycleStep.STOPPING)
            _stop(api, op)
            op.then_start = True
            op.waiting = _Waiting.STOPPED
        case _:
            assert_never(op.action)
    return False


def _recreate(api: KubeVirtApi, op: _Op, stuck: str, report: LifecycleReport, journal: Journal | None) -> bool:
    """A VM that should run but does not: stop its stale instance, then start it again (and verify)."""
    op.recreate = stuck
    op.then_start = True
    _save(journal, op, RecordStatus.RUNNING, LifecycleStep.STOPPING, stuck)
    _stop(api, op)
    op.waiting = _Waiting.STOPPED
    report(op.ref, op.waiting.value, f"{stuck}: re-creating its instance (stop → start)")
    return True


def _refused(op: _Op, exc: ClusterError, vm: VmView, clock: Clock, journal: Journal | None) -> None:
    """A refused first request: "already so" when KubeVirt says the VM is in the desired state."""
    kind = exc.kind if isinstance(exc, ApiRejectedError) else None
    if op.action is Action.START and kind is Rejection.ALREADY_RUNNING:
        _finish(op, LifecycleStatus.ALREADY, "VM is already running", clock, vm, journal)
    elif op.action is Action.STOP and kind is Rejection.NOT_RUNNING:
        _finish(op, LifecycleStatus.ALREADY, "VM is already stopped", clock, vm, journal)
    else:
        _finish(op, LifecycleStatus.FAILED, f"{op.action.value} was refused: {exc}", clock, vm, journal)


def _advance(
    api: KubeVirtApi,
    op: _Op,
    report: LifecycleReport,
    clock: Clock,
    timeout_seconds: float,
    journal: Journal | None,
) -> None:
    try:
        vm = api.get_vm(op.namespace, op.name)
        vmi = api.get_vmi(op.namespace, op.name)
    except ResourceNotFoundError:
        _finish(op, LifecycleStatus.FAILED, "the VM was deleted meanwhile", clock, journal=journal)
        return
    except ClusterError as exc:
        _finish(op, LifecycleStatus.FAILED, f"{exc} (its state could not be read)", clock, journal=journal)
        return
    timed_out = clock() - op.started > timeout_seconds
    match op.waiting:
        case _Waiting.STOPPED:
            _advance_stopping(api, op, vm, vmi, report, clock, timed_out, timeout_seconds, journal)
        case _Waiting.RUNNING:
            if _running(vmi) and vm.status is PrintableStatus.RUNNING:
                done = "running" if op.action is Action.START else "restarted"
                if op.recreate:
                    done = f"running on {vmi.node if vmi else '?'}; it did not run before ({op.recreate})"
                _finish(op, LifecycleStatus.DONE, done, clock, vm, journal)
            elif vm.status.cannot_start or (vmi is not None and vmi.phase is VmiPhase.FAILED) or timed_out:
                why = f": {vmi.problem}" if vmi is not None and vmi.problem else ""
                state = "stopped" if vm.stopped else "not running"
                message = f"the VM did not start: {vm.printable_status}{why} — it is {state}; fix: {fix_hint(vm)}"
                _finish(op, LifecycleStatus.FAILED, message, clock, vm, journal)
        case _Waiting.NOTHING:
            pass
        case _:
            assert_never(op.waiting)


def _advance_stopping(
    api: KubeVirtApi,
    op: _Op,
    vm: VmView,
    vmi: VmiView | None,
    report: LifecycleReport,
    clock: Clock,
    timed_out: bool,
    timeout_seconds: float,
    journal: Journal | None,
) -> None:
    if not (vm.stopped and not _running(vmi)):
        if timed_out:
            message = f"did not stop within {timeout_seconds:.0f}s (status {vm.printable_status})"
            _finish(op, LifecycleStatus.FAILED, message, clock, vm, journal)
        return
    if not op.then_start:
        _finish(op, LifecycleStatus.DONE, "stopped", clock, vm, journal)
        return
    _save(journal, op, RecordStatus.RUNNING, LifecycleStep.STARTING, op.recreate)
    try:
        _start(api, op, vm)
    except ClusterError as exc:
        message = f"stopped, but the start was refused: {exc}; the VM is left STOPPED"
        _finish(op, LifecycleStatus.FAILED, message, clock, vm, journal)
        return
    op.waiting = _Waiting.RUNNING
    report(op.ref, op.waiting.value, "stopped; starting")


def _interrupt(api: KubeVirtApi, ops: list[_Op], clock: Clock, journal: Journal | None) -> None:
    """Ctrl-C: a VM this batch stopped in order to start it again is started now (best effort, journalled)."""
    for op in ops:
        if op.result is not None or not op.then_start:
            continue
        try:
            vm = api.get_vm(op.namespace, op.name)
            _start(api, op, vm)
            message = "interrupted: a start was requested (`vm-rebalance resume` verifies it)"
        except ClusterError as exc:
            message = f"interrupted: the VM may be STOPPED and the start failed ({exc}); `vm-rebalance resume` retries"
        _save(journal, op, RecordStatus.RUNNING, LifecycleStep.STARTING, message)
        op.result = LifecycleResult(
            namespace=op.namespace,
            name=op.name,
            action=op.action,
            status=LifecycleStatus.FAILED,
            message=message,
            duration_seconds=clock() - op.started,
        )
