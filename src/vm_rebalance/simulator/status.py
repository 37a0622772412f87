"""Kubernetes ``Status`` error bodies, built as apimachinery's ``pkg/api/errors`` constructors build them.

The API layer raises :class:`ApiError` anywhere while handling a request; the app turns it into the
JSON ``Status`` with the same HTTP code (kubevirt-api.md §8.1, §8.2).
"""

from typing import Any

Obj = dict[str, Any]


class ApiError(Exception):
    """A request failure that becomes a ``kind: Status`` response."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: Obj | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    def to_status(self) -> Obj:
        """The Status body."""
        return status_body(self.code, self.reason, self.message, self.details)


def status_body(code: int, reason: str, message: str, details: Obj | None = None) -> Obj:
    """A failure ``Status`` dict with the field order kube-apiserver emits."""
    body: Obj = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
    }
    if reason:
        body["reason"] = reason
    if details:
        body["details"] = details
    body["code"] = code
    return body


def success_status(code: int = 200, details: Obj | None = None) -> Obj:
    """A ``Status`` with ``status: Success`` (e.g. the answer to an allowed eviction)."""
    body: Obj = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
    if details:
        body["details"] = details
    body["code"] = code
    return body


def qualified(group: str, resource: str) -> str:
    """``<resource>.<group>``, or just the resource for the core group (GroupResource.String())."""
    return f"{resource}.{group}" if group else resource


def _details(group: str, resource: str, name: str | None) -> Obj:
    details: Obj = {}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    details["kind"] = resource
    return details


def not_found(group: str, resource: str, name: str) -> ApiError:
    return ApiError(
        404, "NotFound", f'{qualified(group, resource)} "{name}" not found', _details(group, resource, name)
    )


def already_exists(group: str, resource: str, name: str) -> ApiError:
    return ApiError(
        409,
        "AlreadyExists",
        f'{qualified(group, resource)} "{name}" already exists',
        _details(group, resource, name),
    )


def conflict(group: str, resource: str, name: str, why: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {qualified(group, resource)} "{name}": {why}',
        _details(group, resource, name),
    )


OPTIMISTIC_LOCK = "the object has been modified; please apply your changes to the latest version and try again"


def optimistic_lock(group: str, resource: str, name: str) -> ApiError:
    """The 409 of a PUT carrying a stale ``metadata.resourceVersion`` (kubevirt-api.md Appendix A.1)."""
    return conflict(group, resource, name, OPTIMISTIC_LOCK)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def invalid(kind: str, group: str, name: str, causes: list[Obj]) -> ApiError:
    """422 Invalid; ``causes`` are ``{reason, message, field}`` with message ``<type>: <detail>``."""
    qualified_kind = f"{kind}.{group}" if group else kind
    parts = [f"{c['field']}: {c['message']}" for c in causes]
    summary = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    details: Obj = {"name": name} if name else {}
    if group:
        details["group"] = group
    details["kind"] = kind
    details["causes"] = causes
    return ApiError(422, "Invalid", f'{qualified_kind} "{name}" is invalid: {summary}', details)


def method_not_allowed(verb: str, group: str, resource: str) -> ApiError:
    return ApiError(
        405,
        "MethodNotAllowed",
        f'{verb} is not supported on resources of kind "{qualified(group, resource)}"',
        _details(group, resource, None),
    )


def forbidden_rbac(
    user: str,
    verb: str,
    group: str,
    resource: str,
    subresource: str,
    namespace: str | None,
    name: str | None,
    reason: str = "",
) -> ApiError:
    """The authorization 403 of kube-apiserver's ``responsewriters.Forbidden`` (kubevirt-api.md §8.2): the
    subject is the resource without its subresource, the message names verb, resource/subresource, group,
    scope and user, followed by the authorizer's reason when it gave one."""
    full = f"{resource}/{subresource}" if subresource else resource
    subject = qualified(group, resource)
    subject = f'{subject} "{name}"' if name else subject
    scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    message = f'{subject} is forbidden: User "{user}" cannot {verb} resource "{full}" in API group "{group}" {scope}'
    if reason:
        message = f"{message}: {reason}"
    return ApiError(403, "Forbidden", message, _details(group, resource, name))


def forbidden_attributes(attrs: Any, reason: str = "") -> ApiError:
    """:func:`forbidden_rbac` for an ``auth.Attributes``; a non-resource request names its path."""
    if not attrs.resource_request:
        message = f'forbidden: User "{attrs.user.name}" cannot {attrs.verb} path "{attrs.path}"'
        if reason:
            message = f"{message}: {reason}"
        return ApiError(403, "Forbidden", message, {})
    return forbidden_rbac(
        attrs.user.name,
        attrs.verb,
        attrs.group,
        attrs.resource,
        attrs.subresource,
        attrs.namespace or None,
        attrs.name or None,
        reason,
    )


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def expired(requested: int, oldest: int) -> ApiError:
    return ApiError(410, "Expired", f"too old resource version: {requested} ({oldest})")


def unsupported_media_type(accepted: list[str]) -> ApiError:
    return ApiError(
        415,
        "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types include: " + ", ".join(accepted),
    )


def internal_error(message: str) -> ApiError:
    return ApiError(500, "InternalError", f"Internal error occurred: {message}", {"causes": [{"message": message}]})


def not_found_path(path: str) -> ApiError:
    """The plain 404 of an unknown URL (no resource details)."""
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def service_unavailable(message: str) -> ApiError:
    """503: the server cannot answer now (it is shutting down)."""
    return ApiError(503, "ServiceUnavailable", message)
