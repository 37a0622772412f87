"""Run the simulated API server: uvicorn in a background thread (tests, demo) or blocking (the CLI).

HTTPS by default with a CA generated at start; the kubeconfig embeds that CA and a random bearer
token for ``admin`` (or for the policy's ``kubeconfigUser``), or a ServiceAccount token
(``kubeconfig(service_account="ns/name")``). Plain HTTP turns authentication off unless a policy is
given (or ``rbac=True``), since clients should not send bearer tokens in clear text.
"""

import base64
import os
import secrets
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import uvicorn
import yaml

from . import tls as tls_mod
from .app import create_app
from .auth import ADMIN_USER, Policy

if TYPE_CHECKING:
    from .cluster import SimCluster

_START_TIMEOUT = 15.0
_CLOSE_GRACE_SECONDS = 0.5


class SimulatorServer:
    """The simulator's API over HTTP(S) on a local port; a context manager."""

    def __init__(
        self,
        cluster: "SimCluster",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: bool = True,
        token: str | None = None,
        policy_file: str | Path | None = None,
        policy: Policy | None = None,
        manage_cluster: bool = True,
        bookmark_interval: float = 30.0,
        rbac: bool = False,
    ) -> None:
        """``rbac=True`` authorizes every request by the cluster's own Roles, ClusterRoles and bindings
        (like ``rbac: cluster`` in a policy file); ``admin`` stays in ``system:masters``.

        Raises:
            ValueError: ``rbac=True`` with a policy that has per-user rules.
        """
        self.cluster = cluster
        self.host = host
        self.port = port
        self.tls = tls
        self.policy = policy if policy is not None else (Policy.load(policy_file) if policy_file else None)
        if rbac:
            if self.policy is None:
                self.policy = Policy()
            if any(self.policy.rules.values()):
                raise ValueError("rbac=True takes permissions from the cluster's RBAC objects, not from policy rules")
            self.policy.rbac = True
        self.manage_cluster = manage_cluster
        self.bookmark_interval = bookmark_interval
        users = [ADMIN_USER] + (self.policy.users() if self.policy else [])
        fixed = dict(self.policy.tokens) if self.policy else {}
        if token:
            fixed[ADMIN_USER] = token
        self._user_tokens: dict[str, str] = {u: fixed.get(u) or secrets.token_urlsafe(32) for u in dict.fromkeys(users)}
        self.auth_enabled = tls or self.policy is not None
        self._tls: tls_mod.TlsMaterial | None = None
        self._server: uvicorn.Server | None = None
        self._api: Any = None  # the app's KubeApi: closed first on stop
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self.url = ""

    # -- lifecycle ---------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the cluster's controllers and the HTTP server; returns once it accepts connections.

        Raises:
            RuntimeError: the server did not come up.
        """
        if self._server is not None:
            return
        if self.tls:
            self._tls = tls_mod.generate()
        tokens = {t: u for u, t in self._user_tokens.items()} if self.auth_enabled else None
        app = create_app(self.cluster, tokens=tokens, policy=self.policy, bookmark_interval=self.bookmark_interval)
        self._api = app.state.api
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(128)
        sock.set_inheritable(True)
        self._socket = sock
        self.port = sock.getsockname()[1]
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"{'https' if self.tls else 'http'}://{host}:{self.port}"
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            ws="none",
            timeout_graceful_shutdown=1,
            ssl_certfile=str(self._tls.cert_file) if self._tls else None,
            ssl_keyfile=str(self._tls.key_file) if self._tls else None,
        )
        server = uvicorn.Server(config)
        self._server = server
        if self.manage_cluster:
            self.cluster.start()
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="sim-apiserver", daemon=True)
        self._thread = thread
        thread.start()
        deadline = time.monotonic() + _START_TIMEOUT
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the simulator API server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        """Stop the HTTP server and the cluster's controllers; idempotent."""
        server, thread = self._server, self._thread
        if self._api is not None:
            self._api.close()  # open watches and hung requests end now, before uvicorn waits for them
        if server is not None:
            server.should_exit = True
            # Responses end at once; what may remain are idle keep-alive connections whose TLS
            # close waits for the client. Give them a moment, then stop without waiting for them
            # (uvicorn would log "graceful shutdown exceeded" and cancel tasks).
            deadline = time.monotonic() + _CLOSE_GRACE_SECONDS
            while thread is not None and thread.is_alive() and time.monotonic() < deadline:
                if not server.server_state.connections and not server.server_state.tasks:
                    break
                time.sleep(0.02)
            server.force_exit = True
        if thread is not None:
            thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        if self.manage_cluster and server is not None:
            self.cluster.stop()
        if self._tls is not None:
            self._tls.cleanup()
        self._server = None
        self._thread = None
        self._api = None

    def __enter__(self) -> "SimulatorServer":
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- credentials -------------------------------------------------------------------------------------

    @property
    def ca_pem(self) -> bytes | None:
        """The generated CA certificate (PEM), or None over plain HTTP."""
        return self._tls.ca_pem if self._tls else None

    def token_for(self, user: str) -> str:
        """The bearer token of a known user (admin, or a user of the policy).

        Raises:
            KeyError: unknown user.
        """
        return self._user_tokens[user]

    def service_account_token(self, namespace: str, name: str, expiration_seconds: int = 3600) -> str:
        """A token for an existing ServiceAccount, as ``kubectl create token`` would get from the TokenRequest
        API; valid while the account exists (same uid) and for ``expiration_seconds`` of wall time.

        Raises:
            RuntimeError: the server is not started. LookupError: no such ServiceAccount.
        """
        if self._api is None:
            raise RuntimeError("start the server before asking for a ServiceAccount token")
        token: str = self._api.issue_service_account_token(namespace, name, expiration_seconds)
        return token

    def kubeconfig(
        self, user: str | None = None, *, service_account: str | None = None, expiration_seconds: int = 3600
    ) -> dict[str, Any]:
        """A kubeconfig for this server (context ``simulator``) authenticating as ``user``, or as the
        ServiceAccount ``service_account`` (``"namespace/name"``, which must exist) with a fresh token.

        Raises:
            RuntimeError: the server is not started. LookupError: no such ServiceAccount.
            ValueError: ``service_account`` is not ``namespace/name``.
        """
        if not self.url:
            raise RuntimeError("start the server before asking for its kubeconfig")
        cluster: dict[str, Any] = {"server": self.url}
        if self._tls is not None:
            cluster["certificate-authority-data"] = base64.b64encode(self._tls.ca_pem).decode()
        user_entry: dict[str, Any] = {}
        namespace = "default"
        if service_account is not None:
            namespace, sep, account = service_account.partition("/")
            if not sep or not namespace or not account or "/" in account:
                raise ValueError("service_account must be 'namespace/name'")
            user = f"system:serviceaccount:{namespace}:{account}"
            user_entry["token"] = self.service_account_token(namespace, account, expiration_seconds)
        else:
            user = user or (self.policy.kubeconfig_user if self.policy else ADMIN_USER)
            if self.auth_enabled:
                user_entry["token"] = self.token_for(user)
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "simulator", "cluster": cluster}],
            "users": [{"name": user, "user": user_entry}],
            "contexts": [
                {
                    "name": "simulator",
                    "context": {"cluster": "simulator", "user": user, "namespace": namespace},
                }
            ],
            "current-context": "simulator",
            "preferences": {},
        }

    def write_kubeconfig(
        self, path: str | Path, user: str | None = None, *, service_account: str | None = None
    ) -> None:
        """Write :meth:`kubeconfig` to ``path`` with mode 0600."""
        data = yaml.safe_dump(self.kubeconfig(user, service_account=service_account), sort_keys=False).encode()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(path, 0o600)


