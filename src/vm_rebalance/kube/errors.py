"""Translate Kubernetes client failures into vm_rebalance errors — the one boundary where it happens.

The official client puts kubeconfig paths into some exception texts and can print tokens
in debug mode, so nothing from its exceptions reaches the user except the HTTP status and
the API server's own Status message (cut to 256 characters).

KubeVirt's refusals (admission webhook denials answered 400, lifecycle conflicts answered
409, failed JSON-patch guards answered 422) are classified here, once, into an
`ApiRejectedError` with a `Rejection` kind: the layers above decide on the kind and never
look at the text. KubeVirt gives most of these no machine-readable reason (a webhook denial
is ``{code: 400}`` with only a message; kubevirt-api.md §3.5, §5), so this module is the one
place that reads KubeVirt's documented message texts.
"""

import errno
import json
import re
import socket
import ssl
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import urllib3

from vm_rebalance.errors import (
    ClusterError,
    ClusterForbiddenError,
    ClusterUnreachableError,
    ResourceNotFoundError,
)

MAX_MESSAGE = 256


class Rejection(StrEnum):
    """What kind of refusal a 400 / 409 / 422 answer (or a wrapped webhook denial) is."""

    OPTIMISTIC_LOCK = "optimistic-lock"
    """409: the object changed since it was read (a stale resourceVersion)."""
    GUARD_FAILED = "guard-failed"
    """A JSON-patch ``test`` operation did not hold (vm-rebalance's resourceVersion guard): the object changed."""
    ALREADY_EXISTS = "already-exists"
    ALREADY_RUNNING = "already-running"
    """409 from virtualmachines/start: ``VM is already running``."""
    NOT_RUNNING = "not-running"
    """409 from stop / restart / migrate: ``VM is not running`` (for stop: it is already stopped)."""
    RUN_STRATEGY = "run-strategy"
    """409: the VM's runStrategy does not allow this manual request (e.g. ``Always does not support manual start``)."""
    LIFECYCLE_UNDERWAY = "lifecycle-underway"
    """409: ``stop/start already underway``."""
    APPLY_CONFLICT = "apply-conflict"
    """409: a server-side apply field-manager conflict."""
    NOT_MIGRATABLE = "not-migratable"
    """Webhook: ``Cannot migrate VMI, Reason: <reason>, Message: …`` (see `ApiRejectedError.cause`)."""
    MIGRATION_IN_FLIGHT = "migration-in-flight"
    """Webhook: ``in-flight migration detected`` (another migration of the VMI is running)."""
    VMI_NOT_FOUND = "vmi-not-found"
    """Webhook: ``the VMI "<ns>/<name>" does not exist`` (the VM is not running)."""
    VMI_FINAL = "vmi-final"
    """Webhook: ``Cannot migrate VMI in finalized state``."""
    WEBHOOK_DENIED = "webhook-denied"
    """Another admission webhook denial."""
    INVALID = "invalid"
    """422 Invalid: field validation."""
    BAD_REQUEST = "bad-request"
    """Another 400."""
    CONFLICT = "conflict"
    """Another 409."""


class ApiRejectedError(ClusterError):
    """The API server (or a KubeVirt webhook or subresource) refused the request; `kind` says how."""

    def __init__(
        self,
        message: str,
        *,
        kind: Rejection,
        detail: str,
        cause: str | None = None,
        status: int,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint, status=status)
        self.kind = kind
        self.detail = detail
        """The refusal in KubeVirt's / the API server's own words (webhook prefix removed), for people."""
        self.cause = cause
        """For NOT_MIGRATABLE: KubeVirt's LiveMigratable reason, e.g. ``DisksNotLiveMigratable``."""


_WEBHOOK = re.compile(r'admission webhook "([^"]*)" denied the request: (.*)', re.DOTALL)
_NOT_MIGRATABLE = re.compile(r"Cannot migrate VMI, Reason: ([A-Za-z]+)")
# (pattern on the detail, kind) in the order they are tried; texts from kubevirt-api.md §3.5, §5, §8.2, §8.7.
_ADMISSION_TEXTS = (
    (re.compile(r"in-flight migration detected"), Rejection.MIGRATION_IN_FLIGHT),
    (re.compile(r"Cannot migrate VMI in finalized state"), Rejection.VMI_FINAL),
    (_NOT_MIGRATABLE, Rejection.NOT_MIGRATABLE),
    (re.compile(r'the VMI "[^"]*" does not exist'), Rejection.VMI_NOT_FOUND),
)
_CONFLICT_TEXTS = (
    (re.compile(r"the object has been modified"), Rejection.OPTIMISTIC_LOCK),
    (re.compile(r"test operation does not apply|testing value \S+ failed"), Rejection.GUARD_FAILED),
    (re.compile(r"Apply failed with \d+ conflict"), Rejection.APPLY_CONFLICT),
    (re.compile(r"VM is already running"), Rejection.ALREADY_RUNNING),
    (re.compile(r"VM is not running"), Rejection.NOT_RUNNING),
    (
        re.compile(
            r"does not support manual (start|restart) requests|only supports manual stop requests"
            r"|does not support starting VM from failed state"
        ),
        Rejection.RUN_STRATEGY,
    ),
    (re.compile(r"already underway"), Rejection.LIFECYCLE_UNDERWAY),
)


