"""The controller process: leader election, kopf while leading, a periodic resync, probes and metrics,
and the graceful shutdown.

Threads: the main thread waits for a signal; ``leader-election`` campaigns for the Lease;
``kopf`` runs `kopf.operator` in an event loop of its own while this replica leads (watches of
RebalancePolicies and RebalancePlans → `Controller.reconcile_*`); ``resync`` reconciles every
object periodically (schedules, windows, resumption); ``execute-PLAN`` carries out a plan; the
probe server answers ``/healthz``, ``/readyz`` and ``/metrics``.

Shutdown (SIGTERM / SIGINT): stop acting on new events, *hold* the running execution (no new
move; running migrations finish) for up to ``shutdown_grace`` seconds, then cancel what is still
in flight the safe way, record it in the plan's status, give the Lease up, exit 0. The next leader
resumes the plan from its status. A lost Lease cancels at once and exits 1 (the Deployment
restarts the pod, which campaigns again), like kube-controller-manager.
"""

import asyncio
import logging
import os
import signal
import socket
import threading
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from vm_rebalance import service
from vm_rebalance.controller.leader import LeaderElector, Timing
from vm_rebalance.controller.metrics import Metrics
from vm_rebalance.controller.reconcile import Controller, Settings
from vm_rebalance.errors import RebalanceError
from vm_rebalance.model.cancel import CancelReason
from vm_rebalance.service.incluster import GROUP, VERSION, InCluster, ObjectRef, connection

log = logging.getLogger(__name__)

SA_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
DEFAULT_NAMESPACE = "vm-rebalance"
DEFAULT_LEASE = "vm-rebalance-leader"
DEFAULT_TIMING = Timing()
DEFAULT_EXECUTION = service.ExecutionOptions()


def default_namespace() -> str:
    """Where the Lease lives: $POD_NAMESPACE, the service account's namespace, else vm-rebalance."""
    env = os.environ.get("POD_NAMESPACE")
    if env:
        return env
    try:
        return SA_NAMESPACE_FILE.read_text(encoding="utf-8").strip() or DEFAULT_NAMESPACE
    except OSError:
        return DEFAULT_NAMESPACE


def default_identity() -> str:
    """This replica's name in the Lease: $POD_NAME (or the host name) plus a random suffix."""
    base = os.environ.get("POD_NAME") or socket.gethostname() or "vm-rebalance"
    return f"{base}_{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Options:
    """`vm-rebalance controller`'s options."""

    namespace: str
    lease_name: str = DEFAULT_LEASE
    identity: str
    host: str = "0.0.0.0"
    port: int = 8080
    resync_seconds: float = 15.0
    timing: Timing = DEFAULT_TIMING
    shutdown_grace_seconds: float = 120.0
    execution: service.ExecutionOptions = DEFAULT_EXECUTION


# ---------------------------------------------------------------------------------------- kopf


def build_registry(controller: Controller, target: service.Target) -> Any:
    """kopf's handlers for this controller (a registry of its own, not kopf's global one)."""
    import kopf

    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> Any:
        c = connection(target)
        return kopf.ConnectionInfo(
            server=c.server,
            ca_path=c.ca_path,
            insecure=c.insecure,
            scheme=c.scheme,
            token=c.token,
            certificate_path=c.certificate_path,
            private_key_path=c.private_key_path,
            default_namespace=c.default_namespace,
        )

    @kopf.on.startup(registry=registry)
    def configure(settings: Any, **_: Any) -> None:
        settings.posting.enabled = False  # our own Events tell the story, not kopf's handler logs
        settings.scanning.disabled = True  # no CRD / namespace scanning: fewer permissions
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 330
        settings.execution.max_workers = 4

    @kopf.on.event(GROUP, VERSION, "rebalancepolicies", registry=registry)
    def policy_event(body: Any, type: str | None, **_: Any) -> None:
        if type != "DELETED":
            _guarded(controller.reconcile_policy, dict(body))

    @kopf.on.event(GROUP, VERSION, "rebalanceplans", registry=registry)
    def plan_event(body: Any, type: str | None, **_: Any) -> None:
        if type != "DELETED":
            _guarded(controller.reconcile_plan, dict(body))

    return registry


def _guarded(reconcile: Any, body: dict[str, Any]) -> None:
    try:
        reconcile(body)
    except RebalanceError as exc:  # the resync retries; kopf's event handlers are not retried
        log.warning("%s: %s", (body.get("metadata") or {}).get("name"), exc)


class KopfRunner:
    """kopf in a thread with its own event loop, started when this replica leads."""

    def __init__(self, registry: Any) -> None:
        self.registry = registry
        self.stop_flag = threading.Event()
        self.ready = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        """Run `kopf.operator` (cluster-wide, no peering: leader election is ours)."""
        import kopf

        def body() -> None:
            try:
                asyncio.run(
                    kopf.operator(
                        registry=self.registry,
                        clusterwide=True,
                        standalone=True,
                        stop_flag=self.stop_flag,
                        ready_flag=self.ready,
                    )
                )
            except Exception:
                log.exception("kopf stopped with an error")

        self.thread = threading.Thread(target=body, name="kopf", daemon=True)
        self.thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        """Ask kopf to stop and wait for it."""
        self.stop_flag.set()
        if self.thread is not None:
            self.thread.join(timeout)


# ---------------------------------------------------------------------------------------- probes


