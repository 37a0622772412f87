"""The Kubernetes edge: a client built from kubeconfig (or in-cluster config) that speaks raw JSON.

We use the official ``kubernetes`` client for what it does best — kubeconfig loading with
every auth method (client certificates, tokens, exec plugins v1, OIDC auth-provider,
in-cluster service accounts, token refresh) and its connection pool — but bypass its
model classes: responses are read as bytes and parsed with orjson,
which is what makes listing 100,000 objects fast. Every failure leaves this module as a
vm_rebalance error (see kube/errors.py); nothing here prints.
"""

import logging
import os
import random
import re
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson
import urllib3
import yaml
from kubernetes import config as kube_config
from kubernetes.client import ApiClient, Configuration
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from vm_rebalance import __version__
from vm_rebalance.errors import ClusterConfigError, ClusterError, ClusterUnreachableError, ConfigError
from vm_rebalance.kube.errors import error_for_status, error_for_transport
from vm_rebalance.kube.resources import ApiResource


def _loads(data: bytes) -> Any:
    return orjson.loads(data)


def _dumps(obj: Any) -> bytes:
    data: bytes = orjson.dumps(obj)
    return data


log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 30.0
PAGE_SIZE = 500
RETRY_DELAYS_SECONDS = (0.5, 1.0, 2.0)
RETRY_STATUSES = frozenset({500, 502, 503, 504})
USER_AGENT = f"vm-rebalance/{__version__}"
FIELD_MANAGER = "vm-rebalance"

_PATHISH = re.compile(r"(/[^\s'\"]+)+")


def _sanitize(text: str, paths: list[str]) -> str:
    """Remove kubeconfig paths (and anything path-like) from a client error text."""
    for p in paths:
        if p:
            text = text.replace(p, "<kubeconfig>")
    return _PATHISH.sub("<path>", text)[:256]


# ------------------------------------------------------------------ credential plugins

_KUBE_CONFIG_DIR = os.path.normcase(os.path.dirname(os.path.abspath(kube_config.kube_config.__file__)))
_PLUGIN_FAILED = (
    "the kubeconfig's credential plugin (exec) failed or gave no credentials; what it printed is not shown "
    "(it can hold credentials)"
)
_PLUGIN_HINT = "run the plugin yourself to see why (log in again?), then retry"


class _CredentialLogGuard(logging.Filter):
    """Keeps the kubernetes package's kubeconfig loader quiet, and notes credential plugin failures.

    That loader reports a failing exec credential plugin on the *root* logger, with the plugin's
    stderr in the message (which can hold a token), and then carries on without credentials, so
    the failure would surface later as a 401. Installed once on the root logger, this filter drops
    every record logged from ``kubernetes/config`` and counts, per thread, those of the exec plugin
    loader: `load_configuration` and `KubeClient` (a token refresh runs the plugin again, in the
    requesting thread) turn a new count into a `ClusterConfigError` that says so.
    """

    def __init__(self) -> None:
        super().__init__("vm-rebalance credential guard")
        self._local = threading.local()

    def failures(self) -> int:
        """How many credential plugin failures this thread has seen."""
        return int(getattr(self._local, "count", 0))

    def filter(self, record: logging.LogRecord) -> bool:
        if os.path.normcase(os.path.dirname(os.path.abspath(record.pathname))) != _KUBE_CONFIG_DIR:
            return True
        if record.funcName == "_load_from_exec_plugin":
            self._local.count = self.failures() + 1
        return False


def _credential_guard() -> _CredentialLogGuard:
    root = logging.getLogger()
    for existing in root.filters:
        if isinstance(existing, _CredentialLogGuard):
            return existing
    guard = _CredentialLogGuard()
    root.addFilter(guard)
    return guard


_GUARD = _credential_guard()


def _config_problem(exc: BaseException, paths: list[str]) -> str:
    """What is wrong with the kubeconfig, from the client's ConfigException, without what a plugin printed."""
    text = str(exc).strip()
    plugin = re.match(r"(exec|cmd-path): process returned (-?\d+)", text)
    if plugin:
        kind = "credential plugin (exec)" if plugin.group(1) == "exec" else "auth-provider command (cmd-path)"
        return f"the kubeconfig's {kind} failed with exit code {plugin.group(2)}; what it printed is not shown"
    if text.startswith(("exec:", "cmd-path:")):
        return "the kubeconfig's credential plugin gave an unusable answer; what it printed is not shown"
    first = text.splitlines()[0] if text else type(exc).__name__
    return f"the kubeconfig cannot be used: {_sanitize(first, paths)}"