def classify_rejection(status: int, reason: str, message: str) -> tuple[Rejection, str, str | None] | None:
    """(kind, detail, cause) of a refusal, or None when the answer is not one (e.g. a plain 500).

    ``reason`` and ``message`` are the Status body's; ``detail`` is the message without the
    apiserver's webhook wrapping, ``cause`` KubeVirt's LiveMigratable reason for NOT_MIGRATABLE.
    """
    webhook = _WEBHOOK.search(message)
    detail = webhook.group(2).strip() if webhook else message
    if webhook is not None or status == 400:
        for pattern, kind in _ADMISSION_TEXTS:
            found = pattern.search(detail)
            if found:
                return kind, detail, found.group(1) if kind is Rejection.NOT_MIGRATABLE else None
        if webhook is not None:
            return Rejection.WEBHOOK_DENIED, detail, None
    if status == 400:
        return Rejection.BAD_REQUEST, detail, None
    if status in (409, 422):
        for pattern, kind in _CONFLICT_TEXTS:
            if pattern.search(detail):
                return kind, detail, None
        if status == 409:
            return (Rejection.ALREADY_EXISTS if reason == "AlreadyExists" else Rejection.CONFLICT), detail, None
        return Rejection.INVALID, detail, None
    return None


def status_reason(body: Any) -> str:
    """The ``reason`` of a Kubernetes Status body ('' when there is none)."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError:
            return ""
    if isinstance(body, dict):
        return str(body.get("reason") or "")
    return ""


def status_message(body: Any, *, limit: int = MAX_MESSAGE) -> str:
    """The ``message`` of a Kubernetes Status body, or a short text of the body (cut to ``limit``)."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str):
        text = body
        try:
            body = json.loads(text)
        except ValueError:
            return text.strip()[:limit]
    if isinstance(body, dict):
        return str(body.get("message") or body.get("reason") or "")[:limit]
    return ""


def error_for_status(
    status: int, body: Any, *, verb: str, resource: str, namespace: str | None = None, name: str | None = None
) -> ClusterError:
    """The ClusterError for an HTTP error answer to ``verb`` on ``resource``."""
    what = f"{resource}{' ' + repr(name) if name else ''}{' in namespace ' + namespace if namespace else ''}"
    message = status_message(body)
    if status == 401:
        return ClusterForbiddenError(
            "the API server rejected the credentials (401 Unauthorized)",
            hint="refresh your login (token expired?) or check the kubeconfig user",
            status=status,
        )
    if status == 403:
        scope = f"in namespace {namespace}" if namespace else "at cluster scope"
        return ClusterForbiddenError(
            f"forbidden: cannot {verb} {resource} {scope}" + (f" ({message})" if message else ""),
            hint=f"grant '{verb}' on '{resource}' (see the RBAC section of the README)",
            status=status,
        )
    if status == 404:
        return ResourceNotFoundError(f"{what} not found" + (f": {message}" if message else ""), status=status)
    if status == 429:
        return ClusterError(
            f"the API server is throttling ({verb} {what}): {message}", status=status, hint="try again in a moment"
        )
    text = (
        f"conflict on {what}: {message}"
        if status == 409
        else (f"{verb} {what} failed with HTTP {status}" + (f": {message}" if message else ""))
    )
    # Classified on the whole message (a webhook's wrapping alone can be 150 characters); shown cut.
    rejection = classify_rejection(status, status_reason(body), status_message(body, limit=64 * MAX_MESSAGE))
    if rejection is not None:
        kind, detail, cause = rejection
        return ApiRejectedError(text, kind=kind, detail=detail[:MAX_MESSAGE], cause=cause, status=status)
    return ClusterError(text, status=status)


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception, what caused it, and urllib3's wrapped ``reason`` (bounded: no cycles)."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo and len(seen) < 16:
        current = todo.pop(0)
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        reason = getattr(current, "reason", None)
        todo += [current.__cause__, current.__context__, reason if isinstance(reason, BaseException) else None]
    return seen


def _transport_reason(exc: BaseException) -> str:
    """Why a request could not be sent, from the exception types along its chain."""
    chain = _chain(exc)
    if any(isinstance(e, ssl.SSLError | urllib3.exceptions.SSLError) for e in chain):
        return "TLS verification failed"
    if any(isinstance(e, socket.gaierror | urllib3.exceptions.NameResolutionError) for e in chain):
        return "the host name could not be resolved"
    # NewConnectionError is a ConnectTimeoutError subclass in urllib3: refused before timed out.
    if any(isinstance(e, ConnectionRefusedError | urllib3.exceptions.NewConnectionError) for e in chain):
        return "the connection was refused or the host is unreachable"
    if any(isinstance(e, TimeoutError | urllib3.exceptions.TimeoutError) for e in chain):
        return "the connection timed out"
    if any(isinstance(e, OSError) and e.errno in _UNREACHABLE_ERRNOS for e in chain):
        return "the connection was refused or the host is unreachable"
    return "the request could not be sent"


_UNREACHABLE_ERRNOS = frozenset({errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ECONNRESET})


def redact_url(url: str) -> str:
    """``url`` as it may be printed: scheme, host and port (and path), never user-info, query or fragment.

    A kubeconfig's server URL can carry a password (``https://admin:secret@host``) or a token in
    its query; neither is ever shown.
    """
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<the kubeconfig's server>"
    if not parts.scheme or not host:
        return "<the kubeconfig's server>"
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{port}" if port is not None else "")
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def error_for_transport(exc: BaseException, *, server: str) -> ClusterError:
    """A ClusterUnreachableError for a connection / TLS / timeout failure, without client internals."""
    return ClusterUnreachableError(
        f"cannot reach the Kubernetes API server at {redact_url(server)}: {_transport_reason(exc)}",
        hint="check the cluster is up, the context is right (--context) and your network/VPN",
    )
