"""The single-writer lock: a coordination.k8s.io Lease in the cluster, held and renewed by the executing process.

Two vm-rebalance processes changing one cluster at once could exceed the migration limits
together, or act on the same VM twice (fault matrix row 7). Every command that executes
(apply, move, drain, lifecycle batches, the MCP server's executions, the controller) first
takes the Lease ``vm-rebalance-writer`` (namespace ``kube-system`` unless
``$VM_REBALANCE_LOCK_NAMESPACE`` says otherwise) and renews it while it works; a second one
waits, or stops with a message naming the holder (what it runs, on which host, since when).

Acquisition follows client-go's leader election: create the Lease, or take it over with an
update guarded by its resourceVersion when it is free (released) or expired (not renewed
within ``leaseDurationSeconds``); a 409 means someone else was faster. A holder that crashed
(kill -9) is recognised at once when it ran on this host and its process is gone; otherwise
its lease expires. When renewing fails for longer than the lease duration, or someone else took
the lease, ``on_lost`` is called (the executor's cancel token: stop the safe way).
"""

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from vm_rebalance.errors import ClusterError, InfeasiblePlanError, ResourceNotFoundError
from vm_rebalance.kube import resources as r
from vm_rebalance.kube.errors import ApiRejectedError
from vm_rebalance.kube.resources import ApiResource

log = logging.getLogger(__name__)

LEASE_NAME = "vm-rebalance-writer"
DEFAULT_NAMESPACE = "kube-system"
DEFAULT_DURATION_SECONDS = 30
CLOCK_SKEW_SECONDS = 5.0
"""Allowance for clocks that differ between the holder's machine and ours."""
HOLDER_WHAT = "vm-rebalance.io/holder-command"
HOLDER_HOST = "vm-rebalance.io/holder-host"
HOLDER_PID = "vm-rebalance.io/holder-pid"

Obj = dict[str, Any]

_HELD_HERE: set[str] = set()
"""Identities of the locks this process holds now: a lease naming this process but none of these is a
leftover of an earlier execution of this process that could not release it (e.g. during an outage)."""


class LeaseClient(Protocol):
    """The raw requests the lock sends (`KubeClient` is one)."""

    def get(self, resource: ApiResource, name: str, *, namespace: str | None = None) -> dict[str, Any]: ...

    def create(
        self, resource: ApiResource, body: dict[str, Any], *, namespace: str | None = None
    ) -> dict[str, Any]: ...

    def replace(
        self, resource: ApiResource, body: dict[str, Any], *, namespace: str | None = None
    ) -> dict[str, Any]: ...


class WriterLockHeldError(InfeasiblePlanError):
    """Another vm-rebalance execution holds the cluster's single-writer lock (exit code 4: refused)."""


def lock_namespace() -> str:
    """Where the Lease lives."""
    return os.environ.get("VM_REBALANCE_LOCK_NAMESPACE") or DEFAULT_NAMESPACE


def _micro_time(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True, slots=True, kw_only=True)
class Holder:
    """Who holds (or wants) the lock."""

    identity: str
    what: str
    host: str
    pid: int
    renewed_at: float | None = None
    acquired_at: float | None = None
    duration_seconds: int = DEFAULT_DURATION_SECONDS

    def describe(self, now: float) -> str:
        """``apply plan 3f9c… on host-a (pid 4242), running since 10:42:05 UTC, renewed 3 s ago``."""
        since = (
            datetime.fromtimestamp(self.acquired_at, UTC).strftime("%H:%M:%S UTC")
            if self.acquired_at is not None
            else "an unknown time"
        )
        renewed = f", renewed {max(0.0, now - self.renewed_at):.0f} s ago" if self.renewed_at is not None else ""
        what = self.what or "a vm-rebalance execution"
        return f"{what} on {self.host or 'an unknown host'} (pid {self.pid}), running since {since}{renewed}"


def holder_of(lease: Obj) -> Holder | None:
    """The current holder of a Lease object (None when it is free)."""
    spec = lease.get("spec") or {}
    identity = spec.get("holderIdentity")
    if not identity:
        return None
    ann = (lease.get("metadata") or {}).get("annotations") or {}
    try:
        pid = int(ann.get(HOLDER_PID) or 0)
    except ValueError:
        pid = 0
    return Holder(
        identity=str(identity),
        what=str(ann.get(HOLDER_WHAT) or ""),
        host=str(ann.get(HOLDER_HOST) or ""),
        pid=pid,
        renewed_at=_parse_time(spec.get("renewTime")) or _parse_time(spec.get("acquireTime")),
        acquired_at=_parse_time(spec.get("acquireTime")),
        duration_seconds=int(spec.get("leaseDurationSeconds") or DEFAULT_DURATION_SECONDS),
    )