def load_configuration(kubeconfig: str | None = None, context: str | None = None) -> Configuration:
    """A client Configuration from --kubeconfig, KUBECONFIG, ~/.kube/config or the in-cluster service account.

    Raises:
        ClusterConfigError: no usable configuration; the message never contains the path.
    """
    configuration = Configuration()
    configuration.debug = False  # the client logs tokens in debug mode: never enable it
    candidates = [kubeconfig] if kubeconfig else []
    env = os.environ.get("KUBECONFIG")
    if not kubeconfig and env:
        candidates = [p for p in env.split(os.pathsep) if p]
    default = str(Path("~/.kube/config").expanduser())
    if kubeconfig and not Path(kubeconfig).expanduser().exists():
        # A bad option value is bad usage (exit 2), not an unreadable cluster.
        raise ConfigError("the kubeconfig file given with --kubeconfig does not exist")
    existing = [p for p in (candidates or [default]) if Path(p).expanduser().exists()]
    if not existing:
        if os.environ.get("KUBERNETES_SERVICE_HOST") and not kubeconfig and not env:
            try:
                # kubernetes ships py.typed but leaves its config loaders unannotated.
                kube_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            except ConfigException as exc:
                raise ClusterConfigError(f"in-cluster configuration is incomplete: {_sanitize(str(exc), [])}") from None
            return configuration
        raise ClusterConfigError(
            "no kubeconfig found (KUBECONFIG is unset or points nowhere, and there is no ~/.kube/config)",
            hint="pass --kubeconfig, set KUBECONFIG, run inside a pod, or try the simulator: vm-rebalance demo",
        )
    config_file = kubeconfig or os.pathsep.join(existing)
    failures = _GUARD.failures()
    try:
        if context:
            _require_context(config_file, context)
        # Pass the files found now: the client's own default is KUBECONFIG as it was at import time.
        # (Unannotated in the kubernetes package, although it ships py.typed.)
        kube_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=config_file,
            context=context,
            client_configuration=configuration,
            persist_config=False,
        )
    except ConfigException as exc:
        raise ClusterConfigError(_config_problem(exc, existing)) from None
    except yaml.YAMLError as exc:
        # The parser's message names the file; keep only the position.
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise ClusterConfigError(f"the kubeconfig is not valid YAML{at}") from None
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise ClusterConfigError(
            f"the kubeconfig cannot be used: {type(exc).__name__}: {_sanitize(str(exc), existing)}"
        ) from None
    if _GUARD.failures() != failures:
        raise ClusterConfigError(_PLUGIN_FAILED, hint=_PLUGIN_HINT)
    configuration.debug = False
    return configuration


def _require_context(config_file: str, context: str) -> None:
    """Refuse a --context the kubeconfig (all its files, merged) does not define.

    Raises:
        ConfigError: no such context (bad usage, exit 2). ConfigException: the kubeconfig is unusable.
    """
    # Unannotated in the kubernetes package; it returns (contexts, current context).
    contexts, _ = kube_config.list_kube_config_contexts(config_file=config_file)  # type: ignore[no-untyped-call]
    if context not in {c.get("name") for c in contexts or () if isinstance(c, dict)}:
        raise ConfigError(
            f"context '{context}' is not in the kubeconfig", hint="list contexts with: kubectl config get-contexts"
        )


