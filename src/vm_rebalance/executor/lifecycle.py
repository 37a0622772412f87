"""Start, stop and restart VMs, verified (seed 004): restart = stop → verify Stopped → start → verify Running.

Batches run side by side: every VM's request is issued, then all are followed until each
reaches its state or fails. A VM already in the desired state is reported as such, not
as an error. A restart whose start fails says plainly that the VM is left stopped.
"""

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from vm_rebalance.errors import ClusterError, ResourceNotFoundError
from vm_rebalance.executor.kubevirt import KubeVirtApi, printable_status, vm_run_strategy, vmi_running


class Action(StrEnum):
    """Lifecycle actions."""

    START = "start"
    STOP = "stop"
    RESTART = "restart"


class LifecycleStatus(StrEnum):
    """How a lifecycle operation on one VM ended."""

    DONE = "done"
    ALREADY = "already in desired state"
    FAILED = "failed"
    NOT_FOUND = "not found"


@dataclass(frozen=True, slots=True, kw_only=True)
class LifecycleResult:
    """The result for one VM."""

    namespace: str
    name: str
    action: Action
    status: LifecycleStatus
    message: str = ""
    run_strategy: str | None = None
    printable_status: str | None = None
    duration_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Done or already so."""
        return self.status in (LifecycleStatus.DONE, LifecycleStatus.ALREADY)


LifecycleReport = Callable[[str, str, str], None]
"""(namespace/name, phase, message) progress callback."""


@dataclass(slots=True)
class _Op:
    namespace: str
    name: str
    action: Action
    phase: str  # "stop" (waiting Stopped), "start" (waiting Running), "done"
    started: float
    result: LifecycleResult | None = None


def run_lifecycle(
    api: KubeVirtApi,
    action: Action,
    vms: Sequence[tuple[str, str]],
    *,
    timeout_seconds: float = 600.0,
    poll_interval_seconds: float = 2.0,
    report: LifecycleReport = lambda *_: None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> list[LifecycleResult]:
    """Apply ``action`` to every (namespace, name) VM and verify it; results in input order."""
    ops: list[_Op] = []
    for namespace, name in vms:
        op = _Op(namespace, name, action, "", clock())
        ops.append(op)
        _begin(api, op, report, clock)
    while any(op.result is None for op in ops):
        sleep(poll_interval_seconds)
        for op in ops:
            if op.result is None:
                _advance(api, op, report, clock, timeout_seconds)
    return [op.result for op in ops if op.result is not None]


def _finish(
    op: _Op, status: LifecycleStatus, message: str, clock: Callable[[], float], vm: dict[str, Any] | None = None
) -> None:
    op.result = LifecycleResult(
        namespace=op.namespace,
        name=op.name,
        action=op.action,
        status=status,
        message=message,
        run_strategy=vm_run_strategy(vm) if vm else None,
        printable_status=printable_status(vm) if vm else None,
        duration_seconds=clock() - op.started,
    )


def _begin(api: KubeVirtApi, op: _Op, report: LifecycleReport, clock: Callable[[], float]) -> None:
    ref = f"{op.namespace}/{op.name}"
    try:
        vm = api.get_vm(op.namespace, op.name)
        running = vmi_running(api.get_vmi(op.namespace, op.name))
    except ResourceNotFoundError:
        _finish(op, LifecycleStatus.NOT_FOUND, f"VM '{op.name}' does not exist in namespace '{op.namespace}'", clock)
        return
    except ClusterError as exc:
        _finish(op, LifecycleStatus.FAILED, str(exc), clock)
        return
    try:
        if op.action is Action.START:
            if running:
                _finish(op, LifecycleStatus.ALREADY, "VM is already running", clock, vm)
                return
            api.start_vm(op.namespace, op.name)
            op.phase = "start"
        elif op.action is Action.STOP:
            if not running and printable_status(vm) in ("Stopped", "Unknown"):
                _finish(op, LifecycleStatus.ALREADY, "VM is already stopped", clock, vm)
                return
            api.stop_vm(op.namespace, op.name)
            op.phase = "stop"
        else:
            if not running:
                # Restart of a stopped VM: nothing to stop; start it (and say so).
                api.start_vm(op.namespace, op.name)
                op.phase = "start"
                report(ref, "start", "VM was not running: starting it")
                return
            api.stop_vm(op.namespace, op.name)
            op.phase = "stop"
    except ClusterError as exc:
        text = str(exc)
        if op.action is Action.START and "already running" in text:
            _finish(op, LifecycleStatus.ALREADY, "VM is already running", clock, vm)
        elif op.action is Action.STOP and "not running" in text:
            _finish(op, LifecycleStatus.ALREADY, "VM is already stopped", clock, vm)
        else:
            _finish(op, LifecycleStatus.FAILED, f"{op.action.value} was refused: {text}", clock, vm)
        return
    report(ref, op.phase, "requested")


def _advance(
    api: KubeVirtApi, op: _Op, report: LifecycleReport, clock: Callable[[], float], timeout_seconds: float
) -> None:
    ref = f"{op.namespace}/{op.name}"
    try:
        vm = api.get_vm(op.namespace, op.name)
        vmi = api.get_vmi(op.namespace, op.name)
    except ResourceNotFoundError:
        _finish(op, LifecycleStatus.FAILED, "the VM was deleted meanwhile", clock)
        return
    except ClusterError as exc:
        _finish(op, LifecycleStatus.FAILED, str(exc), clock)
        return
    status = printable_status(vm)
    if op.phase == "stop":
        if status == "Stopped" and not vmi_running(vmi):
            if op.action is Action.RESTART:
                try:
                    api.start_vm(op.namespace, op.name)
                except ClusterError as exc:
                    _finish(
                        op,
                        LifecycleStatus.FAILED,
                        f"stopped, but the start was refused: {exc}; the VM is left STOPPED",
                        clock,
                        vm,
                    )
                    return
                op.phase = "start"
                report(ref, "start", "stopped; starting")
                return
            _finish(op, LifecycleStatus.DONE, "stopped", clock, vm)
            return
        if clock() - op.started > timeout_seconds:
            _finish(
                op, LifecycleStatus.FAILED, f"did not stop within {timeout_seconds:.0f}s (status {status})", clock, vm
            )
        return
    if op.phase == "start":
        if vmi_running(vmi) and status == "Running":
            _finish(op, LifecycleStatus.DONE, "running" if op.action is Action.START else "restarted", clock, vm)
            return
        if (
            status
            in (
                "ErrorUnschedulable",
                "CrashLoopBackOff",
                "ErrImagePull",
                "ImagePullBackOff",
                "ErrorPvcNotFound",
                "DataVolumeError",
            )
            or clock() - op.started > timeout_seconds
        ):
            left = " (the VM is left stopped)" if op.action is Action.RESTART else ""
            _finish(op, LifecycleStatus.FAILED, f"the VM did not start: {status}{left}", clock, vm)
        return