class WriterLock:
    """The cluster's single-writer Lease for one execution: `acquire`, keep renewing, `release`."""

    def __init__(
        self,
        client: LeaseClient,
        what: str,
        *,
        namespace: str | None = None,
        name: str = LEASE_NAME,
        duration_seconds: int = DEFAULT_DURATION_SECONDS,
        clock: Callable[[], float] = time.time,
        host: str | None = None,
        pid: int | None = None,
    ) -> None:
        self.client = client
        self.namespace = namespace or lock_namespace()
        self.name = name
        self.duration = duration_seconds
        self.clock = clock
        self.me = Holder(
            identity=f"vm-rebalance-{uuid.uuid4().hex[:12]}",
            what=what,
            host=host or socket.gethostname(),
            pid=os.getpid() if pid is None else pid,
            duration_seconds=duration_seconds,
        )
        self.held = False
        self.lost = False
        self._lease: Obj | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._on_lost: Callable[[], None] | None = None
        self._lock = threading.Lock()

    # ---------------------------------------------------------------------------------- acquire

    def acquire(self, *, wait_seconds: float = 0.0, poll_seconds: float = 1.0) -> None:
        """Take the lock, waiting up to ``wait_seconds`` for its holder to finish.

        Raises:
            WriterLockHeldError: someone else holds it (after waiting).
            ClusterError: the Lease cannot be read or written (e.g. forbidden).
        """
        deadline = self.clock() + max(0.0, wait_seconds)
        observed: tuple[str, str] | None = None
        observed_at = self.clock()
        while True:
            holder = self._try_acquire()
            if holder is None:
                return
            # client-go's rule: a holder whose lease record does not change for its duration has expired,
            # measured on our own clock (immune to clock skew between machines).
            record = (holder.identity, str((self._lease or {}).get("metadata", {}).get("resourceVersion")))
            if record != observed:
                observed, observed_at = record, self.clock()
            elif self.clock() - observed_at > holder.duration_seconds + CLOCK_SKEW_SECONDS:
                if self._take_over():
                    return
                continue
            if self.clock() >= deadline:
                raise WriterLockHeldError(
                    f"another vm-rebalance execution is changing this cluster: {holder.describe(self.clock())}",
                    hint=f"wait for it to finish (`vm-rebalance status`), or run again with --wait-lock SECONDS; "
                    f"the lock is the Lease {self.namespace}/{self.name}",
                )
            time.sleep(min(poll_seconds, max(0.05, deadline - self.clock())))

    def _try_acquire(self) -> Holder | None:
        """One attempt; None when the lock is ours now, else its holder."""
        for _ in range(3):
            holder = self._attempt()
            if holder is not self.me:
                return holder
        return holder_of(self._lease or {}) or self.me

    def _attempt(self) -> Holder | None:
        """None: ours now; `self.me`: lost a race, try again; another Holder: it holds the lock."""
        try:
            lease = self.client.get(r.LEASES, self.name, namespace=self.namespace)
        except ResourceNotFoundError:
            try:
                self._lease = self.client.create(r.LEASES, self._body(None), namespace=self.namespace)
            except ApiRejectedError as exc:  # AlreadyExists: another process created it first
                log.debug("lease created concurrently: %s", exc)
                return self.me
            self._mark_held()
            return None
        self._lease = lease
        holder = holder_of(lease)
        if holder is None or holder.identity == self.me.identity or self._expired(holder):
            return None if self._take_over() else self.me
        return holder

    def _expired(self, holder: Holder) -> bool:
        now = self.clock()
        if holder.host == self.me.host and holder.pid and holder.pid != self.me.pid and not _alive(holder.pid):
            return True  # it ran on this machine and its process is gone (killed)
        if holder.host == self.me.host and holder.pid == self.me.pid and holder.identity not in _HELD_HERE:
            return True  # this very process, from an execution that ended without releasing it
        if holder.renewed_at is None:
            return True
        return now > holder.renewed_at + holder.duration_seconds + CLOCK_SKEW_SECONDS

    def _take_over(self) -> bool:
        """Update the lease to us, guarded by the resourceVersion read; False when someone else won."""
        assert self._lease is not None
        try:
            self._lease = self.client.replace(r.LEASES, self._body(self._lease), namespace=self.namespace)
        except ApiRejectedError as exc:
            log.debug("lease taken concurrently: %s", exc)
            self._lease = self.client.get(r.LEASES, self.name, namespace=self.namespace)
            return False
        self._mark_held()
        return True

    def _body(self, current: Obj | None) -> Obj:
        now = _micro_time(self.clock())
        meta: Obj = {
            "name": self.name,
            "namespace": self.namespace,
            "annotations": {HOLDER_WHAT: self.me.what[:200], HOLDER_HOST: self.me.host, HOLDER_PID: str(self.me.pid)},
            "labels": {"app.kubernetes.io/name": "vm-rebalance"},
        }
        spec: Obj = {
            "holderIdentity": self.me.identity,
            "leaseDurationSeconds": self.duration,
            "acquireTime": now,
            "renewTime": now,
            "leaseTransitions": 0,
        }
        if current is not None:
            old_meta = current.get("metadata") or {}
            meta["resourceVersion"] = old_meta.get("resourceVersion")
            old_spec = current.get("spec") or {}
            if old_spec.get("holderIdentity") == self.me.identity:
                spec["acquireTime"] = old_spec.get("acquireTime") or now
                spec["leaseTransitions"] = old_spec.get("leaseTransitions") or 0
            else:
                spec["leaseTransitions"] = int(old_spec.get("leaseTransitions") or 0) + 1
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta, "spec": spec}

    def _mark_held(self) -> None:
        self.held = True
        self.lost = False
        _HELD_HERE.add(self.me.identity)

    # ------------------------------------------------------------------------------------ renew

    def renew(self) -> bool:
        """Renew once; False when the lease is no longer ours (someone took it) or cannot be written."""
        with self._lock:
            if not self.held or self._lease is None:
                return False
            try:
                current = self.client.get(r.LEASES, self.name, namespace=self.namespace)
                holder = holder_of(current)
                if holder is None or holder.identity != self.me.identity:
                    self._lose(f"the lock was taken by {holder.describe(self.clock()) if holder else 'nobody'}")
                    return False
                body = self._body(current)
                body["spec"]["acquireTime"] = (current.get("spec") or {}).get("acquireTime")
                self._lease = self.client.replace(r.LEASES, body, namespace=self.namespace)
                return True
            except ClusterError as exc:
                log.debug("could not renew the lease: %s", exc)
                return False

    def keep_renewing(self, on_lost: Callable[[], None]) -> None:
        """Renew in a daemon thread every third of the lease duration; ``on_lost`` when it is lost."""
        self._on_lost = on_lost
        self._stop.clear()

        def loop() -> None:
            last_ok = self.clock()
            interval = max(0.2, self.duration / 3)
            while not self._stop.wait(interval):
                if self.renew():
                    last_ok = self.clock()
                    continue
                if self.lost or self.clock() - last_ok > self.duration:
                    self._lose("the lock could not be renewed for longer than its duration")
                    return

        self._thread = threading.Thread(target=loop, name="vm-rebalance-lease", daemon=True)
        self._thread.start()

    def _lose(self, why: str) -> None:
        if self.lost:
            return
        log.warning("single-writer lock lost: %s", why)
        self.lost = True
        self.held = False
        _HELD_HERE.discard(self.me.identity)
        if self._on_lost is not None:
            self._on_lost()

    # ---------------------------------------------------------------------------------- release

    def release(self) -> None:
        """Stop renewing and free the lease (best effort: an expired lease frees itself)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        with self._lock:
            _HELD_HERE.discard(self.me.identity)
            if not self.held:
                return
            self.held = False
            try:
                current = self.client.get(r.LEASES, self.name, namespace=self.namespace)
                holder = holder_of(current)
                if holder is None or holder.identity != self.me.identity:
                    return
                current["spec"] = {k: v for k, v in (current.get("spec") or {}).items() if k != "holderIdentity"}
                self.client.replace(r.LEASES, current, namespace=self.namespace)
            except ClusterError as exc:
                log.debug("could not release the lease (it expires by itself): %s", exc)

    @contextlib.contextmanager
    def held_while(self, on_lost: Callable[[], None], *, wait_seconds: float = 0.0) -> Iterator["WriterLock"]:
        """Acquire, keep renewing, and release at the end."""
        self.acquire(wait_seconds=wait_seconds)
        try:
            self.keep_renewing(on_lost)
            yield self
        finally:
            self.release()


def current_holder(client: LeaseClient, *, namespace: str | None = None, name: str = LEASE_NAME) -> Holder | None:
    """Who holds the lock now (None: nobody, or it cannot be read)."""
    try:
        return holder_of(client.get(r.LEASES, name, namespace=namespace or lock_namespace()))
    except ClusterError:
        return None
