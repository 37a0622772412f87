"""The Kubernetes REST API of the simulator as a Starlette app over a :class:`SimCluster`.

One catch-all route parses the URL the way kube-apiserver's installer lays it out
(``/api/v1/...``, ``/apis/<group>/<version>/...``, ``namespaces/<ns>/<plural>/<name>/<subresource>``),
authenticates, authorises, applies injected faults, then dispatches to the verb handlers. Every
failure is a ``Status`` body (kubevirt-api.md §8). It imports nothing from the rest of vm_rebalance.
"""

import asyncio
import base64
import contextlib
import datetime
import json
import logging
import math
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from . import builtins, crds, crdschema, events, openapi, patching, protowire, rbac, resources, reviews, status, tables
from .auth import ADMIN_USER, SUPERUSER_GROUP, Attributes, Policy, UserInfo, bearer_user
from .resources import ResourceType
from .satokens import DEFAULT_AUDIENCES, TokenIssuer
from .selection import field_equals, parse_field_selector, parse_label_selector
from .status import ApiError
from .store import AlreadyExistsError, ConflictError, GoneError, NotFoundError, WatchEvent, copy_obj

if TYPE_CHECKING:
    from .cluster import SimCluster


def dumps(obj: Any) -> bytes:
    data: bytes = orjson.dumps(obj)
    return data


log = logging.getLogger(__name__)

Obj = dict[str, Any]

JSON = "application/json"
_PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/livez", "/version"})
_CR_PATCH_TYPES = [
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/apply-patch+yaml",
]
_BUILTIN_PATCH_TYPES = [*_CR_PATCH_TYPES, "application/strategic-merge-patch+json"]
_WATCH_TIMEOUT_DEFAULT = 1800.0
_SELF_REVIEWS = frozenset(
    {
        ("authorization.k8s.io", "selfsubjectaccessreviews"),
        ("authorization.k8s.io", "selfsubjectrulesreviews"),
        ("authentication.k8s.io", "selfsubjectreviews"),
    }
)
DEFAULT_TOKEN_SECONDS = 3600
#: kube-apiserver's NamespaceLifecycle refuses to delete these.
_IMMORTAL_NAMESPACES = frozenset({"default", "kube-system", "kube-public"})
_PATCH_RETRIES = 8
_HANG_SECONDS = 3600.0


def _truthy(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true", "t", "yes")


def _json_response(obj: Any, code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(dumps(obj), status_code=code, media_type=JSON, headers=headers)


def _error_response(err: ApiError) -> Response:
    return _json_response(err.to_status(), err.code, err.headers)


def _with_type(obj: Obj, rtype: ResourceType) -> Obj:
    """``obj`` with apiVersion/kind set (a shallow copy when they were missing or different)."""
    if obj.get("apiVersion") == rtype.api_version and obj.get("kind") == rtype.kind:
        return obj
    if rtype.storage == ("", "events") and rtype.group == "events.k8s.io":
        return events.to_events_v1(obj)
    out: Obj = {"apiVersion": rtype.api_version, "kind": rtype.kind}
    out.update(obj)
    out["apiVersion"] = rtype.api_version
    out["kind"] = rtype.kind
    return out


def _encode_continue(rv: int, namespace: str, name: str) -> str:
    raw = json.dumps({"v": 1, "rv": rv, "start": [namespace, name]}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_continue(token: str) -> tuple[str, str]:
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded))
        ns, name = data["start"]
        return str(ns), str(name)
    except (ValueError, KeyError, TypeError):
        raise status.bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)"
        ) from None


def field_manager_from_user_agent(user_agent: str) -> str:
    """kube-apiserver's default manager for non-apply writes: the User-Agent up to the first ``/``."""
    prefix = user_agent.split("/", 1)[0] if user_agent else ""
    return prefix[:128]


class _Ctx:
    """Per-request facts the handlers need (``user`` is the identity's name, ``identity`` all of it)."""

    __slots__ = ("dry_run", "identity", "manager", "params", "request", "user", "warnings")

    def __init__(self, request: Request, identity: UserInfo) -> None:
        self.request = request
        self.identity = identity
        self.user = identity.name
        self.params = request.query_params
        self.dry_run = "All" in self.params.getlist("dryRun")
        self.warnings: list[str] = []
        self.manager = self.params.get("fieldManager") or field_manager_from_user_agent(
            request.headers.get("user-agent", "")
        )


