"""A tiny fake Kubernetes HTTP API for the live-source tests (until the simulator is used).

Serves list endpoints for the resources vm-rebalance reads, from raw objects (see
rawobjects.py), with ``limit`` / ``continue`` pagination, bearer-token auth and scriptable
403 / 404 / 500 answers. Tests import it with ``from fakeapi import FakeApi, serve``.
"""

import socket
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from vm_rebalance.kube import resources as r

TOKEN = "s3cr3t-bearer-token-abc123"

RESOURCES_BY_KIND = {
    res.kind if res.group != "metrics.k8s.io" else {"nodes": "NodeMetrics", "pods": "PodMetrics"}[res.plural]: res
    for res in (
        r.NODES,
        r.PODS,
        r.PVCS,
        r.DATAVOLUMES,
        r.VMS,
        r.VMIS,
        r.VMIMS,
        r.KUBEVIRTS,
        r.CLUSTER_INSTANCETYPES,
        r.INSTANCETYPES,
        r.NODE_METRICS,
        r.POD_METRICS,
    )
}


def _status(code: int, reason: str, message: str) -> JSONResponse:
    return JSONResponse(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code,
        },
        status_code=code,
    )


@dataclass
class FakeApi:
    """What the fake serves and how it misbehaves; mutate it between tests."""

    items: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    forbidden: set[str] = field(default_factory=set)
    """Paths answered with 403."""
    missing: set[str] = field(default_factory=set)
    """Paths answered with 404 (e.g. metrics.k8s.io when there is no metrics-server)."""
    broken: set[str] = field(default_factory=set)
    """Paths answered with 503."""
    garbage: set[str] = field(default_factory=set)
    """Paths answered with 200 and a body that is not JSON."""
    token: str = TOKEN
    requests: list[tuple[str, dict[str, str], str | None]] = field(default_factory=list)
    """(path, query, Authorization header) of every request."""

    def reset(self) -> None:
        self.items = defaultdict(list)
        self.forbidden.clear()
        self.missing.clear()
        self.broken.clear()
        self.garbage.clear()
        self.requests.clear()
        self.token = TOKEN

    def load(self, objects: Iterable[dict[str, Any]]) -> None:
        """Serve these objects on their collection paths, without kind/apiVersion (as the API lists them)."""
        for obj in objects:
            res = RESOURCES_BY_KIND[obj["kind"]]
            item = {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}
            self.items[res.path()].append(item)

    async def handle(self, request: Request) -> JSONResponse:
        path = request.url.path
        self.requests.append((path, dict(request.query_params), request.headers.get("authorization")))
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return _status(401, "Unauthorized", "Unauthorized")
        if path in self.forbidden:
            plural = path.rsplit("/", 1)[-1]
            return _status(
                403,
                "Forbidden",
                f'{plural} is forbidden: User "alice" cannot list resource "{plural}" at the cluster scope',
            )
        if path in self.garbage:
            return Response(b"{not json", media_type="application/json")  # type: ignore[return-value]
        if path in self.broken:
            return _status(503, "ServiceUnavailable", "the server is currently unable to handle the request")
        if path in self.missing or path not in {res.path() for res in RESOURCES_BY_KIND.values()}:
            return _status(404, "NotFound", "the server could not find the requested resource")
        items = self.items.get(path, [])
        limit = int(request.query_params.get("limit") or 0) or len(items) or 1
        start = int(request.query_params.get("continue") or 0)
        page = items[start : start + limit]
        nxt = start + limit
        metadata: dict[str, Any] = {"resourceVersion": "1000"}
        if nxt < len(items):
            metadata["continue"] = str(nxt)
        return JSONResponse({"kind": "List", "apiVersion": "v1", "metadata": metadata, "items": page})


def _app(api: FakeApi) -> Starlette:
    return Starlette(routes=[Route("/{path:path}", api.handle, methods=["GET"])])


@contextmanager
def serve(api: FakeApi) -> Iterator[str]:
    """Serve ``api`` on 127.0.0.1 on a free port in a thread; yields the base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted sockets inherit it: without it keep-alive requests wait ~40 ms for delayed ACKs.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(_app(api), log_level="error", lifespan="off", ws="none", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the fake API did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def free_port() -> int:
    """A port nothing listens on (bound then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_kubeconfig(path: Path, server: str, *, token: str = TOKEN, context: str = "fake") -> Path:
    """A kubeconfig with one cluster, one bearer-token user and one context (the current one)."""
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "fake", "cluster": {"server": server}}],
        "users": [{"name": "alice", "user": {"token": token}}],
        "contexts": [{"name": context, "context": {"cluster": "fake", "user": "alice"}}],
        "current-context": context,
    }
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path