def serve(
    scenario: str,
    *,
    port: int,
    kubeconfig_out: str | None,
    time_scale: float,
    tls: bool = True,
    policy_file: str | None = None,
    faults_file: str | None = None,
    host: str = "127.0.0.1",
    seed: int = 0,
) -> None:
    """Run a simulated cluster until Ctrl-C; prints the URL and the kubeconfig path it wrote."""
    from .cluster import SimCluster

    cluster = SimCluster.from_scenario(scenario, time_scale=time_scale, seed=seed)
    if faults_file:
        from .faults import load_faults

        cluster.faults = load_faults(faults_file)
    server = SimulatorServer(cluster, host=host, port=port, tls=tls, policy_file=policy_file)
    stopping = threading.Event()

    def on_sigterm(signum: int, frame: object) -> None:
        stopping.set()  # SIGTERM stops as Ctrl-C does: watches end, the server and controllers stop

    path = Path(kubeconfig_out or "simulator.kubeconfig").resolve()
    if not path.parent.is_dir():
        raise ValueError("the folder of the kubeconfig to write does not exist")
    previous = signal.signal(signal.SIGTERM, on_sigterm)
    server.start()
    try:
        server.write_kubeconfig(path)
        print(f"Simulator API server listening on {server.url}", flush=True)
        print(f"Kubeconfig written to {path}", flush=True)
        print(f"  export KUBECONFIG={path}", flush=True)
        print("Press Ctrl-C to stop.", file=sys.stderr, flush=True)
        while server._thread is not None and server._thread.is_alive() and not stopping.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        signal.signal(signal.SIGTERM, previous)
        print("Simulator stopped.", file=sys.stderr, flush=True)