class KubeApi:
    """The request handlers; ``create_app`` wraps one in a Starlette app."""

    def __init__(
        self,
        cluster: "SimCluster",
        *,
        tokens: dict[str, str] | None = None,
        policy: Policy | None = None,
        bookmark_interval: float = 30.0,
    ) -> None:
        self.cluster = cluster
        self.store = cluster.store
        self.tokens = tokens
        self.policy = policy
        self.bookmark_interval = bookmark_interval
        # Shutdown: open watch streams and hung requests end at once when the server stops, so
        # uvicorn's graceful shutdown finds no request left to cancel.
        self._closing = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._watch_queues: set[asyncio.Queue[WatchEvent | None]] = set()
        self.registry: resources.Registry = getattr(cluster, "registry", None) or resources.STATIC
        self._static: dict[str, bytes] = {}
        self._static_generation = -1
        self.token_issuer = TokenIssuer()
        """Signs the ServiceAccount tokens of the TokenRequest API and verifies them on the way in."""
        self.rbac = rbac.RbacAuthorizer(self.store)
        self.builtin_writes = builtins.BuiltinWrites(self.store)
        """Defaults, validation and allocated values of the built-in kinds (Services, Deployments, RBAC…)."""
        """Decides requests from the cluster's RBAC objects when the policy says ``rbac: cluster``."""

    def _discovery(self, path: str) -> bytes | None:
        """The discovery or OpenAPI document at ``path`` (rebuilt when a CRD changes what is served)."""
        registry = self.registry
        if self._static_generation != registry.generation:
            generation = registry.generation
            static: dict[str, bytes] = {
                "/api": dumps(resources.api_versions()),
                "/apis": dumps(registry.api_group_list()),
            }
            for group, versions in registry.group_versions().items():
                for version in versions:
                    doc = registry.api_resource_list(group, version)
                    if doc is None:
                        continue
                    doc_path = f"/api/{version}" if not group else f"/apis/{group}/{version}"
                    static[doc_path] = dumps(doc)
                if group:
                    static[f"/apis/{group}"] = dumps(registry.api_group(group))
            index, docs = openapi.build_documents(registry)
            static["/openapi/v3"] = dumps(index)
            for key, body in docs.items():
                static[f"/openapi/v3/{key}"] = body
            self._static, self._static_generation = static, generation
        return self._static.get(path)

    # -- shutdown ----------------------------------------------------------------------------------------

    def close(self) -> None:
        """End every open watch and hung request; new ones end at once. Thread-safe, idempotent."""
        self._closing.set()
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is already closed: nothing is open
                loop.call_soon_threadsafe(self._end_streams)

    def _end_streams(self) -> None:
        if self._stopping is not None:
            self._stopping.set()
        for queue in self._watch_queues:
            queue.put_nowait(None)

    def _stop_event(self) -> asyncio.Event:
        """The loop's "server is stopping" event (made on first use, in the server's loop)."""
        if self._stopping is None:
            self._stopping = asyncio.Event()
            self._loop = asyncio.get_running_loop()
            if self._closing.is_set():  # close() ran before the loop was known
                self._stopping.set()
        return self._stopping

    # -- entry point -------------------------------------------------------------------------------------

    async def __call__(self, request: Request) -> Response:
        try:
            return await self._handle(request)
        except ApiError as err:
            return _error_response(err)
        except Exception as err:  # a bug must still answer with a Status, as kube-apiserver does
            log.exception("simulator API: unhandled error on %s %s", request.method, request.url.path)
            return _error_response(status.internal_error(f"{type(err).__name__}: {err}"))

    async def _handle(self, request: Request) -> Response:
        path = request.url.path.rstrip("/") or "/"
        if path in ("/healthz", "/readyz", "/livez"):
            return Response(b"ok", media_type="text/plain")
        if path == "/version":
            return _json_response(self._version())
        if path == "/metrics" or path.startswith("/metrics/"):
            # Like node-exporter's and virt-handler's own endpoints: TLS, no authentication.
            if request.method != "GET":
                raise status.method_not_allowed(request.method, "", "metrics")
            return await asyncio.to_thread(self._metrics, request, path)
        user = self._authenticate(request)
        if path.startswith("/api/v1/nodes/") and path.endswith("/proxy/stats/summary"):
            node = path[len("/api/v1/nodes/") : -len("/proxy/stats/summary")]
            if "/" in node or request.method != "GET":
                raise status.not_found_path(path)
            self._authorize(_Ctx(request, user), "get", "", "nodes", "proxy", None, node)
            return await asyncio.to_thread(self._stats_summary, node)
        if request.method == "GET":
            doc = self._discovery(path)
            if doc is not None:
                self._authorize_path(user, "get", request.url.path)
                return Response(doc, media_type=JSON)
        if path == "/openapi/v2" or path.startswith("/openapi/"):
            self._authorize_path(user, request.method.lower(), request.url.path)
            raise status.not_found_path(path)
        parts = [p for p in path.split("/") if p]
        if len(parts) >= 2 and parts[0] == "api":
            group, version, rest = "", parts[1], parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise status.not_found_path(path)
        if not rest:
            raise status.not_found_path(path)
        ctx = _Ctx(request, user)
        if group == resources.SUBRESOURCES_GROUP:
            return await self._vm_subresource(ctx, version, rest)
        return await self._resource_request(ctx, group, version, rest)

    # -- monitoring endpoints ----------------------------------------------------------------------------

    def _metrics(self, request: Request, path: str) -> Response:
        """Prometheus endpoints of the simulated components (module ``exposition``)."""
        from . import exposition
        from .signals import history_view, live_view

        cluster = self.cluster
        params = request.query_params
        parts = [p for p in path.split("/") if p][1:]
        signals = cluster.signals
        if parts[:1] == ["targets"] and len(parts) == 2:
            return self._targets(request, parts[1])
        if parts[:1] == ["history"]:
            try:
                start = float(params.get("start", "-3600"))
                end = float(params.get("end", "0"))
                step = float(params.get("step", "60"))
                view = history_view(signals, start, min(end, math.floor(cluster.clock.now() / 15) * 15.0), step)
            except ValueError as err:
                raise status.bad_request(f"history: {err}") from None
            history_stamps = np.array([cluster.clock.datetime_at(float(t)).timestamp() for t in view.times])
            wanted = {f for f in (params.get("families") or "").split(",") if f} or None
            w = exposition.Writer(openmetrics=True, timestamps=history_stamps, only=wanted)
            everything = list(range(len(view.inv.node_names)))
            exposition.node_exporter(w, view, everything, {"job": "node-exporter"})
            exposition.virt_handler(w, view, everything, {"job": "virt-handler"})
            return Response(w.text(), media_type=exposition.OPENMETRICS_CONTENT_TYPE)
        now = cluster.clock.now()
        view = live_view(signals, now)
        stamps = np.array([cluster.clock.datetime_at(now).timestamp()]) if _truthy(params.get("timestamps")) else None
        w = exposition.Writer(timestamps=stamps)
        names = view.inv.node_names
        if not parts:
            everything = list(range(len(names)))
            index = {n: i for i, n in enumerate(names)}
            exposition.node_exporter(w, view, everything, {"job": "node-exporter"})
            migrations = exposition.active_migrations(cluster, now, index)
            exposition.virt_handler(w, view, everything, {"job": "virt-handler"}, migrations)
            exposition.virt_controller(w, cluster, {"job": "virt-controller", "instance": "virt-controller"})
            return Response(w.text(), media_type=exposition.TEXT_CONTENT_TYPE)
        component = parts[0]
        if component == "virt-controller" and len(parts) == 1:
            exposition.virt_controller(w, cluster)
            return Response(w.text(), media_type=exposition.TEXT_CONTENT_TYPE)
        if component in ("node-exporter", "virt-handler") and len(parts) == 2 and parts[1] in names:
            i = names.index(parts[1])
            if component == "node-exporter":
                exposition.node_exporter(w, view, [i])
            else:
                migrations = exposition.active_migrations(cluster, now, {parts[1]: i})
                exposition.virt_handler(w, view, [i], None, migrations)
            return Response(w.text(), media_type=exposition.TEXT_CONTENT_TYPE)
        raise status.not_found_path(path)

    def _targets(self, request: Request, component: str) -> Response:
        """Prometheus HTTP service discovery: one target per node for node-exporter / virt-handler."""
        address = request.url.netloc
        if component == "virt-controller":
            groups = [
                {
                    "targets": [address],
                    "labels": {"__metrics_path__": "/metrics/virt-controller", "instance": "virt-controller"},
                }
            ]
        elif component in ("node-exporter", "virt-handler"):
            names = self.cluster.signals.inventory().node_names
            groups = [
                {"targets": [address], "labels": {"__metrics_path__": f"/metrics/{component}/{n}", "instance": n}}
                for n in names
            ]
        else:
            raise status.not_found_path(request.url.path)
        return _json_response(groups)

    def _stats_summary(self, node: str) -> Response:
        from .kubelet import stats_summary

        snap = self.cluster.signals.snapshot(self.cluster.clock.now())
        summary = stats_summary(self.cluster, node, snap)
        if summary is None:
            raise status.not_found("", "nodes", node)
        return _json_response(summary)

    def _version(self) -> Obj:
        return {
            "major": "1",
            "minor": "36",
            "emulationMajor": "1",
            "emulationMinor": "36",
            "minCompatibilityMajor": "1",
            "minCompatibilityMinor": "35",
            "gitVersion": "v1.36.0-vmrebalance-sim",
            "gitCommit": "0000000000000000000000000000000000000000",
            "gitTreeState": "clean",
            "buildDate": "2026-01-01T00:00:00Z",
            "goVersion": "go1.24.0",
            "compiler": "gc",
            "platform": "linux/amd64",
        }

    # -- authentication and authorization ----------------------------------------------------------------

    def user_info(self, name: str) -> UserInfo:
        """The identity of a static-token user (the admin is in ``system:masters``)."""
        if self.policy is not None:
            return self.policy.user_info(name)
        return Policy().user_info(name)

    def _authenticate(self, request: Request) -> UserInfo:
        """The request's identity: a static token's user or a ServiceAccount token's account, then
        impersonation (``Impersonate-User`` / ``-Group`` / ``-Uid`` headers) if asked for and allowed."""
        if self.tokens is None:
            identity = self.user_info(ADMIN_USER)
        else:
            header = request.headers.get("authorization")
            name = bearer_user(header, self.tokens)
            if name is not None:
                identity = self.user_info(name)
            else:
                found = self._service_account_identity(header)
                if found is None:
                    raise status.unauthorized()
                identity = found
        return self._impersonate(request, identity)

    def _service_account_identity(self, header: str | None) -> UserInfo | None:
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        claims = self.token_issuer.verify(token.strip())
        if claims is None or not set(claims.audiences) & set(DEFAULT_AUDIENCES):
            return None
        account = self.store.try_get(("", "serviceaccounts"), claims.namespace, claims.name, copy=False)
        if account is None or account["metadata"].get("uid") != claims.uid:
            return None  # the account was deleted (or deleted and made again) since the token was issued
        if account["metadata"].get("deletionTimestamp"):
            return None
        return UserInfo(
            rbac.service_account_username(claims.namespace, claims.name),
            rbac.service_account_groups(claims.namespace),
            uid=claims.uid,
        )

    def _impersonate(self, request: Request, identity: UserInfo) -> UserInfo:
        headers = request.headers
        user = headers.get("impersonate-user")
        groups = headers.getlist("impersonate-group")
        uid = headers.get("impersonate-uid")
        extra_keys = [k for k in headers if k.lower().startswith("impersonate-extra-")]
        if user is None:
            if groups or uid or extra_keys:
                raise status.bad_request("requested impersonation of groups, uid or extra without impersonating a user")
            return identity
        checks: list[Attributes] = []
        account = rbac.split_service_account(user)
        if account is not None:
            checks.append(
                Attributes(identity, "impersonate", resource="serviceaccounts", namespace=account[0], name=account[1])
            )
        else:
            checks.append(Attributes(identity, "impersonate", resource="users", name=user))
        checks += [Attributes(identity, "impersonate", resource="groups", name=g) for g in groups]
        if uid:
            checks.append(Attributes(identity, "impersonate", group="authentication.k8s.io", resource="uids", name=uid))
        extra: list[tuple[str, tuple[str, ...]]] = []
        for key in extra_keys:
            extra_name = key[len("impersonate-extra-") :].lower()
            values = tuple(headers.getlist(key))
            extra.append((extra_name, values))
            checks += [
                Attributes(
                    identity,
                    "impersonate",
                    group="authentication.k8s.io",
                    resource="userextras",
                    subresource=extra_name,
                    name=v,
                )
                for v in values
            ]
        for attrs in checks:
            allowed, reason = self._decide(attrs)
            if not allowed:
                raise status.forbidden_attributes(attrs, reason)
        if groups:
            new_groups = list(groups)
        elif account is not None:
            new_groups = list(rbac.service_account_groups(account[0]))
        else:
            new_groups = []
        if user != "system:anonymous" and not {rbac.ALL_AUTHENTICATED, rbac.ALL_UNAUTHENTICATED} & set(new_groups):
            new_groups.append(rbac.ALL_AUTHENTICATED)
        return UserInfo(user, tuple(new_groups), uid=uid or "", extra=tuple(extra))

    def _decide(self, attrs: Attributes) -> tuple[bool, str]:
        """(allowed, reason) for a request's attributes in the configured mode."""
        policy = self.policy
        if policy is None:
            return True, ""
        if policy.rbac:
            if SUPERUSER_GROUP in attrs.user.groups:
                return True, ""
            decision = self.rbac.authorize(attrs)
            return decision.allowed, decision.reason
        if not attrs.resource_request:
            return True, ""  # the rules mode does not restrict discovery
        allowed = policy.allows(
            attrs.user.name, attrs.verb, attrs.group, attrs.resource, attrs.subresource, attrs.namespace or None
        )
        return allowed, ""

    def _authorize_path(self, identity: UserInfo, verb: str, path: str) -> None:
        attrs = Attributes(identity, verb, resource_request=False, path=path)
        allowed, reason = self._decide(attrs)
        if not allowed:
            raise status.forbidden_attributes(attrs, reason)

    def _authorize(
        self,
        ctx: _Ctx,
        verb: str,
        group: str,
        resource: str,
        subresource: str,
        ns: str | None,
        name: str | None,
    ) -> None:
        if self.policy is None:
            return
        if group == "" and resource == "namespaces" and name:
            ns = name  # kube-apiserver's RequestInfo: a namespace's own namespace is itself
        if not name and verb in ("list", "watch"):
            name = field_equals(ctx.params.get("fieldSelector"), "metadata.name")
        attrs = Attributes(
            ctx.identity,
            verb,
            group=group,
            resource=resource,
            subresource=subresource,
            namespace=ns or "",
            name=name or "",
        )
        allowed, reason = self._decide(attrs)
        if not allowed:
            raise status.forbidden_attributes(attrs, reason)

    async def _apply_fault(
        self, verb: str, key: tuple[str, str], ns: str | None, name: str | None, sub: str = ""
    ) -> Any:
        """Apply an injected fault before the request; returns an ``afterCommit`` fault for after it."""
        fault = self.cluster.api_fault(verb, key, ns, name, sub)
        if fault is None:
            return None
        if fault.after_commit:
            return fault
        await self._fault_effect(fault)
        return None

    async def _fault_effect(self, fault: Any) -> None:
        """Hang, wait, and/or raise the fault's Status."""
        if fault.hang:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_event().wait(), _HANG_SECONDS)
            if self._closing.is_set():
                raise status.service_unavailable("the simulator is shutting down")
        if fault.latency_seconds:
            await asyncio.sleep(fault.latency_seconds)
        if fault.status_code is not None:
            headers = None
            details: Obj = {}
            if fault.status_code == 429 and fault.retry_after is not None:
                headers = {"Retry-After": str(fault.retry_after)}
                details = {"retryAfterSeconds": fault.retry_after}
            raise ApiError(fault.status_code, fault.reason, fault.message, details or None, headers)

    # -- URL dispatch ------------------------------------------------------------------------------------

    async def _resource_request(self, ctx: _Ctx, group: str, version: str, rest: list[str]) -> Response:
        ns: str | None = None
        if (
            rest[0] == "namespaces"
            and len(rest) >= 3
            and not (group == "" and len(rest) == 3 and rest[2] in ("status", "finalize"))
        ):
            ns, rest = rest[1], rest[2:]
        if len(rest) > 3:
            raise status.not_found_path(ctx.request.url.path)
        plural = rest[0]
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else ""
        rtype = self.registry.lookup(group, version, plural)
        if rtype is None or (ns is not None and not rtype.namespaced):
            raise status.not_found_path(ctx.request.url.path)
        if name is not None and rtype.namespaced and ns is None:
            raise status.not_found_path(ctx.request.url.path)
        if sub and not ((sub == "status" and rtype.status_subresource) or sub in rtype.subresources):
            raise status.not_found_path(ctx.request.url.path)
        method = ctx.request.method
        if rtype.key in resources.REVIEWS:
            if method != "POST" or name is not None:
                raise status.method_not_allowed(method, group, plural)
            if not (self.policy is not None and not self.policy.rbac and rtype.key in _SELF_REVIEWS):
                # the rules mode lets everyone review themselves (kube-apiserver's system:basic-user)
                self._authorize(ctx, "create", group, plural, "", None, None)
            return await self._review(ctx, rtype)
        if sub == "token":
            if method != "POST":
                raise status.method_not_allowed(method, group, "serviceaccounts/token")
            self._authorize(ctx, "create", group, plural, sub, ns, name)
            return await self._token_request(ctx, ns or "", name or "")
        if sub == "eviction":
            if method != "POST":
                raise status.method_not_allowed(method, group, "pods/eviction")
            self._authorize(ctx, "create", group, plural, sub, ns, name)
            return await self._evict(ctx, rtype, ns or "", name or "")
        verb = self._verb(method, name, ctx)
        allowed = ("get", "patch", "update") if sub == "status" else rtype.verbs
        if verb not in allowed:
            raise status.method_not_allowed(self._verb_display(verb), group, plural)
        self._authorize(ctx, verb, group, plural, sub, ns, name)
        fault_verb = "delete" if verb == "deletecollection" else verb
        after = await self._apply_fault(fault_verb, rtype.key, ns, name, sub)
        response = await self._dispatch(ctx, verb, rtype, ns, name, sub)
        if after is not None:
            await self._fault_effect(after)  # the write happened; the client never learns it
        return response

    async def _dispatch(
        self, ctx: _Ctx, verb: str, rtype: ResourceType, ns: str | None, name: str | None, sub: str
    ) -> Response:
        if verb == "get":
            return self._get(ctx, rtype, ns, name or "")
        if verb == "list":
            return self._list(ctx, rtype, ns)
        if verb == "watch":
            return self._watch(ctx, rtype, ns)
        if verb == "create":
            return await self._create(ctx, rtype, ns)
        if verb == "update":
            return await self._update(ctx, rtype, ns, name or "", sub)
        if verb == "patch":
            return await self._patch(ctx, rtype, ns, name or "", sub)
        if verb == "delete":
            return await self._delete(ctx, rtype, ns, name or "")
        return await self._delete_collection(ctx, rtype, ns)

    @staticmethod
    def _verb(method: str, name: str | None, ctx: _Ctx) -> str:
        if method == "GET":
            if name is not None:
                return "get"
            return "watch" if _truthy(ctx.params.get("watch")) else "list"
        if method == "POST" and name is None:
            return "create"
        if method == "PUT" and name is not None:
            return "update"
        if method == "PATCH" and name is not None:
            return "patch"
        if method == "DELETE":
            return "delete" if name is not None else "deletecollection"
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    @staticmethod
    def _verb_display(verb: str) -> str:
        return {"create": "create", "update": "update", "patch": "patch", "delete": "delete"}.get(verb, verb)

    # -- helpers -----------------------------------------------------------------------------------------

    def _now(self) -> datetime.datetime:
        clock = getattr(self.cluster, "clock", None)
        now_iso = getattr(clock, "now_iso", None)
        if callable(now_iso):
            parsed = tables.parse_time(now_iso())
            if parsed is not None:
                return parsed
        return datetime.datetime.now(datetime.UTC)

    def _now_iso(self) -> str:
        return self._now().strftime("%Y-%m-%dT%H:%M:%SZ")

    async def _body(self, ctx: _Ctx) -> Any:
        raw = await ctx.request.body()
        if not raw.strip():
            return None
        ctype = ctx.request.headers.get("content-type", JSON).split(";")[0].strip()
        if "protobuf" in ctype:
            raise status.unsupported_media_type([JSON, "application/yaml"])
        try:
            if "yaml" in ctype:
                return yaml.safe_load(raw)
            return json.loads(raw)
        except (ValueError, yaml.YAMLError) as err:
            raise status.bad_request(f"the body of the request could not be decoded: {err}") from None

    async def _object_body(self, ctx: _Ctx, rtype: ResourceType) -> Obj:
        body = await self._body(ctx)
        if not isinstance(body, dict):
            raise status.bad_request("the body of the request must be a JSON object")
        kind = body.get("kind")
        if kind and kind != rtype.kind:
            raise status.bad_request(
                f"the API version in the data ({body.get('apiVersion', '')}) does not match the expected API "
                f"version ({rtype.api_version})"
                if body.get("apiVersion") not in (None, rtype.api_version)
                else f"kind {kind} does not match the expected kind {rtype.kind}"
            )
        api_version = body.get("apiVersion")
        if api_version and api_version != rtype.api_version:
            raise status.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API version "
                f"({rtype.api_version})"
            )
        if not isinstance(body.get("metadata", {}), dict):
            raise status.bad_request("metadata must be an object")
        body = dict(body)
        body.setdefault("metadata", {})
        body["apiVersion"] = rtype.api_version
        body["kind"] = rtype.kind
        if rtype.storage == ("", "events"):
            return events.from_events_v1(body)
        out: Obj = body
        return out

    def _admit(self, verb: str, rtype: ResourceType, obj: Obj | None, old: Obj | None, user: str) -> Obj | None:
        try:
            mutated = self.cluster.admit(verb, rtype.key, obj, old, user)
        except Exception as err:
            from .cluster import AdmissionError  # imported late: only a denial needs the class

            if isinstance(err, AdmissionError):
                raise self._wrap_admission(err, rtype, obj if obj is not None else old) from None
            raise
        return mutated if mutated is not None else obj

    @staticmethod
    def _wrap_admission(err: Any, rtype: ResourceType, obj: Obj | None) -> ApiError:
        """kube-apiserver's webhook-denial wrapping (kubevirt-api.md §8.9)."""
        code = int(getattr(err, "code", 0) or 0) or 403
        reason = getattr(err, "reason", "") or ("InternalError" if code == 500 else "Forbidden")
        name = ((obj or {}).get("metadata") or {}).get("name") or "Unknown"
        message = (
            f'{status.qualified(rtype.group, rtype.plural)} "{name}" is forbidden: admission webhook '
            f'"{getattr(err, "webhook", "")}" denied the request: {getattr(err, "message", str(err))}'
        )
        details: Obj = {"name": name}
        if rtype.group:
            details["group"] = rtype.group
        details["kind"] = rtype.plural
        causes = getattr(err, "causes", None)
        if causes:
            details["causes"] = causes
        return ApiError(code, reason, message, details)

    def _prepare_write(self, ctx: _Ctx, rtype: ResourceType, obj: Obj, old: Obj | None, sub: str) -> Obj:
        """apiextensions-apiserver's part of a write: CRD validation and status; for custom resources the
        spec/status split, defaulting, pruning (``fieldValidation``) and structural-schema validation."""
        name = (obj.get("metadata") or {}).get("name") or ""
        if not sub:
            causes = builtins.metadata_problems(obj)
            if causes:
                raise status.invalid(rtype.kind, rtype.group, name, causes)
        if self.builtin_writes.handles(rtype.key):
            return self.builtin_writes.prepare(rtype.key, rtype.kind, rtype.group, obj, old, sub)
        if rtype.key == crds.CRDS:
            if sub:
                return obj
            causes = crds.validate_crd(obj)
            if causes:
                raise status.invalid(rtype.kind, rtype.group, name, causes)
            if old is None:
                finalizers = obj["metadata"].setdefault("finalizers", [])
                if crds.CLEANUP_FINALIZER not in finalizers:
                    finalizers.append(crds.CLEANUP_FINALIZER)
                obj["status"] = crds.crd_status(obj, self._now_iso())
            return obj
        if not rtype.crd:
            return obj
        effective: Obj = dict(obj)
        if rtype.status_subresource:
            if sub == "status" and old is not None:
                effective = {k: v for k, v in old.items() if k != "status"}
                effective["metadata"] = old["metadata"]
                if "status" in obj:
                    effective["status"] = obj["status"]
            else:
                effective.pop("status", None)
                if old is not None and "status" in old:
                    effective["status"] = old["status"]
        schema = rtype.schema
        if not isinstance(schema, dict):
            return effective
        effective = dict(copy_obj(effective))
        crdschema.apply_defaults(effective, schema)
        unknown = crdschema.prune(effective, schema)
        if rtype.status_subresource:
            part = "status" if sub == "status" else None
            unknown = [u for u in unknown if (u == "status" or u.startswith("status.")) == (part == "status")]
        if unknown:
            mode = (ctx.params.get("fieldValidation") or "Warn").lower()
            messages = [f'unknown field "{u}"' for u in unknown]
            if mode == "strict":
                raise status.bad_request(
                    f'{rtype.kind} in version "{rtype.version}" cannot be handled as a {rtype.kind}: '
                    f"strict decoding error: {', '.join(messages)}"
                )
            if mode != "ignore":
                ctx.warnings.extend(messages)
        causes = crdschema.validate(effective, schema)
        if causes:
            raise status.invalid(rtype.kind, rtype.group, name, causes)
        return effective

    def _namespace_lifecycle(self, rtype: ResourceType, meta: Obj) -> None:
        """kube-apiserver's NamespaceLifecycle admission: no new objects in a missing or terminating namespace."""
        ns = str(meta.get("namespace") or "")
        namespace = self.store.try_get(("", "namespaces"), None, ns, copy=False)
        if namespace is None:
            raise status.not_found("", "namespaces", ns)
        if namespace["metadata"].get("deletionTimestamp"):
            name = meta.get("name") or meta.get("generateName") or ""
            subject = status.qualified(rtype.group, rtype.plural) + (f' "{name}"' if name else "")
            details: Obj = {"name": name} if name else {}
            if rtype.group:
                details["group"] = rtype.group
            details["kind"] = rtype.plural
            details["causes"] = [
                {
                    "reason": "NamespaceTerminating",
                    "message": f"namespace {ns} is being terminated",
                    "field": "metadata.namespace",
                }
            ]
            raise ApiError(
                403,
                "Forbidden",
                f"{subject} is forbidden: unable to create new content in namespace {ns} because it is being "
                "terminated",
                details,
            )

    def _not_found(self, rtype: ResourceType, name: str) -> ApiError:
        return status.not_found(rtype.group, rtype.plural, name)

    def _respond_object(self, ctx: _Ctx, rtype: ResourceType, obj: Obj, code: int = 200) -> Response:
        obj = _with_type(obj, rtype)
        if ctx.warnings:
            headers = {"Warning": ", ".join('299 - "' + w.replace('"', '\\"') + '"' for w in ctx.warnings)}
            return _json_response(obj, code, headers)
        table_version = tables.wants_table(ctx.request.headers.get("accept", ""))
        if table_version and ctx.request.method == "GET":
            meta = {"resourceVersion": (obj.get("metadata") or {}).get("resourceVersion", "")}
            table = tables.build_table(
                rtype,
                [obj],
                now=self._now(),
                table_version=table_version,
                include_object=ctx.params.get("includeObject", "Metadata"),
                list_meta=meta,
            )
            return _json_response(table, code)
        return _json_response(obj, code)

    # -- read verbs --------------------------------------------------------------------------------------

    def _get(self, ctx: _Ctx, rtype: ResourceType, ns: str | None, name: str) -> Response:
        obj = self.store.try_get(rtype.key, ns, name, copy=False)
        if obj is None:
            raise self._not_found(rtype, name)
        return self._respond_object(ctx, rtype, obj)

    def _filters(self, ctx: _Ctx, rtype: ResourceType) -> Callable[[Obj], bool] | None:
        label = parse_label_selector(ctx.params.get("labelSelector"))
        field = parse_field_selector(ctx.params.get("fieldSelector"), rtype.field_selectors)
        if label and field:
            return lambda o: label(o) and field(o)
        return label or field

    def _list(self, ctx: _Ctx, rtype: ResourceType, ns: str | None) -> Response:
        match = self._filters(ctx, rtype)
        only_name = field_equals(ctx.params.get("fieldSelector"), "metadata.name")
        if only_name is not None and ns is not None:
            one = self.store.try_get(rtype.key, ns, only_name, copy=False)
            items = [one] if one is not None else []
            rv = self.store.resource_version()
        else:
            items, rv = self.store.list(rtype.key, ns, copy=False)
        if match is not None:
            items = [o for o in items if match(o)]
        token = ctx.params.get("continue")
        if token:
            start = _decode_continue(token)
            items = [o for o in items if ((o["metadata"].get("namespace") or ""), o["metadata"]["name"]) > start]
        list_meta: Obj = {"resourceVersion": str(rv)}
        limit_raw = ctx.params.get("limit")
        if limit_raw:
            try:
                limit = int(limit_raw)
            except ValueError:
                raise status.bad_request(f"invalid limit {limit_raw!r}") from None
            if 0 < limit < len(items):
                last = items[limit - 1]["metadata"]
                list_meta["continue"] = _encode_continue(rv, last.get("namespace") or "", last["name"])
                list_meta["remainingItemCount"] = len(items) - limit
                items = items[:limit]
        typed = [_with_type(o, rtype) for o in items]
        table_version = tables.wants_table(ctx.request.headers.get("accept", ""))
        if table_version:
            table = tables.build_table(
                rtype,
                typed,
                now=self._now(),
                table_version=table_version,
                include_object=ctx.params.get("includeObject", "Metadata"),
                list_meta=list_meta,
            )
            return _json_response(table)
        body = {
            "kind": rtype.list_kind,
            "apiVersion": rtype.api_version,
            "metadata": list_meta,
            "items": typed,
        }
        return _json_response(body)

    def _watch(self, ctx: _Ctx, rtype: ResourceType, ns: str | None) -> Response:
        match = self._filters(ctx, rtype)
        rv_raw = ctx.params.get("resourceVersion") or ""
        send_initial = _truthy(ctx.params.get("sendInitialEvents"))
        start_rv: int | None = None
        if rv_raw not in ("", "0") and not send_initial:
            try:
                start_rv = int(rv_raw)
            except ValueError:
                raise status.bad_request(f'invalid resource version "{rv_raw}"') from None
        try:
            timeout = float(ctx.params.get("timeoutSeconds") or _WATCH_TIMEOUT_DEFAULT)
        except ValueError:
            raise status.bad_request("invalid timeoutSeconds") from None
        bookmarks = _truthy(ctx.params.get("allowWatchBookmarks"))
        table_version = tables.wants_table(ctx.request.headers.get("accept", ""))
        include_object = ctx.params.get("includeObject", "Metadata")
        cut = self.cluster.faults.watch_fault(rtype.key, ns)
        stream = self._watch_stream(
            rtype, ns, match, start_rv, timeout, bookmarks, send_initial, table_version, include_object, cut
        )
        return StreamingResponse(stream, media_type=JSON)

    def _event_line(
        self,
        type_: str,
        obj: Obj,
        rtype: ResourceType,
        table_version: str | None,
        include_object: str,
        first: bool,
    ) -> bytes:
        typed = _with_type(obj, rtype)
        if table_version and type_ != "BOOKMARK":
            meta = {"resourceVersion": (obj.get("metadata") or {}).get("resourceVersion", "")}
            payload: Obj = tables.build_table(
                rtype,
                [typed],
                now=self._now(),
                table_version=table_version,
                include_object=include_object,
                list_meta=meta,
                with_headers=True,
            )
        else:
            payload = typed
        return dumps({"type": type_, "object": payload}) + b"\n"

    async def _watch_stream(
        self,
        rtype: ResourceType,
        ns: str | None,
        match: Callable[[Obj], bool] | None,
        start_rv: int | None,
        timeout: float,
        bookmarks: bool,
        send_initial: bool,
        table_version: str | None,
        include_object: str,
        cut: Any = None,
    ) -> AsyncIterator[bytes]:
        """The lines of one watch: the initial events, an initial-events-end bookmark, then live events."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[WatchEvent | None] = asyncio.Queue()  # None: the server is stopping
        if self._stop_event().is_set():
            return
        self._watch_queues.add(queue)
        try:
            unsubscribe, initial, last_rv = self._subscribe_watch(
                self._watch_listener(loop, queue, rtype.key, ns), rtype.key, ns, start_rv
            )
        except GoneError as err:
            self._watch_queues.discard(queue)
            yield dumps({"type": "ERROR", "object": status.expired(err.requested, err.oldest).to_status()})
            yield b"\n"
            return
        cursor = _WatchCursor(self, rtype, table_version, include_object, last_rv, cut, loop)
        try:
            for event in initial:
                if cursor.cut_now():
                    break
                if match is None or match(event.obj):
                    yield cursor.send(event)
            if cursor.cut_now():
                line = cursor.cut_line()
                if line:
                    yield line
                return
            if bookmarks and send_initial:
                yield _bookmark_line(rtype, last_rv, {"k8s.io/initial-events-end": "true"})
            async with contextlib.aclosing(self._live_watch_lines(queue, cursor, match, timeout, bookmarks)) as lines:
                async for line in lines:
                    yield line
        finally:
            unsubscribe()
            self._watch_queues.discard(queue)

    def _watch_listener(
        self,
        loop: asyncio.AbstractEventLoop,
        queue: "asyncio.Queue[WatchEvent | None]",
        key: tuple[str, str],
        ns: str | None,
    ) -> Callable[[WatchEvent], None]:
        """A store subscriber that hands the events of ``key`` (in ``ns``) to a watch's queue on its loop."""

        def on_event(event: WatchEvent) -> None:
            if event.key != key:
                return
            if ns is not None and (event.obj.get("metadata") or {}).get("namespace", "") != ns:
                return
            with contextlib.suppress(RuntimeError):  # RuntimeError: the loop closed, the server stopped
                loop.call_soon_threadsafe(queue.put_nowait, event)

        return on_event

    def _subscribe_watch(
        self, on_event: Callable[[WatchEvent], None], key: tuple[str, str], ns: str | None, start_rv: int | None
    ) -> tuple[Callable[[], None], list[WatchEvent], int]:
        """Subscribe ``on_event`` and read the events a watch starts with, under the store lock so none is lost.

        Returns the unsubscribe function, the initial events and the resourceVersion they reach.

        Raises:
            GoneError: ``start_rv`` is older than the events kept (the subscription is already undone).
        """
        store = self.store
        with store.lock:
            unsubscribe = store.subscribe(on_event)
            try:
                if start_rv is not None:
                    initial = store.events_since(key, start_rv, ns)
                    last_rv = max([start_rv, *(e.resource_version for e in initial)])
                else:
                    items, last_rv = store.list(key, ns, copy=False)
                    initial = [
                        WatchEvent("ADDED", key, o, int(o["metadata"].get("resourceVersion") or 0)) for o in items
                    ]
            except GoneError:
                unsubscribe()
                raise
        return unsubscribe, initial, last_rv

    async def _live_watch_lines(
        self,
        queue: "asyncio.Queue[WatchEvent | None]",
        cursor: "_WatchCursor",
        match: Callable[[Obj], bool] | None,
        timeout: float,
        bookmarks: bool,
    ) -> AsyncGenerator[bytes]:
        """The live part of a watch: new events and periodic bookmarks until the timeout, a cut or a stop."""
        loop = cursor.loop
        deadline = loop.time() + max(timeout, 0.0)
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            wait = min(remaining, self.bookmark_interval) if bookmarks else remaining
            if cursor.cut_at is not None:
                wait = max(0.0, min(wait, cursor.cut_at - loop.time()))
            try:
                arrived = await asyncio.wait_for(queue.get(), wait)
            except TimeoutError:
                if cursor.cut_now():
                    line = cursor.cut_line()
                    if line:
                        yield line
                    return
                if bookmarks and deadline - loop.time() > 0:
                    yield _bookmark_line(cursor.rtype, max(cursor.last_rv, self.store.resource_version()))
                continue
            if arrived is None:
                return
            if arrived.resource_version <= cursor.last_rv:
                continue
            cursor.last_rv = arrived.resource_version
            if match is None or match(arrived.obj):
                yield cursor.send(arrived)
                if cursor.cut_now():
                    line = cursor.cut_line()
                    if line:
                        yield line
                    return

    # -- write verbs -------------------------------------------------------------------------------------

    def _check_namespace(self, rtype: ResourceType, obj: Obj, ns: str | None) -> None:
        meta = obj["metadata"]
        if rtype.namespaced:
            body_ns = meta.get("namespace")
            if body_ns and ns and body_ns != ns:
                raise status.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)

    async def _create(self, ctx: _Ctx, rtype: ResourceType, ns: str | None) -> Response:
        if rtype.namespaced and ns is None:
            raise status.not_found_path(ctx.request.url.path)
        obj = await self._object_body(ctx, rtype)
        self._check_namespace(rtype, obj, ns)
        meta = obj["metadata"]
        for server_field in (
            "resourceVersion",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "generation",
        ):
            meta.pop(server_field, None)
        if not meta.get("name") and not meta.get("generateName"):
            raise status.invalid(
                rtype.kind,
                rtype.group,
                "",
                [
                    {
                        "reason": "FieldValueRequired",
                        "message": "Required value: name or generateName is required",
                        "field": "metadata.name",
                    }
                ],
            )
        return await self._do_create(ctx, rtype, obj)

    async def _do_create(self, ctx: _Ctx, rtype: ResourceType, obj: Obj, *, applied: bool = False) -> Response:
        meta = obj["metadata"]
        name_for_errors = meta.get("name") or "Unknown"
        if rtype.namespaced:
            self._namespace_lifecycle(rtype, meta)
        admitted = self._admit("create", rtype, obj, None, ctx.user)
        if admitted is not None:
            obj = admitted
        obj = self._prepare_write(ctx, rtype, obj, None, "")
        if not applied:
            patching.record_update(
                None,
                obj,
                manager=ctx.manager,
                api_version=rtype.api_version,
                subresource="",
                now=self._now_iso(),
            )
        if ctx.dry_run:
            if not obj["metadata"].get("name"):
                obj["metadata"]["name"] = obj["metadata"].get("generateName", "") + "dryrun"
            return self._respond_object(ctx, rtype, obj, 201)
        try:
            created = self.store.create(rtype.key, obj)
        except AlreadyExistsError:
            raise status.already_exists(rtype.group, rtype.plural, name_for_errors) from None
        except ValueError as err:
            raise status.invalid(
                rtype.kind,
                rtype.group,
                "",
                [
                    {
                        "reason": "FieldValueRequired",
                        "message": f"Required value: {err}",
                        "field": "metadata.name",
                    }
                ],
            ) from None
        return self._respond_object(ctx, rtype, created, 201)

    async def _update(self, ctx: _Ctx, rtype: ResourceType, ns: str | None, name: str, sub: str) -> Response:
        obj = await self._object_body(ctx, rtype)
        self._check_namespace(rtype, obj, ns)
        body_name = obj["metadata"].get("name")
        if body_name and body_name != name:
            raise status.bad_request(
                f"the name of the object ({body_name}) does not match the name on the URL ({name})"
            )
        obj["metadata"]["name"] = name
        old = self.store.try_get(rtype.key, ns, name)
        if old is None:
            raise self._not_found(rtype, name)
        rv = obj["metadata"].get("resourceVersion")
        if rv not in (None, "") and str(rv) != old["metadata"].get("resourceVersion"):
            raise status.optimistic_lock(rtype.group, rtype.plural, name)
        if not sub:
            admitted = self._admit("update", rtype, obj, old, ctx.user)
            if admitted is not None:
                obj = admitted
        obj = self._prepare_write(ctx, rtype, obj, old, sub)
        if "managedFields" not in obj["metadata"] and old["metadata"].get("managedFields"):
            obj["metadata"]["managedFields"] = old["metadata"]["managedFields"]
        patching.record_update(
            old, obj, manager=ctx.manager, api_version=rtype.api_version, subresource=sub, now=self._now_iso()
        )
        if ctx.dry_run:
            return self._respond_object(ctx, rtype, obj)
        try:
            updated = self.store.update(rtype.key, obj, subresource=sub or None)
        except ConflictError:
            raise status.optimistic_lock(rtype.group, rtype.plural, name) from None
        except NotFoundError:
            raise self._not_found(rtype, name) from None
        return self._respond_object(ctx, rtype, updated)

    async def _patch(self, ctx: _Ctx, rtype: ResourceType, ns: str | None, name: str, sub: str) -> Response:
        """PATCH: a JSON, merge, strategic-merge or apply patch, tried again on a concurrent write."""
        ctype, is_apply = self._patch_type(ctx, rtype)
        patch = await self._read_patch(ctx, rtype, name, is_apply)
        force = _truthy(ctx.params.get("force"))
        for _ in range(_PATCH_RETRIES):
            response = await self._patch_attempt(ctx, rtype, ns, name, sub, patch, ctype, is_apply, force)
            if response is not None:
                return response
        raise status.optimistic_lock(rtype.group, rtype.plural, name)

    def _patch_type(self, ctx: _Ctx, rtype: ResourceType) -> tuple[str, bool]:
        """The patch's content type (refused unless the resource accepts it) and whether it is an apply patch;
        checks the options only an apply patch allows (force) or needs (fieldManager)."""
        ctype = ctx.request.headers.get("content-type", "").split(";")[0].strip().lower()
        accepted = _BUILTIN_PATCH_TYPES if rtype.builtin else _CR_PATCH_TYPES
        if ctype not in accepted:
            raise status.unsupported_media_type(accepted)
        is_apply = ctype == "application/apply-patch+yaml"
        if ctx.params.get("force") is not None and not is_apply:
            raise _invalid_patch_options(
                "force", "FieldValueForbidden", "Forbidden: may not be specified for non-apply patch"
            )
        if is_apply and not ctx.params.get("fieldManager"):
            raise _invalid_patch_options(
                "fieldManager", "FieldValueRequired", "Required value: is required for apply patch"
            )
        return ctype, is_apply

    async def _read_patch(self, ctx: _Ctx, rtype: ResourceType, name: str, is_apply: bool) -> Any:
        """The decoded patch body; an apply patch must be an object of this kind and name."""
        raw = await ctx.request.body()
        try:
            patch = yaml.safe_load(raw) if is_apply else json.loads(raw or b"null")
        except (ValueError, yaml.YAMLError) as err:
            raise status.bad_request(f"error decoding patch: {err}") from None
        if is_apply:
            if not isinstance(patch, dict):
                raise status.bad_request("apply patch must be an object")
            if patch.get("kind") != rtype.kind or patch.get("apiVersion") != rtype.api_version:
                raise status.bad_request(
                    f"the API version in the data ({patch.get('apiVersion')}) and kind ({patch.get('kind')}) "
                    f"do not match the expected {rtype.api_version} {rtype.kind}"
                )
            pmeta = patch.get("metadata") or {}
            if pmeta.get("name") not in (None, name):
                raise status.bad_request(
                    f"the name of the object ({pmeta.get('name')}) does not match the name on the URL ({name})"
                )
        return patch

    async def _patch_attempt(
        self,
        ctx: _Ctx,
        rtype: ResourceType,
        ns: str | None,
        name: str,
        sub: str,
        patch: Any,
        ctype: str,
        is_apply: bool,
        force: bool,
    ) -> Response | None:
        """One try at a patch on the stored object (an apply patch creates a missing one); None: a concurrent
        write came first, try again on the new state."""
        old = self.store.try_get(rtype.key, ns, name)
        if old is None:
            if is_apply and not sub:
                applied = patching.server_side_apply(
                    None, patch, manager=ctx.manager, force=force, subresource="", now=self._now_iso()
                )
                applied.setdefault("metadata", {})["name"] = name
                applied["apiVersion"], applied["kind"] = rtype.api_version, rtype.kind
                self._check_namespace(rtype, applied, ns)
                return await self._do_create(ctx, rtype, applied, applied=True)
            raise self._not_found(rtype, name)
        new = self._patch_result(ctx, rtype, ns, name, sub, old, patch, ctype, is_apply, force)
        if ctx.dry_run:
            return self._respond_object(ctx, rtype, new)
        try:
            updated = self.store.update(rtype.key, new, subresource=sub or None)
        except ConflictError:
            return None  # a concurrent write: retry the patch on the new state, as kube-apiserver does
        except NotFoundError:
            raise self._not_found(rtype, name) from None
        return self._respond_object(ctx, rtype, updated)

    def _patch_result(
        self,
        ctx: _Ctx,
        rtype: ResourceType,
        ns: str | None,
        name: str,
        sub: str,
        old: Obj,
        patch: Any,
        ctype: str,
        is_apply: bool,
        force: bool,
    ) -> Obj:
        """The object to store: the patch applied to ``old``, admitted, prepared and its managed fields recorded."""
        old_rv = old["metadata"].get("resourceVersion")
        if rtype.storage:
            old = _with_type(old, rtype)
        new = self._patched(ctx, rtype, old, patch, ctype, force, sub)
        new_meta = new.setdefault("metadata", {})
        if new_meta.get("resourceVersion") not in (None, "", old_rv):
            raise status.optimistic_lock(rtype.group, rtype.plural, name)
        new_meta["name"] = name
        if rtype.namespaced:
            new_meta["namespace"] = ns
        new_meta["resourceVersion"] = old_rv
        new["apiVersion"], new["kind"] = rtype.api_version, rtype.kind
        if rtype.storage == ("", "events"):
            new = events.from_events_v1(new)
        if not sub:
            admitted = self._admit("patch", rtype, new, old, ctx.user)
            if admitted is not None:
                new = admitted
        new = self._prepare_write(ctx, rtype, new, old, sub)
        if not is_apply:
            patching.record_update(
                old,
                new,
                manager=ctx.manager,
                api_version=rtype.api_version,
                subresource=sub,
                now=self._now_iso(),
            )
        return new

    def _patched(self, ctx: _Ctx, rtype: ResourceType, old: Obj, patch: Any, ctype: str, force: bool, sub: str) -> Obj:
        if ctype == "application/json-patch+json":
            try:
                result = patching.json_patch(old, patch)
            except patching.JsonPatchError as err:
                raise ApiError(422, "Invalid", str(err), {"causes": [{"message": str(err)}]}) from None
        elif ctype == "application/merge-patch+json":
            if not isinstance(patch, dict):
                raise status.bad_request("merge patch must be a JSON object")
            result = patching.merge_patch(old, patch)
        elif ctype == "application/strategic-merge-patch+json":
            if not isinstance(patch, dict):
                raise status.bad_request("strategic merge patch must be a JSON object")
            result = patching.strategic_merge_patch(old, patch)
        else:
            result = patching.server_side_apply(
                old, patch, manager=ctx.manager, force=force, subresource=sub, now=self._now_iso()
            )
        if not isinstance(result, dict):
            raise status.bad_request("the patch produced something that is not an object")
        return result

    async def _delete(self, ctx: _Ctx, rtype: ResourceType, ns: str | None, name: str) -> Response:
        if rtype.key == ("", "namespaces") and name in _IMMORTAL_NAMESPACES:
            raise ApiError(
                403,
                "Forbidden",
                f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                {"name": name, "kind": "namespaces"},
            )
        options = await self._body(ctx)
        old = self.store.try_get(rtype.key, ns, name)
        if old is None:
            raise self._not_found(rtype, name)
        if isinstance(options, dict):
            pre = options.get("preconditions") or {}
            meta = old["metadata"]
            if pre.get("uid") and pre["uid"] != meta.get("uid"):
                raise status.conflict(
                    rtype.group,
                    rtype.plural,
                    name,
                    f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: {meta.get('uid')}",
                )
            if pre.get("resourceVersion") and pre["resourceVersion"] != meta.get("resourceVersion"):
                raise status.conflict(
                    rtype.group,
                    rtype.plural,
                    name,
                    f"Precondition failed: ResourceVersion in precondition: "
                    f"{pre['resourceVersion']}, ResourceVersion in object meta: "
                    f"{meta.get('resourceVersion')}",
                )
            if "All" in (options.get("dryRun") or []):
                ctx.dry_run = True
        self._admit("delete", rtype, None, old, ctx.user)
        if ctx.dry_run:
            return self._respond_object(ctx, rtype, old)
        try:
            last = self.store.delete(rtype.key, ns, name)
            if rtype.key == ("", "namespaces") and last["metadata"].get("deletionTimestamp"):
                last = self.store.mutate(
                    rtype.key, None, name, lambda o: o.setdefault("status", {}).update(phase="Terminating")
                )
        except NotFoundError:
            raise self._not_found(rtype, name) from None
        return self._respond_object(ctx, rtype, last)

    async def _delete_collection(self, ctx: _Ctx, rtype: ResourceType, ns: str | None) -> Response:
        match = self._filters(ctx, rtype)
        items, _ = self.store.list(rtype.key, ns, copy=False)
        deleted: list[Obj] = []
        for obj in items:
            if match is not None and not match(obj):
                continue
            meta = obj["metadata"]
            self._admit("delete", rtype, None, obj, ctx.user)
            if ctx.dry_run:
                deleted.append(_with_type(obj, rtype))
                continue
            try:
                deleted.append(_with_type(self.store.delete(rtype.key, meta.get("namespace"), meta["name"]), rtype))
            except NotFoundError:
                continue
        body = {
            "kind": rtype.list_kind,
            "apiVersion": rtype.api_version,
            "metadata": {"resourceVersion": str(self.store.resource_version())},
            "items": deleted,
        }
        return _json_response(body)

    # -- special endpoints -------------------------------------------------------------------------------

    async def _review_body(self, ctx: _Ctx, rtype: ResourceType) -> Obj:
        body = await self._body_of_kind(ctx, rtype.kind)
        if not isinstance(body, dict):
            raise status.bad_request(f"the body of the request must be a {rtype.kind}")
        return body

    async def _body_of_kind(self, ctx: _Ctx, kind: str) -> Any:
        """The body, also from protobuf for the review and TokenRequest kinds client-go sends that way."""
        if "protobuf" in ctx.request.headers.get("content-type", ""):
            try:
                return protowire.decode(kind, await ctx.request.body())
            except protowire.ProtobufError as err:
                raise status.bad_request(f"the body of the request could not be decoded: {err}") from None
        return await self._body(ctx)

    async def _review(self, ctx: _Ctx, rtype: ResourceType) -> Response:
        """The review APIs: answered from the authenticator and the configured authorizer, never stored."""
        body = await self._review_body(ctx, rtype)
        spec = body.get("spec") or {}
        if not isinstance(spec, dict):
            raise status.bad_request("spec must be an object")
        if rtype.kind == "SelfSubjectReview":
            return _json_response(reviews.self_subject_review(ctx.identity), 201)
        if rtype.kind == "SelfSubjectRulesReview":
            return _json_response(self._rules_review(ctx.identity, spec), 201)
        subject = ctx.identity if rtype.kind == "SelfSubjectAccessReview" else reviews.subject_of(spec)
        attrs = reviews.attributes_of(spec, subject)
        policy = self.policy
        if policy is None:
            allowed, reason = True, "no policy"
        elif policy.rbac:
            allowed, reason = self._decide(attrs) if attrs is not None else (False, "")
        elif attrs is not None:
            allowed, _ = self._decide(attrs)
            reason = "allowed by the simulator's policy" if allowed else ""
        else:
            allowed = subject.name == ADMIN_USER or subject.name not in policy.rules
            reason = "allowed by the simulator's policy" if allowed else ""
        return _json_response(reviews.access_review(rtype.kind, spec, allowed, reason), 201)

    def _rules_review(self, identity: UserInfo, spec: Obj) -> Obj:
        namespace = str(spec.get("namespace") or "")
        policy = self.policy
        if policy is None or (SUPERUSER_GROUP in identity.groups and (policy.rbac or identity.name == ADMIN_USER)):
            return reviews.rules_review(spec, reviews.ALL_RULES, [])
        if policy.rbac:
            rules, errors = self.rbac.rules_for(identity, namespace)
            return reviews.rules_review(spec, rules, errors)
        own = policy.rules.get(identity.name)
        if own is None:
            return reviews.rules_review(spec, reviews.ALL_RULES if identity.name == ADMIN_USER else [], [])
        converted = [
            {"verbs": sorted(r.verbs), "apiGroups": sorted(r.api_groups), "resources": sorted(r.resources)}
            for r in own
            if r.namespaces is None or "*" in r.namespaces or namespace in r.namespaces
        ]
        return reviews.rules_review(spec, converted, [])

    async def _token_request(self, ctx: _Ctx, ns: str, name: str) -> Response:
        """POST serviceaccounts/{name}/token: a signed token for the account (``kubectl create token``)."""
        body = await self._body_of_kind(ctx, "TokenRequest")
        if body is not None and not isinstance(body, dict):
            raise status.bad_request("the body of the request must be a TokenRequest")
        account = self.store.try_get(("", "serviceaccounts"), ns, name, copy=False)
        if account is None:
            raise status.not_found("", "serviceaccounts", name)
        spec = dict((body or {}).get("spec") or {})
        try:
            seconds = int(spec.get("expirationSeconds") or DEFAULT_TOKEN_SECONDS)
        except (TypeError, ValueError):
            raise status.bad_request("spec.expirationSeconds must be an integer") from None
        if seconds < 600:
            raise status.invalid(
                "TokenRequest",
                "authentication.k8s.io",
                name,
                [
                    {
                        "reason": "FieldValueInvalid",
                        "message": f"Invalid value: {seconds}: may not specify a duration less than 10 minutes",
                        "field": "spec.expirationSeconds",
                    }
                ],
            )
        audiences = [str(a) for a in spec.get("audiences") or []] or list(DEFAULT_AUDIENCES)
        spec.update(
            {"audiences": audiences, "expirationSeconds": seconds, "boundObjectRef": spec.get("boundObjectRef")}
        )
        token, expires = self.token_issuer.issue(
            ns, name, str(account["metadata"].get("uid") or ""), audiences=tuple(audiences), expiration_seconds=seconds
        )
        expires_iso = datetime.datetime.fromtimestamp(expires, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        created_iso = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return _json_response(reviews.token_request(ns, name, spec, token, expires_iso, created_iso), 201)

    def issue_service_account_token(self, namespace: str, name: str, expiration_seconds: int = 3600) -> str:
        """A token for an existing ServiceAccount, as the TokenRequest API would hand out (for tests).

        Raises:
            LookupError: no such ServiceAccount.
        """
        account = self.store.try_get(("", "serviceaccounts"), namespace, name, copy=False)
        if account is None:
            raise LookupError(f"serviceaccount {namespace}/{name} does not exist")
        token, _ = self.token_issuer.issue(
            namespace, name, str(account["metadata"].get("uid") or ""), expiration_seconds=expiration_seconds
        )
        return token

    async def _evict(self, ctx: _Ctx, rtype: ResourceType, ns: str, name: str) -> Response:
        """POST pods/{name}/eviction: KubeVirt's interceptor for virt-launcher pods, else delete (§6)."""
        after = await self._apply_fault("create", ("", "pods/eviction"), ns, name, "eviction")
        response = await self._evict_now(ctx, rtype, ns, name)
        if after is not None:
            await self._fault_effect(after)
        return response

    async def _evict_now(self, ctx: _Ctx, rtype: ResourceType, ns: str, name: str) -> Response:
        pod = self.store.try_get(rtype.key, ns, name)
        if pod is None:
            raise self._not_found(rtype, name)
        labels = (pod.get("metadata") or {}).get("labels") or {}
        phase = (pod.get("status") or {}).get("phase")
        if labels.get("kubevirt.io") == "virt-launcher" and phase not in ("Succeeded", "Failed"):
            denial = self._launcher_eviction(pod, ns, ctx.dry_run)
            if denial is not None:
                raise denial
        if not ctx.dry_run:
            try:
                self.store.delete(rtype.key, ns, name)
            except NotFoundError:
                raise self._not_found(rtype, name) from None
        return _json_response(status.success_status(201), 201)

    def _launcher_eviction(self, pod: Obj, ns: str, dry_run: bool) -> ApiError | None:
        """The virt-launcher-eviction-interceptor decision; None lets the eviction through."""
        annotations = (pod.get("metadata") or {}).get("annotations") or {}
        labels = (pod.get("metadata") or {}).get("labels") or {}
        vmi_name = annotations.get("kubevirt.io/domain") or labels.get("vm.kubevirt.io/name")
        if not vmi_name:
            return None
        vmi = self.store.try_get(("kubevirt.io", "virtualmachineinstances"), ns, vmi_name, copy=False)
        if vmi is None:
            return None
        strategy = (vmi.get("spec") or {}).get("evictionStrategy")
        if not strategy:
            kv = self.store.try_get(("kubevirt.io", "kubevirts"), "kubevirt", "kubevirt", copy=False) or {}
            strategy = ((kv.get("spec") or {}).get("configuration") or {}).get("evictionStrategy") or "None"
        conditions = (vmi.get("status") or {}).get("conditions") or []
        migratable = any(c.get("type") == "LiveMigratable" and c.get("status") == "True" for c in conditions)
        if strategy == "None" or (strategy == "LiveMigrateIfPossible" and not migratable):
            return None
        webhook = "virt-launcher-eviction-interceptor.kubevirt.io"
        if strategy == "LiveMigrate" and not migratable:
            message = f"VMI {vmi_name} is configured with an eviction strategy but is not live-migratable"
        else:
            node = (pod.get("spec") or {}).get("nodeName") or ""
            already = (vmi.get("status") or {}).get("evacuationNodeName")
            message = f'Eviction triggered evacuation of VMI "{ns}/{vmi_name}"'
            if already:
                message = f"Evacuation in progress: {message}"
            elif not dry_run:

                def mark(o: Obj) -> None:
                    o.setdefault("status", {})["evacuationNodeName"] = node

                self.store.mutate(("kubevirt.io", "virtualmachineinstances"), ns, vmi_name, mark)
        pods = self.registry.by_key(("", "pods"))
        assert pods is not None
        err = self._wrap_admission(_Denial(429, "TooManyRequests", message, webhook), pods, pod)
        return err

    async def _vm_subresource(self, ctx: _Ctx, version: str, rest: list[str]) -> Response:
        """PUT /apis/subresources.kubevirt.io/v1/namespaces/{ns}/virtualmachines/{name}/{action} (§5)."""
        if (
            len(rest) != 5
            or rest[0] != "namespaces"
            or rest[2] != "virtualmachines"
            or rest[4] not in resources.VM_SUBRESOURCE_ACTIONS
            or version != resources.SUBRESOURCES_VERSION
        ):
            raise status.not_found_path(ctx.request.url.path)
        ns, name, action = rest[1], rest[3], rest[4]
        if ctx.request.method != "PUT":
            raise status.method_not_allowed(
                ctx.request.method, resources.SUBRESOURCES_GROUP, f"virtualmachines/{action}"
            )
        self._authorize(ctx, "update", resources.SUBRESOURCES_GROUP, "virtualmachines", action, ns, name)
        after = await self._apply_fault("update", (resources.SUBRESOURCES_GROUP, "virtualmachines"), ns, name, action)
        response = await self._vm_action(ctx, ns, name, action)
        if after is not None:
            await self._fault_effect(after)
        return response

    async def _vm_action(self, ctx: _Ctx, ns: str, name: str, action: str) -> Response:
        body = await self._body(ctx)
        if body is not None and not isinstance(body, dict):
            raise status.bad_request("the body of the request must be a JSON object")
        try:
            self.cluster.subresource(ns, "virtualmachines", name, action, body, ctx.user)
        except NotFoundError:
            raise ApiError(
                404,
                "NotFound",
                f'virtualmachine.kubevirt.io "{name}" not found',
                {"name": name, "group": "kubevirt.io", "kind": "virtualmachine"},
            ) from None
        except Exception as err:
            from .cluster import SubresourceError  # imported late: only a failure needs the class

            if not isinstance(err, SubresourceError):
                raise
            details: Obj | None = None
            if err.code in (404, 409):
                details = {"name": name, "group": "kubevirt.io", "kind": "virtualmachine"}
            raise ApiError(err.code, err.reason, err.message, details) from None
        return Response(b"", status_code=202)


def _invalid_patch_options(field: str, reason: str, detail: str) -> ApiError:
    """The 422 kube-apiserver answers for PatchOptions that a patch of this type must not have or must have."""
    return ApiError(
        422,
        "Invalid",
        f'PatchOptions.meta.k8s.io "" is invalid: {field}: {detail}',
        {
            "group": "meta.k8s.io",
            "kind": "PatchOptions",
            "causes": [{"reason": reason, "message": detail, "field": field}],
        },
    )


def _bookmark_line(rtype: ResourceType, resource_version: int, annotations: dict[str, str] | None = None) -> bytes:
    """A BOOKMARK watch line at ``resource_version``."""
    metadata: Obj = {"resourceVersion": str(resource_version)}
    if annotations is not None:
        metadata["annotations"] = annotations
    bookmark = {"kind": rtype.kind, "apiVersion": rtype.api_version, "metadata": metadata}
    return dumps({"type": "BOOKMARK", "object": bookmark}) + b"\n"


class _WatchCursor:
    """How far one watch has gone: the last resourceVersion and the events sent, and when an injected cut
    (``cut``, from the fault injector, or None) ends it."""

    def __init__(
        self,
        api: "KubeApi",
        rtype: ResourceType,
        table_version: str | None,
        include_object: str,
        last_rv: int,
        cut: Any,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.api = api
        self.rtype = rtype
        self.table_version = table_version
        self.include_object = include_object
        self.last_rv = last_rv
        self.cut = cut
        self.loop = loop
        self.first = True
        self.sent = 0
        self.cut_at = loop.time() + cut.after_seconds if cut is not None and cut.after_seconds is not None else None

    def send(self, event: WatchEvent) -> bytes:
        """The line of an event the watch sends."""
        line = self.api._event_line(
            event.type, event.obj, self.rtype, self.table_version, self.include_object, self.first
        )
        self.first = False
        self.sent += 1
        return line

    def cut_now(self) -> bool:
        """Whether the injected cut ends the watch now."""
        cut = self.cut
        if cut is None:
            return False
        if self.cut_at is not None and self.loop.time() >= self.cut_at:
            return True
        if cut.after_seconds is not None and not cut.after_events:
            return False  # a time-only cut
        return bool(self.sent >= cut.after_events)

    def cut_line(self) -> bytes | None:
        """The last line of a cut watch: an expired error for an ``expire`` cut, nothing for a close."""
        if self.cut.action != "expire":
            return None
        rv = self.api.store.resource_version()
        return dumps({"type": "ERROR", "object": status.expired(rv, rv).to_status()}) + b"\n"


class _Denial:
    """An admission denial raised by the API layer itself (the eviction interceptor)."""

    def __init__(self, code: int, reason: str, message: str, webhook: str) -> None:
        self.code, self.reason, self.message, self.webhook = code, reason, message, webhook


def create_app(
    cluster: "SimCluster",
    *,
    tokens: dict[str, str] | None = None,
    policy: Policy | None = None,
    bookmark_interval: float = 30.0,
) -> Starlette:
    """The ASGI app serving ``cluster``; ``tokens`` maps bearer token → user (None = no authentication)."""
    api = KubeApi(cluster, tokens=tokens, policy=policy, bookmark_interval=bookmark_interval)
    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    app = Starlette(routes=[Route("/{path:path}", api.__call__, methods=methods)])
    app.state.api = api
    return app