class Probes:
    """What /healthz and /readyz answer."""

    def __init__(self, elector: LeaderElector, timing: Timing) -> None:
        self.elector = elector
        self.timing = timing

    def healthy(self) -> tuple[bool, str]:
        """Alive: the election loop runs (a wedged process fails this and is restarted)."""
        alive = self.elector.alive
        return alive, "ok" if alive else "the leader-election loop is not running"

    def ready(self) -> tuple[bool, str]:
        """Ready: the API answered within the lease duration; says whether this replica leads."""
        last = self.elector.last_contact
        if last is None or self.elector.clock() - last > self.timing.lease_duration:
            return False, "the API server has not answered recently"
        return True, "leader" if self.elector.leading else "standby"


def serve_http(host: str, port: int, metrics: Metrics, probes: Probes) -> ThreadingHTTPServer:
    """Start the probe and metrics server in a daemon thread."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, metrics.exposition(), metrics.content_type)
            elif path in ("/healthz", "/livez"):
                ok, text = probes.healthy()
                self._send(200 if ok else 503, text.encode() + b"\n")
            elif path == "/readyz":
                ok, text = probes.ready()
                self._send(200 if ok else 503, text.encode() + b"\n")
            else:
                self._send(404, b"not found: /metrics, /healthz, /readyz\n")

        def _send(self, code: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("http: " + format, *args)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    return server


# ---------------------------------------------------------------------------------------- the process


class _Process:
    """The controller process's moving parts between the threads: leadership callbacks, the resync loop,
    signal handling and the shutdown of a running execution."""

    def __init__(self, controller: Controller, metrics: Metrics, registry: Any, options: Options) -> None:
        self.controller = controller
        self.metrics = metrics
        self.registry = registry
        self.options = options
        self.kopf_runner: list[KopfRunner] = []
        self.stop = threading.Event()
        self.lost = threading.Event()
        self.kick = threading.Event()
        self.lease_ref = ObjectRef("coordination.k8s.io/v1", "Lease", options.lease_name, options.namespace)

    def started(self) -> None:
        """This replica became the leader: start the kopf handlers and resync now."""
        self.controller.leading.set()
        self.metrics.leader.set(1)
        self.controller.lease_event(self.lease_ref, f"{self.options.identity} leads the vm-rebalance controller")
        runner = KopfRunner(self.registry)
        self.kopf_runner.append(runner)
        runner.start()
        self.kick.set()

    def lost_lease(self) -> None:
        """The lease is lost: cancel the running execution and stop the process."""
        self.controller.leading.clear()
        self.metrics.leader.set(0)
        self.controller.executions.cancel(CancelReason.LEASE_LOST)
        self.lost.set()
        self.stop.set()

    def resync_loop(self) -> None:
        """Resync every ``resync_seconds`` (or when kicked) while this replica acts, until stopped."""
        while not self.stop.is_set():
            if self.controller.acting:
                try:
                    self.controller.resync()
                except Exception as exc:  # keep resyncing; the next round retries
                    log.warning("resync: %s", exc)
            self.kick.wait(self.options.resync_seconds)
            self.kick.clear()

    def on_signal(self, signum: int, _frame: object) -> None:
        """SIGTERM / SIGINT: shut down."""
        log.info("signal %s: shutting down", signum)
        self.stop.set()
        self.kick.set()

    def finish_executions(self) -> None:
        """Stop the handlers; let a running execution finish its safe path (lost lease) or its running
        migrations within the grace period (shutdown), then cancel what is still in flight."""
        controller, options = self.controller, self.options
        controller.draining.set()
        for runner in self.kopf_runner:
            runner.stop()
        if self.lost.is_set():
            controller.executions.wait(60)  # the cancelled execution finishes its safe path first
        elif not controller.executions.wait(0):
            log.info("holding the execution: running migrations finish (up to %.0fs)", options.shutdown_grace_seconds)
            controller.executions.hold(CancelReason.SHUTDOWN)
            if not controller.executions.wait(options.shutdown_grace_seconds):
                log.warning("grace period over: cancelling what is still in flight")
                controller.executions.cancel(CancelReason.SHUTDOWN)
                controller.executions.wait(60)


def run(target: service.Target, options: Options) -> int:
    """Run the controller until SIGTERM / SIGINT (exit 0) or a lost lease (exit 1)."""
    cluster = InCluster.open(target)
    metrics = Metrics()
    controller = Controller(
        target=target,
        cluster=cluster,
        settings=Settings(identity=options.identity, resync_seconds=options.resync_seconds),
        metrics=metrics,
        options=options.execution,
    )
    process = _Process(controller, metrics, build_registry(controller, target), options)
    elector = LeaderElector(
        cluster,
        namespace=options.namespace,
        name=options.lease_name,
        identity=options.identity,
        timing=options.timing,
        started=process.started,
        lost=process.lost_lease,
    )
    server = serve_http(options.host, options.port, metrics, Probes(elector, options.timing))
    previous = {s: signal.signal(s, process.on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    log.info(
        "vm-rebalance controller %s: lease %s/%s, probes and metrics on %s:%d",
        options.identity,
        options.namespace,
        options.lease_name,
        options.host,
        options.port,
    )
    elector.start()
    resync = threading.Thread(target=process.resync_loop, name="resync", daemon=True)
    resync.start()
    try:
        while not process.stop.wait(1.0):
            pass
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        process.finish_executions()
        elector.stop(release=not process.lost.is_set())
        server.shutdown()
        cluster.close()
    return 1 if process.lost.is_set() else 0
