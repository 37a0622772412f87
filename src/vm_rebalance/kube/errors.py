"""Translate Kubernetes client failures into vm_rebalance errors — the one boundary where it happens.

The official client puts kubeconfig paths into some exception texts and can print tokens
in debug mode, so nothing from its exceptions reaches the user except the HTTP status and
the API server's own Status message (cut to 256 characters).
"""

import json
from typing import Any

from vm_rebalance.errors import (
    ClusterError,
    ClusterForbiddenError,
    ClusterUnreachableError,
    ResourceNotFoundError,
)

MAX_MESSAGE = 256


def status_message(body: Any) -> str:
    """The ``message`` of a Kubernetes Status body, or a short text of the body."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str):
        text = body
        try:
            body = json.loads(text)
        except ValueError:
            return text.strip()[:MAX_MESSAGE]
    if isinstance(body, dict):
        return str(body.get("message") or body.get("reason") or "")[:MAX_MESSAGE]
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
    if status == 409:
        return ClusterError(f"conflict on {what}: {message}", status=status)
    if status == 429:
        return ClusterError(
            f"the API server is throttling ({verb} {what}): {message}", status=status, hint="try again in a moment"
        )
    return ClusterError(f"{verb} {what} failed with HTTP {status}" + (f": {message}" if message else ""), status=status)


def error_for_transport(exc: BaseException, *, server: str) -> ClusterError:
    """A ClusterUnreachableError for a connection / TLS / timeout failure, without client internals."""
    text = f"{type(exc).__name__}: {exc}"
    if "CERTIFICATE_VERIFY_FAILED" in text or "SSLError" in text:
        why = "TLS verification failed"
    elif "timed out" in text.lower() or "Timeout" in text:
        why = "the connection timed out"
    elif "Connection refused" in text or "NewConnectionError" in text or "Max retries" in text:
        why = "the connection was refused or the host is unreachable"
    elif "Name or service not known" in text or "nodename nor servname" in text:
        why = "the host name could not be resolved"
    else:
        why = "the request could not be sent"
    return ClusterUnreachableError(
        f"cannot reach the Kubernetes API server at {server}: {why}",
        hint="check the cluster is up, the context is right (--context) and your network/VPN",
    )
