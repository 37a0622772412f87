"""Start, stop and restart VMs, verified (seed 004): restart = stop → verify Stopped → start → verify Running.

Batches run side by side: every VM's request is issued, then all are followed until each
reaches its state or fails. A VM already in the desired state is reported as such, not
as an error (decided on the refusal's `Rejection` kind, never on its text). A restart whose
start fails says plainly that the VM is left stopped.
"""

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import assert_never

from vm_rebalance.errors import ClusterError, ResourceNotFoundError
from vm_rebalance.kube.errors import ApiRejectedError, Rejection
from vm_rebalance.kube.kubevirt import KubeVirtApi
from vm_rebalance.kube.views import PrintableStatus, VmiView, VmView
from vm_rebalance.model.execution import Action, LifecycleReport, LifecycleResult, LifecycleStatus

__all__ = ["Action", "LifecycleReport", "LifecycleResult", "LifecycleStatus", "run_lifecycle"]

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

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"


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
) -> list[LifecycleResult]:
    """Apply ``action`` to every (namespace, name) VM and verify it; results in input order."""
    ops: list[_Op] = []
    for namespace, name in vms:
        op = _Op(namespace, name, action, _Waiting.NOTHING, clock())
        ops.append(op)
        _begin(api, op, report, clock)
    while any(op.result is None for op in ops):
        sleep(poll_interval_seconds)
        for op in ops:
            if op.result is None:
                _advance(api, op, report, clock, timeout_seconds)
    return [op.result for op in ops if op.result is not None]


def _finish(op: _Op, status: LifecycleStatus, message: str, clock: Clock, vm: VmView | None = None) -> None:
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


def _running(vmi: VmiView | None) -> bool:
    return vmi is not None and vmi.running


def _begin(api: KubeVirtApi, op: _Op, report: LifecycleReport, clock: Clock) -> None:
    try:
        vm = api.get_vm(op.namespace, op.name)
        running = _running(api.get_vmi(op.namespace, op.name))
    except ResourceNotFoundError:
        _finish(op, LifecycleStatus.NOT_FOUND, f"VM '{op.name}' does not exist in namespace '{op.namespace}'", clock)
        return
    except ClusterError as exc:
        _finish(op, LifecycleStatus.FAILED, str(exc), clock)
        return
    try:
        if _request(api, op, vm, running, report, clock):
            return
    except ClusterError as exc:
        _refused(op, exc, vm, clock)
        return
    report(op.ref, op.waiting.value, "requested")


def _request(api: KubeVirtApi, op: _Op, vm: VmView, running: bool, report: LifecycleReport, clock: Clock) -> bool:
    """Send the first request of ``op``; True when the operation is already over."""
    match op.action:
        case Action.START:
            if running:
                _finish(op, LifecycleStatus.ALREADY, "VM is already running", clock, vm)
                return True
            api.start_vm(op.namespace, op.name)
            op.waiting = _Waiting.RUNNING
        case Action.STOP:
            if not running and vm.status in (PrintableStatus.STOPPED, PrintableStatus.UNKNOWN):
                _finish(op, LifecycleStatus.ALREADY, "VM is already stopped", clock, vm)
                return True
            api.stop_vm(op.namespace, op.name)
            op.waiting = _Waiting.STOPPED
        case Action.RESTART:
            if not running:
                # Restart of a stopped VM: nothing to stop; start it (and say so).
                api.start_vm(op.namespace, op.name)
                op.waiting = _Waiting.RUNNING
                report(op.ref, op.waiting.value, "VM was not running: starting it")
                return True
            api.stop_vm(op.namespace, op.name)
            op.waiting = _Waiting.STOPPED
        case _:
            assert_never(op.action)
    return False


def _refused(op: _Op, exc: ClusterError, vm: VmView, clock: Clock) -> None:
    """A refused first request: "already so" when KubeVirt says the VM is in the desired state."""
    kind = exc.kind if isinstance(exc, ApiRejectedError) else None
    if op.action is Action.START and kind is Rejection.ALREADY_RUNNING:
        _finish(op, LifecycleStatus.ALREADY, "VM is already running", clock, vm)
    elif op.action is Action.STOP and kind is Rejection.NOT_RUNNING:
        _finish(op, LifecycleStatus.ALREADY, "VM is already stopped", clock, vm)
    else:
        _finish(op, LifecycleStatus.FAILED, f"{op.action.value} was refused: {exc}", clock, vm)


def _advance(api: KubeVirtApi, op: _Op, report: LifecycleReport, clock: Clock, timeout_seconds: float) -> None:
    try:
        vm = api.get_vm(op.namespace, op.name)
        vmi = api.get_vmi(op.namespace, op.name)
    except ResourceNotFoundError:
        _finish(op, LifecycleStatus.FAILED, "the VM was deleted meanwhile", clock)
        return
    except ClusterError as exc:
        _finish(op, LifecycleStatus.FAILED, str(exc), clock)
        return
    timed_out = clock() - op.started > timeout_seconds
    match op.waiting:
        case _Waiting.STOPPED:
            _advance_stopping(api, op, vm, vmi, report, clock, timed_out, timeout_seconds)
        case _Waiting.RUNNING:
            if _running(vmi) and vm.status is PrintableStatus.RUNNING:
                _finish(op, LifecycleStatus.DONE, "running" if op.action is Action.START else "restarted", clock, vm)
            elif vm.status.cannot_start or timed_out:
                left = " (the VM is left stopped)" if op.action is Action.RESTART else ""
                _finish(op, LifecycleStatus.FAILED, f"the VM did not start: {vm.printable_status}{left}", clock, vm)
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
) -> None:
    if not (vm.stopped and not _running(vmi)):
        if timed_out:
            message = f"did not stop within {timeout_seconds:.0f}s (status {vm.printable_status})"
            _finish(op, LifecycleStatus.FAILED, message, clock, vm)
        return
    if op.action is not Action.RESTART:
        _finish(op, LifecycleStatus.DONE, "stopped", clock, vm)
        return
    try:
        api.start_vm(op.namespace, op.name)
    except ClusterError as exc:
        message = f"stopped, but the start was refused: {exc}; the VM is left STOPPED"
        _finish(op, LifecycleStatus.FAILED, message, clock, vm)
        return
    op.waiting = _Waiting.RUNNING
    report(op.ref, op.waiting.value, "stopped; starting")
