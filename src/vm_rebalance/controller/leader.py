"""Leader election on a coordination.k8s.io Lease, with client-go's rules, so two replicas never both act.

A candidate takes the Lease when nobody holds it or when its holder has not renewed it for
``lease_duration`` seconds *as observed on this replica's own monotonic clock* (client-go's rule:
wall clocks of different machines are never compared). The leader renews every ``retry_period``;
if it cannot renew for ``renew_deadline`` (< ``lease_duration``) it stops acting at once — its
``lost`` callback cancels running executions — before anyone else can take the Lease over.
Every write is guarded by the resourceVersion just read, so two candidates racing for an expired
Lease cannot both win (one gets 409). On a clean shutdown the leader gives the Lease up (holder
emptied) so a standby takes over within one retry period.

This lock decides which replica runs the controller. It is separate from, and does not replace,
the single-writer execution lock other front-ends take (see the README, "Run it in the cluster").
"""

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from vm_rebalance.errors import ClusterError
from vm_rebalance.service.incluster import InCluster, LeaseRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class Timing:
    """client-go's defaults: 15 s lease, 10 s renew deadline, 2 s retry period."""

    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError("need 0 < retry period < renew deadline < lease duration")


class LeaderElector:
    """Campaigns for the Lease in a thread; calls ``started`` / ``lost`` as leadership comes and goes."""

    def __init__(
        self,
        cluster: InCluster,
        *,
        namespace: str,
        name: str,
        identity: str,
        timing: Timing = Timing(),
        started: Callable[[], None],
        lost: Callable[[], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.timing = timing
        self.started = started
        self.lost = lost
        self.clock = clock
        self.leading = False
        self.last_contact: float | None = None
        """When the API last answered (readiness)."""
        self.acquired_at: float | None = None
        self._observed: tuple[str, str] | None = None
        self._observed_at = 0.0
        self._last_renew = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ one attempt

    def try_acquire_or_renew(self) -> bool:
        """One round: read the Lease; renew it, take it if it expired, or note who holds it."""
        now = self.clock()
        try:
            lease = self.cluster.get_lease(self.namespace, self.name)
            self.last_contact = now
            if lease is None:
                self.cluster.create_lease(self.namespace, self.name, self.identity, self._seconds())
                return True
            self._observe(lease, now)
            if lease.holder == self.identity:
                self.cluster.write_lease(
                    self.namespace,
                    self.name,
                    lease,
                    holder=self.identity,
                    duration_seconds=self._seconds(),
                    acquired=False,
                )
                return True
            if lease.holder and now - self._observed_at < self.timing.lease_duration:
                return False  # someone else holds it and renewed it recently (as seen from here)
            self.cluster.write_lease(
                self.namespace, self.name, lease, holder=self.identity, duration_seconds=self._seconds(), acquired=True
            )
            return True
        except ClusterError as exc:
            if exc.status == 409:
                log.debug("lost a race for the lease: %s", exc)
            else:
                log.warning("leader election: %s", exc)
            return False

    def _observe(self, lease: LeaseRecord, now: float) -> None:
        key = (lease.holder, lease.resource_version)
        if key != self._observed:
            self._observed = key
            self._observed_at = now

    def _seconds(self) -> int:
        return max(1, round(self.timing.lease_duration))

    # ------------------------------------------------------------------ the loop

    @property
    def alive(self) -> bool:
        """Whether the election loop runs."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Campaign in a daemon thread."""
        self._thread = threading.Thread(target=self._loop, name="leader-election", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            ok = self.try_acquire_or_renew()
            now = self.clock()
            if ok:
                self._last_renew = now
                if not self.leading:
                    self.leading = True
                    self.acquired_at = now
                    log.info("%s became the leader (lease %s/%s)", self.identity, self.namespace, self.name)
                    self._call(self.started)
            elif self.leading and now - self._last_renew >= self.timing.renew_deadline:
                self.leading = False
                log.warning(
                    "%s lost the lease %s/%s: it could not renew it in time", self.identity, self.namespace, self.name
                )
                self._call(self.lost)
            self._stop.wait(self.timing.retry_period)

    @staticmethod
    def _call(callback: Callable[[], None]) -> None:
        try:
            callback()
        except Exception:  # a bug in a callback must not end the election loop
            log.exception("leader election callback failed")

    def stop(self, *, release: bool = True) -> None:
        """Stop campaigning; give the Lease up when leading (so a standby takes over at once)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timing.retry_period + 5)
        if release and self.leading:
            self.release()
        self.leading = False

    def release(self) -> None:
        """Empty the Lease's holder if this replica holds it (best effort)."""
        try:
            lease = self.cluster.get_lease(self.namespace, self.name)
            if lease is not None and lease.holder == self.identity:
                self.cluster.write_lease(
                    self.namespace, self.name, lease, holder="", duration_seconds=1, acquired=False
                )
                log.info("%s released the lease", self.identity)
        except ClusterError as exc:
            log.warning("could not release the lease: %s", exc)