class KubeClient:
    """Raw-JSON access to the Kubernetes API through the official client's transport and auth."""

    def __init__(self, configuration: Configuration, *, timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        self._api = ApiClient(configuration=configuration)
        self._api.user_agent = USER_AGENT
        self._timeout = timeout_seconds
        self.server = configuration.host
        self.retry_delays: tuple[float, ...] = RETRY_DELAYS_SECONDS

    @classmethod
    def from_kubeconfig(cls, kubeconfig: str | None = None, context: str | None = None) -> "KubeClient":
        """Build from kubeconfig / context (or in-cluster). Raises ClusterConfigError."""
        return cls(load_configuration(kubeconfig, context))

    def close(self) -> None:
        """Release the connection pool."""
        try:
            self._api.close()  # type: ignore[no-untyped-call]  # unannotated in the kubernetes package
        except Exception:
            log.debug("closing the API client failed", exc_info=True)

    def __enter__(self) -> "KubeClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ raw requests

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        verb: str,
        resource: str,
        namespace: str | None = None,
        name: str | None = None,
        timeout_seconds: float | None = None,
    ) -> Any:
        """Send one request and return the parsed JSON answer (None for an empty body).

        ``verb`` / ``resource`` name the operation in error messages (e.g. "list",
        "virtualmachines.kubevirt.io"). Transient failures are retried with capped,
        jittered exponential backoff (`retry_delays`): 429 for every verb (the server did
        not act), and 500/502/503/504 or a lost connection for reads only (a write may have
        happened; the executor's writes are guarded and re-read instead).

        Raises:
            ClusterError: any failure, translated (403 names verb and resource).
        """
        attempts = len(self.retry_delays) + 1
        for attempt in range(attempts):
            try:
                return self._request_once(
                    method,
                    path,
                    query=query,
                    body=body,
                    content_type=content_type,
                    verb=verb,
                    resource=resource,
                    namespace=namespace,
                    name=name,
                    timeout_seconds=timeout_seconds,
                )
            except ClusterError as exc:
                transient = exc.status == 429 or (
                    method == "GET" and (exc.status in RETRY_STATUSES or isinstance(exc, ClusterUnreachableError))
                )
                if not transient or attempt == attempts - 1:
                    raise
                delay = self.retry_delays[attempt] * (0.5 + random.random())
                log.debug("%s %s failed (%s); retrying in %.1fs", verb, resource, exc.status, delay)
                time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _request_once(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None,
        body: Any,
        content_type: str,
        verb: str,
        resource: str,
        namespace: str | None,
        name: str | None,
        timeout_seconds: float | None,
    ) -> Any:
        url_path = path + ("?" + urlencode({k: v for k, v in query.items() if v is not None}) if query else "")
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        data: bytes | None = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = _dumps(body)
        failures = _GUARD.failures()
        try:
            # Serialising adds the credentials, refreshing an expired exec token first.
            method_, url, headers_, _, _ = self._api.param_serialize(
                method=method,
                resource_path=url_path,
                header_params=headers,
                auth_settings=["BearerToken"],
            )
            if _GUARD.failures() != failures:
                raise ClusterConfigError(_PLUGIN_FAILED, hint=_PLUGIN_HINT)
            response = self._api.rest_client.pool_manager.request(
                method_,
                url,
                body=data,
                headers=headers_,
                timeout=urllib3.Timeout(total=timeout_seconds or self._timeout),
                preload_content=True,
                retries=False,
            )
        except ApiException as exc:
            raise error_for_transport(exc, server=self.server) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise error_for_transport(exc, server=self.server) from None
        payload = response.data
        if response.status >= 400:
            raise error_for_status(
                response.status, payload, verb=verb, resource=resource, namespace=namespace, name=name
            )
        if not payload:
            return None
        try:
            return _loads(payload)
        except ValueError as exc:
            raise ClusterError(f"the API server sent an unreadable answer to {verb} {resource}") from exc

    def watch_events(
        self,
        resource: ApiResource,
        *,
        resource_version: str | None = None,
        timeout_seconds: int = 30,
        read_timeout_seconds: float = 10.0,
    ) -> Iterator[dict[str, Any]]:
        """Watch ``resource`` cluster-wide: yield each event ({"type", "object"}) as it arrives.

        The stream ends when the server closes it (after ``timeout_seconds``) or when nothing
        arrives for ``read_timeout_seconds``; callers re-watch from the last resourceVersion.

        Raises:
            ClusterError: the watch could not be opened (a 410 Gone comes back as an ERROR event).
        """
        query = {
            "watch": "true",
            "allowWatchBookmarks": "true",
            "timeoutSeconds": timeout_seconds,
            "resourceVersion": resource_version,
        }
        url_path = resource.path() + "?" + urlencode({k: v for k, v in query.items() if v is not None})
        failures = _GUARD.failures()
        try:
            method_, url, headers_, _, _ = self._api.param_serialize(
                method="GET",
                resource_path=url_path,
                header_params={"Accept": "application/json", "User-Agent": USER_AGENT},
                auth_settings=["BearerToken"],
            )
            if _GUARD.failures() != failures:
                raise ClusterConfigError(_PLUGIN_FAILED, hint=_PLUGIN_HINT)
            response = self._api.rest_client.pool_manager.request(
                method_,
                url,
                headers=headers_,
                preload_content=False,
                retries=False,
                timeout=urllib3.Timeout(connect=self._timeout, read=read_timeout_seconds),
            )
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise error_for_transport(exc, server=self.server) from None
        try:
            if response.status >= 400:
                raise error_for_status(response.status, response.read(), verb="watch", resource=resource.qualified)
            buffer = b""
            try:
                for chunk in response.stream(4096):
                    buffer += chunk
                    while b"\n" in buffer:
                        line, buffer = buffer.split(b"\n", 1)
                        if line.strip():
                            yield _loads(line)
            except (urllib3.exceptions.HTTPError, OSError, ValueError):
                return  # read timeout or a cut stream: the caller re-watches
        finally:
            response.release_conn()

    # ------------------------------------------------------------------ typed helpers

    def list(
        self,
        resource: ApiResource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        page_size: int = PAGE_SIZE,
    ) -> list[dict[str, Any]]:
        """Every object of ``resource`` (paginated), each with apiVersion and kind filled in."""
        return list(
            self.iter_list(
                resource,
                namespace=namespace,
                label_selector=label_selector,
                field_selector=field_selector,
                page_size=page_size,
            )
        )

    def iter_list(
        self,
        resource: ApiResource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        page_size: int = PAGE_SIZE,
    ) -> Iterator[dict[str, Any]]:
        """Like `list`, yielding page by page."""
        token: str | None = None
        while True:
            page = (
                self.request(
                    "GET",
                    resource.path(namespace),
                    query={
                        "limit": page_size,
                        "continue": token,
                        "labelSelector": label_selector,
                        "fieldSelector": field_selector,
                    },
                    verb="list",
                    resource=resource.qualified,
                    namespace=namespace,
                )
                or {}
            )
            for item in page.get("items") or ():
                item.setdefault("apiVersion", resource.group_version)
                item.setdefault("kind", resource.kind)
                yield item
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return

    def get(self, resource: ApiResource, name: str, *, namespace: str | None = None) -> dict[str, Any]:
        """One object. Raises ResourceNotFoundError when absent."""
        obj = self.request(
            "GET",
            resource.path(namespace, name),
            verb="get",
            resource=resource.qualified,
            namespace=namespace,
            name=name,
        )
        obj.setdefault("apiVersion", resource.group_version)
        obj.setdefault("kind", resource.kind)
        return dict(obj)

    def create(self, resource: ApiResource, body: Mapping[str, Any], *, namespace: str | None = None) -> dict[str, Any]:
        """Create an object."""
        return dict(
            self.request(
                "POST",
                resource.path(namespace),
                body=body,
                verb="create",
                resource=resource.qualified,
                namespace=namespace,
                name=(body.get("metadata") or {}).get("name"),
                query={"fieldManager": FIELD_MANAGER},
            )
        )

    def replace(
        self, resource: ApiResource, body: Mapping[str, Any], *, namespace: str | None = None
    ) -> dict[str, Any]:
        """PUT an object (optimistic concurrency through its metadata.resourceVersion)."""
        name = str((body.get("metadata") or {}).get("name"))
        return dict(
            self.request(
                "PUT",
                resource.path(namespace, name),
                body=body,
                verb="update",
                resource=resource.qualified,
                namespace=namespace,
                name=name,
                query={"fieldManager": FIELD_MANAGER},
            )
        )

    def patch(
        self,
        resource: ApiResource,
        name: str,
        patch: Any,
        *,
        namespace: str | None = None,
        patch_type: str = "application/merge-patch+json",
    ) -> dict[str, Any]:
        """Patch an object (merge patch by default; a list body should use json-patch)."""
        return dict(
            self.request(
                "PATCH",
                resource.path(namespace, name),
                body=patch,
                content_type=patch_type,
                verb="patch",
                resource=resource.qualified,
                namespace=namespace,
                name=name,
                query={"fieldManager": FIELD_MANAGER},
            )
        )

    def delete(self, resource: ApiResource, name: str, *, namespace: str | None = None) -> Any:
        """Delete an object."""
        return self.request(
            "DELETE",
            resource.path(namespace, name),
            verb="delete",
            resource=resource.qualified,
            namespace=namespace,
            name=name,
        )

    def put_subresource(
        self, resource: ApiResource, name: str, subresource: str, body: Any = None, *, namespace: str | None = None
    ) -> Any:
        """PUT a subresource such as virtualmachines/start (KubeVirt's lifecycle API)."""
        return self.request(
            "PUT",
            resource.path(namespace, name, subresource),
            body=body if body is not None else {},
            verb="update",
            resource=f"{resource.qualified}/{subresource}",
            namespace=namespace,
            name=name,
        )


__all__ = ["ConfigError", "KubeClient", "load_configuration"]
